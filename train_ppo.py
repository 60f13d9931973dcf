"""Train the ComboGrid policy networks with PPO: many independent learners as one batched run.

    python train_ppo.py                                  # the four networks, runs/models/PROBLEM.pt
    python train_ppo.py --save-dir models                # the same, replacing the shipped networks
    python train_ppo.py --num-sets 10 --save-dir sets    # 10 independent sets, sets/set_0 ... sets/set_9

A trial run never replaces the shipped models/: the default folder is runs/models (git ignores
runs/), and the result equals models/ byte for byte when the settings are the defaults.

In set k, problem i of the canonical order (TL-BR, TR-BL, BR-TL, BL-TR) is trained with seed
`seed + 4 * k + i`: the shipped set is problem i with seed i, whichever --problems are chosen.
Each learner is CleanRL's ppo.py on its own 16 environments (decomposition/ppo.py trains them all
at once, each exactly as it would train alone; decomposition/processes.py spreads them over
--processes processes of one thread each, which changes no weight).
A learner stops once its greedy policy has solved its problem optimally (24 actions) at
`optimal_checks` consecutive iterations, or when it has used `total_timesteps`; one that never
got there is named and recorded as not optimal in training.json.
"""

if __name__ == "__main__":  # first, so that a Ctrl-C while the libraries load is one line too
    from decomposition.script import stop_quietly_until_started
    stop_quietly_until_started()


import os
import time
from dataclasses import asdict, dataclass
from functools import partial

import torch

from combogrid import PROBLEMS, ComboGridVec, observation_size
from decomposition.files import failure, json_writer, read_json, unwritable, write_files
from decomposition.ppo import RANGES as PPO_RANGES
from decomposition.ppo import PPOSettings, memory_estimate
from decomposition.processes import TrainingFailed, train_in_processes
from decomposition.script import POSITIVE, Range, ScriptError, check, fails_on, memory_problem, out_of_range, start


@dataclass
class Args(PPOSettings):
    """The run; PPO's hyper-parameters (--learning-rate, --num-envs, ...) are decomposition.ppo.PPOSettings."""
    problems: tuple[str, ...] = PROBLEMS
    """problems to train, one network each per set"""
    seed: int = 0
    """in set k, problem i of the canonical order is trained with seed + 4 * k + i"""
    num_sets: int = 1
    """independent sets of networks; with more than one, set k is written to SAVE_DIR/set_k"""
    save_dir: str = "runs/models"
    """folder the checkpoints (PROBLEM.pt) and training.json are written to (--save-dir models replaces
    the shipped networks)"""
    rows: int = 5
    """grid rows"""
    columns: int = 5
    """grid columns"""
    processes: int = 2
    """processes training side by side, one core and one torch thread each (the weights do not depend on it)"""
    print_every: float = 10.0
    """seconds between progress lines"""


RANGES = {**PPO_RANGES, "num_sets": POSITIVE, "processes": POSITIVE, "print_every": POSITIVE,
          "rows": Range(2, 100), "columns": Range(2, 100)}


def check_args(args):
    """The first problem with the arguments, or None."""
    unknown = [p for p in args.problems if p not in PROBLEMS]
    if unknown:
        return f"unknown problem {unknown[0]!r}: expected some of {', '.join(PROBLEMS)}"
    if not args.problems or len(set(args.problems)) != len(args.problems):
        return "--problems must name each problem at most once, and at least one"
    learners = args.num_sets * len(args.problems)
    memory = memory_estimate(args, learners, min(args.processes, learners), observation_size(args.rows, args.columns))
    problem = out_of_range(args, RANGES) or memory_problem(memory, f"{learners} learners",
                                                           "train fewer sets at a time, with --seed to continue")
    if problem:
        return problem
    if (args.num_envs * args.num_steps) % args.num_minibatches:
        return "--num-minibatches must divide num_envs x num_steps"
    if args.num_envs * args.num_steps < 2 * args.num_minibatches:
        return "--num-minibatches must leave at least 2 rows per minibatch (advantages are normalised over it)"
    if args.total_timesteps < args.num_envs * args.num_steps:
        return f"--total-timesteps must allow one rollout of num_envs x num_steps = {args.num_envs * args.num_steps} steps"
    if not 0 <= args.seed <= 2**63 - 1 - len(PROBLEMS) * args.num_sets:
        return f"--seed must be between 0 and 2**63 - 1 - 4 * num_sets, got {args.seed}"
    for folder in {args.save_dir, *(set_folder(args, k) for k in range(args.num_sets))}:
        if unwritable(folder):  # found before training, not after
            name = f"--save-dir {folder}" if folder == args.save_dir else folder
            return f"cannot write to {name}: {unwritable(folder)}"
    return None


