"""PopulationForward (a2d_evo/nets/population.py): the native kernel against the per-subnet
torch forward, the packing, the backend switch and input checks.

Parity is measured as max |kernel - reference| / max |reference| per output (logits, values)
and must stay within 1e-4 on random populations of both network kinds, odd widths included.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from a2d_evo.config import SpaceConfig
from a2d_evo.config.space import ConvLayerConfig
from a2d_evo.errors import ArchError, KernelInputError
from a2d_evo.nets.population import PopulationForward, reference_forward, unsupported_by_native
from a2d_evo.nets.space import CNNArch, MLPArch, SearchSpace
from a2d_evo.nets.supernet import Supernet
from a2d_evo.ops import dispatch
from a2d_evo.ops.dispatch import CUDA_ENV_VAR, REFERENCE_ENV_VAR, native_module

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
    SpaceConfig.nature(
        conv1=(3, 8, 13),
        conv2=(5, 16, 27),
        conv3=(4, 11, 30),
        extra=3,
        extra_widths=(3, 12, 25),
        extra_kernels=(1, 3, 5, 7),
        fc=(5, 33, 70),
    ),
    SpaceConfig.nature(extra=0, fc=(16, 100)),
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
def test_mlp_parity_with_an_obs_scale() -> None:
    """The MLP kernel reads obs as given; a supernet's ``obs_scale`` (folded into its first
    layer when packed) scales them as the reference does."""
    space = SearchSpace(MLP_SPACES[1])
    net = noisy_supernet(space, (6,), 3, seed=5)
    net.obs_scale = 1.0 / 255.0
    rng = np.random.default_rng(5)
    obs_fn = lambda n: rng.integers(0, 256, (n, 6)).astype(np.float32)  # noqa: E731
    worst = max(check_population(net, space, rng, obs_fn) for _ in range(10))
    assert worst <= TOL, worst


@needs_native
def test_every_float_dtype_the_reference_takes_the_kernel_takes() -> None:
    """A bfloat16 or float16 tensor (or a float16 array) is read as float32 on both paths:
    the native path raised a TypeError from numpy on bfloat16 where the reference ran."""
    space = SearchSpace(MLP_SPACES[0])
    net = noisy_supernet(space, (4,), 2, seed=3)
    obs = torch.randn(5, 4, generator=torch.Generator().manual_seed(3))
    archs, sizes = [space.largest(), space.smallest()], [2, 3]
    for x in (obs.bfloat16(), obs.half(), obs.half().numpy(), obs.double()):
        out = [PopulationForward(net, backend=b)(x, archs, sizes) for b in ("native", "reference")]
        for got, ref in zip(out[0], out[1], strict=True):
            np.testing.assert_allclose(np.asarray(got), np.asarray(ref), rtol=1e-5, atol=1e-5)


@needs_native
def test_the_kernels_take_arrays_whose_dtype_is_an_equal_copy() -> None:
    """An array sent through pickle (a worker process, Ray) carries an equal copy of its dtype,
    not numpy's own object: the native population forward and frame ops take it as they take
    a fresh array (they compared the dtype objects and refused it as "wrong dtype")."""
    import pickle

    from a2d_evo import ops

    def fresh(x: np.ndarray) -> np.ndarray:
        return np.frombuffer(x.tobytes(), x.dtype.type).reshape(x.shape).copy()

    rng = np.random.default_rng(4)
    raw = pickle.loads(pickle.dumps(rng.integers(0, 256, (3, 2, 20, 20), dtype=np.uint8)))
    assert raw.dtype == np.uint8 and raw.dtype is not np.dtype(np.uint8)  # the premise
    frames = ops.preprocess_frames(raw, size=10)
    np.testing.assert_array_equal(frames, ops.preprocess_frames(fresh(raw), size=10))
    stack = pickle.loads(pickle.dumps(np.zeros((3, 4, 10, 10), np.uint8)))
    mask = pickle.loads(pickle.dumps(np.array([True, False, True])))
    pushed = ops.push_frames(raw, stack.copy(), mask)
    np.testing.assert_array_equal(pushed, ops.push_frames(fresh(raw), fresh(stack), fresh(mask)))
    space = SearchSpace(CNN_SPACES[1])
    net = noisy_supernet(space, (4, 52, 52), 4, seed=4)
    obs = pickle.loads(pickle.dumps(rng.integers(0, 256, (2, 4, 52, 52), dtype=np.uint8)))
    archs = [space.largest()]
    fwd = PopulationForward(net, backend="native")
    for got, ref in zip(fwd(obs, archs, [2]), fwd(fresh(obs), archs, [2]), strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(ref))


@needs_native
def test_nan_stays_nan_as_in_the_reference() -> None:
    """A diverged supernet is not scored with plausible numbers: a NaN observation (MLP,
    tanh) or a NaN conv bias (CNN, relu) gives NaN outputs where the torch forward does."""
    space = SearchSpace(MLP_SPACES[0])
    net = noisy_supernet(space, (4,), 2, seed=1)
    obs = np.random.default_rng(1).standard_normal((6, 4)).astype(np.float32)
    obs[2, 0] = np.nan
    archs, sizes = [space.largest(), space.smallest()], [3, 3]
    cnn_space = SearchSpace(CNN_SPACES[2])
    cnn = noisy_supernet(cnn_space, (4, 60, 60), 3, seed=2)
    with torch.no_grad():
        cnn.convs[0].bias[0] = float("nan")
    frames = np.zeros((2, 4, 60, 60), np.uint8)
    cnn_archs = [cnn_space.largest(), cnn_space.smallest()]
    for supernet, x, a, s in ((net, obs, archs, sizes), (cnn, frames, cnn_archs, [1, 1])):
        logits, values = PopulationForward(supernet, backend="native")(x, a, s)
        ref_l, ref_v = reference_forward(supernet, torch.from_numpy(x), a, s)
        assert np.isnan(ref_l.numpy()).any()
        np.testing.assert_array_equal(np.isnan(logits), np.isnan(ref_l.numpy()))
        np.testing.assert_array_equal(np.isnan(values), np.isnan(ref_v.numpy()))
    assert np.isnan(logits).all()  # the CNN: every row reads the NaN channel


@pytest.mark.parametrize("backend", ["reference", "native"])
def test_a_scalar_box_supernet_takes_a_flat_batch_of_scalars(backend: str) -> None:
    """A supernet whose observations are scalars (shape (1,)) takes its batch as (N,), as the
    plain agent does: the same logits and values as the (N, 1) batch, numpy and torch. It was
    refused ("expected shape (N, 1), got (4,)") where the agent took it."""
    if backend == "native" and (native_module() is None):
        pytest.skip("a2d_evo._C is not built")
    space = SearchSpace(SpaceConfig(kind="mlp"))
    net = noisy_supernet(space, (1,), 2, seed=3)
    fwd = PopulationForward(net, backend=backend)
    archs = [MLPArch((4,)), MLPArch((8, 8))]
    flat = np.array([0.1, -0.2, 0.3, 0.5], np.float32)
    want_l, want_v = fwd(flat.reshape(4, 1), archs, [2, 2])
    got_l, got_v = fwd(flat, archs, [2, 2])
    np.testing.assert_array_equal(got_l, want_l)
    np.testing.assert_array_equal(got_v, want_v)
    t_l, t_v = fwd(torch.from_numpy(flat), archs, [2, 2])
    np.testing.assert_array_equal(t_l.numpy(), want_l)
    np.testing.assert_array_equal(t_v.numpy(), want_v)
    assert want_l.shape == (4, 2) and want_v.shape == (4,)


@needs_native
def test_rows_do_not_depend_on_the_batch() -> None:
    """A row's outputs are bit-identical whatever else is in the call (threads, tiles, groups).

    The evaluator relies on it: a candidate's actions do not change as other slots finish.
    """
    rng = np.random.default_rng(0)
    for space_cfg, shape, n in ((MLP_SPACES[0], (6,), 12), (CNN_SPACES[1], (4, 52, 52), 6)):
        space = SearchSpace(space_cfg)  # the MLP kernel and the CNN one (tiles, buffers)
        net = noisy_supernet(space, shape, 3, seed=0)
        fwd = PopulationForward(net, backend="native")
        archs = [space.decode(x) for x in space.sample_encodings(rng, n)]
        if space.kind == "mlp":
            obs = rng.standard_normal((n * 7, *shape)).astype(np.float32)
        else:
            obs = rng.integers(0, 256, (n * 7, *shape), dtype=np.uint8)
        full_l, full_v = fwd(obs, archs, [7] * n)
        for g in (0, n // 2, n - 1):
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


@needs_native
def test_reference_forced_by_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A2D_EVO_REFERENCE_OPS=1 really switches a built PopulationForward off the native kernel."""
    assert MOD is not None
    calls: list[int] = []
    kernel = MOD.subnet_eval_mlp

    def kernel_spy(*args):  # the native kernel, counted
        calls.append(1)
        return kernel(*args)

    monkeypatch.setattr(MOD, "subnet_eval_mlp", kernel_spy)
    space = SearchSpace(MLP_SPACES[0])
    net = noisy_supernet(space, (4,), 2, seed=2)
    fwd = PopulationForward(net)
    archs = [MLPArch((8,)), MLPArch((256, 4, 16))]
    obs = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    assert fwd.backend == "native"
    fwd(obs, archs, [2, 3])
    assert len(calls) == 1
    monkeypatch.setenv(REFERENCE_ENV_VAR, "1")
    assert fwd.backend == "reference" and fwd.backend_name.startswith("reference")
    logits, values = fwd(obs, archs, [2, 3])
    assert len(calls) == 1  # the kernel was not called again
    ref_l, ref_v = reference_forward(net, torch.from_numpy(obs), archs, [2, 3])
    np.testing.assert_array_equal(logits, ref_l.numpy())
    np.testing.assert_array_equal(values, ref_v.numpy())
    monkeypatch.delenv(REFERENCE_ENV_VAR)
    assert fwd.backend == "native"
    fwd(obs, archs, [2, 3])
    assert len(calls) == 2


