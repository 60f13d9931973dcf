"""How a ComboGrid game's states are numbered and observed: the combo buffer as a number, every
observation of a game in one order, and an observation's index in it (what options look their
actions up by). combogrid.Game inherits these (`ObservationCodec`); ComboGridBatch.observations
writes the observation itself.
"""

import functools
import itertools

import numpy as np

from decomposition.combo_rules import ComboGridBatch
from decomposition.environment import NUM_ACTIONS


class ObservationCodec:
    """A Game's buffer and observation numbering (a mixin of combogrid.Game: cells, columns,
    combo_length and combo_actions come from the description)."""

    @functools.cached_property
    def combo_of_buffer(self):
        """A full buffer (a_1, ..., a_L) read as the number sum a_i 3^(L-i): the combo (index) it is, -1 for none."""
        table = np.full(NUM_ACTIONS ** self.combo_length, -1, dtype=np.int64)
        table[self.combo_actions @ self.buffer_weights] = np.arange(len(self.combos))
        return table

    @functools.cached_property
    def buffer_weights(self):
        return NUM_ACTIONS ** np.arange(self.combo_length - 1, -1, -1)

    @functools.cached_property
    def buffer_states(self):
        """Contents the combo buffer can hold between steps: 0 to L - 1 actions."""
        return sum(NUM_ACTIONS ** k for k in range(self.combo_length))

    @functools.cached_property
    def observation_size(self):
        return 2 * self.cells + NUM_ACTIONS * self.combo_length

    def buffer_code(self, lengths, buffers):
        """Index below buffer_states of each buffer's contents (lengths (n,), buffers (n, L))."""
        code = np.zeros(len(lengths), dtype=np.int64)
        offsets = np.cumsum([0] + [NUM_ACTIONS ** k for k in range(self.combo_length)])
        for position in range(self.combo_length - 1):
            filled = lengths > position
            code[filled] = code[filled] * NUM_ACTIONS + buffers[filled, position]
        return offsets[lengths] + code

    def observation_index(self, observations):
        """Each observation (n, D) as the index (agent cell, buffer contents, goal cell) below
        cells x buffer_states x cells, the order of every_observation()."""
        observations = np.asarray(observations)
        cells, length = self.cells, self.combo_length
        agent = observations[:, :cells].argmax(1)
        goal = observations[:, cells + NUM_ACTIONS * length:].argmax(1)
        buffer = observations[:, cells:cells + NUM_ACTIONS * length].reshape(-1, NUM_ACTIONS, length)
        lengths = buffer.sum((1, 2)).astype(np.int64)
        code = self.buffer_code(lengths, buffer.argmax(1))
        return (agent * self.buffer_states + code) * cells + goal

    def every_observation(self):
        """Every observation of the game (agent cell, combo buffer of 0 to L - 1 actions, goal cell),
        in the order of observation_index."""
        contents = [p for k in range(self.combo_length) for p in itertools.product(range(NUM_ACTIONS), repeat=k)]
        agent_cells = np.repeat(np.arange(self.cells), len(contents) * self.cells)
        goals = np.tile(np.arange(self.cells), self.cells * len(contents))
        games = ComboGridBatch(np.stack(divmod(agent_cells, self.columns), 1), np.stack(divmod(goals, self.columns), 1), self)
        lengths = np.array([len(p) for p in contents])
        padded = np.array([p + (0,) * (self.combo_length - len(p)) for p in contents]).reshape(len(contents), -1)
        games.buffer_lengths = np.tile(np.repeat(lengths, self.cells), self.cells)
        games.buffers = np.tile(np.repeat(padded, self.cells, axis=0), (self.cells, 1))
        return games.observations()
