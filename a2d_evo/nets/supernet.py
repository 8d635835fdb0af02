"""The weight-sharing supernet: every candidate agent is a slice of one network.

Elastic layers hold the largest weights and slice them at forward time (once-for-all
style): the first ``k`` output and input channels, the centre crop of elastic kernels
(same-padded stride-1 layers), and skipped optional layers. The conv layers are the ones the
config declares (``space.conv``, see docs/spaces.md): ``convs.i`` is declared layer ``i``.
The arch is an argument of ``forward``; there is no hidden "active subnet" state, so one
supernet serves many subnets at once (see :meth:`Supernet.forward_groups`).

Parameter names equal those of :class:`a2d_evo.nets.agent.Agent`, so a subnet's tensors are
slices ``w[:out, :in, c:c+k, c:c+k]`` of the same-named supernet tensors.

**Value units.** The value head outputs ``V / sigma``, sigma the run's fixed value scale
(the buffer ``value_scale``, set once by supernet training from the teacher's values on the
first rollout; 0 until then, which counts as 1). :func:`~a2d_evo.nets.agent_folder.extract`
folds sigma back into the value head, so agents and ONNX files output raw values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from a2d_evo.config import Config
from a2d_evo.envs import env_spec
from a2d_evo.errors import ArchError, FormatError, RunFolderError
from a2d_evo.nets.agent import (
    PolicyOutput,
    check_batch,
    check_obs_scale,
    default_obs_scale,
    init_layer,
    obs_to_float,
    trunk_hw,
)
from a2d_evo.nets.space import Arch, CNNArch, MLPArch, SearchSpace
from a2d_evo.runs.files import tensor_not_in_file, torch_load


def conv_input_channels(space: SearchSpace, c_in: int) -> tuple[list[int], int]:
    """Most input channels of each declared conv layer, and of the FC layer (per position).

    A layer's input is the output of the nearest earlier layer that runs: any optional layer
    between it and the last required one may be skipped, so its weight holds the widest of
    them.
    """
    out: list[int] = []
    candidates = [c_in]
    for layer in space.cfg.conv:
        out.append(max(candidates))
        top = max(layer.widths)
        candidates = [*candidates, top] if layer.optional else [top]
    return out, max(candidates)


class Supernet(nn.Module):
    """Actor-critic supernet over a :class:`SearchSpace`: ``forward(obs, arch)``.

    ``obs_scale`` multiplies the observations first: the env's
    :attr:`~a2d_evo.envs.EnvSpec.obs_scale` (None: :func:`default_obs_scale`).
    """

    def __init__(
        self,
        space: SearchSpace,
        obs_shape: tuple[int, ...],
        n_actions: int,
        obs_scale: float | None = None,
    ) -> None:
        super().__init__()
        self.space = space
        self.obs_shape = tuple(int(d) for d in obs_shape)
        self.n_actions = int(n_actions)
        self.image = space.kind == "cnn"
        self.obs_scale = check_obs_scale(
            default_obs_scale(space.kind) if obs_scale is None else obs_scale
        )
        cfg = space.cfg
        if not self.image:
            if len(self.obs_shape) == 3:
                raise ArchError(
                    f"the env gives images {self.obs_shape}: use space.kind: cnn, not mlp"
                )
            w = max(cfg.widths)
            obs_dim = math.prod(self.obs_shape)
            self.layers = nn.ModuleList(
                init_layer(nn.Linear(obs_dim if i == 0 else w, w)) for i in range(space.max_depth)
            )
            hidden = w
        else:
            if len(self.obs_shape) != 3:
                raise ArchError(
                    f"a CNN supernet needs (C, H, W) image observations, got {obs_shape}: "
                    "use space.kind: mlp for vector observations"
                )
            # Optional layers keep the map size, so the largest arch gives the FC's map.
            h, w_ = trunk_hw(cast(CNNArch, space.largest()), self.obs_shape)
            self.trunk_area = h * w_
            cin_max, c_last = conv_input_channels(space, self.obs_shape[0])
            convs = []
            for layer, cin in zip(cfg.conv, cin_max, strict=True):
                k = max(layer.kernel_choices)
                pad = k // 2 if layer.padding == "same" else 0
                convs.append(nn.Conv2d(cin, max(layer.widths), k, stride=layer.stride, padding=pad))
            self.convs = nn.ModuleList(init_layer(c) for c in convs)
            self.fc = init_layer(nn.Linear(c_last * self.trunk_area, max(cfg.fc)))
            hidden = max(cfg.fc)
        self.policy = init_layer(nn.Linear(hidden, self.n_actions), std=0.01)
        self.value = init_layer(nn.Linear(hidden, 1), std=1.0)
        self.value_scale: Tensor
        self.register_buffer("value_scale", torch.zeros(()))

    @property
    def atari(self) -> bool:
        """True for a CNN supernet (uint8 image observations); the name predates [K]."""
        return self.image

    @property
    def value_unit(self) -> float:
        """sigma: raw value = head output x sigma (1 while ``value_scale`` is unset)."""
        s = float(self.value_scale)
        return s if s > 0 else 1.0

    # ---------------------------------------------------------------- forward
    def forward(self, obs: Tensor, arch: Arch) -> PolicyOutput:
        """Logits and values (in units of :attr:`value_unit`) of the subnet ``arch`` on ``obs``."""
        h = self.features(obs, arch)
        width = h.shape[-1]
        logits = F.linear(h, self.policy.weight[:, :width], self.policy.bias)
        value = F.linear(h, self.value.weight[:, :width], self.value.bias).squeeze(-1)
        return PolicyOutput(logits, value)

    def features(self, obs: Tensor, arch: Arch) -> Tensor:
        """The last hidden activation of subnet ``arch``."""
        self.check(arch)
        check_batch(obs, self.obs_shape, self.image)
        x = obs_to_float(obs, self.obs_scale)
        if isinstance(arch, MLPArch):
            x = x.reshape(x.shape[0], math.prod(self.obs_shape))
            for i, w in enumerate(arch.widths):
                layer = self._linear(i)
                x = torch.tanh(F.linear(x, layer.weight[:w, : x.shape[1]], _bias(layer)[:w]))
            return x
        assert isinstance(arch, CNNArch)
        for i, c in arch.active:
            weight = self.conv_weight(i, c.width, x.shape[1], c.kernel)
            bias = _bias(self._conv(i))[: c.width]
            x = F.relu(F.conv2d(x, weight, bias, stride=c.stride, padding=c.pad))
        x = x.flatten(1)
        return F.relu(F.linear(x, self.fc.weight[: arch.fc, : x.shape[1]], self.fc.bias[: arch.fc]))

    def _linear(self, i: int) -> nn.Linear:
        return cast(nn.Linear, self.layers[i])

    def _conv(self, i: int) -> nn.Conv2d:
        return cast(nn.Conv2d, self.convs[i])

    def conv_weight(self, i: int, out: int, inp: int, k: int) -> Tensor:
        """Conv layer ``i``'s weight sliced to ``out x inp`` channels, centre-cropped to ``k``."""
        weight = self._conv(i).weight
        off = (weight.shape[-1] - k) // 2
        return weight[:out, :inp, off : off + k, off : off + k]

    def forward_groups(
        self, obs: Tensor, archs: Sequence[Arch], group_sizes: Sequence[int]
    ) -> PolicyOutput:
        """Consecutive row groups of ``obs`` through different subnets, concatenated."""
        if sum(group_sizes) != obs.shape[0] or len(archs) != len(group_sizes):
            raise ValueError("forward_groups: group sizes must cover the batch, one per arch")
        outs = [
            self(chunk, a)
            for chunk, a in zip(torch.split(obs, list(group_sizes)), archs, strict=True)
        ]
        return PolicyOutput(torch.cat([o.logits for o in outs]), torch.cat([o.value for o in outs]))

    # ---------------------------------------------------------------- checks
    def check(self, arch: Arch) -> None:
        """Raise :class:`ArchError` if ``arch`` does not fit this supernet."""
        if isinstance(arch, MLPArch) and not self.image:
            if (  # a width below 1 sliced weight[:-1] (all but the last row): no error
                not 0 < len(arch.widths) <= len(self.layers)
                or min(arch.widths) < 1
                or max(arch.widths) > self._linear(0).out_features
            ):
                raise ArchError(f"arch {arch} does not fit the supernet")
            return
        if isinstance(arch, CNNArch) and self.image:
            if not self._fits(arch):
                raise ArchError(f"arch {arch} does not fit the supernet")
            return
        raise ArchError(f"arch {arch} is not a {'cnn' if self.image else 'mlp'} arch")

    def _fits(self, arch: CNNArch) -> bool:
        decl = self.space.cfg.conv
        if len(arch.convs) > len(decl) or not 1 <= arch.fc <= self.fc.out_features:
            return False
        for i, layer in enumerate(decl):
            c = arch.convs[i] if i < len(arch.convs) else None
            if c is None:
                if not layer.optional:
                    return False
                continue
            kmax = max(layer.kernel_choices)
            elastic = len(layer.kernel_choices) > 1
            if (
                not 1 <= c.width <= self._conv(i).out_channels
                or c.kernel < 1
                or (c.stride, c.padding) != (layer.stride, layer.padding)
                or not (c.kernel == kmax or (elastic and c.kernel < kmax and c.kernel % 2 == 1))
            ):
                return False
        return True


