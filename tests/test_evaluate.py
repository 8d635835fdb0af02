"""Evaluation: per-episode seeds, greedy/sampled actions, and the population evaluator, which
must give every candidate exactly what evaluating its extracted agent alone gives."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from a2d_evo.config import Config, SpaceConfig, config_from_dict
from a2d_evo.envs.vector import StepResult
from a2d_evo.errors import ConfigError
from a2d_evo.evaluation.episodes import (
    EvalTiming,
    evaluate_agent,
    play_episodes,
    random_policy_return,
)
from a2d_evo.evaluation.population import PopulationEvaluator, evaluate_population
from a2d_evo.nets.agent import Agent
from a2d_evo.nets.agent_folder import extract
from a2d_evo.nets.space import CNNArch, MLPArch, SearchSpace
from a2d_evo.nets.supernet import Supernet

OBS = (4,)


def cartpole(**eval_kw) -> Config:
    return config_from_dict({"env": {"id": "CartPole-v1"}, "eval": eval_kw})


def balancer() -> Agent:
    """A hand-made CartPole controller: push towards where the pole falls."""
    agent = Agent(MLPArch((4,)), (4,), 2)
    with torch.no_grad():
        for p in agent.parameters():
            p.zero_()
        agent.layers[0].weight[0, 2] = 10.0
        agent.layers[0].weight[0, 3] = 10.0
        agent.policy.weight[0, 0] = -5.0
        agent.policy.weight[1, 0] = 5.0
    return agent


@pytest.fixture(scope="module")
def supernet() -> Supernet:
    torch.manual_seed(0)
    net = Supernet(SearchSpace(SpaceConfig()), (4,), 2)
    with torch.no_grad():  # make some subnets play long episodes: the balancer in unit 0
        for layer in net.layers:
            layer.weight.mul_(0.3)
        net.layers[0].weight[0].zero_()
        net.layers[0].weight[0, 2:4] = 10.0
        net.policy.weight[:, 0] = torch.tensor([-5.0, 5.0])
    return net


def test_episode_seeds_and_waves() -> None:
    """Episode i is seeded seed + i whatever the number of envs stepped together (greedy:
    sampled actions come from one generator per wave, so they depend on its width)."""
    agent = balancer()
    a = evaluate_agent(agent, cartpole(num_envs=16), 7, seed=100, max_episode_steps=200)
    b = evaluate_agent(agent, cartpole(num_envs=3), 7, seed=100, max_episode_steps=200)
    c = evaluate_agent(agent, cartpole(), 2, seed=105, max_episode_steps=200)
    assert a.seeds == list(range(100, 107)) and a.episodes == 7
    np.testing.assert_array_equal(a.returns, b.returns)
    np.testing.assert_array_equal(a.returns[5:], c.returns)
    assert a.mean == pytest.approx(a.returns.mean()) and a.std == pytest.approx(a.returns.std())
    assert a.mean > 100  # the controller balances


def test_greedy_and_sampled_actions() -> None:
    agent = balancer()
    cfg = cartpole()
    g1 = evaluate_agent(agent, cfg, 4, seed=3, max_episode_steps=100)
    g2 = evaluate_agent(agent, cfg, 4, seed=3, max_episode_steps=100)
    np.testing.assert_array_equal(g1.returns, g2.returns)
    s1 = evaluate_agent(agent, cfg, 4, seed=3, mode="sample", max_episode_steps=100)
    s2 = evaluate_agent(agent, cfg, 4, seed=3, mode="sample", max_episode_steps=100)
    np.testing.assert_array_equal(s1.returns, s2.returns)  # seeded generator
    with torch.no_grad():
        agent.policy.weight.mul_(0.0)  # uniform policy: sampling is a coin flip
    s3 = evaluate_agent(agent, cfg, 8, seed=3, mode="sample", max_episode_steps=100)
    g3 = evaluate_agent(agent, cfg, 8, seed=3, max_episode_steps=100)
    assert s3.mean < 60
    # greedy on tied logits pushes left every step: the pole falls in 8-10 steps; coin flips
    # keep it up longer (about 16 here; CartPole's random policy averages about 22)
    assert max(g3.returns) <= 10
    assert s3.mean > g3.mean + 3 and len(set(s3.returns)) > 1
    with pytest.raises(ConfigError):
        evaluate_agent(agent, cfg, 2, seed=0, mode="best")  # type: ignore[arg-type]


def test_a_search_cap_shortens_episodes_and_never_lengthens_them() -> None:
    """``max_episode_steps`` (the search's cap) is a cap: above CartPole's registered 500 or a
    config's ``env.max_episode_steps`` the episodes still end there (a cap of 2,000 used to
    replace the limit and let the balancer play 2,000 steps)."""
    agent = balancer()
    for cap, cfg, want in (
        (2000, cartpole(), 500.0),
        (2000, config_from_dict({"env": {"id": "CartPole-v1", "max_episode_steps": 300}}), 300.0),
        (120, cartpole(), 120.0),
    ):
        r = evaluate_agent(agent, cfg, 2, seed=3, max_episode_steps=cap)
        np.testing.assert_array_equal(r.returns, [want, want])


def test_an_atari_search_cap_stops_at_v5s_frame_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """On ALE ids the env's own limit is v5's 108,000 frames, 27,000 agent steps at frame
    skip 4: a larger cap would lift it, so the backends are given the smaller one."""
    from a2d_evo.envs import factory

    cfg = config_from_dict({"env": {"id": "ALE/Pong-v5"}, "space": {"kind": "cnn"}})
    given: list[int | None] = []

    def backend(env_cfg: object, num_envs: int, **kwargs: object) -> None:
        given.append(kwargs["max_episode_steps"])  # type: ignore[arg-type]

    monkeypatch.setattr(factory, "make_atari_vec_env", backend)
    for cap in (50_000, 100, None):
        factory.make_vec_env(cfg.env, 1, seed=0, max_episode_steps=cap)
    assert given == [27_000, 100, None]


def test_random_policy_is_seeded() -> None:
    cfg = cartpole()
    a = random_policy_return(cfg, 6, seed=11)
    b = random_policy_return(cfg, 6, seed=11)
    np.testing.assert_array_equal(a.returns, b.returns)
    assert a.seeds == list(range(11, 17))
    assert 8 <= a.mean <= 60  # CartPole's random policy: about 22
    # uniform over both actions: about 22 (sd about 9, so 100 episodes hold the mean to about
    # +-2), where a policy stuck on one action (an off-by-one in the draw) plays about 9.4
    # (a review found the loose bound above let that through)
    assert 18 <= random_policy_return(cfg, 100, seed=11).mean <= 27


class _Guess:
    """One step: reward 1 for the action the env drew from its own ``np_random`` at reset."""

    def __new__(cls):  # a gymnasium.Env built lazily: gymnasium is imported by the package
        import gymnasium as gym

        class Guess(gym.Env):
            observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
            action_space = gym.spaces.Discrete(2)

            def reset(self, *, seed=None, options=None):
                super().reset(seed=seed)
                self.target = int(self.np_random.integers(2))
                return np.zeros(1, np.float32), {}

            def step(self, action):
                return np.zeros(1, np.float32), float(int(action) == self.target), True, False, {}

        return Guess()


def test_the_random_policy_does_not_replay_the_envs_own_draws() -> None:
    """The random policy's actions come from a stream of their own: with
    ``default_rng(seed)``, the generator gymnasium seeds the env with, a one-episode block
    guessed the env's hidden draw every time (return 1.0 instead of about 0.5)."""
    import gymnasium as gym

    gym.register("A2DTestGuess-v0", entry_point=_Guess)
    try:
        cfg = config_from_dict({"env": {"id": "A2DTestGuess-v0", "max_episode_steps": 5}})
        hits = [random_policy_return(cfg, 1, seed=s).mean for s in range(1000, 1200)]
    finally:  # the registry is global: later tests must not see it
        del gym.registry["A2DTestGuess-v0"]
    assert 0.38 <= float(np.mean(hits)) <= 0.62, np.mean(hits)  # binomial(200, 0.5): sd 0.035


