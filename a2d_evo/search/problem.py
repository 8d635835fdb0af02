"""The search as a pymoo problem: subnet encodings -> (-normalised return, FLOPs).

:class:`SubnetProblem` is vectorised: ``_evaluate`` receives the whole population and plays
every arch that is due in ONE call of the population evaluator, all on the generation's
episode seeds (common random numbers). The seeds and the generation number come with each
evaluation as keyword arguments (``evaluator.eval(problem, pop, seeds=..., generation=...)``;
pymoo forwards them to ``_evaluate``), so the problem holds no per-call state.

Every arch has one record (keyed by the canonical encoding, :meth:`SearchSpace.key`) that keeps
every episode it played: return, length (env steps), seed and generation. Its objective is the
mean return over all of them, with their count. Which archs are due:

* ``reevaluate=False`` (the rule before noise-aware search): an arch plays once, when first
  seen; its first estimate is kept for good.
* ``reevaluate=True``: every arch passed in generation ``g`` (the offspring and, from
  :mod:`~a2d_evo.search.generation`, the surviving parents) plays ``g``'s seeds once, unless it
  already holds ``max_arch_episodes`` episodes. A lucky first draw is diluted by the next
  generations' draws instead of keeping its place. Cost: up to twice the episodes per
  generation (pop parents + pop offspring), less once parents reach the cap.

With ``estimate`` other than ``mean`` the return NSGA-II ranks on is the arch's seed-adjusted
(and possibly shrunk) mean (:mod:`~a2d_evo.search.estimates`); the records keep plain means.
The seed effects come from the ``anchors``: fixed archs that play every generation in which
anything plays, whatever ``reevaluate`` and ``max_arch_episodes`` say; their records carry
``"anchor": true``, and their episodes count in the budget like any other.

Objectives (both minimised): ``-normalised_return`` with
``normalised = (R - R_random) / (R_teacher - R_random)`` (0 = uniform-random policy, 1 = the
teacher; constants measured once at the start of the search), and ``FLOPs`` from the cost
model. With ``search.max_flops`` set, ``G = FLOPs - max_flops <= 0`` is a constraint. An arch
over the ceiling is not played (its FLOPs are known without playing; anchors aside): NSGA-II
ranks infeasible members on their violation alone, and the delivery takes feasible archs, so
its episodes would buy nothing. It gets no record; its return objective is the random
policy's, normalised 0 (:data:`UNPLAYED_RETURN`), which nothing reads.

Hypervolume (:func:`hypervolume`, the one HV function) is pymoo's ``HV`` on
``(-normalised return, log10 FLOPs)`` (:func:`~a2d_evo.formats.hv_points`) with the reference
point :func:`reference_point`: ``(0, log10(1.1 * F_max))``, ``F_max`` the FLOPs of the space's
costliest arch (:func:`~a2d_evo.nets.cost.costliest`), fixed by the space: a member counts
only if it beats the random policy, and every arch of the space can contribute.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from pymoo.core.duplicate import DuplicateElimination
from pymoo.core.problem import Problem
from pymoo.indicators.hv import HV

from a2d_evo.errors import FormatError
from a2d_evo.evaluation.episodes import EvalResult
from a2d_evo.formats import Normalisation, hv_points, hv_reference_point, non_dominated
from a2d_evo.nets import cost
from a2d_evo.nets.space import Arch, SearchSpace
from a2d_evo.search.estimates import arch_estimates

# (archs, episodes, seeds) -> one result per arch: the population evaluator's ``evaluate``.
EvaluateFn = Callable[[Sequence[Arch], int, Sequence[int]], list[EvalResult]]


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
    """Vectorised NSGA-II problem over a :class:`SearchSpace`, scored through per-arch records."""

    def __init__(
        self,
        space: SearchSpace,
        evaluate_archs: EvaluateFn,
        obs_shape: tuple[int, ...],
        n_actions: int,
        norm: Normalisation,
        episodes: int,
        max_flops: float | None = None,
        *,
        reevaluate: bool = False,
        max_arch_episodes: int | None = None,
        estimate: str = "mean",
        anchors: Sequence[np.ndarray] = (),
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
        self.reevaluate = reevaluate
        self.max_arch_episodes = max_arch_episodes
        self.estimate = estimate
        """What the objectives rank on: ``mean``, ``seed_adjusted`` or ``shrunk``
        (:mod:`~a2d_evo.search.estimates`)."""
        self.anchors = {space.key(a): space.canonical(a) for a in anchors}
        """Canonical encodings, by key, of the archs that play every generation (the seed
        effects' yardstick, :func:`~a2d_evo.search.estimates.seed_effects`)."""
        self.cache: dict[bytes, dict[str, Any]] = {}
        self.over_ceiling: dict[bytes, int] = {}
        """FLOPs of the archs seen over ``max_flops`` and never played (they have no record)."""
        self.last_new: list[bytes] = []
        """Keys of ``X`` the last ``_evaluate`` call played (new archs and re-evaluated ones;
        anchors only where they were in ``X``)."""

    # ------------------------------------------------------------------ scoring
    def entry(self, x: Any) -> dict[str, Any]:
        """The record of encoding ``x`` (KeyError if never evaluated)."""
        return self.cache[self.space.key(np.round(x))]

    def _unplayed(self, key: bytes, row: np.ndarray) -> bool:
        """Whether the arch ``key`` is over ``max_flops`` and so not played (anchors play
        whatever they cost: they are the seed effects' yardstick)."""
        if self.max_flops is None or key in self.anchors:
            return False
        rec = self.cache.get(key)
        if rec is not None:  # a state from before this rule: kept, never played again
            return bool(rec["flops"] > self.max_flops)
        if key not in self.over_ceiling:
            f = self._flops(row)
            if f <= self.max_flops:
                return False
            self.over_ceiling[key] = int(f)
        return True

    def within_ceiling(self, row: np.ndarray) -> bool:
        """Whether the arch of encoding ``row`` costs at most ``max_flops`` (True without one)."""
        return self.max_flops is None or self._flops(row) <= self.max_flops

    def _flops(self, row: np.ndarray) -> int:
        return cost.flops(self.space.decode(row), self.obs_shape, self.n_actions)

    def _due(self, key: bytes, generation: int | None) -> bool:
        rec = self.cache.get(key)
        if rec is None:
            return True
        if not self.reevaluate or generation is None or rec["generations"][-1] == generation:
            return False
        cap = self.max_arch_episodes
        return cap is None or rec["episodes"] < cap

    def _evaluate(
        self,
        X: np.ndarray,
        out: dict[str, Any],
        *args: Any,
        seeds: Sequence[int] | None = None,
        generation: int | None = None,
        **kwargs: Any,
    ) -> None:
        """Objectives of ``X``; archs that are due play ``seeds[:episodes]``, recorded as
        played in ``generation`` (both required when anything is new)."""
        canon = self.space.canonical(np.round(np.asarray(X, dtype=np.float64)))
        keys = [row.tobytes() for row in canon]
        todo: dict[bytes, np.ndarray] = {}
        for k, row in zip(keys, canon, strict=True):
            if k not in todo and not self._unplayed(k, row) and self._due(k, generation):
                todo[k] = row
        self.last_new = list(todo)
        if todo:
            for k, row in self.anchors.items():
                rec = self.cache.get(k)
                if k not in todo and (rec is None or rec["generations"][-1] != generation):
                    todo[k] = row
            if seeds is None or len(seeds) < self.episodes or generation is None:
                raise ValueError(
                    f"SubnetProblem: evaluate with seeds=[{self.episodes} episode seeds] and "
                    "generation=<int> (keyword arguments)"
                )
            archs = [self.space.decode(row) for row in todo.values()]
            results = self.evaluate_archs(archs, self.episodes, list(seeds[: self.episodes]))
            for (k, row), arch, res in zip(todo.items(), archs, results, strict=True):
                self._add(k, row, arch, res, generation)
        F, G = self.objectives(keys)
        out["F"] = F
        if G is not None:
            out["G"] = G

    def objectives(self, keys: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray | None]:
        """``F`` (and ``G`` with a FLOPs ceiling) of recorded archs, from their returns under
        ``estimate`` (the plain means unless it says otherwise)."""
        est = self.estimates() if self.estimate != "mean" and self.cache else {}
        score: list[float] = []
        flops_list: list[float] = []
        for k in keys:
            e = self.cache.get(k)
            if e is None:  # over the ceiling, not played: ranked on its violation alone
                # (a resumed population's member may not have been seen since the resume)
                if not self._unplayed(k, np.frombuffer(k, dtype=np.int64)):
                    raise KeyError("SubnetProblem: an arch within search.max_flops has no record")
                score.append(UNPLAYED_RETURN)
                flops_list.append(float(self.over_ceiling[k]))
                continue
            ret = est[k] if self.estimate != "mean" else e["return_mean"]
            score.append(float(self.norm.score(ret)))
            flops_list.append(float(e["flops"]))
        flops = np.array(flops_list, dtype=np.float64)
        F = np.column_stack([-np.array(score, dtype=np.float64), flops]).reshape(-1, 2)
        if self.max_flops is None:
            return F, None
        return F, (flops - float(self.max_flops)).reshape(-1, 1)

    def estimates(self) -> dict[bytes, float]:
        """Every recorded arch's return under ``estimate`` (:func:`arch_estimates` over the
        archive in record order, so a resumed search gets the same figures)."""
        records = self.cache_records()
        est = arch_estimates(records, self.space, self.estimate)
        return {self.space.key(r["encoding"]): float(v) for r, v in zip(records, est, strict=True)}

    def _add(
        self, key: bytes, row: np.ndarray, arch: Arch, res: EvalResult, generation: int
    ) -> None:
        """Append one evaluation's episodes to the arch's record (created on first sight)."""
        if res.lengths is None:
            raise ValueError("SubnetProblem: the evaluator must return episode lengths")
        rec = self.cache.get(key)
        if rec is None:
            c = cost.cost(arch, self.obs_shape, self.n_actions)
            rec = {
                "generation": int(generation),
                "order": len(self.cache),
                "encoding": [int(g) for g in row],
                "arch": str(arch),
                "flops": int(c.flops),
                "params": int(c.params),
                "returns": [],
                "lengths": [],
                "seeds": [],
                "generations": [],
            }
            if key in self.anchors:
                rec["anchor"] = True
            self.cache[key] = rec
        n = len(res.returns)
        rec["returns"] += [float(r) for r in res.returns]
        rec["lengths"] += [int(x) for x in res.lengths]
        rec["seeds"] += [int(x) for x in res.seeds[:n]]
        rec["generations"] += [int(generation)] * n
        summarise(rec)

    # ------------------------------------------------------------------ cost
    def env_steps(self) -> int:
        """Env steps of every episode the search played (sum of episode lengths)."""
        return sum(sum(r["lengths"]) for r in self.cache.values())

    def episodes_played(self) -> int:
        """Episodes the search played."""
        return sum(r["episodes"] for r in self.cache.values())

    # ------------------------------------------------------------------ state
    def cache_records(self) -> list[dict[str, Any]]:
        """Every record in order of first evaluation (JSON-able)."""
        return sorted(self.cache.values(), key=lambda e: (e["generation"], e["order"]))

    def load_cache(self, records: Sequence[dict[str, Any]]) -> None:
        """Restore the records from :meth:`cache_records` output."""
        self.cache = {}
        for rec in records:
            try:
                self.cache[self.space.key(rec["encoding"])] = {
                    k: list(v) if isinstance(v, list) else v for k, v in rec.items()
                }
            except (KeyError, TypeError) as exc:
                raise FormatError(f"search state: malformed cache record: {exc}") from None


def rescoring_rule(reevaluate: bool | None, ranks: int | None = None) -> str:
    """The search's re-scoring rule in words, for the progress line and the report."""
    if not reevaluate:
        return "first estimates kept"
    if ranks:
        return f"survivors of the first {ranks} front(s) re-scored every generation"
    return "survivors re-scored every generation"


def summarise(rec: dict[str, Any]) -> None:
    """Set a record's ``return_mean``, ``return_std`` (population, ddof=0) and ``episodes``
    from its per-episode returns: the one place these figures are computed."""
    r = np.asarray(rec["returns"], dtype=np.float64)
    rec["return_mean"] = float(r.mean())
    rec["return_std"] = float(r.std())
    rec["episodes"] = len(r)


def reference_point(space: SearchSpace, obs_shape: tuple[int, ...], n_actions: int) -> np.ndarray:
    """The hypervolume reference point of a space (see the module docstring)."""
    return hv_reference_point(
        cost.flops(cost.costliest(space, obs_shape, n_actions), obs_shape, n_actions)
    )


UNPLAYED_RETURN = 0.0
"""The normalised return objective of an arch over ``search.max_flops``, which is not played."""


def front_indices(F: np.ndarray, G: np.ndarray | None = None) -> np.ndarray:
    """Indices of the feasible non-dominated rows of ``F`` (empty if none is feasible)."""
    F = np.asarray(F, dtype=np.float64).reshape(-1, 2)
    feasible: np.ndarray = np.ones(len(F), bool)
    if G is not None and np.size(G):
        feasible = np.asarray(
            (np.asarray(G, dtype=np.float64).reshape(len(F), -1) <= 0).all(axis=1)
        )
    idx = np.flatnonzero(feasible)
    # the one dominance rule of the package (the report's too): cost FLOPs, score the return
    nd = non_dominated([(float(f), -float(r)) for r, f in F[idx]])
    return idx[np.asarray(nd, dtype=np.int64)]


def above_random(means: Sequence[float], r_random: float) -> list[int]:
    """The indices of ``means`` strictly above ``r_random`` (the uniform-random policy's
    mean on the same seeds: a 0-FLOPs agent, which dominates every member that does not
    beat it)."""
    return [i for i, m in enumerate(means) if m > r_random]


def beats_random(means: Sequence[float], r_random: float) -> tuple[list[int], int]:
    """The indices of ``means`` above ``r_random`` (:func:`above_random`), and how many are
    not. When none beats it the best one is kept alone, so a front is never empty."""
    above = above_random(means, r_random)
    if above:
        return above, len(means) - len(above)
    return [int(np.argmax(means))], len(means) - 1


def hypervolume(F: np.ndarray, ref: np.ndarray) -> float:
    """pymoo's HV of objectives ``(-normalised return, FLOPs)`` on log10 FLOPs, against
    ``ref`` (:func:`reference_point`, in those units); 0 for an empty front."""
    pts = hv_points(F)
    if len(pts) == 0:
        return 0.0
    return float(HV(ref_point=np.asarray(ref, dtype=np.float64))(pts))


def staircase_hypervolume(F: np.ndarray, ref: np.ndarray) -> float:
    """The area under the members' own staircase on log10 FLOPs: in FLOPs order, each
    member's normalised return (clipped at the reference's 0) held from its FLOPs to the next
    member's, the last one's to ``ref``'s; no envelope (a member below a cheaper one still
    counts its own figure); members of equal FLOPs at their mean. Equal to
    :func:`hypervolume` where the returns rise with FLOPs.

    For the delivered front, chosen on the race's episodes and scored on the final seeds,
    this is an unbiased estimate of the chosen members' staircase, where the hypervolume, the
    best figure at each cost, is biased up by the final figures' noise, the more so the more
    members (``docs/search.md``, "Hypervolume: log10 FLOPs")."""
    pts = hv_points(F)
    if len(pts) == 0:
        return 0.0
    # members of equal cost share one step at their mean figure (in any order the same)
    log_flops, group = np.unique(pts[:, 1], return_inverse=True)
    score = np.bincount(group, weights=-pts[:, 0]) / np.bincount(group)
    widths = np.diff(np.append(log_flops, float(ref[1])))
    return float(np.sum(np.maximum(score, 0.0) * np.maximum(widths, 0.0)))
