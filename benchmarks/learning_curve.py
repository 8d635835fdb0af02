"""A training stage's learning curve from its TensorBoard log: mean episodic return per window.

Reads ``charts/episodic_return`` from ``RUN/tb/<stage>``: one point per PPO update in which
at least one training episode ended, the mean return of those episodes, logged at the update's
last env step. Averages these points over windows of ``--window`` env steps (each update
weighs the same, however many episodes it ended)
and prints the curve as a Markdown table, with the value read at each ``--at`` step (the mean
over the window that ends there). ``--csv`` writes the windows, ``--png`` plots them.
Training returns are the stochastic policy's, on training episodes; they are not the greedy
score of ``metrics.json``.

    python benchmarks/learning_curve.py runs/minatar_breakout --stage teacher \\
        --window 100000 --at 1000000,2000000,3000000 --csv curve.csv --png curve.png

Ends with one ``RESULT`` line.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np


def update_returns(tb_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(env step, mean return of the episodes it ended) of every update logged under
    ``tb_dir``, step-ordered."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})
    acc.Reload()
    if "charts/episodic_return" not in acc.Tags()["scalars"]:
        raise SystemExit(f"{tb_dir}: no charts/episodic_return scalars")
    events = acc.Scalars("charts/episodic_return")
    steps = np.array([e.step for e in events], dtype=np.int64)
    values = np.array([e.value for e in events], dtype=np.float64)
    order = np.argsort(steps, kind="stable")
    return steps[order], values[order]


def windows(
    steps: np.ndarray, values: np.ndarray, width: int
) -> list[tuple[int, float, float, int]]:
    """(window end, mean, std, updates) over consecutive windows of ``width`` env steps."""
    out = []
    end = width
    while end - width < (steps[-1] if len(steps) else 0):
        sel = values[(steps > end - width) & (steps <= end)]
        if len(sel):
            out.append((end, float(sel.mean()), float(sel.std()), len(sel)))
        end += width
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="run folder (with tb/<stage>)")
    p.add_argument("--stage", default="teacher")
    p.add_argument("--window", type=int, default=100_000, help="env steps per window")
    p.add_argument("--at", default="", help="comma-separated env steps to read the curve at")
    p.add_argument("--csv", type=Path)
    p.add_argument("--png", type=Path)
    args = p.parse_args()
    if args.window < 1:
        p.error(f"--window: must be >= 1 env step, got {args.window}")
    at = [int(a) for a in args.at.split(",") if a]
    if any(a % args.window for a in at):
        p.error(f"--at: each step must end a window (a multiple of --window {args.window})")
    steps, values = update_returns(args.run / "tb" / args.stage)
    if len(steps) == 0:
        raise SystemExit(f"{args.run / 'tb' / args.stage}: no training episodes logged yet")
    rows = windows(steps, values, args.window)
    print(f"{args.run} ({args.stage}): {len(values)} updates with episodes, to step {steps[-1]:,}")
    print("| env steps | mean return | std across updates | updates |\n|---:|---:|---:|---:|")
    for end, mean, std, n in rows:
        print(f"| {end:,} | {mean:.2f} | {std:.2f} | {n} |")
    by_end = {end: mean for end, mean, _, _ in rows}
    read = {a: by_end.get(a, float("nan")) for a in at}
    if args.csv:
        with args.csv.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["env_steps", "mean_return", "std_across_updates", "updates"])
            w.writerows(rows)
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        ends = np.array([r[0] for r in rows])
        means = np.array([r[1] for r in rows])
        stds = np.array([r[2] for r in rows])
        ax.plot(ends, means)
        ax.fill_between(ends, means - stds, means + stds, alpha=0.2)
        ax.set_xlabel("env steps")
        ax.set_ylabel(f"training return (mean over {args.window:,} steps)")
        ax.set_title(f"{args.run.name}: {args.stage}")
        fig.tight_layout()
        fig.savefig(args.png, dpi=110)
    print(
        f"RESULT learning_curve {args.run.name} {args.stage} "
        + " ".join(f"at{a}={v:.2f}" for a, v in read.items())
    )


if __name__ == "__main__":
    main()
