"""The reuse study: PPO learners on new tasks with the extracted functions as options.

downstream.py runs it. Here: the option set of each condition, how often an option completes a
combo begun by primitive actions, the batched PPO runs of a (task, condition) (learning-rate
tuning, then the reported seeds), one record per learner with its greedy evaluation curve, the
tables and the figures. The statistics are decomposition.statistics'.

    none              the 3 primitive actions only
    neurons           + 4 three-step options, one per combo, from the assignment's neuron masks
    inputs            + 4 three-step options from --mask-inputs masks
    not-needed        + 4 three-step options from --mask-inputs masks of networks whose problem
                      does not need the combo
    whole             + 4 three-step options, each base network unmasked
    combos            + the 4 true combos as fixed three-step macro-actions
    neural-augmented  + 4 one-step actions, each base network's greedy action
"""

import time
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from tabulate import tabulate

from combogrid import NUM_ACTIONS
from decomposition import statistics
from decomposition.files import kit_path
from decomposition.options import ComboOptions, NetworkOptions, load_discovered_options
from decomposition.ppo import PPOSettings
from decomposition.processes import train_in_processes
from decomposition.results import png_writer
from decomposition.script import POSITIVE, Range, Settings, game_fault, out_of_range, time_left
from decomposition.episodes import macro_step
from decomposition.tasks import TaskGames
from ppo_agent import program_mask

STUDY = ("none", "neurons", "inputs", "not-needed", "whole", "combos", "neural-augmented")
"""The conditions downstream.py compares by default."""
CONDITIONS = (*STUDY, "discovered")
"""Every condition: `discovered` adds the options discover.py chose, each of its own length."""
TUNING_SEEDS_START = 10_000
"""Tuning seeds are TUNING_SEEDS_START, TUNING_SEEDS_START + 1, ...: disjoint from the reported seeds 0 .. N-1."""
FINAL_ITERATIONS = 5
"""Iterations whose ended episodes give a learner's final training return."""
STUDY_FILES = ("results.json", "evaluation_curves.png", "training_returns.png")
ROLLOUT = PPOSettings.num_envs * PPOSettings.num_steps
"""Primitive steps of one PPO rollout of the learners (train_learners' PPOSettings): the smallest budget."""


@dataclass
class LearningSettings(Settings):
    """How a (task, condition)'s learners are trained and evaluated: tune, run_condition, train_learners."""
    num_seeds: int = 16
    """reported PPO learners (seeds 0 .. N-1) per condition and task"""
    tuning_seeds: int = 3
    """learners per learning rate in the tuning runs (seeds 10000, 10001, ...)"""
    learning_rates: tuple[float, ...] = (4e-3, 8e-3, 1.6e-2, 3.2e-2)
    """the learning rates tuned over, per condition and task (Adam's, annealed to 0 over the budget); one
    rate: no tuning"""
    budget: int = 200_000
    """primitive environment steps per learner"""
    eval_points: int = 20
    """primitive-step counts, evenly spread over the budget, at which the greedy policies are evaluated"""
    processes: int = 2
    """processes of one torch thread each that share a run's learners (the cores to use)"""

    RANGES = {**{name: POSITIVE for name in ("num_seeds", "tuning_seeds", "eval_points")},
              "budget": Range(1, 10**12), "processes": Range(1, 64)}

    def fault(self):
        fault = super().fault() or learning_rates_fault(self.learning_rates)
        if fault:
            return fault
        if self.budget < ROLLOUT:
            return f"--budget must allow one PPO rollout ({ROLLOUT} steps)"
        if self.eval_points > self.budget // ROLLOUT:
            return f"--eval-points must be at most one per PPO rollout ({self.budget // ROLLOUT} for this budget)"
        if self.num_seeds > TUNING_SEEDS_START:
            return f"--num-seeds must be at most {TUNING_SEEDS_START} (the tuning seeds start there)"
        return None


@dataclass
class ReuseSettings(LearningSettings):
    """LearningSettings for the tasks of a ComboGrid game."""
    game: str = "5x5"
    """the game whose networks give the options and whose grid the tasks are played on (combogrid.GAMES)"""

    def fault(self):
        return game_fault(self) or super().fault()


