"""Extraction, agent folders (save/load/ONNX), bad folders, and the metrics contract."""

from __future__ import annotations

import copy
import io
import json
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch
from conftest import perturbed

import a2d_evo
from a2d_evo.config import SpaceConfig
from a2d_evo.config.space import ConvLayerConfig as Conv
from a2d_evo.errors import FormatError
from a2d_evo.formats import METRICS_KEYS
from a2d_evo.nets import cost
from a2d_evo.nets.agent import Agent
from a2d_evo.nets.agent_folder import (
    extract,
    load_agent,
    make_metrics,
    onnx_bytes,
    save_agent,
)
from a2d_evo.nets.space import CNNArch, ConvLayer, MLPArch, SearchSpace
from a2d_evo.nets.supernet import Supernet

MLP = SearchSpace(SpaceConfig(kind="mlp"))
CNN = SearchSpace(SpaceConfig(kind="cnn"))
ATARI_OBS = (4, 84, 84)
ENV_CARTPOLE = {"id": "CartPole-v1"}
ENV_PONG = {"id": "ALE/Pong-v5", "sticky_actions": 0.25, "stack": 4}
# a MinAtar agent as the training stages make it: the whole env config, ALE keys included
ENV_MINATAR = {
    "id": "MinAtar/Breakout-v1",
    "imports": ["minatar.gym:register_envs"],
    "sticky_actions": 0.25,
    "frame_size": 84,
    "stack": 4,
    "noop_max": 30,
    "frame_skip": 4,
    "terminal_on_life_loss": False,
    "max_episode_steps": 10000,
}
MINATAR = SearchSpace(
    SpaceConfig(
        kind="cnn",
        conv=(
            Conv(widths=(4, 8, 16, 24, 32), kernel=3),
            Conv(widths=(4, 8, 16), kernel=3, padding="same", optional=True),
        ),
        fc=(16, 32, 64, 128, 256),
    )
)
MINATAR_OBS = (4, 10, 10)


@pytest.fixture(scope="module")
def mlp_agent() -> Agent:
    torch.manual_seed(0)
    supernet = perturbed(Supernet(MLP, (4,), 2))  # no zero bias: a dropped one would show
    return extract(supernet, MLPArch((32, 12, 48)), ENV_CARTPOLE).eval()


@pytest.fixture(scope="module")
def cnn_agent() -> Agent:
    torch.manual_seed(1)
    supernet = perturbed(Supernet(CNN, ATARI_OBS, 6))
    return extract(supernet, CNNArch.nature((16, 32, 48), ((32, 3),), 128), ENV_PONG).eval()


@pytest.fixture(scope="module")
def minatar_agent() -> Agent:
    torch.manual_seed(2)
    supernet = perturbed(Supernet(MINATAR, MINATAR_OBS, 3, obs_scale=1.0))
    arch = CNNArch((ConvLayer(24, 3), ConvLayer(8, 3, 1, "same")), 64)
    return extract(supernet, arch, ENV_MINATAR).eval()


@pytest.fixture(scope="module")
def saved(
    tmp_path_factory: pytest.TempPathFactory,
    mlp_agent: Agent,
    cnn_agent: Agent,
    minatar_agent: Agent,
) -> dict:
    """One folder per agent, saved once with ONNX (the exporter takes seconds)."""
    root = tmp_path_factory.mktemp("agents")
    out = {}
    for name, agent in (("mlp", mlp_agent), ("cnn", cnn_agent), ("minatar", minatar_agent)):
        metrics = make_metrics(
            agent,
            env_id=agent.env_config["id"],
            returns=np.array([10.0, 20.0, 30.0]),
            eval_mode="greedy",
            seeds=[0, 1, 2],
            r_random=0.0,
            r_teacher=40.0,
            latency=0.25,
        )
        out[name] = save_agent(agent, root / name, metrics=metrics, onnx=True)
    return out


