"""What NSGA-II ranks on: seed-adjusted means and their empirical-Bayes shrinkage toward a
prediction from the genes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from a2d_evo.config import SpaceConfig
from a2d_evo.nets.space import MLPArch, SearchSpace
from a2d_evo.search.estimates import (
    MIN_TAU2_SHARE,
    anchor_encodings,
    arch_estimates,
    gene_features,
    seed_adjusted_means,
    seed_effects,
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


def test_gene_features_are_one_hot_per_active_gene() -> None:
    enc = np.array([[0, 1, 2, 0, 0], [3, 11, 0, 5, 7]])
    X = gene_features(SPACE, enc)
    assert X.shape == (2, sum(len(c) for c in SPACE.choices))
    active = [int(SPACE.active_genes(row).sum()) for row in enc]
    assert active[0] < SPACE.n_var  # row 0 leaves layers out
    assert X.sum(axis=1).tolist() == active  # one choice per gene the arch uses
    assert X[0, 0] == 1 and X[1, 3] == 1 and X[1, len(SPACE.choices[0]) + 11] == 1


def test_an_absent_layer_is_not_read_as_one_of_the_narrowest_width() -> None:
    """Two archs that differ only in a last layer of the narrowest width or none: canonical
    encodings write both layers' genes as 0, and the features still tell them apart."""
    deep = SPACE.encode(SPACE.decode(np.array([2, 0, 0, 0, 0])))
    shallow = SPACE.canonical(np.array([1, 0, 0, 0, 0]))
    assert SPACE.decode(deep) != SPACE.decode(shallow)
    X = gene_features(SPACE, np.stack([deep, shallow]))
    assert not np.array_equal(X[0, len(SPACE.choices[0]) :], X[1, len(SPACE.choices[0]) :])
    assert X[0].sum() == X[1].sum() + 1  # the deeper arch's third layer


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


def test_an_arch_alone_with_a_gene_value_is_shrunk_toward_the_others() -> None:
    """Its prior must not hold its own mean: arch 0, the only one with choice 3 of gene 0,
    has one episode and a lucky draw 9 above its true 0.35. Toward the in-sample prediction
    (which holds h_00 ~ 0.8 of its own mean) it kept 8.11; toward the prediction of a fit
    without it, it falls to 1.76 (a review's example)."""
    rng = np.random.default_rng(1)
    genes, choices = 6, 4
    enc = rng.integers(0, 3, (40, genes))
    enc[0, 0] = 3
    X = np.concatenate([(enc[:, g : g + 1] == np.arange(choices)).astype(float)
                        for g in range(genes)], axis=1)  # fmt: skip
    w = rng.normal(0, 1, X.shape[1])
    w[3] = 0.0
    counts = np.full(40, 10.0)
    counts[0] = 1.0
    truth = X @ w
    means = truth + rng.normal(0, 1, 40) * np.sqrt(9.0 / counts)
    means[0] = truth[0] + 9.0
    out = shrunk_means(means, counts, 9.0, X)
    assert out[0] - truth[0] < 0.3 * (means[0] - truth[0]), (out[0], truth[0], means[0])


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


def rec(
    returns: list[float], seeds: list[int], encoding: list[int], anchor: bool = False
) -> dict[str, Any]:
    out = {
        "returns": returns,
        "seeds": seeds,
        "return_mean": float(np.mean(returns)),
        "encoding": encoding,
    }
    if anchor:
        out["anchor"] = True
    return out


