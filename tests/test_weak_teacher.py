"""A teacher that does not beat the uniform-random policy is refused wherever returns are
normalised against it: the ratio would flip sign and reward doing worse (a LunarLander teacher
at -318 against -176 for random gave a hypervolume of 637)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_evolve import make_run

from a2d_evo.cli import main
from a2d_evo.errors import FormatError, TrainingError
from a2d_evo.formats import Normalisation
from a2d_evo.nets.agent import Agent
from a2d_evo.nets.agent_folder import save_agent
from a2d_evo.nets.space import MLPArch
from a2d_evo.runfolder import RunFolder
from a2d_evo.search.front import normalisation

FIX = "train it longer: `a2d-evo train-teacher --config ... --resume --set teacher.total_steps=N`"
MESSAGE = (
    "the teacher (R=-318.2) does not beat the uniform-random policy (R=-176.0) on the same "
    f"seeds: {FIX}"
)


def _balancer(sign: float) -> Agent:
    """A 4-unit CartPole agent: sign +1 balances the pole, -1 pushes it over (worse than random)."""
    agent = Agent(MLPArch((4,)), (4,), 2)
    with torch.no_grad():
        for p in agent.parameters():
            p.zero_()
        agent.layers[0].weight[0, 2:4] = 10.0
        agent.policy.weight[:, 0] = torch.tensor([-5.0, 5.0]) * sign
    return agent


def _weak_run(root: Path) -> RunFolder:
    make_run(root)
    run = RunFolder(root)
    save_agent(_balancer(-1.0), run.teacher_agent, onnx=False)  # replaces the good teacher
    return run


def test_normalisation_refuses_a_teacher_at_or_below_random() -> None:
    with pytest.raises(ValueError) as info:
        Normalisation(r_random=-176.0, r_teacher=-318.2, teacher_flops=100)
    assert str(info.value) == MESSAGE
    with pytest.raises(ValueError, match=r"\(R=20\.0\) does not beat .* \(R=20\.0\)"):
        Normalisation(r_random=20.0, r_teacher=20.0, teacher_flops=100)
    # close returns get the digits that tell them apart
    with pytest.raises(ValueError, match=r"\(R=9\.98\) does not beat .* \(R=10\.02\)"):
        Normalisation(r_random=10.02, r_teacher=9.98, teacher_flops=100)
    with pytest.raises(FormatError, match="does not beat"):
        Normalisation.from_dict({"r_random": -176.0, "r_teacher": -318.2, "teacher_flops": 100})
    # negative-reward tasks are fine as long as the teacher is better: Acrobot
    assert Normalisation(-500.0, -80.0, 100).score(-290.0) == 0.5


def test_search_normalisation_is_a_training_error() -> None:
    with pytest.raises(TrainingError) as info:
        normalisation(-176.0, -318.2, 100)
    assert str(info.value).endswith(MESSAGE)


def test_evolve_refuses_a_teacher_worse_than_random(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _weak_run(tmp_path)
    capsys.readouterr()
    rc = main(["evolve", "--config", str(tmp_path / "cfg.yaml"), "--out", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.count("\n") == 1 and err.startswith("a2d-evo evolve: error: "), err
    assert "does not beat the uniform-random policy" in err and FIX in err
    assert not (tmp_path / "search" / "state.npz").exists()
    assert not (tmp_path / "search" / "front.json").exists()


def test_eval_refuses_a_run_teacher_worse_than_random(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _weak_run(tmp_path)
    folder = save_agent(_balancer(1.0), run.agents / "good", onnx=False)
    capsys.readouterr()
    rc = main(["eval", str(folder), "--episodes", "4"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.count("\n") == 1 and err.startswith("a2d-evo eval: error: "), err
    assert "does not beat the uniform-random policy" in err and FIX in err
    assert str(run.teacher_agent) in err
    assert not (folder / "eval.json").exists()
