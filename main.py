"""Extract each combo's sub-function from the four ComboGrid networks by masking hidden neurons.

    python main.py                          # the assignment: 16 masks, four score tables
    python main.py --reference              # the same, one mask at a time through train_masks
    python main.py --num-seeds 10           # mean and spread over 10 seeds, with a summary
    python main.py --mask-inputs            # also learn which input features the function keeps
    python main.py --save-dir out           # results.json, masks.pt and figures in out/
    python main.py --sets-dir S             # both masking schemes on every network set of S

For each combo (Up, Down, Left, Right) and each network, a mask puts every hidden neuron in one
of three states (inactive, active, part of the program); it is learned with softmax, a
straight-through estimator and Adam so that the masked network reproduces the combo's actions
on the networks' solution trajectories. Each mask is then scored on every non-goal cell of the
four problems.

`train_masks` is the assignment's procedure, step by step, for one mask; `--reference` uses it
for every mask. By default all masks (of all combos, networks and seeds) are learned together
by decomposition.masks.fit_masks: their losses are independent and Adam is element-wise, so this
is the same computation, only batched (tests/test_reference.py compares the masks).

The script, top to bottom: the options (Args); the straight-through estimator and train_masks;
the training data (each network's solution cut into combos); learn_masks; the evaluation on every
non-goal cell (rollout_masks, score_masks); the tables and the summary over seeds; main.
"""

if __name__ == "__main__":  # first, so that a Ctrl-C while the libraries load is one line too
    from decomposition.script import stop_quietly_until_started
    stop_quietly_until_started()


import os
import sys
from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np
import torch
from tabulate import tabulate

from combogrid import (COMBO_LENGTH, COMBO_NAMES, COMBOS, NEEDED_COMBOS, PROBLEMS, ComboGridBatch, ComboGym,
                       observation_size, test_states)
from decomposition import across_sets
from decomposition.files import failure, unwritable
from decomposition.masks import Adam, StackedActors, fit_masks, input_fills, one_hot_of_largest, stack_trajectories
from decomposition.results import save_results
from decomposition.script import (NON_NEGATIVE, POSITIVE, Range, ScriptError, check, fails_on, memory_problem,
                                  out_of_range, start)
from ppo_agent import CheckpointError, greedy_actions, load_agent, program_mask
from trajectory import Trajectory


@dataclass
class Args:
    seed: int = 0
    """seed of the mask initialisation; seed k of --num-seeds uses seed + k"""
    hidden_size: int = 64
    """hidden neurons of the networks"""
    game_width: int = 5
    """rows and columns of the grid"""
    sequence_length: int = 3
    """actions in a combo: the chunk size of the training data and the length of a test rollout"""
    mask_learning_rate: float = 0.001
    """Adam learning rate of the mask parameters"""
    mask_learning_steps: int = 2000
    """gradient steps per mask"""
    model_paths: tuple[str, ...] = tuple(f"models/{problem}.pt" for problem in PROBLEMS)
    """checkpoints of the networks for TL-BR, TR-BL, BR-TL, BL-TR, in this order"""
    log_every: int = 500
    """gradient steps between two printed losses"""
    reference: bool = False
    """learn the masks one at a time with train_masks, the assignment's procedure (slower; the
    default batched run gives the same masks)"""
    num_seeds: int = 1
    """independent seeds of the whole extraction; tables then show mean ± standard deviation"""
    mask_inputs: bool = False
    """also learn a keep/drop mask over the input features (see README: the answer to question 2)"""
    input_penalty: float = 0.005
    """with --mask-inputs: loss added per kept input feature, so the smallest fitting function wins"""
    input_fill: Literal["mean", "zero"] = "mean"
    """with --mask-inputs: what a dropped feature is replaced by, its mean over the combo's
    training data (the function stops depending on it) or 0"""
    save_dir: Optional[str] = None
    """folder for results.json, masks.pt and figures (written only after a complete run)"""
    sets_dir: Optional[str] = None
    """study many network sets instead (train_ppo.py --num-sets): run both masking schemes on every
    set of this folder and summarise needed versus not-needed pairs across sets (decomposition/across_sets.py)"""


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


