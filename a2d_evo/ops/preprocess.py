"""Atari frame preprocessing: max of the last two raw frames, grey, area-resize, frame stacking.

This is the batched form of gymnasium's ``AtariPreprocessing`` observation step (``np.maximum`` of
the two last frames, then ``cv2.resize(..., interpolation=cv2.INTER_AREA)``) plus the update of
``FrameStackObservation``, for all N environments in one native call (``csrc/preprocess*``).

``preprocess_frames`` and ``push_frames`` dispatch to the native kernel (CPU, or CUDA for torch
CUDA tensors) unless ``A2D_EVO_REFERENCE_OPS=1``; ``preprocess_frames_reference`` and
``push_frames_reference`` are the pure numpy twins. The twin reproduces OpenCV's INTER_AREA
algorithm step for step (its float32 box filter, its integer fast path for integer factors and
its fixed-point bilinear for upscaling), so it matches ``cv2.resize`` exactly on the cases we
test. The native kernel computes the box filter exactly in integers instead and rounds half to
even, as OpenCV's cvRound does (scales like 96 -> 84 make exact .5s common); it differs from
OpenCV by one grey level only where OpenCV's float32 rounding pushes a value across a .5, and is
identical on more than 99% of the pixels on every tested size.

RGB input ``(N, 2, H, W, 3)`` is turned into grey with ALE's own formula (ColourPalette.cpp:
``round(0.2989 r + 0.5870 g + 0.1140 b)``) frame by frame, then max-pooled. That is what
gymnasium's ``AtariPreprocessing(grayscale_obs=True)`` does on an ``obs_type="rgb"`` env: it reads
``ale.getScreenGrayscale()`` for both frames and max-pools them, and ALE's grey screen is that
formula applied to its RGB screen, so RGB input gives exactly the grey pipeline's frames (tested
on real screens). Max-then-grey would instead mix channels of two frames into a colour neither
frame shows; gymnasium's ``grayscale_obs=False`` keeps colour, which this op does not produce.
"""

from __future__ import annotations

import functools
import math
import sys
from typing import Any

import numpy as np

from a2d_evo.errors import KernelInputError
from a2d_evo.ops import dispatch

__all__ = [
    "preprocess_frames",
    "preprocess_frames_reference",
    "push_frames",
    "push_frames_reference",
]

_MAX_SIZE = 65536
_MAX_SIDE = 1 << 20
"""The highest and widest raw frame taken (the CPU bindings' bound too; on the GPU a side
near 2^31 overflowed the resize plan's int arithmetic)."""


# ---------------------------------------------------------------------------- validation


def _check_size(size: Any) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise KernelInputError(f"size must be an int, got {type(size).__name__}")
    if not 1 <= int(size) <= _MAX_SIZE:
        raise KernelInputError(f"size must be in [1, {_MAX_SIZE}], got {size}")
    return int(size)


def _check_raw_shape(shape: tuple[int, ...], what: str = "raw") -> tuple[int, int, int, int]:
    """(n, h, w, channels) of a raw frame-pair batch shape, or KernelInputError."""
    if len(shape) not in (4, 5) or (len(shape) == 5 and shape[4] != 3):
        raise KernelInputError(
            f"{what} must have shape (N, 2, H, W) (grey) or (N, 2, H, W, 3) (RGB), got {shape}"
        )
    if shape[1] != 2:
        raise KernelInputError(
            f"{what}'s second axis must hold the 2 frames to max-pool, got shape {shape}"
        )
    if shape[2] < 1 or shape[3] < 1:
        raise KernelInputError(f"{what} frames must not be empty, got shape {shape}")
    if shape[2] > _MAX_SIDE or shape[3] > _MAX_SIDE:  # the native bindings' bound, on every path
        raise KernelInputError(
            f"{what} frames must be at most 2^20 pixels high and wide, got shape {shape}"
        )
    return shape[0], shape[2], shape[3], 1 if len(shape) == 4 else 3


def _check_raw(raw: Any) -> tuple[int, int, int, int]:
    if not isinstance(raw, np.ndarray):
        raise KernelInputError(
            f"raw must be a numpy array or a torch tensor, got {type(raw).__name__}"
        )
    if raw.dtype != np.uint8:
        raise KernelInputError(f"raw must be uint8, got {raw.dtype}")
    geometry = _check_raw_shape(raw.shape)
    if not raw.flags.c_contiguous:
        raise KernelInputError(
            "raw must be C-contiguous (no copy is made); use np.ascontiguousarray"
        )
    return geometry


