"""The pymoo problem: one evaluator call per population, per-arch records, re-evaluation of
survivors, objectives, the log-FLOPs hypervolume."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pytest
from pymoo.core.evaluator import Evaluator
from pymoo.core.population import Population
from pymoo.indicators.hv import HV

from a2d_evo.config import SpaceConfig
from a2d_evo.evaluation.episodes import EvalResult, make_result
from a2d_evo.evaluation.seeds import generation_seeds
from a2d_evo.formats import HV_FLOPS_MARGIN, Normalisation, hv_points
from a2d_evo.nets import cost
from a2d_evo.nets.space import Arch, MLPArch, SearchSpace
from a2d_evo.search.generation import play_generation
from a2d_evo.search.nsga import (
    ResetMutation,
    make_algorithm,
    population_arrays,
    restore_algorithm,
)
from a2d_evo.search.problem import (
    CanonicalDuplicates,
    SubnetProblem,
    beats_random,
    front_indices,
    hypervolume,
    reference_point,
)

SPACE = SearchSpace(SpaceConfig(kind="mlp"))
OBS, ACTIONS = (4,), 2
NORM = Normalisation(
    r_random=20.0, r_teacher=220.0, teacher_flops=cost.flops(MLPArch((64, 64)), OBS, 2)
)


class FakeEvaluator:
    """Deterministic returns from the arch alone; records every call."""

    def __init__(self) -> None:
        self.calls: list[list[Arch]] = []

    def __call__(
        self, archs: Sequence[Arch], episodes: int, seeds: Sequence[int]
    ) -> list[EvalResult]:
        self.calls.append(list(archs))
        out = []
        for a in archs:
            assert isinstance(a, MLPArch)
            base = 20.0 + 200.0 * (1 - np.exp(-sum(a.widths) / 100))
            seeds = list(seeds[:episodes])
            out.append(
                make_result([base + s % 3 for s in seeds], seeds, [10 + s % 4 for s in seeds])
            )
        return out


SEEDS = [10, 11, 12]


def make_problem(**kw) -> tuple[SubnetProblem, FakeEvaluator]:
    ev = FakeEvaluator()
    prob = SubnetProblem(SPACE, ev, OBS, ACTIONS, NORM, episodes=3, **kw)
    return prob, ev


def test_one_evaluator_call_per_population_and_cache() -> None:
    prob, ev = make_problem()
    X = SPACE.sample_encodings(np.random.default_rng(0), 10)
    X[0] = SPACE.encode(MLPArch((SPACE.cfg.widths[1],)))  # depth 1: genes 2.. are inactive
    # a non-canonical twin of row 0 (junk in an inactive gene) is the same network
    twin = X[0].copy()
    twin[2] = 3
    assert not np.array_equal(twin, X[0]) and SPACE.decode(twin) == SPACE.decode(X[0])
    Xall = np.vstack([X, twin[None, :], X[:3]])
    out: dict = {}
    prob._evaluate(Xall.astype(float), out, seeds=SEEDS, generation=0)
    assert len(ev.calls) == 1
    assert len(ev.calls[0]) == len({SPACE.key(x) for x in X})
    np.testing.assert_array_equal(out["F"][0], out["F"][len(X)])  # the twin
    prob._evaluate(X.astype(float), out)  # everything cached: no seeds needed
    assert len(ev.calls) == 1
    assert prob.last_new == []


def test_seeds_and_generation_come_with_the_evaluation() -> None:
    """pymoo forwards the evaluator's keyword arguments; the problem keeps none of them."""
    prob, ev = make_problem()
    X = np.stack([SPACE.encode(MLPArch((8,))), SPACE.encode(MLPArch((16, 16)))])
    pop = Population.new(X=X[:1])
    Evaluator().eval(prob, pop, seeds=[40, 43, 46, 44], generation=4)
    rec = prob.entry(X[0])
    assert rec["generation"] == 4 and rec["episodes"] == 3
    # the arch played seeds[:episodes]: returns base + s % 3 = base + 1 for s = 40, 43, 46
    base = 20.0 + 200.0 * (1 - np.exp(-8 / 100))
    assert rec["return_mean"] == pytest.approx(base + 1.0) and rec["return_std"] == 0.0
    assert pop.get("F")[0, 0] == pytest.approx(-(base + 1.0 - 20.0) / 200.0)
    with pytest.raises(ValueError, match="seeds="):
        prob.evaluate(X)  # a new arch and no seeds
    with pytest.raises(ValueError, match="seeds="):
        prob.evaluate(X, seeds=[1, 2], generation=5)  # fewer seeds than episodes
    assert len(ev.calls) == 1


