"""Properties no test pinned, found by a twelfth mutation review (2026-12-08): each test
below passes on the code as it is and fails under a small change to it that the covering
tests let through: the checkpoint's checks (a model state with a tensor missing, a 1-D
optimiser state of another shape, parameter groups that name other parameters), the
supernet stage (sigma from the returns without a teacher, the distillation's annealing,
the logged PPO terms of the subnets with rows, score_subnets' random archs apart from the
ends and its default seeds), MinAtar's fresh reset (a fresh env's last action), image
scales (a per-plane bound), the ONNX graph (pixels divided bit for bit, the IR version,
a scale above 1) and the delivery's bookkeeping (a fine-tune without validation, one from
before its learning rate was recorded, an after on other seeds, the inherited figures of
a member never fine-tuned, the steps a fine-tune ran)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from test_checkpoint import adam_checkpoint_loader

from a2d_evo.errors import FormatError


# ----------------------------------------------------------------------------- checkpoint.py
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


# ----------------------------------------------------------------------------- supernet_stage.py
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
    from a2d_evo.files import torch_save
    from a2d_evo.nets.space import SearchSpace
    from a2d_evo.nets.supernet import Supernet

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


# ----------------------------------------------------------------------------- fresh_reset.py
def test_a_wrapped_minatar_reset_puts_back_a_fresh_envs_last_action() -> None:
    """a2d_evo/envs/fresh_reset.py FreshStickyAction.reset: every reset sets MinAtar's
    ``last_action`` to a fresh env's value, 0, so a reused env plays what a new one plays.
    Mutant let through: setting it to 1: every reset then agreed with every other (the
    covering test compares two histories of the same env) but not with a fresh env, whose
    first sticky step plays 0: an extracted agent's fresh env and the population's reused
    one played different episodes."""
    pytest.importorskip("minatar")
    import gymnasium as gym
    import minatar.gym

    from a2d_evo.envs.fresh_reset import fresh_reset

    if "MinAtar/Breakout-v1" not in gym.registry:  # registered once, as env.imports does
        minatar.gym.register_envs()
    fresh = gym.make("MinAtar/Breakout-v1")
    env = fresh_reset(gym.make("MinAtar/Breakout-v1"))
    assert env is not fresh and type(env).__name__ == "FreshStickyAction"
    game = env.unwrapped.game
    env.reset(seed=0)
    for _ in range(3):
        env.step(2)
    assert game.last_action == 3  # Breakout's action 2 is MinAtar's 'r' (3)
    env.reset(seed=1)
    assert game.last_action == fresh.unwrapped.game.last_action == 0
    env.close()
    fresh.close()


# ----------------------------------------------------------------------------- image.py
def test_a_board_with_a_higher_code_in_one_plane_is_scaled_by_its_highest() -> None:
    """a2d_evo/envs/image.py image_obs_scale: the scale is 1 / the space's HIGHEST bound, a
    Box whose bounds differ per plane (one plane coded 0-3, the others 0/1) included, so no
    input exceeds 1; the wrapped space keeps that bound. Mutant let through: ``np.min`` of
    the bounds (the covering spaces have one bound throughout): scale 1, codes up to 3."""
    import gymnasium as gym

    from a2d_evo.envs.image import image_obs_scale, wrap_image_env

    high = np.ones((3, 6, 6), np.uint8)
    high[0] = 3
    space = gym.spaces.Box(np.zeros_like(high), high, dtype=np.uint8)
    assert image_obs_scale(space) == pytest.approx(1 / 3)

    class Board(gym.Env):  # type: ignore[misc]
        observation_space = space
        action_space = gym.spaces.Discrete(2)

    wrapped = wrap_image_env(Board())
    assert wrapped.obs_scale == pytest.approx(1 / 3)
    out = wrapped.observation_space
    assert out.high.max() == 3 and out.shape == (3, 6, 6)


# ----------------------------------------------------------------------------- onnx_graph.py
def _session(model: Any) -> Any:
    import onnxruntime as ort

    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def test_the_onnx_graph_divides_pixels_by_255_bit_for_bit_as_the_agent_does() -> None:
    """a2d_evo/nets/onnx_graph.py onnx_bytes: a scale 1/n with n whole is a division by n,
    as obs_to_float divides (x / 255 and x * (1/255) differ in the last bit for 126 of the
    256 pixel values), so the graph's scaled input is the agent's bit for bit. Mutant let
    through: the Div branch dropped (always ``Mul`` by the scale): within the covering
    tests' 1e-5 of torch's outputs."""
    import onnx

    from a2d_evo.nets.agent import Agent, obs_to_float
    from a2d_evo.nets.onnx_graph import onnx_bytes
    from a2d_evo.nets.space import CNNArch, ConvLayer

    torch.manual_seed(0)
    agent = Agent(CNNArch((ConvLayer(4, 3, 1),), 8), (1, 16, 16), 2, obs_scale=1 / 255).eval()
    model = onnx.load_from_string(onnx_bytes(agent))
    (scaled,) = [n for n in model.graph.node if n.output == ["obs.scaled"]]
    model.graph.output.append(onnx.helper.make_tensor_value_info("obs.scaled", 1, None))
    obs = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    got = _session(model).run(["obs.scaled"], {"obs": obs.numpy()})[0]
    want = obs_to_float(obs, agent.obs_scale).numpy()
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    assert scaled.op_type == "Div"


def test_the_onnx_file_has_the_lowest_ir_version_its_opset_allows() -> None:
    """a2d_evo/nets/onnx_graph.py IR_VERSION: the file declares opset 17 and IR version 8,
    the lowest IR that onnx's version table pairs with opset 17, so that older runtimes
    (onnxruntime 1.14 reads IR 8 at most) load it. Mutant let through: ``IR_VERSION = 9``,
    which today's onnxruntime runs as well (the covering tests run only that)."""
    import onnx

    from a2d_evo.nets.agent import Agent
    from a2d_evo.nets.onnx_graph import OPSET, onnx_bytes
    from a2d_evo.nets.space import MLPArch

    model = onnx.load_from_string(onnx_bytes(Agent(MLPArch((4,)), (3,), 2)))
    assert [(o.domain, o.version) for o in model.opset_import] == [("", OPSET)] and OPSET == 17
    lowest = min(ir for _, ir, opset, *_ in onnx.helper.VERSION_TABLE if opset >= OPSET)
    assert model.ir_version == lowest == 8


