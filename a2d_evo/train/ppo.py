"""Clipped PPO with GAE, as pieces: rollout buffer, collector, advantages, loss, schedule.

PPO: Schulman et al. 2017, "Proximal Policy Optimization Algorithms"; GAE: Schulman et al.
2016, "High-Dimensional Continuous Control Using Generalized Advantage Estimation". The
choices follow CleanRL's ``ppo.py`` / ``ppo_atari.py`` (Huang et al. 2022, "The 37
Implementation Details of PPO"): orthogonal init, per-minibatch advantage normalisation,
clipped value loss, global gradient-norm clipping, linear learning-rate annealing.

The same pieces serve a plain :class:`~a2d_evo.nets.agent.Agent` (the teacher, fine-tuning)
and the supernet (several subnets acting in the env slots of one rollout): the collector
only needs a ``policy(obs) -> PolicyOutput`` over all env slots. The training loop around
them (checkpoints, logging, signals) is :mod:`a2d_evo.train.loop`.

Array layout of one rollout, every array ``(T, N)`` for ``T = ppo.num_steps`` steps of
``N = ppo.num_envs`` envs; row ``t`` is the transition ``(s_t, a_t, r_t, s_{t+1})``:

- ``obs[t]`` = ``s_t``, ``actions[t]`` = ``a_t``, ``logprobs[t]`` = log mu(a_t|s_t) and
  ``values[t]`` = V(s_t) of the policy that acted (the behaviour policy mu);
- ``rewards[t]`` = ``r_t``, raw as the env gave it;
- ``terminated[t]``: ``s_{t+1}`` is terminal (value 0, no bootstrap);
  ``dones[t]`` = terminated or truncated: the episode ended after step ``t``;
- ``next_values[t]`` = V(s_{t+1}) of the TRUE successor: ``values[t+1]`` while the episode
  goes on, V(``final_obs``) when it was truncated at ``t`` (the env has already reset, so
  ``obs[t+1]`` is the next episode's first observation), V(obs after the last step) for
  ``t = T-1``; ignored where ``terminated[t]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from a2d_evo.errors import TrainingError
from a2d_evo.nets.agent import PolicyOutput

Policy = Callable[[Tensor], PolicyOutput]
"""Maps the observations of all env slots ``(N, *obs_shape)`` to their logits and values."""


# ----------------------------------------------------------------------------- batches
class Batch(NamedTuple):
    """Flattened rollout samples ``(B, ...)``; teacher outputs only when distilling."""

    obs: Tensor
    actions: Tensor
    logprobs: Tensor
    """log mu(a|s) of the behaviour policy (the subnet that acted)."""
    values: Tensor
    """V(s) of the behaviour policy: the centre of the value clipping."""
    advantages: Tensor
    returns: Tensor
    teacher_logits: Tensor | None = None
    teacher_values: Tensor | None = None
    actor: Tensor | None = None
    """Index of the subnet that acted in each row (supernet training; None for one agent)."""

    def take(self, idx: Tensor) -> Batch:
        """The rows ``idx`` of every tensor (a minibatch)."""
        return Batch._make(None if t is None else t[idx] for t in self)


class RolloutStats(NamedTuple):
    """Episodes that ended during one rollout (raw returns, as the env reported them)."""

    episode_returns: list[float]
    episode_lengths: list[int]


class RolloutBuffer:
    """Storage of one rollout, ``(T, N)`` per field, preallocated on the training device."""

    def __init__(
        self,
        num_steps: int,
        num_envs: int,
        obs_shape: tuple[int, ...],
        obs_dtype: Any,
        device: torch.device | str = "cpu",
    ) -> None:
        t, n = num_steps, num_envs
        dtype = torch.from_numpy(np.zeros(0, dtype=obs_dtype)).dtype
        self.num_steps, self.num_envs, self.device = t, n, torch.device(device)
        self.obs = torch.zeros((t, n, *obs_shape), dtype=dtype, device=device)
        self.actions = torch.zeros((t, n), dtype=torch.long, device=device)
        self.logprobs = torch.zeros((t, n), device=device)
        self.values = torch.zeros((t, n), device=device)
        self.rewards = torch.zeros((t, n), device=device)
        self.terminated = torch.zeros((t, n), device=device)
        self.dones = torch.zeros((t, n), device=device)
        self.next_values = torch.zeros((t, n), device=device)

    def advantages(
        self, gamma: float, lam: float, reward_clip: bool = False
    ) -> tuple[Tensor, Tensor]:
        """GAE advantages and returns of the stored rollout (rewards sign-clipped if asked)."""
        rewards = torch.sign(self.rewards) if reward_clip else self.rewards
        return compute_gae(
            rewards, self.values, self.next_values, self.terminated, self.dones, gamma, lam
        )

    def batch(self, advantages: Tensor, returns: Tensor) -> Batch:
        """The rollout flattened to ``T * N`` samples."""
        obs_shape = self.obs.shape[2:]
        return Batch(
            obs=self.obs.reshape(-1, *obs_shape),
            actions=self.actions.reshape(-1),
            logprobs=self.logprobs.reshape(-1),
            values=self.values.reshape(-1),
            advantages=advantages.reshape(-1),
            returns=returns.reshape(-1),
        )


def minibatches(rng: np.random.Generator, batch_size: int, n: int) -> Iterator[Tensor]:
    """``n`` disjoint random index sets covering ``range(batch_size)`` (one epoch)."""
    perm = torch.from_numpy(rng.permutation(batch_size))
    yield from perm.chunk(n)


# ----------------------------------------------------------------------------- GAE
def compute_gae(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    dones: Tensor,
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    """GAE(gamma, lambda) advantages and value targets (returns) over a ``(T, N)`` rollout.

    Row ``t`` is one transition (see the module docstring for how the arrays line up)::

        delta_t = r_t + gamma * next_values[t] * (1 - terminated[t]) - values[t]
        A_t     = delta_t + gamma * lam * (1 - dones[t]) * A_{t+1},    A_T = 0
        R_t     = A_t + values[t]

    A truncated episode bootstraps from V(final_obs) through ``next_values``; a terminated
    one does not bootstrap at all; in both cases the trace stops (``dones``), so no
    advantage flows across an episode boundary.
    """
    rewards, values, next_values = (
        torch.as_tensor(x).float() for x in (rewards, values, next_values)
    )
    not_term = 1.0 - torch.as_tensor(terminated).float()
    not_done = 1.0 - torch.as_tensor(dones).float()
    deltas = rewards + gamma * next_values * not_term - values
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        last = deltas[t] + gamma * lam * not_done[t] * last
        advantages[t] = last
    return advantages, advantages + values


# ----------------------------------------------------------------------------- acting
def sample_actions(logits: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Actions drawn from ``softmax(logits)`` with ``gen`` (on the CPU, so that the same
    seed gives the same random stream on every device: the same actions where the logits
    agree), and their log-probabilities."""
    if not torch.isfinite(logits).all():
        raise TrainingError("the policy produced non-finite logits; the weights have diverged")
    logp_all = torch.log_softmax(logits.float(), dim=-1)
    actions = torch.multinomial(logp_all.exp().cpu(), 1, generator=gen).squeeze(-1)
    actions = actions.to(logits.device)
    return actions, logp_all.gather(-1, actions[:, None]).squeeze(-1)


