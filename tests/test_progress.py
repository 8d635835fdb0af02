"""Progress bars in a log (stderr not a terminal): one plain line per update shown."""

from __future__ import annotations

import io

import pytest

from a2d_evo.progress import progress_bar, set_total


def test_a_bar_without_a_total_counts_then_shows_a_percentage_once_it_has_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The delivery's race has no known length: its bar counted "0% 90/?" past a guessed
    total; now it shows a count and a rate until the total is known."""
    bar = progress_bar(total=None, desc="deliver front", unit="step")
    bar.update(90)
    bar.refresh()
    counting = capsys.readouterr().err.splitlines()
    assert counting and counting[-1].startswith("deliver front: 90 step ["), counting
    assert all("%" not in line and "/?" not in line for line in counting), counting
    set_total(bar, 95)
    bar.update(5)
    bar.close()
    done = capsys.readouterr().err.splitlines()
    assert done[-1].startswith("deliver front: 100% 95/95 ["), done
    # a bar with a total from the start is as before
    known = progress_bar(total=4, desc="evolve", unit="gen")
    known.update(4)
    known.close()
    assert capsys.readouterr().err.splitlines()[-1].startswith("evolve: 100% 4/4 [")


def test_a_log_line_is_written_only_for_text_and_once() -> None:
    """In a log, tqdm's bare ``\\r`` and ``\\n`` redraws write nothing, and a redraw of text
    writes it on one line of its own (no blank lines between updates)."""
    from a2d_evo.progress import _Lines

    out = io.StringIO()
    lines = _Lines(out)
    assert [lines.write("\r"), lines.write("\n"), lines.write("\rx: 1/4\n")] == [1, 1, 8]
    assert out.getvalue() == "x: 1/4\n"


def test_a_closed_stream_is_no_terminal() -> None:
    """A closed stream's ``isatty`` raises ValueError: it is no terminal, and no error."""
    from a2d_evo.progress import is_terminal

    closed = io.StringIO()
    closed.close()
    assert is_terminal(closed) is False


def test_a_bar_in_a_log_prints_at_most_every_log_interval_and_nothing_when_disabled(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Not on a terminal the bar waits :data:`LOG_INTERVAL_S` between lines; a disabled bar
    prints nothing at all."""
    from a2d_evo.progress import LOG_INTERVAL_S, progress_bar

    bar = progress_bar(total=4, desc="evolve", unit="gen")
    assert bar.mininterval == LOG_INTERVAL_S
    bar.close()
    capsys.readouterr()
    quiet = progress_bar(total=4, desc="evolve", unit="gen", enabled=False)
    quiet.update(4)
    quiet.close()
    assert capsys.readouterr().err == ""
