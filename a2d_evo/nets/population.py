"""One forward for a whole population: row groups through different subnets of one supernet.

:class:`PopulationForward` packs a :class:`~a2d_evo.nets.supernet.Supernet`'s weights once
(:func:`pack_supernet`, the layout of :mod:`a2d_evo.ops.subnet_eval`) and then computes, per
call, the logits and values of a batch whose consecutive row groups belong to different
subnets, with the native op when it is the fastest path here. Each group only touches its
subnet's active layers and channels. The reference twin (:func:`reference_forward`) is the
per-subnet torch loop of :meth:`Supernet.forward_groups`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from a2d_evo.errors import ArchError, KernelInputError
from a2d_evo.nets.space import Arch, MLPArch
from a2d_evo.nets.supernet import Supernet
from a2d_evo.ops.dispatch import native_module, native_op, reference_forced
from a2d_evo.ops.subnet_eval import (
    PANEL,
    PackedSupernet,
    Packer,
    native_limits,
    pack_meta,
    round_up,
    subnet_eval_backend,
)

__all__ = ["PopulationForward", "arch_table", "pack_supernet", "reference_forward"]


def _np(t: torch.Tensor | None) -> np.ndarray:
    if t is None:
        raise ArchError("supernet layers must have biases")
    return t.detach().to("cpu", torch.float32).numpy()


def unsupported_by_native(supernet: Supernet, device: str = "cpu") -> str:
    """Why the native kernel cannot take this supernet on ``device`` (``cpu`` or ``cuda``; ""
    when it can, or when there is no native module: then nothing runs natively anyway). Its
    limits come from the native module."""
    limits = native_limits()
    if limits is None:
        return ""
    cfg = supernet.space.cfg
    if not supernet.image:
        if max(cfg.depths) > limits["max_mlp_layers"]:
            return (
                f"at most {limits['max_mlp_layers']} hidden layers, the space has {max(cfg.depths)}"
            )
        first = cast(nn.Linear, cast(nn.ModuleList, supernet.layers)[0])
        widest = max(first.in_features, round_up(first.out_features, 8))
        largest = max(widest, round_up(supernet.n_actions + 1, 8))
        if largest > limits["max_mlp_dim"]:
            return (
                f"inputs, padded widths and heads up to {limits['max_mlp_dim']:,}, the supernet "
                f"has {largest:,}"
            )
        if device == "cuda" and widest > limits["cuda_mlp_max_width"]:
            return (
                f"on CUDA, inputs and hidden widths (padded to 8) up to "
                f"{limits['cuda_mlp_max_width']} (the kernel's shared memory), the supernet has "
                f"{widest}"
            )
        return ""
    if len(cfg.conv) > limits["max_conv_layers"]:
        return (
            f"at most {limits['max_conv_layers']} conv layers, the space declares {len(cfg.conv)}"
        )
    c_in, h, w = supernet.obs_shape
    sizes = {
        "observation channels": c_in,
        "observation height": h,
        "observation width": w,
        "padded FC width": round_up(max(cfg.fc), PANEL),
        "padded heads (actions + value)": round_up(supernet.n_actions + 1, 8),
        **{f"space.conv[{i}] width": max(conv.widths) for i, conv in enumerate(cfg.conv)},
    }
    for what, size in sizes.items():
        if size > limits["max_cnn_dim"]:
            return f"{what} up to {limits['max_cnn_dim']:,}, the supernet has {size:,}"
    if h * w > limits["max_cnn_plane"]:
        return f"images of up to {limits['max_cnn_plane']:,} pixels, the supernet's has {h * w:,}"
    fc_rows = cast(nn.Linear, supernet.fc).in_features  # the map's area times the last widest
    if fc_rows > limits.get("max_cnn_fc_rows", fc_rows):  # a module built before the key: none
        return (
            f"an FC input of up to {limits['max_cnn_fc_rows']:,} values, the supernet's takes "
            f"{fc_rows:,}"
        )
    for i, conv in enumerate(cfg.conv):
        kernel = max(conv.kernel_choices)
        if kernel > limits["max_kernel_size"] or conv.stride > limits["max_stride"]:
            return (
                f"space.conv[{i}]: kernels up to {limits['max_kernel_size']} and strides up to "
                f"{limits['max_stride']}, the layer has kernel {kernel} and stride {conv.stride}"
            )
    return ""


def pack_supernet(supernet: Supernet) -> PackedSupernet:
    """The supernet's weights packed for the native kernel (done once per weight version).

    Needs the native module: the ``meta`` layout is the one it defines (KernelInputError without).
    """
    n_act = supernet.n_actions
    policy, value = cast(nn.Linear, supernet.policy), cast(nn.Linear, supernet.value)
    sigma = supernet.value_unit  # raw values, as the extracted agents output them
    heads_w = np.concatenate([_np(policy.weight), _np(value.weight) * sigma])
    heads_b = np.concatenate([_np(policy.bias), _np(value.bias) * sigma])
    ldh = round_up(n_act + 1, 8)
    pk = Packer()
    if not supernet.image:
        layers = [cast(nn.Linear, m) for m in cast(nn.ModuleList, supernet.layers)]
        wmax = layers[0].out_features
        obs_dim = layers[0].in_features
        ldw = round_up(wmax, 8)
        # the MLP kernel reads obs as they are: obs_scale is folded into the first layer
        scales = [supernet.obs_scale] + [1.0] * (len(layers) - 1)
        off_w = [pk.cols(_np(layer.weight).T * np.float32(k), ldw)
                 for layer, k in zip(layers, scales, strict=True)]  # fmt: skip
        off_b = [pk.vec(_np(layer.bias), ldw) for layer in layers]
        hw, hb = pk.cols(heads_w.T, ldh), pk.vec(heads_b, ldh)
        meta = pack_meta(
            "mlp",
            {
                "obs_dim": obs_dim,
                "depth_max": len(layers),
                "width_max": wmax,
                "ldw": ldw,
                "n_actions": n_act,
                "ldh": ldh,
                "off_head_w": hw,
                "off_head_b": hb,
                "off_w": off_w,
                "off_b": off_b,
            },
        )
        return PackedSupernet("mlp", pk.buffer(), meta, 1 + len(layers), n_act)

    c_in, h, w = supernet.obs_shape
    decl = supernet.space.cfg.conv
    why = unsupported_by_native(supernet)
    if why:
        raise KernelInputError(f"the native subnet_eval kernel takes {why}")
    convs = [cast(nn.Conv2d, m) for m in cast(nn.ModuleList, supernet.convs)]
    fc = cast(nn.Linear, supernet.fc)
    fc_max = fc.out_features
    area = int(supernet.trunk_area)
    c_last = fc.in_features // area
    if c_last * area != fc.in_features:
        raise ArchError("supernet FC input does not match its last conv widths")
    ldf = round_up(fc_max, PANEL)
    arrays: dict[str, list[int]] = {
        name: []
        for name in (
            *("width_max", "cin_max", "kernel_max", "stride", "same", "elastic"),
            *("optional", "off_w", "off_b"),
        )
    }
    for i, (layer, conv) in enumerate(zip(decl, convs, strict=True)):
        cout, cin, k = conv.out_channels, conv.in_channels, conv.kernel_size[0]
        same = layer.padding == "same"
        elastic = len(layer.kernel_choices) > 1
        # The first layer runs over the space-to-depth(q) image when its kernel is a multiple
        # of its stride (the kernel's rule, csrc/subnet_eval.h): rows (ty, tx, ci, dy, dx).
        q = layer.stride if i == 0 and not same and not elastic and k % layer.stride == 0 else 1
        wi = _np(conv.weight).reshape(cout, cin, k // q, q, k // q, q).transpose(2, 4, 1, 3, 5, 0)
        for name, entry in (
            ("width_max", cout),
            ("cin_max", cin),
            ("kernel_max", k),
            ("stride", layer.stride),
            ("same", int(same)),
            ("elastic", int(elastic)),
            ("optional", int(layer.optional)),
            ("off_w", pk.panels(wi.reshape(-1, cout))),
            ("off_b", pk.vec(_np(conv.bias), round_up(cout, PANEL))),
        ):
            arrays[name].append(entry)
    # FC rows (position, channel): torch flattens (C, H, W) channel-major.
    wf = _np(fc.weight).reshape(fc_max, c_last, area).transpose(2, 1, 0)
    fw, fb = pk.panels(wf.reshape(-1, fc_max)), pk.vec(_np(fc.bias), ldf)
    hw, hb = pk.cols(heads_w.T, ldh), pk.vec(heads_b, ldh)
    scale_bits = int(np.array(supernet.obs_scale, np.float32).view(np.uint32))
    meta = pack_meta(
        "cnn",
        {
            "c_in": c_in,
            "h_in": h,
            "w_in": w,
            "n_layers": len(decl),
            "obs_scale_f32_bits": scale_bits,
            "fc_max": fc_max,
            "c_last_max": c_last,
            "ldf": ldf,
            "n_actions": n_act,
            "ldh": ldh,
            "off_fc_w": fw,
            "off_fc_b": fb,
            "off_head_w": hw,
            "off_head_b": hb,
            **arrays,
        },
    )
    return PackedSupernet("cnn", pk.buffer(), meta, 2 * len(decl) + 1, n_act)


def _arch_row(arch: Arch, arch_len: int) -> list[int]:
    if isinstance(arch, MLPArch):
        row = [len(arch.widths), *arch.widths]
    else:
        row = []
        for i in range((arch_len - 1) // 2):
            c = arch.convs[i] if i < len(arch.convs) else None
            row += [0, 0] if c is None else [c.width, c.kernel]
        row.append(arch.fc)
    return row + [0] * (arch_len - len(row))


def arch_table(archs: Sequence[Arch], arch_len: int) -> np.ndarray:
    """The kernel's int32 arch table: one row per group."""
    return np.asarray([_arch_row(a, arch_len) for a in archs], np.int32).reshape(-1, arch_len)


