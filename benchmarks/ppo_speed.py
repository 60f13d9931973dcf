"""PPO training speed, measured side by side on this machine.

    python benchmarks/ppo_speed.py            # about 4 minutes on 2 cores
    python benchmarks/ppo_speed.py --repetitions 3  # medians of 3 runs each, alternating (12 minutes)
    python benchmarks/ppo_speed.py --scaling  # steps/s of the batched engine against the number of learners

Prints:
  steps/s    environment steps per second of the batched engine (`train_ppo.py --num-sets 10`,
             40 learners, a fixed budget each) against the one-learner-per-process train_ppo.py
             it replaced (commit BEFORE_BATCHED, checked out from git into a temporary folder,
             4 problems in a pool of 2 processes, the same budget each; target >= 10). In a copy
             without that git history (an unzipped kit), the baseline is today's engine with one
             learner per process instead (train_ppo.py --problems P, two at a time), and it says so.
  wall time  `python train_ppo.py --num-sets 10` (40 networks) against `python train_ppo.py`
             (4 networks), both trained until optimal (target <= 2)
With --scaling it prints instead the engine's steps/s for 1 to 80 learners (ten iterations each,
in this process on one thread, as in each of train_ppo.py's processes, the four problems in turn),
and a straight-line fit of an iteration's cost: a fixed part plus a part per learner.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np
import torch

from speed import ROOT, wall_time  # benchmarks/ is the script's folder, so first on sys.path
from decomposition.script import POSITIVE, Range, check, fails_on, out_of_range, start  # noqa: E402  (speed set the path)

BEFORE_BATCHED = "3e26404"  # the last commit whose train_ppo.py ran one learner per process


@dataclass
class Args:
    budget: int = 102_400
    """environment steps per learner in the steps/s comparison (a multiple of 2048)"""
    repetitions: int = 1
    """runs of each command, alternating; the medians are compared (timings here vary by 10% or more)"""
    scaling: bool = False
    """print the batched engine's steps/s against the number of learners instead"""


def old_trainer(folder):
    """The one-learner-per-process train_ppo.py and the modules it imports, from git; False where
    this copy of the kit has no git history holding it."""
    try:
        archive = subprocess.run(["git", "archive", BEFORE_BATCHED, "train_ppo.py", "combogrid.py", "ppo_agent.py",
                                  "trajectory.py", "results.py"], cwd=ROOT, check=True, capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return False
    subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
    return True


def one_learner_per_process(budget, folder):
    """Wall seconds of today's engine training the four problems one learner per process, two
    processes at a time (the old trainer's pool of 2)."""
    from combogrid import PROBLEMS
    start = time.perf_counter()
    for pair in (PROBLEMS[:2], PROBLEMS[2:]):
        children = [subprocess.Popen([sys.executable, "train_ppo.py", "--problems", problem, "--processes", "1",
                                      "--total-timesteps", str(budget), "--optimal-checks", "0",
                                      "--save-dir", os.path.join(folder, problem)],
                                     cwd=ROOT, stdout=subprocess.DEVNULL) for problem in pair]
        if any(child.wait() for child in children):
            raise SystemExit("error: a baseline run of train_ppo.py failed")
    return time.perf_counter() - start


def scaling(learner_counts=(1, 4, 8, 16, 40, 80), iterations=10):
    from decomposition.ppo import BatchedPPO, PPOSettings
    from combogrid import PROBLEMS, ComboGridVec
    torch.set_num_threads(1)
    settings = PPOSettings(total_timesteps=iterations * 2048, optimal_checks=0)
    iteration_seconds = []
    for count in learner_counts:
        problems = [PROBLEMS[i % len(PROBLEMS)] for i in range(count)]
        ppo = BatchedPPO(ComboGridVec(problems, settings.num_envs), list(range(count)), settings)
        start = time.perf_counter()
        ppo.train()
        seconds = time.perf_counter() - start
        iteration_seconds.append(seconds / iterations)
        print(f"{count:3d} learners: {count * settings.total_timesteps / seconds:9,.0f} steps/s  "
              f"({1000 * seconds / iterations:.0f} ms per iteration)", flush=True)
    # the wall ratio of 40 networks against 4 hangs on these two numbers (README, Speed)
    per_learner, fixed = np.polyfit(learner_counts, iteration_seconds, 1)
    print(f"an iteration costs about {1000 * fixed:.0f} ms + {1000 * per_learner:.2f} ms per learner "
          "(least squares over these runs)")


def median_pair(first, second, repetitions):
    """Median wall times of two commands (argument lists and folders) run alternately."""
    times = [[], []]
    for _ in range(repetitions):
        for k, (arguments, cwd) in enumerate((first, second)):
            times[k].append(wall_time(arguments, cwd))
    return [statistics.median(t) for t in times]


@fails_on()
def main(args):
    check(out_of_range(args, {"repetitions": POSITIVE, "budget": Range(2048, 10**9, words="a multiple of 2048, at least 2048")})
          or (f"--budget must be a multiple of 2048, got {args.budget}" if args.budget % 2048 else None))
    if args.scaling:
        return scaling()
    with tempfile.TemporaryDirectory() as folder:
        old = os.path.join(folder, "old")
        os.mkdir(old)
        batched = (["train_ppo.py", "--num-sets", "10", "--total-timesteps", str(args.budget), "--optimal-checks", "0",
                    "--save-dir", os.path.join(folder, "budget")], ROOT)
        if old_trainer(old):
            # a budget the old learning rate does not solve the problems within, so every learner runs it all
            baseline = "the old trainer"
            old_seconds, new_seconds = median_pair(
                (["train_ppo.py", "--total-timesteps", str(args.budget), "--save-dir",
                  os.path.join(folder, "old_models")], old), batched, args.repetitions)
        else:
            baseline = "today's engine, no git history to take the old trainer from"
            old_times, new_times = [], []
            for _ in range(args.repetitions):
                old_times.append(one_learner_per_process(args.budget, os.path.join(folder, "single")))
                new_times.append(wall_time(*batched))
            old_seconds, new_seconds = statistics.median(old_times), statistics.median(new_times)
        old_rate, new_rate = 4 * args.budget / old_seconds, 40 * args.budget / new_seconds
        print(f"steps/s  one learner per process (4 learners, pool of 2; {baseline}): {old_rate:9,.0f}  "
              f"({old_seconds:.1f} s)")
        print(f"steps/s  batched engine (40 learners):                      {new_rate:9,.0f}  ({new_seconds:.1f} s)")
        ratio = new_rate / old_rate
        print(f"ratio batched / one per process: {ratio:.1f}  target >= 10: {'met' if ratio >= 10 else 'MISSED'}",
              flush=True)

        one, ten = median_pair((["train_ppo.py", "--save-dir", os.path.join(folder, "one")], ROOT),
                               (["train_ppo.py", "--num-sets", "10", "--save-dir", os.path.join(folder, "ten")], ROOT),
                               args.repetitions)
        optimal = 0
        for k in range(10):
            with open(os.path.join(folder, "ten", f"set_{k}", "training.json")) as file:
                optimal += sum(n["optimal"] for n in json.load(file)["networks"].values())
        print(f"wall  4 networks until optimal:  {one:6.1f} s")
        print(f"wall  40 networks until optimal: {ten:6.1f} s  ({optimal}/40 optimal)")
        ratio = ten / one
        print(f"ratio 40 / 4 networks: {ratio:.2f}  target <= 2: {'met' if ratio <= 2 else 'MISSED'}")


if __name__ == "__main__":
    start(main, Args, unchanged="nothing was written")
