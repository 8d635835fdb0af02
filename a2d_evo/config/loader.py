"""Reading a config: YAML parsing, ``--set`` overrides, typed conversion and size limits.

Loading checks keys, types and ranges and raises :class:`ConfigError` naming the key, the
file and what was expected. ``--set a.b=value`` overrides are converted by the declared
type of the field (never evaluated). The types themselves live in :mod:`.schema`.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import math
import re
import shlex
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from a2d_evo.config.env import ale_keys_refused
from a2d_evo.config.schema import Config
from a2d_evo.errors import ConfigError, FormatError
from a2d_evo.formats import MAX_YAML_BYTES, read_capped

T = TypeVar("T")


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


def read_yaml_text(path: Path, what: str, error: type[Exception]) -> str:
    """The text of YAML file ``path``, at most ``MAX_YAML_BYTES`` read (a larger one, sparse
    or endless, is refused before it takes the memory); ``error`` for any failure."""
    try:
        raw = read_capped(path, what, MAX_YAML_BYTES, "a config holds a few KB")
    except FormatError as exc:  # it names the file
        raise error(str(exc)) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        detail = f"{exc.reason} at byte {exc.start}"
        raise error(f"{path}: cannot read: not UTF-8 text ({detail})") from None


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


# PyYAML's scalar constructors raise plain Python errors on some malformed scalars
# (``2001-13-45``, ``!!float abc``, ``!!timestamp x``, ints past 4300 digits) and deep
# nesting exhausts the recursion limit: all of them are malformed YAML to the user.
_YAML_ERRORS = (
    yaml.YAMLError,
    ValueError,
    TypeError,
    AttributeError,
    OverflowError,
    RecursionError,
)


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, line: int) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key, self.line = key, line


class _StrictLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses a key given twice in one mapping (PyYAML keeps the last
    silently, so one of two settings would be dropped without a word)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            # only plain keys: merge keys (<<) override on purpose, and constructing a
            # collection key here could expand an alias bomb before the size check
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            key = self.construct_object(key_node)
            try:
                duplicate = key in seen
            except TypeError:  # unhashable: PyYAML refuses it below
                continue
            if duplicate:
                raise _DuplicateKey(key, key_node.start_mark.line + 1)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        # PyYAML before its merge keys were made unique copied every merged pair: merge keys
        # nesting two aliases of the level below doubled at each line (30 lines: 2**30
        # pairs), and one merge of k aliases of a big mapping made k copies, before the size
        # check could run. What each merge would copy is counted before it copies it.
        for key_node, value_node in node.value:
            if key_node.tag != "tag:yaml.org,2002:merge":
                continue
            merged = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            total = 0
            for sub in merged:
                if isinstance(sub, yaml.MappingNode):
                    self.flatten_mapping(sub)  # (PyYAML's own pass over it is then a no-op)
                    total += len(sub.value)
            if total > MAX_NODES:
                raise _merge_too_big()
        super().flatten_mapping(node)
        if len(node.value) > MAX_NODES:
            raise _merge_too_big()


def _merge_too_big() -> yaml.YAMLError:
    return yaml.YAMLError(
        f"a mapping holds more than {MAX_NODES} entries once its merge keys (<<) are expanded"
    )


# Numbers as YAML 1.2 reads them, and as ``--set`` does: ``1e7`` is a number (YAML 1.1, which
# PyYAML follows, reads it as a string unless written ``1.0e+7``) and ``010`` is ten (YAML 1.1:
# eight, octal); ``0x``/``0o`` prefixes and ``_`` between digits stay.
_INT = re.compile(r"^[-+]?(?:0x[0-9a-fA-F_]+|0o[0-7_]+|[0-9][0-9_]*)$")
_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _NUMBER_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(_NUMBER_TAGS[0], _INT, list("-+0123456789"))
_StrictLoader.add_implicit_resolver(_NUMBER_TAGS[1], _FLOAT, list("-+0123456789."))


def _int_of(text: str) -> int:
    """The int of text that :data:`_INT` matches (``0x``/``0o`` prefixes, ``_`` between
    digits, ``010`` ten): a file's YAML and ``--set`` read numbers by this one rule."""
    text = text.replace("_", "")
    sign, body = (-1, text[1:]) if text[:1] == "-" else (1, text.lstrip("+"))
    base = {"0x": 16, "0o": 8}.get(body[:2].lower(), 10)
    return sign * int(body[2:] if base != 10 else body, base)


