"""The appendix of answers.pdf: one short section per later study (the question, the method, a table, a
figure, the caveats, the result), then the command behind every table."""

import numpy as np

from decomposition import answers_figures, discovery, reuse, statistics
from decomposition.answers_analyses import (against, ceiling, discovery_row, everywhere, option_kinds, positions,
                                            set_iqms, sets_groups)
from decomposition.pdf import Figure, Heading, Paragraph, Part, Table

SCHEMES = {"assignment": "neuron masks", "inputs": "neuron and input masks"}
ABLATED = {"no_consolidate": "not consolidated", "previous": "earlier method"}
"""The discovery ablations A3 shows, by the name of their folder (answers_records.Discovery.ablations)."""


PLACED = {"above": "lies above", "below": "lies below", "overlapping": "overlaps"}


def blocks(records, commands):
    return [[Part("Appendix: what the later studies add"),
             Paragraph(
                 "The answers above rest on four networks, judge the masks on test states only, and are told where "
                 "the combos are. The studies below ask what changes with other networks (A1), whether the "
                 "extracted functions help a learner (A2), whether they can be found without cutting the data at "
                 "the combos (A3), and whether the results hold on other games (A4) and on MiniGrid (A5). Every "
                 "number is read from results/; A6 gives the command behind each table.")],
            *network_sets(records, commands), *reused(records.reuse, commands), *discovered(records, commands),
            *family_study(records.family, commands), *minigrid_study(records.minigrid, commands),
            reproduce(commands)]


def difference_interval(needed, other):
    return "{:.3f} [{:.3f}, {:.3f}]".format(*statistics.with_interval(np.mean, needed - other))


def network_sets(records, commands):
    study, trained = records.sets, records.sets_training
    networks = [n for record in trained for n in record["networks"].values()]
    rows, spread = [], {}
    for scheme, label in SCHEMES.items():
        needed, other = sets_groups(study, scheme)
        whole = sets_groups(study, scheme, "whole_combo")
        spread[scheme] = needed.std()
        rows.append([label, f"{needed.mean():.3f} ± {needed.std():.3f}", f"{other.mean():.3f} ± {other.std():.3f}",
                     difference_interval(needed, other), f"{whole[0].mean():.3f} / {whole[1].mean():.3f}",
                     f"{int((needed > other).sum())}/{len(needed)}"])
    seeds_spread = np.std(records.runs["seeds"].masked.mean((1, 2)))
    mask_seeds = len({r["seed"] for r in study["runs"]})
    return [[Heading("A1. Other networks: statistics over network sets"),
             Paragraph(
                 f"**Question**: do the two tests hold for PPO networks in general, or for these four? **Method**: "
                 f"`{commands['network_sets']}` trains {len(study['sets'])} sets of four networks "
                 f"({sum(n['optimal'] for n in networks)} of {len(networks)} optimal); set 0 is the networks of models/ "
                 f"byte for byte, sets 1 to {len(study['sets']) - 1} are new. `{commands['sets']}` runs both schemes "
                 f"with {mask_seeds} mask seeds on every set. The unit is the network set: the table gives means ± std over "
                 "sets of each set's mean over its pairs and seeds, and a 95% bootstrap interval over sets of the "
                 "difference needed - not needed."),
             Table(["masks", "needed", "not needed", "difference [95% CI]", "whole combo: needed / not",
                    "sets with needed above"], rows, widths=(1.5, 1.05, 1.05, 1.45, 1.3, 1.0))],
            [Figure(answers_figures.sets_figure(study), "Each network set's mean Masked Score over its needed "
                    f"(dots) and not-needed (crosses) pairs, {mask_seeds} mask seeds each.")],
            [Paragraph(
                 f"**Result**: on every set and with both schemes the needed pairs score above the not-needed ones. "
                 f"The spread over sets ({spread['assignment']:.3f} for the neuron masks' needed pairs) is larger "
                 f"than over mask seeds on one set ({seeds_spread:.3f}): which networks PPO produced matters more than "
                 "the mask's initialisation, not enough to blur the tests. **Caveat**: every set was trained by the "
                 "kit's one PPO recipe; networks of other recipes are not measured here.")]]


