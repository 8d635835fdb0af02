"""Architectures as values, and the one object that encodes, decodes and samples them.

An encoding is one integer gene per choice: the index of the chosen value in its list.
MLP genes: ``[depth, width_1, ..., width_maxdepth]``. CNN genes, layer by layer of the
declared ``space.conv``: ``[on]`` when the layer is optional, ``width``, ``[kernel]`` when its
kernel is elastic; then ``fc``. ``canonical`` zeroes the genes of inactive layers, so two
vectors that build the same network are the same vector.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import numpy as np

from a2d_evo.config import SpaceConfig
from a2d_evo.config.bounds import MAX_WIDTH
from a2d_evo.config.space import NATURE_TRUNK
from a2d_evo.errors import ArchError


@dataclass(frozen=True)
class MLPArch:
    """A tanh MLP: the widths of its hidden layers (depth = their number)."""

    widths: tuple[int, ...]

    kind = "mlp"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "mlp", "widths": list(self.widths)}

    def map_widths(self, fn: Any) -> MLPArch:
        """The same arch with every width ``w`` replaced by ``fn(w)``."""
        return MLPArch(tuple(int(fn(w)) for w in self.widths))

    def __str__(self) -> str:
        return "mlp-" + "x".join(map(str, self.widths))


Padding: TypeAlias = Literal["valid", "same"]


@dataclass(frozen=True)
class ConvLayer:
    """One active conv layer: ``width`` output channels, a ``kernel x kernel`` window, its
    stride and padding (``same``: ``kernel // 2`` zeros each side; ``valid``: none)."""

    width: int
    kernel: int
    stride: int = 1
    padding: Padding = "valid"

    @property
    def pad(self) -> int:
        """Zeros added on each side of the input."""
        return self.kernel // 2 if self.padding == "same" else 0

    def out_size(self, n: int) -> int:
        """Output height (or width) for an input of ``n`` rows (columns)."""
        return (n + 2 * self.pad - self.kernel) // self.stride + 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "kernel": self.kernel,
            "stride": self.stride,
            "padding": self.padding,
        }

    def __str__(self) -> str:
        stride = f"s{self.stride}" if self.stride != 1 else ""
        return f"{self.width}k{self.kernel}{stride}{'p' if self.padding == 'same' else ''}"


