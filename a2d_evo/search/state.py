"""The search's files under ``RUN_DIR/search/``, written after every generation.

No pickling: ``state.json`` (generation, the per-arch records with every episode's return,
length, seed and generation, normalisation, hypervolume history) and then ``state.npz``
(population X/F/G, NSGA-II's rank and crowding, the generator state, from
:func:`~a2d_evo.search.nsga.population_arrays`). ``state.npz`` is the commit point: a kill
between the two writes leaves a ``state.json`` one generation ahead;
:func:`~a2d_evo.search.saved_state.load_state` drops its episodes of the uncommitted
generation, which re-running that generation plays again. ``history.csv`` (every evaluated
arch, its mean over all its episodes) and ``hypervolume.csv`` (one row per generation, with
the env steps and episodes spent so far) are rewritten from the state each time. Reading a
state back, checked, is :mod:`~a2d_evo.search.saved_state`'s; a state of format 1 (first
estimates only) is refused there: it cannot be resumed noise-aware
(:data:`~a2d_evo.formats.OLD_SEARCH_NOTE`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2

from a2d_evo.formats import STATE_FORMAT_VERSION, Normalisation
from a2d_evo.runs.files import write_bytes, write_json, write_text
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
    "env_steps",
)
"""Columns of ``history.csv``: one row per evaluated arch, in order of first evaluation."""

HV_COLUMNS = ("generation", "hypervolume", "front_size", "env_steps", "episodes")
"""Columns of ``hypervolume.csv`` (and rows of the state's ``hypervolume``): per generation,
the population front's HV and size, and the env steps and episodes spent up to its end."""


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
    sources: dict[str, Any] | None = None,
    forward: str | None = None,
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
        "sources": dict(sources or {}),
        "forward": forward,
    }
    write_json(folder / "state.json", state)
    buf = io.BytesIO()
    np.savez(buf, **population_arrays(algorithm, generation))  # type: ignore[arg-type]
    write_bytes(folder / "state.npz", buf.getvalue())
    write_tables(folder, problem.cache_records(), hv_history)


def write_tables(
    folder: Path, records: Sequence[dict[str, Any]], hv_history: Sequence[Sequence[float]]
) -> None:
    """``history.csv`` from the records and ``hypervolume.csv`` from the HV history."""
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
                sum(e["lengths"]),
            ]
        )
    write_text(folder / "history.csv", out.getvalue())
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(HV_COLUMNS)
    for gen, hv, size, steps, episodes in hv_history:
        w.writerow([int(gen), repr(float(hv)), int(size), int(steps), int(episodes)])
    write_text(folder / "hypervolume.csv", out.getvalue())
