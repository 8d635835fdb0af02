"""a2d_evo.envs: the StepResult contract, seeding, errors, and Atari parity.

The Atari backends are checked against gymnasium's reference pipeline built here from
gymnasium's own wrappers (not from a2d_evo), on real ALE frames.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from a2d_evo.config import EnvConfig
from a2d_evo.envs import env_spec, make_vec_env
from a2d_evo.envs.vector import StepResult
from a2d_evo.errors import ConfigError, EnvError

# ----------------------------------------------------------------------------- helpers


class _NanEnv(gym.Env):
    """Emits a NaN reward (or observation) at its third step when its reset seed is ``bad``."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, bad: int = 12, what: str = "reward") -> None:
        self.bad, self.what, self.seed_ = bad, what, None

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self.seed_ = seed
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        hit = self.t == 3 and self.seed_ == self.bad
        obs = np.full(2, np.nan if hit and self.what == "obs" else 0.0, np.float32)
        reward = float("nan") if hit and self.what == "reward" else 0.0
        return obs, reward, False, False, {}


if "A2DTestNan-v0" not in gym.registry:
    gym.register("A2DTestNan-v0", entry_point=_NanEnv)


class _NanImageEnv(_NanEnv):
    """:class:`_NanEnv` with uint8 image observations (which are never non-finite): its
    third step's reward is ``reward`` when its reset seed is ``bad``."""

    observation_space = gym.spaces.Box(0, 255, (6, 6, 3), np.uint8)

    def __init__(self, bad: int = 12, reward: float = float("nan")) -> None:
        super().__init__(bad, "reward")
        self.bad_reward = reward

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros((6, 6, 3), np.uint8), {}

    def step(self, action):
        _, reward, *rest = super().step(action)
        hit = self.t == 3 and self.seed_ == self.bad
        return np.zeros((6, 6, 3), np.uint8), self.bad_reward if hit else reward, *rest


if "A2DTestNanImage-v0" not in gym.registry:
    gym.register("A2DTestNanImage-v0", entry_point=_NanImageEnv)


def test_a_misspelt_env_kwarg_names_what_the_env_takes() -> None:
    """A key the env's constructor does not take: the message lists the keys it does (from
    its registered entry point's signature, less gymnasium.make's own) and the close one;
    a constructor taking **kwargs gives no list (it said only gymnasium's own words)."""
    from a2d_evo.errors import EnvError

    with pytest.raises(EnvError) as info:
        env_spec(EnvConfig(id="CartPole-v1", kwargs={"sutton_barto_rewrd": True}))
    msg = str(info.value)
    assert msg.endswith(
        "; CartPole-v1 takes: sutton_barto_reward (did you mean 'sutton_barto_reward' for "
        "'sutton_barto_rewrd'?)"
    ), msg
    if "A2DTestAnyKw-v0" not in gym.registry:
        gym.register("A2DTestAnyKw-v0", entry_point=lambda **kw: _NanEnv(**kw))
    with pytest.raises(EnvError) as info:
        env_spec(EnvConfig(id="A2DTestAnyKw-v0", kwargs={"nope": 1}))
    assert "takes:" not in str(info.value)


def test_env_spec_of_kwargs_json_cannot_carry_builds_the_env_as_given(monkeypatch) -> None:
    """kwargs with int and str keys mixed (a YAML mapping) cannot be a JSON cache key: the
    spec is read from the env built with them as they are (a JSONDecodeError before)."""
    from a2d_evo.envs import factory

    seen = []
    real = factory.make_classic_env
    monkeypatch.setattr(
        factory, "make_classic_env", lambda i, kw, *rest: seen.append(kw) or real(i, kw, *rest)
    )
    what = {1: True, "a": 2}
    spec = env_spec(EnvConfig(id="A2DTestNan-v0", kwargs={"bad": 12, "what": what}))
    assert (spec.obs_shape, spec.n_actions) == ((2,), 2)
    assert seen == [{"bad": 12, "what": what}]


