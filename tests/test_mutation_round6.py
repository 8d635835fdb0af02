"""Properties no test pinned, found by a sixth mutation review (2026-12-06): each test below
passes on the code as it is and fails under a small change to it that the whole suite let
through: the search problem's FLOPs ceiling and anchors, survivors ranked on current
estimates, the references' seed blocks, the reset mutation's forced gene and settings, the
knee's ties and the export filters, search-state bounds and the resume's dropped episodes,
the supernet's input widths and checks, image spaces, step caps, Discrete one-hots, the
population evaluator's env reuse and lengths, the loop's recent return and rates, and more."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from a2d_evo.config import SpaceConfig
from a2d_evo.evaluation.episodes import EvalResult, make_result
from a2d_evo.formats import Normalisation
from a2d_evo.nets import cost
from a2d_evo.nets.space import Arch, MLPArch, SearchSpace

SPACE = SearchSpace(SpaceConfig(kind="mlp"))
OBS, ACTIONS = (4,), 2
NORM = Normalisation(r_random=0.0, r_teacher=100.0, teacher_flops=1000)


def _by_width(archs: Sequence[Arch], episodes: int, seeds: Sequence[int]) -> list[EvalResult]:
    """Returns that grow with the arch's total width (seed by seed: + seed % 3), 10 steps."""
    out = []
    for a in archs:
        assert isinstance(a, MLPArch)
        s = list(seeds[:episodes])
        out.append(make_result([sum(a.widths) + x % 3 for x in s], s, [10] * len(s)))
    return out


def _problem(**kw):  # type: ignore[no-untyped-def]
    from a2d_evo.search.problem import SubnetProblem

    return SubnetProblem(SPACE, _by_width, OBS, ACTIONS, NORM, episodes=3, **kw)


# ----------------------------------------------------------------------------- problem.py
def test_an_arch_exactly_at_max_flops_is_played_and_replayed() -> None:
    """``G = FLOPs - max_flops <= 0`` is feasible: an arch costing exactly the ceiling is
    played and recorded (its G is 0), and re-scored in the next generation; only one above
    the ceiling is left unplayed."""
    arch = MLPArch((16,))
    f = cost.flops(arch, OBS, ACTIONS)
    prob = _problem(max_flops=float(f), reevaluate=True)
    X = np.array([SPACE.encode(arch), SPACE.encode(MLPArch((24,)))])
    for gen in (0, 1):
        out: dict = {}
        prob._evaluate(X, out, seeds=[10, 11, 12], generation=gen)
        assert list(prob.cache) == [SPACE.key(X[0])]
        assert out["G"][0, 0] == 0.0 and out["G"][1, 0] > 0
    assert prob.cache[SPACE.key(X[0])]["generations"] == [0, 0, 0, 1, 1, 1]


def test_anchors_play_once_per_generation() -> None:
    """Anchors play every generation in which anything plays, once: a second evaluator call
    in the same generation (new archs) plays the new archs alone, and the next generation's
    plays the anchor again."""
    anchor = SPACE.encode(MLPArch((8,)))
    prob = _problem(anchors=[anchor])
    key = SPACE.key(anchor)
    for gen, width in ((0, 16), (0, 24), (1, 32)):
        prob._evaluate(np.array([SPACE.encode(MLPArch((width,)))]), {}, seeds=[10, 11, 12],
                       generation=gen)  # fmt: skip
        if gen == 0:
            assert prob.cache[key]["episodes"] == 3
    assert prob.cache[key]["generations"] == [0, 0, 0, 1, 1, 1]
    assert prob.cache[key]["anchor"] is True


# ----------------------------------------------------------------------------- pick.py
def test_a_straight_front_has_no_knee_but_its_best_member() -> None:
    """Members on one line in (log10 FLOPs, normalised return) have no knee: the rounding
    noise that puts the middle one 1e-16 above the chord does not make it one; the knee is
    the best-scoring member."""
    from a2d_evo.report.pick import knee_index

    assert knee_index([10, 1000, 100000], [0.1, 0.2, 0.3]) == 2
    assert knee_index([10, 1000, 100000], [0.7, 0.8, 0.9]) == 2


def test_of_two_knees_equally_far_above_the_chord_the_better_scoring_wins() -> None:
    """Two members exactly as far above the chord (0.375 in normalised units, all values
    exact in binary): the knee is the one with the higher return."""
    from a2d_evo.report.pick import knee_index

    flops = [1, 100, 10_000, 100_000_000]  # log10: 0, 2, 4, 8 -> 0, 1/4, 1/2, 1
    assert knee_index(flops, [0.0, 0.625, 0.875, 1.0]) == 2


