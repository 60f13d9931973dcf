"""Find the sub-functions without being told what they are: candidate options learned on every
segment of the solution trajectories, the few that best compress the other solutions chosen by
the Levin loss, and how well the chosen ones recover the true combos.

    settings = DiscoverySettings(game="5x5", mask_inputs=True)
    candidates, _, _ = learn_candidates(agents, trajectories, settings, game)   # a mask per (network, segment)
    table = applicability(candidates, agents, solutions_evidence(trajectories, game))  # where each reproduces a solution
    loss = LevinLoss(table, candidates.network, candidates.length, [len(t) for t in trajectories])
    chosen, value = select_options(loss, max_options, restarts, seed)
    options = candidates.subset(chosen)
    actions = greedy_rollouts(options, agents, test_games(game))      # (K, test states, length)
    measured = [recovery(actions[k, :, :options.length[k]], game) for k in range(len(options))]

discover() runs these steps on one set of networks; choose_options merges the candidates into
functions (candidates that play the same sequence from probe states) before the selection and
consolidates the chosen functions after it (consolidated_choice).

A candidate is network `network` under a mask learned so that it reproduces the actions of one
segment (problem `source`, actions start .. start + length) of another network's greedy
solution; as an option it acts greedily for `length` steps. discover.py is the script.
"""

import dataclasses
import itertools
import time
from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np
import torch
from tabulate import tabulate

from combogrid import ComboGridBatch, sized_game
from decomposition.extraction import discretize
from decomposition.masks import (MaskSettings, StackedActors, fit_masks, fit_masks_by_size, input_fills, polish_masks,
                                 stack_trajectories)
from decomposition.script import NON_NEGATIVE, POSITIVE, Range, game_problem, model_paths_problem, time_left
from ppo_agent import greedy_actions
from trajectory import Trajectory

RECOVERED = 0.9
"""An option performs a function if it does so from at least this fraction of the test states."""
CONSOLIDATION_ROUNDS = 3
"""Most times the chosen options' candidates are consolidated and the choice made again."""
ROLLOUT_GAMES = 2**18
"""Games stepped at once in a rollout (candidates x states): their observations take 4 x inputs bytes each."""


@dataclass
class SelectionSettings(MaskSettings):
    """How candidates are learned and chosen, on networks of any game (DiscoverySettings adds ComboGrid's)."""
    seed: int = 0
    """seed of the mask initialisation and of the search's restarts"""
    max_length: int = 6
    """longest segment, and option, in actions (segments have 2 to max_length actions)"""
    max_options: int = 5
    """most options chosen"""
    restarts: int = 100
    """local-search restarts of the selection, from random sets"""
    not_on_source: bool = False
    """never use an option on the solution its segment was cut from either (the research code's
    rule); by default an option is barred only from its own network's solution"""
    mask_seeds: int = 1
    """masks learned per (network, segment), from independent initialisations"""
    mask_inputs: bool = False
    """also learn a keep/drop mask over the input features, as main.py --mask-inputs"""
    input_fill: Literal["mean", "zero"] = "mean"
    """with --mask-inputs: what a dropped feature becomes, its mean over the segment's states or 0"""
    hidden_size: int = 64
    """hidden neurons of the networks"""

    RANGES = {**MaskSettings.RANGES, "max_options": Range(1, 20), "restarts": NON_NEGATIVE,
              "mask_seeds": Range(1, 20), "hidden_size": POSITIVE, "seed": Range(0, 2**63 - 1)}

    def length_problem(self, game):
        """--max-length against the shortest solution of `game` (a segment fits in every solution)."""
        shortest = min(game.solution_lengths())
        if not 2 <= self.max_length <= shortest:
            return (f"--max-length must be between 2 and {shortest} (the shortest solution of game {game.name}), "
                    f"got {self.max_length}")
        return None


@dataclass
class FunctionSettings(SelectionSettings):
    """SelectionSettings with candidates merged into functions on probe states (choose_options with
    probe games), on networks of any game."""
    merge: bool = True
    """one option per function: candidates that play the same actions from >= --merge-share of the probe
    states (the agent on any cell, the goal on a cell no training problem has) are one option, usable
    wherever one of them applies; the others stay options of their own"""
    keep_composites: bool = False
    """with merging: keep a chosen option that plays a concatenation of other chosen options' sequences (by
    default it is dropped, and the search goes on without it and without candidates that play one)"""
    merge_share: float = 0.75
    """with merging: candidates are one function if they play the same sequence from at least this
    fraction of the probe states"""
    consolidate: bool = True
    """with merging: polish the chosen options' candidates again on their training sets and on what their
    function plays from the probe states, and choose again, until the choice holds only such candidates
    (at most 3 times)"""

    RANGES = {**SelectionSettings.RANGES, "merge_share": Range(0.5, 1)}


@dataclass
class DiscoverySettings(FunctionSettings):
    """What a discovery on a ComboGrid game depends on (discover.py's options without its output,
    study and thread options)."""
    game: str = "5x5"
    """the game of the networks (combogrid.GAMES)"""
    model_paths: tuple[str, ...] = ()
    """checkpoints of the networks, one per problem of the game in its order (TL-BR, TR-BL, BR-TL, BL-TR for
    5x5); default: models/PROBLEM.pt for 5x5, runs/models-GAME/PROBLEM.pt for another game"""
    every_start: bool = True
    """compute the Levin loss on each network's greedy solutions from every non-goal cell of its problem,
    not only on its solution from the problem's start (candidates are learned on the latter either way)"""
    occurrences: bool = True
    """learn each candidate on every occurrence of its segment's actions in the solutions the Levin loss is
    computed on, from the same position in the combo; off: on the segment alone"""
    polish: bool = True
    """after Adam, improve each candidate's neuron mask by local search (one neuron's state at a time)
    while the masked network takes more of its training actions greedily"""

    def problem(self):
        problem = super().problem() or game_problem(self)
        if problem:
            return problem
        game = sized_game(self.game)
        return model_paths_problem(self.model_paths, game) or self.length_problem(game)