def test_seed_adjusted_means_undo_easy_and_hard_seeds_by_hand() -> None:
    """Anchors P (true 0) and Q (true 2) play seeds 1-4, of effects +3, +3, -3, -3. A (true 10)
    plays the easy seeds 1, 2 and B (true 12) the hard seeds 3, 4. Plain means: A 13, B 9 (B
    looks 4 worse); seed-adjusted: A 10, B 12, P 0, Q 2, with no residual, on 12 episodes less
    4 arch means and 3 free seed effects."""
    records = [
        rec([3, 3, -3, -3], [1, 2, 3, 4], [2] + [0] * 4, anchor=True),
        rec([5, 5, -1, -1], [1, 2, 3, 4], [3] + [0] * 4, anchor=True),
        rec([13, 13], [1, 2], [0] * 5),
        rec([9, 9], [3, 4], [1] + [0] * 4),
    ]
    assert seed_effects(records) == pytest.approx({1: 3.0, 2: 3.0, 3: -3.0, 4: -3.0})
    mu, var, dof = seed_adjusted_means(records)
    np.testing.assert_allclose(mu, [0.0, 2.0, 10.0, 12.0], atol=1e-12)
    assert dof == 12 - 4 - (4 - 1) and var == pytest.approx(0.0, abs=1e-12)
    assert arch_estimates(records, SPACE, "mean").tolist() == [0.0, 2.0, 13.0, 9.0]
    np.testing.assert_allclose(arch_estimates(records, SPACE, "seed_adjusted"), mu)


def test_the_pooled_variance_is_taken_within_each_arch_by_hand() -> None:
    """No anchors: nothing is adjusted. Within-arch squares 2 + 0 + 4.5 over 5 - 3 degrees of
    freedom (a one-episode arch adds none)."""
    records = [
        rec([5, 7], [1, 2], [0] * 5),
        rec([4], [1], [1] + [0] * 4),
        rec([0, 3], [3, 4], [2] + [0] * 4),
    ]
    mu, var, dof = seed_adjusted_means(records)
    np.testing.assert_allclose(mu, [6.0, 4.0, 1.5])
    assert dof == 2 and var == pytest.approx((2.0 + 4.5) / 2)


def test_without_anchors_every_arch_keeps_its_mean() -> None:
    """Survivors link the seeds here, but they are not anchors: no seed effect is measured."""
    records = [
        rec([5, 7, 1, 1], [1, 2, 3, 4], [0] * 5),
        rec([6, 9], [1, 2], [1] + [0] * 4),
        rec([20, 22], [3, 4], [2] + [0] * 4),
    ]
    assert seed_effects(records) == {}
    mu, _, _ = seed_adjusted_means(records)
    np.testing.assert_allclose(mu, [3.5, 7.5, 21.0], atol=1e-12)


def test_seed_effects_are_the_exact_least_squares_fit_on_an_unbalanced_archive() -> None:
    """Anchors that skip some generations (so the design is unbalanced): the seed effects equal
    a direct least-squares solve of the additive model, centred episode-weighted."""
    rng = np.random.default_rng(3)
    records, rows = [], []
    for a in range(5):
        seeds = sorted(rng.choice(40, size=int(rng.integers(15, 40)), replace=False).tolist())
        rets = (rng.normal(0, 1) + rng.normal(0, 2, len(seeds))).tolist()
        records.append(rec(rets, seeds, [a] + [0] * 4, anchor=True))
        rows += [(a, x, r) for x, r in zip(seeds, rets, strict=True)]
    used = sorted({x for _, x, _ in rows})
    design = np.zeros((len(rows), 5 + len(used)))
    for i, (a, x, _) in enumerate(rows):
        design[i, a] = design[i, 5 + used.index(x)] = 1.0
    coef = np.linalg.lstsq(design, np.array([r for _, _, r in rows]), rcond=None)[0]
    theta = coef[5:]
    weight = design[:, 5:].sum(axis=0)
    theta -= (theta * weight).sum() / weight.sum()
    got = seed_effects(records)
    np.testing.assert_allclose([got[x] for x in used], theta, atol=1e-9)


def test_seed_adjusted_means_do_not_depend_on_record_order() -> None:
    rng = np.random.default_rng(11)
    records = [
        rec(rng.normal(0, 1, 6).tolist(), [0, 1, 2, 3, 4, 5], [a] + [0] * 4, anchor=a < 3)
        for a in range(8)
    ]
    perm = rng.permutation(len(records))
    a, _, _ = seed_adjusted_means(records)
    b, _, _ = seed_adjusted_means([records[i] for i in perm])
    np.testing.assert_allclose(b, a[perm], atol=1e-12)


