"""One forward for a whole population of subnets (placeholder: reference path only)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from a2d_evo.errors import KernelInputError
from a2d_evo.search_space import Arch
from a2d_evo.supernet import Supernet


class PopulationForward:
    """Logits and values for row groups that belong to different subnets of one supernet."""

    def __init__(self, supernet: Supernet, device: torch.device | str | None = None) -> None:
        self.supernet = supernet
        self.device = torch.device(device or "cpu")
        self.backend = "torch"

    def refresh(self) -> None:
        """Re-read the supernet's weights."""

    @torch.no_grad()
    def __call__(
        self, obs: Any, group_archs: Sequence[Arch], group_sizes: Sequence[int]
    ) -> tuple[Any, Any]:
        as_numpy = isinstance(obs, np.ndarray)
        x = torch.as_tensor(obs, device=self.device)
        if sum(group_sizes) != x.shape[0] or len(group_archs) != len(group_sizes):
            raise KernelInputError("group sizes must cover the batch, one per arch")
        out = self.supernet.to(self.device).forward_groups(x, group_archs, group_sizes)
        if as_numpy:
            return out.logits.cpu().numpy(), out.value.cpu().numpy()
        return out.logits, out.value
