"""The first part of answers.pdf: the assignment's four tables and its two questions, answered from
the records (decomposition.answers_records), as blocks of decomposition.pdf items."""

import numpy as np

from combogrid import COMBO_NAMES, COMBOS, DEFAULT_GAME, PROBLEMS
from decomposition import answers_figures
from decomposition.answers_analyses import (exceptions, groups, input_kinds, mean_std, most_played_not_needed,
                                            sets_groups, training_data_size)
from decomposition.pdf import Figure, Heading, Paragraph, Part, Table, Tables

SCHEMES = {"seeds": "neuron masks (the assignment's)", "inputs": "neuron and input masks",
           "inputs_zero": "the same, dropped inputs set to 0"}


def blocks(records, commands):
    """The part's blocks, in the assignment's order; commands: {results folder: its command}."""
    runs = records.runs
    return [*score_tables(runs["default"], records.training, commands["default"]),
            *question_1(runs["default"], runs["seeds"], runs["inputs"], commands),
            *question_2(runs, records.sets, commands)]


def score_tables(default, training, command):
    tables = [Table(["Sequence", "Masked Score", "Original Score", "Base Model", "Needs it"],
                    [[combo, f"{default.masked[0, c, a]:.3f}", f"{default.original[c, a]:.3f}", problem,
                      "yes" if DEFAULT_GAME.needed[c, a] else "no"] for a, problem in enumerate(PROBLEMS)],
                    widths=(1.3, 1.2, 1.25, 1.1, 0.85),
                    bold=tuple(a for a in range(len(PROBLEMS)) if DEFAULT_GAME.needed[c, a]))
              for c, combo in enumerate(COMBO_NAMES)]
    states = default.whole.shape[-1]
    networks = training["networks"].values()
    return [[Part("Neural decomposition on ComboGrid: the assignment's answers"),
             Paragraph(
                 f"The base networks are the {len(networks)} PPO networks in models/; {sum(n['optimal'] for n in networks)} "
                 f"of them solve their problem in the fewest steps. The tables are those `{command}` prints: one mask per (combo, network), seed "
                 f"{default.args['seed']}, {default.args['mask_learning_steps']} Adam steps at learning rate "
                 f"{default.args['mask_learning_rate']}. **Masked Score**: the fraction of the "
                 f"{states * 3} actions ({states} test states, every non-goal cell of the four problems, times 3 "
                 "steps of the combo) in which the masked network takes the combo's action; **Original Score**: the "
                 "same for the network unmasked. **Needs it**: the network's problem is solved with the combo (its "
                 "rows in bold)."),
             Tables(tables)]]


def per_combo_rows(seeds):
    """Per combo, then over all: needed and not-needed pairs' Masked Score, whole-combo rate and best loss."""
    rows = []
    for combo, chosen in [*((name, [c]) for c, name in enumerate(COMBO_NAMES)), ("all", slice(None))]:
        needed = DEFAULT_GAME.needed[chosen]
        cells = [f"{values[:, chosen][:, group].mean():.3f}"
                 for values in (seeds.masked, seeds.whole.mean(-1), seeds.best_loss) for group in (needed, ~needed)]
        rows.append([combo, *cells])
    return rows


def question_1(default, seeds, inputs, commands):
    g, d, num_seeds = groups(seeds), groups(default), len(seeds.masked)
    combo, network, rate = most_played_not_needed(seeds)
    text = [Heading("Question 1: the two tests"),
            Paragraph(
                "Each combo s is used by the solutions of two of the four problems, so two networks need s and two "
                "do not. In the tables above the masks score "
                f"{d.score[0][0]:.3f} on the needed pairs and {d.score[1][0]:.3f} on the others, on average (the "
                f"networks unmasked: {default.original[DEFAULT_GAME.needed].mean():.3f} and "
                f"{default.original[~DEFAULT_GAME.needed].mean():.3f}). Since one seed is one draw of the masks, "
                f"`{commands['seeds']}` repeats the run with {num_seeds} seeds. The Masked Score credits single actions, and "
                "a network that takes action 0 everywhere already scores 2/3 on Up (0, 0, 1), so the table adds a "
                "stricter measure: the fraction of test states from which the masked network takes the whole "
                f"combo. Means over the {num_seeds} seeds and the pairs of each group:"),
            Table(["combo", "Masked Score: needed", "not needed", "whole combo: needed", "not needed",
                   "best loss: needed", "not needed"], per_combo_rows(seeds),
                  widths=(0.7, 1.25, 0.95, 1.25, 0.95, 1.15, 0.95), bold=(4,))]
    first = Paragraph(
        "**First test: passed.** Where the network's problem needs s, a mask extracts a function that plays s: "
        f"over {num_seeds} seeds the needed pairs score {mean_std(g.score[0])} (mean ± std over seeds) and take the whole "
        f"combo from {mean_std(g.whole[0])} of the test states, on cells and with goals that their training data "
        "never showed, far more often than the unmasked networks, which follow their own problem's path. "
        f"**Second test: passed on average, not pair by pair.** Where s is not needed, the masks score "
        f"{mean_std(g.score[1])} and take the whole combo from {mean_std(g.whole[1])} of the test states; they "
        f"also fit their own training data much worse (best cross-entropy {mean_std(g.loss[1])} against "
        f"{mean_std(g.loss[0])}). Masking cannot make any network play any combo: a high score for the needed "
        "pairs comes from functions the networks learned as part of their solutions. It is not impossible "
        f"for a network that does not need s, though: {network}'s {combo} masks take the whole combo "
        f"{COMBOS[combo]} from {rate:.2f} of the test states. Its actions are those of its own combos in another "
        "order, and a mask can recombine the pieces a little.")
    return [text, [first, *inversions(default, seeds)],
            [Figure(answers_figures.pair_figure(seeds, inputs),
                    f"Fraction of the {seeds.whole.shape[-1]} test states from which each masked network takes the "
                    f"whole combo, mean and std over {num_seeds} seeds. Blue: the assignment's neuron masks; orange: neuron and input masks "
                    "(question 2). 'needs': the network's problem is solved with the combo.")]]


