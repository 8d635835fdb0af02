"""Gymnasium (non-Atari) vector env throughput: the ``sync`` and ``procs`` backends against
gymnasium's own vector envs, measured in the same run; then whole evaluations under each.

Agent steps per second (all envs together) with uniform random actions, for each vector size
in ``--num-envs``:

  sync          a2d_evo's in-process backend (what ``env.backend: auto`` takes)
  procs         a2d_evo's worker processes (``ProcVecEnv``, ``--workers``), whatever the size
                (``env.backend: procs`` uses them from ``PROCS_MIN_ENVS`` envs on)
  gym sync      gymnasium SyncVectorEnv (same-step autoreset)
  gym async     gymnasium AsyncVectorEnv (same-step autoreset; one process per env, as
                gymnasium does it: sizes up to 32 only)

Every env is built and warmed up, then they are timed over ``--steps`` steps in interleaved
blocks, so that a shared machine's background load hits all of them alike. Then
``--episodes`` random-policy evaluation episodes in ``--eval-envs`` slots (finished slots
stop) under ``env.backend`` ``sync`` and ``procs``, alternated ``--rounds`` times: the wall
time of a population-sized evaluation, start of the workers included. Ends with a ``RESULT``
line.

    python benchmarks/bench_classic_envs.py --env LunarLander-v3 --num-envs 16 32 96 200
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from a2d_evo.config import EnvConfig, config_from_dict
from a2d_evo.envs import make_vec_env
from a2d_evo.envs.classic import make_classic_env
from a2d_evo.envs.proc_vector import ProcVecEnv
from a2d_evo.evaluation.episodes import random_policy_return

Stepper = tuple[Callable[[np.ndarray], Any], Callable[[], None]]


def _ours(cfg: EnvConfig, n: int, workers: int = 0) -> Stepper:
    env = (
        ProcVecEnv(cfg, n, seed=0, limit=None, workers=workers)
        if workers
        else make_vec_env(cfg, n, seed=0)
    )
    env.reset()
    return env.step, env.close


def _gym(cfg: EnvConfig, n: int, kind: str) -> Stepper:
    import gymnasium as gym

    make = gym.vector.SyncVectorEnv if kind == "sync" else gym.vector.AsyncVectorEnv
    env = make(
        [lambda: make_classic_env(cfg.id, {}, None) for _ in range(n)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    env.reset(seed=0)
    return env.step, env.close


def _interleaved(steppers: dict[str, Stepper], actions: np.ndarray, block: int) -> dict[str, float]:
    """Steps/s of each stepper over the same actions, timed in interleaved blocks."""
    for step, _ in steppers.values():
        for a in actions[:100]:
            step(a)
    spent = dict.fromkeys(steppers, 0.0)
    for start in range(0, len(actions), block):
        chunk = actions[start : start + block]
        for name, (step, _) in steppers.items():
            t0 = time.perf_counter()
            for a in chunk:
                step(a)
            spent[name] += time.perf_counter() - t0
    return {k: actions.size / v for k, v in spent.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--env", default="LunarLander-v3")
    p.add_argument("--num-envs", type=int, nargs="+", default=[16, 32, 96, 200])
    p.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--steps", type=int, default=600, help="timed steps per vector size")
    p.add_argument("--block", type=int, default=50, help="steps per interleaved block")
    p.add_argument("--eval-envs", type=int, default=96, help="slots of the evaluation")
    p.add_argument("--episodes", type=int, default=960, help="episodes per evaluation")
    p.add_argument("--rounds", type=int, default=3, help="evaluations per backend, alternated")
    p.add_argument("--skip-gym", action="store_true", help="leave out gymnasium's vector envs")
    args = p.parse_args(argv)

    w = args.workers
    cfg = {b: EnvConfig(id=args.env, backend=b, workers=w) for b in ("sync", "procs")}
    probe = make_vec_env(cfg["sync"], 1, seed=0)
    n_actions = probe.n_actions
    probe.close()
    load = [os.getloadavg()[0]]
    print(f"\n{args.env}, {w} workers, {os.cpu_count()} cores, agent steps/s, {args.steps} steps")
    print(f"{'envs':>5} {'env':<10}{'steps/s':>10}{'vs sync':>9}")
    result: dict[str, Any] = {"env": args.env, "workers": w}
    for n in args.num_envs:
        actions = np.random.default_rng(0).integers(0, n_actions, size=(args.steps, n))
        builders: dict[str, Callable[[], Stepper]] = {
            "sync": functools.partial(_ours, cfg["sync"], n),
            "procs": functools.partial(_ours, cfg["procs"], n, w),
        }
        if not args.skip_gym:
            builders["gym sync"] = functools.partial(_gym, cfg["sync"], n, "sync")
            if n <= 32:
                builders["gym async"] = functools.partial(_gym, cfg["sync"], n, "async")
        steppers: dict[str, Stepper] = {}
        try:
            for name, build in builders.items():
                steppers[name] = build()
            sps = _interleaved(steppers, actions, args.block)
        finally:
            for _, close in steppers.values():
                close()
        for name, v in sps.items():
            print(f"{n:>5} {name:<10}{v:>10.0f}{v / sps['sync']:>8.2f}x")
        result[f"procs_vs_sync_{n}"] = round(sps["procs"] / sps["sync"], 3)
        load.append(os.getloadavg()[0])

    walls: dict[str, list[float]] = {"sync": [], "procs": []}
    steps = 0
    for _ in range(args.rounds):
        for backend in walls:
            run = config_from_dict(
                {"env": {"id": args.env, "backend": backend, "workers": w},
                 "eval": {"num_envs": args.eval_envs}}
            )  # fmt: skip
            t0 = time.perf_counter()
            res = random_policy_return(run, args.episodes, 1000)
            walls[backend].append(time.perf_counter() - t0)
            steps = int(res.lengths.sum()) if res.lengths is not None else 0
    load.append(os.getloadavg()[0])
    med = {k: statistics.median(v) for k, v in walls.items()}
    print(
        f"evaluation, {args.episodes} episodes in {args.eval_envs} slots ({steps:,} env steps), "
        f"median of {args.rounds}: sync {med['sync']:.2f} s, procs {med['procs']:.2f} s "
        f"({med['sync'] / med['procs']:.2f}x); load {min(load):.2f}-{max(load):.2f}"
    )
    result.update(
        eval_sync_s=round(med["sync"], 2),
        eval_procs_s=round(med["procs"], 2),
        eval_procs_vs_sync=round(med["sync"] / med["procs"], 3),
    )
    print("RESULT " + " ".join(f"{k}={v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
