"""Properties no test pinned, found by a fifth mutation review (2026-12-06): each test below
passes on the code as it is and fails under a small change to it that the whole suite let
through: the front's dominance rule on ties, the statistics the report prints, the anchors'
FLOPs quantiles, the refusal of a fractional teacher FLOPs count, and more."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from a2d_evo.config import SpaceConfig
from a2d_evo.envs.vector import StepResult
from a2d_evo.errors import FormatError
from a2d_evo.nets.space import MLPArch, SearchSpace
from a2d_evo.report.rows import Row


# ----------------------------------------------------------------------------- formats.py
def test_non_dominated_keeps_both_of_two_equal_points() -> None:
    """Equal points do not dominate each other (domination needs one objective strictly
    better): both stay, the point they beat goes."""
    from a2d_evo.formats import non_dominated

    assert non_dominated([(1.0, 1.0), (1.0, 1.0), (2.0, 0.0)]) == [0, 1]


def test_non_dominated_drops_a_point_beaten_on_one_objective_only() -> None:
    """A point with the same cost and a lower score (or the same score at a higher cost) is
    dominated: one objective strictly better is enough."""
    from a2d_evo.formats import non_dominated

    assert non_dominated([(1.0, 1.0), (1.0, 2.0), (2.0, 2.0)]) == [1]


def test_the_refusal_tells_apart_a_teacher_and_random_close_together() -> None:
    """A teacher just below random is refused with both returns printed with as many
    decimals as it takes to tell them apart (up to 6), not as two equal numbers."""
    from a2d_evo.formats import check_teacher_beats_random

    with pytest.raises(ValueError, match=r"R=1\.0001\).*R=1\.0002\)"):
        check_teacher_beats_random(1.0002, 1.0001)
    with pytest.raises(ValueError, match=r"R=2\.000001\).*R=2\.000002\)"):
        check_teacher_beats_random(2.000002, 2.000001)


def test_normalisation_from_dict_refuses_a_fractional_teacher_flops() -> None:
    """``teacher_flops`` is a count: 12.5 in a file is damage, refused, not truncated to 12;
    12.0 (a float that is an integer, as JSON may write it) is read as 12."""
    from a2d_evo.formats import Normalisation

    good = {"r_random": 0.0, "r_teacher": 10.0, "teacher_flops": 12.0}
    assert Normalisation.from_dict(good).teacher_flops == 12
    with pytest.raises(FormatError, match="teacher_flops must be an integer"):
        Normalisation.from_dict({**good, "teacher_flops": 12.5})


# ----------------------------------------------------------------------------- estimates.py
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


# ----------------------------------------------------------------------------- budget.py
def test_the_budget_is_spent_at_exactly_budget_steps() -> None:
    """A search stops once the env steps played *reach* ``budget_steps`` (the docstring's
    ">="): exactly the budget is spent, one step short is not, no budget never is."""
    from a2d_evo.search.budget import budget_spent

    class Played:
        def __init__(self, steps: int) -> None:
            self.steps = steps

        def env_steps(self) -> int:
            return self.steps

    assert budget_spent(Played(1000), 1000)  # type: ignore[arg-type]
    assert not budget_spent(Played(999), 1000)  # type: ignore[arg-type]
    assert not budget_spent(Played(10**9), None)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- ppo.py
def test_clipfrac_counts_ratios_below_the_clip_range_too() -> None:
    """``clipfrac`` is the share of ratios outside ``[1 - c, 1 + c]`` on either side (ratios
    0.5, 1.5 and 1.1 at c = 0.2: two of three), and ``approx_kl`` the k3 estimator."""
    import math

    import torch

    from a2d_evo.train.ppo import ppo_loss

    logits = torch.zeros(3, 2)  # pi(a|s) = 0.5 for every action
    ratios = (0.5, 1.5, 1.1)
    old = torch.log(0.5 / torch.tensor(ratios))
    out = ppo_loss(logits, torch.zeros(3), torch.zeros(3, dtype=torch.long), old,
                   torch.zeros(3), torch.tensor([1.0, -1.0, 0.5]), torch.zeros(3),
                   clip_coef=0.2, vf_coef=0.5, ent_coef=0.0)  # fmt: skip
    assert out.clipfrac.item() == pytest.approx(2.0 / 3.0)
    # k3 estimator: mean((r - 1) - log r) over the three ratios
    kl = sum((r - 1) - math.log(r) for r in ratios) / 3
    assert out.approx_kl.item() == pytest.approx(kl, rel=1e-5)


# ----------------------------------------------------------------------------- distill.py
def _small_batch() -> tuple:
    import torch

    from a2d_evo.nets.agent import PolicyOutput
    from a2d_evo.train.ppo import Batch

    g = torch.Generator().manual_seed(5)
    n = 6
    mb = Batch(
        obs=torch.zeros(n, 2),
        actions=torch.randint(0, 3, (n,), generator=g),
        logprobs=torch.log_softmax(torch.randn(n, 3, generator=g), -1)[:, 0],
        values=torch.randn(n, generator=g),
        advantages=torch.randn(n, generator=g),
        returns=torch.randn(n, generator=g),
        teacher_logits=torch.randn(n, 3, generator=g),
        teacher_values=torch.randn(n, generator=g),
    )
    return PolicyOutput(torch.randn(n, 3, generator=g), torch.randn(n, generator=g)), mb


def test_a_subnet_that_owns_the_whole_rollout_has_share_one() -> None:
    """``own_share`` is in (0, 1], 1 included: a subnet that collected every row (one subnet
    acting in every slot) gets plain PPO on all rows plus the distillation terms."""
    import torch

    from a2d_evo.config import PPOConfig
    from a2d_evo.train.distill import distill_loss

    out, mb = _small_batch()
    every = torch.ones(6, dtype=torch.bool)
    mine = distill_loss(out, mb, PPOConfig(), 0.7, 0.3, own=every, own_share=1.0)
    plain = distill_loss(out, mb, PPOConfig(), 0.7, 0.3)
    torch.testing.assert_close(mine.loss, plain.loss)


def test_sigma_is_the_rms_down_to_one_millionth() -> None:
    """sigma is the values' RMS itself down to 1e-6 (tiny but usable scales kept), 1 below
    it or where the RMS is not finite."""
    from a2d_evo.train.distill import sigma_from_rms

    assert sigma_from_rms(1e-4) == 1e-4
    assert sigma_from_rms(1e-6) == 1e-6
    assert sigma_from_rms(9e-7) == 1.0
    assert sigma_from_rms(float("nan")) == 1.0
    assert sigma_from_rms(250.0) == 250.0


def test_annealed_coefficients_stop_at_their_final_fraction() -> None:
    """Linear annealing clamps progress to [0, 1]: past the end alpha and beta stay at
    ``final_fraction`` of their values (never lower, never negative), before the start at
    their full values."""
    from a2d_evo.config import DistillConfig
    from a2d_evo.train.distill import distill_coefs

    lin = DistillConfig(alpha=1.0, beta=0.5, anneal="linear", final_fraction=0.2)
    assert distill_coefs(lin, 1.5) == pytest.approx((0.2, 0.1))
    assert distill_coefs(lin, 3.0) == pytest.approx((0.2, 0.1))
    assert distill_coefs(lin, -0.5) == pytest.approx((1.0, 0.5))


# ----------------------------------------------------------------------------- sampling.py
TINY = SpaceConfig(kind="mlp", depths=(1, 2), widths=(4, 8))  # 6 archs


def test_distinct_draws_find_every_arch_left_in_a_small_space() -> None:
    """In a space of 6 archs, 4 distinct ones besides the sandwich's two ends are all found:
    the bounded retries (100 per wanted arch) are enough for the duplicates small spaces
    draw, under either rule."""
    from a2d_evo.train.sampling import SubnetSampler

    space = SearchSpace(TINY)
    ends = [space.largest(), space.smallest()]
    for rule in ("uniform", "strata"):
        got = SubnetSampler(space, (4,), 2, rule).distinct(np.random.default_rng(0), 4, ends)
        assert len(got) == 4 and len(set(got)) == 4 and not set(got) & set(ends)


def test_a_space_of_one_arch_trains_it_once() -> None:
    """Where the largest and the smallest arch are one network, the sandwich holds it once,
    and a rollout gives it every env slot (not two copies of it in halves of the slots)."""
    from a2d_evo.train.sampling import SubnetSampler, rollout_assignment

    space = SearchSpace(SpaceConfig(kind="mlp", depths=(2,), widths=(8,)))
    sampler = SubnetSampler(space, (4,), 2, "uniform")
    assert sampler.sandwich(np.random.default_rng(0), 3) == [MLPArch((8, 8))]
    archs, sizes = rollout_assignment(sampler, np.random.default_rng(0), 4, 8)
    assert archs == [MLPArch((8, 8))] and sizes == [8]


def test_balanced_draws_give_exactly_k_archs() -> None:
    """``balanced`` stops at ``k`` archs even in the middle of a round of the strata (k not a
    multiple of their count), and every arch is distinct."""
    from a2d_evo.train.sampling import SubnetSampler

    sampler = SubnetSampler(SearchSpace(TINY), (4,), 2, "strata")
    n = len(sampler.strata)
    assert n >= 3
    for k in (1, n - 1, n + 1):
        rows = sampler.balanced(np.random.default_rng(k), k)
        assert rows.shape == (k, sampler.space.n_var)
        assert len({r.tobytes() for r in rows}) == k


# ----------------------------------------------------------------------------- cost.py
def test_training_memory_grows_with_the_subnets_trained_per_minibatch() -> None:
    """Each subnet trained on a minibatch (the supernet's sandwich) holds its own activations:
    every extra subnet adds the same ``2 * 4 bytes * minibatch * units``."""
    from a2d_evo.config import PPOConfig
    from a2d_evo.nets.cost import training_memory_bytes

    arch, ppo = MLPArch((16, 8)), PPOConfig()
    one, two, three = (training_memory_bytes(arch, (4,), 4, 2, ppo, subnets=s) for s in (1, 2, 3))
    units = 4 + 16 + 8 + 2 + 1  # input + every layer's outputs (heads included)
    assert two - one == three - two == 2 * 4 * ppo.minibatch_size * units


def test_a_stage_is_refused_above_80_percent_of_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """``check_training_memory`` takes a stage estimated at up to 80% of the machine's
    memory and refuses one above it (naming the keys to lower)."""
    from a2d_evo.errors import ConfigError
    from a2d_evo.nets import cost

    monkeypatch.setattr(cost, "available_memory_bytes", lambda: 1000)
    cost.check_training_memory("teacher", 800, "ppo.num_envs")
    with pytest.raises(ConfigError, match="more than 80% .*lower ppo.num_envs"):
        cost.check_training_memory("teacher", 801, "ppo.num_envs")


# ----------------------------------------------------------------------------- episodes.py
class _Countdown:
    """A vector env whose slot ``i`` ends its episode after ``ends[i]`` steps with return
    ``10 * ends[i]`` (autoreset, as every backend): finished slots are stepped on."""

    def __init__(self, ends: list[int]) -> None:
        self.ends, self.num_envs = ends, len(ends)
        self.t = np.zeros(self.num_envs, dtype=np.int64)

    def reset(self, seed: object = None) -> np.ndarray:
        self.t[:] = 0
        return np.zeros((self.num_envs, 1), dtype=np.float32)

    def step(self, actions: np.ndarray) -> StepResult:
        self.t += 1
        ended = self.t == np.asarray(self.ends)
        ret = np.where(ended, 10.0 * np.asarray(self.ends), np.nan)
        self.t[ended] = 0
        n = self.num_envs
        obs = np.zeros((n, 1), dtype=np.float32)
        return StepResult(obs, np.zeros(n, np.float32), ended, np.zeros(n, bool), obs, ret,
                          np.where(ended, self.ends, 0))  # fmt: skip


def test_episode_lengths_stop_counting_when_a_slot_finishes() -> None:
    """``play_episodes``'s lengths are each episode's own env steps (what the search budget
    counts), not the longest slot's: slots ending after 2, 5 and 3 steps report 2, 5, 3."""
    from a2d_evo.evaluation.episodes import play_episodes

    lengths = np.zeros(3, dtype=np.int64)
    act = lambda obs, active: np.zeros(len(obs), dtype=np.int64)  # noqa: E731
    returns = play_episodes(_Countdown([2, 5, 3]), [7, 8, 9], act, None, lengths)
    assert returns.tolist() == [20.0, 50.0, 30.0]
    assert lengths.tolist() == [2, 5, 3]


# ----------------------------------------------------------------------------- markdown.py
def _row(label: str, flops: float, norm: float, returns: tuple[float, ...] | None = None) -> Row:
    return Row(label=label, arch=f"mlp-{label}", flops=flops, params=None, latency_ms=None,
               return_mean=100.0 * norm, return_std=1.0, episodes=5, normalised_return=norm,
               seeds=None if returns is None else tuple(range(len(returns))),
               episode_returns=returns)  # fmt: skip


def test_dominance_names_the_best_of_the_cheapest_winners() -> None:
    """Of two winners at the same (lowest) FLOPs, the sentence names the one with the higher
    normalised return: the cheapest, then the best."""
    from a2d_evo.report.verdicts import dominance

    baseline = _row("base", 1000.0, 0.5)
    front = [_row("low", 400.0, 0.6), _row("high", 400.0, 0.8), _row("dear", 900.0, 0.9)]
    won, text = dominance(baseline, front, span=100.0)
    assert won and "dominated** by 3 of 3" in text
    assert "#high `mlp-high`" in text and "#low" not in text


def test_paired_dominance_is_undecided_with_a_negative_span() -> None:
    """A teacher below random (R_teacher - R_random < 0) gives no paired verdict: dividing by
    a negative span would turn every difference's sign around."""
    from a2d_evo.report.verdicts import paired_dominance

    baseline = _row("base", 1000.0, 0.5, (50.0, 52.0, 48.0))
    front = [_row("a", 400.0, 0.1, (10.0, 12.0, 8.0))]
    verdict, text = paired_dominance(baseline, front, span=-100.0)
    assert verdict is None and "no R_teacher - R_random" in text
    verdict, _ = paired_dominance(baseline, front, span=100.0)
    assert verdict is False  # behind by 0.4 of the span on every seed


# ----------------------------------------------------------------------------- run_data.py
def test_history_rows_without_positive_flops_are_not_read(tmp_path: Path) -> None:
    """The report plots the history on a log FLOPs axis: rows of 0 or negative FLOPs (a
    damaged ``history.csv``) are skipped like unparsable ones, the others are read."""
    from a2d_evo.report.run_files import read_history

    path = tmp_path / "history.csv"
    path.write_text(
        "flops,return_mean,episodes\n100,1.5,4\n0,2.0,4\n-5,3.0,4\nnan,1.0,4\n250,2.5,8\n"
    )
    missing: list[str] = []
    assert read_history(path, missing) == ([(100.0, 1.5), (250.0, 2.5)], [4, 8])
    assert missing == []


def test_the_report_normalises_by_the_front_s_references_before_the_teacher_s(
    tmp_path: Path,
) -> None:
    """R_random and R_teacher come from ``front.json``'s normalisation (the final seeds that
    scored the members); the teacher's own ``metrics.json`` figures, of other seeds, only
    where the front has none."""
    from test_report import R_RANDOM, R_TEACHER, _agent, _metrics, make_run

    from a2d_evo.config import config_from_dict
    from a2d_evo.report.run_data import load_run

    run = make_run(tmp_path / "run", baselines=False)
    teacher = _metrics(8000, R_TEACHER + 7.0, 4.0, 17, random_return_mean=R_RANDOM + 3.0)
    _agent(run.teacher_agent, (64, 64), teacher)
    data = load_run(config_from_dict({}), run)
    assert (data.norm.r_random, data.norm.r_teacher) == (R_RANDOM, R_TEACHER)


def test_baselines_are_listed_by_method_then_growing_width() -> None:
    """The report lists the baselines PPO, distill, A2D, each from the narrowest width
    multiplier up (x0.25, x0.5, x1), then any other method."""
    from dataclasses import replace

    from a2d_evo.report.run_data import _baseline_order

    kinds = [("a2d", 0.5), ("distill", 1.0), ("other", 0.25), ("ppo", 0.5), ("distill", 0.25),
             ("ppo", 1.0), ("ppo", 0.25)]  # fmt: skip
    rows = [
        replace(_row(f"{m}_x{w:g}", 100.0, 0.5), extra={"method": m, "width_multiplier": w})
        for m, w in kinds
    ]
    order = [r.label for r in sorted(rows, key=_baseline_order)]
    assert order == ["ppo_x0.25", "ppo_x0.5", "ppo_x1", "distill_x0.25", "distill_x1",
                     "a2d_x0.5", "other_x0.25"]  # fmt: skip


# ----------------------------------------------------------------------------- front.py
def test_the_teacher_s_margin_is_its_lead_over_random(monkeypatch: pytest.MonkeyPatch) -> None:
    """``reference_returns``'s margin is the 95% lower bound of teacher minus random, paired
    per seed: positive for a teacher clearly ahead (what the weak-teacher caution reads)."""
    from types import SimpleNamespace

    from a2d_evo.search import front
    from a2d_evo.stats import paired_lower95

    teach, rand = [10.0, 12.0, 11.0, 13.0], [1.0, 2.0, 3.0, 1.5]
    monkeypatch.setattr(front, "evaluate_agent", lambda *a, **k: SimpleNamespace(returns=teach))
    monkeypatch.setattr(front, "_random_episodes", lambda *a, **k: rand)
    refs = front.reference_returns(None, None, [[5, 6, 7, 8]], None)  # type: ignore[arg-type]
    assert (refs.r_random, refs.r_teacher) == (1.875, 11.5)
    assert refs.margin_lower95 == pytest.approx(paired_lower95(teach, rand))
    assert refs.margin_lower95 > 5.0
