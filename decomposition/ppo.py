"""Many independent PPO learners trained as one batched computation (after PureJaxRL).

Each learner is exactly the PPO of CleanRL's ppo.py that it would be alone: its own task, seed,
environments, rollout, advantage normalisation, minibatch order, gradient-norm clipping,
learning-rate schedule and stopping rule. Only the tensor operations are shared: the learners'
parameters are stacked along a first axis of size L, every layer is one batched matrix product,
and one backward pass and one Adam step update all of them. A learner's loss depends on its own
parameters only, so the gradient of the summed loss is each learner's own gradient. Learners
that finish leave the batch; tests/test_batched_ppo.py checks that a learner's weights are
bit-identical whether it trains alone or beside others.

The kernels that make an update cheap on a CPU are in decomposition.ppo_kernels.

The environments are a decomposition.environment.LearnerEnvs (a SolvableEnvs where
optimal_checks is not 0, an EvaluatedEnvs where `train`'s evaluate_at is given). An action may
run for several primitive steps (an option): the budget and the learning-rate schedule count
primitive steps, and the discounting is the options framework's (Sutton, Precup and Singh,
1999): an action of k primitive steps with rewards r1 ... rk earns r1 + g r2 + ... + g^(k-1) rk,
and the value after it is discounted by g^k (`advantage_estimates`). With one primitive step per
action these are PPO's usual numbers, bit for bit. The greedy evaluation at fixed primitive-step
counts draws no random number and so changes no weight. Equal observations are recognised as
such only where the environments declare binary_observations (otherwise every row counts as
distinct).
"""

import time
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch
from gymnasium import spaces

from decomposition.ppo_kernels import DistinctRows, StackedAdam, StackedPolicies
from decomposition.script import FRACTION, Range, Settings, keep_freed_memory
from ppo_agent import PPOAgent


@dataclass
class PPOSettings(Settings):
    """CleanRL ppo.py's hyper-parameters, per learner (train_ppo.Args extends them), and their ranges."""
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

    RANGES = {"hidden_size": Range(1, 10**5), "total_timesteps": Range(1, 10**12), "optimal_checks": Range(0, 10**6),
              "learning_rate": Range(0, 1, low_open=True), "num_envs": Range(1, 10**6), "num_steps": Range(1, 10**6),
              "gamma": FRACTION, "gae_lambda": FRACTION, "num_minibatches": Range(1, 10**6),
              "update_epochs": Range(1, 10**3), "clip_coef": Range(0, 10, low_open=True), "ent_coef": Range(0, 10**3),
              "vf_coef": Range(0, 10**3), "max_grad_norm": Range(0, 10**6, low_open=True)}


def memory_estimate(settings, learners, processes, observation_size):
    """Bytes a batched run of this many learners needs, roughly: measured here as 270 MB per process
    plus 3.2 MB per learner at 16 environments x 128 steps, 64 hidden neurons and 59 inputs (the
    rollout's rows, their minibatches and activations), with a margin; the part per learner grows
    with the rows of a rollout, the width of the networks and the size of an observation."""
    rows = settings.num_envs * settings.num_steps
    parameters = (observation_size + 4) * (settings.hidden_size + 64) + 64 * 65  # a learner's actor and critic
    per_learner = rows * (100 + 12 * observation_size + 10 * (settings.hidden_size + 64)) + 24 * parameters
    return 300e6 * processes + learners * per_learner


@dataclass
class LearnerResult:
    """What one learner ended with."""
    seed: int
    state_dict: dict              # PPOAgent's state_dict
    steps: int                    # primitive environment steps taken
    solved: bool                  # its greedy policy solved the task at the last check (False: no checks)
    first_solved_step: int = -1   # primitive steps when a greedy check first succeeded (-1: never)
    curve: list = field(default_factory=list)  # (primitive steps, mean return of the episodes ended)
    evaluations: list = field(default_factory=list)  # per evaluation point: the environment's measures


def initial_agent(seed, observation_size, num_actions, hidden_size):
    """The PPOAgent a learner starts from: CleanRL's initialisation under torch.manual_seed(seed)."""
    torch.manual_seed(seed)
    shapes = type("Spaces", (), {"observation_space": spaces.Box(0, 1, (observation_size,)),
                                 "action_space": spaces.Discrete(num_actions)})
    return PPOAgent(shapes, hidden_size)


