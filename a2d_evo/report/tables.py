"""The report's tables: the front and the baselines side by side, fixed-width for the
terminal and Markdown for ``report.md``, and the delivered front with how many members its
95% intervals tell apart."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from a2d_evo.formats import FINAL_SEEDS, KEPT_FINE_TUNED, KEPT_INHERITED, VALIDATION_SEEDS
from a2d_evo.report.delivered_file import guard_of
from a2d_evo.report.rows import Row, front_rows
from a2d_evo.stats import ci95, tell_apart, told_apart_span


# ----------------------------------------------------------------------------- tables
def _si(x: float | None) -> str:
    if x is None:
        return "n/a"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:.3g}"


def fraction_text(flops: float, teacher_flops: float | None) -> str:
    if not teacher_flops:
        return "n/a"
    return f"{100.0 * flops / teacher_flops:.3g}%"


def _return(row: Row) -> str:
    ci = row.ci95
    return f"{row.return_mean:.2f} ± {ci:.2f}" if ci is not None else f"{row.return_mean:.2f}"


def optional_text(x: float | None, fmt: str) -> str:
    return "n/a" if x is None else format(x, fmt)


COLUMNS = ("arch", "FLOPs", "FLOPs/teacher", "params", "latency ms", "return ± 95%", "norm. return")


def _cells(row: Row, teacher_flops: float | None) -> list[str]:
    return [
        row.arch,
        _si(row.flops),
        fraction_text(row.flops, teacher_flops),
        _si(row.params),
        optional_text(row.latency_ms, ".3g"),
        _return(row),
        optional_text(row.normalised_return, ".3f"),
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
    return _fixed(*_grid(front_rows(front, None), teacher_flops, "#"))


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


def delivered_table(delivered: dict[str, Any], archs: Mapping[str, str] | None = None) -> str:
    """The delivered front as a Markdown table: FLOPs, the delivered and the inherited return,
    and which weights ship (``fine-tuned``, or ``inherited`` where the fine-tune's validation
    rejected it or there was none); then how many members the intervals tell apart. ``archs``
    (agent name -> arch name, read from the folders: ``delivered.json`` records none) adds
    an arch column."""
    arch = "" if archs is None else " arch |"
    lines = [
        f"| agent |{arch} FLOPs | return (95% CI) | normalised | inherited return | weights |",
        "| --- |" + (" --- |" if archs is not None else "") + " --- | --- | --- | --- | --- |",
    ]
    rows = {r["agent"]: r for r in delivered["exported"]}
    members = []
    for name in delivered["members"]:
        r = rows[name]
        half = ci95(r.get("return_std"), r.get("episodes"))
        members.append((name, r["return_mean"], half, r["normalised_return"]))
        interval = "" if half is None else f" ± {half:.1f}"  # none for one episode, no spread
        named = "" if archs is None else f" {archs.get(name, '?')} |"
        lines.append(
            f"| {name} |{named} {r['flops']:,} | {r['return_mean']:.1f}{interval} | "
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
