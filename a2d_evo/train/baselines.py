"""The manually designed family a front must beat (``a2d-evo baselines``).

The teacher's arch scaled in width (x0.25, x0.5, x1 by default), each trained from scratch.
With ``S = supernet.total_steps`` and ``B = finetune.steps``:

* ``ppo_x<w>``: plain PPO for ``teacher.total_steps`` (the teacher's own recipe and budget);
* ``distill_x<w>``: plain policy distillation from the teacher for ``S + B`` steps: the loss
  is ``alpha * KL(pi_T || pi_s) + beta * ((V_s - V_T) / sigma)^2`` alone, with no RL term, on
  states the student visits (on-policy distillation; Rusu et al. 2016 distil on the teacher's
  states, which leaves the student untrained on its own mistakes);
* ``a2d_x<w>``: PPO + A2D distillation (the fine-tune's loss, annealed to 0 over its training
  with ``finetune.kickstart`` as the fine-tune's is) for ``S + B`` steps.

So each distilled baseline alone gets as many training steps as the whole supernet plus one
front member's fine-tune: the searched agents have no advantage in training steps over it.
They do have env interaction that trains nothing and a baseline does not get: the search's
episodes (which choose the archs), the delivery's race and the fine-tune's validation
episodes (which choose between the inherited and the fine-tuned weights); ``BENCHMARKS.md``
([J]) states them.

Each becomes an agent folder ``RUN_DIR/baselines/<name>/`` scored on the same seeds as the
front's final re-scoring, so the report compares like with like. The budgets are the run's
own (:func:`run_budgets`: the teacher's, the supernet's and the delivered front's fine-tune, as
they ran). The settings are the config given to ``baselines`` (the run's, plus its ``--set``),
which :func:`recipe_differences` compares with the stages' and says where they differ. A
baseline whose folder already holds ``metrics.json`` for this budget, teacher and
seeds is skipped (one trained for others is trained again); an interrupted one resumes from its
checkpoint.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from a2d_evo.config import MAX_WIDTH, Config, DistillConfig, config_to_dict, replace
from a2d_evo.config.compare import config_diff, recipe_digest, setting, training_sets
from a2d_evo.envs import env_spec, make_vec_env
from a2d_evo.errors import ConfigError, FormatError, RunFolderError
from a2d_evo.evaluation.episodes import resolve_device, score_against_references
from a2d_evo.evaluation.seeds import check_scoring_seeds, final_seeds
from a2d_evo.formats import ARCH_FILE, BASELINE_METHODS, DEFAULT_WIDTHS, baseline_name
from a2d_evo.nets.agent import Agent
from a2d_evo.nets.agent_folder import save_agent
from a2d_evo.nets.cost import check_stage_memory
from a2d_evo.nets.space import Arch
from a2d_evo.runs.files import file_digest, read_json_dict, safe_name
from a2d_evo.runs.folder import RunFolder
from a2d_evo.runs.locks import folder_lock, writes
from a2d_evo.train.checkpoint import changed_pins, checkpoint_extra
from a2d_evo.train.distill import distill_actor_loss, distill_critic_loss
from a2d_evo.train.learners import AgentLearner
from a2d_evo.train.loop import LoopOptions, run_ppo
from a2d_evo.train.ppo import Batch
from a2d_evo.train.streams import Streams, set_threads
from a2d_evo.train.teacher_folder import load_teacher_for


def scale_arch(arch: Arch, multiplier: float) -> Arch:
    """``arch`` with every width multiplied by ``multiplier`` (rounded, at least 1)."""
    if multiplier <= 0:
        raise ConfigError(f"--widths: multipliers must be > 0, got {multiplier}")

    def s(w: int) -> int:
        return max(1, round(w * multiplier))

    return arch.map_widths(s)


class DistillOnlyLearner(AgentLearner):
    """Plain policy distillation of one static agent: no PPO term in the loss (values in
    units of sigma, as every distilled learner's)."""

    def __init__(self, agent: nn.Module, cfg: Config, teacher: nn.Module) -> None:
        super().__init__(agent, cfg, teacher)
        # The vanilla switch (alpha = beta = 0) is meaningless here: distil with the defaults.
        d = cfg.distill
        default = DistillConfig()
        self.alpha, self.beta = (default.alpha, default.beta) if d.vanilla else (d.alpha, d.beta)

    def loss(self, mb: Batch, progress: float) -> tuple[Tensor, dict[str, Tensor]]:
        out, mb = self.scaled(self.model(mb.obs), mb)
        assert mb.teacher_logits is not None and mb.teacher_values is not None
        actor = distill_actor_loss(out.logits, mb.teacher_logits, self.cfg.distill.temperature)
        critic = distill_critic_loss(out.value, mb.teacher_values)
        loss = self.alpha * actor + self.beta * critic
        logs = {"distill_actor": actor.detach(), "distill_critic": critic.detach()}
        return loss, logs


def baseline_steps(cfg: Config, method: str) -> int:
    """The budget of one baseline (recorded as ``baseline_budget``): ``teacher.total_steps``
    for ``ppo``, ``S + B`` otherwise."""
    if method == "ppo":
        return cfg.teacher.total_steps
    return cfg.supernet.total_steps + cfg.finetune.steps


def baseline_train_steps(cfg: Config, method: str) -> int:
    """The env steps one baseline trains: the whole updates the agents it is compared with
    trained. ``ppo``: the teacher's (one stage, the same rounding). ``distill`` and ``a2d``:
    the supernet's updates plus one fine-tune's, each stage rounded on its own
    (:meth:`~a2d_evo.config.schema.PPOConfig.updates_for`; a fine-tune of 0 steps runs
    none); rounding ``S + B`` once gave one update more on Acrobot and LunarLander."""
    ppo = cfg.ppo
    if method == "ppo":
        return ppo.updates_for(cfg.teacher.total_steps) * ppo.batch_size
    tune = ppo.updates_for(cfg.finetune.steps) if cfg.finetune.steps else 0
    return (ppo.updates_for(cfg.supernet.total_steps) + tune) * ppo.batch_size


def run_budgets(cfg: Config, run: RunFolder) -> Config:
    """``cfg`` with the budgets the run's agents had, which the baselines match: the
    teacher's ``teacher.total_steps`` and the supernet's ``supernet.total_steps`` from their
    stages' ``config.yaml`` (a ``--resume`` may have raised them), and ``finetune.steps`` from
    the delivered front (``delivered.json``'s ``finetune_steps``, what ``export --finetune``
    gave, when it was delivered from the current ``front.json``), with the supernet steps that
    delivery records (its members' S); ``cfg``'s own where the run records none (an imported
    teacher, nothing delivered yet)."""
    teacher, supernet = run.stage_config("teacher"), run.stage_config("supernet")
    steps = cfg.finetune.steps
    shared = (supernet or cfg).supernet.total_steps
    delivered, front = run.agents / "delivered.json", run.search / "front.json"
    if delivered.is_file() and front.is_file():
        data = read_json_dict(delivered, "delivered front")
        recorded = data.get("finetune_steps")
        if data.get("front_sha256") == file_digest(front) and isinstance(recorded, int):
            steps = recorded
            # the supernet the members came from: a train-supernet --resume raising its
            # budget since (even one cut short) leaves this front, trained for the old S
            had = data.get("supernet_steps")
            if isinstance(had, int) and not isinstance(had, bool) and had > 0:
                shared = had
    return replace(
        cfg,
        teacher=replace(cfg.teacher, total_steps=(teacher or cfg).teacher.total_steps),
        supernet=replace(cfg.supernet, total_steps=shared),
        finetune=replace(cfg.finetune, steps=steps),
    )


def recipe_differences(cfg: Config, run: RunFolder, methods: Sequence[str]) -> list[str]:
    """Where ``cfg``, which the baselines train with, differs from the settings the run's
    agents were trained with: ``ppo`` against the teacher stage's (``ppo_x``), ``ppo`` and
    ``distill`` against the supernet stage's (``distill_x``, ``a2d_x``). They differ only where
    a stage ran with its own ``--set``, or ``baselines`` is given one; a stage that has not run,
    or an imported teacher (trained elsewhere), is not compared."""
    compared = []
    if "ppo" in methods and not run.imported_teacher():  # trained elsewhere: no stage config
        compared.append(("teacher", "ppo"))
    if any(m in methods for m in ("distill", "a2d")):
        compared += [("supernet", "ppo"), ("supernet", "distill")]
    said = []
    for stage, section in compared:
        ran = run.stage_config(stage)
        if ran is None:
            continue
        said += [
            f"{key} {setting(cfg, key)!r} (the {stage} trained with {setting(ran, key)!r})"
            for key in config_diff(cfg, ran, (section,))  # runtime keys aside
        ]
    return list(dict.fromkeys(said))


def baseline_config(cfg: Config, method: str) -> Config:
    """The settings a baseline trains with: ``cfg``, with the fine-tune's distillation for
    ``a2d`` (:attr:`~a2d_evo.config.Config.finetune_distill`: the same loss, annealed to 0
    over its training when ``finetune.kickstart``)."""
    return replace(cfg, distill=cfg.finetune_distill) if method == "a2d" else cfg


def baseline_sets(cfg: Config, run: RunFolder) -> list[str]:
    """The ``--set`` flags that give ``cfg``'s training settings over the config ``baselines``
    reads (the search's ``config.yaml`` where there is one, as ``export`` does, else the
    run's), recorded as ``baseline_sets`` for the report's Reproduce lines (``baselines --set
    finetune.kickstart=true`` trains other ``a2d_x`` baselines). ``finetune.steps`` is left
    out: a baseline takes the run's budgets (:func:`run_budgets`), whatever the config says."""
    return training_sets(run.config_since("search")[0], cfg)


def baseline_recipe(cfg: Config, method: str) -> str:
    """SHA-256 of the settings a baseline trains with
    (:func:`~a2d_evo.config.compare.recipe_digest` of :func:`baseline_config`): the env and
    ``ppo``, and ``distill`` for the distilled ones (``ppo_x`` has no teacher term)."""
    sections = ("env", "ppo") if method == "ppo" else ("env", "ppo", "distill")
    return recipe_digest(baseline_config(cfg, method), sections)


def _trained_for(
    metrics: dict[str, Any],
    steps: int,
    trained: int,
    seeds: list[int],
    teacher: str,
    recipe: str,
) -> bool:
    """Whether a finished baseline's ``metrics.json`` is this one: the same budget and env
    steps trained (``S + B`` alone may hold two splits that round to different updates), the
    front's final seeds, the same teacher (``policy.pt`` digest) and settings
    (:func:`baseline_recipe`: ``baselines --set ppo.lr=...`` trains other baselines); files
    from before the budget, the teacher or the settings were recorded match any."""
    return (
        metrics.get("baseline_budget", steps) == steps
        and metrics.get("env_steps", trained) == trained
        and metrics.get("seeds") == seeds
        and metrics.get("teacher_sha256", teacher) == teacher
        and metrics.get("baseline_recipe", recipe) == recipe
    )


# one writer of RUN_DIR/baselines/ at a time, never through a symlink out of the run
@writes(lambda a: a["run"].inside(a["run"].baselines, "baselines"))
def train_baselines(
    cfg: Config,
    run: RunFolder,
    *,
    widths: Sequence[float] = DEFAULT_WIDTHS,
    methods: Sequence[str] = BASELINE_METHODS,
    resume: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Train and score every (method, width) baseline; returns their agent folders.

    Agent by agent: a finished baseline (its ``metrics.json``) is skipped; an interrupted
    one (its checkpoint, no ``arch.json``) continues with ``resume`` and is refused without
    it, naming ``a2d-evo baselines RUN_DIR --resume`` (what the interrupt message advises).
    One trained again over an earlier finished one (another budget or seeds) and interrupted
    keeps that one's ``arch.json``, so it continues without ``--resume`` too.
    """
    for m in methods:
        if m not in BASELINE_METHODS:
            raise ConfigError(
                f"baselines: unknown method {m!r} (known: {', '.join(BASELINE_METHODS)})"
            )
    if not widths:
        raise ConfigError("--widths: give at least one multiplier, e.g. 0.25,0.5,1")
    if not methods:  # it trained nothing and said it would train them
        raise ConfigError(f"--methods: give at least one of {','.join(BASELINE_METHODS)}")
    named: dict[str, float] = {}
    for w in widths:  # a folder per width: two that name one folder would share it
        name = baseline_name("ppo", w).removeprefix("ppo_")
        if name in named and named[name] != w:
            raise ConfigError(
                f"--widths: {named[name]!r} and {w!r} both name the folders *_{name} (6 "
                "significant digits); give widths that differ within them"
            )
        named[name] = w
    if "a2d" in methods and cfg.distill.vanilla:
        raise ConfigError(
            "baselines: the a2d baselines distil from the teacher, but distill.alpha and "
            "distill.beta are both 0; set one of them, or leave a2d out of `baselines --methods`"
        )
    if "distill" in methods and cfg.distill.alpha == 0 and cfg.distill.beta > 0:
        # the loss would be the critic term alone, which never moves the policy head
        raise ConfigError(
            "baselines: the distill baselines imitate the teacher's policy, but distill.alpha "
            "is 0 (a critic-only config): their policy would stay untrained; set distill.alpha "
            "> 0, or leave distill out of `baselines --methods`"
        )
    run.load_config()
    if not (run.teacher_agent / "arch.json").is_file():
        raise ConfigError(
            f"baselines need the teacher in {run.teacher_agent}; {run.missing_hint('teacher')}"
        )
    front = run.search / "front.json"
    if front.is_file():  # scored where the front's members were, or not comparable with them
        check_scoring_seeds(cfg, read_json_dict(front, "front"), front, "baselines")
    spec = env_spec(cfg.env)
    device = resolve_device(cfg.device)
    set_threads(cfg)
    # checked against the env as every stage does (a teacher copied in may read other inputs)
    teacher = load_teacher_for(
        cfg, run.teacher_agent, spec.obs_shape, spec.n_actions, obs_scale=spec.obs_scale
    )
    # the teacher as it is (an imported one need not be the config's teacher.arch)
    base = teacher.arch
    teacher_sha = file_digest(run.teacher_agent / "policy.pt")
    sets = baseline_sets(cfg, run)  # before the run's budgets replace the config's
    cfg = run_budgets(cfg, run)
    recipes = {m: baseline_recipe(cfg, m) for m in methods}  # pinned, checked and recorded
    seeds = final_seeds(cfg.seed, cfg.search.final_episodes)
    if progress:
        whose = (
            "teacher.total_steps: the teacher was imported, so the config's budget, not its own"
            if run.imported_teacher()
            else "the teacher's"
        )
        print(f"baselines: ppo for {baseline_steps(cfg, 'ppo'):,} env steps ({whose}), "
              f"distill and a2d for {baseline_steps(cfg, 'a2d'):,} (the supernet's "
              f"{cfg.supernet.total_steps:,} plus the delivered fine-tune's "
              f"{cfg.finetune.steps:,})")  # fmt: skip
    differences = recipe_differences(cfg, run, methods)
    if differences:  # a comparison at other settings than the agents had: said, not refused
        print(
            "a2d-evo baselines: note: the baselines train with "
            + "; ".join(differences)
            + "; give the stage's values with --set to compare like with like",
            file=sys.stderr,
        )
    env_dict = config_to_dict(cfg.env)
    archs = {m: scale_arch(base, m) for m in widths}

    def pins(method: str, multiplier: float) -> dict[str, Any]:
        """What a baseline's checkpoint must match to be resumed (else it is trained anew)."""
        return {
            "arch": archs[multiplier].to_dict(),
            "method": method,
            "baseline_budget": baseline_steps(cfg, method),
            "baseline_train_steps": baseline_train_steps(cfg, method),
            "teacher_sha256": teacher_sha,
            "baseline_recipe": recipes[method],
        }

    stale = set()
    for multiplier in widths:  # before any is trained
        for method in methods:
            name = safe_name(baseline_name(method, multiplier))
            run.inside(run.baselines / name, "baselines")  # a received run's links out of it
            run.tb_dir("baselines", name)
            checkpoint = run.baselines / f".{name}.checkpoint.pt"
            if checkpoint.is_file() and changed_pins(
                _checkpoint_extra(checkpoint, f"baseline-{name}"), pins(method, multiplier)
            ):
                stale.add(name)  # of another budget, teacher, arch or settings: not continued
            elif (
                not resume
                and not (run.baselines / name / ARCH_FILE).is_file()
                and checkpoint.is_file()
            ):
                chosen = ""  # the user's choice, or --resume would train every default
                if tuple(widths) != DEFAULT_WIDTHS:
                    chosen += f" --widths {','.join(f'{w:g}' for w in widths)}"
                if tuple(methods) != tuple(BASELINE_METHODS):
                    chosen += f" --methods {','.join(methods)}"
                raise RunFolderError(
                    f"baseline {name} in {run.baselines} was interrupted; continue it with "
                    f"`a2d-evo baselines {run.quoted}{chosen} --resume`, or "
                    f"delete {run.baselines / f'.{name}.checkpoint.pt'} to train it from scratch"
                )
    for multiplier, arch in archs.items():  # before any is trained: --widths 999 was taken
        d = arch.to_dict()
        widest = max([*d.get("widths", []), *(c["width"] for c in d.get("convs", [])),
                      d.get("fc") or 0])  # fmt: skip
        if widest > MAX_WIDTH:
            raise ConfigError(
                f"--widths {multiplier:g}: the teacher {base} scaled is {arch}, a layer of "
                f"{widest:,} units, above {MAX_WIDTH:,} (MAX_WIDTH)"
            )
        check_stage_memory(
            f"baseline x{multiplier:g}", arch, spec, cfg.ppo,
            arch_keys=f"--widths {multiplier:g} (of the teacher {base})",
        )  # fmt: skip
    folders = []
    for multiplier in widths:
        arch = archs[multiplier]
        for method in methods:
            name = safe_name(baseline_name(method, multiplier))
            folder = run.baselines / name  # checked above: inside the run
            steps = baseline_steps(cfg, method)
            if (folder / "metrics.json").is_file():
                done = read_json_dict(folder / "metrics.json", "metrics")
                whole = (folder / ARCH_FILE).is_file()  # its save not cut short (save_agent)
                trained = baseline_train_steps(cfg, method)
                if whole and _trained_for(
                    done, steps, trained, seeds, teacher_sha, recipes[method]
                ):
                    if progress:
                        print(f"baseline {name}: already trained, skipped")
                    folders.append(folder)
                    continue
                with folder_lock(folder):  # not this baseline: it is no longer finished
                    (folder / "metrics.json").unlink()
                if progress:
                    why = "trained for another budget, teacher, settings or seeds" if whole else (
                        "its save was cut short (no arch.json)")  # fmt: skip
                    print(f"baseline {name}: {why}; training it again")
            checkpoint = run.baselines / f".{name}.checkpoint.pt"
            if name in stale:
                with folder_lock(folder):
                    checkpoint.unlink(missing_ok=True)
                if progress:
                    print(f"baseline {name}: its checkpoint was trained for another budget, "
                          "teacher, arch or settings; training it again")  # fmt: skip
            streams = Streams(cfg.seed, "baseline")  # same init for every method of a width
            agent = streams.build(
                partial(Agent, arch, spec.obs_shape, spec.n_actions, env_dict, spec.obs_scale)
            )
            agent = agent.to(device)
            learner: Any
            if method == "ppo":
                learner = AgentLearner(agent, cfg)
            elif method == "a2d":
                a2d_cfg = baseline_config(cfg, method)
                learner = AgentLearner(agent, a2d_cfg, teacher.to(device).eval())
            else:
                learner = DistillOnlyLearner(agent, cfg, teacher.to(device).eval())
            opts = LoopOptions(
                stage=f"baseline-{name}",
                total_steps=baseline_train_steps(cfg, method),
                budget_key="",  # the run's budget: no key raises it (cmd_baselines refuses)
                checkpoint=checkpoint,
                tb_dir=run.tb_dir("baselines", name),
                checkpoint_every=cfg.supernet.checkpoint_every,
                resume=checkpoint.is_file(),
                progress=progress,
                pins=pins(method, multiplier),
            )
            envs = make_vec_env(cfg.env, cfg.ppo.num_envs, seed=cfg.seed, training=True)
            try:
                result = run_ppo(
                    learner, cfg, envs, spec.obs_shape, spec.obs_dtype, streams, opts, device
                )
            finally:
                envs.close()
            extra = {
                "method": method,
                "width_multiplier": multiplier,
                "env_steps": result.global_step,
                "baseline_budget": steps,
                "teacher_sha256": teacher_sha,
                "baseline_recipe": recipes[method],
                "baseline_sets": sets,
                "train_wall_s": round(result.wall_s, 2),
            }
            if learner.sigma is not None:  # each distilled learner's own value unit
                extra["value_unit"] = learner.sigma
            folders.append(
                score_and_save(agent.cpu().eval(), cfg, run, folder, extra, teacher.cpu())
            )
            checkpoint.unlink(missing_ok=True)
            if progress:
                print(f"baseline {name}: {arch} -> {folder}")
    return folders


def _checkpoint_extra(path: Path, stage: str) -> dict[str, Any]:
    """What a checkpoint pinned, or {} when it cannot be read (the resume then names why)."""
    try:
        return checkpoint_extra(path, stage)
    except FormatError:
        return {}


def score_and_save(
    agent: Agent, cfg: Config, run: RunFolder, folder: Path, extra: dict[str, Any], teacher: Agent
) -> Path:
    """Score ``agent`` on the front's final seeds (R_random and R_teacher on the same ones)."""
    seeds = final_seeds(cfg.seed, cfg.search.final_episodes)
    _, metrics = score_against_references(agent, teacher, cfg, len(seeds), seeds[0], extra)
    with folder_lock(folder):  # the agent folder too: `finetune`/`eval` may be writing it
        return save_agent(agent, folder, metrics=metrics)
