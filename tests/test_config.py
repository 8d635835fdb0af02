"""Config loading: types, ranges, unknown keys, --set conversion, round trips."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from a2d_evo.config import (
    Config,
    config_from_dict,
    config_to_dict,
    dump_config,
    load_config,
    parse_override,
)
from a2d_evo.errors import ConfigError

SHIPPED = ["cartpole", "acrobot", "pong", "breakout"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_load_and_round_trip(configs_dir: Path, name: str) -> None:
    cfg = load_config(configs_dir / f"{name}.yaml")
    again = config_from_dict(yaml.safe_load(dump_config(cfg)))
    assert again == cfg
    assert (cfg.space.kind == "cnn") == cfg.env.id.startswith("ALE/")


def test_defaults_match_design() -> None:
    cfg = Config()
    assert cfg.ppo.lr == 2.5e-4 and cfg.ppo.num_envs == 8 and cfg.ppo.num_steps == 128
    assert cfg.ppo.clip_coef == 0.1 and cfg.ppo.ent_coef == 0.01
    assert cfg.search.pop == 64 and cfg.search.final_episodes == 30
    assert cfg.env.sticky_actions == 0.25 and cfg.env.noop_max == 30
    assert len(cfg.space.widths) == 12 and cfg.space.depths == (1, 2, 3, 4)


def test_set_converts_by_declared_type(configs_dir: Path) -> None:
    cfg = load_config(
        configs_dir / "cartpole.yaml",
        [
            "ppo.lr=1e-4",
            "ppo.num_envs=4",
            "ppo.anneal_lr=false",
            "search.max_flops=2e5",
            "space.widths=[8, 16]",
            "distill.anneal=linear",
            "ppo.target_kl=none",
            "teacher.arch={kind: mlp, widths: [8]}",
        ],
    )
    assert cfg.ppo.lr == 1e-4 and isinstance(cfg.ppo.lr, float)
    assert cfg.ppo.num_envs == 4 and isinstance(cfg.ppo.num_envs, int)
    assert cfg.ppo.anneal_lr is False
    assert cfg.search.max_flops == 2e5
    assert cfg.space.widths == (8, 16)
    assert cfg.distill.anneal == "linear"
    assert cfg.ppo.target_kl is None
    assert cfg.teacher.arch == {"kind": "mlp", "widths": [8]}


def test_set_never_evaluates(configs_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    with pytest.raises(ConfigError, match="expected a float"):
        load_config(configs_dir / "cartpole.yaml", [f"ppo.lr={payload}"])
    cfg = load_config(configs_dir / "cartpole.yaml", [f"env.id={payload}"])
    assert cfg.env.id == payload  # a string stays a string
    assert not marker.exists()


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("ppo.lr=-1", r"ppo\.lr: must be > 0"),
        ("ppo.num_envs=0", r"ppo\.num_envs: must be >= 1"),
        ("search.pop=3", r"search\.pop: must be >= 4"),
        ("ppo.lrr=1", r"unknown key 'ppo\.lrr' \(did you mean 'ppo\.lr'\?\)"),
        ("ppo.num_envs=2.5", r"expected an int"),
        ("ppo.anneal_lr=maybe", r"expected a bool"),
        ("distill.anneal=cosine", r"expected one of"),
        ("env.sticky_actions=1.5", r"env\.sticky_actions: must be in"),
        ("nokey", r"expected key\.path=value"),
        ("ppo=1", r"cannot be set|not a section|expected"),
        # a key inside a mapping field: the message gives the whole-mapping form to pass
        (
            "env.kwargs.n_bits=3",
            r"'env\.kwargs' is a mapping, set whole .*--set 'env\.kwargs=\{n_bits: 3\}'",
        ),
        ("env.id=ALE/Pong-v5", r"space\.kind: 'ALE/Pong-v5' needs the 'cnn' space"),
        ("distill.vf_coef=-0.1", r"distill\.vf_coef"),
        ("distill.vf_coef=much", r"distill\.vf_coef.*expected"),
        ("supernet.vf_coef=0.1", r"'supernet\.vf_coef': it moved to distill\.vf_coef"),
        ("finetune.steps=-1", r"finetune\.steps"),
        ("finetune.validation_episodes=-1", r"finetune\.validation_episodes"),
        ("finetune.lr=0", r"finetune\.lr: must be > 0"),
        ("finetune.lr=-1e-4", r"finetune\.lr: must be > 0"),
        ("supernet.sampling=flops", r"supernet\.sampling.*expected one of"),
        ("search.mutation=gauss", r"search\.mutation.*expected one of"),
        ("search.mutation_prob=0", r"search\.mutation_prob: must be > 0"),
        ("search.mutation_prob=1.5", r"search\.mutation_prob: must be in"),
        ("search.reevaluate_ranks=0", r"search\.reevaluate_ranks: must be >= 1"),
        ("search.init=flops", r"search\.init.*expected one of"),
        ("search.candidates=0", r"search\.candidates: must be >= 1"),
        ("search.anchors=0", r"search\.anchors: must be >= 1"),
        ("search.anchors=17", r"search\.anchors: must be <= 16"),
        # 1e-40 passed (> 0) and made the distillation loss NaN at the first update
        ("distill.temperature=1e-40", r"distill\.temperature: must be in \[0\.001, 1000\.0\]"),
        ("distill.temperature=0", r"distill\.temperature: must be in"),
        ("distill.temperature=1e4", r"distill\.temperature: must be in"),
    ],
)
def test_bad_overrides_name_the_key(configs_dir: Path, override: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(configs_dir / "cartpole.yaml", [override])


def test_atari_env_kwargs_are_refused_before_any_folder_is_written(
    configs_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError, match=r"env\.kwargs: .* not supported for Atari ids"):
        load_config(configs_dir / "pong.yaml", ["env.kwargs={game: breakout}"])
    from a2d_evo.cli import EXIT_USER_ERROR, main

    out = tmp_path / "run"
    argv = ["train-teacher", "--config", str(configs_dir / "pong.yaml"), "--out", str(out),
            "--set", "env.kwargs={game: breakout}"]  # fmt: skip
    assert main(argv) == EXIT_USER_ERROR
    assert "env.kwargs" in capsys.readouterr().err
    assert not out.exists()  # so the corrected command meets no conflicting config.yaml


def test_a_bad_value_set_by_an_override_names_the_override_not_the_file(
    configs_dir: Path, tmp_path: Path
) -> None:
    path = configs_dir / "cartpole.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path, ["ppo.lr=1e-3", "ppo.num_envs=0"])
    assert str(info.value) == (
        f"{path} with override 'ppo.num_envs=0': ppo.num_envs: must be >= 1, got 0"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(path.read_text().replace("num_envs: 8", "num_envs: 0"))
    assert "num_envs: 0" in bad.read_text()
    with pytest.raises(ConfigError) as info:  # the file's own value: the file is named
        load_config(bad, ["ppo.lr=1e-3"])
    assert str(info.value).startswith(f"{bad}: ppo.num_envs: must be >= 1")
    # a check across keys reports space.kind, but the override set env.id: it is named
    with pytest.raises(ConfigError) as info:
        load_config(path, ["env.id=ALE/Pong-v5"])
    assert str(info.value).startswith(f"{path} with override 'env.id=ALE/Pong-v5': space.kind")
    # a check across keys that quotes no value but names the keys: the overrides of those
    # keys are named (the file was blamed for ppo.num_envs=1 with ppo.num_steps=2)
    acrobot = configs_dir / "acrobot.yaml"  # ppo.num_minibatches 4 in the file
    with pytest.raises(ConfigError) as info:
        load_config(acrobot, ["ppo.lr=1e-3", "ppo.num_envs=1", "ppo.num_steps=2"])
    assert str(info.value).startswith(
        f"{acrobot} with overrides 'ppo.num_envs=1', 'ppo.num_steps=2': ppo.num_minibatches"
    )
    # a null mapping is said as such (it read "the file is empty")
    with pytest.raises(ConfigError, match=r"env\.kwargs: expected a mapping \(\{\} for none\)"):
        load_config(path, ["env.kwargs=null"])


def test_delivery_candidates_default_to_pop_and_are_bounded_by_the_slots() -> None:
    assert config_from_dict({"search": {"pop": 16}}).search.delivery_candidates == 16
    assert config_from_dict({"search": {"candidates": 40}}).search.delivery_candidates == 40
    with pytest.raises(ConfigError, match=r"search\.candidates \* search\.episodes: at most"):
        config_from_dict({"search": {"candidates": 4096, "episodes": 20}})


def test_file_errors_name_file_and_key(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError, match="not found"):
        load_config(missing)
    with pytest.raises(ConfigError, match="a folder, not a config file"):
        load_config(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("ppo: [1, 2\n")
    with pytest.raises(ConfigError, match="malformed YAML at line 2, column 1: while parsing"):
        load_config(bad)
    bad.write_text("ppo:\n  lr: 1\n   num_envs: 3\n")  # one line, where an editor counts
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    assert str(info.value) == (
        f"{bad}: malformed YAML at line 3, column 12: mapping values are not allowed here"
    )
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("ppo:\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"unknown\.yaml: unknown key 'ppo\.learning_rate'"):
        load_config(unknown)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("ppo:\n  num_envs: eight\n")
    with pytest.raises(ConfigError, match=r"wrong\.yaml: ppo\.num_envs: expected an int, got str"):
        load_config(wrong)
    top = tmp_path / "top.yaml"
    top.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(top)


def test_minibatches_must_divide_batch() -> None:
    with pytest.raises(ConfigError, match="num_minibatches"):
        config_from_dict({"ppo": {"num_envs": 3, "num_steps": 5, "num_minibatches": 2}})


def test_space_lists_validated() -> None:
    with pytest.raises(ConfigError, match="strictly increasing"):
        config_from_dict({"space": {"widths": [8, 4]}})
    with pytest.raises(ConfigError, match="odd"):
        config_from_dict(
            {
                "env": {"id": "ALE/Pong-v5"},
                "space": {
                    "kind": "cnn",
                    "conv": [{"widths": [8], "kernels": [2, 4], "padding": "same"}],
                },
            }
        )


def test_parse_override_splits_paths() -> None:
    assert parse_override("a.b.c= 3 ") == (["a", "b", "c"], "3")
    with pytest.raises(ConfigError):
        parse_override("a..b=1")


def test_yaml_float_strings_accepted() -> None:
    # YAML 1.1 reads "1e-4" (no dot) as a string; the float field still takes it.
    cfg = config_from_dict(yaml.safe_load("ppo:\n  lr: 1e-4\n"))
    assert cfg.ppo.lr == 1e-4
    assert config_to_dict(cfg)["ppo"]["lr"] == 1e-4


def test_a_config_file_reads_numbers_as_set_does(tmp_path: Path) -> None:
    """YAML 1.2's numbers, as ``--set`` reads them: 1e7 is a number for an int field (YAML
    1.1: a string, refused) and 010 is ten (YAML 1.1: eight); 1_000 and 0x10 still read."""
    text = "seed: 010\nteacher:\n  total_steps: 1e7\nsupernet:\n  total_steps: 1_000_000\n"
    text += "ppo:\n  lr: 3e-4\nsearch:\n  pop: 0x10\n"
    (tmp_path / "c.yaml").write_text(text)
    from_file = load_config(tmp_path / "c.yaml")
    sets = ["seed=010", "teacher.total_steps=1e7", "supernet.total_steps=1000000",
            "ppo.lr=3e-4", "search.pop=16"]  # fmt: skip
    assert from_file == config_from_dict({}, sets)
    assert (from_file.seed, from_file.teacher.total_steps, from_file.search.pop) == (
        10, 10_000_000, 16
    )  # fmt: skip
    # and a run folder's config.yaml keeps strings that read as numbers strings, under these
    # rules and PyYAML's own YAML 1.1 ones alike
    strings = {"a": "1e7", "b": "010", "c": ".5", "d": "0b1", "e": "1:30", "f": "0o17"}
    texts = config_from_dict({"env": {"kwargs": strings}})
    (tmp_path / "d.yaml").write_text(dump_config(texts))
    assert load_config(tmp_path / "d.yaml") == texts
    assert yaml.safe_load(dump_config(texts))["env"]["kwargs"] == strings


def test_config_format_version() -> None:
    assert config_from_dict({}).format_version == 1
    assert "format_version: 1" in dump_config(Config())
    with pytest.raises(ConfigError, match="upgrade a2d-evo"):
        config_from_dict({"format_version": 2})
    with pytest.raises(ConfigError, match="update the config"):
        config_from_dict({"format_version": 0})


def test_teacher_arch_bounds_cover_the_declared_conv_format() -> None:
    """``teacher.arch.convs`` (the declared-space format) is bounded like the older keys: a
    conv of 20,000 channels or a kernel of 100 was taken, caught only by the memory estimate."""

    def cnn(**layer: int) -> dict[str, object]:
        conv = {"width": 16, "kernel": 3, "stride": 1, **layer}
        return {"teacher": {"arch": {"kind": "cnn", "convs": [conv], "fc": 32}}}

    with pytest.raises(ConfigError, match=r"teacher\.arch\.convs\[0\]\.width: at most"):
        config_from_dict(cnn(width=20000))
    with pytest.raises(ConfigError, match=r"teacher\.arch\.convs\[0\]\.kernel: at most 15"):
        config_from_dict(cnn(kernel=100))
    with pytest.raises(ConfigError, match=r"teacher\.arch\.convs\[0\]\.stride: at most 8"):
        config_from_dict(cnn(stride=9))
    assert config_from_dict(cnn())


@pytest.mark.parametrize(
    ("override", "value"),
    [
        ("env.kwargs.n_bits=3", {"n_bits": 3}),
        ("env.kwargs.desc=a,b", {"desc": "a,b"}),  # YAML flow would split it unquoted
        ("env.kwargs.title=it's", {"title": "it's"}),  # a shell quote inside
        ("env.kwargs.a.b=x", {"a": {"b": "x"}}),
        ("env.kwargs.k=017", {"k": 17}),  # the config's YAML 1.2 numbers, not PyYAML's octal
        ("env.kwargs.k=1:30", {"k": "1:30"}),  # a string there, not YAML 1.1's sexagesimal 90
    ],
)
def test_a_key_inside_a_mapping_names_the_whole_mapping_form_that_runs(
    configs_dir: Path, override: str, value: dict
) -> None:
    """The --set the message gives, taken by the shell and loaded, sets what was asked."""
    import shlex

    with pytest.raises(ConfigError, match="is a mapping, set whole") as info:
        load_config(configs_dir / "cartpole.yaml", [override])
    given = shlex.split(str(info.value).split(" --set ", 1)[1])
    assert len(given) == 1
    assert load_config(configs_dir / "cartpole.yaml", given).env.kwargs == value
    with pytest.raises(ConfigError, match=r"'teacher\.arch' is a mapping"):  # may be None too
        load_config(configs_dir / "cartpole.yaml", ["teacher.arch.kind=mlp"])


def test_the_whole_mapping_form_keeps_the_config_s_other_keys() -> None:
    """The suggested --set replaces the config's mapping, so it carries the keys it had."""
    import shlex

    data = {"env": {"id": "LunarLander-v3", "kwargs": {"gravity": -9.5, "wind": {"on": True}}}}
    with pytest.raises(ConfigError, match="is a mapping, set whole") as info:
        config_from_dict(data, ["env.kwargs.wind.power=15"])
    given = shlex.split(str(info.value).split(" --set ", 1)[1])
    assert config_from_dict(data, given).env.kwargs == {
        "gravity": -9.5,
        "wind": {"on": True, "power": 15},
    }


