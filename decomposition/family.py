"""The family study's parts (variants.py): where each game's stages write, the command of each
stage, and the summary over the games (table, JSON and figure).

    save_dir/GAME/network_sets/set_K/   train_ppo.py --num-sets: the networks and training.json
    save_dir/GAME/optimal_sets/set_K    links to the sets whose networks are all optimal
    save_dir/GAME/discovery_sets/set_K  links to the first of them, for discovery
    save_dir/GAME/extraction/sets.json  main.py --sets-dir: both masking schemes on every optimal set
    save_dir/GAME/reuse/results.json    downstream.py on the first optimal set's networks
    save_dir/GAME/discovery/sets.json   discover.py --mask-inputs --sets-dir on the discovery sets
"""

import importlib.util
import os
import shutil
from functools import partial

import numpy as np
from tabulate import tabulate

from combogrid import game_named
from decomposition import across_sets
from decomposition.files import json_writer, read_json, text_writer, write_file_set
from decomposition.study import Stage

STAGES = ("train", "extract", "reuse", "discover")
FAMILY_CANDIDATES = ("--no-occurrences", "--no-polish", "--merge-share", "0.9", "--no-consolidate")
"""How the family's discovery learns and merges its candidates: each on its own segment, Adam alone,
merged at 90% of the probe states, not consolidated (docs/variants.md)."""
REUSE_CONDITIONS = ("none", "inputs", "not-needed", "whole", "combos", "neural-augmented")
TRAINING = {"10x10": ("--total-timesteps", "6000000")}
"""Extra train_ppo.py options per game: 10x10's solutions are 54 actions long and some learners need
more than the default 3M steps."""


class StudyError(Exception):
    """A study folder that cannot be summarised; the message says why."""


def stage_cost(name, stage):
    """A stage's expected cost, in relative units, for the time-left estimate: it grows with the
    game's learners, cells and combo length (benchmarks/family_cost.py measures it)."""
    game = game_named(name)
    size = len(game.problems) * game.cells * game.combo_length / (4 * 25 * 3)
    return {"train": 1.0, "extract": 2.0, "reuse": 2.3, "discover": 1.3}[stage] * size  # 5x5: 61, 131, 142, 80 s


class Layout:
    """Where one game's stages write in the study folder."""

    def __init__(self, save_dir, game):
        self.game = game
        self.folder = os.path.join(save_dir, game.name)
        self.network_sets = os.path.join(self.folder, "network_sets")
        self.optimal_sets = os.path.join(self.folder, "optimal_sets")
        self.discovery_sets = os.path.join(self.folder, "discovery_sets")
        self.outputs = {"train": self.optimal_sets, "extract": os.path.join(self.folder, "extraction", "sets.json"),
                        "reuse": os.path.join(self.folder, "reuse", "results.json"),
                        "discover": os.path.join(self.folder, "discovery", "sets.json")}

    def done(self, stage):
        return os.path.exists(self.outputs[stage])

    def records(self, stage):
        """The records a stage wrote: its output file, or for train every set's training.json."""
        if stage != "train":
            return [self.outputs[stage]]
        return [os.path.join(folder, "training.json") for folder in self.sets(self.network_sets)]

    def foreign(self, stage):
        """Why the stage's records are not of this game (another game recorded in them), or None."""
        for path in self.records(stage):
            try:
                recorded = read_json(path).get("game")
            except (OSError, ValueError, AttributeError):
                return f"{path} is not a record the study can read"
            if isinstance(recorded, dict) and recorded != self.game.describe():
                return f"{path} records game {recorded.get('name')}, not this study's {self.game.name}"
        return None

    def sets(self, folder):
        """The set folders of `folder` (their links' names), or none."""
        if not os.path.isdir(folder):
            return []
        try:
            return across_sets.set_folders(folder, self.game)
        except across_sets.PartialSet as error:  # named, never taken for "no set yet"
            raise StudyError(str(error)) from None
        except across_sets.BadSetsFolder:
            return []

    def link_optimal_sets(self, discovery_sets):
        """optimal_sets/ and discovery_sets/: links to the sets whose networks are all optimal (the
        first `discovery_sets` of them for discovery), made whole under a temporary name, then renamed."""
        optimal = [folder for folder in self.sets(self.network_sets) if not across_sets.not_optimal(folder)]
        for target, chosen in ((self.discovery_sets, optimal[:discovery_sets]), (self.optimal_sets, optimal)):
            partial = target + ".partial"
            shutil.rmtree(partial, ignore_errors=True)
            os.makedirs(partial)
            for folder in chosen:
                os.symlink(os.path.relpath(folder, partial), os.path.join(partial, os.path.basename(folder)))
            shutil.rmtree(target, ignore_errors=True)
            os.rename(partial, target)


def reuse_budget(args, game):
    """The reuse learners' budget: --reuse-budget on 25 cells, times the game's cells / 25, in whole rollouts."""
    return max(2048, round(args.reuse_budget * game.cells / 25 / 2048) * 2048)