def test_cuda_takes_the_reference_until_proven(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without A2D_EVO_CUDA_KERNELS a CUDA PopulationForward packs nothing and runs the torch
    loop, even where CUDA kernels are compiled in (a stand-in module here: no GPU needed)."""
    fake = SimpleNamespace(
        has_cuda=lambda: True, subnet_eval_mlp_cuda=_unproven, subnet_eval_cnn_cuda=_unproven
    )
    monkeypatch.setattr(dispatch, "native_module", lambda: fake)
    monkeypatch.delenv(CUDA_ENV_VAR, raising=False)
    monkeypatch.setattr(dispatch, "CUDA_PROVEN", frozenset())
    net = noisy_supernet(SearchSpace(MLP_SPACES[0]), (4,), 2, seed=0)
    fwd = PopulationForward(net, device="cuda")
    assert fwd.backend == "reference" and fwd.packed is None
    # the torch loop runs where the weights are, here the CPU, and says so (it said
    # reference-cuda, the device asked for; found by review)
    assert fwd.backend_name.startswith("reference-cpu")
    with pytest.raises(KernelInputError, match="not available on cuda"):
        _ = PopulationForward(net, device="cuda", backend="native").backend


def _built_for_80_89_90(monkeypatch: pytest.MonkeyPatch) -> tuple[object, SimpleNamespace]:
    """A native module whose CUDA kernels were built for 8.0, 8.9 and 9.0 (the default
    CMAKE_CUDA_ARCHITECTURES), opted in, a GPU said to be there: its kernel and the module."""
    kernel = object()
    fake = SimpleNamespace(
        has_cuda=lambda: True, cuda_architectures=lambda: "80 89 90", subnet_eval_mlp_cuda=kernel
    )
    monkeypatch.setattr(dispatch, "native_module", lambda: fake)
    monkeypatch.setenv(CUDA_ENV_VAR, "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    return kernel, fake


def test_a_gpu_below_the_compiled_architectures_takes_the_reference(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Kernels built for 8.0, 8.9 and 9.0 (the default CMAKE_CUDA_ARCHITECTURES) cannot run on
    a 7.5 GPU (a T4): opted in, its first call failed with "no kernel image is available"
    mid-search; it takes the reference path (found by review)."""
    kernel, fake = _built_for_80_89_90(monkeypatch)
    for capability, runs in [((7, 5), False), ((8, 0), True), ((8, 6), True), ((12, 0), True)]:
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, c=capability: c)
        assert (dispatch.native_op("subnet_eval_mlp", "cuda") is kernel) is runs, capability
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert dispatch.native_op("subnet_eval_mlp", "cuda") is None  # no GPU at all
    # a build that does not say (older modules, `native` or `all` architectures): not gated
    fake.cuda_architectures = lambda: "native"
    assert dispatch.native_op("subnet_eval_mlp", "cuda") is kernel
    if MOD is not None and MOD.has_cuda():  # this build says what it was compiled for
        assert re.findall(r"\d+", MOD.cuda_architectures()), MOD.cuda_architectures()


