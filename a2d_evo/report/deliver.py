"""Derive-then-distill: the front a run delivers (the last step of ``a2d-evo export``).

The search ranks subnets by their inherited weights, which were trained for the whole space
at once. One-shot NAS practice (DARTS, once-for-all, A2D) then trains the derived archs on
their own before shipping them. Here every exported front member trains on for
``finetune.steps`` env steps with PPO + A2D distillation from the run's teacher
(:func:`~a2d_evo.train.finetune_agent`, the same loss as the ``a2d`` baselines), scored
greedily on the front's final seeds before (inherited weights) and after; the fine-tuned weights
are kept only if they play at least as well on ``finetune.validation_episodes`` validation
seeds of their own (distillation pulls a member that plays better than the teacher back to the
teacher's level; the final seeds are never used to choose). With ``finetune.below_random``
the export fine-tunes that many of the search's below-random archs too (``front.json``'s
``below_random``, costliest first): not members, but the fine-tune can lift a small arch the
supernet left below random (on LunarLander a 2-unit MLP went from -456 to 26). The exported
agents that beat the uniform-random policy on the same validation seeds (a 0-FLOPs agent,
which dominates the others; when none does, the best one alone) and that no other such agent
dominates on (FLOPs down, validation return of the kept weights up) are the
delivered front: ``RUN_DIR/agents/delivered.json``; their final-seed figures are then an
unbiased score of the chosen members (choosing on the seeds that score them would favour the
luckiest members). Without a validation (``finetune.steps`` or
``finetune.validation_episodes`` 0) the members are chosen on the final seeds, and
``delivered.json`` says so (``chosen_on``).

Budget: each delivered agent had ``supernet.total_steps`` (shared with every subnet) plus
its own ``finetune.steps`` of training; the ``a2d`` and ``distill`` baselines get ``S + B``
each. Selection is not in that count: the search's, the race's and the validation's episodes
train nothing but choose (``finetune_validation.env_steps`` records the last).
Agent by agent: a member whose ``metrics.json`` already records this fine-tune (budget,
validation, settings, the final seeds: :func:`fine_tuned`) is not trained again, so an
interrupted ``export`` continues where it stopped.
``finetune.steps: 0`` delivers the inherited weights, and says so.

Nothing is played twice: the "before" figure of a member is the search's final re-scoring of
the same inherited weights on the same seeds (``front.json``, :func:`front_figure`), and
R_random and R_teacher are the front's normalisation, measured once on those seeds with the
same teacher (:func:`front_references`), each where the front records the supernet and teacher
that scored it and they are this run's (the export checks); each fine-tune plays its validation
episodes and the fine-tuned weights' final seeds only (none for weights the gate rejects).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from a2d_evo.config import Config
from a2d_evo.evaluation.episodes import (
    EvalResult,
    ReferenceReturns,
    make_result,
    random_policy_return,
)
from a2d_evo.evaluation.seeds import final_seeds, validation_seed
from a2d_evo.formats import (
    DELIVERED_FORMAT_VERSION,
    FINAL_SEEDS,
    INHERITED_KEYS,
    KEPT_FINE_TUNED,
    VALIDATION_SEEDS,
    check_metrics,
    kept_weights,
    non_dominated,
    validated,
)
from a2d_evo.runs.files import read_json, write_json
from a2d_evo.runs.folder import RunFolder
from a2d_evo.search.problem import above_random, beats_random
from a2d_evo.train.finetune import finetune_recipe
from a2d_evo.train.finetune_pool import FinetuneJob, run_finetunes

ROW_KEYS = ("flops", "return_mean", "normalised_return")
"""What an exported member's ``metrics.json`` must hold for its row of ``delivered.json``."""


