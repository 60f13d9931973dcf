"""Are the extracted functions reusable? New ComboGrid tasks learned with them as options.

    python downstream.py                                   # the whole study, about 11 minutes here
    python downstream.py --tasks multi-goal --conditions none combos --num-seeds 5

The options are extracted from the four networks with main.py's own code (10 mask seeds each,
the assignment's neuron masks and --mask-inputs masks). Then PPO learners (batched_ppo, all
seeds of a condition in one batched run) learn each downstream task of tasks.py with:
  none        the 3 primitive actions only
  neurons     + 4 options, one per combo, from the assignment's neuron masks
  inputs      + 4 options from --mask-inputs masks
  not-needed  + 4 options from --mask-inputs masks of networks whose problem does not need the combo
  whole       + 4 options, each base network unmasked
  combos      + the 4 true combos as fixed macro-actions (the upper bound)
For each combo, a condition's option is the mask with the lowest training loss among those it may
use. An option acts for 3 primitive steps; its rewards are summed into one transition, and every
primitive step counts toward the budget. Per condition and task: the normalised area under the
learning curve with a 95% confidence interval over seeds, the fraction of seeds whose final
greedy policy solves the task optimally, and the median primitive steps until one first does.
"""

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from typing import Optional

import numpy as np
import torch
from tabulate import tabulate

import main
from atomic import unwritable, write_atomically
from batched_ppo import MEMORY_LIMIT, BatchedPPO, PPOSettings, memory_estimate
from cli import parse_args
from combogrid import MOVE_DELTAS, MOVE_NAMES, NUM_ACTIONS, PROBLEMS
from options import ComboOptions, NetworkOptions
from ppo_agent import CheckpointError, program_mask
from tasks import MAX_RETURN, TASKS, TaskGames, TaskVec, macro_step

CONDITIONS = ("none", "neurons", "inputs", "not-needed", "whole", "combos")


@dataclass
class Args:
    num_seeds: int = 30
    """PPO learners (seeds 0 .. N-1) per condition and task"""
    tasks: tuple[str, ...] = TASKS
    """downstream tasks to learn (multi-goal, random)"""
    conditions: tuple[str, ...] = CONDITIONS
    """action sets to compare (none, neurons, inputs, not-needed, whole, combos)"""
    model_paths: tuple[str, ...] = main.Args().model_paths
    """checkpoints of the networks for TL-BR, TR-BL, BR-TL, BL-TR, the options' source"""
    mask_seeds: int = 10
    """mask seeds of the extraction; each combo's option is the best of them"""
    budget: int = 300_000
    """primitive environment steps per learner"""
    learning_rate: float = 1e-3
    """PPO's Adam learning rate, annealed to 0 over the budget"""
    save_dir: Optional[str] = "results/downstream"
    """folder for results.json and learning_curves.png"""
    threads: int = 2
    """torch threads (the cores to use)"""


def best_masks(extraction, allowed):
    """Per combo, (network, seed) of the mask with the lowest training loss among the allowed
    networks (allowed (C, A) boolean)."""
    loss = np.where(allowed[None], extraction.best_loss, np.inf)                 # (S, C, A)
    picks = []
    for c in range(len(MOVE_NAMES)):
        s, a = np.unravel_index(np.argmin(loss[:, c]), loss[:, c].shape)
        picks.append((int(a), int(s)))
    return picks


def extract_options(args, agents):
    """The option set of every condition, and a description of where each option comes from."""
    base = main.Args(model_paths=args.model_paths, num_seeds=args.mask_seeds, log_every=0)
    print(f"extracting the options: {args.mask_seeds} mask seeds, neuron masks and input masks", flush=True)
    neurons = main.learn_masks(base, agents)
    inputs = main.learn_masks(replace(base, mask_inputs=True), agents)
    needed = main.needed_pairs()
    options, sources = {"none": None, "combos": ComboOptions()}, {}
    everywhere = np.ones_like(needed)
    for condition, extraction, allowed in (("neurons", neurons, everywhere), ("inputs", inputs, everywhere),
                                           ("not-needed", inputs, ~needed)):
        picks = best_masks(extraction, allowed)
        neuron_masks = torch.stack([extraction.neuron_masks[s, c, a] for c, (a, s) in enumerate(picks)])
        input_masks = fills = None
        if extraction.input_masks is not None:
            input_masks = torch.stack([extraction.input_masks[s, c, a] for c, (a, s) in enumerate(picks)])
            fills = extraction.input_fill
        options[condition] = NetworkOptions([agents[a] for a, _ in picks], neuron_masks, input_masks, fills)
        sources[condition] = [{"combo": name, "network": PROBLEMS[a], "seed": extraction.seeds[s],
                               "needed": bool(needed[c, a]), "best_loss": float(extraction.best_loss[s, c, a])}
                              for c, (name, (a, s)) in enumerate(zip(MOVE_NAMES, picks))]
    hidden = agents[0].hidden_size
    options["whole"] = NetworkOptions(agents, program_mask(hidden).expand(len(agents), 3, hidden))
    sources["whole"] = [{"network": p} for p in PROBLEMS]
    return options, sources