def clip_gradients(grad, max_norm):
    """Scale each learner's gradient (a row of grad (L, P)) so that its norm is at most max_norm."""
    scale = (max_norm / (torch.linalg.vector_norm(grad, dim=1) + 1e-6)).clamp(max=1.0)
    grad.mul_(scale.unsqueeze(1))


def sample(logits, uniforms):
    """Draw one action per row of logits (L, B, A) by inverting the CDF at uniforms (L, B)."""
    cdf = torch.softmax(logits, dim=-1).cumsum(-1)[..., :-1]
    return (cdf <= uniforms.unsqueeze(-1)).sum(-1)


def advantage_estimates(rewards, values, dones, next_value, next_done, gamma, gae_lambda, steps):
    """Generalized advantage estimation over a rollout (T, L, E), per learner and environment, for
    actions that take steps (T, L, E) primitive steps (semi-Markov GAE): a transition of k steps,
    whose rewards arrive already discounted within it, bootstraps the next value with gamma^k, and
    the trace of later advantages decays by (gamma lambda)^k, as k one-step transitions would decay
    it. With k = 1 these factors are gamma and gamma * lambda themselves: CleanRL's numbers."""
    # float32 factors, as the rollout's arrays: gamma^1 and (gamma lambda)^1 round to what a Python
    # float times a float32 array uses
    discounts = (gamma ** steps).astype(np.float32)
    traces = ((gamma * gae_lambda) ** steps).astype(np.float32)
    advantages = np.zeros_like(rewards)
    last_gae = np.zeros_like(next_value)
    for t in reversed(range(len(rewards))):
        next_non_terminal = 1.0 - (next_done if t == len(rewards) - 1 else dones[t + 1])
        following = next_value if t == len(rewards) - 1 else values[t + 1]
        delta = rewards[t] + discounts[t] * following * next_non_terminal - values[t]
        advantages[t] = last_gae = delta + traces[t] * next_non_terminal * last_gae
    return advantages


def discounted_sums(step_rewards, gamma):
    """Rewards per primitive step of each action (..., K) -> r1 + g r2 + ... + g^(K-1) rK (...)."""
    return (step_rewards * gamma ** np.arange(step_rewards.shape[-1])).sum(-1)


def clipped_surrogate_loss(advantages, ratio, clip_coef):
    """PPO's per-row policy loss max(-A r, -A clip(r, 1 - c, 1 + c)), with torch.max's values and gradient.

    Inside the clip range the two terms tie; there max's backward gives each half the gradient, and
    the halves add up exactly to the whole that `where` gives the first (test): the same bits from a
    backward of two operations instead of about ten."""
    unclipped, clipped = -advantages * ratio, -advantages * ratio.clamp(1 - clip_coef, 1 + clip_coef)
    return torch.where(unclipped >= clipped, unclipped, clipped)


def normalized(advantages):
    """Advantages (..., M) normalised over their last axis, as CleanRL's ppo.py does per minibatch
    (the same numbers whatever the leading axes: each row is reduced alone)."""
    return (advantages - advantages.mean(-1, keepdim=True)) / (advantages.std(-1, keepdim=True) + 1e-8)


@dataclass
class Rollout:
    """One iteration's experience of the learners still training: per step and environment, the
    rewards and dones (T, L, E) numpy arrays; per row of the flattened rollout (L, T * E), the
    actions and their log-probabilities, and the observations as DistinctRows (with the next
    observations after them); per learner, the primitive steps taken, and the summed returns and
    number of the episodes that ended; per step and environment, the primitive steps its action took."""
    rewards: np.ndarray
    dones: np.ndarray
    action_steps: np.ndarray
    steps: np.ndarray
    returns_ended: np.ndarray
    episodes_ended: np.ndarray
    actions: torch.Tensor = None
    logprobs: torch.Tensor = None
    rows: DistinctRows = None


