"""An extracted function used as an option: a network under a learned mask, acting for a fixed
number of steps (a combo's three, or a discovered option's length) from whatever state it is
called in.

    up = load_extracted_function("out/masks.pt", "Up", "BR-TL")   # after main.py --save-dir out
    up.run(env)                                                     # 3 greedy actions in env
    found = load_discovered_options("out/options.pt")              # after discover.py --save-dir out
    found[0].run(env)                                               # found[0].steps greedy actions

A learner's option set (tasks.TaskVec) is any object with len() (K options), `lengths` (K,), the
primitive steps each option acts for, and act(which, observations, position): the primitive
actions of options which[i] at observations[i], `position` steps after each started.
`FixedOptions` holds fixed action sequences (`ComboOptions`: the four true combos),
`NetworkOptions` networks under masks: three steps each for a combo's function, or one step for a
network's greedy action offered as one more action (the neural-augmented baseline).
"""

import numbers
import os

import numpy as np
import torch

from combogrid import COMBO_LENGTH, DEFAULT_GAME, sized_game
from decomposition import gridworld  # noqa: F401 (registers MiniGrid's records with game_from_record)
from decomposition.environment import game_from_record
from decomposition.masks import StackedActors
from ppo_agent import fingerprint, greedy_actions, load_agent, plain_tensor, rollout


KIT_MODELS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models")


class MaskFileError(Exception):
    """A masks.pt that cannot give the requested function; the message says why."""


class ExtractedFunction:
    """A sub-function of one network: the network under a learned mask, acting for `steps` actions."""

    def __init__(self, agent, neuron_mask, input_mask=None, input_fill=0.0, steps=COMBO_LENGTH):
        self.agent, self.steps = agent, steps
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

    def run(self, env, steps=None):
        """Act for `steps` actions (by default its own number) from the environment's current state,
        or until the episode ends (the option's execution)."""
        return rollout(env, self, self.steps if steps is None else steps, reset=False)


def load_extracted_function(masks_path, combo, base_model, seed_index=0, model_path=None):
    """The function for `combo` (e.g. "Up") extracted from network `base_model` (e.g. "TL-BR"),
    from the masks.pt of main.py --save-dir. The network is the checkpoint the masks were learned
    on (its absolute path is stored; where that path does not exist, the kit's models/ file of the
    same name), or `model_path`; either must have the bytes the masks were learned on."""
    masks = read_masks(masks_path)
    for value, valid, what in ((combo, masks["combos"], "combo"), (base_model, masks["base_models"], "network")):
        if value not in valid:
            raise MaskFileError(f"unknown {what} {value!r}: {masks_path} has {', '.join(valid)}")
    seeds = len(masks["seeds"])
    if not (isinstance(seed_index, numbers.Integral) and not isinstance(seed_index, bool)
            and 0 <= seed_index < seeds):
        raise MaskFileError(f"seed index {seed_index!r} out of range: {masks_path} has seeds 0 to {seeds - 1} "
                            f"(seeds {masks['seeds']} of the run)")
    seed_index, c, a = int(seed_index), masks["combos"].index(combo), masks["base_models"].index(base_model)
    agent = saved_network(masks, a, masks_path, model_path)
    if "input_masks" not in masks:
        return ExtractedFunction(agent, masks["neuron_masks"][seed_index, c, a])
    return ExtractedFunction(agent, masks["neuron_masks"][seed_index, c, a],
                             masks["input_masks"][seed_index, c, a], masks["input_fill"][c])


def read_saved(path, kind, writer, key):
    """The dict that `writer` --save-dir saved at `path` as `kind` ("a masks.pt"), which holds `key`;
    a MaskFileError naming the file otherwise."""
    if os.path.exists(path) and not os.path.isfile(path):  # a FIFO or a device would block or never end
        raise MaskFileError(f"{path} is not a regular file")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise MaskFileError(f"{kind.split()[-1]} not found: {path}") from None
    except Exception as error:  # torch raises many kinds for a file that is not one
        raise MaskFileError(f"cannot read {path} as {kind} of {writer} ({type(error).__name__})") from None
    if not isinstance(saved, dict) or key not in saved:
        raise MaskFileError(f"{path} is not {kind} written by {writer} --save-dir")
    return saved


