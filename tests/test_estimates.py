"""What NSGA-II ranks on: seed-adjusted means and their empirical-Bayes shrinkage toward a
prediction from the genes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from a2d_evo.config import SpaceConfig
from a2d_evo.nets.space import SearchSpace
from a2d_evo.search.estimates import (
    MIN_TAU2_SHARE,
    arch_estimates,
    gene_features,
    seed_adjusted_means,
    shrunk_means,
)

SPACE = SearchSpace(SpaceConfig(kind="mlp"))


def archive(
    n: int, episodes: int | list[int], noise: float, seed: int = 0
) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray]:
    """``n`` distinct archs whose true return is linear in their genes, each played
    ``episodes`` times with Gaussian noise: (records, features, true returns)."""
    rng = np.random.default_rng(seed)
    enc = np.unique(SPACE.sample_encodings(rng, 4 * n), axis=0)[:n]
    X = gene_features(SPACE, enc)
    truth = X @ rng.normal(0.0, 1.0, X.shape[1])
    counts = [episodes] * n if isinstance(episodes, int) else episodes
    records = []
    for t, k in zip(truth, counts, strict=True):
        r = t + rng.normal(0.0, noise, k)
        records.append({"returns": r.tolist(), "return_mean": float(r.mean())})
    return records, X, truth


def shrink(records: list[dict[str, Any]], X: np.ndarray, sigma2: float = 9.0) -> np.ndarray:
    """``shrunk_means`` of plain means with a known per-episode variance (noise 3)."""
    means = np.array([r["return_mean"] for r in records])
    counts = np.array([len(r["returns"]) for r in records])
    return shrunk_means(means, counts, sigma2, X)


def test_gene_features_are_one_hot_per_gene() -> None:
    enc = np.array([[0, 1, 2, 0, 0], [3, 11, 0, 5, 7]])
    X = gene_features(SPACE, enc)
    assert X.shape == (2, sum(len(c) for c in SPACE.choices))
    assert (X.sum(axis=1) == SPACE.n_var).all()  # one choice per gene
    assert X[0, 0] == 1 and X[1, 3] == 1 and X[1, len(SPACE.choices[0]) + 11] == 1


def test_shrinkage_lowers_the_error_of_two_episode_means() -> None:
    """Noise std 3 on 2 episodes (standard error 2.1) against a true spread of about 2: the
    shrunk means are closer to the truth than the plain means, by more than a third."""
    records, X, truth = archive(300, 2, noise=3.0)
    plain = np.array([r["return_mean"] for r in records])
    shrunk = shrink(records, X)
    mse_plain = float(np.mean((plain - truth) ** 2))
    mse_shrunk = float(np.mean((shrunk - truth) ** 2))
    assert mse_plain == pytest.approx(4.5, rel=0.25)  # 3^2 / 2
    assert mse_shrunk < 0.65 * mse_plain


def test_an_arch_with_many_episodes_keeps_its_own_mean() -> None:
    counts = [2] * 199 + [400]
    records, X, truth = archive(200, counts, noise=3.0, seed=1)
    shrunk = shrink(records, X)
    own = records[-1]["return_mean"]
    assert abs(shrunk[-1] - own) < 0.1 * 3.0 / np.sqrt(2)  # a small share of a 2-episode SE
    assert abs(own - truth[-1]) < 0.5


def test_noise_only_archs_are_pooled_but_never_fully() -> None:
    """Every arch has the same true return: the leave-one-out spread is noise, tau^2 hits its
    floor, and each estimate moves nearly all the way to the prediction, not all of it."""
    records, X, _ = archive(200, 2, noise=3.0, seed=2)
    rng = np.random.default_rng(3)
    for r in records:  # the same true return (0) for every arch
        r["returns"] = rng.normal(0.0, 3.0, 2).tolist()
        r["return_mean"] = float(np.mean(r["returns"]))
    plain = np.array([r["return_mean"] for r in records])
    shrunk = shrink(records, X)
    assert float(np.std(shrunk)) < 0.2 * float(np.std(plain))
    # tau^2 at its floor: each estimate keeps 1 - b = 0.01 / (0.5 + 0.01) of its own deviation
    keep = MIN_TAU2_SHARE / (0.5 + MIN_TAU2_SHARE)
    assert float(np.std(shrunk)) > 0.5 * keep * float(np.std(plain))


def test_without_a_noise_variance_the_means_come_back() -> None:
    records, X, _ = archive(50, 1, noise=3.0, seed=4)
    plain = np.array([r["return_mean"] for r in records])
    np.testing.assert_array_equal(shrink(records, X, sigma2=float("nan")), plain)


def test_record_order_does_not_change_an_arch_estimate() -> None:
    records, X, _ = archive(120, 2, noise=3.0, seed=5)
    perm = np.random.default_rng(6).permutation(len(records))
    a = shrink(records, X)
    b = shrink([records[i] for i in perm], X[perm])
    np.testing.assert_allclose(b, a[perm], rtol=0, atol=1e-9)


def rec(returns: list[float], seeds: list[int], encoding: list[int]) -> dict[str, Any]:
    return {
        "returns": returns,
        "seeds": seeds,
        "return_mean": float(np.mean(returns)),
        "encoding": encoding,
    }


def test_seed_adjusted_means_undo_easy_and_hard_seeds_by_hand() -> None:
    """A (true 10) plays easy seeds 1, 2 (+3) and hard seeds 3, 4 (-3); B (true 12) plays the
    hard ones only. Plain means: A 10, B 9 (B looks worse). The additive model fits exactly:
    with the seed effects centred (weights 1, 1, 2, 2), theta = (4, 4, -2, -2), so A = 9 and
    B = 11: B ahead by its true 2, no residual."""
    records = [rec([13, 13, 7, 7], [1, 2, 3, 4], [0] * 5), rec([9, 9], [3, 4], [1] + [0] * 4)]
    mu, var, dof = seed_adjusted_means(records)
    np.testing.assert_allclose(mu, [9.0, 11.0], atol=1e-9)
    assert dof == 6 - 2 - 4 + 1 and var == pytest.approx(0.0, abs=1e-12)
    plain = arch_estimates(records, SPACE, "mean")
    assert plain.tolist() == [10.0, 9.0]
    np.testing.assert_allclose(arch_estimates(records, SPACE, "seed_adjusted"), mu)


def test_archs_no_seed_links_are_left_with_their_means() -> None:
    """Two batches on disjoint seeds (random search): nothing separates a batch's seeds from
    its archs, so each arch keeps its plain mean."""
    records = [
        rec([5, 7], [1, 2], [0] * 5),
        rec([6, 9], [1, 2], [1] + [0] * 4),
        rec([20, 22], [3, 4], [2] + [0] * 4),
    ]
    mu, _, _ = seed_adjusted_means(records)
    np.testing.assert_allclose(mu, [6.0, 7.5, 21.0], atol=1e-9)


def test_seed_adjustment_lowers_the_error_under_common_random_numbers() -> None:
    """Generations of 20 archs on 2 shared seeds each, seed effects of std 4, noise std 2;
    every arch of generation g - 1 plays again in g (survivors). The adjusted means are
    nearer the truth than the plain ones."""
    rng = np.random.default_rng(7)
    truth = rng.normal(0, 1, 110)
    theta = rng.normal(0, 4, 20)
    played: dict[int, tuple[list[float], list[int]]] = {}
    for g in range(10):
        seeds = [2 * g, 2 * g + 1]
        for a in list(range(10 * g, 10 * g + 20)):
            r, s = played.setdefault(a, ([], []))
            r += [truth[a] + theta[x] + rng.normal(0, 2) for x in seeds]
            s += seeds
    records = [rec(r, s, [0] * 5) for r, s in (played[a] for a in sorted(played))]
    t = truth[sorted(played)]
    plain = arch_estimates(records, SPACE, "mean")
    adjusted = arch_estimates(records, SPACE, "seed_adjusted")

    def err(x: np.ndarray) -> float:  # up to a common shift (the centring)
        return float(np.var(x - t))

    assert err(adjusted) < 0.5 * err(plain)
