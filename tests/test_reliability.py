"""Faults and hostile files: the rows of docs/reliability.md that no module test covers.

Kills at every point of an atomic write, a full disk (a real ENOSPC from /dev/full), an
unwritable run folder at the command line, SIGINT/SIGTERM at the command line, planted
pickles and foreign checkpoints behind ``--resume`` and agent folders, an env that turns
NaN under training, and a stage folder left by a kill before its first checkpoint.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from test_checkpoint import adam_checkpoint

from a2d_evo.cli import EXIT_INTERRUPTED, EXIT_USER_ERROR, main
from a2d_evo.config import config_from_dict
from a2d_evo.errors import ConfigError, EnvError, FormatError, RunFolderError, TrainingError
from a2d_evo.formats import CHECKPOINT_FORMAT_VERSION, FRONT_FORMAT_VERSION
from a2d_evo.runs import files
from a2d_evo.runs.files import read_json, torch_load, write_json
from a2d_evo.runs.folder import RunFolder

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
ENV.pop("A2D_EVO_REFERENCE_OPS", None)


def tiny_raw(**sections: Any) -> dict[str, Any]:
    """A CartPole run of a few updates of 2 envs x 16 steps."""
    raw: dict[str, Any] = {
        "seed": 5,
        "torch_threads": 1,
        "env": {"id": "CartPole-v1"},
        "space": {"kind": "mlp", "depths": [1, 2], "widths": [4, 8, 16]},
        "ppo": {"num_envs": 2, "num_steps": 16, "num_minibatches": 2, "update_epochs": 1},
        "teacher": {"arch": {"kind": "mlp", "widths": [8]}, "total_steps": 128},
        "supernet": {"total_steps": 128, "rollout_subnets": 2},
        "eval": {"num_envs": 2, "episodes": 2, "random_episodes": 2},
    }
    raw["teacher"]["eval_episodes"] = 2
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values} if isinstance(values, dict) else values
    return raw


def write_config(path: Path, **sections: Any) -> Path:
    config_from_dict(tiny_raw(**sections))  # valid before it is used
    path.write_text(yaml.safe_dump(tiny_raw(**sections)))
    return path


def leftovers(folder: Path, name: str) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.startswith(f".{name}.")]


# ----------------------------------------------------------------------------- SIGKILL
# A fork server: it imports torch once, then forks one writer per round; the test kills
# the writer at a random moment. The writer rewrites a JSON file and a checkpoint forever,
# with sizes that change every time, so a half-written file could not pass the checks.
FORK_SERVER = textwrap.dedent(
    """
    import os, sys
    import torch
    from a2d_evo.runs.files import torch_save, write_json

    js, pt = sys.argv[1], sys.argv[2]
    for line in sys.stdin:
        pid = os.fork()
        if pid == 0:
            sys.stdin.close()
            i = int(line)
            while True:
                i += 1
                size = 1 + (i * 7919) % 400_000
                write_json(js, {"format_version": 1, "n": i, "pad": "x" * size, "size": size})
                torch_save(pt, {"n": i, "w": torch.full((size,), float(i))})
        print(pid, flush=True)
        os.waitpid(pid, 0)
        print("reaped", flush=True)
    """
)


def test_sigkill_at_random_moments_leaves_old_or_new_files(tmp_path: Path) -> None:
    js, pt = tmp_path / "state.json", tmp_path / "checkpoint.pt"
    write_json(js, {"format_version": 1, "n": 0, "pad": "", "size": 0})
    files.torch_save(pt, {"n": 0, "w": torch.zeros(1)})
    server = subprocess.Popen(
        [sys.executable, "-c", FORK_SERVER, str(js), str(pt)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    assert server.stdin is not None and server.stdout is not None
    rng = np.random.default_rng(0)
    seen: set[int] = set()
    try:
        for round_ in range(24):
            server.stdin.write(f"{round_ * 1_000_000}\n")
            server.stdin.flush()
            pid = int(server.stdout.readline())
            time.sleep(float(rng.uniform(0.0, 0.25)))
            os.kill(pid, signal.SIGKILL)
            assert server.stdout.readline().strip() == "reaped"
            data = read_json(js, format_version=1)  # whole JSON, never half of one
            assert data["size"] == len(data["pad"])
            ckpt = torch_load(pt)
            assert ckpt["w"].numel() in (1, 1 + (ckpt["n"] * 7919) % 400_000)
            assert bool((ckpt["w"] == float(ckpt["n"])).all())
            seen.add(data["n"] % 1_000_000)
    finally:
        server.stdin.close()
        server.wait(timeout=60)
    assert len(seen) > 5  # the kills landed at many different points of the loop
    # what a kill leaves besides the files: only temp files nobody reads
    for p in tmp_path.iterdir():
        assert p in (js, pt) or (p.name.startswith(".") and p.name.endswith(".tmp")), p


KILL_AT = textwrap.dedent(
    """
    import os, signal, sys
    from a2d_evo.runs import files

    point, target = sys.argv[1], sys.argv[2]
    real_fsync, real_replace = os.fsync, os.replace

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def fsync(fd):
        if point == "before-fsync":
            die()
        real_fsync(fd)

    def replace(src, dst):
        if point == "before-rename":
            die()
        real_replace(src, dst)
        if point == "after-rename":
            die()

    os.fsync, os.replace = fsync, replace
    files.write_json(target, {"format_version": 1, "gen": 2})
    """
)


@pytest.mark.parametrize(
    ("point", "gen"), [("before-fsync", 1), ("before-rename", 1), ("after-rename", 2)]
)
def test_sigkill_at_each_step_of_an_atomic_write(tmp_path: Path, point: str, gen: int) -> None:
    target = tmp_path / "state.json"
    write_json(target, {"format_version": 1, "gen": 1})
    proc = subprocess.run([sys.executable, "-c", KILL_AT, point, str(target)], env=ENV, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert read_json(target, format_version=1) == {"format_version": 1, "gen": gen}
    # a kill before the rename leaves its temp file, complete or not, and nothing else
    assert len(leftovers(tmp_path, "state.json")) == (gen == 1)


# ----------------------------------------------------------------------------- full disk
def test_a_real_enospc_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel's own ENOSPC: the temp file's descriptor is /dev/full."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    target = tmp_path / "state.json"
    write_json(target, {"format_version": 1, "gen": 1})
    real_open_temp = files._open_temp

    def full_disk(path: Path) -> tuple[int, str]:
        fd, name = real_open_temp(path)
        os.close(fd)
        return os.open("/dev/full", os.O_WRONLY), name

    monkeypatch.setattr(files, "_open_temp", full_disk)
    with pytest.raises(RunFolderError, match=r"No space left on device \(disk full\)"):
        write_json(target, {"format_version": 1, "gen": 2, "pad": "x" * 100_000})
    monkeypatch.undo()
    assert read_json(target) == {"format_version": 1, "gen": 1}
    assert leftovers(tmp_path, "state.json") == []


@pytest.fixture(autouse=True)
def _no_onnx(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("a2d_evo.nets.agent_folder.onnx_available", lambda: False)


def test_disk_full_during_training_exits_2_and_keeps_the_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path / "c.yaml", teacher={"total_steps": 320, "checkpoint_every": 1})
    run = tmp_path / "run"
    real_fsync = os.fsync
    calls = {"n": 0}

    def fsync(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] > 12:  # config files and the first few checkpoints get through
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    code = main(["train-teacher", "--config", str(cfg), "--out", str(run), "--quiet"])
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert code == EXIT_USER_ERROR
    assert "disk full" in err and err.count("\n") == 1
    ckpt = torch_load(run / "teacher" / "checkpoint.pt")
    assert 0 <= ckpt["update"] < 10 and all(torch.isfinite(v).all() for v in ckpt["model"].values())
    assert leftovers(run / "teacher", "checkpoint.pt") == []


# ----------------------------------------------------------------------------- folders
def test_unwritable_run_folder_at_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path / "c.yaml")
    blocker = tmp_path / "file"
    blocker.write_text("x")  # works for root too: nothing can be created under a file
    for out in (blocker / "run", blocker):
        code = main(["train-teacher", "--config", str(cfg), "--out", str(out), "--quiet"])
        err = capsys.readouterr().err
        assert code == EXIT_USER_ERROR and err.count("\n") == 1
        assert re.search(r"cannot create (run )?folder|not writable", err), err
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        code = main(["train-teacher", "--config", str(cfg), "--out", str(ro), "--quiet"])
        assert code == EXIT_USER_ERROR and "not writable" in capsys.readouterr().err


def test_a_stage_killed_before_its_first_checkpoint_can_start_again(tmp_path: Path) -> None:
    cfg = config_from_dict(tiny_raw())
    run = RunFolder(tmp_path / "run")
    run.bind(cfg)
    folder = run.bind_stage("supernet", cfg, resume=False)
    (folder / ".checkpoint.pt.abc123.tmp").write_bytes(b"half a checkpo")  # killed mid-write
    assert run.bind_stage("supernet", cfg, resume=False) == folder  # nothing to lose
    (folder / "checkpoint.pt").write_bytes(b"x")
    with pytest.raises(RunFolderError, match="already holds a supernet run; pass --resume"):
        run.bind_stage("supernet", cfg, resume=False)


# ----------------------------------------------------------------------------- signals
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_during_training_checkpoints_then_exits_nonzero(
    tmp_path: Path, sig: signal.Signals
) -> None:
    cfg = write_config(tmp_path / "c.yaml", teacher={"total_steps": 32 * 400})
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "a2d_evo", "train-teacher", "--config", str(cfg)]
    cmd += ["--out", str(run), "--quiet"]
    proc = subprocess.Popen(
        cmd, stderr=subprocess.PIPE, text=True, env=ENV, cwd=tmp_path, preexec_fn=_ignore_sigint
    )
    ckpt = run / "teacher" / "checkpoint.pt"
    deadline = time.monotonic() + 120
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # the loop writes an update-0 checkpoint once it runs
    time.sleep(0.3)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_INTERRUPTED, err
    assert f"interrupted ({sig.name})" in err and "continue with --resume" in err
    state = torch_load(ckpt)
    assert 0 <= state["update"] < 400
    # resuming from it is shown by test_train.py (in process) and test_crash_resume.py


def _plant_supernet_and_teacher(raw: dict[str, Any], root: Path) -> None:
    """Random-init supernet weights and a teacher cut out of them: enough to search."""
    from a2d_evo.nets.agent_folder import extract, save_agent
    from a2d_evo.nets.space import MLPArch
    from a2d_evo.nets.supernet import build_supernet

    cfg = config_from_dict(raw)
    run = RunFolder(root)
    torch.manual_seed(0)
    net = build_supernet(cfg)
    files.torch_save(run.supernet_weights, {k: v.detach() for k, v in net.state_dict().items()})
    save_agent(extract(net, MLPArch((16,)), {"id": cfg.env.id}), run.teacher_agent, onnx=False)


def _ignore_sigint() -> None:
    """Start the command as a background job of a script does: SIGINT ignored. Ctrl-C (and
    ``kill -INT``) must still stop it the documented way."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_during_search_exits_nonzero_and_keeps_the_state(
    tmp_path: Path, sig: signal.Signals
) -> None:
    raw = tiny_raw(search={"pop": 8, "gens": 500, "episodes": 1, "max_episode_steps": 20})
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    run = tmp_path / "run"
    _plant_supernet_and_teacher(raw, run)
    cmd = [sys.executable, "-m", "a2d_evo", "evolve", "--config", str(cfg), "--out", str(run)]
    proc = subprocess.Popen(
        [*cmd, "--quiet"], stderr=subprocess.PIPE, text=True, env=ENV, preexec_fn=_ignore_sigint
    )
    state = run / "search" / "state.npz"
    deadline = time.monotonic() + 120
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # written after every generation
    time.sleep(0.2)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert f"interrupted ({sig.name})" in err and "continue with --resume" in err
    assert err.strip().count("\n") == 0  # one line, no traceback
    with np.load(state, allow_pickle=False) as z:
        generation = int(z["generation"])
    assert 1 <= generation < 500
    assert read_json(run / "search" / "state.json")["generation"] >= generation


