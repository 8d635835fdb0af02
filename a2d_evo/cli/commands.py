"""The subcommands' handlers: each reads its arguments, finds its config (:mod:`.configs`)
and makes one library call, loaded only when the command runs so that ``--help`` stays
torch-free."""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from a2d_evo.cli.configs import (
    config_for_new_run,
    config_of_agent,
    config_of_run,
    packaged_config,
    set_keys,
    user_config,
)
from a2d_evo.config import MAX_EPISODES, MAX_TOTAL_STEPS, check_count
from a2d_evo.errors import ConfigError
from a2d_evo.runs.folder import RunFolder
from a2d_evo.runs.teacher import teacher_scores


def cmd_train_teacher(args: argparse.Namespace) -> int:
    """``a2d-evo train-teacher``: PPO on the env into ``RUN_DIR/teacher/``."""
    cfg, run = config_for_new_run(args)
    from a2d_evo.train import train_teacher  # here: --help stays torch-free

    folder = train_teacher(cfg, run, resume=args.resume, progress=not args.quiet)
    if _rank0():
        print(f"teacher agent: {folder}{teacher_scores(folder)}")
    return 0


def _rank0() -> bool:
    """Whether this process prints a training command's result: under torchrun, rank 0 alone
    (as it alone writes and shows the bar)."""
    return os.environ.get("RANK", "0") == "0"


def cmd_import_teacher(args: argparse.Namespace) -> int:
    """``a2d-evo import-teacher``: an SB3 or CleanRL checkpoint as the run's teacher."""
    cfg, run = config_for_new_run(args)
    from a2d_evo.train import import_teacher  # here: --help stays torch-free

    folder = import_teacher(Path(args.source), cfg, run, fmt=args.format)
    print(f"teacher agent: {folder}{teacher_scores(folder)}")
    return 0


def cmd_train_supernet(args: argparse.Namespace) -> int:
    """``a2d-evo train-supernet``: the supernet, distilled from the teacher."""
    cfg, run = config_for_new_run(args)
    from a2d_evo.train import train_supernet  # here: --help stays torch-free

    teacher = Path(args.teacher) if args.teacher else None
    weights = train_supernet(
        cfg, run, teacher_dir=teacher, resume=args.resume, progress=not args.quiet
    )
    if _rank0():
        print(f"supernet weights: {weights}")
    return 0


