"""Knee point and front selection, checked on hand-built fronts."""

from __future__ import annotations

import json

import pytest

from a2d_evo.errors import RunFolderError
from a2d_evo.report.pick import knee_index, select

# In every case below: x = log10 FLOPs and y = normalised return, each scaled to [0, 1] over
# the front; the chord runs from the cheapest member a to the best-scoring member b, and the
# knee is the member farthest above it. Distances are worked out in the comments.


def test_knee_of_a_bent_front() -> None:
    # x = 0, 1/3, 2/3, 1; y = 0, 0.9, 0.95, 1; chord (0, 0) -> (1, 1), distance (y - x) / sqrt 2
    # = 0, 0.401, 0.200, 0 -> member 1
    assert knee_index([1e2, 1e3, 1e4, 1e5], [0.0, 0.9, 0.95, 1.0]) == 1


def test_knee_in_the_middle_of_a_front() -> None:
    # x = 0, .25, .5, .75, 1; y = 0, .2, .7, .9, 1; y - x = 0, -.05, .2, .15, 0 -> member 2
    assert knee_index([1e2, 1e3, 1e4, 1e5, 1e6], [0.0, 0.2, 0.7, 0.9, 1.0]) == 2


def test_knee_is_an_index_into_an_unsorted_front() -> None:
    # log10 FLOPs 4, 2, 6, 3 -> x = .5, 0, 1, .25; returns .8, .1, .9, .3 -> y = .875, 0, 1, .25
    # a = member 1, b = member 2, chord (0, 0) -> (1, 1); y - x = .375, 0, 0, 0 -> member 0
    assert knee_index([1e4, 1e2, 1e6, 1e3], [0.8, 0.1, 0.9, 0.3]) == 0


def test_knee_chord_ends_at_the_best_scoring_member() -> None:
    # the dearest member (3) scores below member 2, so the chord is (0, 0) -> (2/3, 1):
    # distance (2/3 * y - x) / sqrt(13/9) = 0, 0.055, 0, -0.333 -> member 1. (A chord to the
    # dearest member, (0, 0) -> (1, 0.9), would give y - 0.9 x = 0, 0.3, 0.4, 0 -> member 2.)
    assert knee_index([1e2, 1e3, 1e4, 1e5], [0.0, 0.6, 1.0, 0.9]) == 1


def test_knee_scale_free_in_return() -> None:
    # raw returns -500, -120, -100, -90 span 410: y = 0, 0.927, 0.976, 1; x = 0, 1/3, 2/3, 1;
    # y - x = 0, 0.594, 0.309, 0 -> member 1, as for the same front in normalised units
    flops = [1e2, 1e3, 1e4, 1e5]
    assert knee_index(flops, [-500, -120, -100, -90]) == 1
    assert knee_index(flops, [0.0, 0.95, 0.98, 1.0]) == 1


def test_knee_degenerate_fronts() -> None:
    assert knee_index([5e3], [0.7]) == 0
    assert knee_index([1e3, 1e4], [0.5, 0.9]) == 1  # no member above the chord: best-scoring
    assert knee_index([1e2, 1e3, 1e4], [0.0, 0.5, 1.0]) == 2  # straight line in (log x, y)
    # equal returns: the best-scoring member is the cheapest one, the chord has length 0
    assert knee_index([1e2, 1e3], [0.5, 0.5]) == 0
    with pytest.raises(ValueError):
        knee_index([], [])


def _front() -> list[dict[str, float]]:
    return [
        {"flops": 100.0, "return_mean": 20.0, "normalised_return": 0.0},
        {"flops": 1000.0, "return_mean": 450.0, "normalised_return": 0.9},
        {"flops": 10000.0, "return_mean": 480.0, "normalised_return": 0.96},
        {"flops": 100000.0, "return_mean": 500.0, "normalised_return": 1.0},
    ]


