"""What a training stage shows: a progress bar and TensorBoard scalars named as CleanRL's.

The bar (:func:`a2d_evo.progress.progress_bar`: redrawn on a terminal, one line per 10 s
in a log file) carries steps per second, the recent return and short loss names. The
scalars are ``charts/episodic_return``, ``charts/SPS``, ``charts/learning_rate``, ...,
``losses/<key>`` for each key a learner logs, and ``charts/alpha``/``charts/beta``.
"""

from __future__ import annotations

import math
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from a2d_evo.progress import progress_bar

SHORT_NAMES = {
    "policy": "pg",
    "value": "v",
    "entropy": "ent",
    "approx_kl": "kl",
    "explained_variance": "ev",
    "distill_actor": "dA",
    "distill_critic": "dC",
}
"""Loss keys shown on the bar, under their short names."""


def open_writer(tb_dir: Path | None, global_step: int | None) -> Any:
    """A TensorBoard ``SummaryWriter`` for ``tb_dir`` (None: no TensorBoard); ``global_step``:
    the step of the checkpoint a resume starts from (None: a fresh start)."""
    if tb_dir is None:
        return None
    # tensorboard is heavy and optional at run time: loaded only when a stage writes to it
    from torch.utils.tensorboard import SummaryWriter

    # purge_step hides events a crashed run wrote after the checkpoint we resume from: the
    # events of global_step itself were written before that checkpoint, so they stay
    return SummaryWriter(str(tb_dir), purge_step=None if global_step is None else global_step + 1)


def open_bar(stage: str, total: int, initial: int, enabled: bool = True) -> Any:
    """The stage's progress bar over env steps."""
    return progress_bar(
        total=total, initial=initial, desc=stage, unit="step", unit_scale=True, enabled=enabled
    )


def report(
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
    """Log one update: TensorBoard scalars at ``step`` and the bar's postfix and position."""
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
    for key, short in SHORT_NAMES.items():
        if key in losses and math.isfinite(losses[key]):
            postfix[short] = f"{losses[key]:.3g}"
    bar.set_postfix(postfix, refresh=False)
    bar.update(step - bar.n)
