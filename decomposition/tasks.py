"""The downstream tasks (docs/game.md): new ComboGrid problems on which extracted functions are reused.

Both play on ComboGridBatch's rules for one Game (the same grid, walls, combos and observation,
whose goal part shows the current goal), with their own rewards:
- "multi-goal": start on the game's multi_goal start (the 5 x 5 game: (2, 2)), reach its goals in
  order ((0, 2), (2, 4), (4, 2), (2, 0)); +10 per goal reached, 0 otherwise; terminated on the last
  goal (maximum return 40 with four goals), truncated after 500 steps.
- "random": start and goal drawn uniformly among the open cells, distinct; +10 on reaching the
  goal, which terminates; 0 otherwise; truncated after 500 steps.
- "all-goals": the research code's form of the multi-goal task: the same start and goals, all
  shown at once (the goal part of the observation is their multi-hot) and taken in any order; +10
  per goal reached, which then disappears; terminated on the last one. Optimal: the shortest tour.
The reuse study (downstream.py) uses multi-goal and random by default; --tasks all-goals adds this one.

`TaskGames` steps many games of one task; `TaskVec` gives PPO learners (decomposition.ppo) their
environments, with the actions extended by options (decomposition.options) that run for several
primitive steps (decomposition.episodes), and evaluates their greedy policies (success rate and SPL); `MultiGoalGym`,
`RandomGoalGym` and `AllGoalsGym` are the gymnasium environments, registered as
ComboGrid-MultiGoal-v0, ComboGrid-Random-v0 and ComboGrid-AllGoals-v0 when combogrid is imported.
"""

import itertools
from dataclasses import dataclass

import numpy as np
import gymnasium as gym
from gymnasium import spaces

from combogrid import DEFAULT_GAME, NUM_ACTIONS, ComboGridBatch, Game, checked_action, game_named, start_option
from decomposition.environment import learner_games
from decomposition.episodes import greedy_episodes, macro_step
from decomposition.combo_rules import MAX_EPISODE_STEPS

TASKS = ("multi-goal", "random", "all-goals")
STUDY_TASKS = ("multi-goal", "random")
"""The tasks downstream.py learns by default."""
TOUR_TASKS = ("multi-goal", "all-goals")
"""The tasks on the game's multi_goal tour (one start, several goals)."""
GOAL_REWARD = 10.0


def multi_goal_tour(game):
    """The multi-goal task's start cell (2,) and its goals in order (G, 2)."""
    cells = np.array([game.cell(code) for code in game.multi_goal])
    return cells[0], cells[1:]


def max_return(task, game):
    return GOAL_REWARD * (len(game.multi_goal) - 1 if task in TOUR_TASKS else 1)


@dataclass(frozen=True)
class ComboGridTask:
    """A downstream task of one ComboGrid game as the reuse study trains it (environment.Task)."""
    name: str
    """one of TASKS"""
    game: Game = DEFAULT_GAME

    def __post_init__(self):
        if self.name not in TASKS:
            raise ValueError(f"unknown task {self.name!r}: expected one of {', '.join(TASKS)}")

    def __str__(self):
        return self.name

    @property
    def max_return(self):
        return max_return(self.name, self.game)

    def envs(self, seeds, num_envs, options):
        return TaskVec(self.name, seeds, num_envs, options, self.game)


def goal_states(task, game):
    """How many goal states a game of the task can be in: the multi-goal task's goal index runs to
    its number of goals (all reached); the all-goals task's set of goals reached is a bit mask."""
    goals = len(game.multi_goal) - 1
    return 2 ** goals if task == "all-goals" else goals + 1


def decision_state_count(task, game):
    """How many (goal state, combo buffer, cell) states a game of the task can be in."""
    return goal_states(task, game) * game.buffer_states * game.cells


def random_start_and_goal(rng, n, game):
    """n (start, goal) pairs of distinct open cells, uniform over the ordered pairs."""
    cells = np.array(game.open_cells)
    start = rng.integers(len(cells), size=n)
    goal = (start + 1 + rng.integers(len(cells) - 1, size=n)) % len(cells)  # any cell but the start
    return cells[start], cells[goal]


def all_start_goal_pairs(game):
    """Every ordered (start, goal) pair of distinct open cells (600 on the 5 x 5 grid), start-major."""
    cells = game.open_cells
    pairs = [(s, g) for s in cells for g in cells if s != g]
    return np.array([s for s, _ in pairs]), np.array([g for _, g in pairs])


