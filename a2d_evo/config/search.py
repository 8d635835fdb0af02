"""The ``search`` section: NSGA-II's population and budget, how candidates are scored and
re-scored (noise-aware), the delivery of the front, and the Ray scale-out settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from a2d_evo.config.bounds import (
    MAX_ANCHORS,
    MAX_EVAL_SLOTS,
    MAX_GENS,
    MAX_POP,
    MAX_TIMEOUT_S,
    MAX_WORKERS,
    check_bounds,
    check_min,
    check_positive,
    check_range,
)
from a2d_evo.errors import ConfigError

BudgetCut = Literal["replays_first", "new_first"]
"""How ``search.budget_cut`` orders a generation's episodes for the per-episode budget cut."""


@dataclass(frozen=True)
class SearchConfig:
    """NSGA-II over subnet encodings: normalised return up, FLOPs down."""

    pop: int = 64
    """Population size (4 to 4096)."""
    gens: int = 20
    """Generations (at most 100000)."""
    episodes: int = 5
    """Episodes per candidate during the search (common random numbers per generation).
    A generation plays its offspring, the survivors that replay and any anchors in one
    evaluator call: ``(2 * pop + anchors) * episodes`` slots at most, which may not pass 65536
    (:data:`MAX_EVAL_SLOTS`; ``pop`` once without ``reevaluate``, no anchors with the mean)."""
    final_episodes: int = 30
    """Episodes per front member when the final front is re-scored on fresh seeds (at most
    65536)."""
    candidates: int | None = None
    """Archs the delivery starts its successive halving from: the archive's best whole fronts
    until at least this many (None: ``pop``). Fixing it lets methods with different
    population sizes be delivered the same way (``docs/search.md``, Delivery)."""
    max_flops: float | None = None
    """Optional FLOPs ceiling, as a constraint."""
    max_episode_steps: int | None = None
    """Cap on episode length during the search (None: the env's own): it only shortens them,
    never beyond ``env.max_episode_steps`` or the env's own limit (the registered one; on ALE
    ids v5's 108,000 frames over ``env.frame_skip``). A capped episode
    counts as one episode with the return it reached; R_random and R_teacher of the search's
    normalisation play under the same cap. The halving and the final re-scoring play whole
    episodes."""
    budget_steps: int | None = None
    """Optional stop in env steps (episode lengths summed over every candidate episode): no
    generation starts once this many are spent (``gens`` still caps). At least ``pop *
    episodes`` (``(pop + anchors) * episodes`` with an ``estimate`` other than ``mean``): a
    step for each slot the first generation may open, a bound rather than its cost, which
    duplicates, the ceiling and anchors the population drew can lower (``docs/search.md``)."""
    budget_cut: BudgetCut = "replays_first"
    """With ``budget_steps``: the order the per-episode cut puts a generation's episodes in
    (after its anchors), so what the generation that crosses the budget keeps.
    ``replays_first`` (the default: the cut before the key): archs in the order they were
    first evaluated, so survivors' replays before the generation's new offspring, which are
    dropped first; ``new_first``: the archs first evaluated in that generation before the
    replays, so the search keeps archs it has not seen rather than more episodes of those it
    has (``docs/search.md``)."""
    reevaluate: bool = True
    """Survivors play every generation's seeds with their offspring; objectives are the mean
    over every episode an arch played. False: an arch's first estimate is kept for good."""
    max_arch_episodes: int | None = None
    """With ``reevaluate``: archs holding this many episodes are not played again (None: no
    cap). At least ``episodes``. An arch plays whole generations, so a cap that is not a
    multiple of ``episodes`` is passed (3 a generation and a cap of 4: 6)."""
    estimate: Literal["mean", "seed_adjusted", "shrunk"] = "mean"
    """What NSGA-II ranks an arch's return on: ``mean`` (over its episodes),
    ``seed_adjusted`` (the mean of ``return - seed effect``, the seed effects measured on the
    ``anchors``) or ``shrunk`` (that, shrunk toward a ridge prediction from the genes:
    empirical Bayes); ``docs/search.md``."""
    anchors: int = 4
    """With ``estimate`` other than ``mean``: fixed archs, spread over the space's FLOPs, that
    play every generation's seeds so that the seed effects are measured on archs nobody
    selected (1 to :data:`MAX_ANCHORS`; their episodes count in the budget). Unused with
    ``mean``. Each seed effect holds the anchors' noise (variance ``sigma^2 / anchors``): few
    anchors add noise to every adjusted episode (``docs/search.md``)."""
    reevaluate_ranks: int | None = None
    """With ``reevaluate``: only the survivors in NSGA-II's first this-many non-dominated
    fronts (ranks ``0 .. N-1``) replay each generation; the others keep their estimates until
    they reach such a front (None: every survivor replays). 1 leaves more of the budget to new
    archs but lets lucky draws off the front stand (measured worse: ``docs/search.md``)."""
    init: Literal["uniform", "strata"] = "uniform"
    """The first population: ``uniform`` (every gene uniform) or ``strata`` (the supernet's
    eight log10-FLOPs strata taking turns, an arch uniformly inside each, all distinct)."""
    crossover_prob: float = 0.9
    """SBX crossover probability."""
    crossover_eta: float = 15.0
    """SBX distribution index."""
    mutation: Literal["polynomial", "reset"] = "polynomial"
    """``polynomial``: pymoo's PM on the genes, rounded; ``reset``: each mutated gene redrawn
    among its other values (``docs/search.md``)."""
    crowding: Literal["flops", "log_flops"] = "flops"
    """What NSGA-II's crowding distance (the survival's tie-break within a front, and the
    tournament's) measures the FLOPs objective on: ``flops`` as it is (pymoo's own), or
    ``log_flops`` on log10 FLOPs, the axis the hypervolume is taken on, so that every decade
    of cost counts alike (``docs/search.md``). Dominance is the same either way."""
    mutation_prob: float | None = None
    """Per-gene mutation probability (None: ``1 / n_var``)."""
    mutation_eta: float = 20.0
    """Polynomial mutation distribution index."""
    backend: Literal["local", "ray"] = "local"
    """Population evaluation backend."""
    ray_address: str | None = None
    """Ray cluster address (``auto``, ``host:port`` or ``ray://host:port``); None starts a
    local Ray."""
    ray_actors: int = 2
    """Ray evaluation actors (at most 1024)."""
    ray_cpus_per_actor: float = 1.0
    """CPUs per Ray actor."""
    ray_gpus_per_actor: float = 0.0
    """GPUs per Ray actor (fractions allowed)."""
    ray_share_timeout_s: float | None = 1800.0
    """Seconds a Ray actor may spend on a generation-sized share (``ceil(pop / ray_actors)``
    candidates x ``episodes``) before it counts as hung, in proportion for larger shares (the
    front's re-scoring) and for whole episodes where the generations' are capped
    (``max_episode_steps``): it is killed and replaced and the share re-runs, as for a dead
    actor (None: no limit)."""

    @property
    def delivery_candidates(self) -> int:
        """``candidates``, or ``pop`` when unset."""
        return self.pop if self.candidates is None else self.candidates

    def __post_init__(self) -> None:
        check_bounds("search.pop", self.pop, 4, MAX_POP)
        check_bounds("search.gens", self.gens, 1, MAX_GENS)
        check_bounds("search.episodes", self.episodes, 1, MAX_EVAL_SLOTS)
        n_archs = self.pop * (2 if self.reevaluate else 1) + (
            self.anchors if self.estimate != "mean" else 0
        )  # offspring, the survivors that replay, the anchors: one evaluator call
        if n_archs * self.episodes > MAX_EVAL_SLOTS:
            played = "offspring" + (" and the survivors that replay" if self.reevaluate else "")
            played += " and the anchors" if self.estimate != "mean" else ""
            raise ConfigError(
                f"search.pop * search.episodes: at most {MAX_EVAL_SLOTS} env slots per "
                f"generation, got {n_archs} archs ({played}) * {self.episodes} episodes; lower "
                "search.pop or search.episodes"
            )
        check_bounds("search.final_episodes", self.final_episodes, 1, MAX_EVAL_SLOTS)
        if self.candidates is not None:
            check_bounds("search.candidates", self.candidates, 1, MAX_POP)
            if self.candidates * self.episodes > MAX_EVAL_SLOTS:
                raise ConfigError(
                    f"search.candidates * search.episodes: at most {MAX_EVAL_SLOTS} env slots "
                    f"per halving round, got {self.candidates} * {self.episodes}"
                )
        check_bounds("search.anchors", self.anchors, 1, MAX_ANCHORS)
        if self.max_flops is not None:
            check_positive("search.max_flops", self.max_flops)
        if self.max_episode_steps is not None:
            check_bounds("search.max_episode_steps", self.max_episode_steps, 1, 10**9)
        first = self.pop + (self.anchors if self.estimate != "mean" else 0)
        if self.budget_steps is not None and self.budget_steps < first * self.episodes:
            archs = "(search.pop + search.anchors)" if first > self.pop else "search.pop"
            raise ConfigError(
                f"search.budget_steps: {self.budget_steps} is below one generation's cost: the "
                f"first generation plays {archs} * search.episodes = {first} * "
                f"{self.episodes} episodes of at least one step each; raise it to at least "
                f"{first * self.episodes}"
            )
        if self.budget_steps is not None:
            check_bounds("search.budget_steps", self.budget_steps, 1, 10**15)
        if self.max_arch_episodes is not None:
            check_bounds("search.max_arch_episodes", self.max_arch_episodes, self.episodes, 10**9)
        if self.reevaluate_ranks is not None:
            check_bounds("search.reevaluate_ranks", self.reevaluate_ranks, 1, MAX_POP)
        check_range("search.crossover_prob", self.crossover_prob, 0.0, 1.0)
        check_positive("search.crossover_eta", self.crossover_eta)
        check_positive("search.mutation_eta", self.mutation_eta)
        if self.mutation_prob is not None:
            check_range("search.mutation_prob", self.mutation_prob, 0.0, 1.0)
            check_positive("search.mutation_prob", self.mutation_prob)
        check_bounds("search.ray_actors", self.ray_actors, 1, MAX_WORKERS)
        check_positive("search.ray_cpus_per_actor", self.ray_cpus_per_actor)
        check_min("search.ray_gpus_per_actor", self.ray_gpus_per_actor, 0.0)
        if self.ray_share_timeout_s is not None:
            check_positive("search.ray_share_timeout_s", self.ray_share_timeout_s)
            check_range("search.ray_share_timeout_s", self.ray_share_timeout_s, 0.0, MAX_TIMEOUT_S)
