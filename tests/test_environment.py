"""A new environment through the interface alone: tiny_environment's corridor trained with PPO,
decomposed by discovery and its options reused on a downstream task."""

from functools import partial

import numpy as np
import pytest

from decomposition import environment
from decomposition.candidate_options import greedy_rollouts
from decomposition.discovery import FunctionSettings, choose_options
from decomposition.options import NetworkOptions
from decomposition.ppo import PPOSettings
from decomposition.processes import train_in_processes
from decomposition.reuse import LearningSettings, run_condition
from ppo_agent import load_agent, rollout
from tiny_environment import Corridor, CorridorEnvs, CorridorGames, WalkTask

GAME = Corridor()


def test_the_kit_s_environments_implement_the_interface():
    from combogrid import DEFAULT_GAME, ComboGridBatch, ComboGridVec
    from decomposition.gridworld import World, WorldGames, WorldVec, layout
    from decomposition.tasks import ComboGridTask, TaskGames, TaskVec
    world = World([layout("MiniGrid-SimpleCrossingS9N1-v0", 0)])
    implementations = {
        environment.Games: [ComboGridBatch([(0, 0)], [(1, 1)], DEFAULT_GAME), TaskGames("random", [(0, 0)], [(1, 1)]),
                            world.games([0]), WorldGames(world, [0]), CorridorGames([0], [1], 6)],
        environment.Game: [DEFAULT_GAME, world, GAME],
        environment.ProblemEnv: [DEFAULT_GAME.problem_env(0), world.problem_env(0), GAME.problem_env(0)],
        environment.SolvableEnvs: [ComboGridVec(["TL-BR"], 2), WorldVec(world, [0], 2)],
        environment.EvaluatedEnvs: [TaskVec("random", [0], 2), WorldVec(world, [0], 2)],
        environment.Task: [ComboGridTask("random"), WalkTask(GAME)]}
    for protocol, objects in implementations.items():
        for instance in objects:
            assert isinstance(instance, protocol), (protocol.__name__, type(instance).__name__)
    assert not isinstance(ComboGridVec(["TL-BR"], 2), environment.EvaluatedEnvs)  # the check can fail


def corridor_envs(starts, goals, num_envs, learners):
    return CorridorEnvs(GAME, [starts[j] for j in learners], [goals[j] for j in learners], num_envs)


@pytest.fixture(scope="module")
def networks(tmp_path_factory):
    """One PPO network per corridor problem, each solving it, saved and loaded as checkpoints."""
    import torch
    starts, goals = zip(*map(GAME.cells, GAME.problems))
    ppo = PPOSettings(total_timesteps=40_000, num_envs=4, num_steps=32, learning_rate=3e-3, optimal_checks=2)
    results = train_in_processes(partial(corridor_envs, starts, goals, ppo.num_envs), [0, 1, 2, 3], ppo, 1)
    assert all(r.solved for r in results)
    folder = tmp_path_factory.mktemp("corridor")
    agents = []
    for k, result in enumerate(results):
        torch.save({key: torch.as_tensor(v) for key, v in result.state_dict.items()}, folder / f"{k}.pt")
        agents.append(load_agent(str(folder / f"{k}.pt"), GAME.problem_env(k)))
    return agents


def test_ppo_networks_solve_the_new_environment(networks):
    for k, agent in enumerate(networks):
        trajectory = rollout(GAME.problem_env(k), agent._get_action, 20)
        assert len(trajectory) == GAME.solution_lengths()[k]


def test_discovery_and_reuse_run_on_the_new_environment(networks):
    solutions = [rollout(GAME.problem_env(k), agent._get_action, 20) for k, agent in enumerate(networks)]
    settings = FunctionSettings(max_length=3, restarts=5, mask_learning_steps=500)
    every_state = CorridorGames(*np.divmod(np.arange(GAME.width ** 2), GAME.width), GAME.width)
    choice = choose_options(networks, solutions, settings, GAME, say=lambda line: None, probe=every_state,
                            occurrences=True, polished=True)
    assert choice.chosen and choice.value < choice.compression()[0]  # the options shorten the solutions
    chosen = choice.candidates.subset(choice.chosen)
    played = greedy_rollouts(chosen, networks, every_state)
    assert (played[:, :, 0] >= 0).all()

    options = NetworkOptions([networks[a] for a in chosen.network], chosen.neuron_masks, length=chosen.length,
                             game=GAME)
    learning = LearningSettings(num_seeds=2, budget=4096, eval_points=2, processes=1)
    runs = run_condition(WalkTask(GAME), "discovered", options, 0.01, learning)
    assert [r["task"] for r in runs] == ["walk", "walk"] and all(len(r["eval_spl"]) == 2 for r in runs)
    assert all(0.0 <= r["final_training_return"] <= 1.0 for r in runs)
