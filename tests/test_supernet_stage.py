"""a2d_evo.train.supernet_stage: which subnets an update trains, and on which rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from a2d_evo.config import config_from_dict
from a2d_evo.nets.agent import Agent
from a2d_evo.nets.space import MLPArch, SearchSpace
from a2d_evo.nets.supernet import build_supernet
from a2d_evo.train import supernet_stage
from a2d_evo.train.ppo import Batch
from a2d_evo.train.supernet_stage import SupernetLearner

OBS = (4,)

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
    from a2d_evo.runs.folder import RunFolder
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


def test_score_subnets_rows_are_the_same_archs_for_every_run_with_their_worst_episode(
    tmp_path: Path,
) -> None:
    """``score_subnets`` scores the largest, the smallest and random subnets drawn from
    ``arch_seed`` (the same set whatever the run's seed, so two runs compare on the same
    archs); ``return_min`` is the worst of each one's episodes."""
    import torch

    from a2d_evo.config import config_from_dict
    from a2d_evo.evaluation.episodes import evaluate_agent
    from a2d_evo.nets.agent_folder import extract
    from a2d_evo.nets.supernet import Supernet
    from a2d_evo.runs.files import torch_save
    from a2d_evo.train.supernet_stage import score_subnets

    raw = {"env": {"id": "CartPole-v1", "max_episode_steps": 40},
           "space": {"kind": "mlp", "depths": [1, 2], "widths": [4, 8, 16]}}  # fmt: skip
    cfgs = [config_from_dict({**raw, "seed": seed}) for seed in (3, 4)]
    torch.manual_seed(0)
    net = Supernet(SearchSpace(cfgs[0].space), OBS, 2)
    torch_save(tmp_path / "weights.pt", net.state_dict())
    tables = [score_subnets(c, tmp_path / "weights.pt", n_random=2, episodes=4, seed=50)
              for c in cfgs]  # fmt: skip
    assert [r["arch"] for r in tables[0]] == [r["arch"] for r in tables[1]]
    assert [r["role"] for r in tables[0]] == ["largest", "smallest", "random", "random"]
    space = SearchSpace(cfgs[0].space)
    every = space.sample_encodings(np.random.default_rng(0), 500)  # all 12 archs of the space
    by_name = {str(space.decode(x)): space.decode(x) for x in every}
    spread = 0
    for row in tables[0]:
        res = evaluate_agent(extract(net, by_name[row["arch"]]), cfgs[0], 4, 50, "greedy")
        assert row["return_min"] == float(res.returns.min())
        spread += float(res.returns.min()) < float(res.returns.max())
    assert spread  # some subnet's episodes differ: the minimum is not any episode's


def test_a_resumed_checkpoint_adds_its_wall_time_to_the_pieces_before(tmp_path: Path) -> None:
    """``wall_s`` is the training time over every resumed piece: a checkpoint written after
    a resume holds the earlier pieces' time (1000 s, set in the first piece's checkpoint)
    plus its own, and so does the result."""
    import torch

    from a2d_evo.config import config_from_dict
    from a2d_evo.envs import make_vec_env
    from a2d_evo.nets.agent import Agent
    from a2d_evo.runs.files import torch_load, torch_save
    from a2d_evo.train import loop
    from a2d_evo.train.interrupts import TrainingInterrupted
    from a2d_evo.train.learners import AgentLearner
    from a2d_evo.train.streams import Streams

    cfg = config_from_dict({"env": {"id": "CartPole-v1"},
                            "ppo": {"num_envs": 2, "num_steps": 8, "num_minibatches": 1,
                                    "update_epochs": 1}})  # fmt: skip
    path = tmp_path / "checkpoint.pt"

    def piece(resume: bool, stop_after: int | None) -> loop.TrainResult:
        envs = make_vec_env(cfg.env, 2, seed=0, training=True)
        opts = loop.LoopOptions(stage="teacher", total_steps=48, checkpoint=path, tb_dir=None,
                                checkpoint_every=10, resume=resume, progress=False,
                                stop_after=stop_after)  # fmt: skip
        learner = AgentLearner(Agent(MLPArch((4,)), OBS, 2), cfg)
        try:
            return loop.run_ppo(learner, cfg, envs, OBS, np.float32, Streams(0, "teacher"),
                                opts, torch.device("cpu"))  # fmt: skip
        finally:
            envs.close()

    with pytest.raises(TrainingInterrupted):
        piece(False, 1)
    ckpt = torch_load(path)
    assert ckpt["update"] == 1 and ckpt["wall_s"] < 1000
    torch_save(path, {**ckpt, "wall_s": 1000.0})
    res = piece(True, None)
    assert torch_load(path)["update"] == 3
    assert 1000.0 < torch_load(path)["wall_s"] < 1100.0 and 1000.0 < res.wall_s < 1100.0