@dataclass
class Candidates:
    """K candidate options: network k under neuron_masks[k] (and input_masks[k], dropped inputs set
    to input_fill[k]) acting for length[k] steps, learned on the segment source[k], start[k]."""
    network: np.ndarray            # (K,) index into PROBLEMS
    source: np.ndarray             # (K,) index into PROBLEMS of the solution the segment is cut from
    start: np.ndarray              # (K,) first action of the segment
    length: np.ndarray             # (K,) actions of the segment, and of the option
    neuron_masks: torch.Tensor     # (K, 3, H)
    best_loss: np.ndarray          # (K,) the mask's cross-entropy on its segment
    input_masks: Optional[torch.Tensor] = None   # (K, D) 1 = kept
    input_fill: Optional[torch.Tensor] = None    # (K, D)
    training_set: Optional[np.ndarray] = None    # (K,) the row of its training set (learn_candidates)

    def __len__(self):
        return len(self.network)

    def subset(self, which):
        """The candidates at these indices, in this order."""
        which = np.asarray(which, dtype=np.int64)
        pick = lambda x: None if x is None else x[torch.as_tensor(which)]  # noqa: E731
        return Candidates(self.network[which], self.source[which], self.start[which], self.length[which],
                          pick(self.neuron_masks), self.best_loss[which], pick(self.input_masks),
                          pick(self.input_fill), None if self.training_set is None else self.training_set[which])

    def actors(self, agents):
        """The candidates' networks stacked, one per candidate."""
        return StackedActors([agents[a] for a in self.network])


def segments(trajectories, max_length):
    """Every segment of 2 to max_length actions of every trajectory, as (problem, start, length),
    problem by problem, then by length, then by start."""
    return [(p, start, length) for p, trajectory in enumerate(trajectories)
            for length in range(2, min(max_length, len(trajectory)) + 1)
            for start in range(len(trajectory) - length + 1)]


def learn_candidates(agents, trajectories, settings, game, log=None, occurrences=None, polished=False):
    """A mask for every network and every segment of the other networks' solutions, all learned
    as one batch by fit_masks: so that the masked network takes the segment's actions from its
    states (settings, a DiscoverySettings). `log` reports the training's progress every
    settings.log_every steps (fit_masks).
    With `occurrences` (an Evidence), a segment's states are those of every occurrence of its actions
    in the evidence's solutions, from the same position in the combo (training_sets; the solutions
    of every network, the candidate's own included), and segments with the same actions from the
    same position are learned once. With `polished`, each neuron mask is then improved by local search
    on the same states (polish).
    Candidates whose greedy rollout from the segment's first state does not take the segment's
    actions are dropped: they are not the function they were trained to be. Returns the rest,
    {length: masks learned} and the training sets (observations, actions, weights; a candidate's is
    row candidates.training_set).

    fit_masks learns a mask for every (segment, network) pair of its batch; the pairs of a network
    and a segment of its own solution are learned too (the batch is a full grid) and left out.
    """
    cut = segments(trajectories, settings.checked().max_length)
    stands_for, observations, actions, weights = training_sets(cut, trajectories, game, occurrences)
    generator = torch.Generator().manual_seed(settings.seed)
    seeds, networks, inputs = settings.mask_seeds, len(agents), observations.shape[-1]
    neuron_theta = torch.randn(seeds, len(stands_for), networks, 3, settings.hidden_size, generator=generator)
    input_theta = input_fill = None
    if settings.mask_inputs:
        input_theta = torch.randn(seeds, len(stands_for), networks, 2, inputs, generator=generator)
        input_fill = input_fills(observations, weights, settings.input_fill)
    neuron_masks, input_masks, best_loss = fit_masks_by_size(
        StackedActors(agents), observations, actions, weights, neuron_theta, input_theta, settings, discretize,
        input_fill, log)

    # a network's candidate of a set stands for the set's first segment cut from another network's solution
    segment = {(c, a): next((x for x in segments_ if x[0] != a), None)
               for c, segments_ in enumerate(stands_for) for a in range(networks)}
    triples = [(s, c, a) for s in range(seeds) for c in range(len(stands_for)) for a in range(networks)
               if segment[c, a] is not None]
    s_index, c_index, a_index = (torch.tensor(x) for x in zip(*triples))
    source, start, length = (np.array(x) for x in zip(*(segment[c, a] for _, c, a in triples)))
    candidates = Candidates(
        network=a_index.numpy(), source=source, start=start, length=length,
        neuron_masks=neuron_masks[s_index, c_index, a_index].detach(),
        best_loss=best_loss[s_index, c_index, a_index].detach().numpy(),
        input_masks=None if input_masks is None else input_masks[s_index, c_index, a_index].detach(),
        input_fill=None if input_fill is None else input_fill[c_index], training_set=c_index.numpy())
    if polished:
        polish(candidates, agents, observations, actions, weights, c_index)
    learned = {int(n): int((candidates.length == n).sum()) for n in np.unique(candidates.length)}
    kept = candidates.subset(np.flatnonzero(reproduces_segment(candidates, agents, trajectories, game)))
    return kept, learned, (observations, actions, weights)


def polish(candidates, agents, observations, actions, weights, sets, size=2**25):
    """Polish each candidate's neuron mask in place (masks.polish_masks) on its training set: row
    sets[k] of observations (C, N, D), actions and weights (C, N). Candidates of similar set sizes
    together, each batch padded to its largest set and small enough that its (K, H, 3, N, actions - 1)
    tables stay under `size` numbers (counted as if with all actions)."""
    sizes = weights.gt(0).sum(1)[sets].clamp(min=1)
    order, done, per_pair = torch.argsort(sizes, stable=True), 0, candidates.neuron_masks[0].numel() * 3
    while done < len(order):
        # sorted by size, a batch's largest set is its last: take the longest run that fits
        ahead = sizes[order[done:]]
        fits = torch.arange(1, len(ahead) + 1) * ahead * per_pair <= size
        rows = order[done:done + max(1, int(fits.sum()))]
        n, part = int(sizes[rows].max()), candidates.subset(rows.numpy())
        candidates.neuron_masks[rows] = polish_masks(
            part.actors(agents), observations[sets[rows], :n], actions[sets[rows], :n], weights[sets[rows], :n],
            part.neuron_masks, part.input_masks, 0.0 if part.input_fill is None else part.input_fill)
        done += len(rows)