def seed_effect_drift(anchors: int, seed: int) -> float:
    """A search that selects: 20 generations, each 40 new archs plus the 20 best so far by
    their current seed-adjusted estimate (survivors, kept for their own luck), all on 2 shared
    seeds; seed effects of std 4, noise of std 3, true returns of std 1; ``anchors`` fixed archs
    play every generation. Returns the mean error of the estimated seed effects over the last
    5 generations' seeds minus that over the first 5 (the centring's shift cancels)."""
    rng = np.random.default_rng(seed)
    truth: list[float] = []
    records: list[dict[str, Any]] = []
    theta: dict[int, float] = {}

    def add(anchor: bool) -> None:
        truth.append(float(rng.normal(0, 1)))
        records.append({"returns": [], "seeds": [], **({"anchor": True} if anchor else {})})

    for _ in range(anchors):
        add(True)
    survivors: list[int] = []
    for g in range(20):
        seeds = [2 * g, 2 * g + 1]
        theta.update(zip(seeds, rng.normal(0, 4, 2).tolist(), strict=True))
        new = list(range(len(records), len(records) + 40))
        for _ in new:
            add(False)
        for i in list(range(anchors)) + survivors + new:
            r = records[i]
            r["returns"] = r["returns"] + [truth[i] + theta[x] + rng.normal(0, 3) for x in seeds]
            r["seeds"] = r["seeds"] + seeds
        est, _, _ = seed_adjusted_means(records)
        survivors = sorted(range(anchors, len(records)), key=lambda i: -est[i])[:20]
    effects = seed_effects(records)
    d = np.array([effects[x] - theta[x] for x in range(40)])
    return float(d[30:].mean() - d[:10].mean())


def test_seed_effects_from_anchors_do_not_drift_under_selection() -> None:
    """Survivors are kept for their luck, so their next episodes look worse: seed effects
    fitted on every arch call every new seed hard and lift every later offspring (a drift of
    about -21 with no anchor among them, -3.3 with 4, -1.6 with these 8). Measured on the
    anchors alone they do not drift."""
    drift = [seed_effect_drift(anchors=8, seed=s) for s in range(3)]
    assert abs(float(np.mean(drift))) < 0.6, drift


def test_seed_adjustment_lowers_the_error_under_common_random_numbers() -> None:
    """Generations of 20 archs on 2 shared seeds each, seed effects of std 4, noise std 2;
    every arch of generation g - 1 plays again in g (survivors), and 8 anchors play every
    generation. The adjusted means are nearer the truth than the plain ones."""
    rng = np.random.default_rng(7)
    truth = rng.normal(0, 1, 118)
    theta = rng.normal(0, 4, 20)
    played: dict[int, tuple[list[float], list[int]]] = {}
    for g in range(10):
        seeds = [2 * g, 2 * g + 1]
        for a in list(range(110, 118)) + list(range(10 * g, 10 * g + 20)):
            r, s = played.setdefault(a, ([], []))
            r += [truth[a] + theta[x] + rng.normal(0, 2) for x in seeds]
            s += seeds
    records = [rec(r, s, [0] * 5, anchor=a >= 110) for a, (r, s) in sorted(played.items())]
    t = truth[sorted(played)]
    plain = arch_estimates(records, SPACE, "mean")
    adjusted = arch_estimates(records, SPACE, "seed_adjusted")

    def err(x: np.ndarray) -> float:  # up to a common shift (the centring)
        return float(np.var(x - t))

    assert err(adjusted) < 0.5 * err(plain)


def test_anchors_spread_over_flops_and_come_back_the_same() -> None:
    """``anchor_encodings``: distinct canonical archs in increasing FLOPs, the cheapest and
    the dearest inside the space's range, the same for the same seed, others for another."""
    from a2d_evo.nets import cost

    obs, actions = (8,), 4
    a = anchor_encodings(SPACE, 5, 4, obs, actions)
    assert len({x.tobytes() for x in a}) == 4
    assert all(np.array_equal(x, SPACE.canonical(x)) for x in a)
    f = [cost.flops(SPACE.decode(x), obs, actions) for x in a]
    assert f == sorted(f) and f[0] < f[-1] / 10
    assert cost.flops(SPACE.smallest(), obs, actions) <= f[0]
    assert f[-1] <= cost.flops(SPACE.largest(), obs, actions)
    again = anchor_encodings(SPACE, 5, 4, obs, actions)
    assert all(np.array_equal(x, y) for x, y in zip(a, again, strict=True))
    other = anchor_encodings(SPACE, 6, 4, obs, actions)
    assert any(not np.array_equal(x, y) for x, y in zip(a, other, strict=True))
    assert anchor_encodings(SPACE, 5, 0, obs, actions) == []


