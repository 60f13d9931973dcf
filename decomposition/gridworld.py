"""MiniGrid navigation tasks (Farama's `minigrid` package) as the kit's networks see and play them.

A layout is one MiniGrid environment id and the seed that fixes its grid, start and goal (the
research code's fixed-seed SimpleCrossing and FourRooms tasks). `MiniGridGym` is that layout as
a gymnasium environment, minigrid itself underneath:

- actions: 0 turn left, 1 turn right, 2 move forward (minigrid's first three; the others do
  nothing on these grids);
- observation (`OneHotView`, on minigrid's ViewSizeWrapper): for each cell of the agent's
  VIEW x VIEW view (minigrid's egocentric image), the one-hot of its object type among OBJECTS;
  a cell the agent cannot see (behind a wall, or off the grid) is all zeros; then the agent's
  direction one-hot (east, south, west, north). 5 x 5 x 3 + 4 = 79 numbers for the default view;
- rewards: -1 per step, 0 on the step that reaches the goal, which terminates; truncated after
  MAX_EPISODE_STEPS steps (the kit's ComboGrid rewards; the downstream task has its own).

On these grids a game's whole state is the agent's cell and direction, so each layout is read
once into tables (`Layout`: every state's observation and its successor under each action, all
taken from minigrid's own step and observation), and `WorldGames` steps many games of several
layouts at once by looking them up: the batched engine's environments. tests/test_gridworld.py
checks them against minigrid step for step on random action sequences.
"""

import functools
import importlib
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from decomposition.environment import NUM_ACTIONS, learner_games, register_game
from decomposition.episodes import greedy_episodes, macro_step

OBJECTS = ("empty", "wall", "goal")
"""The object types an observation shows; a layout with any other object is refused."""
DIRECTIONS = ("east", "south", "west", "north")
MAX_EPISODE_STEPS = 500
TERMINAL = -1
"""The successor of a move onto the goal."""


class LayoutError(ValueError):
    """A MiniGrid environment the kit cannot play; the message says why."""


def minigrid_env(env_id):
    """gym.make(env_id) for a registered MiniGrid environment, or a LayoutError."""
    importlib.import_module("minigrid")  # registers the MiniGrid-* ids
    if not env_id.startswith("MiniGrid-"):
        raise LayoutError(f"unknown MiniGrid environment {env_id!r} (ids start with 'MiniGrid-')")
    try:
        return gym.make(env_id)
    except gym.error.Error as error:
        raise LayoutError(f"unknown MiniGrid environment {env_id!r} ({error})") from None


class OneHotView(gym.ObservationWrapper):
    """minigrid's egocentric view as the kit's flat 0/1 observation (the module's docstring)."""

    def __init__(self, env, view):
        from minigrid.core.constants import OBJECT_TO_IDX
        from minigrid.wrappers import ViewSizeWrapper
        super().__init__(ViewSizeWrapper(env, agent_view_size=view))
        self.codes = np.array([OBJECT_TO_IDX[name] for name in OBJECTS])
        size = view * view * len(OBJECTS) + len(DIRECTIONS)
        self.observation_space = spaces.Box(0.0, 1.0, (size,), dtype=np.float32)

    def observation(self, observation):
        types = observation["image"][:, :, 0]
        view = (types[..., None] == self.codes).astype(np.float32).reshape(-1)
        return np.concatenate([view, np.eye(len(DIRECTIONS), dtype=np.float32)[observation["direction"]]])

    def current(self):
        """The observation of minigrid's current state."""
        return self.observation(self.env.observation(self.unwrapped.gen_obs()))


