"""Third-party envs inside the trust boundary: which imports run, and env id checks.

gymnasium's ``make("module:EnvId")`` imports ``module``, so an env id read from a shared
agent folder could run code of its author's choosing. Here env ids never take that form
(:func:`a2d_evo.config.check_env_id` refuses ``:``); a module that registers envs is named
in ``env.imports`` (``module`` or ``module:function``, the function called with no
arguments once imported) and is imported by :func:`prepare_env` before the env is built.

Who may name an import: the user, in their own ``--config`` or with ``--env-import`` on the
command line. An import recorded in a run folder's ``config.yaml`` or an agent folder's
``arch.json`` is honoured only when it is on :data:`ALLOWED_IMPORTS`; any other must be given
again with ``--env-import`` (:func:`check_recorded_imports`, called where such a file is
read, says which). gymnasium's built-in envs and ALE ids need no import.
"""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Iterable, Sequence

from a2d_evo.config import ALLOWED_IMPORTS, MINATAR_IMPORT, EnvConfig, is_atari, split_import
from a2d_evo.config.env import MINATAR_PREFIX
from a2d_evo.envs.ale import rom_id
from a2d_evo.errors import EnvError

__all__ = [
    "ALLOWED_IMPORTS",
    "check_env_registered",
    "check_recorded_imports",
    "prepare_env",
    "run_imports",
]


REFUSED_IDS: frozenset[str] = frozenset({"GymV21Environment-v0", "GymV26Environment-v0"})
"""gymnasium's wrappers of the old ``gym`` package: their ``make`` takes an env id from
``env.kwargs`` and imports the module named in it, the hole this module closes."""

_done: set[str] = set()
"""Imports already run in this process: a registration function called twice would
re-register its envs (gymnasium warns on every one)."""


def run_imports(specs: Iterable[str]) -> None:
    """Import each ``module`` (and call ``module:function``), once per process.

    Only for imports the user chose or :data:`ALLOWED_IMPORTS` holds; a failure is an
    :class:`EnvError` naming the module.
    """
    for spec in specs:
        if spec in _done:
            continue
        module_name, function = split_import(spec)
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # any error of foreign code is the user's env setup
            raise EnvError(
                f"env.imports: cannot import {module_name!r} ({type(exc).__name__}: "
                f"{_first_line(exc)}); install it, or put its folder on PYTHONPATH, or fix "
                "env.imports / --env-import"
            ) from None
        if function is not None:
            fn = getattr(module, function, None)
            if not callable(fn):
                raise EnvError(
                    f"env.imports: {module_name!r} has no function {function!r} (from {spec!r})"
                )
            try:
                fn()
            except Exception as exc:
                raise EnvError(
                    f"env.imports: {spec}() failed: {type(exc).__name__}: {_first_line(exc)}"
                ) from None
        _done.add(spec)


def check_recorded_imports(specs: Iterable[str], granted: Iterable[str], where: str) -> None:
    """Refuse an import recorded in a file (``where``) that is neither on
    :data:`ALLOWED_IMPORTS` nor given again by the user (``granted``: ``--env-import``)."""
    ok = ALLOWED_IMPORTS | set(granted)
    missing = [spec for spec in dict.fromkeys(specs) if spec not in ok]  # every one, in order
    if missing:
        which = ", ".join(map(repr, missing))
        flags = " ".join(f"--env-import {spec}" for spec in missing)
        raise EnvError(
            f"{where} records env.imports {which}, not on a2d-evo's allow-list: a recorded "
            "import runs only when you name it again on the command line; if you trust "
            f"{'them' if len(missing) > 1 else 'it'}, pass {flags}"
        )


def check_env_registered(env_id: str, imports: Sequence[str] = ()) -> None:
    """:class:`EnvError` naming close matches unless gymnasium knows ``env_id`` (run the
    env's ``imports`` first: a message for an id they did not register names them) or it is
    an ALE id with a ROM."""
    if is_atari(env_id):
        rom_id(env_id)
        return
    if env_id in REFUSED_IDS:
        raise EnvError(
            f"env.id {env_id!r} wraps an env of the old gym package, which imports modules "
            "named in env.kwargs; not supported: register the env and name its module in "
            "env.imports"
        )
    import gymnasium as gym  # here: the config layer and --help stay free of gymnasium

    known = [k for k in gym.registry if k not in REFUSED_IDS]
    if env_id in known and not str(gym.registry[env_id].entry_point).startswith("ale_py"):
        return
    game = _legacy_atari_game(env_id)
    if env_id in known:
        if game is None:
            return
        # registered by ale-py's import: raw frames, none of our pipeline
        raise EnvError(
            f"env.id {env_id!r} is one of ale-py's older Atari ids; a2d-evo's Atari pipeline "
            f"takes ALE/<Game>-v5 ids (frame skip, sticky actions and no-ops are env.* "
            f"settings): did you mean 'ALE/{game}-v5'?"
        )
    close = difflib.get_close_matches(env_id, known, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    if game is not None:
        hint = f"; Atari ids are ALE/<Game>-v5: did you mean 'ALE/{game}-v5'?"
    if env_id.startswith(MINATAR_PREFIX) and not any(k.startswith(MINATAR_PREFIX) for k in known):
        hint = (
            f"; MinAtar ids are registered by env.imports: [{MINATAR_IMPORT}] (on a2d-evo's "
            "allow-list; configs/minatar_*.yaml set it)"
        )
    where = "(an env of another package needs its module in env.imports or --env-import)"
    if imports:  # the user named the module already: it ran and registered no such id
        plain = [s for s in imports if ":" not in s]
        where = (
            f"(env.imports {', '.join(map(repr, imports))} ran and registered no {env_id!r}"
            + (
                "; a module that registers its envs in a function needs it named: module:function"
                if plain
                else ""
            )
            + ")"
        )
    raise EnvError(
        f"unknown environment id {env_id!r}: not registered with gymnasium{hint} {where}"
    )


def _legacy_atari_game(env_id: str) -> str | None:
    """The game of a gym-style Atari id (``Pong-v5``, ``BreakoutNoFrameskip-v4``,
    ``Pong-ramDeterministic-v4``) when ale-py ships its ROM, else None."""
    match = re.fullmatch(r"([A-Za-z]+?)(?:-ram)?(?:NoFrameskip|Deterministic)?-v[045]", env_id)
    if match is None:
        return None
    try:
        rom_id(f"ALE/{match.group(1)}-v5")
    except EnvError:
        return None
    return match.group(1)


def prepare_env(cfg: EnvConfig) -> None:
    """Run ``cfg.imports`` and check that ``cfg.id`` is registered: before any env is built."""
    run_imports(cfg.imports)
    check_env_registered(cfg.id, cfg.imports)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else ""
