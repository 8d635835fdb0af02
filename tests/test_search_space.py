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
from a2d_evo.config.space import ConvLayerConfig as Conv
from a2d_evo.errors import ArchError
from a2d_evo.nets.agent import Agent
from a2d_evo.nets.space import Arch, CNNArch, ConvLayer, MLPArch, SearchSpace, arch_from_dict
from a2d_evo.nets.supernet import Supernet

MLP = SearchSpace(SpaceConfig(kind="mlp"))
CNN = SearchSpace(SpaceConfig(kind="cnn"))
MINATAR = SpaceConfig(
    kind="cnn",
    conv=(
        Conv(widths=(4, 8, 16, 24, 32), kernel=3),
        Conv(widths=(4, 8, 16), kernel=3, padding="same", optional=True),
    ),
    fc=(16, 32, 64, 128, 256),
)
SPACES = {"mlp": MLP, "cnn": CNN, "minatar": SearchSpace(MINATAR)}
OBS = {"mlp": (4,), "cnn": (4, 84, 84), "minatar": (4, 10, 10)}

SMALL_MLP = SpaceConfig(kind="mlp", depths=(1, 2, 3), widths=(4, 8, 16))
SMALL_CNN = SpaceConfig(
    kind="cnn",
    conv=(
        Conv(widths=(8, 16), kernel=8, stride=4),
        Conv(widths=(16,), kernel=4, stride=2),
        Conv(widths=(16, 32), kernel=3),
        Conv(widths=(16, 32), kernels=(3, 5), padding="same", optional=True),
        Conv(widths=(16, 32), kernels=(3, 5), padding="same", optional=True),
    ),
    fc=(64, 128),
)
# an optional layer between required ones, and a fixed same-padded kernel
SMALL_CNN_MIDDLE = SpaceConfig(
    kind="cnn",
    conv=(
        Conv(widths=(8,), kernel=3),
        Conv(widths=(16, 32, 48), kernel=3, padding="same", optional=True),
        Conv(widths=(4, 8), kernel=2, stride=2),
    ),
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
    """Archs built layer by layer from the declaration (independently of SearchSpace)."""

    def layer(c: Conv) -> st.SearchStrategy[ConvLayer | None]:
        on = st.builds(
            lambda w, k: ConvLayer(w, k, c.stride, c.padding),
            st.sampled_from(c.widths),
            st.sampled_from(c.kernel_choices),
        )
        return st.one_of(st.none(), on) if c.optional else on

    return st.builds(
        lambda convs, fc: CNNArch(tuple(convs), fc),
        st.tuples(*[layer(c) for c in cfg.conv]),
        st.sampled_from(cfg.fc),
    )


ARCHS: dict[str, st.SearchStrategy[Arch]] = {
    "mlp": mlp_archs(MLP.cfg),
    "cnn": cnn_archs(CNN.cfg),
    "minatar": cnn_archs(MINATAR),
}
KINDS = list(ARCHS)


# ----------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_decode_encode_round_trip(kind: str, data: st.DataObject) -> None:
    space = SPACES[kind]
    arch = data.draw(ARCHS[kind])
    x = space.encode(arch)
    assert x.dtype == np.int64 and x.shape == (space.n_var,)
    assert space.decode(x) == arch
    np.testing.assert_array_equal(space.canonical(x), x)  # encode is canonical


@pytest.mark.parametrize("kind", KINDS)
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


@pytest.mark.parametrize("kind", KINDS)
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
    return [g for on, w, k in space.layer_genes if on >= 0 and x[on] == 0 for g in (w, k) if g >= 0]


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
    # MLP: [depth, width_1..width_4]; CNN: [w0, w1, w2, (on, w, k) x 2, fc]
    np.testing.assert_array_equal(MLP.xl, np.zeros(5))
    np.testing.assert_array_equal(MLP.xu, [3, 11, 11, 11, 11])
    np.testing.assert_array_equal(CNN.xl, np.zeros(10))
    np.testing.assert_array_equal(CNN.xu, [5, 5, 5, 1, 5, 1, 1, 5, 1, 4])
    assert CNN.layer_genes == [(-1, 0, -1), (-1, 1, -1), (-1, 2, -1), (3, 4, 5), (6, 7, 8)]
    # MinAtar: [w0, on1, w1, fc] (fixed kernels: no kernel genes)
    np.testing.assert_array_equal(SPACES["minatar"].xu, [4, 1, 2, 4])
    for space in SPACES.values():
        assert space.n_var == len(space.choices)
        assert [len(c) - 1 for c in space.choices] == space.xu.tolist()


@pytest.mark.parametrize("kind", KINDS)
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


@pytest.mark.parametrize("kind", KINDS)
def test_corners_of_the_box_decode(kind: str) -> None:
    space = SPACES[kind]
    assert space.decode(space.xl) == space.smallest()
    assert space.decode(space.xu) == space.largest()


def test_encode_refuses_archs_outside_the_space() -> None:
    small = CNNArch.nature((8, 16, 16), (), 64)
    with pytest.raises(ArchError, match="widths\\[1\\] = 5"):
        MLP.encode(MLPArch((4, 5)))
    with pytest.raises(ArchError, match="depth"):
        MLP.encode(MLPArch((4,) * 5))
    with pytest.raises(ArchError, match="not a mlp arch"):
        MLP.encode(small)
    with pytest.raises(ArchError, match="not a cnn arch"):
        CNN.encode(MLPArch((4,)))
    with pytest.raises(ArchError, match="conv\\[3\\] kernel = 7"):
        CNN.encode(CNNArch.nature((8, 16, 16), ((16, 7),), 64))
    with pytest.raises(ArchError, match="has 6 conv layers, the space 5"):
        CNN.encode(CNNArch.nature((8, 16, 16), ((16, 3),) * 3, 64))
    with pytest.raises(ArchError, match="fc = 2048"):
        CNN.encode(CNNArch.nature((8, 16, 16), (), 2048))
    with pytest.raises(ArchError, match="conv layer 0 has stride 2"):
        CNN.encode(CNNArch((ConvLayer(8, 8, 2), *small.convs[1:]), 64))
    with pytest.raises(ArchError, match="conv\\[1\\] kernel = 3, the space's layer has kernel 4"):
        CNN.encode(CNNArch((small.convs[0], ConvLayer(16, 3, 2), small.convs[2]), 64))
    with pytest.raises(ArchError, match="skips conv layer 2, which is not optional"):
        CNN.encode(CNNArch((*small.convs[:2], None, ConvLayer(16, 3, 1, "same")), 64))
    assert not CNN.contains(CNNArch.nature((8, 16, 16), (), 2048))
    assert CNN.contains(small)
    # a skipped middle layer: the second optional conv alone
    assert CNN.contains(CNNArch((*small.convs, None, ConvLayer(16, 5, 1, "same")), 64))


def test_cnn_arch_values() -> None:
    with pytest.raises(ArchError, match="first conv layer"):
        CNNArch((None, ConvLayer(8, 3)), 16)
    # trailing skipped layers are dropped: one value per network
    a = CNNArch((ConvLayer(8, 3), None, None), 16)
    assert a == CNNArch((ConvLayer(8, 3),), 16) and a.convs == (ConvLayer(8, 3),)
    assert ConvLayer(8, 5, 1, "same").out_size(7) == 7
    assert ConvLayer(8, 8, 4).out_size(84) == 20
    assert ConvLayer(8, 3, 2, "same").out_size(9) == 5
    b = CNNArch.nature((32, 64, 64), ((48, 3),), 512)
    assert b.map_widths(lambda w: w // 2) == CNNArch.nature((16, 32, 32), ((24, 3),), 256)
    assert b.last_width == 48 and [i for i, _ in b.active] == [0, 1, 2, 3]


# ----------------------------------------------------------------------------- size
@pytest.mark.parametrize("cfg", [SMALL_MLP, SMALL_CNN, SMALL_CNN_MIDDLE, MINATAR], ids=str)
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
    # CNN: trunk 2*1*2 = 4, each optional layer (2 widths x 2 kernels) or off: 5, fc 2
    assert SearchSpace(SMALL_CNN).size() == 4 * 5 * 5 * 2
    # 1 * (3 + 1) * 2 * 1
    assert SearchSpace(SMALL_CNN_MIDDLE).size() == 8
    # MinAtar: 5 conv widths x (3 + off) x 5 FC widths
    assert SearchSpace(MINATAR).size() == 100


def test_default_space_sizes() -> None:
    # 12 + 12^2 + 12^3 + 12^4 = 12 + 144 + 1728 + 20736
    assert MLP.size() == 22_620
    # trunk 6*6*6*5 = 1080, each optional conv: 6 widths x 2 kernels, or off = 13
    assert CNN.size() == 1080 * 13 * 13


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


@pytest.mark.parametrize("kind,n", [("mlp", 40), ("cnn", 8), ("minatar", 20)])
def test_every_sampled_arch_builds(kind: str, n: int) -> None:
    space = SPACES[kind]
    rng = np.random.default_rng(11)
    torch.manual_seed(0)
    obs_shape, n_actions = OBS[kind], 5
    supernet = Supernet(space, obs_shape, n_actions)
    if kind != "mlp":
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
    assert CNN.largest() == CNNArch.nature((64, 128, 128), ((128, 5), (128, 5)), 1024)
    assert CNN.smallest() == CNNArch.nature((8, 16, 16), (), 64)
    mini = SPACES["minatar"]
    assert mini.largest() == CNNArch((ConvLayer(32, 3), ConvLayer(16, 3, 1, "same")), 256)
    assert mini.smallest() == CNNArch((ConvLayer(4, 3),), 16)


def test_default_teachers_and_scaled_nature_are_in_the_space() -> None:
    assert MLP.default_teacher() == MLPArch((64, 64))
    nature = CNNArch.nature((32, 64, 64), (), 512)
    assert CNN.default_teacher() == nature
    for scale in (0.25, 0.5, 1.0):
        scaled = nature.map_widths(lambda w, s=scale: int(w * s))
        assert CNN.contains(scaled), scaled
    # no Nature trunk: the middle of each required layer's choices, optional layers off
    assert SPACES["minatar"].default_teacher() == CNNArch((ConvLayer(16, 3),), 64)


def test_an_mlp_space_without_64_units_still_has_the_default_teacher() -> None:
    """The 2 x 64 teacher trains on its own: a space of narrow, shallow MLPs (no 64, depth
    1 only) is no reason to refuse train-teacher when the config names no teacher."""
    from a2d_evo.config import config_from_dict
    from a2d_evo.train.teacher_folder import teacher_arch

    cfg = config_from_dict({"space": {"kind": "mlp", "depths": [1], "widths": [8, 16, 32]}})
    assert not SearchSpace(cfg.space).contains(MLPArch((64, 64)))
    assert teacher_arch(cfg) == MLPArch((64, 64))
    assert Agent(teacher_arch(cfg), (8,), 4).forward(torch.zeros(2, 8))[0].shape == (2, 4)


# ----------------------------------------------------------------------------- arch values
@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_arch_dict_round_trip(kind: str, data: st.DataObject) -> None:
    arch = data.draw(ARCHS[kind])
    assert arch_from_dict(arch.to_dict()) == arch
    assert arch_from_dict(json.loads(json.dumps(arch.to_dict()))) == arch
    assert hash(arch_from_dict(arch.to_dict())) == hash(arch)


def test_arch_str() -> None:
    assert str(MLPArch((64, 64))) == "mlp-64x64"
    assert str(CNNArch.nature((32, 64, 64), ((48, 3),), 512)) == (
        "cnn-32k8s4-64k4s2-64k3-48k3p-fc512"
    )
    skipped = CNNArch((ConvLayer(16, 3), None, ConvLayer(8, 5, 1, "same")), 128)
    assert str(skipped) == "cnn-16k3-_-8k5p-fc128"


def test_legacy_nature_dict_is_converted() -> None:
    """Agent format 1 and old configs wrote the Nature trunk as conv/extra: same network."""
    old = {"kind": "cnn", "conv": [32, 64, 64], "extra": [[48, 5]], "fc": 512}
    arch = arch_from_dict(old)
    assert arch == CNNArch(
        (
            ConvLayer(32, 8, 4),
            ConvLayer(64, 4, 2),
            ConvLayer(64, 3, 1),
            ConvLayer(48, 5, 1, "same"),
        ),
        512,
    )
    assert arch_from_dict(arch.to_dict()) == arch
    assert arch.to_dict()["convs"][3] == {"width": 48, "kernel": 5, "stride": 1, "padding": "same"}
    # stride and padding may be left out (defaults 1, valid)
    short = {"kind": "cnn", "convs": [{"width": 16, "kernel": 3}], "fc": 128}
    assert arch_from_dict(short) == CNNArch((ConvLayer(16, 3),), 128)


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
        ({"kind": "cnn", "conv": [8, 16, 16], "extra": [[16, 4]], "fc": 64}, "odd"),
        ({"kind": "cnn", "convs": [], "fc": 64}, "first conv layer"),
        ({"kind": "cnn", "convs": [None, {"width": 4, "kernel": 3}], "fc": 64}, "first conv"),
        ({"kind": "cnn", "convs": [{"width": 4}], "fc": 64}, "missing key 'kernel'"),
        ({"kind": "cnn", "convs": [{"width": 4, "kernel": 3, "pad": 1}], "fc": 64}, "unknown"),
        ({"kind": "cnn", "convs": [{"width": 4, "kernel": 4, "padding": "same"}], "fc": 8}, "odd"),
        ({"kind": "cnn", "convs": [{"width": 4, "kernel": 3, "padding": "full"}], "fc": 8}, "pad"),
        ({"kind": "cnn", "convs": [{"width": 0, "kernel": 3}], "fc": 8}, "convs\\[0\\].width"),
        ({"kind": "cnn", "convs": [3], "fc": 8}, "mapping or null"),
        ({"kind": "cnn", "convs": [{"width": 4, "kernel": 3}], "fc": 8, "conv": []}, "keys"),
    ],
)
def test_arch_from_dict_errors(data: object, match: str) -> None:
    with pytest.raises(ArchError, match=match):
        arch_from_dict(data)


