"""The subnet_eval op layer (a2d_evo/ops/subnet_eval.py, csrc/subnet_eval*): the packed
layout's meta vector shared by Python and C++, the native entry points' own checks, the
portable micro-kernel, and which backend dispatch picks (CUDA only once proven).
PopulationForward itself is tested in tests/test_population.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from a2d_evo.config import SpaceConfig
from a2d_evo.errors import KernelInputError
from a2d_evo.nets.population import arch_table, pack_supernet
from a2d_evo.nets.space import CNNArch, MLPArch, SearchSpace
from a2d_evo.nets.supernet import Supernet
from a2d_evo.ops import dispatch
from a2d_evo.ops.dispatch import (
    CUDA_ENV_VAR,
    REFERENCE_ENV_VAR,
    backend_name,
    native_module,
    native_op,
)
from a2d_evo.ops.subnet_eval import meta_fields, pack_meta, subnet_eval_backend

TOL = 1e-4
MOD = native_module()
needs_native = pytest.mark.skipif(
    MOD is None or not hasattr(MOD, "subnet_eval_meta_fields"), reason="a2d_evo._C is not built"
)
MLP = SpaceConfig(kind="mlp")
CNN_SMALL = SpaceConfig.nature(extra=0, fc=(16, 100))
CNN_EXTRA = SpaceConfig.nature(extra=3, extra_widths=(3, 12), fc=(5, 33))


@pytest.fixture(autouse=True)
def native_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(REFERENCE_ENV_VAR, raising=False)
    monkeypatch.delenv(CUDA_ENV_VAR, raising=False)
    yield


def supernet(cfg: SpaceConfig, obs_shape: tuple[int, ...], n_actions: int) -> Supernet:
    torch.manual_seed(0)
    return Supernet(SearchSpace(cfg), obs_shape, n_actions)


# ----------------------------------------------------------------------------- meta layout
def _at(meta: np.ndarray, kind: str, name: str) -> int:
    return int(meta[list(meta_fields(kind)).index(name)])


@needs_native
def test_meta_layout_is_the_native_one() -> None:
    """pack_supernet writes every named field where the C++ layout puts it."""
    assert MOD is not None
    pk = pack_supernet(supernet(MLP, (6,), 3))
    assert meta_fields("mlp") == tuple(MOD.subnet_eval_meta_fields("mlp"))
    got = {k: _at(pk.meta, "mlp", k) for k in ("obs_dim", "depth_max", "width_max", "n_actions")}
    assert got == {"obs_dim": 6, "depth_max": 4, "width_max": 256, "n_actions": 3}
    assert _at(pk.meta, "mlp", "kind") == MOD.subnet_eval_meta_kind("mlp")
    assert pk.meta.size == len(meta_fields("mlp")) - 2 + 2 * 4  # two arrays of depth_max
    cpk = pack_supernet(supernet(CNN_EXTRA, (4, 84, 60), 5))
    assert meta_fields("cnn") == tuple(MOD.subnet_eval_meta_fields("cnn"))
    names = ("c_in", "h_in", "w_in", "n_layers", "fc_max", "c_last_max")
    got = {k: _at(cpk.meta, "cnn", k) for k in names}
    # 3 trunk layers + 3 optional convs of widths (3, 12); the FC sees conv3's 128 at most
    assert got == dict(zip(names, (4, 84, 60, 6, 33, 128), strict=True))
    assert _at(cpk.meta, "cnn", "kind") == MOD.subnet_eval_meta_kind("cnn") != got["c_in"]
    scale = np.array(_at(cpk.meta, "cnn", "obs_scale_f32_bits"), np.uint32).view(np.float32)
    assert scale == np.float32(1 / 255)
    assert cpk.meta.size == len(meta_fields("cnn")) - 9 + 9 * 6  # nine arrays of n_layers


MLP_META = {
    "obs_dim": 4,
    "depth_max": 2,
    "width_max": 8,
    "ldw": 8,
    "n_actions": 2,
    "ldh": 8,
    "off_head_w": 0,
    "off_head_b": 64,
    "off_w": [80, 112],
    "off_b": [176, 192],
}
"""The fields of a small MLP meta vector (depth_max 2), as the native layout names them."""


@needs_native
def test_wrong_meta_layout_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Python packing that disagrees with the C++ layout fails at packing, naming the field."""
    assert MOD is not None
    mlp = dict(MLP_META)
    assert pack_meta("mlp", mlp).size == 13
    with pytest.raises(KernelInputError, match=r"missing fields \['ldw'\], unknown fields \[\]"):
        pack_meta("mlp", {k: v for k, v in mlp.items() if k != "ldw"})
    with pytest.raises(KernelInputError, match=r"unknown fields \['ldb'\]"):
        pack_meta("mlp", {**mlp, "ldb": 8})
    with pytest.raises(KernelInputError, match="off_w must hold depth_max = 2 entries"):
        pack_meta("mlp", {**mlp, "off_w": [80]})
    with pytest.raises(KernelInputError, match="unknown network kind 'rnn'"):
        pack_meta("rnn", mlp)
    # A native module whose layout gained a field: packing refuses, it does not shift offsets.
    grown = SimpleNamespace(
        subnet_eval_meta_fields=lambda kind: [*MOD.subnet_eval_meta_fields(kind), "ld_extra"],
        subnet_eval_meta_kind=MOD.subnet_eval_meta_kind,
    )
    monkeypatch.setattr(dispatch, "native_module", lambda: grown)
    with pytest.raises(KernelInputError, match=r"missing fields \['ld_extra'\]"):
        pack_supernet(supernet(MLP, (4,), 2))
    monkeypatch.setattr(dispatch, "native_module", lambda: None)
    with pytest.raises(KernelInputError, match="needs a2d_evo._C"):
        pack_supernet(supernet(MLP, (4,), 2))


