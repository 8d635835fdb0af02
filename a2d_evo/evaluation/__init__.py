"""Evaluation: agents and populations of subnets scored by their raw episodic return.

The stage's map, in the order the pipeline uses it:

* :mod:`~a2d_evo.evaluation.seeds` -- every rule that picks evaluation episode seeds
  (:func:`generation_seeds` for a search generation, :func:`halving_seeds` for the delivery's
  successive halving, :func:`final_seeds` for the front's re-scoring,
  :func:`teacher_eval_seed`, :func:`finetune_eval_seed`, :func:`fresh_eval_seed`);
* :mod:`~a2d_evo.evaluation.episodes` -- the episode loop (:func:`play_episodes`) and one
  agent's returns (:func:`evaluate_agent`, :func:`random_policy_return`,
  :func:`score_against_references`, against :class:`ReferenceReturns`), as :class:`EvalResult`;
* :mod:`~a2d_evo.evaluation.population` -- a whole population of subnets in one vector env
  with one batched forward per step (:class:`PopulationEvaluator`,
  :func:`evaluate_population`): what the search calls every generation;
* :mod:`~a2d_evo.evaluation.scoring` -- ``a2d-evo eval``: an agent folder on fresh seeds with
  a 95% interval (:func:`eval_agent_folder`).
"""

from a2d_evo.evaluation.episodes import (
    EvalResult,
    EvalTiming,
    ReferenceReturns,
    evaluate_agent,
    play_episodes,
    random_policy_return,
    score_against_references,
)
from a2d_evo.evaluation.population import PopulationEvaluator, evaluate_population
from a2d_evo.evaluation.scoring import eval_agent_folder
from a2d_evo.evaluation.seeds import final_seeds, generation_seeds, halving_seeds

__all__ = [
    "EvalResult",
    "EvalTiming",
    "PopulationEvaluator",
    "ReferenceReturns",
    "eval_agent_folder",
    "evaluate_agent",
    "evaluate_population",
    "final_seeds",
    "generation_seeds",
    "halving_seeds",
    "play_episodes",
    "random_policy_return",
    "score_against_references",
]
