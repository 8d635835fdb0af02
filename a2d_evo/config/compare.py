"""Comparing configs: the dotted keys two configs differ on (what a stage's own config, a
``--resume`` or a comparison must agree on), the runtime keys that say how a stage runs
rather than what it computes, and the digest of the settings an agent was trained with."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from a2d_evo.config.loader import config_to_dict
from a2d_evo.config.overrides import set_flag
from a2d_evo.config.schema import Config


def setting(cfg: Config, key: str) -> Any:
    """The value of a dotted key of ``cfg``: a top-level field (``seed``) or
    ``section.field``; AttributeError for a key inside a mapping field (``env.kwargs.x``)."""
    value: Any = cfg
    for part in key.split("."):
        value = getattr(value, part)
    return value


def config_diff(a: Config, b: Config, sections: Iterable[str]) -> list[str]:
    """Dotted keys under ``sections`` whose values differ between two configs."""
    da, db = config_to_dict(a), config_to_dict(b)
    out: list[str] = []
    for name in sections:
        out.extend(_diff(da.get(name), db.get(name), name))
    if "env" in sections and a.env.games() != b.env.games():
        out.append("env.backend")  # a runtime key but where it changes the games played
    return out


UNORDERED_KEYS = frozenset({"env.imports"})
"""Lists compared as sets: ``--env-import`` flags may come in any order."""


RUNTIME_KEYS = frozenset(
    {
        "env.backend",
        "env.workers",
        "finetune.workers",
        "search.backend",
        "search.ray_address",
        "search.ray_actors",
        "search.ray_cpus_per_actor",
        "search.ray_gpus_per_actor",
        "search.ray_share_timeout_s",
        "teacher.checkpoint_every",
        "supernet.checkpoint_every",
    }
)
"""How a stage is run, not what it computes, so a command or ``--resume`` may change them:
where the search's candidates are played (Ray gives the local results, ``docs/distributed.md``:
a search resumes on another cluster, or locally after Ray failed), how often a training stage
checkpoints, how many members are fine-tuned at once (the agents are the same), and how the env
is stepped: the backends play the same episodes, with the same
rewards and terminations step for step and frames within one grey level (``tests/test_envs.py``),
so a command may change them (after a native worker failed, say). Not recorded: the stage's
``config.yaml`` keeps the backend it started with (a training ``--resume`` is not bit-exact in
any case: envs reset on resume, ``docs/training.md``). The exception, which
:func:`config_diff` reports as ``env.backend``: ``ale_vector`` on an ALE id with no-ops or
sticky actions plays other games for the same seeds (:meth:`EnvConfig.games`)."""


SELECTION_KEYS = frozenset({"finetune.below_random"})
"""Which agents a command trains, not how each one trains: out of every recipe digest (a
member fine-tuned before the key existed, or under another value, is fine-tuned the same)."""

FOLDED_KEYS = frozenset({"finetune.kickstart"})
"""Keys whose whole effect a digest already sees in another section: ``finetune.kickstart`` is
the fine-tune's ``distill`` schedule (``Config.finetune_distill``, which ``finetune_recipe``
and the ``a2d`` baselines' recipe hash). Out of every recipe digest, so that a member
fine-tuned before the key existed matches one fine-tuned with it off."""


TRAINING_SECTIONS = ("ppo", "distill", "finetune")
"""The sections a fine-tune or a baseline trains with, which a command may be given with
``--set`` over the run's config; recorded as flags (:func:`training_sets`) for the report's
Reproduce lines."""


def training_sets(base: Config, cfg: Config) -> list[str]:
    """The ``--set`` flags that give ``cfg``'s training settings (:data:`TRAINING_SECTIONS`)
    over ``base``, the config the command reads when it is given none: what an ``export``, a
    ``baselines`` or a ``finetune`` records so that the report repeats it. ``finetune.steps``
    is left out: each of those commands takes its budget in its own way."""
    moved = config_diff(base, cfg, TRAINING_SECTIONS)
    return [set_flag(key, setting(cfg, key)) for key in moved if key != "finetune.steps"]


def recipe_digest(cfg: Config, sections: Iterable[str]) -> str:
    """SHA-256 of the settings in ``sections`` of ``cfg`` (``env``, ``ppo``, ...) without the
    runtime keys (:data:`RUNTIME_KEYS`: how a stage is run, not what it trains), the
    :data:`SELECTION_KEYS` and the :data:`FOLDED_KEYS`: what an agent folder records of how it
    was trained, so that a command resumed with other settings trains it again instead of
    keeping it (``finetune_recipe``, the baselines)."""
    settings = config_to_dict(cfg)
    parts = {k: settings.get(k) for k in sections}
    for key in RUNTIME_KEYS | SELECTION_KEYS | FOLDED_KEYS:
        section, name = key.split(".")
        if isinstance(parts.get(section), dict):
            parts[section].pop(name, None)
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _diff(a: Any, b: Any, key: str) -> list[str]:
    if key in RUNTIME_KEYS:
        return []
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b)):
            if key == "env.kwargs" and (k in a) != (k in b):
                # an env argument left out takes the env's default; given as null it is None
                out.append(f"{key}.{k}")
                continue
            out.extend(_diff(a.get(k), b.get(k), f"{key}.{k}"))
        return out
    if key in UNORDERED_KEYS and isinstance(a, list) and isinstance(b, list):
        return [] if set(a) == set(b) else [key]
    return [] if a == b else [key]
