"""discover.py: the Levin loss's dynamic programme, the selection, the recovery measure, and a
small run whose recovery is recomputed from its saved options by replaying them in the game."""

import itertools
import json
import math
import os

import numpy as np
import pytest
import torch

import discover
from combogrid import DEFAULT_GAME, COMBO_NAMES, COMBOS, PROBLEMS, ComboGym
from conftest import MODELS, ROOT, quoted
from decomposition import candidate_options, combo_discovery, discovery, levin
from decomposition.options import ComboOptions, load_discovered_options
from ppo_agent import program_mask


def table(rows, width):
    """An applicability table from {candidate: positions}."""
    applicable = np.zeros((len(rows), width), dtype=bool)
    for k, positions in rows.items():
        applicable[k, positions] = True
    return applicable


# two solutions of 6 and 4 actions (positions 0-5, then 6-9)
HAND_MADE = dict(
    applicable=table({0: [0, 3, 6], 1: [1, 6, 8], 2: [0, 6]}, 10),
    network=[1, 0, 2],     # option 0 is barred from solution 1, option 1 from solution 0
    length=[3, 2, 4],
    trajectory_lengths=[6, 4])


@pytest.mark.parametrize("chosen,decisions", [
    ([], [6, 4]),
    ([0], [2, 4]),         # twice on solution 0; its position 6 is on its own network's solution
    ([1], [6, 2]),         # barred from solution 0; twice on solution 1
    ([2], [3, 1]),         # 4 actions then 2 primitives; all of solution 1 at once
    ([0, 2], [2, 1]),      # on solution 0 two options of 3 beat the option of 4 taken first
    ([0, 1, 2], [2, 1]),
])
def test_levin_loss_counts_the_least_decisions(chosen, decisions):
    loss = levin.LevinLoss(**HAND_MADE)
    sets = levin.as_sets([chosen], 3)
    assert loss.decisions(sets)[0].tolist() == decisions
    expected = math.log(7) + math.log(5) + sum(decisions) * math.log(len(chosen) + 3)
    assert loss(sets)[0] == pytest.approx(expected)


def test_not_on_source_bars_the_segments_own_solution_too():
    loss = levin.LevinLoss(**HAND_MADE, source=[0, 1, 1])
    assert loss.decisions(levin.as_sets([[0], [2]], 1)).tolist() == [[6, 4], [3, 4]]


def test_levin_loss_bars_every_solution_of_the_options_problem():
    # three solutions: two of problem 0 (3 and 2 actions), one of problem 1 (3 actions)
    loss = levin.LevinLoss(table({0: [0, 3, 5]}, 8), network=[0], length=[2], trajectory_lengths=[3, 2, 3],
                               problem=[0, 0, 1])
    assert loss.decisions(levin.as_sets([[0]], 1)).tolist() == [[3, 2, 2]]
    assert loss.uses().tolist() == [1]


def test_merged_options_apply_wherever_one_of_their_candidates_does():
    # candidate 0 (network 0) applies on solution 1, candidate 1 (network 1) on solution 0: merged,
    # one option shortens both; each candidate alone stays barred from its own network's solution
    loss = levin.LevinLoss(table({0: [0, 4], 1: [0, 4], 2: [2]}, 8), network=[0, 1, 1], length=[3, 3, 2],
                               trajectory_lengths=[4, 4])
    assert loss.decisions(levin.as_sets([[0], [1]], 1)).tolist() == [[4, 2], [2, 4]]
    merged = loss.merged([[0, 1], [2]], length=[3, 2])
    assert merged.decisions(levin.as_sets([[0], [1]], 1)).tolist() == [[2, 2], [3, 4]]


def test_functions_group_candidates_that_play_the_same_sequence():
    sequences = [(0, 0, 1), (0, 1), (0, 0, 1), (0, 0, 1), (2, 1, 0)]
    shares = np.array([0.95, 1.0, 1.0, 0.5, 0.8])         # candidate 3 plays Up too rarely to merge
    groups, representatives = discovery.functions(sequences, shares, uses=np.array([5, 1, 2, 9, 3]))
    assert groups == [[0, 2], [1], [3], [4]]
    assert representatives.tolist() == [2, 1, 3, 4]        # the most consistent of its group


