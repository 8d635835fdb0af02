"""Small hygiene: messages that say what is true, and run files kept inside the run folder.

``baselines --resume`` exists (the interrupt message advises it), ``export`` says once that
it wrote no ``policy.onnx``, the filter message names only the filters given, counts agree
in number, the report says why the teacher has two returns, and a symlinked ``agents/`` or
``baselines/`` is not followed out of the run folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import balance_cartpole
from test_reliability import tiny_raw
from test_report import make_run

from a2d_evo.cli import EXIT_USER_ERROR, main
from a2d_evo.config import config_from_dict, dump_config
from a2d_evo.envs import env_spec
from a2d_evo.errors import RunFolderError
from a2d_evo.formats import FRONT_FORMAT_VERSION
from a2d_evo.nets.agent_folder import extract, make_metrics
from a2d_evo.nets.cost import flops
from a2d_evo.nets.space import MLPArch, SearchSpace
from a2d_evo.nets.supernet import Supernet
from a2d_evo.report.markdown import write_report
from a2d_evo.report.pick import select
from a2d_evo.runs.files import torch_save, write_json, write_text
from a2d_evo.runs.folder import RunFolder
from a2d_evo.search.problem import reference_point


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


# ----------------------------------------------------------------------------- baselines
def _run_with_teacher(root: Path) -> RunFolder:
    """A run folder with a config and a (tiny, untrained) teacher agent folder."""
    from a2d_evo.nets.agent import Agent
    from a2d_evo.nets.agent_folder import save_agent

    cfg = config_from_dict(
        {
            "env": {"id": "CartPole-v1"},
            "space": {"kind": "mlp", "depths": [1], "widths": [4, 8]},
            "teacher": {"arch": {"kind": "mlp", "widths": [8]}},
        }
    )
    run = RunFolder(root)
    write_text(run.config_path, dump_config(cfg))
    spec = env_spec(cfg.env)
    teacher = Agent(MLPArch((8,)), spec.obs_shape, spec.n_actions, {"id": "CartPole-v1"})
    save_agent(teacher, run.teacher_agent, onnx=False)
    return run


def test_baselines_take_resume_and_an_interrupted_one_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _run_with_teacher(tmp_path / "run")
    checkpoint = run.baselines / ".ppo_x0.5.checkpoint.pt"
    write_text(checkpoint, "an interrupted baseline's checkpoint")
    # a plain run refuses to pass over it, naming the command that continues it: with the
    # user's widths and methods (a bare --resume would train every default baseline)
    assert main(["baselines", str(run.root), "--widths", "0.5", "--quiet"]) == EXIT_USER_ERROR
    err = one_error_line(capsys)
    assert f"baseline ppo_x0.5 in {run.baselines} was interrupted" in err
    assert f"`a2d-evo baselines {run.root} --widths 0.5 --resume`" in err
    argv = ["baselines", str(run.root), "--widths", "0.5,1", "--methods", "ppo", "--quiet"]
    assert main(argv) == EXIT_USER_ERROR
    assert f"`a2d-evo baselines {run.root} --widths 0.5,1 --methods ppo --resume`" in (
        one_error_line(capsys)
    )
    assert checkpoint.read_text() == "an interrupted baseline's checkpoint"
    # --resume is an option of baselines (it was "unrecognized arguments", exit 2 from argparse)
    # and continues from that checkpoint: here a broken one, so the resume itself says so
    assert main(["baselines", str(run.root), "--widths", "0.5", "--resume", "--quiet"]) == 2
    err = one_error_line(capsys)
    assert "baseline-ppo_x0.5 checkpoint" in err and "is not a torch file" in err  # text


# ----------------------------------------------------------------------------- export
def _exportable_run(root: Path) -> RunFolder:
    """Config, untrained supernet weights and a one-member front that export accepts."""
    cfg = config_from_dict(
        {"env": {"id": "CartPole-v1"}, "space": {"kind": "mlp", "depths": [1], "widths": [4, 8]}}
    )
    run = RunFolder(root)
    write_text(run.config_path, dump_config(cfg))
    space = SearchSpace(cfg.space)
    spec = env_spec(cfg.env)
    supernet = Supernet(space, spec.obs_shape, spec.n_actions)
    torch_save(run.supernet_weights, supernet.state_dict())
    teacher_flops = flops(MLPArch((64, 64)), spec.obs_shape, spec.n_actions)
    arch = space.smallest()
    entry = make_metrics(
        extract(supernet, arch),
        env_id="CartPole-v1",
        returns=np.array([20.0, 30.0]),
        eval_mode="greedy",
        seeds=[7, 8],
        r_random=10.0,
        r_teacher=100.0,
        latency=0.01,
    )
    entry["arch"] = arch.to_dict()
    entry["encoding"] = [int(g) for g in space.encode(arch)]
    ref = reference_point(space, spec.obs_shape, spec.n_actions)
    norm = {"r_random": 10.0, "r_teacher": 100.0, "teacher_flops": teacher_flops}
    write_json(
        run.search / "front.json",
        {
            "format_version": FRONT_FORMAT_VERSION,
            "env_id": "CartPole-v1",
            "reference_point": ref.tolist(),
            "normalisation": norm,
            "front": [entry],
        },
    )
    return run


def test_export_says_once_that_it_wrote_no_onnx(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _exportable_run(tmp_path / "run")
    monkeypatch.setattr("a2d_evo.nets.agent_folder.onnx_available", lambda: False)
    assert main(["export", str(run.root), "--pick", "all", "--quiet"]) == 0
    assert main(["export", str(run.root), "--pick", "knee", "--quiet"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    note = (
        "a2d-evo export: note: policy.onnx not written: the export extra is not installed "
        "(pip install 'a2d-evo[export]'); the agent folders hold policy.pt only"
    )
    assert err == [note, note]  # once per export, not once per agent
    assert (run.agents / "knee" / "policy.pt").is_file()
    assert not (run.agents / "knee" / "policy.onnx").exists()
    # the knee was chosen on the final-seed figures that also score it: its metrics say so
    knee = json.loads((run.agents / "knee" / "metrics.json").read_text())
    assert knee["chosen_on"] == "final seeds"
    assert "chosen_on" not in json.loads((run.agents / "front_00" / "metrics.json").read_text())


def test_filter_message_names_only_the_filters_given() -> None:
    front = [{"flops": 1000, "return_mean": 100.0}, {"flops": 4000, "return_mean": 200.0}]
    with pytest.raises(RunFolderError) as exc:
        select(front, "knee", max_flops=50)
    assert str(exc.value) == (
        "no front entry has FLOPs <= 50; the front spans 1000-4000 FLOPs and returns 100-200"
    )
    with pytest.raises(RunFolderError) as exc:
        select(front, "knee", min_return=300.0)
    assert str(exc.value).startswith("no front entry has return >= 300; ")
    with pytest.raises(RunFolderError) as exc:
        select(front, "knee", max_flops=50, min_return=300.0)
    assert str(exc.value).startswith("no front entry has FLOPs <= 50 and return >= 300; ")


# ----------------------------------------------------------------------------- report
def _one_member_run(root: Path) -> tuple[Any, RunFolder]:
    run = make_run(root)
    cfg = run.load_config()
    path = run.search / "front.json"
    front = json.loads(path.read_text())
    front["front"] = front["front"][:1]
    front["search"]["front_size"] = 1
    write_json(path, front)
    return cfg, run


def test_report_counts_agree_in_number_and_says_why_two_teacher_returns(tmp_path: Path) -> None:
    cfg, run = _one_member_run(tmp_path / "run")
    text = write_report(cfg, run).read_text()
    assert "## Pareto front (1 member, cheapest first)" in text
    assert "- final front: 1 member from the search" in text
    assert "1 members" not in text
    # the teacher row (17 episodes, its own) and R_teacher (the 10 re-scoring episodes of
    # the one member left) explained
    assert (
        "The row above is the teacher's own evaluation, made when it was trained or imported "
        "(`teacher/agent/metrics.json`: 17 episodes, `eval.episodes` unless "
        "`teacher.eval_episodes` is set, on seeds of its own); R_teacher is the same teacher "
        "replayed on the front's re-scoring seeds "
        "(10 episodes, `search.final_episodes`), so that every normalised return compares "
        "agents on the same episodes."
    ) in text


# ----------------------------------------------------------------------------- symlinks
@pytest.mark.parametrize("folder", ["agents", "baselines"])
def test_a_symlinked_folder_is_not_followed_out_of_the_run(
    folder: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = make_run(tmp_path / "run")
    outside = tmp_path / "elsewhere"
    (run.root / folder).rename(outside)
    (run.root / folder).symlink_to(outside, target_is_directory=True)
    before = sorted(p.relative_to(outside) for p in outside.rglob("*"))

    # the report does not read through it, and says so
    text = write_report(run.load_config(), run).read_text()
    assert f"`{run.root / folder}` is a symlink that leads outside the run folder" in text
    assert ("None exported." if folder == "agents" else "No baselines found.") in text

    # the commands that write there refuse, naming the link, and write nothing
    if folder == "agents":
        argv = ["export", str(run.root), "--quiet"]
    else:
        argv = ["baselines", str(run.root), "--widths", "0.5", "--quiet"]
    assert main(argv) == EXIT_USER_ERROR
    err = one_error_line(capsys)
    assert f"{run.root / folder}" in err and "leads outside the run folder" in err
    assert sorted(p.relative_to(outside) for p in outside.rglob("*")) == before


def test_a_symlinked_report_folder_is_refused(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    run.report.symlink_to(outside, target_is_directory=True)
    with pytest.raises(RunFolderError, match="leads outside the run folder"):
        write_report(run.load_config(), run)
    assert list(outside.iterdir()) == []


def test_the_teachers_metrics_use_eval_episodes_unless_told_otherwise(tmp_path: Path) -> None:
    """One episode count for every agent folder: the teacher's own metrics take eval.episodes."""
    from a2d_evo.nets.agent import Agent
    from a2d_evo.nets.space import MLPArch
    from a2d_evo.train.teacher_folder import save_teacher

    agent = balance_cartpole(Agent(MLPArch((8,)), (4,), 2, {"id": "CartPole-v1"}))
    base = {"env": {"id": "CartPole-v1"}, "eval": {"episodes": 6, "num_envs": 3}}
    for teacher, want in (({}, 6), ({"eval_episodes": 4}, 4)):
        cfg = config_from_dict({**base, "teacher": teacher})
        folder = save_teacher(agent, cfg, tmp_path / str(want), {"source": "test"})
        assert json.loads((folder / "metrics.json").read_text())["episodes"] == want