def fine_tuned(metrics: dict[str, Any], cfg: Config) -> bool:
    """Whether an exported member's ``metrics.json`` records the fine-tune ``cfg`` asks for,
    scored as export scores: a budget of ``finetune.steps`` (``finetune_budget``;
    ``finetune_steps`` is what the loop ran: whole updates), the same validation
    (``finetune.validation_episodes``; 0: none), the same peak learning rate (``finetune_lr``)
    and settings (``finetune_recipe``; files from before either was recorded match any), and
    before and after on the front's final seeds (a standalone ``a2d-evo finetune`` scores on
    seeds of its own, which ``delivered.json`` would have reported as the final ones)."""
    val = metrics.get("finetune_validation")
    episodes = val.get("episodes") if isinstance(val, dict) else 0
    seeds = final_seeds(cfg.seed, cfg.search.final_episodes)
    before = metrics.get("before")
    recipe = finetune_recipe(cfg)
    return (
        metrics.get("finetune_budget") == cfg.finetune.steps
        and isinstance(metrics.get("inherited"), dict)
        and episodes == cfg.finetune.validation_episodes
        and metrics.get("finetune_lr", cfg.finetune_lr) == cfg.finetune_lr
        and metrics.get("finetune_recipe", recipe) == recipe
        and metrics.get("seeds") == seeds
        and isinstance(before, dict)
        and before.get("seeds") == seeds
    )


def front_references(
    data: dict[str, Any], cfg: Config, same_teacher: bool
) -> ReferenceReturns | None:
    """R_random and R_teacher of a front's normalisation (``data``: its ``front.json``), when
    they were played greedily on this config's final seeds with the teacher the fine-tunes
    distil from (``same_teacher``); None otherwise, and each fine-tune measures its own."""
    norm = data.get("normalisation")
    if not same_teacher or not isinstance(norm, dict) or norm.get("eval_mode") != "greedy":
        return None
    if norm.get("seeds") != final_seeds(cfg.seed, cfg.search.final_episodes):
        return None
    r_random, r_teacher = norm.get("r_random"), norm.get("r_teacher")
    if not isinstance(r_random, (int, float)) or not isinstance(r_teacher, (int, float)):
        return None
    return ReferenceReturns(float(r_random), float(r_teacher))


def front_figure(metrics: dict[str, Any], seeds: list[int]) -> EvalResult | None:
    """The greedy result on ``seeds`` that a member extracted from the front carries (the
    search's final re-scoring of the same inherited weights); None for a folder fine-tuned
    since, or one without its per-episode returns on exactly these seeds."""
    returns = metrics.get("episode_returns")
    if (
        metrics.get("source") != "front"
        or "finetune_budget" in metrics
        or metrics.get("eval_mode") != "greedy"
        or metrics.get("seeds") != seeds
        or not isinstance(returns, list)
        or len(returns) != len(seeds)
    ):
        return None
    return make_result(returns, seeds)


def finetune_members(
    cfg: Config,
    run: RunFolder,
    folders: Sequence[Path],
    progress: bool = True,
    references: ReferenceReturns | None = None,
    front_scored: bool = False,
) -> list[dict[str, Any]]:
    """Fine-tune every exported member in ``folders`` for ``cfg.finetune.steps`` (unless its
    ``metrics.json`` records that fine-tune already; ``cfg.finetune.workers`` side by side,
    :func:`~a2d_evo.train.finetune_pool.run_finetunes`); one summary row per member, in the
    order of ``folders``.
    ``references``: the front's R_random and R_teacher on the final seeds
    (:func:`front_references`; None: each fine-tune plays them). ``front_scored``: the front
    was scored with the supernet the members were extracted from, so a member's front figure
    is its ``before`` (:func:`front_figure`; False: each fine-tune plays it)."""
    steps, val_episodes = cfg.finetune.steps, cfg.finetune.validation_episodes
    seeds = final_seeds(cfg.seed, cfg.search.final_episodes)
    if steps == 0 and progress:
        print("finetune.steps is 0: the exported agents keep their inherited weights")
    found = [read_json(folder / "metrics.json", "metrics") for folder in folders]
    for folder, metrics in zip(folders, found, strict=True):  # a kept one is used as it is
        check_metrics(metrics, str(folder / "metrics.json"), ROW_KEYS)
    todo = [i for i, metrics in enumerate(found) if steps and not fine_tuned(metrics, cfg)]
    for i, folder in enumerate(folders):
        if steps and progress and i not in todo:
            print(f"{folder.name}: already fine-tuned for {steps:,} steps, kept")
    jobs = [
        FinetuneJob(
            folders[i],
            steps,
            run.teacher_agent,
            eval_seed=seeds[0],
            eval_episodes=len(seeds),
            validation_episodes=val_episodes,
            before=front_figure(found[i], seeds) if front_scored else None,
            references=references,
        )
        for i in todo
    ]

    def done(j: int, summary: dict[str, Any]) -> None:
        metrics = found[todo[j]] = summary["metrics"]
        if progress and val_episodes:
            val = metrics["finetune_validation"]
            print(
                f"{folders[todo[j]].name}: validation ({val_episodes} episodes) "
                f"{val['before']:.2f} inherited, {val['after']:.2f} fine-tuned: kept the "
                f"{val['kept']} weights"
            )

    run_finetunes(cfg, jobs, done, progress)
    rows = []
    for folder, metrics in zip(folders, found, strict=True):
        inherited = metrics.get("inherited") or {k: metrics.get(k) for k in INHERITED_KEYS}
        kept = kept_weights(metrics)
        val = metrics.get("finetune_validation")
        validation = None
        if isinstance(val, dict) and steps:  # the figure of the side the gate kept
            validation = val.get("after" if val.get("kept") == KEPT_FINE_TUNED else "before")
        rows.append(
            {
                "agent": folder.name,
                "flops": metrics["flops"],
                "return_mean": metrics["return_mean"],
                "return_std": metrics.get("return_std"),
                "normalised_return": metrics["normalised_return"],
                "episodes": metrics.get("episodes"),
                "inherited_return_mean": inherited.get("return_mean"),
                "inherited_normalised_return": inherited.get("normalised_return"),
                "finetune_steps": metrics.get("finetune_steps", 0),
                "kept": kept,
                "validation_return_mean": validation,
            }
        )
    return rows


