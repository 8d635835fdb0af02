"""The config's bounds: the largest value each key takes, and the checks that name the key.

Each section of :mod:`a2d_evo.config.schema` checks its own ranges with these in
``__post_init__`` and raises :class:`ConfigError` naming the dotted key.
"""

from __future__ import annotations

from a2d_evo.errors import ConfigError

# ----------------------------------------------------------------------------- upper bounds
# Generous for real use (10-100x the shipped configs), small enough that a typo such as
# ``ppo.num_envs=100000000`` is a one-line ConfigError instead of minutes of swapping. What the
# product of several of them would allocate is checked later, against the machine's memory,
# by :func:`a2d_evo.nets.cost.check_training_memory`.
MAX_ENVS = 4096
"""Most parallel environments of a rollout or an evaluation wave (``ppo.num_envs``,
``eval.num_envs``)."""
MAX_NUM_STEPS = 65_536
"""Most steps per environment per rollout (``ppo.num_steps``)."""
MAX_WIDTH = 16_384
"""Most units or channels of one layer (``space.*`` widths, ``teacher.arch``)."""
MAX_LAYERS = 64
"""Most hidden layers of an MLP (``space.depths``, ``teacher.arch.widths``) or extra convs."""
MAX_EPISODES = 100_000
"""Most episodes of one evaluation (``eval.episodes``, ``teacher.eval_episodes``, ...)."""
MAX_EVAL_SLOTS = 65_536
"""Most env slots a search generation plays at once (``search.pop`` offspring, as many
survivors and the anchors, times ``search.episodes``), and
``search.final_episodes`` (the final re-scoring plays at least one member on all of them)."""
MAX_POP = 4096
"""Largest NSGA-II population (``search.pop``)."""
MAX_GENS = 100_000
"""Most generations (``search.gens``)."""
MAX_ANCHORS = 16
"""Most anchor archs of a search (``search.anchors``)."""
MAX_SEED = 2**32 - 1
"""Largest seed, of a run (``seed``) and of an episode: one 32-bit word. numpy's
``SeedSequence`` splits a larger int into words, so the seed lists of two runs could alias
(run seed 5's generation 18,975 and run seed 26,637,610,508,091,397's first halving round drew
the same episodes), and MinAtar seeds a legacy ``RandomState``, which takes no more."""
MAX_TOTAL_STEPS = 10**12
"""Most environment steps of one training stage (``*.total_steps``)."""
MAX_WORKERS = 1024
"""Most worker processes, threads or Ray actors (``env.workers``, ``torch_threads``, ...)."""
MAX_IMPORTS = 16
"""Most entries of ``env.imports``."""
MAX_LR = 10.0
"""The largest learning rate taken (Adam): 1e300 passed, and a review traced NaN losses from it
to after the stage folder was written."""
MAX_COEF = 1e4
"""The largest distillation coefficient (``distill.alpha``, ``beta``, ``vf_coef``)."""
MAX_TIMEOUT_S = 1e9
"""The longest timeout taken (about 31 years; None is none): Ray turns a timeout into
milliseconds in a C int64, which 1e300 overflowed at the first wait."""

MAX_KERNEL = 15
"""Largest conv kernel of a declared space or a teacher arch."""
MAX_STRIDE = 8
"""Largest conv stride."""


# ----------------------------------------------------------------------------- range checks


def check_min(key: str, value: float, low: float) -> None:
    if not value >= low:  # also refuses NaN
        raise ConfigError(f"{key}: must be >= {low}, got {value}")


MIN_TEMPERATURE, MAX_TEMPERATURE = 1e-3, 1e3
"""Bounds of ``distill.temperature``."""


def check_positive(key: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{key}: must be > 0, got {value}")


def check_range(key: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ConfigError(f"{key}: must be in [{low}, {high}], got {value}")


def check_bounds(key: str, value: float, low: float, high: float) -> None:
    check_min(key, value, low)
    if not value <= high:
        raise ConfigError(f"{key}: must be <= {high} (its documented upper bound), got {value}")


def check_count(key: str, value: int, low: int, high: int) -> None:
    """Raise :class:`ConfigError` naming ``key`` unless ``low <= value <= high``.

    For numbers given as command options rather than config keys (``eval --episodes``)."""
    check_bounds(key, value, low, high)