def test_population_equals_agents_alone(supernet: Supernet) -> None:
    """Common random numbers: candidate c on seeds[e] plays exactly its extracted agent's game."""
    cfg = cartpole()
    space = SearchSpace(cfg.space)
    rng = np.random.default_rng(4)
    archs = [space.decode(x) for x in space.sample_encodings(rng, 6)]
    archs += [MLPArch((4,)), MLPArch((8, 4))]
    seeds = [40, 41, 42]
    timing = EvalTiming()
    results = evaluate_population(
        supernet, archs, cfg, 3, seeds, max_episode_steps=150, timing=timing
    )
    assert len(results) == len(archs)
    for arch, res in zip(archs, results, strict=True):
        alone = evaluate_agent(extract(supernet, arch), cfg, 3, seed=40, max_episode_steps=150)
        np.testing.assert_array_equal(res.returns, alone.returns, err_msg=str(arch))
        assert res.seeds == seeds
    assert max(r.mean for r in results) > 50  # some subnets balance: episodes differ in length
    assert timing.env_s > 0 and timing.net_s > 0
    assert 0 < timing.forward_rows <= timing.env_steps


class _StepsEverySlot:
    """A vector env without ``step_active``: finished slots are stepped on (Atari's case)."""

    def __init__(self, env) -> None:
        self.env = env
        self.num_envs = env.num_envs

    def reset(self, seed):
        return self.env.reset(seed=seed)

    def step(self, actions):
        return self.env.step(actions)