def test_export_filters_keep_members_exactly_at_their_bounds() -> None:
    """``--max-flops F`` keeps a member of exactly F FLOPs and ``--min-return R`` one of
    exactly R (the messages say ``FLOPs <= F`` and ``return >= R``)."""
    from a2d_evo.report.pick import select

    front = [
        {"flops": 100, "return_mean": 20.0, "normalised_return": 0.0},
        {"flops": 1000, "return_mean": 450.0, "normalised_return": 0.9},
        {"flops": 10000, "return_mean": 500.0, "normalised_return": 1.0},
    ]
    assert select(front, "all", min_return=450.0) == [("front_01", 1), ("front_02", 2)]
    assert select(front, "all", max_flops=1000) == [("front_00", 0), ("front_01", 1)]
    assert select(front, "all", max_flops=1000, min_return=450.0) == [("front_01", 1)]


def test_a_pick_one_past_the_front_names_the_entries_there_are() -> None:
    """``--pick N`` with N the front's length is out of range (entries 0 to N-1), said as
    such, not as an entry the filters excluded."""
    from a2d_evo.errors import RunFolderError
    from a2d_evo.report.pick import select

    front = [{"flops": 100 * 10**i, "return_mean": float(i), "normalised_return": i / 2}
             for i in range(3)]  # fmt: skip
    assert select(front, "2") == [("front_02", 2)]
    with pytest.raises(RunFolderError, match=r"--pick 3: the front has entries 0-2"):
        select(front, "3")


# ----------------------------------------------------------------------------- evolution.py
def test_survivors_rank_on_the_archive_s_current_seed_adjusted_estimates() -> None:
    """With ``estimate: seed_adjusted`` and no re-evaluation, a survivor's seed-adjusted
    return moves as the anchors measure new generations (an easy first generation, +100):
    after every generation each member of the population holds the objectives the archive
    gives it now, not those of the generation it played in."""
    from a2d_evo.config import config_from_dict
    from a2d_evo.evaluation.seeds import generation_seeds
    from a2d_evo.search.generation import play_generation
    from a2d_evo.search.nsga import make_algorithm
    from a2d_evo.search.problem import SubnetProblem

    easy = set(generation_seeds(7, 0, 3))

    def evaluate(archs: Sequence[Arch], episodes: int, seeds: Sequence[int]) -> list[EvalResult]:
        s = list(seeds[:episodes])
        return [
            make_result([sum(a.widths) + 100.0 * (x in easy) + x % 3 for x in s], s, [10] * 3)
            for a in archs  # type: ignore[attr-defined]
        ]

    anchors = [SPACE.encode(MLPArch((4,))), SPACE.encode(MLPArch((32, 32)))]
    prob = SubnetProblem(SPACE, evaluate, OBS, ACTIONS, NORM, episodes=3, reevaluate=False,
                         estimate="seed_adjusted", anchors=anchors)  # fmt: skip
    algo = make_algorithm(config_from_dict({"seed": 7, "search": {"pop": 8, "episodes": 3}}), SPACE)
    algo.setup(prob, verbose=False)
    for g in range(3):
        assert play_generation(algo, prob, generation_seeds(7, g, 3), g)
        F, _ = prob.objectives([SPACE.key(np.round(x)) for x in algo.pop.get("X")])
        np.testing.assert_allclose(algo.pop.get("F"), F, rtol=0, atol=1e-12)


