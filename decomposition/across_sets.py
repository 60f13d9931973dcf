"""The extraction repeated on many independently trained network sets (train_ppo.py --num-sets).

    python main.py --sets-dir sets --num-seeds 10 --save-dir out    # out/sets.json

For every set, both masking schemes (the assignment's neuron masks, and --mask-inputs) learn
their masks with the given seeds. The summary states, per scheme, the needed and not-needed
pairs' mean Masked Score as mean ± std over sets and the worst set, the whole-combo rate, and
in how many sets the needed pairs score above the not-needed ones.
"""

import os
from dataclasses import asdict, replace
from functools import partial

import numpy as np
from tabulate import tabulate

from decomposition.files import json_writer, read_json, write_atomically
from combogrid import DEFAULT_GAME, game_from_record
from decomposition.extraction import learn_masks
from decomposition.study import parts_folder, remove_parts, run_parts

SCHEMES = {"assignment": {"mask_inputs": False}, "inputs": {"mask_inputs": True}}


class BadSetsFolder(Exception):
    """A sets folder that cannot be studied; the message says why."""


class PartialSet(BadSetsFolder):
    """A set folder that holds some of its game's checkpoints but not all."""


def set_folders(sets_dir, game):
    """The set folders of `sets_dir` that hold a checkpoint per problem of the game, in numeric order of set_K."""
    if not os.path.isdir(sets_dir):
        raise BadSetsFolder(f"--sets-dir {sets_dir} is not a folder")
    problems = game.problems
    held = {entry.path: [os.path.exists(os.path.join(entry.path, f"{p}.pt")) for p in problems]
            for entry in os.scandir(sets_dir) if entry.is_dir()}
    partial = sorted(path for path, found in held.items() if any(found) and not all(found))
    if partial:
        missing = [f"{p}.pt" for p, found in zip(problems, held[partial[0]]) if not found]
        raise PartialSet(f"set {partial[0]} lacks {', '.join(missing)}: a set holds a checkpoint per problem of "
                            f"game {game.name}")
    folders = [path for path, found in held.items() if all(found)]
    if not folders:
        raise BadSetsFolder(f"--sets-dir {sets_dir} has no folder with {', '.join(p + '.pt' for p in problems)}")
    key = lambda path: (len(os.path.basename(path)), os.path.basename(path))  # noqa: E731  set_2 before set_10
    return sorted(folders, key=key)