def test_concatenations_of_other_sequences():
    up, left = (0, 0, 1), (2, 1, 0)
    assert discovery.concatenation(up + up, [up]) and discovery.concatenation(up + left + up, [up, left])
    assert not discovery.concatenation(up + (2,), [up, left]) and not discovery.concatenation(up, [up, left])
    assert discovery.concatenation((0, 0, 1, 0), [(0, 0), (1, 0), (0, 0, 1)])       # a split that is not the first


def test_a_chosen_concatenation_of_chosen_options_is_dropped():
    # candidate 0 plays Up, 1 Up twice, 2 Left, 3 Left twice but too rarely to count; 4 Up+Left
    sequences = [(0, 0, 1), (0, 0, 1) * 2, (2, 1, 0), (2, 1, 0) * 2, (0, 0, 1, 2, 1, 0)]
    shares = np.array([1.0, 1.0, 1.0, 0.5, 1.0])
    applicable = np.zeros((5, 12), dtype=bool)            # one solution: Up, Up, Left, Up
    applicable[0, [0, 3, 9]] = applicable[1, 0] = applicable[2, 6] = applicable[4, 3] = True
    loss = levin.LevinLoss(applicable, None, [3, 6, 3, 6, 6], [12], problem=[0])
    chosen, value = discovery.without_composites(loss, [0, 1, 2, 3], sequences, shares, max_options=4, seed=0)
    assert 1 not in chosen and 4 not in chosen and {0, 2} <= set(chosen)      # 4 is barred when the search goes on
    assert value == float(loss(levin.as_sets([chosen], 4))[0])
    assert discovery.without_composites(loss, [0, 2], sequences, shares, 4, 0)[0] == [0, 2]


@pytest.fixture(scope="module")
def shipped_evidence():
    from decomposition import extraction
    settings = extraction.ExtractionSettings(model_paths=MODELS)
    agents = extraction.load_agents(settings)
    return settings, agents, combo_discovery.every_start_evidence(agents, DEFAULT_GAME)


def test_every_start_solutions_replay_to_the_goal(shipped_evidence):
    from decomposition import extraction
    settings, agents, evidence = shipped_evidence
    own = [t.get_actions() for t in extraction.solution_trajectories(agents, settings)]
    for p, problem in enumerate(PROBLEMS):
        assert own[p] in [a for a, q in zip(evidence.actions, evidence.problem) if q == p]
    assert len(evidence.actions) > 4 * 20 and len(evidence.games) == sum(evidence.lengths)
    ends = evidence.games.subset(np.cumsum(evidence.lengths) - 1)     # each solution's last state
    ends.step(np.array([a[-1] for a in evidence.actions]))
    assert ends.at_goal().all()