def test_reevaluate_plays_each_generation_once_and_keeps_every_episode() -> None:
    prob, ev = make_problem(reevaluate=True, max_arch_episodes=6)
    X = np.stack([SPACE.encode(MLPArch((8,))), SPACE.encode(MLPArch((16, 16)))])
    out: dict = {}
    prob._evaluate(X, out, seeds=[10, 11, 12], generation=0)
    prob._evaluate(X, out, seeds=[10, 11, 12], generation=0)  # same generation: not again
    assert len(ev.calls) == 1
    prob._evaluate(X, out, seeds=[21, 22, 23], generation=1)
    assert len(ev.calls) == 2 and len(ev.calls[1]) == 2
    rec = prob.entry(X[0])
    assert rec["seeds"] == [10, 11, 12, 21, 22, 23]
    assert rec["generations"] == [0, 0, 0, 1, 1, 1] and rec["episodes"] == 6
    assert rec["lengths"] == [12, 13, 10, 11, 12, 13]  # 10 + s % 4
    base = 20.0 + 200.0 * (1 - np.exp(-8 / 100))
    # s % 3 over 10, 11, 12, 21, 22, 23 = 1, 2, 0, 0, 1, 2: mean base + 1
    assert rec["returns"] == pytest.approx([base + v for v in (1, 2, 0, 0, 1, 2)])
    assert rec["return_mean"] == pytest.approx(base + 1.0)
    assert rec["return_std"] == pytest.approx(np.sqrt(4 / 6))
    assert out["F"][0, 0] == pytest.approx(-(base + 1.0 - 20.0) / 200.0)
    assert prob.env_steps() == 2 * 71 and prob.episodes_played() == 12
    prob._evaluate(X, out, seeds=[31, 32, 33], generation=2)  # both hold the cap (6)
    assert len(ev.calls) == 2 and prob.last_new == []
    # an arch plays whole generations: a cap of 4 at 3 a generation stops it at 6
    prob, ev = make_problem(reevaluate=True, max_arch_episodes=4)
    for g in range(3):
        prob._evaluate(X[:1], out, seeds=[10 * g + 1, 10 * g + 2, 10 * g + 3], generation=g)
    assert len(ev.calls) == 2 and prob.entry(X[0])["episodes"] == 6


def test_first_estimate_is_kept_without_reevaluate() -> None:
    prob, ev = make_problem()
    X = SPACE.sample_encodings(np.random.default_rng(1), 5)
    out: dict = {}
    prob._evaluate(X, out, seeds=SEEDS, generation=0)
    prob._evaluate(X, out, seeds=[40, 41, 42], generation=1)
    assert len(ev.calls) == 1 and prob.entry(X[0])["seeds"] == SEEDS


def test_objectives_and_constraint() -> None:
    prob, ev = make_problem(max_flops=5000.0)
    big, small = MLPArch((64, 64)), MLPArch((8,))
    assert cost.flops(big, OBS, ACTIONS) > 5000.0 >= cost.flops(small, OBS, ACTIONS)
    X = np.stack([SPACE.encode(big), SPACE.encode(small)])
    out: dict = {}
    prob._evaluate(X, out, seeds=SEEDS, generation=0)
    ret = 20.0 + 200.0 * (1 - np.exp(-8 / 100)) + 1.0  # seeds 10..12 % 3
    assert out["F"][1, 0] == pytest.approx(-(ret - 20.0) / 200.0)
    # over the ceiling: not played (its cost is known), no record, the random policy's
    # normalised 0 as its return objective, which its violation outranks
    assert [str(a) for a in ev.calls[0]] == ["mlp-8"]
    assert out["F"][0, 0] == 0.0 and prob.last_new == [SPACE.key(X[1])]
    for row, arch in zip(out["F"], (big, small), strict=True):
        assert row[1] == cost.flops(arch, OBS, ACTIONS)
    np.testing.assert_allclose(out["G"][:, 0], out["F"][:, 1] - 5000.0)
    assert out["G"][0, 0] > 0 >= out["G"][1, 0]
    with pytest.raises(KeyError):
        prob.entry(X[0])
    assert prob.env_steps() == sum(prob.entry(X[1])["lengths"])
    rec = prob.entry(X[1])
    assert rec["arch"] == "mlp-8" and rec["params"] == cost.params(small, OBS, ACTIONS)
    assert rec["episodes"] == 3 and rec["generation"] == 0
    # a later generation replays neither; the unplayed one keeps its objectives
    prob._evaluate(X[:1], out, seeds=SEEDS, generation=1)
    assert len(ev.calls) == 1 and out["F"][0, 0] == 0.0


def test_cache_round_trip() -> None:
    prob, _ = make_problem()
    X = SPACE.sample_encodings(np.random.default_rng(2), 6)
    out: dict = {}
    prob._evaluate(X, out, seeds=SEEDS, generation=0)
    other, ev2 = make_problem()
    other.load_cache(prob.cache_records())
    out2: dict = {}
    other._evaluate(X, out2)
    assert ev2.calls == []
    np.testing.assert_array_equal(out["F"], out2["F"])


