"""What the kit needs of an environment, declared once.

Its roles, each a `typing.Protocol` that ComboGrid (combogrid.py, decomposition.tasks) and
MiniGrid (decomposition.gridworld) implement; a new environment implements them too and every
study runs on it (docs/environments.md walks through one, tests/tiny_environment.py is one):

- `Games`: many games of one environment stepped together, one row per game. Rollouts, the
  greedy evaluation, options and discovery step these.
- `Game`: a set of training problems, one network per problem: what extraction and discovery
  need (solutions, observations, a gymnasium env per problem, a `ProblemEnv`).
- `LearnerEnvs`: the environments of many PPO learners at once (decomposition.ppo.BatchedPPO
  trains on them); `SolvableEnvs` adds the check that ends training, `EvaluatedEnvs` the greedy
  evaluation curves of the reuse study.
- `Task`: a downstream task of the reuse study: its learners' environments, its best return and
  its name (what records call it).

Every game of the kit has the same three primitive actions (the networks' three outputs); an
option set (decomposition.options) adds actions that run for several primitive steps.
"""

from typing import Protocol, runtime_checkable

import numpy as np

NUM_ACTIONS = 3
"""The primitive actions 0, 1, 2 of every game."""


@runtime_checkable
class Games(Protocol):
    """n games of one environment, stepped together; arrays hold one row per game."""

    steps: np.ndarray
    """(n,) primitive steps taken since each game (re)started"""

    def __len__(self) -> int: ...

    def observations(self) -> np.ndarray:
        """(n, observation_size) float32 observations of the games' current states."""

    def decision_states(self) -> np.ndarray:
        """(n,) integers: all that a game's future depends on but its step count, so a deterministic
        policy acts the same wherever the integer repeats (the greedy evaluation stops loops by it)."""

    def subset(self, games) -> "Games":
        """A new batch holding copies of the games at these indices."""

    def restart(self, which: np.ndarray, *starts) -> None:
        """Start the games selected by the boolean array `which` again, from `starts` (what a start
        is depends on the environment: cells, or cells and goals, or state ids)."""

    def step(self, actions: np.ndarray, active: np.ndarray = None) -> tuple:
        """One primitive action per game (only the `active` games, if given, move); returns arrays
        (rewards, terminated, truncated). Finished games are not restarted: callers decide."""


@runtime_checkable
class ProblemEnv(Protocol):
    """One problem of a game as a gymnasium environment (a `gym.Env` besides): what a PPOAgent is built
    on and what ppo_agent.load_agent checks a checkpoint against."""

    game_description: object
    """the Game the problem belongs to (its name is checked against a checkpoint's training record)"""

    def observations_to_check(self) -> np.ndarray:
        """Observations on which a loaded network's outputs must be finite."""


@runtime_checkable
class Game(Protocol):
    """A set of training problems, one network per problem: what extraction and discovery read."""

    name: str
    problems: tuple
    """the problems' names, in their canonical order (seeds, tables, the networks of a set)"""
    observation_size: int
    action_period: int
    """actions take effect in groups of this many (ComboGrid: the combo length; 1 elsewhere):
    discovery counts a segment's occurrences only at the same position in the group"""

    def describe(self) -> dict:
        """The game as plain data (what results files record); `game_from_record` reads it back."""

    def solution_lengths(self) -> list:
        """The fewest actions of each problem, in the problems' order."""

    def solution_games(self, solutions) -> tuple:
        """Every state of every solution (actions per problem, in the problems' order) as one
        batch of Games, in order, and for each state its (problem, position)."""

    def problem_env(self, k: int) -> ProblemEnv:
        """Problem k as a gymnasium environment (what a PPOAgent is built on and checked against)."""

    def every_observation(self) -> np.ndarray:
        """Observations that cover the game: an option's action is computed once for each
        (decomposition.options.NetworkOptions) and looked up by observation_index."""

    def observation_index(self, observations) -> np.ndarray:
        """The row of every_observation() equal to each observation."""


@runtime_checkable
class LearnerEnvs(Protocol):
    """PPO's environments for many learners at once: `num_envs` games per learner, each restarted
    when its episode ends. Arrays are (learners, num_envs, ...)."""

    num_learners: int
    num_envs: int
    num_actions: int
    """the primitive actions and one per option"""
    observation_size: int
    binary_observations: bool
    """observations are vectors of 0s and 1s: PPO then runs its networks once per distinct row"""

    def reset(self) -> np.ndarray:
        """Start every game; the observations (L, E, D)."""

    def step(self, actions: np.ndarray) -> tuple:
        """actions (L, E) -> next observations, rewards per primitive step (L, E, K), dones (L, E)
        and the primitive steps each action took (L, E)."""

    def keep(self, learners) -> None:
        """Go on with these learners only (indices into the current ones)."""


@runtime_checkable
class SolvableEnvs(LearnerEnvs, Protocol):
    """Learner environments whose problems have a known optimum: PPO stops a learner once its greedy
    policy reaches it (PPOSettings.optimal_checks)."""

    def greedy_solved(self, act) -> np.ndarray:
        """(L,) whether each learner's greedy policy solves its problem in the fewest steps; act maps
        observations (L, n, D) to actions (L, n)."""


@runtime_checkable
class EvaluatedEnvs(LearnerEnvs, Protocol):
    """Learner environments with a greedy evaluation (the reuse study's curves)."""

    def greedy_evaluation(self, act, learners) -> list:
        """One dict per learner of these (decomposition.episodes.episode_measures: success, spl, ...)
        from its greedy policy; nothing random is drawn."""


@runtime_checkable
class Task(Protocol):
    """A downstream task of the reuse study (decomposition.reuse)."""

    name: str
    """what the records and tables call it"""
    max_return: float
    """the best return of an episode (training returns are shown divided by it)"""

    def envs(self, seeds, num_envs: int, options) -> EvaluatedEnvs:
        """The environments of one learner per seed (its random starts drawn from its seed), with
        the actions extended by `options` (an option set of decomposition.options, or None)."""


def learner_games(learners, num_envs):
    """Indices of the games of these learners in a batch laid out learner by learner."""
    return (np.asarray(learners)[:, None] * num_envs + np.arange(num_envs)).reshape(-1)


RECORD_READERS = []
"""(key, reader) per kind of game: a describe() record holding `key` is read by `reader`."""


def register_game(key, reader):
    """Let `game_from_record` read describe() records that hold `key` with `reader(record)`."""
    RECORD_READERS.append((key, reader))


def game_from_record(record):
    """The game of a describe() record of any registered kind (the first whose key it holds)."""
    for key, reader in RECORD_READERS:
        if isinstance(record, dict) and key in record:
            return reader(record)
    raise ValueError(f"not a game description: no key of {', '.join(k for k, _ in RECORD_READERS)}")
