"""Cost model: exact agreement with FlopCounterMode, hand-computed Nature figures, latency."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from a2d_evo.config import SpaceConfig
from a2d_evo.errors import ArchError
from a2d_evo.nets import cost
from a2d_evo.nets.agent_folder import extract
from a2d_evo.nets.space import CNNArch, MLPArch, SearchSpace
from a2d_evo.nets.supernet import Supernet

MLP = SearchSpace(SpaceConfig(kind="mlp"))
CNN = SearchSpace(SpaceConfig(kind="cnn"))
ATARI_OBS = (4, 84, 84)
NATURE = CNNArch.nature((32, 64, 64), (), 512)


def counted(agent: nn.Module, obs: torch.Tensor) -> tuple[int, dict[str, int]]:
    """FlopCounterMode's total and per-module FLOPs of one forward."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        agent(obs)
    per_module = {k: sum(v.values()) for k, v in counter.get_flop_counts().items()}
    return counter.get_total_flops(), per_module


# ----------------------------------------------------------------------------- FlopCounterMode
@pytest.mark.parametrize(
    "space,obs_shape,n_actions,n",
    [
        (MLP, (4,), 2, 150),  # CartPole
        (MLP, (6,), 3, 100),  # Acrobot
        (MLP, (2, 3), 2, 30),  # a rank-2 Box, flattened to 6 inputs
        (CNN, ATARI_OBS, 6, 100),  # Pong
    ],
    ids=["cartpole", "acrobot", "rank2-box", "atari"],
)
def test_flops_and_params_equal_the_counted_ones(
    space: SearchSpace,
    obs_shape: tuple[int, ...],
    n_actions: int,
    n: int,
    cnn_supernet: Supernet,
) -> None:
    torch.manual_seed(0)
    supernet = cnn_supernet if space.kind == "cnn" else Supernet(space, obs_shape, n_actions)
    rng = np.random.default_rng(1)
    archs = [space.sample(rng) for _ in range(n)]
    archs += [space.smallest(), space.largest(), space.default_teacher()]
    dtype = torch.uint8 if space.kind == "cnn" else torch.float32
    obs = torch.zeros((1, *obs_shape), dtype=dtype)
    for arch in archs:
        agent = extract(supernet, arch)
        total, per_module = counted(agent, obs)
        assert cost.flops(arch, obs_shape, n_actions) == total, arch
        assert cost.params(arch, obs_shape, n_actions) == sum(p.numel() for p in agent.parameters())
        # and layer by layer, under the agent's own parameter names
        layers = cost.layers(arch, obs_shape, n_actions)
        assert {f"Agent.{layer.name}": 2 * layer.macs for layer in layers} == {
            k: v for k, v in per_module.items() if k.startswith("Agent.")
        }
        shapes = {n: tuple(p.shape) for n, p in agent.named_parameters()}
        for layer in layers:
            w = (layer.c_out, layer.c_in) + (layer.k, layer.k) * layer.name.startswith("convs")
            assert shapes[f"{layer.name}.weight"] == w
            assert shapes[f"{layer.name}.bias"] == (layer.c_out,)


def test_counter_scales_with_batch_and_ours_is_batch_one(cnn_supernet: Supernet) -> None:
    agent = extract(cnn_supernet, NATURE)
    total, _ = counted(agent, torch.zeros((5, *ATARI_OBS), dtype=torch.uint8))
    assert total == 5 * cost.flops(NATURE, ATARI_OBS, 6)


