"""The ComboGrid family: each named game's rules, optimal lengths and needed combos checked against
an independent search over (cell, combo buffer) states, and bad game descriptions refused."""

import json
import os
import shutil
from collections import deque

import numpy as np
import pytest
import torch

from combogrid import (FOUR_ACTION_COMBOS, GAMES, ComboGridBatch, ComboGym, Game, GameError, game_named,
                       sized_game)
from conftest import MODELS, ROOT
from decomposition.options import ComboOptions, NetworkOptions
from decomposition.ppo_kernels import observation_keys
from decomposition.tasks import TaskVec, evaluation_episodes
from ppo_agent import CheckpointError, PPOAgent, load_agent, program_mask
from test_bad_inputs import expect_error

MOVES = {"Up": (-1, 0), "Down": (1, 0), "Left": (0, -1), "Right": (0, 1)}


def walls_by_rule(name, rows, columns):
    """The walls as the research code lays them out, written again here."""
    if "hallways" in name:
        return {(r, c) for r in range(rows) for c in range(columns) if r != rows // 2 and c != columns // 2}
    if "block" in name:
        return {(r, c) for r in range(1, rows - 1) for c in range(1, columns - 1)}
    return set()


def shortest_actions(game, start, goal, banned=None):
    """Breadth-first search over (cell, buffer) with the rules of docs/game.md written again: the
    fewest actions from start to goal, never completing the combo `banned`; None if unreachable."""
    combos = {tuple(actions): MOVES[name] for name, actions in game.combos if name != banned}
    every = {tuple(actions) for _, actions in game.combos}
    walls = walls_by_rule(game.name, game.rows, game.columns)
    seen, queue = {(start, ())}, deque([(start, (), 0)])
    while queue:
        cell, buffer, steps = queue.popleft()
        if cell == goal:
            return steps
        for action in range(3):
            after, moved = buffer + (action,), cell
            if len(after) == game.combo_length:
                if after in every and after not in combos:
                    continue  # the banned combo
                dr, dc = combos.get(after, (0, 0))
                target = (cell[0] + dr, cell[1] + dc)
                if 0 <= target[0] < game.rows and 0 <= target[1] < game.columns and target not in walls:
                    moved = target
                after = ()
            if (moved, after) not in seen:
                seen.add((moved, after))
                queue.append((moved, after, steps + 1))
    return None


@pytest.mark.parametrize("name", list(GAMES))
def test_optimal_lengths_and_needed_combos_match_an_independent_search(name):
    game = GAMES[name]
    assert set(map(tuple, np.argwhere(game.is_wall))) == walls_by_rule(name, game.rows, game.columns)
    for problem in game.problems:
        start, goal = game.problem_cells(problem)
        fewest = shortest_actions(game, start, goal)
        assert fewest == game.optimal_length(start, goal)[0]
        needed = tuple(combo for combo in game.combo_names if shortest_actions(game, start, goal, combo) != fewest)
        assert needed == game.needed_combos(problem)
        assert len(game.needed_combos(problem)) == 2  # every named game: two combos per problem


@pytest.mark.parametrize("name", list(GAMES))
def test_every_problem_is_solved_by_its_optimal_moves_in_the_env(name):
    game = GAMES[name]
    for problem in game.problems:
        env = ComboGym(problem=problem, game=game)
        env.reset()
        start, goal = game.problem_cells(problem)
        actions, cell = [], start
        while cell != goal:  # greedy descent of the game's distances
            distance = game.distances(goal)
            name_, (dr, dc) = next((n, MOVES[n]) for n in game.combo_names
                                   if 0 <= cell[0] + MOVES[n][0] < game.rows and 0 <= cell[1] + MOVES[n][1] < game.columns
                                   and distance[cell[0] + MOVES[n][0], cell[1] + MOVES[n][1]] == distance[cell] - 1)
            actions += list(dict(game.combos)[name_])
            cell = (cell[0] + dr, cell[1] + dc)
        for action in actions:
            _, reward, terminated, _, _ = env.step(action)
        assert terminated and reward == 0.0 and len(actions) == game.optimal_length(start, goal)[0]


def test_a_move_into_a_wall_does_nothing():
    game = GAMES["5x5-block"]
    games = ComboGridBatch([(0, 1)], [(4, 4)], game)
    for action in dict(game.combos)["Down"]:
        games.step(np.array([action]))
    assert games.agent_cells.tolist() == [[0, 1]]  # (1, 1) is a wall
    with pytest.raises(ValueError, match="is a wall"):
        ComboGym(game="5x5-block").reset(options={"agent": (2, 2)})


def test_four_action_combos_move_on_the_fourth_action():
    game = GAMES["5x5-combo4"]
    assert game.observation_size == 2 * 25 + 3 * 4 and dict(game.combos) == dict(FOUR_ACTION_COMBOS)
    env = ComboGym(problem="TL-BR", game=game)
    env.reset(options={"agent": (2, 2)})
    for action in (0, 0, 1):
        observation, *_ = env.step(action)
        assert observation[:25].argmax() == 12 and observation[25:37].sum() > 0
    observation, *_ = env.step(1)  # Down is 0, 0, 1, 1
    assert observation[:25].argmax() == 17 and observation[25:37].sum() == 0


def test_test_states_are_the_open_non_goal_cells():
    for game in GAMES.values():
        agents, goals = game.test_states()
        open_cells = len(game.open_cells)
        assert len(agents) == len(game.problems) * (open_cells - 1)
        assert not game.is_wall[agents[:, 0], agents[:, 1]].any() and not (agents == goals).all(1).any()


def test_the_default_game_is_the_assignments():
    game = game_named("5x5")
    assert game.problems == ("TL-BR", "TR-BL", "BR-TL", "BL-TR") and game.observation_size == 59
    assert [game.needed_combos(p) for p in game.problems] == [("Down", "Right"), ("Down", "Left"),
                                                              ("Up", "Left"), ("Up", "Right")]
    assert sized_game("5x5", 6, 6) == GAMES["6x6"] and game_named("5x5@6x6") == GAMES["6x6"]
    assert len(evaluation_episodes("random", game)[0]) == 600
    assert evaluation_episodes("multi-goal", game)[2].tolist() == [42]


@pytest.mark.parametrize("change,message", [
    ({"walls": ((0, 0),)}, "cell (0, 0) is a wall"),
    ({"walls": ((0, 1), (1, 0))}, "(4, 4) cannot be reached from (0, 0)"),
    ({"combos": (("Up", (0, 0, 1)), ("Down", (0, 1)))}, "same length"),
    ({"combos": (("Up", (0, 0, 1)), ("Up", (0, 1, 2)))}, "combo Up is repeated"),
    ({"combos": (("Up", (0, 0, 1)), ("Down", (0, 0, 1)))}, "combos Up and Down are the same actions"),
    ({"combos": (("North", (0, 0, 1)),)}, "named by their moves"),
    ({"combos": (("Up", (0, 3, 1)),)}, "0, 1 or 2"),
    ({"problems": ("TL-TL",)}, "two different cells"),
    ({"problems": ("TL-XX",)}, "unknown cell 'XX'"),
    ({"walls": "spiral"}, "unknown wall pattern"),
    ({"rows": 1}, "from 2 to 100"),
    ({"walls": "block", "multi_goal": ("MM", "TM")}, "multi-goal task: cell (2, 2) is a wall"),
])
def test_bad_game_descriptions_are_refused(change, message):
    with pytest.raises(GameError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Game(**{"name": "bad", **change})


def test_unknown_game_names_are_refused():
    for name in ("7x7", "5x5@", "5x5@axb", "hallways"):
        with pytest.raises(GameError, match="unknown game"):
            game_named(name)


def test_a_checkpoint_of_another_game_is_refused(tmp_path):
    shutil.copy(os.path.join(ROOT, "models", "TL-BR.pt"), tmp_path / "TL-BR.pt")
    (tmp_path / "training.json").write_text(json.dumps({"game": GAMES["5x5-block"].describe(), "networks": {}}))
    with pytest.raises(CheckpointError, match="trained on game 5x5-block .* not on game 5x5"):
        load_agent(str(tmp_path / "TL-BR.pt"), ComboGym(problem="TL-BR"))
    assert load_agent(str(tmp_path / "TL-BR.pt"), ComboGym(problem="TL-BR", game="5x5-block")) is not None
    unrecorded = tmp_path / "unrecorded"  # no training.json: the shape check alone must refuse it
    unrecorded.mkdir()
    shutil.copy(os.path.join(ROOT, "models", "TL-BR.pt"), unrecorded / "TL-BR.pt")
    with pytest.raises(CheckpointError, match=r"expected \(64, 81\) for hidden size 64 and game 6x6"):
        load_agent(str(unrecorded / "TL-BR.pt"), ComboGym(problem="TL-BR", game="6x6"))
    with pytest.raises(CheckpointError, match="trained on game 5x5 .* not on game 6x6: pass --game 5x5"):
        load_agent(os.path.join(ROOT, "models", "TL-BR.pt"), ComboGym(problem="TL-BR", game="6x6"))


def test_observation_keys_stay_distinct_above_sixty_inputs():
    game = GAMES["10x10"]
    observations = torch.as_tensor(game.every_observation()[:5000])
    repeated = torch.cat([observations, observations[:100]])[None]
    keys = observation_keys(repeated, binary=True)[0]
    assert len(torch.unique(keys)) == 5000 and torch.equal(keys[5000:], keys[:100])


@pytest.mark.parametrize("name", ["5x5", "5x5-combo4", "6x6"])
def test_every_observation_is_indexed_in_order(name):
    game = GAMES[name]
    observations = game.every_observation()
    assert len(observations) == game.cells ** 2 * game.buffer_states
    assert np.array_equal(game.observation_index(observations), np.arange(len(observations)))


def test_network_options_act_as_their_network_on_a_larger_game():
    game = GAMES["6x6"]
    env = ComboGym(problem="TL-BR", game=game)
    agent = PPOAgent(env)
    options = NetworkOptions([agent], program_mask(64)[None], game=game, length=3)
    observations = game.every_observation()[::37]
    with torch.no_grad():
        expected = agent.actor(torch.as_tensor(observations)).argmax(-1).numpy()
    assert np.array_equal(options.act(np.zeros(len(observations), dtype=int), observations, 0), expected)


@pytest.mark.parametrize("name", ["5x5-hallways", "5x5-block", "5x5-combo4"])
def test_downstream_tasks_are_solved_by_the_true_combos_on_every_game(name):
    game = GAMES[name]
    envs = TaskVec("random", [0], 1, ComboOptions(game), game)

    def toward_goal(observations):  # the combo that brings the agent one cell nearer (the game's distances)
        cells = observations[0, :, :game.cells].argmax(-1)
        goals = observations[0, :, game.cells + 3 * game.combo_length:].argmax(-1)
        actions = []
        for cell, goal in zip(cells, goals):
            r, c, distance = *divmod(int(cell), game.columns), game.distances(divmod(int(goal), game.columns))
            actions.append(0 if cell == goal else next(3 + k for k, (dr, dc) in enumerate(game.combo_deltas)
                                if 0 <= r + dr < game.rows and 0 <= c + dc < game.columns
                                and distance[r + dr, c + dc] == distance[r, c] - 1))
        return np.array([actions])

    (measures,) = envs.greedy_evaluation(toward_goal, [0])
    assert measures["success"] == measures["spl"] == 1.0


@pytest.mark.parametrize("script,options,message", [
    ("train_ppo", {"game": "7x7"}, "unknown game '7x7'"),
    ("train_ppo", {"game": "5x5-hallways", "problems": ("TL-BR",)}, "game 5x5-hallways has ML-TM"),
    ("train_ppo", {"game": "5x5-block", "rows": 1}, "--rows must be between 2 and 100"),
    ("main", {"game": "hallways"}, "unknown game 'hallways'"),
    ("main", {"game": "5x5-block", "model_paths": MODELS}, "trained on game 5x5 (its folder's training.json), not on "
                                                           "game 5x5-block"),
    ("main", {"game": "6x6", "model_paths": MODELS}, "trained on game 5x5 (its folder's training.json), not on game 6x6"),
    ("main", {"game": "5x5-combo4", "sequence_length": 3}, "--sequence-length must be 4"),
    ("main", {"game": "5x5-12problems", "model_paths": MODELS}, "--model-paths needs 12 checkpoints"),
    ("downstream", {"game": "10x11"}, "unknown game '10x11'"),
    ("discover", {"game": "5x5-hallways", "max_length": 13}, "--max-length must be between 2 and 12"),
    ("variants", {"games": ("5x5", "5x5")}, "--games must name each game once"),
    ("variants", {"games": ("5x5-walls",)}, "unknown game '5x5-walls'"),
    ("variants", {"num_sets": 1}, "--num-sets must be between 2 and 100 (the study compares sets)"),
])
def test_scripts_refuse_bad_games_with_one_line(script, options, message, tmp_path):
    module = __import__(script)
    extra = {"save_dir": str(tmp_path / "out")} if script in ("train_ppo", "variants") else {}
    expect_error(lambda: module.main(module.Args(**options, **extra)), message)
    assert not (tmp_path / "out").exists()


def test_the_all_goals_task_shows_every_goal_and_takes_them_in_any_order():
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env
    from decomposition.tasks import shortest_tour
    check_env(gym.make("ComboGrid-AllGoals-v0").unwrapped)
    env = gym.make("ComboGrid-AllGoals-v0").unwrapped
    observation, _ = env.reset()
    goal_part = slice(25 + 9, None)
    assert observation[goal_part].sum() == 4
    combos = dict(GAMES["5x5"].combos)
    moves = ["Left", "Left", "Up", "Up", "Right", "Right", "Right", "Right", "Down", "Down", "Down", "Down",
             "Left", "Left"]  # ML first, then TM, MR and BM: the reverse of the multi-goal order
    rewards = []
    for move in moves:
        for action in combos[move]:
            observation, reward, terminated, truncated, _ = env.step(action)
            rewards.append(reward)
    assert sum(rewards) == 40 and terminated and not truncated and observation[goal_part].sum() == 0
    assert len(rewards) == shortest_tour(GAMES["5x5"]) == 42


@pytest.mark.parametrize("options, message", [
    ({"figure": "/proc/nowhere/cost.png"}, "cannot write --figure /proc/nowhere/cost.png"),
    ({"figure": "."}, "it is a folder"),
    ({"study_dir": "no/such/study", "stages": ("extract",)}, "--study-dir no/such/study is not a folder"),
    ({"games": ()}, "--games must name each one once"),
    ({"games": ("5x5", "5x5")}, "--games must name each one once"),
    ({"stages": ()}, "--stages must name each one once"),
    ({"stages": ("train",)}, "unknown game or stage 'train'"),
    ({"repetitions": 0}, "--repetitions must be between 1 and 20"),
])
def test_the_cost_benchmark_refuses_bad_options_before_measuring(options, message, monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(ROOT, "benchmarks"))
    import family_cost
    expect_error(lambda: family_cost.main(family_cost.Args(**options)), message)
