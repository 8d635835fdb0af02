"""The PPO training loop shared by the teacher, the supernet, fine-tuning and the baselines.

One update = collect a rollout, compute GAE, run ``update_epochs`` epochs of minibatch
steps; what differs between stages is a :class:`~a2d_evo.train.learners.Learner` (which
network acts in which env slot, what the minibatch loss is). Around that the loop keeps:

- **Randomness from the seed**: every generator comes from :class:`~a2d_evo.train.streams.Streams`.
- **Checkpoints** (:mod:`a2d_evo.train.checkpoint`): written at update 0, every
  ``checkpoint_every`` updates, at the end, and on SIGINT/SIGTERM (at the end of the
  current update, then :class:`~a2d_evo.train.interrupts.TrainingInterrupted` is raised; a
  signal that comes after the last update's checkpoint decision raises it once the loop
  ends, so the stage does not go on to its evaluation or the command to its next stage).
- **Env resets.** Envs are reset only when the stage starts and when it resumes (with
  seeds derived from ``(seed, stage, update)``); between, episodes run on across rollouts
  and checkpoints, so long episodes are never cut and the envs never restart in lockstep.
  An env's internal state cannot be saved, so a resumed run is not bit-identical to one that
  never stopped (its envs restart at the resume); everything else is restored exactly
  (weights, optimiser, counters, rank 0's random streams and its last training episodes'
  returns; other torchrun ranks re-derive their action noise from the update), and two
  uninterrupted runs with one seed
  are bit-identical.
- **Training longer.** ``--resume`` may raise the stage's ``total_steps`` (a finished or a
  failed stage too; :data:`a2d_evo.runs.stage_budget.BUDGET_KEYS`, recorded in the stage's
  ``config_history.yaml``). The loop then runs on from the checkpoint's update to the new
  ``n = num_updates(total_steps)``. Every schedule is recomputed over the new total, with
  no state of its own: with ``ppo.anneal_lr`` update ``u`` uses
  ``lr = ppo.lr * (1 - (u - 1) / n)`` (:func:`~a2d_evo.train.ppo.linear_lr`), so the rate
  steps UP at the resume point to where a run started with the new total would be, then
  decays linearly to ``ppo.lr / n`` at the new end (a rate continued from the old, nearly
  zero value would barely train); the supernet's distillation schedule takes the same
  ``progress = (u - 1) / n``. A checkpoint past the new total is refused.
- **Failure.** A non-finite loss or gradient norm raises :class:`TrainingError` before the
  optimiser steps; the checkpoint on disk stays the last good one.
- **Reporting** (:mod:`a2d_evo.train.reporting`): the progress bar and TensorBoard.
- **DDP.** Under torchrun the learner's model is the DDP wrapper the stage made; its
  context says which env slots and minibatch rows are this rank's, and rank 0 alone writes.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from a2d_evo.config import Config
from a2d_evo.errors import FormatError, TrainingError
from a2d_evo.progress import write
from a2d_evo.runs.layout import holds_results
from a2d_evo.scale import ddp
from a2d_evo.train.checkpoint import check_pins, load_checkpoint, save_checkpoint
from a2d_evo.train.interrupts import StopFlag, TrainingInterrupted
from a2d_evo.train.learners import Learner
from a2d_evo.train.ppo import (
    RolloutBuffer,
    collect_rollout,
    explained_variance,
    linear_lr,
    minibatches,
)
from a2d_evo.train.reporting import open_bar, open_writer, report
from a2d_evo.train.streams import Streams


@dataclass(frozen=True)
class LoopOptions:
    """Where and how a stage runs."""

    stage: str
    total_steps: int
    checkpoint: Path | None
    """``checkpoint.pt`` path; None: no checkpoints (fine-tuning)."""
    tb_dir: Path | None
    checkpoint_every: int
    resume: bool = False
    progress: bool = True
    stop_after: int | None = None
    """Stop as on SIGINT after this update (tests, time-boxed runs)."""
    extra: dict[str, Any] | None = None
    """Plain data stored in the checkpoint (e.g. the arch)."""
    budget_key: str = "total_steps"
    """The config key ``total_steps`` comes from, named where a checkpoint is past it; ""
    where no key raises it (a baseline's budget is the run's)."""
    pins: dict[str, Any] | None = None
    """What the stage trains against, stored in the checkpoint beside ``extra``, that a resume
    must find unchanged (e.g. the teacher's digest): a change is a :class:`TrainingError`."""
    pins_remedy: str = ""
    """What that error tells the user to do."""


RECENT_EPISODES = 20
"""Training episodes whose mean return the progress bar and ``train_recent_return`` show."""


def recent_window(stored: Any, checkpoint: Path | None) -> list[float]:
    """The ``recent_returns`` a checkpoint's ``extra`` holds: [] for a checkpoint from before
    they were stored (2026-12-07); FormatError for anything but a list of finite numbers."""
    if stored is None:
        return []
    if not isinstance(stored, list) or not all(
        isinstance(r, int | float) and not isinstance(r, bool) and math.isfinite(r) for r in stored
    ):
        raise FormatError(
            f"checkpoint {checkpoint}: 'recent_returns' is not a list of finite returns"
        )
    return [float(r) for r in stored[-RECENT_EPISODES:]]


class TrainResult(NamedTuple):
    updates: int
    global_step: int
    wall_s: float
    """Wall time of training over all resumed pieces."""
    sps: float | None
    """Env steps per second of the whole run (every rank's envs) since this process started
    or resumed it; None when it ran no update (a resumed stage that was already complete)."""
    recent_return: float | None
    """Mean raw return of the last :data:`RECENT_EPISODES` training episodes, those before a
    resume included (None if none ended: JSON null)."""
    world_sizes: list[list[int]]
    """``[first update, rank count]`` of each piece trained at another rank count than the
    one before (``[[0, 1]]``: one process throughout); a checkpoint from before they were
    recorded starts the list at its update."""


def num_updates(cfg: Config, total_steps: int) -> int:
    """Updates of ``ppo.batch_size`` env steps covering ``total_steps`` (at least one)."""
    return cfg.ppo.updates_for(total_steps)


def budget_text(cfg: Config, total_steps: int) -> str:
    """``total_steps`` as said to the user, with the env steps whole updates run where they
    differ: ``3,000 env steps (11 updates of 256: 2,816)``."""
    n, batch = num_updates(cfg, total_steps), cfg.ppo.batch_size
    if n * batch == total_steps:
        return f"{total_steps:,} env steps"
    return f"{total_steps:,} env steps ({n:,} update{'s' * (n != 1)} of {batch:,}: {n * batch:,})"


def run_ppo(
    learner: Learner,
    cfg: Config,
    envs: Any,
    obs_shape: tuple[int, ...],
    obs_dtype: Any,
    streams: Streams,
    opts: LoopOptions,
    device: torch.device,
) -> TrainResult:
    """Train ``learner.model`` with PPO for ``opts.total_steps`` env steps (see module doc).

    Under torchrun ``learner.model`` is the stage's DDP wrapper and ``envs`` holds this
    rank's ``num_envs / world_size`` envs; rank 0 alone writes.
    """
    ppo = cfg.ppo
    ctx = ddp.context_of(learner.model)
    plain = ddp.unwrap_model(learner.model)  # what checkpoints hold (no DDP prefix)
    slots = ddp.shard(ppo.num_envs, ctx)  # this rank's env slots and share of each minibatch
    params = [p for p in learner.model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=ppo.lr, eps=1e-5, foreach=True)
    n_updates = num_updates(cfg, opts.total_steps)
    start, global_step, wall_before = 0, 0, 0.0
    stored: dict[str, Any] = {**(opts.extra or {}), **(opts.pins or {})}  # in each checkpoint
    stored["world_sizes"] = [[0, ctx.world_size]]  # a resume replaces it with its history
    # the last training episodes' returns, checkpointed: a resume that ends few episodes
    # still reports the stage's recent return (rank 0's episodes under torchrun)
    recent: deque[float] = deque(maxlen=RECENT_EPISODES)
    resume = opts.resume
    if (
        resume
        and opts.checkpoint is not None
        and not opts.checkpoint.is_file()
        and not holds_results(opts.checkpoint.parent)
    ):  # its config.yaml alone (killed before its first checkpoint, or the checkpoint
        # removed): nothing to resume, and a plain start would take the folder over
        resume = False
        if opts.progress and ctx.is_main:
            write(
                f"{opts.stage}: --resume: {opts.checkpoint.parent} holds no checkpoint "
                "(stopped before its first, or removed); starting the stage from update 0"
            )
    if opts.resume:  # every rank has looked before rank 0 writes the first checkpoint below
        ddp.barrier(ctx)
    if resume:
        if opts.checkpoint is None:
            raise TrainingError("resume needs a checkpoint path")
        restored = load_checkpoint(opts.checkpoint, opts.stage, plain, optimizer, streams)
        start, global_step, wall_before = restored.update, restored.global_step, restored.wall_s
        check_pins(opts.checkpoint, opts.stage, restored.extra, opts.pins or {}, opts.pins_remedy)
        learner.load_state(restored.learner)
        recent.extend(recent_window(restored.extra.get("recent_returns"), opts.checkpoint))
        # a resume that trains nothing (the stage complete) adds no piece and says nothing
        sizes = _world_sizes(
            restored.extra.get("world_sizes"), start, ctx.world_size, start < n_updates
        )
        if opts.progress and ctx.is_main and len(sizes) > 1 and sizes[-1][0] == start:
            write(
                f"{opts.stage}: resumed on {ctx.world_size} rank(s) at update {start}, trained "
                f"on {sizes[-2][1]} before: each rank's share of the envs, and so the run, now "
                "differs from one kept at that count (docs/distributed.md)"
            )
        stored["world_sizes"] = sizes
        if start > n_updates:
            remedy = (
                f"resume with a {opts.budget_key} of at least {global_step}"
                if opts.budget_key
                else f"delete {opts.checkpoint} to train it anew for this budget"
            )
            raise TrainingError(
                f"{opts.stage} checkpoint {opts.checkpoint} is at update {start} (step "
                f"{global_step}), past the {n_updates} updates of total_steps "
                f"{opts.total_steps}; {remedy}"
            )
    elif opts.checkpoint is not None and ctx.is_main:
        save_checkpoint(opts.checkpoint, opts.stage, plain, optimizer, streams, 0, 0, 0.0,
                        stored, learner.state())  # fmt: skip
    last_good = start

    n_envs = slots.stop - slots.start
    local_batch = n_envs * ppo.num_steps
    buffer = RolloutBuffer(ppo.num_steps, n_envs, obs_shape, obs_dtype, device)
    writer = open_writer(opts.tb_dir if ctx.is_main else None, global_step if resume else None)
    bar = open_bar(
        opts.stage, n_updates * ppo.batch_size, global_step, enabled=opts.progress and ctx.is_main
    )
    stop = StopFlag()
    t_start = time.perf_counter()
    steps_here = 0
    next_obs: np.ndarray | None = None
    update = start
    try:
        with stop.installed():
            for update in range(start + 1, n_updates + 1):
                if next_obs is None:  # the stage's start, or its resume
                    next_obs = envs.reset(seed=streams.env_seeds(update - 1, ppo.num_envs)[slots])
                    if ctx.rank:  # own action noise per rank, re-derived where envs are
                        streams.actions.manual_seed(ddp.rank_seed(streams.root, ctx.rank, update))
                lr = linear_lr(ppo.lr, update, n_updates) if ppo.anneal_lr else ppo.lr
                for group in optimizer.param_groups:
                    group["lr"] = lr
                progress = (update - 1) / n_updates

                next_obs, stats = collect_rollout(
                    envs, learner.policy(update), buffer, next_obs, streams.actions
                )
                adv, ret = buffer.advantages(ppo.gamma, ppo.gae_lambda, ppo.reward_clip)
                # of the critics that collected the rollout, before this update trains them
                explained = explained_variance(buffer.values, ret)
                batch = learner.prepare(buffer.batch(adv, ret))

                sums: dict[str, float] = defaultdict(float)
                count = 0
                for _epoch in range(ppo.update_epochs):
                    kls = []
                    for idx in minibatches(streams.rng, local_batch, ppo.num_minibatches):
                        loss, logs = learner.loss(batch.take(idx.to(device)), progress)
                        # one rank's non-finite loss stops every rank (mean is then non-finite)
                        seen = ddp.all_reduce_mean(loss.detach(), ctx)
                        _check_finite("loss", seen, logs, update, global_step, opts, last_good)
                        optimizer.zero_grad(set_to_none=True)
                        loss.backward()
                        norm = nn.utils.clip_grad_norm_(params, ppo.max_grad_norm)
                        _check_finite(
                            "gradient norm", norm, logs, update, global_step, opts, last_good
                        )
                        optimizer.step()
                        for k, v in logs.items():
                            sums[k] += float(v)
                        kls.append(float(logs.get("approx_kl", 0.0)))
                        count += 1
                    if (
                        ppo.target_kl is not None
                        and ddp.all_reduce_mean(float(np.mean(kls)), ctx) > ppo.target_kl
                    ):
                        break

                global_step += ppo.batch_size
                steps_here += ppo.batch_size
                recent.extend(stats.episode_returns)
                elapsed = time.perf_counter() - t_start
                sps = steps_here / max(elapsed, 1e-9)
                means = {k: v / max(count, 1) for k, v in sums.items()}
                means["explained_variance"] = explained
                report(
                    writer,
                    bar,
                    global_step,
                    lr,
                    sps,
                    stats.episode_returns,
                    stats.episode_lengths,
                    recent,
                    means,
                )

                if (
                    stop.reason is None
                    and opts.stop_after is not None
                    and update >= opts.stop_after
                ):
                    stop.reason = f"stop requested after update {opts.stop_after}"
                # one snapshot of the flag, agreed by every rank and used for both decisions
                # below: a signal that lands after the vote waits for the next update (read
                # again here, one rank alone would checkpoint and stop while the others
                # went on into the next collective)
                reason = stop.reason
                if ctx.enabled and ddp.any_rank(reason is not None, ctx):
                    reason = reason or "stopped on another rank"
                if opts.checkpoint is not None and (
                    reason or update % opts.checkpoint_every == 0 or update == n_updates
                ):
                    if ctx.is_main:
                        wall = wall_before + elapsed
                        # finite ones (a clipped inf reward leaves the raw return inf)
                        stored["recent_returns"] = [float(r) for r in recent if np.isfinite(r)]
                        save_checkpoint(opts.checkpoint, opts.stage, plain, optimizer, streams,
                                        update, global_step, wall, stored,
                                        learner.state())  # fmt: skip
                    ddp.barrier(ctx)  # on disk before any rank goes on (and maybe resumes)
                    last_good = update
                if reason:
                    where = (
                        f"checkpoint saved to {opts.checkpoint}; continue with --resume"
                        if opts.checkpoint is not None
                        else "nothing saved"
                    )
                    raise TrainingInterrupted(
                        f"{opts.stage} training interrupted ({reason}) at update {update}/"
                        f"{n_updates}, step {global_step}; {where}"
                    )
            # a signal after the last update's vote: honoured too, on every rank or none (a
            # rank ending alone would leave the others writing while torchrun stops them)
            late = stop.reason is not None
            if ctx.enabled:
                late = ddp.any_rank(late, ctx)
            if late:
                raise TrainingInterrupted(
                    f"{opts.stage} training interrupted ({stop.reason or 'on another rank'}) "
                    "after its last update "
                    f"{update}/{n_updates}, step {global_step}; every update is trained"
                    + (
                        f" and saved to {opts.checkpoint}: --resume finishes the stage"
                        if opts.checkpoint is not None
                        else ""
                    )
                )
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    elapsed = time.perf_counter() - t_start
    return TrainResult(
        update,
        global_step,
        wall_before + elapsed,
        steps_here / max(elapsed, 1e-9) if steps_here else None,
        float(np.mean(recent)) if recent else None,
        stored["world_sizes"],
    )


def _world_sizes(recorded: Any, start: int, world_size: int, trains: bool) -> list[list[int]]:
    """A checkpoint's ``world_sizes`` (:attr:`TrainResult.world_sizes`) with this session's
    rank count added when it differs from the last piece's and the session ``trains`` (runs
    an update): ``[[start, world_size]]`` for a checkpoint that records none (or a damaged
    record)."""
    whole = isinstance(recorded, list) and all(
        isinstance(p, list) and len(p) == 2 and all(type(v) is int for v in p) for p in recorded
    )
    sizes = [list(p) for p in recorded] if whole and recorded else []
    if not sizes or (trains and sizes[-1][1] != world_size):
        sizes.append([start, world_size])
    return sizes


def _check_finite(
    what: str,
    value: Tensor,
    logs: dict[str, Tensor],
    update: int,
    global_step: int,
    opts: LoopOptions,
    last_good: int,
) -> None:
    """Raise :class:`TrainingError` naming the update and the losses unless ``value`` is finite."""
    if bool(torch.isfinite(value).all()):
        return
    parts = ", ".join(f"{k}={float(v):.4g}" for k, v in logs.items())
    kept = (
        f"the last good checkpoint (update {last_good}) is kept at {opts.checkpoint}"
        if opts.checkpoint is not None
        else "nothing was saved"
    )
    raise TrainingError(
        f"{opts.stage} training stopped: non-finite {what} at update {update} "
        f"(step {global_step}) [{parts}]; {kept}. Lower ppo.lr or check the env's rewards"
    )