class _Closing:
    """Records its close; the one named ``bad`` raises there."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, log: list, name: str) -> None:
        self.log, self.name = log, name

    def close(self) -> None:
        self.log.append(self.name)
        if self.name == "bad":
            raise RuntimeError("close failed")


def test_envs_built_before_a_failure_are_closed_and_close_reaches_every_env(monkeypatch) -> None:
    from a2d_evo.envs import vector
    from a2d_evo.envs.vector import SyncVecEnv

    closed: list[str] = []
    made = iter(["a", "b"])

    def make(env_id, kwargs, limit, layout="auto"):
        name = next(made, None)
        if name is None:
            raise EnvError("the third env failed to build")
        return _Closing(closed, name)

    monkeypatch.setattr(vector, "make_classic_env", make)  # where the sync builder finds it
    with pytest.raises(EnvError, match="third"):
        make_vec_env(EnvConfig(id="CartPole-v1"), 3, seed=0)
    assert closed == ["a", "b"]
    closed.clear()
    envs = SyncVecEnv([_Closing(closed, n) for n in ("a", "bad", "c")], env_id="x", seed=0)
    with pytest.raises(RuntimeError, match="close failed"):
        envs.close()
    assert closed == ["a", "bad", "c"]


def _rollout(env, steps: int, seed: int, n_actions: int) -> dict[str, np.ndarray]:
    """Rollout of ``_actions(...)``; every field of every StepResult stacked over time."""
    return _play(env, _actions(steps, env.num_envs, seed, n_actions))


def _actions(steps: int, num_envs: int, seed: int, n_actions: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n_actions, (steps, num_envs))


def _play(env, actions: np.ndarray, seed: int | None = None) -> dict[str, np.ndarray]:
    out: dict[str, list[np.ndarray]] = {"reset": [env.reset(seed=seed)]}
    for a in actions:
        r = env.step(a)
        for k, v in r._asdict().items():
            out.setdefault(k, []).append(v)
    stacked = {k: np.stack(v) for k, v in out.items()}
    stacked["reset"] = stacked["reset"][0]
    return stacked


def _reference_rollout(game: str, seed: int, actions: np.ndarray, *, sticky: float, noop: int):
    """gymnasium's reference pipeline, built from gymnasium's wrappers, one env, reset by hand
    when an episode ends (the same-step autoreset of our contract)."""
    import ale_py
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

    gym.register_envs(ale_py)
    env = gym.make(f"ALE/{game}-v5", frameskip=1, repeat_action_probability=sticky)
    env = FrameStackObservation(AtariPreprocessing(env, noop_max=noop, frame_skip=4), 4)
    obs, _ = env.reset(seed=seed)
    rows: dict[str, list] = {"reset": obs, "obs": [], "reward": [], "ended": [], "final_obs": []}
    for a in actions:
        o, r, te, tr, _ = env.step(int(a))
        rows["final_obs"].append(o)
        if te or tr:
            o, _ = env.reset()
        rows["obs"].append(o)
        rows["reward"].append(r)
        rows["ended"].append(te or tr)
    env.close()
    return {k: np.asarray(v) for k, v in rows.items()}


def _assert_frames_close(ours: np.ndarray, ref: np.ndarray) -> None:
    """Within one grey level on >= 99% of the pixels, and never more than 1 off."""
    diff = np.abs(ours.astype(np.int16) - ref.astype(np.int16))
    assert (diff <= 1).mean() >= 0.99
    assert diff.max() <= 1


# ----------------------------------------------------------------------------- classic control


def test_classic_same_seed_same_sequences():
    cfg = EnvConfig(id="CartPole-v1")
    runs = []
    for seed in (3, 3, 4):
        env = make_vec_env(cfg, 4, seed=seed)
        runs.append(_rollout(env, 120, seed=0, n_actions=2))
        env.close()
    a, b, c = runs
    assert a["reset"].dtype == np.float32 and a["reset"].shape == (4, 4)
    for k in ("reset", "obs", "reward", "terminated", "truncated", "final_obs"):
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["reset"], c["reset"])
    # int seed s: env i gets s + i, like a sequence of seeds
    env = make_vec_env(cfg, 3, seed=0)
    np.testing.assert_array_equal(env.reset(seed=7), env.reset(seed=[7, 8, 9]))
    with pytest.raises(EnvError, match="expected 3 seeds"):
        env.reset(seed=[1, 2])


def test_cartpole_final_obs_is_pre_reset_obs():
    env = make_vec_env(EnvConfig(id="CartPole-v1"), 8, seed=1)
    r = _rollout(env, 200, seed=1, n_actions=2)
    ended = r["terminated"]
    assert ended.sum() >= 10 and not r["truncated"].any()
    t, i = np.nonzero(ended)
    final, fresh = r["final_obs"][t, i], r["obs"][t, i]
    # the ended episode's last state is past a termination threshold (|x| > 2.4 or |theta| > 12 deg)
    assert np.all((np.abs(final[:, 0]) > 2.4) | (np.abs(final[:, 2]) > 12 * 2 * np.pi / 360))
    # ... while obs already is a fresh reset state, drawn from U(-0.05, 0.05)
    assert np.all(np.abs(fresh) <= 0.05)
    # rows that did not end carry their own episode on: obs follows from the previous obs
    assert r["terminated"].dtype == bool and r["reward"].dtype == np.float32


def test_truncation_and_episode_stats():
    env = make_vec_env(EnvConfig(id="CartPole-v1"), 3, seed=0, max_episode_steps=5)
    env.reset()
    for step in range(1, 6):
        r = env.step(np.array([0, 1, 0]) if step % 2 else np.array([1, 0, 1]))
    assert r.truncated.all() and not r.terminated.any()
    np.testing.assert_array_equal(r.episode_length, [5, 5, 5])
    np.testing.assert_array_equal(r.episode_return, [5.0, 5.0, 5.0])
    assert not np.allclose(r.final_obs, r.obs)
    r = env.step(np.zeros(3, np.int64))
    assert np.isnan(r.episode_return).all() and (r.episode_length == 0).all()
    # cfg.max_episode_steps is the default limit, the argument overrides it
    cfg = EnvConfig(id="CartPole-v1", max_episode_steps=3)
    env = make_vec_env(cfg, 1, seed=0)
    env.reset()
    assert [bool(env.step(np.array([t % 2])).truncated[0]) for t in range(3)] == [0, 0, 1]


@pytest.mark.parametrize("kind", ["classic", "native-atari"])
def test_step_active_moves_only_the_active_envs(kind):
    """A paused env resumes exactly where it stopped (frame stack included); its episode counts
    only its own steps; the envs around it move on. Atari: 3 envs on 2 workers, so the paused
    env's worker has another env to step."""
    if kind == "classic":
        cfg, limit, n_act, check_return = EnvConfig(id="CartPole-v1"), None, 2, True
    else:
        cfg, limit, n_act, check_return = _atari("native", noop_max=0), 40, 4, False
    paused = make_vec_env(cfg, 3, seed=0, max_episode_steps=limit)
    alone = make_vec_env(cfg, 1, seed=0, max_episode_steps=limit)
    moving = make_vec_env(cfg, 1, seed=0, max_episode_steps=limit)
    try:
        obs = paused.reset(seed=[5, 6, 7])
        np.testing.assert_array_equal(obs[1], alone.reset(seed=[6])[0])
        moving.reset(seed=[7])
        own_steps = 0
        for t in range(500):
            a = np.array([t % n_act, (t // 3) % n_act, (t // 2) % n_act])
            rm = moving.step(a[2:])  # env 2 is never paused
            if 3 <= t < 9:  # env 1 paused: a zero row, no end, nothing counted
                r = paused.step_active(a, np.array([True, False, True]))
                assert not r.obs[1].any() and r.reward[1] == 0 and np.isnan(r.episode_return[1])
                assert not (r.terminated[1] or r.truncated[1])
                np.testing.assert_array_equal(r.obs[2], rm.obs[0])
                continue
            r = paused.step_active(a, np.array([True, True, True]))
            np.testing.assert_array_equal(r.obs[2], rm.obs[0])
            ra = alone.step(a[1:2])
            own_steps += 1
            np.testing.assert_array_equal(r.obs[1], ra.obs[0])
            np.testing.assert_array_equal(r.final_obs[1], ra.final_obs[0])
            assert r.reward[1] == ra.reward[0]
            if ra.terminated[0] or ra.truncated[0]:
                assert r.episode_length[1] == ra.episode_length[0] == own_steps
                assert r.episode_return[1] == ra.episode_return[0]
                if check_return:  # CartPole: +1 per step
                    assert r.episode_return[1] == own_steps
                break
        else:
            raise AssertionError("the episode never ended")
    finally:
        for env in (paused, alone, moving):
            env.close()


def test_episode_return_is_sum_of_raw_rewards():
    env = make_vec_env(EnvConfig(id="Acrobot-v1"), 4, seed=2, max_episode_steps=60)
    r = _rollout(env, 250, seed=2, n_actions=3)
    ended = r["terminated"] | r["truncated"]
    assert ended.sum() >= 8
    for i in range(4):
        start = 0
        for t in np.flatnonzero(ended[:, i]):
            assert r["episode_return"][t, i] == pytest.approx(r["reward"][start : t + 1, i].sum())
            assert r["episode_length"][t, i] == t + 1 - start
            start = t + 1
    assert np.isnan(r["episode_return"][~ended]).all()
    assert (r["episode_length"][~ended] == 0).all()
    assert r["reward"].min() == -1.0  # raw, not clipped or rescaled


def test_env_errors():
    with pytest.raises(EnvError, match="NoSuchEnv-v3"):
        make_vec_env(EnvConfig(id="NoSuchEnv-v3"), 2, seed=0)
    with pytest.raises(EnvError, match=r"continuous action spaces are not supported \(discrete"):
        make_vec_env(EnvConfig(id="Pendulum-v1"), 2, seed=0)
    with pytest.raises(EnvError, match="continuous action spaces"):
        env_spec(EnvConfig(id="MountainCarContinuous-v0"))
    # an observation space of parts: refused, saying what to do (it said what, not how)
    with pytest.raises(
        EnvError, match=r"Tuple\(.* is not supported \(Box or Discrete only\); register an id "
        r"that wraps the env in gymnasium's FlattenObservation"
    ):  # fmt: skip
        env_spec(EnvConfig(id="Blackjack-v1"))
    # an Atari backend for another env is a config error, before any run folder records it
    # (backend is a runtime key: a corrected command never rewrote it, and every later
    # command of the run failed)
    for backend in ("native", "ale_vector"):
        with pytest.raises(ConfigError, match=f"env.backend: '{backend}' is for Atari ids"):
            EnvConfig(id="CartPole-v1", backend=backend)  # type: ignore[arg-type]
    with pytest.raises(EnvError, match="ALE/NoSuchGame-v5"):
        make_vec_env(EnvConfig(id="ALE/NoSuchGame-v5"), 2, seed=0)
    with pytest.raises(EnvError, match="kwargs"):
        make_vec_env(EnvConfig(id="CartPole-v1", kwargs={"no_such_arg": 1}), 1, seed=0)
    # an env's own check of a value (not a TypeError): EnvError, not a traceback
    bad_gravity = EnvConfig(id="LunarLander-v3", kwargs={"gravity": 5.0})
    with pytest.raises(
        EnvError, match=r"cannot be built with env.kwargs \{'gravity': 5.0\}: AssertionError"
    ):
        make_vec_env(bad_gravity, 1, seed=0)
    env = make_vec_env(EnvConfig(id="CartPole-v1"), 2, seed=0)
    env.reset()
    with pytest.raises(EnvError, match="actions must be in"):
        env.step(np.array([0, 2]))
    with pytest.raises(EnvError, match="integer actions"):
        env.step(np.array([0.0, 1.0]))


@pytest.mark.parametrize("what", ["reward", "obs"])
def test_non_finite_values_raise(what):
    cfg = EnvConfig(id="A2DTestNan-v0", kwargs={"bad": 12, "what": what})
    env = make_vec_env(cfg, 4, seed=10)  # env i gets seed 10 + i: env 2 goes bad at step 3
    env.reset()
    env.step(np.zeros(4, np.int64))
    env.step(np.zeros(4, np.int64))
    with pytest.raises(EnvError, match=r"env 2 .*non-finite.* step 3"):
        env.step(np.zeros(4, np.int64))


@pytest.mark.parametrize("reward", [float("nan"), float("-inf"), 1e39])
def test_non_finite_rewards_raise_on_image_envs_too(reward: float) -> None:
    """The reward check does not hang on the observations' dtype (uint8 frames are never
    non-finite), and a reward past float32's range, inf once the learner reads it, counts."""
    env = make_vec_env(EnvConfig(id="A2DTestNanImage-v0", kwargs={"reward": reward}), 4, seed=10)
    assert env.reset().dtype == np.uint8
    env.step(np.zeros(4, np.int64))
    env.step(np.zeros(4, np.int64))
    with pytest.raises(EnvError, match=r"env 2 returned a non-finite reward .* step 3"):
        env.step(np.zeros(4, np.int64))


def test_env_spec_and_discrete_observations():
    spec = env_spec(EnvConfig(id="CartPole-v1"))
    assert spec == ((4,), np.dtype(np.float32), 2, False, 1.0, None)  # no raw image: a vector
    assert env_spec(EnvConfig(id="CartPole-v1")) is spec  # cached
    atari = env_spec(EnvConfig(id="ALE/Pong-v5", stack=3, frame_size=64))
    assert atari == ((3, 64, 64), np.dtype(np.uint8), 6, True, 1 / 255, None)
    env = make_vec_env(EnvConfig(id="FrozenLake-v1"), 2, seed=0)
    obs = env.reset()
    assert obs.shape == (2, 16) and obs.dtype == np.float32
    np.testing.assert_array_equal(obs.sum(axis=1), [1.0, 1.0])  # one-hot states


# ----------------------------------------------------------------------------- Atari


def _atari(backend: str, game: str = "Breakout", **kw) -> EnvConfig:
    return EnvConfig(id=f"ALE/{game}-v5", backend=backend, workers=2, **kw)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sticky", "noop"), [(0.0, 0), (0.25, 30)], ids=["deterministic", "sticky+noops"]
)
def test_native_matches_gymnasium_reference(sticky, noop):
    """Same seed, same actions: the reference's frames within one grey level, equal rewards and
    episode ends. The native backend seeds ALE and its no-op RNG as gymnasium's AtariEnv does, so
    this holds with sticky actions and random no-ops too."""
    seeds, actions = (5, 6), _actions(260, 2, seed=7, n_actions=4)
    env = make_vec_env(_atari("native", sticky_actions=sticky, noop_max=noop), 2, seed=seeds[0])
    ours = _play(env, actions)
    env.close()
    for i, seed in enumerate(seeds):
        ref = _reference_rollout("Breakout", seed, actions[:, i], sticky=sticky, noop=noop)
        ended = ours["terminated"][:, i] | ours["truncated"][:, i]
        np.testing.assert_array_equal(ended, ref["ended"])
        assert ended.any()  # a whole game and a reset are covered
        np.testing.assert_array_equal(ours["reward"][:, i], ref["reward"])
        assert ours["reward"][:, i].sum() > 0
        _assert_frames_close(ours["reset"][i], ref["reset"])
        _assert_frames_close(ours["obs"][:, i], ref["obs"])
        _assert_frames_close(ours["final_obs"][ended, i], ref["final_obs"][ended])
        t_end = np.flatnonzero(ended)[0]
        assert ours["episode_return"][t_end, i] == ref["reward"][: t_end + 1].sum()


@pytest.mark.slow
def test_native_reseeding_a_used_env_replays_the_reference_game():
    """Reset again with seeds shared by several envs (common random numbers): envs that have
    loaded the ROM before restore the state loaded for that seed rather than load it again. Each
    still plays the reference's game for its seed, with sticky actions and random no-ops."""
    steps, seeds = 260, [5, 5, 6, 5]  # 2 workers: envs 1 and 3 share a worker and a seed
    env = make_vec_env(_atari("native", sticky_actions=0.25, noop_max=30), 4, seed=0)
    try:
        _play(env, _actions(30, 4, seed=1, n_actions=4))  # every env has played a game
        a = _actions(steps, 1, seed=7, n_actions=4)[:, 0]
        ours = _play(env, np.column_stack([a, a, _actions(steps, 1, 3, 4)[:, 0], a]), seed=seeds)
    finally:
        env.close()
    ref = _reference_rollout("Breakout", 5, a, sticky=0.25, noop=30)
    for i in (0, 1, 3):
        ended = ours["terminated"][:, i] | ours["truncated"][:, i]
        np.testing.assert_array_equal(ended, ref["ended"])
        assert ended.any()
        np.testing.assert_array_equal(ours["reward"][:, i], ref["reward"])
        _assert_frames_close(ours["reset"][i], ref["reset"])
        _assert_frames_close(ours["obs"][:, i], ref["obs"])
    # the envs of seed 5 agree exactly with each other (loaded vs restored on one worker)
    np.testing.assert_array_equal(ours["reset"][1], ours["reset"][3])
    np.testing.assert_array_equal(ours["obs"][:, 1], ours["obs"][:, 3])
    np.testing.assert_array_equal(ours["obs"][:, 0], ours["obs"][:, 3])


@pytest.mark.slow
def test_ale_vector_matches_gymnasium_reference():
    """Deterministic settings: identical frames (its padding fixed to the reference's), rewards
    and ends. With sticky actions it gets gymnasium's ALE seed where that is a non-negative int32
    (seed 1 here), so the games agree too; its no-op RNG differs (documented)."""
    steps = 200
    actions = _actions(steps, 1, seed=4, n_actions=4)
    for sticky in (0.0, 0.25):
        env = make_vec_env(_atari("ale_vector", sticky_actions=sticky, noop_max=0), 1, seed=1)
        assert (env.obs_shape, env.obs_dtype, env.n_actions) == ((4, 84, 84), np.uint8, 4)
        ours = _play(env, actions)
        env.close()
        ref = _reference_rollout("Breakout", 1, actions[:, 0], sticky=sticky, noop=0)
        assert ours["obs"].dtype == np.uint8 and ours["obs"].shape == (steps, 1, 4, 84, 84)
        np.testing.assert_array_equal(ours["reset"][0], ref["reset"])
        np.testing.assert_array_equal(ours["obs"][:, 0], ref["obs"])
        np.testing.assert_array_equal(ours["reward"][:, 0], ref["reward"])
        ended = ours["terminated"][:, 0] | ours["truncated"][:, 0]
        np.testing.assert_array_equal(ended, ref["ended"])
        np.testing.assert_array_equal(ours["final_obs"][ended, 0], ref["final_obs"][ended])


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["native", "ale_vector"])
def test_atari_same_seed_same_game(backend):
    """reset(seed) replays the same games (sticky actions 0.25 and 1..30 no-ops included)."""
    env = make_vec_env(_atari(backend, game="Pong"), 2, seed=11)
    actions = _actions(60, 2, seed=0, n_actions=env.n_actions)
    a = _play(env, actions)  # the first reset takes make_vec_env's seed
    env.reset(seed=12)
    env.step(actions[0])
    b = _play(env, actions, seed=11)
    c = _play(env, actions, seed=12)
    env.close()
    for k in ("reset", "obs", "reward", "terminated"):
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["obs"], c["obs"])