def command(stage, layout, args):
    """The kit command (script and options) of one stage, or None when there is no optimal set to study."""
    name = layout.game.name
    if stage == "train":
        return ["train_ppo.py", "--game", name, "--num-sets", str(args.num_sets), "--save-dir", layout.network_sets,
                "--processes", str(args.processes), "--print-every", "60", *TRAINING.get(name, ())]
    optimal = layout.sets(layout.optimal_sets)
    if not optimal:
        return None
    if stage == "extract":
        return ["main.py", "--game", name, "--sets-dir", layout.optimal_sets, "--num-seeds", str(args.mask_seeds),
                "--log-every", "0", "--save-dir", os.path.dirname(layout.outputs["extract"])]
    if stage == "reuse":
        paths = [os.path.join(optimal[0], f"{p}.pt") for p in layout.game.problems]
        return ["downstream.py", "--game", name, "--model-paths", *paths, "--conditions", *REUSE_CONDITIONS,
                "--num-seeds", str(args.reuse_seeds), "--tuning-seeds", str(args.tuning_seeds),
                "--learning-rates", *map(str, args.learning_rates), "--mask-seeds", "3",
                "--budget", str(reuse_budget(args, layout.game)), "--processes", str(args.processes),
                "--eval-points", str(min(20, reuse_budget(args, layout.game) // 2048)),
                "--save-dir", os.path.dirname(layout.outputs["reuse"])]
    # options of up to two combos, as discover.py's default of 6 is on three-action combos; each candidate
    # learned on its segment alone, as measured on every game (occurrence sets are unmeasured on the larger grids)
    return ["discover.py", "--game", name, "--sets-dir", layout.discovery_sets, "--mask-inputs", "--log-every", "0",
            "--max-length", str(2 * layout.game.combo_length), *FAMILY_CANDIDATES,
            "--save-dir", os.path.dirname(layout.outputs["discover"])]


def stages(args):
    """The study's stages (decomposition.study), game by game: train, extract, reuse, discover."""
    found = []
    for name in args.games:
        layout = Layout(args.save_dir, game_named(name))
        for stage in STAGES:
            folder = layout.network_sets if stage == "train" else os.path.dirname(layout.outputs[stage])
            linked = partial(layout.link_optimal_sets, args.discovery_sets) if stage == "train" else None
            found.append(Stage(f"{name}, {stage}", folder, os.path.relpath(layout.outputs[stage], folder),
                               partial(command, stage, layout, args), cost=stage_cost(name, stage), then=linked,
                               foreign=partial(layout.foreign, stage)))
    return found


def read(path, what):
    try:
        return read_json(path)
    except (OSError, ValueError) as error:
        raise StudyError(f"cannot read {what} {path}: {error}") from None


def training_summary(layout):
    """Networks trained and optimal, sets whose networks are all optimal, and the training's seconds."""
    sets = layout.sets(layout.network_sets)
    records = [read(os.path.join(folder, "training.json"), "the training record") for folder in sets]
    networks = [n for record in records for n in record["networks"].values()]
    return {"networks": len(networks), "optimal": sum(n["optimal"] for n in networks), "sets": len(sets),
            "optimal_sets": len(layout.sets(layout.optimal_sets)),
            "seconds": max((record["seconds"] for record in records), default=0.0)}


def extraction_summary(layout):
    """Per scheme: needed and not-needed Masked Score over the sets (mean, worst), sets separated."""
    data = read(layout.outputs["extract"], "the extraction study")
    result = {}
    for scheme in data["schemes"]:
        need, other = (across_sets.per_set_means(data, scheme, "masked_score", flag) for flag in (True, False))
        result[scheme] = {"needed": float(need.mean()), "worst_needed": float(need.min()),
                          "not_needed": float(other.mean()), "worst_not_needed": float(other.max()),
                          "separated": int((need > other).sum()), "sets": len(need)}
    return result


def reuse_summary(layout):
    """Per task and condition: the evaluation AUC's IQM [95% CI] and P(better than none); whether
    inputs' IQM interval lies above none's, and above the not-needed control's."""
    data = read(layout.outputs["reuse"], "the reuse study")
    result = {}
    for task, conditions in data["summary"].items():
        result[task] = {condition: {"iqm": stats["iqm"], "improvement": stats["improvement_over_none"]}
                        for condition, stats in conditions.items()}
        result[task]["inputs_clear_of_none"] = conditions["inputs"]["iqm"][1] > conditions["none"]["iqm"][2]
        if "not-needed" in conditions:  # the control: options of networks that do not need the combo
            result[task]["control_below_inputs"] = conditions["not-needed"]["iqm"][2] < conditions["inputs"]["iqm"][1]
    return result


def discovery_summary(layout):
    """Precision and recall per set, their means, and the sets with every combo recalled."""
    data = read(layout.outputs["discover"], "the discovery study")
    precision = [run["precision"] for run in data["runs"]]
    recall = [run["recall"] for run in data["runs"]]
    return {"precision": precision, "recall": recall, "mean_precision": float(np.mean(precision)),
            "mean_recall": float(np.mean(recall)), "full_recall": int(sum(r == 1.0 for r in recall)),
            "sets": len(recall)}


def summarise(save_dir, names):
    """{game: {stage: summary}} for the stages done."""
    summary = {}
    for name in names:
        layout = Layout(save_dir, game_named(name))
        game = layout.game
        entry = {"game": game.describe(), "cells": len(game.open_cells), "combo_length": game.combo_length,
                 "problems": len(game.problems), "observation_size": game.observation_size}
        readers = {"train": training_summary, "extract": extraction_summary, "reuse": reuse_summary,
                   "discover": discovery_summary}
        for stage, reader in readers.items():
            if layout.done(stage):
                fault = layout.foreign(stage)
                if fault:
                    raise StudyError(fault)
                entry[stage] = reader(layout)
        summary[name] = entry
    return summary


def interval(value):
    return "{:.3f} [{:.3f}, {:.3f}]".format(*value)


def table(summary, tablefmt="grid"):
    """One row per game: training, both schemes' needed / not-needed, inputs against none on both
    tasks, discovery's precision and recall."""
    rows = []
    for name, entry in summary.items():
        train, extract = entry.get("train"), entry.get("extract", {})
        reuse, found = entry.get("reuse", {}), entry.get("discover")
        schemes = [f"{s['needed']:.3f} / {s['not_needed']:.3f} ({s['separated']}/{s['sets']})"
                   if (s := extract.get(scheme)) else "-" for scheme in ("assignment", "inputs")]
        tasks = []
        for task in ("multi-goal", "random"):
            if task in reuse:
                r = reuse[task]
                control = f"; control {r['not-needed']['iqm'][0]:.3f}" if "not-needed" in r else ""
                tasks.append(f"{r['inputs']['iqm'][0]:.3f} vs {r['none']['iqm'][0]:.3f}"
                             f"{' (clear)' if r['inputs_clear_of_none'] else ' (overlap)'}{control}")
            else:
                tasks.append("-")
        rows.append([name, entry["cells"], entry["combo_length"], entry["problems"],
                     f"{train['optimal']}/{train['networks']}" if train else "-", *schemes, *tasks,
                     f"{found['mean_precision']:.2f} / {found['mean_recall']:.2f} ({found['full_recall']}/{found['sets']})"
                     if found else "-"])
    return tabulate(rows, tablefmt=tablefmt, headers=[
        "game", "open\ncells", "combo\nlength", "problems", "optimal\nnetworks",
        "neuron masks: needed /\nnot needed (sets separated)", "input masks: needed /\nnot needed (sets separated)",
        "multi-goal IQM AUC: inputs\nvs none; not-needed control", "random IQM AUC: inputs\nvs none; not-needed control",
        "discovery, input masks:\nprecision / recall (4/4 sets)"])


def figure(summary, path):
    """Three panels over the games: needed and not-needed Masked Score per scheme, the reuse IQM
    AUC of every condition on both tasks, and discovery's recall per set."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary)
    x = np.arange(len(names))
    fig, axes = plt.subplots(1, 4, figsize=(22, 4.6), constrained_layout=True)
    for k, (scheme, label) in enumerate((("assignment", "neuron masks"), ("inputs", "input masks"))):
        for group, style in (("needed", "o"), ("not_needed", "x")):
            values = [summary[n].get("extract", {}).get(scheme, {}).get(group, np.nan) for n in names]
            axes[0].plot(x + 0.1 * (2 * k - 1), values, style, label=f"{label}: {group.replace('_', ' ')}")
    axes[0].set_title("extraction: mean Masked Score over the sets")
    axes[0].set_ylim(0, 1.05)
    for axis, task in zip(axes[1:3], ("multi-goal", "random")):
        for k, condition in enumerate(REUSE_CONDITIONS):
            stats = [summary[n].get("reuse", {}).get(task, {}).get(condition) for n in names]
            values = np.array([s["iqm"] if s else (np.nan,) * 3 for s in stats])
            offset = x + 0.14 * (k - 2)
            axis.errorbar(offset, values[:, 0], yerr=[values[:, 0] - values[:, 1], values[:, 2] - values[:, 0]],
                          fmt="o", capsize=2, label=condition)
        axis.set_title(f"reuse, {task}: IQM evaluation AUC [95% CI]")
        axis.set_ylim(-0.02, 1.02)
    for n, name in enumerate(names):
        recall = summary[name].get("discover", {}).get("recall", [])
        axes[3].plot([n] * len(recall), recall, "o", alpha=0.6, color="C0")
    axes[3].set_title("discovery (input masks): recall per set")
    axes[3].set_ylim(-0.05, 1.05)
    for axis in axes:
        axis.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    for axis in axes[:3]:
        axis.legend(fontsize=7)
    fig.savefig(path, dpi=90, format="png")
    plt.close(fig)


def save(summary, save_dir):
    """summary.json, summary.md and summary.png into save_dir, as one set."""
    writers = {"summary.json": json_writer(summary, indent=1), "summary.md": text_writer(table(summary, "github") + "\n")}
    if importlib.util.find_spec("matplotlib"):
        writers["summary.png"] = lambda path: figure(summary, path)
    write_file_set(save_dir, writers, stale=("summary.json", "summary.md", "summary.png"))
