"""The delivered front: from everything a search evaluated to ``front.json``.

The same rule for every search method (NSGA-II, random search, ``benchmarks/bench_search.py``),
on episode seeds that depend on the run seed alone (:mod:`a2d_evo.evaluation.seeds`):

1. **candidates** (:func:`candidates`): the archive (every arch evaluated, on the search's
   estimate of its return, ``search.estimate``: by default the mean over all its episodes)
   sorted into non-dominated fronts; whole fronts are taken, best
   first, until at least ``search.candidates`` (default ``search.pop``) archs are in
   (feasible ones only under ``search.max_flops``);
2. **successive halving** (:func:`successive_halving`): round ``r`` plays every candidate still
   in on ``min(episodes * 2**r, final_episodes)`` fresh seeds (:func:`halving_seeds`) and ranks
   them on the mean over the halving's own episodes (not the search's: those selected them,
   and the best of many noisy draws is biased up); the best whole fronts holding at least half
   of them go on. It stops when every arch still in is non-dominated, or after
   ``ceil(log2(candidates))`` rounds. Each round costs about ``candidates * episodes``
   episodes, so the race costs about ``log2(candidates)`` times that;
3. **members**: the race's non-dominated survivors, less those whose mean over the race's
   episodes does not beat the uniform-random policy's on the same seeds (a 0-FLOPs agent
   dominates them; when none beats it, the best one alone), :func:`beats_random`. Of those
   dropped, all cheaper than every member, the ``finetune.below_random`` costliest are listed
   apart (``below_random``, none by default) for ``export`` to fine-tune, which can lift them
   above random; they are no members and count in no figure of the front;
4. **final re-scoring**: the members (and the ``below_random`` ones, whose episodes
   ``delivery.below_random_env_steps`` counts apart) play ``search.final_episodes`` fresh seeds
   (:func:`~a2d_evo.evaluation.seeds.final_seeds`), R_random and R_teacher are measured again
   on those seeds, and every member's ``metrics.json`` figures go to ``front.json``. Nothing is
   dropped on these seeds: they score the members and do not choose who is in ``front.json``
   (a filter on them would keep the lucky draws; ``dominated_on_final_seeds`` counts the
   members that look dominated there; ``history.csv`` keeps everything).

:func:`reference_returns` also gives the search's own normalisation, measured once at its start.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from a2d_evo.config import Config
from a2d_evo.errors import TrainingError
from a2d_evo.evaluation.episodes import EvalResult, evaluate_agent, random_policy_return
from a2d_evo.evaluation.seeds import final_seeds, halving_seeds
from a2d_evo.formats import (
    FRONT_FORMAT_VERSION,
    HV_UNITS,
    METRICS_FORMAT_VERSION,
    TEACHER_FIX,
    Normalisation,
    check_teacher_beats_random,
    weak_teacher_caution,
)
from a2d_evo.nets.agent_folder import extract, make_metrics
from a2d_evo.nets.cost import latency_ms
from a2d_evo.nets.space import Arch, SearchSpace
from a2d_evo.nets.supernet import Supernet
from a2d_evo.progress import progress_bar, set_total, write
from a2d_evo.runs.files import write_json
from a2d_evo.search.estimates import arch_estimates
from a2d_evo.search.problem import (
    beats_random,
    front_indices,
    hypervolume,
    staircase_hypervolume,
)
from a2d_evo.stats import paired_lower95


@dataclass(frozen=True)
class SearchSummary:
    """What a search spent, for ``front.json``'s ``search`` block."""

    generations: int
    stopped_by: str
    """``gens``, ``budget_steps``, ``gens and budget_steps`` (the last generation spent the
    budget too) or ``space exhausted``."""
    env_steps: int
    """Env steps of the episodes the front was chosen from (candidates only, not
    R_random/R_teacher): with a budget, those within it
    (:func:`~a2d_evo.search.budget.within_budget`)."""
    episodes_played: int
    discarded_env_steps: int = 0
    """Env steps played past ``budget_steps`` in the last generation, not used."""
    discarded_episodes: int = 0
    sources: dict[str, str | None] = field(default_factory=dict)
    """SHA-256 of the supernet's weights and the teacher's ``policy.pt`` it searched with:
    ``export`` refuses to extract from other weights than the ones the figures are of."""


@dataclass(frozen=True)
class Halving:
    """The outcome of :func:`successive_halving`."""

    survivors: list[int]
    """Indices into the candidates: the non-dominated ones of the last round, cheapest first."""
    rounds: list[dict[str, int]]
    """Per round: ``candidates``, ``episodes`` (per candidate), ``env_steps``."""
    means: list[float]
    """Each survivor's mean return over every halving episode it played (all of them: a
    survivor played every round), in the order of ``survivors``."""
    seed_blocks: list[list[int]]
    """The seeds of each round (a survivor played every block)."""