class _Lives(gym.Env):
    """Loses a life on every step (3 to start), under a TimeLimit of 2 steps."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.lives = 3
        return np.zeros(2, np.float32), {"lives": self.lives}

    def step(self, action):
        self.lives -= 1
        return np.zeros(2, np.float32), 1.0, False, False, {"lives": self.lives}


def test_a_life_lost_on_the_limits_step_terminates_the_training_episode():
    """sync: the step the time limit cuts is also a lost life: terminated (no bootstrap past
    it), as the native and ale_vector backends give, besides truncated and the game's end."""
    from gymnasium.wrappers import TimeLimit

    from a2d_evo.envs.vector import SyncVecEnv

    env = SyncVecEnv([TimeLimit(_Lives(), 2)], env_id="lives", seed=0, life_loss=True)
    env.reset()
    first, second = env.step(np.zeros(1, int)), env.step(np.zeros(1, int))
    assert (first.terminated[0], first.truncated[0]) == (True, False)  # a life, the game goes on
    assert (second.terminated[0], second.truncated[0]) == (True, True)
    assert second.episode_length[0] == 2  # and the game ended there
    env.close()


@pytest.mark.slow
def test_ale_vector_ends_a_game_whose_reset_reports_fewer_lives():
    """Amidar reports fewer lives right after a reset than on its last life: ale_vector used
    to read the game over as one more lost life and merge the games (no return reported).
    With life loss on, its game ends, returns and lengths equal native's step for step."""
    ends = {}
    for backend in ("ale_vector", "native"):
        cfg = EnvConfig(id="ALE/Amidar-v5", backend=backend, sticky_actions=0.0, noop_max=0,
                        terminal_on_life_loss=True, workers=1)  # fmt: skip
        env = make_vec_env(cfg, 2, seed=5, training=True)
        env.reset()
        rng = np.random.default_rng(0)
        ends[backend] = []
        for t in range(1200):
            r = env.step(rng.integers(0, env.n_actions, 2))
            for k in np.flatnonzero(~np.isnan(r.episode_return)):
                ends[backend].append(
                    (t, int(k), float(r.episode_return[k]), int(r.episode_length[k]))
                )
        env.close()
    assert len(ends["native"]) >= 2
    assert ends["ale_vector"] == ends["native"]


