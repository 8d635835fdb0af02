"""A run folder read for the report: :func:`load_run` and the :class:`RunData` it returns.

:func:`load_run` reads what the stages left in ``RUN_DIR`` (the search's ``front.json``,
``history.csv`` and ``hypervolume.csv``; the teacher, exported agents and baselines as agent
folders) into a :class:`RunData`. Only the finished search is required; every other part that
is missing is named in ``RunData.missing``. Each agent or front entry becomes a
:class:`~a2d_evo.report.rows.Row`; the files besides ``front.json`` are read by
:mod:`a2d_evo.report.run_files`, ``agents/delivered.json`` by
:mod:`a2d_evo.report.delivered_file`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from a2d_evo.config import Config
from a2d_evo.config.compare import TRAINING_SECTIONS
from a2d_evo.config.overrides import recorded_set_flag
from a2d_evo.errors import RunFolderError
from a2d_evo.formats import (
    BASELINE_METHODS,
    DEFAULT_WIDTHS,
    baseline_name,
    finite_number,
    kept_weights,
)
from a2d_evo.report.delivered_file import delivered_front, delivered_guard, export_record
from a2d_evo.report.front_file import from_another_front, load_front_and_digest
from a2d_evo.report.rows import (
    References,
    Row,
    arch_name,
    finite_or_none,
    front_rows,
    row_from_metrics,
)
from a2d_evo.report.run_files import (
    agent_arch,
    agent_metrics,
    own_subfolders,
    read_history,
    read_hypervolume,
)
from a2d_evo.runs.folder import RunFolder

_BASELINE_NAME = re.compile(r"^(?P<method>[A-Za-z]+)_x(?P<width>[0-9]*\.?[0-9]+)$")


@dataclass
class RunData:
    """Everything the report reads, and what it found missing."""

    env_id: str
    front: list[Row]
    reference_point: Any
    reference_units: Any
    final_hypervolume: float | None
    search: dict[str, Any]
    """``front.json``'s ``search`` block (what the search actually ran), or empty."""
    delivery: dict[str, Any]
    """``front.json``'s ``delivery`` block (the race and the final re-scoring, which are
    played outside the search's budget), or empty."""
    norm: References
    history: list[tuple[float, float]]
    history_episodes: list[int]
    hypervolume: list[tuple[int, float, int]]
    teacher: Row | None
    teacher_arch: str
    agents: dict[str, Row]
    finetune: dict[str, tuple[float, float]]
    finetune_seeds: dict[str, int]
    """How many seeds a fine-tune's before and after figures were scored on, where they are
    not the row's own (a ``finetune`` by hand scores on seeds of its own)."""
    finetune_budget: dict[str, int]
    """Each fine-tuned agent's budget in env steps (``metrics.json`` ``finetune_budget``)."""
    finetune_lr: dict[str, float]
    """Each fine-tuned agent's peak learning rate, where recorded (``finetune_lr``)."""
    finetune_sets: dict[str, tuple[str, ...]]
    """The ``--set`` flags each agent's last fine-tune had over the run's config, where
    recorded and not empty (``finetune_sets``, checked by :func:`recorded_sets`)."""
    export_finetune: dict[str, int]
    """The fine-tune budget ``export`` gave each agent it wrote, 0 included (``export
    --finetune 0``), where recorded (``export_finetune``)."""
    export_command: dict[str, tuple[int, str]]
    """When (ns) and with which options ``export`` wrote each agent, where recorded
    (``export_command``: :func:`~a2d_evo.report.front_export.export_options`)."""
    kept: dict[str, str]
    """Which weights each exported agent ships (:func:`~a2d_evo.formats.kept_weights`)."""
    delivered: list[str]
    """Names of the exported agents on the delivered front (``agents/delivered.json``), or
    empty when export has not delivered one."""
    delivered_budget: int | None
    """``finetune.steps`` of that delivery (None without one)."""
    delivered_chosen_on: str
    """``validation seeds`` or ``final seeds`` (files written before the choice was recorded:
    final seeds)."""
    delivered_validated: bool
    """Whether every member of that delivery has a validation figure: with
    ``delivered_chosen_on`` ``final seeds`` (``export --min-return``) the final seeds filtered
    the members and the validation seeds then chose among them."""
    delivered_supernet_steps: int | None
    """The supernet budget ``delivered.json`` recorded (the one its members had); None for
    files from before it."""
    delivered_command: tuple[int, str] | None
    """When (ns) and with which options ``export`` delivered it (None without a delivery,
    or in files from before they were recorded)."""
    delivered_guard: dict[str, Any]
    """What that delivery was held against
    (:func:`~a2d_evo.report.delivered_file.delivered_guard`): ``random_return``,
    ``not_above_random``, ``none_above_random``, where recorded; empty without."""
    baselines: dict[str, Row]
    missing: list[str]
    front_episodes: list[int]
    front_seeds: list[int]
    eval_mode: str


