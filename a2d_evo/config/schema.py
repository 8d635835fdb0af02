"""The config schema: one frozen, documented dataclass per section of a run's YAML.

Each section checks its own ranges in ``__post_init__`` and raises :class:`ConfigError`
naming the dotted key, so a value built in code is as checked as one read from a file.
Reading YAML into these types is :mod:`a2d_evo.config.loader`'s job.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar

from a2d_evo.errors import ConfigError
from a2d_evo.formats import CONFIG_FORMAT_VERSION

T = TypeVar("T")

ATARI_PREFIX = "ALE/"

# ----------------------------------------------------------------------------- upper bounds
# Generous for real use (10-100x the shipped configs), small enough that a typo such as
# ``ppo.num_envs=100000000`` is a one-line ConfigError instead of minutes of swapping. What the
# product of several of them would allocate is checked later, against the machine's memory,
# by :func:`a2d_evo.nets.cost.check_training_memory`.
MAX_ENVS = 4096
"""Most parallel environments of a rollout or an evaluation wave (``ppo.num_envs``,
``eval.num_envs``)."""
MAX_NUM_STEPS = 65_536
"""Most steps per environment per rollout (``ppo.num_steps``)."""
MAX_WIDTH = 16_384
"""Most units or channels of one layer (``space.*`` widths, ``teacher.arch``)."""
MAX_LAYERS = 64
"""Most hidden layers of an MLP (``space.depths``, ``teacher.arch.widths``) or extra convs."""
MAX_EPISODES = 100_000
"""Most episodes of one evaluation (``eval.episodes``, ``teacher.eval_episodes``, ...)."""
MAX_EVAL_SLOTS = 65_536
"""Most env slots a search generation plays at once (``search.pop`` offspring, as many
survivors and the anchors, times ``search.episodes``), and
``search.final_episodes`` (the final re-scoring plays at least one member on all of them)."""
MAX_POP = 4096
"""Largest NSGA-II population (``search.pop``)."""
MAX_GENS = 100_000
"""Most generations (``search.gens``)."""
MAX_ANCHORS = 16
"""Most anchor archs of a search (``search.anchors``)."""
MAX_SEED = 2**32 - 1
"""Largest seed, of a run (``seed``) and of an episode: one 32-bit word. numpy's
``SeedSequence`` splits a larger int into words, so the seed lists of two runs could alias
(run seed 5's generation 18,975 and run seed 26,637,610,508,091,397's first halving round drew
the same episodes), and MinAtar seeds a legacy ``RandomState``, which takes no more."""
MAX_TOTAL_STEPS = 10**12
"""Most environment steps of one training stage (``*.total_steps``)."""
MAX_WORKERS = 1024
"""Most worker processes, threads or Ray actors (``env.workers``, ``torch_threads``, ...)."""
MAX_IMPORTS = 16
"""Most entries of ``env.imports``."""
MAX_LR = 10.0
"""The largest learning rate taken (Adam): 1e300 passed, and a review traced NaN losses from it
to after the stage folder was written."""
MAX_COEF = 1e4
"""The largest distillation coefficient (``distill.alpha``, ``beta``, ``vf_coef``)."""
MAX_TIMEOUT_S = 1e9
"""The longest timeout taken (about 31 years; None is none): Ray turns a timeout into
milliseconds in a C int64, which 1e300 overflowed at the first wait."""

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
        _check_range("env.sticky_actions", self.sticky_actions, 0.0, 1.0)
        _check_bounds("env.noop_max", self.noop_max, 0, 10_000)
        _check_bounds("env.frame_skip", self.frame_skip, 1, 64)
        _check_bounds("env.frame_size", self.frame_size, 8, 512)
        _check_bounds("env.stack", self.stack, 1, 64)
        _check_bounds("env.workers", self.workers, 0, MAX_WORKERS)
        if self.max_episode_steps is not None:
            _check_bounds("env.max_episode_steps", self.max_episode_steps, 1, 10**9)
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


@dataclass(frozen=True)
class ConvLayerConfig:
    """One conv layer of a declared CNN space (an entry of ``space.conv``); checked by
    :class:`SpaceConfig`, which names the layer in its errors (``space.conv[2].kernels``)."""

    widths: tuple[int, ...] = ()
    """Output-channel choices: strictly increasing, at most 16384 (:data:`MAX_WIDTH`)."""
    kernel: int | None = None
    """Fixed square kernel size (1 to 15). Give ``kernel`` or ``kernels``, not both."""
    kernels: tuple[int, ...] = ()
    """Elastic kernel choices (odd, strictly increasing, at most 15) of a same-padded stride-1
    layer; a smaller kernel is the centre crop of the largest. One entry = a fixed kernel."""
    stride: int = 1
    """Stride (1 to 8)."""
    padding: Literal["valid", "same"] = "valid"
    """``valid``: none; ``same``: ``k // 2`` zeros each side (odd kernels only), so a stride-1
    layer keeps its input's height and width."""
    optional: bool = False
    """The search may skip the layer. Only same-padded stride-1 layers after the first, so
    that skipping one never changes the map the FC layer sees."""

    @property
    def kernel_choices(self) -> tuple[int, ...]:
        """The kernel sizes this layer may take (one for a fixed kernel)."""
        return self.kernels if self.kernel is None else (self.kernel,)