class MiniGridGym(gym.Env):
    """One layout of a MiniGrid environment: `env_id` always reset with `seed`, observations and
    rewards as the module's docstring says."""

    metadata = {"render_modes": []}

    def __init__(self, env_id, seed, view=5):
        if not isinstance(env_id, str):
            raise LayoutError(f"env_id must be a MiniGrid environment id (a string), got {env_id!r}")
        if not (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and 0 <= seed < 2**63):
            raise LayoutError(f"seed must be an integer from 0 to 2**63 - 1, got {seed!r}")
        if not (isinstance(view, (int, np.integer)) and not isinstance(view, bool) and 3 <= view <= 99 and view % 2):
            raise LayoutError(f"view must be an odd integer from 3 to 99 (minigrid's view sizes), got {view!r}")
        self.seed_, self.minigrid = int(seed), minigrid_env(env_id).unwrapped
        self.layout_id = env_id, view
        self.minigrid.max_steps = MAX_EPISODE_STEPS
        self.view = OneHotView(self.minigrid, view)
        self.observation_space = self.view.observation_space
        self.action_space = spaces.Discrete(NUM_ACTIONS)

    def reset(self, *, seed=None, options=None):
        observation, info = self.view.reset(seed=self.seed_)
        return observation, info

    def step(self, action):
        if not (isinstance(action, (int, np.integer)) and 0 <= action < NUM_ACTIONS):
            raise ValueError(f"action must be 0, 1 or 2, not {action!r}")
        observation, _, terminated, truncated, info = self.view.step(int(action))
        return observation, 0.0 if terminated else -1.0, terminated, truncated, info

    def observation(self):
        """The observation of the current state (what a rollout from here starts from)."""
        return self.view.current()

    def observations_to_check(self):
        """Observations a loaded network is checked on (ppo_agent.load_agent): every state's."""
        return self.game_description.every_observation()

    @property
    def game_description(self):
        """The layout as a one-layout World (what ppo_agent.load_agent checks a checkpoint against)."""
        return World([layout(self.layout_id[0], self.seed_, self.layout_id[1])])

    def state(self):
        """(x, y, direction) of the agent."""
        x, y = self.minigrid.agent_pos
        return int(x), int(y), int(self.minigrid.agent_dir)


@dataclass(frozen=True)
class Layout:
    """The tables of one layout: states are (x, y, direction) of the agent on a cell it can stand
    on, goal excepted; observations (S, D); successor (S, 3) under each action (TERMINAL onto the
    goal); the start state; the fewest steps from the start to the goal; the grid's object codes."""
    env_id: str
    seed: int
    view: int
    states: tuple
    observations: np.ndarray
    successor: np.ndarray
    start: int
    optimal: int
    grid: np.ndarray           # (height, width) minigrid object codes

    @property
    def name(self):
        return f"{self.env_id.removeprefix('MiniGrid-')}:{self.seed}"

    def cells_of(self, name):
        """(height, width) whether each cell holds the object `name` (one of OBJECTS)."""
        from minigrid.core.constants import OBJECT_TO_IDX
        return self.grid == OBJECT_TO_IDX[name]

    @property
    def goal(self):
        """(x, y) of the goal."""
        y, x = np.argwhere(self.cells_of("goal"))[0]
        return int(x), int(y)

    def describe(self):
        return {"env_id": self.env_id, "seed": self.seed, "view": self.view}


@functools.lru_cache(maxsize=64)
def layout(env_id, seed, view=5):
    """The Layout of `env_id` reset with `seed`, read from minigrid: each state's observation and
    each action's outcome are minigrid's own (gen_obs, step)."""
    env = MiniGridGym(env_id, seed, view)
    env.reset()
    base = env.minigrid
    grid = base.grid.encode()[:, :, 0].T.copy()
    codes = env.view.codes
    unknown = set(np.unique(grid)) - set(codes.tolist())
    if unknown:
        raise LayoutError(f"{env_id} has objects other than {', '.join(OBJECTS)}: the kit plays navigation grids only")
    start = (int(base.agent_pos[0]), int(base.agent_pos[1]), int(base.agent_dir))
    empty = codes[OBJECTS.index("empty")]
    states = tuple((int(x), int(y), d) for y, x in zip(*np.nonzero(grid == empty)) for d in range(len(DIRECTIONS)))
    index = {state: i for i, state in enumerate(states)}
    observations = np.zeros((len(states), env.observation_space.shape[0]), dtype=np.float32)
    successor = np.zeros((len(states), NUM_ACTIONS), dtype=np.int64)
    for i, (x, y, d) in enumerate(states):
        put(base, x, y, d)
        observations[i] = env.view.current()
        for action in range(NUM_ACTIONS):
            put(base, x, y, d)
            _, _, terminated, _, _ = base.step(action)
            successor[i, action] = TERMINAL if terminated else index[env.state()]
    return Layout(env_id, seed, view, states, observations, successor, index[start],
                  fewest_steps(successor, index[start]), grid)


def put(base, x, y, direction):
    base.agent_pos, base.agent_dir, base.step_count = np.array([x, y]), direction, 0


