"""From a supernet slice to a shippable agent folder, and back.

``extract(supernet, arch)`` copies a subnet's weight slices into a plain :class:`Agent`
(once-for-all's ``get_active_subnet``). ``save_agent`` writes the agent folder users ship::

    arch.json     {"format_version", "arch", "obs_shape", "n_actions", "obs_scale", "env"}
    policy.pt     a plain state dict (torch.load(path, weights_only=True) reads it)
    metrics.json  the metrics contract (METRICS_KEYS), when given
    policy.onnx   when the export extra is installed: float32 vectors or uint8 images (an
                  env's bool planes given as uint8), dynamic batch,
                  outputs ``logits`` and ``value``, the ``obs_scale`` multiplication inside

``obs_scale`` is what the network multiplies its input by (1/255 for ALE frames, 1 for
MinAtar's 0/1 planes and for vectors); ``env`` holds the env settings the agent was made for,
without the ALE pipeline's keys for other envs. Format 1 folders (before declared CNN spaces)
are read too: their CNN arch is the Nature trunk and their scale 1/255 (CNN) or 1 (MLP).

``load_agent(folder)`` rebuilds the agent from ``arch.json`` + ``policy.pt`` alone: no
supernet, no pickle, every tensor checked against the arch.
"""

from __future__ import annotations

import importlib.util
import math
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from a2d_evo.config.env import EnvConfig, is_atari
from a2d_evo.errors import ArchError, FormatError
from a2d_evo.formats import (
    AGENT_FORMAT_VERSION,
    AGENT_FORMATS_READ,
    ARCH_FILE,
    EVAL_FILE,
    EVAL_MODES,
    METRICS_FILE,
    METRICS_FORMAT_VERSION,
    ONNX_FILE,
    POLICY_FILE,
    normalised_return,
)
from a2d_evo.nets import cost
from a2d_evo.nets.agent import Agent, check_obs_scale, default_obs_scale
from a2d_evo.nets.onnx_graph import onnx_bytes
from a2d_evo.nets.space import Arch, arch_from_dict
from a2d_evo.nets.supernet import Supernet
from a2d_evo.runs.files import (
    MAX_ARCH_JSON_BYTES,
    check_format_version,
    read_json,
    tensor_not_in_file,
    torch_load,
    torch_save,
    write_bytes,
    write_json,
)


# ----------------------------------------------------------------------------- extraction
def extract(supernet: Supernet, arch: Arch, env_config: Mapping[str, Any] | None = None) -> Agent:
    """A static :class:`Agent` holding copies of ``arch``'s weight slices of ``supernet``.

    Every tensor is ``w[:out, :in]`` of the same-named supernet tensor, with the kernels of
    the extra convs centre-cropped; the FC keeps its first ``c * h * w`` inputs (the first
    ``c`` channels of the flattened map). The value head is multiplied by the supernet's
    value unit sigma, so the agent outputs raw values. The agent shares no storage with the
    supernet and its ``(logits, value / sigma)`` equal ``supernet(obs, arch)``. Raises
    :class:`ArchError` when ``arch`` does not fit the supernet.
    """
    supernet.check(arch)
    source = dict(supernet.named_parameters())
    sigma = supernet.value_unit
    agent = _empty_agent(
        arch, supernet.obs_shape, supernet.n_actions, env_config, supernet.obs_scale
    )
    state: dict[str, Tensor] = {}
    with torch.no_grad():
        for name, param in agent.named_parameters():
            if name not in source:
                raise ArchError(f"arch {arch}: the supernet has no tensor {name!r}")
            w = _slice(source[name], tuple(param.shape), name, arch)
            if name.startswith("value."):
                w = w * sigma  # fold the value unit in: the agent's values are raw
            state[name] = w.clone(memory_format=torch.contiguous_format)
    agent.load_state_dict(state, assign=True)
    return agent.train(supernet.training)


def _slice(w: Tensor, shape: tuple[int, ...], name: str, arch: Arch) -> Tensor:
    """First-k along the channel dims, centre crop along the kernel dims (elastic kernels)."""
    if len(shape) != w.dim() or any(s > m for s, m in zip(shape, w.shape, strict=True)):
        raise ArchError(
            f"arch {arch}: tensor {name} of shape {shape} does not fit the supernet's "
            f"{tuple(w.shape)}"
        )
    index: list[slice] = []
    for d, (s, m) in enumerate(zip(shape, w.shape, strict=True)):
        off = (m - s) // 2 if d >= 2 else 0
        if d >= 2 and (m - s) % 2:
            raise ArchError(f"arch {arch}: kernel {s} of {name} is not a centre crop of {m}")
        index.append(slice(off, off + s))
    return w[tuple(index)]


