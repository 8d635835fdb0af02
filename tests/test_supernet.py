"""Supernet: parity with extracted agents, grouped forwards, fit checks, gradient locality."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import perturbed

from a2d_evo.config import Config, EnvConfig, SpaceConfig
from a2d_evo.errors import ArchError
from a2d_evo.nets.agent_folder import extract
from a2d_evo.nets.space import Arch, CNNArch, MLPArch, SearchSpace
from a2d_evo.nets.supernet import Supernet

OBS = (4,)

MLP = SearchSpace(SpaceConfig(kind="mlp"))
CNN = SearchSpace(SpaceConfig(kind="cnn"))
ATARI_OBS = (4, 84, 84)


def frames(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, *ATARI_OBS), dtype=torch.uint8, generator=g)


def assert_close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-6) -> None:
    assert a.shape == b.shape
    err = (a - b).abs().max().item()
    assert err <= tol, err


# ----------------------------------------------------------------------------- parity
def test_extraction_folds_the_value_unit_into_the_value_head(tmp_path: Path) -> None:
    """The supernet's head outputs V / sigma; its agents (and population forward) output V."""
    from a2d_evo.nets.population import reference_forward
    from a2d_evo.nets.supernet import load_supernet

    torch.manual_seed(1)
    supernet = Supernet(MLP, (4,), 2)
    assert supernet.value_unit == 1.0  # unset (0) counts as 1
    supernet.value_scale.fill_(4.0)
    obs = torch.randn(8, 4)
    arch = MLPArch((8, 16))
    with torch.no_grad():
        head = supernet(obs, arch)
        agent = extract(supernet, arch)(obs)
        _, pop_values = reference_forward(supernet, obs, [arch], [8])
    assert_close(agent.logits, head.logits)
    assert_close(agent.value, head.value * 4.0, tol=1e-5)
    assert_close(pop_values, head.value * 4.0, tol=1e-5)
    from a2d_evo.ops.dispatch import native_module

    if native_module() is not None:  # the native kernel's packed value head too
        from a2d_evo.nets.population import PopulationForward

        forward = PopulationForward(supernet, backend="native")
        assert forward.backend == "native"
        _, native_values = forward(obs.numpy(), [arch], [8])
        assert_close(torch.from_numpy(native_values), head.value * 4.0, tol=1e-5)
    # the scale is saved with the weights; weights from before value units load as sigma 1
    state = supernet.state_dict()
    torch.save(state, tmp_path / "w.pt")
    cfg = Config(env=EnvConfig(id="CartPole-v1"))
    assert load_supernet(cfg, tmp_path / "w.pt").value_unit == 4.0
    del state["value_scale"]
    torch.save(state, tmp_path / "old.pt")
    assert load_supernet(cfg, tmp_path / "old.pt").value_unit == 1.0


@pytest.mark.parametrize("obs_shape,n_actions", [((4,), 2), ((6,), 3)])
def test_extracted_mlp_equals_supernet(obs_shape: tuple[int, ...], n_actions: int) -> None:
    torch.manual_seed(1)
    supernet = perturbed(Supernet(MLP, obs_shape, n_actions))
    rng = np.random.default_rng(2)
    archs = [MLP.sample(rng) for _ in range(150)] + [MLP.smallest(), MLP.largest()]
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for arch in archs:
            obs = torch.randn(16, *obs_shape, generator=g) * 3
            agent = extract(supernet, arch)
            ref, out = supernet(obs, arch), agent(obs)
            assert out.logits.shape == (16, n_actions) and out.value.shape == (16,)
            assert_close(out.logits, ref.logits)
            assert_close(out.value, ref.value)


def test_extracted_cnn_equals_supernet(cnn_supernet: Supernet) -> None:
    rng = np.random.default_rng(4)
    archs = [CNN.sample(rng) for _ in range(30)] + [CNN.smallest(), CNN.largest()]
    archs.append(CNN.default_teacher())
    with torch.no_grad():
        for i, arch in enumerate(archs):
            obs = frames(4, seed=i)
            agent = extract(cnn_supernet, arch)
            ref, out = cnn_supernet(obs, arch), agent(obs)
            assert out.logits.shape == (4, 6) and out.value.shape == (4,)
            assert_close(out.logits, ref.logits)
            assert_close(out.value, ref.value)


