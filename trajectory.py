"""A trajectory: the (state, action) pairs of an episode, with the logits that chose each action."""


class Trajectory:
    """Sequence of (state, action) pairs; `logits[i]` is the network output for pair i, if known.

    Slicing (`trajectory[3:6]`) and `+` give new trajectories, so a solution can be cut into
    combos and the combos of several solutions put together into one training set.
    """

    def __init__(self, states=(), actions=(), logits=()):
        self._states = list(states)
        self._actions = [int(a) for a in actions]
        self.logits = list(logits)
        if len(self._states) != len(self._actions):
            raise ValueError("a trajectory needs one action per state")

    def add_pair(self, state, action, logits=None):
        self._states.append(state)
        self._actions.append(int(action))
        if logits is not None:
            self.logits.append(logits)

    def get_state_sequence(self):
        return list(self._states)

    def get_actions(self):
        return list(self._actions)

    def get_length(self):
        return len(self._actions)

    def __len__(self):
        return len(self._actions)

    def __getitem__(self, index):
        if not isinstance(index, slice):
            raise TypeError("index a trajectory with a slice, e.g. trajectory[0:3]")
        return Trajectory(self._states[index], self._actions[index], self.logits[index])

    def __add__(self, other):
        return Trajectory(self._states + other._states, self._actions + other._actions,
                          self.logits + other.logits)

    def __repr__(self):
        return f"Trajectory(actions={self._actions})"
