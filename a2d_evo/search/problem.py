"""The search as a pymoo problem: subnet encodings -> (-normalised return, FLOPs).

:class:`SubnetProblem` is vectorised: ``_evaluate`` receives the whole population and scores
every arch it has not seen before in ONE call of the population evaluator (all candidates on
the generation's episode seeds: common random numbers). The seeds and the generation number
come with each evaluation as keyword arguments (``evaluator.eval(problem, pop, seeds=...,
generation=...)``; pymoo forwards them to ``_evaluate``), so the problem holds no per-call
state. Results are cached by the canonical encoding (:meth:`SearchSpace.key`), so no arch is
ever evaluated twice unless the problem is built with ``rescore=True``.

Objectives (both minimised): ``-normalised_return`` with
``normalised = (R - R_random) / (R_teacher - R_random)`` (0 = uniform-random policy, 1 = the
teacher; constants measured once at the start of the search), and ``FLOPs`` from the cost
model. With ``search.max_flops`` set, ``G = FLOPs - max_flops <= 0`` is a constraint.

Hypervolume (:func:`hypervolume`) is pymoo's ``HV`` on ``(-normalised return, FLOPs /
teacher FLOPs)`` with the reference point :func:`reference_point`: ``(0, 1.1 * F_max /
F_teacher)``: a member counts only if it beats the random policy, and the FLOPs bound lies
10% beyond the largest arch of the space, so every arch of the space can contribute.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from pymoo.core.duplicate import DuplicateElimination
from pymoo.core.problem import Problem
from pymoo.indicators.hv import HV
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from a2d_evo.errors import FormatError
from a2d_evo.evaluation.episodes import EvalResult
from a2d_evo.formats import Normalisation
from a2d_evo.nets import cost
from a2d_evo.nets.space import Arch, SearchSpace

# (archs, episodes, seeds) -> one result per arch: the population evaluator's ``evaluate``.
EvaluateFn = Callable[[Sequence[Arch], int, Sequence[int]], list[EvalResult]]

HV_FLOPS_MARGIN = 1.1
"""The hypervolume reference point's FLOPs ratio is this times the largest arch's."""


class CanonicalDuplicates(DuplicateElimination):
    """Duplicate elimination on the canonical encoding: archs that build the same network."""

    def __init__(self, space: SearchSpace) -> None:
        super().__init__()
        self.space = space

    def _keys(self, pop: Any) -> list[bytes]:
        return [self.space.key(np.round(x)) for x in pop.get("X")]

    def _do(self, pop: Any, other: Any, is_duplicate: np.ndarray) -> np.ndarray:
        seen = set(self._keys(other)) if other is not None else set()
        for i, k in enumerate(self._keys(pop)):
            if k in seen:
                is_duplicate[i] = True
            else:
                seen.add(k)
        return is_duplicate


class SubnetProblem(Problem):
    """Vectorised NSGA-II problem over a :class:`SearchSpace`, scored through a cache."""

    def __init__(
        self,
        space: SearchSpace,
        evaluate_archs: EvaluateFn,
        obs_shape: tuple[int, ...],
        n_actions: int,
        norm: Normalisation,
        episodes: int,
        max_flops: float | None = None,
        rescore: bool = False,
    ) -> None:
        super().__init__(
            n_var=space.n_var,
            n_obj=2,
            n_ieq_constr=1 if max_flops is not None else 0,
            xl=space.xl,
            xu=space.xu,
            vtype=int,
            requires_kwargs=True,  # pymoo drops evaluate()'s keyword arguments without it
        )
        self.space = space
        self.evaluate_archs = evaluate_archs
        """The population evaluator's ``evaluate`` (local or Ray)."""
        self.obs_shape = tuple(obs_shape)
        self.n_actions = int(n_actions)
        self.norm = norm
        self.episodes = int(episodes)
        self.max_flops = max_flops
        self.rescore = rescore
        self.cache: dict[bytes, dict[str, Any]] = {}
        self.last_new: list[bytes] = []
        """Keys the last ``_evaluate`` call scored (cache misses)."""

    # ------------------------------------------------------------------ scoring
    def entry(self, x: Any) -> dict[str, Any]:
        """The cached record of encoding ``x`` (KeyError if never evaluated)."""
        return self.cache[self.space.key(np.round(x))]

    def _evaluate(
        self,
        X: np.ndarray,
        out: dict[str, Any],
        *args: Any,
        seeds: Sequence[int] | None = None,
        generation: int | None = None,
        **kwargs: Any,
    ) -> None:
        """Objectives of ``X``; archs not in the cache play ``seeds[:episodes]``, recorded as
        evaluated in ``generation`` (both required when anything is new)."""
        canon = self.space.canonical(np.round(np.asarray(X, dtype=np.float64)))
        keys = [row.tobytes() for row in canon]
        todo: dict[bytes, np.ndarray] = {}
        for k, row in zip(keys, canon, strict=True):
            if (self.rescore or k not in self.cache) and k not in todo:
                todo[k] = row
        self.last_new = list(todo)
        if todo:
            if seeds is None or len(seeds) < self.episodes or generation is None:
                raise ValueError(
                    f"SubnetProblem: evaluate with seeds=[{self.episodes} episode seeds] and "
                    "generation=<int> (keyword arguments)"
                )
            archs = [self.space.decode(row) for row in todo.values()]
            results = self.evaluate_archs(archs, self.episodes, list(seeds[: self.episodes]))
            order = len(self.cache)
            for (k, row), arch, res in zip(todo.items(), archs, results, strict=True):
                self.cache[k] = self._record(row, arch, res, generation, order)
                order += 1
        entries = [self.cache[k] for k in keys]
        returns = np.array([e["return_mean"] for e in entries], dtype=np.float64)
        flops = np.array([e["flops"] for e in entries], dtype=np.float64)
        out["F"] = np.column_stack([-self.norm.score(returns), flops])
        if self.max_flops is not None:
            out["G"] = (flops - float(self.max_flops)).reshape(-1, 1)

    def _record(
        self, row: np.ndarray, arch: Arch, res: EvalResult, generation: int, order: int
    ) -> dict[str, Any]:
        c = cost.cost(arch, self.obs_shape, self.n_actions)
        return {
            "generation": int(generation),
            "order": int(order),
            "encoding": [int(g) for g in row],
            "arch": str(arch),
            "return_mean": float(res.mean),
            "return_std": float(res.std),
            "episodes": int(res.episodes),
            "flops": int(c.flops),
            "params": int(c.params),
        }

    # ------------------------------------------------------------------ state
    def cache_records(self) -> list[dict[str, Any]]:
        """Every cached record in evaluation order (JSON-able)."""
        return sorted(self.cache.values(), key=lambda e: (e["generation"], e["order"]))

    def load_cache(self, records: Sequence[dict[str, Any]]) -> None:
        """Restore the cache from :meth:`cache_records` output."""
        self.cache = {}
        for rec in records:
            try:
                self.cache[self.space.key(rec["encoding"])] = dict(rec)
            except (KeyError, TypeError) as exc:
                raise FormatError(f"search state: malformed cache record: {exc}") from None


