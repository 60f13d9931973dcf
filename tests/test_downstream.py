"""The downstream tasks, options as extended actions, and the reuse study (downstream.py)."""

import json
from dataclasses import replace

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from scipy import stats as scipy_stats

import combogrid  # noqa: F401  registers the tasks
import downstream
import main
from decomposition import extraction
from combogrid import DEFAULT_GAME, COMBOS, COMBO_DELTAS, COMBO_NAMES
from decomposition.combo_rules import MAX_EPISODE_STEPS
from decomposition import reuse, statistics
from decomposition.options import ComboOptions, NetworkOptions
from decomposition.episodes import macro_step, success_weighted_path_length
from decomposition.tasks import TaskGames, TaskVec, all_start_goal_pairs, multi_goal_tour, task_starts
from ppo_agent import greedy_actions, program_mask

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
    expected, done = replay("multi-goal", (2, 2), multi_goal_tour(DEFAULT_GAME)[1].tolist(), actions)
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
        assert steps.tolist() == [3] and games.games.agent_cells[0].tolist() == (np.array([2, 2]) + delta).tolist()
        assert games.games.buffer_lengths[0] == 0 and not terminated[0] and not rewards.any()


def test_an_option_takes_three_primitive_steps_and_returns_each_step_s_reward():
    games = TaskGames("random", [(1, 2), (2, 2)], [(0, 2), (4, 4)])
    rewards, terminated, truncated, steps = macro_step(games, np.array([UP, 1]), ComboOptions())
    assert steps.tolist() == [3, 1]               # an option: 3 steps; a primitive action: 1
    assert rewards.tolist() == [[0, 0, 10.0], [0, 0, 0]] and terminated.tolist() == [True, False]
    assert games.games.steps.tolist() == [3, 1]   # every primitive step counts toward truncation


def test_a_network_s_greedy_action_offered_as_a_one_step_option():
    agents = extraction.load_agents(main.Args())
    unmasked = program_mask(agents[0].hidden_size).expand(len(agents), -1, -1)
    games = TaskGames("random", [(2, 2)] * 4, [(0, 0)] * 4)
    observations = torch.as_tensor(games.observations())
    expected = [int(greedy_actions(agent.actor(observations[k]))) for k, agent in enumerate(agents)]
    rewards, _, _, steps = macro_step(games, np.arange(4) + 3, NetworkOptions(agents, unmasked, length=1))
    assert steps.tolist() == [1] * 4 and rewards.shape == (4, 1)
    assert games.games.buffer_lengths.tolist() == [1] * 4 and games.games.buffers[:, 0].tolist() == expected


def test_an_episode_that_ends_inside_an_option_stops_it():
    games = TaskGames("multi-goal", *task_starts("multi-goal", 1, None, DEFAULT_GAME))
    games.games.steps[:] = MAX_EPISODE_STEPS - 1  # one primitive step left before truncation
    rewards, terminated, truncated, steps = macro_step(games, np.array([UP]), ComboOptions())
    assert steps.tolist() == [1] and truncated.tolist() == [True] and not terminated[0]


def test_learner_envs_count_primitive_steps_and_reset():
    envs = TaskVec("multi-goal", [0, 1], 3, ComboOptions())
    assert envs.num_actions == 7 and envs.reset().shape == (2, 3, 59)
    _, rewards, dones, steps = envs.step(np.array([[UP, 0, DOWN], [1, RIGHT, 2]]))
    assert steps.tolist() == [[3, 1, 3], [1, 3, 1]]
    assert rewards.shape == (2, 3, 3) and not rewards.any() and not dones.any()


def toward_goal(observations):
    """The optimal policy with combo options: the combo toward the goal, rows first."""
    agent, goal = observations[..., :25].argmax(-1), observations[..., 34:].argmax(-1)
    dr, dc = goal // 5 - agent // 5, goal % 5 - agent % 5
    return np.where(dr < 0, UP, np.where(dr > 0, DOWN, np.where(dc < 0, LEFT, RIGHT)))