def learning_rates_fault(rates):
    if not rates:
        return "--learning-rates needs at least one rate"
    for rate in rates:
        fault = out_of_range(type("Rate", (), {"learning_rates": rate}), {"learning_rates": POSITIVE})
        if fault:
            return fault
    return None


def best_masks(extraction, allowed):
    """Per combo, (network, seed) of the mask with the lowest training loss among the allowed
    networks (allowed (C, A) boolean)."""
    loss = np.where(allowed[None], extraction.best_loss, np.inf)                 # (S, C, A)
    picks = []
    for c in range(loss.shape[1]):
        s, a = np.unravel_index(np.argmin(loss[:, c]), loss[:, c].shape)
        picks.append((int(a), int(s)))
    return picks


def option_sets(agents, neurons, inputs, game):
    """The option set of every condition, and a description of where each option comes from.
    neurons and inputs: main.py's extractions of the agents without and with --mask-inputs."""
    options, sources = {"none": None, "combos": ComboOptions(game)}, {}
    needed, everywhere = game.needed, np.ones_like(game.needed)
    for condition, extraction, allowed in (("neurons", neurons, everywhere), ("inputs", inputs, everywhere),
                                           ("not-needed", inputs, game.not_needed)):
        picks = best_masks(extraction, allowed)
        neuron_masks = torch.stack([extraction.neuron_masks[s, c, a] for c, (a, s) in enumerate(picks)])
        input_masks = fills = None
        if extraction.input_masks is not None:
            input_masks = torch.stack([extraction.input_masks[s, c, a] for c, (a, s) in enumerate(picks)])
            fills = extraction.input_fill
        options[condition] = NetworkOptions([agents[a] for a, _ in picks], neuron_masks, input_masks, fills,
                                            game.combo_length, game)
        sources[condition] = [{"combo": name, "network": game.problems[a], "seed": extraction.seeds[s],
                               "needed": bool(needed[c, a]), "best_loss": float(extraction.best_loss[s, c, a])}
                              for c, (name, (a, s)) in enumerate(zip(game.combo_names, picks))]
    unmasked = program_mask(agents[0].hidden_size).expand(len(agents), -1, -1)
    options["whole"] = NetworkOptions(agents, unmasked, length=game.combo_length, game=game)
    options["neural-augmented"] = NetworkOptions(agents, unmasked, length=1, game=game)
    sources["whole"] = sources["neural-augmented"] = [{"network": p} for p in game.problems]
    return options, sources


def discovered_option_set(options_path, game):
    """discover.py's options (its options.pt) as one NetworkOptions, each option of its own length,
    and where each comes from."""
    found = load_discovered_options(options_path, game=game)
    with_inputs = all(f.input_mask is not None for f in found)
    size = found[0].actors.w1.shape[1]
    options = NetworkOptions([f.agent for f in found], torch.cat([f.neuron_mask for f in found]),
                             torch.cat([f.input_mask for f in found]) if with_inputs else None,
                             torch.stack([torch.as_tensor(f.input_fill).expand(size) for f in found])
                             if with_inputs else None, length=[f.steps for f in found], game=game)
    return options, [{"length": int(f.steps), "options_file": kit_path(options_path)} for f in found]


def moves_after_primitives(options, game):
    """Fraction of the starts from which each option moves the agent one cell in its combo's
    direction, by buffer state: {buffer length: [fraction per option]}. Starts: every open cell from
    which the move stays on open cells, after 0 to L - 1 primitive actions (every prefix) already in
    the combo buffer. A fixed combo only moves from an empty buffer; a function that reads the
    buffer can complete a combo begun by primitive actions. The goal shown is a corner away from the start."""
    cells = np.array(game.open_cells)
    far, near = np.array(game.open_cells[-1]), np.array(game.open_cells[0])
    result = {}
    for length in range(game.combo_length):
        prefixes = np.array(list(np.ndindex(*(NUM_ACTIONS,) * length)), dtype=np.int64).reshape(NUM_ACTIONS ** length, length)
        fractions = []
        for k, delta in enumerate(game.combo_deltas):
            targets = cells + delta
            inside = ((targets >= 0) & (targets < (game.rows, game.columns))).all(1)
            inside[inside] = ~game.is_wall[targets[inside, 0], targets[inside, 1]]
            starts = np.repeat(cells[inside], len(prefixes), axis=0)
            goals = np.where((starts == far).all(1, keepdims=True), near, far)
            games = TaskGames("random", starts, goals, game)
            for position in range(length):
                games.step(np.tile(prefixes[:, position], inside.sum()))
            macro_step(games, np.full(len(starts), NUM_ACTIONS + k), options)
            fractions.append(float((games.games.agent_cells == starts + delta).all(1).mean()))
        result[length] = fractions
    return result


