"""The ``env`` section: a gymnasium id with discrete actions, its imports (the trust boundary
of recorded ones: :data:`ALLOWED_IMPORTS`), and the Atari and MinAtar settings."""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from a2d_evo.config.bounds import MAX_IMPORTS, MAX_WORKERS, check_bounds, check_range
from a2d_evo.errors import ConfigError

ATARI_PREFIX = "ALE/"


MINATAR_IMPORT = "minatar.gym:register_envs"
ALLOWED_IMPORTS: frozenset[str] = frozenset({MINATAR_IMPORT})
"""Imports honoured when a run or agent folder records them: registration functions of
packages known to register envs and do nothing else. Any other needs ``--env-import``."""


def env_import_flags(imports: Sequence[str]) -> str:
    """`` --env-import SPEC`` for each of ``imports`` off :data:`ALLOWED_IMPORTS`: what a
    command over a recorded config must pass for its imports to run ('' when none)."""
    off = [spec for spec in dict.fromkeys(imports) if spec not in ALLOWED_IMPORTS]
    return "".join(f" --env-import {shlex.quote(spec)}" for spec in off)


_IMPORT = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*(:[A-Za-z_]\w*)?")  # fullmatch: "$" takes "\n"
"""``module.path`` or ``module.path:function``: names only, nothing to evaluate."""


MINATAR_PREFIX = "MinAtar/"
MINATAR_MAX_EPISODE_STEPS = 10_000
"""``env.max_episode_steps`` when a MinAtar id leaves it unset: MinAtar-v1 envs have no time
limit of their own, and an agent that learnt to stall would never end an episode."""


def is_atari(env_id: str) -> bool:
    """True for ALE ids (``ALE/Pong-v5``), which use the CNN space and frame pipeline."""
    return env_id.startswith(ATARI_PREFIX)


