"""Build answers.pdf, the assignment's answers, from the kit's runs in results/.

    python report.py              # run what results/ lacks, then write answers.pdf
    python report.py --reuse      # only rebuild the PDF from the records in results/
    python report.py --stages discovery_ablations/neuron_no_polish   # make chosen folders, no PDF

Every folder of results/ is a stage of one study (decomposition.answers_study) with the kit command
that makes it; a stage whose record is there is complete and not run again (move its folder away to
make it again), so a stopped run goes on where it stopped. Every number in the PDF is read from the
records (results.json, sets.json, discovery.json, ceiling.json, summary.json) and the training
records (training.json); none is typed. Needs requirements-dev.pip (fpdf2, matplotlib).
"""

if __name__ == "__main__":  # first, so that a Ctrl-C while the libraries load is one line too
    from decomposition.script import stop_quietly_until_started
    stop_quietly_until_started()


import contextlib
import os
from dataclasses import dataclass, fields, replace

import numpy as np
from tabulate import tabulate

from combogrid import COMBO_LENGTH, COMBOS, COMBO_NAMES, DEFAULT_GAME, PROBLEMS
from decomposition import (across_sets, answers_study, combo_discovery, discovery, extraction, family, files,
                           gridstudy, reuse)
from decomposition.pdf import Report
from decomposition.files import kit_path, unwritable
from decomposition.script import ScriptError, check, command_words, fails_on, start
from decomposition.study import run_study

RUNS = {name: " ".join(["python main.py", *flags]) for name, flags in answers_study.EXTRACTIONS.items()}
"""main.py's runs on the shipped networks, by folder, and the command the PDF shows for each."""
FAMILY = "python variants.py --save-dir results/variants"
"""The family study (section 7), run as its own script: it runs the other scripts as commands."""
TRAIN_SETS = f"python train_ppo.py --num-sets {answers_study.NUM_SETS} --save-dir results/network_sets"
STUDY = "python main.py --sets-dir results/network_sets --num-seeds 10 --save-dir results/sets"
REUSE = "python downstream.py --save-dir results/downstream"
MINIGRID = "python minigrid_study.py --save-dir results/minigrid"
"""The MiniGrid study (section 8)."""
CEILING = "python discover.py --ceiling --sets-dir results/network_sets --save-dir results/discovery_ceiling"
"""What neuron masks can do when told the combos (section 6)."""
REUSED = {source: name for name, source in answers_study.REUSED.items()}
"""Per discovery run on the shipped networks, the folder of the reuse study run with its options
(results/NAME/options.pt) as the discovered condition."""


def reuse_discovered(name, results_dir="results"):
    """The command that measures discovery run `name`'s options as a condition of the reuse study."""
    return ["downstream.py", "--conditions", "none", "inputs", "discovered", "--discovered",
            os.path.join(results_dir, name, "options.pt"), "--save-dir", os.path.join(results_dir, REUSED[name])]


DISCOVERY = {"discovery": "neuron masks (the defaults)", "discovery_inputs": "--mask-inputs"}
"""What each discovery run measures: on the shipped networks into results/NAME, on the network sets
into results/NAME_sets."""
ABLATED = {"no_consolidate": "not consolidated", "previous": "before"}
"""Earlier methods whose 10-set records (results/discovery_ablations/{neuron,inputs}_NAME) the sets table shows."""


KIT = os.path.dirname(os.path.abspath(__file__))
DISCOVER_FIELDS = {field.name for field in fields(combo_discovery.DiscoverySettings)} - {"model_paths", "log_every"}


@dataclass
class Args:
    results_dir: str = os.path.join(KIT, "results")
    """folder with one sub-folder per stage of the study (default, seeds, ..., variants)"""
    output: str = os.path.join(KIT, "answers.pdf")
    """the PDF to write"""
    reuse: bool = False
    """build from the records already in results_dir, running no stage"""
    training_log: str = os.path.join(KIT, "models", "training.json")
    """train_ppo.py's record of how the shipped networks were trained"""
    stages: tuple[str, ...] = ()
    """run only these stages of the study (folders under results/, such as discovery_ablations/neuron_no_polish;
    a complete one is said and left as it is) and build no PDF"""


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
        return files.read_json(path)
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
    """Run the stages of the answers study (decomposition.answers_study) not complete yet: all of them,
    or those --stages names."""
    stages = [stage for stage in answers_study.stages(args.results_dir) if not args.stages or stage.name in args.stages]
    for stage in stages:
        if args.stages and stage.complete():
            print(f"{stage.name}: complete ({os.path.join(stage.folder, stage.output)} is there); move its folder "
                  "away to make it again", flush=True)
    run_study(stages, "the results written so far are kept; rerun to go on where it stopped")


def mean_std(values):
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def input_kinds(kept, width=5):
    """How many kept inputs are agent cells, buffer entries and goal cells, per mask on average."""
    cells = width * width
    counts = np.array([[sum(i < cells for i in k), sum(cells <= i < cells + 9 for i in k),
                        sum(i >= cells + 9 for i in k)] for k in kept.flat])
    return counts.mean(0)


def build(runs, training, study, sets_training, reuse_study, found, output, family_dir, minigrid_dir):
    """Write the PDF from the loaded runs, the study across network sets, the reuse study, the
    discovery runs, the family study, the MiniGrid study and the training records: a title, then
    sections 1 to 9 in order."""
    default, seeds, inputs, zero = runs["default"], runs["seeds"], runs["inputs"], runs["inputs_zero"]
    report = Report()
    report.title("Neural decomposition on ComboGrid: answers")
    report.paragraph(
        "Every number below was computed by the kit's code and read from the runs' results.json "
        "files by report.py; nothing was typed by hand. The four base networks are the kit's own "
        "PPO networks in models/ (see 'How the numbers were produced' at the end).")
    section_tables(report, default)
    section_question_1(report, default, seeds)
    section_across_sets(report, study, sets_training, seeds)
    section_question_2(report, default, seeds, inputs, zero)
    section_reuse(report, reuse_study)
    section_discovery(report, found)
    section_family(report, family_dir)
    section_minigrid(report, minigrid_dir)
    section_method(report, runs, training)
    report.save(output)


def section_tables(report, default):
    """1. The four score tables of the default run."""
    report.heading(f"1. The score tables of the default run ({default.command}, seed "
                   f"{default.args['seed']})")
    report.paragraph(
        f"Masked Score: fraction of the {default.whole.shape[-1] * COMBO_LENGTH} actions "
        f"({default.whole.shape[-1]} test states x {COMBO_LENGTH} steps) in which the "
        "masked network takes the combo's action; Original Score: the same for the unmasked network.")
    for table in extraction.score_tables(default.masked, default.original, DEFAULT_GAME):
        report.monospace(table)