# ----------------------------------------------------------------------------- hand-computed
def test_nature_trunk_by_hand() -> None:
    # Nature CNN on 4 x 84 x 84: 84 -> (84-8)/4+1 = 20 -> (20-4)/2+1 = 9 -> (9-3)/1+1 = 7
    # multiply-adds = c_out * c_in * k * k * out_h * out_w
    conv1 = 32 * 4 * 8 * 8 * 20 * 20  # = 3,276,800
    conv2 = 64 * 32 * 4 * 4 * 9 * 9  # = 2,654,208
    conv3 = 64 * 64 * 3 * 3 * 7 * 7  # = 1,806,336
    fc = 512 * (64 * 7 * 7)  # = 1,605,632
    assert (conv1, conv2, conv3, fc) == (3_276_800, 2_654_208, 1_806_336, 1_605_632)
    assert conv1 + conv2 + conv3 + fc == 9_342_976
    # parameters = weights + biases
    p_conv1 = 32 * 4 * 8 * 8 + 32  # = 8,224
    p_conv2 = 64 * 32 * 4 * 4 + 64  # = 32,832
    p_conv3 = 64 * 64 * 3 * 3 + 64  # = 36,928
    p_fc = 3136 * 512 + 512  # = 1,606,144
    assert p_conv1 + p_conv2 + p_conv3 + p_fc == 1_684_128

    trunk = [
        layer
        for layer in cost.layers(NATURE, ATARI_OBS, 6)
        if layer.name not in ("policy", "value")
    ]
    assert sum(layer.macs for layer in trunk) == 9_342_976
    assert sum(layer.params for layer in trunk) == 1_684_128
    assert [layer.area for layer in trunk] == [400, 81, 49, 1]

    # with the heads (6 actions): policy 512*6 MACs and 512*6+6 params, value 512 and 513
    assert cost.macs(NATURE, ATARI_OBS, 6) == 9_342_976 + 3_072 + 512  # = 9,346,560
    assert cost.flops(NATURE, ATARI_OBS, 6) == 18_693_120
    assert cost.params(NATURE, ATARI_OBS, 6) == 1_684_128 + 3_078 + 513  # = 1,687,719
    assert cost.cost(NATURE, ATARI_OBS, 6) == cost.Cost(18_693_120, 1_687_719)


def test_mlp_teacher_by_hand() -> None:
    # CartPole 2 x 64: 4*64 + 64*64 + 64*2 + 64*1 MACs; weights + biases
    arch = MLPArch((64, 64))
    assert cost.macs(arch, (4,), 2) == 256 + 4_096 + 128 + 64  # = 4,544
    assert cost.flops(arch, (4,), 2) == 9_088
    assert cost.params(arch, (4,), 2) == (256 + 64) + (4_096 + 64) + (128 + 2) + (64 + 1)
    assert cost.params(arch, (4,), 2) == 4_675


def test_extra_convs_by_hand() -> None:
    # smallest trunk + one 16-wide 5x5 same-padded conv on the 7x7 map: zero taps counted
    arch = CNNArch.nature((8, 16, 16), ((16, 5),), 64)
    base = CNNArch.nature((8, 16, 16), (), 64)
    extra = 16 * 16 * 5 * 5 * 49  # = 313,600
    assert cost.macs(arch, ATARI_OBS, 6) - cost.macs(base, ATARI_OBS, 6) == extra
    assert cost.params(arch, ATARI_OBS, 6) - cost.params(base, ATARI_OBS, 6) == 16 * 16 * 25 + 16


def test_cost_grows_with_every_width() -> None:
    rng = np.random.default_rng(2)
    for _ in range(50):
        x = CNN.sample_encodings(rng, 1)[0]
        arch = CNN.decode(x)
        base = cost.cost(arch, ATARI_OBS, 6)
        for gene in (0, 1, 2, CNN.n_var - 1):
            if x[gene] < CNN.xu[gene]:
                y = x.copy()
                y[gene] += 1
                bigger = cost.cost(CNN.decode(y), ATARI_OBS, 6)
                assert bigger.flops > base.flops and bigger.params > base.params
    small, large = cost.cost(CNN.smallest(), ATARI_OBS, 6), cost.cost(CNN.largest(), ATARI_OBS, 6)
    nature = cost.cost(NATURE, ATARI_OBS, 6)
    assert small.flops < nature.flops < large.flops


def test_cost_errors() -> None:
    with pytest.raises(ArchError, match="needs \\(C, H, W\\)"):
        cost.flops(NATURE, (4,), 6)
    with pytest.raises(ArchError, match="too small"):
        cost.flops(NATURE, (4, 20, 20), 6)
    with pytest.raises(ArchError, match="n_actions"):
        cost.params(MLPArch((4,)), (4,), 0)
    with pytest.raises(ArchError, match="odd"):
        cost.flops(CNNArch.nature((8, 16, 16), ((16, 4),), 64), ATARI_OBS, 6)


