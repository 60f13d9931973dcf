"""Build answers.pdf, the assignment's answers, from runs of extraction.py.

    python report.py              # run the four configurations and the study across network
                                  # sets into results/, then write answers.pdf
    python report.py --reuse      # only rebuild the PDF from results/*/results.json and sets.json

Every number in the PDF is read from the runs' results.json, results/sets/sets.json and the
training records (training.json); none is typed. Needs requirements-dev.pip (fpdf2, matplotlib).
The 10 network sets of the study across networks (results/network_sets/, about 1 minute) and
the reuse study (results/downstream/, about 11 minutes) are run only when their results are not
there yet: delete those folders to run them again.
"""

import json
import os
import sys
from dataclasses import dataclass, replace

import numpy as np

from decomposition import across_sets
import downstream
import main as extraction
import train_ppo
from decomposition.script import start
from combogrid import COMBOS, COMBO_NAMES, PROBLEMS
from decomposition.files import write_atomically
from decomposition.results import save_results

# name: (extraction.py options, what the run is)
RUNS = {
    "default": ({}, "python extraction.py"),
    "seeds": ({"num_seeds": 10}, "python extraction.py --num-seeds 10"),
    "inputs": ({"num_seeds": 10, "mask_inputs": True}, "python extraction.py --num-seeds 10 --mask-inputs"),
    "inputs_zero": ({"num_seeds": 10, "mask_inputs": True, "input_fill": "zero"},
                    "python extraction.py --num-seeds 10 --mask-inputs --input-fill zero"),
}
NUM_SETS = 10
TRAIN_SETS = f"python train_ppo.py --num-sets {NUM_SETS} --save-dir results/network_sets"
STUDY = "python extraction.py --sets-dir results/network_sets --num-seeds 10 --save-dir results/sets"
REUSE = "python downstream.py --save-dir results/downstream"


@dataclass
class Args:
    results_dir: str = "results"
    """folder with one sub-folder per run (default, seeds, inputs, inputs_zero)"""
    output: str = "answers.pdf"
    """the PDF to write"""
    reuse: bool = False
    """build from the results.json files already in results_dir instead of running extraction.py again"""
    training_log: str = "models/training.json"
    """train_ppo.py's record of how the shipped networks were trained"""
    sets_dir: str = "results/network_sets"
    """the independently trained network sets of the study across networks (trained if absent)"""


@dataclass
class Run:
    """One run's results.json as arrays: S seeds, C combos, A networks, T test states."""
    command: str
    args: dict
    masked: np.ndarray      # (S, C, A)
    original: np.ndarray    # (C, A)
    best_loss: np.ndarray   # (S, C, A)
    whole: np.ndarray       # (S, C, A, T) 1 where the whole combo is taken
    kept: list              # per (s, c, a) the kept input indices, or None without input masks
    folder: str
    training_pairs: dict    # combo name: size of its training set
    observation_size: int


class BadResults(Exception):
    """A results file that cannot be read back; the message names it."""


def read_json(path):
    try:
        with open(path) as file:
            return json.load(file)
    except (OSError, ValueError) as error:
        raise BadResults(f"{path}: cannot be read ({type(error).__name__}: {error})") from None


def load_run(folder, command):
    path = os.path.join(folder, "results.json")
    try:
        return run_from(read_json(path), folder, command)
    except (KeyError, TypeError, IndexError, ValueError) as error:
        raise BadResults(f"{path}: malformed ({type(error).__name__}: {error})") from None


def run_from(data, folder, command):
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
    return Run(command, data["args"], masked, original, best, whole,
               None if kept.flat[0] is None else kept, folder, data["training_pairs"], data["observation_size"])


def run_all(args):
    """Run every configuration of RUNS with extraction.py's own functions, saving into results_dir."""
    base = extraction.Args(log_every=0)
    agents = extraction.load_agents(base)
    for name, (options, command) in RUNS.items():
        print(f"running {command}", flush=True)
        run_args = replace(base, save_dir=os.path.join(args.results_dir, name), **options)
        save_results(run_args, extraction.learn_masks(run_args, agents))
    if not os.path.exists(os.path.join(args.sets_dir, f"set_{NUM_SETS - 1}", "training.json")):
        print(f"running {TRAIN_SETS}", flush=True)
        train_ppo.main(train_ppo.Args(num_sets=NUM_SETS, save_dir=args.sets_dir))
    print(f"running {STUDY}", flush=True)
    study = across_sets.study(replace(base, sets_dir=args.sets_dir, num_seeds=10), extraction.learn_masks)
    across_sets.save(study, os.path.join(args.results_dir, "sets"))
    if not os.path.exists(os.path.join(args.results_dir, "downstream", "results.json")):
        print(f"running {REUSE} (about 11 minutes)", flush=True)
        downstream.main(downstream.Args(save_dir=os.path.join(args.results_dir, "downstream")))


