"""Importing teachers: CleanRL and SB3 networks mapped exactly onto our Agent, or refused."""

from __future__ import annotations

import base64
import io
import json
import pickle
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from a2d_evo.config import config_from_dict
from a2d_evo.errors import FormatError, RunFolderError, TrainingError
from a2d_evo.nets.agent import Agent
from a2d_evo.nets.space import CNNArch, MLPArch
from a2d_evo.runs.folder import RunFolder
from a2d_evo.train.foreign_checkpoints import convert_cleanrl, convert_sb3, detect_format
from a2d_evo.train.import_teacher import check_converted_fits_env, import_teacher

ATARI_OBS = (4, 84, 84)


@pytest.fixture(autouse=True)
def _no_onnx(monkeypatch: pytest.MonkeyPatch) -> None:
    # ONNX export is tested with export.py; here it would only add seconds per save
    monkeypatch.setattr("a2d_evo.nets.agent_folder.onnx_available", lambda: False)


def seeded(module: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return module


# ------------------------------------------------------------------ the foreign networks
class CleanRLAtari(nn.Module):
    """CleanRL ppo_atari.py's Agent (shared Nature trunk ``network``, ``actor``, ``critic``)."""

    def __init__(self, n_actions: int) -> None:
        super().__init__()
        self.network = nn.Sequential(
            nn.Conv2d(4, 32, 8, stride=4), nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(64 * 7 * 7, 512), nn.ReLU(),
        )  # fmt: skip
        self.actor = nn.Linear(512, n_actions)
        self.critic = nn.Linear(512, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.network(x / 255.0)
        return self.actor(h), self.critic(h).squeeze(-1)


class CleanRLClassic(nn.Module):
    """CleanRL ppo.py's Agent: separate tanh actor and critic MLPs."""

    def __init__(self, obs: int, n_actions: int, hidden: int = 64) -> None:
        super().__init__()
        self.critic = nn.Sequential(
            nn.Linear(obs, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
            nn.Linear(hidden, 1),
        )  # fmt: skip
        self.actor = nn.Sequential(
            nn.Linear(obs, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
            nn.Linear(hidden, n_actions),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.actor(x), self.critic(x).squeeze(-1)


class MlpExtractor(nn.Module):
    def __init__(self, obs: int, pi: list[int], vf: list[int]) -> None:
        super().__init__()

        def mlp(sizes: list[int]) -> nn.Sequential:
            layers: list[nn.Module] = []
            for a, b in zip([obs, *sizes], sizes, strict=False):
                layers += [nn.Linear(a, b), nn.Tanh()]
            return nn.Sequential(*layers)

        self.policy_net, self.value_net = mlp(pi), mlp(vf)


class SB3Mlp(nn.Module):
    """The module tree of SB3 2.x ``ActorCriticPolicy`` with ``MlpPolicy`` (Flatten extractor
    shared under three names, separate pi/vf nets, heads)."""

    def __init__(self, obs: int, n_actions: int, pi: list[int], vf: list[int]) -> None:
        super().__init__()
        self.features_extractor = nn.Flatten()
        self.pi_features_extractor = self.features_extractor
        self.vf_features_extractor = self.features_extractor
        self.mlp_extractor = MlpExtractor(obs, pi, vf)
        self.action_net = nn.Linear(pi[-1] if pi else obs, n_actions)
        self.value_net = nn.Linear(vf[-1] if vf else obs, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features_extractor(x)
        pi, vf = self.mlp_extractor.policy_net(f), self.mlp_extractor.value_net(f)
        return self.action_net(pi), self.value_net(vf).squeeze(-1)


class SB3Mlp1x(nn.Module):
    """SB3 1.x ``MlpPolicy`` with ``net_arch=[*shared, dict(pi=..., vf=...)]``: a
    ``shared_net`` in the extractor before the separate pi/vf nets."""

    def __init__(
        self, obs: int, n_actions: int, shared: list[int], pi: list[int], vf: list[int]
    ) -> None:
        super().__init__()
        self.features_extractor = nn.Flatten()
        self.mlp_extractor = MlpExtractor(shared[-1], pi, vf)
        layers: list[nn.Module] = []
        for a, b in zip([obs, *shared], shared, strict=False):
            layers += [nn.Linear(a, b), nn.Tanh()]
        self.mlp_extractor.shared_net = nn.Sequential(*layers)
        self.action_net = nn.Linear(pi[-1] if pi else shared[-1], n_actions)
        self.value_net = nn.Linear(vf[-1] if vf else shared[-1], 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.mlp_extractor.shared_net(self.features_extractor(x))
        pi, vf = self.mlp_extractor.policy_net(h), self.mlp_extractor.value_net(h)
        return self.action_net(pi), self.value_net(vf).squeeze(-1)


class NatureCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.cnn = nn.Sequential(
            nn.Conv2d(4, 32, 8, stride=4), nn.ReLU(), nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(), nn.Flatten(),
        )  # fmt: skip
        self.linear = nn.Sequential(nn.Linear(3136, 512), nn.ReLU())


class SB3Cnn(nn.Module):
    """SB3 ``CnnPolicy`` (NatureCNN shared extractor, empty mlp_extractor, heads)."""

    def __init__(self, n_actions: int) -> None:
        super().__init__()
        self.features_extractor = NatureCNN()
        self.pi_features_extractor = self.features_extractor
        self.vf_features_extractor = self.features_extractor
        self.mlp_extractor = MlpExtractor(512, [], [])
        self.action_net = nn.Linear(512, n_actions)
        self.value_net = nn.Linear(512, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fe = self.features_extractor
        h = fe.linear(fe.cnn(x.float() / 255.0))
        return self.action_net(h), self.value_net(h).squeeze(-1)


def assert_same_function(theirs: nn.Module, ours: Agent, obs: torch.Tensor) -> None:
    with torch.no_grad():
        logits, value = theirs(obs)
        out = ours(obs)
    torch.testing.assert_close(out.logits, logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.value, value, rtol=1e-5, atol=1e-5)


def build(arch: CNNArch | MLPArch, state: dict, obs_shape: tuple[int, ...], n: int) -> Agent:
    agent = Agent(arch, obs_shape, n)
    agent.load_state_dict(state, strict=True)
    return agent


def sb3_zip(path: Path, policy: nn.Module, data: dict | None = None) -> Path:
    buf = io.BytesIO()
    torch.save(policy.state_dict(), buf)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("policy.pth", buf.getvalue())
        zf.writestr("data", json.dumps(data or {"policy_kwargs": {}}))
        zf.writestr("_stable_baselines3_version", "2.4.0")
    return path


# ------------------------------------------------------------------ exact mappings
def test_cleanrl_atari_maps_onto_the_nature_agent() -> None:
    theirs = seeded(CleanRLAtari(6))
    arch, state = convert_cleanrl(theirs.state_dict())
    assert arch == CNNArch.nature((32, 64, 64), (), 512)
    check_converted_fits_env(arch, state, ATARI_OBS, 6, "ALE/Pong-v5", Path("x"))
    obs = torch.randint(0, 256, (3, *ATARI_OBS), dtype=torch.uint8)
    assert_same_function(theirs, build(arch, state, ATARI_OBS, 6), obs)


def test_sb3_cnn_policy_maps_onto_the_nature_agent() -> None:
    theirs = seeded(SB3Cnn(4))
    assert "pi_features_extractor.cnn.0.weight" in theirs.state_dict()  # the aliases are there
    arch, state = convert_sb3(theirs.state_dict(), {"policy_kwargs": {}})
    assert arch == CNNArch.nature((32, 64, 64), (), 512)
    obs = torch.randint(0, 256, (2, *ATARI_OBS), dtype=torch.uint8)
    assert_same_function(theirs, build(arch, state, ATARI_OBS, 4), obs)


def test_cleanrl_classic_is_block_diagonal_exact() -> None:
    theirs = seeded(CleanRLClassic(4, 2))
    arch, state = convert_cleanrl(theirs.state_dict())
    assert arch == MLPArch((128, 128))
    obs = torch.randn(16, 4, generator=torch.Generator().manual_seed(1))
    assert_same_function(theirs, build(arch, state, (4,), 2), obs)


def test_sb3_mlp_policy_is_block_diagonal_exact() -> None:
    theirs = seeded(SB3Mlp(6, 3, pi=[64, 32], vf=[16, 48]))
    arch, state = convert_sb3(theirs.state_dict())
    assert arch == MLPArch((80, 80))
    obs = torch.randn(16, 6, generator=torch.Generator().manual_seed(2))
    assert_same_function(theirs, build(arch, state, (6,), 3), obs)


@pytest.mark.parametrize(
    ("shared", "pi", "vf", "widths"),
    [([64], [32], [16], (64, 48)), ([8, 6], [], [], (8, 6))],
)
def test_sb3_1x_mlp_policy_with_a_shared_net_is_exact(
    shared: list[int], pi: list[int], vf: list[int], widths: tuple[int, ...]
) -> None:
    """SB3 1.x's shared layers stay shared; the split after them becomes block-diagonal (or,
    with no split, the heads sit on the shared trunk)."""
    theirs = seeded(SB3Mlp1x(5, 3, shared, pi, vf))
    arch, state = convert_sb3(theirs.state_dict())
    assert arch == MLPArch(widths)
    obs = torch.randn(16, 5, generator=torch.Generator().manual_seed(3))
    assert_same_function(theirs, build(arch, state, (5,), 3), obs)


# ------------------------------------------------------------------ refusals
def test_refuses_what_a_shared_trunk_cannot_express() -> None:
    with pytest.raises(FormatError, match="same depth"):
        convert_sb3(seeded(SB3Mlp(4, 2, pi=[64], vf=[64, 64])).state_dict())
    with pytest.raises(FormatError, match="hidden layer"):
        convert_sb3(seeded(SB3Mlp(4, 2, pi=[], vf=[])).state_dict())
    relu = {"policy_kwargs": {":type:": "<class 'dict'>", "activation_fn": "<class 'ReLU'>"}}
    with pytest.raises(FormatError, match="tanh"):
        convert_sb3(seeded(SB3Mlp(4, 2, pi=[8], vf=[8])).state_dict(), relu)
    # the class's own name, not a substring: Tanhshrink is another function (found by review)
    mlp = seeded(SB3Mlp(4, 2, pi=[8], vf=[8])).state_dict()
    for name in ("<class 'torch.nn.modules.activation.Tanhshrink'>", "Tanhshrink"):
        shrink = {"policy_kwargs": {"activation_fn": name}}
        with pytest.raises(FormatError, match="tanh"):
            convert_sb3(mlp, shrink)
    for name in ("<class 'torch.nn.modules.activation.Tanh'>", "Tanh"):
        convert_sb3(mlp, {"policy_kwargs": {"activation_fn": name}})
    cnn = seeded(SB3Cnn(4)).state_dict()
    separate = dict(cnn)
    separate["vf_features_extractor.cnn.0.weight"] = cnn["features_extractor.cnn.0.weight"] + 1
    with pytest.raises(FormatError, match="separate"):
        convert_sb3(separate)
    with pytest.raises(FormatError, match="continuous"):
        convert_sb3({**cnn, "log_std": torch.zeros(2)})
    with pytest.raises(FormatError, match="not a CleanRL"):
        convert_cleanrl({"foo.weight": torch.zeros(2, 2)})


def test_refuses_an_env_mismatch() -> None:
    arch, state = convert_cleanrl(seeded(CleanRLAtari(6)).state_dict())
    with pytest.raises(TrainingError, match="actions"):
        check_converted_fits_env(arch, state, ATARI_OBS, 4, "ALE/Breakout-v5", Path("x"))
    with pytest.raises(TrainingError, match="MLP"):
        check_converted_fits_env(arch, state, (4,), 2, "CartPole-v1", Path("x"))
    arch, state = convert_cleanrl(seeded(CleanRLClassic(6, 3)).state_dict())
    with pytest.raises(TrainingError, match="size 6"):
        check_converted_fits_env(arch, state, (4,), 2, "CartPole-v1", Path("x"))


# ------------------------------------------------------------------ end to end on CartPole
def balancing(first: nn.Linear, second: nn.Linear, head: nn.Linear) -> None:
    """Add a CartPole balancer on top of random weights: push towards where the pole falls
    (angle + angular velocity). Imports are refused for teachers no better than random, and
    the random weights still exercise every entry of the conversion."""
    with torch.no_grad():
        first.weight[0] = torch.tensor([0.0, 0.0, 10.0, 10.0])
        first.bias[0] = 0.0
        second.weight[0] = 0.0
        second.weight[0, 0] = 3.0
        second.bias[0] = 0.0
        head.weight[:, 0] += torch.tensor([-8.0, 8.0])


def cartpole_cfg():
    return config_from_dict(
        {"env": {"id": "CartPole-v1"}, "teacher": {"eval_episodes": 3}, "eval": {"num_envs": 3}}
    )


def test_import_cleanrl_file(tmp_path: Path) -> None:
    from a2d_evo.nets.agent_folder import load_agent

    theirs = seeded(CleanRLClassic(4, 2))
    balancing(theirs.actor[0], theirs.actor[2], theirs.actor[4])
    src = tmp_path / "agent.cleanrl_model"
    torch.save(theirs.state_dict(), src)
    assert detect_format(src) == "cleanrl"  # a torch zip is not mistaken for an SB3 zip
    run = RunFolder(tmp_path / "run")
    folder = import_teacher(src, cartpole_cfg(), run)
    assert folder == run.teacher_agent
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["episodes"] == 3 and metrics["normalised_return"] == 1.0
    assert "random_return_mean" in metrics
    # the teacher and the random policy on the same seeds, the teacher's own ones (a review
    # found the key's presence alone checked): R_random replayed here, and the balancing
    # teacher far above it
    from a2d_evo.evaluation.episodes import evaluate_agent, random_policy_return
    from a2d_evo.evaluation.seeds import teacher_eval_seed

    first = teacher_eval_seed(cartpole_cfg().seed)
    assert metrics["seeds"] == [first, first + 1, first + 2]
    assert metrics["random_return_mean"] == random_policy_return(cartpole_cfg(), 3, first).mean
    mine = evaluate_agent(load_agent(folder), cartpole_cfg(), 3, first, "greedy")
    assert metrics["return_mean"] == mine.mean
    assert metrics["return_mean"] > metrics["random_return_mean"] + 100
    obs = torch.randn(8, 4)
    assert_same_function(theirs, load_agent(folder), obs)
    # a second import refuses to overwrite the teacher, and says how to replace it (it has
    # no training to resume: "pass --resume" led to "no checkpoint")
    hint = f"delete {run.root / 'teacher'} first"
    with pytest.raises(RunFolderError, match="already holds an imported teacher; to put") as info:
        import_teacher(src, cartpole_cfg(), run)
    assert hint in str(info.value) and "--resume" not in str(info.value)
    with pytest.raises(RunFolderError, match="holds an imported teacher, which has no training"):
        run.bind_stage("teacher", cartpole_cfg(), resume=True)
    assert (folder / "policy.pt").is_file()
    # a trained teacher whose checkpoint is gone is not taken for an imported one
    metrics = json.loads((folder / "metrics.json").read_text())
    (folder / "metrics.json").write_text(json.dumps({**metrics, "source": "train-teacher"}))
    with pytest.raises(RunFolderError, match="already holds a teacher run; pass --resume"):
        run.bind_stage("teacher", cartpole_cfg(), resume=False)


class _Boom:
    def __reduce__(self):  # what unpickling SB3's data member would run
        return (Path.touch, (Path(BOOM),))


BOOM = ""


def test_import_sb3_zip_never_unpickles_data(tmp_path: Path) -> None:
    from a2d_evo.nets.agent_folder import load_agent

    global BOOM
    BOOM = str(tmp_path / "unpickled")
    payload = base64.b64encode(pickle.dumps(_Boom())).decode()
    data = {"policy_kwargs": {}, "policy_class": {":type:": "<class 'abc.ABCMeta'>",
                                                  ":serialized:": payload}}  # fmt: skip
    theirs = seeded(SB3Mlp(4, 2, pi=[64, 64], vf=[64, 64]))
    pi = theirs.mlp_extractor.policy_net
    balancing(pi[0], pi[2], theirs.action_net)
    src = sb3_zip(tmp_path / "ppo_cartpole.zip", theirs, data)
    assert detect_format(src) == "sb3"
    folder = import_teacher(src, cartpole_cfg(), RunFolder(tmp_path / "run"))
    assert not Path(BOOM).exists()
    assert_same_function(theirs, load_agent(folder), torch.randn(8, 4))


def test_import_bad_files_write_nothing(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "run")
    wrong = tmp_path / "acrobot.pt"
    torch.save(seeded(CleanRLClassic(6, 3)).state_dict(), wrong)
    with pytest.raises(TrainingError, match="observations of size 6"):
        import_teacher(wrong, cartpole_cfg(), run)
    code = tmp_path / "code.pt"
    torch.save({"actor.0.weight": _Boom()}, code)
    with pytest.raises(FormatError, match="unpickle"):
        import_teacher(code, cartpole_cfg(), run)
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(FormatError):
        import_teacher(broken, cartpole_cfg(), run, fmt="sb3")
    # bytes that are no pickle: damaged, not "objects other than tensors" (no code in them)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x80" + bytes(range(7, 250)) * 4)
    with pytest.raises(FormatError, match="junk.pt is truncated or corrupted: .*operand"):
        import_teacher(junk, cartpole_cfg(), run, fmt="cleanrl")
    # a folder, an a2d-evo agent folder above all: said so, not "not found"
    from a2d_evo.nets.agent import Agent
    from a2d_evo.nets.agent_folder import save_agent
    from a2d_evo.nets.space import MLPArch

    agent = save_agent(Agent(MLPArch((8,)), (4,), 2), tmp_path / "agent", onnx=False)
    with pytest.raises(FormatError, match="is an a2d-evo agent folder, a teacher as it is"):
        import_teacher(agent, cartpole_cfg(), run)
    with pytest.raises(FormatError, match=f"{tmp_path} is a folder; import-teacher reads one"):
        import_teacher(tmp_path, cartpole_cfg(), run)
    assert not run.teacher.exists()


def _zip_version_too_new(raw: bytes) -> bytes:
    """A torch file whose central directory says its members need zip version 18.3 to
    extract (bytes 6-7 of each central record): what a bit flip there looks like."""
    out = bytearray(raw)
    at = out.find(b"PK\x01\x02")
    assert at >= 0
    while at >= 0:
        out[at + 6 : at + 8] = (183).to_bytes(2, "little")
        at = out.find(b"PK\x01\x02", at + 4)
    return bytes(out)


def test_a_torch_file_with_a_damaged_zip_version_is_read_by_torch(tmp_path: Path) -> None:
    """zipfile raises NotImplementedError on a zip version it does not read, which escaped
    the archive check as a traceback (from a policy.pt, a checkpoint or an SB3 zip's
    policy.pth, where a bit flip put it); the check now leaves such a file to torch's reader,
    which reads this one (and calls a worse one damaged, as any other)."""
    from a2d_evo.runs.files import torch_load
    from a2d_evo.train.foreign_checkpoints import read_sb3_zip

    state = seeded(CleanRLClassic(4, 2)).state_dict()
    buf = io.BytesIO()
    torch.save(state, buf)
    damaged = _zip_version_too_new(buf.getvalue())
    path = tmp_path / "policy.pt"
    path.write_bytes(damaged)
    got = torch_load(path, "policy")
    assert got.keys() == state.keys() and all(torch.equal(got[k], state[k]) for k in state)
    model = tmp_path / "damaged.zip"
    with zipfile.ZipFile(model, "w") as zf:
        zf.writestr("policy.pth", damaged)
    got, _ = read_sb3_zip(model)
    assert got.keys() == state.keys() and all(torch.equal(got[k], state[k]) for k in state)
    # damaged further (its pickle cut short): a FormatError naming the member, no traceback
    with zipfile.ZipFile(model, "w") as zf:
        zf.writestr("policy.pth", damaged[: len(damaged) // 2])
    with pytest.raises(FormatError, match=r"damaged.zip:policy.pth is truncated or corrupted"):
        read_sb3_zip(model)


def test_a_space_that_does_not_fit_the_env_is_refused_before_the_teacher_binds_the_run(
    tmp_path: Path, configs_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The teacher's stage records the run's space: a CNN space on CartPole with a pinned MLP
    teacher trained, then no supernet could ever be trained in the run (the corrected command
    conflicted with the recorded space). Refused before anything is written."""
    from a2d_evo.cli import main

    out = tmp_path / "run"
    argv = ["train-teacher", "--config", str(configs_dir / "cartpole.yaml"), "--out", str(out),
            "--set", "space.kind=cnn", "--quiet"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "space.kind 'cnn' does not fit CartPole-v1" in err, err
    assert "images are rank-3 uint8 or bool observations" in err, err  # why it is a vector
    assert not (out / "config.yaml").exists()


def _each_refused(cases: dict[str, tuple[object, str]], run: RunFolder) -> None:
    """Save each object as a CleanRL file beside the run and import it: a FormatError that
    matches its words."""
    for name, (obj, words) in cases.items():
        torch.save(obj, run.root.parent / name)
        with pytest.raises(FormatError, match=words):
            import_teacher(run.root.parent / name, cartpole_cfg(), run, fmt="cleanrl")


def _deflated(raw: bytes) -> bytes:
    """A torch archive rewritten with every member deflated (torch.save stores them)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info), compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


def test_a_file_cannot_make_the_import_allocate_without_bound(tmp_path: Path) -> None:
    """Shapes in a teacher file are a claim: 2.7 KB of stride-0 views, or meta tensors,
    asked for 40 GB in block_diag or the agent's layers; a deflated member inflates to the
    size it claims. Each is refused before anything is built, and nothing is written."""
    run = RunFolder(tmp_path / "run")
    honest = seeded(CleanRLClassic(4, 2, hidden=8)).state_dict()
    one = torch.zeros(1)
    views = {k: one.expand(v.shape) for k, v in honest.items()}  # one stored value each
    views["actor.0.weight"] = one.expand(50_000, 4)  # and 50,000 units claimed
    cases = {
        "views.pt": (views, r"tensor '[a-z.0-9]+' is not a dense tensor of its shape"),
        "meta.pt": ({k: torch.empty(v.shape, device="meta") for k, v in honest.items()},
                    r"tensor '[a-z.0-9]+' is a meta tensor"),
    }  # fmt: skip
    _each_refused(cases, run)
    # dense, but actor and critic side by side wider than any agent layer: refused before
    # block_diag builds its (a + c)^2 weights
    broad = {  # one hidden layer of 8,200 units in each net
        f"{net}.{i}.{kind}": torch.zeros(shape)
        for net, out in (("actor", 2), ("critic", 1))
        for i, kind, shape in ((0, "weight", (8200, 4)), (0, "bias", (8200,)),
                               (2, "weight", (out, 8200)), (2, "bias", (out,)))
    }  # fmt: skip
    torch.save(broad, tmp_path / "broad.pt")
    with pytest.raises(FormatError, match=r"a shared layer of 16,400 units .* above 16,384"):
        import_teacher(tmp_path / "broad.pt", cartpole_cfg(), run, fmt="cleanrl")
    # deflated members: in a CleanRL file and in an SB3 zip's policy.pth
    buf = io.BytesIO()
    torch.save(honest, buf)
    (tmp_path / "deflated.pt").write_bytes(_deflated(buf.getvalue()))
    with pytest.raises(FormatError, match=r"deflated\.pt holds compressed members"):
        import_teacher(tmp_path / "deflated.pt", cartpole_cfg(), run, fmt="cleanrl")
    with zipfile.ZipFile(tmp_path / "sb3.zip", "w") as zf:
        zf.writestr("policy.pth", _deflated(buf.getvalue()))
        zf.writestr("data", "[" * 100_000)  # nesting past the recursion limit: no traceback
    with pytest.raises(FormatError, match=r"sb3\.zip:policy\.pth holds compressed members"):
        import_teacher(tmp_path / "sb3.zip", cartpole_cfg(), run, fmt="sb3")
    assert not run.teacher.exists()


def test_an_sb3_data_member_that_is_no_json_it_can_read_is_ignored(tmp_path: Path) -> None:
    from a2d_evo.train.foreign_checkpoints import read_sb3_zip

    theirs = seeded(SB3Mlp(4, 2, pi=[8], vf=[8]))
    for text in ("[" * 100_000, "9" * 5000, "\xff"):  # RecursionError, ValueError: tracebacks
        buf = io.BytesIO()
        torch.save(theirs.state_dict(), buf)
        with zipfile.ZipFile(tmp_path / "p.zip", "w") as zf:
            zf.writestr("policy.pth", buf.getvalue())
            zf.writestr("data", text)
        state, data = read_sb3_zip(tmp_path / "p.zip")
        assert data is None and "action_net.weight" in state


def test_lopsided_or_unchained_shapes_are_refused_before_building(tmp_path: Path) -> None:
    """Shapes that chain but would make the shared-trunk form many times the teacher (a
    1-unit actor with a 5,000-action head beside a 1,000-unit critic: its zero-padded policy
    head alone is 5,001 x 1,001: 1,001 x 4 + 5,001 x 1,001 = 5,010,005 weights against its
    own 4 + 5,000 + 4,000 + 1,000), or that do not chain at all, are refused from the shapes,
    before block_diag or the heads are built (the same shapes at 100,000 asked for 6.4 GB
    from a 1.2 MB file). Dense, honest tensors: the file holds every value it claims."""
    run = RunFolder(tmp_path / "run")

    def net(prefix: str, shapes: list[tuple[int, int]]) -> dict[str, torch.Tensor]:
        out = {}
        for i, (n_out, n_in) in enumerate(shapes):
            out[f"{prefix}.{2 * i}.weight"] = torch.zeros(n_out, n_in)
            out[f"{prefix}.{2 * i}.bias"] = torch.zeros(n_out)
        return out

    lopsided = {**net("actor", [(1, 4), (5000, 1)]), **net("critic", [(1000, 4), (1, 1000)])}
    torch.save(lopsided, tmp_path / "lopsided.pt")
    with pytest.raises(FormatError, match=r"hold 5,010,005 weights, over twice its own 10,004 "):
        import_teacher(tmp_path / "lopsided.pt", cartpole_cfg(), run, fmt="cleanrl")
    unchained = {**net("actor", [(64, 4), (2, 100_000)]), **net("critic", [(64, 4), (1, 64)])}
    torch.save(unchained, tmp_path / "unchained.pt")
    with pytest.raises(FormatError, match=r"the actor layer sizes do not chain \(\(64, 4\) ->"):
        import_teacher(tmp_path / "unchained.pt", cartpole_cfg(), run, fmt="cleanrl")
    assert not run.teacher.exists()


def test_a_teacher_of_other_layouts_and_unequal_nets_still_imports(tmp_path: Path) -> None:
    """What the size and density checks must let through: a transposed (non-contiguous but
    stored) weight, and an actor and critic of different widths (SB3 pi [64, 64], vf [256])."""
    from a2d_evo.nets.agent_folder import load_agent

    theirs = seeded(CleanRLClassic(4, 2))
    balancing(theirs.actor[0], theirs.actor[2], theirs.actor[4])
    state = theirs.state_dict()
    state["critic.0.weight"] = state["critic.0.weight"].t().contiguous().t()  # column-major
    assert not state["critic.0.weight"].is_contiguous()
    torch.save(state, tmp_path / "t.pt")
    folder = import_teacher(tmp_path / "t.pt", cartpole_cfg(), RunFolder(tmp_path / "a"))
    assert_same_function(theirs, load_agent(folder), torch.randn(8, 4))
    arch, _ = convert_sb3(seeded(SB3Mlp(4, 2, pi=[64, 64], vf=[256, 256])).state_dict(), None)
    assert arch.widths == (320, 320)
    # unequal nets whose cross blocks exceed twice their own weights, all small: pi [64] and
    # vf [256] with 18 actions (7,360 weights built against 2,688), widths that cross
    for n, pi, vf, widths in ((18, [64], [256], (320,)), (2, [256, 64], [64, 256], (320, 320))):
        arch, _ = convert_sb3(seeded(SB3Mlp(4, n, pi=pi, vf=vf)).state_dict(), None)
        assert arch.widths == widths


def test_the_import_says_what_the_file_cannot_tell_or_tells_against_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A CleanRL state dict records no activation (a ReLU ppo.py imported as tanh without a
    word); an SB3 zip records its gamma, which may not be the config's."""
    theirs = seeded(CleanRLClassic(4, 2))
    balancing(theirs.actor[0], theirs.actor[2], theirs.actor[4])
    torch.save(theirs.state_dict(), tmp_path / "c.pt")
    import_teacher(tmp_path / "c.pt", cartpole_cfg(), RunFolder(tmp_path / "a"))
    err = capsys.readouterr().err
    assert "import-teacher: a CleanRL state dict records no activation: tanh is assumed" in err
    assert "gamma" not in err
    # and what it costs as imported against the file's own nets (hand-counted MACs x 2:
    # 4x128 + 128x128 + 128x(2 + 1) = 17,280; actor 4x64 + 64x64 + 64x2 = 4,480, critic 4,416)
    from a2d_evo.nets.cost import flops
    from a2d_evo.nets.space import MLPArch

    assert flops(MLPArch((128, 128)), (4,), 2) == 34_560
    assert (
        "import-teacher: imported as mlp-128x128 (34,560 FLOPs, the block-diagonal zeros "
        "counted: the teacher's FLOPs in the report are these); the file's actor and critic "
        "cost 17,792, the actor alone 8,960"
    ) in err
    sb3 = seeded(SB3Mlp(4, 2, pi=[64, 64], vf=[64, 64]))
    pi = sb3.mlp_extractor.policy_net
    balancing(pi[0], pi[2], sb3.action_net)
    gamma = cartpole_cfg().ppo.gamma
    for trained, said in ((gamma, False), (0.9, True)):
        src = sb3_zip(tmp_path / f"s{trained}.zip", sb3, {"policy_kwargs": {}, "gamma": trained})
        import_teacher(src, cartpole_cfg(), RunFolder(tmp_path / f"b{trained}"))
        err = capsys.readouterr().err
        assert "records no activation" not in err
        assert (f"trained with gamma 0.9 (its zip's data) and the config's ppo.gamma is {gamma:g}"
                in err) == said, err  # fmt: skip


def test_files_saved_the_usual_wrong_ways_say_what_to_save(tmp_path: Path) -> None:
    """A whole module, a checkpoint dict around the state dict, a DataParallel wrapper's
    names, an SB3 DQN: each refused with what to do (they named what was wrong only)."""
    run = RunFolder(tmp_path / "run")
    theirs = seeded(CleanRLClassic(4, 2))
    state = theirs.state_dict()
    cases = {
        "module.pt": (theirs, r"save the network's state dict instead, which holds tensors "
                      r"only: torch.save\(agent.state_dict\(\), path\)"),
        "checkpoint.pt": (
            {"model": state, "optimizer": torch.optim.Adam(theirs.parameters()).state_dict(),
             "global_step": 5},
            r"the tensors seem to be under 'model' \(a checkpoint's dict\): save that mapping "
            r"itself, torch.save\(checkpoint\['model'\], path\)",
        ),
        "wrapped.pt": ({f"module.{k}": v for k, v in state.items()}, r"every name starts with "
                       r"'module.' .*model.module.state_dict\(\)"),
    }  # fmt: skip
    _each_refused(cases, run)
    with pytest.raises(FormatError) as info:  # no names at all: no 'module.' advice
        convert_cleanrl({})
    assert "module." not in str(info.value)
    sb3 = seeded(SB3Mlp(4, 2, pi=[8], vf=[8])).state_dict()
    for head, shape in (("action_net.weight", (16,)), ("value_net.weight", (1, 8, 1))):
        with pytest.raises(FormatError, match=rf"SB3 {head[:-7]} is not a Linear layer"):
            convert_sb3({**sb3, head: torch.zeros(shape)}, None)  # was an IndexError traceback
    dqn = {"q_net.q_net.0.weight": torch.zeros(8, 4), "q_net.q_net.0.bias": torch.zeros(8)}
    with pytest.raises(FormatError, match=r"has a q_net \(a DQN\): import-teacher takes actor"):
        convert_sb3(dqn, None)
    assert not run.teacher.exists()


def test_an_agents_file_or_numpy_input_says_what_to_pass(tmp_path: Path) -> None:
    import numpy as np

    from a2d_evo.nets.agent import Agent
    from a2d_evo.nets.agent_folder import load_agent, save_agent
    from a2d_evo.nets.space import MLPArch

    folder = save_agent(Agent(MLPArch((8,)), (4,), 2), tmp_path / "agent", onnx=False)
    with pytest.raises(FormatError, match=r"policy\.pt is a file of an agent folder; load_agent "
                       r"takes the folder that holds arch\.json: "):  # fmt: skip
        load_agent(folder / "policy.pt")
    agent = load_agent(folder)
    with pytest.raises(TypeError, match=r"takes a torch tensor .*got ndarray; an agent's act"):
        agent(np.zeros((3, 4), dtype=np.float32))
    assert agent.act(np.zeros(4, dtype=np.float32)) in (0, 1)  # what the message points to


def test_an_imported_atari_cnn_is_said_to_expect_fire_and_refused_on_other_scales(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """CleanRL's ppo_atari presses FIRE on resets, a2d-evo does not: the import says so. An
    env whose observations are not 0-255 frames (another obs_scale) is refused before
    anything is written: the CNN divides by 255 itself, and every later stage would refuse
    the teacher for its scale."""
    import importlib

    from a2d_evo.envs import env_spec

    it = importlib.import_module("a2d_evo.train.import_teacher")  # the module, not the function

    cfg = config_from_dict({"env": {"id": "ALE/Pong-v5"}, "space": {"kind": "cnn"}})
    src = tmp_path / "pong.cleanrl_model"
    torch.save(seeded(CleanRLAtari(6)).state_dict(), src)
    saved: list[Path] = []
    monkeypatch.setattr(it, "save_teacher", lambda agent, c, folder, extra: saved.append(folder))
    it.import_teacher(src, cfg, RunFolder(tmp_path / "run"))
    assert saved and "press FIRE on every reset" in capsys.readouterr().err
    real = env_spec(cfg.env)
    monkeypatch.setattr(it, "env_spec", lambda env: real._replace(obs_scale=1.0))
    other = RunFolder(tmp_path / "other")
    with pytest.raises(FormatError, match="divides its pixels by 255, and ALE/Pong-v5's obs"):
        it.import_teacher(src, cfg, other)
    assert not other.root.exists() or not (other.root / "teacher").exists()