def _yaml_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    return _int_of(str(loader.construct_scalar(node)))


_StrictLoader.add_constructor(_NUMBER_TAGS[0], _yaml_int)


def parse_yaml(text: str, source: str) -> Any:
    """``yaml.safe_load`` that turns every parse failure into a one-line :class:`ConfigError`.

    A key given twice in one mapping and a file without any document (empty, or comments
    only) are refused too: neither may silently stand for "the defaults".
    """
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader: builds plain data only
    except _DuplicateKey as exc:
        raise ConfigError(
            f"{source}: duplicate key {_clip(_safe_repr(exc.key), 80)} (line {exc.line}); "
            "YAML would keep only the last one, so remove the other"
        ) from None
    except yaml.MarkedYAMLError as exc:  # where it broke, as the user's editor counts
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = "; ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise ConfigError(f"{source}: malformed YAML{where}: {_clip(what, 300)}") from None
    except _YAML_ERRORS as exc:
        detail = str(exc) if isinstance(exc, yaml.YAMLError) else f"{type(exc).__name__}: {exc}"
        one_line = "; ".join(ln.strip() for ln in detail.splitlines() if ln.strip())
        raise ConfigError(f"{source}: malformed YAML: {_clip(one_line, 500)}") from None
    if data is None:
        raise ConfigError(
            f"{source}: the file is empty (no settings); an empty config is not taken as all "
            "defaults: write at least env.id, or restore the file"
        )
    return data


def config_from_dict(raw: Any, overrides: Sequence[str] = (), source: str = "<dict>") -> Config:
    """Build a validated :class:`Config` from plain data (as YAML gives it)."""
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{source}: expected a mapping at the top level, got {type(raw).__name__}"
        )
    _check_size(raw, source)
    data = _deep_copy(raw)
    for item in overrides:
        _apply_override(data, item)
    try:
        return _build(Config, data, prefix="", source=source)
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


class _Dumper(yaml.SafeDumper):
    """``SafeDumper`` that quotes every string :class:`_StrictLoader` (YAML 1.2 numbers) or
    PyYAML's own YAML 1.1 rules would read as something else, so that a written config reads
    back the same with either (``0b1``, ``1:30``, ``1e7``, ``010`` stay strings)."""


_Dumper.yaml_implicit_resolvers = {
    first: [*yaml.SafeDumper.yaml_implicit_resolvers.get(first, []),
            *_StrictLoader.yaml_implicit_resolvers.get(first, [])]
    for first in {*yaml.SafeDumper.yaml_implicit_resolvers, *_StrictLoader.yaml_implicit_resolvers}
}  # fmt: skip


def dump_config(cfg: Config) -> str:
    """YAML text of a config (round-trips through :func:`config_from_dict`)."""
    return yaml.dump(config_to_dict(cfg), Dumper=_Dumper, sort_keys=False)


