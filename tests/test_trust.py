"""The trust boundary: nothing read from a run or agent folder imports code; env ids are
checked against gymnasium's registry; small config-file refusals (empty, duplicate keys);
the SB3 refusal gives no advice to unpickle."""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml

import a2d_evo
from a2d_evo.cli import EXIT_USER_ERROR, main
from a2d_evo.cli.configs import user_config
from a2d_evo.config import EnvConfig, config_from_dict, dump_config, load_config
from a2d_evo.envs import env_spec
from a2d_evo.errors import ConfigError, EnvError, FormatError, RunFolderError
from a2d_evo.nets.agent import Agent
from a2d_evo.nets.agent_folder import save_agent
from a2d_evo.nets.space import CNNArch, ConvLayer, MLPArch
from a2d_evo.runs.folder import RunFolder

PACKAGE_ROOT = Path(a2d_evo.__file__).resolve().parents[1]

PWNMOD = """
from pathlib import Path
Path(__file__).with_name("PWNED").write_text("imported")

def register():
    import gymnasium as gym
    gym.register(id="PwnEnv-v0", entry_point="gymnasium.envs.classic_control:CartPoleEnv")
"""


def planted_agent(parent: Path, env: dict) -> Path:
    """A CartPole agent folder in ``parent`` whose arch.json records ``env``, and a module
    ``pwnmod.py`` beside it that leaves ``parent/PWNED`` when imported."""
    folder = save_agent(Agent(MLPArch((8,)), (4,), 2, {"id": "CartPole-v1"}), parent / "agent")
    meta = json.loads((folder / "arch.json").read_text())
    meta["env"] = env
    (folder / "arch.json").write_text(json.dumps(meta))
    (parent / "pwnmod.py").write_text(PWNMOD)
    return folder


