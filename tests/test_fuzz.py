"""Fuzzing the loaders of untrusted input: they return a value or raise an A2DError, never
anything else, never hang.

Targets: the config loader (dicts, YAML text, raw bytes on disk), the ``--set`` parser, the
encoding decoder, and the agent-folder loader. 1,000 examples each; inputs are kept small so
the file stays well under two minutes on two cores.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from a2d_evo.config import (
    Config,
    SpaceConfig,
    config_from_dict,
    dump_config,
    load_config,
    parse_override,
)
from a2d_evo.errors import A2DError, ArchError, ConfigError
from a2d_evo.formats import FRONT_FORMAT_VERSION
from a2d_evo.nets.space import CNNArch, MLPArch, SearchSpace

FUZZ = settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

REPO = Path(__file__).resolve().parents[1]

# ----------------------------------------------------------------------------- values
# Past int64, past the float range, past Python's 4300-digit str() limit. Built by a map so
# hypothesis never has to repr a 5000-digit constant itself.
huge_ints = st.sampled_from([(2, 63), (-2, 63), (10, 400), (-10, 400), (10, 5000)]).map(
    lambda be: (1 if be[0] > 0 else -1) * abs(be[0]) ** be[1] - (be[0] < 0)
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    huge_ints,
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["nan", "inf", "-1e-4", "1e400", "0x10", "1_000", "true", "None", "ALE/"]),
)
any_value = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), inner, max_size=4),
    ),
    max_leaves=12,
)


def _typed(tp: Any) -> st.SearchStrategy[Any]:
    """Values near what a field takes, so the fuzzing reaches the range checks."""
    origin, args = get_origin(tp), get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _section(tp)
    if type(None) in args:
        inner = next(a for a in args if a is not type(None))
        return st.one_of(st.none(), _typed(inner))
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.one_of(st.integers(-3, 300), huge_ints)
    if tp is float:
        return st.one_of(st.floats(-2.0, 2.0), st.floats(), st.sampled_from(["1e-4", "nan"]))
    if tp is str:
        return st.one_of(
            st.sampled_from(["CartPole-v1", "Acrobot-v1", "ALE/Pong-v5", "Foo-v0"]), st.text()
        )
    if origin is Literal:
        return st.one_of(st.sampled_from(args), st.text(max_size=6))
    if origin is tuple:
        return st.lists(st.one_of(st.integers(-2, 300), scalars), max_size=6)
    return any_value


def _section(cls: Any) -> st.SearchStrategy[dict[Any, Any]]:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    keys = st.one_of(st.sampled_from(names), st.text(max_size=10), st.integers())
    # draw each value by its key's type most of the time, anything at all otherwise
    return st.dictionaries(keys, st.just(None), max_size=6).flatmap(
        lambda d: st.fixed_dictionaries(
            {k: st.one_of(_typed(hints[k]), any_value) if k in hints else any_value for k in d}
        )
    )


config_dicts = st.deferred(lambda: _section(Config))


def _fine_or_a2d(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except A2DError:
        return None
    # any other exception escapes and fails the test with its traceback


# ----------------------------------------------------------------------------- config
@FUZZ
@given(raw=st.one_of(config_dicts, any_value))
def test_config_from_dict_raises_only_config_errors(raw: Any) -> None:
    try:
        cfg = config_from_dict(raw)
    except ConfigError as exc:
        assert str(exc).startswith("<dict>")  # every message names its source
        return
    # what loads can be saved and loads again to the same text (NaN-safe comparison)
    text = dump_config(cfg)
    assert dump_config(config_from_dict(yaml.safe_load(text))) == text


NASTY_DICTS = {
    "huge int in kwargs": lambda: {"env": {"kwargs": {"a": 10**5000}}},
    "huge int key": lambda: {10**5000: 1},
    "huge int as id": lambda: {"env": {"id": 10**5000}},
    "int past float range": lambda: {"ppo": {"lr": 10**400}},
    "seed past int64": lambda: {"seed": 2**63},
    "nan coefficient": lambda: {"ppo": {"ent_coef": float("nan")}},
    "inf learning rate": lambda: {"ppo": {"lr": float("inf")}},
    "object in kwargs": lambda: {"env": {"kwargs": {"a": object()}}},
    "deep nesting": lambda: {"env": {"kwargs": _nested(5000)}},
    "cycle": lambda: {"env": {"kwargs": _cycle()}},
}


def _nested(depth: int) -> dict[str, Any]:
    d: dict[str, Any] = {}
    for _ in range(depth):
        d = {"a": d}
    return d


def _cycle() -> dict[str, Any]:
    d: dict[str, Any] = {}
    d["self"] = [d]
    return d


@pytest.mark.parametrize("name", list(NASTY_DICTS))
def test_nasty_dicts_are_config_errors(name: str) -> None:
    with pytest.raises(ConfigError):
        config_from_dict(NASTY_DICTS[name]())


NASTY_YAML = [
    "seed: 2001-13-45\n",  # a timestamp PyYAML cannot build (ValueError)
    "seed: !!timestamp xyz\n",  # AttributeError inside PyYAML
    "ppo: {lr: !!float abc}\n",
    "seed: !!int abc\n",
    "seed: " + "9" * 5000 + "\n",  # past the 4300-digit limit
    "ppo: {lr: 1" + "0" * 400 + "}\n",  # an int no float holds
    "[" * 2000 + "]" * 2000,  # recursion
    "a: &a [*a]\n",  # self-referencing list
    "env: {kwargs: &a {x: *a}}\n",
    "seed: !!python/object/apply:os.system ['echo pwned']\n",
    "x: !!binary '%%%'\n",
    "\ufeffseed: 1\n",
    "seed: .nan\nppo: {lr: .inf}\n",
]
# billion laughs: 10^8 strings once the aliases are expanded
BOMB = 'a: &a ["x","x","x","x","x","x","x","x","x","x"]\n' + "".join(
    f"b{i}: &b{i} [" + ",".join([f"*{'a' if i == 1 else f'b{i - 1}'}"] * 10) + "]\n"
    for i in range(1, 8)
)
NASTY_YAML.append("env:\n  kwargs:\n    " + BOMB.replace("\n", "\n    "))


@pytest.mark.parametrize("text", NASTY_YAML, ids=range(len(NASTY_YAML)))
def test_nasty_yaml_is_a_config_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path)
    except ConfigError as exc:
        assert str(path) in str(exc) and len(str(exc)) < 2000
    else:  # only the BOM and the harmless binary blob may load
        assert text.startswith("\ufeff") or "binary" in text


def test_merge_keys_that_double_each_line_are_refused_as_they_expand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PyYAML before its merge keys were made unique copied every merged pair: ``a{i}: {<<:
    [*a{i-1}, *a{i-1}]}`` doubled each line (30 lines: 2**30 pairs, memory and a hang) before
    the size check on the built data could run; the loader holds each mapping to MAX_NODES as
    its merge keys expand (found by review). The old rule, as PyYAML 5 wrote it, patched in."""
    from yaml.nodes import MappingNode, SequenceNode

    def copying_flatten(self: Any, node: MappingNode) -> None:
        merge: list[Any] = []
        index = 0
        while index < len(node.value):
            key_node, value_node = node.value[index]
            if key_node.tag != "tag:yaml.org,2002:merge":
                index += 1
                continue
            del node.value[index]
            subnodes = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
            for sub in subnodes:
                self.flatten_mapping(sub)
                merge.extend(sub.value)
        if merge:
            node.value = merge + node.value
        built.append(len(node.value))

    built: list[int] = []  # the pairs each flattening built
    monkeypatch.setattr(yaml.SafeLoader, "flatten_mapping", copying_flatten)
    lines = "".join(f"  a{i}: &a{i} {{<<: [*a{i - 1}, *a{i - 1}]}}\n" for i in range(1, 21))
    path = tmp_path / "merge.yaml"
    path.write_text("env:\n kwargs:\n  a0: &a0 {x: 1}\n" + lines)
    with pytest.raises(ConfigError, match=r"more than 100000 entries once its merge keys"):
        load_config(path)
    # one merge of many aliases of one big mapping: k copies, counted before they are made
    big = "{" + ", ".join(f"k{i}: {i}" for i in range(30_000)) + "}"
    path.write_text(f"env:\n kwargs:\n  a: &a {big}\n  b: {{<<: [{', '.join(['*a'] * 8)}]}}\n")
    built.clear()
    with pytest.raises(ConfigError, match=r"more than 100000 entries once its merge keys"):
        load_config(path)
    assert max(built) == 30_000  # the 240,000 copies were never made
    # the same merged once: a config as before
    path.write_text("env:\n id: CartPole-v1\n kwargs:\n  a: &a {x: 1}\n  b: {<<: *a, y: 2}\n")
    assert load_config(path).env.kwargs == {"a": {"x": 1}, "b": {"x": 1, "y": 2}}


