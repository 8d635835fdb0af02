"""A report row: one agent or front entry as the tables and plots show it, and its normalisation.

Each agent or front entry becomes a :class:`Row`, normalised with what the run folder holds
of the references (:class:`References`); its interval (:func:`ci95`) is that of ``a2d-evo
eval``, see :mod:`a2d_evo.report.markdown`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from a2d_evo.errors import A2DError, FormatError
from a2d_evo.formats import (
    BELOW_RANDOM_INDEX,
    FRONT_INDEX,
    check_teacher_beats_random,
    finite_number,
    normalised_return,
)
from a2d_evo.nets.space import arch_from_dict
from a2d_evo.stats import ci95


@dataclass(frozen=True)
class Row:
    """One agent or front entry as the tables and plots show it."""

    label: str
    arch: str
    flops: float
    params: float | None
    latency_ms: float | None
    return_mean: float
    return_std: float
    episodes: int
    normalised_return: float | None
    arch_dict: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] | None = None
    episode_returns: tuple[float, ...] | None = None
    """Each episode's return on ``seeds``, in order; None when the metrics predate them."""

    @property
    def ci95(self) -> float | None:
        return ci95(self.return_std, self.episodes)


def finite_or_none(value: Any) -> float | None:
    """``value`` as a float where it is a finite number, else None (a record read as given)."""
    return float(value) if finite_number(value) else None


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value


def arch_name(arch: Any) -> str:
    """The arch's name (``mlp-64x64``) from its ``arch.json`` mapping; ``?`` where it is no arch."""
    try:
        return str(arch_from_dict(arch))
    except A2DError:
        return "?"


def row_from_metrics(
    label: str,
    metrics: Mapping[str, Any],
    arch: Any = None,
    norm: References | None = None,
) -> Row:
    """A :class:`Row` from a metrics dict (a front entry or an agent's ``metrics.json``).

    Normalised with ``norm`` where it holds both references, so every row of a report is on
    one scale (a baseline measures its own R_random and R_teacher, which move with its
    evaluation's settings); else with the figure the metrics recorded."""
    arch = metrics.get("arch", arch)
    mean = finite_or_none(metrics.get("return_mean"))
    flops = finite_or_none(metrics.get("flops"))
    if mean is None or flops is None:
        raise FormatError(f"{label}: metrics lack a finite return_mean and flops")
    nr = norm.normalise(mean) if norm is not None else None
    if nr is None:
        nr = finite_or_none(metrics.get("normalised_return"))
    return Row(
        label=label,
        arch=arch_name(arch) if arch is not None else "?",
        flops=flops,
        params=finite_or_none(metrics.get("params")),
        latency_ms=finite_or_none(metrics.get("latency_ms")),
        return_mean=mean,
        # no finite spread recorded: no interval (a 0 made it 0 wide, and told the row apart)
        return_std=_or_nan(finite_or_none(metrics.get("return_std"))),
        episodes=int(metrics.get("episodes") or 0),
        normalised_return=nr,
        arch_dict=dict(arch) if isinstance(arch, Mapping) else None,
        extra={
            k: v
            for k, v in metrics.items()
            if k
            in (
                "method",
                "width_multiplier",
                FRONT_INDEX,
                BELOW_RANDOM_INDEX,
                "search_return_mean",
                "env_reward_threshold",
            )
        },
        **_episodes(metrics),
    )


def _episodes(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """``seeds`` and ``episode_returns`` of a metrics dict when it has both, one return per
    seed (checked on the way in by :func:`~a2d_evo.formats.check_metrics`)."""
    seeds, rets = metrics.get("seeds"), metrics.get("episode_returns")
    if not isinstance(seeds, list) or not isinstance(rets, list) or len(seeds) != len(rets):
        return {}
    return {"seeds": tuple(int(s) for s in seeds), "episode_returns": tuple(map(float, rets))}


@dataclass(frozen=True)
class References:
    """What a run folder holds of ``R_random``, ``R_teacher`` and the teacher's FLOPs.

    A report may read a partial run, so each may be missing (the search's complete set is a
    :class:`~a2d_evo.formats.Normalisation`); the formula is
    :func:`~a2d_evo.formats.normalised_return`.
    """

    r_random: float | None
    r_teacher: float | None
    teacher_flops: float | None
    margin_lower95: float | None = None
    """95% lower bound of the teacher's paired lead over random on the same seeds, where the
    run folder records it (:func:`~a2d_evo.formats.weak_teacher_caution`)."""

    def normalise(self, r: float) -> float | None:
        """Normalised return of ``r``; None when R_random or R_teacher is missing, or when the
        teacher does not beat the random policy (the ratio would be undefined or flip sign)."""
        if self.r_random is None or self.r_teacher is None:
            return None
        try:
            check_teacher_beats_random(self.r_random, self.r_teacher)
            return float(normalised_return(r, self.r_random, self.r_teacher))
        except ValueError:
            return None


def front_rows(front: Sequence[Mapping[str, Any]], norm: References | None) -> list[Row]:
    """Rows cheapest first, labelled by their index in ``front.json`` (``export --pick``)."""
    rows = [row_from_metrics(str(i), e, norm=norm) for i, e in enumerate(front)]
    return sorted(rows, key=lambda r: (r.flops, -r.return_mean))
