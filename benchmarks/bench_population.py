"""Population forward throughput: the native subnet_eval kernel vs the per-subnet torch loop vs
a full-width masked torch forward, for MLP and CNN supernets; then one search generation end to
end (CartPole, pop 64 x 10 episodes) with its env/network time split, and optionally one on an
Atari game (``--atari Pong``: native env backend, untrained supernet) to show what stepping
finished slots costs there.

Populations (pop subnets x ``--rows`` observations each, one call):

* ``mlp-uniform``: every member is 6-256-256-256 (Acrobot-sized obs, 3 actions);
* ``mlp-random``: random archs of the default MLP space (6 inputs, widths up to 256);
* ``cnn-random``: random archs of the default Atari space on 4x84x84 uint8 frames (6 actions);
* ``cnn-nature``: every member is the Nature CNN (32/64/64, FC 512);
* ``cnn-config`` (needs ``--config``): random archs of the config's declared CNN space
  (``space.conv`` / ``space.fc``) on its env's observations (shape, action count and
  ``obs_scale`` from the env; 0/1 planes for ``obs_scale`` 1, e.g. MinAtar's 4x10x10);
* ``cnn-config-teacher`` (needs ``--config``): every member is the config's teacher arch.

"Useful" GFLOP/s counts only each subnet's own FLOPs (cost model, 2 x multiply-adds); the masked
forward computes the largest network for every row and is charged the same useful FLOPs. Every
method's output is checked against the per-subnet loop first. Timings are the minimum over
``--repeats`` interleaved runs (the box is shared; the minimum is the least disturbed one), with
the median in brackets.

``--device cuda`` opts in to the unproven CUDA kernels (A2D_EVO_CUDA_KERNELS=1) and, when
their parity checks pass, prints the op names to add to ``ops.dispatch.CUDA_PROVEN``.

    python benchmarks/bench_population.py [--device cpu|cuda] [--rows 8] [--threads N]
        [--pop 64] [--repeats 15] [--skip-e2e] [--atari GAME --atari-pop 16 --atari-episodes 2]
    python benchmarks/bench_population.py --config configs/minatar_breakout.yaml \
        --kinds cnn-config,cnn-config-teacher --skip-e2e      # a declared CNN space ([K])

Ends with one ``RESULT`` line.
"""

from __future__ import annotations

import argparse
import os

# as the command line does (a2d_evo/cli/__init__.py), before torch loads libgomp; a user's own wins
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from a2d_evo.config import Config, SpaceConfig, config_from_dict, load_config
from a2d_evo.nets import cost
from a2d_evo.nets.population import PopulationForward, reference_forward
from a2d_evo.nets.space import Arch, CNNArch, MLPArch, SearchSpace
from a2d_evo.nets.supernet import Supernet
from a2d_evo.ops.dispatch import CUDA_ENV_VAR, CUDA_PROVEN, cuda_opted_in, native_module


