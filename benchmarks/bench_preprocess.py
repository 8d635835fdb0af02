"""Frame preprocessing throughput: the native kernel against its peers, measured in the same run.

Frames per second (one frame = max of an env's two raw frames, area-resized to 84x84) for:

  native     a2d_evo.ops.preprocess_frames, native kernel, all OpenMP threads
  native-1t  the same with one thread
  opencv     gymnasium's AtariPreprocessing way: np.maximum + cv2.resize(INTER_AREA), per env
             (RGB row: cv2.cvtColor of both frames first)
  reference  the numpy twin (a2d_evo.ops.preprocess_frames_reference)

for N in {8, 64, 256} 210x160 grey frame pairs and one RGB row. The candidates are interleaved
over ``--rounds`` rounds (machine noise hits all alike) and the median round is reported, with
the best in brackets. Also measures the machine's copy bandwidth with a large numpy copy and
reports the kernel's bytes moved (raw read + frames written) as a fraction of it. Ends with a
``RESULT key=value ...`` line.

On a machine whose cores are busy with other processes, libgomp's default active waiting (it spins
for milliseconds at every barrier) can make a 2-thread call take a whole scheduler time slice;
``OMP_WAIT_POLICY=passive`` avoids that. It is the default here, as in the ``a2d-evo`` command
line (``a2d_evo/cli/__init__.py``); set ``OMP_WAIT_POLICY=active`` to measure spinning waits.
The policy in effect is printed and recorded.

    python benchmarks/bench_preprocess.py [--rounds 7] [--device cuda]
"""

from __future__ import annotations

import argparse
import os

# as the command line does (a2d_evo/cli/__init__.py), before anything loads libgomp; a user's own
# wins
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import platform
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np

from a2d_evo.ops import native_module, preprocess_frames, preprocess_frames_reference

SIZE = 84


def timed(fn: Callable[[], object], min_s: float = 0.02) -> float:
    """Seconds per call, looping until a sample lasts at least min_s."""
    calls = 0
    start = time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_s:
            return elapsed / calls