@pytest.mark.slow
def test_life_loss_ends_training_episodes_not_games():
    """terminal_on_life_loss: a lost life terminates the training episode (obs == final_obs, the
    game goes on); the return is reported once per game and is the whole game's score. All
    backends agree step for step; evaluation (training=False) plays full games."""
    kw = {"sticky_actions": 0.0, "noop_max": 0, "terminal_on_life_loss": True}
    runs = {}
    actions = _actions(300, 2, seed=3, n_actions=4)
    for backend, steps in (("native", 300), ("ale_vector", 300), ("sync", 120)):
        env = make_vec_env(_atari(backend, **kw), 2, seed=0)
        runs[backend] = _play(env, actions[:steps])  # the slow reference: a prefix
        env.close()
    nat = runs["native"]
    for other in ("ale_vector", "sync"):
        t = len(runs[other]["obs"])
        for k in ("reward", "terminated", "truncated", "episode_return", "episode_length"):
            np.testing.assert_array_equal(nat[k][:t], runs[other][k])
        _assert_frames_close(nat["obs"][:t], runs[other]["obs"])
    assert runs["sync"]["terminated"].any()
    games = np.isfinite(nat["episode_return"])
    lives_lost = nat["terminated"] & ~games
    assert games.sum() >= 2 and lives_lost.sum() >= 4 * games.sum()  # Breakout has 5 lives
    t, i = np.nonzero(lives_lost)
    np.testing.assert_array_equal(nat["final_obs"][t, i], nat["obs"][t, i])
    for i in range(2):
        t_end = np.flatnonzero(games[:, i])[0]
        assert nat["episode_return"][t_end, i] == nat["reward"][: t_end + 1, i].sum()
        assert nat["episode_length"][t_end, i] == t_end + 1
    env = make_vec_env(_atari("native", **kw), 2, seed=0, training=False)
    ev = _rollout(env, 300, seed=3, n_actions=4)
    env.close()
    np.testing.assert_array_equal(ev["terminated"], games)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["native", "ale_vector"])
