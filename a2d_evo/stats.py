"""The statistics of episode returns every report and benchmark shares: Student-t 95% intervals,
the paired non-inferiority bound of issue [J], and which members' intervals tell them apart.

Torch-free and pure (numpy and math only), so that light command paths can import it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

Z95 = 1.959963984540054
"""Two-sided 95% normal quantile, ``scipy.stats.norm.ppf(0.975)``: the large-sample limit of
:func:`t95`, and what intervals and paired bounds used until 2026-12-05."""


_T95_TABLE = (12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004,
              2.262157, 2.228139, 2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905,
              2.109816, 2.100922, 2.093024, 2.085963, 2.079614, 2.073873, 2.068658, 2.063899,
              2.059539, 2.055529, 2.051831, 2.048407, 2.045230)  # fmt: skip
"""Student's t two-sided 95% quantiles for 1 to 29 degrees of freedom (any printed table)."""


def t95(n: int) -> float:
    """Two-sided 95% quantile of Student's t for a mean of ``n >= 2`` episodes (``n - 1``
    degrees of freedom): 12.71 for 2, 2.262 for 10, 2.045 for 30, toward :data:`Z95`.
    The normal quantile undercovers small samples (a one-sided miss rate of 0.15 at n = 2,
    0.041 at 10, 0.030 at 30, against 0.025). A table to 29 degrees of freedom, then the
    Cornish-Fisher series in ``1 / dof`` to its fourth term (the table's 6 decimals are
    within 5e-7 of the exact quantile, the series within 5e-8 from 30 degrees of freedom on;
    ``tests/test_stats.py`` checks both against scipy, to 1e-6)."""
    if n < 2:
        raise ValueError(f"t95: needs at least 2 episodes, got {n}")
    dof = int(n) - 1
    if dof <= len(_T95_TABLE):
        return _T95_TABLE[dof - 1]
    z = Z95
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / dof + g2 / dof**2 + g3 / dof**3 + g4 / dof**4


def ci95(std: float | None, n: int | None) -> float | None:
    """Half-width of the 95% interval of a mean of ``n`` episodes with population ``std``.

    The sample standard deviation is ``std * sqrt(n / (n - 1))``, so the half-width
    ``t95(n) * sample_std / sqrt(n)`` is ``t95(n) * std / sqrt(n - 1)``. None for n < 2 or
    no count recorded.
    """
    if std is None or n is None or n < 2 or not math.isfinite(std):  # no spread: no interval
        return None
    return t95(n) * std / math.sqrt(n - 1)


NONINFERIORITY_MARGIN = 0.02
"""Issue [J]'s margin in normalised return: a member dominates a baseline it costs at most
when their paired difference has a 95% lower bound above ``-NONINFERIORITY_MARGIN``."""


def paired_lower95(a: Any, b: Any) -> float | None:
    """95% lower bound of ``mean(a - b)`` over paired episodes (the same seeds, in order):
    ``mean(d) - t95(n) * s(d) / sqrt(n)`` with ``s`` the sample standard deviation (ddof = 1).

    The lower limit of the two-sided 95% t interval (one-sided at 97.5%), the usual
    convention of non-inferiority tests (ICH E9, CONSORT); until 2026-12-05 the normal
    quantile (``Z95``), which undercovers small samples; ``BENCHMARKS.md`` ([J]) says where
    the choice changes a verdict. None for fewer than 2 pairs, unequal lengths or a
    non-finite return."""
    x = np.asarray(a, dtype=np.float64).reshape(-1)
    y = np.asarray(b, dtype=np.float64).reshape(-1)
    if x.size != y.size or x.size < 2:
        return None
    d = x - y
    if not np.isfinite(d).all():
        return None
    return float(d.mean() - t95(int(d.size)) * d.std(ddof=1) / math.sqrt(d.size))


def best_paired(
    b: Any, members: Sequence[tuple[T, Any | None]]
) -> tuple[tuple[T, float, float] | None, list[T]]:
    """The member whose per-episode returns beat ``b`` by the highest :func:`paired_lower95`,
    as ``(member, lower bound, mean difference)`` (None when no member can be paired with
    ``b``), and the members that could not be paired (returns None, another length or a
    non-finite return). One rule for the report's paired dominance and the benchmarks'
    tables: a baseline is dominated when the best bound is above ``-margin``."""
    y = np.asarray(b, dtype=np.float64).reshape(-1)
    best: tuple[T, float, float] | None = None
    unpaired = []
    for key, a in members:
        x = None if a is None else np.asarray(a, dtype=np.float64).reshape(-1)
        lower = None if x is None else paired_lower95(x, y)
        if x is None or lower is None:
            unpaired.append(key)
        elif best is None or lower > best[1]:
            best = (key, lower, float((x - y).mean()))
    return best, unpaired


def interval95(returns: Any) -> tuple[float, float] | None:
    """Student-t 95% interval of the mean of episode ``returns`` (:func:`ci95`); None for
    fewer than 2 episodes, which bound nothing (a zero-width interval would claim certainty)."""
    r = np.asarray(returns, dtype=np.float64).reshape(-1)
    mean = float(r.mean())
    half = ci95(float(r.std()), int(r.size))
    if half is None:
        return None
    return mean - half, mean + half


def separated(intervals: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of a largest set of ``(lo, hi)`` intervals that are mutually separate (no two
    overlap or touch), in order of their upper ends: how many members of a front the episodes
    tell apart. Earliest-end-first is optimal for this count (interval scheduling); which
    members it names among equally large sets is the cheapest-ending ones."""
    picked: list[int] = []
    last = -math.inf
    for i in sorted(range(len(intervals)), key=lambda i: (intervals[i][1], intervals[i][0])):
        lo, hi = intervals[i]
        if lo > last:
            picked.append(i)
            last = hi
    return picked


def tell_apart(estimates: Sequence[tuple[float, float | None]]) -> list[int]:
    """Which of ``(mean, 95% half-width)`` estimates their intervals tell apart
    (:func:`separated`), in order of their upper ends; [] for fewer than two or where a
    half-width is unknown (one episode: a point would look apart from everything)."""
    if len(estimates) < 2 or any(h is None for _, h in estimates):
        return []
    return separated([(m - h, m + h) for m, h in estimates if h is not None])


def told_apart_span(
    estimates: Sequence[tuple[float, float | None]], values: Sequence[float], at_least: int = 3
) -> float | None:
    """The widest span of ``values`` (normalised returns, increasing with the means) over a set
    of at least ``at_least`` estimates whose 95% intervals are mutually separate; None where no
    such set exists or a half-width is unknown. Issue [J]'s demo target reads its span here:
    members told apart that span it, not a span that a member inside some interval makes.
    The earliest-end set of :func:`tell_apart` is the largest, not always the widest."""
    if len(estimates) < at_least or any(h is None for _, h in estimates):
        return None
    ivs = sorted(
        ((m - h, m + h, v) for (m, h), v in zip(estimates, values, strict=True) if h is not None),
        key=lambda t: t[1],
    )
    best: float | None = None
    for a, (_, _, v_a) in enumerate(ivs):
        # the longest chain of separate intervals from ``a`` to each later one (by upper end)
        chain = {a: 1}
        for c in range(a + 1, len(ivs)):
            lo_c, _, v_c = ivs[c]
            before = [n for b, n in chain.items() if ivs[b][1] < lo_c]
            if not before:
                continue
            chain[c] = max(before) + 1
            if chain[c] >= at_least and (best is None or v_c - v_a > best):
                best = v_c - v_a
    return best
