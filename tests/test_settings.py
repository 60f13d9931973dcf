"""The library takes settings dataclasses that check themselves, and no entry script imports another."""

import ast
import os

import pytest
import torch

from decomposition import combo_discovery, extraction, reuse
from decomposition.masks import MaskSettings, StackedActors, fit_masks
from decomposition.ppo import PPOSettings
from decomposition.script import SettingsError
from ppo_agent import load_agent
from combogrid import ComboGym
from decomposition.tasks import ComboGridTask

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = ("main", "train_ppo", "downstream", "discover", "report", "variants")


@pytest.mark.parametrize("settings, message", [
    (extraction.ExtractionSettings(game="7x7"), "unknown game '7x7'"),
    (extraction.ExtractionSettings(num_seeds=0), "--num-seeds must be a positive number"),
    (extraction.ExtractionSettings(model_paths=("a.pt",)), "--model-paths needs 4 checkpoints"),
    (extraction.ExtractionSettings(game="5x5-combo4", sequence_length=3), "--sequence-length must be 4"),
    (extraction.ExtractionSettings(mask_learning_rate=50.0), "--mask-learning-rate 50.0 is out of range"),
    (combo_discovery.DiscoverySettings(max_length=25), "--max-length must be between 2 and 24"),
    (combo_discovery.DiscoverySettings(game="5x5-hallways", max_length=13),
     "between 2 and 12 (the shortest solution of game 5x5-hallways)"),
    (combo_discovery.DiscoverySettings(restarts=-1), "--restarts must be a number >= 0"),
    (reuse.ReuseSettings(budget=1000), "--budget must allow one PPO rollout (2048 steps)"),
    (reuse.ReuseSettings(learning_rates=()), "--learning-rates needs at least one rate"),
    (reuse.ReuseSettings(learning_rates=(0.01, float("nan"))), "--learning-rates must be a positive number, got nan"),
    (reuse.ReuseSettings(budget=4096, eval_points=3), "--eval-points must be at most one per PPO rollout (2 "),
    (reuse.ReuseSettings(game="5x5@1x1"), "game"),
    (PPOSettings(gamma=1.5), "--gamma must be between 0 and 1, got 1.5"),
])
def test_settings_name_their_first_problem(settings, message):
    assert message in settings.fault()
    with pytest.raises(SettingsError, match="^--|game"):
        settings.checked()


def test_defaults_have_no_fault():
    for settings in (MaskSettings(), extraction.ExtractionSettings(), combo_discovery.DiscoverySettings(),
                     reuse.ReuseSettings(), PPOSettings(), extraction.ExtractionSettings(game="10x10"),
                     combo_discovery.DiscoverySettings(game="5x5-combo4")):
        assert settings.fault() is None


def test_library_functions_refuse_bad_settings_before_any_work():
    with pytest.raises(SettingsError, match="--mask-learning-steps must be a positive number"):
        extraction.learn_masks(extraction.ExtractionSettings(mask_learning_steps=0))
    with pytest.raises(SettingsError, match="--budget must allow one PPO rollout"):
        reuse.train_learners(ComboGridTask("random"), None, [0], [0.01], reuse.ReuseSettings(budget=100))
    with pytest.raises(SettingsError, match="--max-length must be between 2"):
        combo_discovery.discover([], [], combo_discovery.DiscoverySettings(max_length=1), None)
    agent = load_agent(os.path.join(ROOT, "models", "TL-BR.pt"), ComboGym(problem="TL-BR"))
    observations, actions, weights = torch.zeros(1, 2, 59), torch.zeros(1, 2, dtype=torch.long), torch.ones(1, 2)
    with pytest.raises(SettingsError, match="--input-penalty must be between 0 and 10"):
        fit_masks(StackedActors([agent]), observations, actions, weights, torch.nn.Parameter(torch.zeros(1, 1, 1, 3, 64)),
                  None, MaskSettings(input_penalty=-1.0), None, extraction.discretize)


@pytest.mark.parametrize("script", SCRIPTS)
def test_no_entry_script_imports_another(script):
    tree = ast.parse(open(os.path.join(ROOT, f"{script}.py")).read())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & (set(SCRIPTS) - {script})
