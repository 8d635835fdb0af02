"""Building the vector env of a config: any gymnasium env (vectors or images), or one of the
Atari backends."""

from __future__ import annotations

import functools
import json
from typing import Any

import numpy as np

from a2d_evo.config import EnvConfig, replace
from a2d_evo.envs.ale import V5_MAX_FRAMES, num_actions, rom_id, worker_cores
from a2d_evo.envs.ale_vector import AleVectorEnv
from a2d_evo.envs.atari_reference import reference_env
from a2d_evo.envs.classic import make_classic_env, obs_layout
from a2d_evo.envs.image import ALE_OBS_SCALE, is_image_space
from a2d_evo.envs.imports import prepare_env
from a2d_evo.envs.native_atari import NativeAtariVecEnv
from a2d_evo.envs.proc_vector import ProcVecEnv
from a2d_evo.envs.vector import EnvSpec, VecEnv, build_all, classic_sync_env, sync_vec_env
from a2d_evo.errors import ConfigError, EnvError
from a2d_evo.ops import backend_name

__all__ = [
    "AUTO_BACKEND",
    "PROCS_MIN_ENVS",
    "auto_backend",
    "check_episode_bound",
    "env_spec",
    "make_atari_vec_env",
    "make_vec_env",
]

# backend: auto -> native. `python benchmarks/bench_envs.py` (Pong, 8 envs, 2 workers/threads,
# 2 cores, random actions, all envs timed in interleaved blocks of 100 steps on a shared machine
# under load 7-12): native 1106 steps/s, ale-py AtariVectorEnv used directly 852, our ale_vector
# 762, gymnasium AsyncVectorEnv 522: native 1.30x AtariVectorEnv (1.13x in an earlier run).
# Its workers only emulate (frame skip inside, frames written straight into shared memory) and
# one kernel call preprocesses every env, while AtariVectorEnv's threads also resize with OpenCV.
# Without the compiled kernel, auto takes ale_vector or the reference (see auto_backend).
AUTO_BACKEND = "native"

# backend: procs steps vectors of this many envs or more in worker processes, smaller ones in
# this process: a step's round trip through the workers costs about 0.5 ms of Python on either
# side. `python benchmarks/bench_classic_envs.py` (LunarLander-v3, 2 workers, 2 cores, random
# actions; BENCHMARKS.md): procs against sync 0.98x at 16 envs, 1.23x at 32, 1.43x at 96,
# 1.69x at 200 (the search's generations and final re-scoring).
PROCS_MIN_ENVS = 32


def make_vec_env(
    cfg: EnvConfig,
    num_envs: int,
    *,
    seed: int,
    training: bool = True,
    max_episode_steps: int | None = None,
) -> VecEnv:
    """Build ``num_envs`` seeded envs of ``cfg``.

    ``seed`` seeds the first :meth:`VecEnv.reset` that is called without a seed (env i gets
    ``seed + i``). ``training=False`` plays full games (no ``terminal_on_life_loss``).
    ``cfg.max_episode_steps`` (agent steps) replaces the env's own limit, and
    ``max_episode_steps`` caps episodes below that (the search's ``search.max_episode_steps``):
    it never lengthens them (on ALE ids the own limit is v5's 108,000 frames over
    ``frame_skip``, and either one replaces it, ``docs/atari_pipeline.md``; v5's frame limit
    also counts the reset's no-ops, so an ALE episode capped at 27,000 steps or more may run
    up to ``noop_max / frame_skip`` steps, 7, past where v5 stops it). Other envs step
    in this process, or under ``backend: procs`` in ``workers`` processes when the vector
    has at least :data:`PROCS_MIN_ENVS` envs and there are two workers or more. ``cfg.imports``
    run first (see :mod:`a2d_evo.envs.imports` for who may name them) and the id must then be
    registered. Evaluation envs (``training=False``) must end their episodes: with no limit
    at all :func:`check_episode_bound` refuses them.
    """
    prepare_env(cfg)
    if num_envs < 1:
        raise EnvError(f"{cfg.id}: num_envs must be >= 1, got {num_envs}")
    limit = cfg.max_episode_steps
    if max_episode_steps is not None:
        own = own_episode_limit(cfg)
        limit = max_episode_steps if own is None else min(max_episode_steps, own)
    if limit is not None and limit < 1:
        raise EnvError(f"{cfg.id}: max_episode_steps must be >= 1, got {limit}")
    if not training and limit is None:
        check_episode_bound(cfg)
    if cfg.atari:
        return make_atari_vec_env(
            cfg, num_envs, seed=seed, training=training, max_episode_steps=limit
        )
    workers = min(cfg.workers or worker_cores(), num_envs)
    if cfg.backend == "procs" and workers > 1 and num_envs >= PROCS_MIN_ENVS:
        return ProcVecEnv(cfg, num_envs, seed=seed, limit=limit, workers=workers)
    return classic_sync_env(cfg, num_envs, seed=seed, limit=limit)


def _registered(env_id: str) -> Any:
    """gymnasium's ``EnvSpec`` of ``env_id``, None when it is not registered."""
    import gymnasium as gym  # here: reading a config or a run folder never loads gymnasium

    try:
        return gym.spec(env_id)
    except gym.error.Error:
        return None


def own_episode_limit(cfg: EnvConfig) -> int | None:
    """The longest episode of ``cfg`` in agent steps without a search's cap:
    ``env.max_episode_steps``, else the env's own (v5's frame limit over ``frame_skip`` on ALE
    ids, gymnasium's registered one otherwise); None for an env without any."""
    if cfg.max_episode_steps is not None:
        return cfg.max_episode_steps
    return V5_MAX_FRAMES // cfg.frame_skip if cfg.atari else registered_limit(cfg.id)


