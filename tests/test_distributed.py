"""Scale-out: Ray population evaluation equals the local one (also when an actor dies), and
DDP training on 2 gloo ranks equals one process with the same global batch.

Ray starts once for the module (``ray.init(num_cpus=2)``); the DDP checks share one
``torch.multiprocessing.spawn`` of two ranks.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from a2d_evo.config import Config, config_from_dict
from a2d_evo.errors import ConfigError
from a2d_evo.evaluation.population import PopulationEvaluator
from a2d_evo.nets.space import SearchSpace
from a2d_evo.nets.supernet import Supernet, build_supernet
from a2d_evo.scale import ray_population
from a2d_evo.scale.ddp import (
    DistContext,
    DistributedError,
    check_world_size,
    shard,
    wrap_model,
)
from a2d_evo.scale.ray_cluster import connect_ray
from a2d_evo.scale.ray_population import (
    RayPopulationEvaluator,
    contiguous_shares,
    make_population_evaluator,
    share_timeout,
)

REPO = Path(__file__).resolve().parents[1]

SMALL = {
    "seed": 5,
    "env": {"id": "CartPole-v1"},
    "space": {"kind": "mlp", "depths": [1, 2], "widths": [4, 8, 16, 32]},
    "ppo": {"num_envs": 4, "num_steps": 16, "num_minibatches": 2, "update_epochs": 1},
    "supernet": {"total_steps": 256, "rollout_subnets": 2, "checkpoint_every": 2},
    "teacher": {"arch": {"kind": "mlp", "widths": [16, 16]}, "checkpoint_every": 2},
    "distill": {"alpha": 0.0, "beta": 0.0},
    "search": {"pop": 8, "gens": 2, "episodes": 2, "final_episodes": 2, "max_episode_steps": 60},
}


def small_cfg(*overrides: str) -> Config:
    return config_from_dict(SMALL, list(overrides))


def population(cfg: Config, n: int, seed: int = 0) -> list[Any]:
    space = SearchSpace(cfg.space)
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]


def trained_like(cfg: Config) -> Supernet:
    """A supernet whose subnets differ enough to give different returns."""
    net = build_supernet(cfg)
    with torch.no_grad():
        gen = torch.Generator().manual_seed(3)
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.5)
    return net


def returns(results: list[Any]) -> np.ndarray:
    return np.stack([r.returns for r in results])


# ============================================================================ plain units
def test_contiguous_shares_cover_in_order() -> None:
    assert contiguous_shares(7, 3) == [range(0, 3), range(3, 5), range(5, 7)]
    assert contiguous_shares(2, 5) == [range(0, 1), range(1, 2)]
    for n in range(1, 20):
        for parts in range(1, 6):
            flat = [i for r in contiguous_shares(n, parts) for i in r]
            assert flat == list(range(n))


def test_world_size_must_divide_the_rollout() -> None:
    ppo = small_cfg().ppo  # 4 envs x 16 steps, 2 minibatches
    check_world_size(ppo, 1)
    check_world_size(ppo, 2)
    with pytest.raises(ConfigError, match="num_envs=4 cannot be split over 3 ranks"):
        check_world_size(ppo, 3)
    with pytest.raises(ConfigError, match="num_minibatches"):
        check_world_size(small_cfg("ppo.num_minibatches=64").ppo, 2)


def test_bad_world_size_fails_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import a2d_evo.scale.ddp as dist_mod
    from a2d_evo.runs.folder import RunFolder
    from a2d_evo.train.supernet_stage import train_supernet

    monkeypatch.setattr(dist_mod, "init_distributed", lambda device: DistContext(world_size=3))
    run = RunFolder(tmp_path / "run")
    with pytest.raises(ConfigError, match="cannot be split over 3 ranks"):
        train_supernet(small_cfg(), run, progress=False)
    assert not run.root.exists()


def test_single_process_context_is_inert() -> None:
    ctx = DistContext()
    assert ctx.is_main and not ctx.enabled
    net = torch.nn.Linear(2, 2)
    assert wrap_model(net, ctx) is net
    assert shard(8, ctx) == slice(0, 8)


def test_local_backend_never_imports_ray() -> None:
    code = (
        "import sys\n"
        "import importlib.util as u\n"
        "import a2d_evo.cli, a2d_evo.scale.ddp, a2d_evo.train.loop\n"
        "import a2d_evo.train.supernet_stage, a2d_evo.train.teacher\n"
        "import a2d_evo.scale.ray_population\n"
        "for m in ('a2d_evo.search.evolution', 'a2d_evo.search.problem'):\n"
        "    if u.find_spec(m): __import__(m)\n"
        "from a2d_evo.config import config_from_dict\n"
        "from a2d_evo.nets.supernet import build_supernet\n"
        "from a2d_evo.nets.space import MLPArch\n"
        "cfg = config_from_dict({'search': {'max_episode_steps': 5}})\n"
        "ev = a2d_evo.scale.ray_population.make_population_evaluator(build_supernet(cfg), cfg)\n"
        "assert type(ev).__name__ == 'PopulationEvaluator'\n"
        "ev.evaluate([MLPArch((8,))], 1, [0], max_episode_steps=5); ev.close()\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=120)


def test_missing_ray_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    with pytest.raises(DistributedError, match=r"pip install 'a2d-evo\[distributed\]'"):
        connect_ray(small_cfg("search.backend=ray"))


def test_unreachable_address_fails_before_the_search_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import ray
    import yaml

    from a2d_evo.cli import main

    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # even beside the module's Ray
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there
    config = tmp_path / "small.yaml"
    config.write_text(yaml.safe_dump(SMALL))
    run = _run_with_supernet(tmp_path / "run", small_cfg())
    argv = ["evolve", "--config", str(config), "--out", str(run.root), "--quiet"]
    assert main([*argv, "--ray", f"127.0.0.1:{port}"]) == 2
    assert "cannot reach the Ray cluster at" in capsys.readouterr().err
    assert not run.search.exists()
    with pytest.raises(DistributedError, match="expected 'auto'"):
        connect_ray(small_cfg("search.backend=ray", "search.ray_address=host:port"))


def test_a_ray_address_without_the_ray_backend_is_said(capsys: pytest.CaptureFixture[str]) -> None:
    """search.ray_address with backend local evaluates locally, and says so (it was ignored
    without a word, so a user thought the cluster was used)."""
    from a2d_evo.evaluation.population import PopulationEvaluator
    from a2d_evo.scale.ray_population import make_population_evaluator

    cfg = small_cfg("search.ray_address=127.0.0.1:6399")
    evaluator = make_population_evaluator(trained_like(cfg), cfg)
    assert isinstance(evaluator, PopulationEvaluator)
    err = capsys.readouterr().err
    assert "search.ray_address '127.0.0.1:6399' is set but search.backend is 'local'" in err
    make_population_evaluator(trained_like(small_cfg()), small_cfg())
    assert "ray_address" not in capsys.readouterr().err


# ============================================================================ Ray
@pytest.fixture(scope="module")
def ray_local() -> Any:
    import logging

    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR,
                 log_to_driver=False)  # fmt: skip
    yield ray
    ray.shutdown()


def test_ray_equals_local_and_follows_refresh(ray_local: Any) -> None:
    cfg = small_cfg("search.backend=ray", "search.ray_actors=2")
    net = trained_like(cfg)
    archs = population(cfg, 9)
    seeds = [11, 12]
    local = PopulationEvaluator(net, cfg)
    remote = make_population_evaluator(net, cfg)
    assert isinstance(remote, RayPopulationEvaluator)
    # the arithmetic the actors run, which a search records and a resume checks: the local
    # one's, or the reference where the actors import a2d_evo from a checkout without the
    # built module (Ray puts the driver's folder first on their path: a fresh clone's CI)
    assert remote.numerics in (local.forward.numerics, "reference-cpu")
    try:
        want = local.evaluate(archs, 2, seeds, max_episode_steps=60)
        got = remote.evaluate(archs, 2, seeds, max_episode_steps=60)
        np.testing.assert_array_equal(returns(got), returns(want))
        assert [r.seeds for r in got] == [r.seeds for r in want]
        assert len(set(returns(want)[:, 0])) > 1  # the candidates really differ
        assert remote.timing.env_steps > 0

        with torch.no_grad():  # new weights: shipped by refresh(), once
            for p in net.parameters():
                p.mul_(-1.0)
        local.refresh()
        remote.refresh()
        want2 = local.evaluate(archs, 2, seeds, max_episode_steps=60)
        got2 = remote.evaluate(archs, 2, seeds, max_episode_steps=60)
        np.testing.assert_array_equal(returns(got2), returns(want2))
        assert not np.array_equal(returns(want2), returns(want))
        assert remote.evaluate([], 2, seeds) == []
    finally:
        local.close()
        remote.close()
    assert ray_local.is_initialized()  # a Ray it did not start is left running


def test_close_kills_every_actor_even_when_its_wait_is_interrupted(
    ray_local: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """close() asks each actor to close its envs, then kills them all: a Ctrl-C during that
    wait (an actor finishing its share) killed none of them, and close() could not be called
    again; a wait that raises for a dead actor killed the live ones before they closed."""
    cfg = small_cfg("search.backend=ray", "search.ray_actors=2")
    remote = make_population_evaluator(trained_like(cfg), cfg)
    assert isinstance(remote, RayPopulationEvaluator)
    handles = [slot.handle for slot in remote._slots]
    killed: list[Any] = []
    real_kill = remote.ray.kill
    monkeypatch.setattr(remote.ray, "kill", lambda h, **kw: (killed.append(h), real_kill(h, **kw)))

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(remote.ray, "wait", interrupted)
    with pytest.raises(KeyboardInterrupt):
        remote.close()
    assert killed == handles


def _actor_faulting_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: Any) -> Path:
    """Actors whose first ``evaluate`` (on any of them) calls ``fault()`` instead of working;
    returns the token file that the faulting actor removes.

    The actor class is swapped for a subclass defined here, inside the test module, so that
    Ray ships it by value to the worker processes; the package holds no fault-injection code.
    """
    token = tmp_path / "fault-once"
    token.write_text("")
    path = str(token)

    class FaultsOnce(ray_population._EvalWorker):  # type: ignore[misc,name-defined]
        def evaluate(self, *args: Any, **kwargs: Any) -> Any:
            try:
                os.unlink(path)
            except OSError:
                return super().evaluate(*args, **kwargs)
            fault()

    monkeypatch.setattr(ray_population, "_EvalWorker", FaultsOnce)
    return token


@pytest.fixture
def actor_dies_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The first ``evaluate`` exits the actor's process mid-call, as a lost node looks."""
    return _actor_faulting_once(tmp_path, monkeypatch, lambda: os._exit(1))