@dataclass(frozen=True)
class EnvConfig:
    """The task: a gymnasium id with discrete actions, and the Atari pipeline settings."""

    id: str = "CartPole-v1"
    """gymnasium id; ``ALE/<Game>-v5`` selects the Atari pipeline and the CNN space. Never
    gymnasium's ``module:EnvId`` form (that imports ``module``): name the module in
    ``imports``."""
    imports: tuple[str, ...] = ()
    """Modules that register third-party envs, imported before the env is built: ``module``
    or ``module:function`` (the function is then called with no arguments), e.g.
    ``minatar.gym:register_envs``. Run from the user's own ``--config`` (or ``--env-import``);
    recorded in a run or agent folder, only those on the package's allow-list
    (:data:`ALLOWED_IMPORTS`) run, others need ``--env-import``. At most
    16 (:data:`MAX_IMPORTS`)."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra keyword arguments passed to ``gymnasium.make``, for the env's own constructor:
    ``gymnasium.make``'s own arguments (:data:`MAKE_ARGUMENTS`: ``render_mode``,
    ``max_episode_steps`` ...) are refused, since a2d-evo sets them (a recorded
    ``render_mode: human`` would open windows; the limit is ``env.max_episode_steps``)."""
    backend: Literal["auto", "sync", "procs", "ale_vector", "native"] = "auto"
    """Vector env backend. Other gymnasium envs: ``sync`` (in this process; what ``auto``
    takes) or ``procs`` (vectors of 32 envs or more in ``workers`` processes, smaller ones in
    this process: for envs whose step costs more than a round trip to a worker, such as
    LunarLander's Box2D, in the search's populations; the same results, bit for bit, for envs
    seeded through their own ``np_random``). Atari:
    ``ale_vector`` (ale-py's AtariVectorEnv) or ``native`` (ale-py emulation in worker
    processes + the native preprocessing kernel); ``auto`` takes the one measured fastest (see
    BENCHMARKS.md)."""
    workers: int = 0
    """Worker processes of the ``procs`` and ``native`` backends / threads of ``ale_vector``;
    0 = cores (never more than the envs of a vector). At most 1024."""
    sticky_actions: float = 0.25
    """Probability of repeating the previous action (``repeat_action_probability``)."""
    noop_max: int = 30
    """Up to this many no-op actions after each reset (Atari). At most 10000."""
    frame_skip: int = 4
    """Emulator frames per agent step (Atari), max-pooled over the last two. At most 64."""
    frame_size: int = 84
    """Side of the square grayscale frame (Atari). 8 to 512."""
    stack: int = 4
    """Frames in the observation stack (Atari). At most 64."""
    terminal_on_life_loss: bool = False
    """End training episodes on a lost life (Atari); evaluation always plays full games."""
    image_layout: Literal["auto", "hwc", "chw"] = "auto"
    """How a rank-3 image observation of a non-ALE env is laid out: ``hwc`` (height, width,
    channels), ``chw``, or ``auto``, the rule of :func:`a2d_evo.envs.image.channels_last`
    (square readings win, then channels-last unless the first size is the smaller); the
    networks take ``(C, H, W)`` either way. Set it where the rule cannot tell (6 planes on a
    4 x 5 board). Refused for ALE ids and for envs whose observations are no images."""
    max_episode_steps: int | None = None
    """Truncate episodes after this many agent steps; None keeps the env's own limit
    (MinAtar ids, which have none, get :data:`MINATAR_MAX_EPISODE_STEPS`). At most 10^9. An
    env with no limit of its own needs it: evaluation plays full episodes
    (:func:`a2d_evo.envs.factory.check_episode_bound`)."""

    LATER_FIELDS: ClassVar[tuple[str, ...]] = ("image_layout",)
    """Fields added after runs first recorded their configs: a run's file from before lacks
    them, and still counts as one a2d-evo wrote (:func:`~a2d_evo.config.load_config`)."""

    MAKE_ARGUMENTS: ClassVar[tuple[str, ...]] = (
        "render_mode",
        "max_episode_steps",
        "autoreset",
        "apply_api_compatibility",
        "disable_env_checker",
    )
    """``gymnasium.make``'s own keyword arguments: not env settings, never in ``kwargs``."""

    ATARI_KEYS: ClassVar[tuple[str, ...]] = (
        "sticky_actions",
        "noop_max",
        "frame_skip",
        "frame_size",
        "stack",
        "terminal_on_life_loss",
    )
    """Settings of the ALE pipeline only: an agent made for another env does not record them."""

    def games(self) -> str:
        """Which games a seed gives under this backend: ``ale_vector`` where ale-py's vector
        env plays others than the reference for the same seed (an ALE id with no-ops or sticky
        actions: it draws its own no-op counts and remaps about half the ALE seeds), else
        ``reference`` (every other backend; ``auto`` never takes ale_vector there)."""
        own = self.noop_max > 0 or self.sticky_actions > 0
        if self.backend == "ale_vector" and is_atari(self.id) and own:
            return "ale_vector"
        return "reference"

    def __post_init__(self) -> None:
        if self.max_episode_steps is None and self.id.startswith(MINATAR_PREFIX):
            object.__setattr__(self, "max_episode_steps", MINATAR_MAX_EPISODE_STEPS)
        check_env_id(self.id)
        if len(self.imports) > MAX_IMPORTS:
            raise ConfigError(
                f"env.imports: at most {MAX_IMPORTS} entries, got {len(self.imports)}"
            )
        for i, spec in enumerate(self.imports):
            split_import(spec, f"env.imports[{i}]")
        taken = [k for k in self.MAKE_ARGUMENTS if k in self.kwargs]
        if taken:
            raise ConfigError(
                f"env.kwargs: {', '.join(taken)} {'is' if len(taken) == 1 else 'are'} "
                "gymnasium.make's own argument, set by a2d-evo (it never renders; the episode "
                "limit is env.max_episode_steps): remove it"
            )
        if self.backend == "procs" and self.atari:
            raise ConfigError(
                f"env.backend: 'procs' is for non-Atari ids, and {self.id} is an ALE id; use "
                "'auto', 'native' or 'ale_vector' (each steps the emulators in parallel)"
            )
        if self.backend in ("ale_vector", "native") and not self.atari:
            # refused here, before a run folder records it: backend is a runtime key, so a
            # corrected command would never rewrite it, and every later command would fail
            raise ConfigError(
                f"env.backend: {self.backend!r} is for Atari ids (ALE/...) only, and "
                f"{self.id} is not one; use 'auto', 'sync' or 'procs'"
            )
        if self.image_layout != "auto" and self.atari:  # ALE frames are (stack, H, W) already
            raise ConfigError(
                f"env.image_layout: {self.image_layout!r} is for non-ALE image envs; ALE "
                "frames are stacked channels-first by the pipeline: remove it"
            )
        if self.kwargs and self.atari:  # refused here, before any run folder is written
            raise ConfigError(
                f"env.kwargs: {_short(str(self.kwargs))} are not supported for Atari ids (the "
                "pipeline is set by the env.* fields, e.g. env.sticky_actions): remove them"
            )
        check_range("env.sticky_actions", self.sticky_actions, 0.0, 1.0)
        check_bounds("env.noop_max", self.noop_max, 0, 10_000)
        check_bounds("env.frame_skip", self.frame_skip, 1, 64)
        check_bounds("env.frame_size", self.frame_size, 8, 512)
        check_bounds("env.stack", self.stack, 1, 64)
        check_bounds("env.workers", self.workers, 0, MAX_WORKERS)
        if self.max_episode_steps is not None:
            check_bounds("env.max_episode_steps", self.max_episode_steps, 1, 10**9)
        if not self.atari:  # read by the ALE pipeline alone: elsewhere a silent no-op
            defaults = EnvConfig.__dataclass_fields__
            moved = [k for k in self.ATARI_KEYS if getattr(self, k) != defaults[k].default]
            if moved:
                raise ConfigError(f"env: {ale_keys_refused(moved, self.id)}")

    @property
    def atari(self) -> bool:
        return is_atari(self.id)


