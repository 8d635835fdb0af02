"""Importing a teacher trained by Stable-Baselines3 or CleanRL (``a2d-evo import-teacher``).

:func:`import_teacher` maps another library's actor-critic onto our :class:`Agent`, reading
state dicts only (``torch.load(weights_only=True)``; an SB3 zip's pickled ``data`` member
is never unpickled), and writes ``RUN_DIR/teacher/agent/`` as a trained teacher would be.
Which networks map, and how (a shared trunk; separate actor and critic MLPs as one
block-diagonal MLP), is :mod:`a2d_evo.train.foreign_checkpoints`'s to say; this module checks
the result against the env and the config and saves it.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
from torch import Tensor

from a2d_evo.config import Config, config_to_dict
from a2d_evo.envs import check_episode_bound, env_spec
from a2d_evo.envs.image import ALE_OBS_SCALE
from a2d_evo.errors import ArchError, FormatError, TrainingError
from a2d_evo.nets.agent import Agent, trunk_hw
from a2d_evo.nets.cost import flops
from a2d_evo.nets.space import Arch, CNNArch, MLPArch
from a2d_evo.runs.folder import RunFolder
from a2d_evo.runs.locks import writes
from a2d_evo.train.foreign_checkpoints import (
    convert_cleanrl,
    convert_sb3,
    detect_format,
    read_sb3_zip,
    read_state_dict,
)
from a2d_evo.train.streams import set_threads
from a2d_evo.train.teacher_folder import check_space_fits, save_teacher


# one writer of RUN_DIR/teacher/ at a time, never through a symlink out of the run
@writes(lambda a: a["run"].inside(a["run"].teacher, "the teacher stage's files"))
def import_teacher(
    source: Path,
    cfg: Config,
    run: RunFolder,
    fmt: Literal["auto", "sb3", "cleanrl"] | str = "auto",
) -> Path:
    """Import an SB3 PPO zip or a CleanRL state dict as ``RUN_DIR/teacher/agent/``.

    The network must express exactly as one of our agents (see :mod:`.foreign_checkpoints`) and
    fit the env's observation and action sizes; otherwise an error is raised before anything
    is written. The imported agent is evaluated like a trained teacher.
    """
    source = Path(source)
    if source.is_dir():
        what = (
            "an a2d-evo agent folder, a teacher as it is: copy it to RUN_DIR/teacher/agent "
            f"(`mkdir -p {shlex.quote(str(run.teacher))} && cp -r {shlex.quote(str(source))} "
            f"{shlex.quote(str(run.teacher_agent))}`)"
            if (source / "arch.json").is_file()
            else "a folder"
        )
        raise FormatError(
            f"teacher file {source} is {what}; import-teacher reads one file (an SB3 PPO zip or "
            "a CleanRL state dict)"
        )
    if not source.is_file():
        raise FormatError(f"teacher file {source} not found")
    kind = detect_format(source) if fmt == "auto" else fmt
    data: dict[str, Any] | None = None
    if kind == "sb3":
        state, data = read_sb3_zip(source)
        arch, mapped = convert_sb3(state, data)
    elif kind == "cleanrl":
        state = read_state_dict(source)
        arch, mapped = convert_cleanrl(state)
    else:
        raise FormatError(f"teacher format {fmt!r}: expected 'auto', 'sb3' or 'cleanrl'")
    spec = env_spec(cfg.env)
    notes = _import_notes(kind, arch, data, cfg)
    check_converted_fits_env(arch, mapped, spec.obs_shape, spec.n_actions, cfg.env.id, source)
    notes += _cost_note(arch, state, flops(arch, spec.obs_shape, spec.n_actions))
    check_space_fits(cfg, spec.obs_shape, spec.n_actions)
    check_episode_bound(cfg.env)  # the teacher's evaluation plays full episodes
    run.inside(run.teacher_agent, "the teacher's agent files")  # a received run's links
    # The imported CNNs (CleanRL ppo_atari, SB3 NatureCNN) divide pixels by 255 themselves:
    # their scale is the default one, which every later stage holds against the env's.
    if isinstance(arch, CNNArch) and spec.obs_scale != ALE_OBS_SCALE:
        raise FormatError(
            f"{source}: an imported CNN divides its pixels by 255, and {cfg.env.id}'s "
            f"observations are scaled by {spec.obs_scale:g} (not 0-255 frames): every later "
            "stage would refuse the teacher; train one with `a2d-evo train-teacher`"
        )
    agent = Agent(arch, spec.obs_shape, spec.n_actions, config_to_dict(cfg.env))
    agent.load_state_dict(mapped, strict=True)
    run.bind_stage("teacher", cfg, resume=False)
    set_threads(cfg)
    for note in notes:
        print(f"import-teacher: {note}", file=sys.stderr)
    extra = {"source": f"import-teacher ({kind})", "imported_from": str(source)}
    return save_teacher(agent, cfg, run.teacher_agent, extra)


def _import_notes(kind: str, arch: Arch, data: Mapping[str, Any] | None, cfg: Config) -> list[str]:
    """What the file cannot tell, or tells against the config: a CleanRL state dict records
    no activation (a ReLU ``ppo.py`` imported as tanh is another policy, without an error);
    an SB3 zip records the discount it trained with, and values of another discount are
    another scale for the critic distillation."""
    notes = []
    if kind == "cleanrl" and isinstance(arch, MLPArch):
        notes.append(
            "a CleanRL state dict records no activation: tanh is assumed (ppo.py's); a teacher "
            "trained with another one imports as another policy, so compare the greedy return "
            "below with your own"
        )
    if isinstance(arch, CNNArch) and cfg.env.atari:
        notes.append(
            "CleanRL's ppo_atari and SB3's AtariWrapper press FIRE on every reset and end an "
            "episode at each lost life; a2d-evo presses nothing (the agent must pick FIRE "
            "itself, docs/atari_pipeline.md): a teacher that never learned to fire idles "
            "here, so compare the greedy return below with your own"
        )
    gamma = (data or {}).get("gamma")
    if isinstance(gamma, int | float) and not isinstance(gamma, bool) and gamma != cfg.ppo.gamma:
        notes.append(
            f"the teacher was trained with gamma {gamma:g} (its zip's data) and the config's "
            f"ppo.gamma is {cfg.ppo.gamma:g}: its values are of another discount, which the "
            f"critic distillation then learns; --set ppo.gamma={gamma:g} to match"
        )
    return notes


def _cost_note(arch: Arch, source: Mapping[str, Tensor], imported_flops: int) -> list[str]:
    """The imported MLP's FLOPs (``imported_flops``: :func:`a2d_evo.nets.cost.flops` of
    ``arch``, the report's figure) against the file's own network at the same definition (2 x
    the weights of its Linear layers): separate actor and critic become one block-diagonal
    network whose zero blocks are counted too (up to about twice)."""
    if not isinstance(arch, MLPArch):  # the Nature CNN maps one to one
        return []
    weights = {k: v.numel() for k, v in source.items() if k.endswith("weight") and v.dim() == 2}
    own = 2 * sum(weights.values())
    actor_prefixes = (
        "actor.",
        "action_net.",
        "mlp_extractor.policy_net.",
        "mlp_extractor.shared_net.",
    )
    actor = 2 * sum(n for k, n in weights.items() if k.startswith(actor_prefixes))
    if imported_flops == own:  # one shared net already: nothing block-diagonal
        return []
    return [
        f"imported as {arch} ({imported_flops:,} FLOPs, the block-diagonal zeros counted: "
        f"the teacher's FLOPs in the report are these); the file's actor and critic cost "
        f"{own:,}, the actor alone {actor:,}"
    ]


def check_converted_fits_env(
    arch: Arch,
    state: Mapping[str, Tensor],
    obs_shape: tuple[int, ...],
    n_actions: int,
    env_id: str,
    source: Path,
) -> None:
    """Raise :class:`TrainingError` unless the converted network fits the env's spaces."""
    if isinstance(arch, CNNArch) != (len(obs_shape) == 3):
        raise TrainingError(
            f"{source} holds a {arch.kind.upper()} network, {env_id} needs "
            f"{'a CNN' if len(obs_shape) == 3 else 'an MLP'}"
        )
    if isinstance(arch, MLPArch):
        got, want = int(state["layers.0.weight"].shape[1]), int(np.prod(obs_shape))
        if got != want:
            raise TrainingError(f"{source} takes observations of size {got}, {env_id} gives {want}")
    else:
        got_c = int(state["convs.0.weight"].shape[1])
        try:
            h, w = trunk_hw(arch, tuple(obs_shape))
        except ArchError as exc:
            raise TrainingError(f"{source} does not fit {env_id}: {exc}") from None
        fc_in = int(state["fc.weight"].shape[1])
        want_in = arch.last_width * h * w
        if got_c != obs_shape[0] or fc_in != want_in:
            raise TrainingError(
                f"{source} takes {got_c}-channel frames with an FC of {fc_in} inputs; "
                f"{env_id} gives {tuple(obs_shape)} (FC input {want_in})"
            )
    got_a = int(state["policy.weight"].shape[0])
    if got_a != n_actions:
        raise TrainingError(f"{source} has {got_a} actions, {env_id} has {n_actions}")
