"""The eval command's interval, checked by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pytest
import yaml

from a2d_evo.cli import main
from a2d_evo.config import config_from_dict
from a2d_evo.errors import EnvError
from a2d_evo.evaluation.scoring import eval_agent_folder
from a2d_evo.nets.agent import Agent
from a2d_evo.nets.agent_folder import save_agent
from a2d_evo.nets.space import MLPArch
from a2d_evo.stats import Z95, interval95


def test_z95_is_the_975_normal_quantile() -> None:
    # computed independently of the constant: the standard normal's inverse CDF at 0.975
    assert math.isclose(Z95, NormalDist().inv_cdf(0.975), rel_tol=1e-12)


def test_interval95_by_hand() -> None:
    # returns 10, 12, 14, 16: mean 13; squared deviations 9 + 1 + 1 + 9 = 20;
    # sample std sqrt(20 / 3) = 2.5820; standard error 2.5820 / sqrt(4) = 1.2910;
    # half-width t(0.975, 3 dof) = 3.182446 times 1.2910 = 4.1085 -> (8.8915, 17.1085)
    lo, hi = interval95(np.array([10.0, 12.0, 14.0, 16.0]))
    assert lo == pytest.approx(8.8915, abs=1e-4)
    assert hi == pytest.approx(17.1085, abs=1e-4)


def test_a_single_episode_has_no_interval(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One episode bounds nothing: no interval (eval.json null, the line says so), where a
    zero-width one ("+- 0.00 ... [259.21, 259.21]") claimed certainty."""
    assert interval95(np.array([3.5])) is None
    agent = Agent(MLPArch((8,)), (4,), 2, {"id": "CartPole-v1"})
    folder = save_agent(agent, tmp_path / "agent", onnx=False)
    assert main(["eval", str(folder), "--episodes", "1"]) == 0
    out = capsys.readouterr().out
    assert "no 95% interval from one episode" in out and "+-" not in out, out
    assert " over 1 episode (seed " in out, out
    assert json.loads((folder / "eval.json").read_text())["return_ci95"] is None
    assert main(["eval", str(folder), "--episodes", "3"]) == 0
    out = capsys.readouterr().out  # the one-episode eval.json it replaces is named
    assert "(sample std), 95% interval [" in out
    assert out.rstrip().endswith("eval.json (replacing an earlier one of 1 episode)"), out
    assert len(json.loads((folder / "eval.json").read_text())["return_ci95"]) == 2


def test_eval_refuses_an_agent_of_another_env(tmp_path: Path) -> None:
    cartpole = config_from_dict({"env": {"id": "CartPole-v1"}})
    acrobot_agent = Agent(MLPArch((8,)), (6,), 3, {"id": "Acrobot-v1"})
    folder = save_agent(acrobot_agent, tmp_path / "acrobot", onnx=False)
    with pytest.raises(EnvError, match="made for 'Acrobot-v1', not for 'CartPole-v1'"):
        eval_agent_folder(folder, cartpole, episodes=2)
    # no env id recorded: the observation and action sizes still have to fit
    anonymous = save_agent(Agent(MLPArch((8,)), (6,), 3), tmp_path / "anon", onnx=False)
    with pytest.raises(EnvError, match=r"takes observations \(6,\) and 3 actions"):
        eval_agent_folder(anonymous, cartpole, episodes=2)
    assert not (folder / "eval.json").exists() and not (anonymous / "eval.json").exists()


def test_the_eval_command_defaults_to_the_configs_episodes_and_mode(tmp_path: Path) -> None:
    """``a2d-evo eval`` plays ``eval.episodes`` in ``eval.mode`` unless its flags say
    otherwise (it used to play 30 greedy episodes whatever the config said)."""
    import json

    from a2d_evo.cli import main

    agent = Agent(MLPArch((8,)), (4,), 2, {"id": "CartPole-v1"})
    folder = save_agent(agent, tmp_path / "agent", onnx=False)
    runs = {
        "config": ["--set", "eval.episodes=3", "--set", "eval.mode=sample"],
        "flags": ["--set", "eval.episodes=3", "--episodes", "2"],
        "default": [],
    }
    seen = {}
    for name, extra in runs.items():
        assert main(["eval", str(folder), "--quiet", *extra]) == 0
        report = json.loads((folder / "eval.json").read_text())
        seen[name] = (report["episodes"], report["eval_mode"])
    assert seen == {"config": (3, "sample"), "flags": (2, "greedy"), "default": (30, "greedy")}


