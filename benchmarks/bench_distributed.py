"""Scale-out throughput: one generation on 1 and 2 Ray actors, and supernet training on 1 and
2 torchrun DDP processes, each against the single-process run measured in the same sitting.

**Evaluation.** One generation of ``--pop`` candidates x ``search.episodes`` episodes,
scored by the local :class:`~a2d_evo.evaluation.population.PopulationEvaluator` and by
:class:`~a2d_evo.scale.ray_population.RayPopulationEvaluator` with 1 and 2 actors (a local
``ray.init``). Each evaluator plays one warm-up generation first (env construction, actor
start), then ``--gens`` timed generations on fresh seeds; the Ray results are checked equal
to the local ones. Default task: Acrobot-v1, whose untrained policies play full 500-step
episodes, so a generation is the size of a real one. The single-process run is measured
first and again last; ratios are against the mean of the two (the drift of a shared machine
shows as their difference).

**Training.** ``a2d-evo train-supernet`` (distilled, with an untrained teacher of the same
cost) for ``--train-steps`` env steps, as one plain process and under
``torchrun --nproc-per-node 1`` and ``2``; env steps per second from ``summary.json``
(inside the loop, so process start is not counted). At world size 1 torchrun runs the
plain single-process path (DDP is off), so that row measures the launcher alone.

Every process runs ONE torch/OpenMP thread (``OMP_NUM_THREADS=1``, as torchrun and Ray
set for their workers), so the rows compare processes on separate cores.

    python benchmarks/bench_distributed.py
    python benchmarks/bench_distributed.py --pop 64 --gens 2 --train-steps 16384
    python benchmarks/bench_distributed.py --skip-train      # evaluation only

Ends with one ``RESULT`` line.
"""

from __future__ import annotations

import os

# One thread per process everywhere (torchrun and Ray actors set the same), so that the rows
# compare processes, not thread pools; --threads N changes it for the plain runs.
if __name__ == "__main__":
    import sys as _sys

    _n = _sys.argv[_sys.argv.index("--threads") + 1] if "--threads" in _sys.argv else "1"
    os.environ["OMP_NUM_THREADS"] = _n

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from a2d_evo.config import Config, config_to_dict, load_config, replace
from a2d_evo.evaluation.population import PopulationEvaluator
from a2d_evo.nets.space import SearchSpace
from a2d_evo.nets.supernet import build_supernet

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- evaluation
def measure_eval(
    cfg: Config, evaluator: Any, pop: int, gens: int
) -> tuple[float, float, list[np.ndarray]]:
    """Candidates/s and env slot-steps/s over ``gens`` timed generations (after a warm-up)."""
    space = SearchSpace(cfg.space)
    episodes = cfg.search.episodes
    out = []
    for gen in range(gens + 1):
        rng = np.random.default_rng(gen)
        archs = [space.sample(rng) for _ in range(pop)]
        seeds = [1000 * gen + e for e in range(episodes)]
        if gen == 1:
            steps0 = evaluator.timing.env_steps
            t0 = time.perf_counter()
        res = evaluator.evaluate(archs, episodes, seeds, max_episode_steps=None)
        out.append(np.stack([r.returns for r in res]))
    wall = time.perf_counter() - t0
    return gens * pop / wall, (evaluator.timing.env_steps - steps0) / wall, out


def bench_eval(cfg: Config, pop: int, gens: int) -> list[tuple[str, float, float]]:
    import logging

    import ray

    from a2d_evo.scale.ray_population import RayPopulationEvaluator

    torch.manual_seed(cfg.seed)
    net = build_supernet(cfg)

    def local_row(name: str) -> tuple[tuple[str, float, float], list[np.ndarray]]:
        local = PopulationEvaluator(net, cfg)
        try:
            cps, sps, got = measure_eval(cfg, local, pop, gens)
        finally:
            local.close()
        return (name, cps, sps), got

    first, want = local_row("local, 1 process")
    rows = [first]
    ray.init(num_cpus=os.cpu_count() or 2, include_dashboard=False,
             logging_level=logging.ERROR, log_to_driver=False)  # fmt: skip
    try:
        for actors in (1, 2):
            c = replace(cfg, search=replace(cfg.search, backend="ray", ray_actors=actors))
            ev = RayPopulationEvaluator(net, c)
            try:
                cps, sps, got = measure_eval(c, ev, pop, gens)
            finally:
                ev.close()
            same = all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))
            if not same:
                raise SystemExit(f"Ray with {actors} actors returned other results than local")
            rows.append((f"Ray, {actors} actor{'s' if actors > 1 else ''}", cps, sps))
    finally:
        ray.shutdown()
    rows.append(local_row("local again")[0])  # the drift of a shared machine over the run
    return rows


