"""Playing and scoring single agents by their raw episodic return.

Every episode of an evaluation has its own reset seed (``seed + i`` for one agent, or
``seeds[e]`` shared by all candidates of a population: common random numbers), plays a
full game (``training=False`` envs) and reports the raw, unclipped return.

:func:`play_episodes` is the one episode loop (one episode per vector-env slot); the
population evaluator (:mod:`a2d_evo.evaluation.population`) drives it too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from torch import nn

from a2d_evo.config import Config
from a2d_evo.envs import env_spec, make_vec_env
from a2d_evo.errors import ConfigError, TrainingError
from a2d_evo.evaluation.seeds import random_policy_rng
from a2d_evo.formats import check_teacher_beats_random
from a2d_evo.nets.agent_folder import make_metrics

Mode = Literal["greedy", "sample"]


class EvalResult(NamedTuple):
    """Raw episodic returns of one agent, one per seed, and their summary."""

    returns: np.ndarray
    mean: float
    std: float
    episodes: int
    seeds: list[int]
    lengths: np.ndarray | None = None
    """Env steps of each episode (None where the caller did not count them)."""


@dataclass
class EvalTiming:
    """Wall time spent stepping environments vs running networks (accumulates)."""

    env_s: float = 0.0
    net_s: float = 0.0
    env_steps: int = 0
    """Slot-steps taken by the vector env (finished slots included where they are stepped)."""
    forward_rows: int = 0
    """Observations that went through a network."""

    def add(self, other: EvalTiming) -> None:
        self.env_s += other.env_s
        self.net_s += other.net_s
        self.env_steps += other.env_steps
        self.forward_rows += other.forward_rows


def make_result(
    returns: Sequence[float] | np.ndarray,
    seeds: Sequence[int],
    lengths: Sequence[int] | np.ndarray | None = None,
) -> EvalResult:
    """An :class:`EvalResult` from per-episode returns (population std, ddof=0) and lengths."""
    r = np.asarray(returns, dtype=np.float64)
    n = None if lengths is None else np.asarray(lengths, dtype=np.int64)
    if n is not None and n.shape != r.shape:
        raise ValueError(f"make_result: {n.shape} lengths for {r.shape} returns")
    return EvalResult(r, float(r.mean()), float(r.std()), len(r), [int(s) for s in seeds], n)


def resolve_device(device: str) -> torch.device:
    """``cpu``, ``cuda`` or ``auto`` (cuda when available) as a torch device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' requested but torch sees no CUDA device")
    return torch.device(device)


# Act functions map (observations of the active slots, active mask) -> their actions.
ActFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def play_episodes(
    env: Any,
    seeds: Sequence[int],
    act: ActFn,
    timing: EvalTiming | None = None,
    lengths: np.ndarray | None = None,
) -> np.ndarray:
    """Play one episode per slot of ``env`` (reset with ``seeds``); finished slots are ignored.

    Returns the raw return of each of the first ``len(seeds)`` slots. The env may have more
    slots than seeds: the spare ones are reset (with ``seeds[0]``) and count as finished from
    the start. An env with ``step_active`` (:class:`~a2d_evo.envs.vector.SyncVecEnv`, the native
    Atari backend) stops stepping finished slots; other envs step them on (autoreset), their
    results unread. ``act`` sees the active mask of the first ``len(seeds)`` slots.
    ``lengths`` (``len(seeds)`` ints), when given, receives each episode's env steps.
    """
    n = len(seeds)
    step_active = getattr(env, "step_active", None)
    n_env = int(getattr(env, "num_envs", n))
    if n_env < n:
        raise ValueError(f"play_episodes: {len(seeds)} seeds for an env of {n_env} slots")
    padded = [int(s) for s in seeds] + [int(seeds[0])] * (n_env - n)
    t0 = time.perf_counter()
    obs = np.asarray(env.reset(seed=padded))
    env_s, net_s, steps, rows = time.perf_counter() - t0, 0.0, 0, 0
    done = np.zeros(n_env, dtype=bool)
    done[n:] = True  # spare slots
    returns = np.full(n_env, np.nan)
    steps_of = np.zeros(n_env, dtype=np.int64)
    actions = np.zeros(n_env, dtype=np.int64)
    while not done.all():
        active = ~done
        t0 = time.perf_counter()
        actions[:] = 0  # a finished slot's action is never read
        actions[active] = act(obs if active.all() else obs[active], active[:n])
        t1 = time.perf_counter()
        res = env.step(actions) if step_active is None else step_active(actions, active)
        t2 = time.perf_counter()
        net_s += t1 - t0
        env_s += t2 - t1
        live = int(active.sum())
        steps += n_env if step_active is None else live
        rows += live
        steps_of += active
        ended = active & ~np.isnan(np.asarray(res.episode_return, dtype=np.float64))
        returns[ended] = np.asarray(res.episode_return, dtype=np.float64)[ended]
        done |= ended
        obs = np.asarray(res.obs)
    if timing is not None:
        timing.add(EvalTiming(env_s, net_s, steps, rows))
    if lengths is not None:
        lengths[:] = steps_of[:n]
    return returns[:n]


