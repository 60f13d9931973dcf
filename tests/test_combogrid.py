"""The game rules and the observation layout of docs/game.md."""

import itertools

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from combogrid import COMBOS, DEFAULT_GAME, ComboGridBatch, ComboGridVec, ComboGym
from decomposition.combo_rules import MAX_EPISODE_STEPS

MOVES = {(0, 0, 1): (-1, 0), (0, 1, 2): (1, 0), (2, 1, 0): (0, -1), (1, 0, 2): (0, 1)}


def agent_cell(obs, columns=5):
    index = int(np.flatnonzero(obs[:25])[0])
    return divmod(index, columns)


def env_at(cell, problem="TL-BR"):
    env = ComboGym(problem=problem)
    env.reset(options={"agent": cell})
    return env


def test_combos_match_the_assignment():
    assert COMBOS == {"Up": (0, 0, 1), "Down": (0, 1, 2), "Left": (2, 1, 0), "Right": (1, 0, 2)}


@pytest.mark.parametrize("combo", list(MOVES))
def test_every_combo_moves_from_the_centre(combo):
    env = env_at((2, 2))
    for action in combo[:2]:
        obs, *_ = env.step(action)
        assert agent_cell(obs) == (2, 2)  # nothing moves before the third action
    obs, *_ = env.step(combo[2])
    dr, dc = MOVES[combo]
    assert agent_cell(obs) == (2 + dr, 2 + dc)


@pytest.mark.parametrize("triple", [t for t in itertools.product(range(3), repeat=3) if t not in MOVES])
def test_other_triples_do_nothing(triple):
    env = env_at((2, 2))
    for action in triple:
        obs, *_ = env.step(action)
    assert agent_cell(obs) == (2, 2)
    assert not obs[25:34].any()  # the buffer was read and cleared


@pytest.mark.parametrize("cell,combo", [((0, 2), (0, 0, 1)), ((4, 2), (0, 1, 2)),
                                        ((2, 0), (2, 1, 0)), ((2, 4), (1, 0, 2))])
def test_moves_off_the_grid_do_nothing(cell, combo):
    env = env_at(cell, problem="BR-TL" if cell != (4, 2) else "TL-BR")
    for action in combo:
        obs, *_ = env.step(action)
    assert agent_cell(obs) == cell


def test_buffer_reads_every_third_action_not_a_sliding_window():
    env = env_at((2, 2))
    for action in (1, 0, 0, 1, 2, 2):  # (0, 0, 1) appears at offsets 1-3, but chunks are (1,0,0), (1,2,2)
        obs, *_ = env.step(action)
    assert agent_cell(obs) == (2, 2)


def test_reward_termination_and_goal():
    env = env_at((4, 3), problem="TL-BR")
    rewards = [env.step(a)[1:3] for a in (1, 0, 2)]
    assert rewards == [(-1.0, False), (-1.0, False), (0.0, True)]


def test_truncation_after_500_steps():
    env = ComboGym(problem="TL-BR")
    env.reset()
    for step in range(1, MAX_EPISODE_STEPS + 1):
        _, reward, terminated, truncated, _ = env.step(2)
        assert reward == -1.0 and not terminated
        assert truncated == (step == MAX_EPISODE_STEPS)


@pytest.mark.parametrize("problem,start,goal", [("TL-BR", (0, 0), (4, 4)), ("TR-BL", (0, 4), (4, 0)),
                                                 ("BR-TL", (4, 4), (0, 0)), ("BL-TR", (4, 0), (0, 4))])
def test_observation_layout(problem, start, goal):
    env = ComboGym(problem=problem)
    obs, info = env.reset(seed=3)
    assert obs.shape == (59,) and obs.dtype == np.float32 and info == {}
    expected = np.zeros(59, dtype=np.float32)
    expected[start[0] * 5 + start[1]] = 1
    expected[25 + 9 + goal[0] * 5 + goal[1]] = 1
    np.testing.assert_array_equal(obs, expected)
    obs, *_ = env.step(2)
    expected[25 + 2 * 3 + 0] = 1  # action 2 at position 0
    np.testing.assert_array_equal(obs, expected)
    obs, *_ = env.step(0)
    expected[25 + 0 * 3 + 1] = 1  # action 0 at position 1
    np.testing.assert_array_equal(obs, expected)


