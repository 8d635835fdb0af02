"""How often the paired dominance rule calls a baseline dominated by mistake (issue [J]).

The rule (``formats.best_paired``, the report's paired dominance, ``pipeline_compare.py``):
a baseline is dominated when the BEST of the k cheaper front members has a 95% lower bound
(``formats.paired_lower95``) of the paired difference above ``-margin``. With k members that is
k chances. Simulated here: n paired episodes, a per-seed effect shared by every agent (sd
``--shared``), independent noise per agent (sd ``--noise``), and every member's true
difference exactly ``-margin`` (the boundary, where a "dominated" verdict is an error). Prints
the error rate per k for the shipped rule and for the rule with Bonferroni's z (1 - 0.025 / k).

With ``--reread FILE...`` it re-reads ``pipeline_compare.py``'s ``compare.json`` files instead:
per baseline, the recorded best member's paired bound again with Bonferroni's z for the k
members at or under its FLOPs (the standard error backed out of the recorded bound), and the
count of dominated baselines either way.

    python benchmarks/paired_rule_multiplicity.py
    python benchmarks/paired_rule_multiplicity.py --reread \
        benchmarks/results/j_pipeline_lunarlander_gate_s10{0,1,2}.json
"""

from __future__ import annotations

import argparse
from pathlib import Path
from statistics import NormalDist

import numpy as np

from a2d_evo.files import read_json
from a2d_evo.formats import NONINFERIORITY_MARGIN, Z95, best_paired


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
        else:  # Bonferroni: the same test at level 0.025 / k per member
            d = [a - b for _, a in members]
            lows = [x.mean() - z * x.std(ddof=1) / np.sqrt(n) for x in d]
            wrong += max(lows) > -margin
    return wrong / trials


def reread(path: str, margin: float) -> tuple[int, int, int]:
    """``(dominated, dominated with Bonferroni's z, baselines)`` of one ``compare.json``."""
    data = read_json(Path(path), "compare")
    members = {m["name"]: m for m in data["members"]}
    shipped = corrected = 0
    for b in data["baselines"]:
        if b["best_member"] is None:
            continue
        k = sum(m["flops"] <= b["flops"] for m in data["members"])
        diff = members[b["best_member"]]["normalised"] - b["normalised"]
        se = (diff - b["paired_lower95"]) / Z95
        z = NormalDist().inv_cdf(1 - 0.025 / k)
        shipped += b["paired_lower95"] > -margin
        corrected += diff - z * se > -margin
        print(f"| {data['seed']} | {b['baseline']} | {k} | {b['paired_lower95']:+.4f} | "
              f"{diff - z * se:+.4f} (z {z:.3f}) |")  # fmt: skip
    return shipped, corrected, len(data["baselines"])


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
        print(
            "| seed | baseline | k | shipped bound | Bonferroni bound |\n|---|---|---:|---:|---:|"
        )
        counts = [reread(f, margin) for f in args.reread]
        print("RESULT dominated " + " ".join(f"{a}/{n}" for a, _, n in counts)
              + " bonferroni " + " ".join(f"{c}/{n}" for _, c, n in counts))  # fmt: skip
        return
    print(f"n {args.episodes} paired episodes, shared sd {args.shared}, noise sd {args.noise}, "
          f"true difference -{margin} for every member, {args.trials} trials per row")  # fmt: skip
    print("| cheaper members k | false 'dominated', shipped rule | with Bonferroni's z |")
    print("|---:|---:|---:|")
    for k in (int(x) for x in args.ks.split(",")):
        z = NormalDist().inv_cdf(1 - 0.025 / k)
        rates = [error_rate(k, args.episodes, args.trials, args.shared, args.noise, margin, zz,
                            np.random.default_rng(args.seed)) for zz in (None, z)]  # fmt: skip
        print(f"| {k} | {rates[0]:.3f} | {rates[1]:.3f} (z {z:.3f}) |", flush=True)
    print("RESULT nominal=0.025")


if __name__ == "__main__":
    main()
