"""Supernet training (PPO + A2D distillation, sandwich rule) and scoring its subnets.

**Who acts.** Each rollout is collected by ``supernet.rollout_subnets`` distinct subnets:
the largest, the smallest and random ones, re-drawn every rollout. The ``num_envs`` env
slots are split between them in contiguous groups (``np.array_split`` order: slots
``0..n0-1`` run the largest, the next group the smallest, ...), and one grouped forward
per step acts for all slots. Every sample stores the log-prob and value of the subnet that
acted in its slot: that subnet is the behaviour policy mu of the sample.

**Which rows train which subnet (the estimator).** The subnets trained in an update are
exactly the ones that collected its rollout, fixed over the update's epochs. For subnet s a
row collected by another subnet mu has the importance ratio ``pi_s(a|x) / mu(a|x)``, which is
not a valid estimator once PPO clips it: with a ratio above ``1 + c`` and a negative
advantage PPO's ``min`` takes the unclipped term and the gradient grows with the ratio (the
case dual-clip PPO exists for), and the advantages are mu's, not s's. So each subnet's PPO
policy, value and entropy terms use only its own rows, where the ratio is the ordinary
on-policy one and the advantages come from its own values (GAE per env slot, and each slot
is one subnet's). The distillation terms are supervised (the teacher's outputs on the
visited states) and use every row. ``tests/test_distill.py`` checks that rows of another
subnet contribute no PPO gradient. With ``rollout_subnets`` subnets each sees about
``1 / rollout_subnets`` of the rows, so ``ppo.num_envs`` should be a multiple of it.

**Value units.** The supernet's value head, PPO's value loss and the critic distillation
work on ``V / sigma`` (:mod:`a2d_evo.train.distill`). sigma is set once, when the first
rollout is prepared: the root mean square of the teacher's values on it, stored in the
supernet's ``value_scale`` buffer and so in every checkpoint and in ``weights.pt``. The first
rollout's GAE used the untrained head's outputs as raw values (sigma unknown yet; its stored
values are rescaled so that the value clipping stays centred on the head's outputs); from the
second on, acting multiplies the head by sigma, so GAE sees raw values.

The teacher's logits and values for a rollout are computed once, in one no-grad pass over
the whole batch. With ``alpha = beta = 0`` (the vanilla one-shot ablation) each subnet's loss
is exactly PPO's, on values in units of sigma with ``distill.vf_coef``, as in the distilled
arms, and sigma still comes from the teacher's values on the first rollout when a teacher is
given or the run holds one (loaded for that alone): the ablation changes the distillation
terms and nothing else. Without any teacher sigma is the root mean square of the first
rollout's returns, a smaller unit (GAE returns of a random policy bootstrapped from an
untrained head span about ``1 / (1 - gamma * lambda)`` rewards, not ``1 / (1 - gamma)``:
3.9 against the teacher's 45 on CartPole, seed 0).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from a2d_evo.config import Config, replace
from a2d_evo.envs import env_spec, make_vec_env
from a2d_evo.errors import ConfigError
from a2d_evo.evaluation.episodes import evaluate_agent
from a2d_evo.evaluation.seeds import finetune_eval_seed
from a2d_evo.formats import POLICY_FILE
from a2d_evo.nets.agent import Agent, PolicyOutput
from a2d_evo.nets.agent_folder import extract
from a2d_evo.nets.cost import check_stage_memory
from a2d_evo.nets.space import Arch, SearchSpace
from a2d_evo.nets.supernet import Supernet, load_supernet
from a2d_evo.runs.files import file_digest, read_json_dict, torch_save, write_json
from a2d_evo.runs.folder import RunFolder
from a2d_evo.runs.locks import writes
from a2d_evo.scale import ddp
from a2d_evo.train.checkpoint import check_pins, checkpoint_extra
from a2d_evo.train.distill import (
    distill_coefs,
    distill_loss,
    in_value_units,
    with_teacher,
)
from a2d_evo.train.learners import first_rollout_scale, loss_logs, normalised_per_actor
from a2d_evo.train.loop import LoopOptions, run_ppo
from a2d_evo.train.ppo import Batch, Policy
from a2d_evo.train.sampling import SubnetSampler, rollout_assignment, sample_distinct
from a2d_evo.train.streams import Streams, set_threads
from a2d_evo.train.teacher_folder import load_teacher_for, teacher_arch

__all__ = ["SupernetLearner", "score_subnets", "train_supernet"]


class SupernetLearner:
    """The supernet stage's part of the loop: who acts, and the sandwich loss."""

    def __init__(
        self,
        supernet: nn.Module,
        cfg: Config,
        teacher: Agent | None,
        rng: Any,
        num_envs: int | None = None,
    ) -> None:
        # the supernet, or its DDP wrapper (which passes space/forward_groups through)
        self.model = cast(Supernet, supernet)
        self.space: SearchSpace = self.model.space
        self.cfg = cfg
        self.teacher = None if cfg.distill.vanilla else teacher
        """The teacher every update distils from; None in the vanilla arm."""
        self.sigma_teacher = teacher
        """Whose values on the first rollout fix sigma (in the vanilla arm a teacher given
        for that alone); None: the rollout's returns."""
        self.sigma_from: str | None = None
        """What fixed sigma: ``teacher`` or ``returns`` (kept in the checkpoint, so a resumed
        run says what its first rollout used; None for checkpoints written before)."""
        self.rng = rng
        self.num_envs = num_envs or cfg.ppo.num_envs
        """Env slots this process steps (a torchrun rank's share of ``ppo.num_envs``)."""
        net = self.supernet
        self.sampler = SubnetSampler(self.space, net.obs_shape, net.n_actions,
                                     cfg.supernet.sampling)  # fmt: skip
        self.rollout_archs: list[Arch] = []
        self._slot_actor = torch.zeros(0, dtype=torch.long)
        """Index into ``rollout_archs`` of the subnet acting in each env slot."""
        self._shares: list[float] = []
        """Fraction of the rollout's rows each of ``rollout_archs`` collected."""
        self._sigma: float | None = None
        """sigma of the update being trained (``value_unit``, read in :meth:`prepare`)."""
        # advantages are normalised in loss(), per subnet over its own rows, not in ppo_loss;
        # values are in units of sigma (distill.vf_coef weighs their loss)
        self._ppo = replace(cfg.ppo, norm_adv=False, vf_coef=cfg.distill.vf_coef)

    @property
    def supernet(self) -> Supernet:
        """The supernet itself (not its DDP wrapper): owner of the ``value_scale`` buffer."""
        return cast(Supernet, ddp.unwrap_model(self.model))

    def policy(self, update: int) -> Policy:
        # The subnets split the run's ppo.num_envs slots as one process would; a torchrun rank
        # acts in its contiguous shard of them (its envs'), so the mix of subnets and each
        # one's share of the rows do not depend on the rank count (every rank draws the same
        # subnets: one rng stream). A subnet with no slot on a rank has no PPO rows there.
        ctx = ddp.context_of(self.model)
        total = self.num_envs * ctx.world_size
        archs, sizes = rollout_assignment(
            self.sampler, self.rng, self.cfg.supernet.rollout_subnets, total
        )
        self.rollout_archs = archs
        every = torch.repeat_interleave(
            torch.arange(len(archs)), torch.as_tensor(sizes, dtype=torch.long)
        )
        self._slot_actor = every[ddp.shard(total, ctx)]
        self._shares = [size / total for size in sizes]
        acting, counts = torch.unique_consecutive(self._slot_actor, return_counts=True)
        here = [archs[int(j)] for j in acting]
        here_sizes = [int(c) for c in counts]
        sigma = self.supernet.value_unit

        def act(obs: Tensor) -> PolicyOutput:  # raw values for GAE
            out = self.model.forward_groups(obs, here, here_sizes)
            return PolicyOutput(out.logits, out.value * sigma)

        return act

    def prepare(self, batch: Batch) -> Batch:
        # Rows are (step, env slot) flattened step-major: row r was collected in slot r % N.
        steps = batch.obs.shape[0] // self.num_envs
        actor = self._slot_actor.to(batch.obs.device).repeat(steps)
        batch = batch._replace(actor=actor)
        if self.teacher is not None:
            batch = with_teacher(batch, self.teacher)
        scale = self.supernet.value_scale
        if float(scale) <= 0:  # the run's first rollout: fix sigma for good
            values = batch.teacher_values
            if values is None and self.sigma_teacher is not None:
                values = with_teacher(batch, self.sigma_teacher).teacher_values
            self.sigma_from = "returns" if values is None else "teacher"
            if values is None:
                values = batch.returns
            sigma = first_rollout_scale(values, ddp.context_of(self.model))
            scale.fill_(sigma)
            # this rollout acted with sigma 1: its stored values are head outputs, which the
            # loss divides by sigma; keep them the clipping centre in head units
            batch = batch._replace(values=batch.values * sigma)
        self._sigma = self.supernet.value_unit  # read once per update: no host sync per loss
        return batch

    def state(self) -> dict[str, Any]:
        # sigma itself lives in the supernet's value_scale buffer, saved with the model
        return {} if self.sigma_from is None else {"sigma_from": self.sigma_from}

    def load_state(self, state: dict[str, Any]) -> None:
        source = state.get("sigma_from")
        self.sigma_from = source if source in ("teacher", "returns") else None

    def loss(self, mb: Batch, progress: float) -> tuple[Tensor, dict[str, Tensor]]:
        """Sum over the update's subnets of each one's PPO (own rows) + distillation (all rows).

        The subnets trained are exactly the ones that collected this update's rollout (the
        largest, the smallest and random ones, fixed over its epochs). A subnet's PPO policy,
        value and entropy terms use only the rows it collected, where ``pi_s / mu`` is its own
        on-policy ratio and the advantages come from its own values (normalised over those
        rows); the distillation terms are supervised and use every row of the minibatch.
        """
        cfg = self.cfg
        alpha, beta = (0.0, 0.0) if self.teacher is None else distill_coefs(cfg.distill, progress)
        actor = mb.actor
        assert actor is not None, "prepare() attaches the acting subnet of every row"
        assert self._sigma is not None, "prepare() reads sigma before the first loss"
        mb = in_value_units(mb, self._sigma)
        if cfg.ppo.norm_adv:
            ctx = ddp.context_of(self.model)
            mb = normalised_per_actor(mb, len(self.rollout_archs), ctx)
        total: Tensor | None = None
        parts: list[dict[str, Tensor]] = []  # the PPO terms of subnets with rows here
        taught: list[dict[str, Tensor]] = []  # the distillation terms of every subnet
        for j, arch in enumerate(self.rollout_archs):
            own = actor == j
            out = self.model(mb.obs, arch)
            d = distill_loss(
                out,
                mb,
                self._ppo,
                alpha,
                beta,
                cfg.distill.temperature,
                own=own,
                own_share=self._shares[j],
            )
            total = d.loss if total is None else total + d.loss
            logs = loss_logs(d, alpha, beta)
            taught.append({k: v for k, v in logs.items() if k in DISTILL_LOGS})
            if bool(own.any()):
                parts.append({k: v for k, v in logs.items() if k not in DISTILL_LOGS})
        assert total is not None, "a rollout is collected by at least one subnet"
        return total, {**_means(parts), **_means(taught)}