def _random_episodes(
    cfg: Config, seed_blocks: list[list[int]], max_steps: int | None
) -> list[float]:
    """The uniform-random policy's return on every seed of these blocks, in order."""
    rand: list[float] = []
    for block in seed_blocks:
        rand.extend(
            random_policy_return(cfg, len(block), block[0], max_episode_steps=max_steps).returns
        )
    return rand


def random_return(cfg: Config, seed_blocks: list[list[int]], max_steps: int | None) -> float:
    """Mean return of the uniform-random policy over every episode of these seed blocks (each a
    run of consecutive seeds: a generation's, a halving round's, the final re-scoring's)."""
    return float(np.mean(_random_episodes(cfg, seed_blocks, max_steps)))


class References(NamedTuple):
    """The references of a normalisation, measured on the same seeds."""

    r_random: float
    r_teacher: float
    margin_lower95: float | None
    """95% lower bound of the teacher's mean lead over the random policy, paired per seed
    (:func:`~a2d_evo.stats.paired_lower95`); at or below 0 the lead is within noise and every
    normalised return is a ratio over noise (None below 2 episodes)."""


def reference_returns(
    cfg: Config, teacher: Any, seed_blocks: list[list[int]], max_steps: int | None
) -> References:
    """The uniform-random policy's and the teacher's (greedy) mean returns on these seeds
    (blocks of consecutive seeds, as :func:`random_return`), and how surely the teacher leads."""
    teach: list[float] = []
    for block in seed_blocks:
        teach.extend(
            evaluate_agent(
                teacher, cfg, len(block), block[0], "greedy", max_episode_steps=max_steps
            ).returns
        )
    rand = _random_episodes(cfg, seed_blocks, max_steps)
    return References(float(np.mean(rand)), float(np.mean(teach)), paired_lower95(teach, rand))


def normalisation(
    r_random: float, r_teacher: float, teacher_flops: int, fix: str = TEACHER_FIX
) -> Normalisation:
    """The normalisation of measured references (TrainingError if the teacher does not beat
    random, ending with ``fix``: what to do about it)."""
    try:
        check_teacher_beats_random(r_random, r_teacher, fix)
        return Normalisation(r_random, r_teacher, teacher_flops)
    except ValueError as exc:
        raise TrainingError(f"cannot normalise returns: {exc}") from None