def test_dead_actor_share_is_rerun(ray_local: Any, actor_dies_once: Path) -> None:
    cfg = small_cfg("search.backend=ray", "search.ray_actors=2")
    net = trained_like(cfg)
    archs = population(cfg, 8, seed=1)
    seeds = [21, 22]
    want = PopulationEvaluator(net, cfg).evaluate(archs, 2, seeds, max_episode_steps=60)

    token = actor_dies_once
    remote = RayPopulationEvaluator(net, cfg)
    try:
        before = list(remote.actors)
        got = remote.evaluate(archs, 2, seeds, max_episode_steps=60)
        assert not token.exists()  # one actor did exit mid-generation
        replaced = [a != b for a, b in zip(before, remote.actors, strict=True)]
        assert sum(replaced) == 1
        np.testing.assert_array_equal(returns(got), returns(want))
        again = remote.evaluate(archs, 2, seeds, max_episode_steps=60)  # replacement works
        np.testing.assert_array_equal(returns(again), returns(want))
    finally:
        remote.close()


@pytest.fixture
def actor_hangs_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The first ``evaluate`` never returns, as a hung process looks (alive to Ray)."""
    return _actor_faulting_once(tmp_path, monkeypatch, lambda: time.sleep(3600))


def test_a_share_timeout_grows_with_the_share_beyond_a_generations() -> None:
    # pop 64 on 4 actors, 3 episodes: a generation's share is 16 x 3 = 48 candidate-episodes
    assert share_timeout(100.0, 16, 3, 64, 4, 3) == 100.0
    assert share_timeout(100.0, 5, 3, 64, 4, 3) == 100.0  # smaller shares: never less
    assert share_timeout(100.0, 8, 30, 64, 4, 3) == pytest.approx(500.0)  # 240 / 48
    assert share_timeout(None, 8, 30, 64, 4, 3) == math.inf
    # episodes 5x longer than a generation's (below): 5x the time, never less than 1x
    assert share_timeout(100.0, 16, 3, 64, 4, 3, 5.0) == pytest.approx(500.0)
    assert share_timeout(100.0, 16, 3, 64, 4, 3, 0.5) == 100.0


def test_a_share_of_whole_episodes_waits_as_much_longer_as_they_may_run() -> None:
    """Generations play episodes capped at search.max_episode_steps, the front's halving and
    final re-scoring whole ones: a share of those was given a generation's wait, and healthy
    actors were killed as hung (found by review). CartPole's own 500 over a cap of 100: 5x;
    an env.max_episode_steps of 10,000 over 2,000 (the MinAtar configs): 5x; a capped call,
    or no cap: 1x."""
    from a2d_evo.scale.ray_population import episode_stretch

    capped = small_cfg("search.max_episode_steps=100")
    assert episode_stretch(capped, None) == 5.0
    assert episode_stretch(capped, 100) == 1.0
    assert episode_stretch(small_cfg("search.max_episode_steps=null"), None) == 1.0
    minatar_like = small_cfg("search.max_episode_steps=2000", "env.max_episode_steps=10000")
    assert episode_stretch(minatar_like, None) == 5.0
    assert episode_stretch(small_cfg("search.max_episode_steps=1000"), None) == 1.0  # above 500


def test_hung_actor_share_is_rerun_after_the_share_timeout(
    ray_local: Any, actor_hangs_once: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = small_cfg("search.backend=ray", "search.ray_actors=2", "search.ray_share_timeout_s=4")
    net = trained_like(cfg)
    archs = population(cfg, 8, seed=1)
    seeds = [21, 22]
    want = PopulationEvaluator(net, cfg).evaluate(archs, 2, seeds, max_episode_steps=60)

    remote = RayPopulationEvaluator(net, cfg)
    try:
        before = list(remote.actors)
        start = time.monotonic()
        got = remote.evaluate(archs, 2, seeds, max_episode_steps=60)
        assert time.monotonic() - start >= 4  # waited out the timeout, no longer than an hour
        assert not actor_hangs_once.exists()  # one actor did hang, and it is said
        err = capsys.readouterr().err  # 4 archs x 2 episodes: a generation-sized share
        assert "no result within 4 s (search.ray_share_timeout_s = 4 s per generation" in err
        replaced = [a != b for a, b in zip(before, remote.actors, strict=True)]
        assert sum(replaced) == 1
        np.testing.assert_array_equal(returns(got), returns(want))
    finally:
        remote.close()


def _one_actor_stopped_and_replaced(ray: Any, before: list[Any], after: list[Any]) -> None:
    """Exactly one slot holds a new actor, and the old one there is dead."""
    gone = [old for old, new in zip(before, after, strict=True) if old != new]
    assert len(gone) == 1
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(gone[0].ready.remote(), timeout=30)


def test_a_hung_actor_whose_share_is_given_up_is_stopped_too(
    ray_local: Any, actor_hangs_once: Path
) -> None:
    """No retries left: the DistributedError comes with the hung actor stopped and replaced,
    so a caller that keeps the evaluator does not queue its next share behind the hung one."""
    # 8 s, not less: under load (a fresh-clone CI beside two trainings on 2 cores) the healthy
    # actor's first share took over 3 s and was given up as hung too (2 replaced, not 1)
    cfg = small_cfg("search.backend=ray", "search.ray_actors=2", "search.ray_share_timeout_s=8")
    net = trained_like(cfg)
    archs = population(cfg, 8, seed=1)
    remote = RayPopulationEvaluator(net, cfg, max_retries=0)
    try:
        ray_local.get([a.ready.remote() for a in remote.actors], timeout=120)  # started, not timed
        before = list(remote.actors)
        with pytest.raises(DistributedError, match="were lost on 1 Ray actors"):
            remote.evaluate(archs, 2, [21, 22], max_episode_steps=60)
        _one_actor_stopped_and_replaced(ray_local, before, remote.actors)
    finally:
        remote.close()


def test_a_share_left_running_by_an_error_is_stopped_with_its_actor(
    ray_local: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two shares on two actors: one raises (bad input, an A2DError, raised in the caller),
    the other hangs. The error left the hung share running on its actor, which a caller that
    keeps the evaluator would queue its next share behind (found by review): that actor is
    stopped and replaced as the error is raised."""
    from a2d_evo.errors import FormatError

    hang, fail = tmp_path / "hang", tmp_path / "fail"
    hang.write_text("")
    fail.write_text("")
    paths = (str(hang), str(fail))

    class HangsThenFails(ray_population._EvalWorker):  # type: ignore[misc,name-defined]
        def evaluate(self, *args: Any, **kwargs: Any) -> Any:
            for path, fault in zip(paths, ("hang", "fail"), strict=True):
                try:
                    os.unlink(path)
                except OSError:
                    continue
                if fault == "hang":
                    time.sleep(3600)
                raise FormatError("a share's bad input")
            return super().evaluate(*args, **kwargs)

    monkeypatch.setattr(ray_population, "_EvalWorker", HangsThenFails)
    cfg = small_cfg("search.backend=ray", "search.ray_actors=2")
    net = trained_like(cfg)
    remote = RayPopulationEvaluator(net, cfg)
    try:
        before = list(remote.actors)
        with pytest.raises(FormatError, match="a share's bad input"):
            remote.evaluate(population(cfg, 8, seed=1), 2, [21, 22], max_episode_steps=60)
        assert not hang.exists() and not fail.exists()  # one share hung, the other failed
        _one_actor_stopped_and_replaced(ray_local, before, remote.actors)
    finally:
        remote.close()