def test_atari_truncation_by_agent_steps(backend):
    env = make_vec_env(_atari(backend, game="Pong"), 2, seed=0, max_episode_steps=40)
    r = _rollout(env, 80, seed=0, n_actions=6)
    env.close()
    for t in (39, 79):
        assert r["truncated"][t].all() and not r["terminated"][t].any()
        np.testing.assert_array_equal(r["episode_length"][t], [40, 40])
        np.testing.assert_array_equal(r["episode_return"][t], r["reward"][t - 39 : t + 1].sum(0))
        # final_obs continues the ended episode's stack; obs restarts with a padded stack
        np.testing.assert_array_equal(r["final_obs"][t][:, :-1], r["obs"][t - 1][:, 1:])
        assert (r["obs"][t][:, :1] == r["obs"][t][:, 1:]).all()
    assert r["truncated"].sum() == 4


@pytest.mark.slow
def test_life_loss_and_step_limit_backends_agree():
    """Truncated games restart with full lives, so later life losses still terminate."""
    kw = {"sticky_actions": 0.0, "noop_max": 0, "terminal_on_life_loss": True}
    actions = _actions(150, 2, seed=5, n_actions=4)
    runs = []
    for backend in ("native", "ale_vector"):
        env = make_vec_env(_atari(backend, **kw), 2, seed=0, max_episode_steps=60)
        runs.append(_play(env, actions))
        env.close()
    for k in ("reward", "terminated", "truncated", "episode_return", "episode_length"):
        np.testing.assert_array_equal(runs[0][k], runs[1][k])
    truncated, terminated = runs[0]["truncated"], runs[0]["terminated"]
    assert truncated[59].all() and truncated[119].all()
    assert terminated[60:119].any() and terminated[120:].any()


