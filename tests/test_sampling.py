"""The sandwich rule and the sampling rules of its random subnets."""

from __future__ import annotations

import numpy as np
import pytest

from a2d_evo.config import SpaceConfig
from a2d_evo.nets.cost import flops
from a2d_evo.nets.space import MLPArch, SearchSpace
from a2d_evo.train.sampling import (
    SubnetSampler,
    all_encodings,
    narrow_after_narrow,
    rollout_assignment,
    strata_of,
    stratified_archs,
)

OBS, ACT = (8,), 4  # LunarLander's shapes


def sampler(rule: str = "strata", **space: object) -> SubnetSampler:
    return SubnetSampler(SearchSpace(SpaceConfig(**space)), OBS, ACT, rule)  # type: ignore[arg-type]


def test_sandwich_largest_smallest_and_k_distinct_random() -> None:
    for rule in ("strata", "uniform"):
        s = sampler(rule)
        space = s.space
        archs = s.sandwich(np.random.default_rng(5), 4)
        assert archs[0] == space.largest() and archs[1] == space.smallest()
        assert len(archs) == 6
        assert len({space.key(space.encode(a)) for a in archs}) == 6
        assert archs == s.sandwich(np.random.default_rng(5), 4)  # deterministic under a seed
        assert archs != s.sandwich(np.random.default_rng(6), 4)


def test_sandwich_in_a_tiny_space() -> None:
    archs = sampler(depths=(1,), widths=(4, 8)).sandwich(np.random.default_rng(0), 3)
    assert len(archs) == 2  # only two networks exist: no duplicates are invented
    # the largest first, then the smallest (the order the rollout gives them their slots);
    # and a space of one arch, whose largest is its smallest, gives it once (a review found
    # neither checked)
    assert archs == [MLPArch((8,)), MLPArch((4,))]
    one = sampler(depths=(1,), widths=(4,)).sandwich(np.random.default_rng(0), 3)
    assert one == [MLPArch((4,))]


def test_rollout_assignment_contiguous_groups() -> None:
    s = sampler()
    archs, sizes = rollout_assignment(s, np.random.default_rng(0), 3, 8)
    assert sizes == [3, 3, 2]
    assert archs[:2] == [s.space.largest(), s.space.smallest()]
    archs, sizes = rollout_assignment(s, np.random.default_rng(0), 5, 2)
    assert sizes == [1, 1] and len(archs) == 2  # never more subnets than slots


def test_all_encodings_are_the_whole_space_once() -> None:
    for cfg in (SpaceConfig(depths=(1, 2, 3), widths=(4, 8, 16)),
                SpaceConfig.nature(conv1=(8, 16), conv2=(16,), conv3=(16, 32),
                                   extra=2, extra_widths=(8, 16), extra_kernels=(1, 3),
                                   fc=(64, 128))):  # fmt: skip
        space = SearchSpace(cfg)
        enc = all_encodings(space)
        # 3 + 9 + 27 MLPs; CNN: 2*1*2*2 trunks x (4 + off)^2 optional convs
        assert len(enc) == space.size() == (39 if cfg.kind == "mlp" else 8 * 25)
        assert len({space.key(x) for x in enc}) == len(enc)
        assert all((space.canonical(x) == x).all() for x in enc)


def test_strata_are_equal_width_in_the_values() -> None:
    v = np.array([0.0, 0.1, 0.49, 0.5, 0.99, 1.0])
    assert strata_of(v, 2).tolist() == [0, 0, 0, 1, 1, 1]
    assert strata_of(np.array([3.0, 3.0]), 4).tolist() == [0, 0]