def _empty_agent(
    arch: Arch,
    obs_shape: Sequence[int],
    n_actions: int,
    env_config: Mapping[str, Any] | None,
    obs_scale: float | None,
) -> Agent:
    # Built on the meta device: no memory and no orthogonal init, the weights come next
    # through load_state_dict(assign=True).
    with torch.device("meta"):
        return Agent(arch, tuple(obs_shape), n_actions, dict(env_config or {}), obs_scale)


def env_record(env: Mapping[str, Any]) -> dict[str, Any]:
    """The env settings an agent folder records: the ALE pipeline's keys
    (:attr:`EnvConfig.ATARI_KEYS`) only for ALE ids, so that an agent made for MinAtar or
    any other env carries its env's real settings only."""
    record = dict(env)
    if not is_atari(str(record.get("id", ""))):
        for key in EnvConfig.ATARI_KEYS:
            record.pop(key, None)
    return record


# ----------------------------------------------------------------------------- agent folders
def save_agent(
    agent: Agent,
    folder: str | Path,
    metrics: Mapping[str, Any] | None = None,
    onnx: bool | None = None,
) -> Path:
    """Write ``agent`` as an agent folder (each file atomically); returns the folder.

    ``arch.json`` is the folder's commit mark: it is removed first and written last, so a save
    cut short over an earlier agent leaves a folder every reader takes for no agent (an export
    or baselines run does it again), never new weights beside the old ``metrics.json``.
    ``eval.json`` (it scored the old weights) is removed.

    ``onnx``: None exports ``policy.onnx`` when the export extra is importable, True
    requires it, False skips it. A ``policy.onnx`` left from an earlier save is removed when
    none is written, so it never disagrees with ``policy.pt``. ``metrics`` must carry
    ``format_version`` (see :func:`make_metrics`); when None, an existing ``metrics.json``
    is left alone.
    """
    folder = Path(folder)
    if metrics is not None:
        check_format_version(dict(metrics), METRICS_FORMAT_VERSION, "metrics")
    want_onnx = onnx_available() if onnx is None else onnx
    if want_onnx and not onnx_available():
        raise ImportError(
            "ONNX export needs the export extra: pip install 'a2d-evo[export]' (onnx, onnxruntime)"
        )
    state = {k: v.detach().cpu().contiguous().clone() for k, v in agent.state_dict().items()}
    # the graph (it may fail) before anything is removed: a save that fails
    # there, or is interrupted, leaves the earlier agent whole (a received folder fine-tuned
    # by `a2d-evo finetune` has nothing that would make it again)
    onnx_file = onnx_bytes(agent) if want_onnx else None
    for stale in (ARCH_FILE, EVAL_FILE):  # arch.json back last: the folder whole again
        (folder / stale).unlink(missing_ok=True)
    torch_save(folder / POLICY_FILE, state)
    if onnx_file is not None:
        write_bytes(folder / ONNX_FILE, onnx_file)
    else:
        (folder / ONNX_FILE).unlink(missing_ok=True)
    if metrics is not None:
        write_json(folder / METRICS_FILE, dict(metrics))
    # arch.json last: a folder whose arch.json exists has its policy and metrics next to it
    write_json(
        folder / ARCH_FILE,
        {
            "format_version": AGENT_FORMAT_VERSION,
            "arch": agent.arch.to_dict(),
            "obs_shape": list(agent.obs_shape),
            "n_actions": agent.n_actions,
            "obs_scale": agent.obs_scale,
            "env": env_record(agent.env_config),
        },
    )
    return folder


