"""Shared fixtures. The package under test is the installed one (with its native module)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from a2d_evo.nets.agent import Agent
    from a2d_evo.nets.supernet import Supernet

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"


@pytest.fixture(scope="session")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished two-generation search (``test_evolve.SMALL``: teacher, supernet,
    ``search/``), shared read-only: a test that edits it works on a copy."""
    from test_evolve import SMALL, make_run

    from a2d_evo.runs.folder import RunFolder
    from a2d_evo.search.evolution import evolve

    root = tmp_path_factory.mktemp("finished")
    evolve(make_run(root, SMALL), RunFolder(root), progress=False)
    return root


@pytest.fixture
def configs_dir() -> Path:
    return CONFIGS


def balance_cartpole(agent: Agent) -> Agent:
    """Make a CartPole MLP agent beat the random policy: its first hidden unit reads angle +
    angular velocity and its policy head pushes towards where the pole falls. Teachers no
    better than random are refused wherever returns are normalised."""
    import torch

    first = agent.layers[0]
    assert isinstance(first, torch.nn.Linear)
    with torch.no_grad():
        first.weight[0] = torch.tensor([0.0, 0.0, 10.0, 10.0])
        first.bias[0] = 0.0
        agent.policy.weight[:, 0] = torch.tensor([-8.0, 8.0])
    return agent


def perturbed(net: Any, scale: float = 0.05) -> Any:
    """``net`` with noise on every parameter: a fresh net's biases are all zero, so a slice
    taking the wrong bias entries would still give equal outputs (torch's global seed)."""
    import torch

    with torch.no_grad():
        for p in net.parameters():
            p.add_(scale * torch.randn_like(p))
    return net


def spy_distill_coefs(
    monkeypatch: pytest.MonkeyPatch, *modules: Any
) -> list[tuple[float, tuple[float, float]]]:
    """Every ``(progress, (alpha, beta))`` that ``distill_coefs`` returns where ``modules``
    (``a2d_evo.train.learners``, ``supernet_stage``) call it, in call order."""
    from a2d_evo.train.distill import distill_coefs

    seen: list[tuple[float, tuple[float, float]]] = []

    def spy(cfg: Any, progress: float) -> tuple[float, float]:
        seen.append((progress, distill_coefs(cfg, progress)))
        return seen[-1][1]

    for module in modules:
        monkeypatch.setattr(module, "distill_coefs", spy)
    return seen


@pytest.fixture(scope="module")
def cnn_supernet() -> Supernet:
    """The default Atari CNN supernet on 4 x 84 x 84 frames, 6 actions, seed 0, perturbed
    (no zero bias)."""
    import torch

    from a2d_evo.config import SpaceConfig
    from a2d_evo.nets.space import SearchSpace
    from a2d_evo.nets.supernet import Supernet

    torch.manual_seed(0)
    return perturbed(Supernet(SearchSpace(SpaceConfig(kind="cnn")), (4, 84, 84), 6))


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> None:
    """Tiny networks run faster and reproducibly on one intra-op thread (2-core CI)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return
    torch.set_num_threads(1)


def _hypothesis_profiles() -> None:
    """CI replays a fixed example sequence (a red CI is reproducible); elsewhere, fresh ones."""
    import os

    from hypothesis import settings

    settings.register_profile("ci", derandomize=True, print_blob=True)
    if os.environ.get("CI"):
        settings.load_profile("ci")


_hypothesis_profiles()
