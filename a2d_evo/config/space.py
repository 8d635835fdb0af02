"""The ``space`` section: an MLP space, or a CNN space declared layer by layer (the Nature
trunk the default); each layer checked and named in its errors (``space.conv[2].kernels``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from a2d_evo.config.bounds import MAX_KERNEL, MAX_LAYERS, MAX_STRIDE, MAX_WIDTH, check_bounds
from a2d_evo.errors import ConfigError


@dataclass(frozen=True)
class ConvLayerConfig:
    """One conv layer of a declared CNN space (an entry of ``space.conv``); checked by
    :class:`SpaceConfig`, which names the layer in its errors (``space.conv[2].kernels``)."""

    widths: tuple[int, ...] = ()
    """Output-channel choices: strictly increasing, at most 16384 (:data:`MAX_WIDTH`)."""
    kernel: int | None = None
    """Fixed square kernel size (1 to 15). Give ``kernel`` or ``kernels``, not both."""
    kernels: tuple[int, ...] = ()
    """Elastic kernel choices (odd, strictly increasing, at most 15) of a same-padded stride-1
    layer; a smaller kernel is the centre crop of the largest. One entry = a fixed kernel."""
    stride: int = 1
    """Stride (1 to 8)."""
    padding: Literal["valid", "same"] = "valid"
    """``valid``: none; ``same``: ``k // 2`` zeros each side (odd kernels only), so a stride-1
    layer keeps its input's height and width."""
    optional: bool = False
    """The search may skip the layer. Only same-padded stride-1 layers after the first, so
    that skipping one never changes the map the FC layer sees."""

    @property
    def kernel_choices(self) -> tuple[int, ...]:
        """The kernel sizes this layer may take (one for a fixed kernel)."""
        return self.kernels if self.kernel is None else (self.kernel,)


Conv = ConvLayerConfig
NATURE_TRUNK: tuple[tuple[int, int], ...] = ((8, 4), (4, 2), (3, 1))
"""``(kernel, stride)`` of the Nature CNN's three valid convs (Mnih et al. 2015): the one place
the trunk is written (the default space, old-format conversions and import-teacher read it)."""

NATURE_CONV: tuple[ConvLayerConfig, ...] = (
    Conv(widths=(8, 16, 24, 32, 48, 64), kernel=NATURE_TRUNK[0][0], stride=NATURE_TRUNK[0][1]),
    Conv(widths=(16, 32, 48, 64, 96, 128), kernel=NATURE_TRUNK[1][0], stride=NATURE_TRUNK[1][1]),
    Conv(widths=(16, 32, 48, 64, 96, 128), kernel=NATURE_TRUNK[2][0], stride=NATURE_TRUNK[2][1]),
    Conv(widths=(16, 32, 48, 64, 96, 128), kernels=(3, 5), padding="same", optional=True),
    Conv(widths=(16, 32, 48, 64, 96, 128), kernels=(3, 5), padding="same", optional=True),
)
"""The default CNN space: the Nature trunk (8x8/4, 4x4/2, 3x3/1, valid: 84 -> 20 -> 9 -> 7)
and two optional same-padded convs with elastic 3/5 kernels (docs/spaces.md)."""