def train_masks(agent, trajectory, args, initial_logits=None, losses=None):
    """Learn one mask of `agent` whose masked network takes `trajectory`'s actions: the
    assignment's "Masking Neurons" procedure, step by step.

    initial_logits (3, hidden) replaces the random initialisation (to compare with the batched
    engine); `losses`, a list, receives every step's loss. Returns the mask that produced the
    lowest loss (3 x hidden, one-hot columns), the loss before optimisation and that lowest loss.
    """
    agent.eval()  # the network is fixed: only the mask is optimised
    if initial_logits is None:
        mask = torch.nn.Parameter(torch.randn(3, args.hidden_size), requires_grad=True)
    else:
        mask = torch.nn.Parameter(initial_logits.clone(), requires_grad=True)
    observations = trajectory.get_state_sequence()
    actions = trajectory.get_actions()
    loss_fn = torch.nn.CrossEntropyLoss()
    optimizer = Adam([mask], lr=args.mask_learning_rate)  # = torch.optim.Adam, see decomposition.masks
    init_loss, best_loss, best_mask = None, float("inf"), None
    for step in range(args.mask_learning_steps):
        mask_probs = torch.softmax(mask, dim=0)
        mask_discretized = STESoftmax.apply(mask_probs)
        new_trajectory = agent.run_with_mask(observations, mask_discretized, trajectory.get_length())
        mask_loss = loss_fn(torch.stack(new_trajectory.logits), torch.tensor(actions))
        loss = mask_loss.item()
        if init_loss is None:
            init_loss = loss
        if loss < best_loss:  # the mask that produced this loss, not the one after the update
            best_loss, best_mask = loss, mask_discretized
        if losses is not None:
            losses.append(loss)
        if args.log_every and step % args.log_every == 0:
            print(f"  step {step:>5}/{args.mask_learning_steps}  loss {loss:.4f}", flush=True)
        optimizer.zero_grad()
        mask_loss.backward()
        optimizer.step()
    return best_mask.detach().data, init_loss, best_loss


def combo_of(actions):
    """Name of the combo made by these actions, or None."""
    return next((name for name, combo in COMBOS.items() if tuple(actions) == combo), None)


def combo_training_sets(trajectories, sequence_length):
    """Cut each solution into chunks of `sequence_length` actions; each chunk that is a combo
    goes to that combo's training set. Returns {combo name: Trajectory}."""
    training_sets = {name: Trajectory() for name in COMBO_NAMES}
    for problem, trajectory in zip(PROBLEMS, trajectories):
        skipped = []
        for first in range(0, trajectory.get_length(), sequence_length):
            chunk = trajectory[first:first + sequence_length]
            name = combo_of(chunk.get_actions())
            if name is None:
                skipped.append((first, chunk.get_actions()))
            else:
                training_sets[name] = training_sets[name] + chunk
        if skipped:
            first, actions = skipped[0]
            print(f"warning: {problem}: skipped {len(skipped)} chunk(s) of its solution that are not "
                  f"combos (the first, at step {first}: {actions})", file=sys.stderr)
    return training_sets


def solves(agent, problem, args):
    """The network's greedy episode on `problem`, and whether it reaches the goal."""
    with torch.no_grad():
        env = ComboGym(args.game_width, args.game_width, problem)
        trajectory = agent.run(env)
    return trajectory, bool(env.game.at_goal()[0])


def solution_trajectories(agents, args):
    """Each network's greedy solution of its own problem. A network that does not reach its goal
    is an error naming its checkpoint and what it does instead."""
    trajectories = []
    for agent, problem, path in zip(agents, PROBLEMS, args.model_paths):
        trajectory, reached = solves(agent, problem, args)
        if not reached:
            others = [other for other in PROBLEMS if other != problem and solves(agent, other, args)[1]]
            if others:
                raise WrongNetwork(f"{path} should solve {problem} but solves {', '.join(others)} instead: the "
                                   f"order of --model-paths looks wrong (expected {', '.join(PROBLEMS)})")
            raise WrongNetwork(f"{path} does not solve {problem}: its greedy policy does not reach the goal "
                               f"within {trajectory.get_length()} steps")
        trajectories.append(trajectory)
    return trajectories


def load_agents(args):
    """The four networks of --model-paths, in canonical problem order."""
    return [load_agent(path, ComboGym(args.game_width, args.game_width, problem), args.hidden_size)
            for path, problem in zip(args.model_paths, PROBLEMS)]


def initial_logits(args, seeds, networks, inputs):
    """Mask logits drawn from each seed's own generator: neuron (S, C, A, 3, H) and, with
    --mask-inputs, input (S, C, A, 2, D), else None. Both engines start from these."""
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    shape = (len(COMBO_NAMES), networks)
    neuron = torch.stack([torch.randn(*shape, 3, args.hidden_size, generator=g) for g in generators])
    if not args.mask_inputs:
        return neuron, None
    return neuron, torch.stack([torch.randn(*shape, 2, inputs, generator=g) for g in generators])


