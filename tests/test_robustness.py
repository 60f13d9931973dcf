"""Bad input, round two: numbers that poison training, signals, half-replaced sets, malformed study
files, defaults that would overwrite what the kit ships, the option API and the envs."""

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import gymnasium as gym
import numpy as np
import pytest
import torch

import downstream
import main
import report
import train_ppo
from combogrid import GAMES, ComboGym
from conftest import ROOT
from decomposition import files, options, script
from decomposition.ppo import LearnerResult
from ppo_agent import CheckpointError, load_agent
from test_bad_inputs import MODELS, expect_error, snapshot


@pytest.mark.parametrize("settings,message", [
    ({"gamma": float("nan")}, "--gamma must be between 0 and 1, got nan"),
    ({"gae_lambda": 2.0}, "--gae-lambda must be between 0 and 1, got 2.0"),
    ({"ent_coef": float("nan")}, "--ent-coef must be between 0 and 1000, got nan"),
    ({"ent_coef": -0.1}, "--ent-coef must be between 0 and 1000"),
    ({"max_grad_norm": float("nan")}, "--max-grad-norm must be between 0 and 1e+06, got nan"),
    ({"vf_coef": float("inf")}, "--vf-coef must be between 0 and 1000, got inf"),
    ({"clip_coef": 0.0}, "--clip-coef must be between 0 and 10"),
    ({"num_envs": 200_000, "total_timesteps": 10**9}, "learners would need about"),
    ({"rows": 1}, "--rows must be between 2 and 100"),
])
def test_train_ppo_refuses_numbers_that_would_poison_training(settings, message, tmp_path):
    args = train_ppo.Args(save_dir=str(tmp_path / "out"), **settings)
    expect_error(lambda: train_ppo.main(args), message)
    assert not (tmp_path / "out").exists()


def test_a_checkpoint_whose_logits_overflow_is_refused_before_any_work(tmp_path):
    state = torch.load(MODELS[0], weights_only=True)
    torch.save({name: value * 1e30 for name, value in state.items()}, tmp_path / "huge.pt")
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        load_agent(str(tmp_path / "huge.pt"), ComboGym(5, 5, "TL-BR"))
    args = main.Args(model_paths=(str(tmp_path / "huge.pt"), *MODELS[1:]), mask_learning_steps=5, log_every=0)
    expect_error(lambda: main.main(args), "NaN or infinite")


def test_train_ppo_trains_another_hidden_size(tmp_path):
    args = train_ppo.Args(hidden_size=32, total_timesteps=2048, problems=("TL-BR",), processes=1,
                          save_dir=str(tmp_path), print_every=1e9)
    train_ppo.main(args)
    agent = load_agent(str(tmp_path / "TL-BR.pt"), ComboGym(5, 5, "TL-BR"), hidden_size=32)
    assert agent.actor[0].weight.shape == (32, 59) and agent.critic[0].weight.shape == (64, 59)


def running(marker):
    """Processes whose command line holds marker."""
    found = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split()
    return [pid for pid in found if int(pid) != os.getpid()]