def test_the_capability_asked_is_the_target_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """A forward pinned to a 7.5 GPU (cuda:1) while an 9.0 one is current takes the reference:
    the check asked the current GPU, and the launch on cuda:1 failed ("no kernel image")."""
    kernel, _ = _built_for_80_89_90(monkeypatch)
    capabilities = {None: (9, 0), "cuda:0": (9, 0), "cuda:1": (7, 5)}
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: capabilities[d])
    assert dispatch.native_op("subnet_eval_mlp", "cuda:1") is None
    assert dispatch.native_op("subnet_eval_mlp", "cuda:0") is kernel
    assert dispatch.native_op("subnet_eval_mlp", "cuda") is kernel  # the current one
    from a2d_evo.ops.subnet_eval import subnet_eval_backend

    assert subnet_eval_backend("mlp", "cuda:1") == "reference"
    assert subnet_eval_backend("mlp", "cuda:0") == "native"


def test_a_bare_cuda_device_is_pinned_to_the_current_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """``device="cuda"`` meant whichever GPU was current at each call, while the packed weights
    stayed on the one current at refresh(): the kernel then read another GPU's memory."""
    monkeypatch.setattr(dispatch, "native_module", lambda: None)  # the reference path: no GPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    net = noisy_supernet(SearchSpace(MLP_SPACES[0]), (4,), 2, seed=0)
    assert PopulationForward(net, device="cuda").device == torch.device("cuda", 1)
    assert PopulationForward(net, device="cuda:0").device == torch.device("cuda", 0)


