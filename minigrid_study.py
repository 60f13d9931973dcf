"""Neural decomposition on MiniGrid: options discovered in PPO networks trained on small fixed-seed
layouts, reused on FourRooms.

    python minigrid_study.py                                  # the whole study, into runs/minigrid
    python minigrid_study.py --num-sets 1 --num-seeds 4       # a quick look
    python minigrid_study.py --save-dir results/minigrid      # the shipped study (report.py runs it)

1. Sources: --num-sets independent sets of one PPO network per --sources layout (64 hidden ReLU
   neurons, the kit's checkpoint format), trained as one batched run; each network's greedy episode,
   played in minigrid itself, must reach the goal in the fewest steps.
2. Discovery, per set: the kit's own (decomposition.discovery): a mask per (network, segment of
   another network's solution), the options that minimise the Levin loss of the solutions.
3. Reuse on --target: none (once, on every set's seeds), and per set discovered,
   fixed-discovered, random-segments, random-sequences, whole and neural-augmented
   (decomposition.gridstudy lists them), the learning rate tuned per condition on seeds disjoint
   from the reported ones, greedy evaluation curves (success and SPL).
4. The evaluation AUC (mean SPL over the points) over all sets and seeds: mean and IQM with 95%
   bootstrap intervals, the probability of improvement over none; in --save-dir results.json,
   summary.md (the table), evaluation_curves.png, options.png (what each of the first set's
   options plays on the target grid), and per set its networks and options.pt (sets/set-K/).
"""

if __name__ == "__main__":  # first, so that a Ctrl-C while the libraries load is one line too
    from decomposition.script import stop_quietly_until_started
    stop_quietly_until_started()


import importlib.util
import os
import time
from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import Optional

import torch

from decomposition import gridstudy, reuse
from decomposition.discovery import SelectionSettings, choose_options, options_record
from decomposition.files import json_writer, text_writer, unwritable, write_files
from decomposition.gridworld import LayoutError, World, parse_layout
from decomposition.ppo import PPOSettings
from decomposition.processes import TrainingFailed
from decomposition.script import Range, check, fails_on, start
from decomposition.study import parts_folder, remove_parts, run_parts
from ppo_agent import CheckpointError, load_agent

SOURCES = tuple(f"MiniGrid-SimpleCrossingS9N1-v0:{seed}" for seed in range(4))
STUDY_FILES = ("results.json", "summary.md", "evaluation_curves.png", "options.png")
KEPT = ("--save-dir keeps its previous files, and the (condition, set) runs done so far, from which a rerun with the "
        "same settings goes on")


@dataclass
class Args(SelectionSettings, reuse.LearningSettings):
    """The study; the discovery's options (--max-length, --mask-inputs, ...) are
    decomposition.discovery.SelectionSettings, the reuse learners' (--num-seeds, --budget,
    --learning-rates, ...) decomposition.reuse.LearningSettings."""
    sources: tuple[str, ...] = SOURCES
    """the layouts the networks are trained on, ENV_ID:SEED each (one network per layout and set)"""
    target: str = "MiniGrid-FourRooms-v0:35"
    """the harder layout the options are reused on, ENV_ID:SEED"""
    view: int = 5
    """side of the agent's square view, in cells (odd, 3 to 9)"""
    num_sets: int = 5
    """independent sets of source networks; discovery and reuse run on each"""
    source_budget: int = 300_000
    """most primitive steps per source network"""
    source_attempts: int = 2
    """PPO seeds tried per (set, layout); the first whose greedy policy is optimal is kept"""
    source_learning_rate: float = 2.5e-3
    """the source networks' Adam learning rate"""
    conditions: tuple[str, ...] = gridstudy.CONDITIONS
    """action sets compared on the target (none, discovered, fixed-discovered, random-segments, random-sequences,
    whole, neural-augmented: decomposition.gridstudy)"""
    num_seeds: int = 16
    """reported PPO learners per set and condition (set s: seeds s * N .. s * N + N - 1; none runs once on them all)"""
    tuning_seeds: int = 3
    """learners per learning rate when tuning a (set, condition)'s rate (seeds from 10000 on)"""
    budget: int = 500_000
    """primitive environment steps per reuse learner"""
    learning_rates: tuple[float, ...] = (5e-4, 1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2, 3.2e-2)
    """the reuse learners' learning rates tuned over, per set and condition"""
    networks_dir: Optional[str] = None
    """a folder of sets from an earlier study (set-0/LAYOUT.pt, set-1/...): its networks instead of new ones
    (--num-sets of them); default: train them"""
    save_dir: str = "runs/minigrid"
    """folder of the study (report.py writes the shipped results/minigrid)"""

    RANGES = {**SelectionSettings.RANGES, **reuse.LearningSettings.RANGES,
              "view": Range(3, 9), "num_sets": Range(1, 100), "source_budget": Range(2048, 10**9),
              "source_attempts": Range(1, 10), "source_learning_rate": Range(0, 1, low_open=True)}


