"""Aggregate measures over seeds with 95% bootstrap intervals, as Agarwal et al. (2021) define them
(Deep reinforcement learning at the edge of the statistical precipice): the mean, the
interquartile mean (the mean of the middle 50% of the runs, scipy.stats.trim_mean(x, 0.25)) and
the probability of improvement P(X > Y) of one condition over another.

The intervals are scipy.stats.bootstrap's percentile intervals (rliable's default method) with a
fixed generator, so the same records give the same intervals. For the probability of
improvement, the runs of the two conditions are resampled independently of each other (the
stratified bootstrap: the seeds of two conditions are not paired).
"""

import numpy as np
from scipy import stats

RESAMPLES = 2000
CONFIDENCE = 0.95


def interquartile_mean(values, axis=-1):
    return stats.trim_mean(values, 0.25, axis=axis)


def probability_of_improvement(x, y, axis=-1):
    """P(X > Y) + P(X = Y) / 2 over all pairs of a run of x and a run of y (the Mann-Whitney U
    statistic divided by the number of pairs)."""
    x, y = np.moveaxis(np.asarray(x), axis, -1), np.moveaxis(np.asarray(y), axis, -1)
    wins = np.sign(x[..., :, None] - y[..., None, :])
    return (wins.mean((-2, -1)) + 1) / 2


def with_interval(statistic, *samples):
    """(statistic(*samples), low, high): the value and its 95% percentile-bootstrap interval."""
    samples = [np.asarray(s, dtype=float) for s in samples]
    value = float(statistic(*samples))
    if min(len(s) for s in samples) < 2:  # one run: nothing to resample
        return value, value, value
    result = stats.bootstrap(samples, statistic, n_resamples=RESAMPLES, confidence_level=CONFIDENCE,
                             method="percentile", vectorized=True, rng=np.random.default_rng(0))
    low, high = result.confidence_interval
    return value, float(low), float(high)


def summary(values, none_values):
    """Mean, IQM and probability of improvement over `none_values`, each (value, low, high)."""
    return {"mean": with_interval(np.mean, values), "iqm": with_interval(interquartile_mean, values),
            "improvement_over_none": with_interval(probability_of_improvement, values, none_values)}
