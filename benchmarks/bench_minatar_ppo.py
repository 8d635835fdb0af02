"""PPO throughput on MinAtar Breakout: a2d-evo's training loop vs a minimal CleanRL-style loop.

Both train the config's teacher arch (MinAtar: conv 16 3x3 stride 1 valid -> ReLU -> FC 128 ->
ReLU -> policy and value heads, obs_scale 1) as a plain agent with no teacher, with the
config's PPO settings (num_envs, num_steps, num_minibatches, update_epochs, lr and its
annealing, gamma, gae_lambda, clip_coef, ent_coef, vf_coef, max_grad_norm), the same torch
thread count (set explicitly) and the same device:

* ``a2d-evo``: :func:`a2d_evo.train.loop.run_ppo` with an :class:`AgentLearner`, no
  checkpoints or TensorBoard, on :func:`a2d_evo.envs.make_vec_env` (as ``a2d-evo
  train-teacher`` runs it, and as ``benchmarks/bench_train.py`` measures its ``plain`` case);
* ``minimal``: a single-file PPO loop written here after CleanRL's ``ppo.py`` /
  ``ppo_atari.py`` (``gymnasium.vector.SyncVectorEnv`` with same-step autoreset and
  ``RecordEpisodeStatistics``, ``Categorical`` sampling, a float32 rollout buffer,
  per-minibatch advantage normalisation, clipped value loss), on the same env built the same
  way: ``gymnasium.make(id, disable_env_checker=True, max_episode_steps=env.max_episode_steps)``
  (MinAtar's own sticky actions, p = 0.1) with its (10, 10, C) bool planes turned into
  (C, 10, 10) uint8.

Env steps per second = steps trained / wall time from the first reset to the last optimiser
step (env and network built outside the timing). The two are measured alternately
(a2d-evo, minimal, a2d-evo, minimal, ... ``--repeats`` pairs, after one warm-up update of
each) so a shared machine's load hits both alike; each rate is the mean over its runs, and the
ratio a2d-evo / minimal is the figure to read (target >= 1x).

    python benchmarks/bench_minatar_ppo.py                              # 50k steps, 2 pairs
    python benchmarks/bench_minatar_ppo.py --steps 49152 --repeats 3 --threads 1
    python benchmarks/bench_minatar_ppo.py --only minimal --steps 1000448 --repeats 1 --set seed=0

Ends with one ``RESULT`` line.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from bench_train import timed_ppo
from torch import nn
from torch.distributions.categorical import Categorical

from a2d_evo.config import Config, config_to_dict, load_config
from a2d_evo.envs import env_spec
from a2d_evo.envs.imports import prepare_env
from a2d_evo.evaluation.episodes import resolve_device
from a2d_evo.nets.agent import Agent
from a2d_evo.nets.space import CNNArch
from a2d_evo.train.learners import AgentLearner
from a2d_evo.train.streams import Streams
from a2d_evo.train.teacher_folder import teacher_arch


# ----------------------------------------------------------------------------- a2d-evo
def measure_a2d(cfg: Config, steps: int) -> tuple[float, float, float | None]:
    """Env steps per second of a2d-evo's PPO loop, its wall time and its recent mean return."""
    spec = env_spec(cfg.env)
    device = resolve_device(cfg.device)
    streams = Streams(cfg.seed, "teacher")
    env_config = config_to_dict(cfg.env)
    arch = teacher_arch(cfg)
    agent = streams.build(
        lambda: Agent(arch, spec.obs_shape, spec.n_actions, env_config, spec.obs_scale)
    )
    learner = AgentLearner(agent.to(device), cfg)
    result, wall = timed_ppo(learner, cfg, "teacher", steps, streams, device)
    return result.global_step / wall, wall, result.recent_return


