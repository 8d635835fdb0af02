"""The PPO training loop shared by the teacher, the supernet and fine-tuning, with its hygiene.

One update = collect a rollout, compute GAE, run ``update_epochs`` epochs of minibatch
steps; what differs between stages is a :class:`Learner` (which network acts in which env
slot, what the minibatch loss is). Around that the loop provides:

- **Randomness from the seed.** :class:`Streams` derives every generator from
  ``(cfg.seed, stage)``: the network init seed, a ``torch.Generator`` for actions, a
  numpy ``Generator`` for minibatches and subnet draws, and the env reset seeds.
- **Checkpoints.** ``checkpoint.pt`` (atomic, tensors and plain data only) holds the
  network, the optimiser, the update and global step counters and the generator states
  (numpy's as its plain int dict, torch's as a byte tensor). Written at update 0, every
  ``checkpoint_every`` updates, at the end, and on SIGINT/SIGTERM (at the end of the
  current update, then :class:`TrainingInterrupted` is raised).
- **Env re-seeding.** An env's internal state cannot be saved, so envs are reset with
  seeds derived from ``(seed, stage, update)`` at every checkpoint boundary (updates
  ``1, K+1, 2K+1, ...``) and on resume. A run resumed from a periodic checkpoint is
  therefore bit-identical to one that never stopped; one resumed from an interrupt
  checkpoint differs only in that its envs were re-seeded at that update.
- **Failure.** A non-finite loss or gradient norm raises :class:`TrainingError` before the
  optimiser steps; the checkpoint on disk stays the last good one.
- **Reporting.** A tqdm bar (SPS, recent return, losses) and TensorBoard scalars named as
  CleanRL's (``charts/...``, ``losses/...``).
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol, TypeVar, cast

import numpy as np
import torch
from torch import Tensor, nn

from a2d_evo.config import Config
from a2d_evo.errors import FormatError, Interrupted, TrainingError
from a2d_evo.formats import CHECKPOINT_FORMAT_VERSION
from a2d_evo.runfolder import torch_load, torch_save
from a2d_evo.scale.ddp import (
    all_reduce_mean,
    any_rank,
    barrier,
    current_context,
    rank_seed,
    shard,
    wrap_model,
)
from a2d_evo.train.distill import DistillLoss, distill_coefs, distill_loss, with_teacher
from a2d_evo.train.ppo import (
    Batch,
    Policy,
    RolloutBuffer,
    collect_rollout,
    linear_lr,
    minibatches,
)

M = TypeVar("M", bound=nn.Module)

STAGE_KEYS = {"teacher": 1, "supernet": 2, "finetune": 3, "baseline": 4}
"""Stage ids mixed into the seed, so that stages of one run draw independent streams."""


class TrainingInterrupted(TrainingError, Interrupted):
    """SIGINT/SIGTERM (or a requested stop) ended training after a checkpoint."""


# ----------------------------------------------------------------------------- randomness
class Streams:
    """Every random stream of one training stage, derived from ``(seed, stage)``."""

    def __init__(self, seed: int, stage: str) -> None:
        self.root = [int(seed), STAGE_KEYS[stage]]
        init, actions, rng = np.random.SeedSequence(self.root).spawn(3)
        self.init_seed = int(init.generate_state(1, np.uint64)[0])
        self.actions = torch.Generator().manual_seed(int(actions.generate_state(1, np.uint64)[0]))
        self.rng = np.random.default_rng(rng)

    def env_seeds(self, update: int, n: int) -> list[int]:
        """Reset seeds of the ``n`` envs at the start of update ``update + 1``."""
        ss = np.random.SeedSequence([*self.root, 7, int(update)])
        return [int(s) for s in ss.generate_state(n, np.uint32)]

    def build(self, make: Callable[[], M]) -> M:
        """Call ``make`` with torch's global RNG seeded from the run (and restored after)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.init_seed)
            return make()

    def state(self) -> dict[str, Any]:
        return {"numpy": self.rng.bit_generator.state, "torch_actions": self.actions.get_state()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["numpy"]
        self.actions.set_state(state["torch_actions"])


# ----------------------------------------------------------------------------- learners
class Learner(Protocol):
    """What a stage plugs into :func:`run_ppo`."""

    @property
    def model(self) -> nn.Module:
        """The trained network: its parameters are optimised and checkpointed."""
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


# ----------------------------------------------------------------------------- signals
class StopFlag:
    """Set by SIGINT/SIGTERM while installed; a second Ctrl-C aborts at once."""

    def __init__(self) -> None:
        self.reason: str | None = None

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopFlag]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        sigs = (signal.SIGINT, signal.SIGTERM)
        old = {s: signal.getsignal(s) for s in sigs}

        def handler(signum: int, frame: Any) -> None:
            if self.reason is not None and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.reason = signal.Signals(signum).name

        for s in sigs:
            signal.signal(s, handler)
        try:
            yield self
        finally:
            for s in sigs:
                signal.signal(s, old[s])