def test_finished_slots_are_not_stepped_and_returns_do_not_change(supernet: Supernet) -> None:
    from a2d_evo.envs import make_vec_env

    archs = [MLPArch((4,)), MLPArch((8, 4)), MLPArch((16,))]
    seeds = [7, 8, 9, 10]
    slot_seeds, owner = seeds * len(archs), np.repeat(np.arange(len(archs)), len(seeds))
    agents = [extract(supernet, a) for a in archs]

    def act(obs: np.ndarray, active: np.ndarray) -> np.ndarray:
        owners = owner[active]
        out = np.empty(len(obs), np.int64)
        with torch.no_grad():
            for c, agent in enumerate(agents):
                rows = owners == c
                if rows.any():
                    logits = agent(torch.as_tensor(obs[rows])).logits
                    out[rows] = logits.argmax(-1).numpy()
        out[owners == 0] = 0  # candidate 0 always pushes left: its episodes end early
        return out

    timings = []
    results = []
    # exact size; exact size stepping every slot; 5 spare slots, which must never move; 5 spare
    # slots stepped on with the rest
    variants = ((lambda e: e, 0), (_StepsEverySlot, 0), (lambda e: e, 5), (_StepsEverySlot, 5))
    for wrap, spare in variants:
        n = len(slot_seeds) + spare
        env = wrap(make_vec_env(cartpole().env, n, seed=0, max_episode_steps=120))
        timing = EvalTiming()
        results.append(play_episodes(env, slot_seeds, act, timing))
        timings.append(timing)
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])
    np.testing.assert_array_equal(results[0], results[3])
    assert len(set(results[0].tolist())) > 1  # episodes of different lengths
    # only live slots are stepped: one slot-step per forward row; stepping all costs more
    assert timings[0].env_steps == timings[0].forward_rows == int(results[0].sum())
    assert timings[1].env_steps == len(slot_seeds) * int(results[0].max())
    assert timings[1].forward_rows == timings[0].forward_rows
    assert timings[2].env_steps == timings[0].env_steps
    assert timings[3].env_steps == (len(slot_seeds) + 5) * int(results[0].max())


