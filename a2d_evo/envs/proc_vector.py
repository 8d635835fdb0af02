"""The ``procs`` backend: gymnasium envs (classic control, Box2D, MinAtar ...) stepped in
worker processes.

Worker ``k`` of ``W`` holds every W-th env (``k, k + W, ...``: episodes that end early are
spread over the workers, not left to one) as a :class:`~a2d_evo.envs.vector.SyncVecEnv`, so
every step is that backend's, same-step autoreset and episode statistics included, and the
results are the same bit for bit (a test holds it) for envs whose randomness comes from their
own seeded ``np_random``, as gymnasium's does (one drawing from the global ``random`` or
``np.random`` would draw differently split over processes); only the stepping runs on ``W``
cores. It
pays where a vector's step costs more than its round trip through the workers (about half a
millisecond of Python on either side): LunarLander's Box2D from about 32 envs on
(``benchmarks/bench_classic_envs.py``; :data:`~a2d_evo.envs.factory.PROCS_MIN_ENVS`).

Workers are fresh Python processes (:func:`~a2d_evo.envs.worker_process.start_worker`: never
a fork of a process running torch's threads, never the caller's ``__main__`` again) and build
their envs from the config alone: an env must be registered by gymnasium or by ``env.imports``
(run again in each worker, from installed packages or PYTHONPATH), not by the calling script.
Ctrl-C reaches the parent only, and a worker ends when the parent's end of its socket closes.
"""

from __future__ import annotations

import contextlib
import pickle
import subprocess
import weakref
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from a2d_evo.config import EnvConfig
from a2d_evo.envs.imports import prepare_env
from a2d_evo.envs.vector import (
    StepResult,
    SyncVecEnv,
    check_actions,
    classic_sync_env,
    seed_list,
)
from a2d_evo.envs.worker_process import portable_error, start_worker
from a2d_evo.errors import EnvError

__all__ = ["ProcVecEnv"]

_POLL_S = 1.0
"""How often a parent waiting on a worker checks that it is still alive."""
_REPLY_TIMEOUT_S = 120.0
"""A worker that has not answered a command by then counts as hung (one step of a batch of
gymnasium envs takes milliseconds; building them, importing gymnasium, about a second)."""


def _pack(arrays: Sequence[np.ndarray]) -> bytes:
    """A reply's arrays as one message: their bytes, back to back (the parent knows their
    dtypes and shapes). A pickle of a :class:`StepResult` cost about 100 microseconds a step."""
    return b"k" + b"".join(np.ascontiguousarray(x).tobytes() for x in arrays)


def _worker_main(argv: Sequence[str]) -> None:
    """A worker: receive ``(cfg, rows, limit)``, build the envs of ``rows`` (their indices in
    the whole vector), then answer byte commands until ``c`` (close) or until the parent's end
    of the socket closes: ``S`` + actions (int64) steps every env, ``s`` + actions + mask
    (bool) the masked ones, ``r`` + seeds (int64) and ``R`` (no seeds) reset. Replies: ``k`` +
    the arrays, or ``e`` + a pickled exception."""
    conn = Connection(int(argv[0]))
    vec: SyncVecEnv | None = None
    try:
        cfg, rows, limit = conn.recv()
        n = len(rows)
        try:  # any error building the envs (an OSError of the env's own too) goes to the parent
            prepare_env(cfg)
            vec = classic_sync_env(cfg, n, seed=None, limit=limit, indices=rows)
        except Exception as exc:  # the startup reply is a pickle
            conn.send(("error", portable_error(exc, EnvError)))
            return
        conn.send(("ok", (vec.obs_shape, vec.obs_dtype.str, vec.n_actions)))
        while True:
            msg = conn.recv_bytes()
            cmd, body = msg[:1], msg[1:]
            if cmd == b"c":
                return
            try:
                if cmd in (b"r", b"R"):
                    seeds = np.frombuffer(body, np.int64).tolist() if cmd == b"r" else None
                    reply = _pack([vec.reset(seeds)])
                else:
                    actions = np.frombuffer(body[: 8 * n], np.int64)
                    active = np.frombuffer(body[8 * n :], bool) if cmd == b"s" else None
                    reply = _pack(vec.step_active(actions, active))
            except Exception as exc:
                reply = b"e" + pickle.dumps(portable_error(exc, EnvError))
            conn.send_bytes(reply)
    except (EOFError, OSError):  # the socket: the parent is gone, nobody to answer
        return
    finally:
        if vec is not None:
            vec.close()
        conn.close()