def parse_override(item: str) -> tuple[list[str], str]:
    """Split ``a.b.c=value`` into its key path and raw value text."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key.path=value")
    key, _, value = item.partition("=")
    parts = key.strip().split(".")
    if not key.strip() or any(not p or not p.isidentifier() for p in parts):
        raise ConfigError(f"--set {item!r}: {key!r} is not a dotted key path")
    return parts, value.strip()


def _apply_override(data: dict[str, Any], item: str) -> None:
    parts, text = parse_override(item)
    cls: Any = Config
    node = data
    for i, name in enumerate(parts):
        hints = _hints(cls)
        key = ".".join(parts[: i + 1])
        if name not in hints:
            raise ConfigError(f"--set {item!r}: {_unknown(key, name, hints)}")
        tp = hints[name]
        if i == len(parts) - 1:
            try:
                value = _parse_text(text, tp, key)
                # a mapping given here (env.kwargs, teacher.arch) is held to a file's limits:
                # an alias bomb in --set passed them, and blew up when the config was written
                _check_size(value, key)
            except ConfigError as exc:
                raise ConfigError(f"--set {item!r}: {exc}") from None
            node[name] = value
            return
        if _mapping_field(tp):  # env.kwargs, teacher.arch: a mapping is set whole, in YAML
            raise ConfigError(
                f"--set {item!r}: {key!r} is a mapping, set whole (it replaces the config's): "
                f"--set {_whole_mapping(key, parts[i + 1 :], text, node.get(name))}"
            )
        if not (isinstance(tp, type) and dataclasses.is_dataclass(tp)):
            raise ConfigError(f"--set {item!r}: {key!r} is not a section")
        child = node.setdefault(name, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {item!r}: {key!r} is not a mapping in the config")
        node, cls = child, tp


def _parse_text(text: str, tp: Any, key: str) -> Any:
    """Convert ``--set`` text to the declared type of ``key``; never evaluates code."""
    origin, args = get_origin(tp), get_args(tp)
    if _is_optional(tp):
        if text.lower() in ("none", "null", "~", ""):
            return None
        inner = [a for a in args if a is not type(None)]
        return _parse_text(text, inner[0], key)
    if tp is bool:
        low = text.lower()
        if low in ("true", "1", "yes", "on"):
            return True
        if low in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"{key}: expected a bool (true/false), got {text!r}")
    if tp in (int, float):  # numbers as a file's YAML reads them (0x10 is 16), ASCII only
        number = text.strip()
        try:
            if _INT.match(number):
                whole = _int_of(number)
                return _bounded_int(whole, key) if tp is int else _finite(float(whole), key)
            value = float(number.replace("_", "")) if number.isascii() else float("nan")
        except (ValueError, OverflowError):  # also ints past Python's 4300-digit limit
            value = float("nan")
        if tp is float and not (math.isnan(value) and number.lower().lstrip("+-") != "nan"):
            return _finite(value, key)  # a NaN given as one is refused as not finite
        if tp is int and value.is_integer():
            return _bounded_int(int(value), key)
        what = "an int" if tp is int else "a float"
        raise ConfigError(f"{key}: expected {what}, got {_clip(repr(text))}")
    if tp is str:
        return text
    if origin is Literal:
        if text not in args:
            raise ConfigError(f"{key}: expected one of {list(args)}, got {text!r}")
        return text
    if origin is tuple:
        body = text.strip()
        if body.startswith("[") and body.endswith("]"):
            body = body[1:-1]
        items = [t.strip() for t in body.split(",") if t.strip()]
        return [_parse_text(t, args[0], key) for t in items]
    if origin is dict or tp is dict:
        if text.strip() in ("", "~", "null", "Null", "NULL"):
            raise ConfigError(f"{key}: expected a mapping ({{}} for none), got {text!r}")
        value = parse_yaml(text, key)
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {text!r}")
        return value
    raise ConfigError(f"{key}: cannot be set from the command line")


MOVED_KEYS = {
    "supernet.vf_coef": "distill.vf_coef (the value-loss weight of every distilled learner, "
    "now on values / sigma: see docs/training.md)",
    **{
        f"space.{old}": "space.conv, a list of declared conv layers (docs/spaces.md)"
        for old in ("conv1", "conv2", "conv3", "extra_depths", "extra_widths", "extra_kernels")
    },
}
"""Keys that moved, and where: named in the error instead of a bare "unknown key"."""


def _unknown(key: str, name: str, hints: Mapping[str, Any]) -> str:
    if key in MOVED_KEYS:
        return f"unknown key {key!r}: it moved to {MOVED_KEYS[key]}"
    prefix = key[: len(key) - len(name)] if key.endswith(name) else ""
    return f"unknown key {_clip(repr(key))}{_suggest(name, hints, prefix)}"


def _build(cls: type[T], data: Any, prefix: str, source: str) -> T:
    if isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{source}: {prefix.rstrip('.') or 'top level'}: expected a mapping, "
            f"got {type(data).__name__}"
        )
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        if not isinstance(name, str) or name not in hints:
            shown = name if isinstance(name, str) else _safe_repr(name)
            raise ConfigError(f"{source}: {_unknown(prefix + shown, shown, hints)}")
        key = f"{prefix}{name}"
        kwargs[name] = _convert(value, hints[name], key, source)
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _convert(value: Any, tp: Any, key: str, source: str) -> Any:
    origin, args = get_origin(tp), get_args(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _build(tp, value, prefix=f"{key}.", source=source)
    if _is_optional(tp):
        if value is None:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0], key, source)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _type_error(source, key, "a bool", value)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return _bounded_int(value, key)
        if isinstance(value, float) and value.is_integer():
            return _bounded_int(int(value), key)
        raise _type_error(source, key, "an int", value)
    if tp is float:
        if isinstance(value, int) and not isinstance(value, bool):
            if not _INT64_MIN <= value <= _INT64_MAX:
                raise ConfigError(f"{key}: expected a finite float, got an int out of range")
            return float(value)
        if isinstance(value, float):
            return _finite(value, key)
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string
            try:
                number = float(value)
            except ValueError:
                pass
            else:
                return _finite(number, key)
        raise _type_error(source, key, "a float", value)
    if tp is str:
        if isinstance(value, str):
            return value
        raise _type_error(source, key, "a string", value)
    if origin is Literal:
        if value in args:
            return value
        raise ConfigError(
            f"{source}: {key}: expected one of {list(args)}, got {_clip(_safe_repr(value))}"
        )
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise _type_error(source, key, "a list", value)
        return tuple(_convert(v, args[0], f"{key}[{i}]", source) for i, v in enumerate(value))
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise _type_error(source, key, "a mapping", value)
        try:
            out = {str(k): v for k, v in value.items()}
            yaml.safe_dump(out)  # it must survive the trip through config.yaml
        except (ValueError, yaml.YAMLError):  # ints past 4300 digits, arbitrary objects
            raise ConfigError(
                f"{source}: {key}: holds a value config.yaml cannot store (plain YAML data only)"
            ) from None
        if _non_finite(out):  # NaN is not equal to itself: the run would conflict with itself
            raise ConfigError(f"{source}: {key}: holds a non-finite number (.nan or .inf)")
        try:  # and through arch.json and the recipe digests: YAML's dates, sets and bytes do not
            json.dumps(out, allow_nan=False)
        except (TypeError, ValueError):
            raise ConfigError(
                f"{source}: {key}: holds a value JSON cannot store (a date, a set or bytes?): "
                "use strings, numbers, booleans, lists and mappings only; quote a date"
            ) from None
        return out
    if tp is Any:
        return value
    raise ConfigError(f"{source}: {key}: unsupported field type {tp}")


def _non_finite(value: Any) -> bool:
    """Whether plain YAML data holds a NaN or an infinity anywhere."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, Mapping):
        return any(_non_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_non_finite(v) for v in value)
    return False