@torch.no_grad()
def collect_rollout(
    envs: Any,
    policy: Policy,
    buffer: RolloutBuffer,
    next_obs: np.ndarray,
    gen: torch.Generator,
) -> tuple[np.ndarray, RolloutStats]:
    """Step ``envs`` for ``buffer.num_steps`` steps with ``policy``; fill ``buffer``.

    ``policy`` maps all ``N`` env slots at once (for the supernet: a grouped forward in
    which each slot's subnet acts). The stored log-probs and values are the acting
    policy's, which is what PPO's ratio and value clipping need. Truncated episodes
    bootstrap from the value of ``final_obs`` under the same slot's policy. Returns the
    observation to continue from and the episodes that ended.
    """
    device = buffer.device
    returns: list[float] = []
    lengths: list[int] = []
    for t in range(buffer.num_steps):
        obs_t = torch.as_tensor(next_obs, device=device)
        # stored before the step: on CPU obs_t shares the env's array, which a backend that
        # writes its observations in place would overwrite with s_{t+1}
        buffer.obs[t] = obs_t
        out = policy(obs_t)
        actions, logprobs = sample_actions(out.logits, gen)
        # the policy's outputs too, before the step: one that is a view of obs_t would be too
        buffer.actions[t] = actions
        buffer.logprobs[t] = logprobs
        buffer.values[t] = out.value.float()
        res = envs.step(actions.cpu().numpy())
        terminated = np.asarray(res.terminated, dtype=bool)
        truncated = np.asarray(res.truncated, dtype=bool) & ~terminated
        buffer.rewards[t] = torch.as_tensor(np.asarray(res.reward, dtype=np.float32), device=device)
        buffer.terminated[t] = torch.as_tensor(terminated, dtype=torch.float32, device=device)
        buffer.dones[t] = torch.as_tensor(
            terminated | truncated, dtype=torch.float32, device=device
        )
        buffer.next_values[t] = 0.0
        if truncated.any():
            # Rows of slots that did not end hold anything in final_obs; give the policy the
            # current obs there (it needs all N rows) and keep only the truncated ones.
            mask = truncated.reshape(-1, *([1] * (np.ndim(res.obs) - 1)))
            final = np.where(mask, np.asarray(res.final_obs), np.asarray(res.obs))
            final_v = policy(torch.as_tensor(final, device=device)).value.float()
            trunc = torch.as_tensor(truncated, device=device)
            buffer.next_values[t] = torch.where(trunc, final_v, buffer.next_values[t])
        ended = ~np.isnan(np.asarray(res.episode_return, dtype=np.float64))
        returns.extend(np.asarray(res.episode_return, dtype=np.float64)[ended].tolist())
        lengths.extend(np.asarray(res.episode_length)[ended].astype(int).tolist())
        next_obs = np.asarray(res.obs)
    last_value = policy(torch.as_tensor(next_obs, device=device)).value.float()
    # next_values[t] = values[t+1] where the episode went on; the truncation rows already
    # hold V(final_obs); terminated rows are masked in compute_gae.
    following = torch.cat([buffer.values[1:], last_value[None]])
    buffer.next_values.copy_(torch.where(buffer.dones.bool(), buffer.next_values, following))
    return next_obs, RolloutStats(returns, lengths)


