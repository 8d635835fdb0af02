"""``agents/delivered.json`` read back: the delivered front the report shows, and its guard.

``export`` writes the file (:func:`~a2d_evo.report.deliver.write_delivered`); the report
reads it here. A damaged file, one delivered from another ``front.json``, or one whose members
changed since is named under Missing, not shown as the delivered front.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from a2d_evo.config.compare import TRAINING_SECTIONS
from a2d_evo.config.overrides import recorded_set_flag
from a2d_evo.errors import FormatError
from a2d_evo.formats import (
    DELIVERED_FORMAT_VERSION,
    FINAL_SEEDS,
    VALIDATION_SEEDS,
    finite_number,
    validated,
)
from a2d_evo.report.front_file import from_another_front
from a2d_evo.report.pick import PICKS
from a2d_evo.report.rows import Row
from a2d_evo.runs.files import check_format_version, read_json_dict
from a2d_evo.runs.folder import RunFolder


def read_delivered(path: Path) -> dict[str, Any]:
    """``agents/delivered.json``, checked: its format version, ``members`` a list of agent
    names and ``exported`` a list of rows that each name an ``agent`` (FormatError otherwise;
    a shared run folder may hold anything)."""
    data = read_json_dict(path, "delivered front")
    check_format_version(data, DELIVERED_FORMAT_VERSION, f"delivered front {path}")
    members = data.get("members")
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        raise FormatError(f"{path}: 'members' must be a list of agent names")
    rows = data.get("exported")
    if not isinstance(rows, list) or not all(
        isinstance(r, dict) and isinstance(r.get("agent"), str) for r in rows
    ):
        raise FormatError(f"{path}: 'exported' must be a list of rows that each name an 'agent'")
    return data


def delivered_front(
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
    return members, budget, chosen_on, validated(rows), steps, export_record(data)


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


def export_record(m: Mapping[str, Any]) -> tuple[int, str] | None:
    """``(time_ns, options)`` of a file's ``export_command``; None where it has none."""
    record = m.get("export_command")
    if not isinstance(record, Mapping):
        return None
    when, options = record.get("time_ns"), record.get("options")
    if type(when) is not int or not isinstance(options, str):
        return None
    checked = checked_export_options(options)
    return None if checked is None else (when, checked)


def checked_export_options(options: str) -> str | None:
    """Recorded ``export`` options (:func:`~a2d_evo.report.front_export.export_options`)
    rebuilt word by word, shell-quoted; None unless every word is one of the options ``export``
    records: ``--pick all|knee|INDEX``, ``--max-flops=X``, ``--min-return=X``, ``--finetune
    N`` and ``--set`` of a training key. The file may be someone else's, and the report prints
    these options as a command to run."""
    try:
        words = shlex.split(options)
    except ValueError:  # an unclosed quote
        return None
    out: list[str] = []
    while words:
        word = words.pop(0)
        if word.partition("=")[0] in ("--max-flops", "--min-return") and "=" in word:
            try:
                float(word.partition("=")[2])
            except ValueError:
                return None
            out.append(shlex.quote(word))
        elif word in ("--pick", "--finetune", "--set") and words:
            value = words.pop(0)
            if word == "--set":
                flag = recorded_set_flag(f"--set {shlex.quote(value)}", TRAINING_SECTIONS)
                if flag is None:
                    return None
                out.append(flag)
            elif value.isascii() and (value.isdigit() or (word == "--pick" and value in PICKS)):
                out.append(f"{word} {value}")
            else:
                return None
        else:
            return None
    return " ".join(out)


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