def read_masks(path):
    """The dict of a masks.pt of main.py --save-dir, checked whole: a missing or malformed entry is a
    MaskFileError naming the file and the entry."""
    masks = read_saved(path, "a masks.pt", "main.py", "neuron_masks")
    fault = mask_file_fault(masks)
    if fault:
        raise MaskFileError(f"{path} is damaged: {fault}")
    return masks


def mask_file_fault(masks):
    """The first entry of a masks.pt dict that is missing or malformed, as a message, or None."""
    names = {"combos": str, "base_models": str, "seeds": numbers.Integral, "model_paths": str}
    for key, kind in names.items():
        if not (isinstance(masks.get(key), list) and masks[key] and all(isinstance(x, kind) for x in masks[key])):
            return f"{key!r} is missing or not a list of {kind.__name__}"
    for key, limit in (("hidden_size", 10**5), ("game_width", 100)):
        value = masks.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not 2 <= value <= limit:
            return f"{key!r} is missing or not an integer from 2 to {limit}"
    try:
        game = saved_game(masks)
    except ValueError as error:
        return f"'game' is not a game description ({error})"
    combos, networks = len(masks["combos"]), len(masks["base_models"])
    size = game.observation_size
    shapes = {"neuron_masks": (len(masks["seeds"]), combos, networks, 3, masks["hidden_size"]),
              "input_masks": (len(masks["seeds"]), combos, networks, size), "input_fill": (combos, size)}
    for key, shape in shapes.items():
        value = masks.get(key)
        if key not in masks and key != "neuron_masks":
            continue
        if not (plain_tensor(value) and tuple(value.shape) == shape and torch.isfinite(value).all()):
            return f"{key!r} is not a finite tensor of real numbers of shape {shape}"
    neuron_masks = masks["neuron_masks"]
    if not (((neuron_masks == 0) | (neuron_masks == 1)).all() and (neuron_masks.sum(-2) == 1).all()):
        return "'neuron_masks' has a column that is not one-hot"
    if ("input_masks" in masks) != ("input_fill" in masks):
        return "'input_masks' and 'input_fill' come together"
    fingerprints = masks.get("model_fingerprints", [""] * networks)
    if not (isinstance(fingerprints, list) and all(isinstance(f, str) for f in fingerprints)):
        return "'model_fingerprints' is not a list of str"
    if len(masks["model_paths"]) != networks or len(fingerprints) != networks:
        return "'model_paths' or 'model_fingerprints' does not name one network per base model"
    return None


def saved_game(saved):
    """The game a masks.pt or options.pt was written for (files without a 'game' entry: the 5 x 5
    game on a game_width grid)."""
    if "game" in saved:
        return game_from_record(saved["game"])
    return sized_game("5x5", saved["game_width"], saved["game_width"])


def saved_network(saved, a, saved_path, model_path=None):
    """Network `a` of a file of masks: the checkpoint the masks were learned on (its absolute path
    is stored; where that path does not exist, the file of the same name beside the file of masks,
    or else the kit's models/ file of the same name), or
    `model_path`; either must have the bytes the masks were learned on."""
    path = model_path or saved["model_paths"][a]
    shipped = os.path.join(KIT_MODELS, os.path.basename(path))
    beside = os.path.join(os.path.dirname(os.path.abspath(saved_path)), os.path.basename(path))
    if model_path is None and not os.path.isfile(path) and os.path.isfile(beside):
        path = beside  # a study folder moved or copied whole (results/minigrid/sets/set-K/)
    if model_path is None and "model_fingerprints" in saved and not os.path.isfile(path) and os.path.isfile(shipped):
        path = shipped  # a file written on another machine (results/): the kit's copy, checked below
    if "model_fingerprints" in saved and os.path.isfile(path):
        if fingerprint(path) != saved["model_fingerprints"][a]:
            raise MaskFileError(f"{path} is not the {saved['base_models'][a]} network these masks were learned on "
                                f"({saved['model_paths'][a]}, in {saved_path}): its bytes differ")
    game = saved_game(saved)
    return load_agent(path, game.problem_env(game.problems.index(saved["base_models"][a])), saved["hidden_size"])


