"""Every file-format version, file name and metrics key, and the normalisation of returns.

One definition of each fact that more than one stage reads or writes. Torch-free, so that
light command paths (``--help``, reading a run folder) can import it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from a2d_evo.errors import FormatError

# ----------------------------------------------------------------------------- versions
CONFIG_FORMAT_VERSION = 1
"""``format_version`` of a run's ``config.yaml``."""

CONFIG_HISTORY_FORMAT_VERSION = 1
"""``format_version`` of a stage's ``config_history.yaml`` (budgets raised on ``--resume``)."""

CHECKPOINT_FORMAT_VERSION = 2
"""``format_version`` of a stage's ``checkpoint.pt``. 2 (issue [J]): values in units of sigma
(the supernet's ``value_scale`` buffer, the learner's ``learner`` state) and the per-subnet
estimator; a version-1 checkpoint cannot be continued (:data:`OLD_CHECKPOINT_NOTE`)."""

OLD_CHECKPOINT_NOTE = (
    "format 1 was written by the training before issue [J] (raw-scale values, another "
    "estimator), which a resume cannot continue: delete the stage folder to train it again"
)
"""Why a version-1 checkpoint is refused, and what to do."""

AGENT_FORMAT_VERSION = 2
"""``format_version`` of an agent folder's ``arch.json``. 2: CNN archs list their conv layers
(width, kernel, stride, padding; declared spaces, docs/spaces.md) and ``obs_scale`` is
recorded; the env settings hold no ALE keys for other envs."""

AGENT_FORMATS_READ = (1,)
"""Older ``arch.json`` formats still read (converted on load): 1, the Nature-only CNN arch
with an implied 1/255 input scale."""

METRICS_FORMAT_VERSION = 1
"""``format_version`` of ``metrics.json`` and of front entries."""

FRONT_FORMAT_VERSION = 2
"""``format_version`` of ``search/front.json``. 2: hypervolume on log10 FLOPs
(:func:`hv_points`), the front delivered by successive halving, env steps spent. An optional
``below_random`` list (entries as the front's, written since 2026-12-07; absent: none) holds
the race's survivors that did not beat random, for ``finetune.below_random``."""

BELOW_PREFIX = "below_"
"""The folder names ``export`` gives the ``below_random`` entries it fine-tunes."""
EXPORTED_PREFIXES = ("front_", BELOW_PREFIX)
"""Folder names ``export --pick all`` gives: ``front_NN`` for front entry NN, ``below_NN`` for
``below_random`` entry NN (``finetune.below_random``)."""

FRONT_INDEX = "front_index"
"""An exported member's ``metrics.json`` key: its entry in ``front.json``'s ``front``."""
BELOW_RANDOM_INDEX = "below_random_index"
"""An exported below-random arch's key: its entry in ``front.json``'s ``below_random``."""

STATE_FORMAT_VERSION = 2
"""``format_version`` of the search state (``search/state.json`` + ``state.npz``). 2: every
arch's per-episode returns, lengths, seeds and generations; hypervolume on log10 FLOPs."""

OLD_SEARCH_NOTE = (
    "format 1 kept one first estimate per arch and a hypervolume on linear FLOPs; it cannot be "
    "converted (the per-episode records were never kept): run `a2d-evo evolve` again, into a "
    "new run folder (--out) or after deleting RUN_DIR/search"
)
"""What to do with a front or search state of format 1 (``docs/search.md``)."""

DELIVERED_FORMAT_VERSION = 1
"""``format_version`` of ``RUN_DIR/agents/delivered.json`` (the fine-tuned, delivered front)."""

EVAL_FORMAT_VERSION = 1
"""``format_version`` of ``eval.json`` (``a2d-evo eval``)."""

# ----------------------------------------------------------------------------- agent folders
ARCH_FILE = "arch.json"
POLICY_FILE = "policy.pt"
METRICS_FILE = "metrics.json"
ONNX_FILE = "policy.onnx"
EVAL_FILE = "eval.json"

METRICS_KEYS = (
    "format_version",
    "env_id",
    "return_mean",
    "return_std",
    "episodes",
    "eval_mode",
    "seeds",
    "flops",
    "params",
    "latency_ms",
    "normalised_return",
)
"""Keys every ``metrics.json`` and every front entry carries."""

INHERITED_KEYS = ("return_mean", "return_std", "normalised_return", "episodes")
"""The inherited-weight figures a fine-tuned front member keeps under ``inherited``."""

