"""Summarise finished demo runs: the teacher, the delivered front, and issue [J] item 9's figure.

For each run folder (``a2d-evo demo --out RUN --seed S``) prints the teacher's greedy return,
R_teacher and R_random of the front's final seeds, every exported member and which ones the
delivered front keeps, how many of those the 95% intervals tell apart (the largest set of
mutually separate intervals, as the demo's table says) and the normalised span; then one
``RESULT`` line, whose ``item9_front_met`` counts the runs whose front meets item 9 (3 or
more members told apart that span at least 0.15 between them, ``span_told_apart``; the span
of every member, ``span_normalised``, gave the same verdict on each raw file of 103-135): its
time bound (12 minutes) is not in the run folder, read it from the demo's own ``total time``
line. ``--json`` writes the same as a file.

    python benchmarks/demo_summary.py runs/demo_s100 runs/demo_s101 runs/demo_s102 \
        --json benchmarks/results/j_demo_seeds_100-102.json
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from a2d_evo.runs.files import read_json, write_json
from a2d_evo.stats import ci95, tell_apart, told_apart_span


def summarise(run: Path) -> dict[str, Any]:
    """The figures of one finished demo run folder."""
    teacher = read_json(run / "teacher" / "agent" / "metrics.json")
    front = read_json(run / "search" / "front.json")
    delivered = read_json(run / "agents" / "delivered.json")
    rows = {r["agent"]: r for r in delivered["exported"]}
    members = [rows[name] for name in delivered["members"]]
    estimates = [(r["return_mean"], ci95(r["return_std"], r.get("episodes"))) for r in members]
    apart = tell_apart(estimates)
    norm = [r["normalised_return"] for r in members]
    keys = ("agent", "flops", "return_mean", "return_std", "episodes", "normalised_return",
            "inherited_return_mean", "kept")  # fmt: skip
    return {
        "teacher_return_mean": teacher["teacher_return_mean"],
        "teacher_episodes": teacher["episodes"],
        "r_teacher": front["normalisation"]["r_teacher"],
        "r_random": front["normalisation"]["r_random"],
        "front_json_members": len(front["front"]),
        "exported": [{k: r.get(k) for k in keys} for r in delivered["exported"]],
        "delivered": delivered["members"],
        "told_apart": [members[i]["agent"] for i in sorted(apart)],
        "span_normalised": max(norm) - min(norm) if norm else None,
        # item 9's span: of 3 or more members told apart (the widest such set)
        "span_told_apart": told_apart_span(estimates, norm),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="finished demo run folders")
    ap.add_argument("--json", type=Path, help="also write the summary here")
    ap.add_argument("--note", default="", help="what the runs were (seeds, machine, command)")
    args = ap.parse_args()
    out = {str(run): summarise(run) for run in args.runs}
    for run, s in out.items():
        # one member "apart" is no two told apart: the report says "none" (the JSON keeps
        # the member the rule returned, and the counts below 1, as BENCHMARKS reads them)
        apart = s["told_apart"]
        told = f"{len(apart)} ({', '.join(apart)})" if len(apart) > 1 else "none"
        wide = "none" if s["span_told_apart"] is None else f"{s['span_told_apart']:.3f}"
        print(
            f"{run}: teacher {s['teacher_return_mean']:.1f}, R_teacher {s['r_teacher']:.1f}, "
            f"R_random {s['r_random']:.1f}; delivered {len(s['delivered'])}, told apart "
            f"{told}, span {s['span_normalised']:.3f} (of 3 or more told apart: {wide})"
        )
    if args.json:
        write_json(args.json, {"note": args.note, "demos": out})
    counts = " ".join(f"{Path(r).name}={len(s['told_apart'])}" for r, s in out.items())
    met = sum((s["span_told_apart"] or 0.0) >= 0.15 for s in out.values())
    print(f"RESULT told_apart {counts} item9_front_met={met}/{len(out)}")


if __name__ == "__main__":
    main()
