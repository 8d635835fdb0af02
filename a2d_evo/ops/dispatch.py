"""Which implementation of a native op runs: the compiled `a2d_evo._C` kernel or its reference twin.

The native kernel is used when the extension imports and ``A2D_EVO_REFERENCE_OPS`` is not set to a
true value (``1``, ``true``, ``yes``, ``on``); the variable is read at every call, so tests can
flip it with ``monkeypatch.setenv``. Generic over ops: an op ``name`` is native when ``_C`` has a
function of that name (``name_cuda`` for CUDA tensors, which also needs ``_C.has_cuda()``).
"""

from __future__ import annotations

import functools
import importlib
import os
from types import ModuleType

REFERENCE_ENV_VAR = "A2D_EVO_REFERENCE_OPS"
_TRUE = frozenset({"1", "true", "yes", "on"})


@functools.cache
def native_module() -> ModuleType | None:
    """The compiled `a2d_evo._C` module, or None when it is not built or does not load."""
    try:
        return importlib.import_module("a2d_evo._C")
    except ImportError:
        return None


def reference_forced() -> bool:
    """True when the environment variable A2D_EVO_REFERENCE_OPS forces the reference ops."""
    return os.environ.get(REFERENCE_ENV_VAR, "").strip().lower() in _TRUE


def native_op(op: str, device: str = "cpu") -> object | None:
    """The native function implementing `op` on `device` ("cpu" or "cuda"), or None."""
    if reference_forced():
        return None
    mod = native_module()
    if mod is None:
        return None
    if device == "cuda":
        if not mod.has_cuda():
            return None
        return getattr(mod, f"{op}_cuda", None)
    return getattr(mod, op, None)


def backend_name(op: str, device: str = "cpu") -> str:
    """'native' or 'reference': the implementation `op` uses on `device` right now."""
    return "native" if native_op(op, device) is not None else "reference"
