"""The delivered front: the last population's front re-scored on fresh seeds -> ``front.json``.

The feasible non-dominated members of the final population (cheapest first, each network
once) play ``search.final_episodes`` fresh episodes (:func:`~a2d_evo.evaluation.seeds.final_seeds`),
R_random and R_teacher are measured again on those seeds, and every member's ``metrics.json``
figures go to ``front.json``. Members dominated under the re-scored figures, or by the
uniform-random policy (normalised return <= 0 at 0 FLOPs), are dropped there
(``history.csv`` keeps everything). :func:`reference_returns` also gives the search's own
normalisation, measured once at its start.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pymoo.core.population import Population

from a2d_evo.config import Config
from a2d_evo.errors import TrainingError
from a2d_evo.evaluation.episodes import EvalResult, evaluate_agent, random_policy_return
from a2d_evo.evaluation.seeds import final_seeds
from a2d_evo.files import write_json
from a2d_evo.formats import FRONT_FORMAT_VERSION, METRICS_FORMAT_VERSION, Normalisation
from a2d_evo.nets.agent_folder import extract, make_metrics
from a2d_evo.nets.cost import latency_ms
from a2d_evo.nets.space import Arch
from a2d_evo.nets.supernet import Supernet
from a2d_evo.progress import progress_bar
from a2d_evo.search.problem import SubnetProblem, delivered_front, front_indices, hypervolume


def reference_returns(
    cfg: Config, teacher: Any, seed_blocks: list[list[int]], max_steps: int | None
) -> tuple[float, float]:
    """Mean returns of the uniform-random policy and of the teacher (greedy) on these seeds.

    Each block is a run of consecutive seeds (one generation's, or the final re-scoring's).
    """
    rand: list[float] = []
    teach: list[float] = []
    for block in seed_blocks:
        n = len(block)
        rand.extend(random_policy_return(cfg, n, block[0], max_episode_steps=max_steps).returns)
        teach.extend(
            evaluate_agent(teacher, cfg, n, block[0], "greedy", max_episode_steps=max_steps).returns
        )
    return float(np.mean(rand)), float(np.mean(teach))


def normalisation(r_random: float, r_teacher: float, teacher_flops: int) -> Normalisation:
    """The normalisation of measured references (TrainingError if the teacher ties random)."""
    try:
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

    The final re-scoring of a front: ``max_slots`` is a search generation's, so it never
    needs more env slots (memory, Atari emulators) than the search did. ``evaluator`` is a
    local or Ray population evaluator; ``bar`` (a progress bar) advances by one per arch.
    """
    per_call = max(1, max_slots // len(seeds))
    results: list[EvalResult] = []
    for i in range(0, len(archs), per_call):
        chunk = archs[i : i + per_call]
        results.extend(evaluator.evaluate(chunk, len(seeds), seeds))
        if bar is not None:
            bar.update(len(chunk))
    return results


def front_rows(problem: SubnetProblem, pop: Population) -> list[np.ndarray]:
    """Canonical encodings of ``pop``'s feasible front, each network once, cheapest first.

    When nothing meets the FLOPs ceiling, the least violating member stands alone.
    """
    F = pop.get("F")
    G = pop.get("G") if problem.n_ieq_constr else None
    idx = front_indices(F, G)
    if len(idx) == 0:
        idx = np.array([int(np.argmin(np.asarray(G).max(axis=1)))])
    X = problem.space.canonical(np.round(pop.get("X")[idx]))
    keys: list[bytes] = []
    rows: list[np.ndarray] = []
    for row in X:
        k = row.tobytes()
        if k not in keys:
            keys.append(k)
            rows.append(row)
    rows.sort(key=lambda r: (problem.cache[r.tobytes()]["flops"], list(r)))
    return rows


def write_front(
    folder: Path,
    cfg: Config,
    problem: SubnetProblem,
    pop: Population,
    *,
    supernet: Supernet,
    teacher: Any,
    teacher_flops: int,
    evaluator: Any,
    norm_search: Normalisation,
    ref: np.ndarray,
    generations: int,
    progress: bool = False,
) -> Path:
    """Re-score the front of the final population ``pop`` and write ``folder/front.json``.

    A progress bar (one step for the references, one per member re-scored, one per member's
    metrics and latency) covers the seconds this takes after the search's own bar is full.
    """
    s = cfg.search
    rows = front_rows(problem, pop)
    archs = [problem.space.decode(r) for r in rows]
    seeds = final_seeds(cfg.seed, s.final_episodes)
    bar = progress_bar(
        total=1 + 2 * len(archs), desc="re-score front", unit="step", enabled=progress
    )
    try:
        bar.set_postfix_str("R_random, R_teacher", refresh=False)
        r_rand, r_teach = reference_returns(cfg, teacher, [seeds], None)
        norm = normalisation(r_rand, r_teach, teacher_flops)
        bar.update(1)
        bar.set_postfix_str(f"{len(archs)} members x {len(seeds)} episodes", refresh=False)
        results = rescore(evaluator, archs, seeds, max_slots=s.pop * s.episodes, bar=bar)
        bar.set_postfix_str("metrics, latency", refresh=False)
        entries = []
        for row, arch, res in zip(rows, archs, results, strict=True):
            agent = extract(supernet, arch)
            searched = problem.cache[row.tobytes()]
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
            metrics["encoding"] = [int(g) for g in row]
            metrics["search_return_mean"] = searched["return_mean"]
            metrics["search_normalised_return"] = float(norm_search.score(searched["return_mean"]))
            entries.append(metrics)
            bar.update(1)
    finally:
        bar.close()
    keep, below_random = delivered_front(
        np.array([e["normalised_return"] for e in entries]),
        np.array([e["flops"] for e in entries]),
    )
    front = [entries[i] for i in keep]
    scaled = norm.scaled(np.array([[-e["normalised_return"], e["flops"]] for e in front]))
    data = {
        "format_version": FRONT_FORMAT_VERSION,
        "env_id": cfg.env.id,
        "reference_point": ref.tolist(),
        "reference_point_units": ["-normalised_return", "flops / teacher_flops"],
        "hypervolume": hypervolume(scaled, ref),
        "normalisation": {
            **norm.to_dict(),
            "seeds": seeds,
            "episodes": s.final_episodes,
            "eval_mode": "greedy",
        },
        "search": {
            "normalisation": norm_search.to_dict(),
            "generations": generations,
            "pop": s.pop,
            "episodes": s.episodes,
            "evaluations": len(problem.cache),
            "front_size": len(rows),
            "dropped_after_rescore": len(rows) - len(front),
            "dropped_below_random": below_random,
            "metrics_format_version": METRICS_FORMAT_VERSION,
        },
        "front": front,
    }
    return write_json(folder / "front.json", data)
