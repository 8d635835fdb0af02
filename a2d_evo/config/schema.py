"""The config schema: one frozen, documented dataclass per section of a run's YAML.

Each section checks its own ranges in ``__post_init__`` and raises :class:`ConfigError`
naming the dotted key, so a value built in code is as checked as one read from a file.
Reading YAML into these types is :mod:`a2d_evo.config.loader`'s job.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from a2d_evo.errors import ConfigError
from a2d_evo.formats import CONFIG_FORMAT_VERSION

T = TypeVar("T")

ATARI_PREFIX = "ALE/"


def is_atari(env_id: str) -> bool:
    """True for ALE ids (``ALE/Pong-v5``), which use the CNN space and frame pipeline."""
    return env_id.startswith(ATARI_PREFIX)


@dataclass(frozen=True)
class EnvConfig:
    """The task: a gymnasium id with discrete actions, and the Atari pipeline settings."""

    id: str = "CartPole-v1"
    """gymnasium id; ``ALE/<Game>-v5`` selects the Atari pipeline and the CNN space."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra keyword arguments passed to ``gymnasium.make``."""
    backend: Literal["auto", "sync", "ale_vector", "native"] = "auto"
    """Vector env backend. Classic control: ``sync``. Atari: ``ale_vector`` (ale-py's
    AtariVectorEnv) or ``native`` (ale-py emulation in worker processes + the native
    preprocessing kernel); ``auto`` takes the one measured fastest (see BENCHMARKS.md)."""
    workers: int = 0
    """Worker processes of the ``native`` Atari backend / threads of ``ale_vector``; 0 = cores."""
    sticky_actions: float = 0.25
    """Probability of repeating the previous action (``repeat_action_probability``)."""
    noop_max: int = 30
    """Up to this many no-op actions after each reset (Atari)."""
    frame_skip: int = 4
    """Emulator frames per agent step (Atari), max-pooled over the last two."""
    frame_size: int = 84
    """Side of the square grayscale frame (Atari)."""
    stack: int = 4
    """Frames in the observation stack (Atari)."""
    terminal_on_life_loss: bool = False
    """End training episodes on a lost life (Atari); evaluation always plays full games."""
    max_episode_steps: int | None = None
    """Truncate episodes after this many agent steps; None keeps the env's own limit."""

    def __post_init__(self) -> None:
        _check_range("env.sticky_actions", self.sticky_actions, 0.0, 1.0)
        _check_min("env.noop_max", self.noop_max, 0)
        _check_min("env.frame_skip", self.frame_skip, 1)
        _check_min("env.frame_size", self.frame_size, 8)
        _check_min("env.stack", self.stack, 1)
        _check_min("env.workers", self.workers, 0)
        if self.max_episode_steps is not None:
            _check_min("env.max_episode_steps", self.max_episode_steps, 1)

    @property
    def atari(self) -> bool:
        return is_atari(self.id)


