"""An extracted function used as an option: a network under a learned mask, acting for a combo's
three steps from whatever state it is called in.

    up = load_extracted_function("out/masks.pt", "Up", "BR-TL")   # after main.py --save-dir out
    up.run(env)                                                     # 3 greedy actions in env
"""

import numpy as np
import torch

from combogrid import COMBO_LENGTH, COMBOS, MOVE_NAMES, ComboGym
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


class OptionSet:
    """K options a learner can choose besides the primitive actions. act(which, observations,
    position) gives the primitive action of option which[i] at observations[i], `position`
    (0, 1 or 2) steps after the option started."""

    def __len__(self):
        raise NotImplementedError


class ComboOptions(OptionSet):
    """The four true combos as fixed macro-actions: the upper bound of what an option can give."""

    def __init__(self, names=MOVE_NAMES):
        self.table = np.array([COMBOS[name] for name in names])

    def __len__(self):
        return len(self.table)

    def act(self, which, observations, position):
        return self.table[which, position]


class NetworkOptions(OptionSet):
    """Options that are networks under masks: option k acts greedily with agents[k] under
    neuron_masks[k] (3, H) and, if given, input_masks[k] (D,) with dropped inputs set to fills[k]."""

    def __init__(self, agents, neuron_masks, input_masks=None, fills=None):
        self.actors = StackedActors(agents)
        self.neuron_masks = torch.as_tensor(neuron_masks)                        # (K, 3, H)
        self.input_masks = None if input_masks is None else torch.as_tensor(input_masks)   # (K, D)
        self.fills = 0.0 if fills is None else torch.as_tensor(fills)             # (K, D)

    def __len__(self):
        return len(self.neuron_masks)

    @torch.no_grad()
    def act(self, which, observations, position):
        x = torch.as_tensor(observations)[None]                                   # (1, n, D)
        z = self.actors.pre_activations(x, self.input_masks, self.fills)          # (K, n, H)
        logits = self.actors.logits(z, self.neuron_masks)                        # (K, n, O)
        return greedy_actions(logits[which, np.arange(len(which))]).numpy()