@needs_native
def test_kernel_refuses_a_meta_in_another_order() -> None:
    """The C++ side checks what it reads: fields out of place give a clear ValueError."""
    assert MOD is not None
    pk = pack_supernet(supernet(MLP, (4,), 2))
    obs = np.zeros((3, 4), np.float32)
    table = arch_table([MLPArch((8, 8))], pk.arch_len)
    rows = np.array([0, 3], np.int64)
    swapped = pk.meta.copy()
    i, j = meta_fields("mlp").index("depth_max"), meta_fields("mlp").index("off_head_w")
    swapped[[i, j]] = swapped[[j, i]]
    with pytest.raises(ValueError, match="subnet_eval: MLP depth_max out of range"):
        MOD.subnet_eval_mlp(obs, pk.params, swapped, table, rows)
    reversed_meta = pk.meta[::-1].copy()
    with pytest.raises(ValueError, match="subnet_eval: not an MLP meta vector"):
        MOD.subnet_eval_mlp(obs, pk.params, reversed_meta, table, rows)


# ----------------------------------------------------------------------------- dispatch
CUDA_OPS = ("subnet_eval_mlp", "subnet_eval_cnn", "preprocess_frames", "push_frames")


@pytest.fixture
def cuda_build(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """A stand-in native module with every op compiled for CUDA too (no GPU needed)."""
    fake = SimpleNamespace(has_cuda=lambda: True)
    for op in CUDA_OPS:
        setattr(fake, op, f"{op} (cpu)")
        setattr(fake, f"{op}_cuda", f"{op} (cuda)")
    monkeypatch.setattr(dispatch, "native_module", lambda: fake)
    monkeypatch.setattr(dispatch, "CUDA_PROVEN", frozenset())
    return fake


def test_cuda_kernels_only_when_proven_or_opted_in(
    cuda_build: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    for op in CUDA_OPS:  # not proven, not opted in: the reference, both ops alike
        assert native_op(op, "cuda") is None and backend_name(op, "cuda") == "reference"
        assert native_op(op, "cpu") == f"{op} (cpu)"  # the CPU kernels are not affected
    assert subnet_eval_backend("mlp", "cuda") == subnet_eval_backend("cnn", "cuda") == "reference"
    assert subnet_eval_backend("mlp", "cpu") == "native"
    monkeypatch.setenv(CUDA_ENV_VAR, "1")
    for op in CUDA_OPS:
        assert native_op(op, "cuda") == f"{op} (cuda)" and backend_name(op, "cuda") == "native"
    assert subnet_eval_backend("mlp", "cuda") == subnet_eval_backend("cnn", "cuda") == "native"
    monkeypatch.setenv(REFERENCE_ENV_VAR, "1")  # forcing the reference still wins
    assert backend_name("preprocess_frames", "cuda") == "reference"
    assert subnet_eval_backend("mlp", "cuda") == "reference"


def test_a_proven_cuda_op_needs_no_opt_in(
    cuda_build: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CUDA_ENV_VAR, "0")
    monkeypatch.setattr(dispatch, "CUDA_PROVEN", frozenset({"push_frames"}))
    assert native_op("push_frames", "cuda") == "push_frames (cuda)"
    assert backend_name("preprocess_frames", "cuda") == "reference"
    monkeypatch.setattr(cuda_build, "has_cuda", lambda: False)  # proven, but not compiled in
    assert native_op("push_frames", "cuda") is None


def test_backend_follows_the_reference_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    want = "reference" if MOD is None else "native"
    assert subnet_eval_backend("mlp") == subnet_eval_backend("cnn") == want
    monkeypatch.setenv(REFERENCE_ENV_VAR, "yes")
    assert subnet_eval_backend("mlp") == subnet_eval_backend("cnn") == "reference"


@needs_native
def test_native_entry_points_validate_everything() -> None:
    """The binding re-checks what memory safety depends on, whatever Python hands it."""
    assert MOD is not None
    pk = pack_supernet(supernet(MLP, (4,), 2))
    obs = np.zeros((3, 4), np.float32)
    table = arch_table([MLPArch((8, 8))], pk.arch_len)
    rows = np.array([0, 3], np.int64)
    MOD.subnet_eval_mlp(obs, pk.params, pk.meta, table, rows)  # fine
    bad_cases = [
        (obs.astype(np.float64), pk.params, pk.meta, table, rows),
        (obs, pk.params[:-100], pk.meta, table, rows),
        (obs, pk.params, pk.meta[:-1], table, rows),
        (obs, pk.params, pk.meta, table, np.array([0, 2], np.int64)),
        (obs, pk.params, pk.meta, table[:, :-1], rows),
        (obs, pk.params, pk.meta, arch_table([MLPArch((300,))], pk.arch_len), rows),
        (obs, pk.params, pk.meta, np.zeros_like(table), rows),
        (np.zeros((3, 5), np.float32), pk.params, pk.meta, table, rows),
    ]
    meta = pk.meta.copy()
    meta[meta_fields("mlp").index("off_w[depth_max]")] = 10**12  # far outside the buffer
    bad_cases.append((obs, pk.params, meta, table, rows))
    for args in bad_cases:
        with pytest.raises(ValueError, match="subnet_eval"):
            MOD.subnet_eval_mlp(*args)
    strided = np.zeros((3, 8), np.float32)[:, ::2]  # the right shape and dtype, not contiguous
    with pytest.raises(ValueError, match="subnet_eval: .* must be C-contiguous"):
        MOD.subnet_eval_mlp(strided, pk.params, pk.meta, table, rows)
    # C-contiguous, the right dtype, one byte off its alignment: a misaligned float read is
    # undefined behaviour in C++ (it worked on x86; found by review)
    shifted = np.zeros(3 * 4 * 4 + 1, np.uint8)[1:].view(np.float32).reshape(3, 4)
    assert shifted.flags.c_contiguous and not shifted.flags.aligned
    with pytest.raises(ValueError, match=r"subnet_eval: obs .*must be aligned"):
        MOD.subnet_eval_mlp(shifted, pk.params, pk.meta, table, rows)
    odd_rows = np.zeros(2 * 8 + 1, np.uint8)[1:].view(np.int64)
    with pytest.raises(ValueError, match=r"subnet_eval: rows .*must be aligned"):
        MOD.subnet_eval_mlp(obs, pk.params, pk.meta, table, odd_rows)
    cpk = pack_supernet(supernet(CNN_SMALL, (4, 60, 60), 3))
    frames = np.zeros((1, 4, 60, 60), np.uint8)
    ctab = arch_table([CNNArch.nature((8, 16, 16), (), 16)], cpk.arch_len)
    one = np.array([0, 1], np.int64)
    MOD.subnet_eval_cnn(frames, cpk.params, cpk.meta, ctab, one)
    for args in [
        (frames.astype(np.float32), cpk.params, cpk.meta, ctab, one),
        (frames, cpk.params, pk.meta, ctab, one),
        (frames, cpk.params[:1000], cpk.meta, ctab, one),
        (np.zeros((1, 4, 60, 61), np.uint8), cpk.params, cpk.meta, ctab, one),
        (
            frames,
            cpk.params,
            cpk.meta,
            arch_table([CNNArch.nature((8, 16, 999), (), 16)], cpk.arch_len),
            one,
        ),
    ]:
        with pytest.raises(ValueError, match="subnet_eval"):
            MOD.subnet_eval_cnn(*args)


_GENERIC_CHECK = """
import numpy as np, torch
from a2d_evo.config import SpaceConfig
from a2d_evo.ops.dispatch import native_module
from a2d_evo.nets.population import PopulationForward, reference_forward
from a2d_evo.nets.space import SearchSpace
from a2d_evo.nets.supernet import Supernet
torch.manual_seed(0)
rng = np.random.default_rng(0)
worst = 0.0
for kind, shape, cfg in [
    ("mlp", (5,), SpaceConfig(kind="mlp", widths=(3, 8, 13, 40))),
    ("cnn", (4, 44, 44), SpaceConfig.nature(conv1=(8, 12), conv2=(8, 20), conv3=(8, 24),
                                            extra_widths=(8, 12), fc=(8, 40))),
]:
    space = SearchSpace(cfg)
    net = Supernet(space, shape, 3)
    with torch.no_grad():  # noise on every parameter: a fresh net's biases are all zero
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    fwd = PopulationForward(net, backend="native")
    archs = [space.decode(x) for x in space.sample_encodings(rng, 6)]
    sizes = [1, 3, 2, 5, 1, 4]
    if kind == "mlp":
        obs = rng.standard_normal((16, *shape)).astype(np.float32)
    else:
        obs = rng.integers(0, 256, (16, *shape), dtype=np.uint8)
    out = fwd(obs, archs, sizes)
    ref = reference_forward(net, torch.from_numpy(obs), archs, sizes)
    for a, b in zip(out, ref):
        b = b.numpy()
        worst = max(worst, float(np.abs(a - b).max() / np.abs(b).max()))
print(native_module().subnet_eval_isa(), worst)
"""


@needs_native
def test_generic_kernel_parity(tmp_path: Path) -> None:
    """The portable micro-kernel (forced by A2D_EVO_SUBNET_EVAL_ISA=generic) is exact too."""
    env = {**os.environ, "A2D_EVO_SUBNET_EVAL_ISA": "generic", "OMP_NUM_THREADS": "2"}
    out = subprocess.run(
        [sys.executable, "-c", _GENERIC_CHECK],
        env=env,
        cwd=tmp_path,  # not the repo root: import the installed package, native module and all
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    isa, worst = out.stdout.split()
    assert isa == "generic"
    assert float(worst) <= TOL


# ----------------------------------------------------------------------------- ops/subnet_eval.py
@needs_native
def test_pack_meta_refuses_an_array_field_longer_than_its_count() -> None:
    """a2d_evo/ops/subnet_eval.py pack_meta: ``off_w[depth_max]`` with 3 entries for
    depth_max = 2 is refused. Mutant let through: ``len(value) != fields[count]`` made
    ``len(value) < fields[count]``, which packed the extra entry and shifted every later
    field (off_b) by one slot: the kernel would read an offset as a bias offset."""
    from a2d_evo.errors import KernelInputError
    from a2d_evo.ops.subnet_eval import pack_meta

    # 13 entries: 1 kind + 8 scalars + 2 off_w + 2 off_b
    assert pack_meta("mlp", MLP_META).size == 13
    with pytest.raises(KernelInputError, match="off_w must hold depth_max = 2 entries"):
        pack_meta("mlp", {**MLP_META, "off_w": [80, 112, 144]})


@needs_native
def test_pack_meta_refuses_an_int_for_an_array_field() -> None:
    """a2d_evo/ops/subnet_eval.py pack_meta: an int given for ``off_b[depth_max]`` is a
    KernelInputError naming the field. Mutant let through: dropping the
    ``isinstance(value, int | np.integer) or`` guard, after which ``len(176)`` raised a bare
    TypeError that names nothing (the promise: a wrongly sized field raises KernelInputError)."""
    from a2d_evo.errors import KernelInputError
    from a2d_evo.ops.subnet_eval import pack_meta

    with pytest.raises(KernelInputError, match="off_b must hold depth_max = 2 entries"):
        pack_meta("mlp", {**MLP_META, "off_b": 176})