def test_a_teacher_arch_that_is_no_arch_names_its_key() -> None:
    """teacher.arch's own shape is checked where it is built: the error names the config key
    (it said `arch.convs[0].stride`, a key no config has)."""
    from a2d_evo.config import config_from_dict
    from a2d_evo.errors import ConfigError
    from a2d_evo.train.teacher_folder import teacher_arch

    conv = {"width": 16, "kernel": 3, "stride": 0, "padding": "valid"}
    cfg = config_from_dict({"teacher": {"arch": {"kind": "cnn", "convs": [conv], "fc": 64}}})
    with pytest.raises(ConfigError, match=r"^teacher\.arch\.convs\[0\]\.stride: expected a pos"):
        teacher_arch(cfg)


# ----------------------------------------------------------------------------- nets/space.py
def test_a_declared_space_s_default_teacher_is_the_middle_width_and_largest_kernel() -> None:
    """a2d_evo/nets/space.py SearchSpace.default_teacher without a Nature trunk: each
    required layer at ``widths[len // 2]`` with its largest kernel, the FC at
    ``fc[len // 2]``. Widths (8, 16, 32, 64): index 4 // 2 = 2, width 32; kernels (3, 5):
    5; FC (32, 64): index 1, 64. Mutants let through: ``(len - 1) // 2`` (width 16: the
    same as len // 2 for odd counts only) and ``kernel_choices[0]`` (kernel 3)."""
    from a2d_evo.config import SpaceConfig
    from a2d_evo.config.space import ConvLayerConfig
    from a2d_evo.nets.space import CNNArch, ConvLayer, SearchSpace

    layer = ConvLayerConfig(widths=(8, 16, 32, 64), kernels=(3, 5), padding="same")
    space = SearchSpace(SpaceConfig(kind="cnn", conv=(layer,), fc=(32, 64)))
    assert space.default_teacher() == CNNArch((ConvLayer(32, 5, 1, "same"),), 64)
