"""The study runner: stages in order, complete ones skipped, a manifest beside each output, and a
study stopped anywhere going on from the first stage not complete."""

import json
import os

import pytest

from decomposition.script import ScriptError
from decomposition.study import MANIFEST, Stage, manifest, run_study

WRITE = "import pathlib, sys; folder = pathlib.Path(sys.argv[1]); folder.mkdir(exist_ok=True); " \
        "(folder / 'out.txt').write_text(sys.argv[2])"
FAIL = "import sys; sys.exit('error: it broke')"


def stage(tmp_path, name, code=WRITE, reads=()):
    folder = str(tmp_path / name)
    return Stage(name, folder, "out.txt", ("-c", code, folder, name), reads=reads)


def test_stages_run_in_order_and_a_rerun_runs_none(tmp_path):
    stages = [stage(tmp_path, "a"), stage(tmp_path, "b", reads=(str(tmp_path / "a" / "out.txt"),))]
    lines = []
    assert run_study(stages, "kept", lines.append) == ["a", "b"]
    assert (tmp_path / "b" / "out.txt").read_text() == "b"
    assert lines[0].startswith("[1/2] a\n    python -c") and lines[1].startswith("[2/2] b, ")
    made = manifest(str(tmp_path / "a"))
    assert made["stage"] == "a" and made["command"].startswith("python -c") and made["seconds"] >= 0 and made["kit"]
    assert run_study(stages, "kept", lines.append) == [] and len(lines) == 2


def test_a_failing_stage_stops_the_study_and_a_rerun_goes_on_from_it(tmp_path):
    broken = [stage(tmp_path, "a"), stage(tmp_path, "b", FAIL), stage(tmp_path, "c")]
    with pytest.raises(ScriptError, match="stage b: -c failed \\(error: it broke\\); kept"):
        run_study(broken, "kept", lambda line: None)
    assert (tmp_path / "a" / MANIFEST).exists() and not (tmp_path / "c").exists()
    fixed = [broken[0], stage(tmp_path, "b"), broken[2]]
    assert run_study(fixed, "kept", lambda line: None) == ["b", "c"]
    assert json.loads((tmp_path / "c" / MANIFEST).read_text())["stage"] == "c"


def test_a_stage_whose_input_is_missing_or_that_has_nothing_to_run_is_said(tmp_path):
    missing = stage(tmp_path, "b", reads=(str(tmp_path / "nowhere"),))
    with pytest.raises(ScriptError, match="stage b needs .*nowhere, which no earlier stage made"):
        run_study([missing], "kept", lambda line: None)
    lines = []
    idle = Stage("idle", str(tmp_path / "idle"), "out.txt", lambda: None)
    assert run_study([idle], "kept", lines.append) == [] and lines == ["[1/1] idle: nothing to run (no input for it)"]
    with pytest.raises(ScriptError, match="names stage 'a' twice"):
        run_study([stage(tmp_path, "a"), stage(tmp_path, "a")], "kept", lambda line: None)


def test_every_folder_of_results_is_a_stage_with_its_command():
    """What ships in results/ is made by the answers study: each folder a stage, and where the runner
    made it, its manifest names the stage's command."""
    from conftest import ROOT
    from decomposition import answers_study
    from decomposition.study import command_line
    stages = {stage.name: stage for stage in answers_study.stages()}
    results = os.path.join(ROOT, "results")
    folders = [name for name in os.listdir(results) if name != "discovery_ablations"]
    folders += [f"discovery_ablations/{name}" for name in os.listdir(os.path.join(results, "discovery_ablations"))]
    assert sorted(folders) == sorted(stages)
    for name, stage in stages.items():
        made = manifest(os.path.join(results, name))
        assert made is None or (made["stage"] == name and made["command"] == command_line(stage.command)), name


@pytest.mark.slow
def test_report_runs_a_chosen_stage_once(tmp_path):
    import report
    args = report.Args(results_dir=str(tmp_path), stages=("default",))
    report.main(args)
    assert json.loads((tmp_path / "default" / "results.json").read_text())["args"]["log_every"] == 0
    made = manifest(str(tmp_path / "default"))
    assert made["command"] == f"python main.py --log-every 0 --save-dir {tmp_path / 'default'}"
    before = (tmp_path / "default" / MANIFEST).read_text()
    report.main(args)  # complete: not run again
    assert (tmp_path / "default" / MANIFEST).read_text() == before
