"""The A2D distillation terms, their schedule, and the subnets an update trains.

Auto-Agent-Distiller (Fu, Yu, Zhang, Lin, 2020) distils both the teacher's actor and its
critic into the student while searching, which is what keeps weight-sharing NAS stable
under RL's training variance. For a subnet ``s`` on a minibatch ``B``, of which ``B_s`` are
the rows ``s`` collected itself (a share ``q_s`` of the rollout)::

    L(s) = L_PPO(s; B_s) * |B_s| / (q_s |B|)
           + alpha * KL(pi_T(.|x) || pi_s(.|x)) + beta * ((V_s(x) - V_T(x)) / sigma)^2   (x in B)

with ``pi_T = softmax(teacher_logits / temperature)`` (the student's logits are not
scaled): PPO on the subnet's own rows, the supervised distillation terms on every row.
Values enter in units of ``sigma``, one fixed scale per run (the root mean square of the
teacher's values on the first rollout, :func:`sigma_from_rms`): PPO's value loss, too, works on
``V / sigma`` against ``R / sigma``, so one ``beta`` and one ``vf_coef`` serve tasks whose
returns differ by orders of magnitude. The root mean square, not the standard deviation:
values need not cross zero, and on CartPole the teacher's values on the first rollout are
about 45 with a standard deviation of 0.54 (measured), which would put the targets 80 sigma
away and drown every other term (every subnet but the largest collapsed to one action).
``alpha = beta = 0`` is the "vanilla one-shot" ablation: the loss is then exactly PPO's; a
teacher given or found in the run is still loaded, only to fix sigma (``docs/training.md``).
Each update trains the subnets that collected its rollout, the largest, the smallest and
random ones (:mod:`a2d_evo.train.sampling`), and sums their gradients into one optimiser step.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from a2d_evo.config import DistillConfig, PPOConfig
from a2d_evo.errors import TrainingError
from a2d_evo.nets.agent import PolicyOutput
from a2d_evo.train.ppo import Batch, PPOLoss, ppo_loss_on


# ----------------------------------------------------------------------------- loss terms
def distill_actor_loss(
    student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0
) -> Tensor:
    """Mean over states of KL(pi_T || pi_s), ``pi_T`` the teacher's softmax at ``temperature``."""
    log_t = torch.log_softmax(teacher_logits.float() / temperature, dim=-1)
    log_s = torch.log_softmax(student_logits, dim=-1)
    return (log_t.exp() * (log_t - log_s)).sum(-1).mean()


def distill_critic_loss(student_values: Tensor, teacher_values: Tensor) -> Tensor:
    """Mean over states of ``(V_s - V_T)^2``."""
    return ((student_values - teacher_values.float()) ** 2).mean()


class DistillLoss(NamedTuple):
    """One subnet's loss on one minibatch, with its parts."""

    loss: Tensor
    """ppo.loss + alpha * actor + beta * critic."""
    ppo: PPOLoss
    actor: Tensor
    """KL(pi_T || pi_s), detached when alpha = 0 (logged, not trained)."""
    critic: Tensor
    """(V_s - V_T)^2, detached when beta = 0."""


