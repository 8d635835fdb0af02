"""The config's YAML dialect: strict reading, the dumper that writes what it reads back, limits.

Reading refuses a key given twice in one mapping, reads numbers as YAML 1.2 does (``1e7`` a
number, ``010`` ten), counts what merge keys (``<<``) would copy before copying it, and turns
every parse failure into a one-line :class:`ConfigError`. :class:`Dumper` quotes every string
either dialect would read as something else. :func:`check_size` holds parsed data to
``MAX_NODES`` values and ``MAX_DEPTH`` levels.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from a2d_evo.errors import ConfigError, FormatError
from a2d_evo.formats import MAX_YAML_BYTES, read_capped


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
INT_PATTERN = re.compile(r"^[-+]?(?:0x[0-9a-fA-F_]+|0o[0-7_]+|[0-9][0-9_]*)$")
"""What this dialect reads as an int (YAML 1.2 with ``_`` separators): decimal, ``0x`` and
``0o``; :func:`int_of` converts what it matches."""
_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _NUMBER_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(_NUMBER_TAGS[0], INT_PATTERN, list("-+0123456789"))
_StrictLoader.add_implicit_resolver(_NUMBER_TAGS[1], _FLOAT, list("-+0123456789."))


def int_of(text: str) -> int:
    """The int of text that :data:`INT_PATTERN` matches (``0x``/``0o`` prefixes, ``_`` between
    digits, ``010`` ten): a file's YAML and ``--set`` read numbers by this one rule."""
    text = text.replace("_", "")
    sign, body = (-1, text[1:]) if text[:1] == "-" else (1, text.lstrip("+"))
    base = {"0x": 16, "0o": 8}.get(body[:2].lower(), 10)
    return sign * int(body[2:] if base != 10 else body, base)


def _yaml_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    return int_of(str(loader.construct_scalar(node)))


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
            f"{source}: duplicate key {clip(safe_repr(exc.key), 80)} (line {exc.line}); "
            "YAML would keep only the last one, so remove the other"
        ) from None
    except yaml.MarkedYAMLError as exc:  # where it broke, as the user's editor counts
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = "; ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise ConfigError(f"{source}: malformed YAML{where}: {clip(what, 300)}") from None
    except _YAML_ERRORS as exc:
        detail = str(exc) if isinstance(exc, yaml.YAMLError) else f"{type(exc).__name__}: {exc}"
        one_line = "; ".join(ln.strip() for ln in detail.splitlines() if ln.strip())
        raise ConfigError(f"{source}: malformed YAML: {clip(one_line, 500)}") from None
    if data is None:
        raise ConfigError(
            f"{source}: the file is empty (no settings); an empty config is not taken as all "
            "defaults: write at least env.id, or restore the file"
        )
    return data


class Dumper(yaml.SafeDumper):
    """``SafeDumper`` that quotes every string :class:`_StrictLoader` (YAML 1.2 numbers) or
    PyYAML's own YAML 1.1 rules would read as something else, so that a written config reads
    back the same with either (``0b1``, ``1:30``, ``1e7``, ``010`` stay strings)."""


Dumper.yaml_implicit_resolvers = {
    first: [*yaml.SafeDumper.yaml_implicit_resolvers.get(first, []),
            *_StrictLoader.yaml_implicit_resolvers.get(first, [])]
    for first in {*yaml.SafeDumper.yaml_implicit_resolvers, *_StrictLoader.yaml_implicit_resolvers}
}  # fmt: skip


def safe_repr(value: Any) -> str:
    """``repr`` that cannot fail (ints past 4300 digits, odd objects)."""
    try:
        return repr(value)
    except Exception:  # a message must never raise
        return f"<{type(value).__name__}>"


def clip(text: str, limit: int = 200) -> str:
    """``text`` cut to ``limit`` characters for a message, ``...`` marking the cut."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


MAX_NODES = 100_000
"""Most values (after expanding shared ones) a config may hold; a real one has ~100."""
MAX_DEPTH = 32
"""Deepest nesting a config may have."""


def check_size(raw: Any, source: str) -> None:
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
