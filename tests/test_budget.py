"""The per-episode budget cut (``search.budget`` ``within_budget``) on a hand-made archive."""

from __future__ import annotations

from typing import Any

import pytest

from a2d_evo.search.budget import Cut, within_budget
from a2d_evo.search.problem import summarise


def record(order: int, generations: list[int], lengths: list[int]) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "generation": generations[0],
        "order": order,
        "encoding": [order],
        "returns": [float(10 * order + i) for i in range(len(lengths))],
        "lengths": lengths,
        "seeds": [100 + i for i in range(len(lengths))],
        "generations": generations,
    }
    summarise(rec)
    return rec


# Play order: generation 0: A 10, A 20, B 5, B 5 (40 steps); generation 1: A 30 (70), A 40
# (110), C 7 (117), C 8 (125). A was first evaluated before C, so it plays first in gen 1.
ARCHIVE = [
    record(0, [0, 0, 1, 1], [10, 20, 30, 40]),  # A: a survivor, re-played in generation 1
    record(1, [0, 0], [5, 5]),  # B: generation 0 only
    record(2, [1, 1], [7, 8]),  # C: generation 1's offspring
]


def test_the_cut_keeps_every_episode_that_starts_within_the_budget() -> None:
    kept, cut = within_budget(ARCHIVE, 70)  # A's third episode reaches exactly 70
    assert cut == Cut(env_steps=70, episodes_played=5, discarded_env_steps=55, discarded_episodes=3)
    assert [r["order"] for r in kept] == [0, 1]  # C had no episode within the budget
    a = kept[0]
    assert a["lengths"] == [10, 20, 30] and a["generations"] == [0, 0, 1]
    assert a["returns"] == [0.0, 1.0, 2.0] and a["seeds"] == [100, 101, 102]
    assert a["episodes"] == 3 and a["return_mean"] == pytest.approx(1.0)
    assert ARCHIVE[0]["episodes"] == 4  # the archive itself is left as it was

    kept, cut = within_budget(ARCHIVE, 71)  # one step more: A's fourth episode starts
    assert cut == Cut(
        env_steps=110, episodes_played=6, discarded_env_steps=15, discarded_episodes=2
    )
    assert [r["episodes"] for r in kept] == [4, 2]


def test_a_generations_anchors_play_first() -> None:
    """An anchor (``"anchor": True``, first evaluated last here) plays first in every
    generation: gen 0: D 2, A 10, A 20, B 5, B 5 (42 steps); gen 1: D 3 (45), A 30, ... A cut
    at 45 keeps D's generation-1 episode, which measures that generation's seed effects; in
    the order of first evaluation, A's 30 steps would have spent it and D's would be dropped."""
    anchor = {**record(3, [0, 1], [2, 3]), "anchor": True}
    kept, cut = within_budget([*ARCHIVE, anchor], 45)
    assert cut == Cut(env_steps=45, episodes_played=6, discarded_env_steps=85, discarded_episodes=4)
    assert [(r["order"], r["generations"]) for r in kept] == [
        (0, [0, 0]), (1, [0, 0]), (3, [0, 1])
    ]  # fmt: skip


def test_no_budget_or_an_unspent_one_keeps_the_archive_whole() -> None:
    for budget in (None, 125, 10**9):
        kept, cut = within_budget(ARCHIVE, budget)
        assert kept == ARCHIVE
        assert cut == Cut(
            env_steps=125, episodes_played=8, discarded_env_steps=0, discarded_episodes=0
        )


def test_new_first_keeps_the_crossing_generations_new_archs_before_its_replays() -> None:
    """``search.budget_cut: new_first``: gen 0 as before (40 steps); gen 1: C 7 (47), C 8 (55),
    then A's replays 30 (85), 40 (125). A cut at 55 keeps both of C's episodes and none of A's
    replays, where the default order spends those 15 steps on A's third episode and drops C."""
    kept, cut = within_budget(ARCHIVE, 55, "new_first")
    assert cut == Cut(env_steps=55, episodes_played=6, discarded_env_steps=70, discarded_episodes=2)
    assert [(r["order"], r["generations"]) for r in kept] == [
        (0, [0, 0]), (1, [0, 0]), (2, [1, 1])
    ]  # fmt: skip
    kept, cut = within_budget(ARCHIVE, 55)  # replays_first: A's third episode starts at 40
    assert cut == Cut(env_steps=70, episodes_played=5, discarded_env_steps=55, discarded_episodes=3)
    assert [r["order"] for r in kept] == [0, 1]
    # an anchor still plays first in its generation under new_first
    anchor = {**record(3, [0, 1], [2, 3]), "anchor": True}
    kept, _ = within_budget([*ARCHIVE, anchor], 45 + 7, "new_first")
    assert [(r["order"], r["generations"]) for r in kept] == [
        (0, [0, 0]), (1, [0, 0]), (2, [1]), (3, [0, 1])
    ]  # fmt: skip


def test_the_budget_is_spent_at_exactly_budget_steps() -> None:
    """A search stops once the env steps played *reach* ``budget_steps`` (the docstring's
    ">="): exactly the budget is spent, one step short is not, no budget never is."""
    from a2d_evo.search.budget import budget_spent

    class Played:
        def __init__(self, steps: int) -> None:
            self.steps = steps

        def env_steps(self) -> int:
            return self.steps

    assert budget_spent(Played(1000), 1000)  # type: ignore[arg-type]
    assert not budget_spent(Played(999), 1000)  # type: ignore[arg-type]
    assert not budget_spent(Played(10**9), None)  # type: ignore[arg-type]
