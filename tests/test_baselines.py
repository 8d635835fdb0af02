"""The manual family: width scaling by hand, and pure distillation learning the teacher."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from a2d_evo.config import DistillConfig, config_from_dict
from a2d_evo.errors import ConfigError
from a2d_evo.formats import BASELINE_METHODS, baseline_name
from a2d_evo.nets.agent import Agent
from a2d_evo.nets.space import CNNArch, ConvLayer, MLPArch
from a2d_evo.runfolder import RunFolder
from a2d_evo.train.baselines import DistillOnlyLearner, baseline_steps, scale_arch, train_baselines
from a2d_evo.train.ppo import Batch


def test_scale_arch_by_hand() -> None:
    assert scale_arch(MLPArch((64, 64)), 0.25) == MLPArch((16, 16))
    assert scale_arch(MLPArch((64, 64)), 0.5) == MLPArch((32, 32))

    def nature(c1: int, c2: int, c3: int, fc: int) -> CNNArch:
        return CNNArch(
            (ConvLayer(c1, 8, 4, "valid"), ConvLayer(c2, 4, 2, "valid"),
             ConvLayer(c3, 3, 1, "valid")), fc,
        )  # fmt: skip

    assert scale_arch(nature(32, 64, 64, 512), 0.25) == nature(8, 16, 16, 128)
    assert scale_arch(nature(32, 64, 64, 512), 0.5) == nature(16, 32, 32, 256)
    assert scale_arch(nature(32, 64, 64, 512), 1.0) == nature(32, 64, 64, 512)
    assert scale_arch(MLPArch((3,)), 0.1) == MLPArch((1,))  # never below one unit
    with pytest.raises(ConfigError):
        scale_arch(nature(32, 64, 64, 512), 0.0)


def test_baseline_names() -> None:
    assert baseline_name("ppo", 0.25) == "ppo_x0.25"
    assert baseline_name("distill", 1.0) == "distill_x1"


def test_distill_only_learner_matches_the_teacher() -> None:
    """Minimising the pure distillation loss drives KL and value error towards zero."""
    torch.manual_seed(0)
    cfg = config_from_dict({"distill": {"alpha": 1.0, "beta": 0.5}})
    teacher = Agent(MLPArch((32,)), (4,), 3)
    with torch.no_grad():
        teacher.policy.weight.mul_(300.0)  # a decisive teacher, far from the student's init
    student = Agent(MLPArch((16,)), (4,), 3)
    learner = DistillOnlyLearner(student, cfg, teacher)
    obs = torch.randn(256, 4)
    zeros = torch.zeros(256)
    batch = Batch(obs, zeros.long(), zeros, zeros, zeros, zeros, None, None)
    batch = learner.prepare(batch)
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)
    first = None
    for _ in range(300):
        loss, logs = learner.loss(batch, 0.0)
        first = (
            first
            if first is not None
            else (float(logs["distill_actor"]), float(logs["distill_critic"]))
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    _, logs = learner.loss(batch, 1.0)
    assert float(logs["distill_actor"]) < 0.1 * first[0]
    assert float(logs["distill_critic"]) < 0.1 * first[1]
    assert (student(obs).logits.argmax(-1) == teacher(obs).logits.argmax(-1)).float().mean() > 0.9


def test_baseline_budgets_give_each_distilled_baseline_the_supernet_plus_one_finetune() -> None:
    cfg = config_from_dict(
        {"teacher": {"total_steps": 1000}, "supernet": {"total_steps": 300},
         "finetune": {"steps": 50}}
    )  # fmt: skip
    assert baseline_steps(cfg, "ppo") == 1000  # the teacher's recipe and budget
    assert baseline_steps(cfg, "distill") == baseline_steps(cfg, "a2d") == 350  # S + B
    assert BASELINE_METHODS == ("ppo", "distill", "a2d")


def test_a2d_baselines_need_distillation(tmp_path: Path) -> None:
    cfg = config_from_dict({"distill": {"alpha": 0.0, "beta": 0.0}})
    with pytest.raises(ConfigError, match="a2d baselines distil from the teacher"):
        train_baselines(cfg, RunFolder(tmp_path / "run"), methods=["a2d"], progress=False)


def test_distill_baselines_need_the_actor_term(tmp_path: Path) -> None:
    """Critic-only (alpha 0, beta > 0) leaves a distill baseline's policy untrained: refused
    before anything is written; with both 0 (vanilla) it distils with the defaults."""
    cfg = config_from_dict({"distill": {"alpha": 0.0, "beta": 0.5}})
    with pytest.raises(ConfigError, match="distill.alpha is 0 .* policy would stay untrained"):
        train_baselines(cfg, RunFolder(tmp_path / "run"), methods=["distill"], progress=False)
    assert not (tmp_path / "run").exists()
    learner = DistillOnlyLearner(
        Agent(MLPArch((4,)), (4,), 2), config_from_dict({"distill": {"alpha": 0.0, "beta": 0.0}}),
        Agent(MLPArch((4,)), (4,), 2),
    )  # fmt: skip
    assert (learner.alpha, learner.beta) == (DistillConfig().alpha, DistillConfig().beta)
