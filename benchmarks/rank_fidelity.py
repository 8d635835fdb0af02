"""Ranking fidelity: do inherited weights rank archs as their fine-tuned selves do?

The search ranks subnets by their inherited weights; the delivered agents are fine-tuned. On a
finished run (teacher + supernet), ``--archs`` fixed archs stratified by log FLOPs are scored
greedily with inherited weights, then each is extracted and fine-tuned for ``finetune.steps``
(or ``--steps``) with the export's PPO + distillation, and scored again on the same fresh seeds.
Prints Kendall's tau-b between the two rankings (and Spearman's rho) with a ``RESULT`` line.

    python benchmarks/rank_fidelity.py runs/cmp_ll/s100 --archs 20

Each fine-tuned arch is kept in ``RUN_DIR/fidelity/<arch>/`` and reused when run again.
"""

from __future__ import annotations

import argparse

import numpy as np

from a2d_evo.config import config_to_dict, replace
from a2d_evo.envs import env_spec
from a2d_evo.evaluation.episodes import evaluate_agent
from a2d_evo.evaluation.seeds import fresh_eval_seed
from a2d_evo.nets.agent_folder import extract, save_agent
from a2d_evo.nets.space import SearchSpace
from a2d_evo.nets.supernet import load_supernet
from a2d_evo.runs.files import read_json, safe_name, write_json
from a2d_evo.runs.folder import RunFolder
from a2d_evo.train import finetune_agent
from a2d_evo.train.sampling import stratified_archs


def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b (ties in either ranking counted as in scipy.stats.kendalltau)."""
    n = len(x)
    concordant = discordant = ties_x = ties_y = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif dx == dy:
                concordant += 1
            else:
                discordant += 1
    denom = np.sqrt((concordant + discordant + ties_x) * (concordant + discordant + ties_y))
    return float((concordant - discordant) / denom) if denom else float("nan")


def _ranks(v: np.ndarray) -> np.ndarray:
    """Ranks with ties given their average rank (as scipy.stats.rankdata, 'average')."""
    v = np.asarray(v, float)
    order = np.argsort(v, kind="stable")
    ranks = np.empty(len(v))
    ranks[order] = np.arange(len(v), dtype=float)
    for value in np.unique(v):
        tied = v == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho: Pearson's r of the ranks, ties at their average rank."""
    return float(np.corrcoef(_ranks(x), _ranks(y))[0, 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--archs", type=int, default=20, help="archs (a multiple of 5)")
    parser.add_argument("--episodes", type=int, default=30)
    parser.add_argument("--steps", type=int, help="fine-tune steps (default finetune.steps)")
    parser.add_argument("--arch-seed", type=int, default=54321)
    args = parser.parse_args()
    run = RunFolder(args.run_dir)
    cfg = run.load_config()
    if args.steps is not None:
        cfg = replace(cfg, finetune=replace(cfg.finetune, steps=args.steps))
    steps = cfg.finetune.steps
    spec = env_spec(cfg.env)
    space = SearchSpace(cfg.space)
    archs = stratified_archs(space, spec.obs_shape, spec.n_actions, args.archs // 5,
                             np.random.default_rng(args.arch_seed))  # fmt: skip
    supernet = load_supernet(cfg, run.supernet_weights).eval()
    first = fresh_eval_seed(cfg.seed) + 7_000  # not the pipeline comparison's seeds
    inherited, tuned = [], []
    for arch in archs:
        folder = run.root / "fidelity" / safe_name(f"{arch}-{steps}")
        done = folder / "metrics.json"
        agent = extract(supernet, arch)
        agent.env_config = config_to_dict(cfg.env)  # arch.json records the env, as export's
        inherited.append(evaluate_agent(agent, cfg, args.episodes, first, "greedy").mean)
        # kept only when fine-tuned for these steps, scored on these episodes (another
        # --episodes would set rankings on different episode counts against each other) and
        # not gated: a validation gate that keeps the inherited weights scores them again as
        # "fine-tuned", which pulls tau towards 1
        kept = read_json(done, "metrics") if done.is_file() else {}
        if (
            kept.get("finetune_budget") != steps
            or (kept.get("after") or {}).get("episodes") != args.episodes
            or kept.get("finetune_validation") is not None
        ):
            # the old metrics.json goes with the old weights: finetune_agent adds its budget
            # to the one recorded there, which the check above would never match again
            (folder / "metrics.json").unlink(missing_ok=True)
            save_agent(agent, folder, metrics=None, onnx=False)
            finetune_agent(
                folder, cfg, steps=steps, teacher_dir=run.teacher_agent, progress=False,
                eval_seed=first, eval_episodes=args.episodes, validation_episodes=0,
            )  # fmt: skip
        tuned.append(read_json(done, "metrics")["after"]["return_mean"])
        print(f"{arch}: inherited {inherited[-1]:.1f}, fine-tuned {tuned[-1]:.1f}", flush=True)
    x, y = np.asarray(inherited), np.asarray(tuned)
    tau, rho = kendall_tau_b(x, y), spearman(x, y)
    write_json(run.root / "fidelity" / f"fidelity-{steps}.json",
               {"archs": [str(a) for a in archs], "inherited": inherited, "fine_tuned": tuned,
                "kendall_tau_b": tau, "spearman": rho, "steps": steps,
                "episodes": args.episodes})  # fmt: skip
    print(f"RESULT rank_fidelity {cfg.env.id} archs={len(archs)} steps={steps} "
          f"kendall_tau_b={tau:.3f} spearman={rho:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
