"""main.py --sets-dir: the extraction on many network sets, and its summary across sets."""

import json
import os
import shutil

import numpy as np
import pytest

from decomposition import across_sets
import main
from combogrid import DEFAULT_GAME, NEEDED_COMBOS, PROBLEMS
from conftest import ROOT, quoted


def make_sets(folder, names, optimal=True):
    for name in names:
        (folder / name).mkdir(parents=True)
        for p in PROBLEMS:
            shutil.copy(os.path.join(ROOT, "models", f"{p}.pt"), folder / name / f"{p}.pt")
        record = {"seconds": 1.0, "networks": {p: {"seed": 0, "steps": 1, "optimal": optimal} for p in PROBLEMS}}
        (folder / name / "training.json").write_text(json.dumps(record))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sets")
    make_sets(folder, ["set_10", "set_2"])
    (folder / "notes").mkdir()  # a folder without checkpoints is not a set
    args = main.Args(mask_learning_steps=40, log_every=0, num_seeds=2, sets_dir=str(folder))
    return across_sets.study(args, args.sets_dir, DEFAULT_GAME)


def test_every_set_and_scheme_is_run_in_numeric_order(study):
    assert [os.path.basename(s) for s in study["sets"]] == ["set_2", "set_10"]
    assert len(study["runs"]) == 2 * 2 * 2 * 16  # sets x schemes x seeds x (combo, network)
    assert {r["scheme"] for r in study["runs"]} == {"assignment", "inputs"}


def test_summary_is_recomputed_from_the_records(study):
    text = across_sets.sets_table(study)
    for scheme in ("assignment", "inputs"):
        for needed in (True, False):
            per_set = [np.mean([r["masked_score"] for r in study["runs"] if r["set"] == s and r["scheme"] == scheme
                                and (r["combo"] in NEEDED_COMBOS[r["base_model"]]) == needed])
                       for s in study["sets"]]
            assert f"{np.mean(per_set):.3f} ± {np.std(per_set):.3f}" in text
    assert "separated" in text and "Across 2 network sets, 2 mask seed(s)" in text


def test_same_networks_give_the_same_scores_in_every_set(study):
    by_set = {s: [r["masked_score"] for r in study["runs"] if r["set"] == s] for s in study["sets"]}
    assert by_set[study["sets"][0]] == by_set[study["sets"][1]]  # the two sets hold the same checkpoints


def test_a_set_with_a_network_that_is_not_optimal_is_refused(tmp_path):
    make_sets(tmp_path, ["set_0"])
    make_sets(tmp_path, ["set_1"], optimal=False)
    args = main.Args(mask_learning_steps=5, log_every=0, sets_dir=str(tmp_path))
    with pytest.raises(across_sets.BadSetsFolder, match="set_1/TL-BR.pt"):
        across_sets.study(args, args.sets_dir, DEFAULT_GAME)


@pytest.mark.parametrize("make,message", [
    (lambda path: None, "is not a folder"),
    (lambda path: path.mkdir(), "has no folder with"),
])
def test_bad_sets_folder(tmp_path, make, message):
    make(tmp_path / "sets")
    with pytest.raises(across_sets.BadSetsFolder, match=message):
        across_sets.set_folders(str(tmp_path / "sets"), DEFAULT_GAME)


def test_the_docs_bound_on_neuron_masks_is_the_shipped_study():
    from decomposition.discovery import RECOVERED
    with open(os.path.join(ROOT, "results", "sets", "sets.json")) as file:
        data = json.load(file)
    counts = {}
    for scheme in ("assignment", "inputs"):
        best = across_sets.best_whole_combo(data, scheme)
        counts[scheme] = ({c: sum(b[c] >= RECOVERED for b in best.values()) for c in ("Up", "Down", "Left", "Right")},
                          sum(all(v >= RECOVERED for v in b.values()) for b in best.values()))
    per_combo, full = counts["assignment"]
    assert quoted("docs/discovery.md", "`decomposition.across_sets.best_whole_combo`", *(f"{name} {count}" for name, count in per_combo.items()),
                  f"{full} of 10", f"{counts['inputs'][1]} of 10")
