"""How often the paired dominance rule calls a baseline dominated by mistake (issue [J]).

The rule (``stats.best_paired``, the report's paired dominance, ``pipeline_compare.py``):
a baseline is dominated when the BEST of the k cheaper front members has a 95% lower bound
(``stats.paired_lower95``) of the paired difference above ``-margin``. With k members that is
k chances. Simulated here: n paired episodes, a per-seed effect shared by every agent (sd
``--shared``), independent noise per agent (sd ``--noise``), and every member's true
difference exactly ``-margin`` (the boundary, where a "dominated" verdict is an error). Prints
the error rate per k for the shipped rule and for the rule with Bonferroni's z (1 - 0.025 / k).

With ``--reread FILE...`` it re-reads ``pipeline_compare.py``'s ``compare.json`` files instead:
per baseline, the best paired bound again with the rule shipped now (Student's t,
:func:`a2d_evo.stats.t95`) and with Bonferroni's correction of it for the k members at or
under its FLOPs, and the count of dominated baselines each way. Files with per-episode
returns are re-read over every such member under each quantile (the best member depends on
the quantile); older files over the recorded best alone, its standard error backed out of its
bound with the quantile the file was written with (``bound_quantile``, or the normal one
before 2026-12-05), so their Bonferroni counts are lower bounds (``every_member no``).

The rule's quantile is Student's t since 2026-12-05 (the normal one before): the simulation's
"shipped rule" column is that of the code it runs with; Bonferroni's column uses
``t(1 - 0.025 / k, n - 1)``.

    python benchmarks/paired_rule_multiplicity.py
    python benchmarks/paired_rule_multiplicity.py --reread \
        benchmarks/results/j_pipeline_lunarlander_gate_s10{0,1,2}.json
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import t as student_t

from a2d_evo.runs.files import read_json
from a2d_evo.stats import NONINFERIORITY_MARGIN, Z95, best_paired, t95


def error_rate(k: int, n: int, trials: int, shared: float, noise: float, margin: float,
               z: float | None, rng: np.random.Generator) -> float:  # fmt: skip
    """Fraction of trials in which some member's bound clears ``-margin``."""
    wrong = 0
    for _ in range(trials):
        seed_effect = rng.normal(0.0, shared, n)
        b = seed_effect + rng.normal(0.0, noise, n)
        members = [(j, seed_effect - margin + rng.normal(0.0, noise, n)) for j in range(k)]
        if z is None:
            best, _ = best_paired(b, members)
            wrong += best is not None and best[1] > -margin
        else:  # Bonferroni: the same test at level 0.025 / k per member, quantile z
            d = [a - b for _, a in members]
            lows = [x.mean() - z * x.std(ddof=1) / np.sqrt(n) for x in d]
            wrong += max(lows) > -margin
    return wrong / trials


def bonferroni_t(k: int, n: int) -> float:
    """Student's t quantile of the two-sided 95% test split over ``k`` members."""
    return float(student_t.ppf(1 - 0.025 / k, n - 1))


def _best_bound(b: Any, members: list[Any], span: float, q: float) -> float:
    """The highest ``mean(d) - q * s(d) / sqrt(n)`` over ``members`` of the paired
    normalised differences ``d`` (per-episode returns over ``span``): the member the rule
    takes depends on ``q``, so each quantile takes its own best."""
    y = np.asarray(b, dtype=np.float64)
    bounds = []
    for a in members:
        d = (np.asarray(a, dtype=np.float64) - y) / span
        bounds.append(d.mean() - q * d.std(ddof=1) / np.sqrt(d.size))
    return float(max(bounds))


def reread(path: str, margin: float) -> tuple[int, int, int, int, bool]:
    """``(dominated as recorded, under the shipped t rule, with Bonferroni's t, baselines,
    every member re-read)`` of one ``compare.json``. With per-episode returns (files since
    2026-12-05) every member at or under a baseline's FLOPs is bounded again under each
    quantile; without, only the recorded best, its standard error backed out of its bound,
    so a count under a larger quantile is a lower bound (another member with a smaller
    standard error may clear the margin where the recorded best no longer does)."""
    data = read_json(Path(path), "compare")
    members = {m["name"]: m for m in data["members"]}
    n = len(data["seeds"])
    span = data["r_teacher"] - data["r_random"]
    written = t95(n) if data.get("bound_quantile") == "t" else Z95
    every = all("episode_returns" in m for m in data["members"]) and all(
        "episode_returns" in b for b in data["baselines"]
    )
    recorded = shipped = corrected = 0
    for b in data["baselines"]:
        if b["best_member"] is None:
            continue
        cheaper = [m for m in data["members"] if m["flops"] <= b["flops"]]
        k, q = len(cheaper), bonferroni_t(len(cheaper), n)
        if every:
            returns = [m["episode_returns"] for m in cheaper]
            t_bound = _best_bound(b["episode_returns"], returns, span, t95(n))
            q_bound = _best_bound(b["episode_returns"], returns, span, q)
        else:
            diff = members[b["best_member"]]["normalised"] - b["normalised"]
            se = (diff - b["paired_lower95"]) / written
            t_bound, q_bound = diff - t95(n) * se, diff - q * se
        recorded += b["paired_lower95"] > -margin
        shipped += t_bound > -margin
        corrected += q_bound > -margin
        print(f"| {data['seed']} | {b['baseline']} | {k} | {b['paired_lower95']:+.4f} | "
              f"{t_bound:+.4f} | {q_bound:+.4f} (t {q:.3f}) |")  # fmt: skip
    return recorded, shipped, corrected, len(data["baselines"]), every


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ks", default="1,2,3,6,10")
    p.add_argument("--episodes", type=int, default=30)
    p.add_argument("--trials", type=int, default=20000)
    p.add_argument("--shared", type=float, default=0.3)
    p.add_argument("--noise", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reread", nargs="+", metavar="COMPARE_JSON")
    args = p.parse_args()
    margin = NONINFERIORITY_MARGIN
    if args.reread:
        print("| seed | baseline | k | recorded bound | t bound (shipped) | Bonferroni t bound |"
              "\n|---|---|---:|---:|---:|---:|")  # fmt: skip
        counts = [reread(f, margin) for f in args.reread]
        print("RESULT dominated as recorded " + " ".join(f"{a}/{n}" for a, _, _, n, _ in counts)
              + " t " + " ".join(f"{b}/{n}" for _, b, _, n, _ in counts)
              + " bonferroni_t " + " ".join(f"{c}/{n}" for _, _, c, n, _ in counts)
              + " every_member " + " ".join("yes" if e else "no" for *_, e in counts))  # fmt: skip
        return
    print(f"n {args.episodes} paired episodes, shared sd {args.shared}, noise sd {args.noise}, "
          f"true difference -{margin} for every member, {args.trials} trials per row")  # fmt: skip
    print("| cheaper members k | false 'dominated', shipped rule | with Bonferroni's t |")
    print("|---:|---:|---:|")
    for k in (int(x) for x in args.ks.split(",")):
        q = bonferroni_t(k, args.episodes)
        rates = [error_rate(k, args.episodes, args.trials, args.shared, args.noise, margin, zz,
                            np.random.default_rng(args.seed)) for zz in (None, q)]  # fmt: skip
        print(f"| {k} | {rates[0]:.3f} | {rates[1]:.3f} (t {q:.3f}) |", flush=True)
    print("RESULT nominal=0.025")


if __name__ == "__main__":
    main()