def _run_with_supernet(root: Path, cfg: Config) -> Any:
    """A run folder holding a teacher agent and (perturbed) supernet weights: what evolve needs."""
    from a2d_evo.config import config_to_dict
    from a2d_evo.nets.agent import Agent
    from a2d_evo.nets.agent_folder import save_agent
    from a2d_evo.nets.space import MLPArch
    from a2d_evo.runs.files import torch_save
    from a2d_evo.runs.folder import RunFolder

    run = RunFolder(root)
    run.bind(cfg)
    torch.manual_seed(2)
    teacher = Agent(MLPArch((16, 16)), (4,), 2, config_to_dict(cfg.env))
    save_agent(teacher, run.teacher_agent, onnx=False)
    torch_save(run.supernet_weights, trained_like(cfg).state_dict())
    return run


def _front_without_timings(path: Path) -> Any:
    import json

    data = json.loads(path.read_text())
    for entry in data["front"]:
        entry.pop("latency_ms")  # a wall-clock measurement, the one thing that varies
    return data


def test_ray_search_writes_the_local_front(ray_local: Any, tmp_path: Path) -> None:
    from a2d_evo.search.evolution import evolve

    fronts, forwards = [], []
    for backend in ("local", "ray"):
        cfg = small_cfg(f"search.backend={backend}", "search.ray_actors=2")
        run = _run_with_supernet(tmp_path / backend, cfg)
        fronts.append(_front_without_timings(evolve(cfg, run, progress=False)))
        history = (run.search / "history.csv").read_text()
        fronts[-1]["history"] = history
        # recorded by both: a search resumed on the other backend is checked, not mixed
        forwards.append(json.loads((run.search / "state.json").read_text())["forward"])
    assert all(isinstance(f, str) for f in forwards), forwards
    assert fronts[0] == fronts[1]
    assert len(fronts[0]["front"]) >= 1


