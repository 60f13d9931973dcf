"""Beyond the assignment: input masks, seeds, saved results, figures and reusable functions."""

import dataclasses
import json
import os
import sys

import pytest
import torch

import main
from decomposition import extraction
from decomposition import options
from decomposition import results
from combogrid import DEFAULT_GAME, COMBOS, PROBLEMS, ComboGym
from conftest import ROOT
from decomposition.masks import StackedActors


@pytest.fixture(scope="module")
def input_run(agents):
    args = main.Args(mask_learning_steps=300, log_every=0, num_seeds=2, mask_inputs=True)
    return args, main.learn_masks(args, agents)


def test_dropped_inputs_take_the_fill_value(agents):
    actors = StackedActors(agents[:1])
    x, fill = torch.rand(1, 5, 59), torch.rand(1, 59)
    keep = torch.zeros(1, 59)
    keep[0, :10] = 1
    expected = torch.cat([x[..., :10], fill[:, None, 10:].expand(1, 5, 49)], dim=-1) @ actors.w1 + actors.b1
    torch.testing.assert_close(actors.pre_activations(x, keep, fill), expected)
    torch.testing.assert_close(actors.pre_activations(x, torch.ones(1, 59), fill), actors.pre_activations(x))


def test_input_masks_are_learned_and_sparse(input_run):
    _, result = input_run
    assert result.input_masks.shape == (2, 4, 4, 59)
    assert set(result.input_masks.unique().tolist()) <= {0.0, 1.0}
    assert result.input_masks.sum(-1).float().mean() < 59 / 2  # the penalty prunes
    means = result.input_fill
    assert means.shape == (4, 59) and torch.allclose(means[:, 25:34].sum(1), torch.full((4,), 1.0))
    assert (result.best_loss <= result.init_loss + 5 * 0.005 * 59).all()


def test_zero_fill_is_an_option(agents):
    args = main.Args(mask_learning_steps=20, log_every=0, mask_inputs=True, input_fill="zero")
    result = main.learn_masks(args, agents)
    assert torch.equal(result.input_fill, torch.zeros(4, 59))


def test_summary_separates_needed_and_not_needed(input_run):
    _, result = input_run
    text = extraction.summary_table(result.masked_score, result.best_loss, DEFAULT_GAME, result.input_masks.sum(-1).int().numpy())
    assert "needed by the network's problem" in text and "not needed" in text and "input features kept" in text
    needed = DEFAULT_GAME.needed
    assert needed.sum() == 8 and needed[:, 0].tolist() == [False, True, False, True]  # TL-BR: Down, Right


def test_seeds_are_independent_and_reproducible(agents):
    args = main.Args(mask_learning_steps=100, log_every=0, num_seeds=3)
    first = main.learn_masks(args, agents)
    assert first.seeds == [0, 1, 2]
    assert not torch.equal(first.neuron_masks[0], first.neuron_masks[1])
    again = main.learn_masks(args, agents)
    assert torch.equal(first.neuron_masks, again.neuron_masks)
    tables = extraction.score_tables(first.masked_score, first.original_score, DEFAULT_GAME)
    assert " ± " in tables[0]


@pytest.mark.slow
def test_save_dir_writes_results_masks_and_figures(tmp_path, input_run, agents):
    args, result = input_run
    args = dataclasses.replace(args, save_dir=str(tmp_path / "out"))
    results.save_results(args, result, main.model_paths(args), args.save_dir)
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert data["args"]["mask_inputs"] is True and len(data["runs"]) == 2 * 4 * 4
    run = data["runs"][0]
    assert {"combo", "base_model", "seed", "masked_score", "original_score", "init_loss",
            "best_loss"} <= set(run)
    assert (run["combo"], run["base_model"], run["seed"]) == ("Up", "TL-BR", 0)
    assert run["masked_score"] == pytest.approx(float(result.masked_score[0, 0, 0]))
    assert len(run["whole_combo_per_test_state"]) == len(data["test_states"]) == 96
    for name in ["heatmaps_Up.png", "heatmaps_Down.png", "heatmaps_Left.png", "heatmaps_Right.png",
                 "loss_curves.png"]:
        assert (tmp_path / "out" / name).read_bytes()[:4] == b"\x89PNG"
    saved = torch.load(tmp_path / "out" / "masks.pt", weights_only=True)
    assert torch.equal(saved["neuron_masks"], result.neuron_masks)
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_extracted_function_reused_as_an_option(tmp_path, input_run):
    args, result = input_run
    args = dataclasses.replace(args, save_dir=str(tmp_path), model_paths=tuple(
        os.path.join(ROOT, path) for path in args.model_paths))
    results.save_results(args, result, main.model_paths(args), args.save_dir)
    state_labels = results.test_state_labels(DEFAULT_GAME)
    c, a = 0, PROBLEMS.index("BR-TL")  # Up, from a network whose problem needs it
    function = options.load_extracted_function(str(tmp_path / "masks.pt"), "Up", "BR-TL", seed_index=1)
    for t in (0, 30, 60, 95):
        env = ComboGym(problem=state_labels[t]["problem"])
        env.reset(options={"agent": tuple(state_labels[t]["cell"])})
        actions = function.run(env).get_actions()
        assert (tuple(actions) == COMBOS["Up"]) == bool(result.whole_combo[1, c, a, t])


def test_figures_skipped_without_matplotlib(tmp_path, input_run, monkeypatch, capsys):
    args, result = input_run
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    results.save_results(args, result, main.model_paths(args), str(tmp_path))
    assert "figures skipped" in capsys.readouterr().out
    assert (tmp_path / "results.json").exists() and not list(tmp_path.glob("*.png"))