def _baseline_unlike(
    m: Mapping[str, Any],
    run: RunFolder,
    teacher_sha: str | None,
    supernet_steps: int | None,
    finetune_steps: int | None,
) -> str:
    """Why a baseline's recorded budget or teacher is not the delivered front's ("" when
    they match, or when either side is not recorded): ``ppo_x`` has the teacher's steps,
    ``distill_x`` and ``a2d_x`` the supernet's plus the delivered fine-tune's."""
    recorded = m.get("teacher_sha256")
    if isinstance(recorded, str) and teacher_sha is not None and recorded != teacher_sha:
        return "against another teacher than the front's"
    budget = m.get("baseline_budget")
    if not isinstance(budget, int) or isinstance(budget, bool):
        return ""
    if m.get("method") == "ppo":
        teacher_cfg = run.stage_config("teacher")
        expected = None if teacher_cfg is None else teacher_cfg.teacher.total_steps
    elif supernet_steps is not None and finetune_steps is not None:
        expected = supernet_steps + finetune_steps
    else:
        expected = None
    if expected is not None and budget != expected:
        return f"for {budget:,} env steps, not the {expected:,} the front's members had"
    return ""


def load_run(cfg: Config, run: RunFolder) -> RunData:
    """Read a run folder for the report; only ``search/front.json`` is required."""
    data, front_sha = load_front_and_digest(run)  # the digest of the front read, not reread
    entries: list[dict[str, Any]] = data["front"]
    missing: list[str] = []

    # what the search chose the front with, against the files there now
    block = data.get("search")
    searched_with = block.get("sources") if isinstance(block, Mapping) else None
    if not isinstance(searched_with, Mapping):
        searched_with = {}
    try:  # none where a file is missing (the report says so elsewhere) or unreadable
        now = run.weights_digests()
    except RunFolderError:
        now = {"teacher": None, "supernet": None}
    for part, where in (("teacher", run.teacher_agent), ("supernet", run.supernet_weights)):
        was = searched_with.get(part)
        if isinstance(was, str) and now[part] is not None and now[part] != was:
            missing.append(
                f"the {part} the search chose the front with: `{where}` changed since (its "
                f"digest is not the front's `search.sources.{part}`: a --resume trained it "
                "further, or it was replaced), so the front, its agents and their "
                f"normalisation are of the old {part}; restore it, or run the stages after it "
                "again"
            )
    teacher_metrics = agent_metrics(run.teacher_agent, "teacher", missing)
    teacher_arch = agent_arch(run.teacher_agent) or cfg.teacher.arch
    raw_norm = data.get("normalisation") or {}
    tm = teacher_metrics or {}
    norm = References(
        r_random=_first_num(raw_norm.get("r_random"), tm.get("random_return_mean")),
        r_teacher=_first_num(raw_norm.get("r_teacher"), tm.get("return_mean")),
        teacher_flops=_first_num(raw_norm.get("teacher_flops"), tm.get("flops")),
        # the bound of the seeds R_random came from
        margin_lower95=_first_num(
            (raw_norm if "r_random" in raw_norm else tm).get("teacher_margin_lower95")
        ),
    )
    # normalised as every other row, with the front's references (its metrics.json holds 1.0:
    # its own return over its own evaluation seeds' R_teacher)
    teacher = (
        row_from_metrics(
            "teacher",
            {k: v for k, v in teacher_metrics.items() if k != "normalised_return"},
            teacher_arch,
            norm,
        )
        if teacher_metrics
        else None
    )
    if teacher_metrics is None:
        missing.append(
            f"teacher metrics (`{run.teacher_agent / 'metrics.json'}`): run "
            "`a2d-evo train-teacher` or `a2d-evo import-teacher`"
        )

    agents: dict[str, Row] = {}
    finetune: dict[str, tuple[float, float]] = {}
    finetune_seeds: dict[str, int] = {}
    finetune_budget: dict[str, int] = {}
    finetune_lr: dict[str, float] = {}
    finetune_sets: dict[str, tuple[str, ...]] = {}
    by_export: dict[str, int] = {}
    commands: dict[str, tuple[int, str]] = {}
    kept: dict[str, str] = {}
    for folder in own_subfolders(run, run.agents, missing):
        m = agent_metrics(folder, f"agent {folder.name}", missing)
        if m is None:
            continue
        sources = m.get("sources")
        if isinstance(sources, Mapping) and from_another_front(sources.get("front"), front_sha):
            missing.append(
                f"agent {folder.name}: exported from an older `front.json` (its "
                f"`sources.front` differs); not reported: run `a2d-evo export {run.quoted}` again"
            )
            continue
        agents[folder.name] = row_from_metrics(folder.name, m, agent_arch(folder), norm)
        kept[folder.name] = kept_weights(dict(m))
        before, after = m.get("before"), m.get("after")
        if isinstance(before, Mapping) and isinstance(after, Mapping):
            b, a = (
                finite_or_none(before.get("return_mean")),
                finite_or_none(after.get("return_mean")),
            )
            if b is not None and a is not None:
                finetune[folder.name] = (b, a)
                seeds = after.get("seeds")
                if isinstance(seeds, list) and seeds != m.get("seeds"):
                    finetune_seeds[folder.name] = len(seeds)
        for key, into in (("finetune_budget", finetune_budget), ("export_finetune", by_export)):
            count = m.get(key)
            if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
                into[folder.name] = count
        if (lr := finite_or_none(m.get("finetune_lr"))) is not None:
            finetune_lr[folder.name] = lr
        if sets := recorded_sets(m.get("finetune_sets")):
            finetune_sets[folder.name] = sets
        if (command := export_record(m)) is not None:
            commands[folder.name] = command
    if not agents:
        missing.append(f"exported agents (`{run.agents}`): run `a2d-evo export {run.quoted}`")
    delivered, delivered_budget, chosen_on, validated, supernet_steps, delivered_command = (
        delivered_front(run, agents, missing, front_sha)
    )
    tuned = sorted({b for b in by_export.values() if b > 0})
    whole = [o for _, o in sorted(commands.values()) if o.startswith("--pick all")]
    if not (run.agents / "delivered.json").is_file() and whole:
        # an export of every member wrote these, and none delivers now: it was stopped, or a
        # later `--pick N` replaced a member (and removed the delivery that listed it)
        missing.append(
            f"the delivered front (`{run.agents / 'delivered.json'}`): an export of every member "
            "wrote agents here but none delivered the front (stopped, or a member exported "
            f"again on its own since); run `a2d-evo export {run.quoted} {whole[-1]}` to deliver it"
        )
    elif not (run.agents / "delivered.json").is_file() and tuned:
        # members exported one by one (`--pick N`, `--pick knee`) are fine-tuned, but only an
        # export of every member delivers a front: the baselines face the inherited one
        missing.append(
            f"the delivered front (`{run.agents / 'delivered.json'}`): the agents here were "
            f"exported one by one; run `a2d-evo export {run.quoted} --finetune {tuned[-1]}` to "
            "deliver the fine-tuned front"
        )

    baselines: dict[str, Row] = {}
    unlike: set[str] = set()  # named under missing already
    # the teacher the front was searched with (its normalisation's), else the run's
    teacher_sha = searched_with.get("teacher")
    if not isinstance(teacher_sha, str):
        teacher_sha = run.teacher_digest()
    for folder in own_subfolders(run, run.baselines, missing):
        m = agent_metrics(folder, f"baseline {folder.name}", missing)
        if m is not None and (why := _baseline_unlike(m, run, teacher_sha, supernet_steps,
                                                      delivered_budget)):  # fmt: skip
            missing.append(
                f"baseline {folder.name}: trained {why}, so it is not set against the front; "
                f"run `a2d-evo baselines {run.quoted}` to train it again"
            )
            unlike.add(folder.name)
        elif m is not None:
            row = row_from_metrics(folder.name, m, agent_arch(folder), norm)
            method, width = _baseline_kind(folder.name, m)
            steps = m.get("env_steps")
            sets = recorded_sets(m.get("baseline_sets"))  # the --set flags it trained with
            baselines[folder.name] = replace(
                row,
                extra={"method": method, "width_multiplier": width,
                       "env_steps": steps if finite_number(steps) else None,
                       **({"sets": sets} if sets else {})},
            )  # fmt: skip
    found = {(r.extra["method"], r.extra["width_multiplier"]) for r in baselines.values()}
    absent = [
        baseline_name(method, w)
        for method in BASELINE_METHODS
        for w in sorted({*DEFAULT_WIDTHS, *_found_widths(baselines)})
        if (method, w) not in found and baseline_name(method, w) not in unlike
    ]
    if absent and not baselines:
        missing.append(f"baselines (`{run.baselines}`): run `a2d-evo baselines {run.quoted}`")
    elif absent:
        missing.append(f"baselines {', '.join(absent)} (`{run.baselines}`)")

    history, history_episodes = read_history(run.search / "history.csv", missing)
    hv = read_hypervolume(run.search / "hypervolume.csv", missing)
    episodes = sorted({int(e.get("episodes") or 0) for e in entries})
    seeds = sorted({int(s) for e in entries for s in (e.get("seeds") or [])})
    modes = sorted({str(e.get("eval_mode", "greedy")) for e in entries}) or ["greedy"]
    env_ids = {str(e["env_id"]) for e in entries if "env_id" in e}
    search = data.get("search")
    return RunData(
        env_id=str(data.get("env_id") or (env_ids.pop() if len(env_ids) == 1 else cfg.env.id)),
        front=front_rows(entries, norm),
        reference_point=data.get("reference_point"),
        reference_units=data.get("reference_point_units"),
        final_hypervolume=finite_or_none(data.get("hypervolume")),
        search=dict(search) if isinstance(search, Mapping) else {},
        delivery=dict(delivery) if isinstance(delivery := data.get("delivery"), Mapping) else {},
        norm=norm,
        history=history,
        history_episodes=history_episodes,
        hypervolume=hv,
        teacher=teacher,
        teacher_arch=arch_name(teacher_arch) if teacher_arch else "teacher",
        agents=agents,
        finetune=finetune,
        finetune_seeds=finetune_seeds,
        finetune_budget=finetune_budget,
        finetune_lr=finetune_lr,
        finetune_sets=finetune_sets,
        export_finetune=by_export,
        export_command=commands,
        kept=kept,
        delivered=delivered,
        delivered_budget=delivered_budget,
        delivered_chosen_on=chosen_on,
        delivered_validated=validated,
        delivered_supernet_steps=supernet_steps,
        delivered_command=delivered_command,
        delivered_guard=delivered_guard(run) if delivered else {},
        baselines=dict(sorted(baselines.items(), key=lambda kv: _baseline_order(kv[1]))),
        missing=missing,
        front_episodes=episodes,
        front_seeds=seeds,
        eval_mode="/".join(modes),
    )


