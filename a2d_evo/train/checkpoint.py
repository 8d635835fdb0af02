"""``checkpoint.pt``: the resumable state of one training stage.

One atomic file of tensors and plain data only (loadable with ``weights_only=True``): the
network, the optimiser, the update and global step counters, the wall time so far, the
generator states of :class:`~a2d_evo.train.streams.Streams` (numpy's as its plain int dict,
torch's as a byte tensor), the stage's own plain data (``extra``, e.g. the arch) and the
learner's state (``learner``: plain floats, e.g. the value scale sigma of a distilled agent).
It is read and checked (stage, keys, format version) by :func:`a2d_evo.files.read_checkpoint`,
which ``runfolder`` also calls before it records a ``--resume`` that raises a budget.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from a2d_evo.errors import FormatError, TrainingError
from a2d_evo.files import read_checkpoint, torch_save
from a2d_evo.formats import CHECKPOINT_FORMAT_VERSION
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
    try:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        streams.load_state(ckpt["rng"])
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise FormatError(f"{stage} checkpoint {path} does not fit this run: {exc}") from None
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
