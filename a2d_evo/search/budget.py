"""The search's budget in env steps (``search.budget_steps``): when to stop, what counts.

A generation is played in one batched call, so a search can only *stop* between generations:
the generation that crosses the budget is played in full. What the search *delivers* is cut
at the budget episode by episode instead (:func:`within_budget`): the archive's episodes are
put in play order, and those that start once the budget is spent are dropped before the front
is chosen. A search given ``budget_steps`` thus uses at most the budget plus one episode,
whatever a generation costs, and methods with different generation sizes (NSGA-II with its
re-scored survivors, random search's batches) compare at equal env steps.

Play order (a convention: one generation's episodes are played at once): generation, then the
anchors (``search.anchors``: their episodes measure the seed effects that every other episode
of the generation is adjusted by, so a cut never keeps a generation's candidates without its
anchors), then the other archs in the order they were first evaluated
(:meth:`SubnetProblem.cache_records`'s ``order``), then each arch's episodes in the order they
were played (their index in the record, which within a generation is also seed order). Under
``search.budget_cut: replays_first`` (the default) that order puts survivors and re-played
archs before the generation's new offspring, so the crossing generation loses its new archs
first; ``new_first`` puts the archs first evaluated in that generation before the replays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from a2d_evo.config.search import BudgetCut
from a2d_evo.search.problem import SubnetProblem, summarise


@dataclass(frozen=True)
class Cut:
    """What :func:`within_budget` kept and dropped, in env steps and episodes: the fields of
    :class:`~a2d_evo.search.front.SearchSummary` after ``generations`` and ``stopped_by``."""

    env_steps: int
    episodes_played: int
    discarded_env_steps: int
    discarded_episodes: int


def budget_spent(problem: SubnetProblem, budget_steps: int | None) -> bool:
    """True once the env steps played reach ``budget_steps`` (never without a budget)."""
    return budget_steps is not None and problem.env_steps() >= budget_steps


def within_budget(
    records: Sequence[dict[str, Any]],
    budget_steps: int | None,
    order: BudgetCut = "replays_first",
) -> tuple[list[dict[str, Any]], Cut]:
    """The archive as a per-episode stop at ``budget_steps`` would have left it.

    Keeps, in play order (module docstring; ``order`` is ``search.budget_cut``), every episode
    that starts before the kept ones sum to ``budget_steps``; the records are copies with only
    those episodes (and their summaries), records left with none are dropped. ``None``:
    everything is kept.
    """
    new_first = order == "new_first"
    plays = sorted(
        (
            g,
            not rec.get("anchor", False),
            new_first and g > rec["generations"][0],
            rec["order"],
            i,
            j,
        )
        for j, rec in enumerate(records)
        for i, g in enumerate(rec["generations"])
    )
    keep: list[list[int]] = [[] for _ in records]
    spent = kept = 0
    total = sum(sum(rec["lengths"]) for rec in records)
    for *_, i, j in plays:
        if budget_steps is not None and spent >= budget_steps:
            break
        keep[j].append(i)
        spent += int(records[j]["lengths"][i])
        kept += 1
    out: list[dict[str, Any]] = []
    for rec, idx in zip(records, keep, strict=True):
        if not idx:
            continue
        if len(idx) == len(rec["returns"]):
            out.append(rec)
            continue
        idx.sort()
        cut = dict(rec)
        for k in ("returns", "lengths", "seeds", "generations"):
            cut[k] = [rec[k][i] for i in idx]
        summarise(cut)
        out.append(cut)
    played = sum(len(rec["returns"]) for rec in records)
    return out, Cut(spent, kept, total - spent, played - kept)
