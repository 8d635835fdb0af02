"""One generation of the search: ask NSGA-II, evaluate, tell; topped up when mating made none.

:func:`play_generation` is one ask-and-tell step of :mod:`~a2d_evo.search.evolution`'s loop:
the new offspring and, with ``search.reevaluate``, the surviving parents (:func:`replaying`:
those of rank below ``search.reevaluate_ranks``) play the generation's episode seeds in ONE
evaluator call, so survivors are re-scored before NSGA-II's survival compares them with their
offspring. Where pymoo's mating made no new arch (a small space, a converged population), the
generation takes archs never evaluated instead (:func:`topped_up`, :func:`unseen_archs`),
drawn from a generator derived from the generation's seeds, so a resumed search draws the same.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pymoo.core.population import Population

from a2d_evo.search.problem import SubnetProblem


def replaying(pop: Any, ranks: int | None) -> Any:
    """The survivors that replay a generation: those of rank below ``ranks`` (every one when
    None). Infeasible members have no rank and keep their estimates."""
    if ranks is None:
        return pop
    rank = pop.get("rank")
    return pop[[i for i, r in enumerate(rank) if r is not None and r < ranks]]


def play_generation(
    algorithm: Any,
    problem: SubnetProblem,
    seeds: list[int],
    generation: int,
    ranks: int | None = None,
) -> bool:
    """One ask-evaluate-tell step; False (nothing done) when no offspring could be made.

    With ``problem.reevaluate`` the current population's survivors (those of rank below
    ``ranks``, every one when None: ``search.reevaluate_ranks``) play ``seeds`` with the
    offspring, in the same evaluator call, and get their re-scored objectives before the
    survival compares them with them. With an ``estimate`` other than the mean, every
    survivor's objectives are then recomputed from the archive's current estimates. Works for
    any pymoo algorithm with a ``pop``.
    """
    off = topped_up(algorithm, problem, algorithm.ask(), seeds, generation)
    if len(off) == 0:
        return False
    both = off
    if problem.reevaluate and algorithm.pop is not None and len(algorithm.pop):
        # the same individuals: F set in place
        both = Population.merge(replaying(algorithm.pop, ranks), off)
    algorithm.evaluator.eval(
        problem, both, skip_already_evaluated=False, seeds=seeds, generation=generation
    )
    if problem.estimate != "mean" and algorithm.pop is not None and len(algorithm.pop):
        # every survivor ranks on the archive's current estimates, replayed or not
        F, G = problem.objectives([problem.space.key(np.round(x)) for x in algorithm.pop.get("X")])
        algorithm.pop.set("F", F)
        if G is not None:
            algorithm.pop.set("G", G)
    algorithm.tell(infills=off)
    return True


LISTED_SPACE = 4096
"""Spaces of at most this many gene vectors are listed whole by :func:`unseen_archs` (a third
of a second: ``SearchSpace.canonical`` goes row by row; 7 s for the default MLP space's 82,944)."""

UNSEEN_DRAWS = 64
"""Uniform draws per missing arch that :func:`unseen_archs` tries in a larger space."""


def topped_up(
    algorithm: Any, problem: SubnetProblem, off: Any, seeds: list[int], generation: int
) -> Any:
    """``off`` (what ``ask`` gave); where it is empty, archs never evaluated instead, up to a
    whole generation (``n_offsprings``), from :func:`unseen_archs`.

    pymoo's mating gives up after a fixed number of tries when duplicate elimination leaves it
    nothing new (a space of a few archs, a converged population), and marks the algorithm
    terminated: on a space of 3 archs with ``search.pop`` 4 the search stopped as "space
    exhausted" with one never evaluated (pymoo's first population drops duplicate draws without
    drawing again, so it held 2). A generation pymoo filled, even partly, is left as it is, so
    only searches that would have stopped there change. The draws come from a generator
    derived from the generation's episode seeds, and the archs to leave out from the search's
    records, so a resumed search draws the same.
    """
    if off is not None and len(off):
        return off
    want = getattr(algorithm, "n_offsprings", None) or algorithm.pop_size
    rng = np.random.default_rng(np.random.SeedSequence([*seeds, generation]))
    new = unseen_archs(problem, rng, int(want))
    if not len(new):
        return Population.empty()
    added = Population.new("X", new.astype(float))
    added.set("n_gen", algorithm.n_iter)
    added.set("n_iter", algorithm.n_iter)
    algorithm.termination.force_termination = False  # set by the mating that made none
    return added


def unseen_archs(problem: SubnetProblem, rng: np.random.Generator, n: int) -> np.ndarray:
    """Up to ``n`` canonical encodings of archs the search has no record of, within
    ``search.max_flops``, drawn uniformly among those networks (a space of at most
    :data:`LISTED_SPACE` gene vectors is listed whole, so none are returned only when every
    arch within the ceiling was evaluated), or among :data:`UNSEEN_DRAWS` uniform gene draws
    per arch in a larger space."""
    space = problem.space
    seen = set(problem.cache)  # keys: the canonical rows' bytes (SearchSpace.key)
    # Python integers: numpy's int64 product wraps past 9.2e18 (18 layers of 12 widths)
    if math.prod(int(n) for n in space.xu - space.xl + 1) <= LISTED_SPACE:
        axes = [np.arange(lo, hi + 1) for lo, hi in zip(space.xl, space.xu, strict=True)]
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, space.n_var)
        networks = np.unique(space.canonical(grid), axis=0)  # sorted: the same on every run
        rows = [row for row in networks if row.tobytes() not in seen]
        candidates = [rows[i] for i in rng.permutation(len(rows))]
    else:
        candidates = list(space.sample_encodings(rng, UNSEEN_DRAWS * n))
    picked: dict[bytes, np.ndarray] = {}
    for row in candidates:
        key = row.tobytes()
        if key in seen or key in picked or not problem.within_ceiling(row):
            continue
        picked[key] = row
        if len(picked) == n:
            break
    return np.asarray(list(picked.values()), dtype=np.int64).reshape(-1, space.n_var)
