"""Find the networks' sub-functions without being told what they are, and measure whether the
ones found are the true combos.

    python discover.py                                  # the shipped networks
    python discover.py --save-dir results/discovery     # discovery.json, options.pt, recovery.png
    python discover.py --sets-dir results/network_sets --save-dir results/discovery_sets

1. Candidates: for every network and every segment of 2 to --max-length actions of the other
   networks' greedy solutions, a mask learned (decomposition.masks.fit_masks, all of them as one
   batch) so that the masked network takes the segment's actions from the states of every place
   the solutions play them (--no-occurrences: the segment's own), then polished by local search
   (masks.polish_masks; --no-polish: Adam's masks); as an option it acts greedily for the
   segment's length. Candidates that do not reproduce their own segment are dropped.
2. Applicability: a candidate of length l applies at position j of a solution if its greedy
   rollout of l steps from that state takes exactly the solution's next l actions. The solutions
   are each network's greedy solutions of its problem from every non-goal cell (--no-every-start:
   from the problem's start only).
3. Functions: candidates that play the same sequence from >= --merge-share of the probe states
   (the agent anywhere, the goal on a cell no training problem has) are one option, applicable
   wherever one of them is (--no-merge: every candidate an option of its own).
   Selection: at most --max-options options that minimise the Levin loss of the solutions
   (decomposition.levin.LevinLoss): greedy, then local search with --restarts restarts. A
   chosen option that plays a concatenation of other chosen options' sequences is dropped, and the
   search goes on without it and without the candidates that play one (--keep-composites keeps it).
4. Consolidation: the chosen functions' candidates are polished again on their training sets and
   on their function's sequence played from the probe states, and step 3 is done again, until
   the choice holds only consolidated candidates (at most 3 times; --no-consolidate: not at all).
5. Recovery: each chosen option's actions from every non-goal cell of the four problems with an
   empty buffer, the fraction of those states from which it performs each true combo (or
   concatenation of combos), precision and recall; the same from the held-out probe states.
"""

if __name__ == "__main__":  # first, so that a Ctrl-C while the libraries load is one line too
    from decomposition.script import stop_quietly_until_started
    stop_quietly_until_started()


import contextlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import Optional

import numpy as np
import torch
from tabulate import tabulate

from combogrid import sized_game
from decomposition import across_sets, candidate_options, combo_discovery, discovery, extraction
from decomposition.files import folders_fault, json_writer, read_json, write_file_set
from decomposition.results import grid_of, png_writer
from decomposition.script import Range, ScriptError, check, command_words, fails_on, memory_fault, start
from decomposition.study import Stage, parts_folder, remove_parts, run_parts, run_study
from ppo_agent import CheckpointError, fingerprint


@dataclass
class Args(combo_discovery.DiscoverySettings):
    """The run; what the discovery depends on (--seed, --game, --max-length, --mask-inputs, ...) is
    decomposition.combo_discovery.DiscoverySettings."""
    threads: int = 1
    """torch threads: one, since the batch's many small products gain little from a second thread
    and lose much when another process holds the other core"""
    save_dir: Optional[str] = None
    """folder for discovery.json, options.pt and recovery.png (written only after a complete run)"""
    sets_dir: Optional[str] = None
    """run on every network set of this folder (train_ppo.py --num-sets) instead, and summarise
    precision and recall across the sets (sets.json in --save-dir)"""

    ceiling: bool = False
    """instead of discovering: per true combo, the best fraction of the test states from which a mask
    (of every network x --mask-seeds, neuron masks or --mask-inputs) plays it when told the combo and fit on
    every probe state: what such masks can do at all (ceiling.json in --save-dir)"""

    RANGES = {**combo_discovery.DiscoverySettings.RANGES, "threads": Range(1, 64)}


def check_args(args):
    """The first fault of the arguments, as a message, or None."""
    return (args.fault() or folders_fault(args.sets_dir, args.save_dir) or memory_fault(
        memory_estimate(args), f"--max-length {args.max_length} with --mask-seeds {args.mask_seeds}"
        + (" and --mask-inputs" if args.mask_inputs else ""), "use a smaller --max-length or fewer seeds"))