@pytest.mark.parametrize(
    "value",
    ["&a {x: *a}", "{" + BOMB.replace("\n", ", ").rstrip(", ") + "}", "{a: " * 40 + "1" + "}" * 40],
    ids=["self", "laughs", "deep"],
)
def test_a_set_mapping_is_held_to_a_files_limits(value: str) -> None:
    # they built a config (a file with the same value is refused), whose dump then raised
    # RecursionError or expanded the aliases into gigabytes
    with pytest.raises(ConfigError, match=r"^--set 'env\.kwargs=.*': env\.kwargs: the config "):
        config_from_dict({}, [f"env.kwargs={value}"])


def _mutate(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    out = bytearray(data)
    for pos, cut, insert in edits:
        pos %= len(out) + 1
        out[pos : pos + cut] = insert
    return bytes(out)


def _yaml_of(data: Any) -> bytes:
    try:
        return yaml.safe_dump(data, allow_unicode=True).encode()
    except ValueError:  # a 5000-digit int: YAML cannot write it either
        return b"seed: 1"


SHIPPED = [(REPO / "configs" / f"{n}.yaml").read_bytes() for n in ("cartpole", "pong")]
yaml_bytes = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.builds(
        _mutate,
        st.sampled_from(SHIPPED),
        st.lists(
            st.tuples(
                st.integers(0, 2000),
                st.integers(0, 8),
                st.one_of(
                    st.binary(max_size=4),
                    st.sampled_from([b":", b"\n", b"  ", b"[", b"{", b"-", b"&a", b"*a", b"!!"]),
                ),
            ),
            min_size=1,
            max_size=4,
        ),
    ),
    config_dicts.map(_yaml_of),
)