@dataclass(frozen=True)
class CNNArch:
    """A ReLU CNN: conv layers in the order of the space's ``space.conv`` (None for a skipped
    optional layer; trailing ones are dropped), then one FC hidden layer of width ``fc``.

    Self-contained: kernels, strides and paddings are in the value, so an agent folder
    rebuilds its network without the config. Layer ``i`` is the supernet's ``convs.i``.
    """

    convs: tuple[ConvLayer | None, ...]
    fc: int

    kind = "cnn"

    def __post_init__(self) -> None:
        convs = tuple(self.convs)
        while convs and convs[-1] is None:
            convs = convs[:-1]
        if not convs or convs[0] is None:
            raise ArchError("arch.convs: a CNN needs its first conv layer")
        object.__setattr__(self, "convs", convs)

    @classmethod
    def nature(
        cls,
        conv: tuple[int, int, int] = (32, 64, 64),
        extra: tuple[tuple[int, int], ...] = (),
        fc: int = 512,
    ) -> CNNArch:
        """A point of the Nature-shaped space: conv1-3 widths (8x8/4, 4x4/2, 3x3/1, valid),
        then ``(width, kernel)`` same-padded stride-1 extra convs, then the FC width. The
        defaults are the Nature CNN (the Atari teacher)."""
        trunk = [ConvLayer(w, k, s) for w, (k, s) in zip(conv, NATURE_TRUNK, strict=True)]
        return cls((*trunk, *(ConvLayer(w, k, 1, "same") for w, k in extra)), fc)

    @property
    def active(self) -> list[tuple[int, ConvLayer]]:
        """``(layer index, layer)`` of the layers that run, in order."""
        return [(i, c) for i, c in enumerate(self.convs) if c is not None]

    @property
    def last_width(self) -> int:
        """Channels of the map the FC layer sees."""
        return self.active[-1][1].width

    def map_widths(self, fn: Any) -> CNNArch:
        """The same arch with every conv and FC width ``w`` replaced by ``fn(w)``."""
        convs = tuple(
            None if c is None else ConvLayer(int(fn(c.width)), c.kernel, c.stride, c.padding)
            for c in self.convs
        )
        return CNNArch(convs, int(fn(self.fc)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "cnn",
            "convs": [None if c is None else c.to_dict() for c in self.convs],
            "fc": self.fc,
        }

    def __str__(self) -> str:
        layers = "-".join("_" if c is None else str(c) for c in self.convs)
        return f"cnn-{layers}-fc{self.fc}"


Arch: TypeAlias = MLPArch | CNNArch


def arch_from_dict(data: Any) -> Arch:
    """Rebuild an arch from its ``to_dict`` form; raises :class:`ArchError` on bad data.

    Also reads the Nature-only CNN form of agent format 1 and of older configs
    (``{"kind": "cnn", "conv": [c1, c2, c3], "extra": [[width, kernel], ...], "fc": f}``),
    which meant :meth:`CNNArch.nature`. In a conv layer, ``stride`` (default 1) and
    ``padding`` (default ``valid``) may be left out.
    """
    if not isinstance(data, Mapping):
        raise ArchError(f"arch: expected a mapping, got {type(data).__name__}")
    kind = data.get("kind")
    try:
        if kind == "mlp":
            _expect_keys(data, {"kind", "widths"})
            listed = _as_list(data["widths"], "widths")
            if len(listed) > _MAX_LAYERS:
                raise ArchError(f"arch.widths: at most {_MAX_LAYERS} layers, got {len(listed)}")
            widths = tuple(_pos_int(w, "widths") for w in listed)
            if not widths:
                raise ArchError("arch.widths: an MLP needs at least one hidden layer")
            return MLPArch(widths)
        if kind == "cnn" and "conv" in data:  # agent format 1: the Nature trunk
            _expect_keys(data, {"kind", "conv", "extra", "fc"})
            conv = tuple(_pos_int(c, "conv") for c in _as_list(data["conv"], "conv"))
            if len(conv) != 3:
                raise ArchError(f"arch.conv: expected 3 widths, got {len(conv)}")
            extra = []
            listed = _as_list(data["extra"], "extra")
            if len(listed) > _MAX_LAYERS:
                raise ArchError(f"arch.extra: at most {_MAX_LAYERS} layers, got {len(listed)}")
            for item in listed:
                pair = _as_list(item, "extra[]")
                if len(pair) != 2:
                    raise ArchError("arch.extra: each entry is [width, kernel]")
                k = _pos_int(pair[1], "extra kernel")
                if k % 2 == 0:
                    raise ArchError(f"arch.extra: kernels of same-padded convs are odd, got {k}")
                extra.append((_pos_int(pair[0], "extra width"), k))
            fc = _pos_int(data["fc"], "fc")
            return CNNArch.nature((conv[0], conv[1], conv[2]), tuple(extra), fc)
        if kind == "cnn":
            _expect_keys(data, {"kind", "convs", "fc"})
            layers = _as_list(data["convs"], "convs")
            if len(layers) > _MAX_LAYERS:
                raise ArchError(f"arch.convs: at most {_MAX_LAYERS} layers, got {len(layers)}")
            convs = tuple(_conv_layer(c, i) for i, c in enumerate(layers))
            return CNNArch(convs, _pos_int(data["fc"], "fc"))
    except KeyError as exc:
        raise ArchError(f"arch: missing key {exc.args[0]!r}") from None
    raise ArchError(f"arch.kind: expected 'mlp' or 'cnn', got {kind!r}")


_MAX_LAYERS = 64


def _conv_layer(data: Any, i: int) -> ConvLayer | None:
    if data is None:
        return None
    where = f"convs[{i}]"
    if not isinstance(data, Mapping):
        raise ArchError(f"arch.{where}: expected a mapping or null, got {type(data).__name__}")
    unknown = set(data) - {"width", "kernel", "stride", "padding"}
    if unknown:
        raise ArchError(f"arch.{where}: unknown keys {sorted(map(str, unknown))}")
    padding = data.get("padding", "valid")
    if padding not in ("valid", "same"):
        raise ArchError(f"arch.{where}.padding: expected 'valid' or 'same', got {padding!r}")
    kernel = _pos_int(data["kernel"], f"{where}.kernel")
    if padding == "same" and kernel % 2 == 0:
        raise ArchError(f"arch.{where}.kernel: a same-padded kernel is odd, got {kernel}")
    return ConvLayer(
        _pos_int(data["width"], f"{where}.width"),
        kernel,
        _pos_int(data.get("stride", 1), f"{where}.stride"),
        padding,
    )


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
    """A positive int of at most :data:`~a2d_evo.config.bounds.MAX_WIDTH`: no width, kernel,
    stride or FC size of a real arch is larger, and an arch read from a file builds its
    layers before any weight is read (the bound keeps that cheap)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ArchError(f"arch.{name}: expected a positive int, got {value!r}")
    if value > MAX_WIDTH:
        raise ArchError(f"arch.{name}: at most {MAX_WIDTH}, got {value}")
    return int(value)


class _LayerGenes:
    """Where one declared conv layer's genes sit: its on/off gene (optional layers), its width
    gene and its kernel gene (elastic kernels); -1 where the layer has none."""

    def __init__(self, on: int, width: int, kernel: int) -> None:
        self.on, self.width, self.kernel = on, width, kernel


ON_OFF = (0, 1)
"""The choices of an optional layer's on/off gene: 0 skips the layer, 1 runs it."""


class SearchSpace:
    """Encode, decode, bound, sample and canonicalise the archs of one space config."""

    def __init__(self, cfg: SpaceConfig) -> None:
        self.cfg = cfg
        self.kind = cfg.kind
        self._layers: list[_LayerGenes] = []
        if cfg.kind == "mlp":
            self.max_depth = max(cfg.depths)
            self._choices: list[tuple[int, ...]] = [cfg.depths] + [cfg.widths] * self.max_depth
        else:
            self._choices = []
            for layer in cfg.conv:
                on = self._add(ON_OFF) if layer.optional else -1
                width = self._add(layer.widths)
                ks = layer.kernel_choices
                kernel = self._add(ks) if len(ks) > 1 else -1
                self._layers.append(_LayerGenes(on, width, kernel))
            self._choices.append(cfg.fc)
        self.n_var = len(self._choices)
        self.xl = np.zeros(self.n_var, dtype=np.int64)
        self.xu = np.array([len(c) - 1 for c in self._choices], dtype=np.int64)

    def _add(self, choices: tuple[int, ...]) -> int:
        self._choices.append(tuple(choices))
        return len(self._choices) - 1

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
            decl = self.cfg.conv
            if len(arch.convs) > len(decl):
                raise ArchError(
                    f"arch {arch} has {len(arch.convs)} conv layers, the space {len(decl)}"
                )
            for i, (layer, lg) in enumerate(zip(decl, self._layers, strict=True)):
                conv = arch.convs[i] if i < len(arch.convs) else None
                if conv is None:
                    if not layer.optional:
                        raise ArchError(f"arch {arch} skips conv layer {i}, which is not optional")
                    continue
                if (conv.stride, conv.padding) != (layer.stride, layer.padding):
                    raise ArchError(
                        f"arch {arch}: conv layer {i} has stride {conv.stride}, padding "
                        f"{conv.padding!r}; the space's has {layer.stride}, {layer.padding!r}"
                    )
                if lg.on >= 0:
                    genes[lg.on] = 1
                genes[lg.width] = self._index(lg.width, conv.width, f"conv[{i}] width")
                if lg.kernel >= 0:
                    genes[lg.kernel] = self._index(lg.kernel, conv.kernel, f"conv[{i}] kernel")
                elif conv.kernel != layer.kernel_choices[0]:
                    raise ArchError(
                        f"arch conv[{i}] kernel = {conv.kernel}, the space's layer has kernel "
                        f"{layer.kernel_choices[0]}"
                    )
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
        convs: list[ConvLayer | None] = []
        for layer, lg in zip(self.cfg.conv, self._layers, strict=True):
            if lg.on >= 0 and g[lg.on] == 0:
                convs.append(None)
                continue
            k = c[lg.kernel][g[lg.kernel]] if lg.kernel >= 0 else layer.kernel_choices[0]
            convs.append(ConvLayer(c[lg.width][g[lg.width]], k, layer.stride, layer.padding))
        return CNNArch(tuple(convs), c[-1][g[-1]])

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
        g[~self.active_genes(g)] = 0
        return g

    def active_genes(self, x: Any) -> np.ndarray:
        """A bool mask of the genes that take part in ``x``'s network (the depth and the
        widths it uses; every on/off gene, and the width and kernel of the layers that are on):
        changing an active gene changes the network, changing another one does not."""
        g = self._check(x)
        mask = np.ones(self.n_var, dtype=bool)
        if self.kind == "mlp":
            mask[1 + self._choices[0][g[0]] :] = False
            return mask
        for lg in self._layers:
            if lg.on >= 0 and g[lg.on] == 0:
                mask[lg.width] = False
                if lg.kernel >= 0:
                    mask[lg.kernel] = False
        return mask

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
        """The narrowest, shallowest arch: every gene at its first choice, optional layers
        off (the sandwich rule's lower end, as in BigNAS). Not always the cheapest in FLOPs: in
        a declared space whose optional conv can be narrower than the layer before it, switching
        it on may shrink the FC input by more than it costs (the counterpart of
        :func:`~a2d_evo.nets.cost.costliest`)."""
        return self.decode(self.xl)

    def size(self) -> int:
        """Number of distinct networks in the space."""
        cfg = self.cfg
        if self.kind == "mlp":
            return sum(len(cfg.widths) ** d for d in cfg.depths)
        total = len(cfg.fc)
        for layer in cfg.conv:
            per = len(layer.widths) * len(layer.kernel_choices)
            total *= per + 1 if layer.optional else per
        return total

    def default_teacher(self) -> Arch:
        """The space's teacher when the config names none: the 2 x 64 MLP, in the space or not
        (a teacher trains on its own; any MLP fits a vector env); the Nature CNN (32/64/64, FC
        512) when the space holds it; else every required conv layer and the FC at the middle
        of their choices (largest kernel), the optional layers skipped."""
        if self.kind == "mlp":
            return MLPArch((64, 64))
        nature = CNNArch.nature()
        if self.contains(nature):
            return nature
        convs = [
            None
            if layer.optional
            else ConvLayer(
                layer.widths[len(layer.widths) // 2],
                layer.kernel_choices[-1],
                layer.stride,
                layer.padding,
            )
            for layer in self.cfg.conv
        ]
        return self.check(CNNArch(tuple(convs), self.cfg.fc[len(self.cfg.fc) // 2]))

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
    def layer_genes(self) -> list[tuple[int, int, int]]:
        """CNN: per declared conv layer, the indices of its ``(on, width, kernel)`` genes (-1
        where the layer has no such gene: not optional, fixed kernel)."""
        return [(lg.on, lg.width, lg.kernel) for lg in self._layers]

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