def test_spl_of_hand_made_episodes():
    # reached in the fewest steps, in twice as many, not reached, and reached in fewer (capped at 1)
    spl = success_weighted_path_length(np.array([6, 12, 0, 3]), np.array([6, 6, 6, 6]))
    assert spl.tolist() == [1.0, 0.5, 0.0, 1.0]


def test_greedy_evaluation_scores_an_optimal_policy_1_and_a_looping_one_by_its_successes():
    envs = TaskVec("random", [0, 1], 2, ComboOptions())

    def act(observations):  # learner 0 optimal; learner 1 always goes up
        best = toward_goal(observations)
        best[1] = UP
        return best

    optimal, up = envs.greedy_evaluation(act, [0, 1])
    assert optimal["success"] == optimal["spl"] == 1.0 and optimal["primitive_steps"] == optimal["optimal_steps"]
    starts, goals = all_start_goal_pairs(DEFAULT_GAME)
    straight_up = ((goals[:, 1] == starts[:, 1]) & (goals[:, 0] < starts[:, 0])).mean()
    assert up["success"] == up["spl"] == straight_up  # the goals straight above are reached optimally
    assert up["looping"] == 1 - straight_up and optimal["looping"] == 0
    assert len(starts) == 600


def test_greedy_evaluation_stops_a_looping_policy_as_a_failure():
    envs = TaskVec("multi-goal", [0], 2)
    calls = []

    def act(observations):  # the Down combo over and over: down to the bottom edge, never at (0, 2)
        calls.append(1)
        return np.full(observations.shape[:2], COMBOS["Down"][(len(calls) - 1) % 3])

    (measures,) = envs.greedy_evaluation(act, [0])
    assert measures == {"success": 0.0, "spl": 0.0, "decisions": None, "primitive_steps": None,
                        "optimal_steps": None, "looping": 1.0}
    assert len(calls) < 20  # the loop at the bottom edge is recognised, not played for 500 steps


def test_option_selection_takes_the_lowest_loss_among_allowed_networks():
    best_loss = np.full((2, 4, 4), 1.0)
    best_loss[1, 0, 2] = 0.1   # Up: seed 1 of BR-TL (needs Up)
    best_loss[0, 0, 0] = 0.5   # Up: seed 0 of TL-BR (does not need Up)
    extraction = type("E", (), {"best_loss": best_loss})
    assert reuse.best_masks(extraction, np.ones((4, 4), dtype=bool))[0] == (2, 1)
    assert reuse.best_masks(extraction, ~DEFAULT_GAME.needed)[0] == (0, 0)


SMALL = downstream.Args(num_seeds=3, tuning_seeds=2, learning_rates=(1e-3, 3e-3), tasks=("multi-goal",),
                        conditions=("none", "inputs", "neural-augmented"), mask_seeds=1, budget=4096, eval_points=2)


@pytest.fixture(scope="module")
def small_study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("study")
    downstream.main(replace(SMALL, save_dir=str(folder)))
    return json.loads((folder / "results.json").read_text()), folder


@pytest.mark.slow
def test_a_small_study_end_to_end(small_study):
    data, folder = small_study
    assert {"evaluation_curves.png", "training_returns.png"} <= {p.name for p in folder.iterdir()}
    assert len(data["runs"]) == 9 and set(data["tuning"]["multi-goal"]) == set(SMALL.conditions)
    fields = {"task", "condition", "seed", "auc", "final_spl", "final_success", "steps_to_95", "eval_steps",
              "eval_spl", "eval_success", "learning_rate"}
    for record in data["runs"]:
        assert fields <= set(record) and record["eval_steps"] == [2048, 4096] and record["steps"] >= 4096
        assert record["auc"] == pytest.approx(np.mean(record["eval_spl"]))
        assert record["final_spl"] == record["eval_spl"][-1] and record["final_success"] == record["eval_success"][-1]
        assert record["learning_rate"] == data["tuning"]["multi-goal"][record["condition"]]["learning_rate"]
    assert [r["seed"] for r in data["runs"]] == [0, 1, 2] * 3


