"""The ``a2d-evo`` command line: thin, every subcommand is one library call.

Errors a user can cause (:class:`a2d_evo.errors.A2DError`) print one line and exit 2;
an interrupted command exits 130 after its stage has checkpointed.
"""

from __future__ import annotations

import os

# OpenMP threads (torch's and our kernels', one libgomp) spin at barriers by default; when env
# workers or another process hold a core, a 2-thread kernel call then waits whole scheduler
# slices (measured: 10-15 ms instead of tens of microseconds). Sleeping waits cost little.
# Set before anything imports torch; a user's own OMP_WAIT_POLICY wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import math
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from a2d_evo import __version__
from a2d_evo.config import (
    MAX_EPISODES,
    MAX_TOTAL_STEPS,
    Config,
    check_count,
    config_from_dict,
    config_from_file,
    config_to_dict,
    read_config_file,
    replace,
)
from a2d_evo.config.compare import config_diff, setting
from a2d_evo.errors import A2DError, ConfigError, Interrupted, RunFolderError
from a2d_evo.files import MAX_ARCH_JSON_BYTES, read_json
from a2d_evo.formats import BASELINE_METHODS
from a2d_evo.runfolder import FIXED_SECTIONS, RUN_PARTS, RunFolder, enclosing_run

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

Handler = Callable[[argparse.Namespace], int]


# ----------------------------------------------------------------------------- config
def packaged_config(name: str) -> Path:
    """A shipped config: the source checkout's, else the installed copy; never one found in
    the current folder, which the user did not name (its ``env.imports`` would run unchecked).

    An editable install imports the package from its checkout, whose ``configs/`` is current;
    the copy installed next to the native module is only as fresh as the last build.
    """
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file() and (checkout / "configs" / name).is_file():
        return checkout / "configs" / name
    from a2d_evo import _C  # only here: a checkout without a build still runs the CLI

    installed = Path(_C.__file__).parent / "configs" / name
    if installed.is_file():
        return installed
    raise ConfigError(
        f"shipped config {name!r} not found (looked in {checkout / 'configs'} and "
        f"{installed.parent})"
    )


def common_overrides(args: argparse.Namespace) -> list[str]:
    """``--set`` items plus the ``--seed``/``--device`` shortcuts, as overrides."""
    items = list(getattr(args, "set", None) or [])
    if getattr(args, "seed", None) is not None:
        items.append(f"seed={args.seed}")
    if getattr(args, "device", None) is not None:
        items.append(f"device={args.device}")
    return items


def with_env_imports(cfg: Config, args: argparse.Namespace) -> Config:
    """``cfg`` with this command's ``--env-import`` items added to ``env.imports``.

    The user names them on the command line, so they run (see :mod:`a2d_evo.envs.imports`)."""
    given = [s for s in (getattr(args, "env_import", None) or []) if s not in cfg.env.imports]
    if not given:
        return cfg
    return replace(cfg, env=replace(cfg.env, imports=(*cfg.env.imports, *given)))


def user_config(path: str | Path, args: argparse.Namespace, extra: Sequence[str] = ()) -> Config:
    """The user's own ``--config`` with overrides and ``--env-import``: its imports run.

    A config a2d-evo wrote (it carries ``format_version``: a run's ``config.yaml``, which
    messages and reports name in the commands they suggest) may come from someone else's run
    folder, so its recorded imports are checked as any run folder's are; so are those of any
    ``config.yaml`` that sits where a2d-evo writes them (a run folder or one of its stages),
    since a received file need not keep its ``format_version``."""
    return _read_user_config(path, args, extra)[0]


def _read_user_config(
    path: str | Path, args: argparse.Namespace, extra: Sequence[str] = ()
) -> tuple[Config, bool]:
    """:func:`user_config`, and whether the file carries ``format_version`` (a2d-evo wrote
    it); the file is read once, so both come from the same bytes."""
    raw = read_config_file(path)
    written = isinstance(raw, dict) and "format_version" in raw
    recorded = written or _in_a_run_folder(Path(path))
    # a user's own file: a full listing of env still counts as a copied record
    overrides = [*common_overrides(args), *extra]
    cfg = config_from_file(raw, overrides, str(path), recorded=recorded or None)
    if recorded:
        saved = config_from_file(raw, [], str(path), recorded=True)
        return checked_file_config(cfg, saved, args, str(path)), written
    return with_env_imports(cfg, args), written