@pytest.mark.parametrize(
    ("key", "value"),
    [("env.id", "017"), ("env.id", "yes"), ("distill.anneal", "linear"), ("finetune.lr", 1e-05),
     ("ppo.target_kl", None), ("ppo.clip_vloss", False), ("search.pop", 64),
     ("distill.alpha", 0.1 + 0.2), ("env.kwargs", {"gravity": -9.5, "mode": "017"})],
)  # fmt: skip
def test_set_flag_reads_back_as_its_value(key: str, value: object) -> None:
    import shlex

    from a2d_evo.config import set_flag
    from a2d_evo.config.compare import setting

    flag, item = shlex.split(set_flag(key, value))
    cfg = config_from_dict({"env": {"id": "LunarLander-v3"}}, [item])
    assert flag == "--set" and setting(cfg, key) == value and type(setting(cfg, key)) is type(value)


@pytest.mark.parametrize("value", [".nan", ".inf", "[1, -.inf]", "{deep: .nan}"])
def test_a_non_finite_number_in_env_kwargs_is_refused(value: str) -> None:
    # a NaN is not equal to itself: the run's own config then conflicted with itself on
    # env.kwargs, and every later command on it was refused as changing the env
    text = f"env: {{id: LunarLander-v3, kwargs: {{wind_power: {value}}}}}"
    with pytest.raises(ConfigError, match=r"f: env\.kwargs: holds a non-finite number"):
        config_from_dict(_yaml12(text), source="f")


