"""The A2D terms against hand-computed values, the vanilla switch, the value units."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from a2d_evo.config import DistillConfig, PPOConfig
from a2d_evo.errors import TrainingError
from a2d_evo.nets.agent import PolicyOutput
from a2d_evo.train.distill import (
    distill_actor_loss,
    distill_coefs,
    distill_critic_loss,
    distill_loss,
    in_value_units,
    sigma_from_rms,
)
from a2d_evo.train.ppo import Batch, ppo_loss_on


def test_kl_hand_computed() -> None:
    teacher = torch.tensor([[0.0, 0.0]])  # uniform
    student = torch.tensor([[math.log(3.0), 0.0]])  # (0.75, 0.25)
    # KL(u || s) = 0.5 ln(0.5 / 0.75) + 0.5 ln(0.5 / 0.25) = 0.5 ln(4/3)
    assert distill_actor_loss(student, teacher).item() == pytest.approx(0.5 * math.log(4 / 3))
    # the direction matters: KL(s || u) = 0.75 ln 1.5 + 0.25 ln 0.5
    assert distill_actor_loss(teacher, student).item() == pytest.approx(
        0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    )


def test_kl_temperature_scales_the_teacher_only() -> None:
    # teacher logits (2 ln 3, 0) at temperature 2 are softmax(ln 3, 0) = (0.75, 0.25)
    teacher = torch.tensor([[2 * math.log(3.0), 0.0]])
    student = torch.tensor([[math.log(3.0), 0.0]])
    assert distill_actor_loss(student, teacher, temperature=2.0).item() == pytest.approx(
        0, abs=1e-7
    )
    # at T = 1 the teacher is softmax(2 ln 3, 0) = (0.9, 0.1) against the student's
    # (0.75, 0.25): 0.9 ln(0.9 / 0.75) + 0.1 ln(0.1 / 0.25) = 0.072460
    assert distill_actor_loss(student, teacher, temperature=1.0).item() == pytest.approx(
        0.072460, abs=1e-6
    )
    # a uniform student against the tempered teacher (0.75, 0.25): 0.75 ln 1.5 + 0.25 ln 0.5
    # = 0.130812, no T**2 factor (the KL itself; a review found a scaled one would pass)
    uniform = torch.zeros(1, 2)
    assert distill_actor_loss(uniform, teacher, temperature=2.0).item() == pytest.approx(
        0.130812, abs=1e-6
    )


def test_kl_zero_when_student_equals_teacher() -> None:
    logits = torch.randn(16, 6, generator=torch.Generator().manual_seed(0))
    assert distill_actor_loss(logits, logits.clone()).item() == pytest.approx(0.0, abs=1e-6)
    assert distill_actor_loss(logits + 5.0, logits).item() == pytest.approx(0.0, abs=1e-6)


def test_critic_term_hand_computed() -> None:
    # ((1 - 0)^2 + (2 - 4)^2) / 2 = 2.5
    assert distill_critic_loss(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 4.0])).item() == 2.5


def _minibatch(teacher: bool) -> tuple[PolicyOutput, Batch]:
    g = torch.Generator().manual_seed(1)
    n, a = 8, 3
    logits = torch.randn(n, a, generator=g, requires_grad=True)
    values = torch.randn(n, generator=g, requires_grad=True)
    mb = Batch(
        obs=torch.zeros(n, 4),
        actions=torch.randint(0, a, (n,), generator=g),
        logprobs=torch.log_softmax(torch.randn(n, a, generator=g), -1)[:, 0],
        values=torch.randn(n, generator=g),
        advantages=torch.randn(n, generator=g),
        returns=torch.randn(n, generator=g),
        teacher_logits=torch.randn(n, a, generator=g) if teacher else None,
        teacher_values=torch.randn(n, generator=g) if teacher else None,
    )
    return PolicyOutput(logits, values), mb


def test_vanilla_switch_is_exactly_ppo() -> None:
    ppo = PPOConfig()
    for with_teacher in (False, True):
        out, mb = _minibatch(with_teacher)
        if with_teacher:  # even a broken teacher cannot leak into the vanilla loss
            mb = mb._replace(teacher_logits=torch.full_like(mb.teacher_logits, float("nan")))
        d = distill_loss(out, mb, ppo, alpha=0.0, beta=0.0)
        assert torch.equal(d.loss, ppo_loss_on(out, mb, ppo).loss)


def test_distill_loss_adds_weighted_terms() -> None:
    ppo = PPOConfig()
    out, mb = _minibatch(True)
    d = distill_loss(out, mb, ppo, alpha=0.7, beta=0.3, temperature=1.5)
    kl = distill_actor_loss(out.logits, mb.teacher_logits, 1.5)
    mse = distill_critic_loss(out.value, mb.teacher_values)
    expected = ppo_loss_on(out, mb, ppo).loss + 0.7 * kl + 0.3 * mse
    torch.testing.assert_close(d.loss, expected)
    torch.testing.assert_close(d.actor, kl)
    torch.testing.assert_close(d.critic, mse)


def test_distill_without_teacher_outputs_is_refused() -> None:
    out, mb = _minibatch(False)
    with pytest.raises(TrainingError, match="teacher"):
        distill_loss(out, mb, PPOConfig(), alpha=1.0, beta=0.0)


def test_distill_coefs_schedule() -> None:
    assert distill_coefs(DistillConfig(alpha=1.0, beta=0.5), 0.9) == (1.0, 0.5)
    lin = DistillConfig(alpha=1.0, beta=0.5, anneal="linear", final_fraction=0.2)
    assert distill_coefs(lin, 0.0) == pytest.approx((1.0, 0.5))
    assert distill_coefs(lin, 0.5) == pytest.approx((0.6, 0.3))  # 1 - 0.5 * 0.8
    assert distill_coefs(lin, 1.0) == pytest.approx((0.2, 0.1))


# ----------------------------------------------------------------------------- own rows
OWN = torch.tensor([True, True, False, True, False, False, True, False])


def _grads(own: torch.Tensor | None, alpha: float, beta: float) -> tuple[Tensor, Tensor]:
    out, mb = _minibatch(True)
    distill_loss(out, mb, PPOConfig(), alpha, beta, own=own, own_share=0.5).loss.backward()
    assert out.logits.grad is not None and out.value.grad is not None
    return out.logits.grad, out.value.grad


def test_rows_of_another_subnet_give_no_ppo_gradient() -> None:
    """The documented estimator: PPO uses a subnet's own rows only."""
    g_logits, g_values = _grads(OWN, alpha=0.0, beta=0.0)
    assert torch.all(g_logits[~OWN] == 0) and torch.all(g_values[~OWN] == 0)
    assert torch.all(g_logits[OWN].abs().sum(-1) > 0) and torch.all(g_values[OWN] != 0)


