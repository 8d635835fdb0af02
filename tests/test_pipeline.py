"""The whole command line end to end on a tiny CartPole budget: every stage's files and keys."""

from __future__ import annotations

import json
import math
import re
import shutil
import statistics
from pathlib import Path

import pytest
import torch
import yaml

from a2d_evo.cli import main
from a2d_evo.config import load_config
from a2d_evo.evaluation.episodes import random_policy_return
from a2d_evo.formats import FRONT_FORMAT_VERSION, METRICS_KEYS
from a2d_evo.nets.agent import Agent
from a2d_evo.nets.agent_folder import load_agent
from a2d_evo.runs.files import file_digest, torch_save

pytestmark = pytest.mark.slow

TINY = {
    "seed": 3,
    "torch_threads": 1,
    "env": {"id": "CartPole-v1"},
    "space": {"kind": "mlp", "depths": [1, 2], "widths": [4, 8, 16, 32, 64]},
    "ppo": {"num_envs": 4, "num_steps": 64, "num_minibatches": 2, "update_epochs": 2,
            "clip_coef": 0.2, "ent_coef": 0.0, "lr": 1e-3},
    "teacher": {"arch": {"kind": "mlp", "widths": [64, 64]}, "total_steps": 4096,
                "eval_episodes": 4},
    "supernet": {"total_steps": 2048, "rollout_subnets": 2},
    "search": {"pop": 8, "gens": 2, "episodes": 2, "final_episodes": 3, "max_episode_steps": 200},
    "eval": {"episodes": 3, "random_episodes": 3},
}  # fmt: skip