def load_discovered_options(options_path, model_paths=None, game=None):
    """The options chosen by discover.py --save-dir, from its options.pt, as ExtractedFunctions
    of their own lengths (option k acts for found[k].steps actions). The networks are found as
    for load_extracted_function; model_paths (one per network, TL-BR, TR-BL, BR-TL, BL-TR) overrides."""
    saved = read_saved(options_path, "an options.pt", "discover.py", "options")
    if game is not None and saved_game(saved).describe() != game.describe():
        raise MaskFileError(f"{options_path} holds options of game {saved_game(saved).name}, not of game {game.name}")
    found = []
    try:
        for option in saved["options"]:
            a = saved["base_models"].index(option["network"])
            agent = saved_network(saved, a, options_path, None if model_paths is None else model_paths[a])
            found.append(ExtractedFunction(agent, option["neuron_mask"], option.get("input_mask"),
                                           option.get("input_fill", 0.0), steps=option["length"]))
    except (KeyError, ValueError, TypeError, AttributeError, IndexError) as error:
        raise MaskFileError(f"{options_path} is damaged: an option's entry is missing or malformed "
                            f"({type(error).__name__}: {error})") from None
    return found


class FixedOptions:
    """Fixed macro-actions: option k plays sequences[k] (its own length), whatever it observes."""

    def __init__(self, sequences):
        self.lengths = np.array([len(sequence) for sequence in sequences], dtype=np.int64)
        self.table = np.zeros((len(sequences), max(self.lengths)), dtype=np.int64)
        for k, sequence in enumerate(sequences):
            self.table[k, :len(sequence)] = sequence

    def __len__(self):
        return len(self.table)

    def act(self, which, observations, position):
        return self.table[which, position]


class ComboOptions(FixedOptions):
    """The game's true combos as fixed macro-actions, each played from whatever is in the combo buffer."""

    def __init__(self, game=DEFAULT_GAME):
        super().__init__(game.combo_actions)


class NetworkOptions:
    """Options that are networks under masks: option k acts greedily with agents[k] under
    neuron_masks[k] (3, H) and, if given, input_masks[k] (D,) with dropped inputs set to fills[k],
    for `length` primitive steps (one length for all, or one per option).

    An option's action depends on the observation only, and a 5 x 5 game has 8,125 of them (25
    agent cells x 13 combo buffers x 25 goal cells): every option's action for each is computed
    once (Game.every_observation), and acting looks it up by Game.observation_index (an option's
    networks cost more than the learner's otherwise)."""

    def __init__(self, agents, neuron_masks, input_masks=None, fills=None, length=COMBO_LENGTH, game=DEFAULT_GAME):
        actors = StackedActors(agents)
        input_masks = None if input_masks is None else torch.as_tensor(input_masks)   # (K, D)
        fills = 0.0 if fills is None else torch.as_tensor(fills)                      # (K, D)
        self.game = game
        observations = torch.as_tensor(game.every_observation())[None]
        with torch.no_grad():
            z = actors.pre_activations(observations, input_masks, fills)  # (K, M, H)
            self.actions = greedy_actions(actors.logits(z, torch.as_tensor(neuron_masks))).numpy()  # (K, M)
        self.lengths = np.broadcast_to(np.asarray(length, dtype=np.int64), (len(agents),)).copy()

    def __len__(self):
        return len(self.actions)

    def act(self, which, observations, position):
        return self.actions[which, self.game.observation_index(observations)]