def scores_per_combo(default):
    """One line per combo: the default run's Masked Score on the networks that need it and the others."""
    needed = DEFAULT_GAME.needed
    lines = []
    for c, combo in enumerate(COMBO_NAMES):
        scores = {flag: ", ".join(f"{p} {default.masked[0, c, a]:.3f}" for a, p in enumerate(PROBLEMS)
                                  if needed[c, a] == flag) for flag in (True, False)}
        lines.append(f"{combo}: needed by {scores[True]}; not needed by {scores[False]}.")
    return lines


def section_question_1(report, default, seeds):
    """2. Question 1: the two tests, on the default run and over 10 mask seeds."""
    needed = DEFAULT_GAME.needed
    default_needed, default_other = extraction.group_means(default.masked, DEFAULT_GAME)
    original_needed, original_other = default.original[needed].mean(), default.original[~needed].mean()
    seeds_needed, seeds_other = extraction.group_means(seeds.masked, DEFAULT_GAME)
    whole_needed, whole_other = extraction.group_means(seeds.whole.mean(-1), DEFAULT_GAME)
    loss_needed, loss_other = extraction.group_means(seeds.best_loss, DEFAULT_GAME)
    report.heading("2. Question 1: the two tests")
    report.paragraph(
        "For each combo s, two of the four networks were trained on problems whose solutions use s "
        "and two were not. In the default run the masks for s score, per network:\n" +
        "\n".join(scores_per_combo(default)) +
        f"\nOn average the masks score {default_needed[0]:.3f} on networks whose problem needs the combo and "
        f"{default_other[0]:.3f} on the others (the unmasked networks: {original_needed:.3f} and "
        f"{original_other:.3f}). Over 10 seeds ({seeds.command}) the two groups score {mean_std(seeds_needed)} "
        f"and {mean_std(seeds_other)} (mean ± standard deviation over seeds of the group mean).")
    report.paragraph(
        "The score counts single actions, and a network that takes action 0 everywhere already scores "
        "2/3 on Up (0, 0, 1) without any notion of the combo, so the stricter measure is the "
        "fraction of test states from which the "
        f"masked network takes the whole combo: {mean_std(whole_needed)} for the needed pairs against "
        f"{mean_std(whole_other)} for the others.")
    report.paragraph(
        "First test: a network whose problem needs s contains a sub-function that produces s, and the "
        "mask finds it: the masked network takes the combo on most of the 96 test states, including "
        "cells and problems it was never trained on, and far more often than the unmasked network, "
        "which follows its own problem's path. Second test: where s is not part of the solution the "
        "network encodes, no mask makes it produce s. The training loss shows it: the best masks reach "
        f"a cross-entropy of {mean_std(loss_needed)} on the needed pairs but only {mean_std(loss_other)} on "
        "the others, so there the masks fit even their own training pairs much worse, and what they do fit "
        "does not generalise. A high score for the needed pairs therefore does not come from masking "
        "being able to make any network do anything: it comes from functions the networks really "
        "learned as part of their solutions.")
    seeds_summary_and_figures(report, seeds)


def seeds_summary_and_figures(report, seeds):
    """The 10-seed run's printed summary, its loss curves and the Up and Right heat maps."""
    report.paragraph(f"The summary {seeds.command} prints:")
    report.monospace(extraction.summary_table(seeds.masked, seeds.best_loss, DEFAULT_GAME), size=7.5)
    report.figure(os.path.join(seeds.folder, "loss_curves.png"), 174,
                  "Mask training loss (mean over 10 seeds). Solid: the network's problem needs the combo; "
                  "dashed: it does not.")
    for combo in ("Up", "Right"):
        report.figure(os.path.join(seeds.folder, f"heatmaps_{combo}.png"), 100,
                      f"Where the {combo} masks take the whole combo {COMBOS[combo]}, over 10 seeds. Rows: base "
                      "network; columns: test problem; G: goal (not a test state). The figures of all four "
                      f"combos are in {seeds.folder}/.")


def section_across_sets(report, study, sets_training, seeds):
    """3. Question 1 again, on independently trained network sets."""
    set_needed, set_other = (across_sets.per_set_means(study, "assignment", "masked_score", flag)
                             for flag in (True, False))
    inputs_needed, inputs_other = (across_sets.per_set_means(study, "inputs", "masked_score", flag)
                                   for flag in (True, False))
    seed_spread = np.std(extraction.group_means(seeds.masked, DEFAULT_GAME)[0])
    report.heading(f"3. Question 1 across {len(study['sets'])} independently trained network sets")
    report.paragraph(
        f"The numbers above rest on one set of four networks, and their spread is over mask seeds only. "
        f"{TRAIN_SETS} trains {len(study['sets'])} more sets ({sets_training['networks']} networks, "
        f"{sets_training['optimal']} of them optimal, in {sets_training['seconds']:.0f} s as "
        f"{batches(sets_training['processes'])}) and {STUDY} repeats both masking schemes on each:")
    report.monospace(across_sets.sets_table(study), size=6.2)
    report.paragraph(
        f"What it changes in the answer to question 1: nothing in its direction, and it makes it a claim "
        f"about PPO networks rather than about four of them. In every one of the {len(set_needed)} sets the "
        f"needed pairs score above the not-needed ones ({int((set_needed > set_other).sum())}/{len(set_needed)}; "
        f"worst set {set_needed.min():.3f} against {set_other.max():.3f}), and with --mask-inputs every set "
        f"keeps the needed pairs at {inputs_needed.min():.3f} or more and the not-needed at "
        f"{inputs_other.max():.3f} or less. The spread over network sets ({set_needed.std():.3f} for the "
        "needed pairs) is "
        + (f"larger than over mask seeds ({seed_spread:.3f}): which networks PPO produced matters more "
           "than the mask's initialisation, but not enough to blur the two tests."
           if set_needed.std() > seed_spread else
           f"no larger than over mask seeds ({seed_spread:.3f}): the networks PPO produced matter no "
           "more than the mask's initialisation."))


