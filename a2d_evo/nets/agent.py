"""A static policy network built from an arch value: the thing users ship.

Parameter names mirror the supernet's (``layers.i``, ``convs.i``, ``fc``, ``policy``,
``value``), so extracting a subnet is a slice copy per tensor and nothing else.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, NamedTuple, TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from a2d_evo.config import EnvConfig
from a2d_evo.envs.image import ALE_OBS_SCALE
from a2d_evo.errors import ArchError, EnvError
from a2d_evo.nets.space import Arch, CNNArch, MLPArch

ATARI_OBS_SCALE = ALE_OBS_SCALE
"""The input scale of uint8 frames with values up to 255 (ALE)."""


class PolicyOutput(NamedTuple):
    """What every policy network returns: action logits (N, A) and state values (N,)."""

    logits: Tensor
    value: Tensor


def default_obs_scale(arch_kind: str) -> float:
    """The scale a network applies when nobody names one: 1/255 for a CNN (ALE frames, the
    only images before [K]), 1 for an MLP. Where the env is known, use its
    :attr:`~a2d_evo.envs.EnvSpec.obs_scale` instead."""
    return ATARI_OBS_SCALE if arch_kind == "cnn" else 1.0


def check_obs_scale(scale: Any) -> float:
    """``scale`` as a float if it is in [1e-30, 1e30] (so is its inverse, which the network
    divides by), else ArchError."""
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not 1e-30 <= scale <= 1e30:
        raise ArchError(f"obs_scale: expected a number in [1e-30, 1e30], got {scale!r}")
    return float(scale)


def trunk_hw(arch: CNNArch, obs_shape: tuple[int, ...]) -> tuple[int, int]:
    """Spatial size of the map after ``arch``'s convs on (C, H, W) observations; ArchError
    if a layer would get an empty map."""
    if len(obs_shape) != 3:
        raise ArchError(f"a CNN needs (C, H, W) observations, got {tuple(obs_shape)}")
    h, w = int(obs_shape[1]), int(obs_shape[2])
    for i, conv in arch.active:
        h, w = conv.out_size(h), conv.out_size(w)
        if h < 1 or w < 1:
            raise ArchError(
                f"observations {tuple(obs_shape)} are too small for conv layer {i} ({conv}): "
                "its output map would be empty"
            )
    return h, w


L = TypeVar("L", nn.Linear, nn.Conv2d)


def init_layer(layer: L, std: float = float(np.sqrt(2)), bias: float = 0.0) -> L:
    """Orthogonal weights and constant bias (the PPO implementation-details init)."""
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias)  # type: ignore[arg-type]
    return layer


def check_batch(obs: Tensor, obs_shape: tuple[int, ...], image: bool = False) -> None:
    """Raise ValueError unless ``obs`` is a batch of ``obs_shape`` observations: a network
    sliced to its input would otherwise run on a wrong shape and give wrong outputs. An image
    network (``image``) takes the env's frames, uint8 or bool, and refuses floats (TypeError):
    frames scaled already would be scaled again by ``obs_scale`` inside the network, and the
    ONNX file and the native kernels take uint8 only."""
    if not isinstance(obs, Tensor):  # numpy arrays: AttributeError 'dim' said nothing
        raise TypeError(
            f"the network takes a torch tensor of observations, got {type(obs).__name__}; "
            "an agent's act(obs) takes what the env gives (numpy, one observation or a batch)"
        )
    if image and (obs.is_floating_point() or obs.is_complex()):
        raise TypeError(
            f"an image network takes the env's frames as uint8 (or bool planes), got "
            f"{obs.dtype}: it scales them itself (obs_scale), so frames scaled already would "
            "be scaled twice"
        )
    if tuple(obs_shape) == (1,) and obs.dim() == 1:  # a scalar-Box env: (N,) is N scalars
        return
    if tuple(obs.shape[1:]) != tuple(obs_shape) or obs.dim() != len(obs_shape) + 1:
        raise ValueError(
            f"observations shaped {tuple(obs.shape)} do not fit this network: it takes a batch "
            f"of {tuple(obs_shape)} observations, shaped (N, {', '.join(map(str, obs_shape))}), "
            "as a2d-evo's env wrappers give them (a Discrete observation one-hot encoded, other "
            "vectors flattened, images (C, H, W) uint8: docs/spaces.md)"
        )


def obs_to_float(obs: Tensor, scale: float) -> Tensor:
    """Observations as float, times the env's ``obs_scale`` (1/255 for ALE frames, 1 for 0/1
    planes and vectors): the scaling happens inside the network, so users feed what the env
    gives."""
    x = obs.float()
    if scale == 1.0:
        return x
    inverse = 1.0 / scale
    if inverse == round(inverse):
        # x / 255, not x * (1/255): bit-identical to the ALE networks before [K] and to the
        # CleanRL and SB3 networks import-teacher maps exactly
        return x / float(round(inverse))
    return x * scale


class Agent(nn.Module):
    """A plain actor-critic for one arch: ``forward(obs) -> (logits, value)``.

    ``obs_scale`` multiplies the observations first (None: :func:`default_obs_scale`);
    conv layer ``i`` of a CNN arch is ``convs.i`` (skipped optional layers have no tensors).
    """

    def __init__(
        self,
        arch: Arch,
        obs_shape: tuple[int, ...],
        n_actions: int,
        env_config: dict[str, Any] | None = None,
        obs_scale: float | None = None,
    ) -> None:
        super().__init__()
        self.arch = arch
        self.obs_shape = tuple(int(d) for d in obs_shape)
        self.n_actions = int(n_actions)
        self.env_config: dict[str, Any] = dict(env_config or {})
        self.image = isinstance(arch, CNNArch)
        self.obs_scale = check_obs_scale(
            default_obs_scale(arch.kind) if obs_scale is None else obs_scale
        )
        if isinstance(arch, MLPArch):
            if len(self.obs_shape) == 3:
                raise ArchError(
                    f"an MLP takes vector observations, got images {self.obs_shape}: "
                    "use space.kind: cnn"
                )
            sizes = [math.prod(self.obs_shape), *arch.widths]
            self.layers = nn.ModuleList(
                init_layer(nn.Linear(a, b)) for a, b in itertools.pairwise(sizes)
            )
            hidden = arch.widths[-1]
        else:
            h, w = trunk_hw(arch, self.obs_shape)
            convs = nn.ModuleDict()
            cin = self.obs_shape[0]
            for i, c in arch.active:
                conv = nn.Conv2d(cin, c.width, c.kernel, stride=c.stride, padding=c.pad)
                convs[str(i)] = init_layer(conv)
                cin = c.width
            self.convs = convs
            self.fc = init_layer(nn.Linear(cin * h * w, arch.fc))
            hidden = arch.fc
        self.policy = init_layer(nn.Linear(hidden, self.n_actions), std=0.01)
        self.value = init_layer(nn.Linear(hidden, 1), std=1.0)

    @property
    def atari(self) -> bool:
        """True for image (CNN) agents: uint8 observations. The name predates non-ALE images."""
        return self.image

    def features(self, obs: Tensor) -> Tensor:
        check_batch(obs, self.obs_shape, self.image)
        x = obs_to_float(obs, self.obs_scale)
        if not self.image:
            x = x.reshape(x.shape[0], math.prod(self.obs_shape))
            for layer in self.layers:
                x = torch.tanh(layer(x))
            return x
        for conv in self.convs.values():
            x = torch.relu(conv(x))
        return torch.relu(self.fc(x.flatten(1)))

    def forward(self, obs: Tensor) -> PolicyOutput:
        h = self.features(obs)
        return PolicyOutput(self.policy(h), self.value(h).squeeze(-1))

    @torch.no_grad()
    def act(self, obs: Any) -> Any:
        """Greedy actions; numpy in, numpy out (tensor in, tensor out). A batch of
        observations gives one action each; one observation (shaped ``obs_shape``) gives one
        action, as a 0-d array (tensor)."""
        device = next(self.parameters()).device
        x = (obs if isinstance(obs, Tensor) else torch.as_tensor(np.asarray(obs))).to(device)
        single = tuple(x.shape) == tuple(self.obs_shape)
        actions = self(x[None] if single else x).logits.argmax(-1)
        actions = actions[0] if single else actions
        return actions if isinstance(obs, Tensor) else actions.cpu().numpy()


def check_fits_env(
    agent: Any,
    env: EnvConfig,
    obs_shape: tuple[int, ...],
    n_actions: int,
    where: str,
    obs_scale: float | None = None,
) -> None:
    """Raise EnvError unless ``agent`` fits the env of ``env`` (giving ``obs_shape`` and
    ``n_actions``, its inputs scaled by ``obs_scale`` where given: the env spec's): the id it
    records, its inputs and actions, the scale it multiplies them by (an agent whose
    ``arch.json`` says 1 would read 0-255 frames as 255 times too large), and for images the
    ``env.image_layout`` it was made with (a cube such as (10, 10, 10) has the same shape
    read either way, so the shape cannot tell).

    ``where`` names the agent in the message (a folder, "the teacher", ...). The one check for
    every agent that meets an env: the teacher, a fine-tuned agent, an evaluated agent folder.
    """
    a_obs = tuple(int(d) for d in getattr(agent, "obs_shape", ()))
    a_act = int(getattr(agent, "n_actions", -1))
    problems = []
    env_id, layout = env.id, env.image_layout
    recorded = getattr(agent, "env_config", None) or {}
    made_for = recorded.get("id")
    if made_for and made_for != env_id:
        problems.append(f"it was made for {made_for!r}, not for {env_id!r}")
    made_with = str(recorded.get("image_layout", "auto"))  # older agents: the rule, 'auto'
    if made_for and len(obs_shape) == 3 and made_with != layout:
        problems.append(
            f"it was made reading the images as env.image_layout {made_with!r}, this env "
            f"reads them as {layout!r}"
        )
    if a_obs != tuple(obs_shape) or a_act != n_actions:
        problems.append(
            f"it takes observations {a_obs} and {a_act} actions; {env_id} gives "
            f"{tuple(obs_shape)} and {n_actions}"
        )
    a_scale = getattr(agent, "obs_scale", None)
    if obs_scale is not None and a_scale is not None and float(a_scale) != float(obs_scale):
        problems.append(
            f"it scales its inputs by {float(a_scale):.6g}; {env_id}'s are scaled by "
            f"{float(obs_scale):.6g}"
        )
    if problems:
        raise EnvError(f"{where} does not fit the environment: " + "; ".join(problems))
