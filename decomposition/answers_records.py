"""The records answers.pdf is built from, read from results/ and checked: the main.py runs as
arrays, the studies' JSON records as they are. A study the PDF can do without (the family, MiniGrid,
the ceiling, the ablations, the reuse of discovered options) is None where its folder is absent.
"""

import os
from dataclasses import dataclass
from typing import Optional

import numpy as np

from combogrid import COMBO_NAMES, PROBLEMS
from decomposition import answers_study, family, files
from decomposition.script import ScriptError


class BadResults(Exception):
    """A results file that cannot be read back; the message names it."""


@dataclass
class Run:
    """One main.py run's results.json as arrays: S seeds, C combos, A networks, T test states."""
    name: str
    args: dict
    masked: np.ndarray      # (S, C, A)
    original: np.ndarray    # (C, A)
    best_loss: np.ndarray   # (S, C, A)
    whole: np.ndarray       # (S, C, A, T) 1 where the whole combo is taken
    kept: Optional[np.ndarray]  # (S, C, A) the kept input indices, None without input masks
    training_pairs: dict    # combo name: size of its training set
    observation_size: int


@dataclass
class Discovery:
    """One kind of mask's discovery: the run on the shipped networks, its 10-set study, and where
    they are there, the reuse of its options, its ablations by name and (neuron masks) the ceiling."""
    run: dict
    sets: dict
    reuse: Optional[dict]
    ablations: dict
    ceiling: Optional[dict] = None


@dataclass
class Records:
    runs: dict                 # name of answers_study.EXTRACTIONS: Run
    training: dict             # models/training.json
    sets: dict                 # results/sets/sets.json
    sets_training: list        # the network sets' training.json, in set order
    reuse: dict                # results/downstream/results.json
    discovery: dict            # "neuron", "inputs": Discovery
    family: Optional[dict]     # family.summarise of results/variants
    minigrid: Optional[dict]   # results/minigrid/results.json


DISCOVERY = {"neuron": "discovery", "inputs": "discovery_inputs"}
"""The folders of discovery on the shipped networks, by kind of mask (NAME_sets on the network sets)."""


def read_json(path):
    try:
        return files.read_json(path)
    except (OSError, ValueError) as error:
        raise BadResults(f"{path}: cannot be read ({type(error).__name__}: {error})") from None


def optional(path):
    return read_json(path) if os.path.exists(path) else None


def required(path):
    if not os.path.exists(path):
        raise ScriptError(f"no {path}: run python report.py without --reuse")
    return read_json(path)


def load_run(folder):
    path = os.path.join(folder, "results.json")
    try:
        return run_from(required(path), os.path.basename(folder))
    except (KeyError, TypeError, IndexError, ValueError) as error:
        raise BadResults(f"{path}: malformed ({type(error).__name__}: {error})") from None


def run_from(data, name):
    seeds = sorted({r["seed"] for r in data["runs"]})
    shape = (len(seeds), len(COMBO_NAMES), len(PROBLEMS))
    masked, best, original = np.zeros(shape), np.zeros(shape), np.zeros(shape[1:])
    whole = np.zeros(shape + (len(data["test_states"]),))
    kept = np.empty(shape, dtype=object)
    for r in data["runs"]:
        index = (seeds.index(r["seed"]), COMBO_NAMES.index(r["combo"]), PROBLEMS.index(r["base_model"]))
        masked[index], best[index], original[index[1:]] = r["masked_score"], r["best_loss"], r["original_score"]
        whole[index] = r["whole_combo_per_test_state"]
        kept[index] = r.get("kept_inputs")
    if not np.isfinite(masked).all():
        raise BadResults(f"results/{name}/results.json holds NaN or infinite scores")
    return Run(name, data["args"], masked, original, best, whole, None if kept.flat[0] is None else kept,
               data["training_pairs"], data["observation_size"])


def load_training(path):
    if not os.path.exists(path):
        raise ScriptError(f"training record not found: {path} (written by train_ppo.py)")
    training = read_json(path)
    if not isinstance(training, dict) or not isinstance(training.get("networks"), dict) or not training["networks"]:
        raise BadResults(f"{path}: not a training record of train_ppo.py (no networks)")
    return training


def load_discovery(results, kind, name):
    ablations = {method: optional(os.path.join(results, "discovery_ablations", f"{kind}_{method}", "sets.json"))
                 for method in ("no_consolidate", "previous")}
    reused = {source: folder for folder, source in answers_study.REUSED.items()}[name]
    found = Discovery(required(os.path.join(results, name, "discovery.json")),
                      required(os.path.join(results, f"{name}_sets", "sets.json")),
                      optional(os.path.join(results, reused, "results.json")),
                      {method: record for method, record in ablations.items() if record is not None})
    if kind == "neuron":
        found.ceiling = optional(os.path.join(results, "discovery_ceiling", "ceiling.json"))
    return found


def load(results, training_log):
    """Every record, checked; a missing required one is a ScriptError, an unreadable one BadResults."""
    runs = {name: load_run(os.path.join(results, name)) for name in answers_study.EXTRACTIONS}
    sets = required(os.path.join(results, "sets", "sets.json"))
    if not sets["runs"] or not np.isfinite([r["masked_score"] for r in sets["runs"]]).all():
        raise BadResults(f"{results}/sets/sets.json holds no runs or NaN or infinite scores")
    reuse = required(os.path.join(results, "downstream", "results.json"))
    if not reuse["runs"] or not np.isfinite([r["auc"] for r in reuse["runs"]]).all():
        raise BadResults(f"{results}/downstream/results.json holds no runs or NaN or infinite AUCs")
    summary = optional(os.path.join(results, "variants", "summary.json"))
    return Records(runs, load_training(training_log), sets,
                   [read_json(os.path.join(folder, "training.json")) for folder in sets["sets"]], reuse,
                   {kind: load_discovery(results, kind, name) for kind, name in DISCOVERY.items()},
                   summary and family.summarise(os.path.join(results, "variants"), list(summary)),
                   optional(os.path.join(results, "minigrid", "results.json")))