def test_duplicates_on_the_canonical_encoding() -> None:
    a = SPACE.encode(MLPArch((16,)))
    b = a.copy()
    b[3] = 5  # inactive gene: the same network
    c = SPACE.encode(MLPArch((16, 16)))
    dup = CanonicalDuplicates(SPACE)
    pop = Population.new(X=np.stack([a, b, c]))
    kept = dup.do(pop)
    assert len(kept) == 2
    other = Population.new(X=np.stack([c]))
    assert len(dup.do(Population.new(X=np.stack([a, c])), other)) == 1


def test_front_by_hand() -> None:
    F = np.array([[-1.0, 4.0], [-0.5, 1.0], [-0.4, 3.0], [-1.0, 5.0], [0.2, 0.5]])
    np.testing.assert_array_equal(front_indices(F), [0, 1, 4])
    G = np.array([[0.0], [1.0], [0.0], [0.0], [0.0]])  # member 1 infeasible
    np.testing.assert_array_equal(front_indices(F, G), [0, 2, 4])
    # ties: equal points are both kept; an equal score at a higher cost is dominated
    F = np.array([[-0.5, 10.0], [-0.5, 10.0], [-0.5, 20.0], [-0.7, 20.0], [-0.7, 30.0]])
    np.testing.assert_array_equal(front_indices(F), [0, 1, 3])
    assert front_indices(F, np.ones((5, 1))).size == 0  # nothing feasible: an empty front


def test_log_flops_hypervolume_by_hand() -> None:
    """Three members at 10, 100 and 1000 FLOPs, the largest arch at 10,000 FLOPs."""
    F = np.array([[-0.9, 1000.0], [-0.5, 100.0], [-0.2, 10.0]])
    ref = np.array([0.0, np.log10(1.1 * 10_000)])
    # staircase on log10 FLOPs: 0.2 over [1, 2], 0.5 over [2, 3], 0.9 over [3, log10(11000)]
    want = 0.2 * 1 + 0.5 * 1 + 0.9 * (np.log10(11_000) - 3)
    assert want == pytest.approx(1.637253, abs=1e-6)
    assert hypervolume(F, ref) == pytest.approx(want, rel=1e-12)
    # a member worse than random adds nothing; the empty front has none
    assert hypervolume(np.vstack([F, [[0.3, 1.0]]]), ref) == pytest.approx(want, rel=1e-12)
    assert hypervolume(np.zeros((0, 2)), ref) == 0.0
    np.testing.assert_allclose(hv_points(F), [[-0.9, 3.0], [-0.5, 2.0], [-0.2, 1.0]])
    # the shape counts: the same best return with and without a cheap knee differ by 0.6 of
    # ~1.64 here, where on linear FLOPs (area ~ best return x FLOPs span) they differ by 4.6%
    no_knee = np.array([[-0.9, 1000.0], [-0.05, 10.0]])
    assert hypervolume(F, ref) - hypervolume(no_knee, ref) == pytest.approx(0.6)
    linear = HV(ref_point=np.array([0.0, 11_000.0]))
    assert linear(F) / linear(no_knee) == pytest.approx(9468 / 9049.5)


def test_the_staircase_hypervolume_takes_each_members_own_figure() -> None:
    """The staircase HV holds each member's return (clipped at 0) from its FLOPs to the next
    member's: the hypervolume where returns rise with FLOPs; where a costlier member scores
    below a cheaper one (noise on the final seeds), its own figure, not the best so far. Hand
    values as in the test above; then the noise bias it removes: six members 0.05 apart in
    normalised return, scored with noise of standard error 0.15 (about a 30-episode MinAtar
    figure), 2,000 draws: the hypervolume comes out 0.245 high on average (of 1.996), the
    staircase within 0.003."""
    from a2d_evo.search.problem import staircase_hypervolume

    F = np.array([[-0.9, 1000.0], [-0.5, 100.0], [-0.2, 10.0]])
    ref = np.array([0.0, np.log10(1.1 * 10_000)])
    assert staircase_hypervolume(F, ref) == pytest.approx(hypervolume(F, ref), rel=1e-12)
    # the middle member below the cheapest: 0.2 over [1, 2], 0.1 over [2, 3], 0.9 over the rest
    dip = np.array([[-0.9, 1000.0], [-0.1, 100.0], [-0.2, 10.0]])
    tail = np.log10(11_000) - 3
    assert staircase_hypervolume(dip, ref) == pytest.approx(0.2 + 0.1 + 0.9 * tail, rel=1e-12)
    assert hypervolume(dip, ref) == pytest.approx(0.2 + 0.2 + 0.9 * tail, rel=1e-12)
    below = np.array([[-0.9, 1000.0], [0.3, 100.0], [-0.2, 10.0]])  # below random: 0 there
    assert staircase_hypervolume(below, ref) == pytest.approx(0.2 + 0.9 * tail, rel=1e-12)
    assert staircase_hypervolume(np.zeros((0, 2)), ref) == 0.0
    # two members of equal cost: one step at their mean, whatever their order (a review: the
    # first of them counted for nothing)
    tied = np.array([[-0.9, 100.0], [-0.1, 100.0]])
    want = 0.5 * (np.log10(11_000) - 2)
    assert staircase_hypervolume(tied, ref) == pytest.approx(want, rel=1e-12)
    assert staircase_hypervolume(tied[::-1], ref) == pytest.approx(want, rel=1e-12)
    rng = np.random.default_rng(0)
    six = np.column_stack([-np.arange(0.5, 0.76, 0.05), [10, 20, 50, 100, 500, 1000]])
    true = hypervolume(six, ref)
    noisy = [six + np.column_stack([rng.normal(0, 0.15, 6), np.zeros(6)]) for _ in range(2000)]
    enveloped = np.mean([hypervolume(f, ref) for f in noisy]) - true
    own = np.mean([staircase_hypervolume(f, ref) for f in noisy]) - true
    assert enveloped > 0.2 and abs(own) < 0.005, (enveloped, own)


