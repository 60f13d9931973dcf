"""The downstream tasks, options as extended actions, and the reuse study (downstream.py)."""

import json

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import combogrid  # noqa: F401  registers the tasks
import downstream
import main
from combogrid import COMBOS, MAX_EPISODE_STEPS, COMBO_DELTAS, COMBO_NAMES
from decomposition import reuse
from decomposition.options import ComboOptions
from decomposition.tasks import MULTI_GOALS, TaskGames, TaskVec, all_start_goal_pairs, macro_step, new_games

UP, DOWN, LEFT, RIGHT = 3, 4, 5, 6  # learner actions of the four combo options


def replay(task, start, goals, actions):
    """An independent reading of the downstream rules of docs/game.md: the rewards of an action sequence."""
    agent, goal_index, buffer, rewards = list(start), 0, [], []
    moves = {COMBOS[name]: delta for name, delta in zip(COMBO_NAMES, COMBO_DELTAS.tolist())}
    for action in actions:
        buffer.append(action)
        if len(buffer) == 3:
            dr, dc = moves.get(tuple(buffer), (0, 0))
            if 0 <= agent[0] + dr < 5 and 0 <= agent[1] + dc < 5:
                agent = [agent[0] + dr, agent[1] + dc]
            buffer = []
        if agent == list(goals[goal_index]):
            rewards.append(10.0)
            goal_index += 1
            if goal_index == len(goals):
                return rewards, True
        else:
            rewards.append(0.0)
    return rewards, False


@pytest.mark.parametrize("name", ["ComboGrid-MultiGoal-v0", "ComboGrid-Random-v0"])
def test_tasks_pass_the_env_checker(name):
    check_env(gym.make(name).unwrapped)


def test_multi_goal_rewards_and_termination_match_an_independent_replay():
    path = [UP, UP, RIGHT, RIGHT, DOWN, DOWN, LEFT, LEFT, DOWN, DOWN, LEFT, LEFT, UP, UP]  # one combo per cell
    actions = [a for option in path for a in COMBOS[COMBO_NAMES[option - 3]]]
    env = gym.make("ComboGrid-MultiGoal-v0").unwrapped
    env.reset()
    rewards, terminated = [], False
    for action in actions:
        _, reward, terminated, truncated, _ = env.step(action)
        rewards.append(reward)
        assert not truncated
    expected, done = replay("multi-goal", (2, 2), MULTI_GOALS.tolist(), actions)
    assert rewards == expected and terminated and done and sum(rewards) == 40 and len(actions) == 42


def test_random_task_draws_distinct_cells_reproducibly():
    env = gym.make("ComboGrid-Random-v0").unwrapped
    cells = []
    for seed in range(200):
        obs, _ = env.reset(seed=seed)
        agent, goal = obs[:25].argmax(), obs[34:].argmax()
        assert agent != goal
        cells.append((agent, goal))
        again, _ = env.reset(seed=seed)
        np.testing.assert_array_equal(obs, again)
    assert len(set(cells)) > 150  # spread over the 600 pairs


def test_random_task_rewards_match_an_independent_replay():
    rng = np.random.default_rng(1)
    for seed in range(20):
        env = gym.make("ComboGrid-Random-v0").unwrapped
        obs, _ = env.reset(seed=seed)
        start, goal = divmod(int(obs[:25].argmax()), 5), divmod(int(obs[34:].argmax()), 5)
        actions = rng.integers(3, size=300).tolist()
        rewards = []
        for action in actions:
            _, reward, terminated, _, _ = env.step(action)
            rewards.append(reward)
            if terminated:
                break
        expected, done = replay("random", start, [goal], actions)
        assert rewards == expected[:len(rewards)] and terminated == done


def test_tasks_refuse_actions_outside_the_space():
    env = gym.make("ComboGrid-Random-v0").unwrapped
    env.reset(seed=0)
    for action in (3, -1, 1.5, "1"):
        with pytest.raises(ValueError, match="invalid action"):
            env.step(action)


def test_combo_options_move_the_agent_as_the_combos_do():
    for option, delta in zip((UP, DOWN, LEFT, RIGHT), COMBO_DELTAS):
        games = TaskGames("random", [(2, 2)], [(0, 0)])
        rewards, terminated, truncated, steps = macro_step(games, np.array([option]), ComboOptions())
        assert steps.tolist() == [3] and games.games.agents[0].tolist() == (np.array([2, 2]) + delta).tolist()
        assert games.games.buffer_lengths[0] == 0 and not terminated[0] and rewards[0] == 0


