"""The teacher of the run an agent folder lies in, and what to do about a weak one.

A teacher that does not beat the uniform-random policy is refused wherever returns are
normalised against it; the refusal names the way out: for a run's own trained teacher the exact
``train-teacher --resume`` that trains it longer, else the general advice.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from a2d_evo.config import Config
from a2d_evo.formats import TEACHER_FIX, recorded_count
from a2d_evo.runs.files import read_json_dict
from a2d_evo.runs.folder import RunFolder, enclosing_run


def teacher_scores(folder: Path) -> str:
    """`` (greedy return R over N episodes; the uniform-random policy: R')`` from a teacher's
    ``metrics.json``, or "" when it records none: what ``train-teacher``, ``import-teacher``
    and the demo print once the teacher is there."""
    m = read_json_dict(Path(folder) / "metrics.json", "teacher metrics")
    mean, rand, n = m.get("return_mean"), m.get("random_return_mean"), m.get("episodes")
    if not isinstance(mean, float | int) or not isinstance(rand, float | int):
        return ""
    return f" (greedy return {mean:.2f} over {n} episodes; the uniform-random policy: {rand:.2f})"


def weak_teacher_fix(cfg: Config, folder: Path, extra: Mapping[str, Any]) -> str:
    """What to do about a teacher that has not learned: for a trained one the exact command
    that trains it longer (``--resume`` raising ``teacher.total_steps``, which keeps the
    steps already done), for an imported one to import a better one."""
    if extra.get("source") != "train-teacher":
        return "import a trained teacher, or train one with `a2d-evo train-teacher`"
    run = RunFolder(Path(folder).parent.parent)  # folder is RUN_DIR/teacher/agent
    # from the steps trained: a total below one rollout trains a whole one, and doubling the
    # configured total would name a command that trains nothing more
    trained = max(cfg.teacher.total_steps, recorded_count(extra.get("env_steps")))
    more = {"teacher.total_steps": 2 * trained}
    # a teacher stuck at the random policy's level may not recover with more steps (a
    # walkthrough doubled an Acrobot teacher's four times): another seed is the other way
    return (
        f"train it longer: {run.resume_command('teacher', more)}, or start it anew with "
        f"another seed (delete {run.teacher}, then train-teacher with --seed), or check the "
        "ppo settings"
    )


def teacher_fix(cfg: Config, teacher: str | Path) -> str:
    """What to do about the teacher folder ``teacher`` when it does not beat the random policy:
    :func:`weak_teacher_fix` for a run's own ``RUN_DIR/teacher/agent`` (its ``metrics.json``
    says how it was made), else the general advice :data:`~a2d_evo.formats.TEACHER_FIX`."""
    run = enclosing_run(teacher)
    if run is None or run.teacher_agent.resolve() != Path(teacher).resolve():
        return TEACHER_FIX
    return weak_teacher_fix(cfg, run.teacher_agent, read_json_dict(Path(teacher) / "metrics.json"))


def run_teacher(path: str | Path) -> Path | None:
    """``RUN_DIR/teacher/agent`` of the run ``path`` lies in, if that teacher exists."""
    run = enclosing_run(path)
    if run is None or not (run.teacher_agent / "arch.json").is_file():
        return None
    return run.teacher_agent