def train_masks_one_at_a_time(agents, training_sets, seeds, neuron_theta, args):
    """--reference: every (seed, combo, network) mask through train_masks, from the same initial
    logits as the batched engine. Returns masks (S, C, A, 3, H), initial and best losses
    (S, C, A) and loss curves (steps, S, C, A)."""
    masks = torch.zeros_like(neuron_theta)
    init_loss, best_loss = torch.zeros(neuron_theta.shape[:3]), torch.zeros(neuron_theta.shape[:3])
    curves = torch.zeros(args.mask_learning_steps, *neuron_theta.shape[:3])
    for s, seed in enumerate(seeds):
        for c, name in enumerate(COMBO_NAMES):
            for a, (agent, problem) in enumerate(zip(agents, PROBLEMS)):
                if args.log_every:
                    print(f"mask for {name} on the {problem} network, seed {seed}", flush=True)
                losses = []
                masks[s, c, a], init_loss[s, c, a], best_loss[s, c, a] = train_masks(
                    agent, training_sets[name], args, neuron_theta[s, c, a], losses)
                curves[:, s, c, a] = torch.tensor(losses)
    return masks, init_loss, best_loss, curves


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
    input_masks: Optional[torch.Tensor] = None  # (S, C, A, D) 1 = kept
    input_fill: Optional[torch.Tensor] = None   # (C, D) value of a dropped input

    def records(self):
        """One dict per (seed, combo, network), as results.json stores them."""
        records = []
        for s, seed in enumerate(self.seeds):
            for c, name in enumerate(COMBO_NAMES):
                for a, problem in enumerate(PROBLEMS):
                    record = {"combo": name, "base_model": problem, "seed": seed,
                              "masked_score": float(self.masked_score[s, c, a]),
                              "original_score": float(self.original_score[c, a]),
                              "init_loss": float(self.init_loss[s, c, a]),
                              "best_loss": float(self.best_loss[s, c, a])}
                    if self.input_masks is not None:
                        record["kept_inputs"] = torch.nonzero(self.input_masks[s, c, a]).flatten().tolist()
                    records.append(record)
        return records


def learn_masks(args, agents=None):
    """Learn a mask per (seed, combo, network) from the solutions, then score every mask.

    `agents` are the four networks, loaded from args.model_paths when not given.
    """
    agents = load_agents(args) if agents is None else agents
    training_sets = combo_training_sets(solution_trajectories(agents, args), args.sequence_length)
    missing = [name for name in COMBO_NAMES if training_sets[name].get_length() == 0]
    if missing:
        raise NoTrainingData(f"no training data for combo {missing[0]}: no network's solution contains it")
    observations, actions, weights = stack_trajectories([training_sets[name] for name in COMBO_NAMES])
    seeds = [args.seed + k for k in range(args.num_seeds)]
    neuron_theta, input_theta = initial_logits(args, seeds, len(agents), observations.shape[-1])

    actors, input_masks, input_fill = StackedActors(agents), None, None
    if args.reference:
        neuron_masks, init_loss, best_loss, curves = train_masks_one_at_a_time(
            agents, training_sets, seeds, neuron_theta, args)
    else:
        if input_theta is not None:
            input_fill = input_fills(observations, weights, args.input_fill)
            input_theta = torch.nn.Parameter(input_theta)
        neuron_masks, input_masks, init_loss, best_loss, curves = fit_masks(
            actors, observations, actions, weights, torch.nn.Parameter(neuron_theta), input_theta, args,
            COMBO_NAMES, discretize, input_fill)
        neuron_masks = neuron_masks.detach()
        input_masks = None if input_masks is None else input_masks.detach()
    masked_score, original_score, whole_combo = score_masks(actors, neuron_masks, input_masks, input_fill, args)
    return Extraction(
        seeds=seeds, masked_score=masked_score, original_score=original_score,
        init_loss=init_loss.detach().numpy(), best_loss=best_loss.detach().numpy(),
        loss_curves=curves.detach().numpy(), whole_combo=whole_combo,
        neuron_masks=neuron_masks, input_masks=input_masks, input_fill=input_fill,
        training_pairs=[training_sets[name].get_length() for name in COMBO_NAMES])