# ============================================================================ DDP
def _batch(cfg: Config, teacher: torch.nn.Module, size: int) -> Any:
    from a2d_evo.train.ppo import Batch

    g = torch.Generator().manual_seed(1)
    obs = torch.randn(size, 4, generator=g)
    with torch.no_grad():
        t = teacher(obs)
    return Batch(
        obs=obs,
        actions=torch.randint(0, 2, (size,), generator=g),
        logprobs=-0.3 - torch.rand(size, generator=g),
        values=torch.randn(size, generator=g),
        advantages=torch.randn(size, generator=g) * 2 + 0.5,
        returns=torch.randn(size, generator=g),
        teacher_logits=t.logits,
        teacher_values=t.value,
    )


def ddp_updates(ctx: DistContext, steps: int = 2, world: int = 2) -> dict[str, torch.Tensor]:
    """``steps`` sandwich minibatch updates of a distilled supernet, as run_ppo makes them, on
    a fixed rollout of the run's 4 env slots (16 steps, step-major): a torchrun rank holds the
    rows of its own slots (``ddp.shard``), with its learner's subnets acting there, and takes
    one permutation's chunks of them; one process (``ctx`` of world 1) trains on the union of
    the ``world`` ranks' minibatches."""
    from a2d_evo.nets.agent import Agent
    from a2d_evo.nets.space import MLPArch
    from a2d_evo.train.supernet_stage import SupernetLearner

    cfg = small_cfg("distill.alpha=1.0", "distill.beta=0.5", "supernet.rollout_subnets=4")
    torch.manual_seed(0)
    net = build_supernet(cfg)
    teacher = Agent(MLPArch((16, 16)), (4,), 2)
    n = cfg.ppo.num_envs
    learner = SupernetLearner(net, cfg, teacher, np.random.default_rng(0), n // ctx.world_size)
    learner.model = wrap_model(net, ctx)  # what the stage does
    learner.policy(1)  # the update's subnets: one per env slot of the 4
    full = _batch(cfg, teacher, 64)
    per = n // world
    local_rows = 64 // world

    def rows(rank: int, local: Any) -> list[int]:  # rank's local rows -> rows of the rollout
        return [(i // per) * n + rank * per + i % per for i in local]

    ranks = [ctx.rank] if ctx.enabled else list(range(world))
    if ctx.enabled:
        batch = learner.prepare(full.take(torch.tensor(rows(ctx.rank, range(local_rows)))))
    else:
        batch = learner.prepare(full)
    params = list(net.parameters())
    opt = torch.optim.Adam(params, lr=cfg.ppo.lr, eps=1e-5)
    perm = np.random.default_rng(5).permutation(local_rows)  # every rank's, as run_ppo's
    for chunk in np.array_split(perm, steps):
        picked = chunk if ctx.enabled else [i for r in ranks for i in rows(r, chunk)]
        loss, _ = learner.loss(batch.take(torch.as_tensor(picked)), 0.25)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.ppo.max_grad_norm)
        opt.step()
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    from a2d_evo.runs.folder import RunFolder
    from a2d_evo.scale.ddp import init_distributed, shutdown_distributed
    from a2d_evo.train.loop import TrainingInterrupted
    from a2d_evo.train.supernet_stage import train_supernet

    ctx = init_distributed("cpu")
    assert ctx.enabled and ctx.backend == "gloo" and ctx.rank == rank
    try:
        updated = ddp_updates(ctx)
        # a plain agent's learner acts with the bare agent: a DDP forward syncs buffers on
        # every rank, and a truncation's extra forward runs on the ranks that saw one only
        from a2d_evo.nets.agent import Agent
        from a2d_evo.nets.space import MLPArch
        from a2d_evo.scale.ddp import wrap_model
        from a2d_evo.train.learners import AgentLearner

        agent = Agent(MLPArch((8,)), (4,), 2)
        acts = AgentLearner(wrap_model(agent, ctx), small_cfg()).policy(1)
        assert acts is agent, type(acts)
        # The whole stage on 2 ranks: straight through, and stopped after update 2 + resumed.
        cfg = small_cfg()
        straight = train_supernet(cfg, RunFolder(Path(out) / "straight"), progress=False)
        stopped = RunFolder(Path(out) / "stopped")
        try:
            train_supernet(cfg, stopped, progress=False, stop_after=2)
        except TrainingInterrupted:
            pass
        else:
            raise AssertionError("stop_after=2 did not stop")
        resumed = train_supernet(cfg, stopped, progress=False, resume=True)
        try:  # stopped on 2 ranks, resumed by the test in one process
            train_supernet(cfg, RunFolder(Path(out) / "switched"), progress=False, stop_after=2)
        except TrainingInterrupted:
            pass
        if ctx.is_main:
            torch.save(
                {"updated": updated, "straight": str(straight), "resumed": str(resumed)},
                Path(out) / "rank0.pt",
            )
    finally:
        shutdown_distributed()


def test_ddp_two_ranks_equal_one_process_and_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch.multiprocessing as mp

    from a2d_evo.runs.files import torch_load

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    res = torch.load(tmp_path / "rank0.pt", weights_only=True)

    single = ddp_updates(DistContext())
    torch.manual_seed(0)
    initial = build_supernet(small_cfg()).state_dict()
    for name, want in single.items():
        got = res["updated"][name]
        assert torch.allclose(got, want, atol=1e-5, rtol=0), name
    assert any(not torch.equal(single[k], initial[k]) for k in single)  # it did train

    straight = torch_load(res["straight"], "weights")
    resumed = torch_load(res["resumed"], "weights")  # completes (envs restart at the resume)
    assert straight.keys() == resumed.keys()
    assert all(torch.isfinite(v).all() for v in resumed.values())
    assert any(not torch.equal(resumed[k], initial[k]) for k in resumed)
    # rank 0 alone wrote: one TensorBoard file, one checkpoint, one summary
    events = list((tmp_path / "straight" / "tb" / "supernet").iterdir())
    assert len(events) == 1
    assert (tmp_path / "straight" / "supernet" / "summary.json").is_file()
    # the rank count is recorded; a resume at another count says so and adds a piece
    from a2d_evo.runs.folder import RunFolder
    from a2d_evo.train.supernet_stage import train_supernet

    summary = json.loads((tmp_path / "stopped" / "supernet" / "summary.json").read_text())
    assert summary["world_sizes"] == [[0, 2]]
    switched = RunFolder(tmp_path / "switched")
    train_supernet(small_cfg(), switched, progress=True, resume=True)
    err = capsys.readouterr().err
    assert "supernet: resumed on 1 rank(s) at update 2, trained on 2 before" in err, err
    summary = json.loads((switched.supernet / "summary.json").read_text())
    assert summary["world_sizes"] == [[0, 2], [2, 1]]
    # a resume of the finished 2-rank stage in one process trains nothing: no piece, no note
    train_supernet(small_cfg(), RunFolder(tmp_path / "stopped"), progress=True, resume=True)
    assert "resumed on" not in capsys.readouterr().err
    summary = json.loads((tmp_path / "stopped" / "supernet" / "summary.json").read_text())
    assert summary["world_sizes"] == [[0, 2]]


def test_a_local_ray_asked_for_more_cpus_than_cores_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A local Ray starts with the CPUs the actors ask (a cluster with fewer is refused): past
    the machine's cores it oversubscribes, which is now said (a fake ray records the init)."""
    import types

    calls: list[dict[str, Any]] = []
    fake = types.SimpleNamespace(is_initialized=lambda: False, init=lambda **kw: calls.append(kw))
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    connect_ray(small_cfg("search.backend=ray", "search.ray_actors=2",
                          "search.ray_cpus_per_actor=8"))  # fmt: skip
    assert calls and calls[0]["num_cpus"] == 16
    assert "a local Ray on 2 cores: search.ray_actors 2 x search.ray_cpus_per_actor 8 asks 16" in (
        capsys.readouterr().err
    )
    connect_ray(small_cfg("search.backend=ray", "search.ray_actors=2"))
    assert "a local Ray on" not in capsys.readouterr().err


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