@dataclass(frozen=True)
class SpaceConfig:
    """The search space. ``kind: mlp`` (classic control) or ``cnn`` (Atari)."""

    kind: Literal["mlp", "cnn"] = "mlp"
    """Network family; must be ``cnn`` for Atari ids and ``mlp`` otherwise."""
    depths: tuple[int, ...] = (1, 2, 3, 4)
    """MLP: allowed numbers of hidden layers."""
    widths: tuple[int, ...] = (4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
    """MLP: allowed widths of each hidden layer."""
    conv1: tuple[int, ...] = (8, 16, 24, 32, 48, 64)
    """CNN: widths of conv1 (8x8, stride 4)."""
    conv2: tuple[int, ...] = (16, 32, 48, 64, 96, 128)
    """CNN: widths of conv2 (4x4, stride 2)."""
    conv3: tuple[int, ...] = (16, 32, 48, 64, 96, 128)
    """CNN: widths of conv3 (3x3, stride 1)."""
    extra_depths: tuple[int, ...] = (0, 1, 2)
    """CNN: allowed numbers of extra same-padded stride-1 convs after conv3."""
    extra_widths: tuple[int, ...] = (16, 32, 48, 64, 96, 128)
    """CNN: widths of the extra convs."""
    extra_kernels: tuple[int, ...] = (3, 5)
    """CNN: kernel sizes of the extra convs (odd; smaller ones are centre crops)."""
    fc: tuple[int, ...] = (64, 128, 256, 512, 1024)
    """CNN: widths of the fully connected hidden layer."""

    def __post_init__(self) -> None:
        for name in ("depths", "widths", "conv1", "conv2", "conv3", "extra_widths", "fc"):
            values = getattr(self, name)
            if not values or any(v < 1 for v in values):
                raise ConfigError(f"space.{name}: expected a non-empty list of positive integers")
            if list(values) != sorted(set(values)):
                raise ConfigError(
                    f"space.{name}: expected strictly increasing values, got {values}"
                )
        if not self.extra_depths or any(v < 0 for v in self.extra_depths):
            raise ConfigError("space.extra_depths: expected non-negative integers")
        if list(self.extra_depths) != sorted(set(self.extra_depths)):
            raise ConfigError("space.extra_depths: expected strictly increasing values")
        if not self.extra_kernels or any(k < 1 or k % 2 == 0 for k in self.extra_kernels):
            raise ConfigError("space.extra_kernels: expected odd positive kernel sizes")
        if list(self.extra_kernels) != sorted(set(self.extra_kernels)):
            raise ConfigError("space.extra_kernels: expected strictly increasing values")


@dataclass(frozen=True)
class PPOConfig:
    """Clipped PPO with GAE (CleanRL's settings; Atari defaults shown)."""

    lr: float = 2.5e-4
    """Adam learning rate."""
    num_envs: int = 8
    """Parallel environments per rollout."""
    num_steps: int = 128
    """Steps per environment per rollout."""
    num_minibatches: int = 4
    """Minibatches per epoch."""
    update_epochs: int = 4
    """Epochs over each rollout."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    clip_coef: float = 0.1
    """Policy ratio clipping."""
    clip_vloss: bool = True
    """Clip the value loss around the old values."""
    ent_coef: float = 0.01
    """Entropy bonus weight."""
    vf_coef: float = 0.5
    """Value loss weight."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    anneal_lr: bool = True
    """Anneal the learning rate linearly to zero."""
    norm_adv: bool = True
    """Normalise advantages per minibatch."""
    target_kl: float | None = None
    """Stop the epochs of an update early past this approximate KL."""
    reward_clip: bool = False
    """Clip rewards to their sign inside the loss (Atari); reported returns stay raw."""

    def __post_init__(self) -> None:
        _check_positive("ppo.lr", self.lr)
        _check_min("ppo.num_envs", self.num_envs, 1)
        _check_min("ppo.num_steps", self.num_steps, 1)
        _check_min("ppo.num_minibatches", self.num_minibatches, 1)
        _check_min("ppo.update_epochs", self.update_epochs, 1)
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

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches


@dataclass(frozen=True)
class TeacherConfig:
    """The teacher: an arch of the search space trained with plain PPO."""

    arch: dict[str, Any] | None = None
    """Arch as in ``arch.json`` (e.g. ``{kind: mlp, widths: [64, 64]}``); None = the default
    teacher of the space (2 x 64 MLP, or the Nature CNN 32/64/64/512)."""
    total_steps: int = 10_000_000
    """Environment steps of teacher training."""
    eval_episodes: int = 20
    """Greedy evaluation episodes written to the teacher's metrics.json."""
    checkpoint_every: int = 20
    """PPO updates between two checkpoints of the teacher's training."""

    def __post_init__(self) -> None:
        _check_min("teacher.total_steps", self.total_steps, 1)
        _check_min("teacher.checkpoint_every", self.checkpoint_every, 1)
        _check_min("teacher.eval_episodes", self.eval_episodes, 1)


@dataclass(frozen=True)
class SupernetConfig:
    """Supernet training: PPO + distillation with sandwich sampling."""

    total_steps: int = 10_000_000
    """Environment steps of supernet training."""
    num_random: int = 2
    """k: random subnets trained per update besides the largest and the smallest."""
    rollout_subnets: int = 4
    """Distinct subnets collecting each rollout (env slots split between them evenly)."""
    checkpoint_every: int = 20
    """Updates between checkpoints (teacher and supernet training)."""
    vf_coef: float | None = None
    """PPO's value-loss weight for the supernet (default: ``ppo.vf_coef``, the teacher's).

    The smallest subnets carry actor and critic through a few shared units, so the value
    loss competes harder with the policy there than in the teacher."""

    def __post_init__(self) -> None:
        _check_min("supernet.total_steps", self.total_steps, 1)
        if self.vf_coef is not None:
            _check_min("supernet.vf_coef", self.vf_coef, 0.0)
        _check_min("supernet.num_random", self.num_random, 0)
        _check_min("supernet.rollout_subnets", self.rollout_subnets, 1)
        _check_min("supernet.checkpoint_every", self.checkpoint_every, 1)


@dataclass(frozen=True)
class DistillConfig:
    """The A2D terms: alpha * KL(teacher || student) + beta * (V_s - V_teacher)^2."""

    alpha: float = 1.0
    """Weight of the actor distillation (KL from the teacher's policy)."""
    beta: float = 0.5
    """Weight of the critic distillation (squared error to the teacher's value)."""
    anneal: Literal["none", "linear"] = "none"
    """Anneal alpha and beta linearly to ``final_fraction`` of their value."""
    final_fraction: float = 0.0
    """Fraction of alpha and beta left at the end when annealing."""
    temperature: float = 1.0
    """Softmax temperature of the teacher's logits in the KL."""

    def __post_init__(self) -> None:
        _check_min("distill.alpha", self.alpha, 0.0)
        _check_min("distill.beta", self.beta, 0.0)
        _check_range("distill.final_fraction", self.final_fraction, 0.0, 1.0)
        _check_positive("distill.temperature", self.temperature)

    @property
    def vanilla(self) -> bool:
        """The "vanilla one-shot" ablation: no distillation at all."""
        return self.alpha == 0.0 and self.beta == 0.0


@dataclass(frozen=True)
class SearchConfig:
    """NSGA-II over subnet encodings: normalised return up, FLOPs down."""

    pop: int = 64
    """Population size."""
    gens: int = 20
    """Generations."""
    episodes: int = 5
    """Episodes per candidate during the search (common random numbers per generation)."""
    final_episodes: int = 30
    """Episodes per front member when the final front is re-scored on fresh seeds."""
    max_flops: float | None = None
    """Optional FLOPs ceiling, as a constraint."""
    max_episode_steps: int | None = None
    """Cap on episode length during the search (None: the env's own)."""
    crossover_prob: float = 0.9
    """SBX crossover probability."""
    crossover_eta: float = 15.0
    """SBX distribution index."""
    mutation_eta: float = 20.0
    """Polynomial mutation distribution index."""
    backend: Literal["local", "ray"] = "local"
    """Population evaluation backend."""
    ray_address: str | None = None
    """Ray cluster address (``auto`` or ``host:port``); None starts a local Ray."""
    ray_actors: int = 2
    """Ray evaluation actors."""
    ray_cpus_per_actor: float = 1.0
    """CPUs per Ray actor."""
    ray_gpus_per_actor: float = 0.0
    """GPUs per Ray actor (fractions allowed)."""

    def __post_init__(self) -> None:
        _check_min("search.pop", self.pop, 4)
        _check_min("search.gens", self.gens, 1)
        _check_min("search.episodes", self.episodes, 1)
        _check_min("search.final_episodes", self.final_episodes, 1)
        if self.max_flops is not None:
            _check_positive("search.max_flops", self.max_flops)
        if self.max_episode_steps is not None:
            _check_min("search.max_episode_steps", self.max_episode_steps, 1)
        _check_range("search.crossover_prob", self.crossover_prob, 0.0, 1.0)
        _check_positive("search.crossover_eta", self.crossover_eta)
        _check_positive("search.mutation_eta", self.mutation_eta)
        _check_min("search.ray_actors", self.ray_actors, 1)
        _check_positive("search.ray_cpus_per_actor", self.ray_cpus_per_actor)
        _check_min("search.ray_gpus_per_actor", self.ray_gpus_per_actor, 0.0)


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation of agents (eval, export, report)."""

    episodes: int = 30
    """Episodes per evaluation."""
    mode: Literal["greedy", "sample"] = "greedy"
    """Greedy (argmax) actions, or actions sampled from the policy."""
    num_envs: int = 16
    """Environments stepped together during evaluation."""
    random_episodes: int = 30
    """Episodes of the uniform-random policy that define R_random."""

    def __post_init__(self) -> None:
        _check_min("eval.episodes", self.episodes, 1)
        _check_min("eval.num_envs", self.num_envs, 1)
        _check_min("eval.random_episodes", self.random_episodes, 1)


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
    """torch intra-op threads; 0 = leave torch's default."""
    env: EnvConfig = field(default_factory=EnvConfig)
    """The task and its observation pipeline."""
    space: SpaceConfig = field(default_factory=SpaceConfig)
    """The search space of subnets."""
    ppo: PPOConfig = field(default_factory=PPOConfig)
    """PPO settings shared by teacher, supernet and baseline training."""
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    """The teacher's arch and training length."""
    supernet: SupernetConfig = field(default_factory=SupernetConfig)
    """Supernet training with sandwich sampling."""
    distill: DistillConfig = field(default_factory=DistillConfig)
    """Weights of the actor and critic distillation terms."""
    search: SearchConfig = field(default_factory=SearchConfig)
    """The NSGA-II search and its evaluation backend."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Evaluation of agents and of the random policy."""

    def __post_init__(self) -> None:
        if self.format_version != CONFIG_FORMAT_VERSION:
            newer = self.format_version > CONFIG_FORMAT_VERSION
            raise ConfigError(
                f"format_version: this a2d-evo reads config format {CONFIG_FORMAT_VERSION}, got "
                f"{self.format_version} ({'upgrade a2d-evo' if newer else 'update the config'})"
            )
        _check_min("seed", self.seed, 0)
        _check_min("torch_threads", self.torch_threads, 0)
        want = "cnn" if self.env.atari else "mlp"
        if self.space.kind != want:
            raise ConfigError(
                f"space.kind: {self.env.id!r} needs the {want!r} space, got {self.space.kind!r}"
            )


def replace(cfg: T, **changes: Any) -> T:
    """``dataclasses.replace`` that re-runs validation."""
    return dataclasses.replace(cfg, **changes)  # type: ignore[type-var]


# ----------------------------------------------------------------------------- range checks


def _check_min(key: str, value: float, low: float) -> None:
    if not value >= low:  # also refuses NaN
        raise ConfigError(f"{key}: must be >= {low}, got {value}")


def _check_positive(key: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{key}: must be > 0, got {value}")


def _check_range(key: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ConfigError(f"{key}: must be in [{low}, {high}], got {value}")
