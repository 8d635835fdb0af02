"""The teacher's agent folder: written with its own and the random policy's return, read back.

``RUN_DIR/teacher/agent/`` is an agent folder whose ``metrics.json`` also holds
``random_return_mean``: the uniform-random policy's return on the teacher's evaluation
seeds, which later stages use to normalise returns. :func:`save_teacher` writes it for a
trained or an imported teacher; :func:`load_teacher_for` reads it for a stage that distils,
checked against the env.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from a2d_evo.config import Config
from a2d_evo.envs import solved_threshold
from a2d_evo.errors import ArchError, ConfigError, TrainingError
from a2d_evo.evaluation.episodes import evaluate_agent, random_policy_return
from a2d_evo.evaluation.seeds import teacher_eval_seed
from a2d_evo.formats import weak_teacher_caution
from a2d_evo.nets.agent import Agent, check_fits_env
from a2d_evo.nets.agent_folder import load_agent, make_metrics, save_agent
from a2d_evo.nets.space import Arch, MLPArch, SearchSpace, arch_from_dict
from a2d_evo.progress import write
from a2d_evo.runs.folder import RunFolder
from a2d_evo.runs.locks import folder_lock
from a2d_evo.runs.teacher import weak_teacher_fix
from a2d_evo.stats import paired_lower95


def teacher_arch(cfg: Config) -> Arch:
    """``cfg.teacher.arch`` or the space's default teacher; a ``teacher.arch`` that is no arch
    is a ConfigError naming the key (``teacher.arch.convs[0].stride: ...``)."""
    if cfg.teacher.arch is not None:
        try:
            return arch_from_dict(cfg.teacher.arch)
        except ArchError as exc:
            text = str(exc)
            key = f"teacher.{text}" if text.startswith("arch") else f"teacher.arch: {text}"
            raise ConfigError(key) from None
    return SearchSpace(cfg.space).default_teacher()


def check_space_fits(cfg: Config, obs_shape: tuple[int, ...], n_actions: int) -> None:
    """ConfigError unless the search space fits the env (a CNN space needs image
    observations, an MLP one vectors). The teacher's stage is the run's first and records
    ``space``, which no later command may change: a teacher with a pinned ``teacher.arch``
    trained in a space that does not fit left a run no supernet could be trained in."""
    try:
        Agent(SearchSpace(cfg.space).smallest(), obs_shape, n_actions)
    except ArchError as exc:
        flat = (
            " (images are rank-3 uint8 or bool observations; any other observation, a float "
            "image too, is flattened to a vector)"
            if cfg.space.kind == "cnn" and len(obs_shape) == 1
            else ""
        )
        # images for a CNN space: the declared layers are what does not fit (conv layer i of
        # the message is space.conv[i]); else the kind of network
        what = (
            "space.conv (conv layer i below is space.conv[i])"
            if cfg.space.kind == "cnn" and len(obs_shape) == 3
            else f"space.kind {cfg.space.kind!r}"
        )
        raise ConfigError(
            f"{what} does not fit {cfg.env.id} ({exc}){flat}; the run "
            "records its space with this first stage and no later stage may change it: set "
            "space to one that fits the env"
        ) from None


def save_teacher(agent: Agent, cfg: Config, folder: Path, extra: Mapping[str, Any]) -> Path:
    """Evaluate ``agent`` greedily and write its folder.

    Over ``teacher.eval_episodes`` episodes when set, else ``eval.episodes`` (as every agent
    folder's ``metrics.json``). R_teacher is its own mean; R_random is the uniform-random policy
    on the same seeds, kept as ``random_return_mean`` so later stages can normalise returns.
    The R_teacher every normalised return of the search and the report uses is measured again
    on the front's re-scoring seeds (``search.final_episodes``), and the report says so.
    """
    episodes = cfg.teacher.eval_episodes or cfg.eval.episodes
    seed = teacher_eval_seed(cfg.seed)
    result = evaluate_agent(agent, cfg, episodes, seed, "greedy")
    rand = random_policy_return(cfg, episodes, seed)
    if result.mean <= rand.mean:  # normalised returns would be undefined or flip sign
        raise TrainingError(
            f"the teacher's greedy return ({result.mean:.2f}) does not beat the uniform-random "
            f"policy's ({rand.mean:.2f}) on the same {episodes} episodes: it has not learned "
            f"the task; {weak_teacher_fix(cfg, folder, extra)}"
        )
    margin = paired_lower95(result.returns, rand.returns)
    caution = weak_teacher_caution(margin)
    if caution is not None:  # refused only at or below random (above); this one is noise-thin
        write(f"teacher: {caution}")
    threshold = solved_threshold(cfg.env)
    if threshold is not None and result.mean < threshold:  # kept: it beats random
        write(
            f"teacher: its greedy return {result.mean:.2f} is below the reward threshold "
            f"{threshold:g} gymnasium registers for {cfg.env.id}: every normalised return is "
            "relative to this teacher, so students may score above 1; a larger "
            "teacher.total_steps or another --seed may give a stronger teacher"
        )
    metrics = make_metrics(
        agent,
        env_id=cfg.env.id,
        returns=result.returns,
        eval_mode="greedy",
        seeds=result.seeds,
        r_random=rand.mean,
        r_teacher=result.mean,
        extra={
            "random_return_mean": rand.mean,
            "random_return_std": rand.std,
            "teacher_return_mean": result.mean,
            "teacher_margin_lower95": margin,
            "env_reward_threshold": threshold,
            **extra,
        },
    )
    with folder_lock(folder):  # the agent folder too: `finetune`/`eval` may be writing it
        return save_agent(agent, folder, metrics=metrics)


def load_teacher_for(
    cfg: Config,
    teacher_dir: Path,
    obs_shape: tuple[int, ...],
    n_actions: int,
    *,
    obs_scale: float,
    given: bool = False,
    without: str = "for the vanilla (undistilled) supernet",
) -> Agent:
    """The teacher agent of ``teacher_dir``: TrainingError for a missing one, EnvError for
    one that does not fit the env (:func:`~a2d_evo.nets.agent.check_fits_env`).

    ``given``: the user named the folder (``--teacher``), so a missing agent is their path's
    fault, not a stage left to run; ``without``: what ``alpha = beta = 0`` does instead;
    ``obs_scale``: the env spec's input scale, which the teacher must multiply by too (every
    caller has the spec: a teacher is never loaded without this check)."""
    teacher_dir = Path(teacher_dir)
    if not (teacher_dir / "arch.json").is_file():
        if (teacher_dir / "teacher" / "agent" / "arch.json").is_file():
            raise TrainingError(
                f"--teacher {teacher_dir} is a run folder; its teacher agent is "
                f"{teacher_dir / 'teacher' / 'agent'}"
            )
        if given:
            raise TrainingError(
                f"--teacher {teacher_dir} is not an agent folder (no arch.json): pass a trained "
                "or imported agent, e.g. RUN_DIR/teacher/agent"
            )
        if (teacher_dir.parent / "checkpoint.pt").is_file():  # RUN_DIR/teacher/: no agent
            run = RunFolder(teacher_dir.parent.parent)
            raise TrainingError(
                f"the teacher in {teacher_dir.parent} has a checkpoint but no agent: its "
                "training was interrupted, or its agent was refused as no better than the "
                f"random policy; continue it with {run.resume_command('teacher')} (for the "
                "latter with a raised --set teacher.total_steps)"
            )
        raise TrainingError(
            f"no teacher agent at {teacher_dir}: run `a2d-evo train-teacher` (or import-teacher) "
            f"first, pass --teacher AGENT_DIR, or set distill.alpha=0 and distill.beta=0 {without}"
        )
    teacher = load_agent(teacher_dir)
    check_fits_env(teacher, cfg.env, obs_shape, n_actions, f"the teacher {teacher_dir}", obs_scale)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher.eval()


def check_teacher_fits(cfg: Config, arch: Arch, obs_shape: tuple[int, ...], n_actions: int) -> None:
    """ConfigError unless the teacher's arch fits the env, before ``train-teacher`` binds the
    run (an MLP ``teacher.arch`` on an image env used to be refused after ``config.yaml`` was
    written, blaming ``space.kind``, and the record then blocked the corrected command)."""
    if isinstance(arch, MLPArch) and len(obs_shape) == 3:
        raise ConfigError(
            f"teacher.arch: {arch} is an MLP, and {cfg.env.id} gives images {tuple(obs_shape)}: "
            "give teacher.arch a CNN (kind: cnn), or leave it out for the space's default"
        )
    try:
        with torch.device("meta"):  # the shapes only: no memory, no init
            Agent(arch, obs_shape, n_actions)
    except ArchError as exc:
        raise ConfigError(f"teacher.arch: {arch} does not fit {cfg.env.id}: {exc}") from None
