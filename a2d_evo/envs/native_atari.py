"""The ``native`` Atari backend: ALE in worker processes, one batched native preprocessing call.

Each worker process owns every W-th env (W workers) and writes the last two raw frames of each
into one shared-memory block; the parent then makes one batched native call
(``a2d_evo.ops.push_frames``) that max-pools, area-resizes and pushes them into the frame stack.
:func:`a2d_evo.envs.factory.make_atari_vec_env` builds it for ``env.backend: native``; this
module is the parent's side, :mod:`a2d_evo.envs.native_atari_worker` the workers'.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import subprocess
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from a2d_evo import ops
from a2d_evo.config import EnvConfig
from a2d_evo.envs.ale import V5_MAX_FRAMES, num_actions, rom_path, screen_dims, worker_cores
from a2d_evo.envs.native_atari_worker import Options, Shared, shared_size, shared_views
from a2d_evo.envs.vector import EpisodeStats, StepResult, check_actions, seed_list
from a2d_evo.envs.worker_process import start_worker
from a2d_evo.errors import EnvError

_REPLY_TIMEOUT_S = 120.0
_PER_ENV_S = 0.5
"""More wait per env a worker owns: each loads its ROM on its first seeded reset (0.1 s
measured), so a worker of 2,000 envs takes minutes to answer that reset, well and alive."""


class _Resources:
    """What :class:`NativeAtariVecEnv` must release, held apart so a finalizer can do it."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.fds: list[int] = []
        self.shm: Any = None
        self.unlinked = False

    def release(self) -> None:
        for fd in self.fds:
            try:
                os.write(fd, b"c")
            except OSError:
                pass
        for p in self.procs:
            try:
                p.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=2.0)
        for fd in self.fds:
            os.close(fd)
        self.procs, self.fds = [], []
        if self.shm is not None:
            try:
                self.shm.close()
            except BufferError:  # views still alive at interpreter exit: unlinking is enough
                pass
            if not self.unlinked:
                self.shm.unlink()
            self.shm = None

    def unlink_name(self) -> None:
        """Remove the segment's name once every worker has mapped it: the memory lives while
        a mapping does, and a process killed without running :meth:`release` (a SIGKILL to
        the whole process group, a Ray actor killed by ``ray.kill``) leaves nothing in
        /dev/shm (until 2026-12-06 it left the segment there for good)."""
        if self.shm is not None and not self.unlinked:
            self.shm.unlink()
            self.unlinked = True


@contextlib.contextmanager
def _one_kernel_thread() -> Iterator[None]:
    """Run the preprocessing kernel on one OpenMP thread. The workers idle while it runs, but
    OpenMP's idle threads then spin-wait for a while and steal the cores the workers need next:
    on 2 cores, 2 kernel threads cut the backend's throughput several times (BENCHMARKS.md)."""
    mod = ops.native_module()
    if mod is None or not hasattr(mod, "set_num_threads"):
        yield
        return
    before = mod.max_threads()
    mod.set_num_threads(1)
    try:
        yield
    finally:
        mod.set_num_threads(before)


