"""a2d_evo.evaluation.seeds: evaluation episodes are never shared across runs or across uses."""

from __future__ import annotations

import itertools

import numpy as np

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
