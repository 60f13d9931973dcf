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

from atomic import write_atomically
from combogrid import MOVE_NAMES, PROBLEMS, non_goal_cells, observation_size
from figures import draw_heatmaps, draw_loss_curves


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