# ----------------------------------------------------------------------------- hostile files
class _Evil:
    """Unpickling this runs ``touch marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def _stage_with_checkpoint(tmp_path: Path, content: Any, cfg_path: Path) -> Path:
    cfg = config_from_dict(yaml.safe_load(cfg_path.read_text()))
    run = RunFolder(tmp_path / "run")
    run.bind(cfg)
    run.bind_stage("teacher", cfg, resume=False)
    torch.save(content, run.teacher / "checkpoint.pt")
    return run.root


CHECKPOINTS = {
    "planted pickle": (
        lambda marker: {"format_version": 1, "model": _Evil(marker)},
        "refused to unpickle",
    ),
    "foreign file": (
        lambda marker: {"encoder.weight": torch.zeros(3)},
        "not an a2d-evo training checkpoint",
    ),
    "format before issue [J]": (
        lambda marker: {
            **{key: {} for key in ("model", "optimizer", "rng")},
            "format_version": 1,
            "stage": "teacher",
            "update": 1,
            "global_step": 32,
        },
        "format_version 1: format 1 was written by the training before issue [J]",
    ),
    "newer format": (
        lambda marker: {
            **{key: {} for key in ("model", "optimizer", "rng")},
            "format_version": 99,
            "stage": "teacher",
            "update": 1,
            "global_step": 32,
        },
        "format_version 99",
    ),
    "another stage": (
        lambda marker: {
            **{key: {} for key in ("model", "optimizer", "rng")},
            "format_version": CHECKPOINT_FORMAT_VERSION,
            "stage": "supernet",
            "update": 1,
            "global_step": 32,
        },
        "is a 'supernet' checkpoint, not a 'teacher' one",
    ),
}


@pytest.mark.parametrize("name", list(CHECKPOINTS))
def test_resume_refuses_hostile_checkpoints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    marker = tmp_path / "pwned"
    make, message = CHECKPOINTS[name]
    cfg = write_config(tmp_path / "c.yaml")
    root = _stage_with_checkpoint(tmp_path, make(marker), cfg)
    before = (root / "teacher" / "checkpoint.pt").read_bytes()
    code = main(["train-teacher", "--config", str(cfg), "--out", str(root), "--resume", "--quiet"])
    err = capsys.readouterr().err
    assert code == EXIT_USER_ERROR and message in err and err.count("\n") == 1
    assert not marker.exists()  # the payload never ran
    assert (root / "teacher" / "checkpoint.pt").read_bytes() == before  # and nothing was lost


def test_a_planted_pickle_in_an_agent_folder_is_refused_at_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from a2d_evo.nets.agent import Agent
    from a2d_evo.nets.agent_folder import save_agent
    from a2d_evo.nets.space import MLPArch

    marker = tmp_path / "pwned"
    agent = save_agent(
        Agent(MLPArch((8,)), (4,), 2, {"id": "CartPole-v1"}), tmp_path / "agent", onnx=False
    )
    state = torch.load(agent / "policy.pt", weights_only=True)
    state["policy.weight"] = _Evil(marker)
    torch.save(state, agent / "policy.pt")
    assert main(["eval", str(agent), "--episodes", "1"]) == EXIT_USER_ERROR
    assert "refused to unpickle" in capsys.readouterr().err
    cfg = write_config(tmp_path / "c.yaml")
    out = str(tmp_path / "run")
    code = main(["train-supernet", "--config", str(cfg), "--out", out, "--teacher", str(agent)])
    assert code == EXIT_USER_ERROR and "refused to unpickle" in capsys.readouterr().err
    assert not marker.exists()
    assert not (tmp_path / "run" / "supernet").exists()  # refused before anything was written


def test_a_planted_pickle_in_the_search_state_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tiny_raw(search={"pop": 8, "gens": 3, "episodes": 1, "max_episode_steps": 20})
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump(raw))
    cfg = config_from_dict(raw)
    run = RunFolder(tmp_path / "run")
    _plant_supernet_and_teacher(raw, run.root)
    run.bind(cfg)
    folder = run.bind_stage("search", cfg, resume=False)
    marker = tmp_path / "pwned"
    evil = np.empty(1, dtype=object)
    evil[0] = _Evil(marker)
    np.savez(folder / "state.npz", format_version=np.int64(1), generation=np.int64(1), X=evil)
    write_json(folder / "state.json", {"format_version": 1, "generation": 1})
    args = ["evolve", "--config", str(cfg_path), "--out", str(run.root), "--resume", "--quiet"]
    assert main(args) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "search state" in err and "unreadable" in err and err.count("\n") == 1
    assert not marker.exists()


# ----------------------------------------------------------------------------- NaN envs
class _TurnsNaN(gym.Env):
    """CartPole-shaped; its reward (or observation) turns non-finite from its ``at``-th step
    on, counted over its whole life (training re-seeds and resets the envs)."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, at: int = 40, what: str = "reward") -> None:
        self.at, self.what, self.t = at, what, 0

    def reset(self, *, seed: int | None = None, options: Any = None) -> Any:
        super().reset(seed=seed)
        return np.zeros(4, np.float32), {}

    def step(self, action: Any) -> Any:
        self.t += 1
        bad = self.t >= self.at
        obs = np.full(4, np.inf if bad and self.what == "obs" else 0.0, np.float32)
        reward = float("nan") if bad and self.what == "reward" else 1.0
        return obs, reward, False, False, {}