def check_args(args):
    """The first fault with the arguments (the layouts read from minigrid), or None; and the
    source and target Worlds."""
    fault = args.fault()
    if fault:
        return fault, None, None
    if args.view % 2 == 0:
        return "--view must be odd (the agent stands in the middle of its view's bottom row)", None, None
    unknown = [c for c in args.conditions if c not in gridstudy.CONDITIONS]
    if unknown or "none" not in args.conditions or len(set(args.conditions)) < len(args.conditions):
        return (f"--conditions must name each of {', '.join(gridstudy.CONDITIONS)} at most once, none "
                f"included{f' (unknown: {unknown[0]!r})' if unknown else ''}"), None, None
    if not args.sources or len(set(args.sources)) < len(args.sources) or len(args.sources) < 2:
        return "--sources must name at least two different layouts", None, None
    try:
        sources = World([parse_layout(text, args.view) for text in args.sources])
        target = World([parse_layout(args.target, args.view)])
    except LayoutError as error:
        return str(error), None, None
    if len(set(sources.problems)) < len(sources.problems):  # the same layout written two ways (seed 0 and 00)
        twice = next(name for name in sources.problems if sources.problems.count(name) > 1)
        return f"--sources names layout {twice} twice", None, None
    fault = args.length_fault(sources)
    if fault:
        return fault, None, None
    if args.num_sets * args.num_seeds > reuse.TUNING_SEEDS_START:
        return f"--num-sets x --num-seeds must be at most {reuse.TUNING_SEEDS_START} (the tuning seeds start there)", None, None
    if args.networks_dir is not None and not os.path.isdir(args.networks_dir):
        return f"--networks-dir {args.networks_dir} is not a folder", None, None
    if unwritable(args.save_dir):
        return f"cannot write to --save-dir {args.save_dir}: {unwritable(args.save_dir)}", None, None
    return None, sources, target


def source_networks(args, sources, env):
    """Per set, the PPOAgent of each source layout (trained, or read from --networks-dir), and
    how each came about."""
    if args.networks_dir is None:
        sets = train_sources(args, sources)
        agents = [[gridstudy.agent_of(r.state_dict, env, args.hidden_size) for r in networks] for networks in sets]
        return agents, [[{"layout": name, "seed": r.seed, "steps": r.steps} for name, r in zip(sources.problems, networks)]
                        for networks in sets]
    paths = [[os.path.join(args.networks_dir, f"set-{s}", gridstudy.checkpoint_name(name)) for name in sources.problems]
             for s in range(args.num_sets)]
    agents = [[load_agent(path, env, args.hidden_size) for path in row] for row in paths]
    return agents, [[{"layout": name, "checkpoint": os.path.abspath(path)} for name, path in zip(sources.problems, row)]
                    for row in paths]


def train_sources(args, sources):
    ppo = PPOSettings(total_timesteps=args.source_budget, learning_rate=args.source_learning_rate)
    learners = args.num_sets * len(sources.problems) * args.source_attempts
    print(f"training {learners} source networks ({args.num_sets} sets x {len(sources.problems)} layouts x "
          f"{args.source_attempts} attempts), at most {args.source_budget:,} steps each", flush=True)
    progress = reuse.Progress(learners * args.source_budget)
    return gridstudy.train_sources(sources, args.num_sets, args.source_attempts, ppo, args.seed, args.processes,
                                   progress.run("sources", learners, args.source_budget))


