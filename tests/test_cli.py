"""The command line: options documented, errors are one line with exit 2, overrides typed."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from a2d_evo import __version__
from a2d_evo.cli import EXIT_USER_ERROR, main
from a2d_evo.cli.configs import packaged_config
from a2d_evo.cli.parser import build_parser

COMMANDS = [
    "train-teacher",
    "import-teacher",
    "train-supernet",
    "evolve",
    "export",
    "finetune",
    "eval",
    "report",
    "baselines",
    "demo",
]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"a2d-evo {__version__}"


def test_module_entry_point() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "a2d_evo", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"a2d-evo {__version__}"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_documents_common_options(command: str) -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    text = sub.choices[command].format_help()  # type: ignore[union-attr]
    for option in ("--set", "--seed", "--device"):
        # `report` describes the run as it ran, so it takes no overrides (tested above)
        assert (option in text) == (command != "report"), f"{command} --help and {option}"
    assert "--quiet" in text
    for action in sub.choices[command]._actions:  # type: ignore[union-attr]
        assert action.help, f"{command}: option {action.option_strings or action.dest} has no help"


def test_training_commands_take_config_out_resume() -> None:
    parser = build_parser()
    args = parser.parse_args(
        ["evolve", "--config", "c.yaml", "--out", "o", "--resume", "--pop", "32", "--set", "a.b=1"]
    )
    assert (args.config, args.out, args.resume, args.pop, args.set) == (
        "c.yaml",
        "o",
        True,
        32,
        ["a.b=1"],
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["export", "r", "--pick", "0", "--pick", "1"],  # exported front_01 alone, replacing it
        ["export", "r", "--max-flops", "100", "--max-flops", "200"],
        ["evolve", "--config", "c.yaml", "--out", "a", "--out", "b"],
        ["eval", "agent", "--seed", "1", "--seed", "1"],  # the same value twice too
    ],
)
def test_an_option_given_twice_is_refused(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == EXIT_USER_ERROR
    option = next(a for a in argv if argv.count(a) == 2 and a.startswith("--"))
    err = capsys.readouterr().err
    assert f"a2d-evo {argv[0]}: error: {option} given twice" in err, err
    # repeatable ones stay repeatable, and one value each is as before
    args = build_parser().parse_args(
        ["export", "r", "--pick", "2", "--set", "a.b=1", "--set", "c.d=2", "--max-flops", "9"]
    )
    assert (args.pick, args.set, args.max_flops, args.min_return) == (
        "2", ["a.b=1", "c.d=2"], 9.0, None
    )  # fmt: skip


def test_user_errors_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], configs_dir: Path
) -> None:
    cfg = str(configs_dir / "cartpole.yaml")
    code = main(
        ["train-teacher", "--config", cfg, "--out", str(tmp_path / "r"), "--set", "ppo.lr=-1"]
    )
    err = capsys.readouterr().err
    assert code == EXIT_USER_ERROR
    assert "ppo.lr: must be > 0" in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()  # nothing written before the config is valid

    code = main(["evolve", "--config", cfg, "--out", str(tmp_path / "r"), "--pop", "2"])
    assert code == EXIT_USER_ERROR and "search.pop: must be >= 4" in capsys.readouterr().err

    code = main(["train-teacher", "--config", str(tmp_path / "none.yaml")])
    assert code == EXIT_USER_ERROR and "config file not found" in capsys.readouterr().err

    code = main(["report", str(tmp_path / "not-a-run")])
    assert code == EXIT_USER_ERROR and "is not a run folder" in capsys.readouterr().err

    # a path the user may not enter: Python 3.10 and 3.11's Path.is_file re-raise EACCES, a
    # traceback (exit 1; found by review, as root here, so simulated)
    import pathlib

    real_stat = pathlib.Path.stat

    def stat(self: pathlib.Path, *args: object, **kwargs: object) -> object:
        if str(self).startswith(str(tmp_path / "noaccess")):
            raise PermissionError(13, "Permission denied", str(self))
        return real_stat(self, *args, **kwargs)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as m:
        m.setattr(pathlib.Path, "stat", stat)
        code = main(["train-teacher", "--config", str(tmp_path / "noaccess" / "x.yaml")])
    err = capsys.readouterr().err
    assert code == EXIT_USER_ERROR and err.count("\n") == 1, err
    assert "x.yaml" in err and ("Permission denied" in err or "not found" in err), err

    # the report describes the run as it ran: overrides would print settings it never had
    for option in (["--seed", "3"], ["--set", "search.final_episodes=7"], ["--device", "cpu"]):
        with pytest.raises(SystemExit) as info:
            main(["report", str(tmp_path / "not-a-run"), *option])
        assert info.value.code == EXIT_USER_ERROR
        err = capsys.readouterr().err  # with report's own usage, not the top-level one
        assert f"a2d-evo report: error: unrecognized arguments: {' '.join(option)}" in err, err
        assert err.startswith("usage: a2d-evo report "), err


def test_export_without_search_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], configs_dir: Path
) -> None:
    from a2d_evo.config import load_config
    from a2d_evo.runs.folder import RunFolder

    run = RunFolder(tmp_path / "run")
    run.bind(load_config(configs_dir / "cartpole.yaml"))
    assert main(["export", str(run.root)]) == EXIT_USER_ERROR
    assert "no finished search" in capsys.readouterr().err


def test_a_runs_own_config_without_out_names_the_run_folder(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    configs_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`--config RUN/config.yaml` without --out made a new run in runs/config, where the next
    command said "run train-teacher first" about a run the user never meant."""
    from a2d_evo.config import load_config
    from a2d_evo.runs.folder import RunFolder

    run = RunFolder(tmp_path / "run")
    run.bind(load_config(configs_dir / "cartpole.yaml"))
    run.teacher.mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["train-teacher", "--config", str(run.config_path)]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "is a run folder's own config" in err and f"--out {run.root.resolve()}" in err, err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "name", ["lunarlander_demo.yaml", "cartpole.yaml", "acrobot.yaml", "pong.yaml"]
)
def test_packaged_config_outside_the_repo_is_the_current_one(
    name: str, configs_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`a2d-evo demo` from any folder runs the shipped config as it is in this tree, never a
    file of that name in the current folder: the user did not name it, and its env.imports
    would run unchecked (a received folder with configs/ in it ran `import this`)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / name).write_text("env: {id: CartPole-v1, imports: [this]}\n")
    found = packaged_config(name)
    assert found.is_absolute()
    assert found.read_text() == (configs_dir / name).read_text()


