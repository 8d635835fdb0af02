"""The A2D ablation: vanilla one-shot (alpha = beta = 0) vs distilled supernet, same budget.

For each seed, both variants train a supernet with the config's budget (the distilled one from
one teacher, trained once with the config's own seed or passed with ``--teacher``), then every
supernet is scored with inherited weights, greedy, on the same episodes: the smallest subnet
and ``--subnets`` fixed random subnets (the same archs for every supernet).

    python benchmarks/ablation_distill.py --config configs/cartpole.yaml --out runs/ablation_cp
    python benchmarks/ablation_distill.py --config configs/acrobot.yaml --out runs/ablation_ac

Prints a Markdown table (mean and std over seeds) and writes ``OUT/ablation.json``; ends with
one ``RESULT`` line per variant.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from a2d_evo.config import load_config
from a2d_evo.files import write_json
from a2d_evo.runfolder import RunFolder
from a2d_evo.train import train_supernet, train_teacher
from a2d_evo.train.supernet_stage import score_subnets

VARIANTS = {"distilled": [], "vanilla": ["distill.alpha=0", "distill.beta=0"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--out", required=True, help="folder of the runs (one per seed/variant)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--subnets", type=int, default=20, help="fixed random subnets")
    parser.add_argument("--episodes", type=int, default=10, help="greedy episodes per subnet")
    parser.add_argument("--teacher", help="teacher agent folder (default: train one)")
    parser.add_argument("--set", action="append", default=[], help="config override")
    args = parser.parse_args()
    out = Path(args.out)
    base = load_config(args.config, args.set)
    teacher = Path(args.teacher) if args.teacher else out / "teacher" / "teacher" / "agent"
    if not (teacher / "arch.json").is_file():
        t0 = time.perf_counter()
        train_teacher(base, RunFolder(out / "teacher"), progress=False)
        print(f"teacher trained in {time.perf_counter() - t0:.0f} s: {teacher}", flush=True)
    results: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    for seed in (int(s) for s in args.seeds.split(",")):
        for variant, extra in VARIANTS.items():
            cfg = load_config(args.config, [*args.set, f"seed={seed}", *extra])
            run = RunFolder(out / f"{variant}-s{seed}")
            t0 = time.perf_counter()
            if not run.supernet_weights.is_file():
                train_supernet(cfg, run, teacher_dir=teacher, progress=False)
            wall = time.perf_counter() - t0
            # the same episodes and archs for every supernet: eval seed from the base config
            rows = score_subnets(
                cfg, run.supernet_weights, n_random=args.subnets, episodes=args.episodes,
                seed=base.seed + 3_000_000,
            )  # fmt: skip
            rand = [r["return_mean"] for r in rows if r["role"] == "random"]
            entry = {
                "seed": seed,
                "train_wall_s": round(wall, 1),
                "largest": rows[0]["return_mean"],
                "smallest": rows[1]["return_mean"],
                "random_mean": float(np.mean(rand)),
                "random_std": float(np.std(rand)),
                "random_min": float(np.min(rand)),
                "rows": rows,
            }
            results[variant].append(entry)
            print(
                f"{variant:9s} seed {seed}: largest {entry['largest']:.1f}, smallest "
                f"{entry['smallest']:.1f}, {len(rand)} random {entry['random_mean']:.1f} "
                f"+- {entry['random_std']:.1f} (min {entry['random_min']:.1f}), {wall:.0f} s",
                flush=True,
            )
    write_json(out / "ablation.json", {"config": args.config, "results": results})
    print(f"\n| {base.env.id} | smallest subnet | {args.subnets} random subnets: mean | std across "
          "subnets | worst subnet | largest |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- |")
    for variant, entries in results.items():

        def cell(key: str, entries: list[dict[str, Any]] = entries) -> str:
            vals = [e[key] for e in entries]
            return f"{np.mean(vals):.1f} ± {np.std(vals):.1f}"

        print(
            f"| {variant} | {cell('smallest')} | {cell('random_mean')} | {cell('random_std')} | "
            f"{cell('random_min')} | {cell('largest')} |"
        )
    for variant, entries in results.items():
        print(
            f"RESULT ablation {base.env.id} {variant}: {args.subnets} random subnets "
            f"{np.mean([e['random_mean'] for e in entries]):.1f}, smallest "
            f"{np.mean([e['smallest'] for e in entries]):.1f} (mean over {len(entries)} seeds)"
        )


if __name__ == "__main__":
    main()
