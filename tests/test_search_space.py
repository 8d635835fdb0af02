"""SearchSpace: encode/decode/canonical invariants, bounds, size, sampling, arch values."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from a2d_evo.config import SpaceConfig
from a2d_evo.errors import ArchError
from a2d_evo.nets.agent import Agent
from a2d_evo.nets.space import Arch, CNNArch, MLPArch, SearchSpace, arch_from_dict
from a2d_evo.nets.supernet import Supernet

MLP = SearchSpace(SpaceConfig(kind="mlp"))
CNN = SearchSpace(SpaceConfig(kind="cnn"))
SPACES = {"mlp": MLP, "cnn": CNN}
OBS = {"mlp": (4,), "cnn": (4, 84, 84)}

SMALL_MLP = SpaceConfig(kind="mlp", depths=(1, 2, 3), widths=(4, 8, 16))
SMALL_CNN = SpaceConfig(
    kind="cnn",
    conv1=(8, 16),
    conv2=(16,),
    conv3=(16, 32),
    extra_depths=(0, 1, 2),
    extra_widths=(16, 32),
    extra_kernels=(3, 5),
    fc=(64, 128),
)
# no zero-depth option: the n_extra gene indexes (1, 2), not the depth itself
SMALL_CNN_NO_ZERO = SpaceConfig(
    kind="cnn",
    conv1=(8,),
    conv2=(16,),
    conv3=(16,),
    extra_depths=(1, 2),
    extra_widths=(16, 32, 48),
    extra_kernels=(3,),
    fc=(64,),
)


def vectors(space: SearchSpace) -> st.SearchStrategy[np.ndarray]:
    """Any in-bounds gene vector (not necessarily canonical)."""
    genes = [st.integers(int(lo), int(hi)) for lo, hi in zip(space.xl, space.xu, strict=True)]
    return st.tuples(*genes).map(lambda t: np.array(t, dtype=np.int64))


def mlp_archs(cfg: SpaceConfig) -> st.SearchStrategy[MLPArch]:
    return st.sampled_from(cfg.depths).flatmap(
        lambda d: st.lists(st.sampled_from(cfg.widths), min_size=d, max_size=d).map(
            lambda w: MLPArch(tuple(w))
        )
    )


def cnn_archs(cfg: SpaceConfig) -> st.SearchStrategy[CNNArch]:
    extra = st.tuples(st.sampled_from(cfg.extra_widths), st.sampled_from(cfg.extra_kernels))
    return st.builds(
        lambda c1, c2, c3, ex, fc: CNNArch((c1, c2, c3), tuple(ex), fc),
        st.sampled_from(cfg.conv1),
        st.sampled_from(cfg.conv2),
        st.sampled_from(cfg.conv3),
        st.sampled_from(cfg.extra_depths).flatmap(
            lambda n: st.lists(extra, min_size=n, max_size=n)
        ),
        st.sampled_from(cfg.fc),
    )


ARCHS: dict[str, st.SearchStrategy[Arch]] = {
    "mlp": mlp_archs(MLP.cfg),
    "cnn": cnn_archs(CNN.cfg),
}


# ----------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_decode_encode_round_trip(kind: str, data: st.DataObject) -> None:
    space = SPACES[kind]
    arch = data.draw(ARCHS[kind])
    x = space.encode(arch)
    assert x.dtype == np.int64 and x.shape == (space.n_var,)
    assert space.decode(x) == arch
    np.testing.assert_array_equal(space.canonical(x), x)  # encode is canonical


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_encode_decode_is_canonical(kind: str, data: st.DataObject) -> None:
    space = SPACES[kind]
    x = data.draw(vectors(space))
    c = space.canonical(x)
    np.testing.assert_array_equal(space.encode(space.decode(x)), c)
    np.testing.assert_array_equal(space.canonical(c), c)  # idempotent
    assert space.decode(c) == space.decode(x)
    assert space.key(x) == space.key(c)
    # floats holding integers decode to the same arch
    assert space.decode(x.astype(np.float64)) == space.decode(x)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_equal_canonical_iff_equal_arch(kind: str, data: st.DataObject) -> None:
    space = SPACES[kind]
    x = data.draw(vectors(space))
    # y: either independent, or x with its inactive genes scrambled (same network)
    if data.draw(st.booleans()):
        y = data.draw(vectors(space))
    else:
        y = x.copy()
        for i in _inactive(space, x):
            y[i] = data.draw(st.integers(int(space.xl[i]), int(space.xu[i])))
    same_vec = np.array_equal(space.canonical(x), space.canonical(y))
    same_arch = space.decode(x) == space.decode(y)
    assert same_vec == same_arch
    assert (space.key(x) == space.key(y)) == same_arch


def _inactive(space: SearchSpace, x: np.ndarray) -> list[int]:
    if space.kind == "mlp":
        depth = space.choices[0][x[0]]
        return list(range(1 + depth, space.n_var))
    n_extra = space.choices[3][x[3]]
    return list(range(4 + 2 * n_extra, 4 + 2 * space.max_extra))


def test_canonical_of_a_matrix_is_row_wise() -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(CNN.xl, CNN.xu + 1, size=(50, CNN.n_var))
    c = CNN.canonical(x)
    assert c.shape == x.shape
    for row, crow in zip(x, c, strict=True):
        np.testing.assert_array_equal(CNN.canonical(row), crow)
    assert CNN.canonical(np.zeros((0, CNN.n_var))).shape == (0, CNN.n_var)


# ----------------------------------------------------------------------------- bounds
def test_bounds_match_the_choices() -> None:
    # MLP: [depth, width_1..width_4]; CNN: [c1, c2, c3, n_extra, (w, k) x 2, fc]
    np.testing.assert_array_equal(MLP.xl, np.zeros(5))
    np.testing.assert_array_equal(MLP.xu, [3, 11, 11, 11, 11])
    np.testing.assert_array_equal(CNN.xl, np.zeros(9))
    np.testing.assert_array_equal(CNN.xu, [5, 5, 5, 2, 5, 1, 5, 1, 4])
    for space in SPACES.values():
        assert space.n_var == len(space.choices)
        assert [len(c) - 1 for c in space.choices] == space.xu.tolist()


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_out_of_bounds_and_malformed_vectors_raise(kind: str) -> None:
    space = SPACES[kind]
    for i in range(space.n_var):
        for bad in (space.xl[i] - 1, space.xu[i] + 1):
            x = space.xl.copy()
            x[i] = bad
            with pytest.raises(ArchError, match=f"gene {i} = {bad} is outside"):
                space.decode(x)
            with pytest.raises(ArchError):
                space.canonical(x)
    with pytest.raises(ArchError, match="expected shape"):
        space.decode(np.zeros(space.n_var + 1))
    with pytest.raises(ArchError, match="expected shape"):
        space.decode(np.zeros(space.n_var - 1))
    x = space.xl.astype(np.float64)
    x[0] = 0.5
    with pytest.raises(ArchError, match="integers"):
        space.decode(x)
    x[0] = np.nan
    with pytest.raises(ArchError, match="integers"):
        space.decode(x)
    with pytest.raises(ArchError):
        space.decode(["a"] * space.n_var)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_corners_of_the_box_decode(kind: str) -> None:
    space = SPACES[kind]
    assert space.decode(space.xl) == space.smallest()
    assert space.decode(space.xu) == space.largest()


def test_encode_refuses_archs_outside_the_space() -> None:
    with pytest.raises(ArchError, match="widths\\[1\\] = 5"):
        MLP.encode(MLPArch((4, 5)))
    with pytest.raises(ArchError, match="depth"):
        MLP.encode(MLPArch((4,) * 5))
    with pytest.raises(ArchError, match="not a mlp arch"):
        MLP.encode(CNNArch((8, 16, 16), (), 64))
    with pytest.raises(ArchError, match="not a cnn arch"):
        CNN.encode(MLPArch((4,)))
    with pytest.raises(ArchError, match="extra\\[0\\] kernel = 7"):
        CNN.encode(CNNArch((8, 16, 16), ((16, 7),), 64))
    with pytest.raises(ArchError, match="number of extra convs = 3"):
        CNN.encode(CNNArch((8, 16, 16), ((16, 3),) * 3, 64))
    with pytest.raises(ArchError, match="fc = 2048"):
        CNN.encode(CNNArch((8, 16, 16), (), 2048))
    assert not CNN.contains(CNNArch((8, 16, 16), (), 2048))
    assert CNN.contains(CNNArch((8, 16, 16), (), 64))


# ----------------------------------------------------------------------------- size
@pytest.mark.parametrize("cfg", [SMALL_MLP, SMALL_CNN, SMALL_CNN_NO_ZERO], ids=str)
def test_size_equals_brute_force_count(cfg: SpaceConfig) -> None:
    space = SearchSpace(cfg)
    every = np.array(
        list(itertools.product(*[range(int(h) + 1) for h in space.xu])), dtype=np.int64
    )
    canon = {space.key(x) for x in every}
    archs = {space.decode(x) for x in every}
    assert len(canon) == len(archs) == space.size()


def test_small_space_sizes_by_hand() -> None:
    # MLP: 3 + 3^2 + 3^3 = 39
    assert SearchSpace(SMALL_MLP).size() == 39
    # CNN: trunk 2*1*2*2 = 8, extras (2 widths x 2 kernels = 4): 1 + 4 + 16 = 21 -> 168
    assert SearchSpace(SMALL_CNN).size() == 168
    # extras (3 widths x 1 kernel): 3 + 9 = 12
    assert SearchSpace(SMALL_CNN_NO_ZERO).size() == 12


def test_default_space_sizes() -> None:
    # 12 + 12^2 + 12^3 + 12^4 = 12 + 144 + 1728 + 20736
    assert MLP.size() == 22_620
    # trunk 6*6*6*5 = 1080, extras (6 widths x 2 kernels = 12): 1 + 12 + 144 = 157
    assert CNN.size() == 169_560


# ----------------------------------------------------------------------------- sampling
def test_sampling_is_seeded_canonical_and_covers_the_genes() -> None:
    a = MLP.sample_encodings(np.random.default_rng(7), 500)
    b = MLP.sample_encodings(np.random.default_rng(7), 500)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(MLP.canonical(a), a)
    # every depth and every width index appears in 500 draws
    assert set(a[:, 0]) == set(range(4))
    assert set(a[:, 1]) == set(range(12))
    assert MLP.sample(np.random.default_rng(1)) == MLP.sample(np.random.default_rng(1))


@pytest.mark.parametrize("kind,n", [("mlp", 40), ("cnn", 8)])
def test_every_sampled_arch_builds(kind: str, n: int) -> None:
    space = SPACES[kind]
    rng = np.random.default_rng(11)
    torch.manual_seed(0)
    obs_shape, n_actions = OBS[kind], 5
    supernet = Supernet(space, obs_shape, n_actions)
    if kind == "cnn":
        obs = torch.randint(0, 256, (2, *obs_shape), dtype=torch.uint8)
    else:
        obs = torch.randn(2, *obs_shape)
    archs = [space.sample(rng) for _ in range(n)] + [space.smallest(), space.largest()]
    with torch.no_grad():
        for arch in archs:
            assert space.contains(arch)
            for net in (Agent(arch, obs_shape, n_actions), lambda o, a=arch: supernet(o, a)):
                logits, value = net(obs)
                assert logits.shape == (2, n_actions) and value.shape == (2,)
                assert torch.isfinite(logits).all() and torch.isfinite(value).all()


def test_largest_and_smallest() -> None:
    assert MLP.largest() == MLPArch((256, 256, 256, 256))
    assert MLP.smallest() == MLPArch((4,))
    assert CNN.largest() == CNNArch((64, 128, 128), ((128, 5), (128, 5)), 1024)
    assert CNN.smallest() == CNNArch((8, 16, 16), (), 64)


def test_default_teachers_and_scaled_nature_are_in_the_space() -> None:
    assert MLP.default_teacher() == MLPArch((64, 64))
    nature = CNNArch((32, 64, 64), (), 512)
    assert CNN.default_teacher() == nature
    for scale in (0.25, 0.5, 1.0):
        scaled = CNNArch((int(32 * scale), int(64 * scale), int(64 * scale)), (), int(512 * scale))
        assert CNN.contains(scaled), scaled


# ----------------------------------------------------------------------------- arch values
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_arch_dict_round_trip(kind: str, data: st.DataObject) -> None:
    arch = data.draw(ARCHS[kind])
    assert arch_from_dict(arch.to_dict()) == arch
    assert arch_from_dict(json.loads(json.dumps(arch.to_dict()))) == arch
    assert hash(arch_from_dict(arch.to_dict())) == hash(arch)


def test_arch_str() -> None:
    assert str(MLPArch((64, 64))) == "mlp-64x64"
    assert str(CNNArch((32, 64, 64), ((48, 3),), 512)) == "cnn-32-64-64-48k3-fc512"


@pytest.mark.parametrize(
    "data,match",
    [
        ([1, 2], "expected a mapping"),
        ({"kind": "rnn"}, "expected 'mlp' or 'cnn'"),
        ({"widths": [4]}, "expected 'mlp' or 'cnn'"),
        ({"kind": "mlp"}, "missing keys \\['widths'\\]"),
        ({"kind": "mlp", "widths": [4], "depth": 1}, "unknown keys \\['depth'\\]"),
        ({"kind": "mlp", "widths": []}, "at least one hidden layer"),
        ({"kind": "mlp", "widths": 4}, "expected a list"),
        ({"kind": "mlp", "widths": [4, 0]}, "positive int"),
        ({"kind": "mlp", "widths": [4, True]}, "positive int"),
        ({"kind": "mlp", "widths": [4.0]}, "positive int"),
        ({"kind": "mlp", "widths": ["4"]}, "positive int"),
        ({"kind": "cnn", "conv": [8, 16], "extra": [], "fc": 64}, "expected 3 widths"),
        ({"kind": "cnn", "conv": [8, 16, 16], "extra": [[16]], "fc": 64}, "\\[width, kernel\\]"),
        ({"kind": "cnn", "conv": [8, 16, 16], "extra": [], "fc": -1}, "positive int"),
        ({"kind": "cnn", "conv": [8, 16, 16], "fc": 64}, "missing keys \\['extra'\\]"),
    ],
)
def test_arch_from_dict_errors(data: object, match: str) -> None:
    with pytest.raises(ArchError, match=match):
        arch_from_dict(data)
