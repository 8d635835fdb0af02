"""The search's files under ``RUN_DIR/search/``, written after every generation.

No pickling: ``state.json`` (generation, evaluation cache, normalisation, hypervolume
history) and then ``state.npz`` (population X/F/G, NSGA-II's rank and crowding, the
generator state, from :func:`~a2d_evo.search.nsga.population_arrays`). ``state.npz`` is the
commit point: a kill between the two writes leaves a ``state.json`` one generation ahead,
whose extra cache entries are exactly what re-running that generation computes again.
``history.csv`` (every evaluated arch) and ``hypervolume.csv`` (one row per generation) are
rewritten from the state each time.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2

from a2d_evo.errors import FormatError
from a2d_evo.formats import STATE_FORMAT_VERSION, Normalisation
from a2d_evo.runfolder import read_json, write_bytes, write_json, write_text
from a2d_evo.search.nsga import population_arrays
from a2d_evo.search.problem import SubnetProblem

HISTORY_COLUMNS = (
    "generation",
    "encoding",
    "arch",
    "return_mean",
    "return_std",
    "episodes",
    "flops",
    "params",
)
"""Columns of ``history.csv``: one row per evaluated arch, in evaluation order."""

_NPZ_KEYS = {"format_version", "generation", "X", "F", "G", "rank", "crowding", "rng"}


@dataclass(frozen=True)
class SavedSearch:
    """A search state read back from ``state.json`` + ``state.npz``."""

    generation: int
    """Generations finished (the commit point's, ``state.npz``)."""
    finished: bool
    norm: Normalisation
    hv_history: list[list[float]]
    """``[generation, hypervolume, front size]`` of each finished generation."""
    cache: list[dict[str, Any]]
    arrays: dict[str, np.ndarray]


def save_state(
    folder: Path,
    problem: SubnetProblem,
    algorithm: NSGA2,
    *,
    generation: int,
    finished: bool,
    norm: Normalisation,
    ref: np.ndarray,
    hv_history: Sequence[Sequence[float]],
) -> None:
    """Write the state after ``generation`` generations, then the two tables."""
    state = {
        "format_version": STATE_FORMAT_VERSION,
        "generation": generation,
        "finished": finished,
        "normalisation": norm.to_dict(),
        "reference_point": ref.tolist(),
        "hypervolume": [list(r) for r in hv_history[:generation]],
        "cache": problem.cache_records(),
    }
    write_json(folder / "state.json", state)
    buf = io.BytesIO()
    np.savez(buf, **population_arrays(algorithm, generation))  # type: ignore[arg-type]
    write_bytes(folder / "state.npz", buf.getvalue())
    write_tables(folder, problem.cache_records(), hv_history)


def load_state(folder: Path) -> SavedSearch | None:
    """The state in ``folder`` (None when no generation was committed); FormatError if broken."""
    npz_path, json_path = folder / "state.npz", folder / "state.json"
    if not npz_path.is_file():
        return None
    try:
        with np.load(npz_path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise FormatError(f"search state {npz_path} is unreadable: {exc}") from None
    if not _NPZ_KEYS <= set(arrays) or int(arrays["format_version"]) != STATE_FORMAT_VERSION:
        raise FormatError(f"search state {npz_path} is not a state this a2d-evo wrote")
    state = read_json(json_path, "search state", format_version=STATE_FORMAT_VERSION)
    gen = int(arrays["generation"])
    if not isinstance(state, dict) or int(state.get("generation", -1)) < gen:
        raise FormatError(f"search state {json_path} is older than {npz_path}")
    return SavedSearch(
        generation=gen,
        finished=bool(state.get("finished")),
        norm=Normalisation.from_dict(state.get("normalisation")),
        hv_history=[list(r) for r in state.get("hypervolume", [])][:gen],
        cache=list(state.get("cache", [])),
        arrays=arrays,
    )


def write_tables(
    folder: Path, records: Sequence[dict[str, Any]], hv_history: Sequence[Sequence[float]]
) -> None:
    """``history.csv`` from the cache records and ``hypervolume.csv`` from the HV history."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(HISTORY_COLUMNS)
    for e in records:
        w.writerow(
            [
                e["generation"],
                " ".join(map(str, e["encoding"])),
                e["arch"],
                repr(e["return_mean"]),
                repr(e["return_std"]),
                e["episodes"],
                e["flops"],
                e["params"],
            ]
        )
    write_text(folder / "history.csv", out.getvalue())
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(("generation", "hypervolume", "front_size"))
    for gen, hv, size in hv_history:
        w.writerow([int(gen), repr(float(hv)), int(size)])
    write_text(folder / "hypervolume.csv", out.getvalue())
