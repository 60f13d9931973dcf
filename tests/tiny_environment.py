"""A corridor: the smallest environment on the kit's interface (decomposition.environment).

The agent walks a row of cells to a goal cell: action 0 steps left, 1 right, 2 stays. The
observation is the agent's cell one-hot, then the goal's. -1 per step, 0 on reaching the goal;
the downstream task gives +10 on a random goal instead. test_environment.py takes it through PPO
training, discovery and reuse; docs/environments.md reads it as the example of a new environment.
"""

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from decomposition.environment import NUM_ACTIONS, learner_games
from decomposition.episodes import greedy_episodes, macro_step

MOVES = np.array([-1, 1, 0])
MAX_EPISODE_STEPS = 50


class CorridorGames:
    """Games stepped together (environment.Games): a cell, a goal and a step count per game."""

    def __init__(self, cells, goals, width, goal_reward=0.0, step_reward=-1.0):
        self.cells, self.goals = np.array(cells, dtype=np.int64), np.array(goals, dtype=np.int64)
        self.width, self.rewards = width, (goal_reward, step_reward)
        self.steps = np.zeros(len(self.cells), dtype=np.int64)

    def __len__(self):
        return len(self.cells)

    def observations(self):
        observations = np.zeros((len(self), 2 * self.width), dtype=np.float32)
        observations[np.arange(len(self)), self.cells] = 1.0
        observations[np.arange(len(self)), self.width + self.goals] = 1.0
        return observations

    def decision_states(self):
        return self.goals * self.width + self.cells

    def subset(self, games):
        kept = CorridorGames(self.cells[games], self.goals[games], self.width, *self.rewards)
        kept.steps = self.steps[games].copy()
        return kept

    def restart(self, which, cells, goals):
        self.cells[which], self.goals[which], self.steps[which] = cells, goals, 0

    def step(self, actions, active=None):
        active = np.ones(len(self), dtype=bool) if active is None else active
        moved = np.clip(self.cells + MOVES[np.where(active, actions, 2)], 0, self.width - 1)
        self.cells = np.where(active, moved, self.cells)
        self.steps += active
        terminated = active & (self.cells == self.goals)
        truncated = active & ~terminated & (self.steps >= MAX_EPISODE_STEPS)
        return np.where(terminated, *self.rewards) * active, terminated, truncated


@dataclass(frozen=True)
class Corridor:
    """The training problems (environment.Game): "START-GOAL" cells of a corridor `width` long."""
    width: int = 6
    problems: tuple = ("0-5", "5-0", "1-5", "5-1")
    action_period = 1

    @property
    def name(self):
        return f"corridor-{self.width}"

    @property
    def observation_size(self):
        return 2 * self.width

    def cells(self, problem):
        return tuple(int(cell) for cell in problem.split("-"))

    def describe(self):
        return {"corridor": self.width, "problems": list(self.problems)}

    def solution_lengths(self):
        return [abs(goal - start) for start, goal in map(self.cells, self.problems)]

    def solution_games(self, solutions):
        cells, goals, where = [], [], []
        for p, actions in enumerate(solutions):
            start, goal = self.cells(self.problems[p])
            played = CorridorGames([start], [goal], self.width)
            for j, action in enumerate(actions):
                cells.append(played.cells[0])
                goals.append(goal)
                where.append((p, j))
                played.step(np.array([action]))
        return CorridorGames(cells, goals, self.width), where

    def problem_env(self, k):
        return CorridorGym(self, k)

    def every_observation(self):
        cells, goals = np.divmod(np.arange(self.width ** 2), self.width)
        return CorridorGames(cells, goals, self.width).observations()

    def observation_index(self, observations):
        halves = np.asarray(observations).reshape(len(observations), 2, self.width).argmax(-1)
        return halves[:, 0] * self.width + halves[:, 1]


class CorridorGym(gym.Env):
    """Problem k of a Corridor as a gymnasium environment (what a PPOAgent is built on)."""

    def __init__(self, game, k):
        self.game_description, self.problem = game, game.problems[k]
        self.action_space = spaces.Discrete(NUM_ACTIONS)
        self.observation_space = spaces.Box(0.0, 1.0, (game.observation_size,), np.float32)
        self.reset()

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        game = self.game_description
        self.games = CorridorGames(*([cell] for cell in game.cells(self.problem)), game.width)
        return self.games.observations()[0], {}

    def step(self, action):
        rewards, terminated, truncated = self.games.step(np.array([action]))
        return self.games.observations()[0], float(rewards[0]), bool(terminated[0]), bool(truncated[0]), {}

    def observations_to_check(self):
        return self.game_description.every_observation()


class CorridorEnvs:
    """PPO's environments (environment.SolvableEnvs and EvaluatedEnvs): learner i plays num_envs
    games from starts[i] to goals[i]; options run for several primitive steps (episodes.macro_step)."""
    binary_observations = True

    def __init__(self, game, starts, goals, num_envs, options=None, rewards=(0.0, -1.0)):
        self.game, self.num_envs, self.options, self.rewards = game, num_envs, options, rewards
        self.starts, self.goals = np.asarray(starts), np.asarray(goals)
        self.num_learners, self.observation_size = len(self.starts), game.observation_size
        self.num_actions = NUM_ACTIONS + (0 if options is None else len(options))

    def _shaped(self, values):
        return values.reshape(self.num_learners, self.num_envs, *values.shape[1:])

    def reset(self):
        self.games = CorridorGames(*(np.repeat(x, self.num_envs) for x in (self.starts, self.goals)),
                                   self.game.width, *self.rewards)
        return self._shaped(self.games.observations())

    def step(self, actions):
        step_rewards, terminated, truncated, steps = macro_step(self.games, actions.reshape(-1), self.options)
        dones = terminated | truncated
        self.games.restart(dones, *(np.repeat(x, self.num_envs)[dones] for x in (self.starts, self.goals)))
        return (self._shaped(self.games.observations()), self._shaped(step_rewards), self._shaped(dones),
                self._shaped(steps))

    def keep(self, learners):
        self.games = self.games.subset(learner_games(learners, self.num_envs))
        self.starts, self.goals = self.starts[learners], self.goals[learners]
        self.num_learners = len(learners)

    def greedy_evaluation(self, act, learners):
        games = CorridorGames(self.starts[learners], self.goals[learners], self.game.width, *self.rewards)
        optimal = np.abs(self.goals[learners] - self.starts[learners])
        return greedy_episodes(games, optimal, len(learners), act, self.options, self.game.width ** 2)

    def greedy_solved(self, act):
        measures = self.greedy_evaluation(act, np.arange(self.num_learners))
        return np.array([m["spl"] == 1.0 for m in measures])


@dataclass(frozen=True)
class WalkTask:
    """The downstream task (environment.Task): +10 on reaching a goal drawn, with its start, from
    the learner's seed."""
    game: Corridor
    name: str = "walk"
    max_return: float = 10.0

    def envs(self, seeds, num_envs, options):
        pairs = [np.random.default_rng(seed).choice(self.game.width, 2, replace=False) for seed in seeds]
        return CorridorEnvs(self.game, [s for s, _ in pairs], [g for _, g in pairs], num_envs, options, (10.0, 0.0))
