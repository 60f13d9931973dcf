"""ComboGrid: a grid world where every move is a combo of three actions.

The rules live in one place, `ComboGridBatch`, which steps many games at once with numpy
(PPO's rollouts and the mask evaluation use it directly). `ComboGym` is the gymnasium
environment for a single game; it is a batch of one, so the two can never disagree.
"""

import numpy as np
import gymnasium as gym
from gymnasium import spaces

# The four combos: the three actions, in order, that move the agent one cell.
COMBO_NAMES = ("Up", "Down", "Left", "Right")
COMBOS = {"Up": (0, 0, 1), "Down": (0, 1, 2), "Left": (2, 1, 0), "Right": (1, 0, 2)}
COMBO_DELTAS = np.array([[-1, 0], [1, 0], [0, -1], [0, 1]])  # each combo's move (row, column), as COMBO_NAMES
NUM_ACTIONS = 3
COMBO_LENGTH = 3
MAX_EPISODE_STEPS = 500

# A full buffer (a, b, c) is read as the number 9a + 3b + c, an index into COMBO_OF_TRIPLE:
# the combo (index into COMBO_NAMES) each of the 27 triples is, -1 for none.
TRIPLE_WEIGHTS = NUM_ACTIONS ** np.arange(COMBO_LENGTH - 1, -1, -1)
COMBO_OF_TRIPLE = np.full(NUM_ACTIONS**COMBO_LENGTH, -1)
COMBO_OF_TRIPLE[[np.dot(COMBOS[name], TRIPLE_WEIGHTS) for name in COMBO_NAMES]] = np.arange(len(COMBO_NAMES))

# Problems are named START-GOAL by corner; this is their canonical order everywhere.
PROBLEMS = ("TL-BR", "TR-BL", "BR-TL", "BL-TR")
# The combos each problem's optimal solution needs.
NEEDED_COMBOS = {"TL-BR": ("Down", "Right"), "TR-BL": ("Down", "Left"),
                "BR-TL": ("Up", "Left"), "BL-TR": ("Up", "Right")}


def corner(name, rows, columns):
    """The (row, column) of corner TL, TR, BR or BL."""
    return {"TL": (0, 0), "TR": (0, columns - 1),
            "BR": (rows - 1, columns - 1), "BL": (rows - 1, 0)}[name]


def problem_cells(problem, rows=5, columns=5):
    """(start, goal) cells of a problem such as "TL-BR"."""
    if problem not in PROBLEMS:
        raise ValueError(f"unknown problem {problem!r}: expected one of {', '.join(PROBLEMS)}")
    start, goal = problem.split("-")
    return corner(start, rows, columns), corner(goal, rows, columns)


def non_goal_cells(problem, rows=5, columns=5):
    """Every cell of a problem's grid but its goal, row-major: where its test states start."""
    _, goal = problem_cells(problem, rows, columns)
    return [(r, c) for r in range(rows) for c in range(columns) if (r, c) != goal]


def test_states(rows, columns):
    """Agent and goal cells of every test state: each non-goal cell of each problem, problem by problem."""
    agents, goals = [], []
    for problem in PROBLEMS:
        _, goal = problem_cells(problem, rows, columns)
        cells = non_goal_cells(problem, rows, columns)
        agents += cells
        goals += [goal] * len(cells)
    return np.array(agents), np.array(goals)


def optimal_actions(starts, goals):
    """Actions of an optimal path between cells (arrays (..., 2)): one combo per cell of distance."""
    return COMBO_LENGTH * np.abs(np.asarray(starts) - np.asarray(goals)).sum(-1)


def learner_games(learners, num_envs):
    """Indices of the games of these learners in a batch laid out learner by learner."""
    return (np.asarray(learners)[:, None] * num_envs + np.arange(num_envs)).reshape(-1)


def observation_size(rows, columns):
    return 2 * rows * columns + NUM_ACTIONS * COMBO_LENGTH


def checked_action(action):
    """action as an int, if it is one of the actions 0, 1, 2 (a Python or numpy integer); else ValueError."""
    if not (isinstance(action, (int, np.integer)) and not isinstance(action, bool) and 0 <= action < NUM_ACTIONS):
        raise ValueError(f"invalid action {action!r}: expected 0, 1 or 2")
    return int(action)


def start_option(options, rows, columns):
    """The agent cell that reset's options ask for ({"agent": (row, column)}), or None; anything else
    in options is a ValueError."""
    options = {} if options is None else options
    if not isinstance(options, dict) or set(options) - {"agent"}:
        raise ValueError(f"reset options {options!r}: the only option is {{'agent': (row, column)}}")
    if "agent" not in options:
        return None
    agent = options["agent"]
    if not (isinstance(agent, (tuple, list, np.ndarray)) and np.ndim(agent) == 1 and len(agent) == 2
            and all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in agent)
            and 0 <= agent[0] < rows and 0 <= agent[1] < columns):
        raise ValueError(f"agent cell {agent!r} is not two integers (row, column) inside the {rows}x{columns} grid")
    return tuple(int(x) for x in agent)


