"""Which subnets an update trains: the sandwich rule and the sampling rule of its random ones.

Each update trains the largest, the smallest and ``rollout_subnets - 2`` random subnets (the
sandwich rule of BigNAS, Yu et al. 2020). How the random ones are drawn decides which parts
of the space get trained:

* ``uniform``: every gene uniform over its choices (BigNAS, once-for-all's final stage).
  In a space of depths 1-4 and 12 widths, a narrow-after-narrow subnet such as ``mlp-4x4``
  comes up once in about 600 draws, so the cheap corner the search cares most about is
  barely trained (review of issue [J]).
* ``strata`` (default): split the space into ``SAMPLING_STRATA`` strata of equal width in
  log10 FLOPs, pick a non-empty stratum uniformly, then an arch uniformly inside it. Every
  order of magnitude of cost is trained about as often, whatever its share of the space:
  the spirit of AttentiveNAS's FLOPs-targeted sampling (Wang et al. 2021) and of
  once-for-all's progressive shrinking (Cai et al. 2020), which trains small subnets on
  purpose instead of hoping uniform draws reach them.

The strata come from every arch of the space when it has at most ``POOL_CAP`` of them, else
from a pool of ``POOL_CAP`` uniform draws with a fixed seed (rare corners are then only as
present as in that pool). Both are pure functions of the space and the env's shapes.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from a2d_evo.nets.cost import flops
from a2d_evo.nets.space import Arch, MLPArch, SearchSpace

SAMPLING_STRATA = 8
"""Strata of equal width in log10 FLOPs for the ``strata`` rule."""

POOL_CAP = 200_000
"""Spaces up to this many archs are enumerated; larger ones are represented by a pool."""

POOL_SEED = 0
"""Seed of the uniform pool of a space too large to enumerate."""


def all_encodings(space: SearchSpace) -> np.ndarray:
    """Every arch of the space once, as canonical gene vectors ``(space.size(), n_var)``."""
    rows: list[tuple[int, ...]] = []
    ranges = [range(len(c)) for c in space.choices]
    if space.kind == "mlp":
        for d_idx, depth in enumerate(space.choices[0]):
            pad = (0,) * (space.max_depth - depth)
            for ws in itertools.product(*ranges[1 : 1 + depth]):
                rows.append((d_idx, *ws, *pad))
    else:
        # Per declared conv layer: its on/width/kernel genes' values, with one all-zero option
        # for a skipped optional layer (canonical form); then the FC.
        per_layer: list[list[dict[int, int]]] = []
        for on, width, kernel in space.layer_genes:
            kernels = range(len(space.choices[kernel])) if kernel >= 0 else [0]
            options = [
                {width: w, **({kernel: k} if kernel >= 0 else {}), **({on: 1} if on >= 0 else {})}
                for w in ranges[width]
                for k in kernels
            ]
            if on >= 0:
                options.append({})
            per_layer.append(options)
        for combo in itertools.product(*per_layer):
            row = [0] * space.n_var
            for genes in combo:
                for index, value in genes.items():
                    row[index] = value
            for fc in ranges[-1]:
                row[-1] = fc
                rows.append(tuple(row))
    return np.asarray(rows, dtype=np.int64).reshape(-1, space.n_var)


def arch_pool(space: SearchSpace) -> np.ndarray:
    """The archs the strata are built from: all of them, or ``POOL_CAP`` uniform draws."""
    if space.size() <= POOL_CAP:
        return all_encodings(space)
    pool = space.sample_encodings(np.random.default_rng(POOL_SEED), POOL_CAP)
    return np.unique(pool, axis=0)


def log_flops(
    space: SearchSpace, enc: np.ndarray, obs_shape: tuple[int, ...], n_actions: int
) -> np.ndarray:
    """log10 FLOPs of every row of ``enc``."""
    return np.log10([flops(space.decode(x), obs_shape, n_actions) for x in enc])


def strata_of(values: np.ndarray, n: int) -> np.ndarray:
    """Index in ``0..n-1`` of each value's stratum: ``n`` equal-width bins over its range."""
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return np.zeros(len(values), dtype=np.int64)
    return np.minimum(((values - lo) / (hi - lo) * n).astype(np.int64), n - 1)


