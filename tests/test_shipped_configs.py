"""The configs shipped in configs/: each loads, and its env builds with the expected spaces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from a2d_evo.config import load_config
from a2d_evo.envs import env_spec, make_vec_env

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

# (config, observation shape, action count)
CLASSIC = [
    ("cartpole.yaml", (4,), 2),
    ("acrobot.yaml", (6,), 3),
    ("lunarlander.yaml", (8,), 4),
    ("lunarlander_demo.yaml", (8,), 4),
]


def test_every_shipped_config_is_listed() -> None:
    shipped = {p.name for p in CONFIGS.glob("*.yaml")}
    images = {"pong.yaml", "breakout.yaml"} | {
        f"minatar_{game}.yaml" for game in ("breakout", "asterix", "spaceinvaders", "freeway")
    }  # checked in test_declared_spaces.py
    assert {name for name, _, _ in CLASSIC} | images == shipped


@pytest.mark.parametrize(("name", "obs", "n_actions"), CLASSIC)
def test_shipped_classic_config_builds_its_env(
    name: str, obs: tuple[int, ...], n_actions: int
) -> None:
    cfg = load_config(CONFIGS / name)
    spec = env_spec(cfg.env)
    assert tuple(spec.obs_shape) == obs and spec.n_actions == n_actions and not spec.atari
    env = make_vec_env(cfg.env, 2, seed=cfg.seed)
    try:
        first = env.reset()
        assert first.shape == (2, *obs) and first.dtype == np.float32
        step = env.step(np.zeros(2, dtype=np.int64))
        assert step.obs.shape == (2, *obs) and np.isfinite(step.reward).all()
    finally:
        env.close()
