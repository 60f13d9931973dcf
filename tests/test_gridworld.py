"""MiniGrid as the kit plays it (decomposition.gridworld): the tables against minigrid itself,
step for step; the batched environments; bad layouts."""

import numpy as np
import pytest
import torch

from decomposition import gridworld
from decomposition.gridworld import LayoutError, MiniGridGym, World, WorldGames, WorldVec, layout, parse_layout
from decomposition.options import NetworkOptions
from ppo_agent import PPOAgent, program_mask

CROSSING, FOUR_ROOMS = "MiniGrid-SimpleCrossingS9N1-v0", "MiniGrid-FourRooms-v0"


@pytest.mark.parametrize("env_id, seed, view", [(CROSSING, 0, 5), (CROSSING, 3, 7), (FOUR_ROOMS, 35, 5)])
def test_the_tables_play_as_minigrid_step_for_step(env_id, seed, view):
    """Random actions in minigrid (MiniGridGym) and in the tables (WorldGames): the same
    observations, rewards, ends and agent states at every step, across several episodes."""
    env, lay = MiniGridGym(env_id, seed, view), layout(env_id, seed, view)
    world = World([lay])
    games = world.games([0])
    observation, _ = env.reset()
    rng, ends = np.random.default_rng(seed), 0
    for _ in range(1500):
        assert np.array_equal(observation, games.observations()[0])
        assert lay.states[games.states[0]] == env.state()
        action = int(rng.choice(3, p=[0.2, 0.2, 0.6]))
        observation, reward, terminated, truncated, _ = env.step(action)
        rewards, ended, cut = games.step(np.array([action]))
        assert (reward, terminated, truncated) == (rewards[0], ended[0], cut[0])
        if terminated or truncated:
            ends += 1
            observation, _ = env.reset()
            games.restart(np.array([True]), world.start[:1])
    assert ends >= 1 and observation.shape == (view * view * 3 + 4,)


def test_the_observation_shows_the_view_and_the_direction():
    lay = layout(CROSSING, 0)
    x, y, d = lay.states[lay.start]
    observation = lay.observations[lay.start]
    view = observation[:-4].reshape(5, 5, 3)            # minigrid's image: [column, row] of the view
    assert observation[-4:].tolist() == np.eye(4)[d].tolist()
    assert view[2, 4].tolist() == [1, 0, 0]            # the agent's own cell: empty
    assert ((view.sum(-1) == 0) | (view.sum(-1) == 1)).all()
    assert view[..., 1].sum() > 0                      # the outer wall is in sight from (1, 1)


def test_fewest_steps_and_the_start():
    lay = layout(CROSSING, 0)
    assert lay.states[lay.start] == (1, 1, 0)          # SimpleCrossing: top left, facing east
    assert lay.optimal == 14                           # the goal is at (7, 7), 12 cells away, two turns
    with pytest.raises(LayoutError, match="cannot be reached"):
        gridworld.fewest_steps(np.zeros((2, 3), dtype=np.int64), 0)


def test_observation_index_finds_every_state():
    world = World([layout(CROSSING, 1), layout(FOUR_ROOMS, 35)])
    rows = world.observation_index(world.observations)
    assert np.array_equal(world.observations[rows], world.observations)
    assert len(np.unique(world.keys)) == len(np.unique(world.observations, axis=0))


def test_world_vec_counts_option_steps_and_restarts_at_the_start():
    """An option of 4 forward moves from SimpleCrossing's start takes 4 primitive steps, and its
    rewards come per primitive step; a finished episode restarts at the layout's start."""
    world = World([layout(CROSSING, 0)])
    agent = PPOAgent(MiniGridGym(CROSSING, 0))
    forward = NetworkOptions([agent], program_mask(64)[None], length=4, game=world)
    forward.actions[:] = 2                              # whatever the network says: forward
    envs = WorldVec(world, [0, 0], 3, forward, goal_reward=10.0, step_reward=0.0)
    observations = envs.reset()
    assert observations.shape == (2, 3, world.observation_size) and envs.num_actions == 4
    _, rewards, dones, steps = envs.step(np.array([[3, 3, 0], [2, 3, 1]]))
    assert steps.tolist() == [[4, 4, 1], [1, 4, 1]] and rewards.shape == (2, 3, 4) and not dones.any()
    assert world.layouts[0].states[envs.games.states[0]] == (5, 1, 0)   # 4 cells east of (1, 1)
    envs.games.states[:] = world.layouts[0].states.index((7, 6, 1))      # facing the goal below
    _, rewards, dones, _ = envs.step(np.full((2, 3), 2))
    assert dones.all() and (rewards[..., 0] == 10.0).all()
    assert (envs.games.states == world.start[0]).all() and (envs.games.steps == 0).all()


def test_greedy_evaluation_stops_a_loop():
    world = World([layout(CROSSING, 0)])
    envs = WorldVec(world, [0], 1)
    turning = envs.greedy_evaluation(lambda observations: np.zeros(observations.shape[:2], dtype=np.int64), [0])
    assert turning[0]["success"] == 0.0 and turning[0]["looping"] == 1.0
    solution = [1, 2, 2, 2, 2, 2, 2, 0, 2, 2, 2, 2, 2, 2]   # a 14-step path of layout 0 (right, down)
    games = world.games([0])
    for action in solution:
        _, ended, _ = games.step(np.array([action]))
    assert ended[0]


@pytest.mark.parametrize("text, message", [
    ("MiniGrid-Nowhere-v0:0", "unknown MiniGrid environment"),
    ("CartPole-v1:0", "ids start with 'MiniGrid-'"),
    ("MiniGrid-FourRooms-v0", "is not ENV_ID:SEED"),
    ("MiniGrid-FourRooms-v0:x", "is not ENV_ID:SEED"),
    ("MiniGrid-FourRooms-v0:-1", "is not ENV_ID:SEED"),
    ("MiniGrid-FourRooms-v0:1:2", "is not ENV_ID:SEED"),
    ("MiniGrid-DoorKey-5x5-v0:0", "navigation grids only"),
])
def test_a_layout_the_kit_cannot_play_is_one_clear_error(text, message):
    with pytest.raises(LayoutError, match=message):
        parse_layout(text)


def test_the_action_space_is_three_actions():
    env = MiniGridGym(CROSSING, 0)
    env.reset()
    with pytest.raises(ValueError, match="0, 1 or 2"):
        env.step(3)
    assert env.action_space.n == 3 and env.observation_space.shape == (79,)


def test_solution_games_replay_the_solutions():
    world = World([layout(CROSSING, 0), layout(CROSSING, 1)])
    games, where = world.solution_games([[2, 2], [1]])
    assert where == [(0, 0), (0, 1), (1, 0)] and isinstance(games, WorldGames)
    assert [world.layouts[0].states[games.states[1]]] == [(2, 1, 0)]
    assert games.states[2] == world.start[1]
    assert torch.as_tensor(games.observations()).shape == (3, 79)
