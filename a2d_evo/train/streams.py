"""What makes a training stage reproducible: its random streams and its torch thread count.

:class:`Streams` derives every generator of a stage from ``(cfg.seed, stage)``: the network
init seed, a ``torch.Generator`` for actions, a numpy ``Generator`` for minibatches and
subnet draws, and the env reset seeds. :func:`set_threads` fixes torch's intra-op threads,
since the thread count changes the order of float sums and so the trained weights.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from a2d_evo.config import Config

M = TypeVar("M", bound=nn.Module)

STAGE_KEYS = {"teacher": 1, "supernet": 2, "finetune": 3, "baseline": 4}
"""Stage ids mixed into the seed, so that stages of one run draw independent streams."""


class Streams:
    """Every random stream of one training stage, derived from ``(seed, stage)``."""

    def __init__(self, seed: int, stage: str) -> None:
        self.root = [int(seed), STAGE_KEYS[stage]]
        init, actions, rng = np.random.SeedSequence(self.root).spawn(3)
        self.init_seed = int(init.generate_state(1, np.uint64)[0])
        self.actions = torch.Generator().manual_seed(int(actions.generate_state(1, np.uint64)[0]))
        self.rng = np.random.default_rng(rng)

    def env_seeds(self, update: int, n: int) -> list[int]:
        """Reset seeds of the ``n`` envs at the start of update ``update + 1``."""
        ss = np.random.SeedSequence([*self.root, 7, int(update)])
        return [int(s) for s in ss.generate_state(n, np.uint32)]

    def build(self, make: Callable[[], M]) -> M:
        """Call ``make`` with torch's global RNG seeded from the run (and restored after)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.init_seed)
            return make()

    def state(self) -> dict[str, Any]:
        """The generators' states as plain data (numpy's int dict, torch's byte tensor)."""
        return {"numpy": self.rng.bit_generator.state, "torch_actions": self.actions.get_state()}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state` returned."""
        self.rng.bit_generator.state = state["numpy"]
        self.actions.set_state(state["torch_actions"])


def set_threads(cfg: Config) -> None:
    """torch intra-op threads per ``cfg.torch_threads`` (0 leaves torch's default)."""
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