@torch.no_grad()
def rollout_masks(actors, neuron_masks, input_masks, args, input_fill=0.0):
    """Greedy rollouts of `sequence_length` actions from every test state, under every mask.

    neuron_masks (M, A, 3, H), input_masks (M, A, D) or None, with the values of dropped inputs
    input_fill (M, 1, D). The games advance with the actions taken; a game stops being compared
    once its goal is reached.
    Returns actions and compared, both (M, A, T, L) for T test states and L steps.
    """
    masks, networks = neuron_masks.shape[:2]
    agents, goals = test_states(args.game_width, args.game_width)
    copies = masks * networks
    games = ComboGridBatch(np.tile(agents, (copies, 1)), np.tile(goals, (copies, 1)),
                           args.game_width, args.game_width)
    shape = (masks, networks, len(agents), args.sequence_length)
    actions, compared = np.zeros(shape, dtype=np.int64), np.zeros(shape, dtype=bool)
    alive = np.ones(copies * len(agents), dtype=bool)
    for step in range(args.sequence_length):
        observations = torch.from_numpy(games.observations()).view(masks, networks, len(agents), -1)
        logits = actors.logits(actors.pre_activations(observations, input_masks, input_fill), neuron_masks)
        taken = greedy_actions(logits).reshape(-1).numpy()
        actions[..., step], compared[..., step] = taken.reshape(shape[:3]), alive.reshape(shape[:3])
        _, terminated, _ = games.step(taken)
        alive &= ~terminated
    return actions, compared


def score_masks(actors, neuron_masks, input_masks, input_fill, args):
    """Score masks (S, C, A, 3, H), and the original networks, on every test state.

    Returns the masked scores (S, C, A), the original scores (C, A) and, per test state,
    whether the masked network takes the whole combo (S, C, A, T).
    """
    seeds, combos, networks = neuron_masks.shape[:3]
    masks, inputs = seeds * combos, actors.w1.shape[1]
    # the S x C masks of each network, and the original network as one more mask
    all_neuron = torch.cat([neuron_masks.reshape(masks, networks, 3, -1),
                            program_mask(args.hidden_size).expand(1, networks, 3, -1)])
    all_input, all_fill = None, 0.0
    if input_masks is not None:
        all_input = torch.cat([input_masks.reshape(masks, networks, -1), torch.ones(1, networks, inputs)])
        all_fill = torch.cat([input_fill.repeat(seeds, 1), torch.zeros(1, inputs)])[:, None, :]
    taken, compared = rollout_masks(actors, all_neuron, all_input, args, all_fill)
    combo_actions = np.array([COMBOS[name] for name in COMBO_NAMES])          # (C, L)

    masked_taken = taken[:-1].reshape(seeds, combos, networks, -1, args.sequence_length)
    masked_compared = compared[:-1].reshape(masked_taken.shape)
    masked_match = (masked_taken == combo_actions[None, :, None, None, :]) & masked_compared
    original_match = (taken[-1][None] == combo_actions[:, None, None, :]) & compared[-1][None]
    return (masked_match.sum((-1, -2)) / masked_compared.sum((-1, -2)),
            original_match.sum((-1, -2)) / compared[-1].sum((-1, -2))[None],
            masked_match.all(-1))

def needed_pairs():
    """(C, A) boolean: whether network A's problem needs combo C."""
    return np.array([[name in NEEDED_COMBOS[problem] for problem in PROBLEMS] for name in COMBO_NAMES])


def score_tables(masked_score, original_score):
    """The four tables, one per combo, as printed: masked (S, C, A) and original (C, A) scores."""
    tables = []
    for c, name in enumerate(COMBO_NAMES):
        rows = []
        for a, problem in enumerate(PROBLEMS):
            masked = masked_score[:, c, a]
            cell = masked[0] if len(masked) == 1 else f"{masked.mean():.4f} ± {masked.std():.4f}"
            rows.append([name, cell, original_score[c, a], problem])
        tables.append(tabulate(rows, headers=["Sequence", "Masked Score", "Original Score", "Base Model"],
                               tablefmt="grid"))
    return tables


def group_means(values):
    """Per seed, the mean of values (S, C, A) over the needed and over the not-needed pairs."""
    needed = needed_pairs()
    return values[:, needed].mean(1), values[:, ~needed].mean(1)


def summary(masked_score, best_loss, kept_inputs=None):
    """Needed versus not-needed (combo, network) pairs: masked score and training loss.
    Arrays are (S, C, A); kept_inputs counts each mask's kept input features."""
    lines = [f"Summary over {len(masked_score)} seed(s): mean over the (combo, network) pairs of each "
             "group, then mean ± std over seeds"]
    groups = zip(("needed by the network's problem", "not needed"), group_means(masked_score),
                 group_means(best_loss))
    for label, score, loss in groups:
        lines.append(f"  combo {label:<32} masked score {score.mean():.4f} ± {score.std():.4f}   "
                     f"best training loss {loss.mean():.4f} ± {loss.std():.4f}")
    if kept_inputs is not None:
        lines.append(f"  input features kept: {kept_inputs.mean():.2f} on average")
    return "\n".join(lines)


