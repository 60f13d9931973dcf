"""The masked forward pass, mask training, evaluation and tables of main.py."""

import dataclasses
import os

import numpy as np
import pytest
import torch

from decomposition import masks as batched_masks
import main
from decomposition import extraction
from combogrid import DEFAULT_GAME, COMBO_NAMES, COMBOS, NEEDED_COMBOS, PROBLEMS, ComboGym
from conftest import ROOT
from decomposition.masks import StackedActors
from ppo_agent import PPOAgent, program_mask
from trajectory import Trajectory

H = 64


def make_agent(seed):
    torch.manual_seed(seed)
    agent = PPOAgent(ComboGym(), hidden_size=H)
    with torch.no_grad():  # a larger output layer than PPO's initialisation, so masks matter
        agent.actor[2].weight.mul_(100.0)
        agent.actor[2].bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    return agent.eval()


def one_state_mask(state):
    mask = torch.zeros(3, H)
    mask[state] = 1.0
    return mask


@pytest.fixture
def agent():
    return make_agent(0)


@pytest.fixture
def x():
    return torch.rand(10, 59)


def test_program_mask_is_the_original_network(agent, x):
    _, logits = agent._get_action_with_mask(x, program_mask(H))
    torch.testing.assert_close(logits, agent.actor(x))


def test_inactive_mask_gives_the_output_bias(agent, x):
    _, logits = agent._get_action_with_mask(x, one_state_mask(0))
    torch.testing.assert_close(logits, agent.actor[2].bias.expand(10, 3))


def test_active_mask_gives_the_linear_network(agent, x):
    _, logits = agent._get_action_with_mask(x, one_state_mask(1))
    linear = agent.actor[2](agent.actor[0](x))
    torch.testing.assert_close(logits, linear)
    assert not torch.allclose(linear, agent.actor(x))  # some neuron is negative: ReLU matters


def test_mixed_mask_per_neuron(agent, x):
    mask = torch.zeros(3, H)
    states = torch.arange(H) % 3
    mask[states, torch.arange(H)] = 1.0
    z = agent.actor[0](x)
    hidden = torch.where(states == 0, 0.0, torch.where(states == 1, z, torch.relu(z)))
    torch.testing.assert_close(agent._get_action_with_mask(x, mask)[1], agent.actor[2](hidden))


def test_stacked_actors_match_each_agent(x):
    agents = [make_agent(seed) for seed in range(3)]
    masks = extraction.discretize(torch.randn(3, 3, H))
    logits = StackedActors(agents).logits(StackedActors(agents).pre_activations(x[None]), masks)
    for a, agent in enumerate(agents):
        torch.testing.assert_close(logits[a], agent._get_action_with_mask(x, masks[a])[1])


def test_linear_in_mask_shortcut_equals_the_masked_network():
    actors = StackedActors([make_agent(seed) for seed in range(2)])
    z = actors.pre_activations(torch.rand(3, 1, 7, 59))                       # (C, A, N, H)
    masks = extraction.discretize(torch.randn(3, 2, 3, H))                         # (C, A, 3, H)
    shortcut = masks[..., 1:, :].flatten(-2).unsqueeze(-2) @ actors.mask_to_logits(z)
    expected = actors.logits(z, masks)                                        # (C, A, N, O)
    torch.testing.assert_close(shortcut.view(3, 2, 7, 3) + actors.b2, expected, rtol=1e-5, atol=1e-4)


def taken_pairs(agents, masks, x, actions, weights):
    """Per mask, the weighted pairs on which its network's greedy action is the training action."""
    taken = [agent._get_action_with_mask(x[k], masks[k])[0] == actions[k] for k, agent in enumerate(agents)]
    return (torch.stack(taken).float() * weights).sum(-1)


def test_polish_takes_more_training_actions_and_never_fewer():
    agents = [make_agent(seed) for seed in range(4)]
    x, actions = torch.rand(4, 12, 59), torch.randint(0, 3, (4, 12))
    weights = torch.full((4, 12), 1 / 12)
    weights[3, 6:] = 0                                    # padding counts for nothing
    start = extraction.discretize(torch.randn(4, 3, H))
    polished = batched_masks.polish_masks(StackedActors(agents), x, actions, weights, start)
    assert ((polished == 0) | (polished == 1)).all() and (polished.sum(-2) == 1).all()
    before, after = taken_pairs(agents, start, x, actions, weights), taken_pairs(agents, polished, x, actions, weights)
    assert (after >= before).all() and (after > before).any()
    # a local optimum: no single neuron's change of state takes more pairs
    for k in range(2):
        for neuron, state in [(n, s) for n in range(0, H, 8) for s in range(3)]:
            moved = polished[k:k + 1].clone()
            moved[0, :, neuron] = 0
            moved[0, state, neuron] = 1
            again = taken_pairs(agents[k:k + 1], moved, x[k:k + 1], actions[k:k + 1], weights[k:k + 1])
            assert again[0] <= after[k] + 1e-6