def test_select_all_index_and_filters() -> None:
    front = _front()
    assert select(front, "all") == [(f"front_{i:02d}", i) for i in range(4)]
    # x = 0, 1/3, 2/3, 1; y = 0, .9, .96, 1; y - x = 0, .567, .293, 0 -> member 1
    assert select(front, "knee") == [("knee", 1)]
    assert select(front, "2") == [("front_02", 2)]
    assert select(front, "all", max_flops=5000) == [("front_00", 0), ("front_01", 1)]
    assert select(front, "all", min_return=470) == [("front_02", 2), ("front_03", 3)]
    # the knee among the filtered members only: members 2 and 3 alone, none above the
    # chord between them, so the best-scoring one
    assert select(front, "knee", min_return=470) == [("knee", 3)]


@pytest.mark.parametrize(
    ("pick", "kw", "match"),
    [
        ("7", {}, "the front has entries 0-3"),
        ("-1", {}, "the front has entries 0-3"),
        ("middle", {}, "expected knee, all or a front index"),
        ("3", {"max_flops": 10}, "no front entry has FLOPs"),
        ("3", {"max_flops": 5000}, "excluded by"),
    ],
)
def test_select_errors(pick: str, kw: dict[str, float], match: str) -> None:
    with pytest.raises(RunFolderError, match=match):
        select(_front(), pick, **kw)


def test_export_refuses_seeds_other_than_the_fronts() -> None:
    """The fine-tune scores members on the front's final seeds; an `export --seed` or a
    `--set search.final_episodes` that moves them is refused before anything is written (it
    used to put the inherited and fine-tuned figures of one metrics.json on two seed sets)."""
    from pathlib import Path

    from a2d_evo.config import config_from_dict
    from a2d_evo.errors import ConfigError
    from a2d_evo.evaluation.seeds import check_scoring_seeds, final_seeds

    cfg = config_from_dict({"seed": 3, "search": {"final_episodes": 30}})
    front = {"normalisation": {"seeds": final_seeds(3, 30)}}
    check_scoring_seeds(cfg, front, Path("front.json"), "export")  # the search's own: fine
    check_scoring_seeds(cfg, {"normalisation": {}}, Path("front.json"), "export")  # none
    for other in ({"seed": 5}, {"search": {"final_episodes": 10}}):
        moved = config_from_dict({"seed": 3, "search": {"final_episodes": 30}, **other})
        with pytest.raises(ConfigError, match="export: .*drop --seed"):
            check_scoring_seeds(moved, front, Path("front.json"), "export")


def test_an_export_without_fine_tune_again_keeps_what_it_extracted(finished, tmp_path) -> None:
    """With finetune.steps 0 a second export of the same front keeps every member (it used
    to extract them all again, and so remove the eval.json a user had written)."""
    import shutil

    from test_evolve import SMALL

    from a2d_evo.config import config_from_dict
    from a2d_evo.report.front_export import export_front
    from a2d_evo.runs.folder import RunFolder

    root = tmp_path / "run"
    shutil.copytree(finished, root)
    run = RunFolder(root)
    cfg = config_from_dict({**SMALL, "finetune": {"steps": 0}})
    folders = export_front(cfg, run, pick="all", progress=False)
    (folders[0] / "eval.json").write_text("{}")
    written = [(f / "metrics.json").stat().st_mtime_ns for f in folders]
    again = export_front(cfg, run, pick="all", progress=False)
    assert again == folders and (folders[0] / "eval.json").is_file()
    assert [(f / "metrics.json").stat().st_mtime_ns for f in folders] == written