def reuse_rows(stats, conditions):
    return [[condition] + [cell for task in stats for cell in
                           (reuse.interval(stats[task][condition]["iqm"]),
                            f"{stats[task][condition]['improvement_over_none'][0]:.2f}")]
            for condition in conditions]


def reused(record, commands):
    args, runs = record["args"], record["runs"]
    stats = reuse.summaries(runs, args["tasks"], args["conditions"])
    found = positions(stats)
    above = everywhere(found, "above")
    headers = ["options"] + [cell for task in stats for cell in (f"{task}: IQM AUC [95% CI]", "P(> none)")]
    return [[Heading("A2. Reuse: do the extracted functions help a learner?"),
             Paragraph(
                 "**Method**: a PPO learner gets options beside its three actions and learns the kit's two tasks: "
                 "multi-goal (from the centre, four goals in turn) and random (a random start and goal). Options: "
                 "none; the four functions extracted by neuron masks (neurons) or by neuron and input masks "
                 "(inputs), each played for three steps; the input masks of the networks that do not need the "
                 "combo (not-needed, the control); the four networks unmasked (whole); the four combos as fixed "
                 "sequences (combos); each network's greedy action as one more action (neural-augmented). At "
                 f"{args['eval_points']} points of the "
                 f"{args['budget']:,} primitive steps the greedy policy is evaluated (SPL: success times fewest steps "
                 "over steps taken); a learner's AUC is its mean SPL over the points. Each condition's learning rate "
                 f"is chosen among {', '.join(f'{r:g}' for r in args['learning_rates'])} on {args['tuning_seeds']} "
                 f"seeds apart from the {args['num_seeds']} reported; intervals are 95% bootstrap intervals over those "
                 "learners; P(> none): the probability that a learner of the condition beats one of none."),
             Table(headers, reuse_rows(stats, args["conditions"]), widths=(1.35, 1.55, 0.7, 1.55, 0.7),
                   bold=(args["conditions"].index("inputs"),))],
            [Figure(answers_figures.reuse_figure(record), "Mean SPL of the greedy policies against primitive steps, "
                    "with 95% bootstrap bands over the reported learners.")],
            [Paragraph(
                 f"**Result**: {', '.join(above) or 'no condition'} learn{'s' if len(above) == 1 else ''} faster "
                 "than primitives alone on both tasks (IQM intervals above none's)"
                 + ("; the control's interval " + " and ".join(f"{PLACED[where]} none's on {task}"
                                                                for task, where in found["not-needed"].items())
                    if "not-needed" in found else "")
                 + ". **Caveats**: the options come from one draw, the lowest-loss mask of "
                 f"{args['mask_seeds']} seeds per combo on the networks of models/, so the intervals cover learners, "
                 "not the draw of networks or masks.")]]


