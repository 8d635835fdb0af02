"""The worker-process side of the ``native`` Atari backend: the shared-memory block's layout,
the games a worker emulates, and its command loop.

:class:`~a2d_evo.envs.native_atari.NativeAtariVecEnv` (the parent) creates the block and
starts each worker with ``_worker_main`` (through
:func:`~a2d_evo.envs.worker_process.start_worker`); a worker steps every W-th env as the
reference pipeline would and writes their last two raw frames into the block, which the parent
preprocesses in one batched native call.
"""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from a2d_evo.envs.ale import derived_seeds, new_ale


class Shared(NamedTuple):
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


def shared_views(buf: Any, n: int, h: int, w: int) -> Shared:
    """The block ``buf`` of ``n`` envs' ``h`` x ``w`` frames, as :class:`Shared` views."""
    views, offset = [], 0
    for shape, dtype in _shared_specs(n, h, w):
        views.append(np.ndarray(shape, dtype, buffer=buf, offset=offset))
        offset += _aligned(int(np.prod(shape)) * np.dtype(dtype).itemsize)
    return Shared(*views)


def shared_size(n: int, h: int, w: int) -> int:
    """The bytes of the block for ``n`` envs' ``h`` x ``w`` frames (each view 64-byte aligned)."""
    return sum(
        _aligned(int(np.prod(shape)) * np.dtype(dtype).itemsize)
        for shape, dtype in _shared_specs(n, h, w)
    )


class Options(NamedTuple):
    """How a worker plays its games: what it needs of the env config (sent as JSON)."""

    rom_path: str
    sticky: float
    frame_skip: int
    noop_max: int
    life_loss: bool
    max_frames: int  # ALE's frame limit (0 = none)
    max_steps: int  # our agent-step limit (0 = none)


class _Game:
    """One env inside a worker: the reference pipeline's emulation side, writing raw frames."""

    def __init__(self, i: int, sh: Shared, opt: Options) -> None:
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
        sh = shared_views(shm.buf, args["n"], args["h"], args["w"])
        envs = range(args["first"], args["n"], args["stride"])
        _serve(fd, sh, envs, Options(**args["opt"]))
        del sh  # every view of the block must be gone before it closes
    finally:
        try:
            shm.close()
        except BufferError:
            pass
        os.close(fd)


def _serve(fd: int, sh: Shared, envs: range, opt: Options) -> None:
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
