"""The ``procs`` backend (:mod:`a2d_evo.envs.proc_vector`): gymnasium envs stepped in worker
processes, the same results as the in-process ``sync`` backend bit for bit."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from a2d_evo.config import EnvConfig, config_from_dict, replace
from a2d_evo.envs import make_vec_env
from a2d_evo.envs.ale import worker_cores
from a2d_evo.envs.factory import PROCS_MIN_ENVS
from a2d_evo.envs.proc_vector import ProcVecEnv
from a2d_evo.envs.vector import SyncVecEnv
from a2d_evo.errors import ConfigError, EnvError

# an env module the workers import through env.imports, as a user's would be
NAN_MODULE = '''
import gymnasium as gym
import numpy as np


class NanEnv(gym.Env):
    """A NaN observation at the third step of the episode reset with seed 1002."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.seed_, self.t = seed, 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        bad = self.t == 3 and self.seed_ == 1002
        return np.full(2, np.nan if bad else 0.0, np.float32), 0.0, False, self.t >= 9, {}


def register():
    gym.register("A2dProcsNan-v0", entry_point=NanEnv)
'''


def envs(env_id: str, n: int, seed: int = 5) -> tuple[Any, Any]:
    """The same ``n`` envs in this process and in 2 workers."""
    sync = make_vec_env(EnvConfig(id=env_id, backend="sync"), n, seed=seed)
    procs = ProcVecEnv(EnvConfig(id=env_id, backend="procs"), n, seed=seed, limit=None, workers=2)
    assert isinstance(sync, SyncVecEnv)
    return sync, procs


@pytest.mark.parametrize("env_id", ["CartPole-v1", "LunarLander-v3"])
def test_procs_steps_exactly_as_sync(env_id: str) -> None:
    """Resets (the pending seed, a seed list, none), steps of every env and of some
    (``step_active``), autoresets and episode statistics: every array equal, NaNs in place."""
    if env_id.startswith("Lunar"):
        pytest.importorskip("Box2D")
    sync, procs = envs(env_id, 5)
    with sync, procs:
        assert (procs.obs_shape, procs.obs_dtype, procs.n_actions) == (
            sync.obs_shape, sync.obs_dtype, sync.n_actions)  # fmt: skip
        rng = np.random.default_rng(0)
        ended = 0
        for t in range(400):
            if t in (0, 150, 300):
                seed = None if t != 150 else [11, 3, 7, 2, 9]
                assert np.array_equal(sync.reset(seed), procs.reset(seed))
            a = rng.integers(sync.n_actions, size=5)
            on = None if t % 3 == 0 else rng.random(5) < 0.7
            one, two = sync.step_active(a, on), procs.step_active(a, on)
            for name, x, y in zip(one._fields, one, two, strict=True):
                assert x.dtype == y.dtype and np.array_equal(x, y, equal_nan=True), (t, name)
            ended += int((~np.isnan(one.episode_return)).sum())
        assert ended >= 10  # autoresets were compared


def test_evaluation_is_the_same_under_procs(monkeypatch: pytest.MonkeyPatch) -> None:
    """An evaluation through the episode loop (finished slots stop): the same returns and
    lengths whichever backend steps it (the procs one in worker processes)."""
    from a2d_evo.envs import factory
    from a2d_evo.evaluation.episodes import random_policy_return

    built: list[Any] = []

    def counted(*args: Any, **kw: Any) -> ProcVecEnv:
        built.append(args)
        return ProcVecEnv(*args, **kw)

    monkeypatch.setattr(factory, "ProcVecEnv", counted)

    def returns(backend: str) -> Any:
        n = PROCS_MIN_ENVS
        cfg = config_from_dict({"env": {"backend": backend, "workers": 2}, "eval": {"num_envs": n}})
        return random_policy_return(cfg, n, 40)

    sync, procs = returns("sync"), returns("procs")
    assert len(built) == 1  # the procs evaluation, and only it, ran in workers
    assert np.array_equal(sync.returns, procs.returns)
    assert np.array_equal(sync.lengths, procs.lengths) and sync.lengths.sum() > 9 * PROCS_MIN_ENVS


def test_a_worker_s_error_names_the_env_in_the_whole_vector(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A NaN observation from env 2 (worker 0's second env) is an EnvError naming env 2, as
    the in-process backend names it; an env the workers cannot build is the builder's error.
    The env's module is found through a relative PYTHONPATH entry, which means to the
    workers what it means to the caller (they run in another folder)."""
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "a2d_procs_nan_env.py").write_text(NAN_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(["mods", os.environ.get("PYTHONPATH", "")]))
    cfg = EnvConfig(
        id="A2dProcsNan-v0", imports=("a2d_procs_nan_env:register",), backend="procs", workers=2
    )
    procs = ProcVecEnv(cfg, 4, seed=1000, limit=None, workers=2)
    for env in (procs, make_vec_env(replace(cfg, backend="sync"), 4, seed=1000)):
        with env:
            env.reset()
            env.step(np.zeros(4, np.int64))
            env.step(np.zeros(4, np.int64))
            with pytest.raises(
                EnvError, match=r"A2dProcsNan-v0: env 2 returned a non-finite observation at step 3"
            ):
                env.step(np.zeros(4, np.int64))

    bad = EnvConfig(id="CartPole-v1", kwargs={"no_such_kwarg": 1}, backend="procs", workers=2)
    with pytest.raises(EnvError, match="no_such_kwarg"):
        ProcVecEnv(bad, 4, seed=0, limit=None, workers=2)


def test_a_worker_that_dies_is_an_error_not_a_hang_and_close_stops_them_all() -> None:
    """A killed worker: an EnvError naming it and its envs, every other worker stopped. A
    closed vector env leaves no worker running, and refuses to step."""
    cfg = EnvConfig(id="CartPole-v1", backend="procs")
    env = ProcVecEnv(cfg, 5, seed=0, limit=None, workers=2)
    procs = list(env._w.procs)
    env.reset()
    procs[1].kill()
    procs[1].wait()
    with pytest.raises(EnvError, match=r"env worker 1 \(envs 1, 3\) died \(exit code -9\)"):
        env.step(np.zeros(5, np.int64))
    assert all(p.poll() is not None for p in procs)

    env = ProcVecEnv(cfg, 5, seed=0, limit=None, workers=2)
    procs = list(env._w.procs)
    env.close()
    assert all(p.poll() is not None for p in procs)
    with pytest.raises(EnvError, match="closed"):
        env.step(np.zeros(5, np.int64))


def test_procs_is_refused_for_atari_and_which_vectors_step_in_workers() -> None:
    """Vectors of PROCS_MIN_ENVS envs or more, with two workers or more, step in workers;
    smaller ones, or one worker, in this process (a round trip costs more than it saves)."""
    with pytest.raises(ConfigError, match="'procs' is for non-Atari ids"):
        config_from_dict({"env": {"id": "ALE/Pong-v5", "backend": "procs"}})
    n = PROCS_MIN_ENVS
    per_core = ProcVecEnv if worker_cores() > 1 else SyncVecEnv  # workers 0: one per core
    for workers, envs_, kind in ((2, n, ProcVecEnv), (0, n, per_core), (2, n - 1, SyncVecEnv),
                                 (1, n, SyncVecEnv)):  # fmt: skip
        env = make_vec_env(
            EnvConfig(id="CartPole-v1", backend="procs", workers=workers), envs_, seed=0
        )
        with env:
            assert type(env) is kind, (workers, envs_)
    assert type(make_vec_env(EnvConfig(id="CartPole-v1"), n, seed=0)) is SyncVecEnv  # auto


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
