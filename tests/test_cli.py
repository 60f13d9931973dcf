"""Command lines: bad input gives one clear error line and a non-zero exit, never a traceback."""

import json
import os
import subprocess
import sys

import pytest

from conftest import MODELS, ROOT


def run(script, *arguments):
    return subprocess.run([sys.executable, os.path.join(ROOT, script), *arguments],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def run_in_process(module, arguments, monkeypatch, capsys):
    """A script's main on these command-line words, in this process (what a subprocess would print
    on stderr is the exit's message): (exit code or message, stdout)."""
    from decomposition.script import parse_args
    monkeypatch.setattr(sys, "argv", [module.__name__ + ".py", *arguments])
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as stop:
        module.main(parse_args(module.Args))
    return stop.value.code, capsys.readouterr().out


@pytest.mark.parametrize("arguments,message", [
    (["--model-paths", "nowhere.pt", *MODELS[1:]], "checkpoint not found: nowhere.pt"),
    (["--model-paths", *MODELS[:3]], "--model-paths needs 4 checkpoints"),
    (["--model-paths", ROOT, *MODELS[1:]], "is a folder"),
    (["--hidden-size", "32"], "expected (32, 59) for hidden size 32"),
    (["--mask-learning-steps", "0"], "--mask-learning-steps must be a positive number"),
    (["--mask-learning-rate", "-0.1"], "--mask-learning-rate must be a positive number"),
    (["--mask-learning-rate", "nan"], "--mask-learning-rate must be a positive number, got nan"),
    (["--mask-learning-rate", "inf"], "--mask-learning-rate must be a positive number"),
    (["--mask-learning-rate", "1e300"], "--mask-learning-rate 1e+300 is out of range"),
    (["--input-penalty", "nan"], "--input-penalty must be between 0 and 10"),
    (["--seed", "123456789012345678901"], "--seed must be between 0 and 2**63"),
    (["--seed", "-1"], "--seed must be between 0"),
    (["--num-seeds", "0"], "--num-seeds must be a positive number"),
    (["--num-seeds", "1000"], "would need about 4.9 GB"),
    (["--mask-learning-steps", "1000000000"], "would need about"),
    (["--log-every", "-1"], "--log-every must be a number >= 0"),
    (["--sets-dir", os.path.join(ROOT, "main.py")], "--sets-dir"),
    (["--sets-dir", os.path.join(ROOT, "tests")], "has no folder with"),
    (["--sequence-length", "4"], "--sequence-length must be 3"),
    (["--game-width", "1"], "--game-width must be between 2 and 100"),
    (["--save-dir", os.path.join(ROOT, "main.py")], "exists and is not a folder"),
    (["--reference", "--mask-inputs"], "does not combine with --mask-inputs"),
    (["--num-seeds", "abc"], "cannot parse --num-seeds: invalid literal for int() with base 10: 'abc'"),
    (["--input-fill", "nope"], "invalid choice: 'nope' (choose from 'mean', 'zero')"),
])
def test_main_bad_input(arguments, message, monkeypatch, capsys):
    import main
    error, printed = run_in_process(main, arguments, monkeypatch, capsys)
    assert isinstance(error, str) and error.startswith("error: ") and "\n" not in error
    assert message in error and printed == ""


@pytest.mark.slow
def test_main_unreadable_checkpoint(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    result = run("main.py", "--model-paths", str(junk), *MODELS[1:])
    assert result.returncode != 0 and result.stderr.count("\n") == 1
    assert f"cannot read checkpoint {junk}" in result.stderr


@pytest.mark.parametrize("arguments,message", [
    (["--problems", "TL-XX"], "unknown problem 'TL-XX'"),
    (["--total-timesteps", "0"], "--total-timesteps must be between 1 and"),
    (["--problems", "TL-BR", "TL-BR"], "at most once"),
    (["--num-sets", "1.5"], "cannot parse --num-sets"),
])
def test_train_ppo_bad_input(arguments, message, monkeypatch, capsys):
    import train_ppo
    error, _ = run_in_process(train_ppo, arguments, monkeypatch, capsys)
    assert isinstance(error, str) and error.startswith("error: ") and "\n" not in error and message in error


@pytest.mark.slow
def test_train_ppo_writes_a_loadable_checkpoint(tmp_path):
    result = run("train_ppo.py", "--problems", "BL-TR", "--total-timesteps", "4096",
                 "--save-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    sys.path.insert(0, ROOT)
    from combogrid import ComboGym
    from ppo_agent import load_agent
    agent = load_agent(str(tmp_path / "BL-TR.pt"), ComboGym(problem="BL-TR"))
    assert agent.hidden_size == 64
    assert f"NOT optimal (their whole budget spent): {tmp_path}/BL-TR.pt (seed 3, 4,096 steps)" in result.stdout
    record = json.loads((tmp_path / "training.json").read_text())["networks"]["BL-TR"]
    assert (record["seed"], record["steps"], record["optimal"]) == (3, 4096, False)
    assert record["settings"]["num_envs"] == 16


@pytest.mark.parametrize("script,option", [("main", "--seed"), ("train_ppo", "--seed"), ("report", "--output"),
                                           ("downstream", "--budget")])
def test_a_bad_option_is_one_error_line_and_help_is_tyro_s(script, option, monkeypatch, capsys):
    sys.path.insert(0, ROOT)
    from decomposition.script import parse_args
    args_type = __import__(script).Args
    for arguments, message in ((["--no-such-option"], "error: Unrecognized options: --no-such-option"),
                               ([option], f"error: Argument {option}: expected 1 argument")):
        monkeypatch.setattr(sys, "argv", [f"{script}.py", *arguments])
        with pytest.raises(SystemExit) as stop:
            parse_args(args_type)
        assert stop.value.code == message
        assert capsys.readouterr().err == ""  # nothing of tyro's framed message
    monkeypatch.setattr(sys, "argv", [f"{script}.py", "--help"])
    with pytest.raises(SystemExit) as stop:
        parse_args(args_type)
    assert not stop.value.code and f"usage: {script}.py" in capsys.readouterr().out
