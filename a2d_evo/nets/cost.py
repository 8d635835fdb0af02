"""What an agent costs: analytic FLOPs and parameters, and measured latency.

Convention. FLOPs = 2 x multiply-adds of every convolution and linear layer, the policy and
value heads included, at batch 1. A convolution costs ``c_out * c_in * k * k`` multiply-adds
per output position (the zero-padded taps of same-padded convs included); a linear layer
``out * in``. Biases, activations and the input scaling (``obs_scale``) are not counted. This is
exactly what ``torch.utils.flop_counter.FlopCounterMode`` reports for the extracted
:class:`~a2d_evo.nets.agent.Agent` (``2 * m * n * k`` per ``addmm``, ``2 * out_area * c_out * c_in
* k * k`` per convolution), and the tests hold the two equal on hundreds of archs.

Parameters are every weight and bias, heads included: the ``numel`` sum of the agent.

Both are computed from the arch alone, without building a network, so the search can price
a whole population in microseconds. So is :func:`training_memory_bytes`, the memory a training
stage will need, checked by :func:`check_training_memory` before anything is allocated.
"""

from __future__ import annotations

import copy
import functools
import math
import os
import statistics
import time
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from a2d_evo.config import PPOConfig
from a2d_evo.envs import EnvSpec
from a2d_evo.errors import ArchError, ConfigError
from a2d_evo.nets.agent import trunk_hw
from a2d_evo.nets.space import Arch, CNNArch, ConvLayer, MLPArch, SearchSpace


class Layer(NamedTuple):
    """One conv or linear layer: weight ``(c_out, c_in, k, k)`` applied at ``area`` positions.

    A linear layer is ``k = 1, area = 1``.
    """

    name: str
    c_out: int
    c_in: int
    k: int
    area: int

    @property
    def macs(self) -> int:
        return self.c_out * self.c_in * self.k * self.k * self.area

    @property
    def params(self) -> int:
        return self.c_out * self.c_in * self.k * self.k + self.c_out


class Cost(NamedTuple):
    """FLOPs (2 x multiply-adds, batch 1) and parameter count of one agent."""

    flops: int
    params: int


def layers(arch: Arch, obs_shape: tuple[int, ...], n_actions: int) -> tuple[Layer, ...]:
    """The conv and linear layers of the agent of ``arch``, in forward order, heads last.

    Names equal the agent's parameter prefixes (``layers.0``, ``convs.3``, ``fc``, ...).
    """
    return _layers(arch, tuple(int(d) for d in obs_shape), int(n_actions))


@functools.lru_cache(maxsize=65536)
def _layers(arch: Arch, obs_shape: tuple[int, ...], n_actions: int) -> tuple[Layer, ...]:
    if n_actions < 1:
        raise ArchError(f"n_actions must be positive, got {n_actions}")
    if isinstance(arch, MLPArch):
        sizes = [math.prod(obs_shape), *arch.widths]
        out = [Layer(f"layers.{i}", sizes[i + 1], sizes[i], 1, 1) for i in range(len(arch.widths))]
        hidden = arch.widths[-1]
    elif isinstance(arch, CNNArch):
        trunk_hw(arch, obs_shape)  # ArchError if a map would be empty
        out = []
        cin, h, w = obs_shape
        for i, conv in arch.active:
            if conv.padding == "same" and conv.kernel % 2 == 0:
                raise ArchError(f"arch {arch}: same-padded kernels must be odd, got {conv.kernel}")
            # zero-padded taps count (FlopCounterMode counts them too)
            h, w = conv.out_size(h), conv.out_size(w)
            out.append(Layer(f"convs.{i}", conv.width, cin, conv.kernel, h * w))
            cin = conv.width
        out.append(Layer("fc", arch.fc, cin * h * w, 1, 1))
        hidden = arch.fc
    else:
        raise ArchError(f"not an arch: {arch!r}")
    out.append(Layer("policy", n_actions, hidden, 1, 1))
    out.append(Layer("value", 1, hidden, 1, 1))
    return tuple(out)


def macs(arch: Arch, obs_shape: tuple[int, ...], n_actions: int) -> int:
    """Multiply-adds of one forward pass at batch 1 (conv and linear layers, heads included)."""
    return sum(layer.macs for layer in layers(arch, obs_shape, n_actions))