def test_layout_on_a_non_square_grid():
    env = ComboGym(rows=3, columns=4, problem="TR-BL")
    obs, _ = env.reset()
    assert obs.shape == (2 * 12 + 9,)
    assert np.flatnonzero(obs).tolist() == [3, 12 + 9 + 2 * 4 + 0]


def test_env_checker_and_registration():
    check_env(gym.make("ComboGrid-v0", problem="BL-TR", render_mode="ansi").unwrapped,
              skip_render_check=False)
    env = gym.make("ComboGrid-v0", problem="BR-TL")
    obs, _ = env.reset(seed=0)
    assert np.flatnonzero(obs).tolist() == [24, 34]


def test_unknown_problem_and_outside_cell_are_refused():
    with pytest.raises(ValueError, match="unknown problem"):
        ComboGym(problem="TL-TR")
    with pytest.raises(ValueError, match="not two integers .* inside the 5x5 grid"):
        ComboGym().reset(options={"agent": (5, 0)})


def test_ansi_render_draws_agent_goal_and_buffer():
    env = ComboGym(problem="TL-BR", render_mode="ansi")
    env.reset()
    env.step(1)
    text = env.render()
    lines = text.splitlines()
    assert lines[0] == "A . . . ." and lines[4] == ". . . . G" and lines[5] == "combo: 1"


def test_batch_matches_single_environments():
    rng = np.random.default_rng(0)
    cells = [(r, c) for r in range(5) for c in range(5)]
    batch = ComboGridBatch(cells, [(0, 0)] * 25, DEFAULT_GAME)
    singles = [env_at(cell, problem="BR-TL") for cell in cells]
    for _ in range(60):
        actions = rng.integers(0, 3, size=25)
        rewards, terminated, _ = batch.step(actions)
        for i, env in enumerate(singles):
            if terminated[i]:
                continue
            obs, reward, done, _, _ = env.step(int(actions[i]))
            np.testing.assert_array_equal(obs, batch.observations()[i])
            assert (reward, done) == (rewards[i], terminated[i])
        batch.restart(terminated, (2, 2))
        for i in np.flatnonzero(terminated):
            singles[i].reset(options={"agent": (2, 2)})


def test_vector_env_resets_finished_games():
    envs = ComboGridVec(["TL-BR", "BR-TL"], 2)
    envs.reset()
    envs.games.agent_cells[:2] = (4, 3)
    _, _, dones, steps = envs.step(np.array([[1, 1], [0, 0]]))
    _, _, dones, steps = envs.step(np.array([[0, 0], [0, 0]]))
    obs, rewards, dones, steps = envs.step(np.array([[2, 1], [1, 1]]))
    assert dones.tolist() == [[True, False], [False, False]] and steps.tolist() == [[1, 1], [1, 1]]
    assert rewards.tolist() == [[[0.0], [-1.0]], [[-1.0], [-1.0]]]  # one primitive step per action
    assert agent_cell(obs[0, 0]) == (0, 0) and agent_cell(obs[0, 1]) == (4, 3)  # reset to TL-BR's start
    assert agent_cell(obs[1, 0]) == (3, 4)                                      # BR-TL's game moved up


def test_vector_env_keeps_a_subset_of_learners():
    envs = ComboGridVec(["TL-BR", "TR-BL", "BR-TL"], 2)
    first = envs.reset()
    envs.keep([0, 2])
    assert envs.num_learners == 2 and envs.reset().shape == (2, 2, 59)
    np.testing.assert_array_equal(envs.reset(), first[[0, 2]])
