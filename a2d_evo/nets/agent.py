"""A static policy network built from an arch value: the thing users ship.

Parameter names mirror the supernet's (``layers.i``, ``convs.i``, ``fc``, ``policy``,
``value``), so extracting a subnet is a slice copy per tensor and nothing else.
"""

from __future__ import annotations

import itertools
from typing import Any, NamedTuple, TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from a2d_evo.errors import EnvError
from a2d_evo.nets.space import Arch, CNNArch, MLPArch

CONV_SPECS = ((8, 4), (4, 2), (3, 1))
"""(kernel, stride) of conv1-3, valid padding, as the Nature CNN: 84 -> 20 -> 9 -> 7."""


class PolicyOutput(NamedTuple):
    """What every policy network returns: action logits (N, A) and state values (N,)."""

    logits: Tensor
    value: Tensor


def trunk_hw(obs_shape: tuple[int, ...]) -> tuple[int, int]:
    """Spatial size after conv1-3 for an (C, H, W) observation."""
    h, w = obs_shape[1], obs_shape[2]
    for k, s in CONV_SPECS:
        h, w = (h - k) // s + 1, (w - k) // s + 1
    return h, w


L = TypeVar("L", nn.Linear, nn.Conv2d)


def init_layer(layer: L, std: float = float(np.sqrt(2)), bias: float = 0.0) -> L:
    """Orthogonal weights and constant bias (the PPO implementation-details init)."""
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias)  # type: ignore[arg-type]
    return layer


def obs_to_float(obs: Tensor, atari: bool) -> Tensor:
    """Atari frames arrive as uint8 and are scaled here, inside the network."""
    x = obs.float()
    return x / 255.0 if atari else x


class Agent(nn.Module):
    """A plain actor-critic for one arch: ``forward(obs) -> (logits, value)``."""

    def __init__(
        self,
        arch: Arch,
        obs_shape: tuple[int, ...],
        n_actions: int,
        env_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.arch = arch
        self.obs_shape = tuple(int(d) for d in obs_shape)
        self.n_actions = int(n_actions)
        self.env_config: dict[str, Any] = dict(env_config or {})
        self.atari = isinstance(arch, CNNArch)
        if isinstance(arch, MLPArch):
            sizes = [int(np.prod(self.obs_shape)), *arch.widths]
            self.layers = nn.ModuleList(
                init_layer(nn.Linear(a, b)) for a, b in itertools.pairwise(sizes)
            )
            hidden = arch.widths[-1]
        else:
            if len(self.obs_shape) != 3:
                raise ValueError(f"a CNN agent needs (C, H, W) observations, got {obs_shape}")
            chans = [self.obs_shape[0], *arch.conv]
            convs = [
                nn.Conv2d(chans[i], chans[i + 1], k, stride=s)
                for i, (k, s) in enumerate(CONV_SPECS)
            ]
            cin = arch.conv[2]
            for w, k in arch.extra:
                convs.append(nn.Conv2d(cin, w, k, padding=k // 2))
                cin = w
            self.convs = nn.ModuleList(init_layer(c) for c in convs)
            h, w_ = trunk_hw(self.obs_shape)
            self.fc = init_layer(nn.Linear(cin * h * w_, arch.fc))
            hidden = arch.fc
        self.policy = init_layer(nn.Linear(hidden, self.n_actions), std=0.01)
        self.value = init_layer(nn.Linear(hidden, 1), std=1.0)

    def features(self, obs: Tensor) -> Tensor:
        x = obs_to_float(obs, self.atari)
        if not self.atari:
            x = x.reshape(x.shape[0], -1)
            for layer in self.layers:
                x = torch.tanh(layer(x))
            return x
        for conv in self.convs:
            x = torch.relu(conv(x))
        return torch.relu(self.fc(x.flatten(1)))

    def forward(self, obs: Tensor) -> PolicyOutput:
        h = self.features(obs)
        return PolicyOutput(self.policy(h), self.value(h).squeeze(-1))

    @torch.no_grad()
    def act(self, obs: Any) -> Any:
        """Greedy actions; numpy in, numpy out (tensor in, tensor out)."""
        device = next(self.parameters()).device
        if isinstance(obs, Tensor):
            return self(obs.to(device)).logits.argmax(-1)
        x = torch.as_tensor(np.asarray(obs), device=device)
        return self(x).logits.argmax(-1).cpu().numpy()


def check_fits_env(
    agent: Any, env_id: str, obs_shape: tuple[int, ...], n_actions: int, where: str
) -> None:
    """Raise EnvError unless ``agent`` fits the env: the id it records, its inputs and actions.

    ``where`` names the agent in the message (a folder, "the teacher", ...). The one check for
    every agent that meets an env: the teacher, a fine-tuned agent, an evaluated agent folder.
    """
    a_obs = tuple(int(d) for d in getattr(agent, "obs_shape", ()))
    a_act = int(getattr(agent, "n_actions", -1))
    problems = []
    made_for = (getattr(agent, "env_config", None) or {}).get("id")
    if made_for and made_for != env_id:
        problems.append(f"it was made for {made_for!r}, not for {env_id!r}")
    if a_obs != tuple(obs_shape) or a_act != n_actions:
        problems.append(
            f"it takes observations {a_obs} and {a_act} actions; {env_id} gives "
            f"{tuple(obs_shape)} and {n_actions}"
        )
    if problems:
        raise EnvError(f"{where} does not fit the environment: " + "; ".join(problems))
