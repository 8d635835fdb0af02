"""Throughput of supernet training vs plain PPO, per env step, with the same PPO settings.

Plain PPO trains the supernet's LARGEST arch as a static agent with no teacher; supernet
training runs the full stage (``supernet.rollout_subnets`` subnets acting, the sandwich of
largest + smallest + k random trained per minibatch, teacher outputs once per rollout).
Both go through the same loop (:func:`a2d_evo.train.loop.run_ppo`) without checkpoints or
TensorBoard, so the ratio is the cost of the supernet stage itself.

    python benchmarks/bench_train.py                       # CartPole, k = 2, target <= 2x
    python benchmarks/bench_train.py --config configs/pong.yaml --steps 4096

Ends with one ``RESULT`` line.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from a2d_evo.config import Config, config_to_dict, load_config
from a2d_evo.envs import env_spec, make_vec_env
from a2d_evo.evaluation.episodes import resolve_device
from a2d_evo.nets.agent import Agent
from a2d_evo.nets.space import SearchSpace
from a2d_evo.nets.supernet import Supernet
from a2d_evo.train.learners import AgentLearner
from a2d_evo.train.loop import LoopOptions, TrainResult, run_ppo
from a2d_evo.train.streams import Streams
from a2d_evo.train.supernet_stage import SupernetLearner
from a2d_evo.train.teacher_folder import teacher_arch


def measure(cfg: Config, kind: str, steps: int) -> tuple[float, float]:
    """Env steps per second of ``kind`` (``plain`` or ``supernet``) and its wall time."""
    spec = env_spec(cfg.env)
    device = resolve_device(cfg.device)
    space = SearchSpace(cfg.space)
    streams = Streams(cfg.seed, "supernet" if kind == "supernet" else "baseline")
    learner: AgentLearner | SupernetLearner
    if kind == "plain":
        agent = streams.build(
            lambda: Agent(space.largest(), spec.obs_shape, spec.n_actions, None, spec.obs_scale)
        )
        learner = AgentLearner(agent.to(device), cfg)
    else:
        teacher = None
        if not cfg.distill.vanilla:  # an untrained teacher costs the same as a trained one
            env = config_to_dict(cfg.env)
            teacher = Agent(teacher_arch(cfg), spec.obs_shape, spec.n_actions, env, spec.obs_scale)
            teacher = teacher.to(device)
        net = streams.build(lambda: Supernet(space, spec.obs_shape, spec.n_actions, spec.obs_scale))
        learner = SupernetLearner(net.to(device), cfg, teacher, streams.rng)
    result, wall = timed_ppo(learner, cfg, kind, steps, streams, device)
    return result.global_step / wall, wall


def timed_ppo(
    learner: AgentLearner | SupernetLearner,
    cfg: Config,
    kind: str,
    steps: int,
    streams: Streams,
    device: torch.device,
) -> tuple[TrainResult, float]:
    """Run a2d-evo's PPO loop for ``steps`` env steps on fresh envs of ``cfg`` (no checkpoints,
    so ``checkpoint_every`` plays no part): its result and wall seconds, env creation excluded."""
    spec = env_spec(cfg.env)
    envs = make_vec_env(cfg.env, cfg.ppo.num_envs, seed=cfg.seed)
    opts = LoopOptions(kind, steps, None, None, cfg.supernet.checkpoint_every, progress=False)
    t0 = time.perf_counter()
    try:
        result = run_ppo(learner, cfg, envs, spec.obs_shape, spec.obs_dtype, streams, opts, device)
    finally:
        envs.close()
    return result, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/cartpole.yaml")
    parser.add_argument("--steps", type=int, default=20_480, help="env steps per measurement")
    parser.add_argument("--k", type=int, default=2, help="random subnets per update (+ 2 ends)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--set", action="append", default=[], help="config override")
    args = parser.parse_args()
    overrides = [f"supernet.rollout_subnets={args.k + 2}", *args.set]
    cfg = load_config(Path(args.config), overrides)
    torch.set_num_threads(args.threads)
    # warm-up of both: imports, allocator, first env build, the supernet's own first-use costs
    measure(cfg, "plain", cfg.ppo.batch_size)
    measure(cfg, "supernet", cfg.ppo.batch_size)
    # plain before and after: a shared machine drifts; the ratio uses their mean
    plain1, wall1 = measure(cfg, "plain", args.steps)
    sup, sup_wall = measure(cfg, "supernet", args.steps)
    plain2, wall2 = measure(cfg, "plain", args.steps)
    plain, plain_wall = (plain1 + plain2) / 2, (wall1 + wall2) / 2
    ratio = plain / sup
    print(f"env: {cfg.env.id}  steps per run: {args.steps}  torch threads: {args.threads}")
    print(
        f"  plain PPO, largest arch, no teacher : {plain:8.0f} steps/s ({plain_wall:.1f} s; "
        f"before {plain1:.0f}, after {plain2:.0f})"
    )
    print(
        f"  supernet, {cfg.supernet.rollout_subnets} acting, sandwich 2+{args.k}"
        f"{', vanilla' if cfg.distill.vanilla else ', distilled'} : {sup:8.0f} steps/s "
        f"({sup_wall:.1f} s)"
    )
    print(
        f"RESULT bench_train {cfg.env.id} k={args.k}: plain {plain:.0f} steps/s, supernet "
        f"{sup:.0f} steps/s, cost per env step {ratio:.2f}x plain (target <= 2x)"
    )


if __name__ == "__main__":
    main()
