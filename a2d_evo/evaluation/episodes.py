"""Scoring agents and whole populations by their raw episodic return.

Every episode of an evaluation has its own reset seed (``seed + i`` for one agent, or
``seeds[e]`` shared by all candidates of a population: common random numbers), plays a
full game (``training=False`` envs) and reports the raw, unclipped return.

A population of ``P`` subnets and ``E`` episodes is one vector env of ``P x E`` slots
(slot ``(c, e)`` is candidate ``c`` on seed ``seeds[e]``); each slot plays exactly one
episode, and every step makes ONE batched forward in which the still-running slots of
each candidate go through that candidate's subnet (:class:`a2d_evo.ops.PopulationForward`).
:class:`PopulationEvaluator` is the seam a distributed backend replaces.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np
import torch
from torch import nn

from a2d_evo.config import Config
from a2d_evo.errors import ConfigError

if TYPE_CHECKING:
    from a2d_evo.nets.space import Arch
    from a2d_evo.nets.supernet import Supernet

Mode = Literal["greedy", "sample"]


class EvalResult(NamedTuple):
    """Raw episodic returns of one agent, one per seed, and their summary."""

    returns: np.ndarray
    mean: float
    std: float
    episodes: int
    seeds: list[int]


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


def make_result(returns: Sequence[float] | np.ndarray, seeds: Sequence[int]) -> EvalResult:
    """An :class:`EvalResult` from per-episode returns (population std, ddof=0)."""
    r = np.asarray(returns, dtype=np.float64)
    return EvalResult(r, float(r.mean()), float(r.std()), len(r), [int(s) for s in seeds])


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
    env: Any, seeds: Sequence[int], act: ActFn, timing: EvalTiming | None = None
) -> np.ndarray:
    """Play one episode per slot of ``env`` (reset with ``seeds``); finished slots are ignored.

    Returns the raw return of each of the first ``len(seeds)`` slots. The env may have more
    slots than seeds: the spare ones are reset (with ``seeds[0]``) and count as finished from
    the start. An env with ``step_active`` (:class:`~a2d_evo.envs.vector.SyncVecEnv`, the native
    Atari backend) stops stepping finished slots; other envs step them on (autoreset), their
    results unread. ``act`` sees the active mask of the first ``len(seeds)`` slots.
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
        ended = active & ~np.isnan(np.asarray(res.episode_return, dtype=np.float64))
        returns[ended] = np.asarray(res.episode_return, dtype=np.float64)[ended]
        done |= ended
        obs = np.asarray(res.obs)
    if timing is not None:
        timing.add(EvalTiming(env_s, net_s, steps, rows))
    return returns[:n]


def _sample_actions(logits: torch.Tensor, gen: torch.Generator) -> np.ndarray:
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
    from a2d_evo.envs import make_vec_env

    if episodes < 1:
        raise ConfigError(f"episodes: must be >= 1, got {episodes}")
    seeds = [seed + i for i in range(episodes)]
    width = min(cfg.eval.num_envs, episodes)
    env = make_vec_env(
        cfg.env, width, seed=seed, training=False, max_episode_steps=max_episode_steps
    )
    returns: list[float] = []
    try:
        for start in range(0, episodes, width):  # a short last wave leaves spare slots
            wave = seeds[start : start + width]
            returns.extend(play_episodes(env, wave, act, timing).tolist())
    finally:
        close = getattr(env, "close", None)
        if close is not None:
            close()
    return make_result(returns, seeds)


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
    ``mode="sample"`` draws from the policy with a torch generator seeded by ``seed``.
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
        return _sample_actions(logits, gen)

    try:
        return _in_waves(cfg, episodes, seed, act, max_episode_steps, timing)
    finally:
        agent.train(was_training)


def random_policy_return(
    cfg: Config, episodes: int, seed: int, *, max_episode_steps: int | None = None
) -> EvalResult:
    """Returns of the uniform-random policy on the same seeds as :func:`evaluate_agent`."""
    from a2d_evo.envs import env_spec

    n_actions = env_spec(cfg.env).n_actions
    rng = np.random.default_rng(int(seed))

    def act(obs: np.ndarray, active: np.ndarray) -> np.ndarray:
        return rng.integers(n_actions, size=len(obs))

    return _in_waves(cfg, episodes, seed, act, max_episode_steps, None)


def score_against_references(
    agent: nn.Module,
    teacher: nn.Module,
    cfg: Config,
    episodes: int,
    seed: int,
    extra: dict[str, Any] | None = None,
) -> tuple[EvalResult, dict[str, Any]]:
    """Greedy returns of ``agent`` on seeds ``seed, seed+1, ...`` and its ``metrics.json``
    dict, normalised by R_teacher and R_random measured on those same seeds (both also kept
    as ``teacher_return_mean`` and ``random_return_mean``)."""
    from a2d_evo.nets.agent_folder import make_metrics

    result = evaluate_agent(agent, cfg, episodes, seed, "greedy")
    r_teacher = evaluate_agent(teacher, cfg, episodes, seed, "greedy").mean
    r_random = random_policy_return(cfg, episodes, seed).mean
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


