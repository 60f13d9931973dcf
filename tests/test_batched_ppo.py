"""Many PPO learners in one batch: each exactly as alone, reproducible, stopping, reporting."""

import json
import os

import numpy as np
import pytest
import torch

import train_ppo
from decomposition.options import ComboOptions
from decomposition.ppo import (BatchedPPO, PPOSettings, advantage_estimates, clip_gradients, clipped_surrogate_loss,
                               TrainingLog, discounted_sums, initial_agent, normalized, sample)
from decomposition.tasks import TaskVec
from decomposition.ppo_kernels import (ROW_CHUNK, DistinctRows, NonzeroInputs, RowChunkedLinear, SparseFirstLayer,
                                       StackedAdam, StackedPolicies, observation_keys)
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


def random_walk_observations(problems, num_envs, num_steps, seed=0):
    """Observations (L, num_steps * num_envs, D) of random play: many repeat, as in PPO's rollouts."""
    envs, rng = ComboGridVec(problems, num_envs), np.random.default_rng(seed)
    observations = [envs.reset()]
    for _ in range(num_steps - 1):
        observations.append(envs.step(rng.integers(0, 3, (len(problems), num_envs)))[0])
    return torch.as_tensor(np.concatenate(observations, axis=1))


def test_distinct_rows_hold_each_observation_once_and_give_every_row_back():
    observations = random_walk_observations(["TL-BR", "BR-TL", "TR-BL"], 8, 32)
    rows = DistinctRows.of(observations, binary=True)
    assert torch.equal(rows.spread(rows.observations), observations)
    for learner in range(3):
        count = len(torch.unique(observations[learner], dim=0))
        assert len(torch.unique(rows.observations[learner, :count], dim=0)) == count  # no repeats
        assert int(rows.inverse[learner].max()) == count - 1
    assert rows.observations.shape[1] % ROW_CHUNK == 0 and rows.observations.shape[1] < observations.shape[1]
    chosen = torch.randint(0, observations.shape[1], (3, 50), generator=torch.Generator().manual_seed(1))
    subset = rows.select(chosen)
    assert torch.equal(subset.spread(subset.observations), observations.gather(1, chosen[..., None].expand(-1, -1, 59)))
    assert subset.observations.shape[1] <= rows.observations.shape[1]


def test_observations_not_declared_binary_are_never_merged():
    observations = torch.tensor([[[0.5, 1.0], [0.5, 1.0], [0.0, 1.0]]])
    assert observation_keys(observations, binary=False).tolist() == [[0, 1, 2]]
    assert torch.equal(DistinctRows.of(observations, binary=False).inverse, torch.tensor([[0, 1, 2]]))
    ones = torch.tensor([[[1.0, 0.0, 1.0], [1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]])
    assert DistinctRows.of(ones, binary=True).inverse.tolist() == [[0, 0, 1]]  # keys 5, 5, 6


def test_row_chunked_linear_gradients_are_autograd_s_and_ignore_padding_rows():
    # the first layers' shapes, and 7 chunks of rows against 11: there a plain batched product's
    # gradient changes with the padding (tiny shapes take other paths)
    generator, rows = torch.Generator().manual_seed(0), 7 * ROW_CHUNK
    x, grad = torch.randn(3, rows, 59, generator=generator), torch.randn(3, rows, 64, generator=generator)
    weight, bias = torch.randn(3, 64, 59, generator=generator), torch.randn(3, 64, generator=generator)

    def gradients(x, grad, layer):
        inputs = [t.clone().requires_grad_() for t in (x, weight, bias)]
        layer(*inputs).backward(grad)
        return [t.grad for t in inputs]

    ours = gradients(x, grad, RowChunkedLinear.apply)
    reference = gradients(x, grad, lambda x, w, b: torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2)))
    for a, b in zip(ours, reference):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)  # sums of 224 products, in another order
    # four more chunks of rows whose gradient is zero (a neighbour's larger minibatch) change nothing
    padded = gradients(torch.cat([x, torch.randn(3, 4 * ROW_CHUNK, 59, generator=generator)], 1),
                       torch.cat([grad, torch.zeros(3, 4 * ROW_CHUNK, 64)], 1), RowChunkedLinear.apply)
    assert torch.equal(padded[0][:, :rows], ours[0])
    assert torch.equal(padded[1], ours[1]) and torch.equal(padded[2], ours[2])