def obs_for(agent: Agent, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if agent.image:
        high = 2 if agent.obs_scale == 1.0 else 256  # 0/1 planes or pixels
        return torch.randint(0, high, (n, *agent.obs_shape), dtype=torch.uint8, generator=g)
    return torch.randn((n, *agent.obs_shape), generator=g) * 2


def copy_folder(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# ----------------------------------------------------------------------------- extraction
def test_extracted_agent_owns_its_weights() -> None:
    torch.manual_seed(2)
    supernet = Supernet(MLP, (4,), 2)
    arch = MLPArch((8, 8))
    agent = extract(supernet, arch)
    obs = torch.randn(5, 4)
    with torch.no_grad():
        before = agent(obs)
        for p in supernet.parameters():
            p.add_(1.0)
        after = agent(obs)
    assert torch.equal(before.logits, after.logits) and torch.equal(before.value, after.value)
    for p in agent.parameters():
        assert p.is_contiguous() and p.requires_grad
        assert p.untyped_storage().nbytes() == p.numel() * p.element_size()  # a copy, not a view


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_teacher_arch_extracts_and_costs_like_any_subnet(kind: str) -> None:
    space = MLP if kind == "mlp" else CNN
    obs_shape: tuple[int, ...] = (4,) if kind == "mlp" else ATARI_OBS
    torch.manual_seed(3)
    supernet = Supernet(space, obs_shape, 6)
    teacher = space.default_teacher()
    agent = extract(supernet, teacher)
    obs = obs_for(agent, 3, seed=4)
    with torch.no_grad():
        ref, out = supernet(obs, teacher), agent(obs)
    assert (out.logits - ref.logits).abs().max() <= 1e-6
    assert (out.value - ref.value).abs().max() <= 1e-6
    n_params = sum(p.numel() for p in agent.parameters())
    assert cost.params(teacher, obs_shape, 6) == n_params
    expected = {"mlp": 4 * 64 + 64 + 64 * 64 + 64 + 64 * 6 + 6 + 64 + 1, "cnn": 1_684_128 + 3_591}
    assert n_params == expected[kind]


# ----------------------------------------------------------------------------- round trip
@pytest.mark.parametrize("kind", ["mlp", "cnn", "minatar"])
def test_save_load_round_trip_is_exact(
    kind: str, saved: dict, request: pytest.FixtureRequest
) -> None:
    agent: Agent = request.getfixturevalue(f"{kind}_agent")
    loaded = load_agent(saved[kind])
    assert isinstance(loaded, Agent) and not loaded.training
    assert loaded.arch == agent.arch
    assert loaded.obs_shape == agent.obs_shape and loaded.n_actions == agent.n_actions
    assert loaded.obs_scale == agent.obs_scale
    if kind != "minatar":
        assert loaded.env_config == agent.env_config
    obs = obs_for(agent, 9, seed=5)
    with torch.no_grad():
        a, b = agent(obs), loaded(obs)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.value, b.value)
    np.testing.assert_array_equal(loaded.act(obs.numpy()), a.logits.argmax(-1).numpy())
    mine, theirs = agent.state_dict(), loaded.state_dict()  # every tensor, bit for bit
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)


def test_arch_json_content(saved: dict, cnn_agent: Agent) -> None:
    meta = json.loads((saved["cnn"] / "arch.json").read_text())
    layer = {"stride": 1, "padding": "valid"}
    assert meta == {
        "format_version": 2,
        "arch": {
            "kind": "cnn",
            "convs": [
                {"width": 16, "kernel": 8, "stride": 4, "padding": "valid"},
                {"width": 32, "kernel": 4, "stride": 2, "padding": "valid"},
                {"width": 48, "kernel": 3, **layer},
                {"width": 32, "kernel": 3, "stride": 1, "padding": "same"},
            ],
            "fc": 128,
        },
        "obs_shape": [4, 84, 84],
        "n_actions": 6,
        "obs_scale": 1 / 255,
        "env": ENV_PONG,
    }
    assert sorted(p.name for p in saved["cnn"].iterdir()) == [
        "arch.json",
        "metrics.json",
        "policy.onnx",
        "policy.pt",
    ]