def flops(arch: Arch, obs_shape: tuple[int, ...], n_actions: int) -> int:
    """FLOPs of one forward pass at batch 1: ``2 * macs`` (see the module docstring)."""
    return 2 * macs(arch, obs_shape, n_actions)


def costliest(space: SearchSpace, obs_shape: tuple[int, ...], n_actions: int) -> Arch:
    """The arch of ``space`` with the most FLOPs (the hypervolume's reference point is priced
    on it).

    Not always :meth:`SearchSpace.largest` (every gene at its top): an optional conv narrower
    than the layer before it shrinks the FC input, so switching it on can lower the cost. For a
    fixed set of active layers the FLOPs only grow with every width and kernel, so the maximum
    is at the top choices of some set of active layers: MLP, one per depth; CNN, a dynamic
    programme over the layers whose state is the last active width (optional layers are
    same-padded, stride 1, so they keep the map's size), exact in linear time."""
    return _extreme(space, obs_shape, n_actions, most=True)


def cheapest(space: SearchSpace, obs_shape: tuple[int, ...], n_actions: int) -> Arch:
    """The arch of ``space`` with the fewest FLOPs (a ``search.max_flops`` below its cost
    leaves no arch to search). Not always :meth:`SearchSpace.smallest`, for the reason
    :func:`costliest` gives: the same programme at the bottom choices."""
    return _extreme(space, obs_shape, n_actions, most=False)


def _extreme(space: SearchSpace, obs_shape: tuple[int, ...], n_actions: int, most: bool) -> Arch:
    """:func:`costliest` (``most``) or :func:`cheapest`: every width and kernel at its top
    (bottom) choice for some set of active layers, the set chosen as those docstrings say."""
    pick = max if most else min
    if space.kind == "mlp":
        width = pick(space.cfg.widths)
        candidates: list[Arch] = [MLPArch((width,) * d) for d in space.cfg.depths]
    else:
        _, h, w = (int(d) for d in obs_shape)
        # last active width -> (conv multiply-adds so far, the layers chosen)
        best: dict[int, tuple[int, tuple[ConvLayer | None, ...]]] = {int(obs_shape[0]): (0, ())}
        for layer in space.cfg.conv:
            conv = ConvLayer(pick(layer.widths), pick(layer.kernel_choices), layer.stride,
                             layer.padding)  # fmt: skip
            h, w = conv.out_size(h), conv.out_size(w)
            step: dict[int, tuple[int, tuple[ConvLayer | None, ...]]] = {}
            for cin, (m, convs) in best.items():
                options: list[tuple[int, int, ConvLayer | None]] = [
                    (conv.width, m + conv.width * cin * conv.kernel**2 * h * w, conv)
                ]
                if layer.optional:
                    options.append((cin, m, None))
                for width, total, choice in options:
                    known = step.get(width)
                    if known is None or (total > known[0] if most else total < known[0]):
                        step[width] = (total, (*convs, choice))
            best = step
        fc = pick(space.cfg.fc)
        candidates = [CNNArch(convs, fc) for _, convs in best.values()]
    return pick(candidates, key=lambda a: flops(a, obs_shape, n_actions))


def params(arch: Arch, obs_shape: tuple[int, ...], n_actions: int) -> int:
    """Number of parameters (weights and biases, heads included)."""
    return sum(layer.params for layer in layers(arch, obs_shape, n_actions))


def cost(arch: Arch, obs_shape: tuple[int, ...], n_actions: int) -> Cost:
    """``Cost(flops, params)`` of ``arch``."""
    return Cost(flops(arch, obs_shape, n_actions), params(arch, obs_shape, n_actions))


# ----------------------------------------------------------------------------- memory
MEMORY_FRACTION = 0.8
"""Largest share of the machine's memory (:func:`available_memory_bytes`) a training stage may
be estimated to need; above it the stage is refused before it allocates anything."""

_FLOAT = 4  # bytes of a float32
_PER_STEP_FLOATS = 8  # action, log-prob, value, reward, done, advantage, return, spare