class ComboGridBatch:
    """`n` ComboGrid games stepped together; arrays hold one row per game.

    The state of a game is the agent's cell, the goal's cell, the actions in the combo buffer
    and the number of steps taken. `step` does not reset finished games: callers decide
    (PPO's vectorised environment resets them, the evaluation stops using them).
    """

    def __init__(self, agents, goals, rows=5, columns=5):
        self.rows, self.columns = rows, columns
        self.agents = np.array(agents, dtype=np.int64).reshape(-1, 2)
        self.goals = np.array(goals, dtype=np.int64).reshape(-1, 2)
        n = len(self.agents)
        self.buffers = np.zeros((n, COMBO_LENGTH), dtype=np.int64)
        self.buffer_lengths = np.zeros(n, dtype=np.int64)
        self.steps = np.zeros(n, dtype=np.int64)

    def reset_games(self, which, agents):
        """Restart the games selected by the boolean array `which`, agents on `agents`."""
        self.agents[which] = agents
        self.buffer_lengths[which] = 0
        self.steps[which] = 0

    def subset(self, games):
        """A new batch holding copies of the games at these indices."""
        batch = ComboGridBatch(self.agents[games], self.goals[games], self.rows, self.columns)
        batch.buffers, batch.buffer_lengths = self.buffers[games], self.buffer_lengths[games]
        batch.steps = self.steps[games]
        return batch

    def at_goal(self):
        return np.all(self.agents == self.goals, axis=1)

    def observations(self):
        """Agent one-hot, combo buffer one-hot [action][position], goal one-hot (docs/game.md)."""
        n, cells = len(self.agents), self.rows * self.columns
        obs = np.zeros((n, observation_size(self.rows, self.columns)), dtype=np.float32)
        games = np.arange(n)
        obs[games, self.agents[:, 0] * self.columns + self.agents[:, 1]] = 1.0
        for position in range(COMBO_LENGTH):
            filled = self.buffer_lengths > position
            actions = self.buffers[filled, position]
            obs[games[filled], cells + actions * COMBO_LENGTH + position] = 1.0
        obs[games, cells + NUM_ACTIONS * COMBO_LENGTH + self.goals[:, 0] * self.columns + self.goals[:, 1]] = 1.0
        return obs

    def step(self, actions, active=None):
        """Apply one action per game; returns (rewards, terminated, truncated) arrays.

        With a boolean array `active`, only those games take their action (an option runs for
        three steps while a primitive action takes one); the others stay as they are.
        """
        games = np.arange(len(self.agents)) if active is None else np.flatnonzero(active)
        self.buffers[games, self.buffer_lengths[games]] = actions[games]
        self.buffer_lengths[games] += 1
        self.steps[games] += 1
        full = self.buffer_lengths == COMBO_LENGTH
        combos = np.where(full, COMBO_OF_TRIPLE[self.buffers @ TRIPLE_WEIGHTS], -1)
        moving = combos >= 0
        targets = self.agents[moving] + COMBO_DELTAS[combos[moving]]
        inside = ((targets >= 0) & (targets < (self.rows, self.columns))).all(axis=1)
        self.agents[np.flatnonzero(moving)[inside]] = targets[inside]
        self.buffer_lengths[full] = 0
        terminated = self.at_goal()
        truncated = ~terminated & (self.steps >= MAX_EPISODE_STEPS)
        rewards = np.where(terminated, 0.0, -1.0)
        return rewards, terminated, truncated