def _type_error(source: str, key: str, expected: str, value: Any) -> ConfigError:
    return ConfigError(
        f"{source}: {key}: expected {expected}, got {type(value).__name__} "
        f"{_clip(_safe_repr(value))}"
    )


# Every int field ends up in numpy or torch (seeds, sizes, step counts): int64 or refused.
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _bounded_int(value: int, key: str) -> int:
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ConfigError(f"{key}: expected an int, got one outside the 64-bit range")
    return value


def _finite(value: float, key: str) -> float:
    # NaN slips through every ``<`` comparison and inf means nothing for any field here.
    if not math.isfinite(value):
        raise ConfigError(f"{key}: expected a finite float, got {value}")
    return value


def _safe_repr(value: Any) -> str:
    """``repr`` that cannot fail (ints past 4300 digits, odd objects)."""
    try:
        return repr(value)
    except Exception:  # a message must never raise
        return f"<{type(value).__name__}>"


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _mapping_field(tp: Any) -> bool:
    """Whether a field's type is a mapping (``dict[...]``, or one that may be None)."""
    inner = [a for a in get_args(tp) if a is not type(None)] if _is_optional(tp) else [tp]
    return any(get_origin(a) is dict for a in inner)


def set_flag(key: str, value: Any) -> str:
    """``--set key=value``, shell-quoted, that reads back as ``value``: a string as it is
    (``--set`` gives a string field its text unparsed), anything else as YAML flow, written
    as the config's own YAML reads it (1.2 numbers, ``null``, ``true``)."""
    if isinstance(value, str):
        return "--set " + shlex.quote(f"{key}={value}")
    return "--set " + shlex.quote(f"{key}={_flow(value)}")


