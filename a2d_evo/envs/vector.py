"""Vectorised, seeded environments behind one small contract.

Every backend (the in-process :class:`SyncVecEnv` for classic control and the gymnasium Atari
reference, :mod:`a2d_evo.envs.proc_vector`, which runs :class:`SyncVecEnv` in worker processes,
:mod:`a2d_evo.envs.ale_vector` and :mod:`a2d_evo.envs.native_atari`) implements
:class:`VecEnv` and returns :class:`StepResult` batches with **same-step autoreset**: the
observation of an env whose episode just ended is already the first one of its next episode,
and the last observation of the ended episode is in ``final_obs`` (to bootstrap the value on
truncation).

Rewards are the raw ones: reward clipping happens only inside the training loss, so returns
reported here are the game score.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

from a2d_evo.config import EnvConfig
from a2d_evo.config.bounds import MAX_SEED
from a2d_evo.envs.classic import make_classic_env, obs_layout
from a2d_evo.envs.image import is_image_space
from a2d_evo.errors import EnvError

__all__ = [
    "EnvSpec",
    "EpisodeStats",
    "StepResult",
    "SyncVecEnv",
    "VecEnv",
    "classic_sync_env",
    "seed_list",
    "sync_vec_env",
]


class StepResult(NamedTuple):
    """One step of a vector env (N envs)."""

    obs: np.ndarray
    """Next observations; for envs that just ended, already the first obs of the new episode."""
    reward: np.ndarray
    """float32 (N,), the raw reward (never clipped here)."""
    terminated: np.ndarray
    """bool (N,)."""
    truncated: np.ndarray
    """bool (N,)."""
    final_obs: np.ndarray
    """Like ``obs``; rows where ``terminated | truncated`` hold the last obs of the ended
    episode (the other rows equal ``obs`` here, but the contract leaves them unspecified)."""
    episode_return: np.ndarray
    """float64 (N,): raw return of an episode (Atari: of a whole game) ended at this step, NaN
    elsewhere."""
    episode_length: np.ndarray
    """int64 (N,): agent steps of that episode, 0 elsewhere."""


class EnvSpec(NamedTuple):
    """What a network needs to know about an env."""

    obs_shape: tuple[int, ...]
    obs_dtype: np.dtype
    n_actions: int
    atari: bool
    obs_scale: float = 1.0
    """What the network multiplies the observations by: 1/255 for ALE frames and other 0-255
    images, 1 for 0/1 planes (MinAtar) and vectors."""
    raw_image: tuple[tuple[int, ...], bool] | None = None
    """A non-ALE image env's own observation shape and whether it was read channels-last
    (:func:`a2d_evo.envs.image.layout_line` says it); None for ALE frames and vectors."""


@runtime_checkable
class VecEnv(Protocol):
    """What every backend implements."""

    num_envs: int
    obs_shape: tuple[int, ...]
    obs_dtype: np.dtype
    n_actions: int

    def reset(self, seed: int | Sequence[int] | None = None) -> np.ndarray:
        """Reset every env; ``seed`` int: env i gets ``seed + i``; a sequence: one per env."""
        ...

    def step(self, actions: np.ndarray) -> StepResult: ...

    def close(self) -> None: ...


def close_all(envs: Sequence[Any]) -> None:
    """Close every env, also after one's ``close`` raised (the first error is raised then)."""
    errors = []
    for env in envs:
        try:
            env.close()
        except Exception as exc:  # the others are closed all the same
            errors.append(exc)
    if errors:
        raise errors[0]


def build_all(make: Callable[[], Any], n: int) -> list[Any]:
    """``n`` envs from ``make``; those built are closed when a later one fails to build."""
    envs: list[Any] = []
    try:
        for _ in range(n):
            envs.append(make())
    except BaseException:
        close_all(envs)
        raise
    return envs


def seed_list(seed: int | Sequence[int] | np.ndarray, n: int) -> list[int]:
    """Per-env seeds: an int gives ``seed + i``; a sequence must have one entry per env.
    Integers only: ``int()`` would play seed 1 for 1.9, and take True for 1."""

    def whole(s: Any) -> bool:
        return isinstance(s, int | np.integer) and not isinstance(s, bool | np.bool_)

    given: Any = seed.tolist() if isinstance(seed, np.ndarray) else seed  # Python numbers
    if np.ndim(given) == 0:
        if not whole(given):
            raise EnvError(f"reset: a seed must be an integer, got {seed!r}")
        seeds = [int(given) + i for i in range(n)]
    else:
        if not all(whole(s) for s in given):
            raise EnvError(f"reset: seeds must be integers, got {list(given)[:4]!r}")
        seeds = [int(s) for s in given]
        if len(seeds) != n:
            raise EnvError(f"reset: expected {n} seeds (one per env), got {len(seeds)}")
    if any(s < 0 or s > MAX_SEED for s in seeds):
        raise EnvError(f"reset: seeds must be in [0, 2**32 - 1], got {min(seeds)}..{max(seeds)}")
    return seeds