def test_input_masked_loss_and_gradients_match_autograd_through_the_masked_network():
    """The written-out loss and gradients of the --mask-inputs engine against autograd through
    the plain formula: inputs replaced by their fill where dropped, then the masked network."""
    actors = StackedActors([make_agent(seed) for seed in range(2)])
    seeds, combos, networks, examples, inputs = 4, 3, 2, 5, 59
    observations = (torch.rand(combos, examples, inputs) < 0.1).float()
    fill = observations.mean(1)                                                   # (C, D)
    actions, weights = torch.randint(0, 3, (combos, examples)), torch.rand(combos, examples)
    keep = (torch.rand(seeds, combos, networks, inputs) < 0.5).float().requires_grad_()
    neuron_mask = extraction.discretize(torch.randn(seeds, combos, networks, 3, H)).requires_grad_()

    z = actors.pre_activations(observations[None, :, None], keep, fill[None, :, None])
    log_probs = torch.log_softmax(actors.logits(z, neuron_mask), dim=-1)          # (S, C, A, N, O)
    targets = actions[:, None, :, None].expand(seeds, combos, networks, -1, 1)
    expected = (-log_probs.gather(-1, targets).squeeze(-1) * weights[:, None]).sum(-1)
    expected.sum().backward()

    networks_under_masks = batched_masks.InputMaskedNetworks(actors, observations, actions, weights, fill, seeds)
    torch.testing.assert_close(networks_under_masks.loss(keep.detach(), neuron_mask.detach()), expected)
    grad_keep, grad_neuron_mask = networks_under_masks.gradients()
    torch.testing.assert_close(grad_keep, keep.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grad_neuron_mask, neuron_mask.grad, rtol=1e-4, atol=1e-5)
    unused = ~networks_under_masks.used
    assert unused.any() and torch.all(grad_keep[..., unused] == 0)  # no training input sets them


def test_ste_is_one_hot_forward_and_identity_backward():
    theta = torch.randn(3, H, requires_grad=True)
    mask = extraction.discretize(theta)
    assert torch.equal(mask.sum(0), torch.ones(H))
    assert torch.equal(mask.argmax(0), theta.argmax(0))
    weights = torch.randn(3, H)
    (mask * weights).sum().backward()
    probs = torch.softmax(theta.detach(), 0)
    expected = probs * (weights - (probs * weights).sum(0))  # softmax Jacobian times the weights
    torch.testing.assert_close(theta.grad, expected)


def test_gradient_reaches_the_mask_through_the_network(agent, x):
    theta = torch.nn.Parameter(torch.randn(3, H))
    trajectory = agent.run_with_mask(list(x.numpy()), extraction.discretize(theta), 10)
    loss = torch.nn.CrossEntropyLoss()(torch.stack(trajectory.logits), torch.zeros(10, dtype=torch.long))
    loss.backward()
    assert theta.grad is not None and theta.grad.abs().sum() > 0


def test_adam_takes_the_same_steps_as_torch_adam():
    torch.manual_seed(0)
    start = torch.randn(3, H)
    ours, theirs = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    optimizers = [batched_masks.Adam([ours], lr=0.01), torch.optim.Adam([theirs], lr=0.01)]
    for _ in range(50):
        gradient = torch.randn(3, H)
        for parameter, optimizer in zip((ours, theirs), optimizers):
            optimizer.zero_grad()
            (parameter * gradient).sum().backward()
            optimizer.step()
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-7)
    assert not torch.equal(ours, start)


def test_train_masks_returns_the_best_mask(agent):
    torch.manual_seed(0)
    states = [np.eye(59, dtype=np.float32)[i] for i in range(12)]
    trajectory = Trajectory(states, [i % 3 for i in range(12)])
    args = main.Args(mask_learning_steps=300, log_every=0)
    before = {key: value.clone() for key, value in agent.state_dict().items()}
    torch.manual_seed(1)
    mask, init_loss, best_loss = main.train_masks(agent, trajectory, args)
    assert all(torch.equal(before[key], value) for key, value in agent.state_dict().items())
    assert mask.shape == (3, H) and torch.equal(mask.sum(0), torch.ones(H))
    assert best_loss < init_loss
    _, logits = agent._get_action_with_mask(torch.tensor(np.array(states)), mask)
    recomputed = torch.nn.functional.cross_entropy(logits, torch.tensor(trajectory.get_actions()))
    assert recomputed.item() == pytest.approx(best_loss, rel=1e-5)


def test_training_data_from_solutions_skips_non_combos(capsys):
    obs = [np.zeros(59, dtype=np.float32)] * 9
    solution = Trajectory(obs, [0, 0, 1, 2, 2, 2, 1, 0, 2])
    training_sets = extraction.combo_training_sets([solution], DEFAULT_GAME)
    assert training_sets["Up"].get_actions() == [0, 0, 1] and training_sets["Right"].get_actions() == [1, 0, 2]
    assert training_sets["Down"].get_length() == 0
    assert capsys.readouterr().err.count("\n") == 1


