"""Whose values a distilled subnet's critic has learned: its own returns', or the teacher's.

A review's doubt (2026-12-08): on a subnet's own rows the value head minimises
``0.5 vf (V - R)^2 + beta (V - V_T)^2`` (values in units of sigma), whose minimiser is
``V = (0.5 vf R + beta V_T) / (0.5 vf + beta)``: with the shipped ``distill.vf_coef`` 0.5 and
``beta`` 0.5 that is ``R / 3 + 2 V_T / 3``. The same head is the subnet's GAE baseline, so a
subnet that plays worse than the teacher gets a baseline pulled towards the teacher's values.
This plays greedy episodes with the supernet's largest and smallest subnets and ``--archs``
fixed random ones (inherited weights), and compares, on the states they visit, the subnet's
value ``V_s`` and the teacher's ``V_T`` with the discounted return ``G`` that followed
(``ppo.gamma``; states of a truncated episode are left out, their tail is unknown):

- ``ev_own``: ``1 - Var(G - V_s) / Var(G)``, how well the subnet's critic predicts its returns;
- ``ev_teacher``: the same for ``V_T`` on the subnet's states;
- ``rms_to_G`` and ``rms_to_T``: the root mean square distance of ``V_s`` to ``G`` and to ``V_T``.

    python benchmarks/critic_bias.py runs/lunarlander --archs 10 --episodes 10

Runs with vector observations (the MLP spaces); the env is built as training builds it
(``env.kwargs``, the run's episode limit).

Ends with a ``RESULT`` line; no training seed (the archs and episodes come from ``--seed``).
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import torch

from a2d_evo.envs.classic import make_classic_env
from a2d_evo.nets.agent_folder import extract, load_agent
from a2d_evo.nets.space import SearchSpace
from a2d_evo.nets.supernet import load_supernet
from a2d_evo.runs.folder import RunFolder
from a2d_evo.train.ppo import explained_variance


def play(
    agent: torch.nn.Module, env: Any, seed: int, gamma: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """One greedy episode: the observations of its states with a known return (all, unless it
    was truncated), their discounted returns, and the episode's return."""
    obs, _ = env.reset(seed=seed)
    states, rewards = [], []
    done = truncated = False
    while not done:
        states.append(obs)
        with torch.no_grad():
            logits = agent(torch.as_tensor(obs[None], dtype=torch.float32)).logits
        obs, reward, terminated, truncated, _ = env.step(int(logits.argmax()))
        rewards.append(float(reward))
        done = terminated or truncated
    g, returns = 0.0, np.zeros(len(rewards))
    for t in range(len(rewards) - 1, -1, -1):
        g = rewards[t] + gamma * g
        returns[t] = g
    keep = 0 if truncated else len(rewards)
    kept = np.asarray(states[:keep], dtype=np.float32).reshape(keep, *np.shape(states[0]))
    return kept, returns[:keep], float(sum(rewards))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="run folder with a teacher and supernet/weights.pt")
    parser.add_argument("--archs", type=int, default=10, help="fixed random subnets")
    parser.add_argument("--episodes", type=int, default=10, help="greedy episodes per subnet")
    parser.add_argument("--seed", type=int, default=12345, help="archs and episode seeds")
    parser.add_argument("--teacher", help="teacher agent folder (default: the run's)")
    args = parser.parse_args()
    run = RunFolder(args.run_dir)
    cfg = run.load_config()
    torch.set_num_threads(1)
    space = SearchSpace(cfg.space)
    supernet = load_supernet(cfg, run.supernet_weights)
    teacher = load_agent(args.teacher or run.teacher_agent)
    rng = np.random.default_rng(args.seed)
    archs = [("largest", space.largest()), ("smallest", space.smallest())]
    archs += [("random", space.sample(rng)) for _ in range(args.archs)]
    env = make_classic_env(cfg.env.id, dict(cfg.env.kwargs), cfg.env.max_episode_steps)
    rows: list[dict[str, Any]] = []
    for role, arch in archs:
        agent = extract(supernet, arch)
        parts = [play(agent, env, args.seed + i, cfg.ppo.gamma) for i in range(args.episodes)]
        obs = torch.as_tensor(np.concatenate([p[0] for p in parts]))
        g = torch.as_tensor(np.concatenate([p[1] for p in parts]), dtype=torch.float32)
        with torch.no_grad():
            v_s, v_t = agent(obs).value.reshape(-1), teacher(obs).value.reshape(-1)
        row = {
            "role": role,
            "arch": str(arch),
            "return": float(np.mean([p[2] for p in parts])),
            "ev_own": explained_variance(v_s, g),
            "ev_teacher": explained_variance(v_t, g),
            "rms_to_G": float((v_s - g).pow(2).mean().sqrt()),
            "rms_to_T": float((v_s - v_t).pow(2).mean().sqrt()),
            "states": int(g.numel()),
        }
        rows.append(row)
        print(
            f"{role:8s} {row['arch']:20s} return {row['return']:8.1f}  "
            f"ev_own {row['ev_own']:6.3f}  "
            f"ev_teacher {row['ev_teacher']:6.3f}  rms V_s-G {row['rms_to_G']:7.2f}  "
            f"rms V_s-V_T {row['rms_to_T']:7.2f}  ({row['states']} states)",
            flush=True,
        )
    own = np.array([r["ev_own"] for r in rows])
    tea = np.array([r["ev_teacher"] for r in rows])
    closer = sum(r["rms_to_T"] < r["rms_to_G"] for r in rows)
    print(
        f"RESULT critic_bias {cfg.env.id}: {len(rows)} subnets, "
        f"mean ev_own {np.nanmean(own):.3f}, mean ev_teacher {np.nanmean(tea):.3f}, "
        f"V_s closer to V_T than to G on {closer} of {len(rows)}"
    )


if __name__ == "__main__":
    main()
