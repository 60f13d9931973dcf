"""What a run of main.py leaves behind with --save-dir.

    DIR/results.json     the arguments and one record per (seed, combo, network)
    DIR/masks.pt         the learned masks (torch.load(..., weights_only=True)), which
                         options.load_extracted_function turns back into policies
    DIR/heatmaps_*.png   per combo: where each network's masked function takes the whole combo
    DIR/loss_curves.png  the mask-training losses (figures.py)

Figures need matplotlib (requirements-dev.pip); without it they are skipped, with a message.
"""

import json
import os
from dataclasses import asdict

import torch

from atomic import write_file_set
from combogrid import MOVE_NAMES, PROBLEMS, non_goal_cells, observation_size
from figures import heatmap_figures, loss_curve_figure, png_writer
from ppo_agent import fingerprint


# every file a run may write, so that a new run leaves none of an older run's files behind
RUN_FILES = ("results.json", "masks.pt", "loss_curves.png", *(f"heatmaps_{name}.png" for name in MOVE_NAMES))


def save_results(args, result):
    """Write the run into args.save_dir as one set: all its files are new, or none is."""
    results = {"args": asdict(args), "sequences": list(MOVE_NAMES), "base_models": list(PROBLEMS),
               "training_pairs": dict(zip(MOVE_NAMES, result.training_pairs)),
               "observation_size": observation_size(args.game_width, args.game_width),
               "test_states": test_state_labels(args.game_width), "runs": []}
    for record, performs in zip(result.records(), result.performs_combo.reshape(-1, result.performs_combo.shape[-1])):
        results["runs"].append({**record, "whole_combo_per_test_state": performs.astype(int).tolist()})
    masks = {"sequences": list(MOVE_NAMES), "base_models": list(PROBLEMS), "seeds": list(result.seeds),
             "model_paths": [os.path.abspath(path) for path in args.model_paths],
             "model_fingerprints": [fingerprint(path) for path in args.model_paths],
             "hidden_size": args.hidden_size, "game_width": args.game_width,
             "neuron_masks": result.neuron_masks.clone()}
    if result.input_masks is not None:
        masks["input_masks"], masks["input_fill"] = result.input_masks.clone(), result.input_fill.clone()

    def write_json(path):
        with open(path, "w") as file:
            json.dump(results, file, indent=1)

    writers = {"results.json": write_json, "masks.pt": lambda path: torch.save(masks, path)}
    try:
        import matplotlib
        matplotlib.use("Agg")
        figures = {**heatmap_figures(result, args.game_width), "loss_curves.png": loss_curve_figure(result)}
        writers.update({name: png_writer(figure) for name, figure in figures.items()})
    except ImportError:
        print("figures skipped: matplotlib is not installed (pip install -r requirements-dev.pip)")
    os.makedirs(args.save_dir, exist_ok=True)
    write_file_set(args.save_dir, writers, stale=RUN_FILES)
    print(f"wrote {', '.join(writers)} to {args.save_dir}")


def test_state_labels(width):
    """Problem and cell of each test state, in the order of the evaluation."""
    return [{"problem": problem, "cell": list(cell)} for problem in PROBLEMS
            for cell in non_goal_cells(problem, width, width)]
