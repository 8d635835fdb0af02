"""Training the teacher with plain PPO (``a2d-evo train-teacher``).

``train_teacher`` writes ``RUN_DIR/teacher/checkpoint.pt`` (resumable training state) and
``RUN_DIR/teacher/agent/`` (the teacher as an agent folder, with its greedy evaluation and
the random policy's return on the same seeds in ``metrics.json``; see
:mod:`a2d_evo.train.teacher_folder`). A teacher trained elsewhere comes in through
:mod:`a2d_evo.train.import_teacher` instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from a2d_evo.config import Config, config_to_dict
from a2d_evo.envs import check_episode_bound, env_spec, make_vec_env
from a2d_evo.envs.image import layout_line
from a2d_evo.nets.agent import Agent
from a2d_evo.nets.cost import check_stage_memory
from a2d_evo.progress import write
from a2d_evo.runs.files import read_json_dict
from a2d_evo.runs.folder import RunFolder
from a2d_evo.runs.locks import writes
from a2d_evo.scale import ddp
from a2d_evo.train.learners import AgentLearner
from a2d_evo.train.loop import LoopOptions, run_ppo
from a2d_evo.train.streams import Streams, set_threads
from a2d_evo.train.teacher_folder import (
    check_space_fits,
    check_teacher_fits,
    save_teacher,
    teacher_arch,
)

__all__ = ["train_teacher"]


# one writer of RUN_DIR/teacher/ at a time, never through a symlink out of the run
@writes(lambda a: a["run"].inside(a["run"].teacher, "the teacher stage's files"))
def train_teacher(
    cfg: Config,
    run: RunFolder,
    *,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> Path:
    """Train the teacher arch with PPO for ``cfg.teacher.total_steps``; returns its agent folder.

    ``stop_after`` stops as SIGINT would after that update (checkpoint, then
    :class:`~a2d_evo.train.interrupts.TrainingInterrupted`). Under torchrun every rank trains
    with DDP on its share of the envs; rank 0 alone writes and evaluates.
    """
    arch = teacher_arch(cfg)
    spec = env_spec(cfg.env)
    check_space_fits(cfg, spec.obs_shape, spec.n_actions)
    check_teacher_fits(cfg, arch, spec.obs_shape, spec.n_actions)
    check_episode_bound(cfg.env)  # its evaluation at the end plays full episodes
    run.inside(run.teacher_agent, "the teacher's agent files")  # a received run's links
    tb_dir = run.tb_dir("teacher")
    check_stage_memory("teacher", arch, spec, cfg.ppo, arch_keys="teacher.arch")
    ctx = ddp.init_distributed(cfg.device)
    ddp.check_world_size(cfg.ppo, ctx.world_size)
    device = ctx.device
    folder = run.teacher
    if ctx.is_main:
        folder = run.bind_stage("teacher", cfg, resume)
        if progress and spec.raw_image is not None:  # the run's first stage: say it once
            write(layout_line(cfg.env.id, spec.raw_image, cfg.env.image_layout, spec.obs_scale))
    set_threads(cfg)
    streams = Streams(cfg.seed, "teacher")
    env_config = config_to_dict(cfg.env)
    agent = streams.build(
        lambda: Agent(arch, spec.obs_shape, spec.n_actions, env_config, spec.obs_scale)
    )
    agent = agent.to(device)
    envs = make_vec_env(cfg.env, cfg.ppo.num_envs // ctx.world_size, seed=cfg.seed, training=True)
    opts = LoopOptions(
        stage="teacher",
        total_steps=cfg.teacher.total_steps,
        budget_key="teacher.total_steps",
        checkpoint=folder / "checkpoint.pt",
        tb_dir=tb_dir,
        checkpoint_every=cfg.teacher.checkpoint_every,
        resume=resume,
        progress=progress,
        stop_after=stop_after,
        extra={"arch": arch.to_dict()},
    )
    learner = AgentLearner(ddp.wrap_model(agent, ctx), cfg)
    try:
        result = run_ppo(learner, cfg, envs, spec.obs_shape, spec.obs_dtype, streams, opts, device)
    finally:
        envs.close()
    if not ctx.is_main:
        return run.teacher_agent
    if result.sps is None and _saved_at(run.teacher_agent, result.global_step):
        # a resume that found the stage complete and its agent whole: nothing to write (the
        # teacher played again would rewrite the same weights and figures)
        if progress:
            write(
                f"train-teacher: the teacher in {run.teacher} already trained for "
                f"{result.global_step:,} env steps; nothing to resume (raise "
                "teacher.total_steps with --set to train it on)"
            )
        return run.teacher_agent
    measured: dict[str, Any] = {
        "train_wall_s": round(result.wall_s, 2),
        "train_recent_return": result.recent_return,
    }
    if result.sps is None:  # a resume that found the stage complete: keep what was measured
        earlier = read_json_dict(run.teacher_agent / "metrics.json", "teacher metrics")
        measured = {k: earlier.get(k, v) for k, v in measured.items()}
    extra = {
        "source": "train-teacher",
        "env_steps": result.global_step,
        **measured,
        "world_sizes": result.world_sizes,  # the report's Reproduce line uses torchrun
    }
    return save_teacher(agent.cpu(), cfg, run.teacher_agent, extra)


def _saved_at(folder: Path, env_steps: int) -> bool:
    """Whether ``folder`` holds the trained teacher of ``env_steps`` steps, whole: its
    ``arch.json`` (written last) and a ``metrics.json`` that records those steps."""
    if not (folder / "arch.json").is_file():
        return False
    metrics = read_json_dict(folder / "metrics.json", "teacher metrics")  # {} if unreadable
    return metrics.get("source") == "train-teacher" and metrics.get("env_steps") == env_steps
