"""``checkpoint.pt``: the resumable state of one training stage.

One atomic file of tensors and plain data only (loadable with ``weights_only=True``): the
network, the optimiser, the update and global step counters, the wall time so far, the
generator states of :class:`~a2d_evo.train.streams.Streams` (numpy's as its plain int dict,
torch's as a byte tensor), the stage's own plain data (``extra``, e.g. the arch) and the
learner's state (``learner``: plain floats, e.g. the value scale sigma of a distilled agent).
It is read and checked (stage, keys, format version) by :func:`a2d_evo.runs.files.read_checkpoint`,
which ``stage_budget`` also calls before it records a ``--resume`` that raises a budget.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from a2d_evo.errors import FormatError, TrainingError
from a2d_evo.formats import CHECKPOINT_FORMAT_VERSION
from a2d_evo.runs.files import read_checkpoint, tensor_not_in_file, torch_save
from a2d_evo.train.streams import Streams


class Restored(NamedTuple):
    """Where a resumed stage stands."""

    update: int
    global_step: int
    wall_s: float
    learner: dict[str, Any]
    """The learner's own state (:meth:`~a2d_evo.train.learners.Learner.state`)."""
    extra: dict[str, Any]
    """The plain data the stage stored with it (``LoopOptions.extra`` and ``pins``)."""


def save_checkpoint(
    path: Path,
    stage: str,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    streams: Streams,
    update: int,
    global_step: int,
    wall_s: float,
    extra: Mapping[str, Any] | None = None,
    learner: Mapping[str, Any] | None = None,
) -> None:
    """Write ``path`` atomically (the last good checkpoint survives a crash mid-write)."""
    torch_save(
        path,
        {
            "format_version": CHECKPOINT_FORMAT_VERSION,
            "stage": stage,
            "update": int(update),
            "global_step": int(global_step),
            "wall_s": float(wall_s),
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            "rng": streams.state(),
            "extra": dict(extra or {}),
            "learner": dict(learner or {}),
        },
    )


def load_checkpoint(
    path: Path,
    stage: str,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    streams: Streams,
) -> Restored:
    """Restore model, optimiser and streams; returns where the stage stands."""
    ckpt = read_checkpoint(path, stage)
    ours = optimizer.state_dict()["param_groups"]  # this run's settings, before the load
    try:
        model.load_state_dict(ckpt["model"])
        check_optimizer_state(ckpt["optimizer"], optimizer)
        optimizer.load_state_dict(ckpt["optimizer"])
        streams.load_state(ckpt["rng"])
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise FormatError(f"{stage} checkpoint {path} does not fit this run: {exc}") from None
    # the settings are the run's, not the file's (eps, betas, weight decay, maximize: a file
    # could stop the learning without a word); the loop sets the learning rate every update
    for group, own in zip(optimizer.param_groups, ours, strict=True):
        group.update({k: v for k, v in own.items() if k not in ("params", "lr")})
    learner = ckpt.get("learner", {})
    if not isinstance(learner, dict):
        raise FormatError(f"{stage} checkpoint {path}: 'learner' is not a mapping")
    extra = ckpt.get("extra", {})
    if not isinstance(extra, dict):
        raise FormatError(f"{stage} checkpoint {path}: 'extra' is not a mapping")
    return Restored(
        int(ckpt["update"]),
        int(ckpt["global_step"]),
        float(ckpt.get("wall_s", 0.0)),
        learner,
        extra,
    )


def check_optimizer_state(saved: Any, optimizer: torch.optim.Optimizer) -> None:
    """ValueError unless ``saved`` (a checkpoint's ``optimizer``) holds, per parameter, only
    dense, finite tensors of that parameter's shape, or scalars (Adam's ``step``), for as many
    parameter groups as ``optimizer`` has: ``load_state_dict`` copies what it is given, so a
    stride-0 view of one stored value would become a full tensor of any size, and nested
    lists are copied element by element (a 2 KB file of shared lists took exponential time)."""
    if not isinstance(saved, dict) or set(saved) != {"state", "param_groups"}:
        raise ValueError("'optimizer' is not an optimiser state dict")
    groups, state = saved["param_groups"], saved["state"]
    if not isinstance(groups, list) or len(groups) != len(optimizer.param_groups):
        raise ValueError("the optimiser's parameter groups differ")
    own_groups = zip(optimizer.state_dict()["param_groups"], optimizer.param_groups, strict=True)
    params: dict[int, torch.Tensor] = {}
    for own, group in own_groups:
        params.update(zip(own["params"], group["params"], strict=True))
    for group in groups:
        ids = group.get("params") if isinstance(group, dict) else None
        if not isinstance(ids, list) or not all(type(i) is int and i in params for i in ids):
            raise ValueError("the optimiser's parameter groups name other parameters")
    if not isinstance(state, dict):
        raise ValueError("the optimiser's state is not a mapping")
    for i, entry in state.items():
        if type(i) is not int or i not in params or not isinstance(entry, dict):
            raise ValueError(f"the optimiser's state names no parameter of this run: {i!r:.40}")
        for name, value in entry.items():
            if not isinstance(value, torch.Tensor):
                raise ValueError(f"optimiser state {name!r:.40} is not a tensor")
            # a scalar is Adam's step count; a moment must have its parameter's shape, a 0-dim
            # one too (it loaded, then broadcast only to fail at the first step, unnamed)
            scalar_step = name == "step" and value.dim() == 0
            if not scalar_step and tuple(value.shape) != tuple(params[i].shape):
                raise ValueError(f"optimiser state {name!r:.40} has another parameter's shape")
            if (why := tensor_not_in_file(value)) is not None:
                raise ValueError(f"optimiser state {name!r:.40} {why}")
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                raise ValueError(f"optimiser state {name!r:.40} holds NaN or infinite values")


def checkpoint_extra(path: Path, stage: str) -> dict[str, Any]:
    """The plain data (``extra``, the pins among it) of the ``stage`` checkpoint at ``path``,
    read without restoring it ({} when it holds none); FormatError as :func:`read_checkpoint`."""
    extra = read_checkpoint(path, stage).get("extra")
    return extra if isinstance(extra, dict) else {}


def changed_pins(extra: Mapping[str, Any], pins: Mapping[str, Any]) -> list[str]:
    """The keys of ``pins`` a checkpoint's ``extra`` records with another value. A key it
    does not record (a checkpoint written before the stage pinned it) is not a change."""
    return [k for k, v in pins.items() if k in extra and extra[k] != v]


def check_pins(
    path: Path, stage: str, extra: Mapping[str, Any], pins: Mapping[str, Any], remedy: str
) -> None:
    """:class:`TrainingError` when the checkpoint at ``path`` (its ``extra``) was trained
    against other ``pins`` than the stage's now, naming each and ``remedy``."""
    changed = changed_pins(extra, pins)
    if changed:
        was = ", ".join(f"{k} {_short(extra[k])}" for k in changed)
        now = ", ".join(_short(pins[k]) for k in changed)
        raise TrainingError(
            f"{stage} checkpoint {path} was trained with {was}, now {now}; "
            f"{remedy or 'resuming would mix the two'}"
        )


def _short(value: Any) -> str:
    """A pinned value for a message: a digest cut to its first 12 characters."""
    text = repr(value)
    return text[:13] + "...'" if isinstance(value, str) and len(value) > 16 else text