@pytest.mark.parametrize("value", ["2020-01-01", "!!set {a: null}", "!!binary aGk="])
def test_a_value_json_cannot_store_in_env_kwargs_is_refused(value: str) -> None:
    # YAML's dates, sets and bytes passed, and json.dumps raised a TypeError when the recipe
    # digest or arch.json was written: after the teacher trained
    text = f"env: {{id: LunarLander-v3, kwargs: {{start: {value}}}}}"
    with pytest.raises(ConfigError, match=r"f: env\.kwargs: holds a value JSON cannot store"):
        config_from_dict(_yaml12(text), source="f")
    assert config_from_dict(_yaml12("env: {id: LunarLander-v3, kwargs: {start: '2020-01-01'}}"))


@pytest.mark.parametrize(
    ("section", "key", "value", "match"),
    [("ppo", "lr", 1e300, r"ppo\.lr: must be in \[0\.0, 10\.0\]"),
     ("finetune", "lr", 11.0, r"finetune\.lr: must be in \[0\.0, 10\.0\]"),
     ("distill", "alpha", 1e300, r"distill\.alpha: must be in \[0\.0, 10000\.0\]"),
     ("distill", "beta", 2e4, r"distill\.beta: must be in"),
     ("search", "ray_share_timeout_s", 1e300, r"search\.ray_share_timeout_s: must be in")],
)  # fmt: skip
def test_huge_rates_coefficients_and_timeouts_are_config_errors(
    section: str, key: str, value: float, match: str
) -> None:
    # they passed: NaN losses after the stage folder was written, a C int64 overflow in Ray
    with pytest.raises(ConfigError, match=match):
        config_from_dict({section: {key: value}})
    assert config_from_dict({section: {key: 0.5}})