def test_beats_random_keeps_what_the_random_policy_does_not_dominate() -> None:
    # mean returns against the random policy's 20 on the same seeds: 1 and 3 do not beat it
    assert beats_random([25.0, 20.0, 40.0, -3.0], 20.0) == ([0, 2], 2)
    # nothing beats random: the best one alone, the other counted as dropped
    assert beats_random([-5.0, -1.0], 0.0) == ([1], 1)


def test_reference_point() -> None:
    ref = reference_point(SPACE, OBS, ACTIONS)
    largest = cost.flops(SPACE.largest(), OBS, ACTIONS)  # the costliest, in an MLP space
    assert cost.flops(cost.costliest(SPACE, OBS, ACTIONS), OBS, ACTIONS) == largest
    assert HV_FLOPS_MARGIN == 1.1
    assert ref[0] == 0.0 and ref[1] == pytest.approx(np.log10(1.1 * largest), rel=1e-12)


def test_normalisation_checks() -> None:
    with pytest.raises(ValueError, match="teacher"):
        Normalisation(5.0, 5.0, 100)
    assert NORM.score(220.0) == 1.0 and NORM.score(20.0) == 0.0
    assert Normalisation.from_dict(NORM.to_dict()) == NORM


def test_generation_seeds() -> None:
    a = generation_seeds(0, 0, 5)
    assert a == generation_seeds(0, 0, 5) and a[1:] == [a[0] + i for i in range(1, 5)]
    assert a != generation_seeds(0, 1, 5) and a != generation_seeds(1, 0, 5)
    assert all(0 <= s < 2**31 for s in a)


@pytest.mark.parametrize(
    ("max_flops", "reevaluate", "mutation", "init", "estimate"),
    [
        (None, False, "polynomial", "uniform", "mean"),
        (3000.0, False, "polynomial", "uniform", "mean"),
        (None, True, "polynomial", "uniform", "mean"),
        (3000.0, True, "polynomial", "uniform", "mean"),
        (None, True, "reset", "uniform", "mean"),
        (None, True, "reset", "strata", "mean"),
        (3000.0, True, "reset", "uniform", "shrunk"),
    ],
)
def test_nsga2_restored_from_arrays_continues_identically(
    max_flops: float | None, reevaluate: bool, mutation: str, init: str, estimate: str
) -> None:
    """Resume = a fresh NSGA-II set up and given the saved arrays and records: the same
    offspring, and the same per-episode records, follow.

    With a FLOPs ceiling some members are infeasible and carry no rank (NaN in the file).
    """
    from a2d_evo.config import config_from_dict

    cfg = config_from_dict(
        {
            "seed": 7,
            "search": {"pop": 12, "gens": 6, "mutation": mutation, "init": init},
        }
    )

    def run(gens: int, resume_at: int | None) -> tuple[list[np.ndarray], int, np.ndarray, list]:
        prob, _ = make_problem(max_flops=max_flops, reevaluate=reevaluate, estimate=estimate)
        algo = make_algorithm(cfg, SPACE, OBS, ACTIONS)
        algo.setup(prob, verbose=False)
        history = []
        gen = 0
        while gen < gens:
            if resume_at is not None and gen == resume_at:
                arrays = population_arrays(algo, gen)
                records = json.loads(json.dumps(prob.cache_records()))  # as state.json
                prob, _ = make_problem(
                    max_flops=max_flops, reevaluate=reevaluate, estimate=estimate
                )
                prob.load_cache(records)
                algo = make_algorithm(cfg, SPACE, OBS, ACTIONS)
                algo.setup(prob, verbose=False)
                restore_algorithm(algo, arrays, gen)
            assert play_generation(algo, prob, generation_seeds(7, gen, 3), gen)
            history.append(np.asarray(algo.pop.get("X")).copy())
            gen += 1
        return history, algo.n_gen, np.asarray(algo.opt.get("F")), prob.cache_records()

    straight, n_gen, opt, records = run(6, None)
    resumed, n_gen_resumed, opt_resumed, records_resumed = run(6, 3)
    for a, b in zip(straight, resumed, strict=True):
        np.testing.assert_array_equal(a, b)
    assert n_gen == n_gen_resumed == 7  # the generation counter goes on where it stopped
    np.testing.assert_array_equal(opt, opt_resumed)
    assert records == records_resumed
    replayed = [r for r in records if len(set(r["generations"])) > 1]
    assert bool(replayed) == reevaluate  # survivors hold episodes of several generations


