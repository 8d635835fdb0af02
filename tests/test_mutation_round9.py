"""Properties no test pinned, found by a ninth mutation review (2026-12-07): each test below
passes on the code as it is and fails under a small change to it that the covering tests let
through: the plain agent (a scalar-Box batch, float frames refused, the exact x / 255, a
scale whose inverse is no integer, the default CNN scale, the value of a one-row batch, bool
scales, one image observation to act on), the population forward (the MLP heads' padding and
the image-plane bound of the native kernel, negative group sizes, float frames to a CNN
supernet), the teacher stage (the env's obs_scale, a finished stage resumed), the frame
kernel's reference twin (a 2 x 1 box, rounded half to even) and the procs vector env (more
workers than envs, a reply of the wrong length)."""

from __future__ import annotations

import numpy as np
import pytest
import torch


# ----------------------------------------------------------------------------- agent.py
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


# ----------------------------------------------------------------------------- population.py
def _limits_or_skip() -> dict[str, int]:
    from a2d_evo.ops.subnet_eval import native_limits

    limits = native_limits()
    if limits is None:
        pytest.skip("a2d_evo._C is not built")
    return limits


def _mlp_supernet(obs_dim: int, widths: tuple[int, ...], n_actions: int):
    from a2d_evo.config import SpaceConfig
    from a2d_evo.nets.space import SearchSpace
    from a2d_evo.nets.supernet import Supernet

    torch.manual_seed(0)
    space = SearchSpace(SpaceConfig(kind="mlp", depths=(1,), widths=widths))
    return space, Supernet(space, (obs_dim,), n_actions)


def _cnn_supernet(obs_shape: tuple[int, int, int], n_actions: int):
    from a2d_evo.config import SpaceConfig
    from a2d_evo.config.space import ConvLayerConfig
    from a2d_evo.nets.space import SearchSpace
    from a2d_evo.nets.supernet import Supernet

    torch.manual_seed(0)
    conv = (ConvLayerConfig(widths=(1, 2), kernel=1),)
    space = SearchSpace(SpaceConfig(kind="cnn", conv=conv, fc=(2,)))
    return space, Supernet(space, obs_shape, n_actions)


def test_the_mlp_heads_count_the_value_row_against_the_kernel_s_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """a2d_evo/nets/population.py unsupported_by_native: the MLP kernel's heads are the
    actions plus the value, padded to 8: 8 actions need round_up(9, 8) = 16 rows, over a
    max_mlp_dim of 8 (lowered here; a real one needs 2**16 actions). Mutant let through:
    ``round_up(n_actions, 8)`` = 8, which packed such a supernet and every call raised."""
    from a2d_evo.nets import population

    real = _limits_or_skip()
    _, net = _mlp_supernet(4, (4, 8), 8)
    assert population.unsupported_by_native(net) == ""
    monkeypatch.setattr(population, "native_limits", lambda: {**real, "max_mlp_dim": 8})
    # widest: max(4 inputs, round_up(8, 8)) = 8; heads: round_up(8 + 1, 8) = 16
    assert population.unsupported_by_native(net) == (
        "inputs, padded widths and heads up to 8, the supernet has 16"
    )


