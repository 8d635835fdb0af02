"""The report's verdicts on each baseline: dominated by a front member on point estimates
(:func:`dominance`) and on the paired per-episode difference (:func:`paired_dominance`, issue
[J]'s non-inferiority rule), and the margin the report prints beside them."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from a2d_evo.formats import count_text
from a2d_evo.report.rows import Row, finite_or_none
from a2d_evo.stats import NONINFERIORITY_MARGIN, best_paired, paired_lower95


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
    same episodes: the 95% lower bound (:func:`~a2d_evo.stats.paired_lower95`) of the paired
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


def below_threshold(teacher: Row | None, env_id: str) -> list[str]:
    """A note (and a blank line) when the teacher scored below the reward threshold gymnasium
    registers for the task (its ``metrics.json``'s ``env_reward_threshold``); else none."""
    threshold = finite_or_none(teacher.extra.get("env_reward_threshold")) if teacher else None
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
