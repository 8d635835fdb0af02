"""Choosing front members for ``a2d-evo export``: the knee, a front index or all, within
the ``--max-flops`` / ``--min-return`` filters, and the below-random archs to fine-tune.

The knee point: put every front member at ``(x, y)`` with ``x`` = log10 FLOPs and ``y`` =
normalised return, both scaled to [0, 1] over the front; the knee is the member farthest
above the straight line from the cheapest member to the best-scoring one. It is where the
front bends: moving left of it costs return quickly, moving right buys little. Fronts of
one member return it; when no member lies above the line (two members, or a straight
front) the knee is the best-scoring member.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from a2d_evo.errors import RunFolderError

PICKS = ("all", "knee")
"""The named ``export --pick`` choices; the other is a front entry's index."""


def knee_index(flops: Sequence[float], norm_return: Sequence[float]) -> int:
    """Index of the knee of a front given as parallel lists (see the module docstring)."""
    n = len(flops)
    if n == 0:
        raise ValueError("knee_index: empty front")
    if n == 1:
        return 0
    xs = [math.log10(max(f, 1.0)) for f in flops]
    ys = list(norm_return)
    x_lo, x_hi = min(xs), max(xs)
    y_lo, y_hi = min(ys), max(ys)
    sx = (x_hi - x_lo) or 1.0
    sy = (y_hi - y_lo) or 1.0
    px = [(x - x_lo) / sx for x in xs]
    py = [(y - y_lo) / sy for y in ys]
    a = min(range(n), key=lambda i: (xs[i], -ys[i]))  # cheapest
    b = max(range(n), key=lambda i: (ys[i], -xs[i]))  # best-scoring
    dx, dy = px[b] - px[a], py[b] - py[a]
    norm = math.hypot(dx, dy)
    if norm == 0.0:
        return b
    # signed distance above the chord a -> b (positive = better than linear interpolation)
    dist = [(dx * (py[i] - py[a]) - dy * (px[i] - px[a])) / norm for i in range(n)]
    best = max(range(n), key=lambda i: (dist[i], ys[i]))
    return best if dist[best] > 1e-12 else b


def select(
    front: list[dict[str, Any]],
    pick: str,
    max_flops: float | None = None,
    min_return: float | None = None,
) -> list[tuple[str, int]]:
    """``(folder name, front index)`` of the entries that ``pick`` and the filters select."""
    keep = [
        i
        for i, e in enumerate(front)
        if (max_flops is None or e["flops"] <= max_flops)
        and (min_return is None or e["return_mean"] >= min_return)
    ]
    if not keep:
        lo, hi = min(e["flops"] for e in front), max(e["flops"] for e in front)
        r_lo, r_hi = (f(e["return_mean"] for e in front) for f in (min, max))
        asked = [f"FLOPs <= {max_flops:g}"] if max_flops is not None else []
        asked += [f"return >= {min_return:g}"] if min_return is not None else []
        raise RunFolderError(
            f"no front entry has {' and '.join(asked)}; the front spans {lo:.4g}-{hi:.4g} "
            f"FLOPs and returns {r_lo:.4g}-{r_hi:.4g}"
        )
    if pick == "all":
        return [(f"front_{i:02d}", i) for i in keep]
    if pick == "knee":
        k = knee_index(
            [front[i]["flops"] for i in keep], [front[i]["normalised_return"] for i in keep]
        )
        return [("knee", keep[k])]
    try:
        index = int(pick)
    except ValueError:
        raise RunFolderError(f"--pick: expected knee, all or a front index, got {pick!r}") from None
    if not 0 <= index < len(front):
        which = "entry 0" if len(front) == 1 else f"entries 0-{len(front) - 1}"
        raise RunFolderError(f"--pick {index}: the front has {which}")
    if index not in keep:
        raise RunFolderError(f"--pick {index}: that entry is excluded by --max-flops/--min-return")
    return [(f"front_{index:02d}", index)]


def below_random_picks(
    below: Sequence[dict[str, Any]],
    count: int,
    max_flops: float | None = None,
    min_return: float | None = None,
) -> list[int]:
    """Indices of the ``count`` costliest ``below_random`` entries within the filters (the
    most capacity: the likeliest to be lifted above random), costliest first."""
    within = [
        k
        for k, e in enumerate(below)
        if (max_flops is None or e["flops"] <= max_flops)
        and (min_return is None or e["return_mean"] >= min_return)
    ]
    return sorted(within, key=lambda k: (-below[k]["flops"], k))[:count]