# ----------------------------------------------------------------------------- the loop
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


class TrainResult(NamedTuple):
    updates: int
    global_step: int
    wall_s: float
    """Wall time of training over all resumed pieces."""
    sps: float
    """Env steps per second of this process's part."""
    recent_return: float | None
    """Mean raw return of the last 20 training episodes (None if none ended: JSON null)."""


def num_updates(cfg: Config, total_steps: int) -> int:
    """Updates of ``ppo.batch_size`` env steps covering ``total_steps`` (at least one)."""
    return max(1, total_steps // cfg.ppo.batch_size)


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

    Under torchrun (:mod:`a2d_evo.scale.ddp`) ``envs`` holds this rank's
    ``num_envs / world_size`` envs, the model trains inside DDP, and rank 0 alone writes.
    """
    ppo = cfg.ppo
    model = learner.model
    ctx = current_context()
    slots = shard(ppo.num_envs, ctx)  # this rank's env slots and share of each minibatch
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=ppo.lr, eps=1e-5, foreach=True)
    n_updates = num_updates(cfg, opts.total_steps)
    start, global_step, wall_before = 0, 0, 0.0
    if opts.resume:
        if opts.checkpoint is None:
            raise TrainingError("resume needs a checkpoint path")
        start, global_step, wall_before = load_checkpoint(
            opts.checkpoint, opts.stage, model, optimizer, streams
        )
    elif opts.checkpoint is not None and ctx.is_main:
        save_checkpoint(opts, model, optimizer, streams, 0, 0, 0.0)
    last_good = start

    n_envs = slots.stop - slots.start
    local_batch = n_envs * ppo.num_steps
    buffer = RolloutBuffer(ppo.num_steps, n_envs, obs_shape, obs_dtype, device)
    writer = _writer(opts.tb_dir if ctx.is_main else None, global_step)
    bar = _bar(opts, n_updates * ppo.batch_size, global_step, enabled=ctx.is_main)
    # Under DDP the learner's forwards must go through the wrapper (restored below).
    cast(Any, learner).model = wrap_model(model, ctx)
    recent: deque[float] = deque(maxlen=20)
    stop = StopFlag()
    t_start = time.perf_counter()
    steps_here = 0
    next_obs: np.ndarray | None = None
    update = start
    try:
        with stop.installed():
            for update in range(start + 1, n_updates + 1):
                if next_obs is None or (update - 1) % opts.checkpoint_every == 0:
                    next_obs = envs.reset(seed=streams.env_seeds(update - 1, ppo.num_envs)[slots])
                    if ctx.rank:  # own action noise per rank, re-derived where envs are
                        streams.actions.manual_seed(rank_seed(streams.root, ctx.rank, update))
                lr = linear_lr(ppo.lr, update, n_updates) if ppo.anneal_lr else ppo.lr
                for group in optimizer.param_groups:
                    group["lr"] = lr
                progress = (update - 1) / n_updates

                next_obs, stats = collect_rollout(
                    envs, learner.policy(update), buffer, next_obs, streams.actions
                )
                adv, ret = buffer.advantages(ppo.gamma, ppo.gae_lambda, ppo.reward_clip)
                batch = learner.prepare(buffer.batch(adv, ret))

                sums: dict[str, float] = defaultdict(float)
                count = 0
                for _epoch in range(ppo.update_epochs):
                    kls = []
                    for idx in minibatches(streams.rng, local_batch, ppo.num_minibatches):
                        loss, logs = learner.loss(batch.take(idx.to(device)), progress)
                        # one rank's non-finite loss stops every rank (mean is then non-finite)
                        seen = all_reduce_mean(loss.detach(), ctx)
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
                        and all_reduce_mean(float(np.mean(kls)), ctx) > ppo.target_kl
                    ):
                        break

                global_step += ppo.batch_size
                steps_here += ppo.batch_size
                recent.extend(stats.episode_returns)
                elapsed = time.perf_counter() - t_start
                sps = steps_here / max(elapsed, 1e-9)
                means = {k: v / max(count, 1) for k, v in sums.items()}
                _report(
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
                if ctx.enabled and any_rank(stop.reason is not None, ctx):
                    stop.reason = stop.reason or "stopped on another rank"
                if opts.checkpoint is not None and (
                    stop.reason or update % opts.checkpoint_every == 0 or update == n_updates
                ):
                    if ctx.is_main:
                        wall = wall_before + elapsed
                        save_checkpoint(opts, model, optimizer, streams, update, global_step, wall)
                    barrier(ctx)  # on disk before any rank goes on (and maybe resumes)
                    last_good = update
                if stop.reason:
                    where = (
                        f"checkpoint saved to {opts.checkpoint}; continue with --resume"
                        if opts.checkpoint is not None
                        else "nothing saved"
                    )
                    raise TrainingInterrupted(
                        f"{opts.stage} training interrupted ({stop.reason}) at update {update}/"
                        f"{n_updates}, step {global_step}; {where}"
                    )
    finally:
        cast(Any, learner).model = model
        bar.close()
        if writer is not None:
            writer.close()
    elapsed = time.perf_counter() - t_start
    return TrainResult(
        update,
        global_step,
        wall_before + elapsed,
        steps_here / max(elapsed, 1e-9),
        float(np.mean(recent)) if recent else None,
    )


def _check_finite(
    what: str,
    value: Tensor,
    logs: dict[str, Tensor],
    update: int,
    global_step: int,
    opts: LoopOptions,
    last_good: int,
) -> None:
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


# ----------------------------------------------------------------------------- checkpoints
def save_checkpoint(
    opts: LoopOptions,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    streams: Streams,
    update: int,
    global_step: int,
    wall_s: float,
) -> None:
    assert opts.checkpoint is not None
    torch_save(
        opts.checkpoint,
        {
            "format_version": CHECKPOINT_FORMAT_VERSION,
            "stage": opts.stage,
            "update": int(update),
            "global_step": int(global_step),
            "wall_s": float(wall_s),
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            "rng": streams.state(),
            "extra": dict(opts.extra or {}),
        },
    )


def read_checkpoint(path: Path, stage: str) -> dict[str, Any]:
    """The checkpoint dict at ``path``, checked to be this stage's (FormatError otherwise)."""
    if not Path(path).is_file():
        raise FormatError(
            f"--resume: no checkpoint at {path}; delete {Path(path).parent} to start the stage "
            "over, or use --out for a new run folder"
        )
    ckpt = torch_load(path, f"{stage} checkpoint")
    keys = {"format_version", "stage", "update", "global_step", "model", "optimizer", "rng"}
    if not isinstance(ckpt, dict) or not keys <= set(ckpt):
        raise FormatError(f"{stage} checkpoint {path} is not an a2d-evo training checkpoint")
    if ckpt["format_version"] != CHECKPOINT_FORMAT_VERSION:
        raise FormatError(
            f"{stage} checkpoint {path} has format_version {ckpt['format_version']!r}, "
            f"this a2d-evo reads {CHECKPOINT_FORMAT_VERSION}"
        )
    if ckpt["stage"] != stage:
        raise FormatError(f"{path} is a {ckpt['stage']!r} checkpoint, not a {stage!r} one")
    return ckpt


def load_checkpoint(
    path: Path,
    stage: str,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    streams: Streams,
) -> tuple[int, int, float]:
    """Restore model, optimiser and streams; returns ``(update, global_step, wall_s)``."""
    ckpt = read_checkpoint(path, stage)
    try:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        streams.load_state(ckpt["rng"])
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise FormatError(f"{stage} checkpoint {path} does not fit this run: {exc}") from None
    return int(ckpt["update"]), int(ckpt["global_step"]), float(ckpt.get("wall_s", 0.0))


# ----------------------------------------------------------------------------- reporting
def _writer(tb_dir: Path | None, global_step: int) -> Any:
    if tb_dir is None:
        return None
    from torch.utils.tensorboard import SummaryWriter

    # purge_step hides events a crashed run wrote after the checkpoint we resume from
    return SummaryWriter(str(tb_dir), purge_step=global_step or None)


def _bar(opts: LoopOptions, total: int, initial: int, enabled: bool = True) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc=opts.stage,
        unit="step",
        unit_scale=True,
        dynamic_ncols=True,
        disable=not (opts.progress and enabled),
    )


