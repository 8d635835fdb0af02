"""Reading a config: a file or plain data, with ``--set`` overrides, to a checked :class:`Config`.

Loading checks keys, types and ranges and raises :class:`ConfigError` naming the key, the
file (and the override, where one set the value) and what was expected. The YAML dialect is
:mod:`.yaml_dialect`'s, the overrides :mod:`.overrides`', the typed conversion
:mod:`.convert`'s; the types themselves live in :mod:`.schema`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from a2d_evo.config.convert import build_section
from a2d_evo.config.env import ale_keys_refused
from a2d_evo.config.overrides import apply_override, parse_override
from a2d_evo.config.schema import Config
from a2d_evo.config.yaml_dialect import Dumper, check_size, parse_yaml, read_yaml_text
from a2d_evo.errors import ConfigError


def load_config(
    path: str | Path, overrides: Sequence[str] = (), *, recorded: bool | None = None
) -> Config:
    """Read a YAML config, apply ``key.path=value`` overrides, validate, and return it.

    ``recorded``: whether the file is one a2d-evo wrote (a run's ``config.yaml``, which lists
    every key with its value); None decides by its ``format_version``, or an ``env`` section
    that lists every field as a2d-evo writes it (a run's file copied without its version).
    Only a user's own file is refused for naming an ALE key on a non-ALE id
    (:func:`_check_ale_keys_named`)."""
    return config_from_file(read_config_file(path), overrides, str(path), recorded=recorded)


def read_config_file(path: str | Path) -> Any:
    """The parsed YAML of a config file (not yet checked against the schema): read once, so
    that what a command decides about a file and what it loads are the same bytes."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: a folder, not a config file; pass a YAML file")
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    return parse_yaml(read_yaml_text(path, "config file", ConfigError), str(path))


def config_from_file(
    raw: Any, overrides: Sequence[str], source: str, *, recorded: bool | None = None
) -> Config:
    """:func:`load_config` on a file's parsed YAML ``raw`` (:func:`read_config_file`),
    ``source`` its path for messages."""
    cfg = config_from_dict(raw, overrides, source=source)
    if recorded is None and isinstance(raw, Mapping):
        env = raw.get("env")
        written = [f.name for f in fields(type(cfg.env)) if f.name not in cfg.env.LATER_FIELDS]
        listed = isinstance(env, Mapping) and all(name in env for name in written)
        recorded = "format_version" in raw or listed
    _check_ale_keys_named(None if recorded else raw, overrides, cfg, source)
    return cfg


def _check_ale_keys_named(raw: Any, overrides: Sequence[str], cfg: Config, source: str) -> None:
    """Refuse ALE pipeline keys (:attr:`EnvConfig.ATARI_KEYS`) that a user's config ``raw``
    or ``--set`` names for a non-ALE id, even at their default values: the schema refuses a
    changed one, and one set to its default (``sticky_actions: 0.25`` on MinAtar) would be
    ignored just as silently. ``raw`` None: a file a2d-evo wrote, which lists every key with
    its value, so only the overrides are checked."""
    if cfg.env.atari:
        return
    env = raw.get("env") if isinstance(raw, Mapping) else None
    named = [k for k in cfg.env.ATARI_KEYS if isinstance(env, Mapping) and k in env]
    where = source
    for item in overrides:
        key = parse_override(item)[0]
        if len(key) == 2 and key[0] == "env" and key[1] in cfg.env.ATARI_KEYS:
            named.append(key[1])
            where = f"{source} with override {item!r}"
    if named:
        raise ConfigError(f"{where}: {ale_keys_refused(list(dict.fromkeys(named)), cfg.env.id)}")


def config_from_dict(raw: Any, overrides: Sequence[str] = (), source: str = "<dict>") -> Config:
    """Build a validated :class:`Config` from plain data (as YAML gives it)."""
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{source}: expected a mapping at the top level, got {type(raw).__name__}"
        )
    check_size(raw, source)
    data = _deep_copy(raw)
    for item in overrides:
        apply_override(data, item)
    try:
        return build_section(Config, data, prefix="", source=source)
    except ConfigError as exc:
        msg = str(exc)
        body = msg[len(source) :].lstrip(": ") if msg.startswith(source) else msg
        # a value an override set is the override's fault, not the file's: name it
        key = body.split(":")[0]
        given = [i for i in overrides if _covers(".".join(parse_override(i)[0]), key)]
        # a check across keys (space.kind against env.id) names the override whose value it
        # quotes, not only the key it reports
        given = given or [i for i in overrides if f"{parse_override(i)[1]!r}" in body]
        # ...or whose keys it names (ppo.num_minibatches must divide ppo.num_envs * ...)
        named = [i for i in overrides if _names(body, ".".join(parse_override(i)[0]))]
        where = source
        if given:
            where = f"{source} with override {given[-1]!r}"
        elif named:
            listed = ", ".join(repr(i) for i in named)
            where = f"{source} with override{'s' if len(named) > 1 else ''} {listed}"
        raise ConfigError(f"{where}: {body}") from None


def _names(text: str, key: str) -> bool:
    """Whether ``text`` names the dotted ``key`` as a whole (``ppo.num_envs``, not the
    ``seed`` inside ``search.seeds``)."""
    return re.search(rf"(?<![\w.]){re.escape(key)}(?![\w])", text) is not None


def _covers(override_key: str, key: str) -> bool:
    """Whether setting ``override_key`` sets ``key``: the key itself, a section above it, or
    the list it indexes (``env.imports[0]``)."""
    return key == override_key or key.startswith((override_key + ".", override_key + "["))


def config_to_dict(cfg: Any) -> Any:
    """Plain data (dicts, lists, scalars) of a config, as written to ``config.yaml``."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: config_to_dict(getattr(cfg, f.name)) for f in fields(cfg)}
    if isinstance(cfg, tuple | list):
        return [config_to_dict(v) for v in cfg]
    if isinstance(cfg, Mapping):
        return {str(k): config_to_dict(v) for k, v in cfg.items()}
    return cfg


def dump_config(cfg: Config) -> str:
    """YAML text of a config (round-trips through :func:`config_from_dict`)."""
    return yaml.dump(config_to_dict(cfg), Dumper=Dumper, sort_keys=False)


def _deep_copy(data: Any) -> Any:
    """A copy of plain data (mappings become dicts, lists are copied; scalars shared)."""
    if isinstance(data, Mapping):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deep_copy(v) for v in data]
    return data
