"""The search end to end on a tiny CartPole run folder (no training: a hand-made teacher and a
seeded random supernet), its outputs, its refusals, and SIGKILL + resume."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from a2d_evo.config import Config, SpaceConfig, config_from_dict
from a2d_evo.errors import ConfigError, FormatError, RunFolderError, TrainingError
from a2d_evo.evaluation.episodes import (
    EvalResult,
    evaluate_agent,
    make_result,
    random_policy_return,
)
from a2d_evo.formats import FRONT_FORMAT_VERSION, METRICS_KEYS, Normalisation
from a2d_evo.nets import cost
from a2d_evo.nets.agent import Agent
from a2d_evo.nets.agent_folder import load_agent, save_agent
from a2d_evo.nets.space import Arch, MLPArch, SearchSpace, arch_from_dict
from a2d_evo.nets.supernet import Supernet
from a2d_evo.runs.files import torch_save
from a2d_evo.runs.folder import RunFolder
from a2d_evo.search.evolution import evolve
from a2d_evo.search.front import rescore

SPACE = SearchSpace(SpaceConfig(kind="mlp"))
OBS, ACTIONS = (4,), 2
NORM = Normalisation(r_random=0.0, r_teacher=100.0, teacher_flops=1000)

RAW: dict[str, Any] = {
    "seed": 3,
    "env": {"id": "CartPole-v1", "max_episode_steps": 120},
    "search": {"pop": 8, "gens": 5, "episodes": 2, "final_episodes": 3},
}


SMALL: dict[str, Any] = {**RAW, "search": {**RAW["search"], "gens": 2}}
"""``RAW`` cut to two generations: the shared ``finished`` search of ``conftest``."""


def make_run(root: Path, raw: dict[str, Any] = RAW, supernet_widths: Any = None) -> Config:
    """A run folder with a teacher agent and supernet weights (no training)."""
    cfg = config_from_dict(raw)
    run = RunFolder(root)
    run.bind(cfg)
    space_cfg = (
        cfg.space
        if supernet_widths is None
        else config_from_dict({**raw, "space": {"widths": supernet_widths}}).space
    )
    torch.manual_seed(0)
    net = Supernet(SearchSpace(space_cfg), (4,), 2)
    with torch.no_grad():  # unit 0 of the first layer balances the pole; the rest is noise
        net.layers[0].weight[0].zero_()
        net.layers[0].weight[0, 2:4] = 10.0
        net.policy.weight[:, 0] = torch.tensor([-5.0, 5.0])
    torch_save(run.supernet_weights, net.state_dict())
    teacher = Agent(MLPArch((4,)), (4,), 2)
    with torch.no_grad():
        for p in teacher.parameters():
            p.zero_()
        teacher.layers[0].weight[0, 2:4] = 10.0
        teacher.policy.weight[:, 0] = torch.tensor([-5.0, 5.0])
    save_agent(teacher, run.teacher_agent, onnx=False)
    (root / "cfg.yaml").write_text(yaml.safe_dump(raw))
    return cfg


def front_without_latency(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    for e in data["front"]:
        e.pop("latency_ms")  # a wall-clock measurement: the only figure allowed to differ
    return data


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("straight")
    cfg = make_run(root)
    evolve(cfg, RunFolder(root), progress=False)
    return root


def test_outputs(reference_run: Path) -> None:
    search = reference_run / "search"
    data = json.loads((search / "front.json").read_text())
    assert data["format_version"] == FRONT_FORMAT_VERSION == 2
    ref = data["reference_point"]
    space = SearchSpace(config_from_dict(RAW).space)
    t_flops = data["normalisation"]["teacher_flops"]
    assert t_flops == cost.flops(MLPArch((4,)), (4,), 2)
    assert ref == pytest.approx([0.0, np.log10(1.1 * cost.flops(space.largest(), (4,), 2))])
    assert data["reference_point_units"] == ["-normalised_return", "log10 flops"]
    # the delivered front's HV, by hand: staircase of (normalised return, log10 FLOPs)
    pts = sorted((np.log10(e["flops"]), e["normalised_return"]) for e in data["front"])
    edges = [x for x, _ in pts[1:]] + [ref[1]]
    best = np.maximum.accumulate([max(y, 0.0) for _, y in pts])
    want = sum(b * (hi - x) for (x, _), hi, b in zip(pts, edges, best, strict=True))
    assert data["hypervolume"] == pytest.approx(want, rel=1e-9)
    # ... and the members' own staircase, no envelope (each its own figure, clipped at 0)
    own = sum(max(y, 0.0) * (hi - x) for (x, y), hi in zip(pts, edges, strict=True))
    assert data["hypervolume_staircase"] == pytest.approx(own, rel=1e-9)
    norm = data["normalisation"]
    assert norm["episodes"] == 3 and len(norm["seeds"]) == 3
    # the teacher's lead over random on those seeds, paired per seed, bounded by hand:
    # mean - t95(3) * sample sd / sqrt(3), t95(3) = 4.302653
    cfg = config_from_dict(RAW)
    teacher = load_agent(reference_run / "teacher" / "agent")
    t = evaluate_agent(teacher, cfg, 3, norm["seeds"][0], "greedy").returns
    r = random_policy_return(cfg, 3, norm["seeds"][0]).returns
    assert (t.mean(), r.mean()) == pytest.approx((norm["r_teacher"], norm["r_random"]))
    lead = t - r
    want = lead.mean() - 4.302653 * lead.std(ddof=1) / np.sqrt(3)
    assert norm["teacher_margin_lower95"] == pytest.approx(want, rel=1e-6)
    front = data["front"]
    assert front
    flops = [e["flops"] for e in front]
    assert flops == sorted(flops)
    for e in front:
        assert set(METRICS_KEYS) <= set(e) and {"arch", "encoding"} <= set(e)
        arch = arch_from_dict(e["arch"])
        assert space.decode(e["encoding"]) == arch
        assert e["flops"] == cost.flops(arch, (4,), 2)
        assert e["params"] == cost.params(arch, (4,), 2)
        assert e["episodes"] == 3 and e["seeds"] == norm["seeds"]
        assert e["normalised_return"] == pytest.approx(
            (e["return_mean"] - norm["r_random"]) / (norm["r_teacher"] - norm["r_random"])
        )
        assert e["latency_ms"] > 0
    # non-dominated in (-normalised return, flops)
    for a in front:
        for b in front:
            assert not (
                b["normalised_return"] >= a["normalised_return"]
                and b["flops"] <= a["flops"]
                and (b["normalised_return"], b["flops"]) != (a["normalised_return"], a["flops"])
            )
    with open(search / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [
        "generation",
        "encoding",
        "arch",
        "return_mean",
        "return_std",
        "episodes",
        "flops",
        "params",
        "env_steps",
    ]
    assert len(rows) <= 8 * 5 and {int(r["generation"]) for r in rows} == set(range(5))
    keys = [r["encoding"] for r in rows]
    assert len(keys) == len(set(keys))  # one row per arch
    state = json.loads((search / "state.json").read_text())
    records = state["cache"]
    # survivors are re-scored: some archs hold episodes of several generations, each
    # generation's seeds are the same for every arch that played it
    assert any(len(set(r["generations"])) > 1 for r in records)
    by_gen: dict[int, set[tuple[int, ...]]] = {}
    for r in records:
        assert len(r["returns"]) == len(r["lengths"]) == len(r["seeds"]) == r["episodes"]
        assert r["return_mean"] == pytest.approx(float(np.mean(r["returns"])), rel=1e-12)
        for g in sorted(set(r["generations"])):
            played = [s for s, gg in zip(r["seeds"], r["generations"], strict=True) if gg == g]
            by_gen.setdefault(g, set()).add(tuple(played))
    assert all(len(v) == 1 for v in by_gen.values())
    # ...and they are generation g's own (seeds.generation_seeds): one generation replaying
    # another's episodes would re-score survivors on the draw that kept them
    from a2d_evo.evaluation.seeds import generation_seeds

    assert by_gen == {g: {tuple(generation_seeds(3, g, 2))} for g in range(5)}
    spent = sum(sum(r["lengths"]) for r in records)
    assert sum(int(r["env_steps"]) for r in rows) == spent
    for r in rows[:10]:
        arch = space.decode([int(g) for g in r["encoding"].split()])
        assert str(arch) == r["arch"] and int(r["flops"]) == cost.flops(arch, (4,), 2)
    with open(search / "hypervolume.csv") as f:
        hv = list(csv.DictReader(f))
    assert [int(r["generation"]) for r in hv] == list(range(5))
    assert int(hv[-1]["env_steps"]) == spent == data["search"]["env_steps"]
    assert int(hv[-1]["episodes"]) == sum(r["episodes"] for r in records)
    assert data["search"]["episodes_played"] == int(hv[-1]["episodes"])
    assert data["search"]["stopped_by"] == "gens" and data["search"]["generations"] == 5
    delivery = data["delivery"]
    assert delivery["candidates_at_least"] == 8  # search.pop
    assert delivery["halving_rounds"][0]["candidates"] == delivery["candidates"] >= 8
    assert delivery["halving_rounds"][0]["episodes"] == 2  # search.episodes
    assert delivery["final_episodes"] == 3 * data["search"]["front_size"]
    assert any((reference_run / "tb" / "search").iterdir())
    assert state["finished"] and state["generation"] == 5


def test_search_candidates_sets_how_many_archs_the_delivery_races(
    reference_run: Path, tmp_path: Path
) -> None:
    """``search.candidates`` decouples the delivery from ``pop``: the same search (the same
    archive) delivered from at least 24 candidates races more of them than from ``pop`` (8)."""
    raw = {**RAW, "search": {**RAW["search"], "candidates": 24}}
    cfg = make_run(tmp_path, raw)
    evolve(cfg, RunFolder(tmp_path), progress=False)
    wide = json.loads((tmp_path / "search" / "front.json").read_text())
    base = json.loads((reference_run / "search" / "front.json").read_text())
    assert wide["search"]["evaluations"] == base["search"]["evaluations"] >= 24
    assert wide["delivery"]["candidates_at_least"] == 24
    assert wide["delivery"]["halving_rounds"][0]["candidates"] >= 24
    assert base["delivery"]["halving_rounds"][0]["candidates"] < 24


def test_shrunk_estimates_rank_the_search_and_the_delivery_candidates(tmp_path: Path) -> None:
    """``search.estimate: shrunk``: the delivery's candidates are the archive's best fronts on
    the shrunk estimates of the archive in ``state.json``, recomputed here."""
    from a2d_evo.formats import Normalisation
    from a2d_evo.search.estimates import arch_estimates
    from a2d_evo.search.front import candidates

    raw = {**RAW, "search": {**RAW["search"], "estimate": "shrunk", "mutation": "reset"}}
    cfg = make_run(tmp_path, raw)
    evolve(cfg, RunFolder(tmp_path), progress=False)
    front = json.loads((tmp_path / "search" / "front.json").read_text())
    assert front["search"]["estimate"] == "shrunk"
    records = json.loads((tmp_path / "search" / "state.json").read_text())["cache"]
    norm = Normalisation.from_dict(front["search"]["normalisation"])
    space = SearchSpace(cfg.space)
    shrunk = arch_estimates(records, space, "shrunk")
    assert not np.allclose(shrunk, [r["return_mean"] for r in records])
    expected = candidates(records, norm, 8, returns=shrunk.tolist())
    assert front["delivery"]["candidates"] == len(expected)
    members = {tuple(e["encoding"]) for e in front["front"]}
    assert members <= {tuple(r["encoding"]) for r in expected}
    plain = candidates(records, norm, 8)
    assert plain != expected  # the estimates changed the pick
    anchors = [r for r in records if r.get("anchor")]
    gens = json.loads((tmp_path / "search" / "state.json").read_text())["generation"]
    assert len(anchors) == cfg.search.anchors and gens >= 2
    assert all(sorted(set(r["generations"])) == list(range(gens)) for r in anchors)
    # a state written before anchors existed cannot be resumed under these estimates
    state = json.loads((tmp_path / "search" / "state.json").read_text())
    for r in state["cache"]:
        r.pop("anchor", None)
    (tmp_path / "search" / "state.json").write_text(json.dumps(state))
    with pytest.raises(FormatError, match="no anchor archs.*run `a2d-evo evolve` again"):
        evolve(cfg, RunFolder(tmp_path), resume=True, progress=False)


def test_same_seed_same_front(reference_run: Path, tmp_path: Path) -> None:
    cfg = make_run(tmp_path)
    evolve(cfg, RunFolder(tmp_path), progress=False)
    assert front_without_latency(tmp_path / "search" / "front.json") == front_without_latency(
        reference_run / "search" / "front.json"
    )
    for name in ("history.csv", "hypervolume.csv"):
        assert (tmp_path / "search" / name).read_text() == (
            reference_run / "search" / name
        ).read_text()


def _npz_generation(path: Path) -> int:
    try:
        with np.load(path) as z:
            return int(z["generation"])
    except (OSError, ValueError, KeyError, EOFError):
        return -1


def test_sigkill_mid_generation_then_resume(reference_run: Path, tmp_path: Path) -> None:
    cfg = make_run(tmp_path)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    code = (
        "import sys\n"
        "from a2d_evo.config import load_config\n"
        "from a2d_evo.runs.folder import RunFolder\n"
        "from a2d_evo.search import evolve\n"
        "evolve(load_config(sys.argv[1]), RunFolder(sys.argv[2]), progress=False)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path / "cfg.yaml"), str(tmp_path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        # not the repository root: `-c` puts the cwd first on sys.path, and a clean clone's
        # source tree (no native module) there plays on another forward than this process,
        # which evolve --resume refuses
        cwd=tmp_path,
    )
    npz = tmp_path / "search" / "state.npz"
    deadline = time.monotonic() + 120
    try:
        while _npz_generation(npz) < 2:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "the search never reached generation 2"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)  # generation 3 is under way
    finally:
        proc.wait(timeout=30)
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    killed_at = _npz_generation(npz)
    assert 2 <= killed_at < 5 and not (tmp_path / "search" / "front.json").exists()
    with pytest.raises(RunFolderError, match="resume"):
        evolve(cfg, RunFolder(tmp_path), progress=False)  # a fresh start would overwrite it
    evolve(cfg, RunFolder(tmp_path), resume=True, progress=False)
    assert front_without_latency(tmp_path / "search" / "front.json") == front_without_latency(
        reference_run / "search" / "front.json"
    )
    for name in ("history.csv", "hypervolume.csv"):
        assert (tmp_path / "search" / name).read_text() == (
            reference_run / "search" / name
        ).read_text()


def test_resume_of_finished_run_returns_its_front(
    reference_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (reference_run / "search" / "front.json").read_bytes()
    cfg = config_from_dict(RAW)
    path = evolve(cfg, RunFolder(reference_run), resume=True, progress=False)
    assert path.read_bytes() == before
    capsys.readouterr()
    evolve(cfg, RunFolder(reference_run), resume=True, progress=True)  # and says so
    assert (
        "already finished after 5 generations (search.gens is 5; raise it to search on); "
        "nothing to resume"
    ) in capsys.readouterr().out
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    "damage", ["[]", '{"search": "x"}', '{"search": []}', "{", "no front", "front of strings"]
)
def test_a_finished_search_whose_front_was_damaged_delivers_it_again(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    """A front.json damaged after the search finished (it is written atomically: someone
    else's doing) is not returned as the front by --resume, nor a traceback: it is delivered
    again from the saved state, as the first time."""
    root = tmp_path / "run"
    shutil.copytree(finished, root)
    front = root / "search" / "front.json"
    before = json.loads(front.read_text())
    if damage == "no front":  # the search block intact, the members gone
        damage = json.dumps({"search": before["search"]})
    elif damage == "front of strings":
        damage = json.dumps({**before, "front": ["x"]})
    front.write_text(damage)
    evolve(config_from_dict(SMALL), RunFolder(root), resume=True, progress=True)
    assert "cannot be read as a front; it is delivered again" in capsys.readouterr().out
    again = json.loads(front.read_text())

    def measured(f: dict) -> list:  # latency is timed anew
        return [{k: v for k, v in m.items() if k != "latency_ms"} for m in f["front"]]

    assert measured(again) == measured(before) and again["search"] == before["search"]


def _interrupt(*args: Any, **kwargs: Any) -> bool:
    raise KeyboardInterrupt


def test_a_resume_that_raises_the_generations_searches_on(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A finished 2-generation search resumed with search.gens 4 plays generations 2 and 3
    from its saved state (the first two rows of its history unchanged), delivers the front
    again, and records the raise; lowering it back is refused."""
    from a2d_evo.runs.stage_budget import read_config_history

    root = tmp_path / "run"
    shutil.copytree(finished, root)
    before = json.loads((root / "search" / "front.json").read_text())
    rows = (root / "search" / "hypervolume.csv").read_text().splitlines()
    assert before["search"]["generations"] == 2 and len(rows) == 3  # header + 2
    more = config_from_dict({**SMALL, "search": {**SMALL["search"], "gens": 4}})
    # interrupted in its first new generation: the old front is no longer offered as this
    # search's (export and report would have taken the 2-generation front for the 4)
    from a2d_evo.search import evolution

    real_play = evolution.play_generation
    evolution.play_generation = _interrupt  # type: ignore[assignment]
    capsys.readouterr()
    try:
        with pytest.raises(KeyboardInterrupt):
            evolve(more, RunFolder(root), resume=True, progress=True)
    finally:
        evolution.play_generation = real_play  # type: ignore[assignment]
    out = capsys.readouterr()
    # its TensorBoard writer was closed on the way out (one writer thread was left per
    # interrupted search)
    writers = [t for t in threading.enumerate() if type(t).__name__ == "_AsyncWriterThread"]
    assert not writers, writers
    assert "search.gens raised from 2 to 4 (recorded in" in out.err  # evolve says what it plays
    assert "the finished search goes on from generation 2" in out.out
    assert not (root / "search" / "front.json").exists()
    evolve(more, RunFolder(root), resume=True, progress=False)  # the continuation completes
    after = json.loads((root / "search" / "front.json").read_text())
    assert after["search"]["generations"] == 4
    assert after["search"]["evaluations"] > before["search"]["evaluations"]
    grown = (root / "search" / "hypervolume.csv").read_text().splitlines()
    assert len(grown) == 5 and grown[:3] == rows
    history = read_config_history(root / "search")
    assert [(h["key"], h["from"], h["to"]) for h in history] == [("search.gens", 2, 4)]
    with pytest.raises(RunFolderError, match=r"search\.gens may only be raised"):
        evolve(config_from_dict(SMALL), RunFolder(root), resume=True, progress=False)
    # a damaged state refuses a raise before it is recorded (a retry would be "lowering")
    damaged = tmp_path / "damaged"
    shutil.copytree(finished, damaged)
    (damaged / "search" / "state.npz").write_bytes(b"not a state")
    with pytest.raises(FormatError, match="is unreadable"):
        evolve(more, RunFolder(damaged), resume=True, progress=False)
    assert not (damaged / "search" / "config_history.yaml").exists()
    # ... and so does one that reads but does not fit this search (a record's FLOPs edited):
    # checked in full, against the space, before the raise
    edited = tmp_path / "edited"
    shutil.copytree(finished, edited)
    state = json.loads((edited / "search" / "state.json").read_text())
    state["cache"][0]["flops"] += 1
    (edited / "search" / "state.json").write_text(json.dumps(state))
    with pytest.raises(FormatError):
        evolve(more, RunFolder(edited), resume=True, progress=False)
    assert not (edited / "search" / "config_history.yaml").exists()
    # at its new end it is finished again: a plain resume delivers nothing new
    evolve(more, RunFolder(root), resume=True, progress=False)
    assert json.loads((root / "search" / "front.json").read_text()) == after


def test_resume_with_another_config_is_refused(reference_run: Path) -> None:
    other = config_from_dict({**RAW, "search": {**RAW["search"], "pop": 12}})
    with pytest.raises(RunFolderError, match=r"search\.pop"):
        evolve(other, RunFolder(reference_run), resume=True, progress=False)
    # eval.num_envs too: R_random's draws depend on it, and the delivery is chosen against it
    waves = config_from_dict({**RAW, "eval": {"num_envs": 2}})
    with pytest.raises(RunFolderError, match=r"eval\.num_envs"):
        evolve(waves, RunFolder(reference_run), resume=True, progress=False)


def test_a_space_smaller_than_a_population_is_searched_whole_then_stops(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """3 archs, pop 4: pymoo's first population dropped the duplicate draws without drawing
    again (2 archs), then its mating gave up, and the search stopped as "space exhausted" with
    one arch never evaluated; a generation the mating cannot fill now takes archs never
    evaluated, and within search.max_flops only."""
    raw = {
        **RAW,
        "space": {"depths": [1], "widths": [2, 4, 8]},
        "search": {**RAW["search"], "pop": 4, "gens": 6},
    }
    root = tmp_path / "run"
    cfg = make_run(root, raw)
    assert SearchSpace(cfg.space).size() == 3
    evolve(cfg, RunFolder(root), progress=False)
    state = json.loads((root / "search" / "state.json").read_text())
    assert sorted(r["arch"] for r in state["cache"]) == ["mlp-2", "mlp-4", "mlp-8"]
    search = json.loads((root / "search" / "front.json").read_text())["search"]
    assert search["stopped_by"] == "space exhausted" and search["generations"] < 6
    capsys.readouterr()
    evolve(cfg, RunFolder(root), resume=True, progress=True)
    assert "the space is exhausted: every arch of it was evaluated" in capsys.readouterr().out
    # a raised budget delivers the front again at its cut and plays nothing: mating again would
    # draw past the generation that gave up, where a fresh search of that budget stops there
    # (found by review: NSGA-II's generator moved on, which in a space the top-up cannot list
    # could play on)
    root = tmp_path / "budget"
    budget = make_run(root, {**raw, "search": {**raw["search"], "budget_steps": 10**8}})
    evolve(budget, RunFolder(root), progress=False)
    search = json.loads((root / "search" / "front.json").read_text())["search"]
    assert search["stopped_by"] == "space exhausted"
    rng = np.load(root / "search" / "state.npz")["rng"]
    raised = config_from_dict({**raw, "search": {**raw["search"], "budget_steps": 10**9}})
    evolve(raised, RunFolder(root), resume=True, progress=False)
    assert (np.load(root / "search" / "state.npz")["rng"] == rng).all()
    again = json.loads((root / "search" / "front.json").read_text())["search"]
    assert again["stopped_by"] == "space exhausted"
    assert again["generations"] == search["generations"]
    # under a ceiling: the archs over it are not drawn, the others all evaluated
    five = {"depths": [1], "widths": [1, 2, 4, 8, 16]}
    flops = {w: cost.flops(MLPArch((w,)), (4,), 2) for w in five["widths"]}
    ceiling = {**raw, "space": five, "search": {**raw["search"], "max_flops": flops[4]}}
    root = tmp_path / "ceiling"
    cfg = make_run(root, ceiling)
    evolve(cfg, RunFolder(root), progress=False)
    state = json.loads((root / "search" / "state.json").read_text())
    assert {"mlp-1", "mlp-2", "mlp-4"} <= {r["arch"] for r in state["cache"]}
    search = json.loads((root / "search" / "front.json").read_text())["search"]
    assert search["stopped_by"] == "space exhausted"
    capsys.readouterr()
    evolve(cfg, RunFolder(root), resume=True, progress=True)
    assert "every arch of it within search.max_flops was evaluated" in capsys.readouterr().out


def test_the_archs_a_generation_is_topped_up_with_come_again_after_a_resume() -> None:
    """What topped_up adds is a function of the search's records (saved in its state) and the
    generation's seeds: not of the archs seen over the ceiling (not saved) or of the problem
    object; and only where pymoo's mating made no offspring."""
    import pymoo.core.population as pop_mod

    from a2d_evo.search.generation import topped_up, unseen_archs

    space = SearchSpace(config_from_dict({"space": {"depths": [1, 2], "widths": [2, 4, 8]}}).space)

    class Problem:
        def __init__(self, cache: dict[bytes, Any], ceiling: int | None) -> None:
            self.space, self.cache, self.ceiling = space, cache, ceiling

        def within_ceiling(self, row: np.ndarray) -> bool:
            flops = cost.flops(space.decode(row), (4,), 2)
            return self.ceiling is None or flops <= self.ceiling

    seen = [space.encode(MLPArch(w)) for w in [(2,), (4,), (4, 8)]]
    cache = {space.key(x): {} for x in seen}
    ceiling = cost.flops(MLPArch((8, 4)), (4,), 2)
    rng = lambda: np.random.default_rng(7)  # noqa: E731
    first = unseen_archs(Problem(dict(cache), ceiling), rng(), 5)
    again = unseen_archs(Problem(dict(cache), ceiling), rng(), 5)
    np.testing.assert_array_equal(first, again)
    assert len(first) == 5 and not {space.key(x) for x in first} & set(cache)
    assert all(cost.flops(space.decode(x), (4,), 2) <= ceiling for x in first)
    under = [x for x in space.sample_encodings(np.random.default_rng(0), 4000)]
    n_under = len(
        {space.key(x) for x in under if cost.flops(space.decode(x), (4,), 2) <= ceiling}
        - set(cache)
    )
    every = unseen_archs(Problem(dict(cache), ceiling), rng(), 100)
    assert len(every) == n_under  # the listed space: every arch left under the ceiling

    class Algorithm:
        n_offsprings, pop_size, n_iter = 4, 4, 3

        class termination:
            force_termination = True

    filled = pop_mod.Population.new("X", np.asarray(seen[:1], dtype=float))
    assert topped_up(Algorithm, Problem(cache, None), filled, [1, 2], 3) is filled
    added = topped_up(Algorithm, Problem(cache, None), None, [1, 2], 3)
    assert len(added) == 4 and Algorithm.termination.force_termination is False
    again_added = topped_up(Algorithm, Problem(dict(cache), None), None, [1, 2], 3)
    np.testing.assert_array_equal(added.get("X"), again_added.get("X"))


def test_a_space_past_int64_is_sampled_not_listed() -> None:
    """18 layers of 12 widths hold 18 x 12**18 gene vectors, past what an int64 holds: the
    size test must not wrap to a small number and list the space whole (which raised)."""
    from a2d_evo.search.generation import unseen_archs

    space = SearchSpace(config_from_dict({"space": {"depths": list(range(1, 19))}}).space)
    assert int(np.prod(space.xu - space.xl + 1)) <= 0  # what numpy's product gives

    class Problem:
        def __init__(self) -> None:
            self.space, self.cache = space, {}

        def within_ceiling(self, row: np.ndarray) -> bool:
            return True

    got = unseen_archs(Problem(), np.random.default_rng(0), 4)
    assert got.shape == (4, space.n_var)


def test_pop_below_four_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="search.pop"):
        config_from_dict({**RAW, "search": {**RAW["search"], "pop": 3}})


def test_missing_teacher_or_supernet(tmp_path: Path) -> None:
    cfg = make_run(tmp_path)
    run = RunFolder(tmp_path)
    weights = run.supernet_weights.read_bytes()
    run.supernet_weights.unlink()
    with pytest.raises(RunFolderError, match="train-supernet"):
        evolve(cfg, run, progress=False)
    run.supernet_weights.write_bytes(weights)
    (run.teacher_agent / "arch.json").unlink()
    with pytest.raises(RunFolderError, match="train-teacher"):
        evolve(cfg, run, progress=False)
    assert not run.search.exists()


def test_supernet_of_another_space_is_refused(tmp_path: Path) -> None:
    cfg = make_run(tmp_path, supernet_widths=[4, 8, 16, 32, 64, 128])
    with pytest.raises(FormatError, match="search space"):
        evolve(cfg, RunFolder(tmp_path), progress=False)
    assert not (tmp_path / "search").exists()


def _front_flops(run: Path) -> list[int]:
    return [m["flops"] for m in json.loads((run / "search" / "front.json").read_text())["front"]]


def test_flops_ceiling(tmp_path: Path) -> None:
    """Archs over search.max_flops are never played (their cost is known without playing),
    and a search whose saved population holds such unplayed members resumes bit-exact."""

    def raw(gens: int) -> dict[str, Any]:
        return {**RAW, "search": {**RAW["search"], "gens": gens, "max_flops": 150.0}}

    a, b = tmp_path / "a", tmp_path / "b"
    cfg = make_run(a, raw(3))
    evolve(cfg, RunFolder(a), progress=False)
    front = json.loads((a / "search" / "front.json").read_text())["front"]
    assert front and all(e["flops"] <= 150 for e in front)
    state = json.loads((a / "search" / "state.json").read_text())
    assert state["cache"] and all(r["flops"] <= 150 for r in state["cache"])
    with np.load(a / "search" / "state.npz") as z:
        over = z["G"][:, 0] > 0
        assert over.any() and (z["F"][over, 0] == 0.0).all()  # unplayed members, kept
    # raised to 5 generations from the saved state: the same search as 5 straight (the
    # normalisation is the start's, measured over fewer generations: not compared)
    evolve(config_from_dict(raw(5)), RunFolder(a), resume=True, progress=False)
    evolve(make_run(b, raw(5)), RunFolder(b), progress=False)
    assert (a / "search" / "history.csv").read_text() == (b / "search" / "history.csv").read_text()
    members = [
        [e["encoding"] for e in json.loads((r / "search" / "front.json").read_text())["front"]]
        for r in (a, b)
    ]
    assert members[0] == members[1]
    # a ceiling below the space's cheapest arch (mlp-4, 56 FLOPs): refused before anything
    c = tmp_path / "c"
    low = {**RAW, "search": {**RAW["search"], "gens": 3, "max_flops": 55.0}}
    with pytest.raises(ConfigError, match=r"search\.max_flops 55 is below the cheapest arch of "
                       r"the space \(mlp-4, 56 FLOPs\): .* at least 56"):  # fmt: skip
        evolve(make_run(c, low), RunFolder(c), progress=False)
    assert not (c / "search").exists()
    # the cheapest arch alone under the ceiling, never drawn in one generation: no front, said
    # with what to do (it was a ValueError traceback); the resume it names delivers one
    tight = {**RAW, "search": {**RAW["search"], "gens": 1, "max_flops": 56.0}}
    with pytest.raises(TrainingError, match=r"no arch within search\.max_flops 56 was found in 1 "
                       r"generation \(the cheapest seen costs 112 FLOPs\) \(stopped by gens\): "
                       r"search on with "
                       r"`a2d-evo evolve .*--resume --set search\.gens=2`"):  # fmt: skip
        evolve(make_run(c, tight), RunFolder(c), progress=False)
    assert not (c / "search" / "front.json").exists()
    # stopped by its budget instead (anchors play whatever they cost, and spend it): the
    # budget is what the hint raises
    d = tmp_path / "d"
    spent = {**tight, "search": {**tight["search"], "gens": 50, "budget_steps": 200,
                                 "estimate": "shrunk", "anchors": 3}}  # fmt: skip
    # (twice the 960 steps played, the second generation's anchors: twice the budget of 200
    # was below them, and that resume played nothing and refused again)
    with pytest.raises(TrainingError, match=r"in 2 generations .*\(stopped by budget_steps\): "
                       r"search on with `a2d-evo evolve .*--resume --set "
                       r"search\.budget_steps=1920`"):  # fmt: skip
        evolve(make_run(d, spent), RunFolder(d), progress=False)
    raised = {**spent, "search": {**spent["search"], "budget_steps": 1920}}
    evolve(config_from_dict(raised), RunFolder(d), resume=True, progress=False)  # it goes on
    assert _front_flops(d) == [56]
    # its last generation spends the budget: both limits stopped it, and the hint raises both
    # (it raised the budget alone, whose resume then played nothing and refused again)
    e = tmp_path / "e"
    both = {**spent, "search": {**spent["search"], "gens": 2}}
    with pytest.raises(TrainingError, match=r"in 2 generations .*\(stopped by gens and "
                       r"budget_steps\): search on with `a2d-evo evolve .*--resume --set "
                       r"search\.gens=4 --set search\.budget_steps=1920`"):  # fmt: skip
        evolve(make_run(e, both), RunFolder(e), progress=False)
    raised = {**both, "search": {**both["search"], "gens": 4, "budget_steps": 1920}}
    evolve(config_from_dict(raised), RunFolder(e), resume=True, progress=False)
    assert _front_flops(e) == [56]
    more = {**tight, "search": {**tight["search"], "gens": 2}}
    evolve(config_from_dict(more), RunFolder(c), resume=True, progress=False)
    kept = json.loads((c / "search" / "front.json").read_text())["front"]
    assert [e["flops"] for e in kept] == [56]
    # another ceiling on --resume: a clear refusal naming the key, before the state is read
    # (it read as a damaged state file)
    other = {**more, "search": {**more["search"], "max_flops": 100.0}}
    with pytest.raises(RunFolderError, match=r"differs .* on search\.max_flops; .*or delete"):
        evolve(config_from_dict(other), RunFolder(c), resume=True, progress=False)


def test_rescore_never_uses_more_slots_than_a_generation() -> None:
    calls: list[tuple[int, int, list[int]]] = []

    class Counting:
        def evaluate(self, archs: Any, episodes: int, seeds: list[int]) -> list[str]:
            calls.append((len(archs), episodes, seeds))
            return [str(a) for a in archs]

    archs = [MLPArch((w,)) for w in (4, 8, 12, 16, 24)]
    out = rescore(Counting(), archs, [7, 8, 9], max_slots=6)
    assert out == [str(a) for a in archs]  # in order, each once
    assert calls == [(2, 3, [7, 8, 9]), (2, 3, [7, 8, 9]), (1, 3, [7, 8, 9])]
    calls.clear()
    rescore(Counting(), archs[:2], [1, 2, 3, 4], max_slots=3)  # fewer slots than seeds: 1 by 1
    assert [c[0] for c in calls] == [1, 1]


def evolve_killed_at_the_third_write(
    cfg: Config, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``evolve`` killed at its third file write: generation 3's state.json is written, its
    state.npz is not."""
    from a2d_evo.search import state as state_mod

    real = state_mod.write_bytes
    calls = {"n": 0}

    def dying(path: Path, data: bytes) -> Path:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("killed")
        return real(path, data)

    monkeypatch.setattr(state_mod, "write_bytes", dying)
    with pytest.raises(RuntimeError, match="killed"):
        evolve(cfg, RunFolder(root), progress=False)
    monkeypatch.setattr(state_mod, "write_bytes", real)


def test_kill_between_state_json_and_npz_resumes_bit_exact(
    reference_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """state.json of generation 3 written, its state.npz not: the resume drops the episodes
    of the uncommitted generation (survivors had appended theirs) and plays them again."""
    cfg = make_run(tmp_path)
    evolve_killed_at_the_third_write(cfg, tmp_path, monkeypatch)
    search = tmp_path / "search"
    ahead = json.loads((search / "state.json").read_text())
    assert ahead["generation"] == 3 and _npz_generation(search / "state.npz") == 2
    # survivors of generation 2 appended episodes to records that generation 1 committed
    assert any(r["generations"][0] < 2 and r["generations"][-1] == 2 for r in ahead["cache"])
    evolve(cfg, RunFolder(tmp_path), resume=True, progress=False)
    assert front_without_latency(search / "front.json") == front_without_latency(
        reference_run / "search" / "front.json"
    )
    for name in ("history.csv", "hypervolume.csv", "state.json"):
        assert (search / name).read_text() == (reference_run / "search" / name).read_text()


def resumes_bit_exact_after_a_kill(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raw: dict[str, Any]
) -> None:
    """A search of ``raw`` killed at its third state write, then resumed, ends with the same
    files as one run straight through."""
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    evolve(make_run(straight, raw), RunFolder(straight), progress=False)
    cfg = make_run(killed, raw)
    evolve_killed_at_the_third_write(cfg, killed, monkeypatch)
    evolve(cfg, RunFolder(killed), resume=True, progress=False)
    assert front_without_latency(killed / "search" / "front.json") == front_without_latency(
        straight / "search" / "front.json"
    )
    for name in ("history.csv", "hypervolume.csv", "state.json"):
        assert (killed / "search" / name).read_text() == (straight / "search" / name).read_text()


def test_a_search_on_shrunk_estimates_resumes_bit_exact_after_a_kill(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The saved population's objectives are shrunk estimates, not plain means: the resume
    checks them as such and continues bit for bit (it was refused as corrupt before)."""
    raw = {**RAW, "search": {**RAW["search"], "estimate": "shrunk", "mutation": "reset"}}
    resumes_bit_exact_after_a_kill(tmp_path, monkeypatch, raw)


def test_a_budget_raised_within_what_was_played_delivers_the_front_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The generation that crosses search.budget_steps is played in full, so a --resume may
    raise the budget to a value the search has already played: no generation is left, but the
    new cut keeps episodes the old one left out. The front is delivered again and equals a
    fresh search's at the raised budget (the old front, cut at 600, was returned, though
    config_history recorded 1200)."""

    def raw(budget: int) -> dict[str, Any]:
        return {**RAW, "search": {**RAW["search"], "gens": 50, "budget_steps": budget}}

    a, b = tmp_path / "a", tmp_path / "b"
    evolve(make_run(a, raw(600)), RunFolder(a), progress=False)
    played = json.loads((a / "search" / "front.json").read_text())["search"]
    assert played["env_steps"] + played["discarded_env_steps"] >= 1200  # already played
    capsys.readouterr()
    evolve(config_from_dict(raw(1200)), RunFolder(a), resume=True, progress=True)
    out = capsys.readouterr().out  # which limit leaves nothing to play is said
    assert (
        "no generation is left to play (its search.budget_steps 1,200 is spent; raise it to "
        "search on), so the front is delivered again under it"
    ) in out, out
    evolve(make_run(b, raw(1200)), RunFolder(b), progress=False)
    raised = front_without_latency(a / "search" / "front.json")
    assert raised["search"]["budget_steps"] == 1200
    assert raised == front_without_latency(b / "search" / "front.json")
    for name in ("history.csv", "hypervolume.csv"):
        assert (a / "search" / name).read_text() == (b / "search" / name).read_text()


def test_a_front_left_by_a_kill_before_the_finished_state_is_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after front.json was written but before the state was saved as finished: a
    --resume that raises search.gens removes that front at once (it is delivered again at the
    end), so a continuation interrupted in its first new generation leaves no 2-generation
    front under a 4-generation config."""
    from a2d_evo.search import evolution

    cfg = make_run(tmp_path, SMALL)
    real_save = evolution._Search._save

    def save(self: Any, problem: Any, algorithm: Any, generation: int, finished: bool,
             norm: Any) -> None:  # fmt: skip
        if finished:
            raise KeyboardInterrupt
        real_save(self, problem, algorithm, generation, finished, norm)

    monkeypatch.setattr(evolution._Search, "_save", save)
    with pytest.raises(KeyboardInterrupt):
        evolve(cfg, RunFolder(tmp_path), progress=False)
    monkeypatch.undo()
    assert (tmp_path / "search" / "front.json").is_file()
    assert not json.loads((tmp_path / "search" / "state.json").read_text())["finished"]
    more = config_from_dict({**SMALL, "search": {**SMALL["search"], "gens": 4}})
    monkeypatch.setattr(evolution, "play_generation", _interrupt)
    with pytest.raises(KeyboardInterrupt):
        evolve(more, RunFolder(tmp_path), resume=True, progress=False)
    assert not (tmp_path / "search" / "front.json").exists()


def test_budget_steps_stops_the_search_and_reports_what_it_spent(tmp_path: Path) -> None:
    raw = {**RAW, "search": {**RAW["search"], "gens": 50, "budget_steps": 1500}}
    cfg = make_run(tmp_path, raw)
    evolve(cfg, RunFolder(tmp_path), progress=False)
    with open(tmp_path / "search" / "hypervolume.csv") as f:
        hv = list(csv.DictReader(f))
    steps = [int(r["env_steps"]) for r in hv]
    # no generation starts once 1500 steps are spent: only the last one ends past the budget
    assert 1 < len(hv) < 50 and steps[-2] < 1500 <= steps[-1]
    front = json.loads((tmp_path / "search" / "front.json").read_text())
    ran = front["search"]
    assert ran["stopped_by"] == "budget_steps" and ran["budget_steps"] == 1500
    assert ran["generations"] == len(hv)
    # the front is chosen from the episodes within the budget: at most one episode (<= 120
    # steps) past it; the rest of the last generation was played and is reported, not used
    assert 1500 <= ran["env_steps"] < 1500 + 120 and ran["discarded_episodes"] > 0
    state = json.loads((tmp_path / "search" / "state.json").read_text())
    played = sum(sum(r["lengths"]) for r in state["cache"])
    assert ran["env_steps"] + ran["discarded_env_steps"] == played == steps[-1]
    assert ran["episodes_played"] + ran["discarded_episodes"] == int(hv[-1]["episodes"])
    # the last generation's offspring whose episodes all start past the budget are no candidates
    assert ran["evaluations"] < len(state["cache"])
    # the report says the same: generations played of the most, archs within the budget
    from a2d_evo.report import run_data
    from a2d_evo.report.markdown import render_markdown

    run = RunFolder(tmp_path)
    md = render_markdown(cfg, run, run_data.load_run(cfg, run))
    assert f"population 8, at most 50 generations ({len(hv)} played), " in md, md
    assert (
        f"- candidates evaluated: {ran['evaluations']} within the budget "
        f"({len(state['cache'])} played; the Pareto plot shows every one)"
    ) in md, md
    # resuming the finished search does not play on
    evolve(cfg, RunFolder(tmp_path), resume=True, progress=False)
    assert json.loads((tmp_path / "search" / "front.json").read_text()) == front


def test_budget_cut_new_first_keeps_the_last_generations_new_archs(tmp_path: Path) -> None:
    """``search.budget_cut: new_first`` reaches the search's own cut: the front is chosen from
    the archs the new order keeps, which include more of the crossing generation's new archs
    than the default order would have kept from the same archive."""
    from a2d_evo.search.budget import within_budget

    search = {**RAW["search"], "gens": 50, "budget_steps": 1500, "budget_cut": "new_first"}
    cfg = make_run(tmp_path, {**RAW, "search": search})
    evolve(cfg, RunFolder(tmp_path), progress=False)
    ran = json.loads((tmp_path / "search" / "front.json").read_text())["search"]
    cache = json.loads((tmp_path / "search" / "state.json").read_text())["cache"]
    last = max(g for r in cache for g in r["generations"])

    def new_in_last(kept: list[dict[str, Any]]) -> int:
        return sum(r["generations"][0] == last for r in kept)

    new, cut = within_budget(cache, 1500, "new_first")
    old, _ = within_budget(cache, 1500, "replays_first")
    assert ran["evaluations"] == len(new) and ran["env_steps"] == cut.env_steps
    assert new_in_last(new) > new_in_last(old)


def test_a_budget_below_one_generation_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"search\.budget_steps: 15 is below one generation's"):
        config_from_dict({**RAW, "search": {**RAW["search"], "budget_steps": 15}})  # 8 x 2 = 16
    assert config_from_dict({**RAW, "search": {**RAW["search"], "budget_steps": 16}})
    shrunk = {**RAW["search"], "estimate": "shrunk", "anchors": 3}  # (8 + 3) x 2 = 22
    with pytest.raises(ConfigError, match=r"\(search\.pop \+ search\.anchors\).* at least 22"):
        config_from_dict({**RAW, "search": {**shrunk, "budget_steps": 21}})
    assert config_from_dict({**RAW, "search": {**shrunk, "budget_steps": 22}})


