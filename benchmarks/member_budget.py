"""Delivered members given a baseline's own budget: is the gap training or architecture?

A diagnostic for issue [K]'s family table. In ``pipeline_compare.py`` a delivered member has
the supernet's S steps, shared with every subnet, and ``finetune.steps`` = B of its own, while
``a2d_x`` trains its one arch from scratch for S + B with the same loss. This script copies
the delivered members of one ``pipeline_compare`` seed folder, continues each one's
fine-tune (PPO + distillation from the run's teacher, the validation gate off) for
``--steps`` more, so that its own steps reach S + B, and scores it on the SAME fresh seeds as
``compare.json``, with the paired bound against every baseline at or above its FLOPs.

If the members then dominate the x0.25 baselines, the pipeline's gap is the fine-tune
budget (a config key); if not, the searched archs or their inherited weights are in the way.
Not the [J] / [K] rule's budget (with ``--steps`` = S a member here spends 2S + B, S of it
shared): a diagnosis only. Its own steps are S + B only where the delivery kept the fine-tuned
weights (``kept`` in the output; an inherited member has had S of its own here), and the extra
steps run as one more fine-tune (a fresh Adam from ``ppo.lr``, its own sigma), not as
``a2d_x``'s single schedule.

    python benchmarks/member_budget.py runs/cmpmast/s100 --out runs/member_budget_ast \\
        --steps 2000000 --members front_00,front_01,front_02

Resumable member by member (a member whose ``done.json`` exists is only re-scored).
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np

from a2d_evo.config import load_config
from a2d_evo.evaluation.episodes import evaluate_agent
from a2d_evo.formats import normalised_return
from a2d_evo.nets.agent_folder import load_agent
from a2d_evo.runs.files import read_json, write_json
from a2d_evo.runs.folder import RunFolder
from a2d_evo.stats import paired_lower95
from a2d_evo.train import finetune_agent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a pipeline_compare seed folder (with compare.json)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, required=True, help="more env steps per member")
    parser.add_argument("--members", required=True, help="comma-separated member names")
    args = parser.parse_args()
    run = RunFolder(Path(args.run))
    cmp = read_json(run.root / "compare.json", "compare")
    cfg = load_config(run.root / "config.yaml", [])
    seeds = cmp["seeds"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.members.split(","):
        folder = out / name
        if not (folder / "done.json").is_file():
            shutil.rmtree(folder, ignore_errors=True)
            shutil.copytree(run.agents / name, folder)
            t0 = time.perf_counter()
            finetune_agent(folder, cfg, steps=args.steps, teacher_dir=run.teacher_agent,
                           progress=False, validation_episodes=0)  # fmt: skip
            write_json(folder / "done.json", {"wall_s": time.perf_counter() - t0})
        res = evaluate_agent(load_agent(folder), cfg, len(seeds), seeds[0], "greedy")
        norm = normalised_return(np.asarray(res.returns), cmp["r_random"], cmp["r_teacher"])
        before = next(m for m in cmp["members"] if m["name"] == name)
        gate = read_json(run.agents / name / "metrics.json", "metrics").get("finetune_validation")
        kept = gate.get("kept") if isinstance(gate, dict) else None
        flops = read_json(folder / "metrics.json", "metrics")["flops"]
        wall = read_json(folder / "done.json", "done")["wall_s"]
        row = {"member": name, "flops": flops, "normalised_before": before["normalised"],
               "normalised_after": float(norm.mean()), "episode_returns": list(res.returns),
               "wall_s": wall, "bounds": {},
               "kept_at_delivery": kept}  # fmt: skip
        for b in cmp["baselines"]:
            if b["flops"] >= flops:
                bn = normalised_return(
                    np.asarray(b["episode_returns"]), cmp["r_random"], cmp["r_teacher"]
                )
                row["bounds"][b["baseline"]] = paired_lower95(norm, bn)
        rows.append(row)
        bounds = ", ".join(f"{k} {v:+.3f}" for k, v in sorted(row["bounds"].items()))
        print(f"{name} ({flops:,} FLOPs, {100 * flops / cmp['teacher_flops']:.1f}% of the "
              f"teacher): normalised {row['normalised_before']:.3f} -> "
              f"{row['normalised_after']:.3f} after {args.steps:,} more steps "
              f"({row['wall_s']:.0f} s); paired lower 95% vs {bounds}", flush=True)  # fmt: skip
    write_json(out / "member_budget.json", {"run": str(run.root), "steps": args.steps,
                                            "seeds": seeds, "members": rows})  # fmt: skip


if __name__ == "__main__":
    main()
