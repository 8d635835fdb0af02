"""The delivered front (``report.deliver.write_delivered``): chosen on the validation seeds,
scored on the final ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from a2d_evo.config import config_from_dict
from a2d_evo.report.deliver import write_delivered
from a2d_evo.runfolder import RunFolder


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


def test_without_a_validation_the_final_seeds_choose_and_it_says_so(tmp_path: Path) -> None:
    # "worse" has the best validation figure but not every row has one: the final seeds choose,
    # and on them "big" dominates it
    rows = [row("small", 100, 0.90, 210.0), row("big", 200, 1.00, None),
            row("worse", 300, 0.95, 250.0)]  # fmt: skip
    data = delivered(tmp_path, rows)
    assert data["members"] == ["small", "big"] and data["chosen_on"] == "final seeds"


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


def test_an_interrupted_export_fine_tunes_only_the_members_not_yet_done(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Agent by agent: a member whose metrics.json records this fine-tune (budget, validation,
    rate) is kept; the others, and one done with another budget, are fine-tuned again."""
    from a2d_evo.report import deliver

    cfg = config_from_dict({"finetune": {"steps": 256, "validation_episodes": 4}})
    done = {"finetune_budget": 256, "finetune_lr": cfg.finetune_lr,
            "inherited": {"return_mean": 1.0, "normalised_return": 0.5},
            "finetune_validation": {"episodes": 4, "kept": "fine-tuned", "before": 1.0,
                                    "after": 2.0}}  # fmt: skip
    base = {"flops": 100, "return_mean": 3.0, "normalised_return": 0.9}
    folders = []
    for name, extra in (("a", done), ("b", {}), ("c", {**done, "finetune_budget": 128})):
        folder = tmp_path / "agents" / name
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({**base, **extra}))
        folders.append(folder)
    trained = []

    def finetune(folder: Path, cfg_: Any, **kw: Any) -> dict[str, Any]:
        trained.append(folder.name)
        return {"metrics": {**base, **done, "return_mean": 4.0}}

    monkeypatch.setattr(deliver, "finetune_agent", finetune)
    rows = deliver.finetune_members(cfg, RunFolder(tmp_path), folders, progress=False)
    assert trained == ["b", "c"]
    assert [r["return_mean"] for r in rows] == [3.0, 4.0, 4.0]
    assert all(r["validation_return_mean"] == 2.0 for r in rows)
