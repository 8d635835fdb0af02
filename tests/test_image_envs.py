"""Image observations outside ALE: (C, H, W) uint8 with the env's obs_scale ([K])."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from a2d_evo.config import EnvConfig, SpaceConfig, config_from_dict
from a2d_evo.envs import env_spec, make_vec_env
from a2d_evo.envs.image import ALE_OBS_SCALE, channels_last
from a2d_evo.errors import ArchError, ConfigError, EnvError
from a2d_evo.nets.agent import Agent
from a2d_evo.nets.agent_folder import env_record
from a2d_evo.nets.space import MLPArch, SearchSpace
from a2d_evo.nets.supernet import Supernet

MINATAR_IMPORT = ("minatar.gym:register_envs",)


def minatar(game: str) -> EnvConfig:
    return EnvConfig(id=f"MinAtar/{game}-v1", imports=MINATAR_IMPORT)


@pytest.mark.parametrize(
    "game,channels,actions",
    [("Breakout", 4, 3), ("Asterix", 4, 5), ("SpaceInvaders", 6, 4), ("Freeway", 7, 3),
     ("Seaquest", 10, 6)],
)  # fmt: skip
def test_minatar_specs(game: str, channels: int, actions: int) -> None:
    spec = env_spec(minatar(game))
    assert spec.obs_shape == (channels, 10, 10) and spec.obs_dtype == np.uint8
    assert spec.n_actions == actions and spec.obs_scale == 1.0 and not spec.atari


def test_minatar_planes_are_transposed_not_changed() -> None:
    """The vector env's (C, H, W) uint8 rows are the raw (H, W, C) bool planes, transposed."""
    envs = make_vec_env(minatar("Seaquest"), 2, seed=3)  # (10, 10, 10): the layout tie
    raw = gym.make("MinAtar/Seaquest-v1")
    try:
        obs = envs.reset()
        first, _ = raw.reset(seed=3)
        assert obs.dtype == np.uint8 and obs.shape == (2, 10, 10, 10)
        np.testing.assert_array_equal(obs[0], first.transpose(2, 0, 1).astype(np.uint8))
        rng = np.random.default_rng(0)
        for _ in range(20):
            a = rng.integers(0, 6, size=2)
            step = envs.step(a)
            o, *_ = raw.step(int(a[0]))
            if step.terminated[0] or step.truncated[0]:
                break
            np.testing.assert_array_equal(step.obs[0], o.transpose(2, 0, 1))
        assert set(np.unique(obs)) <= {0, 1}
    finally:
        envs.close()
        raw.close()


