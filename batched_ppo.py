"""Many independent PPO learners trained as one batched computation (after PureJaxRL).

Each learner is exactly the PPO of CleanRL's ppo.py that it would be alone: its own task, seed,
environments, rollout, advantage normalisation, minibatch order, gradient-norm clipping,
learning-rate schedule and stopping rule. Only the tensor operations are shared: the learners'
parameters are stacked along a first axis of size L, every layer is one batched matrix product,
and one backward pass and one Adam step update all of them. A learner's loss depends on its own
parameters only, so the gradient of the summed loss is each learner's own gradient. Learners
that finish leave the batch; tests/test_batched_ppo.py checks that a learner's weights are
bit-identical whether it trains alone or beside others.

The environments are any object with the interface of combogrid.ComboGridVec: `num_actions`,
`observation_size`, `reset()`, `step(actions)` returning (observations, rewards, dones,
primitive steps), `keep(learners)` and `greedy_solved(act)`. An action may run for several
primitive steps (an option): the budget and the learning-rate schedule count primitive steps.
"""

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from gymnasium import spaces

from ppo_agent import PPOAgent

LAYERS = ("actor.0", "actor.2", "critic.0", "critic.2", "critic.4")


@dataclass
class PPOSettings:
    """CleanRL ppo.py's hyper-parameters, per learner (train_ppo.Args extends them)."""
    hidden_size: int = 64
    """neurons of the actor's hidden layer"""
    total_timesteps: int = 3_000_000
    """most primitive environment steps per learner"""
    optimal_checks: int = 10
    """consecutive iterations with an optimal greedy policy that end a learner's training (0: never)"""
    learning_rate: float = 1e-3
    """Adam learning rate, annealed linearly to 0 over total_timesteps"""
    num_envs: int = 16
    """parallel environments per learner"""
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


def memory_estimate(learners):
    """Bytes a batched run of this many learners needs, roughly: measured here as 270 MB plus
    3.2 MB per learner (rollout buffers and stacked parameters), with a margin."""
    return 300e6 + 4e6 * learners


MEMORY_LIMIT = 4e9


@dataclass
class LearnerResult:
    """What one learner ended with."""
    seed: int
    state_dict: dict              # PPOAgent's state_dict
    steps: int                    # primitive environment steps taken
    solved: bool                  # its greedy policy solved the task at the last check
    first_solved_step: int = -1   # primitive steps when a greedy check first succeeded (-1: never)
    curve: list = field(default_factory=list)  # (primitive steps, mean return of the episodes ended)


def initial_agent(seed, observation_size, num_actions, hidden_size):
    """The PPOAgent a learner starts from: CleanRL's initialisation under torch.manual_seed(seed)."""
    torch.manual_seed(seed)
    shapes = type("Spaces", (), {"observation_space": spaces.Box(0, 1, (observation_size,)),
                                 "action_space": spaces.Discrete(num_actions)})
    return PPOAgent(shapes, hidden_size)


class StackedPolicies:
    """The actor and critic of L learners, stacked: parameter `name` has shape (L, *shape)."""

    def __init__(self, agents):
        states = [agent.state_dict() for agent in agents]
        self.params = {name: torch.stack([s[name] for s in states]).requires_grad_()
                       for name in states[0]}

    def _linear(self, layer, x):
        bias, weight = self.params[f"{layer}.bias"], self.params[f"{layer}.weight"]
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))

    def logits(self, x):
        """x (L, B, D) -> action logits (L, B, A)."""
        return self._linear("actor.2", torch.relu(self._linear("actor.0", x)))

    def value(self, x):
        """x (L, B, D) -> state values (L, B)."""
        hidden = torch.tanh(self._linear("critic.2", torch.tanh(self._linear("critic.0", x))))
        # a product and a sum, not a matrix product: batched products with one output column take
        # a path whose rounding depends on the batch size, and a learner must not see its neighbours
        return (hidden * self.params["critic.4.weight"]).sum(-1) + self.params["critic.4.bias"]

    def keep(self, learners):
        with torch.no_grad():
            self.params = {name: p[learners].requires_grad_() for name, p in self.params.items()}

    def state_dict(self, learner):
        return {name: p[learner].detach().clone() for name, p in self.params.items()}


