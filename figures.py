"""Figures of a main.py run: where the extracted functions take their combo, and the losses."""

import numpy as np

from combogrid import COMBOS, MOVE_NAMES, NEEDED_MOVES, PROBLEMS, non_goal_cells, problem_cells


def grid_of(values, problem, width):
    """A width x width array of one test problem's per-state values, NaN on the goal."""
    grid = np.full((width, width), np.nan)
    for (r, c), value in zip(non_goal_cells(problem, width, width), values):
        grid[r, c] = value
    return grid


def png_writer(figure):
    """A writer for atomic.write_file_set: the figure as a PNG at the path it is given."""
    def write(path):
        import matplotlib.pyplot as plt
        try:
            figure.savefig(path, dpi=90, format="png")
        finally:
            plt.close(figure)
    return write


def heatmap_figures(result, width):
    """One figure per combo, {file name: figure}: rows are networks, columns test problems; a
    cell's colour is the fraction of seeds in which the masked network takes the whole combo."""
    import matplotlib.pyplot as plt

    fraction = result.performs_combo.mean(0)  # (C, A, T)
    per_problem = fraction.shape[-1] // len(PROBLEMS)
    figures = {}
    for c, combo in enumerate(MOVE_NAMES):
        figure, axes = plt.subplots(len(PROBLEMS), len(PROBLEMS), figsize=(8, 8.6), constrained_layout=True)
        for a, network in enumerate(PROBLEMS):
            needs = "needs" if combo in NEEDED_MOVES[network] else "does not need"
            score = result.masked_score[:, c, a].mean()
            for p, problem in enumerate(PROBLEMS):
                axis = axes[a, p]
                values = fraction[c, a, p * per_problem:(p + 1) * per_problem]
                image = axis.imshow(grid_of(values, problem, width), vmin=0, vmax=1, cmap="viridis")
                _, (goal_row, goal_col) = problem_cells(problem, width, width)
                axis.text(goal_col, goal_row, "G", ha="center", va="center", color="red", fontsize=11)
                axis.set_xticks([])
                axis.set_yticks([])
                if a == 0:
                    axis.set_title(f"test on {problem}", fontsize=10)
                if p == 0:
                    axis.set_ylabel(f"{network} net\n({needs})\nscore {score:.2f}", fontsize=9)
        figure.colorbar(image, ax=axes, shrink=0.6, label="fraction of seeds taking the whole combo")
        figure.suptitle(f"{combo} {COMBOS[combo]}: masked network from each cell", fontsize=12)
        figures[f"heatmaps_{combo}.png"] = figure
    return figures


def loss_curve_figure(result):
    """Training loss per step, mean over seeds; solid where the network's problem needs the combo."""
    import matplotlib.pyplot as plt

    curves = result.loss_curves.mean(1)  # (steps, C, A)
    figure, axes = plt.subplots(1, len(MOVE_NAMES), figsize=(14, 3.4), sharey=True, constrained_layout=True)
    for c, combo in enumerate(MOVE_NAMES):
        for a, network in enumerate(PROBLEMS):
            needed = combo in NEEDED_MOVES[network]
            axes[c].plot(curves[:, c, a], linestyle="-" if needed else "--",
                         label=f"{network}{' (needs it)' if needed else ''}")
        axes[c].set_title(combo)
        axes[c].set_xlabel("mask training step")
        axes[c].legend(fontsize=8)
    axes[0].set_ylabel("cross-entropy")
    return figure
