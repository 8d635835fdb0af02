"""PPO pieces against hand-computed numbers: GAE, the clipped loss, the lr schedule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from a2d_evo.config import PPOConfig
from a2d_evo.envs.vector import StepResult
from a2d_evo.errors import TrainingError
from a2d_evo.nets.agent import PolicyOutput
from a2d_evo.train.ppo import (
    Batch,
    RolloutBuffer,
    collect_rollout,
    compute_gae,
    explained_variance,
    linear_lr,
    minibatches,
    normalise_advantages,
    ppo_loss,
    sample_actions,
)


def col(*xs: float) -> torch.Tensor:
    """A (T, 1) column: one env."""
    return torch.tensor(xs, dtype=torch.float32)[:, None]


def test_explained_variance_hand_computed() -> None:
    """1 - Var(R - V) / Var(R): returns 1..4 have variance 1.25; the reversed values leave
    residuals -3, -1, 1, 3 of variance 5, so 1 - 5 / 1.25 = -3."""
    returns = col(1.0, 2.0, 3.0, 4.0)
    assert explained_variance(returns, returns) == 1.0
    assert explained_variance(torch.full((4, 1), 2.5), returns) == 0.0
    assert explained_variance(col(4.0, 3.0, 2.0, 1.0), returns) == pytest.approx(-3.0)
    assert explained_variance(col(0.0, 1.0, 2.0, 3.0), returns) == pytest.approx(1.0)
    assert math.isnan(explained_variance(col(1.0, 2.0), col(5.0, 5.0)))  # nothing to explain


# ----------------------------------------------------------------------------- GAE
def test_gae_hand_computed_with_termination_and_truncation() -> None:
    # 4 steps of one env, gamma 0.9, lambda 0.8 (gamma * lambda = 0.72).
    # t=0 goes on; t=1 terminates; t=2 is truncated (bootstrap from V(final_obs) = 5.0);
    # t=3 is the last step of the rollout (bootstrap from V(next obs) = 3.0).
    rewards = col(1.0, 2.0, 3.0, 4.0)
    values = col(0.5, 1.0, 1.5, 2.0)
    next_values = col(1.0, 9.0, 5.0, 3.0)  # 9.0 at the terminal step must be ignored
    terminated = col(0, 1, 0, 0)
    dones = col(0, 1, 1, 0)
    adv, ret = compute_gae(rewards, values, next_values, terminated, dones, 0.9, 0.8)
    # delta_3 = 4 + 0.9 * 3.0 - 2.0 = 4.7                       A_3 = 4.7
    # delta_2 = 3 + 0.9 * 5.0 - 1.5 = 6.0 (truncated: the trace stops)   A_2 = 6.0
    # delta_1 = 2 + 0 - 1.0 = 1.0 (terminal: no bootstrap)            A_1 = 1.0
    # delta_0 = 1 + 0.9 * 1.0 - 0.5 = 1.4;   A_0 = 1.4 + 0.72 * 1.0 = 2.12
    expected = col(2.12, 1.0, 6.0, 4.7)
    torch.testing.assert_close(adv, expected)
    torch.testing.assert_close(ret, expected + values)  # 2.62, 2.0, 7.5, 6.7


def test_reward_clip_takes_the_sign_of_each_reward_before_gae() -> None:
    """``ppo.reward_clip`` (the Atari configs): GAE sees sign(r), the buffer keeps r."""
    buf = RolloutBuffer(3, 1, (1,), np.float32)
    buf.rewards[:, 0] = torch.tensor([5.0, -3.0, 0.0])
    # gamma 0.5, lambda 1, zero values, no ends: A_t = r_t + 0.5 * A_{t+1}
    clipped, _ = buf.advantages(0.5, 1.0, reward_clip=True)
    torch.testing.assert_close(clipped, col(1.0 - 0.5, -1.0, 0.0))  # 0.5, -1, 0
    raw, _ = buf.advantages(0.5, 1.0)
    torch.testing.assert_close(raw, col(5.0 - 1.5, -3.0, 0.0))  # 3.5, -3, 0
    torch.testing.assert_close(buf.rewards, col(5.0, -3.0, 0.0))


def test_gae_columns_are_independent_envs() -> None:
    # two envs side by side; env 1 never ends: plain discounted sums with lambda = 1
    rewards = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
    values = torch.zeros(3, 2)
    next_values = torch.zeros(3, 2)
    terminated = torch.tensor([[0, 0], [1, 0], [0, 0]])
    adv, _ = compute_gae(rewards, values, next_values, terminated, terminated, 0.5, 1.0)
    # env 0: A_2 = 1; A_1 = 1 (terminal); A_0 = 1 + 0.5 * 1 = 1.5
    # env 1: A_2 = 1; A_1 = 1 + 0.5 = 1.5; A_0 = 1 + 0.5 * 1.5 = 1.75
    torch.testing.assert_close(adv, torch.tensor([[1.5, 1.75], [1.0, 1.5], [1.0, 1.0]]))


class ScriptedEnv:
    """One env whose obs is the step count; ends as scripted; final_obs = 100 + step."""

    def __init__(self, ends: dict[int, str]) -> None:
        self.ends = ends
        self.t = 0

    def step(self, actions: np.ndarray) -> StepResult:
        self.t += 1
        kind = self.ends.get(self.t)
        term = np.array([kind == "term"])
        trunc = np.array([kind == "trunc"])
        obs = np.array([[float(self.t)]], dtype=np.float32)
        final = np.array([[100.0 + self.t]], dtype=np.float32)
        ret = np.array([1.0 if kind else np.nan])
        return StepResult(obs, np.ones(1, np.float32), term, trunc, final, ret, np.ones(1, int))


def test_collector_lines_up_next_values() -> None:
    env = ScriptedEnv({2: "term", 3: "trunc"})

    def policy(obs: torch.Tensor) -> PolicyOutput:
        # value = the observation itself, so every stored value names the obs it came from
        return PolicyOutput(torch.zeros(len(obs), 2), obs[:, 0].clone())

    buf = RolloutBuffer(4, 1, (1,), np.float32)
    gen = torch.Generator().manual_seed(0)
    nxt, stats = collect_rollout(env, policy, buf, np.zeros((1, 1), np.float32), gen)
    assert buf.values[:, 0].tolist() == [0.0, 1.0, 2.0, 3.0]
    # t=0 -> V(obs 1); t=1 terminated (0, ignored); t=2 truncated -> V(final_obs) = 103;
    # t=3 -> V(obs after the rollout) = 4
    assert buf.next_values[:, 0].tolist() == [1.0, 0.0, 103.0, 4.0]
    assert buf.terminated[:, 0].tolist() == [0.0, 1.0, 0.0, 0.0]
    assert buf.dones[:, 0].tolist() == [0.0, 1.0, 1.0, 0.0]
    assert nxt.tolist() == [[4.0]]
    assert stats.episode_returns == [1.0, 1.0]


class InPlaceEnv(ScriptedEnv):
    """``ScriptedEnv`` that writes every observation into one array it keeps (as envs with
    ``copy=False`` or pooled buffers do): the array it returned last step changes."""

    def __init__(self) -> None:
        super().__init__({})
        self.obs = np.zeros((1, 1), np.float32)

    def step(self, actions: np.ndarray) -> StepResult:
        res = super().step(actions)
        self.obs[...] = res.obs
        return res._replace(obs=self.obs)


def test_collector_stores_each_observation_before_the_env_overwrites_it() -> None:
    env = InPlaceEnv()
    buf = RolloutBuffer(4, 1, (1,), np.float32)
    gen = torch.Generator().manual_seed(0)

    def net(obs: torch.Tensor) -> PolicyOutput:  # a network's outputs are fresh tensors
        return PolicyOutput(torch.zeros(len(obs), 2), obs[:, 0].clone())

    collect_rollout(env, net, buf, env.obs, gen)
    assert buf.obs[:, 0, 0].tolist() == [0.0, 1.0, 2.0, 3.0]  # s_t, not s_{t+1}
    assert buf.values[:, 0].tolist() == [0.0, 1.0, 2.0, 3.0]

    def view(obs: torch.Tensor) -> PolicyOutput:  # outputs that are views of the input
        return PolicyOutput(torch.zeros(len(obs), 2), obs[:, 0])

    env = InPlaceEnv()
    collect_rollout(env, view, buf, env.obs, gen)
    assert buf.values[:, 0].tolist() == [0.0, 1.0, 2.0, 3.0]  # V(s_t) stored before the step


# ----------------------------------------------------------------------------- loss
def test_clipped_loss_hand_computed() -> None:
    # sample 0: pi(a=0) = 0.5, behaviour 0.25 -> ratio 2, clipped to 1.2 with A = +1
    # sample 1: pi(a=0) = 0.75 = behaviour -> ratio 1 with A = -1
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    actions = torch.tensor([0, 0])
    old_logprobs = torch.log(torch.tensor([0.25, 0.75]))
    values = torch.tensor([1.0, 0.0])
    old_values = torch.tensor([0.5, 0.0])
    advantages = torch.tensor([1.0, -1.0])
    returns = torch.tensor([2.0, 1.0])
    out = ppo_loss(
        logits, values, actions, old_logprobs, old_values, advantages, returns,
        clip_coef=0.2, vf_coef=0.5, ent_coef=0.01, clip_vloss=True, norm_adv=False,
    )  # fmt: skip
    # policy: mean(max(-1 * 2, -1 * 1.2), max(1 * 1, 1 * 1)) = mean(-1.2, 1) = -0.1
    assert out.policy.item() == pytest.approx(-0.1)
    # value: V_clip(0) = 0.5 + clip(0.5, -0.2, 0.2) = 0.7 -> max(1, 1.69) = 1.69;
    # sample 1: max(1, 1) = 1 -> 0.5 * mean(1.69, 1) = 0.6725
    assert out.value.item() == pytest.approx(0.6725)
    # entropy: mean(ln 2, -(0.75 ln 0.75 + 0.25 ln 0.25)) = mean(0.693147, 0.562335)
    assert out.entropy.item() == pytest.approx(0.6277411, abs=1e-6)
    assert out.approx_kl.item() == pytest.approx(((2 - 1) - math.log(2)) / 2)
    assert out.clipfrac.item() == pytest.approx(0.5)
    assert out.loss.item() == pytest.approx(-0.1 - 0.01 * 0.6277411 + 0.5 * 0.6725, abs=1e-6)

    unclipped = ppo_loss(
        logits, values, actions, old_logprobs, old_values, advantages, returns,
        clip_coef=0.2, vf_coef=0.5, ent_coef=0.0, clip_vloss=False, norm_adv=False,
    )  # fmt: skip
    assert unclipped.value.item() == pytest.approx(0.5 * (1 + 1) / 2)


def test_the_lower_clips_hold_by_hand() -> None:
    """The tests above reach only the upper clips (ratio 2 with A > 0, V - V_old = +0.5): a
    clamp with no lower bound passed them (found by review). pi(a=0) = 0.25 against a
    behaviour of 0.5 is a ratio of 0.5, with A = -1: max(-(-1) 0.5, -(-1) clip(0.5, 0.8, 1.2))
    = max(0.5, 0.8) = 0.8, flat in the logits. V = 0 from V_old = 0.5 with R = -1: V_clip =
    0.5 + clip(-0.5, -0.2, 0.2) = 0.3, max((0 + 1)^2, (0.3 + 1)^2) = 1.69, times 0.5."""
    logits = torch.tensor([[0.0, math.log(3.0)]], requires_grad=True)
    out = ppo_loss(
        logits, torch.zeros(1), torch.tensor([0]), torch.log(torch.tensor([0.5])),
        torch.tensor([0.5]), torch.tensor([-1.0]), torch.tensor([-1.0]),
        clip_coef=0.2, vf_coef=0.5, ent_coef=0.0, norm_adv=False,
    )  # fmt: skip
    assert out.policy.item() == pytest.approx(0.8)
    assert out.value.item() == pytest.approx(0.5 * 1.69)
    out.policy.backward()
    assert logits.grad is not None and torch.count_nonzero(logits.grad) == 0


def test_clipped_ratio_gives_no_policy_gradient() -> None:
    # ratio 2 with A > 0 is clipped: the surrogate is flat in the logits there
    logits = torch.zeros(1, 2, requires_grad=True)
    out = ppo_loss(
        logits, torch.zeros(1), torch.tensor([0]), torch.log(torch.tensor([0.25])),
        torch.zeros(1), torch.ones(1), torch.zeros(1),
        clip_coef=0.2, vf_coef=0.0, ent_coef=0.0, norm_adv=False,
    )  # fmt: skip
    out.loss.backward()
    assert logits.grad is not None and torch.count_nonzero(logits.grad) == 0


def test_advantage_normalisation() -> None:
    a = normalise_advantages(torch.tensor([1.0, 2.0, 3.0]))
    torch.testing.assert_close(a, torch.tensor([-1.0, 0.0, 1.0]), atol=1e-6, rtol=0)
    assert normalise_advantages(torch.tensor([5.0])).item() == 0.0  # no NaN from std of 1


# ----------------------------------------------------------------------------- schedule etc.
def test_linear_lr_schedule() -> None:
    got = [linear_lr(1e-3, u, 4) for u in range(1, 5)]
    assert got == pytest.approx([1e-3, 7.5e-4, 5e-4, 2.5e-4])


def test_minibatches_partition_the_batch() -> None:
    rng = np.random.default_rng(0)
    parts = list(minibatches(rng, 12, 3))
    assert [len(p) for p in parts] == [4, 4, 4]
    assert sorted(torch.cat(parts).tolist()) == list(range(12))
    again = list(minibatches(np.random.default_rng(0), 12, 3))
    assert all(torch.equal(a, b) for a, b in zip(parts, again, strict=True))


def test_sample_actions_seeded_and_refuses_nan() -> None:
    logits = torch.tensor([[0.0, 1.0, 2.0]] * 64)
    a1, lp1 = sample_actions(logits, torch.Generator().manual_seed(3))
    a2, lp2 = sample_actions(logits, torch.Generator().manual_seed(3))
    assert torch.equal(a1, a2) and torch.equal(lp1, lp2)
    torch.testing.assert_close(lp1, torch.log_softmax(logits, -1).gather(1, a1[:, None])[:, 0])
    with pytest.raises(TrainingError, match="non-finite"):
        sample_actions(torch.tensor([[0.0, float("nan")]]), torch.Generator())
    # and drawn from softmax(logits): 40,000 draws put each action's share within 0.01 (the
    # binomial std is <= 0.0025); argmax or uniform draws with matching log-probs would not
    many = torch.tensor([[0.0, 1.0, 2.0], [1.5, -1.0, 0.5]]).repeat(20_000, 1)
    drawn, _ = sample_actions(many, torch.Generator().manual_seed(4))
    for row in (0, 1):
        share = torch.bincount(drawn[row::2], minlength=3).double() / 20_000
        torch.testing.assert_close(share, torch.softmax(many[row].double(), -1), rtol=0, atol=0.01)


# ----------------------------------------------------------------------------- train/ppo.py
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


def test_reward_clipping_takes_the_sign_not_a_clamp() -> None:
    """a2d_evo/train/ppo.py RolloutBuffer.advantages: ``reward_clip`` gives GAE sign(r), so a
    reward of 0.5 counts as 1 (Atari's clipping). Mutant let through: ``torch.sign`` made
    ``torch.clamp(r, -1, 1)``, the same on the covering test's integer rewards (5, -3, 0)
    but 0.5 where the sign is 1."""
    from a2d_evo.train.ppo import RolloutBuffer

    buf = RolloutBuffer(3, 1, (1,), np.float32)
    buf.rewards[:, 0] = torch.tensor([0.5, -0.25, 2.0])
    adv, _ = buf.advantages(0.5, 1.0, reward_clip=True)
    # zero values, no ends, gamma 0.5, lambda 1: A_t = sign(r_t) + 0.5 A_{t+1}:
    # A_2 = 1, A_1 = -1 + 0.5 = -0.5, A_0 = 1 - 0.25 = 0.75 (a clamp: 1, 0.25, 0.625)
    assert adv[:, 0].tolist() == pytest.approx([0.75, -0.5, 1.0], abs=1e-7)


def test_the_buffers_advantages_stop_the_trace_at_a_truncation() -> None:
    """a2d_evo/train/ppo.py RolloutBuffer.advantages: GAE's trace stops at ``dones`` (ended
    for any reason), not at ``terminated`` only. Mutant let through: the buffer handing
    ``self.terminated`` as the dones, after which a truncated episode's advantages took in
    the next episode's rewards (the covering tests call compute_gae directly)."""
    from a2d_evo.train.ppo import RolloutBuffer

    buf = RolloutBuffer(3, 1, (1,), np.float32)
    buf.rewards[:, 0] = 1.0
    buf.dones[1, 0] = 1.0  # truncated after step 1: next_values[1] = V(final_obs) = 0 here
    adv, ret = buf.advantages(0.5, 1.0)
    # A_2 = 1; A_1 = 1 (the trace stops); A_0 = 1 + 0.5 * 1 = 1.5
    # (across the boundary: A_1 = 1.5, A_0 = 1.75)
    assert adv[:, 0].tolist() == pytest.approx([1.5, 1.0, 1.0])
    assert torch.equal(ret, adv)  # zero values