Conv = ConvLayerConfig
NATURE_TRUNK: tuple[tuple[int, int], ...] = ((8, 4), (4, 2), (3, 1))
"""``(kernel, stride)`` of the Nature CNN's three valid convs (Mnih et al. 2015): the one place
the trunk is written (the default space, old-format conversions and import-teacher read it)."""

NATURE_CONV: tuple[ConvLayerConfig, ...] = (
    Conv(widths=(8, 16, 24, 32, 48, 64), kernel=NATURE_TRUNK[0][0], stride=NATURE_TRUNK[0][1]),
    Conv(widths=(16, 32, 48, 64, 96, 128), kernel=NATURE_TRUNK[1][0], stride=NATURE_TRUNK[1][1]),
    Conv(widths=(16, 32, 48, 64, 96, 128), kernel=NATURE_TRUNK[2][0], stride=NATURE_TRUNK[2][1]),
    Conv(widths=(16, 32, 48, 64, 96, 128), kernels=(3, 5), padding="same", optional=True),
    Conv(widths=(16, 32, 48, 64, 96, 128), kernels=(3, 5), padding="same", optional=True),
)
"""The default CNN space: the Nature trunk (8x8/4, 4x4/2, 3x3/1, valid: 84 -> 20 -> 9 -> 7)
and two optional same-padded convs with elastic 3/5 kernels (docs/spaces.md)."""

_MAX_KERNEL = 15
_MAX_STRIDE = 8