def test_export_and_baselines_score_on_the_seeds_the_search_ran_with(
    tmp_path: Path, configs_dir: Path
) -> None:
    """`evolve` given another `search.final_episodes` than the training stages: `export`
    and `baselines` take the search's own config, so every agent is scored on the front's
    final seeds; `--set` still applies on top, and a run without a search keeps its own."""
    import argparse

    from a2d_evo.cli.configs import config_of_run
    from a2d_evo.config import load_config
    from a2d_evo.runs.folder import RunFolder

    run = RunFolder(tmp_path / "run")
    trained = load_config(configs_dir / "cartpole.yaml", ["search.final_episodes=10"])
    run.bind(trained)
    args = argparse.Namespace(set=[], seed=None, device=None, env_import=[])
    assert config_of_run(run, args, after="search").search.final_episodes == 10  # no search
    run.bind_stage("search", load_config(configs_dir / "cartpole.yaml"), resume=False)
    assert config_of_run(run, args).search.final_episodes == 10
    assert config_of_run(run, args, after="search").search.final_episodes == 30
    args.set = ["search.final_episodes=50"]
    assert config_of_run(run, args, after="search").search.final_episodes == 50


def test_eval_on_a_run_folder_names_the_agents_in_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], configs_dir: Path
) -> None:
    from a2d_evo.config import load_config
    from a2d_evo.runs.folder import RunFolder

    run = RunFolder(tmp_path / "run")
    run.bind(load_config(configs_dir / "cartpole.yaml"))
    for folder in (run.agents / "knee", run.teacher_agent):
        folder.mkdir(parents=True)
        (folder / "arch.json").write_text("{}")
    for given, names in (
        (run.root, f"{run.agents / 'knee'}, {run.teacher_agent}"),
        (run.agents, f"{run.agents / 'knee'}"),
    ):
        assert main(["eval", str(given)]) == EXIT_USER_ERROR
        err = capsys.readouterr().err
        assert f"{given} is not an agent folder (no arch.json)" in err, err
        assert err.rstrip().endswith(f"e.g. {names}"), err
    # a file of an agent folder (a new user's finding: "policy.pt/arch.json not found")
    policy = run.agents / "knee" / "policy.pt"
    policy.write_bytes(b"")
    for command in ("eval", "finetune"):
        argv = [command, str(policy)] + (["--steps", "64"] if command == "finetune" else [])
        assert main(argv) == EXIT_USER_ERROR
        err = capsys.readouterr().err
        assert (
            f"{policy} is a file of an agent folder; pass the folder that holds arch.json: "
            f"{run.agents / 'knee'}"
        ) in err, err