def test_command_line_pipeline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    run = tmp_path / "run"
    common = ["--config", str(cfg), "--out", str(run), "--quiet"]
    assert main(["train-teacher", *common]) == 0
    assert main(["train-supernet", *common]) == 0
    assert main(["evolve", *common, "--pop", "8"]) == 0
    assert main(["export", str(run), "--pick", "all", "--quiet"]) == 0
    assert main(["export", str(run), "--pick", "knee", "--quiet"]) == 0
    assert main(["eval", str(run / "agents" / "knee"), "--episodes", "3", "--quiet"]) == 0
    assert main(["baselines", str(run), "--widths", "0.5", "--quiet"]) == 0
    assert main(["report", str(run), "--quiet"]) == 0
    capsys.readouterr()

    front = json.loads((run / "search" / "front.json").read_text())
    assert front["format_version"] == FRONT_FORMAT_VERSION and front["front"]
    for entry in front["front"]:
        assert set(METRICS_KEYS) <= set(entry)
        assert entry["episodes"] == 3 and entry["eval_mode"] == "greedy"
    flops = [e["flops"] for e in front["front"]]
    assert flops == sorted(flops)

    agents = sorted(p.name for p in (run / "agents").iterdir() if p.is_dir())
    assert "knee" in agents and len(agents) == len(front["front"]) + 1
    for name in agents:
        folder = run / "agents" / name
        metrics = json.loads((folder / "metrics.json").read_text())
        assert set(METRICS_KEYS) <= set(metrics)
        state = torch.load(folder / "policy.pt", weights_only=True)
        agent = load_agent(folder)
        assert (
            sum(t.numel() for t in state.values())
            == metrics["params"]
            == sum(p.numel() for p in agent.parameters())
        )
        assert (folder / "policy.onnx").is_file()

    # R_random in front.json is the uniform-random policy's mean on the front's seeds, and the
    # exported knee beats it on those seeds (a front member that does not is dropped, unless
    # nothing learned: then this fails)
    run_cfg = load_config(run / "config.yaml")
    norm = front["normalisation"]
    seeds = front["front"][0]["seeds"]
    assert seeds == list(range(seeds[0], seeds[0] + 3))
    r_random = random_policy_return(run_cfg, len(seeds), seeds[0]).mean
    assert norm["r_random"] == pytest.approx(r_random)
    knee = json.loads((run / "agents" / "knee" / "metrics.json").read_text())
    assert knee["seeds"] == seeds and knee["return_mean"] > r_random
    span = norm["r_teacher"] - norm["r_random"]
    assert knee["normalised_return"] == pytest.approx((knee["return_mean"] - r_random) / span)

    # `eval` on its own fresh seeds: the knee beats random there too; the interval is
    # mean +- t_0.975(n - 1) * s / sqrt(n) with s the sample standard deviation (4.302653
    # for 2 degrees of freedom, Student's table)
    knee_eval = json.loads((run / "agents" / "knee" / "eval.json").read_text())
    returns = knee_eval["returns"]
    assert knee_eval["episodes"] == 3 and len(returns) == 3
    first = knee_eval["seeds"][0]
    assert knee_eval["seeds"] == [first, first + 1, first + 2]
    eval_random = random_policy_return(run_cfg, 3, first).mean
    assert knee_eval["random_return_mean"] == pytest.approx(eval_random)
    assert knee_eval["return_mean"] == pytest.approx(statistics.fmean(returns))
    assert knee_eval["return_mean"] > eval_random
    half = 4.302653 * statistics.stdev(returns) / math.sqrt(3)
    mean = knee_eval["return_mean"]
    assert knee_eval["return_ci95"] == pytest.approx([mean - half, mean + half])

    for name in ("pareto.png", "hypervolume.png", "report.md"):
        assert (run / "report" / name).stat().st_size > 1000
    baselines = sorted(p.name for p in (run / "baselines").iterdir() if not p.name.startswith("."))
    assert baselines == ["a2d_x0.5", "distill_x0.5", "ppo_x0.5"]
    for name in baselines:
        metrics = json.loads((run / "baselines" / name / "metrics.json").read_text())
        # 32x32 MLP on 4 observations, 2 actions: 2 x (4*32 + 32*32 + 32*2 + 32*1) FLOPs
        assert metrics["width_multiplier"] == 0.5 and metrics["flops"] == 2496
        assert metrics["seeds"] == front["front"][0]["seeds"]  # scored like the front
        # each distilled baseline's own value unit (sigma); plain PPO has none
        assert ("value_unit" in metrics) == (not name.startswith("ppo")), name
        assert metrics.get("value_unit", 1.0) > 0
    report = (run / "report" / "report.md").read_text()
    assert "ppo_x0.5" in report and "distill_x0.5" in report
    # the knee's row of the front table: its index, arch, return and normalised return
    entry = front["front"][knee["front_index"]]
    arch = "mlp-" + "x".join(str(w) for w in entry["arch"]["widths"])
    row = next(
        line for line in report.splitlines() if line.startswith(f"| {knee['front_index']} |")
    )
    assert row.startswith(f"| {knee['front_index']} | {arch} | ")
    assert f"| {entry['return_mean']:.2f} ± " in row
    assert f"| {entry['normalised_return']:.3f} |" in row and "knee" in row
    assert f"Knee point (as exported): `{arch}`" in report
    assert f"R_teacher = {norm['r_teacher']:.2f}, R_random = {norm['r_random']:.2f}" in report
    history = (run / "search" / "history.csv").read_text().splitlines()
    assert history[0].split(",")[:3] == ["generation", "encoding", "arch"]
    assert len(history) > 8  # at least the initial population
    # both generations are in it (a history of generation 0 alone passed the count; review)
    assert {line.split(",", 1)[0] for line in history[1:]} == {"0", "1"}

    # derive, then distil: `export --finetune` trains every member on, then delivers the
    # members no other dominates after fine-tuning
    names = [f"front_{i:02d}" for i in range(len(front["front"]))]
    assert main(["export", str(run), "--finetune", "256", "--quiet"]) == 0  # --pick all
    delivered = json.loads((run / "agents" / "delivered.json").read_text())
    rows = {r["agent"]: r for r in delivered["exported"]}
    assert sorted(rows) == names and delivered["finetune_steps"] == 256
    for name, row in rows.items():
        m = json.loads((run / "agents" / name / "metrics.json").read_text())
        entry = front["front"][m["front_index"]]
        assert m["finetune_steps"] == 256 and m["seeds"] == entry["seeds"]
        # the inherited figure is the front's, and re-scoring it on the same seeds agrees
        assert m["inherited"]["return_mean"] == entry["return_mean"]
        assert m["before"]["return_mean"] == pytest.approx(entry["return_mean"])
        assert row["return_mean"] == m["return_mean"] == m["after"]["return_mean"]
        # the fine-tune's own validation seeds chose the weights (finetune.validation_episodes)
        val = m["finetune_validation"]
        assert val["episodes"] == 20 and row["kept"] == val["kept"]
        assert val["kept"] == ("fine-tuned" if val["after"] >= val["before"] else "inherited")
        if val["kept"] == "inherited":
            assert m["after"]["return_mean"] == m["before"]["return_mean"]
        assert (
            row["validation_return_mean"]
            == val["after" if val["kept"] == "fine-tuned" else "before"]
        )
    # the members are chosen on the validation seeds, then scored on the final ones
    assert delivered["chosen_on"] == "validation seeds"
    points = [(r["flops"], r["validation_return_mean"]) for r in rows.values()]
    for name, (f, n) in zip(rows, points, strict=True):
        dominated = any(
            f2 <= f and n2 >= n and (f2 < f or n2 > n) for f2, n2 in points if (f2, n2) != (f, n)
        )
        assert dominated == (name not in delivered["members"])
    weights = {n: (run / "agents" / n / "policy.pt").read_bytes() for n in names}
    written = {n: (run / "agents" / n / "policy.pt").stat().st_mtime_ns for n in names}
    assert main(["export", str(run), "--finetune", "256", "--quiet"]) == 0  # agent by agent
    assert weights == {n: (run / "agents" / n / "policy.pt").read_bytes() for n in names}
    # kept, not extracted and fine-tuned again (which would write the same bytes anew)
    assert written == {n: (run / "agents" / n / "policy.pt").stat().st_mtime_ns for n in names}
    # ...unless the supernet changed since (a retrained one whose search gave the same front):
    # each member records the SHA-256 of the supernet, front and teacher it derives from
    old_sources = {n: json.loads((run / "agents" / n / "metrics.json").read_text())["sources"]
                   for n in names}  # fmt: skip
    assert all(s == old_sources[names[0]] and s["teacher"] for s in old_sources.values())
    weights_pt = run / "supernet" / "weights.pt"
    state = torch.load(weights_pt, weights_only=True)
    key = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)
    state[key] = state[key] + 1e-3
    torch_save(weights_pt, state)
    # the front was searched on the old weights: its figures are not of these ones
    assert main(["export", str(run), "--finetune", "256", "--quiet"]) == 2
    assert "changed since the search chose" in capsys.readouterr().err
    # a search run again on the new weights that happens to give the same front
    front_path = run / "search" / "front.json"
    front = json.loads(front_path.read_text())
    front["search"]["sources"]["supernet"] = file_digest(weights_pt)
    front_path.write_text(json.dumps(front))
    assert main(["export", str(run), "--finetune", "256", "--quiet"]) == 0
    for n in names:
        m = json.loads((run / "agents" / n / "metrics.json").read_text())
        assert m["sources"] == {
            **old_sources[n],
            "supernet": file_digest(weights_pt),
            "front": file_digest(front_path),
        }
        assert m["finetune_budget"] == 256
        assert (run / "agents" / n / "policy.pt").stat().st_mtime_ns != written[n]
    assert main(["report", str(run), "--quiet"]) == 0  # baselines now face the delivered front
    report = (run / "report" / "report.md").read_text()
    assert "Delivered front (after fine-tuning" in report
    assert "chosen on the fine-tune's validation seeds and scored on the final seeds" in report
    assert "Compared with the delivered front." in report

    # a second train-teacher into the same run refuses to overwrite it
    assert main(["train-teacher", *common]) == 2
    assert "already holds" in capsys.readouterr().err


