"""The extraction of question 1 and 2 (main.py): each combo's function masked out of every network.

For each combo and each network of a game, a mask puts every hidden neuron in one of three states
(inactive, active, part of the program); `learn_masks` learns all of them (and, with mask_inputs,
a keep/drop mask over the inputs) as one batch from the networks' solutions cut into combos, then
scores each on every test state (Game.test_states). main.py's `train_masks` is the assignment's
one-mask procedure; `training_data` and `scored` are what both share.

    settings = ExtractionSettings(game="6x6", model_paths=(...))
    result = learn_masks(settings)        # an Extraction: masks, scores, losses, per-state results
"""

import os
import sys
from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np
import torch
from tabulate import tabulate

from combogrid import GAMES, ComboGridBatch, ComboGym, default_models_folder, sized_game
from decomposition.masks import MaskSettings, StackedActors, fit_masks, input_fills, one_hot_of_largest, stack_trajectories
from decomposition.script import POSITIVE, Range, game_fault, model_paths_fault
from ppo_agent import greedy_actions, load_agent, program_mask
from trajectory import Trajectory


@dataclass
class ExtractionSettings(MaskSettings):
    """What an extraction depends on (main.py's options without its output and study options)."""
    seed: int = 0
    """seed of the mask initialisation; seed k of --num-seeds uses seed + k"""
    hidden_size: int = 64
    """hidden neurons of the networks"""
    game: str = "5x5"
    """the game (combogrid.GAMES: 5x5, 6x6, 10x10, 5x5-combo4, 5x5-hallways, 5x5-block, 5x5-12problems)"""
    game_width: Optional[int] = None
    """rows and columns of the grid (default: the game's)"""
    sequence_length: Optional[int] = None
    """actions in a combo: the chunk size of the training data and the length of a test rollout
    (default and only value: the game's combo length)"""
    model_paths: tuple[str, ...] = ()
    """checkpoints of the networks, one per problem of the game in its order (TL-BR, TR-BL, BR-TL,
    BL-TR for 5x5); default: models/PROBLEM.pt for 5x5, runs/models-GAME/PROBLEM.pt for another game"""
    num_seeds: int = 1
    """independent seeds of the whole extraction; tables then show mean ± standard deviation"""
    mask_inputs: bool = False
    """also learn a keep/drop mask over the input features (see README: the answer to question 2)"""
    input_fill: Literal["mean", "zero"] = "mean"
    """with --mask-inputs: what a dropped feature is replaced by, its mean over the combo's
    training data (the function stops depending on it) or 0"""

    RANGES = {**MaskSettings.RANGES, "num_seeds": POSITIVE, "hidden_size": POSITIVE, "game_width": Range(2, 100)}

    def fault(self):
        fault = super().fault() or game_fault(self, self.game_width, self.game_width)
        if fault:
            return fault
        game = game_of(self)
        fault = model_paths_fault(self.model_paths, game)
        if fault:
            return fault
        if self.sequence_length not in (None, game.combo_length):
            return f"--sequence-length must be {game.combo_length}, the length of game {game.name}'s combos"
        if not 0 <= self.seed <= 2**63 - 1 - self.num_seeds:
            return f"--seed must be between 0 and 2**63 - 1 - num_seeds, got {self.seed}"
        return None


class NoTrainingData(Exception):
    """No solution trajectory contains one of the combos, so its masks cannot be learned."""


class WrongNetwork(Exception):
    """A network whose greedy policy does not solve its own problem: no solution to learn from."""


class STESoftmax(torch.autograd.Function):
    """Straight-through estimator: forward, one-hot of the largest probability in each column
    (dim -2, the mask's states); backward, the gradient passes through unchanged."""

    @staticmethod
    def forward(ctx, probs):
        return one_hot_of_largest(probs)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output


def discretize(theta):
    """One-hot mask from learnable logits: softmax over the states, then the estimator."""
    return STESoftmax.apply(torch.softmax(theta, dim=-2))


def game_of(settings):
    """The game the extraction plays: --game, resized by --game-width."""
    return sized_game(settings.game, settings.game_width, settings.game_width)


def model_paths(settings):
    """--model-paths, or the game's default networks."""
    game = game_of(settings)
    return settings.model_paths or tuple(os.path.join(default_models_folder(game), f"{p}.pt") for p in game.problems)


def combo_of(actions, game):
    """Name of the game's combo made by these actions, or None."""
    return next((name for name, combo in game.combos if tuple(actions) == combo), None)


