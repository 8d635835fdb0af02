"""The report's figures: the Pareto plot and the hypervolume plot, as PNG bytes.

matplotlib is imported inside the functions with the non-interactive Agg backend, so that
importing the report never starts a GUI or loads matplotlib before it is needed.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from typing import Any

from a2d_evo.formats import EXPORTED_PREFIXES, KEPT_FINE_TUNED, non_dominated
from a2d_evo.report.rows import Row
from a2d_evo.report.run_data import RunData

DPI = 150
PARETO_SIZE = (8.0, 5.5)
"""Inches; at :data:`DPI` the PNG is 1200 x 825 pixels."""
HYPERVOLUME_SIZE = (8.0, 5.0)
"""Inches; at :data:`DPI` the PNG is 1200 x 750 pixels."""


def width_text(w: float) -> str:
    return f"{w:g}"


def _pyplot() -> Any:
    # here: matplotlib loads only when a figure is drawn, with the non-interactive Agg
    # backend chosen before pyplot is first imported
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    _pyplot().close(fig)
    return buf.getvalue()


def delivered_label(kept: Sequence[str]) -> str:
    """The legend of the delivered front: how many members, and which weights they ship
    (the fine-tune's validation may have kept a member's inherited weights)."""
    tuned = sum(k == KEPT_FINE_TUNED for k in kept)
    if tuned == len(kept):
        weights = "fine-tuned"
    elif tuned == 0:
        weights = "inherited weights"
    else:
        weights = f"{tuned} fine-tuned, {len(kept) - tuned} inherited"
    return f"delivered front ({len(kept)}, {weights}, ± 95%)"


def _bar(row: Row) -> float:
    """A row's error bar: its 95% half-width, NaN (no bar) where there is none (one episode,
    no spread recorded), not 0, which would draw an exact figure."""
    half = row.ci95
    return math.nan if half is None else half


def pareto_png(data: RunData) -> bytes:
    """The Pareto plot: FLOPs (log) vs mean return, candidates, front, teacher, baselines."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=PARETO_SIZE, layout="constrained")
    handles = []
    front = data.front
    fx, fy = [r.flops for r in front], [r.return_mean for r in front]
    # the line joins the members no other one dominates on the re-scored figures; front.json
    # keeps those that look dominated there too (the final seeds score, they do not choose)
    line = sorted(non_dominated(list(zip(fx, fy, strict=True))), key=lambda i: fx[i])
    ax.step([fx[i] for i in line], [fy[i] for i in line], where="post", color="tab:blue",
            lw=1.6, zorder=3)  # fmt: skip
    members = f"{len(front)} member{'' if len(front) == 1 else 's'}"
    handles.append(ax.errorbar(
        fx, fy, yerr=[_bar(r) for r in front], fmt="o", ms=5, color="tab:blue",
        elinewidth=0.8, capsize=2, zorder=4,
        label=f"Pareto front ({members}, inherited weights re-scored, ± 95%)",
    ))  # fmt: skip
    looks_dominated = sorted(set(range(len(front))) - set(line))
    if looks_dominated:
        handles += ax.plot(
            [fx[i] for i in looks_dominated], [fy[i] for i in looks_dominated], marker="o",
            ms=5, mfc="white", mec="tab:blue", ls="none", zorder=5,
            label="member dominated on the re-scoring seeds",
        )  # fmt: skip
    if data.history:
        xs, ys = zip(*data.history, strict=True)
        handles.append(ax.scatter(
            xs, ys, s=7, color="0.72", alpha=0.6, linewidths=0, zorder=1,
            label=f"evaluated candidates ({len(xs)}, {episodes_text(data.history_episodes)})",
        ))  # fmt: skip
    # the teacher on the front's seeds (where normalised return 1 is), else its own metrics
    n = data.norm
    t_flops = n.teacher_flops or (data.teacher.flops if data.teacher else None)
    t_return = n.r_teacher if n.r_teacher is not None else _return_of(data.teacher)
    if t_flops is not None and t_return is not None:
        arch = data.teacher.arch if data.teacher else data.teacher_arch
        handles += ax.plot(
            [t_flops], [t_return], marker="*", ms=17, color="gold", mec="black", mew=0.8,
            ls="none", zorder=5, label=f"teacher ({arch})",
        )  # fmt: skip
    # named picks (the knee); the front_NN exports are the front's own points, and the
    # below_NN ones show where the delivered front holds them
    picks = {n: r for n, r in data.agents.items() if not n.startswith(EXPORTED_PREFIXES)}
    for i, (name, row) in enumerate(picks.items()):
        line = ax.plot(
            [row.flops], [row.return_mean], marker="o", ms=13, mfc="none", mec="tab:orange",
            mew=1.8, ls="none", zorder=7, label="exported agent",
        )  # fmt: skip
        handles += line if i == 0 else []
        ax.annotate(
            name, (row.flops, row.return_mean), xytext=(-14, 14), textcoords="offset points",
            ha="right", fontsize=9, color="tab:orange", fontweight="bold",
            arrowprops={"arrowstyle": "-", "color": "tab:orange", "lw": 0.8},
        )  # fmt: skip
    # the delivered front (after fine-tuning): what the baselines' verdicts are set against
    delivered = [data.agents[name] for name in data.delivered if name in data.agents]
    if delivered:
        handles.append(ax.errorbar(
            [r.flops for r in delivered], [r.return_mean for r in delivered],
            yerr=[_bar(r) for r in delivered], fmt="h", ms=9, mfc="none",
            mec="darkcyan", mew=1.6, ecolor="darkcyan", elinewidth=0.8, capsize=2, zorder=8,
            label=delivered_label([data.kept.get(r.label, KEPT_FINE_TUNED) for r in delivered]),
        ))  # fmt: skip
    styles = {"ppo": ("s", "tab:red"), "distill": ("^", "tab:green")}
    seen: set[str] = set()
    for row, x, labelled in baseline_marks(list(data.baselines.values())):
        method = str(row.extra.get("method"))
        marker, color = styles.get(method, ("D", "tab:purple"))
        line = ax.plot(
            [x], [row.return_mean], marker=marker, ms=8, color=color, mec="black", mew=0.6,
            ls="none", zorder=6, label=f"baseline: teacher scaled in width, {method}",
        )  # fmt: skip
        handles += [] if method in seen else line
        seen.add(method)
        if labelled:
            w = row.extra.get("width_multiplier")
            ax.annotate(
                f"x{width_text(w)}" if w is not None else row.label, (x, row.return_mean),
                xytext=(7, 0), textcoords="offset points", va="center",  # beside its marker
                fontsize=8, color=color, fontweight="bold",
            )  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("FLOPs per step (log scale)")
    episodes = episodes_text(data.front_episodes)
    ax.set_ylabel(f"mean episodic return ({data.eval_mode}, {episodes})")
    ax.set_title(f"{data.env_id}: return vs FLOPs")
    ax.grid(True, which="major", alpha=0.3)
    ax.grid(True, which="minor", axis="x", alpha=0.1)
    if n.r_random is not None and n.r_teacher is not None and n.r_teacher != n.r_random:
        lo, span = n.r_random, n.r_teacher - n.r_random
        sec = ax.secondary_yaxis(
            "right", functions=(lambda r: (r - lo) / span, lambda v: v * span + lo)
        )
        sec.set_ylabel("normalised return (0 = random, 1 = teacher)")
    ax.legend(
        handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=8,
        frameon=False,
    )  # fmt: skip
    return _png(fig)


