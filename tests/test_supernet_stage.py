"""a2d_evo.train.supernet_stage: which subnets an update trains, and on which rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from a2d_evo.config import config_from_dict
from a2d_evo.nets.supernet import build_supernet
from a2d_evo.train import supernet_stage
from a2d_evo.train.ppo import Batch
from a2d_evo.train.supernet_stage import SupernetLearner

T, N = 2, 6  # a rollout of 2 steps in 6 env slots, split 2/2/2 between 3 subnets


def _learner() -> SupernetLearner:
    cfg = config_from_dict(
        {
            "env": {"id": "CartPole-v1"},
            "space": {"kind": "mlp", "depths": [1, 2], "widths": [4, 8, 16]},
            "ppo": {"num_envs": N, "num_steps": T, "num_minibatches": 1},
            "supernet": {"rollout_subnets": 3},
            "distill": {"alpha": 0.0, "beta": 0.0},
        }
    )
    torch.manual_seed(0)
    return SupernetLearner(build_supernet(cfg), cfg, None, np.random.default_rng(0))


def _batch() -> Batch:
    g = torch.Generator().manual_seed(2)
    rows = T * N
    return Batch(
        obs=torch.randn(rows, 4, generator=g),
        actions=torch.randint(0, 2, (rows,), generator=g),
        logprobs=torch.full((rows,), float(np.log(0.5))),
        values=torch.randn(rows, generator=g),
        advantages=torch.randn(rows, generator=g),
        returns=torch.randn(rows, generator=g),
    )


def test_rows_are_tagged_with_the_subnet_of_their_env_slot() -> None:
    learner = _learner()
    learner.policy(1)
    space = learner.space
    assert learner.rollout_archs[:2] == [space.largest(), space.smallest()]
    assert len(learner.rollout_archs) == 3
    batch = learner.prepare(_batch())
    assert batch.actor is not None
    # step-major rows: slots 0-1 -> subnet 0, 2-3 -> subnet 1, 4-5 -> subnet 2, for each step
    assert batch.actor.tolist() == [0, 0, 1, 1, 2, 2] * T


def test_the_update_trains_exactly_its_rollout_subnets_each_on_its_own_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    learner = _learner()
    learner.policy(1)
    mb = learner.prepare(_batch()).take(torch.tensor([0, 3, 5, 7, 8, 11]))
    calls: list[dict[str, Any]] = []
    real = supernet_stage.distill_loss
    forwarded: list[Any] = []
    real_forward = learner.model.forward

    def spy(*args: Any, own: torch.Tensor | None = None, **kw: Any) -> Any:
        calls.append({"own": own})
        return real(*args, own=own, **kw)

    def forward(obs: torch.Tensor, arch: Any) -> Any:
        forwarded.append(arch)
        return real_forward(obs, arch)

    monkeypatch.setattr(supernet_stage, "distill_loss", spy)
    monkeypatch.setattr(learner.model, "forward", forward)
    state = learner.rng.bit_generator.state
    loss, logs = learner.loss(mb, 0.0)
    assert forwarded == learner.rollout_archs  # no subnet drawn for the minibatch
    assert learner.rng.bit_generator.state == state
    masks = torch.stack([c["own"] for c in calls])
    assert mb.actor is not None
    assert masks.tolist() == [(mb.actor == j).tolist() for j in range(3)]
    assert masks.sum(0).tolist() == [1] * 6  # every row is exactly one subnet's own
    assert torch.isfinite(loss) and set(logs) >= {"policy", "value", "entropy"}
