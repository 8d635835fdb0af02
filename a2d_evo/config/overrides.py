"""``--set a.b=value`` overrides: parsing, applying by the field's declared type, writing back.

The value text is converted by the declared type of the field it sets (never evaluated);
a mapping field is set whole, in YAML flow. :func:`set_flag` writes the ``--set`` that reads
back as a given value.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import shlex
from collections.abc import Sequence
from typing import Any, Literal, get_args, get_origin

import yaml

from a2d_evo.config.convert import (
    check_finite,
    check_int64,
    field_hints,
    is_optional,
    unknown_key_message,
)
from a2d_evo.config.schema import Config
from a2d_evo.config.yaml_dialect import INT_PATTERN, Dumper, check_size, clip, int_of, parse_yaml
from a2d_evo.errors import ConfigError


def parse_override(item: str) -> tuple[list[str], str]:
    """Split ``a.b.c=value`` into its key path and raw value text."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key.path=value")
    key, _, value = item.partition("=")
    parts = key.strip().split(".")
    if not key.strip() or any(not p or not p.isidentifier() for p in parts):
        raise ConfigError(f"--set {item!r}: {key!r} is not a dotted key path")
    return parts, value.strip()


def apply_override(data: dict[str, Any], item: str) -> None:
    """Set the value of ``--set`` ``item`` in the plain config ``data``, converted by its type."""
    parts, text = parse_override(item)
    cls: Any = Config
    node = data
    for i, name in enumerate(parts):
        hints = field_hints(cls)
        key = ".".join(parts[: i + 1])
        if name not in hints:
            raise ConfigError(f"--set {item!r}: {unknown_key_message(key, name, hints)}")
        tp = hints[name]
        if i == len(parts) - 1:
            try:
                value = _parse_text(text, tp, key)
                # a mapping given here (env.kwargs, teacher.arch) is held to a file's limits:
                # an alias bomb in --set passed them, and blew up when the config was written
                check_size(value, key)
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
    if is_optional(tp):
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
            if INT_PATTERN.match(number):
                whole = int_of(number)
                return check_int64(whole, key) if tp is int else check_finite(float(whole), key)
            value = float(number.replace("_", "")) if number.isascii() else float("nan")
        except (ValueError, OverflowError):  # also ints past Python's 4300-digit limit
            value = float("nan")
        if tp is float and not (math.isnan(value) and number.lower().lstrip("+-") != "nan"):
            return check_finite(value, key)  # a NaN given as one is refused as not finite
        if tp is int and value.is_integer():
            return check_int64(int(value), key)
        what = "an int" if tp is int else "a float"
        raise ConfigError(f"{key}: expected {what}, got {clip(repr(text))}")
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


def _mapping_field(tp: Any) -> bool:
    """Whether a field's type is a mapping (``dict[...]``, or one that may be None)."""
    inner = [a for a in get_args(tp) if a is not type(None)] if is_optional(tp) else [tp]
    return any(get_origin(a) is dict for a in inner)


def set_flag(key: str, value: Any) -> str:
    """``--set key=value``, shell-quoted, that reads back as ``value``: a string as it is
    (``--set`` gives a string field its text unparsed), anything else as YAML flow, written
    as the config's own YAML reads it (1.2 numbers, ``null``, ``true``)."""
    if isinstance(value, str):
        return "--set " + shlex.quote(f"{key}={value}")
    return "--set " + shlex.quote(f"{key}={_flow(value)}")


def recorded_set_flag(text: Any, sections: Sequence[str]) -> str | None:
    """A ``--set key=value`` flag read back from a file (a command line a run recorded),
    rebuilt shell-quoted; None unless ``text`` is exactly one such flag, of a key under
    ``sections`` that ``--set`` takes with that value. A recorded flag comes from a folder that
    may be someone else's: its text never reaches a printed command as it stands."""
    if not isinstance(text, str):
        return None
    try:
        words = shlex.split(text)
    except ValueError:  # an unclosed quote
        return None
    if len(words) != 2 or words[0] != "--set":
        return None
    try:
        parts, _ = parse_override(words[1])
        apply_override({}, words[1])
    except ConfigError:
        return None
    return "--set " + shlex.quote(words[1]) if parts[0] in sections and len(parts) > 1 else None


def _flow(value: Any) -> str:
    """``value`` as one line of YAML flow in the config's own dialect (:class:`Dumper`);
    dumped inside a list, which a scalar needs (alone it would end the document with ``...``)."""
    return yaml.dump([value], Dumper=Dumper, default_flow_style=True, width=1 << 16).strip()[1:-1]


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
