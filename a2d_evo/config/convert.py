"""Plain data (as YAML gives it) to typed config dataclasses, each value by its field's type.

Unknown keys name the closest known one (or where a key moved, :data:`MOVED_KEYS`); wrong
types raise :class:`ConfigError` naming the key, the source and what was expected; ints are
held to 64 bits and floats to finite values.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import fields
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from a2d_evo.config.yaml_dialect import clip, safe_repr
from a2d_evo.errors import ConfigError

T = TypeVar("T")


MOVED_KEYS = {
    "supernet.vf_coef": "distill.vf_coef (the value-loss weight of every distilled learner, "
    "now on values / sigma: see docs/training.md)",
    **{
        f"space.{old}": "space.conv, a list of declared conv layers (docs/spaces.md)"
        for old in ("conv1", "conv2", "conv3", "extra_depths", "extra_widths", "extra_kernels")
    },
}
"""Keys that moved, and where: named in the error instead of a bare "unknown key"."""


def unknown_key_message(key: str, name: str, hints: Mapping[str, Any]) -> str:
    """The message for unknown ``key``: where it moved, or the closest known key."""
    if key in MOVED_KEYS:
        return f"unknown key {key!r}: it moved to {MOVED_KEYS[key]}"
    prefix = key[: len(key) - len(name)] if key.endswith(name) else ""
    return f"unknown key {clip(repr(key))}{_suggest(name, hints, prefix)}"


def build_section(cls: type[T], data: Any, prefix: str, source: str) -> T:
    """Dataclass ``cls`` built from mapping ``data``, each value converted by its field's type."""
    if isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{source}: {prefix.rstrip('.') or 'top level'}: expected a mapping, "
            f"got {type(data).__name__}"
        )
    hints = field_hints(cls)
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        if not isinstance(name, str) or name not in hints:
            shown = name if isinstance(name, str) else safe_repr(name)
            raise ConfigError(f"{source}: {unknown_key_message(prefix + shown, shown, hints)}")
        key = f"{prefix}{name}"
        kwargs[name] = _convert(value, hints[name], key, source)
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _convert(value: Any, tp: Any, key: str, source: str) -> Any:
    origin, args = get_origin(tp), get_args(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return build_section(tp, value, prefix=f"{key}.", source=source)
    if is_optional(tp):
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
            return check_int64(value, key)
        if isinstance(value, float) and value.is_integer():
            return check_int64(int(value), key)
        raise _type_error(source, key, "an int", value)
    if tp is float:
        if isinstance(value, int) and not isinstance(value, bool):
            if not _INT64_MIN <= value <= _INT64_MAX:
                raise ConfigError(f"{key}: expected a finite float, got an int out of range")
            return float(value)
        if isinstance(value, float):
            return check_finite(value, key)
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string
            try:
                number = float(value)
            except ValueError:
                pass
            else:
                return check_finite(number, key)
        raise _type_error(source, key, "a float", value)
    if tp is str:
        if isinstance(value, str):
            return value
        raise _type_error(source, key, "a string", value)
    if origin is Literal:
        if value in args:
            return value
        raise ConfigError(
            f"{source}: {key}: expected one of {list(args)}, got {clip(safe_repr(value))}"
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
        f"{source}: {key}: expected {expected}, got {type(value).__name__} {clip(safe_repr(value))}"
    )


# Every int field ends up in numpy or torch (seeds, sizes, step counts): int64 or refused.
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def check_int64(value: int, key: str) -> int:
    """``value`` if it fits in 64 bits, else a :class:`ConfigError`."""
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ConfigError(f"{key}: expected an int, got one outside the 64-bit range")
    return value


def check_finite(value: float, key: str) -> float:
    """``value`` if finite, else a :class:`ConfigError`."""
    # NaN slips through every ``<`` comparison and inf means nothing for any field here.
    if not math.isfinite(value):
        raise ConfigError(f"{key}: expected a finite float, got {value}")
    return value


def is_optional(tp: Any) -> bool:
    """Whether type ``tp`` is ``X | None``."""
    origin = get_origin(tp)
    return origin in (Union, types.UnionType) and type(None) in get_args(tp)


def field_hints(cls: Any) -> dict[str, Any]:
    """Each field of dataclass ``cls`` by name, with its resolved type."""
    return {f.name: t for f, t in zip(fields(cls), _resolved(cls), strict=True)}


def _resolved(cls: Any) -> list[Any]:
    hints = typing.get_type_hints(cls)
    return [hints[f.name] for f in fields(cls)]


def _suggest(name: str, hints: Mapping[str, Any], prefix: str = "") -> str:
    """The closest known key, in full (``ppo.lr``), or the section's known keys."""
    close = difflib.get_close_matches(name, list(hints), n=1)
    known = ", ".join(hints)
    return f" (did you mean {prefix + close[0]!r}?)" if close else f" (known keys: {known})"
