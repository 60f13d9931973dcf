"""Extract each combo's sub-function from the four ComboGrid networks by masking hidden neurons.

    python main.py                          # the assignment: 16 masks, four score tables
    python main.py --num-seeds 10           # mean and spread over 10 seeds, with a summary
    python main.py --mask-inputs            # also learn which input features the function keeps
    python main.py --save-dir out           # results.json, masks.pt and figures in out/

For each combo (Up, Down, Left, Right) and each network, a mask puts every hidden neuron in one
of three states (inactive, active, part of the program); it is learned with softmax, a
straight-through estimator and Adam so that the masked network reproduces the combo's actions
on the networks' solution trajectories. Each mask is then scored on every non-goal cell of the
four problems. All masks (of all combos, networks and seeds) are learned together as one batch:
their losses are independent and Adam is element-wise, so this is the same as learning them
one at a time, only faster.
"""

import os
import sys
from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np
import torch
import tyro
from tabulate import tabulate

from combogrid import (COMBO_LENGTH, COMBOS, MOVE_NAMES, NEEDED_MOVES, PROBLEMS, ComboGridBatch,
                       ComboGym, non_goal_cells, problem_cells)
from ppo_agent import CheckpointError, StackedActors, greedy_actions, load_agent, program_mask
from results import save_results
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


class NoTrainingData(Exception):
    """No solution trajectory contains one of the combos, so its masks cannot be learned."""


class STESoftmax(torch.autograd.Function):
    """Straight-through estimator: forward, one-hot of the largest probability in each column
    (dim -2, the mask's states); backward, the gradient passes through unchanged."""

    @staticmethod
    def forward(ctx, probs):
        # max().indices picks the first maximum like argmax, and is several times faster on CPU here
        return torch.zeros_like(probs).scatter_(-2, probs.max(dim=-2, keepdim=True).indices, 1.0)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output


class Adam:
    """torch.optim.Adam's update (default betas and eps, no weight decay), written out.

    Constructing torch.optim.Adam imports torch._dynamo, about 2 s here: longer than all the
    mask training. tests/test_masks.py checks that this takes the same steps as torch's.
    """

    def __init__(self, parameters, lr, betas=(0.9, 0.999), eps=1e-8):
        self.parameters, self.lr, self.betas, self.eps = list(parameters), lr, betas, eps
        self.first = [torch.zeros_like(p) for p in self.parameters]
        self.second = [torch.zeros_like(p) for p in self.parameters]
        self.steps = 0

    def zero_grad(self):
        for p in self.parameters:
            p.grad = None

    @torch.no_grad()
    def step(self):
        self.steps += 1
        beta1, beta2 = self.betas
        step_size = self.lr / (1 - beta1 ** self.steps)
        correction2_sqrt = (1 - beta2 ** self.steps) ** 0.5
        for p, first, second in zip(self.parameters, self.first, self.second):
            first.lerp_(p.grad, 1 - beta1)
            second.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
            p.addcdiv_(first, (second.sqrt() / correction2_sqrt).add_(self.eps), value=-step_size)


def discretize(theta):
    """One-hot mask from learnable logits: softmax over the states, then the estimator."""
    return STESoftmax.apply(torch.softmax(theta, dim=-2))


def combo_of(actions):
    """Name of the combo made by these actions, or None."""
    return next((name for name, combo in COMBOS.items() if tuple(actions) == combo), None)


def build_sequences(trajectories, sequence_length):
    """Cut each solution into chunks of `sequence_length` actions; each chunk that is a combo
    goes to that combo's training set. Returns {combo name: Trajectory}."""
    sequences = {name: Trajectory() for name in MOVE_NAMES}
    for problem, trajectory in zip(PROBLEMS, trajectories):
        skipped = []
        for start in range(0, trajectory.get_length(), sequence_length):
            chunk = trajectory[start:start + sequence_length]
            name = combo_of(chunk.get_actions())
            if name is None:
                skipped.append((start, chunk.get_actions()))
            else:
                sequences[name] = sequences[name] + chunk
        if skipped:
            start, actions = skipped[0]
            print(f"warning: {problem}: skipped {len(skipped)} chunk(s) of its solution that are not "
                  f"combos (the first, at step {start}: {actions})", file=sys.stderr)
    return sequences


