"""A run folder's parts and stages on disk, and how a run, a stage and a stage's results are
recognised there.

A run is a folder whose ``config.yaml`` a run wrote (it opens with ``format_version``), beside
at least one stage folder (teacher, supernet, search) holding such a ``config.yaml`` of its
own. These checks read only the first bytes of a regular file: they run on received folders.
"""

from __future__ import annotations

from pathlib import Path

from a2d_evo.runs.locks import LOCK_FILE

RUN_PARTS = ("teacher", "supernet", "search", "agents", "baselines", "report")
"""The folders of a run (the :class:`~a2d_evo.runs.folder.RunFolder` properties of the same
names)."""


STAGE_SECTIONS: dict[str, tuple[str, ...]] = {
    "teacher": ("seed", "env", "space", "ppo", "teacher", "eval"),
    "supernet": ("seed", "env", "space", "ppo", "supernet", "distill"),
    "search": ("seed", "env", "space", "search", "eval"),
}
"""Sections a ``--resume`` of a stage must find unchanged (but for
:data:`~a2d_evo.runs.stage_budget.BUDGET_KEYS`)."""
STAGE_PARTS = tuple(STAGE_SECTIONS)
"""The parts that are stage folders (teacher, supernet, search), each with a ``config.yaml``
of its own."""

STAGE_STATE = {"teacher": "checkpoint.pt", "supernet": "checkpoint.pt", "search": "state.npz"}
"""The file a stage resumes from: a raise of its budget is refused without it (a checkpoint
is loaded by :mod:`a2d_evo.runs.stage_budget`; the search's state is checked by ``evolve`` before
it binds its stage)."""


def holds_results(folder: Path) -> bool:
    """True when a stage folder holds anything a fresh start would overwrite."""
    return folder.is_dir() and any(_is_result(p) for p in folder.iterdir())


def _is_result(path: Path) -> bool:
    """False for what a run killed before its first checkpoint leaves: the stage's
    ``config.yaml``, the temp files of interrupted atomic writes, and the lock file (a
    killed holder leaves it, unlocked). Such a stage folder holds nothing to resume, so a
    fresh start may take it over."""
    if path.name in ("config.yaml", LOCK_FILE):
        return False
    return not (path.name.startswith(".") and path.name.endswith(".tmp"))


def is_a_run(folder: Path) -> bool:
    """A run folder: a config.yaml a run wrote, beside at least one stage folder (which
    holds one too, and no stage folder of its own: a run of its own named so is no stage)."""
    return written_by_a_run(folder / "config.yaml") and holds_a_stage(folder)


def holds_a_stage(folder: Path) -> bool:
    """Whether one of ``folder``'s stage parts (teacher, supernet, search) is a stage folder:
    a config.yaml a run wrote, without stage folders of its own. Part folders alone do not
    count: a command creates its own (``--out PROJECT/baselines/x`` makes ``baselines``)."""
    return any(
        written_by_a_run(folder / name / "config.yaml")
        and not any(written_by_a_run(folder / name / s / "config.yaml") for s in STAGE_PARTS)
        for name in STAGE_PARTS
    )


def written_by_a_run(path: Path) -> bool:
    """Whether ``path`` is a run's ``config.yaml`` (it opens with ``format_version``, which
    a user's own config does not write). Anything but a regular file is not one: a received
    folder's FIFO would block the read, and a link to ``/dev/zero`` has no first line."""
    tag = b"format_version:"
    try:
        if not path.is_file():
            return False
        with path.open("rb") as f:
            return f.read(len(tag)) == tag
    except OSError:
        return False