def training_memory_bytes(
    arch: Arch,
    obs_shape: tuple[int, ...],
    obs_itemsize: int,
    n_actions: int,
    ppo: PPOConfig,
    *,
    frozen: Arch | None = None,
    subnets: int = 1,
) -> int:
    """Estimated bytes a PPO stage training ``arch`` needs (a lower bound, not a measurement).

    The sum of: ``arch``'s parameters x 4 bytes x 4 (weights, gradients, Adam's two moments);
    a ``frozen`` network's (the distillation teacher) x 4 bytes; the rollout buffer,
    ``num_envs * num_steps`` x (one observation + 8 floats, + the teacher's logits and value
    when there is one); and the activations of one minibatch, forward and backward, for each
    of ``subnets`` networks trained on it (the supernet's sandwich).
    """
    obs_shape = tuple(int(d) for d in obs_shape)
    trained = layers(arch, obs_shape, n_actions)
    weights = 4 * _FLOAT * sum(layer.params for layer in trained)
    if frozen is not None:
        weights += _FLOAT * sum(layer.params for layer in layers(frozen, obs_shape, n_actions))
    per_step = math.prod(obs_shape) * int(obs_itemsize) + _FLOAT * _PER_STEP_FLOATS
    if frozen is not None:
        per_step += _FLOAT * (n_actions + 1)
    rollout = ppo.batch_size * per_step
    units = math.prod(obs_shape) + sum(layer.c_out * layer.area for layer in trained)
    activations = 2 * _FLOAT * ppo.minibatch_size * units * max(1, subnets)
    return weights + rollout + activations


def available_memory_bytes() -> int | None:
    """Physical memory, or the cgroup (container) limit when that is lower; None if unknown."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not a POSIX system
        total = 0
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < (total or int(text) + 1):
            total = int(text)
    return total or None


def check_training_memory(stage: str, needed: int, keys: str) -> None:
    """:class:`ConfigError` naming ``keys`` (the config keys that set the size) when ``needed``
    bytes exceed :data:`MEMORY_FRACTION` of :func:`available_memory_bytes`."""
    total = available_memory_bytes()
    if total is None or needed <= MEMORY_FRACTION * total:
        return
    gib = 2**30
    raise ConfigError(
        f"{stage}: training would need about {needed / gib:.1f} GiB of memory, more than "
        f"{MEMORY_FRACTION:.0%} of this machine's {total / gib:.1f} GiB; lower {keys}"
    )


def check_stage_memory(
    stage: str,
    arch: Arch,
    spec: EnvSpec,
    ppo: PPOConfig,
    *,
    arch_keys: str,
    frozen: Arch | None = None,
    subnets: int = 1,
) -> None:
    """:func:`check_training_memory` of a stage training ``arch`` on ``spec``'s env (see
    :func:`training_memory_bytes`); ``arch_keys`` names the config keys that set ``arch``."""
    needed = training_memory_bytes(
        arch,
        spec.obs_shape,
        spec.obs_dtype.itemsize,
        spec.n_actions,
        ppo,
        frozen=frozen,
        subnets=subnets,
    )
    keys = f"{arch_keys}, ppo.num_envs, ppo.num_steps or raise ppo.num_minibatches"
    check_training_memory(stage, needed, keys)


def latency_ms(
    agent: nn.Module,
    repeats: int = 200,
    warmup: int = 20,
    obs: torch.Tensor | None = None,
) -> float:
    """Median wall time in milliseconds of ``agent(obs)`` at batch 1 on one CPU thread.

    ``obs`` defaults to zeros of ``agent.obs_shape`` in the env's dtype (uint8 images for a
    CNN, float32 vectors otherwise). An agent on another device is timed on a CPU copy.
    The torch thread count is set to 1 for the measurement and restored afterwards.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"latency_ms: need repeats >= 1 and warmup >= 0, got {repeats}, {warmup}")
    first = next(agent.parameters(), None)
    if first is not None and first.device.type != "cpu":
        agent = copy.deepcopy(agent).cpu()
    if obs is None:
        shape = tuple(agent.obs_shape)  # type: ignore[arg-type]
        image = getattr(agent, "image", getattr(agent, "atari", False))
        dtype = torch.uint8 if image else torch.float32
        obs = torch.zeros((1, *shape), dtype=dtype)
    obs = obs.cpu()
    was_training = agent.training
    threads = torch.get_num_threads()
    agent.eval()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                agent(obs)
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter_ns()
                agent(obs)
                times.append(time.perf_counter_ns() - t0)
    finally:
        torch.set_num_threads(threads)
        agent.train(was_training)
    return statistics.median(times) / 1e6
