"""What NSGA-II ranks an arch on: its mean return, adjusted for its seeds, or shrunk.

Every candidate of a generation plays the same episode seeds (common random numbers), and a
surviving parent holds episodes of several generations' seeds while a new offspring holds
one generation's. Some seeds are easier than others: on MinAtar Asterix the seed explains
31-46% of the per-episode variance of the archs of a search (two searches,
``docs/search.md``). Plain means then compare a survivor's average over several seed blocks
with an offspring's one block. ``search.estimate`` picks the figure:

* ``mean``: the mean over the arch's episodes (the rule so far).
* ``seed_adjusted``: each arch's mean of ``return - seed effect``, the seed effects measured on
  the **anchors** alone (:func:`seed_effects`): a few fixed archs (``search.anchors``,
  :func:`anchor_encodings`) that play every generation's seeds whatever their returns.
  Survivors cannot serve: NSGA-II keeps them because their earlier episodes were good, so
  their next episodes look worse, a model fitted on them blames the new seeds, and every later
  offspring comes out too high: in the simulated search of ``tests/test_estimates.py`` (seed
  effects of std 4, noise 3, true returns 1) seed effects fitted on every arch drift by about
  -21 over 20 generations (-1.6 with 8 anchors among the archs), those fitted on the 8 anchors
  alone by +0.1 (means of three simulated searches; the test asserts under 0.6). Anchors are
  archs of the archive like any other: NSGA-II may breed one, the delivery may pick one, and
  they count in the evaluations and the budget. Seeds no anchor played (random search, older
  archives) keep effect 0, so their archs keep their plain means.
* ``shrunk``: the seed-adjusted means shrunk toward a prediction from the genes, the way
  empirical Bayes pools noisy means (Efron and Morris 1975; :func:`shrunk_means`). Archs that
  share genes play alike, so the archive knows something about an arch beyond its own
  episodes. The prior is a ridge regression of the adjusted means on one-hot genes
  (:func:`gene_features`), its penalty the one of :data:`RIDGE_PENALTIES` with the smallest
  leave-one-out error; ``sigma^2`` is the pooled variance of the adjusted returns within
  each arch (the error of the seed effects is in it), so an arch's mean has variance
  ``sigma^2 / n_i`` (where no anchor played the seeds, the luck a batch of archs shares is
  not in it); ``tau^2``, the spread of the true returns around the prediction, is the mean
  of ``loo_i^2 - sigma^2 / n_i`` over the leave-one-out residuals (a regression that only
  memorises the noise gets no weight), floored at :data:`MIN_TAU2_SHARE` of ``sigma^2``.
  The estimate is ``m_i + b_i (p_(-i) - m_i)``, ``p_(-i)`` the prediction of the fit
  without arch ``i`` (its own mean is not in its prior), ``b_i = (sigma^2/n_i) /
  (sigma^2/n_i + tau^2)``: an arch with few episodes leans on its genes' prediction, one
  with many on its own mean.

Every figure is a pure function of the archive's records in record order, so a resumed
search computes the same ones. The records and ``history.csv`` keep plain means; the delivery
chooses its candidates on the estimates and then scores them on fresh seeds only
(:mod:`~a2d_evo.search.front`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from a2d_evo.config import Config
from a2d_evo.nets import cost
from a2d_evo.nets.space import SearchSpace

ESTIMATES = ("mean", "seed_adjusted", "shrunk")
"""The values of ``search.estimate``."""

RIDGE_PENALTIES = (0.3, 3.0, 30.0, 300.0, 3000.0)
"""Ridge penalties tried on the one-hot gene weights (the intercept is not penalised); the
one with the smallest leave-one-out error is used."""

MIN_TAU2_SHARE = 0.01
"""Floor of ``tau^2`` as a share of ``sigma^2``: the prediction never fully replaces an
arch's own episodes."""

ANCHOR_DRAWS = 512
"""Random archs :func:`anchor_encodings` draws before picking anchors at evenly spaced FLOPs."""


def anchor_encodings(
    space: SearchSpace, seed: int, k: int, obs_shape: tuple[int, ...], n_actions: int
) -> list[np.ndarray]:
    """``k`` distinct canonical encodings spread over the space's FLOPs: of
    :data:`ANCHOR_DRAWS` random archs (a generator seeded by ``seed``), the ones at the FLOPs
    quantiles ``(i + 0.5) / k``. A pure function of its arguments, so a resumed search gets
    the same anchors."""
    if k < 1:
        return []
    rng = np.random.default_rng([int(seed), 0xA2C4])
    enc = np.unique(space.canonical(space.sample_encodings(rng, ANCHOR_DRAWS)), axis=0)
    f = np.array([cost.flops(space.decode(x), obs_shape, n_actions) for x in enc])
    order = np.argsort(f, kind="stable")
    k = min(k, len(enc))  # quantiles (i + 0.5) / k of n >= k archs fall on distinct ranks
    ranks = ((np.arange(k) + 0.5) / k * len(enc)).astype(np.int64)
    return [enc[i] for i in order[ranks]]