def _yaml12(text: str) -> object:
    from a2d_evo.config import parse_yaml

    return parse_yaml(text, "f")


@pytest.mark.parametrize(
    ("item", "key", "value"),
    [("seed=0x10", "seed", 16), ("seed=0o17", "seed", 15), ("seed=017", "seed", 17),
     ("seed=1_000", "seed", 1000), ("seed=1e3", "seed", 1000),
     ("ppo.ent_coef=0x10", "ppo.ent_coef", 16.0), ("ppo.lr=1e-3", "ppo.lr", 1e-3),
     ("ppo.ent_coef=1_0.5", "ppo.ent_coef", 10.5)],
)  # fmt: skip
def test_set_reads_numbers_as_a_files_yaml_does(item: str, key: str, value: object) -> None:
    from a2d_evo.config.compare import setting

    # `pop: 0x10` in a file is 16; `--set seed=0x10` was refused ("expected an int")
    assert setting(config_from_dict({}, [item]), key) == value
    section, _, name = key.rpartition(".")
    text = (
        f"{name}: {item.split('=')[1]}"
        if not section
        else f"{section}: {{{name}: {item.split('=')[1]}}}"
    )
    assert setting(config_from_dict(_yaml12(text)), key) == value  # the file reads the same


@pytest.mark.parametrize("item", ["seed=١٢", "seed=1.5", "ppo.lr=nan", "ppo.lr=abc"])
def test_set_refuses_what_is_no_number_of_the_field(item: str) -> None:
    with pytest.raises(ConfigError, match=rf"--set '{item}': (seed|ppo\.lr): expected"):
        config_from_dict({}, [item])


