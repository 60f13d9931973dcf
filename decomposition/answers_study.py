"""The study behind answers.pdf: every folder of results/ as a stage of one study
(decomposition.study), with the kit command that makes it. report.py runs the stages not complete
yet, then builds the PDF from their records; `report.py --stages NAME ...` runs only those.

A stage's name is its folder under results/; its cost, the seconds it took on a 2-core machine,
orders nothing and only scales the time left.
"""

import os

from decomposition.study import Stage

NUM_SETS = 10
BEFORE = ("--no-occurrences", "--no-polish", "--merge-share", "0.9", "--no-consolidate")
"""The discovery method before occurrence sets, polish, the 75% merge and consolidation."""
UNMERGED = ("--no-merge", "--no-occurrences", "--no-polish", "--no-consolidate")
"""That method without merging (no merge share to give)."""
ABLATIONS = {
    "neuron_no_consolidate": ("--no-consolidate",),
    "neuron_no_polish": ("--no-polish",),
    "neuron_no_occurrences": ("--no-occurrences",),
    "neuron_merge_90": ("--merge-share", "0.9"),
    "neuron_previous": BEFORE,
    "neuron_no_merge": UNMERGED,
    "inputs_no_consolidate": ("--mask-inputs", "--no-consolidate"),
    "inputs_merge_90": ("--mask-inputs", "--merge-share", "0.9"),
    "inputs_previous": ("--mask-inputs", *BEFORE),
    "inputs_keep_composites": ("--mask-inputs", "--keep-composites", *BEFORE),
    "inputs_no_merge": ("--mask-inputs", *UNMERGED),
    "inputs_no_every_start": ("--mask-inputs", "--no-every-start", *BEFORE),
    "inputs_neither": ("--mask-inputs", "--no-every-start", *UNMERGED),
}
"""discover.py's flags of each 10-set ablation (results/discovery_ablations/NAME): a part of the
method turned off, or the method before those parts with one more turned off."""
DEFAULT_PROGRESS = {"neuron_previous", "inputs_previous", "inputs_keep_composites", "inputs_no_every_start"}
"""The ablations run with discover.py's default progress lines (the others with --log-every 0, as
their records say: the lines change no result)."""
EXTRACTIONS = {"default": (), "seeds": ("--num-seeds", "10"), "inputs": ("--num-seeds", "10", "--mask-inputs"),
               "inputs_zero": ("--num-seeds", "10", "--mask-inputs", "--input-fill", "zero")}
"""main.py's runs on the shipped networks (questions 1 and 2)."""
REUSED = {"downstream_discovered": "discovery_inputs", "downstream_discovered_neuron": "discovery"}
"""Per reuse study of discovered options, the discovery run whose options.pt it reuses."""


def stage(results, name, output, words, cost, reads=()):
    """The stage that makes results/NAME with `words` (a kit script and its options, with --save-dir
    results/NAME added); reads: paths under results."""
    folder = os.path.join(results, name)
    return Stage(name, folder, output, (*words, "--save-dir", folder), tuple(os.path.join(results, r) for r in reads),
                 cost)


def stages(results="results"):
    """Every stage, in the order report.py runs them (each after those whose outputs it reads);
    `results` is the results folder as a path relative to the kit."""
    sets = os.path.join(results, "network_sets")
    trained = (f"network_sets/set_{NUM_SETS - 1}/training.json",)
    found = [stage(results, name, "results.json", ["main.py", *flags, "--log-every", "0"], 20)
             for name, flags in EXTRACTIONS.items()]
    found += [stage(results, "network_sets", trained[0].split("/", 1)[1], ["train_ppo.py", "--num-sets", str(NUM_SETS)],
                    30),
              stage(results, "sets", "sets.json", ["main.py", "--sets-dir", sets, "--num-seeds", "10", "--log-every",
                                                   "0"], 300, trained),
              stage(results, "downstream", "results.json", ["downstream.py"], 300)]
    for name, flags in (("discovery", ()), ("discovery_inputs", ("--mask-inputs",)),
                        ("discovery_not_on_source", ("--not-on-source",)),
                        ("discovery_inputs_not_on_source", ("--mask-inputs", "--not-on-source"))):
        found.append(stage(results, name, "discovery.json", ["discover.py", *flags], 75))
    found += [stage(results, "discovery_sets", "sets.json", ["discover.py", "--sets-dir", sets], 500, trained),
              stage(results, "discovery_inputs_sets", "sets.json", ["discover.py", "--mask-inputs", "--sets-dir", sets],
                    500, trained)]
    for name, source in REUSED.items():
        found.append(stage(results, name, "results.json", ["downstream.py", "--conditions", "none", "inputs", "discovered",
                                                           "--discovered", os.path.join(results, source, "options.pt")],
                           390, (f"{source}/options.pt",)))
    found.append(stage(results, "discovery_ceiling", "ceiling.json", ["discover.py", "--ceiling", "--sets-dir", sets],
                       300, trained))
    for name, flags in ABLATIONS.items():
        quiet = () if name in DEFAULT_PROGRESS else ("--log-every", "0")
        found.append(stage(results, f"discovery_ablations/{name}", "sets.json",
                           ["discover.py", *flags, *quiet, "--sets-dir", sets], 500, trained))
    found += [stage(results, "discovery_ablations/ceiling_no_polish", "ceiling.json",
                    ["discover.py", "--ceiling", "--no-polish", "--mask-seeds", "4", "--sets-dir", sets], 600, trained),
              stage(results, "minigrid", "results.json", ["minigrid_study.py"], 1900),
              stage(results, "variants", "summary.json", ["variants.py"], 3600)]
    return found
