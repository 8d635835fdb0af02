"""Members fine-tuned side by side in worker processes (``finetune.workers``,
``a2d_evo.train.finetune_pool``): the same agents as one process, errors brought home."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from a2d_evo.config import Config, replace
from a2d_evo.errors import ConfigError, TrainingError
from a2d_evo.runs.folder import RunFolder

WALL_CLOCK = {"finetune_wall_s", "latency_ms", "export_command"}
"""The only fields of an agent's metrics.json allowed to differ between two exports."""


def with_workers(cfg: Config, workers: int) -> Config:
    return replace(cfg, torch_threads=1, finetune=replace(cfg.finetune, workers=workers))


def members(finished: Path, root: Path, n: int = 4) -> tuple[Config, RunFolder, list[Path]]:
    """A copy of ``finished`` with ``n`` agent folders of as many archs extracted from its
    supernet, each with the front member's figures (as an export writes them) and its own
    FLOPs."""
    from a2d_evo.formats import INHERITED_KEYS
    from a2d_evo.nets.agent_folder import extract, save_agent
    from a2d_evo.nets.cost import flops
    from a2d_evo.nets.space import MLPArch
    from a2d_evo.nets.supernet import load_supernet

    shutil.copytree(finished, root)
    run = RunFolder(root)
    cfg = run.load_config()
    entry = json.loads((run.search / "front.json").read_text())["front"][0]
    base = {k: v for k, v in entry.items() if k not in ("arch", "encoding")}
    base |= {"source": "front", "inherited": {k: entry.get(k) for k in INHERITED_KEYS}}
    supernet = load_supernet(cfg, run.supernet_weights)
    folders = []
    for i, widths in enumerate([(4,), (8, 4), (16,), (4, 4, 4)][:n]):
        agent = extract(supernet, MLPArch(widths))
        metrics = {**base, "flops": flops(MLPArch(widths), (4,), 2)}
        folders.append(save_agent(agent, run.agents / f"m{i}", metrics=metrics, onnx=False))
    return cfg, run, folders