class SubnetSampler:
    """Draws the random subnets of an update under a sampling rule (see the module doc)."""

    def __init__(
        self,
        space: SearchSpace,
        obs_shape: tuple[int, ...],
        n_actions: int,
        rule: str = "strata",
        n_strata: int = SAMPLING_STRATA,
    ) -> None:
        if rule not in ("strata", "uniform"):
            raise ValueError(f"sampling rule must be 'strata' or 'uniform', got {rule!r}")
        self.space = space
        self.rule = rule
        self.strata: list[np.ndarray] = []
        """Per non-empty stratum, its archs' encodings (``strata`` rule only)."""
        if rule == "strata":
            pool = arch_pool(space)
            idx = strata_of(log_flops(space, pool, obs_shape, n_actions), n_strata)
            self.strata = [pool[idx == s] for s in range(n_strata) if np.any(idx == s)]

    def draw_encoding(self, rng: np.random.Generator) -> np.ndarray:
        """One random arch's canonical genes under the rule."""
        if self.rule == "uniform":
            return self.space.sample_encodings(rng, 1)[0]
        stratum = self.strata[int(rng.integers(len(self.strata)))]
        return stratum[int(rng.integers(len(stratum)))]

    def distinct(self, rng: np.random.Generator, k: int, exclude: Sequence[Arch]) -> list[Arch]:
        """``k`` random archs, distinct from each other and from ``exclude``; fewer in a space
        too small to hold them (after a bounded number of tries)."""
        space = self.space
        seen = {space.key(space.encode(a)) for a in exclude}
        out: list[Arch] = []
        tries = 0
        while len(out) < k and tries < 100 * (k + 1):
            tries += 1
            x = self.draw_encoding(rng)
            key = space.key(x)
            if key not in seen:
                seen.add(key)
                out.append(space.decode(x))
        return out

    def balanced(self, rng: np.random.Generator, k: int) -> np.ndarray:
        """``k`` distinct archs' canonical genes with the strata taking turns (a fresh random
        order of the strata each round, an arch uniformly inside each): every stratum holds
        ``k // n`` or one more of them, as far as its archs allow (``strata`` rule only).
        Fewer than ``k`` only if the space has fewer archs."""
        if self.rule != "strata":
            raise ValueError("balanced draws need the 'strata' rule")
        left = [rng.permutation(len(s)).tolist() for s in self.strata]
        rows: list[np.ndarray] = []
        while len(rows) < k and any(left):
            for s in rng.permutation(len(self.strata)).tolist():
                if left[s] and len(rows) < k:
                    rows.append(self.strata[s][left[s].pop()])
        return np.asarray(rows, dtype=np.int64).reshape(-1, self.space.n_var)

    def sandwich(self, rng: np.random.Generator, k: int) -> list[Arch]:
        """The sandwich rule: ``[largest, smallest, k distinct random archs]``."""
        space = self.space
        ends = [space.largest(), space.smallest()]
        if space.key(space.encode(ends[0])) == space.key(space.encode(ends[1])):
            ends = ends[:1]
        return ends + self.distinct(rng, k, ends)


def sample_distinct(
    space: SearchSpace, rng: np.random.Generator, k: int, exclude: Sequence[Arch]
) -> list[Arch]:
    """``k`` distinct uniform-per-gene archs not in ``exclude`` (:meth:`SubnetSampler.distinct`
    under the ``uniform`` rule)."""
    return SubnetSampler(space, (1,), 1, "uniform").distinct(rng, k, exclude)


def rollout_assignment(
    sampler: SubnetSampler, rng: np.random.Generator, n_subnets: int, num_envs: int
) -> tuple[list[Arch], list[int]]:
    """Subnets that act in one rollout and how many contiguous env slots each gets.

    The first ``min(n_subnets, num_envs)`` entries of ``[largest, smallest, random...]``
    (distinct), with the ``num_envs`` slots split as evenly as possible in that order
    (``np.array_split``): subnet ``i`` acts in slots ``sum(sizes[:i]) .. sum(sizes[:i+1])``.
    """
    n = max(1, min(n_subnets, num_envs))
    archs = sampler.sandwich(rng, max(0, n - 2))[:n]
    sizes = [len(c) for c in np.array_split(np.arange(num_envs), len(archs))]
    return archs, sizes


def narrow_after_narrow(arch: Arch, space: SearchSpace) -> bool:
    """An MLP of depth >= 2 whose every width is one of the space's two narrowest."""
    if not isinstance(arch, MLPArch) or len(arch.widths) < 2:
        return False
    narrow = sorted(space.choices[1])[:2]
    return all(w in narrow for w in arch.widths)


def stratified_archs(
    space: SearchSpace,
    obs_shape: tuple[int, ...],
    n_actions: int,
    per_stratum: int,
    rng: np.random.Generator,
    n_strata: int = 5,
    min_narrow: int = 0,
) -> list[Arch]:
    """Fixed archs for an ablation: ``per_stratum`` distinct ones from each of ``n_strata``
    equal-width log10-FLOPs strata (all of a stratum if it has fewer), with at least
    ``min_narrow`` narrow-after-narrow MLPs (swapped in for draws of the same stratum
    where there are too few). Sorted by FLOPs."""
    pool = arch_pool(space)
    lf = log_flops(space, pool, obs_shape, n_actions)
    idx = strata_of(lf, n_strata)
    picked: list[int] = []
    for s in range(n_strata):
        members = np.flatnonzero(idx == s)
        take = min(per_stratum, len(members))
        picked += rng.choice(members, size=take, replace=False).tolist()
    archs = [space.decode(pool[i]) for i in picked]
    narrow = [i for i in range(len(pool)) if narrow_after_narrow(space.decode(pool[i]), space)]
    have = sum(narrow_after_narrow(a, space) for a in archs)
    for i in rng.permutation(narrow).tolist():
        if have >= min_narrow:
            break
        if i in picked:
            continue
        # replace a non-narrow pick of the same stratum (keeps the per-stratum counts)
        same = [j for j, p in enumerate(picked) if idx[p] == idx[i]
                and not narrow_after_narrow(archs[j], space)]  # fmt: skip
        if not same:
            continue
        j = same[0]
        picked[j], archs[j] = i, space.decode(pool[i])
        have += 1
    order = np.argsort(lf[picked], kind="stable")
    return [archs[j] for j in order]
