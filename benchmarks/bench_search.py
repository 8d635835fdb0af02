"""Search quality: NSGA-II vs random search with the same number of evaluations.

For every run folder given (a trained teacher and supernet, e.g. from ``a2d-evo demo`` or the
train commands) and every seed, in a scratch copy of the run folder:

* NSGA-II: ``evolve`` with ``--pop`` (64) and ``--gens`` (20);
* random search: as many distinct random archs as NSGA-II evaluated, scored in batches of
  ``pop`` with the same evaluator, the same per-generation episode seeds (batch g plays
  generation g's seeds) and the same normalisation constants and reference point.

Two hypervolumes each, in the units of ``front.json`` (-normalised return, FLOPs / teacher
FLOPs), same reference point:

* **delivered** (the headline): the front a user gets. NSGA-II's is ``front.json`` (its final
  population's front re-scored on fresh seeds with ``final_episodes``); random search's is
  the non-dominated set of its search-time estimates, re-scored the same way on the same
  seeds, with the same normalisation and the same rule for dropping members. Search-time
  estimates from a few episodes are noisy, and the best of many noisy draws is biased up;
  re-scoring removes that bias from the comparison.
* **archive**: the non-dominated set of everything evaluated, on search-time estimates.

And a ceiling for the delivered HV: **ideal**, the HV of one point with the best re-scored
return either search found at the FLOPs of the space's cheapest arch. No front whose returns
are at most that best can exceed it; where the best is the env's own return cap (CartPole-v1:
500), no front at all can, so two searches that both reach it are tied at the optimum.

Ends with one ``RESULT`` line.

    python benchmarks/bench_search.py --run runs/cartpole --run runs/acrobot [--seeds 3]
        [--pop 64] [--gens 20] [--episodes N] [--out /tmp/bench_search]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from a2d_evo.config import Config, config_from_dict, config_to_dict
from a2d_evo.evaluation.population import PopulationEvaluator
from a2d_evo.evaluation.seeds import final_seeds, generation_seeds
from a2d_evo.formats import Normalisation
from a2d_evo.nets import cost
from a2d_evo.nets.space import SearchSpace
from a2d_evo.nets.supernet import load_supernet
from a2d_evo.runfolder import RunFolder
from a2d_evo.search.evolution import evolve
from a2d_evo.search.front import rescore
from a2d_evo.search.problem import (
    SubnetProblem,
    delivered_front,
    front_indices,
    hypervolume,
)


def scratch_run(src: RunFolder, cfg: Config, root: Path) -> RunFolder:
    """A fresh run folder holding copies of ``src``'s teacher agent and supernet weights."""
    run = RunFolder(root)
    run.bind(cfg)
    shutil.copytree(src.teacher_agent, run.teacher_agent)
    run.supernet_weights.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src.supernet_weights, run.supernet_weights)
    return run


def objectives(records: list[dict[str, Any]], norm: Normalisation) -> np.ndarray:
    """(-normalised return, FLOPs) of cached search records, on their search-time returns."""
    return np.array([[-norm.score(r["return_mean"]), r["flops"]] for r in records], dtype=float)


def archive_hv(records: list[dict[str, Any]], norm: Normalisation, ref: np.ndarray) -> float:
    F = objectives(records, norm)
    return hypervolume(norm.scaled(F[front_indices(F)]), ref)


def delivered_hv(
    cfg: Config,
    ev: PopulationEvaluator,
    records: list[dict[str, Any]],
    norm: Normalisation,
    final: dict[str, Any],
) -> tuple[float, float]:
    """HV of the search-time front of ``records`` re-scored as ``evolve`` re-scores its own,
    and the best normalised return of that re-scored front.

    ``final`` is NSGA-II's ``front.json``: its seeds, normalisation and reference point.
    """
    s = cfg.search
    space = SearchSpace(cfg.space)
    chosen = sorted(
        (records[i] for i in front_indices(objectives(records, norm))),
        key=lambda r: (r["flops"], r["arch"]),
    )
    archs = [space.decode(r["encoding"]) for r in chosen]
    fn = final["normalisation"]
    final_norm = Normalisation.from_dict(fn)
    if fn["seeds"] != final_seeds(cfg.seed, s.final_episodes):
        raise RuntimeError("front.json was re-scored on other seeds than this run's")
    results = rescore(ev, archs, fn["seeds"], max_slots=s.pop * s.episodes)
    normalised = np.array([final_norm.score(r.mean) for r in results])
    flops = np.array([r["flops"] for r in chosen], dtype=float)
    keep, _ = delivered_front(normalised, flops)
    scaled = final_norm.scaled(np.column_stack([-normalised, flops])[keep])
    hv = hypervolume(scaled, np.asarray(final["reference_point"], dtype=float))
    return hv, float(normalised.max())


def ideal_hv(cfg: Config, final: dict[str, Any], best_normalised: float) -> float:
    """HV of the single point (``best_normalised``, FLOPs of the space's cheapest arch)."""
    from a2d_evo.envs import env_spec

    spec = env_spec(cfg.env)
    cheapest = cost.flops(SearchSpace(cfg.space).smallest(), tuple(spec.obs_shape), spec.n_actions)
    point = Normalisation.from_dict(final["normalisation"]).scaled(
        np.array([[-best_normalised, cheapest]])
    )
    return hypervolume(point, np.asarray(final["reference_point"], dtype=float))