def test_workers_deliver_the_agents_one_process_delivers_bit_for_bit(
    finished: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    """Two workers, three members: every member's weights and metrics.json (but wall-clock
    figures) equal those of fine-tuning them one after the other in this process; the rows
    come back in the members' order. Folders given relative to the caller's folder (a worker
    runs in another)."""
    from a2d_evo.report.deliver import finetune_members

    rows = {}
    for workers in (1, 2):
        cfg, _, folders = members(finished, tmp_path / str(workers), 3)
        monkeypatch.chdir(tmp_path / str(workers))
        relative = [f.relative_to(tmp_path / str(workers)) for f in folders]
        extracted = [torch.load(f / "policy.pt", weights_only=True) for f in folders]
        tuned = with_workers(replace(cfg, finetune=replace(cfg.finetune, steps=96)), workers)
        rows[workers] = finetune_members(tuned, RunFolder("."), relative, progress=False)
    assert [r["agent"] for r in rows[2]] == ["m0", "m1", "m2"]
    # the fine-tuned weights ship (the validation gate kept them), so equal weights are news
    assert [r["kept"] for r in rows[2]] == ["fine-tuned"] * 3
    for folder, weights in zip(folders, extracted, strict=True):
        now = torch.load(folder / "policy.pt", weights_only=True)
        assert any(not torch.equal(now[k], weights[k]) for k in weights)
    assert rows[1] == rows[2]
    for name in ("m0", "m1", "m2"):
        a, b = (tmp_path / str(w) / "agents" / name for w in (1, 2))
        wa = torch.load(a / "policy.pt", weights_only=True)
        wb = torch.load(b / "policy.pt", weights_only=True)
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
        ma, mb = (json.loads((f / "metrics.json").read_text()) for f in (a, b))
        assert ma["finetune_budget"] == 96
        assert {k: v for k, v in ma.items() if k not in WALL_CLOCK} == {
            k: v for k, v in mb.items() if k not in WALL_CLOCK
        }


def test_a_member_s_error_is_raised_after_the_running_ones_finish(
    finished: Path, tmp_path: Path
) -> None:
    """A job that fails in a worker raises its error, type and message, in the caller; the
    member running beside it is fine-tuned and written (an export run again continues from
    it), and no member starts after the error."""
    from a2d_evo.errors import FormatError
    from a2d_evo.report.deliver import finetune_members

    cfg, run, folders = members(finished, tmp_path / "run")
    (folders[1] / "arch.json").write_text("{not json")
    tuned = with_workers(replace(cfg, finetune=replace(cfg.finetune, steps=96)), 2)
    with pytest.raises(FormatError, match="arch.json is not valid JSON"):
        finetune_members(tuned, run, folders, progress=False)
    done = ["finetune_budget" in json.loads((f / "metrics.json").read_text()) for f in folders]
    assert done[0] and not done[1] and not done[3]  # m2 may have started before m1 failed


def test_a_worker_that_dies_is_an_error_naming_it_and_its_member(
    finished: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    """A worker killed (out of memory, say) is a TrainingError naming its member; the other
    worker is stopped, nothing hangs."""
    from a2d_evo.report.deliver import finetune_members
    from a2d_evo.train import finetune_pool

    cfg, run, folders = members(finished, tmp_path / "run")
    started: list[Any] = []
    start_worker = finetune_pool.start_worker

    def start(entry: str, args: Any) -> Any:
        proc, sock = start_worker(entry, args)
        started.append(proc)
        if len(started) == 2:  # the second worker, which takes m1
            proc.kill()
            proc.wait()
        return proc, sock

    monkeypatch.setattr(finetune_pool, "start_worker", start)
    tuned = with_workers(replace(cfg, finetune=replace(cfg.finetune, steps=96)), 2)
    with pytest.raises(TrainingError, match=r"died \(exit code -9\) while fine-tuning .*m1;"):
        finetune_members(tuned, run, folders, progress=False)
    assert len(started) == 2 and all(p.poll() is not None for p in started)


def test_workers_need_torch_threads_set() -> None:
    """Each worker with torch's default threads would take every core."""
    from a2d_evo.config import config_from_dict

    with pytest.raises(ConfigError, match="finetune.workers: 2 processes .* torch_threads"):
        config_from_dict({"finetune": {"workers": 2}})
    with pytest.raises(ConfigError, match="finetune.workers"):
        config_from_dict({"finetune": {"workers": 0}})
    assert config_from_dict({"finetune": {"workers": 2}, "torch_threads": 1}).finetune.workers == 2


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_workers_die_with_the_process_that_holds_their_locks(
    finished: Path, tmp_path: Path
) -> None:
    """A caller killed outright (SIGKILL, the OOM killer, a closed terminal) releases the
    folders' locks with it: its workers die too, mid-fine-tune, and write nothing (a worker
    left running would write a folder another command may be writing by then)."""
    import contextlib
    import os
    import pickle
    import signal
    import subprocess
    import sys
    import time

    from a2d_evo.evaluation.seeds import final_seeds
    from a2d_evo.train.finetune_pool import FinetuneJob

    cfg, run, folders = members(finished, tmp_path / "run", 2)
    seeds = final_seeds(cfg.seed, cfg.search.final_episodes)
    jobs = [FinetuneJob(f, 10_000_000, run.teacher_agent, seeds[0], len(seeds), 0) for f in folders]
    (tmp_path / "jobs.pkl").write_bytes(pickle.dumps((with_workers(cfg, 2), jobs)))
    code = (
        "import pickle, sys; from a2d_evo.train.finetune_pool import run_finetunes; "
        "cfg, jobs = pickle.load(open(sys.argv[1], 'rb')); "
        "run_finetunes(cfg, jobs, lambda i, s: None)"
    )
    before = [(f / "policy.pt").read_bytes() for f in folders]
    children_left: list[int] = []  # killed at the end whatever happens
    parent = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path / "jobs.pkl")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        for _ in range(2):  # both jobs handed out: each worker is inside its fine-tune
            assert "fine-tuning" in parent.stdout.readline()

        def children() -> list[int]:
            out = []
            for stat in Path("/proc").glob("[0-9]*/stat"):
                try:
                    fields = stat.read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == parent.pid:
                    out.append(int(stat.parent.name))
            return out

        workers = children()
        children_left.extend(workers)
        assert len(workers) == 2
        time.sleep(3.0)  # training by now
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 10.0
        alive = workers
        while alive and time.monotonic() < deadline:
            time.sleep(0.2)
            alive = [w for w in workers if Path(f"/proc/{w}").exists() and not _zombie(w)]
        assert not alive, f"workers {alive} outlived their parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for w in children_left:
            with contextlib.suppress(OSError):
                os.kill(w, signal.SIGKILL)
    assert [(f / "policy.pt").read_bytes() for f in folders] == before
    assert all(
        "finetune_budget" not in json.loads((f / "metrics.json").read_text()) for f in folders
    )


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


class _Proc:
    """A worker process as the pool sees it: exited with ``code``, or running (None)."""

    def __init__(self, code: int | None) -> None:
        self.pid, self.returncode = 4242, code

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        return self.returncode

    def kill(self) -> None:
        self.returncode = -9


def test_a_member_finished_beside_a_dead_worker_is_reported_before_the_error(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Both workers answer in one wait, the first by dying: the second's finished member is
    reported (``done``) before the TrainingError that names the first's."""
    import socket
    from multiprocessing.connection import Connection

    from a2d_evo.config import config_from_dict
    from a2d_evo.train import finetune_pool

    ends: list[Any] = []

    def start(entry: str, args: Any) -> Any:
        ours, theirs = socket.socketpair()
        if not ends:  # the first worker is gone: its end of the socket closed
            theirs.close()
            ends.append(None)
            return _Proc(1), ours
        worker = Connection(theirs.detach())
        worker.send(("ok", {"metrics": "m1's"}))  # its job done, before anyone waits
        ends.append(worker)
        return _Proc(None), ours

    monkeypatch.setattr(finetune_pool, "start_worker", start)
    jobs = [finetune_pool.FinetuneJob(tmp_path / f"m{i}", 96, None, 0, 2, 0) for i in range(2)]
    reported: list[tuple[int, Any]] = []
    cfg = config_from_dict({"finetune": {"workers": 2}, "torch_threads": 1})
    with pytest.raises(TrainingError, match=r"died \(exit code 1\) while fine-tuning .*m0;"):
        finetune_pool._pool(cfg, jobs, lambda i, s: reported.append((i, s)), False, 2)
    assert reported == [(1, {"metrics": "m1's"})]
    ends[1].close()


def test_a_worker_dying_after_an_error_leaves_the_other_running_members_to_finish(
    tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    """Three workers: m0's job fails, m1's worker dies, m2 is still running. The first error
    is raised once m2 is written, and the death is said (it raised m0's error at once and
    killed m2 mid-fine-tune; found by review)."""
    import socket
    import threading
    from multiprocessing.connection import Connection

    from a2d_evo.config import config_from_dict
    from a2d_evo.train import finetune_pool

    ends: list[Any] = []

    def start(entry: str, args: Any) -> Any:
        ours, theirs = socket.socketpair()
        k = len(ends)
        if k == 1:  # m1's worker is gone: its end of the socket closed
            theirs.close()
            ends.append(None)
            return _Proc(1), ours
        worker = Connection(theirs.detach())
        ends.append(worker)
        if k == 0:
            worker.send(("error", TrainingError("m0 broke")))
        else:  # m2 finishes after the first wait has seen the error and the death
            threading.Timer(0.5, worker.send, [("ok", {"metrics": "m2's"})]).start()
        return _Proc(None), ours

    monkeypatch.setattr(finetune_pool, "start_worker", start)
    jobs = [finetune_pool.FinetuneJob(tmp_path / f"m{i}", 96, None, 0, 2, 0) for i in range(3)]
    reported: list[tuple[int, Any]] = []
    cfg = config_from_dict({"finetune": {"workers": 3}, "torch_threads": 1})
    with pytest.raises(TrainingError, match="m0 broke"):
        finetune_pool._pool(cfg, jobs, lambda i, s: reported.append((i, s)), False, 3)
    assert reported == [(2, {"metrics": "m2's"})]
    assert re.search(r"died \(exit code 1\) while fine-tuning .*m1;", capsys.readouterr().err)
    for end in ends[::2]:
        end.close()


def _pool_stub(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Replace the locks and the worker pool of finetune_pool: the pool records its worker
    count (nothing is trained, no process starts)."""
    from a2d_evo.train import finetune_pool

    seen: list[int] = []
    monkeypatch.setattr(finetune_pool, "folder_lock", lambda *a, **k: contextlib.nullcontext())
    monkeypatch.setattr(finetune_pool, "_pool", lambda cfg, jobs, done, p, w: seen.append(w))
    return seen


def _jobs(folders: list[Path]) -> list[object]:
    from a2d_evo.train.finetune_pool import FinetuneJob

    return [FinetuneJob(f, 256, None, 0, 1, 1) for f in folders]


def test_no_more_workers_start_than_there_are_jobs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """a2d_evo/train/finetune_pool.py run_finetunes: finetune.workers 4 with 2 jobs starts 2
    workers. Mutant let through: ``min(cfg.finetune.workers, len(jobs))`` made
    ``cfg.finetune.workers``: the pool then gave worker 3 a job from an empty queue
    (IndexError) after starting 2 idle processes."""
    from a2d_evo.config import config_from_dict
    from a2d_evo.train.finetune_pool import run_finetunes

    seen = _pool_stub(monkeypatch)
    cfg = config_from_dict({"finetune": {"workers": 4}, "torch_threads": 1})
    run_finetunes(cfg, _jobs([tmp_path / "a", tmp_path / "b"]), lambda i, s: None, False)
    assert seen == [2]  # min(4 workers, 2 jobs)


def test_a_folder_given_twice_is_refused_before_any_worker_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """a2d_evo/train/finetune_pool.py run_finetunes: two jobs on one folder (one of them by
    another path to it) raise TrainingError naming it, and no worker starts. Mutant let
    through: ``len(set(where)) < len(where)`` made ``>`` (never true): two workers would
    write one folder at once."""
    from a2d_evo.config import config_from_dict
    from a2d_evo.errors import TrainingError
    from a2d_evo.train.finetune_pool import run_finetunes

    seen = _pool_stub(monkeypatch)
    (tmp_path / "a").mkdir()
    cfg = config_from_dict({"finetune": {"workers": 2}, "torch_threads": 1})
    jobs = _jobs([tmp_path / "a", tmp_path / "a" / ".." / "a"])
    with pytest.raises(TrainingError, match="a folder is given twice: .*a$"):
        run_finetunes(cfg, jobs, lambda i, s: None, False)
    assert seen == []