def test_anchors_sit_at_the_middle_of_their_flops_quantiles() -> None:
    """Of the 6 archs of a tiny space (every one among the 512 draws), 2 anchors are at the
    FLOPs ranks (i + 0.5) / 2 * 6 = 1 and 4 (2nd and 5th cheapest): not the cheapest arch,
    and 1 anchor is the median (rank 3)."""
    from a2d_evo.nets import cost
    from a2d_evo.search.estimates import anchor_encodings

    space = SearchSpace(SpaceConfig(kind="mlp", depths=(1, 2), widths=(4, 8)))
    obs, actions = (4,), 2
    # FLOPs: mlp-4 56, mlp-4x4 88, mlp-8 112, mlp-4x8 144, mlp-8x4 152, mlp-8x8 240
    two = [space.decode(x) for x in anchor_encodings(space, 0, 2, obs, actions)]
    assert two == [MLPArch((4, 4)), MLPArch((8, 4))]
    one = [space.decode(x) for x in anchor_encodings(space, 0, 1, obs, actions)]
    assert one == [MLPArch((4, 8))]
    assert cost.flops(one[0], obs, actions) == 144


def test_two_archs_are_not_shrunk() -> None:
    """Fewer than three archs leave no prediction worth shrinking toward (each arch's
    leave-one-out prior would be the other arch alone): the means come back as they are."""
    from a2d_evo.search.estimates import shrunk_means

    means = np.array([0.0, 10.0])
    X = np.array([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]])
    out = shrunk_means(means, np.array([1.0, 1.0]), 4.0, X)
    np.testing.assert_array_equal(out, means)


def test_ridge_leave_one_out_residuals_equal_refits_without_the_row() -> None:
    """The shortcut ``e_i / (1 - h_ii)`` (the intercept's 1/n in ``h``) equals, row by row,
    ``y_i`` minus the prediction of a ridge fit (intercept not penalised) on the other rows."""
    from a2d_evo.search.estimates import _ridge_loo

    rng = np.random.default_rng(3)
    X = (rng.random((7, 4)) < 0.5).astype(np.float64)
    y = rng.normal(0.0, 2.0, 7)
    penalty = 3.0
    want = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        A = np.column_stack([np.ones(keep.sum()), X[keep]])
        P = penalty * np.eye(A.shape[1])
        P[0, 0] = 0.0  # the intercept is free
        coef = np.linalg.solve(A.T @ A + P, A.T @ y[keep])
        want.append(y[i] - (coef[0] + X[i] @ coef[1:]))
    np.testing.assert_allclose(_ridge_loo(X, y, penalty), want, rtol=1e-9, atol=1e-9)


def test_the_shrinkage_floor_is_one_percent_of_sigma2() -> None:
    """Where the leave-one-out residuals are all noise, ``tau^2`` is floored at 1% of
    ``sigma^2`` (``docs/search.md``): an arch of ``n`` episodes then moves ``b = 1 / (1 +
    0.01 n)`` of the way to its leave-one-out prediction."""
    from a2d_evo.search.estimates import RIDGE_PENALTIES, _ridge_loo, shrunk_means

    rng = np.random.default_rng(0)
    X = (rng.random((6, 4)) < 0.5).astype(np.float64)
    means = rng.normal(0.0, 1.0, 6)
    counts = np.array([1.0, 2.0, 4.0, 1.0, 2.0, 4.0])
    sigma2 = 1e6  # every residual is far inside the noise: the floor binds
    loo = min(
        (_ridge_loo(X, means, p) for p in RIDGE_PENALTIES), key=lambda r: float(np.mean(r**2))
    )
    b = 1.0 / (1.0 + 0.01 * counts)
    np.testing.assert_allclose(shrunk_means(means, counts, sigma2, X), means - b * loo)
