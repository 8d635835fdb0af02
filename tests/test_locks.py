"""One writer per folder: every writing command locks what it writes (issue [M] item 2).

The lock is ``fcntl.flock`` on ``<folder>/.lock`` holding the holder's pid. The holders here
are other processes: a plain ``flock`` (as a killed a2d-evo would leave it) or a real
``a2d-evo train-teacher``.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import balance_cartpole

import a2d_evo
from a2d_evo.cli import EXIT_USER_ERROR, main
from a2d_evo.config import load_config
from a2d_evo.errors import RunFolderError
from a2d_evo.report import front_export
from a2d_evo.runs import folder as runfolder
from a2d_evo.runs import locks
from a2d_evo.runs.folder import RunFolder
from a2d_evo.runs.layout import holds_results

REPO = Path(__file__).resolve().parents[1]
CARTPOLE = str(REPO / "configs" / "cartpole.yaml")
TINY = ["--set", "ppo.num_envs=2", "--set", "teacher.eval_episodes=3", "--quiet"]

# Holds flock on <folder>/.lock for each folder given, writes its pid there, says "held".
HOLDER = """
import fcntl, os, sys, time
fds = []
for folder in sys.argv[1:]:
    os.makedirs(folder, exist_ok=True)
    fd = os.open(os.path.join(folder, ".lock"), os.O_RDWR | os.O_CREAT, 0o666)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    fds.append(fd)
print("held", flush=True)
time.sleep(float(os.environ.get("HOLD_S", "600")))
"""


def _env() -> dict[str, str]:
    """The environment of a child that imports the a2d_evo under test."""
    return {**os.environ, "PYTHONPATH": str(Path(a2d_evo.__file__).resolve().parents[1])}


def _hold(*folders: Path, hold_s: float = 600.0) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, *map(str, folders)],
        stdout=subprocess.PIPE,
        text=True,
        env={**_env(), "HOLD_S": str(hold_s)},
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.fixture
def run(tmp_path: Path) -> RunFolder:
    """A run folder whose config.yaml is CartPole's (what export, report, ... read first)."""
    r = RunFolder(tmp_path / "run")
    r.bind(load_config(CARTPOLE))
    return r


def _commands(run: RunFolder) -> dict[str, tuple[list[str], Path]]:
    agent = run.agents / "knee"
    out = ["--config", CARTPOLE, "--out", str(run.root)]
    return {
        "train-teacher": (["train-teacher", *out], run.teacher),
        "import-teacher": (["import-teacher", str(run.root / "x.pt"), *out], run.teacher),
        "train-supernet": (["train-supernet", *out], run.supernet),
        "evolve": (["evolve", *out, "--pop", "4", "--gens", "1"], run.search),
        "baselines": (["baselines", str(run.root)], run.baselines),
        "report": (["report", str(run.root)], run.report),
        "export": (["export", str(run.root)], run.agents),
        "eval": (["eval", str(agent)], agent),
        "finetune": (["finetune", str(agent), "--steps", "64"], agent),
    }


COMMANDS = list(_commands(RunFolder("x")))


@pytest.mark.parametrize("command", COMMANDS)
def test_a_second_writer_is_refused_naming_the_holder(
    command: str, run: RunFolder, capsys: pytest.CaptureFixture[str]
) -> None:
    argv, folder = _commands(run)[command]
    folder.mkdir(parents=True, exist_ok=True)
    config_before = run.config_path.read_bytes()
    holder = _hold(folder)
    try:
        assert main([*argv, "--quiet"]) == EXIT_USER_ERROR
        err = _one_line_error(capsys)
        assert f"pid {holder.pid}" in err and str(folder) in err, err
        assert "being written by another a2d-evo command" in err
        # the refused command wrote nothing: the folder holds only the holder's lock file
        assert sorted(p.name for p in folder.iterdir()) == [".lock"]
        assert (folder / ".lock").read_text() == str(holder.pid)
        assert run.config_path.read_bytes() == config_before
    finally:
        _kill(holder)


