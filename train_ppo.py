"""Train the four ComboGrid policy networks with PPO (CleanRL's ppo.py, on a numpy-batched env).

    python train_ppo.py                      # all four problems, written to models/PROBLEM.pt
    python train_ppo.py --problems TL-BR     # one problem

Problem i of the canonical order (TL-BR, TR-BL, BR-TL, BL-TR) is trained with seed `seed + i`.
Training of a problem stops once its greedy policy has solved it optimally (24 actions) at
`optimal_checks` consecutive iterations, or after `total_timesteps`.
"""

import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from multiprocessing import get_context

import numpy as np
import torch
import tyro
from torch import nn, optim

from combogrid import PROBLEMS, ComboGridVec, ComboGym, COMBO_LENGTH
from ppo_agent import PPOAgent
from atomic import write_atomically


@dataclass
class Args:
    problems: tuple[str, ...] = PROBLEMS
    """problems to train, one network each"""
    seed: int = 0
    """seed of the first problem in canonical order; the i-th problem uses seed + i"""
    save_dir: str = "models"
    """folder the checkpoints are written to, as PROBLEM.pt"""
    processes: int = 2
    """problems trained in parallel (one process per core)"""
    rows: int = 5
    """grid rows"""
    columns: int = 5
    """grid columns"""
    hidden_size: int = 64
    """neurons of the actor's hidden layer"""
    total_timesteps: int = 3_000_000
    """most environment steps per problem"""
    optimal_checks: int = 10
    """consecutive iterations with an optimal greedy rollout that end training"""
    learning_rate: float = 2.5e-4
    """Adam learning rate, annealed linearly to 0 over total_timesteps"""
    num_envs: int = 16
    """parallel environments"""
    num_steps: int = 128
    """steps per environment per rollout"""
    gamma: float = 0.99
    """discount factor"""
    gae_lambda: float = 0.95
    """lambda of generalized advantage estimation"""
    num_minibatches: int = 4
    """minibatches per epoch"""
    update_epochs: int = 4
    """epochs over each rollout"""
    clip_coef: float = 0.2
    """surrogate clipping coefficient"""
    ent_coef: float = 0.01
    """entropy bonus coefficient"""
    vf_coef: float = 0.5
    """value loss coefficient"""
    max_grad_norm: float = 0.5
    """gradient clipping norm"""
    print_every: int = 20
    """iterations between progress lines"""


def optimal_length(env):
    """Actions of an optimal solution: one combo per cell of Manhattan distance."""
    (r0, c0), (r1, c1) = env.start, env.goal
    return COMBO_LENGTH * (abs(r0 - r1) + abs(c0 - c1))


def greedy_length(agent, env):
    with torch.no_grad():
        return agent.run(env, length_cap=optimal_length(env) + 1).get_length()


