"""Search quality at equal env steps: noise-aware NSGA-II vs today's NSGA-II vs random search.

For every run folder given (a trained teacher and supernet, e.g. from ``a2d-evo demo`` or the
train commands), every seed and every budget in env steps, in a scratch copy of the run folder:

Pick methods with ``--methods`` (at least one ``evolve``-based one: the first of them fixes
the normalisation every method is scored with):

* ``nsga2``: ``evolve`` with the run's own config (survivors re-scored every generation,
  objectives the mean over every episode an arch played), ``search.budget_steps`` = the budget;
* ``nsga2_reset``: ``evolve`` with ``search.mutation=reset`` (random-reset mutation), the same
  budget (the same search as ``nsga2`` on a config that already sets it, as the shipped ones
  do: the script says so);
* ``nsga2_poly``: ``evolve`` with ``search.mutation=polynomial`` (pymoo's polynomial mutation,
  rounded: the schema's default), the same budget;
* ``nsga2_front``: ``evolve`` with ``search.reevaluate_ranks=1``: only the survivors on the
  current first front replay each generation, the same budget;
* ``nsga2_cached``: ``evolve`` with ``search.reevaluate=false`` (each arch's first estimate kept
  for good: the search before noise-aware evaluation), the same budget;
* ``nsga2_NAME`` (``--variant NAME=key:value,...``, repeatable): ``evolve`` with those
  ``search`` settings on top of the run's config, the same budget (for tuning, e.g.
  ``--variant p32=pop:32,mutation:reset``);
* ``random``: batches of ``pop`` distinct random archs, batch g on generation g's seeds, until
  the budget is spent (the same stop rule: no batch starts once it is);
* ``random_shrunk``: random search whose delivery ranks its candidates on shrunk estimates
  (``search.estimate: shrunk``, :mod:`a2d_evo.search.estimates`) instead of plain means; it
  plays the ``search.anchors`` those estimates measure seed effects on, inside its budget;
* ``random_strata``: the same as ``random``, each batch drawn with the log10-FLOPs strata
  taking turns (the sampler of ``search.init: strata``);
* ``smsemoa`` (with ``--smsemoa``): stock pymoo SMS-EMOA through the same ``SubnetProblem``
  (survivors re-scored too), the same operators and budget.

Every method spends its budget in env steps (episode lengths summed): a batch or generation
that crosses the budget is played in full, but every method's front is chosen from the
episodes within the budget only (:func:`a2d_evo.search.budget.within_budget`, a per-episode
cut in play order), so each uses at most the budget plus one episode whatever its generation
costs (the table shows what each used, and what it played past the budget). Every method's
front is delivered the same way
(:func:`a2d_evo.search.front.write_front`): its archive's top fronts raced by successive
halving on fresh seeds, the survivors re-scored on ``final_episodes`` fresh seeds, the same
seeds for every method (they depend on the run seed alone). The headline is the delivered
front's hypervolume on ``(-normalised return, log10 FLOPs)`` with the reference point
``(0, log10(1.1 x the costliest arch's FLOPs))``. Several budgets (``--budget-steps
20000,100000``) show whether the search is ahead early, not only at the end.

Ends with one ``RESULT`` line.

    python benchmarks/bench_search.py --run runs/cartpole --run runs/acrobot [--seeds 3]
        [--pop 64] [--episodes N] [--final-episodes N] [--budget-steps 50000,200000] [--smsemoa]
        [--out DIR]
        [--methods nsga2,random] [--variant NAME=key:value,...] [--results FILE.json]
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import statistics
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from a2d_evo.config import Config, config_from_dict, config_to_dict
from a2d_evo.config.bounds import MAX_GENS
from a2d_evo.envs import env_spec
from a2d_evo.evaluation.population import PopulationEvaluator
from a2d_evo.evaluation.seeds import generation_seeds
from a2d_evo.formats import Normalisation
from a2d_evo.nets.agent_folder import load_agent
from a2d_evo.nets.cost import flops
from a2d_evo.nets.space import SearchSpace
from a2d_evo.nets.supernet import load_supernet
from a2d_evo.runs.files import read_json, write_json
from a2d_evo.runs.folder import RunFolder
from a2d_evo.search.budget import budget_spent, within_budget
from a2d_evo.search.estimates import search_anchors
from a2d_evo.search.evolution import evolve
from a2d_evo.search.front import SearchSummary, write_front
from a2d_evo.search.generation import play_generation
from a2d_evo.search.problem import CanonicalDuplicates, SubnetProblem, reference_point
from a2d_evo.train.sampling import SubnetSampler

METHODS = (
    "nsga2",
    "nsga2_reset",
    "nsga2_poly",
    "nsga2_front",
    "nsga2_cached",
    "random",
    "random_strata",
    "random_shrunk",
    "smsemoa",
)
OVERRIDES: dict[str, dict[str, Any]] = {
    "nsga2_reset": {"mutation": "reset"},
    "nsga2_poly": {"mutation": "polynomial"},
    "nsga2_front": {"reevaluate_ranks": 1},
    "nsga2_cached": {"reevaluate": False},
    "random_shrunk": {"estimate": "shrunk"},
}
"""``search`` settings each variant changes from the run's config."""


