"""The only door to the native kernels: typed wrappers that dispatch to `a2d_evo._C` or to a
pure numpy reference twin (forced with ``A2D_EVO_REFERENCE_OPS=1``)."""

from a2d_evo.ops.dispatch import (
    REFERENCE_ENV_VAR,
    backend_name,
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
from a2d_evo.ops.subnet_eval import PackedSupernet, Packer, subnet_eval_backend

__all__ = [
    "REFERENCE_ENV_VAR",
    "PackedSupernet",
    "Packer",
    "backend_name",
    "native_module",
    "native_op",
    "preprocess_frames",
    "preprocess_frames_reference",
    "push_frames",
    "push_frames_reference",
    "reference_forced",
    "subnet_eval_backend",
]