def search_anchors(
    cfg: Config, space: SearchSpace, obs_shape: tuple[int, ...], n_actions: int
) -> list[np.ndarray]:
    """The anchors of a search run with ``cfg``: none when it ranks on plain means, else
    ``search.anchors`` of them from the run's seed (:func:`anchor_encodings`)."""
    if cfg.search.estimate == "mean":
        return []
    return anchor_encodings(space, cfg.seed, cfg.search.anchors, obs_shape, n_actions)


def gene_features(space: SearchSpace, encodings: np.ndarray) -> np.ndarray:
    """One-hot columns, one per (gene, choice), of encodings ``(n, n_var)``; the genes of a
    layer an arch does not use (:meth:`SearchSpace.active_genes`) are all zero, so an absent
    layer is not read as one of the narrowest width (``canonical`` writes both as 0)."""
    enc = np.asarray(encodings, dtype=np.int64).reshape(-1, space.n_var)
    active = np.array([space.active_genes(row) for row in enc], dtype=bool)
    active = active.reshape(len(enc), space.n_var)
    cols = [
        (enc[:, g : g + 1] == np.arange(len(choices))[None, :]) & active[:, g : g + 1]
        for g, choices in enumerate(space.choices)
    ]
    return np.concatenate(cols, axis=1).astype(np.float64)