def evaluation_points(budget, count):
    """`count` primitive-step counts evenly spread over the budget, the last at the budget."""
    return [budget * (k + 1) // count for k in range(count)]


def carried_curve(curve):
    """A learner's training curve as arrays (primitive steps, mean return of the episodes that ended
    in each iteration); an iteration in which no episode ended keeps the previous value (0 at the start)."""
    steps = np.array([s for s, _ in curve], dtype=float)
    values, last = [], 0.0
    for _, value in curve:
        last = last if np.isnan(value) else value
        values.append(last)
    return steps, np.array(values)


def final_training_return(curve, max_return):
    """The mean return of the episodes that ended in the last FINAL_ITERATIONS iterations (each
    iteration's mean weighted alike), divided by the maximum return; 0 if none ended."""
    last = [value for _, value in curve[-FINAL_ITERATIONS:] if not np.isnan(value)]
    return float(np.mean(last)) / max_return if last else 0.0


def train_learners(task, options, seeds, learning_rates, settings, on_iteration=None):
    """PPO learners on `task` (an environment.Task) with these options (one per seed, each with its learning
    rate), batched over settings.processes processes, their greedy policies evaluated at settings.eval_points
    points. settings is a LearningSettings."""
    ppo = PPOSettings(total_timesteps=settings.checked().budget, optimal_checks=0)
    envs_of = partial(learner_envs, task, seeds, ppo.num_envs, options)
    return train_in_processes(envs_of, seeds, ppo, settings.processes, on_iteration, learning_rates,
                              evaluation_points(settings.budget, settings.eval_points))


def learner_envs(task, seeds, num_envs, options, learners):
    """The environments of these learners (indices into seeds) of `task` (an environment.Task)."""
    return task.envs([seeds[j] for j in learners], num_envs, options)


def evaluation_auc(result):
    """A learner's evaluation AUC: the mean SPL of its greedy policy over the evaluation points."""
    return float(np.mean([e["spl"] for e in result.evaluations]))


def record(task, condition, result, learning_rate):
    """One learner's record: its evaluation curve, the measures read from it, and its training curve."""
    evaluations = result.evaluations
    spl, success = [e["spl"] for e in evaluations], [e["success"] for e in evaluations]
    points = [e["point"] for e in evaluations]
    reached = [point for point, value in zip(points, spl) if value >= 0.95]
    final = evaluations[-1]
    return {"task": task.name, "condition": condition, "seed": result.seed, "learning_rate": learning_rate,
            "auc": evaluation_auc(result), "final_spl": spl[-1], "final_success": success[-1],
            "steps_to_95": reached[0] if reached else None,
            "eval_steps": points, "eval_spl": spl, "eval_success": success,
            "final_decisions": final["decisions"], "final_primitive_steps": final["primitive_steps"],
            "final_optimal_steps": final["optimal_steps"], "final_looping": final["looping"],
            "final_training_return": final_training_return(result.curve, task.max_return),
            "steps": result.steps, "curve": result.curve}


def tune(task, condition, options, settings, on_iteration=None, first_seed=0):
    """The learning rate of settings.learning_rates with the highest mean evaluation AUC over
    settings.tuning_seeds tuning seeds (TUNING_SEEDS_START + first_seed, ...; all rates and seeds as
    one batched run), and each rate's mean AUC."""
    rates, count = settings.learning_rates, settings.tuning_seeds
    seeds = [TUNING_SEEDS_START + first_seed + k for _ in rates for k in range(count)]
    results = train_learners(task, options, seeds, [rate for rate in rates for _ in range(count)], settings,
                             on_iteration)
    means = np.array([evaluation_auc(r) for r in results]).reshape(len(rates), count).mean(1)
    return rates[int(np.argmax(means))], dict(zip(map(str, rates), means.tolist()))


def run_condition(task, condition, options, learning_rate, settings, on_iteration=None, first_seed=0):
    """The reported seeds first_seed .. first_seed + settings.num_seeds - 1 of one (task, condition)
    at its learning rate; one record each."""
    seeds = list(range(first_seed, first_seed + settings.num_seeds))
    results = train_learners(task, options, seeds, [learning_rate] * len(seeds), settings, on_iteration)
    return [record(task, condition, r, learning_rate) for r in results]


def runs_of(runs, task, condition):
    return [r for r in runs if r["task"] == task and r["condition"] == condition]


def summaries(runs, tasks, conditions):
    """{task: {condition: statistics.summary of the evaluation AUCs, against none's}}."""
    return {task: {condition: statistics.summary([r["auc"] for r in runs_of(runs, task, condition)],
                                                 [r["auc"] for r in runs_of(runs, task, "none")])
                   for condition in conditions}
            for task in tasks if runs_of(runs, task, "none")}


def interval(value):
    return "{:.3f} [{:.3f}, {:.3f}]".format(*value)


def steps_to_95(mine, budget):
    """The median primitive steps until SPL first reached 0.95; runs that never did count as beyond the budget."""
    median = np.median([np.inf if r["steps_to_95"] is None else r["steps_to_95"] for r in mine])
    return f"{median:,.0f}" if np.isfinite(median) else f"> {budget:,}"


def table(runs, tasks, conditions, budget, tablefmt="grid"):
    """The study's table: per (task, condition), the evaluation AUC's mean and IQM with 95% intervals,
    the probability of improvement over none, the final SPL and success rate, the steps to SPL 0.95."""
    stats = summaries(runs, tasks, conditions)
    rows = []
    for task in stats:
        for condition in conditions:
            mine, summary = runs_of(runs, task, condition), stats[task][condition]
            rows.append([task, condition, f"{mine[0]['learning_rate']:g}", interval(summary["mean"]),
                         interval(summary["iqm"]), interval(summary["improvement_over_none"]),
                         f"{np.mean([r['final_spl'] for r in mine]):.3f}",
                         f"{np.mean([r['final_success'] for r in mine]):.3f}", steps_to_95(mine, budget)])
    return tabulate(rows, tablefmt=tablefmt, headers=[
        "task", "condition", "learning\nrate", "AUC: mean\n[95% CI]", "AUC: IQM\n[95% CI]",
        "P(better than none)\n[95% CI]", "final\nSPL", "final\nsuccess", "median steps\nto SPL 0.95"])


def mean_of_known(values):
    """The mean of the values that are not None (a learner none of whose greedy episodes succeeded has None)."""
    known = [v for v in values if v is not None]
    return f"{np.mean(known):.1f}" if known else "-"


def greedy_episodes_table(runs, tasks, conditions, tablefmt="grid"):
    """What the training return and the evaluation each see at the end of the budget: the training
    return (normalised), the final SPL and success rate, the fraction of greedy episodes stopped in
    a loop, and per successful greedy episode the decisions, primitive steps and fewest possible
    primitive steps (means over learners)."""
    rows = []
    for task in tasks:
        for condition in conditions:
            mine = runs_of(runs, task, condition)
            if mine:
                rows.append([task, condition, f"{np.mean([r['final_training_return'] for r in mine]):.3f}",
                             f"{np.mean([r['final_spl'] for r in mine]):.3f}",
                             f"{np.mean([r['final_success'] for r in mine]):.3f}",
                             f"{np.mean([r['final_looping'] for r in mine]):.3f}",
                             *(mean_of_known([r[key] for r in mine])
                               for key in ("final_decisions", "final_primitive_steps", "final_optimal_steps"))])
    return tabulate(rows, tablefmt=tablefmt, headers=[
        "task", "condition", "training\nreturn", "final\nSPL", "final\nsuccess", "greedy\nloops",
        "decisions per\ngreedy episode",
        "primitive steps\nper greedy episode", "fewest primitive\nsteps"])


def spl_bands(mine):
    """The mean SPL of the greedy policies of runs `mine` at their evaluation points, with 95% bootstrap
    bands over seeds: (steps, (mean, low, high))."""
    spl = np.array([r["eval_spl"] for r in mine])
    bands = np.array([statistics.with_interval(np.mean, column) for column in spl.T])
    return mine[0]["eval_steps"], bands.T


def draw_evaluation_curves(runs, tasks, conditions, path):
    """evaluation_figure into a PNG at `path`."""
    png_writer(evaluation_figure(runs, tasks, conditions))(path)


def evaluation_figure(runs, tasks, conditions, width=6.5):
    """Mean SPL of the greedy policies against primitive steps, one panel per task (`width` inches each)."""
    return figure(runs, tasks, conditions, spl_bands, "mean SPL (greedy policy)", width)


def draw_training_returns(runs, tasks, conditions, path):
    """Mean training return (normalised) against primitive steps, with a 95% band over seeds (normal);
    tasks: environment.Task objects."""
    best = {task.name: task.max_return for task in tasks}

    def curves(mine):
        grid = np.linspace(0, mine[0]["eval_steps"][-1], 101)[1:]
        values = np.array([np.interp(grid, *carried_curve(r["curve"])) / best[r["task"]] for r in mine])
        mean = values.mean(0)
        half = 1.96 * values.std(0, ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0 * mean
        return grid, (mean, mean - half, mean + half)

    png_writer(figure(runs, list(best), conditions, curves, "mean training return / maximum"))(path)


def figure(runs, tasks, conditions, curves, measure, width=6.5):
    """One panel per task, `width` inches wide, one line and band per condition (curves(runs) gives
    (x, (mean, low, high))), the legend below the panels."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown, axes = plt.subplots(1, len(tasks), figsize=(width * len(tasks), width * 0.62), squeeze=False,
                               constrained_layout=True)
    for axis, task in zip(axes[0], tasks):
        for condition in conditions:
            x, (mean, low, high) = curves(runs_of(runs, task, condition))
            axis.plot(x, mean, label=condition)
            axis.fill_between(x, low, high, alpha=0.2)
        axis.set_title(task)
        axis.set_xlabel("primitive environment steps")
        axis.set_ylim(0, 1.02)
    axes[0, 0].set_ylabel(measure)
    shown.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncols=min(len(conditions), 4))
    return shown


class Progress:
    """Progress lines: the run that starts, and every 30 s the steps done and the time left,
    estimated from the training's steps per second so far."""

    def __init__(self, total_steps):
        self.total, self.done, self.seconds, self.last_line = total_steps, 0, 0.0, time.time()

    def leave_out(self, steps):
        """Steps of work already done by an earlier run (a part resumed): not counted as to do."""
        self.total -= steps

    def run(self, label, learners, budget):
        """Announce a run; returns the on_iteration callback that follows it."""
        print(f"{label}: {learners} learners x {budget:,} steps{time_left(self.seconds, self.done, self.total)}", flush=True)
        done_before, seconds_before = self.done, self.seconds

        def on_iteration(progress):
            self.done, self.seconds = done_before + progress["steps"], seconds_before + progress["seconds"]
            if time.time() - self.last_line >= 30:
                self.last_line = time.time()
                print(f"  {self.done:,} of {self.total:,} primitive steps{time_left(self.seconds, self.done, self.total)}", flush=True)
        return on_iteration


def tuned_learning_rate(task, condition, options, args, progress, first_seed=0):
    """The condition's learning rate (tuned if there is more than one, on the tuning seeds from
    TUNING_SEEDS_START + first_seed) and the tuning's record."""
    if len(args.learning_rates) == 1:
        return args.learning_rates[0], {"learning_rate": args.learning_rates[0], "mean_auc": None}
    learners = args.tuning_seeds * len(args.learning_rates)
    rate, means = tune(task, condition, options, args, progress.run(f"{task}, {condition}: tuning", learners,
                                                                    args.budget), first_seed)
    print(f"  {task}, {condition}: learning rate {rate:g} (mean evaluation AUC per rate: "
          + ", ".join(f"{r} {auc:.3f}" for r, auc in means.items()) + ")", flush=True)
    return rate, {"learning_rate": rate, "mean_auc": means}