def test_eval_plays_on_the_device_asked_and_prints_the_sample_std(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``eval --device`` is honoured: ``cuda`` without a GPU is refused (it used to play on
    the CPU and exit 0), ``cpu`` is named in the summary. The printed spread is the sample
    standard deviation the interval uses, not eval.json's population one."""
    import json

    import torch

    from a2d_evo.cli import main

    agent = Agent(MLPArch((8,)), (4,), 2, {"id": "CartPole-v1"})
    folder = save_agent(agent, tmp_path / "agent", onnx=False)
    if not torch.cuda.is_available():
        assert main(["eval", str(folder), "--quiet", "--episodes", "2", "--device", "cuda"]) == 2
        assert "no CUDA device" in capsys.readouterr().err
        assert not (folder / "eval.json").exists()
    assert main(["eval", str(folder), "--quiet", "--episodes", "4", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    report = json.loads((folder / "eval.json").read_text())
    returns = np.array(report["returns"])
    assert report["return_std"] == pytest.approx(returns.std())  # population, as metrics.json
    assert f"+- {returns.std(ddof=1):.2f} (sample std)" in out, out
    assert " on cpu over 4 episodes" in out, out


def test_ale_settings_are_refused_for_other_envs_and_not_recorded_by_eval(tmp_path: Path) -> None:
    """env.sticky_actions, env.frame_skip ... are read by the ALE pipeline alone: on any other
    id a changed one is refused at load (MinAtar kept its own 0.1 sticky actions while the run
    recorded 0), and eval.json records only the settings its env plays."""
    import json

    from a2d_evo.errors import ConfigError

    for key, value in (("sticky_actions", 0.0), ("frame_skip", 2), ("stack", 2)):
        with pytest.raises(ConfigError, match=f"env.{key} applies to Atari ids"):
            config_from_dict({"env": {"id": "CartPole-v1", key: value}})
    # at its default value too, when a user's config or --set names it: ignored just as
    # silently; a run's own config.yaml (format_version) lists every key and is read as before
    from a2d_evo.config import load_config
    from a2d_evo.config.env import EnvConfig

    user = tmp_path / "user.yaml"
    user.write_text("env:\n  id: CartPole-v1\n  sticky_actions: 0.25\n  noop_max: 30\n")
    with pytest.raises(ConfigError, match=r"user\.yaml: env\.sticky_actions, env\.noop_max apply"):
        load_config(user)
    stored = tmp_path / "stored.yaml"
    keys = "".join(f"  {k}: {getattr(EnvConfig('x'), k)}\n" for k in EnvConfig.ATARI_KEYS)
    stored.write_text(f"format_version: 1\nenv:\n  id: CartPole-v1\n{keys}".lower())
    assert load_config(stored).env.sticky_actions == 0.25
    with pytest.raises(ConfigError, match=r"override 'env.frame_skip=4': env.frame_skip applies"):
        load_config(stored, ["env.frame_skip=4"])
    assert load_config(stored, ["env.max_episode_steps=100"]).env.max_episode_steps == 100
    # a run's file copied without its format_version: an env section listing every field is
    # a record too (a2d-evo writes them all); the CLI passes recorded=True inside a run folder
    from a2d_evo.config import config_to_dict, dump_config

    copied = tmp_path / "copied.yaml"
    raw = yaml.safe_load(dump_config(config_from_dict({"env": {"id": "CartPole-v1"}})))
    del raw["format_version"]
    copied.write_text(yaml.safe_dump(raw))
    assert config_to_dict(load_config(copied).env)["sticky_actions"] == 0.25
    del raw["env"]["image_layout"]  # a run's file from before the key (EnvConfig.LATER_FIELDS)
    copied.write_text(yaml.safe_dump(raw))
    assert load_config(copied).env.image_layout == "auto"
    one = tmp_path / "one.yaml"
    one.write_text("env:\n  id: CartPole-v1\n  sticky_actions: 0.25\n")
    with pytest.raises(ConfigError, match="env.sticky_actions applies"):
        load_config(one)
    assert load_config(user, recorded=True).env.sticky_actions == 0.25
    agent = Agent(MLPArch((8,)), (4,), 2, {"id": "CartPole-v1"})
    folder = save_agent(agent, tmp_path / "agent", onnx=False)
    eval_agent_folder(folder, config_from_dict({"env": {"id": "CartPole-v1"}}), episodes=2)
    played = json.loads((folder / "eval.json").read_text())["env"]
    assert played["id"] == "CartPole-v1" and "sticky_actions" not in played
    assert "frame_skip" not in played and "stack" not in played


def test_eval_episode_seeds_stay_32_bit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``eval --seed`` is a run seed's bound (2**32 - 1), but its episodes count up from it:
    one past the bound was a raw traceback from MinAtar's ``RandomState`` (gymnasium took it),
    now a one-line error naming --seed, before the agent is loaded. Every vector env refuses
    such seeds too, whatever the env."""
    from a2d_evo.config.bounds import MAX_SEED
    from a2d_evo.envs import seed_list

    agent = Agent(MLPArch((8,)), (4,), 2, {"id": "CartPole-v1"})
    folder = save_agent(agent, tmp_path / "agent", onnx=False)
    argv = ["eval", str(folder), "--episodes", "3", "--quiet", "--seed"]
    assert main([*argv, str(MAX_SEED - 1)]) == 2
    err = capsys.readouterr().err
    assert f"--seed {MAX_SEED - 1} with 3 episodes" in err and f"--seed {MAX_SEED - 2} or" in err
    assert len(err.strip().splitlines()) == 1 and not (folder / "eval.json").exists()
    assert main([*argv, str(MAX_SEED - 2)]) == 0  # the last episode on the bound itself
    assert json.loads((folder / "eval.json").read_text())["seeds"][-1] == MAX_SEED
    assert seed_list(MAX_SEED - 1, 2) == [MAX_SEED - 1, MAX_SEED]
    for bad in (MAX_SEED, [0, MAX_SEED + 1]):
        with pytest.raises(EnvError, match=r"seeds must be in \[0, 2\*\*32 - 1\]"):
            seed_list(bad, 2)
    # integers only: int() played seed 1 for 1.9 and took True for 1 (found by review); numpy
    # integers and integer arrays as before
    assert seed_list(np.int64(3), 2) == [3, 4] == seed_list(np.array([3, 4]), 2)
    assert seed_list(np.array(3), 2) == [3, 4]
    for bad in (1.9, True, [1.9, 2], [True, 2], np.array([1.5, 2.0]), np.float64(2.0)):
        with pytest.raises(EnvError, match=r"must be (an integer|integers)"):
            seed_list(bad, 2)


def test_an_agent_folder_that_cannot_be_written_is_scored_all_the_same(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Agents received on a read-only mount: `eval` prints the score and says no eval.json
    was written (it refused to score at all: "... is not writable"). The folder is made
    read-only for this process by ``os.access``, as a read-only mount makes it even for root."""
    import os

    agent = Agent(MLPArch((8,)), (4,), 2, {"id": "CartPole-v1"})
    folder = save_agent(agent, tmp_path / "agent", onnx=False)
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: mode != os.W_OK and real_access(p, mode)
    )  # fmt: skip
    assert main(["eval", str(folder), "--episodes", "2"]) == 0
    out = capsys.readouterr().out
    assert " over 2 episodes (seeds " in out and ": return " in out, out
    assert out.rstrip().endswith(f"no eval.json written: {folder} is not writable"), out
    assert sorted(p.name for p in folder.iterdir()) == ["arch.json", "policy.pt"]  # no .lock
