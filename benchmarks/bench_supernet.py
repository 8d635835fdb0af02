"""Slicing overhead of the CNN supernet against the equivalent static (extracted) network.

For the largest and the smallest arch of the default Atari space (plus the Nature teacher
and an arch whose extra convs are centre crops, where every weight is a strided view), times
``supernet(obs, arch)`` and ``extract(supernet, arch)(obs)`` on the same uint8 batch in the
same run, alternating the two so machine noise hits both alike, and reports medians. Ends
with a ``RESULT`` line (overhead = supernet / static - 1; target < 10%).

    python benchmarks/bench_supernet.py [--batch 256] [--repeats 21] [--threads N] [--device cuda]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable

import torch

from a2d_evo.config import SpaceConfig
from a2d_evo.nets import cost
from a2d_evo.nets.agent_folder import extract
from a2d_evo.nets.space import Arch, CNNArch, SearchSpace
from a2d_evo.nets.supernet import Supernet

OBS_SHAPE = (4, 84, 84)
N_ACTIONS = 6


def time_pair(
    a: Callable[[], object],
    b: Callable[[], object],
    repeats: int,
    warmup: int,
    sync: Callable[[], None],
) -> tuple[float, float]:
    """Median ms of ``a`` and of ``b``, interleaved."""
    for _ in range(warmup):
        a()
        b()
    ta: list[float] = []
    tb: list[float] = []
    for i in range(repeats):
        # alternate which goes first, so neither always runs on a warmer cache
        order = ((a, ta), (b, tb)) if i % 2 == 0 else ((b, tb), (a, ta))
        for fn, out in order:
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            out.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ta), statistics.median(tb)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    torch.manual_seed(args.seed)
    space = SearchSpace(SpaceConfig(kind="cnn"))
    supernet = Supernet(space, OBS_SHAPE, N_ACTIONS).eval().to(device)
    g = torch.Generator().manual_seed(args.seed)
    obs = torch.randint(0, 256, (args.batch, *OBS_SHAPE), dtype=torch.uint8, generator=g)
    obs = obs.to(device)

    print(
        f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads, "
        f"batch {args.batch}, median of {args.repeats}"
    )
    header = (
        f"{'arch':<40} {'MFLOPs/obs':>10} {'supernet ms':>12} {'static ms':>10} {'overhead':>9}"
    )
    print(header)
    print("-" * len(header))
    overhead: dict[str, float] = {}
    archs: dict[str, Arch] = {
        "largest": space.largest(),
        "teacher": space.default_teacher(),
        "cropped": CNNArch.nature((32, 64, 96), ((64, 3), (96, 3)), 512),
        "smallest": space.smallest(),
    }
    with torch.inference_mode():
        for name, arch in archs.items():
            static = extract(supernet, arch).eval()
            ref, out = supernet(obs, arch), static(obs)
            err = (ref.logits - out.logits).abs().max().item()
            assert err <= 1e-5, f"{name}: supernet and static disagree by {err}"
            t_super, t_static = time_pair(
                functools.partial(supernet, obs, arch),
                functools.partial(static, obs),
                args.repeats,
                args.warmup,
                sync,
            )
            overhead[name] = t_super / t_static - 1
            mflops = cost.flops(arch, OBS_SHAPE, N_ACTIONS) / 1e6
            print(
                f"{arch!s:<40} {mflops:>10.2f} {t_super:>12.2f} {t_static:>10.2f} "
                f"{overhead[name]:>+9.1%}"
            )
    print(
        f"RESULT slicing_overhead_largest={overhead['largest']:.4f} "
        f"slicing_overhead_smallest={overhead['smallest']:.4f}"
    )


if __name__ == "__main__":
    main()
