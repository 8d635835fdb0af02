"""Scoring whole populations of subnets of one supernet, all on the same episode seeds.

A population of ``P`` subnets and ``E`` episodes is one vector env of ``P x E`` slots
(slot ``(c, e)`` is candidate ``c`` on seed ``seeds[e]``: common random numbers); each slot
plays exactly one episode (:func:`~a2d_evo.evaluation.episodes.play_episodes`), and every
step makes ONE batched forward in which the still-running slots of each candidate go
through that candidate's subnet (:class:`~a2d_evo.nets.population.PopulationForward`).
:class:`PopulationEvaluator` is the seam a distributed backend
(:mod:`a2d_evo.scale.ray_population`) replaces.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from a2d_evo.config import Config
from a2d_evo.envs import make_vec_env
from a2d_evo.errors import ConfigError
from a2d_evo.evaluation.episodes import (
    EvalResult,
    EvalTiming,
    Mode,
    draw_actions,
    make_result,
    play_episodes,
    resolve_device,
)
from a2d_evo.nets.population import PopulationForward
from a2d_evo.nets.space import Arch
from a2d_evo.nets.supernet import Supernet


def check_population_request(episodes: int, seeds: Sequence[int], mode: str) -> None:
    """The checks every population evaluator (local or distributed) makes first."""
    if mode not in ("greedy", "sample"):
        raise ConfigError(f"eval mode: expected 'greedy' or 'sample', got {mode!r}")
    if episodes < 1 or len(seeds) < episodes:
        raise ConfigError(f"population eval: need {episodes} >= 1 seeds, got {len(seeds)}")


class PopulationEvaluator:
    """Scores populations of subnets of one supernet, locally, in one vector env each call.

    The batched forward (:class:`~a2d_evo.nets.population.PopulationForward`) is built once
    and reused; call :meth:`refresh` after the supernet's weights change. ``timing``
    accumulates the env vs network split over every call. A distributed backend provides
    the same ``evaluate`` method.
    """

    def __init__(self, supernet: Supernet, cfg: Config) -> None:
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
                return draw_actions(torch.from_numpy(np.asarray(logits)), gen)
            logits_t, _ = fwd(torch.as_tensor(obs, device=device), group_archs, sizes)
            if mode == "greedy":
                return logits_t.argmax(-1).cpu().numpy()
            return draw_actions(logits_t, gen)

        steps = np.zeros(slots, dtype=np.int64)
        try:
            played = play_episodes(env, slot_seeds, act, self.timing, steps)
        except BaseException:  # an env cut off mid-step (Ctrl-C) is not reused: built anew
            self.close()
            raise
        returns = played.reshape(pop, episodes)
        lengths: np.ndarray = steps.reshape(pop, episodes)
        return [make_result(returns[c], seeds, lengths[c]) for c in range(pop)]


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
