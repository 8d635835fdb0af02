"""The report's Reproduce section: the commands that rebuild each stage of a run as it was
trained (its own stage configs, resumes and raised budgets, torchrun ranks, exports and
baselines)."""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from a2d_evo.config import Config, env_import_flags
from a2d_evo.config.compare import TRAINING_SECTIONS, config_diff
from a2d_evo.errors import FormatError, RunFolderError
from a2d_evo.formats import (
    BASELINE_METHODS,
    BELOW_RANDOM_INDEX,
    DEFAULT_WIDTHS,
    EXPORTED_PREFIXES,
    FRONT_INDEX,
)
from a2d_evo.report.plots import width_text
from a2d_evo.report.rows import Row
from a2d_evo.report.run_data import RunData
from a2d_evo.runs.files import read_json_dict
from a2d_evo.runs.folder import RunFolder
from a2d_evo.runs.layout import STAGE_SECTIONS
from a2d_evo.runs.stage_budget import BUDGET_KEYS, read_config_history


# ----------------------------------------------------------------------------- reproduce
def stage_config(run: RunFolder, stage: str, cfg: Config) -> tuple[Config, Path]:
    """A stage's own config and the path that reproduces it: ``RUN_DIR/config.yaml`` unless
    the stage ran with a config that differs on its sections, or for the search on the training
    sections too (:data:`~a2d_evo.config.compare.TRAINING_SECTIONS`), which ``export`` and
    ``baselines`` read from the search's config and record their ``--set`` flags over."""
    try:
        own = run.stage_config(stage)
    except RunFolderError:  # a broken stage config: the run's
        own = None
    if own is None:
        return cfg, run.config_path
    later = TRAINING_SECTIONS if stage == "search" else ()
    if config_diff(own, cfg, STAGE_SECTIONS[stage] + later):
        return own, run.stage(stage) / "config.yaml"
    return own, run.config_path


def _teacher_line(run: RunFolder, config: str, out: str) -> str:
    """The command that made the run's teacher: ``import-teacher`` of the file it came from
    when its ``metrics.json`` says so (``source``, ``imported_from``), else ``train-teacher``."""
    try:
        metrics = read_json_dict(run.teacher_agent / "metrics.json", "teacher metrics")
    except (FormatError, OSError):
        metrics = {}
    source = metrics.get("source")
    if not (isinstance(source, str) and source.startswith("import-teacher")):
        return _on_ranks(f"a2d-evo train-teacher  --config {config} --out {out}", metrics)
    fmt = source.removeprefix("import-teacher").strip(" ()")
    src = metrics.get("imported_from")
    return (
        f"a2d-evo import-teacher {shlex.quote(src) if isinstance(src, str) else 'SOURCE'} "
        f"--format {fmt if fmt in ('sb3', 'cleanrl') else 'auto'} --config {config} --out {out}"
    )


def _on_ranks(line: str, record: Mapping[str, Any]) -> str:
    """A training stage's Reproduce ``line`` under torchrun when ``record`` (the teacher's
    ``metrics.json``, the supernet's ``summary.json``) says it trained on several processes
    (``world_sizes``: ``[first update, rank count]`` per piece); as it is otherwise."""
    pieces = record.get("world_sizes")
    pieces = pieces if isinstance(pieces, list) else []
    sizes = [p[1] for p in pieces if isinstance(p, list) and len(p) == 2]
    sizes = [n for n in sizes if type(n) is int and n > 0]
    if not sizes or max(sizes) == 1:
        return line
    torchrun = f"torchrun --standalone --nproc-per-node {sizes[0]} -m a2d_evo "
    line = torchrun + line.removeprefix("a2d-evo ")
    if len(sizes) > 1:
        counts = " then ".join(str(n) for n in sizes)
        line += f"  # trained on {counts} processes, resumed at each change (docs/distributed.md)"
    return line


def _own_teacher(run: RunFolder) -> str:
    """`` --teacher DIR`` when the supernet was distilled from another teacher than the run's
    own (:meth:`RunFolder.supernet_teacher`), else ""."""
    teacher, own = run.supernet_teacher()
    return "" if teacher is None or own else f" --teacher {shlex.quote(teacher)}"


def reproduce_commands(cfg: Config, run: RunFolder, data: RunData) -> list[str]:
    """The Reproduce lines, each with the ``--env-import`` a recorded import off the
    allow-list needs (every command but ``report`` builds the env)."""
    grant = env_import_flags(cfg.env.imports)
    lines = _plain_commands(cfg, run, data)
    if not grant:
        return lines
    return [
        line if line.startswith("a2d-evo report ") or not line.startswith(("a2d-evo ", "torch"))
        else line.replace("  # ", f"{grant}  # ", 1) if "  # " in line
        else line + grant
        for line in lines
    ]  # fmt: skip