def interleaved(cands: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Per candidate, seconds per call in each round; all candidates once per round."""
    for fn in cands.values():
        fn()  # warm-up: tables, thread pool, page faults
    times: dict[str, list[float]] = {name: [] for name in cands}
    for _ in range(rounds):
        for name, fn in cands.items():
            times[name].append(timed(fn))
    return times


def copy_bandwidth(rounds: int, nbytes: int = 256 << 20) -> float:
    """Bytes per second (read + written) of a large numpy copy, best of `rounds`."""
    src = np.ones(nbytes, np.uint8)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    best = min(timed(lambda: np.copyto(dst, src), min_s=0.1) for _ in range(rounds))
    return 2 * nbytes / best


def opencv_loop(raw: np.ndarray) -> Callable[[], object]:
    import cv2

    if raw.ndim == 5:

        def run_rgb() -> object:
            return [
                cv2.resize(
                    np.maximum(
                        cv2.cvtColor(r[0], cv2.COLOR_RGB2GRAY),
                        cv2.cvtColor(r[1], cv2.COLOR_RGB2GRAY),
                    ),
                    (SIZE, SIZE),
                    interpolation=cv2.INTER_AREA,
                )
                for r in raw
            ]

        return run_rgb

    def run() -> object:
        return [
            cv2.resize(np.maximum(r[0], r[1]), (SIZE, SIZE), interpolation=cv2.INTER_AREA)
            for r in raw
        ]

    return run


def cpu_table(rounds: int, bandwidth: float) -> dict[str, float]:
    mod = native_module()
    if mod is None:
        sys.exit("a2d_evo._C is not built: nothing to benchmark")
    threads = mod.max_threads()
    rng = np.random.default_rng(0)
    rows = [(8, False), (64, False), (256, False), (64, True)]
    print(
        f"{'frames':>14} {'N':>4} | {'native':>18} {'native-1t':>18} {'opencv':>18} "
        f"{'reference':>18} | {'x opencv':>8} {'x ref':>6} | {'GB/s':>5} {'of copy':>7}"
    )
    result: dict[str, float] = {}
    for n, rgb in rows:
        shape = (n, 2, 210, 160, 3) if rgb else (n, 2, 210, 160)
        raw = rng.integers(0, 256, shape, dtype=np.uint8)
        out = np.empty((n, SIZE, SIZE), np.uint8)

        def one_thread(raw: np.ndarray = raw, out: np.ndarray = out) -> object:
            mod.set_num_threads(1)
            try:
                return preprocess_frames(raw, out)
            finally:
                mod.set_num_threads(threads)

        cands = {
            "native": lambda raw=raw, out=out: preprocess_frames(raw, out),
            "native-1t": one_thread,
            "opencv": opencv_loop(raw),
            "reference": lambda raw=raw: preprocess_frames_reference(raw),
        }
        times = interleaved(cands, rounds)
        fps = {k: n / statistics.median(v) for k, v in times.items()}
        best = {k: n / min(v) for k, v in times.items()}
        moved = raw.nbytes + out.nbytes
        gbs = moved / statistics.median(times["native"])
        cells = " ".join(f"{fps[k]:>9.0f} [{best[k]:>6.0f}]" for k in cands)
        label = "210x160 RGB" if rgb else "210x160 grey"
        print(
            f"{label:>14} {n:>4} | {cells} | {fps['native'] / fps['opencv']:>8.1f} "
            f"{fps['native'] / fps['reference']:>6.1f} | {gbs / 1e9:>5.2f} {gbs / bandwidth:>7.1%}"
        )
        tag = f"{'rgb_' if rgb else ''}n{n}"
        result[f"native_fps_{tag}"] = fps["native"]
        result[f"opencv_fps_{tag}"] = fps["opencv"]
        result[f"speedup_vs_opencv_{tag}"] = fps["native"] / fps["opencv"]
        result[f"speedup_vs_opencv_{tag}_best"] = best["native"] / best["opencv"]
        result[f"speedup_vs_reference_{tag}"] = fps["native"] / fps["reference"]
        result[f"bandwidth_fraction_{tag}"] = gbs / bandwidth
    return result


def cuda_table(rounds: int) -> dict[str, float]:
    try:
        import torch
    except ImportError:
        print("--device cuda: torch is not installed; skipped")
        return {}
    mod = native_module()
    if not torch.cuda.is_available():
        print("--device cuda: no CUDA device (torch.cuda.is_available() is False); skipped")
        return {}
    if mod is None or not mod.has_cuda():
        print("--device cuda: a2d_evo._C was built without CUDA; skipped")
        return {}
    from a2d_evo.ops.preprocess import _area_taps

    dev = torch.device("cuda")
    wy_np, wx_np = np.zeros((SIZE, 210), np.float32), np.zeros((SIZE, 160), np.float32)
    for dense, src in ((wy_np, 210), (wx_np, 160)):
        idx, wts = _area_taps(src, SIZE)
        for k in range(idx.shape[0]):
            np.add.at(dense, (np.arange(SIZE), idx[k]), wts[k])
    wy, wx = torch.from_numpy(wy_np).to(dev), torch.from_numpy(wx_np).to(dev)

    def torch_reference(raw: torch.Tensor) -> torch.Tensor:
        m = torch.maximum(raw[:, 0], raw[:, 1]).float()
        return torch.round(wy @ m @ wx.T).clamp_(0, 255).to(torch.uint8)

    print(f"\nCUDA ({torch.cuda.get_device_name(dev)}), 210x160 grey")
    print(f"{'N':>6} | {'native fps':>12} {'torch fps':>12} | {'x torch':>7} | {'max diff':>8}")
    result: dict[str, float] = {}
    rng = np.random.default_rng(1)
    for n in (64, 256, 1024):
        raw_np = rng.integers(0, 256, (n, 2, 210, 160), dtype=np.uint8)
        raw = torch.from_numpy(raw_np).to(dev)
        out = torch.empty((n, SIZE, SIZE), dtype=torch.uint8, device=dev)

        def sync(fn: Callable[[], object]) -> Callable[[], object]:
            def run() -> object:
                r = fn()
                torch.cuda.synchronize()
                return r

            return run

        cands = {
            "native": sync(lambda raw=raw, out=out: preprocess_frames(raw, out)),
            "torch": sync(lambda raw=raw: torch_reference(raw)),
        }
        times = interleaved(cands, rounds)
        fps = {k: n / statistics.median(v) for k, v in times.items()}
        diff = (out.int() - torch_reference(raw).int()).abs().max().item()
        print(
            f"{n:>6} | {fps['native']:>12.0f} {fps['torch']:>12.0f} | "
            f"{fps['native'] / fps['torch']:>7.1f} | {diff:>8}"
        )
        result[f"cuda_fps_n{n}"] = fps["native"]
        result[f"cuda_speedup_vs_torch_n{n}"] = fps["native"] / fps["torch"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = parser.parse_args()
    mod = native_module()
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    wait_policy = os.environ.get("OMP_WAIT_POLICY", "default")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, OpenMP threads "
        f"{mod.max_threads() if mod else 'n/a'}, OMP_WAIT_POLICY={wait_policy}, "
        f"load average {load[0]:.1f} (1 min)"
    )
    bandwidth = copy_bandwidth(args.rounds)
    print(f"numpy copy bandwidth (read + write, 256 MiB, best): {bandwidth / 1e9:.2f} GB/s")
    print("frames/s, median over rounds [best]\n")
    result = cpu_table(args.rounds, bandwidth)
    if args.device == "cuda":
        result.update(cuda_table(args.rounds))
    result["copy_bandwidth_gbs"] = bandwidth / 1e9
    result["load_avg_1min"] = load[0]
    fields = [f"{k}={v:.4g}" for k, v in result.items()] + [f"omp_wait_policy={wait_policy}"]
    print("RESULT " + " ".join(fields))


if __name__ == "__main__":
    main()
