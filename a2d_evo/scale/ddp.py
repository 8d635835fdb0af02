"""torchrun DDP for supernet and teacher training: the process group, sharding and collectives.

Under ``torchrun`` (``WORLD_SIZE`` > 1) :func:`init_distributed` joins the
process group (gloo on CPU, NCCL on GPUs) and each training stage wraps its model with
:func:`wrap_model`; the wrapper carries the :class:`DistContext`, which the loop and the
losses read from it (:func:`context_of`), so no module state says "we are distributed".
Every rank owns ``ppo.num_envs / world_size`` envs and draws the same
subnets and minibatch permutations from the run's seed, so every rank trains the same
subnets and DDP's gradient average equals the gradient of the global minibatch. Rank 0
alone writes checkpoints, TensorBoard and the progress bar. :class:`DistributedError` is
shared with the Ray population evaluation in :mod:`a2d_evo.scale.ray_population`.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from a2d_evo.config import PPOConfig
from a2d_evo.errors import A2DError, ConfigError
from a2d_evo.evaluation.episodes import resolve_device

__all__ = [
    "DDPReplica",
    "DistContext",
    "DistributedError",
    "all_reduce_mean",
    "all_reduce_sum",
    "any_rank",
    "barrier",
    "check_world_size",
    "context_of",
    "init_distributed",
    "normalise_advantages_global",
    "rank_seed",
    "shard",
    "shutdown_distributed",
    "unwrap_model",
    "wrap_model",
]


class DistributedError(A2DError, RuntimeError):
    """Ray or torch.distributed cannot be used as asked (missing, unreachable, misconfigured)."""


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a torchrun job (world_size 1: a plain single process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes checkpoints, TensorBoard and the bar."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "cpu", *, timeout_s: float = 1800.0) -> DistContext:
    """This process's :class:`DistContext`; joins the process group under torchrun.

    Without ``WORLD_SIZE`` > 1 in the environment nothing is initialised. Otherwise gloo on
    CPU, NCCL on CUDA (rank ``LOCAL_RANK`` on GPU ``LOCAL_RANK``); the group is destroyed
    at exit. Idempotent: once the group exists, later calls describe it (its backend
    decides the device), whatever ``device`` they pass.
    """
    world = _env_world_size()
    if world <= 1:
        return DistContext(device=resolve_device(device))
    try:
        rank = int(os.environ["RANK"])
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
    except (KeyError, ValueError):
        raise DistributedError(
            "WORLD_SIZE > 1 but RANK/LOCAL_RANK are missing; launch with torchrun"
        ) from None
    if dist.is_initialized():
        backend = str(dist.get_backend())
        dev = torch.device("cuda", local_rank) if backend == "nccl" else torch.device("cpu")
        return DistContext(rank, world, local_rank, dev, backend)
    dev = resolve_device(device)
    if dev.type == "cuda":
        count = torch.cuda.device_count()
        if local_rank >= count:
            raise DistributedError(
                f"rank {rank} has LOCAL_RANK {local_rank} but this node has {count} GPUs; "
                "use --nproc-per-node <= the GPU count"
            )
        torch.cuda.set_device(local_rank)
        dev, backend = torch.device("cuda", local_rank), "nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    atexit.register(shutdown_distributed)
    return DistContext(rank, world, local_rank, dev, backend)


def shutdown_distributed() -> None:
    """Leave the process group (registered at exit by :func:`init_distributed`)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def _env_world_size() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def check_world_size(ppo: PPOConfig, world_size: int) -> None:
    """Raise :class:`ConfigError` unless ``world_size`` ranks can split the rollout evenly."""
    if world_size <= 1:
        return
    if ppo.num_envs % world_size:
        raise ConfigError(
            f"ppo.num_envs={ppo.num_envs} cannot be split over {world_size} ranks; "
            "use a rank count that divides it (torchrun --nproc-per-node)"
        )
    local = ppo.batch_size // world_size
    if local % ppo.num_minibatches:
        raise ConfigError(
            f"ppo.num_minibatches={ppo.num_minibatches} must divide each rank's batch "
            f"({ppo.num_envs // world_size} envs x {ppo.num_steps} steps = {local})"
        )


def shard(n: int, ctx: DistContext) -> slice:
    """This rank's contiguous share of ``n`` items (``n`` divisible by the world size)."""
    per = n // ctx.world_size
    return slice(ctx.rank * per, (ctx.rank + 1) * per)


