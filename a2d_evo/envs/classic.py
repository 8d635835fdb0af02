"""Any registered gymnasium env with discrete actions: construction and obs layout.

Vector observations are flattened to float32; rank-3 uint8/bool images are wrapped to
``(C, H, W)`` uint8 (:mod:`a2d_evo.envs.image`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from a2d_evo.config import EnvConfig
from a2d_evo.envs.fresh_reset import fresh_reset
from a2d_evo.envs.image import is_image_space, wrap_image_env
from a2d_evo.errors import EnvError


def make_classic_env(
    env_id: str, kwargs: dict[str, Any], limit: int | None, layout: str = "auto"
) -> Any:
    """One gymnasium env with discrete actions (EnvError naming the id otherwise); rank-3
    images laid out as ``layout`` (``env.image_layout``) come as ``(C, H, W)``."""
    import gymnasium as gym  # here: reading a config or a run folder never loads gymnasium

    if ":" in env_id:  # gymnasium would import the module before the colon: never from here
        raise EnvError(
            f"env id {env_id!r}: the module:EnvId form is refused; name the module in env.imports"
        )
    extra: dict[str, Any] = {"disable_env_checker": True}
    if limit is not None:
        extra["max_episode_steps"] = limit
    try:
        env = gym.make(env_id, **{**kwargs, **extra})
    except gym.error.UnregisteredEnv as exc:
        raise EnvError(f"unknown environment id {env_id!r}: {exc}") from None
    except TypeError as exc:
        raise EnvError(
            f"{env_id}: env.kwargs {kwargs} rejected: {exc}{_kwargs_hint(env_id, kwargs)}"
        ) from None
    except gym.error.Error as exc:
        raise EnvError(f"{env_id}: cannot be built: {exc}") from None
    except ImportError as exc:  # the registered entry point's package is missing
        raise EnvError(f"{env_id}: cannot be built: {type(exc).__name__}: {exc}") from None
    except Exception as exc:  # an env's own checks (LunarLander's gravity: AssertionError)
        given = f" with env.kwargs {kwargs}" if kwargs else ""
        raise EnvError(f"{env_id}: cannot be built{given}: {type(exc).__name__}: {exc}") from None
    space = env.action_space
    if not isinstance(space, gym.spaces.Discrete):
        env.close()
        if isinstance(space, gym.spaces.Box):
            raise EnvError(
                f"{env_id}: continuous action spaces are not supported (discrete only); got {space}"
            )
        raise EnvError(f"{env_id}: action space {space} is not supported (discrete only)")
    env = fresh_reset(env)  # a seeded reset plays the same episode whatever came before
    if is_image_space(env.observation_space):
        return wrap_image_env(env, layout)
    if layout != "auto":
        space = env.observation_space
        env.close()
        raise EnvError(
            f"env.image_layout: {layout!r} is for rank-3 uint8 or bool image observations; "
            f"{env_id} gives {space}: remove it"
        )
    return env


def _kwargs_hint(env_id: str, kwargs: dict[str, Any]) -> str:
    """``; <env> takes: a, b (did you mean 'b' for 'bb'?)`` from the signature of the env's
    registered entry point, for keys it does not take; '' where it cannot be read (a factory
    taking ``**kwargs``, say)."""
    import difflib
    import inspect

    import gymnasium as gym  # here, as above

    try:
        entry = gym.spec(env_id).entry_point
        creator: Any = (
            gym.envs.registration.load_env_creator(entry) if isinstance(entry, str) else entry
        )
        params = inspect.signature(creator).parameters.values()
    except Exception:  # foreign code: any failure only loses the hint
        return ""
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return ""
    names = [  # gymnasium.make's own arguments (render_mode) are refused in env.kwargs
        p.name
        for p in params
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.name not in EnvConfig.MAKE_ARGUMENTS
    ]
    unknown = [k for k in kwargs if k not in names]
    if not unknown:
        return ""
    close = {k: difflib.get_close_matches(str(k), names, n=1, cutoff=0.6) for k in unknown}
    guesses = [f"{m[0]!r} for {k!r}" for k, m in close.items() if m]
    mean = f" (did you mean {', '.join(guesses)}?)" if guesses else ""
    return f"; {env_id} takes: {', '.join(names) or 'no keyword arguments'}{mean}"


def obs_layout(env_id: str, space: Any) -> tuple[tuple[int, ...], Callable[[Any], Any]]:
    """Flat observation shape and the function mapping one raw observation to it."""
    import gymnasium as gym  # here, as above

    if isinstance(space, gym.spaces.Box):
        shape = tuple(int(d) for d in space.shape)
        if int(np.prod(shape)) == 0:  # np.prod(()) is 1: a scalar Box holds one value
            raise EnvError(f"{env_id}: observation space {space} holds no values")
        if len(shape) <= 1:
            return (int(np.prod(shape)),), np.ravel
        if is_image_space(space):  # (C, H, W) images: ALE stacks, wrapped image envs
            return shape, np.asarray
        return (int(np.prod(shape)),), np.ravel
    if isinstance(space, gym.spaces.Discrete):
        n, start = int(space.n), int(space.start)
        eye = np.eye(n, dtype=np.float32)
        return (n,), lambda o: eye[int(o) - start]
    raise EnvError(
        f"{env_id}: observation space {space} is not supported (Box or Discrete only); register "
        "an id that wraps the env in gymnasium's FlattenObservation, in a module env.imports "
        "names (docs/spaces.md, Vector observations)"
    )