@pytest.mark.slow
def test_the_statistics_are_recomputed_from_the_records(small_study):
    data, _ = small_study
    auc = {c: np.array([r["auc"] for r in data["runs"] if r["condition"] == c]) for c in SMALL.conditions}
    for condition, summary in data["summary"]["multi-goal"].items():
        x, y = auc[condition], auc["none"]
        assert summary["mean"][0] == pytest.approx(x.mean())
        assert summary["iqm"][0] == pytest.approx(scipy_stats.trim_mean(x, 0.25))
        pairs = [(a > b) + (a == b) / 2 for a in x for b in y]
        assert summary["improvement_over_none"][0] == pytest.approx(np.mean(pairs))
        assert summary == json.loads(json.dumps(statistics.summary(x, y)))  # the intervals too
        assert all(low <= value <= high for value, low, high in summary.values())


def test_interquartile_mean_and_probability_of_improvement_on_hand_made_scores():
    assert statistics.interquartile_mean(np.array([0.0, 1, 2, 3, 4, 5, 6, 100])) == pytest.approx(3.5)
    # pairs (1, 2) (1, 0) (2, 2) (2, 0): lost, won, tied, won
    assert statistics.probability_of_improvement([1, 2], [2, 0]) == pytest.approx((0 + 1 + 0.5 + 1) / 4)


@pytest.mark.parametrize("arguments,message", [
    ({"tasks": ("maze",)}, "unknown task or condition 'maze'"),
    ({"conditions": ()}, "at least one"),
    ({"budget": 100}, "--budget must allow one PPO rollout"),
    ({"num_seeds": 0}, "--num-seeds must be a positive number"),
    ({"tuning_seeds": 0}, "--tuning-seeds must be a positive number"),
    ({"eval_points": 0}, "--eval-points must be a positive number"),
    ({"eval_points": 200}, "--eval-points must be at most one per PPO rollout"),
    ({"processes": -1}, "--processes must be between 1 and 64"),
    ({"learning_rates": ()}, "--learning-rates needs at least one rate"),
    ({"learning_rates": (1e-3, float("nan"))}, "--learning-rates must be a positive number, got nan"),
    ({"learning_rates": (-1.0,)}, "--learning-rates must be a positive number"),
    ({"conditions": ("inputs",)}, "--conditions needs none"),
    ({"num_seeds": 20_000}, "--num-seeds must be at most 10000"),
])
def test_downstream_refuses_bad_arguments(arguments, message):
    assert message in downstream.check_args(downstream.Args(**arguments))


def test_fixed_combos_move_only_from_an_empty_buffer():
    moves = reuse.moves_after_primitives(ComboOptions(), DEFAULT_GAME)
    assert moves == {0: [1.0] * 4, 1: [0.0] * 4, 2: [0.0] * 4}


@pytest.mark.slow
def test_a_stopped_study_goes_on_from_the_runs_done_to_the_same_records(small_study, tmp_path, monkeypatch):
    original, ran = downstream.run_part, []

    def interrupted(task, condition, *rest):
        ran.append(condition)
        if ran == ["none", "inputs"]:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the second (task, condition)
        return original(task, condition, *rest)

    monkeypatch.setattr(downstream, "run_part", interrupted)
    with pytest.raises(KeyboardInterrupt):
        downstream.main(replace(SMALL, save_dir=str(tmp_path)))
    assert not (tmp_path / "results.json").exists()
    downstream.main(replace(SMALL, save_dir=str(tmp_path)))
    assert ran == ["none", "inputs", "inputs", "neural-augmented"]  # the rerun went on from the one not done
    whole, resumed = small_study[0], json.loads((tmp_path / "results.json").read_text())
    assert whole["runs"] == resumed["runs"] and whole["tuning"] == resumed["tuning"]
    assert not (tmp_path / "parts").exists()