def discover(args, agents, sources, s):
    """Set s's solutions and choose_options on them; the choice and its record."""
    solutions = gridstudy.solutions(agents, sources)
    say = lambda line: print(f"  set {s}: {line.strip()}", flush=True)  # noqa: E731
    choice = choose_options(agents, solutions, args, sources, say if s == 0 else lambda line: None)
    chosen = choice.candidates.subset(choice.chosen)
    actions = [solution.get_actions() for solution in solutions]
    loss_without, decisions_without, decisions_with = choice.compression()
    record = {"solutions": dict(zip(sources.problems, actions)),
              "levin_loss_without": loss_without, "levin_loss": choice.value,
              "decisions_without": decisions_without, "decisions": decisions_with,
              "options": [{"network": sources.problems[chosen.network[k]], "source": sources.problems[chosen.source[k]],
                           "start": int(chosen.start[k]), "length": int(chosen.length[k]),
                           "segment": gridstudy.played(actions[chosen.source[k]][chosen.start[k]:][:chosen.length[k]])}
                          for k in range(len(chosen))]}
    print(f"set {s}: {len(choice.chosen)} options "
          + ", ".join(f"{o['segment']} (network {o['network']})" for o in record["options"])
          + f"; Levin loss {record['levin_loss_without']:.2f} -> {record['levin_loss']:.2f}", flush=True)
    return choice, record


def discover_sets(args, sets, origins_of_networks, sources, target):
    """Discovery on every set: each set's record (with its chosen candidates), its option sets on the
    target, and the figure of the first set's options (a writer)."""
    per_set, options, figure = [], [], None
    for s, agents in enumerate(sets):
        choice, found = discover(args, agents, sources, s)
        set_options, origins = gridstudy.option_sets(agents, choice, list(found["solutions"].values()), target,
                                                     args.seed + s)
        options.append(set_options)
        chosen = choice.candidates.subset(choice.chosen)
        per_set.append({"networks": origins_of_networks[s], "discovery": found, "option_sources": origins,
                        "chosen": chosen})
        if s == 0:
            figure = partial(gridstudy.draw_options, gridstudy.option_actions(chosen, agents, target),
                             chosen.length, [f"option {k}: {o['segment']}" for k, o in enumerate(found["options"])],
                             target.layouts[0])
    return per_set, options, figure


def reuse_runs(args, task, options, progress, networks=()):
    """Every condition on the target, the learning rate tuned first: none once, on the reported
    seeds of all sets (set s's are s * N .. s * N + N - 1, N = --num-seeds); each other condition
    per set, with that set's options (options[s]) on that set's seeds. Records tagged with the set.
    Each (condition, set) is a part of the study runner: a stopped study goes on from those done
    (networks: the checkpoints read from --networks-dir, whose bytes the parts are keyed by)."""
    plan = {(condition if condition == "none" else f"{condition}, set {s}"): (condition, s)
            for condition in args.conditions for s in range(1 if condition == "none" else args.num_sets)}
    with parts_folder(args.save_dir, args, networks) as parts:
        found = run_parts(parts, {label: partial(reuse_part, args, task, options[s][condition], condition, s, label,
                                                 progress) for label, (condition, s) in plan.items()}, KEPT,
                          done=lambda label: progress.leave_out(part_steps(args, plan[label][0])))
    runs = [r for part in found.values() for r in part["runs"]]
    return runs, {label: part["tuning"] for label, part in found.items()}


