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
(target >= 0.5), and writes a figure of time and memory against the number of open cells.
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
from decomposition.family import Layout  # noqa: E402
from decomposition.script import Range, check, fails_on, out_of_range, start  # noqa: E402

PPO_BUDGET = 61_440  # environment steps per learner: 30 rollouts of 2048


@dataclass
class Args:
    games: tuple[str, ...] = tuple(GAMES)
    """the games measured"""
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
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - began
    if status:
        message = child.stderr.read().decode().strip().splitlines()
        raise SystemExit(f"error: {' '.join(arguments[:1])} failed: {message[-1] if message else status}")
    return seconds, usage.ru_maxrss / 1024


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
    result["discover"] = ["discover.py", "--game", game.name, "--mask-inputs", "--log-every", "0",
                          "--model-paths", *paths]
    result["reuse"] = ["downstream.py", "--game", game.name, "--tasks", "random", "--conditions", "none", "inputs",
                       "--num-seeds", "4", "--learning-rates", "0.016", "--mask-seeds", "1", "--budget", "40960",
                       "--eval-points", "4", "--save-dir", os.path.join(scratch, f"reuse-{game.name}"),
                       "--model-paths", *paths]
    return result


def figure(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for stage in ("ppo", "extract", "discover", "reuse"):
        for length, marker in ((3, "o"), (4, "s")):
            points = [(r["cells"], r[stage]) for r in rows if stage in r and r["combo_length"] == length]
            if points:
                cells, values = zip(*sorted(points))
                label = f"{stage} (combo length {length})"
                axes[0].plot(cells, [v[0] for v in values], marker=marker, label=label)
                axes[1].plot(cells, [v[1] for v in values], marker=marker, label=label)
    axes[0].set_ylabel("wall seconds (median)")
    axes[1].set_ylabel("peak resident MB")
    for axis in axes:
        axis.set_xlabel("open cells of the game")
        axis.legend(fontsize=7)
    fig.savefig(path, dpi=90, format="png")
    plt.close(fig)


@fails_on()
def main(args):
    unknown = [g for g in args.games if g not in GAMES]
    check(f"unknown game {unknown[0]!r}: expected some of {', '.join(GAMES)}" if unknown else
          out_of_range(args, {"repetitions": Range(1, 20)}))
    games = [game_named(g) for g in args.games]
    with tempfile.TemporaryDirectory() as scratch:
        plans = {game.name: commands(game, args.study_dir, scratch) for game in games}
        times = {(g, stage): [] for g, plan in plans.items() for stage in plan}
        for repetition in range(args.repetitions):
            for stage in ("ppo", "extract", "discover", "reuse"):
                for game in games:  # the games side by side, stage by stage
                    if stage in plans[game.name]:
                        times[game.name, stage].append(measured(plans[game.name][stage]))
                        print(f"repetition {repetition + 1}, {stage}, {game.name}: "
                              f"{times[game.name, stage][-1][0]:.1f} s", flush=True)
    rows = []
    for game in games:
        row = {"game": game.name, "cells": len(game.open_cells), "combo_length": game.combo_length}
        for stage in ("ppo", "extract", "discover", "reuse"):
            if (game.name, stage) in times:
                runs = times[game.name, stage]
                row[stage] = (statistics.median(s for s, _ in runs), max(m for _, m in runs))
        row["steps_per_second"] = 2 * len(game.problems) * PPO_BUDGET / row["ppo"][0]
        rows.append(row)
    print(f"{'game':<16}{'cells':>6}{'L':>3}{'PPO steps/s':>13}" +
          "".join(f"{stage + ' s / MB':>20}" for stage in ("ppo", "extract", "discover", "reuse")))
    for row in rows:
        cells = "".join(f"{row[s][0]:>11.1f} / {row[s][1]:>5.0f}" if s in row else f"{'-':>20}"
                        for s in ("ppo", "extract", "discover", "reuse"))
        print(f"{row['game']:<16}{row['cells']:>6}{row['combo_length']:>3}{row['steps_per_second']:>13,.0f}{cells}")
    rates = {row["game"]: row["steps_per_second"] for row in rows}
    if "5x5" in rates and "10x10" in rates:
        ratio = rates["10x10"] / rates["5x5"]
        print(f"PPO steps/s, 10x10 / 5x5: {ratio:.2f}  target >= 0.5: {'met' if ratio >= 0.5 else 'MISSED'}")
    if args.figure:
        os.makedirs(os.path.dirname(args.figure) or ".", exist_ok=True)
        figure(rows, args.figure)
        print(f"wrote {args.figure}")


if __name__ == "__main__":
    start(main, Args, unchanged="nothing was written but the figure")
