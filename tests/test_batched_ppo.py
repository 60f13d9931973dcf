"""Many PPO learners in one batch: each exactly as alone, reproducible, stopping, reporting."""

import json
import os

import numpy as np
import pytest
import torch

import train_ppo
from batched_ppo import BatchedPPO, PPOSettings, initial_agent, sample
from combogrid import PROBLEMS, ComboGridVec, ComboGym
from conftest import ROOT
from ppo_agent import PPOAgent, load_agent

TINY = PPOSettings(num_envs=4, num_steps=32, total_timesteps=4 * 32 * 3, optimal_checks=0)


class ScriptedChecks(ComboGridVec):
    """ComboGridVec whose greedy checks succeed from a given iteration on, per original learner."""

    def __init__(self, problems, num_envs, solved_from):
        super().__init__(problems, num_envs)
        self.learners, self.solved_from, self.checks = list(range(len(problems))), solved_from, 0

    def keep(self, learners):
        super().keep(learners)
        self.learners = [self.learners[k] for k in learners]

    def greedy_solved(self, act):
        self.checks += 1
        return np.array([self.checks >= self.solved_from[i] for i in self.learners])


def train(problems, seeds, settings=TINY, envs=None):
    envs = envs or ComboGridVec(problems, settings.num_envs)
    return BatchedPPO(envs, seeds, settings).train()


def same_weights(first, second):
    return all(torch.equal(first.state_dict[key], second.state_dict[key]) for key in first.state_dict)


def test_a_learner_is_the_same_alone_and_beside_others():
    alone = train(["TR-BL"], [7])[0]
    beside = train(["BL-TR", "TR-BL", "TL-BR"], [3, 7, 5])
    assert same_weights(alone, beside[1])
    assert not same_weights(alone, train(["TR-BL"], [8])[0])  # the seed matters
    assert alone.steps == beside[1].steps == TINY.total_timesteps


def test_a_learner_is_the_same_when_others_leave_the_batch():
    settings = PPOSettings(num_envs=4, num_steps=32, total_timesteps=4 * 32 * 4, optimal_checks=1)
    alone = train(["TL-BR"], [2], settings, ScriptedChecks(["TL-BR"], 4, [99]))[0]
    mixed = train(["BR-TL", "TL-BR", "BL-TR"], [1, 2, 3], settings,
                  ScriptedChecks(["BR-TL", "TL-BR", "BL-TR"], 4, [1, 99, 2]))
    assert [r.steps for r in mixed] == [128, 512, 256]  # stopped after 1 and 2 iterations, or the budget
    assert [r.solved for r in mixed] == [True, False, True]
    assert same_weights(alone, mixed[1])


def test_stopping_needs_consecutive_optimal_checks():
    settings = PPOSettings(num_envs=4, num_steps=32, total_timesteps=4 * 32 * 10, optimal_checks=3)
    result = train(["TL-BR"], [0], settings, ScriptedChecks(["TL-BR"], 4, [4]))[0]
    assert result.steps == 4 * 32 * 6 and result.solved and result.first_solved_step == 4 * 32 * 4


def test_same_seed_gives_bit_identical_weights():
    first, second = train(list(PROBLEMS), [0, 1, 2, 3]), train(list(PROBLEMS), [0, 1, 2, 3])
    assert all(same_weights(a, b) for a, b in zip(first, second))


def test_learners_start_from_ppo_agent_initialisation():
    agent = initial_agent(5, 59, 3, 64)
    torch.manual_seed(5)
    reference = PPOAgent(ComboGym(), 64)
    assert all(torch.equal(agent.state_dict()[k], v) for k, v in reference.state_dict().items())


def test_sampling_follows_the_policy():
    logits = torch.log(torch.tensor([[[0.2, 0.5, 0.3]]])).expand(1, 30000, 3)
    actions = sample(logits, torch.rand(1, 30000, generator=torch.Generator().manual_seed(0)))
    frequencies = np.bincount(actions.flatten().numpy(), minlength=3) / 30000
    np.testing.assert_allclose(frequencies, [0.2, 0.5, 0.3], atol=0.01)


def test_greedy_check_recognises_the_shipped_networks():
    agents = [load_agent(os.path.join(ROOT, "models", f"{p}.pt"), ComboGym(problem=p)) for p in PROBLEMS]

    def act_with(order):
        def act(observations):
            with torch.no_grad():
                return np.stack([agents[a].actor(torch.as_tensor(observations[k])).argmax(-1).numpy()
                                 for k, a in enumerate(order)])
        return act

    envs = ComboGridVec(list(PROBLEMS), 1)
    assert envs.greedy_solved(act_with([0, 1, 2, 3])).tolist() == [True] * 4
    assert envs.greedy_solved(act_with([1, 0, 3, 2])).tolist() == [False] * 4


def test_train_ppo_names_a_learner_that_did_not_finish(tmp_path, capsys):
    args = train_ppo.Args(problems=("TL-BR", "BL-TR"), num_sets=2, save_dir=str(tmp_path), num_envs=4,
                          num_steps=32, total_timesteps=256)
    train_ppo.main(args)
    out = capsys.readouterr().out
    assert "NOT optimal" in out and "set_1/BL-TR.pt (seed 7, 256 steps)" in out
    record = json.loads((tmp_path / "set_1" / "training.json").read_text())
    assert record["networks"]["BL-TR"] == {**record["networks"]["BL-TR"], "seed": 7, "optimal": False}
    loaded = load_agent(str(tmp_path / "set_0" / "TL-BR.pt"), ComboGym(problem="TL-BR"))
    assert isinstance(loaded, PPOAgent)


@pytest.mark.parametrize("arguments,message", [
    ({"problems": ("TL-BR", "TL-BR")}, "at most once"),
    ({"problems": ()}, "at least one"),
    ({"num_minibatches": 0}, "--num-minibatches must be a positive number"),
    ({"total_timesteps": 100}, "must allow one rollout"),
    ({"learning_rate": float("nan")}, "--learning-rate must be a positive number"),
])
def test_train_ppo_refuses_bad_settings(arguments, message):
    assert message in train_ppo.check_args(train_ppo.Args(**arguments))