def training_data_size(default):
    """The size of a combo's training set, as text: its (state, action) pairs and combo executions."""
    sizes = sorted(set(default.training_pairs.values()))
    pairs = f"{sizes[0]}" if len(sizes) == 1 else f"{sizes[0]} to {sizes[-1]}"
    executions = sorted({n // COMBO_LENGTH for n in default.training_pairs.values()})
    return pairs, " to ".join(map(str, executions))


def section_question_2(report, default, seeds, inputs, zero):
    """4. Question 2: what the masking scheme is missing, and the measured --mask-inputs remedy."""
    pairs, executions = training_data_size(default)
    report.heading("4. Question 2: what the masking scheme is missing")
    report.paragraph(
        "Even with the optimisation solved exactly, the scheme picks any mask that fits the training "
        f"data, and the data is small and narrow: each combo's set has {pairs} (state, action) pairs, "
        f"the combo executed {executions} times, at cells of two solution paths. "
        "The mask chooses neurons but cannot choose what the extracted "
        "function reads: every neuron still sees the whole observation, including the agent's cell "
        "and the goal's cell. Along a solution path those inputs are fixed or vary with the path, so "
        "a mask that uses them to produce the combo fits the training states perfectly well, yet on "
        "other cells and for other goals the same inputs switch the function off. Nothing in the "
        "objective prefers, among the masks that fit, the simplest or most general one. A combo's "
        "actions depend only on the combo buffer, so the function we want to extract should read "
        "the buffer and nothing else.")
    remedy_paragraph(report, seeds, inputs, zero)
    for run in (inputs, zero):
        report.paragraph(f"The summary {run.command} prints:")
        kept = np.array([[len(k) for k in row.flat] for row in run.kept]).reshape(run.masked.shape)
        report.monospace(extraction.summary_table(run.masked, run.best_loss, DEFAULT_GAME, kept), size=7.5)
    for combo in ("Up", "Right"):
        report.figure(os.path.join(inputs.folder, f"heatmaps_{combo}.png"), 100,
                      f"The {combo} masks with --mask-inputs, over 10 seeds (compare with the figure above).")


def remedy_paragraph(report, seeds, inputs, zero):
    """--mask-inputs against the assignment's scheme, and the zero fill against the mean fill."""
    assignment_needed, _ = extraction.group_means(seeds.masked, DEFAULT_GAME)
    assignment_whole_needed, _ = extraction.group_means(seeds.whole.mean(-1), DEFAULT_GAME)
    inputs_needed, inputs_other = extraction.group_means(inputs.masked, DEFAULT_GAME)
    inputs_whole_needed, _ = extraction.group_means(inputs.whole.mean(-1), DEFAULT_GAME)
    inputs_loss_needed, inputs_loss_other = extraction.group_means(inputs.best_loss, DEFAULT_GAME)
    zero_needed, zero_other = extraction.group_means(zero.masked, DEFAULT_GAME)
    agent_kept, buffer_kept, goal_kept = input_kinds(inputs.kept)
    report.paragraph(
        "Remedy (measured): main.py --mask-inputs learns, together with the neuron mask, a keep/drop "
        f"mask over the {inputs.observation_size} inputs with the same softmax + straight-through "
        "technique, adds a penalty "
        f"of {inputs.args['input_penalty']} to the loss per kept input (the smallest function that "
        "fits wins), and replaces a dropped input by its mean over the combo's training data, so "
        f"that the function no longer depends on it. Over 10 seeds ({inputs.command}) the needed "
        f"pairs score {mean_std(inputs_needed)} against {mean_std(assignment_needed)} for the assignment's "
        f"scheme, and take the whole combo from {mean_std(inputs_whole_needed)} of the test states (against "
        f"{mean_std(assignment_whole_needed)}). The second test still holds: the not-needed pairs score "
        f"{mean_std(inputs_other)} and their best training loss stays at {mean_std(inputs_loss_other)} "
        f"against {mean_std(inputs_loss_needed)} for the needed pairs. "
        f"The masks keep on average {agent_kept:.2f} agent cells, {buffer_kept:.2f} buffer entries "
        f"and {goal_kept:.2f} goal cells: the extracted functions read the combo buffer. Replacing "
        f"dropped inputs by 0 instead of their mean ({zero.command}) gives {mean_std(zero_needed)} and "
        f"{mean_std(zero_other)}: with zeros, the network sees states it never saw in training (no goal "
        "at all), so the masks keep goal cells as a bias and fail on the problems with other goals.")


def section_reuse(report, data):
    """5. Are the extracted functions reusable? The downstream study: its tables, figures and reading."""
    args, runs = data["args"], data["runs"]
    stats = reuse.summaries(runs, args["tasks"], args["conditions"])
    folder = os.path.dirname(data["path"])
    report.heading("5. Are the extracted functions reusable?")
    report.paragraph(
        "The point of extracting sub-functions is to reuse them. downstream.py adds options to a PPO learner's "
        "three primitive actions and measures how fast its greedy policy learns the kit's two downstream tasks: "
        "multi-goal (from the centre, four goals in turn, +10 each) and random (a random start and goal, +10 on "
        "reaching it). Conditions: none (primitives only); neurons and inputs (four three-step options, one per "
        "combo, from the assignment's masks and from --mask-inputs masks, the mask with the lowest training loss "
        "per combo); not-needed (the --mask-inputs masks of networks whose problem does not need the combo: the "
        "control); whole (the four base networks unmasked, three steps each); combos (the four fixed combos); "
        "neural-augmented (each base network's greedy action as one more one-step action). Rewards are "
        "discounted per primitive step inside an option and the value after it by gamma^k (the options "
        f"framework). Each condition's learning rate is chosen among {fmt_rates(args['learning_rates'])} by the "
        f"mean evaluation AUC of {args['tuning_seeds']} tuning seeds per rate; {args['num_seeds']} other seeds are "
        f"reported, {args['budget']:,} primitive steps each. At {args['eval_points']} evenly spaced step counts "
        "each learner's greedy policy plays the task's evaluation episodes (multi-goal its one episode, random all "
        "600 start-goal pairs): success is the goal within 500 primitive steps, SPL the mean of success x fewest "
        "primitive steps / max(steps taken, fewest). The evaluation AUC is the mean SPL over the points; its mean "
        "and interquartile mean (IQM) over seeds and the probability that a seed of the condition beats a seed of "
        "none have 95% percentile-bootstrap intervals (Agarwal et al., 2021).")
    report.monospace(reuse.table(runs, args["tasks"], args["conditions"], args["budget"], "simple"), size=5.5)
    report.figure(os.path.join(folder, "evaluation_curves.png"), 170,
                  "Mean SPL of the greedy policies over the seeds, with 95% bootstrap bands, against primitive steps.")
    report.paragraph(reuse_reading(stats))
    report.paragraph(gain_shares(stats))
    report.monospace(reuse.greedy_episodes_table(runs, args["tasks"], args["conditions"], "simple"), size=5.5)
    report.paragraph(disagreements(runs, args["tasks"], args["conditions"]))
    report.figure(os.path.join(folder, "training_returns.png"), 170,
                  "Secondary: mean return of the training episodes (sampled actions, normalised), with 95% bands.")
    notes = [tuning_note(data["tuning"], args["learning_rates"])]
    if {"combos", "inputs"} <= set(data["moves_after_primitives"]):
        notes.append(fixed_combos_note(data["moves_after_primitives"]))
    report.paragraph(" ".join(notes))
    report.paragraph(f"Command: {REUSE}. results/downstream/results.json holds one record per (task, condition, "
                     "seed) with its evaluation curve (eval_steps, eval_spl, eval_success), auc, final_spl, "
                     "final_success, steps_to_95 and learning_rate, and the tuning's mean AUC per rate.")


def fmt_rates(rates):
    return ", ".join(f"{rate:g}" for rate in rates)


def against_none(interval, none_interval):
    """Where a condition's interval lies relative to none's: clear of, overlapping or below it."""
    (_, low, high), (_, none_low, none_high) = interval, none_interval
    return "clear of" if low > none_high else "below" if high < none_low else "overlapping"


def reuse_reading(stats):
    """Per task, each condition's IQM AUC against none's and its probability of improvement over none;
    then the conditions whose IQM interval lies the same way on every task."""
    lines, positions = [], {}
    for task, summaries in stats.items():
        none_iqm = summaries["none"]["iqm"]
        results = []
        for condition, summary in summaries.items():
            if condition != "none":
                where = against_none(summary["iqm"], none_iqm)
                positions.setdefault(condition, set()).add(where)
                results.append(f"{condition} {reuse.interval(summary['iqm'])}, interval {where} none's, "
                               f"P(better than none) {reuse.interval(summary['improvement_over_none'])}")
        lines.append(f"{task} (none {reuse.interval(none_iqm)}): " + "; ".join(results))
    verdicts = {"clear of": "Faster than primitives alone on every task (IQM interval clear of none's)",
                "overlapping": "Not told apart from primitives alone on any task (IQM interval overlapping none's)",
                "below": "Slower than primitives alone on every task (IQM interval below none's)"}
    answer = [f"{verdict}: {', '.join(c for c, seen in positions.items() if seen == {where})}."
              for where, verdict in verdicts.items() if {where} in positions.values()]
    mixed = [c for c, seen in positions.items() if len(seen) > 1]
    answer += [f"Different from task to task: {', '.join(mixed)}."] if mixed else []
    return ("Per task, each condition's IQM evaluation AUC with its 95% interval, where that interval lies "
            "against none's, and the probability of improvement over none:\n" + ";\n".join(lines) + ".\n"
            + " ".join(answer))


def gain_shares(stats):
    """Per task, the inputs options' mean-AUC gain over none as a share of the largest other condition's gain."""
    sentences = []
    for task, summaries in stats.items():
        gains = {c: s["mean"][0] - summaries["none"]["mean"][0] for c, s in summaries.items() if c != "none"}
        others = {c: gain for c, gain in gains.items() if c != "inputs"}
        if "inputs" not in gains or not others:
            continue
        best = max(others, key=others.get)
        if others[best] > 0:
            sentences.append(f"On {task} the inputs options gain {gains['inputs']:+.3f} mean AUC over none, "
                             f"{gains['inputs'] / others[best]:.0%} of the largest gain of another condition "
                             f"({best}, {others[best]:+.3f}).")
        else:
            sentences.append(f"On {task} no condition but inputs gains over none (inputs {gains['inputs']:+.3f}).")
    return " ".join(sentences)


DISAGREEMENT = 0.25
"""A final training return and a final greedy success rate further apart than this are explained."""


def disagreements(runs, tasks, conditions):
    """The conditions whose final training return and final greedy success disagree, with the measures
    of their greedy episodes."""
    sentences = []
    for task in tasks:
        for condition in conditions:
            mine = reuse.runs_of(runs, task, condition)
            if not mine:
                continue
            mean = {key: np.mean([r[key] for r in mine if r[key] is not None] or [np.nan])
                    for key in ("final_training_return", "final_success", "final_looping", "final_decisions",
                                "final_primitive_steps", "final_optimal_steps")}
            if abs(mean["final_training_return"] - mean["final_success"]) <= DISAGREEMENT:
                continue
            text = (f"{task}, {condition}: training return {mean['final_training_return']:.2f} of the maximum "
                    f"against a greedy success rate of {mean['final_success']:.2f}; {mean['final_looping']:.2f} of "
                    "the greedy episodes repeat a decision state and so never end")
            if np.isfinite(mean["final_decisions"]):
                text += (f", and the successful ones take {mean['final_decisions']:.1f} decisions and "
                         f"{mean['final_primitive_steps']:.1f} primitive steps where {mean['final_optimal_steps']:.1f} "
                         "suffice")
            sentences.append(text + ".")
    if not sentences:
        return (f"At the end of the budget, every condition's training return and greedy success rate are within "
                f"{DISAGREEMENT} of each other.")
    return ("Where the training return (episodes of sampled actions) and the evaluation (the greedy policy) "
            f"differ by more than {DISAGREEMENT} at the end of the budget, measured on the greedy episodes: "
            + " ".join(sentences) + " Sampled actions leave a loop that the greedy policy, deterministic in a "
            "deterministic game, repeats until the episode is cut.")


def tuning_note(tuning, rates):
    """The learning rate chosen per task and condition, and the choices at an end of the grid `rates`."""
    chosen = {(task, condition): record["learning_rate"] for task, conditions in tuning.items()
              for condition, record in conditions.items()}
    text = "Learning rates chosen by the tuning: " + "; ".join(
        f"{task}: " + ", ".join(f"{condition} {rate:g}" for (t, condition), rate in chosen.items() if t == task)
        for task in tuning) + "."
    if len(rates) > 1:
        for end, rate in (("largest", max(rates)), ("smallest", min(rates))):
            at_end = [f"{task} {condition}" for (task, condition), value in chosen.items() if value == rate]
            if at_end:
                text += f" The grid's {end} rate, {rate:g}, was chosen for {', '.join(at_end)}."
    return text


def fixed_combos_note(moves):
    """How often fixed combos and the inputs options complete a combo begun by primitive actions, measured."""
    def after(condition, primitives):
        return np.mean(moves[condition][str(primitives)])
    return ("Measured by decomposition.reuse.moves_after_primitives: with one primitive action already in the combo "
            f"buffer, a fixed combo moves the agent as its combo from {after('combos', 1):.2f} of the starts (two: "
            f"{after('combos', 2):.2f}), the --mask-inputs options from {after('inputs', 1):.2f} "
            f"({after('inputs', 2):.2f}); from an empty buffer both move from {after('combos', 0):.2f} and "
            f"{after('inputs', 0):.2f}. The extracted functions read the buffer and complete a combo that the "
            "learner's own primitive actions began; the fixed combos straddle two buffer reads.")


def section_discovery(report, found):
    """6. Can the functions be found without being told? discover.py's runs and their recovery."""
    first = next(iter(found.values()))["run"]
    args = first["args"]
    report.heading("6. Can the functions be found without being told?")
    report.paragraph(
        "Everything above is told where the combos are: the training data is cut at combo boundaries. "
        "discover.py is not. For every network and every segment of 2 to "
        f"{args['max_length']} actions of the other networks' greedy solutions it learns a mask (all in one "
        "batch) so that the masked network takes the segment's actions"
        + (", from the states of every occurrence of the same actions, at the same position in the combo, in "
           "the solutions the Levin loss is computed on" if args.get("occurrences") else "")
        + ("; each neuron mask is then polished by local search (one neuron's state changed at a time, while the "
           "network takes more of those actions greedily)" if args.get("polish") else "")
        + "; a candidate that does not reproduce "
        "its own segment is dropped. The Levin loss is computed on each network's greedy solutions of its "
        "problem from every non-goal cell"
        + (" (the candidates are fit where those solutions play their segments' actions). " if args.get("occurrences")
           else ": states the candidates were not fit on. ") +
        "A candidate of length l "
        "applies at a position of a solution when its greedy rollout of l steps from that state takes the "
        "solution's next l actions. Candidates that play the same sequence from "
        f">= {args.get('merge_share', discovery.RECOVERED):.0%} of probe states (the "
        "goal on a cell no training problem has) are one function, one option applicable wherever one of them "
        "is; the others are options of their own. The Levin loss of a set of K options is, summed over the "
        "solutions of n actions, log(n + 1) + d log(K + 3), with d the least number of decisions (a primitive "
        "action, or an applicable option, a candidate never used on its own network's solutions) that "
        f"reproduces the solution. At most {args['max_options']} options are chosen: greedy, then local search "
        f"with {args['restarts']} restarts. "
        + ("" if args.get("keep_composites", True) else  # records from before the rule kept them
           "A chosen option whose sequence is a concatenation of other chosen options' sequences is then "
           "dropped, and the search goes on without such options. ")
        + ("" if not args.get("consolidate") else
           "Consolidation: the candidates of the chosen functions are polished again, on their training sets and "
           "on their function's sequence played from the probe states where candidates are merged, and the "
           "merging and the choice are made again, until the choice holds only consolidated candidates (at most "
           f"{discovery.CONSOLIDATION_ROUNDS} times). ") +
        "Recovery: from every non-goal cell of the four problems with an empty buffer, the fraction of states "
        "from which an option performs each true combo (or, for lengths 6, 9, ..., each concatenation). "
        f"Precision: the options that perform a combo or a concatenation from >= {discovery.RECOVERED:.0%} of "
        "the states; recall: the combos some option of length 3 performs from that many. Held out: the same "
        "from the other half of the probe states, which neither the masks, the loss nor the merging saw.")
    for name, label in DISCOVERY.items():
        run = found[name]["run"]
        report.paragraph(f"{label}: {found[name]['command']} ({run['seconds']:.0f} s).")
        report.monospace(combo_discovery.run_text(run), size=6.2)
    figure = os.path.join(os.path.dirname(found["discovery"]["path"]), "recovery.png")
    if os.path.exists(figure):
        report.figure(figure, 105, "The default run's options: the cells from which each performs its best-matching "
                      "combo (yellow) with an empty buffer; white: the goal.")
    report.paragraph(f"The same on the {len(first_sets(found)['sets'])} network sets (one run per set):")
    report.monospace(discovery_sets_table(found), size=6.5)
    if any("no_consolidate" in entry for entry in found.values()):
        report.paragraph("Not consolidated: the same with --no-consolidate (results/discovery_ablations/"
                         "*_no_consolidate).")
    if any("previous" in entry for entry in found.values()):
        report.paragraph("Before: each candidate learned on its own segment by Adam alone, merged at 90% of the "
                         "probe states, not consolidated (results/discovery_ablations/*_previous).")
    report.paragraph(discovery_reading(found))
    ceiling_reading(report, found["discovery"].get("ceiling"), found["discovery"].get("ceiling_no_polish"))
    for name in REUSED:
        discovered_reuse(report, name, DISCOVERY[name], found[name].get("reuse"))
    report.paragraph(
        "Each run's discovery.json holds the options (network, "
        "segment, length, where they apply), their actions from every test state and the fractions above; "
        "options.pt holds their masks, which decomposition.options.load_discovered_options turns into "
        "options that replay in ComboGym (tests/test_discovery.py recomputes the recovery that way).")


def ceiling_reading(report, study, adam_only=None):
    """How far masks of the run's kind can go at all: discover.py --ceiling on the network sets, and
    the same with Adam alone (no polish) where that record is there."""
    if study is None:
        report.paragraph(f"The ceiling of neuron masks has not been measured here ({CEILING} measures it).")
        return
    def reached(record):
        runs, names = record["runs"], list(record["runs"][0]["combos"])
        every = sum(min(r["combos"].values()) >= discovery.RECOVERED for r in runs)
        per_combo = ", ".join(f"{n} {sum(r['combos'][n] >= discovery.RECOVERED for r in runs)}" for n in names)
        how = "Adam and the polish" if record["args"].get("polish") else "Adam alone"
        return (f"with {how}, the best of {record['args']['mask_seeds']} seed(s) x 4 networks plays every combo "
                f"from >= {discovery.RECOVERED:.0%} of the test states on {every} of {len(runs)} sets (sets per "
                f"combo: {per_combo})")
    text = (f"What neuron masks of these networks can do at all ({CEILING}): told each combo and fit on it played "
            f"from every probe state, {reached(study)}.")
    if adam_only is not None:
        text += f" Fit the same way {reached(adam_only)} (results/discovery_ablations/ceiling_no_polish)."
    report.paragraph(text + " A neuron-mask discovery cannot recall 4/4 where even told masks do not.")


def discovered_reuse(report, name, label, study):
    """The options of discovery run `name` (its label) as a condition of the reuse study, beside none
    and inputs in the same run (same protocol, tuning and seeds as section 5)."""
    command = " ".join(["python", *reuse_discovered(name)])
    if study is None:
        report.paragraph(f"The options of the {label} run have not been measured as a condition of the reuse "
                         f"study here ({command} measures them).")
        return
    args, runs = study["args"], study["runs"]
    report.paragraph(f"Reused as options ({command}; the protocol of section 5, the options of the {label} run "
                     "above, each of its own length):")
    report.monospace(reuse.table(runs, args["tasks"], args["conditions"], args["budget"], tablefmt="simple"),
                     size=6.2)
    stats = reuse.summaries(runs, args["tasks"], args["conditions"])
    readings = []
    for task, summary in stats.items():
        if not {"discovered", "inputs"} <= set(summary):
            continue
        (_, low, high), (_, in_low, in_high) = summary["discovered"]["iqm"], summary["inputs"]["iqm"]
        where = ("within" if in_low <= low and high <= in_high else "overlapping" if low <= in_high and in_low <= high
                 else "below" if high < in_low else "above")
        readings.append(f"{task}: discovered IQM {reuse.interval(summary['discovered']['iqm'])}, {where} the "
                        f"interval of inputs {reuse.interval(summary['inputs']['iqm'])}")
    if readings:
        report.paragraph("; ".join(readings) + ".")


def first_sets(found):
    return next(iter(found.values()))["sets"]


def discovery_sets_table(found):
    """Per configuration: precision and recall over the sets (mean and worst), sets with recall 4/4
    and precision >= 0.8 (on the test states and held out)."""
    rows = []
    configurations = [(label, found[name]["sets"]["runs"]) for name, label in DISCOVERY.items()]
    configurations += [(f"{label}, {ABLATED[method]}", found[name][method]["runs"]) for method in ABLATED
                       for name, label in DISCOVERY.items() if method in found[name]]
    for label, runs in configurations:
        precision, recall = (np.array([r[key] for r in runs]) for key in ("precision", "recall"))
        loss = np.array([r["levin_loss"] for r in runs])
        rows.append([label, f"{np.mean([len(r['options']) for r in runs]):.1f}", f"{precision.mean():.2f}",
                     f"{precision.min():.2f}", f"{recall.mean():.2f}", f"{recall.min():.2f}",
                     f"{sum(found_all(r) for r in runs)}/{len(runs)}",
                     f"{sum(found_all(r['held_out']) for r in runs)}/{len(runs)}", f"{loss.mean():.1f}"])
    return tabulate(rows, headers=["masks", "options", "precision", "worst", "recall", "worst", "4/4, prec. >= 0.8",
                                   "held out", "Levin loss"], tablefmt="grid")


def found_all(scores):
    """Whether a run (or its held-out scores) recalls every combo with precision >= 0.8: issue's goal per set."""
    return scores["recall"] == 1 and scores["precision"] >= 0.8


def discovery_reading(found):
    """What the chosen options are, counted over every run."""
    runs = [run for entry in found.values() for run in [entry["run"], *entry["sets"]["runs"]]]
    options = [o for run in runs for o in run["options"]]
    combos = [o for o in options if o["performs"] in COMBO_NAMES]
    concatenated = [o for o in options if o["performs"] is not None and o["performs"] not in COMBO_NAMES]
    other = [o for o in options if o["performs"] is None]
    merged = [o for o in options if len(o["networks"]) > 1]
    doubled = sum(any(sum(o["performs"] == name for o in run["options"]) > 1 for name in COMBO_NAMES) for run in runs)
    same = sum(run["held_out"]["recalled"] == run["recalled"] for run in runs)
    return (
        f"Over these {len(runs)} runs (both kinds of masks; the shipped networks and every set), {len(options)} "
        f"options were chosen: {len(combos)} perform one combo, {len(concatenated)} a concatenation of combos "
        f"(e.g. {concatenated[0]['performs'] if concatenated else '-'}) and {len(other)} neither, from >= "
        f"{discovery.RECOVERED:.0%} of the test states. {len(merged)} options are functions of candidates of "
        f"two or more networks. In {doubled} runs two options perform the same combo. The held-out probe "
        f"states recall the same combos as the test states in {same} of the {len(runs)} runs.")


def family_goals(entry):
    """Which of the family study's goals a game meets, as (goal, met or None when not measured) pairs."""
    extract, reuse, found = entry.get("extract"), entry.get("reuse"), entry.get("discover")
    goals = []
    if extract:
        for scheme, label in (("assignment", "neuron masks"), ("inputs", "input masks")):
            s = extract[scheme]
            goals.append((f"{label}: needed above not needed on every set ({s['separated']}/{s['sets']})",
                          s["separated"] == s["sets"]))
        goals.append((f"input masks: needed pairs at least 0.95 on every set (worst {extract['inputs']['worst_needed']:.3f})",
                      extract["inputs"]["worst_needed"] >= 0.95))
    if reuse:
        for task in ("multi-goal", "random"):
            goals.append((f"reuse, {task}: inputs' IQM interval clear of none's", reuse[task]["inputs_clear_of_none"]))
            if "control_below_inputs" in reuse[task]:
                goals.append((f"reuse, {task}: inputs' IQM interval clear of the not-needed control's",
                              reuse[task]["control_below_inputs"]))
    if found:
        goals.append((f"discovery with input masks: recall 4/4 on {found['full_recall']} of {found['sets']} sets",
                      found["full_recall"] * 2 > found["sets"]))
    return goals


def study_record(report, path, what, command):
    """The JSON record of a study that report.py may find absent: None after a paragraph saying so."""
    if os.path.exists(path):
        return read_json(path)
    report.paragraph(f"No {what} in {os.path.dirname(path)}: {command} runs it.")
    return None


def section_family(report, study_dir):
    """7. The ComboGrid family: the studies repeated on every named game (variants.py)."""
    report.heading("7. Beyond one game: the ComboGrid family")
    recorded = study_record(report, os.path.join(study_dir, "summary.json"), "family study", FAMILY)
    if recorded is None:
        return
    names = list(recorded)
    summary = family.summarise(study_dir, names)  # recomputed from the stages' own records
    report.paragraph(
        "variants.py repeats the kit's studies on every named game of combogrid.GAMES: larger grids (6x6, "
        "10x10), four-action combos (5x5-combo4), walls (5x5-hallways: only the middle row and column open, "
        "with four problems between mid-edge cells; 5x5-block: the interior walled), and twelve problems "
        "(5x5-12problems: the corners and the research code's mid-edge problems). Each game's optimal "
        "lengths, needed combos and test states are computed from its description (breadth-first search). "
        "Per game: train_ppo.py --num-sets trains independent network sets; main.py --sets-dir runs both "
        "masking schemes on every set whose networks are all optimal; downstream.py reuses the first such "
        "set's functions as options on the game's own multi-goal and random tasks, against none, the "
        "not-needed control, the whole networks, the true combos and neural-augmented (budget scaled by the "
        "cells, learning rates tuned per condition); discover.py --mask-inputs runs discovery on the first "
        "sets. Every command is printed by variants.py and recorded in the study folder.")
    report.monospace(family.table(summary), size=4.6)
    figure = os.path.join(study_dir, "summary.png")
    if os.path.exists(figure):
        report.figure(figure, 180, "Per game: needed and not-needed Masked Score (mean over sets); the reuse "
                      "study's IQM evaluation AUC [95% CI] per condition on both tasks; discovery's recall per set.")
    lines = []
    for name, entry in summary.items():
        goals = family_goals(entry)
        if goals:
            lines.append(f"{name}: " + "; ".join(f"{goal}: {'met' if met else 'NOT met'}" for goal, met in goals) + ".")
        else:
            lines.append(f"{name}: no stage measured yet.")
    report.paragraph("Goals, per game, as measured: " + " ".join(lines))
    report.paragraph("docs/variants.md gives what was measured about the goals not met: on 10x10 no condition "
                     "but the whole networks learns the multi-goal tour within the study's budget (the fixed "
                     "combos neither).")


def section_minigrid(report, folder):
    """8. The pipeline on MiniGrid (minigrid_study.py): sources, discovery, reuse on FourRooms."""
    report.heading("8. The same pipeline on MiniGrid")
    data = study_record(report, os.path.join(folder, "results.json"), "MiniGrid study", MINIGRID)
    if data is None:
        return
    args, runs = data["args"], data["runs"]
    task, conditions = runs[0]["task"], args["conditions"]
    report.paragraph(
        f"{MINIGRID} ({data['seconds'] / 60:.0f} minutes): {args['num_sets']} independent sets of one PPO network "
        f"(64 hidden ReLU neurons) per source layout ({', '.join(args['sources'])}; fewest steps "
        f"{data['optimal']['sources']}), each of whose greedy episodes, played in minigrid itself, reaches the goal "
        f"in the fewest steps. The observation is the agent's {args['view']} x {args['view']} view, one-hot over "
        "empty, wall and goal, and its direction; actions turn left, turn right, forward. Per set, the kit's "
        "discovery (masks on every 2- to 6-action segment of the other networks' solutions, Levin-loss selection) "
        f"chooses the options, reused on {args['target']} (fewest steps {data['optimal']['target']}; +10 at the "
        f"goal, 0 otherwise) with {args['num_seeds']} seeds per set, {args['budget']:,} primitive steps each, "
        "learning rates tuned per condition and set on other seeds. fixed-discovered plays the chosen options' "
        "segments as fixed macro-actions; random-segments (the issue's control) takes as many candidates of the "
        "same lengths at random; random-sequences, fixed macro-actions of uniformly random actions of the same "
        "lengths; whole, the chosen options' networks unmasked for the same lengths; neural-augmented, each "
        "network's greedy action as one more action.")
    report.monospace(gridstudy.summary_table(runs, task, conditions, "simple"), size=5.5)
    for name, width, caption in (("evaluation_curves.png", 120, "Mean SPL of the greedy policies on the target, "
                                  "with 95% bootstrap bands over every set and seed."),
                                 ("options.png", 180, "The first set's options on the target grid: each cell's four "
                                  "triangles (the agent facing east, south, west, north) coloured by the action "
                                  "sequence the option plays from there (L, R: turns; F: forward).")):
        if os.path.exists(os.path.join(folder, name)):
            report.figure(os.path.join(folder, name), width, caption)
    above, met = gridstudy.goal(runs, task, conditions)
    report.paragraph(
        "IQM interval wholly above none's: " + "; ".join(f"{c}: {'yes' if a else 'no'}" for c, a in above.items())
        + f". The goal (discovered above none, the random-segments control not) is {'met' if met else 'NOT met'}. "
        "What the options are and play on the target: " + "; ".join(gridstudy.options_reading(data["sets"]))
        + ". docs/minigrid.md gives the reading and where the kit differs from the research code.")


def section_method(report, runs, training):
    """9. How the numbers were produced: the networks' training and the mask runs."""
    default, seeds = runs["default"], runs["seeds"]
    networks = training["networks"]
    trained = "; ".join(f"{p}: seed {t['seed']}, {t['steps']:,} steps, "
                        f"{'optimal' if t['optimal'] else 'NOT optimal'}" for p, t in networks.items())
    ppo = next(iter(networks.values()))["settings"]
    report.heading("9. How the numbers were produced")
    report.paragraph(
        f"Networks: python train_ppo.py (PPO after CleanRL, the four learners trained as "
        f"{batches(ppo.get('processes', 1))}, in {training['seconds']:.0f} s, each exactly as it would train "
        f"alone; {ppo['num_envs']} environments x {ppo['num_steps']} steps per rollout, learning rate "
        f"{ppo['learning_rate']} annealed, entropy coefficient {ppo['ent_coef']}, gamma {ppo['gamma']}, hidden "
        f"size {ppo['hidden_size']}; each learner stops once its greedy rollout has been optimal, one "
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


def sets_training_summary(folders):
    """How many networks of the study's sets were trained, how many are optimal, and in how long."""
    records = [read_json(os.path.join(folder, "training.json")) for folder in folders]
    networks = [n for record in records for n in record["networks"].values()]
    return {"networks": len(networks), "optimal": sum(n["optimal"] for n in networks),
            "seconds": records[0]["seconds"], "processes": networks[0]["settings"].get("processes", 1)}


def batches(processes):
    """How train_ppo.py ran its learners (records older than --processes ran one batch)."""
    if processes == 1:
        return "one batched computation"
    return f"{processes} batched computations, one process of one thread each"


def kit_relative(args):
    """args with every path absolute, then relative to the kit where it lies inside it: report.py
    works from the kit's folder, wherever it is started, and the records name the kit's files as
    results/... as the commands in the PDF do."""
    return replace(args, **{name: kit_path(getattr(args, name))
                            for name in ("results_dir", "output", "training_log")})


def check_args(args):
    """The first fault of the arguments, as a message, or None."""
    if os.path.isdir(args.output) or not args.output or args.output.endswith(os.sep):
        return f"--output {args.output!r} is a folder: give the path of the PDF to write"
    if os.path.lexists(args.output) and not os.path.isfile(args.output):
        return f"--output {args.output} is not a regular file (a device, a FIFO or a broken link): not replaced"
    if os.path.exists(args.results_dir) and not os.path.isdir(args.results_dir):
        return f"--results-dir {args.results_dir} is not a folder"
    names = [stage.name for stage in answers_study.stages()]
    unknown = [name for name in args.stages if name not in names]
    if unknown:
        return f"unknown stage {unknown[0]!r}: the stages are {', '.join(names)}"
    if args.stages and args.reuse:
        return "--stages runs stages and --reuse runs none: give one of them"
    if not args.reuse and not os.path.isfile(args.training_log):
        return f"training record not found: {args.training_log} (written by train_ppo.py)"
    if not args.reuse and unwritable(args.results_dir):
        return f"cannot write to --results-dir {args.results_dir}: {unwritable(args.results_dir)}"
    folder = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(folder):
        return f"--output {args.output}: its folder {folder} does not exist"
    if unwritable(folder):
        return f"cannot write --output {args.output}: {unwritable(folder)}"
    return None


def load_all(args):
    """The runs, the training records, the study across sets and the reuse study, checked."""
    missing = [name for name in RUNS if not os.path.exists(os.path.join(args.results_dir, name, "results.json"))]
    missing += [name for name, file in (("sets", "sets.json"), ("downstream", "results.json"))
                if not os.path.exists(os.path.join(args.results_dir, name, file))]
    if missing:
        raise ScriptError(f"no results.json for run {missing[0]!r} in {args.results_dir}: run without --reuse")
    if not os.path.exists(args.training_log):
        raise ScriptError(f"training record not found: {args.training_log} (written by train_ppo.py)")
    training = read_json(args.training_log)
    if not isinstance(training, dict) or not isinstance(training.get("networks"), dict) or not training["networks"]:
        raise BadResults(f"{args.training_log}: not a training record of train_ppo.py (no networks)")
    runs = {name: load_run(os.path.join(args.results_dir, name), command) for name, command in RUNS.items()}
    not_finite = [run.folder for run in runs.values() if not np.isfinite(run.masked).all()]
    if not_finite:
        raise ScriptError(f"{not_finite[0]}/results.json holds NaN or infinite scores")
    study = read_json(os.path.join(args.results_dir, "sets", "sets.json"))
    if not study["runs"] or not np.isfinite([r["masked_score"] for r in study["runs"]]).all():
        raise BadResults(f"{args.results_dir}/sets/sets.json holds no runs or NaN or infinite scores")
    reuse_path = os.path.join(args.results_dir, "downstream", "results.json")
    reuse_study = read_json(reuse_path)
    if not reuse_study["runs"] or not np.isfinite([r["auc"] for r in reuse_study["runs"]]).all():
        raise BadResults(f"{reuse_path} holds no runs or NaN or infinite AUCs")
    return runs, training, study, {**reuse_study, "path": reuse_path}, load_discovery(args)


def load_discovery(args):
    """{name: {"run": discovery.json, "sets": sets.json, "command": its command}} of DISCOVERY, and
    where their records are there: "reuse" (the REUSED study of its options), the ABLATED 10-set
    records by method name, and for "discovery" the ceilings ("ceiling", "ceiling_no_polish")."""
    found = {}
    for name in DISCOVERY:
        paths = [os.path.join(args.results_dir, name, "discovery.json"),
                 os.path.join(args.results_dir, f"{name}_sets", "sets.json")]
        missing = [path for path in paths if not os.path.exists(path)]
        if missing:
            raise ScriptError(f"no {missing[0]}: run without --reuse")
        run = read_json(paths[0])
        found[name] = {"run": run, "sets": read_json(paths[1]), "path": paths[0],
                       "command": " ".join(["python discover.py", *command_words(combo_discovery.DiscoverySettings(
                           **{key: value for key, value in run["args"].items() if key in DISCOVER_FIELDS})),
                           "--save-dir", os.path.join("results", name)])}
    for name, folder in REUSED.items():
        path = os.path.join(args.results_dir, folder, "results.json")
        if os.path.exists(path):
            found[name]["reuse"] = read_json(path)
    for name, kind in (("discovery", "neuron"), ("discovery_inputs", "inputs")):
        for method in ABLATED:
            path = os.path.join(args.results_dir, "discovery_ablations", f"{kind}_{method}", "sets.json")
            if os.path.exists(path):
                found[name][method] = read_json(path)
    for key, folder in (("ceiling", ("discovery_ceiling",)), ("ceiling_no_polish", ("discovery_ablations", "ceiling_no_polish"))):
        path = os.path.join(args.results_dir, *folder, "ceiling.json")
        if os.path.exists(path):
            found["discovery"][key] = read_json(path)
    return found


@fails_on()
def main(args):
    check(check_args(args))
    args = kit_relative(args)
    with contextlib.chdir(KIT):
        if args.stages:
            run_all(args)
            return
        build_from_results(args)
    print(f"wrote {args.output}")


def build_from_results(args):
    """Run what --reuse does not skip, then build the PDF; malformed results as one ScriptError."""
    if not args.reuse:
        run_all(args)
    try:
        runs, training, study, reuse_study, found = load_all(args)
        build(runs, training, study, sets_training_summary(study["sets"]), reuse_study, found, args.output,
              os.path.join(args.results_dir, "variants"), os.path.join(args.results_dir, "minigrid"))
    except BadResults as error:
        raise ScriptError(f"{error}; rerun python report.py without --reuse") from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
        raise ScriptError(f"a results file in {args.results_dir} or {args.training_log} is malformed "
                          f"({type(error).__name__}: {error}); rerun python report.py without --reuse") from None


if __name__ == "__main__":
    start(main, Args, unchanged="answers.pdf is unchanged, and the stages done so far are kept")
