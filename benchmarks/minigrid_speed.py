"""MiniGrid's environment step against the kit's tables, measured side by side on this machine.

    python benchmarks/minigrid_speed.py                  # about 20 s
    python benchmarks/minigrid_speed.py --repetitions 3  # medians of 3 measurements each, alternating

Prints the environment steps per second of
  minigrid     one MiniGridGym (minigrid's own step, view and the kit's one-hot observation),
               random actions, reset at each episode's end: what a learner in the research code's
               setting steps;
  vector       gymnasium's SyncVectorEnv of --games MiniGridGyms, random actions: minigrid's own
               batching;
  tables       decomposition.gridworld.WorldGames with --games games stepped as one batch, with
               their observations, as the study's PPO learners step them;
and the ratios tables / minigrid and tables / vector, on --layout (default: the study's target).
"""

import os
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from decomposition.gridworld import LayoutError, MiniGridGym, World, parse_layout  # noqa: E402
from decomposition.script import POSITIVE, Range, check, fails_on, out_of_range, start  # noqa: E402


@dataclass
class Args:
    layout: str = "MiniGrid-FourRooms-v0:35"
    """the layout stepped, ENV_ID:SEED"""
    steps: int = 20_000
    """environment steps per measurement of minigrid alone (the vector env and the tables take as many
    per game batch step, times --games)"""
    games: int = 256
    """games stepped together by the vector env and by the tables (a study's 16 learners x 16 environments)"""
    repetitions: int = 1
    """measurements of each, alternating; the medians are compared (timings here vary by 10% or more)"""


RANGES = {"steps": Range(100, 10**8), "games": Range(1, 10**5), "repetitions": POSITIVE}


def minigrid_rate(lay, steps):
    env, rng = MiniGridGym(lay.env_id, lay.seed, lay.view), np.random.default_rng(0)
    env.reset()
    actions = rng.integers(3, size=steps)
    started = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(int(action))
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - started)


def vector_rate(lay, steps, games):
    import gymnasium as gym
    envs = gym.vector.SyncVectorEnv([lambda: MiniGridGym(lay.env_id, lay.seed, lay.view)] * games)
    envs.reset()
    rng, batches = np.random.default_rng(0), max(1, steps // games)
    started = time.perf_counter()
    for _ in range(batches):
        envs.step(rng.integers(3, size=games))
    return batches * games / (time.perf_counter() - started)


def tables_rate(lay, steps, games):
    world = World([lay])
    played, rng = world.games(np.zeros(games, dtype=np.int64)), np.random.default_rng(0)
    batches = max(1, 10 * steps // games)
    actions = rng.integers(3, size=(batches, games))
    started = time.perf_counter()
    for row in actions:
        _, terminated, truncated = played.step(row)
        played.restart(terminated | truncated, world.start[0])
        played.observations()
    return batches * games / (time.perf_counter() - started)


@fails_on(LayoutError)
def main(args):
    check(out_of_range(args, RANGES))
    lay = parse_layout(args.layout)
    rates = {"minigrid": [], "vector": [], "tables": []}
    for repetition in range(args.repetitions):
        rates["minigrid"].append(minigrid_rate(lay, args.steps))
        rates["vector"].append(vector_rate(lay, args.steps, args.games))
        rates["tables"].append(tables_rate(lay, args.steps, args.games))
        print(f"repetition {repetition + 1}/{args.repetitions}: "
              + ", ".join(f"{name} {values[-1]:,.0f} steps/s" for name, values in rates.items()), flush=True)
    median = {name: statistics.median(values) for name, values in rates.items()}
    print(f"{lay.name}, {args.games} games per batch, medians of {args.repetitions}:")
    for name, value in median.items():
        print(f"  {name:<9} {value:>12,.0f} steps/s")
    print(f"tables / minigrid: {median['tables'] / median['minigrid']:.0f}x; "
          f"tables / vector: {median['tables'] / median['vector']:.0f}x")


if __name__ == "__main__":
    start(main, Args, "nothing was written")
