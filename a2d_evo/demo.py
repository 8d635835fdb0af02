"""``a2d-evo demo``: the whole pipeline on one config into one run folder.

The default config is ``configs/lunarlander_demo.yaml`` (LunarLander on compact budgets).
teacher -> distilled supernet -> NSGA-II -> export of every front member, each fine-tuned
(the delivered front) -> report, ending with the delivered front's table and the path of
``pareto.png``. Each stage is skipped when its result is already there and ``--resume`` is
given, so a killed demo continues (the fine-tune agent by agent). A finished stage whose
settings the command changes is resumed, where its own ``--resume`` extends it for a raised
budget (:data:`~a2d_evo.runs.stage_budget.BUDGET_KEYS`) and refuses any other change; when a later
stage was already built on it (finished, or begun: it holds a checkpoint), the change is
refused. A budget the stage's own ``--resume`` raised above the command's is no change: the
stage is finished at it.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from a2d_evo.config import Config, replace
from a2d_evo.config.compare import config_diff, setting
from a2d_evo.errors import RunFolderError
from a2d_evo.report.delivered_file import read_delivered
from a2d_evo.report.front_export import export_front
from a2d_evo.report.markdown import write_report
from a2d_evo.report.rows import arch_name
from a2d_evo.report.run_files import agent_arch
from a2d_evo.report.tables import delivered_table
from a2d_evo.runs.folder import RunFolder
from a2d_evo.runs.layout import STAGE_PARTS, STAGE_SECTIONS, holds_results
from a2d_evo.runs.stage_budget import BUDGET_KEYS
from a2d_evo.runs.teacher import teacher_scores
from a2d_evo.search.evolution import evolve
from a2d_evo.train.supernet_stage import train_supernet
from a2d_evo.train.teacher import train_teacher


def _stage_done(run: RunFolder) -> dict[str, bool]:
    """Whether each stage's result is there (:meth:`RunFolder.stage_product`, which a raise
    of its budget withdraws)."""
    return {stage: run.stage_product(stage).is_file() for stage in STAGE_PARTS}


def _changed(run: RunFolder, stage: str, cfg: Config) -> str:
    """The settings of ``stage`` that ``cfg`` changes, as ``key X (this command: Y)``, from
    the stage's own ``config.yaml`` (which a raised budget rewrote); "" for none."""
    recorded = run.stage_config(stage)
    if recorded is None:
        return ""
    parts = []
    for key in config_diff(recorded, cfg, STAGE_SECTIONS[stage]):
        try:
            was, now = setting(recorded, key), setting(cfg, key)
        except AttributeError:  # a key inside a mapping (env.kwargs.*): named alone
            parts.append(key)
            continue
        if key in BUDGET_KEYS.get(stage, ()) and was is not None and now is not None and now < was:
            continue  # trained or searched further by the stage's own --resume: nothing to do
        parts.append(f"{key} {was!r} (this command: {now!r})")
    return ", ".join(parts)


def _raised_since(run: RunFolder, stage: str, cfg: Config) -> tuple[Config, list[str]]:
    """``cfg`` with each budget of ``stage`` that the stage's own ``--resume`` raised above
    it (its ``config.yaml``) taken as raised, and those keys: an unfinished stage then goes on
    to the total it was raised to (a raise killed on the way withdrew its result), where the
    command's lower budget was refused as a lowering."""
    recorded = run.stage_config(stage)
    if recorded is None:
        return cfg, []
    lifted = []
    for key in BUDGET_KEYS.get(stage, ()):
        was, now = setting(recorded, key), setting(cfg, key)
        if was is not None and now is not None and now < was:
            section, _, name = key.partition(".")
            cfg = replace(cfg, **{section: replace(getattr(cfg, section), **{name: was})})
            lifted.append(f"{key} {was:,}")
    return cfg, lifted


def _timed(name: str, stage: Callable[[bool], object], resume: bool) -> None:
    """Run one stage and print how long it took."""
    t0 = time.perf_counter()
    stage(resume)
    print(f"[demo] {name}: done in {time.perf_counter() - t0:.0f} s")