if "A2DReliabilityNaN-v0" not in gym.registry:
    gym.register("A2DReliabilityNaN-v0", entry_point=_TurnsNaN)


@pytest.mark.parametrize("what", ["reward", "obs"])
def test_an_env_turning_nan_stops_training_and_keeps_the_checkpoint(
    tmp_path: Path, what: str
) -> None:
    from a2d_evo.train.teacher import train_teacher

    raw = tiny_raw(
        env={
            "id": "A2DReliabilityNaN-v0",
            "kwargs": {"at": 40, "what": what},
            "max_episode_steps": 200,
        },
        teacher={"checkpoint_every": 1},
    )
    cfg = config_from_dict(raw)
    run = RunFolder(tmp_path / "run")
    with pytest.raises(EnvError, match=r"non-finite"):
        train_teacher(cfg, run, progress=False)
    ckpt = torch_load(run.teacher / "checkpoint.pt")
    assert ckpt["update"] == 2  # updates 1 and 2 (32 steps) were clean, update 3 was not
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())
    assert not run.teacher_agent.exists()


def test_a_teacher_on_an_env_with_no_episode_limit_is_refused_before_training(
    tmp_path: Path,
) -> None:
    """Its evaluation at the end would never return: refused, naming the key, with nothing
    written; the same env with env.max_episode_steps trains and evaluates."""
    from a2d_evo.errors import ConfigError, TrainingError
    from a2d_evo.train.teacher import train_teacher

    raw = tiny_raw(env={"id": "A2DReliabilityNaN-v0", "kwargs": {"at": 10**9}})
    run = RunFolder(tmp_path / "run")
    with pytest.raises(ConfigError, match="set env.max_episode_steps"):
        train_teacher(config_from_dict(raw), run, progress=False)
    assert not run.root.exists()
    raw["env"]["max_episode_steps"] = 20
    # a reward of 1 per step: every policy scores 20, the episodes' limit, so the teacher is
    # then refused as no better than random, after its evaluation ended
    with pytest.raises(TrainingError, match=r"greedy return \(20\.00\) does not beat"):
        train_teacher(config_from_dict(raw), run, progress=False)
    assert (run.teacher / "checkpoint.pt").is_file()


