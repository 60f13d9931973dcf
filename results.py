"""What a run of main.py leaves behind with --save-dir, and how to use it again.

    DIR/results.json     the arguments and one record per (seed, combo, network)
    DIR/masks.pt         the learned masks (torch.load(..., weights_only=True))
    DIR/heatmaps_*.png   per combo: where each network's masked function takes the whole combo
    DIR/loss_curves.png  the mask-training losses

`load_extracted_function` turns a saved mask back into a policy, so that an extracted
combo can be reused as an option (a temporally extended action) in another problem.
Figures need matplotlib (requirements-dev.pip); without it they are skipped, with a message.
"""

import json
import os
from dataclasses import asdict

import numpy as np
import torch

from combogrid import (COMBO_LENGTH, COMBOS, MOVE_NAMES, NEEDED_MOVES, PROBLEMS, ComboGym, non_goal_cells,
                       observation_size, problem_cells)
from ppo_agent import StackedActors, greedy_actions, load_agent, rollout


def write_atomically(path, write):
    """Write through a temporary file, so that an existing file is replaced whole or not at all."""
    temporary = path + ".tmp"
    write(temporary)
    os.replace(temporary, path)


def save_results(args, result):
    os.makedirs(args.save_dir, exist_ok=True)
    results = {"args": asdict(args), "sequences": list(MOVE_NAMES), "base_models": list(PROBLEMS),
               "training_pairs": dict(zip(MOVE_NAMES, result.training_pairs)),
               "observation_size": observation_size(args.game_width, args.game_width),
               "test_states": test_state_labels(args.game_width), "runs": []}
    for record, performs in zip(result.records(), result.performs_combo.reshape(-1, result.performs_combo.shape[-1])):
        results["runs"].append({**record, "whole_combo_per_test_state": performs.astype(int).tolist()})

    def write_json(path):
        with open(path, "w") as file:
            json.dump(results, file, indent=1)

    write_atomically(os.path.join(args.save_dir, "results.json"), write_json)
    masks = {"sequences": list(MOVE_NAMES), "base_models": list(PROBLEMS), "seeds": list(result.seeds),
             "model_paths": list(args.model_paths), "hidden_size": args.hidden_size,
             "game_width": args.game_width, "neuron_masks": result.neuron_masks.clone()}
    if result.input_masks is not None:
        masks["input_masks"], masks["input_fill"] = result.input_masks.clone(), result.input_fill.clone()
    write_atomically(os.path.join(args.save_dir, "masks.pt"), lambda path: torch.save(masks, path))
    print(f"wrote {args.save_dir}/results.json and {args.save_dir}/masks.pt")
    try:
        import matplotlib
    except ImportError:
        print("figures skipped: matplotlib is not installed (pip install -r requirements-dev.pip)")
        return
    matplotlib.use("Agg")
    names = draw_heatmaps(result, args.game_width, args.save_dir) + [draw_loss_curves(result, args.save_dir)]
    print(f"wrote {len(names)} figures: {', '.join(names)}")


def test_state_labels(width):
    """Problem and cell of each test state, in the order of the evaluation."""
    return [{"problem": problem, "cell": list(cell)} for problem in PROBLEMS
            for cell in non_goal_cells(problem, width, width)]


def grid_of(values, problem, width):
    """A width x width array of one test problem's per-state values, NaN on the goal."""
    grid = np.full((width, width), np.nan)
    for (r, c), value in zip(non_goal_cells(problem, width, width), values):
        grid[r, c] = value
    return grid


def draw_heatmaps(result, width, folder):
    """One figure per combo: rows are networks, columns test problems; a cell's colour is the
    fraction of seeds in which the masked network takes the whole combo from there."""
    import matplotlib.pyplot as plt

    fraction = result.performs_combo.mean(0)  # (C, A, T)
    per_problem = fraction.shape[-1] // len(PROBLEMS)
    names = []
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
        name = f"heatmaps_{combo}.png"
        figure.savefig(os.path.join(folder, name), dpi=90)
        plt.close(figure)
        names.append(name)
    return names


def draw_loss_curves(result, folder):
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
    name = "loss_curves.png"
    figure.savefig(os.path.join(folder, name), dpi=90)
    plt.close(figure)
    return name


class ExtractedFunction:
    """One combo's sub-function of one network: the network under a learned mask."""

    def __init__(self, agent, neuron_mask, input_mask=None, input_fill=0.0):
        self.actors = StackedActors([agent])
        self.neuron_mask = neuron_mask[None]                        # (1, 3, H)
        self.input_mask = None if input_mask is None else input_mask[None]
        self.input_fill = input_fill

    @torch.no_grad()
    def __call__(self, x):
        """(greedy action, logits) for one observation tensor of shape (D,)."""
        z = self.actors.pre_activations(x[None, None], self.input_mask, self.input_fill)  # (A=1, N=1, D)
        logits = self.actors.logits(z, self.neuron_mask)[0, 0]
        return greedy_actions(logits), logits

    def act(self, observation):
        return int(self(torch.as_tensor(np.asarray(observation), dtype=torch.float32))[0])

    def run(self, env, steps=COMBO_LENGTH):
        """Act for `steps` actions from the environment's current state (the option's execution)."""
        return rollout(env, self, steps, reset=False)


def load_extracted_function(masks_path, sequence, base_model, seed_index=0, model_path=None):
    """The function for `sequence` (e.g. "Up") extracted from network `base_model` (e.g. "TL-BR")."""
    masks = torch.load(masks_path, map_location="cpu", weights_only=True)
    c, a = masks["sequences"].index(sequence), masks["base_models"].index(base_model)
    width = masks["game_width"]
    agent = load_agent(model_path or masks["model_paths"][a], ComboGym(width, width, base_model),
                       masks["hidden_size"])
    if "input_masks" not in masks:
        return ExtractedFunction(agent, masks["neuron_masks"][seed_index, c, a])
    return ExtractedFunction(agent, masks["neuron_masks"][seed_index, c, a],
                             masks["input_masks"][seed_index, c, a], masks["input_fill"][c])