def test_an_image_of_exactly_the_kernel_s_plane_runs_natively(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """a2d_evo/nets/population.py unsupported_by_native: max_cnn_plane is the largest image
    taken, so a 3 x 3 image (9 pixels) passes a bound of 9 and not one of 8. Mutant let
    through: ``>=``, which sent images of exactly the kernel's size to the slow torch loop."""
    from a2d_evo.nets import population

    real = _limits_or_skip()
    _, net = _cnn_supernet((2, 3, 3), 3)
    monkeypatch.setattr(population, "native_limits", lambda: {**real, "max_cnn_plane": 9})
    assert population.unsupported_by_native(net) == ""
    monkeypatch.setattr(population, "native_limits", lambda: {**real, "max_cnn_plane": 8})
    assert population.unsupported_by_native(net) == (
        "images of up to 8 pixels, the supernet's has 9"
    )


def test_negative_group_sizes_are_refused_even_when_they_add_up() -> None:
    """a2d_evo/nets/population.py PopulationForward._check: group sizes [-1, 3] add up to
    the 2 rows of obs and are still refused, naming them. Mutant let through: dropping
    ``(sizes < 0).any()``, which left the refusal to the native binding (another message)
    or to the torch loop's ValueError ("must cover the batch"), an error callers catching
    KernelInputError do not expect."""
    from a2d_evo.errors import KernelInputError
    from a2d_evo.nets.population import PopulationForward

    space, net = _mlp_supernet(4, (4, 8), 2)
    archs = [space.largest(), space.smallest()]
    obs = np.zeros((2, 4), np.float32)
    for backend in ("reference", None):
        fwd = PopulationForward(net, backend=backend)
        logits, _ = fwd(obs, archs, [1, 1])
        assert logits.shape == (2, 2)
        with pytest.raises(KernelInputError, match=r"non-negative integers, got \[-1, 3\]"):
            fwd(obs, archs, [-1, 3])


def test_a_cnn_supernet_refuses_float_frames_by_name() -> None:
    """a2d_evo/nets/population.py PopulationForward._check: a CNN supernet takes uint8
    frames; float ones are refused saying so, whichever path runs. Mutant let through:
    dropping that check, which left the refusal to the native binding (a message naming
    no float) or, on the torch loop, to the subnet's TypeError, not a KernelInputError."""
    from a2d_evo.errors import KernelInputError
    from a2d_evo.nets.population import PopulationForward

    space, net = _cnn_supernet((2, 3, 3), 3)
    obs = np.zeros((1, 2, 3, 3), np.float32)
    for backend in ("reference", None):
        fwd = PopulationForward(net, backend=backend)
        with pytest.raises(KernelInputError, match="takes uint8 frames, got float32"):
            fwd(obs, [space.largest()], [1])


# ----------------------------------------------------------------------------- teacher.py
def _capture_save(monkeypatch: pytest.MonkeyPatch) -> list[tuple[object, dict]]:
    """train_teacher's save_teacher replaced by a recorder (no evaluation: a few updates
    are no better than random, and the save is what these tests read)."""
    import a2d_evo.train.teacher as teacher

    saved: list[tuple[object, dict]] = []

    def record(agent: object, cfg: object, folder: object, extra: dict) -> object:
        saved.append((agent, dict(extra)))
        return folder

    monkeypatch.setattr(teacher, "save_teacher", record)
    return saved


def _register_coded_board() -> str:
    """A (3, 6, 6) uint8 board coded 0-3 (its Box's high 3: an obs_scale of 1/3), two
    actions, episodes of one step."""
    import gymnasium as gym

    env_id = "A2dRound9CodedBoard-v0"
    if env_id in gym.registry:
        return env_id

    class CodedBoard(gym.Env):  # type: ignore[misc]
        observation_space = gym.spaces.Box(0, 3, (3, 6, 6), np.uint8)
        action_space = gym.spaces.Discrete(2)

        def reset(self, *, seed: int | None = None, options: object = None) -> tuple:
            super().reset(seed=seed)
            board = np.zeros((3, 6, 6), np.uint8)
            board[0, 1, 2] = 3
            return board, {}

        def step(self, action: int) -> tuple:
            return self.reset()[0], 0.0, True, False, {}

    gym.register(env_id, entry_point=CodedBoard, max_episode_steps=5)
    return env_id


def test_a_teacher_scales_its_images_by_the_env_s_scale(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """a2d_evo/train/teacher.py train_teacher: the teacher is built with the env spec's
    ``obs_scale``: 1/3 for a board coded 0-3, not the CNN default 1/255. Mutant let through:
    leaving the scale out, which trained (and saved) a teacher reading that board's codes at
    most 3/255 = 0.012, and every later stage refused it against the env's 1/3."""
    from a2d_evo.config import config_from_dict
    from a2d_evo.runfolder import RunFolder
    from a2d_evo.train.teacher import train_teacher

    saved = _capture_save(monkeypatch)
    cfg = {"env": {"id": _register_coded_board()}, "seed": 1, "torch_threads": 1,
           "space": {"kind": "cnn", "conv": [{"widths": [4], "kernel": 3}], "fc": [16]},
           "ppo": {"num_envs": 2, "num_steps": 16, "num_minibatches": 1, "update_epochs": 1},
           "teacher": {"total_steps": 32, "eval_episodes": 2}}  # fmt: skip
    train_teacher(config_from_dict(cfg), RunFolder(tmp_path / "run"), progress=False)
    ((agent, _),) = saved
    assert agent.obs_scale == pytest.approx(1 / 3)  # type: ignore[attr-defined]


def test_a_resume_of_a_finished_teacher_keeps_the_measured_figures(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """a2d_evo/train/teacher.py train_teacher: ``--resume`` of a teacher whose training
    ended trains nothing (no wall time, no recent return of its own) and keeps the
    ``train_wall_s`` and ``train_recent_return`` its metrics.json recorded. Mutant let
    through: dropping the ``result.sps is None`` branch (or reading the new figures in
    it), which overwrote them with the resume's own, measured over no training."""
    from a2d_evo.config import config_from_dict
    from a2d_evo.files import write_json
    from a2d_evo.runfolder import RunFolder
    from a2d_evo.train.teacher import train_teacher

    saved = _capture_save(monkeypatch)
    cfg = config_from_dict({
        "seed": 5, "torch_threads": 1, "env": {"id": "CartPole-v1"},
        "space": {"kind": "mlp", "depths": [1], "widths": [4, 8]},
        "ppo": {"num_envs": 2, "num_steps": 16, "num_minibatches": 2, "update_epochs": 1},
        "teacher": {"arch": {"kind": "mlp", "widths": [8]}, "total_steps": 64},
    })  # fmt: skip
    run = RunFolder(tmp_path / "run")
    train_teacher(cfg, run, progress=False)
    assert saved[0][1]["env_steps"] == 64
    run.teacher_agent.mkdir(parents=True, exist_ok=True)
    write_json(run.teacher_agent / "metrics.json",
               {"train_wall_s": 12.5, "train_recent_return": 42.0})  # fmt: skip
    train_teacher(cfg, run, resume=True, progress=False)
    extra = saved[1][1]
    assert extra["train_wall_s"] == 12.5 and extra["train_recent_return"] == 42.0
    assert extra["env_steps"] == 64


# ----------------------------------------------------------------------------- preprocess.py
def test_a_2_by_1_box_rounds_half_to_even_in_the_reference() -> None:
    """a2d_evo/ops/preprocess.py _resize_reference: halving the height only (a 2 x 1 frame
    to 1 x 1, OpenCV's integer fast path with factors 2 and 1) averages the two pixels in
    float32 and rounds half to even: (10 + 20) / 2 = 15, (1 + 2) / 2 = 1.5 -> 2,
    (2 + 3) / 2 = 2.5 -> 2. Mutants let through: ``fy == 2 or fx == 2`` (the 2 x 2 shift
    (s + 2) >> 2 divided those sums by 4: 8, 1, 1) and ``scale > 1`` for ``>= 1`` (a width
    kept as it is sent the frame to the bilinear path, which rounds half up: 2.5 -> 3)."""
    from a2d_evo.ops.preprocess import preprocess_frames_reference

    raw = np.zeros((3, 2, 2, 1), np.uint8)
    for i, (top, bottom) in enumerate([(10, 20), (1, 2), (2, 3)]):
        raw[i, :, 0, 0], raw[i, :, 1, 0] = top, bottom  # both frames of the pair alike
    out = preprocess_frames_reference(raw, size=1)
    assert out.reshape(-1).tolist() == [15, 2, 2]


# ----------------------------------------------------------------------------- proc_vector.py
def test_more_workers_than_envs_are_refused() -> None:
    """a2d_evo/envs/proc_vector.py ProcVecEnv: workers lie in [1, num_envs]; 3 workers for
    2 envs are an EnvError naming the range. Mutant let through: dropping the upper bound,
    which started a worker holding no env (``range(2, 2, 3)`` is empty) and ended in an
    IndexError that named neither the workers nor the envs."""
    from a2d_evo.config import EnvConfig
    from a2d_evo.envs.proc_vector import ProcVecEnv
    from a2d_evo.errors import EnvError

    with pytest.raises(EnvError, match=r"workers must be in \[1, 2\], got 3"):
        ProcVecEnv(EnvConfig(id="CartPole-v1", backend="procs"), 2, seed=0, limit=None, workers=3)


def test_a_worker_reply_of_the_wrong_length_is_refused() -> None:
    """a2d_evo/envs/proc_vector.py ProcVecEnv._whole: each worker's reply must be exactly
    its envs' bytes: one CartPole env's observation is 4 float32 = 16 bytes, and a reply of
    20 is an EnvError naming the worker. Mutant let through: dropping the length check,
    which read the first 16 bytes and dropped the rest in silence (a worker one command
    behind, or one whose envs give another shape, put wrong rows in the vector)."""
    from a2d_evo.config import EnvConfig
    from a2d_evo.envs.proc_vector import ProcVecEnv
    from a2d_evo.errors import EnvError

    cfg = EnvConfig(id="CartPole-v1", backend="procs")
    with ProcVecEnv(cfg, 2, seed=0, limit=None, workers=2) as procs:
        one = np.arange(4, dtype=np.float32).tobytes()
        (obs,) = procs._whole([one, one], 1)
        assert obs.tolist() == [[0.0, 1.0, 2.0, 3.0]] * 2
        with pytest.raises(EnvError, match="worker 1 replied 20 bytes, not 16"):
            procs._whole([one, one + b"\0" * 4], 1)