# ----------------------------------------------------------------------------- populations
def check_population_request(episodes: int, seeds: Sequence[int], mode: str) -> None:
    """The checks every population evaluator (local or distributed) makes first."""
    if mode not in ("greedy", "sample"):
        raise ConfigError(f"eval mode: expected 'greedy' or 'sample', got {mode!r}")
    if episodes < 1 or len(seeds) < episodes:
        raise ConfigError(f"population eval: need {episodes} >= 1 seeds, got {len(seeds)}")


class PopulationEvaluator:
    """Scores populations of subnets of one supernet, locally, in one vector env each call.

    The batched forward (:class:`a2d_evo.ops.PopulationForward`) is built once and reused;
    call :meth:`refresh` after the supernet's weights change. ``timing`` accumulates the
    env vs network split over every call. A distributed backend provides the same
    ``evaluate`` method.
    """

    def __init__(self, supernet: Supernet, cfg: Config) -> None:
        from a2d_evo.nets.population import PopulationForward

        self.supernet = supernet
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.forward = PopulationForward(supernet, device=self.device)
        self.timing = EvalTiming()
        self._env: Any = None
        self._env_key: tuple[int, int | None] | None = None  # (slots, max_episode_steps)

    def refresh(self) -> None:
        """Re-pack the supernet's weights (after training steps)."""
        self.forward.refresh()

    def close(self) -> None:
        if self._env is not None and hasattr(self._env, "close"):
            self._env.close()
        self._env, self._env_key = None, None

    def _vec_env(self, slots: int, max_episode_steps: int | None, seed: int) -> Any:
        """A vector env for ``slots`` episodes, reused across calls: every episode is reset
        with an explicit seed, so reuse changes no result. An env with ``step_active`` is
        also reused by smaller calls (the spare slots never move), so a search, whose
        generations evaluate fewer candidates once the cache fills, builds it once: that
        matters for Atari, where building and first seeding the emulators take seconds."""
        from a2d_evo.envs import make_vec_env

        key = self._env_key
        reusable = (
            key is not None
            and key[1] == max_episode_steps
            and (key[0] == slots or (key[0] > slots and hasattr(self._env, "step_active")))
        )
        if not reusable:
            self.close()
            self._env = make_vec_env(
                self.cfg.env, slots, seed=seed, training=False, max_episode_steps=max_episode_steps
            )
            self._env_key = (slots, max_episode_steps)
        return self._env

    @torch.no_grad()
    def evaluate(
        self,
        archs: Sequence[Arch],
        episodes: int,
        seeds: Sequence[int],
        mode: Mode = "greedy",
        max_episode_steps: int | None = None,
    ) -> list[EvalResult]:
        """One :class:`EvalResult` per arch, every arch on the same ``seeds[:episodes]``."""
        check_population_request(episodes, seeds, mode)
        if not archs:
            return []
        seeds = [int(s) for s in seeds[:episodes]]
        for a in archs:
            self.supernet.check(a)
        pop = len(archs)
        slots = pop * episodes
        env = self._vec_env(slots, max_episode_steps, seeds[0])
        slot_seeds = seeds * pop  # slot (c, e) = c * episodes + e gets seeds[e]
        owner = np.repeat(np.arange(pop), episodes)
        gen = torch.Generator().manual_seed(int(np.random.SeedSequence(seeds).generate_state(1)[0]))
        device = self.device
        fwd = self.forward

        def act(obs: np.ndarray, active: np.ndarray) -> np.ndarray:
            counts = np.bincount(owner[active], minlength=pop)
            live = np.flatnonzero(counts)
            group_archs = [archs[int(i)] for i in live]
            sizes = counts[live].tolist()
            if device.type == "cpu":
                logits, _ = fwd(obs, group_archs, sizes)
                if mode == "greedy":
                    return np.asarray(logits).argmax(-1)
                return _sample_actions(torch.from_numpy(np.asarray(logits)), gen)
            logits_t, _ = fwd(torch.as_tensor(obs, device=device), group_archs, sizes)
            if mode == "greedy":
                return logits_t.argmax(-1).cpu().numpy()
            return _sample_actions(logits_t, gen)

        returns = play_episodes(env, slot_seeds, act, self.timing).reshape(pop, episodes)
        return [make_result(r, seeds) for r in returns]


def evaluate_population(
    supernet: Supernet,
    archs: Sequence[Arch],
    cfg: Config,
    episodes: int,
    seeds: Sequence[int],
    mode: Mode = "greedy",
    max_episode_steps: int | None = None,
    *,
    timing: EvalTiming | None = None,
) -> list[EvalResult]:
    """Score every arch on the same ``seeds`` in one vector env with one forward per step."""
    ev = PopulationEvaluator(supernet, cfg)
    try:
        results = ev.evaluate(archs, episodes, seeds, mode, max_episode_steps)
    finally:
        ev.close()
    if timing is not None:
        timing.add(ev.timing)
    return results