def test_an_export_again_adds_the_onnx_file_its_kept_members_lack(
    finished, tmp_path, monkeypatch, capsys
) -> None:
    """Members exported before the export extra was installed have no ``policy.onnx``; an
    export run again with it installed keeps them (same front, same settings) and writes the
    graph of the weights there, touching nothing else (a new user's finding: the README's
    first command installs no ONNX, and no command added it later)."""
    import shutil

    from test_evolve import SMALL

    from a2d_evo.config import config_from_dict
    from a2d_evo.nets import agent_folder
    from a2d_evo.nets.onnx_graph import onnx_bytes
    from a2d_evo.report.front_export import export_front
    from a2d_evo.runs.folder import RunFolder

    root = tmp_path / "run"
    shutil.copytree(finished, root)
    run = RunFolder(root)
    cfg = config_from_dict({**SMALL, "finetune": {"steps": 0}})
    with monkeypatch.context() as m:
        m.setattr(agent_folder, "onnx_available", lambda: False)
        folders = export_front(cfg, run, pick="all", progress=False)
    assert folders and not any((f / "policy.onnx").exists() for f in folders)
    (folders[0] / "eval.json").write_text("{}")
    written = [(f / "policy.pt").stat().st_mtime_ns for f in folders]
    capsys.readouterr()
    assert export_front(cfg, run, pick="all", progress=True) == folders
    out = capsys.readouterr().out
    for f in folders:
        assert (f / "policy.onnx").read_bytes() == onnx_bytes(agent_folder.load_agent(f))
        assert f"{f.name}: kept; policy.onnx written" in out
    assert [(f / "policy.pt").stat().st_mtime_ns for f in folders] == written
    assert (folders[0] / "eval.json").is_file()
    # once there, it is not written again
    stamp = [(f / "policy.onnx").stat().st_mtime_ns for f in folders]
    export_front(cfg, run, pick="all", progress=False)
    assert [(f / "policy.onnx").stat().st_mtime_ns for f in folders] == stamp


def test_export_records_the_front_it_read_not_one_written_since(
    finished, tmp_path, monkeypatch
) -> None:
    """An agent records the digest of the front.json bytes it was picked from: hashing the
    file again later took a front a concurrent ``evolve --resume`` wrote meanwhile, and the
    report then listed the old front's agent as the new front's."""
    import hashlib
    import shutil

    from test_evolve import SMALL

    from a2d_evo.config import config_from_dict
    from a2d_evo.nets import supernet as supernet_module
    from a2d_evo.report.front_export import export_front
    from a2d_evo.runs.folder import RunFolder

    root = tmp_path / "run"
    shutil.copytree(finished, root)
    front = root / "search" / "front.json"
    read = hashlib.sha256(front.read_bytes()).hexdigest()
    real_load = supernet_module.load_supernet

    def replaced_meanwhile(*args, **kwargs):  # the front is read by now; another lands
        front.write_text(front.read_text() + "\n")
        return real_load(*args, **kwargs)

    monkeypatch.setattr(supernet_module, "load_supernet", replaced_meanwhile)
    cfg = config_from_dict({**SMALL, "finetune": {"steps": 0}})
    folders = export_front(cfg, RunFolder(root), pick="all", progress=False)
    assert hashlib.sha256(front.read_bytes()).hexdigest() != read
    for folder in folders:
        assert json.loads((folder / "metrics.json").read_text())["sources"]["front"] == read


