"""Run folder: atomic writes, weights-only loads, format versions, conflicts, names."""

from __future__ import annotations

import errno
import io
import os
import shutil
from pathlib import Path

import pytest
import torch

from a2d_evo.config import load_config
from a2d_evo.errors import FormatError, RunFolderError
from a2d_evo.runs.files import (
    check_format_version,
    read_json,
    safe_name,
    torch_load,
    torch_save,
    write_json,
    write_text,
)
from a2d_evo.runs.folder import RunFolder


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def test_torch_round_trip_and_malicious_pickle_refused(tmp_path: Path) -> None:
    torch_save(tmp_path / "ok.pt", {"w": torch.arange(3.0), "step": 7})
    data = torch_load(tmp_path / "ok.pt")
    assert data["step"] == 7 and torch.equal(data["w"], torch.arange(3.0))
    marker = tmp_path / "pwned"
    torch.save({"x": _Evil(marker)}, tmp_path / "evil.pt")
    # the refusal names the global it would have called (torch's advice to load it unsafely cut)
    with pytest.raises(FormatError, match=r"refused to unpickle it \(.*(posix|os|nt)\.system"):
        torch_load(tmp_path / "evil.pt")
    assert not marker.exists()


def test_truncated_checkpoint_is_a_format_error(tmp_path: Path) -> None:
    torch_save(tmp_path / "ok.pt", {"w": torch.randn(100)})
    data = (tmp_path / "ok.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match="truncated or corrupted"):
        torch_load(tmp_path / "cut.pt")
    with pytest.raises(FormatError, match="not found"):
        torch_load(tmp_path / "none.pt")
    (tmp_path / "empty.pt").write_bytes(b"")  # a cut file, not a foreign one
    with pytest.raises(FormatError, match="truncated or corrupted"):
        torch_load(tmp_path / "empty.pt")
    (tmp_path / "text.pt").write_text("hello\n")  # no zip at all: said so, not "KeyError: 101"
    with pytest.raises(FormatError, match=r"text\.pt is not a torch file \(torch\.save writes"):
        torch_load(tmp_path / "text.pt")


def test_atomic_write_keeps_old_file_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "state.json"
    write_json(target, {"format_version": 1, "gen": 1})

    def full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(RunFolderError, match="disk full"):
        write_json(target, {"format_version": 1, "gen": 2})
    monkeypatch.undo()
    assert read_json(target)["gen"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temp file left


def test_a_file_written_into_new_folders_syncs_each_folders_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, configs_dir: Path
) -> None:
    """A power cut after the write keeps the file only if the entries of the folders made for
    it are on disk too: the parent of each new folder is fsynced, as the file's own folder is
    (only the file's folder was). Locks and the run folder make folders the same way."""
    from a2d_evo.runs import files, locks

    synced: list[Path] = []
    monkeypatch.setattr(files, "fsync_dir", lambda folder: synced.append(Path(folder)))
    write_json(tmp_path / "a" / "b" / "f.json", {"x": 1})
    assert synced == [tmp_path, tmp_path / "a", tmp_path / "a" / "b"]
    synced.clear()
    write_json(tmp_path / "a" / "b" / "g.json", {"x": 1})  # no new folder: the file's own
    assert synced == [tmp_path / "a" / "b"]
    synced.clear()
    with locks.folder_lock(tmp_path / "c" / "d"):
        assert synced == [tmp_path, tmp_path / "c"]
    synced.clear()
    RunFolder(tmp_path / "e" / "run").bind(load_config(configs_dir / "cartpole.yaml"))
    assert synced[:2] == [tmp_path, tmp_path / "e"], synced
    # a run folder that is there as a file: mkdir's own error, as before make_dirs
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunFolderError, match="cannot create run folder .*File exists"):
        RunFolder(tmp_path / "file").bind(load_config(configs_dir / "cartpole.yaml"))


def test_make_dirs_leaves_none_of_its_folders_when_one_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure half-way (a full disk at the second level) removes the folders made before
    it and raises the OSError naming the folder it could not make (the lock's message)."""
    from a2d_evo.runs.files import make_dirs

    real = Path.mkdir

    def mkdir(self: Path, *args: object, **kwargs: object) -> None:
        if self.name == "b":
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "mkdir", mkdir)
    with pytest.raises(OSError) as info:
        make_dirs(tmp_path / "a" / "b" / "c")
    assert info.value.filename == str(tmp_path / "a" / "b")
    assert not (tmp_path / "a").exists()
    from a2d_evo.runs import locks

    with pytest.raises(RunFolderError, match=r"cannot create folder .*b: No space left"):
        with locks.folder_lock(tmp_path / "a" / "b" / "c"):
            pass
    assert not (tmp_path / "a").exists()