def draw_actions(logits: torch.Tensor, gen: torch.Generator) -> np.ndarray:
    """One action per row drawn from ``softmax(logits)`` with the generator ``gen``."""
    probs = torch.softmax(logits.detach().float().cpu(), dim=-1)
    return torch.multinomial(probs, 1, generator=gen).squeeze(-1).numpy()


def _in_waves(
    cfg: Config,
    episodes: int,
    seed: int,
    act: ActFn,
    max_episode_steps: int | None,
    timing: EvalTiming | None,
) -> EvalResult:
    """Episodes ``seed + i`` in waves of ``cfg.eval.num_envs`` slots of one vector env."""
    if episodes < 1:
        raise ConfigError(f"episodes: must be >= 1, got {episodes}")
    seeds = [seed + i for i in range(episodes)]
    width = min(cfg.eval.num_envs, episodes)
    env = make_vec_env(
        cfg.env, width, seed=seed, training=False, max_episode_steps=max_episode_steps
    )
    returns: list[float] = []
    lengths = np.zeros(episodes, dtype=np.int64)
    try:
        for start in range(0, episodes, width):  # a short last wave leaves spare slots
            wave = seeds[start : start + width]
            returns.extend(
                play_episodes(env, wave, act, timing, lengths[start : start + len(wave)]).tolist()
            )
    finally:
        close = getattr(env, "close", None)
        if close is not None:
            close()
    return make_result(returns, seeds, lengths)


@torch.no_grad()
def evaluate_agent(
    agent: nn.Module,
    cfg: Config,
    episodes: int,
    seed: int,
    mode: Mode = "greedy",
    *,
    max_episode_steps: int | None = None,
    timing: EvalTiming | None = None,
) -> EvalResult:
    """Raw episodic returns of ``agent`` on episodes seeded ``seed, seed+1, ...``.

    ``agent(obs)`` must return ``(logits, value)``. Greedy argmax actions by default;
    ``mode="sample"`` draws from the policy with a torch generator seeded by ``seed``: one
    generator for every slot of a wave, so sampled returns are reproducible for a given
    ``eval.num_envs`` but change with it (greedy ones do not), and a subnet sampled in a
    population does not draw what its extracted agent draws alone (the search plays greedily).
    """
    if mode not in ("greedy", "sample"):
        raise ConfigError(f"eval mode: expected 'greedy' or 'sample', got {mode!r}")
    param = next(agent.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    gen = torch.Generator().manual_seed(int(seed))
    was_training = agent.training
    agent.eval()

    def act(obs: np.ndarray, active: np.ndarray) -> np.ndarray:
        logits = agent(torch.as_tensor(obs, device=device))[0]
        if mode == "greedy":
            return logits.argmax(-1).cpu().numpy()
        return draw_actions(logits, gen)

    try:
        return _in_waves(cfg, episodes, seed, act, max_episode_steps, timing)
    finally:
        agent.train(was_training)


def random_policy_return(
    cfg: Config, episodes: int, seed: int, *, max_episode_steps: int | None = None
) -> EvalResult:
    """Returns of the uniform-random policy on the same seeds as :func:`evaluate_agent`."""
    n_actions = env_spec(cfg.env).n_actions
    rng = random_policy_rng(seed)

    def act(obs: np.ndarray, active: np.ndarray) -> np.ndarray:
        return rng.integers(n_actions, size=len(obs))

    return _in_waves(cfg, episodes, seed, act, max_episode_steps, None)


class ReferenceReturns(NamedTuple):
    """R_random and R_teacher (greedy mean returns) measured on one set of seeds."""

    r_random: float
    r_teacher: float


def score_against_references(
    agent: nn.Module,
    teacher: nn.Module,
    cfg: Config,
    episodes: int,
    seed: int,
    extra: dict[str, Any] | None = None,
    references: ReferenceReturns | None = None,
) -> tuple[EvalResult, dict[str, Any]]:
    """Greedy returns of ``agent`` on seeds ``seed, seed+1, ...`` and its ``metrics.json``
    dict, normalised by R_teacher and R_random measured on those same seeds (both also kept
    as ``teacher_return_mean`` and ``random_return_mean``). ``references``: the two already
    measured on exactly these seeds, with this teacher, by the caller (an export takes its
    front's: the same for every member); None plays them here."""
    result = evaluate_agent(agent, cfg, episodes, seed, "greedy")
    if references is None:
        references = ReferenceReturns(
            random_policy_return(cfg, episodes, seed).mean,
            evaluate_agent(teacher, cfg, episodes, seed, "greedy").mean,
        )
    r_random, r_teacher = references
    try:  # a teacher at or below random makes every normalised return meaningless
        check_teacher_beats_random(r_random, r_teacher)
    except ValueError as exc:
        raise TrainingError(str(exc)) from None
    metrics = make_metrics(
        agent,  # type: ignore[arg-type]
        env_id=cfg.env.id,
        returns=result.returns,
        eval_mode="greedy",
        seeds=result.seeds,
        r_random=r_random,
        r_teacher=r_teacher,
        extra={**(extra or {}), "random_return_mean": r_random, "teacher_return_mean": r_teacher},
    )
    return result, metrics