def one_member_note(delivered: dict[str, Any]) -> str:
    """What a delivered front of one member means in the demo, which delivers every front
    member (``export --pick all``); "" for two or more members."""
    if len(delivered["members"]) != 1:
        return ""
    n = len(delivered["exported"])
    if n <= 1:
        return "One delivered member: the search's front held one network."
    below = delivered.get("not_above_random") or []
    more = "(how often that happens: BENCHMARKS.md, Demos; another --seed may show one)."
    if delivered.get("none_above_random"):
        return (
            f"One delivered member of {n} fine-tuned: none beat the random policy on the "
            "episodes that chose the delivery, and it is the best of them; the run did not "
            "learn the task (see the report's teacher and normalisation)."
        )
    if below:  # finetune.below_random: archs the fine-tune did not lift above random
        return (
            f"One delivered member of {n} fine-tuned: {len(below)} did not beat the random "
            "policy on the episodes that chose the delivery, even after their fine-tune, and "
            "it played at least as well as the rest, so on this seed the front has no "
            f"trade-off to show {more}"
        )
    return (
        f"One delivered member of {n} fine-tuned: the cheapest played at least as well as "
        f"{'the other' if n == 2 else 'every other one'} on the episodes that chose the "
        "delivery, so on this seed the smaller networks lost no return and the front has no "
        f"trade-off to show {more}"
    )


def run_demo(cfg: Config, run: RunFolder, *, resume: bool = False, progress: bool = True) -> Path:
    """Run every stage of the pipeline; returns ``RUN_DIR/report/report.md``."""
    # Only checked here: each stage binds the run once its own checks (env, device) passed,
    # so a refused demo leaves no config.yaml that would refuse the corrected one. A run of
    # another config is named first: --resume could not take it either.
    run.check(cfg)
    if run.exists() and not resume:
        raise RunFolderError(
            f"{run.root} already holds a run; pass --resume to continue it, or --out"
        )
    if resume and not run.exists():
        raise RunFolderError(
            f"--resume: {run.root} holds no demo to resume; drop --resume to start one"
        )
    done = _stage_done(run)
    started = time.perf_counter()

    def command(name: str, staged: Config, again: bool) -> object:
        if name == "teacher":
            return train_teacher(staged, run, resume=again, progress=progress)
        if name == "supernet":
            return train_supernet(staged, run, resume=again, progress=progress)
        return evolve(staged, run, resume=again, progress=progress)

    stages = [(name, functools.partial(command, name, cfg)) for name in STAGE_PARTS]
    for i, (name, stage) in enumerate(stages):
        built = [  # finished or begun: a later stage's checkpoint was trained on this one
            later for later, _ in stages[i + 1 :] if done[later] or holds_results(run.stage(later))
        ]
        if done[name]:
            changed = _changed(run, name, cfg)
            if not changed:
                print(f"[demo] {name}: already done in {run.stage(name)}, skipped")
                continue
            if built:
                raise RunFolderError(
                    f"--resume: the {name} stage finished with {changed}, and the {built[0]} "
                    f"stage was built on it; resume with the run's settings (a raised budget "
                    f"of the last finished stage trains or searches on), or --out for a new demo"
                )
            # the stage's own --resume extends it for a raised budget and refuses the rest
            print(f"[demo] {name}: finished with {changed}; resuming it")
            _timed(name, stage, True)
            continue
        if built:  # unfinished under a finished later stage: a --resume of it raising its
            # budget was cut short; training it on would leave the later stages of old weights
            raise RunFolderError(
                f"--resume: the {name} stage is unfinished (a --resume raising its budget was "
                f"cut short?) and the {built[0]} stage was built on it before; finish it with "
                f"{run.resume_command(name)} and train the stages after it again, or --out "
                "for a new demo"
            )
        # a stage killed before its first checkpoint holds no results: a plain start takes it
        partial = holds_results(run.stage(name))
        staged, lifted = _raised_since(run, name, cfg) if partial else (cfg, [])
        raised = f" to its raised {', '.join(lifted)}" if lifted else ""
        print(f"[demo] {name}: {'resuming' if partial else 'starting'}{raised}")
        _timed(name, functools.partial(command, name, staged), partial)

    # what every figure below is normalised against: a teacher that did not learn the task
    # shows here, before the export's minutes
    print(f"[demo] teacher: {run.teacher_agent}{teacher_scores(run.teacher_agent)}")
    t0 = time.perf_counter()
    print(f"[demo] export: every front member, fine-tuned for {cfg.finetune.steps:,} steps")
    export_front(cfg, run, pick="all", progress=progress)
    report = write_report(run.load_config(), run)  # as `a2d-evo report RUN_DIR` writes it
    print(f"[demo] export + report: done in {time.perf_counter() - t0:.0f} s")

    delivered = read_delivered(run.agents / "delivered.json")
    print()
    archs = {name: arch_name(agent_arch(run.agents / name)) for name in delivered["members"]}
    print(delivered_table(delivered, archs))
    if note := one_member_note(delivered):
        print(f"\n{note}")
    print()
    print(f"agents:      {run.agents}")
    print(f"pareto plot: {run.report / 'pareto.png'}")
    print(f"report:      {report}")
    print(f"total time:  {time.perf_counter() - started:.0f} s")
    return report
