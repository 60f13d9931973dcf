"""Are the extracted functions reusable? New ComboGrid tasks learned with them as options.

    python downstream.py                                   # the whole study, tuning included
    python downstream.py --tasks multi-goal --conditions none combos --num-seeds 5

1. Extract the options from the four networks with main.py's own code (10 mask seeds each, the
   assignment's neuron masks and --mask-inputs masks); for each combo, a condition's option is the
   mask with the lowest training loss among those it may use (decomposition.reuse lists the
   conditions).
2. Measure how often each three-step option completes a combo that primitive actions began.
3. Per task and condition, tune the learning rate: every rate of --learning-rates on
   --tuning-seeds seeds (disjoint from the reported ones), the rate with the highest mean
   evaluation AUC is kept. Then train the --num-seeds reported learners with it. An option acts
   for its primitive steps, every primitive step counts toward the budget, and rewards are
   discounted per primitive step (decomposition.ppo). Each learner's greedy policy is evaluated at
   --eval-points primitive-step counts: success rate and SPL on the task's evaluation episodes.
4. Per task and condition: the evaluation AUC (mean SPL over the points) as mean and IQM with 95%
   bootstrap intervals and the probability of improvement over none, the final SPL and success,
   the steps until SPL 0.95; the greedy episodes' decisions and primitive steps beside the
   training return; results.json, evaluation_curves.png and training_returns.png in --save-dir.
"""

if __name__ == "__main__":  # first, so that a Ctrl-C while the libraries load is one line too
    from decomposition.script import stop_quietly_until_started
    stop_quietly_until_started()


import importlib.util
import os
import time
from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import Optional

import torch

from combogrid import sized_game
from decomposition import extraction, reuse
from decomposition.files import failure, json_writer, kit_path, unwritable, write_file_set
from decomposition.options import MaskFileError
from decomposition.ppo import PPOSettings, memory_estimate
from decomposition.processes import TrainingFailed
from decomposition.script import Range, ScriptError, check, fails_on, memory_fault, model_paths_fault, start
from decomposition.study import parts_folder, remove_parts, run_parts
from decomposition.tasks import STUDY_TASKS, TASKS, ComboGridTask, max_return
from ppo_agent import CheckpointError

KIT = os.path.dirname(os.path.abspath(__file__))
KEPT = ("--save-dir, if given, keeps its previous files and the (task, condition) runs done so far, from which a "
        "rerun with the same settings goes on")


@dataclass
class Args(reuse.ReuseSettings):
    """The study; how each (task, condition)'s learners are trained (--game, --num-seeds, --budget,
    --learning-rates, ...) is decomposition.reuse.ReuseSettings."""
    tasks: tuple[str, ...] = STUDY_TASKS
    """downstream tasks to learn (multi-goal, random; all-goals, the multi-goal task with every goal shown
    at once and taken in any order)"""
    conditions: tuple[str, ...] = reuse.STUDY
    """action sets to compare (none, neurons, inputs, not-needed, whole, combos, neural-augmented; and
    discovered, the options of --discovered)"""
    discovered: str = os.path.join(KIT, "results", "discovery_inputs", "options.pt")
    """options.pt of discover.py --save-dir: the discovered condition's options"""
    model_paths: tuple[str, ...] = ()
    """checkpoints of the networks, one per problem of the game (TL-BR, TR-BL, BR-TL, BL-TR for 5x5), the
    options' source; default: models/PROBLEM.pt for 5x5, runs/models-GAME/PROBLEM.pt for another game"""
    mask_seeds: int = 10
    """mask seeds of the extraction; each combo's option is the best of them"""
    save_dir: Optional[str] = "runs/downstream"
    """folder for results.json, evaluation_curves.png and training_returns.png (report.py writes the shipped
    results/downstream)"""

    RANGES = {**reuse.ReuseSettings.RANGES, "mask_seeds": Range(1, 100)}


def check_args(args):
    """The first fault with the arguments, or None."""
    names = [*TASKS, *reuse.CONDITIONS]
    unknown = [name for name in (*args.tasks, *args.conditions) if name not in names]
    if unknown:
        return (f"unknown task or condition {unknown[0]!r}: tasks {', '.join(TASKS)}; "
                f"conditions {', '.join(reuse.CONDITIONS)}")
    if not args.tasks or not args.conditions:
        return "--tasks and --conditions need at least one name each"
    if "discovered" in args.conditions and not os.path.isfile(args.discovered):
        return f"--discovered {args.discovered} is not a file (an options.pt of discover.py --save-dir)"
    if len(set(args.tasks)) < len(args.tasks) or len(set(args.conditions)) < len(args.conditions):
        return "--tasks and --conditions must name each task and condition at most once"
    if "none" not in args.conditions:
        return "--conditions needs none: every condition is compared with it"
    fault = args.fault() or model_paths_fault(args.model_paths, sized_game(args.game))
    if fault:
        return fault
    if args.save_dir is not None and unwritable(args.save_dir):
        return f"cannot write to --save-dir {args.save_dir}: {unwritable(args.save_dir)}"
    largest_run = max(args.num_seeds, args.tuning_seeds * len(args.learning_rates))
    return memory_fault(memory_estimate(PPOSettings(), largest_run, args.processes,
                                          sized_game(args.game).observation_size), "a run of "
                          f"{largest_run} learners (--num-seeds, or --tuning-seeds x --learning-rates)", "")