# ----------------------------------------------------------------------------- minimal
class ChannelsFirst(gym.ObservationWrapper):
    """MinAtar's (H, W, C) bool planes as (C, H, W) uint8, what a2d-evo's envs hand over."""

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        h, w, c = env.observation_space.shape
        self.observation_space = gym.spaces.Box(0, 1, (c, h, w), np.uint8)

    def observation(self, observation: Any) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(observation).transpose(2, 0, 1), dtype=np.uint8)


def make_env(cfg: Config) -> Any:
    def thunk() -> Any:
        extra: dict[str, Any] = {"disable_env_checker": True}
        if cfg.env.max_episode_steps is not None:
            extra["max_episode_steps"] = cfg.env.max_episode_steps
        env = gym.make(cfg.env.id, **{**cfg.env.kwargs, **extra})
        env = ChannelsFirst(env)
        return gym.wrappers.RecordEpisodeStatistics(env)

    return thunk


def layer_init(layer: Any, std: float = float(np.sqrt(2)), bias_const: float = 0.0) -> Any:
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias_const)
    return layer


class MinimalAgent(nn.Module):
    """CleanRL's Atari agent shape with the MinAtar network: one conv, one FC, two heads."""

    def __init__(self, arch: CNNArch, obs_shape: tuple[int, ...], n_actions: int) -> None:
        super().__init__()
        c, h, w = obs_shape
        layers: list[nn.Module] = []
        for _, conv in arch.active:
            layers += [
                layer_init(nn.Conv2d(c, conv.width, conv.kernel, conv.stride, conv.pad)),
                nn.ReLU(),
            ]
            c, h, w = conv.width, conv.out_size(h), conv.out_size(w)
        self.network = nn.Sequential(
            *layers, nn.Flatten(), layer_init(nn.Linear(c * h * w, arch.fc)), nn.ReLU()
        )
        self.actor = layer_init(nn.Linear(arch.fc, n_actions), std=0.01)
        self.critic = layer_init(nn.Linear(arch.fc, 1), std=1.0)

    def get_value(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(self.network(x))  # obs_scale 1: 0/1 planes go in as they are

    def get_action_and_value(
        self, x: torch.Tensor, action: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        hidden = self.network(x)
        probs = Categorical(logits=self.actor(hidden))
        if action is None:
            action = probs.sample()
        return action, probs.log_prob(action), probs.entropy(), self.critic(hidden)


def measure_minimal(cfg: Config, steps: int) -> tuple[float, float, float | None]:
    """Env steps per second of the minimal loop, its wall time and its recent mean return."""
    p = cfg.ppo
    device = resolve_device(cfg.device)
    arch = teacher_arch(cfg)
    assert isinstance(arch, CNNArch), "the minimal loop is a CNN loop (MinAtar configs)"
    prepare_env(cfg.env)  # registers the MinAtar ids (env.imports)
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    envs = gym.vector.SyncVectorEnv(
        [make_env(cfg) for _ in range(p.num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    obs_shape: tuple[int, ...] = tuple(envs.single_observation_space.shape or ())
    n_actions = int(envs.single_action_space.n)  # type: ignore[attr-defined]
    agent = MinimalAgent(arch, obs_shape, n_actions).to(device)
    batch_size = p.num_envs * p.num_steps
    minibatch_size = batch_size // p.num_minibatches
    num_iterations = max(1, steps // batch_size)
    recent: list[float] = []

    t0 = time.perf_counter()
    optimizer = torch.optim.Adam(agent.parameters(), lr=p.lr, eps=1e-5)
    obs = torch.zeros((p.num_steps, p.num_envs, *obs_shape)).to(device)
    actions = torch.zeros((p.num_steps, p.num_envs)).to(device)
    logprobs = torch.zeros((p.num_steps, p.num_envs)).to(device)
    rewards = torch.zeros((p.num_steps, p.num_envs)).to(device)
    dones = torch.zeros((p.num_steps, p.num_envs)).to(device)
    values = torch.zeros((p.num_steps, p.num_envs)).to(device)
    global_step = 0
    next_obs_np, _ = envs.reset(seed=cfg.seed)
    next_obs = torch.Tensor(next_obs_np).to(device)
    next_done = torch.zeros(p.num_envs).to(device)
    try:
        for iteration in range(1, num_iterations + 1):
            if p.anneal_lr:
                frac = 1.0 - (iteration - 1.0) / num_iterations
                optimizer.param_groups[0]["lr"] = frac * p.lr

            for step in range(p.num_steps):
                global_step += p.num_envs
                obs[step] = next_obs
                dones[step] = next_done
                with torch.no_grad():
                    action, logprob, _, value = agent.get_action_and_value(next_obs)
                    values[step] = value.flatten()
                actions[step] = action
                logprobs[step] = logprob
                next_obs_np, reward, terminations, truncations, infos = envs.step(
                    action.cpu().numpy()
                )
                next_done_np = np.logical_or(terminations, truncations)
                rewards[step] = torch.tensor(reward).to(device).view(-1)
                next_obs = torch.Tensor(next_obs_np).to(device)
                next_done = torch.Tensor(next_done_np).to(device)
                final = infos.get("final_info", {})
                if "episode" in final:
                    recent.extend(final["episode"]["r"][final["_episode"]].tolist())

            with torch.no_grad():
                next_value = agent.get_value(next_obs).reshape(1, -1)
                advantages = torch.zeros_like(rewards).to(device)
                lastgaelam = torch.zeros(p.num_envs, device=device)
                for t in reversed(range(p.num_steps)):
                    if t == p.num_steps - 1:
                        nextnonterminal = 1.0 - next_done
                        nextvalues = next_value
                    else:
                        nextnonterminal = 1.0 - dones[t + 1]
                        nextvalues = values[t + 1]
                    delta = rewards[t] + p.gamma * nextvalues * nextnonterminal - values[t]
                    lastgaelam = delta + p.gamma * p.gae_lambda * nextnonterminal * lastgaelam
                    advantages[t] = lastgaelam
                returns = advantages + values

            b_obs = obs.reshape((-1, *obs_shape))
            b_logprobs = logprobs.reshape(-1)
            b_actions = actions.reshape(-1)
            b_advantages = advantages.reshape(-1)
            b_returns = returns.reshape(-1)
            b_values = values.reshape(-1)

            b_inds = np.arange(batch_size)
            clipfracs = []
            for _epoch in range(p.update_epochs):
                rng.shuffle(b_inds)
                for start in range(0, batch_size, minibatch_size):
                    mb_inds = b_inds[start : start + minibatch_size]
                    _, newlogprob, entropy, newvalue = agent.get_action_and_value(
                        b_obs[mb_inds], b_actions.long()[mb_inds]
                    )
                    logratio = newlogprob - b_logprobs[mb_inds]
                    ratio = logratio.exp()
                    with torch.no_grad():
                        approx_kl = ((ratio - 1) - logratio).mean()
                        clipfracs += [((ratio - 1.0).abs() > p.clip_coef).float().mean().item()]
                    mb_advantages = b_advantages[mb_inds]
                    if p.norm_adv:
                        mb_advantages = (mb_advantages - mb_advantages.mean()) / (
                            mb_advantages.std() + 1e-8
                        )
                    pg_loss1 = -mb_advantages * ratio
                    pg_loss2 = -mb_advantages * torch.clamp(ratio, 1 - p.clip_coef, 1 + p.clip_coef)
                    pg_loss = torch.max(pg_loss1, pg_loss2).mean()
                    newvalue = newvalue.view(-1)
                    if p.clip_vloss:
                        v_loss_unclipped = (newvalue - b_returns[mb_inds]) ** 2
                        v_clipped = b_values[mb_inds] + torch.clamp(
                            newvalue - b_values[mb_inds], -p.clip_coef, p.clip_coef
                        )
                        v_loss_clipped = (v_clipped - b_returns[mb_inds]) ** 2
                        v_loss = 0.5 * torch.max(v_loss_unclipped, v_loss_clipped).mean()
                    else:
                        v_loss = 0.5 * ((newvalue - b_returns[mb_inds]) ** 2).mean()
                    entropy_loss = entropy.mean()
                    loss = pg_loss - p.ent_coef * entropy_loss + v_loss * p.vf_coef
                    optimizer.zero_grad()
                    loss.backward()
                    nn.utils.clip_grad_norm_(agent.parameters(), p.max_grad_norm)
                    optimizer.step()
                if p.target_kl is not None and approx_kl > p.target_kl:
                    break
    finally:
        envs.close()
    wall = time.perf_counter() - t0
    return global_step / wall, wall, float(np.mean(recent[-20:])) if recent else None


# ----------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/minatar_breakout.yaml")
    parser.add_argument(
        "--steps", type=int, default=50_000, help="env steps per run (whole PPO updates)"
    )
    parser.add_argument("--repeats", type=int, default=2, help="(a2d-evo, minimal) pairs")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, for both")
    parser.add_argument("--set", action="append", default=[], help="config override")
    parser.add_argument(
        "--only",
        choices=("a2d-evo", "minimal"),
        help="run one loop alone (a learning check at long budgets: its last 20 episodes' "
        "mean return); no ratio",
    )
    args = parser.parse_args()
    cfg = load_config(Path(args.config), args.set)
    torch.set_num_threads(args.threads)
    batch = cfg.ppo.batch_size
    steps = max(1, args.steps // batch) * batch
    loops = {"a2d-evo": measure_a2d, "minimal": measure_minimal}
    if args.only:
        loops = {args.only: loops[args.only]}
    for fn in loops.values():
        fn(cfg, batch)  # warm-up: imports, allocator, first env build
    runs: dict[str, list[float]] = {name: [] for name in loops}
    walls: dict[str, list[float]] = {name: [] for name in loops}
    rets: dict[str, float | None] = {}
    for _ in range(args.repeats):
        for name, fn in loops.items():
            sps, wall, ret = fn(cfg, steps)
            runs[name].append(sps)
            walls[name].append(wall)
            rets[name] = ret
    mean = {k: statistics.fmean(v) for k, v in runs.items()}
    p = cfg.ppo
    print(
        f"env: {cfg.env.id}  arch: {teacher_arch(cfg).to_dict()}  device: "
        f"{resolve_device(cfg.device)}  torch threads: {args.threads}"
    )
    print(
        f"ppo: {p.num_envs} envs x {p.num_steps} steps, {p.num_minibatches} minibatches, "
        f"{p.update_epochs} epochs, lr {p.lr} (anneal {p.anneal_lr}); {steps} steps per run, "
        f"{args.repeats} interleaved pair(s)"
    )
    for name in runs:
        each = ", ".join(f"{s:.0f}" for s in runs[name])
        ret = rets[name]
        print(
            f"  {name:<8}: {mean[name]:8.0f} steps/s (runs: {each}; mean wall "
            f"{statistics.fmean(walls[name]):.1f} s; last run's recent return "
            f"{'n/a' if ret is None else f'{ret:.2f}'})"
        )
    if args.only:
        ret = rets[args.only]
        print(
            f"RESULT bench_minatar_ppo {cfg.env.id} seed={cfg.seed} {args.only} only: "
            f"{mean[args.only]:.0f} steps/s, last 20 episodes' mean return "
            f"{'n/a' if ret is None else f'{ret:.2f}'} after {steps} steps"
        )
        return
    ratio = mean["a2d-evo"] / mean["minimal"]
    print(
        f"RESULT bench_minatar_ppo {cfg.env.id} threads={args.threads} steps={steps} "
        f"repeats={args.repeats}: a2d-evo {mean['a2d-evo']:.0f} steps/s, minimal CleanRL-style "
        f"{mean['minimal']:.0f} steps/s, a2d-evo / minimal {ratio:.2f}x (target >= 1x)"
    )


if __name__ == "__main__":
    main()