def memory_estimate(args):
    """Bytes a run needs, roughly, calibrated on peaks measured here (0.58 GB with --no-occurrences, 2.4 GB
    with that, --mask-inputs and --mask-seeds 4, 1.3 GB for the defaults): 400 MB, plus 16 bytes per float of the mask batch's largest
    tensors and loss curves (neuron masks: the linear-in-mask products, segments x networks x 2H x
    3L; input masks: about six networks x segments x seeds x L x H tensors), plus with input masks
    the 1 GiB of freed memory that glibc is asked to keep for reuse (script.keep_freed_memory)."""
    game = sized_game(args.game)
    networks = len(game.problems)
    lengths = game.solution_lengths()
    segments = sum(n - k + 1 for n in lengths for k in range(2, min(args.max_length, n) + 1))
    floats = 2 * segments * networks * 2 * args.hidden_size * 3 * args.max_length
    floats += args.mask_learning_steps * args.mask_seeds * segments * networks
    if args.mask_inputs:
        floats += 6 * networks * segments * args.mask_seeds * args.max_length * args.hidden_size
    if args.occurrences:  # sets padded to their occurrences, and the polish's tables: 1.3 GB measured
        floats *= 5
    return 400e6 + 16 * floats + (2**30 if args.mask_inputs else 0)


def run(args):
    """Discovery on the networks of args.model_paths: the Discovery and the solutions."""
    model_args = extraction.ExtractionSettings(game=args.game, model_paths=args.model_paths,
                                               hidden_size=args.hidden_size)
    agents = extraction.load_agents(model_args)
    trajectories = extraction.solution_trajectories(agents, model_args)
    say = print if args.log_every else (lambda line: None)
    return combo_discovery.discover(agents, trajectories, args, sized_game(args.game), say), trajectories


def options_file(args, result):
    """The chosen options as options.pt holds them (decomposition.options.load_discovered_options)."""
    paths = extraction.model_paths(extraction.ExtractionSettings(game=args.game, model_paths=args.model_paths))
    return {**discovery.options_record(result.options, result.game, [os.path.abspath(p) for p in paths], args.hidden_size),
            "model_fingerprints": [fingerprint(p) for p in paths], "game_width": result.game.rows}


def save(args, result, record):
    writers = {"discovery.json": json_writer({"args": asdict(args), "game": result.game.describe(), **record}, indent=1),
               "options.pt": lambda path: torch.save(options_file(args, result), path)}
    try:
        writers["recovery.png"] = png_writer(recovery_figure(record, result.game))
    except ImportError:
        print("figure skipped: matplotlib is not installed (pip install -r requirements-dev.pip)")
    os.makedirs(args.save_dir, exist_ok=True)
    write_file_set(args.save_dir, writers, stale=("discovery.json", "options.pt", "recovery.png"))
    print(f"wrote {', '.join(writers)} to {args.save_dir}")