def test_the_sparse_first_layer_is_the_product_and_a_minibatch_s_left_out_rows_add_nothing():
    policies = StackedPolicies([initial_agent(seed, 59, 3, 64) for seed in (0, 1)])
    rollout = DistinctRows.of(random_walk_observations(["TL-BR", "BR-TL"], 8, 64), binary=True)
    minibatch = rollout.select(torch.randperm(512, generator=torch.Generator().manual_seed(0))[:128].expand(2, -1))
    assert minibatch.nonzero.weights.sum() < len(minibatch.nonzero.weights)  # some of the rollout's rows left out
    weight, bias = policies.params["first.weight"], policies.params["first.bias"]
    sparse = SparseFirstLayer.apply(minibatch.nonzero, policies.table, weight, bias, policies.table_rows)
    dense = RowChunkedLinear.apply(minibatch.observations, weight.transpose(1, 2), bias)
    assert torch.equal(sparse, dense)  # the columns of the ones, added in the product's order, then the bias
    grad = torch.randn(sparse.shape, generator=torch.Generator().manual_seed(1))
    grad[torch.arange(grad.shape[1]) > minibatch.inverse.max(1, keepdim=True).values] = 0  # padding rows, as in PPO
    sparse_grads = torch.autograd.grad(sparse, (weight, bias), grad)
    dense_grads = torch.autograd.grad(dense, (weight, bias), grad)
    for a, b in zip(sparse_grads, dense_grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)  # sums of the same products, in another order


def test_the_gradient_on_distinct_observations_is_the_gradient_on_every_row():
    problems, settings = ["TL-BR", "BR-TL"], PPOSettings(num_envs=8)
    ppo = BatchedPPO(ComboGridVec(problems, 8), [0, 1], settings)
    observations = random_walk_observations(problems, 8, 64)
    generator = torch.Generator().manual_seed(2)
    rest = (torch.randint(0, 3, (2, 512), generator=generator), -torch.rand(2, 512, generator=generator),
            torch.randn(2, 512, generator=generator), torch.randn(2, 512, generator=generator),
            torch.randn(2, 512, generator=generator))
    distinct, every_row = DistinctRows.of(observations, binary=True), DistinctRows.of(observations, binary=False)
    assert distinct.observations.shape[1] < every_row.observations.shape[1] / 2
    torch.testing.assert_close(ppo.gradient(distinct, *rest), ppo.gradient(every_row, *rest), rtol=1e-4, atol=1e-6)


def test_stacked_policies_compute_each_agent_s_networks_and_gradients():
    agents = [initial_agent(seed, 59, 3, 64) for seed in (3, 4)]
    policies = StackedPolicies(agents)
    assert all(torch.equal(policies.state_dict(k)[name], value)
               for k, agent in enumerate(agents) for name, value in agent.state_dict().items())
    x = random_walk_observations(["TL-BR", "BL-TR"], 4, 16)
    weights = torch.randn(2, 64, 4, generator=torch.Generator().manual_seed(0))
    for k, agent in enumerate(agents):
        value = agent.critic(x[k]).squeeze(-1)
        (agent.actor(x[k]) * weights[k, :, :3]).sum().add((value * weights[k, :, 3]).sum()).backward()
    for inputs in (x, NonzeroInputs.of(x)):  # the first layer as a product, and SparseFirstLayer
        for p in policies.params.values():
            p.grad = None
        logits, values = policies.logits_and_values(inputs)
        (logits * weights[..., :3]).sum().add((values * weights[..., 3]).sum()).backward()
        for k, agent in enumerate(agents):
            torch.testing.assert_close(logits[k], agent.actor(x[k]))
            torch.testing.assert_close(values[k], agent.critic(x[k]).squeeze(-1))
            grads = {name: p.grad for name, p in agent.named_parameters()}
            grads["first.bias"] = torch.cat([grads["actor.0.bias"], grads["critic.0.bias"]])
            torch.testing.assert_close(policies.params["first.weight"].grad[k].T,  # stored input-major
                                       torch.cat([grads["actor.0.weight"], grads["critic.0.weight"]]))
            for name in ("first.bias", "actor.2.weight", "critic.2.weight", "critic.4.bias"):
                torch.testing.assert_close(policies.params[name].grad[k], grads[name])
    with torch.no_grad():  # the rollout's separate actor and critic
        torch.testing.assert_close(policies.logits(x), logits)
        torch.testing.assert_close(policies.value(x), values)


