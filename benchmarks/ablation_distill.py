"""The A2D ablation: which distillation terms (and which sampling rule) make every subnet play.

Arms, each a supernet trained with the config's budget from ONE teacher (trained once with
``--teacher-seed``, or passed with ``--teacher``):

* ``none``: vanilla one-shot (alpha = beta = 0), ``actor``: beta = 0, ``critic``: alpha = 0,
  ``both``: the config's alpha and beta (the A2D mechanism);
* ``uniform``: ``both`` with ``supernet.sampling=uniform`` (the sampling rule's control arm).

Every supernet is scored with inherited weights, greedy, on the same episodes: 50 fixed archs
stratified by FLOPs (10 per fifth of the space's log10-FLOPs range: five bins of equal width,
not of equal count, so not quintiles in the strict sense; at least 5 narrow-after-narrow,
drawn with ``--arch-seed``), plus the smallest and the largest subnet. Per arm and seed it
reports the mean, std and worst over the 50, and the smallest and largest.

    python benchmarks/ablation_distill.py --config configs/acrobot.yaml --out runs/abl_ac
    python benchmarks/ablation_distill.py --config configs/lunarlander.yaml --out runs/abl_ll

Reporting seeds 100-102 by default (tune on 0-2 with ``--seeds 0,1,2 --teacher-seed 0``; a
mix of the two is refused). The table and ``RESULT`` lines average the ``--seeds`` given only,
whatever else ``OUT/ablation.json`` holds. Resumable: a
finished (arm, seed) is read back from ``OUT/ablation.json``, an interrupted supernet
continues from its checkpoint. ``--arm NAME=KEY=V;KEY=V`` adds an arm of overrides (tuning).
Prints a Markdown table and one ``RESULT`` line per arm.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from a2d_evo.config import Config, load_config
from a2d_evo.config.compare import config_diff
from a2d_evo.envs import env_spec
from a2d_evo.evaluation.population import evaluate_population
from a2d_evo.evaluation.seeds import fresh_eval_seed
from a2d_evo.nets.cost import flops
from a2d_evo.nets.space import SearchSpace
from a2d_evo.nets.supernet import load_supernet
from a2d_evo.runs.files import read_json, write_json
from a2d_evo.runs.folder import RunFolder
from a2d_evo.train import train_supernet, train_teacher
from a2d_evo.train.sampling import narrow_after_narrow, stratified_archs

ARMS: dict[str, list[str]] = {
    "none": ["distill.alpha=0", "distill.beta=0"],
    "actor": ["distill.beta=0"],
    "critic": ["distill.alpha=0"],
    "both": [],
    "uniform": ["supernet.sampling=uniform"],
}


SUPERNET_SECTIONS = ("env", "space", "ppo", "supernet", "distill")
"""What a supernet of an arm is: a folder trained with other values is not this arm's."""


