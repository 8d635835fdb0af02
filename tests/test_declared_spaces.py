"""Declared CNN spaces ([K]): random declarations through every part that follows the space.

For random ``space.conv`` declarations (kernels, strides, paddings, elastic kernels, optional
layers anywhere after the first) and random image sizes: the cost model equals
FlopCounterMode, extracted agents equal the supernet's slices, the native population kernel
equals the torch reference, and ``all_encodings`` enumerates exactly the space. Plus the
config side: YAML layout, validation errors naming the key, and the shipped MinAtar space.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import perturbed
from torch.utils.flop_counter import FlopCounterMode

from a2d_evo.config import SpaceConfig, config_from_dict, dump_config, load_config
from a2d_evo.config.space import ConvLayerConfig as Conv
from a2d_evo.errors import ArchError, ConfigError
from a2d_evo.nets import cost
from a2d_evo.nets.agent import trunk_hw
from a2d_evo.nets.agent_folder import extract
from a2d_evo.nets.population import PopulationForward, reference_forward
from a2d_evo.nets.space import CNNArch, ConvLayer, SearchSpace
from a2d_evo.nets.supernet import Supernet
from a2d_evo.ops.dispatch import native_op
from a2d_evo.search.problem import reference_point
from a2d_evo.train.sampling import all_encodings

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _widths(rng: np.random.Generator, hi: int = 12) -> tuple[int, ...]:
    n = int(rng.integers(1, 4))
    return tuple(sorted({int(w) for w in rng.integers(1, hi + 1, size=n)}))


def random_space(seed: int) -> tuple[SpaceConfig, tuple[int, int, int]]:
    """A random valid declaration and an image shape its largest arch fits."""
    rng = np.random.default_rng(seed)
    while True:
        layers = []
        for i in range(int(rng.integers(1, 5))):
            if i > 0 and rng.random() < 0.4:  # optional: same-padded, stride 1, maybe elastic
                ks = tuple(sorted({int(k) for k in rng.choice([1, 3, 5], size=2)}))
                layers.append(Conv(widths=_widths(rng), kernels=ks, padding="same", optional=True))
            elif rng.random() < 0.3:  # required same-padded, elastic or with a stride
                if rng.random() < 0.5:
                    ks = tuple(sorted({int(k) for k in rng.choice([1, 3, 5], size=2)}))
                    layers.append(Conv(widths=_widths(rng), kernels=ks, padding="same"))
                else:
                    k, s = int(rng.choice([1, 3, 5])), int(rng.integers(1, 4))
                    layers.append(Conv(widths=_widths(rng), kernel=k, stride=s, padding="same"))
            else:  # required valid: any kernel, any stride (a k = q * s first layer included)
                s = int(rng.integers(1, 4))
                k = s * int(rng.integers(1, 3)) if rng.random() < 0.5 else int(rng.integers(1, 6))
                layers.append(Conv(widths=_widths(rng), kernel=k, stride=s))
        cfg = SpaceConfig(kind="cnn", conv=tuple(layers), fc=_widths(rng, 40))
        shape = (int(rng.integers(1, 6)), int(rng.integers(6, 24)), int(rng.integers(6, 24)))
        try:
            trunk_hw(SearchSpace(cfg).largest(), shape)  # type: ignore[arg-type]
        except ArchError:
            continue
        return cfg, shape


SEEDS = list(range(24))


def archs_of(space: SearchSpace, rng: np.random.Generator, n: int) -> list[CNNArch]:
    archs = [space.decode(x) for x in space.sample_encodings(rng, n)]
    return [*archs, space.largest(), space.smallest()]  # type: ignore[list-item]


@pytest.mark.parametrize("seed", SEEDS)
def test_cost_equals_flop_counter_on_random_declared_spaces(seed: int) -> None:
    cfg, shape = random_space(seed)
    space = SearchSpace(cfg)
    torch.manual_seed(seed)
    supernet = Supernet(space, shape, 3, obs_scale=0.5)
    obs = torch.zeros((1, *shape), dtype=torch.uint8)
    for arch in archs_of(space, np.random.default_rng(seed), 8):
        agent = extract(supernet, arch)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            agent(obs)
        assert cost.flops(arch, shape, 3) == counter.get_total_flops(), (cfg, shape, arch)
        assert cost.params(arch, shape, 3) == sum(p.numel() for p in agent.parameters())


@pytest.mark.parametrize("seed", SEEDS)
def test_extracted_agents_equal_supernet_slices_on_random_declared_spaces(seed: int) -> None:
    cfg, shape = random_space(seed)
    space = SearchSpace(cfg)
    torch.manual_seed(seed)
    supernet = perturbed(Supernet(space, shape, 4, obs_scale=1.0))  # no zero bias
    supernet.value_scale.fill_(3.0)
    g = torch.Generator().manual_seed(seed)
    obs = torch.randint(0, 2, (5, *shape), dtype=torch.uint8, generator=g)
    with torch.no_grad():
        for arch in archs_of(space, np.random.default_rng(seed), 8):
            agent = extract(supernet, arch)
            assert agent.obs_scale == 1.0
            ref, out = supernet(obs, arch), agent(obs)
            torch.testing.assert_close(out.logits, ref.logits, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(out.value, ref.value * 3.0, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(native_op("subnet_eval_cnn") is None, reason="native kernel not built")
@pytest.mark.parametrize("seed", SEEDS)
def test_native_population_kernel_equals_reference_on_random_declared_spaces(seed: int) -> None:
    cfg, shape = random_space(seed)
    space = SearchSpace(cfg)
    torch.manual_seed(seed)
    scale = [1.0, 1 / 255, 0.37][seed % 3]
    # noise on every parameter: a fresh net's biases are all zero, so packed biases dropped or
    # misplaced gave equal outputs (the test passed with every bias packed as 0)
    supernet = perturbed(Supernet(space, shape, 5, obs_scale=scale))
    supernet.value_scale.fill_(2.0)
    rng = np.random.default_rng(seed)
    archs = archs_of(space, rng, 10)
    sizes = [int(n) for n in rng.integers(0, 5, size=len(archs))]
    sizes[0] = max(sizes[0], 1)
    high = 2 if scale == 1.0 else 256
    obs = rng.integers(0, high, size=(sum(sizes), *shape)).astype(np.uint8)
    forward = PopulationForward(supernet, backend="native")
    assert forward.backend_name.startswith("native-cpu")
    logits, values = forward(obs, archs, sizes)
    ref_logits, ref_values = reference_forward(supernet, torch.from_numpy(obs), archs, sizes)
    np.testing.assert_allclose(logits, ref_logits.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(values, ref_values.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("seed", SEEDS[:12])
def test_all_encodings_enumerates_random_declared_spaces(seed: int) -> None:
    space = SearchSpace(random_space(seed)[0])
    enc = all_encodings(space)
    assert enc.shape == (space.size(), space.n_var)
    np.testing.assert_array_equal(space.canonical(enc), enc)
    assert len({space.decode(x) for x in enc}) == space.size()


@pytest.mark.parametrize("seed", SEEDS)
def test_costliest_is_the_most_expensive_arch_of_random_declared_spaces(seed: int) -> None:
    cfg, shape = random_space(seed)
    space = SearchSpace(cfg)
    every = [cost.flops(space.decode(x), shape, 5) for x in all_encodings(space)]
    assert cost.flops(cost.costliest(space, shape, 5), shape, 5) == max(every)
    assert cost.flops(cost.cheapest(space, shape, 5), shape, 5) == min(every)


def test_costliest_skips_an_optional_layer_that_narrows_the_fc_input() -> None:
    # every gene at its top switches on the 4-wide optional conv, which cuts the FC input
    # from 32 x 8 x 8 to 4 x 8 x 8. Multiply-adds by hand (6 actions, 8 x 8 after the 3x3
    # valid conv): conv 32*4*9*64 = 73,728; optional 4*32*9*64 = 73,728; FC 256*4*64 =
    # 65,536 or 256*32*64 = 524,288; heads 6*256 + 256 = 1,792. With it 214,784 (429,568
    # FLOPs), without it 599,808 (1,199,616 FLOPs)
    cfg = SpaceConfig(
        kind="cnn",
        conv=(
            Conv(widths=(4, 8, 16, 24, 32), kernel=3),
            Conv(widths=(4,), kernels=(1, 3), padding="same", optional=True),
        ),
        fc=(16, 32, 64, 128, 256),
    )
    space, shape = SearchSpace(cfg), (4, 10, 10)
    top = space.largest()
    best = cost.costliest(space, shape, 6)
    assert str(top) == "cnn-32k3-4k3p-fc256" and cost.flops(top, shape, 6) == 429_568
    assert str(best) == "cnn-32k3-fc256" and cost.flops(best, shape, 6) == 1_199_616
    # every arch of the space now lies inside the hypervolume's reference point
    ref = reference_point(space, shape, 6)
    lf = max(np.log10(cost.flops(space.decode(x), shape, 6)) for x in all_encodings(space))
    assert lf < ref[1] == pytest.approx(np.log10(1.1 * 1_199_616), rel=1e-12)


def test_export_takes_a_front_priced_on_the_old_reference_point_with_a_note(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from a2d_evo.errors import FormatError
    from a2d_evo.report.front_export import _check_reference

    cfg = SpaceConfig(
        kind="cnn",
        conv=(Conv(widths=(8, 32), kernel=3), Conv(widths=(4,), kernel=3, padding="same",
                                                   optional=True)),
        fc=(16, 256),
    )  # fmt: skip
    space, shape, path = SearchSpace(cfg), (4, 10, 10), Path("front.json")
    now = float(reference_point(space, shape, 6)[1])
    old = float(np.log10(1.1 * cost.flops(space.largest(), shape, 6)))
    assert old < now - 0.3  # skipping the 4-wide conv costs more than twice as much here
    _check_reference(now, space, shape, 6, path)
    assert capsys.readouterr().err == ""
    _check_reference(old, space, shape, 6, path)
    assert "priced on the space's costliest arch" in capsys.readouterr().err
    with pytest.raises(FormatError, match="is not this run's"):
        _check_reference(now + 0.01, space, shape, 6, path)


def test_skipped_middle_layer_reads_the_previous_output() -> None:
    """An optional layer skipped between required ones: the next one takes its input's input."""
    cfg = SpaceConfig(
        kind="cnn",
        conv=(
            Conv(widths=(3, 6), kernel=3),
            Conv(widths=(9,), kernels=(1, 3), padding="same", optional=True),
            Conv(widths=(4,), kernel=2, stride=2),
        ),
        fc=(7,),
    )
    space = SearchSpace(cfg)
    supernet = Supernet(space, (2, 9, 9), 2)
    # layer 2's weight takes up to max(6, 9) inputs: from layer 0 or layer 1
    assert tuple(supernet.convs[2].weight.shape) == (4, 9, 2, 2)
    arch = CNNArch((ConvLayer(6, 3), None, ConvLayer(4, 2, 2)), 7)
    assert space.contains(arch)
    agent = extract(supernet, arch)
    assert tuple(agent.convs["2"].weight.shape) == (4, 6, 2, 2)
    assert torch.equal(agent.convs["2"].weight, supernet.convs[2].weight[:, :6].detach())
    assert "convs.1.weight" not in dict(agent.named_parameters())


