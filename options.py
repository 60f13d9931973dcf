"""An extracted function used as an option: a network under a learned mask, acting for a combo's
three steps from whatever state it is called in.

    up = load_extracted_function("out/masks.pt", "Up", "BR-TL")   # after main.py --save-dir out
    up.run(env)                                                     # 3 greedy actions in env
"""

import numpy as np
import torch

from combogrid import COMBO_LENGTH, ComboGym
from ppo_agent import StackedActors, greedy_actions, load_agent, rollout


class ExtractedFunction:
    """One combo's sub-function of one network: the network under a learned mask."""

    def __init__(self, agent, neuron_mask, input_mask=None, input_fill=0.0):
        self.actors = StackedActors([agent])
        self.neuron_mask = neuron_mask[None]                        # (1, 3, H)
        self.input_mask = None if input_mask is None else input_mask[None]
        self.input_fill = input_fill

    @torch.no_grad()
    def __call__(self, x):
        """(greedy action, logits) for one observation tensor of shape (D,)."""
        z = self.actors.pre_activations(x[None, None], self.input_mask, self.input_fill)  # (A=1, N=1, D)
        logits = self.actors.logits(z, self.neuron_mask)[0, 0]
        return greedy_actions(logits), logits

    def act(self, observation):
        return int(self(torch.as_tensor(np.asarray(observation), dtype=torch.float32))[0])

    def run(self, env, steps=COMBO_LENGTH):
        """Act for `steps` actions from the environment's current state (the option's execution)."""
        return rollout(env, self, steps, reset=False)


def load_extracted_function(masks_path, sequence, base_model, seed_index=0, model_path=None):
    """The function for `sequence` (e.g. "Up") extracted from network `base_model` (e.g. "TL-BR")."""
    masks = torch.load(masks_path, map_location="cpu", weights_only=True)
    c, a = masks["sequences"].index(sequence), masks["base_models"].index(base_model)
    width = masks["game_width"]
    agent = load_agent(model_path or masks["model_paths"][a], ComboGym(width, width, base_model),
                       masks["hidden_size"])
    if "input_masks" not in masks:
        return ExtractedFunction(agent, masks["neuron_masks"][seed_index, c, a])
    return ExtractedFunction(agent, masks["neuron_masks"][seed_index, c, a],
                             masks["input_masks"][seed_index, c, a], masks["input_fill"][c])
