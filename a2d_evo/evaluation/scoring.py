"""Scoring an agent folder on fresh seeds (``a2d-evo eval``) with a confidence interval."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Literal

from a2d_evo.config import Config, config_to_dict
from a2d_evo.config.bounds import MAX_SEED
from a2d_evo.envs import env_spec
from a2d_evo.errors import ConfigError, EnvError, TrainingError
from a2d_evo.evaluation.episodes import evaluate_agent, random_policy_return, resolve_device
from a2d_evo.evaluation.seeds import fresh_eval_seed
from a2d_evo.formats import (
    EVAL_FILE,
    EVAL_FORMAT_VERSION,
    TEACHER_FIX,
    check_teacher_beats_random,
    count_text,
    normalised_return,
    weak_teacher_caution,
)
from a2d_evo.nets.agent import check_fits_env
from a2d_evo.nets.agent_folder import env_record, load_agent
from a2d_evo.runs.files import read_json_dict, write_json
from a2d_evo.runs.locks import folder_lock
from a2d_evo.runs.teacher import run_teacher, teacher_fix
from a2d_evo.stats import interval95, paired_lower95


def eval_agent_folder(
    folder: Path,
    cfg: Config,
    *,
    episodes: int = 30,
    seed: int | None = None,
    mode: Literal["greedy", "sample"] = "greedy",
    teacher_dir: Path | None = None,
) -> str:
    """Evaluate ``folder`` on fresh seeds, write ``eval.json``, return a printable summary.

    The normalised return uses R_random and, when a teacher folder is found (``teacher_dir``
    or the run's ``teacher/agent``), R_teacher measured on the same seeds in the same ``mode``
    (a sampling agent against a sampling teacher: not the front's greedy scale). A folder that
    cannot be written (a read-only mount, another user's) is scored all the same: no
    ``eval.json``, and the summary says so.
    """
    folder = Path(folder)
    if folder.is_dir() and not os.access(folder, os.W_OK):
        return _eval_agent_folder(folder, cfg, episodes, seed, mode, teacher_dir, write=False)
    # one writer of the agent folder (eval.json) at a time; a missing one is load_agent's error
    with folder_lock(folder, create=False):
        return _eval_agent_folder(folder, cfg, episodes, seed, mode, teacher_dir, write=True)


def _eval_agent_folder(
    folder: Path,
    cfg: Config,
    episodes: int,
    seed: int | None,
    mode: Literal["greedy", "sample"],
    teacher_dir: Path | None,
    *,
    write: bool,
) -> str:
    if episodes < 1:
        raise EnvError(f"--episodes must be >= 1, got {episodes}")
    first = fresh_eval_seed(cfg.seed) if seed is None else seed
    if first + episodes - 1 > MAX_SEED:  # MAX_SEED bounds --seed; its episodes run past it
        raise ConfigError(
            f"--seed {first} with {episodes} episodes: the last episode's seed "
            f"{first + episodes - 1} passes 2**32 - 1 (episode seeds are 32-bit); give --seed "
            f"{MAX_SEED - episodes + 1} or less"
        )
    device = resolve_device(cfg.device)
    agent = load_agent(folder).to(device)
    spec = env_spec(cfg.env)
    check_fits_env(agent, cfg.env, spec.obs_shape, spec.n_actions, str(folder), spec.obs_scale)
    result = evaluate_agent(agent, cfg, episodes, first, mode)
    rand = random_policy_return(cfg, episodes, first)
    teacher_dir = teacher_dir or run_teacher(folder)
    r_teacher = None
    teacher_returns = None
    if teacher_dir is not None and teacher_dir.resolve() != folder.resolve():
        teacher = load_agent(teacher_dir).to(device)
        check_fits_env(
            teacher, cfg.env, spec.obs_shape, spec.n_actions, str(teacher_dir), spec.obs_scale
        )
        teacher_result = evaluate_agent(teacher, cfg, episodes, first, mode)
        r_teacher, teacher_returns = teacher_result.mean, teacher_result.returns
    elif teacher_dir is not None:
        r_teacher, teacher_returns = result.mean, result.returns
    # the teacher's lead over random, paired per seed: within noise, the figure is noise too
    margin = None if teacher_returns is None else paired_lower95(teacher_returns, rand.returns)
    norm = None
    if r_teacher is not None:
        try:  # a teacher at or below random would flip the sign of the normalised return
            fix = teacher_fix(cfg, teacher_dir) if teacher_dir is not None else TEACHER_FIX
            check_teacher_beats_random(rand.mean, r_teacher, fix)
        except ValueError as exc:
            raise TrainingError(f"{teacher_dir}: {exc}") from None
        norm = float(normalised_return(result.mean, rand.mean, r_teacher))
    interval = interval95(result.returns)  # None from one episode: no interval
    report = {
        "format_version": EVAL_FORMAT_VERSION,
        "env_id": cfg.env.id,
        "env": env_record(config_to_dict(cfg.env)),  # played: eval may play a variant
        "return_mean": result.mean,
        "return_std": result.std,
        "return_ci95": list(interval) if interval is not None else None,
        "episodes": result.episodes,
        "eval_mode": mode,
        "seeds": result.seeds,
        "returns": [float(r) for r in result.returns],
        "random_return_mean": rand.mean,
        "teacher_return_mean": r_teacher,
        "normalised_return": norm,
        "teacher_margin_lower95": margin,
    }
    earlier = read_json_dict(folder / EVAL_FILE).get("episodes")  # replaced: said below
    if write:
        write_json(folder / EVAL_FILE, report)
    norm_text = f"  normalised {norm:.3f}" if norm is not None else ""
    # the sample standard deviation (n - 1), which the interval uses; eval.json's return_std
    # is the population one, as in every metrics.json
    n = result.episodes
    if n > 1:
        sample_std = result.std * math.sqrt(n / (n - 1))
        spread = f" +- {sample_std:.2f} (sample std)"
    else:  # one episode bounds nothing: no spread, no interval
        spread = ""
    ends = (
        f"95% interval [{interval[0]:.2f}, {interval[1]:.2f}]"
        if interval is not None
        else "no 95% interval from one episode"
    )
    played = (
        f"{n} episodes (seeds {first}-{first + episodes - 1})"
        if n > 1
        else f"1 episode (seed {first})"
    )
    return (
        f"{folder}: {cfg.env.id} {mode} on {device.type} over {played}: return "
        f"{result.mean:.2f}{spread}, {ends}{norm_text}; "
        f"random policy {rand.mean:.2f}\n"
        + (f"caution: {caution}\n" if (caution := weak_teacher_caution(margin, n)) else "")
        + (
            f"wrote {folder / EVAL_FILE}"
            + (
                f" (replacing an earlier one of {count_text(earlier, 'episode')})"
                if type(earlier) is int
                else ""
            )
            if write
            else f"no {EVAL_FILE} written: {folder} is not writable"
        )
    )