def _check_out(out: Any, raw: np.ndarray, n: int, size: int) -> np.ndarray:
    if not isinstance(out, np.ndarray):
        raise KernelInputError(f"out must be a numpy array, got {type(out).__name__}")
    if out.dtype != np.uint8:
        raise KernelInputError(f"out must be uint8, got {out.dtype}")
    if out.shape != (n, size, size):
        raise KernelInputError(f"out must have shape {(n, size, size)}, got {out.shape}")
    bad_strides = out.strides[1:] != (size, 1) or (n > 1 and out.strides[0] < size * size)
    if n and bad_strides:
        raise KernelInputError(
            f"out frames must be C-contiguous and must not overlap: strides (>= {size * size}, "
            f"{size}, 1) needed, got {out.strides}"
        )
    if not out.flags.writeable:
        raise KernelInputError("out is read-only")
    if np.may_share_memory(out, raw):
        raise KernelInputError("out must not share memory with raw")
    return out


def _check_stack(stack: Any, raw: np.ndarray, n: int) -> np.ndarray:
    if not isinstance(stack, np.ndarray):
        raise KernelInputError(f"stack must be a numpy array, got {type(stack).__name__}")
    if stack.dtype != np.uint8:
        raise KernelInputError(f"stack must be uint8, got {stack.dtype}")
    if stack.ndim != 4 or stack.shape[0] != n or stack.shape[1] < 1:
        raise KernelInputError(f"stack must have shape ({n}, K, size, size), got {stack.shape}")
    if stack.shape[2] != stack.shape[3]:
        raise KernelInputError(f"stack frames must be square, got shape {stack.shape}")
    _check_size(stack.shape[2])
    if not stack.flags.c_contiguous:
        raise KernelInputError("stack must be C-contiguous")
    if not stack.flags.writeable:
        raise KernelInputError("stack is read-only")
    if np.may_share_memory(stack, raw):
        raise KernelInputError("stack must not share memory with raw")
    return stack


def _check_mask(reset_mask: Any, n: int) -> np.ndarray | None:
    if reset_mask is None:
        return None
    mask = np.asarray(reset_mask)
    if mask.dtype != np.bool_:
        raise KernelInputError(f"reset_mask must be bool, got {mask.dtype}")
    if mask.shape != (n,):
        raise KernelInputError(f"reset_mask must have shape ({n},), got {mask.shape}")
    return np.ascontiguousarray(mask)


# ------------------------------------------------------------------ numpy reference (OpenCV)


def _ale_grey(rgb: np.ndarray) -> np.ndarray:
    """ALE's grey level (ColourPalette.cpp): round(0.2989 r + 0.5870 g + 0.1140 b) in doubles."""
    f = rgb.astype(np.float64)
    x = f[..., 0] * 0.2989 + f[..., 1] * 0.5870 + f[..., 2] * 0.1140
    return np.floor(x + 0.5).astype(np.uint8)


def _max_grey(raw: np.ndarray) -> np.ndarray:
    if raw.ndim == 5:
        return np.maximum(_ale_grey(raw[:, 0]), _ale_grey(raw[:, 1]))
    return np.maximum(raw[:, 0], raw[:, 1])


def _opencv_mode(h: int, w: int, size: int) -> tuple[str, int, int]:
    """cv::resize's choice for INTER_AREA (same double arithmetic): mode, y and x factors."""
    scale_x = 1.0 / (size / w)
    scale_y = 1.0 / (size / h)
    if scale_x >= 1 and scale_y >= 1:
        ix, iy = round(scale_x), round(scale_y)
        eps = np.finfo(np.float64).eps
        if abs(scale_x - ix) < eps and abs(scale_y - iy) < eps:
            return "fast", iy, ix
        return "area", 0, 0
    return "linear", 0, 0


