"""How learners' actions are played on any games (decomposition.environment.Games): an option
for its primitive steps with each step's reward (the options framework's discounting needs them),
and the greedy evaluation of many learners at once, stopping an episode caught in a loop, with the
success rate and SPL (Anderson et al., 2018) of each learner.
"""

import numpy as np

from decomposition.environment import NUM_ACTIONS


def macro_step(games, actions, options, running=None):
    """Run one learner action per game: a primitive action (0, 1, 2) for one step, option
    k = action - 3 for its options.lengths[k] primitive steps, fewer if the episode ends inside it.
    With a boolean array `running`, the other games do not move.

    Returns the rewards per primitive step (n, K), K the longest action (0 after an action's last
    step), terminated, truncated and the primitive steps taken, one entry per game.
    """
    is_option = actions >= NUM_ACTIONS
    lengths = np.ones(len(games), dtype=np.int64)
    if options is not None:
        lengths[is_option] = options.lengths[actions[is_option] - NUM_ACTIONS]
    running = np.ones(len(games), dtype=bool) if running is None else running
    step_rewards = np.zeros((len(games), 1 if options is None else max(options.lengths)))
    terminated, truncated = np.zeros(len(games), dtype=bool), np.zeros(len(games), dtype=bool)
    primitive_steps = np.zeros(len(games), dtype=np.int64)
    for position in range(step_rewards.shape[1]):
        active = running & ~(terminated | truncated) & (position < lengths)
        if not active.any():
            break
        primitive = actions.copy()
        optional = active & is_option
        if optional.any():
            primitive[optional] = options.act(actions[optional] - NUM_ACTIONS, games.observations()[optional], position)
        step_rewards[:, position], ended, cut = games.step(primitive, active)
        primitive_steps += active
        terminated |= ended
        truncated |= cut
    return step_rewards, terminated, truncated, primitive_steps


def success_weighted_path_length(finished_at, optimal):
    """SPL (Anderson et al., 2018) per episode: optimal / max(steps taken, optimal) if it succeeded
    (finished_at > 0 primitive steps), else 0."""
    return np.where(finished_at > 0, optimal / np.maximum(finished_at, optimal), 0.0)


def greedy_episodes(games, optimal, count, act, options, state_count):
    """Play `count` learners' greedy policies on their games (learner-major, as many each), stopping
    an episode in a loop (a decision state met twice, below state_count); one episode_measures
    dict per learner. optimal: each game's fewest primitive steps to its end."""
    per_learner = len(games) // count
    finished_at = np.zeros(len(games), dtype=np.int64)  # primitive steps when terminated, 0 if not
    used, decisions = np.zeros(len(games), dtype=np.int64), np.zeros(len(games), dtype=np.int64)
    seen = np.zeros((len(games), state_count), dtype=bool)
    running, rows = np.ones(len(games), dtype=bool), np.arange(len(games))
    looping = np.zeros(len(games), dtype=bool)
    while True:
        states = games.decision_states()
        looping |= running & seen[rows, states]
        running &= ~looping
        if not running.any():
            break
        seen[rows[running], states[running]] = True
        actions = np.asarray(act(games.observations().reshape(count, per_learner, -1))).reshape(-1)
        _, terminated, truncated, steps = macro_step(games, actions, options, running)
        used += steps
        decisions += running
        finished_at = np.where(running & terminated, used, finished_at)
        running &= ~(terminated | truncated)
    per_episode = [x.reshape(count, per_learner) for x in (finished_at, optimal, decisions, looping)]
    return [episode_measures(*(x[k] for x in per_episode)) for k in range(count)]


def episode_measures(finished_at, optimal, decisions, looping):
    """A learner's evaluation from its episodes' primitive steps to the goal (0: not reached), fewest
    possible primitive steps, decisions taken and whether each was stopped in a loop."""
    success = finished_at > 0
    mean_over_successes = lambda x: float(x[success].mean()) if success.any() else None  # noqa: E731
    return {"success": float(success.mean()), "spl": float(success_weighted_path_length(finished_at, optimal).mean()),
            "decisions": mean_over_successes(decisions), "primitive_steps": mean_over_successes(finished_at),
            "optimal_steps": mean_over_successes(optimal), "looping": float(looping.mean())}