def test_subnets_differ_and_forward_is_stateless(cnn_supernet: Supernet) -> None:
    obs = frames(3, seed=9)
    a, b = CNN.smallest(), CNN.default_teacher()
    with torch.no_grad():
        first = cnn_supernet(obs, a)
        other = cnn_supernet(obs, b)
        again = cnn_supernet(obs, a)
    # no hidden "active subnet": the same arch gives the same numbers whatever ran between
    assert torch.equal(first.logits, again.logits) and torch.equal(first.value, again.value)
    assert not torch.allclose(first.value, other.value)


# ----------------------------------------------------------------------------- groups
def test_forward_groups_equals_per_subnet_forwards(cnn_supernet: Supernet) -> None:
    rng = np.random.default_rng(5)
    archs = [CNN.sample(rng) for _ in range(3)] + [CNN.largest()]
    sizes = [3, 1, 4, 2]
    obs = frames(sum(sizes), seed=6)
    with torch.no_grad():
        out = cnn_supernet.forward_groups(obs, archs, sizes)
        assert out.logits.shape == (10, 6) and out.value.shape == (10,)
        start = 0
        for arch, n in zip(archs, sizes, strict=True):
            ref = cnn_supernet(obs[start : start + n], arch)
            assert torch.equal(out.logits[start : start + n], ref.logits)
            assert torch.equal(out.value[start : start + n], ref.value)
            start += n


def test_forward_groups_mlp_against_extracted_agents() -> None:
    torch.manual_seed(7)
    supernet = Supernet(MLP, (4,), 2)
    rng = np.random.default_rng(8)
    archs = [MLP.sample(rng) for _ in range(8)]
    sizes = [int(n) for n in rng.integers(1, 6, size=8)]
    obs = torch.randn(sum(sizes), 4)
    with torch.no_grad():
        out = supernet.forward_groups(obs, archs, sizes)
        parts = [
            extract(supernet, a)(x) for a, x in zip(archs, torch.split(obs, sizes), strict=True)
        ]
    assert_close(out.logits, torch.cat([p.logits for p in parts]))
    assert_close(out.value, torch.cat([p.value for p in parts]))


def test_forward_groups_rejects_bad_groups() -> None:
    supernet = Supernet(MLP, (4,), 2)
    obs = torch.zeros(5, 4)
    a = MLP.smallest()
    with pytest.raises(ValueError, match="group sizes"):
        supernet.forward_groups(obs, [a, a], [2, 2])
    with pytest.raises(ValueError, match="group sizes"):
        supernet.forward_groups(obs, [a], [2, 3])


def test_forward_groups_takes_an_empty_group() -> None:
    """A group of 0 rows gives 0 outputs (an MLP crashed on reshaping 0 elements)."""
    supernet = Supernet(MLP, (4,), 2)
    a, b = MLPArch((8,)), MLPArch((16, 8))
    obs = torch.randn(3, 4)
    out = supernet.forward_groups(obs, [a, b], [3, 0])
    assert_close(out.logits, supernet(obs, a).logits)
    agent = extract(supernet, a)
    assert agent(torch.zeros(0, 4)).logits.shape == (0, 2)
    assert agent.act(torch.zeros(0, 4)).shape == (0,)


def test_observations_of_another_shape_are_refused(cnn_supernet: Supernet) -> None:
    """Sliced weights fit any input; a wrong shape must raise, not give wrong outputs."""
    mlp = Supernet(MLP, (4,), 2)
    a = MLPArch((8,))
    cases = [
        (mlp, a, torch.zeros(2, 3)),
        (mlp, a, torch.zeros(2, 2, 2)),
        (mlp, a, torch.zeros(4)),
        (cnn_supernet, cnn_supernet.space.largest(), torch.zeros(2, 3, 84, 84, dtype=torch.uint8)),
        (cnn_supernet, cnn_supernet.space.largest(), torch.zeros(2, 4, 76, 76, dtype=torch.uint8)),
    ]
    # a scalar-Box env (obs_shape (1,)): a batch may come as (N,), as it always could
    scalar = Supernet(MLP, (1,), 2)
    flat = torch.randn(3)
    column = flat[:, None]
    assert_close(scalar(flat, a).logits, scalar(column, a).logits)
    assert extract(scalar, a).act(flat.numpy()).shape == (3,)
    for net, arch, obs in cases:
        with pytest.raises(ValueError, match="do not fit this network"):
            net(obs, arch)
        with pytest.raises(ValueError, match="do not fit this network"):
            extract(net, arch)(obs)