# ----------------------------------------------------------------------------- latency
class _Probe(nn.Module):
    """Records the thread count, inference mode and input of each call."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.obs_shape = inner.obs_shape
        self.atari = inner.atari
        self.calls: list[tuple[int, bool, tuple[int, ...], torch.dtype]] = []

    def forward(self, obs: torch.Tensor) -> object:
        self.calls.append(
            (
                torch.get_num_threads(),
                torch.is_inference_mode_enabled(),
                tuple(obs.shape),
                obs.dtype,
            )
        )
        return self.inner(obs)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_latency_is_measured_on_one_thread_at_batch_one(kind: str, cnn_supernet: Supernet) -> None:
    if kind == "mlp":
        obs_shape: tuple[int, ...] = (4,)
        agent = extract(Supernet(MLP, obs_shape, 2), MLP.default_teacher())
    else:
        obs_shape = ATARI_OBS
        agent = extract(cnn_supernet, CNN.default_teacher())
    probe = _Probe(agent)
    torch.set_num_threads(2)
    ms = cost.latency_ms(probe, repeats=7, warmup=3)
    assert torch.get_num_threads() == 2  # restored
    assert math.isfinite(ms) and ms > 0
    dtype = torch.uint8 if kind == "cnn" else torch.float32
    assert probe.calls == [(1, True, (1, *obs_shape), dtype)] * 10
    assert probe.training  # the train/eval flag is restored too
    torch.set_num_threads(1)


def test_latency_is_the_median_of_the_timed_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    # scripted clock: the 5 timed calls take 3, 1, 100, 2 and 4 ms (the warm-up reads no
    # clock): the median is 3 ms; the mean (22), the max (100) or the min (1) would not be
    agent = extract(Supernet(MLP, (4,), 2), MLP.smallest())
    ticks = iter(t for d in (3, 1, 100, 2, 4) for t in (0, d * 1_000_000))
    # the module's own clock only (not time.perf_counter_ns for every thread of the process)
    monkeypatch.setattr(cost, "time", SimpleNamespace(perf_counter_ns=lambda: next(ticks)))
    assert cost.latency_ms(agent, repeats=5, warmup=2) == 3.0


def test_latency_orders_small_and_large_agents(cnn_supernet: Supernet) -> None:
    supernet = cnn_supernet
    small = cost.latency_ms(extract(supernet, CNN.smallest()), repeats=15, warmup=3)
    large = cost.latency_ms(extract(supernet, CNN.largest()), repeats=15, warmup=3)
    # about 60x the FLOPs: the ordering is robust even on a busy machine
    assert 0 < small < large


def test_latency_rejects_bad_arguments() -> None:
    agent = extract(Supernet(MLP, (4,), 2), MLP.smallest())
    for bad in ({"repeats": 0}, {"warmup": -1}):  # not statistics' own error on no timings
        with pytest.raises(ValueError, match="need repeats >= 1 and warmup >= 0"):
            cost.latency_ms(agent, **bad)


# ----------------------------------------------------------------------------- nets/cost.py
def test_training_memory_grows_with_the_subnets_trained_per_minibatch() -> None:
    """Each subnet trained on a minibatch (the supernet's sandwich) holds its own activations:
    every extra subnet adds the same ``2 * 4 bytes * minibatch * units``."""
    from a2d_evo.config import PPOConfig
    from a2d_evo.nets.cost import training_memory_bytes

    arch, ppo = MLPArch((16, 8)), PPOConfig()
    one, two, three = (training_memory_bytes(arch, (4,), 4, 2, ppo, subnets=s) for s in (1, 2, 3))
    units = 4 + 16 + 8 + 2 + 1  # input + every layer's outputs (heads included)
    assert two - one == three - two == 2 * 4 * ppo.minibatch_size * units


def test_a_stage_is_refused_above_80_percent_of_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """``check_training_memory`` takes a stage estimated at up to 80% of the machine's
    memory and refuses one above it (naming the keys to lower)."""
    from a2d_evo.errors import ConfigError
    from a2d_evo.nets import cost

    monkeypatch.setattr(cost, "available_memory_bytes", lambda: 1000)
    cost.check_training_memory("teacher", 800, "ppo.num_envs")
    with pytest.raises(ConfigError, match="more than 80% .*lower ppo.num_envs"):
        cost.check_training_memory("teacher", 801, "ppo.num_envs")


def test_the_cheapest_mlp_is_the_shallowest() -> None:
    """a2d_evo/nets/cost.py cheapest/_extreme: in an MLP space of several depths the
    cheapest arch is the narrowest at the smallest depth (each layer adds cost). Mutant let
    through: one candidate, the deepest: fine for costliest (the covering tests), wrong for
    cheapest, which search.max_flops is checked against."""
    from a2d_evo.nets.cost import cheapest, costliest, flops
    from a2d_evo.nets.space import MLPArch

    space = SearchSpace(SpaceConfig(kind="mlp", depths=(1, 2, 3), widths=(4, 8)))
    assert cheapest(space, (4,), 2) == MLPArch((4,))
    # 2 * 4 * (4 + 2 + 1) = 56 FLOPs; the deepest narrow one, 4x4x4: 2 * (16 + 16 + 16 + 12) = 120
    assert flops(MLPArch((4,)), (4,), 2) == 56 and flops(MLPArch((4, 4, 4)), (4,), 2) == 120
    assert costliest(space, (4,), 2) == MLPArch((8, 8, 8))


V2_LIMIT = "/sys/fs/cgroup/memory.max"
V1_LIMIT = "/sys/fs/cgroup/memory/memory.limit_in_bytes"


def _memory(monkeypatch: pytest.MonkeyPatch, files: dict[str, str]) -> int | None:
    """``available_memory_bytes`` on a machine of 4,096,000 bytes whose cgroup files are
    ``files`` (any other is missing)."""
    from a2d_evo.nets import cost

    class FakePath:
        def __init__(self, path: str) -> None:
            self.path = str(path)

        def read_text(self) -> str:
            if self.path not in files:
                raise FileNotFoundError(self.path)
            return files[self.path]

    pages = {"SC_PHYS_PAGES": 1000, "SC_PAGE_SIZE": 4096}
    monkeypatch.setattr(cost, "Path", FakePath)
    monkeypatch.setattr(cost.os, "sysconf", lambda name: pages[name])
    return cost.available_memory_bytes()


def test_a_cgroup_v2_without_a_limit_reads_as_the_machines_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """a2d_evo/nets/cost.py available_memory_bytes: cgroup v2's ``memory.max`` holds "max"
    where no limit is set: the machine's memory stands. Mutant let through: dropping
    ``text.isdigit()``, after which int("max") raised ValueError in every stage's memory
    check on such a host."""
    assert _memory(monkeypatch, {}) == 4_096_000
    assert _memory(monkeypatch, {V2_LIMIT: "max\n"}) == 4_096_000
    assert _memory(monkeypatch, {V2_LIMIT: "1000000\n"}) == 1_000_000


def test_a_cgroup_limit_above_the_machines_memory_is_no_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """a2d_evo/nets/cost.py available_memory_bytes: the cgroup limit counts only when lower
    than the physical memory (cgroup v1 writes 9223372036854771712 for "none"). Mutant let
    through: dropping ``< (total or ...)``, which took that number for the memory: no stage
    was ever refused."""
    assert _memory(monkeypatch, {V1_LIMIT: "9223372036854771712"}) == 4_096_000
    assert _memory(monkeypatch, {V2_LIMIT: "8192000"}) == 4_096_000


def test_a_cgroup_v1_limit_is_read_where_there_is_no_v2_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """a2d_evo/nets/cost.py available_memory_bytes: a missing cgroup v2 file moves on to
    the v1 one. Mutant let through: ``continue`` made ``break`` on the missing file, so a
    cgroup v1 host's container limit was never read."""
    assert _memory(monkeypatch, {V1_LIMIT: "2000000\n"}) == 2_000_000


def test_latency_leaves_an_agent_in_eval_mode_in_eval_mode() -> None:
    """a2d_evo/nets/cost.py latency_ms: the agent's train/eval flag is put back as it was,
    eval included. Mutant let through: ``agent.train()`` in place of
    ``agent.train(was_training)`` (the covering test times a training-mode agent only)."""
    from a2d_evo.nets.cost import latency_ms

    agent = torch.nn.Linear(4, 2).eval()
    assert latency_ms(agent, repeats=1, warmup=0, obs=torch.zeros(1, 4)) >= 0
    assert not agent.training
