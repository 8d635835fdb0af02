"""Environments: one vector-env contract; other gymnasium envs in this process or in worker
processes (``procs``), and three Atari backends.

The door: :func:`make_vec_env` builds the seeded vector env of a config and :func:`env_spec`
gives its observation shape, dtype and action count; :mod:`a2d_evo.envs.vector` holds the
contract (:class:`VecEnv`, :class:`StepResult`) that every backend implements.
"""

from a2d_evo.envs.factory import check_episode_bound, env_spec, make_vec_env, solved_threshold
from a2d_evo.envs.vector import EnvSpec, StepResult, SyncVecEnv, VecEnv, seed_list

__all__ = [
    "EnvSpec",
    "StepResult",
    "SyncVecEnv",
    "VecEnv",
    "check_episode_bound",
    "env_spec",
    "make_vec_env",
    "seed_list",
    "solved_threshold",
]
