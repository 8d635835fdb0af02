"""a2d_evo.train.supernet_stage: which subnets an update trains, and on which rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from a2d_evo.config import config_from_dict
from a2d_evo.nets.agent import Agent
from a2d_evo.nets.space import MLPArch
from a2d_evo.nets.supernet import build_supernet
from a2d_evo.train import supernet_stage
from a2d_evo.train.ppo import Batch
from a2d_evo.train.supernet_stage import SupernetLearner

T, N = 2, 6  # a rollout of 2 steps in 6 env slots, split 2/2/2 between 3 subnets


def _learner(
    n: int = N, teacher: Agent | None = None, alpha: float = 0.0, beta: float = 0.0
) -> SupernetLearner:
    cfg = config_from_dict(
        {
            "env": {"id": "CartPole-v1"},
            "space": {"kind": "mlp", "depths": [1, 2], "widths": [4, 8, 16]},
            "ppo": {"num_envs": n, "num_steps": T, "num_minibatches": 1},
            "supernet": {"rollout_subnets": 3},
            "distill": {"alpha": alpha, "beta": beta},
        }
    )
    torch.manual_seed(0)
    return SupernetLearner(build_supernet(cfg), cfg, teacher, np.random.default_rng(0))


def _batch(n: int = N) -> Batch:
    g = torch.Generator().manual_seed(2)
    rows = T * n
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
        d = real(*args, own=own, **kw)
        calls.append({"own": own, "loss": d.loss})
        return d

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
    # the update's loss is the sum of every subnet's (only the last one's, or a mean, trained
    # the others less or not at all; a review found only finiteness checked)
    assert loss.item() == pytest.approx(sum(c["loss"].item() for c in calls), rel=1e-6)
    assert len({round(c["loss"].item(), 6) for c in calls}) == 3  # three different terms


def test_the_logged_distillation_terms_are_every_subnets_mean() -> None:
    """A minibatch without rows of one subnet (or a torchrun rank that holds none of its
    slots): its PPO terms have no rows to log, its distillation terms do (every row)."""
    from a2d_evo.train.distill import distill_actor_loss

    teacher = Agent(MLPArch((8,)), (4,), 2)
    learner = _learner(teacher=teacher, alpha=1.0, beta=0.5)
    learner.policy(1)
    batch = learner.prepare(_batch())
    assert batch.actor is not None
    mb = batch.take(torch.nonzero(batch.actor != 2).squeeze(-1))  # subnet 2 has no rows here
    _, logs = learner.loss(mb, 0.0)
    with torch.no_grad():
        each = [
            distill_actor_loss(learner.model(mb.obs, a).logits, mb.teacher_logits)
            for a in learner.rollout_archs
        ]
    assert float(logs["distill_actor"]) == pytest.approx(float(torch.stack(each).mean()))
    assert float(torch.stack(each[:2]).mean()) != pytest.approx(float(torch.stack(each).mean()))


def test_each_subnets_loss_is_weighed_by_its_share_of_the_slots(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """5 slots between 3 subnets split 2 / 2 / 1: each one's PPO terms count its share of
    the rollout (0.4, 0.4, 0.2), not 1 / 3 each."""
    learner = _learner(n=5)
    learner.policy(1)
    batch = learner.prepare(_batch(n=5))
    assert batch.actor is not None
    shares: list[float] = []
    real = supernet_stage.distill_loss

    def spy(*args: Any, own_share: float = 1.0, **kw: Any) -> Any:
        shares.append(own_share)
        return real(*args, own_share=own_share, **kw)

    monkeypatch.setattr(supernet_stage, "distill_loss", spy)
    learner.loss(batch, 0.0)
    assert shares == pytest.approx([0.4, 0.4, 0.2])
    counts = torch.bincount(batch.actor, minlength=3).tolist()
    assert shares == pytest.approx([c / (5 * T) for c in counts])  # rows each one collected


@pytest.mark.parametrize(("alpha", "beta"), [(0.0, 0.0), (1.0, 0.5)])
def test_the_first_rollout_fixes_sigma_and_restates_its_values_once(
    alpha: float, beta: float
) -> None:
    """A teacher whose values are all 30 fixes sigma = 30 (their root mean square) on the
    first rollout, which acted with sigma 1: its stored values are multiplied by 30 once,
    so that the loss's division by sigma gives the head outputs back; later rollouts, which
    act with sigma, keep theirs. The vanilla arm (alpha = beta = 0) given a teacher alike."""
    teacher = Agent(MLPArch((4,)), (4,), 2)
    with torch.no_grad():
        teacher.value.weight.zero_()
        teacher.value.bias.fill_(30.0)
    learner = _learner(teacher=teacher, alpha=alpha, beta=beta)
    assert float(learner.supernet.value_scale) <= 0  # not fixed yet
    learner.policy(1)
    raw = _batch()
    first = learner.prepare(raw)
    assert float(learner.supernet.value_scale) == pytest.approx(30.0)
    assert learner.sigma_from == "teacher"
    torch.testing.assert_close(first.values, raw.values * 30.0)
    torch.testing.assert_close(first.returns, raw.returns)  # returns are raw: GAE's
    act = learner.policy(2)
    second = learner.prepare(raw)
    torch.testing.assert_close(second.values, raw.values)
    assert float(learner.supernet.value_scale) == pytest.approx(30.0)
    # ... and that acting gives raw values (head outputs times sigma), which GAE mixes with
    # raw rewards: without the factor every later rollout's targets were in two units
    obs = torch.randn(N, 4, generator=torch.Generator().manual_seed(0))
    sizes = [list(learner._slot_actor).count(i) for i in range(len(learner.rollout_archs))]
    head = learner.model.forward_groups(obs, learner.rollout_archs, sizes).value
    torch.testing.assert_close(act(obs).value, head * 30.0)


def test_advantages_are_normalised_within_each_subnets_rows() -> None:
    from a2d_evo.scale.ddp import DistContext
    from a2d_evo.train.learners import normalised_per_actor

    adv = torch.tensor([1.0, 3.0, 10.0, 20.0, 30.0, 7.0])
    actor = torch.tensor([0, 0, 1, 1, 1, 2])
    mb = _batch()._replace(advantages=adv, actor=actor, obs=torch.zeros(6, 4))
    out = normalised_per_actor(mb, 3, DistContext()).advantages
    # subnet 0: mean 2, sample std sqrt(2); subnet 1: mean 20, std 10; subnet 2 alone: centred
    s2 = 2.0**0.5
    want = [-1 / s2, 1 / s2, -1.0, 0.0, 1.0, 0.0]
    torch.testing.assert_close(out, torch.tensor(want), atol=1e-6, rtol=0)


def test_tags_match_the_subnets_that_acted_in_a_real_rollout() -> None:
    """Collect a rollout with the grouped policy: each row's stored log-prob is the one its
    tagged subnet gives (the tags follow the buffer's step-major layout)."""
    from a2d_evo.envs import make_vec_env
    from a2d_evo.train.ppo import RolloutBuffer, collect_rollout

    learner = _learner()
    cfg = learner.cfg
    envs = make_vec_env(cfg.env, N, seed=0)
    try:
        buffer = RolloutBuffer(T, N, (4,), np.dtype(np.float32), torch.device("cpu"))
        obs = envs.reset(seed=list(range(N)))
        policy = learner.policy(1)
        collect_rollout(envs, policy, buffer, obs, torch.Generator().manual_seed(0))
    finally:
        envs.close()
    adv = torch.zeros(T, N)
    batch = learner.prepare(buffer.batch(adv, adv))
    assert batch.actor is not None
    with torch.no_grad():
        for j, arch in enumerate(learner.rollout_archs):
            rows = batch.actor == j
            logits = learner.model(batch.obs[rows], arch).logits
            logp = torch.log_softmax(logits, -1).gather(-1, batch.actions[rows, None])[:, 0]
            torch.testing.assert_close(logp, batch.logprobs[rows])


def test_more_subnets_than_env_slots_is_refused_before_anything_is_written(
    tmp_path: Any,
) -> None:
    from a2d_evo.errors import ConfigError
    from a2d_evo.runfolder import RunFolder
    from a2d_evo.train import train_supernet

    cfg = config_from_dict(
        {
            "env": {"id": "CartPole-v1"},
            "ppo": {"num_envs": 2, "num_steps": 16, "num_minibatches": 1},
            "supernet": {"rollout_subnets": 4, "total_steps": 64},
            "distill": {"alpha": 0.0, "beta": 0.0},
        }
    )
    run = RunFolder(tmp_path / "run")
    with pytest.raises(ConfigError, match=r"supernet\.rollout_subnets \(4\) is more than"):
        train_supernet(cfg, run, progress=False)
    assert not run.root.exists()


@pytest.mark.parametrize("world", [2, 3])
def test_torchrun_ranks_split_the_runs_slots_as_one_process(
    world: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """12 env slots, 4 subnets: one process gives each subnet 3 contiguous slots and a quarter
    of the rows. On 2 or 3 ranks each rank acts in its shard of that same split (each rank
    split its own slots: on 2 ranks of 6 the random subnets got a sixth of the rows each),
    and its grouped forward acts per slot as the subnet of that slot."""
    from a2d_evo.config import config_from_dict
    from a2d_evo.nets.space import SearchSpace
    from a2d_evo.nets.supernet import Supernet
    from a2d_evo.scale import ddp
    from a2d_evo.scale.ddp import DistContext
    from a2d_evo.train.supernet_stage import SupernetLearner

    cfg = config_from_dict(
        {"env": {"id": "CartPole-v1"}, "space": {"widths": [4, 8, 16]},
         "ppo": {"num_envs": 12}, "supernet": {"rollout_subnets": 4}}
    )  # fmt: skip
    torch.manual_seed(0)
    net = Supernet(SearchSpace(cfg.space), (4,), 2)
    one = SupernetLearner(net, cfg, None, np.random.default_rng(3))
    one.policy(1)
    whole = one._slot_actor.tolist()
    assert whole == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3] and one._shares == [0.25] * 4
    obs = torch.randn(12, 4, generator=torch.Generator().manual_seed(1))
    per = 12 // world
    for rank in range(world):
        ctx = DistContext(rank=rank, world_size=world)
        monkeypatch.setattr(ddp, "context_of", lambda model, c=ctx: c)
        learner = SupernetLearner(net, cfg, None, np.random.default_rng(3), per)
        act = learner.policy(1)
        assert learner.rollout_archs == one.rollout_archs and learner._shares == one._shares
        mine = slice(rank * per, (rank + 1) * per)
        assert learner._slot_actor.tolist() == whole[mine]
        with torch.no_grad():
            got = act(obs[mine]).logits
            rows = range(mine.start, mine.stop)
            want = torch.cat(
                [net(obs[i : i + 1], one.rollout_archs[whole[i]]).logits for i in rows]
            )
        torch.testing.assert_close(got, want)