def fewest_steps(successor, start):
    """Breadth-first search from `start` to TERMINAL over the successor table; a LayoutError if unreachable."""
    seen, frontier, steps = {start}, [start], 0
    while frontier:
        steps += 1
        following = successor[frontier].reshape(-1)
        if (following == TERMINAL).any():
            return steps
        frontier = [s for s in set(following.tolist()) - seen]
        seen.update(frontier)
    raise LayoutError("the goal cannot be reached from the start")


def parse_layout(text, view=5):
    """'ENV_ID:SEED' (e.g. MiniGrid-FourRooms-v0:3) as its Layout, or a LayoutError naming the problem."""
    env_id, colon, seed = text.rpartition(":")
    if not colon or not seed.isascii() or not seed.isdigit() or ":" in env_id:
        raise LayoutError(f"layout {text!r} is not ENV_ID:SEED (e.g. MiniGrid-FourRooms-v0:3)")
    return layout(env_id, int(seed), view)


class World:
    """Several layouts' tables stacked into one: global state ids, observations (S, D), successor
    (S, 3) (TERMINAL onto a goal), each layout's start and fewest steps. It is also what the kit's
    discovery calls the game: its `problems` are the layouts' names, one network per layout."""

    action_period = 1

    def __init__(self, layouts):
        self.layouts = tuple(layouts)
        sizes = [len(lay.states) for lay in self.layouts]
        offsets = np.cumsum([0] + sizes)
        self.observations = np.concatenate([lay.observations for lay in self.layouts])
        self.successor = np.concatenate([np.where(lay.successor == TERMINAL, TERMINAL, lay.successor + offset)
                                         for lay, offset in zip(self.layouts, offsets)])
        self.start = np.array([lay.start + offset for lay, offset in zip(self.layouts, offsets)])
        self.optimal = np.array([lay.optimal for lay in self.layouts])
        self.offsets = offsets
        self.problems = tuple(lay.name for lay in self.layouts)
        self.name = " ".join(self.problems)
        self.observation_size = self.observations.shape[1]
        self.keys = observation_hashes(self.observations)
        self.order = np.argsort(self.keys, kind="stable")

    @property
    def num_states(self):
        return len(self.observations)

    def describe(self):
        return {"layouts": [lay.describe() for lay in self.layouts]}

    def problem_env(self, k):
        """Layout k as a MiniGridGym."""
        lay = self.layouts[k]
        return MiniGridGym(lay.env_id, lay.seed, lay.view)

    def solution_lengths(self):
        return self.optimal.tolist()

    def every_observation(self):
        """Every state's observation (some repeat: the view does not tell every state apart)."""
        return self.observations

    def observation_index(self, observations):
        """The row of every_observation() equal to each of these observations (which must be a
        state's observation)."""
        keys = observation_hashes(observations)
        rows = self.order[np.searchsorted(self.keys, keys, sorter=self.order)]
        assert (self.keys[rows] == keys).all(), "an observation of no state"
        return rows

    def games(self, layouts):
        """A WorldGames with one game per entry of `layouts` (indices), each at its start."""
        layouts = np.asarray(layouts, dtype=np.int64)
        return WorldGames(self, self.start[layouts].copy())

    def solution_games(self, solutions):
        """Every state of every solution (actions per layout, one per problem) as one batch of games,
        in order, and for each state its (problem, position)."""
        states, where = [], []
        for p, actions in enumerate(solutions):
            state = self.start[p]
            for j, action in enumerate(actions):
                states.append(state)
                where.append((p, j))
                state = self.successor[state, action]
        return WorldGames(self, np.array(states, dtype=np.int64)), where


def world_from_record(record):
    """The World of a describe() record; a LayoutError where a layout cannot be played."""
    try:
        return World([layout(str(lay["env_id"]), int(lay["seed"]), int(lay["view"])) for lay in record["layouts"]])
    except (KeyError, TypeError, ValueError) as error:
        raise LayoutError(f"not a description of MiniGrid layouts ({type(error).__name__}: {error})") from None


register_game("layouts", world_from_record)


def observation_hashes(observations):
    """A hash per 0/1 observation row that tells distinct rows apart, the same in every call (exact integer
    arithmetic; ppo_kernels.observation_keys numbers the rows of one batch instead)."""
    bits = np.asarray(observations) > 0.5
    weights = np.random.default_rng(0).integers(1, 2**62, size=bits.shape[1], dtype=np.int64)
    with np.errstate(over="ignore"):
        return (bits * weights).sum(1, dtype=np.int64)  # wraps modulo 2**64: the same rows give the same key