def test_a_search_on_an_env_with_no_episode_limit_is_refused_before_it_starts(
    tmp_path: Path,
) -> None:
    """The search's own episodes are capped (search.max_episode_steps), but the front's final
    re-scoring plays full ones: refused before the search folder is made."""
    from a2d_evo.errors import ConfigError
    from a2d_evo.search.evolution import evolve

    raw = tiny_raw(
        env={"id": "A2DReliabilityNaN-v0", "kwargs": {"at": 10**9}},
        search={"pop": 8, "gens": 3, "episodes": 1, "max_episode_steps": 50},
    )
    run = RunFolder(tmp_path / "run")
    _plant_supernet_and_teacher(raw, run.root)
    with pytest.raises(ConfigError, match="set env.max_episode_steps"):
        evolve(config_from_dict(raw), run, progress=False)
    assert not run.search.exists()


def test_an_env_turning_nan_stops_the_search(tmp_path: Path) -> None:
    from a2d_evo.search.evolution import evolve

    raw = tiny_raw(
        env={
            "id": "A2DReliabilityNaN-v0",
            "kwargs": {"at": 15, "what": "obs"},
            "max_episode_steps": 200,
        },
        search={"pop": 8, "gens": 3, "episodes": 1, "max_episode_steps": 50},
    )
    run = RunFolder(tmp_path / "run")
    _plant_supernet_and_teacher(raw, run.root)
    with pytest.raises(EnvError, match="non-finite"):
        evolve(config_from_dict(raw), run, progress=False)
    assert not (run.search / "state.npz").exists() and not (run.search / "front.json").exists()


