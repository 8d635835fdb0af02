"""The ``a2d-evo`` argument parser: its subcommands, the options they share, and value
options that refuse a second value."""

from __future__ import annotations

import argparse
from typing import Any

from a2d_evo import __version__
from a2d_evo.cli.commands import (
    cmd_baselines,
    cmd_demo,
    cmd_eval,
    cmd_evolve,
    cmd_export,
    cmd_finetune,
    cmd_import_teacher,
    cmd_report,
    cmd_train_supernet,
    cmd_train_teacher,
)
from a2d_evo.formats import BASELINE_METHODS

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


def _command(sub: Any, name: str, summary: str) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` opens with the summary the command list shows."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=summary, description=summary)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The ``a2d-evo`` parser: one subcommand per pipeline stage, each bound to its handler."""
    parser = _Parser(
        prog="a2d-evo",
        description="Find small, fast deep-RL agents: distil a teacher into a weight-sharing "
        "supernet, search its subnets with NSGA-II (return vs FLOPs), export the Pareto front.",
    )
    parser.add_argument("--version", action="version", version=f"a2d-evo {__version__}")
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_Parser
    )

    p = _command(sub, "train-teacher", "train the teacher with PPO -> RUN_DIR/teacher/")
    _new_run(p)
    _common(p)
    p.set_defaults(handler=cmd_train_teacher)

    p = _command(
        sub,
        "import-teacher",
        "bring a teacher (an SB3 PPO zip or a CleanRL state dict) -> RUN_DIR/teacher/agent/",
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

    p = _command(
        sub,
        "train-supernet",
        "train the supernet with actor/critic distillation -> RUN_DIR/supernet/",
    )
    _new_run(p)
    p.add_argument(
        "--teacher",
        metavar="AGENT_DIR",
        help="teacher agent folder (default: RUN_DIR/teacher/agent)",
    )
    _common(p)
    p.set_defaults(handler=cmd_train_supernet)

    p = _command(sub, "evolve", "NSGA-II over subnets (return vs FLOPs) -> RUN_DIR/search/")
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

    p = _command(
        sub,
        "export",
        "front members as fine-tuned agent folders -> RUN_DIR/agents/<name>/ (the delivered "
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

    p = _command(
        sub, "finetune", "fine-tune an agent folder with PPO + distillation (metrics before/after)"
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

    p = _command(sub, "eval", "score any agent folder on fresh seeds -> AGENT_DIR/eval.json")
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

    p = _command(sub, "report", "Pareto plot, hypervolume plot and table -> RUN_DIR/report/")
    p.add_argument("run_dir", metavar="RUN_DIR", help="run folder, e.g. runs/cartpole")
    _common(p, overrides=False, quiet_help=NO_BAR)  # it reports the run's own settings
    p.set_defaults(handler=cmd_report)

    p = _command(
        sub, "baselines", "the teacher scaled in width, PPO and distilled -> RUN_DIR/baselines/"
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

    p = _command(
        sub, "demo", "the whole pipeline on compact LunarLander (or --config) -> runs/demo/"
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
