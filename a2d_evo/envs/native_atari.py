"""The ``native`` Atari backend: ALE in worker processes, one batched native preprocessing call.

Each worker process owns every W-th env (W workers) and writes the last two raw frames of each
into one shared-memory block; the parent then makes one batched native call
(``a2d_evo.ops.push_frames``) that max-pools, area-resizes and pushes them into the frame stack.
:func:`a2d_evo.envs.factory.make_atari_vec_env` builds it for ``env.backend: native``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import subprocess
import traceback
import weakref
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np

from a2d_evo import ops
from a2d_evo.config import EnvConfig
from a2d_evo.envs.ale import (
    V5_MAX_FRAMES,
    derived_seeds,
    new_ale,
    num_actions,
    rom_path,
    screen_dims,
    worker_cores,
)
from a2d_evo.envs.vector import EpisodeStats, StepResult, check_actions, seed_list
from a2d_evo.envs.worker_process import start_worker
from a2d_evo.errors import EnvError

_REPLY_TIMEOUT_S = 120.0
_PER_ENV_S = 0.5
"""More wait per env a worker owns: each loads its ROM on its first seeded reset (0.1 s
measured), so a worker of 2,000 envs takes minutes to answer that reset, well and alive."""


class _Shared(NamedTuple):
    """Views of the one shared-memory block of the native backend."""

    raw: np.ndarray  # uint8 (N, 2, H, W): the frame pair of each env's newest observation
    final: np.ndarray  # uint8 (N, 2, H, W): the frame pair of the last obs of an ended episode
    actions: np.ndarray  # int64 (N,)
    seeds: np.ndarray  # int64 (N,), -1 = keep the env's RNG state
    reward: np.ndarray  # float32 (N,)
    flags: np.ndarray  # bool (3, N): terminated, truncated, reset (the game ended, a new one began)
    active: np.ndarray  # bool (N,): the envs the next step moves (the others stay as they are)


def _shared_specs(n: int, h: int, w: int) -> list[tuple[tuple[int, ...], Any]]:
    return [
        ((n, 2, h, w), np.uint8),
        ((n, 2, h, w), np.uint8),
        ((n,), np.int64),
        ((n,), np.int64),
        ((n,), np.float32),
        ((3, n), np.bool_),
        ((n,), np.bool_),
    ]


def _aligned(nbytes: int) -> int:
    return (nbytes + 63) // 64 * 64


def _shared_views(buf: Any, n: int, h: int, w: int) -> _Shared:
    views, offset = [], 0
    for shape, dtype in _shared_specs(n, h, w):
        views.append(np.ndarray(shape, dtype, buffer=buf, offset=offset))
        offset += _aligned(int(np.prod(shape)) * np.dtype(dtype).itemsize)
    return _Shared(*views)


def _shared_size(n: int, h: int, w: int) -> int:
    return sum(
        _aligned(int(np.prod(shape)) * np.dtype(dtype).itemsize)
        for shape, dtype in _shared_specs(n, h, w)
    )


class _Options(NamedTuple):
    rom_path: str
    sticky: float
    frame_skip: int
    noop_max: int
    life_loss: bool
    max_frames: int  # ALE's frame limit (0 = none)
    max_steps: int  # our agent-step limit (0 = none)


class _Game:
    """One env inside a worker: the reference pipeline's emulation side, writing raw frames."""

    def __init__(self, i: int, sh: _Shared, opt: _Options) -> None:
        self.i, self.sh, self.opt = i, sh, opt
        self.ale = new_ale(opt.sticky, opt.max_frames)
        self.rng: np.random.Generator | None = None
        self.actions: list[Any] = []
        self.b0, self.b1 = sh.raw[i, 0], sh.raw[i, 1]
        self.f0, self.f1 = sh.final[i, 0], sh.final[i, 1]
        self.scratch = np.empty_like(self.b0)
        self.lives = 0
        self.steps = 0
        self.has_rom = False

    def seed(self, seed: int | None, loaded: dict[int, Any] | None = None) -> None:
        """Mirrors AtariEnv.seed_game + load_game: same seed -> the same game as the reference.

        ``loaded`` maps ALE seeds to the emulator state right after ``loadROM`` with that seed
        (RNG included): an env that has loaded the ROM once restores that state instead of
        loading it again (0.1 ms instead of about 100 ms; with common random numbers most envs
        of a reset share a few seeds). The game is the same either way (tested).
        """
        np_seed, ale_seed = derived_seeds(seed)
        self.rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(np_seed)))
        state = None if loaded is None or seed is None else loaded.get(ale_seed)
        if state is not None and self.has_rom:
            self.ale.restoreState(state)
        else:
            self.ale.setInt("random_seed", ale_seed)
            self.ale.loadROM(self.opt.rom_path)
            self.has_rom = True
            if loaded is not None and seed is not None:
                loaded[ale_seed] = self.ale.cloneState(include_rng=True)
        self.actions = list(self.ale.getMinimalActionSet())

    def reset(self) -> None:
        # Mirrors AtariPreprocessing.reset: reset_game, 1..noop_max no-ops from the env's RNG.
        if self.rng is None:
            self.seed(None)
        ale, rng = self.ale, self.rng
        assert rng is not None
        ale.reset_game()
        noops = int(rng.integers(1, self.opt.noop_max + 1)) if self.opt.noop_max > 0 else 0
        noop = self.actions[0]
        for _ in range(noops):
            ale.act(noop, 1.0)
            if ale.game_over():
                ale.reset_game()
        self.lives = ale.lives()
        self.steps = 0
        ale.getScreenGrayscale(self.b0)
        self.b1.fill(0)

    def step(self) -> None:
        # Mirrors AtariPreprocessing.step, including where it breaks off the frame skip: on an
        # early end its buffers keep the previous step's frames, so does ``final`` here.
        i, sh, ale = self.i, self.sh, self.ale
        action = self.actions[int(sh.actions[i])]
        fs = self.opt.frame_skip
        reward = 0
        broke = -1
        terminated = truncated = False
        for t in range(fs):
            reward += ale.act(action, 1.0)
            if ale.game_over():
                terminated = ale.game_over(with_truncation=False)
                truncated = ale.game_truncated()
                broke = t
                break
            if t == fs - 2:
                ale.getScreenGrayscale(self.scratch)
            elif t == fs - 1:
                ale.getScreenGrayscale(self.b0)
        if broke < 0 and fs >= 2:
            np.copyto(self.b1, self.scratch)
        self.steps += 1
        if self.opt.max_steps and self.steps >= self.opt.max_steps:
            truncated = True
        life_lost = False
        if self.opt.life_loss:
            lives = ale.lives()
            life_lost = lives < self.lives
            self.lives = lives
        ended = terminated or truncated
        if ended:
            np.copyto(self.f0, self.b0)
            if broke == fs - 1 and fs >= 2:
                np.maximum(self.b1, self.scratch, out=self.f1)
            else:
                np.copyto(self.f1, self.b1)
            self.reset()
        sh.reward[i] = reward
        sh.flags[0, i] = terminated or life_lost
        sh.flags[1, i] = truncated
        sh.flags[2, i] = ended


