"""Files are written with the user's umask, not mkstemp's 0600 (issue [M] item 10).

Agents are meant to be shared: under umask 022 every file a2d-evo writes is 0644, under
027 it is 0640. Checkpoints too: they hold tensors only (never code), the same weights an
exported agent ships, so they follow the umask like every other file.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from test_validate_first import CARTPOLE, TINY, cartpole_teacher_file

from a2d_evo.cli import main
from a2d_evo.config import load_config
from a2d_evo.nets.agent import Agent
from a2d_evo.nets.agent_folder import save_agent
from a2d_evo.nets.space import MLPArch
from a2d_evo.runs.files import torch_save, write_bytes, write_json, write_text
from a2d_evo.runs.folder import RunFolder


@pytest.fixture(params=[0o022, 0o027, 0o077], ids=["022", "027", "077"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    before = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(before)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_writes_take_the_umask(tmp_path: Path, umask: int) -> None:
    want = 0o666 & ~umask
    paths = [
        write_text(tmp_path / "config.yaml", "seed: 0\n"),
        write_json(tmp_path / "metrics.json", {"format_version": 1}),
        write_bytes(tmp_path / "report" / "pareto.png", b"\x89PNG"),
        torch_save(tmp_path / "checkpoint.pt", {"w": torch.zeros(2)}),
    ]
    assert {p.name: oct(_mode(p)) for p in paths} == {p.name: oct(want) for p in paths}
    # replacing a file gives the new one the umask too (not the old file's mode)
    os.chmod(paths[0], 0o600)
    write_text(paths[0], "seed: 1\n")
    assert _mode(paths[0]) == want
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_agent_folder_and_run_config_take_the_umask(tmp_path: Path, umask: int) -> None:
    want = 0o666 & ~umask
    agent = Agent(MLPArch((8,)), (4,), 2, {"id": "CartPole-v1"})
    folder = save_agent(agent, tmp_path / "agents" / "knee", onnx=False)
    run = RunFolder(tmp_path / "run")
    run.bind(load_config(CARTPOLE))
    files = [*folder.iterdir(), run.config_path]
    assert len(files) == 3
    assert {f.name: oct(_mode(f)) for f in files} == {f.name: oct(want) for f in files}


def test_import_teacher_writes_shareable_files(tmp_path: Path) -> None:
    src = cartpole_teacher_file(tmp_path / "teacher.cleanrl_model")
    out = tmp_path / "run"
    before = os.umask(0o022)
    try:
        code = main(["import-teacher", str(src), "--config", CARTPOLE, "--out", str(out), *TINY])
    finally:
        os.umask(before)
    assert code == 0
    modes = {str(p.relative_to(out)): oct(_mode(p)) for p in out.rglob("*") if p.is_file()}
    assert {"config.yaml", "teacher/agent/policy.pt", "teacher/agent/metrics.json"} <= set(modes)
    assert set(modes.values()) == {"0o644"}, modes