def random_search(
    cfg: Config, ev: PopulationEvaluator, n_evals: int, norm: Normalisation, seed: int
) -> list[dict[str, Any]]:
    """``n_evals`` distinct random archs in batches of ``pop``, batch g on generation g's seeds."""
    from a2d_evo.envs import env_spec

    s = cfg.search
    space = SearchSpace(cfg.space)
    spec = env_spec(cfg.env)

    def evaluate(archs: Any, episodes: int, seeds: Any) -> Any:
        return ev.evaluate(archs, episodes, seeds, max_episode_steps=s.max_episode_steps)

    problem = SubnetProblem(
        space, evaluate, tuple(spec.obs_shape), spec.n_actions, norm, s.episodes, s.max_flops
    )
    rng = np.random.default_rng([seed, 0xA11D0])
    seen: set[bytes] = set()
    gen = 0
    while len(seen) < n_evals:
        batch: list[np.ndarray] = []
        for x in space.sample_encodings(rng, 50 * s.pop):
            k = x.tobytes()
            if k not in seen and len(seen) < n_evals and len(batch) < s.pop:
                seen.add(k)
                batch.append(x)
        if not batch:
            break  # the space is exhausted
        problem.evaluate(
            np.stack(batch), seeds=generation_seeds(cfg.seed, gen, s.episodes), generation=gen
        )
        gen += 1
    return problem.cache_records()


def one(src: RunFolder, seed: int, args: argparse.Namespace, work: Path) -> dict[str, float]:
    raw = config_to_dict(src.load_config())
    raw["seed"] = seed
    raw["search"].update(pop=args.pop, gens=args.gens)
    if args.episodes:
        raw["search"]["episodes"] = args.episodes
    cfg = config_from_dict(raw)
    root = work / f"{src.root.name}-seed{seed}"
    if root.exists():
        shutil.rmtree(root)
    run = scratch_run(src, cfg, root)
    t0 = time.perf_counter()
    evolve(cfg, run, progress=False)
    t_nsga = time.perf_counter() - t0
    state = json.loads((run.search / "state.json").read_text())
    norm = Normalisation.from_dict(state["normalisation"])
    ref = np.asarray(state["reference_point"], dtype=float)
    records = state["cache"]
    final = json.loads((run.search / "front.json").read_text())
    ev = PopulationEvaluator(load_supernet(cfg, run.supernet_weights), cfg)
    try:
        t0 = time.perf_counter()
        rand = random_search(cfg, ev, len(records), norm, seed)
        t_rand = time.perf_counter() - t0
        random_hv, random_best = delivered_hv(cfg, ev, rand, norm, final)
        best = max([random_best] + [float(m["normalised_return"]) for m in final["front"]])
        out = {
            "nsga2_hv": float(final["hypervolume"]),
            "random_hv": random_hv,
            "ideal_hv": ideal_hv(cfg, final, best),
            "nsga2_archive_hv": archive_hv(records, norm, ref),
            "random_archive_hv": archive_hv(rand, norm, ref),
            "evaluations": float(len(records)),
            "random_evaluations": float(len(rand)),
            "nsga2_s": t_nsga,
            "random_s": t_rand,
        }
    finally:
        ev.close()
    print(
        f"  {src.root.name} seed {seed}: delivered HV NSGA-II {out['nsga2_hv']:.4f} vs random "
        f"{out['random_hv']:.4f} (ideal {out['ideal_hv']:.4f}); "
        f"archive HV {out['nsga2_archive_hv']:.4f} vs "
        f"{out['random_archive_hv']:.4f}; {len(records)} vs {len(rand)} evaluations, "
        f"{t_nsga:.0f} s / {t_rand:.0f} s",
        flush=True,
    )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", action="append", required=True, help="run folder (repeatable)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--pop", type=int, default=64)
    p.add_argument("--gens", type=int, default=20)
    p.add_argument("--episodes", type=int, default=0, help="0: the run's search.episodes")
    p.add_argument("--out", default="", help="scratch folder (default: a temporary one)")
    args = p.parse_args()
    work = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench_search_"))
    work.mkdir(parents=True, exist_ok=True)
    parts = []
    for path in args.run:
        src = RunFolder(path)
        cfg = src.load_config()
        print(
            f"{cfg.env.id} ({path}): pop {args.pop} x {args.gens} generations, "
            f"seeds 0..{args.seeds - 1}"
        )
        res = [one(src, s, args, work) for s in range(args.seeds)]

        def ms(v: list[float]) -> str:
            return f"{statistics.mean(v):.4f}+-{statistics.pstdev(v):.4f}"

        env = cfg.env.id.replace("/", "_")
        for kind, ours, theirs in (
            ("delivered", "nsga2_hv", "random_hv"),
            ("archive", "nsga2_archive_hv", "random_archive_hv"),
        ):
            ns = [r[ours] for r in res]
            rs = [r[theirs] for r in res]
            ahead = sum(a > b for a, b in zip(ns, rs, strict=True))
            ties = sum(a == b for a, b in zip(ns, rs, strict=True))
            print(
                f"  {kind} HV: NSGA-II {ms(ns)}, random {ms(rs)}; NSGA-II ahead on "
                f"{ahead}/{len(ns)} seeds, tied on {ties}"
            )
            tag = "" if kind == "delivered" else "_archive"
            if kind == "delivered":
                ideal = [r["ideal_hv"] for r in res]
                at = sum(min(a, b) >= c for a, b, c in zip(ns, rs, ideal, strict=True))
                print(f"  ideal HV {ms(ideal)}; both searches at it on {at}/{len(ns)} seeds")
                parts += [f"{env}_ideal_hv={ms(ideal)}", f"{env}_both_ideal={at}/{len(ns)}"]
            parts += [
                f"{env}_nsga2{tag}_hv={ms(ns)}",
                f"{env}_random{tag}_hv={ms(rs)}",
                f"{env}{tag}_ahead={ahead}/{len(ns)}",
            ]
    print("RESULT " + " ".join(parts))


if __name__ == "__main__":
    main()
