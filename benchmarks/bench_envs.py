"""Atari vector env throughput: our backends against their peers, measured in the same run.

Agent steps per second (all envs together) with uniform random actions, for:

  native        a2d_evo's native backend (ALE in worker processes + the batched kernel)
  ale_vector    a2d_evo's ale_vector backend (ale-py's AtariVectorEnv behind our StepResult)
  ale-py direct ale-py's AtariVectorEnv used directly, configured like the reference pipeline
  gym async     gymnasium AsyncVectorEnv of AtariPreprocessing + FrameStackObservation
  envpool       when importable

Same game, env count and cores for all; one run: every env is built and warmed up, then they are
timed over ``--steps`` steps in interleaved blocks, so that a shared machine's background load
hits all of them alike. Ends with a ``RESULT`` line.

    python benchmarks/bench_envs.py --game Pong --num-envs 8
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from a2d_evo.config import EnvConfig
from a2d_evo.envs import ale, atari_reference, factory, make_vec_env

Stepper = tuple[Callable[[np.ndarray], Any], Callable[[], None]]


def _ours(backend: str, cfg: EnvConfig, n: int) -> Stepper:
    env = make_vec_env(cfg, n, seed=0)
    env.reset()
    return env.step, env.close


def _ale_direct(cfg: EnvConfig, n: int, threads: int) -> Stepper:
    from ale_py.vector_env import AtariVectorEnv

    env = AtariVectorEnv(
        ale.rom_id(cfg.id),
        n,
        num_threads=threads,
        repeat_action_probability=cfg.sticky_actions,
        noop_max=cfg.noop_max,
        frameskip=cfg.frame_skip,
        stack_num=cfg.stack,
        img_height=cfg.frame_size,
        img_width=cfg.frame_size,
        use_fire_reset=False,
        reward_clipping=False,
        episodic_life=False,
    )
    env.reset(seed=0)
    return env.step, env.close


def _gym_async(cfg: EnvConfig, n: int) -> Stepper:
    import gymnasium as gym

    env = gym.vector.AsyncVectorEnv(
        [lambda: atari_reference.reference_env(cfg) for _ in range(n)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    env.reset(seed=0)
    return env.step, env.close


def _envpool(cfg: EnvConfig, n: int, threads: int) -> Stepper | None:
    try:
        import envpool  # type: ignore[import-not-found]
    except ImportError:
        return None
    env = envpool.make_gymnasium(
        cfg.id.removeprefix("ALE/"),
        num_envs=n,
        num_threads=threads,
        repeat_action_probability=cfg.sticky_actions,
        noop_max=cfg.noop_max,
        frame_skip=cfg.frame_skip,
        stack_num=cfg.stack,
        img_height=cfg.frame_size,
        img_width=cfg.frame_size,
        use_fire_reset=False,
        reward_clip=False,
        episodic_life=False,
        max_episode_steps=27_000,  # agent steps = v5's 108000 frames
    )
    env.reset()
    return env.step, env.close


def _measure(steppers: dict[str, Stepper], actions: np.ndarray, args: Any) -> dict[str, list]:
    """Warm every env up, then time them in interleaved blocks of ``--block`` steps, so that
    all of them see the same background load over the run (the machine may be shared)."""
    for step, _ in steppers.values():
        for t in range(args.warmup):
            step(actions[t % len(actions)])
    blocks: dict[str, list[float]] = {k: [] for k in steppers}
    for start in range(0, len(actions), args.block):
        chunk = actions[start : start + args.block]
        for name, (step, _) in steppers.items():
            t0 = time.perf_counter()
            for a in chunk:
                step(a)
            blocks[name].append(chunk.size / (time.perf_counter() - t0))
    return blocks


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--game", default="Pong")
    p.add_argument("--num-envs", type=int, default=8)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--steps", type=int, default=3000, help="timed steps per env")
    p.add_argument("--block", type=int, default=100, help="steps per interleaved block")
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--skip-gym", action="store_true", help="leave out gymnasium AsyncVectorEnv")
    args = p.parse_args(argv)

    n, threads = args.num_envs, args.threads
    base = EnvConfig(id=f"ALE/{args.game}-v5", workers=threads)
    cfg = {b: EnvConfig(**{**base.__dict__, "backend": b}) for b in ("native", "ale_vector")}
    actions = np.random.default_rng(0).integers(0, ale.num_actions(base.id), size=(args.steps, n))
    builders: dict[str, Callable[[], Stepper | None]] = {
        "native": lambda: _ours("native", cfg["native"], n),
        "ale_vector": lambda: _ours("ale_vector", cfg["ale_vector"], n),
        "ale-py direct": lambda: _ale_direct(base, n, threads),
    }
    if not args.skip_gym:
        builders["gym async"] = lambda: _gym_async(base, n)
    builders["envpool"] = lambda: _envpool(base, n, threads)

    steppers: dict[str, Stepper] = {}
    try:
        for name, build in builders.items():
            stepper = build()
            if stepper is None:
                print(f"{name}: not importable, skipped", file=sys.stderr)
            else:
                steppers[name] = stepper
        blocks = _measure(steppers, actions, args)
    finally:
        for _, close in steppers.values():
            close()
    # whole-run throughput (total steps / total time) and the median block
    runs = {k: [len(v) / sum(1 / x for x in v), statistics.median(v)] for k, v in blocks.items()}

    ref = runs["ale-py direct"][0]
    default = factory.AUTO_BACKEND
    print(
        f"\n{args.game}, {n} envs, {threads} threads/workers, {os.cpu_count()} cores, "
        f"{args.steps} steps in blocks of {args.block}, interleaved (agent steps/s)"
    )
    print(f"{'env':<16}{'steps/s':>10}{'median blk':>12}{'vs ale-py':>11}")
    for name, (sps, med) in runs.items():
        print(f"{name:<16}{sps:>10.0f}{med:>12.0f}{sps / ref:>10.2f}x")
    result = {
        "game": args.game,
        "num_envs": n,
        "threads": threads,
        "native_sps": round(runs["native"][0]),
        "ours_ale_vector_sps": round(runs["ale_vector"][0]),
        "ale_vector_sps": round(ref),
        "native_vs_ale_vector": round(runs["native"][0] / ref, 3),
        "default_backend": default,
        "default_vs_ale_vector": round(runs[default][0] / ref, 3),
    }
    if "gym async" in runs:
        result["gym_async_sps"] = round(runs["gym async"][0])
    if "envpool" in runs:
        result["envpool_sps"] = round(runs["envpool"][0])
    print("RESULT " + " ".join(f"{k}={v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