# ----------------------------------------------------------------------------- the config side
def test_declared_space_from_yaml_round_trips(tmp_path: Path) -> None:
    text = """
env: {id: ALE/Pong-v5}
space:
  kind: cnn
  conv:
    - {widths: [8, 16], kernel: 8, stride: 4}
    - {widths: [16], kernel: 4, stride: 2}
    - {widths: [16, 32], kernels: [3, 5], padding: same, optional: true}
  fc: [64, 128]
"""
    path = tmp_path / "c.yaml"
    path.write_text(text)
    cfg = load_config(path)
    assert cfg.space.conv[2] == Conv(widths=(16, 32), kernels=(3, 5), padding="same", optional=True)
    assert cfg.space.conv[0].kernel_choices == (8,)
    path.write_text(dump_config(cfg))
    assert load_config(path) == cfg
    assert SearchSpace(cfg.space).size() == 2 * 1 * (4 + 1) * 2


def _space(conv: list[dict[str, object]], **extra: object) -> dict[str, object]:
    return {"env": {"id": "ALE/Pong-v5"}, "space": {"kind": "cnn", "conv": conv, **extra}}


@pytest.mark.parametrize(
    "conv,match",
    [
        ([], "space.conv: expected a non-empty list"),
        ([{"widths": [8]}], "space.conv\\[0\\]: give kernel .* or kernels"),
        ([{"widths": [8], "kernel": 3, "kernels": [3]}], "space.conv\\[0\\]: give kernel"),
        ([{"widths": [], "kernel": 3}], "space.conv\\[0\\].widths: expected a non-empty"),
        ([{"widths": [8, 4], "kernel": 3}], "space.conv\\[0\\].widths: expected strictly"),
        ([{"widths": [99999], "kernel": 3}], "space.conv\\[0\\].widths: must be <= 16384"),
        ([{"widths": [8], "kernel": 16}], "space.conv\\[0\\].kernel: must be <= 15"),
        ([{"widths": [8], "kernel": 3, "stride": 0}], "space.conv\\[0\\].stride: must be >= 1"),
        ([{"widths": [8], "kernel": 4, "padding": "same"}], "space.conv\\[0\\].kernel: a same-p"),
        ([{"widths": [8], "kernels": [3, 5]}], "space.conv\\[0\\].kernels: elastic kernels"),
        (
            [{"widths": [8], "kernels": [3, 5], "padding": "same", "stride": 2}],
            "space.conv\\[0\\].kernels: elastic kernels .* stride: 1",
        ),
        ([{"widths": [8], "kernels": [5, 3], "padding": "same"}], "conv\\[0\\].kernels: expected"),
        ([{"widths": [8], "kernel": 3, "optional": True}], "conv\\[0\\].optional: the first"),
        (
            [{"widths": [8], "kernel": 3}, {"widths": [8], "kernel": 3, "optional": True}],
            "space.conv\\[1\\].optional: only same-padded stride-1",
        ),
        ([{"widths": [8], "kernel": 3, "padding": "full"}], "space.conv\\[0\\].padding"),
        ([{"widths": [8], "kernel": 3, "dilation": 2}], "space.conv\\[0\\].dilation"),
    ],
)
def test_bad_declarations_are_refused_naming_the_key(conv: list, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        config_from_dict(_space(conv))


def test_the_old_nature_keys_are_refused() -> None:
    old = {"env": {"id": "ALE/Pong-v5"}, "space": {"kind": "cnn", "conv1": [8, 16]}}
    with pytest.raises(ConfigError, match="space.conv1"):
        config_from_dict(old)


def test_cnn_space_is_allowed_for_non_ale_envs_and_required_for_ale() -> None:
    cfg = config_from_dict({"env": {"id": "MinAtar/Breakout-v1"}, "space": {"kind": "cnn"}})
    assert cfg.space.kind == "cnn" and cfg.env.max_episode_steps == 10_000
    with pytest.raises(ConfigError, match="'ALE/Pong-v5' needs the 'cnn' space"):
        config_from_dict({"env": {"id": "ALE/Pong-v5"}, "space": {"kind": "mlp"}})


# ----------------------------------------------------------------------------- shipped spaces
def test_pong_config_declares_the_nature_space() -> None:
    cfg = load_config(CONFIGS / "pong.yaml")
    assert cfg.space == SpaceConfig(kind="cnn")  # the default: Nature trunk + 2 optional convs
    assert SearchSpace(cfg.space).default_teacher() == CNNArch.nature()


@pytest.mark.parametrize(
    "game,channels,actions,cheapest",
    # cheapest: a ceiling on the smallest arch's share of the teacher's FLOPs (more input
    # channels make the fixed 4-wide first conv dearer: Freeway has 7)
    [
        ("breakout", 4, 3, 0.10),
        ("asterix", 4, 5, 0.10),
        ("spaceinvaders", 6, 4, 0.10),
        ("freeway", 7, 3, 0.11),
    ],
)
def test_minatar_space_is_centred_on_the_paper_network(
    game: str, channels: int, actions: int, cheapest: float
) -> None:
    cfg = load_config(CONFIGS / f"minatar_{game}.yaml")
    space = SearchSpace(cfg.space)
    assert cfg.env.imports == ("minatar.gym:register_envs",)
    teacher = CNNArch((ConvLayer(16, 3),), 128)  # MinAtar paper: conv 16 3x3/1, FC 128
    from a2d_evo.train.teacher_folder import teacher_arch

    assert teacher_arch(cfg) == teacher and space.contains(teacher)
    obs = (channels, 10, 10)
    t = cost.flops(teacher, obs, actions)
    # the most expensive arch of the space costs at most about 4x the teacher
    most = max(cost.flops(space.decode(x), obs, actions) for x in all_encodings(space))
    assert 3.0 * t < most <= 4.0 * t, most / t
    assert cost.flops(space.smallest(), obs, actions) < cheapest * t