def test_strata_init_spreads_the_first_population_over_log_flops() -> None:
    """``search.init: strata``: 64 distinct archs (uniform: 54), every eighth of the space's
    log10-FLOPs range holding 8 of them; uniform genes put under half as many in the cheapest
    quarter."""
    from a2d_evo.config import config_from_dict
    from a2d_evo.train.sampling import strata_of

    ends = [np.log10(cost.flops(a, OBS, ACTIONS)) for a in (SPACE.smallest(), SPACE.largest())]
    counts = {}
    for init in ("uniform", "strata"):
        cfg = config_from_dict({"seed": 5, "search": {"pop": 64, "init": init}})
        prob, _ = make_problem()
        algo = make_algorithm(cfg, SPACE, OBS, ACTIONS)
        algo.setup(prob, verbose=False)
        X = np.asarray(algo.ask().get("X"))
        assert len({SPACE.key(x) for x in X}) == len(X)
        # uniform draws of the same network are dropped as duplicates, not redrawn: 54 left
        assert len(X) == (64 if init == "strata" else 54)
        lf = np.log10([cost.flops(SPACE.decode(x), OBS, ACTIONS) for x in X])
        counts[init] = np.bincount(strata_of(np.r_[ends, lf], 8)[2:], minlength=8)
    assert counts["strata"].tolist() == [8] * 8
    assert counts["uniform"][:2].sum() < counts["strata"][:2].sum() / 2  # the cheapest quarter
    with pytest.raises(ValueError, match="obs_shape and n_actions"):
        make_algorithm(config_from_dict({"search": {"init": "strata"}}), SPACE)


class LuckyEvaluator(FakeEvaluator):
    """The largest arch draws 1000 above its true return on generation 0's seeds only; its
    true return is 1000 below random, so its mean over two generations is random's (20)."""

    def __init__(self, lucky_seeds: list[int]) -> None:
        super().__init__()
        self.lucky_seeds = lucky_seeds

    def __call__(
        self, archs: Sequence[Arch], episodes: int, seeds: Sequence[int]
    ) -> list[EvalResult]:
        out = super().__call__(archs, episodes, seeds)
        for i, a in enumerate(archs):
            if a == SPACE.largest():
                luck = 1000.0 if list(seeds[:episodes]) == self.lucky_seeds else -1000.0
                out[i] = make_result([20.0 + luck] * episodes, seeds[:episodes], [5] * episodes)
        return out


@pytest.mark.parametrize("reevaluate", [False, True])
def test_a_lucky_first_draw_loses_its_place_when_survivors_are_rescored(reevaluate: bool) -> None:
    from a2d_evo.config import config_from_dict

    cfg = config_from_dict({"seed": 7, "search": {"pop": 8, "gens": 3, "episodes": 2}})
    seeds = [generation_seeds(7, g, 2) for g in range(3)]
    ev = LuckyEvaluator(seeds[0])
    prob = SubnetProblem(SPACE, ev, OBS, ACTIONS, NORM, episodes=2, reevaluate=reevaluate)
    X0 = np.vstack(
        [SPACE.encode(SPACE.largest()), SPACE.sample_encodings(np.random.default_rng(3), 7)]
    )
    algo = make_algorithm(cfg, SPACE)
    algo.initialization.sampling = Population.new(X=X0)
    algo.setup(prob, verbose=False)
    lucky = SPACE.key(X0[0])
    for gen in range(3):
        assert play_generation(algo, prob, seeds[gen], gen)
        kept = {SPACE.key(x) for x in algo.pop.get("X")}
        if gen == 0 or not reevaluate:
            # its first estimate (1020: normalised 5.0) is the best return: it stays
            assert lucky in kept
            assert prob.cache[lucky]["episodes"] == 2
            assert prob.cache[lucky]["return_mean"] == 1020.0
        else:
            # re-scored with generation 1's seeds: mean (1020 - 980) / 2 = random's 20,
            # dominated by every cheaper member: dropped
            assert lucky not in kept
            assert prob.cache[lucky]["episodes"] == 4
            assert prob.cache[lucky]["return_mean"] == 20.0
            assert prob.cache[lucky]["generations"] == [0, 0, 1, 1]
    # every call of a generation is one evaluator call: survivors and offspring together
    assert len(ev.calls) == 3
    if reevaluate:
        assert len(ev.calls[1]) > 8  # 8 parents + the new offspring


