"""ALE games: ids, ROMs, action sets and seeds, shared by every Atari backend."""

from __future__ import annotations

import difflib
import functools
import os
from typing import Any

import numpy as np

from a2d_evo.errors import EnvError

V5_MAX_FRAMES = 108_000  # ALE/<Game>-v5's max_num_frames_per_episode


@functools.cache
def _rom_ids() -> dict[str, str]:
    from ale_py import roms
    from ale_py.registration import rom_id_to_name

    return {rom_id_to_name(r): r for r in roms.get_all_rom_ids()}


def rom_id(env_id: str) -> str:
    """``ALE/MsPacman-v5`` -> ``ms_pacman`` (EnvError for anything else)."""
    name, _, version = env_id.removeprefix("ALE/").rpartition("-")
    if not env_id.startswith("ALE/") or version != "v5" or not name:
        raise EnvError(f"unknown environment id {env_id!r}: Atari ids are ALE/<Game>-v5")
    roms = _rom_ids()
    rom = roms.get(name)
    if rom is None:
        by_lower = {n.lower(): n for n in roms}
        close = [by_lower[n] for n in difflib.get_close_matches(name.lower(), by_lower, n=3)]
        hint = f"; did you mean {', '.join(f'ALE/{n}-v5' for n in close)}?" if close else ""
        raise EnvError(f"unknown environment id {env_id!r}: no ALE ROM named {name!r}{hint}")
    return rom


@functools.cache
def num_actions(env_id: str) -> int:
    """Size of the game's minimal action set."""
    ale = new_ale(0.0, V5_MAX_FRAMES)
    ale.loadROM(rom_path(rom_id(env_id)))
    return len(ale.getMinimalActionSet())


def worker_cores() -> int:
    """Cores this process may run on (the worker count of ``env.workers: 0``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@functools.cache
def screen_dims(rom: str) -> tuple[int, int]:
    """(height, width) of the game's raw screen."""
    ale = new_ale(0.0, 0)
    ale.loadROM(rom_path(rom))
    h, w = ale.getScreenDims()
    return int(h), int(w)


def rom_path(rom: str) -> str:
    """Path of the ROM file that ale-py ships."""
    from ale_py import roms

    return str(roms.get_rom_path(rom))


def new_ale(sticky: float, max_frames: int) -> Any:
    """A quiet ALEInterface with the given sticky-action probability and frame cap."""
    import ale_py

    ale = ale_py.ALEInterface()
    ale.setLoggerMode(ale_py.LoggerMode.Error)
    ale.setFloat("repeat_action_probability", float(sticky))
    ale.setInt("max_num_frames_per_episode", int(max_frames))
    return ale


def derived_seeds(seed: int | None) -> tuple[int, int]:
    """(numpy seed, ALE seed) of an env seeded with ``seed``, as gymnasium's AtariEnv does it
    (``seed_game``): both words of ``SeedSequence(seed)``, the ALE one as a signed int32."""
    np_seed, ale_seed = np.random.SeedSequence(seed).generate_state(n_words=2)
    return int(np_seed), int(np.array(ale_seed).astype(np.int32))
