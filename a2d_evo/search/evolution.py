"""NSGA-II over the supernet's subnets: ``a2d-evo evolve`` -> ``RUN_DIR/search/``.

Stock pymoo NSGA-II (:mod:`a2d_evo.search.nsga`) driven by an ask-and-tell loop, so that
this module owns the loop, its resume and progress (a generation is played by
:mod:`a2d_evo.search.generation`, checkpoints written by :mod:`a2d_evo.search.state` and read
back by :mod:`a2d_evo.search.saved_state`):

* ``R_random`` and ``R_teacher`` (the normalisation) are measured once, at the start, on the
  episode seeds of the first ``min(gens, REFERENCE_GENERATIONS)`` generations, and kept in
  the state (the normalisation is affine: it changes no ranking, only the HV's scale);
* generation ``g`` (0 = the initial population) plays episode seeds derived from ``(seed,
  g)``, shared by every candidate (common random numbers): the new offspring and, with
  ``search.reevaluate`` (the default), the surviving parents too, in ONE evaluator call
  (:mod:`~a2d_evo.search.generation`); each arch's objective is the mean over every episode
  it played (:class:`~a2d_evo.search.problem.SubnetProblem`), so survivors are re-scored
  before NSGA-II's survival compares them with their offspring;
* the search stops after ``search.gens`` generations, or before the first generation that
  would start with ``search.budget_steps`` env steps (episode lengths summed) already spent,
  or when every arch of a small space was evaluated (a generation whose mating made no new
  arch takes archs never evaluated instead: :func:`~a2d_evo.search.generation.topped_up`);
  with a budget, the front is chosen from the episodes within it only
  (:func:`~a2d_evo.search.budget.within_budget`: a per-episode stop, whatever a generation
  costs);
* after every generation the state and the tables are written (:mod:`a2d_evo.search.state`);
* at the end everything evaluated is delivered (:func:`~a2d_evo.search.front.write_front`):
  its top fronts raced by successive halving on fresh seeds, the survivors' front re-scored on
  ``final_episodes`` fresh seeds, written to ``front.json`` with the env steps spent.

A resumed run (``resume=True``) rebuilds NSGA-II from the state and ends with the same
``front.json`` as an uninterrupted run (``latency_ms`` aside, a wall-clock measurement).
A ``--resume`` that raises ``search.gens`` keeps the normalisation measured when the search
started (on ``min(gens, REFERENCE_GENERATIONS)`` of the first ``gens``), where a fresh run
with the raised ``gens`` may measure it on more seeds. The normalisation is affine, and
NSGA-II's sorting and crowding and the delivery's fronts are invariant to it, so the same
archs are played and delivered; the search's hypervolume history and each member's
``search_normalised_return`` are then on the first normalisation's scale (``front.json``'s
own figures use the final seeds' normalisation).
"""

from __future__ import annotations

import functools
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.termination import NoTermination

from a2d_evo.config import Config
from a2d_evo.envs import check_episode_bound, env_spec
from a2d_evo.errors import ConfigError, RunFolderError, TrainingError
from a2d_evo.evaluation.seeds import generation_seeds
from a2d_evo.formats import Normalisation, count_text, weak_teacher_caution
from a2d_evo.nets.agent import check_fits_env
from a2d_evo.nets.agent_folder import load_agent
from a2d_evo.nets.cost import cheapest, flops
from a2d_evo.nets.space import SearchSpace
from a2d_evo.nets.supernet import load_supernet
from a2d_evo.progress import progress_bar, write
from a2d_evo.runs.files import read_json_dict
from a2d_evo.runs.folder import RunFolder
from a2d_evo.runs.layout import holds_results
from a2d_evo.runs.locks import writes
from a2d_evo.runs.teacher import teacher_fix
from a2d_evo.scale.ray_population import make_population_evaluator
from a2d_evo.search.budget import budget_spent, within_budget
from a2d_evo.search.estimates import search_anchors
from a2d_evo.search.front import SearchSummary, normalisation, reference_returns, write_front
from a2d_evo.search.generation import play_generation
from a2d_evo.search.nsga import make_algorithm, restore_algorithm
from a2d_evo.search.problem import (
    SubnetProblem,
    front_indices,
    hypervolume,
    reference_point,
    rescoring_rule,
)
from a2d_evo.search.saved_state import SavedSearch, StateSpec, load_state
from a2d_evo.search.state import save_state

REFERENCE_GENERATIONS = 20
"""R_random and R_teacher are measured on the seeds of at most this many generations: a
search stopped by its step budget does not know its generation count in advance."""


