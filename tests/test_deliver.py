"""The delivered front (``report.deliver.write_delivered``): chosen on the validation seeds,
scored on the final ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from a2d_evo.config import config_from_dict
from a2d_evo.errors import TrainingError
from a2d_evo.evaluation.seeds import final_seeds
from a2d_evo.formats import validated
from a2d_evo.report.deliver import write_delivered
from a2d_evo.runs.folder import RunFolder


def row(agent: str, flops: int, final: float, validation: float | None) -> dict[str, Any]:
    return {"agent": agent, "flops": flops, "normalised_return": final,
            "validation_return_mean": validation}  # fmt: skip


def delivered(tmp_path: Path, rows: list[dict[str, Any]]) -> dict[str, Any]:
    run = RunFolder(tmp_path)
    run.agents.mkdir(parents=True, exist_ok=True)
    path = write_delivered(config_from_dict({}), run, rows, None, progress=False)
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_members_are_chosen_on_the_validation_seeds_not_on_the_seeds_that_score_them(
    tmp_path: Path,
) -> None:
    # on the final seeds `big` scores higher than `small` and both would be delivered; on the
    # validation seeds `small` plays better at fewer FLOPs, so `big` is dominated
    rows = [row("small", 100, 0.90, 210.0), row("big", 200, 1.00, 205.0)]
    data = delivered(tmp_path, rows)
    assert data["members"] == ["small"] and data["chosen_on"] == "validation seeds"
    assert [r["agent"] for r in data["exported"]] == ["small", "big"]


def test_an_agent_that_does_not_beat_random_is_not_delivered(tmp_path: Path) -> None:
    """A 0-FLOPs random agent dominates it: `tiny` (a below-random arch the fine-tune did not
    lift) was the cheapest, so no other row dominated it, and it was delivered. The random
    policy plays the same validation seeds (CartPole: about 22)."""
    from a2d_evo.evaluation.episodes import random_policy_return
    from a2d_evo.evaluation.seeds import validation_seed

    cfg = config_from_dict({})
    r_random = random_policy_return(
        cfg, cfg.finetune.validation_episodes, validation_seed(cfg.seed)
    ).mean
    assert 10.0 < r_random < 40.0
    rows = [row("tiny", 20, 0.5, r_random), row("lifted", 40, 0.6, r_random + 1.0),
            row("big", 200, 1.00, 205.0)]  # fmt: skip
    data = delivered(tmp_path, rows)
    assert data["members"] == ["lifted", "big"] and data["not_above_random"] == ["tiny"]
    assert data["none_above_random"] is False
    from a2d_evo.report.tables import delivered_table

    for r in data["exported"]:  # what delivered_table reads of a real export's rows
        r.update(return_mean=1.0, return_std=0.0, episodes=4, inherited_return_mean=0.0)
    assert delivered_table(data).endswith(
        f"Not delivered, as no better than the uniform-random policy (its return {r_random:.1f} "
        "on the validation episodes that chose the delivery): `tiny`."
    )
    assert data["random_return"] == r_random
    # when none beats it, the best one alone (a front is never empty)
    rows = [row("tiny", 20, 0.5, 1.0), row("small", 40, 0.6, 5.0)]
    data = delivered(tmp_path, rows)
    assert data["members"] == ["small"] and data["none_above_random"] is True
    assert data["not_above_random"] == ["tiny", "small"]  # said as it is: it too
    # chosen on the final seeds: normalised, random is 0 there
    rows = [row("tiny", 20, -0.1, None), row("small", 40, 0.6, None)]
    data = delivered(tmp_path, rows)
    assert data["members"] == ["small"] and data["random_return"] == 0.0


def test_without_a_validation_the_final_seeds_choose_and_it_says_so(tmp_path: Path) -> None:
    # "worse" has the best validation figure but not every row has one: the final seeds choose,
    # and on them "big" dominates it
    rows = [row("small", 100, 0.90, 210.0), row("big", 200, 1.00, None),
            row("worse", 300, 0.95, 250.0)]  # fmt: skip
    data = delivered(tmp_path, rows)
    assert data["members"] == ["small", "big"] and data["chosen_on"] == "final seeds"
    # a figure that is no finite number (NaN, a bool) is none: the rule the report reads the
    # file with (formats.validated), so the two never disagree on which seeds chose
    for bad in (float("nan"), True):
        rows[1]["validation_return_mean"] = bad
        data = delivered(tmp_path, rows)
        assert data["members"] == ["small", "big"] and data["chosen_on"] == "final seeds"
        assert not validated(data["exported"])
    rows[1]["validation_return_mean"] = 205.0
    assert validated(delivered(tmp_path, rows)["exported"])


def test_the_report_says_which_seeds_chose_the_members_and_refuses_an_unknown_choice(
    tmp_path: Path,
) -> None:
    from test_report import make_run

    from a2d_evo.report.run_data import load_run

    run = make_run(tmp_path / "run")
    cfg = run.load_config()
    names = sorted(p.name for p in run.agents.iterdir() if (p / "metrics.json").is_file())
    base = {"format_version": 1, "finetune_steps": 0, "members": names[:1], "exported": []}
    for chosen_on, ok in (("validation seeds", True), ("final seeds", True), ("lucky", False)):
        (run.agents / "delivered.json").write_text(json.dumps({**base, "chosen_on": chosen_on}))
        data = load_run(cfg, run)
        assert (data.delivered == names[:1]) == ok
        assert data.delivered_chosen_on == (chosen_on if ok else "final seeds")
        assert any("unknown 'chosen_on'" in m for m in data.missing) != ok


def test_the_report_says_a_min_return_filter_came_before_the_validation(tmp_path: Path) -> None:
    """``export --min-return`` records ``final seeds`` although the validation seeds chose
    among the members it kept: the report names both, not "no validation ran"."""
    from test_report import make_run

    from a2d_evo.report.markdown import render_markdown
    from a2d_evo.report.run_data import load_run

    run = make_run(tmp_path / "run")
    cfg = run.load_config()
    names = sorted(p.name for p in run.agents.iterdir() if (p / "metrics.json").is_file())
    scored = json.loads((run.agents / names[0] / "metrics.json").read_text())["return_mean"]
    validated = [{"agent": names[0], "return_mean": scored, "validation_return_mean": 1.0}]
    unvalidated = [{"agent": names[0], "return_mean": scored, "validation_return_mean": None}]
    for chosen_on, rows, says in (
        ("validation seeds", validated, "chosen on the fine-tune's validation seeds and scored"),
        ("final seeds", validated, "filtered on the final seeds that score them"),
        ("final seeds", unvalidated, "no validation ran"),
        ("final seeds", [], "no validation ran"),
    ):
        (run.agents / "delivered.json").write_text(json.dumps(
            {"format_version": 1, "finetune_steps": 0, "members": names[:1],
             "exported": rows, "chosen_on": chosen_on}
        ))  # fmt: skip
        data = load_run(cfg, run)
        assert data.delivered == names[:1] and data.delivered_validated == (rows == validated)
        text = render_markdown(cfg, run, data)
        assert says in text, (chosen_on, rows)


def test_an_interrupted_export_fine_tunes_only_the_members_not_yet_done(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Agent by agent: a member whose metrics.json records this fine-tune (budget, validation,
    rate, settings) scored on the final seeds is kept; the others are fine-tuned again: none
    done, another budget, scored on seeds of its own (a standalone `a2d-evo finetune`, which
    export adopted, reporting its figures as the final seeds'), other settings (an export
    with another distill.alpha kept members fine-tuned with the first)."""
    from a2d_evo.report import deliver
    from a2d_evo.train import finetune_pool
    from a2d_evo.train.finetune import finetune_recipe

    cfg = config_from_dict({"finetune": {"steps": 256, "validation_episodes": 4}})
    seeds = final_seeds(cfg.seed, cfg.search.final_episodes)
    done = {"finetune_budget": 256, "finetune_lr": cfg.finetune_lr,
            "finetune_recipe": finetune_recipe(cfg), "seeds": seeds, "before": {"seeds": seeds},
            "inherited": {"return_mean": 1.0, "normalised_return": 0.5},
            "finetune_validation": {"episodes": 4, "kept": "fine-tuned", "before": 1.0,
                                    "after": 2.0}}  # fmt: skip
    own = [s + 7 for s in seeds]
    other = config_from_dict({"finetune": {"steps": 256, "validation_episodes": 4},
                              "distill": {"alpha": 2.5}})  # fmt: skip
    assert finetune_recipe(other) != finetune_recipe(cfg)
    runtime = config_from_dict({"finetune": {"steps": 256, "validation_episodes": 4},
                                "env": {"workers": 2}})  # fmt: skip
    assert finetune_recipe(runtime) == finetune_recipe(cfg)  # how the env is stepped
    base = {"flops": 100, "return_mean": 3.0, "normalised_return": 0.9}
    folders = []
    for name, extra in (("a", done), ("b", {}), ("c", {**done, "finetune_budget": 128}),
                        ("d", {**done, "seeds": own, "before": {"seeds": own}}),
                        ("e", {**done, "finetune_recipe": finetune_recipe(other)})):  # fmt: skip
        folder = tmp_path / "agents" / name
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({**base, **extra}))
        folders.append(folder)
    trained = []

    def finetune(folder: Path, cfg_: Any, **kw: Any) -> dict[str, Any]:
        trained.append(folder.name)
        return {"metrics": {**base, **done, "return_mean": 4.0}}

    monkeypatch.setattr(finetune_pool, "finetune_agent", finetune)
    rows = deliver.finetune_members(cfg, RunFolder(tmp_path), folders, progress=False)
    assert trained == ["b", "c", "d", "e"]
    assert [r["return_mean"] for r in rows] == [3.0, 4.0, 4.0, 4.0, 4.0]
    assert all(r["validation_return_mean"] == 2.0 for r in rows)


