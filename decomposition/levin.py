"""The Levin loss of a set of options on solutions, and the search for the set that minimises it.

For one solution of n actions, d is the least number of decisions that reproduces it, where a
decision is a primitive action or an applicable option; the loss is log(n + 1) + d log(K + 3)
for K options (Orseau and Lelis's Levin tree search bound, as the research code uses it). The
selection is greedy, then local search from random restarts (select_options).
"""

import time

import numpy as np


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