def recovery_figure(record, game):
    """One row per chosen option, one grid per problem: the cells from which the option performs
    the combo (or concatenation) it performs most often, from an empty buffer."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    options, problems = record["options"], game.problems
    figure, axes = plt.subplots(max(len(options), 1), len(problems),
                                figsize=(2 * len(problems), 2.1 * max(len(options), 1) + 0.6),
                                constrained_layout=True, squeeze=False)
    per_problem = len(game.open_cells) - 1
    for k, option in enumerate(options):
        performed = candidate_options.performs(np.array(option["actions"]), combo_discovery.concatenations(option["length"], game)
                                       [option["best_match"]]) if option["best_match"] else np.zeros(len(problems) * per_problem)
        for p, problem in enumerate(problems):
            axis = axes[k, p]
            axis.imshow(grid_of(performed[p * per_problem:(p + 1) * per_problem], problem, game), vmin=0, vmax=1,
                        cmap="viridis")
            axis.set_xticks([])
            axis.set_yticks([])
            if k == 0:
                axis.set_title(f"from cells of {problem}", fontsize=9)
        axes[k, 0].set_ylabel(f"option {k}\n{option['network']} net, {option['length']} steps\n"
                              f"{option['best_match'] or 'no combo'} {option['best_fraction']:.2f}", fontsize=8)
    figure.suptitle("Where each chosen option performs its best-matching combo (yellow), empty buffer", fontsize=10)
    return figure


def set_folders(args, game):
    """The network sets of args.sets_dir, each of optimal networks."""
    folders = across_sets.set_folders(args.sets_dir, game)
    failed = [path for folder in folders for path in across_sets.not_optimal(folder)]
    if failed:
        raise across_sets.BadSetsFolder(f"not optimal according to training.json, so not studied: {', '.join(failed)}")
    return folders


def ceiling_study(args):
    """combo_discovery.ceiling on the networks of --model-paths, or of every set of --sets-dir, each
    set a part of the study runner (kept in --save-dir/parts until ceiling.json is written)."""
    game = sized_game(args.game)
    folders = set_folders(args, game) if args.sets_dir is not None else [None]
    paths = {folder: args.model_paths if folder is None else tuple(os.path.join(folder, f"{p}.pt") for p in game.problems)
             for folder in folders}
    checkpoints = extraction.model_paths(extraction.ExtractionSettings(game=args.game, model_paths=args.model_paths))
    inputs = checkpoints if args.sets_dir is None else [path for folder in folders for path in paths[folder]]
    with parts_folder(args.save_dir, args, inputs) as parts:
        found = run_parts(parts, {os.path.basename(folder or "--model-paths"): partial(ceiling_run, args, paths[folder],
                                                                                      folder, game)
                                  for folder in folders},
                          "with --save-dir, the sets done so far are kept in its parts/ folder, and a rerun goes on")
    return {"args": asdict(args), "game": game.describe(), "runs": list(found.values())}


def ceiling_run(args, paths, folder, game):
    """One set's ceiling: per combo, the best fraction of the test states from which a told mask plays it."""
    settings = extraction.ExtractionSettings(game=args.game, model_paths=paths, hidden_size=args.hidden_size)
    return {"set": folder, "combos": combo_discovery.ceiling(extraction.load_agents(settings), game, args)}


def ceiling_table(study):
    """Per set, the best whole-combo fraction per combo; the sets where every combo reaches 90%."""
    names = list(study["runs"][0]["combos"])
    rows = [[os.path.basename(r["set"] or "--model-paths"), *(f"{r['combos'][n]:.2f}" for n in names)] for r in study["runs"]]
    every = sum(min(r["combos"].values()) >= discovery.RECOVERED for r in study["runs"])
    return (tabulate(rows, headers=["set", *names], tablefmt="grid") +
            f"\nevery combo from >= {discovery.RECOVERED:.0%} of the test states on {every} of {len(rows)} set(s)")


def sets_study(args):
    """Discovery on every network set of args.sets_dir, each set a stage of its own (decomposition.study)
    whose discovery.json, options.pt and recovery.png stay in SAVE_DIR/set_K (a temporary folder,
    gone at the end, without --save-dir): one record per set, as the set's own run recorded it."""
    game = sized_game(args.game)
    folders = set_folders(args, game)
    with contextlib.ExitStack() as stack:
        save_dir = stack.enter_context(tempfile.TemporaryDirectory()) if args.save_dir is None else args.save_dir
        stages = [set_stage(args, folder, save_dir, game) for folder in folders]
        run_study(stages, "with --save-dir, the sets done so far are kept there, and a rerun goes on from them")
        records = [read_json(os.path.join(stage.folder, "discovery.json")) for stage in stages]
    runs = [{"set": folder, **{key: value for key, value in record.items() if key not in ("args", "game")}}
            for folder, record in zip(folders, records)]
    return {"args": asdict(args), "game": game.describe(), "sets": folders, "runs": runs}