def _supernet_learner(teacher: Any = None, **distill: Any) -> Any:
    """A SupernetLearner on CartPole: 6 env slots, 2 steps, 3 subnets (2 slots each)."""
    from a2d_evo.config import config_from_dict
    from a2d_evo.nets.supernet import build_supernet
    from a2d_evo.train.supernet_stage import SupernetLearner

    cfg = config_from_dict(
        {"env": {"id": "CartPole-v1"}, "space": {"kind": "mlp", "depths": [1, 2], "widths": [4, 8]},
         "ppo": {"num_envs": 6, "num_steps": 2, "num_minibatches": 1},
         "supernet": {"rollout_subnets": 3}, "distill": {"alpha": 0.0, "beta": 0.0, **distill}}
    )  # fmt: skip
    torch.manual_seed(0)
    return SupernetLearner(build_supernet(cfg), cfg, teacher, np.random.default_rng(0))


def _rollout(rows: int = 12) -> Any:
    from a2d_evo.train.ppo import Batch

    g = torch.Generator().manual_seed(2)
    return Batch(
        obs=torch.randn(rows, 4, generator=g),
        actions=torch.randint(0, 2, (rows,), generator=g),
        logprobs=torch.full((rows,), -0.6931472),
        values=torch.randn(rows, generator=g),
        advantages=torch.randn(rows, generator=g),
        returns=torch.randn(rows, generator=g),
    )


def test_without_a_teacher_sigma_is_the_rms_of_the_first_rollouts_returns() -> None:
    """a2d_evo/train/supernet_stage.py SupernetLearner.prepare: with no teacher at all, sigma
    is the root mean square of the first rollout's returns (the module docstring). Mutant
    let through: the advantages in their place (the covering tests give a teacher, or only
    read ``sigma_from``)."""
    learner = _supernet_learner()
    learner.policy(1)
    raw = _rollout()._replace(returns=torch.tensor([3.0, -4.0] * 6))
    learner.prepare(raw)
    # RMS of (3, -4, 3, -4, ...) = sqrt((9 + 16) / 2) = sqrt(12.5) = 3.5355339
    assert learner.sigma_from == "returns"
    assert float(learner.supernet.value_scale) == pytest.approx(12.5**0.5, rel=1e-6)


def test_the_supernets_distillation_anneals_with_the_progress() -> None:
    """a2d_evo/train/supernet_stage.py SupernetLearner.loss: alpha and beta follow
    ``distill.anneal`` at the update's progress: linear to final_fraction 0.2, at progress
    0.5 they are 1 - 0.5 * 0.8 = 0.6 of the configured 1.0 and 0.5. Mutant let through:
    ``distill_coefs(cfg.distill, 0.0)`` (the covering tests use no annealing), which kept
    the full coefficients to the end of the supernet's training."""
    from a2d_evo.nets.agent import Agent
    from a2d_evo.nets.space import MLPArch

    torch.manual_seed(1)
    teacher = Agent(MLPArch((8,)), (4,), 2)
    learner = _supernet_learner(teacher, alpha=1.0, beta=0.5, anneal="linear",
                                final_fraction=0.2)  # fmt: skip
    learner.policy(1)
    mb = learner.prepare(_rollout())
    for progress, alpha, beta in ((0.0, 1.0, 0.5), (0.5, 0.6, 0.3), (1.0, 0.2, 0.1)):
        _, logs = learner.loss(mb, progress)
        assert float(logs["alpha"]) == pytest.approx(alpha)
        assert float(logs["beta"]) == pytest.approx(beta)