@FUZZ
@given(data=yaml_bytes)
def test_load_config_on_random_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(data)
    cfg = _fine_or_a2d(load_config, path)
    assert cfg is None or isinstance(cfg, Config)


# ----------------------------------------------------------------------------- --set
def _leaf_keys(cls: Any, prefix: str = "") -> list[str]:
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out += _leaf_keys(tp, f"{prefix}{f.name}.")
        else:
            out.append(f"{prefix}{f.name}")
    return out


LEAF_KEYS = _leaf_keys(Config)
set_values = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "nan",
            "inf",
            "-inf",
            "1e400",
            "9" * 5000,
            "1" * 20,
            "-1",
            "0",
            "2.5",
            "[1, 2, x]",
            "[[1]]",
            "{a: &a [*a]}",
            "{kind: mlp, widths: [8]}",
            "[" * 3000,
            "__import__('os').system('true')",
            "none",
            "true",
            "",
        ]
    ),
    st.integers().map(str),
    st.floats().map(repr),
)
set_keys = st.one_of(
    st.sampled_from(LEAF_KEYS),
    st.sampled_from(LEAF_KEYS).map(lambda k: k + ".x"),
    st.sampled_from(["ppo", "env", "a..b", ".x", "x.", " ", "ppo.lr ", "ñ.ü"]),
    st.text(max_size=20),
)
overrides = st.one_of(
    st.text(max_size=40), st.builds(lambda k, v: f"{k}={v}", set_keys, set_values)
)


@FUZZ
@given(item=overrides)
def test_parse_override_raises_only_config_errors(item: str) -> None:
    parsed = _fine_or_a2d(parse_override, item)
    if parsed is not None:
        parts, _value = parsed
        assert parts and all(p.isidentifier() for p in parts)


@FUZZ
@given(items=st.lists(overrides, min_size=1, max_size=3))
def test_set_overrides_raise_only_config_errors(items: list[str]) -> None:
    try:
        cfg = config_from_dict({}, items)
    except ConfigError:
        return
    text = dump_config(cfg)
    assert dump_config(config_from_dict(yaml.safe_load(text))) == text


