"""report.py builds answers.pdf from results files, with the tables' numbers in its text."""

import dataclasses
import json
import os
import shutil

import pytest

pytest.importorskip("fpdf")
from pypdf import PdfReader  # noqa: E402

from decomposition import across_sets, extraction  # noqa: E402
from decomposition.results import save_results  # noqa: E402
import discover  # noqa: E402
import downstream  # noqa: E402
import main  # noqa: E402
import report  # noqa: E402
import train_ppo  # noqa: E402
from combogrid import DEFAULT_GAME, PROBLEMS, ComboGym  # noqa: E402
from conftest import ROOT  # noqa: E402
from ppo_agent import load_agent  # noqa: E402


@pytest.fixture(scope="module")
def small_results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("results")
    base = main.Args(log_every=0, mask_learning_steps=30,
                     model_paths=tuple(os.path.join(ROOT, p) for p in main.model_paths(main.Args())))
    agents = [load_agent(path, ComboGym(problem=p)) for path, p in zip(base.model_paths, PROBLEMS)]
    runs = {"default": {}, "seeds": {"num_seeds": 10}, "inputs": {"num_seeds": 10, "mask_inputs": True},
            "inputs_zero": {"num_seeds": 10, "mask_inputs": True, "input_fill": "zero"}}
    assert set(runs) == set(report.RUNS)
    for name, options in runs.items():
        options = {**options, "num_seeds": min(options.get("num_seeds", 1), 2)}
        args = dataclasses.replace(base, **options)
        save_results(args, main.learn_masks(args, agents), args.model_paths, str(folder / name))
    settings = dataclasses.asdict(train_ppo.Args())
    training = {"seconds": 1.0, "networks": {p: {"seed": i, "steps": 1000, "optimal": True, "settings": settings}
                                             for i, p in enumerate(PROBLEMS)}}
    (folder / "training.json").write_text(json.dumps(training))
    sets = folder / "network_sets"
    for k in range(2):
        (sets / f"set_{k}").mkdir(parents=True)
        for p in PROBLEMS:
            shutil.copy(os.path.join(ROOT, "models", f"{p}.pt"), sets / f"set_{k}" / f"{p}.pt")
        (sets / f"set_{k}" / "training.json").write_text(json.dumps(training))
    study = across_sets.study(base, str(sets), DEFAULT_GAME)
    across_sets.save(study, str(folder / "sets"))
    downstream.main(downstream.Args(num_seeds=2, learning_rates=(1e-3,), mask_seeds=1, budget=4096, eval_points=2,
                                    save_dir=str(folder / "downstream"), model_paths=base.model_paths))
    for name, options in {"discovery": {}, "discovery_inputs": {"mask_inputs": True}}.items():
        small = discover.Args(**{**options, "mask_seeds": 1}, max_length=3, mask_learning_steps=30, restarts=2,
                              log_every=0, model_paths=base.model_paths)
        discover.main(dataclasses.replace(small, save_dir=str(folder / name)))
        # the sets and the ceiling without the polish, the occurrence sets and consolidation: quicker, and the
        # report reads both kinds
        discover.main(dataclasses.replace(small, sets_dir=str(sets), save_dir=str(folder / f"{name}_sets"),
                                          polish=False, occurrences=False, consolidate=False))
    discover.main(discover.Args(ceiling=True, mask_seeds=1, mask_learning_steps=30, log_every=0, sets_dir=str(sets),
                                polish=False, save_dir=str(folder / "discovery_ceiling")))
    return folder


