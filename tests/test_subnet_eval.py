"""Batched subnet evaluation: the native kernel against the per-subnet torch forward.

Parity is measured as max |kernel - reference| / max |reference| per output (logits, values)
and must stay within 1e-4 on random populations of both network kinds, odd widths included.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from a2d_evo.config import SpaceConfig
from a2d_evo.errors import ArchError, KernelInputError
from a2d_evo.nets.population import (
    PopulationForward,
    arch_table,
    pack_supernet,
    reference_forward,
)
from a2d_evo.nets.space import CNNArch, MLPArch, SearchSpace
from a2d_evo.nets.supernet import Supernet
from a2d_evo.ops.dispatch import REFERENCE_ENV_VAR, native_module

TOL = 1e-4
MOD = native_module()
needs_native = pytest.mark.skipif(
    MOD is None or not hasattr(MOD, "subnet_eval_mlp"), reason="a2d_evo._C is not built"
)

MLP_SPACES = [
    SpaceConfig(kind="mlp"),
    # widths that are not multiples of the vector width, deeper than the default
    SpaceConfig(kind="mlp", depths=(1, 2, 5), widths=(1, 3, 5, 7, 13, 29, 50)),
]
CNN_SPACES = [
    SpaceConfig(kind="cnn"),
    # odd widths, three extra convs, kernels 1/3/5/7
    SpaceConfig(
        kind="cnn",
        conv1=(3, 8, 13),
        conv2=(5, 16, 27),
        conv3=(4, 11, 30),
        extra_depths=(0, 1, 3),
        extra_widths=(3, 12, 25),
        extra_kernels=(1, 3, 5, 7),
        fc=(5, 33, 70),
    ),
    SpaceConfig(kind="cnn", extra_depths=(0,), fc=(16, 100)),
]


@pytest.fixture(autouse=True)
def native_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(REFERENCE_ENV_VAR, raising=False)
    yield


def noisy_supernet(space: SearchSpace, obs_shape: tuple[int, ...], n_actions: int, seed: int):
    torch.manual_seed(seed)
    net = Supernet(space, obs_shape, n_actions)
    with torch.no_grad():  # non-zero biases and heads of a trained-like scale
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
        net.policy.weight.mul_(30.0)
    return net


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


def check_population(net: Supernet, space: SearchSpace, rng: np.random.Generator, obs_fn) -> float:
    fwd = PopulationForward(net, backend="native")
    groups = int(rng.integers(1, 10))
    archs = [space.decode(x) for x in space.sample_encodings(rng, groups)]
    archs[0] = space.largest() if rng.random() < 0.5 else space.smallest()
    sizes = rng.integers(1, 6, size=groups)
    sizes[rng.integers(groups)] = 1
    obs = obs_fn(int(sizes.sum()))
    logits, values = fwd(obs, archs, sizes.tolist())
    ref_l, ref_v = reference_forward(net, torch.from_numpy(obs), archs, sizes.tolist())
    assert logits.shape == tuple(ref_l.shape) and values.shape == tuple(ref_v.shape)
    return max(rel_err(logits, ref_l.numpy()), rel_err(values, ref_v.numpy()))


@needs_native
@pytest.mark.parametrize("space_i", range(len(MLP_SPACES)))
@pytest.mark.parametrize("obs_dim,n_actions", [(4, 2), (6, 3), (37, 5)])
def test_mlp_parity(space_i: int, obs_dim: int, n_actions: int) -> None:
    space = SearchSpace(MLP_SPACES[space_i])
    net = noisy_supernet(space, (obs_dim,), n_actions, seed=obs_dim + space_i)
    rng = np.random.default_rng(obs_dim * 10 + space_i)
    worst = max(
        check_population(
            net, space, rng, lambda n: (rng.standard_normal((n, obs_dim)) * 2).astype(np.float32)
        )
        for _ in range(15)
    )
    assert worst <= TOL, worst


@needs_native
@pytest.mark.parametrize(
    "space_i,frame,n_actions", [(0, 84, 6), (1, 52, 4), (1, 84, 18), (2, 60, 3)]
)
def test_cnn_parity(space_i: int, frame: int, n_actions: int) -> None:
    space = SearchSpace(CNN_SPACES[space_i])
    net = noisy_supernet(space, (4, frame, frame), n_actions, seed=frame + space_i)
    rng = np.random.default_rng(frame + space_i)
    worst = max(
        check_population(
            net,
            space,
            rng,
            lambda n: rng.integers(0, 256, (n, 4, frame, frame), dtype=np.uint8),
        )
        for _ in range(3 if frame == 84 else 5)
    )
    assert worst <= TOL, worst


@needs_native
def test_cnn_parity_non_square_frames() -> None:
    space = SearchSpace(CNN_SPACES[1])
    net = noisy_supernet(space, (2, 50, 70), 5, seed=3)
    rng = np.random.default_rng(3)
    worst = check_population(
        net, space, rng, lambda n: rng.integers(0, 256, (n, 2, 50, 70), dtype=np.uint8)
    )
    assert worst <= TOL, worst


@needs_native
def test_rows_do_not_depend_on_the_batch() -> None:
    """A row's outputs are bit-identical whatever else is in the call (threads, tiles, groups).

    The evaluator relies on it: a candidate's actions do not change as other slots finish.
    """
    space = SearchSpace(MLP_SPACES[0])
    net = noisy_supernet(space, (6,), 3, seed=0)
    fwd = PopulationForward(net, backend="native")
    rng = np.random.default_rng(0)
    archs = [space.decode(x) for x in space.sample_encodings(rng, 12)]
    obs = rng.standard_normal((12 * 7, 6)).astype(np.float32)
    full_l, full_v = fwd(obs, archs, [7] * 12)
    for g in (0, 5, 11):
        part_l, part_v = fwd(obs[g * 7 + 2 : g * 7 + 5], [archs[g]], [3])
        np.testing.assert_array_equal(part_l, full_l[g * 7 + 2 : g * 7 + 5])
        np.testing.assert_array_equal(part_v, full_v[g * 7 + 2 : g * 7 + 5])


@needs_native
def test_tensor_in_tensor_out_and_refresh() -> None:
    space = SearchSpace(MLP_SPACES[0])
    net = noisy_supernet(space, (4,), 2, seed=1)
    fwd = PopulationForward(net)
    arch = MLPArch((64, 32))
    obs = torch.randn(5, 4)
    logits, values = fwd(obs, [arch], [5])
    assert isinstance(logits, torch.Tensor) and logits.shape == (5, 2) and values.shape == (5,)
    with torch.no_grad():
        net.value.bias.add_(1.0)
    stale = fwd(obs, [arch], [5])[1]
    torch.testing.assert_close(stale, values)  # packed once: needs refresh()
    fwd.refresh()
    torch.testing.assert_close(fwd(obs, [arch], [5])[1], values + 1.0, rtol=0, atol=1e-5)


def test_reference_forced_by_env(monkeypatch: pytest.MonkeyPatch) -> None:
    space = SearchSpace(MLP_SPACES[0])
    net = noisy_supernet(space, (4,), 2, seed=2)
    fwd = PopulationForward(net)
    monkeypatch.setenv(REFERENCE_ENV_VAR, "1")
    assert fwd.backend == "reference" and fwd.backend_name.startswith("reference")
    archs = [MLPArch((8,)), MLPArch((256, 4, 16))]
    obs = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    logits, values = fwd(obs, archs, [2, 3])
    ref_l, ref_v = reference_forward(net, torch.from_numpy(obs), archs, [2, 3])
    np.testing.assert_array_equal(logits, ref_l.numpy())
    np.testing.assert_array_equal(values, ref_v.numpy())


@needs_native
def test_backend_name_says_which_path() -> None:
    net = noisy_supernet(SearchSpace(MLP_SPACES[0]), (4,), 2, seed=0)
    fwd = PopulationForward(net)
    assert fwd.backend == "native"
    assert fwd.backend_name.startswith("native-cpu (") and MOD is not None
    assert MOD.subnet_eval_isa() in fwd.backend_name


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
    ("cnn", (4, 44, 44), SpaceConfig(kind="cnn", conv1=(8, 12), conv2=(8, 20), conv3=(8, 24),
                                     extra_widths=(8, 12), fc=(8, 40))),
]:
    space = SearchSpace(cfg)
    net = Supernet(space, shape, 3)
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
    import os
    import subprocess
    import sys

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


# ----------------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def mlp_fwd() -> PopulationForward:
    return PopulationForward(noisy_supernet(SearchSpace(MLP_SPACES[0]), (4,), 2, seed=0))


@pytest.fixture(scope="module")
def cnn_fwd() -> PopulationForward:
    space = SearchSpace(CNN_SPACES[2])
    return PopulationForward(noisy_supernet(space, (4, 60, 60), 3, seed=0))


def test_bad_obs(mlp_fwd: PopulationForward, cnn_fwd: PopulationForward) -> None:
    arch = MLPArch((8,))
    with pytest.raises(KernelInputError, match="shape"):
        mlp_fwd(np.zeros((3, 5), np.float32), [arch], [3])
    with pytest.raises(KernelInputError, match="float"):
        mlp_fwd(np.zeros((3, 4), np.int64), [arch], [3])
    with pytest.raises(KernelInputError, match="numpy array or a torch tensor"):
        mlp_fwd([[0.0] * 4], [arch], [1])
    cnn = CNNArch((8, 16, 16), (), 16)
    with pytest.raises(KernelInputError, match="uint8"):
        cnn_fwd(np.zeros((2, 4, 60, 60), np.float32), [cnn], [2])
    with pytest.raises(KernelInputError, match="shape"):
        cnn_fwd(np.zeros((2, 4, 84, 84), np.uint8), [cnn], [2])


def test_bad_groups(mlp_fwd: PopulationForward) -> None:
    obs = np.zeros((4, 4), np.float32)
    a = MLPArch((8,))
    with pytest.raises(KernelInputError, match="add up to 3"):
        mlp_fwd(obs, [a, a], [1, 2])
    with pytest.raises(KernelInputError, match="one per group"):
        mlp_fwd(obs, [a], [2, 2])
    with pytest.raises(KernelInputError, match="non-negative"):
        mlp_fwd(obs, [a, a], [5, -1])
    with pytest.raises(KernelInputError, match="integers"):
        mlp_fwd(obs, [a, a], [2.0, 2.0])
    with pytest.raises(ArchError):
        mlp_fwd(obs, [MLPArch((512,))], [4])
    with pytest.raises(ArchError):
        mlp_fwd(obs, [CNNArch((8, 16, 16), (), 64)], [4])


@needs_native
def test_native_entry_points_validate_everything() -> None:
    """The binding re-checks what memory safety depends on, whatever Python hands it."""
    assert MOD is not None
    net = noisy_supernet(SearchSpace(MLP_SPACES[0]), (4,), 2, seed=0)
    pk = pack_supernet(net)
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
        (obs[:, ::2], pk.params, pk.meta, table, rows),
    ]
    meta = pk.meta.copy()
    meta[9] = 10**12  # an offset far outside the buffer
    bad_cases.append((obs, pk.params, meta, table, rows))
    for args in bad_cases:
        with pytest.raises(ValueError, match="subnet_eval"):
            MOD.subnet_eval_mlp(*args)
    cpk = pack_supernet(noisy_supernet(SearchSpace(CNN_SPACES[2]), (4, 60, 60), 3, seed=0))
    frames = np.zeros((1, 4, 60, 60), np.uint8)
    ctab = arch_table([CNNArch((8, 16, 16), (), 16)], cpk.arch_len)
    one = np.array([0, 1], np.int64)
    MOD.subnet_eval_cnn(frames, cpk.params, cpk.meta, ctab, one)
    for args in [
        (frames.astype(np.float32), cpk.params, cpk.meta, ctab, one),
        (frames, cpk.params, pk.meta, ctab, one),
        (frames, cpk.params[:1000], cpk.meta, ctab, one),
        (np.zeros((1, 4, 60, 61), np.uint8), cpk.params, cpk.meta, ctab, one),
        (frames, cpk.params, cpk.meta, arch_table([CNNArch((8, 16, 999), (), 16)], 5), one),
    ]:
        with pytest.raises(ValueError, match="subnet_eval"):
            MOD.subnet_eval_cnn(*args)


# ----------------------------------------------------------------------------- CUDA
def _cuda_skip_reason() -> str | None:
    if MOD is None or not MOD.has_cuda():
        return "a2d_evo._C was built without CUDA (no CUDA compiler at build time)"
    if not torch.cuda.is_available():
        return "no CUDA device visible to torch"
    return None


@pytest.mark.cuda
@pytest.mark.skipif(_cuda_skip_reason() is not None, reason=str(_cuda_skip_reason()))
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_cuda_parity(kind: str) -> None:
    cfg = MLP_SPACES[0] if kind == "mlp" else CNN_SPACES[1]
    space = SearchSpace(cfg)
    shape = (6,) if kind == "mlp" else (4, 84, 84)
    net = noisy_supernet(space, shape, 4, seed=5)
    gpu = PopulationForward(net, device="cuda", backend="native")
    assert gpu.backend_name == "native-cuda"
    rng = np.random.default_rng(5)
    for _ in range(10):
        groups = int(rng.integers(1, 12))
        archs = [space.decode(x) for x in space.sample_encodings(rng, groups)]
        sizes = rng.integers(1, 40, size=groups).tolist()
        n = sum(sizes)
        if kind == "mlp":
            obs = torch.randn(n, 6).cuda()
        else:
            obs = torch.randint(0, 256, (n, *shape), dtype=torch.uint8).cuda()
        logits, values = gpu(obs, archs, sizes)
        ref_l, ref_v = reference_forward(net, obs.cpu(), archs, sizes)
        assert rel_err(logits.cpu().numpy(), ref_l.numpy()) <= TOL
        assert rel_err(values.cpu().numpy(), ref_v.numpy()) <= TOL