def mean_std(values):
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def input_kinds(kept, width=5):
    """How many kept inputs are agent cells, buffer entries and goal cells, per mask on average."""
    cells = width * width
    counts = np.array([[sum(i < cells for i in k), sum(cells <= i < cells + 9 for i in k),
                        sum(i >= cells + 9 for i in k)] for k in kept.flat])
    return counts.mean(0)


class Report:
    """A thin layer over fpdf2: headings, paragraphs, monospace blocks and figures."""

    def __init__(self):
        from fpdf import FPDF
        self.pdf = FPDF(format="A4")
        self.pdf.set_auto_page_break(True, margin=15)
        self.pdf.set_margins(18, 15, 18)
        self.pdf.add_page()

    def title(self, text):
        self.pdf.set_font("Helvetica", "B", 16)
        self.pdf.multi_cell(0, 9, text)
        self.pdf.ln(2)

    def heading(self, text):
        self.pdf.ln(3)
        self.pdf.set_font("Helvetica", "B", 12.5)
        self.pdf.multi_cell(0, 7, text)
        self.pdf.ln(1)

    def paragraph(self, text):
        self.pdf.set_font("Helvetica", "", 10)
        self.pdf.multi_cell(0, 5, text)
        self.pdf.ln(2)

    def monospace(self, text, size=8):
        """A block of fixed-width text (a table, a summary), kept on one page."""
        line_height = size * 0.45
        self.keep_together(line_height * (text.count("\n") + 1))
        self.pdf.set_font("Courier", "", size)
        self.pdf.multi_cell(0, line_height, text)
        self.pdf.ln(2)

    def figure(self, path, width, caption):
        from PIL import Image
        with Image.open(path) as image:
            height = width * image.height / image.width
        self.keep_together(height + 12)  # the figure and its caption
        self.pdf.image(path, x=(self.pdf.w - width) / 2, w=width)
        self.pdf.set_font("Helvetica", "I", 9)
        self.pdf.multi_cell(0, 4.5, caption)
        self.pdf.ln(2)

    def keep_together(self, height):
        """Start a new page unless `height` mm still fit on this one."""
        if self.pdf.will_page_break(height):
            self.pdf.add_page()

    def save(self, path):
        write_atomically(path, self.pdf.output)


def reuse_gains(data):
    """Per task: AUC means and 95% intervals per condition, and the share of the combos' gain
    over none that each condition recovers."""
    gains = {}
    for task in data["args"]["tasks"]:
        auc = {c: downstream.confidence_interval([r["auc"] for r in data["runs"]
                                                  if r["task"] == task and r["condition"] == c])
               for c in data["args"]["conditions"]}
        span = auc["combos"][0] - auc["none"][0]
        gains[task] = {c: (auc[c], (auc[c][0] - auc["none"][0]) / span if span else float("nan")) for c in auc}
    return gains