class TrainingLog:
    """What every learner did so far, by original index: primitive steps, consecutive greedy
    successes, the step of the first one, the learning curve, the evaluations at the points
    `evaluate_at` (primitive steps) and the result once finished."""

    def __init__(self, learners, evaluate_at=()):
        self.steps = np.zeros(learners, dtype=np.int64)
        self.streaks = np.zeros(learners, dtype=np.int64)
        self.first_solved = np.full(learners, -1)
        self.curves = [[] for _ in range(learners)]
        self.evaluate_at = sorted(evaluate_at)
        self.evaluations = [[] for _ in range(learners)]
        self.results = [None] * learners
        self.started = time.time()

    def next_point(self, i):
        """Learner i's first evaluation point not evaluated yet if its steps have reached it, else None."""
        evaluated = len(self.evaluations[i])
        if evaluated < len(self.evaluate_at) and self.steps[i] >= self.evaluate_at[evaluated]:
            return self.evaluate_at[evaluated]
        return None

    def due(self, active):
        """The positions in `active` of the learners that have reached an evaluation point not yet evaluated."""
        return [k for k, i in enumerate(active) if self.next_point(i) is not None]

    def record_evaluations(self, learners, measures):
        """measures[j]: learner learners[j]'s evaluation, recorded at every point its steps have passed."""
        for i, measure in zip(learners, measures):
            while (point := self.next_point(i)) is not None:
                self.evaluations[i].append({"point": point, **measure})

    def record(self, active, solved, rollout, settings, ppo):
        """Record an iteration of the learners `active` whose greedy policies solved the task or not;
        returns the positions in `active` of those that finished (their LearnerResults are made)."""
        finished = []
        for k, i in enumerate(active):
            self.streaks[i] = self.streaks[i] + 1 if solved[k] else 0
            if solved[k] and self.first_solved[i] < 0:
                self.first_solved[i] = self.steps[i]
            ended = rollout.episodes_ended[k]
            self.curves[i].append((int(self.steps[i]), float(rollout.returns_ended[k] / ended) if ended
                                   else float("nan")))
            streak_done = settings.optimal_checks and self.streaks[i] >= settings.optimal_checks
            if streak_done or self.steps[i] >= settings.total_timesteps:
                self.results[i] = LearnerResult(ppo.seeds[i], ppo.policies.state_dict(k), int(self.steps[i]),
                                                bool(solved[k]), int(self.first_solved[i]), self.curves[i],
                                                self.evaluations[i])
                finished.append(k)
        return finished

    def progress(self, active, budget):
        """The counts train's on_iteration receives."""
        finished = [r for r in self.results if r is not None]
        return {"steps": int(self.steps.sum()), "learners": len(self.results), "finished": len(finished),
                "solved": sum(r.solved for r in finished), "seconds": time.time() - self.started,
                "budget_left": int(np.maximum(0, budget - self.steps[active]).sum())}