def test_search_candidates_and_max_arch_episodes_at_their_bounds() -> None:
    """``search.candidates * search.episodes`` may reach 65,536 env slots (one halving
    round), not pass it; ``search.max_arch_episodes`` may not be below ``search.episodes``
    (an arch would stop replaying before its first generation's episodes are in)."""
    from a2d_evo.config import config_from_dict
    from a2d_evo.errors import ConfigError

    full = {"pop": 4, "candidates": 4096, "episodes": 16, "reevaluate": False}
    assert config_from_dict({"search": full}).search.delivery_candidates == 4096
    with pytest.raises(ConfigError, match=r"search.candidates \* search.episodes: at most 65536"):
        config_from_dict({"search": {**full, "episodes": 17}})
    assert config_from_dict({"search": {"episodes": 5, "max_arch_episodes": 5}})
    with pytest.raises(ConfigError, match=r"search.max_arch_episodes: must be >= 5"):
        config_from_dict({"search": {"episodes": 5, "max_arch_episodes": 4}})


def _schema_refusal(make: Callable[[], object]) -> str:
    """The ConfigError message of ``make()``."""
    from a2d_evo.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        make()
    return str(err.value)


def test_sticky_actions_alone_make_ale_vector_play_its_own_games() -> None:
    """Under ``ale_vector`` an ALE id plays its own games with sticky actions even without
    no-ops; with neither it plays the reference's."""
    from a2d_evo.config import EnvConfig

    sticky = EnvConfig(id="ALE/Pong-v5", backend="ale_vector", noop_max=0, sticky_actions=0.25)
    assert sticky.games() == "ale_vector"
    plain = EnvConfig(id="ALE/Pong-v5", backend="ale_vector", noop_max=0, sticky_actions=0.0)
    assert plain.games() == "reference"


