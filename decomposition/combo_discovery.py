"""Discovery on a ComboGrid game, measured against the combos it was never told: the evidence of
every start cell, the probe and test states, recovery (precision and recall of the true combos),
the ceiling of told masks and the run's record. discover.py is the script; the method itself,
for any game, is decomposition.discovery's.

    settings = DiscoverySettings(game="5x5", mask_inputs=True)
    found = discover(agents, trajectories, settings, sized_game(settings.game))
    print(run_text(found.record()))   # the options chosen, the combos each performs
"""

import dataclasses
import itertools
import time
from dataclasses import dataclass

import numpy as np
import torch
from tabulate import tabulate

from combogrid import ComboGridBatch, sized_game
from decomposition.candidate_options import Candidates, Evidence, greedy_rollouts, performs, polish
from decomposition.discovery import RECOVERED, FunctionSettings, choose_options, played_pairs
from decomposition.extraction import discretize
from decomposition.masks import StackedActors, fit_masks, input_fills, stack_trajectories
from decomposition.script import game_fault, model_paths_fault
from ppo_agent import greedy_actions
from trajectory import Trajectory


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

    def fault(self):
        fault = super().fault() or game_fault(self)
        if fault:
            return fault
        game = sized_game(self.game)
        return model_paths_fault(self.model_paths, game) or self.length_fault(game)


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


def concatenations(length, game):
    """Every concatenation of the game's true combos with `length` actions: {name: actions}, e.g. "Down+Right"."""
    if length % game.combo_length:
        return {}
    combos = dict(game.combos)
    return {"+".join(names): sum((tuple(combos[n]) for n in names), ())
            for names in itertools.product(game.combo_names, repeat=length // game.combo_length)}


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


def options_table(record):
    """The chosen options, one row each."""
    rows = [[k, o["network"], len(o.get("networks", [o["network"]])), f"{o['source']} [{o['start']}:{o['start'] + o['length']}]",
             o["length"], "".join(map(str, o["segment_actions"])), o["uses"],
             f"{o['best_match']} {o['best_fraction']:.2f}" if o["best_match"] else "-"]
            for k, o in enumerate(record["options"])]
    return tabulate(rows, headers=["option", "network", "networks", "segment", "length", "actions", "uses",
                                   "performs (fraction of test states)"], tablefmt="grid")


def run_text(record):
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
