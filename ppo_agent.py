"""The PPO policy network the assignment decomposes, and its masked forward pass.

Layout fixed (docs/game.md) so that the course's checkpoints load unchanged:
actor = Linear(obs, hidden) -> ReLU -> Linear(hidden, 3); critic = a 64-64 tanh MLP.
"""

import hashlib
import os
import pickle

import numpy as np
import torch
from torch import nn
from torch.distributions.categorical import Categorical

from decomposition.files import read_json
from trajectory import Trajectory


class CheckpointError(Exception):
    """A checkpoint that cannot be loaded into the agent; the message says why."""


def layer_init(layer, std=2 ** 0.5, bias_const=0.0):
    torch.nn.init.orthogonal_(layer.weight, std)
    torch.nn.init.constant_(layer.bias, bias_const)
    return layer


def greedy_actions(logits):
    """The most probable action per row (argmax of the probabilities, as the course code does). The
    probabilities are computed as Categorical(logits=logits).probs computes them, without building
    the distribution (a fifth of an option's cost in the reuse study)."""
    return torch.argmax(torch.softmax(logits - logits.logsumexp(-1, keepdim=True), -1), dim=-1)


def masked_hidden(pre_activations, mask):
    """Hidden layer under a mask of shape (..., 3, hidden) whose columns are one-hot.

    Row 0 (inactive) outputs 0, row 1 (active) outputs Z, row 2 (part of the program) ReLU(Z).
    Written as a sum of products so that gradients reach every row of a straight-through mask.
    """
    return mask[..., 1, :] * pre_activations + mask[..., 2, :] * torch.relu(pre_activations)


def program_mask(hidden_size):
    """The mask that puts every neuron in the program: the original network."""
    mask = torch.zeros(3, hidden_size)
    mask[2] = 1.0
    return mask


class PPOAgent(nn.Module):
    def __init__(self, env, hidden_size=64):
        super().__init__()
        obs_size = int(np.prod(env.observation_space.shape))
        num_actions = int(env.action_space.n)
        self.hidden_size = hidden_size
        self.critic = nn.Sequential(
            layer_init(nn.Linear(obs_size, 64)), nn.Tanh(),
            layer_init(nn.Linear(64, 64)), nn.Tanh(),
            layer_init(nn.Linear(64, 1), std=1.0),
        )
        self.actor = nn.Sequential(
            layer_init(nn.Linear(obs_size, hidden_size)), nn.ReLU(),
            layer_init(nn.Linear(hidden_size, num_actions), std=0.01),
        )

    def get_value(self, x):
        return self.critic(x)

    def get_action_and_value(self, x, action=None):
        distribution = Categorical(logits=self.actor(x))
        if action is None:
            action = distribution.sample()
        return action, distribution.log_prob(action), distribution.entropy(), self.critic(x)

    def _get_action(self, x_tensor):
        hidden_logits = self.actor[0](x_tensor)
        hidden_relu = self.actor[1](hidden_logits)
        logits = self.actor[2](hidden_relu)
        return greedy_actions(logits), logits

    def _get_action_with_mask(self, x_tensor, mask):
        """Masked forward pass on a batch of observations; `mask` is (3, hidden) or broadcastable."""
        hidden = masked_hidden(self.actor[0](x_tensor), mask)
        logits = self.actor[2](hidden)
        return greedy_actions(logits), logits

    def run(self, env, length_cap=None):
        """Greedy rollout of one episode of `env` from its start; returns the trajectory."""
        return rollout(env, self._get_action, length_cap)

    def run_with_mask(self, observations_or_env, mask, length):
        """The masked network's actions on a list of observations, or on `length` steps of an env.

        Given observations, every one is fed to the masked network in one batch. Given an
        environment, the network acts greedily from the environment's current state, which
        advances with its actions. Either way the logits keep their gradient to the mask.
        """
        act = lambda x: self._get_action_with_mask(x, mask)  # noqa: E731
        if hasattr(observations_or_env, "step"):
            return rollout(observations_or_env, act, length, reset=False)
        observations = list(observations_or_env)[:length]
        actions, logits = act(torch.as_tensor(np.array(observations), dtype=torch.float32))
        return Trajectory(observations, actions.tolist(), list(logits))


