"""The ComboGrid family study: the kit's studies repeated on every named game (combogrid.GAMES).

    python variants.py                                   # every game, into runs/variants (resumable)
    python variants.py --games 5x5 5x5-hallways          # some of them
    python variants.py --save-dir results/variants       # the shipped study (report.py reads it)

Per game, four stages, each one of the kit's own commands (printed as it starts), each skipped
when its output is already in --save-dir, so an interrupted study goes on where it stopped:
1. train     python train_ppo.py --game G --num-sets N: N independent sets of networks; the sets whose
             networks are all optimal go on (optimal_sets/ links to them).
2. extract   python main.py --game G --sets-dir ...: both masking schemes on every optimal set; needed
             against not-needed pairs per set.
3. reuse     python downstream.py --game G: the first optimal set's functions as options on the game's
             multi-goal and random tasks, against none, whole networks, fixed combos and
             neural-augmented, learning rates tuned per condition on their own seeds.
4. discover  python discover.py --game G --mask-inputs --sets-dir ...: discovery on the first
             --discovery-sets optimal sets; precision and recall against the true combos.
Then one table and one figure over the games: summary.md, summary.json and summary.png.
"""

if __name__ == "__main__":  # first, so that a Ctrl-C while the libraries load is one line too
    from decomposition.script import stop_quietly_until_started
    stop_quietly_until_started()


import time
from dataclasses import dataclass

from combogrid import GAMES
from decomposition import family
from decomposition.files import unwritable
from decomposition.script import Range, check, fails_on, out_of_range, start
from decomposition.study import run_study

KEPT = "the stages done so far are kept, and a rerun goes on from there"


@dataclass
class Args:
    games: tuple[str, ...] = tuple(GAMES)
    """the games studied (combogrid.GAMES)"""
    num_sets: int = 10
    """independent network sets trained per game"""
    mask_seeds: int = 2
    """mask seeds of the extraction on every set (main.py --num-seeds)"""
    reuse_seeds: int = 8
    """reported PPO learners per task and condition of the reuse study"""
    tuning_seeds: int = 2
    """learners per learning rate when tuning each condition's rate (seeds disjoint from the reported ones)"""
    learning_rates: tuple[float, ...] = (8e-3, 1.6e-2)
    """the learning rates tuned over"""
    reuse_budget: int = 100_000
    """primitive steps per reuse learner on a 25-cell game; larger grids get it times their cells / 25"""
    discovery_sets: int = 2
    """optimal sets discovery runs on (the first ones)"""
    save_dir: str = "runs/variants"
    """folder of the study: one folder per game and the summary (--save-dir results/variants replaces the shipped one)"""
    processes: int = 2
    """processes of one torch thread each for the PPO stages (the cores to use)"""


RANGES = {"num_sets": Range(2, 100, words="between 2 and 100 (the study compares sets)"),
          "mask_seeds": Range(1, 100), "reuse_seeds": Range(1, 1000), "tuning_seeds": Range(1, 100),
          "reuse_budget": Range(2048, 10**9), "discovery_sets": Range(1, 100), "processes": Range(1, 64)}


def check_args(args):
    """The first fault with the arguments, or None."""
    unknown = [name for name in args.games if name not in GAMES]
    if unknown:
        return f"unknown game {unknown[0]!r}: expected some of {', '.join(GAMES)}"
    if not args.games or len(set(args.games)) != len(args.games):
        return "--games must name each game once, and at least one"
    fault = out_of_range(args, RANGES)
    if fault:
        return fault
    if not args.learning_rates or not all(0 < rate <= 1 for rate in args.learning_rates):
        return "--learning-rates needs rates between 0 and 1"
    if unwritable(args.save_dir):
        return f"cannot write to --save-dir {args.save_dir}: {unwritable(args.save_dir)}"
    return None


@fails_on(family.StudyError)
def main(args):
    check(check_args(args))
    started = time.time()
    run_study(family.stages(args), KEPT)
    summary = family.summarise(args.save_dir, args.games)
    print(family.table(summary))
    family.save(summary, args.save_dir)
    print(f"{time.time() - started:.0f} s in all; wrote summary.md, summary.json and summary.png "
          f"to {args.save_dir}")


if __name__ == "__main__":
    start(main, Args, unchanged=KEPT)
