"""YAML configs as frozen, typed dataclasses: the schema, and the loader that fills it.

The one door to configs: ``from a2d_evo.config import Config, load_config``.
"""

from a2d_evo.config.loader import (
    MAX_DEPTH,
    MAX_NODES,
    config_from_dict,
    config_to_dict,
    dump_config,
    load_config,
    parse_override,
    parse_yaml,
)
from a2d_evo.config.schema import (
    ATARI_PREFIX,
    Config,
    DistillConfig,
    EnvConfig,
    EvalConfig,
    PPOConfig,
    SearchConfig,
    SpaceConfig,
    SupernetConfig,
    TeacherConfig,
    is_atari,
    replace,
)

__all__ = [
    "ATARI_PREFIX",
    "MAX_DEPTH",
    "MAX_NODES",
    "Config",
    "DistillConfig",
    "EnvConfig",
    "EvalConfig",
    "PPOConfig",
    "SearchConfig",
    "SpaceConfig",
    "SupernetConfig",
    "TeacherConfig",
    "config_from_dict",
    "config_to_dict",
    "dump_config",
    "is_atari",
    "load_config",
    "parse_override",
    "parse_yaml",
    "replace",
]
