"""Candidate options: for every network and every segment of the other networks' solutions, the
network under a mask learned so that it takes the segment's actions (learn_candidates), and what
each candidate does when rolled out greedily: whether it reproduces its segment, where it applies
on the solutions (applicability), and the sequence it plays most often from given states
(behaviours). Everything here works on any decomposition.environment.Game and its Games.

A candidate is network `network` under a mask learned so that it reproduces the actions of one
segment (problem `source`, actions start .. start + length) of another network's greedy
solution; as an option it acts greedily for `length` steps.
"""

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from decomposition.extraction import discretize
from decomposition.masks import StackedActors, fit_masks_by_size, input_fills, polish_masks, stack_trajectories
from ppo_agent import greedy_actions
from trajectory import Trajectory


ROLLOUT_GAMES = 2**18
"""Games stepped at once in a rollout (candidates x states): their observations take 4 x inputs bytes each."""


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
    states (settings, a SelectionSettings). `log` reports the training's progress every
    settings.log_every steps (fit_masks).
    With `occurrences` (an Evidence), a segment's states are those of every occurrence of its actions
    in the evidence's solutions, from the same position in the game's action period (training_sets;
    the solutions of every network, the candidate's own included), and segments with the same
    actions from the same position are learned once. With `polished`, each neuron mask is then improved by local search
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
    solutions, from the same position in the action period (start mod game.action_period), each
    distinct first state once; segments with the same actions from the same position are then one set."""
    if occurrences is None:
        sets = [trajectories[p][start:start + length] for p, start, length in cut]
        return [[segment] for segment in cut], *stack_trajectories(sets)
    solutions, lengths = np.concatenate(occurrences.actions), np.array(occurrences.lengths)
    ends = np.repeat(np.cumsum(lengths), lengths)
    position = np.arange(len(solutions)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    states, observations = occurrences.games.decision_states(), occurrences.games.observations()
    found = {}
    for p, start, length in cut:
        found.setdefault((start % game.action_period, tuple(trajectories[p].get_actions()[start:start + length])),
                         []).append((p, start, length))
    sets = []
    for phase, actions in found:
        at = np.flatnonzero((position % game.action_period == phase) & (np.arange(len(solutions)) + len(actions) <= ends))
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


def performs(actions, sequence):
    """(N,) whether each row of actions (N, L), -1 after the episode ended, is `sequence` up to
    where its episode ended."""
    target = np.asarray(sequence)
    return ((actions == target) | (actions == -1)).all(-1)