@functools.lru_cache(maxsize=64)
def _area_taps(ssize: int, dsize: int) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's computeResizeAreaTab as (T, dsize) source indices and float32 weights, in the
    order OpenCV accumulates them, padded with zero weights."""
    scale = 1.0 / (dsize / ssize)
    taps: list[list[tuple[int, np.float32]]] = []
    for d in range(dsize):
        fsx1 = d * scale
        fsx2 = fsx1 + scale
        cell = min(scale, ssize - fsx1)
        sx2 = min(math.floor(fsx2), ssize - 1)
        sx1 = min(math.ceil(fsx1), sx2)
        row: list[tuple[int, np.float32]] = []
        if sx1 - fsx1 > 1e-3:
            row.append((sx1 - 1, np.float32((sx1 - fsx1) / cell)))
        row.extend((sx, np.float32(1.0 / cell)) for sx in range(sx1, sx2))
        if fsx2 - sx2 > 1e-3:
            row.append((sx2, np.float32(min(min(fsx2 - sx2, 1.0), cell) / cell)))
        taps.append(row)
    t = max(len(r) for r in taps)
    idx = np.zeros((t, dsize), np.intp)
    wts = np.zeros((t, dsize), np.float32)
    for d, row in enumerate(taps):
        for k, (s, a) in enumerate(row):
            idx[k, d], wts[k, d] = s, a
    return idx, wts


@functools.lru_cache(maxsize=64)
def _linear_taps(ssize: int, dsize: int) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's area-mode bilinear coefficients for 8-bit: (2, dsize) indices, int64 weights
    (11-bit fixed point)."""
    scale = 1.0 / (dsize / ssize)
    inv = dsize / ssize
    idx = np.zeros((2, dsize), np.intp)
    wts = np.zeros((2, dsize), np.int64)
    for d in range(dsize):
        sx = math.floor(d * scale)
        fx = np.float32((d + 1) - (sx + 1) * inv)
        fx = np.float32(0) if fx <= 0 else np.float32(fx - np.floor(fx))
        if sx >= ssize - 1:
            sx, fx = ssize - 1, np.float32(0)
        idx[:, d] = sx, min(sx + 1, ssize - 1)
        wts[0, d] = int(np.rint((np.float32(1) - fx) * np.float32(2048)))
        wts[1, d] = int(np.rint(fx * np.float32(2048)))
    return idx, wts


def _resize_area_float32(m: np.ndarray, size: int) -> np.ndarray:
    """OpenCV's resizeArea_ for 8-bit: horizontal then vertical sums, all in float32."""
    _, h, w = m.shape
    xi, xw = _area_taps(w, size)
    yi, yw = _area_taps(h, size)
    mf = m.astype(np.float32)
    buf = np.zeros((m.shape[0], h, size), np.float32)
    for k in range(xi.shape[0]):
        buf += mf[:, :, xi[k]] * xw[k]
    acc = yw[0][:, None] * buf[:, yi[0], :]
    for k in range(1, yi.shape[0]):
        acc += yw[k][:, None] * buf[:, yi[k], :]
    return np.clip(np.rint(acc), 0, 255).astype(np.uint8)


def _resize_linear_fixed(m: np.ndarray, size: int) -> np.ndarray:
    """OpenCV's INTER_AREA upscaling: area-mode bilinear in its 8-bit fixed-point arithmetic."""
    _, h, w = m.shape
    xi, xw = _linear_taps(w, size)
    yi, yw = _linear_taps(h, size)
    mi = m.astype(np.int64)
    hs = mi[:, :, xi[0]] * xw[0] + mi[:, :, xi[1]] * xw[1]  # (N, H, size), scale 2^11
    y = ((hs[:, yi[0], :] >> 4) * yw[0][:, None] >> 16) + (
        (hs[:, yi[1], :] >> 4) * yw[1][:, None] >> 16
    )
    return np.clip((y + 2) >> 2, 0, 255).astype(np.uint8)


def _resize_reference(m: np.ndarray, size: int) -> np.ndarray:
    n, h, w = m.shape
    mode, fy, fx = _opencv_mode(h, w, size)
    if mode == "fast":
        s = m.reshape(n, size, fy, size, fx).sum(axis=(2, 4), dtype=np.int64)
        if fy == 2 and fx == 2:
            return ((s + 2) >> 2).astype(np.uint8)
        v = s.astype(np.float32) * np.float32(1.0 / (fy * fx))
        return np.clip(np.rint(v), 0, 255).astype(np.uint8)
    if mode == "area":
        return _resize_area_float32(m, size)
    return _resize_linear_fixed(m, size)


def preprocess_frames_reference(
    raw: np.ndarray, out: np.ndarray | None = None, size: int = 84
) -> np.ndarray:
    """Pure numpy twin of `preprocess_frames` (numpy arrays only), an emulation of OpenCV."""
    size = _check_size(size)
    n, _, _, _ = _check_raw(raw)
    if out is not None:
        _check_out(out, raw, n, size)
    result = _resize_reference(_max_grey(raw), size) if n else np.empty((0, size, size), np.uint8)
    if out is None:
        return result
    out[...] = result
    return out


