"""``a2d-evo export``: the chosen front members written as agent folders, then fine-tuned.

Each member :mod:`a2d_evo.report.pick` chooses (and, with ``finetune.below_random``, the
costliest below-random archs) is checked against the search space
(:mod:`a2d_evo.report.front_file`) and extracted from the supernet into
``RUN_DIR/agents/<name>/`` with its front entry's figures; :mod:`a2d_evo.report.deliver` then
fine-tunes them and, for an export of every member, writes the delivered front.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from a2d_evo.config import Config, config_to_dict, replace
from a2d_evo.config.compare import training_sets
from a2d_evo.errors import ArchError, FormatError, RunFolderError
from a2d_evo.formats import (
    BELOW_PREFIX,
    BELOW_RANDOM_INDEX,
    FINAL_SEEDS,
    FRONT_INDEX,
    HV_FLOPS_MARGIN,
    INHERITED_KEYS,
)
from a2d_evo.nets.space import Arch, SearchSpace, arch_from_dict
from a2d_evo.report.delivered_file import read_delivered
from a2d_evo.report.front_file import from_another_front, load_front_and_digest
from a2d_evo.report.pick import below_random_picks, select
from a2d_evo.runs.files import MAX_ARCH_JSON_BYTES, read_json, read_json_dict, safe_name
from a2d_evo.runs.folder import RunFolder
from a2d_evo.runs.locks import folder_lock, writes

if TYPE_CHECKING:  # torch-heavy: imported where it is used
    from a2d_evo.nets.supernet import Supernet


# one export at a time into RUN_DIR/agents/, never through a symlink out of the run
@writes(lambda a: a["run"].inside(a["run"].agents, "agents"))
def export_front(
    cfg: Config,
    run: RunFolder,
    *,
    pick: str = "all",
    max_flops: float | None = None,
    min_return: float | None = None,
    finetune_steps: int | None = None,
    progress: bool = True,
) -> list[Path]:
    """Extract the selected front members into ``RUN_DIR/agents/<name>/`` and fine-tune them.

    ``metrics.json`` starts as the front entry (re-scored on fresh seeds by ``evolve``, kept
    under ``inherited``) with the latency re-measured on the extracted agent; then every
    exported member is fine-tuned for ``finetune_steps`` (default ``cfg.finetune.steps``) by
    :func:`~a2d_evo.report.deliver.finetune_members`. With ``pick="all"`` the members no other
    dominates after fine-tuning are the delivered front, ``RUN_DIR/agents/delivered.json``.
    An existing folder of the same name is replaced, unless it already holds this arch
    fine-tuned with this budget from the same supernet, front and teacher
    (:func:`export_sources`): an interrupted export continues agent by agent.
    """
    if finetune_steps is not None:
        cfg = replace(cfg, finetune=replace(cfg.finetune, steps=finetune_steps))
    # the supernet the members are extracted from and the teacher they are fine-tuned against
    # stay the files export_sources digests: a train-supernet or train-teacher (--resume)
    # writing either meanwhile is refused, as this export is while one of them runs
    with contextlib.ExitStack() as held:
        for stage in (run.supernet, run.teacher):
            held.enter_context(folder_lock(stage, create=False))
        return _export_front(cfg, run, pick, max_flops, min_return, progress)


def _export_front(
    cfg: Config,
    run: RunFolder,
    pick: str,
    max_flops: float | None,
    min_return: float | None,
    progress: bool,
) -> list[Path]:
    """:func:`export_front` with the supernet's and the teacher's folders locked."""
    # torch-heavy modules imported when an export runs: importing this module stays torch-free
    from a2d_evo.evaluation.seeds import check_scoring_seeds
    from a2d_evo.nets.agent_folder import ONNX_SKIPPED_NOTE, add_missing_onnx, onnx_available
    from a2d_evo.nets.supernet import load_supernet
    from a2d_evo.report.deliver import finetune_members, front_references, write_delivered

    data, front_sha = load_front_and_digest(run, cfg)
    front: list[dict[str, Any]] = data["front"]
    check_scoring_seeds(cfg, data, run.search / "front.json", "export")
    space = SearchSpace(cfg.space)
    if not run.supernet_weights.is_file():  # withdrawn by a raise of its budget since
        raise RunFolderError(
            f"no supernet weights at {run.supernet_weights}; {run.missing_hint('supernet')}"
        )
    supernet = load_supernet(cfg, run.supernet_weights)
    obs_shape, n_actions = supernet.obs_shape, supernet.n_actions
    path = run.search / "front.json"
    # every entry, not only the chosen ones: the knee and the filters read them all
    archs = [
        check_entry_arch(e, f"{path}: front entry {i}", space, obs_shape, n_actions)
        for i, e in enumerate(front)
    ]
    _check_reference(data["reference_point"][1], space, obs_shape, n_actions, path)
    below: list[dict[str, Any]] = data["below_random"]
    below_archs = [
        check_entry_arch(e, f"{path}: below_random entry {i}", space, obs_shape, n_actions)
        for i, e in enumerate(below)
    ]
    picks = [
        _Pick(name, front[i], archs[i], FRONT_INDEX, i)
        for name, i in select(front, pick, max_flops, min_return)
    ]
    asked = cfg.finetune.below_random if pick == "all" and cfg.finetune.steps else 0
    dropped = (data.get("search") or {}).get("dropped_below_random")
    if progress and asked > len(below) and isinstance(dropped, int) and dropped > len(below):
        print(
            f"export: finetune.below_random is {asked}, and {path} lists {len(below)} of the "
            f"{dropped} archs its search dropped as below random (as many as the "
            "finetune.below_random it searched with; none before 2026-12-07): "
            f"{len(below)} fine-tuned"
        )
    if asked:  # what a fine-tune may lift above random
        picks += [
            _Pick(f"{BELOW_PREFIX}{k:02d}", below[k], below_archs[k], BELOW_RANDOM_INDEX, k)
            for k in below_random_picks(below, cfg.finetune.below_random, max_flops, min_return)
        ]
    # what the report's Reproduce repeats, and when (the exports replayed in their order)
    command = {
        "options": export_options(run, cfg, pick, max_flops, min_return),
        "time_ns": time.time_ns(),
    }
    # the knee and --min-return read the front's final-seed figures (inherited weights), the
    # seeds that then score the agent: say so in its metrics.json (a choice on its own score)
    chosen_on = FINAL_SEEDS if pick == "knee" or min_return is not None else None
    for p in picks:  # before anything is written
        run.inside(run.agents / safe_name(p.name), "exported agents")
    if cfg.finetune.steps and not (run.teacher_agent / "arch.json").is_file():
        raise RunFolderError(
            f"export: fine-tuning (finetune.steps {cfg.finetune.steps:,}) distils from the run's "
            f"teacher, and {run.teacher_agent} holds none; put the teacher there, or export "
            "the inherited weights with --finetune 0"
        )
    if not onnx_available():  # once per export, however many agents it writes
        print(f"a2d-evo export: {ONNX_SKIPPED_NOTE}", file=sys.stderr)
    sources = export_sources(run, front_sha)
    searched = (data.get("search") or {}).get("sources") or {}
    if searched.get("supernet") not in (None, sources["supernet"]):
        raise RunFolderError(
            f"export: {run.supernet_weights} changed since the search chose {path} (a "
            "train-supernet --resume trained it further?): its members' figures are of the "
            f"old weights; search again after deleting {run.search}, or restore the weights"
        )
    # another teacher there now (none at all: --finetune 0 needs none, refused above else)
    if sources["teacher"] is not None and searched.get("teacher") not in (None, sources["teacher"]):
        raise RunFolderError(
            f"export: {run.teacher_agent} changed since the search chose {path} (a "
            "train-teacher --resume or import-teacher rewrote it?): the front is normalised "
            "against the old teacher, and the fine-tune would distil from the new one; restore "
            f"that teacher, or train the supernet and search again (delete {run.supernet} and "
            f"{run.search})"
        )
    folders = [run.agents / safe_name(p.name) for p in picks]
    # below_NN folders this export does not pick (an earlier one asked for more, or of an
    # earlier front): derived files only, which the report would list as current
    stale = (
        sorted(
            f
            for f in run.agents.glob(f"{BELOW_PREFIX}*")
            # the names export gives only (below_NN): a folder the user named so stays
            if f.name[len(BELOW_PREFIX) :].isdigit()
            and f.is_dir()
            and not f.is_symlink()
            and f not in folders
        )
        if pick == "all" and run.agents.is_dir()
        else []
    )
    with contextlib.ExitStack() as locks:  # every chosen folder before any is written:
        for folder in folders + stale:  # an eval or finetune may be writing one
            locks.enter_context(folder_lock(folder))
        # before any member is written: a delivered.json listing one this export extracts
        # anew describes weights that are about to go (an export interrupted while it
        # extracts would leave it, reported as current)
        keep = [_kept(cfg, f, p, sources) for p, f in zip(picks, folders, strict=True)]
        anew = [p for p, kept in zip(picks, keep, strict=True) if not kept]
        for folder, kept in zip(folders, keep, strict=True):
            # a member kept from an export before the export extra was installed
            if kept and add_missing_onnx(folder) and progress:
                print(f"{folder.name}: kept; policy.onnx written (the export extra is installed)")
        replaced = [safe_name(p.name) for p in anew] + [f.name for f in stale]
        _drop_stale_delivery(run, replaced, sources["front"], progress, delivers=pick == "all")
        for folder in stale:
            shutil.rmtree(folder)
            if progress:
                print(f"removed {folder}: a below-random arch this export does not fine-tune")
        for p in anew:
            _export_member(cfg, run, supernet, p, sources, chosen_on, progress, command)
        # what the front measured, where it is what a fine-tune would measure again: R_random
        # and R_teacher of the same teacher in the same eval.num_envs waves (R_random depends
        # on them), the inherited weights' figures of the same supernet (both as recorded by
        # the search; a front that records none is played again)
        same_teacher = (
            sources["teacher"] is not None and searched.get("teacher") == sources["teacher"]
        )
        same_waves = (run.stage_config("search") or cfg).eval.num_envs == cfg.eval.num_envs
        references = front_references(data, cfg, same_teacher and same_waves)
        scored = sources["supernet"] is not None and searched.get("supernet") == sources["supernet"]
        rows = finetune_members(cfg, run, folders, progress, references, front_scored=scored)
        if pick == "all":
            write_delivered(cfg, run, rows, sources["front"], chosen_on, progress, command)
    return folders


def export_options(
    run: RunFolder,
    cfg: Config,
    pick: str,
    max_flops: float | None,
    min_return: float | None,
) -> str:
    """The ``export`` options that select and fine-tune as this export does, for the report's
    Reproduce lines: the pick, the filters, the budget, and a ``--set`` for each fine-tune
    setting (``ppo``, ``distill``, ``finetune``) given on its command line, that is, where
    ``cfg`` differs from the config the search ran with."""
    base, _ = run.config_since("search")
    parts = [f"--pick {pick}"]
    parts += [f"--max-flops={max_flops!r}"] if max_flops is not None else []
    parts += [f"--min-return={min_return!r}"] if min_return is not None else []
    parts.append(f"--finetune {cfg.finetune.steps}")
    parts += training_sets(base, cfg)
    return " ".join(parts)


def check_entry_arch(
    entry: dict[str, Any],
    where: str,
    space: SearchSpace,
    obs_shape: tuple[int, ...],
    n_actions: int,
) -> Arch:
    """The arch of a front entry, after checking its encoding, FLOPs and parameters agree.

    An entry whose arch was edited would otherwise export one network (``arch.json``) with
    another's figures (``metrics.json``). FormatError names the entry and the field.
    """
    # cost imports torch: kept off this module's import (see the module docstring)
    from a2d_evo.nets import cost

    try:
        arch = space.check(arch_from_dict(entry["arch"]))
    except ArchError as exc:
        raise FormatError(f"{where}: arch: {exc}") from None
    enc = entry.get("encoding")
    if enc is None:
        raise FormatError(f"{where} has no 'encoding'")
    try:
        decoded = space.decode(enc)
    except ArchError as exc:
        raise FormatError(f"{where}: encoding: {exc}") from None
    if decoded != arch:
        raise FormatError(
            f"{where}: encoding {enc!r:.60} decodes to {decoded}, not the entry's arch {arch}; "
            "the entry was edited: re-create front.json with `a2d-evo evolve`"
        )
    c = cost.cost(arch, obs_shape, n_actions)
    for key, value in (("flops", c.flops), ("params", c.params)):
        if entry.get(key) != value:
            raise FormatError(
                f"{where}: {key} {entry.get(key)!r:.40} is not {arch}'s {value}; the entry "
                "was edited: re-create front.json with `a2d-evo evolve`"
            )
    return arch


def _check_reference(
    saved: float, space: SearchSpace, obs_shape: tuple[int, ...], n_actions: int, path: Path
) -> None:
    """``front.json``'s reference point is this space's: log10 of 1.1 x the FLOPs of its
    costliest arch. A front written before that point was priced on the costliest arch
    (2026-12-05; before, on :meth:`~SearchSpace.largest`, which in CNN spaces with a narrowing
    optional layer is cheaper: 9-10% on the shipped MinAtar spaces, several times in some
    declared ones) is exported with a note: its members do not depend
    on the point (NSGA-II ranks by dominance and crowding), only its hypervolume figures do."""
    # torch-heavy modules imported here, as in check_entry_arch
    from a2d_evo.nets import cost
    from a2d_evo.search.problem import reference_point

    ref = float(reference_point(space, obs_shape, n_actions)[1])
    if math.isclose(saved, ref, rel_tol=1e-9):
        return
    before = math.log10(HV_FLOPS_MARGIN * cost.flops(space.largest(), obs_shape, n_actions))
    if math.isclose(saved, before, rel_tol=1e-9):
        print(
            f"a2d-evo export: {path} was written before the hypervolume's reference point was "
            f"priced on the space's costliest arch (log10 FLOPs {saved:.4f}, now {ref:.4f}): "
            "its members are exported as they are; its hypervolume figures are not comparable "
            "with a newer run's",
            file=sys.stderr,
        )
        return
    raise FormatError(
        f"{path}: reference_point log10 FLOPs {saved:.6g} is not this run's {ref:.6g} (log10 "
        "of 1.1 x the FLOPs of the space's costliest arch): the front is not this space's; "
        "re-create it with `a2d-evo evolve`"
    )


@dataclass(frozen=True)
class _Pick:
    """One agent an export writes: its folder name, ``front.json`` entry and arch, and where
    the entry lies (``key``: :data:`FRONT_INDEX` or :data:`BELOW_RANDOM_INDEX`, ``index``)."""

    name: str
    entry: dict[str, Any]
    arch: Arch
    key: str
    index: int


def _export_member(
    cfg: Config,
    run: RunFolder,
    supernet: Supernet,
    pick: _Pick,
    sources: dict[str, str | None],
    chosen_on: str | None,
    progress: bool,
    command: dict[str, Any],
) -> None:
    """Extract ``pick`` into ``RUN_DIR/agents/<name>/`` (its lock held by the caller; a
    member :func:`_kept` holds already is not passed here).
    ``chosen_on``: the seeds ``--pick knee`` / ``--min-return`` chose it on, recorded;
    ``command``: the export options that made it (:func:`export_options`) and when."""
    # torch-heavy modules imported here, as in _export_front
    from a2d_evo.nets.agent_folder import extract, save_agent
    from a2d_evo.nets.cost import latency_ms

    entry = pick.entry
    target = run.agents / safe_name(pick.name)
    agent = extract(supernet, pick.arch)
    agent.env_config = _env_dict(cfg)
    metrics = {k: v for k, v in entry.items() if k not in ("arch", "encoding")}
    metrics["latency_ms"] = latency_ms(agent)
    metrics[pick.key] = pick.index
    metrics["sources"] = sources
    metrics["source"] = "front"  # its figures are the search's final re-scoring, as members'
    metrics["inherited"] = {k: entry.get(k) for k in INHERITED_KEYS}
    metrics["export_finetune"] = cfg.finetune.steps  # what the report's Reproduce repeats
    metrics["export_command"] = command
    if chosen_on is not None:
        metrics["chosen_on"] = chosen_on
    # a fine-tune saves the weights that ship, with their ONNX file: none for these before it
    save_agent(agent, target, metrics=metrics, onnx=False if cfg.finetune.steps else None)
    if progress:
        below = " (below random: to fine-tune)" if pick.key == BELOW_RANDOM_INDEX else ""
        print(
            f"exported {pick.name}: {pick.arch}  FLOPs {entry['flops']:,}  return "
            f"{entry['return_mean']:.2f}  normalised {entry['normalised_return']:.3f}{below}"
        )


def _kept(cfg: Config, target: Path, pick: _Pick, sources: dict[str, str | None]) -> bool:
    """Whether the folder ``target`` already holds ``pick`` as this export would leave it:
    the same entry of the same front, supernet and teacher, fine-tuned as asked now (or, with
    no fine-tune, extracted and never fine-tuned since)."""
    # imported here, as in _export_front: deliver brings in the fine-tune (torch)
    from a2d_evo.report.deliver import fine_tuned

    done = read_json_dict(target / "metrics.json", "metrics")
    as_asked = (
        fine_tuned(done, cfg)
        if cfg.finetune.steps
        else done.get("export_finetune") == 0 and "finetune_budget" not in done
    )
    other = BELOW_RANDOM_INDEX if pick.key == FRONT_INDEX else FRONT_INDEX
    return (
        as_asked
        and done.get(pick.key) == pick.index
        and other not in done
        and done.get("sources") == sources
        and _folder_arch(target) == pick.arch
    )


def export_sources(run: RunFolder, front_sha: str) -> dict[str, str | None]:
    """SHA-256 of the files an exported member derives from: the supernet's weights, the front
    it was picked from (``front_sha``: of the bytes the export read, not read again) and the
    teacher it is fine-tuned against (None when there is none).

    An interrupted export keeps a fine-tuned member only when all three are unchanged, so a
    retrained supernet or teacher whose search happens to give the same front is fine-tuned anew.
    """
    weights = run.weights_digests()
    return {
        "supernet": weights["supernet"],
        "front": front_sha,
        "teacher": weights["teacher"],
    }


def _drop_stale_delivery(
    run: RunFolder,
    names: Sequence[str],
    front_sha: str | None,
    progress: bool,
    delivers: bool = False,
) -> None:
    """Remove ``delivered.json`` when this export replaced (extracted anew) one of the members
    it lists, or when it was delivered from another ``front.json`` than the one digested as
    ``front_sha``; said with what delivers it again: this export when it ``delivers`` (every
    member), else an export at the budget the removed file was delivered with."""
    path = run.agents / "delivered.json"
    if not path.is_file():
        return
    budget = None
    try:
        data = read_delivered(path)
        listed = {r["agent"] for r in data["exported"]}
        other = from_another_front(data.get("front_sha256"), front_sha)  # stale too
        budget = data.get("finetune_steps")
    except (FormatError, OSError):
        listed, other = set(names), True  # unreadable: it cannot be trusted either
    if listed & set(names) or other:
        path.unlink()
        if progress:
            tune = f" --finetune {budget}" if isinstance(budget, int) else ""
            again = (
                "this export delivers the front again"
                if delivers
                else f"run `a2d-evo export {run.quoted}{tune}` to deliver the whole front again"
            )
            print(f"removed {path}: it listed agents this export replaced, or came from "
                  f"another front; {again}")  # fmt: skip


def _folder_arch(folder: Path) -> Arch | None:
    """The arch an agent folder's ``arch.json`` holds, or None when it cannot be read."""
    try:
        meta = read_json(folder / "arch.json", "arch", max_bytes=MAX_ARCH_JSON_BYTES)
        return arch_from_dict(meta.get("arch"))
    except (FormatError, ArchError, OSError, AttributeError):
        return None


def _env_dict(cfg: Config) -> dict[str, Any]:
    env: dict[str, Any] = config_to_dict(cfg.env)
    return env