def _episodes(records: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(record index, seed, return) of every episode."""
    arch = np.concatenate([np.full(len(r["returns"]), i) for i, r in enumerate(records)])
    seeds = np.concatenate([np.asarray(r["seeds"], dtype=np.int64) for r in records])
    ret = np.concatenate([np.asarray(r["returns"], dtype=np.float64) for r in records])
    return arch.astype(np.int64), seeds, ret


def _components(arch: np.ndarray, seed: np.ndarray, n_seeds: int) -> np.ndarray:
    """Connected component of each seed in the arch-seed graph (union-find over seeds)."""
    parent = list(range(n_seeds))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[int, int] = {}
    for a, s in zip(arch.tolist(), seed.tolist(), strict=True):
        if a in first:
            ra, rb = find(first[a]), find(s)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
        else:
            first[a] = s
    return np.array([find(i) for i in range(n_seeds)], dtype=np.int64)


def seed_effects(records: Sequence[dict[str, Any]]) -> dict[int, float]:
    """Seed effects of ``return = anchor + seed + noise``, least squares over the episodes of
    the anchor records (``"anchor": True``) only, centred within each group of seeds the
    anchors link (episode-weighted). ``{}`` when no record is an anchor.

    Solved exactly: with the seed effects eliminated, the normal equations of the anchor
    effects are a system of one row per anchor (``(D_a - N D_s^-1 N^T) a = R_a - N D_s^-1
    R_s``, ``N`` the anchor-by-seed episode counts), then ``s = D_s^-1 (R_s - N^T a)``.
    """
    return _anchor_fit(records)[0]


def _anchor_fit(records: Sequence[dict[str, Any]]) -> tuple[dict[int, float], int]:
    """:func:`seed_effects` and how many free parameters they hold (seeds minus groups)."""
    anchors = [r for r in records if r.get("anchor")]
    if not anchors or not any(len(r["returns"]) for r in anchors):
        return {}, 0
    arch, seed_raw, ret = _episodes(anchors)
    seed_ids, seed = np.unique(seed_raw, return_inverse=True)
    seed = seed.reshape(-1)
    n_a, n_s = len(anchors), len(seed_ids)
    counts = np.zeros((n_a, n_s))
    np.add.at(counts, (arch, seed), 1.0)
    per_arch, per_seed = counts.sum(axis=1), counts.sum(axis=0)
    sum_arch = np.bincount(arch, ret, n_a)
    sum_seed = np.bincount(seed, ret, n_s)
    system = np.diag(per_arch) - (counts / per_seed) @ counts.T
    rhs = sum_arch - (counts / per_seed) @ sum_seed
    a = np.linalg.lstsq(system, rhs, rcond=None)[0]
    theta = (sum_seed - counts.T @ a) / per_seed
    comp = np.unique(_components(arch, seed, n_s), return_inverse=True)[1].reshape(-1)
    shift = np.bincount(comp, theta * per_seed) / np.bincount(comp, per_seed)
    theta -= shift[comp]
    effects = {int(k): float(v) for k, v in zip(seed_ids, theta, strict=True)}
    return effects, n_s - int(comp.max()) - 1


def seed_adjusted_means(records: Sequence[dict[str, Any]]) -> tuple[np.ndarray, float, int]:
    """Each record's mean of ``return - seed effect`` (:func:`seed_effects`, 0 for a seed no
    anchor played), the pooled variance of those adjusted returns within each record, and its
    degrees of freedom (episodes, less one per record and one per free seed effect).

    ``records`` carry ``returns`` and ``seeds`` (one per episode). The variance is ``nan``
    when no degree of freedom is left.
    """
    effects, fitted = _anchor_fit(records)
    arch, seeds, ret = _episodes(records)
    adjusted = ret - np.array([effects.get(int(x), 0.0) for x in seeds.tolist()])
    n_arch = len(records)
    per_arch = np.bincount(arch, minlength=n_arch).astype(np.float64)
    mu = np.bincount(arch, adjusted, n_arch) / np.maximum(per_arch, 1.0)
    resid = adjusted - mu[arch]
    dof = len(ret) - int(np.count_nonzero(per_arch)) - fitted
    var = float(resid @ resid) / dof if dof > 0 else float("nan")
    return mu, var, dof


def _ridge_loo(features: np.ndarray, y: np.ndarray, penalty: float) -> np.ndarray:
    """Leave-one-out residuals ``e_i / (1 - h_ii)`` of a ridge fit (``e`` its in-sample
    residuals, ``h`` the hat matrix, the centring's ``1/n`` included): ``y_i`` minus the
    prediction of the fit without row ``i``."""
    X = np.asarray(features, dtype=np.float64)
    Xc = X - X.mean(axis=0)
    A = Xc.T @ Xc + penalty * np.eye(X.shape[1])
    pred = y.mean() + Xc @ np.linalg.solve(A, Xc.T @ (y - y.mean()))
    hat = np.einsum("ij,ji->i", Xc, np.linalg.solve(A, Xc.T)) + 1.0 / len(y)
    loo: np.ndarray = (y - pred) / np.maximum(1.0 - hat, 1e-9)
    return loo


def shrunk_means(
    means: np.ndarray, counts: np.ndarray, sigma2: float, features: np.ndarray
) -> np.ndarray:
    """``means`` (one per arch, each over ``counts`` episodes of variance ``sigma2``) shrunk
    toward the leave-one-out ridge prediction from ``features`` (see the module doc). Fewer
    than three archs, or no usable ``sigma2``: the means come back."""
    means = np.asarray(means, dtype=np.float64)
    if len(means) < 3 or not sigma2 > 0:
        return means
    loo = min(
        (_ridge_loo(features, means, penalty) for penalty in RIDGE_PENALTIES),
        key=lambda r: float(np.mean(r**2)),
    )
    noise = sigma2 / np.asarray(counts, dtype=np.float64)
    tau2 = max(float(np.mean(loo**2 - noise)), MIN_TAU2_SHARE * sigma2)
    b = noise / (noise + tau2)
    # toward the leave-one-out prediction ``means - loo``: the in-sample one holds a share
    # h_ii of the arch's own mean, which undoes the shrinkage exactly where it is needed (an
    # arch alone with a gene value: h_ii near 1)
    out: np.ndarray = means - b * loo
    return out


def arch_estimates(
    records: Sequence[dict[str, Any]], space: SearchSpace, estimate: str
) -> np.ndarray:
    """Each record's return under ``search.estimate`` (``mean``, ``seed_adjusted``,
    ``shrunk``), in the records' order."""
    if estimate not in ESTIMATES:
        raise ValueError(f"estimate must be one of {ESTIMATES}, got {estimate!r}")
    means = np.array([float(r["return_mean"]) for r in records], dtype=np.float64)
    if estimate == "mean" or not records:
        return means
    adjusted, sigma2, _ = seed_adjusted_means(records)
    if estimate == "seed_adjusted":
        return adjusted
    counts = np.array([len(r["returns"]) for r in records], dtype=np.float64)
    enc = np.array([r["encoding"] for r in records], dtype=np.int64)
    return shrunk_means(adjusted, counts, sigma2, gene_features(space, enc))
