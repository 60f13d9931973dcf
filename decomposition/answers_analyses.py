"""What answers.pdf says about the records, computed: the groups of the two tests, the exceptions
to them, where intervals lie against each other, the discovery rows and per-set IQMs. Numbers and
small structures only; decomposition.answers_assignment and answers_appendix put them in words.
"""

from dataclasses import dataclass

import numpy as np

from combogrid import COMBO_LENGTH, COMBO_NAMES, DEFAULT_GAME, PROBLEMS
from decomposition import across_sets, discovery, extraction, reuse, statistics


def mean_std(values):
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


@dataclass
class Groups:
    """A run's needed and not-needed pairs: per seed, the mean Masked Score, whole-combo rate and
    best training loss of each group."""
    score: tuple
    whole: tuple
    loss: tuple


def groups(run):
    return Groups(extraction.group_means(run.masked, DEFAULT_GAME),
                  extraction.group_means(run.whole.mean(-1), DEFAULT_GAME),
                  extraction.group_means(run.best_loss, DEFAULT_GAME))


@dataclass
class Inversion:
    """A combo whose masks score higher on a network that does not need it than on one that does."""
    combo: str
    not_needed: str
    needed: str
    score: tuple        # default run: (not needed, needed)
    whole: tuple        # default run, whole-combo rate
    loss: tuple         # default run, best training loss
    seeds_score: tuple  # the mean over the seeds of the 10-seed run


def exceptions(default, seeds):
    """Every (combo, not-needed network, needed network) whose default-run scores break the order."""
    found = []
    for c, combo in enumerate(COMBO_NAMES):
        needed = [a for a in range(len(PROBLEMS)) if DEFAULT_GAME.needed[c, a]]
        others = [a for a in range(len(PROBLEMS)) if not DEFAULT_GAME.needed[c, a]]
        for o in others:
            for n in needed:
                if default.masked[0, c, o] > default.masked[0, c, n]:
                    pair = lambda values: (float(values[c, o]), float(values[c, n]))  # noqa: E731
                    found.append(Inversion(combo, PROBLEMS[o], PROBLEMS[n], pair(default.masked[0]),
                                            pair(default.whole[0].mean(-1)), pair(default.best_loss[0]),
                                            pair(seeds.masked.mean(0))))
    return found


def most_played_not_needed(run):
    """The not-needed (combo, network) whose masks take the whole combo most often, over the seeds:
    (combo, network, rate)."""
    rate = np.where(DEFAULT_GAME.needed, -1.0, run.whole.mean(-1).mean(0))
    c, a = np.unravel_index(np.argmax(rate), rate.shape)
    return COMBO_NAMES[c], PROBLEMS[a], float(rate[c, a])


def input_kinds(kept, width=5):
    """How many kept inputs are agent cells, buffer entries and goal cells, per mask on average."""
    cells = width * width
    counts = np.array([[sum(i < cells for i in k), sum(cells <= i < cells + 9 for i in k),
                        sum(i >= cells + 9 for i in k)] for k in kept.flat])
    return counts.mean(0)


def training_data_size(run):
    """A combo's training set: its (state, action) pairs and its combo executions, as text."""
    sizes = sorted(set(run.training_pairs.values()))
    executions = sorted({n // COMBO_LENGTH for n in run.training_pairs.values()})
    return (f"{sizes[0]}" if len(sizes) == 1 else f"{sizes[0]} to {sizes[-1]}"), " to ".join(map(str, executions))


def sets_groups(study, scheme, value="masked_score"):
    """(needed, not needed): per network set, the mean over its pairs and seeds."""
    return tuple(across_sets.per_set_means(study, scheme, value, flag) for flag in (True, False))


def against(interval, other):
    """Where a (value, low, high) interval lies against another: above, below or overlapping it."""
    return "above" if interval[1] > other[2] else "below" if interval[2] < other[1] else "overlapping"


def positions(stats, reference="none"):
    """{condition: {task: where its IQM interval lies against the reference's}} over every task."""
    found = {}
    for task, summaries in stats.items():
        for condition, summary in summaries.items():
            if condition != reference:
                found.setdefault(condition, {})[task] = against(summary["iqm"], summaries[reference]["iqm"])
    return found


def everywhere(found, where):
    """The conditions whose interval lies `where` on every task."""
    return [condition for condition, places in found.items() if set(places.values()) == {where}]


def found_all(scores):
    """Whether a run (or its held-out scores) recalls every combo with precision at least 0.8."""
    return scores["recall"] == 1 and scores["precision"] >= 0.8


def discovery_row(runs):
    """Over a study's runs (one per set): options, precision (mean, worst), recall (mean, worst), the
    sets that recall 4/4 with precision at least 0.8 on the test states and held out."""
    precision, recall = (np.array([r[key] for r in runs]) for key in ("precision", "recall"))
    return {"options": float(np.mean([len(r["options"]) for r in runs])), "precision": float(precision.mean()),
            "worst_precision": float(precision.min()), "recall": float(recall.mean()),
            "worst_recall": float(recall.min()), "all": sum(found_all(r) for r in runs),
            "held_out": sum(found_all(r["held_out"]) for r in runs), "sets": len(runs)}


def ceiling(record):
    """Sets on which the best told mask plays every combo from enough test states, of how many."""
    runs = record["runs"]
    return sum(min(r["combos"].values()) >= discovery.RECOVERED for r in runs), len(runs)


def option_kinds(runs):
    """Over discovery runs: the options chosen, those that play one combo, a concatenation, neither."""
    options = [o for run in runs for o in run["options"]]
    combos = sum(o["performs"] in COMBO_NAMES for o in options)
    other = sum(o["performs"] is None for o in options)
    return len(options), combos, len(options) - combos - other, other


def set_iqms(runs, task, condition):
    """The IQM evaluation AUC of each network set's learners alone."""
    mine = reuse.runs_of(runs, task, condition)
    return [statistics.interquartile_mean([r["auc"] for r in mine if r["set"] == s])
            for s in sorted({r["set"] for r in mine})]
