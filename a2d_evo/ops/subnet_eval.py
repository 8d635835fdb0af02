"""The population-forward op: packed supernet weights, the native kernel's backends.

The weights of a whole supernet live in one contiguous float32 buffer (transposed,
channels-last, zero-padded leading dimensions; layout in ``csrc/subnet_eval.h``) built with
:class:`Packer` and described by an int64 ``meta`` vector, built from named fields by
:func:`pack_meta` in the order the native module defines (:func:`meta_fields`). The native
kernel ``a2d_evo._C.subnet_eval_{mlp,cnn}`` (CPU: OpenMP + an AVX2/FMA micro-kernel; CUDA when
built with it) then computes the logits and values of a batch whose consecutive row groups
belong to different subnets. Which path runs is decided per device and network kind by
:data:`FASTEST`, the result of ``benchmarks/bench_population.py``, and for CUDA by
``ops.dispatch.CUDA_PROVEN``; ``A2D_EVO_REFERENCE_OPS=1`` forces the reference twin (the
per-subnet torch loop, see :mod:`a2d_evo.nets.population`, which packs a supernet and calls
this op).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from a2d_evo.errors import KernelInputError
from a2d_evo.ops import dispatch
from a2d_evo.ops.dispatch import native_op, reference_forced

__all__ = [
    "FASTEST",
    "PANEL",
    "PackedSupernet",
    "Packer",
    "meta_fields",
    "native_limits",
    "pack_meta",
    "round_up",
    "subnet_eval_backend",
]

FASTEST: dict[tuple[str, str], str] = {
    # benchmarks/bench_population.py, 2 cores (AMD EPYC Zen 3, AVX2), pop 64 x 8 rows, native
    # kernel vs the per-subnet torch loop: MLP 6-256-256-256 29x (97 vs 3.4 useful GFLOP/s),
    # random MLPs 58x; CNN random 2.5x (160 vs 64), Nature-sized 2.2x (163 vs 75, oneDNN).
    ("cpu", "mlp"): "native",
    ("cpu", "cnn"): "native",
    # Neither measured nor proven correct: the CUDA kernels have never run on a GPU. The native
    # kernel makes one launch per layer for the whole population, the torch loop one per layer
    # per subnet, so native is the expected winner; but until a parity run on a GPU puts
    # subnet_eval_{mlp,cnn} in ops.dispatch.CUDA_PROVEN, native_op() returns None for CUDA and
    # subnet_eval_backend() answers "reference" (A2D_EVO_CUDA_KERNELS=1 opts in).
    ("cuda", "mlp"): "native",
    ("cuda", "cnn"): "native",
}
"""The faster path per (device type, network kind): ``native`` or ``reference``."""

_ALIGN = 16  # floats: every packed block starts on a 64-byte boundary
PANEL = 16  # columns per panel of the panel-packed conv/FC weights (kPanel in subnet_eval.h)
_FIELD = re.compile(r"(\w+)(?:\[(\w+)\])?")  # "name" or "name[count]"


def round_up(x: int, m: int) -> int:
    return (x + m - 1) // m * m


class PackedSupernet(NamedTuple):
    """A supernet's weights in the kernel's layout: ``params`` float32, ``meta`` int64."""

    kind: str
    params: np.ndarray
    meta: np.ndarray
    arch_len: int
    n_actions: int


class Packer:
    """Builds the kernel's float32 buffer block by block, each 64-byte aligned."""

    def __init__(self) -> None:
        self.blocks: list[np.ndarray] = []
        self.size = 0

    def add(self, arr: np.ndarray) -> int:
        flat = np.ascontiguousarray(arr, dtype=np.float32).reshape(-1)
        off = self.size
        pad = round_up(flat.size, _ALIGN) - flat.size
        self.blocks.append(flat)
        if pad:
            self.blocks.append(np.zeros(pad, np.float32))
        self.size += flat.size + pad
        return off

    def cols(self, mat: np.ndarray, ld: int) -> int:
        """Add a (rows, cols) matrix zero-padded to ``ld`` columns."""
        out = np.zeros((mat.shape[0], ld), np.float32)
        out[:, : mat.shape[1]] = mat
        return self.add(out)

    def panels(self, mat: np.ndarray) -> int:
        """Add a (rows, cols) matrix panel-packed: 16-column panels of rows x 16, zero-padded."""
        rows, cols = mat.shape
        padded = np.zeros((rows, round_up(cols, PANEL)), np.float32)
        padded[:, :cols] = mat
        return self.add(padded.reshape(rows, -1, PANEL).transpose(1, 0, 2))

    def vec(self, v: np.ndarray, ld: int) -> int:
        out = np.zeros(ld, np.float32)
        out[: v.shape[0]] = v
        return self.add(out)

    def buffer(self) -> np.ndarray:
        return np.concatenate(self.blocks) if self.blocks else np.zeros(0, np.float32)


