"""report.py builds answers.pdf from the records: its numbers, its order and its layout."""

import dataclasses
import json
import os
import shutil

import pytest

pytest.importorskip("fpdf")
from pypdf import PdfReader  # noqa: E402

import matplotlib.text  # noqa: E402
import numpy as np  # noqa: E402

from decomposition import across_sets, answers_study, answers_analyses, answers_appendix, answers_assignment, answers_records  # noqa: E402
from decomposition.pdf import DPI  # noqa: E402
from decomposition.results import save_results  # noqa: E402
import discover  # noqa: E402
import downstream  # noqa: E402
import main  # noqa: E402
import report  # noqa: E402
import train_ppo  # noqa: E402
from combogrid import COMBO_NAMES, DEFAULT_GAME, PROBLEMS, ComboGym  # noqa: E402
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
    assert set(runs) == set(answers_study.EXTRACTIONS)
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
                                    conditions=("none", "inputs", "not-needed"), save_dir=str(folder / "downstream"),
                                    model_paths=base.model_paths))
    one_set = folder / "one_set"  # discovery on one set: the report reads a study of any number
    shutil.copytree(sets / "set_0", one_set / "set_0")
    for name, options in {"discovery": {}, "discovery_inputs": {"mask_inputs": True}}.items():
        small = discover.Args(**{**options, "mask_seeds": 1}, max_length=3, mask_learning_steps=30, restarts=2,
                              log_every=0, model_paths=base.model_paths)
        discover.main(dataclasses.replace(small, save_dir=str(folder / name)))
        # the sets and the ceiling without the polish, the occurrence sets and consolidation: quicker, and the
        # report reads both kinds
        discover.main(dataclasses.replace(small, sets_dir=str(one_set), save_dir=str(folder / f"{name}_sets"),
                                          polish=False, occurrences=False, consolidate=False))
    discover.main(discover.Args(ceiling=True, mask_seeds=1, mask_learning_steps=30, log_every=0, sets_dir=str(one_set),
                                polish=False, save_dir=str(folder / "discovery_ceiling")))
    return folder


LAYOUT = {"pages": 10, "first_part": 4, "smallest_pt": 7, "empty": 0.25}
"""The layout answers.pdf keeps: at most 10 pages, the assignment's answers within the first 4, no text
under 7 pt, no page more than a quarter empty but the last of a part."""


def check_layout(path, default):
    """Every layout rule on the PDF at `path`; default: the main.py run of its four score tables."""
    import pdfplumber
    with pdfplumber.open(path) as pdf:
        pages = pdf.pages
        assert len(pages) <= LAYOUT["pages"]
        texts = [page.extract_text() for page in pages]
        for page in pages:
            for char in page.chars:
                assert 0 <= char["x0"] and char["x1"] <= page.width and 0 <= char["top"] and char["bottom"] <= page.height
                assert char["size"] >= LAYOUT["smallest_pt"] - 0.01, (page.page_number, char["text"], char["size"])
            for image in page.images:  # placed at the size it was drawn: its 7 pt text prints at 7 pt
                assert image["srcsize"][0] / (image["width"] / 72) == pytest.approx(DPI, rel=0.01)
        first = "\n".join(texts[:LAYOUT["first_part"]])
        assert first.count("Sequence") == 4 and first.count("Needs") >= 4
        for c, combo in enumerate(COMBO_NAMES):
            for a, problem in enumerate(PROBLEMS):
                assert f"{combo} {default.masked[0, c, a]:.3f} {default.original[c, a]:.3f} {problem}" in first
        assert "Question 1: the two tests" in first and "Question 2: what the masking scheme misses" in first
        assert "The remedy, measured" in first
        part_ends = [k - 1 for k, text in enumerate(texts) if text.startswith("Appendix")] + [len(pages) - 1]
        for k, page in enumerate(pages):
            if k not in part_ends:
                bottom = max([c["bottom"] for c in page.chars] + [i["bottom"] for i in page.images])
                assert bottom >= (1 - LAYOUT["empty"]) * page.height, f"page {k + 1} is more than a quarter empty"
    words = " ".join(texts)
    for phrase in ("issue", "NOT met", "decomposition.", "(e.g."):
        assert phrase not in words


def test_the_shipped_answers_keep_the_layout():
    check_layout(os.path.join(ROOT, "answers.pdf"), answers_records.load_run(os.path.join(ROOT, "results", "default")))