def write_delivered(
    cfg: Config,
    run: RunFolder,
    rows: Sequence[dict[str, Any]],
    front_sha: str | None,
    chosen_on: str | None = None,
    progress: bool = True,
    command: dict[str, Any] | None = None,
) -> Path:
    """The members of ``rows`` no other dominates, to ``RUN_DIR/agents/delivered.json``:
    on the validation seeds when every row has a validation figure, else on the final
    seeds (module docstring). ``front_sha``: the digest of the ``front.json`` they were
    exported from (:func:`~a2d_evo.report.front_export.export_sources`), recorded so that a later
    front makes this file stale. ``chosen_on``: :data:`FINAL_SEEDS` when the rows were
    already filtered on their final-seed figures (``export --min-return``), which
    ``delivered.json`` then records whatever the validation seeds chose after. ``command``:
    the export options that made it (:func:`~a2d_evo.report.front_export.export_options`) and when,
    for the report's Reproduce lines."""
    on_validation = validated(list(rows))
    key = "validation_return_mean" if on_validation else "normalised_return"
    # the uniform-random policy on the same seeds: a 0-FLOPs agent, which dominates every row
    # that does not beat it (a below-random arch the fine-tune did not lift, above all)
    r_random = (
        random_policy_return(cfg, cfg.finetune.validation_episodes, validation_seed(cfg.seed)).mean
        if on_validation
        else 0.0  # normalised: R_random on the final seeds is 0
    )
    values = [r[key] for r in rows]
    above, _ = beats_random(values, r_random)  # the best alone when none beats random
    beaten = above_random(values, r_random)
    keep = [above[j] for j in non_dominated([(rows[i]["flops"], rows[i][key]) for i in above])]
    path = run.agents / "delivered.json"
    write_json(
        path,
        {
            "format_version": DELIVERED_FORMAT_VERSION,
            "finetune_steps": cfg.finetune.steps,
            "finetune_validation_episodes": cfg.finetune.validation_episodes,
            "supernet_steps": (run.stage_config("supernet") or cfg).supernet.total_steps,
            "seeds": final_seeds(cfg.seed, cfg.search.final_episodes),
            "chosen_on": VALIDATION_SEEDS if on_validation and chosen_on is None else FINAL_SEEDS,
            "front_sha256": front_sha,  # a later front makes this file stale
            "members": [rows[i]["agent"] for i in keep],
            # what they were chosen against: on the validation seeds, or normalised (0)
            "random_return": r_random,
            "not_above_random": [r["agent"] for i, r in enumerate(rows) if i not in beaten],
            # then the one member is the best of agents none of which beat random
            "none_above_random": not beaten,
            "exported": list(rows),
            **({"export_command": command} if command is not None else {}),
        },
    )
    if progress:
        for i in keep:
            r = rows[i]
            print(
                f"delivered {r['agent']}: FLOPs {r['flops']:,}  return {r['return_mean']:.2f}  "
                f"(inherited {r['inherited_return_mean']:.2f})"
            )
    return path