def moves_after_primitives(options):
    """Fraction of the starts from which each option moves the agent one cell in its combo's
    direction, by buffer state: {buffer length: [fraction per option]}. Starts: every cell from
    which the move stays on the grid, after 0, 1 or 2 primitive actions (every prefix) already in
    the combo buffer. A fixed combo only moves from an empty buffer; a function that reads the
    buffer can complete a combo begun by primitive actions."""
    cells = np.array([(r, c) for r in range(5) for c in range(5)])
    result = {}
    for length in range(3):
        prefixes = np.array(list(np.ndindex(*(3,) * length)), dtype=np.int64).reshape(3 ** length, length)
        fractions = []
        for k, delta in enumerate(MOVE_DELTAS):
            inside = ((cells + delta >= 0) & (cells + delta < 5)).all(1)
            starts = np.repeat(cells[inside], len(prefixes), axis=0)
            games = TaskGames("random", starts, np.where((starts == 4).all(1, keepdims=True), 0, 4) * np.ones((1, 2), int))
            for position in range(length):
                games.step(np.tile(prefixes[:, position], inside.sum()))
            macro_step(games, np.full(len(starts), NUM_ACTIONS + k), options)
            fractions.append(float((games.games.agents == starts + delta).all(1).mean()))
        result[length] = fractions
    return result


def carried_curve(curve):
    """A learner's curve as arrays (primitive steps, mean return of the episodes that ended in each
    iteration); an iteration in which no episode ended keeps the previous value (0 at the start)."""
    steps = np.array([s for s, _ in curve], dtype=float)
    values, last = [], 0.0
    for _, value in curve:
        last = last if np.isnan(value) else value
        values.append(last)
    return steps, np.array(values)


def area_under_curve(curve, budget, max_return):
    """Normalised area under the learning curve: the mean episode return over the budget (each
    iteration weighted by the primitive steps it covered) divided by the maximum return."""
    steps, values = carried_curve(curve)
    covered = np.diff(np.concatenate([[0.0], np.minimum(steps, budget)]))
    return float((values * covered).sum() / (budget * max_return))


def confidence_interval(values, resamples=10_000):
    """Mean and its 95% confidence interval over seeds (percentile bootstrap, fixed generator)."""
    values = np.asarray(values, dtype=float)
    means = np.random.default_rng(0).choice(values, (resamples, len(values))).mean(1)
    return values.mean(), np.percentile(means, 2.5), np.percentile(means, 97.5)


def run_condition(task, condition, options, args):
    """All seeds of one (task, condition) as one batched PPO run; one record per seed."""
    seeds = list(range(args.num_seeds))
    settings = PPOSettings(total_timesteps=args.budget, learning_rate=args.learning_rate, optimal_checks=0)
    envs = TaskVec(task, seeds, settings.num_envs, options)
    results = BatchedPPO(envs, seeds, settings).train()
    return [{"task": task, "condition": condition, "seed": r.seed,
             "auc": area_under_curve(r.curve, args.budget, MAX_RETURN[task]), "solved": r.solved,
             "steps_to_solve": None if r.first_solved_step < 0 else r.first_solved_step,
             "steps": r.steps, "curve": r.curve} for r in results]


def summary_rows(runs, tasks, conditions):
    rows = []
    for task in tasks:
        for condition in conditions:
            mine = [r for r in runs if r["task"] == task and r["condition"] == condition]
            mean, low, high = confidence_interval([r["auc"] for r in mine])
            solve_steps = [r["steps_to_solve"] for r in mine if r["steps_to_solve"] is not None]
            # seeds that never solved count as "more than the budget" in the median
            median = np.median([np.inf if r["steps_to_solve"] is None else r["steps_to_solve"] for r in mine])
            rows.append([task, condition, f"{mean:.3f} [{low:.3f}, {high:.3f}]",
                         f"{np.mean([r['solved'] for r in mine]):.2f}",
                         f"{median:,.0f}" if np.isfinite(median) else "> budget", len(solve_steps)])
    return rows


def table(runs, tasks, conditions):
    return tabulate(summary_rows(runs, tasks, conditions),
                    headers=["task", "condition", "AUC [95% CI]", "solved at end", "median steps to solve",
                             "seeds that ever solved"], tablefmt="grid")


