"""Stopping a training stage cleanly: SIGINT/SIGTERM end it after the current update.

While :meth:`StopFlag.installed` is active the first SIGINT or SIGTERM only records a
reason; the loop finishes the update, writes a checkpoint and raises
:class:`TrainingInterrupted`. A second Ctrl-C aborts at once (``KeyboardInterrupt``).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

from a2d_evo.errors import Interrupted, TrainingError


class TrainingInterrupted(TrainingError, Interrupted):
    """SIGINT/SIGTERM (or a requested stop) ended training after a checkpoint."""


class StopFlag:
    """Set by SIGINT/SIGTERM while installed; a second Ctrl-C aborts at once."""

    def __init__(self) -> None:
        self.reason: str | None = None

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopFlag]:
        """Catch SIGINT/SIGTERM for the block (main thread only); old handlers come back.
        Where a handler was not installed from Python (``getsignal`` gives None: a host that
        embeds Python), it could not be put back, so the host keeps the signals."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        sigs = (signal.SIGINT, signal.SIGTERM)
        old = {s: signal.getsignal(s) for s in sigs}
        if any(h is None for h in old.values()):
            yield self
            return

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