def combo_training_sets(trajectories, game):
    """Cut each solution into chunks of a combo's length; each chunk that is a combo goes to that
    combo's training set. Returns {combo name: Trajectory}."""
    training_sets = {name: Trajectory() for name in game.combo_names}
    for problem, trajectory in zip(game.problems, trajectories):
        skipped = []
        for first in range(0, trajectory.get_length(), game.combo_length):
            chunk = trajectory[first:first + game.combo_length]
            name = combo_of(chunk.get_actions(), game)
            if name is None:
                skipped.append((first, chunk.get_actions()))
            else:
                training_sets[name] = training_sets[name] + chunk
        if skipped:
            first, actions = skipped[0]
            print(f"warning: {problem}: skipped {len(skipped)} chunk(s) of its solution that are not "
                  f"combos (the first, at step {first}: {actions})", file=sys.stderr)
    return training_sets


def solves(agent, problem, game):
    """The network's greedy episode on `problem`, and whether it reaches the goal."""
    with torch.no_grad():
        env = ComboGym(problem=problem, game=game)
        trajectory = agent.run(env)
    return trajectory, bool(env.game.at_goal()[0])


def solution_trajectories(agents, args):
    """Each network's greedy solution of its own problem. A network that does not reach its goal
    is an error naming its checkpoint and what it does instead."""
    trajectories, game = [], game_of(args)
    for agent, problem, path in zip(agents, game.problems, model_paths(args)):
        trajectory, reached = solves(agent, problem, game)
        if not reached:
            others = [other for other in game.problems if other != problem and solves(agent, other, game)[1]]
            if others:
                raise WrongNetwork(f"{path} should solve {problem} but solves {', '.join(others)} instead: the "
                                   f"order of --model-paths looks wrong (expected {', '.join(game.problems)})")
            raise WrongNetwork(f"{path} does not solve {problem}: its greedy policy does not reach the goal "
                               f"within {trajectory.get_length()} steps")
        trajectories.append(trajectory)
    return trajectories


def load_agents(args):
    """The networks of --model-paths, in the game's problem order."""
    game = game_of(args)
    return [load_agent(path, ComboGym(problem=problem, game=game), args.hidden_size)
            for path, problem in zip(model_paths(args), game.problems)]


def initial_logits(settings, seeds, networks, inputs):
    """Mask logits drawn from each seed's own generator: neuron (S, C, A, 3, H) and, with
    --mask-inputs, input (S, C, A, 2, D), else None. Both engines start from these."""
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    shape = (len(game_of(settings).combos), networks)
    neuron = torch.stack([torch.randn(*shape, 3, settings.hidden_size, generator=g) for g in generators])
    if not settings.mask_inputs:
        return neuron, None
    return neuron, torch.stack([torch.randn(*shape, 2, inputs, generator=g) for g in generators])


@dataclass
class Extraction:
    """Everything one run measured. Shapes: S seeds, C combos, A networks, T test states."""
    seeds: list
    masked_score: np.ndarray     # (S, C, A) fraction of the combo's actions the masked network takes
    original_score: np.ndarray   # (C, A) the same for the unmasked network
    init_loss: np.ndarray        # (S, C, A) training loss of the initial mask
    best_loss: np.ndarray        # (S, C, A) training loss of the returned mask
    loss_curves: np.ndarray      # (steps, S, C, A)
    whole_combo: np.ndarray   # (S, C, A, T) whether the masked network takes the whole combo
    neuron_masks: torch.Tensor   # (S, C, A, 3, H)
    training_pairs: list         # (C,) size of each combo's training set
    game: object                 # the combogrid.Game played
    input_masks: Optional[torch.Tensor] = None  # (S, C, A, D) 1 = kept
    input_fill: Optional[torch.Tensor] = None   # (C, D) value of a dropped input

    def records(self):
        """One dict per (seed, combo, network), as results.json stores them."""
        records = []
        for s, seed in enumerate(self.seeds):
            for c, name in enumerate(self.game.combo_names):
                for a, problem in enumerate(self.game.problems):
                    record = {"combo": name, "base_model": problem, "seed": seed,
                              "masked_score": float(self.masked_score[s, c, a]),
                              "original_score": float(self.original_score[c, a]),
                              "init_loss": float(self.init_loss[s, c, a]),
                              "best_loss": float(self.best_loss[s, c, a])}
                    if self.input_masks is not None:
                        record["kept_inputs"] = torch.nonzero(self.input_masks[s, c, a]).flatten().tolist()
                    records.append(record)
        return records


