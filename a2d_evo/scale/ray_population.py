"""Ray actors for population evaluation (``search.backend: ray``).

:class:`RayPopulationEvaluator` has the interface of
:class:`a2d_evo.evaluation.population.PopulationEvaluator` (``evaluate``, ``refresh``, ``close``,
``timing``). It keeps ``search.ray_actors`` persistent actors, each holding its own copy of
the supernet (weights shipped once per :meth:`~RayPopulationEvaluator.refresh` through
the object store), its own vector envs and its own local ``PopulationEvaluator``. Each
generation is cut into contiguous shares of candidates, one per actor. Every candidate
plays its episodes on the same reset seeds wherever it runs and greedy actions are
deterministic, so the results equal the local evaluator's. A share whose actor dies goes
back to the queue and runs on the next free actor (a survivor or the dead one's
replacement), so a generation is never lost. Ray is imported only here and in
:mod:`a2d_evo.scale.ray_cluster` (which connects it), and only when ``search.backend`` is
``ray``. Errors are :class:`a2d_evo.scale.ddp.DistributedError`.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from a2d_evo.config import Config
from a2d_evo.envs.factory import own_episode_limit
from a2d_evo.errors import A2DError, ConfigError
from a2d_evo.evaluation.episodes import EvalResult, EvalTiming, Mode
from a2d_evo.evaluation.population import PopulationEvaluator, check_population_request
from a2d_evo.nets.space import Arch, SearchSpace
from a2d_evo.nets.supernet import Supernet
from a2d_evo.progress import write
from a2d_evo.scale.ddp import DistributedError
from a2d_evo.scale.ray_cluster import connect_ray

__all__ = [
    "RayPopulationEvaluator",
    "make_population_evaluator",
]


def make_population_evaluator(
    supernet: Supernet, cfg: Config
) -> PopulationEvaluator | RayPopulationEvaluator:
    """The population evaluator ``cfg.search.backend`` asks for: local, or Ray actors (a
    ``search.ray_address`` without ``backend: ray`` is said, not silently ignored)."""
    if cfg.search.backend == "ray":
        return RayPopulationEvaluator(supernet, cfg)
    if cfg.search.ray_address is not None:
        write(
            f"search.ray_address {cfg.search.ray_address!r} is set but search.backend is "
            "'local': evaluating locally (pass --ray or set search.backend: ray to use it)"
        )
    return PopulationEvaluator(supernet, cfg)


class _EvalWorker:
    """The body of one Ray actor: a supernet copy, its envs and a local evaluator."""

    def __init__(
        self,
        cfg: Config,
        net_args: tuple[Any, tuple[int, ...], int, float],
        state_box: list[Any],
        version: int,
        threads: int,
    ) -> None:
        torch.set_num_threads(max(1, threads))
        space_cfg, obs_shape, n_actions, obs_scale = net_args
        self.supernet = Supernet(SearchSpace(space_cfg), obs_shape, n_actions, obs_scale)
        self.evaluator = PopulationEvaluator(self.supernet, cfg)
        self.version = -1
        self._load(version, state_box)

    def _load(self, version: int, state_box: list[Any]) -> None:
        import ray  # runs inside a Ray actor: Ray is there; the module stays Ray-free

        if version == self.version:
            return
        # The ref is boxed in a list so that Ray does not fetch it on every call.
        self.supernet.load_state_dict(ray.get(state_box[0]))
        self.evaluator.refresh()
        self.version = version

    def ready(self) -> tuple[int, str, str]:
        """This actor's pid, the arithmetic its population forward runs (``numerics``: the
        device, native or reference, the CPU kernel), which every actor must share, and the
        a2d_evo package it imported."""
        return os.getpid(), self.evaluator.forward.numerics, _package_dir()

    def evaluate(
        self,
        version: int,
        state_box: list[Any],
        archs: Sequence[Arch],
        episodes: int,
        seeds: Sequence[int],
        mode: Mode,
        max_episode_steps: int | None,
    ) -> tuple[list[EvalResult], EvalTiming]:
        self._load(version, state_box)
        self.evaluator.timing = EvalTiming()
        results = self.evaluator.evaluate(archs, episodes, seeds, mode, max_episode_steps)
        return results, self.evaluator.timing

    def close(self) -> None:
        self.evaluator.close()


_CLOSE_TIMEOUT_S = 10.0
"""How long :meth:`RayPopulationEvaluator.close` waits for the actors to close their envs."""


@dataclass
class _Slot:
    """One actor position: its current handle and its deaths since its last finished share."""

    handle: Any
    deaths: int = 0


def contiguous_shares(n: int, parts: int) -> list[range]:
    """``range(n)`` cut into ``min(parts, n)`` contiguous, near-equal pieces (first ones longer)."""
    parts = max(1, min(parts, n))
    base, extra = divmod(n, parts)
    out, start = [], 0
    for i in range(parts):
        stop = start + base + (1 if i < extra else 0)
        out.append(range(start, stop))
        start = stop
    return out


def share_timeout(
    limit: float | None,
    candidates: int,
    episodes: int,
    pop: int,
    actors: int,
    gen_episodes: int,
    stretch: float = 1.0,
) -> float:
    """Seconds a share of ``candidates`` x ``episodes`` may take: ``limit`` for a share the size
    of a generation's (``ceil(pop / actors)`` candidates x ``search.episodes``), in proportion
    above it (the front's final re-scoring plays many more episodes per candidate), never less,
    times ``stretch`` (:func:`episode_stretch`); infinite without a limit."""
    if limit is None:
        return math.inf
    unit = max(1, math.ceil(pop / actors)) * max(1, gen_episodes)
    return limit * max(1.0, candidates * episodes / unit) * max(1.0, stretch)


def episode_stretch(cfg: Config, max_episode_steps: int | None) -> float:
    """How much longer an episode of this call may run than a generation's: the env's own
    limit over ``search.max_episode_steps`` when the generations are capped and this call is
    not (the front's halving and final re-scoring play whole episodes: 10,000 steps against
    the search's 2,000 on the MinAtar configs, 2,600 on Freeway's), else 1."""
    cap = cfg.search.max_episode_steps
    own = own_episode_limit(cfg.env)
    if max_episode_steps is not None or cap is None or own is None:
        return 1.0
    return max(1.0, own / cap)


class RayPopulationEvaluator:
    """:class:`~a2d_evo.evaluation.population.PopulationEvaluator` over persistent Ray actors.

    ``search.ray_actors`` actors with ``ray_cpus_per_actor`` CPUs and ``ray_gpus_per_actor``
    (possibly fractional) GPUs each. A dead actor, or a hung one (no result for its share within
    ``search.ray_share_timeout_s``), is replaced at once and its share goes to the next free
    actor. :class:`DistributedError` when a share has been re-run
    ``max_retries`` times, an actor position dies ``max_retries`` times without finishing a
    share in between, or no actor is free and none starts within ``start_timeout_s``.
    """

    def __init__(
        self,
        supernet: Supernet,
        cfg: Config,
        *,
        max_retries: int = 3,
        start_timeout_s: float = 300.0,
    ) -> None:
        s = cfg.search
        if cfg.device == "cuda" and s.ray_gpus_per_actor == 0:
            raise ConfigError(
                "device: 'cuda' with search.backend=ray needs search.ray_gpus_per_actor > 0 "
                "(Ray hides GPUs from actors that reserve none)"
            )
        self.supernet = supernet
        self.cfg = cfg
        self.timing = EvalTiming()
        self.max_retries = max_retries
        self.start_timeout_s = start_timeout_s
        self.ray, self._owns_ray = connect_ray(cfg)
        self._closed = False
        try:
            self._check_resources()
            self._net_args = (supernet.space.cfg, supernet.obs_shape, supernet.n_actions,
                              supernet.obs_scale)  # fmt: skip
            self._actor_cls = self.ray.remote(
                num_cpus=s.ray_cpus_per_actor, num_gpus=s.ray_gpus_per_actor, max_restarts=0
            )(_EvalWorker)
            self._version = 0
            self._state_box = [self.ray.put(_cpu_state(supernet))]
            self._slots = [_Slot(self._spawn()) for _ in range(s.ray_actors)]
            self._starting: dict[Any, int] = {}  # ready() ref -> slot of a replacement
            self._wait_started()
        except BaseException:
            self.close()
            raise

    # -------------------------------------------------------------- actors
    @property
    def actors(self) -> list[Any]:
        """The current actor handles (tests kill one of them)."""
        return [slot.handle for slot in self._slots]

    def _spawn(self) -> Any:
        return self._actor_cls.remote(
            self.cfg,
            self._net_args,
            self._state_box,
            self._version,
            max(1, int(self.cfg.search.ray_cpus_per_actor)),
        )

    def _check_resources(self) -> None:
        s = self.cfg.search
        have = self.ray.cluster_resources()
        for name, per in (("CPU", s.ray_cpus_per_actor), ("GPU", s.ray_gpus_per_actor)):
            if per > 0 and have.get(name, 0.0) + 1e-9 < per:
                raise DistributedError(
                    f"search.ray_{name.lower()}s_per_actor={per:g}, but the Ray cluster has "
                    f"{have.get(name, 0.0):g} {name}s in all"
                )

    def _wait_started(self) -> None:
        refs = [slot.handle.ready.remote() for slot in self._slots]
        ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=self.start_timeout_s)
        if len(ready) < len(refs):
            s = self.cfg.search
            raise DistributedError(
                f"only {len(ready)} of {len(refs)} Ray actors started within "
                f"{self.start_timeout_s:.0f} s; each needs {s.ray_cpus_per_actor:g} CPUs and "
                f"{s.ray_gpus_per_actor:g} GPUs (cluster: {self.ray.cluster_resources()})"
            )
        try:
            started = self.ray.get(ready)
        except self.ray.exceptions.RayError as exc:
            raise DistributedError(f"a Ray evaluation actor failed to start: {exc}") from None
        paths = sorted({numerics for _, numerics, _ in started})
        here = _package_dir()
        theirs = sorted({package for _, _, package in started} - {here})
        if theirs:  # Ray puts the driver's folder first on their path
            write(
                f"a2d-evo: note: the Ray actors import a2d_evo from {', '.join(theirs)}, this "
                f"process from {here}; they run {', '.join(paths)} (a checkout without the "
                "built module runs the reference forward: run from another folder)"
            )
        if len(paths) > 1:  # a share's scores would depend on the node it lands on
            raise DistributedError(
                f"the Ray evaluation actors run different arithmetic ({', '.join(paths)}): "
                "each picks its own from its node (device, native build, CPU kernel, "
                "A2D_EVO_REFERENCE_OPS); give every node the same, or search locally"
            )
        self.numerics: str = paths[0]
        """The arithmetic every actor's population forward runs: what a search records
        (``evolve`` refuses to resume a search on another)."""

    def _replace(self, i: int, why: BaseException) -> None:
        """Start a new actor in slot ``i`` (its ``ready()`` is awaited with the shares)."""
        slot = self._slots[i]
        slot.deaths += 1
        if slot.deaths > self.max_retries:
            raise DistributedError(
                f"Ray evaluation actor {i} died {slot.deaths} times in a row; last error: "
                f"{type(why).__name__}: {why}"
            )
        self._restart(i)

    def _restart(self, i: int) -> None:
        """Stop slot ``i``'s actor, whatever it is doing, and start a new one there."""
        slot = self._slots[i]
        with contextlib.suppress(Exception):  # already gone
            self.ray.kill(slot.handle, no_restart=True)
        slot.handle = self._spawn()
        self._starting[slot.handle.ready.remote()] = i

    # -------------------------------------------------------------- the evaluator interface
    def refresh(self) -> None:
        """Ship the supernet's current weights (actors load them before their next share)."""
        self._version += 1
        self._state_box = [self.ray.put(_cpu_state(self.supernet))]

    def close(self) -> None:
        """Stop the actors (and Ray, if this evaluator started it)."""
        if self._closed:
            return
        self._closed = True
        slots = getattr(self, "_slots", [])
        try:  # each actor closes its envs first (workers, shared memory); wait does not raise
            # for a dead one, so the live ones still close; a busy or hung one is killed
            refs = [slot.handle.close.remote() for slot in slots]
            self.ray.wait(refs, num_returns=len(refs), timeout=_CLOSE_TIMEOUT_S)
        except Exception:
            pass
        finally:  # a Ctrl-C during the wait still kills them (and stops a Ray started here)
            for slot in slots:
                try:
                    self.ray.kill(slot.handle, no_restart=True)
                except Exception:
                    pass
            if self._owns_ray and self.ray.is_initialized():
                self.ray.shutdown()

    def __enter__(self) -> RayPopulationEvaluator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
        if self._closed:
            raise DistributedError("the Ray population evaluator is closed")
        if not archs:
            return []
        seeds = [int(s) for s in seeds[:episodes]]
        archs = list(archs)
        for a in archs:
            self.supernet.check(a)
        # the shares out: whatever stops the play (an error, an interrupt a caller may catch)
        # leaves none running on its actor for no one, queueing the next call behind it
        running: dict[Any, tuple[int, int, float]] = {}  # evaluate() ref -> slot, share, deadline
        try:
            return self._play(archs, episodes, seeds, mode, max_episode_steps, running)
        except BaseException:
            for i, _, _ in running.values():
                with contextlib.suppress(Exception):  # Ray shutting down: the error stands
                    self._restart(i)
            raise

    def _play(
        self,
        archs: list[Arch],
        episodes: int,
        seeds: list[int],
        mode: Mode,
        max_episode_steps: int | None,
        running: dict[Any, tuple[int, int, float]],
    ) -> list[EvalResult]:
        """:meth:`evaluate` over the actors: shares out, retried, replaced; ``running`` holds
        the shares out at any moment."""
        ray = self.ray
        shares = contiguous_shares(len(archs), len(self._slots))
        todo: deque[int] = deque(range(len(shares)))
        attempts = [0] * len(shares)
        out: list[list[EvalResult] | None] = [None] * len(shares)
        busy = set(self._starting.values())
        idle = deque(i for i in range(len(self._slots)) if i not in busy)
        s = self.cfg.search
        actors = len(self._slots)
        stretch = episode_stretch(self.cfg, max_episode_steps)
        limits = [
            share_timeout(
                s.ray_share_timeout_s, len(sh), episodes, s.pop, actors, s.episodes, stretch
            )
            for sh in shares
        ]

        def lost(i: int, k: int, why: BaseException) -> None:
            """Share ``k`` did not come back from slot ``i``: queue it again, replace the actor."""
            if attempts[k] > self.max_retries:
                # the actor goes too (hung, it would hold the next share of a caller that
                # keeps this evaluator), and a new one starts in its slot
                self._restart(i)
                raise DistributedError(
                    f"candidates {shares[k].start}-{shares[k].stop - 1} were lost on "
                    f"{attempts[k]} Ray actors; last error: {type(why).__name__}: {why}"
                ) from None
            todo.append(k)
            self._replace(i, why)

        while any(o is None for o in out):
            while todo and idle:
                i, k = idle.popleft(), todo.popleft()
                attempts[k] += 1
                ref = self._slots[i].handle.evaluate.remote(
                    self._version,
                    self._state_box,
                    [archs[c] for c in shares[k]],
                    episodes,
                    seeds,
                    mode,
                    max_episode_steps,
                )
                running[ref] = (i, k, time.monotonic() + limits[k])
            # Alone, replacements that cannot be scheduled would leave nothing to wait for;
            # with shares out, wait until the first of them is due.
            timeout: float | None = self.start_timeout_s
            if running:
                first_due = min(due for _, _, due in running.values())
                timeout = None if first_due == math.inf else max(0.0, first_due - time.monotonic())
            ready, _ = ray.wait([*running, *self._starting], num_returns=1, timeout=timeout)
            if not ready and not running:
                raise DistributedError(
                    f"no Ray evaluation actor is alive and none started within "
                    f"{self.start_timeout_s:.0f} s (cluster: {ray.cluster_resources()})"
                )
            if not ready:  # a share is due: its actor is hung (alive, but returns nothing)
                now = time.monotonic()
                for ref, (i, k, due) in list(running.items()):
                    if due <= now:
                        del running[ref]
                        why = (
                            f"no result within {limits[k]:g} s (search.ray_share_timeout_s = "
                            f"{s.ray_share_timeout_s:g} s per generation-sized share)"
                        )
                        lost(i, k, TimeoutError(why))  # raises when its retries are spent
                        write(
                            f"Ray evaluation actor {i}: {why} for candidates "
                            f"{shares[k].start}-{shares[k].stop - 1}; replaced, the share "
                            "runs again (raise the limit if shares are this slow)"
                        )
                continue
            ref = ready[0]
            if ref in self._starting:
                i = self._starting.pop(ref)
                try:
                    _, numerics, _ = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    self._replace(i, exc)
                else:
                    if numerics != self.numerics:  # the replacement landed on another node
                        raise DistributedError(
                            f"a replacement Ray evaluation actor runs {numerics}, the others "
                            f"{self.numerics}: its scores would not be comparable; give every "
                            "node the same arithmetic, or search locally"
                        )
                    idle.append(i)
                continue
            i, k, _ = running.pop(ref)
            try:
                results, timing = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:  # raised inside evaluate(): a bug or
                cause = getattr(exc, "cause", None)  # bad input, the same on any actor
                if isinstance(cause, A2DError):
                    raise cause from None
                raise DistributedError(f"Ray evaluation actor {i} failed: {exc}") from None
            except ray.exceptions.RayError as exc:  # the actor, its process or node died
                lost(i, k, exc)
                continue
            out[k] = results
            self.timing.add(timing)
            self._slots[i].deaths = 0
            idle.append(i)
        return [r for share in out for r in (share or [])]


def _cpu_state(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}


def _package_dir() -> str:
    """The a2d_evo package this process imported (an actor's may be another: Ray puts the
    driver's working folder first on its workers' path)."""
    return str(Path(__file__).resolve().parents[1])