def test_stacked_adam_and_clipping_are_torch_s_per_learner_each_with_its_own_learning_rate():
    generator = torch.Generator().manual_seed(0)
    start = torch.randn(3, 1024, generator=generator)
    learning_rates = torch.tensor([1e-3, 5e-4, 1e-3])
    stacked, ours = start.clone(), StackedAdam(start, eps=1e-5)
    rows = [row.clone().requires_grad_() for row in start]
    theirs = [torch.optim.Adam([row], lr=float(rate), eps=1e-5, fused=True) for row, rate in zip(rows, learning_rates)]
    for step in range(4):
        grad = torch.randn(len(stacked), 1024, generator=generator) * (step + 1)
        grad[:, :300] = 0  # inputs a learner never sees
        clip_gradients(grad, 0.5)
        ours.step(stacked, grad, learning_rates)
        for row, optimizer, row_grad in zip(rows, theirs, grad):
            row.grad = row_grad.clone()
            optimizer.step()
        if step == 1:  # the middle learner finishes
            ours.keep([0, 2])
            stacked, learning_rates, rows, theirs = stacked[[0, 2]], learning_rates[[0, 2]], rows[::2], theirs[::2]
    for row, expected in zip(stacked, rows):
        assert torch.equal(row, expected.detach())
    grad = torch.full((2, 100), 1.0)
    clip_gradients(grad, 0.5)
    torch.testing.assert_close(torch.linalg.vector_norm(grad, dim=1), torch.full((2,), 0.5))


def test_the_clipped_surrogate_has_torch_max_s_values_and_gradient_bit_for_bit():
    generator = torch.Generator().manual_seed(0)
    advantages = normalized(torch.randn(3, 512, generator=generator))
    advantages[:, :8] = 0.0  # zero advantages: every term ties
    start = torch.exp(0.3 * torch.randn(3, 512, generator=generator))  # ratios inside and outside [0.8, 1.2]
    start[:, 8:16] = torch.tensor([0.8, 1.2]).repeat(4)  # on the clip range's edges
    weights = torch.rand(3, 512, generator=generator)
    results = []
    for loss in (lambda r: clipped_surrogate_loss(advantages, r, 0.2),
                 lambda r: torch.max(-advantages * r, -advantages * r.clamp(0.8, 1.2))):
        ratio = start.clone().requires_grad_()
        value = loss(ratio)
        (value * weights).mean(1).sum().backward()
        results.append((value.detach(), ratio.grad))
    assert ((start > 0.8) & (start < 1.2)).any() and ((start < 0.8) | (start > 1.2)).any()
    for ours, theirs in zip(*results):
        assert torch.equal(ours, theirs)


def test_advantages_are_normalised_row_by_row_whatever_the_leading_axes():
    advantages = torch.randn(4, 3, 512, generator=torch.Generator().manual_seed(1))
    together = normalized(advantages)
    assert all(torch.equal(together[:, k], normalized(advantages[:, k].contiguous())) for k in range(3))
    torch.testing.assert_close(together.std(-1), torch.ones(4, 3))


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
    ({"game": "5x5", "problems": ("ML-BR",)}, "game 5x5 has TL-BR"),
    ({"num_minibatches": 0}, "--num-minibatches must be between 1 and"),
    ({"total_timesteps": 100}, "must allow one rollout"),
    ({"learning_rate": float("nan")}, "--learning-rate must be between 0 and 1"),
])
def test_train_ppo_refuses_bad_settings(arguments, message):
    assert message in train_ppo.check_args(train_ppo.Args(**arguments))


