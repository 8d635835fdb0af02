"""The report of a run: Pareto plot, hypervolume plot, and ``report.md``.

``write_report(cfg, run)`` reads the run folder with :func:`a2d_evo.report.run_data.load_run` and
writes ``RUN_DIR/report/``: the tables, the dominance verdicts and the figures. Only the
finished search is required; every other part that is missing is named in the report, and the
rest renders.

Intervals are those of ``a2d-evo eval``: ``mean +- t * s / sqrt(n)``, ``t`` Student's
two-sided 95% quantile with ``n - 1`` degrees of freedom (:func:`~a2d_evo.formats.t95`) and
``s`` the sample standard deviation (ddof = 1) over the ``n`` episodes; ``metrics.json``
records the population one (ddof = 0), so ``s = std * sqrt(n / (n - 1))``.
A baseline is *dominated* when some front member has at most its FLOPs and at least its
normalised return, strictly better in one (point estimates; the report prints the return
margin with its interval so a reader can judge the noise). The second verdict is paired
(:func:`paired_dominance`): a member with at most the baseline's FLOPs, scored on the same
seeds, whose per-episode difference in normalised return has a 95% lower bound above
``-NONINFERIORITY_MARGIN`` (issue [J]'s rule).
"""

from __future__ import annotations

import json
import math
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from a2d_evo.config import Config, env_import_flags
from a2d_evo.errors import FormatError, RunFolderError
from a2d_evo.files import read_json_dict, write_bytes, write_text
from a2d_evo.formats import (
    BASELINE_METHODS,
    EXPORTED_PREFIXES,
    FINAL_SEEDS,
    KEPT_FINE_TUNED,
    KEPT_INHERITED,
    NONINFERIORITY_MARGIN,
    VALIDATION_SEEDS,
    best_paired,
    ci95,
    count_text,
    paired_lower95,
    tell_apart,
    told_apart_span,
    weak_teacher_caution,
)
from a2d_evo.locks import writes
from a2d_evo.report.plots import (
    baseline_marks,
    episodes_text,
    hypervolume_png,
    pareto_png,
    seeds_text,
    width_text,
)
from a2d_evo.report.run_data import (
    DEFAULT_WIDTHS,
    Row,
    RunData,
    _front_rows,
    _num,
    guard_of,
    load_run,
)
from a2d_evo.runfolder import (
    BUDGET_KEYS,
    STAGE_SECTIONS,
    RunFolder,
    config_diff,
    read_config_history,
)
from a2d_evo.search.problem import rescoring_rule


# ----------------------------------------------------------------------------- tables
def _si(x: float | None) -> str:
    if x is None:
        return "n/a"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:.3g}"


def _fraction(flops: float, teacher_flops: float | None) -> str:
    if not teacher_flops:
        return "n/a"
    return f"{100.0 * flops / teacher_flops:.3g}%"


def _return(row: Row) -> str:
    ci = row.ci95
    return f"{row.return_mean:.2f} ± {ci:.2f}" if ci is not None else f"{row.return_mean:.2f}"


def _opt(x: float | None, fmt: str) -> str:
    return "n/a" if x is None else format(x, fmt)


def _chosen_on_sentence(data: RunData) -> str:
    """Which seeds chose the delivered members, and what that means for their figures."""
    if data.delivered_chosen_on == VALIDATION_SEEDS:
        return (
            "The members are chosen on the fine-tune's validation seeds and scored on the "
            "final seeds, which did not choose them."
        )
    fresh = "`benchmarks/pipeline_compare.py` re-scores them on fresh ones"
    if data.delivered_validated:  # export --min-return: a filter on the final seeds first
        return (
            "The members are filtered on the final seeds that score them (`export "
            "--min-return`), then chosen on the fine-tune's validation seeds: a slight "
            f"optimism; {fresh}."
        )
    return (
        "The members are chosen and scored on the same final seeds (no validation ran: a "
        f"slight optimism; {fresh})."
    )


