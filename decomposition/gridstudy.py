"""The MiniGrid study (minigrid_study.py is the script; docs/minigrid.md the reading): options
discovered in networks trained on small fixed-seed MiniGrid layouts, reused on a harder one.

1. Sources: in each of several independent sets, one PPO network per source layout (the kit's
   batched engine on decomposition.gridworld's tables), each checked to reach its goal in the
   fewest steps, greedily, in minigrid itself (MiniGridGym).
2. Discovery: the kit's own (decomposition.discovery.choose_options) on each set's networks and
   their greedy solutions: candidate masks on every segment, Levin-loss selection.
3. Reuse on the target layout, with the reuse study's protocol (decomposition.reuse): +10 on
   reaching the goal, 0 otherwise; options discounted per primitive step; greedy evaluation
   curves (success, and SPL against the fewest steps); learning rates tuned per condition on
   seeds disjoint from the reported ones. The conditions (CONDITIONS), all from one set:

    none               the 3 primitive actions only
    discovered         + the options the set's discovery chose, each of its own length
    fixed-discovered   + the chosen options' segments as fixed macro-actions (the same actions
                       wherever they start: does it matter that an option reads its state?)
    random-segments    + as many candidates of the same lengths drawn at random among those that
                       reproduce their segment: masks fit to segments no selection chose
    random-sequences   + as many fixed macro-actions of the same lengths, each action uniformly
                       random (the control: macro-actions that know nothing of the task)
    whole              + the chosen options' networks unmasked, each for its option's length
    neural-augmented   + one one-step action per network of the set: its greedy action
"""

import re
from dataclasses import dataclass
from functools import partial

import numpy as np
from tabulate import tabulate

from decomposition import reuse, statistics
from decomposition.candidate_options import greedy_rollouts
from decomposition.gridworld import NUM_ACTIONS, MiniGridGym, World, WorldGames, WorldVec
from decomposition.options import FixedOptions, NetworkOptions
from decomposition.processes import train_in_processes
from decomposition.script import ScriptError
from ppo_agent import PPOAgent, program_mask, rollout

GOAL_REWARD = 10.0
CONDITIONS = ("none", "discovered", "fixed-discovered", "random-segments", "random-sequences", "whole",
              "neural-augmented")


@dataclass(frozen=True)
class GridTask:
    """The downstream task on one layout, as decomposition.reuse trains it: GOAL_REWARD on reaching
    the goal, 0 otherwise, from the layout's start."""
    world: World

    max_return = GOAL_REWARD

    @property
    def name(self):
        return self.world.problems[0]

    def __str__(self):
        return self.name

    def envs(self, seeds, num_envs, options):
        """One learner per seed, all from the layout's start (nothing of it is random)."""
        return WorldVec(self.world, [0] * len(seeds), num_envs, options, GOAL_REWARD, 0.0)


def checkpoint_name(layout_name):
    """A layout's network file name: SimpleCrossingS9N1-v0:0 -> SimpleCrossingS9N1-v0_0.pt."""
    return re.sub(r"[^A-Za-z0-9.-]", "_", layout_name) + ".pt"


def source_seed(seed, set_index, layout, attempt, layouts, attempts):
    """The PPO seed of one attempt at one set's network of one layout: all distinct."""
    return seed + (set_index * layouts + layout) * attempts + attempt


def source_envs(world, layouts, num_envs, learners):
    return WorldVec(world, [layouts[j] for j in learners], num_envs)


def train_sources(world, num_sets, attempts, ppo, seed, processes, on_iteration=None):
    """Per set, per layout of the world, the first of `attempts` PPO networks whose greedy policy is
    optimal (all attempts trained as one batched run): [[(state_dict, seed, steps), ...], ...].
    A layout none of whose attempts is solved is a ScriptError."""
    count = len(world.problems)
    plan = [(s, lay, a) for s in range(num_sets) for lay in range(count) for a in range(attempts)]
    seeds = [source_seed(seed, s, lay, a, count, attempts) for s, lay, a in plan]
    layouts = [lay for _, lay, _ in plan]
    results = train_in_processes(partial(source_envs, world, layouts, ppo.num_envs), seeds, ppo, processes,
                                 on_iteration)
    sets = [[] for _ in range(num_sets)]
    for first in range(0, len(plan), attempts):  # the attempts of one (set, layout) are consecutive
        s, lay, _ = plan[first]
        solved = [r for r in results[first:first + attempts] if r.solved]
        if not solved:
            raise ScriptError(f"no PPO network of set {s} solved {world.problems[lay]} within "
                              f"{ppo.total_timesteps:,} steps ({attempts} attempts): raise --source-budget")
        sets[s].append(solved[0])
    return sets


