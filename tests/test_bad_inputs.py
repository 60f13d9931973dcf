"""Bad input, tried as a new user would: one `error: ...` line, a non-zero exit, no traceback,
and nothing already written changed. Entry points are called in-process where possible (fast);
a few command lines check the real exit status, Ctrl-C included."""

import dataclasses
import json
import os
import signal
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

import downstream
import main
from decomposition import options
import report
from decomposition import results
from decomposition.script import parse_args
import train_ppo
from combogrid import PROBLEMS, ComboGym
from conftest import MODELS, ROOT
from ppo_agent import PPOAgent


def snapshot(folder):
    """Every file under folder with its bytes, to check that nothing changed."""
    found = {}
    for parent, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(parent, name)
            with open(path, "rb") as file:
                found[os.path.relpath(path, folder)] = file.read()
    return found


def expect_error(call, message):
    """call() must stop with one 'error: ...' line containing message."""
    with pytest.raises(SystemExit) as stopped:
        call()
    text = stopped.value.code
    assert isinstance(text, str) and text.startswith("error: ") and "\n" not in text, text
    assert message in text, text


@pytest.fixture(scope="module")
def bad_checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("checkpoints")
    good = torch.load(MODELS[0], weights_only=True)
    torch.save({**good, "actor.0.weight": good["actor.0.weight"] * float("nan")}, folder / "nan.pt")
    torch.save({**good, "actor.0.bias": [0.0] * 64}, folder / "list.pt")
    torch.save(PPOAgent(ComboGym()), folder / "module.pt")
    torch.manual_seed(0)
    torch.save(PPOAgent(ComboGym()).state_dict(), folder / "untrained.pt")
    (folder / "junk.pt").write_text("not a checkpoint")
    (folder / "empty.pt").write_bytes(b"")
    os.mkfifo(folder / "fifo.pt")
    return folder


@pytest.mark.parametrize("name,message", [
    ("nan.pt", "actor.0.weight holds NaN or infinite weights"),
    ("list.pt", "actor.0.bias is not a dense tensor"),
    ("module.pt", "holds pickled Python objects"),
    ("junk.pt", "not a file written by torch.save"),
    ("empty.pt", "not a file written by torch.save"),
    ("fifo.pt", "is not a regular file"),
    ("untrained.pt", "does not solve TL-BR"),
    ("missing.pt", "checkpoint not found"),
])
def test_main_refuses_bad_checkpoints(bad_checkpoints, name, message):
    args = main.Args(model_paths=(str(bad_checkpoints / name), *MODELS[1:]), mask_learning_steps=5, log_every=0)
    expect_error(lambda: main.main(args), message)


def test_main_names_networks_in_the_wrong_order():
    args = main.Args(model_paths=(MODELS[1], MODELS[0], *MODELS[2:]), mask_learning_steps=5, log_every=0)
    expect_error(lambda: main.main(args), "should solve TL-BR but solves TR-BL instead: the order of --model-paths")


@pytest.mark.parametrize("options_,message", [
    ({"mask_learning_rate": float("nan")}, "must be a positive number, got nan"),
    ({"mask_learning_rate": float("inf")}, "must be a positive number, got inf"),
    ({"mask_learning_rate": 1e300}, "out of range"),
    ({"mask_learning_steps": 0}, "--mask-learning-steps must be a positive number"),
    ({"num_seeds": -3}, "--num-seeds must be a positive number"),
    ({"num_seeds": 5000}, "GB"),
    ({"input_penalty": float("nan")}, "--input-penalty must be between 0 and 10"),
    ({"input_penalty": -1.0}, "--input-penalty must be between 0 and 10"),
    ({"seed": 10**20}, "--seed must be between"),
    ({"hidden_size": 0}, "--hidden-size must be a positive number"),
    ({"game_width": 1000}, "--game-width must be between 2 and 100"),
    ({"model_paths": MODELS[:2]}, "--model-paths needs 4 checkpoints"),
    ({"reference": True, "mask_inputs": True}, "does not combine"),
    ({"save_dir": os.path.join(ROOT, "README.md")}, "exists and is not a folder"),
])
def test_main_refuses_bad_numbers_and_options(options_, message):
    expect_error(lambda: main.main(main.Args(**options_)), message)