@pytest.mark.slow
def test_native_worker_crash_raises_and_close_cleans_up():
    env = make_vec_env(_atari("native", game="Pong"), 4, seed=0)
    env.reset()
    env.step(np.zeros(4, np.int64))
    procs = list(env._res.procs)
    shm_name = env._res.shm.name
    assert len(procs) == 2
    os.kill(procs[1].pid, signal.SIGKILL)
    start = time.monotonic()
    with pytest.raises(EnvError, match="worker 1 died"):
        env.step(np.zeros(4, np.int64))
    assert time.monotonic() - start < 10
    assert all(p.poll() is not None for p in procs)  # every worker is gone
    assert not os.path.exists(f"/dev/shm/{shm_name.lstrip('/')}")
    with pytest.raises(EnvError, match="closed"):
        env.step(np.zeros(4, np.int64))
    env.close()  # idempotent


def test_native_shared_memory_has_no_name_once_the_workers_hold_it():
    """The frames' segment is unlinked as soon as every worker has mapped it: a process killed
    without cleaning up (SIGKILL to the process group, a Ray actor under ray.kill) leaves
    nothing in /dev/shm (the segment stayed there for good); stepping goes on."""
    env = make_vec_env(_atari("native", game="Pong"), 4, seed=0)
    name = env._res.shm.name.lstrip("/")
    assert not os.path.exists(f"/dev/shm/{name}")
    env.reset()
    first = env.step(np.zeros(4, np.int64)).obs.copy()
    assert first.shape == (4, 4, 84, 84) and first.any()  # the workers' frames arrive
    env.close()
    env.close()  # no second unlink


_CTRL_C = """
import os, signal, time, numpy as np
from a2d_evo.config import EnvConfig
from a2d_evo.envs import make_vec_env
from a2d_evo.train.interrupts import StopFlag
env = make_vec_env(EnvConfig(id="ALE/Pong-v5", backend="native", workers=2), 4, seed=0)
env.reset(); env.step(np.zeros(4, np.int64))
stop = StopFlag()
with stop.installed():
    os.killpg(os.getpgid(0), signal.SIGINT)  # what one Ctrl-C in a terminal sends
    time.sleep(0.5)
    env.step(np.zeros(4, np.int64))  # the update in progress finishes, then checkpoints
    print("stopped by", stop.reason)
env.close()
"""


def test_a_ctrl_c_reaches_the_trainer_and_not_its_native_workers(tmp_path):
    """The trainer finishes its update and checkpoints on SIGINT; the emulator workers it
    still steps are in a session of their own, so the terminal's Ctrl-C (a signal to the
    whole process group) does not kill them first (it did: the step raised EnvError, no
    checkpoint was written and the command failed)."""
    import subprocess

    done = subprocess.run([sys.executable, "-c", _CTRL_C], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, start_new_session=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "stopped by SIGINT"


@pytest.mark.slow
def test_native_workers_end_with_the_interpreter(tmp_path):
    """No close(): the finalizer stops the workers and unlinks the shared memory at exit."""
    import subprocess

    script = tmp_path / "leak.py"
    script.write_text(
        "import numpy as np\n"
        "from a2d_evo.config import EnvConfig\n"
        "from a2d_evo.envs import make_vec_env\n"
        "env = make_vec_env(EnvConfig(id='ALE/Pong-v5', backend='native', workers=2), 2, seed=0)\n"
        "env.reset(); env.step(np.zeros(2, np.int64))\n"
        "print(env._res.shm.name, *[p.pid for p in env._res.procs])\n"
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True
    )
    name, *pids = out.stdout.split()
    assert len(pids) == 2
    assert not os.path.exists(f"/dev/shm/{name.lstrip('/')}")
    for pid in map(int, pids):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert "leaked" not in out.stderr


@pytest.mark.parametrize("backend", ["native", "procs"])
def test_env_workers_never_import_from_the_current_folder(tmp_path, monkeypatch, backend):
    """A package planted where the user stands (a received run folder) is not what a worker
    of the native Atari backend or of the procs backend (its ``start_worker``)
    imports: `python -c` would put the current folder first on sys.path, and so would an
    empty PYTHONPATH entry (`export PYTHONPATH=$PYTHONPATH:/x` with it unset), where a
    sitecustomize.py runs at the interpreter's start. (The stdlib's own helper processes, such
    as multiprocessing's resource tracker, still honour that entry: docs/reliability.md.)"""
    planted = tmp_path / "received_run" / "a2d_evo"
    planted.mkdir(parents=True)
    marker = tmp_path / "planted_code_ran"
    record = f"import sys; open({str(marker)!r}, 'a').write(repr(sys.orig_argv) + '\\n')\n"
    (planted / "__init__.py").write_text(record)
    (planted.parent / "sitecustomize.py").write_text(record)
    monkeypatch.setenv("PYTHONPATH", os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.chdir(planted.parent)
    if backend == "native":
        env = make_vec_env(EnvConfig(id="ALE/Pong-v5", backend="native", workers=1), 1, seed=0)
    else:
        from a2d_evo.envs.proc_vector import ProcVecEnv

        env = ProcVecEnv(EnvConfig(id="CartPole-v1"), 2, seed=0, limit=None, workers=2)
    try:
        env.reset()
        env.step(np.zeros(env.num_envs, np.int64))
    finally:
        env.close()
    ran = marker.read_text().splitlines() if marker.exists() else []
    assert not [line for line in ran if "_worker_main" in line], ran


def test_env_workers_run_the_parents_copy_of_the_package(tmp_path, monkeypatch):
    """A parent run from a checkout beside another copy of a2d_evo earlier on the workers'
    sys.path (an installed older version, a PYTHONPATH entry): the workers imported that copy
    (its kernels, its config schema), and so stepped other code than the parent's."""
    other = tmp_path / "other" / "a2d_evo"
    other.mkdir(parents=True)
    marker = tmp_path / "other_copy_ran"
    (other / "__init__.py").write_text(f"open({str(marker)!r}, 'a').write('imported')\n")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(other.parent), os.environ.get("PYTHONPATH", "")])
    )
    from a2d_evo.envs.proc_vector import ProcVecEnv

    env = ProcVecEnv(EnvConfig(id="CartPole-v1"), 2, seed=0, limit=None, workers=2)
    try:
        env.reset(seed=np.array([3, 4]))
        env.step(np.zeros(env.num_envs, np.int64))
    finally:
        env.close()
    assert not marker.exists()


