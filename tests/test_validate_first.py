"""Validate, then write: a refused first command leaves nothing behind that blocks the
corrected one (issue [M] item 3). Each case: the refused command exits 2 with one line and
leaves no run folder at all; the corrected command then succeeds on the same ``--out``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from a2d_evo.cli import EXIT_USER_ERROR, main
from a2d_evo.config import load_config
from a2d_evo.nets.agent_folder import load_agent

REPO = Path(__file__).resolve().parents[1]
CARTPOLE = str(REPO / "configs" / "cartpole.yaml")
ACROBOT = str(REPO / "configs" / "acrobot.yaml")
TINY = ["--set", "ppo.num_envs=2", "--set", "teacher.eval_episodes=3", "--quiet"]
TEACHER = [*TINY, "--set", "teacher.total_steps=128"]
SUPERNET = [*TINY, "--set", "supernet.total_steps=128", "--set", "supernet.rollout_subnets=2"]


class _Empty(gym.Env):  # type: ignore[misc]
    """An env whose observations hold no values (a user's env built with n_bits=0, say)."""

    observation_space = gym.spaces.Box(0.0, 1.0, (0,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):  # type: ignore[no-untyped-def]
        super().reset(seed=seed)
        return np.zeros(0, np.float32), {}

    def step(self, action):  # type: ignore[no-untyped-def]
        return np.zeros(0, np.float32), 0.0, True, False, {}


if "A2DTestEmpty-v0" not in gym.registry:
    gym.register("A2DTestEmpty-v0", entry_point=_Empty, max_episode_steps=10)


def _refused(argv: list[str], out: Path, capsys: pytest.CaptureFixture[str], says: str) -> None:
    capsys.readouterr()  # what earlier commands printed (import-teacher's notes) is theirs
    assert main(argv) == EXIT_USER_ERROR
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and says in err, err
    assert not out.exists(), sorted(str(p.relative_to(out)) for p in out.rglob("*"))


def _teacher(out: Path) -> None:
    metrics = json.loads((out / "teacher" / "agent" / "metrics.json").read_text())
    assert metrics["env_id"] == load_config(out / "config.yaml").env.id


@pytest.mark.parametrize(
    ("env_id", "says"),
    [
        ("CartPol-v1", "CartPol-v1"),  # a typo
        ("Pendulum-v1", "Pendulum-v1"),  # continuous actions
        ("NoSuchEnv-v0", "NoSuchEnv-v0"),  # not registered
        ("A2DTestEmpty-v0", "holds no values"),  # observations of shape (0,): a crash before
    ],
)
def test_train_teacher_after_a_refused_env(
    env_id: str, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    argv = ["train-teacher", "--config", CARTPOLE, "--out", str(out), *TEACHER]
    _refused([*argv, "--set", f"env.id={env_id}"], out, capsys, says)
    assert main(argv) == 0
    _teacher(out)


def test_train_teacher_after_a_refused_device(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "run"
    argv = ["train-teacher", "--config", CARTPOLE, "--out", str(out), *TEACHER]
    _refused([*argv, "--device", "cuda"], out, capsys, "cuda")
    assert main([*argv, "--device", "cpu"]) == 0
    assert load_config(out / "config.yaml").device == "cpu"  # not the refused command's
    _teacher(out)


def cartpole_teacher_file(path: Path) -> Path:
    """A CleanRL ppo.py state dict (obs 4, 2 actions) that balances CartPole: it pushes
    towards where the pole falls (angle + angular velocity), well above random."""
    actor = nn.Sequential(
        nn.Linear(4, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 2)
    )
    critic = nn.Sequential(
        nn.Linear(4, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1)
    )
    with torch.no_grad():
        for layer in (*actor, *critic):
            if isinstance(layer, nn.Linear):
                layer.weight.zero_()
                layer.bias.zero_()
        actor[0].weight[0, 2:] = 10.0
        actor[2].weight[0, 0] = 3.0
        actor[4].weight[:, 0] = torch.tensor([-5.0, 5.0])
    state = {f"actor.{k}": v for k, v in actor.state_dict().items()}
    state |= {f"critic.{k}": v for k, v in critic.state_dict().items()}
    torch.save(state, path)
    return path


def test_import_teacher_after_a_refused_import(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = cartpole_teacher_file(tmp_path / "teacher.cleanrl_model")
    out = tmp_path / "run"
    # a CartPole teacher does not fit Acrobot (6 observations, 3 actions): refused
    refused = ["import-teacher", str(src), "--config", ACROBOT, "--out", str(out), *TINY]
    _refused(refused, out, capsys, "teacher")
    assert main(["import-teacher", str(src), "--config", CARTPOLE, "--out", str(out), *TINY]) == 0
    _teacher(out)


def test_train_supernet_after_a_refused_teacher(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = cartpole_teacher_file(tmp_path / "teacher.cleanrl_model")
    assert main(["import-teacher", str(src), "--config", CARTPOLE, "--out", str(tmp_path / "t"),
                 *TINY]) == 0  # fmt: skip
    teacher = tmp_path / "t" / "teacher" / "agent"
    out = tmp_path / "run"
    # the teacher is CartPole's, the config Acrobot's: refused before anything is written
    refused = ["train-supernet", "--config", ACROBOT, "--out", str(out), "--teacher", str(teacher)]
    _refused([*refused, *SUPERNET], out, capsys, str(teacher))
    argv = ["train-supernet", "--config", CARTPOLE, "--out", str(out), "--teacher", str(teacher)]
    assert main([*argv, *SUPERNET]) == 0
    assert (out / "supernet" / "weights.pt").is_file()
    assert load_config(out / "config.yaml").env.id == "CartPole-v1"
    assert load_agent(teacher).env_config["id"] == "CartPole-v1"


def test_a_refused_demo_leaves_no_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "demo"
    _refused(["demo", "--out", str(out), "--set", "env.id=CartPol-v1", "--quiet"], out, capsys,
             "CartPol-v1")  # fmt: skip
    # the corrected demo is not told that the folder "already holds a run"
    _refused(["demo", "--out", str(out), "--device", "cuda", "--quiet"], out, capsys, "cuda")


def test_a_resume_with_nothing_to_resume_leaves_no_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--resume` on a folder with nothing to resume is refused before config.yaml is written
    (it blocked the corrected command of another config); `demo --resume` on nothing is
    refused too (it started the whole demo)."""
    out = tmp_path / "run"
    for argv in (
        ["train-teacher", "--config", CARTPOLE, "--out", str(out), "--resume", *TEACHER],
        [
            "train-supernet",
            "--config",
            CARTPOLE,
            "--out",
            str(out),
            "--resume",
            *SUPERNET,
            "--set",
            "distill.alpha=0",
            "--set",
            "distill.beta=0",
        ],  # no teacher needed
        ["demo", "--out", str(out), "--resume", "--quiet"],
    ):
        _refused(argv, out, capsys, "drop --resume")
    # the corrected command starts on the same --out, and says how good the teacher came out
    assert main(["train-teacher", "--config", CARTPOLE, "--out", str(out), *TEACHER]) == 0
    _teacher(out)
    metrics = json.loads((out / "teacher" / "agent" / "metrics.json").read_text())
    assert (
        f"(greedy return {metrics['return_mean']:.2f} over 3 episodes; the uniform-random "
        f"policy: {metrics['random_return_mean']:.2f})"
    ) in capsys.readouterr().out


def test_a_demo_over_a_run_of_another_config_names_the_conflict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main(["train-teacher", "--config", CARTPOLE, "--out", str(out), *TEACHER]) == 0
    capsys.readouterr()
    assert main(["demo", "--out", str(out), "--quiet"]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "env.id" in err and "pass --resume" not in err, err


def test_a_teacher_path_that_is_no_agent_is_named_for_what_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--teacher given a run folder, or a path with no agent: the message says which, not
    "run train-teacher first" (and, for finetune, nothing about a vanilla supernet)."""
    src = cartpole_teacher_file(tmp_path / "teacher.cleanrl_model")
    run = tmp_path / "t"
    assert main(["import-teacher", str(src), "--config", CARTPOLE, "--out", str(run), *TINY]) == 0
    out = tmp_path / "run"
    argv = ["train-supernet", "--config", CARTPOLE, "--out", str(out), *SUPERNET, "--teacher"]
    _refused([*argv, str(run)], out, capsys, f"is a run folder; its teacher agent is {run}")
    _refused([*argv, str(tmp_path / "nosuch")], out, capsys, "is not an agent folder")
    capsys.readouterr()
    # an agent outside the run (the run's own teacher is refused first: it is not fine-tuned)
    agent = shutil.copytree(run / "teacher" / "agent", tmp_path / "student")
    rc = main(["finetune", str(agent), "--steps", "64", "--teacher", str(tmp_path / "nosuch")])
    err = capsys.readouterr().err
    assert rc == EXIT_USER_ERROR and "is not an agent folder" in err and "supernet" not in err
    rc = main(["finetune", str(run / "teacher" / "agent"), "--steps", "64", "--teacher",
               str(tmp_path / "nosuch")])  # fmt: skip
    assert rc == EXIT_USER_ERROR and "is the teacher of the run" in capsys.readouterr().err


def test_an_mlp_teacher_on_an_image_env_is_refused_before_the_run_binds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An MLP `teacher.arch` on MinAtar frames: refused naming teacher.arch (not space.kind,
    which is cnn already) and leaving no folder; it used to be refused after config.yaml was
    written, and the record then blocked the corrected command."""
    pytest.importorskip("minatar")  # an optional extra
    out = tmp_path / "run"
    config = str(REPO / "configs" / "minatar_breakout.yaml")
    argv = ["train-teacher", "--config", config, "--out", str(out), *TEACHER,
            "--set", "teacher.total_steps=64", "--set", "device=cpu"]  # fmt: skip
    mlp = ["--set", "teacher.arch={kind: mlp, widths: [32]}"]
    _refused([*argv, *mlp], out, capsys, "teacher.arch: mlp-32 is an MLP, and MinAtar/Breakout")