def test_minatar_arch_json_records_the_envs_real_settings_only(saved: dict) -> None:
    meta = json.loads((saved["minatar"] / "arch.json").read_text())
    assert meta["obs_scale"] == 1.0 and meta["obs_shape"] == [4, 10, 10]
    assert meta["env"] == {
        "id": "MinAtar/Breakout-v1",
        "imports": ["minatar.gym:register_envs"],
        "max_episode_steps": 10000,
    }
    assert meta["arch"]["convs"][1] == {"width": 8, "kernel": 3, "stride": 1, "padding": "same"}
    # ALE agents keep their pipeline's settings
    assert json.loads((saved["cnn"] / "arch.json").read_text())["env"] == ENV_PONG


def test_format_1_folders_are_converted_on_load(tmp_path: Path, saved: dict) -> None:
    """Before [K]: the Nature-only arch and no obs_scale (1/255 for a CNN, 1 for an MLP)."""
    for kind, old_arch in (
        ("cnn", {"kind": "cnn", "conv": [16, 32, 48], "extra": [[32, 3]], "fc": 128}),
        ("mlp", {"kind": "mlp", "widths": [32, 12, 48]}),
    ):
        folder = copy_folder(saved[kind], tmp_path / kind)
        meta = json.loads((folder / "arch.json").read_text())
        new = load_agent(folder)
        del meta["obs_scale"]
        meta.update(format_version=1, arch=old_arch)
        (folder / "arch.json").write_text(json.dumps(meta))
        old = load_agent(folder)
        assert old.arch == new.arch and old.obs_scale == new.obs_scale
        assert old.obs_scale == (1 / 255 if kind == "cnn" else 1.0)
        obs = obs_for(new, 3, seed=1)
        with torch.no_grad():
            assert torch.equal(old(obs).logits, new(obs).logits)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_policy_pt_is_a_plain_state_dict(
    kind: str, saved: dict, request: pytest.FixtureRequest
) -> None:
    agent: Agent = request.getfixturevalue(f"{kind}_agent")
    state = torch.load(saved[kind] / "policy.pt", weights_only=True)
    assert set(state) == set(agent.state_dict())
    for name, tensor in agent.state_dict().items():
        assert torch.equal(state[name], tensor)


def test_a2d_evo_exposes_load_agent(saved: dict) -> None:
    assert a2d_evo.load_agent is load_agent
    assert a2d_evo.Agent is Agent
    assert a2d_evo.load_agent(saved["mlp"]).arch == MLPArch((32, 12, 48))


# ----------------------------------------------------------------------------- ONNX
@pytest.mark.parametrize("kind", ["mlp", "cnn", "minatar"])
def test_onnx_matches_torch(kind: str, saved: dict, request: pytest.FixtureRequest) -> None:
    agent: Agent = request.getfixturevalue(f"{kind}_agent")
    session = ort.InferenceSession(
        str(saved[kind] / "policy.onnx"), providers=["CPUExecutionProvider"]
    )
    (inp,) = session.get_inputs()
    assert inp.name == "obs"
    assert inp.type == ("tensor(float)" if kind == "mlp" else "tensor(uint8)")
    assert inp.shape[1:] == list(agent.obs_shape) and not isinstance(inp.shape[0], int)
    assert [o.name for o in session.get_outputs()] == ["logits", "value"]
    for n in (1, 7):  # the batch dimension is dynamic
        obs = obs_for(agent, n, seed=n)
        logits, value = session.run(None, {"obs": obs.numpy()})
        with torch.no_grad():
            ref = agent(obs)
        assert logits.shape == (n, agent.n_actions) and value.shape == (n,)
        np.testing.assert_allclose(logits, ref.logits.numpy(), rtol=0, atol=1e-5)
        np.testing.assert_allclose(value, ref.value.numpy(), rtol=0, atol=1e-5)