class _Search:
    """One search run: the problem, the algorithm, and the files of RUN_DIR/search/."""

    def __init__(self, cfg: Config, run: RunFolder, folder: Path, progress: bool) -> None:
        self.cfg, self.run, self.folder, self.progress = cfg, run, folder, progress
        self.space = SearchSpace(cfg.space)
        spec = env_spec(cfg.env)
        check_episode_bound(cfg.env)  # the front's final re-scoring plays full episodes
        self.obs_shape, self.n_actions = tuple(spec.obs_shape), int(spec.n_actions)
        self.supernet = load_supernet(cfg, run.supernet_weights)
        self.teacher = load_agent(run.teacher_agent)
        self.fix = teacher_fix(cfg, run.teacher_agent)  # for a teacher that does not beat random
        self.sources = run.weights_digests()  # what the records are of (state, front.json)
        check_fits_env(
            self.teacher,
            cfg.env,
            self.obs_shape,
            self.n_actions,
            f"the teacher {run.teacher_agent}",
            spec.obs_scale,
        )
        self.teacher_flops = flops(self.teacher.arch, self.obs_shape, self.n_actions)
        if cfg.search.max_flops is not None:  # no arch of the space under it: nothing to search
            low = cheapest(self.space, self.obs_shape, self.n_actions)
            low_flops = flops(low, self.obs_shape, self.n_actions)
            if cfg.search.max_flops < low_flops:
                raise ConfigError(
                    f"search.max_flops {cfg.search.max_flops:g} is below the cheapest arch of "
                    f"the space ({low}, {low_flops:,} FLOPs): no arch could be searched; set it "
                    f"to at least {low_flops:,}"
                )
        self.evaluator = make_population_evaluator(self.supernet, cfg)
        self.ref = reference_point(self.space, self.obs_shape, self.n_actions)
        self.hv_history: list[list[float]] = []

    def _save(
        self,
        problem: SubnetProblem,
        algorithm: NSGA2,
        generation: int,
        finished: bool,
        norm: Normalisation,
    ) -> None:
        save_state(
            self.folder,
            problem,
            algorithm,
            generation=generation,
            finished=finished,
            norm=norm,
            ref=self.ref,
            hv_history=self.hv_history,
            sources=self.sources,
            forward=self.numerics(),
        )

    def numerics(self) -> str | None:
        """The arithmetic of the population forward that plays the episodes: the local one's,
        or the one Ray's actors all run (:class:`RayPopulationEvaluator` checks they agree);
        None for an evaluator that says neither."""
        forward = getattr(self.evaluator, "forward", None)
        numerics = getattr(forward if forward is not None else self.evaluator, "numerics", None)
        return numerics if isinstance(numerics, str) else None

    def state_spec(self) -> StateSpec:
        """What a saved state of this search must match (checked in full by ``load_state``)."""
        s = self.cfg.search
        return StateSpec(self.space, self.obs_shape, self.n_actions, s.pop, s.max_flops, s.estimate)

    # -------------------------------------------------------------- the loop
    def run_search(self, saved: SavedSearch | None) -> Path:
        """Play the search from ``saved`` (a resume's state, checked by ``evolve``) or from
        its start (None), then deliver its front."""
        s = self.cfg.search
        norm: Normalisation
        if saved is None:
            n_ref = min(s.gens, REFERENCE_GENERATIONS)
            blocks = [generation_seeds(self.cfg.seed, g, s.episodes) for g in range(n_ref)]
            refs = reference_returns(self.cfg, self.teacher, blocks, s.max_episode_steps)
            norm = normalisation(refs.r_random, refs.r_teacher, self.teacher_flops, self.fix)
            caution = weak_teacher_caution(refs.margin_lower95)
            if caution is not None:  # the ranks stand; the hypervolumes are ratios over noise
                write(f"evolve: the search's normalisation: {caution}")
            start = 0
        else:
            norm, start = saved.norm, saved.generation
            self.hv_history = saved.hv_history
        problem = SubnetProblem(
            self.space,
            # a capped search evaluates with that cap (None: the env's own limit)
            functools.partial(self.evaluator.evaluate, max_episode_steps=s.max_episode_steps),
            self.obs_shape,
            self.n_actions,
            norm,
            s.episodes,
            max_flops=s.max_flops,
            reevaluate=s.reevaluate,
            max_arch_episodes=s.max_arch_episodes,
            estimate=s.estimate,
            anchors=search_anchors(self.cfg, self.space, self.obs_shape, self.n_actions),
        )
        algorithm = make_algorithm(self.cfg, self.space, self.obs_shape, self.n_actions)
        algorithm.setup(problem, termination=NoTermination(), verbose=False)
        exhausted = False  # a finished search whose mating gave up: it plays nothing more
        if saved is not None:
            problem.load_cache(saved.cache)
            if start > 0:
                restore_algorithm(algorithm, saved.arrays, start)
            front = self.folder / "front.json"
            if not saved.finished and front.is_file():
                # killed between delivering the front and saving the finished state: the end
                # delivers it again, and until then it is no front of this search
                front.unlink()
            if saved.finished and front.is_file():
                # a raised search.gens or search.budget_steps (a --resume may raise them) goes
                # on from the saved state and delivers the front again
                data = read_json_dict(front, "front")
                record, members = data.get("search"), data.get("front")
                whole = isinstance(members, list) and all(isinstance(m, dict) for m in members)
                delivered: dict[str, Any] = record if isinstance(record, dict) and whole else {}
                binding = self._binding_limit(problem, start, delivered)
                if not delivered:  # damaged since (it is written atomically): delivered again
                    front.unlink()
                    if self.progress:
                        print(f"evolve: {front} cannot be read as a front; it is delivered again")
                elif binding is not None and delivered.get("budget_steps") == s.budget_steps:
                    if self.progress:
                        print(f"evolve: the search in {self.folder} already finished after "
                              f"{start} generations ({binding}); nothing to resume")  # fmt: skip
                    return front
                else:
                    # the old front is no longer this search's: export and report must not take
                    # it while the continuation runs (or after it is interrupted)
                    front.unlink()
                    # its mating's draws advanced past the generation that gave up: another
                    # try would draw on, where a fresh search of the new budget stops there
                    exhausted = delivered.get("stopped_by") == "space exhausted"
                    if self.progress and binding is not None:
                        # no generation left to play, but the budget moved: the last generation
                        # played past the old one, so the new cut may keep episodes the old left
                        old = delivered.get("budget_steps")
                        print(f"evolve: search.budget_steps is now {s.budget_steps or 'none'} "
                              f"(the front was delivered under {old or 'none'}); no generation "
                              f"is left to play ({binding}), so the front is delivered again "
                              "under it")  # fmt: skip
                    elif self.progress:
                        print(f"evolve: the finished search goes on from generation {start}")

        writer = self._tb(start)
        bar = self._bar(start)
        stopped_by = "space exhausted" if exhausted else "gens"
        try:
            for gen in range(start, start if exhausted else s.gens):
                if budget_spent(problem, s.budget_steps):
                    stopped_by = "budget_steps"
                    break
                seeds = generation_seeds(self.cfg.seed, gen, s.episodes)
                t0 = time.perf_counter()
                if not play_generation(algorithm, problem, seeds, gen, s.reevaluate_ranks):
                    stopped_by = "space exhausted"
                    break  # duplicate elimination exhausted a tiny space
                dt = time.perf_counter() - t0
                n_new = len(problem.last_new)
                F = algorithm.pop.get("F")
                G = algorithm.pop.get("G") if problem.n_ieq_constr else None
                idx = front_indices(F, G)
                hv = hypervolume(F[idx], self.ref)
                steps, episodes = problem.env_steps(), problem.episodes_played()
                self.hv_history.append([gen, hv, len(idx), steps, episodes])
                self._save(problem, algorithm, gen + 1, False, norm)
                best = float(-F[idx, 0].min()) if len(idx) else float("nan")
                self._report(writer, bar, gen, hv, len(idx), best, n_new, dt, steps)
            else:  # every generation played: search.gens stopped it, the budget too if spent
                if not exhausted and budget_spent(problem, s.budget_steps):
                    stopped_by = "gens and budget_steps"
        finally:  # an interrupt or error too: the writer's thread is not left running
            bar.close()
            if writer is not None:
                writer.close()
        records, cut = within_budget(problem.cache_records(), s.budget_steps, s.budget_cut)
        if s.max_flops is not None and not any(r["flops"] <= s.max_flops for r in records):
            # archs over the ceiling are not played: with none under it there is no front
            seen = [*problem.over_ceiling.values(), *(r["flops"] for r in records)]
            n = len(self.hv_history)
            cheapest_seen = f" (the cheapest seen costs {min(seen):,} FLOPs)" if seen else ""
            # the limits that stopped it are the ones to raise (none when the space is
            # exhausted); both when the last generation spent the budget: raising one alone
            # would resume into the other. The budget from what was played, which the last
            # generation took past it (a doubled budget below that plays nothing)
            played = max(s.budget_steps or 0, problem.env_steps())
            limits = {"gens": ("search.gens", s.gens), "budget_steps": ("search.budget_steps",
                      played)}  # fmt: skip
            raise_ = {
                key: 2 * value
                for name, (key, value) in limits.items()
                if value and name in stopped_by.split(" and ")
            }
            more = (
                f"search on with {self.run.resume_command('search', raise_)}, or " if raise_ else ""
            )
            raise TrainingError(
                f"evolve: no arch within search.max_flops {s.max_flops:g} was found in "
                f"{count_text(n, 'generation')}{cheapest_seen} (stopped by {stopped_by}): {more}"
                f"delete {self.folder} and search again with a higher search.max_flops (the "
                "teacher and supernet stay)"
            )
        summary = SearchSummary(
            len(self.hv_history), stopped_by, **asdict(cut), sources=self.sources
        )
        if self.progress:
            write(
                f"evolve: {summary.generations} generations ({stopped_by}), "
                f"{summary.env_steps:,} env steps in {summary.episodes_played:,} episodes"
                + (
                    f" ({cut.discarded_env_steps:,} steps played past the budget not used)"
                    if cut.discarded_episodes
                    else ""
                )
            )
        searched = sum(1 for r in records if not r.get("anchor", False))
        budget_stopped = "budget_steps" in stopped_by.split(" and ") or cut.discarded_episodes > 0
        if s.budget_steps is not None and budget_stopped and searched < s.delivery_candidates:
            # said even with --quiet: the front is then little more than the first draws
            write(
                f"evolve: warning: search.budget_steps {s.budget_steps:,} left "
                f"{count_text(searched, 'arch')} of the search's own within the budget, fewer "
                f"than the delivery's {s.delivery_candidates} candidates (search.candidates, "
                "or pop): the front is chosen among them; raise search.budget_steps to search"
            )
        path = write_front(
            self.folder,
            self.cfg,
            records,
            supernet=self.supernet,
            teacher=self.teacher,
            teacher_flops=self.teacher_flops,
            evaluator=self.evaluator,
            norm_search=norm,
            ref=self.ref,
            summary=summary,
            progress=self.progress,
            fix=self.fix,
        )
        self._save(problem, algorithm, len(self.hv_history), True, norm)
        return path

    def _binding_limit(
        self, problem: SubnetProblem, start: int, delivered: dict[str, Any]
    ) -> str | None:
        """Why a finished search cannot go on (its limit, as the config stands now), or None
        when a raised ``search.gens`` / ``search.budget_steps`` lets it. ``delivered``: the
        ``search`` block of the ``front.json`` it delivered."""
        s = self.cfg.search
        stopped_by = delivered.get("stopped_by")
        if stopped_by == "space exhausted":
            return (
                "the space is exhausted: every arch of it"
                + (" within search.max_flops" if s.max_flops is not None else "")
                + " was evaluated"
            )
        if budget_spent(problem, s.budget_steps):
            return f"its search.budget_steps {s.budget_steps:,} is spent; raise it to search on"
        if start >= s.gens:
            return f"search.gens is {s.gens}; raise it to search on"
        return None

    # -------------------------------------------------------------- progress
    def _tb(self, start: int) -> Any:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is a dependency; stay usable without it
            return None
        return SummaryWriter(str(self.run.tb_dir("search")), purge_step=start)

    def _bar(self, start: int) -> Any:
        s = self.cfg.search
        if self.progress:
            fwd = getattr(getattr(self.evaluator, "forward", None), "backend_name", None)
            write(
                f"evolve: {self.cfg.env.id}, pop {s.pop} x {s.gens} generations x "
                f"{s.episodes} episodes"
                + (f", budget {s.budget_steps:,} env steps" if s.budget_steps else "")
                + f", {rescoring_rule(s.reevaluate, s.reevaluate_ranks)}"
                + f", first population {s.init}, {s.mutation} mutation"
                + (f", {s.estimate} estimates" if s.estimate != "mean" else "")
                + "; population forward: "
                f"{fwd or type(self.evaluator).__name__}"
            )
        return progress_bar(
            total=s.gens, initial=start, desc="evolve", unit="gen", enabled=self.progress
        )

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
        steps: int,
    ) -> None:
        timing = getattr(self.evaluator, "timing", None)
        if writer is not None:
            writer.add_scalar("search/hypervolume", hv, gen)
            writer.add_scalar("search/front_size", size, gen)
            writer.add_scalar("search/best_normalised_return", best, gen)
            writer.add_scalar("search/evaluations_per_s", n_new / max(dt, 1e-9), gen)
            writer.add_scalar("search/env_steps", steps, gen)
            if timing is not None:
                writer.add_scalar("search/env_s", timing.env_s, gen)
                writer.add_scalar("search/net_s", timing.net_s, gen)
            writer.flush()
        post = {
            "evals/s": f"{n_new / max(dt, 1e-9):.1f}",
            "best": f"{best:.3f}",
            "hv": f"{hv:.4f}",
            "front": size,
            "steps": f"{steps:,}",
        }
        if timing is not None and timing.env_s + timing.net_s > 0:
            post["net"] = f"{timing.net_s / (timing.env_s + timing.net_s):.0%}"
        bar.set_postfix(post, refresh=False)
        bar.update(1)


