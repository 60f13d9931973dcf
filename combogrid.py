"""ComboGrid: a grid world where every move is a combo of several actions.

A game is described once, by `Game`: its grid, its combos (name, actions; the name says the move),
its walls and its training problems. Everything else is computed from that description: each
problem's optimal length, needed combos and test states by search (decomposition.combo_planning),
the numbering of its observations (decomposition.combo_codec). `GAMES` holds the named variants;
`game_named` turns a name (as every script's --game takes it) into one.

The rules live in one place, `ComboGridBatch` (decomposition.combo_rules), which steps many games
at once with numpy. `ComboGym` is the gymnasium environment for a single game; it is a batch of
one, so the two can never disagree. `ComboGridVec` gives PPO's learners their environments.
"""

import dataclasses
import functools
import itertools
from dataclasses import dataclass
from typing import Union

import numpy as np
import gymnasium as gym
from gymnasium import spaces

from decomposition.combo_codec import ObservationCodec
from decomposition.combo_planning import Planning
from decomposition.combo_rules import ComboGridBatch
from decomposition.environment import NUM_ACTIONS, learner_games, register_game

MOVES = {"Up": (-1, 0), "Down": (1, 0), "Left": (0, -1), "Right": (0, 1)}  # a combo's name is its move
THREE_ACTION_COMBOS = (("Up", (0, 0, 1)), ("Down", (0, 1, 2)), ("Left", (2, 1, 0)), ("Right", (1, 0, 2)))
FOUR_ACTION_COMBOS = (("Up", (0, 2, 2, 1)), ("Down", (0, 0, 1, 1)), ("Left", (1, 2, 1, 0)), ("Right", (1, 0, 2, 2)))
CORNER_PROBLEMS = ("TL-BR", "TR-BL", "BR-TL", "BL-TR")
WALL_PATTERNS = ("hallways", "block")


class GameError(ValueError):
    """A game description that cannot be played; the message says why."""


