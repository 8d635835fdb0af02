"""A stage's budget: what a ``--resume`` may raise, the checks of a raise, and its record.

A ``--resume`` must find the stage's config sections (:data:`~a2d_evo.runs.layout.STAGE_SECTIONS`)
as the stage was started with, but for a raised :data:`BUDGET_KEYS` value, which trains (or
searches) the stage on, finished or failed. The raise rewrites the stage's own ``config.yaml``
and is recorded in ``config_history.yaml`` beside it (:data:`CONFIG_HISTORY`), which the report
reads to say which commands made the run.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from a2d_evo.config import (
    Config,
    config_from_dict,
    config_to_dict,
    dump_config,
    parse_yaml,
    read_yaml_text,
)
from a2d_evo.config.compare import config_diff, setting
from a2d_evo.errors import ConfigError, FormatError, RunFolderError
from a2d_evo.formats import CONFIG_HISTORY_FORMAT_VERSION
from a2d_evo.progress import write
from a2d_evo.runs.files import (
    check_format_version,
    fsync_dir,
    read_checkpoint,
    write_text,
)
from a2d_evo.runs.layout import STAGE_SECTIONS, STAGE_STATE

BUDGET_KEYS: dict[str, tuple[str, ...]] = {
    "teacher": ("teacher.total_steps",),
    "supernet": ("supernet.total_steps",),
    "search": ("search.gens", "search.budget_steps"),
}
"""Keys a ``--resume`` may raise to train (or search) a stage longer, finished or failed:
without them a teacher that ended too weak could neither be re-run (the stage holds a run)
nor resumed, and a search could not run more generations. Each raise is recorded in
``RUN_DIR/<stage>/config_history.yaml`` (:data:`CONFIG_HISTORY`). ``search.budget_steps``
None is no budget: it can only be raised from a number."""

CONFIG_HISTORY = "config_history.yaml"
"""Per stage folder: ``{format_version, changes: [{time, key, from, to}, ...]}``, oldest first."""


def budget_raises(
    stage: str, folder: Path, saved: Config, cfg: Config, resume_command: Callable[..., str]
) -> dict[str, tuple[Any, Any]]:
    """The budget raises of a ``--resume`` with ``cfg`` over the stage's own ``saved``
    config (key -> (old, new)); RunFolderError for any other change, or a lowered one.
    ``folder`` is the stage's; ``resume_command`` is the run's
    :meth:`~a2d_evo.runs.folder.RunFolder.resume_command`, which the messages name."""
    diff = config_diff(saved, cfg, STAGE_SECTIONS[stage])
    budget = BUDGET_KEYS.get(stage, ())
    fixed = [k for k in diff if k not in budget]
    if fixed:
        may = f"; only {', '.join(budget)} may change (raised)" if budget else ""
        anew = (  # a search is cheap to redo from the stages it builds on
            f", or delete {folder} and search anew with the new settings (the teacher and "
            "supernet stay)"
            if stage == "search"
            else ""
        )
        raise RunFolderError(
            f"--resume: the config differs from the one {folder} was started with on "
            f"{', '.join(fixed)}{may}; resume with the same config: "
            f"{resume_command(stage)}{anew}"
        )
    changes = {k: (setting(saved, k), setting(cfg, k)) for k in diff}
    for key, (old, new) in changes.items():
        if old is None or new is None or new < old:  # None: no budget at all
            was = "was started without one" if old is None else f"was set to {old}"
            asked = "none" if new is None else f"{new}"
            raise RunFolderError(
                f"--resume: {key} may only be raised ({folder} {was}, asked {asked})"
                + (
                    # most often the --set of an earlier raise left out: the stage's own
                    # config continues at the recorded value
                    f"; continue at {old} with {resume_command(stage)}, or raise it "
                    f"with {resume_command(stage, {key: 2 * old})}"
                    if old
                    else ""
                )
            )
    return changes


def extend_stage(
    stage: str,
    folder: Path,
    saved: Config,
    cfg: Config,
    stage_product: Path,
    resume_command: Callable[..., str],
) -> None:
    """Check a ``--resume`` config against the stage's own; record a raised budget.

    Only :data:`BUDGET_KEYS` may differ, and only upwards (:func:`budget_raises`): the loop
    then trains on to the new total (see :mod:`a2d_evo.train.loop` for the learning
    rate). The stage's ``config.yaml`` takes the new value and ``config_history.yaml``
    beside it records the change, before anything trains. ``stage_product`` is the file that
    says the stage finished (:meth:`~a2d_evo.runs.folder.RunFolder.stage_product`); ``folder``
    and ``resume_command`` as for :func:`budget_raises`.
    """
    changes = budget_raises(stage, folder, saved, cfg, resume_command)
    if not changes:
        return
    # validate, then write: a stage that cannot be resumed refuses the raise before it is
    # recorded (a retry with the old budget would otherwise be "lowered")
    state = folder / STAGE_STATE[stage]
    if STAGE_STATE[stage] == "checkpoint.pt":  # this stage's, not only a torch file
        read_checkpoint(state, stage)
    elif not state.is_file():
        raise RunFolderError(
            f"--resume: {folder} holds no {state.name} to continue from (it stopped before "
            "its first one); drop --resume to start it anew"
        )
    batch = saved.ppo.batch_size  # a training budget runs in whole updates of this
    # evolve withdraws its own front on a raise, knowing whether it plays more
    product = None if stage == "search" else stage_product
    history = read_config_history(folder)  # a damaged one refuses before anything moves
    if product is not None and any(
        saved.ppo.updates_for(new) > saved.ppo.updates_for(old) for old, new in changes.values()
    ):
        # withdrawn before the raise is recorded: a raise killed before it trained to the
        # new total left the old result looking finished, and the next stages (and a
        # demo --resume) took it, under a config that states the new budget; the stage
        # writes it again when it finishes
        product.unlink(missing_ok=True)
        fsync_dir(product.parent)
    record_config_change(folder, changes, history)
    for key, (old, new) in changes.items():  # said, not silent: a forgotten --set shows
        n = saved.ppo.updates_for(new)
        same = key.endswith("total_steps") and saved.ppo.updates_for(old) == n
        # a search's raise may still play nothing (the other limit binds): evolve says
        goes_on = "" if stage == "search" else f", so {folder.name} goes on"
        write(
            f"--resume: {key} raised from {old:,} to {new:,}{goes_on} "
            f"(recorded in {folder / CONFIG_HISTORY})"
            if not same
            else f"--resume: {key} raised from {old:,} to {new:,} (recorded in "
            f"{folder / CONFIG_HISTORY}), but both run {n:,} whole update{'s' * (n != 1)} "
            f"of {batch:,} env steps: nothing more to train"
        )
    raw = config_to_dict(saved)
    for key, (_, new) in changes.items():
        section, _, name = key.partition(".")
        raw[section][name] = new
    write_text(folder / "config.yaml", dump_config(config_from_dict(raw)))


def read_config_history(folder: Path) -> list[dict[str, Any]]:
    """The changes recorded in ``folder/config_history.yaml`` (none when absent)."""
    path = Path(folder) / CONFIG_HISTORY
    if not path.is_file():
        return []
    try:
        data = parse_yaml(read_yaml_text(path, "config history", ConfigError), str(path))
    except ConfigError as exc:
        raise FormatError(f"{path} cannot be read ({exc}); repair or delete it") from None
    check_format_version(data, CONFIG_HISTORY_FORMAT_VERSION, str(path))
    changes = data.get("changes")
    if not isinstance(changes, list) or not all(isinstance(c, dict) for c in changes):
        raise FormatError(f"{path}: 'changes' must be a list of mappings; repair or delete it")
    return changes


def record_config_change(
    folder: Path, changes: dict[str, tuple[Any, Any]], history: list[dict[str, Any]] | None = None
) -> None:
    """Append ``{key: (old, new)}`` to ``folder/config_history.yaml`` (``history``: what it
    holds, read by the caller); a change equal to the last one recorded for its key (a resume
    that died before it saved the new config, then run again) is not repeated."""
    history = read_config_history(folder) if history is None else history
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for key, (old, new) in changes.items():
        entry = {"key": key, "from": old, "to": new}
        last = next((h for h in reversed(history) if h.get("key") == key), None)
        if last is not None and {k: last.get(k) for k in entry} == entry:
            continue
        history.append({"time": now, **entry})
    text = yaml.safe_dump(
        {"format_version": CONFIG_HISTORY_FORMAT_VERSION, "changes": history}, sort_keys=False
    )
    write_text(Path(folder) / CONFIG_HISTORY, text)
