"""The ``ale_vector`` Atari backend: ale-py's C++ ``AtariVectorEnv`` behind :class:`VecEnv`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from a2d_evo.config import EnvConfig
from a2d_evo.envs.ale import V5_MAX_FRAMES, derived_seeds, num_actions, worker_cores
from a2d_evo.envs.vector import EpisodeStats, StepResult, check_actions, seed_list
from a2d_evo.errors import EnvError


def _fix_padding(stack: np.ndarray, rows: np.ndarray, count: np.ndarray) -> None:
    """Replace the zero padding of young stacks by their oldest real frame (reference padding):
    ``count`` frames pushed since the stack was reset; slot ``k - 1 - count`` holds the reset
    frame and the slots before it are zeros."""
    k = stack.shape[1]
    for i, c in zip(rows.tolist(), count.tolist(), strict=True):
        if c < k - 1:
            stack[i, : k - 1 - c] = stack[i, k - 1 - c]


class AleVectorEnv:
    """ale-py's ``AtariVectorEnv`` configured as the reference pipeline.

    Adaptations: same-step autoreset (its ``final_obs`` info); the frame stack's zero padding
    after a reset is replaced by the reset frame (reference padding); life loss via
    ``life_loss_info`` (its ``episodic_life`` restarts the game); an agent-step limit by partial
    resets. Seeding: env i gets the ALE seed gymnasium would derive from its seed when that is
    a non-negative int32 (so with ``noop_max=0`` its games equal the reference's); its no-ops
    come from its own mt19937, so with no-ops the games differ from the reference's. Its v5
    limit of 108,000 frames is counted from after the reset's no-ops (ale-py's own counter),
    up to 29 frames later than the reference's.
    """

    def __init__(
        self,
        cfg: EnvConfig,
        rom: str,
        num_envs: int,
        *,
        seed: int | None,
        life_loss: bool,
        limit: int | None,
    ) -> None:
        from ale_py.vector_env import AtariVectorEnv
        from gymnasium.vector import AutoresetMode

        threads = min(cfg.workers or worker_cores(), num_envs)
        self.env_id = cfg.id
        self.num_envs = num_envs
        self.obs_shape = (cfg.stack, cfg.frame_size, cfg.frame_size)
        self.obs_dtype = np.dtype(np.uint8)
        self._env = AtariVectorEnv(
            rom,
            num_envs,
            num_threads=threads,
            max_num_frames_per_episode=V5_MAX_FRAMES if limit is None else 10**9,
            repeat_action_probability=cfg.sticky_actions,
            full_action_space=False,
            autoreset_mode=AutoresetMode.SAME_STEP,
            img_height=cfg.frame_size,
            img_width=cfg.frame_size,
            grayscale=True,
            stack_num=cfg.stack,
            frameskip=cfg.frame_skip,
            maxpool=cfg.frame_skip > 1,  # its max-pool accumulates when every frame is captured
            noop_max=cfg.noop_max,
            episodic_life=False,
            life_loss_info=life_loss,
            reward_clipping=False,
            use_fire_reset=False,
        )
        self.n_actions = num_actions(cfg.id)
        self._life_loss = life_loss
        self._limit = limit
        self._count = np.zeros(num_envs, np.int64)  # frames pushed since each stack's reset
        self._steps = np.zeros(num_envs, np.int64)  # agent steps of each game
        self._frames = np.zeros(num_envs, np.int64)  # each game's frame count at the last step
        self._stats = EpisodeStats(num_envs)
        self._pending_seed = seed
        self._closed = False

    def reset(self, seed: int | Sequence[int] | None = None) -> np.ndarray:
        if self._closed:
            raise EnvError(f"{self.env_id}: env is closed")
        if seed is None and self._pending_seed is not None:
            seed = self._pending_seed
        self._pending_seed = None
        ale_seeds = None
        if seed is not None:
            ale_seeds = np.array(
                [derived_seeds(s)[1] & 0x7FFFFFFF for s in seed_list(seed, self.num_envs)],
                dtype=np.int64,
            )
        obs, info = self._env.reset(seed=ale_seeds)
        everyone = np.arange(self.num_envs)
        self._count[:] = 0
        _fix_padding(obs, everyone, self._count)
        self._steps[:] = 0
        self._frames[:] = info["episode_frame_number"]
        self._stats.clear()
        return obs

    def step(self, actions: np.ndarray) -> StepResult:
        if self._closed:  # ale-py's vector env still steps after close()
            raise EnvError(f"{self.env_id}: env is closed")
        a = check_actions(actions, self.num_envs, self.n_actions)
        obs, rew, terminated, truncated, info = self._env.step(a)
        reward = rew.astype(np.float32)
        terminated = terminated.astype(bool)
        truncated = truncated.astype(bool)
        # a game over restarts the game's frame count (same-step autoreset); a lost life does
        # not. Lives cannot tell: right after a reset some games (Amidar) report fewer lives
        # than their last life had, which read as one more lost life merged two games.
        frames = info["episode_frame_number"].astype(np.int64)
        new_game = frames < self._frames
        self._frames = frames
        life_only = (
            terminated & ~truncated & ~new_game
            if self._life_loss
            else np.zeros(self.num_envs, bool)
        )
        reset = (terminated | truncated) & ~life_only
        self._steps += 1
        self._count += 1
        if self._limit is not None:
            over = ~reset & (self._steps >= self._limit)
            if over.any():  # truncate by agent steps: a partial reset of those envs
                final = obs.copy()
                truncated |= over
                obs, fresh = self._env.reset(options={"reset_mask": over})
                obs = obs.copy()
                self._frames[over] = fresh["episode_frame_number"][over]
                self._splice_final(info, final, over)
                reset |= over
        rows = np.flatnonzero(reset)
        final_rows = info["final_obs"][rows] if rows.size else obs[:0]
        _fix_padding(final_rows, np.arange(rows.size), self._count[rows])
        self._count[rows] = 0
        self._steps[rows] = 0
        young = np.flatnonzero(self._count < obs.shape[1] - 1)
        _fix_padding(obs, young, self._count[young])
        final_obs = obs.copy()
        final_obs[rows] = final_rows
        episode_return, episode_length = self._stats.update(reward, reset)
        return StepResult(
            obs, reward, terminated, truncated, final_obs, episode_return, episode_length
        )

    @staticmethod
    def _splice_final(info: dict[str, Any], final: np.ndarray, rows: np.ndarray) -> None:
        if "final_obs" not in info:
            info["final_obs"] = np.empty_like(final)
        info["final_obs"][rows] = final[rows]

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._env.close()
