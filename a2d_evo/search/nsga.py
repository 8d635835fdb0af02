"""Stock pymoo NSGA-II set up for a search space, and its state as plain arrays.

The search checkpoints NSGA-II without pickling (written by :mod:`a2d_evo.search.state`, read
back by :mod:`a2d_evo.search.saved_state`): the population (X, F, G, rank, crowding) and the
generator state go to ``state.npz`` as arrays, and :func:`restore_algorithm` puts a freshly
set-up NSGA-II back exactly where it was.

The restore goes through pymoo's public attributes (``pop``, ``n_gen``, ``is_initialized``,
``random_state``, ``opt``) but relies on what an ask-and-tell NSGA-II reads from them, which
pymoo does not promise across releases: it is tested (bit-exact resume) on pymoo 0.6.2.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.mutation import Mutation
from pymoo.core.population import Population
from pymoo.core.sampling import Sampling
from pymoo.operators.crossover.sbx import SBX
from pymoo.operators.mutation.pm import PM
from pymoo.operators.repair.rounding import RoundingRepair
from pymoo.operators.sampling.rnd import IntegerRandomSampling
from pymoo.operators.survival.rank_and_crowding import RankAndCrowding
from pymoo.operators.survival.rank_and_crowding.metrics import (
    FunctionalDiversity,
    calc_crowding_distance,
)
from pymoo.util.optimum import filter_optimum

from a2d_evo.config import Config
from a2d_evo.errors import FormatError
from a2d_evo.formats import STATE_FORMAT_VERSION
from a2d_evo.nets.space import SearchSpace
from a2d_evo.search.problem import CanonicalDuplicates
from a2d_evo.train.sampling import SubnetSampler


class ResetMutation(Mutation):
    """Random-reset mutation for integer genes (the NAS practice, e.g. OFA's evolution).

    Each gene is redrawn with probability ``prob_var`` (default ``1 / n_var``), uniformly
    among its *other* values, and a child with none of its parent's active genes drawn
    (:meth:`~a2d_evo.nets.space.SearchSpace.active_genes`: a width below the depth, a skipped
    layer's width, change nothing) gets one active gene redrawn, so every mutated child is
    another network than its parent. Polynomial mutation rounds its small steps back to the
    parent's value on genes of a few choices: on the MinAtar space 96% of its children are the
    parent's network (``docs/search.md``). Without ``space`` every gene counts as active.
    """

    def __init__(self, space: SearchSpace | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.space = space

    def _do(self, problem: Any, X: Any, *args: Any, random_state: Any = None, **kw: Any) -> Any:
        X = np.round(np.asarray(X, dtype=np.float64))
        lo, span = problem.xl.astype(np.int64), (problem.xu - problem.xl).astype(np.int64)
        n, n_var = X.shape
        prob = np.asarray(self.get_prob_var(problem, size=n), dtype=np.float64).reshape(n, 1)
        drawn = (random_state.random((n, n_var)) < prob) & (span > 0)
        active = np.broadcast_to(span > 0, (n, n_var))
        if self.space is not None:
            active = active & np.stack([self.space.active_genes(x) for x in X])
        for i in np.flatnonzero(~(drawn & active).any(axis=1)):
            free = np.flatnonzero(active[i])
            if len(free):
                drawn[i, free[random_state.integers(len(free))]] = True
        step = random_state.integers(1, np.maximum(span, 1) + 1, size=(n, n_var))
        moved = lo + (X.astype(np.int64) - lo + step) % (span + 1)
        X[drawn] = moved[drawn]
        return X


class StrataSampling(Sampling):
    """The initial population drawn over the supernet's ``strata`` (equal-width log10-FLOPs
    strata): the strata take turns, an arch uniformly inside each, all distinct, so each
    stratum holds ``pop // 8`` or one more (:meth:`~a2d_evo.train.sampling.SubnetSampler.balanced`).

    Uniform genes put most of a first population in the middle decades of cost (on the
    MinAtar space, 2% of uniform draws fall in the cheapest tenth of its log10-FLOPs range),
    while the hypervolume weighs every decade the same (``docs/search.md``, Initial
    population).
    """

    def __init__(self, space: SearchSpace, obs_shape: tuple[int, ...], n_actions: int) -> None:
        super().__init__()
        self.sampler = SubnetSampler(space, obs_shape, n_actions, "strata")

    def _do(self, problem: Any, n_samples: int, *args: Any, random_state: Any = None,
            **kw: Any) -> Any:  # fmt: skip
        return self.sampler.balanced(random_state, n_samples)


def make_algorithm(
    cfg: Config,
    space: SearchSpace,
    obs_shape: tuple[int, ...] | None = None,
    n_actions: int | None = None,
) -> NSGA2:
    """Stock NSGA-II with integer operators, seeded from ``cfg.seed``.

    SBX (and PM, with ``search.mutation: polynomial``) work on floats (``vtype=float``) and
    ``RoundingRepair`` then rounds to the nearest integer; casting with ``vtype=int`` first
    would truncate, biasing genes down. ``search.mutation: reset`` is :class:`ResetMutation`;
    ``search.init: strata`` is :class:`StrataSampling` (it needs the env's ``obs_shape`` and
    ``n_actions`` for the FLOPs).
    """
    s = cfg.search
    sampling: Sampling = IntegerRandomSampling()
    if s.init == "strata":
        if obs_shape is None or n_actions is None:
            raise ValueError("make_algorithm: search.init 'strata' needs obs_shape and n_actions")
        sampling = StrataSampling(space, obs_shape, n_actions)
    mutation: Mutation
    if s.mutation == "reset":
        mutation = ResetMutation(space, prob=1.0, prob_var=s.mutation_prob)
    else:
        mutation = PM(
            prob=1.0,
            prob_var=s.mutation_prob,
            eta=s.mutation_eta,
            vtype=float,
            repair=RoundingRepair(),
        )
    return NSGA2(
        pop_size=s.pop,
        survival=RankAndCrowding(
            crowding_func=LOG_FLOPS_CROWDING if s.crowding == "log_flops" else "cd"
        ),
        sampling=sampling,
        crossover=SBX(
            prob=s.crossover_prob, eta=s.crossover_eta, vtype=float, repair=RoundingRepair()
        ),
        mutation=mutation,
        eliminate_duplicates=CanonicalDuplicates(space),
        seed=cfg.seed,
    )


def log_flops_crowding_distance(F: np.ndarray, **kwargs: Any) -> np.ndarray:
    """NSGA-II's crowding distance (pymoo's ``cd``) on ``(-score, log10 FLOPs)``: the FLOPs
    objective on the log axis the hypervolume uses, so that the cheap decades, bunched near 0
    on a linear axis, are not the first to be thinned out."""
    G = np.array(F, dtype=np.float64, copy=True)
    G[:, 1] = np.log10(np.maximum(G[:, 1], 1.0))  # FLOPs >= 1 (the state check holds it)
    return np.asarray(calc_crowding_distance(G, **kwargs), dtype=np.float64)


LOG_FLOPS_CROWDING = FunctionalDiversity(log_flops_crowding_distance, filter_out_duplicates=False)
"""``search.crowding: log_flops``: pymoo's ``cd`` (no duplicate filter, as its own) on log10
FLOPs."""


def _rng_to_array(rng: np.random.Generator) -> np.ndarray:
    st = rng.bit_generator.state
    if st["bit_generator"] != "PCG64":
        raise RuntimeError(f"unexpected bit generator {st['bit_generator']}")
    mask = (1 << 64) - 1
    s, inc = int(st["state"]["state"]), int(st["state"]["inc"])
    words = [s >> 64, s & mask, inc >> 64, inc & mask, int(st["has_uint32"]), int(st["uinteger"])]
    return np.array(words, dtype=np.uint64)


def _rng_from_array(words: np.ndarray) -> dict[str, Any]:
    w = [int(x) for x in np.asarray(words, dtype=np.uint64)]
    if len(w) != 6:
        raise FormatError("search state: the generator state must have 6 words")
    return {
        "bit_generator": "PCG64",
        "state": {"state": (w[0] << 64) | w[1], "inc": (w[2] << 64) | w[3]},
        "has_uint32": w[4],
        "uinteger": w[5],
    }


def _floats(values: Any) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def _values(arr: np.ndarray, cast: type) -> list[Any]:
    return [None if np.isnan(v) else cast(v) for v in np.asarray(arr, dtype=np.float64)]


def population_arrays(algorithm: NSGA2, generation: int) -> dict[str, np.ndarray]:
    """Everything NSGA-II needs to continue, as plain arrays (``state.npz``)."""
    pop = algorithm.pop
    n_constr = algorithm.problem.n_ieq_constr
    G = pop.get("G") if n_constr else np.zeros((len(pop), 0))
    return {
        "format_version": np.array(STATE_FORMAT_VERSION, dtype=np.int64),
        "generation": np.array(generation, dtype=np.int64),
        "X": np.asarray(pop.get("X"), dtype=np.int64),
        "F": np.asarray(pop.get("F"), dtype=np.float64),
        "G": np.asarray(G, dtype=np.float64).reshape(len(pop), n_constr),
        # infeasible members have no rank/crowding (None): NaN in the file
        "rank": _floats(pop.get("rank")),
        "crowding": _floats(pop.get("crowding")),
        "rng": _rng_to_array(algorithm.random_state),
    }


def restore_algorithm(algorithm: NSGA2, arrays: dict[str, np.ndarray], generation: int) -> None:
    """Put a freshly set-up NSGA-II back where it was after ``generation`` generations.

    ``algorithm`` has been through ``setup(problem, ...)`` and nothing else. Its next
    ``ask()`` then mates the restored population (tournaments on rank and crowding) with
    the restored generator, exactly as the interrupted run's next ``ask()`` did.
    """
    kw: dict[str, Any] = {"X": arrays["X"], "F": arrays["F"]}
    if arrays["G"].size:
        kw["G"] = arrays["G"]
    pop = Population.new(**kw)
    pop.set("rank", _values(arrays["rank"], int), "crowding", _values(arrays["crowding"], float))
    if algorithm.random_state is None:
        raise RuntimeError("restore_algorithm: call algorithm.setup(problem) first")
    algorithm.pop = pop
    algorithm.opt = filter_optimum(pop, least_infeasible=True)  # what each tell() leaves
    algorithm.n_gen = generation + 1  # tell() counts the initial population as generation 1
    algorithm.is_initialized = True  # so ask() mates instead of sampling a new population
    algorithm.random_state.bit_generator.state = _rng_from_array(arrays["rng"])