def _first_num(*values: Any) -> float | None:
    for v in values:
        if finite_or_none(v) is not None:
            return finite_or_none(v)
    return None


def _baseline_kind(name: str, metrics: Mapping[str, Any]) -> tuple[str, float | None]:
    match = _BASELINE_NAME.match(name)
    method = metrics.get("method") or (match["method"] if match else "?")
    width = finite_or_none(metrics.get("width_multiplier"))
    if width is None and match:
        width = float(match["width"])
    return str(method), width


def _found_widths(baselines: Mapping[str, Row]) -> set[float]:
    return {w for r in baselines.values() if (w := r.extra.get("width_multiplier")) is not None}


def _baseline_order(row: Row) -> tuple[int, float, str]:
    method = str(row.extra.get("method"))
    rank = BASELINE_METHODS.index(method) if method in BASELINE_METHODS else len(BASELINE_METHODS)
    return rank, row.extra.get("width_multiplier") or 0.0, row.label


def recorded_sets(value: Any) -> tuple[str, ...]:
    """The ``--set`` flags an agent's ``metrics.json`` recorded (``baseline_sets``,
    ``finetune_sets``), each rebuilt by :func:`~a2d_evo.config.overrides.recorded_set_flag`;
    none where the record is absent or any flag in it is not one ``--set`` of a training key
    (:data:`~a2d_evo.config.compare.TRAINING_SECTIONS`): the file may be someone else's, and
    what the report prints as a command must be only that command."""
    if not isinstance(value, list):
        return ()
    flags = [recorded_set_flag(f, TRAINING_SECTIONS) for f in value]
    return () if any(f is None for f in flags) else tuple(f for f in flags if f is not None)