def test_an_override_of_the_runs_env_is_named_as_the_users(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`export RUN --set env.id=...` was told "this front belongs to another run"."""
    before = sorted(p.name for p in finished.iterdir())
    agent = finished / "teacher" / "agent"
    for argv in (
        ["export", str(finished)],
        ["baselines", str(finished)],
        ["finetune", str(agent), "--steps", "64"],  # it rewrites the run's agent's scores
    ):
        for change in ("env.id=Acrobot-v1", "env.max_episode_steps=50"):
            assert main([*argv, "--set", change]) == EXIT_USER_ERROR
            err = capsys.readouterr().err
            key = change.split("=")[0]
            assert f"--set {key}: this command writes figures of the run" in err, err
    assert sorted(p.name for p in finished.iterdir()) == before
    # one agent may play a variant of its env (eval, which records it), not another env; eval
    # writes its eval.json into the agent folder, so on a copy of the shared run
    shutil.copytree(finished, tmp_path / "run")
    copy = tmp_path / "run" / "teacher" / "agent"
    argv = ["eval", str(copy), "--episodes", "2", "--quiet"]
    assert main([*argv, "--set", "env.max_episode_steps=50"]) == 0
    assert json.loads((copy / "eval.json").read_text())["env"]["max_episode_steps"] == 50
    assert main([*argv, "--set", "env.id=Acrobot-v1"]) == EXIT_USER_ERROR
    assert "--set env.id: the env and the space are what" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["report", "evolve", "export", "baselines", "demo"])
def test_commands_without_ddp_are_refused_under_torchrun(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """A torchrun rank other than 0 takes no folder lock (rank 0 writes for the DDP stages):
    any other command run there wrote the run from every rank at once, unlocked."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    run = tmp_path / "run"
    argv = {"evolve": ["evolve", "--config", "c.yaml", "--out", str(run)],
            "demo": ["demo", "--out", str(run)]}  # fmt: skip
    assert main(argv.get(command, [command, str(run)])) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "error: WORLD_SIZE=2 in the environment: only train-supernet and train-teacher" in err
    assert f"unset WORLD_SIZE and RANK to run {command}" in err
    assert not run.exists()


def test_an_interrupted_export_says_how_to_go_on(
    finished: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """export has no --resume: its interrupt message says to run it again (it said only
    "interrupted"), and --resume is still refused by argparse as unknown."""
    from a2d_evo.cli import EXIT_INTERRUPTED
    from a2d_evo.report import front_export

    def interrupted(*args: object, **kw: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(front_export, "export_front", interrupted)
    assert main(["export", str(finished), "--quiet"]) == EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert "interrupted (SIGINT); the members already fine-tuned are kept: run the same " in err
    assert "--resume" not in err
    # a fine-tune inside it stopped by the signal (its own loop's message): the same advice
    from a2d_evo.train.interrupts import TrainingInterrupted

    def fine_tune_stopped(*args: object, **kw: object) -> None:
        raise TrainingInterrupted("finetune training interrupted (SIGTERM) at update 3/12; "
                                  "nothing saved")  # fmt: skip

    monkeypatch.setattr(front_export, "export_front", fine_tune_stopped)
    assert main(["export", str(finished), "--quiet"]) == EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert err.rstrip().endswith(
        "nothing saved; the members already fine-tuned are kept: run the same export again to go on"
    ), err


def test_report_takes_no_env_import(capsys: pytest.CaptureFixture[str]) -> None:
    """report builds no env: --env-import is not one of its options (it was accepted and
    ignored, with a help text saying it was needed)."""
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["report", "runs/x", "--env-import", "nosuchmod:fn"])
    assert exc.value.code == 2
    assert "unrecognized arguments: --env-import" in capsys.readouterr().err
    assert build_parser().parse_args(["eval", "a", "--env-import", "m:f"]).env_import == ["m:f"]


def test_under_torchrun_only_rank_0_prints_the_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every rank runs the same command; the result line came once per rank."""
    import a2d_evo.train

    monkeypatch.setattr(a2d_evo.train, "train_supernet", lambda *a, **k: tmp_path / "w.pt")
    argv = ["train-supernet", "--config", str(packaged_config("cartpole.yaml")),
            "--out", str(tmp_path / "run"), "--quiet"]  # fmt: skip
    for rank, prints in (("1", False), ("0", True)):
        monkeypatch.setenv("RANK", rank)
        assert main(argv) == 0
        assert ("supernet weights:" in capsys.readouterr().out) == prints


def test_a_rank_stopped_by_torchrun_points_at_rank_0(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    configs_dir: Path,
) -> None:
    """torchrun sends SIGTERM to every rank when one exits (rank 0 refusing a command, say):
    a rank above 0 points at rank 0's message; it said to continue with --resume, which a
    refused first run has nothing for. Rank 0 keeps the --resume advice."""
    import a2d_evo.train
    from a2d_evo.cli import EXIT_INTERRUPTED

    def terminated(*args: object, **kw: object) -> None:
        raise KeyboardInterrupt("SIGTERM")

    monkeypatch.setattr(a2d_evo.train, "train_teacher", terminated)
    argv = ["train-teacher", "--config", str(configs_dir / "cartpole.yaml"),
            "--out", str(tmp_path / "run"), "--quiet"]  # fmt: skip
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert main(argv) == EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert "interrupted (SIGTERM) as rank 1: torchrun stops every rank when one exits; " in err
    assert "rank 0's message says why" in err and "--resume" not in err
    monkeypatch.setenv("RANK", "0")
    assert main(argv) == EXIT_INTERRUPTED
    assert "interrupted (SIGTERM); what was saved is kept, continue with --resume" in (
        capsys.readouterr().err
    )


def test_ray_without_an_address_is_a_local_ray_whatever_the_config_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--ray`` alone (and ``--ray local``) starts a local Ray even where the config names a
    cluster; ``--ray ADDRESS`` names the cluster; no ``--ray`` keeps the config's backend."""
    import yaml

    from a2d_evo.search import evolution

    config = tmp_path / "c.yaml"
    raw = yaml.safe_load(packaged_config("cartpole.yaml").read_text())
    raw["search"] = {**raw.get("search", {}), "ray_address": "10.0.0.1:6379"}
    config.write_text(yaml.safe_dump(raw))
    seen: list[tuple[str, str | None]] = []

    def fake_evolve(cfg, run, *, resume, progress):
        seen.append((cfg.search.backend, cfg.search.ray_address))
        return run.root / "search" / "front.json"

    monkeypatch.setattr(evolution, "evolve", fake_evolve)
    for i, flags in enumerate(([], ["--ray"], ["--ray", "local"], ["--ray", "auto"])):
        argv = ["evolve", "--config", str(config), "--out", str(tmp_path / f"r{i}"), "--quiet"]
        assert main([*argv, *flags]) == 0
    assert seen == [
        ("local", "10.0.0.1:6379"),
        ("ray", None),
        ("ray", None),
        ("ray", "auto"),
    ]


def test_world_size_0_or_1_is_one_process_for_every_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``WORLD_SIZE`` unset, empty, 0 or 1 is one process: a command other than the torchrun
    stages runs (here to its own error: no run folder); 2 is refused naming the variable."""
    from a2d_evo.cli import main

    missing = str(tmp_path / "no_run")
    for world in ("0", "1", " 1 ", ""):
        monkeypatch.setenv("WORLD_SIZE", world)
        assert main(["report", missing]) == 2
        err = capsys.readouterr().err
        assert "is not a run folder" in err and "WORLD_SIZE" not in err, (world, err)
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["report", missing]) == 2
    assert "WORLD_SIZE=2 in the environment" in capsys.readouterr().err


def test_an_env_import_the_config_names_already_is_not_added_again() -> None:
    """``--env-import a.b`` over a config whose ``env.imports`` holds ``a.b`` leaves the
    config as it is (no second ``a.b`` recorded in the run's config.yaml)."""
    import argparse

    from a2d_evo.cli.configs import with_env_imports
    from a2d_evo.config import config_from_dict

    cfg = config_from_dict({"env": {"id": "CartPole-v1", "imports": ["a.b"]}})
    assert with_env_imports(cfg, argparse.Namespace(env_import=["a.b"])) is cfg


def test_an_import_added_by_an_override_over_a_recorded_config_needs_no_env_import() -> None:
    """Only the imports the file records are checked against the allow-list: one the user's
    own ``--set env.imports=[...]`` added is the user's, and runs."""
    import argparse

    from a2d_evo.cli.configs import checked_file_config
    from a2d_evo.config import config_from_dict

    recorded = config_from_dict({"env": {"id": "CartPole-v1"}})
    cfg = config_from_dict({"env": {"id": "CartPole-v1", "imports": ["a.b"]}})
    out = checked_file_config(cfg, recorded, argparse.Namespace(), "RUN/config.yaml")
    assert out.env.imports == ("a.b",)


def test_an_agent_folder_whose_env_id_is_empty_names_no_env(tmp_path: Path) -> None:
    """``arch.json`` with ``env.id: ""`` names no env, said as such (not as a config error)."""
    import argparse
    import json

    from a2d_evo.cli.configs import config_of_agent
    from a2d_evo.errors import ConfigError

    agent = tmp_path / "agent"
    agent.mkdir()
    (agent / "arch.json").write_text(json.dumps({"env": {"id": ""}}))
    with pytest.raises(ConfigError) as err:
        config_of_agent(agent, argparse.Namespace())
    assert str(err.value) == f"{agent}/arch.json names no env; run eval inside its run folder"


def test_export_finetune_0_is_a_valid_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``export --finetune 0`` (no fine-tune) passes the count check; -1 does not."""
    from a2d_evo.cli import EXIT_USER_ERROR, main

    run = tmp_path / "norun"
    assert main(["export", str(run), "--finetune", "0", "--quiet"]) == EXIT_USER_ERROR
    assert capsys.readouterr().err.startswith(
        f"a2d-evo export: error: {run} is not a run folder (no config.yaml)"
    )
    assert main(["export", str(run), "--finetune", "-1", "--quiet"]) == EXIT_USER_ERROR
    assert capsys.readouterr().err == "a2d-evo export: error: --finetune: must be >= 0, got -1\n"


def test_baselines_widths_must_be_positive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``baselines --widths 0,0.5``: a zero width multiplier is refused before training."""
    import a2d_evo.train
    from a2d_evo import cli
    from a2d_evo.cli import commands
    from a2d_evo.config import config_from_dict

    cfg = config_from_dict({"env": {"id": "CartPole-v1"}})
    monkeypatch.setattr(commands, "config_of_run", lambda *a, **k: cfg)
    trained: list[list[float]] = []

    def train_baselines(cfg: object, run: object, widths: list[float], **kw: object) -> list[Path]:
        trained.append(widths)
        return []

    monkeypatch.setattr(a2d_evo.train, "train_baselines", train_baselines)
    run = str(tmp_path / "run")
    assert cli.main(["baselines", run, "--widths", "0,0.5", "--quiet"]) == cli.EXIT_USER_ERROR
    assert capsys.readouterr().err == (
        "a2d-evo baselines: error: --widths: expected positive numbers like 0.25,0.5,1, got "
        "'0,0.5'\n"
    )
    assert cli.main(["baselines", run, "--widths", "0.25,1", "--quiet"]) == 0
    assert trained == [[0.25, 1.0]]


def test_every_subcommands_help_opens_with_its_summary(capsys: pytest.CaptureFixture[str]) -> None:
    """``a2d-evo COMMAND --help`` says what the command does, as the command list does (a new
    user's finding: it listed the options alone)."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    summaries = {c.dest: c.help for c in sub._choices_actions}
    assert len(summaries) == 10 and all(summaries.values())
    for name, summary in summaries.items():
        with pytest.raises(SystemExit):
            main([name, "--help"])
        head = capsys.readouterr().out.split("positional arguments:")[0].split("options:")[0]
        assert " ".join(str(summary).split()) in " ".join(head.split()), name  # before options


def test_eval_says_a_set_it_does_not_read_changes_nothing(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``eval --set ppo.lr=5`` plays as without it and says so (a new user's finding: it was
    taken without a word); a key eval reads gets no note."""
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    agent = str(run / "teacher" / "agent")
    assert main(["eval", agent, "--episodes", "2", "--set", "ppo.lr=5",
                 "--set", "eval.num_envs=2", "--set", "search.pop=8"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert (
        "eval: note: --set ppo.lr, search.pop changes nothing here (eval reads only env, eval, "
        "seed, device)"
    ) in err, err
    assert main(["eval", agent, "--episodes", "2", "--set", "eval.num_envs=2"]) == 0
    assert "note:" not in capsys.readouterr().err