def ale_keys_refused(keys: Sequence[str], env_id: str) -> str:
    """Why the ALE pipeline keys ``keys`` (:attr:`EnvConfig.ATARI_KEYS`) are refused for the
    non-ALE id ``env_id``: changed ones here, ones a user's file names at all at load."""
    one = len(keys) == 1
    return (
        f"{', '.join(f'env.{k}' for k in keys)} {'applies' if one else 'apply'} to Atari ids "
        f"(ALE/...) only, and {env_id} is not one: remove {'it' if one else 'them'} (an env's "
        "own settings go in env.kwargs, e.g. MinAtar's sticky_action_prob)"
    )


def check_env_id(env_id: str) -> None:
    """Refuse an env id that would make gymnasium import a module (``module:EnvId``)."""
    if not env_id.strip():
        raise ConfigError("env.id: must not be empty (e.g. CartPole-v1)")
    if len(env_id) > 200:
        raise ConfigError(f"env.id: at most 200 characters, got {len(env_id)}")
    if ":" in env_id:
        module, _, bare = env_id.rpartition(":")
        raise ConfigError(
            f"env.id: {_short(env_id)!r} uses gymnasium's module:EnvId form, which imports a "
            f"module; set env.id: {_short(bare)!r} and name the module in env.imports "
            f"(or pass --env-import {_short(module)})"
        )


def split_import(spec: str, key: str = "env.imports") -> tuple[str, str | None]:
    """``module`` or ``module:function`` -> (module, function or None); ConfigError otherwise."""
    if not isinstance(spec, str) or not _IMPORT.fullmatch(spec) or len(spec) > 200:
        raise ConfigError(
            f"{key}: expected a module path or module:function (e.g. minatar.gym:register_envs), "
            f"got {_short(repr(spec))}"
        )
    module, _, function = spec.partition(":")
    return module, function or None


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
