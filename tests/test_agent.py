"""a2d_evo.nets.agent: the one check that an agent fits the env it meets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

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


def _tiny_cnn_agent(obs_scale: float | None = None):
    from a2d_evo.nets.agent import Agent
    from a2d_evo.nets.space import CNNArch, ConvLayer

    # one 3x3 conv of 2 channels on (1, 5, 5) frames: a 3x3 map, FC of 4, 3 actions
    return Agent(CNNArch((ConvLayer(2, 3),), 4), (1, 5, 5), 3, obs_scale=obs_scale)


def test_a_scalar_box_agent_takes_a_flat_batch_of_scalars() -> None:
    """a2d_evo/nets/agent.py check_batch: an env whose observations are scalars (shape
    (1,)) gives a batch as (N,), and the agent takes it: 3 scalars, 3 rows of logits.
    Mutant let through: dropping the ``obs_shape == (1,) and obs.dim() == 1`` early return,
    which refused every batch of a scalar-Box env (ValueError)."""
    from a2d_evo.nets.agent import Agent
    from a2d_evo.nets.space import MLPArch

    torch.manual_seed(0)
    agent = Agent(MLPArch((4,)), (1,), 2)
    logits, value = agent(torch.tensor([0.5, -1.0, 2.0]))
    assert tuple(logits.shape) == (3, 2) and tuple(value.shape) == (3,)
    # row i is the agent on the (1,)-shaped observation i
    one = agent(torch.tensor([[-1.0]]))
    torch.testing.assert_close(logits[1:2], one.logits, rtol=0, atol=0)


def test_an_image_agent_refuses_float_frames() -> None:
    """a2d_evo/nets/agent.py check_batch: an image network takes uint8 frames and refuses
    floats (TypeError). Mutant let through: testing ``is_complex`` alone, which let frames
    scaled already to [0, 1] in and scaled them by 1/255 again (a policy on near-black
    frames, without an error)."""
    agent = _tiny_cnn_agent()
    frames = torch.zeros((2, 1, 5, 5), dtype=torch.uint8)
    assert tuple(agent(frames).logits.shape) == (2, 3)
    with pytest.raises(TypeError, match="takes the env's frames as uint8"):
        agent(frames.float() / 255)


def test_frames_are_divided_by_255_not_multiplied_by_its_inverse() -> None:
    """a2d_evo/nets/agent.py obs_to_float: a scale of 1/255 divides by 255, bit for bit as
    the ALE networks before [K] and the CleanRL / SB3 networks import-teacher maps. Mutant
    let through: ``x * scale`` always, one float32 ulp off on 126 of the 256 grey levels."""
    from a2d_evo.nets.agent import obs_to_float

    # float32(3) / 255 rounds to 0.0117647061124444 (3/255 = 0.011764705882...);
    # 3 * float32(1/255) = 3 * 0.003921568859368563 rounds to 0.011764707043766975
    got = obs_to_float(torch.tensor([3], dtype=torch.uint8), 1 / 255)
    assert got.item() == 0.0117647061124444
    assert (torch.tensor([3.0]) * (1 / 255)).item() == 0.011764707043766975
    levels = torch.arange(256, dtype=torch.uint8)
    assert torch.equal(obs_to_float(levels, 1 / 255), levels.float() / 255)


def test_a_scale_whose_inverse_is_no_integer_multiplies() -> None:
    """a2d_evo/nets/agent.py obs_to_float: only a scale whose inverse is an integer divides
    (by that integer); 0.4 (inverse 2.5) multiplies: 5 -> 2.0. Mutant let through: the test
    inverted (``!=``), which divided by round(2.5) = 2: 5 -> 2.5, every input 1.25 times too
    large."""
    from a2d_evo.nets.agent import obs_to_float

    # float32(0.4) * 5 = 2.0000000298 -> 2.0 in float32; 7 * 0.4 = 2.8
    got = obs_to_float(torch.tensor([5.0, 7.0]), 0.4)
    assert got.tolist() == pytest.approx([2.0, 2.8], abs=1e-6)
    assert got[0].item() == 2.0


def test_a_cnn_agent_scales_by_1_over_255_unless_told_otherwise() -> None:
    """a2d_evo/nets/agent.py default_obs_scale: a CNN named no scale takes 0-255 frames
    (1/255), an MLP takes its vectors as they are (1). Mutant let through: 1 for both,
    which fed raw grey levels 255 times too large to every CNN built without a spec (an
    agent folder of an older run, the tests' agents)."""
    from a2d_evo.nets.agent import default_obs_scale

    assert default_obs_scale("cnn") == 1 / 255
    assert default_obs_scale("mlp") == 1.0
    assert _tiny_cnn_agent().obs_scale == 1 / 255
    assert _tiny_cnn_agent(1.0).obs_scale == 1.0


def test_the_value_of_a_one_row_batch_is_a_vector_of_one() -> None:
    """a2d_evo/nets/agent.py Agent.forward: values are (N,) for every N, (1,) for one row.
    Mutant let through: ``squeeze()`` for ``squeeze(-1)``, which made a batch of one a 0-d
    value (a buffer ``values[t] = value`` still took it; ``torch.cat`` of values did not)."""
    from a2d_evo.nets.agent import Agent
    from a2d_evo.nets.space import MLPArch

    agent = Agent(MLPArch((4,)), (3,), 2)
    out = agent(torch.zeros((1, 3)))
    assert tuple(out.logits.shape) == (1, 2) and tuple(out.value.shape) == (1,)


def test_a_bool_is_no_obs_scale() -> None:
    """a2d_evo/nets/agent.py check_obs_scale: ``True`` is refused (ArchError), not taken as
    1.0. Mutant let through: dropping ``isinstance(scale, bool)``, which let an arch.json's
    ``"obs_scale": true`` (a flag misread as a number) build an agent scaling by 1."""
    from a2d_evo.errors import ArchError
    from a2d_evo.nets.agent import check_obs_scale

    assert check_obs_scale(1) == 1.0
    with pytest.raises(ArchError, match="expected a number"):
        check_obs_scale(True)


def test_act_on_one_image_gives_one_action() -> None:
    """a2d_evo/nets/agent.py Agent.act: one (C, H, W) frame (the agent's ``obs_shape``) gives
    one action as a 0-d array. Mutant let through: taking a 1-d input for the single
    observation (``x.dim() == 1``), right for MLPs only: one image was taken for a batch
    of 1 of (5, 5) frames and refused (ValueError)."""
    agent = _tiny_cnn_agent()
    frame = np.zeros((1, 5, 5), np.uint8)
    action = agent.act(frame)
    assert isinstance(action, np.ndarray) and action.shape == ()
    assert agent.act(frame[None]).shape == (1,)