def registered_limit(env_id: str) -> int | None:
    """The episode limit gymnasium registered for ``env_id`` (None: none, or not registered)."""
    spec = _registered(env_id)
    return None if spec is None else spec.max_episode_steps


def solved_threshold(cfg: EnvConfig) -> float | None:
    """The reward threshold gymnasium registered for ``cfg``'s id (LunarLander-v3: 200), where
    ``cfg`` plays the task as registered: None for an id without one (ALE, MinAtar), an
    unregistered id, ``env.kwargs`` (another task) or a step cap below the registered one."""
    if cfg.atari or cfg.kwargs:
        return None
    prepare_env(cfg)
    spec = _registered(cfg.id)
    if spec is None:
        return None
    limit = spec.max_episode_steps
    if cfg.max_episode_steps is not None and (limit is None or cfg.max_episode_steps < limit):
        return None
    threshold = spec.reward_threshold
    return float(threshold) if threshold is not None else None


def check_episode_bound(cfg: EnvConfig) -> None:
    """ConfigError unless episodes of ``cfg``'s env end within a known number of steps: ALE
    ids have v5's frame limit, other ids a registered limit or ``env.max_episode_steps``
    (MinAtar's default). Without one, an evaluation episode of an agent that never reaches a
    terminal state would run forever: the teacher's evaluation and the front's final
    re-scoring play full episodes. Stages that evaluate check it before they bind the run."""
    if cfg.atari or cfg.max_episode_steps is not None:
        return
    prepare_env(cfg)
    if registered_limit(cfg.id) is None:
        raise ConfigError(
            f"env.max_episode_steps: {cfg.id} registers no episode limit, so an evaluation "
            "episode of an agent that never ends the game would never end; set "
            "env.max_episode_steps (agent steps per episode)"
        )


@functools.cache
def _spec_cached(env_id: str, kwargs_json: str, size: int, stack: int, layout: str) -> EnvSpec:
    return _spec(env_id, json.loads(kwargs_json), size, stack, layout)


def _spec(env_id: str, kwargs: dict[str, Any], size: int, stack: int, layout: str) -> EnvSpec:
    if env_id.startswith("ALE/"):
        n = num_actions(env_id)
        return EnvSpec((stack, size, size), np.dtype(np.uint8), n, True, ALE_OBS_SCALE)
    env = make_classic_env(env_id, kwargs, None, layout)
    try:
        shape, _ = obs_layout(env_id, env.observation_space)
        n = int(env.action_space.n)
        if is_image_space(env.observation_space):
            raw = (tuple(env.raw_shape), bool(env.channels_last))
            return EnvSpec(shape, np.dtype(np.uint8), n, False, float(env.obs_scale), raw)
        return EnvSpec(shape, np.dtype(np.float32), n, False)
    finally:
        env.close()


def env_spec(cfg: EnvConfig) -> EnvSpec:
    """Observation shape/dtype, action count and the network's input scale of ``cfg``'s env
    (builds at most one, cached): ALE frames and rank-3 image envs give (C, H, W) uint8."""
    prepare_env(cfg)
    try:
        kwargs_json = json.dumps(cfg.kwargs, sort_keys=True)
    except (TypeError, ValueError):
        kwargs_json = None
    if kwargs_json is None or json.loads(kwargs_json) != cfg.kwargs:
        # kwargs JSON cannot carry as they are (int keys, dates...): built every time, as given
        return _spec(cfg.id, dict(cfg.kwargs), cfg.frame_size, cfg.stack, cfg.image_layout)
    return _spec_cached(cfg.id, kwargs_json, cfg.frame_size, cfg.stack, cfg.image_layout)


def make_atari_vec_env(
    cfg: EnvConfig, num_envs: int, *, seed: int, training: bool, max_episode_steps: int | None
) -> Any:
    """The Atari vector env of ``cfg.backend`` (``auto`` = :data:`AUTO_BACKEND`)."""
    rom = rom_id(cfg.id)
    life_loss = training and cfg.terminal_on_life_loss
    backend = auto_backend(cfg) if cfg.backend == "auto" else cfg.backend
    if backend == "sync":
        envs = build_all(lambda: reference_env(cfg, max_episode_steps=max_episode_steps), num_envs)
        return sync_vec_env(envs, env_id=cfg.id, seed=seed, obs_dtype=np.uint8, life_loss=life_loss)
    if backend == "ale_vector":
        return AleVectorEnv(
            cfg, rom, num_envs, seed=seed, life_loss=life_loss, limit=max_episode_steps
        )
    if backend == "native":
        return NativeAtariVecEnv(
            cfg, rom, num_envs, seed=seed, life_loss=life_loss, limit=max_episode_steps
        )
    raise EnvError(f"{cfg.id}: unknown backend {cfg.backend!r}")


def auto_backend(cfg: EnvConfig) -> str:
    """:data:`AUTO_BACKEND`, unless that is ``native`` and the native kernel is not built (its
    numpy twin is far slower than ale-py's C++ preprocessing): then ``ale_vector`` where it
    plays the reference's games (no no-ops, no sticky actions), else ``sync`` (the gymnasium
    reference: slower, the same games), so that ``auto`` gives one game per seed on every
    machine (:meth:`EnvConfig.games`)."""
    if AUTO_BACKEND != "native" or backend_name("push_frames") == "native":
        return AUTO_BACKEND
    return "ale_vector" if replace(cfg, backend="ale_vector").games() == "reference" else "sync"
