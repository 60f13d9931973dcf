"""Train the ComboGrid policy networks with PPO: many independent learners as one batched run.

    python train_ppo.py                                  # the four networks, runs/models/PROBLEM.pt
    python train_ppo.py --save-dir models                # the same, replacing the shipped networks
    python train_ppo.py --num-sets 10 --save-dir sets    # 10 independent sets, sets/set_0 ... sets/set_9
    python train_ppo.py --game 6x6                       # another game of the family, runs/models-6x6/

A trial run never replaces the shipped models/: the default folder is runs/models (git ignores
runs/), and the result equals models/ byte for byte when the settings are the defaults.

In set k, problem i of the game's canonical order (TL-BR, TR-BL, BR-TL, BL-TR for 5x5) is trained
with seed `seed + P * k + i` for P problems: the shipped set is problem i with seed i, whichever
--problems are chosen. training.json records the game; the other scripts refuse a checkpoint of
another game.
Each learner is CleanRL's ppo.py on its own 16 environments (decomposition/ppo.py trains them all
at once, each exactly as it would train alone; decomposition/processes.py spreads them over
--processes processes of one thread each, which changes no weight).
A learner stops once its greedy policy has solved its problem optimally (24 actions on 5x5) at
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

from typing import Optional

from combogrid import DEFAULT_GAME, ComboGridVec, default_models_folder, sized_game
from decomposition.files import failure, json_writer, read_json, unwritable, write_files
from decomposition.ppo import PPOSettings, memory_estimate
from decomposition.processes import TrainingFailed, train_in_processes
from decomposition.script import POSITIVE, Range, ScriptError, check, fails_on, game_fault, memory_fault, start


@dataclass
class Args(PPOSettings):
    """The run; PPO's hyper-parameters (--learning-rate, --num-envs, ...) are decomposition.ppo.PPOSettings."""
    game: str = "5x5"
    """the game (combogrid.GAMES: 5x5, 6x6, 10x10, 5x5-combo4, 5x5-hallways, 5x5-block, 5x5-12problems)"""
    problems: tuple[str, ...] = ()
    """problems to train, one network each per set (default: all of the game's)"""
    seed: int = 0
    """in set k, problem i of the game's canonical order is trained with seed + P * k + i (P problems)"""
    num_sets: int = 1
    """independent sets of networks; with more than one, set k is written to SAVE_DIR/set_k"""
    save_dir: Optional[str] = None
    """folder the checkpoints (PROBLEM.pt) and training.json are written to; default runs/models, or
    runs/models-GAME for another game (--save-dir models replaces the shipped networks)"""
    rows: Optional[int] = None
    """grid rows (default: the game's)"""
    columns: Optional[int] = None
    """grid columns (default: the game's)"""
    processes: int = 2
    """processes training side by side, one core and one torch thread each (the weights do not depend on it)"""
    print_every: float = 10.0
    """seconds between progress lines"""

    RANGES = {**PPOSettings.RANGES, "num_sets": POSITIVE, "processes": POSITIVE, "print_every": POSITIVE,
              "rows": Range(2, 100), "columns": Range(2, 100)}


def game_of(args):
    return sized_game(args.game, args.rows, args.columns)


def problems_of(args):
    return args.problems or game_of(args).problems


def save_dir(args):
    game = game_of(args)
    return args.save_dir or ("runs/models" if game.name == "5x5" else default_models_folder(game))


def check_args(args):
    """The first fault with the arguments, or None."""
    fault = args.fault() or game_fault(args, args.rows, args.columns)
    if fault:
        return fault
    game = game_of(args)
    unknown = [p for p in args.problems if p not in game.problems]
    if unknown:
        return f"unknown problem {unknown[0]!r}: game {game.name} has {', '.join(game.problems)}"
    if len(set(args.problems)) != len(args.problems):
        return "--problems must name each problem at most once"
    learners = args.num_sets * len(problems_of(args))
    memory = memory_estimate(args, learners, min(args.processes, learners), game.observation_size)
    fault = memory_fault(memory, f"{learners} learners", "train fewer sets at a time, with --seed to continue")
    if fault:
        return fault
    if (args.num_envs * args.num_steps) % args.num_minibatches:
        return "--num-minibatches must divide num_envs x num_steps"
    if args.num_envs * args.num_steps < 2 * args.num_minibatches:
        return "--num-minibatches must leave at least 2 rows per minibatch (advantages are normalised over it)"
    if args.total_timesteps < args.num_envs * args.num_steps:
        return f"--total-timesteps must allow one rollout of num_envs x num_steps = {args.num_envs * args.num_steps} steps"
    if not 0 <= args.seed <= 2**63 - 1 - len(game.problems) * args.num_sets:
        return f"--seed must be between 0 and 2**63 - 1 - {len(game.problems)} * num_sets, got {args.seed}"
    for folder in {save_dir(args), *(set_folder(args, k) for k in range(args.num_sets))}:
        if unwritable(folder):  # found before training, not after
            name = f"--save-dir {folder}" if folder == save_dir(args) else folder
            return f"cannot write to {name}: {unwritable(folder)}"
        other = recorded_game(folder)
        if other is not None and other not in (game.describe(), {"name": game.name}):
            return (f"{folder} holds networks of game {other.get('name', other)} (its training.json), not of game "
                    f"{game.name}: refused, so that they are not replaced; give that --game or another --save-dir")
    return None


