"""``--resume`` may raise a stage's ``total_steps``: a failed or finished stage trains longer.

None of these tests relies on a resumed run being bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from a2d_evo.cli import EXIT_USER_ERROR, main
from a2d_evo.config import config_from_dict, config_to_dict
from a2d_evo.errors import FormatError, RunFolderError, TrainingError
from a2d_evo.formats import CHECKPOINT_FORMAT_VERSION
from a2d_evo.runs.files import torch_load, torch_save, write_text
from a2d_evo.runs.folder import RunFolder
from a2d_evo.train import loop
from a2d_evo.train import teacher_folder as tf
from a2d_evo.train.interrupts import TrainingInterrupted
from a2d_evo.train.teacher import train_teacher


@pytest.fixture(autouse=True)
def _no_onnx(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("a2d_evo.nets.agent_folder.onnx_available", lambda: False)


RAW: dict[str, Any] = {
    "seed": 3,
    "torch_threads": 1,
    "env": {"id": "CartPole-v1"},
    "space": {"kind": "mlp", "depths": [1, 2], "widths": [4, 8, 16]},
    "ppo": {"num_envs": 2, "num_steps": 16, "num_minibatches": 2, "update_epochs": 1},
    "teacher": {
        "arch": {"kind": "mlp", "widths": [16]},
        "total_steps": 128,
        "eval_episodes": 2,
        "checkpoint_every": 2,
    },
    "supernet": {"total_steps": 128, "rollout_subnets": 2},
    "eval": {"num_envs": 2, "episodes": 2},
}


def tiny(**over: Any) -> Any:
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in RAW.items()}
    for key, value in over.items():
        section, _, name = key.partition("__")
        raw.setdefault(section, {})[name] = value
    return config_from_dict(raw)


def read_config_history(stage: Path) -> list[dict[str, Any]]:
    """The changes in ``stage/config_history.yaml`` (read here, not with the package's reader)."""
    path = stage / "config_history.yaml"
    if not path.is_file():
        return []
    data = yaml.safe_load(path.read_text())
    assert data["format_version"] == 1
    changes: list[dict[str, Any]] = data["changes"]
    return changes


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_the_train_longer_command_doubles_the_steps_trained_not_a_total_below_one_rollout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """total_steps 10 trains one whole rollout (2 envs x 16 steps = 32): the command named
    raises it to 64, not to 20 (a resume to 20 trained nothing and named 40, forever)."""
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({**RAW, "teacher": {**RAW["teacher"], "total_steps": 10}}))
    tie_teacher_with_random(monkeypatch)
    argv = ["train-teacher", "--config", str(config), "--out", str(tmp_path / "run"), "--quiet"]
    assert main(argv) == EXIT_USER_ERROR
    err = one_error_line(capsys)
    assert "--resume --set teacher.total_steps=64`" in err, err


def test_a_failed_teacher_trains_longer_with_the_command_its_error_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(RAW))
    run_dir = tmp_path / "run"
    real_eval, real_random = tf.evaluate_agent, tf.random_policy_return
    tie_teacher_with_random(monkeypatch)  # "it has not learned the task"
    argv = ["train-teacher", "--config", str(config), "--out", str(run_dir), "--quiet"]
    assert main(argv) == EXIT_USER_ERROR
    err = one_error_line(capsys)
    assert "not learned the task" in err
    command = re.search(r"`(a2d-evo train-teacher [^`]*)`", err)
    assert command is not None, err
    run = RunFolder(run_dir)
    assert shlex.split(command.group(1)) == [
        "a2d-evo", "train-teacher", "--config", str(run.teacher / "config.yaml"),
        "--out", str(run_dir), "--resume", "--set", "teacher.total_steps=256",
    ]  # fmt: skip
    assert torch_load(run.teacher / "checkpoint.pt")["update"] == 4
    assert not run.teacher_agent.exists()

    # a plain re-run and a plain --resume are refused, each naming the command that works
    assert main(argv) == EXIT_USER_ERROR
    assert command.group(1) in one_error_line(capsys)

    # the command it named works; the random policy is now made weak so the test does not
    # depend on how well 8 tiny updates learn
    monkeypatch.setattr(tf, "evaluate_agent", real_eval)
    monkeypatch.setattr(
        tf, "random_policy_return", lambda c, n, s: real_random(c, n, s, max_episode_steps=1)
    )
    capsys.readouterr()
    assert main([*shlex.split(command.group(1))[1:], "--quiet"]) == 0
    # the raise is said, not silent (a --resume that forgot a --set would extend a stage)
    assert (
        f"--resume: teacher.total_steps raised from 128 to 256, so teacher goes on "
        f"(recorded in {run.teacher / 'config_history.yaml'})"
    ) in capsys.readouterr().err
    ckpt = torch_load(run.teacher / "checkpoint.pt")
    assert (ckpt["update"], ckpt["global_step"]) == (8, 256)
    metrics = yaml.safe_load((run.teacher_agent / "metrics.json").read_text())
    assert metrics["env_steps"] == 256
    stage = yaml.safe_load((run.teacher / "config.yaml").read_text())
    assert stage["teacher"]["total_steps"] == 256
    history = read_config_history(run.teacher)
    assert [(h["key"], h["from"], h["to"]) for h in history] == [("teacher.total_steps", 128, 256)]
    assert isinstance(history[0]["time"], str)
    # the run's own config.yaml (the first command's) is left as it was
    assert yaml.safe_load(run.config_path.read_text())["teacher"]["total_steps"] == 128


