"""The eval command's interval, checked by hand."""

from __future__ import annotations

import math

import numpy as np

from a2d_evo.scoring import Z95, interval95


def test_interval95_by_hand() -> None:
    r = np.array([10.0, 12.0, 14.0, 16.0])
    # mean 13, sample std sqrt(((9+1+1+9)/3)) = sqrt(20/3)
    half = 1.959963984540054 * math.sqrt(20 / 3) / 2
    lo, hi = interval95(r)
    assert math.isclose(lo, 13 - half) and math.isclose(hi, 13 + half)
    assert Z95 == 1.959963984540054


def test_interval95_single_episode_is_a_point() -> None:
    assert interval95(np.array([3.5])) == (3.5, 3.5)