@pytest.mark.slow
def test_report_builds_and_contains_every_default_score(small_results, tmp_path):
    output = tmp_path / "answers.pdf"
    args = report.Args(results_dir=str(small_results), output=str(output), reuse=True,
                       training_log=str(small_results / "training.json"))
    report.main(args)
    text = "\n".join(page.extract_text() for page in PdfReader(output).pages)
    default = report.load_run(str(small_results / "default"), "python main.py")
    for table in extraction.score_tables(default.masked, default.original, DEFAULT_GAME):
        for line in table.splitlines()[3::2]:
            for cell in line.strip("|").split("|")[1:3]:
                assert cell.strip() in text
    assert "Question 1" in text and "Question 2" in text
    assert "across 2 independently trained network sets" in text and "separated" in text
    assert "Are the extracted functions reusable?" in text and "not-needed" in text
    assert len(PdfReader(output).pages) >= 3
    headings = ["1. The score tables", "2. Question 1: the two tests", "3. Question 1 across",
                "4. Question 2:", "5. Are the extracted functions reusable?",
                "6. Can the functions be found without being told?", "7. Beyond one game",
                "8. The same pipeline on MiniGrid", "9. How the numbers were produced"]
    assert [text.index(h) for h in headings] == sorted(text.index(h) for h in headings)
    assert "SPEC" not in text and "upper bound" not in text
    found = report.load_discovery(args)["discovery"]["run"]
    assert f"precision {found['precision']:.2f}  recall {found['recall']:.2f}" in text
    flat = " ".join(text.split())
    assert "What neuron masks of these networks can do at all" in flat and "of 2 sets" in flat


def summary(iqm, improvement=(0.5, 0.4, 0.6), mean=None):
    return {"mean": mean or iqm, "iqm": iqm, "improvement_over_none": improvement}


def test_reuse_reading_places_each_iqm_interval_against_none():
    stats = {"multi-goal": {"none": summary((0.5, 0.4, 0.6)), "inputs": summary((0.9, 0.85, 0.95), (1.0, 1.0, 1.0)),
                            "combos": summary((0.55, 0.45, 0.65)), "not-needed": summary((0.2, 0.1, 0.3))},
             "random": {"none": summary((0.5, 0.4, 0.6)), "inputs": summary((0.8, 0.7, 0.9)),
                        "combos": summary((0.7, 0.65, 0.75)), "not-needed": summary((0.1, 0.05, 0.15))}}
    reading = report.reuse_reading(stats)
    assert ("inputs 0.900 [0.850, 0.950], interval clear of none's, P(better than none) 1.000 [1.000, 1.000]"
            in reading)
    assert "not-needed 0.200 [0.100, 0.300], interval below none's" in reading
    assert "combos 0.550 [0.450, 0.650], interval overlapping none's" in reading
    assert "on every task (IQM interval clear of none's): inputs." in reading
    assert "on every task (IQM interval below none's): not-needed." in reading
    assert "Different from task to task: combos." in reading
    shares = report.gain_shares(stats)
    assert "On multi-goal the inputs options gain +0.400 mean AUC over none" in shares
    assert "On random the inputs options gain +0.300 mean AUC over none, 150% of the largest gain of another " \
           "condition (combos, +0.200)." in shares


def test_the_reading_explains_a_training_return_that_the_evaluation_does_not_confirm():
    record = {"task": "random", "condition": "whole", "final_training_return": 0.9, "final_success": 0.2,
              "final_looping": 0.8, "final_decisions": 4.0, "final_primitive_steps": 12.0, "final_optimal_steps": 9.0}
    agreeing = {**record, "condition": "none", "final_success": 0.85}
    text = report.disagreements([record, agreeing], ["random"], ["none", "whole"])
    assert ("random, whole: training return 0.90 of the maximum against a greedy success rate of 0.20; 0.80 of the "
            "greedy episodes repeat a decision state") in text
    assert "take 4.0 decisions and 12.0 primitive steps where 9.0 suffice" in text and "none:" not in text


def test_report_refuses_missing_results(tmp_path):
    args = report.Args(results_dir=str(tmp_path), output=str(tmp_path / "a.pdf"), reuse=True)
    with pytest.raises(SystemExit, match="no results.json for run 'default'"):
        report.main(args)
    assert not (tmp_path / "a.pdf").exists()


def test_the_tuning_note_names_the_choices_at_an_end_of_the_grid():
    tuning = {"random": {"none": {"learning_rate": 0.032}, "inputs": {"learning_rate": 0.016}}}
    note = report.tuning_note(tuning, [0.004, 0.016, 0.032])
    assert "random: none 0.032, inputs 0.016." in note
    assert "The grid's largest rate, 0.032, was chosen for random none." in note
    assert "smallest" not in note
