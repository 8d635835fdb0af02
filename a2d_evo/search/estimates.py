"""What NSGA-II ranks an arch on: its mean return, adjusted for its seeds, or shrunk.

Every candidate of a generation plays the same episode seeds (common random numbers), and a
surviving parent holds episodes of several generations' seeds while a new offspring holds
one generation's. Some seeds are easier than others: on MinAtar Asterix the seed explains
31-46% of the per-episode variance of the archs of a search (two searches,
``docs/search.md``). Plain means then compare a survivor's average over several seed blocks
with an offspring's one block. ``search.estimate`` picks the figure:

* ``mean``: the mean over the arch's episodes (the rule so far).
* ``seed_adjusted``: the arch effects of the additive model ``return = arch + seed + noise``,
  fitted by least squares on every episode of the archive (:func:`seed_adjusted_means`). The
  seed effects are centred within each group of archs linked by shared seeds (a connected
  component); where nothing links two groups (random search's batches, or a search that keeps
  first estimates) their seed effects are not separable, and their means are left as they are.
* ``shrunk``: the seed-adjusted means shrunk toward a prediction from the genes, the way
  empirical Bayes pools noisy means (Efron and Morris 1975; :func:`shrunk_means`). Archs that
  share genes play alike, so the archive knows something about an arch beyond its own
  episodes. The prior is a ridge regression of the adjusted means on one-hot genes
  (:func:`gene_features`), its penalty the one of :data:`RIDGE_PENALTIES` with the smallest
  leave-one-out error; ``sigma^2`` is the model's residual variance, so an arch's mean has
  variance ``sigma^2 / n_i``; ``tau^2``, the spread of the true returns around the prediction,
  is the mean of ``loo_i^2 - sigma^2 / n_i`` over the leave-one-out residuals (a regression
  that only memorises the noise gets no weight), floored at :data:`MIN_TAU2_SHARE` of
  ``sigma^2``. The estimate is ``m_i + b_i (p_i - m_i)``, ``b_i = (sigma^2/n_i) /
  (sigma^2/n_i + tau^2)``: an arch with few episodes leans on its genes' prediction, one with
  many on its own mean.

Every figure is a pure function of the archive's records in record order, so a resumed
search computes the same ones. The records and ``history.csv`` keep plain means; the delivery
chooses its candidates on the estimates and then scores them on fresh seeds only
(:mod:`~a2d_evo.search.front`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from a2d_evo.nets.space import SearchSpace

ESTIMATES = ("mean", "seed_adjusted", "shrunk")
"""The values of ``search.estimate``."""

RIDGE_PENALTIES = (0.3, 3.0, 30.0, 300.0, 3000.0)
"""Ridge penalties tried on the one-hot gene weights (the intercept is not penalised); the
one with the smallest leave-one-out error is used."""

MIN_TAU2_SHARE = 0.01
"""Floor of ``tau^2`` as a share of ``sigma^2``: the prediction never fully replaces an
arch's own episodes."""

FIT_ITERATIONS = 500
"""Most alternating least-squares sweeps of :func:`seed_adjusted_means`."""


def gene_features(space: SearchSpace, encodings: np.ndarray) -> np.ndarray:
    """One-hot columns, one per (gene, choice), of canonical encodings ``(n, n_var)``."""
    enc = np.asarray(encodings, dtype=np.int64).reshape(-1, space.n_var)
    cols = [
        (enc[:, g : g + 1] == np.arange(len(choices))[None, :]).astype(np.float64)
        for g, choices in enumerate(space.choices)
    ]
    return np.concatenate(cols, axis=1)


def _episodes(records: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(arch index, seed index, return) of every episode, seeds numbered in sorted order."""
    arch = np.concatenate([np.full(len(r["returns"]), i) for i, r in enumerate(records)])
    seeds = np.concatenate([np.asarray(r["seeds"], dtype=np.int64) for r in records])
    seed_idx = np.unique(seeds, return_inverse=True)[1].reshape(-1)
    ret = np.concatenate([np.asarray(r["returns"], dtype=np.float64) for r in records])
    return arch.astype(np.int64), seed_idx.astype(np.int64), ret


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


def seed_adjusted_means(records: Sequence[dict[str, Any]]) -> tuple[np.ndarray, float, int]:
    """Arch effects of ``return = arch + seed + noise`` (least squares, seed effects centred
    per connected component), the residual variance, and its degrees of freedom.

    ``records`` carry ``returns`` and ``seeds`` (one per episode). The residual variance is
    ``nan`` when the model leaves no degree of freedom.
    """
    arch, seed, ret = _episodes(records)
    n_arch, n_seed = len(records), int(seed.max()) + 1
    per_arch = np.bincount(arch, minlength=n_arch).astype(np.float64)
    per_seed = np.bincount(seed, minlength=n_seed).astype(np.float64)
    comp = _components(arch, seed, n_seed)
    comp_ids, comp_of_seed = np.unique(comp, return_inverse=True)
    comp_weight = np.bincount(comp_of_seed, per_seed)
    mu = np.bincount(arch, ret, n_arch) / per_arch
    theta = np.zeros(n_seed)
    for _ in range(FIT_ITERATIONS):
        theta_new = np.bincount(seed, ret - mu[arch], n_seed) / per_seed
        # centre the seed effects within each component (episode-weighted)
        shift = np.bincount(comp_of_seed, theta_new * per_seed) / comp_weight
        theta_new -= shift[comp_of_seed]
        mu = np.bincount(arch, ret - theta_new[seed], n_arch) / per_arch
        done = np.max(np.abs(theta_new - theta)) < 1e-12
        theta = theta_new
        if done:
            break
    resid = ret - mu[arch] - theta[seed]
    dof = len(ret) - n_arch - n_seed + len(comp_ids)
    var = float(resid @ resid) / dof if dof > 0 else float("nan")
    return mu, var, dof


def _ridge(features: np.ndarray, y: np.ndarray, penalty: float) -> tuple[np.ndarray, np.ndarray]:
    """In-sample predictions of a ridge fit and its leave-one-out residuals
    ``e_i / (1 - h_ii)`` (``h`` the hat matrix, the centring's ``1/n`` included)."""
    X = np.asarray(features, dtype=np.float64)
    Xc = X - X.mean(axis=0)
    A = Xc.T @ Xc + penalty * np.eye(X.shape[1])
    pred = y.mean() + Xc @ np.linalg.solve(A, Xc.T @ (y - y.mean()))
    hat = np.einsum("ij,ji->i", Xc, np.linalg.solve(A, Xc.T)) + 1.0 / len(y)
    return pred, (y - pred) / np.maximum(1.0 - hat, 1e-9)


def shrunk_means(
    means: np.ndarray, counts: np.ndarray, sigma2: float, features: np.ndarray
) -> np.ndarray:
    """``means`` (one per arch, each over ``counts`` episodes of variance ``sigma2``) shrunk
    toward a ridge prediction from ``features`` (see the module doc). Fewer than three archs,
    or no usable ``sigma2``: the means come back."""
    means = np.asarray(means, dtype=np.float64)
    if len(means) < 3 or not sigma2 > 0:
        return means
    pred, loo = min(
        (_ridge(features, means, penalty) for penalty in RIDGE_PENALTIES),
        key=lambda fit: float(np.mean(fit[1] ** 2)),
    )
    noise = sigma2 / np.asarray(counts, dtype=np.float64)
    tau2 = max(float(np.mean(loo**2 - noise)), MIN_TAU2_SHARE * sigma2)
    b = noise / (noise + tau2)
    out: np.ndarray = means + b * (pred - means)
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