def _plain_commands(cfg: Config, run: RunFolder, data: RunData) -> list[str]:
    out = shlex.quote(f"{run.root}-repro")
    paths = {
        s: shlex.quote(str(stage_config(run, s, cfg)[1])) for s in ("teacher", "supernet", "search")
    }
    search = stage_config(run, "search", cfg)[0].search
    # a search a --resume took further (search.gens / search.budget_steps raised) started with
    # the values before the raises: it is reproduced as it ran, start then each raise
    start, resumed = _budgets(_raises(run, "search"))
    start_budget = (
        f" --set search.budget_steps={start['search.budget_steps']}"
        if "search.budget_steps" in start
        else ""
    )
    other = _own_teacher(run)
    # distilled from a teacher outside the run: evolve needs that very teacher in the run
    teacher = (
        f"mkdir -p {shlex.quote(f'{run.root}-repro/teacher')} && cp -r"
        f"{other.removeprefix(' --teacher')} {shlex.quote(f'{run.root}-repro/teacher/agent')}"
        if other
        else _teacher_line(run, paths["teacher"], out)
    )
    trained_here = not other and " train-teacher " in f" {teacher.split('--config')[0]} "
    supernet = _on_ranks(
        f"a2d-evo train-supernet --config {paths['supernet']} --out {out}{other}",
        read_json_dict(run.supernet / "summary.json", "supernet summary"),
    )
    lines = [
        # the run's own trained teacher only (not a copied one, nor an imported one)
        *(_as_trained(teacher, run, "teacher") if trained_here else [teacher]),
        *_as_trained(supernet, run, "supernet"),
        f"a2d-evo evolve         --config {paths['search']} --out {out} "
        f"--pop {search.pop} --gens {start.get('search.gens', search.gens)} "
        f"--episodes {search.episodes}{start_budget}",
    ]
    for now in resumed:
        sets = " ".join(f"--set {k}={v}" for k, v in now.items())
        lines.append(
            f"a2d-evo evolve         --config {paths['search']} --out {out} --resume {sets}"
        )
    # export fine-tunes what it exports (the delivery's budget, else the one its agents
    # record, 0 included); other fine-tunes were by hand
    budget = data.delivered_budget
    exported = {data.export_finetune[n] for n in data.agents if n in data.export_finetune}
    if budget is None and len(exported) == 1:
        budget = exported.pop()
    by_export = f" --finetune {budget}" if budget is not None else ""
    # a rate given on export's command line (``--set finetune.lr``) is only in the agents' files
    rates = {lr for name, lr in data.finetune_lr.items() if name in data.agents}
    if budget and len(rates) == 1 and rates != {cfg.finetune_lr}:
        by_export += f" --set finetune.lr={next(iter(rates)):g}"
    fronts = sorted(name for name in data.agents if name.startswith("front_"))
    if (as_ran := _export_lines(data, out)) is not None:
        lines += as_ran
    elif fronts:  # agents exported before the options were recorded: as their budgets say
        lines.append(f"a2d-evo export {out} --pick all{by_export}")
        # a member exported again on its own budget (`export --pick N --finetune B`)
        whole = budget if budget is not None else cfg.finetune.steps
        for name in fronts:
            own_budget = data.export_finetune.get(name)
            index = name.removeprefix("front_")
            if own_budget is not None and own_budget != whole and index.isdigit():
                lines.append(f"a2d-evo export {out} --pick {int(index)} --finetune {own_budget}")
    if "knee" in data.agents and as_ran is None:
        knee = data.export_finetune.get("knee", budget)  # its own export's, where it differs
        own = f" --finetune {knee}" if knee != budget and knee is not None else by_export
        lines.append(f"a2d-evo export {out} --pick knee{own}")
    for name in data.finetune:
        steps = data.finetune_budget.get(name)
        by_its_export = steps in (budget, data.export_finetune.get(name))
        exported_agent = name == "knee" or name.startswith(EXPORTED_PREFIXES)
        if steps is not None and by_its_export and exported_agent:
            continue
        # finetune_budget adds up every fine-tune: after the export's own, the one by hand
        # is the rest (the lines above repeat the export's)
        done = data.export_finetune.get(name) if exported_agent else None
        if steps is not None and done and steps > done:
            steps -= done
        agent = shlex.quote(f"{run.root}-repro/agents/{name}")
        sets = "".join(f" {flag}" for flag in data.finetune_sets.get(name, ()))
        lines.append(
            f"a2d-evo finetune {agent} --steps {steps}{sets}"
            if steps is not None
            else f"a2d-evo finetune {agent} --steps STEPS{sets}  # its budget is not recorded"
        )
    if data.baselines:
        lines += _baseline_lines(data.baselines, out)
    lines.append(f"a2d-evo report {out}")
    return lines