class SeedEffectEvaluator(FakeEvaluator):
    """``FakeEvaluator``'s return plus 100 on the ``easy`` seeds (a generation of easy
    episodes), the same for every arch."""

    def __init__(self, easy: list[int]) -> None:
        super().__init__()
        self.easy = set(easy)

    def __call__(
        self, archs: Sequence[Arch], episodes: int, seeds: Sequence[int]
    ) -> list[EvalResult]:
        out = super().__call__(archs, episodes, seeds)
        bonus = [100.0 if s in self.easy else 0.0 for s in seeds[:episodes]]
        return [
            make_result(
                [r + b for r, b in zip(res.returns, bonus, strict=True)],
                list(seeds[:episodes]),
                [10] * episodes,
            )
            for res in out
        ]


@pytest.mark.parametrize("estimate", ["mean", "seed_adjusted", "shrunk"])
def test_seed_adjusted_estimates_compare_a_survivor_and_an_offspring_fairly(
    estimate: str,
) -> None:
    """A survivor played an easy generation (+100) and a normal one; an offspring of the same
    FLOPs-class but a better true return played the normal one only. Plain means put the
    survivor ahead by the easy seeds' 50; the seed-adjusted (and shrunk) estimates, with two
    anchors that played both generations, put the offspring ahead, as its true return is."""
    seeds = [generation_seeds(11, g, 3) for g in range(2)]
    ev = SeedEffectEvaluator(seeds[0])
    anchors = [SPACE.encode(MLPArch((4,))), SPACE.encode(MLPArch((32, 32)))]
    prob = SubnetProblem(
        SPACE, ev, OBS, ACTIONS, NORM, episodes=3, reevaluate=True, estimate=estimate,
        anchors=anchors if estimate != "mean" else (),
    )  # fmt: skip
    first = [MLPArch((8,)), MLPArch((4, 4)), MLPArch((16,))]
    survivor, offspring = MLPArch((8, 8)), MLPArch((16, 16))  # true 20 + 200 (1 - e^-0.16/0.32)
    X0 = np.stack([SPACE.encode(a) for a in [*first, survivor]])
    prob.evaluate(X0, seeds=seeds[0], generation=0)
    X1 = np.stack([SPACE.encode(a) for a in [*first, survivor, offspring]])
    F = prob.evaluate(X1, seeds=seeds[1], generation=1)
    gap = F[-2, 0] - F[-1, 0]  # the offspring's -normalised return below the survivor's
    if estimate == "mean":
        assert gap < 0  # the survivor's easy seeds win
    else:
        true_gap = (200 * (np.exp(-16 / 100) - np.exp(-32 / 100))) / 200  # normalised units
        assert gap == pytest.approx(true_gap, rel=0.05 if estimate == "seed_adjusted" else 0.6)


def test_anchors_play_every_generation_and_count_in_the_budget() -> None:
    """Anchors play each generation in which anything plays, though ``reevaluate`` is off;
    their records say so; ``last_new`` keeps to the candidates that were due."""
    anchors = [SPACE.encode(MLPArch((4,))), SPACE.encode(MLPArch((32, 32)))]
    prob, ev = make_problem(reevaluate=False, estimate="seed_adjusted", anchors=anchors)
    for g, width in enumerate((8, 16, 24)):  # a new arch each generation, next to anchor mlp-4
        X = np.stack([SPACE.encode(MLPArch((width,))), SPACE.encode(MLPArch((4,)))])
        prob.evaluate(X, seeds=generation_seeds(5, g, 3), generation=g)
        assert len(prob.last_new) == (2 if g == 0 else 1)
    recs = {r["arch"]: r for r in prob.cache_records()}
    assert [len(c) for c in ev.calls] == [3, 3, 3]
    assert recs["mlp-4"]["generations"] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert recs["mlp-32x32"]["anchor"] is True and recs["mlp-4"]["anchor"] is True
    assert "anchor" not in recs["mlp-8"] and recs["mlp-8"]["episodes"] == 3
    assert prob.episodes_played() == 27
    # three archs (the new one and both anchors) on each generation's 3 seeds, each episode
    # 10 + seed % 4 steps long (the fake evaluator's rule), computed apart from the records
    expected = 3 * sum(10 + s % 4 for g in range(3) for s in generation_seeds(5, g, 3))
    assert prob.env_steps() == expected
    prob.evaluate(X, seeds=generation_seeds(5, 3, 3), generation=3)  # nothing due: no play
    assert len(ev.calls) == 3