def test_an_option_takes_three_primitive_steps_and_sums_its_rewards():
    games = TaskGames("random", [(1, 2), (2, 2)], [(0, 2), (4, 4)])
    rewards, terminated, truncated, steps = macro_step(games, np.array([UP, 1]), ComboOptions())
    assert steps.tolist() == [3, 1]               # an option: 3 steps; a primitive action: 1
    assert rewards.tolist() == [10.0, 0.0] and terminated.tolist() == [True, False]
    assert games.games.steps.tolist() == [3, 1]   # every primitive step counts toward truncation


def test_an_episode_that_ends_inside_an_option_stops_it():
    games = new_games("multi-goal", 1)
    games.games.steps[:] = MAX_EPISODE_STEPS - 1  # one primitive step left before truncation
    rewards, terminated, truncated, steps = macro_step(games, np.array([UP]), ComboOptions())
    assert steps.tolist() == [1] and truncated.tolist() == [True] and not terminated[0]


def test_learner_envs_count_primitive_steps_and_reset():
    envs = TaskVec("multi-goal", [0, 1], 3, ComboOptions())
    assert envs.num_actions == 7 and envs.reset().shape == (2, 3, 59)
    _, rewards, dones, steps = envs.step(np.array([[UP, 0, DOWN], [1, RIGHT, 2]]))
    assert steps.tolist() == [[3, 1, 3], [1, 3, 1]]
    assert rewards.tolist() == [[0, 0, 0], [0, 0, 0]] and not dones.any()


def test_greedy_check_accepts_an_optimal_policy_only():
    envs = TaskVec("random", [0, 1], 2, ComboOptions())

    def toward_goal(observations):  # the optimal policy with combo options; learner 1 always goes up
        agent, goal = observations[..., :25].argmax(-1), observations[..., 34:].argmax(-1)
        dr, dc = goal // 5 - agent // 5, goal % 5 - agent % 5
        best = np.where(dr < 0, UP, np.where(dr > 0, DOWN, np.where(dc < 0, LEFT, RIGHT)))
        best[1] = UP
        return best

    assert envs.greedy_solved(toward_goal).tolist() == [True, False]
    assert len(all_start_goal_pairs()[0]) == 600


def test_area_under_the_curve():
    budget = 400
    curve = [(100, float("nan")), (200, 20.0), (300, float("nan")), (400, 40.0)]
    assert reuse.area_under_curve(curve, budget, 40.0) == pytest.approx((0 + 20 + 20 + 40) * 100 / (400 * 40))


def test_option_selection_takes_the_lowest_loss_among_allowed_networks():
    best_loss = np.full((2, 4, 4), 1.0)
    best_loss[1, 0, 2] = 0.1   # Up: seed 1 of BR-TL (needs Up)
    best_loss[0, 0, 0] = 0.5   # Up: seed 0 of TL-BR (does not need Up)
    extraction = type("E", (), {"best_loss": best_loss})
    assert reuse.best_masks(extraction, np.ones((4, 4), dtype=bool))[0] == (2, 1)
    assert reuse.best_masks(extraction, ~main.needed_pairs())[0] == (0, 0)


def test_a_small_study_end_to_end(tmp_path, capsys):
    args = downstream.Args(num_seeds=2, tasks=("multi-goal",), conditions=("none", "inputs", "combos"),
                           mask_seeds=1, budget=4096, save_dir=str(tmp_path))
    downstream.main(args)
    out = capsys.readouterr().out
    assert "AUC [95% CI]" in out and "combos" in out
    data = json.loads((tmp_path / "results.json").read_text())
    assert len(data["runs"]) == 6 and (tmp_path / "learning_curves.png").exists()
    record = data["runs"][0]
    assert {"task", "condition", "seed", "auc", "solved", "steps_to_solve"} <= set(record)
    assert record["task"] == "multi-goal" and 0 <= record["auc"] <= 1
    assert all(r["steps"] >= 4096 for r in data["runs"])
    assert [s["network"] for s in data["option_sources"]["inputs"]] != []


@pytest.mark.parametrize("arguments,message", [
    ({"tasks": ("maze",)}, "unknown task or condition 'maze'"),
    ({"conditions": ()}, "at least one"),
    ({"budget": 100}, "--budget must allow one PPO rollout"),
    ({"num_seeds": 0}, "--num-seeds must be a positive number"),
])
def test_downstream_refuses_bad_arguments(arguments, message):
    assert message in downstream.check_args(downstream.Args(**arguments))


def test_fixed_combos_move_only_from_an_empty_buffer():
    moves = reuse.moves_after_primitives(ComboOptions())
    assert moves == {0: [1.0] * 4, 1: [0.0] * 4, 2: [0.0] * 4}