@pytest.mark.parametrize(
    ("edit", "why"),
    [({"normalised_return": float("inf")}, "normalised_return must be a finite number"),
     ({"flops": None}, "no 'flops'"), ({"return_mean": "high"}, "return_mean must be a")],
)  # fmt: skip
def test_a_member_kept_from_an_earlier_export_is_checked_as_the_report_checks_it(
    tmp_path: Path, edit: dict[str, Any], why: str
) -> None:
    """A member whose metrics.json records this fine-tune is used as it stands: an Infinity
    there beat every member of its FLOPs out of delivered.json, a missing key was a KeyError."""
    from a2d_evo.errors import FormatError
    from a2d_evo.report import deliver

    cfg = config_from_dict({"finetune": {"steps": 0}})
    folder = tmp_path / "agents" / "a"
    folder.mkdir(parents=True)
    metrics = {"flops": 100, "return_mean": 3.0, "normalised_return": 0.9, **edit}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(FormatError, match=why):
        deliver.finetune_members(cfg, RunFolder(tmp_path), [folder], progress=False)


def test_export_keeps_delivered_json_true_to_the_folders(
    finished: Path, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    """delivered.json goes as soon as an export re-extracts a member it lists (an interrupted
    export left it, reported as current beside inherited weights), and stays when a single
    member export kept that member untouched; ``--min-return`` chose on the final seeds, and
    delivered.json says so; ``--set eval.num_envs`` (R_random depends on it) is refused."""
    import shutil

    from a2d_evo.cli import main
    from a2d_evo.report.front_export import export_front
    from a2d_evo.train import finetune_pool

    root = tmp_path / "run"
    shutil.copytree(finished, root)
    delivered_json = root / "agents" / "delivered.json"
    assert main(["export", str(root), "--finetune", "64", "--quiet"]) == 0
    assert json.loads(delivered_json.read_text())["chosen_on"] == "validation seeds"
    weights = (root / "agents" / "front_00" / "policy.pt").read_bytes()
    assert main(["export", str(root), "--pick", "0", "--finetune", "64", "--quiet"]) == 0
    assert (root / "agents" / "front_00" / "policy.pt").read_bytes() == weights  # kept
    assert delivered_json.is_file()  # ...so the delivery still describes the folders

    capsys.readouterr()
    assert main(["export", str(root), "--set", "eval.num_envs=3", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--set eval.num_envs" in err and "R_random" in err, err

    def interrupted(*args: Any, **kw: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(finetune_pool, "finetune_agent", interrupted)
    run = RunFolder(root)
    capsys.readouterr()
    with pytest.raises(KeyboardInterrupt):
        export_front(run.load_config(), run, finetune_steps=32, progress=True)
    assert not delivered_json.exists()  # the members it listed are inherited weights now
    # said as what it is: this export (all members) delivers it again; it named itself
    out = capsys.readouterr().out
    assert f"removed {delivered_json}: " in out and "; this export delivers the front again" in out
    # one member exported again at another budget: the hint names the export at the budget
    # the removed delivery had (this export's would re-deliver at 32 and stale the baselines)
    monkeypatch.undo()
    assert main(["export", str(root), "--finetune", "64", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["export", str(root), "--pick", "0", "--finetune", "32"]) == 0
    out = capsys.readouterr().out
    assert f"run `a2d-evo export {root} --finetune 64` to deliver the whole front again" in out
    monkeypatch.undo()

    front = json.loads((root / "search" / "front.json").read_text())["front"]
    low = min(e["return_mean"] for e in front)
    argv = ["export", str(root), "--finetune", "64", "--min-return", str(low), "--quiet"]
    assert main(argv) == 0
    assert json.loads(delivered_json.read_text())["chosen_on"] == "final seeds"

    # interrupted while it extracts, before any fine-tune: the member written anew (a save cut
    # short after its policy.pt, or the next member's latency measured), the delivery still
    # listing it as fine-tuned (found by review; it went only after every extraction)
    from a2d_evo.nets import agent_folder

    real_save = agent_folder.save_agent

    def save_then_interrupt(*args: Any, **kw: Any) -> Any:
        real_save(*args, **kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(agent_folder, "save_agent", save_then_interrupt)
    assert delivered_json.is_file()
    with pytest.raises(KeyboardInterrupt):
        export_front(run.load_config(), run, finetune_steps=32, progress=False)
    assert not delivered_json.exists()


def test_the_costliest_below_random_archs_within_the_filters_come_first() -> None:
    from a2d_evo.report.pick import below_random_picks

    below = [{"flops": f, "return_mean": r} for f, r in ((20, -90.0), (60, -50.0), (40, -70.0),
                                                         (60, -40.0))]  # fmt: skip
    assert below_random_picks(below, 3) == [1, 3, 2]  # ties in file order
    assert below_random_picks(below, 0) == []
    assert below_random_picks(below, 9, max_flops=40) == [2, 0]
    assert below_random_picks(below, 9, min_return=-60.0) == [1, 3]


def test_export_fine_tunes_the_below_random_archs_asked_for(
    finished: Path, tmp_path: Path, capsys: Any
) -> None:
    """finetune.below_random exports (and fine-tunes) front.json's below_random entries as
    below_NN, chosen with the members (never a member by itself); an export run again keeps
    it; the key changes no agent's recipe; a knee pick or --finetune 0 takes none."""
    import copy
    import shutil

    from a2d_evo.cli import main
    from a2d_evo.train.finetune import finetune_recipe

    root = tmp_path / "run"
    shutil.copytree(finished, root)
    path = root / "search" / "front.json"
    data = json.loads(path.read_text())
    # a valid entry (the same figures and arch as the cheapest member)
    data["below_random"] = [copy.deepcopy(data["front"][0])]
    data["search"]["dropped_below_random"] = 3  # it lists 1 of them
    path.write_text(json.dumps(data))
    argv = ["export", str(root), "--finetune", "64", "--set", "finetune.below_random=1"]
    assert main([*argv, "--quiet"]) == 0
    agents = root / "agents"
    metrics = json.loads((agents / "below_00" / "metrics.json").read_text())
    assert metrics["below_random_index"] == 0 and "front_index" not in metrics
    assert metrics["finetune_budget"] == 64 and metrics["source"] == "front"
    done = json.loads((agents / "delivered.json").read_text())
    assert "below_00" in [r["agent"] for r in done["exported"]]
    written = (agents / "below_00" / "policy.pt").stat().st_mtime_ns
    assert main([*argv, "--quiet"]) == 0
    assert (agents / "below_00" / "policy.pt").stat().st_mtime_ns == written  # kept, not redone
    assert main(["report", str(root), "--quiet"]) == 0
    report = (root / "report" / "report.md").read_text()
    # below_00 has the arch of front row 0 here, but is no export of it
    assert "below_00, front_00" not in report and "front_00, below_00" not in report
    # asked for 2, listed 1: said; an export asking for none removes the leftover folder
    capsys.readouterr()
    assert main(["export", str(root), "--finetune", "64", "--set",
                 "finetune.below_random=2"]) == 0  # fmt: skip
    said = capsys.readouterr().out
    assert "finetune.below_random is 2, and" in said and "lists 1 of the 3 archs" in said
    (agents / "below_mine").mkdir()  # not a name export gives: kept
    assert main(["export", str(root), "--finetune", "64", "--quiet"]) == 0
    assert not (agents / "below_00").exists() and (agents / "below_mine").is_dir()
    done = json.loads((agents / "delivered.json").read_text())
    assert "below_00" not in [r["agent"] for r in done["exported"]]
    cfg = config_from_dict({"finetune": {"steps": 64}})
    asked = config_from_dict({"finetune": {"steps": 64, "below_random": 3}})
    assert finetune_recipe(asked) == finetune_recipe(cfg)
    shutil.rmtree(agents)
    assert main(["export", str(root), "--pick", "knee", "--set", "finetune.below_random=2",
                 "--finetune", "64", "--quiet"]) == 0  # fmt: skip
    assert main(["export", str(root), "--set", "finetune.below_random=2", "--finetune", "0",
                 "--quiet"]) == 0  # fmt: skip
    assert not any(p.name.startswith("below_") for p in agents.iterdir())


def test_the_supernet_budget_recorded_is_the_supernet_stage_s(tmp_path: Path) -> None:
    """A `train-supernet --resume` raise is written to supernet/config.yaml only: the
    delivered front records what the supernet trained, not the command's config."""
    from a2d_evo.config import dump_config, replace

    cfg = config_from_dict({})
    run = RunFolder(tmp_path)
    run.agents.mkdir(parents=True)
    assert json.loads(write_delivered(cfg, run, [row("a", 1, 1.0, 1.0)], None,
                                      progress=False).read_text())["supernet_steps"] == (
        cfg.supernet.total_steps
    )  # fmt: skip
    raised = replace(cfg, supernet=replace(cfg.supernet, total_steps=3 * cfg.supernet.total_steps))
    run.supernet.mkdir()
    (run.supernet / "config.yaml").write_text(dump_config(raised))
    data = json.loads(write_delivered(cfg, run, [row("a", 1, 1.0, 1.0)], None,
                                      progress=False).read_text())  # fmt: skip
    assert data["supernet_steps"] == 3 * cfg.supernet.total_steps


def test_the_report_states_the_supernet_budget_the_delivered_members_had(tmp_path: Path) -> None:
    """delivered.json's supernet_steps, not the stage's config now (a later --resume may have
    trained the supernet further since the members were extracted)."""
    from test_report import make_run

    from a2d_evo.config import dump_config, replace
    from a2d_evo.report.markdown import write_report

    run = make_run(tmp_path / "run")
    cfg = run.load_config()
    names = sorted(p.name for p in run.agents.iterdir() if (p / "metrics.json").is_file())
    delivered = {"format_version": 1, "finetune_steps": 0, "members": names[:1],
                 "exported": [], "supernet_steps": 777}  # fmt: skip
    (run.agents / "delivered.json").write_text(json.dumps(delivered))
    later = replace(cfg, supernet=replace(cfg.supernet, total_steps=999_999))
    run.supernet.mkdir(exist_ok=True)
    (run.supernet / "config.yaml").write_text(dump_config(later))
    md = write_report(cfg, run).read_text()
    assert "Each delivered agent had the supernet's 777 env steps" in md


def test_a_member_fine_tuned_under_another_validation_is_fine_tuned_again() -> None:
    """An export resumed with another finetune.validation_episodes does not keep members
    gated under the old count, or never gated (comparing the counts passed every test)."""
    from a2d_evo.report.deliver import fine_tuned
    from a2d_evo.train.finetune import finetune_recipe

    cfg = config_from_dict({"finetune": {"steps": 256, "validation_episodes": 4}})
    seeds = final_seeds(cfg.seed, cfg.search.final_episodes)
    gate = {"episodes": 4, "kept": "fine-tuned", "before": 1.0, "after": 2.0}
    done = {"finetune_budget": 256, "finetune_lr": cfg.finetune_lr,
            "finetune_recipe": finetune_recipe(cfg), "seeds": seeds, "before": {"seeds": seeds},
            "inherited": {"return_mean": 1.0}, "finetune_validation": gate}  # fmt: skip
    assert fine_tuned(done, cfg)
    assert not fine_tuned({**done, "finetune_validation": {**gate, "episodes": 2}}, cfg)
    assert not fine_tuned({**done, "finetune_validation": None}, cfg)


def test_export_plays_the_final_seeds_once_per_member_and_takes_the_front_s_figures(
    finished: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    """The search's final re-scoring already played the inherited weights, the teacher and the
    random policy on the final seeds: export takes those figures (``before``, R_teacher,
    R_random) and plays the final seeds once per member, for the fine-tuned weights, besides
    each member's validation episodes. The front's references are what a fresh measurement
    gives (the same seeds, the same teacher). The ONNX exporter (seconds per call) runs once
    per member, on the weights that ship."""
    import shutil

    import torch

    from a2d_evo.config import replace
    from a2d_evo.evaluation import episodes
    from a2d_evo.evaluation.episodes import evaluate_agent, random_policy_return
    from a2d_evo.nets import agent_folder
    from a2d_evo.nets.agent_folder import load_agent, onnx_bytes
    from a2d_evo.report.front_export import export_front
    from a2d_evo.train import finetune

    root = tmp_path / "run"
    shutil.copytree(finished, root)
    run = RunFolder(root)
    cfg = run.load_config()
    seeds = final_seeds(cfg.seed, cfg.search.final_episodes)
    data = json.loads((run.search / "front.json").read_text())
    played: list[tuple[str, int, int]] = []

    def recorded(name: str, play: Any) -> Any:
        def wrapper(*args: Any, **kw: Any) -> Any:
            seed, episodes_ = (args[2], args[1]) if name == "random" else (args[3], args[2])
            played.append((name, seed, episodes_))
            return play(*args, **kw)

        return wrapper

    monkeypatch.setattr(episodes, "evaluate_agent", recorded("agent", evaluate_agent))
    monkeypatch.setattr(finetune, "evaluate_agent", recorded("agent", evaluate_agent))
    monkeypatch.setattr(episodes, "random_policy_return", recorded("random", random_policy_return))
    onnx_of: list[Any] = []  # ...and writes each member's ONNX file once, of the shipped weights

    def onnx(agent: Any) -> bytes:
        onnx_of.append({k: v.clone() for k, v in agent.state_dict().items()})
        return onnx_bytes(agent)

    monkeypatch.setattr(agent_folder, "onnx_bytes", onnx)
    folders = export_front(cfg, run, finetune_steps=64, progress=False)
    monkeypatch.undo()
    assert len(onnx_of) == len(folders) and all((f / "policy.onnx").is_file() for f in folders)
    for state, folder in zip(onnx_of, folders, strict=True):
        shipped = torch.load(folder / "policy.pt", weights_only=True)
        assert all(torch.equal(state[k], shipped[k]) for k in shipped)

    on_final = [p for p in played if p[1] == seeds[0]]
    assert on_final == [("agent", seeds[0], len(seeds))] * len(folders)
    assert len(played) == 3 * len(folders)  # + validation before and after
    norm = data["normalisation"]
    for folder, entry in zip(folders, data["front"], strict=True):
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["before"]["return_mean"] == entry["return_mean"]
        assert metrics["before"]["seeds"] == seeds
        assert metrics["random_return_mean"] == norm["r_random"]
        assert metrics["teacher_return_mean"] == norm["r_teacher"]
    # the figures taken are the ones a fresh measurement gives
    teacher = load_agent(run.teacher_agent)
    assert evaluate_agent(teacher, cfg, len(seeds), seeds[0]).mean == norm["r_teacher"]
    assert random_policy_return(cfg, len(seeds), seeds[0]).mean == norm["r_random"]

    def export_counting(cfg_: Any) -> tuple[list[str], int]:
        """The plays on the final seeds (by kind) of an export anew, and its member count."""
        played.clear()
        monkeypatch.setattr(episodes, "evaluate_agent", recorded("agent", evaluate_agent))
        monkeypatch.setattr(finetune, "evaluate_agent", recorded("agent", evaluate_agent))
        monkeypatch.setattr(
            episodes, "random_policy_return", recorded("random", random_policy_return)
        )
        shutil.rmtree(run.agents)
        n = len(export_front(cfg_, run, finetune_steps=64, progress=False))
        monkeypatch.undo()
        return [p[0] for p in played if p[1] == seeds[0]], n

    # in other eval.num_envs waves (R_random depends on them): the references are played again
    waves = replace(cfg, eval=replace(cfg.eval, num_envs=cfg.eval.num_envs + 1))
    kinds, n = export_counting(waves)
    assert kinds.count("random") == n and kinds.count("agent") == 2 * n  # teacher and after
    # a front that does not say which supernet and teacher scored it: everything played again
    del data["search"]["sources"]
    (run.search / "front.json").write_text(json.dumps(data))
    kinds, n = export_counting(cfg)
    assert kinds.count("random") == n and kinds.count("agent") == 3 * n  # + before


def test_the_front_s_figures_are_taken_only_when_they_are_of_the_same_play(
    tmp_path: Path,
) -> None:
    """References: only the teacher the fine-tune distils from, greedy, on this config's
    final seeds; a member's ``before``: only a member extracted from the front and never
    fine-tuned, with its per-episode returns on exactly these seeds. Anything else is
    played again; a ``before`` on other seeds is refused by the fine-tune itself."""
    from a2d_evo.nets.agent import Agent
    from a2d_evo.nets.agent_folder import save_agent
    from a2d_evo.nets.space import MLPArch
    from a2d_evo.report.deliver import front_figure, front_references
    from a2d_evo.train.finetune import finetune_agent

    cfg = config_from_dict({})
    seeds = final_seeds(cfg.seed, cfg.search.final_episodes)
    norm = {"r_random": 20.0, "r_teacher": 400.0, "seeds": seeds, "eval_mode": "greedy"}
    refs = front_references({"normalisation": norm}, cfg, same_teacher=True)
    assert refs is not None and (refs.r_random, refs.r_teacher) == (20.0, 400.0)
    assert front_references({"normalisation": norm}, cfg, same_teacher=False) is None
    for bad in ({"seeds": seeds[1:]}, {"eval_mode": "sample"}, {"r_teacher": None}):
        assert front_references({"normalisation": {**norm, **bad}}, cfg, True) is None
    assert front_references({}, cfg, True) is None

    returns = [float(i) for i in range(len(seeds))]
    entry = {"source": "front", "eval_mode": "greedy", "seeds": seeds, "episode_returns": returns}
    result = front_figure(entry, seeds)
    assert result is not None and result.mean == sum(returns) / len(returns)
    assert result.seeds == seeds
    for bad in ({"finetune_budget": 64}, {"source": "baseline"}, {"seeds": seeds[::-1]},
                {"episode_returns": returns[1:]}, {"eval_mode": "sample"}):  # fmt: skip
        assert front_figure({**entry, **bad}, seeds) is None, bad

    env = {"id": cfg.env.id}
    folder = save_agent(Agent(MLPArch((8,)), (4,), 2, env), tmp_path / "agent", onnx=False)
    teacher = save_agent(Agent(MLPArch((8,)), (4,), 2, env), tmp_path / "teacher", onnx=False)
    other = front_figure({**entry, "seeds": [s + 1 for s in seeds]}, [s + 1 for s in seeds])
    with pytest.raises(TrainingError, match="not the 30 scoring seeds"):
        finetune_agent(folder, cfg, steps=64, teacher_dir=teacher, progress=False,
                       eval_seed=seeds[0], eval_episodes=len(seeds), before=other)  # fmt: skip


def test_a_member_the_gate_kept_inherited_is_chosen_on_its_inherited_validation_score(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A member whose validation kept the inherited weights is chosen on their validation
    score (``before``), not on the rejected fine-tune's (``after``). A record of the fine-tune
    counts as done only with its before-scores on the final seeds too, and (a file from
    before the recipe was recorded) at this peak learning rate."""
    import json

    from a2d_evo.config import config_from_dict
    from a2d_evo.evaluation.seeds import final_seeds
    from a2d_evo.report import deliver
    from a2d_evo.runs.folder import RunFolder
    from a2d_evo.train import finetune_pool

    cfg = config_from_dict({"finetune": {"steps": 256, "validation_episodes": 4}})
    seeds = final_seeds(cfg.seed, cfg.search.final_episodes)
    done = {"flops": 100, "return_mean": 3.0, "normalised_return": 0.9,
            "finetune_budget": 256, "finetune_lr": cfg.finetune_lr, "seeds": seeds,
            "before": {"seeds": seeds}, "inherited": {"return_mean": 3.0},
            "finetune_validation": {"episodes": 4, "kept": "inherited", "before": 5.0,
                                    "after": 9.0}}  # fmt: skip
    assert deliver.fine_tuned(done, cfg)
    assert not deliver.fine_tuned({**done, "before": {"seeds": [s + 1 for s in seeds]}}, cfg)
    assert not deliver.fine_tuned({**done, "finetune_lr": cfg.finetune_lr / 2}, cfg)
    folder = tmp_path / "agents" / "front_00"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(done))
    monkeypatch.setattr(finetune_pool, "finetune_agent", lambda *a, **k: pytest.fail("trained"))
    (row,) = deliver.finetune_members(cfg, RunFolder(tmp_path), [folder], progress=False)
    assert row["kept"] == "inherited" and row["validation_return_mean"] == 5.0


def test_with_no_fine_tune_nothing_is_chosen_on_an_old_validation(tmp_path: Path) -> None:
    """``finetune.steps: 0`` delivers the inherited weights on their final-seed figures: a
    validation an earlier export recorded in the folder gives no validation figure."""
    import json

    from a2d_evo.config import config_from_dict
    from a2d_evo.report import deliver
    from a2d_evo.runs.folder import RunFolder

    cfg = config_from_dict({"finetune": {"steps": 0}})
    folder = tmp_path / "agents" / "front_00"
    folder.mkdir(parents=True)
    old = {"episodes": 4, "kept": "inherited", "before": 5.0, "after": 9.0}
    (folder / "metrics.json").write_text(json.dumps(
        {"flops": 100, "return_mean": 3.0, "normalised_return": 0.9,
         "finetune_validation": old}))  # fmt: skip
    (row,) = deliver.finetune_members(cfg, RunFolder(tmp_path), [folder], progress=False)
    assert row["validation_return_mean"] is None


def _done(**finetune: Any) -> tuple[Any, dict[str, Any]]:
    """A config and the metrics.json of a member its fine-tune has done, as finetune writes
    them (a validation record only where validation_episodes is not 0)."""
    from a2d_evo.config import config_from_dict
    from a2d_evo.evaluation.seeds import final_seeds
    from a2d_evo.train.finetune import finetune_recipe

    cfg = config_from_dict({"finetune": {"steps": 256, **finetune}})
    seeds = final_seeds(cfg.seed, cfg.search.final_episodes)
    episodes = cfg.finetune.validation_episodes
    gate = {"episodes": episodes, "kept": "fine-tuned", "before": 1.0, "after": 2.0}
    return cfg, {"finetune_budget": 256, "finetune_lr": cfg.finetune_lr,
                 "finetune_recipe": finetune_recipe(cfg), "seeds": seeds,
                 "before": {"seeds": seeds}, "inherited": {"return_mean": 1.0},
                 "finetune_validation": gate if episodes else None}  # fmt: skip


def test_a_member_fine_tuned_without_a_validation_counts_as_done() -> None:
    """a2d_evo/report/deliver.py fine_tuned: with ``finetune.validation_episodes: 0`` a
    fine-tune records no validation (``finetune_validation: null``), and that is the same
    validation: 0 episodes. Mutant let through: a missing record read as ``None`` episodes
    (not 0), after which every export resumed without a validation fine-tuned every member
    again (the covering tests all validate)."""
    from a2d_evo.report.deliver import fine_tuned

    cfg, done = _done(validation_episodes=0)
    assert done["finetune_validation"] is None and fine_tuned(done, cfg)
    cfg4, _ = _done(validation_episodes=4)
    assert not fine_tuned(done, cfg4)  # ... and it is not a 4-episode validation


def test_a_fine_tune_recorded_before_its_learning_rate_was_counts_as_done() -> None:
    """a2d_evo/report/deliver.py fine_tuned: a metrics.json written before ``finetune_lr``
    was recorded matches any learning rate (its docstring). Mutant let through:
    ``metrics.get("finetune_lr") == cfg.finetune_lr`` without the default (the covering
    test's record has the key): such a member fine-tuned again on every resumed export."""
    from a2d_evo.report.deliver import fine_tuned

    cfg, done = _done(validation_episodes=4)
    old = {k: v for k, v in done.items() if k not in ("finetune_lr", "finetune_recipe")}
    assert fine_tuned(old, cfg)
    assert not fine_tuned({**old, "finetune_lr": cfg.finetune_lr * 2}, cfg)


def test_a_fine_tune_scored_after_on_other_seeds_is_not_done() -> None:
    """a2d_evo/report/deliver.py fine_tuned: both figures of a fine-tune, the ``before`` and
    the after (``seeds``, the kept weights' scores), must be on the front's final seeds.
    Mutant let through: dropping ``metrics.get("seeds") == seeds`` (the covering tests move
    the before's seeds only): an after scored on a standalone fine-tune's seeds was then
    reported as a final-seed score in delivered.json."""
    from a2d_evo.report.deliver import fine_tuned

    cfg, done = _done(validation_episodes=4)
    assert fine_tuned(done, cfg)
    assert not fine_tuned({**done, "seeds": [s + 1 for s in done["seeds"]]}, cfg)
    assert not fine_tuned({k: v for k, v in done.items() if k != "seeds"}, cfg)


def _member(tmp_path: Path, metrics: dict[str, Any]) -> Path:
    import json

    folder = tmp_path / "agents" / "front_00"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


def test_with_no_fine_tune_the_inherited_figures_are_the_members_own(tmp_path: Path) -> None:
    """a2d_evo/report/deliver.py finetune_members: a member never fine-tuned (``finetune.steps:
    0``) has no ``inherited`` record: its row's inherited figures are its own (the weights
    are the inherited ones). Mutant let through: ``metrics.get("inherited") or {}``: None
    for both, and delivered.json's progress line then failed formatting None with ``.2f``."""
    from a2d_evo.config import config_from_dict
    from a2d_evo.report.deliver import finetune_members
    from a2d_evo.runs.folder import RunFolder

    cfg = config_from_dict({"finetune": {"steps": 0}})
    folder = _member(tmp_path, {"flops": 100, "return_mean": 3.5, "normalised_return": 0.25,
                                "return_std": 1.5, "episodes": 30})  # fmt: skip
    (row,) = finetune_members(cfg, RunFolder(tmp_path), [folder], progress=False)
    assert (row["inherited_return_mean"], row["inherited_normalised_return"]) == (3.5, 0.25)
    assert (row["return_mean"], row["kept"], row["finetune_steps"]) == (3.5, "inherited", 0)


def test_a_members_row_counts_the_steps_its_fine_tune_ran(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """a2d_evo/report/deliver.py finetune_members: a row's ``finetune_steps`` is what the
    member's fine-tune ran (whole updates: 192 where a 256-step budget is two updates of
    96), read from its metrics.json, not the budget asked for. Mutant let through:
    ``"finetune_steps": steps`` (the covering tests' fine-tunes run their budget exactly)."""
    from a2d_evo.report.deliver import finetune_members
    from a2d_evo.runs.folder import RunFolder
    from a2d_evo.train import finetune_pool

    cfg, done = _done(validation_episodes=4)
    folder = _member(tmp_path, {**done, "flops": 100, "return_mean": 3.0,
                                "normalised_return": 0.9, "finetune_steps": 192})  # fmt: skip
    monkeypatch.setattr(finetune_pool, "finetune_agent", lambda *a, **k: pytest.fail("trained"))
    (row,) = finetune_members(cfg, RunFolder(tmp_path), [folder], progress=False)
    assert row["finetune_steps"] == 192 and cfg.finetune.steps == 256
    assert row["kept"] == "fine-tuned" and row["validation_return_mean"] == 2.0