def test_reevaluate_ranks_replays_only_the_survivors_on_the_first_fronts() -> None:
    """``search.reevaluate_ranks=1``: of the survivors, only the current first front plays
    the next generation's seeds (with the offspring, in one call); the others keep their
    first estimates."""
    from a2d_evo.config import config_from_dict

    cfg = config_from_dict({"seed": 7, "search": {"pop": 12, "gens": 2, "episodes": 3}})
    prob, ev = make_problem(reevaluate=True)
    algo = make_algorithm(cfg, SPACE)
    algo.setup(prob, verbose=False)
    assert play_generation(algo, prob, generation_seeds(7, 0, 3), 0, ranks=1)
    ranked = list(zip(algo.pop.get("X"), algo.pop.get("rank"), strict=True))
    front = {SPACE.key(x) for x, r in ranked if r == 0}
    rest = {SPACE.key(x) for x, r in ranked if r > 0}
    assert front and rest
    assert play_generation(algo, prob, generation_seeds(7, 1, 3), 1, ranks=1)
    assert len(ev.calls) == 2
    played = {SPACE.key(SPACE.encode(a)) for a in ev.calls[1]}
    assert front <= played and not rest & played
    assert len(played) == len(front) + len(played - front - rest)  # the front + offspring
    for k in front:
        assert prob.cache[k]["generations"] == [0, 0, 0, 1, 1, 1]
    for k in rest:
        assert prob.cache[k]["generations"] == [0, 0, 0]


@pytest.mark.parametrize("prob_var", [None, 0.3])
def test_reset_mutation_redraws_genes_among_their_other_values(prob_var: float | None) -> None:
    """Every child is another network than its parent (an *active* gene changed: not a width
    below the depth); a gene is redrawn with ``prob_var`` (default ``1 / n_var``), uniformly
    among its other values, within bounds. Polynomial mutation, for contrast, leaves most
    children of this space unchanged."""
    from pymoo.core.problem import Problem
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair

    space = SearchSpace(SpaceConfig(kind="mlp", depths=(1, 2, 3), widths=(4, 8, 16, 32)))
    prob = Problem(n_var=space.n_var, n_obj=2, xl=space.xl, xu=space.xu, vtype=int)
    X = space.sample_encodings(np.random.default_rng(0), 20000).astype(np.float64)
    op = ResetMutation(space, prob=1.0, prob_var=prob_var)
    Y = op(prob, Population.new(X=X.copy()), random_state=np.random.default_rng(1)).get("X")
    assert (Y == np.round(Y)).all() and (Y >= space.xl).all() and (Y <= space.xu).all()
    changed = Y != X
    assert (space.canonical(Y) != space.canonical(X)).any(axis=1).all()  # another network
    p = 1 / space.n_var if prob_var is None else prob_var
    # P(gene changed) = p, plus (1 - p)^k / k for each of a row's k active genes (a child
    # with none of them drawn gets one); the depth gene and depth widths are active
    k = 1 + np.asarray([space.choices[0][int(d)] for d in X[:, 0]])
    active = np.arange(space.n_var)[None, :] <= k[:, None] - 1
    expected = p + active * ((1 - p) ** k / k)[:, None]
    assert abs(changed.mean() - expected.mean()) < 0.01
    for rows in (active, ~active):  # on each kind of gene alone
        assert abs(changed[rows].mean() - expected[rows].mean()) < 0.01
    # a redrawn width gene (4 choices) takes each of its 3 other values about equally
    g = space.n_var - 1
    moved = (Y[changed[:, g], g] - X[changed[:, g], g]) % 4
    counts = np.bincount(moved.astype(int), minlength=4)
    assert counts[0] == 0 and counts[1:].min() > 0.9 * counts[1:].max()
    pm = PM(prob=1.0, eta=20.0, vtype=float, repair=RoundingRepair())
    Z = pm(prob, Population.new(X=X.copy()), random_state=np.random.default_rng(1)).get("X")
    assert (Z != X).any(axis=1).mean() < 0.3


def _by_width(archs: Sequence[Arch], episodes: int, seeds: Sequence[int]) -> list[EvalResult]:
    """Returns that grow with the arch's total width (seed by seed: + seed % 3), 10 steps."""
    out = []
    for a in archs:
        assert isinstance(a, MLPArch)
        s = list(seeds[:episodes])
        out.append(make_result([sum(a.widths) + x % 3 for x in s], s, [10] * len(s)))
    return out


