"""Can the export's fine-tune lift the archs a search drops as below random?

For a finished run folder (a demo's), every arch the search evaluated that costs less than the
front's cheapest member and that no other such arch dominates on the search's mean return is
extracted from the supernet and fine-tuned exactly as ``export`` fine-tunes a member
(``finetune.steps`` of PPO + distillation, the validation gate), then scored on the front's
final seeds. The evidence for ``finetune.below_random`` (docs/training.md); run it on tuning
seeds only. One JSON line per arch, and ``OUT/result.json``::

    python benchmarks/below_random_finetune.py RUN_DIR OUT
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

from a2d_evo.evaluation.seeds import final_seeds
from a2d_evo.formats import non_dominated
from a2d_evo.nets.agent_folder import extract, save_agent
from a2d_evo.nets.space import SearchSpace
from a2d_evo.nets.supernet import load_supernet
from a2d_evo.runs.folder import RunFolder
from a2d_evo.train.finetune import finetune_agent


def cheaper_archs(run: RunFolder) -> list[dict[str, Any]]:
    """The archs below the front's cheapest member, non-dominated on the search's mean over
    all their episodes (``history.csv`` rows are per generation), cheapest first."""
    front = json.loads((run.search / "front.json").read_text())
    cheapest = min(m["flops"] for m in front["front"])
    seen: dict[str, dict[str, Any]] = {}
    with open(run.search / "history.csv", newline="") as f:
        for r in csv.DictReader(f):
            a = seen.setdefault(
                r["encoding"],
                {"encoding": r["encoding"], "arch": r["arch"], "flops": int(r["flops"]),
                 "total": 0.0, "episodes": 0},
            )  # fmt: skip
            a["total"] += float(r["return_mean"]) * int(r["episodes"])
            a["episodes"] += int(r["episodes"])
    cands = [a for a in seen.values() if a["flops"] < cheapest]
    keep = non_dominated([(a["flops"], a["total"] / a["episodes"]) for a in cands])
    return sorted((cands[i] for i in keep), key=lambda a: a["flops"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a finished run folder (teacher, supernet, search)")
    ap.add_argument("out", type=Path, help="where the fine-tuned agents and result.json go")
    args = ap.parse_args()
    run = RunFolder(args.run)
    cfg = run.load_config()
    front = json.loads((run.search / "front.json").read_text())
    norm = front["normalisation"]
    space = SearchSpace(cfg.space)
    supernet = load_supernet(cfg, run.supernet_weights)
    seeds = final_seeds(cfg.seed, cfg.search.final_episodes)
    rows = []
    for a in cheaper_archs(run):
        arch = space.decode([int(g) for g in a["encoding"].split()])
        folder = args.out / a["arch"]
        save_agent(extract(supernet, arch), folder, onnx=False)
        info = finetune_agent(
            folder, cfg, steps=cfg.finetune.steps, teacher_dir=run.teacher_agent,
            progress=False, eval_seed=seeds[0], eval_episodes=len(seeds),
        )  # fmt: skip
        after = info["after"]["return_mean"]
        row = {
            "arch": a["arch"],
            "flops": a["flops"],
            "search_return_mean": a["total"] / a["episodes"],
            "inherited_return_mean": info["before"]["return_mean"],
            "finetuned_return_mean": after,
            "finetuned_return_std": info["after"]["return_std"],
            "finetuned_normalised": (after - norm["r_random"])
            / (norm["r_teacher"] - norm["r_random"]),
            "validation": info["finetune_validation"],
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    result = {"run": str(args.run), "seed": cfg.seed, "finetune_steps": cfg.finetune.steps,
              "episodes": len(seeds), "r_random": norm["r_random"],
              "r_teacher": norm["r_teacher"], "archs": rows}  # fmt: skip
    (args.out / "result.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