def meta_fields(kind: str) -> tuple[str, ...]:
    """The ordered field names of the kernel's ``meta`` vector for ``kind`` (``mlp``/``cnn``).

    The layout is defined once, in ``csrc/subnet_eval.h``, and read from the native module;
    ``name[count]`` is an array of ``meta[count]`` entries.
    """
    fn = getattr(dispatch.native_module(), "subnet_eval_meta_fields", None)
    if fn is None:
        raise KernelInputError(
            "packing a supernet needs a2d_evo._C with subnet_eval_meta_fields: rebuild it "
            "(pip install -e .)"
        )
    try:
        return tuple(fn(kind))
    except ValueError as exc:
        raise KernelInputError(str(exc)) from None


def native_limits() -> dict[str, int] | None:
    """The native kernel's limits (``max_mlp_layers``, ``max_conv_layers``, ``max_kernel_size``,
    ``max_stride``, ``cuda_mlp_max_width``, and the sizes its meta parser accepts:
    ``max_mlp_dim``, ``max_cnn_dim``, ``max_cnn_plane``, ``max_cnn_fc_rows``), defined once in
    ``csrc/subnet_eval.h`` and read from the native module; None without it (then nothing
    runs natively)."""
    fn = getattr(dispatch.native_module(), "subnet_eval_limits", None)
    return None if fn is None else {str(k): int(v) for k, v in fn().items()}


def pack_meta(kind: str, fields: Mapping[str, int | Sequence[int]]) -> np.ndarray:
    """The kernel's int64 ``meta`` vector from named fields, in the native layout's order.

    ``fields`` names every field of :func:`meta_fields` except ``kind`` (filled in here): a
    scalar as an int, an array ``name[count]`` as a sequence of ``fields[count]`` ints. A
    missing, unknown or wrongly sized field raises KernelInputError naming it.
    """
    layout = [_FIELD.fullmatch(f) for f in meta_fields(kind)]
    if not all(layout):
        raise KernelInputError(f"subnet_eval: unreadable {kind} meta layout {meta_fields(kind)}")
    spec = [(m.group(1), m.group(2)) for m in layout if m is not None]
    want = {name for name, _ in spec} - {"kind"}
    missing, unknown = sorted(want - set(fields)), sorted(set(fields) - want)
    if missing or unknown:
        raise KernelInputError(
            f"subnet_eval {kind} meta: missing fields {missing}, unknown fields {unknown}; "
            f"the native layout is {list(meta_fields(kind))}"
        )
    code = int(dispatch.native_module().subnet_eval_meta_kind(kind))  # type: ignore[union-attr]
    meta: list[int] = []
    for name, count in spec:
        value = code if name == "kind" else fields[name]
        if count is None:
            if not isinstance(value, int | np.integer):
                raise KernelInputError(f"subnet_eval {kind} meta: {name} must be an int")
            meta.append(int(value))
            continue
        if isinstance(value, int | np.integer) or len(value) != fields[count]:
            raise KernelInputError(
                f"subnet_eval {kind} meta: {name} must hold {count} = {fields[count]} entries"
            )
        meta += [int(v) for v in value]
    return np.asarray(meta, np.int64)


def subnet_eval_backend(kind: str, device: str = "cpu") -> str:
    """``native`` or ``reference``: the path a :class:`PopulationForward` takes right now on
    ``device`` ("cpu", "cuda" or "cuda:N")."""
    op = f"subnet_eval_{kind}"
    if reference_forced() or native_op(op, device) is None:
        return "reference"
    return FASTEST.get((device.split(":")[0], kind), "native")
