"""YAML configs as frozen, typed dataclasses: the schema, and the loader that fills it.

The one door to configs: ``from a2d_evo.config import Config, load_config``.
"""

from a2d_evo.config.bounds import (
    MAX_ANCHORS,
    MAX_ENVS,
    MAX_EPISODES,
    MAX_EVAL_SLOTS,
    MAX_GENS,
    MAX_IMPORTS,
    MAX_LAYERS,
    MAX_NUM_STEPS,
    MAX_POP,
    MAX_TOTAL_STEPS,
    MAX_WIDTH,
    MAX_WORKERS,
    check_count,
)
from a2d_evo.config.env import (
    ALLOWED_IMPORTS,
    ATARI_PREFIX,
    MINATAR_IMPORT,
    EnvConfig,
    check_env_id,
    env_import_flags,
    is_atari,
    split_import,
)
from a2d_evo.config.loader import (
    config_from_dict,
    config_from_file,
    config_to_dict,
    dump_config,
    load_config,
    read_config_file,
)
from a2d_evo.config.overrides import parse_override, set_flag
from a2d_evo.config.schema import (
    Config,
    DistillConfig,
    EvalConfig,
    FinetuneConfig,
    PPOConfig,
    SupernetConfig,
    TeacherConfig,
    replace,
)
from a2d_evo.config.search import SearchConfig
from a2d_evo.config.space import SpaceConfig
from a2d_evo.config.yaml_dialect import MAX_DEPTH, MAX_NODES, parse_yaml, read_yaml_text

__all__ = [
    "ALLOWED_IMPORTS",
    "ATARI_PREFIX",
    "MAX_ANCHORS",
    "MAX_DEPTH",
    "MAX_ENVS",
    "MAX_EPISODES",
    "MAX_EVAL_SLOTS",
    "MAX_GENS",
    "MAX_IMPORTS",
    "MAX_LAYERS",
    "MAX_NODES",
    "MAX_NUM_STEPS",
    "MAX_POP",
    "MAX_TOTAL_STEPS",
    "MAX_WIDTH",
    "MAX_WORKERS",
    "MINATAR_IMPORT",
    "Config",
    "DistillConfig",
    "EnvConfig",
    "EvalConfig",
    "FinetuneConfig",
    "PPOConfig",
    "SearchConfig",
    "SpaceConfig",
    "SupernetConfig",
    "TeacherConfig",
    "check_count",
    "check_env_id",
    "config_from_dict",
    "config_from_file",
    "config_to_dict",
    "dump_config",
    "env_import_flags",
    "is_atari",
    "load_config",
    "parse_override",
    "parse_yaml",
    "read_config_file",
    "read_yaml_text",
    "replace",
    "set_flag",
    "split_import",
]
