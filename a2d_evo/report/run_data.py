"""A run folder read for the report: its rows, normalisation, and :func:`load_run`.

:func:`load_run` reads what the stages left in ``RUN_DIR`` (the search's ``front.json``,
``history.csv`` and ``hypervolume.csv``; the teacher, exported agents and baselines as agent
folders) into a :class:`RunData`. Only the finished search is required; every other part that
is missing is named in ``RunData.missing``. Each agent or front entry becomes a :class:`Row`;
its interval (:func:`ci95`) is that of ``a2d-evo eval``, see :mod:`a2d_evo.report.markdown`.
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from a2d_evo.config import Config
from a2d_evo.errors import A2DError, FormatError, RunFolderError
from a2d_evo.files import MAX_ARCH_JSON_BYTES, check_format_version, read_json
from a2d_evo.formats import (
    BASELINE_METHODS,
    DEFAULT_WIDTHS,
    FINAL_SEEDS,
    METRICS_FORMAT_VERSION,
    VALIDATION_SEEDS,
    baseline_name,
    check_metrics,
    check_teacher_beats_random,
    ci95,
    finite_number,
    kept_weights,
    normalised_return,
    validated,
)
from a2d_evo.nets.space import arch_from_dict
from a2d_evo.report.pick import (
    from_another_front,
    load_front_and_digest,
    read_delivered,
)
from a2d_evo.runfolder import RunFolder

_BASELINE_NAME = re.compile(r"^(?P<method>[A-Za-z]+)_x(?P<width>[0-9]*\.?[0-9]+)$")


# ----------------------------------------------------------------------------- rows
@dataclass(frozen=True)
class Row:
    """One agent or front entry as the tables and plots show it."""

    label: str
    arch: str
    flops: float
    params: float | None
    latency_ms: float | None
    return_mean: float
    return_std: float
    episodes: int
    normalised_return: float | None
    arch_dict: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] | None = None
    episode_returns: tuple[float, ...] | None = None
    """Each episode's return on ``seeds``, in order; None when the metrics predate them."""

    @property
    def ci95(self) -> float | None:
        return ci95(self.return_std, self.episodes)


def finite_or_none(value: Any) -> float | None:
    """``value`` as a float where it is a finite number, else None (a record read as given)."""
    return float(value) if finite_number(value) else None


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value


def _arch_name(arch: Any) -> str:
    try:
        return str(arch_from_dict(arch))
    except A2DError:
        return "?"


def row_from_metrics(
    label: str,
    metrics: Mapping[str, Any],
    arch: Any = None,
    norm: References | None = None,
) -> Row:
    """A :class:`Row` from a metrics dict (a front entry or an agent's ``metrics.json``).

    Normalised with ``norm`` where it holds both references, so every row of a report is on
    one scale (a baseline measures its own R_random and R_teacher, which move with its
    evaluation's settings); else with the figure the metrics recorded."""
    arch = metrics.get("arch", arch)
    mean = finite_or_none(metrics.get("return_mean"))
    flops = finite_or_none(metrics.get("flops"))
    if mean is None or flops is None:
        raise FormatError(f"{label}: metrics lack a finite return_mean and flops")
    nr = norm.normalise(mean) if norm is not None else None
    if nr is None:
        nr = finite_or_none(metrics.get("normalised_return"))
    return Row(
        label=label,
        arch=_arch_name(arch) if arch is not None else "?",
        flops=flops,
        params=finite_or_none(metrics.get("params")),
        latency_ms=finite_or_none(metrics.get("latency_ms")),
        return_mean=mean,
        # no finite spread recorded: no interval (a 0 made it 0 wide, and told the row apart)
        return_std=_or_nan(finite_or_none(metrics.get("return_std"))),
        episodes=int(metrics.get("episodes") or 0),
        normalised_return=nr,
        arch_dict=dict(arch) if isinstance(arch, Mapping) else None,
        extra={
            k: v
            for k, v in metrics.items()
            if k
            in (
                "method",
                "width_multiplier",
                "front_index",
                "below_random_index",
                "search_return_mean",
                "env_reward_threshold",
            )
        },
        **_episodes(metrics),
    )