@dataclass(frozen=True)
class SpaceConfig:
    """The search space. ``kind: mlp`` (vector observations) or ``cnn`` (image observations:
    ALE frames, MinAtar planes, any env with (C, H, W) images), declared layer by layer."""

    kind: Literal["mlp", "cnn"] = "mlp"
    """Network family; must be ``cnn`` for Atari ids and image observations, ``mlp`` for
    vector observations."""
    depths: tuple[int, ...] = (1, 2, 3, 4)
    """MLP: allowed numbers of hidden layers (at most 64)."""
    widths: tuple[int, ...] = (4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
    """MLP: allowed widths of each hidden layer. Every width, channel count and FC width of
    the space is at most 16384 (:data:`MAX_WIDTH`)."""
    conv: tuple[ConvLayerConfig, ...] = NATURE_CONV
    """CNN: the conv layers in order, each ``{widths, kernel | kernels, stride, padding,
    optional}`` (:class:`ConvLayerConfig`; at most 64 layers, the first not optional).
    Default: the Nature trunk plus two optional same-padded convs (:data:`NATURE_CONV`)."""
    fc: tuple[int, ...] = (64, 128, 256, 512, 1024)
    """CNN: widths of the fully connected hidden layer after the convs."""

    def __post_init__(self) -> None:
        for name in ("depths", "widths", "fc"):
            _check_widths(f"space.{name}", getattr(self, name))
        _check_bounds("space.depths", max(self.depths), 1, MAX_LAYERS)
        if not self.conv:
            raise ConfigError("space.conv: expected a non-empty list of conv layers")
        if len(self.conv) > MAX_LAYERS:
            raise ConfigError(f"space.conv: at most {MAX_LAYERS} layers, got {len(self.conv)}")
        for i, layer in enumerate(self.conv):
            _check_conv_layer(f"space.conv[{i}]", layer, first=i == 0)

    @classmethod
    def nature(
        cls,
        conv1: tuple[int, ...] = NATURE_CONV[0].widths,
        conv2: tuple[int, ...] = NATURE_CONV[1].widths,
        conv3: tuple[int, ...] = NATURE_CONV[2].widths,
        extra: int = 2,
        extra_widths: tuple[int, ...] = NATURE_CONV[3].widths,
        extra_kernels: tuple[int, ...] = NATURE_CONV[3].kernels,
        fc: tuple[int, ...] = (64, 128, 256, 512, 1024),
    ) -> SpaceConfig:
        """A Nature-shaped CNN space: conv1-3 (8x8/4, 4x4/2, 3x3/1, valid) with these widths,
        then ``extra`` optional same-padded stride-1 convs. The conversion of the keys before
        [K]: ``conv1/conv2/conv3``, ``extra_widths``, ``extra_kernels`` and ``fc`` keep their
        meaning, ``extra = max(extra_depths)`` (docs/spaces.md)."""
        trunk = tuple(
            Conv(widths=w, kernel=k, stride=s)
            for w, (k, s) in zip((conv1, conv2, conv3), NATURE_TRUNK, strict=True)
        )
        opt = Conv(widths=extra_widths, kernels=extra_kernels, padding="same", optional=True)
        return cls(kind="cnn", conv=trunk + (opt,) * extra, fc=fc)


def _check_widths(key: str, values: tuple[int, ...]) -> None:
    if not values or any(v < 1 for v in values):
        raise ConfigError(f"{key}: expected a non-empty list of positive integers")
    if list(values) != sorted(set(values)):
        raise ConfigError(f"{key}: expected strictly increasing values, got {list(values)}")
    _check_bounds(key, max(values), 1, MAX_WIDTH)


def _check_conv_layer(key: str, layer: ConvLayerConfig, first: bool) -> None:
    if not isinstance(layer, ConvLayerConfig):
        raise ConfigError(f"{key}: expected a conv layer mapping, got {type(layer).__name__}")
    _check_widths(f"{key}.widths", layer.widths)
    if (layer.kernel is None) == (not layer.kernels):
        raise ConfigError(
            f"{key}: give kernel (a fixed size) or kernels (elastic choices), exactly one of them"
        )
    kname = f"{key}.kernel" if layer.kernel is not None else f"{key}.kernels"
    ks = layer.kernel_choices
    if any(k < 1 for k in ks) or list(ks) != sorted(set(ks)):
        raise ConfigError(f"{kname}: expected strictly increasing positive sizes, got {list(ks)}")
    _check_bounds(kname, max(ks), 1, _MAX_KERNEL)
    _check_bounds(f"{key}.stride", layer.stride, 1, _MAX_STRIDE)
    same = layer.padding == "same"
    if same and any(k % 2 == 0 for k in ks):
        raise ConfigError(f"{kname}: a same-padded layer needs odd kernels, got {list(ks)}")
    if len(ks) > 1 and not (same and layer.stride == 1):
        raise ConfigError(
            f"{kname}: elastic kernels {list(ks)} need padding: same and stride: 1 (the map size "
            "must not depend on the kernel); give one kernel for this layer"
        )
    if len(ks) > 1 and any((ks[-1] - k) % 2 for k in ks):
        raise ConfigError(f"{kname}: elastic kernels must all be odd, got {list(ks)}")
    if layer.optional and first:
        raise ConfigError(f"{key}.optional: the first conv layer cannot be optional")
    if layer.optional and not (same and layer.stride == 1):
        raise ConfigError(
            f"{key}.optional: only same-padded stride-1 layers may be optional (skipping one "
            "must not change the map size)"
        )


@dataclass(frozen=True)
class PPOConfig:
    """Clipped PPO with GAE (CleanRL's settings; Atari defaults shown)."""

    lr: float = 2.5e-4
    """Adam learning rate."""
    num_envs: int = 8
    """Parallel environments per rollout (at most 4096, :data:`MAX_ENVS`)."""
    num_steps: int = 128
    """Steps per environment per rollout (at most 65536, :data:`MAX_NUM_STEPS`). The rollout
    buffer of ``num_envs * num_steps`` observations must also fit in memory (checked when a
    stage starts)."""
    num_minibatches: int = 4
    """Minibatches per epoch."""
    update_epochs: int = 4
    """Epochs over each rollout (at most 1000)."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    clip_coef: float = 0.1
    """Policy ratio clipping."""
    clip_vloss: bool = True
    """Clip the value loss around the old values, by ``clip_coef`` in the unit the learner
    trains in: raw values for the teacher and the ``ppo`` baselines, sigma for distilled
    training (``docs/training.md``)."""
    ent_coef: float = 0.01
    """Entropy bonus weight."""
    vf_coef: float = 0.5
    """Value loss weight."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    anneal_lr: bool = True
    """Anneal the learning rate linearly towards zero (update u of n trains at
    ``lr * (1 - (u - 1) / n)``, the last at ``lr / n``)."""
    norm_adv: bool = True
    """Normalise advantages per minibatch."""
    target_kl: float | None = None
    """Stop the epochs of an update early past this approximate KL."""
    reward_clip: bool = False
    """Clip rewards to their sign inside the loss (Atari); reported returns stay raw."""

    def __post_init__(self) -> None:
        _check_positive("ppo.lr", self.lr)
        _check_range("ppo.lr", self.lr, 0.0, MAX_LR)
        _check_bounds("ppo.num_envs", self.num_envs, 1, MAX_ENVS)
        _check_bounds("ppo.num_steps", self.num_steps, 1, MAX_NUM_STEPS)
        _check_min("ppo.num_minibatches", self.num_minibatches, 1)
        _check_bounds("ppo.update_epochs", self.update_epochs, 1, 1000)
        _check_range("ppo.gamma", self.gamma, 0.0, 1.0)
        _check_range("ppo.gae_lambda", self.gae_lambda, 0.0, 1.0)
        _check_positive("ppo.clip_coef", self.clip_coef)
        _check_min("ppo.ent_coef", self.ent_coef, 0.0)
        _check_min("ppo.vf_coef", self.vf_coef, 0.0)
        _check_positive("ppo.max_grad_norm", self.max_grad_norm)
        if self.target_kl is not None:
            _check_positive("ppo.target_kl", self.target_kl)
        if (self.num_envs * self.num_steps) % self.num_minibatches:
            raise ConfigError(
                "ppo.num_minibatches: must divide ppo.num_envs * ppo.num_steps "
                f"({self.num_envs} * {self.num_steps})"
            )

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    def updates_for(self, total_steps: int) -> int:
        """Updates of ``batch_size`` env steps covering ``total_steps`` (at least one)."""
        return max(1, total_steps // self.batch_size)

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches


@dataclass(frozen=True)
class TeacherConfig:
    """The teacher: an arch of the search space trained with plain PPO."""

    arch: dict[str, Any] | None = None
    """Arch as in ``arch.json`` (e.g. ``{kind: mlp, widths: [64, 64]}``); None = the default
    teacher of the space (:meth:`~a2d_evo.nets.space.SearchSpace.default_teacher`: the 2 x 64
    MLP; the Nature CNN 32/64/64/512 when the space holds it; else the middle of each required
    conv layer's and the FC's choices). Layer widths at most
    16384 (:data:`MAX_WIDTH`), at most 64 hidden layers; its weights and Adam state must also
    fit in memory (checked when the stage starts)."""
    total_steps: int = 10_000_000
    """Environment steps of teacher training (at most 10^12)."""
    eval_episodes: int | None = None
    """Greedy evaluation episodes written to the teacher's metrics.json (None: ``eval.episodes``,
    as every other agent folder's; at most 100000)."""
    checkpoint_every: int = 20
    """PPO updates between two checkpoints of the teacher's training."""

    def __post_init__(self) -> None:
        _check_bounds("teacher.total_steps", self.total_steps, 1, MAX_TOTAL_STEPS)
        _check_min("teacher.checkpoint_every", self.checkpoint_every, 1)
        if self.eval_episodes is not None:
            _check_bounds("teacher.eval_episodes", self.eval_episodes, 1, MAX_EPISODES)
        if self.arch is not None:
            _check_arch_sizes(self.arch)


@dataclass(frozen=True)
class SupernetConfig:
    """Supernet training: PPO + distillation; each update trains the subnets that collected it."""

    total_steps: int = 10_000_000
    """Environment steps of supernet training (at most 10^12)."""
    rollout_subnets: int = 4
    """Subnets of each update (at most 4096): the largest, the smallest and random ones, drawn
    per rollout. They collect it (the env slots split between them evenly) and are the ones
    the update trains, each on its own rows (sandwich rule); at most ``ppo.num_envs`` per
    process, and a divisor of it for equal shares."""
    checkpoint_every: int = 20
    """Updates between checkpoints of supernet training and baselines (the teacher has
    ``teacher.checkpoint_every``; a fine-tune keeps none)."""
    sampling: Literal["strata", "uniform"] = "strata"
    """How the random subnets of an update are drawn. ``strata`` (default): one of 8 strata of
    equal width in log10 FLOPs uniformly (``train.sampling.SAMPLING_STRATA``), then an arch of
    that stratum, so cheap corners (narrow after narrow) are trained as often as the middle;
    ``uniform``: every gene uniformly (BigNAS's rule; the ablation's control arm). See
    ``docs/training.md``."""

    def __post_init__(self) -> None:
        _check_bounds("supernet.total_steps", self.total_steps, 1, MAX_TOTAL_STEPS)
        _check_bounds("supernet.rollout_subnets", self.rollout_subnets, 1, MAX_ENVS)
        _check_min("supernet.checkpoint_every", self.checkpoint_every, 1)


@dataclass(frozen=True)
class DistillConfig:
    """The A2D terms: alpha * KL(teacher || student) + beta * ((V_s - V_teacher) / sigma)^2.

    Every distilled learner (supernet, fine-tune, ``a2d`` baselines) works on values in
    units of one fixed scale sigma per run: the root mean square of the teacher's values on
    the first rollout (see ``docs/training.md``)."""

    alpha: float = 1.0
    """Weight of the actor distillation (KL from the teacher's policy)."""
    beta: float = 0.5
    """Weight of the critic distillation (squared error to the teacher's value / sigma)."""
    vf_coef: float = 0.5
    """PPO's value-loss weight in distilled training, on values / sigma (the teacher and the
    ``ppo`` baselines use ``ppo.vf_coef`` on raw values)."""
    anneal: Literal["none", "linear"] = "none"
    """Anneal alpha and beta linearly to ``final_fraction`` of their value."""
    final_fraction: float = 0.0
    """Fraction of alpha and beta left at the end when annealing."""
    temperature: float = 1.0
    """Softmax temperature of the teacher's logits in the KL, in [1e-3, 1e3]."""

    def __post_init__(self) -> None:
        _check_range("distill.alpha", self.alpha, 0.0, MAX_COEF)
        _check_range("distill.beta", self.beta, 0.0, MAX_COEF)
        _check_range("distill.vf_coef", self.vf_coef, 0.0, MAX_COEF)
        _check_range("distill.final_fraction", self.final_fraction, 0.0, 1.0)
        # below 1e-3 the teacher's logits / T overflow the softmax: NaN at the first update,
        # after the stage folder was written (1e-40 did); above 1e3 the targets are uniform
        _check_range("distill.temperature", self.temperature, MIN_TEMPERATURE, MAX_TEMPERATURE)

    @property
    def vanilla(self) -> bool:
        """The "vanilla one-shot" ablation: no distillation at all."""
        return self.alpha == 0.0 and self.beta == 0.0


@dataclass(frozen=True)
class FinetuneConfig:
    """Derive-then-distill: ``export`` trains each front member on before delivering it."""

    steps: int = 0
    """Env steps of PPO + distillation from the teacher per front member. 0 (the default, so
    that a config without the key means what it did before) ships the inherited weights and
    says so; every shipped config but the Atari ones sets it (CartPole 20k, Acrobot 50k,
    LunarLander 100k, MinAtar 200k)."""
    validation_episodes: int = 20
    """Greedy episodes on validation seeds of their own, played before and after each
    fine-tune: the fine-tuned weights replace the inherited ones only if they score at least
    as well there (distillation pulls a member that plays better than its teacher back to the
    teacher's level). 0 keeps the fine-tuned weights whatever they score."""
    lr: float | None = None
    """Peak learning rate of each fine-tune (a fresh Adam, annealed to 0 over ``steps`` when
    ``ppo.anneal_lr``). None (the default: what it was before the key) uses ``ppo.lr``, the
    rate PPO trains from scratch with, though the supernet's own rate had annealed to near 0."""
    below_random: int = 0
    """How many of the search's below-random archs ``export`` (all members) fine-tunes too,
    costliest first: the successive halving's non-dominated survivors whose inherited weights
    did not beat the uniform-random policy. ``evolve`` lists that many under ``front.json``'s
    ``below_random`` (scored on the final seeds, not members: a 0-FLOPs agent dominates them).
    A fine-tune can lift such an arch above random (a 2-unit MLP from -456 to 26 on
    LunarLander); it is then delivered where it beats random and nothing dominates it. 0 (the
    default, and the demo's: it lifted none of 10 on fresh seeds) fine-tunes the members
    only. At most 1024."""
    workers: int = 1
    """Members fine-tuned side by side, one per worker process (each with ``torch_threads``
    threads, which must then be set: torch's default takes every core). The agents are the
    same bit for bit with any number at the same ``torch_threads``
    (:mod:`a2d_evo.train.finetune_pool`). At most 1024."""

    def __post_init__(self) -> None:
        _check_bounds("finetune.steps", self.steps, 0, MAX_TOTAL_STEPS)
        _check_bounds("finetune.validation_episodes", self.validation_episodes, 0, MAX_EPISODES)
        _check_bounds("finetune.workers", self.workers, 1, MAX_WORKERS)
        _check_bounds("finetune.below_random", self.below_random, 0, MAX_WORKERS)
        if self.lr is not None:
            _check_positive("finetune.lr", self.lr)
            _check_range("finetune.lr", self.lr, 0.0, MAX_LR)


@dataclass(frozen=True)
class SearchConfig:
    """NSGA-II over subnet encodings: normalised return up, FLOPs down."""

    pop: int = 64
    """Population size (4 to 4096)."""
    gens: int = 20
    """Generations (at most 100000)."""
    episodes: int = 5
    """Episodes per candidate during the search (common random numbers per generation).
    A generation plays its offspring, the survivors that replay and any anchors in one
    evaluator call: ``(2 * pop + anchors) * episodes`` slots at most, which may not pass 65536
    (:data:`MAX_EVAL_SLOTS`; ``pop`` once without ``reevaluate``, no anchors with the mean)."""
    final_episodes: int = 30
    """Episodes per front member when the final front is re-scored on fresh seeds (at most
    65536)."""
    candidates: int | None = None
    """Archs the delivery starts its successive halving from: the archive's best whole fronts
    until at least this many (None: ``pop``). Fixing it lets methods with different
    population sizes be delivered the same way (``docs/search.md``, Delivery)."""
    max_flops: float | None = None
    """Optional FLOPs ceiling, as a constraint."""
    max_episode_steps: int | None = None
    """Cap on episode length during the search (None: the env's own): it only shortens them,
    never beyond ``env.max_episode_steps`` or the env's own limit (the registered one; on ALE
    ids v5's 108,000 frames over ``env.frame_skip``). A capped episode
    counts as one episode with the return it reached; R_random and R_teacher of the search's
    normalisation play under the same cap. The halving and the final re-scoring play whole
    episodes."""
    budget_steps: int | None = None
    """Optional stop in env steps (episode lengths summed over every candidate episode): no
    generation starts once this many are spent (``gens`` still caps). At least ``pop *
    episodes`` (``(pop + anchors) * episodes`` with an ``estimate`` other than ``mean``): a
    step for each slot the first generation may open, a bound rather than its cost, which
    duplicates, the ceiling and anchors the population drew can lower (``docs/search.md``)."""
    reevaluate: bool = True
    """Survivors play every generation's seeds with their offspring; objectives are the mean
    over every episode an arch played. False: an arch's first estimate is kept for good."""
    max_arch_episodes: int | None = None
    """With ``reevaluate``: archs holding this many episodes are not played again (None: no
    cap). At least ``episodes``. An arch plays whole generations, so a cap that is not a
    multiple of ``episodes`` is passed (3 a generation and a cap of 4: 6)."""
    estimate: Literal["mean", "seed_adjusted", "shrunk"] = "mean"
    """What NSGA-II ranks an arch's return on: ``mean`` (over its episodes),
    ``seed_adjusted`` (the mean of ``return - seed effect``, the seed effects measured on the
    ``anchors``) or ``shrunk`` (that, shrunk toward a ridge prediction from the genes:
    empirical Bayes); ``docs/search.md``."""
    anchors: int = 4
    """With ``estimate`` other than ``mean``: fixed archs, spread over the space's FLOPs, that
    play every generation's seeds so that the seed effects are measured on archs nobody
    selected (1 to :data:`MAX_ANCHORS`; their episodes count in the budget). Unused with
    ``mean``. Each seed effect holds the anchors' noise (variance ``sigma^2 / anchors``): few
    anchors add noise to every adjusted episode (``docs/search.md``)."""
    reevaluate_ranks: int | None = None
    """With ``reevaluate``: only the survivors in NSGA-II's first this-many non-dominated
    fronts (ranks ``0 .. N-1``) replay each generation; the others keep their estimates until
    they reach such a front (None: every survivor replays). 1 leaves more of the budget to new
    archs but lets lucky draws off the front stand (measured worse: ``docs/search.md``)."""
    init: Literal["uniform", "strata"] = "uniform"
    """The first population: ``uniform`` (every gene uniform) or ``strata`` (the supernet's
    eight log10-FLOPs strata taking turns, an arch uniformly inside each, all distinct)."""
    crossover_prob: float = 0.9
    """SBX crossover probability."""
    crossover_eta: float = 15.0
    """SBX distribution index."""
    mutation: Literal["polynomial", "reset"] = "polynomial"
    """``polynomial``: pymoo's PM on the genes, rounded; ``reset``: each mutated gene redrawn
    among its other values (``docs/search.md``)."""
    mutation_prob: float | None = None
    """Per-gene mutation probability (None: ``1 / n_var``)."""
    mutation_eta: float = 20.0
    """Polynomial mutation distribution index."""
    backend: Literal["local", "ray"] = "local"
    """Population evaluation backend."""
    ray_address: str | None = None
    """Ray cluster address (``auto``, ``host:port`` or ``ray://host:port``); None starts a
    local Ray."""
    ray_actors: int = 2
    """Ray evaluation actors (at most 1024)."""
    ray_cpus_per_actor: float = 1.0
    """CPUs per Ray actor."""
    ray_gpus_per_actor: float = 0.0
    """GPUs per Ray actor (fractions allowed)."""
    ray_share_timeout_s: float | None = 1800.0
    """Seconds a Ray actor may spend on a generation-sized share (``ceil(pop / ray_actors)``
    candidates x ``episodes``) before it counts as hung, in proportion for larger shares (the
    front's re-scoring) and for whole episodes where the generations' are capped
    (``max_episode_steps``): it is killed and replaced and the share re-runs, as for a dead
    actor (None: no limit)."""

    @property
    def delivery_candidates(self) -> int:
        """``candidates``, or ``pop`` when unset."""
        return self.pop if self.candidates is None else self.candidates

    def __post_init__(self) -> None:
        _check_bounds("search.pop", self.pop, 4, MAX_POP)
        _check_bounds("search.gens", self.gens, 1, MAX_GENS)
        _check_bounds("search.episodes", self.episodes, 1, MAX_EVAL_SLOTS)
        n_archs = self.pop * (2 if self.reevaluate else 1) + (
            self.anchors if self.estimate != "mean" else 0
        )  # offspring, the survivors that replay, the anchors: one evaluator call
        if n_archs * self.episodes > MAX_EVAL_SLOTS:
            played = "offspring" + (" and the survivors that replay" if self.reevaluate else "")
            played += " and the anchors" if self.estimate != "mean" else ""
            raise ConfigError(
                f"search.pop * search.episodes: at most {MAX_EVAL_SLOTS} env slots per "
                f"generation, got {n_archs} archs ({played}) * {self.episodes} episodes; lower "
                "search.pop or search.episodes"
            )
        _check_bounds("search.final_episodes", self.final_episodes, 1, MAX_EVAL_SLOTS)
        if self.candidates is not None:
            _check_bounds("search.candidates", self.candidates, 1, MAX_POP)
            if self.candidates * self.episodes > MAX_EVAL_SLOTS:
                raise ConfigError(
                    f"search.candidates * search.episodes: at most {MAX_EVAL_SLOTS} env slots "
                    f"per halving round, got {self.candidates} * {self.episodes}"
                )
        _check_bounds("search.anchors", self.anchors, 1, MAX_ANCHORS)
        if self.max_flops is not None:
            _check_positive("search.max_flops", self.max_flops)
        if self.max_episode_steps is not None:
            _check_bounds("search.max_episode_steps", self.max_episode_steps, 1, 10**9)
        first = self.pop + (self.anchors if self.estimate != "mean" else 0)
        if self.budget_steps is not None and self.budget_steps < first * self.episodes:
            archs = "(search.pop + search.anchors)" if first > self.pop else "search.pop"
            raise ConfigError(
                f"search.budget_steps: {self.budget_steps} is below one generation's cost: the "
                f"first generation plays {archs} * search.episodes = {first} * "
                f"{self.episodes} episodes of at least one step each; raise it to at least "
                f"{first * self.episodes}"
            )
        if self.budget_steps is not None:
            _check_bounds("search.budget_steps", self.budget_steps, 1, 10**15)
        if self.max_arch_episodes is not None:
            _check_bounds("search.max_arch_episodes", self.max_arch_episodes, self.episodes, 10**9)
        if self.reevaluate_ranks is not None:
            _check_bounds("search.reevaluate_ranks", self.reevaluate_ranks, 1, MAX_POP)
        _check_range("search.crossover_prob", self.crossover_prob, 0.0, 1.0)
        _check_positive("search.crossover_eta", self.crossover_eta)
        _check_positive("search.mutation_eta", self.mutation_eta)
        if self.mutation_prob is not None:
            _check_range("search.mutation_prob", self.mutation_prob, 0.0, 1.0)
            _check_positive("search.mutation_prob", self.mutation_prob)
        _check_bounds("search.ray_actors", self.ray_actors, 1, MAX_WORKERS)
        _check_positive("search.ray_cpus_per_actor", self.ray_cpus_per_actor)
        _check_min("search.ray_gpus_per_actor", self.ray_gpus_per_actor, 0.0)
        if self.ray_share_timeout_s is not None:
            _check_positive("search.ray_share_timeout_s", self.ray_share_timeout_s)
            _check_range("search.ray_share_timeout_s", self.ray_share_timeout_s, 0.0, MAX_TIMEOUT_S)


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation of agents (eval, export, report)."""

    episodes: int = 30
    """Episodes per evaluation (at most 100000, :data:`MAX_EPISODES`): ``a2d-evo eval``'s
    default, a teacher's evaluation (unless ``teacher.eval_episodes``), a fine-tune's before
    and after scores."""
    mode: Literal["greedy", "sample"] = "greedy"
    """``a2d-evo eval``'s default: greedy (argmax) actions, or actions sampled from the policy
    (``--sample`` asks for the latter; sampled returns depend on ``num_envs``, see
    :func:`~a2d_evo.evaluation.episodes.evaluate_agent`). The search, the front's re-scoring
    and the report always play greedily: their figures are comparable across runs."""
    num_envs: int = 16
    """Environments stepped together during evaluation (at most 4096)."""
    random_episodes: int = 30
    """Not read: R_random is always the uniform-random policy on the scored agents' own
    episodes and seeds, as their normalised return needs. Kept so that every written
    ``config.yaml`` still loads (at most 100000)."""

    def __post_init__(self) -> None:
        _check_bounds("eval.episodes", self.episodes, 1, MAX_EPISODES)
        _check_bounds("eval.num_envs", self.num_envs, 1, MAX_ENVS)
        _check_bounds("eval.random_episodes", self.random_episodes, 1, MAX_EPISODES)


@dataclass(frozen=True)
class Config:
    """A whole run: one value of this type drives every command."""

    format_version: int = CONFIG_FORMAT_VERSION
    """Version of the config format; written into every saved ``config.yaml``."""
    seed: int = 0
    """Root seed; every random choice of the run flows from it."""
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    """Torch device for training and evaluation."""
    torch_threads: int = 0
    """torch intra-op threads; 0 = leave torch's default. At most 1024. The native kernels
    link the same OpenMP runtime as torch (``libgomp``), so this sets their threads too."""
    env: EnvConfig = field(default_factory=EnvConfig)
    """The task and its observation pipeline."""
    space: SpaceConfig = field(default_factory=SpaceConfig)
    """The search space of subnets."""
    ppo: PPOConfig = field(default_factory=PPOConfig)
    """PPO settings shared by teacher, supernet and baseline training."""
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    """The teacher's arch and training length."""
    supernet: SupernetConfig = field(default_factory=SupernetConfig)
    """Supernet training: PPO + A2D distillation, sandwich rule."""
    distill: DistillConfig = field(default_factory=DistillConfig)
    """Weights of the actor and critic distillation terms."""
    search: SearchConfig = field(default_factory=SearchConfig)
    """The NSGA-II search and its evaluation backend."""
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    """The last stage: each front member fine-tuned before it is delivered."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Evaluation of agents and of the random policy."""

    @property
    def finetune_lr(self) -> float:
        """The peak learning rate a fine-tune trains with: ``finetune.lr``, else ``ppo.lr``."""
        return self.ppo.lr if self.finetune.lr is None else self.finetune.lr

    def __post_init__(self) -> None:
        if self.format_version != CONFIG_FORMAT_VERSION:
            newer = self.format_version > CONFIG_FORMAT_VERSION
            raise ConfigError(
                f"format_version: this a2d-evo reads config format {CONFIG_FORMAT_VERSION}, got "
                f"{self.format_version} ({'upgrade a2d-evo' if newer else 'update the config'})"
            )
        _check_bounds("seed", self.seed, 0, MAX_SEED)
        _check_bounds("torch_threads", self.torch_threads, 0, MAX_WORKERS)
        if self.finetune.workers > 1 and self.torch_threads == 0:
            raise ConfigError(
                f"finetune.workers: {self.finetune.workers} processes would each take every "
                "core (torch_threads 0 is torch's default); set torch_threads too, e.g. "
                "torch_threads: 1"
            )
        # ALE ids give frames; any other env may give vectors or images, which is known once
        # it is built (Agent and Supernet refuse then a kind that does not fit, naming it).
        if self.env.atari and self.space.kind != "cnn":
            raise ConfigError(
                f"space.kind: {self.env.id!r} needs the 'cnn' space, got {self.space.kind!r}"
            )


def replace(cfg: T, **changes: Any) -> T:
    """``dataclasses.replace`` that re-runs validation."""
    return dataclasses.replace(cfg, **changes)  # type: ignore[type-var]


# ----------------------------------------------------------------------------- range checks


def _check_min(key: str, value: float, low: float) -> None:
    if not value >= low:  # also refuses NaN
        raise ConfigError(f"{key}: must be >= {low}, got {value}")


MIN_TEMPERATURE, MAX_TEMPERATURE = 1e-3, 1e3
"""Bounds of ``distill.temperature``."""


def _check_positive(key: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{key}: must be > 0, got {value}")


def _check_range(key: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ConfigError(f"{key}: must be in [{low}, {high}], got {value}")


def _check_bounds(key: str, value: float, low: float, high: float) -> None:
    _check_min(key, value, low)
    if not value <= high:
        raise ConfigError(f"{key}: must be <= {high} (its documented upper bound), got {value}")


def check_count(key: str, value: int, low: int, high: int) -> None:
    """Raise :class:`ConfigError` naming ``key`` unless ``low <= value <= high``.

    For numbers given as command options rather than config keys (``eval --episodes``)."""
    _check_bounds(key, value, low, high)


def _check_arch_sizes(arch: Any) -> None:
    """Widths and depth of ``teacher.arch`` within the bounds; the arch's own shape is checked
    where it is built (:func:`a2d_evo.nets.space.arch_from_dict`)."""
    if not isinstance(arch, dict):
        return
    lists = {k: arch.get(k) for k in ("widths", "conv", "extra", "convs")}
    for key, value in lists.items():
        if isinstance(value, list | tuple) and len(value) > MAX_LAYERS:
            raise ConfigError(f"teacher.arch.{key}: at most {MAX_LAYERS} layers, got {len(value)}")
    sizes: list[tuple[str, Any]] = []
    for key in ("widths", "conv"):
        value = lists[key]
        if isinstance(value, list | tuple):
            sizes += [(f"teacher.arch.{key}[{i}]", v) for i, v in enumerate(value)]
    extra = lists["extra"]
    if isinstance(extra, list | tuple):
        for i, pair in enumerate(extra):
            if isinstance(pair, list | tuple) and pair:
                sizes.append((f"teacher.arch.extra[{i}][0]", pair[0]))
    convs = lists["convs"]  # the declared-space format: one mapping per conv layer
    if isinstance(convs, list | tuple):
        for i, layer in enumerate(convs):
            if not isinstance(layer, dict):
                continue
            sizes.append((f"teacher.arch.convs[{i}].width", layer.get("width")))
            for key, most in (("kernel", _MAX_KERNEL), ("stride", _MAX_STRIDE)):
                v = layer.get(key)
                if isinstance(v, int) and not isinstance(v, bool) and v > most:
                    raise ConfigError(f"teacher.arch.convs[{i}].{key}: at most {most}, got {v}")
    sizes.append(("teacher.arch.fc", arch.get("fc")))
    for key, value in sizes:
        if isinstance(value, int) and not isinstance(value, bool) and value > MAX_WIDTH:
            raise ConfigError(
                f"{key}: at most {MAX_WIDTH} units (MAX_WIDTH), got {value}; use a smaller layer"
            )