def _finetune_cell(data: RunData, name: str) -> str:
    """An exported agent's fine-tune: ``before → after`` (on seeds of its own where they are
    not the row's), and whether its inherited weights ship (the validation rejected the
    fine-tune, or none ran); an agent that export gave a fine-tune budget but that has none
    recorded was left by an interrupted export."""
    cell = " → ".join(f"{v:.2f}" for v in data.finetune.get(name, ()))
    if name in data.finetune_seeds:  # a fine-tune by hand: not the row's seeds
        cell += f" (on its own {count_text(data.finetune_seeds[name], 'seed')})"
    if data.kept.get(name) != KEPT_INHERITED:
        return cell
    if not cell and data.export_finetune.get(name, 0) > 0 and name not in data.finetune_budget:
        return "fine-tune pending (export stopped before it: run `a2d-evo export` again)"
    return f"{cell} (inherited weights kept)" if cell else "inherited weights kept"


def _inherited_budget_note(cfg: Config, run: RunFolder, data: RunData, rows: list[Row]) -> str:
    """Without a delivered front the baselines face the front's inherited weights, which had
    the supernet's steps alone: name the baselines trained for more ("" when none was, or
    when the fine-tuned front is the one compared)."""
    if data.delivered:
        return ""
    steps = _stage_config(run, "supernet", cfg)[0].supernet.total_steps
    more = [
        f"`{r.label}`"
        for r in rows
        if isinstance(r.extra.get("env_steps"), int) and r.extra["env_steps"] > steps
        and r.extra.get("method") != "ppo"
    ]  # fmt: skip
    if not more:
        return ""
    return (
        f" The front's rows here are its inherited weights: the supernet's {steps:,} env steps "
        f"(shared) and no fine-tune of their own; {', '.join(more)} trained for more, so these "
        "verdicts give "
        f"the baselines the larger budget (`a2d-evo export {run.quoted}` delivers the fine-tuned "
        "front they are budgeted against)."
    )


def _two_teacher_returns(data: RunData) -> str:
    """Why the teacher has two returns: its own evaluation and R_teacher."""
    own = data.teacher
    if own is None:
        return ""
    rescored = f"{count_text(data.front_episodes[-1], 'episode')}, " if data.front_episodes else ""
    return (
        f"The row above is the teacher's own evaluation, made when it was trained or imported "
        f"(`teacher/agent/metrics.json`: {count_text(own.episodes, 'episode')}, "
        "`eval.episodes` unless `teacher.eval_episodes` is set, on seeds of its own); "
        "R_teacher is the same teacher replayed on the front's re-scoring seeds "
        f"({rescored}`search.final_episodes`), so "
        "that every normalised return compares agents on the same episodes. The two means "
        "differ only through those seeds and episode counts."
    )


COLUMNS = ("arch", "FLOPs", "FLOPs/teacher", "params", "latency ms", "return ± 95%", "norm. return")


def _cells(row: Row, teacher_flops: float | None) -> list[str]:
    return [
        row.arch,
        _si(row.flops),
        _fraction(row.flops, teacher_flops),
        _si(row.params),
        _opt(row.latency_ms, ".3g"),
        _return(row),
        _opt(row.normalised_return, ".3f"),
    ]


def _grid(
    rows: Sequence[Row],
    teacher_flops: float | None,
    first: str,
    extra: Sequence[tuple[str, Sequence[str]]] = (),
) -> tuple[list[str], list[list[str]]]:
    header = [first, *COLUMNS, *(name for name, _ in extra)]
    body = [
        [r.label, *_cells(r, teacher_flops), *(values[i] for _, values in extra)]
        for i, r in enumerate(rows)
    ]
    return header, body


_NUMBER = re.compile(r"^[-+]?[0-9][0-9.,]*(e[-+]?[0-9]+)?[kMG%]?$|^n/a$|^$")


def _aligns(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[bool]:
    """Right-align the columns past the first two whose cells all read as numbers."""
    cols = list(zip(header, *body, strict=True))
    return [
        i >= 2 and all(_NUMBER.match(p) for c in col[1:] for p in c.split(" ± ")[:2])
        for i, col in enumerate(cols)
    ]


def _fixed(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    widths = [max(len(c) for c in col) for col in zip(header, *body, strict=True)]
    right = _aligns(header, body)

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True)
        ).rstrip()

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, body)])


