"""Learners spread over processes: the same weights with any number of them, and clear failures."""

import os
from functools import partial

import numpy as np
import pytest
import torch

from combogrid import DEFAULT_GAME
from decomposition import processes as ppo_processes
import train_ppo
from decomposition.ppo import PPOSettings
from decomposition.processes import TrainingFailed, learners_of, train_in_processes

TINY = PPOSettings(num_envs=4, num_steps=32, total_timesteps=4 * 32 * 3, optimal_checks=0)
PROBLEMS = ["TL-BR", "TR-BL", "BR-TL"]
ENVS = partial(train_ppo.problem_envs, PROBLEMS, TINY.num_envs, DEFAULT_GAME)


def test_every_learner_is_dealt_to_exactly_one_process():
    shares = [learners_of(p, 3, 8) for p in range(3)]
    assert shares == [[0, 3, 6], [1, 4, 7], [2, 5]]


def test_weights_do_not_depend_on_the_number_of_processes():
    torch.set_num_threads(2)
    torch.randn(500, 500) @ torch.randn(500, 500)  # the parent's OpenMP threads exist when it forks
    runs = {}
    for processes in (1, 2, 3):
        seen = []
        runs[processes] = train_in_processes(ENVS, [5, 6, 7], TINY, processes, seen.append)
        assert seen[-1]["finished"] == seen[-1]["learners"] == 3 and seen[-1]["steps"] == 3 * TINY.total_timesteps
    assert torch.get_num_threads() == 2  # the one-process path gives the caller its threads back
    for processes in (2, 3):
        for alone, spread in zip(runs[1], runs[processes]):
            assert alone.seed == spread.seed and alone.steps == spread.steps
            np.testing.assert_array_equal(alone.curve, spread.curve)  # NaN where no episode ended
            assert all(torch.equal(alone.state_dict[k], spread.state_dict[k]) for k in alone.state_dict)


def fail(*args, **kwargs):
    raise RuntimeError("boom")


def die(*args, **kwargs):
    os._exit(3)


@pytest.mark.slow
@pytest.mark.parametrize("train,message", [(fail, "failed: RuntimeError: boom"), (die, "died (exit code 3")])
def test_a_process_that_fails_or_dies_is_reported(monkeypatch, train, message):
    monkeypatch.setattr(ppo_processes.BatchedPPO, "train", train)  # the forked processes inherit it
    with pytest.raises(TrainingFailed, match=message.replace("(", r"\(")):
        train_in_processes(ENVS, [5, 6], TINY, 2)


def test_train_ppo_reports_a_failed_process_in_one_line_and_writes_nothing(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(ppo_processes.BatchedPPO, "train", fail)
    args = train_ppo.Args(problems=("TL-BR", "BL-TR"), save_dir=str(tmp_path / "out"), num_envs=4, num_steps=32,
                          total_timesteps=256)
    with pytest.raises(SystemExit) as stop:
        train_ppo.main(args)
    assert str(stop.value).startswith("error: training process") and "RuntimeError: boom" in str(stop.value)
    assert "\n" not in str(stop.value) and not (tmp_path / "out").exists()
