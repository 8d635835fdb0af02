"""What a stage plugs into the PPO loop: who acts, and the loss of one minibatch.

A :class:`Learner` holds the network its forwards go through: the plain model alone, or
its DDP wrapper under torchrun (:func:`a2d_evo.scale.ddp.wrap_model`, done by the stage).
The wrapper carries the distributed context, so a learner normalises advantages over the
global minibatch exactly when it trains inside DDP (:func:`normalised`).
:class:`AgentLearner` is one static agent: plain PPO (the teacher, the ``ppo`` baselines)
or PPO + A2D distillation (fine-tuning, the ``a2d`` baselines), which works on values in
units of sigma (:func:`~a2d_evo.train.distill.in_value_units`).
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import Tensor, nn

from a2d_evo.config import Config, replace
from a2d_evo.errors import FormatError
from a2d_evo.nets.agent import PolicyOutput
from a2d_evo.scale import ddp
from a2d_evo.train.distill import (
    DistillLoss,
    distill_coefs,
    distill_loss,
    in_value_units,
    sigma_from_rms,
    with_teacher,
)
from a2d_evo.train.ppo import Batch, Policy, normalise_advantages


class Learner(Protocol):
    """What a stage plugs into :func:`a2d_evo.train.loop.run_ppo`."""

    @property
    def model(self) -> nn.Module:
        """The network forwards go through (the DDP wrapper under torchrun): its parameters
        are optimised, and :func:`~a2d_evo.scale.ddp.unwrap_model` of it is checkpointed."""
        ...

    def policy(self, update: int) -> Policy:
        """The behaviour policy over all env slots for the rollout of ``update``."""
        ...

    def prepare(self, batch: Batch) -> Batch:
        """Add what the loss needs beyond the rollout (e.g. the teacher's outputs)."""
        ...

    def loss(self, mb: Batch, progress: float) -> tuple[Tensor, dict[str, Tensor]]:
        """The loss to minimise on one minibatch and the scalars to log (``losses/<key>``)."""
        ...

    def state(self) -> dict[str, Any]:
        """Plain data the checkpoint keeps beside the model (e.g. the value scale)."""
        ...

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state` on ``--resume``."""
        ...


def first_rollout_scale(values: Tensor, ctx: ddp.DistContext) -> float:
    """sigma of a run: the root mean square of ``values`` (the teacher's, on the first
    rollout) over every rank's rows; see :func:`~a2d_evo.train.distill.sigma_from_rms`."""
    return sigma_from_rms(ddp.global_rms(values, ctx))


def normalised(mb: Batch, ctx: ddp.DistContext) -> Batch:
    """``mb`` with its advantages at zero mean and unit std over the GLOBAL minibatch.

    Alone that is :func:`~a2d_evo.train.ppo.normalise_advantages`; under DDP the moments
    cover every rank's rows (as SyncBatchNorm does), so a DDP update equals the
    single-process one. Collective under DDP: every rank calls it equally often.
    """
    if ctx.enabled:
        return mb._replace(advantages=ddp.normalise_advantages_global(mb.advantages, ctx))
    return mb._replace(advantages=normalise_advantages(mb.advantages))


def normalised_per_actor(mb: Batch, n_actors: int, ctx: ddp.DistContext) -> Batch:
    """``mb`` with each acting subnet's advantages at zero mean and unit std over its own rows.

    Each subnet's PPO terms use only its own rows, so its advantages are normalised over
    those rows (as single-policy PPO normalises over its minibatch): a subnet whose critic is
    biased keeps no non-zero mean advantage that would push up every action it took. Under
    DDP the moments cover every rank's rows (one collective). A subnet with fewer than 2 rows
    is only centred.
    """
    assert mb.actor is not None, "rows must be tagged with their acting subnet"
    adv = ddp.normalise_advantages_global(mb.advantages, ctx, mb.actor, n_actors)
    return mb._replace(advantages=adv)


class AgentLearner:
    """One static agent: plain PPO (the teacher), or PPO + distillation (fine-tuning).

    With a teacher, PPO's value loss and the critic distillation work on ``V / sigma``, sigma
    set once from the teacher's values on the first rollout and kept in the checkpoint; the
    agent's own value head stays in raw units (what it ships with)."""

    def __init__(self, agent: nn.Module, cfg: Config, teacher: nn.Module | None = None) -> None:
        self.model = agent
        """The agent, or its DDP wrapper."""
        self.cfg = cfg
        self.teacher = teacher
        self.sigma: float | None = None
        """The value unit (distilled learners): None until the first rollout is prepared."""
        # advantages are normalised in loss() (globally under DDP), not inside ppo_loss
        vf = cfg.ppo.vf_coef if teacher is None else cfg.distill.vf_coef
        self._ppo = replace(cfg.ppo, norm_adv=False, vf_coef=vf)

    def policy(self, update: int) -> Policy:
        # the bare agent: a DDP forward syncs buffers across ranks, and the truncation rows'
        # extra forward runs on the ranks that saw one only (rollouts take no gradient)
        return ddp.unwrap_model(self.model)

    def prepare(self, batch: Batch) -> Batch:
        if self.teacher is None:
            return batch
        batch = with_teacher(batch, self.teacher)
        if self.sigma is None:
            assert batch.teacher_values is not None
            self.sigma = first_rollout_scale(batch.teacher_values, ddp.context_of(self.model))
        return batch

    def scaled(self, out: PolicyOutput, mb: Batch) -> tuple[PolicyOutput, Batch]:
        """``out`` and ``mb`` in value units of sigma (unchanged for plain PPO)."""
        if self.teacher is None:
            return out, mb
        sigma = self.sigma
        assert sigma is not None, "prepare() sets sigma before the first loss"
        return PolicyOutput(out.logits, out.value / sigma), in_value_units(mb, sigma)

    def loss(self, mb: Batch, progress: float) -> tuple[Tensor, dict[str, Tensor]]:
        alpha, beta = (
            (0.0, 0.0) if self.teacher is None else distill_coefs(self.cfg.distill, progress)
        )
        out, mb = self.scaled(self.model(mb.obs), mb)
        if self.cfg.ppo.norm_adv:
            mb = normalised(mb, ddp.context_of(self.model))
        d = distill_loss(out, mb, self._ppo, alpha, beta, self.cfg.distill.temperature)
        return d.loss, loss_logs(d, alpha, beta)

    def state(self) -> dict[str, Any]:
        return {} if self.sigma is None else {"sigma": self.sigma}

    def load_state(self, state: dict[str, Any]) -> None:
        if "sigma" in state:
            sigma = state["sigma"]
            # as sigma_from_rms makes them: a number from 1e-6 up (1e300 would silence the
            # critic terms, a string was a traceback)
            if not isinstance(sigma, int | float) or isinstance(sigma, bool):
                raise FormatError(f"checkpoint: sigma {sigma!r:.40} is not a number")
            if not 1e-6 <= sigma <= 1e12:
                raise FormatError(f"checkpoint: sigma {sigma!r:.40} is not a value scale")
            self.sigma = float(sigma)


def loss_logs(d: DistillLoss, alpha: float, beta: float) -> dict[str, Tensor]:
    """The scalars of one loss, under their TensorBoard names (``losses/<key>``)."""
    p = d.ppo
    logs = {
        "policy": p.policy.detach(),
        "value": p.value.detach(),
        "entropy": p.entropy.detach(),
        "approx_kl": p.approx_kl,
        "clipfrac": p.clipfrac,
        "distill_actor": d.actor.detach(),
        "distill_critic": d.critic.detach(),
    }
    if alpha or beta:
        logs["alpha"] = torch.tensor(alpha)
        logs["beta"] = torch.tensor(beta)
    return logs