def _in_a_run_folder(path: Path) -> bool:
    """True for a ``config.yaml`` in a folder that holds a run's parts, or in one of those
    parts: ``RUN_DIR/config.yaml`` and ``RUN_DIR/<stage>/config.yaml``. On the safe side: a
    user's own ``config.yaml`` beside a folder named like a run part is checked too (its
    imports then need ``--env-import``, which the refusal names)."""
    if path.name != "config.yaml":
        return False
    folder = path.resolve().parent
    roots = [folder, folder.parent] if folder.name in RUN_PARTS else [folder]
    return any((root / part).is_dir() for root in roots for part in RUN_PARTS)


def checked_file_config(
    cfg: Config, recorded: Config, args: argparse.Namespace, where: str
) -> Config:
    """``cfg`` (``recorded``, read from ``where``, plus overrides) once every import ``where``
    records is allow-listed or given again with ``--env-import``; then ``--env-import`` added."""
    from a2d_evo.envs.imports import check_recorded_imports  # here: --help stays torch-free

    from_file = [s for s in cfg.env.imports if s in recorded.env.imports]
    check_recorded_imports(from_file, getattr(args, "env_import", None) or [], where)
    return with_env_imports(cfg, args)


def config_for_new_run(
    args: argparse.Namespace, extra: Sequence[str] = ()
) -> tuple[Config, RunFolder]:
    """Config from ``--config`` + overrides, and the run folder (``--out`` or runs/<stem>).

    A conflict with the run's ``config.yaml`` is refused here, before torch loads; nothing
    is written: the stage binds the run once its own checks (env, device, teacher) passed.
    """
    cfg, written = _read_user_config(args.config, args, extra)
    given = Path(args.config)
    if not args.out and written and _in_a_run_folder(given):
        # runs/config would be a new run that "run train-teacher first" then sent elsewhere
        folder = given.resolve().parent
        root = folder.parent if folder.name in RUN_PARTS else folder
        raise RunFolderError(
            f"{given} is a run folder's own config, and without --out a new run would go to "
            f"runs/config; pass --out {shlex.quote(str(root))} to go on with "
            "that run (its stages resume with --resume), or --out NEW_DIR for a new run from it"
        )
    out = Path(args.out) if args.out else Path("runs") / given.stem
    run = RunFolder(out)
    run.check(cfg)
    return cfg, run


def config_of_run(
    run: RunFolder,
    args: argparse.Namespace,
    extra: Sequence[str] = (),
    *,
    builds_env: bool = True,
    after: str | None = None,
    env_variant: bool = False,
    keeps: Mapping[str, str] | None = None,
) -> Config:
    """The run's saved config with this command's overrides on top.

    Overrides of the run's env or space are refused (the run's agents are of that env), but
    for ``env_variant`` (``eval``): one agent may play a variant of its env (another
    ``max_episode_steps``, no sticky actions), though not another env id or space. So are
    overrides that change a dotted key of ``keeps`` (key -> why the command keeps the run's
    value) and, but for ``env_variant``, ``eval.num_envs`` (R_random depends on it).

    ``after="search"`` (``export``, ``baselines``): the config the search ran with
    (``RUN_DIR/search/config.yaml``) when there is one, so that every agent is scored on the
    front's own final seeds (root seed and ``search.final_episodes``) even when ``evolve`` was
    given another config than the training stages. ``builds_env=False`` (``report``): the
    command builds no env, so the run's recorded imports never run and need no
    ``--env-import``."""
    saved, path = run.load_config(), run.config_path
    if after is not None and (staged := run.stage_config(after)) is not None:
        saved, path = staged, run.stage(after) / "config.yaml"
    overrides = [*common_overrides(args), *extra]
    cfg = saved
    if overrides:
        cfg = config_from_dict(config_to_dict(saved), overrides, source=str(path))
        fixed = config_diff(saved, cfg, FIXED_SECTIONS)
        if env_variant:
            fixed = [k for k in fixed if k == "env.id" or k.startswith("space.")]
        if fixed:  # said as the user's override, not as "a front of another run"
            raise ConfigError(
                f"--set {', '.join(fixed)}: "
                + (
                    f"the env and the space are what {run.root}'s agents are"
                    if env_variant
                    else "this command writes figures of the run, which were all measured on "
                    "its own env"
                )
                + "; it cannot change them here (`eval` may play a variant of the env; train "
                "a new run with --out for another)"
            )
        kept = dict(keeps or {})
        if not env_variant:
            kept["eval.num_envs"] = (
                f"{run.root}'s figures were measured with {saved.eval.num_envs} env slots per "
                "wave, and the random policy's returns (R_random, which every normalised return "
                "divides by) depend on how its episodes are batched; this command writes "
                "figures of the run, so it keeps the run's value (`eval` may change it)"
            )
        moved = [k for k, why in kept.items() if setting(saved, k) != setting(cfg, k)]
        if moved:  # by value: an override that sets the run's own value changes nothing
            raise ConfigError(f"--set {', '.join(moved)}: {kept[moved[0]]}")
    if not builds_env:
        return cfg
    return checked_file_config(cfg, saved, args, str(path))