def distill_loss(
    out: PolicyOutput,
    mb: Batch,
    ppo: PPOConfig,
    alpha: float,
    beta: float,
    temperature: float = 1.0,
    own: Tensor | None = None,
    own_share: float | None = None,
) -> DistillLoss:
    """PPO plus the A2D terms for one network's output ``out`` on minibatch ``mb``.

    ``own`` (a boolean row mask) restricts the PPO terms to the rows this network collected
    itself, where its importance ratio ``pi / mu`` is the on-policy one; the distillation terms
    are supervised and use every row. ``own_share`` is the fraction of the rollout's rows that
    are the network's: the PPO terms are summed over its rows in the minibatch and divided by
    ``own_share * len(mb)``, an unbiased estimate of their mean over its rows that is linear in
    the rows (so DDP's average over equal shards equals the single-process loss).

    With ``alpha = beta = 0`` the loss is PPO's own tensor (not ``+ 0 * ...``), so the
    vanilla switch is exactly PPO even when the teacher terms would be non-finite. Without
    teacher outputs in ``mb`` only the vanilla setting is allowed.
    """
    if own is None:
        p = ppo_loss_on(out, mb, ppo)
    elif own_share is None or not 0.0 < own_share <= 1.0:
        raise ValueError(f"own rows need their share of the rollout in (0, 1], got {own_share}")
    elif bool(own.any()):
        p = ppo_loss_on(PolicyOutput(out.logits[own], out.value[own]), mb.take(own), ppo)
        scale = float(own.sum()) / (own_share * own.numel())
        p = p._replace(loss=p.loss * scale)
    else:  # none of this minibatch's rows are the network's own: no PPO term at all
        zero = (out.logits.sum() + out.value.sum()) * 0.0  # in the graph, no gradient
        p = PPOLoss(zero, zero.detach(), zero.detach(), zero.detach(), zero.detach(), zero.detach())
    if mb.teacher_logits is None or mb.teacher_values is None:
        if alpha or beta:
            raise TrainingError("distillation with alpha or beta > 0 needs the teacher's outputs")
        nan = torch.full((), float("nan"))
        return DistillLoss(p.loss, p, nan, nan)
    actor = distill_actor_loss(out.logits, mb.teacher_logits, temperature)
    critic = distill_critic_loss(out.value, mb.teacher_values)
    loss = p.loss
    if alpha:
        loss = loss + alpha * actor
    if beta:
        loss = loss + beta * critic
    return DistillLoss(
        loss, p, actor if alpha else actor.detach(), critic if beta else critic.detach()
    )


# ----------------------------------------------------------------------------- value units
def sigma_from_rms(rms: float) -> float:
    """sigma from the measured root mean square of values: the RMS itself, or 1 where it is
    no usable scale (non-finite, or below 1e-6: values that are all about zero)."""
    return rms if np.isfinite(rms) and rms >= 1e-6 else 1.0


def in_value_units(mb: Batch, sigma: float) -> Batch:
    """``mb`` with its value targets (returns, the behaviour policy's values, the teacher's
    values) and its advantages divided by ``sigma``; what a learner whose values are
    ``V / sigma`` trains on. Normalised advantages (``ppo.norm_adv``, the default) do not see
    the division; raw ones would otherwise weigh the policy term by the task's reward scale
    against value terms in units of sigma."""
    if sigma == 1.0:
        return mb
    tv = None if mb.teacher_values is None else mb.teacher_values / sigma
    return mb._replace(
        values=mb.values / sigma,
        returns=mb.returns / sigma,
        advantages=mb.advantages / sigma,
        teacher_values=tv,
    )


# ----------------------------------------------------------------------------- schedule
def distill_coefs(cfg: DistillConfig, progress: float) -> tuple[float, float]:
    """``(alpha, beta)`` at training ``progress`` in [0, 1]: constant, or linear from the
    configured values down to ``final_fraction`` of them at the end."""
    if cfg.anneal == "none":
        return cfg.alpha, cfg.beta
    frac = 1.0 - min(max(progress, 0.0), 1.0) * (1.0 - cfg.final_fraction)
    return cfg.alpha * frac, cfg.beta * frac


# ----------------------------------------------------------------------------- teacher
@torch.no_grad()
def teacher_outputs(teacher: nn.Module, obs: Tensor, chunk: int = 4096) -> PolicyOutput:
    """The teacher's logits and values on ``obs``, computed in chunks without gradients."""
    was = teacher.training
    teacher.eval()
    try:
        outs = [teacher(o) for o in obs.split(chunk)]
    finally:
        teacher.train(was)
    return PolicyOutput(
        torch.cat([o.logits.float() for o in outs]), torch.cat([o.value.float() for o in outs])
    )


def with_teacher(batch: Batch, teacher: nn.Module) -> Batch:
    """``batch`` with the teacher's logits and values on its observations."""
    out = teacher_outputs(teacher, batch.obs)
    return batch._replace(teacher_logits=out.logits, teacher_values=out.value)