@torch.no_grad()
def reference_forward(
    supernet: Supernet, obs: torch.Tensor, group_archs: Sequence[Arch], group_sizes: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference twin: every group through its own subnet with torch, concatenated
    (values raw: the head's output times the supernet's value unit)."""
    kept = [(a, n) for a, n in zip(group_archs, group_sizes, strict=True) if n > 0]
    if not kept:
        return (
            obs.new_zeros((0, supernet.n_actions), dtype=torch.float32),
            obs.new_zeros((0,), dtype=torch.float32),
        )
    out = supernet.forward_groups(obs, [a for a, _ in kept], [n for _, n in kept])
    return out.logits, out.value * supernet.value_unit  # raw values, as the native path


class PopulationForward:
    """Logits and values for row groups that belong to different subnets of one supernet.

    Built once from a supernet (packs its weights); call :meth:`refresh` after the weights
    change. ``backend`` (``native`` / ``reference``) defaults to the fastest measured path
    for this device and network kind; ``backend_name`` says which one runs.
    """

    def __init__(
        self,
        supernet: Supernet,
        device: torch.device | str | None = None,
        backend: str | None = None,
    ) -> None:
        self.supernet = supernet
        self.device = torch.device(device or "cpu")
        if self.device.type == "cuda" and self.device.index is None and torch.cuda.is_available():
            # pinned now: a bare "cuda" is whichever GPU is current at each call, and the
            # packed weights live on the one current at refresh()
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.kind = "cnn" if supernet.image else "mlp"
        self._dev = "cuda" if self.device.type == "cuda" else "cpu"
        # the device the native ops are asked about: that GPU's capability, not the current's
        self._op_device = str(self.device) if self._dev == "cuda" else "cpu"
        if backend not in (None, "native", "reference"):
            raise ValueError(f"backend: expected 'native' or 'reference', got {backend!r}")
        self._forced = backend
        self._rows_cache: dict[Arch, list[int]] = {}
        self.refresh()

    # ------------------------------------------------------------------ setup
    @property
    def backend(self) -> str:
        """``native`` or ``reference`` (re-read each call: the env var can force the reference)."""
        if reference_forced():
            return "reference"
        if self._native is None:
            if self._forced == "native":
                raise KernelInputError(
                    f"the native subnet_eval kernel is not available on {self._dev}"
                )
            return "reference"  # e.g. the env var was set at the last refresh()
        return self._forced or subnet_eval_backend(self.kind, self._op_device)

    def _path(self) -> tuple[str, str | None]:
        """The path that runs and its CPU dispatch: ``("native-cpu", "avx2-fma")``,
        ``("reference-cpu", None)``, ``("native-cuda", None)``."""
        if self.backend == "reference":  # it runs where the weights are (__call__)
            return f"reference-{next(self.supernet.parameters()).device.type}", None
        if self._dev == "cpu":
            isa = native_op("subnet_eval_isa")
            return "native-cpu", isa() if callable(isa) else "?"
        return "native-cuda", None

    @property
    def backend_name(self) -> str:
        """A human-readable name of the path that runs, e.g. ``native-cpu (avx2-fma)``."""
        path, isa = self._path()
        if self.backend == "reference":
            why = f"; native kernel: {self._unsupported}" if self._unsupported else ""
            return f"{path} (per-subnet torch loop{why})"
        return path if isa is None else f"{path} ({isa})"

    @property
    def numerics(self) -> str:
        """Which arithmetic the logits come from, e.g. ``native-cpu/avx2-fma`` or
        ``reference-cuda``: paths that agree only within float tolerance differ here (a search
        resumed on another one would not repeat an uninterrupted run, ``evolve`` checks)."""
        path, isa = self._path()
        return path if isa is None else f"{path}/{isa}"

    def refresh(self) -> None:
        """Re-pack the supernet's weights (after they changed); the reference path packs nothing."""
        self._native = native_op(f"subnet_eval_{self.kind}", self._op_device)
        self.packed: PackedSupernet | None = None
        self._params_dev: torch.Tensor | None = None
        self._unsupported = unsupported_by_native(self.supernet, self._dev)
        if self._unsupported:
            if self._forced == "native":
                raise KernelInputError(f"the native subnet_eval kernel: {self._unsupported}")
            self._native = None
        if self._native is None:
            return
        self.packed = pack_supernet(self.supernet)
        if self._dev == "cuda":
            self._params_dev = torch.from_numpy(self.packed.params).to(self.device)

    def _packed(self) -> PackedSupernet:
        if self.packed is None:  # backend is "native" only when refresh() packed
            raise KernelInputError("the supernet is not packed: call refresh()")
        return self.packed

    # ------------------------------------------------------------------ checks
    def _check(self, obs: Any, group_archs: Sequence[Arch], group_sizes: Sequence[int]) -> Any:
        if not isinstance(obs, np.ndarray | torch.Tensor):
            raise KernelInputError(
                f"obs: expected a numpy array or a torch tensor, got {type(obs).__name__}"
            )
        shape = tuple(obs.shape)
        want = self.supernet.obs_shape
        if len(shape) < 1 or shape[1:] != want:
            raise KernelInputError(
                f"obs: expected shape (N, {', '.join(map(str, want))}), got {shape}"
            )
        is_float = (
            obs.dtype.is_floating_point
            if isinstance(obs, torch.Tensor)
            else (np.issubdtype(obs.dtype, np.floating))
        )
        is_u8 = obs.dtype in (torch.uint8, np.uint8)
        if self.kind == "cnn" and not is_u8:
            raise KernelInputError(f"obs: a CNN supernet takes uint8 frames, got {obs.dtype}")
        if self.kind == "mlp" and not is_float:
            raise KernelInputError(
                f"obs: an MLP supernet takes float observations, got {obs.dtype}"
            )
        if len(group_archs) != len(group_sizes):
            raise KernelInputError(
                f"{len(group_archs)} archs but {len(group_sizes)} group sizes: one per group"
            )
        sizes = np.asarray(group_sizes)
        if sizes.size and (
            not np.issubdtype(sizes.dtype, np.integer) or sizes.ndim != 1 or (sizes < 0).any()
        ):
            raise KernelInputError(f"group sizes must be non-negative integers, got {group_sizes}")
        if int(sizes.sum()) != shape[0]:
            raise KernelInputError(
                f"group sizes add up to {int(sizes.sum())}, but obs has {shape[0]} rows"
            )
        for a in group_archs:
            if a not in self._rows_cache:  # archs seen before were checked then
                self.supernet.check(a)
        return sizes.astype(np.int64)

    def _tables(self, group_archs: Sequence[Arch], sizes: np.ndarray) -> tuple[Any, Any]:
        n = self._packed().arch_len
        cache = self._rows_cache
        rows = []
        for a in group_archs:
            r = cache.get(a)
            if r is None:
                r = cache[a] = _arch_row(a, n)
            rows.append(r)
        table = np.asarray(rows, np.int32).reshape(-1, n)
        offsets = np.zeros(len(sizes) + 1, np.int64)
        np.cumsum(sizes, out=offsets[1:])
        return table, offsets

    # ------------------------------------------------------------------ forward
    @torch.no_grad()
    def __call__(
        self, obs: Any, group_archs: Sequence[Arch], group_sizes: Sequence[int]
    ) -> tuple[Any, Any]:
        """``(logits (N, A), values (N,))``; numpy in, numpy out; tensor in, tensor out. A
        scalar-Box supernet (observations of shape ``(1,)``) also takes its batch as ``(N,)``,
        as :class:`~a2d_evo.nets.agent.Agent` does."""
        if self.supernet.obs_shape == (1,) and getattr(obs, "ndim", None) == 1:
            obs = obs.reshape(-1, 1)
        sizes = self._check(obs, group_archs, group_sizes)
        as_numpy = isinstance(obs, np.ndarray)
        n = int(obs.shape[0])
        if n == 0 or self.backend == "reference":
            # The reference runs wherever the supernet's weights are.
            param = next(self.supernet.parameters())
            x = torch.as_tensor(obs, device=param.device)
            if self.kind == "mlp":
                x = x.float()
            logits, values = reference_forward(self.supernet, x, group_archs, sizes.tolist())
            if as_numpy:
                return logits.cpu().numpy(), values.cpu().numpy()
            return logits.to(self.device), values.to(self.device)
        table, offsets = self._tables(group_archs, sizes)
        packed = self._packed()
        if self._dev == "cpu":
            if as_numpy:
                x_np = obs
            else:  # as the reference: any float tensor (bfloat16 has no numpy dtype)
                x = obs.detach().cpu()
                x_np = (x.float() if self.kind == "mlp" else x).numpy()
            if self.kind == "mlp":
                x_np = np.ascontiguousarray(x_np, np.float32).reshape(n, -1)
            else:
                x_np = np.ascontiguousarray(x_np)
            try:
                logits_np, values_np = self._native(  # type: ignore[operator]
                    x_np, packed.params, packed.meta, table, offsets
                )
            except ValueError as exc:
                raise KernelInputError(str(exc)) from None
            if as_numpy:
                return logits_np, values_np
            return torch.from_numpy(logits_np), torch.from_numpy(values_np)
        return self._cuda(packed, obs, as_numpy, n, table, offsets)

    def _cuda(
        self,
        packed: PackedSupernet,
        obs: Any,
        as_numpy: bool,
        n: int,
        table: np.ndarray,
        offsets: np.ndarray,
    ) -> tuple[Any, Any]:
        mod: Any = native_module()
        x = torch.as_tensor(obs, device=self.device)
        x = (x.float() if self.kind == "mlp" else x).reshape(n, -1).contiguous()
        params = self._params_dev
        assert params is not None
        need = int(mod.subnet_eval_cuda_workspace(packed.meta, n, len(table)))
        # one workspace per call from torch's caching allocator, which orders its reuse on the
        # stream it was taken on: a buffer kept across calls would be shared by forwards that
        # run on different streams at once
        workspace = torch.empty(need, dtype=torch.uint8, device=self.device)
        logits = torch.empty((n, packed.n_actions), dtype=torch.float32, device=self.device)
        values = torch.empty((n,), dtype=torch.float32, device=self.device)
        stream = torch.cuda.current_stream(self.device).cuda_stream
        try:
            # the kernels launch on the current device: make it this forward's (cuda:N)
            with torch.cuda.device(self.device):
                self._native(  # type: ignore[operator]
                    x.data_ptr(),
                    n,
                    params.data_ptr(),
                    params.numel(),
                    packed.meta,
                    table,
                    offsets,
                    logits.data_ptr(),
                    values.data_ptr(),
                    workspace.data_ptr(),
                    workspace.numel(),
                    stream,
                )
        except ValueError as exc:
            raise KernelInputError(str(exc)) from None
        if as_numpy:
            return logits.cpu().numpy(), values.cpu().numpy()
        return logits, values