def reuse_section(report, data):
    """Section 5: the downstream study, its table, figure and an honest reading."""
    args = data["args"]
    report.heading("5. Are the extracted functions reusable?")
    report.paragraph(
        "The point of extracting sub-functions is to reuse them. downstream.py adds four options (one per "
        "combo) to a PPO learner's three primitive actions and measures how fast it learns two new tasks "
        "(SPEC.md): multi-goal (from the centre, four goals in turn, +10 each) and random (a random start and "
        f"goal, +10 on reaching it). {args['num_seeds']} learners per condition and task, all seeds of a "
        f"condition in one batched run, {args['budget']:,} primitive steps each (an option's three steps all "
        "count). Conditions: none (primitives only); neurons and inputs (options from the assignment's masks "
        "and from --mask-inputs masks, the mask with the lowest training loss per combo); not-needed (the "
        "--mask-inputs masks of networks whose problem does not need the combo: the control); whole (the "
        "four base networks unmasked); combos (the true combos: the upper bound). AUC: the mean episode "
        "return over the budget divided by the maximum return, with a 95% bootstrap interval over seeds; "
        "solved: the greedy policy solves the task optimally at the end (random: all 600 start-goal pairs).")
    report.monospace(downstream.table(data["runs"], args["tasks"], args["conditions"]), size=6.5)
    report.figure(os.path.join(os.path.dirname(data["path"]), "learning_curves.png"), 170,
                  "Mean return over the seeds (normalised) with 95% bands, against primitive steps.")
    reading = []
    for task, gains in reuse_gains(data).items():
        (none_mean, none_low, none_high), _ = gains["none"]
        for condition in ("inputs", "neurons", "not-needed", "whole"):
            if condition not in gains:
                continue
            (mean, low, high), share = gains[condition]
            clear = "clear of" if low > none_high else "below" if high < none_low else "overlapping"
            reading.append(f"{task}, {condition}: AUC {mean:.3f} [{low:.3f}, {high:.3f}], {share:.0%} of the "
                           f"combos' gain over none, interval {clear} none's [{none_low:.3f}, {none_high:.3f}]")
    report.paragraph("Read against the goal (inputs recover at least 80% of the combos' gain with intervals "
                     "clear of none; the not-needed control at most 20%):\n" + ";\n".join(reading) + ".")
    solved = {(t, c): np.mean([r["solved"] for r in data["runs"] if r["task"] == t and r["condition"] == c])
              for t in args["tasks"] for c in args["conditions"]}
    auc = {(t, c): np.mean([r["auc"] for r in data["runs"] if r["task"] == t and r["condition"] == c])
           for t in args["tasks"] for c in args["conditions"]}
    notes = ["Fraction of seeds whose final greedy policy is optimal: " + "; ".join(
        f"{t}: " + ", ".join(f"{c} {solved[t, c]:.2f}" for c in args["conditions"]) for t in args["tasks"]) + "."]
    if all(k in auc for k in (("multi-goal", "combos"), ("multi-goal", "inputs"))) and \
            auc["multi-goal", "combos"] < auc["multi-goal", "inputs"]:
        moves = data["moves_after_primitives"]
        after = lambda c, n: np.mean(moves[c][str(n)])  # noqa: E731
        notes.append("The fixed combos learn more slowly than the extracted functions, so they are not the upper "
                     "bound the design assumed and the 'share of the combos' gain' exceeds 100%. Why, measured by "
                     "downstream.moves_after_primitives: with one primitive action already in the combo buffer, "
                     f"a fixed combo moves the agent as its combo from {after('combos', 1):.2f} of the starts "
                     f"(two: {after('combos', 2):.2f}), the --mask-inputs options from {after('inputs', 1):.2f} "
                     f"({after('inputs', 2):.2f}); from an empty buffer both move from {after('combos', 0):.2f} "
                     f"and {after('inputs', 0):.2f}. The extracted functions read the buffer and complete a combo "
                     "that the learner's own primitive actions began; the fixed combos straddle two buffer reads "
                     "and do nothing. A learner that mixes primitives and options is helped by the first and "
                     "stalled by the second.")
    if ("multi-goal", "whole") in solved and solved["multi-goal", "whole"] == 0:
        notes.append("The unmasked networks (whole) reach goals eventually, which the AUC counts, but never "
                     "solve a task optimally (we did not study why).")
    notes.append("The AUC counts a goal reached at any time within 500 steps, and its first iterations are "
                 "biased upward: only the episodes that end early, that is the successful ones, are counted "
                 "there. Whether the greedy policy is optimal is the sharper measure.")
    report.paragraph(" ".join(notes))
    report.paragraph(f"Command: {REUSE}. results/downstream/results.json holds one record per (task, "
                     "condition, seed) with its AUC, whether it solved the task and when it first did.")