def test_a_format_1_state_or_front_is_refused_with_what_to_do(
    reference_run: Path, tmp_path: Path
) -> None:
    from a2d_evo.report.front_file import load_front

    root = tmp_path / "run"
    shutil.copytree(reference_run, root)
    front = root / "search" / "front.json"
    data = json.loads(front.read_text())
    data["format_version"] = 1
    front.write_text(json.dumps(data))
    with pytest.raises(FormatError, match="format_version 1: format 1 kept one first estimate"):
        load_front(RunFolder(root))
    front.unlink()
    npz = root / "search" / "state.npz"
    with np.load(npz) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["format_version"] = np.array(1, dtype=np.int64)
    np.savez(npz, **arrays)  # type: ignore[arg-type]
    before = sorted(p.name for p in (root / "search").iterdir())
    with pytest.raises(FormatError, match=r"has format_version 1: .*run `a2d-evo evolve` again"):
        evolve(config_from_dict(RAW), RunFolder(root), resume=True, progress=False)
    assert sorted(p.name for p in (root / "search").iterdir()) == before  # nothing written


def test_a_front_of_other_weights_is_neither_exported_nor_resumed(
    finished: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """front.json and the search state record the digests of the supernet and teacher they
    are of: after the supernet changed (a train-supernet --resume), export would ship new
    weights under the old figures and a resumed search would rank old records with new ones."""
    from a2d_evo.report.front_export import export_front
    from a2d_evo.runs.files import torch_load

    root = tmp_path / "run"
    shutil.copytree(finished, root)
    run = RunFolder(root)
    front = json.loads((run.search / "front.json").read_text())
    assert set(front["search"]["sources"]) == {"supernet", "teacher"}
    state = torch_load(run.supernet_weights)
    state["policy.bias"] = state["policy.bias"] + 1.0
    torch_save(run.supernet_weights, state)
    cfg = config_from_dict(SMALL)
    with pytest.raises(RunFolderError, match="changed since the search chose"):
        export_front(cfg, run, pick="all", progress=False)
    assert not run.agents.exists() or not any(run.agents.iterdir())
    # the refusal comes after the evaluator started (a local Ray and its actors under
    # backend ray): it is closed all the same (it was left running)
    from a2d_evo.evaluation.population import PopulationEvaluator

    closed: list[bool] = []
    real_close = PopulationEvaluator.close
    monkeypatch.setattr(
        PopulationEvaluator, "close", lambda self: (closed.append(True), real_close(self))[1]
    )
    with pytest.raises(RunFolderError, match="the supernet changed since the search"):
        evolve(cfg, run, resume=True, progress=False)
    assert closed == [True]
    # a state from before the digests were recorded cannot show the change: refused too
    # (it resumed, and ranked the old weights' records with the new ones')
    state_json = run.search / "state.json"
    saved = json.loads(state_json.read_text())
    del saved["sources"]
    state_json.write_text(json.dumps(saved))
    before = sorted(p.name for p in run.search.iterdir())
    with pytest.raises(RunFolderError, match="records no digests of the supernet and teacher"):
        evolve(cfg, run, resume=True, progress=False)
    assert sorted(p.name for p in run.search.iterdir()) == before


def test_a_resume_on_another_population_forward_is_refused(
    finished: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The state records the arithmetic its episodes were played with: a resume on another
    (the reference path forced, a GPU under device auto) agrees only within float tolerance,
    and near-tied greedy actions would flip; it went on without a word."""
    root = tmp_path / "run"
    shutil.copytree(finished, root)
    run = RunFolder(root)
    state_json = run.search / "state.json"
    saved = json.loads(state_json.read_text())
    assert saved["forward"].startswith("native-cpu/"), saved["forward"]
    before = sorted(p.name for p in run.search.iterdir())
    monkeypatch.setenv("A2D_EVO_REFERENCE_OPS", "1")
    cfg = config_from_dict(SMALL)
    with pytest.raises(RunFolderError, match=r"population forward native-cpu/.* would use "
                       r"reference-cpu \(device 'cpu'\)"):  # fmt: skip
        evolve(cfg, run, resume=True, progress=False)
    assert sorted(p.name for p in run.search.iterdir()) == before
    # a state from before the record says nothing to check against: it resumes as it did
    del saved["forward"]
    state_json.write_text(json.dumps(saved))
    evolve(cfg, run, resume=True, progress=False)


def test_a_front_searched_against_another_teacher_is_not_exported(
    finished: Path, tmp_path: Path
) -> None:
    """The teacher rewritten after the search (a train-teacher --resume, an import-teacher):
    export refuses, as for the supernet (the front is normalised against the old teacher and
    the fine-tune would distil from the new one); it used to compare the supernet only."""
    from a2d_evo.nets.agent_folder import load_agent, save_agent
    from a2d_evo.report.front_export import export_front

    root = tmp_path / "run"
    shutil.copytree(finished, root)
    run = RunFolder(root)
    teacher = load_agent(run.teacher_agent)
    with torch.no_grad():
        teacher.value.bias.add_(1.0)  # another teacher: its policy.pt differs
    save_agent(teacher, run.teacher_agent, onnx=False)
    with pytest.raises(RunFolderError, match=r"teacher/agent changed since the search chose"):
        export_front(config_from_dict(SMALL), run, pick="all", progress=False)
    assert not run.agents.exists() or not any(run.agents.iterdir())


def test_survivors_rank_on_the_archive_s_current_seed_adjusted_estimates() -> None:
    """With ``estimate: seed_adjusted`` and no re-evaluation, a survivor's seed-adjusted
    return moves as the anchors measure new generations (an easy first generation, +100):
    after every generation each member of the population holds the objectives the archive
    gives it now, not those of the generation it played in."""
    from a2d_evo.config import config_from_dict
    from a2d_evo.evaluation.seeds import generation_seeds
    from a2d_evo.search.generation import play_generation
    from a2d_evo.search.nsga import make_algorithm
    from a2d_evo.search.problem import SubnetProblem

    easy = set(generation_seeds(7, 0, 3))

    def evaluate(archs: Sequence[Arch], episodes: int, seeds: Sequence[int]) -> list[EvalResult]:
        s = list(seeds[:episodes])
        return [
            make_result([sum(a.widths) + 100.0 * (x in easy) + x % 3 for x in s], s, [10] * 3)
            for a in archs  # type: ignore[attr-defined]
        ]

    anchors = [SPACE.encode(MLPArch((4,))), SPACE.encode(MLPArch((32, 32)))]
    prob = SubnetProblem(SPACE, evaluate, OBS, ACTIONS, NORM, episodes=3, reevaluate=False,
                         estimate="seed_adjusted", anchors=anchors)  # fmt: skip
    algo = make_algorithm(config_from_dict({"seed": 7, "search": {"pop": 8, "episodes": 3}}), SPACE)
    algo.setup(prob, verbose=False)
    for g in range(3):
        assert play_generation(algo, prob, generation_seeds(7, g, 3), g)
        F, _ = prob.objectives([SPACE.key(np.round(x)) for x in algo.pop.get("X")])
        np.testing.assert_allclose(algo.pop.get("F"), F, rtol=0, atol=1e-12)


def test_references_are_measured_on_the_first_twenty_generations_seeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R_random and R_teacher are measured on the seeds of the first ``min(gens, 20)``
    generations (every candidate of those generations plays them), not on generation 0's
    alone: 5 blocks for a 5-generation search, 20 for a 25-generation one."""

    from a2d_evo.config import config_from_dict
    from a2d_evo.evaluation.seeds import generation_seeds
    from a2d_evo.runs.folder import RunFolder
    from a2d_evo.search import evolution

    class Measured(Exception):
        pass

    blocks: list[list[list[int]]] = []

    def record(cfg, teacher, seed_blocks, max_steps):  # type: ignore[no-untyped-def]
        blocks.append(seed_blocks)
        raise Measured

    monkeypatch.setattr(evolution, "reference_returns", record)
    for gens in (5, 25):
        raw = {**RAW, "search": {**RAW["search"], "gens": gens}}
        make_run(tmp_path / f"run{gens}", raw)
        with pytest.raises(Measured):
            evolution.evolve(config_from_dict(raw), RunFolder(tmp_path / f"run{gens}"),
                             progress=False)  # fmt: skip
    assert blocks[0] == [generation_seeds(3, g, 2) for g in range(5)]
    assert blocks[1] == [generation_seeds(3, g, 2) for g in range(20)]


def test_log_flops_crowding_is_pymoos_on_log10_flops_and_keeps_the_cheap_decades() -> None:
    """``search.crowding: log_flops`` measures NSGA-II's crowding distance on log10 FLOPs, the
    hypervolume's axis (a review: on linear FLOPs the cheap decades, bunched near 0, were the
    first thinned out). Hand values on (-score, FLOPs) = (-1, 10), (-0.9, 100), (-0.8, 1e3),
    (-0.5, 1e5): the inner points get (0.2 / 0.5 + 2 / 4) / 2 = 0.45 and (0.4 / 0.5 + 3 / 4)
    / 2 = 0.775 on log10 FLOPs (1, 2, 3, 5), against (0.4 + 990 / 99990) / 2 = 0.20495 and
    (0.8 + 99900 / 99990) / 2 = 0.89955 on linear FLOPs; the ends are infinite."""
    from pymoo.core.population import Population
    from pymoo.core.problem import Problem
    from pymoo.operators.survival.rank_and_crowding import RankAndCrowding
    from pymoo.operators.survival.rank_and_crowding.metrics import calc_crowding_distance

    from a2d_evo.search.nsga import LOG_FLOPS_CROWDING, make_algorithm

    F = np.array([[-1.0, 10.0], [-0.9, 100.0], [-0.8, 1e3], [-0.5, 1e5]])
    log = LOG_FLOPS_CROWDING.do(F, n_remove=0)
    assert np.isinf(log[[0, 3]]).all() and log[1:3] == pytest.approx([0.45, 0.775])
    linear = calc_crowding_distance(F)
    assert linear[1:3] == pytest.approx([0.20495, 0.89955], abs=1e-5)
    # a front over four decades, half of it kept: the log axis keeps more of the cheap end
    flops = np.geomspace(10, 1e5, 24)
    front = np.column_stack([-np.log10(flops) / 5, flops])
    kept = {}
    for name, func in (("flops", "cd"), ("log_flops", LOG_FLOPS_CROWDING)):
        pop = Population.new("X", np.arange(24).reshape(-1, 1), "F", front)
        survivors = RankAndCrowding(crowding_func=func).do(
            Problem(n_var=1, n_obj=2), pop, n_survive=12, random_state=np.random.default_rng(0)
        )
        kept[name] = int((survivors.get("F")[:, 1] < 1e3).sum())
    assert kept == {"flops": 1, "log_flops": 6}, kept  # 12 of the 24 are under 1e3
    # the config key picks it; the default keeps pymoo's own
    for key, want in (("flops", "calc_crowding_distance"), ("log_flops", "log_flops")):
        algo = make_algorithm(config_from_dict({"search": {"crowding": key}}), SPACE)
        assert want in algo.survival.crowding_func.function.__name__


def test_a_search_with_log_flops_crowding_resumes_bit_exact_after_a_kill(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A killed search with ``search.crowding: log_flops`` resumes to the uninterrupted one's
    files bit for bit."""
    raw = {**RAW, "search": {**RAW["search"], "crowding": "log_flops", "mutation": "reset"}}
    resumes_bit_exact_after_a_kill(tmp_path, monkeypatch, raw)


def test_a_budget_that_leaves_fewer_archs_than_the_delivery_wants_is_warned_of(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``search.budget_steps`` at its least (pop x episodes steps) keeps the first draws only:
    the front is chosen among fewer archs than the delivery's candidates, and the search says
    so, even with the progress off (a review: only the discarded steps were counted)."""
    raw = {**RAW, "search": {**RAW["search"], "budget_steps": 16}}
    evolve(make_run(tmp_path / "a", raw), RunFolder(tmp_path / "a"), progress=False)
    err = capsys.readouterr().err
    kept = json.loads((tmp_path / "a" / "search" / "front.json").read_text())["search"]
    said = re.search(
        r"evolve: warning: search.budget_steps 16 left (\d+) archs? of the search's own within "
        r"the budget, fewer than the delivery's 8 candidates \(search.candidates, or pop\): the "
        r"front is chosen among them; raise search.budget_steps to search",
        err,
    )
    assert said and int(said.group(1)) == kept["evaluations"] < 8, err  # no anchors here
    evolve(make_run(tmp_path / "b"), RunFolder(tmp_path / "b"), progress=False)
    assert "warning" not in capsys.readouterr().err
    # a budget that did not stop the search (gens did) is not what to raise: no warning
    loose = {**RAW, "search": {**RAW["search"], "gens": 1, "candidates": 16, "budget_steps": 10**9}}
    evolve(make_run(tmp_path / "c", loose), RunFolder(tmp_path / "c"), progress=False)
    assert "warning" not in capsys.readouterr().err