class StackedAdam:
    """Adam (torch.optim.Adam's update) with one learning rate per learner."""

    def __init__(self, params, eps, betas=(0.9, 0.999)):
        self.eps, self.betas, self.steps = eps, betas, 0
        self.first = {name: torch.zeros_like(p) for name, p in params.items()}
        self.second = {name: torch.zeros_like(p) for name, p in params.items()}

    def keep(self, learners):
        self.first = {name: m[learners] for name, m in self.first.items()}
        self.second = {name: m[learners] for name, m in self.second.items()}

    @torch.no_grad()
    def step(self, params, learning_rates):
        self.steps += 1
        beta1, beta2 = self.betas
        step_sizes = learning_rates / (1 - beta1 ** self.steps)
        correction2_sqrt = (1 - beta2 ** self.steps) ** 0.5
        for name, p in params.items():
            first, second = self.first[name], self.second[name]
            first.lerp_(p.grad, 1 - beta1)
            second.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
            denominator = (second.sqrt() / correction2_sqrt).add_(self.eps)
            p.sub_(first / denominator * step_sizes.view(-1, *[1] * (p.dim() - 1)))


def clip_gradients(params, max_norm):
    """Scale each learner's gradient so that its global norm is at most max_norm."""
    with torch.no_grad():
        squares = sum(p.grad.flatten(1).square().sum(1) for p in params.values())
        scale = (max_norm / (squares.sqrt() + 1e-6)).clamp(max=1.0)
        for p in params.values():
            p.grad.mul_(scale.view(-1, *[1] * (p.dim() - 1)))


def sample(logits, uniforms):
    """Draw one action per row of logits (L, B, A) by inverting the CDF at uniforms (L, B)."""
    cdf = torch.softmax(logits, dim=-1).cumsum(-1)[..., :-1]
    return (cdf <= uniforms.unsqueeze(-1)).sum(-1)