def test_the_logged_ppo_terms_are_the_mean_over_the_subnets_with_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """a2d_evo/train/supernet_stage.py SupernetLearner.loss: a subnet without rows of its own
    in the minibatch has no PPO terms to log; the logged policy, value and entropy are the
    mean over the subnets that have rows. Mutant let through: ``if bool(own.any())`` made
    ``if True``: its zeros entered the mean, a third off here (the covering test checks only
    the distillation terms' mean)."""
    from a2d_evo.train import supernet_stage

    learner = _supernet_learner()
    learner.policy(1)
    batch = learner.prepare(_rollout())
    assert batch.actor is not None and batch.actor.tolist() == [0, 0, 1, 1, 2, 2] * 2
    mb = batch.take(torch.nonzero(batch.actor != 2).squeeze(-1))  # subnet 2: no rows
    seen: list[Any] = []
    real = supernet_stage.distill_loss

    def spy(*args: Any, own: torch.Tensor, **kw: Any) -> Any:
        d = real(*args, own=own, **kw)
        seen.append((bool(own.any()), d.ppo))
        return d

    monkeypatch.setattr(supernet_stage, "distill_loss", spy)
    _, logs = learner.loss(mb, 0.0)
    assert [has for has, _ in seen] == [True, True, False]
    for key in ("policy", "value", "entropy"):
        want = float((getattr(seen[0][1], key) + getattr(seen[1][1], key)).detach()) / 2
        assert float(logs[key]) == pytest.approx(want, rel=1e-6), key
        assert want != 0.0


def _scored_supernet(tmp_path: Path) -> tuple[Any, Path]:
    """A config (CartPole cut at 30 steps, a 6-arch MLP space) and random supernet weights."""
    from a2d_evo.config import config_from_dict
    from a2d_evo.nets.space import SearchSpace
    from a2d_evo.nets.supernet import Supernet
    from a2d_evo.runs.files import torch_save

    env = {"id": "CartPole-v1", "max_episode_steps": 30}
    space = {"kind": "mlp", "depths": [1, 2], "widths": [4, 8]}
    cfg = config_from_dict({"seed": 5, "env": env, "space": space})
    torch.manual_seed(0)
    net = Supernet(SearchSpace(cfg.space), (4,), 2)
    return cfg, torch_save(tmp_path / "weights.pt", net.state_dict())


def test_score_subnets_random_archs_are_never_the_two_ends(tmp_path: Path) -> None:
    """a2d_evo/train/supernet_stage.py score_subnets: the random subnets are drawn apart from
    the largest and the smallest, so a space of 6 archs asked for 4 random ones gives every
    arch once. Mutant let through: ``sample_distinct(..., [])`` (nothing excluded), which
    scored an end twice as a "random" subnet (the covering test's 12-arch space drew none)."""
    from a2d_evo.nets.space import SearchSpace
    from a2d_evo.train.supernet_stage import score_subnets

    cfg, weights = _scored_supernet(tmp_path)
    space = SearchSpace(cfg.space)
    draws = space.sample_encodings(np.random.default_rng(0), 300)
    every = {str(space.decode(x)) for x in draws}
    assert len(every) == 6  # (4), (8), (4, 4), (4, 8), (8, 4), (8, 8)
    rows = score_subnets(cfg, weights, n_random=4, episodes=1, seed=0)
    assert [r["role"] for r in rows] == ["largest", "smallest"] + ["random"] * 4
    assert rows[0]["arch"] == str(space.largest()) and rows[1]["arch"] == str(space.smallest())
    assert sorted(r["arch"] for r in rows) == sorted(every)


def test_score_subnets_plays_the_fine_tunes_scoring_seeds_by_default(tmp_path: Path) -> None:
    """a2d_evo/train/supernet_stage.py score_subnets: without ``seed`` the episodes start at
    ``finetune_eval_seed(cfg.seed)``, as its docstring says. Mutant let through: ``cfg.seed``
    as the first seed (the covering tests always pass ``seed``): the training seeds, whose
    first episodes the envs of the run's own training had played."""
    from a2d_evo.evaluation.episodes import evaluate_agent
    from a2d_evo.evaluation.seeds import finetune_eval_seed
    from a2d_evo.nets.agent_folder import extract
    from a2d_evo.nets.supernet import load_supernet
    from a2d_evo.train.supernet_stage import score_subnets

    cfg, weights = _scored_supernet(tmp_path)
    rows = score_subnets(cfg, weights, n_random=0, episodes=4)
    net = load_supernet(cfg, weights).eval()
    ends = [net.space.largest(), net.space.smallest()]
    differ = 0
    for row, arch in zip(rows, ends, strict=True):
        agent = extract(net, arch)
        want = evaluate_agent(agent, cfg, 4, finetune_eval_seed(cfg.seed), "greedy")
        assert (row["return_mean"], row["return_min"]) == (want.mean, float(want.returns.min()))
        other = evaluate_agent(agent, cfg, 4, cfg.seed, "greedy")
        differ += (other.mean, float(other.returns.min())) != (want.mean, float(want.returns.min()))
    assert differ  # the two seed sets play differently here: the test tells them apart
