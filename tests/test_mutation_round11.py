"""Properties no test pinned, found by an eleventh mutation review (2026-12-07): each test
below passes on the code as it is and fails under a small change to it that the covering
tests let through: the PPO pieces (reward clipping is the sign, the buffer's GAE stops its
trace at a truncation, two advantages are normalised, equal ones give zeros, ppo_loss_on's
clip centre), the distillation terms (a loss without own rows stays in the graph, an
infinite RMS, half a teacher's outputs), the subnet sampling (a space exactly at the pool
cap, the strata's random turns, a stratum smaller than asked, a narrow arch picked twice),
the random streams (torch's global stream kept, torch_threads 0), the training loop (the
target KL's epoch mean, the logged means of an update cut short, fresh gradients per step,
a resume after inf returns, a NaN gradient under a finite loss) and the cost model (the
cheapest MLP, the cgroup memory limits, latency's eval flag)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from a2d_evo.config import PPOConfig, SpaceConfig
from a2d_evo.nets.agent import PolicyOutput
from a2d_evo.nets.space import SearchSpace
from a2d_evo.train.ppo import Batch


# ----------------------------------------------------------------------------- ppo.py
def test_reward_clipping_takes_the_sign_not_a_clamp() -> None:
    """a2d_evo/train/ppo.py RolloutBuffer.advantages: ``reward_clip`` gives GAE sign(r), so a
    reward of 0.5 counts as 1 (Atari's clipping). Mutant let through: ``torch.sign`` made
    ``torch.clamp(r, -1, 1)``, the same on the covering test's integer rewards (5, -3, 0)
    but 0.5 where the sign is 1."""
    from a2d_evo.train.ppo import RolloutBuffer

    buf = RolloutBuffer(3, 1, (1,), np.float32)
    buf.rewards[:, 0] = torch.tensor([0.5, -0.25, 2.0])
    adv, _ = buf.advantages(0.5, 1.0, reward_clip=True)
    # zero values, no ends, gamma 0.5, lambda 1: A_t = sign(r_t) + 0.5 A_{t+1}:
    # A_2 = 1, A_1 = -1 + 0.5 = -0.5, A_0 = 1 - 0.25 = 0.75 (a clamp: 1, 0.25, 0.625)
    assert adv[:, 0].tolist() == pytest.approx([0.75, -0.5, 1.0], abs=1e-7)


def test_the_buffers_advantages_stop_the_trace_at_a_truncation() -> None:
    """a2d_evo/train/ppo.py RolloutBuffer.advantages: GAE's trace stops at ``dones`` (ended
    for any reason), not at ``terminated`` only. Mutant let through: the buffer handing
    ``self.terminated`` as the dones, after which a truncated episode's advantages took in
    the next episode's rewards (the covering tests call compute_gae directly)."""
    from a2d_evo.train.ppo import RolloutBuffer

    buf = RolloutBuffer(3, 1, (1,), np.float32)
    buf.rewards[:, 0] = 1.0
    buf.dones[1, 0] = 1.0  # truncated after step 1: next_values[1] = V(final_obs) = 0 here
    adv, ret = buf.advantages(0.5, 1.0)
    # A_2 = 1; A_1 = 1 (the trace stops); A_0 = 1 + 0.5 * 1 = 1.5
    # (across the boundary: A_1 = 1.5, A_0 = 1.75)
    assert adv[:, 0].tolist() == pytest.approx([1.5, 1.0, 1.0])
    assert torch.equal(ret, adv)  # zero values


def test_two_advantages_are_normalised_not_only_centred() -> None:
    """a2d_evo/train/ppo.py normalise_advantages: only a single sample is left unscaled; two
    get unit (unbiased) std. Mutant let through: ``numel() < 2`` made ``<= 2``, which only
    centred a minibatch row pair (e.g. a subnet's two own rows): [-1, 1] for [1, 3]."""
    from a2d_evo.train.ppo import normalise_advantages

    # mean 2, unbiased std sqrt(((-1)^2 + 1^2) / 1) = sqrt(2): -1 / sqrt(2) = -0.7071068
    got = normalise_advantages(torch.tensor([1.0, 3.0]))
    assert got.tolist() == pytest.approx([-1 / math.sqrt(2), 1 / math.sqrt(2)], abs=1e-6)