def test_killed_holder_leaves_no_stale_lock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    argv = ["train-teacher", "--config", CARTPOLE, "--out", str(out), *TINY]
    argv += ["--set", "teacher.total_steps=128"]
    holder = _hold(out / "teacher")
    try:
        assert main(argv) == EXIT_USER_ERROR
        assert f"pid {holder.pid}" in _one_line_error(capsys)
        assert not (out / "config.yaml").exists()  # refused before anything was written
    finally:
        _kill(holder)
    # the dead holder's .lock file is still there, unlocked: it blocks nothing
    assert (out / "teacher" / ".lock").read_text() == str(holder.pid)
    assert not holds_results(out / "teacher")
    assert main(argv) == 0
    assert (out / "teacher" / "agent" / "metrics.json").is_file()
    assert not (out / "teacher" / ".lock").exists()  # released (and removed) at the end


def test_two_concurrent_train_teacher_one_refused_other_intact(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import a2d_evo.train  # noqa: F401  (loaded now, so the second writer reaches its lock fast)

    out = tmp_path / "run"
    common = ["train-teacher", "--config", CARTPOLE, "--out", str(out), *TINY]
    longer = ["--seed", "1", "--set", "teacher.total_steps=4096"]
    first = subprocess.Popen(
        [sys.executable, "-m", "a2d_evo", *common, *longer],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lock = out / "teacher" / ".lock"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and first.poll() is None:
        if lock.is_file() and lock.read_text().strip() == f"{first.pid}@{socket.gethostname()}":
            break
        time.sleep(0.02)
    try:
        assert first.poll() is None, "the first writer ended before it was seen holding its lock"
        code = main([*common, "--seed", "2", "--set", "teacher.total_steps=128"])
        err = _one_line_error(capsys)
    finally:
        _, stderr = first.communicate(timeout=600)
    assert code == EXIT_USER_ERROR and f"pid {first.pid}" in err, err
    assert first.returncode == 0, stderr
    # the run and the teacher are the first writer's alone
    assert load_config(out / "config.yaml").seed == 1
    assert load_config(out / "teacher" / "config.yaml").seed == 1
    assert (out / "teacher" / "agent" / "metrics.json").is_file()
    assert sorted(p.name for p in (out / "tb").iterdir()) == ["teacher"]
    assert not lock.exists()


def test_run_config_binding_waits_for_the_run_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = RunFolder(tmp_path / "run")
    cfg = load_config(CARTPOLE)
    holder = _hold(run.root)
    try:
        monkeypatch.setattr(runfolder, "RUN_LOCK_WAIT_S", 0.3, raising=False)
        with pytest.raises(RunFolderError, match=f"pid {holder.pid}"):
            run.bind(cfg)
        assert not run.exists()
    finally:
        _kill(holder)
    # a holder that lets go within the wait is waited for
    holder = _hold(run.root, hold_s=0.5)
    monkeypatch.setattr(runfolder, "RUN_LOCK_WAIT_S", 30.0, raising=False)
    run.bind(cfg)
    holder.wait(timeout=30)
    assert run.exists() and not (run.root / ".lock").exists()


def test_folder_lock_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "a" / "b"
    with locks.folder_lock(folder):
        assert (folder / ".lock").read_text().strip() == f"{os.getpid()}@{socket.gethostname()}"
        with locks.folder_lock(folder):  # a writer calling another writer of the same folder
            pass
        assert (folder / ".lock").is_file()
    # released: the lock file and the folders made for it are gone
    assert not (tmp_path / "a").exists()
    # create=False: a missing folder is neither created nor locked
    with locks.folder_lock(folder, create=False):
        assert not folder.exists()
    # a torchrun rank other than 0 never writes, so never locks
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    with locks.folder_lock(folder):
        assert not folder.exists()


def test_another_thread_is_refused_as_another_process_is(tmp_path: Path) -> None:
    """Nesting is a thread's own: a second thread asking for a folder the first holds is
    refused (it entered as a nested holder, and the first thread's release then dropped the
    lock while the second was inside, whose own release raised KeyError)."""
    import threading

    folder = tmp_path / "run"
    inside, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def first() -> None:
        with locks.folder_lock(folder):
            inside.set()
            release.wait(10)

    holder = threading.Thread(target=first)
    holder.start()
    assert inside.wait(10)
    try:
        with (
            pytest.raises(RunFolderError, match="being written by another a2d-evo command"),
            locks.folder_lock(folder),
        ):
            pass
    except BaseException as exc:  # pragma: no cover - reported below
        errors.append(exc)
    finally:
        release.set()
        holder.join(10)
    assert not errors, errors
    assert not (folder / ".lock").exists()  # the holder's release went through
    with locks.folder_lock(folder):  # and the folder is free again
        pass


def test_a_waiter_whose_lock_file_is_unlinked_by_the_release_takes_the_next_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The holder unlinks ``.lock`` on release; a waiter that opened it just before sees a
    file with no links. That is a release, not a planted hard link: it opens the new file
    and takes the lock (two processes binding one run got a false refusal, 5 in 8 s)."""
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / locks.LOCK_FILE).write_text("12345\n")  # the releasing holder's file
    real_open, opened = os.open, []

    def open_then_release(path: object, flags: int, mode: int = 0o777) -> int:
        fd = real_open(path, flags, mode)
        if not opened:  # the holder's release lands between this open and the fstat
            os.unlink(folder / locks.LOCK_FILE)
        opened.append(fd)
        return fd

    monkeypatch.setattr(locks.os, "open", open_then_release)
    with locks.folder_lock(folder, wait_s=1.0):
        assert (folder / locks.LOCK_FILE).read_text() == f"{os.getpid()}@{socket.gethostname()}\n"
    assert len(opened) == 2  # the unlinked file, then the new one


def test_a_planted_lock_link_or_fifo_is_refused_and_its_target_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = tmp_path / "notes.txt"
    victim.write_text("IMPORTANT USER DATA\n")
    from a2d_evo.nets.agent import Agent
    from a2d_evo.nets.agent_folder import save_agent
    from a2d_evo.nets.space import MLPArch

    folder = tmp_path / "shared" / "agentA"
    agent = Agent(MLPArch((8,)), (4,), 2, {"id": "CartPole-v1"})
    save_agent(agent, folder, onnx=False)
    (folder / ".lock").symlink_to(victim)
    with pytest.raises(RunFolderError, match="is a symbolic link, not a lock file"):
        with locks.folder_lock(folder):
            pass
    assert victim.read_text() == "IMPORTANT USER DATA\n"
    assert (folder / ".lock").is_symlink()  # left for its owner to look at
    # the same through a command: one line, exit 2, the target as it was
    assert main(["eval", str(folder), "--episodes", "2"]) == EXIT_USER_ERROR
    assert "symbolic link" in capsys.readouterr().err
    assert victim.read_text() == "IMPORTANT USER DATA\n"
    (folder / ".lock").unlink()
    os.link(victim, folder / ".lock")  # a hard link is a regular file, but not a lock's own
    with pytest.raises(RunFolderError, match="is a hard link to another file"):
        with locks.folder_lock(folder):
            pass
    assert victim.read_text() == "IMPORTANT USER DATA\n"
    fifo = tmp_path / "other" / "agentB"
    fifo.mkdir(parents=True)
    os.mkfifo(fifo / ".lock")
    with pytest.raises(RunFolderError, match="is not a regular file, not a lock file"):
        with locks.folder_lock(fifo):
            pass


def test_writing_the_teacher_agent_waits_for_no_one_holding_it(tmp_path: Path) -> None:
    """`finetune`/`eval` lock an agent folder; the teacher stage locks RUN/teacher/agent too."""
    from a2d_evo.config import config_from_dict
    from a2d_evo.errors import RunFolderError
    from a2d_evo.nets.agent import Agent
    from a2d_evo.nets.space import MLPArch
    from a2d_evo.train.teacher_folder import save_teacher

    folder = tmp_path / "run" / "teacher" / "agent"
    holder = _hold(folder)
    try:
        cfg = config_from_dict({"env": {"id": "CartPole-v1"}, "eval": {"episodes": 2}})
        # a balancer, so the teacher check passes and the lock is met
        agent = balance_cartpole(Agent(MLPArch((8,)), (4,), 2, {"id": "CartPole-v1"}))
        with pytest.raises(RunFolderError, match=rf"pid {holder.pid}"):
            save_teacher(agent, cfg, folder, {"source": "test"})
    finally:
        _kill(holder)
    assert not (folder / "policy.pt").exists()


def test_export_takes_every_members_lock_before_writing_any(
    finished: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = tmp_path / "run"
    shutil.copytree(finished, root)
    # two folders to export (the small search's front is one member: its entry twice)
    monkeypatch.setattr(front_export, "select", lambda *args: [("front_00", 0), ("front_01", 0)])
    held = root / "agents" / "front_01"  # the second one export would write
    held.mkdir(parents=True)
    holder = _hold(held)
    try:
        argv = ["export", str(root), "--pick", "all", "--finetune", "0", "--quiet"]
        assert main(argv) == EXIT_USER_ERROR
        err = _one_line_error(capsys)
        assert f"pid {holder.pid}" in err and str(held) in err, err
        assert sorted(p.name for p in (root / "agents").iterdir()) == [held.name]
        assert sorted(p.name for p in held.iterdir()) == [".lock"]
    finally:
        _kill(holder)
    assert main(argv) == 0
    assert (root / "agents" / "front_00" / "policy.pt").is_file()
    assert (root / "agents" / "front_01" / "policy.pt").is_file()


@pytest.mark.parametrize("stage", ["teacher", "supernet"])
def test_export_is_refused_while_the_teacher_or_the_supernet_is_written(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], stage: str
) -> None:
    """Export digests the supernet and the teacher, then extracts and fine-tunes from them: a
    train-teacher or train-supernet writing one meanwhile would leave members whose recorded
    sources are not what they were made from. It is refused before anything is written."""
    root = tmp_path / "run"
    shutil.copytree(finished, root)
    held = root / stage
    holder = _hold(held)
    argv = ["export", str(root), "--pick", "all", "--finetune", "0", "--quiet"]
    try:
        assert main(argv) == EXIT_USER_ERROR
        err = _one_line_error(capsys)
        assert f"pid {holder.pid}" in err and str(held) in err, err
        assert not (root / "agents").exists() or not any((root / "agents").iterdir())
    finally:
        _kill(holder)
    assert main(argv) == 0


def test_a_release_leaves_alone_the_lock_file_of_a_folder_made_again(tmp_path: Path) -> None:
    """A holder whose folder was removed meanwhile (export removes stale below_NN folders
    under their locks) and made again, with a new holder's .lock in it, removes nothing on
    release: unlinking that file by name would let a third writer in beside the second."""
    folder = tmp_path / "below_00"
    go_on = tmp_path / "go_on"
    holder = (
        "import sys, time, pathlib\n"
        "from a2d_evo.runs import locks\n"
        "with locks.folder_lock(sys.argv[1]):\n"
        "    print('held', flush=True)\n"
        "    while not pathlib.Path(sys.argv[2]).exists(): time.sleep(0.05)\n"
    )
    with locks.folder_lock(folder):
        shutil.rmtree(folder)
        second = subprocess.Popen(
            [sys.executable, "-c", holder, str(folder), str(go_on)],
            stdout=subprocess.PIPE, text=True, env=_env(),
        )  # fmt: skip
        assert second.stdout is not None and second.stdout.readline().strip() == "held"
    try:
        assert (folder / locks.LOCK_FILE).read_text() == f"{second.pid}@{socket.gethostname()}\n"
        with (
            pytest.raises(RunFolderError, match="being written by another a2d-evo command"),
            locks.folder_lock(folder),
        ):
            pass
    finally:
        go_on.touch()
        second.wait(30)
    deadline = time.monotonic() + 10
    while (folder / locks.LOCK_FILE).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    with locks.folder_lock(folder):  # free again once the second holder is gone
        pass


def test_the_holder_is_named_with_its_host(tmp_path: Path) -> None:
    """On a shared file system the holder may run on another machine: the lock file holds
    ``pid@host`` and the refusal names both (a bare pid invited killing an unrelated local
    process; found by review); a file of a bare pid (before the host) is read as before."""
    lock = tmp_path / locks.LOCK_FILE
    lock.write_text("1234@node7\n")
    assert locks._holder(lock) == "pid 1234 on host node7"
    lock.write_text("1234\n")
    assert locks._holder(lock) == "pid 1234"


def test_a_lock_file_another_user_left_does_not_block_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command of another user killed in a shared (group-writable) run folder leaves its
    ``.lock`` at mode 0644: opening it for writing is refused (EACCES), and every command
    said the folder is not writable, for good (found by review). flock takes a read-only
    descriptor: the lock is taken on one (simulated, as root here), and released."""
    folder = tmp_path / "shared"
    folder.mkdir()
    (folder / locks.LOCK_FILE).write_text("999@elsewhere\n")  # its holder is dead
    real_open = os.open
    flags_seen: list[int] = []

    def as_another_user(path: object, flags: int, mode: int = 0o777) -> int:
        if str(path).endswith(locks.LOCK_FILE):
            flags_seen.append(flags)
            if flags & os.O_RDWR:
                raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, mode)

    monkeypatch.setattr(locks.os, "open", as_another_user)
    with locks.folder_lock(folder):
        assert (folder / locks.LOCK_FILE).read_text() == "999@elsewhere\n"  # not written
    assert any(not f & (os.O_RDWR | os.O_WRONLY) for f in flags_seen)
    assert not (folder / locks.LOCK_FILE).exists()  # released as any lock: removed
    # where flock is fcntl underneath (NFS), a read-only descriptor cannot take it: said
    (folder / locks.LOCK_FILE).write_text("999@elsewhere\n")

    def nfs_flock(fd: int, op: int) -> None:
        raise OSError(errno.EBADF, "Bad file descriptor")

    with monkeypatch.context() as m:
        m.setattr(locks.fcntl, "flock", nfs_flock)
        with pytest.raises(RunFolderError, match=r"opens read-only here, and this file system"):
            with locks.folder_lock(folder):
                pass
    # a FIFO planted as .lock, refused for writing: the read-only open does not wait for a
    # writer for ever (found by review of the fallback), it is refused as not a lock file
    (folder / locks.LOCK_FILE).unlink()
    os.mkfifo(folder / locks.LOCK_FILE, 0o444)
    with pytest.raises(RunFolderError, match="not a regular file"):
        with locks.folder_lock(folder):
            pass


def test_a_refusal_says_when_the_recorded_holder_has_ended(tmp_path: Path) -> None:
    """A holder that locked another user's leftover .lock read-only cannot write its own
    pid: the one recorded is the dead command's, and the refusal says so rather than name an
    unrelated process to stop (found by review)."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    lock = tmp_path / locks.LOCK_FILE
    lock.write_text(f"{done.stdout.strip()}@{socket.gethostname()}\n")
    assert locks._holder(lock).endswith(
        "recorded by a command that has ended: the holder could not record itself"
    )
    lock.write_text(f"{os.getpid()}@{socket.gethostname()}\n")  # alive: named alone
    assert locks._holder(lock) == f"pid {os.getpid()} on host {socket.gethostname()}"
    lock.write_text(f"{done.stdout.strip()}@another-machine\n")  # not ours to look up
    assert locks._holder(lock) == f"pid {done.stdout.strip()} on host another-machine"


def test_a_stale_lock_file_s_text_is_replaced_by_the_holder_s_pid(tmp_path: Path) -> None:
    """A ``.lock`` left with longer text (a holder killed before its release) holds exactly
    the new holder's pid once it is taken, not the pid written over the old text."""
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / locks.LOCK_FILE).write_text("4294967295 left by a killed holder\n")
    with locks.folder_lock(folder):
        assert (folder / locks.LOCK_FILE).read_text() == f"{os.getpid()}@{socket.gethostname()}\n"