@pytest.mark.parametrize("options_,message", [
    ({"problems": ("TL-BR", "TL-BR")}, "at most once"),
    ({"game": "7x7-walls"}, "unknown game '7x7-walls'"),
    ({"problems": ("TL-XX",)}, "unknown problem 'TL-XX'"),
    ({"num_minibatches": 0}, "--num-minibatches must be between 1 and"),
    ({"num_minibatches": 3}, "must divide"),
    ({"total_timesteps": 100}, "must allow one rollout"),
    ({"learning_rate": float("nan")}, "--learning-rate must be between 0 and 1"),
    ({"num_sets": 0}, "--num-sets must be a positive number"),
    ({"num_sets": 1000}, "4000 learners would need about"),
    ({"seed": -5}, "--seed must be between"),
    ({"save_dir": os.path.join(ROOT, "README.md")}, "cannot write to --save-dir"),
])
def test_train_ppo_refuses_bad_settings_before_training(options_, message):
    expect_error(lambda: train_ppo.main(train_ppo.Args(**options_)), message)


@pytest.fixture
def results_folder(tmp_path):
    """A copy of results/ to damage."""
    import shutil
    shutil.copytree(os.path.join(ROOT, "results"), tmp_path / "results",
                    ignore=shutil.ignore_patterns("*.pt", "*.png", "network_sets"))
    return tmp_path / "results"


@pytest.mark.parametrize("damage,message", [
    (lambda f: (f / "seeds" / "results.json").unlink(), "seeds/results.json: run python report.py without --reuse"),
    (lambda f: (f / "seeds" / "results.json").write_text(""), "seeds/results.json: cannot be read"),
    (lambda f: (f / "seeds" / "results.json").write_text((f / "seeds" / "results.json").read_text()[:500]),
     "seeds/results.json: cannot be read"),
    (lambda f: (f / "inputs" / "results.json").write_text('{"runs": 3}'), "inputs/results.json: malformed"),
    (lambda f: (f / "sets" / "sets.json").write_text("[1, 2"), "sets.json: cannot be read"),
    (lambda f: (f / "default" / "results.json").write_text(
        (f / "default" / "results.json").read_text().replace('"masked_score": 0.', '"masked_score": NaN, "x": 0.', 1)),
     "holds NaN or infinite scores"),
])
def test_report_refuses_bad_results_and_keeps_the_pdf(results_folder, tmp_path, damage, message):
    pdf = tmp_path / "answers.pdf"
    pdf.write_bytes(b"old pdf")
    damage(results_folder)
    args = report.Args(results_dir=str(results_folder), output=str(pdf), reuse=True,
                       training_log=os.path.join(ROOT, "models", "training.json"))
    expect_error(lambda: report.main(args), message)
    assert pdf.read_bytes() == b"old pdf" and sorted(os.listdir(tmp_path)) == ["answers.pdf", "results"]


def test_report_refuses_a_folder_as_output(tmp_path):
    expect_error(lambda: report.main(report.Args(output=str(tmp_path), reuse=True)), "is a folder")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", ["ComboGrid-v0", "ComboGrid-MultiGoal-v0", "ComboGrid-Random-v0"])
@pytest.mark.parametrize("action", [3, -1, 1.5, "1"])
def test_envs_refuse_actions_outside_the_space(name, action):
    env = gym.make(name).unwrapped
    env.reset(seed=0)
    with pytest.raises(ValueError, match="invalid action"):
        env.step(action)


@pytest.mark.parametrize("cell", [(5, 0), (-1, 2), (1.5, 2), ("1", 2), (1,), None])
def test_reset_refuses_cells_that_are_not_two_integers_in_the_grid(cell):
    with pytest.raises(ValueError, match="not two integers"):
        ComboGym().reset(options={"agent": cell})


@pytest.fixture(scope="module")
def saved_masks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved")
    args = main.Args(mask_learning_steps=20, log_every=0, num_seeds=2, save_dir=str(folder), model_paths=MODELS)
    results.save_results(args, main.learn_masks(args), main.model_paths(args), args.save_dir)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("arguments,message", [
    (("Jump", "TL-BR"), "unknown combo 'Jump': "),
    (("Up", "XX"), "unknown network 'XX': "),
    (("Up", "TL-BR", 2), "seed index 2 out of range"),
    (("Up", "TL-BR", 0, MODELS[1]), "is not the TL-BR network these masks were learned on"),
])
def test_load_extracted_function_errors(saved_masks, arguments, message):
    with pytest.raises(options.MaskFileError, match=message):
        options.load_extracted_function(str(saved_masks / "masks.pt"), *arguments)