# ----------------------------------------------------------------------------- masked forward
@torch.no_grad()
def masked_forward(
    net: Supernet, obs: torch.Tensor, archs: Sequence[Arch], sizes: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The largest network on every row, inactive channels zeroed and skipped layers passed
    through per row: the usual way to batch a supernet without a grouped kernel."""
    dev = obs.device
    rows = torch.repeat_interleave(
        torch.arange(len(archs), device=dev), torch.tensor(sizes, device=dev)
    )

    def width_mask(widths: list[int], full: int) -> torch.Tensor:
        w = torch.tensor(widths, device=dev)[rows]
        return (torch.arange(full, device=dev)[None, :] < w[:, None]).float()

    if not net.atari:
        x = obs.float().reshape(len(obs), -1)
        for i, layer in enumerate(net.layers):
            depth_ok = torch.tensor(
                [len(a.widths) > i for a in archs],
                device=dev,  # type: ignore[union-attr]
            )[rows]
            widths = [a.widths[i] if len(a.widths) > i else 1 for a in archs]  # type: ignore[union-attr]
            if i == 0:
                h = torch.tanh(F.linear(x, layer.weight, layer.bias)) * width_mask(
                    widths, layer.out_features
                )
            else:
                y = torch.tanh(F.linear(h, layer.weight, layer.bias)) * width_mask(
                    widths, layer.out_features
                )
                h = torch.where(depth_ok[:, None], y, h)
    else:  # declared CNN spaces ([K]): no masked twin yet, the kernel and the loop only
        raise ValueError("masked_forward: MLP supernets only")
    return F.linear(h, net.policy.weight, net.policy.bias), F.linear(
        h, net.value.weight, net.value.bias
    ).squeeze(-1)


# ----------------------------------------------------------------------------- timing
CLOCK = time.perf_counter


def time_all(
    fns: dict[str, Callable[[], Any]], repeats: int, sync: Callable[[], None], base: str
) -> dict[str, tuple[float, float, float]]:
    """(min, median seconds, median of the per-round ratios ``base`` / method) per method, the
    methods interleaved and rotated every round. The ratio is paired by round: on a loaded
    machine a short call gets through a round undisturbed far more often than a long one, so
    a ratio of minima favours the short side (a review measured 46x by minima, 17x by
    medians, in one run)."""
    for fn in fns.values():
        fn()
    names = list(fns)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        for n in names[r % len(names) :] + names[: r % len(names)]:
            sync()
            t0 = CLOCK()
            fns[n]()
            sync()
            times[n].append(CLOCK() - t0)
    return {
        n: (min(t), statistics.median(t),
            statistics.median(b / x for b, x in zip(times[base], t, strict=True)))
        for n, t in times.items()
    }  # fmt: skip


def rel_err(a: Any, b: torch.Tensor) -> float:
    a_t = torch.as_tensor(a).float().cpu()
    b_t = b.float().cpu()
    return float((a_t - b_t).abs().max() / b_t.abs().max().clamp_min(1e-12))


CONFIG_KINDS = ("cnn-config", "cnn-config-teacher")
"""Kinds built from ``--config``'s declared CNN space and env."""


def config_population(
    kind: str, cfg: Config | None, pop: int, rng: np.random.Generator
) -> tuple[Supernet, list[Arch], tuple[int, ...]]:
    """A supernet of ``cfg``'s declared CNN space on its env's observations, and ``pop``
    random archs of it (``cnn-config``) or ``pop`` copies of the teacher (``-teacher``)."""
    from a2d_evo.envs import env_spec
    from a2d_evo.train.teacher_folder import teacher_arch

    if cfg is None:
        raise SystemExit(f"--kinds {kind}: needs --config PATH (a config with space.kind: cnn)")
    if cfg.space.kind != "cnn":
        raise SystemExit(f"--kinds {kind}: the config's space.kind is {cfg.space.kind!r}, not cnn")
    space = SearchSpace(cfg.space)
    spec = env_spec(cfg.env)
    obs_shape = tuple(int(d) for d in spec.obs_shape)
    if kind == "cnn-config-teacher":
        arch = teacher_arch(cfg)
        if not space.contains(arch):
            raise SystemExit(f"--kinds {kind}: the teacher {arch} is not in the declared space")
        archs: list[Arch] = [arch] * pop
    else:
        archs = [space.decode(x) for x in space.sample_encodings(rng, pop)]
    torch.manual_seed(0)
    return Supernet(space, obs_shape, spec.n_actions, spec.obs_scale), archs, obs_shape


def population(
    kind: str, pop: int, rng: np.random.Generator, cfg: Config | None = None
) -> tuple[Supernet, list[Arch], tuple[int, ...]]:
    if kind in CONFIG_KINDS:
        return config_population(kind, cfg, pop, rng)
    if kind.startswith("mlp"):
        space = SearchSpace(SpaceConfig(kind="mlp"))
        obs_shape, n_act = (6,), 3
        if kind == "mlp-uniform":
            archs: list[Arch] = [MLPArch((256, 256, 256))] * pop
        else:
            archs = [space.decode(x) for x in space.sample_encodings(rng, pop)]
    else:
        space = SearchSpace(SpaceConfig(kind="cnn"))
        obs_shape, n_act = (4, 84, 84), 6
        if kind == "cnn-nature":
            archs = [CNNArch.nature()] * pop
        else:
            archs = [space.decode(x) for x in space.sample_encodings(rng, pop)]
    torch.manual_seed(0)
    return Supernet(space, obs_shape, n_act), archs, obs_shape


def bench_forward(
    kind: str, args: argparse.Namespace, device: torch.device, cfg: Config | None = None
) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    net, archs, obs_shape = population(kind, args.pop, rng, cfg)
    net = net.to(device)
    sizes = [args.rows] * len(archs)
    n = sum(sizes)
    if kind.startswith("mlp"):
        obs = torch.from_numpy(rng.standard_normal((n, *obs_shape)).astype(np.float32))
    else:  # 0/1 planes where the env's obs_scale is 1 (MinAtar), else 0-255 frames
        high = 2 if net.obs_scale == 1.0 else 256
        obs = torch.from_numpy(rng.integers(0, high, (n, *obs_shape), dtype=np.uint8))
    obs = obs.to(device)
    obs_np = obs.cpu().numpy()
    fwd = PopulationForward(net, device=device, backend="native")
    x_kernel = obs_np if device.type == "cpu" else obs
    useful = sum(
        cost.flops(a, obs_shape, net.n_actions) * s for a, s in zip(archs, sizes, strict=True)
    )
    ref_l, _ = reference_forward(net, obs, archs, sizes)
    checks = {"kernel": rel_err(fwd(x_kernel, archs, sizes)[0], ref_l)}
    fns = {
        "kernel": lambda: fwd(x_kernel, archs, sizes),
        "naive loop": lambda: reference_forward(net, obs, archs, sizes),
    }
    if not net.atari:  # the masked twin covers MLP supernets only
        checks["masked"] = rel_err(masked_forward(net, obs, archs, sizes)[0], ref_l)
        fns["masked full-width"] = lambda: masked_forward(net, obs, archs, sizes)
    assert max(checks.values()) < 1e-4, checks
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    small = kind.startswith("mlp") or kind in CONFIG_KINDS  # Atari-sized CNNs: fewer rounds
    reps = args.repeats if small else max(3, args.repeats // 3)
    t = time_all(fns, reps, sync, "naive loop")
    where = ""
    if kind in CONFIG_KINDS:
        where = f" ({args.config}: obs {'x'.join(map(str, obs_shape))}, {net.n_actions} actions)"
    print(
        f"\n{kind}{where}: pop {len(archs)} x {args.rows} rows = {n} rows, "
        f"useful {useful / 1e9:.3f} GFLOP/call, kernel {fwd.backend_name}; parity vs loop: "
        + ", ".join(f"{k} {v:.1e}" for k, v in checks.items())
    )
    print(f"  {'method':<20}{'ms/call min [median]':>22}{'rows/s':>12}{'useful GFLOP/s':>16}"
          f"{'vs loop':>9}  (median of per-round ratios)")  # fmt: skip
    for name, (tmin, tmed, ratio) in t.items():
        print(
            f"  {name:<20}{tmin * 1e3:>13.2f} [{tmed * 1e3:>6.1f}]{n / tmed:>12.0f}"
            f"{useful / tmed / 1e9:>16.1f}{ratio:>8.2f}x"
        )
    return {name: ratio for name, (_, _, ratio) in t.items()} | {
        "gflops": useful / t["kernel"][1] / 1e9
    }


class _StepsEverySlot:
    """A vector env without ``step_active``: every slot steps every time, finished or not."""

    def __init__(self, env: Any) -> None:
        self.env = env

    def reset(self, seed: Any) -> Any:
        return self.env.reset(seed=seed)

    def step(self, actions: np.ndarray) -> Any:
        return self.env.step(actions)

    def close(self) -> None:
        self.env.close()


def time_generation(
    cfg: Any, net: Supernet, archs: list[Arch], seeds: list[int], backends: Sequence[str]
) -> dict[str, float]:
    """One generation (every arch on every seed, one vector env) per backend, with its split.

    ``native``: the native forward, finished slots no longer stepped; ``every-slot``: the
    same, but finished slots stepped on (what an env without ``step_active`` costs);
    ``reference``: the reference forward. The vector env is built outside the timing.
    """
    from a2d_evo.evaluation.population import PopulationEvaluator

    slots = len(archs) * len(seeds)
    out: dict[str, float] = {}
    print(
        f"  {'forward':<12}{'total s':>9}{'env s':>8}{'net s':>8}{'net %':>7}"
        f"{'env steps':>11}{'fwd rows':>10}{'mean ret':>9}"
    )
    for backend in backends:
        if backend == "reference":
            os.environ["A2D_EVO_REFERENCE_OPS"] = "1"
        try:
            ev = PopulationEvaluator(net, cfg)
            env = ev._vec_env(slots, None, seeds[0])
            if backend == "every-slot":
                ev._env = _StepsEverySlot(env)
            t0 = time.perf_counter()
            res = ev.evaluate(archs, len(seeds), seeds)
            total = time.perf_counter() - t0
            tm = ev.timing
            ev.close()
        finally:
            os.environ.pop("A2D_EVO_REFERENCE_OPS", None)
        mean_ret = float(np.mean([r.mean for r in res]))
        print(
            f"  {backend:<12}{total:>9.2f}{tm.env_s:>8.2f}{tm.net_s:>8.2f}{tm.net_s / total:>7.0%}"
            f"{tm.env_steps:>11}{tm.forward_rows:>10}{mean_ret:>9.1f}"
        )
        out[f"{backend}_total"], out[f"{backend}_env"], out[f"{backend}_net"] = (
            total,
            tm.env_s,
            tm.net_s,
        )
    return out


def bench_e2e(args: argparse.Namespace) -> dict[str, float]:
    """One search generation: pop 64 x 10 episodes of CartPole, native vs reference forward."""
    cfg = config_from_dict({"env": {"id": "CartPole-v1"}, "search": {"pop": args.pop}})
    space = SearchSpace(cfg.space)
    torch.manual_seed(0)
    net = Supernet(space, (4,), 2)
    with torch.no_grad():  # a trained-like mix of episode lengths: unit 0 balances the pole
        for layer in net.layers:
            layer.weight.mul_(0.3)
        net.layers[0].weight[0].zero_()
        net.layers[0].weight[0, 2:4] = 10.0
        net.policy.weight[:, 0] = torch.tensor([-5.0, 5.0])
    archs = [space.decode(x) for x in space.sample_encodings(np.random.default_rng(1), args.pop)]
    print(
        f"\nend to end: one generation, CartPole-v1, pop {args.pop} x 10 episodes "
        f"(one vector env of {args.pop * 10} slots)"
    )
    return time_generation(
        cfg, net, archs, list(range(1000, 1010)), ("native", "every-slot", "reference")
    )


def bench_e2e_atari(args: argparse.Namespace) -> dict[str, float]:
    """One generation on an Atari game (native env backend, untrained supernet): the cost of
    stepping finished slots. Untrained subnets still lose at different speeds."""
    game = args.atari
    cfg = config_from_dict(
        {"env": {"id": f"ALE/{game}-v5", "backend": "native"}, "space": {"kind": "cnn"}}
    )
    space = SearchSpace(cfg.space)
    from a2d_evo.envs import env_spec

    spec = env_spec(cfg.env)
    torch.manual_seed(0)
    net = Supernet(space, tuple(spec.obs_shape), spec.n_actions, spec.obs_scale)
    rng = np.random.default_rng(1)
    archs = [space.decode(x) for x in space.sample_encodings(rng, args.atari_pop)]
    episodes = args.atari_episodes
    print(
        f"\nend to end: one generation, {cfg.env.id}, pop {args.atari_pop} x {episodes} episodes "
        f"(native env backend, untrained supernet)"
    )
    seeds = list(range(1000, 1000 + episodes))
    out = time_generation(cfg, net, archs, seeds, ("native", "every-slot"))
    out.update(time_smaller_generation(cfg, net, archs, seeds))
    return out


def time_smaller_generation(
    cfg: Any, net: Supernet, archs: list[Arch], seeds: list[int], repeats: int = 2
) -> dict[str, float]:
    """A generation with 3/4 of the candidates, on new seeds, after a full one (a search whose
    cache fills): the evaluator's env reused (spare slots idle) vs a fresh env built and
    seeded (what a change of candidate count cost before). Episodes are cut at 100 steps so
    the env's cost is not lost in the noise of minute-long generations; best of ``repeats``."""
    from a2d_evo.evaluation.population import PopulationEvaluator

    fewer = archs[: max(1, 3 * len(archs) // 4)]
    times: dict[str, list[float]] = {"reused": [], "rebuilt": []}
    ev = PopulationEvaluator(net, cfg)
    try:
        for r in range(repeats):
            for how in ("reused", "rebuilt"):
                ev.evaluate(archs, len(seeds), seeds, max_episode_steps=100)  # full size
                if how == "rebuilt":
                    ev.close()
                later = [s + 100 * (r + 1) for s in seeds]
                t0 = time.perf_counter()
                ev.evaluate(fewer, len(seeds), later, max_episode_steps=100)
                times[how].append(time.perf_counter() - t0)
    finally:
        ev.close()
    out = {f"smaller_{how}": min(t) for how, t in times.items()}
    print(
        f"  next generation, {len(fewer)} of {len(archs)} candidates on new seeds, episodes cut "
        f"at 100 steps: {out['smaller_reused']:.2f} s with the env reused, "
        f"{out['smaller_rebuilt']:.2f} s with a new env (best of {repeats})"
    )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--rows", type=int, default=8, help="rows per subnet (8; also try 16)")
    p.add_argument("--pop", type=int, default=64)
    p.add_argument("--threads", type=int, default=0, help="torch and OpenMP threads; 0 = all cores")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument(
        "--kinds",
        default="mlp-uniform,mlp-random,cnn-random,cnn-nature",
        help=f"comma-separated; also {', '.join(CONFIG_KINDS)} (need --config)",
    )
    p.add_argument(
        "--config",
        default="",
        help="config whose declared CNN space (space.conv / space.fc) and env build the "
        f"{', '.join(CONFIG_KINDS)} kinds, e.g. configs/minatar_breakout.yaml",
    )
    p.add_argument("--skip-e2e", action="store_true")
    p.add_argument("--atari", default="", help="also one generation on this ALE game, e.g. Pong")
    p.add_argument("--atari-pop", type=int, default=16)
    p.add_argument("--atari-episodes", type=int, default=2)
    p.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="cpu: process CPU time, robust on a shared box (use with --threads 1)",
    )
    args = p.parse_args()
    if args.clock == "cpu" and args.threads != 1:
        # process CPU time sums every thread's: a multithreaded side would be charged for each
        p.error("--clock cpu needs --threads 1 (CPU time adds up the threads)")
    cfg = load_config(args.config) if args.config else None
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    mod = native_module()
    if mod is None:
        raise SystemExit("a2d_evo._C is not built: pip install -e . first")
    mod.set_num_threads(threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not cuda_opted_in():
        # The CUDA kernels are not in CUDA_PROVEN yet: this run is how they get there.
        os.environ[CUDA_ENV_VAR] = "1"
        print(f"{CUDA_ENV_VAR}=1 set for this run (CUDA kernels not yet in CUDA_PROVEN)")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"device {args.device}, {threads} threads, {args.clock} clock, torch {torch.__version__}, "
        f"kernel ISA {mod.subnet_eval_isa()}, load average {load:.1f}"
    )
    res = {k: bench_forward(k, args, device, cfg) for k in args.kinds.split(",") if k}
    if device.type == "cuda":  # every bench_forward call above asserted kernel parity
        proven = sorted({f"subnet_eval_{k.split('-')[0]}" for k in res} - CUDA_PROVEN)
        if proven:
            print(
                f"CUDA parity passed on {torch.cuda.get_device_name(device)}: add "
                f"{', '.join(map(repr, proven))} to CUDA_PROVEN in a2d_evo/ops/dispatch.py"
            )
    e2e = {} if args.skip_e2e or args.device != "cpu" else bench_e2e(args)
    atari = bench_e2e_atari(args) if args.atari else {}
    parts = [f"device={args.device}", f"threads={threads}", f"clock={args.clock}"]
    parts.append(f"rows={args.rows}")
    if cfg is not None and any(k in CONFIG_KINDS for k in res):
        parts.append(f"config={args.config}")
    for k, r in res.items():
        parts.append(f"{k}_kernel_vs_loop={r['kernel']:.2f}x")
        parts.append(f"{k}_kernel_gflops={r['gflops']:.1f}")
    if e2e:
        parts.append(
            f"e2e_native_s={e2e['native_total']:.2f}(env={e2e['native_env']:.2f},net={e2e['native_net']:.2f})"
        )
        parts.append(
            f"e2e_every_slot_s={e2e['every-slot_total']:.2f}(env={e2e['every-slot_env']:.2f})"
        )
        parts.append(
            f"e2e_reference_s={e2e['reference_total']:.2f}(env={e2e['reference_env']:.2f},net={e2e['reference_net']:.2f})"
        )
    if atari:
        parts.append(
            f"e2e_{args.atari}_native_s={atari['native_total']:.2f}"
            f"(env={atari['native_env']:.2f},net={atari['native_net']:.2f})"
        )
        parts.append(f"e2e_{args.atari}_every_slot_s={atari['every-slot_total']:.2f}")
        parts.append(
            f"e2e_{args.atari}_smaller_gen_s={atari['smaller_reused']:.2f}"
            f"(new_env={atari['smaller_rebuilt']:.2f})"
        )
    print("\nRESULT " + " ".join(parts))


if __name__ == "__main__":
    main()