def extract_options(args):
    """The option set of each condition, and where each option comes from (main.py's extraction)."""
    # the discovered options first: a damaged options.pt is found before the extraction's minute
    game = sized_game(args.game)
    discovered = reuse.discovered_option_set(args.discovered, game) if "discovered" in args.conditions else None
    base = extraction.ExtractionSettings(game=args.game, model_paths=args.model_paths, num_seeds=args.mask_seeds,
                                         log_every=0)
    agents = extraction.load_agents(base)
    print(f"extracting the options: {args.mask_seeds} mask seeds, neuron masks and input masks", flush=True)
    neurons = extraction.learn_masks(base, agents)
    inputs = extraction.learn_masks(replace(base, mask_inputs=True), agents)
    options, sources = reuse.option_sets(agents, neurons, inputs, game)
    if discovered is not None:
        options["discovered"], sources["discovered"] = discovered
    return options, sources


def print_alignment(alignment, game):
    print(f"fraction of starts from which each {game.combo_length}-step option ({', '.join(game.combo_names)}) moves "
          f"as its combo, with 0 to {game.combo_length - 1} primitive actions already in the buffer:")
    for condition, fractions in alignment.items():
        print(f"  {condition:<10} " + "   ".join(f"{n}: " + " ".join(f"{x:.2f}" for x in values)
                                            for n, values in fractions.items()))


def save(args, runs, sources, alignment, tuning):
    """results.json and the two figures into --save-dir, as one set: all new, or none."""
    game = sized_game(args.game)
    data = {"args": asdict(replace(args, discovered=kit_path(args.discovered))), "game": game.describe(),
            "max_return": {task: max_return(task, game) for task in TASKS}, "option_sources": sources,
            "moves_after_primitives": alignment, "tuning": tuning,
            "summary": reuse.summaries(runs, args.tasks, args.conditions), "runs": runs}
    writers = {"results.json": json_writer(data)}
    if importlib.util.find_spec("matplotlib"):
        writers["evaluation_curves.png"] = partial(reuse.draw_evaluation_curves, runs, args.tasks, args.conditions)
        writers["training_returns.png"] = partial(reuse.draw_training_returns, runs,
                                                  [ComboGridTask(name, game) for name in args.tasks], args.conditions)
    else:
        print("figures skipped: matplotlib is not installed (pip install -r requirements-dev.pip)")
    os.makedirs(args.save_dir, exist_ok=True)
    write_file_set(args.save_dir, writers, stale=reuse.STUDY_FILES)
    print(f"wrote {', '.join(writers)} to {args.save_dir}")


def run_part(task, condition, options, args, progress):
    """One (task, condition): its learning rate tuned, then its reported seeds; their records."""
    rate, tuning = reuse.tuned_learning_rate(task, condition, options, args, progress)
    runs = reuse.run_condition(task, condition, options, rate, args,
                               progress.run(f"{task}, {condition}: reported seeds at learning rate {rate:g}",
                                            args.num_seeds, args.budget))
    return {"tuning": tuning, "runs": runs}


@fails_on(CheckpointError, extraction.NoTrainingData, extraction.WrongNetwork, TrainingFailed, MaskFileError)
def main(args):
    check(check_args(args))
    torch.set_num_threads(args.processes)
    started = time.time()
    options, sources = extract_options(args)
    game = sized_game(args.game)
    alignment = {c: reuse.moves_after_primitives(options[c], game) for c in args.conditions
                 if options[c] is not None and c != "discovered" and (options[c].lengths == game.combo_length).all()}
    print_alignment(alignment, game)

    tuning_learners = 0 if len(args.learning_rates) == 1 else args.tuning_seeds * len(args.learning_rates)
    progress = reuse.Progress(len(args.tasks) * len(args.conditions) * (tuning_learners + args.num_seeds) * args.budget)
    inputs = [*extraction.model_paths(extraction.ExtractionSettings(game=args.game, model_paths=args.model_paths)),
              *([args.discovered] if "discovered" in args.conditions else [])]
    with parts_folder(args.save_dir, args, inputs) as parts:
        found = run_parts(parts, {f"{task}, {condition}": partial(run_part, ComboGridTask(task, game), condition,
                                                                  options[condition], args, progress)
                                  for task in args.tasks for condition in args.conditions}, KEPT,
                          done=lambda name: progress.leave_out((tuning_learners + args.num_seeds) * args.budget))
    runs = [r for part in found.values() for r in part["runs"]]
    tuning = {task: {condition: found[f"{task}, {condition}"]["tuning"] for condition in args.conditions}
              for task in args.tasks}
    print(reuse.table(runs, args.tasks, args.conditions, args.budget))
    print("At the end of the budget: the training return against the greedy policy's evaluation")
    print(reuse.greedy_episodes_table(runs, args.tasks, args.conditions))
    steps = sum(r["steps"] for r in runs)
    print(f"{time.time() - started:.0f} s in all (extraction, tuning and {steps:,} reported primitive steps)")
    if args.save_dir is not None:
        try:
            save(args, runs, sources, alignment, tuning)
            remove_parts(args.save_dir)
        except OSError as error:
            raise ScriptError(f"cannot write to --save-dir {args.save_dir}: {failure(error)}; "
                              "its files are unchanged") from None


if __name__ == "__main__":
    start(main, Args, unchanged=KEPT)
