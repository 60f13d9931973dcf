"""The Levin loss's dynamic programme, once per distinct state against once per position, side by side.

    python benchmarks/levin_speed.py                      # 5x5, the shipped networks (about 1 minute)
    python benchmarks/levin_speed.py --game 10x10 --model-paths results/variants/10x10/discovery_sets/set_0/{TL-BR,TR-BL,BR-TL,BL-TR}.pt

The evidence is discover.py's: each network's greedy solutions from every start cell. The options
are every sequence of 2 to --max-length actions the solutions play, each applicable wherever a
solution goes on with it and barred from one network's problem; the option sets are --sets random
sets of --set-size of them, the batch local search evaluates at once. Prints the seconds of one
batch both ways (medians of --repetitions, alternating), their ratio, and that the decisions are
the same.
"""

import os
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from decomposition import combo_discovery, extraction, levin  # noqa: E402
from decomposition.script import POSITIVE, Range, ScriptError, check, fails_on, out_of_range, start  # noqa: E402
from ppo_agent import CheckpointError  # noqa: E402


RANGES = {"max_length": Range(2, 20), "sets": POSITIVE, "set_size": POSITIVE, "repetitions": POSITIVE,
          "seed": Range(0, 2**32 - 1)}


@dataclass
class Args:
    game: str = "5x5"
    """the networks' game"""
    model_paths: tuple[str, ...] = ()
    """the networks' checkpoints (default: discover.py's)"""
    max_length: int = 6
    """longest option, in actions"""
    sets: int = 600
    """option sets in one batch"""
    set_size: int = 5
    """options per set"""
    repetitions: int = 5
    """timings of each way, alternating; the medians are compared"""
    seed: int = 0
    """seed of the option sets"""


def sequence_options(evidence, max_length, rng):
    """(applicable (K, positions), network (K,), length (K,)): every sequence the solutions play."""
    solution, lengths = np.concatenate(evidence.actions), np.array(evidence.lengths)
    end = np.repeat(np.cumsum(lengths), lengths)
    sequences = sorted({tuple(solution[j:j + n]) for j in range(len(solution)) for n in range(2, max_length + 1)
                        if j + n <= end[j]})
    table = np.zeros((len(sequences), len(solution)), dtype=bool)
    index = {q: k for k, q in enumerate(sequences)}
    for j in range(len(solution)):
        for n in range(2, min(max_length, end[j] - j) + 1):
            table[index[tuple(solution[j:j + n])], j] = True
    network = rng.integers(int(evidence.problem.max()) + 1, size=len(sequences))
    return table, network, np.array([len(q) for q in sequences])


def seconds(loss, sets):
    began = time.perf_counter()
    decisions = loss.decisions(sets)
    return time.perf_counter() - began, decisions


@fails_on(CheckpointError)
def main(args):
    check(out_of_range(args, RANGES))
    settings = extraction.ExtractionSettings(game=args.game, model_paths=args.model_paths)
    check(settings.fault())
    agents = extraction.load_agents(settings)
    game = extraction.game_of(settings)
    rng = np.random.default_rng(args.seed)
    evidence = combo_discovery.every_start_evidence(agents, game)
    table, network, length = sequence_options(evidence, args.max_length, rng)
    sets = np.array([rng.choice(len(length), size=min(args.set_size, len(length)), replace=False)
                     for _ in range(args.sets)])
    common = (table, network, length, evidence.lengths)
    ways = {"per position": levin.LevinLoss(*common, problem=evidence.problem),
            "per state": levin.LevinLoss(*common, problem=evidence.problem,
                                             states=evidence.games.decision_states())}
    print(f"{args.game}: {len(evidence.actions)} solutions, {len(table[0])} positions, "
          f"{ways['per state'].target.shape[1]} distinct states, {len(length)} options, {args.sets} sets of "
          f"{args.set_size}")
    times, answers = {way: [] for way in ways}, {}
    for _ in range(args.repetitions):
        for way, loss in ways.items():
            spent, answers[way] = seconds(loss, sets)
            times[way].append(spent)
    medians = {way: statistics.median(t) for way, t in times.items()}
    for way, median in medians.items():
        print(f"  {way:<13} {median:8.3f} s per batch (median of {args.repetitions})")
    same = np.array_equal(answers["per position"], answers["per state"])
    print(f"  per position / per state: {medians['per position'] / medians['per state']:.1f}x; "
          f"the same decisions: {'yes' if same else 'NO'}")
    if not same:
        raise ScriptError("the two programmes gave different decisions")


if __name__ == "__main__":
    start(main, Args, "nothing was written")