def check_actions(actions: np.ndarray, num_envs: int, n_actions: int) -> np.ndarray:
    """Actions as int64 (N,), checked against the action count."""
    a = np.asarray(actions)
    if a.shape != (num_envs,) or not np.issubdtype(a.dtype, np.integer):
        raise EnvError(
            f"step: expected {num_envs} integer actions, got shape {a.shape} dtype {a.dtype}"
        )
    if num_envs and (a.min() < 0 or a.max() >= n_actions):
        raise EnvError(f"step: actions must be in [0, {n_actions}), got {a.min()}..{a.max()}")
    return a.astype(np.int64, copy=False)


class EpisodeStats:
    """Running raw return and length of each env's current episode (or game)."""

    def __init__(self, num_envs: int) -> None:
        self.returns = np.zeros(num_envs, np.float64)
        self.lengths = np.zeros(num_envs, np.int64)

    def clear(self) -> None:
        self.returns[:] = 0.0
        self.lengths[:] = 0

    def update(
        self, reward: np.ndarray, ended: np.ndarray, stepped: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Add one step (to the envs in ``stepped``, default all); return (episode_return,
        episode_length) of the episodes in ``ended``."""
        self.returns += reward
        self.lengths += 1 if stepped is None else stepped
        episode_return = np.full(len(reward), np.nan)
        episode_length = np.zeros(len(reward), np.int64)
        if ended.any():
            episode_return[ended] = self.returns[ended]
            episode_length[ended] = self.lengths[ended]
            self.returns[ended] = 0.0
            self.lengths[ended] = 0
        return episode_return, episode_length


class SyncVecEnv:
    """Same-process vector env over gymnasium envs with same-step autoreset.

    Fastest for tiny classic-control envs (no IPC); also runs the gymnasium Atari reference
    pipeline. ``life_loss``: a lost life (from ``info["lives"]``) ends the training episode
    without restarting the game, and returns are reported per game (as the Atari backends do).
    ``indices``: each env's index in messages (a worker of the ``procs`` backend holds every
    W-th env of a larger vector); None: 0, 1, ...
    """

    def __init__(
        self,
        envs: Sequence[Any],
        *,
        env_id: str,
        seed: int | None,
        obs_dtype: np.dtype | type = np.float32,
        life_loss: bool = False,
        indices: Sequence[int] | None = None,
    ) -> None:
        if not envs:
            raise EnvError(f"{env_id}: no envs")
        self.envs = list(envs)
        self._indices = list(range(len(self.envs))) if indices is None else list(indices)
        if len(self._indices) != len(self.envs):
            raise EnvError(f"{env_id}: {len(self._indices)} indices for {len(self.envs)} envs")
        self.env_id = env_id
        self.num_envs = len(self.envs)
        space = self.envs[0].observation_space
        self.obs_shape, self._obs_fn = obs_layout(env_id, space)
        self.obs_dtype = np.dtype(obs_dtype)
        self.n_actions = int(self.envs[0].action_space.n)
        self._action_start = int(self.envs[0].action_space.start)
        self._check = np.issubdtype(self.obs_dtype, np.floating)
        self._life_loss = life_loss
        self._lives = np.zeros(self.num_envs, np.int64)
        self._stats = EpisodeStats(self.num_envs)
        self._pending_seed: int | None = seed
        self._steps = 0
        self._closed = False

    def _obs(self, raw: Any) -> np.ndarray:
        return np.asarray(self._obs_fn(raw), dtype=self.obs_dtype)

    def reset(self, seed: int | Sequence[int] | None = None) -> np.ndarray:
        if self._closed:  # gymnasium's envs play on after close(); the other backends refuse
            raise EnvError(f"{self.env_id}: env is closed")
        if seed is None and self._pending_seed is not None:
            seed = self._pending_seed
        self._pending_seed = None
        seeds: list[int | None] = (
            [None] * self.num_envs if seed is None else list(seed_list(seed, self.num_envs))
        )
        obs = np.empty((self.num_envs, *self.obs_shape), self.obs_dtype)
        for i, env in enumerate(self.envs):
            o, info = env.reset(seed=seeds[i])
            obs[i] = self._obs(o)
            self._lives[i] = info.get("lives", 0)
        self._stats.clear()
        self._steps = 0
        if self._check:
            self._check_finite(obs, None, "reset")
        return obs

    def step(self, actions: np.ndarray) -> StepResult:
        return self.step_active(actions, None)

    def step_active(self, actions: np.ndarray, active: np.ndarray | None) -> StepResult:
        """:meth:`step` for the envs where ``active`` is true only (None: all of them).

        The others do not move: their rows hold zero observations and rewards, no episode
        end, and their running episode statistics stay as they were. Evaluation uses this to
        stop stepping slots whose one episode is over.
        """
        if self._closed:
            raise EnvError(f"{self.env_id}: env is closed")
        a = check_actions(actions, self.num_envs, self.n_actions) + self._action_start
        n = self.num_envs
        stepped = None if active is None else np.asarray(active, dtype=bool).reshape(n)
        rows = range(n) if stepped is None else np.flatnonzero(stepped).tolist()
        obs = np.zeros((n, *self.obs_shape), self.obs_dtype)
        final_obs = np.zeros_like(obs)
        reward = np.zeros(n, np.float32)
        terminated = np.zeros(n, bool)
        truncated = np.zeros(n, bool)
        game_end = np.zeros(n, bool)
        raw_reward = np.zeros(n, np.float64)
        self._steps += 1
        for i in rows:
            env = self.envs[i]
            o, r, te, tr, info = env.step(int(a[i]))
            raw_reward[i] = r
            obs[i] = final_obs[i] = self._obs(o)
            over = te or tr
            if self._life_loss and info.get("lives", 0) < self._lives[i]:
                te = True  # the training episode ends; the game goes on unless it is over
            if over:  # (a life lost on the limit's step ends it as terminated too, as native)
                o, info = env.reset()
                obs[i] = self._obs(o)
                game_end[i] = True
            self._lives[i] = info.get("lives", 0)
            terminated[i], truncated[i] = te, tr
        with np.errstate(over="ignore"):  # a reward past float32's range: inf, refused below
            reward[:] = raw_reward
        # the rewards of every env (an image env's too), as the learner reads them: float32
        self._check_finite(obs if self._check else None, raw_reward, "step", reward32=reward)
        if self._check:
            if game_end.any():
                self._check_finite(final_obs[game_end], None, "step", np.flatnonzero(game_end))
        episode_return, episode_length = self._stats.update(raw_reward, game_end, stepped)
        return StepResult(
            obs, reward, terminated, truncated, final_obs, episode_return, episode_length
        )

    def _check_finite(
        self,
        obs: np.ndarray | None,
        reward: np.ndarray | None,
        where: str,
        rows: np.ndarray | None = None,
        reward32: np.ndarray | None = None,
    ) -> None:
        """EnvError naming the first env with a non-finite observation (None: not checked,
        an integer one) or reward (``reward32``: the same rewards cast to float32, where one
        past its range is inf)."""
        n = len(obs) if obs is not None else len(reward) if reward is not None else 0
        bad_obs = (
            ~np.isfinite(obs.reshape(n, -1)).all(axis=1) if obs is not None else np.zeros(n, bool)
        )
        bad_rew = np.zeros(n, bool)
        for r in (reward, reward32):
            if r is not None:
                bad_rew |= ~np.isfinite(r)
        if not (bad_obs.any() or bad_rew.any()):
            return
        j = int(np.flatnonzero(bad_obs | bad_rew)[0])
        i = self._indices[int(rows[j]) if rows is not None else j]
        what = "observation"
        if reward is not None and bad_rew[j]:
            past = bool(np.isfinite(reward[j]))  # finite as returned, inf as float32
            what = f"reward {reward[j]}" + (" (past float32's range)" if past else "")
        raise EnvError(
            f"{self.env_id}: env {i} returned a non-finite {what} at {where} {self._steps} "
            "(NaN/inf are never passed on)"
        )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        close_all(self.envs)

    def __enter__(self) -> SyncVecEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sync_vec_env(envs: list[Any], **kwargs: Any) -> SyncVecEnv:
    """``SyncVecEnv(envs, **kwargs)``; the envs are closed when it refuses them (an
    observation space it cannot take, say): nothing is left open."""
    try:
        return SyncVecEnv(envs, **kwargs)
    except BaseException:
        close_all(envs)
        raise


def classic_sync_env(
    cfg: EnvConfig,
    num_envs: int,
    *,
    seed: int | None,
    limit: int | None,
    indices: Sequence[int] | None = None,
) -> SyncVecEnv:
    """``num_envs`` envs of ``cfg``'s (non-Atari) gymnasium id in this process, episodes
    capped at ``limit``: images as uint8, vectors as float32 (the ``sync`` backend, and each
    worker of the ``procs`` one, whose envs are ``indices`` of the whole vector)."""
    envs = build_all(
        lambda: make_classic_env(cfg.id, cfg.kwargs, limit, cfg.image_layout), num_envs
    )
    image = is_image_space(envs[0].observation_space)
    dtype = np.uint8 if image else np.float32
    return sync_vec_env(envs, env_id=cfg.id, seed=seed, obs_dtype=dtype, indices=indices)