def set_stage(args, folder, save_dir, game):
    """The stage that runs discovery on the networks of one set into save_dir/SET."""
    paths = tuple(os.path.abspath(os.path.join(folder, f"{p}.pt")) for p in game.problems)
    output = os.path.abspath(os.path.join(save_dir, os.path.basename(folder)))
    own = replace(args, model_paths=paths, log_every=0, sets_dir=None, save_dir=output)
    return Stage(os.path.basename(folder), output, "discovery.json",
                 ("discover.py", *command_words(own, leave_out=("save_dir",)), "--save-dir", output),
                 foreign=partial(foreign_set, own, output))


def foreign_set(own, folder):
    """Why the discovery already in folder is not the one settings `own` make (other settings, or
    networks whose bytes have changed since), or None."""
    try:
        recorded = read_json(os.path.join(folder, "discovery.json"))["args"]
        fingerprints = torch.load(os.path.join(folder, "options.pt"), weights_only=True)["model_fingerprints"]
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as error:
        return f"{folder} is not a complete discovery ({type(error).__name__})"
    expected = json.loads(json.dumps(asdict(own)))
    if {k: v for k, v in recorded.items() if k != "save_dir"} != {k: v for k, v in expected.items() if k != "save_dir"}:
        return f"{folder} holds a discovery of other settings or networks"
    if fingerprints != [fingerprint(path) for path in own.model_paths]:
        return f"{folder} holds a discovery of networks whose checkpoints have changed since"
    return None


def sets_table(study):
    """Precision, recall and Levin losses per set, then their mean and the worst set."""
    runs = study["runs"]
    rows = [[os.path.basename(r["set"]), len(r["options"]), f"{r['precision']:.2f}", f"{r['recall']:.2f}",
             ", ".join(r["recalled"]) or "-", f"{r['held_out']['precision']:.2f}", f"{r['held_out']['recall']:.2f}",
             f"{r['levin_loss_without']:.2f}", f"{r['levin_loss']:.2f}"] for r in runs]
    scores = {key: np.array([r[key] for r in runs]) for key in ("precision", "recall")}
    held = {key: np.array([r["held_out"][key] for r in runs]) for key in ("precision", "recall")}
    rows.append(["mean", f"{np.mean([len(r['options']) for r in runs]):.1f}", f"{scores['precision'].mean():.2f}",
                 f"{scores['recall'].mean():.2f}", "", f"{held['precision'].mean():.2f}", f"{held['recall'].mean():.2f}",
                 f"{np.mean([r['levin_loss_without'] for r in runs]):.2f}", f"{np.mean([r['levin_loss'] for r in runs]):.2f}"])
    rows.append(["worst", "", f"{scores['precision'].min():.2f}", f"{scores['recall'].min():.2f}", "",
                 f"{held['precision'].min():.2f}", f"{held['recall'].min():.2f}", "", ""])
    return tabulate(rows, headers=["set", "options", "precision", "recall", "combos recalled", "held out: precision",
                                   "recall", "Levin loss without", "with"], tablefmt="grid", disable_numparse=True)


@fails_on(CheckpointError, extraction.WrongNetwork, across_sets.BadSetsFolder)
def main(args):
    check(check_args(args))
    torch.set_num_threads(args.threads)
    if args.ceiling or args.sets_dir is not None:
        study, table, name = ((ceiling_study, ceiling_table, "ceiling.json") if args.ceiling
                              else (sets_study, sets_table, "sets.json"))
        study = study(args)
        print(table(study))
        if args.save_dir is not None:
            write(lambda: write_file_set(args.save_dir, {name: json_writer(study, indent=1)}), args)
            remove_parts(args.save_dir)
            print(f"wrote {name} to {args.save_dir}")
        return
    result, trajectories = run(args)
    record = result.record(trajectories)
    print(combo_discovery.run_text(record))
    print(f"{record['seconds']:.0f} s")
    if args.save_dir is not None:
        write(lambda: save(args, result, record), args)


def write(save_files, args):
    """save_files() into --save-dir, a failing write as one error line."""
    try:
        os.makedirs(args.save_dir, exist_ok=True)
        save_files()
    except OSError as error:
        raise ScriptError(f"cannot write to --save-dir {args.save_dir}: {error.strerror}") from None


if __name__ == "__main__":
    start(main, Args, unchanged="--save-dir, if given, keeps its previous files")