def _baseline_lines(baselines: Mapping[str, Row], out: str) -> list[str]:
    """The ``baselines`` commands that train the methods and widths found: one per set of
    widths and ``--set`` flags (``baseline_sets``: what each was trained with over the run's
    config), naming ``--methods`` unless every method was trained at them."""
    by_method: dict[tuple[str, tuple[str, ...]], set[float]] = {}
    for row in baselines.values():
        method, width = row.extra.get("method"), row.extra.get("width_multiplier")
        if method in BASELINE_METHODS and width is not None:
            sets = tuple(row.extra.get("sets") or ())
            by_method.setdefault((str(method), sets), set()).add(width)
    if not by_method:
        return [f"a2d-evo baselines {out} --widths {','.join(map(width_text, DEFAULT_WIDTHS))}"]
    groups: dict[tuple[tuple[float, ...], tuple[str, ...]], list[str]] = {}
    for (method, sets), widths in sorted(
        by_method.items(), key=lambda kv: (kv[0][1], BASELINE_METHODS.index(kv[0][0]))
    ):
        groups.setdefault((tuple(sorted(widths)), sets), []).append(method)
    return [
        f"a2d-evo baselines {out} --widths {','.join(map(width_text, widths))}"
        + ("" if methods == list(BASELINE_METHODS) else f" --methods {','.join(methods)}")
        + "".join(f" {flag}" for flag in sets)
        for (widths, sets), methods in groups.items()
    ]


def _export_lines(data: RunData, out: str) -> list[str] | None:
    """The ``export`` commands in the order they ran, from the options and times each
    exported agent and the delivery record (``export_command``), each where it last ran (a
    member an export kept holds the record of the one that wrote it); None where an exported
    agent records none (files from before 2026-12-06)."""
    names = sorted(n for n in data.agents if n == "knee" or n.startswith(EXPORTED_PREFIXES))
    if not names or any(n not in data.export_command for n in names):
        return None
    delivered = {data.delivered_command} if data.delivered_command else set()
    ran = [options for _, options in sorted({data.export_command[n] for n in names} | delivered)]
    return [
        f"a2d-evo export {out} {options}"
        for i, options in enumerate(ran)
        if options not in ran[i + 1 :]
    ]


def _raises(run: RunFolder, stage: str) -> list[dict[str, Any]]:
    """The budget raises (:data:`BUDGET_KEYS`) the ``--resume`` commands of ``stage``
    recorded, in order (none when the history is absent or unreadable); only changes whose
    old and new values are whole numbers: they are printed into commands."""
    try:
        changes = read_config_history(run.stage(stage))
    except FormatError:
        return []
    keys = BUDGET_KEYS[stage]

    def count(value: Any) -> bool:  # a budget; anything else (a received file) is not printed
        return type(value) is int and value >= 0

    return [
        c for c in changes if c.get("key") in keys and count(c.get("from")) and count(c.get("to"))
    ]


def _as_trained(line: str, run: RunFolder, stage: str) -> list[str]:
    """A training stage's Reproduce ``line`` as the stage ran: started at the budget before
    the raises its ``--resume`` commands recorded, then one ``--resume`` per raise (a raise
    continues from the checkpoint: one straight run at the final budget trains otherwise,
    since its learning-rate decay spans the whole total)."""
    raises = _raises(run, stage)
    if not raises:
        return [line]
    body, sep, comment = line.partition("  # ")
    tail = sep + comment
    start, resumed = _budgets(raises)
    lines = [body + "".join(f" --set {k}={v}" for k, v in start.items()) + tail]
    for now in resumed:
        sets = "".join(f" --set {k}={v}" for k, v in now.items())
        lines.append(f"{body} --resume{sets}{tail}")
    return lines


def _budgets(raises: Sequence[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The budgets a stage started with (each raised key at its value before the raises) and,
    per ``--resume`` that raised them (:func:`_resumes`), every raised key's value after it."""
    now: dict[str, Any] = {}
    for change in raises:
        now.setdefault(change["key"], change["from"])
    start = dict(now)
    resumed = []
    for group in _resumes(raises):
        for change in group:
            now[change["key"]] = change["to"]
        resumed.append(dict(now))
    return start, resumed


def _resumes(raises: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """``raises`` grouped by the ``--resume`` that made them: one time stamp, each key once
    (two resumes within one second share a stamp, but one raises a key only once)."""
    groups: list[list[dict[str, Any]]] = []
    for change in raises:
        group = groups[-1] if groups else None
        if (
            group is None
            or group[0].get("time") != change.get("time")
            or any(c["key"] == change["key"] for c in group)
        ):
            groups.append([change])
        else:
            group.append(change)
    return groups


def exported_names(data: RunData) -> list[str]:
    """Per front row, the agent folders exported from it (by ``front_index``, else arch)."""
    names: list[str] = []
    for row in data.front:
        key = json.dumps(row.arch_dict, sort_keys=True)
        hits = [
            name
            for name, agent in data.agents.items()
            if str(agent.extra.get(FRONT_INDEX, "")) == row.label
            or (
                FRONT_INDEX not in agent.extra
                and BELOW_RANDOM_INDEX not in agent.extra  # of no front row
                and json.dumps(agent.arch_dict, sort_keys=True) == key
            )
        ]
        names.append(", ".join(hits))
    return names
