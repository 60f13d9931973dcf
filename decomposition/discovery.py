"""Find the sub-functions without being told what they are, on networks of any game
(decomposition.environment.Game): candidate options learned on every segment of the solution
trajectories (decomposition.candidate_options), merged into functions by what they play from probe
states, the few that best compress the solutions chosen by the Levin loss (decomposition.levin),
and the chosen ones consolidated.

    choice = choose_options(agents, trajectories, settings, game, probe=games)
    options = choice.candidates.subset(choice.chosen)     # the chosen options, each a masked network

How the chosen options recover the true combos of a ComboGrid game is decomposition.combo_discovery's.
"""

import dataclasses
import time
from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np
import torch

from decomposition.candidate_options import (Candidates, applicability, behaviours, learn_candidates, polish,
                                      solutions_evidence)
from decomposition.levin import LevinLoss, as_sets, local_search, select_options
from decomposition.masks import MaskSettings, stack_trajectories
from decomposition.script import NON_NEGATIVE, POSITIVE, Range, time_left
from trajectory import Trajectory

RECOVERED = 0.9
"""An option performs a function if it does so from at least this fraction of the test states."""
CONSOLIDATION_ROUNDS = 3
"""Most times the chosen options' candidates are consolidated and the choice made again."""


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

    def length_fault(self, game):
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
    CONTRADICTIONS = {("--no-merge", "--consolidate"): "consolidation works on merged functions",
                      ("--no-merge", "--merge-share"): "without merging there is no share to merge at",
                      ("--no-merge", "--keep-composites"): "composites are dropped among merged functions"}


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
    CONSOLIDATION_ROUNDS have been made (consolidated_choice). With `occurrences`,
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
        left = time_left(time.time() - started, step, steps)
        say(f"  mask step {step:>5}/{steps}  mean loss {float(loss.mean()):.4f}{left}")
    return log


def search_progress(say, every=0.25):
    """A select_options log: after each quarter of the restarts, the best loss and the time left."""
    def log(restart, restarts, value, seconds):
        done = restart + 1
        if done == restarts or int(done / restarts / every) > int(restart / restarts / every):
            say(f"  restart {done}/{restarts}  best Levin loss {value:.3f}{time_left(seconds, done, restarts)}")
    return log
