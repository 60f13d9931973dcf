"""minigrid_study.py end to end on a tiny budget: the networks it saves solve their layouts in
minigrid, its records add up, a rerun on its own networks repeats it, and bad input is one line."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

import minigrid_study
from conftest import ROOT
from decomposition import gridstudy, reuse
from decomposition.gridworld import MiniGridGym, World, parse_layout
from ppo_agent import load_agent

TINY = dict(num_sets=1, num_seeds=2, tuning_seeds=1, learning_rates=(4e-3,), budget=4096, eval_points=2,
            restarts=5, processes=1, mask_learning_steps=300)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("minigrid"))
    minigrid_study.main(minigrid_study.Args(save_dir=folder, **TINY))
    with open(os.path.join(folder, "results.json")) as file:
        return folder, json.load(file)


@pytest.mark.slow
def test_the_saved_networks_solve_their_layouts_in_minigrid(study):
    folder, results = study
    for text in minigrid_study.SOURCES:
        lay = parse_layout(text)
        path = os.path.join(folder, "sets", "set-0", gridstudy.checkpoint_name(lay.name))
        assert set(torch.load(path, weights_only=True)) >= {"actor.0.weight", "critic.0.weight"}
        agent = load_agent(path, MiniGridGym(lay.env_id, lay.seed))
        [solution] = gridstudy.solutions([agent], World([lay]))
        assert len(solution) == lay.optimal == len(results["sets"][0]["discovery"]["solutions"][lay.name])


def test_the_records_add_up(study):
    folder, results = study
    runs = results["runs"]
    assert sorted({r["condition"] for r in runs}) == sorted(gridstudy.CONDITIONS)
    assert all(len([r for r in runs if r["condition"] == c]) == 2 for c in gridstudy.CONDITIONS)
    for r in runs:
        assert r["auc"] == pytest.approx(np.mean(r["eval_spl"])) and r["final_spl"] == r["eval_spl"][-1]
        assert 0 <= r["final_spl"] <= r["final_success"] <= 1 and r["task"] == "FourRooms-v0:35"
    found = results["sets"][0]["discovery"]
    assert found["levin_loss"] < found["levin_loss_without"] and found["options"]
    solutions = found["solutions"]
    for option in found["options"]:   # each option's segment is the part of its solution it was fit on
        actions = solutions[option["source"]][option["start"]:option["start"] + option["length"]]
        assert gridstudy.played(actions) == option["segment"] and option["network"] != option["source"]
    lengths = [o["length"] for o in found["options"]]
    assert [o["length"] for o in results["sets"][0]["option_sources"]["random-segments"]] == lengths
    assert {"evaluation_curves.png", "options.png", "results.json", "sets"} <= set(os.listdir(folder))


@pytest.mark.slow
def test_a_rerun_on_its_own_networks_repeats_it(study, tmp_path):
    folder, results = study
    minigrid_study.main(minigrid_study.Args(save_dir=str(tmp_path), networks_dir=os.path.join(folder, "sets"), **TINY))
    with open(tmp_path / "results.json") as file:
        again = json.load(file)
    assert again["sets"][0]["discovery"] == results["sets"][0]["discovery"]
    assert [r["eval_spl"] for r in again["runs"]] == [r["eval_spl"] for r in results["runs"]]


@pytest.mark.parametrize("options, message", [
    ({"target": "MiniGrid-Nowhere-v0:0"}, "unknown MiniGrid environment 'MiniGrid-Nowhere-v0'"),
    ({"sources": ("MiniGrid-Empty-5x5-v0:0",) * 2}, "--sources must name at least two"),
    ({"sources": ("MiniGrid-SimpleCrossingS9N1-v0:0", "MiniGrid-SimpleCrossingS9N1-v0:00")},
     "names layout SimpleCrossingS9N1-v0:0 twice"),
    ({"target": "MiniGrid-FourRooms-v0"}, "is not ENV_ID:SEED"),
    ({"view": 4}, "--view must be odd"),
    ({"view": 11}, "--view"),
    ({"conditions": ("discovered",)}, "none included"),
    ({"max_length": 40}, "--max-length must be between 2 and 13"),
    ({"networks_dir": "/nonexistent"}, "--networks-dir /nonexistent is not a folder"),
    ({"num_sets": 20, "num_seeds": 600}, "--num-sets x --num-seeds must be at most 10000"),
])
def test_bad_input_is_one_error_line(options, message, tmp_path):
    with pytest.raises(SystemExit) as stop:
        minigrid_study.main(minigrid_study.Args(save_dir=str(tmp_path / "out"), **options))
    assert str(stop.value).startswith("error: ") and message in str(stop.value) and "\n" not in str(stop.value)
    assert not os.path.exists(tmp_path / "out")


@pytest.mark.slow
def test_a_checkpoint_of_another_observation_size_is_one_error_line(tmp_path):
    networks = tmp_path / "sets" / "set-0"
    os.makedirs(networks)
    for text in minigrid_study.SOURCES:  # ComboGrid networks: 100 inputs, not 79
        shutil.copy(os.path.join(ROOT, "models", "TL-BR.pt"), networks / gridstudy.checkpoint_name(parse_layout(text).name))
    result = subprocess.run([sys.executable, os.path.join(ROOT, "minigrid_study.py"), "--networks-dir",
                             str(tmp_path / "sets"), "--num-sets", "1", "--save-dir", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "79" in result.stderr and not os.path.exists(tmp_path / "out")


def test_the_report_section_shows_the_study(study, tmp_path):
    pytest.importorskip("fpdf")
    from pypdf import PdfReader

    import report
    from decomposition import answers_appendix
    from decomposition.pdf import Report
    folder, results = study
    pdf = Report()
    for block in answers_appendix.minigrid_study(results, report.commands()):
        pdf.add(*block)
    pdf.save(str(tmp_path / "section.pdf"))
    text = " ".join(page.extract_text() for page in PdfReader(tmp_path / "section.pdf").pages)
    stats = reuse.summaries(results["runs"], ["FourRooms-v0:35"], gridstudy.CONDITIONS)["FourRooms-v0:35"]
    for condition in gridstudy.CONDITIONS:
        assert f"{condition} {reuse.interval(stats[condition]['iqm'])}" in text
    with open(os.path.join(folder, "summary.md")) as file:
        assert file.read().strip() == gridstudy.summary_table(results["runs"], "FourRooms-v0:35",
                                                              gridstudy.CONDITIONS).strip()


def test_the_saved_options_replay_their_segments_in_minigrid(study, tmp_path):
    """options.pt as discover.py writes it: each option, loaded back beside its networks (the folder
    moved elsewhere), plays its segment from the segment's first state in minigrid itself."""
    from decomposition.options import load_discovered_options
    folder, results = study
    shutil.copytree(os.path.join(folder, "sets"), tmp_path / "sets")
    found = load_discovered_options(str(tmp_path / "sets" / "set-0" / "options.pt"))
    discovery = results["sets"][0]["discovery"]
    assert [f.steps for f in found] == [o["length"] for o in discovery["options"]]
    for option, entry in zip(found, discovery["options"]):
        lay = parse_layout(minigrid_study.SOURCES[[parse_layout(t).name for t in minigrid_study.SOURCES].index(
            entry["source"])])
        env = MiniGridGym(lay.env_id, lay.seed)
        env.reset()
        for action in discovery["solutions"][entry["source"]][:entry["start"]]:
            env.step(action)
        assert gridstudy.played(option.run(env).get_actions()) == entry["segment"]


