"""a2d_evo.nets.agent: the one check that an agent fits the env it meets."""

from __future__ import annotations

from pathlib import Path

import pytest

from a2d_evo.config import EnvConfig
from a2d_evo.errors import EnvError
from a2d_evo.nets.agent import Agent, check_fits_env
from a2d_evo.nets.space import MLPArch


def test_an_agent_fits_its_own_env() -> None:
    agent = Agent(MLPArch((8,)), (4,), 2, {"id": "CartPole-v1"})
    check_fits_env(agent, EnvConfig(id="CartPole-v1"), (4,), 2, "the teacher")
    anonymous = Agent(MLPArch((8,)), (4,), 2)  # no id recorded: sizes alone decide
    check_fits_env(anonymous, EnvConfig(id="Anything-v0"), (4,), 2, "agent")


@pytest.mark.parametrize(
    ("env_id", "obs", "n_act", "message"),
    [
        (
            "CartPole-v1",
            (6,),
            2,
            r"takes observations \(4,\) and 2 actions; CartPole-v1 gives \(6,\) and 2",
        ),
        (
            "CartPole-v1",
            (4,),
            3,
            r"takes observations \(4,\) and 2 actions; CartPole-v1 gives \(4,\) and 3",
        ),
        ("Acrobot-v1", (4,), 2, r"made for 'CartPole-v1', not for 'Acrobot-v1'"),
    ],
)
def test_a_mismatch_names_the_agent_and_what_differs(
    env_id: str, obs: tuple[int, ...], n_act: int, message: str
) -> None:
    agent = Agent(MLPArch((8,)), (4,), 2, {"id": "CartPole-v1"})
    with pytest.raises(
        EnvError, match=r"^the teacher t/agent does not fit the environment: .*" + message
    ):
        check_fits_env(agent, EnvConfig(id=env_id), obs, n_act, "the teacher t/agent")


def test_an_agent_that_scales_its_inputs_otherwise_does_not_fit() -> None:
    """A teacher whose arch.json says obs_scale 1 would read 0-255 frames 255 times too large
    (shapes and ids alike): refused where the env spec's scale is given."""
    agent = Agent(MLPArch((8,)), (4,), 2, {"id": "CartPole-v1"}, obs_scale=1.0)
    env = EnvConfig(id="CartPole-v1")
    check_fits_env(agent, env, (4,), 2, "the teacher", 1.0)
    check_fits_env(agent, env, (4,), 2, "the teacher")  # no scale given: not compared
    with pytest.raises(
        EnvError, match=r"scales its inputs by 1; CartPole-v1's are scaled by 0\.00392157"
    ):
        check_fits_env(agent, env, (4,), 2, "the teacher", 1 / 255)


def test_act_takes_one_observation_or_a_batch() -> None:
    import numpy as np
    import torch

    torch.manual_seed(0)
    agent = Agent(MLPArch((8,)), (4,), 3)
    batch = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    actions = agent.act(batch)
    assert actions.shape == (5,)
    for obs, a in zip(batch, actions, strict=True):  # one observation: one action, 0-d
        single = agent.act(obs)
        assert single.shape == () and int(single) == int(a)
        t = agent.act(torch.as_tensor(obs))
        assert isinstance(t, torch.Tensor) and t.shape == () and int(t) == int(a)
    assert agent.act(torch.as_tensor(batch)).tolist() == actions.tolist()


def test_eval_refuses_an_agent_folder_whose_scale_is_not_the_env_s(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The check where an agent folder meets its env: ``a2d-evo eval`` on a CartPole agent
    whose arch.json scales the inputs by 0.5 (CartPole's are used as they are)."""
    from a2d_evo.cli import main
    from a2d_evo.nets.agent_folder import save_agent

    folder = tmp_path / "agent"
    agent = Agent(MLPArch((8,)), (4,), 2, {"id": "CartPole-v1"}, obs_scale=0.5)
    save_agent(agent, folder, onnx=False)
    assert main(["eval", str(folder), "--episodes", "1", "--quiet"]) == 2
    assert "scales its inputs by 0.5; CartPole-v1's are scaled by 1" in capsys.readouterr().err
