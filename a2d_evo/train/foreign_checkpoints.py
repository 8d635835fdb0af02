"""Reading Stable-Baselines3 and CleanRL checkpoints and converting them to our agents.

Only state dicts are read (``torch.load(weights_only=True)``; an SB3 zip's pickled ``data``
member is never unpickled), and each is mapped onto an :class:`~a2d_evo.nets.space.Arch` and a
state dict for our :class:`~a2d_evo.nets.agent.Agent`. Our agent has ONE trunk shared by actor
and critic, so:

- CleanRL ``ppo_atari.py`` (``network`` Nature trunk + ``actor``/``critic`` heads) and SB3
  ``CnnPolicy`` (NatureCNN ``features_extractor`` + ``action_net``/``value_net``, no extra
  MLP layers) map one to one onto the CNN agent.
- CleanRL ``ppo.py`` and SB3 ``MlpPolicy`` have SEPARATE actor and critic tanh MLPs of the
  same depth. They map exactly onto a shared tanh MLP of the summed widths with
  block-diagonal weights (2 x 64 + 2 x 64 -> 2 x 128): the actor's units only feed the
  actor's units and the policy head, the critic's only the critic's and the value head,
  so logits and values are bit-for-bit the same functions.
- Anything else (actor and critic of different depths, SB3 extra MLP layers after a CNN,
  separate CNN extractors, continuous actions) raises :class:`FormatError` saying why.
"""

from __future__ import annotations

import itertools
import json
import operator
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from a2d_evo.config.bounds import MAX_WIDTH
from a2d_evo.config.space import NATURE_TRUNK
from a2d_evo.errors import FormatError
from a2d_evo.nets.space import Arch, CNNArch, MLPArch
from a2d_evo.runs.files import tensor_not_in_file, torch_load, torch_load_bytes

MAX_MEMBER_BYTES = 2 << 30
"""Refuse zip members larger than this (a zip bomb is not a policy)."""


def detect_format(path: Path) -> str:
    """``sb3`` for a zip holding ``policy.pth``, else ``cleanrl`` (a torch state dict)."""
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                if "policy.pth" in zf.namelist():
                    return "sb3"
        except (zipfile.BadZipFile, OSError):
            pass
    return "cleanrl"


def read_sb3_zip(path: Path) -> tuple[dict[str, Tensor], dict[str, Any] | None]:
    """The ``policy.pth`` state dict of an SB3 zip, and its ``data`` member parsed as JSON.

    ``policy.pth`` is read into memory and loaded with ``weights_only=True``; ``data`` is
    only parsed as JSON text (its base64 ``:serialized:`` pickles are never decoded).
    """
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if "policy.pth" not in names:
                raise FormatError(
                    f"{path} is not a Stable-Baselines3 model zip (no policy.pth member)"
                )
            raw = _read_member(zf, "policy.pth", path)
            data_text = _read_member(zf, "data", path) if "data" in names else None
    except zipfile.BadZipFile as exc:
        raise FormatError(f"{path} is not a readable zip: {exc}") from None
    except OSError as exc:
        raise FormatError(f"cannot read {path}: {exc}") from None
    label = f"{path}:policy.pth"
    state = _as_state_dict(torch_load_bytes(raw, label), label)
    data = None
    if data_text is not None:
        try:
            parsed = json.loads(data_text.decode("utf-8"))
            data = parsed if isinstance(parsed, dict) else None
        except (ValueError, RecursionError):  # bad UTF-8 or JSON, 5,000 digits, deep nesting
            data = None
    return state, data


def _read_member(zf: zipfile.ZipFile, name: str, path: Path) -> bytes:
    info = zf.getinfo(name)
    if info.file_size > MAX_MEMBER_BYTES:
        raise FormatError(f"{path}: member {name} is {info.file_size} bytes; refused")
    return zf.read(name)


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """A CleanRL ``.pt`` / ``.cleanrl_model`` file: a state dict, loaded weights-only."""
    obj = torch_load(  # a whole module saved (torch.save(agent)): what to save instead
        path,
        "teacher state dict",
        refused_hint="; save the network's state dict instead, which holds tensors only: "
        "torch.save(agent.state_dict(), path)",
    )
    return _as_state_dict(obj, str(path))