# ----------------------------------------------------------------------------- loss
class PPOLoss(NamedTuple):
    """The terms of the clipped PPO objective on one minibatch."""

    loss: Tensor
    """policy + vf_coef * value - ent_coef * entropy (what is minimised)."""
    policy: Tensor
    value: Tensor
    entropy: Tensor
    approx_kl: Tensor
    """k3 estimator of KL(mu || pi): mean((r - 1) - log r), detached."""
    clipfrac: Tensor
    """Fraction of samples whose ratio left [1 - clip, 1 + clip], detached."""


def normalise_advantages(advantages: Tensor) -> Tensor:
    """Zero mean, unit (unbiased) std; a single sample is only centred.

    One process's rows only: under torchrun DDP the learners normalise with the moments of
    the global minibatch instead (:func:`a2d_evo.train.learners.normalised`).
    """
    if advantages.numel() < 2:
        return advantages - advantages.mean()
    return (advantages - advantages.mean()) / (advantages.std() + 1e-8)


def explained_variance(values: Tensor, returns: Tensor) -> float:
    """``1 - Var(R - V) / Var(R)`` over a rollout, CleanRL's ``losses/explained_variance``: 1
    for a critic that predicts the returns it is trained on, 0 for one no better than their
    mean, below 0 for a worse one; NaN when the returns do not vary (then nothing to explain).
    Unitless, so it reads the same for raw values and for values in units of sigma."""
    r = returns.reshape(-1).double()
    var = float(r.var(unbiased=False))
    if not var > 0.0:
        return math.nan
    return 1.0 - float((r - values.reshape(-1).double()).var(unbiased=False)) / var


def ppo_loss(
    logits: Tensor,
    values: Tensor,
    actions: Tensor,
    old_logprobs: Tensor,
    old_values: Tensor,
    advantages: Tensor,
    returns: Tensor,
    *,
    clip_coef: float,
    vf_coef: float,
    ent_coef: float,
    clip_vloss: bool = True,
    norm_adv: bool = True,
) -> PPOLoss:
    """Clipped surrogate + (clipped) value loss - entropy bonus, as CleanRL computes them.

    ``logits``/``values`` are the learner's outputs on the minibatch; ``old_*`` are the
    behaviour policy's at collection time. With r = pi(a|s) / mu(a|s)::

        policy = mean(max(-A r, -A clip(r, 1 - c, 1 + c)))
        value  = 0.5 * mean(max((V - R)^2, (V_old + clip(V - V_old, -c, c) - R)^2))
    """
    logp_all = torch.log_softmax(logits, dim=-1)
    logprobs = logp_all.gather(-1, actions[:, None]).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1).mean()
    logratio = logprobs - old_logprobs
    ratio = logratio.exp()
    with torch.no_grad():
        approx_kl = ((ratio - 1) - logratio).mean()
        clipfrac = ((ratio - 1.0).abs() > clip_coef).float().mean()
    adv = normalise_advantages(advantages) if norm_adv else advantages
    pg1 = -adv * ratio
    pg2 = -adv * torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef)
    policy = torch.max(pg1, pg2).mean()
    unclipped = (values - returns) ** 2
    if clip_vloss:
        v_clipped = old_values + torch.clamp(values - old_values, -clip_coef, clip_coef)
        value = 0.5 * torch.max(unclipped, (v_clipped - returns) ** 2).mean()
    else:
        value = 0.5 * unclipped.mean()
    loss = policy - ent_coef * entropy + vf_coef * value
    return PPOLoss(loss, policy, value, entropy, approx_kl, clipfrac)


def ppo_loss_on(out: PolicyOutput, mb: Batch, cfg: Any) -> PPOLoss:
    """:func:`ppo_loss` of a network's output on a minibatch, coefficients from ``cfg`` (a
    :class:`~a2d_evo.config.PPOConfig`)."""
    return ppo_loss(
        out.logits,
        out.value,
        mb.actions,
        mb.logprobs,
        mb.values,
        mb.advantages,
        mb.returns,
        clip_coef=cfg.clip_coef,
        vf_coef=cfg.vf_coef,
        ent_coef=cfg.ent_coef,
        clip_vloss=cfg.clip_vloss,
        norm_adv=cfg.norm_adv,
    )


# ----------------------------------------------------------------------------- schedule
def linear_lr(base_lr: float, update: int, num_updates: int) -> float:
    """CleanRL's annealing: ``base * (1 - (update - 1) / num_updates)``, update 1-based.

    The first update uses the full rate, the last ``base / num_updates``; never zero. A
    ``--resume`` that raises ``total_steps`` passes the new ``num_updates``: the decay is
    recomputed over the new total from the current update (see :mod:`a2d_evo.train.loop`).
    """
    return base_lr * (1.0 - (update - 1.0) / num_updates)