def _interrupt_once(obj: Any, name: str) -> None:
    """``obj.name()`` raises KeyboardInterrupt on its next call, then is itself again."""
    real = getattr(obj, name)

    def interrupted(*args: Any) -> Any:
        setattr(obj, name, real)
        raise KeyboardInterrupt

    setattr(obj, name, interrupted)


@pytest.mark.parametrize("backend", ["procs", "native"])
def test_an_exchange_cut_short_closes_the_env(backend):
    """A step interrupted while it waits for the workers (a Ctrl-C a notebook catches): the
    procs backend's unread replies stayed in the sockets and the next step read the last one's,
    one behind; native Atari workers cut off mid-step may still write the shared frames."""
    if backend == "procs":
        from a2d_evo.envs.proc_vector import ProcVecEnv

        env = ProcVecEnv(EnvConfig(id="CartPole-v1"), 2, seed=0, limit=None, workers=2)
    else:
        env = make_vec_env(EnvConfig(id="ALE/Pong-v5", backend="native", workers=1), 1, seed=0)
    try:
        env.reset(seed=list(range(3, 3 + env.num_envs)))
        if backend == "procs":
            _interrupt_once(env._w.conns[1], "recv_bytes")  # the second worker's reply
        else:
            _interrupt_once(env, "_gather")
        with pytest.raises(KeyboardInterrupt):
            env.step(np.zeros(env.num_envs, np.int64))
        with pytest.raises(EnvError, match="env is closed"):
            env.step(np.zeros(env.num_envs, np.int64))
    finally:
        env.close()


@pytest.mark.parametrize(
    ("env_id", "backend"),
    [("CartPole-v1", "sync"), ("CartPole-v1", "procs"), ("ALE/Pong-v5", "ale_vector"),
     ("ALE/Pong-v5", "native")],
)  # fmt: skip
def test_every_backend_refuses_an_env_after_close(env_id, backend):
    """A step or reset after close() raised on procs and native Atari only: gymnasium's envs
    and ale-py's vector env play on, so a use after close passed on sync and ale_vector
    (found by review)."""
    from a2d_evo.config import EnvConfig

    env = make_vec_env(EnvConfig(id=env_id, backend=backend, workers=1), 2, seed=0)
    env.reset(seed=[3, 4])
    env.close()
    with pytest.raises(EnvError, match="env is closed"):
        env.step(np.zeros(env.num_envs, np.int64))
    with pytest.raises(EnvError, match="env is closed"):
        env.reset(seed=[3, 4])
    env.close()  # twice: nothing


def test_native_atari_workers_are_given_time_for_the_envs_they_own():
    """Each env loads its ROM on its first seeded reset (0.1 s measured): a worker of 2,000
    envs took more than the fixed 120 s to answer and was closed as hung (found by review).
    The wait is 120 s + 0.5 s per env a worker owns: 8 envs on 2 workers, 122 s."""
    import socket
    import struct

    from a2d_evo.config import EnvConfig

    env = make_vec_env(EnvConfig(id="ALE/Pong-v5", backend="native", workers=2), 8, seed=0)
    try:
        for fd in env._res.fds:
            with socket.socket(fileno=os.dup(fd)) as sock:
                raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16)
            assert struct.unpack("ll", raw)[0] == 122
    finally:
        env.close()


def test_auto_backend_falls_back_without_the_native_kernel(monkeypatch):
    from a2d_evo import ops
    from a2d_evo.config import EnvConfig
    from a2d_evo.envs import factory

    pong = EnvConfig(id="ALE/Pong-v5")  # no-ops and sticky actions: ale_vector's games differ
    plain = EnvConfig(id="ALE/Pong-v5", noop_max=0, sticky_actions=0.0)
    if ops.backend_name("push_frames") == "native":
        assert factory.auto_backend(pong) == factory.AUTO_BACKEND
    monkeypatch.setenv(ops.REFERENCE_ENV_VAR, "1")  # forces the numpy twin of the kernel
    assert (factory.auto_backend(pong), factory.auto_backend(plain)) == ("sync", "ale_vector")


def test_a_backend_that_plays_other_games_is_a_config_difference() -> None:
    """env.backend is a runtime key (how the env is stepped), except where ale_vector plays
    other games for the same seeds: a search resumed or scored on it mixes two sets of games."""
    from a2d_evo.config import EnvConfig, config_from_dict
    from a2d_evo.config.compare import config_diff
    from a2d_evo.runs.folder import FIXED_SECTIONS

    def diff(a: dict, b: dict) -> list[str]:
        cnn = {"space": {"kind": "cnn"}}
        cfg_a, cfg_b = config_from_dict({"env": a, **cnn}), config_from_dict({"env": b, **cnn})
        return config_diff(cfg_a, cfg_b, FIXED_SECTIONS)

    pong = {"id": "ALE/Pong-v5"}
    assert diff({**pong, "backend": "native"}, {**pong, "backend": "sync"}) == []
    assert diff({**pong, "backend": "auto"}, {**pong, "backend": "ale_vector"}) == ["env.backend"]
    assert diff({**pong, "backend": "native", "workers": 2}, {**pong, "workers": 0}) == []
    plain = {**pong, "noop_max": 0, "sticky_actions": 0.0}
    assert diff({**plain, "backend": "native"}, {**plain, "backend": "ale_vector"}) == []
    assert EnvConfig(id="CartPole-v1").games() == "reference"


def test_step_result_fields():
    assert StepResult._fields == (
        "obs",
        "reward",
        "terminated",
        "truncated",
        "final_obs",
        "episode_return",
        "episode_length",
    )