class _Workers:
    """The processes and sockets of a :class:`ProcVecEnv`, held apart so that a finalizer can
    stop them (a vector env dropped without ``close``)."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.conns: list[Connection] = []

    def stop(self) -> None:
        """Ask every worker to stop, then make sure: one still running after a few seconds is
        killed."""
        for conn in self.conns:
            with contextlib.suppress(OSError, ValueError):  # already gone
                conn.send_bytes(b"c")
        for proc in self.procs:
            try:
                proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5.0)
        for conn in self.conns:
            conn.close()
        self.procs, self.conns = [], []


class ProcVecEnv:
    """``num_envs`` gymnasium envs of ``cfg`` in ``workers`` processes (module docstring);
    the :class:`~a2d_evo.envs.vector.SyncVecEnv` contract, ``step_active`` included."""

    def __init__(
        self,
        cfg: EnvConfig,
        num_envs: int,
        *,
        seed: int | None,
        limit: int | None,
        workers: int,
    ) -> None:
        if not 1 <= workers <= num_envs:
            raise EnvError(f"{cfg.id}: workers must be in [1, {num_envs}], got {workers}")
        self.env_id = cfg.id
        self.num_envs = num_envs
        self._rows = [list(range(k, num_envs, workers)) for k in range(workers)]
        self._w = _Workers()
        self._closed = False
        self._finalizer = weakref.finalize(self, self._w.stop)
        try:
            for rows in self._rows:
                proc, sock = start_worker("a2d_evo.envs.proc_vector:_worker_main", [])
                self._w.procs.append(proc)
                self._w.conns.append(Connection(sock.detach()))
                self._w.conns[-1].send((cfg, rows, limit))
            specs = self._gather(raw=False)
        except BaseException:
            self.close()
            raise
        shape, dtype, n_actions = specs[0]
        self.obs_shape: tuple[int, ...] = tuple(shape)
        self.obs_dtype = np.dtype(dtype)
        self.n_actions = int(n_actions)
        self._pending_seed = seed
        obs = (self.obs_dtype, self.obs_shape)
        # the arrays of a StepResult, in its order: dtype and shape of one env's row
        self._fields: list[tuple[np.dtype, tuple[int, ...]]] = [
            obs, (np.dtype(np.float32), ()), (np.dtype(bool), ()), (np.dtype(bool), ()),
            obs, (np.dtype(np.float64), ()), (np.dtype(np.int64), ()),
        ]  # fmt: skip
        self._layout: list[list[tuple[int, int]]] = []  # per worker, per field: offset, count
        for rows in self._rows:
            at, layout = 0, []
            for dtype, shape in self._fields:
                count = len(rows) * int(np.prod(shape, dtype=np.int64))
                layout.append((at, count))
                at += count * dtype.itemsize
            self._layout.append(layout)

    def _gather(self, raw: bool = True) -> list[Any]:
        """Every worker's answer, in order (``raw``: the bytes of a ``k`` reply; else the
        pickled startup reply); a worker's error is raised (the first one, once all have
        answered), and a worker that died or hangs is an :class:`EnvError` naming its envs
        (the vector env is closed then: its state is lost)."""
        try:
            out, error = self._replies(raw)
        except BaseException:
            # cut short (Ctrl-C caught by a caller, say): the unread replies would answer the
            # next command, one behind; closed, the next one says so
            self.close()
            raise
        if error is not None:  # every reply read: the env goes on
            raise error
        return out

    def _replies(self, raw: bool) -> tuple[list[Any], BaseException | None]:
        """Every worker's reply and the first error among them (see :meth:`_gather`)."""
        out: list[Any] = []
        error: BaseException | None = None
        for k, (proc, conn) in enumerate(zip(self._w.procs, self._w.conns, strict=True)):
            value: Any
            waited = 0.0
            while not conn.poll(_POLL_S):
                waited += _POLL_S
                if proc.poll() is not None or waited >= _REPLY_TIMEOUT_S:
                    break
            try:
                if not conn.poll(0):
                    raise EOFError
                if raw:
                    msg = conn.recv_bytes()
                    ok = msg[:1] == b"k"
                    value = msg[1:] if ok else pickle.loads(msg[1:])
                else:
                    status, value = conn.recv()
                    ok = status == "ok"
            except (EOFError, OSError):
                try:  # its socket closed as it exits: the exit code comes a moment later
                    code: int | None = proc.wait(timeout=_POLL_S)
                except subprocess.TimeoutExpired:
                    code = None
                self.close()
                what = (
                    f"died (exit code {code})"
                    if code is not None
                    else f"did not answer within {_REPLY_TIMEOUT_S:.0f} s"
                )
                raise EnvError(
                    f"{self.env_id}: env worker {k} (envs {self._listed(k)}) {what}; its envs "
                    "are lost: run the command again"
                ) from None
            if not ok and error is None:
                error = value
            out.append(value)
        return out, error

    def _listed(self, k: int) -> str:
        rows = self._rows[k]
        return ", ".join(map(str, rows[:3])) + (", ..." if len(rows) > 3 else "")

    def _send(self, messages: Sequence[bytes]) -> list[bytes]:
        if self._closed:
            raise EnvError(f"{self.env_id}: env is closed")
        try:
            for conn, msg in zip(self._w.conns, messages, strict=True):
                with contextlib.suppress(OSError):  # _gather names the worker that died
                    conn.send_bytes(msg)
        except BaseException:
            self.close()  # cut short: see _gather
            raise
        return self._gather()

    def _whole(self, parts: Sequence[bytes], fields: int) -> list[np.ndarray]:
        """The first ``fields`` arrays of every worker's reply (:func:`_pack`), put back in
        env order (worker ``k`` holds rows ``k::W``)."""
        w = len(self._rows)
        whole = [np.empty((self.num_envs, *shape), dtype) for dtype, shape in self._fields[:fields]]
        for k, part in enumerate(parts):
            layout = self._layout[k][:fields]
            size = layout[-1][0] + layout[-1][1] * whole[-1].dtype.itemsize
            if len(part) != size:
                raise EnvError(f"{self.env_id}: worker {k} replied {len(part)} bytes, not {size}")
            for out, (at, count) in zip(whole, layout, strict=True):
                out[k::w] = np.frombuffer(part, out.dtype, count, at).reshape(-1, *out.shape[1:])
        return whole

    def reset(self, seed: int | Sequence[int] | None = None) -> np.ndarray:
        if seed is None and self._pending_seed is not None:
            seed = self._pending_seed
        self._pending_seed = None
        if seed is None:
            messages = [b"R"] * len(self._rows)
        else:
            seeds = np.asarray(seed_list(seed, self.num_envs), np.int64)
            messages = [
                b"r" + seeds[k :: len(self._rows)].tobytes() for k in range(len(self._rows))
            ]
        return self._whole(self._send(messages), 1)[0]

    def step(self, actions: np.ndarray) -> StepResult:
        return self.step_active(actions, None)

    def step_active(self, actions: np.ndarray, active: np.ndarray | None) -> StepResult:
        """:meth:`SyncVecEnv.step_active`, each env stepped by its worker."""
        a = check_actions(actions, self.num_envs, self.n_actions)
        w = len(self._rows)
        if active is None:
            messages = [b"S" + a[k::w].tobytes() for k in range(w)]
        else:
            on = np.asarray(active, dtype=bool).reshape(self.num_envs)
            messages = [b"s" + a[k::w].tobytes() + on[k::w].tobytes() for k in range(w)]
        return StepResult(*self._whole(self._send(messages), len(self._fields)))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._finalizer()

    def __enter__(self) -> ProcVecEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