def stack_trajectories(trajectories):
    """Training sets as padded tensors: observations (C, N, D), actions (C, N), and weights (C, N)
    that average each set's loss over its own pairs (0 on padding)."""
    size = max(t.get_length() for t in trajectories)
    obs_size = len(trajectories[0].get_state_sequence()[0])
    observations = torch.zeros(len(trajectories), size, obs_size)
    actions = torch.zeros(len(trajectories), size, dtype=torch.long)
    weights = torch.zeros(len(trajectories), size)
    for c, trajectory in enumerate(trajectories):
        n = trajectory.get_length()
        observations[c, :n] = torch.as_tensor(np.array(trajectory.get_state_sequence()))
        actions[c, :n] = torch.tensor(trajectory.get_actions())
        weights[c, :n] = 1.0 / n
    return observations, actions, weights


def fit_masks(actors, observations, actions, weights, neuron_theta, input_theta, args, set_names,
              input_fill=None):
    """Adam on a batch of masks; every mask has its own independent loss.

    observations (C, N, D), actions and weights (C, N): one training set per row C, named by
    set_names. neuron_theta (S, C, A, 3, H) and input_theta (S, C, A, 2, D) or None: S seeds,
    A networks; input_fill (C, D) replaces the dropped inputs. Returns the best masks seen (the
    lowest objective per mask), the initial and best cross-entropy (S, C, A), and the loss
    curves (steps, S, C, A).
    """
    parameters = [neuron_theta] + ([input_theta] if input_theta is not None else [])
    optimizer = Adam(parameters, lr=args.mask_learning_rate)
    observations = observations.unsqueeze(1)  # (C, 1, N, D): the same data for every network
    num_actions = actors.b2.shape[-1]
    if input_theta is None:
        mask_to_logits = actors.mask_to_logits(actors.pre_activations(observations))

    def masked_logits():
        """Logits (S, C, A, N, O) under the current masks, and the masks' penalty."""
        neuron_mask = discretize(neuron_theta)
        if input_theta is None:
            rows_1_2 = neuron_mask[..., 1:, :].flatten(-2).permute(1, 2, 0, 3)  # (C, A, S, 2H)
            logits = (rows_1_2 @ mask_to_logits).permute(2, 0, 1, 3)             # (S, C, A, N * O)
            return logits.reshape(*logits.shape[:3], -1, num_actions) + actors.b2, 0.0
        keep = discretize(input_theta)[..., 1, :]
        z = actors.pre_activations(observations, keep, input_fill[:, None, :])
        return actors.logits(z, neuron_mask), args.input_penalty * keep.sum(-1)

    targets = actions[:, None, :, None].expand(len(neuron_theta), *neuron_theta.shape[1:3], -1, 1)
    best_objective = torch.full(neuron_theta.shape[:-2], float("inf"))
    best_loss = torch.zeros(neuron_theta.shape[:-2])
    best_neuron = neuron_theta.detach().clone()
    best_input = None if input_theta is None else input_theta.detach().clone()
    curves = []
    for step in range(args.mask_learning_steps):
        logits, penalty = masked_logits()
        nll = -torch.log_softmax(logits, dim=-1).gather(-1, targets).squeeze(-1)  # (S, C, A, N)
        loss = (nll * weights[:, None, :]).sum(-1)                                 # (S, C, A)
        objective = loss + penalty
        with torch.no_grad():  # keep, per mask, the one with the lowest objective seen
            curves.append(loss.clone())
            better = objective < best_objective
            best_objective = torch.where(better, objective, best_objective)
            best_loss = torch.where(better, loss, best_loss)
            best_neuron = torch.where(better[..., None, None], neuron_theta, best_neuron)
            if input_theta is not None:
                best_input = torch.where(better[..., None, None], input_theta, best_input)
        if args.log_every and step % args.log_every == 0:
            log_losses(step, args.mask_learning_steps, loss.detach(), set_names)
        optimizer.zero_grad()
        objective.sum().backward()
        optimizer.step()
    curves = torch.stack(curves)
    best_input_mask = None if best_input is None else discretize(best_input)[..., 1, :]
    return discretize(best_neuron), best_input_mask, curves[0], best_loss, curves


def log_losses(step, steps, loss, set_names):
    """One line: the loss of each training set's masks, averaged over seeds and networks."""
    per_set = loss.mean(dim=(0, 2))
    print(f"step {step:>5}/{steps}  loss  " +
          "  ".join(f"{name} {value:.4f}" for name, value in zip(set_names, per_set.tolist())), flush=True)


