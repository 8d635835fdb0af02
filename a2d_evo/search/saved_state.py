"""A search state read back from ``RUN_DIR/search/``, every value checked before use.

:func:`load_state` reads what :func:`~a2d_evo.search.state.save_state` wrote, from its commit
point (``state.npz``) on: a ``state.json`` one generation ahead has the episodes of the
uncommitted generation dropped (:func:`_committed`), which re-running that generation plays
again. Before the search computes with anything, the arrays' shapes, dtypes and values, the
hypervolume history and every cache record are checked, and with a :class:`StateSpec` (what
the run's config says a state must fit) also the encodings, the cached costs, the
population's objectives against the records and the hypervolume reference point. A damaged or
foreign state is a one-line :class:`~a2d_evo.errors.FormatError`; one of format 1 (first
estimates only) is refused (:data:`~a2d_evo.formats.OLD_SEARCH_NOTE`).
"""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from a2d_evo.config import MAX_ANCHORS
from a2d_evo.errors import ArchError, FormatError
from a2d_evo.formats import OLD_SEARCH_NOTE, STATE_FORMAT_VERSION, Normalisation, finite_number
from a2d_evo.nets import cost
from a2d_evo.nets.space import SearchSpace
from a2d_evo.runs.files import MAX_JSON_BYTES, check_stored_archive, read_json
from a2d_evo.search.estimates import arch_estimates
from a2d_evo.search.problem import UNPLAYED_RETURN, reference_point, summarise
from a2d_evo.search.state import HV_COLUMNS

_NPZ_KEYS = {"format_version", "generation", "X", "F", "G", "rank", "crowding", "rng"}

STATE_BYTES_PER_GENERATION = 16 << 20
"""The most ``state.json`` may grow by a generation: 65,536 episodes (``MAX_EVAL_SLOTS``)
of about 140 bytes each as written, with room; the read limit is this per generation the
``state.npz`` records (and never below the files' own, ``MAX_JSON_BYTES``)."""


@dataclass(frozen=True)
class SavedSearch:
    """A search state read back from ``state.json`` + ``state.npz``."""

    generation: int
    """Generations finished (the commit point's, ``state.npz``)."""
    finished: bool
    norm: Normalisation
    hv_history: list[list[float]]
    """:data:`~a2d_evo.search.state.HV_COLUMNS` of each finished generation."""
    cache: list[dict[str, Any]]
    arrays: dict[str, np.ndarray]
    sources: dict[str, Any]
    """What the records are of (``RunFolder.weights_digests``); {} in states before it."""
    forward: str | None = None
    """The population forward's arithmetic the records were played with
    (``PopulationForward.numerics``); None in states before it, or when not known."""


@dataclass(frozen=True)
class StateSpec:
    """What a saved state must fit: the run's space, env, population size and FLOPs ceiling."""

    space: SearchSpace
    obs_shape: tuple[int, ...]
    n_actions: int
    pop: int
    max_flops: float | None
    estimate: str = "mean"
    """``search.estimate``: what the saved population's objectives were computed from."""


_UNREADABLE = (
    OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error,
    MemoryError,  # a member whose header claims 8 TiB
)  # fmt: skip
"""What reading a damaged ``state.npz`` raises: said as an unreadable state."""