class TaskGames:
    """n games of one task on one Game. `step` applies primitive actions and returns the task's rewards."""

    def __init__(self, task, starts, goals, game=DEFAULT_GAME):
        assert task in TASKS, task
        self.task, self.game = task, game
        self.games = ComboGridBatch(starts, goals, game)
        self.goals = multi_goal_tour(game)[1]
        # multi-goal: the index of the current goal; all-goals: the bit mask of the goals reached
        self.goal_index = np.zeros(len(self.games.agent_cells), dtype=np.int64)

    def __len__(self):
        return len(self.goal_index)

    @property
    def steps(self):
        return self.games.steps

    def observations(self):
        observations = self.games.observations()
        if self.task == "all-goals":  # every goal not yet reached, at once
            game, first = self.game, self.game.cells + NUM_ACTIONS * self.game.combo_length
            remaining = (self.goal_index[:, None] >> np.arange(len(self.goals))) & 1 == 0
            observations[:, first:] = 0.0
            games, goals = np.nonzero(remaining)
            observations[games, first + self.goals[goals, 0] * game.columns + self.goals[goals, 1]] = 1.0
        return observations

    def decision_states(self):
        """Each game's (goal state, combo buffer, cell) as one index below decision_state_count: all
        that the observation shows, so a deterministic policy acts the same wherever the index repeats."""
        game = self.game
        buffer = game.buffer_code(self.games.buffer_lengths, self.games.buffers)
        cell = self.games.agent_cells[:, 0] * game.columns + self.games.agent_cells[:, 1]
        return (self.goal_index * game.buffer_states + buffer) * game.cells + cell

    def subset(self, games):
        """New TaskGames holding copies of the games at these indices."""
        kept = TaskGames(self.task, self.games.agent_cells[games], self.games.goals[games], self.game)
        kept.games, kept.goal_index = self.games.subset(games), self.goal_index[games]
        return kept

    def restart(self, which, starts, goals):
        """Start the games selected by the boolean array `which` again, from these cells."""
        self.games.restart(which, starts)
        self.games.goals[which] = goals
        self.goal_index[which] = 0

    def step(self, actions, active=None):
        """One primitive action per game (only the `active` games, if given).
        Returns (rewards, terminated, truncated) arrays over all games; inactive games get 0 / False."""
        active = np.ones(len(self), dtype=bool) if active is None else active
        _, at_goal, _ = self.games.step(actions, active)
        reached = at_goal & active
        rewards = np.where(reached, GOAL_REWARD, 0.0)
        if self.task == "multi-goal":
            self.goal_index[reached] += 1
            terminated = reached & (self.goal_index == len(self.goals))
            moving_on = reached & ~terminated
            self.games.goals[moving_on] = self.goals[self.goal_index[moving_on]]
        elif self.task == "all-goals":
            bits = 1 << np.arange(len(self.goals))
            on = (self.games.agent_cells[:, None, :] == self.goals[None]).all(-1) & (self.goal_index[:, None] & bits == 0)
            reached = on.any(1) & active
            self.goal_index[reached] |= (on[reached] * bits).sum(1)
            rewards = np.where(reached, GOAL_REWARD, 0.0)
            terminated = reached & (self.goal_index == bits.sum())
        else:
            terminated = reached
        truncated = active & ~terminated & (self.games.steps >= MAX_EPISODE_STEPS)
        return rewards, terminated, truncated


def task_starts(task, n, rng, game):
    """Start and goal cells of n new games of `task` (random ones drawn from rng)."""
    if task in TOUR_TASKS:  # all-goals: the first goal only stands in (the games check them all)
        start, goals = multi_goal_tour(game)
        return np.tile(start, (n, 1)), np.tile(goals[0], (n, 1))
    return random_start_and_goal(rng, n, game)


def shortest_tour(game):
    """The fewest primitive steps that take every goal of the tour from its start, in any order."""
    start, goals = multi_goal_tour(game)
    cells = [tuple(start)] + [tuple(g) for g in goals]
    between = {(a, b): int(game.optimal_length(a, b)[0]) for a in cells for b in cells if a != b}
    return min(sum(between[a, b] for a, b in zip((cells[0], *order), order))
               for order in itertools.permutations(cells[1:]))


def evaluation_episodes(task, game):
    """The episodes a greedy policy is evaluated on: starts, first goals and the fewest primitive
    steps that complete each. Multi-goal: its one episode (42 steps on 5 x 5); random: every pair of
    open cells (600 on 5 x 5)."""
    if task == "multi-goal":
        start, goals = multi_goal_tour(game)
        path = np.vstack([[start], goals])
        return start[None], goals[:1], np.array([game.optimal_length(path[:-1], path[1:]).sum()])
    if task == "all-goals":
        start, goals = multi_goal_tour(game)
        return start[None], goals[:1], np.array([shortest_tour(game)])
    starts, goals = all_start_goal_pairs(game)
    return starts, goals, game.optimal_length(starts, goals)