def test_equal_advantages_normalise_to_zeros_not_nan() -> None:
    """a2d_evo/train/ppo.py normalise_advantages: advantages that are all equal (std 0, e.g.
    a minibatch of one constant-reward env) give zeros. Mutant let through: dropping the
    ``+ 1e-8``: 0 / 0, NaN advantages and a NaN loss that stops the training."""
    from a2d_evo.train.ppo import normalise_advantages

    assert normalise_advantages(torch.tensor([2.0, 2.0, 2.0])).tolist() == [0.0, 0.0, 0.0]


def test_ppo_loss_on_hands_the_behaviour_values_as_the_clip_centre() -> None:
    """a2d_evo/train/ppo.py ppo_loss_on: the minibatch's ``values`` (the behaviour policy's)
    are the centre of the value clipping, and the coefficients are the config's. Mutant let
    through: ``mb.returns`` handed as the old values (the covering tests compare
    ppo_loss_on only with itself): the clip then centred on the target itself."""
    from a2d_evo.train.ppo import ppo_loss_on

    cfg = PPOConfig(clip_coef=0.2, vf_coef=0.5, ent_coef=0.01, norm_adv=False)
    out = PolicyOutput(torch.zeros(1, 2), torch.tensor([1.0]))
    mb = Batch(obs=torch.zeros(1, 1), actions=torch.tensor([0]),
               logprobs=torch.log(torch.tensor([0.25])), values=torch.tensor([0.5]),
               advantages=torch.tensor([1.0]), returns=torch.tensor([2.0]))  # fmt: skip
    got = ppo_loss_on(out, mb, cfg)
    # ratio 0.5 / 0.25 = 2 with A = 1: max(-2, -1.2) = -1.2
    # V = 1 from V_old = 0.5, R = 2: V_clip = 0.5 + clip(0.5, -0.2, 0.2) = 0.7:
    # 0.5 * max((1 - 2)^2, (0.7 - 2)^2) = 0.5 * 1.69 = 0.845 (centred on R: 0.5 * 1 = 0.5)
    assert got.policy.item() == pytest.approx(-1.2)
    assert got.value.item() == pytest.approx(0.845)
    assert got.loss.item() == pytest.approx(-1.2 - 0.01 * math.log(2) + 0.5 * 0.845, abs=1e-6)


# ----------------------------------------------------------------------------- distill.py
def test_a_minibatch_without_own_rows_keeps_the_loss_in_the_graph() -> None:
    """a2d_evo/train/distill.py distill_loss: a network none of whose rows are in the
    minibatch (vanilla arm) has a zero loss still in its graph: it back-propagates, zero
    gradients on its outputs. Mutant let through: the zero detached, whose backward raises
    (the covering test only reads its value)."""
    from a2d_evo.train.distill import distill_loss

    logits = torch.randn(4, 3, requires_grad=True)
    values = torch.randn(4, requires_grad=True)
    mb = Batch(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long), torch.zeros(4),
               torch.zeros(4), torch.ones(4), torch.ones(4))  # fmt: skip
    d = distill_loss(PolicyOutput(logits, values), mb, PPOConfig(), 0.0, 0.0,
                     own=torch.zeros(4, dtype=torch.bool), own_share=0.5)  # fmt: skip
    assert d.loss.item() == 0.0 and d.loss.requires_grad
    d.loss.backward()
    assert logits.grad is not None and values.grad is not None
    assert torch.count_nonzero(logits.grad) == 0 and torch.count_nonzero(values.grad) == 0


