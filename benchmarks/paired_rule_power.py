"""What lead the paired dominance rule asks of a member on the episodes it had (issue [J]).

The rule (``stats.best_paired``, ``pipeline_compare.py``): a baseline is dominated when a
member at or under its FLOPs has a paired difference in normalised return (member - baseline,
per episode seed) whose 95% lower bound (:func:`a2d_evo.stats.paired_lower95`) is above
``-margin``. The bound is ``mean - t95(n) * sd / sqrt(n)``, so a member passes only when its
mean lead is above ``t95(n) * sd / sqrt(n) - margin``: with the spread of LunarLander's paired
differences (a crash in one agent's episode and not the other's moves the difference by about
0.6 normalised) a member level with a baseline in the mean is not counted, however close.

Re-reads ``pipeline_compare.py``'s ``compare.json`` files (per-episode returns kept) and prints,
per distilled baseline (``distill_x``, ``a2d_x``; ``ppo_x`` are far below and pass), the member
the file named best: its mean lead, the sample standard deviation of the paired differences,
the lead the rule asks at these episodes, and how many paired episodes a member level in the
mean (lead 0) would need at that spread (the smallest n with ``t95(n) * sd / sqrt(n) < margin``).

    python benchmarks/paired_rule_power.py \
        benchmarks/results/j_pipeline_lunarlander_1207_s10{0,1,2}.json
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np

from a2d_evo.stats import NONINFERIORITY_MARGIN, paired_lower95, t95


def episodes_needed(sd: float, margin: float) -> int:
    """The fewest paired episodes at which a member level in the mean passes (``sd`` of the
    differences held fixed): ``t95(n) * sd / sqrt(n) < margin``."""
    if margin <= 0:
        raise ValueError(f"--margin must be > 0, got {margin}: no count of episodes passes")
    n = 2
    while t95(n) * sd / math.sqrt(n) >= margin:
        n += 1
    return n


class Row(NamedTuple):
    """One distilled baseline against the member the file named best for it."""

    seed: int
    baseline: str
    member: str
    episodes: int
    lead: float
    sd: float
    bound: float | None
    asks: float
    dominated: bool
    level_needs: int


def rows(path: Path, margin: float) -> list[Row]:
    """One row per distilled baseline of one ``compare.json``."""
    data = json.loads(path.read_text())
    span = data["r_teacher"] - data["r_random"]
    members = {m["name"]: np.asarray(m["episode_returns"], float) for m in data["members"]}
    out: list[Row] = []
    for b in data["baselines"]:
        if b["baseline"].startswith("ppo_") or b.get("best_member") not in members:
            continue
        member, base = members[b["best_member"]] / span, np.asarray(b["episode_returns"]) / span
        diff = member - base
        n, sd = diff.size, float(diff.std(ddof=1))
        out.append(Row(
            data["seed"], b["baseline"], b["best_member"], n, float(diff.mean()), sd,
            paired_lower95(member, base), t95(n) * sd / math.sqrt(n) - margin,
            bool(b["dominated"]), episodes_needed(sd, margin),
        ))  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path, help="pipeline_compare.py compare.json files")
    ap.add_argument("--margin", type=float, default=NONINFERIORITY_MARGIN)
    args = ap.parse_args()
    print("| seed | baseline | member | n | mean lead | sd | lead asked | dominated | "
          "episodes a level member needs |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    every = [r for f in args.files for r in rows(f, args.margin)]
    for r in every:
        print(f"| {r.seed} | {r.baseline} | {r.member} | {r.episodes} | {r.lead:+.3f} | "
              f"{r.sd:.3f} | {r.asks:+.3f} | {'yes' if r.dominated else 'no'} | "
              f"{r.level_needs} |")  # fmt: skip
    asks = sorted(r.asks for r in every)
    needs = sorted(r.level_needs for r in every)
    print(
        f"RESULT baselines {len(every)} lead_asked_median {np.median(asks):+.3f} "
        f"range {asks[0]:+.3f}..{asks[-1]:+.3f} level_member_needs_median "
        f"{int(np.median(needs))} episodes"
    )


if __name__ == "__main__":
    main()