def test_format_versions(tmp_path: Path) -> None:
    check_format_version({"format_version": 1}, 1, "x")
    with pytest.raises(FormatError, match="newer"):
        check_format_version({"format_version": 2}, 1, "x")
    with pytest.raises(FormatError, match="older"):
        check_format_version({"format_version": 0}, 2, "x")
    with pytest.raises(FormatError, match="no format_version"):
        check_format_version({}, 1, "x")
    write_text(tmp_path / "bad.json", "{not json")
    with pytest.raises(FormatError, match="not valid JSON"):
        read_json(tmp_path / "bad.json")


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


@pytest.mark.parametrize(
    "name", ["../x", "a/b", "", ".", "..", "/abs", "x" * 65, "-lead", "a\x00b", "knee\n"]
)
def test_safe_name_rejects_traversal(name: str) -> None:
    with pytest.raises(RunFolderError):
        safe_name(name)


def test_safe_name_accepts_plain_names() -> None:
    assert safe_name("knee") == "knee"
    assert safe_name("front_03.mlp-64x64") == "front_03.mlp-64x64"


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
    from a2d_evo.runs.files import CHECKPOINT_FORMAT_VERSION, torch_save
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


def test_folders_made_before_a_failing_one_are_all_removed_again(tmp_path: Path) -> None:
    """``make_dirs`` that fails on the third folder (a name too long) removes the two it
    made, the deeper first (top-down, the top one is not empty yet and stays)."""
    from a2d_evo.runs.files import make_dirs

    too_long = tmp_path / "a" / "b" / ("x" * 300)
    with pytest.raises(OSError) as err:
        make_dirs(too_long)
    assert err.value.errno == errno.ENAMETOOLONG
    assert list(tmp_path.iterdir()) == []


def test_a_json_record_may_hold_nan_and_infinity(tmp_path: Path) -> None:
    """``write_json`` writes NaN and infinities (a diverged run's figures) as JSON's
    customary ``NaN``/``Infinity``, which ``read_json`` reads back, instead of refusing."""
    import math

    from a2d_evo.runs.files import read_json, write_json

    write_json(tmp_path / "m.json", {"loss": math.nan, "best": -math.inf})
    assert (tmp_path / "m.json").read_text() == '{\n  "loss": NaN,\n  "best": -Infinity\n}\n'
    back = read_json(tmp_path / "m.json")
    assert math.isnan(back["loss"]) and back["best"] == -math.inf


@pytest.mark.parametrize("content", [[1, 2], {"format_version": "X", "stage": "teacher"}, "rng"])
def test_a_checkpoint_without_every_key_is_not_a_training_checkpoint(
    tmp_path: Path, content: object
) -> None:
    """A torch file that is not a dict holding every :data:`CHECKPOINT_KEYS` is "not an
    a2d-evo training checkpoint" (it was read on and failed on a missing key, or was taken)."""
    from a2d_evo.errors import FormatError
    from a2d_evo.formats import CHECKPOINT_FORMAT_VERSION
    from a2d_evo.runs.files import CHECKPOINT_KEYS, read_checkpoint, torch_save

    path = tmp_path / "ckpt.pt"
    if content == "rng":  # all but one key, each as a valid checkpoint holds it
        full = {"format_version": CHECKPOINT_FORMAT_VERSION, "stage": "teacher", "update": 0,
                "global_step": 0, "model": {}, "optimizer": {}, "rng": {}}  # fmt: skip
        assert set(full) == CHECKPOINT_KEYS
        content = {k: v for k, v in full.items() if k != "rng"}
    torch_save(path, content)
    with pytest.raises(FormatError) as err:
        read_checkpoint(path, "teacher")
    assert str(err.value) == f"teacher checkpoint {path} is not an a2d-evo training checkpoint"


@pytest.mark.parametrize(
    ("key", "value", "said"),
    [
        ("update", -1, "'update' must be an integer >= 0, got -1"),
        ("global_step", True, "'global_step' must be an integer >= 0, got True"),
        ("wall_s", float("inf"), "'wall_s' must be a number of seconds >= 0, got inf"),
        ("wall_s", -0.5, "'wall_s' must be a number of seconds >= 0, got -0.5"),
    ],
)
def test_a_checkpoint_s_counts_and_wall_time_are_finite_and_not_negative(
    tmp_path: Path, key: str, value: object, said: str
) -> None:
    """A checkpoint's ``update`` and ``global_step`` are ints >= 0 (-1 and a bool are not),
    its ``wall_s`` a finite number of seconds >= 0."""
    from a2d_evo.errors import FormatError
    from a2d_evo.formats import CHECKPOINT_FORMAT_VERSION
    from a2d_evo.runs.files import read_checkpoint, torch_save

    path = tmp_path / "ckpt.pt"
    ckpt = {"format_version": CHECKPOINT_FORMAT_VERSION, "stage": "teacher", "update": 3,
            "global_step": 96, "model": {}, "optimizer": {}, "rng": {}, "wall_s": 1.5}  # fmt: skip
    torch_save(path, {**ckpt, key: value})
    with pytest.raises(FormatError) as err:
        read_checkpoint(path, "teacher")
    assert str(err.value) == f"teacher checkpoint {path}: {said}"
    torch_save(path, ckpt)
    assert read_checkpoint(path, "teacher")["global_step"] == 96