def test_search_refuses_a_teacher_of_another_env(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from a2d_evo.nets.agent import Agent
    from a2d_evo.nets.agent_folder import save_agent
    from a2d_evo.nets.space import MLPArch

    raw = tiny_raw(search={"pop": 8, "gens": 3, "episodes": 1})
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    run = RunFolder(tmp_path / "run")
    _plant_supernet_and_teacher(raw, run.root)
    acrobot = Agent(MLPArch((16,)), (6,), 3, {"id": "Acrobot-v1"})
    save_agent(acrobot, run.teacher_agent, onnx=False)  # replaces the CartPole teacher
    assert main(["evolve", "--config", str(cfg), "--out", str(run.root)]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "the teacher" in err and "(6,) and 3 actions" in err and err.count("\n") == 1
    assert not run.search.exists()  # refused before the stage folder was touched


@pytest.mark.parametrize(
    ("version", "says"),
    [(FRONT_FORMAT_VERSION + 1, "newer than"), (0, "older than")],
    ids=["newer", "older"],
)
def test_a_front_file_of_another_format_version_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], version: int, says: str
) -> None:
    cfg = config_from_dict(tiny_raw())
    run = RunFolder(tmp_path / "run")
    run.bind(cfg)
    write_json(run.search / "front.json", {"format_version": version, "front": []})
    for command in ("export", "report"):
        assert main([command, str(run.root)]) == EXIT_USER_ERROR
        err = capsys.readouterr().err
        want = f"format_version {version}, {says} this a2d-evo reads ({FRONT_FORMAT_VERSION})"
        assert want in err, err