SHIPPED = os.path.join(ROOT, "results", "minigrid")


def test_the_shipped_study_adds_up_and_the_docs_show_its_table():
    with open(os.path.join(SHIPPED, "results.json")) as file:
        results = json.load(file)
    runs, conditions = results["runs"], results["args"]["conditions"]
    assert results["args"]["num_sets"] == len(results["sets"]) and results["seconds"] <= 3600
    for r in runs:
        assert r["auc"] == pytest.approx(np.mean(r["eval_spl"])) and r["final_spl"] == r["eval_spl"][-1]
    seeds = results["args"]["num_sets"] * results["args"]["num_seeds"]
    assert all(sorted(r["seed"] for r in runs if r["condition"] == c) == list(range(seeds)) for c in conditions)
    with open(os.path.join(SHIPPED, "summary.md")) as file:
        table = file.read().strip()
    assert table == gridstudy.summary_table(runs, runs[0]["task"], conditions).strip()
    with open(os.path.join(ROOT, "docs", "minigrid.md")) as file:
        docs = file.read()
    assert table in docs
    for line in gridstudy.options_reading(results["sets"]):
        assert f"- {line}." in docs


def test_the_shipped_networks_solve_their_layouts_and_their_options_replay():
    from decomposition.options import load_discovered_options
    with open(os.path.join(SHIPPED, "results.json")) as file:
        results = json.load(file)
    sources = World([parse_layout(text) for text in results["args"]["sources"]])
    for s, entry in enumerate(results["sets"]):
        folder = os.path.join(SHIPPED, "sets", f"set-{s}")
        agents = [load_agent(os.path.join(folder, gridstudy.checkpoint_name(name)), sources.problem_env(k))
                  for k, name in enumerate(sources.problems)]
        solutions = gridstudy.solutions(agents, sources)   # each optimal, played in minigrid
        assert [t.get_actions() for t in solutions] == list(entry["discovery"]["solutions"].values())
        for option, chosen in zip(load_discovered_options(os.path.join(folder, "options.pt")),
                                  entry["discovery"]["options"]):
            env = sources.problem_env(sources.problems.index(chosen["source"]))
            env.reset()
            for action in entry["discovery"]["solutions"][chosen["source"]][:chosen["start"]]:
                env.step(action)
            assert gridstudy.played(option.run(env).get_actions()) == chosen["segment"]


def test_the_readme_table_is_the_shipped_study():
    with open(os.path.join(SHIPPED, "results.json")) as file:
        results = json.load(file)
    runs = results["runs"]
    stats = reuse.summaries(runs, [runs[0]["task"]], results["args"]["conditions"])[runs[0]["task"]]
    with open(os.path.join(ROOT, "README.md")) as file:
        text = file.read()
    section = text[text.index("**On MiniGrid**"):text.index("**PPO training**")]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    for condition in results["args"]["conditions"]:
        [row] = [r for r in rows if r.startswith(f"| `{condition}`")]
        success = np.mean([r["final_success"] for r in runs if r["condition"] == condition])
        assert reuse.interval(stats[condition]["iqm"]) in row and f"| {success:.3f} |" in row