def test_the_onnx_graph_scales_vectors_by_a_factor_above_1() -> None:
    """a2d_evo/nets/onnx_graph.py onnx_bytes: any obs_scale but 1 is applied in the graph,
    one above 1 too (obs_scale may be any number in [1e-30, 1e30]). Mutant let through:
    ``scale != 1.0`` made ``scale < 1.0`` (the covering tests scale by 0.25 and 0.3): a
    scale of 2 left out of the graph, which then disagreed with the agent it ships."""
    import onnx

    from a2d_evo.nets.agent import Agent
    from a2d_evo.nets.onnx_graph import onnx_bytes
    from a2d_evo.nets.space import MLPArch

    torch.manual_seed(0)
    agent = Agent(MLPArch((6,)), (3,), 2, obs_scale=2.0).eval()
    obs = torch.tensor([[1.0, -2.0, 0.5], [3.0, 0.25, -1.0]])
    session = _session(onnx.load_from_string(onnx_bytes(agent)))
    logits, value = session.run(None, {"obs": obs.numpy()})
    with torch.no_grad():
        ref = agent(obs)
    np.testing.assert_allclose(logits, ref.logits.numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(value, ref.value.numpy(), rtol=0, atol=1e-5)
    with torch.no_grad():
        unscaled = Agent(MLPArch((6,)), (3,), 2)
        unscaled.load_state_dict(agent.state_dict())
        assert not torch.allclose(unscaled(obs).logits, ref.logits, atol=1e-3)  # 2 matters


# ----------------------------------------------------------------------------- report/deliver.py
def _done(**finetune: Any) -> tuple[Any, dict[str, Any]]:
    """A config and the metrics.json of a member its fine-tune has done, as finetune writes
    them (a validation record only where validation_episodes is not 0)."""
    from a2d_evo.config import config_from_dict
    from a2d_evo.evaluation.seeds import final_seeds
    from a2d_evo.train.finetune import finetune_recipe

    cfg = config_from_dict({"finetune": {"steps": 256, **finetune}})
    seeds = final_seeds(cfg.seed, cfg.search.final_episodes)
    episodes = cfg.finetune.validation_episodes
    gate = {"episodes": episodes, "kept": "fine-tuned", "before": 1.0, "after": 2.0}
    return cfg, {"finetune_budget": 256, "finetune_lr": cfg.finetune_lr,
                 "finetune_recipe": finetune_recipe(cfg), "seeds": seeds,
                 "before": {"seeds": seeds}, "inherited": {"return_mean": 1.0},
                 "finetune_validation": gate if episodes else None}  # fmt: skip


def test_a_member_fine_tuned_without_a_validation_counts_as_done() -> None:
    """a2d_evo/report/deliver.py fine_tuned: with ``finetune.validation_episodes: 0`` a
    fine-tune records no validation (``finetune_validation: null``), and that is the same
    validation: 0 episodes. Mutant let through: a missing record read as ``None`` episodes
    (not 0), after which every export resumed without a validation fine-tuned every member
    again (the covering tests all validate)."""
    from a2d_evo.report.deliver import fine_tuned

    cfg, done = _done(validation_episodes=0)
    assert done["finetune_validation"] is None and fine_tuned(done, cfg)
    cfg4, _ = _done(validation_episodes=4)
    assert not fine_tuned(done, cfg4)  # ... and it is not a 4-episode validation


def test_a_fine_tune_recorded_before_its_learning_rate_was_counts_as_done() -> None:
    """a2d_evo/report/deliver.py fine_tuned: a metrics.json written before ``finetune_lr``
    was recorded matches any learning rate (its docstring). Mutant let through:
    ``metrics.get("finetune_lr") == cfg.finetune_lr`` without the default (the covering
    test's record has the key): such a member fine-tuned again on every resumed export."""
    from a2d_evo.report.deliver import fine_tuned

    cfg, done = _done(validation_episodes=4)
    old = {k: v for k, v in done.items() if k not in ("finetune_lr", "finetune_recipe")}
    assert fine_tuned(old, cfg)
    assert not fine_tuned({**old, "finetune_lr": cfg.finetune_lr * 2}, cfg)


def test_a_fine_tune_scored_after_on_other_seeds_is_not_done() -> None:
    """a2d_evo/report/deliver.py fine_tuned: both figures of a fine-tune, the ``before`` and
    the after (``seeds``, the kept weights' scores), must be on the front's final seeds.
    Mutant let through: dropping ``metrics.get("seeds") == seeds`` (the covering tests move
    the before's seeds only): an after scored on a standalone fine-tune's seeds was then
    reported as a final-seed score in delivered.json."""
    from a2d_evo.report.deliver import fine_tuned

    cfg, done = _done(validation_episodes=4)
    assert fine_tuned(done, cfg)
    assert not fine_tuned({**done, "seeds": [s + 1 for s in done["seeds"]]}, cfg)
    assert not fine_tuned({k: v for k, v in done.items() if k != "seeds"}, cfg)


def _member(tmp_path: Path, metrics: dict[str, Any]) -> Path:
    import json

    folder = tmp_path / "agents" / "front_00"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


def test_with_no_fine_tune_the_inherited_figures_are_the_members_own(tmp_path: Path) -> None:
    """a2d_evo/report/deliver.py finetune_members: a member never fine-tuned (``finetune.steps:
    0``) has no ``inherited`` record: its row's inherited figures are its own (the weights
    are the inherited ones). Mutant let through: ``metrics.get("inherited") or {}``: None
    for both, and delivered.json's progress line then failed formatting None with ``.2f``."""
    from a2d_evo.config import config_from_dict
    from a2d_evo.report.deliver import finetune_members
    from a2d_evo.runfolder import RunFolder

    cfg = config_from_dict({"finetune": {"steps": 0}})
    folder = _member(tmp_path, {"flops": 100, "return_mean": 3.5, "normalised_return": 0.25,
                                "return_std": 1.5, "episodes": 30})  # fmt: skip
    (row,) = finetune_members(cfg, RunFolder(tmp_path), [folder], progress=False)
    assert (row["inherited_return_mean"], row["inherited_normalised_return"]) == (3.5, 0.25)
    assert (row["return_mean"], row["kept"], row["finetune_steps"]) == (3.5, "inherited", 0)


def test_a_members_row_counts_the_steps_its_fine_tune_ran(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """a2d_evo/report/deliver.py finetune_members: a row's ``finetune_steps`` is what the
    member's fine-tune ran (whole updates: 192 where a 256-step budget is two updates of
    96), read from its metrics.json, not the budget asked for. Mutant let through:
    ``"finetune_steps": steps`` (the covering tests' fine-tunes run their budget exactly)."""
    from a2d_evo.report.deliver import finetune_members
    from a2d_evo.runfolder import RunFolder
    from a2d_evo.train import finetune_pool

    cfg, done = _done(validation_episodes=4)
    folder = _member(tmp_path, {**done, "flops": 100, "return_mean": 3.0,
                                "normalised_return": 0.9, "finetune_steps": 192})  # fmt: skip
    monkeypatch.setattr(finetune_pool, "finetune_agent", lambda *a, **k: pytest.fail("trained"))
    (row,) = finetune_members(cfg, RunFolder(tmp_path), [folder], progress=False)
    assert row["finetune_steps"] == 192 and cfg.finetune.steps == 256
    assert row["kept"] == "fine-tuned" and row["validation_return_mean"] == 2.0