class _Pixels(gym.Env):  # type: ignore[misc]
    """A tiny image env: (H, W, 3) uint8 pixels or (2, H, W) channels-first 0-255 frames."""

    def __init__(self, first: bool = False) -> None:
        shape = (2, 8, 9) if first else (8, 9, 3)
        self.observation_space = gym.spaces.Box(0, 255, shape, np.uint8)
        self.action_space = gym.spaces.Discrete(2)
        self._rng = np.random.default_rng(0)

    def _obs(self) -> np.ndarray:
        return self._rng.integers(0, 256, self.observation_space.shape).astype(np.uint8)

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[np.ndarray, dict]:
        self._rng = np.random.default_rng(seed)
        return self._obs(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        return self._obs(), 1.0, False, False, {}


gym.register("A2dTestPixels-v0", entry_point=_Pixels)
gym.register("A2dTestPixelsCHW-v0", entry_point=lambda: _Pixels(first=True))


def test_pixel_envs_are_chw_uint8_scaled_by_1_over_255() -> None:
    spec = env_spec(EnvConfig(id="A2dTestPixels-v0"))
    assert spec.obs_shape == (3, 8, 9) and spec.obs_dtype == np.uint8
    assert spec.obs_scale == ALE_OBS_SCALE
    envs = make_vec_env(EnvConfig(id="A2dTestPixels-v0"), 1, seed=5)
    obs = envs.reset()
    expected, _ = _Pixels().reset(seed=5)
    np.testing.assert_array_equal(obs[0], expected.transpose(2, 0, 1))
    # channels-first stays as it is
    first = env_spec(EnvConfig(id="A2dTestPixelsCHW-v0"))
    assert first.obs_shape == (2, 8, 9) and first.obs_scale == ALE_OBS_SCALE


def test_a_board_of_small_codes_is_scaled_by_its_high_not_by_1_over_255() -> None:
    """uint8 planes coded 0-3 are scaled by 1/3, so the network sees 0-1 as for pixels and
    0/1 planes (at 1/255 its inputs were at most 0.012, and a teacher on such a board did not
    learn where its 0/1 twin did); the stage's line says the scale."""
    import torch

    from a2d_evo.envs.image import layout_line
    from a2d_evo.nets.agent import obs_to_float

    spec = env_spec(EnvConfig(id="A2dTestCodedBoard-v0"))
    assert spec.obs_shape == (3, 6, 6) and spec.obs_scale == pytest.approx(1 / 3)
    obs = make_vec_env(EnvConfig(id="A2dTestCodedBoard-v0"), 1, seed=0).reset()
    assert obs.max() == 3  # the codes as the env gives them: the scale is inside the network
    assert float(obs_to_float(torch.from_numpy(obs), spec.obs_scale).max()) == pytest.approx(1.0)
    assert layout_line("B", spec.raw_image, "auto", spec.obs_scale).endswith(
        "set env.image_layout if that is wrong; values 0-3, scaled by 1/3 inside the network"
    )
    pixels = env_spec(EnvConfig(id="A2dTestPixels-v0"))
    assert layout_line("P", pixels.raw_image, "auto", pixels.obs_scale).endswith(
        "; values 0-255, scaled by 1/255 inside the network"
    )
    board = env_spec(EnvConfig(id="A2dTestBoard-v0"))
    assert board.obs_scale == 1.0
    assert layout_line("O", board.raw_image, "auto", 1.0).endswith(
        "; 0/1 values, taken as they are"
    )


def test_layout_rule() -> None:
    assert channels_last((10, 10, 4)) and channels_last((10, 10, 10))
    assert channels_last((84, 84, 3)) and not channels_last((4, 84, 84))
    # square boards decide: many channels on a small grid are still channels-first
    assert not channels_last((12, 7, 7)) and not channels_last((16, 9, 9))
    assert channels_last((9, 9, 16)) and not channels_last((3, 96, 128))


class _Board(gym.Env):  # type: ignore[misc]
    """A 4 x 5 board of 6 planes, channels-last: the rule reads it as (4, 5, 6) = C, H, W."""

    observation_space = gym.spaces.Box(0, 1, (4, 5, 6), np.uint8)
    action_space = gym.spaces.Discrete(2)
    cells: tuple[tuple[tuple[int, int, int], int], ...] = (((1, 2, 3), 1),)  # row 1, col 2, plane 3

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        board = np.zeros(self.observation_space.shape, np.uint8)
        for cell, value in self.cells:
            board[cell] = value
        return board, {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        return self.reset()[0], 0.0, True, False, {}


gym.register("A2dTestBoard-v0", entry_point=_Board, max_episode_steps=5)


class _CodedBoard(_Board):
    """A (3, 6, 6) board whose cells hold codes 0-3 (uint8, high 3), not 0/1 or pixels."""

    observation_space = gym.spaces.Box(0, 3, (3, 6, 6), np.uint8)
    cells = (((0, 1, 2), 3), ((2, 4, 4), 1))


gym.register("A2dTestCodedBoard-v0", entry_point=_CodedBoard, max_episode_steps=5)


def test_env_image_layout_reads_a_board_the_rule_cannot() -> None:
    """6 planes on a 4 x 5 board: no layout the rule reads right; env.image_layout: hwc says
    it. The planes land in channels, the set cell at (plane 3, row 1, column 2)."""
    assert not channels_last((4, 5, 6))  # the rule: channels-first, 4 planes of 5 x 6
    auto = env_spec(EnvConfig(id="A2dTestBoard-v0"))
    assert auto.obs_shape == (4, 5, 6)
    hwc = EnvConfig(id="A2dTestBoard-v0", image_layout="hwc")
    assert env_spec(hwc).obs_shape == (6, 4, 5)
    envs = make_vec_env(hwc, 1, seed=0)
    obs = envs.reset()
    envs.close()
    assert obs.shape == (1, 6, 4, 5) and obs[0, 3, 1, 2] == 1 and obs.sum() == 1
    chw = EnvConfig(id="A2dTestPixelsCHW-v0", image_layout="chw")
    assert env_spec(chw).obs_shape == (2, 8, 9)
    # not an image env, or an ALE id: refused, naming the key
    with pytest.raises(EnvError, match=r"env\.image_layout: 'hwc' is for rank-3"):
        env_spec(EnvConfig(id="CartPole-v1", image_layout="hwc"))
    with pytest.raises(ConfigError, match=r"env\.image_layout: 'chw' is for non-ALE"):
        EnvConfig(id="ALE/Pong-v5", image_layout="chw")
    with pytest.raises(ConfigError, match=r"env\.image_layout.*expected one of"):
        config_from_dict({"env": {"id": "A2dTestBoard-v0", "image_layout": "whc"}})


def test_the_teacher_stage_says_how_the_images_were_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The run's first stage prints the reading, so a wrong one is seen before anything
    trains on it (nothing said it); with env.image_layout set it says the key decided."""
    import yaml

    from a2d_evo.cli import main
    from a2d_evo.envs.image import layout_line

    assert env_spec(EnvConfig(id="A2dTestBoard-v0")).raw_image == ((4, 5, 6), False)
    assert layout_line("X", ((4, 5, 6), True), "hwc") == (
        "X: images (4, 5, 6) read as (H, W, C), so 6 channels of 4 x 5, as env.image_layout "
        "'hwc' says"
    )
    assert env_spec(EnvConfig(id="CartPole-v1")).raw_image is None
    cfg = {"env": {"id": "A2dTestBoard-v0"}, "seed": 1,
           "space": {"kind": "cnn", "conv": [{"widths": [4], "kernel": 3}], "fc": [16]},
           "ppo": {"num_envs": 2, "num_steps": 16, "num_minibatches": 1, "update_epochs": 1},
           "teacher": {"total_steps": 32, "eval_episodes": 2}}  # fmt: skip
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(cfg))
    # the board pays nothing, so the teacher then is refused as no better than random (exit
    # 2): the line comes first, when the stage binds the run
    main(["train-teacher", "--config", str(path), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert (
        "A2dTestBoard-v0: images (4, 5, 6) read as (C, H, W), so 4 channels of 5 x 6, by the "
        "layout rule; set env.image_layout if that is wrong"
    ) in err, err


def test_an_agent_is_not_fed_images_read_in_another_layout() -> None:
    """A cube (10, 10, 10) has the same shape read either way, so the shape check cannot
    tell: an agent made with one env.image_layout meets an env read with another is refused
    (an eval --set env.image_layout=chw of an 'auto' agent played on transposed boards)."""
    from a2d_evo.nets.agent import check_fits_env
    from a2d_evo.nets.space import CNNArch, ConvLayer

    arch = CNNArch((ConvLayer(4, 3, 1),), 16)
    cube = (10, 10, 10)
    old = Agent(arch, cube, 2, {"id": "A2dTestBoard-v0"})  # recorded before the key: 'auto'
    check_fits_env(old, EnvConfig(id="A2dTestBoard-v0"), cube, 2, "old")
    with pytest.raises(EnvError, match=r"made reading the images as env.image_layout 'auto', "
                       r"this env reads them as 'chw'"):  # fmt: skip
        check_fits_env(old, EnvConfig(id="A2dTestBoard-v0", image_layout="chw"), cube, 2, "old")
    hwc = Agent(arch, cube, 2, {"id": "A2dTestBoard-v0", "image_layout": "hwc"})
    check_fits_env(hwc, EnvConfig(id="A2dTestBoard-v0", image_layout="hwc"), cube, 2, "hwc")
    with pytest.raises(EnvError, match="'hwc', this env reads them as 'auto'"):
        check_fits_env(hwc, EnvConfig(id="A2dTestBoard-v0"), cube, 2, "hwc")


def test_an_mlp_is_refused_for_image_observations() -> None:
    with pytest.raises(ArchError, match="use space.kind: cnn"):
        Supernet(SearchSpace(SpaceConfig(kind="mlp")), (4, 10, 10), 3)
    with pytest.raises(ArchError, match="use space.kind: cnn"):
        Agent(MLPArch((8,)), (4, 10, 10), 3)
    with pytest.raises(ArchError, match="use space.kind: mlp"):
        Supernet(SearchSpace(SpaceConfig(kind="cnn")), (4,), 3)


def test_minatar_gets_an_episode_limit_and_records_no_ale_keys() -> None:
    assert minatar("Breakout").max_episode_steps == 10_000
    assert EnvConfig(id="MinAtar/Breakout-v1", max_episode_steps=500).max_episode_steps == 500
    assert EnvConfig(id="CartPole-v1").max_episode_steps is None
    from a2d_evo.config import config_to_dict

    record = env_record(config_to_dict(minatar("Breakout")))
    assert not set(EnvConfig.ATARI_KEYS) & set(record)
    assert record["id"] == "MinAtar/Breakout-v1" and record["max_episode_steps"] == 10_000
    ale = env_record(config_to_dict(EnvConfig(id="ALE/Pong-v5")))
    assert ale["sticky_actions"] == 0.25 and ale["frame_size"] == 84


def test_a_seeded_minatar_reset_plays_the_same_episode_whatever_came_before() -> None:
    """MinAtar keeps its last action across resets and plays it, sticky, on the next
    episode's first step with probability 0.1: 22 of these 200 seeds played differently
    after another history. The population evaluator reuses its envs, so common random
    numbers need a seeded reset to start afresh (``envs/fresh_reset.py``)."""
    pytest.importorskip("minatar")
    envs = make_vec_env(minatar("Breakout"), 1, seed=0, training=False)

    def play(seed: int, actions: list[int]) -> list[bytes]:
        envs.reset(seed=[seed])
        frames = []
        for a in actions:
            step = envs.step(np.array([a]))
            frames.append(step.obs.tobytes())
            if not np.isnan(step.episode_return[0]):
                break
        return frames

    differ = []
    for s in range(200):
        play(s, [2] * 5)  # a history ending on action 2 (right)
        after_right = play(1000 + s, [1] * 3)
        play(s, [0] * 5)  # one ending on action 0 (no-op)
        if play(1000 + s, [1] * 3) != after_right:
            differ.append(1000 + s)
    envs.close()
    assert differ == []


def test_a_declared_cnn_space_too_deep_for_the_images_names_space_conv() -> None:
    """Images for a CNN space: what does not fit is the declared layers, so the message names
    space.conv and which of its layers (it blamed space.kind 'cnn')."""
    from a2d_evo.train.teacher_folder import check_space_fits

    space = {"kind": "cnn", "fc": [16],
             "conv": [{"widths": [4], "kernel": 5}, {"widths": [4], "kernel": 5}]}  # fmt: skip
    cfg = config_from_dict({"env": {"id": "A2dTestPixels-v0"}, "space": space})
    with pytest.raises(ConfigError) as info:
        check_space_fits(cfg, (3, 8, 9), 2)
    msg = str(info.value)
    assert msg.startswith("space.conv (conv layer i below is space.conv[i]) does not fit"), msg
    assert "too small for conv layer 1" in msg and "space.kind" not in msg.split(";")[0], msg


def test_the_wrapped_image_space_keeps_the_values_the_env_gives() -> None:
    """The (C, H, W) uint8 space of a wrapped image env bounds the values the env gives
    (the scale is applied inside the network): 0-3 for a board coded 0-3, 0-1 for bool
    planes, 0-255 for pixels; not 0-255 for every image."""
    import gymnasium as gym

    from a2d_evo.envs.image import wrap_image_env

    def env_of(space: gym.spaces.Box) -> gym.Env:
        class Still(gym.Env):
            observation_space = space
            action_space = gym.spaces.Discrete(2)

        return Still()

    for space, high in (
        (gym.spaces.Box(0, 3, (6, 6, 3), np.uint8), 3),
        (gym.spaces.Box(0, 1, (10, 10, 4), np.bool_), 1),
        (gym.spaces.Box(0, 255, (84, 84, 3), np.uint8), 255),
    ):
        wrapped = wrap_image_env(env_of(space)).observation_space
        assert wrapped.shape == (space.shape[2], space.shape[0], space.shape[1])
        assert wrapped.dtype == np.uint8
        assert int(wrapped.high.max()) == high and int(wrapped.low.min()) == 0


def test_a_board_with_a_higher_code_in_one_plane_is_scaled_by_its_highest() -> None:
    """a2d_evo/envs/image.py image_obs_scale: the scale is 1 / the space's HIGHEST bound, a
    Box whose bounds differ per plane (one plane coded 0-3, the others 0/1) included, so no
    input exceeds 1; the wrapped space keeps that bound. Mutant let through: ``np.min`` of
    the bounds (the covering spaces have one bound throughout): scale 1, codes up to 3."""
    import gymnasium as gym

    from a2d_evo.envs.image import image_obs_scale, wrap_image_env

    high = np.ones((3, 6, 6), np.uint8)
    high[0] = 3
    space = gym.spaces.Box(np.zeros_like(high), high, dtype=np.uint8)
    assert image_obs_scale(space) == pytest.approx(1 / 3)

    class Board(gym.Env):  # type: ignore[misc]
        observation_space = space
        action_space = gym.spaces.Discrete(2)

    wrapped = wrap_image_env(Board())
    assert wrapped.obs_scale == pytest.approx(1 / 3)
    out = wrapped.observation_space
    assert out.high.max() == 3 and out.shape == (3, 6, 6)


def test_a_wrapped_minatar_reset_puts_back_a_fresh_envs_last_action() -> None:
    """a2d_evo/envs/fresh_reset.py FreshStickyAction.reset: every reset sets MinAtar's
    ``last_action`` to a fresh env's value, 0, so a reused env plays what a new one plays.
    Mutant let through: setting it to 1: every reset then agreed with every other (the
    covering test compares two histories of the same env) but not with a fresh env, whose
    first sticky step plays 0: an extracted agent's fresh env and the population's reused
    one played different episodes."""
    pytest.importorskip("minatar")
    import gymnasium as gym
    import minatar.gym

    from a2d_evo.envs.fresh_reset import fresh_reset

    if "MinAtar/Breakout-v1" not in gym.registry:  # registered once, as env.imports does
        minatar.gym.register_envs()
    fresh = gym.make("MinAtar/Breakout-v1")
    env = fresh_reset(gym.make("MinAtar/Breakout-v1"))
    assert env is not fresh and type(env).__name__ == "FreshStickyAction"
    game = env.unwrapped.game
    env.reset(seed=0)
    for _ in range(3):
        env.step(2)
    assert game.last_action == 3  # Breakout's action 2 is MinAtar's 'r' (3)
    env.reset(seed=1)
    assert game.last_action == fresh.unwrapped.game.last_action == 0
    env.close()
    fresh.close()