def test_two_advantages_are_normalised_not_only_centred() -> None:
    """a2d_evo/train/ppo.py normalise_advantages: only a single sample is left unscaled; two
    get unit (unbiased) std. Mutant let through: ``numel() < 2`` made ``<= 2``, which only
    centred a minibatch row pair (e.g. a subnet's two own rows): [-1, 1] for [1, 3]."""
    from a2d_evo.train.ppo import normalise_advantages

    # mean 2, unbiased std sqrt(((-1)^2 + 1^2) / 1) = sqrt(2): -1 / sqrt(2) = -0.7071068
    got = normalise_advantages(torch.tensor([1.0, 3.0]))
    assert got.tolist() == pytest.approx([-1 / math.sqrt(2), 1 / math.sqrt(2)], abs=1e-6)


def test_equal_advantages_normalise_to_zeros_not_nan() -> None:
    """a2d_evo/train/ppo.py normalise_advantages: advantages that are all equal (std 0, e.g.
    a minibatch of one constant-reward env) give zeros. Mutant let through: dropping the
    ``+ 1e-8``: 0 / 0, NaN advantages and a NaN loss that stops the training."""
    from a2d_evo.train.ppo import normalise_advantages

    assert normalise_advantages(torch.tensor([2.0, 2.0, 2.0])).tolist() == [0.0, 0.0, 0.0]