def test_own_rows_loss_is_ppo_on_those_rows_and_distillation_on_all() -> None:
    out, mb = _minibatch(True)
    # 4 own rows of 8 where a quarter of the rollout is the subnet's: twice the expected count
    d = distill_loss(out, mb, PPOConfig(), 0.7, 0.3, own=OWN, own_share=0.25)
    on_own = PolicyOutput(out.logits[OWN], out.value[OWN])
    expected = (
        2.0 * ppo_loss_on(on_own, mb.take(OWN), PPOConfig()).loss
        + 0.7 * distill_actor_loss(out.logits, mb.teacher_logits)
        + 0.3 * distill_critic_loss(out.value, mb.teacher_values)
    )
    torch.testing.assert_close(d.loss, expected)
    # the distillation terms reach every row, the other subnet's rows included
    g_logits, g_values = _grads(OWN, alpha=0.7, beta=0.3)
    assert torch.all(g_logits[~OWN].abs().sum(-1) > 0) and torch.all(g_values[~OWN] != 0)


def test_the_own_rows_loss_is_linear_in_the_rows() -> None:
    """DDP averages equal shards: the loss on 8 rows is the mean of the losses on 4 + 4."""
    out, mb = _minibatch(True)
    ppo = PPOConfig(norm_adv=False)  # the learners normalise advantages over the whole minibatch
    whole = distill_loss(out, mb, ppo, 0.7, 0.3, own=OWN, own_share=0.5).loss
    halves = [
        distill_loss(
            PolicyOutput(out.logits[idx], out.value[idx]), mb.take(idx), ppo, 0.7, 0.3,
            own=OWN[idx], own_share=0.5,
        ).loss
        for idx in (torch.arange(4), torch.arange(4, 8))
    ]  # fmt: skip
    torch.testing.assert_close(whole, (halves[0] + halves[1]) / 2)


def test_a_minibatch_without_own_rows_has_no_ppo_term() -> None:
    none = torch.zeros(8, dtype=torch.bool)
    out, mb = _minibatch(True)
    d = distill_loss(out, mb, PPOConfig(), 0.0, 0.0, own=none, own_share=0.5)
    assert d.loss.item() == 0.0 and torch.isfinite(d.ppo.policy)
    d = distill_loss(out, mb, PPOConfig(), 0.5, 0.0, own=none, own_share=0.5)
    torch.testing.assert_close(d.loss, 0.5 * distill_actor_loss(out.logits, mb.teacher_logits))


def test_own_rows_need_their_share() -> None:
    out, mb = _minibatch(True)
    for share in (None, 0.0, 1.5):
        with pytest.raises(ValueError, match="share of the rollout"):
            distill_loss(out, mb, PPOConfig(), 0.0, 0.0, own=OWN, own_share=share)