def run_cli(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """``python -m a2d_evo ARGV`` in ``cwd`` (so a module planted there is importable)."""
    env = {**os.environ, "PYTHONPATH": str(PACKAGE_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "a2d_evo", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


# ----------------------------------------------------------------------------- item 1
@pytest.mark.parametrize("env_id", ["pwnmod:CartPole-v1", "this:CartPole-v1"])
def test_eval_of_a_planted_agent_folder_imports_nothing(tmp_path: Path, env_id: str) -> None:
    folder = planted_agent(tmp_path, {"id": env_id})
    proc = run_cli(tmp_path, "eval", folder.name, "--episodes", "1")
    assert proc.returncode == EXIT_USER_ERROR, proc.stderr
    assert proc.stderr.count("\n") == 1 and "env.imports" in proc.stderr
    assert "arch.json" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "PWNED").exists()
    assert "Beautiful is better than ugly" not in proc.stdout  # `this` never imported
    assert not (folder / "eval.json").exists()


def test_an_import_recorded_by_an_agent_folder_needs_env_import(tmp_path: Path) -> None:
    folder = planted_agent(tmp_path, {"id": "CartPole-v1", "imports": ["pwnmod"]})
    proc = run_cli(tmp_path, "eval", folder.name, "--episodes", "1")
    assert proc.returncode == EXIT_USER_ERROR, proc.stderr
    assert proc.stderr.count("\n") == 1 and "pass --env-import pwnmod" in proc.stderr
    assert not (tmp_path / "PWNED").exists()
    # the user who trusts it says so on the command line: then it runs, and eval works
    proc = run_cli(tmp_path, "eval", folder.name, "--episodes", "1", "--env-import", "pwnmod")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "PWNED").exists() and (folder / "eval.json").is_file()


def test_an_import_recorded_by_a_run_folder_needs_env_import(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = RunFolder(tmp_path / "run")
    run.root.mkdir()
    cfg = config_from_dict({"env": {"id": "CartPole-v1", "imports": ["pwnmod_never_imported"]}})
    run.config_path.write_text(dump_config(cfg))
    for command in ("export", "baselines"):
        assert main([command, str(run.root)]) == EXIT_USER_ERROR
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "config.yaml" in err, command
        assert "pass --env-import pwnmod_never_imported" in err, command
    assert "pwnmod_never_imported" not in sys.modules


def test_report_builds_no_env_so_needs_no_env_import(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from test_report import make_run

    run = make_run(tmp_path / "run")  # a finished run, as `evolve` and `export` leave it
    cfg = run.load_config()
    imports = ("pwnmod_never_imported",)
    run.config_path.write_text(dump_config(replace(cfg, env=replace(cfg.env, imports=imports))))
    assert main(["report", str(run.root), "--quiet"]) == 0, capsys.readouterr().err
    assert (run.root / "report" / "report.md").is_file()
    assert "pwnmod_never_imported" not in sys.modules


def test_env_imports_agree_in_any_order_and_a_missing_one_names_its_flag(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "run")
    saved = config_from_dict({"env": {"id": "CartPole-v1", "imports": ["json", "csv:reader"]}})
    run.bind(saved)
    run.check(config_from_dict({"env": {"id": "CartPole-v1", "imports": ["csv:reader", "json"]}}))
    with pytest.raises(RunFolderError) as info:
        run.check(config_from_dict({"env": {"id": "CartPole-v1", "imports": ["json", "xml"]}}))
    msg = str(info.value)
    assert "conflicts with the run's config.yaml on env.imports" in msg
    assert msg.endswith("env.imports: pass --env-import csv:reader and the run records no 'xml'")


def test_every_recorded_import_missing_is_named_in_one_message() -> None:
    from a2d_evo.envs.imports import check_recorded_imports

    recorded = ["pwn_a", "minatar.gym:register_envs", "pwn_b:go", "pwn_a"]
    with pytest.raises(EnvError) as info:
        check_recorded_imports(recorded, ["pwn_c"], "x/config.yaml")
    msg = str(info.value)
    assert msg.startswith("x/config.yaml records env.imports 'pwn_a', 'pwn_b:go', not on")
    assert msg.endswith("pass --env-import pwn_a --env-import pwn_b:go")
    check_recorded_imports(recorded, ["pwn_b:go", "pwn_a"], "x")  # all granted or allowed


def test_a_run_config_passed_as_config_is_checked_as_a_recorded_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Messages suggest ``--config RUN_DIR/.../config.yaml``: its imports stay untrusted."""
    run = RunFolder(tmp_path / "shared")
    run.root.mkdir()
    cfg = config_from_dict({"env": {"id": "CartPole-v1", "imports": ["pwnmod_never_imported"]}})
    run.config_path.write_text(dump_config(cfg))
    argv = ["train-teacher", "--config", str(run.config_path), "--out", str(tmp_path / "mine")]
    assert main(argv) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pass --env-import pwnmod_never_imported" in err
    assert "pwnmod_never_imported" not in sys.modules
    assert not (tmp_path / "mine").exists()


@pytest.mark.parametrize("where", ["config.yaml", "teacher/config.yaml"])
def test_a_run_config_without_format_version_is_still_a_recorded_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    """Dropping ``format_version`` from a received run's config does not make it the user's
    own: a ``config.yaml`` in a run folder or a stage of one is checked all the same."""
    run = RunFolder(tmp_path / "foreign")
    run.teacher.mkdir(parents=True)
    raw = yaml.safe_load(
        dump_config(config_from_dict({"env": {"id": "CartPole-v1", "imports": ["pwnmod_x"]}}))
    )
    del raw["format_version"]
    path = run.root / where
    path.write_text(yaml.safe_dump(raw))
    argv = ["train-teacher", "--config", str(path), "--out", str(run.root), "--resume"]
    assert main(argv) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pass --env-import pwnmod_x" in err, err
    assert "pwnmod_x" not in sys.modules
    assert {p.name for p in run.root.iterdir()} == {"teacher", where.split("/")[0]}  # as it was
    # the same file outside a run folder is the user's own config (its import is attempted)
    mine = tmp_path / "mine" / "config.yaml"
    mine.parent.mkdir()
    mine.write_text(yaml.safe_dump(raw))
    argv = ["train-teacher", "--config", str(mine), "--out", str(tmp_path / "out")]
    assert main(argv) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "cannot import 'pwnmod_x'" in err, err  # attempted: an import failure, no refusal


def test_an_allow_listed_import_recorded_by_an_agent_folder_runs(tmp_path: Path) -> None:
    from a2d_evo.envs.imports import ALLOWED_IMPORTS

    pytest.importorskip("minatar")
    assert "minatar.gym:register_envs" in ALLOWED_IMPORTS
    env = {"id": "MinAtar/Breakout-v1", "imports": ["minatar.gym:register_envs"]}
    spec = env_spec(EnvConfig(id=env["id"], imports=tuple(env["imports"])))
    # MinAtar gives (C, H, W) images: a CNN agent ([K])
    arch = CNNArch((ConvLayer(4, 3),), 8)
    agent = Agent(arch, spec.obs_shape, spec.n_actions, env, spec.obs_scale)
    folder = save_agent(agent, tmp_path / "agent", onnx=False)
    assert main(["eval", str(folder), "--episodes", "2", "--quiet"]) == 0
    report = json.loads((folder / "eval.json").read_text())
    assert report["env_id"] == "MinAtar/Breakout-v1" and report["episodes"] == 2


def test_the_users_own_config_and_env_import_run(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "pwnmod.py").write_text(PWNMOD)
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(
        yaml.safe_dump({"env": {"id": "PwnEnv-v0", "imports": ["pwnmod:register"]}})
    )
    args = argparse.Namespace(set=None, seed=None, device=None, env_import=["json"])
    cfg = user_config(cfg_path, args)
    assert cfg.env.imports == ("pwnmod:register", "json")
    spec = env_spec(cfg.env)  # runs the user's imports, then finds the env they register
    assert (spec.obs_shape, spec.n_actions) == ((4,), 2)
    assert (tmp_path / "PWNED").exists()


def test_env_id_never_takes_the_module_form() -> None:
    for env_id in ("pwnmod:CartPole-v1", "this:CartPole-v1", "nosuchmod:X-v0"):
        with pytest.raises(ConfigError, match=r"env\.id: .*name the module in env\.imports"):
            config_from_dict({"env": {"id": env_id}}, source="arch.json")
    with pytest.raises(ConfigError, match=r"env\.imports\[0\]: expected a module path"):
        config_from_dict({"env": {"imports": ["os; rm -rf /"]}})
    # a final newline too ("$" matched before it; found by review): never named in a message
    with pytest.raises(ConfigError, match=r"env\.imports\[0\]: expected a module path"):
        config_from_dict({"env": {"imports": ["minatar.gym:register_envs\n"]}})


def test_unknown_env_ids_name_close_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    import gymnasium as gym

    from a2d_evo.envs.imports import check_env_registered

    with pytest.raises(EnvError, match=r"did you mean 'CartPole-v1'"):
        env_spec(EnvConfig(id="CartPol-v1"))
    with pytest.raises(EnvError, match="old gym package"):
        check_env_registered("GymV26Environment-v0")
    # ALE typos and gym-style Atari ids point at the ALE id; a MinAtar id at its import
    with pytest.raises(EnvError, match=r"no ALE ROM named 'Pongg'; did you mean ALE/Pong-v5"):
        check_env_registered("ALE/Pongg-v5")
    with pytest.raises(EnvError, match=r"did you mean ALE/Pong-v5"):
        check_env_registered("ALE/pong-v5")
    with pytest.raises(EnvError, match=r"Atari ids are ALE/<Game>-v5: did you mean 'ALE/Pong-v5'"):
        check_env_registered("Pong-v5")
    # ale-py's older ids, registered once ale_py is imported (as rom_id does): refused the same
    # way whatever was imported before, not played as raw frames outside the pipeline
    import ale_py

    gym.register_envs(ale_py)
    assert "BreakoutNoFrameskip-v4" in gym.registry
    with pytest.raises(EnvError, match=r"ale-py's older Atari ids.*'ALE/Breakout-v5'"):
        check_env_registered("BreakoutNoFrameskip-v4")
    for key in [k for k in gym.registry if k.startswith("MinAtar/")]:  # as before the import
        monkeypatch.delitem(gym.registry, key)
    with pytest.raises(EnvError, match=r"env.imports: \[minatar.gym:register_envs\]"):
        check_env_registered("MinAtar/Breakout-v1")


def test_an_import_that_registers_nothing_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A module whose envs register in a function, named without it, ran and registered
    nothing: the message says that and names the module:function form (it repeated the
    advice to name the module, which the user had done)."""
    (tmp_path / "walkmod_a2d.py").write_text(PWNMOD.replace("PwnEnv-v0", "WalkModEnv-v0"))
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(
        EnvError,
        match=r"env.imports 'walkmod_a2d' ran and registered no 'WalkModEnv-v0'; .*module:function",
    ):
        env_spec(EnvConfig(id="WalkModEnv-v0", imports=("walkmod_a2d",)))
    spec = env_spec(EnvConfig(id="WalkModEnv-v0", imports=("walkmod_a2d:register",)))
    assert spec.n_actions == 2


def test_a_failed_import_names_the_module() -> None:
    with pytest.raises(EnvError, match=r"cannot import 'nosuchmod_a2d_xyz' \(ModuleNotFoundError"):
        env_spec(EnvConfig(id="CartPole-v1", imports=("nosuchmod_a2d_xyz",)))
    with pytest.raises(EnvError, match=r"or put its folder on PYTHONPATH"):
        env_spec(EnvConfig(id="CartPole-v1", imports=("nosuchmod_a2d_xyz",)))
    with pytest.raises(EnvError, match=r"'json' has no function 'nope'"):
        env_spec(EnvConfig(id="CartPole-v1", imports=("json:nope",)))


# ----------------------------------------------------------------------------- item 9
def test_an_empty_run_config_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = RunFolder(tmp_path / "run")
    run.root.mkdir()
    run.config_path.write_text("")
    with pytest.raises(RunFolderError, match="empty"):
        run.load_config()
    assert main(["report", str(run.root)]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "config.yaml: the file is empty" in err
    run.config_path.write_text("# only a comment\n")
    with pytest.raises(RunFolderError, match="empty"):
        run.load_config()


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("seed: 1\nseed: 2\n", "'seed' (line 2)"),
        ("ppo:\n  lr: 0.1\n  num_envs: 4\n  lr: 0.2\n", "'lr' (line 4)"),
        ("env: {id: CartPole-v1, kwargs: {a: 1, a: 2}}\n", "'a' (line 1)"),
    ],
)
def test_duplicate_yaml_keys_are_refused(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: duplicate key {key}") and "\n" not in msg


def test_a_duplicate_key_in_a_run_config_is_refused(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "run")
    run.root.mkdir()
    text = dump_config(config_from_dict({}))
    run.config_path.write_text(text + "seed: 5\n")
    with pytest.raises(RunFolderError, match=r"config.yaml: duplicate key 'seed'"):
        run.load_config()


class _Payload:
    def __reduce__(self) -> tuple:
        return (print, ("unpickled",))


def test_sb3_refusal_gives_no_advice_to_unpickle(tmp_path: Path) -> None:
    from a2d_evo.train.foreign_checkpoints import read_sb3_zip

    buf = io.BytesIO()
    torch.save({"mlp_extractor.policy_net.0.weight": _Payload()}, buf)
    path = tmp_path / "ppo.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("policy.pth", buf.getvalue())
        zf.writestr("data", json.dumps({"policy_kwargs": {}}))
    with pytest.raises(FormatError) as info:
        read_sb3_zip(path)
    msg = str(info.value)
    assert "refused to unpickle" in msg and "\n" not in msg
    assert "weights_only" not in msg and "trust" not in msg


@pytest.mark.parametrize("key", ["render_mode", "max_episode_steps", "disable_env_checker"])
def test_gymnasium_makes_own_arguments_are_refused_in_env_kwargs(tmp_path: Path, key: str) -> None:
    """A shared folder's ``env.kwargs`` reach ``gymnasium.make``: a recorded ``render_mode:
    human`` would open windows, so make's own arguments never come from ``kwargs``."""
    with pytest.raises(ConfigError, match=rf"env\.kwargs: {key} is gymnasium\.make's own"):
        config_from_dict({"env": {"id": "CartPole-v1", "kwargs": {key: "human"}}})
    folder = planted_agent(tmp_path, {"id": "CartPole-v1", "kwargs": {key: "human"}})
    proc = run_cli(tmp_path, "eval", folder.name, "--episodes", "1")
    assert proc.returncode == EXIT_USER_ERROR and "gymnasium.make's own" in proc.stderr
    assert proc.stderr.count("\n") == 1 and not (folder / "eval.json").exists()
    cfg = config_from_dict({"env": {"id": "LunarLander-v3", "kwargs": {"enable_wind": True}}})
    assert cfg.env.kwargs == {"enable_wind": True}  # the env's own settings pass


def _tiny_agent_folder(tmp_path: Path) -> Path:
    return save_agent(
        Agent(MLPArch((8,)), (4,), 2, {"id": "CartPole-v1"}), tmp_path / "agent", onnx=False
    )


def test_a_policy_whose_values_are_not_in_the_file_is_refused(tmp_path: Path) -> None:
    """A stride-0 view (``expand``) of a one-value storage has the arch's shape in a few
    bytes; reading it whole allocated the full tensor (gigabytes for a wide arch.json)."""
    from a2d_evo.nets.agent_folder import load_agent

    folder = _tiny_agent_folder(tmp_path)
    state = torch.load(folder / "policy.pt", weights_only=True)
    state["layers.0.weight"] = torch.zeros(1).expand(8, 4)
    torch.save(state, folder / "policy.pt")
    with pytest.raises(FormatError, match="'layers.0.weight' is not a dense tensor"):
        load_agent(folder)
    # a dense copy of the same values loads
    state["layers.0.weight"] = torch.zeros(8, 4)
    torch.save(state, folder / "policy.pt")
    assert load_agent(folder).layers[0].weight.abs().sum() == 0


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("arch", {"kind": "mlp", "widths": [4] * 65}, "arch.widths: at most 64 layers, got 65"),
        ("arch", {"kind": "mlp", "widths": [16385]}, "arch.widths: at most 16384, got 16385"),
        (
            "arch",
            {"kind": "cnn", "conv": [8, 16, 16], "extra": [[4, 1]] * 65, "fc": 8},
            "arch.extra: at most 64 layers, got 65",
        ),
        ("obs_shape", [2**30, 2**30, 4, 4], r"obs_shape .* holds more than 2147483647 values"),
    ],
)
def test_agent_files_sizing_layers_without_bound_are_refused(
    tmp_path: Path, key: str, value: object, message: str
) -> None:
    """The arch builds its layers before any weight is read: 100,000 layers took 13 s and
    570 MiB, and an observation product past int64 wrapped to an input of 0 features."""
    from a2d_evo.nets.agent_folder import load_agent

    folder = _tiny_agent_folder(tmp_path)
    meta = json.loads((folder / "arch.json").read_text())
    meta[key] = value
    (folder / "arch.json").write_text(json.dumps(meta))
    with pytest.raises(FormatError, match=message):
        load_agent(folder)


def test_a_hint_over_a_recorded_import_off_the_allow_list_passes_it_and_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The "to train it longer" command names the run's own config.yaml, whose import is off
    the allow-list: it carries the --env-import that file needs, and runs as given."""
    import shlex

    (tmp_path / "pwnmod.py").write_text(PWNMOD)
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(
        yaml.safe_dump(
            {"env": {"id": "PwnEnv-v0", "imports": ["pwnmod:register"], "max_episode_steps": 50}}
        )
    )
    out = tmp_path / "run"
    tiny = ["--set", "ppo.num_envs=2", "--set", "teacher.eval_episodes=2", "--quiet"]
    argv = ["train-teacher", "--config", str(cfg_path), "--out", str(out), *tiny]
    assert main([*argv, "--set", "teacher.total_steps=256"]) == 0
    assert main([*argv, "--set", "teacher.total_steps=256"]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    hint = err.split("to train it longer: `", 1)[1].split("`", 1)[0]
    assert hint.endswith("--resume --set teacher.total_steps=512 --env-import pwnmod:register")
    assert main([*shlex.split(hint)[1:], "--quiet"]) == 0, capsys.readouterr().err
    assert RunFolder(out).stage_config("teacher").teacher.total_steps == 512  # type: ignore[union-attr]


# ----------------------------------------------------------------------------- envs/imports.py
def test_an_import_naming_an_attribute_that_is_no_function_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``module:name`` whose ``name`` is not callable is "no function", not a failed call."""
    from a2d_evo.envs.imports import run_imports
    from a2d_evo.errors import EnvError

    (tmp_path / "notfn_a2d.py").write_text("register = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(EnvError) as err:
        run_imports(["notfn_a2d:register"])
    assert str(err.value) == (
        "env.imports: 'notfn_a2d' has no function 'register' (from 'notfn_a2d:register')"
    )


def test_a_failed_import_quotes_the_first_line_of_its_error_clipped_at_200(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The message of a module that fails on import quotes the first line of its error, at
    most 200 characters of it."""
    from a2d_evo.envs.imports import run_imports
    from a2d_evo.errors import EnvError

    (tmp_path / "badimp_a2d.py").write_text(f"raise RuntimeError('{'x' * 250}\\nsecond line')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(EnvError) as err:
        run_imports(["badimp_a2d"])
    assert f"(RuntimeError: {'x' * 200}); install it" in str(err.value)


def test_two_recorded_imports_missing_are_named_as_them() -> None:
    """Two imports to pass again are "them", each with its own ``--env-import``."""
    from a2d_evo.envs.imports import check_recorded_imports
    from a2d_evo.errors import EnvError

    with pytest.raises(EnvError) as err:
        check_recorded_imports(["a.x", "b.y", "minatar.gym:register_envs"], ["c.z"], "W")
    assert str(err.value).endswith("if you trust them, pass --env-import a.x --env-import b.y"), (
        str(err.value)
    )


def test_an_unknown_id_is_never_pointed_at_the_refused_gym_wrappers() -> None:
    """The close matches an unknown id is offered never include gymnasium's wrappers of the
    old gym package, which are refused whatever their id."""
    from a2d_evo.envs.imports import check_env_registered
    from a2d_evo.errors import EnvError

    with pytest.raises(EnvError) as err:
        check_env_registered("GymV26Environment-v1")
    assert str(err.value) == (
        "unknown environment id 'GymV26Environment-v1': not registered with gymnasium (an env "
        "of another package needs its module in env.imports or --env-import)"
    )


def test_an_unknown_id_offers_up_to_three_matches_of_60_percent_likeness() -> None:
    """``cartpole-v1`` (0.82 alike to ``CartPole-v1``, 0.73 to ``CartPole-v0``: difflib's
    ratio) is offered both, best first: matches down to 0.6, more than one of them."""
    from a2d_evo.envs.imports import check_env_registered
    from a2d_evo.errors import EnvError

    with pytest.raises(EnvError, match=r"; did you mean 'CartPole-v1', 'CartPole-v0'"):
        check_env_registered("cartpole-v1")


@pytest.mark.parametrize("env_id", ["Pong-ramNoFrameskip-v4", "PongDeterministic-v4", "Pong-v0"])
def test_every_gym_style_atari_id_points_at_its_ale_id(env_id: str) -> None:
    """Gym-style Atari ids, ``-ram`` ones and ``-v4`` ones too, are refused naming the ALE id
    of their game (registered or not: ale-py registers them once imported)."""
    from a2d_evo.envs.imports import check_env_registered
    from a2d_evo.errors import EnvError

    with pytest.raises(EnvError, match=r"did you mean 'ALE/Pong-v5'\?"):
        check_env_registered(env_id)