@pytest.mark.parametrize("scale", [0.25, 0.3])  # divided by 4; multiplied by 0.3
def test_onnx_scales_vectors_as_the_agent_does(scale: float) -> None:
    torch.manual_seed(0)
    agent = Agent(MLPArch((6, 5)), (2, 3), 4, obs_scale=scale).eval()
    session = ort.InferenceSession(onnx_bytes(agent), providers=["CPUExecutionProvider"])
    obs = obs_for(agent, 5, seed=3) * 10
    logits, value = session.run(None, {"obs": obs.numpy()})
    with torch.no_grad():
        ref = agent(obs)
    np.testing.assert_allclose(logits, ref.logits.numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(value, ref.value.numpy(), rtol=0, atol=1e-5)


def test_onnx_bytes_depend_on_the_weights_alone(mlp_agent: Agent, cnn_agent: Agent) -> None:
    assert onnx_bytes(mlp_agent) == onnx_bytes(copy.deepcopy(mlp_agent))
    assert onnx_bytes(cnn_agent) == onnx_bytes(copy.deepcopy(cnn_agent))
    moved = perturbed(copy.deepcopy(mlp_agent))
    assert onnx_bytes(moved) != onnx_bytes(mlp_agent)


def test_onnx_false_writes_none_and_removes_a_stale_one(
    tmp_path: Path, mlp_agent: Agent, saved: dict
) -> None:
    folder = copy_folder(saved["mlp"], tmp_path / "a")
    assert (folder / "policy.onnx").is_file()
    save_agent(mlp_agent, folder, onnx=False)
    assert not (folder / "policy.onnx").exists()
    assert (folder / "metrics.json").is_file()  # metrics=None leaves metrics.json alone
    assert load_agent(folder).arch == mlp_agent.arch


def test_a_save_cut_short_leaves_no_agent_and_drops_a_stale_eval(
    tmp_path: Path, mlp_agent: Agent, saved: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """arch.json is the commit mark: a save that dies after policy.pt over an earlier agent
    leaves a folder readers take for no agent, not new weights beside the old metrics."""
    import a2d_evo.nets.agent_folder as agent_folder

    folder = copy_folder(saved["mlp"], tmp_path / "a")
    (folder / "eval.json").write_text("{}")  # scored the old weights
    old_metrics = (folder / "metrics.json").read_text()
    metrics = {**json.loads(old_metrics), "return_mean": -1.0}

    def die(path: Path, data: object) -> None:
        raise KeyboardInterrupt("killed between policy.pt and metrics.json")

    monkeypatch.setattr(agent_folder, "write_json", die)
    with pytest.raises(KeyboardInterrupt):
        save_agent(mlp_agent, folder, metrics=metrics, onnx=False)
    assert (folder / "policy.pt").is_file()
    assert (folder / "metrics.json").read_text() == old_metrics
    assert not (folder / "arch.json").exists()
    assert not (folder / "eval.json").exists()
    with pytest.raises(FormatError):
        load_agent(folder)
    monkeypatch.undo()
    save_agent(mlp_agent, folder, metrics=metrics, onnx=False)
    assert load_agent(folder).arch == mlp_agent.arch
    assert json.loads((folder / "metrics.json").read_text())["return_mean"] == -1.0


def test_a_save_that_fails_in_the_exporter_keeps_the_earlier_agent(
    tmp_path: Path, saved: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ONNX exporter (seconds, and it may fail or be interrupted) runs before anything of
    the folder is removed: the earlier agent stays whole (a received folder that `a2d-evo
    finetune` was saving has nothing that would make it again)."""
    import a2d_evo.nets.agent_folder as agent_folder

    folder = copy_folder(saved["mlp"], tmp_path / "a")
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    other = load_agent(folder)
    with torch.no_grad():
        other.policy.bias.add_(1.0)

    def fail(agent: Agent) -> bytes:
        raise KeyboardInterrupt("interrupted in the exporter")

    monkeypatch.setattr(agent_folder, "onnx_bytes", fail)
    with pytest.raises(KeyboardInterrupt):
        save_agent(other, folder, metrics=json.loads(files["metrics.json"]), onnx=True)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == files
    load_agent(folder)


def test_tensors_sharing_a_storage_are_loaded_apart(tmp_path: Path, saved: dict) -> None:
    """A policy.pt whose tensors share one storage (a view of another, as tied weights are
    saved) loads as parameters of their own: training one must not move the other."""
    folder = copy_folder(saved["mlp"], tmp_path / "a")
    state = torch.load(folder / "policy.pt", weights_only=True)
    n = state["value.bias"].numel()
    state["value.bias"] = state["policy.bias"][:n]  # a view: saved as one storage
    torch.save(state, folder / "policy.pt")
    agent = load_agent(folder)
    ptrs = [p.untyped_storage().data_ptr() for p in agent.parameters()]
    assert len(set(ptrs)) == len(ptrs)
    before = agent.policy.bias.detach().clone()
    with torch.no_grad():
        agent.value.bias.add_(1.0)
    assert torch.equal(agent.policy.bias, before)


# ----------------------------------------------------------------------------- bad folders
def _break(folder: Path, how: str) -> None:
    arch_json = folder / "arch.json"
    policy = folder / "policy.pt"
    meta = json.loads(arch_json.read_text())
    state = torch.load(policy, weights_only=True)
    if how == "no arch.json":
        arch_json.unlink()
    elif how == "no policy.pt":
        policy.unlink()
    elif how in ("newer", "older"):
        meta["format_version"] = 3 if how == "newer" else 0
        arch_json.write_text(json.dumps(meta))
    elif how == "no format_version":
        del meta["format_version"]
        arch_json.write_text(json.dumps(meta))
    elif how == "not json":
        arch_json.write_text("{not json")
    elif how == "bad obs_scale":
        meta["obs_scale"] = -1
        arch_json.write_text(json.dumps(meta))
    elif how == "subnormal obs_scale":  # 1 / scale is inf: forward would raise OverflowError
        meta["obs_scale"] = 5e-324
        arch_json.write_text(json.dumps(meta))
    elif how == "no obs_scale":
        del meta["obs_scale"]
        arch_json.write_text(json.dumps(meta))
    elif how == "bad arch":
        meta["arch"]["widths"] = []
        arch_json.write_text(json.dumps(meta))
    elif how == "unknown key":
        meta["evil"] = 1
        arch_json.write_text(json.dumps(meta))
    elif how == "huge arch.json":  # read whole before any check: a MemoryError, no file named
        arch_json.write_text(json.dumps(meta) + " " * (1 << 20))
    elif how == "arch edited":
        meta["arch"]["widths"][1] = 16
        arch_json.write_text(json.dumps(meta))
    elif how == "tensor shape":
        state["layers.1.weight"] = torch.zeros(12, 33)
        torch.save(state, policy)
    elif how == "tensor missing":
        del state["value.bias"]
        torch.save(state, policy)
    elif how == "tensor extra":
        state["layers.9.weight"] = torch.zeros(1)
        torch.save(state, policy)
    elif how == "tensor dtype":
        state["policy.weight"] = state["policy.weight"].double()
        torch.save(state, policy)
    elif how == "tensor nan":
        state["policy.bias"][0] = float("nan")
        torch.save(state, policy)
    elif how == "sparse tensor":  # a huge shape over a few stored values; was a traceback
        state["layers.0.weight"] = state["layers.0.weight"].to_sparse()
        torch.save(state, policy)
    elif how == "meta tensors":  # shapes without values: passed every check, then crashed
        torch.save({k: torch.empty(v.shape, device="meta") for k, v in state.items()}, policy)
    elif how == "deflated":  # a member inflated to the size it claims (torch.save stores)
        raw, out = policy.read_bytes(), io.BytesIO()
        with zipfile.ZipFile(io.BytesIO(raw)) as src, zipfile.ZipFile(out, "w") as dst:
            for info in src.infolist():
                dst.writestr(info.filename, src.read(info), compress_type=zipfile.ZIP_DEFLATED)
        policy.write_bytes(out.getvalue())
    elif how == "not a state dict":
        torch.save([1, 2, 3], policy)
    elif how == "truncated":
        data = policy.read_bytes()
        policy.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        policy.write_bytes(os.urandom(4096))
    else:
        raise AssertionError(how)


BAD = {
    "no arch.json": "arch.json.*not found",
    "no policy.pt": "policy.pt.*not found",
    "newer": "format_version 3, newer than this a2d-evo reads \\(2\\); upgrade",
    "older": "format_version 0, older than this a2d-evo reads \\(2\\)",
    "bad obs_scale": "arch.json: obs_scale: expected a number in \\[1e-30, 1e30\\], got -1",
    "subnormal obs_scale": "arch.json: obs_scale: .* got 5e-324",
    "no obs_scale": "arch.json: missing key 'obs_scale'",
    "no format_version": "no format_version",
    "not json": "not valid JSON",
    "bad arch": "arch.json.*at least one hidden layer",
    "unknown key": "arch.json: unknown key 'evil'",
    "huge arch.json": "arch.json holds 1,048,[0-9]+ bytes; an arch.json a2d-evo writes",
    "arch edited": (
        "tensor 'layers.1.weight' has shape \\(12, 32\\), arch mlp-32x16x48 needs \\(16, 32\\)"
    ),
    "tensor shape": "tensor 'layers.1.weight' has shape \\(12, 33\\)",
    "tensor missing": "tensor 'value.bias' of arch mlp-32x12x48 is missing",
    "tensor extra": "tensor 'layers.9.weight' does not belong",
    "tensor dtype": "tensor 'policy.weight' has dtype torch.float64",
    "tensor nan": "tensor 'policy.bias' holds NaN",
    "sparse tensor": "tensor 'layers.0.weight' is a torch.sparse_coo tensor, not a dense one",
    "meta tensors": "tensor '[a-z.0-9]+' is a meta tensor \\(a shape without values\\)",
    "deflated": "policy.pt holds compressed members, or members larger than the file: refused",
    "not a state dict": "expected a state dict",
    "truncated": "policy.pt is truncated or corrupted",
    "garbage": "policy.pt is truncated or corrupted",
}


@pytest.mark.parametrize("how", list(BAD))
def test_bad_folders_raise_format_error(how: str, tmp_path: Path, saved: dict) -> None:
    folder = copy_folder(saved["mlp"], tmp_path / "agent")
    _break(folder, how)
    with pytest.raises(FormatError, match=BAD[how]):
        load_agent(folder)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="agent folder .* not found"):
        load_agent(tmp_path / "nope")


class _Payload:
    """Unpickling this runs code: it creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (str(self.marker), "w"))


def test_a_pickle_with_code_is_refused(tmp_path: Path, saved: dict) -> None:
    folder = copy_folder(saved["mlp"], tmp_path / "agent")
    marker = tmp_path / "pwned"
    state = torch.load(folder / "policy.pt", weights_only=True)
    state["layers.0.weight"] = _Payload(marker)
    torch.save(state, folder / "policy.pt")

    # the payload is live: a plain unpickle would run it
    control = tmp_path / "control"
    torch.save({"x": _Payload(control)}, tmp_path / "control.pt")
    torch.load(tmp_path / "control.pt", weights_only=False)
    assert control.exists()

    with pytest.raises(FormatError, match="refused to unpickle"):
        load_agent(folder)
    assert not marker.exists()


# ----------------------------------------------------------------------------- metrics
def test_metrics_contract(saved: dict, mlp_agent: Agent) -> None:
    metrics = json.loads((saved["mlp"] / "metrics.json").read_text())
    assert tuple(metrics) == (*METRICS_KEYS, "episode_returns")
    assert metrics == {
        "format_version": 1,
        "env_id": "CartPole-v1",
        "return_mean": 20.0,
        "return_std": pytest.approx(np.sqrt(200 / 3)),  # population std of 10, 20, 30
        "episodes": 3,
        "eval_mode": "greedy",
        "seeds": [0, 1, 2],
        "flops": cost.flops(mlp_agent.arch, (4,), 2),
        "params": cost.params(mlp_agent.arch, (4,), 2),
        "latency_ms": 0.25,
        "normalised_return": 0.5,
        "episode_returns": [10.0, 20.0, 30.0],  # in the order of the seeds
    }


def test_make_metrics_measures_latency_and_adds_extra(mlp_agent: Agent) -> None:
    m = make_metrics(
        mlp_agent,
        env_id="Acrobot-v1",
        returns=[-100.0, -80.0],
        eval_mode="sample",
        seeds=np.arange(2),
        r_random=-500.0,
        r_teacher=-80.0,
        extra={"arch": str(mlp_agent.arch)},
    )
    assert set(METRICS_KEYS) <= set(m) and m["arch"] == "mlp-32x12x48"
    assert m["latency_ms"] > 0 and m["seeds"] == [0, 1]
    assert m["normalised_return"] == pytest.approx((-90 + 500) / (-80 + 500))
    json.dumps(m)  # plain JSON types only
    with pytest.raises(ValueError, match="replace a contract key"):
        make_metrics(
            mlp_agent,
            env_id="x",
            returns=[1.0],
            eval_mode="greedy",
            seeds=[0],
            r_random=0,
            r_teacher=1,
            latency=1.0,
            extra={"flops": 0},
        )
    with pytest.raises(ValueError, match="eval_mode"):
        make_metrics(
            mlp_agent,
            env_id="x",
            returns=[1.0],
            eval_mode="argmax",
            seeds=[0],
            r_random=0,
            r_teacher=1,
            latency=1.0,
        )
    with pytest.raises(ValueError, match="2 episode returns for 3 seeds"):
        make_metrics(
            mlp_agent,
            env_id="x",
            returns=[1.0, 2.0],
            eval_mode="greedy",
            seeds=[0, 1, 2],
            r_random=0,
            r_teacher=1,
            latency=1.0,
        )
    with pytest.raises(ValueError, match="no episode returns"):
        make_metrics(
            mlp_agent,
            env_id="x",
            returns=[],
            eval_mode="greedy",
            seeds=[],
            r_random=0,
            r_teacher=1,
            latency=1.0,
        )


def test_save_agent_refuses_metrics_without_format_version(
    tmp_path: Path, mlp_agent: Agent
) -> None:
    with pytest.raises(FormatError, match="format_version"):
        save_agent(mlp_agent, tmp_path / "a", metrics={"return_mean": 1.0}, onnx=False)
    assert not (tmp_path / "a" / "arch.json").exists()


# ----------------------------------------------------------------------------- nets/agent_folder.py
def test_an_extracted_agent_takes_the_supernet_s_mode() -> None:
    """a2d_evo/nets/agent_folder.py extract: the agent is in the supernet's train/eval mode
    (an evaluation extracts from a supernet in eval mode and gets an agent in eval mode).
    Mutant let through: ``agent.train(True)``, an agent always in training mode."""
    from a2d_evo.config import SpaceConfig
    from a2d_evo.nets.agent_folder import extract
    from a2d_evo.nets.space import MLPArch, SearchSpace
    from a2d_evo.nets.supernet import Supernet

    supernet = Supernet(SearchSpace(SpaceConfig()), (4,), 2)
    assert extract(supernet.eval(), MLPArch((4,))).training is False
    assert extract(supernet.train(), MLPArch((4,))).training is True


# ----------------------------------------------------------------------------- nets/onnx_graph.py
def _session(model: Any) -> Any:
    import onnxruntime as ort

    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def test_the_onnx_graph_divides_pixels_by_255_bit_for_bit_as_the_agent_does() -> None:
    """a2d_evo/nets/onnx_graph.py onnx_bytes: a scale 1/n with n whole is a division by n,
    as obs_to_float divides (x / 255 and x * (1/255) differ in the last bit for 126 of the
    256 pixel values), so the graph's scaled input is the agent's bit for bit. Mutant let
    through: the Div branch dropped (always ``Mul`` by the scale): within the covering
    tests' 1e-5 of torch's outputs."""
    import onnx

    from a2d_evo.nets.agent import Agent, obs_to_float
    from a2d_evo.nets.onnx_graph import onnx_bytes
    from a2d_evo.nets.space import CNNArch, ConvLayer

    torch.manual_seed(0)
    agent = Agent(CNNArch((ConvLayer(4, 3, 1),), 8), (1, 16, 16), 2, obs_scale=1 / 255).eval()
    model = onnx.load_from_string(onnx_bytes(agent))
    (scaled,) = [n for n in model.graph.node if n.output == ["obs.scaled"]]
    model.graph.output.append(onnx.helper.make_tensor_value_info("obs.scaled", 1, None))
    obs = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    got = _session(model).run(["obs.scaled"], {"obs": obs.numpy()})[0]
    want = obs_to_float(obs, agent.obs_scale).numpy()
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    assert scaled.op_type == "Div"


def test_the_onnx_file_has_the_lowest_ir_version_its_opset_allows() -> None:
    """a2d_evo/nets/onnx_graph.py IR_VERSION: the file declares opset 17 and IR version 8,
    the lowest IR that onnx's version table pairs with opset 17, so that older runtimes
    (onnxruntime 1.14 reads IR 8 at most) load it. Mutant let through: ``IR_VERSION = 9``,
    which today's onnxruntime runs as well (the covering tests run only that)."""
    import onnx

    from a2d_evo.nets.agent import Agent
    from a2d_evo.nets.onnx_graph import OPSET, onnx_bytes
    from a2d_evo.nets.space import MLPArch

    model = onnx.load_from_string(onnx_bytes(Agent(MLPArch((4,)), (3,), 2)))
    assert [(o.domain, o.version) for o in model.opset_import] == [("", OPSET)] and OPSET == 17
    lowest = min(ir for _, ir, opset, *_ in onnx.helper.VERSION_TABLE if opset >= OPSET)
    assert model.ir_version == lowest == 8


def test_the_onnx_graph_scales_vectors_by_a_factor_above_1() -> None:
    """a2d_evo/nets/onnx_graph.py onnx_bytes: any obs_scale but 1 is applied in the graph,
    one above 1 too (obs_scale may be any number in [1e-30, 1e30]). Mutant let through:
    ``scale != 1.0`` made ``scale < 1.0`` (the covering tests scale by 0.25 and 0.3): a
    scale of 2 left out of the graph, which then disagreed with the agent it ships."""
    import onnx

    from a2d_evo.nets.agent import Agent
    from a2d_evo.nets.onnx_graph import onnx_bytes
    from a2d_evo.nets.space import MLPArch

    torch.manual_seed(0)
    agent = Agent(MLPArch((6,)), (3,), 2, obs_scale=2.0).eval()
    obs = torch.tensor([[1.0, -2.0, 0.5], [3.0, 0.25, -1.0]])
    session = _session(onnx.load_from_string(onnx_bytes(agent)))
    logits, value = session.run(None, {"obs": obs.numpy()})
    with torch.no_grad():
        ref = agent(obs)
    np.testing.assert_allclose(logits, ref.logits.numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(value, ref.value.numpy(), rtol=0, atol=1e-5)
    with torch.no_grad():
        unscaled = Agent(MLPArch((6,)), (3,), 2)
        unscaled.load_state_dict(agent.state_dict())
        assert not torch.allclose(unscaled(obs).logits, ref.logits, atol=1e-3)  # 2 matters