def check_agent_folder(agent_dir: Path) -> None:
    """RunFolderError naming the agent folders to pass when ``agent_dir`` is a run folder or
    a folder of agents (``RUN_DIR/agents``) rather than one agent."""
    if (agent_dir / "arch.json").is_file():
        return
    inside = [agent_dir / "agents", agent_dir] if RunFolder(agent_dir).exists() else [agent_dir]
    found = [p.parent for folder in inside for p in sorted(folder.glob("*/arch.json"))]
    if (agent_dir / "teacher" / "agent" / "arch.json").is_file():
        found.append(agent_dir / "teacher" / "agent")
    if found:
        names = ", ".join(str(p) for p in found[:4]) + (", ..." if len(found) > 4 else "")
        raise RunFolderError(
            f"{agent_dir} is not an agent folder (no arch.json); it holds agents: pass one of "
            f"them, e.g. {names}"
        )


def config_of_agent(
    agent_dir: Path, args: argparse.Namespace, *, env_variant: bool = False
) -> Config:
    """Config of the run an agent folder lives in (``RUN_DIR/agents/<name>``), or one built
    from the env recorded in its ``arch.json`` (a file of whoever shared the folder: its env
    id never imports anything, and its imports run only as :func:`checked_file_config` says)."""
    check_agent_folder(agent_dir)
    run = enclosing_run(agent_dir)
    if run is not None:
        return config_of_run(run, args, env_variant=env_variant)

    path = agent_dir / "arch.json"
    meta = read_json(path, "agent file", max_bytes=MAX_ARCH_JSON_BYTES)
    env = meta.get("env") if isinstance(meta, dict) else None
    if not isinstance(env, dict) or not env.get("id"):
        raise ConfigError(f"{agent_dir}/arch.json names no env; run eval inside its run folder")
    kind = "cnn" if str(env.get("id", "")).startswith("ALE/") else "mlp"
    data = {"env": env, "space": {"kind": kind}}
    recorded = config_from_dict(data, source=str(path))
    cfg = config_from_dict(data, common_overrides(args), source=str(path))
    return checked_file_config(cfg, recorded, args, str(path))


# ----------------------------------------------------------------------------- handlers
def cmd_train_teacher(args: argparse.Namespace) -> int:
    cfg, run = config_for_new_run(args)
    from a2d_evo.train import train_teacher  # here: --help stays torch-free

    folder = train_teacher(cfg, run, resume=args.resume, progress=not args.quiet)
    if _rank0():
        print(f"teacher agent: {folder}{_teacher_scores(folder)}")
    return 0


def _rank0() -> bool:
    """Whether this process prints a training command's result: under torchrun, rank 0 alone
    (as it alone writes and shows the bar)."""
    return os.environ.get("RANK", "0") == "0"


def _teacher_scores(folder: Path) -> str:
    """`` (greedy return R over N episodes; the uniform-random policy: R')`` from the teacher's
    ``metrics.json``, or "" when it records none."""
    m = read_json(folder / "metrics.json", "teacher metrics")
    mean, rand, n = m.get("return_mean"), m.get("random_return_mean"), m.get("episodes")
    if not isinstance(mean, float | int) or not isinstance(rand, float | int):
        return ""
    return f" (greedy return {mean:.2f} over {n} episodes; the uniform-random policy: {rand:.2f})"


def cmd_import_teacher(args: argparse.Namespace) -> int:
    cfg, run = config_for_new_run(args)
    from a2d_evo.train import import_teacher  # here: --help stays torch-free

    folder = import_teacher(Path(args.source), cfg, run, fmt=args.format)
    print(f"teacher agent: {folder}{_teacher_scores(folder)}")
    return 0