class NativeAtariVecEnv:
    """ALE in ``cfg.workers`` processes (0 = one per core); raw frames travel in shared memory,
    commands are one-byte socket messages, and one batched native call preprocesses every
    env's frames into the frame stack.

    Worker k of W owns envs k, k + W, k + 2W, ...: when only some envs move
    (:meth:`step_active`, evaluation's finished slots), neighbouring envs (one candidate's
    episodes, which tend to end together) are spread over the workers, not left to one.
    """

    def __init__(
        self,
        cfg: EnvConfig,
        rom: str,
        num_envs: int,
        *,
        seed: int | None,
        life_loss: bool,
        limit: int | None,
    ) -> None:
        from multiprocessing import shared_memory

        self._ops = ops
        self.env_id = cfg.id
        self.num_envs = num_envs
        self.n_actions = num_actions(cfg.id)
        self.obs_shape = (cfg.stack, cfg.frame_size, cfg.frame_size)
        self.obs_dtype = np.dtype(np.uint8)
        h, w = screen_dims(rom)
        opt = Options(
            rom_path=rom_path(rom),
            sticky=cfg.sticky_actions,
            frame_skip=cfg.frame_skip,
            noop_max=cfg.noop_max,
            life_loss=life_loss,
            max_frames=V5_MAX_FRAMES if limit is None else 0,
            max_steps=limit or 0,
        )
        self._res = _Resources()
        self._finalizer = weakref.finalize(self, self._res.release)
        self._res.shm = shared_memory.SharedMemory(create=True, size=shared_size(num_envs, h, w))
        self._sh: Shared | None = shared_views(self._res.shm.buf, num_envs, h, w)
        self._sh.raw.fill(0)
        self._stack = np.zeros((num_envs, *self.obs_shape), np.uint8)
        self._stats = EpisodeStats(num_envs)
        self._pending_seed = seed
        n_workers = max(1, min(cfg.workers or worker_cores(), num_envs))
        self._timeout_s = _REPLY_TIMEOUT_S + _PER_ENV_S * -(-num_envs // n_workers)
        try:
            for k in range(n_workers):
                args: dict[str, Any] = {"n": num_envs, "h": h, "w": w}
                args.update(first=k, stride=n_workers, opt=opt._asdict())
                self._spawn(self._res.shm.name, json.dumps(args))
            self._gather()  # every worker has attached the segment when it replies
            self._res.unlink_name()
        except BaseException:
            self.close()
            raise

    def _spawn(self, shm_name: str, args: str) -> None:
        proc, parent = start_worker(
            "a2d_evo.envs.native_atari_worker:_worker_main", [shm_name, args]
        )
        # A reply not arriving within the timeout makes recv fail instead of hanging forever.
        timeout = struct.pack("ll", int(self._timeout_s), 0)
        parent.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeout)
        self._res.procs.append(proc)
        self._res.fds.append(parent.detach())

    def _call(self, cmd: bytes) -> None:
        if self._sh is None:
            raise EnvError(f"{self.env_id}: env is closed")
        try:
            for fd in self._res.fds:
                try:
                    os.write(fd, cmd)
                except OSError:
                    break  # _gather names the worker that died
            self._gather()
        except BaseException:
            # cut short (Ctrl-C caught by a caller, say): workers may still be writing the
            # shared frames, and their late replies would answer the next command
            self.close()
            raise

    def _gather(self) -> None:
        for k, fd in enumerate(self._res.fds):
            try:
                msg = os.read(fd, 1)
            except BlockingIOError:
                self.close()
                raise EnvError(
                    f"{self.env_id}: native Atari worker {k} did not answer within "
                    f"{int(self._timeout_s)} s"
                ) from None
            except OSError:
                msg = b""
            if msg == b"k":
                continue
            if msg == b"e":
                text = self._read_all(fd)
                self.close()
                raise EnvError(f"{self.env_id}: native Atari worker {k} failed:\n{text}")
            p = self._res.procs[k]
            try:
                code = p.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                code = None
            self.close()
            raise EnvError(f"{self.env_id}: native Atari worker {k} died (exit code {code})")

    @staticmethod
    def _read_all(fd: int) -> str:
        chunks = []
        try:
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
        except OSError:
            pass
        return b"".join(chunks).decode(errors="replace")

    def reset(self, seed: int | Sequence[int] | None = None) -> np.ndarray:
        if self._sh is None:
            raise EnvError(f"{self.env_id}: env is closed")
        if seed is None and self._pending_seed is not None:
            seed = self._pending_seed
        self._pending_seed = None
        self._sh.seeds[:] = -1 if seed is None else seed_list(seed, self.num_envs)
        self._sh.active[:] = True
        self._call(b"r")
        with _one_kernel_thread():
            self._ops.push_frames(self._sh.raw, self._stack, np.ones(self.num_envs, bool))
        self._stats.clear()
        return self._stack.copy()

    def step(self, actions: np.ndarray) -> StepResult:
        return self.step_active(actions, None)

    def step_active(self, actions: np.ndarray, active: np.ndarray | None) -> StepResult:
        """:meth:`step` for the envs where ``active`` is true only (None: all of them).

        The others do not move (no emulation, no preprocessing): their rows hold zero
        observations and rewards, no episode end, and their frame stacks and running episode
        statistics stay as they were. Evaluation uses this to stop stepping finished slots.
        """
        if self._sh is None:
            raise EnvError(f"{self.env_id}: env is closed")
        sh, n = self._sh, self.num_envs
        sh.actions[:] = check_actions(actions, n, self.n_actions)
        moved = None if active is None else np.asarray(active, dtype=bool).reshape(n)
        sh.active[:] = True if moved is None else moved
        self._call(b"s")
        reward = sh.reward.copy()
        terminated, truncated, reset = sh.flags.copy()
        rows = np.flatnonzero(reset)
        with _one_kernel_thread():
            if rows.size:  # the ended episodes' stacks with their last frame pushed
                final_rows = np.empty((rows.size, *self.obs_shape), np.uint8)
                final_rows[:, :-1] = self._stack[rows, 1:]
                final_rows[:, -1] = self._ops.preprocess_frames(
                    np.ascontiguousarray(sh.final[rows]), size=self.obs_shape[-1]
                )
            if moved is None or moved.all():
                self._ops.push_frames(sh.raw, self._stack, reset)
                obs = self._stack.copy()
            else:
                sub = np.flatnonzero(moved)
                stack = self._stack[sub]
                self._ops.push_frames(np.ascontiguousarray(sh.raw[sub]), stack, reset[sub])
                self._stack[sub] = stack
                obs = np.zeros_like(self._stack)
                obs[sub] = stack
        final_obs = obs.copy()
        if rows.size:
            final_obs[rows] = final_rows
        episode_return, episode_length = self._stats.update(reward, reset, moved)
        return StepResult(
            obs, reward, terminated, truncated, final_obs, episode_return, episode_length
        )

    def close(self) -> None:
        self._sh = None
        self._finalizer()

    def __enter__(self) -> NativeAtariVecEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