def test_resume_may_only_raise_the_budget_and_records_each_raise(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "run")
    run.bind(tiny())
    run.bind_stage("teacher", tiny(), resume=False)
    stage_cfg = run.teacher / "config.yaml"
    (run.teacher / "checkpoint.pt").write_bytes(b"x")  # the stage now holds a run
    before = stage_cfg.read_text()
    # a damaged checkpoint cannot be resumed: the raise is refused before it is recorded
    with pytest.raises(
        FormatError, match=r"teacher checkpoint .*checkpoint\.pt (is truncated|is not a torch file)"
    ):
        run.bind_stage("teacher", tiny(teacher__total_steps=256), resume=True)
    assert stage_cfg.read_text() == before
    assert not (run.teacher / "config_history.yaml").exists()
    # a readable file that is no teacher checkpoint (a foreign dict, the supernet's): the raise
    # is refused before it is recorded too (only a torch file was asked for)
    shaped = {"format_version": CHECKPOINT_FORMAT_VERSION, "stage": "teacher", "update": 2,
              "global_step": 64, "model": {}, "optimizer": {}, "rng": {}}  # fmt: skip
    foreigns = [({"update": 2}, "is not an a2d-evo training checkpoint"),
                ({**shaped, "stage": "supernet"}, "is a 'supernet' checkpoint")]  # fmt: skip
    # counters of another type: a traceback (int('x'), int(None)) or taken as 3 (3.7)
    foreigns += [({**shaped, "update": bad}, r"'update' must be an integer >= 0, got ")
                 for bad in ("x", None, -5, 3.7, True)]  # fmt: skip
    foreigns += [({**shaped, "global_step": 64.0}, "'global_step' must be an integer"),
                 ({**shaped, "wall_s": "x"}, "'wall_s' must be a number of seconds"),
                 ({**shaped, "wall_s": float("nan")}, "'wall_s' must be a number")]  # fmt: skip
    for foreign, why in foreigns:
        torch_save(run.teacher / "checkpoint.pt", foreign)
        with pytest.raises(FormatError, match=why):
            run.bind_stage("teacher", tiny(teacher__total_steps=256), resume=True)
        assert stage_cfg.read_text() == before
        assert not (run.teacher / "config_history.yaml").exists()
    torch_save(run.teacher / "checkpoint.pt", shaped)  # a teacher checkpoint

    with pytest.raises(
        RunFolderError,
        match=r"already holds a teacher run.*to train it longer: "
        r"`a2d-evo train-teacher .* --resume --set teacher\.total_steps=256`",
    ):
        run.bind_stage("teacher", tiny(), resume=False)  # fmt: skip
    with pytest.raises(
        RunFolderError,
        match=r"teacher\.total_steps may only be raised \(.* was "
        r"set to 128, asked 64\); continue at 128 with `a2d-evo train-teacher --config "
        r".*teacher/config\.yaml --out .* --resume`, or raise it with .*"
        r"--resume --set teacher\.total_steps=256`",
    ):
        run.bind_stage("teacher", tiny(teacher__total_steps=64), resume=True)  # fmt: skip
    with pytest.raises(
        RunFolderError,
        match=r"on ppo\.lr; only teacher\.total_steps may change .*resume with the same "
        r"config: `a2d-evo train-teacher --config .*teacher/config\.yaml --out .* --resume`$",
    ):
        run.bind_stage("teacher", tiny(teacher__total_steps=256, ppo__lr=1e-4), resume=True)
    assert stage_cfg.read_text() == before
    assert not (run.teacher / "config_history.yaml").exists()

    run.bind_stage("teacher", tiny(teacher__total_steps=256), resume=True)
    run.bind_stage("teacher", tiny(teacher__total_steps=256), resume=True)  # same: no entry
    run.bind_stage("teacher", tiny(teacher__total_steps=1024), resume=True)
    steps = [(h["from"], h["to"]) for h in read_config_history(run.teacher)]
    assert steps == [(128, 256), (256, 1024)]
    saved = config_to_dict(run.stage_config("teacher"))
    assert saved["teacher"]["total_steps"] == 1024
    assert {**saved, "teacher": {**saved["teacher"], "total_steps": 128}} == config_to_dict(tiny())

    # the supernet's budget is its own key; the search's are its generations and step budget
    run.bind_stage("supernet", tiny(), resume=False)
    torch_save(run.supernet / "checkpoint.pt", {**shaped, "stage": "supernet"})
    run.bind_stage("supernet", tiny(supernet__total_steps=512), resume=True)
    assert [h["key"] for h in read_config_history(run.supernet)] == ["supernet.total_steps"]
    run.bind_stage("search", tiny(), resume=False)
    with pytest.raises(
        RunFolderError, match=r"search holds no state\.npz to continue from .*; drop --resume"
    ):
        run.bind_stage("search", tiny(search__gens=99), resume=True)
    write_text(run.search / "state.npz", "checked by evolve, before it binds")
    with pytest.raises(
        RunFolderError, match=r"on search\.pop; only search\.gens, search\.budget_steps may"
    ):
        run.bind_stage("search", tiny(search__gens=99, search__pop=12), resume=True)
    with pytest.raises(
        RunFolderError,
        match=r"budget_steps may only be raised \(.*search was started without one, asked 5000\)$",
    ):
        run.bind_stage("search", tiny(search__budget_steps=5000), resume=True)  # from no budget
    run.bind_stage("search", tiny(search__gens=99), resume=True)
    assert [(h["key"], h["to"]) for h in read_config_history(run.search)] == [("search.gens", 99)]