def rollout(env, act, length_cap=None, reset=True):
    """Act greedily in a ComboGym until the episode ends or `length_cap` actions are taken.

    `act` maps an observation tensor to (action, logits); without `reset`, the rollout starts
    from the environment's current state.
    """
    trajectory = Trajectory()
    observation = env.reset()[0] if reset else env.unwrapped.observation()
    while length_cap is None or trajectory.get_length() < length_cap:
        action, logits = act(torch.as_tensor(observation, dtype=torch.float32))
        trajectory.add_pair(observation, action.item(), logits)
        observation, _, terminated, truncated, _ = env.step(action.item())
        if terminated or truncated:
            break
    return trajectory


def fingerprint(path):
    """SHA-256 of a checkpoint's bytes: masks.pt names the exact networks its masks belong to."""
    with open(path, "rb") as file:
        return hashlib.sha256(file.read()).hexdigest()


def read_checkpoint(path):
    """The object a checkpoint file holds, read with weights_only; any failure is a CheckpointError."""
    if os.path.isdir(path):
        raise CheckpointError(f"checkpoint {path} is a folder, not a file")
    if os.path.exists(path) and not os.path.isfile(path):  # a FIFO or a device would block or never end
        raise CheckpointError(f"checkpoint {path} is not a regular file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint not found: {path}") from None
    except PermissionError:
        raise CheckpointError(f"cannot read checkpoint {path}: permission denied") from None
    except pickle.UnpicklingError as error:
        if "Unsupported global" not in str(error):
            raise CheckpointError(f"cannot read checkpoint {path}: not a file written by torch.save") from None
        raise CheckpointError(f"checkpoint {path} holds pickled Python objects (a whole module?), not a "
                              "state_dict of tensors: refused, since loading them would run code") from None
    except Exception as error:  # torch raises many kinds for a file that is not a checkpoint
        raise CheckpointError(f"cannot read checkpoint {path}: not a file written by torch.save "
                              f"({type(error).__name__})") from None


def recorded_game(path):
    """The game that train_ppo.py recorded for a checkpoint in the training.json beside it, or None
    where there is none (a checkpoint of the course's code, say)."""
    try:
        record = read_json(os.path.join(os.path.dirname(os.path.abspath(path)), "training.json"))
        return record["game"]["name"] if isinstance(record.get("game"), dict) else record.get("game")
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return None


def plain_tensor(value):
    """Whether value is a dense tensor of real numbers in memory (not sparse, complex or on a device)."""
    return (isinstance(value, torch.Tensor) and value.layout == torch.strided and value.device.type == "cpu"
            and not value.is_complex())


def load_agent(path, env, hidden_size=64):
    """A PPOAgent with the weights of checkpoint `path` (a state_dict, read with weights_only),
    checked for what would make it unusable: missing, unexpected or misshapen tensors, and weights
    or outputs that are not finite."""
    agent = PPOAgent(env, hidden_size)
    state = read_checkpoint(path)
    game, trained_on = env.unwrapped.game_description.name, recorded_game(path)
    if trained_on is not None and trained_on != game:
        raise CheckpointError(f"checkpoint {path} was trained on game {trained_on} (its folder's training.json), "
                              f"not on game {game}: pass --game {trained_on}")
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} is not a state_dict")
    not_tensors = sorted(str(key) for key, value in state.items() if not plain_tensor(value))
    if not_tensors:
        raise CheckpointError(f"checkpoint {path}: {not_tensors[0]} is not a dense tensor of real numbers on the "
                              "CPU: not a PPOAgent checkpoint")
    expected = agent.state_dict()
    for key, tensor in expected.items():
        if key not in state:
            raise CheckpointError(f"checkpoint {path} has no tensor {key!r}: not a PPOAgent checkpoint")
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"checkpoint {path}: {key} has shape {tuple(state[key].shape)}, expected "
                f"{tuple(tensor.shape)} for hidden size {hidden_size} and game {env.unwrapped.game_description.name} "
                f"({env.unwrapped.game_description.observation_size} inputs)")
    unexpected = sorted(set(state) - set(expected))
    if unexpected:
        raise CheckpointError(f"checkpoint {path} has unexpected tensors {unexpected}")
    not_finite = [key for key in expected if not torch.isfinite(state[key]).all()]
    if not_finite:
        raise CheckpointError(f"checkpoint {path}: {not_finite[0]} holds NaN or infinite weights")
    agent.load_state_dict(state)
    agent.eval()
    with torch.no_grad():
        logits = agent.actor(torch.as_tensor(env.unwrapped.observations_to_check()))
    if not (torch.isfinite(logits).all() and torch.isfinite(Categorical(logits=logits).probs).all()):
        raise CheckpointError(f"checkpoint {path}: its actor's outputs on the game's observations are NaN or "
                              "infinite (weights far too large?)")
    return agent
