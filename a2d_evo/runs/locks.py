"""One writer per folder: an exclusive lock a command holds on the folder it writes.

``fcntl.flock`` on ``<folder>/.lock``, which holds the holder's ``pid@host`` (a lock on a
shared file system may be held from another machine); the OS drops the lock when its holder
dies, so a killed command leaves no stale lock, and a second writer is refused with a
one-line error naming the holder. Readers need no lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import inspect
import os
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar, cast

from a2d_evo.errors import RunFolderError
from a2d_evo.runs.files import make_dirs

LOCK_FILE = ".lock"
"""The lock file a writer holds in the folder it writes, e.g. ``RUN_DIR/search/.lock``."""


RUN_LOCK_WAIT_S = 10.0
"""How long :meth:`RunFolder.bind` waits for another command binding the same run (the
run-level lock is held for milliseconds; a stage lock is refused at once)."""


_held: dict[tuple[int, str], int] = {}
"""Folders each thread of this process holds locked (keyed by thread id and real path), with
their nesting depth: a writer may call another writer of the same folder in its own thread
(``export --finetune`` fine-tunes the agent it just wrote). Another thread is refused as
another process is (``flock`` locks of two open files conflict within one process too)."""


_F = TypeVar("_F", bound=Callable[..., Any])


@contextlib.contextmanager
def folder_lock(folder: str | Path, *, create: bool = True, wait_s: float = 0.0) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` while writing in it: one writer per folder.

    ``fcntl.flock`` on ``folder/.lock``, which holds the holder's ``pid@host``; the OS drops
    the lock when its holder dies, so a killed command leaves no stale lock. Another process
    gets :class:`RunFolderError` naming that pid and host (after waiting up to ``wait_s``).
    The lock file, and the folders the lock had to create while still empty, are removed on
    release, so a refused command leaves nothing behind. ``create=False``: a missing folder is
    not locked (the command fails on its own). Under torchrun (``train-teacher`` and
    ``train-supernet``; the command line refuses the others there) only rank 0 writes, and
    locks.
    """
    folder = Path(folder)
    if _torchrun_worker() or (not create and not folder.is_dir()):
        yield
        return
    key = (threading.get_ident(), os.path.realpath(folder))
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    fd, created = _lock(folder, create, wait_s)
    _held[key] = 1
    try:
        yield
    finally:
        del _held[key]
        # unlink while still holding: a waiter that opened this file sees it gone and retries;
        # only our own file (the folder may have been removed meanwhile and made again, and
        # the .lock there now be another holder's, which unlinking would hand to a third)
        with contextlib.suppress(OSError):
            ours, there = os.fstat(fd), os.lstat(folder / LOCK_FILE)
            if (ours.st_dev, ours.st_ino) == (there.st_dev, there.st_ino):
                os.unlink(folder / LOCK_FILE)
        os.close(fd)
        _remove_empty(created)


def writes(
    where: Callable[[Mapping[str, Any]], Path], *, create: bool = True
) -> Callable[[_F], _F]:
    """Decorate a command that writes the folder ``where(arguments)`` (its arguments by
    name, defaults applied): it holds :func:`folder_lock` on that folder while it runs."""

    def decorate(fn: _F) -> _F:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def locked(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            with folder_lock(where(bound.arguments), create=create):
                return fn(*args, **kwargs)

        return cast(_F, locked)

    return decorate


def _lock(folder: Path, create: bool, wait_s: float) -> tuple[int, list[Path]]:
    """Take the lock of ``folder``: its file descriptor and the folders made for it."""
    path = folder / LOCK_FILE
    deadline = time.monotonic() + wait_s
    made: list[Path] = []
    races = 0
    while True:
        if create:
            made = _make_dirs(folder) + made
        try:  # never through a symlink: a planted .lock would point the pid write elsewhere
            fd = _open_lock(path, folder)
        except OSError as exc:
            if exc.errno == errno.ENOENT and create and races < 100:
                races += 1  # a refused writer removed the empty folder it had made
                continue
            _remove_empty(made)
            if exc.errno == errno.ELOOP:
                raise _not_a_lock(path, "a symbolic link") from None
            raise _unwritable(folder, exc) from None
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode) and st.st_nlink == 0 and races < 100:
            os.close(fd)  # the holder unlinked it on release after our open: open the next one
            races += 1
            continue
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:  # a FIFO, device or hard link
            os.close(fd)
            _remove_empty(made)
            what = (
                "a hard link to another file" if stat.S_ISREG(st.st_mode) else "not a regular file"
            )
            raise _not_a_lock(path, what)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            busy = exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
            if busy and time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            _remove_empty(made)
            if exc.errno == errno.EBADF:  # read-only, where flock is emulated by fcntl (NFS)
                raise RunFolderError(
                    f"cannot lock {folder}: its {LOCK_FILE}, left by another user's command, "
                    "opens read-only here, and this file system locks only files open for "
                    "writing; remove it if no a2d-evo command is running there, then run this "
                    "again"
                ) from None
            if not busy:
                raise RunFolderError(f"cannot lock {folder}: {exc.strerror or exc}") from None
            raise RunFolderError(
                f"{folder} is being written by another a2d-evo command ({_holder(path)}); "
                "wait for it to end (or stop it), then run this again"
            ) from None
        try:  # the previous holder may have unlinked the file between our open and flock
            now, held = os.lstat(path), os.fstat(fd)
            same = (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)
        except FileNotFoundError:
            same = False
        if same:
            with contextlib.suppress(OSError):  # it only informs (a full disk, or a file
                os.ftruncate(fd, 0)  # another user's killed command left: opened read-only)
                os.write(fd, f"{os.getpid()}@{socket.gethostname()}\n".encode())
            return fd, made
        os.close(fd)
        races += 1
        if races > 100:
            _remove_empty(made)
            raise RunFolderError(f"cannot lock {folder}: its lock file keeps being replaced")


