"""Starting a worker process (the ``procs`` and ``native`` env backends, side-by-side
fine-tunes): ``python -c`` in the package's parent folder, never the user's, in a session of its
own, talking to its parent over one socket."""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence

__all__ = ["portable_error", "start_worker"]


def portable_error(exc: BaseException, wrap: Callable[[str], BaseException]) -> BaseException:
    """``exc`` if it survives a pickle round trip (the package's errors do), else ``wrap``
    of its type and message: what a worker sends back to its parent."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return wrap(f"{type(exc).__name__}: {exc}")


def start_worker(entry: str, args: Sequence[str]) -> tuple[subprocess.Popen[bytes], socket.socket]:
    """Run ``entry`` (``module:function``, called with ``[fd, *args]``: the worker's end of the
    socket first) in a new Python process; the process and the parent's end of the socket.

    ``python -c``, so the parent's ``__main__`` is never re-imported (a user's script without
    a main guard would run again). Nothing from the folder the user stands in (a received run
    folder, say) may be imported: ``python -c`` puts the current folder first on sys.path and
    an empty PYTHONPATH entry means it too, so the worker runs in the package's parent folder,
    with the empty entries dropped (the others made absolute: a relative entry means what it
    means to the caller), and removes its own '' entry before importing; the package's parent
    folder goes last on sys.path (after the standard library: on an installed package it is
    site-packages, where a backport named like a stdlib module may sit). The package itself is
    loaded from the parent's own folder by its path, whatever comes first on sys.path: a parent
    run from a checkout beside an installed copy (another version) started workers that
    imported the installed one. A session
    of its own: a terminal's Ctrl-C (or torchrun's killpg) goes to the parent, which may
    checkpoint first, and not to the workers it still steps; they exit when the parent's end
    of their socket closes.
    """
    module, function = entry.split(":")
    parent, child = socket.socketpair()
    env = dict(os.environ)
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # .../a2d_evo
    root = os.path.dirname(package)
    init = os.path.join(package, "__init__.py")
    parts = [os.path.abspath(p) for p in (env.pop("PYTHONPATH", "") or "").split(os.pathsep) if p]
    if parts:
        env["PYTHONPATH"] = os.pathsep.join(parts)
    code = (
        "import sys; sys.path[:1] = [] if sys.path[:1] == [''] else sys.path[:1]; "
        f"sys.path.append({root!r}); import importlib.util as u; "
        f"s = u.spec_from_file_location('a2d_evo', {init!r}, "
        f"submodule_search_locations=[{package!r}]); "
        "m = u.module_from_spec(s); sys.modules['a2d_evo'] = m; s.loader.exec_module(m); "
        f"from {module} import {function}; {function}(sys.argv[1:])"
    )
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, str(child.fileno()), *args],
            pass_fds=(child.fileno(),),
            env=env,
            cwd=root,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    except BaseException:
        parent.close()
        raise
    finally:
        child.close()
    return proc, parent