class BatchedPPO:
    """L PPO learners on the L learners' environments `envs`, learner i seeded with seeds[i]."""

    def __init__(self, envs, seeds, settings):
        assert envs.num_learners == len(seeds) and envs.num_envs == settings.num_envs
        self.envs, self.seeds, self.settings = envs, list(seeds), settings
        agents = [initial_agent(seed, envs.observation_size, envs.num_actions, settings.hidden_size)
                  for seed in seeds]
        self.policies = StackedPolicies(agents)
        self.optimizer = StackedAdam(self.policies.params, eps=1e-5)
        self.generators = [torch.Generator().manual_seed(seed) for seed in seeds]

    def greedy_actions(self, observations):
        """Greedy actions (L, n) of every learner on its own observations (L, n, D)."""
        with torch.no_grad():
            logits = self.policies.logits(torch.as_tensor(observations))
        return torch.argmax(torch.softmax(logits, -1), -1).numpy()

    def train(self, on_iteration=None):
        """Train until every learner has finished; returns one LearnerResult per learner, in order.

        A learner finishes when its greedy policy has solved its task at `optimal_checks`
        consecutive iterations (never, if 0) or when it has used its budget of primitive steps.
        on_iteration(progress), if given, is called after every iteration with a dict of counts.
        """
        s, envs = self.settings, self.envs
        num_learners, batch_size = len(self.seeds), s.num_envs * s.num_steps
        minibatch_size = batch_size // s.num_minibatches
        active = list(range(num_learners))  # original indices of the learners still training
        results = [None] * num_learners
        steps = np.zeros(num_learners, dtype=np.int64)
        streaks = np.zeros(num_learners, dtype=np.int64)
        first_solved = np.full(num_learners, -1)
        curves = [[] for _ in range(num_learners)]
        episode_returns = np.zeros((num_learners, s.num_envs))

        next_obs = torch.as_tensor(envs.reset())
        next_done = torch.zeros(num_learners, s.num_envs)
        start = time.time()
        while active:
            count = len(active)
            learning_rates = s.learning_rate * torch.as_tensor(
                np.maximum(0.0, 1.0 - steps[active] / s.total_timesteps), dtype=torch.float32)
            obs = torch.zeros(s.num_steps, count, s.num_envs, envs.observation_size)
            actions = torch.zeros(s.num_steps, count, s.num_envs, dtype=torch.long)
            logprobs, rewards, dones, values = (torch.zeros(s.num_steps, count, s.num_envs) for _ in range(4))
            finished_returns = [[] for _ in range(count)]
            # the rollout's action-sampling draws at once: the same numbers as one draw per step
            uniforms = torch.stack([torch.rand(s.num_steps, s.num_envs, generator=self.generators[i]) for i in active])
            for t in range(s.num_steps):
                obs[t], dones[t] = next_obs, next_done
                with torch.no_grad():
                    logits = self.policies.logits(next_obs)
                    values[t] = self.policies.value(next_obs)
                action = sample(logits, uniforms[:, t])
                logprobs[t] = torch.log_softmax(logits, -1).gather(-1, action.unsqueeze(-1)).squeeze(-1)
                actions[t] = action
                observation, reward, done, primitive = envs.step(action.numpy())
                steps[active] += primitive.sum(1)
                episode_returns[active] += reward
                for k, e in zip(*np.nonzero(done)):
                    finished_returns[k].append(episode_returns[active[k], e])
                episode_returns[active] = np.where(done, 0.0, episode_returns[active])
                rewards[t] = torch.as_tensor(reward, dtype=torch.float32)
                next_obs, next_done = torch.as_tensor(observation), torch.as_tensor(done, dtype=torch.float32)

            with torch.no_grad():  # generalized advantage estimation, per learner and environment
                next_value = self.policies.value(next_obs)
                advantages = torch.zeros_like(rewards)
                last_gae = torch.zeros(count, s.num_envs)
                for t in reversed(range(s.num_steps)):
                    next_non_terminal = 1.0 - (next_done if t == s.num_steps - 1 else dones[t + 1])
                    following = next_value if t == s.num_steps - 1 else values[t + 1]
                    delta = rewards[t] + s.gamma * following * next_non_terminal - values[t]
                    advantages[t] = last_gae = delta + s.gamma * s.gae_lambda * next_non_terminal * last_gae
                returns = advantages + values

            b_obs, b_actions, b_logprobs, b_advantages, b_returns, b_values = (  # (T, L, E, ...) -> (L, T * E, ...)
                x.transpose(0, 1).flatten(1, 2) for x in (obs, actions, logprobs, advantages, returns, values))
            rows = torch.arange(count).unsqueeze(1)
            for _ in range(s.update_epochs):
                order = torch.stack([torch.randperm(batch_size, generator=self.generators[i]) for i in active])
                for mb in order.split(minibatch_size, dim=1):
                    self.update(b_obs[rows, mb], b_actions[rows, mb], b_logprobs[rows, mb],
                                b_advantages[rows, mb], b_returns[rows, mb], b_values[rows, mb], learning_rates)

            solved = envs.greedy_solved(self.greedy_actions)
            done_now = []
            for k, i in enumerate(active):
                streaks[i] = streaks[i] + 1 if solved[k] else 0
                if solved[k] and first_solved[i] < 0:
                    first_solved[i] = steps[i]
                curves[i].append((int(steps[i]), float(np.mean(finished_returns[k])) if finished_returns[k]
                                  else float("nan")))
                if (s.optimal_checks and streaks[i] >= s.optimal_checks) or steps[i] >= s.total_timesteps:
                    results[i] = LearnerResult(self.seeds[i], self.policies.state_dict(k), int(steps[i]),
                                               bool(solved[k]), int(first_solved[i]), curves[i])
                    done_now.append(k)
            if done_now:
                kept = [k for k in range(count) if k not in done_now]
                active = [active[k] for k in kept]
                if active:
                    self._keep(kept)
                    next_obs, next_done = next_obs[kept], next_done[kept]
            if on_iteration is not None:
                finished = [r for r in results if r is not None]
                on_iteration({"steps": int(steps.sum()), "learners": num_learners, "finished": len(finished),
                              "solved": sum(r.solved for r in finished), "seconds": time.time() - start,
                              "budget_left": int(np.maximum(0, s.total_timesteps - steps[active]).sum())})
        return results

    def _keep(self, kept):
        self.policies.keep(kept)
        self.optimizer.keep(kept)
        self.envs.keep(kept)

    def update(self, obs, actions, old_logprobs, advantages, returns, old_values, learning_rates):
        """One clipped-surrogate step on a minibatch (L, M, ...) of every learner."""
        s, params = self.settings, self.policies.params
        logits = self.policies.logits(obs)
        log_probs = torch.log_softmax(logits, -1)
        new_logprobs = log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        entropy = -(log_probs.exp() * log_probs).sum(-1)
        ratio = (new_logprobs - old_logprobs).exp()
        advantages = (advantages - advantages.mean(1, keepdim=True)) / (advantages.std(1, keepdim=True) + 1e-8)
        pg_loss = torch.max(-advantages * ratio,
                            -advantages * ratio.clamp(1 - s.clip_coef, 1 + s.clip_coef)).mean(1)
        new_values = self.policies.value(obs)
        clipped = old_values + (new_values - old_values).clamp(-s.clip_coef, s.clip_coef)
        v_loss = 0.5 * torch.max((new_values - returns) ** 2, (clipped - returns) ** 2).mean(1)
        loss = pg_loss - s.ent_coef * entropy.mean(1) + s.vf_coef * v_loss  # (L,) one loss per learner
        for p in params.values():
            p.grad = None
        loss.sum().backward()
        clip_gradients(params, s.max_grad_norm)
        self.optimizer.step(params, learning_rates)
