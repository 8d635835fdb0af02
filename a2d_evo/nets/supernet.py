"""The weight-sharing supernet: every candidate agent is a slice of one network.

Elastic layers hold the largest weights and slice them at forward time (once-for-all
style): the first ``k`` output and input channels, the centre crop of the kernels of the
optional same-padded convs, and skipped optional layers. The arch is an argument of
``forward``; there is no hidden "active subnet" state, so one supernet serves many subnets
at once (see :meth:`Supernet.forward_groups`).

Parameter names equal those of :class:`a2d_evo.nets.agent.Agent`, so a subnet's tensors are
slices ``w[:out, :in, c:c+k, c:c+k]`` of the same-named supernet tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from a2d_evo.config import Config
from a2d_evo.envs import env_spec
from a2d_evo.errors import ArchError, FormatError, RunFolderError
from a2d_evo.files import torch_load
from a2d_evo.nets.agent import CONV_SPECS, PolicyOutput, init_layer, obs_to_float, trunk_hw
from a2d_evo.nets.space import Arch, CNNArch, MLPArch, SearchSpace


class Supernet(nn.Module):
    """Actor-critic supernet over a :class:`SearchSpace`: ``forward(obs, arch)``."""

    def __init__(self, space: SearchSpace, obs_shape: tuple[int, ...], n_actions: int) -> None:
        super().__init__()
        self.space = space
        self.obs_shape = tuple(int(d) for d in obs_shape)
        self.n_actions = int(n_actions)
        self.atari = space.kind == "cnn"
        cfg = space.cfg
        if not self.atari:
            w = max(cfg.widths)
            obs_dim = int(np.prod(self.obs_shape))
            self.layers = nn.ModuleList(
                init_layer(nn.Linear(obs_dim if i == 0 else w, w)) for i in range(space.max_depth)
            )
            hidden = w
        else:
            if len(self.obs_shape) != 3:
                raise ArchError(f"a CNN supernet needs (C, H, W) observations, got {obs_shape}")
            c1, c2, c3 = max(cfg.conv1), max(cfg.conv2), max(cfg.conv3)
            chans = [self.obs_shape[0], c1, c2, c3]
            convs = [
                nn.Conv2d(chans[i], chans[i + 1], k, stride=s)
                for i, (k, s) in enumerate(CONV_SPECS)
            ]
            ew, ek = max(cfg.extra_widths), max(cfg.extra_kernels)
            for j in range(space.max_extra):
                convs.append(nn.Conv2d(c3 if j == 0 else ew, ew, ek, padding=ek // 2))
            self.convs = nn.ModuleList(init_layer(c) for c in convs)
            h, w_ = trunk_hw(self.obs_shape)
            self.trunk_area = h * w_
            fc_in = max(c3, ew if space.max_extra else 0)
            self.fc = init_layer(nn.Linear(fc_in * self.trunk_area, max(cfg.fc)))
            hidden = max(cfg.fc)
        self.policy = init_layer(nn.Linear(hidden, self.n_actions), std=0.01)
        self.value = init_layer(nn.Linear(hidden, 1), std=1.0)

    # ---------------------------------------------------------------- forward
    def forward(self, obs: Tensor, arch: Arch) -> PolicyOutput:
        """Logits and values of the subnet ``arch`` on ``obs``."""
        h = self.features(obs, arch)
        width = h.shape[-1]
        logits = F.linear(h, self.policy.weight[:, :width], self.policy.bias)
        value = F.linear(h, self.value.weight[:, :width], self.value.bias).squeeze(-1)
        return PolicyOutput(logits, value)

    def features(self, obs: Tensor, arch: Arch) -> Tensor:
        """The last hidden activation of subnet ``arch``."""
        self.check(arch)
        x = obs_to_float(obs, self.atari)
        if isinstance(arch, MLPArch):
            x = x.reshape(x.shape[0], -1)
            for i, w in enumerate(arch.widths):
                layer = self._linear(i)
                x = torch.tanh(F.linear(x, layer.weight[:w, : x.shape[1]], _bias(layer)[:w]))
            return x
        assert isinstance(arch, CNNArch)
        for i, (_k, s) in enumerate(CONV_SPECS):
            conv = self._conv(i)
            w = arch.conv[i]
            x = F.relu(F.conv2d(x, conv.weight[:w, : x.shape[1]], _bias(conv)[:w], stride=s))
        for j, (w, k) in enumerate(arch.extra):
            x = F.relu(
                F.conv2d(
                    x,
                    self.extra_weight(j, w, x.shape[1], k),
                    _bias(self._conv(3 + j))[:w],
                    padding=k // 2,
                )
            )
        x = x.flatten(1)
        return F.relu(F.linear(x, self.fc.weight[: arch.fc, : x.shape[1]], self.fc.bias[: arch.fc]))

    def _linear(self, i: int) -> nn.Linear:
        return cast(nn.Linear, self.layers[i])

    def _conv(self, i: int) -> nn.Conv2d:
        return cast(nn.Conv2d, self.convs[i])

    def extra_weight(self, j: int, out: int, inp: int, k: int) -> Tensor:
        """Extra conv ``j``'s weight sliced to ``out x inp`` channels, centre-cropped to ``k``."""
        weight = self._conv(3 + j).weight
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
        if isinstance(arch, MLPArch) and not self.atari:
            if (
                len(arch.widths) > len(self.layers)
                or max(arch.widths) > self._linear(0).out_features
            ):
                raise ArchError(f"arch {arch} does not fit the supernet")
            return
        if isinstance(arch, CNNArch) and self.atari:
            cfg = self.space.cfg
            ok = (
                all(w <= self._conv(i).out_channels for i, w in enumerate(arch.conv))
                and len(arch.extra) <= self.space.max_extra
                and all(
                    w <= max(cfg.extra_widths) and k <= max(cfg.extra_kernels) and k % 2 == 1
                    for w, k in arch.extra
                )
                and arch.fc <= self.fc.out_features
            )
            if not ok:
                raise ArchError(f"arch {arch} does not fit the supernet")
            return
        raise ArchError(f"arch {arch} is not a {'cnn' if self.atari else 'mlp'} arch")


def _bias(layer: nn.Linear | nn.Conv2d) -> Tensor:
    assert layer.bias is not None  # every layer of ours is built with a bias
    return layer.bias


def build_supernet(cfg: Config) -> Supernet:
    """A freshly initialised supernet for the config's env and search space."""
    spec = env_spec(cfg.env)
    return Supernet(SearchSpace(cfg.space), tuple(spec.obs_shape), spec.n_actions)


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
    net.load_state_dict(state)
    return net
