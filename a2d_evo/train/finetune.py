"""Fine-tuning one agent folder with PPO + A2D distillation (``a2d-evo finetune``).

An agent extracted from the supernet (or any agent folder of the run) trains on for a few
env steps as a static :class:`~a2d_evo.train.learners.AgentLearner`, distilled from the
run's teacher unless ``alpha = beta = 0``. It is scored greedily on the same seeds before
and after; both scores land in its ``metrics.json`` and the new weights replace its
``policy.pt``. With ``validation_episodes``, the new weights are kept only if they score at
least as well as the old ones on validation seeds of their own (not the scoring seeds), played
before and after; otherwise the old weights stay, and ``metrics.json`` says which were kept.
No checkpoints: a fine-tuning run is short and starts over if stopped. Fine-tuning a folder
again adds to the budget it records (``finetune_budget``, ``finetune_steps``).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from a2d_evo.config import Config, replace
from a2d_evo.config.compare import recipe_digest, training_sets
from a2d_evo.envs import env_spec, make_vec_env
from a2d_evo.errors import ConfigError, TrainingError
from a2d_evo.evaluation.episodes import (
    EvalResult,
    ReferenceReturns,
    evaluate_agent,
    resolve_device,
    score_against_references,
)
from a2d_evo.evaluation.seeds import finetune_eval_seed, validation_seed
from a2d_evo.formats import KEPT_FINE_TUNED, KEPT_INHERITED, kept_weights, recorded_count
from a2d_evo.nets.agent import check_fits_env
from a2d_evo.nets.agent_folder import load_agent, save_agent
from a2d_evo.runs.files import read_json
from a2d_evo.runs.folder import enclosing_run
from a2d_evo.runs.locks import writes
from a2d_evo.runs.teacher import run_teacher, teacher_fix
from a2d_evo.train.learners import AgentLearner
from a2d_evo.train.loop import LoopOptions, run_ppo
from a2d_evo.train.streams import Streams, set_threads
from a2d_evo.train.teacher_folder import load_teacher_for


# one writer of the agent folder at a time; a missing folder is load_agent's error to report
@writes(lambda a: Path(a["agent_dir"]), create=False)
def finetune_agent(
    agent_dir: Path,
    cfg: Config,
    *,
    steps: int,
    teacher_dir: Path | None,
    progress: bool = True,
    eval_seed: int | None = None,
    eval_episodes: int | None = None,
    validation_episodes: int | None = None,
    before: EvalResult | None = None,
    references: ReferenceReturns | None = None,
) -> dict[str, Any]:
    """Continue training an agent folder with PPO + distillation for ``steps`` env steps.

    The agent is scored greedily on the same ``eval_episodes`` seeds from ``eval_seed``
    (default ``cfg.eval.episodes`` from :func:`finetune_eval_seed`) before and after;
    both land in its ``metrics.json`` (``before``/``after``; the contract keys describe the
    fine-tuned weights, which replace ``policy.pt``; when the validation gate keeps the old
    weights, their figures stay as they were) and are returned. ``teacher_dir``
    defaults to the teacher of the run folder the agent lives in; it is needed for the
    distillation and for the normalised return. ``validation_episodes`` > 0 gates the new
    weights on :func:`~a2d_evo.evaluation.seeds.validation_seed` episodes (module docstring);
    ``None`` (the default) takes ``cfg.finetune.validation_episodes``, as the command and the
    export do, and 0 turns the gate off.

    Figures the caller already holds on exactly the scoring seeds are not played again (an
    export passes its front's, measured by the search's final re-scoring): ``before``, the
    folder's current weights' greedy result; ``references``, R_random and R_teacher of the
    teacher it distils from. None (the default) plays them here.
    """
    if steps < 1:  # a config error, as on the command line (0 is "keep the inherited weights")
        raise ConfigError(f"finetune: steps must be >= 1, got {steps}")
    agent_dir = Path(agent_dir)
    agent = load_agent(agent_dir)
    spec = env_spec(cfg.env)
    check_fits_env(agent, cfg.env, spec.obs_shape, spec.n_actions, str(agent_dir), spec.obs_scale)
    given = teacher_dir is not None
    teacher_dir = run_teacher(agent_dir) if teacher_dir is None else Path(teacher_dir)
    run = enclosing_run(agent_dir)
    if run is not None and run.teacher_agent.resolve() == agent_dir.resolve():
        # whichever teacher it would distil from: the supernet, the search and export were
        # made from its weights, and its metrics.json is the run's R_teacher row
        raise TrainingError(
            f"finetune: {agent_dir} is the teacher of the run {run.root}; a teacher is not "
            "fine-tuned (the run's supernet, search and agents were made from it): "
            f"{teacher_fix(cfg, agent_dir)}"
        )
    if teacher_dir is not None and teacher_dir.resolve() == agent_dir.resolve():
        # distilling from itself would train nothing
        raise TrainingError(
            f"finetune: {agent_dir} is the teacher it would distil from; a teacher is not "
            f"fine-tuned: {teacher_fix(cfg, teacher_dir)}"
        )
    if teacher_dir is None:
        raise TrainingError(
            f"finetune: no teacher found for {agent_dir} (it is not inside a run folder with "
            "teacher/agent); pass --teacher AGENT_DIR"
        )
    teacher = load_teacher_for(
        cfg, teacher_dir, spec.obs_shape, spec.n_actions, given=given,
        without="to fine-tune with plain PPO", obs_scale=spec.obs_scale,
    )  # fmt: skip
    set_threads(cfg)
    device = resolve_device(cfg.device)
    if validation_episodes is None:
        validation_episodes = cfg.finetune.validation_episodes
    episodes = cfg.eval.episodes if eval_episodes is None else eval_episodes
    seed = finetune_eval_seed(cfg.seed) if eval_seed is None else eval_seed
    if before is None:
        before = evaluate_agent(agent, cfg, episodes, seed, "greedy")
    elif before.seeds != list(range(seed, seed + episodes)):
        raise TrainingError(
            f"finetune: the given before figure is on {before.episodes} seeds from "
            f"{before.seeds[0] if before.seeds else None}, not the {episodes} scoring seeds from "
            f"{seed}"
        )
    vseed = validation_seed(cfg.seed)
    val_before = (
        evaluate_agent(agent, cfg, validation_episodes, vseed, "greedy")
        if validation_episodes
        else None
    )
    inherited = copy.deepcopy(agent.state_dict()) if val_before is not None else None

    streams = Streams(cfg.seed, "finetune")
    agent.to(device).train()
    tune_cfg = _finetune_ppo(cfg)
    learner = AgentLearner(agent, tune_cfg, None if cfg.distill.vanilla else teacher.to(device))
    envs = make_vec_env(cfg.env, cfg.ppo.num_envs, seed=cfg.seed, training=True)
    opts = LoopOptions(
        stage="finetune",
        total_steps=steps,
        checkpoint=None,
        tb_dir=None,
        checkpoint_every=cfg.supernet.checkpoint_every,
        progress=progress,
    )
    try:
        result = run_ppo(
            learner, tune_cfg, envs, spec.obs_shape, spec.obs_dtype, streams, opts, device
        )
    finally:
        envs.close()
    agent = agent.cpu().eval()
    teacher = teacher.cpu()
    old_path = agent_dir / "metrics.json"
    old = read_json(old_path, "metrics") if old_path.is_file() else {}
    old = old if isinstance(old, dict) else {}
    validation: dict[str, Any] | None = None
    if val_before is not None and inherited is not None:
        val_after = evaluate_agent(agent, cfg, validation_episodes, vseed, "greedy")
        kept = KEPT_FINE_TUNED if val_after.mean >= val_before.mean else KEPT_INHERITED
        if kept == KEPT_INHERITED:
            agent.load_state_dict(inherited)
        validation = {
            "episodes": validation_episodes, "first_seed": vseed, "kept": kept,
            "before": val_before.mean, "after": val_after.mean,
            "env_steps": _steps(val_before) + _steps(val_after),
            # what the weights it started from were: a rejected second fine-tune ships the
            # first one's weights, not inherited ones (formats.kept_weights reads it)
            "started_from": kept_weights(old) if old else KEPT_INHERITED,
        }  # fmt: skip
    # weights the validation gate kept keep their figures (on the seeds they were scored on:
    # an exported member's final seeds, which a delivery listing it recorded)
    same = validation is not None and validation["kept"] == KEPT_INHERITED and old.get("seeds")
    metrics: dict[str, Any] = {}
    if same:  # the very weights that made `before`, on its seeds: not played again
        after = before
    else:
        after, metrics = score_against_references(
            agent, teacher, cfg, episodes, seed, references=references
        )

    def summary(res: Any) -> dict[str, Any]:
        return {"return_mean": res.mean, "return_std": res.std, "episodes": res.episodes,
                "seeds": res.seeds}  # fmt: skip

    info = {
        "before": summary(before),
        "after": summary(after),
        # a second fine-tune adds to the first: an export resumed on this folder then sees a
        # budget that is not its own and starts over from the inherited weights
        "finetune_budget": recorded_count(old.get("finetune_budget")) + steps,
        "finetune_steps": recorded_count(old.get("finetune_steps")) + result.global_step,
        "finetune_lr": tune_cfg.ppo.lr,
        "finetune_recipe": finetune_recipe(cfg),
        # the --set flags over the run's config.yaml (what `a2d-evo finetune` reads) that give
        # these settings: the report's Reproduce line repeats them for a fine-tune by hand
        "finetune_sets": [] if run is None else training_sets(run.load_config(), cfg),
        "finetune_wall_s": round(result.wall_s, 2),
        # torch's intra-op threads: not in the recipe (how it runs), but bit-for-bit repeats
        # of a fine-tune hold at the same count only (reductions split by thread)
        "finetune_torch_threads": torch.get_num_threads(),
        "finetune_distilled": not cfg.distill.vanilla,
        "finetune_value_unit": learner.sigma,  # this fine-tune's own sigma (None: undistilled)
        "finetune_validation": validation,
    }
    merged = {**old, **info} if same else {**old, **metrics, **info}
    save_agent(agent, agent_dir, metrics=merged)
    return {**info, "metrics": merged}


def finetune_recipe(cfg: Config) -> str:
    """SHA-256 of the settings a fine-tune trains with: the env, ``ppo`` (at the fine-tune's
    learning rate), ``distill`` and ``finetune`` (not the env's backend or workers: how it is
    stepped; :func:`~a2d_evo.config.compare.recipe_digest`). An export resumed agent by agent keeps
    a member only when its ``metrics.json`` records this recipe (an export with another
    ``distill.alpha`` kept members fine-tuned with the first one)."""
    return recipe_digest(_finetune_ppo(cfg), ("env", "ppo", "distill", "finetune"))


def _finetune_ppo(cfg: Config) -> Config:
    """``cfg`` with ``ppo.lr`` set to :attr:`~a2d_evo.config.Config.finetune_lr` and
    ``distill`` to :attr:`~a2d_evo.config.Config.finetune_distill`: the settings a fine-tune
    trains with."""
    return replace(cfg, ppo=replace(cfg.ppo, lr=cfg.finetune_lr), distill=cfg.finetune_distill)


def _steps(res: EvalResult) -> int:
    """Env steps an evaluation played (0 where it did not count them)."""
    return 0 if res.lengths is None else int(res.lengths.sum())