DISTILL_LOGS = frozenset({"distill_actor", "distill_critic", "alpha", "beta"})
"""Logged terms every subnet has on every minibatch (its distillation on every row); the
others (PPO's) only a subnet with rows of its own in the minibatch has."""


def _means(parts: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """The mean of each key over ``parts`` ({} for none)."""
    return {k: torch.stack([p[k] for p in parts]).mean() for k in parts[0]} if parts else {}


# one writer of RUN_DIR/supernet/ at a time, never through a symlink out of the run
@writes(lambda a: a["run"].inside(a["run"].supernet, "the supernet stage's files"))
def train_supernet(
    cfg: Config,
    run: RunFolder,
    *,
    teacher_dir: Path | None = None,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> Path:
    """Train the supernet with PPO + distillation; returns ``RUN_DIR/supernet/weights.pt``.

    ``teacher_dir`` defaults to ``RUN_DIR/teacher/agent``; with ``alpha = beta = 0`` none is
    needed, and one given or found there only fixes sigma (``summary.json``'s ``sigma_from``
    says ``teacher``; else the first rollout's returns do: ``returns``). A teacher that does
    not fit the env raises :class:`EnvError` before anything is written. ``stop_after``: stop
    as on SIGINT after that update. Under torchrun every rank trains with DDP on its share of
    the envs; rank 0 writes.
    """
    spec = env_spec(cfg.env)
    space = SearchSpace(cfg.space)
    subnets = cfg.supernet.rollout_subnets
    # the vanilla arm loads a teacher it is given or finds, for sigma alone (module docstring)
    loads_teacher = (
        teacher_dir is not None
        or not cfg.distill.vanilla
        or (run.teacher_agent / "arch.json").is_file()
    )
    frozen = teacher_arch(cfg) if loads_teacher else None  # the teacher's own weights
    check_stage_memory(
        "supernet", space.largest(), spec, cfg.ppo, arch_keys="space.*", frozen=frozen,
        subnets=subnets,
    )  # fmt: skip
    ctx = ddp.init_distributed(cfg.device)
    ddp.check_world_size(cfg.ppo, ctx.world_size)
    if subnets > cfg.ppo.num_envs:
        raise ConfigError(
            f"supernet.rollout_subnets ({subnets}) is more than ppo.num_envs "
            f"({cfg.ppo.num_envs}): every subnet of an update collects its own rows; raise "
            "ppo.num_envs or lower supernet.rollout_subnets"
        )
    device = ctx.device
    teacher = None
    pins: dict[str, Any] = {}
    if loads_teacher:
        given = teacher_dir is not None
        teacher_dir = Path(teacher_dir) if teacher_dir is not None else run.teacher_agent
        teacher = load_teacher_for(
            cfg, teacher_dir, spec.obs_shape, spec.n_actions, given=given, obs_scale=spec.obs_scale
        ).to(device)
        # the vanilla arm's too: its teacher fixes sigma, and a run killed before the first
        # update ends resumes from update 0, whose state holds no sigma yet (found by review)
        pins["teacher_sha256"] = file_digest(teacher_dir / POLICY_FILE)
    remedy = (
        "the teacher changed since the supernet began (a train-teacher --resume or "
        "import-teacher rewrote it, or another --teacher); resume with the teacher it began "
        f"with, or delete {run.supernet} to train the supernet anew on this one"
    )
    checkpoint = run.supernet / "checkpoint.pt"
    if resume and pins and checkpoint.is_file():  # before a raised budget is recorded
        check_pins(checkpoint, "supernet", checkpoint_extra(checkpoint, "supernet"), pins, remedy)
    folder = run.supernet
    tb_dir = run.tb_dir("supernet")  # before binding: a link out of the run is refused
    if ctx.is_main:
        folder = run.bind_stage("supernet", cfg, resume)
    set_threads(cfg)
    streams = Streams(cfg.seed, "supernet")
    supernet = streams.build(
        lambda: Supernet(space, spec.obs_shape, spec.n_actions, spec.obs_scale)
    ).to(device)
    n_envs = cfg.ppo.num_envs // ctx.world_size
    learner = SupernetLearner(ddp.wrap_model(supernet, ctx), cfg, teacher, streams.rng, n_envs)
    envs = make_vec_env(cfg.env, n_envs, seed=cfg.seed, training=True)
    opts = LoopOptions(
        stage="supernet",
        total_steps=cfg.supernet.total_steps,
        budget_key="supernet.total_steps",
        checkpoint=folder / "checkpoint.pt",
        tb_dir=tb_dir,
        checkpoint_every=cfg.supernet.checkpoint_every,
        resume=resume,
        progress=progress,
        stop_after=stop_after,
        pins=pins,
        pins_remedy=remedy,
    )
    try:
        result = run_ppo(learner, cfg, envs, spec.obs_shape, spec.obs_dtype, streams, opts, device)
    finally:
        envs.close()
    if not ctx.is_main:
        return run.supernet_weights
    measured: dict[str, Any] = {"sps": result.sps, "train_recent_return": result.recent_return}
    if result.sps is None:  # a resume that found the stage complete: keep what was measured
        # (the recent returns are the checkpoint's, when no summary was written)
        earlier = read_json_dict(folder / "summary.json", "supernet summary")
        measured = {k: earlier.get(k, v) for k, v in measured.items()}
    else:
        measured["sps"] = round(result.sps, 1)
    # weights.pt marks the stage finished (RunFolder.stage_product): gone before the summary
    # is written and back last, so a stage killed in between is never finished without the
    # summary that records its teacher (which evolve checks) and sigma; a resume that found
    # the stage whole leaves it in place (a search may be reading it)
    if result.sps is not None or not (folder / "summary.json").is_file():
        run.supernet_weights.unlink(missing_ok=True)
    write_json(
        folder / "summary.json",
        {
            "format_version": 1,
            "env_steps": result.global_step,
            "updates": result.updates,
            "wall_s": round(result.wall_s, 2),
            **measured,
            "vanilla": cfg.distill.vanilla,
            # absolute: the messages that name it (cp -r X ...) run from any working folder
            "teacher": (
                None
                if learner.teacher is None or teacher_dir is None
                else str(Path(teacher_dir).absolute())
            ),
            # whether that is the run's own teacher, decided here where the path is valid
            # (the report's Reproduce line; a moved run or another working folder would not tell)
            "teacher_own": learner.teacher is not None
            and teacher_dir is not None
            and Path(teacher_dir).resolve() == run.teacher_agent.resolve(),
            # the teacher distilled from, which the search's teacher must be (evolve checks)
            "teacher_sha256": None if cfg.distill.vanilla else pins.get("teacher_sha256"),
            "sigma": supernet.value_unit,
            "sigma_from": learner.sigma_from,
            # [first update, rank count] per piece: the report's Reproduce line uses torchrun
            "world_sizes": result.world_sizes,
        },
    )
    return torch_save(
        run.supernet_weights, {k: v.detach().cpu() for k, v in supernet.state_dict().items()}
    )


# ----------------------------------------------------------------------------- scoring
def score_subnets(
    cfg: Config,
    weights: Path,
    *,
    n_random: int = 10,
    episodes: int = 20,
    seed: int | None = None,
    arch_seed: int = 12345,
) -> list[dict[str, Any]]:
    """Greedy returns of the largest, the smallest and ``n_random`` fixed random subnets.

    Inherited weights, no fine-tuning: the evidence that every subnet of the supernet is a
    usable agent. The random subnets come from ``arch_seed`` (the same set for every run,
    so vanilla and distilled supernets are compared on the same archs); episodes use seeds
    ``seed, seed + 1, ...`` (default :func:`~a2d_evo.evaluation.seeds.finetune_eval_seed`).
    """
    supernet = load_supernet(cfg, weights).eval()
    space = supernet.space
    ends = [space.largest(), space.smallest()]
    archs = ends + sample_distinct(space, np.random.default_rng(arch_seed), n_random, ends)
    first = finetune_eval_seed(cfg.seed) if seed is None else seed
    rows = []
    for i, arch in enumerate(archs):
        res = evaluate_agent(extract(supernet, arch), cfg, episodes, first, "greedy")
        role = "largest" if i == 0 else "smallest" if i == 1 else "random"
        rows.append(
            {
                "role": role,
                "arch": str(arch),
                "return_mean": res.mean,
                "return_std": res.std,
                "return_min": float(res.returns.min()),
                "episodes": res.episodes,
            }
        )
    return rows
