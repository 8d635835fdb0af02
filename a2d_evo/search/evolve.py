"""NSGA-II over the supernet's subnets: ``a2d-evo evolve`` -> ``RUN_DIR/search/``.

Stock pymoo NSGA-II (integer random sampling; SBX and polynomial mutation followed by
rounding; duplicate elimination on the canonical encoding) driven by an ask-and-tell loop,
so that this module owns evaluation, checkpoints and progress:

* generation ``g`` (0 = the initial population) evaluates its new candidates on episode seeds
  derived from ``(seed, g)``, shared by every candidate (common random numbers);
* ``R_random`` and ``R_teacher`` (the normalisation) are measured once, at the start, on all
  the search's episode seeds and kept in the state;
* after every generation the state is written without pickling: ``state.json`` (generation,
  evaluation cache, normalisation, hypervolume history) and then ``state.npz`` (population
  X/F/G, NSGA-II's rank and crowding, the generator state). ``state.npz`` is the commit point:
  a kill between the two writes leaves a ``state.json`` one generation ahead, whose extra
  cache entries are exactly what re-running that generation computes again;
* ``history.csv`` and ``hypervolume.csv`` are rewritten from the state each generation;
* the final front (feasible non-dominated members of the last population) is re-scored on
  fresh seeds with ``search.final_episodes`` episodes, R_random and R_teacher re-measured on
  those seeds, and written to ``front.json`` (members dominated under the re-scored figures,
  or by the uniform-random policy -- normalised return <= 0 at 0 FLOPs -- are dropped;
  ``history.csv`` keeps everything).

A resumed run (``resume=True``) rebuilds NSGA-II from the state and ends with the same
``front.json`` as an uninterrupted run (``latency_ms`` aside, a wall-clock measurement).
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.termination import NoTermination

from a2d_evo.config import Config
from a2d_evo.errors import FormatError, RunFolderError, TrainingError
from a2d_evo.evaluation.seeds import final_seeds, generation_seeds
from a2d_evo.formats import (
    FRONT_FORMAT_VERSION,
    METRICS_FORMAT_VERSION,
    STATE_FORMAT_VERSION,
    Normalisation,
)
from a2d_evo.nets.space import SearchSpace
from a2d_evo.runfolder import (
    RunFolder,
    holds_results,
    read_json,
    write_bytes,
    write_json,
    write_text,
)
from a2d_evo.search.nsga import (
    make_algorithm,
    population_arrays,
    restore_algorithm,
)
from a2d_evo.search.problem import (
    SubnetProblem,
    delivered_front,
    front_indices,
    hypervolume,
    reference_point,
)

if TYPE_CHECKING:
    from a2d_evo.evaluation.episodes import EvalResult
    from a2d_evo.nets.space import Arch

_HISTORY_COLUMNS = (
    "generation",
    "encoding",
    "arch",
    "return_mean",
    "return_std",
    "episodes",
    "flops",
    "params",
)


def reference_returns(
    cfg: Config, teacher: Any, seed_blocks: list[list[int]], max_steps: int | None
) -> tuple[float, float]:
    """Mean returns of the uniform-random policy and of the teacher (greedy) on these seeds.

    Each block is a run of consecutive seeds (one generation's, or the final re-scoring's).
    """
    from a2d_evo.evaluation.episodes import evaluate_agent, random_policy_return

    rand: list[float] = []
    teach: list[float] = []
    for block in seed_blocks:
        n = len(block)
        rand.extend(random_policy_return(cfg, n, block[0], max_episode_steps=max_steps).returns)
        teach.extend(
            evaluate_agent(teacher, cfg, n, block[0], "greedy", max_episode_steps=max_steps).returns
        )
    return float(np.mean(rand)), float(np.mean(teach))


def rescore(
    evaluator: Any, archs: Sequence[Arch], seeds: list[int], max_slots: int
) -> list[EvalResult]:
    """Every arch on every one of ``seeds``, in calls of at most ``max_slots`` env slots.

    The final re-scoring of a front: ``max_slots`` is a search generation's, so it never
    needs more env slots (memory, Atari emulators) than the search did. ``evaluator`` is a
    local or Ray population evaluator.
    """
    per_call = max(1, max_slots // len(seeds))
    results: list[EvalResult] = []
    for i in range(0, len(archs), per_call):
        results.extend(evaluator.evaluate(archs[i : i + per_call], len(seeds), seeds))
    return results


# ----------------------------------------------------------------------------- the search
class _Search:
    """One search run: the problem, the algorithm, and the files of RUN_DIR/search/."""

    def __init__(self, cfg: Config, run: RunFolder, folder: Path, progress: bool) -> None:
        from a2d_evo.envs import env_spec
        from a2d_evo.nets.agent_folder import load_agent
        from a2d_evo.nets.supernet import load_supernet
        from a2d_evo.scale.ray_population import make_population_evaluator

        self.cfg, self.run, self.folder, self.progress = cfg, run, folder, progress
        self.space = SearchSpace(cfg.space)
        spec = env_spec(cfg.env)
        self.obs_shape, self.n_actions = tuple(spec.obs_shape), int(spec.n_actions)
        self.supernet = load_supernet(cfg, run.supernet_weights)
        self.teacher = load_agent(run.teacher_agent)
        if tuple(self.teacher.obs_shape) != self.obs_shape or self.teacher.n_actions != (
            self.n_actions
        ):
            raise FormatError(
                f"teacher agent {run.teacher_agent} takes obs {tuple(self.teacher.obs_shape)} "
                f"and {self.teacher.n_actions} actions, but {cfg.env.id} gives "
                f"{self.obs_shape} and {self.n_actions}"
            )
        from a2d_evo.nets.cost import flops

        self.teacher_flops = flops(self.teacher.arch, self.obs_shape, self.n_actions)
        self.evaluator = make_population_evaluator(self.supernet, cfg)
        self.ref = reference_point(self.space, self.obs_shape, self.n_actions, self.teacher_flops)
        self.hv_history: list[list[float]] = []
        self.timing = {"eval_s": 0.0, "evaluations": 0}

    # -------------------------------------------------------------- normalisation
    def _measure(self, seed_blocks: list[list[int]], max_steps: int | None) -> tuple[float, float]:
        return reference_returns(self.cfg, self.teacher, seed_blocks, max_steps)

    def _normalisation(self, r_random: float, r_teacher: float) -> Normalisation:
        try:
            return Normalisation(r_random, r_teacher, self.teacher_flops)
        except ValueError as exc:
            raise TrainingError(f"cannot normalise returns: {exc}") from None

    # -------------------------------------------------------------- state files
    def _save(
        self,
        problem: SubnetProblem,
        algorithm: NSGA2,
        generation: int,
        finished: bool,
        norm: Normalisation,
    ) -> None:
        s = self.cfg.search
        state = {
            "format_version": STATE_FORMAT_VERSION,
            "generation": generation,
            "finished": finished,
            "normalisation": norm.to_dict(),
            "normalisation_seeds": [
                generation_seeds(self.cfg.seed, g, s.episodes) for g in range(s.gens)
            ],
            "reference_point": self.ref.tolist(),
            "hypervolume": self.hv_history[:generation],
            "cache": problem.cache_records(),
        }
        write_json(self.folder / "state.json", state)
        arrays = population_arrays(algorithm, generation)
        buf = io.BytesIO()
        np.savez(buf, **arrays)  # type: ignore[arg-type]
        write_bytes(self.folder / "state.npz", buf.getvalue())
        self._write_tables(problem)

    def _load(self) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
        npz_path, json_path = self.folder / "state.npz", self.folder / "state.json"
        if not npz_path.is_file():
            return None
        try:
            with np.load(npz_path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError) as exc:
            raise FormatError(f"search state {npz_path} is unreadable: {exc}") from None
        need = {"format_version", "generation", "X", "F", "G", "rank", "crowding", "rng"}
        if not need <= set(arrays) or int(arrays["format_version"]) != STATE_FORMAT_VERSION:
            raise FormatError(f"search state {npz_path} is not a state this a2d-evo wrote")
        state = read_json(json_path, "search state", format_version=STATE_FORMAT_VERSION)
        gen = int(arrays["generation"])
        if not isinstance(state, dict) or int(state.get("generation", -1)) < gen:
            raise FormatError(f"search state {json_path} is older than {npz_path}")
        return state, arrays

    def _write_tables(self, problem: SubnetProblem) -> None:
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(_HISTORY_COLUMNS)
        for e in problem.cache_records():
            w.writerow(
                [
                    e["generation"],
                    " ".join(map(str, e["encoding"])),
                    e["arch"],
                    repr(e["return_mean"]),
                    repr(e["return_std"]),
                    e["episodes"],
                    e["flops"],
                    e["params"],
                ]
            )
        write_text(self.folder / "history.csv", out.getvalue())
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(("generation", "hypervolume", "front_size"))
        for gen, hv, size in self.hv_history:
            w.writerow([int(gen), repr(float(hv)), int(size)])
        write_text(self.folder / "hypervolume.csv", out.getvalue())

    # -------------------------------------------------------------- the loop
    def run_search(self, resume: bool) -> Path:
        s = self.cfg.search
        saved = self._load() if resume else None
        if saved is None:
            blocks = [generation_seeds(self.cfg.seed, g, s.episodes) for g in range(s.gens)]
            norm = self._normalisation(*self._measure(blocks, s.max_episode_steps))
            start = 0
        else:
            state, arrays = saved
            norm = Normalisation.from_dict(state.get("normalisation"))
            start = int(arrays["generation"])
            self.hv_history = [list(r) for r in state.get("hypervolume", [])][:start]
        problem = SubnetProblem(
            self.space,
            self.evaluator.evaluate,
            self.obs_shape,
            self.n_actions,
            norm,
            s.episodes,
            max_flops=s.max_flops,
        )
        # a capped search evaluates with that cap (the evaluator's signature has it)
        if s.max_episode_steps is not None:
            evaluate = self.evaluator.evaluate
            problem.evaluate_archs = lambda a, e, sd: evaluate(
                a, e, sd, max_episode_steps=s.max_episode_steps
            )
        algorithm = make_algorithm(self.cfg, self.space)
        algorithm.setup(problem, termination=NoTermination(), verbose=False)
        if saved is not None:
            problem.load_cache(saved[0].get("cache", []))
            if start > 0:
                restore_algorithm(algorithm, saved[1], start)
            if saved[0].get("finished") and (self.folder / "front.json").is_file():
                return self.folder / "front.json"

        writer = self._tb(start)
        bar = self._bar(start)
        try:
            for gen in range(start, s.gens):
                problem.generation = gen
                problem.seeds = generation_seeds(self.cfg.seed, gen, s.episodes)
                t0 = time.perf_counter()
                pop = algorithm.ask()
                if pop is None or len(pop) == 0:
                    break  # duplicate elimination exhausted a tiny space
                algorithm.evaluator.eval(problem, pop, algorithm=algorithm)
                algorithm.tell(infills=pop)
                dt = time.perf_counter() - t0
                n_new = len(problem.last_new)
                F = algorithm.pop.get("F")
                G = algorithm.pop.get("G") if problem.n_ieq_constr else None
                idx = front_indices(F, G)
                hv = hypervolume(problem.norm.scaled(F[idx]), self.ref)
                self.hv_history.append([gen, hv, len(idx)])
                self._save(problem, algorithm, gen + 1, False, norm)
                best = float(-F[idx, 0].min()) if len(idx) else float("nan")
                self._report(writer, bar, gen, hv, len(idx), best, n_new, dt)
        finally:
            if bar is not None:
                bar.close()
        path = self._final(problem, algorithm, norm)
        self._save(problem, algorithm, len(self.hv_history), True, norm)
        if writer is not None:
            writer.close()
        return path

    # -------------------------------------------------------------- progress
    def _tb(self, start: int) -> Any:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is a dependency; stay usable without it
            return None
        return SummaryWriter(str(self.run.tb / "search"), purge_step=start)

    def _bar(self, start: int) -> Any:
        if not self.progress:
            return None
        from tqdm.auto import tqdm

        s = self.cfg.search
        fwd = getattr(getattr(self.evaluator, "forward", None), "backend_name", None)
        tqdm.write(
            f"evolve: {self.cfg.env.id}, pop {s.pop} x {s.gens} generations x {s.episodes} "
            f"episodes; population forward: {fwd or type(self.evaluator).__name__}"
        )
        return tqdm(total=s.gens, initial=start, desc="evolve", unit="gen")

    def _report(
        self,
        writer: Any,
        bar: Any,
        gen: int,
        hv: float,
        size: int,
        best: float,
        n_new: int,
        dt: float,
    ) -> None:
        timing = getattr(self.evaluator, "timing", None)
        if writer is not None:
            writer.add_scalar("search/hypervolume", hv, gen)
            writer.add_scalar("search/front_size", size, gen)
            writer.add_scalar("search/best_normalised_return", best, gen)
            writer.add_scalar("search/evaluations_per_s", n_new / max(dt, 1e-9), gen)
            if timing is not None:
                writer.add_scalar("search/env_s", timing.env_s, gen)
                writer.add_scalar("search/net_s", timing.net_s, gen)
            writer.flush()
        if bar is not None:
            post = {
                "evals/s": f"{n_new / max(dt, 1e-9):.1f}",
                "best": f"{best:.3f}",
                "hv": f"{hv:.4f}",
                "front": size,
            }
            if timing is not None and timing.env_s + timing.net_s > 0:
                post["net"] = f"{timing.net_s / (timing.env_s + timing.net_s):.0%}"
            bar.set_postfix(post, refresh=False)
            bar.update(1)

    # -------------------------------------------------------------- final front
    def _final(self, problem: SubnetProblem, algorithm: NSGA2, norm_search: Normalisation) -> Path:
        from a2d_evo.nets.agent_folder import extract, make_metrics
        from a2d_evo.nets.cost import latency_ms

        s = self.cfg.search
        F = algorithm.pop.get("F")
        G = algorithm.pop.get("G") if problem.n_ieq_constr else None
        idx = front_indices(F, G)
        if len(idx) == 0:  # nothing meets the FLOPs ceiling: report the least violating
            idx = np.array([int(np.argmin(np.asarray(G).max(axis=1)))])
        X = problem.space.canonical(np.round(algorithm.pop.get("X")[idx]))
        keys, rows = [], []
        for row in X:  # unique, cheapest first
            k = row.tobytes()
            if k not in keys:
                keys.append(k)
                rows.append(row)
        rows.sort(key=lambda r: (problem.cache[r.tobytes()]["flops"], list(r)))
        archs = [self.space.decode(r) for r in rows]
        seeds = final_seeds(self.cfg.seed, s.final_episodes)
        r_rand, r_teach = self._measure([seeds], None)
        norm = self._normalisation(r_rand, r_teach)
        results = rescore(self.evaluator, archs, seeds, max_slots=s.pop * s.episodes)
        entries = []
        for row, arch, res in zip(rows, archs, results, strict=True):
            agent = extract(self.supernet, arch)
            searched = problem.cache[row.tobytes()]
            metrics = make_metrics(
                agent,
                env_id=self.cfg.env.id,
                returns=res.returns,
                eval_mode="greedy",
                seeds=seeds,
                r_random=norm.r_random,
                r_teacher=norm.r_teacher,
                latency=latency_ms(agent),
            )
            metrics["arch"] = arch.to_dict()
            metrics["encoding"] = [int(g) for g in row]
            metrics["search_return_mean"] = searched["return_mean"]
            metrics["search_normalised_return"] = float(norm_search.score(searched["return_mean"]))
            entries.append(metrics)
        keep, below_random = delivered_front(
            np.array([e["normalised_return"] for e in entries]),
            np.array([e["flops"] for e in entries]),
        )
        front = [entries[i] for i in keep]
        scaled = norm.scaled(np.array([[-e["normalised_return"], e["flops"]] for e in front]))
        data = {
            "format_version": FRONT_FORMAT_VERSION,
            "env_id": self.cfg.env.id,
            "reference_point": self.ref.tolist(),
            "reference_point_units": ["-normalised_return", "flops / teacher_flops"],
            "hypervolume": hypervolume(scaled, self.ref),
            "normalisation": {
                **norm.to_dict(),
                "seeds": seeds,
                "episodes": s.final_episodes,
                "eval_mode": "greedy",
            },
            "search": {
                "normalisation": norm_search.to_dict(),
                "generations": len(self.hv_history),
                "pop": s.pop,
                "episodes": s.episodes,
                "evaluations": len(problem.cache),
                "front_size": len(rows),
                "dropped_after_rescore": len(rows) - len(front),
                "dropped_below_random": below_random,
                "metrics_format_version": METRICS_FORMAT_VERSION,
            },
            "front": front,
        }
        return write_json(self.folder / "front.json", data)


def check_prerequisites(run: RunFolder) -> None:
    """RunFolderError naming the command to run when the teacher or the supernet is missing."""
    if not (run.teacher_agent / "arch.json").is_file():
        raise RunFolderError(
            f"no teacher agent at {run.teacher_agent}; run `a2d-evo train-teacher` (or "
            "`a2d-evo import-teacher`) first"
        )
    if not run.supernet_weights.is_file():
        raise RunFolderError(
            f"no supernet weights at {run.supernet_weights}; run `a2d-evo train-supernet` first"
        )


def evolve(cfg: Config, run: RunFolder, *, resume: bool = False, progress: bool = True) -> Path:
    """Run (or resume) the NSGA-II search of ``run``; returns ``RUN_DIR/search/front.json``.

    Refuses to start without a teacher agent and supernet weights (RunFolderError naming the
    command to run), with supernet weights that do not match ``cfg.space`` (FormatError), and
    over an existing search unless ``resume`` (RunFolderError); ``resume`` with another
    config is refused too. Nothing under ``RUN_DIR/search/`` is written before those checks.
    """
    check_prerequisites(run)
    run.bind(cfg)
    if not resume:
        folder = run.search
        if holds_results(folder):  # a kill before the first state leaves only config.yaml
            raise RunFolderError(
                f"{folder} already holds a search run; pass --resume to continue it, "
                "or --out for a new run folder"
            )
    elif not (run.search / "config.yaml").is_file():
        raise RunFolderError(f"--resume: {run.search} holds no run to resume")
    # load (and check) the supernet and teacher before the stage folder is touched
    search = _Search(cfg, run, run.search, progress)
    folder = run.bind_stage("search", cfg, resume)
    search.folder = folder
    try:
        return search.run_search(resume)
    finally:
        close = getattr(search.evaluator, "close", None)
        if close is not None:
            close()


def main(argv: list[str] | None = None) -> int:
    """``python -m a2d_evo.search.evolve CONFIG RUN_DIR [--resume] [--quiet]`` (tests, scripts)."""
    import argparse

    from a2d_evo.config import load_config

    p = argparse.ArgumentParser(prog="python -m a2d_evo.search.evolve")
    p.add_argument("config")
    p.add_argument("run_dir")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--set", action="append", default=[], dest="overrides")
    a = p.parse_args(argv)
    cfg = load_config(a.config, a.overrides)
    path = evolve(cfg, RunFolder(a.run_dir), resume=a.resume, progress=not a.quiet)
    print(json.dumps({"front": str(path)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