def test_evaluation_envs_without_any_episode_limit_are_refused():
    """A2DTestNan-v0 registers no limit and never ends an episode: evaluating on it would
    never return, so an evaluation env needs ``env.max_episode_steps``; training envs run on."""
    from a2d_evo.envs import check_episode_bound

    unbounded = EnvConfig(id="A2DTestNan-v0", kwargs={"bad": -1})
    with pytest.raises(ConfigError, match=r"env\.max_episode_steps: A2DTestNan-v0 registers no"):
        make_vec_env(unbounded, 2, seed=0, training=False)
    with pytest.raises(ConfigError, match="env.max_episode_steps"):
        check_episode_bound(unbounded)
    make_vec_env(unbounded, 2, seed=0, training=True).close()
    # a cap (the search's) or the key bounds it: episodes then end at the limit
    capped = make_vec_env(unbounded, 2, seed=0, training=False, max_episode_steps=3)
    capped.reset()
    ends = [capped.step(np.zeros(2, np.int64)).episode_length for _ in range(3)]
    np.testing.assert_array_equal(ends[-1], [3, 3])
    capped.close()
    bounded = EnvConfig(id="A2DTestNan-v0", kwargs={"bad": -1}, max_episode_steps=4)
    check_episode_bound(bounded)
    make_vec_env(bounded, 1, seed=0, training=False).close()
    # registered limits and ALE's frame limit count
    check_episode_bound(EnvConfig(id="CartPole-v1"))
    check_episode_bound(EnvConfig(id="ALE/Pong-v5"))


# ----------------------------------------------------------------------------- envs/classic.py
def test_a_discrete_observation_starting_above_0_is_one_hot_from_its_start() -> None:
    """A ``Discrete(3, start=5)`` observation is one-hot over its own 3 values: 5 is the first
    unit and 7 the last (not units 5 and 7 of a 3-unit vector)."""
    import gymnasium as gym

    from a2d_evo.envs.classic import obs_layout

    shape, encode = obs_layout("X", gym.spaces.Discrete(3, start=5))
    assert shape == (3,)
    np.testing.assert_array_equal(encode(5), [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(encode(np.int64(7)), [0.0, 0.0, 1.0])


# ----------------------------------------------------------------------------- envs/factory.py
def test_a_step_cap_never_lengthens_an_env_s_own_episodes(monkeypatch: pytest.MonkeyPatch) -> None:
    """``max_episode_steps`` (the search's cap) only shortens episodes: the limit an env is
    built with is the smaller of the cap and ``env.max_episode_steps``, else of the cap and
    the registered limit (CartPole-v1: 500; ALE v5: 108,000 frames / frame_skip 4)."""
    import importlib.util

    from a2d_evo.config import EnvConfig
    from a2d_evo.envs import factory

    class Built(Exception):
        pass

    limits: list[int | None] = []

    def record(*args, **kw):  # type: ignore[no-untyped-def]
        limits.append(kw["max_episode_steps"] if "max_episode_steps" in kw else args[2])
        raise Built

    from a2d_evo.envs import vector

    monkeypatch.setattr(vector, "make_classic_env", record)  # the sync builder's
    monkeypatch.setattr(factory, "make_atari_vec_env", record)
    cases = [
        (EnvConfig(id="CartPole-v1", max_episode_steps=10), 50, 10),
        (EnvConfig(id="CartPole-v1"), 1000, 500),
        (EnvConfig(id="CartPole-v1"), 20, 20),
    ]
    if importlib.util.find_spec("ale_py") is not None:
        cases.append((EnvConfig(id="ALE/Pong-v5"), 10**6, 27_000))
    for cfg, cap, _ in cases:
        with pytest.raises(Built):
            factory.make_vec_env(cfg, 1, seed=0, training=False, max_episode_steps=cap)
    assert limits == [want for _, _, want in cases]


# ----------------------------------------------------------------------------- envs/vector.py
def test_a_seed_list_longer_than_the_vector_is_refused() -> None:
    """a2d_evo/envs/vector.py seed_list: three seeds for two envs are an EnvError. Mutant
    let through: ``len(seeds) < n``, which played the first two and dropped the third in
    silence (an evaluation believed it played seed 3)."""
    from a2d_evo.envs.vector import seed_list
    from a2d_evo.errors import EnvError

    assert seed_list([1, 2], 2) == [1, 2]
    with pytest.raises(EnvError, match="expected 2 seeds"):
        seed_list([1, 2, 3], 2)


def test_a_negative_action_is_refused() -> None:
    """a2d_evo/envs/vector.py check_actions: actions lie in [0, n_actions); -1 is refused
    with the range. Mutant let through: dropping ``a.min() < 0``, which passed -1 on (an env
    whose action space starts at 1 then played action 0, outside its space)."""
    from a2d_evo.envs.vector import check_actions
    from a2d_evo.errors import EnvError

    assert check_actions(np.array([0, 1]), 2, 2).tolist() == [0, 1]
    with pytest.raises(EnvError, match=r"in \[0, 2\), got -1\.\.0"):
        check_actions(np.array([-1, 0]), 2, 2)


def test_a_reset_mid_episode_restarts_the_episode_statistics() -> None:
    """a2d_evo/envs/vector.py SyncVecEnv.reset clears the running return and length: an
    episode begun after a reset mid-episode reports only its own steps. Mutant let through:
    dropping ``self._stats.clear()``, which added the abandoned episode's 3 steps to the next
    one (CartPole: length and return = steps played + 3)."""
    from a2d_evo.config.env import EnvConfig
    from a2d_evo.envs.vector import classic_sync_env

    env = classic_sync_env(EnvConfig(id="CartPole-v1"), 1, seed=None, limit=None)
    push = np.zeros(1, np.int64)  # always left: CartPole falls within a few dozen steps
    try:
        env.reset(seed=5)
        for _ in range(3):
            assert env.step(push).episode_length[0] == 0  # the pole is still up
        env.reset(seed=5)
        steps = 0
        while True:
            steps += 1
            res = env.step(push)
            if res.episode_length[0]:
                break
            assert steps < 500
        # CartPole pays 1 a step: the episode's return and length are its own step count
        assert (int(res.episode_length[0]), float(res.episode_return[0])) == (steps, steps)
    finally:
        env.close()