def reuse_part(args, task, options, condition, s, label, progress):
    """One condition of set s (none: of all sets at once): its learning rate tuned, then its seeds."""
    settings = replace(args, num_seeds=args.num_sets * args.num_seeds) if condition == "none" else args
    rate, tuning = reuse.tuned_learning_rate(task, label, options, args, progress, s * args.tuning_seeds)
    found = reuse.run_condition(task, condition, options, rate, settings,
                                progress.run(f"{task}, {label}: reported seeds at {rate:g}", settings.num_seeds,
                                             args.budget), s * args.num_seeds)
    return {"tuning": tuning, "runs": [{**r, "set": r["seed"] // args.num_seeds} for r in found]}


def part_steps(args, condition):
    """Primitive steps of one part of reuse_runs: its tuning and its reported seeds."""
    tuning_learners = 0 if len(args.learning_rates) == 1 else args.tuning_seeds * len(args.learning_rates)
    seeds = args.num_sets * args.num_seeds if condition == "none" else args.num_seeds
    return (tuning_learners + seeds) * args.budget


def planned_steps(args):
    """Primitive steps of every part of reuse_runs."""
    return sum(part_steps(args, c) * (1 if c == "none" else args.num_sets) for c in args.conditions)


def save(args, sources, target, record, runs, figure_of_options):
    """The study's files into --save-dir as one set: results.json, the figures and the networks."""
    task = str(gridstudy.GridTask(target))
    networks_of_sets = record.pop("state_dicts")
    chosen_of_sets = [entry.pop("chosen") for entry in record["sets"]]
    writers = {"results.json": json_writer({**record, "summary": reuse.summaries(runs, [task], args.conditions),
                                            "runs": runs}),
               "summary.md": text_writer(gridstudy.summary_table(runs, task, args.conditions) + "\n")}
    for s, networks in enumerate(networks_of_sets):
        folder = os.path.join("sets", f"set-{s}")
        paths = [os.path.join(folder, gridstudy.checkpoint_name(name)) for name in sources.problems]
        for path, state_dict in zip(paths, networks):
            writers[path] = partial(torch.save, state_dict)
        options = options_record(chosen_of_sets[s], sources, [os.path.abspath(os.path.join(args.save_dir, p))
                                                             for p in paths], args.hidden_size)
        writers[os.path.join(folder, "options.pt")] = partial(torch.save, options)
    if importlib.util.find_spec("matplotlib"):
        writers["evaluation_curves.png"] = partial(reuse.draw_evaluation_curves, runs, [task], args.conditions)
        writers["options.png"] = figure_of_options
    else:
        print("figures skipped: matplotlib is not installed (pip install -r requirements-dev.pip)")
    for s in range(args.num_sets):
        os.makedirs(os.path.join(args.save_dir, "sets", f"set-{s}"), exist_ok=True)
    write_files({os.path.join(args.save_dir, name): write for name, write in writers.items()},
                [os.path.join(args.save_dir, name) for name in STUDY_FILES])
    remove_parts(args.save_dir)
    files = sorted(n for n in writers if "/" not in n)
    print(f"wrote {', '.join(files)} and, per set, its networks and options.pt to {args.save_dir}")


@fails_on(LayoutError, TrainingFailed, CheckpointError)
def main(args):
    fault, sources, target = check_args(args)
    check(fault)
    torch.set_num_threads(args.processes)
    started = time.time()
    task = gridstudy.GridTask(target)
    print(f"sources {', '.join(sources.problems)} (fewest steps {sources.optimal.tolist()}); target {task} "
          f"(fewest steps {target.optimal[0]}); view {args.view} x {args.view}", flush=True)

    env = gridstudy.MiniGridGym(sources.layouts[0].env_id, sources.layouts[0].seed, args.view)
    sets, origins_of_networks = source_networks(args, sources, env)
    source_seconds = time.time() - started
    print(f"{args.num_sets} sets of {len(sources.problems)} networks in {source_seconds:.0f} s", flush=True)
    per_set, options, figure = discover_sets(args, sets, origins_of_networks, sources, target)
    checkpoints = [origin["checkpoint"] for row in origins_of_networks for origin in row if "checkpoint" in origin]
    runs, tuning = reuse_runs(args, task, options, reuse.Progress(planned_steps(args)), checkpoints)
    print(reuse.table(runs, [str(task)], args.conditions, args.budget))
    print(gridstudy.summary_table(runs, str(task), args.conditions, "grid"))
    print("\n".join(gridstudy.options_reading(per_set)))
    record = {"args": asdict(args), "sources": sources.describe(), "target": target.describe(),
              "optimal": {"sources": sources.optimal.tolist(), "target": int(target.optimal[0])},
              "sets": per_set, "tuning": tuning, "source_seconds": source_seconds,
              "seconds": time.time() - started,
              "state_dicts": [[agent.state_dict() for agent in agents] for agents in sets]}
    save(args, sources, target, record, runs, figure)
    print(f"the study took {time.time() - started:.0f} s")


if __name__ == "__main__":
    start(main, Args, KEPT)
