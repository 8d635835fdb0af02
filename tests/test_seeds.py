"""a2d_evo.evaluation.seeds: evaluation episodes are never shared across runs or across uses."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from a2d_evo.evaluation.seeds import (
    final_seeds,
    finetune_eval_seed,
    fresh_eval_seed,
    generation_seeds,
    halving_seeds,
    teacher_eval_seed,
    validation_seed,
)

EPISODES = 30


def _blocks(seed: int, gens: int = 20) -> dict[str, set[int]]:
    """Every evaluation block one run with ``seed`` plays, 30 episodes each."""
    blocks = {
        "teacher": set(range(teacher_eval_seed(seed), teacher_eval_seed(seed) + EPISODES)),
        "finetune": set(range(finetune_eval_seed(seed), finetune_eval_seed(seed) + EPISODES)),
        "eval": set(range(fresh_eval_seed(seed), fresh_eval_seed(seed) + EPISODES)),
        "final": set(final_seeds(seed, EPISODES)),
        "validation": set(range(validation_seed(seed), validation_seed(seed) + EPISODES)),
    }
    for g in range(gens):
        blocks[f"gen{g}"] = set(generation_seeds(seed, g, EPISODES))
    for r in range(6):  # the delivery's successive halving rounds
        blocks[f"halving{r}"] = set(halving_seeds(seed, r, EPISODES))
    return blocks


def test_same_seed_same_episodes() -> None:
    assert _blocks(100) == _blocks(100)
    assert final_seeds(7, 10)[:5] == final_seeds(7, 5)  # a prefix: more episodes, same first
    assert final_seeds(7, 5)[1:] == [final_seeds(7, 5)[0] + i for i in range(1, 5)]
    # a round's seeds depend on the run seed and the round only: the same for every method
    assert halving_seeds(7, 2, 10)[:4] == halving_seeds(7, 2, 4)
    rounds = [halving_seeds(7, 2, 4), halving_seeds(7, 3, 4), halving_seeds(8, 2, 4)]
    assert len({tuple(r) for r in rounds}) == 3  # other round or other run: other seeds


def test_reporting_runs_never_share_evaluation_episodes() -> None:
    """Runs 100-104 (the reporting seeds) and 0-2 (tuning): all their blocks are disjoint."""
    runs = {seed: _blocks(seed) for seed in (0, 1, 2, 100, 101, 102, 103, 104)}
    everything = [(seed, use, block) for seed, b in runs.items() for use, block in b.items()]
    for (s1, u1, b1), (s2, u2, b2) in itertools.combinations(everything, 2):
        assert not b1 & b2, f"run {s1} {u1} shares episodes with run {s2} {u2}"


def test_seeds_are_valid_int32_and_spread() -> None:
    firsts = np.array(
        [f(s) for s in range(200) for f in (teacher_eval_seed, finetune_eval_seed, fresh_eval_seed)]
    )
    assert firsts.min() >= 0 and firsts.max() + EPISODES < 2**31
    assert len(set(firsts.tolist())) == firsts.size  # no two bases coincide


def test_runs_at_the_shipped_configs_sizes_never_share_episodes() -> None:
    """Every run seed the benchmarks use (tuning 0-2, reporting 100-121), each with blocks as
    long as the largest any shipped config plays (the demo's 200 final episodes, 20
    generations, the fine-tune's validation, six halving rounds of the final count): no
    episode seed is played by two (run, use) pairs. The bases are independent 31-bit draws,
    so this is a property of the seeds in use, not of every seed (300 generations over 40
    runs did share an 8-episode block, run 109's generation 110 and run 114's 184)."""
    from a2d_evo.cli.configs import packaged_config
    from a2d_evo.config import load_config

    shipped = [
        load_config(packaged_config(p.name))
        for p in packaged_config("cartpole.yaml").parent.glob("*.yaml")
    ]
    assert len(shipped) >= 10
    gens = max(c.search.gens or 0 for c in shipped)
    per_gen = max(c.search.episodes for c in shipped)
    final = max(c.search.final_episodes for c in shipped)
    evals = max(max(c.eval.episodes, c.teacher.eval_episodes or 0) for c in shipped)
    validation = max(c.finetune.validation_episodes for c in shipped)
    assert (gens, final) >= (20, 200)
    owner: dict[int, tuple[int, str]] = {}
    for run in (*range(3), *range(100, 122)):
        blocks = {
            "teacher": range(teacher_eval_seed(run), teacher_eval_seed(run) + evals),
            "finetune": range(finetune_eval_seed(run), finetune_eval_seed(run) + evals),
            "eval": range(fresh_eval_seed(run), fresh_eval_seed(run) + evals),
            "final": final_seeds(run, final),
            "validation": range(validation_seed(run), validation_seed(run) + validation),
        }
        blocks |= {f"gen{g}": generation_seeds(run, g, per_gen) for g in range(gens)}
        blocks |= {f"halving{r}": halving_seeds(run, r, final) for r in range(6)}
        for use, block in blocks.items():
            for s in block:
                assert s not in owner, f"run {run} {use} plays seed {s} of {owner[s]}"
                owner[s] = (run, use)


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