def _attach(name: str) -> Any:
    """Attach to the parent's block without registering it with the resource tracker (the
    parent owns and unlinks it)."""
    from multiprocessing import resource_tracker, shared_memory

    try:
        return shared_memory.SharedMemory(name=name, track=False)  # type: ignore[call-arg]
    except TypeError:  # Python < 3.13
        register = resource_tracker.register
        resource_tracker.register = lambda *a, **k: None
        try:
            return shared_memory.SharedMemory(name=name)
        finally:
            resource_tracker.register = register


def _worker_main(argv: Sequence[str]) -> None:
    """Worker process (:func:`~a2d_evo.envs.worker_process.start_worker`): owns envs first,
    first + stride, ...; one-byte commands s(tep), r(eset), c(lose) on its socket, one-byte
    replies k(done) or e + traceback. It exits when the parent's end closes."""
    fd, shm_name, args = int(argv[0]), argv[1], json.loads(argv[2])
    shm = _attach(shm_name)
    try:
        sh = _shared_views(shm.buf, args["n"], args["h"], args["w"])
        envs = range(args["first"], args["n"], args["stride"])
        _serve(fd, sh, envs, _Options(**args["opt"]))
        del sh  # every view of the block must be gone before it closes
    finally:
        try:
            shm.close()
        except BufferError:
            pass
        os.close(fd)


def _serve(fd: int, sh: _Shared, envs: range, opt: _Options) -> None:
    try:
        games = [_Game(i, sh, opt) for i in envs]
        os.write(fd, b"k")
        while True:
            cmd = os.read(fd, 1)
            if cmd == b"s":
                for g in games:
                    if sh.active[g.i]:
                        g.step()
                    else:
                        sh.reward[g.i] = 0.0
                        sh.flags[:, g.i] = False
            elif cmd == b"r":
                loaded: dict[int, Any] = {}  # this reset's seeds only: bounded
                for g in games:
                    seed = int(sh.seeds[g.i])
                    if seed >= 0:
                        g.seed(seed, loaded)
                    g.reset()
            else:  # b"c" or b"" (the parent is gone)
                return
            os.write(fd, b"k")
    except (BrokenPipeError, ConnectionResetError, KeyboardInterrupt):
        pass
    except BaseException:
        try:
            os.write(fd, b"e" + traceback.format_exc().encode())
        except OSError:
            pass


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
        opt = _Options(
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
        self._res.shm = shared_memory.SharedMemory(create=True, size=_shared_size(num_envs, h, w))
        self._sh: _Shared | None = _shared_views(self._res.shm.buf, num_envs, h, w)
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
        proc, parent = start_worker("a2d_evo.envs.native_atari:_worker_main", [shm_name, args])
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