def cmd_train_supernet(args: argparse.Namespace) -> int:
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
    from a2d_evo.report.pick import export_front  # here: --help stays torch-free

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


def cmd_eval(args: argparse.Namespace) -> int:
    from a2d_evo.evaluation.scoring import eval_agent_folder  # here: --help stays torch-free

    agent_dir = Path(args.agent_dir)
    if args.episodes is not None:
        check_count("--episodes", args.episodes, 1, MAX_EPISODES)
    cfg = config_of_agent(agent_dir, args, env_variant=True)  # eval.json records the env played
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
    from a2d_evo.report.markdown import write_report  # here: --help stays torch-free

    run = RunFolder(args.run_dir)
    path = write_report(config_of_run(run, args, builds_env=False), run)
    print(f"report: {path}")
    return 0


def cmd_baselines(args: argparse.Namespace) -> int:
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
    from a2d_evo.demo import run_demo  # here: --help stays torch-free

    config = Path(args.config) if args.config else packaged_config("lunarlander_demo.yaml")
    cfg = user_config(config, args)
    out = Path(args.out) if args.out else Path("runs") / "demo"
    run_demo(cfg, RunFolder(out), resume=args.resume, progress=not args.quiet)
    return 0


# ----------------------------------------------------------------------------- parser
NO_BAR = "accepted for scripts; this command shows no progress bar"
RUN_SEED = (
    "the run's root seed, the only one taken: every agent is scored on the front's own final "
    "seeds (the default)"
)


def _common(
    p: argparse.ArgumentParser,
    *,
    seed_help: str = "override the config's root seed",
    overrides: bool = True,
    quiet_help: str = "no progress bar",
) -> None:
    """The options every command takes; ``overrides=False`` (``report``, which describes the
    run as it ran and builds no env): no ``--set``, ``--seed``, ``--device`` or
    ``--env-import``."""
    if overrides:
        p.add_argument(
            "--set",
            action="append",
            metavar="KEY=VALUE",
            help="override a config field, e.g. --set ppo.lr=1e-4 (repeatable; converted to the "
            "field's declared type, never evaluated)",
        )
        p.add_argument("--seed", type=int, help=seed_help)
        p.add_argument(
            "--device", choices=("cpu", "cuda", "auto"), help="torch device (default: the config's)"
        )
    if not overrides:
        p.add_argument("--quiet", action="store_true", help=quiet_help)
        return
    p.add_argument(
        "--env-import",
        action="append",
        dest="env_import",
        metavar="MODULE[:FUNCTION]",
        help="import MODULE (and call FUNCTION) to register a third-party env, e.g. "
        "minatar.gym:register_envs (repeatable); needed for an import a run or agent folder "
        "records unless it is on a2d-evo's allow-list",
    )
    p.add_argument("--quiet", action="store_true", help=quiet_help)


def _new_run(p: argparse.ArgumentParser, resume: bool = True) -> None:
    p.add_argument("--config", required=True, help="YAML config, e.g. configs/cartpole.yaml")
    p.add_argument("--out", help="run folder (default: runs/<config file stem>)")
    if resume:
        p.add_argument(
            "--resume", action="store_true", help="continue from this stage's last checkpoint"
        )