def test_an_infinite_rms_is_no_value_scale() -> None:
    """a2d_evo/train/distill.py sigma_from_rms: an infinite RMS (teacher values whose
    squares overflow float32) gives sigma 1, as a NaN does. Mutant let through: dropping
    ``np.isfinite(rms)``: sigma = inf, every value target / inf = 0."""
    from a2d_evo.train.distill import sigma_from_rms

    assert sigma_from_rms(float("inf")) == 1.0
    assert sigma_from_rms(float("nan")) == 1.0
    assert sigma_from_rms(2.5) == 2.5


def test_half_a_teachers_outputs_is_refused_by_name() -> None:
    """a2d_evo/train/distill.py distill_loss: distillation (alpha > 0) needs both the
    teacher's logits and values; a minibatch with one of them is the TrainingError naming
    the teacher. Mutant let through: ``or`` made ``and`` in the missing-outputs test, after
    which the critic term hit ``None.float()`` (a bare AttributeError)."""
    from a2d_evo.errors import TrainingError
    from a2d_evo.train.distill import distill_loss

    out = PolicyOutput(torch.zeros(2, 2), torch.zeros(2))
    mb = Batch(torch.zeros(2, 2), torch.zeros(2, dtype=torch.long), torch.zeros(2),
               torch.zeros(2), torch.ones(2), torch.ones(2),
               teacher_logits=torch.zeros(2, 2))  # fmt: skip
    with pytest.raises(TrainingError, match="needs the teacher's outputs"):
        distill_loss(out, mb, PPOConfig(), 1.0, 0.0)


# ----------------------------------------------------------------------------- sampling.py
def test_a_space_exactly_at_the_pool_cap_is_enumerated(monkeypatch: pytest.MonkeyPatch) -> None:
    """a2d_evo/train/sampling.py arch_pool: a space of exactly ``POOL_CAP`` archs is
    enumerated ("up to this many"), every arch once. Mutant let through: ``<=`` made ``<``,
    which drew ``POOL_CAP`` uniform archs instead: 2 distinct of the 6 here."""
    from a2d_evo.train import sampling

    space = SearchSpace(SpaceConfig(kind="mlp", depths=(1, 2), widths=(4, 8)))  # 2 + 4 archs
    monkeypatch.setattr(sampling, "POOL_CAP", space.size())
    pool = sampling.arch_pool(space)
    np.testing.assert_array_equal(pool, sampling.all_encodings(space))


def test_a_round_of_the_strata_cut_short_draws_from_random_strata() -> None:
    """a2d_evo/train/sampling.py SubnetSampler.balanced: each round visits the strata in a
    fresh random order, so the archs of a round cut short by ``k`` come from random strata,
    not always the first ones. Mutant let through: ``rng.permutation(n)`` made ``range(n)``:
    one arch (k = 1) was always the cheapest stratum's."""
    from a2d_evo.train.sampling import SubnetSampler

    space = SearchSpace(SpaceConfig(kind="mlp", depths=(1, 2), widths=(4, 8, 16, 32)))
    sampler = SubnetSampler(space, (4,), 2, "strata")
    n = len(sampler.strata)
    keys = [{space.key(x) for x in s} for s in sampler.strata]
    drawn = set()
    for seed in range(20):
        (row,) = sampler.balanced(np.random.default_rng(seed), 1)
        drawn.add(next(i for i, k in enumerate(keys) if space.key(row) in k))
    # 20 draws of 1 over n >= 4 strata: all in one stratum has probability n * n**-20
    assert n >= 4 and len(drawn) >= 3


