"""``front.json`` entries are checked before anything is exported or reported: the arch against
its encoding, FLOPs and parameters, and the reference point, normalisation and env against
the run. A refused front is one FormatError line naming the entry and the field, exit 2."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_evolve import SMALL

from a2d_evo.cli import main
from a2d_evo.config import config_from_dict
from a2d_evo.errors import FormatError
from a2d_evo.nets import cost
from a2d_evo.nets.space import SearchSpace, arch_from_dict
from a2d_evo.report.front_file import load_front
from a2d_evo.runs.folder import RunFolder


def _other_arch(entry: dict[str, Any]) -> dict[str, Any]:
    """Another arch of the space than the entry's (its encoding and FLOPs left alone)."""
    space = SearchSpace(config_from_dict(SMALL).space)
    for arch in (space.largest(), space.smallest()):
        if arch != arch_from_dict(entry["arch"]):
            return arch.to_dict()
    raise AssertionError("the space has one arch")


def _entry(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: d["front"][0].__setitem__(key, value)


def _norm(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: d["normalisation"].__setitem__(key, value)


def _edited_arch(d: dict[str, Any]) -> None:
    d["front"][0]["arch"] = _other_arch(d["front"][0])


def _plus(key: str, delta: int) -> Callable[[dict[str, Any]], None]:
    return lambda d: d["front"][0].__setitem__(key, d["front"][0][key] + delta)


def _weak_teacher(d: dict[str, Any]) -> None:
    n = d["normalisation"]
    n["r_teacher"], n["r_random"] = n["r_random"] - 10.0, n["r_random"]


EDITS: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("arch edited", _edited_arch, "front entry 0: encoding"),
    ("zero flops", _entry("flops", 0), "front entry 0: flops must be an integer >= 1"),
    ("negative flops", _entry("flops", -120), "front entry 0: flops must be an integer >= 1"),
    ("flops edited", _plus("flops", 1), "front entry 0: flops"),
    ("params edited", _plus("params", -1), "front entry 0: params"),
    (
        "NaN reference point",
        lambda d: d.__setitem__("reference_point", [0.0, float("nan")]),
        "reference_point",
    ),
    (
        "moved reference point",
        lambda d: d.__setitem__("reference_point", [0.0, 99.0]),
        "reference_point",
    ),
    ("NaN r_teacher", _norm("r_teacher", float("nan")), "normalisation constants are malformed"),
    ("weak teacher", _weak_teacher, "does not beat the uniform-random policy"),
    ("foreign env_id", lambda d: d.__setitem__("env_id", "Acrobot-v1"), "not the run's env"),
    ("foreign entry env_id", _entry("env_id", "Acrobot-v1"), "front entry 0: env_id"),
    ("normalised return edited", _plus("normalised_return", 1), "front entry 0: normalised_return"),
    ("no final seeds", _norm("seeds", []), "normalisation.seeds must be a non-empty list"),
    ("a text seed", _norm("seeds", ["x"]), "normalisation.seeds must be a non-empty list"),
    ("a null seed", _norm("seeds", [None]), "normalisation.seeds must be a non-empty list"),
]


@pytest.mark.parametrize(
    ("edit", "match"), [(e[1], e[2]) for e in EDITS], ids=[e[0] for e in EDITS]
)
def test_export_refuses_an_edited_front(
    finished: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    edit: Callable[[dict[str, Any]], None],
    match: str,
) -> None:
    root = tmp_path / "run"
    shutil.copytree(finished, root)
    path = root / "search" / "front.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    capsys.readouterr()
    rc = main(["export", str(root), "--pick", "0", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.count("\n") == 1 and err.startswith("a2d-evo export: error: "), err
    assert str(path) in err and match in err
    assert not (root / "agents").exists()  # nothing exported


def test_report_reader_checks_the_env_against_the_run(finished: Path, tmp_path: Path) -> None:
    root = tmp_path / "run"
    shutil.copytree(finished, root)
    path = root / "search" / "front.json"
    assert load_front(RunFolder(root))["front"]  # the untouched front passes
    data = json.loads(path.read_text())
    for e in data["front"]:
        e["env_id"] = "Acrobot-v1"
    data["env_id"] = "Acrobot-v1"
    path.write_text(json.dumps(data))
    with pytest.raises(FormatError, match="'Acrobot-v1' is not the run's env 'CartPole-v1'"):
        load_front(RunFolder(root))


def test_an_untouched_front_exports_matching_files(finished: Path, tmp_path: Path) -> None:
    root = tmp_path / "run"
    shutil.copytree(finished, root)
    assert main(["export", str(root), "--pick", "all", "--quiet"]) == 0
    front = json.loads((root / "search" / "front.json").read_text())["front"]
    for i, entry in enumerate(front):
        folder = root / "agents" / f"front_{i:02d}"
        arch = arch_from_dict(json.loads((folder / "arch.json").read_text())["arch"])
        metrics = json.loads((folder / "metrics.json").read_text())
        assert arch == arch_from_dict(entry["arch"])
        assert metrics["flops"] == cost.flops(arch, (4,), 2) == entry["flops"]
        assert metrics["params"] == cost.params(arch, (4,), 2)


def test_a_resumed_export_fine_tunes_anew_at_another_learning_rate(
    finished: Path, tmp_path: Path
) -> None:
    """Members fine-tuned at one ``finetune.lr`` are kept by a resumed export at the same rate
    and fine-tuned again (from their inherited weights) at another."""
    root = tmp_path / "run"
    shutil.copytree(finished, root)
    argv = ["export", str(root), "--finetune", "64", "--quiet"]
    assert main([*argv, "--set", "finetune.lr=1e-3"]) == 0
    folders = sorted((root / "agents").glob("front_*"))
    assert folders

    def state() -> dict[str, tuple[int, float]]:
        out = {}
        for f in folders:
            m = json.loads((f / "metrics.json").read_text())
            out[f.name] = ((f / "policy.pt").stat().st_mtime_ns, m["finetune_lr"])
        return out

    first = state()
    assert {lr for _, lr in first.values()} == {1e-3}
    assert main([*argv, "--set", "finetune.lr=1e-3"]) == 0
    assert state() == first  # kept, not fine-tuned again
    assert main([*argv, "--set", "finetune.lr=5e-4"]) == 0
    again = state()
    assert {lr for _, lr in again.values()} == {5e-4}
    assert all(again[n][0] != first[n][0] for n in first)


def test_fine_tuning_without_a_teacher_is_refused_before_anything_is_written(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "run"
    shutil.copytree(finished, root)
    shutil.rmtree(root / "teacher", ignore_errors=True)
    capsys.readouterr()
    assert main(["export", str(root), "--finetune", "64", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "distils from the run's teacher" in err and "--finetune 0" in err, err
    assert not (root / "agents").exists()
    # inherited weights need no teacher; each agent records the budget export gave it
    assert main(["export", str(root), "--finetune", "0", "--quiet"]) == 0
    folders = [f for f in (root / "agents").iterdir() if f.is_dir()]
    assert folders
    for folder in folders:
        assert json.loads((folder / "metrics.json").read_text())["export_finetune"] == 0