class WorldGames:
    """n games on a World stepped together (the state of a game: its state id and its steps).
    `step` does not restart finished games: callers decide. Rewards as `goal_reward` on reaching the
    goal and `step_reward` otherwise."""

    def __init__(self, world, states, goal_reward=0.0, step_reward=-1.0):
        self.world, self.goal_reward, self.step_reward = world, goal_reward, step_reward
        self.states = np.array(states, dtype=np.int64)
        self.steps = np.zeros(len(self.states), dtype=np.int64)

    def __len__(self):
        return len(self.states)

    def observations(self):
        return self.world.observations[self.states]

    def decision_states(self):
        """All that the game's future depends on but its step count: the state id."""
        return self.states

    def subset(self, games):
        kept = WorldGames(self.world, self.states[games], self.goal_reward, self.step_reward)
        kept.steps = self.steps[games].copy()
        return kept

    def restart(self, which, starts):
        self.states[which], self.steps[which] = starts, 0

    def step(self, actions, active=None):
        """One action per game (only the `active` ones move); (rewards, terminated, truncated).
        A game that reached the goal keeps its last state."""
        active = np.ones(len(self), dtype=bool) if active is None else active
        following = self.world.successor[self.states, np.where(active, actions, 0)]
        terminated = active & (following == TERMINAL)
        self.states = np.where(active & ~terminated, following, self.states)
        self.steps += active
        truncated = active & ~terminated & (self.steps >= MAX_EPISODE_STEPS)
        rewards = np.where(terminated, self.goal_reward, self.step_reward) * active
        return rewards, terminated, truncated


class WorldVec:
    """PPO's environments (decomposition.ppo.BatchedPPO's interface, as tasks.TaskVec): learner i
    plays `num_envs` games of layout layouts[i] of the world, each restarted at the layout's start
    when its episode ends, with actions 0, 1, 2 and one per option of `options` (None: primitives
    only). Rewards: goal_reward on reaching the goal, step_reward per other primitive step."""

    binary_observations = True

    def __init__(self, world, layouts, num_envs, options=None, goal_reward=0.0, step_reward=-1.0):
        self.world, self.num_envs, self.options = world, num_envs, options
        self.layouts = np.asarray(layouts, dtype=np.int64)
        self.num_learners = len(self.layouts)
        self.num_actions = NUM_ACTIONS + (0 if options is None else len(options))
        self.observation_size = world.observation_size
        self.rewards = goal_reward, step_reward
        self.games = None  # reset() starts them

    def _shaped(self, values):
        return values.reshape(self.num_learners, self.num_envs, *values.shape[1:])

    def _starts(self):
        return np.repeat(self.world.start[self.layouts], self.num_envs)

    def reset(self):
        self.games = WorldGames(self.world, self._starts(), *self.rewards)
        return self._shaped(self.games.observations())

    def step(self, actions):
        """actions (L, E) -> next observations, rewards per primitive step (L, E, K), dones and
        primitive steps taken (L, E)."""
        step_rewards, terminated, truncated, steps = macro_step(self.games, actions.reshape(-1), self.options)
        dones = terminated | truncated
        self.games.restart(dones, self._starts()[dones])
        return (self._shaped(self.games.observations()), self._shaped(step_rewards), self._shaped(dones),
                self._shaped(steps))

    def keep(self, learners):
        self.games = self.games.subset(learner_games(learners, self.num_envs))
        self.layouts = self.layouts[np.asarray(learners)]
        self.num_learners = len(learners)

    def greedy_evaluation(self, act, learners):
        """Each of these learners' greedy policy from its layout's start: success (the goal within
        MAX_EPISODE_STEPS primitive steps), SPL and the episode's decisions (episodes.greedy_episodes)."""
        layouts = self.layouts[np.asarray(learners)]
        games = WorldGames(self.world, self.world.start[layouts], *self.rewards)
        return greedy_episodes(games, self.world.optimal[layouts], len(learners), act, self.options,
                               self.world.num_states)

    def greedy_solved(self, act):
        """Whether each learner's greedy policy (primitive actions) reaches its goal in the fewest steps."""
        measures = self.greedy_evaluation(act, np.arange(self.num_learners))
        return np.array([m["spl"] == 1.0 for m in measures])