def train_masks(agent, trajectory, args):
    """The assignment's interface: learn one mask of `agent` that fits `trajectory`'s actions.

    Returns the best mask seen (3 x hidden, one-hot columns), the loss before optimisation and
    the loss of the best mask.
    """
    agent.eval()  # the network is fixed: only the mask is optimised
    observations, actions, weights = stack_trajectories([trajectory])
    mask = torch.nn.Parameter(torch.randn(1, 1, 1, 3, agent.hidden_size))  # one seed, set, network
    best_mask, _, init_loss, best_loss, _ = fit_masks(
        StackedActors([agent]), observations, actions, weights, mask, None, args, ["mask"])
    return best_mask[0, 0, 0].detach().data, init_loss.item(), best_loss.item()


def test_states(rows, columns):
    """Agent and goal cells of every test state: each non-goal cell of each problem."""
    agents, goals = [], []
    for problem in PROBLEMS:
        _, goal = problem_cells(problem, rows, columns)
        cells = non_goal_cells(problem, rows, columns)
        agents += cells
        goals += [goal] * len(cells)
    return np.array(agents), np.array(goals)


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


@dataclass
class Extraction:
    """Everything one run measured. Shapes: S seeds, C combos, A networks, T test states."""
    seeds: list
    masked_score: np.ndarray     # (S, C, A) fraction of the combo's actions the masked network takes
    original_score: np.ndarray   # (C, A) the same for the unmasked network
    init_loss: np.ndarray        # (S, C, A) training loss of the initial mask
    best_loss: np.ndarray        # (S, C, A) training loss of the returned mask
    loss_curves: np.ndarray      # (steps, S, C, A)
    performs_combo: np.ndarray   # (S, C, A, T) whether the masked network takes the whole combo
    neuron_masks: torch.Tensor   # (S, C, A, 3, H)
    training_pairs: list         # (C,) size of each combo's training set
    input_masks: Optional[torch.Tensor] = None  # (S, C, A, D) 1 = kept
    input_fill: Optional[torch.Tensor] = None   # (C, D) value of a dropped input

    def records(self):
        """One dict per (seed, combo, network), as results.json stores them."""
        records = []
        for s, seed in enumerate(self.seeds):
            for c, name in enumerate(MOVE_NAMES):
                for a, problem in enumerate(PROBLEMS):
                    record = {"sequence": name, "base_model": problem, "seed": seed,
                              "masked_score": float(self.masked_score[s, c, a]),
                              "original_score": float(self.original_score[c, a]),
                              "init_loss": float(self.init_loss[s, c, a]),
                              "best_loss": float(self.best_loss[s, c, a])}
                    if self.input_masks is not None:
                        record["kept_inputs"] = torch.nonzero(self.input_masks[s, c, a]).flatten().tolist()
                    records.append(record)
        return records


def solution_trajectories(agents, args):
    with torch.no_grad():
        return [agent.run(ComboGym(args.game_width, args.game_width, problem))
                for agent, problem in zip(agents, PROBLEMS)]


def load_agents(args):
    """The four networks of --model-paths, in canonical problem order."""
    return [load_agent(path, ComboGym(args.game_width, args.game_width, problem), args.hidden_size)
            for path, problem in zip(args.model_paths, PROBLEMS)]