@pytest.mark.slow
def test_report_builds_from_the_records_and_keeps_the_layout(small_results, tmp_path):
    output = tmp_path / "answers.pdf"
    args = report.Args(results_dir=str(small_results), output=str(output), reuse=True,
                       training_log=str(small_results / "training.json"))
    report.main(args)
    default = answers_records.load_run(str(small_results / "default"))
    check_layout(output, default)
    text = " ".join(" ".join(page.extract_text() for page in PdfReader(output).pages).split())
    records = answers_records.load(str(small_results), str(small_results / "training.json"))
    row = answers_analyses.discovery_row([records.discovery["neuron"].run])
    assert f"neuron masks models/ {row['options']:.1f} {row['precision']:.2f} ({row['worst_precision']:.2f})" in text
    assert "Not run here: python variants.py" in text and "Not run here: python minigrid_study.py" in text
    for figure in [item.figure for block in answers_assignment.blocks(records, report.commands())
                   + answers_appendix.blocks(records, report.commands()) for item in block if hasattr(item, "figure")]:
        sizes = [t.get_fontsize() for t in figure.findobj(matplotlib.text.Text) if t.get_text() and t.get_visible()]
        assert min(sizes) >= LAYOUT["smallest_pt"]


def run_of(masked, whole=None, loss=None):
    """A one-seed Run with the given (C, A) Masked Scores."""
    masked = np.asarray(masked, float)[None]
    whole = np.repeat((masked if whole is None else np.asarray(whole, float)[None])[..., None], 2, -1)
    return answers_records.Run("default", {}, masked, masked[0] / 2, masked if loss is None else np.asarray(loss)[None],
                               whole, None, {}, 59)


def test_the_exceptions_are_the_pairs_whose_order_breaks():
    masked = np.where(DEFAULT_GAME.needed, 0.9, 0.3)
    up, tl_br, bl_tr = COMBO_NAMES.index("Up"), PROBLEMS.index("TL-BR"), PROBLEMS.index("BL-TR")
    assert not DEFAULT_GAME.needed[up, tl_br] and DEFAULT_GAME.needed[up, bl_tr]
    assert answers_analyses.exceptions(run_of(masked), run_of(masked)) == []
    masked[up, tl_br] = 0.95
    found = answers_analyses.exceptions(run_of(masked), run_of(masked))
    assert [(e.combo, e.not_needed, e.needed) for e in found] == [("Up", "TL-BR", "BR-TL"), ("Up", "TL-BR", "BL-TR")]
    assert found[1].score == (0.95, 0.9)
    assert answers_analyses.most_played_not_needed(run_of(masked))[:2] == ("Up", "TL-BR")


def test_intervals_are_placed_against_each_other():
    none, above, overlapping = (0.5, 0.4, 0.6), (0.9, 0.85, 0.95), (0.55, 0.45, 0.65)
    assert answers_analyses.against(above, none) == "above"
    assert answers_analyses.against(none, above) == "below"
    assert answers_analyses.against(overlapping, none) == "overlapping"
    stats = {task: {"none": {"iqm": none}, "inputs": {"iqm": above}, "combos": {"iqm": overlapping if task == "random"
                                                                                 else above}}
             for task in ("multi-goal", "random")}
    found = answers_analyses.positions(stats)
    assert answers_analyses.everywhere(found, "above") == ["inputs"]
    assert found["combos"] == {"multi-goal": "above", "random": "overlapping"}


def test_the_discovery_row_counts_the_sets_that_find_every_combo():
    runs = [{"options": [1, 2, 3, 4], "precision": 1.0, "recall": 1.0, "held_out": {"precision": 1.0, "recall": 1.0}},
            {"options": [1, 2, 3, 4, 5], "precision": 0.6, "recall": 1.0, "held_out": {"precision": 0.8, "recall": 1.0}},
            {"options": [1, 2], "precision": 1.0, "recall": 0.5, "held_out": {"precision": 1.0, "recall": 0.5}}]
    row = answers_analyses.discovery_row(runs)
    assert (row["all"], row["held_out"], row["sets"]) == (1, 2, 3)
    assert row["worst_precision"] == 0.6 and row["worst_recall"] == 0.5 and row["options"] == pytest.approx(11 / 3)


def test_report_refuses_missing_results(tmp_path):
    args = report.Args(results_dir=str(tmp_path), output=str(tmp_path / "a.pdf"), reuse=True)
    with pytest.raises(SystemExit, match="default/results.json: run python report.py without --reuse"):
        report.main(args)
    assert not (tmp_path / "a.pdf").exists()