def load_agent(folder: str | Path) -> Agent:
    """Rebuild the agent of an agent folder from ``arch.json`` and ``policy.pt``.

    No supernet and no unpickling. Raises :class:`FormatError` for a missing or foreign
    file, another ``format_version``, and a ``policy.pt`` that is truncated, holds code, or
    whose tensors do not match the arch (the message names the tensor).
    """
    folder = Path(folder)
    if folder.is_file() and (folder.parent / ARCH_FILE).is_file():  # policy.pt, arch.json
        raise FormatError(
            f"{folder} is a file of an agent folder; load_agent takes the folder that holds "
            f"{ARCH_FILE}: {folder.parent}"
        )
    if not folder.is_dir():
        raise FormatError(f"agent folder {folder} not found")
    arch_path = folder / ARCH_FILE
    if arch_path.is_file() and arch_path.stat().st_size > MAX_ARCH_JSON_BYTES:
        raise FormatError(
            f"agent file {arch_path} holds {arch_path.stat().st_size:,} bytes; an arch.json "
            f"a2d-evo writes holds a few hundred (at most {MAX_ARCH_JSON_BYTES:,} are read)"
        )
    meta = read_json(arch_path, "agent file", max_bytes=MAX_ARCH_JSON_BYTES)
    where = f"agent file {folder / ARCH_FILE}"
    version = meta.get("format_version") if isinstance(meta, dict) else None
    old = type(version) is int and version in AGENT_FORMATS_READ  # not true, not 1.0
    check_format_version(meta, meta["format_version"] if old else AGENT_FORMAT_VERSION, where)
    keys = ("arch", "obs_shape", "n_actions", "env", *(() if old else ("obs_scale",)))
    for key in keys:
        if key not in meta:
            raise FormatError(f"{where}: missing key {key!r}")
    unknown_keys = sorted(set(meta) - {"format_version", *keys})
    if unknown_keys:  # a file of another tool, or of a later format that forgot its version
        raise FormatError(f"{where}: unknown key {unknown_keys[0]!r}")
    try:
        arch = arch_from_dict(meta["arch"])
        # format 1 had no obs_scale: every CNN was an ALE one (1/255), every MLP unscaled
        obs_scale = check_obs_scale(meta["obs_scale"] if not old else default_obs_scale(arch.kind))
    except ArchError as exc:
        raise FormatError(f"{where}: {exc}") from None
    obs_shape = meta["obs_shape"]
    if not isinstance(obs_shape, list) or not obs_shape or not all(_pos_int(d) for d in obs_shape):
        raise FormatError(f"{where}: obs_shape must be a list of positive ints, got {obs_shape!r}")
    if math.prod(obs_shape) > _MAX_DIM:
        raise FormatError(f"{where}: obs_shape {obs_shape} holds more than {_MAX_DIM} values")
    n_actions = meta["n_actions"]
    if not _pos_int(n_actions):
        raise FormatError(f"{where}: n_actions must be a positive int, got {n_actions!r}")
    if not isinstance(meta["env"], dict):
        raise FormatError(f"{where}: env must be a mapping, got {type(meta['env']).__name__}")
    try:
        agent = _empty_agent(arch, obs_shape, n_actions, meta["env"], obs_scale)
    except ArchError as exc:
        raise FormatError(f"{where}: {exc}") from None
    except (ValueError, RuntimeError, OverflowError, TypeError) as exc:  # sizes torch cannot hold
        raise FormatError(f"{where}: {exc}") from None

    path = folder / POLICY_FILE
    if path.is_file() and not zipfile.is_zipfile(path):
        # torch.save writes a zip archive; anything else is damaged (or not ours)
        raise FormatError(f"policy {path} is truncated or corrupted: not a torch.save archive")
    state = torch_load(path, "policy")
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()
    ):
        raise FormatError(f"policy {path}: expected a state dict of named tensors")
    expected = dict(agent.named_parameters())
    missing = sorted(set(expected) - set(state))
    unknown = sorted(set(state) - set(expected))
    if missing:
        raise FormatError(f"policy {path}: tensor {missing[0]!r} of arch {arch} is missing")
    if unknown:
        raise FormatError(f"policy {path}: tensor {unknown[0]!r} does not belong to arch {arch}")
    for name, param in expected.items():
        t = state[name]
        if t.shape != param.shape:
            raise FormatError(
                f"policy {path}: tensor {name!r} has shape {tuple(t.shape)}, arch {arch} "
                f"needs {tuple(param.shape)}"
            )
        if t.dtype != param.dtype:
            raise FormatError(
                f"policy {path}: tensor {name!r} has dtype {t.dtype}, expected {param.dtype}"
            )
        # a tensor's bytes must be in the file: a stride-0 view (``expand``) of a one-value
        # storage has the arch's shape, and reading it whole would allocate without bound
        if (why := tensor_not_in_file(t)) is not None:
            raise FormatError(f"policy {path}: tensor {name!r} {why}")
        if not bool(torch.isfinite(t).all()):
            raise FormatError(f"policy {path}: tensor {name!r} holds NaN or infinite values")
    # a copy each: two tensors of the file may share one storage (a view of another), and
    # training one parameter would then move the other
    agent.load_state_dict(
        {k: v.clone(memory_format=torch.contiguous_format) for k, v in state.items()}, assign=True
    )
    return agent.eval()