def discovered(records, commands):
    neuron, inputs = records.discovery["neuron"], records.discovery["inputs"]
    rows, configurations = [], []
    for label, found in (("neuron masks", neuron), ("input masks", inputs)):
        rows.append([label, "models/", *discovery_cells(discovery_row([found.run]))])
        for name, runs in [(label, found.sets["runs"])] + [(f"{label}, {ABLATED[method]}", record["runs"])
                                                           for method, record in found.ablations.items()]:
            rows.append([name, f"{len(runs)} sets", *discovery_cells(discovery_row(runs))])
            configurations.append((name, runs))
    runs = [r for found in (neuron, inputs) for r in (found.run, *found.sets["runs"])]
    total, combos, concatenations, other = option_kinds(runs)
    args = neuron.run["args"]
    blocks = [[Heading("A3. Discovery: can the functions be found without being told the combos?"),
               Paragraph(
                   f"**Method** (`{commands['discovery']}`): for every network and every segment of 2 to "
                   f"{args['max_length']} actions of the other networks' greedy solutions, a mask is fit so that the "
                   "masked network plays the segment from every state where the solutions play it; candidates that "
                   "play the same sequence from most probe states are merged into one option; a set of at most "
                   f"{args['max_options']} options is chosen to minimise the Levin loss of the networks' solutions from "
                   "every cell (how many decisions the options save). Recall: the combos some 3-step option plays "
                   f"from at least {discovery.RECOVERED:.0%} of the test states; precision: the chosen options that play a combo or a "
                   "concatenation of combos; held out: the same on probe states no step of the method saw."),
               Table(["masks", "networks", "options", "precision (worst)", "recall (worst)",
                      "sets 4/4, precision 0.8+", "held out"], rows, widths=(1.9, 0.8, 0.7, 1.1, 1.05, 1.05, 0.7))]]
    text = (f"**Result**: over these {len(runs)} runs, {combos} of the {total} options chosen play one combo, "
            f"{concatenations} a concatenation of combos and {other} neither.")
    if neuron.ceiling is not None:
        reached, sets = ceiling(neuron.ceiling)
        text += (f" Told the combos and fit on every probe state, the best neuron mask plays all four on {reached} of "
                 f"{sets} sets (`{commands['discovery_ceiling']}`): the bound any neuron-mask discovery works under.")
    placed = []
    for found, label in ((inputs, "input"), (neuron, "neuron")):
        if found.reuse is not None:
            summary = reuse.summaries(found.reuse["runs"], found.reuse["args"]["tasks"], ["discovered", "inputs"])
            placed.append(f"the {label}-mask discoveries' " + " and ".join(
                f"{PLACED[against(s['discovered']['iqm'], s['inputs']['iqm'])]} it on {task} "
                f"({reuse.interval(s['discovered']['iqm'])})" for task, s in summary.items()))
    if placed:
        text += (" Reused as options in A2's protocol, against the IQM AUC of the extracted inputs options, "
                 + "; ".join(placed) + ".")
    text += (" **Caveats**: discovery is not told the combos, but it is told their length: it groups a segment's "
             "occurrences by their position in three-step periods, and recall counts 3-step options. Its parts were "
             f"chosen on these same {len(neuron.sets['runs'])} network sets; no network population it was not "
             "developed on is measured.")
    blocks += [[Figure(answers_figures.discovery_figure(configurations), "Recall (colour) and precision (number) of "
                       "the options chosen on each network set.")], [Paragraph(text)]]
    return blocks


def discovery_cells(row):
    return [f"{row['options']:.1f}", f"{row['precision']:.2f} ({row['worst_precision']:.2f})",
            f"{row['recall']:.2f} ({row['worst_recall']:.2f})", f"{row['all']}/{row['sets']}",
            f"{row['held_out']}/{row['sets']}"]


def family_rows(summary):
    rows = []
    for name, entry in summary.items():
        train, extract, tasks, found = (entry.get(k) or {} for k in ("train", "extract", "reuse", "discover"))
        cells = [f"{s['needed']:.3f} / {s['not_needed']:.3f}" if (s := extract.get(scheme)) else "-"
                 for scheme in SCHEMES]
        random = tasks.get("random")
        rows.append([name, f"{train['optimal']}/{train['networks']}" if train else "-", *cells,
                     f"{random['inputs']['iqm'][0]:.3f} / {random['none']['iqm'][0]:.3f}" if random else "-",
                     f"{found['full_recall']}/{found['sets']}" if found else "-"])
    return rows


def family_study(summary, commands):
    if summary is None:
        return [[Heading("A4. Other games: the ComboGrid family"),
                 Paragraph(f"Not run here: `{commands['variants']}` runs it.")]]
    separated = all(s["separated"] == s["sets"] for e in summary.values() for s in e.get("extract", {}).values())
    return [[Heading("A4. Other games: the ComboGrid family"),
             Paragraph(
                 f"**Method** (`{commands['variants']}`): the studies above on 6x6 and 10x10 grids, four-action combos "
                 "(5x5-combo4), walls (5x5-hallways, 5x5-block) and twelve problems (5x5-12problems). Per game: 10 "
                 "network sets; both schemes with 2 mask seeds on every optimal set; reuse of the first set's options "
                 "(IQM AUC of inputs / none on the random task); discovery with input masks on 2 sets."),
             Table(["game", "optimal networks", "neuron masks: needed / not", "input masks: needed / not",
                    "random task: inputs / none", "discovery 4/4"], family_rows(summary),
                   widths=(1.25, 0.9, 1.3, 1.3, 1.3, 0.85))],
            [Figure(answers_figures.family_figure(summary), "Left: each game's needed and not-needed Masked Score "
                    "(mean over its sets). Right: the random task's IQM AUC [95% CI] with no options, the input-mask "
                    "options and the not-needed control.")],
            [Paragraph(
                 "**Result**: " + ("on every game and every optimal set the needed pairs score above the not-needed "
                                   "ones, with both schemes. " if separated else
                                   "the needed pairs do not score above the not-needed ones on every set. ")
                 + "**Caveats**: the 5x5 row is not A1's or A2's: 2 mask seeds per set instead of 10, a reuse study "
                 "with its own seeds, learning rates and budget, and discovery by an earlier method (each candidate "
                 "fit on its own segment by Adam alone, merged at 90% of the probe states, not consolidated) on 2 "
                 "sets only.")]]