def train(args, problem, seed):
    """PPO on one problem; returns the trained agent and the environment steps it took."""
    torch.set_num_threads(1)
    np.random.seed(seed)
    torch.manual_seed(seed)
    envs = ComboGridVec(args.num_envs, problem, args.rows, args.columns)
    eval_env = ComboGym(args.rows, args.columns, problem)
    agent = PPOAgent(eval_env, args.hidden_size)
    optimizer = optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)
    batch_size = args.num_envs * args.num_steps
    minibatch_size = batch_size // args.num_minibatches
    num_iterations = args.total_timesteps // batch_size

    obs = torch.zeros((args.num_steps, args.num_envs, eval_env.observation_space.shape[0]))
    actions = torch.zeros((args.num_steps, args.num_envs), dtype=torch.long)
    logprobs, rewards, dones, values = (torch.zeros((args.num_steps, args.num_envs)) for _ in range(4))

    next_obs, next_done = torch.from_numpy(envs.reset()), torch.zeros(args.num_envs)
    episode_lengths, optimal_streak, global_step, start = [], 0, 0, time.time()
    for iteration in range(1, num_iterations + 1):
        optimizer.param_groups[0]["lr"] = (1.0 - (iteration - 1.0) / num_iterations) * args.learning_rate
        for step in range(args.num_steps):
            global_step += args.num_envs
            obs[step], dones[step] = next_obs, next_done
            with torch.no_grad():
                action, logprob, _, value = agent.get_action_and_value(next_obs)
            values[step], actions[step], logprobs[step] = value.flatten(), action, logprob
            observation, reward, done, finished = envs.step(action.numpy())
            rewards[step] = torch.from_numpy(reward)
            next_obs, next_done = torch.from_numpy(observation), torch.from_numpy(done).float()
            episode_lengths.extend(finished.tolist())

        with torch.no_grad():  # generalized advantage estimation
            next_value = agent.get_value(next_obs).flatten()
            advantages = torch.zeros_like(rewards)
            last_gae = 0
            for t in reversed(range(args.num_steps)):
                next_non_terminal = 1.0 - (next_done if t == args.num_steps - 1 else dones[t + 1])
                following = next_value if t == args.num_steps - 1 else values[t + 1]
                delta = rewards[t] + args.gamma * following * next_non_terminal - values[t]
                advantages[t] = last_gae = delta + args.gamma * args.gae_lambda * next_non_terminal * last_gae
            returns = advantages + values

        b_obs, b_actions = obs.reshape(batch_size, -1), actions.reshape(-1)
        b_logprobs, b_advantages = logprobs.reshape(-1), advantages.reshape(-1)
        b_returns, b_values = returns.reshape(-1), values.reshape(-1)
        for _ in range(args.update_epochs):
            for mb in torch.randperm(batch_size).split(minibatch_size):
                _, newlogprob, entropy, newvalue = agent.get_action_and_value(b_obs[mb], b_actions[mb])
                ratio = (newlogprob - b_logprobs[mb]).exp()
                mb_adv = b_advantages[mb]
                mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                pg_loss = torch.max(-mb_adv * ratio,
                                    -mb_adv * ratio.clamp(1 - args.clip_coef, 1 + args.clip_coef)).mean()
                newvalue = newvalue.view(-1)
                v_clipped = b_values[mb] + (newvalue - b_values[mb]).clamp(-args.clip_coef, args.clip_coef)
                v_loss = 0.5 * torch.max((newvalue - b_returns[mb]) ** 2, (v_clipped - b_returns[mb]) ** 2).mean()
                loss = pg_loss - args.ent_coef * entropy.mean() + v_loss * args.vf_coef
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()

        greedy = greedy_length(agent, eval_env)
        optimal_streak = optimal_streak + 1 if greedy == optimal_length(eval_env) else 0
        if iteration % args.print_every == 0 or optimal_streak == args.optimal_checks:
            mean_length = np.mean(episode_lengths) if episode_lengths else float("nan")
            print(f"[{problem}] step {global_step:>8,}  episode length {mean_length:6.1f}  "
                  f"greedy length {greedy:>3}{'+' if greedy > optimal_length(eval_env) else ''}  "
                  f"{global_step / (time.time() - start):,.0f} steps/s", flush=True)
            episode_lengths.clear()
        if optimal_streak == args.optimal_checks:
            break
    return agent, global_step, greedy == optimal_length(eval_env)


def train_and_save(job):
    args, problem, seed = job
    start = time.time()
    agent, steps, optimal = train(args, problem, seed)
    path = os.path.join(args.save_dir, f"{problem}.pt")
    write_atomically(path, lambda temporary: torch.save(agent.state_dict(), temporary))
    return problem, steps, time.time() - start, optimal, path, seed


def write_training_record(save_dir, trained):
    """Add what was trained to SAVE_DIR/training.json, which report.py quotes."""
    path = os.path.join(save_dir, "training.json")
    record = {}
    if os.path.exists(path):
        with open(path) as file:
            record = json.load(file)
    record.update(trained)
    record = {problem: record[problem] for problem in PROBLEMS if problem in record}

    def write_json(temporary):
        with open(temporary, "w") as file:
            json.dump(record, file, indent=1)

    write_atomically(path, write_json)


def main(args):
    unknown = [p for p in args.problems if p not in PROBLEMS]
    if unknown:
        sys.exit(f"error: unknown problem {unknown[0]!r}: expected one of {', '.join(PROBLEMS)}")
    if min(args.total_timesteps, args.num_envs, args.num_steps, args.processes, args.hidden_size) <= 0:
        sys.exit("error: total_timesteps, num_envs, num_steps, processes and hidden_size must be positive")
    os.makedirs(args.save_dir, exist_ok=True)
    jobs = [(args, p, args.seed + PROBLEMS.index(p)) for p in args.problems]
    settings = {key: value for key, value in asdict(args).items() if key not in ("problems", "save_dir", "seed")}
    start, trained = time.time(), {}
    with get_context("fork").Pool(min(args.processes, len(jobs))) as pool:
        for problem, steps, seconds, optimal, path, seed in pool.imap_unordered(train_and_save, jobs):
            status = "optimal" if optimal else "NOT optimal"
            print(f"[{problem}] {status} after {steps:,} steps in {seconds:.0f} s -> {path}", flush=True)
            trained[problem] = {"seed": seed, "steps": steps, "seconds": round(seconds, 1), "optimal": optimal,
                                "settings": settings}
    write_training_record(args.save_dir, trained)
    print(f"trained {len(jobs)} network(s) in {time.time() - start:.0f} s wall")


if __name__ == "__main__":
    main(tyro.cli(Args))
