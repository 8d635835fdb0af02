"""Architectures as values, and the one object that encodes, decodes and samples them.

An encoding is one integer gene per choice: the index of the chosen value in its list.
MLP genes: ``[depth, width_1, ..., width_maxdepth]``. CNN genes: ``[conv1, conv2, conv3,
n_extra, (extra_width, extra_kernel) * max_extra, fc]``. ``canonical`` zeroes the genes of
inactive layers, so two vectors that build the same network are the same vector.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np

from a2d_evo.config import SpaceConfig
from a2d_evo.errors import ArchError


@dataclass(frozen=True)
class MLPArch:
    """A tanh MLP: the widths of its hidden layers (depth = their number)."""

    widths: tuple[int, ...]

    kind = "mlp"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "mlp", "widths": list(self.widths)}

    def __str__(self) -> str:
        return "mlp-" + "x".join(map(str, self.widths))


@dataclass(frozen=True)
class CNNArch:
    """A Nature-shaped CNN: conv1-3 widths, extra same-padded convs (width, kernel), FC width."""

    conv: tuple[int, int, int]
    extra: tuple[tuple[int, int], ...]
    fc: int

    kind = "cnn"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "cnn",
            "conv": list(self.conv),
            "extra": [list(e) for e in self.extra],
            "fc": self.fc,
        }

    def __str__(self) -> str:
        extra = "".join(f"-{w}k{k}" for w, k in self.extra)
        return f"cnn-{self.conv[0]}-{self.conv[1]}-{self.conv[2]}{extra}-fc{self.fc}"


Arch: TypeAlias = MLPArch | CNNArch


def arch_from_dict(data: Any) -> Arch:
    """Rebuild an arch from its ``to_dict`` form; raises :class:`ArchError` on bad data."""
    if not isinstance(data, Mapping):
        raise ArchError(f"arch: expected a mapping, got {type(data).__name__}")
    kind = data.get("kind")
    try:
        if kind == "mlp":
            _expect_keys(data, {"kind", "widths"})
            widths = tuple(_pos_int(w, "widths") for w in _as_list(data["widths"], "widths"))
            if not widths:
                raise ArchError("arch.widths: an MLP needs at least one hidden layer")
            return MLPArch(widths)
        if kind == "cnn":
            _expect_keys(data, {"kind", "conv", "extra", "fc"})
            conv = tuple(_pos_int(c, "conv") for c in _as_list(data["conv"], "conv"))
            if len(conv) != 3:
                raise ArchError(f"arch.conv: expected 3 widths, got {len(conv)}")
            extra = []
            for item in _as_list(data["extra"], "extra"):
                pair = _as_list(item, "extra[]")
                if len(pair) != 2:
                    raise ArchError("arch.extra: each entry is [width, kernel]")
                extra.append((_pos_int(pair[0], "extra width"), _pos_int(pair[1], "extra kernel")))
            return CNNArch((conv[0], conv[1], conv[2]), tuple(extra), _pos_int(data["fc"], "fc"))
    except KeyError as exc:
        raise ArchError(f"arch: missing key {exc.args[0]!r}") from None
    raise ArchError(f"arch.kind: expected 'mlp' or 'cnn', got {kind!r}")


def _expect_keys(data: Mapping[str, Any], keys: set[str]) -> None:
    missing = keys - set(data)
    unknown = set(data) - keys
    if missing:
        raise ArchError(f"arch: missing keys {sorted(missing)}")
    if unknown:
        raise ArchError(f"arch: unknown keys {sorted(unknown)}")


def _as_list(value: Any, name: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise ArchError(f"arch.{name}: expected a list, got {type(value).__name__}")
    return list(value)


def _pos_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ArchError(f"arch.{name}: expected a positive int, got {value!r}")
    return int(value)


class SearchSpace:
    """Encode, decode, bound, sample and canonicalise the archs of one space config."""

    def __init__(self, cfg: SpaceConfig) -> None:
        self.cfg = cfg
        self.kind = cfg.kind
        if cfg.kind == "mlp":
            self.max_depth = max(cfg.depths)
            self._choices: list[tuple[int, ...]] = [cfg.depths] + [cfg.widths] * self.max_depth
        else:
            self.max_extra = max(cfg.extra_depths)
            self._choices = [cfg.conv1, cfg.conv2, cfg.conv3, cfg.extra_depths]
            self._choices += [cfg.extra_widths, cfg.extra_kernels] * self.max_extra
            self._choices += [cfg.fc]
        self.n_var = len(self._choices)
        self.xl = np.zeros(self.n_var, dtype=np.int64)
        self.xu = np.array([len(c) - 1 for c in self._choices], dtype=np.int64)

    # ------------------------------------------------------------------ encoding
    def encode(self, arch: Arch) -> np.ndarray:
        """The canonical gene vector of ``arch``; raises ArchError if it is not in the space."""
        genes = np.zeros(self.n_var, dtype=np.int64)
        if isinstance(arch, MLPArch) and self.kind == "mlp":
            genes[0] = self._index(0, len(arch.widths), "depth")
            for i, w in enumerate(arch.widths):
                genes[1 + i] = self._index(1 + i, w, f"widths[{i}]")
            return genes
        if isinstance(arch, CNNArch) and self.kind == "cnn":
            for i in range(3):
                genes[i] = self._index(i, arch.conv[i], f"conv{i + 1}")
            genes[3] = self._index(3, len(arch.extra), "number of extra convs")
            for j, (w, k) in enumerate(arch.extra):
                genes[4 + 2 * j] = self._index(4 + 2 * j, w, f"extra[{j}] width")
                genes[5 + 2 * j] = self._index(5 + 2 * j, k, f"extra[{j}] kernel")
            genes[-1] = self._index(self.n_var - 1, arch.fc, "fc")
            return genes
        raise ArchError(f"arch {arch} is not a {self.kind} arch")

    def decode(self, x: Any) -> Arch:
        """The arch of a gene vector (floats allowed if integral); checks length and bounds."""
        g = self._check(x)
        c = self._choices
        if self.kind == "mlp":
            depth = c[0][g[0]]
            return MLPArch(tuple(c[1 + i][g[1 + i]] for i in range(depth)))
        n_extra = c[3][g[3]]
        extra = tuple(
            (c[4 + 2 * j][g[4 + 2 * j]], c[5 + 2 * j][g[5 + 2 * j]]) for j in range(n_extra)
        )
        return CNNArch((c[0][g[0]], c[1][g[1]], c[2][g[2]]), extra, c[-1][g[-1]])

    def canonical(self, x: Any) -> np.ndarray:
        """Zero the genes of inactive layers; accepts one vector or a (n, n_var) matrix."""
        arr = _as_numeric(x, f"encoding: expected {self.n_var} integers or rows of them")
        if arr.ndim == 2:
            if arr.shape[1] != self.n_var:
                raise ArchError(f"encoding: expected rows of {self.n_var} genes, got {arr.shape}")
            if not len(arr):
                return np.zeros((0, self.n_var), dtype=np.int64)
            return np.stack([self.canonical(row) for row in arr])
        g = self._check(arr)
        if self.kind == "mlp":
            depth = self._choices[0][g[0]]
            g[1 + depth :] = 0
        else:
            n_extra = self._choices[3][g[3]]
            g[4 + 2 * n_extra : 4 + 2 * self.max_extra] = 0
        return g

    def key(self, x: Any) -> bytes:
        """A hashable cache key of the canonical form."""
        return self.canonical(x).tobytes()

    # ------------------------------------------------------------------ sampling
    def sample(self, rng: np.random.Generator) -> Arch:
        """A random arch: every gene uniform over its choices."""
        return self.decode(self.sample_encodings(rng, 1)[0])

    def sample_encodings(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` canonical gene vectors with every gene uniform over its choices."""
        x = rng.integers(self.xl, self.xu + 1, size=(n, self.n_var))
        return self.canonical(x)

    def largest(self) -> Arch:
        """The widest, deepest arch (largest kernels)."""
        return self.decode(self.xu)

    def smallest(self) -> Arch:
        """The narrowest, shallowest arch."""
        return self.decode(self.xl)

    def size(self) -> int:
        """Number of distinct networks in the space."""
        cfg = self.cfg
        if self.kind == "mlp":
            return sum(len(cfg.widths) ** d for d in cfg.depths)
        per_extra = len(cfg.extra_widths) * len(cfg.extra_kernels)
        trunk = len(cfg.conv1) * len(cfg.conv2) * len(cfg.conv3) * len(cfg.fc)
        return trunk * sum(per_extra**e for e in cfg.extra_depths)

    def default_teacher(self) -> Arch:
        """The space's teacher: 2 x 64 MLP, or the Nature CNN (32/64/64, FC 512)."""
        if self.kind == "mlp":
            return self.check(MLPArch((64, 64)))
        return self.check(CNNArch((32, 64, 64), (), 512))

    def check(self, arch: Arch) -> Arch:
        """Return ``arch`` if it belongs to the space, else raise ArchError."""
        self.encode(arch)
        return arch

    def contains(self, arch: Arch) -> bool:
        try:
            self.encode(arch)
        except ArchError:
            return False
        return True

    @property
    def choices(self) -> list[tuple[int, ...]]:
        """The value list of every gene."""
        return list(self._choices)

    # ------------------------------------------------------------------ internals
    def _index(self, gene: int, value: int, what: str) -> int:
        options = self._choices[gene]
        if value not in options:
            raise ArchError(f"arch {what} = {value} is not in the space's choices {list(options)}")
        return options.index(value)

    def _check(self, x: Any) -> np.ndarray:
        arr = _as_numeric(x, f"encoding: expected {self.n_var} integers")
        if arr.shape != (self.n_var,):
            raise ArchError(f"encoding: expected shape ({self.n_var},), got {arr.shape}")
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ArchError(f"encoding: genes must be integers, got {arr.tolist()}")
        # Bounds on the float values: casting 1e300 to int64 first would wrap around.
        bad = np.flatnonzero((arr < self.xl) | (arr > self.xu))
        if bad.size:
            i = int(bad[0])
            raise ArchError(
                f"encoding: gene {i} = {arr[i]:g} is outside [{self.xl[i]}, {self.xu[i]}]"
            )
        return arr.astype(np.int64)


def _as_numeric(x: Any, what: str) -> np.ndarray:
    """``x`` as a float64 array; only int/uint/float data (no strings, bools, objects)."""
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError, OverflowError):  # ragged lists, odd objects
        raise ArchError(f"{what}, got {_short(x)}") from None
    if arr.dtype.kind not in "iuf":
        raise ArchError(f"{what}, got {_short(x)} (dtype {arr.dtype})")
    return arr.astype(np.float64)


def _short(x: Any) -> str:
    try:
        text = repr(x)
    except Exception:  # a message must never raise (e.g. ints past 4300 digits)
        text = f"<{type(x).__name__}>"
    return text if len(text) <= 120 else text[:117] + "..."
