"""Properties no test pinned, found by a tenth mutation review (2026-12-07): each test below
passes on the code as it is and fails under a small change to it that the covering tests let
through: the kernel's meta packing (an array field too long, an int given for an array), the
DDP helpers (the unbiased std of the global advantage normalisation, a rank's action seed
changing with the update), the fine-tune worker pool (no more workers than jobs, a folder
given twice) and the plot's baseline marks (a method outside METHOD_ORDER drawn last)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import torch
from test_subnet_eval import MLP_META

from a2d_evo.ops.dispatch import native_module

needs_native = pytest.mark.skipif(
    getattr(native_module(), "subnet_eval_meta_fields", None) is None,
    reason="needs a2d_evo._C with subnet_eval_meta_fields",
)


# ----------------------------------------------------------------------------- subnet_eval.py
@needs_native
def test_pack_meta_refuses_an_array_field_longer_than_its_count() -> None:
    """a2d_evo/ops/subnet_eval.py pack_meta: ``off_w[depth_max]`` with 3 entries for
    depth_max = 2 is refused. Mutant let through: ``len(value) != fields[count]`` made
    ``len(value) < fields[count]``, which packed the extra entry and shifted every later
    field (off_b) by one slot: the kernel would read an offset as a bias offset."""
    from a2d_evo.errors import KernelInputError
    from a2d_evo.ops.subnet_eval import pack_meta

    # 13 entries: 1 kind + 8 scalars + 2 off_w + 2 off_b
    assert pack_meta("mlp", MLP_META).size == 13
    with pytest.raises(KernelInputError, match="off_w must hold depth_max = 2 entries"):
        pack_meta("mlp", {**MLP_META, "off_w": [80, 112, 144]})


@needs_native
def test_pack_meta_refuses_an_int_for_an_array_field() -> None:
    """a2d_evo/ops/subnet_eval.py pack_meta: an int given for ``off_b[depth_max]`` is a
    KernelInputError naming the field. Mutant let through: dropping the
    ``isinstance(value, int | np.integer) or`` guard, after which ``len(176)`` raised a bare
    TypeError that names nothing (the promise: a wrongly sized field raises KernelInputError)."""
    from a2d_evo.errors import KernelInputError
    from a2d_evo.ops.subnet_eval import pack_meta

    with pytest.raises(KernelInputError, match="off_b must hold depth_max = 2 entries"):
        pack_meta("mlp", {**MLP_META, "off_b": 176})


# ----------------------------------------------------------------------------- ddp.py
def test_global_advantage_normalisation_uses_the_unbiased_std() -> None:
    """a2d_evo/scale/ddp.py normalise_advantages_global: zero mean, unit UNBIASED std, as
    train.ppo.normalise_advantages on one process. Mutant let through: ``(n - 1)`` made ``n``
    in the variance's divisor (the biased std): advantages sqrt(n / (n - 1)) times the
    single-process learner's, 15 % larger for a group of 4 rows."""
    from a2d_evo.scale.ddp import DistContext, normalise_advantages_global

    a = torch.tensor([1.0, 2.0, 3.0, 4.0])
    out = normalise_advantages_global(a, DistContext())
    # mean 2.5; squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5; unbiased var 5 / 3,
    # std sqrt(5 / 3) = 1.2909944; first: -1.5 / 1.2909944 = -1.1618950
    # (the biased std sqrt(5 / 4) = 1.1180340 would give -1.3416408)
    assert out[0].item() == pytest.approx(-1.1618950, abs=1e-6)
    assert out[3].item() == pytest.approx(1.1618950, abs=1e-6)


def test_a_ranks_action_seed_changes_with_the_update() -> None:
    """a2d_evo/scale/ddp.py rank_seed: the seed a rank > 0 reseeds its action sampler with at
    a stage's start or resume depends on the update it starts from. Mutant let through:
    dropping ``int(update)`` from the SeedSequence, so a run resumed at update 5 replayed on
    every rank > 0 the action noise its stage started with at update 1."""
    from a2d_evo.scale.ddp import rank_seed

    root = (118,)
    seeds = {rank_seed(root, 1, update) for update in (1, 2, 5)}
    assert len(seeds) == 3  # one stream per update start
    assert rank_seed(root, 1, 5) == rank_seed(root, 1, 5)  # and reproducible
    assert rank_seed(root, 1, 5) != rank_seed(root, 2, 5)  # and per rank