def scratch_run(src: RunFolder, cfg: Config, root: Path) -> RunFolder:
    """A fresh run folder holding copies of ``src``'s teacher agent and supernet weights."""
    if root.exists():
        shutil.rmtree(root)
    run = RunFolder(root)
    run.bind(cfg)
    shutil.copytree(src.teacher_agent, run.teacher_agent)
    run.supernet_weights.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src.supernet_weights, run.supernet_weights)
    return run


def bench_config(
    src: RunFolder, seed: int, budget: int, method: str, args: argparse.Namespace
) -> Config:
    raw = config_to_dict(src.load_config())
    raw["seed"] = seed
    # every method is delivered from the same number of candidates, whatever its own pop
    raw["search"].update(pop=args.pop, candidates=args.pop, gens=MAX_GENS, budget_steps=budget)
    raw["search"].update(OVERRIDES.get(method, {}))
    raw["search"].update(args.variants.get(method, {}))
    if args.episodes:
        raw["search"]["episodes"] = args.episodes
    if args.final_episodes:
        raw["search"]["final_episodes"] = args.final_episodes
    return config_from_dict(raw)


def own_loop(
    method: str, cfg: Config, run: RunFolder, ev: PopulationEvaluator, norm: Normalisation
) -> dict[str, Any]:
    """Random search or SMS-EMOA on ``cfg.search.budget_steps``, delivered like ``evolve``."""
    s = cfg.search
    space = SearchSpace(cfg.space)
    spec = env_spec(cfg.env)
    obs_shape, n_actions = tuple(spec.obs_shape), int(spec.n_actions)
    evaluate = functools.partial(ev.evaluate, max_episode_steps=s.max_episode_steps)
    problem = SubnetProblem(
        space, evaluate, obs_shape, n_actions, norm, s.episodes, s.max_flops,
        reevaluate=not method.startswith("random"), max_arch_episodes=s.max_arch_episodes,
        estimate=s.estimate, anchors=search_anchors(cfg, space, obs_shape, n_actions),
    )  # fmt: skip
    gen, stopped_by = 0, "gens"
    if method.startswith("random"):
        rng = np.random.default_rng([cfg.seed, 0xA11D0])
        strata = None
        if method == "random_strata":
            strata = SubnetSampler(space, obs_shape, n_actions, "strata")
        while not budget_spent(problem, s.budget_steps):
            if strata is not None:
                draws = strata.balanced(rng, 50 * s.pop)
            else:
                draws = space.sample_encodings(rng, 50 * s.pop)
            fresh = {space.key(x): x for x in draws}
            # archs over search.max_flops are never played (no record): not fresh either,
            # and checked here, so each batch holds pop archs that play (the problem names
            # an arch over the ceiling only once it was offered one)
            batch = [
                x
                for k, x in fresh.items()
                if k not in problem.cache
                and k not in problem.over_ceiling
                and problem.within_ceiling(x)
            ][: s.pop]
            if not batch:
                stopped_by = "space exhausted"
                break
            seeds = generation_seeds(cfg.seed, gen, s.episodes)
            problem.evaluate(np.stack(batch), seeds=seeds, generation=gen)
            gen += 1
    else:
        from pymoo.algorithms.moo.sms import SMSEMOA
        from pymoo.core.termination import NoTermination

        from a2d_evo.search.nsga import make_algorithm

        nsga = make_algorithm(cfg, space, obs_shape, n_actions)  # the same operators
        algorithm = SMSEMOA(
            pop_size=s.pop,
            sampling=nsga.initialization.sampling,
            crossover=nsga.mating.crossover,
            mutation=nsga.mating.mutation,
            eliminate_duplicates=CanonicalDuplicates(space),
            seed=cfg.seed,
        )
        algorithm.setup(problem, termination=NoTermination(), verbose=False)
        while not budget_spent(problem, s.budget_steps):
            seeds = generation_seeds(cfg.seed, gen, s.episodes)
            if not play_generation(algorithm, problem, seeds, gen, s.reevaluate_ranks):
                stopped_by = "space exhausted"
                break
            gen += 1
    if budget_spent(problem, s.budget_steps):
        stopped_by = "budget_steps"
    teacher = load_agent(run.teacher_agent)
    folder = run.root / method
    folder.mkdir(parents=True, exist_ok=True)
    records, cut = within_budget(problem.cache_records(), s.budget_steps, s.budget_cut)
    path = write_front(
        folder,
        cfg,
        records,
        supernet=ev.supernet,
        teacher=teacher,
        teacher_flops=flops(teacher.arch, obs_shape, n_actions),
        evaluator=ev,
        norm_search=norm,
        ref=reference_point(space, obs_shape, n_actions),
        summary=SearchSummary(gen, stopped_by, **asdict(cut)),
    )
    front: dict[str, Any] = json.loads(path.read_text())
    return front


