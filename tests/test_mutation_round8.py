"""Properties no test pinned, found by an eighth mutation review (2026-12-07): each test below
passes on the code as it is and fails under a small change to it that the covering tests let
through: evaluation seeds (the span of the bases, the first seed of a block, the halving
round's word, bool seeds in a front), the vector env (too many seeds, negative actions, a
reset mid-episode), extraction (the supernet's train/eval mode), the space's default teacher
(middle width, largest kernel), the learners (the smallest sigma, the logs of a beta-only
distillation) and the baselines (a delivery's S of 0, a metrics.json without seeds, widths
rounded to nearest)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch


# ----------------------------------------------------------------------------- seeds.py
def _base(*words: int) -> int:
    """The first episode seed of a block, as the module documents it: the first uint64 of
    ``SeedSequence(words)`` modulo 2**31 - 2**20."""
    state = np.random.SeedSequence(list(words)).generate_state(1, np.uint64)[0]
    return int(state) % (2**31 - 2**20)


def test_evaluation_blocks_start_at_their_documented_bases() -> None:
    """a2d_evo/evaluation/seeds.py: the final, generation and halving blocks start at the
    base of ``SeedSequence([seed, tag(, generation or round)])`` mod 2**31 - 2**20 and run
    on consecutively. Mutants let through: the span 2**31 (bases up to 2**31 - 1, so a block
    of 2**20 episodes passed int32), ``base + e + 1`` (the block's first seed skipped) and
    ``round_ + 1`` (round 0 played round 1's episodes): every figure then moved off the
    seeds that earlier runs and their fronts recorded."""
    from a2d_evo.evaluation.seeds import final_seeds, generation_seeds, halving_seeds

    # SeedSequence([7, 0xF17A1]) -> 13139077768815142815; mod 2146435072 = 1524983711
    assert _base(7, 0xF17A1) == 1524983711
    assert final_seeds(7, 3) == [1524983711, 1524983712, 1524983713]
    # generation 2 of run 7: SeedSequence([7, 0x5EA2C4, 2]) -> 875364996
    assert generation_seeds(7, 2, 3) == [875364996, 875364997, 875364998]
    assert _base(7, 0x5EA2C4, 2) == 875364996
    # halving round 0 of run 7: SeedSequence([7, 0x4A1F, 0]) -> 1067989675
    assert halving_seeds(7, 0, 2) == [1067989675, 1067989676]
    assert _base(7, 0x4A1F, 0) == 1067989675


def test_a_front_s_bool_seeds_are_no_integer_seeds() -> None:
    """a2d_evo/evaluation/seeds.py check_scoring_seeds: ``normalisation.seeds`` of
    ``[true, false]`` is a malformed front (FormatError), not seeds 1 and 0. Mutant let
    through: dropping ``not isinstance(x, bool)``, which took the bools as ints and reported
    a seed mismatch (ConfigError) that told the user to change --seed instead."""
    from a2d_evo.config import config_from_dict
    from a2d_evo.errors import FormatError
    from a2d_evo.evaluation.seeds import check_scoring_seeds

    cfg = config_from_dict({"seed": 3, "search": {"final_episodes": 2}})
    with pytest.raises(FormatError, match="non-empty list of integer seeds"):
        check_scoring_seeds(
            cfg, {"normalisation": {"seeds": [True, False]}}, Path("front.json"), "export"
        )


# ----------------------------------------------------------------------------- vector.py
def test_a_seed_list_longer_than_the_vector_is_refused() -> None:
    """a2d_evo/envs/vector.py seed_list: three seeds for two envs are an EnvError. Mutant
    let through: ``len(seeds) < n``, which played the first two and dropped the third in
    silence (an evaluation believed it played seed 3)."""
    from a2d_evo.envs.vector import seed_list
    from a2d_evo.errors import EnvError

    assert seed_list([1, 2], 2) == [1, 2]
    with pytest.raises(EnvError, match="expected 2 seeds"):
        seed_list([1, 2, 3], 2)


def test_a_negative_action_is_refused() -> None:
    """a2d_evo/envs/vector.py check_actions: actions lie in [0, n_actions); -1 is refused
    with the range. Mutant let through: dropping ``a.min() < 0``, which passed -1 on (an env
    whose action space starts at 1 then played action 0, outside its space)."""
    from a2d_evo.envs.vector import check_actions
    from a2d_evo.errors import EnvError

    assert check_actions(np.array([0, 1]), 2, 2).tolist() == [0, 1]
    with pytest.raises(EnvError, match=r"in \[0, 2\), got -1\.\.0"):
        check_actions(np.array([-1, 0]), 2, 2)


def test_a_reset_mid_episode_restarts_the_episode_statistics() -> None:
    """a2d_evo/envs/vector.py SyncVecEnv.reset clears the running return and length: an
    episode begun after a reset mid-episode reports only its own steps. Mutant let through:
    dropping ``self._stats.clear()``, which added the abandoned episode's 3 steps to the next
    one (CartPole: length and return = steps played + 3)."""
    from a2d_evo.config.env import EnvConfig
    from a2d_evo.envs.vector import classic_sync_env

    env = classic_sync_env(EnvConfig(id="CartPole-v1"), 1, seed=None, limit=None)
    push = np.zeros(1, np.int64)  # always left: CartPole falls within a few dozen steps
    try:
        env.reset(seed=5)
        for _ in range(3):
            assert env.step(push).episode_length[0] == 0  # the pole is still up
        env.reset(seed=5)
        steps = 0
        while True:
            steps += 1
            res = env.step(push)
            if res.episode_length[0]:
                break
            assert steps < 500
        # CartPole pays 1 a step: the episode's return and length are its own step count
        assert (int(res.episode_length[0]), float(res.episode_return[0])) == (steps, steps)
    finally:
        env.close()


# ----------------------------------------------------------------------------- agent_folder.py
def test_an_extracted_agent_takes_the_supernet_s_mode() -> None:
    """a2d_evo/nets/agent_folder.py extract: the agent is in the supernet's train/eval mode
    (an evaluation extracts from a supernet in eval mode and gets an agent in eval mode).
    Mutant let through: ``agent.train(True)``, an agent always in training mode."""
    from a2d_evo.config import SpaceConfig
    from a2d_evo.nets.agent_folder import extract
    from a2d_evo.nets.space import MLPArch, SearchSpace
    from a2d_evo.nets.supernet import Supernet

    supernet = Supernet(SearchSpace(SpaceConfig()), (4,), 2)
    assert extract(supernet.eval(), MLPArch((4,))).training is False
    assert extract(supernet.train(), MLPArch((4,))).training is True


# ----------------------------------------------------------------------------- space.py
def test_a_declared_space_s_default_teacher_is_the_middle_width_and_largest_kernel() -> None:
    """a2d_evo/nets/space.py SearchSpace.default_teacher without a Nature trunk: each
    required layer at ``widths[len // 2]`` with its largest kernel, the FC at
    ``fc[len // 2]``. Widths (8, 16, 32, 64): index 4 // 2 = 2, width 32; kernels (3, 5):
    5; FC (32, 64): index 1, 64. Mutants let through: ``(len - 1) // 2`` (width 16: the
    same as len // 2 for odd counts only) and ``kernel_choices[0]`` (kernel 3)."""
    from a2d_evo.config import SpaceConfig
    from a2d_evo.config.space import ConvLayerConfig
    from a2d_evo.nets.space import CNNArch, ConvLayer, SearchSpace

    layer = ConvLayerConfig(widths=(8, 16, 32, 64), kernels=(3, 5), padding="same")
    space = SearchSpace(SpaceConfig(kind="cnn", conv=(layer,), fc=(32, 64)))
    assert space.default_teacher() == CNNArch((ConvLayer(32, 5, 1, "same"),), 64)


# ----------------------------------------------------------------------------- learners.py
def test_a_checkpoint_s_smallest_sigma_loads() -> None:
    """a2d_evo/train/learners.py AgentLearner.load_state: sigma_from_rms gives an RMS of
    exactly 1e-6 as sigma (``rms >= 1e-6``), so a checkpoint holding 1e-6 loads. Mutant let
    through: ``1e-6 < sigma``, which refused the --resume of a run whose teacher's values had
    an RMS of 1e-6."""
    from a2d_evo.train.distill import sigma_from_rms
    from a2d_evo.train.learners import AgentLearner

    assert sigma_from_rms(1e-6) == 1e-6
    learner = AgentLearner.__new__(AgentLearner)
    learner.sigma = None
    learner.load_state({"sigma": 1e-6})
    assert learner.sigma == 1e-6


def test_a_beta_only_distillation_logs_alpha_and_beta() -> None:
    """a2d_evo/train/learners.py loss_logs: alpha and beta are logged when either is
    non-zero; a critic-only distillation (alpha 0, beta 0.5) logs alpha 0.0 and beta 0.5.
    Mutant let through: ``if alpha:``, which logged neither for a critic-only run (its
    TensorBoard showed no distillation weights at all)."""
    from a2d_evo.train.distill import DistillLoss
    from a2d_evo.train.learners import loss_logs
    from a2d_evo.train.ppo import PPOLoss

    t = torch.tensor(1.0)
    d = DistillLoss(t, PPOLoss(t, t, t, t, t, t), t, t)
    logs = loss_logs(d, 0.0, 0.5)
    assert (float(logs["alpha"]), float(logs["beta"])) == (0.0, 0.5)
    assert "alpha" not in loss_logs(d, 0.0, 0.0)


# ----------------------------------------------------------------------------- baselines.py
def test_a_delivery_s_supernet_steps_of_zero_are_not_taken(tmp_path: Path) -> None:
    """a2d_evo/train/baselines.py run_budgets: a delivery's ``supernet_steps`` is taken as
    the members' S only when it is > 0; 0 (no supernet trained) leaves the config's S,
    while its ``finetune_steps`` (512) is still taken. Mutant let through: ``had >= 0``,
    which gave the distilled baselines a budget of 0 + 512 steps."""
    from a2d_evo.config import config_from_dict
    from a2d_evo.files import file_digest
    from a2d_evo.runfolder import RunFolder
    from a2d_evo.train.baselines import run_budgets

    run = RunFolder(tmp_path / "run")
    run.search.mkdir(parents=True)
    run.agents.mkdir(parents=True)
    (run.search / "front.json").write_text("{}")
    delivered = {
        "finetune_steps": 512,
        "front_sha256": file_digest(run.search / "front.json"),
        "supernet_steps": 0,
    }
    (run.agents / "delivered.json").write_text(json.dumps(delivered))
    cfg = config_from_dict({"supernet": {"total_steps": 3072}})
    got = run_budgets(cfg, run)
    assert (got.supernet.total_steps, got.finetune.steps) == (3072, 512)


def test_a_finished_baseline_without_seeds_is_trained_again() -> None:
    """a2d_evo/train/baselines.py _trained_for: a metrics.json must record the front's final
    seeds to count as this baseline (budget, steps, teacher and recipe may be absent in older
    files, the seeds may not). Mutant let through: ``metrics.get("seeds", seeds)``, which kept
    a baseline of unknown seeds beside members scored on the front's."""
    from a2d_evo.train.baselines import _trained_for

    assert _trained_for({"seeds": [1, 2]}, 10, 10, [1, 2], "t", "r") is True
    assert _trained_for({}, 10, 10, [1, 2], "t", "r") is False


def test_scaled_widths_are_rounded_to_nearest() -> None:
    """a2d_evo/train/baselines.py scale_arch: ``w * multiplier`` rounded (Python's round, at
    least 1). 3 * 0.5 = 1.5 -> 2 (half to even), 10 * 0.5 = 5, 10 * 0.75 = 7.5 -> 8.
    Mutant let through: ``int(w * multiplier)`` (truncation: 1 and 7), a x0.5 or x0.75
    baseline narrower than the arch it names."""
    from a2d_evo.nets.space import MLPArch
    from a2d_evo.train.baselines import scale_arch

    assert scale_arch(MLPArch((3, 10)), 0.5) == MLPArch((2, 5))
    assert scale_arch(MLPArch((10,)), 0.75) == MLPArch((8,))