def rescore(
    evaluator: Any,
    archs: Sequence[Arch],
    seeds: list[int],
    max_slots: int,
    bar: Any = None,
) -> list[EvalResult]:
    """Every arch on every one of ``seeds``, in calls of at most ``max_slots`` env slots.

    The race and the final re-scoring of a front (:func:`write_front`) pass
    ``max(search.pop, search.candidates) x search.episodes``: no more env slots (memory,
    Atari emulators) than a generation plays (``(2 x pop + anchors) x episodes``), unless
    ``search.candidates`` is above ``2 x pop`` plus the anchors. An arch always
    plays all of ``seeds`` in one call: with more seeds than ``max_slots`` (the demo's 200
    final episodes against 96) a call opens ``len(seeds)`` slots. ``evaluator`` is a local
    or Ray population evaluator; ``bar`` (a progress bar) advances by one per arch.
    """
    per_call = max(1, max_slots // len(seeds))
    results: list[EvalResult] = []
    for i in range(0, len(archs), per_call):
        chunk = archs[i : i + per_call]
        results.extend(evaluator.evaluate(chunk, len(seeds), seeds))
        if bar is not None:
            bar.update(len(chunk))
    return results


def candidates(
    records: Sequence[dict[str, Any]],
    norm: Normalisation,
    count: int,
    max_flops: float | None = None,
    returns: Sequence[float] | None = None,
) -> list[dict[str, Any]]:
    """The archive's best whole non-dominated fronts until at least ``count`` archs, cheapest
    first, ranked on ``returns`` (one per record: the search's estimates; None: the records'
    search-time means). Under ``max_flops`` only feasible archs; when none is, the least
    violating one alone (an anchor: ``evolve`` refuses a search that played no feasible arch)."""
    if not records:
        raise ValueError("candidates: nothing was evaluated")
    values = [r["return_mean"] for r in records] if returns is None else list(returns)
    pairs = list(zip(records, values, strict=True))
    if max_flops is not None:
        ok = [p for p in pairs if p[0]["flops"] <= max_flops]
        pairs = ok or [min(pairs, key=lambda p: (p[0]["flops"], p[0]["order"]))]
    recs = [r for r, _ in pairs]
    F = np.array([[-norm.score(v), r["flops"]] for r, v in pairs], dtype=np.float64)
    chosen: list[int] = []
    for front in NonDominatedSorting().do(F):
        if len(chosen) >= count:
            break
        chosen += [int(i) for i in front]
    out = [recs[i] for i in chosen]
    return sorted(out, key=lambda r: (r["flops"], r["encoding"]))


def _best_fronts(F: np.ndarray, at_least: int) -> list[int]:
    """Whole non-dominated fronts of ``F``, best first, until at least ``at_least`` rows."""
    kept: list[int] = []
    for front in NonDominatedSorting().do(F):
        if len(kept) >= at_least:
            break
        kept += [int(i) for i in front]
    return sorted(kept)


def successive_halving(
    evaluator: Any,
    archs: Sequence[Arch],
    flops: Sequence[float],
    *,
    seed: int,
    episodes: int,
    max_episodes: int,
    max_slots: int,
    bar: Any = None,
) -> Halving:
    """Race ``archs`` on fresh seeds, keeping the better half each round (module docstring)."""
    n = len(archs)
    if n == 0:
        raise ValueError("successive_halving: no candidates")
    alive = list(range(n))
    sums = np.zeros(n)
    counts = np.zeros(n, dtype=np.int64)
    rounds: list[dict[str, int]] = []
    blocks: list[list[int]] = []
    max_rounds = max(1, math.ceil(math.log2(n)))
    for r in range(max_rounds):
        e_r = min(episodes * 2**r, max_episodes)
        seeds = halving_seeds(seed, r, e_r)
        blocks.append(seeds)
        results = rescore(evaluator, [archs[i] for i in alive], seeds, max_slots, bar)
        steps = 0
        for i, res in zip(alive, results, strict=True):
            sums[i] += float(np.sum(res.returns))
            counts[i] += res.episodes
            steps += int(np.sum(res.lengths)) if res.lengths is not None else 0
        rounds.append({"candidates": len(alive), "episodes": e_r, "env_steps": steps})
        F = np.column_stack([-sums[alive] / counts[alive], np.asarray(flops, float)[alive]])
        if len(front_indices(F)) == len(alive):  # every arch still in is non-dominated
            break
        # the better half by whole fronts (more than half when the first front alone holds
        # more: all of it goes on, the dominated ones drop), then a longer round
        alive = [alive[k] for k in _best_fronts(F, math.ceil(len(alive) / 2))]
    F = np.column_stack([-sums[alive] / counts[alive], np.asarray(flops, float)[alive]])
    survivors = [alive[int(k)] for k in front_indices(F)]
    survivors.sort(key=lambda i: (flops[i], i))
    return Halving(survivors, rounds, [float(sums[i] / counts[i]) for i in survivors], blocks)


def write_front(
    folder: Path,
    cfg: Config,
    records: Sequence[dict[str, Any]],
    *,
    supernet: Supernet,
    teacher: Any,
    teacher_flops: int,
    evaluator: Any,
    norm_search: Normalisation,
    ref: np.ndarray,
    summary: SearchSummary,
    progress: bool = False,
    fix: str = TEACHER_FIX,
) -> Path:
    """Deliver the front of everything evaluated (``records``) and write ``folder/front.json``.
    ``fix``: what to do about a teacher that does not beat random (:func:`normalisation`).

    A progress bar (one step per arch raced in each halving round, one for the references, one
    per member re-scored, one per member's metrics and latency) covers the seconds this takes.
    """
    s = cfg.search
    space = SearchSpace(cfg.space)
    estimates = arch_estimates(records, space, s.estimate).tolist()
    by_encoding = {tuple(r["encoding"]): e for r, e in zip(records, estimates, strict=True)}
    chosen = candidates(records, norm_search, s.delivery_candidates, s.max_flops, estimates)
    archs = [space.decode(r["encoding"]) for r in chosen]
    flops = [float(r["flops"]) for r in chosen]
    seeds = final_seeds(cfg.seed, s.final_episodes)
    max_slots = max(s.pop, s.delivery_candidates) * s.episodes
    # the race's length is known once it ends: no total until then (a count and a rate)
    bar = progress_bar(total=None, desc="deliver front", unit="step", enabled=progress)
    try:
        bar.set_postfix_str(f"successive halving of {len(archs)} candidates", refresh=False)
        race = successive_halving(
            evaluator,
            archs,
            flops,
            seed=cfg.seed,
            episodes=s.episodes,
            max_episodes=s.final_episodes,
            max_slots=max_slots,
            bar=bar,
        )
        # who is delivered is decided here, on the race's own episodes: the final seeds then
        # score the members and choose nothing (a filter on them would bias what they report)
        bar.set_postfix_str("R_random on the halving seeds", refresh=False)
        r_rand_race = random_return(cfg, race.seed_blocks, None)
        keep, below_random = beats_random(race.means, r_rand_race)
        # the costliest finetune.below_random of the survivors dropped there (all cheaper
        # than every member): scored too, for the export to fine-tune, and never members
        kept = set(keep)
        dropped = sorted(
            (k for k in range(len(race.means)) if k not in kept),
            key=lambda k: (-flops[race.survivors[k]], k),
        )[: cfg.finetune.below_random]
        members = [chosen[race.survivors[k]] for k in keep + dropped]
        finalists = [archs[race.survivors[k]] for k in keep + dropped]
        set_total(bar, bar.n + 1 + 2 * len(finalists))
        bar.set_postfix_str("R_random, R_teacher", refresh=False)
        refs = reference_returns(cfg, teacher, [seeds], None)
        norm = normalisation(refs.r_random, refs.r_teacher, teacher_flops, fix)
        bar.update(1)
        bar.set_postfix_str(f"{len(finalists)} archs x {len(seeds)} episodes", refresh=False)
        results = rescore(evaluator, finalists, seeds, max_slots=max_slots, bar=bar)
        bar.set_postfix_str("metrics, latency", refresh=False)
        entries = []
        for rec, arch, res in zip(members, finalists, results, strict=True):
            agent = extract(supernet, arch)
            metrics = make_metrics(
                agent,
                env_id=cfg.env.id,
                returns=res.returns,
                eval_mode="greedy",
                seeds=seeds,
                r_random=norm.r_random,
                r_teacher=norm.r_teacher,
                latency=latency_ms(agent),
            )
            metrics["arch"] = arch.to_dict()
            metrics["encoding"] = list(rec["encoding"])
            metrics["search_return_mean"] = rec["return_mean"]
            metrics["search_episodes"] = rec["episodes"]
            # what the candidates were chosen on (search.estimate; the mean under "mean")
            metrics["search_estimate"] = by_encoding[tuple(rec["encoding"])]
            metrics["search_normalised_return"] = float(norm_search.score(rec["return_mean"]))
            entries.append(metrics)
            bar.update(1)
    finally:
        bar.close()
    front, below = entries[: len(keep)], entries[len(keep) :]
    F = np.array([[-e["normalised_return"], e["flops"]] for e in front])
    looks_dominated = len(front) - len(front_indices(F))
    final_steps, below_steps = (
        sum(int(np.sum(r.lengths)) for r in part if r.lengths is not None)
        for part in (results[: len(front)], results[len(front) :])
    )
    race_steps = sum(r["env_steps"] for r in race.rounds)
    race_episodes = sum(r["candidates"] * r["episodes"] for r in race.rounds)
    data = {
        "format_version": FRONT_FORMAT_VERSION,
        "env_id": cfg.env.id,
        "reference_point": [float(v) for v in ref],
        "reference_point_units": list(HV_UNITS),
        "hypervolume": hypervolume(F, ref),
        # the same members without the envelope: unbiased by the final seeds' noise
        "hypervolume_staircase": staircase_hypervolume(F, ref),
        "normalisation": {
            **norm.to_dict(),
            "seeds": seeds,
            "episodes": s.final_episodes,
            "eval_mode": "greedy",
            "teacher_margin_lower95": refs.margin_lower95,
        },
        "search": {
            "normalisation": norm_search.to_dict(),
            **asdict(summary),
            "pop": s.pop,
            "episodes": s.episodes,
            "reevaluate": s.reevaluate,
            "reevaluate_ranks": s.reevaluate_ranks,
            "init": s.init,
            "mutation": s.mutation,
            "crowding": s.crowding,
            "estimate": s.estimate,
            "budget_steps": s.budget_steps,
            "evaluations": len(records),
            "front_size": len(front),
            "dropped_below_random": below_random,
            # then the one member is the best of a race that no candidate won against random
            "none_beat_random": not any(m > r_rand_race for m in race.means),
            "dominated_on_final_seeds": looks_dominated,
            "metrics_format_version": METRICS_FORMAT_VERSION,
        },
        "delivery": {
            "candidates": len(chosen),
            "candidates_at_least": s.delivery_candidates,
            "halving_rounds": race.rounds,
            "halving_env_steps": race_steps,
            "halving_episodes": race_episodes,
            "halving_random_return": r_rand_race,
            "final_env_steps": final_steps,
            "final_episodes": len(front) * len(seeds),
            # the below_random entries' final re-scoring, apart: no member's
            "below_random_env_steps": below_steps,
            "below_random_episodes": len(below) * len(seeds),
        },
        "front": front,
        # not members (a 0-FLOPs agent dominates them): what finetune.below_random may lift
        "below_random": below,
    }
    caution = weak_teacher_caution(refs.margin_lower95)
    if caution is not None:
        write(f"front.json: {caution}")
    return write_json(folder / "front.json", data)