def test_a_stratum_with_fewer_archs_than_asked_gives_all_it_has() -> None:
    """a2d_evo/train/sampling.py stratified_archs: ``per_stratum`` 2 from a stratum of 1
    arch (or of none) takes what there is. Mutant let through: ``min(per_stratum,
    len(members))`` made ``per_stratum``: a ValueError (a sample larger than the stratum)."""
    from a2d_evo.nets.space import MLPArch
    from a2d_evo.train.sampling import stratified_archs

    # FLOPs 2 * w * (4 + 2 + 1) on 4 inputs, 2 actions: 56, 112, 3584; log10 1.75, 2.05,
    # 3.55 in 5 strata of 0.36: {mlp-4, mlp-8} in stratum 0, mlp-256 in stratum 4, 3 empty
    space = SearchSpace(SpaceConfig(kind="mlp", depths=(1,), widths=(4, 8, 256)))
    archs = stratified_archs(space, (4,), 2, 2, np.random.default_rng(0))
    assert archs == [MLPArch((4,)), MLPArch((8,)), MLPArch((256,))]


def test_a_narrow_arch_already_picked_is_not_swapped_in_again() -> None:
    """a2d_evo/train/sampling.py stratified_archs: the narrow-after-narrow archs swapped in
    for ``min_narrow`` are ones not yet picked: the archs stay distinct and all 4 narrow ones
    are there. Mutant let through: dropping ``if i in picked: continue``, which put a picked
    narrow arch in a second time, in place of another pick, and counted it again."""
    from a2d_evo.train.sampling import narrow_after_narrow, stratified_archs

    # 3 + 9 archs in one stratum; narrow after narrow: 4x4, 4x8, 8x4, 8x8
    space = SearchSpace(SpaceConfig(kind="mlp", depths=(1, 2), widths=(4, 8, 64)))
    for seed in range(6):  # the mutant put an arch in twice on 4 of these 6 seeds
        archs = stratified_archs(
            space, (4,), 2, 6, np.random.default_rng(seed), n_strata=1, min_narrow=4
        )
        assert len(archs) == len(set(archs)) == 6, seed
        assert sum(narrow_after_narrow(a, space) for a in archs) == 4, seed


# ----------------------------------------------------------------------------- streams.py
def test_building_a_network_leaves_torchs_global_stream_where_it_was() -> None:
    """a2d_evo/train/streams.py Streams.build: the network is initialised from the run's
    seed inside a fork of torch's global RNG, which is put back after. Mutant let through:
    dropping ``torch.random.fork_rng``, which left the global stream reseeded to the stage's
    init seed (every later unseeded draw in the process then repeated the run's)."""
    from a2d_evo.train.streams import Streams

    torch.manual_seed(5)
    want = torch.rand(3)
    torch.manual_seed(5)
    first = Streams(0, "teacher").build(lambda: torch.nn.Linear(4, 2))
    assert torch.equal(torch.rand(3), want)
    torch.manual_seed(6)  # another global state: the same weights
    again = Streams(0, "teacher").build(lambda: torch.nn.Linear(4, 2))
    assert torch.equal(first.weight, again.weight)


def test_torch_threads_0_leaves_torchs_thread_count() -> None:
    """a2d_evo/train/streams.py set_threads: ``torch_threads: 0`` (the default) leaves
    torch's own thread count, a positive value sets it. Mutant let through: setting
    ``max(1, torch_threads)`` always, which ran every default config on one thread."""
    from a2d_evo.config import config_from_dict
    from a2d_evo.train.streams import set_threads

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        set_threads(config_from_dict({"torch_threads": 0}))
        assert torch.get_num_threads() == 2
        set_threads(config_from_dict({"torch_threads": 1}))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


# ----------------------------------------------------------------------------- loop.py
class _Env:
    """``n`` envs whose observation is 0 and whose episodes all end after every ``every``
    steps with the return ``ret`` (truncated); the vector env contract run_ppo needs."""

    def __init__(self, n: int, every: int = 1_000_000, ret: float = 1.0) -> None:
        self.n, self.every, self.ret, self.t = n, every, ret, 0

    def reset(self, seed: Any = None) -> np.ndarray:
        return np.zeros((self.n, 1), np.float32)

    def step(self, actions: np.ndarray) -> Any:
        from a2d_evo.envs.vector import StepResult

        self.t += 1
        end = self.t % self.every == 0
        obs = np.zeros((self.n, 1), np.float32)
        done = np.full(self.n, end)
        ret = np.full(self.n, self.ret if end else np.nan)
        return StepResult(obs, np.zeros(self.n, np.float32), np.zeros(self.n, bool), done, obs,
                          ret, np.full(self.n, self.every if end else 0))  # fmt: skip


