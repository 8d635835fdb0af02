"""``RUN_DIR/search/front.json`` read and checked: its env, reference point and entries.

:func:`load_front` checks what needs no network, so the torch-free report reads the front
through it; ``a2d-evo export`` then checks each entry's arch and the reference point against
the search space (:mod:`a2d_evo.report.front_export`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from a2d_evo.config import MAX_POP, MAX_WORKERS, Config
from a2d_evo.errors import FormatError, RunFolderError
from a2d_evo.formats import (
    FRONT_FORMAT_VERSION,
    OLD_SEARCH_NOTE,
    Normalisation,
    check_metrics,
    finite_number,
)
from a2d_evo.runs.files import check_format_version, read_json_and_digest
from a2d_evo.runs.folder import RunFolder


def load_front(run: RunFolder, cfg: Config | None = None) -> dict[str, Any]:
    """``RUN_DIR/search/front.json``, checked; RunFolderError when the search has not finished.

    Checked against ``cfg`` (default: the run's ``config.yaml`` when there is one): the env,
    the reference point and the normalisation, and every entry's figures against them, so
    that a front edited by hand or taken from another run stops here.
    """
    return load_front_and_digest(run, cfg)[0]


def load_front_and_digest(run: RunFolder, cfg: Config | None = None) -> tuple[dict[str, Any], str]:
    """:func:`load_front` and the SHA-256 of the bytes it read (an export records the front it
    picked from: a second read could hash a front a concurrent ``evolve --resume`` wrote)."""
    path = run.search / "front.json"
    if not path.is_file():
        raise RunFolderError(
            f"no finished search in {run.root} (no {path}); {run.missing_hint('search')}"
        )
    data, digest = read_json_and_digest(path, "front file")
    if isinstance(data, dict) and data.get("format_version") == 1:
        raise FormatError(f"front file {path} has format_version 1: {OLD_SEARCH_NOTE}")
    check_format_version(data, FRONT_FORMAT_VERSION, f"front file {path}")
    front = data.get("front")
    if not isinstance(front, list) or not front:
        raise FormatError(f"{path}: 'front' must be a non-empty list")
    below = data.setdefault("below_random", [])  # absent before 2026-12-07: none
    if not isinstance(below, list):
        raise FormatError(f"{path}: 'below_random' must be a list")
    # a front is chosen from at most search.candidates archs (MAX_POP), the below-random ones
    # are at most finetune.below_random: more entries are no search's (a planted 200,000 made
    # export fine-tune each and the report's dominance sort take an hour)
    for part, entries, most in (("front", front, MAX_POP), ("below_random", below, MAX_WORKERS)):
        if len(entries) > most:
            raise FormatError(
                f"{path}: {len(entries):,} {part} entries, more than any search delivers ({most:,})"
            )
    for part, entries in (("front", front), ("below_random", below)):
        for i, entry in enumerate(entries):
            check_metrics(entry, f"{path}: {_entry_name(part)} {i}", FRONT_ENTRY_KEYS)
    if not isinstance(data.get("normalisation") or {}, dict):
        raise FormatError(f"{path}: 'normalisation' must be a mapping")
    if cfg is None and run.exists():
        cfg = run.load_config()
    _check_front(data, path, cfg.env.id if cfg is not None else None)
    return data, digest


FRONT_ENTRY_KEYS = ("arch", "flops", "normalised_return", "return_mean")
"""What every entry of ``front.json`` (a member or a below-random arch) holds."""


def _entry_name(part: str) -> str:
    """How messages name an entry of ``front.json``'s ``front`` or ``below_random`` list."""
    return "front entry" if part == "front" else "below_random entry"


def _check_front(data: dict[str, Any], path: Path, env_id: str | None) -> None:
    """The front's env, reference point and normalisation, and its entries against them."""
    # the file-level env_id is not in the contract (entries carry theirs): checked if present
    front_env = data.get("env_id", env_id)
    if front_env is not None and not isinstance(front_env, str):
        raise FormatError(f"{path}: env_id must be a string, got {front_env!r:.60}")
    if env_id is not None and front_env != env_id:
        raise FormatError(
            f"{path}: env_id {front_env!r:.60} is not the run's env {env_id!r}; this front "
            "belongs to another run"
        )
    ref = data.get("reference_point")
    if (
        not isinstance(ref, list)
        or len(ref) != 2
        or not all(finite_number(v) for v in ref)
        or ref[0] != 0
        or ref[1] <= 0
    ):
        raise FormatError(f"{path}: reference_point must be [0, log10 FLOPs > 0], got {ref!r:.80}")
    try:
        norm = Normalisation.from_dict(data.get("normalisation"))
    except FormatError as exc:
        raise FormatError(f"{path}: {exc}") from None
    entries = [("front", i, e) for i, e in enumerate(data["front"])]
    entries += [("below_random", i, e) for i, e in enumerate(data["below_random"])]
    for part, i, e in entries:
        where = f"{path}: {_entry_name(part)} {i}"
        if front_env is not None and e.get("env_id", front_env) != front_env:
            raise FormatError(
                f"{where}: env_id {e['env_id']!r:.60} is not the run's {front_env!r}; this "
                "entry belongs to another run"
            )
        for key in ("flops", "params"):
            v = e.get(key)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise FormatError(f"{where}: {key} must be an integer >= 1, got {v!r:.60}")
        want = float(norm.score(float(e["return_mean"])))
        if not math.isclose(e["normalised_return"], want, rel_tol=1e-9, abs_tol=1e-9):
            raise FormatError(
                f"{where}: normalised_return {e['normalised_return']!r} is not "
                f"(return_mean - r_random) / (r_teacher - r_random) = {want!r}"
            )


def from_another_front(recorded: Any, front_sha: str | None) -> bool:
    """True when the ``front.json`` digest a file recorded (an agent's ``sources.front``,
    ``delivered.json``'s ``front_sha256``) is another front's than ``front_sha``; a file
    written before the digest was recorded (None) is not told."""
    return recorded not in (None, front_sha)