# ----------------------------------------------------------------------------- finetune_pool.py
def _pool_stub(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Replace the locks and the worker pool of finetune_pool: the pool records its worker
    count (nothing is trained, no process starts)."""
    from a2d_evo.train import finetune_pool

    seen: list[int] = []
    monkeypatch.setattr(finetune_pool, "folder_lock", lambda *a, **k: contextlib.nullcontext())
    monkeypatch.setattr(finetune_pool, "_pool", lambda cfg, jobs, done, p, w: seen.append(w))
    return seen


def _jobs(folders: list[Path]) -> list[object]:
    from a2d_evo.train.finetune_pool import FinetuneJob

    return [FinetuneJob(f, 256, None, 0, 1, 1) for f in folders]


def test_no_more_workers_start_than_there_are_jobs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """a2d_evo/train/finetune_pool.py run_finetunes: finetune.workers 4 with 2 jobs starts 2
    workers. Mutant let through: ``min(cfg.finetune.workers, len(jobs))`` made
    ``cfg.finetune.workers``: the pool then gave worker 3 a job from an empty queue
    (IndexError) after starting 2 idle processes."""
    from a2d_evo.config import config_from_dict
    from a2d_evo.train.finetune_pool import run_finetunes

    seen = _pool_stub(monkeypatch)
    cfg = config_from_dict({"finetune": {"workers": 4}, "torch_threads": 1})
    run_finetunes(cfg, _jobs([tmp_path / "a", tmp_path / "b"]), lambda i, s: None, False)
    assert seen == [2]  # min(4 workers, 2 jobs)


def test_a_folder_given_twice_is_refused_before_any_worker_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """a2d_evo/train/finetune_pool.py run_finetunes: two jobs on one folder (one of them by
    another path to it) raise TrainingError naming it, and no worker starts. Mutant let
    through: ``len(set(where)) < len(where)`` made ``>`` (never true): two workers would
    write one folder at once."""
    from a2d_evo.config import config_from_dict
    from a2d_evo.errors import TrainingError
    from a2d_evo.train.finetune_pool import run_finetunes

    seen = _pool_stub(monkeypatch)
    (tmp_path / "a").mkdir()
    cfg = config_from_dict({"finetune": {"workers": 2}, "torch_threads": 1})
    jobs = _jobs([tmp_path / "a", tmp_path / "a" / ".." / "a"])
    with pytest.raises(TrainingError, match="a folder is given twice: .*a$"):
        run_finetunes(cfg, jobs, lambda i, s: None, False)
    assert seen == []


# ----------------------------------------------------------------------------- plots.py
def test_a_method_outside_the_order_is_drawn_rightmost() -> None:
    """a2d_evo/report/plots.py baseline_marks/_method_rank: a baseline whose method is not in
    METHOD_ORDER (ppo, distill, a2d) sorts after them, so it is drawn rightmost and carries
    its width's label. Mutant let through: the unknown rank ``len(METHOD_ORDER)`` made -1,
    which drew it leftmost and moved the label to a2d's mark."""
    from a2d_evo.report.plots import DODGE_DECADES, baseline_marks
    from a2d_evo.report.rows import Row

    def row(name: str, method: str) -> Row:
        return Row(name, "mlp-16x16", 1000, None, None, 500.0, 0.0, 30, 1.0,
                   extra={"method": method, "width_multiplier": 0.25})  # fmt: skip

    marks = {r.label: (x, labelled) for r, x, labelled in baseline_marks(
        [row("bc_x0.25", "bc"), row("ppo_x0.25", "ppo"), row("a2d_x0.25", "a2d")]
    )}  # fmt: skip
    step = 10**DODGE_DECADES
    # order ppo (rank 0), a2d (2), bc (3, unknown): i = 0, 1, 2 of 3, shifted by
    # (i - (3 - 1) / 2) * DODGE_DECADES = -1, 0, +1 steps: x = 1000 / step, 1000, 1000 * step
    assert marks["ppo_x0.25"] == (pytest.approx(1000 / step), False)
    assert marks["a2d_x0.25"] == (pytest.approx(1000), False)
    assert marks["bc_x0.25"] == (pytest.approx(1000 * step), True)


# ----------------------------------------------------------------------------- ddp.py (wrapper)
def test_a_submodule_read_through_the_ddp_wrapper_is_the_module_itself(tmp_path: Path) -> None:
    """a2d_evo/scale/ddp.py DDPReplica.__getattr__: a submodule of the wrapped model read
    through the wrapper (``replica.head``) is that module, not a no-grad-only function.
    Mutant let through: dropping ``or isinstance(value, torch.nn.Module)``, after which
    ``replica.head`` was a function: ``.weight`` on it raised AttributeError and calling it
    with gradients on raised DistributedError. A one-rank gloo group, in this process."""
    import torch.distributed as dist
    from torch import nn

    from a2d_evo.scale.ddp import DDPReplica, DistContext

    model = nn.Module()
    model.head = nn.Linear(2, 2)
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        replica = DDPReplica(model, DistContext(world_size=2))
        assert replica.head is model.head
        assert replica.head.weight.shape == (2, 2)
    finally:
        dist.destroy_process_group()