def problem_envs(problems, num_envs, rows, columns, learners):
    """The environments of these learners (indices into problems), for decomposition.processes."""
    return ComboGridVec([problems[j] for j in learners], num_envs, rows, columns)


def set_folder(args, k):
    return args.save_dir if args.num_sets == 1 else os.path.join(args.save_dir, f"set_{k}")


class Progress:
    """A line every `every` seconds: steps, learners finished and optimal, speed, time left."""

    def __init__(self, every):
        self.every, self.last = every, 0.0

    def __call__(self, p):
        if p["seconds"] - self.last < self.every and p["finished"] < p["learners"]:
            return
        self.last = p["seconds"]
        rate = p["steps"] / max(p["seconds"], 1e-9)
        print(f"{p['steps']:>11,} steps  {p['finished']:>3}/{p['learners']} learners finished, "
              f"{p['solved']} optimal  {rate:,.0f} steps/s  {p['seconds']:.0f} s; at most "
              f"{p['budget_left'] / rate:.0f} s left (the unfinished learners' whole budget)", flush=True)


def previous_record(folder):
    """The networks recorded in FOLDER/training.json by an earlier run (none if unreadable)."""
    try:
        networks = read_json(os.path.join(folder, "training.json")).get("networks", {})
        return networks if isinstance(networks, dict) else {}
    except (OSError, ValueError, AttributeError):
        return {}


def set_writers(folder, problems, results, seconds, settings):
    """{path: writer} for the checkpoints of one set and their training.json. A run of some
    --problems keeps the other problems' records."""
    record = previous_record(folder)
    writers = {}
    for problem, result in zip(problems, results):
        writers[os.path.join(folder, f"{problem}.pt")] = partial(torch.save, result.state_dict)
        record[problem] = {"seed": result.seed, "steps": result.steps, "optimal": result.solved, "settings": settings}
    record = {problem: record[problem] for problem in PROBLEMS if problem in record}
    writers[os.path.join(folder, "training.json")] = json_writer({"seconds": round(seconds, 1), "networks": record},
                                                                 indent=1)
    return writers


@fails_on(TrainingFailed)
def main(args):
    check(check_args(args))
    problems = list(args.problems) * args.num_sets
    seeds = [args.seed + len(PROBLEMS) * k + PROBLEMS.index(p) for k in range(args.num_sets) for p in args.problems]
    processes = min(args.processes, len(problems))
    print(f"training {len(problems)} learners ({args.num_sets} set(s) of {len(args.problems)}) in {processes} "
          f"batch(es), one process each", flush=True)
    started = time.time()
    results = train_in_processes(partial(problem_envs, problems, args.num_envs, args.rows, args.columns), seeds,
                                 args, processes, Progress(args.print_every))
    seconds = time.time() - started
    diverged = [f"{problems[k]} (seed {r.seed})" for k, r in enumerate(results)
                if not all(torch.isfinite(value).all() for value in r.state_dict.values())]
    if diverged:
        raise ScriptError(f"training diverged: {', '.join(diverged)} ended with NaN or infinite weights (try a "
                          "smaller --learning-rate); no checkpoint or training.json was changed")

    settings = {**{key: value for key, value in asdict(args).items() if key not in ("problems", "save_dir", "seed")},
                "processes": processes}  # the processes that ran, not the ones asked for
    per_set, writers = len(args.problems), {}
    for k in range(args.num_sets):
        writers.update(set_writers(set_folder(args, k), args.problems, results[k * per_set:(k + 1) * per_set],
                                   seconds, settings))
    try:  # every set's checkpoints and records are replaced together, or none
        for k in range(args.num_sets):
            os.makedirs(set_folder(args, k), exist_ok=True)
        write_files(writers)
    except OSError as error:
        raise ScriptError(f"cannot write the networks to {args.save_dir}: {failure(error)}; "
                          "no checkpoint or training.json was changed") from None
    failed = [f"{os.path.join(set_folder(args, k // per_set), problems[k] + '.pt')} (seed {r.seed}, {r.steps:,} steps)"
              for k, r in enumerate(results) if not r.solved]
    steps = sum(r.steps for r in results)
    print(f"trained {len(results)} network(s) in {seconds:.0f} s: {steps:,} steps, {steps / seconds:,.0f} steps/s; "
          f"{len(results) - len(failed)} optimal -> {args.save_dir}")
    if failed:
        print(f"NOT optimal (their whole budget spent): {'; '.join(failed)}")


if __name__ == "__main__":
    start(main, Args, unchanged="no checkpoint or training.json was changed")