def _unproven(*args: object) -> None:
    raise AssertionError("an unproven CUDA kernel was called")


@needs_native
def test_backend_name_says_which_path() -> None:
    net = noisy_supernet(SearchSpace(MLP_SPACES[0]), (4,), 2, seed=0)
    fwd = PopulationForward(net)
    assert fwd.backend == "native"
    assert fwd.backend_name.startswith("native-cpu (") and MOD is not None
    assert MOD.subnet_eval_isa() in fwd.backend_name


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
    cnn = CNNArch.nature((8, 16, 16), (), 16)
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
        mlp_fwd(obs, [CNNArch.nature((8, 16, 16), (), 64)], [4])


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
def test_cuda_parity(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a GPU: the parity run that may put subnet_eval_{kind} in ops.dispatch.CUDA_PROVEN."""
    monkeypatch.setenv(CUDA_ENV_VAR, "1")  # opt in: the CUDA kernels are not proven yet
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


@pytest.mark.skipif(native_module() is None, reason="a2d_evo._C is not built")
def test_the_native_cnn_kernel_takes_the_declared_layers_from_the_meta() -> None:
    """No trunk is built into the kernel: kernel, stride and padding of every layer come from
    the packed meta, and a meta the declaration rules forbid is refused."""
    from a2d_evo.config.space import ConvLayerConfig as Conv
    from a2d_evo.nets.population import arch_table, pack_supernet
    from a2d_evo.ops.subnet_eval import meta_fields

    mod = native_module()
    assert not hasattr(mod, "subnet_eval_conv_trunk")
    cfg = SpaceConfig(
        kind="cnn",
        conv=(
            Conv(widths=(4, 8), kernel=3),
            Conv(widths=(4,), kernels=(1, 3), padding="same", optional=True),
        ),
        fc=(8,),
    )
    space = SearchSpace(cfg)
    net = noisy_supernet(space, (2, 10, 10), 3, seed=1)
    pk = pack_supernet(net)
    fields = meta_fields("cnn")
    n_layers = int(pk.meta[fields.index("n_layers")])
    arrays = fields.index("width_max[n_layers]")
    names = [f.split("[")[0] for f in fields[arrays:]]

    def entry(name: str, layer: int) -> int:
        return arrays + names.index(name) * n_layers + layer

    assert pk.meta[entry("kernel_max", 0)] == 3 and pk.meta[entry("kernel_max", 1)] == 3
    assert pk.meta[entry("same", 1)] == 1 and pk.meta[entry("optional", 1)] == 1
    obs = np.zeros((2, 2, 10, 10), np.uint8)
    table = arch_table([space.largest()], pk.arch_len)
    rows = np.array([0, 2], np.int64)
    mod.subnet_eval_cnn(obs, pk.params, pk.meta, table, rows)
    for name, layer, value, match in [
        ("optional", 0, 1, "optional"),
        ("stride", 1, 2, "same-padded with stride 1"),
        ("kernel_max", 1, 4, "odd"),
        ("kernel_max", 0, 16, "at most 15"),
        ("same", 0, 2, "0 or 1"),
    ]:
        meta = pk.meta.copy()
        meta[entry(name, layer)] = value
        with pytest.raises(ValueError, match=match):
            mod.subnet_eval_cnn(obs, pk.params, meta, table, rows)
    big = pk.meta.copy()  # 65536 x 65536 is in each dimension's range, not as a product
    big[fields.index("h_in")] = big[fields.index("w_in")] = 1 << 16
    with pytest.raises(ValueError, match="image too large"):
        mod.subnet_eval_cnn(obs, pk.params, big, table, rows)
    # an arch that skips a required layer or takes a non-elastic layer's kernel elsewhere
    bad = table.copy()
    bad[0, 0] = 0
    with pytest.raises(ValueError, match="not optional"):
        mod.subnet_eval_cnn(obs, pk.params, pk.meta, bad, rows)
    bad = table.copy()
    bad[0, 1] = 1
    with pytest.raises(ValueError, match="kernel invalid"):
        mod.subnet_eval_cnn(obs, pk.params, pk.meta, bad, rows)


def test_spaces_the_native_kernel_cannot_take_run_on_the_reference() -> None:
    from a2d_evo.config.space import ConvLayerConfig as Conv

    conv = (Conv(widths=(2,), kernel=1),) + (Conv(widths=(2,), kernel=1, padding="same"),) * 16
    space = SearchSpace(SpaceConfig(kind="cnn", conv=conv, fc=(4,)))
    net = noisy_supernet(space, (1, 3, 3), 2, seed=2)
    fwd = PopulationForward(net)
    assert fwd.backend == "reference"
    assert "at most 16 conv layers" in fwd.backend_name
    obs = np.ones((2, 1, 3, 3), np.uint8)
    logits, _ = fwd(obs, [space.largest()], [2])
    ref_logits, _ = reference_forward(net, torch.from_numpy(obs), [space.largest()], [2])
    np.testing.assert_allclose(logits, ref_logits.numpy(), rtol=1e-6)
    with pytest.raises(KernelInputError, match="at most 16 conv layers"):
        PopulationForward(net, backend="native")


@needs_native
def test_an_mlp_deeper_than_the_kernel_takes_runs_on_the_reference() -> None:
    """The limits are the native module's own (csrc/subnet_eval.h), not a copy: at the limit
    the kernel runs, one layer deeper (allowed by the config) the torch loop does."""
    assert MOD is not None
    deepest = int(MOD.subnet_eval_limits()["max_mlp_layers"])
    obs = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    for depth, backend in ((deepest, "native"), (deepest + 1, "reference")):
        space = SearchSpace(SpaceConfig(kind="mlp", depths=(1, depth), widths=(3, 5)))
        net = noisy_supernet(space, (4,), 2, seed=depth)
        fwd = PopulationForward(net)
        assert fwd.backend == backend, fwd.backend_name
        archs = [space.largest(), space.smallest()]
        logits, values = fwd(obs, archs, [1, 1])
        ref_l, ref_v = reference_forward(net, torch.from_numpy(obs), archs, [1, 1])
        np.testing.assert_allclose(logits, ref_l.numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(values, ref_v.numpy(), rtol=1e-4, atol=1e-5)
    assert f"at most {deepest} hidden layers, the space has {deepest + 1}" in fwd.backend_name


@needs_native
def test_an_mlp_wider_than_the_cuda_kernel_takes_runs_on_the_reference_there() -> None:
    """The CUDA MLP kernel holds 2 x 16 rows x width floats in 48 KiB of shared memory, so at
    most 384 (the native module's own figure); a wider supernet on a GPU goes to the torch loop
    (before, the kernel raised mid-search). The CPU kernel has no such limit."""
    assert MOD is not None
    top = int(MOD.subnet_eval_limits()["cuda_mlp_max_width"])
    assert top * 2 * 16 * 4 == 48 * 1024
    for obs_dim, width, over in ((4, top, 0), (4, top + 1, top + 8), (top + 1, 16, top + 1)):
        space = SearchSpace(SpaceConfig(kind="mlp", depths=(1,), widths=(4, width)))
        net = noisy_supernet(space, (obs_dim,), 2, seed=width)
        assert unsupported_by_native(net, "cpu") == ""
        why = unsupported_by_native(net, "cuda")
        assert (why == "") == (over == 0), why
        if over:
            assert why.endswith(
                f"up to {top} (the kernel's shared memory), the supernet has {over}"
            )
            # what a GPU run would pick, decided without one (the CUDA kernel is not proven)
            fwd = PopulationForward(net, device="cuda")
            assert fwd.backend == "reference" and why in fwd.backend_name
            # named for where it runs, the weights' device (it said reference-cuda for a
            # supernet left on the CPU; found by review)
            assert fwd.numerics == "reference-cpu", fwd.numerics


@needs_native
def test_a_cnn_beyond_the_kernels_sizes_runs_on_the_reference() -> None:
    """The CNN meta parser takes channels, map sides, padded FC width and heads up to
    max_cnn_dim (2^16): a supernet beyond, here 70,000 actions or 65,537 input channels,
    goes to the torch loop with the reason named (before, the default backend raised
    KernelInputError). One under the limit stays native."""
    assert MOD is not None
    top = int(MOD.subnet_eval_limits()["max_cnn_dim"])
    conv = (ConvLayerConfig(widths=(1, 2), kernel=1),)
    space = SearchSpace(SpaceConfig(kind="cnn", conv=conv, fc=(2,)))
    cases = (((2, 3, 3), top - 8, "native"), ((2, 3, 3), 70_000, "reference"),
             ((top + 1, 2, 2), 3, "reference"))  # fmt: skip
    for shape, n_actions, backend in cases:
        net = noisy_supernet(space, shape, n_actions, seed=n_actions)
        fwd = PopulationForward(net)
        assert fwd.backend == backend, fwd.backend_name
        if backend == "reference":
            assert f"up to {top:,}, the supernet has" in fwd.backend_name
        obs = np.random.default_rng(0).integers(0, 256, (2, *shape)).astype(np.uint8)
        archs = [space.largest(), space.smallest()]
        logits, values = fwd(obs, archs, [1, 1])
        ref_l, ref_v = reference_forward(net, torch.from_numpy(obs), archs, [1, 1])
        np.testing.assert_allclose(logits, ref_l.numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(values, ref_v.numpy(), rtol=1e-4, atol=1e-4)


@needs_native
def test_a_cnn_whose_fc_input_passes_the_kernels_row_limit_runs_on_the_reference(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The meta parser refuses an FC input (map area times the last conv's widest) past
    max_cnn_fc_rows (an int32); the Python check missed it, so such a supernet was packed and
    every call raised KernelInputError (found by review). Real ones need a 2**31-row FC: the
    limit is lowered here, to the 3 x 3 x 2 = 18 of this supernet less one."""
    from a2d_evo.nets import population

    assert MOD is not None
    real = {str(k): int(v) for k, v in MOD.subnet_eval_limits().items()}
    assert real["max_cnn_fc_rows"] == 2**31 - 1
    conv = (ConvLayerConfig(widths=(1, 2), kernel=1),)
    space = SearchSpace(SpaceConfig(kind="cnn", conv=conv, fc=(2,)))
    net = noisy_supernet(space, (2, 3, 3), 3, seed=1)
    assert population.unsupported_by_native(net) == ""
    monkeypatch.setattr(population, "native_limits", lambda: {**real, "max_cnn_fc_rows": 17})
    why = population.unsupported_by_native(net)
    assert why == "an FC input of up to 17 values, the supernet's takes 18", why


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@needs_native
@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads Linux's /proc")
@pytest.mark.skipif(
    "ASAN_OPTIONS" in os.environ, reason="AddressSanitizer quarantines freed memory"
)  # scripts/sanitize.sh
def test_the_cpu_kernel_gives_back_a_large_calls_buffers() -> None:
    """The CNN path keeps per-thread buffers of rows x feature map; one large call (a final
    re-scoring) used to pin them for the process's life. Here about 100 MB: after a small call
    the resident memory falls back by most of it."""
    conv = (ConvLayerConfig(widths=(4, 32), kernel=1),)
    space = SearchSpace(SpaceConfig(kind="cnn", conv=conv, fc=(8,)))
    net = noisy_supernet(space, (4, 10, 10), 3, seed=2)
    fwd = PopulationForward(net, backend="native")
    arch = space.largest()
    big = np.ones((8000, 4, 10, 10), np.uint8)  # 8000 rows x 100 pixels x 32 channels x 4 B
    small = big[:8]
    fwd(small, [arch], [8])
    before = _rss_bytes()
    fwd(big, [arch], [8000])
    grown = _rss_bytes()
    fwd(small, [arch], [8])
    after = _rss_bytes()
    assert grown - before > 80e6, (before, grown)
    assert grown - after > 0.8 * (grown - before), (before, grown, after)


# ----------------------------------------------------------------------------- nets/population.py
def _limits_or_skip() -> dict[str, int]:
    from a2d_evo.ops.subnet_eval import native_limits

    limits = native_limits()
    if limits is None:
        pytest.skip("a2d_evo._C is not built")
    return limits


def _mlp_supernet(obs_dim: int, widths: tuple[int, ...], n_actions: int):
    from a2d_evo.config import SpaceConfig
    from a2d_evo.nets.space import SearchSpace
    from a2d_evo.nets.supernet import Supernet

    torch.manual_seed(0)
    space = SearchSpace(SpaceConfig(kind="mlp", depths=(1,), widths=widths))
    return space, Supernet(space, (obs_dim,), n_actions)


def _cnn_supernet(obs_shape: tuple[int, int, int], n_actions: int):
    from a2d_evo.config import SpaceConfig
    from a2d_evo.config.space import ConvLayerConfig
    from a2d_evo.nets.space import SearchSpace
    from a2d_evo.nets.supernet import Supernet

    torch.manual_seed(0)
    conv = (ConvLayerConfig(widths=(1, 2), kernel=1),)
    space = SearchSpace(SpaceConfig(kind="cnn", conv=conv, fc=(2,)))
    return space, Supernet(space, obs_shape, n_actions)


def test_the_mlp_heads_count_the_value_row_against_the_kernel_s_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """a2d_evo/nets/population.py unsupported_by_native: the MLP kernel's heads are the
    actions plus the value, padded to 8: 8 actions need round_up(9, 8) = 16 rows, over a
    max_mlp_dim of 8 (lowered here; a real one needs 2**16 actions). Mutant let through:
    ``round_up(n_actions, 8)`` = 8, which packed such a supernet and every call raised."""
    from a2d_evo.nets import population

    real = _limits_or_skip()
    _, net = _mlp_supernet(4, (4, 8), 8)
    assert population.unsupported_by_native(net) == ""
    monkeypatch.setattr(population, "native_limits", lambda: {**real, "max_mlp_dim": 8})
    # widest: max(4 inputs, round_up(8, 8)) = 8; heads: round_up(8 + 1, 8) = 16
    assert population.unsupported_by_native(net) == (
        "inputs, padded widths and heads up to 8, the supernet has 16"
    )


def test_an_image_of_exactly_the_kernel_s_plane_runs_natively(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """a2d_evo/nets/population.py unsupported_by_native: max_cnn_plane is the largest image
    taken, so a 3 x 3 image (9 pixels) passes a bound of 9 and not one of 8. Mutant let
    through: ``>=``, which sent images of exactly the kernel's size to the slow torch loop."""
    from a2d_evo.nets import population

    real = _limits_or_skip()
    _, net = _cnn_supernet((2, 3, 3), 3)
    monkeypatch.setattr(population, "native_limits", lambda: {**real, "max_cnn_plane": 9})
    assert population.unsupported_by_native(net) == ""
    monkeypatch.setattr(population, "native_limits", lambda: {**real, "max_cnn_plane": 8})
    assert population.unsupported_by_native(net) == (
        "images of up to 8 pixels, the supernet's has 9"
    )


def test_negative_group_sizes_are_refused_even_when_they_add_up() -> None:
    """a2d_evo/nets/population.py PopulationForward._check: group sizes [-1, 3] add up to
    the 2 rows of obs and are still refused, naming them. Mutant let through: dropping
    ``(sizes < 0).any()``, which left the refusal to the native binding (another message)
    or to the torch loop's ValueError ("must cover the batch"), an error callers catching
    KernelInputError do not expect."""
    from a2d_evo.errors import KernelInputError
    from a2d_evo.nets.population import PopulationForward

    space, net = _mlp_supernet(4, (4, 8), 2)
    archs = [space.largest(), space.smallest()]
    obs = np.zeros((2, 4), np.float32)
    for backend in ("reference", None):
        fwd = PopulationForward(net, backend=backend)
        logits, _ = fwd(obs, archs, [1, 1])
        assert logits.shape == (2, 2)
        with pytest.raises(KernelInputError, match=r"non-negative integers, got \[-1, 3\]"):
            fwd(obs, archs, [-1, 3])


def test_a_cnn_supernet_refuses_float_frames_by_name() -> None:
    """a2d_evo/nets/population.py PopulationForward._check: a CNN supernet takes uint8
    frames; float ones are refused saying so, whichever path runs. Mutant let through:
    dropping that check, which left the refusal to the native binding (a message naming
    no float) or, on the torch loop, to the subnet's TypeError, not a KernelInputError."""
    from a2d_evo.errors import KernelInputError
    from a2d_evo.nets.population import PopulationForward

    space, net = _cnn_supernet((2, 3, 3), 3)
    obs = np.zeros((1, 2, 3, 3), np.float32)
    for backend in ("reference", None):
        fwd = PopulationForward(net, backend=backend)
        with pytest.raises(KernelInputError, match="takes uint8 frames, got float32"):
            fwd(obs, [space.largest()], [1])