def test_a_holder_whose_lock_file_holds_no_pid_is_named_as_unknown(tmp_path: Path) -> None:
    """The refusal names the holder's pid only when the lock file holds digits: other text
    (a holder of another make) reads ``pid unknown``."""
    folder = tmp_path / "run"
    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        with locks.folder_lock(folder):
            with open(folder / locks.LOCK_FILE, "r+") as f:  # the same file, other text
                f.truncate(0)
                f.write("someone\n")
            inside.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert inside.wait(10)
        with pytest.raises(RunFolderError, match=r"another a2d-evo command \(pid unknown\);"):
            with locks.folder_lock(folder):
                pass
    finally:
        release.set()
        holder.join(10)


def test_a_folder_removed_between_its_making_and_the_lock_s_open_is_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refused writer removes the empty folder it made; one that does so between this
    writer's making the folder and opening its ``.lock`` (ENOENT) is a race, not an error:
    the folder is made again and locked (and removed again on release, being empty)."""
    folder = tmp_path / "a" / "run"
    real_open, opened = os.open, list[object]()

    def open_after_removal(path: object, flags: int, mode: int = 0o777) -> int:
        if str(path).endswith(locks.LOCK_FILE):
            if not opened:  # the other writer's clean-up lands just before this open
                os.rmdir(folder)
                os.rmdir(folder.parent)
            opened.append(path)
        return real_open(path, flags, mode)  # type: ignore[arg-type]

    monkeypatch.setattr(locks.os, "open", open_after_removal)
    with locks.folder_lock(folder):
        assert (folder / locks.LOCK_FILE).read_text() == f"{os.getpid()}@{socket.gethostname()}\n"
    assert len(opened) == 2
    assert not (tmp_path / "a").exists()


def test_a_read_only_file_system_is_said_as_the_parent_not_being_writable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder the lock cannot make on a read-only file system (EROFS, as EACCES and EPERM)
    is said as its parent not being writable, not as a failure to create it."""
    folder = tmp_path / "run"

    def read_only(path: str | Path) -> list[Path]:
        raise OSError(errno.EROFS, "Read-only file system", str(folder))

    monkeypatch.setattr(locks, "make_dirs", read_only)
    with pytest.raises(RunFolderError) as err:
        with locks.folder_lock(folder):
            pass
    assert str(err.value) == f"{tmp_path} is not writable (Read-only file system)"