class TaskVec:
    """PPO's environments for many learners of one task (decomposition.ppo.BatchedPPO's interface, as
    combogrid.ComboGridVec): `num_envs` games per learner, reset when an episode ends, actions
    0, 1, 2 and one per option of `options` (an option set of decomposition.options, or None for primitives only).
    Learner i draws its random starts and goals from its own generator, seeded with seeds[i]."""

    binary_observations = True  # one-hot parts, as ComboGridVec's

    def __init__(self, task, seeds, num_envs, options=None, game=DEFAULT_GAME):
        self.task, self.num_envs, self.options, self.game = task, num_envs, options, game
        self.num_learners = len(seeds)
        self.num_actions = NUM_ACTIONS + (0 if options is None else len(options))
        self.observation_size = game.observation_size
        self.rngs = [np.random.default_rng(seed) for seed in seeds]
        self.games = None  # reset() starts the games

    def _shaped(self, values):
        return values.reshape(self.num_learners, self.num_envs, *values.shape[1:])

    def _starts(self, counts):
        """Start and goal cells for counts[i] new games of learner i."""
        if self.task in TOUR_TASKS:
            return task_starts(self.task, int(sum(counts)), None, self.game)
        pairs = [random_start_and_goal(rng, n, self.game) for rng, n in zip(self.rngs, counts) if n]
        return (np.concatenate([s for s, _ in pairs]), np.concatenate([g for _, g in pairs]))

    def reset(self):
        self.games = TaskGames(self.task, *self._starts([self.num_envs] * self.num_learners), self.game)
        return self._shaped(self.games.observations())

    def step(self, actions):
        """actions (L, E) -> next observations, rewards per primitive step (L, E, K), dones and primitive
        steps taken (L, E)."""
        step_rewards, terminated, truncated, steps = macro_step(self.games, actions.reshape(-1), self.options)
        dones = terminated | truncated
        if dones.any():
            self.games.restart(dones, *self._starts(self._shaped(dones).sum(1)))
        return (self._shaped(self.games.observations()), self._shaped(step_rewards), self._shaped(dones),
                self._shaped(steps))

    def keep(self, learners):
        self.games = self.games.subset(learner_games(learners, self.num_envs))
        self.rngs = [self.rngs[k] for k in learners]
        self.num_learners = len(learners)

    def greedy_evaluation(self, act, learners):
        """Each of these learners' greedy policy (over primitives and options) on evaluation_episodes:
        one dict per learner with the success rate (the goal reached within MAX_EPISODE_STEPS primitive
        steps), the SPL, and the decisions and primitive steps per successful episode (None if none).
        act maps observations (len(learners), n, D) to actions (len(learners), n); nothing random is drawn.

        A deterministic policy that meets the same (goal, combo buffer, cell) twice at a decision is
        in a loop that reaches no goal: such an episode stops there as a failure, as it would end
        after MAX_EPISODE_STEPS."""
        starts, goals, optimal = evaluation_episodes(self.task, self.game)
        count = len(learners)
        games = TaskGames(self.task, np.tile(starts, (count, 1)), np.tile(goals, (count, 1)), self.game)
        return greedy_episodes(games, np.tile(optimal, count), count, act, self.options,
                               decision_state_count(self.task, self.game))


class TaskGym(gym.Env):
    """A downstream ComboGrid task as a gymnasium environment (see the module docstring), on
    `game` (a Game or a name of combogrid.GAMES, default "5x5").

    Actions: `Discrete(3)`, the actions 0, 1 and 2, which fill the combo buffer as in the base
    game. Observations: `Box(0, 1, (game.observation_size,), float32)` (59 on 5 x 5): agent one-hot,
    combo buffer one-hot, current goal one-hot. Rewards: +10 on reaching a goal, 0 otherwise.
    Episode end: terminated on the task's last goal, truncated after 500 steps. `reset(seed=...)`
    reproduces the random task's start and goal, drawn from the environment's own generator;
    `reset(options={"agent": (row, column)})` starts the agent on that open cell instead (the random
    task then draws its goal among the other open cells).
    """

    metadata = {"render_modes": []}
    task = None

    def __init__(self, game=DEFAULT_GAME):
        self.game = game_named(game)
        self.action_space = spaces.Discrete(NUM_ACTIONS)
        self.observation_space = spaces.Box(0.0, 1.0, (self.game.observation_size,), np.float32)
        self.games, self.ended = None, False

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.ended = False
        agent = start_option(options, self.game)
        start, goal = task_starts(self.task, 1, self.np_random, self.game)
        if agent is not None:
            start = np.array([agent])
            if self.task == "random":  # the goal drawn again, among the other cells
                cells = [cell for cell in self.game.open_cells if cell != agent]
                goal = np.array([cells[self.np_random.integers(len(cells))]])
        self.games = TaskGames(self.task, start, goal, self.game)
        return self.games.observations()[0], {}

    def step(self, action):
        if self.games is None or self.ended:
            raise gym.error.ResetNeeded("call reset() before step()" if self.games is None else
                                        "the episode has ended: call reset() before step()")
        rewards, terminated, truncated = self.games.step(np.array([checked_action(action)]))
        self.ended = bool(terminated[0] or truncated[0])
        return self.games.observations()[0], float(rewards[0]), bool(terminated[0]), bool(truncated[0]), {}


class MultiGoalGym(TaskGym):
    task = "multi-goal"


class RandomGoalGym(TaskGym):
    task = "random"


class AllGoalsGym(TaskGym):
    task = "all-goals"