def test_references_are_measured_on_the_first_twenty_generations_seeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R_random and R_teacher are measured on the seeds of the first ``min(gens, 20)``
    generations (every candidate of those generations plays them), not on generation 0's
    alone: 5 blocks for a 5-generation search, 20 for a 25-generation one."""
    from test_evolve import RAW, make_run

    from a2d_evo.config import config_from_dict
    from a2d_evo.evaluation.seeds import generation_seeds
    from a2d_evo.runfolder import RunFolder
    from a2d_evo.search import evolution

    class Measured(Exception):
        pass

    blocks: list[list[list[int]]] = []

    def record(cfg, teacher, seed_blocks, max_steps):  # type: ignore[no-untyped-def]
        blocks.append(seed_blocks)
        raise Measured

    monkeypatch.setattr(evolution, "reference_returns", record)
    for gens in (5, 25):
        raw = {**RAW, "search": {**RAW["search"], "gens": gens}}
        make_run(tmp_path / f"run{gens}", raw)
        with pytest.raises(Measured):
            evolution.evolve(config_from_dict(raw), RunFolder(tmp_path / f"run{gens}"),
                             progress=False)  # fmt: skip
    assert blocks[0] == [generation_seeds(3, g, 2) for g in range(5)]
    assert blocks[1] == [generation_seeds(3, g, 2) for g in range(20)]


# ----------------------------------------------------------------------------- envs/image.py
def test_the_wrapped_image_space_keeps_the_values_the_env_gives() -> None:
    """The (C, H, W) uint8 space of a wrapped image env bounds the values the env gives
    (the scale is applied inside the network): 0-3 for a board coded 0-3, 0-1 for bool
    planes, 0-255 for pixels; not 0-255 for every image."""
    import gymnasium as gym

    from a2d_evo.envs.image import wrap_image_env

    def env_of(space: gym.spaces.Box) -> gym.Env:
        class Still(gym.Env):
            observation_space = space
            action_space = gym.spaces.Discrete(2)

        return Still()

    for space, high in (
        (gym.spaces.Box(0, 3, (6, 6, 3), np.uint8), 3),
        (gym.spaces.Box(0, 1, (10, 10, 4), np.bool_), 1),
        (gym.spaces.Box(0, 255, (84, 84, 3), np.uint8), 255),
    ):
        wrapped = wrap_image_env(env_of(space)).observation_space
        assert wrapped.shape == (space.shape[2], space.shape[0], space.shape[1])
        assert wrapped.dtype == np.uint8
        assert int(wrapped.high.max()) == high and int(wrapped.low.min()) == 0


# ----------------------------------------------------------------------------- supernet.py
def test_a_layer_after_an_optional_one_takes_the_wider_of_its_possible_inputs() -> None:
    """A conv after an optional layer may get the optional layer's channels or, when it is
    skipped, the layer before's: its weight holds the wider (8, not the optional layer's 2),
    and so does the FC after a last optional layer. Every arch of such a space runs and
    equals its extracted agent."""
    import torch

    from a2d_evo.config.space import ConvLayerConfig as Conv
    from a2d_evo.nets.agent_folder import extract
    from a2d_evo.nets.space import CNNArch
    from a2d_evo.nets.supernet import Supernet

    conv = (
        Conv(widths=(4, 8), kernel=3),
        Conv(widths=(2,), kernels=(3,), padding="same", optional=True),
        Conv(widths=(4,), kernel=3),
        Conv(widths=(2,), kernels=(3,), padding="same", optional=True),
    )
    space = SearchSpace(SpaceConfig(kind="cnn", conv=conv, fc=(16,)))
    torch.manual_seed(0)
    net = Supernet(space, (3, 9, 9), 2)
    assert net.convs[2].in_channels == 8 and net.fc.in_features == 4 * 5 * 5
    obs = torch.randint(0, 256, (5, 3, 9, 9), dtype=torch.uint8)
    seen = set()
    for x in space.sample_encodings(np.random.default_rng(0), 64):
        arch = space.decode(x)
        assert isinstance(arch, CNNArch)
        seen.add(str(arch))
        out, agent_out = net(obs, arch), extract(net, arch)(obs)
        torch.testing.assert_close(out.logits, agent_out.logits)
    assert len(seen) == 8  # conv0 4 or 8, each optional layer on or off
    # an FC wider than the supernet's (16) would be sliced to 16 units: refused
    from dataclasses import replace

    from a2d_evo.errors import ArchError

    largest = space.largest()
    assert isinstance(largest, CNNArch)
    net.check(largest)
    with pytest.raises(ArchError, match="does not fit the supernet"):
        net.check(replace(largest, fc=17))


def test_the_supernet_refuses_an_mlp_arch_wider_than_its_layers() -> None:
    """A width above the supernet's widest layer would be sliced to fewer units without an
    error: ``check`` refuses it (the widest is taken)."""
    from a2d_evo.errors import ArchError
    from a2d_evo.nets.supernet import Supernet

    net = Supernet(SearchSpace(SpaceConfig(kind="mlp", depths=(1, 2), widths=(4, 8))), OBS, 2)
    net.check(MLPArch((8, 8)))
    for bad in (MLPArch((9,)), MLPArch((8, 9)), MLPArch((4, 4, 4)), MLPArch((0,))):
        with pytest.raises(ArchError, match="does not fit the supernet"):
            net.check(bad)


# ----------------------------------------------------------------------------- config/schema.py
def test_search_candidates_and_max_arch_episodes_at_their_bounds() -> None:
    """``search.candidates * search.episodes`` may reach 65,536 env slots (one halving
    round), not pass it; ``search.max_arch_episodes`` may not be below ``search.episodes``
    (an arch would stop replaying before its first generation's episodes are in)."""
    from a2d_evo.config import config_from_dict
    from a2d_evo.errors import ConfigError

    full = {"pop": 4, "candidates": 4096, "episodes": 16, "reevaluate": False}
    assert config_from_dict({"search": full}).search.delivery_candidates == 4096
    with pytest.raises(ConfigError, match=r"search.candidates \* search.episodes: at most 65536"):
        config_from_dict({"search": {**full, "episodes": 17}})
    assert config_from_dict({"search": {"episodes": 5, "max_arch_episodes": 5}})
    with pytest.raises(ConfigError, match=r"search.max_arch_episodes: must be >= 5"):
        config_from_dict({"search": {"episodes": 5, "max_arch_episodes": 4}})


# ----------------------------------------------------------------------------- nsga.py
def test_the_forced_gene_of_a_reset_child_is_any_active_gene_alike() -> None:
    """A child with none of its parent's active genes drawn gets ONE of them redrawn,
    uniformly: with a draw probability near 0 nearly every child is such a one, and each of
    a depth-2 parent's three active genes (depth, two widths) changes in about a third of
    them; inactive genes (the widths below the depth) never."""
    from pymoo.core.population import Population
    from pymoo.core.problem import Problem

    from a2d_evo.search.nsga import ResetMutation

    space = SearchSpace(SpaceConfig(kind="mlp", depths=(1, 2, 3), widths=(4, 8, 16, 32)))
    prob = Problem(n_var=space.n_var, n_obj=2, xl=space.xl, xu=space.xu, vtype=int)
    parent = space.encode(MLPArch((8, 16))).astype(np.float64)
    X = np.repeat(parent[None, :], 6000, axis=0)
    op = ResetMutation(space, prob=1.0, prob_var=1e-9)
    Y = op(prob, Population.new(X=X.copy()), random_state=np.random.default_rng(2)).get("X")
    changed = (Y != X).mean(axis=0)
    assert (Y != X).sum(axis=1).max() == 1  # one gene per child
    np.testing.assert_allclose(changed[:3], 1 / 3, atol=0.03)
    assert changed[3:].sum() == 0


def test_reset_mutation_from_the_config_knows_the_space_and_the_gene_probability() -> None:
    """``search.mutation: reset`` mutates with the space (a child of a depth-1 parent is
    another network, though most of its genes are inactive widths) and with
    ``search.mutation_prob`` (0.6 per gene here, not ``1 / n_var``)."""
    from pymoo.core.population import Population

    from a2d_evo.config import config_from_dict
    from a2d_evo.search.nsga import make_algorithm
    from a2d_evo.search.problem import SubnetProblem

    cfg = config_from_dict({"search": {"mutation": "reset", "mutation_prob": 0.6}})
    algo = make_algorithm(cfg, SPACE)
    prob = SubnetProblem(SPACE, _by_width, OBS, ACTIONS, NORM, episodes=3)
    mutation = algo.mating.mutation
    rng = np.random.default_rng(0)
    X = np.repeat(SPACE.encode(MLPArch((8,)))[None, :], 3000, axis=0).astype(np.float64)
    Y = mutation(prob, Population.new(X=X.copy()), random_state=rng).get("X")
    assert (SPACE.canonical(Y) != SPACE.canonical(X)).any(axis=1).all()
    deep = np.repeat(SPACE.encode(MLPArch((8, 8, 8, 8)))[None, :], 3000, axis=0)
    Y = mutation(prob, Population.new(X=deep.astype(np.float64)), random_state=rng).get("X")
    np.testing.assert_allclose((Y != deep).mean(), 0.6, atol=0.03)


# ------------------------------------------------------------------------- evaluation/population.py
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


# ----------------------------------------------------------------------------- train/loop.py
@pytest.mark.parametrize("anneal", [True, False])
def test_the_loop_reports_the_last_20_episodes_and_the_rate_it_trains_at(
    monkeypatch: pytest.MonkeyPatch, anneal: bool
) -> None:
    """``recent_return`` is the mean of the last 20 training episodes (of about 30 here, of
    8 to 12 steps), and every update trains at ``ppo.lr`` without ``ppo.anneal_lr``, at
    ``lr * (1 - (u - 1) / n)`` with it."""
    import torch

    from a2d_evo.config import config_from_dict
    from a2d_evo.envs import make_vec_env
    from a2d_evo.nets.agent import Agent
    from a2d_evo.train import loop
    from a2d_evo.train.learners import AgentLearner
    from a2d_evo.train.streams import Streams

    cfg = config_from_dict({
        "env": {"id": "CartPole-v1", "max_episode_steps": 12},
        "ppo": {"num_envs": 2, "num_steps": 16, "num_minibatches": 2, "update_epochs": 1,
                "lr": 1e-3, "anneal_lr": anneal},
    })  # fmt: skip
    seen: list[tuple[float, list[float]]] = []
    monkeypatch.setattr(loop, "report", lambda w, b, step, lr, sps, returns, *a: seen.append(
        (lr, list(returns))))  # fmt: skip
    envs = make_vec_env(cfg.env, 2, seed=0, training=True)
    opts = loop.LoopOptions(stage="teacher", total_steps=320, checkpoint=None, tb_dir=None,
                            checkpoint_every=10, progress=False)  # fmt: skip
    try:
        learner = AgentLearner(Agent(MLPArch((4,)), OBS, 2), cfg)
        res = loop.run_ppo(learner, cfg, envs, OBS, np.float32, Streams(0, "teacher"), opts,
                           torch.device("cpu"))  # fmt: skip
    finally:
        envs.close()
    returns = [r for _, rs in seen for r in rs]
    assert (res.updates, res.global_step, len(seen)) == (10, 320, 10) and len(returns) > 20
    assert len(set(returns[-20:])) > 1  # returns that differ: the window's length shows
    assert res.recent_return == pytest.approx(float(np.mean(returns[-20:])), abs=1e-12)
    want = [1e-3 * (1 - u / 10) if anneal else 1e-3 for u in range(10)]
    assert [lr for lr, _ in seen] == pytest.approx(want, abs=1e-15)


# -------------------------------------------------------------------------- stage_budget.py
def test_a_supernet_resume_with_other_distillation_settings_is_refused(tmp_path: Path) -> None:
    """The supernet's distillation (``distill.*``) is part of what it trains: a ``--resume``
    with another ``distill.alpha`` would mix two losses in one supernet and is refused;
    a raised ``supernet.total_steps`` is the change it takes."""
    from a2d_evo.config import config_from_dict
    from a2d_evo.errors import RunFolderError
    from a2d_evo.runfolder import RunFolder
    from a2d_evo.stage_budget import budget_raises

    saved = config_from_dict({"supernet": {"total_steps": 1000}})
    run = RunFolder(tmp_path / "run")
    folder, resume = run.stage("supernet"), run.resume_command
    longer = config_from_dict({"supernet": {"total_steps": 2000}})
    assert budget_raises("supernet", folder, saved, longer, resume) == {
        "supernet.total_steps": (1000, 2000)
    }
    other = config_from_dict({"supernet": {"total_steps": 1000}, "distill": {"alpha": 0.5}})
    with pytest.raises(RunFolderError, match=r"differs from the one .* on distill\.alpha"):
        budget_raises("supernet", folder, saved, other, resume)


# ----------------------------------------------------------------------------- cli.py
def test_world_size_0_or_1_is_one_process_for_every_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``WORLD_SIZE`` unset, empty, 0 or 1 is one process: a command other than the torchrun
    stages runs (here to its own error: no run folder); 2 is refused naming the variable."""
    from a2d_evo.cli import main

    missing = str(tmp_path / "no_run")
    for world in ("0", "1", " 1 ", ""):
        monkeypatch.setenv("WORLD_SIZE", world)
        assert main(["report", missing]) == 2
        err = capsys.readouterr().err
        assert "is not a run folder" in err and "WORLD_SIZE" not in err, (world, err)
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["report", missing]) == 2
    assert "WORLD_SIZE=2 in the environment" in capsys.readouterr().err


# ----------------------------------------------------------------------- search/saved_state.py
def _record(generations: list[int], returns: list[float]) -> dict:
    from a2d_evo.search.problem import summarise

    rec = {"generation": generations[0], "order": 0, "encoding": [0, 1, 0, 0, 0],
           "arch": "mlp-8", "flops": 56, "params": 50, "returns": list(returns),
           "lengths": [10] * len(returns), "seeds": list(range(len(returns))),
           "generations": list(generations)}  # fmt: skip
    summarise(rec)
    return rec


def test_a_resume_drops_the_episodes_of_the_generation_it_plays_again() -> None:
    """A ``state.json`` one write ahead of ``state.npz`` (generation 1 committed): the
    episodes of generation 1 are dropped, as the resume plays it again (kept, they would
    count twice); a record with nothing before it goes; the figures are recomputed."""
    from a2d_evo.search.saved_state import _committed

    both = _record([0, 0, 1, 1], [1.0, 3.0, 10.0, 20.0])
    late = _record([1, 1], [5.0, 5.0])
    out = _committed([both, late], 1)
    assert len(out) == 1 and out[0]["generations"] == [0, 0]
    assert out[0]["returns"] == [1.0, 3.0] and out[0]["episodes"] == 2
    assert out[0]["return_mean"] == 2.0 and out[0]["return_std"] == 1.0
    assert both["returns"] == [1.0, 3.0, 10.0, 20.0]  # the input is not edited


def test_a_state_s_records_are_bounded_by_its_generations() -> None:
    """After ``n`` generations a record (or one of its episodes) may be of generations
    ``0 .. n - 1`` only, and the cache holds at most ``pop * n + MAX_ANCHORS`` records."""
    from a2d_evo.config.bounds import MAX_ANCHORS
    from a2d_evo.errors import FormatError
    from a2d_evo.search.saved_state import StateSpec, _bad_record, _cache

    assert _bad_record(_record([0, 1], [1.0, 2.0]), 2) is None
    assert _bad_record(_record([2], [1.0]), 2) == "generation 2 is outside 0-1"
    assert _bad_record(_record([1, 2], [1.0, 2.0]), 2) == (
        "generation 2 of an episode is outside 0-1"
    )
    spec = StateSpec(SPACE, OBS, ACTIONS, pop=4, max_flops=None)
    at_most = 4 * 2 + MAX_ANCHORS
    with pytest.raises(FormatError, match="record 0: must be a mapping"):
        _cache([None] * at_most, 2, Path("state.json"), spec)
    with pytest.raises(FormatError, match=f"holds {at_most + 1} records, more than 2 gen"):
        _cache([None] * (at_most + 1), 2, Path("state.json"), spec)


def test_a_state_population_of_zero_flops_or_negative_crowding_is_refused() -> None:
    """``state.npz``'s objectives hold FLOPs of at least 1 (the cost model's floor: 0 would
    be log10 -inf on the hypervolume axis) and crowding distances >= 0 (inf, the extremes'
    crowding, is taken)."""
    from a2d_evo.errors import FormatError
    from a2d_evo.search.saved_state import _check_arrays

    def arrays(flops: float, crowding: float) -> dict[str, np.ndarray]:
        return {"X": np.zeros((1, SPACE.n_var), np.int64), "F": np.array([[-0.5, flops]]),
                "G": np.zeros((1, 0)), "rank": np.array([0.0]), "crowding": np.array([crowding]),
                "rng": np.zeros(6, np.uint64)}  # fmt: skip

    _check_arrays(arrays(1.0, np.inf), 1, Path("state.npz"), None)
    with pytest.raises(FormatError, match="F holds FLOPs below 1"):
        _check_arrays(arrays(0.0, 1.0), 1, Path("state.npz"), None)
    with pytest.raises(FormatError, match="crowding >= 0"):
        _check_arrays(arrays(1.0, -0.5), 1, Path("state.npz"), None)


# ----------------------------------------------------------------------------- envs/classic.py
def test_a_discrete_observation_starting_above_0_is_one_hot_from_its_start() -> None:
    """A ``Discrete(3, start=5)`` observation is one-hot over its own 3 values: 5 is the first
    unit and 7 the last (not units 5 and 7 of a 3-unit vector)."""
    import gymnasium as gym

    from a2d_evo.envs.classic import obs_layout

    shape, encode = obs_layout("X", gym.spaces.Discrete(3, start=5))
    assert shape == (3,)
    np.testing.assert_array_equal(encode(5), [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(encode(np.int64(7)), [0.0, 0.0, 1.0])


# ----------------------------------------------------------------------------- envs/factory.py
def test_a_step_cap_never_lengthens_an_env_s_own_episodes(monkeypatch: pytest.MonkeyPatch) -> None:
    """``max_episode_steps`` (the search's cap) only shortens episodes: the limit an env is
    built with is the smaller of the cap and ``env.max_episode_steps``, else of the cap and
    the registered limit (CartPole-v1: 500; ALE v5: 108,000 frames / frame_skip 4)."""
    import importlib.util

    from a2d_evo.config import EnvConfig
    from a2d_evo.envs import factory

    class Built(Exception):
        pass

    limits: list[int | None] = []

    def record(*args, **kw):  # type: ignore[no-untyped-def]
        limits.append(kw["max_episode_steps"] if "max_episode_steps" in kw else args[2])
        raise Built

    from a2d_evo.envs import vector

    monkeypatch.setattr(vector, "make_classic_env", record)  # the sync builder's
    monkeypatch.setattr(factory, "make_atari_vec_env", record)
    cases = [
        (EnvConfig(id="CartPole-v1", max_episode_steps=10), 50, 10),
        (EnvConfig(id="CartPole-v1"), 1000, 500),
        (EnvConfig(id="CartPole-v1"), 20, 20),
    ]
    if importlib.util.find_spec("ale_py") is not None:
        cases.append((EnvConfig(id="ALE/Pong-v5"), 10**6, 27_000))
    for cfg, cap, _ in cases:
        with pytest.raises(Built):
            factory.make_vec_env(cfg, 1, seed=0, training=False, max_episode_steps=cap)
    assert limits == [want for _, _, want in cases]


# ----------------------------------------------------------------------------- supernet_stage.py
def test_score_subnets_rows_are_the_same_archs_for_every_run_with_their_worst_episode(
    tmp_path: Path,
) -> None:
    """``score_subnets`` scores the largest, the smallest and random subnets drawn from
    ``arch_seed`` (the same set whatever the run's seed, so two runs compare on the same
    archs); ``return_min`` is the worst of each one's episodes."""
    import torch

    from a2d_evo.config import config_from_dict
    from a2d_evo.evaluation.episodes import evaluate_agent
    from a2d_evo.files import torch_save
    from a2d_evo.nets.agent_folder import extract
    from a2d_evo.nets.supernet import Supernet
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
    from a2d_evo.files import torch_load, torch_save
    from a2d_evo.nets.agent import Agent
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


# ----------------------------------------------------------------------------- checkpoint.py
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


# ----------------------------------------------------------------------------- streams.py
def test_every_stage_and_every_resume_point_draws_its_own_streams() -> None:
    """Streams come from ``(seed, stage)``: the four stages of a run draw four different
    init seeds and env seeds; a stage's env reset seeds depend on the update it resumes
    at (a resume does not replay the start's episodes), and are the same for the same one."""
    from itertools import combinations

    from a2d_evo.train.streams import STAGE_KEYS, Streams

    streams = {stage: Streams(7, stage) for stage in STAGE_KEYS}
    for a, b in combinations(streams.values(), 2):
        assert a.init_seed != b.init_seed and a.env_seeds(0, 4) != b.env_seeds(0, 4)
    s = streams["teacher"]
    assert s.env_seeds(0, 4) != s.env_seeds(5, 4)
    assert s.env_seeds(5, 4) == Streams(7, "teacher").env_seeds(5, 4)


# ----------------------------------------------------------------------------- report/deliver.py
def test_a_member_the_gate_kept_inherited_is_chosen_on_its_inherited_validation_score(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A member whose validation kept the inherited weights is chosen on their validation
    score (``before``), not on the rejected fine-tune's (``after``). A record of the fine-tune
    counts as done only with its before-scores on the final seeds too, and (a file from
    before the recipe was recorded) at this peak learning rate."""
    import json

    from a2d_evo.config import config_from_dict
    from a2d_evo.evaluation.seeds import final_seeds
    from a2d_evo.report import deliver
    from a2d_evo.runfolder import RunFolder
    from a2d_evo.train import finetune_pool

    cfg = config_from_dict({"finetune": {"steps": 256, "validation_episodes": 4}})
    seeds = final_seeds(cfg.seed, cfg.search.final_episodes)
    done = {"flops": 100, "return_mean": 3.0, "normalised_return": 0.9,
            "finetune_budget": 256, "finetune_lr": cfg.finetune_lr, "seeds": seeds,
            "before": {"seeds": seeds}, "inherited": {"return_mean": 3.0},
            "finetune_validation": {"episodes": 4, "kept": "inherited", "before": 5.0,
                                    "after": 9.0}}  # fmt: skip
    assert deliver.fine_tuned(done, cfg)
    assert not deliver.fine_tuned({**done, "before": {"seeds": [s + 1 for s in seeds]}}, cfg)
    assert not deliver.fine_tuned({**done, "finetune_lr": cfg.finetune_lr / 2}, cfg)
    folder = tmp_path / "agents" / "front_00"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(done))
    monkeypatch.setattr(finetune_pool, "finetune_agent", lambda *a, **k: pytest.fail("trained"))
    (row,) = deliver.finetune_members(cfg, RunFolder(tmp_path), [folder], progress=False)
    assert row["kept"] == "inherited" and row["validation_return_mean"] == 5.0


def test_with_no_fine_tune_nothing_is_chosen_on_an_old_validation(tmp_path: Path) -> None:
    """``finetune.steps: 0`` delivers the inherited weights on their final-seed figures: a
    validation an earlier export recorded in the folder gives no validation figure."""
    import json

    from a2d_evo.config import config_from_dict
    from a2d_evo.report import deliver
    from a2d_evo.runfolder import RunFolder

    cfg = config_from_dict({"finetune": {"steps": 0}})
    folder = tmp_path / "agents" / "front_00"
    folder.mkdir(parents=True)
    old = {"episodes": 4, "kept": "inherited", "before": 5.0, "after": 9.0}
    (folder / "metrics.json").write_text(json.dumps(
        {"flops": 100, "return_mean": 3.0, "normalised_return": 0.9,
         "finetune_validation": old}))  # fmt: skip
    (row,) = deliver.finetune_members(cfg, RunFolder(tmp_path), [folder], progress=False)
    assert row["validation_return_mean"] is None


# ----------------------------------------------------------------------------- train/finetune.py
def _finetune_case(tmp_path: Path) -> tuple[Any, Path, Path]:
    """A CartPole config of one small update, a teacher folder and an agent folder (no
    figures yet), seeded."""
    import torch

    from a2d_evo.config import config_from_dict
    from a2d_evo.nets.agent import Agent
    from a2d_evo.nets.agent_folder import save_agent

    cfg = config_from_dict({"env": {"id": "CartPole-v1", "max_episode_steps": 50},
                            "ppo": {"num_envs": 2, "num_steps": 16, "num_minibatches": 1,
                                    "update_epochs": 1},
                            "eval": {"num_envs": 2, "episodes": 2}})  # fmt: skip
    torch.manual_seed(0)
    teacher = save_agent(Agent(MLPArch((8,)), OBS, 2, {"id": "CartPole-v1"}),
                         tmp_path / "teacher", onnx=False)  # fmt: skip
    folder = save_agent(Agent(MLPArch((4,)), OBS, 2, {"id": "CartPole-v1"}),
                        tmp_path / "agent", onnx=False)  # fmt: skip
    return cfg, teacher, folder


def test_a_second_fine_tune_adds_its_steps_to_the_first(tmp_path: Path) -> None:
    """Fine-tuning a folder again adds to what it records: ``finetune_budget`` (asked) and
    ``finetune_steps`` (run) are the sums over both. Each validation counts the env steps of
    its before and after episodes (CartPole: a step is a point of return), and a rejected
    second fine-tune records that it started from the first's fine-tuned weights, which the
    folder then ships."""
    import json

    from a2d_evo.formats import kept_weights
    from a2d_evo.train import finetune_agent

    cfg, teacher, folder = _finetune_case(tmp_path)
    vals = []
    for _ in range(2):
        finetune_agent(folder, cfg, steps=40, teacher_dir=teacher, progress=False,
                       validation_episodes=2)  # fmt: skip
        metrics = json.loads((folder / "metrics.json").read_text())
        vals.append(metrics["finetune_validation"])
    assert (metrics["finetune_budget"], metrics["finetune_steps"]) == (80, 64)
    for val in vals:
        assert val["env_steps"] == 2 * (val["before"] + val["after"])
    # this seed: the first is kept (a tie), the second rejected
    assert [v["kept"] for v in vals] == ["fine-tuned", "inherited"]
    assert [v["started_from"] for v in vals] == ["inherited", "fine-tuned"]
    assert kept_weights(metrics) == "fine-tuned"


def test_a_rejected_fine_tune_of_a_folder_without_figures_records_its_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the validation gate keeps the inherited weights of a folder that has no figures
    yet (no ``metrics.json`` with seeds), the folder is scored anew: its ``metrics.json`` holds
    the contract's figures (return, seeds, FLOPs), not the fine-tune's summary alone."""
    import json

    from a2d_evo.train import finetune, finetune_agent

    cfg, teacher, folder = _finetune_case(tmp_path)
    assert not (folder / "metrics.json").is_file()
    real = finetune.evaluate_agent
    validations: list[int] = []

    def worse_after(agent, cfg, episodes, seed, mode="greedy", **kw):  # type: ignore[no-untyped-def]
        res = real(agent, cfg, episodes, seed, mode, **kw)
        if episodes == 3:  # the validation episodes: the second call scores the fine-tune
            validations.append(seed)
            if len(validations) == 2:
                return res._replace(mean=res.mean - 1000.0)
        return res

    monkeypatch.setattr(finetune, "evaluate_agent", worse_after)
    finetune_agent(folder, cfg, steps=40, teacher_dir=teacher, progress=False,
                   validation_episodes=3)  # fmt: skip
    metrics = json.loads((folder / "metrics.json").read_text())
    assert len(validations) == 2
    assert metrics["finetune_validation"]["kept"] == "inherited"
    assert {"return_mean", "seeds", "flops", "normalised_return"} <= set(metrics)
    assert len(metrics["seeds"]) == 2 == metrics["episodes"]
