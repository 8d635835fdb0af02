"""Inherited-weight returns of a trained supernet: the largest, the smallest and 10 random subnets.

The evidence that every subnet of a supernet is a usable agent without fine-tuning: greedy
returns over ``--episodes`` (20) episodes of the largest, the smallest and ``--subnets`` (10)
fixed random subnets (the same archs for every run, see
``a2d_evo.train.supernet_stage.score_subnets``).

    python benchmarks/score_subnets.py runs/demo

Prints one line per subnet and ends with a ``RESULT`` line (worst and mean return).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from a2d_evo.runs.folder import RunFolder
from a2d_evo.train.supernet_stage import score_subnets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="run folder with supernet/weights.pt")
    parser.add_argument("--subnets", type=int, default=10, help="fixed random subnets")
    parser.add_argument("--episodes", type=int, default=20, help="greedy episodes per subnet")
    args = parser.parse_args()
    run = RunFolder(args.run_dir)
    cfg = run.load_config()
    t0 = time.perf_counter()
    rows = score_subnets(cfg, run.supernet_weights, n_random=args.subnets, episodes=args.episodes)
    for r in rows:
        print(
            f"{r['role']:8s} {r['arch']:24s} {r['return_mean']:8.1f} +- {r['return_std']:5.1f} "
            f"(worst episode {r['return_min']:.0f})"
        )
    means = np.array([r["return_mean"] for r in rows])
    print(
        f"RESULT score_subnets {cfg.env.id}: {len(rows)} subnets, worst {means.min():.1f}, "
        f"mean {means.mean():.1f}, {args.episodes} episodes each ({time.perf_counter() - t0:.0f} s)"
    )


if __name__ == "__main__":
    main()