def pattern_walls(pattern, rows, columns):
    """The wall cells of a named pattern: "hallways" leaves only the middle row and column open,
    "block" walls the whole interior (only the border ring is open)."""
    if pattern == "hallways":
        return tuple((r, c) for r in range(rows) for c in range(columns) if r != rows // 2 and c != columns // 2)
    if pattern == "block":
        return tuple((r, c) for r in range(1, rows - 1) for c in range(1, columns - 1))
    raise GameError(f"unknown wall pattern {pattern!r}: expected {', '.join(WALL_PATTERNS)} or a tuple of cells")


def is_integer(x):
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


@dataclass(frozen=True)
class Game(Planning, ObservationCodec):
    """One ComboGrid game, described by what is chosen; what follows from it is computed.

    Cells in problems are named by a row letter (T top, M middle, B bottom) and a column letter
    (L left, M middle, R right): "TL-BR" starts at the top-left corner with its goal at the
    bottom-right one; M is row rows // 2 or column columns // 2.
    """

    name: str = "5x5"
    """what scripts (--game) and records call it"""
    rows: int = 5
    columns: int = 5
    combos: tuple = THREE_ACTION_COMBOS
    """(name, actions) per combo, all of one length; the name is the move (Up, Down, Left, Right)"""
    walls: Union[str, tuple] = ()
    """a pattern of WALL_PATTERNS or a tuple of (row, column) cells the agent cannot enter"""
    problems: tuple = CORNER_PROBLEMS
    """the training problems, START-GOAL, in their canonical order (seeds, tables, model lists)"""
    multi_goal: tuple = ("MM", "TM", "MR", "BM", "ML")
    """the downstream multi-goal task: its start, then its goals in the order they must be reached"""

    def __post_init__(self):
        fault = self._normalised() or self._fault()
        if fault:
            raise GameError(f"game {self.name}: {fault}")

    def _normalised(self):
        """Sequences given as lists or tuples alike, stored as tuples (the description is hashable);
        the first argument of the wrong kind, as a message, or None."""
        if not isinstance(self.name, str):
            return f"name must be a string, got {self.name!r}"
        sequence = (list, tuple)
        if not (isinstance(self.combos, sequence) and all(isinstance(c, sequence) and len(c) == 2
                                                          and isinstance(c[1], sequence) for c in self.combos)):
            return f"combos must be a sequence of (name, actions) pairs, got {self.combos!r}"
        if not (isinstance(self.walls, str) or isinstance(self.walls, sequence)
                and all(isinstance(w, sequence) for w in self.walls)):
            return f"walls must be a pattern name or a sequence of (row, column) cells, got {self.walls!r}"
        for field in ("problems", "multi_goal"):
            value = getattr(self, field)
            if not (isinstance(value, sequence) and all(isinstance(x, str) for x in value)):
                return f"{field} must be a sequence of strings, got {value!r}"
        object.__setattr__(self, "combos", tuple((name, tuple(actions)) for name, actions in self.combos))
        if not isinstance(self.walls, str):
            object.__setattr__(self, "walls", tuple(tuple(w) for w in self.walls))
        object.__setattr__(self, "problems", tuple(self.problems))
        object.__setattr__(self, "multi_goal", tuple(self.multi_goal))
        return None

    def _fault(self):
        """The first thing that makes the description unplayable, as a message, or None."""
        if not (is_integer(self.rows) and is_integer(self.columns) and 2 <= self.rows <= 100
                and 2 <= self.columns <= 100):
            return f"rows and columns must be integers from 2 to 100, got {self.rows!r} and {self.columns!r}"
        fault = self._combo_fault()
        if fault:
            return fault
        if isinstance(self.walls, str):
            pattern_walls(self.walls, self.rows, self.columns)
        elif not all(isinstance(w, tuple) and len(w) == 2 and all(map(is_integer, w)) and 0 <= w[0] < self.rows
                     and 0 <= w[1] < self.columns for w in self.walls):
            return f"walls must be (row, column) cells inside the {self.rows}x{self.columns} grid"
        if not self.problems or len(set(self.problems)) != len(self.problems):
            return "problems must name each problem once, and at least one"
        for problem in self.problems:
            cells = [self.cell(code) for code in str(problem).split("-")]
            if len(cells) != 2 or cells[0] == cells[1]:
                return f"problem {problem!r} must be START-GOAL with two different cells (such as TL-BR)"
            unreachable = self._path_fault(cells, f"problem {problem}")
            if unreachable:
                return unreachable
        tour = [self.cell(code) for code in self.multi_goal]
        if len(tour) < 2 or any(a == b for a, b in zip(tour, tour[1:])):
            return f"multi_goal {self.multi_goal} must be a start and goals, each different from the one before"
        return self._path_fault(tour, "the multi-goal task")

    def _combo_fault(self):
        names = [name for name, _ in self.combos]
        if not names or not all(name in MOVES for name in names):
            return f"combos must be named by their moves ({', '.join(MOVES)}), got {names}"
        if len(set(names)) != len(names):
            return f"combo {next(n for n in names if names.count(n) > 1)} is repeated"
        lengths = {name: len(actions) for name, actions in self.combos}
        if len(set(lengths.values())) != 1:
            return "combos must all have the same length, got " + ", ".join(f"{n} {k}" for n, k in lengths.items())
        if not all(is_integer(a) and 0 <= a < NUM_ACTIONS for _, actions in self.combos for a in actions):
            return "a combo's actions must be 0, 1 or 2"
        if not 1 <= len(self.combos[0][1]) <= 8:
            return "combos must have 1 to 8 actions"
        sequences = [tuple(actions) for _, actions in self.combos]
        if len(set(sequences)) != len(sequences):
            twin = next(s for s in sequences if sequences.count(s) > 1)
            return f"combos {' and '.join(n for n, a in self.combos if tuple(a) == twin)} are the same actions {twin}"
        return None

    def _path_fault(self, cells, what):
        for cell in cells:
            if self.is_wall[cell]:
                return f"{what}: cell {cell} is a wall"
        for a, b in zip(cells, cells[1:]):
            if self.distances(b)[a] < 0:
                return f"{what}: {b} cannot be reached from {a}"
        return None

    def cell(self, code):
        """(row, column) of a cell code such as "TL" or "MR"."""
        rows = {"T": 0, "M": self.rows // 2, "B": self.rows - 1}
        columns = {"L": 0, "M": self.columns // 2, "R": self.columns - 1}
        if not (isinstance(code, str) and len(code) == 2 and code[0] in rows and code[1] in columns):
            raise GameError(f"game {self.name}: unknown cell {code!r}: a row letter (T, M, B) and a column letter "
                            "(L, M, R), such as TL")
        return rows[code[0]], columns[code[1]]

    def resized(self, rows, columns):
        """The same game on another grid; a plain game "RxC" keeps that form of name."""
        if (rows, columns) == (self.rows, self.columns):
            return self
        plain = self.name == f"{self.rows}x{self.columns}"
        return dataclasses.replace(self, rows=rows, columns=columns,
                                   name=f"{rows}x{columns}" if plain else f"{self.name}@{rows}x{columns}")

    def problem_env(self, k):
        """Problem k as a gymnasium environment (ComboGym)."""
        return ComboGym(problem=self.problems[k], game=self)

    def describe(self):
        """The description as plain data (what results files record)."""
        return {"name": self.name, "rows": self.rows, "columns": self.columns,
                "combos": {name: list(actions) for name, actions in self.combos},
                "walls": self.walls if isinstance(self.walls, str) else [list(w) for w in self.walls],
                "problems": list(self.problems), "multi_goal": list(self.multi_goal)}

    # What follows from the description.

    @functools.cached_property
    def combo_names(self):
        return tuple(name for name, _ in self.combos)

    @functools.cached_property
    def combo_length(self):
        return len(self.combos[0][1])

    @property
    def action_period(self):
        """Actions take effect a combo at a time (environment.Game)."""
        return self.combo_length

    @functools.cached_property
    def combo_actions(self):
        """(C, L): each combo's actions."""
        return np.array([actions for _, actions in self.combos], dtype=np.int64)

    @functools.cached_property
    def combo_deltas(self):
        """(C, 2): each combo's move (row, column)."""
        return np.array([MOVES[name] for name in self.combo_names], dtype=np.int64)

    @functools.cached_property
    def cells(self):
        return self.rows * self.columns

    @functools.cached_property
    def is_wall(self):
        """(rows, columns) boolean."""
        walls = pattern_walls(self.walls, self.rows, self.columns) if isinstance(self.walls, str) else self.walls
        grid = np.zeros((self.rows, self.columns), dtype=bool)
        grid[tuple(np.array(walls, dtype=np.int64).reshape(-1, 2).T)] = True
        return grid

    @functools.cached_property
    def open_cells(self):
        """Every cell that is not a wall, row-major."""
        return [(r, c) for r in range(self.rows) for c in range(self.columns) if not self.is_wall[r, c]]

    def problem_cells(self, problem):
        """(start, goal) cells of one of the game's problems."""
        if problem not in self.problems:
            raise ValueError(f"unknown problem {problem!r}: game {self.name} has {', '.join(self.problems)}")
        start, goal = problem.split("-")
        return self.cell(start), self.cell(goal)


GAMES = {game.name: game for game in (
    Game(),
    Game("6x6", 6, 6),
    Game("10x10", 10, 10),
    Game("5x5-combo4", combos=FOUR_ACTION_COMBOS),
    Game("5x5-hallways", walls="hallways", problems=("ML-TM", "TM-MR", "MR-BM", "BM-ML")),
    Game("5x5-block", walls="block", multi_goal=("TL", "TM", "MR", "BM", "ML")),
    Game("5x5-12problems", problems=CORNER_PROBLEMS + ("ML-BR", "ML-TR", "MR-TL", "MR-BL",
                                                       "TL-MR", "BL-MR", "TR-ML", "BR-ML")),
)}
"""The named variants; another is a Game(...) of a few lines (docs/variants.md)."""
DEFAULT_GAME = GAMES["5x5"]


def game_named(name):
    """The game of a --game value: a name of GAMES, or NAME@RxC for a named game on another grid."""
    if isinstance(name, Game):
        return name
    base, at, size = str(name).partition("@")
    if base not in GAMES:
        raise GameError(f"unknown game {name!r}: expected one of {', '.join(GAMES)} (or NAME@ROWSxCOLUMNS)")
    if not at:
        return GAMES[base]
    rows, _, columns = size.partition("x")
    if not (rows.isascii() and columns.isascii() and rows.isdigit() and columns.isdigit()):
        raise GameError(f"unknown game {name!r}: the size after @ is ROWSxCOLUMNS, such as 6x6")
    return GAMES[base].resized(int(rows), int(columns))


@functools.lru_cache(maxsize=None)
def sized_game(name, rows=None, columns=None):
    """The game of a --game value, resized where rows or columns (the older --rows, --columns,
    --game-width options) are given."""
    game = game_named(name)
    return game.resized(rows or game.rows, columns or game.columns)


def game_from_record(record):
    """The Game of a describe() dict read back from a results file; GameError if it is not one."""
    try:
        walls = record["walls"]
        return Game(name=str(record["name"]), rows=record["rows"], columns=record["columns"],
                    combos=tuple((str(n), tuple(a)) for n, a in record["combos"].items()),
                    walls=walls if isinstance(walls, str) else tuple(tuple(w) for w in walls),
                    problems=tuple(record["problems"]), multi_goal=tuple(record["multi_goal"]))
    except (KeyError, TypeError, AttributeError) as error:
        raise GameError(f"not a game description ({type(error).__name__}: {error})") from None


register_game("combos", game_from_record)


def default_models_folder(game):
    """Where train_ppo.py writes a game's networks by default, and where the other scripts look:
    the shipped models/ for the default game, runs/models-NAME for the others."""
    return "models" if game == DEFAULT_GAME else f"runs/models-{game.name}"


# The default game's combos and problems, as the assignment names them.
COMBO_NAMES = DEFAULT_GAME.combo_names
COMBOS = dict(DEFAULT_GAME.combos)
COMBO_DELTAS = DEFAULT_GAME.combo_deltas
COMBO_LENGTH = DEFAULT_GAME.combo_length
PROBLEMS = DEFAULT_GAME.problems
NEEDED_COMBOS = {problem: DEFAULT_GAME.needed_combos(problem) for problem in PROBLEMS}


def checked_action(action):
    """action as an int, if it is one of the actions 0, 1, 2 (a Python or numpy integer); else ValueError."""
    if not (is_integer(action) and 0 <= action < NUM_ACTIONS):
        raise ValueError(f"invalid action {action!r}: expected 0, 1 or 2")
    return int(action)


def start_option(options, game):
    """The agent cell that reset's options ask for ({"agent": (row, column)}), or None; anything else
    in options is a ValueError."""
    options = {} if options is None else options
    if not isinstance(options, dict) or set(options) - {"agent"}:
        raise ValueError(f"reset options {options!r}: the only option is {{'agent': (row, column)}}")
    if "agent" not in options:
        return None
    agent = options["agent"]
    if not (isinstance(agent, (tuple, list, np.ndarray)) and np.ndim(agent) == 1 and len(agent) == 2
            and all(map(is_integer, agent)) and 0 <= agent[0] < game.rows and 0 <= agent[1] < game.columns):
        raise ValueError(f"agent cell {agent!r} is not two integers (row, column) inside the "
                         f"{game.rows}x{game.columns} grid")
    if game.is_wall[tuple(agent)]:
        raise ValueError(f"agent cell {tuple(agent)} is a wall of game {game.name}")
    return tuple(int(x) for x in agent)


class ComboGridVec:
    """PPO's environments for many learners at once: `num_envs` games of each learner's problem,
    reset automatically when an episode ends. Arrays are (learners, num_envs, ...).

    This is the interface decomposition.ppo.BatchedPPO trains on; any ComboGrid task offers the same:
    reset(), step(actions), keep(learners) and greedy_solved(act).
    """

    num_actions = NUM_ACTIONS
    binary_observations = True  # one-hot parts: PPO runs its networks once per distinct observation

    def __init__(self, problems, num_envs, game=DEFAULT_GAME):
        cells = [game.problem_cells(problem) for problem in problems]
        self.starts = np.repeat([start for start, _ in cells], num_envs, axis=0)   # one row per game
        goals = np.repeat([goal for _, goal in cells], num_envs, axis=0)
        self.num_learners, self.num_envs = len(problems), num_envs
        self.observation_size = game.observation_size
        self.optimal_lengths = game.optimal_length([start for start, _ in cells], [goal for _, goal in cells])
        self.games = ComboGridBatch(self.starts, goals, game)

    def _shaped(self, values):
        return values.reshape(self.num_learners, self.num_envs, *values.shape[1:])

    def reset(self):
        self.games.restart(np.ones(len(self.starts), dtype=bool), self.starts)
        return self._shaped(self.games.observations())

    def step(self, actions):
        """actions (L, E) -> next observations, rewards per primitive step (L, E, 1), dones and the
        primitive steps taken (all 1)."""
        rewards, terminated, truncated = self.games.step(actions.reshape(-1))
        dones = terminated | truncated
        self.games.restart(dones, self.starts[dones])
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
        """Whether each learner's greedy policy solves its problem optimally (the fewest actions,
        Game.optimal_length). act maps observations (L, n, D) to actions (L, n)."""
        starts = self.starts[::self.num_envs]
        games = ComboGridBatch(starts, self.games.goals[::self.num_envs], self.games.game)
        reached_at = np.zeros(self.num_learners, dtype=np.int64)  # 0: not (yet) reached
        for step in range(1, self.optimal_lengths.max() + 1):
            actions = np.asarray(act(games.observations()[:, None, :]))[:, 0]
            _, terminated, _ = games.step(actions)
            reached_at = np.where((reached_at == 0) & terminated, step, reached_at)
        return reached_at == self.optimal_lengths


class ComboGym(gym.Env):
    """ComboGrid as a gymnasium environment: one problem of one Game.

    The agent must reach the goal cell of a `rows x columns` grid, but it cannot move directly:
    its actions fill a combo buffer of the game's combo length L, and every L-th action the buffer
    is read and cleared. In the default game (L = 3), (0, 0, 1) moves up, (0, 1, 2) down,
    (2, 1, 0) left, (1, 0, 2) right; any other triple, a move off the grid or into a wall leaves
    the agent where it is.

    Actions: `Discrete(3)`, the actions 0, 1 and 2.

    Observations: `Box(0, 1, (2 * rows * columns + 3 * L,), float32)`, the concatenation of the
    agent's cell one-hot (row-major), the combo buffer as a 3 x L one-hot with entry
    `[action][position]` (all zero when empty) and the goal's cell one-hot. Walls are fixed by the
    game and not observed.

    Rewards: -1 per step, 0 on the step that reaches the goal.

    Episode end: terminated when the agent stands on the goal; truncated after 500 steps.

    `game` is a Game or a name of GAMES (default "5x5"); `rows` and `columns` resize the game.
    `problem` is one of the game's problems (default its first); `reset(options={"agent": (row,
    column)})` starts the agent on any open cell instead.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, rows=None, columns=None, problem=None, render_mode=None, game=DEFAULT_GAME):
        if not all(n is None or (is_integer(n) and 2 <= n <= 1000) for n in (rows, columns)):
            raise ValueError(f"rows and columns must be integers from 2 to 1000, got {rows!r} and {columns!r}")
        game = game_named(game)
        self.game_description = game = game.resized(rows or game.rows, columns or game.columns)
        problem = game.problems[0] if problem is None else problem
        self.start, self.goal = game.problem_cells(problem)
        self.rows, self.columns, self.problem = game.rows, game.columns, problem
        self.render_mode = render_mode
        self.action_space = spaces.Discrete(NUM_ACTIONS)
        self.observation_space = spaces.Box(0.0, 1.0, (game.observation_size,), np.float32)
        self.game = ComboGridBatch([self.start], [self.goal], game)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        agent = start_option(options, self.game_description)
        self.game = ComboGridBatch([self.start if agent is None else agent], [self.goal], self.game_description)
        return self.observation(), {}

    def step(self, action):
        rewards, terminated, truncated = self.game.step(np.array([checked_action(action)]))
        return self.observation(), float(rewards[0]), bool(terminated[0]), bool(truncated[0]), {}

    def observation(self):
        """The current observation, without stepping."""
        return self.game.observations()[0]

    def observations_to_check(self, cells=100):
        """Observations a loaded network is checked on (ppo_agent.load_agent): the agent on up to
        `cells` open cells (all of a 10 x 10 grid), this problem's goal, and each content of the
        combo buffer."""
        game = self.game_description
        grid = game.open_cells
        agent_cells = [grid[int(k)] for k in np.unique(np.linspace(0, len(grid) - 1, min(len(grid), cells)).round())]
        prefixes = [p for length in range(game.combo_length)
                    for p in itertools.product(range(NUM_ACTIONS), repeat=length)]
        games = ComboGridBatch(np.repeat(agent_cells, len(prefixes), axis=0), [self.goal] * (len(agent_cells) * len(prefixes)),
                               game)
        for position in range(game.combo_length - 1):  # each game's buffer filled with its prefix
            actions = np.array([p[position] if len(p) > position else 0 for p in prefixes] * len(agent_cells))
            games.step(actions, active=np.array([len(p) > position for p in prefixes] * len(agent_cells)))
        return games.observations()

    def render(self):
        if self.render_mode != "ansi":
            return None
        agent, goal = tuple(self.game.agent_cells[0]), tuple(self.game.goals[0])
        walls = self.game_description.is_wall
        lines = []
        for row in range(self.rows):
            cells = ["A" if (row, col) == agent else "G" if (row, col) == goal else "#" if walls[row, col] else "."
                     for col in range(self.columns)]
            lines.append(" ".join(cells))
        buffer = self.game.buffers[0, :self.game.buffer_lengths[0]]
        lines.append("combo: " + " ".join(str(a) for a in buffer))
        return "\n".join(lines) + "\n"


gym.register("ComboGrid-v0", entry_point="combogrid:ComboGym")
gym.register("ComboGrid-MultiGoal-v0", entry_point="decomposition.tasks:MultiGoalGym")  # the downstream tasks
gym.register("ComboGrid-Random-v0", entry_point="decomposition.tasks:RandomGoalGym")
gym.register("ComboGrid-AllGoals-v0", entry_point="decomposition.tasks:AllGoalsGym")