def minigrid_study(record, commands):
    if record is None:
        return [[Heading("A5. MiniGrid"), Paragraph(f"Not run here: `{commands['minigrid']}` runs it.")]]
    args, runs = record["args"], record["runs"]
    task, conditions = runs[0]["task"], args["conditions"]
    stats = reuse.summaries(runs, [task], conditions)[task]
    rows = []
    for condition in conditions:
        per_set = set_iqms(runs, task, condition)
        rows.append([condition, reuse.interval(stats[condition]["iqm"]),
                     f"{stats[condition]['improvement_over_none'][0]:.2f}", f"{min(per_set):.2f} to {max(per_set):.2f}"])
    spread = set_iqms(runs, task, "discovered")
    where = against(stats["discovered"]["iqm"], stats["fixed-discovered"]["iqm"])
    return [[Heading("A5. MiniGrid: the pipeline on another grid world"),
             Paragraph(
                 f"**Method** (`{commands['minigrid']}`, {record['seconds'] / 60:.0f} minutes): {args['num_sets']} sets "
                 f"of four PPO networks, each trained on one SimpleCrossing layout; discovery chooses options per set; "
                 f"a learner reuses them on {args['target']} ({record['optimal']['target']} steps at the fewest), "
                 f"{args['num_seeds']} seeds per set, learning rates tuned per condition and set on other seeds. "
                 "fixed-discovered plays the discovered options' segments as fixed action sequences; "
                 "random-segments takes as many candidates at random (the control); random-sequences, random "
                 "actions of the same lengths."),
             Table(["options", "IQM AUC [95% CI]", "P(> none)", "IQM AUC of one set"], rows,
                   widths=(1.4, 1.5, 0.8, 1.3), bold=(conditions.index("discovered"),))],
            [Figure(answers_figures.minigrid_figure(record), "Left: mean SPL of the greedy policies on the target, "
                    "95% bands over every set's learners. Right: each network set's IQM AUC.")],
            [Paragraph(
                 f"**Result**: the discovered options' interval {PLACED[where]} that of their segments played as fixed "
                 "sequences" + (": the gain is in which segments are chosen, not in the networks reading the state. "
                                if where != "above" else ": the networks add to their segments. ") +
                 f"**Caveats**: the intervals pool the learners of {args['num_sets']} sets whose own IQMs range from "
                 f"{min(spread):.2f} to {max(spread):.2f} (discovered); target and sources are fixed layouts with one "
                 "start, where one fixed action sequence is the best policy anywhere, so this setting cannot show "
                 "options that react to the state.")]]


REPRODUCED = {
    "The four score tables": ("default",), "Question 1 (10 seeds)": ("seeds",),
    "Question 2 (the remedy)": ("inputs", "inputs_zero"), "A1": ("network_sets", "sets"), "A2": ("downstream",),
    "A3": ("discovery", "discovery_inputs", "discovery_sets", "discovery_inputs_sets", "discovery_ceiling",
           "downstream_discovered", "downstream_discovered_neuron", "discovery_ablations/neuron_no_consolidate",
           "discovery_ablations/inputs_no_consolidate", "discovery_ablations/neuron_previous",
           "discovery_ablations/inputs_previous"),
    "A4": ("variants",), "A5": ("minigrid",)}
"""The results folders behind each table, in the order to run them."""


def reproduce(commands):
    rows = [[what, commands[name]] for what, names in REPRODUCED.items() for name in names]
    return [Heading("A6. How to reproduce"),
            Paragraph("`python report.py` runs every command below whose results/ folder is missing, in this order, "
                      "and rebuilds this PDF from the records; `python report.py --reuse` only rebuilds it. Each "
                      "command alone writes its folder, which the PDF reads:"),
            Table(["table", "command"], rows, widths=(1, 5.2), code=(1,))]