DODGE_DECADES = 0.025
"""How far apart (in log10 FLOPs) the baselines of one width are drawn, one method beside the
next, so that methods of equal return do not hide one another (their FLOPs are equal)."""
METHOD_ORDER = ("ppo", "distill", "a2d")


def baseline_marks(rows: Sequence[Row]) -> list[tuple[Row, float, bool]]:
    """Each baseline with the x it is drawn at and whether it carries its width's label: the
    rows of equal FLOPs side by side (:data:`METHOD_ORDER`, centred on their FLOPs), the label
    on the rightmost one only (it names the width, which they share)."""
    groups: dict[float, list[Row]] = {}
    for row in rows:
        groups.setdefault(row.flops, []).append(row)
    marks = []
    for flops, group in groups.items():
        order = sorted(group, key=lambda r: _method_rank(str(r.extra.get("method"))))
        for i, row in enumerate(order):
            shift = (i - (len(order) - 1) / 2) * DODGE_DECADES
            marks.append((row, flops * 10**shift, i == len(order) - 1))
    return marks


def _method_rank(method: str) -> int:
    return METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)


def _return_of(row: Row | None) -> float | None:
    return row.return_mean if row is not None else None


def episodes_text(episodes: Sequence[int]) -> str:
    if len(episodes) == 1:
        return f"{episodes[0]} episode{'s' if episodes[0] != 1 else ''} each"
    if episodes:
        return f"{episodes[0]}-{episodes[-1]} episodes"
    return "episodes unknown"


def hypervolume_png(data: RunData) -> bytes:
    """Hypervolume (top) and front size (bottom) per generation."""
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=HYPERVOLUME_SIZE, sharex=True, layout="constrained",
        gridspec_kw={"height_ratios": [2, 1]},
    )  # fmt: skip
    gens = [g for g, _, _ in data.hypervolume]
    top.plot(gens, [h for _, h, _ in data.hypervolume], marker="o", ms=4, color="tab:blue")
    top.set_ylabel("hypervolume\n(normalised return × log10 FLOPs)")
    point = data.reference_point  # rounded for the title, not 16 digits
    if isinstance(point, list):
        point = [round(x, 4) if isinstance(x, float) else x for x in point]
    ref = json.dumps(point)
    ref_text = f" (reference point {ref})" if len(ref) <= 40 else ""
    top.set_title(f"{data.env_id}: search progress{ref_text}")
    top.grid(True, alpha=0.3)
    bottom.bar(gens, [s for _, _, s in data.hypervolume], color="tab:gray", width=0.7)
    bottom.set_ylabel("front size\n(members)")
    bottom.set_xlabel("generation")
    bottom.grid(True, axis="y", alpha=0.3)
    from matplotlib.ticker import MaxNLocator  # here: matplotlib only when drawing (_pyplot)

    bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
    bottom.yaxis.set_major_locator(MaxNLocator(integer=True))
    return _png(fig)


# ----------------------------------------------------------------------------- markdown
def seeds_text(seeds: Sequence[int]) -> str:
    if not seeds:
        return "not recorded"
    if list(seeds) == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]} ({len(seeds)})" if len(seeds) > 1 else str(seeds[0])
    head = ", ".join(map(str, seeds[:8]))
    return head + (f", ... ({len(seeds)})" if len(seeds) > 8 else "")
