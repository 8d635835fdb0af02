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
from a2d_evo.config import config_from_dict
from a2d_evo.errors import FormatError
from a2d_evo.formats import Normalisation
from a2d_evo.nets.space import SearchSpace
from a2d_evo.search.saved_state import load_state


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