# ----------------------------------------------------------------------------- training
def _prepare_run(cfg: Config, root: Path) -> Path:
    """A config file and a run folder with an (untrained) teacher agent."""
    import yaml

    from a2d_evo.envs import env_spec
    from a2d_evo.nets.agent import Agent
    from a2d_evo.nets.agent_folder import save_agent
    from a2d_evo.train.teacher_folder import teacher_arch

    spec = env_spec(cfg.env)
    config = root / "bench.yaml"
    config.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    teacher = Agent(
        teacher_arch(cfg), spec.obs_shape, spec.n_actions, config_to_dict(cfg.env), spec.obs_scale
    )
    save_agent(teacher, root / "teacher", onnx=False)
    return config


def train_sps(config: Path, root: Path, name: str, nproc: int | None) -> float:
    out = root / name
    args = ["train-supernet", "--config", str(config), "--out", str(out), "--quiet"]
    args += ["--teacher", str(root / "teacher")]
    if nproc is None:
        cmd = [sys.executable, "-m", "a2d_evo", *args]
    else:
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        cmd = [*torchrun, f"--nproc-per-node={nproc}", "-m", "a2d_evo", *args]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    summary = json.loads((out / "supernet" / "summary.json").read_text())
    return float(summary["sps"])


def bench_train(cfg: Config, steps: int) -> list[tuple[str, float]]:
    cfg = replace(cfg, supernet=replace(cfg.supernet, total_steps=steps))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = _prepare_run(cfg, root)
        return [
            ("single process", train_sps(config, root, "single", None)),
            ("torchrun, 1 process", train_sps(config, root, "ddp1", 1)),
            ("torchrun DDP, 2 processes", train_sps(config, root, "ddp2", 2)),
            ("single process again", train_sps(config, root, "single2", None)),
        ]


# ----------------------------------------------------------------------------- main
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(REPO / "configs" / "acrobot.yaml"))
    p.add_argument("--pop", type=int, default=64)
    p.add_argument(
        "--gens", type=int, default=1, help="timed generations after the warm-up (at least 1)"
    )
    p.add_argument("--train-config", default=str(REPO / "configs" / "cartpole.yaml"))
    p.add_argument("--train-steps", type=int, default=8192)
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--skip-eval", action="store_true")
    p.add_argument("--threads", type=int, default=1, help="threads of the plain process runs")
    a = p.parse_args()
    if a.gens < 1:
        p.error("--gens: at least 1 timed generation")
    torch.set_num_threads(a.threads)

    print(f"cpus {os.cpu_count()}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    result = []
    if not a.skip_eval:
        cfg = load_config(a.config)
        print(f"\nevaluation: {cfg.env.id}, pop {a.pop} x {cfg.search.episodes} episodes")
        rows = bench_eval(cfg, a.pop, a.gens)
        base = (rows[0][1] + rows[-1][1]) / 2  # local before and after
        print(f"{'evaluator':<20} {'candidates/s':>13} {'env steps/s':>12} {'vs local':>9}")
        for name, cps, sps in rows:
            print(f"{name:<20} {cps:>13.2f} {sps:>12.0f} {cps / base:>8.2f}x")
        result.append(
            f"eval pop {a.pop}: ray1={rows[1][1] / base:.2f}x ray2={rows[2][1] / base:.2f}x "
            f"local={base:.1f} cand/s"
        )
    if not a.skip_train:
        cfg = load_config(a.train_config)
        print(f"\ntraining: {cfg.env.id}, {a.train_steps} env steps, num_envs {cfg.ppo.num_envs}")
        train_rows = bench_train(cfg, a.train_steps)
        base = (train_rows[0][1] + train_rows[-1][1]) / 2  # single before and after
        print(f"{'run':<26} {'env steps/s':>12} {'vs single':>10}")
        for name, sps in train_rows:
            print(f"{name:<26} {sps:>12.0f} {sps / base:>9.2f}x")
        result.append(
            f"train: ddp1={train_rows[1][1] / base:.2f}x ddp2={train_rows[2][1] / base:.2f}x "
            f"single={base:.0f} steps/s"
        )
    print("RESULT " + "; ".join(result))


if __name__ == "__main__":
    main()