class ComboGridVec:
    """PPO's environments for many learners at once: `num_envs` games of each learner's problem,
    reset automatically when an episode ends. Arrays are (learners, num_envs, ...).

    This is the interface decomposition.ppo.BatchedPPO trains on; any ComboGrid task offers the same:
    reset(), step(actions), keep(learners) and greedy_solved(act).
    """

    num_actions = NUM_ACTIONS
    binary_observations = True  # one-hot parts: PPO runs its networks once per distinct observation

    def __init__(self, problems, num_envs, rows=5, columns=5):
        cells = [problem_cells(problem, rows, columns) for problem in problems]
        self.starts = np.repeat([start for start, _ in cells], num_envs, axis=0)   # one row per game
        goals = np.repeat([goal for _, goal in cells], num_envs, axis=0)
        self.num_learners, self.num_envs = len(problems), num_envs
        self.observation_size = observation_size(rows, columns)
        self.optimal_lengths = optimal_actions([start for start, _ in cells], [goal for _, goal in cells])
        self.games = ComboGridBatch(self.starts, goals, rows, columns)

    def _shaped(self, values):
        return values.reshape(self.num_learners, self.num_envs, *values.shape[1:])

    def reset(self):
        self.games.reset_games(np.ones(len(self.starts), dtype=bool), self.starts)
        return self._shaped(self.games.observations())

    def step(self, actions):
        """actions (L, E) -> next observations, rewards per primitive step (L, E, 1), dones and the
        primitive steps taken (all 1)."""
        rewards, terminated, truncated = self.games.step(actions.reshape(-1))
        dones = terminated | truncated
        self.games.reset_games(dones, self.starts[dones])
        return (self._shaped(self.games.observations()), self._shaped(rewards)[..., None], self._shaped(dones),
                np.ones_like(actions))

    def keep(self, learners):
        """Go on with these learners only (indices into the current ones)."""
        games = learner_games(learners, self.num_envs)
        self.games = self.games.subset(games)
        self.starts = self.starts[games]
        self.optimal_lengths = self.optimal_lengths[np.asarray(learners)]
        self.num_learners = len(learners)

    def greedy_solved(self, act):
        """Whether each learner's greedy policy solves its problem optimally (one combo per cell of
        distance). act maps observations (L, n, D) to actions (L, n)."""
        starts = self.starts[::self.num_envs]
        games = ComboGridBatch(starts, self.games.goals[::self.num_envs], self.games.rows, self.games.columns)
        reached_at = np.zeros(self.num_learners, dtype=np.int64)  # 0: not (yet) reached
        for step in range(1, self.optimal_lengths.max() + 1):
            actions = np.asarray(act(games.observations()[:, None, :]))[:, 0]
            _, terminated, _ = games.step(actions)
            reached_at = np.where((reached_at == 0) & terminated, step, reached_at)
        return reached_at == self.optimal_lengths


class ComboGym(gym.Env):
    """ComboGrid as a gymnasium environment.

    The agent must reach the goal cell of a `rows x columns` grid, but it cannot move directly:
    its actions fill a three-slot combo buffer, and every third action the buffer is read and
    cleared. (0, 0, 1) moves up, (0, 1, 2) down, (2, 1, 0) left, (1, 0, 2) right; any other
    triple, or a move off the grid, leaves the agent where it is.

    Actions: `Discrete(3)`, the actions 0, 1 and 2.

    Observations: `Box(0, 1, (2 * rows * columns + 9,), float32)`, the concatenation of the
    agent's cell one-hot (row-major), the combo buffer as a 3 x 3 one-hot with entry
    `[action][position]` (all zero when empty) and the goal's cell one-hot.

    Rewards: -1 per step, 0 on the step that reaches the goal.

    Episode end: terminated when the agent stands on the goal; truncated after 500 steps.

    Problems: "TL-BR", "TR-BL", "BR-TL", "BL-TR" name the start and goal corners.
    `reset(options={"agent": (row, column)})` starts the agent on any cell instead.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, rows=5, columns=5, problem="TL-BR", render_mode=None):
        if not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and 2 <= n <= 1000
                   for n in (rows, columns)):
            raise ValueError(f"rows and columns must be integers from 2 to 1000, got {rows!r} and {columns!r}")
        self.start, self.goal = problem_cells(problem, rows, columns)
        self.rows, self.columns, self.problem = rows, columns, problem
        self.render_mode = render_mode
        self.action_space = spaces.Discrete(NUM_ACTIONS)
        self.observation_space = spaces.Box(0.0, 1.0, (observation_size(rows, columns),), np.float32)
        self.game = ComboGridBatch([self.start], [self.goal], rows, columns)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        agent = start_option(options, self.rows, self.columns)
        self.game = ComboGridBatch([self.start if agent is None else agent], [self.goal], self.rows, self.columns)
        return self.observation(), {}

    def step(self, action):
        rewards, terminated, truncated = self.game.step(np.array([checked_action(action)]))
        return self.observation(), float(rewards[0]), bool(terminated[0]), bool(truncated[0]), {}

    def observation(self):
        """The current observation, without stepping."""
        return self.game.observations()[0]

    def render(self):
        if self.render_mode != "ansi":
            return None
        agent, goal = tuple(self.game.agents[0]), tuple(self.game.goals[0])
        lines = []
        for row in range(self.rows):
            cells = ["A" if (row, col) == agent else "G" if (row, col) == goal else "."
                     for col in range(self.columns)]
            lines.append(" ".join(cells))
        buffer = self.game.buffers[0, :self.game.buffer_lengths[0]]
        lines.append("combo: " + " ".join(str(a) for a in buffer))
        return "\n".join(lines) + "\n"


gym.register("ComboGrid-v0", entry_point="combogrid:ComboGym")
gym.register("ComboGrid-MultiGoal-v0", entry_point="decomposition.tasks:MultiGoalGym")  # the downstream tasks
gym.register("ComboGrid-Random-v0", entry_point="decomposition.tasks:RandomGoalGym")