def _not_a_lock(path: Path, what: str) -> RunFolderError:
    return RunFolderError(
        f"{path} is {what}, not a lock file a2d-evo wrote: it is never followed or written "
        "through; remove it if the folder is yours, then run this again"
    )


def _open_lock(path: Path, folder: Path) -> int:
    """A descriptor of the lock file ``path`` to ``flock``, never through a symlink: read and
    write, created if missing; read-only where a ``.lock`` another user's killed command left
    cannot be opened for writing (``flock`` takes a read-only descriptor), in a folder this
    user may write, so a shared run is not blocked for good by it."""
    flags = os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | flags, 0o666)
    except PermissionError:
        if not os.access(folder, os.W_OK | os.X_OK):
            raise
        # non-blocking: a FIFO planted as .lock would wait here for a writer, for ever (the
        # caller refuses whatever is not a regular file once it is open)
        return os.open(path, os.O_RDONLY | os.O_NONBLOCK | flags)


def _holder(path: Path) -> str:
    """``pid N on host H`` (``pid N`` from files before the host was written) of the process
    holding the lock file ``path`` (it writes it just after taking the lock, so an empty file
    is read again for a moment)."""
    for _ in range(20):
        with contextlib.suppress(OSError, UnicodeDecodeError):
            pid, _, host = path.read_text(encoding="utf-8").strip().partition("@")
            if pid.isdigit():
                named = f"pid {pid} on host {host}" if host else f"pid {pid}"
                return named + _ended(int(pid), host)
        time.sleep(0.01)
    return "pid unknown"


def _ended(pid: int, host: str) -> str:
    """A note when ``pid`` ran on this machine and has ended: a holder that locked the file
    read-only (another user's leftover ``.lock``) could not write its own."""
    if host != socket.gethostname():  # another machine's, or a file that names none
        return ""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return ", recorded by a command that has ended: the holder could not record itself"
    except OSError:  # alive, another user's
        pass
    return ""


def _make_dirs(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents (:func:`~a2d_evo.runs.files.make_dirs`: each one
    fsynced in its parent, none left on failure); return the ones made here, deepest first."""
    try:
        return make_dirs(folder)[::-1]
    except OSError as exc:
        failed = Path(exc.filename) if exc.filename else folder
        raise _unwritable(failed.parent, exc, failed) from None


def _unwritable(folder: Path, exc: OSError, making: Path | None = None) -> RunFolderError:
    """The one-line error for a folder that cannot take a lock file or a new sub-folder."""
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return RunFolderError(f"{folder} is not writable ({exc.strerror})")
    if making is not None:
        return RunFolderError(f"cannot create folder {making}: {exc.strerror or exc}")
    return RunFolderError(f"cannot lock {folder}: {exc.strerror or exc}")


def _remove_empty(folders: Iterable[Path]) -> None:
    """Remove each of ``folders`` (deepest first) that is still empty."""
    for d in folders:
        with contextlib.suppress(OSError):
            os.rmdir(d)


def _torchrun_worker() -> bool:
    """True in a torchrun rank other than 0: those train, rank 0 alone writes the run."""
    try:
        world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    except ValueError:
        return False
    return world > 1 and rank != 0