def test_strata_rule_trains_the_cheap_corner_uniform_misses() -> None:
    """Depths 1-4, 12 widths: uniform draws almost never give a narrow-after-narrow subnet;
    the strata rule gives one in every few draws (the untrained corner of review [J])."""
    widths = (4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
    shares = {}
    for rule in ("strata", "uniform"):
        s = sampler(rule, depths=(1, 2, 3, 4), widths=widths)
        rng = np.random.default_rng(0)
        draws = [s.space.decode(s.draw_encoding(rng)) for _ in range(4000)]
        shares[rule] = np.mean([narrow_after_narrow(a, s.space) for a in draws])
        log_f = np.log10([flops(a, OBS, ACT) for a in draws])
        ends = [np.log10(flops(a, OBS, ACT)) for a in (s.space.smallest(), s.space.largest())]
        per_stratum = np.bincount(strata_of(np.r_[ends, log_f], 8)[2:], minlength=8) / len(draws)
        shares[rule + "_lowest"] = per_stratum[0]
        if rule == "strata":  # every order of magnitude of cost drawn equally often
            assert per_stratum == pytest.approx(np.full(8, 1 / 8), abs=0.025)
    # uniform: depth 2-4 (3/4) with every width in {4, 8}: 1/4 (1/36 + 1/216 + 1/1296) ~ 0.0082
    assert shares["uniform"] == pytest.approx(0.25 * (1 / 36 + 1 / 216 + 1 / 1296), abs=0.004)
    assert shares["strata"] > 5 * shares["uniform"]
    assert shares["uniform_lowest"] < 0.5 / 8  # the cheapest eighth of the cost axis


def test_stratified_archs_cover_every_stratum_and_the_narrow_corner() -> None:
    widths = (4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
    space = SearchSpace(SpaceConfig(depths=(1, 2, 3, 4), widths=widths))
    archs = stratified_archs(space, OBS, ACT, 10, np.random.default_rng(0), min_narrow=5)
    assert len(archs) == 50 and len({str(a) for a in archs}) == 50
    lf = np.log10([flops(a, OBS, ACT) for a in archs])
    assert (np.diff(lf) >= 0).all()  # sorted by FLOPs
    lo = np.log10(flops(space.smallest(), OBS, ACT))
    hi = np.log10(flops(space.largest(), OBS, ACT))
    assert np.bincount(strata_of(np.r_[lo, hi, lf], 5)[2:], minlength=5).tolist() == [10] * 5
    assert sum(narrow_after_narrow(a, space) for a in archs) >= 5
    # the corner those count: narrow after narrow, not narrow after wide nor depth 1 (the line
    # here read "(4, 4) not drawn, or narrow", true whatever was drawn)
    assert narrow_after_narrow(MLPArch((4, 4)), space)
    assert not narrow_after_narrow(MLPArch((256, 4)), space)
    assert not narrow_after_narrow(MLPArch((4,)), space)
    again = stratified_archs(space, OBS, ACT, 10, np.random.default_rng(0), min_narrow=5)
    assert again == archs


TINY = SpaceConfig(kind="mlp", depths=(1, 2), widths=(4, 8))  # 6 archs


def test_distinct_draws_find_every_arch_left_in_a_small_space() -> None:
    """In a space of 6 archs, 4 distinct ones besides the sandwich's two ends are all found:
    the bounded retries (100 per wanted arch) are enough for the duplicates small spaces
    draw, under either rule."""
    from a2d_evo.train.sampling import SubnetSampler

    space = SearchSpace(TINY)
    ends = [space.largest(), space.smallest()]
    for rule in ("uniform", "strata"):
        got = SubnetSampler(space, (4,), 2, rule).distinct(np.random.default_rng(0), 4, ends)
        assert len(got) == 4 and len(set(got)) == 4 and not set(got) & set(ends)


def test_a_space_of_one_arch_trains_it_once() -> None:
    """Where the largest and the smallest arch are one network, the sandwich holds it once,
    and a rollout gives it every env slot (not two copies of it in halves of the slots)."""
    from a2d_evo.train.sampling import SubnetSampler, rollout_assignment

    space = SearchSpace(SpaceConfig(kind="mlp", depths=(2,), widths=(8,)))
    sampler = SubnetSampler(space, (4,), 2, "uniform")
    assert sampler.sandwich(np.random.default_rng(0), 3) == [MLPArch((8, 8))]
    archs, sizes = rollout_assignment(sampler, np.random.default_rng(0), 4, 8)
    assert archs == [MLPArch((8, 8))] and sizes == [8]


def test_balanced_draws_give_exactly_k_archs() -> None:
    """``balanced`` stops at ``k`` archs even in the middle of a round of the strata (k not a
    multiple of their count), and every arch is distinct."""
    from a2d_evo.train.sampling import SubnetSampler

    sampler = SubnetSampler(SearchSpace(TINY), (4,), 2, "strata")
    n = len(sampler.strata)
    assert n >= 3
    for k in (1, n - 1, n + 1):
        rows = sampler.balanced(np.random.default_rng(k), k)
        assert rows.shape == (k, sampler.space.n_var)
        assert len({r.tobytes() for r in rows}) == k


def test_a_space_exactly_at_the_pool_cap_is_enumerated(monkeypatch: pytest.MonkeyPatch) -> None:
    """a2d_evo/train/sampling.py arch_pool: a space of exactly ``POOL_CAP`` archs is
    enumerated ("up to this many"), every arch once. Mutant let through: ``<=`` made ``<``,
    which drew ``POOL_CAP`` uniform archs instead: 2 distinct of the 6 here."""
    from a2d_evo.train import sampling

    space = SearchSpace(SpaceConfig(kind="mlp", depths=(1, 2), widths=(4, 8)))  # 2 + 4 archs
    monkeypatch.setattr(sampling, "POOL_CAP", space.size())
    pool = sampling.arch_pool(space)
    np.testing.assert_array_equal(pool, sampling.all_encodings(space))


def test_a_round_of_the_strata_cut_short_draws_from_random_strata() -> None:
    """a2d_evo/train/sampling.py SubnetSampler.balanced: each round visits the strata in a
    fresh random order, so the archs of a round cut short by ``k`` come from random strata,
    not always the first ones. Mutant let through: ``rng.permutation(n)`` made ``range(n)``:
    one arch (k = 1) was always the cheapest stratum's."""
    from a2d_evo.train.sampling import SubnetSampler

    space = SearchSpace(SpaceConfig(kind="mlp", depths=(1, 2), widths=(4, 8, 16, 32)))
    sampler = SubnetSampler(space, (4,), 2, "strata")
    n = len(sampler.strata)
    keys = [{space.key(x) for x in s} for s in sampler.strata]
    drawn = set()
    for seed in range(20):
        (row,) = sampler.balanced(np.random.default_rng(seed), 1)
        drawn.add(next(i for i, k in enumerate(keys) if space.key(row) in k))
    # 20 draws of 1 over n >= 4 strata: all in one stratum has probability n * n**-20
    assert n >= 4 and len(drawn) >= 3


def test_a_stratum_with_fewer_archs_than_asked_gives_all_it_has() -> None:
    """a2d_evo/train/sampling.py stratified_archs: ``per_stratum`` 2 from a stratum of 1
    arch (or of none) takes what there is. Mutant let through: ``min(per_stratum,
    len(members))`` made ``per_stratum``: a ValueError (a sample larger than the stratum)."""
    from a2d_evo.nets.space import MLPArch
    from a2d_evo.train.sampling import stratified_archs

    # FLOPs 2 * w * (4 + 2 + 1) on 4 inputs, 2 actions: 56, 112, 3584; log10 1.75, 2.05,
    # 3.55 in 5 strata of 0.36: {mlp-4, mlp-8} in stratum 0, mlp-256 in stratum 4, 3 empty
    space = SearchSpace(SpaceConfig(kind="mlp", depths=(1,), widths=(4, 8, 256)))
    archs = stratified_archs(space, (4,), 2, 2, np.random.default_rng(0))
    assert archs == [MLPArch((4,)), MLPArch((8,)), MLPArch((256,))]


def test_a_narrow_arch_already_picked_is_not_swapped_in_again() -> None:
    """a2d_evo/train/sampling.py stratified_archs: the narrow-after-narrow archs swapped in
    for ``min_narrow`` are ones not yet picked: the archs stay distinct and all 4 narrow ones
    are there. Mutant let through: dropping ``if i in picked: continue``, which put a picked
    narrow arch in a second time, in place of another pick, and counted it again."""
    from a2d_evo.train.sampling import narrow_after_narrow, stratified_archs

    # 3 + 9 archs in one stratum; narrow after narrow: 4x4, 4x8, 8x4, 8x8
    space = SearchSpace(SpaceConfig(kind="mlp", depths=(1, 2), widths=(4, 8, 64)))
    for seed in range(6):  # the mutant put an arch in twice on 4 of these 6 seeds
        archs = stratified_archs(
            space, (4,), 2, 6, np.random.default_rng(seed), n_strata=1, min_narrow=4
        )
        assert len(archs) == len(set(archs)) == 6, seed
        assert sum(narrow_after_narrow(a, space) for a in archs) == 4, seed
