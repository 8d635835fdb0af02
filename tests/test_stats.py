"""The statistics of ``a2d_evo/stats.py``, checked against hand-computed numbers and scipy's
quantiles."""

from __future__ import annotations

import numpy as np
import pytest

from a2d_evo.stats import (
    Z95,
    best_paired,
    ci95,
    interval95,
    paired_lower95,
    separated,
    t95,
    told_apart_span,
)


def test_ci95_by_hand() -> None:
    # population std 2 over n = 5 episodes: sample std 2 * sqrt(5/4) = 2.2361, standard
    # error 2.2361 / sqrt(5) = 1.0; half-width t(0.975, 4 dof) = 2.776445 times 1.0
    assert ci95(2.0, 5) == pytest.approx(2.776445, abs=1e-6)
    # std 3 over 10: t(0.975, 9) = 2.262157 times 3 / sqrt(9)
    assert ci95(3.0, 10) == pytest.approx(2.262157, abs=1e-6)
    # the t quantiles against printed tables (Student's t, two-sided 95%), and their limit
    assert [round(t95(n), 3) for n in (2, 5, 10, 30)] == [12.706, 2.776, 2.262, 2.045]
    assert t95(100_000) == pytest.approx(Z95, abs=1e-4)
    assert ci95(2.0, None) is None  # no episode count recorded: no interval (not a TypeError)


def test_t95_matches_scipy_for_every_sample_size() -> None:
    """The table (to 29 degrees of freedom) and the series after it, against scipy's exact
    quantile (scipy comes with pymoo; the package itself does not import it)."""
    from scipy.stats import t

    worst = max(abs(t95(n) - float(t.ppf(0.975, n - 1))) for n in range(2, 3000))
    assert worst < 1e-6, worst
    with pytest.raises(ValueError, match="at least 2"):
        t95(1)
    assert ci95(0.0, 7) == 0.0


def test_ci95_undefined_cases() -> None:
    assert ci95(2.0, 1) is None  # one episode has no spread
    assert ci95(2.0, 0) is None
    assert ci95(float("nan"), 10) is None
    assert ci95(float("inf"), 10) is None


def test_paired_lower95_by_hand() -> None:
    # d = a - b = [2, 0, 1, 1]: mean 1; squared deviations 1 + 1 + 0 + 0 = 2; sample std
    # sqrt(2 / 3) = 0.8165; standard error 0.8165 / 2 = 0.40825; 1 - 3.182446 * 0.40825
    # (t(0.975, 3 dof); the normal quantile 1.959964 gave +0.199848)
    assert paired_lower95([3, 1, 2, 2], [1, 1, 1, 1]) == pytest.approx(-0.299228, abs=1e-6)
    # pairing, not two samples: the same spread in a and b cancels (d constant)
    assert paired_lower95([5, 9, 2], [4, 8, 1]) == pytest.approx(1.0)
    assert paired_lower95([1, 2], [1, 2, 3]) is None  # unequal lengths
    assert paired_lower95([1], [0]) is None  # one pair has no spread
    assert paired_lower95([1, float("nan")], [0, 0]) is None
    assert paired_lower95([1, float("inf")], [0, 0]) is None


def test_best_paired_takes_the_highest_bound_and_names_the_unpairable() -> None:
    b = [1, 1, 1, 1]
    members = [
        ("lower", [3, 1, 2, 2]),  # bound -0.299228 (by hand above), mean difference 1
        ("higher", [2, 2, 2, 2]),  # d constant 1: bound 1.0, mean difference 1
        ("other seeds", None),
        ("short", [2, 2]),
        ("nan", [2, float("nan"), 2, 2]),
    ]
    best, unpaired = best_paired(b, members)
    assert best is not None
    assert best[0] == "higher"
    assert best[1] == pytest.approx(1.0)
    assert best[2] == pytest.approx(1.0)
    assert unpaired == ["other seeds", "short", "nan"]
    # order does not decide: the highest bound wins from any position
    assert best_paired(b, members[::-1])[0] == best
    assert best_paired(b, [("only", None)]) == (None, ["only"])
    assert best_paired(b, []) == (None, [])