def _bias(layer: nn.Linear | nn.Conv2d) -> Tensor:
    assert layer.bias is not None  # every layer of ours is built with a bias
    return layer.bias


def build_supernet(cfg: Config) -> Supernet:
    """A freshly initialised supernet for the config's env and search space."""
    spec = env_spec(cfg.env)
    return Supernet(SearchSpace(cfg.space), tuple(spec.obs_shape), spec.n_actions, spec.obs_scale)


def load_supernet(cfg: Config, path: str | Path) -> Supernet:
    """The supernet of ``RUN_DIR/supernet/weights.pt``; FormatError if it does not fit ``cfg``."""
    path = Path(path)
    if not path.is_file():
        raise RunFolderError(f"no supernet weights at {path}; run `a2d-evo train-supernet` first")
    net = build_supernet(cfg)
    state = torch_load(path, "supernet weights")
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise FormatError(f"supernet weights {path}: expected a state dict of tensors")
    own = net.state_dict()
    if "value_scale" not in state:  # written before value units: its head is raw (sigma 1)
        state = {**state, "value_scale": torch.zeros(())}
    missing = sorted(set(own) - set(state))
    unknown = sorted(set(state) - set(own))
    if missing or unknown:
        raise FormatError(
            f"supernet weights {path} do not match the config's search space "
            f"(missing {missing[:3]}, unexpected {unknown[:3]})"
        )
    for name, tensor in own.items():
        if state[name].shape != tensor.shape:
            raise FormatError(
                f"supernet weights {path}: {name} has shape {tuple(state[name].shape)}, the "
                f"config's search space needs {tuple(tensor.shape)}"
            )
        # as load_agent: another dtype would be cast without a word, a stride-0 view read
        # whole would allocate without bound, NaN logits argmax to action 0
        if state[name].dtype != tensor.dtype:
            raise FormatError(
                f"supernet weights {path}: {name} has dtype {state[name].dtype}, expected "
                f"{tensor.dtype}"
            )
        if (why := tensor_not_in_file(state[name])) is not None:
            raise FormatError(f"supernet weights {path}: tensor {name!r} {why}")
        if state[name].is_floating_point() and not bool(torch.isfinite(state[name]).all()):
            raise FormatError(
                f"supernet weights {path}: tensor {name!r} holds NaN or infinite values"
            )
    net.load_state_dict(state)
    return net
