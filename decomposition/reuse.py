"""The reuse study: PPO learners on new tasks with the extracted functions as options.

downstream.py runs it. Here: the option set of each condition, how often an option completes a
combo begun by primitive actions, one batched PPO run per (task, condition), the area under the
learning curve with a bootstrap interval, the table, the figure and the saved file.

    none        the 3 primitive actions only
    neurons     + 4 options, one per combo, from the assignment's neuron masks
    inputs      + 4 options from --mask-inputs masks
    not-needed  + 4 options from --mask-inputs masks of networks whose problem does not need the combo
    whole       + 4 options, each base network unmasked
    combos      + the 4 true combos as fixed macro-actions
"""

import importlib.util
import os
from dataclasses import asdict

import numpy as np
import torch
from tabulate import tabulate

from combogrid import COMBO_DELTAS, COMBO_NAMES, NUM_ACTIONS, PROBLEMS
from decomposition.files import json_writer, write_file_set
from decomposition.options import ComboOptions, NetworkOptions
from decomposition.ppo import BatchedPPO, PPOSettings
from decomposition.tasks import MAX_RETURN, TaskGames, TaskVec, macro_step
from ppo_agent import program_mask

CONDITIONS = ("none", "neurons", "inputs", "not-needed", "whole", "combos")


def best_masks(extraction, allowed):
    """Per combo, (network, seed) of the mask with the lowest training loss among the allowed
    networks (allowed (C, A) boolean)."""
    loss = np.where(allowed[None], extraction.best_loss, np.inf)                 # (S, C, A)
    picks = []
    for c in range(len(COMBO_NAMES)):
        s, a = np.unravel_index(np.argmin(loss[:, c]), loss[:, c].shape)
        picks.append((int(a), int(s)))
    return picks


def option_sets(agents, neurons, inputs, needed):
    """The option set of every condition, and a description of where each option comes from.
    neurons and inputs: main.py's extractions of the agents without and with --mask-inputs;
    needed (C, A): whether network A's problem needs combo C."""
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
                              for c, (name, (a, s)) in enumerate(zip(COMBO_NAMES, picks))]
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
        for k, delta in enumerate(COMBO_DELTAS):
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


def save(args, runs, sources, alignment):
    """results.json and learning_curves.png into args.save_dir, as one set: both new, or neither."""
    data = {"args": asdict(args), "max_return": MAX_RETURN, "option_sources": sources,
            "moves_after_primitives": alignment, "runs": runs}
    writers = {"results.json": json_writer(data)}
    if importlib.util.find_spec("matplotlib"):
        writers["learning_curves.png"] = lambda path: draw_curves(runs, args.tasks, args.conditions, args.budget, path)
    else:
        print("figure skipped: matplotlib is not installed (pip install -r requirements-dev.pip)")
    os.makedirs(args.save_dir, exist_ok=True)
    write_file_set(args.save_dir, writers, stale=("results.json", "learning_curves.png"))
    print(f"wrote {', '.join(writers)} to {args.save_dir}")
