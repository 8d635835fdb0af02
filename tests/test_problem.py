"""The pymoo problem: one evaluator call per population, the cache, objectives, HV."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from pymoo.core.evaluator import Evaluator
from pymoo.core.population import Population

from a2d_evo.config import SpaceConfig
from a2d_evo.evaluation.episodes import EvalResult, make_result
from a2d_evo.evaluation.seeds import generation_seeds
from a2d_evo.formats import Normalisation
from a2d_evo.nets import cost
from a2d_evo.nets.space import Arch, MLPArch, SearchSpace
from a2d_evo.search.nsga import make_algorithm, population_arrays, restore_algorithm
from a2d_evo.search.problem import (
    HV_FLOPS_MARGIN,
    CanonicalDuplicates,
    SubnetProblem,
    delivered_front,
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
            out.append(make_result([base + s % 3 for s in seeds[:episodes]], seeds[:episodes]))
        return out


SEEDS = [10, 11, 12]


def make_problem(**kw) -> tuple[SubnetProblem, FakeEvaluator]:
    ev = FakeEvaluator()
    prob = SubnetProblem(SPACE, ev, OBS, ACTIONS, NORM, episodes=3, **kw)
    return prob, ev


def test_one_evaluator_call_per_population_and_cache() -> None:
    prob, ev = make_problem()
    X = SPACE.sample_encodings(np.random.default_rng(0), 10)
    # a non-canonical twin of row 0 (junk in an inactive gene) is the same network
    twin = X[0].copy()
    depth = SPACE.choices[0][twin[0]]
    if depth < SPACE.max_depth:
        twin[1 + depth] = 3
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


def test_rescore_evaluates_again() -> None:
    prob, ev = make_problem(rescore=True)
    X = SPACE.sample_encodings(np.random.default_rng(1), 5)
    out: dict = {}
    prob._evaluate(X, out, seeds=SEEDS, generation=0)
    prob._evaluate(X, out, seeds=SEEDS, generation=1)
    assert len(ev.calls) == 2


def test_objectives_and_constraint() -> None:
    prob, _ = make_problem(max_flops=5000.0)
    X = np.stack([SPACE.encode(MLPArch((64, 64))), SPACE.encode(MLPArch((8,)))])
    out: dict = {}
    prob._evaluate(X, out, seeds=SEEDS, generation=0)
    for row, arch in zip(out["F"], (MLPArch((64, 64)), MLPArch((8,))), strict=True):
        ret = 20.0 + 200.0 * (1 - np.exp(-sum(arch.widths) / 100)) + 1.0  # seeds 10..12 % 3
        assert row[0] == pytest.approx(-(ret - 20.0) / 200.0)
        assert row[1] == cost.flops(arch, OBS, ACTIONS)
    np.testing.assert_allclose(out["G"][:, 0], out["F"][:, 1] - 5000.0)
    rec = prob.entry(X[1])
    assert rec["arch"] == "mlp-8" and rec["params"] == cost.params(MLPArch((8,)), OBS, ACTIONS)
    assert rec["episodes"] == 3 and rec["generation"] == 0


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


def test_front_and_hypervolume_by_hand() -> None:
    F = np.array([[-1.0, 4.0], [-0.5, 1.0], [-0.4, 3.0], [-1.0, 5.0], [0.2, 0.5]])
    np.testing.assert_array_equal(front_indices(F), [0, 1, 4])
    G = np.array([[0.0], [1.0], [0.0], [0.0], [0.0]])  # member 1 infeasible
    np.testing.assert_array_equal(front_indices(F, G), [0, 2, 4])
    ref = np.array([0.0, 10.0])
    # member 4 (worse than random) adds nothing; rectangles: [-1,-0.5]x[4,10] + [-0.5,0]x[1,10]
    assert hypervolume(F[[0, 1, 4]], ref) == pytest.approx(0.5 * 6 + 0.5 * 9)
    assert hypervolume(np.zeros((0, 2)), ref) == 0.0


def test_delivered_front_drops_the_dominated_and_what_random_beats() -> None:
    # (normalised return, FLOPs): 1 is dominated by 0, 3 (< 0) is beaten by the random policy
    norm = np.array([0.9, 0.8, 1.0, -0.2])
    flops = np.array([10.0, 20.0, 50.0, 1.0])
    assert delivered_front(norm, flops) == ([0, 2], 1)
    # nothing beats random: the best member alone, the other front member counted as dropped
    assert delivered_front(np.array([-0.5, -0.1]), np.array([1.0, 9.0])) == ([1], 1)


def test_reference_point() -> None:
    ref = reference_point(SPACE, OBS, ACTIONS, NORM.teacher_flops)
    largest = cost.flops(SPACE.largest(), OBS, ACTIONS)
    assert ref[0] == 0.0
    assert ref[1] == pytest.approx(HV_FLOPS_MARGIN * largest / NORM.teacher_flops)


def test_normalisation_checks() -> None:
    with pytest.raises(ValueError, match="teacher"):
        Normalisation(5.0, 5.0, 100)
    assert NORM.score(220.0) == 1.0 and NORM.score(20.0) == 0.0
    assert Normalisation.from_dict(NORM.to_dict()) == NORM
    tf = NORM.teacher_flops
    np.testing.assert_array_equal(
        NORM.scaled([[-0.5, 2 * tf], [0.1, tf / 4]]), [[-0.5, 2], [0.1, 0.25]]
    )


def test_generation_seeds() -> None:
    a = generation_seeds(0, 0, 5)
    assert a == generation_seeds(0, 0, 5) and a[1:] == [a[0] + i for i in range(1, 5)]
    assert a != generation_seeds(0, 1, 5) and a != generation_seeds(1, 0, 5)
    assert all(0 <= s < 2**31 for s in a)


@pytest.mark.parametrize("max_flops", [None, 3000.0])
def test_nsga2_restored_from_arrays_continues_identically(max_flops: float | None) -> None:
    """Resume = a fresh NSGA-II set up and given the saved arrays: the same offspring follow.

    With a FLOPs ceiling some members are infeasible and carry no rank (NaN in the file).
    """
    from a2d_evo.config import config_from_dict

    cfg = config_from_dict({"seed": 7, "search": {"pop": 12, "gens": 6}})

    def run(gens: int, resume_at: int | None) -> tuple[list[np.ndarray], int, np.ndarray]:
        prob, _ = make_problem(max_flops=max_flops)
        algo = make_algorithm(cfg, SPACE)
        algo.setup(prob, verbose=False)
        history = []
        gen = 0
        while gen < gens:
            if resume_at is not None and gen == resume_at:
                arrays = population_arrays(algo, gen)
                records = prob.cache_records()
                prob, _ = make_problem(max_flops=max_flops)
                prob.load_cache(records)
                algo = make_algorithm(cfg, SPACE)
                algo.setup(prob, verbose=False)
                restore_algorithm(algo, arrays, gen)
            pop = algo.ask()
            algo.evaluator.eval(prob, pop, seeds=generation_seeds(7, gen, 3), generation=gen)
            algo.tell(infills=pop)
            history.append(np.asarray(algo.pop.get("X")).copy())
            gen += 1
        return history, algo.n_gen, np.asarray(algo.opt.get("F"))

    straight, n_gen, opt = run(6, None)
    resumed, n_gen_resumed, opt_resumed = run(6, 3)
    for a, b in zip(straight, resumed, strict=True):
        np.testing.assert_array_equal(a, b)
    assert n_gen == n_gen_resumed == 7  # the generation counter goes on where it stopped
    np.testing.assert_array_equal(opt, opt_resumed)