class _Once(argparse.Action):
    """``store`` that refuses a second value: ``export --pick 0 --pick 1`` would export 1
    alone (argparse keeps the last), and export replaces what it writes."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        seen: dict[str, Any] = namespace.__dict__.setdefault("_given_once", {})
        if self.dest in seen:
            parser.error(
                f"{option_string} given twice ({seen[self.dest]}, then {values}): it takes one "
                "value; run the command once per value"
            )
        seen[self.dest] = values
        setattr(namespace, self.dest, values)


class _Parser(argparse.ArgumentParser):
    """A parser whose value options take one value each (:class:`_Once`)."""

    def add_argument(self, *names: Any, **kwargs: Any) -> argparse.Action:
        if names and str(names[0]).startswith("-") and "action" not in kwargs:
            kwargs["action"] = _Once
        return super().add_argument(*names, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="a2d-evo",
        description="Find small, fast deep-RL agents: distil a teacher into a weight-sharing "
        "supernet, search its subnets with NSGA-II (return vs FLOPs), export the Pareto front.",
    )
    parser.add_argument("--version", action="version", version=f"a2d-evo {__version__}")
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_Parser
    )

    p = sub.add_parser("train-teacher", help="train the teacher with PPO -> RUN_DIR/teacher/")
    _new_run(p)
    _common(p)
    p.set_defaults(handler=cmd_train_teacher)

    p = sub.add_parser(
        "import-teacher",
        help="bring a teacher (an SB3 PPO zip or a CleanRL state dict) -> RUN_DIR/teacher/agent/",
    )
    p.add_argument("source", help="the SB3 .zip or CleanRL .pt / .cleanrl_model file")
    p.add_argument(
        "--format",
        choices=("auto", "sb3", "cleanrl"),
        default="auto",
        help="file format (default: auto)",
    )
    _new_run(p, resume=False)
    _common(p, quiet_help=NO_BAR)
    p.set_defaults(handler=cmd_import_teacher)

    p = sub.add_parser(
        "train-supernet",
        help="train the supernet with actor/critic distillation -> RUN_DIR/supernet/",
    )
    _new_run(p)
    p.add_argument(
        "--teacher",
        metavar="AGENT_DIR",
        help="teacher agent folder (default: RUN_DIR/teacher/agent)",
    )
    _common(p)
    p.set_defaults(handler=cmd_train_supernet)

    p = sub.add_parser("evolve", help="NSGA-II over subnets (return vs FLOPs) -> RUN_DIR/search/")
    _new_run(p)
    p.add_argument("--pop", type=int, help="population size (default: the config's search.pop)")
    p.add_argument("--gens", type=int, help="generations (default: search.gens)")
    p.add_argument("--episodes", type=int, help="episodes per candidate (default: search.episodes)")
    p.add_argument(
        "--budget-steps",
        type=int,
        metavar="STEPS",
        help="stop once this many env steps are spent (default: search.budget_steps, none)",
    )
    p.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="evaluate populations on Ray actors at ADDRESS (auto, host:port, "
        "ray://host:port); without it a local Ray, whatever search.ray_address says",
    )
    _common(p)
    p.set_defaults(handler=cmd_evolve)

    p = sub.add_parser(
        "export",
        help="front members as fine-tuned agent folders -> RUN_DIR/agents/<name>/ (the delivered "
        "front: agents/delivered.json)",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="run folder, e.g. runs/cartpole")
    p.add_argument(
        "--pick",
        default="all",
        help="all (default: every front member, fine-tuned, and the delivered front in "
        "agents/delivered.json), knee, or the INDEX of a front entry",
    )
    p.add_argument("--max-flops", type=float, help="only front entries with at most these FLOPs")
    p.add_argument(
        "--min-return",
        type=float,
        help="only front entries with at least this mean return (the env's own score, not "
        "the normalised return)",
    )
    p.add_argument(
        "--finetune",
        type=int,
        metavar="STEPS",
        help="fine-tune each exported agent for STEPS env steps (default: the run's "
        "finetune.steps; 0 keeps the inherited weights)",
    )
    _common(p, seed_help=RUN_SEED)
    p.set_defaults(handler=cmd_export)

    p = sub.add_parser(
        "finetune", help="fine-tune an agent folder with PPO + distillation (metrics before/after)"
    )
    p.add_argument(
        "agent_dir", metavar="AGENT_DIR", help="agent folder, e.g. runs/cartpole/agents/knee"
    )
    p.add_argument("--steps", type=int, required=True, help="environment steps")
    p.add_argument(
        "--teacher", metavar="AGENT_DIR", help="teacher agent folder (default: the run's teacher)"
    )
    _common(p)
    p.set_defaults(handler=cmd_finetune)

    p = sub.add_parser("eval", help="score any agent folder on fresh seeds -> AGENT_DIR/eval.json")
    p.add_argument(
        "agent_dir", metavar="AGENT_DIR", help="agent folder, e.g. runs/cartpole/agents/knee"
    )
    p.add_argument("--episodes", type=int, help="episodes (default: the config's eval.episodes)")
    p.add_argument(
        "--sample",
        action="store_true",
        help="sample actions instead of greedy argmax (default: the config's eval.mode)",
    )
    _common(
        p,
        seed_help="seed of the first episode (default: fresh seeds of the config)",
        quiet_help=NO_BAR,
    )
    p.set_defaults(handler=cmd_eval)

    p = sub.add_parser("report", help="Pareto plot, hypervolume plot and table -> RUN_DIR/report/")
    p.add_argument("run_dir", metavar="RUN_DIR", help="run folder, e.g. runs/cartpole")
    _common(p, overrides=False, quiet_help=NO_BAR)  # it reports the run's own settings
    p.set_defaults(handler=cmd_report)

    p = sub.add_parser(
        "baselines", help="the teacher scaled in width, PPO and distilled -> RUN_DIR/baselines/"
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="run folder, e.g. runs/cartpole")
    p.add_argument("--widths", default="0.25,0.5,1", help="width multipliers (default 0.25,0.5,1)")
    p.add_argument(
        "--methods",
        default=",".join(BASELINE_METHODS),
        help=f"training methods (default {','.join(BASELINE_METHODS)})",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted baseline from its checkpoint (finished ones are skipped, "
        "unless the run's budgets, teacher or final seeds changed since: those train again)",
    )
    _common(p, seed_help=RUN_SEED)
    p.set_defaults(handler=cmd_baselines)

    p = sub.add_parser(
        "demo", help="the whole pipeline on compact LunarLander (or --config) -> runs/demo/"
    )
    p.add_argument(
        "--config", help="YAML config (default: the shipped configs/lunarlander_demo.yaml)"
    )
    p.add_argument("--out", help="run folder (default: runs/demo)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted demo")
    _common(p)
    p.set_defaults(handler=cmd_demo)
    for command in sub.choices.values():  # its own usage for arguments it does not take
        command.set_defaults(command_parser=command)
    return parser


def _terminated(signum: int, frame: object) -> None:
    # SIGTERM (kill, a batch scheduler) ends a command the way Ctrl-C does. Training loops
    # install their own handler (checkpoint, then stop) and restore this one after.
    raise KeyboardInterrupt("SIGTERM")


TORCHRUN_COMMANDS = frozenset({"train-teacher", "train-supernet"})
"""The commands that train with DDP under torchrun; every other one is refused there."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``a2d-evo`` console script."""
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:  # said with the command's usage (`report --set x` printed the top-level one)
        args.command_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    handler: Handler = args.handler
    world = os.environ.get("WORLD_SIZE", "1").strip()
    if args.command not in TORCHRUN_COMMANDS and world not in ("", "0", "1"):
        # a torchrun rank other than 0 takes no folder lock (rank 0 writes for all): any
        # other command would write the run from every rank at once, unlocked
        print(
            f"a2d-evo {args.command}: error: WORLD_SIZE={world} in the environment: only "
            f"{' and '.join(sorted(TORCHRUN_COMMANDS))} run under torchrun "
            f"(docs/distributed.md); unset WORLD_SIZE and RANK to run {args.command}",
            file=sys.stderr,
        )
        return EXIT_USER_ERROR
    in_main = threading.current_thread() is threading.main_thread()
    previous: dict[int, Any] = {}
    if in_main:
        previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, _terminated)
        # Ctrl-C stops every command, also one started from a background job (which inherits
        # SIGINT ignored): the training loops already take SIGINT whatever its disposition.
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return handler(args)
    except Interrupted as exc:
        # a fine-tune inside export or demo says "nothing saved" of its own agent: what the
        # command as a whole kept, and how to go on, is said here
        go_on = {
            "export": "; the members already fine-tuned are kept: run the same export again "
            "to go on",
            "demo": "; the stages and members already done are kept: continue with --resume",
        }.get(args.command, "")
        print(f"a2d-evo {args.command}: {exc}{go_on}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except A2DError as exc:
        print(f"a2d-evo {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except PermissionError as exc:  # a path the user may not enter (Path.is_file re-raises it
        # on Python 3.10 and 3.11 where a check did not expect it): one line, not a traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"a2d-evo {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt as exc:
        why = str(exc) or "SIGINT"
        rank = os.environ.get("RANK", "0").strip()
        hint = (
            # torchrun stops the other ranks with SIGTERM when one exits: most often rank 0
            # refused the command, and its message (not --resume) is what to act on
            f" as rank {rank}: torchrun stops every rank when one exits; rank 0's message "
            "says why (what was saved is kept)"
            if why == "SIGTERM" and world not in ("", "0", "1") and rank not in ("", "0")
            else "; what was saved is kept, continue with --resume"
            if "resume" in args
            else "; the members already fine-tuned are kept: run the same export again to go on"
            if args.command == "export"
            else ""
        )
        print(f"a2d-evo {args.command}: interrupted ({why}){hint}", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before)
