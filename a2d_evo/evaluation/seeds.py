"""Every rule that picks evaluation episode seeds, in one place.

Training envs use ``seed + env index``; each evaluation draws from its own region so that an
agent is never scored on the episodes that selected it: the search's generations and its final
re-scoring take seeds from ``SeedSequence`` words tagged per use, the teacher's, the fine-tune's
and ``a2d-evo eval``'s seeds start at fixed offsets from the run seed.
"""

from __future__ import annotations

import numpy as np

TEACHER_EVAL_SEED_OFFSET = 1_000_000
"""The teacher's greedy evaluation (and R_random) uses seeds ``cfg.seed + this + i``."""

FINETUNE_EVAL_SEED_OFFSET = 2_000_000
"""Fine-tuning scores the agent before and after on seeds ``cfg.seed + this + i``."""

FRESH_SEED_OFFSET = 7_000_000
"""``eval``'s default first seed is ``cfg.seed + FRESH_SEED_OFFSET``: far from the seeds of
training (``seed + env index``), of the search and of the final front re-scoring."""

_SEED_SPAN = 2**31 - 2**20  # episode seeds stay valid 31-bit ints (ALE takes int32)
_TAG_GENERATION = 0x5EA2C4
_TAG_FINAL = 0xF17A1


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
