"""Crash and resume: ``train-supernet`` and ``evolve`` killed with SIGKILL at random moments.

Each run is a real ``python -m a2d_evo`` process, killed without warning several times
(during start-up, and after it has written progress), then continued the way a user would:
``--resume`` when the stage folder holds a run, a plain start otherwise. The supernet run
must complete (every update, every env step; its weights differ from an uninterrupted run's,
since the envs restart at each resume, issue [J]), and the search must equal an uninterrupted
one with the same seed: the same ``front.json`` (``latency_ms`` aside, a wall-clock
measurement).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from a2d_evo.config import Config, config_from_dict
from a2d_evo.runs.files import torch_load, torch_save
from a2d_evo.runs.folder import RunFolder

pytestmark = pytest.mark.slow

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
ENV.pop("A2D_EVO_REFERENCE_OPS", None)
KILLS = 3
UPDATES = 40


def tiny(**sections: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "seed": 11,
        "torch_threads": 1,
        "env": {"id": "CartPole-v1"},
        "space": {"kind": "mlp", "depths": [1, 2], "widths": [4, 8, 16]},
        "ppo": {"num_envs": 2, "num_steps": 16, "num_minibatches": 2, "update_epochs": 1},
        "teacher": {
            "arch": {"kind": "mlp", "widths": [16]},
            "eval_episodes": 2,
            "checkpoint_every": 2,
        },
        "supernet": {
            "total_steps": 32 * UPDATES,
            "rollout_subnets": 2,
            "checkpoint_every": 2,
        },
        "eval": {"num_envs": 2, "episodes": 2, "random_episodes": 2},
    }
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    return raw


def write_config(path: Path, raw: dict[str, Any]) -> Config:
    path.write_text(yaml.safe_dump(raw))
    return config_from_dict(raw)


def plant_teacher_and_supernet(cfg: Config, root: Path, supernet: bool) -> None:
    """A random-init teacher (and supernet): the crash handling does not need trained ones."""
    from a2d_evo.nets.agent_folder import extract, save_agent
    from a2d_evo.nets.space import arch_from_dict
    from a2d_evo.nets.supernet import build_supernet

    run = RunFolder(root)
    torch.manual_seed(cfg.seed)
    net = build_supernet(cfg)
    assert cfg.teacher.arch is not None
    teacher = extract(net, arch_from_dict(cfg.teacher.arch), {"id": cfg.env.id})
    save_agent(teacher, run.teacher_agent, onnx=False)
    if supernet:
        torch_save(
            run.supernet_weights, {k: v.detach().clone() for k, v in net.state_dict().items()}
        )


def cli(command: str, cfg: Path, out: Path, resume: bool) -> list[str]:
    cmd = [sys.executable, "-m", "a2d_evo", command, "--config", str(cfg), "--out", str(out)]
    return [*cmd, "--quiet", *(["--resume"] if resume else [])]


def mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return -1


def kill_and_resume(
    command: str,
    cfg: Path,
    out: Path,
    stage: Path,
    progress_file: Path,
    rng: np.random.Generator,
) -> list[str]:
    """Kill ``command`` KILLS times at random moments, then let it finish; returns a log."""
    log = []
    for k in range(KILLS):
        resume = (stage / "config.yaml").is_file()
        proc = subprocess.Popen(
            cli(command, cfg, out, resume),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=ENV,
        )
        if k == 0:  # somewhere in start-up: imports, config, stage folder, first checkpoint
            time.sleep(float(rng.uniform(0.2, 2.0)))
        else:  # after it has made some progress of its own
            before = mtime(progress_file)
            deadline = time.monotonic() + 120
            while mtime(progress_file) == before and proc.poll() is None:
                assert time.monotonic() < deadline, "no progress"
                time.sleep(0.02)
            time.sleep(float(rng.uniform(0.0, 0.4)))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
        log.append(f"run {k} ({'resume' if resume else 'fresh'}): rc {proc.returncode}")
        assert proc.returncode in (0, -signal.SIGKILL), err.decode()
        if proc.returncode == 0:
            break
    resume = (stage / "config.yaml").is_file()
    done = subprocess.run(cli(command, cfg, out, resume), capture_output=True, env=ENV, timeout=300)
    log.append(f"last run ({'resume' if resume else 'fresh'}): rc {done.returncode}")
    assert done.returncode == 0, f"{log}\n{done.stderr.decode()}"
    print("\n".join(log))
    assert sum("rc -9" in line for line in log) >= 2, log  # the kills did land
    return log


def _no_onnx(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("a2d_evo.nets.agent_folder.onnx_available", lambda: False)


def test_train_supernet_survives_sigkills_and_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed with SIGKILL at random moments, ``--resume`` each time: the stage completes.

    Envs restart at each resume (their state cannot be saved), so the weights are not those of
    an uninterrupted run; ``test_checkpoint.py`` shows the checkpoint restores everything else.
    """
    from a2d_evo.nets.supernet import build_supernet

    _no_onnx(monkeypatch)
    raw = tiny()
    cfg = write_config(tmp_path / "c.yaml", raw)
    killed = RunFolder(tmp_path / "killed")
    plant_teacher_and_supernet(cfg, killed.root, supernet=False)
    want = build_supernet(cfg).state_dict()

    log = kill_and_resume(
        "train-supernet",
        tmp_path / "c.yaml",
        killed.root,
        killed.supernet,
        killed.supernet / "checkpoint.pt",
        np.random.default_rng(2026),
    )
    got = torch.load(killed.supernet_weights, weights_only=True)
    assert got.keys() == want.keys()
    for k in want:
        assert got[k].shape == want[k].shape and torch.isfinite(got[k]).all(), (k, log)
    assert torch_load(killed.supernet / "checkpoint.pt")["update"] == UPDATES
    summary = json.loads((killed.supernet / "summary.json").read_text())
    assert summary["env_steps"] == 32 * UPDATES


def _front(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    for entry in data["front"]:
        entry.pop("latency_ms")  # wall-clock
    return data


def test_evolve_survives_sigkills_with_the_same_front(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from a2d_evo.search.evolution import evolve

    _no_onnx(monkeypatch)
    raw = tiny(
        space={"depths": [1, 2, 3], "widths": [4, 8, 12, 16, 24, 32]},
        search={"pop": 8, "gens": 20, "episodes": 1, "final_episodes": 2, "max_episode_steps": 30},
    )
    cfg = write_config(tmp_path / "c.yaml", raw)
    ref, killed = RunFolder(tmp_path / "ref"), RunFolder(tmp_path / "killed")
    for run in (ref, killed):
        plant_teacher_and_supernet(cfg, run.root, supernet=True)
    want = _front(evolve(cfg, ref, progress=False))

    log = kill_and_resume(
        "evolve",
        tmp_path / "c.yaml",
        killed.root,
        killed.search,
        killed.search / "state.npz",
        np.random.default_rng(2026),
    )
    assert _front(killed.search / "front.json") == want, log
    for name in ("history.csv", "hypervolume.csv"):
        assert (killed.search / name).read_text() == (ref.search / name).read_text(), name
