"""The config schema: one frozen, documented dataclass per section of a run's YAML, and the
whole :class:`Config`.

Each section checks its own ranges in ``__post_init__`` (bounds in
:mod:`a2d_evo.config.bounds`) and raises :class:`ConfigError` naming the dotted key, so a
value built in code is as checked as one read from a file. The ``env``, ``space`` and ``search``
sections, which carry the most rules, are :mod:`a2d_evo.config.env`,
:mod:`a2d_evo.config.space` and :mod:`a2d_evo.config.search`.
Reading YAML into these types is :mod:`a2d_evo.config.loader`'s job (with
:mod:`a2d_evo.config.yaml_dialect`, :mod:`a2d_evo.config.overrides` and
:mod:`a2d_evo.config.convert`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from a2d_evo.config.bounds import (
    MAX_COEF,
    MAX_ENVS,
    MAX_EPISODES,
    MAX_KERNEL,
    MAX_LAYERS,
    MAX_LR,
    MAX_NUM_STEPS,
    MAX_SEED,
    MAX_STRIDE,
    MAX_TEMPERATURE,
    MAX_TOTAL_STEPS,
    MAX_WIDTH,
    MAX_WORKERS,
    MIN_TEMPERATURE,
    check_bounds,
    check_min,
    check_positive,
    check_range,
)
from a2d_evo.config.env import EnvConfig
from a2d_evo.config.search import SearchConfig
from a2d_evo.config.space import SpaceConfig
from a2d_evo.errors import ConfigError
from a2d_evo.formats import CONFIG_FORMAT_VERSION

T = TypeVar("T")


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
        check_positive("ppo.lr", self.lr)
        check_range("ppo.lr", self.lr, 0.0, MAX_LR)
        check_bounds("ppo.num_envs", self.num_envs, 1, MAX_ENVS)
        check_bounds("ppo.num_steps", self.num_steps, 1, MAX_NUM_STEPS)
        check_min("ppo.num_minibatches", self.num_minibatches, 1)
        check_bounds("ppo.update_epochs", self.update_epochs, 1, 1000)
        check_range("ppo.gamma", self.gamma, 0.0, 1.0)
        check_range("ppo.gae_lambda", self.gae_lambda, 0.0, 1.0)
        check_positive("ppo.clip_coef", self.clip_coef)
        check_min("ppo.ent_coef", self.ent_coef, 0.0)
        check_min("ppo.vf_coef", self.vf_coef, 0.0)
        check_positive("ppo.max_grad_norm", self.max_grad_norm)
        if self.target_kl is not None:
            check_positive("ppo.target_kl", self.target_kl)
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
        check_bounds("teacher.total_steps", self.total_steps, 1, MAX_TOTAL_STEPS)
        check_min("teacher.checkpoint_every", self.checkpoint_every, 1)
        if self.eval_episodes is not None:
            check_bounds("teacher.eval_episodes", self.eval_episodes, 1, MAX_EPISODES)
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
    the update trains, each on its own rows (sandwich rule); at most ``ppo.num_envs`` of the
    whole run (under torchrun a rank may hold fewer slots than subnets), and a divisor of it
    for equal shares."""
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
        check_bounds("supernet.total_steps", self.total_steps, 1, MAX_TOTAL_STEPS)
        check_bounds("supernet.rollout_subnets", self.rollout_subnets, 1, MAX_ENVS)
        check_min("supernet.checkpoint_every", self.checkpoint_every, 1)


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
        check_range("distill.alpha", self.alpha, 0.0, MAX_COEF)
        check_range("distill.beta", self.beta, 0.0, MAX_COEF)
        check_range("distill.vf_coef", self.vf_coef, 0.0, MAX_COEF)
        check_range("distill.final_fraction", self.final_fraction, 0.0, 1.0)
        # below 1e-3 the teacher's logits / T overflow the softmax: NaN at the first update,
        # after the stage folder was written (1e-40 did); above 1e3 the targets are uniform
        check_range("distill.temperature", self.temperature, MIN_TEMPERATURE, MAX_TEMPERATURE)

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
    kickstart: bool = False
    """Kickstarting (Schmitt et al. 2018): anneal the distillation weights alpha and beta
    linearly to 0 over each fine-tune, and over each ``a2d`` baseline's training (which uses
    the fine-tune's loss), so that the PPO term alone steers the end of training and can take
    the agent past its teacher. It overrides ``distill.anneal`` there; the supernet keeps
    ``distill``'s schedule. False (the default) keeps ``distill``'s schedule everywhere."""
    workers: int = 1
    """Members fine-tuned side by side, one per worker process (each with ``torch_threads``
    threads, which must then be set: torch's default takes every core). The agents are the
    same bit for bit with any number at the same ``torch_threads``
    (:mod:`a2d_evo.train.finetune_pool`). At most 1024."""

    def __post_init__(self) -> None:
        check_bounds("finetune.steps", self.steps, 0, MAX_TOTAL_STEPS)
        check_bounds("finetune.validation_episodes", self.validation_episodes, 0, MAX_EPISODES)
        check_bounds("finetune.workers", self.workers, 1, MAX_WORKERS)
        check_bounds("finetune.below_random", self.below_random, 0, MAX_WORKERS)
        if self.lr is not None:
            check_positive("finetune.lr", self.lr)
            check_range("finetune.lr", self.lr, 0.0, MAX_LR)


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
        check_bounds("eval.episodes", self.episodes, 1, MAX_EPISODES)
        check_bounds("eval.num_envs", self.num_envs, 1, MAX_ENVS)
        check_bounds("eval.random_episodes", self.random_episodes, 1, MAX_EPISODES)


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

    @property
    def finetune_distill(self) -> DistillConfig:
        """The distillation a fine-tune (and an ``a2d`` baseline) trains with: ``distill``,
        annealed to 0 over the training when ``finetune.kickstart``."""
        if not self.finetune.kickstart:
            return self.distill
        return replace(self.distill, anneal="linear", final_fraction=0.0)

    def __post_init__(self) -> None:
        if self.format_version != CONFIG_FORMAT_VERSION:
            newer = self.format_version > CONFIG_FORMAT_VERSION
            raise ConfigError(
                f"format_version: this a2d-evo reads config format {CONFIG_FORMAT_VERSION}, got "
                f"{self.format_version} ({'upgrade a2d-evo' if newer else 'update the config'})"
            )
        check_bounds("seed", self.seed, 0, MAX_SEED)
        check_bounds("torch_threads", self.torch_threads, 0, MAX_WORKERS)
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
            for key, most in (("kernel", MAX_KERNEL), ("stride", MAX_STRIDE)):
                v = layer.get(key)
                if isinstance(v, int) and not isinstance(v, bool) and v > most:
                    raise ConfigError(f"teacher.arch.convs[{i}].{key}: at most {most}, got {v}")
    sizes.append(("teacher.arch.fc", arch.get("fc")))
    for key, value in sizes:
        if isinstance(value, int) and not isinstance(value, bool) and value > MAX_WIDTH:
            raise ConfigError(
                f"{key}: at most {MAX_WIDTH} units (MAX_WIDTH), got {value}; use a smaller layer"
            )