KEPT_FINE_TUNED, KEPT_INHERITED = "fine-tuned", "inherited"
"""Which weights an exported member ships (``kept`` in ``delivered.json``)."""

VALIDATION_SEEDS, FINAL_SEEDS = "validation seeds", "final seeds"
"""``delivered.json``'s ``chosen_on``: the seeds the delivered members were chosen on."""


MAX_YAML_BYTES = 4 << 20
"""Largest YAML file read (a config, a stage's config, ``config_history.yaml``): a config
holds a few KB, a history a few hundred bytes per resume."""


def read_capped(path: str | Path, what: str, max_bytes: int, usual: str = "") -> bytes:
    """The bytes of file ``path``, refused (FormatError) past ``max_bytes`` without reading
    them all: a file a run folder received may be sparse and claim 64 GB, or be a link to a
    file that never ends (``/proc/self/pagemap``: size 0, endless reads). ``usual``: what such
    a file holds, for the message. File I/O here rather than in :mod:`a2d_evo.runs.files` because
    the config layer, below that one, reads YAML through it."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{what} {path} not found")
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            raw = f.read(max_bytes + 1) if size <= max_bytes else b""
    except OSError as exc:
        raise FormatError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except MemoryError:
        raise FormatError(f"{what} {path} is too large to read into memory") from None
    if size > max_bytes or len(raw) > max_bytes:  # sparse, or grown since: never read whole
        raise FormatError(
            f"{what} {path} holds {max(size, len(raw)):,} bytes, more than the {max_bytes:,} "
            f"read: {usual or f'no {what} a2d-evo writes is that large'}"
        )
    return raw


def kept_weights(metrics: dict[str, Any]) -> str:
    """Which weights an agent's ``metrics.json`` says it ships: :data:`KEPT_INHERITED`
    without a fine-tune, :data:`KEPT_FINE_TUNED` after one. Where the last fine-tune's
    validation rejected it (``finetune_validation.kept`` inherited: the weights from before
    it stay), what those were (``finetune_validation.started_from``: a second fine-tune
    rejected ships the first one's weights; files from before it was recorded: inherited)."""
    if not metrics.get("finetune_budget"):
        return KEPT_INHERITED
    val = metrics.get("finetune_validation")
    if isinstance(val, dict) and val.get("kept") == KEPT_INHERITED:
        started = val.get("started_from")
        return KEPT_FINE_TUNED if started == KEPT_FINE_TUNED else KEPT_INHERITED
    return KEPT_FINE_TUNED


EVAL_MODES = ("greedy", "sample")
"""``greedy`` (argmax, the default everywhere) or ``sample`` (from the policy)."""

DEFAULT_WIDTHS = (0.25, 0.5, 1.0)
"""Width multipliers of the baselines when ``--widths`` names none."""

BASELINE_METHODS = ("ppo", "distill", "a2d")
"""Baselines trained per width multiplier: PPO from scratch, plain policy distillation, and
PPO + A2D distillation (the fine-tune's loss) from scratch."""


def baseline_name(method: str, multiplier: float) -> str:
    """The folder name of a baseline under ``RUN_DIR/baselines/``, e.g. ``distill_x0.25``."""
    return f"{method}_x{multiplier:g}"


def recorded_count(value: Any) -> int:
    """A step count read from a file, 0 where there is none (or not a positive int: a bool, a
    float, a string such as ``"1e6"`` in a received folder)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def finite_number(value: Any) -> bool:
    """True for an int or float (not a bool) that is finite: what a number read from a file
    must be before it is trusted (an int past the float range is not)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


_NUMBERS = ("flops", "params", "return_mean", "return_std", "normalised_return", "latency_ms")


def check_metrics(m: Any, where: str, required: Sequence[str] = ()) -> None:
    """FormatError unless ``m`` holds every key of ``required`` (not null) and the
    metrics-contract keys it has carry values of their types.

    Front entries and ``metrics.json`` come from files users share; export, the knee and the
    report compute with these values, so a string or a list there must stop at the door.
    """
    for key in required:
        if not isinstance(m, dict) or m.get(key) is None:
            raise FormatError(f"{where} has no {key!r}")
    for key in _NUMBERS:
        v = m.get(key)
        if v is not None and not finite_number(v):
            raise FormatError(f"{where}: {key} must be a finite number, got {v!r:.60}")
    episodes = m.get("episodes")
    if episodes is not None and (  # past 10**9 no run's; past 1e308 the interval overflowed
        isinstance(episodes, bool) or not isinstance(episodes, int) or not 0 <= episodes <= 10**9
    ):
        raise FormatError(f"{where}: episodes must be an int from 0 to 10**9, got {episodes!r:.60}")
    seeds = m.get("seeds")
    if seeds is not None and (
        not isinstance(seeds, list)
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
    ):
        raise FormatError(f"{where}: seeds must be a list of ints")
    rets = m.get("episode_returns")
    if rets is not None and (
        not isinstance(rets, list)
        or not all(finite_number(r) for r in rets)
        or (isinstance(seeds, list) and len(rets) != len(seeds))
    ):
        raise FormatError(
            f"{where}: episode_returns must be a list of finite numbers, one per seed"
        )
    for key in ("env_id", "eval_mode"):
        if m.get(key) is not None and not isinstance(m[key], str):
            raise FormatError(f"{where}: {key} must be a string, got {m[key]!r:.60}")
    if m.get("arch") is not None and not isinstance(m["arch"], dict):
        raise FormatError(f"{where}: arch must be a mapping, got {m['arch']!r:.60}")


def count_text(n: int, noun: str) -> str:
    """``1 member``, ``2 members``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def validated(rows: Any) -> bool:
    """Whether every exported row (``delivered.json``'s ``exported``) has a finite validation
    figure, so the delivered members were chosen on the validation seeds: the one rule of
    the delivery that writes the file and of the report that reads it."""
    return (
        isinstance(rows, list)
        and bool(rows)
        and all(
            isinstance(r, Mapping) and finite_number(r.get("validation_return_mean")) for r in rows
        )
    )


def non_dominated(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the ``(cost, score)`` points no other point dominates (at most the cost and
    at least the score, one of them strictly), in the order given."""
    keep = []
    for i, (c, s) in enumerate(points):
        if not any(
            c2 <= c and s2 >= s and (c2 < c or s2 > s)
            for j, (c2, s2) in enumerate(points)
            if j != i
        ):
            keep.append(i)
    return keep


# ----------------------------------------------------------------------------- hypervolume
HV_FLOPS_MARGIN = 1.1
"""The hypervolume reference point's FLOPs are this times the space's costliest arch's."""

HV_UNITS = ("-normalised_return", "log10 flops")
"""The hypervolume's axes (both minimised): what ``front.json`` calls its reference units."""


def hv_points(F: Any) -> np.ndarray:
    """Objectives ``(-normalised return, FLOPs)`` in hypervolume units: FLOPs as log10 FLOPs.

    On a linear FLOPs axis the largest arch's decade holds ~90% of the volume, so the
    hypervolume is about the best return times a constant and cannot see the front's shape;
    on log10 FLOPs every decade of cost weighs the same.
    """
    F = np.asarray(F, dtype=np.float64).reshape(-1, 2)
    if F.size and F[:, 1].min() <= 0:
        raise ValueError(f"hypervolume: FLOPs must be > 0, got {F[:, 1].min()}")
    return np.column_stack([F[:, 0], np.log10(F[:, 1])])


def hv_reference_point(max_flops: float) -> np.ndarray:
    """The hypervolume reference point, fixed by the search space and not by any front:
    ``(0, log10(1.1 * max_flops))``, ``max_flops`` the FLOPs of the space's costliest arch
    (:func:`a2d_evo.nets.cost.costliest`). A member adds volume only if it beats the
    uniform-random policy (normalised return > 0), and every arch of the space can add."""
    if not max_flops > 0:
        raise ValueError(f"hypervolume: the costliest arch's FLOPs must be > 0, got {max_flops}")
    return np.array([0.0, math.log10(HV_FLOPS_MARGIN * float(max_flops))])


# ----------------------------------------------------------------------------- normalisation
def normalised_return(r: Any, r_random: float, r_teacher: float) -> Any:
    """``(R - R_random) / (R_teacher - R_random)``: 0 is random, 1 is the teacher.

    ``r`` may be a number or an array. Raises ValueError when the teacher's return equals
    the random policy's (the ratio is undefined: the teacher has not learned the task).
    """
    if not (math.isfinite(r_random) and math.isfinite(r_teacher)):
        raise ValueError(
            f"normalised return: R_random={r_random} and R_teacher={r_teacher} must be finite"
        )
    span = float(r_teacher) - float(r_random)
    if span == 0.0:
        raise ValueError(
            f"normalised return is undefined: the teacher's return ({r_teacher}) equals the "
            "random policy's; the teacher has not learned the task"
        )
    if isinstance(r, np.ndarray):
        return (r.astype(np.float64) - r_random) / span
    return (float(r) - r_random) / span


TEACHER_FIX = (
    "train it longer: its `a2d-evo train-teacher` command again with `--resume --set "
    "teacher.total_steps=N`, N above the steps it has"
)
"""What to do about a teacher that does not beat the uniform-random policy, where the command
that trained it is not known (a run's own teacher gets the exact command:
:func:`a2d_evo.runs.teacher.teacher_fix`)."""


FEW_EPISODES = 30
"""Below this many episodes a caution about the teacher's lead asks for more episodes first:
the bound may be at or below 0 for want of episodes, not of a teacher (``eval --episodes 2``)."""


def weak_teacher_caution(margin_lower95: float | None, episodes: int | None = None) -> str | None:
    """A caution when the teacher's lead over the uniform-random policy is within noise (the
    95% lower bound of the paired lead at or below 0), else None. ``episodes``: how many the
    bound is over, where the caller chose them (``eval --episodes``): below
    :data:`FEW_EPISODES` the caution asks for more before a longer-trained teacher.

    :func:`check_teacher_beats_random` refuses only a teacher at or below random: one barely
    above it passes, and then every normalised return divides by a lead that is mostly noise."""
    if margin_lower95 is None or margin_lower95 > 0:
        return None
    fix = TEACHER_FIX
    if episodes is not None and episodes < FEW_EPISODES:
        fix = (
            f"{episodes} episodes bound little: play more (`--episodes {FEW_EPISODES}`), and "
            f"if the bound stays at or below 0, {TEACHER_FIX}"
        )
    return (
        "the teacher's lead over the uniform-random policy is within noise on these seeds "
        f"(95% lower bound {margin_lower95:.3g} <= 0): normalised returns divide by that lead, "
        f"so they are noisy and can land far above 1; {fix}"
    )


def _pair(a: float, b: float) -> tuple[str, str]:
    """``a`` and ``b`` with one decimal, or as many more as it takes to tell them apart."""
    for digits in range(1, 7):
        sa, sb = f"{a:.{digits}f}", f"{b:.{digits}f}"
        if sa != sb:
            return sa, sb
    return f"{a:.1f}", f"{b:.1f}"


def check_teacher_beats_random(r_random: float, r_teacher: float, fix: str = TEACHER_FIX) -> None:
    """ValueError unless the teacher's return is above the uniform-random policy's.

    Both are measured on the same seeds. A teacher at or below random makes the ratio
    undefined or flips its sign: every normalised return, the hypervolume and the knee would
    then reward doing worse. The message ends with ``fix``: how to fix it.
    """
    if not (math.isfinite(r_random) and math.isfinite(r_teacher)):
        raise ValueError(
            f"normalised return: R_random={r_random} and R_teacher={r_teacher} must be finite"
        )
    if r_teacher <= r_random:
        t, r = _pair(float(r_teacher), float(r_random))
        raise ValueError(
            f"the teacher (R={t}) does not beat the uniform-random policy (R={r}) on the same "
            f"seeds: {fix}"
        )


@dataclass(frozen=True)
class Normalisation:
    """``R_random``, ``R_teacher`` and the teacher's FLOPs that a run's ratios are taken against.

    The search's hypervolume, the report's "fraction of the teacher" and the knee all use it,
    so it refuses (ValueError) a teacher that does not beat the random policy.
    """

    r_random: float
    r_teacher: float
    teacher_flops: int

    def __post_init__(self) -> None:
        check_teacher_beats_random(self.r_random, self.r_teacher)
        if self.teacher_flops < 1:
            raise ValueError(f"teacher_flops must be >= 1, got {self.teacher_flops}")

    def score(self, r: Any) -> Any:
        """Normalised return of raw return(s) ``r``."""
        return normalised_return(r, self.r_random, self.r_teacher)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Normalisation:
        """Read back :meth:`to_dict`; FormatError on anything malformed."""
        try:
            values = [data[k] for k in ("r_random", "r_teacher", "teacher_flops")]
            if any(isinstance(v, bool) for v in values):
                raise TypeError("booleans are not numbers")
            flops = float(values[2])
            if not flops.is_integer():
                raise ValueError(f"teacher_flops must be an integer, got {values[2]!r:.40}")
            return cls(float(values[0]), float(values[1]), int(flops))
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise FormatError(f"normalisation constants are malformed: {exc}") from None