def test_a_one_process_world_locks_whatever_its_rank(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a rank other than 0 of a world of two or more processes goes without the lock:
    ``WORLD_SIZE=1`` is one process, which writes and locks (whatever ``RANK`` says)."""
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "1")
    with locks.folder_lock(tmp_path / "run"):
        mine = f"{os.getpid()}@{socket.gethostname()}\n"
        assert (tmp_path / "run" / locks.LOCK_FILE).read_text() == mine


def test_a_lock_refused_with_eacces_is_said_as_held_by_another_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``flock`` may report a held lock as EACCES (as EAGAIN/EWOULDBLOCK): that is another
    writer, not a failure to lock."""

    def held(fd: int, op: int) -> None:
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(locks.fcntl, "flock", held)
    with pytest.raises(RunFolderError, match=r"run is being written by another a2d-evo command"):
        with locks.folder_lock(tmp_path / "run"):
            pass


def test_binding_a_run_waits_for_another_command_binding_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """:meth:`RunFolder.bind` waits (:data:`RUN_LOCK_WAIT_S`) for a command holding the
    run-level lock, which holds it for milliseconds, instead of refusing at once: here the
    holder lets go at the first wait, and the bind goes through."""
    from a2d_evo.config import config_from_dict
    from a2d_evo.runs.folder import RunFolder

    run = RunFolder(tmp_path / "run")
    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        with locks.folder_lock(run.root):
            inside.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    waits: list[float] = []

    def wait(seconds: float) -> None:  # the holder ends its write during this wait
        waits.append(seconds)
        release.set()
        holder.join(10)

    holder.start()
    try:
        assert inside.wait(10)
        monkeypatch.setattr(locks.time, "sleep", wait)
        run.bind(config_from_dict({"env": {"id": "CartPole-v1"}}))
    finally:
        release.set()
        holder.join(10)
    assert waits and run.exists() and not (run.root / locks.LOCK_FILE).exists()