def agent_of(state_dict, env, hidden_size):
    agent = PPOAgent(env, hidden_size)
    agent.load_state_dict(state_dict)
    return agent


def solutions(agents, world):
    """Each network's greedy episode on its layout, played in minigrid itself (MiniGridGym); a
    ScriptError unless it reaches the goal in the layout's fewest steps."""
    found = []
    for agent, lay in zip(agents, world.layouts):
        env = MiniGridGym(lay.env_id, lay.seed, lay.view)
        trajectory = rollout(env, agent._get_action, 4 * lay.optimal)
        if len(trajectory) != lay.optimal or env.state()[:2] != lay.goal:
            raise ScriptError(f"the network of {lay.name} does not solve it in minigrid in {lay.optimal} steps")
        found.append(trajectory)
    return found


def option_sets(agents, choice, solutions, target, seed):
    """The option set of each condition of CONDITIONS on the target World, and where each option
    comes from. choice: choose_options' result on these agents and their solutions (actions)."""
    candidates = choice.candidates
    chosen = candidates.subset(choice.chosen)
    drawn = candidates.subset(random_candidates(candidates, choice.chosen, seed))
    lengths = chosen.length.tolist()
    segments = [solutions[p][start:start + n] for p, start, n in zip(chosen.source, chosen.start, lengths)]
    sequences = [np.random.default_rng([seed, k]).integers(NUM_ACTIONS, size=n).tolist() for k, n in enumerate(lengths)]
    unmasked = program_mask(agents[0].hidden_size)
    options = {"none": None,
               "discovered": candidate_options(chosen, agents, target),
               "fixed-discovered": FixedOptions(segments),
               "random-segments": candidate_options(drawn, agents, target),
               "random-sequences": FixedOptions(sequences),
               "whole": NetworkOptions([agents[n] for n in chosen.network], unmasked.expand(len(chosen), -1, -1),
                                       length=lengths, game=target),
               "neural-augmented": NetworkOptions(agents, unmasked.expand(len(agents), -1, -1), length=1, game=target)}
    sources = {"discovered": on_target(chosen, agents, solutions, target),
               "random-segments": on_target(drawn, agents, solutions, target),
               "fixed-discovered": [played(x) for x in segments], "random-sequences": [played(x) for x in sequences],
               "whole": [{"network": int(n), "length": n_steps} for n, n_steps in zip(chosen.network, lengths)],
               "neural-augmented": [{"network": n, "length": 1} for n in range(len(agents))]}
    return options, sources


def on_target(candidates, agents, solutions, target):
    """Per candidate: where it comes from, its segment, and what it plays from the target's states:
    the fraction from which it plays its own segment, and its most frequent sequence with its fraction."""
    actions = option_actions(candidates, agents, target)
    described = []
    for k in range(len(candidates)):
        network, source, start, length = (int(x[k]) for x in (candidates.network, candidates.source,
                                                              candidates.start, candidates.length))
        segment = played(solutions[source][start:start + length])
        sequences = [played(a[:length]) for a in actions[k]]
        names, counts = np.unique(sequences, return_counts=True)
        described.append({"network": network, "source": source, "start": start, "length": length,
                          "segment": segment, "plays_segment": sequences.count(segment) / len(sequences),
                          "most_played": str(names[np.argmax(counts)]), "most_played_fraction": counts.max() / len(sequences)})
    return described


def forward_share(described):
    """The fraction of forward moves in these options' segments."""
    text = "".join(d["segment"] for d in described)
    return text.count("F") / len(text) if text else 0.0


def random_candidates(candidates, chosen, seed):
    """Per chosen option, a different candidate of the same length drawn uniformly (one draw per
    option, without repeats)."""
    rng = np.random.default_rng(seed)
    drawn = []
    for k in chosen:
        pool = np.setdiff1d(np.flatnonzero(candidates.length == candidates.length[k]), [*chosen, *drawn])
        drawn.append(int(rng.choice(pool)))
    return drawn


def candidate_options(candidates, agents, target):
    return NetworkOptions([agents[n] for n in candidates.network], candidates.neuron_masks, candidates.input_masks,
                          candidates.input_fill, length=candidates.length.tolist(), game=target)


def option_actions(candidates, agents, target):
    """What each option plays from every state of the target: (K, states, longest length), -1 after
    its length or where the episode ends (the goal)."""
    return greedy_rollouts(candidates, agents, WorldGames(target, np.arange(target.num_states)))


ACTION_LETTERS = "LRF"  # turn left, turn right, forward


def played(actions):
    """An option's action sequence from one state as letters (L, R, F), up to where it stopped."""
    return "".join(ACTION_LETTERS[a] for a in actions if a >= 0)