class _Learner:
    """A model of one weight ``w`` (and a bias); the ``i``-th minibatch's loss is
    ``script(i, w)`` and it logs ``logs(i)``: a loop whose every step is known."""

    def __init__(self, script: Any, logs: Any = lambda i: {}) -> None:
        self.model = torch.nn.Linear(1, 1)
        self.script, self.logs, self.calls = script, logs, 0

    def policy(self, update: int) -> Any:
        from a2d_evo.nets.agent import PolicyOutput

        return lambda obs: PolicyOutput(torch.zeros(len(obs), 2), torch.zeros(len(obs)))

    def prepare(self, batch: Any) -> Any:
        return batch

    def loss(self, mb: Any, progress: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        i, self.calls = self.calls, self.calls + 1
        return self.script(i, self.model.weight), {
            k: torch.tensor(v) for k, v in self.logs(i).items()
        }

    def state(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        pass


def _run(learner: _Learner, ppo: dict[str, Any], updates: int = 1, env: Any = None,
         checkpoint: Path | None = None, resume: bool = False) -> Any:  # fmt: skip
    """``run_ppo`` of ``learner`` on 2 envs x 4 steps to update ``updates``, no annealing."""
    from a2d_evo.config import config_from_dict
    from a2d_evo.train import loop
    from a2d_evo.train.streams import Streams

    cfg = config_from_dict({"ppo": {"num_envs": 2, "num_steps": 4, "anneal_lr": False, **ppo}})
    opts = loop.LoopOptions(stage="teacher", total_steps=8 * updates, checkpoint=checkpoint,
                            tb_dir=None, checkpoint_every=100, resume=resume,
                            progress=False)  # fmt: skip
    return loop.run_ppo(learner, cfg, env or _Env(2), (1,), np.float32, Streams(0, "teacher"),
                        opts, torch.device("cpu"))  # fmt: skip


def test_target_kl_stops_on_the_mean_kl_of_the_epoch() -> None:
    """a2d_evo/train/loop.py run_ppo: ``ppo.target_kl`` is checked after each epoch on the
    MEAN approximate KL of its minibatches (docs/training.md). Mutant let through: the
    epoch's last minibatch's KL (CleanRL's check), which the covering test, where every
    step exceeds the target, could not tell apart: here 0.3 then 0.0 (mean 0.15 > 0.1)
    stops after the first epoch; the last one (0.0) would have run all 3."""
    learner = _Learner(lambda i, w: (w * 0.0).sum(), lambda i: {"approx_kl": [0.3, 0.0][i % 2]})
    _run(learner, {"num_minibatches": 2, "update_epochs": 3, "target_kl": 0.1})
    assert learner.calls == 2


def test_the_logged_losses_are_means_over_the_steps_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """a2d_evo/train/loop.py run_ppo: the losses reported for an update are means over the
    minibatch steps it ran, an update cut short by ``target_kl`` too. Mutant let through:
    dividing by ``update_epochs * num_minibatches`` (the steps planned): 2 steps of an
    update planned for 6 logged a third of their mean."""
    from a2d_evo.train import loop

    seen: list[dict[str, float]] = []
    monkeypatch.setattr(loop, "report", lambda *a: seen.append(a[-1]))
    learner = _Learner(
        lambda i, w: (w * 0.0).sum(), lambda i: {"approx_kl": 1.0, "policy": [1.0, 3.0][i % 2]}
    )
    _run(learner, {"num_minibatches": 2, "update_epochs": 3, "target_kl": 0.5})
    assert learner.calls == 2  # the first epoch's KL (1.0) is past the target
    assert seen == [{"approx_kl": 1.0, "policy": 2.0}]  # (1 + 3) / 2, not / 6


def test_each_minibatch_step_takes_its_own_gradient_alone() -> None:
    """a2d_evo/train/loop.py run_ppo: every minibatch step zeroes the gradients before its
    backward, so Adam sees that minibatch's gradient alone. Mutant let through: dropping
    ``optimizer.zero_grad``, after which the gradients summed over the update's steps (here
    1, 0, 1, 0 in place of 1, -1, 1, -1); the covering tests compare runs with one another,
    which accumulate alike."""
    cs = [1.0, -1.0, 1.0, -1.0]  # minibatch i's loss: cs[i] * w, its gradient cs[i]
    learner = _Learner(lambda i, w: cs[i] * w.sum())
    w0 = learner.model.weight.detach().clone()
    _run(learner, {"num_minibatches": 2, "update_epochs": 2, "lr": 0.1, "max_grad_norm": 10.0})
    ref = torch.nn.Parameter(w0.clone())
    adam = torch.optim.Adam([ref], lr=0.1, eps=1e-5)
    for c in cs:
        adam.zero_grad()
        (c * ref.sum()).backward()
        adam.step()
    torch.testing.assert_close(learner.model.weight.detach(), ref.detach(), rtol=0, atol=0)


def test_a_resume_goes_on_after_episodes_that_returned_inf(tmp_path: Path) -> None:
    """a2d_evo/train/loop.py run_ppo: the checkpoint keeps the finite ones of the recent
    returns (a clipped inf reward leaves the raw return inf), so a resume reads it back.
    Mutant let through: storing every recent return: the resume then refused its own
    checkpoint ("'recent_returns' is not a list of finite returns")."""
    from a2d_evo.files import torch_load

    ckpt = tmp_path / "checkpoint.pt"
    env = _Env(2, every=2, ret=float("inf"))  # both envs end an episode every 2 steps
    first = _run(_Learner(lambda i, w: (w * 0.0).sum()), {}, 2, env, ckpt)
    assert first.recent_return == float("inf")  # 8 episodes, all inf
    assert torch_load(ckpt)["extra"]["recent_returns"] == []
    resumed = _run(_Learner(lambda i, w: (w * 0.0).sum()), {}, 3, env, ckpt, resume=True)
    assert (resumed.updates, resumed.global_step) == (3, 24)


def test_a_non_finite_gradient_under_a_finite_loss_stops_the_update() -> None:
    """a2d_evo/train/loop.py run_ppo: a NaN gradient norm stops training with the
    TrainingError naming the update, before the optimiser steps, even where the loss is
    finite. Mutant let through: dropping the gradient-norm check (the covering tests poison
    the loss, which the loss check catches first): Adam then wrote NaN into every weight."""
    from a2d_evo.errors import TrainingError

    # sqrt(0 * w) is 0, its gradient 0.5 / sqrt(0) * 0 = inf * 0 = NaN
    learner = _Learner(lambda i, w: torch.sqrt(w * 0.0).sum())
    before = learner.model.weight.detach().clone()
    with pytest.raises(TrainingError, match="non-finite gradient norm at update 1 "):
        _run(learner, {})
    assert learner.calls == 1 and torch.equal(learner.model.weight.detach(), before)


# ----------------------------------------------------------------------------- cost.py
def test_the_cheapest_mlp_is_the_shallowest() -> None:
    """a2d_evo/nets/cost.py cheapest/_extreme: in an MLP space of several depths the
    cheapest arch is the narrowest at the smallest depth (each layer adds cost). Mutant let
    through: one candidate, the deepest: fine for costliest (the covering tests), wrong for
    cheapest, which search.max_flops is checked against."""
    from a2d_evo.nets.cost import cheapest, costliest, flops
    from a2d_evo.nets.space import MLPArch

    space = SearchSpace(SpaceConfig(kind="mlp", depths=(1, 2, 3), widths=(4, 8)))
    assert cheapest(space, (4,), 2) == MLPArch((4,))
    # 2 * 4 * (4 + 2 + 1) = 56 FLOPs; the deepest narrow one, 4x4x4: 2 * (16 + 16 + 16 + 12) = 120
    assert flops(MLPArch((4,)), (4,), 2) == 56 and flops(MLPArch((4, 4, 4)), (4,), 2) == 120
    assert costliest(space, (4,), 2) == MLPArch((8, 8, 8))


V2_LIMIT = "/sys/fs/cgroup/memory.max"
V1_LIMIT = "/sys/fs/cgroup/memory/memory.limit_in_bytes"


def _memory(monkeypatch: pytest.MonkeyPatch, files: dict[str, str]) -> int | None:
    """``available_memory_bytes`` on a machine of 4,096,000 bytes whose cgroup files are
    ``files`` (any other is missing)."""
    from a2d_evo.nets import cost

    class FakePath:
        def __init__(self, path: str) -> None:
            self.path = str(path)

        def read_text(self) -> str:
            if self.path not in files:
                raise FileNotFoundError(self.path)
            return files[self.path]

    pages = {"SC_PHYS_PAGES": 1000, "SC_PAGE_SIZE": 4096}
    monkeypatch.setattr(cost, "Path", FakePath)
    monkeypatch.setattr(cost.os, "sysconf", lambda name: pages[name])
    return cost.available_memory_bytes()


def test_a_cgroup_v2_without_a_limit_reads_as_the_machines_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """a2d_evo/nets/cost.py available_memory_bytes: cgroup v2's ``memory.max`` holds "max"
    where no limit is set: the machine's memory stands. Mutant let through: dropping
    ``text.isdigit()``, after which int("max") raised ValueError in every stage's memory
    check on such a host."""
    assert _memory(monkeypatch, {}) == 4_096_000
    assert _memory(monkeypatch, {V2_LIMIT: "max\n"}) == 4_096_000
    assert _memory(monkeypatch, {V2_LIMIT: "1000000\n"}) == 1_000_000


def test_a_cgroup_limit_above_the_machines_memory_is_no_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """a2d_evo/nets/cost.py available_memory_bytes: the cgroup limit counts only when lower
    than the physical memory (cgroup v1 writes 9223372036854771712 for "none"). Mutant let
    through: dropping ``< (total or ...)``, which took that number for the memory: no stage
    was ever refused."""
    assert _memory(monkeypatch, {V1_LIMIT: "9223372036854771712"}) == 4_096_000
    assert _memory(monkeypatch, {V2_LIMIT: "8192000"}) == 4_096_000


def test_a_cgroup_v1_limit_is_read_where_there_is_no_v2_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """a2d_evo/nets/cost.py available_memory_bytes: a missing cgroup v2 file moves on to
    the v1 one. Mutant let through: ``continue`` made ``break`` on the missing file, so a
    cgroup v1 host's container limit was never read."""
    assert _memory(monkeypatch, {V1_LIMIT: "2000000\n"}) == 2_000_000


def test_latency_leaves_an_agent_in_eval_mode_in_eval_mode() -> None:
    """a2d_evo/nets/cost.py latency_ms: the agent's train/eval flag is put back as it was,
    eval included. Mutant let through: ``agent.train()`` in place of
    ``agent.train(was_training)`` (the covering test times a training-mode agent only)."""
    from a2d_evo.nets.cost import latency_ms

    agent = torch.nn.Linear(4, 2).eval()
    assert latency_ms(agent, repeats=1, warmup=0, obs=torch.zeros(1, 4)) >= 0
    assert not agent.training