@pytest.mark.parametrize("stage", ["teacher", "supernet", "search"])
def test_a_stage_folder_linked_out_of_the_run_is_refused_before_anything_is_written(
    stage: str, tmp_path: Path
) -> None:
    """As agents/ and baselines/: a received run whose stage folder is a symlink to another
    folder would have had that stage's config, checkpoints and results written there."""

    run = RunFolder(tmp_path / "run")
    run.root.mkdir()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    run.stage(stage).symlink_to(outside, target_is_directory=True)
    with pytest.raises(RunFolderError, match="leads outside the run folder"):
        run.bind_stage(stage, config_from_dict({}), resume=False)
    assert list(outside.iterdir()) == [] and not run.config_path.exists()


@pytest.mark.parametrize("stage", ["teacher", "supernet", "search"])
def test_a_stage_command_takes_no_lock_through_a_stage_folder_linked_out_of_the_run(
    stage: str, tmp_path: Path
) -> None:
    """The stage's lock was taken through the link before bind_stage refused it: the linked
    folder's own `.lock` was truncated, written and removed."""
    from a2d_evo.search.evolution import evolve
    from a2d_evo.train.supernet_stage import train_supernet
    from a2d_evo.train.teacher import train_teacher

    command = {"teacher": train_teacher, "supernet": train_supernet, "search": evolve}[stage]
    run = RunFolder(tmp_path / "run")
    run.root.mkdir()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / ".lock").write_text("someone else's file")
    run.stage(stage).symlink_to(outside, target_is_directory=True)
    with pytest.raises(RunFolderError, match="leads outside the run folder"):
        command(config_from_dict(tiny_raw()), run, progress=False)
    assert [p.name for p in outside.iterdir()] == [".lock"]
    assert (outside / ".lock").read_text() == "someone else's file"