def _markdown(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    esc = [[c.replace("|", "\\|") for c in cells] for cells in (header, *body)]
    align = ["---:" if r else "---" for r in _aligns(header, body)]
    lines = ["| " + " | ".join(esc[0]) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in esc[1:]]
    return "\n".join(lines)


def front_table(front: list[dict[str, Any]], teacher_flops: float) -> str:
    """Fixed-width text table of the front, cheapest first, for the terminal; ``#`` is the
    entry's index in ``front.json`` (what ``export --pick`` takes)."""
    return _fixed(*_grid(_front_rows(front, None), teacher_flops, "#"))


def told_apart(members: Sequence[tuple[str, float, float | None, float | None]]) -> str:
    """How many ``(name, return, 95% half-width, normalised return)`` members their intervals
    tell apart (the largest set of mutually separate intervals, :func:`tell_apart`), the
    normalised span of them all and the widest of 3 or more told apart
    (:func:`told_apart_span`); "" for fewer than two members or where an interval is unknown
    (a member scored on one episode)."""
    apart = tell_apart([(r, h) for _, r, h, _ in members])
    if not apart:
        return ""
    norm = [n for *_, n in members if n is not None]
    span = (
        f"; the {len(members)} members' normalised returns span {max(norm) - min(norm):.3f}"
        if norm
        else ""
    )
    if len(apart) == 1:  # every pair overlaps: no set of two or more
        return f"Told apart by their 95% intervals: none of the {len(members)} members{span}."
    names = ", ".join(f"`{members[i][0]}`" for i in sorted(apart))
    wide = (
        told_apart_span([(r, h) for _, r, h, _ in members], norm)
        if len(norm) == len(members)
        else None
    )
    if wide is not None:  # [J]'s demo target: members told apart that span it themselves
        span += f"; 3 or more told apart span up to {wide:.3f}"
    return (
        f"Told apart by their 95% intervals: {len(apart)} of {len(members)} members "
        f"({names}; the largest set whose intervals do not overlap){span}."
    )


def random_guard_sentence(guard: Mapping[str, Any], chosen_on: str) -> str:
    """Which exported agents the delivery left out as no better than the uniform-random
    policy (a 0-FLOPs agent), on which seeds; "" when none was."""
    below = guard.get("not_above_random") or []
    if not below:
        return ""
    r = guard.get("random_return")
    where = (
        f"its return {r:.1f} on the validation episodes that chose the delivery"
        if chosen_on == VALIDATION_SEEDS and isinstance(r, float)
        else "normalised return 0 on the final seeds"
    )
    names = ", ".join(f"`{n}`" for n in below)
    if guard.get("none_above_random"):
        return (
            f"No exported agent beat the uniform-random policy ({where}): {names}; the best "
            "of them is delivered alone."
        )
    return f"Not delivered, as no better than the uniform-random policy ({where}): {names}."


def delivered_table(delivered: dict[str, Any]) -> str:
    """The delivered front as a Markdown table: FLOPs, the delivered and the inherited return,
    and which weights ship (``fine-tuned``, or ``inherited`` where the fine-tune's validation
    rejected it or there was none); then how many members the intervals tell apart."""
    lines = [
        "| agent | FLOPs | return (95% CI) | normalised | inherited return | weights |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    rows = {r["agent"]: r for r in delivered["exported"]}
    members = []
    for name in delivered["members"]:
        r = rows[name]
        half = ci95(r.get("return_std"), r.get("episodes"))
        members.append((name, r["return_mean"], half, r["normalised_return"]))
        interval = "" if half is None else f" ± {half:.1f}"  # none for one episode, no spread
        lines.append(
            f"| {name} | {r['flops']:,} | {r['return_mean']:.1f}{interval} | "
            f"{r['normalised_return']:.3f} | {r['inherited_return_mean']:.1f} | "
            f"{r.get('kept', KEPT_FINE_TUNED if r.get('finetune_steps') else KEPT_INHERITED)} |"
        )
    apart = told_apart(members)
    guard = random_guard_sentence(guard_of(delivered), str(delivered.get("chosen_on", FINAL_SEEDS)))
    return "\n".join(lines + (["", apart] if apart else []) + (["", guard] if guard else []))


def markdown_table(
    rows: Sequence[Row],
    teacher_flops: float | None,
    first: str = "#",
    extra: Sequence[tuple[str, Sequence[str]]] = (),
) -> str:
    """Markdown table of rows (front, teacher, baselines, agents), plus ``extra`` columns."""
    return _markdown(*_grid(rows, teacher_flops, first, extra))


# ----------------------------------------------------------------------------- dominance
def dominance(baseline: Row, front: Sequence[Row], span: float | None = None) -> tuple[bool, str]:
    """Whether the front dominates ``baseline`` (<= FLOPs, >= normalised return, one strict),
    and a sentence saying by which member, or why not. ``span`` = R_teacher - R_random turns
    raw-return intervals into normalised ones for the margin."""
    b_nr = baseline.normalised_return
    if b_nr is None:
        return False, "undecided: no normalised return (teacher or random return unknown)"
    wins = [
        f
        for f in front
        if f.normalised_return is not None
        and f.flops <= baseline.flops
        and f.normalised_return >= b_nr
        and (f.flops < baseline.flops or f.normalised_return > b_nr)
    ]
    if wins:
        best = min(wins, key=lambda f: (f.flops, -(f.normalised_return or 0.0)))
        return True, (
            f"**dominated** by {len(wins)} of {count_text(len(front), 'front member')}; the "
            f"cheapest, #{best.label} `{best.arch}`, uses {best.flops / baseline.flops:.3g}x its "
            "FLOPs "
            f"at normalised return {_margin(best, baseline, span)}"
        )
    cheaper = [f for f in front if f.flops <= baseline.flops and f.normalised_return is not None]
    if not cheaper:
        return False, "**not dominated**: no front member uses at most its FLOPs"
    best = max(cheaper, key=lambda f: f.normalised_return or 0.0)
    return False, (
        f"**not dominated**: the best front member with at most its FLOPs, #{best.label} "
        f"`{best.arch}`, reaches normalised return {_margin(best, baseline, span)}"
    )


def paired_dominance(
    baseline: Row, front: Sequence[Row], span: float | None, margin: float = NONINFERIORITY_MARGIN
) -> tuple[bool | None, str]:
    """Whether a front member with at most ``baseline``'s FLOPs is non-inferior to it on the
    same episodes: the 95% lower bound (:func:`~a2d_evo.formats.paired_lower95`) of the paired
    difference in normalised return (``(a_i - b_i) / span`` per seed) above ``-margin``.

    None (undecided) when the episodes cannot be paired (no per-episode returns, other seeds,
    or no ``span``), and when no paired member passes while a cheaper member that could not be
    paired might have: a "no" needs every cheaper member tried."""
    if not span or span <= 0:
        return None, "undecided: no R_teacher - R_random to normalise by"
    if baseline.episode_returns is None:
        return None, "undecided: its metrics.json keeps no per-episode returns"
    cheaper = [f for f in front if f.flops <= baseline.flops]
    if not cheaper:
        return False, "no front member uses at most its FLOPs"
    b = np.asarray(baseline.episode_returns) / span
    found, unpaired = best_paired(b, [(f, _paired_episodes(f, baseline, span)) for f in cheaper])
    if found is None:
        return None, "undecided: no front member at most its FLOPs played the same seeds"
    best, lower, diff = found
    text = (
        f"#{best.label} `{best.arch}`: paired difference {diff:+.3f}, 95% lower bound "
        f"{lower:+.3f} ({'above' if lower > -margin else 'not above'} -{margin:g}, "
        f"{len(baseline.episode_returns)} episodes)"
    )
    if lower > -margin:
        return True, text
    if unpaired:
        labels = ", ".join(f"#{f.label}" for f in unpaired)
        return None, f"undecided: {text}; {labels} played other seeds and could not be paired"
    return False, text


def _paired_episodes(row: Row, other: Row, span: float) -> np.ndarray | None:
    """``row``'s per-episode returns over ``span`` where they pair with ``other``'s (the same
    seeds, in order); None where ``row`` keeps none or played other seeds."""
    if row.episode_returns is None or row.seeds != other.seeds:
        return None
    return np.asarray(row.episode_returns) / span


def _below_threshold(teacher: Row | None, env_id: str) -> list[str]:
    """A note (and a blank line) when the teacher scored below the reward threshold gymnasium
    registers for the task (its ``metrics.json``'s ``env_reward_threshold``); else none."""
    threshold = _num(teacher.extra.get("env_reward_threshold")) if teacher else None
    if teacher is None or threshold is None or teacher.return_mean >= threshold:
        return []
    return [
        f"**Note:** the teacher's greedy return on its own {teacher.episodes} episodes "
        f"({teacher.return_mean:.2f}) is below the reward threshold {threshold:g} gymnasium "
        f"registers for {env_id}: every normalised return here is relative to this teacher, "
        "so members may score above 1.",
        "",
    ]


def _margin(front: Row, baseline: Row, span: float | None) -> str:
    """``a vs b (diff +- 95%)`` in normalised return: the half-width of the paired interval
    (marked ``paired``) where both rows keep per-episode returns on the same seeds, else one
    from the two rows' own intervals, which ignores what the shared seeds have in common."""
    a, b = front.normalised_return or 0.0, baseline.normalised_return or 0.0
    text = f"{a:.3f} vs {b:.3f} ({a - b:+.3f}"
    if not span:
        return text + ")"
    ours, theirs = _paired_episodes(front, baseline, span), _paired_episodes(baseline, front, span)
    if ours is not None and theirs is not None:
        lower = paired_lower95(ours, theirs)
        if lower is not None:
            return text + f" ± {float((ours - theirs).mean()) - lower:.3f} paired)"
    ca, cb = front.ci95, baseline.ci95
    if ca is not None and cb is not None:
        text += f" ± {math.hypot(ca, cb) / abs(span):.3f}"
    return text + ")"


# ----------------------------------------------------------------------------- plots
def _stage_config(run: RunFolder, stage: str, cfg: Config) -> tuple[Config, Path]:
    """A stage's own config and the path that reproduces it: ``RUN_DIR/config.yaml`` unless
    the stage ran with a config that differs on its sections."""
    try:
        own = run.stage_config(stage)
    except RunFolderError:  # a broken stage config: the run's
        own = None
    if own is None:
        return cfg, run.config_path
    if config_diff(own, cfg, STAGE_SECTIONS[stage]):
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


def _commands(cfg: Config, run: RunFolder, data: RunData) -> list[str]:
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
        s: shlex.quote(str(_stage_config(run, s, cfg)[1]))
        for s in ("teacher", "supernet", "search")
    }
    search = _stage_config(run, "search", cfg)[0].search
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
        lines.append(
            f"a2d-evo finetune {agent} --steps {steps}"
            if steps is not None
            else f"a2d-evo finetune {agent} --steps STEPS  # its budget is not recorded"
        )
    if data.baselines:
        lines += _baseline_lines(data.baselines, out)
    lines.append(f"a2d-evo report {out}")
    return lines


def _baseline_lines(baselines: Mapping[str, Row], out: str) -> list[str]:
    """The ``baselines`` commands that train the methods and widths found: one per set of
    widths, naming ``--methods`` unless every method was trained at them."""
    by_method: dict[str, set[float]] = {}
    for row in baselines.values():
        method, width = row.extra.get("method"), row.extra.get("width_multiplier")
        if method in BASELINE_METHODS and width is not None:
            by_method.setdefault(method, set()).add(width)
    if not by_method:
        return [f"a2d-evo baselines {out} --widths {','.join(map(width_text, DEFAULT_WIDTHS))}"]
    groups: dict[tuple[float, ...], list[str]] = {}
    for method in BASELINE_METHODS:
        if method in by_method:
            groups.setdefault(tuple(sorted(by_method[method])), []).append(method)
    return [
        f"a2d-evo baselines {out} --widths {','.join(map(width_text, widths))}"
        + ("" if methods == list(BASELINE_METHODS) else f" --methods {','.join(methods)}")
        for widths, methods in groups.items()
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
    recorded, in order (none when the history is absent or unreadable)."""
    try:
        changes = read_config_history(run.stage(stage))
    except FormatError:
        return []
    keys = BUDGET_KEYS[stage]
    return [c for c in changes if c.get("key") in keys and "from" in c and "to" in c]


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


def _exported_names(data: RunData) -> list[str]:
    """Per front row, the agent folders exported from it (by ``front_index``, else arch)."""
    names: list[str] = []
    for row in data.front:
        key = json.dumps(row.arch_dict, sort_keys=True)
        hits = [
            name
            for name, agent in data.agents.items()
            if str(agent.extra.get("front_index", "")) == row.label
            or (
                "front_index" not in agent.extra
                and "below_random_index" not in agent.extra  # of no front row
                and json.dumps(agent.arch_dict, sort_keys=True) == key
            )
        ]
        names.append(", ".join(hits))
    return names


def _settings(searched: Config, data: RunData) -> list[str]:
    """Bullet lines: what the search ran (``front.json``'s ``search`` block first, then the
    search stage's own config)."""
    search = searched.search
    ran = data.search
    final = data.front_episodes[-1] if data.front_episodes else search.final_episodes
    units = data.reference_units
    ref = f"`{json.dumps(data.reference_point)}`"
    if isinstance(units, list):
        ref += " in (" + ", ".join(map(str, units)) + ")"
    played = ran.get("generations")
    gens = f"{search.gens} generations"
    if isinstance(played, int) and played != search.gens:  # a budget or the space stopped it
        gens = f"at most {search.gens} generations ({played} played)"
    evaluated = ran.get("evaluations", len(data.history))
    if evaluated != len(data.history) and data.history:  # archs played past a budget
        evaluated = (
            f"{evaluated} within the budget ({len(data.history)} played; the Pareto plot "
            "shows every one)"
        )
    lines = [
        f"- population {ran.get('pop', search.pop)}, {gens}, "
        f"{ran.get('episodes', search.episodes)} episodes per candidate (the same seeds for "
        f"every candidate of a generation); the final front re-scored with {final} episodes",
        f"- root seed {searched.seed}; re-scoring seeds {seeds_text(data.front_seeds)}",
        f"- candidates evaluated: {evaluated}",
        f"- hypervolume reference point {ref}",
    ]
    if "env_steps" in ran:
        how = rescoring_rule(ran.get("reevaluate"), ran.get("reevaluate_ranks"))
        if "init" in ran:
            how += f"; first population {ran['init']}, {ran.get('mutation', '?')} mutation"
        if ran.get("estimate", "mean") != "mean":
            how += f"; ranked on {ran['estimate']} estimates"
        lines.append(
            f"- spent {ran['env_steps']:,} env steps in {ran.get('episodes_played', 0):,} "
            f"episodes over {ran.get('generations', '?')} generations (stopped by "
            f"{ran.get('stopped_by', '?')}; {how})"
        )
        played = {  # a shared front.json may hold anything there: counts, or "?"
            k: f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else "?"
            for k, v in data.delivery.items()
        }
        if all(played.get(k, "?") != "?" for k in ("halving_env_steps", "final_env_steps")):
            rounds = data.delivery.get("halving_rounds")
            raced = count_text(len(rounds), "round") if isinstance(rounds, list) else "? rounds"
            below = played.get("below_random_env_steps", "0")
            lines.append(
                f"- then the delivery, outside that count and the same for every method: "
                f"{played['halving_env_steps']} env steps in "
                f"{played.get('halving_episodes', '?')} episodes racing "
                f"{played.get('candidates', '?')} candidates by successive halving "
                f"({raced}), and {played['final_env_steps']} in "
                f"{played.get('final_episodes', '?')} re-scoring the front on the final seeds"
                + (f" (and {below} for its below-random archs)" if below != "0" else "")
            )
        if ran.get("discarded_episodes"):
            lines.append(
                f"- the last generation crossed the {ran.get('budget_steps', 0):,}-step budget: "
                f"its {ran['discarded_episodes']:,} episodes ({ran['discarded_env_steps']:,} env "
                "steps) past the budget were played but not used to choose the front"
            )
    if ran.get("none_beat_random"):  # the best of a race no candidate won against random
        raced = count_text(int(ran.get("dropped_below_random", 0)) + 1, "finalist")
        lines.append(
            f"- final front: 1 member from the search's race, where none of its {raced} (the "
            "race's non-dominated survivors) beat the random policy: the best is kept alone so "
            "that the front is not empty, and no agent of this search is better than random there"
        )
    elif "dominated_on_final_seeds" in ran:  # members chosen on the race's episodes
        looks = int(ran["dominated_on_final_seeds"])
        lines.append(
            f"- final front: {count_text(ran['front_size'], 'member')} from the search's race, "
            f"{ran.get('dropped_below_random', 0)} more dropped there as no better than the "
            f"random policy; {looks} {'looks' if looks == 1 else 'look'} dominated on the "
            f"final seeds and {'is' if looks == 1 else 'are'} kept (those seeds score the "
            "members, they do not choose them)"
        )
    elif "front_size" in ran:  # a front.json written before 2026-12-05
        dropped = ran.get("dropped_after_rescore", 0)
        lines.append(
            f"- final front: {count_text(ran['front_size'], 'member')} from the search, "
            f"{dropped} dropped as dominated after re-scoring"
        )
    if data.hypervolume:
        g, hv, size = data.hypervolume[-1]
        lines.append(f"- last generation {g}: hypervolume {hv:.4g}, front size {size}")
    if data.final_hypervolume is not None:
        lines.append(
            f"- hypervolume of the re-scored front: {data.final_hypervolume:.4g} (normalised "
            "on the final seeds; a generation's on its own seeds, which may be capped by "
            "search.max_episode_steps: the two are not on one scale)"
        )
    return lines


def render_markdown(cfg: Config, run: RunFolder, data: RunData) -> str:
    """The text of ``report.md``."""
    tf, n = data.norm.teacher_flops, data.norm
    search_cfg = _stage_config(run, "search", cfg)[0]
    md = [f"# a2d-evo report: {data.env_id}", "", f"Run folder: `{run.root}`", ""]
    md += ["![Pareto plot](pareto.png)", ""]
    if data.hypervolume:
        md += ["![Hypervolume per generation](hypervolume.png)", ""]
    md += [
        f"Returns are mean episodic returns of {data.eval_mode} play ± the 95% interval "
        "t·s/√n (t Student's quantile with n − 1 degrees of freedom, 2.045 for 30; s the "
        "sample standard deviation over the n episodes; `a2d-evo eval` prints s and the same "
        "interval). "
        "Normalised return = (R − R_random) / "
        "(R_teacher − R_random). FLOPs are per agent step at batch 1 (2 × multiply-adds); "
        "latency is the median at batch 1 on one CPU thread."
        + (
            " In the Pareto plot the baselines of one width (equal FLOPs) are drawn side by "
            "side (ppo, distill, a2d), so that equal returns do not hide one another."
            if not all(labelled for *_, labelled in baseline_marks(list(data.baselines.values())))
            else ""
        ),
        "",
    ]
    if data.missing:
        md += ["## Missing", "", *(f"- {m}" for m in data.missing), ""]

    md += [
        f"## Pareto front ({count_text(len(data.front), 'member')}, cheapest first)",
        "",
        "`#` is the entry's index in `search/front.json`, as `a2d-evo export --pick` takes it.",
        "",
    ]
    extra: list[tuple[str, Sequence[str]]] = []
    searched = [_num(r.extra.get("search_return_mean")) for r in data.front]
    if any(v is not None for v in searched):
        extra.append(("search return", [_opt(v, ".2f") for v in searched]))
        md += [
            "`search return` is the member's mean return over the search's episodes "
            f"({episodes_text(data.history_episodes)}), which made it a candidate of the "
            "delivery's race; the race on fresh seeds chose it, and every other figure is its "
            "re-scoring on fresh seeds.",
            "",
        ]
    exported = _exported_names(data)
    if any(exported):
        extra.append(("exported", exported))
    md += [markdown_table(data.front, tf, "#", extra), "", "## Teacher", ""]
    md += [markdown_table([data.teacher], tf, "agent") if data.teacher else "No teacher metrics."]
    md += [
        "",
        "Normalisation (on the front's re-scoring seeds): "
        f"R_teacher = {_opt(n.r_teacher, '.2f')}, R_random = {_opt(n.r_random, '.2f')} "
        f"(uniform-random policy); teacher FLOPs {_opt(tf, ',.0f')}. {_two_teacher_returns(data)}",
        "",
    ]
    caution = weak_teacher_caution(n.margin_lower95)
    if caution is not None:
        md += [f"**Caution:** {caution[0].upper()}{caution[1:]}.", ""]
    md += _below_threshold(data.teacher, cfg.env.id)

    md += ["## Exported agents", ""]
    if data.agents:
        rows = list(data.agents.values())
        ft = [_finetune_cell(data, r.label) for r in rows]
        md += [markdown_table(rows, tf, "name", [("fine-tuned return", ft)] if any(ft) else [])]
        if "knee" in data.agents:
            k = data.agents["knee"]
            md += [
                "",
                f"Knee point (as exported): `{k.arch}`, {_fraction(k.flops, tf)} of the "
                f"teacher's FLOPs, normalised return {_opt(k.normalised_return, '.3f')}.",
            ]
    else:
        md += ["None exported."]

    if data.delivered:
        # the budget its members had (delivered.json), not the stage's now: a later --resume
        # may have trained the supernet further since
        had = data.delivered_supernet_steps
        if had is None:
            had = _stage_config(run, "supernet", cfg)[0].supernet.total_steps
        md += [
            "",
            "Delivered front (after fine-tuning, `agents/delivered.json`): "
            + ", ".join(f"`{name}`" for name in data.delivered)
            + ". Each delivered agent had the supernet's "
            f"{had:,} env steps (shared "
            "by every subnet) plus a "
            f"fine-tune budget of {data.delivered_budget or 0:,} of its own. "
            + _chosen_on_sentence(data)
            + (
                " " + guard
                if (guard := random_guard_sentence(data.delivered_guard, data.delivered_chosen_on))
                else ""
            ),
        ]
        shown = [data.agents[a] for a in data.delivered if a in data.agents]
        apart = told_apart([(r.label, r.return_mean, r.ci95, r.normalised_return) for r in shown])
        md += ["", apart] if apart else []

    md += ["", "## Baselines: the teacher scaled in width", ""]
    if data.baselines:
        rows = list(data.baselines.values())
        span = None if n.r_teacher is None or n.r_random is None else n.r_teacher - n.r_random
        # derive-then-distil: baselines face the delivered (fine-tuned) front when there is one
        against = [data.agents[a] for a in data.delivered] or data.front
        which = "delivered front" if data.delivered else "front (inherited weights)"
        verdicts = [dominance(r, against, span) for r in rows]
        paired = [paired_dominance(r, against, span) for r in rows]
        columns = [
            ("method", [str(r.extra.get("method")) for r in rows]),
            ("env steps", [_opt(r.extra.get("env_steps"), ",.0f") for r in rows]),
            ("dominated", ["yes" if d else "no" for d, _ in verdicts]),
            (
                f"paired, margin {NONINFERIORITY_MARGIN:g}",
                ["n/a" if d is None else "yes" if d else "no" for d, _ in paired],
            ),
        ]
        decided = [d for d, _ in paired if d is not None]
        undecided = len(rows) - len(decided)
        if not decided:
            paired_tail = (
                "; the paired verdict is undecided for every baseline (the reason is on its line)."
            )
        else:
            paired_tail = f", {sum(decided)} of {len(decided)} decided at the paired margin"
            paired_tail += f" ({undecided} undecided)." if undecided else "."
        md += [
            markdown_table(rows, tf, "name", columns),
            "",
            f"Compared with the {which}. A baseline is dominated when a member has at most its "
            "FLOPs and at least its normalised return, strictly better in one. The verdicts "
            "compare point estimates; the margins are front − baseline ± the 95% half-width of "
            "the difference: paired on the same seeds where marked so, else from the two rows' "
            "own intervals (usually wider: it ignores what the shared seeds have in common). The "
            "paired verdict is issue [J]'s non-inferiority rule: some "
            "member with at most the baseline's FLOPs whose per-episode difference in "
            "normalised return, on the same seeds, has a 95% lower bound above "
            f"-{NONINFERIORITY_MARGIN:g}. Each baseline's env steps are those its training "
            f"recorded.{_inherited_budget_note(cfg, run, data, rows)}",
            "",
            *(
                f"- `{r.label}`: {text}; paired: {ptext}."
                for r, (_, text), (_, ptext) in zip(rows, verdicts, paired, strict=True)
            ),
            "",
            f"The front dominates {sum(d for d, _ in verdicts)} of "
            f"{count_text(len(rows), 'baseline')} on point estimates{paired_tail}",
        ]
    else:
        md += ["No baselines found."]

    md += ["", "## Search settings", "", *_settings(search_cfg, data)]
    md += [
        "",
        "## Reproduce",
        "",
        "Into a new folder (the finished stages of this one refuse to be overwritten):",
        "",
        "```",
        *_commands(cfg, run, data),
        "```",
        "",
    ]
    return "\n".join(md)


# ----------------------------------------------------------------------------- entry
# one writer of RUN_DIR/report/ at a time, never through a symlink out of the run
@writes(lambda a: a["run"].inside(a["run"].report, "reports"))
def write_report(cfg: Config, run: RunFolder) -> Path:
    """Write ``pareto.png``, ``hypervolume.png`` and ``report.md`` under ``RUN_DIR/report/``;
    return the path of ``report.md``.

    All three are rendered in memory first, so a failure leaves the previous report whole; a
    ``hypervolume.png`` left by an earlier report is removed when this run has no hypervolume.
    """
    data = load_run(cfg, run)
    pareto = pareto_png(data)
    curve = hypervolume_png(data) if data.hypervolume else None
    text = render_markdown(cfg, run, data)
    write_bytes(run.report / "pareto.png", pareto)
    if curve is not None:
        write_bytes(run.report / "hypervolume.png", curve)
    else:
        (run.report / "hypervolume.png").unlink(missing_ok=True)
    return write_text(run.report / "report.md", text)