def test_reproduce_repeats_the_export_options_that_ran(finished, tmp_path) -> None:
    """The report's export lines carry the pick, the filters and the fine-tune settings given
    on export's command line (it said `--pick all --finetune B` for any export), and each
    line, run on another copy, exports the same."""
    import shlex
    import shutil

    from a2d_evo.cli import main
    from a2d_evo.report.markdown import write_report
    from a2d_evo.runs.folder import RunFolder

    def copy(name: str) -> RunFolder:
        shutil.copytree(finished, tmp_path / name)
        return RunFolder(tmp_path / name)

    def export_lines(run: RunFolder) -> list[str]:
        md = write_report(run.load_config(), run).read_text()
        return [line for line in md.splitlines() if line.startswith("a2d-evo export ")]

    def recorded(run: RunFolder, name: str) -> str:
        m = json.loads((run.agents / name / "metrics.json").read_text())["export_command"]
        return m["options"]

    # one member alone: no whole-front line (it trained and delivered every member)
    one = copy("one")
    assert main(["export", str(one.root), "--pick", "0", "--finetune", "0", "--quiet"]) == 0
    out = f"{one.root}-repro"
    assert export_lines(one) == [f"a2d-evo export {out} --pick 0 --finetune 0"]
    # a filter and fine-tune settings given with --set (one of them the run's own value)
    given = ["--max-flops", "56", "--finetune", "0", "--set", "distill.alpha=2",
             "--set", "finetune.validation_episodes=0", "--set", "ppo.gamma=0.99"]  # fmt: skip
    flt = copy("flt")
    assert main(["export", str(flt.root), *given, "--quiet"]) == 0
    options = (
        "--pick all --max-flops=56.0 --finetune 0 --set distill.alpha=2.0 "
        "--set finetune.validation_episodes=0"
    )
    delivered = json.loads((flt.agents / "delivered.json").read_text())
    assert delivered["export_command"]["options"] == recorded(flt, "front_00") == options
    assert export_lines(flt) == [f"a2d-evo export {flt.root}-repro {options}"]
    # the line exports the same on another copy
    again = copy("again")
    assert main(["export", str(again.root), *shlex.split(options), "--quiet"]) == 0
    assert recorded(again, "front_00") == options
    assert (
        json.loads((again.agents / "delivered.json").read_text())["members"]
        == (delivered["members"])
    )


def test_a_straight_front_has_no_knee_but_its_best_member() -> None:
    """Members on one line in (log10 FLOPs, normalised return) have no knee: the rounding
    noise that puts the middle one 1e-16 above the chord does not make it one; the knee is
    the best-scoring member."""
    from a2d_evo.report.pick import knee_index

    assert knee_index([10, 1000, 100000], [0.1, 0.2, 0.3]) == 2
    assert knee_index([10, 1000, 100000], [0.7, 0.8, 0.9]) == 2


def test_of_two_knees_equally_far_above_the_chord_the_better_scoring_wins() -> None:
    """Two members exactly as far above the chord (0.375 in normalised units, all values
    exact in binary): the knee is the one with the higher return."""
    from a2d_evo.report.pick import knee_index

    flops = [1, 100, 10_000, 100_000_000]  # log10: 0, 2, 4, 8 -> 0, 1/4, 1/2, 1
    assert knee_index(flops, [0.0, 0.625, 0.875, 1.0]) == 2


def test_export_filters_keep_members_exactly_at_their_bounds() -> None:
    """``--max-flops F`` keeps a member of exactly F FLOPs and ``--min-return R`` one of
    exactly R (the messages say ``FLOPs <= F`` and ``return >= R``)."""
    from a2d_evo.report.pick import select

    front = [
        {"flops": 100, "return_mean": 20.0, "normalised_return": 0.0},
        {"flops": 1000, "return_mean": 450.0, "normalised_return": 0.9},
        {"flops": 10000, "return_mean": 500.0, "normalised_return": 1.0},
    ]
    assert select(front, "all", min_return=450.0) == [("front_01", 1), ("front_02", 2)]
    assert select(front, "all", max_flops=1000) == [("front_00", 0), ("front_01", 1)]
    assert select(front, "all", max_flops=1000, min_return=450.0) == [("front_01", 1)]


def test_a_pick_one_past_the_front_names_the_entries_there_are() -> None:
    """``--pick N`` with N the front's length is out of range (entries 0 to N-1), said as
    such, not as an entry the filters excluded."""
    from a2d_evo.errors import RunFolderError
    from a2d_evo.report.pick import select

    front = [{"flops": 100 * 10**i, "return_mean": float(i), "normalised_return": i / 2}
             for i in range(3)]  # fmt: skip
    assert select(front, "2") == [("front_02", 2)]
    with pytest.raises(RunFolderError, match=r"--pick 3: the front has entries 0-2"):
        select(front, "3")
