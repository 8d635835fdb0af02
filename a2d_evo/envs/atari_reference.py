"""The reference Atari pipeline, which every Atari backend is configured to match.

Reference (DESIGN.md): gymnasium's ``AtariPreprocessing`` (no-ops 1..noop_max, frame skip, max
of the last two frames, grayscale, INTER_AREA resize, no FIRE reset) + ``FrameStackObservation``
(padding repeats the reset frame) on ``ALE/<Game>-v5`` built with ``frameskip=1``. Backends:

``sync``       that reference itself, in-process (slow; the yardstick of the parity tests);
``ale_vector`` ale-py's C++ ``AtariVectorEnv`` (threads), adapted to :class:`StepResult`;
``native``     ALE emulation in worker processes writing the last two raw frames of each env
               into shared memory, then one batched native call (``a2d_evo.ops.push_frames``)
               that max-pools, area-resizes and pushes them into the frame stack
               (:mod:`a2d_evo.envs.native_atari`).

Life loss (``terminal_on_life_loss`` when training) ends the *training* episode without
restarting the game (like envpool's and ale-py's ``life_loss_info``, and DQN's EpisodicLife);
``episode_return`` is reported per whole game. docs/atari_pipeline.md lists every flag.
"""

from __future__ import annotations

from typing import Any

from a2d_evo.config import EnvConfig
from a2d_evo.envs.ale import rom_id


def reference_env(cfg: EnvConfig, *, max_episode_steps: int | None = None) -> Any:
    """One gymnasium env of the reference pipeline (full games; life loss is handled by
    :class:`SyncVecEnv`, which keeps the game running as the other backends do)."""
    import ale_py
    import gymnasium as gym
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation, TimeLimit

    gym.register_envs(ale_py)
    rom_id(cfg.id)
    kwargs: dict[str, Any] = {
        "frameskip": 1,
        "repeat_action_probability": cfg.sticky_actions,
        "full_action_space": False,
        "disable_env_checker": True,
    }
    if max_episode_steps is not None:  # our agent-step limit replaces v5's frame limit
        kwargs["max_num_frames_per_episode"] = 0
    env = gym.make(cfg.id, **kwargs)
    env = AtariPreprocessing(
        env,
        noop_max=cfg.noop_max,
        frame_skip=cfg.frame_skip,
        screen_size=cfg.frame_size,
        terminal_on_life_loss=False,
        grayscale_obs=True,
    )
    env = FrameStackObservation(env, cfg.stack)
    if max_episode_steps is not None:
        env = TimeLimit(env, max_episode_steps)
    return env