def recorded_game(folder):
    """The game FOLDER/training.json records: its description (the 5 x 5 game's for records that name
    none; {"name": NAME} for records that give only its name), or None where there is no readable record."""
    try:
        record = read_json(os.path.join(folder, "training.json"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    recorded = record.get("game", DEFAULT_GAME.describe())
    return recorded if isinstance(recorded, dict) else {"name": str(recorded)}


def problem_envs(problems, num_envs, game, learners):
    """The environments of these learners (indices into problems), for decomposition.processes."""
    return ComboGridVec([problems[j] for j in learners], num_envs, game)


def set_folder(args, k):
    return save_dir(args) if args.num_sets == 1 else os.path.join(save_dir(args), f"set_{k}")


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


def previous_record(folder, game):
    """The networks recorded in FOLDER/training.json by an earlier run of the game (none if unreadable;
    check_args refuses a folder of another game)."""
    try:
        record = read_json(os.path.join(folder, "training.json"))
        if record.get("game", game.describe()) != game.describe():
            return {}
        networks = record.get("networks", {})
        return networks if isinstance(networks, dict) else {}
    except (OSError, ValueError, AttributeError):
        return {}


def set_writers(folder, game, problems, results, seconds, settings):
    """{path: writer} for the checkpoints of one set and their training.json. A run of some
    --problems keeps the other problems' records (of the same game)."""
    record = previous_record(folder, game)
    writers = {}
    for problem, result in zip(problems, results):
        writers[os.path.join(folder, f"{problem}.pt")] = partial(torch.save, result.state_dict)
        record[problem] = {"seed": result.seed, "steps": result.steps, "optimal": result.solved, "settings": settings}
    record = {problem: record[problem] for problem in game.problems if problem in record}
    writers[os.path.join(folder, "training.json")] = json_writer(
        {"seconds": round(seconds, 1), "game": game.describe(), "networks": record}, indent=1)
    return writers


@fails_on(TrainingFailed)
def main(args):
    check(check_args(args))
    game, chosen = game_of(args), problems_of(args)
    problems = list(chosen) * args.num_sets
    seeds = [args.seed + len(game.problems) * k + game.problems.index(p) for k in range(args.num_sets) for p in chosen]
    processes = min(args.processes, len(problems))
    print(f"training {len(problems)} learners ({args.num_sets} set(s) of {len(chosen)}, game {game.name}) in "
          f"{processes} batch(es), one process each", flush=True)
    started = time.time()
    results = train_in_processes(partial(problem_envs, problems, args.num_envs, game), seeds,
                                 args, processes, Progress(args.print_every))
    seconds = time.time() - started
    diverged = [f"{problems[k]} (seed {r.seed})" for k, r in enumerate(results)
                if not all(torch.isfinite(value).all() for value in r.state_dict.values())]
    if diverged:
        raise ScriptError(f"training diverged: {', '.join(diverged)} ended with NaN or infinite weights (try a "
                          "smaller --learning-rate); no checkpoint or training.json was changed")

    settings = {**{key: value for key, value in asdict(args).items()
                   if key not in ("problems", "save_dir", "seed", "game", "rows", "columns")},
                "processes": processes}  # the processes that ran, not the ones asked for
    per_set, writers = len(chosen), {}
    for k in range(args.num_sets):
        writers.update(set_writers(set_folder(args, k), game, chosen, results[k * per_set:(k + 1) * per_set],
                                   seconds, settings))
    try:  # every set's checkpoints and records are replaced together, or none
        for k in range(args.num_sets):
            os.makedirs(set_folder(args, k), exist_ok=True)
        write_files(writers)
    except OSError as error:
        raise ScriptError(f"cannot write the networks to {save_dir(args)}: {failure(error)}; "
                          "no checkpoint or training.json was changed") from None
    failed = [f"{os.path.join(set_folder(args, k // per_set), problems[k] + '.pt')} (seed {r.seed}, {r.steps:,} steps)"
              for k, r in enumerate(results) if not r.solved]
    steps = sum(r.steps for r in results)
    print(f"trained {len(results)} network(s) in {seconds:.0f} s: {steps:,} steps, {steps / seconds:,.0f} steps/s; "
          f"{len(results) - len(failed)} optimal -> {save_dir(args)}")
    if failed:
        print(f"NOT optimal (their whole budget spent): {'; '.join(failed)}")


if __name__ == "__main__":
    start(main, Args, unchanged="no checkpoint or training.json was changed")