_SHORT = {
    "policy": "pg",
    "value": "v",
    "entropy": "ent",
    "approx_kl": "kl",
    "distill_actor": "dA",
    "distill_critic": "dC",
}


def _report(
    writer: Any,
    bar: Any,
    step: int,
    lr: float,
    sps: float,
    returns: list[float],
    lengths: list[int],
    recent: deque[float],
    losses: dict[str, float],
) -> None:
    if writer is not None:
        if returns:
            writer.add_scalar("charts/episodic_return", float(np.mean(returns)), step)
            writer.add_scalar("charts/episodic_length", float(np.mean(lengths)), step)
        writer.add_scalar("charts/SPS", sps, step)
        writer.add_scalar("charts/learning_rate", lr, step)
        for key, value in losses.items():
            prefix = "charts" if key in ("alpha", "beta") else "losses"
            if math.isfinite(value):
                writer.add_scalar(f"{prefix}/{key}", value, step)
    postfix = {"SPS": f"{sps:.0f}", "ret": f"{np.mean(recent):.1f}" if recent else "-"}
    for key, short in _SHORT.items():
        if key in losses and math.isfinite(losses[key]):
            postfix[short] = f"{losses[key]:.3g}"
    bar.set_postfix(postfix, refresh=False)
    bar.update(step - bar.n)


class AgentLearner:
    """One static agent: plain PPO (the teacher), or PPO + distillation (fine-tuning)."""

    def __init__(self, agent: nn.Module, cfg: Config, teacher: nn.Module | None = None) -> None:
        self.model = agent
        self.cfg = cfg
        self.teacher = teacher

    def policy(self, update: int) -> Policy:
        return self.model

    def prepare(self, batch: Batch) -> Batch:
        return batch if self.teacher is None else with_teacher(batch, self.teacher)

    def loss(self, mb: Batch, progress: float) -> tuple[Tensor, dict[str, Tensor]]:
        alpha, beta = (
            (0.0, 0.0) if self.teacher is None else distill_coefs(self.cfg.distill, progress)
        )
        d = distill_loss(
            self.model(mb.obs), mb, self.cfg.ppo, alpha, beta, self.cfg.distill.temperature
        )
        return d.loss, loss_logs(d, alpha, beta)


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
