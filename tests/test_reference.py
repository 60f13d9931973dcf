"""The assignment's one-mask procedure (main.train_masks, --reference) against the batched engine."""

import dataclasses

import numpy as np
import pytest
import torch

import main
from decomposition import extraction
from combogrid import DEFAULT_GAME
from ppo_agent import PPOAgent

STEPS = 100


@pytest.fixture(scope="module")
def both_engines(agents):
    """The same 3 seeds x 16 (combo, network) masks, learned by --reference and by the default."""
    args = main.Args(mask_learning_steps=STEPS, log_every=0, num_seeds=3, seed=4)
    calls = []
    original = PPOAgent._get_action_with_mask

    def counted(self, x, mask):
        calls.append(len(x))
        return original(self, x, mask)

    PPOAgent._get_action_with_mask = counted
    try:
        reference = main.learn_masks(dataclasses.replace(args, reference=True), agents)
    finally:
        PPOAgent._get_action_with_mask = original
    return reference, main.learn_masks(args, agents), calls


@pytest.mark.slow
def test_reference_goes_through_the_masked_forward_pass(both_engines):
    _, _, calls = both_engines
    assert len(calls) == 3 * 16 * STEPS           # one batched call per gradient step of every mask
    assert set(calls) == {24}                     # each on the combo's 24 training pairs


@pytest.mark.slow
def test_batched_engine_gives_the_same_masks(both_engines):
    reference, batched, _ = both_engines
    assert reference.neuron_masks.shape == batched.neuron_masks.shape == (3, 4, 4, 3, 64)
    assert torch.equal(reference.neuron_masks, batched.neuron_masks)
    np.testing.assert_allclose(reference.init_loss, batched.init_loss, rtol=1e-5)
    np.testing.assert_allclose(reference.best_loss, batched.best_loss, rtol=1e-5)
    np.testing.assert_allclose(reference.loss_curves, batched.loss_curves, rtol=1e-4, atol=1e-6)
    assert extraction.score_tables(reference.masked_score, reference.original_score, DEFAULT_GAME) == \
        extraction.score_tables(batched.masked_score, batched.original_score, DEFAULT_GAME)


def test_train_masks_keeps_the_mask_that_produced_the_lowest_loss(agents):
    args = main.Args(mask_learning_steps=STEPS, log_every=0)
    trajectory = extraction.combo_training_sets(extraction.solution_trajectories(agents, args), DEFAULT_GAME)["Up"]
    torch.manual_seed(3)
    losses = []
    mask, init_loss, best_loss = main.train_masks(agents[2], trajectory, args, losses=losses)
    assert len(losses) == STEPS and init_loss == losses[0] and best_loss == min(losses) < init_loss
    _, logits = agents[2]._get_action_with_mask(torch.tensor(np.array(trajectory.get_state_sequence())), mask)
    recomputed = torch.nn.CrossEntropyLoss()(logits, torch.tensor(trajectory.get_actions()))
    assert recomputed.item() == best_loss  # the kept mask is the one that produced best_loss


def test_train_masks_starts_from_the_given_logits(agents):
    args = main.Args(mask_learning_steps=1, log_every=0)
    trajectory = extraction.combo_training_sets(extraction.solution_trajectories(agents, args), DEFAULT_GAME)["Left"]
    start = torch.randn(3, 64)
    mask, _, _ = main.train_masks(agents[0], trajectory, args, initial_logits=start)
    assert torch.equal(mask, extraction.discretize(start))  # one step: the best mask is the initial one