def learn_masks(args, agents=None):
    """Learn a mask per (seed, combo, network) from the solutions, then score every mask.

    `agents` are the four networks, loaded from args.model_paths when not given.
    """
    agents = load_agents(args) if agents is None else agents
    sequences = build_sequences(solution_trajectories(agents, args), args.sequence_length)
    missing = [name for name in MOVE_NAMES if sequences[name].get_length() == 0]
    if missing:
        raise NoTrainingData(f"no training data for combo {missing[0]}: no network's solution contains it")
    observations, actions, weights = stack_trajectories([sequences[name] for name in MOVE_NAMES])

    seeds = [args.seed + k for k in range(args.num_seeds)]
    combos, networks, inputs = len(MOVE_NAMES), len(agents), observations.shape[-1]
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    neuron_theta = torch.nn.Parameter(torch.stack(
        [torch.randn(combos, networks, 3, args.hidden_size, generator=g) for g in generators]))
    input_theta, input_fill = None, None
    if args.mask_inputs:
        input_theta = torch.nn.Parameter(torch.stack(
            [torch.randn(combos, networks, 2, inputs, generator=g) for g in generators]))
        means = (observations * weights[..., None]).sum(1)  # (C, D) each training set's mean
        input_fill = means if args.input_fill == "mean" else torch.zeros_like(means)

    actors = StackedActors(agents)
    neuron_masks, input_masks, init_loss, best_loss, curves = fit_masks(
        actors, observations, actions, weights, neuron_theta, input_theta, args, MOVE_NAMES, input_fill)

    # Score the S x C masks of each network, and the original network as one more mask.
    neuron_masks, masks = neuron_masks.detach(), len(seeds) * combos
    all_neuron = torch.cat([neuron_masks.reshape(masks, networks, 3, -1),
                            program_mask(args.hidden_size).expand(1, networks, 3, -1)])
    all_input, all_fill = None, 0.0
    if input_masks is not None:
        input_masks = input_masks.detach()
        all_input = torch.cat([input_masks.reshape(masks, networks, -1), torch.ones(1, networks, inputs)])
        all_fill = torch.cat([input_fill.repeat(len(seeds), 1), torch.zeros(1, inputs)])[:, None, :]
    taken, compared = rollout_masks(actors, all_neuron, all_input, args, all_fill)
    combo_actions = np.array([COMBOS[name] for name in MOVE_NAMES])          # (C, L)

    masked_taken = taken[:-1].reshape(len(seeds), combos, networks, -1, args.sequence_length)
    masked_compared = compared[:-1].reshape(masked_taken.shape)
    masked_match = (masked_taken == combo_actions[None, :, None, None, :]) & masked_compared
    original_match = (taken[-1][None] == combo_actions[:, None, None, :]) & compared[-1][None]
    return Extraction(
        seeds=seeds,
        masked_score=masked_match.sum((-1, -2)) / masked_compared.sum((-1, -2)),
        original_score=original_match.sum((-1, -2)) / compared[-1].sum((-1, -2))[None],
        init_loss=init_loss.detach().numpy(), best_loss=best_loss.detach().numpy(),
        loss_curves=curves.numpy(), performs_combo=masked_match.all(-1),
        neuron_masks=neuron_masks, input_masks=input_masks, input_fill=input_fill,
        training_pairs=[sequences[name].get_length() for name in MOVE_NAMES])


def needed_pairs():
    """(C, A) boolean: whether network A's problem needs combo C."""
    return np.array([[name in NEEDED_MOVES[problem] for problem in PROBLEMS] for name in MOVE_NAMES])


def score_tables(masked_score, original_score):
    """The four tables, one per combo, as printed: masked (S, C, A) and original (C, A) scores."""
    tables = []
    for c, name in enumerate(MOVE_NAMES):
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


def check_args(args):
    """The first problem with the arguments, or None."""
    if len(args.model_paths) != len(PROBLEMS):
        return (f"--model-paths needs {len(PROBLEMS)} checkpoints ({', '.join(PROBLEMS)}), "
                f"got {len(args.model_paths)}")
    if args.sequence_length != COMBO_LENGTH:
        return f"--sequence-length must be {COMBO_LENGTH}, the length of ComboGrid's combos"
    for name in ("mask_learning_steps", "mask_learning_rate", "num_seeds", "hidden_size"):
        if getattr(args, name) <= 0:
            return f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}"
    if args.game_width < 2:
        return f"--game-width must be at least 2 (start and goal are opposite corners), got {args.game_width}"
    if args.log_every < 0 or args.input_penalty < 0:
        return "--log-every and --input-penalty must not be negative"
    if args.save_dir is not None and os.path.exists(args.save_dir) and not os.path.isdir(args.save_dir):
        return f"--save-dir {args.save_dir} exists and is not a folder"
    return None


def main(args):
    problem = check_args(args)
    if problem:
        sys.exit(f"error: {problem}")
    try:
        result = learn_masks(args)
    except (CheckpointError, NoTrainingData) as error:
        sys.exit(f"error: {error}")
    for table in score_tables(result.masked_score, result.original_score):
        print(table)
    if len(result.seeds) > 1:
        kept = None if result.input_masks is None else result.input_masks.sum(-1).int().numpy()
        print(summary(result.masked_score, result.best_loss, kept))
    if args.save_dir is not None:
        try:
            save_results(args, result)
        except OSError as error:
            sys.exit(f"error: cannot write to --save-dir {args.save_dir}: {error.strerror}")


if __name__ == "__main__":
    main(tyro.cli(Args))