_MAX_DIM = 2**31 - 1
"""Sizes past int32 are no real policy's, and torch's shape arithmetic overflows on them."""


def _pos_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= _MAX_DIM


# ----------------------------------------------------------------------------- ONNX
def onnx_available() -> bool:
    """True when the export extra's ``onnx`` (which writes the graph) is importable."""
    return importlib.util.find_spec("onnx") is not None


def add_missing_onnx(folder: str | Path) -> bool:
    """Write ``policy.onnx`` for an agent folder that has none, from its ``policy.pt``, when
    the export extra is importable; True when it wrote one. Nothing else in the folder is
    touched: the graph is of the very weights there (an export that keeps a member fine-tuned
    before the extra was installed would otherwise never ship its ONNX file)."""
    folder = Path(folder)
    if (folder / ONNX_FILE).exists() or not onnx_available():
        return False
    write_bytes(folder / ONNX_FILE, onnx_bytes(load_agent(folder)))
    return True


ONNX_SKIPPED_NOTE = (
    "note: policy.onnx not written: the export extra is not installed "
    "(pip install 'a2d-evo[export]'); the agent folders hold policy.pt only"
)
"""What ``export`` prints once (to stderr) when :func:`onnx_available` is False: a file the
docs promise and nobody mentions missing looks like a bug."""


# ----------------------------------------------------------------------------- metrics
def make_metrics(
    agent: Agent,
    *,
    env_id: str,
    returns: Any,
    eval_mode: str,
    seeds: Iterable[int],
    r_random: float,
    r_teacher: float,
    latency: float | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``metrics.json`` dict of ``agent`` evaluated with episode ``returns``.

    ``return_std`` is the population standard deviation over episodes; ``episode_returns``
    holds each episode's return in the order of ``seeds``, one per seed (not a contract key:
    files written before it lack it); ``latency`` (ms) is measured with
    :func:`a2d_evo.nets.cost.latency_ms` when None; ``extra`` keys are added after the
    contract keys and may not replace them.
    """
    rets = np.asarray(returns, dtype=np.float64).reshape(-1)
    if rets.size == 0:
        raise ValueError("make_metrics: no episode returns")
    if not np.all(np.isfinite(rets)):
        raise ValueError("make_metrics: episode returns must be finite")
    if eval_mode not in EVAL_MODES:
        raise ValueError(f"make_metrics: eval_mode must be one of {EVAL_MODES}, got {eval_mode!r}")
    seeds = [int(s) for s in seeds]
    if len(seeds) != rets.size:
        raise ValueError(f"make_metrics: {rets.size} episode returns for {len(seeds)} seeds")
    c = cost.cost(agent.arch, agent.obs_shape, agent.n_actions)
    mean = float(rets.mean())
    metrics: dict[str, Any] = {
        "format_version": METRICS_FORMAT_VERSION,
        "env_id": str(env_id),
        "return_mean": mean,
        "return_std": float(rets.std()),
        "episodes": int(rets.size),
        "eval_mode": eval_mode,
        "seeds": seeds,
        "flops": c.flops,
        "params": c.params,
        "latency_ms": float(cost.latency_ms(agent) if latency is None else latency),
        "normalised_return": float(normalised_return(mean, r_random, r_teacher)),
        # each episode's return, in the order of ``seeds``: what paired comparisons need
        "episode_returns": [float(r) for r in rets],
    }
    for key, value in (extra or {}).items():
        if key in metrics:
            raise ValueError(f"make_metrics: extra key {key!r} would replace a contract key")
        metrics[key] = value
    return metrics