# ----------------------------------------------------------------------------- encodings
SPACES = {
    "mlp": SearchSpace(SpaceConfig()),
    "cnn": SearchSpace(SpaceConfig(kind="cnn")),
    "tiny": SearchSpace(SpaceConfig(depths=(2,), widths=(3,))),
}
genes = st.one_of(
    st.integers(-3, 14),
    st.integers(),
    huge_ints,
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-1, 12).map(round).map(float),
    st.text(max_size=3),
    st.none(),
    st.booleans(),
    st.lists(st.integers(0, 3), max_size=2),
)


def _vectors(n: int) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(genes, min_size=max(0, n - 1), max_size=n + 1),
        st.lists(st.integers(-1, 12), min_size=n, max_size=n),
        st.lists(st.integers(-1, 12), min_size=n, max_size=n).map(np.array),
        st.lists(st.integers(0, 255), min_size=n, max_size=n).map(
            lambda v: np.array(v, dtype=np.uint8)
        ),
        st.lists(st.lists(st.integers(-1, 12), min_size=n, max_size=n), max_size=3),
        st.lists(st.lists(genes, max_size=n + 1), max_size=3),
        any_value,
    )


@FUZZ
@given(data=st.data())
@pytest.mark.parametrize("kind", list(SPACES))
def test_decode_and_canonical_raise_only_arch_errors(kind: str, data: st.DataObject) -> None:
    space = SPACES[kind]
    x = data.draw(_vectors(space.n_var))
    try:
        arch = space.decode(x)
    except ArchError:
        arch = None
    else:
        assert isinstance(arch, MLPArch | CNNArch) and space.contains(arch)
    try:
        canon = space.canonical(x)
    except ArchError:
        assert arch is None or np.ndim(x) == 2
        return
    assert canon.dtype == np.int64 and np.array_equal(space.canonical(canon), canon)
    if arch is not None:
        np.testing.assert_array_equal(space.encode(arch), canon)