def test_a_signal_after_the_last_update_s_vote_is_honoured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SIGTERM that lands during the final checkpoint, after the loop read the stop flag,
    was swallowed: the teacher went on to its evaluation (and a demo to its next stage).
    It now stops the command once the loop ends; --resume finishes the stage."""
    import a2d_evo.train.loop as loop
    from a2d_evo.train.interrupts import TrainingInterrupted
    from a2d_evo.train.teacher import train_teacher

    real = loop.save_checkpoint

    def save_then_signal(path: Path, stage: str, *args: Any, **kwargs: Any) -> None:
        real(path, stage, *args, **kwargs)
        if args[3] == 2:  # the last update's checkpoint (2 updates of 2 envs x 16 steps)
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(loop, "save_checkpoint", save_then_signal)
    cfg = config_from_dict(tiny_raw(teacher={"total_steps": 64, "checkpoint_every": 1}))
    run = RunFolder(tmp_path / "run")
    with pytest.raises(TrainingInterrupted, match=r"\(SIGTERM\) after its last update 2/2"):
        train_teacher(cfg, run, progress=False)
    assert torch_load(run.teacher / "checkpoint.pt")["update"] == 2
    assert not run.teacher_agent.exists()
    monkeypatch.setattr(loop, "save_checkpoint", real)
    # --resume trains nothing more and goes on to the evaluation (where two updates of
    # CartPole are refused as no better than random: the stage ran to its end)
    with pytest.raises(TrainingError, match="does not beat the uniform-random policy"):
        train_teacher(cfg, run, resume=True, progress=False)
    assert torch_load(run.teacher / "checkpoint.pt")["update"] == 2


def test_a_supernet_distilled_from_an_outside_teacher_needs_that_teacher_in_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`train-supernet --teacher X` records X's digest; `evolve` then refuses a run whose
    `teacher/agent` is missing or holds another teacher (it used to be told to train one, and
    then normalised, and export distilled, against a teacher the supernet never saw), each
    time naming shell commands that fix it: run as given, they do, from another working
    folder than the one `train-supernet` was given a relative X in (X was recorded as given,
    so `cp -r X ...` copied nothing from elsewhere)."""
    from conftest import balance_cartpole

    from a2d_evo.nets.agent import Agent
    from a2d_evo.nets.agent_folder import save_agent
    from a2d_evo.nets.space import MLPArch

    def teacher(width: int, folder: Path) -> Path:
        agent = balance_cartpole(Agent(MLPArch((width,)), (4,), 2, {"id": "CartPole-v1"}))
        return save_agent(agent, folder, onnx=False)

    def advised(err: str) -> str:
        commands = re.findall(r"`([^`]*cp -r[^`]*)`", err)
        assert len(commands) == 1, err
        return commands[0]

    outside = teacher(8, tmp_path / "outside")
    search = {"pop": 4, "gens": 1, "episodes": 1, "final_episodes": 2, "max_episode_steps": 100}
    cfg = write_config(tmp_path / "c.yaml", search=search)
    run = tmp_path / "run"
    common = ["--config", str(cfg), "--out", str(run), "--quiet"]
    monkeypatch.chdir(tmp_path)
    assert main(["train-supernet", *common, "--teacher", "outside"]) == 0  # relative
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    summary = read_json(run / "supernet" / "summary.json")
    assert summary["teacher_sha256"] == files.file_digest(outside / "policy.pt")
    assert not (run / "teacher").exists()
    capsys.readouterr()
    assert main(["evolve", *common]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert f"distilled from {outside}" in err and "holds no teacher" in err, err
    subprocess.run(["sh", "-c", advised(err)], check=True)  # mkdir -p, then cp -r
    assert (run / "teacher" / "agent" / "policy.pt").read_bytes() == (
        outside / "policy.pt"
    ).read_bytes()
    shutil.rmtree(run / "teacher" / "agent")
    teacher(16, run / "teacher" / "agent")  # another one, as train-teacher would leave
    assert main(["evolve", *common]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "holds another one" in err, err
    assert not (run / "search" / "front.json").exists()
    subprocess.run(["sh", "-c", advised(err)], check=True)  # rm -r, then cp -r
    assert main(["evolve", *common]) == 0
    assert (run / "search" / "front.json").is_file()


def test_evolve_refuses_a_run_whose_teacher_was_rewritten_after_the_supernet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A supernet distilled from the run's own teacher, which a later import or retraining
    replaced: evolve names that (it searched against the new teacher)."""
    from conftest import balance_cartpole

    from a2d_evo.nets.agent import Agent
    from a2d_evo.nets.agent_folder import save_agent
    from a2d_evo.nets.space import MLPArch

    raw = tiny_raw(search={"pop": 4, "gens": 1, "episodes": 1, "max_episode_steps": 100})
    run = RunFolder(tmp_path / "run")
    _plant_supernet_and_teacher(raw, run.root)
    run.bind(config_from_dict(raw))
    write_json(run.supernet / "summary.json", {
        "format_version": 1, "teacher": str(run.teacher_agent),
        "teacher_sha256": files.file_digest(run.teacher_agent / "policy.pt"),
    })  # fmt: skip
    run.check_supernet_teacher("evolve")  # the same teacher: nothing to say
    agent = balance_cartpole(Agent(MLPArch((8,)), (4,), 2, {"id": "CartPole-v1"}))
    save_agent(agent, run.teacher_agent, onnx=False)
    with pytest.raises(RunFolderError, match="which holds another one now .* restore that"):
        run.check_supernet_teacher("evolve")
    shutil.rmtree(run.teacher_agent)  # removed: named as the run's own, not "copy it there"
    with pytest.raises(RunFolderError, match="which holds no teacher now") as exc:
        run.check_supernet_teacher("evolve")
    assert "cp -r" not in str(exc.value)
    # recorded as the run's own where the path was valid: a relative path from another
    # working folder still counts as the run's own
    write_json(run.supernet / "summary.json", {
        "format_version": 1, "teacher": "elsewhere/teacher/agent", "teacher_own": True,
        "teacher_sha256": "0" * 64,
    })  # fmt: skip
    with pytest.raises(RunFolderError, match="distilled from the teacher in"):
        run.check_supernet_teacher("evolve")


def test_a_stop_flag_leaves_to_the_host_the_signals_it_could_not_put_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``getsignal`` gives None for a handler installed outside Python; restoring it would
    raise TypeError over whatever the block raised, so the flag installs nothing then. With
    Python handlers, the old ones come back."""

    from a2d_evo.train import interrupts

    before = signal.getsignal(signal.SIGINT)
    flag = interrupts.StopFlag()
    with flag.installed():
        assert signal.getsignal(signal.SIGINT) is not before
    assert signal.getsignal(signal.SIGINT) is before
    set_to: list[int] = []
    monkeypatch.setattr(signal, "getsignal", lambda s: None)
    monkeypatch.setattr(signal, "signal", lambda s, h: set_to.append(s))
    with pytest.raises(ValueError, match="the block's own error"), flag.installed():
        raise ValueError("the block's own error")
    assert set_to == []


def test_a_checkpoint_s_optimiser_state_is_checked_and_its_settings_are_the_run_s(
    tmp_path: Path,
) -> None:
    """The optimiser's state is copied by load_state_dict: a stride-0 view of one stored
    value became a tensor of any size, nested shared lists took exponential time; and the
    file's eps, betas or maximize were taken (they can stop the learning without a word)."""
    from a2d_evo.train.checkpoint import load_checkpoint

    path, model, optimizer, streams = adam_checkpoint(tmp_path)
    good = torch.load(path, weights_only=True)
    nested: list[Any] = [1.0]
    for _ in range(40):
        nested = [nested, nested]
    state = good["optimizer"]["state"]
    for bad, why in (
        ({0: {**state[0], "exp_avg": torch.zeros(1).expand(3, 4)}}, "is not a dense tensor"),
        ({0: {**state[0], "exp_avg": torch.zeros(5, 5)}}, "another parameter's shape"),
        ({0: {**state[0], "x": nested}}, "is not a tensor"),
        ({0: {**state[0], "exp_avg": torch.full((3, 4), float("nan"))}}, "NaN or infinite"),
        ({7: state[0]}, "names no parameter of this run"),
    ):
        torch.save({**good, "optimizer": {**good["optimizer"], "state": bad}}, path)
        with pytest.raises(FormatError, match=why):
            load_checkpoint(path, "teacher", model, optimizer, streams)
    groups = [{**g, "eps": 1e30, "maximize": True} for g in good["optimizer"]["param_groups"]]
    torch.save({**good, "optimizer": {**good["optimizer"], "param_groups": groups}}, path)
    load_checkpoint(path, "teacher", model, optimizer, streams)
    assert [(g["eps"], g["maximize"]) for g in optimizer.param_groups] == [(1e-5, False)]
    assert torch.equal(optimizer.state[model.weight]["exp_avg"], state[0]["exp_avg"])


@pytest.mark.parametrize("sigma", [1e300, 0.0, "x", float("nan"), True])
def test_a_checkpoint_s_sigma_is_a_value_scale(sigma: Any) -> None:
    """As sigma_from_rms makes them: 1e300 would silence the critic terms, a string was a
    traceback outside the checkpoint's checks."""
    from a2d_evo.train.learners import AgentLearner

    learner = AgentLearner.__new__(AgentLearner)
    learner.sigma = None
    with pytest.raises(FormatError, match="sigma"):
        learner.load_state({"sigma": sigma})
    learner.load_state({"sigma": 12.5})
    assert learner.sigma == 12.5


def test_a_json_file_past_its_size_limit_is_refused_unread(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A received run folder's metrics.json can be sparse and claim 2 GB: refused from its
    size, not read whole (a 200 MB one grew the process by 400 MB before it failed as not
    JSON); an arch.json is held to 1 MiB wherever it is read (eval's own config too)."""
    import json
    import resource

    from a2d_evo.runs.files import MAX_ARCH_JSON_BYTES, MAX_JSON_BYTES, read_json

    big = tmp_path / "metrics.json"
    with open(big, "wb") as f:
        f.truncate(2 << 30)  # sparse: nothing on disk
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(FormatError, match=r"holds 2,147,483,648 bytes, more than the"):
        read_json(big, "metrics")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KiB
    fits = tmp_path / "fits.json"
    fits.write_text('{"a": "' + "x" * 100 + '"}')
    assert read_json(fits, "x", max_bytes=120)["a"] == "x" * 100
    with pytest.raises(FormatError, match="more than the 100 read"):
        read_json(fits, "x", max_bytes=100)
    assert MAX_ARCH_JSON_BYTES < MAX_JSON_BYTES
    agent = tmp_path / "agent"
    agent.mkdir()
    pad = {"env": {"id": "CartPole-v1"}, "pad": "x" * (2 << 20)}
    (agent / "arch.json").write_text(json.dumps(pad))
    capsys.readouterr()
    assert main(["eval", str(agent), "--episodes", "1"]) == EXIT_USER_ERROR
    assert f"more than the {MAX_ARCH_JSON_BYTES:,} read" in capsys.readouterr().err


def test_a_yaml_file_past_its_size_limit_is_refused_unread(tmp_path: Path) -> None:
    """A config, a run's config.yaml and config_history.yaml were read whole (a sparse 64 GB
    one took the machine's memory; found by review): each is refused from its size, and a
    file that never ends (size 0, endless reads) after MAX_YAML_BYTES + 1 bytes."""
    import resource

    from a2d_evo.config import load_config
    from a2d_evo.formats import MAX_YAML_BYTES, read_capped
    from a2d_evo.runs.stage_budget import read_config_history

    big = tmp_path / "big.yaml"
    with open(big, "wb") as f:
        f.truncate(2 << 30)  # sparse: nothing on disk
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ConfigError, match=r"holds 2,147,483,648 bytes, more than the 4,194,304"):
        load_config(big)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KiB
    run = RunFolder(tmp_path / "run")
    run.root.mkdir()
    (run.root / "config.yaml").symlink_to(big)
    with pytest.raises(RunFolderError, match="more than the 4,194,304"):
        run.load_config()
    (tmp_path / "stage").mkdir()
    (tmp_path / "stage" / "config_history.yaml").symlink_to(big)
    with pytest.raises(FormatError, match="more than the 4,194,304"):
        read_config_history(tmp_path / "stage")
    endless = Path("/dev/zero")  # a character device: not a file, refused as not found
    with pytest.raises(FormatError, match="not found"):
        read_capped(endless, "config", MAX_YAML_BYTES)
    # a regular file whose size says 0 while it reads on (/proc/self/pagemap): cut after
    # MAX_YAML_BYTES + 1 bytes, then refused
    grows = tmp_path / "grows.yaml"
    grows.write_bytes(b"#" * (MAX_YAML_BYTES + 4096))
    import a2d_evo.formats as formats

    real_fstat = os.fstat

    def size_zero(fd: int) -> os.stat_result:
        st = real_fstat(fd)
        return os.stat_result((*st[:6], 0, *st[7:]))

    with pytest.MonkeyPatch.context() as m:
        m.setattr(formats.os, "fstat", size_zero)
        with pytest.raises(FormatError, match=r"holds 4,194,305 bytes, more than the 4,194,304"):
            read_capped(grows, "config", MAX_YAML_BYTES)


def test_a_symlink_loop_in_a_run_folder_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    """``Path.resolve`` raises RuntimeError on a loop (3.11); readers and writers catch
    RunFolderError only, so a planted ``agents -> agents`` was a traceback."""
    run = RunFolder(tmp_path / "run")
    run.root.mkdir()
    (run.root / "agents").symlink_to("agents")
    with pytest.raises(RunFolderError, match="cannot be followed"):
        run.inside(run.agents / "front_00", "exported agents")


def test_front_files_hold_no_more_entries_than_a_search_delivers(
    finished: Path, tmp_path: Path
) -> None:
    """A planted front of 200,000 copies of one entry made export fine-tune each one and the
    report's dominance sort take an hour; an entry's episodes past 10**9 overflowed the
    interval's float arithmetic (a traceback)."""
    import json
    import shutil

    from a2d_evo.config import MAX_POP
    from a2d_evo.report.front_file import load_front

    root = tmp_path / "run"
    shutil.copytree(finished, root)
    path = root / "search" / "front.json"
    data = json.loads(path.read_text())
    run = RunFolder(root)
    for edit, why in (
        (lambda d: d["front"].extend([d["front"][0]] * MAX_POP), "front entries, more than"),
        (lambda d: d["front"][0].update(episodes=10**400), "episodes must be an int from 0"),
    ):
        planted = json.loads(json.dumps(data))
        edit(planted)
        path.write_text(json.dumps(planted))
        with pytest.raises(FormatError, match=why):
            load_front(run)


def test_a_search_state_may_grow_with_its_generations(
    finished: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """state.json holds every episode the search played, so its read limit grows with the
    generations state.npz records: a long search's own state is never refused as too large
    (a flat 256 MiB would have refused pop 512 after about 385 generations)."""
    from a2d_evo.search import saved_state

    folder = finished / "search"
    size = (folder / "state.json").stat().st_size
    monkeypatch.setattr(saved_state, "MAX_JSON_BYTES", size // 4)  # the files' own limit, shrunk
    monkeypatch.setattr(saved_state, "STATE_BYTES_PER_GENERATION", size)  # one generation's room
    assert saved_state.load_state(folder) is not None
    monkeypatch.setattr(saved_state, "STATE_BYTES_PER_GENERATION", size // 8)  # too little
    with pytest.raises(FormatError, match="search state .* holds .* bytes, more than"):
        saved_state.load_state(folder)