def load_state(folder: Path, spec: StateSpec | None = None) -> SavedSearch | None:
    """The state in ``folder`` (None when no generation was committed); FormatError if broken.

    Every value is checked before the search computes with it (a NaN objective would
    silently drop members from the front): shapes, dtypes and finiteness always, and with
    ``spec`` also the encodings (in bounds; the cache's canonical), the cached FLOPs and
    parameters, and the population's objectives against the cache.
    """
    npz_path, json_path = folder / "state.npz", folder / "state.json"
    if not npz_path.is_file():
        return None
    check_stored_archive(npz_path, f"search state {npz_path}")  # its own message, whole
    try:
        with np.load(npz_path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except _UNREADABLE as exc:
        why = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise FormatError(
            f"search state {npz_path} is unreadable ({why}); delete {folder} and run "
            "`a2d-evo evolve` again without --resume"
        ) from None
    if not isinstance(arrays, dict) or not _NPZ_KEYS <= set(arrays):
        raise FormatError(f"search state {npz_path} is not a state this a2d-evo wrote")
    version = _scalar_int(arrays, "format_version", npz_path)
    if version == 1:
        raise FormatError(f"search state {npz_path} has format_version 1: {OLD_SEARCH_NOTE}")
    if version != STATE_FORMAT_VERSION:
        raise FormatError(f"search state {npz_path} is not a state this a2d-evo wrote")
    gen = _scalar_int(arrays, "generation", npz_path)
    if gen < 0:
        raise FormatError(f"search state {npz_path}: generation must be >= 0, got {gen}")
    _check_arrays(arrays, gen, npz_path, spec)
    # the state grows with the search: every episode of every generation (at most 65,536
    # episodes a generation, MAX_EVAL_SLOTS, about 140 bytes each as written)
    limit = max(MAX_JSON_BYTES, (gen + 1) * STATE_BYTES_PER_GENERATION)
    state = read_json(
        json_path, "search state", format_version=STATE_FORMAT_VERSION, max_bytes=limit
    )
    if not isinstance(state, dict):
        raise FormatError(f"search state {json_path} must be a mapping")
    json_gen = state.get("generation")
    if not isinstance(json_gen, int) or isinstance(json_gen, bool):
        raise FormatError(
            f"search state {json_path}: generation must be an integer, got {json_gen!r:.60}"
        )
    if json_gen < gen:
        raise FormatError(f"search state {json_path} is older than {npz_path}")
    if json_gen > gen + 1:  # the commit point is at most one write behind state.json
        raise FormatError(
            f"search state {json_path}: generation {json_gen} is more than one ahead of "
            f"{npz_path} ({gen})"
        )
    finished = state.get("finished")
    if not isinstance(finished, bool):
        raise FormatError(f"search state {json_path}: finished must be true or false")
    try:
        norm = Normalisation.from_dict(state.get("normalisation"))
    except FormatError as exc:
        raise FormatError(f"search state {json_path}: {exc}") from None
    hv_history = _hv_history(state.get("hypervolume"), gen, json_path, spec)
    cache = _committed(_cache(state.get("cache"), json_gen, json_path, spec), gen)
    if spec is not None:
        if spec.estimate != "mean" and cache and not any(r.get("anchor") for r in cache):
            raise FormatError(
                f"search state {json_path}: this search ranks on '{spec.estimate}' estimates "
                "but its records hold no anchor archs (it was written before the seed effects "
                "were measured on anchors, docs/search.md), so resuming it would mix two rules: "
                "run `a2d-evo evolve` again, into a new run folder (--out) or after deleting "
                "RUN_DIR/search"
            )
        _check_objectives(arrays, cache, norm, npz_path, spec)
        _check_reference(state.get("reference_point"), json_path, spec)
    return SavedSearch(
        generation=gen,
        finished=finished,
        norm=norm,
        hv_history=hv_history,
        cache=cache,
        arrays=arrays,
        sources=_sources(state.get("sources"), json_path),
        forward=_forward(state.get("forward"), json_path),
    )


def _sources(value: Any, path: Path) -> dict[str, Any]:
    """The recorded digests: a mapping of names to hex strings or null ({} when absent)."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in value.items()
    ):
        raise FormatError(f"search state {path}: sources must map names to digests")
    return value


def _forward(value: Any, path: Path) -> str | None:
    """The recorded population forward: a short string, or null (None when absent)."""
    if value is not None and (not isinstance(value, str) or not 0 < len(value) <= 64):
        raise FormatError(f"search state {path}: forward must be a short string or null")
    return value


def _check_reference(saved: Any, path: Path, spec: StateSpec) -> None:
    """The saved hypervolume history was measured against this run's reference point: a
    state whose point differs (a search written before the point was priced on the space's
    costliest arch, docs/search.md) would mix two references in one history."""
    ref = reference_point(spec.space, spec.obs_shape, spec.n_actions)
    ok = (
        isinstance(saved, list)
        and len(saved) == len(ref)
        and all(finite_number(v) for v in saved)
        and np.allclose(np.asarray(saved, dtype=np.float64), ref, rtol=1e-9, atol=0.0)
    )
    if not ok:
        raise FormatError(
            f"search state {path}: its hypervolume reference point {saved!r:.80} is not this "
            f"run's {ref.tolist()} (log10 of 1.1 x the FLOPs of the space's costliest arch, "
            "docs/search.md), so resuming would mix two references in one history: run "
            "`a2d-evo evolve` again, into a new run folder (--out) or after deleting "
            "RUN_DIR/search"
        )


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _scalar_int(arrays: dict[str, np.ndarray], key: str, path: Path) -> int:
    a = arrays[key]
    if a.shape != () or a.dtype.kind not in "iu":
        raise FormatError(
            f"search state {path}: {key} must be one integer, got {a.dtype} {a.shape}"
        )
    return int(a)


def _check_arrays(
    arrays: dict[str, np.ndarray], gen: int, path: Path, spec: StateSpec | None
) -> None:
    """Shapes, dtypes and values of the population arrays of ``state.npz``."""
    where = f"search state {path}"
    X, F, G = arrays["X"], arrays["F"], arrays["G"]
    if X.ndim != 2 or X.dtype.kind not in "iu":
        raise FormatError(f"{where}: X must be a 2-D integer array, got {X.dtype} {X.shape}")
    n = len(X)
    n_var = spec.space.n_var if spec is not None else X.shape[1]
    if X.shape[1] != n_var:
        raise FormatError(f"{where}: X has shape {X.shape}, the search space needs (n, {n_var})")
    if gen > 0 and n == 0:
        raise FormatError(f"{where}: generation {gen} with an empty population")
    if spec is not None and n > spec.pop:
        raise FormatError(f"{where}: {n} members, more than the population size {spec.pop}")
    if spec is not None:
        n_constr = 1 if spec.max_flops is not None else 0
    else:
        n_constr = G.shape[1] if G.ndim == 2 else -1  # -1: no shape matches
    for key, shape in (("F", (n, 2)), ("G", (n, n_constr)), ("rank", (n,)), ("crowding", (n,))):
        a = arrays[key]
        if a.shape != shape or a.dtype.kind != "f":
            raise FormatError(f"{where}: {key} must be floats of shape {shape}, got {a.shape}")
    if not (np.isfinite(F).all() and np.isfinite(G).all()):
        raise FormatError(f"{where}: the objectives F and constraints G must be finite")
    if n and F[:, 1].min() < 1:
        raise FormatError(f"{where}: F holds FLOPs below 1")
    rank, crowd = arrays["rank"], arrays["crowding"]
    ok_rank = np.isnan(rank) | ((rank >= 0) & (rank == np.round(rank)) & np.isfinite(rank))
    if not ok_rank.all() or (crowd < 0).any():
        raise FormatError(f"{where}: rank must be whole numbers >= 0 and crowding >= 0")
    rng = arrays["rng"]
    if rng.shape != (6,) or rng.dtype != np.uint64 or rng[4] > 1 or rng[5] >= 1 << 32:
        raise FormatError(f"{where}: rng is not a PCG64 generator state")
    if spec is not None and n:
        space = spec.space
        if (X < space.xl).any() or (X > space.xu).any():
            raise FormatError(f"{where}: X holds genes outside the search space's bounds")


def _hv_history(raw: Any, gen: int, path: Path, spec: StateSpec | None) -> list[list[float]]:
    """:data:`HV_COLUMNS` rows, one per finished generation."""
    where = f"search state {path}: hypervolume"
    if not isinstance(raw, list) or len(raw) < gen:
        raise FormatError(f"{where} must be a list of at least {gen} rows")
    rows: list[list[float]] = []
    for i, row in enumerate(raw[:gen]):
        if (
            not isinstance(row, list)
            or len(row) != len(HV_COLUMNS)
            or row[0] != i
            or not all(_is_int(row[k]) for k in (0, 2, 3, 4))
            or not finite_number(row[1])
            or min(row[1:]) < 0
            or (spec is not None and row[2] > spec.pop)
            or (rows and (row[3] < rows[-1][3] or row[4] < rows[-1][4]))
        ):
            raise FormatError(
                f"{where}: row {i} must be [{i}, hypervolume >= 0, front size, env steps, "
                f"episodes] (steps and episodes never decreasing), got {row!r:.80}"
            )
        rows.append(list(row))
    return rows


def _cache(raw: Any, json_gen: int, path: Path, spec: StateSpec | None) -> list[dict[str, Any]]:
    """The evaluation cache records, each checked (and, with ``spec``, its arch and cost)."""
    where = f"search state {path}: cache"
    if not isinstance(raw, list):
        raise FormatError(f"{where} must be a list")
    if spec is not None and len(raw) > spec.pop * json_gen + MAX_ANCHORS:
        raise FormatError(
            f"{where} holds {len(raw)} records, more than {json_gen} generations of "
            f"{spec.pop} and {MAX_ANCHORS} anchors can have evaluated"
        )
    seen: set[bytes] = set()
    out: list[dict[str, Any]] = []
    for i, rec in enumerate(raw):
        bad = _bad_record(rec, json_gen)
        if bad is None and spec is not None:
            bad = _bad_record_arch(rec, spec, seen)
        if bad is not None:
            raise FormatError(f"{where} record {i}: {bad}")
        out.append(dict(rec))
    return out


_EPISODE_LISTS = ("returns", "lengths", "seeds", "generations")


def _bad_record(rec: Any, json_gen: int) -> str | None:
    """What is wrong with a cache record's types and ranges (None when nothing)."""
    if not isinstance(rec, dict):
        return "must be a mapping"
    for key in ("generation", "order", "episodes", "flops", "params"):
        if not _is_int(rec.get(key)):
            return f"{key} must be an integer, got {rec.get(key)!r:.60}"
    if not 0 <= rec["generation"] < max(json_gen, 1):
        return f"generation {rec['generation']} is outside 0-{json_gen - 1}"
    if rec["order"] < 0 or rec["episodes"] < 1 or rec["flops"] < 1 or rec["params"] < 1:
        return "order must be >= 0 and episodes, flops and params >= 1"
    for key in _EPISODE_LISTS:
        v = rec.get(key)
        if not isinstance(v, list) or len(v) != rec["episodes"]:
            return f"{key} must be a list of {rec['episodes']} (episodes) values, got {v!r:.60}"
    if not all(finite_number(r) for r in rec["returns"]):
        return "returns must be finite numbers"
    if not all(_is_int(x) and 1 <= x for x in rec["lengths"]):
        return "lengths must be integers >= 1"
    if not all(_is_int(x) and 0 <= x < 2**31 for x in rec["seeds"]):
        return "seeds must be integers in 0-2**31"
    gens = rec["generations"]
    if not all(_is_int(x) for x in gens) or gens != sorted(gens) or gens[0] != rec["generation"]:
        return "generations must be integers, never decreasing, from the record's generation"
    if gens[-1] >= max(json_gen, 1):
        return f"generation {gens[-1]} of an episode is outside 0-{json_gen - 1}"
    for key in ("return_mean", "return_std"):
        if not finite_number(rec.get(key)):
            return f"{key} must be a finite number, got {rec.get(key)!r:.60}"
    want = dict(rec)
    summarise(want)
    if not np.allclose(
        [rec["return_mean"], rec["return_std"]],
        [want["return_mean"], want["return_std"]],
        rtol=1e-12,
        atol=1e-12,
    ):
        return "return_mean/return_std are not the mean/std of its returns"
    enc = rec.get("encoding")
    if not isinstance(enc, list) or not all(_is_int(g) for g in enc):
        return f"encoding must be a list of integers, got {enc!r:.60}"
    if not isinstance(rec.get("arch"), str):
        return "arch must be a string"
    if rec.get("anchor", True) is not True:
        return f"anchor must be true where present, got {rec['anchor']!r:.60}"
    return None


def _committed(cache: list[dict[str, Any]], gen: int) -> list[dict[str, Any]]:
    """The records as they stood after ``gen`` generations: episodes of later generations
    (a ``state.json`` written ahead of its ``state.npz``) are dropped, and so are the records
    left with none; re-running those generations plays them again, bit for bit."""
    out = []
    for rec in cache:
        keep = [i for i, g in enumerate(rec["generations"]) if g < gen]
        if not keep:
            continue
        if len(keep) < len(rec["generations"]):
            rec = dict(rec)
            for key in _EPISODE_LISTS:
                rec[key] = [rec[key][i] for i in keep]
            summarise(rec)
        out.append(rec)
    return out


def _bad_record_arch(rec: dict[str, Any], spec: StateSpec, seen: set[bytes]) -> str | None:
    """What is wrong with a record's encoding, arch and cost in ``spec`` (None when nothing)."""
    try:
        enc = np.asarray(rec["encoding"], dtype=np.int64)
        canon = spec.space.canonical(enc)
        arch = spec.space.decode(canon)
    except (ArchError, OverflowError, ValueError) as exc:
        return f"encoding {rec['encoding']!r:.60} is not in the search space ({exc})"
    if not np.array_equal(canon, enc):
        return f"encoding {rec['encoding']} is not canonical"
    if canon.tobytes() in seen:
        return f"encoding {rec['encoding']} is recorded twice"
    seen.add(canon.tobytes())
    if rec["arch"] != str(arch):
        return f"arch {rec['arch']!r:.60} is not its encoding's {arch}"
    c = cost.cost(arch, spec.obs_shape, spec.n_actions)
    if (rec["flops"], rec["params"]) != (c.flops, c.params):
        return f"flops/params {rec['flops']}/{rec['params']} are not {arch}'s {c.flops}/{c.params}"
    return None


def _check_objectives(
    arrays: dict[str, np.ndarray],
    cache: list[dict[str, Any]],
    norm: Normalisation,
    path: Path,
    spec: StateSpec,
) -> None:
    """The population's objectives (and constraint) are its members' cached figures: their
    returns under ``spec.estimate`` (:func:`arch_estimates` of the committed records) and FLOPs."""
    returns = arch_estimates(cache, spec.space, spec.estimate)
    by_key = {
        np.asarray(r["encoding"], dtype=np.int64).tobytes(): (r, float(ret))
        for r, ret in zip(cache, returns, strict=True)
    }
    X, F, G = arrays["X"], arrays["F"], arrays["G"]
    for i, row in enumerate(np.asarray(X, dtype=np.int64)):
        # members keep their inactive genes (crossover uses them): look up the canonical form
        found = by_key.get(spec.space.key(row))
        if found is not None:
            rec, ret = found
            flops = float(rec["flops"])
            want = [-float(norm.score(ret)), flops]
        else:  # only an arch over the ceiling, never played, has none
            flops = float(cost.flops(spec.space.decode(row), spec.obs_shape, spec.n_actions))
            if spec.max_flops is None or flops <= spec.max_flops:
                raise FormatError(f"search state {path}: member {i} of X has no cache record")
            want = [-UNPLAYED_RETURN, flops]
        if spec.max_flops is not None:
            want.append(flops - float(spec.max_flops))
        got = [float(F[i, 0]), float(F[i, 1]), *(float(g) for g in G[i])]
        if not np.allclose(got, want, rtol=1e-9, atol=1e-12):
            raise FormatError(
                f"search state {path}: member {i}'s objectives {got} are not its cached "
                f"figures {want}"
            )