def draw_curves(runs, tasks, conditions, budget, path):
    """Mean return (normalised) against primitive steps, with a 95% band over seeds."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.linspace(0, budget, 101)[1:]
    figure, axes = plt.subplots(1, len(tasks), figsize=(6.5 * len(tasks), 4), squeeze=False, constrained_layout=True)
    for axis, task in zip(axes[0], tasks):
        for condition in conditions:
            curves = []
            for r in (r for r in runs if r["task"] == task and r["condition"] == condition):
                steps, values = carried_curve(r["curve"])
                curves.append(np.interp(grid, steps, values) / MAX_RETURN[task])
            curves = np.array(curves)
            mean = curves.mean(0)
            half = 1.96 * curves.std(0, ddof=1) / np.sqrt(len(curves)) if len(curves) > 1 else 0 * mean
            axis.plot(grid, mean, label=condition)
            axis.fill_between(grid, mean - half, mean + half, alpha=0.2)
        axis.set_title(f"{task}: mean return / {MAX_RETURN[task]:.0f}")
        axis.set_xlabel("primitive environment steps")
        axis.set_ylim(0, 1.02)
        axis.legend(fontsize=8)
    figure.savefig(path, dpi=90, format="png")
    plt.close(figure)


def check_args(args):
    unknown = [t for t in args.tasks if t not in TASKS] + [c for c in args.conditions if c not in CONDITIONS]
    if unknown:
        return f"unknown task or condition {unknown[0]!r}: tasks {', '.join(TASKS)}; conditions {', '.join(CONDITIONS)}"
    if not args.tasks or not args.conditions:
        return "--tasks and --conditions need at least one name each"
    if len(args.model_paths) != len(PROBLEMS):
        return f"--model-paths needs {len(PROBLEMS)} checkpoints ({', '.join(PROBLEMS)}), got {len(args.model_paths)}"
    for name in ("num_seeds", "mask_seeds", "budget", "learning_rate", "threads"):
        value = getattr(args, name)
        if not 0 < value < float("inf"):
            return f"--{name.replace('_', '-')} must be a positive number, got {value}"
    if args.budget < 16 * 128:
        return "--budget must allow one PPO rollout (2048 steps)"
    if memory_estimate(args.num_seeds) > MEMORY_LIMIT:
        return (f"--num-seeds {args.num_seeds} would need about {memory_estimate(args.num_seeds) / 1e9:.1f} GB "
                f"(the limit is {MEMORY_LIMIT / 1e9:.0f} GB)")
    if args.mask_seeds > 100:
        return f"--mask-seeds must be at most 100, got {args.mask_seeds}"
    if args.save_dir is not None and unwritable(args.save_dir):
        return f"cannot write to --save-dir {args.save_dir}: {unwritable(args.save_dir)}"
    return None


def main_downstream(args):
    problem = check_args(args)
    if problem:
        sys.exit(f"error: {problem}")
    torch.set_num_threads(args.threads)
    try:
        agents = main.load_agents(main.Args(model_paths=args.model_paths))
        options, sources = extract_options(args, agents)
    except (CheckpointError, main.NoTrainingData, main.WrongNetwork) as error:
        sys.exit(f"error: {error}")
    alignment = {c: moves_after_primitives(options[c]) for c in args.conditions if options[c] is not None}
    print("fraction of starts from which each option (Up, Down, Left, Right) moves as its combo, with 0, 1 or 2 "
          "primitive actions already in the buffer:")
    for condition, fractions in alignment.items():
        print(f"  {condition:<10} " + "   ".join(f"{n}: " + " ".join(f"{x:.2f}" for x in values)
                                            for n, values in fractions.items()))
    runs, start = [], time.time()
    total = len(args.tasks) * len(args.conditions)
    for k, (task, condition) in enumerate((t, c) for t in args.tasks for c in args.conditions):
        left = "" if not k else f", about {(time.time() - start) / k * (total - k):.0f} s left"
        print(f"[{k + 1}/{total}] {task}, {condition}: {args.num_seeds} learners x {args.budget:,} steps{left}",
              flush=True)
        runs += run_condition(task, condition, options[condition], args)
    print(table(runs, args.tasks, args.conditions))
    print(f"{time.time() - start:.0f} s for {sum(r['steps'] for r in runs):,} primitive steps "
          f"({sum(r['steps'] for r in runs) / (time.time() - start):,.0f} steps/s)")
    if args.save_dir is not None:
        try:
            save(args, runs, sources, alignment)
        except OSError as error:
            sys.exit(f"error: cannot write to --save-dir {args.save_dir}: {error.strerror}; its files are unchanged")


def save(args, runs, sources, alignment):
    os.makedirs(args.save_dir, exist_ok=True)
    data = {"args": asdict(args), "max_return": MAX_RETURN, "option_sources": sources,
            "moves_after_primitives": alignment, "runs": runs}

    def write_json(temporary):
        with open(temporary, "w") as file:
            json.dump(data, file)

    write_atomically(os.path.join(args.save_dir, "results.json"), write_json)
    try:
        write_atomically(os.path.join(args.save_dir, "learning_curves.png"),
                         lambda temporary: draw_curves(runs, args.tasks, args.conditions, args.budget, temporary))
    except ImportError:
        print("figure skipped: matplotlib is not installed (pip install -r requirements-dev.pip)")
    print(f"wrote {args.save_dir}/results.json and learning_curves.png")


if __name__ == "__main__":
    try:
        main_downstream(parse_args(Args))
    except KeyboardInterrupt:
        print("error: interrupted; --save-dir keeps its previous files", file=sys.stderr)
        sys.exit(130)
