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

The script, top to bottom: the options (Args); train_masks; learn_masks (one at a time or
batched); the checks of the options; main. The training data (each network's solution cut into
combos), the evaluation on every test state and the tables are decomposition/extraction.py's.
Every option works on every game of the family (--game, combogrid.GAMES).
"""

if __name__ == "__main__":  # first, so that a Ctrl-C while the libraries load is one line too
    from decomposition.script import stop_quietly_until_started
    stop_quietly_until_started()


from dataclasses import dataclass
from typing import Optional

import torch

from decomposition import across_sets, extraction
from decomposition.extraction import (ExtractionSettings, NoTrainingData, STESoftmax, WrongNetwork, game_of,
                                      memory_estimate, model_paths, score_tables, summary_table)
from decomposition.files import failure, folders_fault
from decomposition.masks import Adam
from decomposition.results import save_results
from decomposition.script import ScriptError, check, fails_on, memory_fault, start
from ppo_agent import CheckpointError


@dataclass
class Args(ExtractionSettings):
    """The run; what the extraction depends on (--seed, --game, --mask-learning-rate, --model-paths,
    --mask-inputs, ...) is decomposition.extraction.ExtractionSettings."""
    reference: bool = False
    """learn the masks one at a time with train_masks, the assignment's procedure (slower; the
    default batched run gives the same masks)"""
    save_dir: Optional[str] = None
    """folder for results.json, masks.pt and figures (written only after a complete run)"""
    sets_dir: Optional[str] = None
    """study many network sets instead (train_ppo.py --num-sets): run both masking schemes on every
    set of this folder and summarise needed versus not-needed pairs across sets (decomposition/across_sets.py)"""


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


def train_masks_one_at_a_time(agents, training_sets, seeds, neuron_theta, args):
    """--reference: every (seed, combo, network) mask through train_masks, from the same initial
    logits as the batched engine. Returns masks (S, C, A, 3, H), initial and best losses
    (S, C, A) and loss curves (steps, S, C, A)."""
    masks = torch.zeros_like(neuron_theta)
    init_loss, best_loss = torch.zeros(neuron_theta.shape[:3]), torch.zeros(neuron_theta.shape[:3])
    curves = torch.zeros(args.mask_learning_steps, *neuron_theta.shape[:3])
    game = game_of(args)
    for s, seed in enumerate(seeds):
        for c, name in enumerate(game.combo_names):
            for a, (agent, problem) in enumerate(zip(agents, game.problems)):
                if args.log_every:
                    print(f"mask for {name} on the {problem} network, seed {seed}", flush=True)
                losses = []
                masks[s, c, a], init_loss[s, c, a], best_loss[s, c, a] = train_masks(
                    agent, training_sets[name], args, neuron_theta[s, c, a], losses)
                curves[:, s, c, a] = torch.tensor(losses)
    return masks, init_loss, best_loss, curves


def learn_masks(args, agents=None):
    """The extraction: one mask at a time through train_masks with --reference, else as one batch
    (decomposition.extraction.learn_masks, the same masks). Returns an Extraction."""
    if not args.reference:
        return extraction.learn_masks(args, agents)
    data = extraction.training_data(args, agents)
    neuron_masks, init_loss, best_loss, curves = train_masks_one_at_a_time(
        data.agents, data.training_sets, data.seeds, data.neuron_theta, args)
    return extraction.scored(data, neuron_masks, None, None, init_loss, best_loss, curves)


def check_args(args):
    """The first fault with the arguments, or None."""
    fault = args.fault()  # the extraction's own settings (ExtractionSettings.fault)
    if fault:
        return fault
    if args.reference and (args.mask_inputs or args.sets_dir is not None):
        return ("--reference learns neuron masks the assignment's way; it does not combine with --mask-inputs "
                "or --sets-dir (which runs both masking schemes)")
    if args.sets_dir is not None and (args.mask_inputs or args.model_paths):
        return "--sets-dir runs both masking schemes on the sets' own networks: drop --mask-inputs and --model-paths"
    fault = memory_fault(
        memory_estimate(args), f"--num-seeds {args.num_seeds} with {args.mask_learning_steps} steps and "
        f"{args.hidden_size} hidden neurons on game {game_of(args).name}",
        "run fewer seeds at a time, with --seed to continue where the last run stopped")
    if fault:
        return fault
    return folders_fault(args.sets_dir, args.save_dir)


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
        study = across_sets.study(args, args.sets_dir, game_of(args), args.save_dir)
        print(across_sets.sets_table(study))
        if args.save_dir is not None:
            write(across_sets.save, args, study, args.save_dir)
        return
    result = learn_masks(args)
    for table in score_tables(result.masked_score, result.original_score, result.game):
        print(table)
    if len(result.seeds) > 1:
        kept = None if result.input_masks is None else result.input_masks.sum(-1).int().numpy()
        print(summary_table(result.masked_score, result.best_loss, result.game, kept))
    if args.save_dir is not None:
        write(save_results, args, args, result, model_paths(args), args.save_dir)


if __name__ == "__main__":
    start(main, Args, unchanged="--save-dir, if given, keeps its previous files")