def reference_point(
    space: SearchSpace, obs_shape: tuple[int, ...], n_actions: int, teacher_flops: int
) -> np.ndarray:
    """The hypervolume reference point (see the module docstring)."""
    largest = cost.flops(space.largest(), obs_shape, n_actions)
    return np.array([0.0, HV_FLOPS_MARGIN * largest / teacher_flops])


def front_indices(F: np.ndarray, G: np.ndarray | None = None) -> np.ndarray:
    """Indices of the feasible non-dominated rows of ``F`` (empty if none is feasible)."""
    F = np.asarray(F, dtype=np.float64).reshape(-1, 2)
    feasible: np.ndarray = np.ones(len(F), bool)
    if G is not None and np.size(G):
        feasible = np.asarray(
            (np.asarray(G, dtype=np.float64).reshape(len(F), -1) <= 0).all(axis=1)
        )
    idx = np.flatnonzero(feasible)
    if idx.size == 0:
        return idx
    nd = NonDominatedSorting().do(F[idx], only_non_dominated_front=True)
    return np.sort(idx[np.asarray(nd, dtype=np.int64)])


def delivered_front(normalised: np.ndarray, flops: np.ndarray) -> tuple[list[int], int]:
    """The members of a re-scored front kept in ``front.json``, and how many lost to random.

    Non-dominated on (-normalised return, FLOPs). The uniform-random policy is a 0-FLOPs agent
    with normalised return 0, so members that do not beat it are dominated by it: they are
    dropped, unless nothing beats it (then the best one is kept, so the front is not empty).
    """
    normalised = np.asarray(normalised, dtype=np.float64)
    F = np.column_stack([-normalised, np.asarray(flops, dtype=np.float64)])
    keep = [int(i) for i in front_indices(F)]
    better = [i for i in keep if normalised[i] > 0]
    if better:
        return better, len(keep) - len(better)
    return [max(keep, key=lambda i: normalised[i])], len(keep) - 1


def hypervolume(scaled_front: np.ndarray, ref: np.ndarray) -> float:
    """pymoo's HV of a front in scaled units (0 for an empty front)."""
    pts = np.asarray(scaled_front, dtype=np.float64).reshape(-1, 2)
    if len(pts) == 0:
        return 0.0
    return float(HV(ref_point=np.asarray(ref, dtype=np.float64))(pts))