@pytest.mark.slow
def test_sigterm_stops_train_ppo_and_its_workers(tmp_path):
    folder = str(tmp_path / "sigterm_models")
    process = subprocess.Popen([sys.executable, "train_ppo.py", "--save-dir", folder, "--print-every", "0.1"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.readline()  # training has started
    process.stdout.readline()  # a first progress line: the workers are running
    assert len(running(folder)) == 3  # the script and its two workers
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143
    assert stderr.strip().splitlines() == ["error: terminated; no checkpoint or training.json was changed"]
    deadline = time.time() + 10  # the workers end with their parent: wait for that, never longer
    while running(folder) and time.time() < deadline:
        time.sleep(0.05)
    assert running(folder) == [] and not os.path.exists(folder)


def test_sigterm_during_a_write_leaves_the_old_set_and_no_temporary_file(tmp_path):
    (tmp_path / "a.json").write_text("old")
    previous = signal.signal(signal.SIGTERM, script._terminate)

    def terminated(path):
        with open(path, "w") as file:
            file.write("half")
        os.kill(os.getpid(), signal.SIGTERM)

    try:
        with pytest.raises(script.Terminated):
            files.write_file_set(str(tmp_path), {"a.json": files.json_writer("new"), "b.pt": terminated})
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert sorted(os.listdir(tmp_path)) == ["a.json"] and (tmp_path / "a.json").read_text() == "old"


def test_main_refuses_reference_with_the_study_across_sets(tmp_path):
    args = main.Args(reference=True, sets_dir=str(tmp_path), mask_learning_steps=5, log_every=0)
    expect_error(lambda: main.main(args), "does not combine with --mask-inputs or --sets-dir")


@pytest.mark.slow
def test_a_folder_in_the_way_of_one_file_replaces_none_of_the_set(tmp_path):
    folder = tmp_path / "out"
    args = main.Args(mask_learning_steps=5, log_every=0, save_dir=str(folder))
    main.main(args)
    os.remove(folder / "heatmaps_Up.png")
    (folder / "heatmaps_Up.png").mkdir()
    before = snapshot(folder)
    expect_error(lambda: main.main(dataclasses.replace(args, seed=1)), "heatmaps_Up.png")
    assert snapshot(folder) == before  # the six other files are still the first run's


@pytest.mark.slow
def test_downstream_replaces_its_results_and_figure_together(tmp_path):
    folder = tmp_path / "study"
    (folder / "evaluation_curves.png").mkdir(parents=True)
    (folder / "results.json").write_text("{}")
    args = downstream.Args(num_seeds=1, learning_rates=(1e-3,), eval_points=1, mask_seeds=1, budget=2048,
                           tasks=("multi-goal",), conditions=("none",), save_dir=str(folder))
    expect_error(lambda: downstream.main(args), "evaluation_curves.png")
    assert (folder / "results.json").read_text() == "{}"


def test_train_ppo_refuses_a_set_folder_taken_by_a_file_before_training(tmp_path):
    (tmp_path / "set_0").mkdir()
    (tmp_path / "set_0" / "TL-BR.pt").write_bytes(b"old")
    (tmp_path / "set_1").write_text("a file where set_1 would go")
    args = train_ppo.Args(num_sets=2, save_dir=str(tmp_path), total_timesteps=2048)
    expect_error(lambda: train_ppo.main(args), "set_1")
    assert (tmp_path / "set_0" / "TL-BR.pt").read_bytes() == b"old"


def test_a_broken_training_record_in_a_sets_folder_is_one_error(tmp_path):
    (tmp_path / "set_0").mkdir()
    for path in MODELS:
        shutil.copy(path, tmp_path / "set_0")
    (tmp_path / "set_0" / "training.json").write_text("{broken")
    args = main.Args(mask_learning_steps=5, log_every=0, sets_dir=str(tmp_path))
    expect_error(lambda: main.main(args), "training.json is not a training record")


@pytest.fixture
def results_copy(tmp_path):
    """The shipped results/ and training record in a temporary folder, for report.py --reuse."""
    shutil.copytree(os.path.join(ROOT, "results"), tmp_path / "results",
                    ignore=shutil.ignore_patterns("*.pt", "network_sets"))
    shutil.copytree(os.path.join(ROOT, "results", "network_sets"), tmp_path / "results" / "network_sets",
                    ignore=shutil.ignore_patterns("*.pt"))
    return tmp_path


@pytest.mark.slow
def test_report_refuses_an_output_in_a_missing_folder_and_an_empty_training_record(results_copy):
    args = report.Args(results_dir=str(results_copy / "results"), reuse=True)
    expect_error(lambda: report.main(dataclasses.replace(args, output=str(results_copy / "no" / "a.pdf"))),
                 "does not exist")
    (results_copy / "training.json").write_text("{}")
    expect_error(lambda: report.main(dataclasses.replace(args, output=str(results_copy / "a.pdf"),
                                                         training_log=str(results_copy / "training.json"))),
                 "not a training record")
    assert not (results_copy / "a.pdf").exists()


@pytest.mark.slow
def test_report_runs_from_another_folder(results_copy):
    result = subprocess.run([sys.executable, os.path.join(ROOT, "report.py"), "--reuse", "--output", "a.pdf",
                             "--results-dir", "results"], cwd=results_copy, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert (results_copy / "a.pdf").stat().st_size > 10_000


def test_trial_runs_default_to_a_folder_the_kit_does_not_ship():
    shipped = {os.path.realpath(os.path.join(ROOT, name)) for name in ("models", "results", "results/downstream")}
    defaults = [train_ppo.save_dir(train_ppo.Args(game=game)) for game in GAMES]
    for default in (*defaults, downstream.Args().save_dir):
        assert os.path.realpath(os.path.join(ROOT, default)) not in shipped
        assert default.startswith("runs" + os.sep)


@pytest.fixture(scope="module")
def masks_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("masks")
    args = main.Args(mask_learning_steps=10, log_every=0, num_seeds=2, mask_inputs=True, save_dir=str(folder))
    main.main(args)
    return folder / "masks.pt"


@pytest.mark.slow
@pytest.mark.parametrize("damage,message", [
    (lambda m: m.pop("combos"), "'combos' is missing"),
    (lambda m: m.update(neuron_masks=m["neuron_masks"][..., :2, :]), "'neuron_masks' is not a finite tensor"),
    (lambda m: m.update(input_fill=torch.full_like(m["input_fill"], float("nan"))), "'input_fill' is not a finite"),
    (lambda m: m.update(neuron_masks=m["neuron_masks"] * 2), "not one-hot"),
    (lambda m: m.pop("input_fill"), "come together"),
    (lambda m: m.update(hidden_size="64"), "'hidden_size' is missing or not an integer from 2"),
])
def test_a_tampered_masks_file_is_the_loader_s_own_error(masks_file, tmp_path, damage, message):
    masks = torch.load(masks_file, weights_only=True)
    damage(masks)
    torch.save(masks, tmp_path / "masks.pt")
    with pytest.raises(options.MaskFileError, match=message) as error:
        options.load_extracted_function(str(tmp_path / "masks.pt"), "Up", "BR-TL")
    assert str(tmp_path / "masks.pt") in str(error.value)


@pytest.mark.slow
def test_a_numpy_integer_is_a_seed_index(masks_file):
    function = options.load_extracted_function(str(masks_file), "Up", "BR-TL", seed_index=np.int64(1))
    assert function.act(np.zeros(59, dtype=np.float32)) in (0, 1, 2)
    with pytest.raises(options.MaskFileError, match="out of range"):
        options.load_extracted_function(str(masks_file), "Up", "BR-TL", seed_index=True)


@pytest.mark.parametrize("size", [0, 1, -3, 2.5, 1001])
def test_the_game_refuses_a_grid_without_room_for_two_corners(size):
    with pytest.raises(ValueError, match="rows and columns must be integers from 2 to 1000"):
        gym.make("ComboGrid-v0", rows=size)


@pytest.mark.parametrize("task", ["ComboGrid-MultiGoal-v0", "ComboGrid-Random-v0"])
def test_the_task_envs_take_a_start_cell_refuse_other_options_and_a_step_before_reset(task):
    env = gym.make(task).unwrapped
    with pytest.raises(gym.error.ResetNeeded):
        env.step(0)
    observation, _ = env.reset(seed=3, options={"agent": (4, 4)})
    assert observation[:25].argmax() == 24 and observation[34:].argmax() != 24
    with pytest.raises(ValueError, match="the only option"):
        env.reset(options={"goal": (1, 1)})
    with pytest.raises(ValueError, match="not two integers"):
        env.reset(options={"agent": (5, 0)})
    assert len({tuple(env.reset(seed=1)[0]) for _ in range(2)}) == 1  # seeded starts reproduce


def test_a_fifo_or_a_device_is_never_read_as_a_record(tmp_path):
    (tmp_path / "set_0").mkdir()
    for path in MODELS:
        shutil.copy(path, tmp_path / "set_0")
    os.mkfifo(tmp_path / "set_0" / "training.json")
    args = main.Args(mask_learning_steps=5, log_every=0, sets_dir=str(tmp_path))
    expect_error(lambda: main.main(args), "not a regular file")
    os.mkfifo(tmp_path / "masks.pt")
    with pytest.raises(options.MaskFileError, match="not a regular file"):
        options.load_extracted_function(str(tmp_path / "masks.pt"), "Up", "BR-TL")


@pytest.mark.parametrize("optimal", ["false", 1.5, None])
def test_a_training_record_whose_optimal_is_not_a_boolean_is_refused(tmp_path, optimal):
    (tmp_path / "set_0").mkdir()
    for path in MODELS:
        shutil.copy(path, tmp_path / "set_0")
    (tmp_path / "set_0" / "training.json").write_text(json.dumps({"networks": {"TL-BR": {"optimal": optimal}}}))
    args = main.Args(mask_learning_steps=5, log_every=0, sets_dir=str(tmp_path))
    expect_error(lambda: main.main(args), "not a training record")


def test_report_never_replaces_a_device_and_checks_its_folders_first(results_copy):
    args = report.Args(results_dir=str(results_copy / "results"), reuse=True)
    os.mkfifo(results_copy / "fifo")
    expect_error(lambda: report.main(dataclasses.replace(args, output=str(results_copy / "fifo"))),
                 "not a regular file")
    expect_error(lambda: report.main(dataclasses.replace(args, output=str(results_copy / "new") + os.sep)),
                 "is a folder")
    expect_error(lambda: report.main(report.Args(results_dir=os.path.join(ROOT, "README.md"))), "is not a folder")


def test_options_that_sets_dir_would_ignore_are_refused(tmp_path):
    for extra in ({"mask_inputs": True}, {"model_paths": tuple(reversed(MODELS))}):
        args = main.Args(mask_learning_steps=5, log_every=0, sets_dir=str(tmp_path), **extra)
        expect_error(lambda: main.main(args), "drop --mask-inputs and --model-paths")
    expect_error(lambda: downstream.main(downstream.Args(tasks=("random", "random"))), "at most once")


def test_a_save_dir_that_is_a_broken_link_or_empty_is_refused_up_front(tmp_path):
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    for folder in (str(tmp_path / "dangling"), str(tmp_path / "dangling" / "sub"), ""):
        expect_error(lambda: main.main(main.Args(mask_learning_steps=5, log_every=0, save_dir=folder)),
                     "cannot write to --save-dir")


def test_checkpoints_of_complex_or_sparse_tensors_are_refused(tmp_path):
    state = torch.load(MODELS[0], weights_only=True)
    for name, change in (("complex", lambda t: t.to(torch.complex64)), ("sparse", lambda t: t.to_sparse())):
        torch.save({**state, "actor.0.weight": change(state["actor.0.weight"])}, tmp_path / f"{name}.pt")
        with pytest.raises(CheckpointError, match="not a dense tensor of real numbers"):
            load_agent(str(tmp_path / f"{name}.pt"), ComboGym(5, 5, "TL-BR"))


def test_a_run_that_diverges_writes_nothing(tmp_path, monkeypatch):
    def diverged(envs_of, seeds, settings, processes, on_iteration=None, **_):
        state = {k: torch.full_like(v, float("nan")) for k, v in torch.load(MODELS[0], weights_only=True).items()}
        return [LearnerResult(seed, state, 2048, False) for seed in seeds]
    monkeypatch.setattr(train_ppo, "train_in_processes", diverged)
    args = train_ppo.Args(save_dir=str(tmp_path / "out"), total_timesteps=2048)
    expect_error(lambda: train_ppo.main(args), "training diverged")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("settings,message", [
    ({"learning_rate": 1e30}, "--learning-rate must be between 0 and 1"),
    ({"clip_coef": 1e308}, "--clip-coef must be between 0 and 10"),
    ({"total_timesteps": 10**29}, "--total-timesteps must be between"),
    ({"num_minibatches": 2048}, "at least 2 rows per minibatch"),
    ({"num_sets": 10**20}, "learners would need about"),
])
def test_train_ppo_bounds_every_setting(settings, message, tmp_path):
    expect_error(lambda: train_ppo.main(train_ppo.Args(save_dir=str(tmp_path), **settings)), message)


INTERRUPTED_IMPORT = """
import os, runpy, signal, sys
class Interrupt:  # Ctrl-C lands as the script starts importing torch
    def find_spec(self, name, path=None, target=None):
        if name == "torch":
            os.kill(os.getpid(), signal.SIGINT)
sys.meta_path.insert(0, Interrupt())
sys.argv = [sys.argv[1], "--help"]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.parametrize("script", ["main.py", "train_ppo.py", "report.py"])
def test_a_ctrl_c_while_the_libraries_load_is_one_line(script):
    process = subprocess.run([sys.executable, "-c", INTERRUPTED_IMPORT, script], cwd=ROOT, capture_output=True,
                             text=True, timeout=60, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    stderr = process.stderr
    assert process.returncode == 130 and "Traceback" not in stderr
    assert stderr.strip().splitlines() == ["error: interrupted before the run started; nothing was written"]


def test_an_error_message_stays_one_line_whatever_a_path_holds(tmp_path):
    path = str(tmp_path / "new\nline.pt")
    expect_error(lambda: main.main(main.Args(model_paths=(path, *MODELS[1:]), log_every=0)), "new\\nline.pt")