def test_an_option_s_rewards_are_discounted_per_step_and_its_bootstrap_by_gamma_to_the_k():
    gamma, lam = 0.9, 0.5
    # one environment, two actions: an option of 3 steps (rewards 1, 2, 4), then a primitive step (reward 8)
    step_rewards = np.array([[1.0, 2.0, 4.0], [8.0, 0.0, 0.0]])
    rewards = discounted_sums(step_rewards, gamma).reshape(2, 1, 1).astype(np.float32)
    assert rewards.ravel().tolist() == pytest.approx([1 + 0.9 * 2 + 0.81 * 4, 8])
    values, next_value = np.array([[[10.0]], [[20.0]]], np.float32), np.array([[30.0]], np.float32)
    dones, steps = np.zeros((2, 1, 1), np.float32), np.array([[[3]], [[1]]])
    next_done = np.zeros((1, 1), np.float32)
    advantages = advantage_estimates(rewards, values, dones, next_value, next_done, gamma, lam, steps)
    second = 8 + 0.9 * 30 - 20                                      # one step: gamma^1
    first = (1 + 0.9 * 2 + 0.81 * 4) + 0.9 ** 3 * 20 - 10 + (0.9 * 0.5) ** 3 * second
    assert advantages.ravel().tolist() == pytest.approx([first, second])


def test_with_one_step_actions_the_advantages_are_cleanrl_s_bit_for_bit():
    rng = np.random.default_rng(0)
    rewards, values = (rng.normal(size=(16, 3, 4)).astype(np.float32) for _ in range(2))
    dones = (rng.random((16, 3, 4)) < 0.2).astype(np.float32)
    next_value, next_done = rng.normal(size=(3, 4)).astype(np.float32), np.ones((3, 4), np.float32)
    gamma, lam = 0.99, 0.95
    expected, last = np.zeros_like(rewards), np.zeros_like(next_value)  # CleanRL ppo.py's loop
    for t in reversed(range(16)):
        non_terminal = 1.0 - (next_done if t == 15 else dones[t + 1])
        following = next_value if t == 15 else values[t + 1]
        delta = rewards[t] + gamma * following * non_terminal - values[t]
        expected[t] = last = delta + gamma * lam * non_terminal * last
    ones = np.ones(rewards.shape, dtype=np.int64)
    advantages = advantage_estimates(rewards, values, dones, next_value, next_done, gamma, lam, ones)
    assert np.array_equal(advantages, expected)
    assert np.array_equal(discounted_sums(rewards[..., None].astype(np.float64), gamma), rewards)


def test_evaluation_during_training_changes_no_weight():
    settings = PPOSettings(num_envs=4, num_steps=32, total_timesteps=4 * 32 * 4, optimal_checks=0)

    def run(evaluate_at):
        envs = TaskVec("random", [3, 4], settings.num_envs, ComboOptions())
        return BatchedPPO(envs, [3, 4], settings, learning_rates=[1e-3, 2e-3]).train(evaluate_at=evaluate_at)

    plain, evaluated = run(()), run((128, 256, 384, 512))
    assert all(same_weights(a, b) for a, b in zip(plain, evaluated))
    assert [e["point"] for e in evaluated[0].evaluations] == [128, 256, 384, 512] and not plain[0].evaluations
    assert not same_weights(plain[0], run(())[1])  # the seed and rate matter


def test_an_iteration_that_passes_two_evaluation_points_records_its_evaluation_at_both():
    log = TrainingLog(2, evaluate_at=(10, 20, 30))
    log.steps[:] = (25, 5)
    assert log.due([0, 1]) == [0]
    log.record_evaluations([0], [{"spl": 0.5}])
    assert log.evaluations == [[{"point": 10, "spl": 0.5}, {"point": 20, "spl": 0.5}], []] and log.due([0, 1]) == []