@pytest.mark.parametrize("link", ["teacher/agent", "tb", "tb/teacher"])
def test_a_teacher_writes_nothing_through_a_linked_agent_or_log_folder(
    link: str, tmp_path: Path
) -> None:
    """teacher/agent and tb/ sit below folders the run checks; a link there led the
    teacher's agent files or its TensorBoard logs out of the run."""
    from a2d_evo.train.teacher import train_teacher

    run = RunFolder(tmp_path / "run")
    (run.root / link).parent.mkdir(parents=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (run.root / link).symlink_to(outside, target_is_directory=True)
    with pytest.raises(RunFolderError, match="leads outside the run folder"):
        train_teacher(config_from_dict(tiny_raw()), run, progress=False)
    assert list(outside.iterdir()) == [] and not run.config_path.exists()


def test_baselines_write_nothing_through_a_linked_baseline_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """baselines/<name> -> elsewhere: its metrics.json was deleted there and a baseline
    trained into it."""
    from a2d_evo.nets.agent import Agent
    from a2d_evo.nets.agent_folder import save_agent

    run = make_run(tmp_path / "run", baselines=False, minimal=True)  # no seeds recorded
    metrics = json.loads((run.teacher_agent / "metrics.json").read_text())
    save_agent(Agent(MLPArch((64, 64)), (4,), 2, {"id": "CartPole-v1"}), run.teacher_agent,
               metrics=metrics, onnx=False)  # fmt: skip
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    write_json(outside / "metrics.json", {"theirs": True})
    run.baselines.mkdir(parents=True, exist_ok=True)
    (run.baselines / "ppo_x0.5").symlink_to(outside, target_is_directory=True)
    assert main(["baselines", str(run.root), "--widths", "0.5", "--quiet"]) == EXIT_USER_ERROR
    err = one_error_line(capsys)
    assert f"{run.baselines / 'ppo_x0.5'}" in err and "leads outside the run folder" in err
    assert [p.name for p in outside.iterdir()] == ["metrics.json"]
    assert not any(p.name.startswith(".") for p in run.baselines.iterdir())  # no checkpoint
