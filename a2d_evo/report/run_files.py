"""The files of a run folder the report reads besides ``front.json``, each read leniently.

Agent folders (the teacher, the exported agents and the baselines: their ``metrics.json`` and
``arch.json``) and the search's tables (``history.csv``, ``hypervolume.csv``). A file that is
missing, damaged or too large, or that a symlink out of the run folder leads to, is not read:
the caller's ``missing`` list (the report's Missing) names it.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Any

from a2d_evo.errors import FormatError, RunFolderError
from a2d_evo.formats import METRICS_FORMAT_VERSION, check_metrics
from a2d_evo.report.rows import finite_or_none
from a2d_evo.runs.files import MAX_ARCH_JSON_BYTES, check_format_version, read_json
from a2d_evo.runs.folder import RunFolder


def _subfolders(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def own_subfolders(run: RunFolder, folder: Path, missing: list[str]) -> list[Path]:
    """:func:`_subfolders` that lie inside the run folder; one a symlink leads out of (or
    ``folder`` itself) is not read, and the report says so."""
    if _leaves(run, folder, missing):
        return []
    return [p for p in _subfolders(folder) if not _leaves(run, p, missing)]


def _leaves(run: RunFolder, path: Path, missing: list[str]) -> bool:
    try:
        run.inside(path, "agent folders")
    except RunFolderError:
        missing.append(
            f"`{path}` is a symlink that leads outside the run folder (to `{path.resolve()}`): "
            "not read"
        )
        return True
    return False


def agent_metrics(folder: Path, what: str, missing: list[str]) -> dict[str, Any] | None:
    """An agent folder's ``metrics.json``, checked; None (and a line in ``missing``) where it is
    absent or unreadable."""
    path = folder / "metrics.json"
    if not path.is_file():
        if folder.is_dir() and what != "teacher":
            missing.append(f"{what}: `{path}` not found")
        return None
    if not (folder / "arch.json").is_file():  # the folder's commit mark (save_agent)
        missing.append(f"{what}: `{folder}` has no arch.json (its save was cut short)")
        return None
    try:
        m = read_json(path, f"{what} metrics")
        check_format_version(m, METRICS_FORMAT_VERSION, f"{what} metrics {path}")
        check_metrics(m, f"{what} metrics {path}")
        if finite_or_none(m.get("return_mean")) is None or finite_or_none(m.get("flops")) is None:
            raise FormatError(f"{what} metrics {path} lack a finite return_mean and flops")
    except FormatError as exc:
        missing.append(f"{what}: unreadable ({exc})")
        return None
    return dict(m)


def agent_arch(folder: Path) -> dict[str, Any] | None:
    """An agent folder's ``arch.json`` as a mapping; None where it is absent or unreadable."""
    path = folder / "arch.json"
    if not path.is_file():
        return None
    try:  # read_json also turns a planted deep nesting (RecursionError) into FormatError
        meta = read_json(path, "agent file", max_bytes=MAX_ARCH_JSON_BYTES)
    except FormatError:
        return None
    arch = meta.get("arch") if isinstance(meta, dict) else None
    return arch if isinstance(arch, dict) else None


MAX_CSV_BYTES = 64 << 20
"""Largest search table the report reads: ``history.csv`` takes about 80 bytes an evaluated
arch (800,000 archs here: pop 4,096 over 200 generations passes it); each row becomes a dict
of about 140 times its bytes, so a planted 1 GB file would take the machine's memory."""


def _read_csv(path: Path, missing: list[str], what: str) -> list[dict[str, str]]:
    if not path.is_file():
        missing.append(f"{what} (`{path}`)")
        return []
    try:
        with path.open(newline="", encoding="utf-8") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_CSV_BYTES:
                missing.append(
                    f"{what}: `{path}` holds {size:,} bytes, more than the {MAX_CSV_BYTES:,} "
                    "the report reads; not shown"
                )
                return []
            return list(csv.DictReader(f))
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        missing.append(f"{what}: unreadable `{path}` ({exc})")
        return []


def read_history(path: Path, missing: list[str]) -> tuple[list[tuple[float, float]], list[int]]:
    """``(flops, return_mean)`` of every evaluated candidate, and the episode counts seen."""
    out, episodes = [], set()
    for rec in _read_csv(path, missing, "search history"):
        flops, ret = _parse(rec.get("flops")), _parse(rec.get("return_mean"))
        if flops is not None and ret is not None and flops > 0:
            out.append((flops, ret))
            n = _parse(rec.get("episodes"))
            if n is not None:
                episodes.add(int(n))
    return out, sorted(episodes)


def read_hypervolume(path: Path, missing: list[str]) -> list[tuple[int, float, int]]:
    """``(generation, hypervolume, front_size)`` per generation of ``hypervolume.csv``."""
    out = []
    for rec in _read_csv(path, missing, "hypervolume per generation"):
        gen, hv, size = (_parse(rec.get(k)) for k in ("generation", "hypervolume", "front_size"))
        if gen is not None and hv is not None and size is not None:
            out.append((int(gen), hv, int(size)))
    return sorted(out)


def _parse(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else math.nan
    except ValueError:
        return None
    return value if math.isfinite(value) else None
