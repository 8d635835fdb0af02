"""Run folder: binding a config, stage folders and their configs, conflicts, resumes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from a2d_evo.config import load_config
from a2d_evo.errors import RunFolderError
from a2d_evo.runs.files import (
    torch_save,
    write_text,
)
from a2d_evo.runs.folder import RunFolder


def test_bind_refuses_conflicting_config(tmp_path: Path, configs_dir: Path) -> None:
    run = RunFolder(tmp_path / "run")
    cfg = load_config(configs_dir / "cartpole.yaml")
    run.bind(cfg)
    saved = (run.config_path).read_text()
    run.bind(load_config(configs_dir / "cartpole.yaml", ["ppo.lr=1e-3"]))  # not a fixed section
    with pytest.raises(RunFolderError, match="env.id"):
        run.bind(load_config(configs_dir / "acrobot.yaml"))
    assert run.config_path.read_text() == saved
    assert run.load_config() == cfg


def test_bind_stage_fresh_and_resume(tmp_path: Path, configs_dir: Path) -> None:
    run = RunFolder(tmp_path / "run")
    cfg = load_config(configs_dir / "cartpole.yaml")
    run.bind(cfg)
    with pytest.raises(RunFolderError, match="no run to resume"):
        run.bind_stage("teacher", cfg, resume=True)
    run.bind_stage("teacher", cfg, resume=False)
    write_text(run.teacher / "checkpoint.pt", "x")  # config.yaml alone is no result
    with pytest.raises(RunFolderError, match="already holds"):
        run.bind_stage("teacher", cfg, resume=False)
    run.bind_stage("teacher", cfg, resume=True)
    other = load_config(configs_dir / "cartpole.yaml", ["ppo.lr=3e-3"])
    with pytest.raises(RunFolderError, match=r"ppo\.lr"):
        run.bind_stage("teacher", other, resume=True)
    # how the env is stepped is no part of what the run is: another backend resumes
    stepped = load_config(configs_dir / "cartpole.yaml", ["env.backend=sync", "env.workers=3"])
    run.bind(stepped)
    run.bind_stage("teacher", stepped, resume=True)
    # nor where the search plays or how often a stage checkpoints; what it searches is
    run.bind_stage("search", cfg, resume=False)
    write_text(run.search / "state.npz", "x")
    for moved in (["search.backend=ray", "search.ray_address=auto", "search.ray_actors=8",
                   "search.ray_cpus_per_actor=2", "search.ray_share_timeout_s=60"],
                  ["teacher.checkpoint_every=7", "supernet.checkpoint_every=9"]):  # fmt: skip
        elsewhere = load_config(configs_dir / "cartpole.yaml", moved)
        run.bind_stage("search", elsewhere, resume=True)
        run.bind_stage("teacher", elsewhere, resume=True)
    with pytest.raises(RunFolderError, match=r"search\.pop"):
        run.bind_stage("search", load_config(configs_dir / "cartpole.yaml", ["search.pop=6"]), True)


def test_config_since_a_stage_is_the_stages_own_else_the_runs(
    tmp_path: Path, configs_dir: Path
) -> None:
    """What export, baselines and their Reproduce lines read: the search's config.yaml where
    the search ran (another --set of evolve's), else the run's, each with its own path."""
    run = RunFolder(tmp_path / "run")
    cfg = load_config(configs_dir / "cartpole.yaml")
    run.bind(cfg)
    assert run.config_since("search") == (cfg, run.config_path)
    searched = load_config(configs_dir / "cartpole.yaml", ["search.final_episodes=7"])
    run.bind_stage("search", searched, resume=False)
    got, path = run.config_since("search")
    assert (got.search.final_episodes, path) == (7, run.search / "config.yaml")
    assert run.config_since("teacher") == (cfg, run.config_path)
    run.config_path.unlink()  # a search folder's config alone makes no run
    with pytest.raises(RunFolderError, match="not a run folder"):
        run.config_since("search")


def test_a_stage_that_lost_its_config_names_the_way_out(tmp_path: Path, configs_dir: Path) -> None:
    """A stage folder holding a checkpoint whose config.yaml was deleted or damaged: with
    --resume it said "holds no run to resume; drop --resume" (or "malformed YAML" alone),
    without it "already holds a teacher run; pass --resume": each sent to the other. Both now
    say to restore the file or delete the stage folder."""
    run = RunFolder(tmp_path / "run")
    cfg = load_config(configs_dir / "cartpole.yaml")
    run.bind(cfg)
    run.bind_stage("teacher", cfg, resume=False)
    write_text(run.teacher / "checkpoint.pt", "x")
    stage_cfg = run.teacher / "config.yaml"
    way_out = (
        r"holds a teacher run but its config\.yaml is missing or damaged: restore it .*"
        r"config_history\.yaml\), or delete .*teacher to start the stage over$"
    )
    stage_cfg.unlink()
    for resume in (True, False):
        with pytest.raises(RunFolderError, match=way_out):
            run.bind_stage("teacher", cfg, resume=resume)
    stage_cfg.write_text("teacher: {total_steps: [")  # cut short
    for resume in (True, False):  # without: it said "pass --resume", which then failed
        with pytest.raises(RunFolderError, match=way_out):
            run.bind_stage("teacher", cfg, resume=resume)
    # the search checks a resume before it binds (check_resume): the same advice
    run.bind_stage("search", cfg, resume=False)
    write_text(run.search / "state.npz", "x")
    (run.search / "config.yaml").write_text("search: {pop: [")
    with pytest.raises(RunFolderError, match=way_out.replace("teacher", "search")):
        run.check_resume("search", cfg)


def test_a_part_of_a_run_is_not_taken_for_a_run(
    tmp_path: Path, configs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # each stage folder holds a config.yaml: `report RUN_DIR/search` read it as a run and
    # said to run evolve again ("no finished search in RUN_DIR/search/search/front.json")
    run = RunFolder(tmp_path / "run")
    cfg = load_config(configs_dir / "cartpole.yaml")
    run.bind(cfg)
    run.bind_stage("search", cfg, resume=False)
    (run.root / "agents").mkdir()
    for part in ("search", "agents"):
        for folder in (RunFolder(run.root / part), RunFolder(f"{run.root / part}/")):
            for call in (folder.load_config, lambda f=folder: f.bind(cfg)):
                with pytest.raises(RunFolderError) as info:
                    call()
                assert str(info.value) == (
                    f"{folder.root} is the {part} folder of run {run.root}, not a run; "
                    f"pass {run.root}"
                )
    monkeypatch.chdir(run.search)  # `.` too
    with pytest.raises(RunFolderError, match=f"the search folder of run {run.root}"):
        RunFolder(".").load_config()
    # deeper (an agent folder, a TensorBoard folder): a whole run was written into them, or
    # its config.yaml before the refusal
    (run.root / "tb" / "teacher").mkdir(parents=True)
    (run.root / "agents" / "front_00").mkdir()
    for inner, where in (("agents/front_00", "inside the agents"), ("tb", "the tb"),
                         ("tb/teacher", "inside the tb")):  # fmt: skip
        folder = RunFolder(run.root / inner)
        with pytest.raises(RunFolderError, match=f"is {where} folder of run {run.root}, not a"):
            folder.bind(cfg)
        assert not folder.config_path.exists()
    monkeypatch.chdir(tmp_path)
    # a run of its own that is named so, beside some config.yaml, stays a run
    (tmp_path / "config.yaml").write_text("seed: 1\n")
    named = RunFolder(tmp_path / "search")
    named.bind(cfg)
    named.bind_stage("teacher", cfg, resume=False)
    assert named.load_config() == cfg
    assert run.load_config() == cfg
    # a folder holding the user's own config.yaml is named as no run, not as a bad file
    with pytest.raises(
        RunFolderError, match=r"is not a run folder: its config\.yaml was not written by a run"
    ):
        RunFolder(tmp_path).bind(cfg)
    # ... and a folder holding a copy of a run's config.yaml, without a run's parts, is no
    # run either: folders under its "baselines" or "report" take runs of their own
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(run.config_path, project / "config.yaml")
    for inner in ("baselines/ppo_small", "report/runs/r1"):
        RunFolder(project / inner).bind(cfg)
    # a run's stage folder is skipped on the way up: the run above it is named
    with pytest.raises(RunFolderError, match=f"is inside the search folder of run {run.root},"):
        RunFolder(run.search / "teacher").bind(cfg)
    # a run whose config.yaml lost its first line is a damaged run, not "no run"
    text = run.config_path.read_text()
    run.config_path.write_text(text.split("\n", 1)[1])
    with pytest.raises(
        RunFolderError, match=r"holds a run's parts, so its config\.yaml is damaged"
    ):
        run.bind(cfg)
    run.config_path.write_text(text)


def test_an_env_argument_left_out_differs_from_one_given_as_null() -> None:
    from a2d_evo.config import config_from_dict
    from a2d_evo.config.compare import config_diff
    from a2d_evo.runs.folder import FIXED_SECTIONS

    env = {"id": "MinAtar/Breakout-v1", "imports": ["minatar.gym:register_envs"]}
    left_out = config_from_dict({"env": env})
    null = config_from_dict({"env": {**env, "kwargs": {"sticky_action_prob": None}}})
    # the env takes its default for one, None for the other (MinAtar then crashed): they
    # read as the same env, so a run made with one went on with the other
    assert config_diff(left_out, null, FIXED_SECTIONS) == ["env.kwargs.sticky_action_prob"]
    assert config_diff(null, null, FIXED_SECTIONS) == []


def test_non_writable_run_folder(tmp_path: Path, configs_dir: Path) -> None:
    if os.geteuid() == 0:
        # root ignores permission bits; use a path under a regular file instead
        (tmp_path / "file").write_text("x")
        run = RunFolder(tmp_path / "file" / "run")
    else:
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        run = RunFolder(ro / "run")
    with pytest.raises(RunFolderError, match="cannot create (run )?folder|not writable"):
        run.bind(load_config(configs_dir / "cartpole.yaml"))


def test_enclosing_run_and_its_teacher(tmp_path: Path, configs_dir: Path) -> None:
    from a2d_evo.runs.folder import enclosing_run
    from a2d_evo.runs.layout import RUN_PARTS
    from a2d_evo.runs.teacher import run_teacher

    run = RunFolder(tmp_path / "run")
    assert all(getattr(run, part) == run.root / part for part in RUN_PARTS)
    run.bind(load_config(configs_dir / "cartpole.yaml"))
    agent = run.agents / "knee"
    agent.mkdir(parents=True)
    assert enclosing_run(agent).root == run.root.resolve()  # type: ignore[union-attr]
    assert run_teacher(agent) is None  # no teacher trained yet
    run.teacher_agent.mkdir(parents=True)
    (run.teacher_agent / "arch.json").write_text("{}")
    assert run_teacher(agent) == run.teacher_agent.resolve()
    assert run_teacher(run.teacher_agent) == run.teacher_agent.resolve()  # callers exclude self
    assert enclosing_run(tmp_path / "elsewhere" / "agent") is None
    assert enclosing_run(run.baselines / "ppo_x1").root == run.root.resolve()  # type: ignore[union-attr]
    # an agent copied beside an unrelated config.yaml is no part of a run
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / "config.yaml").write_text("{}")
    assert enclosing_run(tmp_path / "downloads" / "agentA") is None
    assert enclosing_run(tmp_path / "downloads" / "sub" / "agentA") is None
    assert enclosing_run(run.root / "search" / "x") is None  # not where agents live
    # nor one in agents/ beside the user's own config.yaml (no format_version): it was
    # taken for a run, and eval refused it as "not a file a2d-evo wrote"
    (tmp_path / "myproj" / "agents" / "knee").mkdir(parents=True)
    (tmp_path / "myproj" / "config.yaml").write_text("env: {id: CartPole-v1}\n")
    assert enclosing_run(tmp_path / "myproj" / "agents" / "knee") is None


def test_a_config_yaml_that_is_no_regular_file_is_no_run_and_never_blocks(tmp_path: Path) -> None:
    """A received folder whose config.yaml is a FIFO (the read blocked for ever) or a link
    to /dev/zero (a first line without end): neither is a run's config."""
    import os

    from a2d_evo.runs.layout import written_by_a_run

    fifo = tmp_path / "fifo" / "config.yaml"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    zero = tmp_path / "zero" / "config.yaml"
    zero.parent.mkdir()
    zero.symlink_to("/dev/zero")
    assert not written_by_a_run(fifo) and not written_by_a_run(zero)
    run = RunFolder(tmp_path / "fifo")
    with pytest.raises(RunFolderError):  # its own config is read as a file: refused, not hung
        run.load_config()


def test_a_run_config_without_format_version_is_refused(tmp_path: Path) -> None:
    """A run's config.yaml is a2d-evo's own file: `{}` is not taken as all defaults."""
    run = RunFolder(tmp_path / "run")
    run.root.mkdir()
    run.config_path.write_text("{}\n")
    with pytest.raises(RunFolderError, match=r"run config .*config\.yaml has no format_version"):
        run.load_config()


def test_a_raise_within_the_same_whole_updates_says_it_trains_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Budgets run in whole updates of ppo.batch_size (at least one): a --resume raise from
    100 to 200 env steps with updates of 256 trains nothing more and says so (it said "so
    teacher goes on"); a raise past the next update goes on, and messages name the rounding."""
    from a2d_evo.config import config_from_dict, replace
    from a2d_evo.runs.files import CHECKPOINT_FORMAT_VERSION
    from a2d_evo.train.loop import budget_text

    cfg = config_from_dict({"ppo": {"num_envs": 8, "num_steps": 32, "num_minibatches": 4}})
    assert cfg.ppo.batch_size == 256
    assert budget_text(cfg, 3000) == "3,000 env steps (11 updates of 256: 2,816)"
    assert budget_text(cfg, 100) == "100 env steps (1 update of 256: 256)"
    assert budget_text(cfg, 512) == "512 env steps"
    run = RunFolder(tmp_path / "run")
    start = replace(cfg, teacher=replace(cfg.teacher, total_steps=100))
    folder = run.bind_stage("teacher", start, resume=False)
    ckpt = {"format_version": CHECKPOINT_FORMAT_VERSION, "stage": "teacher", "update": 1,
            "global_step": 256, "model": {}, "optimizer": {}, "rng": {}}  # fmt: skip
    torch_save(folder / "checkpoint.pt", ckpt)
    capsys.readouterr()
    run.bind_stage("teacher", replace(cfg, teacher=replace(cfg.teacher, total_steps=200)), True)
    err = capsys.readouterr().err
    assert "raised from 100 to 200" in err and "both run 1 whole update of 256" in err, err
    assert "nothing more to train" in err and "goes on" not in err
    run.bind_stage("teacher", replace(cfg, teacher=replace(cfg.teacher, total_steps=600)), True)
    assert "raised from 200 to 600, so teacher goes on" in capsys.readouterr().err