def push_frames_reference(
    raw: np.ndarray, stack: np.ndarray, reset_mask: np.ndarray | None = None
) -> np.ndarray:
    """Pure numpy twin of `push_frames` (numpy arrays only)."""
    n, _, _, _ = _check_raw(raw)
    _check_stack(stack, raw, n)
    mask = _check_mask(reset_mask, n)
    new = preprocess_frames_reference(raw, size=stack.shape[2])
    if stack.shape[1] > 1:
        stack[:, :-1] = stack[:, 1:]  # numpy buffers the overlapping copy
    stack[:, -1] = new
    if mask is not None and stack.shape[1] > 1:
        stack[mask, :-1] = new[mask][:, None]
    return stack


# ------------------------------------------------------------------------ dispatch


def _torch_of(x: Any) -> Any:
    """The torch module when x is a torch tensor (torch already imported), else None."""
    torch = sys.modules.get("torch")
    return torch if torch is not None and isinstance(x, torch.Tensor) else None


def _native_call(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except ValueError as e:  # the binding's own checks; the Python ones above should fire first
        raise KernelInputError(str(e)) from None


def preprocess_frames(raw: Any, out: Any = None, size: int = 84) -> Any:
    """Max-pool each env's two last frames, convert to grey, area-resize to (size, size).

    raw: uint8 (N, 2, H, W) grey or (N, 2, H, W, 3) RGB, C-contiguous (numpy, or torch CPU/CUDA).
    out: optional uint8 (N, size, size) whose frames are C-contiguous; the batch stride is free,
    so ``stack[:, k]`` of a (N, K, size, size) frame stack can be filled in place. Returns out
    (a new array when out is None). Bad input raises KernelInputError; nothing is copied silently.
    """
    size = _check_size(size)
    torch = _torch_of(raw)
    if torch is not None:
        return _preprocess_torch(torch, raw, out, size)
    if _torch_of(out) is not None:
        raise KernelInputError("out is a torch tensor but raw is a numpy array")
    n, _, _, _ = _check_raw(raw)
    if out is None:
        out = np.empty((n, size, size), np.uint8)
    else:
        _check_out(out, raw, n, size)
    fn = dispatch.native_op("preprocess_frames")
    if fn is None:
        return preprocess_frames_reference(raw, out, size)
    if n:
        _native_call(fn, raw, out)
    return out


def push_frames(raw: Any, stack: Any, reset_mask: Any = None) -> Any:
    """Shift each env's frame stack left and write its new preprocessed frame into the last slot.

    stack: uint8 (N, K, size, size), C-contiguous, updated in place and returned. Where
    reset_mask[i] is true (bool (N,)), all K slots of env i get the new frame: the padding of
    gymnasium's ``FrameStackObservation(padding_type="reset")``, its default, which repeats the
    reset observation. One native call for all envs.
    """
    torch = _torch_of(raw)
    if torch is not None:
        return _push_torch(torch, raw, stack, reset_mask)
    if _torch_of(stack) is not None:
        raise KernelInputError("stack is a torch tensor but raw is a numpy array")
    n, _, _, _ = _check_raw(raw)
    _check_stack(stack, raw, n)
    mask = _check_mask(reset_mask, n)
    fn = dispatch.native_op("push_frames")
    if fn is None:
        return push_frames_reference(raw, stack, mask)
    if n:
        _native_call(fn, raw, stack, mask)
    return stack


# --------------------------------------------------------------------------- torch


def _torch_numpy(torch: Any, t: Any, what: str) -> np.ndarray:
    if not isinstance(t, torch.Tensor):
        raise KernelInputError(f"{what} must be a torch tensor like raw, got {type(t).__name__}")
    if t.device.type != "cpu":
        raise KernelInputError(f"{what} is on {t.device} but raw is on the CPU")
    return t.numpy()  # shares memory; uint8 tensors never require grad


def _check_torch_cuda(torch: Any, raw: Any) -> tuple[int, int, int, int]:
    if raw.dtype != torch.uint8:
        raise KernelInputError(f"raw must be torch.uint8, got {raw.dtype}")
    geometry = _check_raw_shape(tuple(raw.shape))
    if not raw.is_contiguous():
        raise KernelInputError("raw must be contiguous (no copy is made)")
    return geometry


def _check_torch_target(torch: Any, t: Any, raw: Any, what: str) -> None:
    if not isinstance(t, torch.Tensor) or t.device != raw.device:
        raise KernelInputError(f"{what} must be a torch tensor on {raw.device}")
    if t.dtype != torch.uint8:
        raise KernelInputError(f"{what} must be torch.uint8, got {t.dtype}")
    if tensors_overlap(t, raw):  # the numpy paths' may_share_memory: a race on the GPU
        raise KernelInputError(f"{what} must not share memory with raw")


def tensors_overlap(a: Any, b: Any) -> bool:
    """Whether the byte ranges two strided tensors span intersect (a bound, as numpy's
    ``may_share_memory``: interleaved views that touch no common byte count too)."""
    if a.numel() == 0 or b.numel() == 0:
        return False

    def span(t: Any) -> tuple[int, int]:
        last = sum((n - 1) * s for n, s in zip(t.shape, t.stride(), strict=True))
        return t.data_ptr(), t.data_ptr() + (last + 1) * t.element_size()

    (a0, a1), (b0, b1) = span(a), span(b)
    return a0 < b1 and b0 < a1


def _preprocess_torch(torch: Any, raw: Any, out: Any, size: int) -> Any:
    if raw.device.type == "cpu":
        if out is None:
            return torch.from_numpy(preprocess_frames(raw.numpy(), None, size))
        preprocess_frames(raw.numpy(), _torch_numpy(torch, out, "out"), size)
        return out
    if raw.device.type != "cuda":
        raise KernelInputError(f"raw on {raw.device} is not supported (cpu or cuda only)")
    n, h, w, c = _check_torch_cuda(torch, raw)
    if out is None:
        out = torch.empty((n, size, size), dtype=torch.uint8, device=raw.device)
    else:
        _check_torch_target(torch, out, raw, "out")
        if tuple(out.shape) != (n, size, size):
            raise KernelInputError(f"out must have shape {(n, size, size)}, got {tuple(out.shape)}")
        if out.stride()[1:] != (size, 1) or (n > 1 and out.stride(0) < size * size):
            raise KernelInputError(
                f"out frames must be contiguous and must not overlap, got strides {out.stride()}"
            )
    if n == 0:
        return out
    fn = dispatch.native_op("preprocess_frames", str(raw.device))  # that GPU's capability
    if fn is None:
        out.copy_(torch.from_numpy(preprocess_frames_reference(raw.cpu().numpy(), size=size)))
        return out
    with torch.cuda.device(raw.device):
        stream = torch.cuda.current_stream(raw.device).cuda_stream
        _native_call(fn, raw.data_ptr(), out.data_ptr(), out.stride(0), n, h, w, c, size, stream)
    return out


def _push_torch(torch: Any, raw: Any, stack: Any, reset_mask: Any) -> Any:
    if raw.device.type == "cpu":
        mask = reset_mask
        if _torch_of(reset_mask) is not None:
            mask = _torch_numpy(torch, reset_mask, "reset_mask")
        push_frames(raw.numpy(), _torch_numpy(torch, stack, "stack"), mask)
        return stack
    if raw.device.type != "cuda":
        raise KernelInputError(f"raw on {raw.device} is not supported (cpu or cuda only)")
    n, h, w, c = _check_torch_cuda(torch, raw)
    _check_torch_target(torch, stack, raw, "stack")
    if stack.dim() != 4 or stack.shape[0] != n or stack.shape[1] < 1:
        raise KernelInputError(f"stack must have shape ({n}, K, size, size), got {stack.shape}")
    if stack.shape[2] != stack.shape[3] or not stack.is_contiguous():
        raise KernelInputError("stack must be contiguous with square frames")
    k, size = int(stack.shape[1]), _check_size(int(stack.shape[2]))
    if reset_mask is not None:
        if not isinstance(reset_mask, torch.Tensor) or reset_mask.device != raw.device:
            raise KernelInputError(f"reset_mask must be a torch bool tensor on {raw.device}")
        if reset_mask.dtype != torch.bool or tuple(reset_mask.shape) != (n,):
            raise KernelInputError(f"reset_mask must be torch.bool of shape ({n},)")
        reset_mask = reset_mask.contiguous()
    if n == 0:
        return stack
    fn = dispatch.native_op("push_frames", str(raw.device))  # that GPU's capability
    if fn is None:
        new = preprocess_frames(raw, size=size)
        if k > 1:
            stack[:, :-1] = stack[:, 1:].clone()
        stack[:, -1] = new
        if reset_mask is not None and k > 1:
            stack[reset_mask, :-1] = new[reset_mask].unsqueeze(1)
        return stack
    mask_ptr = 0 if reset_mask is None else reset_mask.data_ptr()
    with torch.cuda.device(raw.device):
        stream = torch.cuda.current_stream(raw.device).cuda_stream
        _native_call(fn, raw.data_ptr(), stack.data_ptr(), mask_ptr, n, k, h, w, c, size, stream)
    return stack