@pytest.mark.slow
def test_load_extracted_function_works_from_any_folder(saved_masks, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # masks.pt stores absolute checkpoint paths
    function = options.load_extracted_function(str(saved_masks / "masks.pt"), "Up", "BR-TL")
    assert function.act(np.zeros(59, dtype=np.float32)) in (0, 1, 2)


def test_a_save_dir_on_a_read_only_file_system_is_refused_up_front(tmp_path, monkeypatch):
    from decomposition import files
    import tempfile

    def read_only(dir):
        raise OSError(30, "Read-only file system")
    monkeypatch.setattr(tempfile, "mkdtemp", read_only)  # what root sees: os.access says yes
    assert "cannot create anything in" in files.unwritable(str(tmp_path / "out"))
    assert "Read-only file system" in files.unwritable(str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_masks_from_another_machine_use_the_kits_own_checkpoints(saved_masks, tmp_path):
    masks = torch.load(saved_masks / "masks.pt", weights_only=True)
    masks["model_paths"] = [f"/elsewhere/models/{problem}.pt" for problem in PROBLEMS]  # as in results/
    torch.save(masks, tmp_path / "masks.pt")
    function = options.load_extracted_function(str(tmp_path / "masks.pt"), "Up", "BR-TL")
    assert function.act(np.zeros(59, dtype=np.float32)) in (0, 1, 2)
    masks["model_fingerprints"][PROBLEMS.index("BR-TL")] = "0" * 64  # learned on some other network
    torch.save(masks, tmp_path / "masks.pt")
    with pytest.raises(options.MaskFileError, match="is not the BR-TL network"):
        options.load_extracted_function(str(tmp_path / "masks.pt"), "Up", "BR-TL")


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_failing_or_interrupted_save_keeps_the_old_set(saved_masks, tmp_path, monkeypatch, failure):
    import shutil
    folder = tmp_path / "out"
    shutil.copytree(saved_masks, folder)
    before = snapshot(folder)
    args = main.Args(mask_learning_steps=5, log_every=0, seed=9, save_dir=str(folder), model_paths=MODELS)
    result = main.learn_masks(args)

    def failing_save(*_, **__):
        raise failure

    monkeypatch.setattr(torch, "save", failing_save)  # masks.pt is written after results.json
    with pytest.raises(type(failure)):
        results.save_results(args, result, main.model_paths(args), args.save_dir)
    assert snapshot(folder) == before


def test_downstream_refuses_bad_arguments():
    expect_error(lambda: downstream.main(downstream.Args(tasks=("maze",))), "unknown task")
    expect_error(lambda: downstream.main(downstream.Args(model_paths=MODELS[:1])), "needs 4")
    expect_error(lambda: downstream.main(downstream.Args(tuning_seeds=10**6)), "GB")
    expect_error(lambda: downstream.main(downstream.Args(save_dir=os.path.join(ROOT, "README.md"))),
                 "exists and is not a folder")
    expect_error(lambda: downstream.main(downstream.Args(budget=float("nan"))), "--budget must be")


@pytest.mark.slow
def test_ctrl_c_keeps_the_save_dir_and_exits_130(saved_masks, tmp_path):
    import shutil
    folder = tmp_path / "out"
    shutil.copytree(saved_masks, folder)
    before = snapshot(folder)
    # a background job's children inherit an ignored SIGINT: give the run the default one back
    process = subprocess.Popen([sys.executable, "main.py", "--num-seeds", "3", "--log-every", "1",
                                "--save-dir", str(folder)], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    process.stdout.readline()  # training has started
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert stderr.strip().splitlines() == ["error: interrupted; --save-dir, if given, keeps its previous files"]
    assert snapshot(folder) == before


def test_command_line_errors_are_one_line_with_a_non_zero_exit(bad_checkpoints):
    result = subprocess.run([sys.executable, "main.py", "--model-paths", str(bad_checkpoints / "nan.pt"),
                             *MODELS[1:]], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ") and "Traceback" not in result.stderr


def test_the_across_sets_study_refuses_an_unfinished_set(tmp_path):
    import shutil
    (tmp_path / "set_0").mkdir()
    for path in MODELS:
        shutil.copy(path, tmp_path / "set_0")
    (tmp_path / "set_0" / "training.json").write_text(json.dumps(
        {"seconds": 1, "networks": {p: {"optimal": p != "BR-TL"} for p in PROBLEMS}}))
    args = dataclasses.replace(main.Args(mask_learning_steps=5, log_every=0), sets_dir=str(tmp_path))
    expect_error(lambda: main.main(args), "set_0/BR-TL.pt")


@pytest.mark.parametrize("script, words", [("train_ppo.py", ["--problems"]),
                                           ("main.py", ["--model-paths", "--num-seeds", "2"]),
                                           ("discover.py", ["--model-paths"])])
def test_a_list_option_given_no_value_is_an_error_not_the_default(script, words, monkeypatch, capsys):
    import importlib
    monkeypatch.setattr(sys, "argv", [script, *words])
    module = importlib.import_module(script.removesuffix(".py"))
    with pytest.raises(SystemExit) as stop:
        parse_args(module.Args)
    assert stop.value.code == f"error: {words[0]} needs at least one value (leave it out for the default)"


@pytest.mark.parametrize("words, message", [
    (["--consolidate", "--no-consolidate"], "--consolidate and --no-consolidate contradict each other: give one"),
    (["--no-merge", "--consolidate"], "--no-merge and --consolidate contradict each other: consolidation works"),
    (["--keep-composites", "--no-merge"], "--no-merge and --keep-composites contradict each other"),
    (["--no-merge", "--merge-share", "0.9"], "--no-merge and --merge-share contradict each other")])
def test_flags_that_contradict_each_other_are_refused(words, message, monkeypatch):
    import discover
    monkeypatch.setattr(sys, "argv", ["discover.py", *words])
    with pytest.raises(SystemExit) as stop:
        parse_args(discover.Args)
    assert stop.value.code.startswith(f"error: {message}")


def test_a_game_takes_lists_or_tuples_and_names_an_argument_of_the_wrong_kind():
    from combogrid import Game, GameError
    listed = Game("x", 5, 5, problems=["TL-BR", "BR-TL"], walls=[[1, 1]], combos=[["Up", [0, 0, 1]], ["Down", [0, 1, 2]],
                                                                                ["Left", [2, 1, 0]], ["Right", [1, 0, 2]]])
    assert listed == Game("x", 5, 5, problems=("TL-BR", "BR-TL"), walls=((1, 1),)) and hash(listed)
    for arguments, message in ((dict(combos="abc"), "combos must be"), (dict(problems="TL-BR"), "problems must be"),
                               (dict(walls=5), "walls must be"), (dict(multi_goal=[1, 2]), "multi_goal must be")):
        with pytest.raises(GameError, match=message):
            Game(**arguments)


@pytest.mark.parametrize("arguments, message", [(("MiniGrid-FourRooms-v0", 0, 4), "view must be an odd integer"),
                                                (("MiniGrid-FourRooms-v0", -1), "seed must be an integer"),
                                                ((3, 0), "env_id must be")])
def test_minigrid_layouts_name_a_bad_argument(arguments, message):
    from decomposition.gridworld import LayoutError, MiniGridGym, parse_layout
    with pytest.raises(LayoutError, match=message):
        MiniGridGym(*arguments)
    with pytest.raises(LayoutError, match="seed must be an integer from 0 to 2\\*\\*63 - 1"):
        parse_layout("MiniGrid-FourRooms-v0:" + "9" * 40)


def test_a_size_given_twice_is_refused_and_a_folder_of_another_game_is_never_rewritten(tmp_path):
    expect_error(lambda: train_ppo.main(train_ppo.Args(game="5x5@6x6", rows=7)), "is a 6x6 grid, and the size")
    expect_error(lambda: main.main(main.Args(game="5x5@6x6", game_width=7)), "give the size once")
    other = os.path.join(ROOT, "results", "variants", "6x6", "network_sets", "set_0")
    before = {name: os.path.getmtime(os.path.join(other, name)) for name in os.listdir(other)}
    expect_error(lambda: train_ppo.main(train_ppo.Args(problems=("TL-BR",), save_dir=other)), "holds networks of game 6x6")
    assert {name: os.path.getmtime(os.path.join(other, name)) for name in os.listdir(other)} == before


def test_a_set_missing_a_network_is_named_not_skipped(tmp_path):
    import shutil
    for k in range(2):
        shutil.copytree(os.path.join(ROOT, "models"), tmp_path / f"set_{k}")
    os.remove(tmp_path / "set_1" / "BR-TL.pt")
    expect_error(lambda: main.main(dataclasses.replace(main.Args(log_every=0), sets_dir=str(tmp_path))),
                 "set_1 lacks BR-TL.pt")