def inversions(default, seeds):
    """A paragraph per exception to the tests in the default run, with what explains it."""
    found = exceptions(default, seeds)
    if not found:
        return [Paragraph("In the default run every needed pair scores above every not-needed pair of its combo.")]
    lines = []
    for e in found:
        reversed_over_seeds, whole_back = e.seeds_score[0] < e.seeds_score[1], e.whole[0] < e.whole[1]
        lines.append(
            f"{e.combo} on {e.not_needed} (not needed) scores {e.score[0]:.3f}, above {e.combo} on {e.needed} "
            f"(needed, {e.score[1]:.3f}). By the whole combo the order is "
            + ("back: " if whole_back else "the same: ")
            + f"{e.whole[0]:.3f} against {e.whole[1]:.3f}; the {e.not_needed} mask fits its training data far "
            f"worse (best loss {e.loss[0]:.3f} against {e.loss[1]:.3f}), and over {len(seeds.masked)} seeds the mean "
            "scores are "
            f"{e.seeds_score[0]:.3f} and {e.seeds_score[1]:.3f}"
            + (", in the expected order. " if reversed_over_seeds else ". ")
            + ("One seed's mask, scored per action, can land above a needed pair; the stricter measure and the "
               "average over seeds do not." if reversed_over_seeds and whole_back else ""))
    return [Paragraph("**The exceptions in the tables above.** " + " ".join(lines))]


def scheme_rows(runs):
    rows = []
    for name, label in SCHEMES.items():
        run, g = runs[name], groups(runs[name])
        kept = "all" if run.kept is None else f"{np.mean([len(k) for k in run.kept.flat]):.2f}"
        rows.append([label, mean_std(g.score[0]), mean_std(g.score[1]),
                     f"{np.mean(g.whole[0]):.3f} / {np.mean(g.whole[1]):.3f}",
                     f"{np.mean(g.loss[0]):.3f} / {np.mean(g.loss[1]):.3f}", kept])
    return rows


def question_2(runs, study, commands):
    default, inputs, zero = runs["default"], runs["inputs"], runs["inputs_zero"]
    pairs, executions = training_data_size(default)
    agent, buffer, goal = input_kinds(inputs.kept)
    reasons = Paragraph(
        "Even with the optimisation solved exactly, the scheme returns some mask that fits the training data, and "
        "three things let a fitting mask generalise badly. **The data is small and narrow**: each combo's training "
        f"set has {pairs} (state, action) pairs, the combo played {executions} times, on the cells of two solution "
        "paths with two goals. **The mask chooses neurons, not what they read**: every kept neuron still sees the "
        "whole observation, the agent's cell and the goal's cell included. On the training paths those inputs "
        "are fixed or move with the path, so a mask that uses them to produce the combo fits the training "
        "states exactly, while on other cells and with other goals the same inputs can switch the function "
        "off. **Nothing prefers the general mask**: among the masks that fit, the loss has no term for the "
        "simplest one. A combo's actions depend only on the combo buffer (the actions taken since the last "
        "move), so the function to extract reads the buffer and nothing else.")
    remedy = [Heading("The remedy, measured"),
              Paragraph(
                  f"`{commands['inputs']}` learns, with the neuron mask, a keep-or-drop mask over the "
                  f"{inputs.observation_size} inputs, by the same softmax and straight-through estimator, adds "
                  f"{inputs.args['input_penalty']} to the loss per kept input (the smallest function that fits "
                  "wins), and gives a dropped input its mean over the combo's training data, so that the "
                  f"function stops depending on it while the network sees a typical value. Means over "
                  f"{len(inputs.masked)} seeds (std over seeds):"),
              Table(["masks", "Masked Score: needed", "not needed", "whole combo: needed / not",
                     "best loss: needed / not", "inputs kept"], scheme_rows(runs),
                    widths=(2.1, 1.25, 1.15, 1.3, 1.25, 0.75), bold=(1,))]
    g, z = groups(inputs), groups(zero)
    new = sets_groups(study, "inputs")[0][1:]  # set 0 is these networks
    reading = Paragraph(
        f"With input masks the needed pairs score {mean_std(g.score[0])} and play the whole combo from "
        f"{np.mean(g.whole[0]):.3f} of the test states. The masks keep {agent + buffer + goal:.2f} inputs on "
        f"average: {buffer:.2f} buffer entries, {goal:.2f} goal cells and {agent:.2f} agent cells, so the "
        "extracted functions read the buffer, as the combos do. The second test still holds: the not-needed pairs "
        f"score {mean_std(g.score[1])}, and their best loss stays at {np.mean(g.loss[1]):.3f} against "
        f"{np.mean(g.loss[0]):.3f} for the needed pairs. Setting dropped inputs "
        f"to 0 instead (`{commands['inputs_zero']}`) gives {mean_std(z.score[0])} and {mean_std(z.score[1])}: a "
        "network never saw an observation without a goal, so the masks keep goal cells as a bias and fail more "
        f"often where the goal is elsewhere. The penalty of {inputs.args['input_penalty']} was set by hand on "
        f"these four networks, with no recorded search; on the {len(new)} network sets of appendix A1 trained apart "
        f"from them, the needed pairs' mean is {new.min():.3f} or more on every set with the same setting.")
    return [[Heading("Question 2: what the masking scheme misses"), reasons], remedy, [reading]]