def test_play_episodes_needs_a_slot_per_seed() -> None:
    from a2d_evo.envs import make_vec_env

    def act(obs: np.ndarray, active: np.ndarray) -> np.ndarray:
        return np.zeros(len(obs), np.int64)

    with pytest.raises(ValueError, match="3 seeds for an env of 2 slots"):
        play_episodes(make_vec_env(cartpole().env, 2, seed=0), [1, 2, 3], act)


def test_population_sampled_is_deterministic(supernet: Supernet) -> None:
    cfg = cartpole()
    archs = [MLPArch((4,)), MLPArch((64, 8))]
    a = evaluate_population(supernet, archs, cfg, 2, [1, 2], mode="sample", max_episode_steps=80)
    b = evaluate_population(supernet, archs, cfg, 2, [1, 2], mode="sample", max_episode_steps=80)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.returns, y.returns)
    # and it samples: mlp-64x8 balances to the cap greedily, not when its actions are drawn
    g = evaluate_population(supernet, archs, cfg, 2, [1, 2], max_episode_steps=80)
    np.testing.assert_array_equal(g[1].returns, [80.0, 80.0])
    assert min(a[1].returns) < 70


def test_an_evaluation_cut_short_does_not_reuse_its_env(
    supernet: Supernet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A population evaluation interrupted mid-episode (a Ctrl-C a notebook catches) left its
    env mid-step for the next call; the next call builds one anew and scores as a fresh one."""
    from a2d_evo.evaluation import population

    cfg = cartpole()
    archs = [MLPArch((4,)), MLPArch((16,))]
    want = evaluate_population(supernet, archs, cfg, 2, [1, 2], max_episode_steps=60)
    ev = PopulationEvaluator(supernet, cfg)
    real = population.play_episodes

    def interrupted(env: Any, *args: Any) -> Any:
        monkeypatch.setattr(population, "play_episodes", real)
        env.reset(seed=0)
        env.step(np.zeros(env.num_envs, np.int64))  # the env moved, then the interrupt
        raise KeyboardInterrupt

    monkeypatch.setattr(population, "play_episodes", interrupted)
    try:
        with pytest.raises(KeyboardInterrupt):
            ev.evaluate(archs, 2, [1, 2], max_episode_steps=60)
        assert ev._env is None
        got = ev.evaluate(archs, 2, [1, 2], max_episode_steps=60)
    finally:
        ev.close()
    for x, y in zip(got, want, strict=True):
        np.testing.assert_array_equal(x.returns, y.returns)


def test_population_evaluator_reuses_env_and_checks_input(supernet: Supernet) -> None:
    """One env serves later, smaller populations (as a search's cache fills) with the results
    of a fresh evaluator; a larger population or another step limit gets a new env."""
    cfg = cartpole()
    archs = [MLPArch((4,)), MLPArch((16,)), MLPArch((8, 4))]
    ev = PopulationEvaluator(supernet, cfg)
    try:
        ev.evaluate(archs, 2, [5, 6], max_episode_steps=60)
        env = ev._env
        first = ev.evaluate(archs[1:], 2, [5, 6], max_episode_steps=60)
        again = ev.evaluate(archs[1:], 2, [5, 6], max_episode_steps=60)
        assert ev._env is env and env.num_envs == 6
        fresh = evaluate_population(supernet, archs[1:], cfg, 2, [5, 6], max_episode_steps=60)
        for a, b, c in zip(first, again, fresh, strict=True):
            np.testing.assert_array_equal(a.returns, c.returns)
            np.testing.assert_array_equal(b.returns, c.returns)
        assert any(r.mean > 10 for r in first)  # not all at once: the episodes were played
        ev.evaluate(archs, 3, [5, 6, 7], max_episode_steps=60)
        assert ev._env is not env and ev._env.num_envs == 9
        env = ev._env
        ev.evaluate(archs[:1], 2, [5, 6], max_episode_steps=50)
        assert ev._env is not env
        assert ev.evaluate([], 2, [5, 6]) == []
        with pytest.raises(ConfigError):
            ev.evaluate([MLPArch((4,))], 3, [5, 6])
    finally:
        ev.close()


@pytest.mark.parametrize("backend", ["sync", "native"])
def test_atari_population_matches_agents(backend: str) -> None:
    """The uint8 frame path end to end on a real ALE game (120 steps: a few points lost); on
    the native backend, through ``step_active`` and one env shared by two population sizes."""
    pytest.importorskip("ale_py")
    cfg = config_from_dict(
        {
            "env": {"id": "ALE/Pong-v5", "backend": backend, "workers": 2},
            "space": {
                "kind": "cnn",
                "conv": [
                    {"widths": [8, 16], "kernel": 8, "stride": 4},
                    {"widths": [16], "kernel": 4, "stride": 2},
                    {"widths": [16], "kernel": 3},
                    {"widths": [16], "kernels": [3, 5], "padding": "same", "optional": True},
                ],
                "fc": [32, 64],
            },
        }
    )
    from a2d_evo.envs import env_spec

    spec = env_spec(cfg.env)
    torch.manual_seed(0)
    net = Supernet(SearchSpace(cfg.space), tuple(spec.obs_shape), spec.n_actions)
    with torch.no_grad():
        net.policy.weight.mul_(100.0)  # actions that depend on the frames
    archs = [CNNArch.nature((8, 16, 16), (), 32), CNNArch.nature((16, 16, 16), ((16, 5),), 64)]
    ev = PopulationEvaluator(net, cfg)
    try:
        res = ev.evaluate(archs, 2, [3, 4], max_episode_steps=120)
        res += ev.evaluate(archs[1:], 2, [3, 4], max_episode_steps=120)  # spare slots
    finally:
        ev.close()
    for arch, r in zip(archs + archs[1:], res, strict=True):
        alone = evaluate_agent(extract(net, arch), cfg, 2, seed=3, max_episode_steps=120)
        np.testing.assert_array_equal(r.returns, alone.returns)
        assert r.returns.min() < 0  # points were played


def test_scores_are_normalised_against_references_on_the_same_seeds() -> None:
    """A baseline's or fine-tune's metrics: R_teacher and R_random measured on the agent's
    own seeds (the docstring's promise; a shift of R_random's seeds passed every test)."""
    from a2d_evo.evaluation.episodes import score_against_references
    from a2d_evo.formats import normalised_return

    cfg = cartpole(num_envs=2)
    agent, teacher = Agent(MLPArch((8,)), (4,), 2), balancer()
    result, metrics = score_against_references(agent, teacher, cfg, 3, 11)
    r_random = random_policy_return(cfg, 3, 11).mean
    r_teacher = evaluate_agent(teacher, cfg, 3, 11, "greedy").mean
    assert result.seeds == [11, 12, 13] and metrics["seeds"] == [11, 12, 13]
    assert metrics["random_return_mean"] == r_random
    assert metrics["teacher_return_mean"] == r_teacher
    assert random_policy_return(cfg, 3, 12).mean != r_random  # the check can tell
    assert metrics["normalised_return"] == pytest.approx(
        normalised_return(result.mean, r_random, r_teacher)
    )


class _Countdown:
    """A vector env whose slot ``i`` ends its episode after ``ends[i]`` steps with return
    ``10 * ends[i]`` (autoreset, as every backend): finished slots are stepped on."""

    def __init__(self, ends: list[int]) -> None:
        self.ends, self.num_envs = ends, len(ends)
        self.t = np.zeros(self.num_envs, dtype=np.int64)

    def reset(self, seed: object = None) -> np.ndarray:
        self.t[:] = 0
        return np.zeros((self.num_envs, 1), dtype=np.float32)

    def step(self, actions: np.ndarray) -> StepResult:
        self.t += 1
        ended = self.t == np.asarray(self.ends)
        ret = np.where(ended, 10.0 * np.asarray(self.ends), np.nan)
        self.t[ended] = 0
        n = self.num_envs
        obs = np.zeros((n, 1), dtype=np.float32)
        return StepResult(obs, np.zeros(n, np.float32), ended, np.zeros(n, bool), obs, ret,
                          np.where(ended, self.ends, 0))  # fmt: skip


def test_episode_lengths_stop_counting_when_a_slot_finishes() -> None:
    """``play_episodes``'s lengths are each episode's own env steps (what the search budget
    counts), not the longest slot's: slots ending after 2, 5 and 3 steps report 2, 5, 3."""
    from a2d_evo.evaluation.episodes import play_episodes

    lengths = np.zeros(3, dtype=np.int64)
    act = lambda obs, active: np.zeros(len(obs), dtype=np.int64)  # noqa: E731
    returns = play_episodes(_Countdown([2, 5, 3]), [7, 8, 9], act, None, lengths)
    assert returns.tolist() == [20.0, 50.0, 30.0]
    assert lengths.tolist() == [2, 5, 3]


def test_an_env_without_step_active_is_not_reused_for_fewer_slots(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only a vector env that can step some of its slots serves a smaller population; one
    that cannot (the ale_vector backend) is closed and a new one of the right size made."""
    from a2d_evo.config import config_from_dict
    from a2d_evo.evaluation import population
    from a2d_evo.nets.supernet import Supernet

    class Whole:
        def __init__(self, n: int) -> None:
            self.num_envs, self.closed = n, False

        def close(self) -> None:
            self.closed = True

    class Partial(Whole):
        def step_active(self, actions, active):  # type: ignore[no-untyped-def]
            raise AssertionError("not stepped here")

    for kind, reused in ((Whole, False), (Partial, True)):
        monkeypatch.setattr(population, "make_vec_env", lambda cfg, n, kind=kind, **kw: kind(n))
        net = Supernet(SearchSpace(SpaceConfig(kind="mlp", depths=(1,), widths=(4,))), OBS, 2)
        ev = population.PopulationEvaluator(net, config_from_dict({}))
        big = ev._vec_env(6, None, 0)
        small = ev._vec_env(4, None, 0)
        assert (small is big) is reused
        assert big.closed is not reused and small.num_envs == (6 if reused else 4)


def test_a_population_request_of_zero_episodes_is_refused() -> None:
    """Every population evaluator refuses 0 episodes (the scores would be means of nothing)
    as it refuses fewer seeds than episodes; 1 episode on 1 seed is taken."""
    from a2d_evo.errors import ConfigError
    from a2d_evo.evaluation.population import check_population_request

    check_population_request(1, [7], "greedy")
    for episodes, seeds in ((0, [7]), (0, []), (2, [7])):
        with pytest.raises(ConfigError, match="population eval: need"):
            check_population_request(episodes, seeds, "greedy")


def test_a_population_s_episode_lengths_are_its_agents_own() -> None:
    """Each arch's result carries its episodes' lengths (the search's budget sums them): the
    lengths its extracted agent plays on the same seeds alone, each within the step cap."""
    import torch

    from a2d_evo.config import config_from_dict
    from a2d_evo.evaluation.episodes import evaluate_agent
    from a2d_evo.evaluation.population import evaluate_population
    from a2d_evo.nets.agent_folder import extract
    from a2d_evo.nets.supernet import Supernet

    torch.manual_seed(0)
    net = Supernet(SearchSpace(SpaceConfig(kind="mlp", depths=(1, 2), widths=(4, 8))), OBS, 2)
    cfg = config_from_dict({"env": {"id": "CartPole-v1"}})
    archs = [MLPArch((4,)), MLPArch((8, 4))]
    results = evaluate_population(net, archs, cfg, 3, [40, 41, 42], max_episode_steps=30)
    for arch, res in zip(archs, results, strict=True):
        alone = evaluate_agent(extract(net, arch), cfg, 3, seed=40, max_episode_steps=30)
        assert res.lengths is not None and alone.lengths is not None
        np.testing.assert_array_equal(res.lengths, alone.lengths)
        assert ((1 <= res.lengths) & (res.lengths <= 30)).all()