def build(runs, training, study, sets_training, reuse, output):
    """Write the PDF from the loaded runs, the study across network sets, the reuse study and the
    training records."""
    default, seeds, inputs, zero = runs["default"], runs["seeds"], runs["inputs"], runs["inputs_zero"]
    needed = extraction.needed_pairs()
    report = Report()
    report.title("Neural decomposition on ComboGrid: answers")
    report.paragraph(
        "Every number below was computed by the kit's code and read from the runs' results.json "
        "files by report.py; nothing was typed by hand. The four base networks are the kit's own "
        "PPO networks in models/ (see 'How the numbers were produced' at the end).")

    report.heading(f"1. The score tables of the default run ({default.command}, seed "
                   f"{default.args['seed']})")
    report.paragraph(
        f"Masked Score: fraction of the {default.whole.shape[-1] * default.args['sequence_length']} actions "
        f"({default.whole.shape[-1]} test states x {default.args['sequence_length']} steps) in which the "
        "masked network takes the combo's action; Original Score: the same for the unmasked network.")
    for table in extraction.score_tables(default.masked, default.original):
        report.monospace(table)

    d_need, d_not = extraction.group_means(default.masked)
    o_need, o_not = default.original[needed].mean(), default.original[~needed].mean()
    w_need, w_not = extraction.group_means(default.whole.mean(-1))
    s_need, s_not = extraction.group_means(seeds.masked)
    l_need, l_not = extraction.group_means(seeds.best_loss)
    sw_need, sw_not = extraction.group_means(seeds.whole.mean(-1))
    report.heading("2. Question 1: the two tests")
    per_combo = []
    for c, combo in enumerate(COMBO_NAMES):
        yes = ", ".join(f"{p} {default.masked[0, c, a]:.3f}" for a, p in enumerate(PROBLEMS) if needed[c, a])
        no = ", ".join(f"{p} {default.masked[0, c, a]:.3f}" for a, p in enumerate(PROBLEMS) if not needed[c, a])
        per_combo.append(f"{combo}: needed by {yes}; not needed by {no}.")
    report.paragraph(
        "For each combo s, two of the four networks were trained on problems whose solutions use s "
        "and two were not. In the default run the masks for s score, per network:\n" +
        "\n".join(per_combo) +
        f"\nOn average the masks score {d_need[0]:.3f} on networks whose problem needs the combo and "
        f"{d_not[0]:.3f} on the others (the unmasked networks: {o_need:.3f} and {o_not:.3f}). Over 10 "
        f"seeds ({seeds.command}) the two groups score {mean_std(s_need)} and {mean_std(s_not)} "
        "(mean ± standard deviation over seeds of the group mean).")
    report.paragraph(
        "The score counts single actions, and a network that takes action 0 everywhere already scores "
        "2/3 on Up (0, 0, 1) without any notion of the combo, so the stricter measure is the "
        "fraction of test states from which the "
        f"masked network takes the whole combo: {mean_std(sw_need)} for the needed pairs against "
        f"{mean_std(sw_not)} for the others.")
    report.paragraph(
        "First test: a network whose problem needs s contains a sub-function that produces s, and the "
        "mask finds it: the masked network takes the combo on most of the 96 test states, including "
        "cells and problems it was never trained on, and far more often than the unmasked network, "
        "which follows its own problem's path. Second test: where s is not part of the solution the "
        "network encodes, no mask makes it produce s. The training loss shows it: the best masks reach "
        f"a cross-entropy of {mean_std(l_need)} on the needed pairs but only {mean_std(l_not)} on the "
        "others, so there the masks fit even their own training pairs much worse, and what they do fit "
        "does not generalise. A high score for the needed pairs therefore does not come from masking "
        "being able to make any network do anything: it comes from functions the networks really "
        "learned as part of their solutions.")
    report.paragraph(f"The summary {seeds.command} prints:")
    report.monospace(extraction.summary(seeds.masked, seeds.best_loss), size=7.5)
    report.figure(os.path.join(seeds.folder, "loss_curves.png"), 174,
                  "Mask training loss (mean over 10 seeds). Solid: the network's problem needs the combo; "
                  "dashed: it does not.")
    for combo in ("Up", "Right"):
        report.figure(os.path.join(seeds.folder, f"heatmaps_{combo}.png"), 100,
                      f"Where the {combo} masks take the whole combo {COMBOS[combo]}, over 10 seeds. Rows: base "
                      "network; columns: test problem; G: goal (not a test state). The figures of all four "
                      f"combos are in {seeds.folder}/.")

    set_need, set_not = (across_sets.per_set_means(study, "assignment", "masked_score", f) for f in (True, False))
    in_need, in_not = (across_sets.per_set_means(study, "inputs", "masked_score", f) for f in (True, False))
    report.heading(f"2b. Question 1 across {len(study['sets'])} independently trained network sets")
    report.paragraph(
        f"The numbers above rest on one set of four networks, and their spread is over mask seeds only. "
        f"{TRAIN_SETS} trains {len(study['sets'])} more sets ({sets_training['networks']} networks, "
        f"{sets_training['optimal']} of them optimal, in {sets_training['seconds']:.0f} s as "
        f"{batches(sets_training['processes'])}) and {STUDY} repeats both masking schemes on each:")
    report.monospace(across_sets.summary(study), size=6.2)
    report.paragraph(
        f"What it changes in the answer to question 1: nothing in its direction, and it makes it a claim "
        f"about PPO networks rather than about four of them. In every one of the {len(set_need)} sets the "
        f"needed pairs score above the not-needed ones ({int((set_need > set_not).sum())}/{len(set_need)}; "
        f"worst set {set_need.min():.3f} against {set_not.max():.3f}), and with --mask-inputs every set keeps "
        f"the needed pairs at {in_need.min():.3f} or more and the not-needed at {in_not.max():.3f} or less. "
        f"The spread over network sets ({set_need.std():.3f} for the needed pairs) is "
        + (f"larger than over mask seeds ({np.std(s_need):.3f}): which networks PPO produced matters more "
           "than the mask's initialisation, but not enough to blur the two tests."
           if set_need.std() > np.std(s_need) else
           f"no larger than over mask seeds ({np.std(s_need):.3f}): the networks PPO produced matter no "
           "more than the mask's initialisation."))

    i_need, i_not = extraction.group_means(inputs.masked)
    z_need, z_not = extraction.group_means(zero.masked)
    il_need, il_not = extraction.group_means(inputs.best_loss)
    iw_need, iw_not = extraction.group_means(inputs.whole.mean(-1))
    agent_kept, buffer_kept, goal_kept = input_kinds(inputs.kept)
    pairs = sorted(set(default.training_pairs.values()))
    pairs = f"{pairs[0]}" if len(pairs) == 1 else f"{pairs[0]} to {pairs[-1]}"
    executions = sorted({n // default.args["sequence_length"] for n in default.training_pairs.values()})
    report.heading("3. Question 2: what the masking scheme is missing")
    report.paragraph(
        "Even with the optimisation solved exactly, the scheme picks any mask that fits the training "
        f"data, and the data is small and narrow: each combo's set has {pairs} (state, action) pairs, "
        f"the combo executed {' to '.join(map(str, executions))} times, at cells of two solution paths. "
        "The mask chooses neurons but cannot choose what the extracted "
        "function reads: every neuron still sees the whole observation, including the agent's cell "
        "and the goal's cell. Along a solution path those inputs are fixed or vary with the path, so "
        "a mask that uses them to produce the combo fits the training states perfectly well, yet on "
        "other cells and for other goals the same inputs switch the function off. Nothing in the "
        "objective prefers, among the masks that fit, the simplest or most general one. A combo's "
        "actions depend only on the combo buffer, so the function we want to extract should read "
        "the buffer and nothing else.")
    report.paragraph(
        "Remedy (measured): extraction.py --mask-inputs learns, together with the neuron mask, a keep/drop "
        f"mask over the {inputs.observation_size} inputs with the same softmax + straight-through "
        "technique, adds a penalty "
        f"of {inputs.args['input_penalty']} to the loss per kept input (the smallest function that "
        "fits wins), and replaces a dropped input by its mean over the combo's training data, so "
        f"that the function no longer depends on it. Over 10 seeds ({inputs.command}) the needed "
        f"pairs score {mean_std(i_need)} against {mean_std(s_need)} for the assignment's scheme, and "
        f"take the whole combo from {mean_std(iw_need)} of the test states (against {mean_std(sw_need)}). "
        f"The second test still holds: the not-needed pairs score {mean_std(i_not)} and their best "
        f"training loss stays at {mean_std(il_not)} against {mean_std(il_need)} for the needed pairs. "
        f"The masks keep on average {agent_kept:.2f} agent cells, {buffer_kept:.2f} buffer entries "
        f"and {goal_kept:.2f} goal cells: the extracted functions read the combo buffer. Replacing "
        f"dropped inputs by 0 instead of their mean ({zero.command}) gives {mean_std(z_need)} and "
        f"{mean_std(z_not)}: with zeros, the network sees states it never saw in training (no goal "
        "at all), so the masks keep goal cells as a bias and fail on the problems with other goals.")
    for run in (inputs, zero):
        report.paragraph(f"The summary {run.command} prints:")
        kept = np.array([[len(k) for k in row.flat] for row in run.kept]).reshape(run.masked.shape)
        report.monospace(extraction.summary(run.masked, run.best_loss, kept), size=7.5)
    for combo in ("Up", "Right"):
        report.figure(os.path.join(inputs.folder, f"heatmaps_{combo}.png"), 100,
                      f"The {combo} masks with --mask-inputs, over 10 seeds (compare with the figure above).")

    reuse_section(report, reuse)

    report.heading("4. How the numbers were produced")
    networks = training["networks"]
    trained = "; ".join(f"{p}: seed {t['seed']}, {t['steps']:,} steps, "
                        f"{'optimal' if t['optimal'] else 'NOT optimal'}" for p, t in networks.items())
    ppo = next(iter(networks.values()))["settings"]
    report.paragraph(
        f"Networks: python train_ppo.py (PPO after CleanRL, the four learners trained as "
        f"{batches(ppo.get('processes', 1))}, in {training['seconds']:.0f} s, each exactly as it would train alone; "
        f"{ppo['num_envs']} environments x {ppo['num_steps']} steps per rollout, learning rate "
        f"{ppo['learning_rate']} annealed, entropy coefficient {ppo['ent_coef']}, gamma {ppo['gamma']}, hidden "
        "size " f"{ppo['hidden_size']}; each learner stops once its greedy rollout has been optimal, one "
        f"combo per cell of distance, for {ppo['optimal_checks']} consecutive iterations). Per problem: " +
        trained + ". tests/test_agent.py replays every network's greedy solution with an independent "
        "implementation of the rules.")
    first, last = seeds.args["seed"], seeds.args["seed"] + seeds.args["num_seeds"] - 1
    report.paragraph(
        f"Masks: Adam, learning rate {default.args['mask_learning_rate']}, "
        f"{default.args['mask_learning_steps']} steps, hidden size {default.args['hidden_size']}; the mask "
        f"kept is the one with the lowest training loss seen. Seeds {first} to {last} of a "
        f"{seeds.args['num_seeds']}-seed run are independent initialisations trained in one batch. "
        "Commands: " + "; ".join(run.command for run in runs.values()) +
        ". python report.py reruns them all into results/ and rebuilds this PDF; the same seeds give "
        "the same numbers.")
    report.save(output)


def sets_training_summary(folders):
    """How many networks of the study's sets were trained, how many are optimal, and in how long."""
    records = []
    for folder in folders:
        with open(os.path.join(folder, "training.json")) as file:
            records.append(json.load(file))
    networks = [n for record in records for n in record["networks"].values()]
    return {"networks": len(networks), "optimal": sum(n["optimal"] for n in networks),
            "seconds": records[0]["seconds"], "processes": networks[0]["settings"].get("processes", 1)}


def batches(processes):
    """How train_ppo.py ran its learners (records older than --processes ran one batch)."""
    if processes == 1:
        return "one batched computation"
    return f"{processes} batched computations, one process of one thread each"


def main(args):
    if os.path.isdir(args.output):
        sys.exit(f"error: --output {args.output} is a folder: give the path of the PDF to write")
    if not args.reuse:
        run_all(args)
    missing = [name for name in RUNS if not os.path.exists(os.path.join(args.results_dir, name, "results.json"))]
    missing += [name for name, file in (("sets", "sets.json"), ("downstream", "results.json"))
                if not os.path.exists(os.path.join(args.results_dir, name, file))]
    if missing:
        sys.exit(f"error: no results.json for run {missing[0]!r} in {args.results_dir}: run without --reuse")
    if not os.path.exists(args.training_log):
        sys.exit(f"error: training record not found: {args.training_log} (written by train_ppo.py)")
    try:
        training = read_json(args.training_log)
        runs = {name: load_run(os.path.join(args.results_dir, name), command) for name, (_, command) in RUNS.items()}
        study = read_json(os.path.join(args.results_dir, "sets", "sets.json"))
        reuse_path = os.path.join(args.results_dir, "downstream", "results.json")
        reuse = {**read_json(reuse_path), "path": reuse_path}
    except BadResults as error:
        sys.exit(f"error: {error}; rerun python report.py without --reuse")
    not_finite = [run.folder for run in runs.values() if not np.isfinite(run.masked).all()]
    if not_finite:
        sys.exit(f"error: {not_finite[0]}/results.json holds NaN or infinite scores")
    build(runs, training, study, sets_training_summary(study["sets"]), reuse, args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    start(main, Args, unchanged="answers.pdf is unchanged")
