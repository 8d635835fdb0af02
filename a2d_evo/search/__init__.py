"""Search: NSGA-II over the supernet's subnets, ``RUN_DIR/search/`` and its ``front.json``.

The stage's map, from the entry point down:

* :mod:`~a2d_evo.search.evolution` -- :func:`evolve` (``a2d-evo evolve``): checks the run folder,
  measures the normalisation, drives NSGA-II by ask and tell, one generation at a time, and
  resumes a killed run bit for bit;
* :mod:`~a2d_evo.search.problem` -- :class:`SubnetProblem`, the search as a pymoo problem
  (encodings -> ``(-normalised return, FLOPs)``, cached, each generation's episode seeds
  passed with the evaluation), and the front and hypervolume helpers;
* :mod:`~a2d_evo.search.nsga` -- stock NSGA-II for a search space (:func:`make_algorithm`)
  and its state as plain arrays (:func:`population_arrays`, :func:`restore_algorithm`);
* :mod:`~a2d_evo.search.state` -- ``state.json`` / ``state.npz`` / ``history.csv`` /
  ``hypervolume.csv`` (:func:`save_state`, :func:`load_state`);
* :mod:`~a2d_evo.search.front` -- the final population's front re-scored on fresh seeds,
  written to ``front.json`` (:func:`write_front`, :func:`rescore`).

Candidates are scored by :mod:`a2d_evo.evaluation.population` (or its Ray twin,
:mod:`a2d_evo.scale.ray_population`).
"""

from a2d_evo.search.evolution import check_prerequisites, evolve
from a2d_evo.search.front import reference_returns, rescore, write_front
from a2d_evo.search.nsga import make_algorithm, population_arrays, restore_algorithm
from a2d_evo.search.problem import (
    SubnetProblem,
    delivered_front,
    front_indices,
    hypervolume,
    reference_point,
)
from a2d_evo.search.state import SavedSearch, load_state, save_state

__all__ = [
    "SavedSearch",
    "SubnetProblem",
    "check_prerequisites",
    "delivered_front",
    "evolve",
    "front_indices",
    "hypervolume",
    "load_state",
    "make_algorithm",
    "population_arrays",
    "reference_point",
    "reference_returns",
    "rescore",
    "restore_algorithm",
    "save_state",
    "write_front",
]