def _same_run(
    parser: argparse.ArgumentParser, root: Path, cfg: Config, sections: tuple[str, ...], stage: str
) -> None:
    """Exit with a message unless ``root``'s ``stage`` ran with ``cfg``'s seed and
    ``sections`` (or has not run yet)."""
    saved = RunFolder(root).stage_config(stage)
    if saved is None:
        return
    moved = config_diff(saved, cfg, sections) + (["seed"] if saved.seed != cfg.seed else [])
    if moved:
        parser.error(
            f"{root / stage} was trained with other settings ({', '.join(moved)}); this "
            "command would report it as its own: use another --out"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--out", required=True, help="folder of the runs (one per seed/arm)")
    parser.add_argument("--seeds", default="100,101,102")
    parser.add_argument("--arms", default="none,actor,critic,both,uniform")
    parser.add_argument("--arm", action="append", default=[], help="NAME=KEY=V;KEY=V")
    parser.add_argument(
        "--per-quintile", type=int, default=10, help="fixed archs per fifth of the log-FLOPs range"
    )
    parser.add_argument("--episodes", type=int, default=10, help="greedy episodes per arch")
    parser.add_argument("--arch-seed", type=int, default=12345)
    parser.add_argument("--teacher-seed", type=int, default=100)
    parser.add_argument("--teacher", help="teacher agent folder (default: train one)")
    parser.add_argument("--set", action="append", default=[], help="config override")
    args = parser.parse_args()
    arms = {name: ARMS[name] for name in args.arms.split(",") if name}
    for item in args.arm:
        name, _, text = item.partition("=")
        arms[name] = [o for o in text.split(";") if o]
    out = Path(args.out)
    seeds = [int(s) for s in args.seeds.split(",")]
    # tuning seeds (below 100) and reporting seeds never share a run: the teacher's seed also
    # draws the evaluation episodes, so it must be of the same kind as the supernets' seeds
    kinds = {s < 100 for s in [*seeds, args.teacher_seed]}
    if len(kinds) > 1:
        parser.error(
            f"--seeds {args.seeds} with --teacher-seed {args.teacher_seed} mixes tuning seeds "
            "(below 100) with reporting seeds: tune with --seeds 0,1,2 --teacher-seed 0"
        )
    base = load_config(args.config, [*args.set, f"seed={args.teacher_seed}"])
    teacher = Path(args.teacher) if args.teacher else out / "teacher" / "teacher" / "agent"
    if not args.teacher and (out / "teacher" / "config.yaml").is_file():
        # a teacher this --out holds from another run of the script: another seed (a tuning
        # teacher under reporting seeds) or other settings would go on silently
        _same_run(parser, out / "teacher", base, ("env", "space", "ppo", "teacher"), "teacher")
    if not (teacher / "arch.json").is_file():
        t0 = time.perf_counter()
        trun = RunFolder(out / "teacher")
        ckpt = trun.root / "teacher" / "checkpoint.pt"
        train_teacher(base, trun, resume=ckpt.is_file(), progress=False)
        print(f"teacher trained in {time.perf_counter() - t0:.0f} s: {teacher}", flush=True)

    spec = env_spec(base.env)
    space = SearchSpace(base.space)
    fixed = stratified_archs(space, spec.obs_shape, spec.n_actions, args.per_quintile,
                             np.random.default_rng(args.arch_seed), min_narrow=5)  # fmt: skip
    archs = [space.smallest(), space.largest(), *fixed]
    eval_seeds = [fresh_eval_seed(args.teacher_seed) + i for i in range(args.episodes)]
    store = out / "ablation.json"
    done: dict[str, Any] = read_json(store, "ablation") if store.is_file() else {}
    scored = {"episodes": args.episodes, "arch_seed": args.arch_seed,
              "per_quintile": args.per_quintile, "teacher_seed": args.teacher_seed,
              "teacher": str(teacher)}  # fmt: skip
    for seed in seeds:
        for arm, extra in arms.items():
            key = f"{arm}-s{seed}"
            cfg = load_config(args.config, [*args.set, f"seed={seed}", *extra])
            if key in done:  # kept only when it was made as this command would make it
                if done[key].get("scored") != scored:
                    parser.error(
                        f"{store}: {key} was scored with {done[key].get('scored')} (none "
                        f"recorded before 2026-12-06), not {scored}; use another --out"
                    )
                _same_run(parser, out / key, cfg, SUPERNET_SECTIONS, "supernet")
                continue
            run = RunFolder(out / key)
            t0 = time.perf_counter()
            if run.supernet_weights.is_file():
                _same_run(parser, run.root, cfg, SUPERNET_SECTIONS, "supernet")
            else:
                resume = (run.supernet / "checkpoint.pt").is_file()
                train_supernet(cfg, run, teacher_dir=teacher, resume=resume, progress=False)
            wall = time.perf_counter() - t0
            net = load_supernet(cfg, run.supernet_weights).eval()
            res = evaluate_population(net, archs, base, args.episodes, eval_seeds)
            means = [r.mean for r in res]
            entry = {
                "arm": arm, "seed": seed, "overrides": extra, "scored": scored,
                "train_wall_s": round(wall, 1),
                "smallest": means[0], "largest": means[1],
                "mean": float(np.mean(means[2:])), "std": float(np.std(means[2:])),
                "worst": float(np.min(means[2:])),
                "narrow_mean": float(np.mean([m for a, m in zip(fixed, means[2:], strict=True)
                                              if narrow_after_narrow(a, space)])),
                "rows": [{"arch": str(a), "flops": flops(a, spec.obs_shape, spec.n_actions),
                          "return_mean": m} for a, m in zip(archs, means, strict=True)],
            }  # fmt: skip
            done[key] = entry
            write_json(store, done)
            print(
                f"{arm:8s} seed {seed}: mean {entry['mean']:.1f} +- {entry['std']:.1f}, worst "
                f"{entry['worst']:.1f}, smallest {entry['smallest']:.1f}, largest "
                f"{entry['largest']:.1f}, narrow {entry['narrow_mean']:.1f} ({wall:.0f} s)",
                flush=True,
            )
    print(f"\n{args.config}: {len(fixed)} fixed archs, {args.episodes} episodes each, "
          f"seeds {args.seeds}, teacher seed {args.teacher_seed}\n")  # fmt: skip
    print("| arm | mean | std | worst | narrow | smallest | largest |")
    print("|---|---|---|---|---|---|---|")
    for arm in arms:
        rows = [e for e in done.values() if e["arm"] == arm and e["seed"] in seeds]
        if not rows:
            continue
        cells = [
            f"{np.mean([e[f] for e in rows]):.1f} ({'/'.join(f'{e[f]:.0f}' for e in rows)})"
            for f in ("mean", "std", "worst", "narrow_mean", "smallest", "largest")
        ]
        print(f"| {arm} | " + " | ".join(cells) + " |")
        print(f"RESULT arm={arm} " + " ".join(
            f"{f}={np.mean([e[f] for e in rows]):.2f}" for f in ("mean", "worst", "smallest")
        ), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