# ----------------------------------------------------------------------------- fit checks
@pytest.mark.parametrize(
    "arch",
    [
        MLPArch((512,)),
        MLPArch((4, 4, 4, 4, 4)),
        CNNArch.nature((8, 16, 16), (), 64),
        # widths below 1 sliced weight[:-1] (all but the last row) and ran: no error
        MLPArch((-1,)),
        MLPArch((0,)),
        MLPArch((8, -7)),
        MLPArch(()),
    ],
    ids=str,
)
def test_mlp_supernet_rejects_archs_that_do_not_fit(arch: Arch) -> None:
    supernet = Supernet(MLP, (4,), 2)
    with pytest.raises(ArchError):
        supernet(torch.zeros(1, 4), arch)
    with pytest.raises(ArchError):
        extract(supernet, arch)


@pytest.mark.parametrize(
    "arch",
    [
        CNNArch.nature((65, 16, 16), (), 64),
        CNNArch.nature((8, 129, 16), (), 64),
        CNNArch.nature((8, 16, 256), (), 64),
        CNNArch.nature((8, 16, 16), ((16, 3),) * 3, 64),
        CNNArch.nature((8, 16, 16), ((256, 3),), 64),
        CNNArch.nature((8, 16, 16), ((16, 7),), 64),
        CNNArch.nature((8, 16, 16), ((16, 4),), 64),
        CNNArch.nature((8, 16, 16), (), 2048),
        MLPArch((4,)),
        CNNArch.nature((-8, 16, 16), (), 64),
        CNNArch.nature((0, 16, 16), (), 64),
        CNNArch.nature((8, 16, 16), ((16, -1),), 64),
        CNNArch.nature((8, 16, 16), (), 0),
    ],
    ids=str,
)
def test_cnn_supernet_rejects_archs_that_do_not_fit(cnn_supernet: Supernet, arch: Arch) -> None:
    with pytest.raises(ArchError):
        cnn_supernet(frames(1, seed=0), arch)
    with pytest.raises(ArchError):
        extract(cnn_supernet, arch)


def test_archs_outside_the_space_but_inside_the_supernet_work(cnn_supernet: Supernet) -> None:
    # widths between the choices are still slices of the supernet
    arch = CNNArch.nature((10, 20, 30), ((40, 1),), 100)
    assert not CNN.contains(arch)
    obs = frames(2, seed=1)
    with torch.no_grad():
        ref, out = cnn_supernet(obs, arch), extract(cnn_supernet, arch)(obs)
    assert_close(out.logits, ref.logits)
    assert_close(out.value, ref.value)


def test_image_networks_refuse_frames_scaled_already(cnn_supernet: Supernet) -> None:
    """The network scales frames itself (obs_scale): float frames, 0-1 already, would be
    divided by 255 again without a word; uint8 and bool (MinAtar's planes) are taken."""
    arch = CNN.largest()
    obs = frames(2, seed=3)
    agent = extract(cnn_supernet, arch)
    for net in (lambda x: cnn_supernet(x, arch), agent):
        with pytest.raises(TypeError, match="takes the env's frames as uint8"):
            net(obs.float() / 255)
        assert net(obs).logits.shape == (2, cnn_supernet.n_actions)
        assert net(obs > 127).logits.shape == (2, cnn_supernet.n_actions)


