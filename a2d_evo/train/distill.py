"""The A2D distillation terms, their schedule, and the subnets an update trains.

Auto-Agent-Distiller (Fu, Yu, Zhang, Lin, 2020) distils both the teacher's actor and its
critic into the student while searching, which is what keeps weight-sharing NAS stable
under RL's training variance. For a subnet ``s`` on a minibatch ``B``, of which ``B_s`` are
the rows ``s`` collected itself (a share ``q_s`` of the rollout)::

    L(s) = L_PPO(s; B_s) * |B_s| / (q_s |B|)
           + alpha * KL(pi_T(.|x) || pi_s(.|x)) + beta * (V_s(x) - V_T(x))^2   (x in B)

with ``pi_T = softmax(teacher_logits / temperature)`` (the student's logits are not
scaled): PPO on the subnet's own rows, the supervised distillation terms on every row.
``alpha = beta = 0`` is the "vanilla one-shot" ablation: the loss is then exactly PPO's and
no teacher is loaded. Each update trains the subnets that collected its rollout, the largest,
the smallest and random ones (the sandwich rule of BigNAS / once-for-all), and sums their
gradients into one optimiser step.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from a2d_evo.config import DistillConfig, PPOConfig
from a2d_evo.errors import TrainingError
from a2d_evo.nets.agent import PolicyOutput
from a2d_evo.nets.space import Arch, SearchSpace
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


# ----------------------------------------------------------------------------- schedule
def distill_coefs(cfg: DistillConfig, progress: float) -> tuple[float, float]:
    """``(alpha, beta)`` at training ``progress`` in [0, 1]: constant, or linear from the
    configured values down to ``final_fraction`` of them at the end."""
    if cfg.anneal == "none":
        return cfg.alpha, cfg.beta
    frac = 1.0 - min(max(progress, 0.0), 1.0) * (1.0 - cfg.final_fraction)
    return cfg.alpha * frac, cfg.beta * frac


# ----------------------------------------------------------------------------- sampling
def sample_distinct(
    space: SearchSpace, rng: np.random.Generator, k: int, exclude: list[Arch]
) -> list[Arch]:
    """``k`` random archs, distinct from each other and from ``exclude``, drawn with ``rng``.

    Draws are uniform per gene (:meth:`SearchSpace.sample`). A space too small to hold that
    many distinct archs yields fewer after a bounded number of tries.
    """
    seen = {space.key(space.encode(a)) for a in exclude}
    out: list[Arch] = []
    tries = 0
    while len(out) < k and tries < 100 * (k + 1):
        tries += 1
        x = space.sample_encodings(rng, 1)[0]
        key = space.key(x)
        if key not in seen:
            seen.add(key)
            out.append(space.decode(x))
    return out


def sandwich(space: SearchSpace, rng: np.random.Generator, k: int) -> list[Arch]:
    """The sandwich rule: ``[largest, smallest, k distinct random archs]``."""
    ends = [space.largest(), space.smallest()]
    if space.key(space.encode(ends[0])) == space.key(space.encode(ends[1])):
        ends = ends[:1]
    return ends + sample_distinct(space, rng, k, ends)


def rollout_assignment(
    space: SearchSpace, rng: np.random.Generator, n_subnets: int, num_envs: int
) -> tuple[list[Arch], list[int]]:
    """Subnets that act in one rollout and how many contiguous env slots each gets.

    The first ``min(n_subnets, num_envs)`` entries of ``[largest, smallest, random...]``
    (distinct), with the ``num_envs`` slots split as evenly as possible in that order
    (``np.array_split``): subnet ``i`` acts in slots ``sum(sizes[:i]) .. sum(sizes[:i+1])``.
    """
    n = max(1, min(n_subnets, num_envs))
    archs = sandwich(space, rng, max(0, n - 2))[:n]
    sizes = [len(c) for c in np.array_split(np.arange(num_envs), len(archs))]
    return archs, sizes


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