@dataclass
class TrainingData:
    """The masks' training data: the networks, their solutions cut into combos, and the initial logits."""
    agents: list
    game: object
    training_sets: dict          # {combo name: Trajectory}
    observations: torch.Tensor   # stacked per combo (stack_trajectories)
    actions: torch.Tensor
    weights: torch.Tensor
    seeds: list
    neuron_theta: torch.Tensor   # (S, C, A, 3, H)
    input_theta: Optional[torch.Tensor]


def training_data(settings, agents=None):
    """The training data of every (seed, combo, network) mask; `agents` are the game's networks,
    loaded from settings.model_paths when not given."""
    settings.checked()
    agents, game = load_agents(settings) if agents is None else agents, game_of(settings)
    training_sets = combo_training_sets(solution_trajectories(agents, settings), game)
    missing = [name for name in game.combo_names if training_sets[name].get_length() == 0]
    if missing:
        raise NoTrainingData(f"no training data for combo {missing[0]}: no network's solution contains it")
    observations, actions, weights = stack_trajectories([training_sets[name] for name in game.combo_names])
    seeds = [settings.seed + k for k in range(settings.num_seeds)]
    neuron_theta, input_theta = initial_logits(settings, seeds, len(agents), observations.shape[-1])
    return TrainingData(agents, game, training_sets, observations, actions, weights, seeds, neuron_theta, input_theta)


def learn_masks(settings, agents=None):
    """Learn a mask per (seed, combo, network) from the solutions as one batch (fit_masks), then
    score every mask. Returns an Extraction."""
    data = training_data(settings, agents)
    input_theta, input_fill = data.input_theta, None
    if input_theta is not None:
        input_fill = input_fills(data.observations, data.weights, settings.input_fill)
        input_theta = torch.nn.Parameter(input_theta)
    neuron_masks, input_masks, init_loss, best_loss, curves = fit_masks(
        StackedActors(data.agents), data.observations, data.actions, data.weights,
        torch.nn.Parameter(data.neuron_theta), input_theta, settings, data.game.combo_names, discretize, input_fill)
    return scored(data, neuron_masks.detach(), None if input_masks is None else input_masks.detach(),
                  input_fill, init_loss, best_loss, curves)


def scored(data, neuron_masks, input_masks, input_fill, init_loss, best_loss, curves):
    """The Extraction of learned masks: every mask scored on every test state."""
    masked_score, original_score, whole_combo = score_masks(
        StackedActors(data.agents), neuron_masks, input_masks, input_fill, data.game)
    return Extraction(
        seeds=data.seeds, masked_score=masked_score, original_score=original_score,
        init_loss=init_loss.detach().numpy(), best_loss=best_loss.detach().numpy(),
        loss_curves=curves.detach().numpy(), whole_combo=whole_combo,
        neuron_masks=neuron_masks, input_masks=input_masks, input_fill=input_fill, game=data.game,
        training_pairs=[data.training_sets[name].get_length() for name in data.game.combo_names])


@torch.no_grad()
def rollout_masks(actors, neuron_masks, input_masks, game, input_fill=0.0):
    """Greedy rollouts of a combo's length of actions from every test state, under every mask.

    neuron_masks (M, A, 3, H), input_masks (M, A, D) or None, with the values of dropped inputs
    input_fill (M, 1, D). The games advance with the actions taken; a game stops being compared
    once its goal is reached.
    Returns actions and compared, both (M, A, T, L) for T test states and L steps.
    """
    masks, networks = neuron_masks.shape[:2]
    agent_cells, goals = game.test_states()
    copies = masks * networks
    games = ComboGridBatch(np.tile(agent_cells, (copies, 1)), np.tile(goals, (copies, 1)), game)
    shape = (masks, networks, len(agent_cells), game.combo_length)
    actions, compared = np.zeros(shape, dtype=np.int64), np.zeros(shape, dtype=bool)
    alive = np.ones(copies * len(agent_cells), dtype=bool)
    for step in range(game.combo_length):
        observations = torch.from_numpy(games.observations()).view(masks, networks, len(agent_cells), -1)
        logits = actors.logits(actors.pre_activations(observations, input_masks, input_fill), neuron_masks)
        taken = greedy_actions(logits).reshape(-1).numpy()
        actions[..., step], compared[..., step] = taken.reshape(shape[:3]), alive.reshape(shape[:3])
        _, terminated, _ = games.step(taken)
        alive &= ~terminated
    return actions, compared


