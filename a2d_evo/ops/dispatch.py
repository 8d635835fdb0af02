"""Which implementation of a native op runs: the compiled `a2d_evo._C` kernel or its reference twin.

The native kernel is used when the extension imports and ``A2D_EVO_REFERENCE_OPS`` is not set to a
true value (``1``, ``true``, ``yes``, ``on``); the variable is read at every call, so tests can
flip it with ``monkeypatch.setenv``. Generic over ops: an op ``name`` is native when ``_C`` has a
function of that name (``name_cuda`` for CUDA tensors, which also needs ``_C.has_cuda()``).

CUDA kernels run only once proven: a CUDA op is native when it is in :data:`CUDA_PROVEN` (its
parity test passed on a GPU and the run was recorded there) or when ``A2D_EVO_CUDA_KERNELS`` is
true (an explicit opt-in, e.g. for the parity run itself); otherwise CUDA tensors take the
reference path. A GPU below every architecture the kernels were compiled for
(``_C.cuda_architectures()``, ``CMAKE_CUDA_ARCHITECTURES``: 8.0, 8.9 and 9.0 by default) takes the
reference path too: its first call would fail with "no kernel image is available".
"""

from __future__ import annotations

import functools
import importlib
import os
import re
from types import ModuleType

__all__ = [
    "CUDA_ENV_VAR",
    "CUDA_PROVEN",
    "REFERENCE_ENV_VAR",
    "backend_name",
    "cuda_device_supported",
    "cuda_opted_in",
    "native_module",
    "native_op",
    "reference_forced",
]

REFERENCE_ENV_VAR = "A2D_EVO_REFERENCE_OPS"
CUDA_ENV_VAR = "A2D_EVO_CUDA_KERNELS"
_TRUE = frozenset({"1", "true", "yes", "on"})

CUDA_PROVEN: frozenset[str] = frozenset()
"""Ops whose CUDA kernel passed its parity test on a GPU: add a name here, with the GPU and the
date in a comment, after ``A2D_EVO_CUDA_KERNELS=1 pytest -m cuda`` passed there
(``benchmarks/bench_population.py --device cuda`` prints the subnet_eval names once its parity
checks pass). Empty: no CUDA kernel has run on a GPU yet."""


@functools.cache
def native_module() -> ModuleType | None:
    """The compiled `a2d_evo._C` module, or None when it is not built or does not load."""
    try:
        return importlib.import_module("a2d_evo._C")
    except ImportError:
        return None


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def reference_forced() -> bool:
    """True when the environment variable A2D_EVO_REFERENCE_OPS forces the reference ops."""
    return _env_true(REFERENCE_ENV_VAR)


def cuda_opted_in() -> bool:
    """True when A2D_EVO_CUDA_KERNELS opts in to CUDA kernels not yet in CUDA_PROVEN."""
    return _env_true(CUDA_ENV_VAR)


def native_op(op: str, device: str = "cpu") -> object | None:
    """The native function implementing `op` on `device` ("cpu", "cuda" for the current GPU,
    or "cuda:N"), or None."""
    if reference_forced():
        return None
    cuda = device.split(":")[0] == "cuda"
    if cuda and op not in CUDA_PROVEN and not cuda_opted_in():
        return None
    mod = native_module()
    if mod is None:
        return None
    if cuda:
        if not mod.has_cuda() or not cuda_device_supported(mod, device):
            return None
        return getattr(mod, f"{op}_cuda", None)
    return getattr(mod, op, None)


def cuda_device_supported(mod: ModuleType, device: str = "cuda") -> bool:
    """Whether the GPU ``device`` ("cuda": the current one, or "cuda:N") can run kernels
    compiled for ``mod.cuda_architectures()``: its compute capability at least the lowest of
    them (the build embeds PTX for each, which newer GPUs compile on load). True where the
    build does not say (a module from before it did, or ``native``/``all`` architectures);
    False without a GPU."""
    listed = getattr(mod, "cuda_architectures", lambda: "")()
    archs = [int(a) for a in re.findall(r"\d+", str(listed))]
    if not archs:
        return True
    import torch  # only on the CUDA path: the CPU ops need no torch

    if not torch.cuda.is_available():
        return False
    major, minor = torch.cuda.get_device_capability(device if ":" in device else None)
    return 10 * major + minor >= min(archs)


def backend_name(op: str, device: str = "cpu") -> str:
    """'native' or 'reference': the implementation `op` uses on `device` right now."""
    return "native" if native_op(op, device) is not None else "reference"
