"""What a run of main.py leaves behind with --save-dir.

    DIR/results.json     the arguments and one record per (seed, combo, network)
    DIR/masks.pt         the learned masks (torch.load(..., weights_only=True)), which
                         options.load_extracted_function turns back into policies
    DIR/heatmaps_*.png   per combo: where each network's masked function takes the whole combo
    DIR/loss_curves.png  the mask-training losses

Figures need matplotlib (requirements-dev.pip); without it they are skipped, with a message.
"""

import os
from dataclasses import asdict

import numpy as np
import torch

from combogrid import MOVES
from decomposition.files import json_writer, write_file_set
from ppo_agent import fingerprint


# every file a run may write, so that a new run leaves none of an older run's files behind
RUN_FILES = ("results.json", "masks.pt", "loss_curves.png", *(f"heatmaps_{name}.png" for name in MOVES))


def save_results(args, result, model_paths, folder):
    """Write the run (settings `args`, networks `model_paths`) into `folder` as one set: all its files
    are new, or none is."""
    game = result.game
    results = {"args": asdict(args), "game": game.describe(), "combos": list(game.combo_names),
               "base_models": list(game.problems), "training_pairs": dict(zip(game.combo_names, result.training_pairs)),
               "observation_size": game.observation_size, "test_states": test_state_labels(game), "runs": []}
    for record, performs in zip(result.records(), result.whole_combo.reshape(-1, result.whole_combo.shape[-1])):
        results["runs"].append({**record, "whole_combo_per_test_state": performs.astype(int).tolist()})
    masks = {"combos": list(game.combo_names), "base_models": list(game.problems), "seeds": list(result.seeds),
             "model_paths": [os.path.abspath(path) for path in model_paths],
             "model_fingerprints": [fingerprint(path) for path in model_paths],
             "hidden_size": args.hidden_size, "game_width": game.rows, "game": game.describe(),
             "neuron_masks": result.neuron_masks.clone()}
    if result.input_masks is not None:
        masks["input_masks"], masks["input_fill"] = result.input_masks.clone(), result.input_fill.clone()

    writers = {"results.json": json_writer(results, indent=1), "masks.pt": lambda path: torch.save(masks, path)}
    try:
        import matplotlib
        matplotlib.use("Agg")
        figures = {**heatmap_figures(result), "loss_curves.png": loss_curve_figure(result)}
        writers.update({name: png_writer(figure) for name, figure in figures.items()})
    except ImportError:
        print("figures skipped: matplotlib is not installed (pip install -r requirements-dev.pip)")
    os.makedirs(folder, exist_ok=True)
    write_file_set(folder, writers, stale=RUN_FILES)
    print(f"wrote {', '.join(writers)} to {folder}")


def test_state_labels(game):
    """Problem and cell of each test state, in the order of the evaluation."""
    return [{"problem": problem, "cell": list(cell)} for problem in game.problems
            for cell in game.non_goal_cells(problem)]


def grid_of(values, problem, game):
    """A rows x columns array of one test problem's per-state values, NaN on the goal and the walls."""
    grid = np.full((game.rows, game.columns), np.nan)
    for (r, c), value in zip(game.non_goal_cells(problem), values):
        grid[r, c] = value
    return grid


def png_writer(figure):
    """A writer for decomposition.files.write_file_set: the figure as a PNG at the path it is given."""
    def write(path):
        import matplotlib.pyplot as plt
        try:
            figure.savefig(path, dpi=90, format="png")
        finally:
            plt.close(figure)
    return write


def heatmap_figures(result):
    """One figure per combo, {file name: figure}: rows are networks, columns test problems; a
    cell's colour is the fraction of seeds in which the masked network takes the whole combo."""
    import matplotlib.pyplot as plt

    game = result.game
    fraction = result.whole_combo.mean(0)  # (C, A, T)
    problems = game.problems
    per_problem = fraction.shape[-1] // len(problems)
    side = 2 * len(problems)
    figures = {}
    for c, combo in enumerate(game.combo_names):
        figure, axes = plt.subplots(len(problems), len(problems), figsize=(side, side + 0.6), squeeze=False,
                                    constrained_layout=True)
        for a, network in enumerate(problems):
            needs = "needs" if game.needed[c, a] else "does not need"
            score = result.masked_score[:, c, a].mean()
            for p, problem in enumerate(problems):
                axis = axes[a, p]
                values = fraction[c, a, p * per_problem:(p + 1) * per_problem]
                image = axis.imshow(grid_of(values, problem, game), vmin=0, vmax=1, cmap="viridis")
                _, (goal_row, goal_col) = game.problem_cells(problem)
                axis.text(goal_col, goal_row, "G", ha="center", va="center", color="red", fontsize=11)
                axis.set_xticks([])
                axis.set_yticks([])
                if a == 0:
                    axis.set_title(f"test on {problem}", fontsize=10)
                if p == 0:
                    axis.set_ylabel(f"{network} net\n({needs})\nscore {score:.2f}", fontsize=9)
        figure.colorbar(image, ax=axes, shrink=0.6, label="fraction of seeds taking the whole combo")
        figure.suptitle(f"{combo} {tuple(game.combo_actions[c].tolist())}: masked network from each cell", fontsize=12)
        figures[f"heatmaps_{combo}.png"] = figure
    return figures


def loss_curve_figure(result):
    """Training loss per step, mean over seeds; solid where the network's problem needs the combo."""
    import matplotlib.pyplot as plt

    game = result.game
    curves = result.loss_curves.mean(1)  # (steps, C, A)
    figure, axes = plt.subplots(1, len(game.combos), figsize=(14, 3.4), sharey=True, constrained_layout=True)
    for c, combo in enumerate(game.combo_names):
        for a, network in enumerate(game.problems):
            needed = bool(game.needed[c, a])
            axes[c].plot(curves[:, c, a], linestyle="-" if needed else "--",
                         label=f"{network}{' (needs it)' if needed else ''}")
        axes[c].set_title(combo)
        axes[c].set_xlabel("mask training step")
        axes[c].legend(fontsize=8)
    axes[0].set_ylabel("cross-entropy")
    return figure
