"""A seeded reset starts the same episode whatever the env played before.

Common random numbers rest on it: every candidate of a generation plays the same seeds, in
envs that the population evaluator keeps from one call to the next, and a subnet scored in the
population must play what its extracted agent plays in a fresh env. MinAtar breaks it: its
``Environment`` keeps ``last_action`` across ``reset()`` and, with sticky actions, plays it on
an episode's first step with probability ``sticky_action_prob`` (0.1): the previous episode's
last action leaks into the next one (measured: 22 of 200 seeds played differently after
another history). :class:`FreshStickyAction` sets it back to 0, a fresh env's value, at every
reset (training included, so that training and evaluation see one dynamics; ``docs/spaces.md``).
"""

from __future__ import annotations

import functools
from typing import Any


def carries_sticky_action(env: Any) -> bool:
    """A MinAtar gymnasium env (``minatar.gym.BaseEnv``): its ``game`` has ``last_action``."""
    game = getattr(env.unwrapped, "game", None)
    return hasattr(game, "last_action") and hasattr(game, "sticky_action_prob")


@functools.cache  # built once, on first use: gymnasium loads only then
def _wrapper_class() -> type:
    import gymnasium as gym  # here: reading a config or a run folder never loads gymnasium

    class FreshStickyAction(gym.Wrapper):
        """Resets MinAtar's ``last_action`` to 0 before every reset (see the module doc)."""

        def reset(self, **kwargs: Any) -> Any:
            base: Any = self.env.unwrapped
            base.game.last_action = 0
            return self.env.reset(**kwargs)

    return FreshStickyAction


def fresh_reset(env: Any) -> Any:
    """``env``, wrapped when a reset would otherwise carry state from the last episode."""
    if not carries_sticky_action(env):
        return env
    return _wrapper_class()(env)
