"""a2d_evo.train.checkpoint: a checkpoint restores weights, optimiser and random streams exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from a2d_evo.config import config_from_dict
from a2d_evo.errors import FormatError
from a2d_evo.nets.agent import Agent
from a2d_evo.nets.space import MLPArch
from a2d_evo.runs.files import torch_load
from a2d_evo.runs.folder import RunFolder
from a2d_evo.train import train_teacher
from a2d_evo.train.checkpoint import load_checkpoint, save_checkpoint
from a2d_evo.train.interrupts import TrainingInterrupted
from a2d_evo.train.streams import Streams


def adam_checkpoint(tmp_path: Path) -> tuple[Path, torch.nn.Module, torch.optim.Optimizer, Streams]:
    """A teacher-stage checkpoint of a Linear(4, 3) and an Adam (eps 1e-5) that took one step
    (params 0: the weight, 1: the bias): its path, the model, the optimiser and the streams."""
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-5)
    model(torch.ones(2, 4)).sum().backward()
    optimizer.step()
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, "teacher", model, optimizer, Streams(0, "teacher"), 1, 8, 0.1)
    return path, model, optimizer, Streams(0, "teacher")


def adam_checkpoint_loader(tmp_path: Path) -> tuple[Path, dict[str, Any], Any]:
    """:func:`adam_checkpoint`'s path, its contents, and a function that writes edited
    contents to it and loads them into fresh objects."""
    path = adam_checkpoint(tmp_path)[0]

    def load(edited: dict[str, Any]) -> Any:
        torch.save(edited, path)
        fresh = torch.nn.Linear(4, 3)
        adam = torch.optim.Adam(fresh.parameters(), lr=1e-3, eps=1e-5)
        return load_checkpoint(path, "teacher", fresh, adam, Streams(0, "teacher"))

    return path, torch.load(path, weights_only=True), load


def _cfg(seed: int = 3):  # type: ignore[no-untyped-def]
    return config_from_dict(
        {
            "seed": seed,
            "torch_threads": 1,
            "env": {"id": "CartPole-v1"},
            "space": {"kind": "mlp", "depths": [1, 2], "widths": [4, 8, 16]},
            "ppo": {"num_envs": 2, "num_steps": 16, "num_minibatches": 2, "update_epochs": 2},
            "teacher": {"arch": {"kind": "mlp", "widths": [16]}, "total_steps": 128,
                        "eval_episodes": 2, "checkpoint_every": 2},
        }
    )  # fmt: skip


def _equal(a: object, b: object) -> bool:
    """Deep equality of checkpoint contents (tensors bit for bit)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))  # type: ignore[arg-type]
    return a == b


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A teacher stage stopped after update 2 of 4: a checkpoint mid-training, Adam warm."""
    run = RunFolder(tmp_path_factory.mktemp("ckpt") / "run")
    with pytest.raises(TrainingInterrupted):
        train_teacher(_cfg(), run, progress=False, stop_after=2)
    return run.teacher / "checkpoint.pt"


def test_checkpoint_restores_weights_optimiser_and_streams_exactly(
    stopped: Path, tmp_path: Path
) -> None:
    saved = torch_load(stopped)
    assert saved["update"] == 2 and saved["global_step"] == 64
    assert saved["optimizer"]["state"], "Adam's moments are part of the state"
    # fresh objects that differ from the saved ones in every restored part
    torch.manual_seed(99)
    model = Agent(MLPArch((16,)), (4,), 2)
    # built as the loop builds it: the settings are the run's, not the file's (only the
    # learning rate and the moments come back; the loop sets the rate each update)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-5, foreach=True)
    streams = Streams(12345, "teacher")
    streams.rng.random(7)
    assert not _equal(streams.state(), saved["rng"])
    restored = load_checkpoint(stopped, "teacher", model, optimizer, streams)
    assert (restored.update, restored.global_step, restored.learner) == (2, 64, {})  # plain PPO
    assert restored.extra == saved["extra"]
    assert _equal({k: v for k, v in model.state_dict().items()}, saved["model"])
    assert _equal(optimizer.state_dict(), saved["optimizer"])
    assert _equal(streams.state(), saved["rng"])
    # and what a resumed run would draw next is what the stopped run would have drawn
    again = Streams(0, "teacher")
    again.load_state(saved["rng"])
    assert np.array_equal(again.rng.integers(0, 2**31, 8), streams.rng.integers(0, 2**31, 8))
    assert torch.equal(
        torch.randint(0, 2**31, (8,), generator=again.actions),
        torch.randint(0, 2**31, (8,), generator=streams.actions),
    )
    # saving the restored objects gives back the same checkpoint
    restored = Streams(0, "teacher")
    restored.load_state(saved["rng"])
    copy = tmp_path / "copy.pt"
    save_checkpoint(copy, "teacher", model, optimizer, restored, 2, 64, saved["wall_s"],
                    saved["extra"], saved["learner"])  # fmt: skip
    assert _equal(torch_load(copy), saved)


def test_a_checkpoint_of_another_stage_or_shape_is_refused(stopped: Path) -> None:
    model = Agent(MLPArch((16,)), (4,), 2)
    optimizer = torch.optim.Adam(model.parameters())
    with pytest.raises(FormatError, match="'teacher' checkpoint, not a 'supernet' one"):
        load_checkpoint(stopped, "supernet", model, optimizer, Streams(0, "supernet"))
    wide = Agent(MLPArch((32,)), (4,), 2)
    with pytest.raises(FormatError, match="does not fit this run"):
        load_checkpoint(
            stopped, "teacher", wide, torch.optim.Adam(wide.parameters()), Streams(0, "teacher")
        )


def _load_with(stopped: Path, tmp_path: Path, version: object) -> None:
    """Load a copy of ``stopped`` whose ``format_version`` is ``version`` into a teacher."""
    edited = torch_load(stopped)
    edited["format_version"] = version
    path = tmp_path / "edited.pt"
    torch.save(edited, path)
    model = Agent(MLPArch((16,)), (4,), 2)
    load_checkpoint(path, "teacher", model, torch.optim.Adam(model.parameters()),
                    Streams(0, "teacher"))  # fmt: skip


def test_a_checkpoint_from_before_value_units_is_refused_with_the_reason(
    stopped: Path, tmp_path: Path
) -> None:
    with pytest.raises(FormatError, match=r"format_version 1: .*before issue \[J\].*delete"):
        _load_with(stopped, tmp_path, 1)


def test_a_checkpoint_format_version_that_is_a_tensor_is_a_format_error(
    stopped: Path, tmp_path: Path
) -> None:
    """weights_only loads tensors in any field: comparing one raised a RuntimeError."""
    with pytest.raises(FormatError, match=r"format_version tensor.* is not an integer"):
        _load_with(stopped, tmp_path, torch.tensor([1, 2]))


def test_the_last_update_is_checkpointed_off_the_cadence(tmp_path: Path) -> None:
    """3 updates with a checkpoint every 2: the finished stage's checkpoint is the third
    update's (without the final one, a --resume that raises the budget went on from update 2
    and trained update 3 again)."""
    from a2d_evo.config import replace
    from a2d_evo.errors import TrainingError

    cfg = _cfg()
    cfg = replace(cfg, teacher=replace(cfg.teacher, total_steps=96))  # 3 updates of 32
    run = RunFolder(tmp_path / "run")
    try:  # a tiny teacher may be refused as no better than random: after its checkpoint
        train_teacher(cfg, run, progress=False)
    except TrainingError:
        pass
    ckpt = torch_load(run.teacher / "checkpoint.pt")
    assert (ckpt["update"], ckpt["global_step"]) == (3, 96)


def test_a_scalar_moment_is_refused_at_load_not_at_the_first_step(tmp_path: Path) -> None:
    """A 0-dim tensor stands for Adam's ``step`` only: a scalar ``exp_avg`` for the (3, 4)
    weight is refused when the checkpoint loads (it loaded, and the resume then failed at its
    first optimiser step with torch's bare "output with shape [] doesn't match the broadcast
    shape"; a twelfth mutation round's finding). The real scalar ``step`` still loads."""
    _, saved, load = adam_checkpoint_loader(tmp_path)
    state = saved["optimizer"]["state"]
    assert state[0]["step"].dim() == 0 and tuple(state[0]["exp_avg"].shape) == (3, 4)
    assert load(saved).update == 1
    bad = {**state, 0: {**state[0], "exp_avg": torch.tensor(0.0)}}
    with pytest.raises(FormatError, match="'exp_avg' has another parameter's shape"):
        load({**saved, "optimizer": {**saved["optimizer"], "state": bad}})


def test_a_pin_a_checkpoint_does_not_record_is_no_change() -> None:
    """A checkpoint written before its stage pinned a key (no ``teacher_sha256`` in its
    ``extra``) resumes: only a recorded value that differs is a change, and named."""
    from a2d_evo.errors import TrainingError
    from a2d_evo.train.checkpoint import changed_pins, check_pins

    pins = {"teacher_sha256": "a" * 64, "arch": "mlp-8"}
    assert changed_pins({}, pins) == []
    assert changed_pins({"arch": "mlp-8", "other": 1}, pins) == []
    assert changed_pins({"teacher_sha256": "b" * 64, "arch": "mlp-8"}, pins) == ["teacher_sha256"]
    check_pins(Path("c.pt"), "supernet", {}, pins, "")
    with pytest.raises(TrainingError, match=r"trained with teacher_sha256 'bbbbbbbbbbbb\.\.\.'"):
        check_pins(Path("c.pt"), "supernet", {"teacher_sha256": "b" * 64}, pins, "")


def test_a_checkpoint_whose_model_lacks_a_tensor_is_refused(tmp_path: Path) -> None:
    """a2d_evo/train/checkpoint.py load_checkpoint: the model's state is loaded strictly: a
    checkpoint without one of the run's tensors (here the bias; a supernet's value_scale
    buffer alike) does not fit the run. Mutant let through: ``load_state_dict(...,
    strict=False)``, which resumed with that tensor at its fresh initial value, silently
    (the covering test's wider model fails on its shapes either way)."""
    _, saved, load = adam_checkpoint_loader(tmp_path)
    assert load(saved).update == 1  # the file as written loads
    model = {k: v for k, v in saved["model"].items() if k != "bias"}
    with pytest.raises(FormatError, match=r"(?s)does not fit this run: .*Missing key.*bias"):
        load({**saved, "model": model})


def test_a_one_dimensional_optimiser_state_of_another_shape_is_refused(tmp_path: Path) -> None:
    """a2d_evo/train/checkpoint.py check_optimizer_state: every state tensor with dimensions
    has its parameter's shape, a 1-D one (a bias's moments) too. Mutant let through: the
    shape check only for ``dim() > 1`` (the covering test edits the 2-D weight's moments):
    a (1,) ``exp_avg`` for the (3,) bias then loaded and broadcast in Adam's step."""
    _, saved, load = adam_checkpoint_loader(tmp_path)
    state = saved["optimizer"]["state"]
    assert tuple(state[1]["exp_avg"].shape) == (3,)
    for shape in ((1,), (5,)):
        bad = {**state, 1: {**state[1], "exp_avg": torch.zeros(shape)}}
        with pytest.raises(FormatError, match="'exp_avg' has another parameter's shape"):
            load({**saved, "optimizer": {**saved["optimizer"], "state": bad}})


def test_parameter_groups_naming_other_parameters_are_refused(tmp_path: Path) -> None:
    """a2d_evo/train/checkpoint.py check_optimizer_state: a parameter group names only this
    run's parameters. Mutant let through: dropping ``i in params`` from that check: groups
    ``[0, 7]`` (as many as the run's) passed torch's own size check, the bias's moments
    (state 1, mapped to no parameter) were kept under a stray key and its Adam began
    afresh: a resume that was not one, without a word."""
    _, saved, load = adam_checkpoint_loader(tmp_path)
    groups = [{**g, "params": [0, 7]} for g in saved["optimizer"]["param_groups"]]
    with pytest.raises(FormatError, match="parameter groups name other parameters"):
        load({**saved, "optimizer": {**saved["optimizer"], "param_groups": groups}})