def test_ppo_loss_on_hands_the_behaviour_values_as_the_clip_centre() -> None:
    """a2d_evo/train/ppo.py ppo_loss_on: the minibatch's ``values`` (the behaviour policy's)
    are the centre of the value clipping, and the coefficients are the config's. Mutant let
    through: ``mb.returns`` handed as the old values (the covering tests compare
    ppo_loss_on only with itself): the clip then centred on the target itself."""
    from a2d_evo.train.ppo import ppo_loss_on

    cfg = PPOConfig(clip_coef=0.2, vf_coef=0.5, ent_coef=0.01, norm_adv=False)
    out = PolicyOutput(torch.zeros(1, 2), torch.tensor([1.0]))
    mb = Batch(obs=torch.zeros(1, 1), actions=torch.tensor([0]),
               logprobs=torch.log(torch.tensor([0.25])), values=torch.tensor([0.5]),
               advantages=torch.tensor([1.0]), returns=torch.tensor([2.0]))  # fmt: skip
    got = ppo_loss_on(out, mb, cfg)
    # ratio 0.5 / 0.25 = 2 with A = 1: max(-2, -1.2) = -1.2
    # V = 1 from V_old = 0.5, R = 2: V_clip = 0.5 + clip(0.5, -0.2, 0.2) = 0.7:
    # 0.5 * max((1 - 2)^2, (0.7 - 2)^2) = 0.5 * 1.69 = 0.845 (centred on R: 0.5 * 1 = 0.5)
    assert got.policy.item() == pytest.approx(-1.2)
    assert got.value.item() == pytest.approx(0.845)
    assert got.loss.item() == pytest.approx(-1.2 - 0.01 * math.log(2) + 0.5 * 0.845, abs=1e-6)