@dataclass(frozen=True)
class SpaceConfig:
    """The search space. ``kind: mlp`` (vector observations) or ``cnn`` (image observations:
    ALE frames, MinAtar planes, any env with (C, H, W) images), declared layer by layer."""

    kind: Literal["mlp", "cnn"] = "mlp"
    """Network family; must be ``cnn`` for Atari ids and image observations, ``mlp`` for
    vector observations."""
    depths: tuple[int, ...] = (1, 2, 3, 4)
    """MLP: allowed numbers of hidden layers (at most 64)."""
    widths: tuple[int, ...] = (4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
    """MLP: allowed widths of each hidden layer. Every width, channel count and FC width of
    the space is at most 16384 (:data:`MAX_WIDTH`)."""
    conv: tuple[ConvLayerConfig, ...] = NATURE_CONV
    """CNN: the conv layers in order, each ``{widths, kernel | kernels, stride, padding,
    optional}`` (:class:`ConvLayerConfig`; at most 64 layers, the first not optional).
    Default: the Nature trunk plus two optional same-padded convs (:data:`NATURE_CONV`)."""
    fc: tuple[int, ...] = (64, 128, 256, 512, 1024)
    """CNN: widths of the fully connected hidden layer after the convs."""

    def __post_init__(self) -> None:
        for name in ("depths", "widths", "fc"):
            _check_widths(f"space.{name}", getattr(self, name))
        check_bounds("space.depths", max(self.depths), 1, MAX_LAYERS)
        if not self.conv:
            raise ConfigError("space.conv: expected a non-empty list of conv layers")
        if len(self.conv) > MAX_LAYERS:
            raise ConfigError(f"space.conv: at most {MAX_LAYERS} layers, got {len(self.conv)}")
        for i, layer in enumerate(self.conv):
            _check_conv_layer(f"space.conv[{i}]", layer, first=i == 0)

    @classmethod
    def nature(
        cls,
        conv1: tuple[int, ...] = NATURE_CONV[0].widths,
        conv2: tuple[int, ...] = NATURE_CONV[1].widths,
        conv3: tuple[int, ...] = NATURE_CONV[2].widths,
        extra: int = 2,
        extra_widths: tuple[int, ...] = NATURE_CONV[3].widths,
        extra_kernels: tuple[int, ...] = NATURE_CONV[3].kernels,
        fc: tuple[int, ...] = (64, 128, 256, 512, 1024),
    ) -> SpaceConfig:
        """A Nature-shaped CNN space: conv1-3 (8x8/4, 4x4/2, 3x3/1, valid) with these widths,
        then ``extra`` optional same-padded stride-1 convs. The conversion of the keys before
        [K]: ``conv1/conv2/conv3``, ``extra_widths``, ``extra_kernels`` and ``fc`` keep their
        meaning, ``extra = max(extra_depths)`` (docs/spaces.md)."""
        trunk = tuple(
            Conv(widths=w, kernel=k, stride=s)
            for w, (k, s) in zip((conv1, conv2, conv3), NATURE_TRUNK, strict=True)
        )
        opt = Conv(widths=extra_widths, kernels=extra_kernels, padding="same", optional=True)
        return cls(kind="cnn", conv=trunk + (opt,) * extra, fc=fc)


def _check_widths(key: str, values: tuple[int, ...]) -> None:
    if not values or any(v < 1 for v in values):
        raise ConfigError(f"{key}: expected a non-empty list of positive integers")
    if list(values) != sorted(set(values)):
        raise ConfigError(f"{key}: expected strictly increasing values, got {list(values)}")
    check_bounds(key, max(values), 1, MAX_WIDTH)


def _check_conv_layer(key: str, layer: ConvLayerConfig, first: bool) -> None:
    if not isinstance(layer, ConvLayerConfig):
        raise ConfigError(f"{key}: expected a conv layer mapping, got {type(layer).__name__}")
    _check_widths(f"{key}.widths", layer.widths)
    if (layer.kernel is None) == (not layer.kernels):
        raise ConfigError(
            f"{key}: give kernel (a fixed size) or kernels (elastic choices), exactly one of them"
        )
    kname = f"{key}.kernel" if layer.kernel is not None else f"{key}.kernels"
    ks = layer.kernel_choices
    if any(k < 1 for k in ks) or list(ks) != sorted(set(ks)):
        raise ConfigError(f"{kname}: expected strictly increasing positive sizes, got {list(ks)}")
    check_bounds(kname, max(ks), 1, MAX_KERNEL)
    check_bounds(f"{key}.stride", layer.stride, 1, MAX_STRIDE)
    same = layer.padding == "same"
    if same and any(k % 2 == 0 for k in ks):
        raise ConfigError(f"{kname}: a same-padded layer needs odd kernels, got {list(ks)}")
    if len(ks) > 1 and not (same and layer.stride == 1):
        raise ConfigError(
            f"{kname}: elastic kernels {list(ks)} need padding: same and stride: 1 (the map size "
            "must not depend on the kernel); give one kernel for this layer"
        )
    if len(ks) > 1 and any((ks[-1] - k) % 2 for k in ks):
        raise ConfigError(f"{kname}: elastic kernels must all be odd, got {list(ks)}")
    if layer.optional and first:
        raise ConfigError(f"{key}.optional: the first conv layer cannot be optional")
    if layer.optional and not (same and layer.stride == 1):
        raise ConfigError(
            f"{key}.optional: only same-padded stride-1 layers may be optional (skipping one "
            "must not change the map size)"
        )