def tie_teacher_with_random(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``save_teacher`` find the teacher's return equal to the random policy's."""
    seen: dict[str, Any] = {}
    real_eval = tf.evaluate_agent

    def teacher_eval(*args: Any, **kwargs: Any) -> Any:
        seen["result"] = real_eval(*args, **kwargs)
        return seen["result"]

    monkeypatch.setattr(tf, "evaluate_agent", teacher_eval)
    monkeypatch.setattr(tf, "random_policy_return", lambda *a, **k: seen["result"])


def test_raised_total_continues_with_the_lr_decay_over_the_new_total(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = RunFolder(tmp_path / "run")
    tie_teacher_with_random(monkeypatch)
    with pytest.raises(TrainingError, match="not learned"):  # trained to the end, then refused
        train_teacher(tiny(), run, progress=False)
    lrs: list[tuple[int, float]] = []
    real_report = loop.report

    def report(writer: Any, bar: Any, step: int, lr: float, *rest: Any) -> None:
        lrs.append((step, lr))
        real_report(writer, bar, step, lr, *rest)

    monkeypatch.setattr(loop, "report", report)
    with pytest.raises(TrainingError, match="not learned"):  # still tied: training is the point
        train_teacher(tiny(teacher__total_steps=256), run, resume=True, progress=False)
    base = tiny().ppo.lr
    # updates 5..8 of 8: base * (1 - (u - 1) / 8), up from update 4's base * (1 - 3 / 4)
    assert [s for s, _ in lrs] == [160, 192, 224, 256]
    assert [lr for _, lr in lrs] == pytest.approx([base * (1 - (u - 1) / 8) for u in range(5, 9)])
    assert torch_load(run.teacher / "checkpoint.pt")["update"] == 8


def test_a_checkpoint_past_the_total_is_refused(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "run")
    with pytest.raises(TrainingInterrupted, match="update 4/4"):  # stopped after its last update
        train_teacher(tiny(), run, progress=False, stop_after=4)
    stage_cfg = run.teacher / "config.yaml"
    text = stage_cfg.read_text().replace("total_steps: 128", "total_steps: 64", 1)  # teacher's
    stage_cfg.write_text(text)
    with pytest.raises(
        TrainingError,
        match=r"is at update 4 \(step 128\), past the 2 updates of "
        r"total_steps 64; resume with a teacher.total_steps of at least 128",
    ):
        train_teacher(tiny(teacher__total_steps=64), run, resume=True, progress=False)  # fmt: skip


def test_a_raise_cut_short_withdraws_the_finished_result_until_it_is_trained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``--resume`` that raises a finished stage's budget withdraws its result (the teacher
    agent's commit mark, the supernet's weights) before the raise is recorded: one killed
    before the new total left the old result looking finished, and the next stages and a
    ``demo --resume`` took it under a config stating the new budget. The next stage names the
    resume; the resume writes the result again."""
    import json

    from a2d_evo.search.evolution import evolve
    from a2d_evo.train.supernet_stage import train_supernet

    real_random = tf.random_policy_return  # a weak random policy: the tiny teacher is kept
    monkeypatch.setattr(
        tf, "random_policy_return", lambda c, n, s: real_random(c, n, s, max_episode_steps=1)
    )
    run = RunFolder(tmp_path / "run")
    train_teacher(tiny(), run, progress=False)
    mark = run.teacher_agent / "arch.json"
    assert mark.is_file()
    with pytest.raises(TrainingInterrupted):
        train_teacher(
            tiny(teacher__total_steps=256), run, resume=True, progress=False, stop_after=5
        )
    assert not mark.exists()
    with pytest.raises(TrainingError, match=r"checkpoint but no agent.*train-teacher .*--resume"):
        train_supernet(tiny(), run, progress=False)
    train_teacher(tiny(teacher__total_steps=256), run, resume=True, progress=False)
    assert json.loads((run.teacher_agent / "metrics.json").read_text())["env_steps"] == 256
    # a damaged config_history.yaml refuses the next raise before the result is withdrawn (it
    # was removed first, and the teacher then looked unfinished; found by review)
    history = run.teacher / "config_history.yaml"
    kept = history.read_bytes()
    history.write_text("format_version: 1\nchanges: [\n")
    with pytest.raises(FormatError, match="config_history.yaml cannot be read"):
        train_teacher(tiny(teacher__total_steps=512), run, resume=True, progress=False)
    assert mark.is_file()
    history.write_bytes(kept)

    train_supernet(tiny(), run, progress=False)
    with pytest.raises(TrainingInterrupted):
        train_supernet(
            tiny(supernet__total_steps=256), run, resume=True, progress=False, stop_after=5
        )
    assert not run.supernet_weights.exists()
    with pytest.raises(
        RunFolderError,
        match=r"holds an unfinished supernet stage \(interrupted, or its budget raised\): "
        r"continue it with `a2d-evo train-supernet --config .* --resume`",
    ):
        evolve(tiny(), run, progress=False)
    train_supernet(tiny(supernet__total_steps=256), run, resume=True, progress=False)
    assert json.loads((run.supernet / "summary.json").read_text())["env_steps"] == 256
    # a raise within the same whole updates trains nothing and withdraws nothing
    train_supernet(tiny(supernet__total_steps=256 + 31), run, resume=True, progress=False)
    assert run.supernet_weights.is_file()


DEMO_SMALL = {"search__pop": 4, "search__gens": 1, "search__episodes": 1,
              "search__final_episodes": 2, "finetune__steps": 0}  # fmt: skip
"""A demo's later stages at their smallest (no fine-tune)."""


def _cut_teacher_raise(run: RunFolder) -> None:
    """A --resume raising the finished teacher's budget to 256 steps, killed on the way (it
    withdrew the teacher's agent)."""
    with pytest.raises(TrainingInterrupted):
        train_teacher(
            tiny(**DEMO_SMALL, teacher__total_steps=256), run, resume=True, progress=False,
            stop_after=5,
        )  # fmt: skip


def test_demo_resume_finishes_a_raise_that_was_cut_short(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A teacher raise killed on the way withdrew the teacher; `demo --resume` with the
    demo's own (lower) budget resumed the stage with it and was refused as a lowering. It now
    goes on to the total the stage was raised to, and says so."""
    from a2d_evo.demo import run_demo

    real_random = tf.random_policy_return
    monkeypatch.setattr(
        tf, "random_policy_return", lambda c, n, s: real_random(c, n, s, max_episode_steps=1)
    )
    run = RunFolder(tmp_path / "run")
    train_teacher(tiny(**DEMO_SMALL), run, progress=False)
    _cut_teacher_raise(run)
    capsys.readouterr()
    run_demo(tiny(**DEMO_SMALL), run, resume=True, progress=False)
    assert (
        "[demo] teacher: resuming to its raised teacher.total_steps 256" in capsys.readouterr().out
    )
    metrics = yaml.safe_load((run.teacher_agent / "metrics.json").read_text())
    assert metrics["env_steps"] == 256 and (run.search / "front.json").is_file()


def test_demo_resume_refuses_an_unfinished_stage_a_later_one_was_built_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A teacher raise cut short after the supernet was distilled from the teacher: training
    the teacher on would leave the supernet (and the search) of the old teacher, which export
    then refuses after the whole training was spent. The demo refuses it first, naming the
    command that finishes the raise."""
    from a2d_evo import demo
    from a2d_evo.train.supernet_stage import train_supernet

    run = RunFolder(tmp_path / "run")
    train_teacher(tiny(**DEMO_SMALL), run, progress=False)
    train_supernet(tiny(**DEMO_SMALL), run, progress=False)
    _cut_teacher_raise(run)
    trained: list[str] = []
    monkeypatch.setattr(demo, "train_teacher", lambda *a, **k: trained.append("teacher"))
    with pytest.raises(
        RunFolderError,
        match=r"the teacher stage is unfinished .* the supernet "
        r"stage was built on it before; finish it with `a2d-evo train-teacher",
    ):
        demo.run_demo(tiny(**DEMO_SMALL), run, resume=True, progress=False)
    assert trained == []


def test_a_supernet_resume_with_other_distillation_settings_is_refused(tmp_path: Path) -> None:
    """The supernet's distillation (``distill.*``) is part of what it trains: a ``--resume``
    with another ``distill.alpha`` would mix two losses in one supernet and is refused;
    a raised ``supernet.total_steps`` is the change it takes."""
    from a2d_evo.config import config_from_dict
    from a2d_evo.errors import RunFolderError
    from a2d_evo.runs.folder import RunFolder
    from a2d_evo.runs.stage_budget import budget_raises

    saved = config_from_dict({"supernet": {"total_steps": 1000}})
    run = RunFolder(tmp_path / "run")
    folder, resume = run.stage("supernet"), run.resume_command
    longer = config_from_dict({"supernet": {"total_steps": 2000}})
    assert budget_raises("supernet", folder, saved, longer, resume) == {
        "supernet.total_steps": (1000, 2000)
    }
    other = config_from_dict({"supernet": {"total_steps": 1000}, "distill": {"alpha": 0.5}})
    with pytest.raises(RunFolderError, match=r"differs from the one .* on distill\.alpha"):
        budget_raises("supernet", folder, saved, other, resume)


def test_a_demo_names_a_lowered_setting_unless_it_is_a_budget_raised_since() -> None:
    """A budget the stage's own ``--resume`` raised above the command's is no change; any
    other setting the command lowers is one (``ppo.update_epochs 4 (this command: 2)``)."""
    from a2d_evo.config import Config, config_from_dict
    from a2d_evo.demo import _changed

    def config(total: int, epochs: int) -> Config:
        return config_from_dict({"env": {"id": "CartPole-v1"},
                                 "teacher": {"total_steps": total},
                                 "ppo": {"update_epochs": epochs}})  # fmt: skip

    class Run:  # the stage's own config.yaml, as a raise of its budget rewrote it
        def stage_config(self, stage: str) -> Config:
            return config(2048, 4)

    run: Any = Run()
    assert _changed(run, "teacher", config(1024, 4)) == ""
    assert _changed(run, "teacher", config(1024, 2)) == ("ppo.update_epochs 4 (this command: 2)")
