"""The PPO agent: the layout of docs/game.md, checkpoints, and the shipped networks' solutions."""

import os

import numpy as np
import pytest
import torch

from combogrid import PROBLEMS, ComboGym
from conftest import ROOT
from ppo_agent import CheckpointError, PPOAgent, load_agent

# The rules once more, written independently of combogrid.py, to replay the shipped solutions.
REPLAY_MOVES = {(0, 0, 1): (-1, 0), (0, 1, 2): (1, 0), (2, 1, 0): (0, -1), (1, 0, 2): (0, 1)}
REPLAY_CORNERS = {"TL": (0, 0), "TR": (0, 4), "BR": (4, 4), "BL": (4, 0)}


def test_state_dict_layout():
    agent = PPOAgent(ComboGym(), hidden_size=64)
    shapes = {key: tuple(value.shape) for key, value in agent.state_dict().items()}
    assert shapes == {
        "critic.0.weight": (64, 59), "critic.0.bias": (64,), "critic.2.weight": (64, 64),
        "critic.2.bias": (64,), "critic.4.weight": (1, 64), "critic.4.bias": (1,),
        "actor.0.weight": (64, 59), "actor.0.bias": (64,), "actor.2.weight": (3, 64), "actor.2.bias": (3,)}


def test_action_and_value_shapes():
    agent = PPOAgent(ComboGym(), hidden_size=16)
    x = torch.zeros(5, 59)
    action, logprob, entropy, value = agent.get_action_and_value(x)
    assert action.shape == logprob.shape == entropy.shape == (5,) and value.shape == (5, 1)
    greedy, logits = agent._get_action(x[0])
    assert logits.shape == (3,) and greedy.item() == torch.argmax(logits).item()


def test_checkpoint_round_trip(tmp_path):
    env = ComboGym()
    agent = PPOAgent(env)
    path = tmp_path / "agent.pt"
    torch.save(agent.state_dict(), path)
    loaded = load_agent(str(path), env)
    x = torch.rand(4, 59)
    torch.testing.assert_close(loaded.actor(x), agent.actor(x))
    torch.testing.assert_close(loaded.critic(x), agent.critic(x))


def test_bad_checkpoints_give_one_clear_error(tmp_path):
    env = ComboGym()
    with pytest.raises(CheckpointError, match="not found: .*missing.pt"):
        load_agent(str(tmp_path / "missing.pt"), env)
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_agent(str(tmp_path / "junk.pt"), env)
    torch.save(PPOAgent(env, hidden_size=32).state_dict(), tmp_path / "small.pt")
    with pytest.raises(CheckpointError, match=r"actor.0.weight has shape \(32, 59\), expected \(64, 59\)"):
        load_agent(str(tmp_path / "small.pt"), env, hidden_size=64)


def test_run_is_greedy_and_reproducible():
    env = ComboGym(problem="TR-BL")
    torch.manual_seed(1)
    agent = PPOAgent(env)
    first, second = agent.run(env, length_cap=30), agent.run(env, length_cap=30)
    assert first.get_actions() == second.get_actions() and first.get_length() == 30


def replay(problem, actions):
    """Independent replay: the cell reached and whether every triple was a combo."""
    start, goal = (REPLAY_CORNERS[c] for c in problem.split("-"))
    row, col = start
    all_combos = True
    for i in range(0, len(actions), 3):
        triple = tuple(actions[i:i + 3])
        all_combos &= triple in REPLAY_MOVES
        dr, dc = REPLAY_MOVES.get(triple, (0, 0))
        if 0 <= row + dr < 5 and 0 <= col + dc < 5:
            row, col = row + dr, col + dc
    return (row, col) == goal, all_combos


@pytest.mark.parametrize("problem", PROBLEMS)
def test_shipped_model_solves_its_problem_optimally(problem):
    env = ComboGym(problem=problem)
    agent = load_agent(os.path.join(ROOT, "models", f"{problem}.pt"), env)
    with torch.no_grad():
        actions = agent.run(env).get_actions()
    reached, all_combos = replay(problem, actions)
    assert len(actions) == 24 and reached and all_combos


def test_shipped_checkpoints_are_plain_state_dicts():
    for problem in PROBLEMS:
        state = torch.load(os.path.join(ROOT, "models", f"{problem}.pt"), weights_only=True)
        assert all(isinstance(value, torch.Tensor) for value in state.values())
        assert np.isfinite(torch.cat([v.flatten() for v in state.values()]).numpy()).all()
