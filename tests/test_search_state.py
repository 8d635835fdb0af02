"""A damaged search state (``search/state.npz`` + ``state.json``) stops ``evolve --resume`` with
one FormatError line and exit 2, before anything is computed or written."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_evolve import SMALL

from a2d_evo.cli import main
from a2d_evo.config import SpaceConfig, config_from_dict
from a2d_evo.errors import FormatError
from a2d_evo.formats import Normalisation
from a2d_evo.nets.space import SearchSpace
from a2d_evo.search.saved_state import load_state

SPACE = SearchSpace(SpaceConfig(kind="mlp"))
OBS, ACTIONS = (4,), 2


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    (dst / "search" / "front.json").unlink()  # so a resume would go on to re-score the front
    return dst


def _edit_npz(path: Path, edit: Callable[[dict[str, np.ndarray]], None]) -> None:
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    edit(arrays)
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    path.write_bytes(buf.getvalue())


def _edit_json(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))  # NaN goes out as the bare NaN json.loads reads back


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: d.__setitem__(key, value)


def _nan_f(a: dict[str, np.ndarray]) -> None:
    a["F"][1, 0] = np.nan


def _cache_flops(d: dict[str, Any]) -> None:
    d["cache"][0]["flops"] += 1


def _cache_return(d: dict[str, Any]) -> None:
    d["cache"][2]["return_mean"] = "high"


def _cache_episode_return(d: dict[str, Any]) -> None:
    d["cache"][1]["returns"][0] += 1.0  # the record's mean no longer matches its episodes


def _cache_zero_length(d: dict[str, Any]) -> None:
    d["cache"][0]["lengths"][0] = 0


def _cache_dropped_seed(d: dict[str, Any]) -> None:
    d["cache"][0]["seeds"].pop()


def _cache_anchor_false(d: dict[str, Any]) -> None:
    d["cache"][0]["anchor"] = False  # the field is present only as true


def _deflate_npz(path: Path) -> None:
    raw, out = path.read_bytes(), io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info), compress_type=zipfile.ZIP_DEFLATED)
    path.write_bytes(out.getvalue())


def _huge_header(path: Path) -> None:
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        member, {"descr": "<f8", "fortran_order": False, "shape": (2**40,)}
    )
    raw, out = path.read_bytes(), io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():  # F.npy replaced: a stored header, no data after it
            data = member.getvalue() if info.filename == "F.npy" else src.read(info)
            dst.writestr(info.filename, data)
    path.write_bytes(out.getvalue())


def _bad_gene(a: dict[str, np.ndarray]) -> None:
    a["X"][0, 0] = 99


def _moved_f(a: dict[str, np.ndarray]) -> None:
    a["F"][0, 0] -= 0.5  # finite, but not the member's cached return


DAMAGE: list[tuple[str, Callable[[Path], None], str]] = [
    (
        "truncated npz",
        lambda s: (s / "state.npz").write_bytes((s / "state.npz").read_bytes()[:300]),
        "unreadable",
    ),
    ("empty npz", lambda s: (s / "state.npz").write_bytes(b""), "unreadable"),
    # a member that inflates past the file (np.savez stores them), and one whose header claims
    # 8 TiB: MemoryError was a traceback
    ("deflated npz", lambda s: _deflate_npz(s / "state.npz"), "holds compressed members"),
    ("huge header", lambda s: _huge_header(s / "state.npz"), "unreadable"),
    (
        "generation -5",
        lambda s: _edit_npz(s / "state.npz", _set("generation", np.array(-5))),
        "generation must be >= 0",
    ),
    (
        "X of the wrong shape",
        lambda s: _edit_npz(s / "state.npz", lambda a: a.__setitem__("X", a["X"][:, :2])),
        "X has shape",
    ),
    ("NaN in F", lambda s: _edit_npz(s / "state.npz", _nan_f), "must be finite"),
    ("gene out of bounds", lambda s: _edit_npz(s / "state.npz", _bad_gene), "bounds"),
    ("F not the cache's", lambda s: _edit_npz(s / "state.npz", _moved_f), "objectives"),
    (
        "rng of 5 words",
        lambda s: _edit_npz(s / "state.npz", lambda a: a.__setitem__("rng", a["rng"][:5])),
        "PCG64",
    ),
    (
        "NaN generation",
        lambda s: _edit_json(s / "state.json", _set("generation", float("nan"))),
        "generation must be an integer",
    ),
    (
        "string hypervolume",
        lambda s: _edit_json(s / "state.json", _set("hypervolume", "big")),
        "hypervolume must be a list",
    ),
    ("cache flops", lambda s: _edit_json(s / "state.json", _cache_flops), "flops/params"),
    ("cache return", lambda s: _edit_json(s / "state.json", _cache_return), "return_mean"),
    (
        "episode return edited",
        lambda s: _edit_json(s / "state.json", _cache_episode_return),
        "are not the mean/std of its returns",
    ),
    (
        "zero-step episode",
        lambda s: _edit_json(s / "state.json", _cache_zero_length),
        "lengths must be integers >= 1",
    ),
    (
        "a seed missing",
        lambda s: _edit_json(s / "state.json", _cache_dropped_seed),
        "seeds must be a list of",
    ),
    (
        "anchor false",
        lambda s: _edit_json(s / "state.json", _cache_anchor_false),
        "anchor must be true where present",
    ),
    (
        "format 1 state",
        lambda s: _edit_npz(s / "state.npz", _set("format_version", np.array(1))),
        "has format_version 1: format 1 kept one first estimate per arch",
    ),
    (
        "another reference point",  # e.g. one written before it was priced on the costliest
        lambda s: _edit_json(s / "state.json", _set("reference_point", [0.0, 5.3])),
        "would mix two references in one history",
    ),
    (
        "no reference point",
        lambda s: _edit_json(s / "state.json", lambda d: d.pop("reference_point")),
        "would mix two references in one history",
    ),
    (
        "weak teacher in the state",
        lambda s: _edit_json(
            s / "state.json",
            _set("normalisation", {"r_random": 9.0, "r_teacher": 8.0, "teacher_flops": 30}),
        ),
        "does not beat the uniform-random policy",
    ),
]


@pytest.mark.parametrize(
    ("damage", "match"), [(d[1], d[2]) for d in DAMAGE], ids=[d[0] for d in DAMAGE]
)
def test_damaged_state_is_one_line_exit_2(
    finished: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    damage: Callable[[Path], None],
    match: str,
) -> None:
    root = _copy(finished, tmp_path / "run")
    search = root / "search"
    damage(search)
    before = {p.name: p.read_bytes() for p in search.iterdir()}
    capsys.readouterr()
    rc = main(
        ["evolve", "--config", str(root / "cfg.yaml"), "--out", str(root), "--resume", "--quiet"]
    )
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.count("\n") == 1 and err.startswith("a2d-evo evolve: error: search state"), err
    assert match in err
    # nothing was re-computed or re-written: no front, every file as it was
    assert {p.name: p.read_bytes() for p in search.iterdir()} == before


def test_a_sound_state_loads_and_one_ahead_json_is_accepted(finished: Path, tmp_path: Path) -> None:
    from a2d_evo.search.saved_state import StateSpec  # here: the CLI cases also run on older code

    cfg = config_from_dict(SMALL)
    spec = StateSpec(SearchSpace(cfg.space), (4,), 2, cfg.search.pop, None)
    saved = load_state(finished / "search", spec)
    assert saved is not None and saved.generation == 2 and saved.finished
    assert len(saved.hv_history) == 2 and len(saved.cache) <= 2 * cfg.search.pop
    # what was written, read back: the arrays, the history, the normalisation and the records
    # (a review found only their counts checked)
    written = json.loads((finished / "search" / "state.json").read_text())
    with np.load(finished / "search" / "state.npz") as npz:
        for key in ("X", "F", "rng"):
            np.testing.assert_array_equal(saved.arrays[key], npz[key])
    assert saved.hv_history == written["hypervolume"]
    assert saved.norm == Normalisation.from_dict(written["normalisation"])
    assert [r["arch"] for r in saved.cache] == [r["arch"] for r in written["cache"]]
    # a kill between the two writes leaves state.json one generation ahead: that is fine
    root = _copy(finished, tmp_path / "run")
    _edit_npz(root / "search" / "state.npz", _set("generation", np.array(1)))
    one_behind = load_state(root / "search")
    assert one_behind is not None and one_behind.generation == 1
    assert len(one_behind.hv_history) == 1
    _edit_npz(root / "search" / "state.npz", _set("generation", np.array(0)))
    with pytest.raises(FormatError, match="more than one ahead"):
        load_state(root / "search")


def test_state_larger_than_the_population_is_refused(finished: Path) -> None:
    from a2d_evo.search.saved_state import StateSpec  # here: the CLI cases also run on older code

    cfg = config_from_dict(SMALL)
    spec = StateSpec(SearchSpace(cfg.space), (4,), 2, 4, None)  # pop 4 < the 8 saved
    with pytest.raises(FormatError, match="more than the population size 4"):
        load_state(finished / "search", spec)


def _record(generations: list[int], returns: list[float]) -> dict:
    from a2d_evo.search.problem import summarise

    rec = {"generation": generations[0], "order": 0, "encoding": [0, 1, 0, 0, 0],
           "arch": "mlp-8", "flops": 56, "params": 50, "returns": list(returns),
           "lengths": [10] * len(returns), "seeds": list(range(len(returns))),
           "generations": list(generations)}  # fmt: skip
    summarise(rec)
    return rec


def test_a_resume_drops_the_episodes_of_the_generation_it_plays_again() -> None:
    """A ``state.json`` one write ahead of ``state.npz`` (generation 1 committed): the
    episodes of generation 1 are dropped, as the resume plays it again (kept, they would
    count twice); a record with nothing before it goes; the figures are recomputed."""
    from a2d_evo.search.saved_state import _committed

    both = _record([0, 0, 1, 1], [1.0, 3.0, 10.0, 20.0])
    late = _record([1, 1], [5.0, 5.0])
    out = _committed([both, late], 1)
    assert len(out) == 1 and out[0]["generations"] == [0, 0]
    assert out[0]["returns"] == [1.0, 3.0] and out[0]["episodes"] == 2
    assert out[0]["return_mean"] == 2.0 and out[0]["return_std"] == 1.0
    assert both["returns"] == [1.0, 3.0, 10.0, 20.0]  # the input is not edited


def test_a_state_s_records_are_bounded_by_its_generations() -> None:
    """After ``n`` generations a record (or one of its episodes) may be of generations
    ``0 .. n - 1`` only, and the cache holds at most ``pop * n + MAX_ANCHORS`` records."""
    from a2d_evo.config.bounds import MAX_ANCHORS
    from a2d_evo.errors import FormatError
    from a2d_evo.search.saved_state import StateSpec, _bad_record, _cache

    assert _bad_record(_record([0, 1], [1.0, 2.0]), 2) is None
    assert _bad_record(_record([2], [1.0]), 2) == "generation 2 is outside 0-1"
    assert _bad_record(_record([1, 2], [1.0, 2.0]), 2) == (
        "generation 2 of an episode is outside 0-1"
    )
    spec = StateSpec(SPACE, OBS, ACTIONS, pop=4, max_flops=None)
    at_most = 4 * 2 + MAX_ANCHORS
    with pytest.raises(FormatError, match="record 0: must be a mapping"):
        _cache([None] * at_most, 2, Path("state.json"), spec)
    with pytest.raises(FormatError, match=f"holds {at_most + 1} records, more than 2 gen"):
        _cache([None] * (at_most + 1), 2, Path("state.json"), spec)


def test_a_state_population_of_zero_flops_or_negative_crowding_is_refused() -> None:
    """``state.npz``'s objectives hold FLOPs of at least 1 (the cost model's floor: 0 would
    be log10 -inf on the hypervolume axis) and crowding distances >= 0 (inf, the extremes'
    crowding, is taken)."""
    from a2d_evo.errors import FormatError
    from a2d_evo.search.saved_state import _check_arrays

    def arrays(flops: float, crowding: float) -> dict[str, np.ndarray]:
        return {"X": np.zeros((1, SPACE.n_var), np.int64), "F": np.array([[-0.5, flops]]),
                "G": np.zeros((1, 0)), "rank": np.array([0.0]), "crowding": np.array([crowding]),
                "rng": np.zeros(6, np.uint64)}  # fmt: skip

    _check_arrays(arrays(1.0, np.inf), 1, Path("state.npz"), None)
    with pytest.raises(FormatError, match="F holds FLOPs below 1"):
        _check_arrays(arrays(0.0, 1.0), 1, Path("state.npz"), None)
    with pytest.raises(FormatError, match="crowding >= 0"):
        _check_arrays(arrays(1.0, -0.5), 1, Path("state.npz"), None)