def test_the_readme_python_pipeline_writes_what_the_commands_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """README's "From Python" block, run as written but for the config and run paths, makes the
    run folder the commands make with the same config: the same front (encodings and every
    episode's return) and the same delivered agents, weights bit for bit."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("<!-- python-pipeline -->\n```python\n", 1)[1].split("```", 1)[0]
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({**TINY, "finetune": {"steps": 512}}))
    lib, cli = tmp_path / "lib", tmp_path / "cli"
    assert '"configs/cartpole.yaml"' in block and '"runs/cartpole_py"' in block
    code = block.replace('"configs/cartpole.yaml"', repr(str(cfg)))
    code = code.replace('"runs/cartpole_py"', repr(str(lib)))
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)  # the README's own block, as a user runs it
    assert isinstance(namespace["agent"], Agent)
    common = ["--config", str(cfg), "--out", str(cli), "--seed", "1", "--quiet"]
    for command in ("train-teacher", "train-supernet", "evolve"):
        assert main([command, *common]) == 0
    assert main(["export", str(cli), "--pick", "all", "--quiet"]) == 0
    capsys.readouterr()

    def front(run: Path) -> list[tuple[list[int], list[float]]]:
        entries = json.loads((run / "search" / "front.json").read_text())["front"]
        return [(e["encoding"], e["episode_returns"]) for e in entries]

    def agents(run: Path) -> dict[str, str]:
        folders = sorted(p for p in (run / "agents").iterdir() if p.is_dir())
        return {p.name: file_digest(p / "policy.pt") for p in folders}

    assert front(lib) and front(lib) == front(cli)
    assert agents(lib) and agents(lib) == agents(cli)
    delivered = [json.loads((r / "agents" / "delivered.json").read_text()) for r in (lib, cli)]
    assert delivered[0]["members"] and delivered[0]["members"] == delivered[1]["members"]
    assert (lib / "report" / "report.md").is_file()


def test_demo_resume_honours_changed_settings_or_refuses_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A finished demo's stages were skipped on `--resume` whatever the command changed: a
    raised budget was ignored while the report stated it. Now the last finished stage is
    resumed (a raised search.gens searches on), a change under a stage that later stages
    were built on is refused naming the key, and an unchanged command skips everything."""
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({**TINY, "finetune": {"steps": 0}}))
    run = tmp_path / "run"
    common = ["demo", "--config", str(cfg), "--out", str(run), "--quiet"]
    assert main(common) == 0
    capsys.readouterr()
    assert main([*common, "--resume"]) == 0
    out = capsys.readouterr().out
    assert out.count("already done") == 3, out
    # the teacher every figure is normalised against, said before the export (a new user's
    # finding: the demo never printed it)
    m = json.loads((run / "teacher" / "agent" / "metrics.json").read_text())
    assert (
        f"[demo] teacher: {run / 'teacher' / 'agent'} (greedy return {m['return_mean']:.2f} "
        f"over {m['episodes']} episodes; the uniform-random policy: "
        f"{m['random_return_mean']:.2f})\n[demo] export:"
    ) in out, out
    assert "| agent | arch | FLOPs |" in out and re.search(r"\| front_\d+ \| mlp-\d", out), out
    # a raised budget under the finished supernet and search: refused, nothing trained
    argv = [*common, "--resume", "--set", "teacher.total_steps=8192"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "the teacher stage finished with teacher.total_steps 4096 (this command: 8192)" in err
    assert "the supernet stage was built on it" in err
    assert main([*common, "--resume", "--seed", "4"]) == 2
    assert "seed 3 (this command: 4)" in capsys.readouterr().err
    # the last finished stage: the search goes on to the raised generations
    assert main([*common, "--resume", "--set", "search.gens=3"]) == 0
    out = capsys.readouterr().out
    assert "[demo] search: finished with search.gens 2 (this command: 3); resuming it" in out
    assert json.loads((run / "search" / "front.json").read_text())["search"]["generations"] == 3
    # raised by the stage's own command (as a refused teacher's message tells): the plain
    # demo command finds it finished at the higher budget, no change, and skips it
    search_cfg = str(run / "search" / "config.yaml")
    evolve = ["evolve", "--config", search_cfg, "--out", str(run), "--resume", "--quiet"]
    assert main([*evolve, "--set", "search.gens=4"]) == 0
    capsys.readouterr()
    assert main([*common, "--resume"]) == 0
    assert capsys.readouterr().out.count("already done") == 3
    # a later stage begun (a supernet checkpoint, no weights yet) was built on the teacher too
    shutil.rmtree(run / "search")
    (run / "supernet" / "weights.pt").unlink()
    assert main(argv) == 2
    assert "and the supernet stage was built on it" in capsys.readouterr().err


def test_the_demo_explains_a_delivered_front_of_one_member() -> None:
    """One delivered member out of several fine-tuned is the cheapest one beating the rest:
    the demo says so (and points at another seed); two members or more need no note."""
    from a2d_evo.demo import one_member_note

    row = {"agent": "front_00"}
    three = {"members": ["front_00"], "exported": [row, {"agent": "b"}, {"agent": "c"}]}
    assert one_member_note(three).startswith(
        "One delivered member of 3 fine-tuned: the cheapest played at least as well as every "
        "other one on the episodes that chose the delivery"
    )
    assert "the other on" in one_member_note({**three, "exported": [row, {"agent": "b"}]})
    assert one_member_note({**three, "exported": [row]}) == (
        "One delivered member: the search's front held one network."
    )
    assert one_member_note({**three, "members": ["front_00", "b"]}) == ""
    # the others below random (finetune.below_random): not "the smaller networks lost no return"
    note = one_member_note({**three, "not_above_random": ["b", "c"]})
    assert note.startswith("One delivered member of 3 fine-tuned: 2 did not beat the random ")
    assert "lost no return" not in note
    none = one_member_note({**three, "not_above_random": ["front_00", "b", "c"],
                            "none_above_random": True})  # fmt: skip
    assert "none beat the random policy" in none
