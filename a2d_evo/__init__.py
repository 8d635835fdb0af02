"""a2d-evo: small, fast deep-RL agents by distilled one-shot NAS and NSGA-II."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Agent", "PolicyOutput", "__version__", "load_agent"]

# Public names imported on first use, so that ``import a2d_evo`` does not import torch.
_LAZY = {
    "Agent": "a2d_evo.nets.agent",
    "PolicyOutput": "a2d_evo.nets.agent",
    "load_agent": "a2d_evo.nets.agent_folder",
}

if TYPE_CHECKING:
    from a2d_evo.nets.agent import Agent, PolicyOutput
    from a2d_evo.nets.agent_folder import load_agent


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'a2d_evo' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