class BatchedPPO:
    """L PPO learners on the L learners' environments `envs`, learner i seeded with seeds[i] and,
    if learning_rates is given, with its own learning rate learning_rates[i] (otherwise settings')."""

    def __init__(self, envs, seeds, settings, learning_rates=None):
        assert envs.num_learners == len(seeds) and envs.num_envs == settings.num_envs
        self.envs, self.seeds, self.settings = envs, list(seeds), settings
        rates = [settings.learning_rate] * len(seeds) if learning_rates is None else learning_rates
        self.learning_rates = torch.tensor(rates, dtype=torch.float32)
        agents = [initial_agent(seed, envs.observation_size, envs.num_actions, settings.hidden_size)
                  for seed in seeds]
        self.policies = StackedPolicies(agents)
        self.optimizer = StackedAdam(self.policies.flat, eps=1e-5)
        self.generators = [torch.Generator().manual_seed(seed) for seed in seeds]

    def greedy_actions(self, observations, policies=None):
        """Greedy actions (L, n) of every learner of `policies` (by default all) on its own observations (L, n, D)."""
        with torch.no_grad():
            logits = (policies or self.policies).logits(torch.as_tensor(observations))
        return torch.argmax(torch.softmax(logits, -1), -1).numpy()

    def train(self, on_iteration=None, evaluate_at=()):
        """Train until every learner has finished; returns one LearnerResult per learner, in order.

        A learner finishes when its greedy policy has solved its task at `optimal_checks`
        consecutive iterations (never, if 0) or when it has used its budget of primitive steps.
        on_iteration(progress), if given, is called after every iteration with a dict of counts.
        evaluate_at: primitive-step counts at which each learner's greedy policy is evaluated
        (envs.greedy_evaluation), after the update of the iteration that reaches the count.
        """
        keep_freed_memory()  # an update's tensors are megabytes: reused, not page-faulted in afresh
        s = self.settings
        log = TrainingLog(len(self.seeds), evaluate_at)
        active = list(range(len(self.seeds)))  # original indices of the learners still training
        self.next_obs = torch.as_tensor(self.envs.reset())
        self.next_done = np.zeros((len(active), s.num_envs), dtype=np.float32)
        self.episode_returns = np.zeros((len(active), s.num_envs))
        while active:
            learning_rates = self.learning_rates[active] * torch.as_tensor(
                np.maximum(0.0, 1.0 - log.steps[active] / s.total_timesteps), dtype=torch.float32)
            # 1. rollout: num_steps actions in each learner's num_envs environments
            rollout = self.collect(active)
            log.steps[active] += rollout.steps
            # 2. advantages: generalized advantage estimation, per learner and environment
            advantages, values = self.advantages(rollout)
            # 3. update: update_epochs passes over the rollout in minibatches, each learner in its own order
            self.learn(rollout, advantages, values, active, learning_rates)
            # 4. evaluation and stopping: the learners that reached an evaluation point are evaluated, the
            # greedy policies checked (if asked), and the learners that finished leave the batch
            self.evaluate(log, active)
            solved = self.envs.greedy_solved(self.greedy_actions) if s.optimal_checks else np.zeros(len(active), bool)
            finished = log.record(active, solved, rollout, s, self)
            if finished:
                kept = [k for k in range(len(active)) if k not in finished]
                active = [active[k] for k in kept]
                if active:
                    self._keep(kept)
            if on_iteration is not None:
                on_iteration(log.progress(active, s.total_timesteps))
        return log.results

    def evaluate(self, log, active):
        """Evaluate, as one batch, the greedy policies of the learners that reached an evaluation point."""
        due = log.due(active)
        if due:
            act = partial(self.greedy_actions, policies=self.policies.subset(due))
            log.record_evaluations([active[k] for k in due], self.envs.greedy_evaluation(act, due))

    def collect(self, active):
        """The rollout of the learners `active` (original indices), from where the last one stopped."""
        s = self.settings
        count = len(active)
        obs, logits, actions = [], [], []  # per step, stacked after the rollout (cheaper than writing slices)
        rewards, dones = (np.zeros((s.num_steps, count, s.num_envs), dtype=np.float32) for _ in range(2))
        action_steps = np.zeros((s.num_steps, count, s.num_envs), dtype=np.int64)
        rollout = Rollout(rewards=rewards, dones=dones, action_steps=action_steps,
                          steps=np.zeros(count, dtype=np.int64),
                          returns_ended=np.zeros(count), episodes_ended=np.zeros(count, dtype=np.int64))
        # the rollout's action-sampling draws at once: the same numbers as one draw per step
        uniforms = torch.stack([torch.rand(s.num_steps, s.num_envs, generator=self.generators[i]) for i in active])
        with torch.no_grad():
            for t in range(s.num_steps):
                obs.append(self.next_obs)
                dones[t] = self.next_done
                logits.append(self.policies.logits(self.next_obs))
                actions.append(sample(logits[t], uniforms[:, t]))
                observation, step_rewards, done, action_steps[t] = self.envs.step(actions[t].numpy())
                rewards[t] = discounted_sums(step_rewards, s.gamma)
                rollout.steps += action_steps[t].sum(1)
                # the training curve: episodes' undiscounted returns (float32 sums, as the rollout's rewards)
                self.episode_returns += step_rewards.sum(-1).astype(np.float32)
                rollout.returns_ended += np.where(done, self.episode_returns, 0.0).sum(1)
                rollout.episodes_ended += done.sum(1)
                self.episode_returns[done] = 0.0
                self.next_obs, self.next_done = torch.as_tensor(observation), done.astype(np.float32)
        rollout.actions = torch.stack(actions, 1).flatten(1)  # (L, T * E)
        logits = torch.stack(logits, 1).flatten(1, 2)
        rollout.logprobs = torch.log_softmax(logits, -1).gather(-1, rollout.actions.unsqueeze(-1)).squeeze(-1)
        # the rollout's rows (L, T * E), then the next observations: each distinct observation once
        rollout.rows = DistinctRows.of(torch.stack([*obs, self.next_obs], 1).flatten(1, 2),
                                       self.envs.binary_observations)
        return rollout

    def advantages(self, rollout):
        """Advantages and the rollout's values, both (L, T * E), the values computed once per distinct
        observation."""
        s = self.settings
        learners, batch_size = rollout.actions.shape
        with torch.no_grad():
            values = rollout.rows.spread(self.policies.value(rollout.rows.observations))
        per_step = values[:, :batch_size].view(learners, s.num_steps, s.num_envs).transpose(0, 1).numpy()
        advantages = advantage_estimates(rollout.rewards, per_step, rollout.dones, values[:, batch_size:].numpy(),
                                         self.next_done, s.gamma, s.gae_lambda, rollout.action_steps)
        return torch.as_tensor(advantages).transpose(0, 1).flatten(1), values  # (T, L, E) -> (L, T * E)

    def learn(self, rollout, advantages, values, active, learning_rates):
        """update_epochs epochs of clipped-surrogate steps on the rollout's minibatches."""
        s = self.settings
        learners, batch_size = rollout.actions.shape
        minibatch_size = batch_size // s.num_minibatches
        returns = advantages + values[:, :batch_size]
        for _ in range(s.update_epochs):
            order = torch.stack([torch.randperm(batch_size, generator=self.generators[i]) for i in active])
            # the epoch's minibatches at once, (minibatches, L, minibatch size): one gather per array
            mb_actions, mb_logprobs, mb_advantages, mb_returns, mb_values = (
                x.gather(1, order).view(learners, s.num_minibatches, minibatch_size).transpose(0, 1).contiguous()
                for x in (rollout.actions, rollout.logprobs, advantages, returns, values))
            for rows, *minibatch in zip(order.split(minibatch_size, dim=1), mb_actions, mb_logprobs,
                                        normalized(mb_advantages), mb_returns, mb_values):
                self.update(rollout.rows.select(rows), *minibatch, learning_rates=learning_rates)

    def _keep(self, kept):
        self.policies.keep(kept)
        self.optimizer.keep(kept)
        self.envs.keep(kept)
        self.next_obs, self.next_done = self.next_obs[kept], self.next_done[kept]
        self.episode_returns = self.episode_returns[kept]

    def loss(self, minibatch, actions, old_logprobs, advantages, returns, old_values):
        """Each learner's PPO loss (L,) on its minibatch: the observations as DistinctRows, the
        rest (L, M), the advantages normalised over the minibatch (`normalized`)."""
        s = self.settings
        # per distinct observation
        logits, values = self.policies.logits_and_values(minibatch.inputs)
        log_probs = torch.log_softmax(logits, -1)
        entropy = minibatch.spread(-(log_probs.exp() * log_probs).sum(-1))
        # each row's action's log-probability, read from its distinct observation's
        new_logprobs = log_probs.flatten(1).gather(1, minibatch.inverse * log_probs.shape[-1] + actions)
        ratio = (new_logprobs - old_logprobs).exp()
        pg_loss = clipped_surrogate_loss(advantages, ratio, s.clip_coef).mean(1)
        new_values = minibatch.spread(values)
        clipped_values = old_values + (new_values - old_values).clamp(-s.clip_coef, s.clip_coef)
        v_loss = 0.5 * torch.max((new_values - returns) ** 2, (clipped_values - returns) ** 2).mean(1)
        return pg_loss - s.ent_coef * entropy.mean(1) + s.vf_coef * v_loss

    def gradient(self, *minibatch):
        """Each learner's gradient (L, P) of its loss, laid out as StackedPolicies.flat."""
        for p in self.policies.params.values():
            p.grad = None
        self.loss(*minibatch).sum().backward()  # a learner's loss depends on its parameters only
        return self.policies.flat_grad()

    def update(self, *minibatch, learning_rates):
        """One clipped-surrogate step on a minibatch of every learner (the arguments of loss)."""
        grad = self.gradient(*minibatch)
        clip_gradients(grad, self.settings.max_grad_norm)
        self.optimizer.step(self.policies.flat, grad, learning_rates)