def draw_options(actions, lengths, titles, layout, path, shown=6):
    """One panel per option on the layout's grid: each cell cut into four triangles, one per
    direction the agent may face (east, south, west, north), coloured by the action sequence the
    option plays from there; the `shown` most frequent sequences of each option get colours."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection
    from matplotlib.patches import Patch

    count = len(actions)
    figure, axes = plt.subplots(1, count, figsize=(3.6 * count, 5.0), squeeze=False, constrained_layout=True)
    palette = plt.get_cmap("tab10").colors
    corners = {0: ((1, 0), (1, 1)), 1: ((1, 1), (0, 1)), 2: ((0, 1), (0, 0)), 3: ((0, 0), (1, 0))}  # east .. north
    for k, axis in enumerate(axes[0]):
        sequences = [played(a[:lengths[k]]) for a in actions[k]]
        names, counts = np.unique(sequences, return_counts=True)
        top = list(names[np.argsort(-counts, kind="stable")][:shown])
        polygons, colours = [], []
        for (x, y, d), sequence in zip(layout.states, sequences):
            (ax, ay), (bx, by) = corners[d]
            polygons.append([(x + 0.5, y + 0.5), (x + ax, y + ay), (x + bx, y + by)])
            colours.append(palette[top.index(sequence)] if sequence in top else (0.85, 0.85, 0.85))
        axis.imshow(np.where(layout.cells_of("wall"), 0.2, np.where(layout.cells_of("goal"), 0.6, 1.0)), cmap="gray",
                    vmin=0, vmax=1, extent=(0, layout.grid.shape[1], layout.grid.shape[0], 0))
        axis.add_collection(PolyCollection(polygons, facecolors=colours, edgecolors="none"))
        sx, sy, _ = layout.states[layout.start]
        axis.plot(sx + 0.5, sy + 0.5, marker="*", color="black", markersize=10)
        axis.set_title(titles[k], fontsize=9)
        axis.set_xticks([])
        axis.set_yticks([])
        axis.legend(handles=[Patch(color=palette[i], label=f"{s} ({int(counts[names == s][0])})")
                             for i, s in enumerate(top)], fontsize=7, loc="upper center",
                    bbox_to_anchor=(0.5, -0.01), ncol=2, frameon=False)
    figure.savefig(path, dpi=90, format="png")
    plt.close(figure)


def summary_table(runs, task, conditions, tablefmt="github"):
    """The study's table: per condition, the evaluation AUC's IQM over every set and seed with its
    95% interval, the probability of improvement over none, the final success rate, and the IQM
    of each set alone."""
    stats = reuse.summaries(runs, [task], conditions)[task]
    sets = sorted({r["set"] for r in runs})
    rows = []
    for condition in conditions:
        mine = reuse.runs_of(runs, task, condition)
        per_set = [statistics.interquartile_mean([r["auc"] for r in mine if r["set"] == s]) for s in sets]
        rows.append([condition, reuse.interval(stats[condition]["iqm"]),
                     reuse.interval(stats[condition]["improvement_over_none"]),
                     f"{np.mean([r['final_success'] for r in mine]):.3f}", " ".join(f"{x:.2f}" for x in per_set)])
    return tabulate(rows, tablefmt=tablefmt, headers=[
        "condition", "IQM AUC [95% CI]", "P(better than none) [95% CI]", "final success",
        f"IQM AUC of sets {', '.join(map(str, sets))}"])


def goal(runs, task, conditions):
    """The issue's test, from the records: {condition: whether its IQM interval lies wholly above
    none's}, and whether discovered does while the random-segments control does not."""
    stats = reuse.summaries(runs, [task], conditions)[task]
    above = {c: stats[c]["iqm"][1] > stats["none"]["iqm"][2] for c in conditions if c != "none"}
    return above, bool(above.get("discovered")) and not above.get("random-segments", True)


def options_reading(sets):
    """What the discovered and the randomly drawn options are and do on the target, over every set
    (results.json's sets): a line each."""
    lines = []
    for condition in ("discovered", "random-segments"):
        described = [d for entry in sets for d in entry["option_sources"][condition]]
        most = [d["most_played"] for d in described]
        names, counts = np.unique(most, return_counts=True)
        lines.append(
            f"{condition}: {len(described)} options over {len(sets)} sets, mean length "
            f"{np.mean([d['length'] for d in described]):.1f}, forward moves {forward_share(described):.0%} of their "
            f"segments, {sum(any(a in d['segment'] for a in 'LR') for d in described)} with a turn; on the target each plays its own segment from {np.mean([d['plays_segment'] for d in described]):.0%} "
            f"of the states (mean), and its most frequent sequence from {np.mean([d['most_played_fraction'] for d in described]):.0%}; "
            f"that sequence is {names[np.argmax(counts)]} for {counts.max()} of them")
    return lines