def check_prerequisites(run: RunFolder) -> None:
    """RunFolderError naming the command to run when the teacher or the supernet is missing,
    or when the supernet was distilled from another teacher than the run's."""
    run.check_supernet_teacher("evolve")
    if not (run.teacher_agent / "arch.json").is_file():
        raise RunFolderError(
            f"no teacher agent at {run.teacher_agent}; {run.missing_hint('teacher')}"
        )
    if not run.supernet_weights.is_file():
        raise RunFolderError(
            f"no supernet weights at {run.supernet_weights}; {run.missing_hint('supernet')}"
        )


# one writer of RUN_DIR/search/ (and tb/search) at a time, never through a symlink out of the run
@writes(lambda a: a["run"].inside(a["run"].search, "the search stage's files"))
def evolve(cfg: Config, run: RunFolder, *, resume: bool = False, progress: bool = True) -> Path:
    """Run (or resume) the NSGA-II search of ``run``; returns ``RUN_DIR/search/front.json``.

    Refuses to start without a teacher agent and supernet weights (RunFolderError naming the
    command to run), with supernet weights that do not match ``cfg.space`` (FormatError), and
    over an existing search unless ``resume`` (RunFolderError); ``resume`` with another
    config is refused too. Nothing under ``RUN_DIR/search/`` is written before those checks.
    """
    check_prerequisites(run)
    run.check(cfg)  # conflicts now; run.bind writes once the supernet and teacher passed
    if not resume:
        folder = run.search
        if holds_results(folder):  # a kill before the first state leaves only config.yaml
            raise RunFolderError(
                f"{folder} already holds a search run; pass --resume to continue it, "
                "or --out for a new run folder"
            )
    else:  # the config first: its state is read against it (search.max_flops)
        run.check_resume("search", cfg)
    # load (and check) the supernet and teacher before the stage folder is touched
    search = _Search(cfg, run, run.search, progress)
    try:  # its evaluator (a local Ray and its actors) is closed whatever is refused below
        # a resume's state, checked in full before bind_stage records a raised budget (a
        # damaged or foreign one is refused with nothing written)
        saved = load_state(run.search, search.state_spec()) if resume else None
        if saved is not None and not saved.sources:  # nothing to check the weights against
            raise RunFolderError(
                f"--resume: the search state in {run.search} records no digests of the "
                "supernet and teacher its records are of (written before 2026-12-06), so a "
                "change of either since it began cannot be seen, and records of other weights "
                f"would be ranked with these ones; search anew after deleting {run.search}, or "
                "into a new run folder (--out)"
            )
        if saved is not None:
            changed = [k for k, v in saved.sources.items() if search.sources.get(k) != v]
            if changed:  # records of other weights would be ranked with these ones
                raise RunFolderError(
                    f"--resume: the {' and the '.join(changed)} changed since the search in "
                    f"{run.search} began (a train-supernet or train-teacher --resume, an "
                    "import-teacher): its records are of the old weights; search anew after "
                    f"deleting {run.search}, or into a new run folder (--out)"
                )
        now = search.numerics()
        if saved is not None and None not in (saved.forward, now) and saved.forward != now:
            # paths that agree within float tolerance flip near-tied greedy actions
            raise RunFolderError(
                f"--resume: the search in {run.search} played its episodes with the population "
                f"forward {saved.forward}, and this one would use {now} (device "
                f"{cfg.device!r}): their logits agree only within float tolerance, so the "
                "search would not go on as it began; resume where it began (--device cpu for a "
                "-cpu forward; A2D_EVO_REFERENCE_OPS as it was), or search anew after "
                f"deleting {run.search}"
            )
        run.tb_dir("search")  # its TensorBoard logs: a link out of the run is refused unbound
        search.folder = run.bind_stage("search", cfg, resume)
        return search.run_search(saved)
    finally:
        close = getattr(search.evaluator, "close", None)
        if close is not None:
            close()
