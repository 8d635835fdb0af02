"""The only door to the native kernels: typed wrappers that dispatch to `a2d_evo._C` or to a
pure numpy reference twin (forced with ``A2D_EVO_REFERENCE_OPS=1``; CUDA kernels only once in
``CUDA_PROVEN`` or with ``A2D_EVO_CUDA_KERNELS=1``)."""

from a2d_evo.ops.dispatch import (
    CUDA_ENV_VAR,
    CUDA_PROVEN,
    REFERENCE_ENV_VAR,
    backend_name,
    cuda_opted_in,
    native_module,
    native_op,
    reference_forced,
)
from a2d_evo.ops.preprocess import (
    preprocess_frames,
    preprocess_frames_reference,
    push_frames,
    push_frames_reference,
)
from a2d_evo.ops.subnet_eval import (
    PackedSupernet,
    Packer,
    meta_fields,
    pack_meta,
    subnet_eval_backend,
)

__all__ = [
    "CUDA_ENV_VAR",
    "CUDA_PROVEN",
    "REFERENCE_ENV_VAR",
    "PackedSupernet",
    "Packer",
    "backend_name",
    "cuda_opted_in",
    "meta_fields",
    "native_module",
    "native_op",
    "pack_meta",
    "preprocess_frames",
    "preprocess_frames_reference",
    "push_frames",
    "push_frames_reference",
    "reference_forced",
    "subnet_eval_backend",
]
