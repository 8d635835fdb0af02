"""Progress bars in a log (stderr not a terminal): one plain line per update shown."""

from __future__ import annotations

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