def score_masks(actors, neuron_masks, input_masks, input_fill, game):
    """Score masks (S, C, A, 3, H), and the original networks, on every test state.

    Returns the masked scores (S, C, A), the original scores (C, A) and, per test state,
    whether the masked network takes the whole combo (S, C, A, T).
    """
    seeds, combos, networks = neuron_masks.shape[:3]
    masks, inputs = seeds * combos, actors.w1.shape[1]
    # the S x C masks of each network, and the original network as one more mask
    all_neuron = torch.cat([neuron_masks.reshape(masks, networks, 3, -1),
                            program_mask(neuron_masks.shape[-1]).expand(1, networks, 3, -1)])
    all_input, all_fill = None, 0.0
    if input_masks is not None:
        all_input = torch.cat([input_masks.reshape(masks, networks, -1), torch.ones(1, networks, inputs)])
        all_fill = torch.cat([input_fill.repeat(seeds, 1), torch.zeros(1, inputs)])[:, None, :]
    taken, compared = rollout_masks(actors, all_neuron, all_input, game, all_fill)
    combo_actions = game.combo_actions          # (C, L)

    masked_taken = taken[:-1].reshape(seeds, combos, networks, -1, game.combo_length)
    masked_compared = compared[:-1].reshape(masked_taken.shape)
    masked_match = (masked_taken == combo_actions[None, :, None, None, :]) & masked_compared
    original_match = (taken[-1][None] == combo_actions[:, None, None, :]) & compared[-1][None]
    return (masked_match.sum((-1, -2)) / masked_compared.sum((-1, -2)),
            original_match.sum((-1, -2)) / compared[-1].sum((-1, -2))[None],
            masked_match.all(-1))

def score_tables(masked_score, original_score, game):
    """The tables, one per combo, as printed: masked (S, C, A) and original (C, A) scores."""
    tables = []
    for c, name in enumerate(game.combo_names):
        rows = []
        for a, problem in enumerate(game.problems):
            masked = masked_score[:, c, a]
            cell = masked[0] if len(masked) == 1 else f"{masked.mean():.4f} ± {masked.std():.4f}"
            rows.append([name, cell, original_score[c, a], problem])
        tables.append(tabulate(rows, headers=["Sequence", "Masked Score", "Original Score", "Base Model"],
                               tablefmt="grid"))
    return tables


def group_means(values, game):
    """Per seed, the mean of values (S, C, A) over the needed and over the not-needed pairs (Game.needed,
    Game.not_needed)."""
    return values[:, game.needed].mean(1), values[:, game.not_needed].mean(1)


def summary_table(masked_score, best_loss, game, kept_inputs=None):
    """Needed versus not-needed (combo, network) pairs: masked score and training loss.
    Arrays are (S, C, A); kept_inputs counts each mask's kept input features."""
    lines = [f"Summary over {len(masked_score)} seed(s): mean over the (combo, network) pairs of each "
             "group, then mean ± std over seeds"]
    groups = zip(("needed by the network's problem", "not needed"), group_means(masked_score, game),
                 group_means(best_loss, game))
    for label, score, loss in groups:
        lines.append(f"  combo {label:<32} masked score {score.mean():.4f} ± {score.std():.4f}   "
                     f"best training loss {loss.mean():.4f} ± {loss.std():.4f}")
    if kept_inputs is not None:
        lines.append(f"  input features kept: {kept_inputs.mean():.2f} on average")
    return "\n".join(lines)


def memory_estimate(settings):
    """Bytes a run needs, roughly: measured here as 260 MB, plus 4.5 MB per seed on the 5 x 5 grid,
    plus the loss curves (4 bytes per step, mask and seed). The part per seed is mostly the
    evaluation's observations and activations on every test state, which grow with the grid."""
    def evaluation_size(game, hidden):
        return len(game.test_states()[0]) * (game.observation_size + 2 * hidden)
    game = game_of(settings)
    per_seed = 4.5e6 * max(1.0, evaluation_size(game, settings.hidden_size) / evaluation_size(GAMES["5x5"], 64))
    return 260e6 + settings.num_seeds * (per_seed + settings.mask_learning_steps * len(game.combos) * len(game.problems) * 4)
