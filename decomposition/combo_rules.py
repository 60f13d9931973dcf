"""ComboGrid's rules, in one place: `ComboGridBatch` steps many games of one combogrid.Game at
once with numpy. PPO's rollouts, the mask evaluation, the downstream tasks and the gymnasium
environment (a batch of one) all step through it, so they can never disagree.
"""

import numpy as np

from decomposition.environment import NUM_ACTIONS

MAX_EPISODE_STEPS = 500


class ComboGridBatch:
    """`n` games of one Game stepped together; arrays hold one row per game.

    The state of a game is the agent's cell, the goal's cell, the actions in the combo buffer
    and the number of steps taken. `step` does not reset finished games: callers decide
    (PPO's vectorised environment resets them, the evaluation stops using them).
    """

    def __init__(self, agent_cells, goals, game):
        self.game = game
        self.rows, self.columns = game.rows, game.columns
        self.agent_cells = np.array(agent_cells, dtype=np.int64).reshape(-1, 2)
        self.goals = np.array(goals, dtype=np.int64).reshape(-1, 2)
        n = len(self.agent_cells)
        self.buffers = np.zeros((n, game.combo_length), dtype=np.int64)
        self.buffer_lengths = np.zeros(n, dtype=np.int64)
        self.steps = np.zeros(n, dtype=np.int64)

    def __len__(self):
        return len(self.agent_cells)

    def restart(self, which, agent_cells):
        """Start the games selected by the boolean array `which` again, the agents on these cells."""
        self.agent_cells[which] = agent_cells
        self.buffer_lengths[which] = 0
        self.steps[which] = 0

    def subset(self, games):
        """A new batch holding copies of the games at these indices."""
        batch = ComboGridBatch(self.agent_cells[games], self.goals[games], self.game)
        batch.buffers, batch.buffer_lengths = self.buffers[games], self.buffer_lengths[games]
        batch.steps = self.steps[games]
        return batch

    def at_goal(self):
        return np.all(self.agent_cells == self.goals, axis=1)

    def decision_states(self):
        """Each game's (goal cell, combo buffer, agent cell) as one index: all that its future depends on
        but its step count, so a deterministic policy acts the same wherever the index repeats."""
        game = self.game
        cell = lambda cells: cells[:, 0] * self.columns + cells[:, 1]  # noqa: E731
        return (cell(self.goals) * game.buffer_states + game.buffer_code(self.buffer_lengths, self.buffers)) \
            * game.cells + cell(self.agent_cells)

    def observations(self):
        """Agent one-hot, combo buffer one-hot [action][position], goal one-hot (docs/game.md)."""
        n, cells, length = len(self.agent_cells), self.game.cells, self.game.combo_length
        obs = np.zeros((n, self.game.observation_size), dtype=np.float32)
        games = np.arange(n)
        obs[games, self.agent_cells[:, 0] * self.columns + self.agent_cells[:, 1]] = 1.0
        for position in range(length):
            filled = self.buffer_lengths > position
            actions = self.buffers[filled, position]
            obs[games[filled], cells + actions * length + position] = 1.0
        obs[games, cells + NUM_ACTIONS * length + self.goals[:, 0] * self.columns + self.goals[:, 1]] = 1.0
        return obs

    def step(self, actions, active=None):
        """Apply one action per game; returns (rewards, terminated, truncated) arrays.

        With a boolean array `active`, only those games take their action (an option runs for
        several steps while a primitive action takes one); the others stay as they are.
        """
        game = self.game
        games = np.arange(len(self.agent_cells)) if active is None else np.flatnonzero(active)
        self.buffers[games, self.buffer_lengths[games]] = actions[games]
        self.buffer_lengths[games] += 1
        self.steps[games] += 1
        full = self.buffer_lengths == game.combo_length
        combos = np.where(full, game.combo_of_buffer[self.buffers @ game.buffer_weights], -1)
        moving = combos >= 0
        targets = self.agent_cells[moving] + game.combo_deltas[combos[moving]]
        inside = ((targets >= 0) & (targets < (self.rows, self.columns))).all(axis=1)
        inside[inside] = ~game.is_wall[targets[inside, 0], targets[inside, 1]]
        self.agent_cells[np.flatnonzero(moving)[inside]] = targets[inside]
        self.buffer_lengths[full] = 0
        terminated = self.at_goal()
        truncated = ~terminated & (self.steps >= MAX_EPISODE_STEPS)
        rewards = np.where(terminated, 0.0, -1.0)
        return rewards, terminated, truncated
