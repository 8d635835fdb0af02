"""Typed stub of the native module `a2d_evo._C` (csrc/bindings.cpp, which registers each op's
functions from csrc/<op>_bindings.cpp). Use `a2d_evo.ops`, not this.

The CUDA functions exist only when the extension was built with a CUDA compiler
(`has_cuda()` is then True); they take device pointers and a cudaStream_t as integers.
"""

import numpy as np
import numpy.typing as npt

def has_cuda() -> bool:
    """True when the CUDA kernels were compiled in."""

def cuda_architectures() -> str:
    """The CUDA architectures the kernels were compiled for ("80 89 90"); "" without CUDA."""

def has_openmp() -> bool:
    """True when the CPU kernels run with OpenMP."""

def max_threads() -> int:
    """OpenMP's thread count for the next parallel region."""

def set_num_threads(n: int) -> None:
    """Set OpenMP's thread count (n >= 1)."""

# ---- preprocess (csrc/preprocess_bindings.cpp; kernels in csrc/preprocess*.{h,cpp,cu}) ----

def preprocess_frames(raw: npt.NDArray[np.uint8], out: npt.NDArray[np.uint8]) -> None:
    """Max of each env's two frames, grey, area-resized into out (N, size, size); GIL released.

    raw: (N, 2, H, W) or (N, 2, H, W, 3), C-contiguous. out: frames C-contiguous, any batch
    stride >= size * size, writable. Raises ValueError on a bad layout.
    """

def push_frames(
    raw: npt.NDArray[np.uint8],
    stack: npt.NDArray[np.uint8],
    reset_mask: npt.NDArray[np.bool_] | None = None,
) -> None:
    """Shift each env's (K, size, size) stack left, write the new frame into slot K - 1; envs
    with reset_mask set get the new frame in all K slots. GIL released."""

def preprocess_isa() -> str:
    """The CPU code path preprocess runs: 'avx2' or 'generic' (A2D_EVO_PREPROCESS_ISA=generic)."""

def preprocess_frames_cuda(
    raw_ptr: int,
    out_ptr: int,
    out_batch_stride: int,
    n: int,
    h: int,
    w: int,
    channels: int,
    size: int,
    stream: int,
) -> None:
    """preprocess_frames on device pointers, enqueued on `stream` (only with has_cuda())."""

def push_frames_cuda(
    raw_ptr: int,
    stack_ptr: int,
    reset_mask_ptr: int,
    n: int,
    k: int,
    h: int,
    w: int,
    channels: int,
    size: int,
    stream: int,
) -> None:
    """push_frames on device pointers; reset_mask_ptr 0 means no resets (only with has_cuda())."""

# ---- subnet_eval (csrc/subnet_eval_bindings.cpp; kernels in csrc/subnet_eval*.{h,cpp,cu}) ----

def subnet_eval_meta_fields(kind: str) -> list[str]:
    """The ordered field names of the int64 meta vector of kind 'mlp' or 'cnn' (ValueError for
    another kind); 'name[count]' is an array of meta[count] entries."""

def subnet_eval_meta_kind(kind: str) -> int:
    """The value of the 'kind' field of a meta vector of kind 'mlp' or 'cnn'."""

def subnet_eval_mlp(
    obs: npt.NDArray[np.float32],
    params: npt.NDArray[np.float32],
    meta: npt.NDArray[np.int64],
    archs: npt.NDArray[np.int32],
    rows: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """(logits, values) of row groups through different subnets of a packed MLP supernet."""

def subnet_eval_cnn(
    obs: npt.NDArray[np.uint8],
    params: npt.NDArray[np.float32],
    meta: npt.NDArray[np.int64],
    archs: npt.NDArray[np.int32],
    rows: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """(logits, values) of uint8 frame groups through subnets of a packed CNN supernet."""

def subnet_eval_limits() -> dict[str, int]:
    """The packed layout's limits: max_mlp_layers, max_conv_layers, max_kernel_size, max_stride,
    cuda_mlp_max_width, max_mlp_dim, max_cnn_dim, max_cnn_plane, max_cnn_fc_rows."""

def subnet_eval_isa() -> str:
    """The CPU micro-kernel subnet_eval runs: 'avx2-fma' or 'generic'."""

def subnet_eval_cuda_workspace(meta: npt.NDArray[np.int64], n_rows: int, n_groups: int) -> int:
    """Bytes of device workspace a CUDA call needs (only with has_cuda())."""

def subnet_eval_mlp_cuda(
    obs_ptr: int,
    n_rows: int,
    params_ptr: int,
    n_params: int,
    meta: npt.NDArray[np.int64],
    archs: npt.NDArray[np.int32],
    rows: npt.NDArray[np.int64],
    logits_ptr: int,
    values_ptr: int,
    workspace_ptr: int,
    workspace_bytes: int,
    stream: int,
) -> None:
    """subnet_eval_mlp on device pointers, enqueued on a cudaStream_t (only with has_cuda())."""

def subnet_eval_cnn_cuda(
    obs_ptr: int,
    n_rows: int,
    params_ptr: int,
    n_params: int,
    meta: npt.NDArray[np.int64],
    archs: npt.NDArray[np.int32],
    rows: npt.NDArray[np.int64],
    logits_ptr: int,
    values_ptr: int,
    workspace_ptr: int,
    workspace_bytes: int,
    stream: int,
) -> None:
    """subnet_eval_cnn on device pointers, enqueued on a cudaStream_t (only with has_cuda())."""
