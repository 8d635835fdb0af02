"""Knee point and front selection, checked on hand-built fronts."""

from __future__ import annotations

import math

import pytest

from a2d_evo.errors import RunFolderError
from a2d_evo.report.pick import knee_index, select


def test_knee_of_a_bent_front() -> None:
    # log10 FLOPs 2, 3, 4, 5 -> x 0, 1/3, 2/3, 1; returns 0, 0.9, 0.95, 1.0.
    # Chord from (0, 0) to (1, 1); distances above it: (y - x)/sqrt(2) = 0, 0.567/1.414, ...
    flops = [1e2, 1e3, 1e4, 1e5]
    norm = [0.0, 0.9, 0.95, 1.0]
    d = [(y - x) / math.sqrt(2) for x, y in zip([0, 1 / 3, 2 / 3, 1], norm, strict=True)]
    assert max(range(4), key=d.__getitem__) == 1
    assert knee_index(flops, norm) == 1


def test_knee_scale_free_in_return() -> None:
    flops = [1e2, 1e3, 1e4, 1e5]
    assert knee_index(flops, [-500, -120, -100, -90]) == knee_index(flops, [0.0, 0.95, 0.98, 1.0])


def test_knee_degenerate_fronts() -> None:
    assert knee_index([5e3], [0.7]) == 0
    assert knee_index([1e3, 1e4], [0.5, 0.9]) == 1  # no member above the chord: best-scoring
    assert knee_index([1e2, 1e3, 1e4], [0.0, 0.5, 1.0]) == 2  # straight line in (log x, y)
    with pytest.raises(ValueError):
        knee_index([], [])


def _front() -> list[dict[str, float]]:
    return [
        {"flops": 100.0, "return_mean": 20.0, "normalised_return": 0.0},
        {"flops": 1000.0, "return_mean": 450.0, "normalised_return": 0.9},
        {"flops": 10000.0, "return_mean": 480.0, "normalised_return": 0.96},
        {"flops": 100000.0, "return_mean": 500.0, "normalised_return": 1.0},
    ]


def test_select_all_index_and_filters() -> None:
    front = _front()
    assert select(front, "all") == [(f"front_{i:02d}", i) for i in range(4)]
    assert select(front, "knee") == [("knee", 1)]
    assert select(front, "2") == [("front_02", 2)]
    assert select(front, "all", max_flops=5000) == [("front_00", 0), ("front_01", 1)]
    assert select(front, "all", min_return=470) == [("front_02", 2), ("front_03", 3)]
    # the knee among the filtered members only
    assert select(front, "knee", min_return=470) == [("knee", 3)]


@pytest.mark.parametrize(
    ("pick", "kw", "match"),
    [
        ("7", {}, "the front has 4 entries"),
        ("-1", {}, "the front has 4 entries"),
        ("middle", {}, "expected knee, all or a front index"),
        ("3", {"max_flops": 10}, "no front entry has FLOPs"),
        ("3", {"max_flops": 5000}, "excluded by"),
    ],
)
def test_select_errors(pick: str, kw: dict[str, float], match: str) -> None:
    with pytest.raises(RunFolderError, match=match):
        select(_front(), pick, **kw)
