"""variants.py, the family study: its stages' commands, its resumption, and its summary recomputed
from the stages' own records (results/variants, the shipped study)."""

import json
import os
import shutil

import pytest

import discover
import downstream
import main
import train_ppo
import variants
from combogrid import GAMES
from conftest import ROOT
from decomposition import across_sets, family

SHIPPED = os.path.join(ROOT, "results", "variants")
SCRIPTS = {"train_ppo.py": train_ppo.Args, "main.py": main.Args, "downstream.py": downstream.Args,
           "discover.py": discover.Args}


def options_of(command):
    """The fields the command's options set (tyro's --no-FIELD turns a boolean field off)."""
    names = [word[2:].replace("-", "_") for word in command if word.startswith("--")]
    return [name[3:] if name.startswith("no_") else name for name in names]


def test_every_stage_command_uses_options_its_script_has(tmp_path):
    layout = family.Layout(str(tmp_path), GAMES["5x5"])
    os.makedirs(layout.network_sets)
    shutil.copytree(os.path.join(ROOT, "models"), os.path.join(layout.network_sets, "set_0"))
    layout.link_optimal_sets(discovery_sets=1)
    assert [os.path.basename(f) for f in layout.sets(layout.optimal_sets)] == ["set_0"]
    for stage in family.STAGES:
        command = family.command(stage, layout, variants.Args())
        fields = set(SCRIPTS[command[0]].__dataclass_fields__)
        assert set(options_of(command)) <= fields, (stage, set(options_of(command)) - fields)


def test_a_game_without_an_optimal_set_has_nothing_to_study(tmp_path):
    layout = family.Layout(str(tmp_path), GAMES["6x6"])
    layout.link_optimal_sets(discovery_sets=1)
    assert [family.command(stage, layout, variants.Args()) for stage in family.STAGES[1:]] == [None] * 3


def test_the_shipped_summary_is_recomputed_from_the_stages_records():
    with open(os.path.join(SHIPPED, "summary.json")) as file:
        saved = json.load(file)
    assert json.loads(json.dumps(family.summarise(SHIPPED, list(saved)))) == saved
    for name, entry in saved.items():
        if "extract" in entry:  # the extraction's per-set means, read again from sets.json
            data = json.load(open(os.path.join(SHIPPED, name, "extraction", "sets.json")))
            need = across_sets.per_set_means(data, "inputs", "masked_score", True)
            assert entry["extract"]["inputs"]["worst_needed"] == pytest.approx(need.min())


def test_the_docs_show_the_shipped_table():
    with open(os.path.join(SHIPPED, "summary.md")) as file:
        table = file.read().strip()
    assert table == family.table(family.summarise(SHIPPED, list(GAMES)), "github").strip()
    with open(os.path.join(ROOT, "docs", "variants.md")) as file:
        assert table in file.read()


def test_a_study_whose_stages_are_done_runs_none_and_writes_its_summary(tmp_path, capsys):
    with open(os.path.join(SHIPPED, "summary.json")) as file:
        name = next(n for n, entry in json.load(file).items() if all(s in entry for s in family.STAGES))
    shutil.copytree(os.path.join(SHIPPED, name), tmp_path / name, symlinks=True)
    variants.main(variants.Args(games=(name,), save_dir=str(tmp_path)))
    out = capsys.readouterr().out
    assert "[1/" not in out and name in out  # no stage ran; the table names the game
    assert {"summary.json", "summary.md"} <= set(os.listdir(tmp_path))


def test_a_study_folder_holding_another_game_s_records_is_refused(tmp_path):
    shutil.copytree(os.path.join(SHIPPED, "6x6"), tmp_path / "5x5", symlinks=True)  # 6x6's records where 5x5's go
    args = variants.Args(games=("5x5",), save_dir=str(tmp_path))
    with pytest.raises(SystemExit, match="records game 6x6, not this study's 5x5; refused"):
        variants.main(args)
    with pytest.raises(family.StudyError, match="records game 6x6"):
        family.summarise(str(tmp_path), ["5x5"])