def test_a_segment_is_learned_on_every_occurrence_of_its_actions(shipped_evidence):
    from decomposition import extraction
    settings, agents, evidence = shipped_evidence
    trajectories = extraction.solution_trajectories(agents, settings)
    cut = candidate_options.segments(trajectories, 3)
    stands_for, observations, actions, weights = candidate_options.training_sets(cut, trajectories, DEFAULT_GAME, evidence)
    assert sorted(x for segments in stands_for for x in segments) == sorted(cut)
    index = {row.tobytes(): k for k, row in enumerate(evidence.games.observations())}
    solutions = np.concatenate(evidence.actions)
    starts = np.concatenate([[0], np.cumsum(evidence.lengths)[:-1]])
    for c, segments in enumerate(stands_for):
        p, start, length = segments[0]
        sequence = trajectories[p].get_actions()[start:start + length]
        assert all(trajectories[q].get_actions()[s:s + n] == sequence and s % 3 == start % 3 for q, s, n in segments)
        pairs = int((weights[c] > 0).sum())
        assert pairs % length == 0 and weights[c, :pairs].sum() == pytest.approx(1.0)
        assert actions[c, :pairs].tolist() == sequence * (pairs // length)
        at = [index[observations[c, k].numpy().tobytes()] for k in range(0, pairs, length)]
        assert len(set(at)) == len(at)                      # each first state once
        for q in at:                                       # the evidence plays the sequence from there
            solution = np.searchsorted(starts, q, side="right") - 1
            assert (q - starts[solution]) % 3 == start % 3
            assert solutions[q:q + length].tolist() == sequence and q + length <= starts[solution] + evidence.lengths[solution]
    # the segment's own first state is its first occurrence: TL-BR's solution from its start is the first solution
    own = next(c for c, s in enumerate(stands_for) if (0, 0, 3) in s)
    assert (observations[own, 0] == torch.from_numpy(evidence.games.observations()[0])).all()


def test_consolidation_makes_a_candidate_play_its_function_from_states_it_was_not_fit_on(shipped_evidence):
    from decomposition.masks import stack_trajectories
    from trajectory import Trajectory
    _, agents, _ = shipped_evidence
    down = COMBOS["Down"]
    probe, held_out = combo_discovery.probe_games(DEFAULT_GAME, 0), combo_discovery.probe_games(DEFAULT_GAME, 1)
    # TL-BR's network unmasked (every neuron active), its training set Down from 10 probe states
    sets = stack_trajectories([Trajectory(*discovery.played_pairs(probe.subset(np.arange(10)), down))])
    candidate = candidate_options.Candidates(np.array([0]), np.array([1]), np.array([0]), np.array([3]),
                                     program_mask(64)[None].clone(), np.zeros(1), training_set=np.array([0]))
    before = candidate_options.behaviours(candidate, agents, held_out)
    discovery.consolidate(candidate, [0], [down], agents, probe, sets)
    after = candidate_options.behaviours(candidate, agents, held_out)
    assert after[0][0] == down and after[1][0] >= 0.9 > before[1][0]


@pytest.mark.parametrize("rounds,consolidated", [
    ([[0], [0, 1], [1]], [[0], [1]]),               # only candidates not consolidated yet; stops when none is left
    ([[0], [1], [2], [3], [4]], [[0], [1], [2]]),   # at most CONSOLIDATION_ROUNDS consolidations
])
def test_consolidation_rounds(monkeypatch, rounds, consolidated):
    from types import SimpleNamespace
    chosen, calls = iter(rounds), []

    def select(candidates, loss, sequences, shares, settings, say):
        groups = [[k] for k in next(chosen)]
        return discovery.Choice(None, None, None, list(range(len(groups))), 0.0, [], [(0, 1)] * len(groups),
                                None, groups)
    monkeypatch.setattr(discovery, "select_functions", select)
    monkeypatch.setattr(discovery, "consolidate", lambda candidates, members, *rest: calls.append(members))
    monkeypatch.setattr(discovery, "behaviours", lambda part, agents, games: ([(0, 1)] * len(part), np.ones(len(part))))
    monkeypatch.setattr(discovery, "applicability", lambda part, agents, evidence: np.ones((len(part), 2), dtype=bool))
    monkeypatch.setattr(discovery, "candidates_loss", lambda candidates, table, evidence, settings: None)
    count = 6
    candidates = candidate_options.Candidates(np.zeros(count, dtype=int), np.zeros(count, dtype=int), np.zeros(count, dtype=int),
                                      np.full(count, 2), torch.zeros(count, 3, 4), np.zeros(count))
    table = np.zeros((count, 2), dtype=bool)
    choice = discovery.consolidated_choice(candidates, table, None, None, None, None, SimpleNamespace(consolidate=True),
                                           lambda line: None)
    assert calls == consolidated and choice.groups == [[k] for k in rounds[len(consolidated)]]
    assert table.any(1).tolist() == [k in sum(consolidated, []) for k in range(count)]   # measured again


def test_levin_loss_once_per_distinct_state_is_the_loss_per_position(shipped_evidence):
    _, _, evidence = shipped_evidence
    solution, lengths = np.concatenate(evidence.actions), np.array(evidence.lengths)
    end = np.repeat(np.cumsum(lengths), lengths)
    sequences = [(0, 0, 1), (0, 1, 2), (2, 1, 0), (1, 0, 2), (1, 0, 2, 1, 0, 2), (0, 0), (2, 1, 0, 0)]
    # an option applies where the solution goes on with its sequence: the same wherever a state repeats
    table = np.array([[j + len(q) <= end[j] and tuple(solution[j:j + len(q)]) == q for j in range(len(solution))]
                      for q in sequences])
    args = (table, [0, 1, 2, 3, 0, 1, 2], [len(q) for q in sequences], lengths)
    per_position = levin.LevinLoss(*args, problem=evidence.problem)
    per_state = levin.LevinLoss(*args, problem=evidence.problem, states=evidence.games.decision_states())
    assert len(per_state.first_nodes) == len(lengths) and per_state.target.shape[1] < len(solution) / 3
    sets = levin.as_sets([[], [0], [0, 1, 2, 3], [4, 5, 6], list(range(7))], 7)
    assert per_state.decisions(sets).tolist() == per_position.decisions(sets).tolist()
    assert per_state.decisions(sets)[2].sum() < per_state.decisions(sets)[0].sum()


def test_rollouts_once_per_distinct_state_are_the_rollouts_from_every_state(shipped_evidence):
    _, agents, evidence = shipped_evidence
    options = candidate_options.Candidates(np.arange(4), np.zeros(4, dtype=int), np.zeros(4, dtype=int), np.array([3, 2, 4, 3]),
                                   program_mask(64).repeat(4, 1, 1), np.zeros(4))   # each network unmasked
    distinct = len(np.unique(evidence.games.decision_states()))
    assert distinct < len(evidence.games) / 2        # the solutions share most of their states
    every_state = candidate_options._rollouts(options, options.actors(agents), evidence.games, 4)
    assert (candidate_options.greedy_rollouts(options, agents, evidence.games) == every_state).all()


def test_probe_states_are_no_test_states_and_their_halves_share_no_goal():
    states = lambda games: {(tuple(a), tuple(g)) for a, g in zip(games.agent_cells, games.goals)}  # noqa: E731
    merge, held_out = combo_discovery.probe_games(DEFAULT_GAME, 0), combo_discovery.probe_games(DEFAULT_GAME, 1)
    assert len(merge) == 24 * 11 and len(held_out) == 24 * 10 and len(combo_discovery.probe_games(DEFAULT_GAME)) == 24 * 21
    assert not {tuple(g) for g in merge.goals} & {tuple(g) for g in held_out.goals}
    assert not states(combo_discovery.test_games(DEFAULT_GAME)) & (states(merge) | states(held_out))


# one solution of 12 actions (and one of 1, the options' own network's): A covers it in three
# pieces, B and C in two halves only together. Greedy takes A and stops; the best set is {B, C}.
SELECTION = dict(applicable=table({0: [0, 4, 8], 1: [0], 2: [6], 3: []}, 13),
                 network=[1, 1, 1, 1], length=[4, 6, 6, 2], trajectory_lengths=[12, 1])


def test_selection_finds_the_best_set_that_greedy_misses():
    loss = levin.LevinLoss(**SELECTION)
    subsets = [list(s) for k in range(3) for s in itertools.combinations(range(4), k)]   # at most 2
    values = loss(levin.as_sets(subsets, 2))
    assert subsets[int(np.argmin(values))] == [1, 2]
    assert levin.select_greedy(loss, 2)[0] == [0]
    assert levin.select_options(loss, 2, restarts=0, seed=0)[0] == [0]   # local search alone stays
    chosen, value = levin.select_options(loss, 2, restarts=20, seed=0)
    assert chosen == [1, 2] and value == pytest.approx(values.min())


def test_selection_keeps_at_most_max_options():
    loss = levin.LevinLoss(**SELECTION)
    assert len(levin.select_options(loss, 1, restarts=20, seed=0)[0]) == 1


def fixed_actions(sequence):
    """A fixed action sequence played from every test state: (N, length), -1 once the goal is reached."""
    return played(lambda step, observations: np.full(len(observations), sequence[step]), len(sequence))


def played(act, steps):
    """act(step, observations) played for `steps` from every test state: (N, steps), -1 once the
    goal is reached."""
    games = combo_discovery.test_games(DEFAULT_GAME)
    actions = np.full((len(games.agent_cells), steps), -1)
    alive = np.ones(len(games.agent_cells), dtype=bool)
    for step in range(steps):
        taken = np.asarray(act(step, games.observations()))
        actions[alive, step] = taken[alive]
        _, terminated, _ = games.step(taken, alive)
        alive &= ~terminated
    return actions


def test_recovery_of_the_true_combos_is_perfect():
    combos = ComboOptions()      # the true combos as the options of the reuse study play them
    measured = [combo_discovery.recovery(played(lambda step, obs: combos.act(np.full(len(obs), k), obs, step), 3), DEFAULT_GAME)
                for k in range(len(combos))]
    assert [m["performs"] for m in measured] == list(COMBO_NAMES)
    assert combo_discovery.precision_recall(measured, DEFAULT_GAME) == (1.0, 1.0, list(COMBO_NAMES))


def test_recovery_of_concatenations_and_of_other_sequences():
    down_right = combo_discovery.recovery(fixed_actions(COMBOS["Down"] + COMBOS["Right"]), DEFAULT_GAME)
    assert down_right["performs"] == "Down+Right" and down_right["best_fraction"] == 1.0
    half = combo_discovery.recovery(fixed_actions((0, 1)), DEFAULT_GAME)            # not a whole combo
    assert half["performs"] is None and half["fractions"] == {}
    precision, recall, recalled = combo_discovery.precision_recall([down_right, half], DEFAULT_GAME)
    assert precision == 0.5 and recall == 0.0 and recalled == []  # Down+Right is no single combo


SMALL = dict(max_length=3, mask_learning_steps=300, restarts=10, log_every=0, model_paths=MODELS)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("discovery")
    discover.main(discover.Args(**SMALL, save_dir=str(folder)))
    with open(folder / "discovery.json") as file:
        return folder, json.load(file)


def replayed(option, width=5):
    """The option's actions from every test state, played through ComboGym: (N, steps), -1 after
    the episode ended."""
    rows = []
    for problem in PROBLEMS:
        for cell in DEFAULT_GAME.non_goal_cells(problem):
            env = ComboGym(width, width, problem)
            env.reset(options={"agent": cell})
            actions = option.run(env).get_actions()
            rows.append(actions + [-1] * (option.steps - len(actions)))
    return np.array(rows)


@pytest.mark.slow
def test_recovery_is_recomputed_by_replaying_the_saved_options(small_run):
    folder, record = small_run
    options = load_discovered_options(str(folder / "options.pt"))
    assert len(options) == len(record["options"]) >= 1
    recalled = set()
    for option, saved in zip(options, record["options"]):
        actions = replayed(option)
        assert option.steps == saved["length"] and actions.tolist() == saved["actions"]
        for name, fraction in saved["fractions"].items():   # the combo sequences, from their names
            sequence = sum((COMBOS[part] for part in name.split("+")), ())
            again = np.mean([all(a in (s, -1) for a, s in zip(row, sequence)) for row in actions])
            assert again == pytest.approx(fraction)
            if name in COMBO_NAMES and again >= 0.9:
                recalled.add(name)
    assert record["recall"] == len(recalled) / 4


@pytest.mark.slow
def test_same_seed_same_selection(small_run, tmp_path):
    _, record = small_run
    discover.main(discover.Args(**SMALL, save_dir=str(tmp_path)))
    with open(tmp_path / "discovery.json") as file:
        again = json.load(file)
    assert {k: v for k, v in again.items() if k not in ("seconds", "args")} == \
        {k: v for k, v in record.items() if k not in ("seconds", "args")}


@pytest.mark.slow
def test_levin_loss_of_the_run_is_lower_with_its_options(small_run):
    _, record = small_run
    assert record["levin_loss"] < record["levin_loss_without"]
    assert record["decisions_without"] == {p: record["evidence"][p]["actions"] for p in PROBLEMS}
    assert all(record["evidence"][p]["actions"] >= len(record["solutions"][p]) for p in PROBLEMS)
    assert all(o["network"] != o["source"] and o["network"] in o["networks"] for o in record["options"])


def expect_error(args, message):
    with pytest.raises(SystemExit) as stopped:
        discover.main(args)
    text = stopped.value.code
    assert isinstance(text, str) and text.startswith("error: ") and "\n" not in text, text
    assert message in text, text


@pytest.mark.slow
@pytest.mark.parametrize("change,message", [
    ({"max_length": 1}, "--max-length must be between 2 and 24"),
    ({"max_options": 0}, "--max-options must be between 1 and 20"),
    ({"restarts": -1}, "--restarts must be"),
    ({"mask_learning_rate": float("nan")}, "--mask-learning-rate must be"),
    ({"mask_seeds": 0}, "--mask-seeds must be"),
    ({"merge_share": 0.2}, "--merge-share must be between 0.5 and 1"),
    ({"model_paths": MODELS[:3]}, "--model-paths needs 4 checkpoints"),
    ({"model_paths": ("missing.pt", *MODELS[1:])}, "checkpoint not found"),
    ({"model_paths": (MODELS[1], MODELS[0], *MODELS[2:])}, "the order of --model-paths looks wrong"),
    ({"save_dir": os.path.join(ROOT, "README.md")}, "cannot write to --save-dir"),
    ({"sets_dir": os.path.join(ROOT, "README.md")}, "is not a folder"),
    ({"max_length": 24, "mask_seeds": 20, "mask_inputs": True}, "would need about"),
])
def test_bad_input_is_one_error_line(change, message):
    expect_error(discover.Args(**{**SMALL, **change}), message)


@pytest.mark.slow
def test_the_discovered_options_are_a_condition_of_the_reuse_study(tmp_path):
    import downstream
    from decomposition import reuse
    shipped = os.path.join(ROOT, "results", "discovery_inputs")
    with open(os.path.join(shipped, "discovery.json")) as file:
        lengths = [option["length"] for option in json.load(file)["options"]]
    options, sources = reuse.discovered_option_set(os.path.join(shipped, "options.pt"), DEFAULT_GAME)
    assert len(options) == len(lengths) and options.lengths.tolist() == lengths
    assert [source["length"] for source in sources] == lengths
    # the record names the kit's file as the kit names it, wherever the kit lies
    assert {source["options_file"] for source in sources} == {"results/discovery_inputs/options.pt"}
    args = downstream.Args(conditions=("none", "discovered"), tasks=("multi-goal",), num_seeds=2, tuning_seeds=1,
                           learning_rates=(0.004,), budget=4096, eval_points=2, mask_seeds=1,
                           save_dir=str(tmp_path))
    downstream.main(args)
    with open(tmp_path / "results.json") as file:
        record = json.load(file)
    runs = record["runs"]
    assert record["args"]["discovered"] == "results/discovery_inputs/options.pt"
    assert sorted({r["condition"] for r in runs}) == ["discovered", "none"]
    assert all(r["auc"] == pytest.approx(np.mean(r["eval_spl"])) for r in runs)


@pytest.mark.slow
def test_input_masks_find_the_four_combos_as_functions_of_several_networks(tmp_path):
    discover.main(discover.Args(**{**SMALL, "mask_learning_steps": 800}, mask_inputs=True, save_dir=str(tmp_path)))
    with open(tmp_path / "discovery.json") as file:
        record = json.load(file)
    assert record["recall"] == 1.0 and record["precision"] >= 0.8
    merged = [o for o in record["options"] if len(o["networks"]) > 1]
    assert merged and all(o["probe_share"] >= record["args"]["merge_share"] for o in merged)


@pytest.mark.slow
def test_ceiling_of_told_masks(tmp_path):
    discover.main(discover.Args(ceiling=True, mask_seeds=1, mask_learning_steps=100, log_every=0, model_paths=MODELS,
                                save_dir=str(tmp_path)))
    with open(tmp_path / "ceiling.json") as file:
        combos = json.load(file)["runs"][0]["combos"]
    assert list(combos) == list(COMBO_NAMES) and all(0 <= value <= 1 for value in combos.values())
    # told each combo and fit on 504 states, then polished, a neuron mask plays it from the test states
    assert min(combos.values()) >= 0.9
    unpolished = tmp_path / "adam"
    discover.main(discover.Args(ceiling=True, polish=False, mask_seeds=1, mask_learning_steps=100, log_every=0,
                                model_paths=MODELS, save_dir=str(unpolished)))
    with open(unpolished / "ceiling.json") as file:
        adam = json.load(file)["runs"][0]["combos"]
    assert min(adam.values()) < 0.9 and all(combos[n] >= adam[n] for n in COMBO_NAMES)   # Adam alone falls short


def shipped_record(name, file="discovery.json"):
    with open(os.path.join(ROOT, "results", name, file)) as handle:
        return json.load(handle)


def readme_discovery_row(run, sets):
    """A row of the README's discovery table, from a shipped run and its sets study."""
    runs = sets["runs"]
    precision, recall = (np.array([r[key] for r in runs]) for key in ("precision", "recall"))
    full = sum(r["recall"] == 1 and r["precision"] >= 0.8 for r in runs)
    return (f"| {run['precision']:.2f} / {run['recall']:.2f} | {precision.mean():.2f} / {precision.min():.2f} | "
            f"{recall.mean():.2f} / {recall.min():.2f} | {full}/{len(runs)} |")


def test_the_docs_tables_are_the_shipped_runs():
    with open(os.path.join(ROOT, "README.md")) as file:
        readme = file.read()
    with open(os.path.join(ROOT, "docs", "discovery.md")) as file:
        docs = file.read()
    for name in ("discovery", "discovery_inputs"):
        run, sets = shipped_record(name), shipped_record(f"{name}_sets", "sets.json")
        assert readme_discovery_row(run, sets) in readme
        recalls = " | ".join(f"{round(r['recall'] * 4)}/4" for r in sets["runs"])
        full = sum(r["recall"] == 1 and r["precision"] >= 0.8 for r in sets["runs"])
        held_out = sum(r["held_out"]["recall"] == 1 and r["held_out"]["precision"] >= 0.8 for r in sets["runs"])
        assert f"| {recalls} |" in docs and f"| {full}/10 | {held_out}/10 |" in docs
        assert quoted(docs, f"`results/{name}/discovery.json`:", f"{run['precision']:.2f}", f"{run['recall']:.2f}")
    ceiling = shipped_record("discovery_ceiling", "ceiling.json")["runs"]
    every = sum(min(r["combos"].values()) >= discovery.RECOVERED for r in ceiling)
    assert quoted(docs, "results/discovery_ceiling`):", f"{every} of 10", window=1600)
    assert quoted(readme, "--ceiling", f"{every} of 10")
    from decomposition import reuse
    study = shipped_record("downstream_discovered", "results.json")
    stats = reuse.summaries(study["runs"], study["args"]["tasks"], study["args"]["conditions"])
    iqm = {(t, c): f"{stats[t][c]['iqm'][0]:.3f}" for t in stats for c in ("inputs", "discovered")}
    assert quoted(readme, "As options", iqm["multi-goal", "discovered"], iqm["random", "discovered"],
                  iqm["multi-goal", "inputs"], iqm["random", "inputs"])
    for task in stats:
        assert all(reuse.interval(stats[task][c]["iqm"]) in docs for c in ("none", "inputs", "discovered"))
    neuron = shipped_record("downstream_discovered_neuron", "results.json")
    stats = reuse.summaries(neuron["runs"], neuron["args"]["tasks"], neuron["args"]["conditions"])
    assert quoted(readme, "As options", *(f"{stats[task]['discovered']['iqm'][0]:.3f}" for task in stats))
    assert all(reuse.interval(stats[task]["discovered"]["iqm"]) in docs for task in stats)
    for name in ("inputs_keep_composites", "inputs_no_merge", "inputs_no_every_start", "inputs_neither"):
        runs = shipped_record(os.path.join("discovery_ablations", name), "sets.json")["runs"]
        recall, precision = (np.array([r[key] for r in runs]) for key in ("recall", "precision"))
        full = sum(r["recall"] == 1 and r["precision"] >= 0.8 for r in runs)
        assert (f"| {recall.mean():.2f} / {recall.min():.2f} | {precision.mean():.2f} / {precision.min():.2f} | "
                f"{full}/10 |") in docs


@pytest.mark.slow
def test_levin_speed_benchmark_compares_the_same_decisions():
    import subprocess
    import sys
    script = os.path.join(ROOT, "benchmarks", "levin_speed.py")
    done = subprocess.run([sys.executable, script, "--sets", "20", "--repetitions", "1"], capture_output=True,
                          text=True, cwd=ROOT)
    assert done.returncode == 0 and "285 distinct states" in done.stdout and "the same decisions: yes" in done.stdout
    bad = subprocess.run([sys.executable, script, "--set-size", "0"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 1 and bad.stderr.strip().splitlines() == ["error: --set-size must be a positive number, got 0"]