def test_an_env_import_is_at_most_200_characters() -> None:
    """A 200-character module path is taken as an import; 201 characters are not."""
    from a2d_evo.config import EnvConfig

    assert EnvConfig(imports=("a" * 200,)).imports == ("a" * 200,)
    assert _schema_refusal(lambda: EnvConfig(imports=("a" * 201,))) == (
        "env.imports[0]: expected a module path or module:function (e.g. "
        f"minatar.gym:register_envs), got '{'a' * 76}..."
    )


def _refusal(overrides: list[str], **raw: object) -> str:
    """The ConfigError message of ``{"env": {"id": "CartPole-v1"}, **raw}`` + overrides."""
    from a2d_evo.config import config_from_dict
    from a2d_evo.errors import ConfigError

    data: dict[str, object] = {"env": {"id": "CartPole-v1"}, **raw}
    with pytest.raises(ConfigError) as err:
        config_from_dict(data, overrides, source="c.yaml")
    return str(err.value)


def test_yaml_and_set_read_signed_hex_and_octal_ints() -> None:
    """``-0x10`` is -16 and ``+0o17`` is 15, in a file as with ``--set``."""
    from a2d_evo.config.yaml_dialect import parse_yaml

    assert parse_yaml("x: -0x10\ny: +0o17\nz: 0x1_0\n", "f") == {"x": -16, "y": 15, "z": 16}


def test_set_nan_is_refused_as_not_finite() -> None:
    """``--set ppo.lr=nan`` is a float, refused as not finite (not "expected a float")."""
    assert (
        _refusal(["ppo.lr=nan"]) == "--set 'ppo.lr=nan': ppo.lr: expected a finite float, got nan"
    )


def test_set_of_a_key_that_is_no_identifier_is_no_key_path() -> None:
    """``--set a-b.c=1`` is not a dotted key path (not an unknown key)."""
    assert _refusal(["a-b.c=1"]) == "--set 'a-b.c=1': 'a-b.c' is not a dotted key path"


def test_ints_at_the_64_bit_bounds_reach_the_key_s_own_check() -> None:
    """-2**63 and 2**63 - 1 are 64-bit ints: refused by the key's own bounds; 2**63 is not."""
    assert _refusal([], seed=2**63 - 1) == (
        "c.yaml: seed: must be <= 4294967295 (its documented upper bound), got 9223372036854775807"
    )
    assert _refusal([], seed=-(2**63)) == "c.yaml: seed: must be >= 0, got -9223372036854775808"
    assert _refusal([], seed=2**63) == (
        "c.yaml: seed: expected an int, got one outside the 64-bit range"
    )


def test_an_ale_key_named_by_the_file_and_by_set_is_refused_once_naming_the_override(
    tmp_path: Path,
) -> None:
    """``env.sticky_actions`` named (at its default) by a CartPole config and by ``--set``
    is one refused key, said as the override's."""
    from a2d_evo.config import load_config
    from a2d_evo.errors import ConfigError

    path = tmp_path / "c.yaml"
    path.write_text("env:\n  id: CartPole-v1\n  sticky_actions: 0.25\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, ["env.sticky_actions=0.25"])
    assert str(err.value) == (
        f"{path} with override 'env.sticky_actions=0.25': env.sticky_actions applies to Atari "
        "ids (ALE/...) only, and CartPole-v1 is not one: remove it (an env's own settings go "
        "in env.kwargs, e.g. MinAtar's sticky_action_prob)"
    )


def test_of_two_overrides_of_one_key_the_refusal_names_the_last() -> None:
    """A key set twice by ``--set`` takes the last value, and its refusal names that one
    override alone (also for an item of a list key, ``env.imports[0]``)."""
    assert _refusal(["ppo.num_envs=8", "ppo.num_envs=0"]) == (
        "c.yaml with override 'ppo.num_envs=0': ppo.num_envs: must be >= 1, got 0"
    )
    assert _refusal(["env.imports=[a.b]", "env.imports=[x:y:z]"]) == (
        "c.yaml with override 'env.imports=[x:y:z]': env.imports[0]: expected a module path "
        "or module:function (e.g. minatar.gym:register_envs), got 'x:y:z'"
    )