def _episodes(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """``seeds`` and ``episode_returns`` of a metrics dict when it has both, one return per
    seed (checked on the way in by :func:`~a2d_evo.formats.check_metrics`)."""
    seeds, rets = metrics.get("seeds"), metrics.get("episode_returns")
    if not isinstance(seeds, list) or not isinstance(rets, list) or len(seeds) != len(rets):
        return {}
    return {"seeds": tuple(int(s) for s in seeds), "episode_returns": tuple(map(float, rets))}


@dataclass(frozen=True)
class References:
    """What a run folder holds of ``R_random``, ``R_teacher`` and the teacher's FLOPs.

    A report may read a partial run, so each may be missing (the search's complete set is a
    :class:`~a2d_evo.formats.Normalisation`); the formula is
    :func:`~a2d_evo.formats.normalised_return`.
    """

    r_random: float | None
    r_teacher: float | None
    teacher_flops: float | None
    margin_lower95: float | None = None
    """95% lower bound of the teacher's paired lead over random on the same seeds, where the
    run folder records it (:func:`~a2d_evo.formats.weak_teacher_caution`)."""

    def normalise(self, r: float) -> float | None:
        """Normalised return of ``r``; None when R_random or R_teacher is missing, or when the
        teacher does not beat the random policy (the ratio would be undefined or flip sign)."""
        if self.r_random is None or self.r_teacher is None:
            return None
        try:
            check_teacher_beats_random(self.r_random, self.r_teacher)
            return float(normalised_return(r, self.r_random, self.r_teacher))
        except ValueError:
            return None


def front_rows(front: Sequence[Mapping[str, Any]], norm: References | None) -> list[Row]:
    """Rows cheapest first, labelled by their index in ``front.json`` (``export --pick``)."""
    rows = [row_from_metrics(str(i), e, norm=norm) for i, e in enumerate(front)]
    return sorted(rows, key=lambda r: (r.flops, -r.return_mean))


# ----------------------------------------------------------------------------- reading
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
    export_finetune: dict[str, int]
    """The fine-tune budget ``export`` gave each agent it wrote, 0 included (``export
    --finetune 0``), where recorded (``export_finetune``)."""
    export_command: dict[str, tuple[int, str]]
    """When (ns) and with which options ``export`` wrote each agent, where recorded
    (``export_command``: :func:`~a2d_evo.report.pick.export_options`)."""
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
    """What that delivery was held against (:func:`delivered_guard`): ``random_return``,
    ``not_above_random``, ``none_above_random``, where recorded; empty without."""
    baselines: dict[str, Row]
    missing: list[str]
    front_episodes: list[int]
    front_seeds: list[int]
    eval_mode: str


def _delivered(
    run: RunFolder, agents: Mapping[str, Row], missing: list[str], front_sha: str
) -> tuple[list[str], int | None, str, bool, int | None, tuple[int, str] | None]:
    """The delivered front's member names that are exported agents here, its fine-tune
    budget, the seeds that chose it (see :mod:`a2d_evo.report.deliver`), whether every
    exported row has a validation figure, the supernet budget its members had and the
    export options that delivered it (None in files from before each was recorded); a
    damaged file, or
    one delivered from another ``front.json`` (``front_sha256``), is reported under
    Missing."""
    path = run.agents / "delivered.json"
    if not path.is_file():
        return [], None, FINAL_SEEDS, False, None, None
    try:
        data = read_delivered(path)
        members = data["members"]
        budget = data.get("finetune_steps")
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
            raise FormatError(f"{path}: 'finetune_steps' must be a count, got {budget!r:.40}")
        chosen_on = data.get("chosen_on", FINAL_SEEDS)
        if chosen_on not in (VALIDATION_SEEDS, FINAL_SEEDS):
            raise FormatError(f"{path}: unknown 'chosen_on' {chosen_on!r:.40}")
        # the budget it was delivered with: export's own default is the config's
        again = f"`a2d-evo export {run.quoted} --finetune {budget}`"
        if from_another_front(data.get("front_sha256"), front_sha):
            raise FormatError(
                f"{path} was delivered from an older `front.json`; run {again} to deliver "
                "this front"
            )
        _check_unchanged(path, data, members, agents, again)
    except (FormatError, OSError) as exc:
        missing.append(f"the delivered front: {exc}")
        return [], None, FINAL_SEEDS, False, None, None
    steps = data.get("supernet_steps")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        steps = None
    rows = data.get("exported")
    members = [m for m in members if m in agents]
    return members, budget, chosen_on, validated(rows), steps, _export_record(data)


def delivered_guard(run: RunFolder) -> dict[str, Any]:
    """:func:`guard_of` the run's ``delivered.json`` ({} when it cannot be read)."""
    try:
        return guard_of(read_delivered(run.agents / "delivered.json"))
    except (FormatError, OSError):
        return {}


def guard_of(data: Mapping[str, Any]) -> dict[str, Any]:
    """The random policy a delivery (``delivered.json``'s content, since 2026-12-07) was held
    against: its return, the exported agents that did not beat it and whether none did; the
    keys whose values are well formed only (an older or damaged file gives fewer)."""
    out: dict[str, Any] = {}
    if finite_number(data.get("random_return")):
        out["random_return"] = float(data["random_return"])
    below = data.get("not_above_random")
    if isinstance(below, list) and all(isinstance(n, str) for n in below):
        out["not_above_random"] = below
    if isinstance(data.get("none_above_random"), bool):
        out["none_above_random"] = data["none_above_random"]
    return out


def _export_record(m: Mapping[str, Any]) -> tuple[int, str] | None:
    """``(time_ns, options)`` of a file's ``export_command``; None where it has none."""
    record = m.get("export_command")
    if not isinstance(record, Mapping):
        return None
    when, options = record.get("time_ns"), record.get("options")
    if type(when) is not int or not isinstance(options, str):
        return None
    return when, options


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


def _check_unchanged(
    path: Path, data: Mapping[str, Any], members: list[str], agents: Mapping[str, Row],
    again: str,
) -> None:  # fmt: skip
    """FormatError when a delivered member's folder no longer holds what was delivered (a
    later ``a2d-evo finetune`` rewrote it: its return or seeds differ from the
    row ``delivered.json`` recorded), which the report would set against the baselines as
    if it were the delivered agent scored on the final seeds. ``again``: the export command
    that delivers the front again, with the budget it was delivered with."""
    rows = {r["agent"]: r for r in data["exported"]}  # checked by read_delivered
    seeds = data.get("seeds")
    for name in members:
        row, agent = rows.get(name), agents.get(name)
        if agent is None:  # deleted since, or unreadable: the front would be shown without it
            raise FormatError(
                f"{path} lists {name}, which RUN_DIR/agents no longer holds as an agent (deleted "
                f"or unreadable); run {again} to deliver the front again"
            )
        if row is None:
            continue
        moved = row.get("return_mean") != agent.return_mean
        if isinstance(seeds, list) and agent.seeds is not None:
            moved = moved or list(agent.seeds) != seeds
        if moved:
            was = row.get("return_mean")
            shown = f"{was:.2f}" if isinstance(was, int | float) else "none"
            raise FormatError(
                f"{path}: {name} was changed after it was delivered (return "
                f"{agent.return_mean:.2f} now, {shown} delivered); run {again} to deliver "
                "the front again"
            )


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
    teacher_metrics = _agent_metrics(run.teacher_agent, "teacher", missing)
    teacher_arch = _agent_arch(run.teacher_agent) or cfg.teacher.arch
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
    by_export: dict[str, int] = {}
    commands: dict[str, tuple[int, str]] = {}
    kept: dict[str, str] = {}
    for folder in _own_subfolders(run, run.agents, missing):
        m = _agent_metrics(folder, f"agent {folder.name}", missing)
        if m is None:
            continue
        sources = m.get("sources")
        if isinstance(sources, Mapping) and from_another_front(sources.get("front"), front_sha):
            missing.append(
                f"agent {folder.name}: exported from an older `front.json` (its "
                f"`sources.front` differs); not reported: run `a2d-evo export {run.quoted}` again"
            )
            continue
        agents[folder.name] = row_from_metrics(folder.name, m, _agent_arch(folder), norm)
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
        if (command := _export_record(m)) is not None:
            commands[folder.name] = command
    if not agents:
        missing.append(f"exported agents (`{run.agents}`): run `a2d-evo export {run.quoted}`")
    delivered, delivered_budget, chosen_on, validated, supernet_steps, delivered_command = (
        _delivered(run, agents, missing, front_sha)
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
    for folder in _own_subfolders(run, run.baselines, missing):
        m = _agent_metrics(folder, f"baseline {folder.name}", missing)
        if m is not None and (why := _baseline_unlike(m, run, teacher_sha, supernet_steps,
                                                      delivered_budget)):  # fmt: skip
            missing.append(
                f"baseline {folder.name}: trained {why}, so it is not set against the front; "
                f"run `a2d-evo baselines {run.quoted}` to train it again"
            )
            unlike.add(folder.name)
        elif m is not None:
            row = row_from_metrics(folder.name, m, _agent_arch(folder), norm)
            method, width = _baseline_kind(folder.name, m)
            steps = m.get("env_steps")
            baselines[folder.name] = replace(
                row,
                extra={"method": method, "width_multiplier": width,
                       "env_steps": steps if finite_number(steps) else None},
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

    history, history_episodes = _read_history(run.search / "history.csv", missing)
    hv = _read_hypervolume(run.search / "hypervolume.csv", missing)
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
        teacher_arch=_arch_name(teacher_arch) if teacher_arch else "teacher",
        agents=agents,
        finetune=finetune,
        finetune_seeds=finetune_seeds,
        finetune_budget=finetune_budget,
        finetune_lr=finetune_lr,
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


def _subfolders(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _own_subfolders(run: RunFolder, folder: Path, missing: list[str]) -> list[Path]:
    """:func:`_subfolders` that lie inside the run folder; one a symlink leads out of (or
    ``folder`` itself) is not read, and the report says so."""
    if _leaves(run, folder, missing):
        return []
    return [p for p in _subfolders(folder) if not _leaves(run, p, missing)]


def _leaves(run: RunFolder, path: Path, missing: list[str]) -> bool:
    try:
        run.inside(path, "agent folders")
    except RunFolderError:
        missing.append(
            f"`{path}` is a symlink that leads outside the run folder (to `{path.resolve()}`): "
            "not read"
        )
        return True
    return False


def _agent_metrics(folder: Path, what: str, missing: list[str]) -> dict[str, Any] | None:
    path = folder / "metrics.json"
    if not path.is_file():
        if folder.is_dir() and what != "teacher":
            missing.append(f"{what}: `{path}` not found")
        return None
    if not (folder / "arch.json").is_file():  # the folder's commit mark (save_agent)
        missing.append(f"{what}: `{folder}` has no arch.json (its save was cut short)")
        return None
    try:
        m = read_json(path, f"{what} metrics")
        check_format_version(m, METRICS_FORMAT_VERSION, f"{what} metrics {path}")
        check_metrics(m, f"{what} metrics {path}")
        if finite_or_none(m.get("return_mean")) is None or finite_or_none(m.get("flops")) is None:
            raise FormatError(f"{what} metrics {path} lack a finite return_mean and flops")
    except FormatError as exc:
        missing.append(f"{what}: unreadable ({exc})")
        return None
    return dict(m)


def _agent_arch(folder: Path) -> dict[str, Any] | None:
    path = folder / "arch.json"
    if not path.is_file():
        return None
    try:  # read_json also turns a planted deep nesting (RecursionError) into FormatError
        meta = read_json(path, "agent file", max_bytes=MAX_ARCH_JSON_BYTES)
    except FormatError:
        return None
    arch = meta.get("arch") if isinstance(meta, dict) else None
    return arch if isinstance(arch, dict) else None


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


MAX_CSV_BYTES = 64 << 20
"""Largest search table the report reads: ``history.csv`` takes about 80 bytes an evaluated
arch (800,000 archs here: pop 4,096 over 200 generations passes it); each row becomes a dict
of about 140 times its bytes, so a planted 1 GB file would take the machine's memory."""


def _read_csv(path: Path, missing: list[str], what: str) -> list[dict[str, str]]:
    if not path.is_file():
        missing.append(f"{what} (`{path}`)")
        return []
    try:
        with path.open(newline="", encoding="utf-8") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_CSV_BYTES:
                missing.append(
                    f"{what}: `{path}` holds {size:,} bytes, more than the {MAX_CSV_BYTES:,} "
                    "the report reads; not shown"
                )
                return []
            return list(csv.DictReader(f))
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        missing.append(f"{what}: unreadable `{path}` ({exc})")
        return []


def _read_history(path: Path, missing: list[str]) -> tuple[list[tuple[float, float]], list[int]]:
    """``(flops, return_mean)`` of every evaluated candidate, and the episode counts seen."""
    out, episodes = [], set()
    for rec in _read_csv(path, missing, "search history"):
        flops, ret = _parse(rec.get("flops")), _parse(rec.get("return_mean"))
        if flops is not None and ret is not None and flops > 0:
            out.append((flops, ret))
            n = _parse(rec.get("episodes"))
            if n is not None:
                episodes.add(int(n))
    return out, sorted(episodes)


def _read_hypervolume(path: Path, missing: list[str]) -> list[tuple[int, float, int]]:
    out = []
    for rec in _read_csv(path, missing, "hypervolume per generation"):
        gen, hv, size = (_parse(rec.get(k)) for k in ("generation", "hypervolume", "front_size"))
        if gen is not None and hv is not None and size is not None:
            out.append((int(gen), hv, int(size)))
    return sorted(out)


def _parse(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else math.nan
    except ValueError:
        return None
    return value if math.isfinite(value) else None