def training_sets(cut, trajectories, game, occurrences=None):
    """The segments of `cut` ((problem, start, length) each) as padded training sets (stack_trajectories)
    and, per set, the segments it stands for: each segment's own states and actions, or with
    `occurrences` (an Evidence) the states of every occurrence of its actions in the evidence's
    solutions, from the same position in the combo (start mod combo length), each distinct first
    state once; segments with the same actions from the same position are then one set."""
    if occurrences is None:
        sets = [trajectories[p][start:start + length] for p, start, length in cut]
        return [[segment] for segment in cut], *stack_trajectories(sets)
    solutions, lengths = np.concatenate(occurrences.actions), np.array(occurrences.lengths)
    ends = np.repeat(np.cumsum(lengths), lengths)
    position = np.arange(len(solutions)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    states, observations = occurrences.games.decision_states(), occurrences.games.observations()
    found = {}
    for p, start, length in cut:
        found.setdefault((start % game.combo_length, tuple(trajectories[p].get_actions()[start:start + length])),
                         []).append((p, start, length))
    sets = []
    for phase, actions in found:
        at = np.flatnonzero((position % game.combo_length == phase) & (np.arange(len(solutions)) + len(actions) <= ends))
        at = at[[tuple(solutions[q:q + len(actions)]) == actions for q in at]]
        _, first = np.unique(states[at], return_index=True)
        pairs = (at[np.sort(first)][:, None] + np.arange(len(actions))).reshape(-1)
        sets.append(Trajectory(observations[pairs], actions * (len(pairs) // len(actions))))
    return list(found.values()), *stack_trajectories(sets)


def solution_games(trajectories, game):
    """Every state of every solution as one batch of the game's games, in order, and for each
    state its (problem, position): the game's own solution_games."""
    return game.solution_games([t.get_actions() for t in trajectories])


@dataclass
class Evidence:
    """The solutions the Levin loss is computed on: every state of every solution as one batch of
    games, solution by solution, and per solution its actions and the index of its problem, whose
    network played it."""
    games: object
    actions: list
    problem: np.ndarray

    @property
    def lengths(self):
        return [len(a) for a in self.actions]


def solutions_evidence(trajectories, game):
    """The networks' solutions of their own problems, one each."""
    games, _ = solution_games(trajectories, game)
    return Evidence(games, [t.get_actions() for t in trajectories], np.arange(len(trajectories)))


@torch.no_grad()
def every_start_evidence(agents, game):
    """Each network's greedy solutions of its problem from every non-goal cell, empty buffer: those
    that reach the goal within twice the longest optimal solution (ComboGrid games)."""
    steps, actions, problems, starts = 2 * max(game.solution_lengths()), [], [], []
    for p, (agent, problem) in enumerate(zip(agents, game.problems)):
        cells = np.array(game.non_goal_cells(problem))
        played = ComboGridBatch(cells, [game.problem_cells(problem)[1]] * len(cells), game)
        taken = np.full((len(cells), steps), -1)
        alive = np.ones(len(cells), dtype=bool)
        for step in range(steps):
            chosen = greedy_actions(agent.actor(torch.from_numpy(played.observations()))).numpy()
            taken[alive, step] = chosen[alive]
            _, terminated, _ = played.step(chosen, alive)
            alive &= ~terminated
        for k in np.flatnonzero(~alive):
            actions.append(taken[k][taken[k] >= 0].tolist())
            problems.append(p)
            starts.append(cells[k])
    games, _ = game.solution_games(actions, problems, starts)
    return Evidence(games, actions, np.array(problems))


def chunks(candidates, size=512):
    """The candidates in consecutive parts of at most `size`, each with the index of its first:
    the batch of one rollout, and what bounds the memory of the tables built from the rollouts."""
    for start in range(0, len(candidates), size):
        yield start, candidates.subset(np.arange(start, min(start + size, len(candidates))))


@torch.no_grad()
def greedy_rollouts(candidates, agents, games):
    """The actions each candidate takes, acting greedily for its length from every game's state:
    (K, N, max length) with -1 after its length or after the episode ends (goal reached). Rolled out
    once per distinct decision state (solutions from different cells pass through the same states)."""
    _, first, inverse = np.unique(games.decision_states(), return_index=True, return_inverse=True)
    distinct, steps = games.subset(first), int(candidates.length.max())
    result = np.full((len(candidates), len(distinct), steps), -1, dtype=np.int64)
    for start, part in chunks(candidates, max(1, ROLLOUT_GAMES // len(distinct))):
        result[start:start + len(part)] = _rollouts(part, part.actors(agents), distinct, steps)
    return result[:, inverse.reshape(-1)]


def _rollouts(candidates, actors, games, steps):
    count, states = len(candidates), len(games)
    batch = games.subset(np.tile(np.arange(states), count))
    actions = np.full((count, states, steps), -1, dtype=np.int64)
    alive = np.ones(count * states, dtype=bool)
    length = np.repeat(candidates.length, states)
    fill = 0.0 if candidates.input_fill is None else candidates.input_fill
    for step in range(steps):
        alive &= length > step
        observations = torch.from_numpy(batch.observations()).view(count, states, -1)
        logits = actors.logits(actors.pre_activations(observations, candidates.input_masks, fill),
                               candidates.neuron_masks)
        taken = greedy_actions(logits).reshape(-1).numpy()
        actions[..., step] = np.where(alive, taken, -1).reshape(count, states)
        _, terminated, _ = batch.step(taken, alive)
        alive &= ~terminated
    return actions


def reproduces_segment(candidates, agents, trajectories, game):
    """(K,) whether each candidate's greedy rollout from its segment's first state takes the
    segment's actions."""
    games, _ = solution_games(trajectories, game)
    offsets = np.cumsum([0] + [len(t) for t in trajectories])
    firsts = offsets[candidates.source] + candidates.start
    starts = np.unique(firsts)
    taken = greedy_rollouts(candidates, agents, games.subset(starts))[np.arange(len(candidates)),
                                                                     np.searchsorted(starts, firsts)]
    solution = np.concatenate([t.get_actions() for t in trajectories])
    return np.array([np.array_equal(taken[k, :n], solution[f:f + n])
                     for k, (f, n) in enumerate(zip(firsts, candidates.length))], dtype=bool)


def applicability(candidates, agents, evidence):
    """(K, positions) whether candidate k's greedy rollout of its length from the state at each
    position of the evidence's solutions takes exactly the solution's next actions. Positions: every
    state of every solution, solution by solution; a candidate never applies past its solution's end."""
    solution = np.concatenate(evidence.actions)
    lengths = evidence.lengths
    end = np.repeat(np.cumsum(lengths), lengths)                 # (positions,) end of its solution
    position = np.arange(len(solution))
    steps = int(candidates.length.max()) if len(candidates) else 0
    ahead = np.full((len(solution), steps), -2)                  # the solution's next actions
    for step in range(steps):
        inside = position + step < end
        ahead[inside, step] = solution[position[inside] + step]
    table = np.zeros((len(candidates), len(solution)), dtype=bool)
    for start, part in chunks(candidates):                       # (part, positions, L) rollouts at a time
        taken = greedy_rollouts(part, agents, evidence.games)
        fits = position[None, :] + part.length[:, None] <= end[None, :]
        within = np.arange(taken.shape[-1])[None, None, :] < part.length[:, None, None]
        table[start:start + len(part)] = fits & ((taken == ahead[None, :, :taken.shape[-1]]) | ~within).all(-1)
    return table


def probe_games(game, half=None):
    """States no solution passes through, so no candidate is learned on them (consolidation fits the
    chosen ones on half 0): the agent on every open cell,
    the goal on a cell that is no training problem's goal, empty buffer. Those goal cells in
    row-major order are dealt out in turn: half 0 (the first, third, ...) is where candidates are
    merged into functions, half 1 where the chosen options' recovery is tested again, held out of
    everything else; half None: both (the test states instead if every open cell is some problem's goal)."""
    taken = {tuple(game.problem_cells(p)[1]) for p in game.problems}
    goals = [g for g in game.open_cells if tuple(g) not in taken]
    goals = goals if half is None else goals[half::2]
    pairs = [(a, g) for g in goals for a in game.open_cells if a != g]
    if not pairs:
        return test_games(game)
    return ComboGridBatch([a for a, _ in pairs], [g for _, g in pairs], game)


def behaviours(candidates, agents, games):
    """Per candidate, the action sequence it plays most often, acting for its length from the
    games' states (among the rollouts the goal does not end), and the fraction of the states from
    which it plays it (up to where the goal ends the rollout)."""
    sequences, shares = [], np.zeros(len(candidates))
    for start, part in chunks(candidates):                       # (part, states, L) rollouts at a time
        taken = greedy_rollouts(part, agents, games)
        for k, length in enumerate(part.length):
            rows = taken[k, :, :length]
            whole = rows[(rows >= 0).all(1)]
            played, counts = np.unique(whole if len(whole) else rows, axis=0, return_counts=True)
            sequences.append(tuple(played[np.argmax(counts)].tolist()))
            shares[start + k] = performs(rows, sequences[-1]).mean()
    return sequences, shares


def functions(sequences, shares, uses, least_share=RECOVERED):
    """Candidates grouped by what they do: those that play the same sequence from at least
    `least_share` of the probe states are one group, every other candidate a group of its own. Returns the groups
    (lists of candidate indices, in order of their first candidate) and each group's
    representative: its most consistent candidate, then the one that applies at most positions."""
    groups = {}
    for k, (sequence, share) in enumerate(zip(sequences, shares)):
        groups.setdefault(sequence if share >= least_share else k, []).append(k)
    groups = list(groups.values())
    return groups, np.array([max(g, key=lambda k: (shares[k], uses[k], -k)) for g in groups], dtype=np.int64)


def concatenation(sequence, parts):
    """Whether `sequence` is two or more of `parts` (sequences) played in turn."""
    parts = set(map(tuple, parts)) - {tuple(sequence)}
    ends = {0}                                 # the prefixes of `sequence` that parts spell out
    for end in range(1, len(sequence) + 1):
        if any(tuple(sequence[start:end]) in parts for start in ends):
            ends.add(end)
    return len(sequence) in ends


def without_composites(loss, chosen, sequences, shares, max_options, seed, least_share=RECOVERED):
    """The chosen set with every option that is a concatenation of other chosen ones dropped: the
    search goes on from the rest, over the candidates that are not such a concatenation either,
    until no chosen option is one. sequences and shares: per candidate, what it plays from the
    probe states and from what fraction; only sequences played from at least `least_share` count
    (the share at which candidates merge)."""
    reliable = shares >= least_share
    rng, value = np.random.default_rng(seed), float(loss(as_sets([chosen], max(len(chosen), 1)))[0])
    usable = np.ones(len(loss), dtype=bool)
    while True:
        parts = [sequences[k] for k in chosen if reliable[k]]
        dropped = [k for k in chosen if reliable[k] and concatenation(sequences[k], parts)]
        if not dropped:
            return chosen, value
        kept = [k for k in chosen if k not in dropped]
        parts = [sequences[k] for k in kept if reliable[k]]
        usable &= [not (reliable[k] and concatenation(sequences[k], parts)) for k in range(len(loss))]
        chosen, value = local_search(loss.merged([[k] if usable[k] else [] for k in range(len(loss))], loss.length),
                                     kept, max_options, rng)


class LevinLoss:
    """The Levin loss of option sets on the solutions, with the options' applicability precomputed.

    For one solution of n actions, d is the least number of decisions that reproduces it, where a
    decision is a primitive action (one step) or an applicable option (its length in steps), and
    an option is never used on a solution of its own network's problem; its loss is
    log(n + 1) + d log(K + 3) for K options. A set's loss is the sum over the solutions.
    """

    def __init__(self, applicable, network, length, trajectory_lengths, source=None, actions=3, problem=None,
                 states=None):
        """applicable (K, positions), solution by solution; network and length (K,); problem
        (solutions,): each solution's problem (default: solution k is of problem k). With source
        (K,), an option is not used on the solutions of the problem its segment was cut from either;
        with network None, on every solution (applicable is already barred). states (positions,): an
        id per position's state; positions of one problem's solutions with the same id must go on
        the same way (the networks are deterministic), and the programme runs once per such state
        (default: once per position)."""
        self.applicable = np.array(applicable, dtype=bool)             # (K, positions), a copy
        self.length = np.asarray(length)
        self.trajectory_lengths = np.array(trajectory_lengths, dtype=np.int64)
        self.problem = np.arange(len(self.trajectory_lengths)) if problem is None else np.asarray(problem)
        self.offsets = np.cumsum([0, *self.trajectory_lengths])
        self.actions = actions
        self.position_problem = np.repeat(self.problem, self.trajectory_lengths)
        end = np.repeat(self.offsets[1:], self.trajectory_lengths)
        self.applicable &= np.arange(len(end))[None, :] + self.length[:, None] <= end[None, :]
        if network is not None:
            barred = np.asarray(network)[:, None] == self.position_problem[None, :]
            if source is not None:
                barred |= np.asarray(source)[:, None] == self.position_problem[None, :]
            self.applicable &= ~barred
        self.states = np.arange(len(end)) if states is None else np.asarray(states)
        self._nodes(end)
        self.depth = float(np.log(self.trajectory_lengths + 1).sum())

    def _nodes(self, end):
        """The graph the programme runs on: a node per (problem, state), the node a primitive action
        leads to, the node each applicable option leads to (-1 where it does not apply), and the
        nodes by the actions left to the end (node N is the end)."""
        _, first, node = np.unique(np.stack([self.position_problem, self.states]), axis=1, return_index=True,
                                   return_inverse=True)
        count, node = len(first), np.append(node.reshape(-1), len(first))       # node of the position past the end
        # the node `steps` actions on from the position `start`
        to = lambda start, steps: np.where(start + steps < end[start], node[np.minimum(start + steps, len(end))],  # noqa: E731
                                           count)
        self.next = to(first, 1)
        self.target = np.full((len(self) + 1, count), -1, dtype=np.int64)      # the last row: no option
        k, n = np.nonzero(self.applicable[:, first])
        self.target[k, n] = to(first[n], self.length[k])
        left = end[first] - first
        self.levels = [np.flatnonzero(left == steps) for steps in range(1, int(left.max(initial=0)) + 1)]
        self.first_nodes = node[self.offsets[:-1]]

    def __len__(self):
        return len(self.length)

    def merged(self, groups, length):
        """The loss of options each usable wherever one of the candidates of its group (a list of
        indices) is: one option per group, of the given lengths."""
        table = np.array([self.applicable[g].any(0) for g in groups]).reshape(len(groups), -1)
        return LevinLoss(table, None, length, self.trajectory_lengths, actions=self.actions, problem=self.problem,
                         states=self.states)

    def decisions(self, sets):
        """(B, solutions) the least number of decisions per solution of each option set; sets
        (B, s) holds candidate indices, -1 for none. One dynamic programme from the end back, all
        nodes with as many actions left and all sets at once."""
        sets = np.asarray(sets, dtype=np.int64).reshape(len(sets), -1)
        index = np.where(sets >= 0, sets, len(self))[:, :, None]          # -1: the row that applies nowhere
        best = np.zeros((len(sets), self.target.shape[1] + 1), dtype=np.int64)   # decisions from a node to the end
        rows = np.arange(len(sets))[:, None, None]
        for level in self.levels:
            targets = self.target[index, level[None, None, :]]             # (B, s, nodes)
            via = np.where(targets >= 0, best[rows, targets], np.iinfo(np.int64).max - 1).min(1)
            best[:, level] = 1 + np.minimum(best[:, self.next[level]], via)
        return best[:, self.first_nodes]

    def __call__(self, sets):
        """(B,) the Levin loss of each option set (B, s), -1 for no option."""
        sets = np.asarray(sets, dtype=np.int64).reshape(len(sets), -1)
        options = (sets >= 0).sum(1)
        return self.depth + self.decisions(sets).sum(1) * np.log(options + self.actions)

    def uses(self):
        """(K,) the positions where each candidate is applicable: how much it can shorten."""
        return self.applicable.sum(1)


def as_sets(sets, width):
    """Lists of candidate indices as an array (B, width), -1 for none."""
    array = np.full((len(sets), max(width, 1)), -1, dtype=np.int64)
    for b, chosen in enumerate(sets):
        array[b, :len(chosen)] = sorted(chosen)
    return array


def select_greedy(loss, max_options):
    """Add, one at a time, the candidate whose addition gives the lowest loss, up to max_options;
    the best of these nested sets (the empty set included). A first option often costs more than
    it saves on its own (every decision gets dearer), so the greedy goes on past a rise."""
    chosen, best, value = [], [], float(loss(as_sets([[]], 1))[0])
    while len(chosen) < min(max_options, len(loss)):
        rest = np.setdiff1d(np.arange(len(loss)), chosen)
        values = loss(as_sets([chosen + [int(k)] for k in rest], len(chosen) + 1))
        chosen = chosen + [int(rest[np.argmin(values)])]
        if values.min() < value:
            best, value = sorted(chosen), float(values.min())
    return best, value


def local_search(loss, chosen, max_options, rng, sample=125, max_steps=1000):
    """Hill climbing from `chosen`: among the sets that add, swap in or drop one candidate (those
    added or swapped in drawn from `sample` candidates, more often the more places they apply),
    move to the best while it lowers the loss."""
    chosen = sorted(chosen)
    value = float(loss(as_sets([chosen], max_options))[0])
    weights = 0.1 + loss.uses()
    for _ in range(max_steps):
        rest = np.setdiff1d(np.arange(len(loss)), chosen)
        drawn = rng.choice(rest, size=min(sample, len(rest)), replace=False,
                           p=weights[rest] / weights[rest].sum()) if len(rest) else rest
        neighbours = [chosen + [int(k)] for k in drawn] if len(chosen) < max_options else []
        neighbours += [[c for c in chosen if c != out] + [int(k)] for out in chosen for k in drawn]
        if len(chosen) > 1:
            neighbours += [[c for c in chosen if c != out] for out in chosen]
        if not neighbours:
            break
        values = loss(as_sets(neighbours, max_options))
        best = int(np.argmin(values))
        if values[best] >= value:
            break
        chosen, value = sorted(neighbours[best]), float(values[best])
    return chosen, value


def select_options(loss, max_options, restarts, seed, log=None):
    """At most max_options candidates that minimise the Levin loss: the greedy set improved by
    local search, then local search from `restarts` random sets (of 1 to max_options - 1
    candidates, drawn more often the more places they apply); the best set found."""
    rng = np.random.default_rng(seed)
    if not len(loss):
        return [], float(loss(as_sets([[]], 1))[0])
    chosen, value = local_search(loss, select_greedy(loss, max_options)[0], max_options, rng)
    weights = 0.1 + loss.uses()
    sizes = np.arange(1, max(max_options, 2))
    size_weights = 1 / (3 * sizes + 2)
    started = time.time()
    for restart in range(restarts):
        size = min(int(rng.choice(sizes, p=size_weights / size_weights.sum())), len(loss))
        start = rng.choice(len(loss), size=size, replace=False, p=weights / weights.sum()).tolist()
        found, found_value = local_search(loss, start, max_options, rng)
        if found_value < value:
            chosen, value = found, found_value
        if log is not None:
            log(restart, restarts, value, time.time() - started)
    return chosen, value


def concatenations(length, game):
    """Every concatenation of the game's true combos with `length` actions: {name: actions}, e.g. "Down+Right"."""
    if length % game.combo_length:
        return {}
    combos = dict(game.combos)
    return {"+".join(names): sum((tuple(combos[n]) for n in names), ())
            for names in itertools.product(game.combo_names, repeat=length // game.combo_length)}


def performs(actions, sequence):
    """(N,) whether each row of actions (N, L), -1 after the episode ended, is `sequence` up to
    where its episode ended."""
    target = np.asarray(sequence)
    return ((actions == target) | (actions == -1)).all(-1)


def test_games(game):
    """One game per test state: every non-goal open cell of each problem, empty buffer."""
    return ComboGridBatch(*game.test_states(), game)


def recovery(actions, game):
    """What an option does from the test states, given its actions there (N, length), -1 after
    an episode ended: the fraction of the states from which it performs each true combo or
    concatenation of combos of its length, and the one it performs most often."""
    fractions = {name: float(performs(actions, sequence).mean())
                 for name, sequence in concatenations(actions.shape[1], game).items()}
    best = max(fractions, key=fractions.get) if fractions else None
    return {"fractions": fractions, "best_match": best, "best_fraction": fractions[best] if best else 0.0,
            "performs": best if best is not None and fractions[best] >= RECOVERED else None}


def ceiling(agents, game, settings):
    """How well masks of these networks can play each true combo at all, told the combo and fit on
    many states: per network and mask seed, a mask (settings' kind) fit on the combo played from
    every probe state, none of them a test state, and polished there if settings.polish. Returns, per
    combo, the highest fraction of the test states from which one of the masks plays the whole combo."""
    probe, combos = probe_games(game), [tuple(actions) for _, actions in game.combos]
    observations, actions, weights = stack_trajectories([Trajectory(*played_pairs(probe, combo)) for combo in combos])
    generator = torch.Generator().manual_seed(settings.seed)
    shape = (settings.mask_seeds, len(combos), len(agents))
    neuron_theta = torch.nn.Parameter(torch.randn(*shape, 3, settings.hidden_size, generator=generator))
    input_theta = fill = None
    if settings.mask_inputs:
        input_theta = torch.nn.Parameter(torch.randn(*shape, 2, observations.shape[-1], generator=generator))
        fill = input_fills(observations, weights, settings.input_fill)
    neuron_masks, input_masks, _, best_loss, _ = fit_masks(
        StackedActors(agents), observations, actions, weights, neuron_theta, input_theta,
        dataclasses.replace(settings, log_every=0), None, discretize, fill)
    seeds, combo, network = (x.reshape(-1) for x in np.indices(shape))
    masks = Candidates(network, np.zeros_like(combo), np.zeros_like(combo), np.full(len(combo), game.combo_length),
                       neuron_masks.detach().reshape(-1, *neuron_masks.shape[-2:]), best_loss.detach().reshape(-1).numpy(),
                       None if input_masks is None else input_masks.detach().reshape(-1, input_masks.shape[-1]),
                       None if fill is None else fill[torch.as_tensor(combo)])
    if settings.polish:
        polish(masks, agents, observations, actions, weights, torch.as_tensor(combo))
    taken = greedy_rollouts(masks, agents, test_games(game))
    played = np.array([performs(taken[k], combos[c]).mean() for k, c in enumerate(combo)])
    return {name: float(played[combo == c].max()) for c, name in enumerate(game.combo_names)}


def precision_recall(measured, game):
    """Precision: the fraction of the options that perform a true combo or a concatenation of
    combos from >= 90% of the states. Recall: the fraction of the true combos that some option
    performs, as its whole action sequence, from >= 90% of the states. measured: recovery()'s
    dicts. Returns precision, recall and the combos recalled."""
    names = game.combo_names
    recalled = [name for name in names if any(m["fractions"].get(name, 0.0) >= RECOVERED for m in measured)]
    precision = float(np.mean([m["performs"] is not None for m in measured])) if measured else 0.0
    return precision, len(recalled) / len(names), recalled


@dataclass
class Discovery:
    """One run: the candidates, the options chosen among them, their Levin loss and recovery."""
    candidates: dict          # {length: (masks learned, candidates kept)}
    options: Candidates       # the chosen options
    used_at: list             # per option, {problem: positions of its solutions where it applies}
    loss_without: float       # Levin loss of the solutions with primitive actions only
    loss_with: float          # ... with the chosen options
    decisions_without: list   # per problem, the decisions over its solutions with primitive actions only
    decisions_with: list      # ... with the chosen options
    measured: list            # per option, recovery()'s dict with its actions from every test state
    seconds: float
    game: object              # the combogrid.Game played
    evidence: dict            # {problem: the number of its solutions the Levin loss is computed on, their actions}

    def scores(self):
        return precision_recall(self.measured, self.game)

    def record(self, trajectories):
        """The run as a JSON-ready dict."""
        precision, recall, recalled = self.scores()
        options, problems = [], self.game.problems
        for k in range(len(self.options)):
            source, start, length = (int(x[k]) for x in (self.options.source, self.options.start, self.options.length))
            options.append({
                "network": problems[self.options.network[k]], "source": problems[source], "start": start,
                "length": length, "segment_actions": trajectories[source].get_actions()[start:start + length],
                "mask_loss": float(self.options.best_loss[k]), "uses": sum(self.used_at[k].values()),
                "used_at": self.used_at[k], **self.measured[k]})
        return {"candidates": {str(n): {"learned": learned, "kept": kept}
                               for n, (learned, kept) in self.candidates.items()},
                "solutions": {p: t.get_actions() for p, t in zip(problems, trajectories)},
                "evidence": self.evidence,
                "levin_loss_without": self.loss_without, "levin_loss": self.loss_with,
                "decisions_without": dict(zip(problems, self.decisions_without)),
                "decisions": dict(zip(problems, self.decisions_with)),
                "options": options, "precision": precision, "recall": recall, "recalled": recalled,
                "held_out": dict(zip(("precision", "recall", "recalled"),
                                     precision_recall([m["held_out"] for m in self.measured], self.game))),
                "seconds": self.seconds}


@dataclass
class Choice:
    """The method's result before it is measured against any true decomposition."""
    candidates: Candidates    # the options to choose from: every candidate that reproduces its segment, or
                              # with merging one per function (its representative)
    kept: dict                # {length: (masks learned, candidates kept)}
    loss: LevinLoss           # over the evidence's solutions, with the options' applicability
    chosen: list              # indices into candidates of the options chosen
    value: float              # the chosen set's Levin loss
    networks: list            # per option, the networks (problem indices) of the candidates it stands for
    sequences: Optional[list] = None     # with merging: per option, the sequence it plays from the probe states
    shares: Optional[np.ndarray] = None  # ... and the fraction of them from which its representative plays it
    groups: Optional[list] = None        # ... and the candidates of its function

    def compression(self):
        """The Levin loss without options and the decisions per problem (summed over its solutions)
        without and with the chosen ones."""
        none = as_sets([[]], 1)
        problems = int(self.loss.problem.max()) + 1
        per_problem = lambda d: np.bincount(self.loss.problem, d, problems).astype(int).tolist()  # noqa: E731
        return (float(self.loss(none)[0]), per_problem(self.loss.decisions(none)[0]),
                per_problem(self.loss.decisions(as_sets([self.chosen], max(len(self.chosen), 1)))[0]))


def merged_functions(candidates, loss, sequences, shares, say, least_share=RECOVERED):
    """One option per function (candidates that play the same sequence from the probe states,
    given as behaviours() of the candidates): their representatives, the merged loss, the groups,
    and per option its networks, sequence and the fraction of the probe states from which its
    representative plays it."""
    groups, representatives = functions(sequences, shares, loss.uses(), least_share)
    say(f"{len(groups)} functions: the candidates grouped by the sequence they play from the probe states")
    networks = [sorted({int(candidates.network[k]) for k in g}) for g in groups]
    return (candidates.subset(representatives), loss.merged(groups, candidates.length[representatives]), groups,
            networks, [sequences[k] for k in representatives], shares[representatives])


def played_pairs(games, sequence):
    """The (observation, action) pairs of `sequence` played from every game's state, up to where
    the goal ends a game: observations (N, D) and actions (N,)."""
    played, alive, observations, actions = games.subset(np.arange(len(games))), np.ones(len(games), dtype=bool), [], []
    for action in sequence:
        observations.append(played.observations()[alive])
        actions.append(np.full(int(alive.sum()), action))
        _, terminated, _ = played.step(np.full(len(played), action), alive)
        alive &= ~terminated
    return np.concatenate(observations), np.concatenate(actions)


def consolidate(candidates, members, sequences, agents, probe, sets):
    """Polish the neuron masks of candidates `members` again (in place), each on its training set
    (row training_set of sets: observations, actions, weights) and on `sequences` (one per member,
    what its function plays) played from every probe state: the function the selection found,
    made to hold wherever its candidates play it most of the time."""
    observations, actions, weights = sets
    played = {sequence: played_pairs(probe, sequence) for sequence in set(sequences)}  # a function's members share it
    extended = []
    for k, sequence in zip(members, sequences):
        row = candidates.training_set[k]
        n = int(weights[row].gt(0).sum())
        probe_observations, probe_actions = played[sequence]
        extended.append(Trajectory(np.concatenate([observations[row, :n].numpy(), probe_observations]),
                                   actions[row, :n].tolist() + probe_actions.tolist()))
    part = candidates.subset(members)
    polish(part, agents, *stack_trajectories(extended), torch.arange(len(members)))
    candidates.neuron_masks[torch.as_tensor(np.asarray(members))] = part.neuron_masks


def select_functions(candidates, loss, sequences, shares, settings, say):
    """Merge the candidates into functions, choose among them, drop composites: a Choice over the
    functions' representatives, with each option's group of candidates."""
    options, merged, groups, networks, option_sequences, option_shares = merged_functions(
        candidates, loss, sequences, shares, say, settings.merge_share)
    chosen, value = select_options(merged, settings.max_options, settings.restarts, settings.seed, search_progress(say))
    if not settings.keep_composites:
        found = len(chosen)
        chosen, value = without_composites(merged, chosen, option_sequences, option_shares, settings.max_options,
                                           settings.seed, settings.merge_share)
        say(f"{found} options chosen; {len(chosen)} once those that are a concatenation of other chosen ones are dropped")
    return Choice(options, None, merged, chosen, value, networks, option_sequences, option_shares, groups)


def choose_options(agents, trajectories, settings, game, say=print, evidence=None, probe=None, occurrences=False,
                   polished=False):
    """Candidates, their applicability and the selection, on one set of networks and their
    solutions in `game` (a combogrid.Game, or any game with its solution_games and problems).
    The Levin loss is computed on `evidence` (an Evidence; default: the solutions). With `probe`
    (games), candidates that play the same sequence from its states are merged into one option,
    and with settings.consolidate the candidates of the chosen options are consolidated on what
    their function plays and the choice made again, until it holds only consolidated ones or
    CONSOLIDATION_ROUNDS have been made (consolidated_choice). With `occurrences` (ComboGrid games),
    candidates are learned on every occurrence of their segment in the evidence's solutions; with
    `polished`, their neuron masks are polished."""
    say(f"learning candidate masks (every network x every segment of 2 to {settings.checked().max_length} actions "
        f"of the other networks' solutions x {settings.mask_seeds} seed(s)"
        + (", each on every occurrence of its actions" if occurrences else "") + "), one batch")
    evidence = solutions_evidence(trajectories, game) if evidence is None else evidence
    candidates, learned, sets = learn_candidates(agents, trajectories, settings, game, mask_progress(say),
                                                 evidence if occurrences else None, polished)
    kept = {n: (learned[n], int((candidates.length == n).sum())) for n in learned}
    say(f"{len(candidates)} of {sum(learned.values())} candidates reproduce their segment; their applicability on "
        f"{len(evidence.actions)} solutions ({sum(evidence.lengths)} states)")
    table = applicability(candidates, agents, evidence)
    if probe is None:
        loss = candidates_loss(candidates, table, evidence, settings)
        chosen, value = select_options(loss, settings.max_options, settings.restarts, settings.seed, search_progress(say))
        return Choice(candidates, kept, loss, chosen, value, [[int(a)] for a in candidates.network])
    return dataclasses.replace(consolidated_choice(candidates, table, agents, evidence, probe, sets, settings, say),
                               kept=kept)


def candidates_loss(candidates, table, evidence, settings):
    """The LevinLoss of the candidates over the evidence's solutions, given their applicability there."""
    return LevinLoss(table, candidates.network, candidates.length, evidence.lengths,
                     candidates.source if settings.not_on_source else None, problem=evidence.problem,
                     states=evidence.games.decision_states())


def consolidated_choice(candidates, table, agents, evidence, probe, sets, settings, say):
    """Merge, choose and drop composites (select_functions); with settings.consolidate, consolidate the
    candidates of the chosen functions not consolidated yet (consolidate, on the probe games and the
    training sets), measure them again (table, their applicability on the evidence, in place) and
    choose again, until the choice holds only consolidated candidates or CONSOLIDATION_ROUNDS have
    been made."""
    sequences, shares = behaviours(candidates, agents, probe)
    consolidated = np.zeros(len(candidates), dtype=bool)
    for round_ in range(CONSOLIDATION_ROUNDS + 1):
        choice = select_functions(candidates, candidates_loss(candidates, table, evidence, settings), sequences,
                                  shares, settings, say)
        due = [(k, choice.sequences[c]) for c in choice.chosen for k in choice.groups[c] if not consolidated[k]]
        if not settings.consolidate or not due or round_ == CONSOLIDATION_ROUNDS:
            return choice
        members, played = (list(x) for x in zip(*due))
        say(f"consolidating the {len(members)} candidates of the chosen options on what their functions play")
        consolidate(candidates, members, played, agents, probe, sets)
        consolidated[members] = True
        part = candidates.subset(members)
        table[members] = applicability(part, agents, evidence)
        for k, sequence, share in zip(members, *behaviours(part, agents, probe)):
            sequences[k], shares[k] = sequence, share


def discover(agents, trajectories, settings, game, say=print):
    """The whole method on one set of networks and their solutions: candidates, applicability,
    selection and consolidation (choose_options), then recovery of the game's true combos, with
    DiscoverySettings.
    `say` receives the progress lines."""
    started = time.time()
    evidence = every_start_evidence(agents, game) if settings.checked().every_start else None
    choice = choose_options(agents, trajectories, settings, game, say, evidence,
                            probe_games(game, 0) if settings.merge else None, settings.occurrences, settings.polish)
    options, chosen = choice.candidates.subset(choice.chosen), choice.chosen
    taken = greedy_rollouts(options, agents, test_games(game)) if chosen else np.zeros((0, 0, 0))
    measured = [{**recovery(taken[k, :, :options.length[k]], game), "actions": taken[k, :, :options.length[k]].tolist()}
                for k in range(len(options))]
    held_out = greedy_rollouts(options, agents, probe_games(game, 1)) if chosen else np.zeros((0, 0, 0))
    for k, c in enumerate(chosen):
        measured[k]["held_out"] = recovery(held_out[k, :, :options.length[k]], game)
        measured[k]["networks"] = [game.problems[a] for a in choice.networks[c]]
        if choice.shares is not None:
            measured[k]["probe_sequence"], measured[k]["probe_share"] = list(choice.sequences[c]), float(choice.shares[c])
    loss_without, decisions_without, decisions_with = choice.compression()
    return Discovery(choice.kept, options, used_where(choice.loss, chosen, game.problems), loss_without, choice.value,
                     decisions_without, decisions_with, measured, time.time() - started, game,
                     evidence_sizes(choice.loss, game.problems))


def evidence_sizes(loss, problems):
    """{problem: {"solutions": how many of its solutions the loss is computed on, "actions": their actions}}."""
    return {p: {"solutions": int((loss.problem == i).sum()), "actions": int(loss.trajectory_lengths[loss.problem == i].sum())}
            for i, p in enumerate(problems)}


def used_where(loss, chosen, problems):
    """Per chosen option, {problem: the positions of that problem's solutions where it applies}."""
    return [{p: int(loss.applicable[k, loss.position_problem == i].sum()) for i, p in enumerate(problems)}
            for k in chosen]


def options_record(chosen, game, model_paths, hidden_size):
    """Chosen candidates as an options.pt holds them (decomposition.options.load_discovered_options):
    per option its network (a problem of the game), length and masks; the networks' checkpoints."""
    options = []
    for k in range(len(chosen)):
        option = {"network": game.problems[chosen.network[k]], "length": int(chosen.length[k]),
                  "neuron_mask": chosen.neuron_masks[k].clone()}
        if chosen.input_masks is not None:
            option["input_mask"], option["input_fill"] = chosen.input_masks[k].clone(), chosen.input_fill[k].clone()
        options.append(option)
    return {"base_models": list(game.problems), "model_paths": list(model_paths), "hidden_size": hidden_size,
            "game": game.describe(), "options": options}


def mask_progress(say):
    """A fit_masks log: the mean loss of all masks and the time left."""
    started = time.time()

    def log(step, steps, loss, set_names):
        say(f"  mask step {step:>5}/{steps}  mean loss {float(loss.mean()):.4f}{time_left(started, step, steps)}")
    return log


def search_progress(say, every=0.25):
    """A select_options log: after each quarter of the restarts, the best loss and the time left."""
    def log(restart, restarts, value, seconds):
        done = restart + 1
        if done == restarts or int(done / restarts / every) > int(restart / restarts / every):
            say(f"  restart {done}/{restarts}  best Levin loss {value:.3f}, about "
                f"{seconds / done * (restarts - done):.0f} s left")
    return log


def options_table(record):
    """The chosen options, one row each."""
    rows = [[k, o["network"], len(o.get("networks", [o["network"]])), f"{o['source']} [{o['start']}:{o['start'] + o['length']}]",
             o["length"], "".join(map(str, o["segment_actions"])), o["uses"],
             f"{o['best_match']} {o['best_fraction']:.2f}" if o["best_match"] else "-"]
            for k, o in enumerate(record["options"])]
    return tabulate(rows, headers=["option", "network", "networks", "segment", "length", "actions", "uses",
                                   "performs (fraction of test states)"], tablefmt="grid")


def run_summary(record):
    """The run as printed: the options, the Levin loss without and with them, the recovery."""
    decisions = lambda key: " ".join(f"{p} {d}" for p, d in record[key].items())  # noqa: E731
    return "\n".join([
        options_table(record),
        f"Levin loss without options {record['levin_loss_without']:.3f} (decisions {decisions('decisions_without')})",
        f"Levin loss with the {len(record['options'])} options {record['levin_loss']:.3f} "
        f"(decisions {decisions('decisions')})",
        f"precision {record['precision']:.2f}  recall {record['recall']:.2f} "
        f"(combos performed from >= {RECOVERED:.0%} of the test states: "
        f"{', '.join(record['recalled']) or 'none'})",
        f"held out (the goal on cells no training problem has): precision {record['held_out']['precision']:.2f}  "
        f"recall {record['held_out']['recall']:.2f} ({', '.join(record['held_out']['recalled']) or 'none'})"])
