"""Upper bounds of the config and the memory estimate: absurd sizes are one-line errors
(exit 2) before anything is allocated."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from a2d_evo.cli import EXIT_USER_ERROR, main
from a2d_evo.config import PPOConfig, config_from_dict
from a2d_evo.errors import ConfigError
from a2d_evo.nets import cost
from a2d_evo.nets.space import MLPArch

# the documented bounds (a2d_evo.config.MAX_*), spelled out so the test reads on its own
MAX_ENVS, MAX_NUM_STEPS, MAX_WIDTH, MAX_EVAL_SLOTS = 4096, 65_536, 16_384, 65_536


def tiny(**sections: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "env": {"id": "CartPole-v1"},
        "ppo": {"num_envs": 2, "num_steps": 8, "num_minibatches": 1, "update_epochs": 1},
        "teacher": {"total_steps": 16, "eval_episodes": 1},
    }
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    return raw


def write(path: Path, raw: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(raw))
    return path


class _TooSlow(Exception):
    pass


def _too_slow(signum: int, frame: object) -> None:
    raise _TooSlow("the command did not fail fast (it started allocating or training)")


def refused_quickly(
    argv: list[str], capsys: pytest.CaptureFixture[str], *needles: str, limit_s: int = 20
) -> str:
    t0 = time.perf_counter()
    previous = signal.signal(signal.SIGALRM, _too_slow)
    signal.alarm(limit_s)  # a command that starts training instead fails the test, not hangs it
    try:
        code = main(argv)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    elapsed = time.perf_counter() - t0
    err = capsys.readouterr().err
    assert code == EXIT_USER_ERROR, err
    assert err.count("\n") == 1 and "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    assert elapsed < limit_s
    return err


def test_a_huge_num_envs_is_refused_at_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write(tmp_path / "c.yaml", tiny())
    out = tmp_path / "run"
    argv = ["train-teacher", "--config", str(cfg), "--out", str(out), "--quiet"]
    refused_quickly(
        [*argv, "--set", "ppo.num_envs=100000000"],
        capsys,
        f"ppo.num_envs: must be <= {MAX_ENVS} (its documented upper bound), got 100000000",
    )
    assert not out.exists()  # refused before the run folder was made


def test_a_huge_teacher_width_is_refused_at_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arch = {"kind": "mlp", "widths": [1_000_000_000]}
    cfg = write(tmp_path / "c.yaml", tiny(teacher={"arch": arch}))
    out = tmp_path / "run"
    refused_quickly(
        ["train-teacher", "--config", str(cfg), "--out", str(out), "--quiet"],
        capsys,
        f"teacher.arch.widths[0]: at most {MAX_WIDTH} units",
    )
    assert not out.exists()


def test_a_module_env_id_is_refused_without_importing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write(tmp_path / "c.yaml", tiny())
    out = tmp_path / "run"
    argv = ["train-teacher", "--config", str(cfg), "--out", str(out), "--quiet"]
    refused_quickly([*argv, "--set", "env.id=nosuchmod:X-v0"], capsys, "env.id:", "env.imports")
    assert "nosuchmod" not in sys.modules and not out.exists()


def test_eval_episodes_option_is_bounded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    refused_quickly(
        ["eval", str(tmp_path / "nowhere"), "--episodes", "100000000"], capsys, "--episodes"
    )


@pytest.mark.parametrize(
    ("section", "key", "ok", "bad"),
    [
        ("ppo", "num_envs", MAX_ENVS, MAX_ENVS + 1),
        ("ppo", "num_steps", MAX_NUM_STEPS, MAX_NUM_STEPS + 1),
        ("eval", "num_envs", MAX_ENVS, MAX_ENVS + 1),
        ("eval", "episodes", 100_000, 100_001),
        ("search", "pop", 4096, 4097),
        ("search", "final_episodes", MAX_EVAL_SLOTS, MAX_EVAL_SLOTS + 1),
        ("", "seed", 2**32 - 1, 2**32),  # one 32-bit word: SeedSequence splits larger ints
        ("teacher", "total_steps", 10**12, 10**12 + 1),
        ("env", "frame_size", 512, 513),
    ],
)
def test_bounds_are_inclusive(section: str, key: str, ok: int, bad: int) -> None:
    if not section:  # a top-level key
        assert config_from_dict({key: ok}).seed == ok
        with pytest.raises(ConfigError, match=rf": {key}: must be <= {ok} .*, got {bad}"):
            config_from_dict({key: bad})
        return
    raw: dict = {section: {key: ok}}
    if section == "ppo":
        raw["ppo"]["num_minibatches"] = 1
    if section == "env":  # the ALE pipeline's keys are refused on any other id
        raw["env"]["id"] = "ALE/Pong-v5"
        raw["space"] = {"kind": "cnn"}
    assert getattr(getattr(config_from_dict(raw), section), key) == ok
    raw[section][key] = bad
    with pytest.raises(ConfigError, match=rf"{section}\.{key}: must be <= {ok} .*, got {bad}"):
        config_from_dict(raw)


def test_space_widths_and_generation_size_are_bounded() -> None:
    with pytest.raises(ConfigError, match=rf"space.widths: must be <= {MAX_WIDTH}"):
        config_from_dict({"space": {"widths": [8, MAX_WIDTH + 1]}})
    with pytest.raises(ConfigError, match=r"search.pop \* search.episodes: at most 65536"):
        config_from_dict({"search": {"pop": 4096, "episodes": 17}})
    # survivors replay with their offspring, anchors with them: one call of twice pop + anchors
    full = {"pop": 4096, "episodes": 16, "reevaluate": False}  # 65,536 slots: at the cap
    assert config_from_dict({"search": full}).search.pop == 4096
    for more, words in (
        ({"reevaluate": True}, r"8192 archs \(offspring and the survivors that replay\) \* 16"),
        ({"estimate": "seed_adjusted"}, r"4100 archs \(offspring and the anchors\) \* 16"),
    ):
        with pytest.raises(ConfigError, match=words):
            config_from_dict({"search": {**full, **more}})


def test_memory_estimate_by_hand() -> None:
    # MLP 4 -> 8 -> heads (2 + 1): params 40 + 18 + 9 = 67, x 4 bytes x 4 (weights, grads,
    # Adam m and v) = 1072; rollout 2 * 4 steps x (4 floats obs + 8 floats) x 4 = 384;
    # activations: minibatch 4 x (4 + 8 + 2 + 1 units) x 4 bytes x 2 = 480.
    ppo = PPOConfig(num_envs=2, num_steps=4, num_minibatches=2)
    assert cost.training_memory_bytes(MLPArch((8,)), (4,), 4, 2, ppo) == 1072 + 384 + 480
    # a frozen teacher adds its weights once and its logits + value per step
    with_teacher = cost.training_memory_bytes(MLPArch((8,)), (4,), 4, 2, ppo, frozen=MLPArch((8,)))
    assert with_teacher == 1072 + 384 + 480 + 67 * 4 + 8 * 3 * 4


def test_a_stage_that_would_not_fit_in_memory_is_refused_before_allocating(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cost, "available_memory_bytes", lambda: 2**29)  # a 0.5 GiB machine
    arch = {"kind": "mlp", "widths": [4096, 4096, 4096]}  # 33.6M params: 0.5 GiB with Adam
    cfg = write(tmp_path / "c.yaml", tiny(teacher={"arch": arch}))
    out = tmp_path / "run"
    err = refused_quickly(
        ["train-teacher", "--config", str(cfg), "--out", str(out), "--quiet"],
        capsys,
        "teacher: training would need about 0.5 GiB",
        "80% of this machine's 0.5 GiB",
        "teacher.arch",
        limit_s=10,
    )
    assert "ppo.num_envs" in err
    assert not (out / "teacher" / "checkpoint.pt").exists()


def test_the_documented_bounds_are_the_schemas() -> None:
    import a2d_evo.config as c

    assert (c.MAX_ENVS, c.MAX_NUM_STEPS, c.MAX_WIDTH, c.MAX_EVAL_SLOTS) == (
        MAX_ENVS,
        MAX_NUM_STEPS,
        MAX_WIDTH,
        MAX_EVAL_SLOTS,
    )


def test_the_shipped_configs_fit_the_bounds() -> None:
    from a2d_evo.config import load_config

    root = Path(__file__).resolve().parents[1] / "configs"
    for path in sorted(root.glob("*.yaml")):
        load_config(path)