def memory_estimate(args):
    """Bytes a run needs, roughly: measured here as 260 MB, plus 4.5 MB per seed on the 5 x 5 grid,
    plus the loss curves (4 bytes per step, mask and seed). The part per seed is mostly the
    evaluation's observations and activations on every test state, which grow with the grid."""
    def evaluation_size(width, hidden):
        return (len(PROBLEMS) * (width ** 2 - 1)) * (observation_size(width, width) + 2 * hidden)
    per_seed = 4.5e6 * max(1.0, evaluation_size(args.game_width, args.hidden_size) / evaluation_size(5, 64))
    return 260e6 + args.num_seeds * (per_seed + args.mask_learning_steps * len(COMBO_NAMES) * len(PROBLEMS) * 4)


RANGES = {"mask_learning_steps": POSITIVE, "num_seeds": POSITIVE, "hidden_size": POSITIVE, "mask_learning_rate": POSITIVE,
          "input_penalty": Range(0, 10), "log_every": NON_NEGATIVE,
          "game_width": Range(2, 100, words="between 2 and 100 (start and goal are opposite corners)")}


def check_args(args):
    """The first problem with the arguments, or None."""
    if len(args.model_paths) != len(PROBLEMS):
        return (f"--model-paths needs {len(PROBLEMS)} checkpoints ({', '.join(PROBLEMS)}), "
                f"got {len(args.model_paths)}")
    if args.reference and (args.mask_inputs or args.sets_dir is not None):
        return ("--reference learns neuron masks the assignment's way; it does not combine with --mask-inputs "
                "or --sets-dir (which runs both masking schemes)")
    if args.sets_dir is not None and (args.mask_inputs or args.model_paths != Args().model_paths):
        return "--sets-dir runs both masking schemes on the sets' own networks: drop --mask-inputs and --model-paths"
    if args.sequence_length != COMBO_LENGTH:
        return f"--sequence-length must be {COMBO_LENGTH}, the length of ComboGrid's combos"
    problem = out_of_range(args, RANGES) or memory_problem(
        memory_estimate(args), f"--num-seeds {args.num_seeds} with {args.mask_learning_steps} steps and "
        f"{args.hidden_size} hidden neurons on a {args.game_width}x{args.game_width} grid",
        "run fewer seeds at a time, with --seed to continue where the last run stopped")
    if problem:
        return problem
    if args.mask_learning_rate > 10:
        return f"--mask-learning-rate {args.mask_learning_rate} is out of range: at most 10 (the default is 0.001)"
    if not 0 <= args.seed <= 2**63 - 1 - args.num_seeds:
        return f"--seed must be between 0 and 2**63 - 1 - num_seeds, got {args.seed}"
    if args.sets_dir is not None and os.path.exists(args.sets_dir) and not os.path.isdir(args.sets_dir):
        return f"--sets-dir {args.sets_dir} exists and is not a folder"
    if args.save_dir is not None and unwritable(args.save_dir):
        return f"cannot write to --save-dir {args.save_dir}: {unwritable(args.save_dir)}"
    return None


def write(save, args, *what):
    """save(*what) into --save-dir, a failing write as one error line."""
    try:
        save(*what)
    except OSError as error:
        raise ScriptError(f"cannot write to --save-dir {args.save_dir}: {failure(error)}; its files are unchanged") from None


@fails_on(CheckpointError, NoTrainingData, WrongNetwork, across_sets.BadSetsFolder)
def main(args):
    check(check_args(args))
    if args.sets_dir is not None:  # the study across network sets (decomposition/across_sets.py)
        study = across_sets.study(args, learn_masks)
        print(across_sets.summary(study))
        if args.save_dir is not None:
            write(across_sets.save, args, study, args.save_dir)
        return
    result = learn_masks(args)
    for table in score_tables(result.masked_score, result.original_score):
        print(table)
    if len(result.seeds) > 1:
        kept = None if result.input_masks is None else result.input_masks.sum(-1).int().numpy()
        print(summary(result.masked_score, result.best_loss, kept))
    if args.save_dir is not None:
        write(save_results, args, args, result)


if __name__ == "__main__":
    start(main, Args, unchanged="--save-dir, if given, keeps its previous files")
