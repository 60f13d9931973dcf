"""How each stage's time and memory grow over the ComboGrid family, measured side by side.

    python benchmarks/family_cost.py                       # every game, 1 repetition (about 6 minutes)
    python benchmarks/family_cost.py --games 5x5 10x10 --repetitions 3

For each game, one command per stage, the games alternating within each repetition so that all
see the same machine load (medians over repetitions):
  ppo       train_ppo.py: 2 sets of the game's networks for a fixed budget (no early stop): steps/s
  extract   main.py --mask-inputs on the study's first optimal set (variants.py's networks)
  discover  discover.py --mask-inputs on that set
  reuse     downstream.py: none and inputs on the random task, 4 learners, a fixed budget
Prints each stage's wall time and peak memory per game, the PPO steps/s of 10x10 against 5x5
(target >= 0.5; the steps and training seconds train_ppo.py records, so that the start of the
process does not count), and writes a figure of time and memory against the number of open cells.
The stages after ppo need the networks of a variants.py run (--study-dir); a game without them is
measured on ppo alone.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from speed import ROOT  # benchmarks/ is the script's folder, so first on sys.path
from combogrid import GAMES, game_named  # noqa: E402  (speed set the path)
from decomposition.family import FAMILY_CANDIDATES, Layout  # noqa: E402
from decomposition.files import read_json, unwritable  # noqa: E402
from decomposition.script import Range, ScriptError, check, fails_on, out_of_range, start  # noqa: E402

PPO_BUDGET = 61_440  # environment steps per learner: 30 rollouts of 2048
STAGES = ("ppo", "extract", "discover", "reuse")


@dataclass
class Args:
    games: tuple[str, ...] = tuple(GAMES)
    """the games measured"""
    stages: tuple[str, ...] = STAGES
    """the stages measured (ppo, extract, discover, reuse)"""
    repetitions: int = 1
    """runs of each command, games alternating; the medians are compared"""
    study_dir: str = "results/variants"
    """a variants.py study folder whose networks the stages after ppo use"""
    figure: str = "runs/family_cost.png"
    """where the figure is written"""


def measured(arguments):
    """(seconds, peak resident megabytes) of `python ARGUMENTS` run in the kit's folder."""
    began = time.perf_counter()
    child = subprocess.Popen([sys.executable, *arguments], cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    try:
        _, status, usage = os.wait4(child.pid, 0)
    except BaseException:  # Ctrl-C or SIGTERM: the measured script stops too
        child.terminate()
        child.wait()
        raise
    seconds = time.perf_counter() - began
    if status:
        message = child.stderr.read().decode().strip().splitlines()
        raise SystemExit(f"error: {' '.join(arguments[:1])} failed: {message[-1] if message else status}")
    return seconds, usage.ru_maxrss / 1024


def training_rate(folder):
    """Environment steps per second of a train_ppo.py run, from the training.json of its sets: every
    network's steps over the run's training seconds (the imports and the start left out)."""
    records = [read_json(os.path.join(folder, name, "training.json")) for name in sorted(os.listdir(folder))]
    steps = sum(network["steps"] for record in records for network in record["networks"].values())
    return steps / records[0]["seconds"]


def commands(game, study_dir, scratch):
    """{stage: arguments} for one game; only ppo where the study has no optimal set of the game."""
    result = {"ppo": ["train_ppo.py", "--game", game.name, "--num-sets", "2", "--total-timesteps", str(PPO_BUDGET),
                      "--optimal-checks", "0", "--save-dir", os.path.join(scratch, game.name)]}
    layout = Layout(study_dir, game)
    sets = layout.sets(layout.optimal_sets)
    if not sets:
        return result
    paths = [os.path.join(sets[0], f"{p}.pt") for p in game.problems]
    result["extract"] = ["main.py", "--game", game.name, "--mask-inputs", "--log-every", "0", "--model-paths", *paths]
    result["discover"] = ["discover.py", "--game", game.name, "--mask-inputs", "--log-every", "0", *FAMILY_CANDIDATES,
                          "--model-paths", *paths]
    result["reuse"] = ["downstream.py", "--game", game.name, "--tasks", "random", "--conditions", "none", "inputs",
                       "--num-seeds", "4", "--learning-rates", "0.016", "--mask-seeds", "1", "--budget", "40960",
                       "--eval-points", "4", "--save-dir", os.path.join(scratch, f"reuse-{game.name}"),
                       "--model-paths", *paths]
    return result


def figure(rows, path):
    """Time and memory of each stage against the open cells; a line joins the games that differ only
    in their grid and walls (same combo length and number of problems)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    kinds = sorted({(r["combo_length"], r["problems"]) for r in rows})
    for stage, colour in zip(STAGES, ("C0", "C1", "C2", "C3")):
        for (length, problems), marker in zip(kinds, "osD^v"):
            points = sorted((r["cells"], r[stage]) for r in rows
                            if stage in r and (r["combo_length"], r["problems"]) == (length, problems))
            if points:
                cells, values = zip(*points)
                label = f"{stage} (combos of {length}, {problems} problems)"
                for axis, k in zip(axes, (0, 1)):
                    axis.plot(cells, [v[k] for v in values], marker=marker, color=colour, label=label)
    axes[0].set_ylabel("wall seconds (median)")
    axes[1].set_ylabel("peak resident MB")
    for axis in axes:
        axis.set_xlabel("open cells of the game")
        axis.legend(fontsize=6)
    fig.savefig(path, dpi=90, format="png")
    plt.close(fig)


def check_args(args):
    """The first fault of the arguments, as a message, or None."""
    unknown = [g for g in args.games if g not in GAMES] + [s for s in args.stages if s not in STAGES]
    if unknown:
        return f"unknown game or stage {unknown[0]!r}: games {', '.join(GAMES)}; stages {', '.join(STAGES)}"
    for name, values in (("games", args.games), ("stages", args.stages)):
        if not values or len(set(values)) != len(values):
            return f"--{name} must name each one once, and at least one"
    if set(args.stages) != {"ppo"} and not os.path.isdir(args.study_dir):
        return f"--study-dir {args.study_dir} is not a folder (a variants.py study, whose networks the stages after ppo use)"
    folder = os.path.dirname(args.figure) or "."
    if args.figure and (os.path.isdir(args.figure) or unwritable(folder)):
        return f"cannot write --figure {args.figure}: {unwritable(folder) or 'it is a folder'}"
    return out_of_range(args, {"repetitions": Range(1, 20)})


@fails_on()
def main(args):
    check(check_args(args))
    games = [game_named(g) for g in args.games]
    with tempfile.TemporaryDirectory() as scratch:
        plans = {game.name: commands(game, args.study_dir, scratch) for game in games}
        unmeasured = [f"{stage} of {name}" for name, plan in plans.items() for stage in args.stages if stage not in plan]
        if len(unmeasured) == len(games) * len(args.stages):
            raise ScriptError(f"nothing to measure: {args.study_dir} holds no optimal network set of "
                              f"{', '.join(plans)} (the stages after ppo run on its networks)")
        for stage in unmeasured:
            print(f"{stage}: not measured (no optimal network set of the game in {args.study_dir})", flush=True)
        times = {(g, stage): [] for g, plan in plans.items() for stage in plan}
        ppo_rates = {game.name: [] for game in games}
        for repetition in range(args.repetitions):
            for stage in args.stages:
                for game in games:  # the games side by side, stage by stage
                    if stage in plans[game.name]:
                        times[game.name, stage].append(measured(plans[game.name][stage]))
                        print(f"repetition {repetition + 1}, {stage}, {game.name}: "
                              f"{times[game.name, stage][-1][0]:.1f} s", flush=True)
                        if stage == "ppo":
                            ppo_rates[game.name].append(training_rate(os.path.join(scratch, game.name)))
    rows = []
    for game in games:
        row = {"game": game.name, "cells": len(game.open_cells), "combo_length": game.combo_length,
               "problems": len(game.problems)}
        for stage in args.stages:
            if times.get((game.name, stage)):
                runs = times[game.name, stage]
                row[stage] = (statistics.median(s for s, _ in runs), max(m for _, m in runs))
        if ppo_rates[game.name]:
            row["steps_per_second"] = statistics.median(ppo_rates[game.name])
        rows.append(row)
    print(f"{'game':<16}{'cells':>6}{'L':>3}{'PPO steps/s':>13}" +
          "".join(f"{stage + ' s / MB':>20}" for stage in ("ppo", "extract", "discover", "reuse")))
    for row in rows:
        cells = "".join(f"{row[s][0]:>11.1f} / {row[s][1]:>5.0f}" if s in row else f"{'-':>20}" for s in STAGES)
        rate = f"{row['steps_per_second']:>13,.0f}" if "steps_per_second" in row else f"{'-':>13}"
        print(f"{row['game']:<16}{row['cells']:>6}{row['combo_length']:>3}{rate}{cells}")
    rates = {row["game"]: row["steps_per_second"] for row in rows if "steps_per_second" in row}
    if "5x5" in rates and "10x10" in rates:
        ratio = rates["10x10"] / rates["5x5"]
        print(f"PPO steps/s, 10x10 / 5x5: {ratio:.2f}  target >= 0.5: {'met' if ratio >= 0.5 else 'MISSED'}")
    if args.figure:
        os.makedirs(os.path.dirname(args.figure) or ".", exist_ok=True)
        figure(rows, args.figure)
        print(f"wrote {args.figure}")


if __name__ == "__main__":
    start(main, Args, unchanged="nothing was written but the figure")
