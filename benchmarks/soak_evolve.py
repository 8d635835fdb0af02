"""Soak: run ``evolve`` for many generations and watch the process's memory.

    python benchmarks/soak_evolve.py                 # 200 generations, pop 8, CartPole
    python benchmarks/soak_evolve.py --gens 50 --keep runs/soak

Everything it needs is built here, so no training runs: a randomly initialised supernet
(``RUN_DIR/supernet/weights.pt``) and a teacher cut out of it (``RUN_DIR/teacher/agent``), a
``mlp-16`` whose first unit is set by hand to push towards where the pole falls, so that it
beats the random policy (every teacher that normalises returns must).
The search uses the default classic-control space (about 22,600 networks), 1 episode per
candidate, episodes capped at ``--max-steps`` steps, and a low polynomial-mutation index
(``--mutation-eta 3``): over a random supernet the front collapses early, and the stock
index 20 then mostly re-proposes cached candidates; at 3 nearly every generation evaluates
new ones, so the evaluator and the envs run all along. The resident set size is read after
every generation; the growth from the end of the warm-up to the end of the run must stay
under ``--target`` percent.

Last line: ``RESULT rss_growth_pct=<x>`` (exit 1 when over the target).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import torch

from a2d_evo.config import Config, config_from_dict
from a2d_evo.nets.agent_folder import extract, save_agent
from a2d_evo.nets.space import MLPArch
from a2d_evo.nets.supernet import build_supernet
from a2d_evo.runs.files import torch_save
from a2d_evo.runs.folder import RunFolder


def soak_config(gens: int, pop: int, max_steps: int, mutation_eta: float, seed: int) -> Config:
    return config_from_dict(
        {
            "seed": seed,
            "torch_threads": 1,
            "env": {"id": "CartPole-v1"},
            "space": {"kind": "mlp"},
            "teacher": {"arch": {"kind": "mlp", "widths": [16]}},
            "search": {
                "pop": pop,
                "gens": gens,
                "episodes": 1,
                "final_episodes": 2,
                "max_episode_steps": max_steps,
                "mutation_eta": mutation_eta,
            },
            "eval": {"num_envs": 2, "episodes": 2, "random_episodes": 2},
        }
    )


def prepare_run(cfg: Config, root: Path) -> RunFolder:
    """A run folder holding a random-init supernet and a balancing teacher extracted from it."""
    run = RunFolder(root)
    torch.manual_seed(cfg.seed)
    supernet = build_supernet(cfg)
    state = {k: v.detach().clone() for k, v in supernet.state_dict().items()}
    torch_save(run.supernet_weights, state)
    agent = extract(supernet, MLPArch((16,)), {"id": cfg.env.id})
    first = agent.layers[0]
    assert isinstance(first, torch.nn.Linear)
    with torch.no_grad():  # unit 0 reads angle + angular velocity; the head follows it
        first.weight[0] = torch.tensor([0.0, 0.0, 10.0, 10.0])
        first.bias[0] = 0.0
        agent.policy.weight[:, 0] = torch.tensor([-8.0, 8.0])
    save_agent(agent, run.teacher_agent, onnx=False)
    return run


class RssProbe:
    """RSS after every generation: hooks the search's per-generation report when it has
    one, else polls ``hypervolume.csv`` (one row per finished generation)."""

    def __init__(self, run: RunFolder) -> None:
        self.proc = psutil.Process()
        self.samples: dict[int, tuple[float, int]] = {}  # generation -> (time, rss)
        self.t0 = time.perf_counter()
        self.run = run
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, generation: int) -> None:
        self.samples[generation] = (time.perf_counter() - self.t0, self.proc.memory_info().rss)

    def install(self) -> None:
        from a2d_evo.search import evolution as evolve_mod

        search = getattr(evolve_mod, "_Search", None)
        report = getattr(search, "_report", None)
        if search is not None and report is not None:
            probe = self

            def hooked(obj: Any, writer: Any, bar: Any, gen: int, *args: Any) -> Any:
                out = report(obj, writer, bar, gen, *args)
                probe.record(gen)
                return out

            search._report = hooked  # type: ignore[attr-defined]
            return
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        csv = self.run.search / "hypervolume.csv"
        while not self._stop.wait(0.05):
            try:
                rows = csv.read_text().count("\n") - 1
            except OSError:
                continue
            if rows > 0 and rows - 1 not in self.samples:
                self.record(rows - 1)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gens", type=int, default=200)
    p.add_argument("--pop", type=int, default=8)
    p.add_argument("--max-steps", type=int, default=200, help="search.max_episode_steps")
    p.add_argument("--mutation-eta", type=float, default=3.0, help="search.mutation_eta")
    p.add_argument("--warmup", type=int, default=20, help="generations before the baseline")
    p.add_argument("--window", type=int, default=10, help="generations averaged at each end")
    p.add_argument("--target", type=float, default=10.0, help="max growth, percent")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", type=Path, help="run folder to keep (default: a temp folder)")
    a = p.parse_args(argv)
    if a.gens < a.warmup + 2 * a.window:
        p.error("--gens must be at least --warmup + 2 * --window")

    from a2d_evo.search.evolution import evolve

    torch.set_num_threads(1)
    cfg = soak_config(a.gens, a.pop, a.max_steps, a.mutation_eta, a.seed)
    tmp = None if a.keep else Path(tempfile.mkdtemp(prefix="a2d-soak-"))
    root = a.keep or tmp / "run"  # type: ignore[operator]
    if a.keep and root.exists():
        shutil.rmtree(root)
    try:
        run = prepare_run(cfg, root)
        probe = RssProbe(run)
        probe.install()
        rss0 = probe.proc.memory_info().rss
        t0 = time.perf_counter()
        evolve(cfg, run, progress=False)
        wall = time.perf_counter() - t0
        probe.stop()
        rows = (run.search / "history.csv").read_text().splitlines()[1:]
        evaluations = len(rows)
        busy = len({r.split(",")[0] for r in rows})  # generations that evaluated anything
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    gens = sorted(probe.samples)
    rss = {g: probe.samples[g][1] / 2**20 for g in gens}
    base_gens = [g for g in gens if a.warmup <= g < a.warmup + a.window]
    end_gens = gens[-a.window :]
    base = statistics.mean(rss[g] for g in base_gens)
    end = statistics.mean(rss[g] for g in end_gens)
    growth = 100.0 * (end - base) / base

    print(
        f"soak: evolve {a.gens} generations, pop {a.pop}, 1 episode <= {a.max_steps} steps, "
        f"mutation_eta {a.mutation_eta:g}, CartPole-v1, default MLP space; {evaluations} "
        f"evaluations ({busy} generations evaluated new candidates) in {wall:.1f} s; "
        f"torch {torch.__version__}, 1 thread"
    )
    print(f"RSS before the search: {rss0 / 2**20:.1f} MiB")
    print(f"{'generation':>10} {'time_s':>8} {'rss_mib':>9} {'vs_warmup_pct':>14}")
    step = max(1, len(gens) // 20)
    shown = sorted({*gens[::step], gens[-1], *base_gens[:1]})
    for g in shown:
        t, _ = probe.samples[g]
        print(f"{g:>10} {t:>8.1f} {rss[g]:>9.1f} {100.0 * (rss[g] - base) / base:>14.2f}")
    print(
        f"baseline: mean RSS of generations {base_gens[0]}-{base_gens[-1]} = {base:.1f} MiB; "
        f"end: mean of {end_gens[0]}-{end_gens[-1]} = {end:.1f} MiB; "
        f"target < {a.target:g}%: {'PASS' if growth < a.target else 'FAIL'}"
    )
    print(f"RESULT rss_growth_pct={growth:.2f}")
    return 0 if growth < a.target else 1


if __name__ == "__main__":
    sys.exit(main())