def cmd_evolve(args: argparse.Namespace) -> int:
    """``a2d-evo evolve``: NSGA-II over the supernet's subnets into ``RUN_DIR/search/``."""
    extra = [
        f"search.{k}={v}"
        for k, v in (
            ("pop", args.pop),
            ("gens", args.gens),
            ("episodes", args.episodes),
            ("budget_steps", args.budget_steps),
        )
        if v is not None
    ]
    if args.ray is not None:
        # without ADDRESS (or with "local"): a local Ray, whatever address the config names
        address = "null" if args.ray == "local" else args.ray
        extra += ["search.backend=ray", f"search.ray_address={address}"]
    cfg, run = config_for_new_run(args, extra)
    from a2d_evo.search.evolution import evolve  # here: --help stays torch-free

    front = evolve(cfg, run, resume=args.resume, progress=not args.quiet)
    print(f"front: {front}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """``a2d-evo export``: front members as agent folders, fine-tuned; the delivered front."""
    from a2d_evo.report.front_export import export_front  # here: --help stays torch-free

    run = RunFolder(args.run_dir)
    if args.finetune is not None:
        check_count("--finetune", args.finetune, 0, MAX_TOTAL_STEPS)
    cfg = config_of_run(run, args, after="search")
    folders = export_front(
        cfg,
        run,
        pick=args.pick,
        max_flops=args.max_flops,
        min_return=args.min_return,
        finetune_steps=args.finetune,
        progress=not args.quiet,
    )
    for folder in folders:
        print(f"agent: {folder}")
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    """``a2d-evo finetune``: one agent folder fine-tuned with PPO + distillation."""
    from a2d_evo.train import finetune_agent  # here: --help stays torch-free

    agent_dir = Path(args.agent_dir)
    check_count("--steps", args.steps, 1, MAX_TOTAL_STEPS)
    cfg = config_of_agent(agent_dir, args)
    teacher = Path(args.teacher) if args.teacher else None
    result = finetune_agent(
        agent_dir, cfg, steps=args.steps, teacher_dir=teacher, progress=not args.quiet
    )
    before, after = result["before"], result["after"]
    print(f"return before {before['return_mean']:.2f} -> after {after['return_mean']:.2f}")
    if (val := result["finetune_validation"]) is not None:
        print(
            f"validation ({val['episodes']} episodes): {val['before']:.2f} before, "
            f"{val['after']:.2f} fine-tuned: kept the {val['kept']} weights"
        )
    return 0


EVAL_READS = ("env", "eval", "seed", "device")
"""The config sections and keys ``eval`` reads: a ``--set`` of any other one is said to do
nothing (``--set ppo.lr=5`` was taken without a word)."""


def cmd_eval(args: argparse.Namespace) -> int:
    """``a2d-evo eval``: an agent folder scored on fresh episodes (``eval.json``)."""
    from a2d_evo.evaluation.scoring import eval_agent_folder  # here: --help stays torch-free

    agent_dir = Path(args.agent_dir)
    if args.episodes is not None:
        check_count("--episodes", args.episodes, 1, MAX_EPISODES)
    cfg = config_of_agent(agent_dir, args, env_variant=True)  # eval.json records the env played
    if unused := [key for key in set_keys(args) if key.split(".")[0] not in EVAL_READS]:
        print(
            f"eval: note: --set {', '.join(unused)} changes nothing here (eval reads only "
            f"{', '.join(EVAL_READS)})",
            file=sys.stderr,
        )
    summary = eval_agent_folder(
        agent_dir,
        cfg,
        episodes=cfg.eval.episodes if args.episodes is None else args.episodes,
        seed=args.seed,
        mode="sample" if args.sample else cfg.eval.mode,
    )
    print(summary)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """``a2d-evo report``: ``RUN_DIR/report/`` (``report.md`` and the plots)."""
    from a2d_evo.report.markdown import write_report  # here: --help stays torch-free

    run = RunFolder(args.run_dir)
    path = write_report(config_of_run(run, args, builds_env=False), run)
    print(f"report: {path}")
    return 0


def cmd_baselines(args: argparse.Namespace) -> int:
    """``a2d-evo baselines``: the hand-scaled baselines at each width."""
    from a2d_evo.train import train_baselines  # here: --help stays torch-free

    run = RunFolder(args.run_dir)
    why = (
        "the baselines' budgets are the run's own (ppo: the teacher's steps; distill and a2d: "
        "the supernet's plus the delivered front's fine-tune), so that each gets what the "
        "searched agents had; they cannot be changed here"
    )
    budgets = ("teacher.total_steps", "supernet.total_steps", "finetune.steps")
    cfg = config_of_run(run, args, after="search", keeps=dict.fromkeys(budgets, why))
    try:
        widths = [float(w) for w in args.widths.split(",") if w.strip()]
    except ValueError:
        widths = [math.nan]
    if not all(math.isfinite(w) and w > 0 for w in widths):
        raise ConfigError(
            f"--widths: expected positive numbers like 0.25,0.5,1, got {args.widths!r}"
        )
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    baselines = train_baselines(
        cfg, run, widths=widths, methods=methods, resume=args.resume, progress=not args.quiet
    )
    for folder in baselines:
        print(f"baseline: {folder}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """``a2d-evo demo``: every stage in turn on the embedded default config."""
    from a2d_evo.demo import run_demo  # here: --help stays torch-free

    config = Path(args.config) if args.config else packaged_config("lunarlander_demo.yaml")
    cfg = user_config(config, args)
    out = Path(args.out) if args.out else Path("runs") / "demo"
    run_demo(cfg, RunFolder(out), resume=args.resume, progress=not args.quiet)
    return 0