class DDPReplica(DistributedDataParallel):
    """A model inside DDP that knows its :class:`DistContext` and passes look-ups through.

    Attributes of the model (``space``, ...) are read through the wrapper; its methods
    (``forward_groups``, ...) may run only without gradients (acting), since gradients that
    do not flow through the wrapper's ``forward`` would skip the all-reduce.
    """

    def __init__(self, model: nn.Module, ctx: DistContext) -> None:
        ids = [ctx.local_rank] if ctx.device.type == "cuda" else None
        super().__init__(model, device_ids=ids, find_unused_parameters=False)
        self.context = ctx

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "module":
                raise
        value = getattr(self.module, name)
        if not callable(value) or isinstance(value, torch.nn.Module):
            return value

        def no_grad_only(*args: Any, **kwargs: Any) -> Any:
            if torch.is_grad_enabled():
                raise DistributedError(
                    f"{name}() of a DDP-wrapped model called with gradients on: they "
                    "would skip DDP's all-reduce; call the model itself"
                )
            return value(*args, **kwargs)

        return no_grad_only


def wrap_model(model: nn.Module, ctx: DistContext) -> nn.Module:
    """``model`` in a :class:`DDPReplica` holding ``ctx``, or itself alone.

    ``find_unused_parameters`` stays off: every rank trains the same subnets, and a slice of
    a parameter gives the whole tensor a gradient (zeros outside the slice), so with the
    largest subnet in every update all parameters get one. Several forwards (the sandwich
    subnets) before one backward are fine: each parameter's gradient is reduced once.
    """
    if not ctx.enabled:
        return model
    return DDPReplica(model, ctx)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain model inside a :func:`wrap_model` wrapper (itself when not wrapped)."""
    return model.module if isinstance(model, DDPReplica) else model


def context_of(model: nn.Module) -> DistContext:
    """The context ``model`` was wrapped for; the single-process one for a plain model."""
    return model.context if isinstance(model, DDPReplica) else DistContext()


def rank_seed(root: Sequence[int], rank: int, update: int) -> int:
    """Seed of rank ``rank``'s action sampler from update ``update`` on (ranks > 0 only:
    rank 0 keeps the run's own stream, so one rank reproduces the single-process run's)."""
    ss = np.random.SeedSequence([*(int(r) for r in root), 11, int(rank), int(update)])
    return int(ss.generate_state(1, np.uint64)[0])


def all_reduce_mean(value: Any, ctx: DistContext) -> Any:
    """Mean over ranks of a float or tensor (returned as the same kind); identity alone."""
    if not ctx.enabled:
        return value
    is_tensor = isinstance(value, torch.Tensor)
    t = (
        value.detach().clone().to(ctx.device, torch.float64)
        if is_tensor
        else torch.tensor(float(value), dtype=torch.float64, device=ctx.device)
    )
    dist.all_reduce(t)
    t /= ctx.world_size
    if is_tensor:
        return t.to(value.device, value.dtype)
    return float(t)


def all_reduce_sum(value: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum over ranks of a tensor (a copy); identity alone."""
    if not ctx.enabled:
        return value
    t = value.detach().clone().to(ctx.device)
    dist.all_reduce(t)
    return t.to(value.device)


def any_rank(flag: bool, ctx: DistContext) -> bool:
    """True on every rank if ``flag`` is true on any (stop together, fail together)."""
    if not ctx.enabled:
        return flag
    return all_reduce_mean(1.0 if flag else 0.0, ctx) > 0.0


def barrier(ctx: DistContext) -> None:
    """Wait for every rank; nothing alone."""
    if ctx.enabled:
        dist.barrier()


def global_rms(x: torch.Tensor, ctx: DistContext) -> float:
    """Root mean square of ``x`` over every rank's rows (one collective under DDP; NaN when
    there are no rows)."""
    a = x.detach().double().flatten()
    n, sq = all_reduce_sum(torch.stack([a.new_tensor(a.numel()), (a * a).sum()]), ctx).tolist()
    return (sq / n) ** 0.5 if n > 0 else float("nan")


def normalise_advantages_global(
    advantages: torch.Tensor,
    ctx: DistContext,
    groups: torch.Tensor | None = None,
    n_groups: int = 1,
) -> torch.Tensor:
    """Advantages normalised by the moments of the GLOBAL minibatch (every rank's rows).

    Zero mean and unit unbiased std over all ranks, as
    :func:`a2d_evo.train.ppo.normalise_advantages` computes on one process for the whole
    minibatch; with ``groups`` (a group index per row, < ``n_groups``) each group's rows are
    normalised by their own moments. A group of fewer than 2 rows is only centred. Collective
    under DDP (identity alone), so every rank must call it the same number of times.
    """
    a = advantages.double()
    if groups is None:
        groups = torch.zeros(a.shape, dtype=torch.long, device=a.device)
    onehot = torch.nn.functional.one_hot(groups, n_groups).double()
    stats = all_reduce_sum(torch.stack([onehot.sum(0), onehot.T @ a, onehot.T @ (a * a)]), ctx)
    n, total, sq = stats.unbind()
    mean = total / n.clamp_min(1.0)
    var = ((sq - n * mean * mean) / (n - 1).clamp_min(1.0)).clamp_min(0.0)
    scale = torch.where(n >= 2, var.sqrt() + 1e-8, torch.ones_like(var))
    return ((a - mean[groups]) / scale[groups]).to(advantages.dtype)