def not_optimal(folder):
    """The networks training.json records as not optimal (none if there is no record)."""
    path = os.path.join(folder, "training.json")
    if not os.path.exists(path):
        return []
    try:
        networks = read_json(path)["networks"]
        if not all(isinstance(record["optimal"], bool) for record in networks.values()):
            raise ValueError("'optimal' is not true or false")
        return [os.path.join(folder, f"{p}.pt") for p, record in networks.items() if not record["optimal"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise BadSetsFolder(f"{path} is not a training record of train_ppo.py ({type(error).__name__}: "
                            f"{error})") from None


def study(args, sets_dir, game, save_dir=None):
    """Run the extraction (decomposition.extraction.learn_masks) for every set and scheme of the game,
    each (set, scheme) a part of the study runner whose records wait in save_dir/parts until the study
    is saved (a stopped study goes on from the parts done). Returns the study as a JSON-ready dict
    whose `runs` hold one record per (set, scheme, seed, combo, network)."""
    folders = set_folders(sets_dir, game)
    failed = [path for folder in folders for path in not_optimal(folder)]
    if failed:
        raise BadSetsFolder(f"not optimal according to training.json, so not studied: {', '.join(failed)}")
    parts = {f"{os.path.basename(folder)}, {scheme}": partial(set_runs, args, folder, scheme, game)
             for folder in folders for scheme in SCHEMES}
    checkpoints = [os.path.join(folder, f"{p}.pt") for folder in folders for p in game.problems]
    with parts_folder(save_dir, args, checkpoints) as folder:
        found = run_parts(folder, parts, "with --save-dir, the (set, scheme) runs done so far are kept in its "
                                         "parts/ folder, and a rerun with the same settings goes on from them")
    return {"args": asdict(args), "game": game.describe(), "sets": folders, "schemes": list(SCHEMES),
            "runs": [r for part in found.values() for r in part]}


def set_runs(args, folder, scheme, game):
    """The extraction of one set's networks with one scheme: a record per (seed, combo, network)."""
    paths = tuple(os.path.join(folder, f"{p}.pt") for p in game.problems)
    result = learn_masks(replace(args, model_paths=paths, **SCHEMES[scheme]))
    return [{"set": folder, "scheme": scheme, "seed": seed, "combo": combo, "base_model": network,
             "masked_score": float(result.masked_score[s, c, a]), "whole_combo": float(result.whole_combo[s, c, a].mean())}
            for s, seed in enumerate(result.seeds) for c, combo in enumerate(game.combo_names)
            for a, network in enumerate(game.problems)]


def in_group(game, combo, network, needed):
    """Whether the pair is needed (needed=True) or not needed (False) in the game (Game.needed, Game.not_needed)."""
    c, a = game.combo_names.index(combo), game.problems.index(network)
    return bool(game.needed[c, a] if needed else game.not_needed[c, a])


def per_set_means(data, scheme, value, needed):
    """(sets,) the mean of `value` over the needed (or not-needed) pairs and seeds of each set."""
    game = game_from_record(data["game"]) if "game" in data else DEFAULT_GAME
    means = []
    for folder in data["sets"]:
        values = [r[value] for r in data["runs"] if r["set"] == folder and r["scheme"] == scheme
                  and in_group(game, r["combo"], r["base_model"], needed)]
        means.append(np.mean(values))
    return np.array(means)


def best_whole_combo(data, scheme):
    """{set folder: {combo: the highest whole-combo fraction of any of its masks (any network, any
    seed)}}: how well the extraction's masks of `scheme`, told the combo and trained on every
    occurrence of it, play each combo from the test states."""
    best = {folder: {} for folder in data["sets"]}
    for r in data["runs"]:
        if r["scheme"] == scheme:
            best[r["set"]][r["combo"]] = max(best[r["set"]].get(r["combo"], 0.0), float(r["whole_combo"]))
    return best


def sets_table(data):
    """The across-set table: per scheme, needed versus not-needed pairs over the sets."""
    rows = []
    for scheme in data["schemes"]:
        need, other = (per_set_means(data, scheme, "masked_score", flag) for flag in (True, False))
        whole_need, whole_other = (per_set_means(data, scheme, "whole_combo", flag) for flag in (True, False))
        rows.append([scheme, f"{need.mean():.3f} ± {need.std():.3f}", f"{other.mean():.3f} ± {other.std():.3f}",
                     f"{need.min():.3f}", f"{other.max():.3f}",
                     f"{whole_need.mean():.3f} / {whole_other.mean():.3f}",
                     f"{int((need > other).sum())}/{len(need)}"])
    seeds = len({r["seed"] for r in data["runs"]})
    return (f"Across {len(data['sets'])} network sets, {seeds} mask seed(s) each: mean Masked Score of the "
            "needed and not-needed (combo, network) pairs per set, then mean ± std over sets\n" +
            tabulate(rows, headers=["scheme", "needed", "not needed", "worst needed", "worst not",
                                    "whole combo need/not", "separated"], tablefmt="grid") +
            "\nworst needed: the lowest set mean; worst not: the highest; whole combo: the fraction of test "
            "states\nfrom which the whole combo is taken; separated: sets whose needed pairs score above "
            "the not-needed.")


def save(data, folder):
    """sets.json into folder; the parts that made it are then removed."""
    os.makedirs(folder, exist_ok=True)
    write_atomically(os.path.join(folder, "sets.json"), json_writer(data))
    remove_parts(folder)
    print(f"wrote {folder}/sets.json")
