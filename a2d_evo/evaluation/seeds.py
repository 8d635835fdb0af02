"""Every rule that picks evaluation episode seeds, in one place.

Training envs are seeded by :class:`a2d_evo.train.streams.Streams`. Every evaluation draws
its episodes from a region of its own: a base taken from
``numpy.random.SeedSequence([run seed, tag])`` (one tag per use; for a search generation,
the generation too), followed by consecutive seeds. The bases are independent draws from
[0, 2**31 - 2**20), so two blocks of n episodes overlap with probability about 2n / 2**31:
runs with different seeds in practice never share evaluation episodes, and within a run the
teacher's evaluation, fine-tune scores (and ``score_subnets``), the fine-tune's validation,
the search's generations, the rounds of the delivery's successive halving, the final
re-scoring and ``a2d-evo eval`` do not reuse each other's, so an agent is not scored on the
episodes that selected it. Two uses share seeds on purpose: under ``export`` the fine-tune's
before/after scores are played on the front's final seeds (the delivery's figures compare
agents on the same episodes; the validation seeds, not these, choose the weights), and
``export --pick knee`` or ``--min-return`` choose on the final seeds that then score the
pick (``docs/search.md`` says so). The halving and
final seeds depend on the run seed alone, so every search method given that seed (NSGA-II,
random search, ``benchmarks/bench_search.py``) delivers its front on the same episodes.
``tests/test_seeds.py`` checks the tuning and reporting run seeds in use (0-2, 100-121)
with blocks as long as the largest any shipped config plays.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from a2d_evo.config import Config
from a2d_evo.errors import ConfigError, FormatError

_SEED_SPAN = 2**31 - 2**20  # episode seeds stay valid 31-bit ints (ALE takes int32)
_TAG_GENERATION = 0x5EA2C4
_TAG_FINAL = 0xF17A1
_TAG_TEACHER = 0x7EAC4E
_TAG_FINETUNE = 0xF1E7E
_TAG_FRESH = 0xF8E54
_TAG_HALVING = 0x4A1F
_TAG_VALIDATION = 0x7A11D
_TAG_RANDOM_POLICY = 0x4A7D0


def _seed_base(*words: int) -> int:
    state = np.random.SeedSequence([int(w) for w in words]).generate_state(1, np.uint64)
    return int(state[0] % _SEED_SPAN)


def generation_seeds(seed: int, generation: int, episodes: int) -> list[int]:
    """Episode seeds of one search generation: every candidate of it plays these."""
    base = _seed_base(seed, _TAG_GENERATION, generation)
    return [base + e for e in range(episodes)]


def final_seeds(seed: int, episodes: int) -> list[int]:
    """Fresh episode seeds of the final re-scoring of the front (and of the baselines)."""
    base = _seed_base(seed, _TAG_FINAL)
    return [base + e for e in range(episodes)]


def halving_seeds(seed: int, round_: int, episodes: int) -> list[int]:
    """Episode seeds of one round of the delivery's successive halving: every candidate
    still in the race plays these (the same for every search method given ``seed``)."""
    base = _seed_base(seed, _TAG_HALVING, round_)
    return [base + e for e in range(episodes)]


def teacher_eval_seed(seed: int) -> int:
    """First episode seed of the teacher's own evaluation (and of R_random beside it)."""
    return _seed_base(seed, _TAG_TEACHER)


def finetune_eval_seed(seed: int) -> int:
    """First episode seed of a fine-tune's before/after scores."""
    return _seed_base(seed, _TAG_FINETUNE)


def validation_seed(seed: int) -> int:
    """First episode seed of a fine-tune's validation: the episodes that decide whether the
    fine-tuned weights replace the inherited ones (never the final or fresh seeds)."""
    return _seed_base(seed, _TAG_VALIDATION)


def fresh_eval_seed(seed: int) -> int:
    """``a2d-evo eval``'s default first episode seed."""
    return _seed_base(seed, _TAG_FRESH)


def random_policy_rng(seed: int) -> np.random.Generator:
    """The uniform-random policy's action stream for episodes from ``seed``: a stream of its
    own. ``numpy.random.default_rng(seed)`` is the very generator gymnasium seeds the env
    with (``reset(seed=seed)``), so its actions would replay the env's own draws (an env that
    draws its target from ``np_random`` was then solved by chance)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), _TAG_RANDOM_POLICY]))


def check_scoring_seeds(cfg: Config, data: Mapping[str, Any], path: Path, command: str) -> None:
    """``export`` (the fine-tune) and ``baselines`` score on the front's final seeds, where the
    front's figures, R_random, R_teacher and every other agent were measured: a ``--seed`` or
    ``search.final_episodes`` that moves them is a ConfigError (it mixed two seed sets in one
    ``metrics.json``, and the report set baselines against members on other seeds). A front
    that records no seeds is taken as it is."""
    recorded = (data.get("normalisation") or {}).get("seeds")
    if recorded is None:
        return
    if (
        not isinstance(recorded, list)
        or not recorded
        or not all(isinstance(x, int) and not isinstance(x, bool) for x in recorded)
    ):
        raise FormatError(
            f"{path}: normalisation.seeds must be a non-empty list of integer seeds, got "
            f"{str(recorded)[:60]}"
        )
    here = final_seeds(cfg.seed, cfg.search.final_episodes)
    if recorded != here:
        raise ConfigError(
            f"{command}: {path} was scored on {len(recorded)} final seeds from {recorded[0]}, "
            f"this config's seed and search.final_episodes give {len(here)} from {here[0]}; "
            f"run {command} with the search's seed and final_episodes (drop --seed / --set "
            "search.final_episodes), so that every figure is on the front's seeds"
        )
