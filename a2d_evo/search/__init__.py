"""Search: NSGA-II over the supernet's subnets, ``RUN_DIR/search/`` and its ``front.json``.

The stage's map, from the entry point down:

* :mod:`~a2d_evo.search.evolution` -- :func:`evolve` (``a2d-evo evolve``): checks the run folder,
  measures the normalisation, drives NSGA-II by ask and tell, one generation at a time, stops on
  ``search.gens`` or ``search.budget_steps``, and resumes a killed run bit for bit;
* :mod:`~a2d_evo.search.generation` -- one generation (:func:`play_generation`: offspring and
  re-scored survivors in one evaluator call), topped up with archs never evaluated where
  mating made none (:func:`~a2d_evo.search.generation.topped_up`);
* :mod:`~a2d_evo.search.budget` -- ``search.budget_steps``: when the search stops
  (:func:`budget_spent`) and which episodes count (:func:`within_budget`, a per-episode cut);
* :mod:`~a2d_evo.search.problem` -- :class:`SubnetProblem`, the search as a pymoo problem
  (encodings -> ``(-normalised return, FLOPs)``, per-arch records of every episode, each
  generation's episode seeds passed with the evaluation), and the front and hypervolume
  (log10 FLOPs) helpers;
* :mod:`~a2d_evo.search.estimates` -- ``search.estimate``: what the search ranks an arch on
  (the plain mean of its episodes, that mean less seed effects measured on fixed anchor
  archs, or those shrunk toward a ridge prediction from the genes), a pure function of the
  archive's records;
* :mod:`~a2d_evo.search.nsga` -- stock NSGA-II for a search space (:func:`make_algorithm`)
  and its state as plain arrays (:func:`population_arrays`, :func:`restore_algorithm`);
* :mod:`~a2d_evo.search.state` -- ``state.json`` / ``state.npz`` / ``history.csv`` /
  ``hypervolume.csv``, written after every generation (:func:`save_state`);
* :mod:`~a2d_evo.search.saved_state` -- a saved state read back, every value checked before
  the search computes with it (:func:`load_state`);
* :mod:`~a2d_evo.search.front` -- the delivery of any method's archive: top fronts raced by
  successive halving, then re-scored on fresh seeds, written to ``front.json``
  (:func:`write_front`, :func:`successive_halving`, :func:`rescore`).

``docs/search.md`` states the rules and their costs.

Candidates are scored by :mod:`a2d_evo.evaluation.population` (or its Ray twin,
:mod:`a2d_evo.scale.ray_population`).
"""

from a2d_evo.search.budget import Cut, budget_spent, within_budget
from a2d_evo.search.evolution import check_prerequisites, evolve
from a2d_evo.search.front import (
    SearchSummary,
    candidates,
    reference_returns,
    rescore,
    successive_halving,
    write_front,
)
from a2d_evo.search.generation import play_generation
from a2d_evo.search.nsga import make_algorithm, population_arrays, restore_algorithm
from a2d_evo.search.problem import (
    SubnetProblem,
    beats_random,
    front_indices,
    hypervolume,
    reference_point,
)
from a2d_evo.search.saved_state import SavedSearch, load_state
from a2d_evo.search.state import save_state

__all__ = [
    "Cut",
    "SavedSearch",
    "SearchSummary",
    "SubnetProblem",
    "beats_random",
    "budget_spent",
    "candidates",
    "check_prerequisites",
    "evolve",
    "front_indices",
    "hypervolume",
    "load_state",
    "make_algorithm",
    "play_generation",
    "population_arrays",
    "reference_point",
    "reference_returns",
    "rescore",
    "restore_algorithm",
    "save_state",
    "successive_halving",
    "within_budget",
    "write_front",
]