# ----------------------------------------------------------------------------- value units
def test_value_scale_is_the_rms_or_one() -> None:
    from a2d_evo.scale.ddp import DistContext, global_rms

    values = torch.tensor([3.0, -4.0, 3.0, -4.0])  # RMS sqrt((9 + 16) / 2) = 3.5355
    assert global_rms(values, DistContext()) == pytest.approx(math.sqrt(12.5))
    assert sigma_from_rms(math.sqrt(12.5)) == pytest.approx(3.5355, abs=1e-4)
    assert sigma_from_rms(0.0) == 1.0 and sigma_from_rms(float("nan")) == 1.0


def test_in_value_units_divides_every_value_target() -> None:
    mb = Batch(
        torch.zeros(2, 4), torch.zeros(2, dtype=torch.long), torch.zeros(2),
        torch.tensor([2.0, 4.0]), torch.tensor([1.0, -1.0]), torch.tensor([6.0, 8.0]),
        torch.zeros(2, 2), torch.tensor([10.0, -2.0]),
    )  # fmt: skip
    scaled = in_value_units(mb, 2.0)
    assert scaled.values.tolist() == [1.0, 2.0]
    assert scaled.returns.tolist() == [3.0, 4.0]
    assert scaled.teacher_values is not None and scaled.teacher_values.tolist() == [5.0, -1.0]
    # advantages too: with ppo.norm_adv off the policy term would otherwise scale with the
    # task's rewards against value terms in units of sigma (normalising undoes the division)
    assert scaled.advantages.tolist() == [0.5, -0.5]
    # the critic term on V / sigma is the raw one over sigma^2: 0.5 * ((2-10)^2 + (4+2)^2) / 4
    out = PolicyOutput(torch.zeros(2, 2), mb.values / 2.0)
    d = distill_loss(out, scaled, PPOConfig(), 0.0, 1.0)
    assert float(d.critic) == pytest.approx(0.5 * (64 + 36) / 4)


# ----------------------------------------------------------------------------- train/distill.py
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


def test_a_minibatch_without_own_rows_keeps_the_loss_in_the_graph() -> None:
    """a2d_evo/train/distill.py distill_loss: a network none of whose rows are in the
    minibatch (vanilla arm) has a zero loss still in its graph: it back-propagates, zero
    gradients on its outputs. Mutant let through: the zero detached, whose backward raises
    (the covering test only reads its value)."""
    from a2d_evo.train.distill import distill_loss

    logits = torch.randn(4, 3, requires_grad=True)
    values = torch.randn(4, requires_grad=True)
    mb = Batch(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long), torch.zeros(4),
               torch.zeros(4), torch.ones(4), torch.ones(4))  # fmt: skip
    d = distill_loss(PolicyOutput(logits, values), mb, PPOConfig(), 0.0, 0.0,
                     own=torch.zeros(4, dtype=torch.bool), own_share=0.5)  # fmt: skip
    assert d.loss.item() == 0.0 and d.loss.requires_grad
    d.loss.backward()
    assert logits.grad is not None and values.grad is not None
    assert torch.count_nonzero(logits.grad) == 0 and torch.count_nonzero(values.grad) == 0


def test_an_infinite_rms_is_no_value_scale() -> None:
    """a2d_evo/train/distill.py sigma_from_rms: an infinite RMS (teacher values whose
    squares overflow float32) gives sigma 1, as a NaN does. Mutant let through: dropping
    ``np.isfinite(rms)``: sigma = inf, every value target / inf = 0."""
    from a2d_evo.train.distill import sigma_from_rms

    assert sigma_from_rms(float("inf")) == 1.0
    assert sigma_from_rms(float("nan")) == 1.0
    assert sigma_from_rms(2.5) == 2.5


def test_half_a_teachers_outputs_is_refused_by_name() -> None:
    """a2d_evo/train/distill.py distill_loss: distillation (alpha > 0) needs both the
    teacher's logits and values; a minibatch with one of them is the TrainingError naming
    the teacher. Mutant let through: ``or`` made ``and`` in the missing-outputs test, after
    which the critic term hit ``None.float()`` (a bare AttributeError)."""
    from a2d_evo.errors import TrainingError
    from a2d_evo.train.distill import distill_loss

    out = PolicyOutput(torch.zeros(2, 2), torch.zeros(2))
    mb = Batch(torch.zeros(2, 2), torch.zeros(2, dtype=torch.long), torch.zeros(2),
               torch.zeros(2), torch.ones(2), torch.ones(2),
               teacher_logits=torch.zeros(2, 2))  # fmt: skip
    with pytest.raises(TrainingError, match="needs the teacher's outputs"):
        distill_loss(out, mb, PPOConfig(), 1.0, 0.0)