def _flow(value: Any) -> str:
    """``value`` as one line of YAML flow in the config's own dialect (:class:`_Dumper`);
    dumped inside a list, which a scalar needs (alone it would end the document with ``...``)."""
    return yaml.dump([value], Dumper=_Dumper, default_flow_style=True, width=1 << 16).strip()[1:-1]


def _whole_mapping(key: str, inner: Sequence[str], text: str, current: Any = None) -> str:
    """The shell-quoted ``key={...}`` that sets the value ``text`` at the path ``inner`` of
    the mapping ``key``, as YAML flow: ``text`` read as the config's own YAML reads it (1.2
    numbers: ``017`` is 17, ``1:30`` a string), written back so that it reads the same.
    ``current``: the mapping the config holds there; its other keys are kept, since the whole
    mapping replaces it."""
    try:
        value: Any = parse_yaml(text, key)
    except ConfigError:  # not YAML on its own (``a: b: c``): the text as it stands
        value = text
    whole: dict[str, Any] = copy.deepcopy(dict(current)) if isinstance(current, dict) else {}
    node = whole
    for part in inner[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[inner[-1]] = value
    return shlex.quote(f"{key}={_flow(whole)}")


def _is_optional(tp: Any) -> bool:
    origin = get_origin(tp)
    return origin in (Union, types.UnionType) and type(None) in get_args(tp)


def _hints(cls: Any) -> dict[str, Any]:
    return {f.name: t for f, t in zip(fields(cls), _resolved(cls), strict=True)}


def _resolved(cls: Any) -> list[Any]:
    hints = typing.get_type_hints(cls)
    return [hints[f.name] for f in fields(cls)]


def _suggest(name: str, hints: Mapping[str, Any], prefix: str = "") -> str:
    """The closest known key, in full (``ppo.lr``), or the section's known keys."""
    close = difflib.get_close_matches(name, list(hints), n=1)
    known = ", ".join(hints)
    return f" (did you mean {prefix + close[0]!r}?)" if close else f" (known keys: {known})"


MAX_NODES = 100_000
"""Most values (after expanding shared ones) a config may hold; a real one has ~100."""
MAX_DEPTH = 32
"""Deepest nesting a config may have."""


def _check_size(raw: Any, source: str) -> None:
    """Refuse YAML alias bombs, self-referencing and absurdly deep data before copying it.

    Iterative with a budget, so a cycle or a billion-laughs file costs MAX_NODES steps.
    """
    stack: list[tuple[Any, int]] = [(raw, 0)]
    seen = 0
    while stack:
        node, depth = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            raise ConfigError(
                f"{source}: the config holds more than {MAX_NODES} values "
                "(YAML aliases expanding, or a self-referencing structure)"
            )
        if depth > MAX_DEPTH:
            raise ConfigError(f"{source}: the config is nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, Mapping):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list | tuple):
            stack.extend((v, depth + 1) for v in node)


def _deep_copy(data: Any) -> Any:
    if isinstance(data, Mapping):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deep_copy(v) for v in data]
    return data