def test_interval95_by_hand() -> None:
    # returns 1, 2, 3, 4, 5: mean 3; squared deviations 4 + 1 + 0 + 1 + 4 = 10; sample std
    # sqrt(10 / 4) = 1.5811; standard error 1.5811 / sqrt(5) = 0.7071; half-width
    # t(0.975, 4) = 2.776445 times 0.7071 = 1.9632 -> (1.0368, 4.9632)
    lo, hi = interval95([1.0, 2.0, 3.0, 4.0, 5.0])
    assert lo == pytest.approx(1.0368, abs=1e-4)
    assert hi == pytest.approx(4.9632, abs=1e-4)
    # a 2-D batch is one sample: 1, 2, 3, 4, 5, 3 have mean 3, squared deviations summing to
    # 10, sample std sqrt(10 / 5) = 1.4142, half-width t(0.975, 5) = 2.570582 times
    # 1.4142 / sqrt(6) = 1.4841
    lo, hi = interval95(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 3.0]]))
    assert lo == pytest.approx(1.5159, abs=1e-4)
    assert hi == pytest.approx(4.4841, abs=1e-4)
    assert interval95([7.0]) is None  # one episode bounds nothing (not a zero-width interval)
    assert interval95([4.0, 4.0, 4.0]) == (4.0, 4.0)


def test_separated_counts_the_largest_set_of_mutually_separate_intervals() -> None:
    # A wide interval [0, 10] overlaps B [1, 2] and C [3, 4], which are apart; D [11, 12] is
    # apart from all. The largest separate set is B, C, D (3); taking A first, as a pass in
    # order of lower ends would, leaves only A and D.
    a, b, c, d = (0.0, 10.0), (1.0, 2.0), (3.0, 4.0), (11.0, 12.0)
    assert separated([a, b, c, d]) == [1, 2, 3]
    # touching is overlapping: [1, 2] and [2, 3] share the value 2
    assert separated([(1.0, 2.0), (2.0, 3.0)]) == [0]
    # three nested intervals: one
    assert separated([(0.0, 9.0), (1.0, 8.0), (2.0, 7.0)]) == [2]
    # the delivered intervals of the demo run of 2026-12-03 (seed 0, benchmarks/TUNING.md;
    # Student-t): three apart; with a fourth member between the upper two, overlapping both,
    # still three (the one that ends first of the two that overlap is named)
    demo = [(-114.9, -99.1), (165.0, 196.7), (200.4, 213.6)]
    assert separated(demo) == [0, 1, 2]
    assert separated([*demo, (190.0, 205.0)]) == [0, 1, 2]
    assert separated([demo[0], (158.0, 194.2), *demo[1:]]) == [0, 1, 3]
    assert separated([]) == []


def test_told_apart_span_is_the_widest_set_of_three_or_more_told_apart() -> None:
    # A [0, 1], B [2, 3], C [4, 5] and D [4.5, 9.5] (means 0.5, 2.5, 4.5, 7; C and D
    # overlap): the largest set (earliest ends) is A, B, C, spanning 4.0; A, B, D is as large
    # and spans 6.5, the widest
    est = [(0.5, 0.5), (2.5, 0.5), (4.5, 0.5), (7.0, 2.5)]
    assert separated([(m - h, m + h) for m, h in est]) == [0, 1, 2]
    assert told_apart_span(est, [m for m, _ in est]) == 6.5
    # what review found: every member spans 0.20, but the wide first interval overlaps the
    # rest, and the three told apart span 0.10 (the normalised values here are the means)
    est = [(0.30, 0.25), (0.40, 0.01), (0.45, 0.01), (0.50, 0.01)]
    assert told_apart_span(est, [m for m, _ in est]) == pytest.approx(0.10)
    assert told_apart_span(est, [m for m, _ in est], at_least=4) is None
    # two apart, or an unknown half-width: none
    assert told_apart_span([(0.0, 0.1), (1.0, 0.1)], [0.0, 1.0]) is None
    three = [(0.0, 0.1), (1.0, 0.1), (2.0, 0.1)]  # told apart, spanning 2.0
    assert told_apart_span(three, [0.0, 1.0, 2.0]) == 2.0
    assert told_apart_span([*three, (3.0, None)], [0.0, 1.0, 2.0, 3.0]) is None
    # the chain may skip a member: [0, 1], [1.5, 2.5] and [3, 4] with [0.9, 3.1] between
    est = [(0.5, 0.5), (2.0, 1.1), (2.0, 0.5), (3.5, 0.5)]
    assert told_apart_span(est, [0.0, 0.4, 0.5, 1.0]) == 1.0