def one(
    src: RunFolder, seed: int, budget: int, methods: list[str], args: argparse.Namespace, work: Path
) -> dict[str, dict[str, float]]:
    """Every method on one seed and budget: delivered HV, env steps, generations, seconds."""
    out: dict[str, dict[str, float]] = {}
    norm: Normalisation | None = None
    for method in methods:
        cfg = bench_config(src, seed, budget, method, args)
        run = scratch_run(src, cfg, work / f"{src.root.name}-s{seed}-b{budget}-{method}")
        t0 = time.perf_counter()
        if method.startswith("nsga2"):
            front = json.loads(evolve(cfg, run, progress=False).read_text())
            norm = norm or Normalisation.from_dict(front["search"]["normalisation"])
        else:
            if norm is None:
                raise SystemExit(f"{method}: run it with nsga2 (its normalisation is shared)")
            ev = PopulationEvaluator(load_supernet(cfg, run.supernet_weights), cfg)
            try:
                front = own_loop(method, cfg, run, ev, norm)
            finally:
                ev.close()
        ran, delivery = front["search"], front["delivery"]
        out[method] = {
            "hv": float(front["hypervolume"]),
            # the members' own staircase, no envelope: not lifted by the final seeds' noise
            # (docs/search.md); the member count then gives no free lift
            "hv_staircase": float(front["hypervolume_staircase"]),
            "best": max(float(e["normalised_return"]) for e in front["front"]),
            # members no other dominates on the final seeds: what "size" meant before
            # 2026-12-05, when front.json dropped the others (it keeps them since)
            "size": float(len(front["front"]) - int(ran.get("dominated_on_final_seeds", 0))),
            "env_steps": float(ran["env_steps"]),
            "episodes": float(ran["episodes_played"]),
            "discarded_env_steps": float(ran.get("discarded_env_steps", 0)),
            "generations": float(ran["generations"]),
            "evaluations": float(ran["evaluations"]),
            "delivery_steps": float(delivery["halving_env_steps"] + delivery["final_env_steps"]),
            "s": time.perf_counter() - t0,
        }
    print(
        f"  {src.root.name} seed {seed} budget {budget:,}: "
        + "; ".join(
            f"{m} HV {r['hv']:.4f} (staircase {r['hv_staircase']:.4f}, best {r['best']:.3f}, "
            f"{r['size']:.0f} members, "
            f"{r['env_steps']:,.0f} steps, {r['generations']:.0f} gens, "
            f"{r['evaluations']:.0f} archs, {r['s']:.0f} s)"
            for m, r in out.items()
        ),
        flush=True,
    )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", action="append", required=True, help="run folder (repeatable)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=100, help="reporting seeds start here")
    p.add_argument("--pop", type=int, default=64)
    p.add_argument("--episodes", type=int, default=0, help="0: the run's search.episodes")
    p.add_argument(
        "--final-episodes",
        type=int,
        default=0,
        help="episodes each delivered member is re-scored on (0: the run's search.final_episodes)",
    )
    p.add_argument(
        "--budget-steps", default="100000", help="env steps per method, comma-separated budgets"
    )
    p.add_argument("--smsemoa", action="store_true", help="also stock pymoo SMS-EMOA")
    p.add_argument("--methods", default="", help="comma-separated subset of " + ",".join(METHODS))
    p.add_argument("--out", default="", help="scratch folder (default: a temporary one)")
    p.add_argument(
        "--results",
        default="",
        help="JSON file of every (run, budget, seed) result, written as each one ends; a "
        "re-run with the same file skips what it holds (resume)",
    )
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        help="NAME=key:value,...: also run nsga2_NAME, evolve with these search settings "
        "(repeatable)",
    )
    args = p.parse_args()
    args.variants = {}
    for spec in args.variant:
        name, _, settings = spec.partition("=")
        try:
            pairs = [item.split(":", 1) for item in settings.split(",") if item]
            args.variants[f"nsga2_{name}"] = {k: yaml.safe_load(v) for k, v in pairs}
        except ValueError:
            p.error(f"--variant: NAME=key:value,... expected, got {spec!r}")
    budgets = [int(b) for b in args.budget_steps.split(",")]
    methods = [m for m in METHODS if m != "smsemoa" or args.smsemoa]
    if args.methods:
        methods = [m for m in args.methods.split(",") if m]
        unknown = sorted(set(methods) - set(METHODS))
        if unknown:
            p.error(f"--methods: pick from {', '.join(METHODS)}, got {args.methods}")
        methods = [m for m in METHODS if m in methods]
    # the evolve-based methods first: the first one fixes the normalisation every method uses
    evolved = [m for m in methods if m.startswith("nsga2")] + list(args.variants)
    if not evolved:
        p.error("--methods: name nsga2 or one of its variants (it fixes the normalisation)")
    methods = evolved + [m for m in methods if not m.startswith("nsga2")]
    results_path = Path(args.results) if args.results else None
    done: dict[str, Any] = {}
    if results_path is not None and results_path.is_file():
        done = read_json(results_path, "bench_search results")
    work = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench_search_"))
    work.mkdir(parents=True, exist_ok=True)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    parts = []
    for path in args.run:
        src = RunFolder(path)
        env = src.load_config().env.id
        print(f"{env} ({path}): pop {args.pop}, budgets {budgets} env steps, seeds {seeds}")
        # a variant whose search settings are nsga2's (as the benchmark sets them) is nsga2
        # again: say so
        base = bench_config(src, 0, budgets[0], "nsga2", args).search
        for m in methods:
            changes = {**OVERRIDES, **args.variants}.get(m)
            if changes and m != "nsga2" and m.startswith("nsga2"):
                if bench_config(src, 0, budgets[0], m, args).search == base:
                    print(f"  {m}: the run's config already sets {changes}, so it is nsga2 again")
        for budget in budgets:
            res = []
            for seed in seeds:
                key = (
                    f"{Path(path).resolve()}|{budget}|{seed}|{','.join(methods)}|pop{args.pop}"
                    f"|episodes{args.episodes}"
                    + "".join(f"|{k}{sorted(v.items())}" for k, v in args.variants.items())
                    + (f"|final{args.final_episodes}" if args.final_episodes else "")
                )
                if key not in done:
                    done[key] = one(src, seed, budget, methods, args, work)
                    if results_path is not None:
                        results_path.parent.mkdir(parents=True, exist_ok=True)
                        write_json(results_path, done)
                res.append(done[key])

            def ms(v: list[float]) -> str:  # the sample std across seeds (n - 1)
                sd = statistics.stdev(v) if len(v) > 1 else 0.0
                return f"{statistics.mean(v):.4f}+-{sd:.4f}"

            tag = f"{env.replace('/', '_')}_b{budget}"
            for m in methods:
                hv = [r[m]["hv"] for r in res]
                steps = statistics.mean(r[m]["env_steps"] for r in res)
                # the delivery (halving + final re-scoring) is not held equal: say what it took
                extra = statistics.mean(r[m].get("delivery_steps", float("nan")) for r in res)
                line = (f"    {m:>13}: delivered HV {ms(hv)}, {steps:,.0f} env steps spent "
                        f"searching, {extra:,.0f} delivering")  # fmt: skip
                # against random, nsga2's own line says it (one RESULT key, not two)
                if m not in ("nsga2", "random") and "nsga2" in methods:
                    ahead = sum(r["nsga2"]["hv"] > r[m]["hv"] for r in res)
                    line += f"; nsga2 ahead on {ahead}/{len(res)} seeds"
                    parts.append(f"{tag}_nsga2_ahead_of_{m}={ahead}/{len(res)}")
                if m != "random" and "random" in methods:
                    ahead = sum(r[m]["hv"] > r["random"]["hv"] for r in res)
                    gap = statistics.mean(hv) - statistics.mean(r["random"]["hv"] for r in res)
                    line += f"; ahead of random on {ahead}/{len(res)} seeds, mean gap {gap:+.4f}"
                    parts.append(f"{tag}_{m}_ahead_of_random={ahead}/{len(res)}")
                    # both methods share each seed's generation, halving and final seeds: the
                    # per-seed differences are the paired yardstick (the std across seeds of
                    # each method also holds what the seeds share)
                    diffs = [r[m]["hv"] - r["random"]["hv"] for r in res]
                    if len(diffs) > 1:
                        sd = statistics.stdev(diffs)
                        t = gap / (sd / len(diffs) ** 0.5) if sd > 0 else float("nan")
                        line += f", paired sd {sd:.4f}, paired t {t:+.2f} ({len(diffs) - 1} df)"
                        parts.append(f"{tag}_{m}_paired_t={t:.2f}")
                print(line)
                parts.append(f"{tag}_{m}_hv={ms(hv)}")
                # the same on the staircase HV (results from before it have none)
                stair = [r[m]["hv_staircase"] for r in res if "hv_staircase" in r[m]]
                if len(stair) == len(res):
                    line = f"    {m:>13}: staircase HV {ms(stair)}"
                    if m != "random" and "random" in methods:
                        rand = [r["random"]["hv_staircase"] for r in res]
                        ahead = sum(a > b for a, b in zip(stair, rand, strict=True))
                        gap = statistics.mean(stair) - statistics.mean(rand)
                        line += f"; ahead of random on {ahead}/{len(res)} seeds, gap {gap:+.4f}"
                    print(line)
                    parts.append(f"{tag}_{m}_hv_staircase={ms(stair)}")
                parts.append(f"{tag}_{m}_steps={steps:.0f}+{extra:.0f}")
    print("RESULT " + " ".join(parts))


if __name__ == "__main__":
    main()