def _as_state_dict(obj: Any, what: str) -> dict[str, Tensor]:
    if not isinstance(obj, Mapping) or not obj:
        raise FormatError(f"{what} is not a state dict (a mapping of names to tensors)")
    bad = [str(k) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        inner = [  # mappings of named tensors: a state dict inside a checkpoint's dict
            k
            for k, v in obj.items()
            if isinstance(v, Mapping) and v and all(isinstance(t, Tensor) for t in v.values())
        ]
        hint = (
            f"; the tensors seem to be under {inner[0]!r} (a checkpoint's dict): save that "
            f"mapping itself, torch.save(checkpoint[{inner[0]!r}], path)"
            if len(inner) == 1
            else ""
        )
        raise FormatError(f"{what} is not a state dict: {bad[:3]} are not named tensors{hint}")
    for k, v in obj.items():  # before anything computes with them (a 2.7 KB file asked 40 GB)
        if (why := tensor_not_in_file(v)) is not None:
            raise FormatError(f"{what}: tensor {k!r} {why}")
    return {k: v.detach().float() if v.is_floating_point() else v for k, v in obj.items()}


# ----------------------------------------------------------------------------- mapping
def convert_cleanrl(state: Mapping[str, Tensor]) -> tuple[Arch, dict[str, Tensor]]:
    """Our arch and state dict for a CleanRL ``ppo.py`` or ``ppo_atari.py`` Agent."""
    if "network.0.weight" in state:
        names = {"network.0": "convs.0", "network.2": "convs.1", "network.4": "convs.2",
                 "network.7": "fc", "actor": "policy", "critic": "value"}  # fmt: skip
        return _nature(state, names, "CleanRL ppo_atari")
    if "actor.0.weight" in state and "critic.0.weight" in state:
        actor = _sequential_linears(state, "actor.", "CleanRL actor")
        critic = _sequential_linears(state, "critic.", "CleanRL critic")
        _expect_only(state, {f"actor.{k}" for k in actor} | {f"critic.{k}" for k in critic},
                     "CleanRL ppo.py")  # fmt: skip
        return _block_diagonal(
            [actor[k] for k in sorted(actor, key=_index_key)],
            [critic[k] for k in sorted(critic, key=_index_key)],
            "CleanRL ppo.py",
        )
    wrapped = bool(state) and all(k.startswith("module.") for k in state)  # DataParallel
    raise FormatError(
        "not a CleanRL PPO state dict: expected network.*/actor.*/critic.* (ppo_atari.py) "
        f"or actor.N/critic.N (ppo.py) tensors, found {sorted(state)[:6]}"
        + (
            "; every name starts with 'module.' (a DataParallel or DDP wrapper's): save the "
            "wrapped network's state dict, model.module.state_dict()"
            if wrapped
            else ""
        )
    )


def convert_sb3(
    state: Mapping[str, Tensor], data: Mapping[str, Any] | None = None
) -> tuple[Arch, dict[str, Tensor]]:
    """Our arch and state dict for an SB3 ``ActorCriticPolicy`` (MlpPolicy or CnnPolicy)."""
    if "log_std" in state:
        raise FormatError("SB3 policy has log_std: continuous actions are not supported")
    if any(k.startswith(("q_net.", "q_net_target.")) for k in state):
        raise FormatError(
            "SB3 policy has a q_net (a DQN): import-teacher takes actor-critic policies (PPO, "
            "A2C), whose policy and value heads the supernet distils"
        )
    kwargs = _sb3_policy_kwargs(data)
    activation = str(kwargs.get("activation_fn", "Tanh"))
    state = _sb3_shared_extractor(state)
    sh = _sequential_linears(state, "mlp_extractor.shared_net.", "SB3 shared_net", head=False)
    pi = _sequential_linears(state, "mlp_extractor.policy_net.", "SB3 policy_net", head=False)
    vf = _sequential_linears(state, "mlp_extractor.value_net.", "SB3 value_net", head=False)
    heads = {"action_net.weight", "action_net.bias", "value_net.weight", "value_net.bias"}
    if not heads <= set(state):
        raise FormatError(f"SB3 policy misses {sorted(heads - set(state))}")
    for head in ("action_net", "value_net"):  # Linear layers, or an IndexError traceback
        w, b = state[f"{head}.weight"], state[f"{head}.bias"]
        if w.dim() != 2 or b.shape != (w.shape[0],):
            raise FormatError(
                f"SB3 {head} is not a Linear layer (weight {tuple(w.shape)}, bias {tuple(b.shape)})"
            )
    if "features_extractor.cnn.0.weight" in state:
        if sh or pi or vf:
            raise FormatError(
                "SB3 CnnPolicy with net_arch layers after the NatureCNN cannot be expressed: "
                "our CNN agent has exactly one FC layer between the convs and the heads"
            )
        if kwargs.get("normalize_images") is False:
            raise FormatError(
                "SB3 policy was trained with normalize_images=False; ours scale by 1/255"
            )
        names = {"features_extractor.cnn.0": "convs.0", "features_extractor.cnn.2": "convs.1",
                 "features_extractor.cnn.4": "convs.2", "features_extractor.linear.0": "fc",
                 "action_net": "policy", "value_net": "value"}  # fmt: skip
        return _nature(state, names, "SB3 CnnPolicy")
    # the class's own name: "<class 'torch.nn.modules.activation.Tanh'>" or "Tanh"; a
    # substring test took Tanhshrink for tanh (found by review)
    if re.sub(r"^<class '(?:[\w.]*\.)?(\w+)'>$", r"\1", activation) != "Tanh":
        raise FormatError(
            f"SB3 MlpPolicy uses activation {activation}; a2d-evo MLP agents use tanh"
        )
    extractor = [k for k in state if k.startswith("features_extractor.")]
    if extractor:
        raise FormatError(
            f"SB3 policy has a custom features extractor ({extractor[0]}, ...): not expressible"
        )
    if not sh and (not pi or not vf):
        raise FormatError(
            "SB3 MlpPolicy without hidden layers in both the policy and value nets (and no "
            "shared_net) cannot be expressed: a2d-evo MLP agents have at least one hidden layer"
        )
    used = {f"mlp_extractor.{net}.{k}" for net, part in
            (("shared_net", sh), ("policy_net", pi), ("value_net", vf)) for k in part}  # fmt: skip
    _expect_only(state, used | heads, "SB3 MlpPolicy")
    actor = [pi[k] for k in sorted(pi, key=_index_key)]
    actor += [state["action_net.weight"], state["action_net.bias"]]
    critic = [vf[k] for k in sorted(vf, key=_index_key)]
    critic += [state["value_net.weight"], state["value_net.bias"]]
    shared = [sh[k] for k in sorted(sh, key=_index_key)]
    return _block_diagonal(actor, critic, "SB3 MlpPolicy", shared)


def _sb3_policy_kwargs(data: Mapping[str, Any] | None) -> dict[str, Any]:
    kwargs = (data or {}).get("policy_kwargs") or {}
    return dict(kwargs) if isinstance(kwargs, Mapping) else {}


def _sb3_shared_extractor(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Drop the pi_/vf_ aliases of a shared features extractor; refuse separate ones."""
    out = {}
    for k, v in state.items():
        for alias in ("pi_features_extractor.", "vf_features_extractor."):
            if k.startswith(alias):
                shared = "features_extractor." + k[len(alias) :]
                if shared not in state or not torch.equal(state[shared], v):
                    raise FormatError(
                        "SB3 policy has separate actor and critic feature extractors "
                        "(share_features_extractor=False): our agents share one trunk"
                    )
                break
        else:
            out[k] = v
    return out


def _index_key(name: str) -> tuple[int, int]:
    idx, _, kind = name.partition(".")
    return int(idx), 0 if kind == "weight" else 1


def _sequential_linears(
    state: Mapping[str, Tensor], prefix: str, what: str, head: bool = True
) -> dict[str, Tensor]:
    """``{"0.weight": ..., "0.bias": ..., "2.weight": ...}`` of an ``nn.Sequential`` of
    Linear layers with activations between them (indices 0, 2, 4, ...)."""
    found = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    indices = sorted({_index_key(k)[0] for k in found if re.fullmatch(r"\d+\.(weight|bias)", k)})
    if set(found) != {f"{i}.{p}" for i in indices for p in ("weight", "bias")}:
        raise FormatError(f"{what}: unexpected tensors {sorted(found)}")
    if indices != list(range(0, 2 * len(indices), 2)):
        raise FormatError(
            f"{what}: layers at {indices}; expected Linear layers with one activation between "
            "each (indices 0, 2, 4, ...)"
        )
    if head and len(indices) < 2:
        raise FormatError(f"{what}: needs at least one hidden layer and a head")
    for i in indices:
        w, b = found[f"{i}.weight"], found[f"{i}.bias"]
        if w.dim() != 2 or b.shape != (w.shape[0],):
            raise FormatError(f"{what}: layer {i} is not a Linear layer ({tuple(w.shape)})")
    return found


def _check_buildable(sw: list[Tensor], aw: list[Tensor], cw: list[Tensor], what: str) -> None:
    """Refuse, from the shapes alone and before anything is built, weights that do not chain
    (shared layers, then the actor's and the critic's, heads included), a shared layer wider
    than :data:`MAX_WIDTH`, and a shared-trunk form of more than twice the teacher's own
    weights plus 4M (16 MB): the block-diagonal layers and zero-padded heads hold the actor's
    and critic's weights plus cross blocks, as many again for equal widths and a few times
    more for small unequal ones (SB3 pi [64] and vf [256] with 18 actions: 2.7x), while
    lopsided shapes in a small file (a 1-unit actor with a 100,000-action head beside a
    16,000-unit critic) asked for gigabytes."""
    for net, ws in (("shared", sw), ("actor", [*sw[-1:], *aw]), ("critic", [*sw[-1:], *cw])):
        for w0, w1 in itertools.pairwise(ws):
            if w1.shape[1] != w0.shape[0]:
                raise FormatError(
                    f"{what}: the {net} layer sizes do not chain "
                    f"({tuple(w0.shape)} -> {tuple(w1.shape)})"
                )
    split = [a.shape[0] + c.shape[0] for a, c in zip(aw[:-1], cw[:-1], strict=True)]
    widths = [w.shape[0] for w in sw] + split  # the shared network's hidden layers
    if max(widths) > MAX_WIDTH:
        raise FormatError(
            f"{what}: a shared layer of {max(widths):,} units (actor and critic side by side) "
            f"is above {MAX_WIDTH:,} (MAX_WIDTH), the widest layer an a2d-evo agent takes"
        )
    own = sum(w.numel() for w in (*sw, *aw, *cw))
    fan_in = [sw[-1].shape[0] if sw else aw[0].shape[1], *split[:-1]]
    heads = (aw[-1].shape[0] + 1) * widths[-1]  # policy and value rows on the last layer
    built = sum(w.numel() for w in sw) + sum(map(operator.mul, split, fan_in)) + heads
    if built > 2 * own + (1 << 22):
        raise FormatError(
            f"{what}: as one shared network the teacher would hold {built:,} weights, over "
            f"twice its own {own:,} plus 4M (actor and critic this lopsided are no trained "
            "policy's); refused before building it"
        )


def _block_diagonal(
    actor: list[Tensor], critic: list[Tensor], what: str, shared: list[Tensor] | None = None
) -> tuple[Arch, dict[str, Tensor]]:
    """Shared tanh layers (``[w0, b0, ...]``) followed by separate actor and critic MLPs
    (``[w0, b0, ..., head_w, head_b]`` each) as ONE shared tanh MLP: the split part becomes
    block-diagonal layers of the summed widths (exactly the same functions)."""
    sw, sb = (shared or [])[0::2], (shared or [])[1::2]
    aw, ab, cw, cb = actor[0::2], actor[1::2], critic[0::2], critic[1::2]
    if len(aw) != len(cw):
        raise FormatError(
            f"{what}: the actor has {len(aw) - 1} hidden layers and the critic {len(cw) - 1}; "
            "a shared trunk needs the same depth (cannot be expressed exactly)"
        )
    if aw[0].shape[1] != cw[0].shape[1]:
        raise FormatError(f"{what}: actor and critic take different input sizes")
    if cw[-1].shape[0] != 1:
        raise FormatError(f"{what}: the critic head has {cw[-1].shape[0]} outputs, expected 1")
    if not sw and len(aw) < 2:
        raise FormatError(f"{what}: no hidden layer; a2d-evo MLP agents have at least one")
    _check_buildable(sw, aw, cw, what)
    layers: list[tuple[Tensor, Tensor]] = list(zip(sw, sb, strict=True))
    for i in range(len(aw) - 1):
        w = torch.cat([aw[0], cw[0]], dim=0) if i == 0 else torch.block_diag(aw[i], cw[i])
        layers.append((w, torch.cat([ab[i], cb[i]])))
    state: dict[str, Tensor] = {}
    for i, (w, b) in enumerate(layers):
        state[f"layers.{i}.weight"], state[f"layers.{i}.bias"] = w.clone(), b.clone()
    n_actions = aw[-1].shape[0]
    if len(aw) == 1:  # heads straight on the shared trunk
        state["policy.weight"], state["value.weight"] = aw[-1].clone(), cw[-1].clone()
    else:
        a_last, c_last = aw[-1].shape[1], cw[-1].shape[1]
        state["policy.weight"] = torch.cat([aw[-1], aw[-1].new_zeros(n_actions, c_last)], dim=1)
        state["value.weight"] = torch.cat([cw[-1].new_zeros(1, a_last), cw[-1]], dim=1)
    state["policy.bias"], state["value.bias"] = ab[-1].clone(), cb[-1].clone()
    return MLPArch(tuple(int(w.shape[0]) for w, _ in layers)), state


def _nature(
    state: Mapping[str, Tensor], names: Mapping[str, str], what: str
) -> tuple[Arch, dict[str, Tensor]]:
    """A Nature-CNN-shaped network (3 convs 8/4/3, one FC, two heads) renamed to ours."""
    wanted = {f"{src}.{p}" for src in names for p in ("weight", "bias")}
    missing = wanted - set(state)
    if missing:
        raise FormatError(f"{what}: missing tensors {sorted(missing)}")
    _expect_only(state, wanted, what)
    mapped = {f"{names[src]}.{p}": state[f"{src}.{p}"] for src in names for p in ("weight", "bias")}
    for i, (k, _stride) in enumerate(NATURE_TRUNK):  # CleanRL's and SB3's NatureCNN trunk
        w = mapped[f"convs.{i}.weight"]
        if w.dim() != 4 or tuple(w.shape[2:]) != (k, k):
            raise FormatError(
                f"{what}: conv {i + 1} has kernel {tuple(w.shape[2:])}, the Nature CNN's is {k}x{k}"
            )
    conv = tuple(int(mapped[f"convs.{i}.weight"].shape[0]) for i in range(3))
    fc = int(mapped["fc.weight"].shape[0])
    return CNNArch.nature((conv[0], conv[1], conv[2]), (), fc), mapped


def _expect_only(state: Mapping[str, Tensor], used: set[str], what: str) -> None:
    extra = sorted(set(state) - used)
    if extra:
        raise FormatError(f"{what}: tensors {extra[:5]} have no place in our agent")