def _problem(**kw):  # type: ignore[no-untyped-def]
    from a2d_evo.search.problem import SubnetProblem

    return SubnetProblem(SPACE, _by_width, OBS, ACTIONS, NORM, episodes=3, **kw)


def test_an_arch_exactly_at_max_flops_is_played_and_replayed() -> None:
    """``G = FLOPs - max_flops <= 0`` is feasible: an arch costing exactly the ceiling is
    played and recorded (its G is 0), and re-scored in the next generation; only one above
    the ceiling is left unplayed."""
    arch = MLPArch((16,))
    f = cost.flops(arch, OBS, ACTIONS)
    prob = _problem(max_flops=float(f), reevaluate=True)
    X = np.array([SPACE.encode(arch), SPACE.encode(MLPArch((24,)))])
    for gen in (0, 1):
        out: dict = {}
        prob._evaluate(X, out, seeds=[10, 11, 12], generation=gen)
        assert list(prob.cache) == [SPACE.key(X[0])]
        assert out["G"][0, 0] == 0.0 and out["G"][1, 0] > 0
    assert prob.cache[SPACE.key(X[0])]["generations"] == [0, 0, 0, 1, 1, 1]


def test_anchors_play_once_per_generation() -> None:
    """Anchors play every generation in which anything plays, once: a second evaluator call
    in the same generation (new archs) plays the new archs alone, and the next generation's
    plays the anchor again."""
    anchor = SPACE.encode(MLPArch((8,)))
    prob = _problem(anchors=[anchor])
    key = SPACE.key(anchor)
    for gen, width in ((0, 16), (0, 24), (1, 32)):
        prob._evaluate(np.array([SPACE.encode(MLPArch((width,)))]), {}, seeds=[10, 11, 12],
                       generation=gen)  # fmt: skip
        if gen == 0:
            assert prob.cache[key]["episodes"] == 3
    assert prob.cache[key]["generations"] == [0, 0, 0, 1, 1, 1]
    assert prob.cache[key]["anchor"] is True


def test_the_forced_gene_of_a_reset_child_is_any_active_gene_alike() -> None:
    """A child with none of its parent's active genes drawn gets ONE of them redrawn,
    uniformly: with a draw probability near 0 nearly every child is such a one, and each of
    a depth-2 parent's three active genes (depth, two widths) changes in about a third of
    them; inactive genes (the widths below the depth) never."""
    from pymoo.core.population import Population
    from pymoo.core.problem import Problem

    from a2d_evo.search.nsga import ResetMutation

    space = SearchSpace(SpaceConfig(kind="mlp", depths=(1, 2, 3), widths=(4, 8, 16, 32)))
    prob = Problem(n_var=space.n_var, n_obj=2, xl=space.xl, xu=space.xu, vtype=int)
    parent = space.encode(MLPArch((8, 16))).astype(np.float64)
    X = np.repeat(parent[None, :], 6000, axis=0)
    op = ResetMutation(space, prob=1.0, prob_var=1e-9)
    Y = op(prob, Population.new(X=X.copy()), random_state=np.random.default_rng(2)).get("X")
    changed = (Y != X).mean(axis=0)
    assert (Y != X).sum(axis=1).max() == 1  # one gene per child
    np.testing.assert_allclose(changed[:3], 1 / 3, atol=0.03)
    assert changed[3:].sum() == 0


def test_reset_mutation_from_the_config_knows_the_space_and_the_gene_probability() -> None:
    """``search.mutation: reset`` mutates with the space (a child of a depth-1 parent is
    another network, though most of its genes are inactive widths) and with
    ``search.mutation_prob`` (0.6 per gene here, not ``1 / n_var``)."""
    from pymoo.core.population import Population

    from a2d_evo.config import config_from_dict
    from a2d_evo.search.nsga import make_algorithm
    from a2d_evo.search.problem import SubnetProblem

    cfg = config_from_dict({"search": {"mutation": "reset", "mutation_prob": 0.6}})
    algo = make_algorithm(cfg, SPACE)
    prob = SubnetProblem(SPACE, _by_width, OBS, ACTIONS, NORM, episodes=3)
    mutation = algo.mating.mutation
    rng = np.random.default_rng(0)
    X = np.repeat(SPACE.encode(MLPArch((8,)))[None, :], 3000, axis=0).astype(np.float64)
    Y = mutation(prob, Population.new(X=X.copy()), random_state=rng).get("X")
    assert (SPACE.canonical(Y) != SPACE.canonical(X)).any(axis=1).all()
    deep = np.repeat(SPACE.encode(MLPArch((8, 8, 8, 8)))[None, :], 3000, axis=0)
    Y = mutation(prob, Population.new(X=deep.astype(np.float64)), random_state=rng).get("X")
    np.testing.assert_allclose((Y != deep).mean(), 0.6, atol=0.03)
