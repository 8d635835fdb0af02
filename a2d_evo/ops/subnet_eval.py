"""The population-forward op: packed supernet weights, the native kernel's backends.

The weights of a whole supernet live in one contiguous float32 buffer (transposed,
channels-last, zero-padded leading dimensions; layout in ``csrc/subnet_eval.h``) built with
:class:`Packer`; the native kernel ``a2d_evo._C.subnet_eval_{mlp,cnn}`` (CPU: OpenMP + an
AVX2/FMA micro-kernel; CUDA when built with it) then computes the logits and values of a batch
whose consecutive row groups belong to different subnets. Which path runs is decided per
device and network kind by :data:`FASTEST`, the result of ``benchmarks/bench_population.py``;
``A2D_EVO_REFERENCE_OPS=1`` forces the reference twin (the per-subnet torch loop, see
:mod:`a2d_evo.nets.population`, which packs a supernet and calls this op).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from a2d_evo.ops.dispatch import native_op, reference_forced

__all__ = ["FASTEST", "PANEL", "PackedSupernet", "Packer", "round_up", "subnet_eval_backend"]

FASTEST: dict[tuple[str, str], str] = {
    # benchmarks/bench_population.py, 2 cores (AMD EPYC Zen 3, AVX2), pop 64 x 8 rows, native
    # kernel vs the per-subnet torch loop: MLP 6-256-256-256 29x (97 vs 3.4 useful GFLOP/s),
    # random MLPs 58x; CNN random 2.5x (160 vs 64), Nature-sized 2.2x (163 vs 75, oneDNN).
    ("cpu", "mlp"): "native",
    ("cpu", "cnn"): "native",
    # Not measured here (no GPU in this environment): the native kernel makes one launch per
    # layer for the whole population, the torch loop one per layer per subnet.
    ("cuda", "mlp"): "native",
    ("cuda", "cnn"): "native",
}
"""The faster path per (device type, network kind): ``native`` or ``reference``."""

_ALIGN = 16  # floats: every packed block starts on a 64-byte boundary
PANEL = 16  # columns per panel of the panel-packed conv/FC weights (kPanel in subnet_eval.h)


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


def subnet_eval_backend(kind: str, device: str = "cpu") -> str:
    """``native`` or ``reference``: the path a :class:`PopulationForward` takes right now."""
    op = f"subnet_eval_{kind}"
    if reference_forced() or native_op(op, device) is None:
        return "reference"
    return FASTEST.get((device, kind), "native")


