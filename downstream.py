"""Are the extracted functions reusable? New ComboGrid tasks learned with them as options.

    python downstream.py                                   # the whole study, about 11 minutes here
    python downstream.py --tasks multi-goal --conditions none combos --num-seeds 5

1. Extract the options from the four networks with main.py's own code (10 mask seeds each, the
   assignment's neuron masks and --mask-inputs masks); for each combo, a condition's option is the
   mask with the lowest training loss among those it may use (decomposition.reuse lists the
   conditions).
2. Measure how often each option completes a combo that primitive actions began.
3. Train PPO learners on each downstream task (decomposition.tasks) under each condition, all
   seeds of a condition as one batched run; an option acts for 3 primitive steps, and every
   primitive step counts toward the budget.
4. Per condition and task: the normalised area under the learning curve with a 95% interval over
   seeds, the fraction of seeds whose final greedy policy solves the task optimally, and the median
   primitive steps until one first does; results.json and learning_curves.png in --save-dir.
"""

import time
from dataclasses import dataclass, replace
from typing import Optional

import torch

import main as extraction
from combogrid import PROBLEMS
from decomposition import reuse
from decomposition.files import failure, unwritable
from decomposition.ppo import PPOSettings, memory_estimate
from decomposition.script import POSITIVE, ScriptError, check, fails_on, memory_problem, out_of_range, start
from decomposition.tasks import TASKS
from ppo_agent import CheckpointError


@dataclass
class Args:
    num_seeds: int = 30
    """PPO learners (seeds 0 .. N-1) per condition and task"""
    tasks: tuple[str, ...] = TASKS
    """downstream tasks to learn (multi-goal, random)"""
    conditions: tuple[str, ...] = reuse.CONDITIONS
    """action sets to compare (none, neurons, inputs, not-needed, whole, combos)"""
    model_paths: tuple[str, ...] = extraction.Args().model_paths
    """checkpoints of the networks for TL-BR, TR-BL, BR-TL, BL-TR, the options' source"""
    mask_seeds: int = 10
    """mask seeds of the extraction; each combo's option is the best of them"""
    budget: int = 300_000
    """primitive environment steps per learner"""
    learning_rate: float = 1e-3
    """PPO's Adam learning rate, annealed to 0 over the budget"""
    save_dir: Optional[str] = "runs/downstream"
    """folder for results.json and learning_curves.png (report.py writes the shipped results/downstream)"""
    threads: int = 2
    """torch threads (the cores to use)"""


RANGES = {name: POSITIVE for name in ("num_seeds", "mask_seeds", "budget", "learning_rate", "threads")}


def check_args(args):
    """The first problem with the arguments, or None."""
    names = [*TASKS, *reuse.CONDITIONS]
    unknown = [name for name in (*args.tasks, *args.conditions) if name not in names]
    if unknown:
        return (f"unknown task or condition {unknown[0]!r}: tasks {', '.join(TASKS)}; "
                f"conditions {', '.join(reuse.CONDITIONS)}")
    if not args.tasks or not args.conditions:
        return "--tasks and --conditions need at least one name each"
    if len(args.model_paths) != len(PROBLEMS):
        return f"--model-paths needs {len(PROBLEMS)} checkpoints ({', '.join(PROBLEMS)}), got {len(args.model_paths)}"
    problem = out_of_range(args, RANGES)
    if problem:
        return problem
    if args.budget < 16 * 128:
        return "--budget must allow one PPO rollout (2048 steps)"
    if args.mask_seeds > 100:
        return f"--mask-seeds must be at most 100, got {args.mask_seeds}"
    if args.save_dir is not None and unwritable(args.save_dir):
        return f"cannot write to --save-dir {args.save_dir}: {unwritable(args.save_dir)}"
    return memory_problem(memory_estimate(PPOSettings(), args.num_seeds), f"--num-seeds {args.num_seeds}", "")


def extract_options(args):
    """The option set of each condition, and where each option comes from (main.py's extraction)."""
    agents = extraction.load_agents(extraction.Args(model_paths=args.model_paths))
    base = extraction.Args(model_paths=args.model_paths, num_seeds=args.mask_seeds, log_every=0)
    print(f"extracting the options: {args.mask_seeds} mask seeds, neuron masks and input masks", flush=True)
    neurons = extraction.learn_masks(base, agents)
    inputs = extraction.learn_masks(replace(base, mask_inputs=True), agents)
    return reuse.option_sets(agents, neurons, inputs, extraction.needed_pairs())


def print_alignment(alignment):
    print("fraction of starts from which each option (Up, Down, Left, Right) moves as its combo, with 0, 1 or 2 "
          "primitive actions already in the buffer:")
    for condition, fractions in alignment.items():
        print(f"  {condition:<10} " + "   ".join(f"{n}: " + " ".join(f"{x:.2f}" for x in values)
                                            for n, values in fractions.items()))


@fails_on(CheckpointError, extraction.NoTrainingData, extraction.WrongNetwork)
def main(args):
    check(check_args(args))
    torch.set_num_threads(args.threads)
    options, sources = extract_options(args)
    alignment = {c: reuse.moves_after_primitives(options[c]) for c in args.conditions if options[c] is not None}
    print_alignment(alignment)

    runs, started = [], time.time()
    pairs = [(task, condition) for task in args.tasks for condition in args.conditions]
    for k, (task, condition) in enumerate(pairs):
        left = "" if not k else f", about {(time.time() - started) / k * (len(pairs) - k):.0f} s left"
        print(f"[{k + 1}/{len(pairs)}] {task}, {condition}: {args.num_seeds} learners x {args.budget:,} steps{left}",
              flush=True)
        runs += reuse.run_condition(task, condition, options[condition], args)
    print(reuse.table(runs, args.tasks, args.conditions))
    steps, seconds = sum(r["steps"] for r in runs), time.time() - started
    print(f"{seconds:.0f} s for {steps:,} primitive steps ({steps / seconds:,.0f} steps/s)")
    if args.save_dir is not None:
        try:
            reuse.save(args, runs, sources, alignment)
        except OSError as error:
            raise ScriptError(f"cannot write to --save-dir {args.save_dir}: {failure(error)}; "
                              "its files are unchanged") from None


if __name__ == "__main__":
    start(main, Args, unchanged="--save-dir keeps its previous files")
