"""The shared formulas of ``a2d_evo/formats.py``, checked against hand-computed numbers."""

from __future__ import annotations

import numpy as np
import pytest

from a2d_evo.errors import FormatError
from a2d_evo.formats import (
    BASELINE_METHODS,
    Normalisation,
    baseline_name,
    hv_points,
    hv_reference_point,
    normalised_return,
)


def test_normalised_return_by_hand() -> None:
    # CartPole-like: R_random 22, R_teacher 500; (261 - 22) / 478 = 0.5
    assert normalised_return(261.0, 22.0, 500.0) == 0.5
    assert normalised_return(22.0, 22.0, 500.0) == 0.0
    assert normalised_return(500.0, 22.0, 500.0) == 1.0
    # negative returns (Acrobot-like): R_random -500, R_teacher -100; (-200 + 500) / 400 = 0.75
    assert normalised_return(-200.0, -500.0, -100.0) == 0.75
    # below random and above the teacher are allowed: (-600 + 500) / 400 = -0.25
    assert normalised_return(-600.0, -500.0, -100.0) == -0.25
    # arrays elementwise: (10, 20, 30) against random 10, teacher 30 -> 0, 0.5, 1
    out = normalised_return(np.array([10, 20, 30]), 10.0, 30.0)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [0.0, 0.5, 1.0])


def test_normalised_return_refuses_an_undefined_ratio() -> None:
    with pytest.raises(ValueError, match="teacher has not learned"):
        normalised_return(3.0, 9.0, 9.0)
    with pytest.raises(ValueError, match="must be finite"):
        normalised_return(3.0, float("inf"), 9.0)


def test_normalisation_scores() -> None:
    norm = Normalisation(r_random=20.0, r_teacher=420.0, teacher_flops=1000)
    # (120 - 20) / 400 = 0.25
    assert norm.score(120.0) == 0.25
    assert norm.to_dict() == {"r_random": 20.0, "r_teacher": 420.0, "teacher_flops": 1000}
    assert Normalisation.from_dict({"r_random": "20", "r_teacher": 420, "teacher_flops": 1e3}) == (
        norm
    )


def test_normalisation_refuses_bad_constants() -> None:
    with pytest.raises(ValueError, match="does not beat the uniform-random policy"):
        Normalisation(5.0, 5.0, 100)
    with pytest.raises(ValueError, match="teacher_flops"):
        Normalisation(0.0, 1.0, 0)
    with pytest.raises(FormatError, match="malformed"):
        Normalisation.from_dict({"r_random": 0.0, "r_teacher": 1.0})
    with pytest.raises(FormatError, match="malformed"):
        Normalisation.from_dict({"r_random": 0.0, "r_teacher": 0.0, "teacher_flops": 10})


def test_baseline_name() -> None:
    assert baseline_name("ppo", 0.25) == "ppo_x0.25"
    assert baseline_name("distill", 1.0) == "distill_x1"
    assert baseline_name("distill", 0.5) == "distill_x0.5"
    assert BASELINE_METHODS == ("ppo", "distill", "a2d")


def test_finite_number_trusts_only_finite_non_bool_numbers() -> None:
    from a2d_evo.formats import finite_number

    assert finite_number(3) and finite_number(-2.5) and finite_number(0)
    for bad in (True, float("nan"), float("inf"), 10**400, "3", None, [1]):
        assert not finite_number(bad), bad


def test_hypervolume_units_and_reference_point() -> None:
    # objectives (-normalised return, FLOPs) -> (-normalised return, log10 FLOPs)
    pts = hv_points(np.array([[-0.25, 1000.0], [-1.0, 10.0]]))
    np.testing.assert_allclose(pts, [[-0.25, 3.0], [-1.0, 1.0]], rtol=0, atol=1e-15)
    np.testing.assert_allclose(hv_reference_point(1e4), [0.0, np.log10(11_000.0)], rtol=1e-15)
    with pytest.raises(ValueError, match="FLOPs must be > 0"):
        hv_points(np.array([[-0.5, 0.0]]))
    with pytest.raises(ValueError, match="costliest arch"):
        hv_reference_point(0.0)


def test_non_dominated_keeps_both_of_two_equal_points() -> None:
    """Equal points do not dominate each other (domination needs one objective strictly
    better): both stay, the point they beat goes."""
    from a2d_evo.formats import non_dominated

    assert non_dominated([(1.0, 1.0), (1.0, 1.0), (2.0, 0.0)]) == [0, 1]


def test_non_dominated_drops_a_point_beaten_on_one_objective_only() -> None:
    """A point with the same cost and a lower score (or the same score at a higher cost) is
    dominated: one objective strictly better is enough."""
    from a2d_evo.formats import non_dominated

    assert non_dominated([(1.0, 1.0), (1.0, 2.0), (2.0, 2.0)]) == [1]


def test_the_refusal_tells_apart_a_teacher_and_random_close_together() -> None:
    """A teacher just below random is refused with both returns printed with as many
    decimals as it takes to tell them apart (up to 6), not as two equal numbers."""
    from a2d_evo.formats import check_teacher_beats_random

    with pytest.raises(ValueError, match=r"R=1\.0001\).*R=1\.0002\)"):
        check_teacher_beats_random(1.0002, 1.0001)
    with pytest.raises(ValueError, match=r"R=2\.000001\).*R=2\.000002\)"):
        check_teacher_beats_random(2.000002, 2.000001)


def test_normalisation_from_dict_refuses_a_fractional_teacher_flops() -> None:
    """``teacher_flops`` is a count: 12.5 in a file is damage, refused, not truncated to 12;
    12.0 (a float that is an integer, as JSON may write it) is read as 12."""
    from a2d_evo.formats import Normalisation

    good = {"r_random": 0.0, "r_teacher": 10.0, "teacher_flops": 12.0}
    assert Normalisation.from_dict(good).teacher_flops == 12
    with pytest.raises(FormatError, match="teacher_flops must be an integer"):
        Normalisation.from_dict({**good, "teacher_flops": 12.5})
