"""The figures of answers.pdf, drawn from the records at the size they are printed (the text block is
6.85 inches wide) with every text at 7 pt or more, legends beside or below the data."""

import contextlib

import numpy as np

from combogrid import COMBO_NAMES, DEFAULT_GAME, PROBLEMS
from decomposition import answers_analyses, reuse

WIDTH = 6.85
"""inches: the text block"""
STYLE = {"font.size": 8, "axes.titlesize": 8.5, "axes.labelsize": 8, "xtick.labelsize": 7.5,
         "ytick.labelsize": 7.5, "legend.fontsize": 7.5, "figure.constrained_layout.use": True}


@contextlib.contextmanager
def pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    with matplotlib.rc_context(STYLE):
        yield plt


def pair_figure(seeds, inputs):
    """Per combo and network: the whole-combo rate of both schemes' masks (mean and std over seeds)."""
    with pyplot() as plt:
        figure, axes = plt.subplots(1, len(COMBO_NAMES), figsize=(WIDTH, 2.2), sharey=True)
        x = np.arange(len(PROBLEMS))
        for c, (axis, combo) in enumerate(zip(axes, COMBO_NAMES)):
            for k, (run, label) in enumerate(((seeds, "neuron masks (the assignment's)"),
                                              (inputs, "neuron and input masks"))):
                rates = run.whole.mean(-1)[:, c, :]
                axis.bar(x + 0.38 * (k - 0.5), rates.mean(0), 0.38, yerr=rates.std(0), capsize=1.5,
                         color=("C0", "C1")[k], label=label)
            axis.set_xticks(x, [f"{p}\n{'needs' if DEFAULT_GAME.needed[c, a] else ''}" for a, p in enumerate(PROBLEMS)])
            axis.set_title(combo)
            axis.set_ylim(0, 1.05)
        axes[0].set_ylabel("test states: whole combo")
        figure.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=2)
    return figure


def sets_figure(study):
    """Per network set: the needed and not-needed pairs' mean Masked Score, both schemes."""
    with pyplot() as plt:
        figure, axis = plt.subplots(figsize=(WIDTH * 0.62, 2.1))
        for k, (scheme, label) in enumerate((("assignment", "neuron masks"), ("inputs", "input masks"))):
            needed, other = answers_analyses.sets_groups(study, scheme)
            x = np.arange(len(needed)) + 0.15 * (2 * k - 1)
            axis.plot(x, needed, "o", color=f"C{k}", label=f"{label}: needed")
            axis.plot(x, other, "x", color=f"C{k}", label=f"{label}: not needed")
        axis.set_xticks(range(len(study["sets"])))
        axis.set_xlabel("network set (0: the networks of models/)")
        axis.set_ylabel("mean Masked Score")
        axis.set_ylim(0, 1.05)
        axis.legend(loc="center left", bbox_to_anchor=(1.02, 0.5))
    return figure


def reuse_figure(record):
    """The reuse study's evaluation curves, one panel per task."""
    args = record["args"]
    with pyplot():
        return reuse.evaluation_figure(record["runs"], args["tasks"], args["conditions"], width=WIDTH / 2)


def discovery_figure(configurations):
    """Per configuration (a row: its label and its runs, one per network set) and set: the recall as
    the cell's colour, the precision written in it."""
    with pyplot() as plt:
        figure, axis = plt.subplots(figsize=(WIDTH * 0.85, 0.3 * len(configurations) + 0.75))
        recall = np.array([[r["recall"] for r in runs] for _, runs in configurations])
        image = axis.imshow(recall, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        for row, (_, runs) in enumerate(configurations):
            for column, run in enumerate(runs):
                axis.text(column, row, f"{run['precision']:.2f}", ha="center", va="center", fontsize=7,
                          color="black" if run["recall"] > 0.6 else "white")
        axis.set_yticks(range(len(configurations)), [label for label, _ in configurations])
        axis.set_xticks(range(recall.shape[1]))
        axis.set_xlabel("network set")
        figure.colorbar(image, ax=axis, label="recall", fraction=0.04)
    return figure


def family_figure(summary):
    """Per game: both schemes' needed and not-needed Masked Score; the input-mask options against none
    on the random task."""
    names = list(summary)
    with pyplot() as plt:
        figure, (left, right) = plt.subplots(1, 2, figsize=(WIDTH, 2.9))
        x = np.arange(len(names))
        for k, (scheme, label) in enumerate((("assignment", "neuron masks"), ("inputs", "input masks"))):
            for group, marker in (("needed", "o"), ("not_needed", "x")):
                values = [summary[n].get("extract", {}).get(scheme, {}).get(group, np.nan) for n in names]
                left.plot(x + 0.12 * (2 * k - 1), values, marker, color=f"C{k}",
                          label=f"{label}: {group.replace('_', ' ')}")
        left.set_ylabel("mean Masked Score over sets")
        left.set_ylim(0, 1.05)

        for k, condition in enumerate(("none", "inputs", "not-needed")):
            stats = [summary[n].get("reuse", {}).get("random", {}).get(condition) for n in names]
            values = np.array([s["iqm"] if s else (np.nan,) * 3 for s in stats])
            right.errorbar(x + 0.15 * (k - 1), values[:, 0], yerr=[values[:, 0] - values[:, 1], values[:, 2] - values[:, 0]],
                           fmt="o", capsize=2, color=f"C{k + 2}", label=condition)
        right.set_ylabel("random task: IQM AUC [95% CI]")
        right.set_ylim(-0.02, 1.02)

        for axis in (left, right):
            axis.set_xticks(x, names, rotation=30, ha="right")
        handles = [h for axis in (left, right) for h in zip(*axis.get_legend_handles_labels())]
        figure.legend(*zip(*handles), loc="outside lower center", ncols=4)
    return figure


def minigrid_figure(record):
    """The target's evaluation curves (every set's learners pooled) and each set's IQM AUC per condition."""
    runs, conditions = record["runs"], record["args"]["conditions"]
    task = runs[0]["task"]
    with pyplot() as plt:
        figure, (left, right) = plt.subplots(1, 2, figsize=(WIDTH, 2.5), width_ratios=(1.3, 1))
        for k, condition in enumerate(conditions):
            steps, (mean, low, high) = reuse.spl_bands(reuse.runs_of(runs, task, condition))
            left.plot(steps, mean, color=f"C{k}", label=condition)
            left.fill_between(steps, low, high, color=f"C{k}", alpha=0.2)
            per_set = answers_analyses.set_iqms(runs, task, condition)
            right.plot([k] * len(per_set), per_set, "o", color=f"C{k}", alpha=0.7)
        left.set_xlabel("primitive environment steps")
        left.set_ylabel("mean SPL (greedy policy)")
        left.set_ylim(0, 1.02)
        left.legend(loc="center left", bbox_to_anchor=(1.02, 0.5))
        right.set_xticks(range(len(conditions)), conditions, rotation=35, ha="right")
        right.set_ylabel("IQM AUC of one set")
        right.set_ylim(-0.02, 1.02)
    return figure
