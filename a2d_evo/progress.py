"""Progress bars that read well on a terminal and in a log file.

On a terminal a bar redraws in place as usual. Written to a file or a pipe (a CI log, ``nohup``,
``| tee``), carriage-return redraws would pile up hundreds of updates per second on one line, so
there the bar prints one plain line at most every :data:`LOG_INTERVAL_S` seconds.
"""

from __future__ import annotations

import sys
from typing import IO, Any

from tqdm import tqdm

LOG_INTERVAL_S = 10.0
"""Seconds between two progress lines when the output is not a terminal."""

_LOG_FORMAT = (
    "{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
)
_LOG_FORMAT_OPEN = "{desc}: {n_fmt} {unit} [{elapsed}, {rate_fmt}{postfix}]"
"""The log line of a bar whose total is not known yet (:func:`set_total` gives it one)."""


class _Lines:
    """A text stream that turns tqdm's ``\\r``-redraws into one line per update."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        line = text.replace("\r", "").strip("\n")
        if line.strip():
            self.stream.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def is_terminal(stream: Any) -> bool:
    """True when ``stream`` is an interactive terminal."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def progress_bar(
    *,
    total: int | None,
    desc: str,
    unit: str,
    initial: int = 0,
    enabled: bool = True,
    **kwargs: Any,
) -> tqdm:
    """A tqdm bar on stderr: redrawn on a terminal, a line per :data:`LOG_INTERVAL_S` elsewhere.
    ``total`` None: not known yet (a count and a rate, no percentage) until :func:`set_total`."""
    stream = sys.stderr
    options: dict[str, Any] = {"dynamic_ncols": True}
    if not is_terminal(stream):
        fmt = _LOG_FORMAT if total is not None else _LOG_FORMAT_OPEN
        options = {"file": _Lines(stream), "mininterval": LOG_INTERVAL_S, "bar_format": fmt}
    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit=unit,
        disable=not enabled,
        **{**options, **kwargs},
    )


def set_total(bar: tqdm, total: int) -> None:
    """Give ``bar``, begun without a total (a race whose length is known once it ends), its
    total: from then on it shows a percentage."""
    bar.total = total
    if getattr(bar, "bar_format", None) == _LOG_FORMAT_OPEN:  # a disabled bar has none
        bar.bar_format = _LOG_FORMAT


def write(line: str) -> None:
    """Print a line without breaking a bar that is on screen."""
    tqdm.write(line, file=sys.stderr)