# ----------------------------------------------------------------------------- gradients
def _loss(out: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    logits, value = out
    return logits.pow(2).sum() + logits.sum() + value.pow(2).sum() + value.sum()


def test_mlp_gradient_flows_only_into_active_slices() -> None:
    torch.manual_seed(10)
    supernet = Supernet(MLP, (4,), 2)
    arch = MLPArch((8, 12))
    obs = torch.randn(32, 4)
    _loss(supernet(obs, arch)).backward()
    active = {
        "layers.0.weight": (slice(0, 8), slice(0, 4)),
        "layers.0.bias": (slice(0, 8),),
        "layers.1.weight": (slice(0, 12), slice(0, 8)),
        "layers.1.bias": (slice(0, 12),),
        "policy.weight": (slice(None), slice(0, 12)),
        "policy.bias": (slice(None),),
        "value.weight": (slice(None), slice(0, 12)),
        "value.bias": (slice(None),),
    }
    _check_gradient_locality(supernet, active)

    # and the active slices receive exactly the extracted agent's gradients
    agent = extract(supernet, arch)
    _loss(agent(obs)).backward()
    for name, p in agent.named_parameters():
        grad = dict(supernet.named_parameters())[name].grad
        assert grad is not None and p.grad is not None
        assert_close(grad[active[name]], p.grad, tol=1e-5)


def test_cnn_gradient_flows_only_into_active_slices(cnn_supernet: Supernet) -> None:
    supernet = cnn_supernet
    supernet.zero_grad(set_to_none=True)
    arch = CNNArch.nature((8, 16, 32), ((16, 3),), 64)
    obs = frames(8, seed=12)
    try:
        _loss(supernet(obs, arch)).backward()
        # extra conv 0 is 128 x 128 x 5 x 5 in the supernet; the 3x3 is its centre [1:4, 1:4]
        area = 7 * 7
        active = {
            "convs.0.weight": (slice(0, 8), slice(None), slice(None), slice(None)),
            "convs.0.bias": (slice(0, 8),),
            "convs.1.weight": (slice(0, 16), slice(0, 8), slice(None), slice(None)),
            "convs.1.bias": (slice(0, 16),),
            "convs.2.weight": (slice(0, 32), slice(0, 16), slice(None), slice(None)),
            "convs.2.bias": (slice(0, 32),),
            "convs.3.weight": (slice(0, 16), slice(0, 32), slice(1, 4), slice(1, 4)),
            "convs.3.bias": (slice(0, 16),),
            "fc.weight": (slice(0, 64), slice(0, 16 * area)),
            "fc.bias": (slice(0, 64),),
            "policy.weight": (slice(None), slice(0, 64)),
            "policy.bias": (slice(None),),
            "value.weight": (slice(None), slice(0, 64)),
            "value.bias": (slice(None),),
        }
        _check_gradient_locality(supernet, active)
        agent = extract(supernet, arch)
        _loss(agent(obs)).backward()
        params = dict(supernet.named_parameters())
        for name, p in agent.named_parameters():
            grad = params[name].grad
            assert grad is not None and p.grad is not None
            assert_close(grad[active[name]], p.grad, tol=1e-4)
    finally:
        supernet.zero_grad(set_to_none=True)


def _check_gradient_locality(supernet: Supernet, active: dict[str, tuple[slice, ...]]) -> None:
    for name, p in supernet.named_parameters():
        if name not in active:
            assert p.grad is None or not p.grad.any(), f"{name} got a gradient"
            continue
        assert p.grad is not None, name
        mask = torch.zeros_like(p.grad, dtype=torch.bool)
        mask[active[name]] = True
        assert p.grad[mask].abs().sum() > 0, f"{name}: no gradient in the active slice"
        assert not p.grad[~mask].any(), f"{name}: gradient outside the active slice"


def test_supernet_weights_with_nan_are_refused(tmp_path: Path) -> None:
    """As load_agent refuses them: NaN logits argmax to action 0 on every path, so a diverged
    supernet was scored with plausible returns (9.2 on CartPole for every arch)."""
    from a2d_evo.config import config_from_dict
    from a2d_evo.errors import FormatError
    from a2d_evo.nets.supernet import build_supernet, load_supernet
    from a2d_evo.runs.files import torch_save

    cfg = config_from_dict({"env": {"id": "CartPole-v1"}})
    state = build_supernet(cfg).state_dict()
    torch_save(tmp_path / "ok.pt", state)
    assert load_supernet(cfg, tmp_path / "ok.pt")
    name = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)
    state[name] = state[name].clone()
    state[name].view(-1)[0] = float("nan")
    torch_save(tmp_path / "nan.pt", state)
    with pytest.raises(FormatError, match="holds NaN or infinite values"):
        load_supernet(cfg, tmp_path / "nan.pt")