# ----------------------------------------------------------------------------- agent folders
def _agent_files() -> dict[str, bytes]:
    """The three files of a small valid agent folder, as bytes."""
    import tempfile

    from a2d_evo.nets.agent import Agent
    from a2d_evo.nets.agent_folder import make_metrics, save_agent

    agent = Agent(MLPArch((8, 4)), (4,), 2, {"id": "CartPole-v1"})
    metrics = make_metrics(
        agent,
        env_id="CartPole-v1",
        returns=[10.0, 12.0],
        eval_mode="greedy",
        seeds=[1, 2],
        r_random=20.0,
        r_teacher=500.0,
        latency=0.01,
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_agent(agent, Path(tmp) / "agent", metrics=metrics, onnx=False)
        return {n: (folder / n).read_bytes() for n in ("arch.json", "policy.pt", "metrics.json")}


def _torch_bytes(obj: Any) -> bytes:
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _edit_json(raw: bytes, path: list[str], value: Any) -> bytes:
    """``raw`` JSON with the value at ``path`` (keys, created if missing) replaced."""
    data = json.loads(raw)
    node = data
    for key in path[:-1]:
        if not isinstance(node, dict):
            break
        node = node.setdefault(key, {})
    if isinstance(node, dict):
        node[path[-1]] = value
    try:
        return json.dumps(data, allow_nan=True).encode()
    except ValueError:  # ints past 4300 digits
        return raw


def _edit_state(raw: bytes, name: str, how: str, size: int) -> bytes:
    import io

    import torch

    state = torch.load(io.BytesIO(raw), weights_only=True)
    key = sorted(state)[size % len(state)] if name == "*" else name
    t = state.get(key, torch.zeros(1))
    state[key] = {
        "drop": None,
        "reshape": torch.zeros(size % 7, 3),
        "double": t.double(),
        "int": t.long(),
        "nan": torch.full_like(t, float("nan")),
        "inf": torch.full_like(t, float("-inf")),
        "scalar": torch.tensor(float(size)),
        "list": [1, 2, 3],
        "string": "w",
    }[how]
    if state[key] is None:
        del state[key]
    return _torch_bytes(state)


def _json_bytes(value: Any) -> bytes:
    try:
        return json.dumps(value, allow_nan=True).encode()
    except ValueError:  # ints past 4300 digits
        return b"[]"


def _cut(data: bytes, at: int) -> bytes:
    return data[: at % (len(data) + 1)]


def _flip(data: bytes, at: int, byte: int) -> bytes:
    if not data:
        return data
    out = bytearray(data)
    out[at % len(out)] ^= byte or 1
    return bytes(out)


ARCH_PATHS = [
    ["format_version"],
    ["arch"],
    ["arch", "kind"],
    ["arch", "widths"],
    ["arch", "conv"],
    ["arch", "extra"],
    ["arch", "fc"],
    ["obs_shape"],
    ["n_actions"],
    ["env"],
    ["env", "id"],
]
json_values = st.one_of(
    any_value.filter(lambda v: not isinstance(v, float) or v == v),
    st.sampled_from(
        [
            [4],
            [4, 4, 4],
            [0],
            [-1],
            [2**31, 2**31],
            [2**40],
            [4.0],
            ["4"],
            [],
            {"kind": "cnn", "conv": [8, 16, 16], "extra": [[16, 3]], "fc": 64},
            {"kind": "cnn", "conv": [8, 16, 16], "extra": [[16, 4]], "fc": 64},
            {"kind": "mlp", "widths": [8, 4, 4]},
            {"kind": "mlp", "widths": [2**40]},
            [1, 84, 84],
            [4, 84, 84],
            [4, 2, 2],
            2,
            0,
            True,
            2**63,
        ]
    ),
)


@st.composite
def agent_folders(draw: st.DrawFn, files: dict[str, bytes]) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = dict(files)
    arch = draw(st.sampled_from(["keep", "edit", "edit2", "bytes", "json", "cut", "flip", "gone"]))
    if arch in ("edit", "edit2"):
        for _ in range(1 if arch == "edit" else 2):
            out["arch.json"] = _edit_json(
                out["arch.json"] or b"{}", draw(st.sampled_from(ARCH_PATHS)), draw(json_values)
            )
    elif arch == "bytes":
        out["arch.json"] = draw(st.binary(max_size=64))
    elif arch == "json":
        out["arch.json"] = _json_bytes(draw(json_values))
    elif arch == "cut":
        out["arch.json"] = _cut(files["arch.json"], draw(st.integers(0, 400)))
    elif arch == "flip":
        out["arch.json"] = _flip(
            files["arch.json"], draw(st.integers(0, 400)), draw(st.integers(0, 255))
        )
    elif arch == "gone":
        out["arch.json"] = None
    policy = draw(st.sampled_from(["keep", "edit", "bytes", "plain", "cut", "flip", "gone"]))
    if policy == "edit":
        out["policy.pt"] = _edit_state(
            files["policy.pt"],
            draw(st.sampled_from(["*", "layers.0.weight", "value.bias", "layers.7.weight"])),
            draw(
                st.sampled_from(
                    ["drop", "reshape", "double", "int", "nan", "inf", "scalar", "list", "string"]
                )
            ),
            draw(st.integers(0, 50)),
        )
    elif policy == "bytes":
        out["policy.pt"] = draw(st.binary(max_size=64))
    elif policy == "plain":
        out["policy.pt"] = _torch_bytes(draw(any_value.filter(lambda v: v == v)))
    elif policy == "cut":
        out["policy.pt"] = _cut(files["policy.pt"], draw(st.integers(0, 5000)))
    elif policy == "flip":
        out["policy.pt"] = _flip(
            files["policy.pt"], draw(st.integers(0, 5000)), draw(st.integers(0, 255))
        )
    elif policy == "gone":
        out["policy.pt"] = None
    metrics = draw(st.sampled_from(["keep", "bytes", "json", "gone"]))
    if metrics == "bytes":
        out["metrics.json"] = draw(st.binary(max_size=64))
    elif metrics == "json":
        out["metrics.json"] = _json_bytes(draw(json_values))
    elif metrics == "gone":
        out["metrics.json"] = None
    return out


AGENT_FILES = _agent_files()


@FUZZ
@given(files=agent_folders(AGENT_FILES))
def test_load_agent_raises_only_format_errors(tmp_path: Path, files: dict[str, bytes]) -> None:
    import shutil

    import torch

    from a2d_evo.errors import FormatError
    from a2d_evo.nets.agent import Agent
    from a2d_evo.nets.agent_folder import load_agent

    folder = tmp_path / "agent"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    for name, data in files.items():
        if data is not None:
            (folder / name).write_bytes(data)
    try:
        agent = load_agent(folder)
    except FormatError:
        return
    # what loads is a working agent with finite weights of the declared shapes
    assert isinstance(agent, Agent)
    assert all(bool(torch.isfinite(p).all()) for p in agent.parameters())
    obs = torch.zeros((2, *agent.obs_shape))
    out = agent(obs)
    assert out.logits.shape == (2, agent.n_actions) and out.value.shape == (2,)


# ----------------------------------------------------------------------------- front files
def _entry(i: int) -> dict[str, Any]:
    return {
        "format_version": 1,
        "env_id": "CartPole-v1",
        "return_mean": 100.0 * (i + 1),
        "return_std": 3.0,
        "episodes": 2,
        "eval_mode": "greedy",
        "seeds": [7, 8],
        "episode_returns": [100.0 * (i + 1) - 3.0, 100.0 * (i + 1) + 3.0],
        "flops": 100 * 4**i,
        "params": 50 * 4**i,
        "latency_ms": 0.01,
        "normalised_return": 0.3 * (i + 1),
        "arch": {"kind": "mlp", "widths": [4 * 2**i]},
        "encoding": [0, i, 0],
        "search_return_mean": 90.0,
        "search_normalised_return": 0.2,
    }


FRONT = {
    "format_version": FRONT_FORMAT_VERSION,
    "env_id": "CartPole-v1",
    "reference_point": [0.0, 1.1],
    "normalisation": {"r_random": 20.0, "r_teacher": 500.0, "teacher_flops": 9000},
    "front": [_entry(i) for i in range(3)],
}
FRONT_PATHS = [
    [key] for key in ("format_version", "front", "normalisation", "reference_point", "env_id")
] + [["front", str(i), key] for i in range(3) for key in _entry(0)]


def _edited_front(edits: list[tuple[list[str], Any]]) -> bytes:
    data = json.loads(json.dumps(FRONT))
    for path, value in edits:
        node = data
        try:
            for key in path[:-1]:
                node = node[int(key)] if isinstance(node, list) else node[key]
            node[int(path[-1]) if isinstance(node, list) else path[-1]] = value
        except (KeyError, IndexError, TypeError, ValueError):
            pass  # an earlier edit replaced a parent
    return _json_bytes(data)


front_files = st.one_of(
    st.lists(st.tuples(st.sampled_from(FRONT_PATHS), json_values), min_size=1, max_size=3).map(
        _edited_front
    ),
    st.builds(_cut, st.just(_json_bytes(FRONT)), st.integers(0, 3000)),
    st.builds(_flip, st.just(_json_bytes(FRONT)), st.integers(0, 3000), st.integers(0, 255)),
)


@FUZZ
@given(
    front=front_files,
    metrics=st.one_of(st.none(), json_values.map(_json_bytes), st.just(_json_bytes(_entry(1)))),
    pick=st.sampled_from(["knee", "all", "0", "2", "9", "-1", "x"]),
    max_flops=st.one_of(st.none(), st.floats(allow_nan=True)),
    min_return=st.one_of(st.none(), st.floats(allow_nan=True)),
)
def test_front_and_metrics_readers_raise_only_a2d_errors(
    tmp_path: Path,
    front: bytes,
    metrics: bytes | None,
    pick: str,
    max_flops: float | None,
    min_return: float | None,
) -> None:
    """A shared run folder's front.json and agents' metrics.json, as export and report read them."""
    import shutil

    from a2d_evo.report.front_file import load_front
    from a2d_evo.report.pick import select
    from a2d_evo.report.run_data import load_run
    from a2d_evo.runs.folder import RunFolder

    shutil.rmtree(tmp_path / "run", ignore_errors=True)
    run = RunFolder(tmp_path / "run")
    run.search.mkdir(parents=True)
    (run.search / "front.json").write_bytes(front)
    if metrics is not None:
        (run.agents / "knee").mkdir(parents=True)
        (run.agents / "knee" / "metrics.json").write_bytes(metrics)
    data = _fine_or_a2d(load_front, run)
    if data is not None:
        _fine_or_a2d(select, data["front"], pick, max_flops, min_return)
    _fine_or_a2d(load_run, Config(), run)