def test_test_states_cover_every_non_goal_cell():
    agents, goals = DEFAULT_GAME.test_states()
    assert len(agents) == 96
    assert not (agents == goals).all(axis=1).any()
    assert len({(tuple(a), tuple(g)) for a, g in zip(agents, goals)}) == 96


def test_rollouts_compare_288_actions_per_mask(agent):
    actors = StackedActors([agent, make_agent(1)])
    masks = torch.stack([program_mask(H).expand(2, 3, H), extraction.discretize(torch.randn(2, 3, H))])
    taken, compared = extraction.rollout_masks(actors, masks, None, DEFAULT_GAME)
    assert taken.shape == (2, 2, 96, 3) and compared.sum((-1, -2)).tolist() == [[288, 288], [288, 288]]
    # the program mask's rollouts are the original network's own greedy actions
    env = ComboGym(problem=PROBLEMS[0])
    env.reset(options={"agent": (2, 3)})
    expected = agent.run_with_mask(env, program_mask(H), 3).get_actions()
    assert taken[0, 0, 2 * 5 + 3].tolist() == expected


@pytest.fixture(scope="module")
def quick_run():
    args = main.Args(mask_learning_steps=50, log_every=0, num_seeds=2,
                     model_paths=tuple(os.path.join(ROOT, path) for path in main.model_paths(main.Args())))
    agents = extraction.load_agents(args)
    return args, agents, main.learn_masks(args, agents)


def test_learn_masks_loads_the_model_paths_itself(quick_run):
    args, _, result = quick_run
    assert extraction.score_tables(main.learn_masks(args).masked_score, result.original_score, DEFAULT_GAME) == \
        extraction.score_tables(result.masked_score, result.original_score, DEFAULT_GAME)


def test_learn_masks_shapes_and_scores(quick_run):
    _, _, result = quick_run
    assert result.masked_score.shape == (2, 4, 4) and result.original_score.shape == (4, 4)
    assert ((0 <= result.masked_score) & (result.masked_score <= 1)).all()
    assert (result.best_loss <= result.init_loss).all()
    assert len(result.records()) == 32
    # every shipped network takes its own combos on its own solution path at least
    for c, name in enumerate(COMBO_NAMES):
        for a, problem in enumerate(PROBLEMS):
            if name in NEEDED_COMBOS[problem]:
                assert result.original_score[c, a] >= 8 * 3 / 288


def test_same_seed_same_tables_other_seed_differs(quick_run):
    args, agents, result = quick_run
    again = main.learn_masks(args, agents)
    assert extraction.score_tables(again.masked_score, again.original_score, DEFAULT_GAME) == extraction.score_tables(
        result.masked_score, result.original_score, DEFAULT_GAME)
    other = main.learn_masks(dataclasses.replace(args, seed=7), agents)
    assert not np.array_equal(other.masked_score, result.masked_score)


def test_table_structure(quick_run):
    args, agents, _ = quick_run
    single = main.learn_masks(dataclasses.replace(args, num_seeds=1), agents)
    tables = extraction.score_tables(single.masked_score, single.original_score, DEFAULT_GAME)
    assert len(tables) == 4
    for name, table in zip(("Up", "Down", "Left", "Right"), tables):
        lines = table.splitlines()
        assert lines[0].startswith("+") and "=" in lines[2]
        header = [cell.strip() for cell in lines[1].strip("|").split("|")]
        assert header == ["Sequence", "Masked Score", "Original Score", "Base Model"]
        rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[3::2]]
        assert [row[0] for row in rows] == [name] * 4 and [row[3] for row in rows] == list(PROBLEMS)
        for row in rows:
            assert 0 <= float(row[1]) <= 1 and 0 <= float(row[2]) <= 1


def test_combos_in_the_scoring_order():
    assert [COMBOS[name] for name in COMBO_NAMES] == [(0, 0, 1), (0, 1, 2), (2, 1, 0), (1, 0, 2)]


def test_masks_fit_by_size_are_the_masks_fit_as_one_batch():
    agents = [make_agent(seed) for seed in range(2)]
    x, actions = torch.rand(5, 9, 59), torch.randint(0, 3, (5, 9))
    weights = torch.zeros(5, 9)
    for c, n in enumerate([9, 2, 5, 3, 2]):                # sets of different sizes, padded to 9
        weights[c, :n] = 1 / n
    theta = torch.randn(2, 5, 2, 3, H)
    settings = batched_masks.MaskSettings(mask_learning_steps=40, log_every=0)
    whole = batched_masks.fit_masks(StackedActors(agents), x, actions, weights, torch.nn.Parameter(theta.clone()),
                                    None, settings, None, extraction.discretize)
    by_size = batched_masks.fit_masks_by_size(StackedActors(agents), x, actions, weights, theta, None, settings,
                                              extraction.discretize, parts=3)
    assert torch.equal(by_size[0], whole[0]) and by_size[1] is None
    torch.testing.assert_close(by_size[2], whole[3])