def test_supernet_weights_of_another_dtype_or_not_stored_are_refused(tmp_path: Path) -> None:
    """As load_agent refuses them: a tensor of another dtype was cast without a word (an int
    one skipped the finite check), and a stride-0 view of one stored value has the shape of
    a whole weight."""
    from a2d_evo.config import config_from_dict
    from a2d_evo.errors import FormatError
    from a2d_evo.nets.supernet import build_supernet, load_supernet
    from a2d_evo.runs.files import torch_save

    cfg = config_from_dict({"env": {"id": "CartPole-v1"}})
    state = build_supernet(cfg).state_dict()
    name = next(k for k, v in state.items() if v.is_floating_point() and v.dim() == 2)
    for bad, why in (
        (state[name].to(torch.int64), "has dtype torch.int64, expected torch.float32"),
        (state[name].half(), "has dtype torch.float16"),
        (torch.zeros(1).expand(state[name].shape), "is not a dense tensor of its shape"),
    ):
        torch_save(tmp_path / "bad.pt", {**state, name: bad})
        with pytest.raises(FormatError, match=why):
            load_supernet(cfg, tmp_path / "bad.pt")


# ----------------------------------------------------------------------------- nets/supernet.py
def test_a_layer_after_an_optional_one_takes_the_wider_of_its_possible_inputs() -> None:
    """A conv after an optional layer may get the optional layer's channels or, when it is
    skipped, the layer before's: its weight holds the wider (8, not the optional layer's 2),
    and so does the FC after a last optional layer. Every arch of such a space runs and
    equals its extracted agent."""
    import torch

    from a2d_evo.config.space import ConvLayerConfig as Conv
    from a2d_evo.nets.agent_folder import extract
    from a2d_evo.nets.space import CNNArch
    from a2d_evo.nets.supernet import Supernet

    conv = (
        Conv(widths=(4, 8), kernel=3),
        Conv(widths=(2,), kernels=(3,), padding="same", optional=True),
        Conv(widths=(4,), kernel=3),
        Conv(widths=(2,), kernels=(3,), padding="same", optional=True),
    )
    space = SearchSpace(SpaceConfig(kind="cnn", conv=conv, fc=(16,)))
    torch.manual_seed(0)
    net = Supernet(space, (3, 9, 9), 2)
    assert net.convs[2].in_channels == 8 and net.fc.in_features == 4 * 5 * 5
    obs = torch.randint(0, 256, (5, 3, 9, 9), dtype=torch.uint8)
    seen = set()
    for x in space.sample_encodings(np.random.default_rng(0), 64):
        arch = space.decode(x)
        assert isinstance(arch, CNNArch)
        seen.add(str(arch))
        out, agent_out = net(obs, arch), extract(net, arch)(obs)
        torch.testing.assert_close(out.logits, agent_out.logits)
    assert len(seen) == 8  # conv0 4 or 8, each optional layer on or off
    # an FC wider than the supernet's (16) would be sliced to 16 units: refused
    from dataclasses import replace

    from a2d_evo.errors import ArchError

    largest = space.largest()
    assert isinstance(largest, CNNArch)
    net.check(largest)
    with pytest.raises(ArchError, match="does not fit the supernet"):
        net.check(replace(largest, fc=17))


def test_the_supernet_refuses_an_mlp_arch_wider_than_its_layers() -> None:
    """A width above the supernet's widest layer would be sliced to fewer units without an
    error: ``check`` refuses it (the widest is taken)."""
    from a2d_evo.errors import ArchError
    from a2d_evo.nets.supernet import Supernet

    net = Supernet(SearchSpace(SpaceConfig(kind="mlp", depths=(1, 2), widths=(4, 8))), OBS, 2)
    net.check(MLPArch((8, 8)))
    for bad in (MLPArch((9,)), MLPArch((8, 9)), MLPArch((4, 4, 4)), MLPArch((0,))):
        with pytest.raises(ArchError, match="does not fit the supernet"):
            net.check(bad)