def test_an_archive_with_a_deflated_member_is_refused_however_small() -> None:
    """A zip whose member is deflated is refused even when what it inflates to is no larger
    than the archive (random bytes: deflate saves nothing); torch.save stores members."""
    import random
    import zipfile

    from a2d_evo.errors import FormatError
    from a2d_evo.runs.files import check_stored_archive

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data/0", random.Random(0).randbytes(1000))
    raw = buf.getvalue()
    assert len(raw) > 1000
    with pytest.raises(FormatError, match=r"^policy.pt holds compressed members, or members "):
        check_stored_archive(raw, "policy.pt")
    stored = io.BytesIO()
    with zipfile.ZipFile(stored, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("archive/data/0", random.Random(0).randbytes(1000))
    check_stored_archive(stored.getvalue(), "policy.pt")  # the same member, stored: taken


def test_an_archive_whose_stored_members_claim_more_than_the_file_is_refused() -> None:
    """A stored member whose header claims more bytes than the whole archive holds (1 MB in
    a file of about 130 bytes) is refused: its loader would allocate what it claims."""
    import struct
    import zipfile

    from a2d_evo.errors import FormatError
    from a2d_evo.runs.files import check_stored_archive

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("archive/data/0", b"\0" * 8)
    raw = bytearray(buf.getvalue())
    central = raw.index(b"PK\x01\x02")  # the size the reader believes: the central directory's
    raw[central + 24 : central + 28] = struct.pack("<I", 1_000_000)
    with pytest.raises(FormatError, match=r"^policy.pt holds compressed members, or members "):
        check_stored_archive(bytes(raw), "policy.pt")


def test_tensors_whose_values_the_file_does_not_hold_are_named_for_what_they_are() -> None:
    """A sparse tensor, a meta tensor and a stride-0 expansion are each refused with their
    own reason; a dense tensor, and a transposed view of one, are taken."""
    import torch

    from a2d_evo.runs.files import tensor_not_in_file

    assert tensor_not_in_file(torch.zeros(3).to_sparse()) == (
        "is a torch.sparse_coo tensor, not a dense one"
    )
    assert tensor_not_in_file(torch.zeros(3, device="meta")) == (
        "is a meta tensor (a shape without values), not one read from the file"
    )
    assert tensor_not_in_file(torch.zeros(1).expand(5)) == (
        "is not a dense tensor of its shape (its values are not all stored in the file)"
    )
    assert tensor_not_in_file(torch.zeros(2, 3).t()) is None


@pytest.mark.parametrize(("head", "what"), [(b"", "EOFError: "), (b"\x80\x02junk", "")])
def test_an_empty_or_cut_pickle_file_is_truncated_not_foreign(
    tmp_path: Path, head: bytes, what: str
) -> None:
    """An empty file and one that starts as a (pre-1.6) torch pickle are cut or damaged torch
    files, not "not a torch file" (what the damaged pickle raises varies)."""
    from a2d_evo.errors import FormatError
    from a2d_evo.runs.files import torch_load

    path = tmp_path / "policy.pt"
    path.write_bytes(head)
    with pytest.raises(FormatError) as err:
        torch_load(path, "policy")
    assert str(err.value).startswith(f"policy {path} is truncated or corrupted: {what}")


def test_a_json_record_that_is_no_object_reads_as_empty(tmp_path: Path) -> None:
    """``read_json_dict`` of a JSON list (or a missing file) is ``{}``."""
    from a2d_evo.runs.files import read_json_dict

    (tmp_path / "r.json").write_text("[1, 2]\n")
    assert read_json_dict(tmp_path / "r.json") == {}
    assert read_json_dict(tmp_path / "none.json") == {}


def test_a_boolean_format_version_is_no_integer() -> None:
    """``format_version: true`` is refused as no integer (``True == 1`` in Python)."""
    from a2d_evo.errors import FormatError
    from a2d_evo.runs.files import check_format_version

    with pytest.raises(FormatError) as err:
        check_format_version({"format_version": True}, 1, "W")
    assert str(err.value) == "W: format_version True is not an integer"
