"""Summary statistics of raw samples: median with a bootstrap interval, tails, spread.

The interval resamples the independent units it is given (``unit`` names them): values that
are one per request, or, with ``summarize_groups``, whole groups of correlated values (the
inter-token intervals of one request), never the correlated values one by one.
"""
from __future__ import annotations


import numpy as np
from scipy.stats import bootstrap

from harness.blocks import Stats

PERCENTILE_METHOD = "linear interpolation between order statistics (numpy.percentile's default)"
CI_LEVEL = 0.95  # every latency and serving interval's level, unless a config sets its own


def _stats(x: np.ndarray, ci: tuple[float, float], level: float, unit: str) -> Stats:
    mean = float(x.mean())
    stdev = float(x.std(ddof=1)) if x.size > 1 else 0.0
    return Stats(
        n=int(x.size), median=float(np.median(x)), p90=float(np.percentile(x, 90)),
        p99=float(np.percentile(x, 99)), mean=mean, stdev=stdev, cv=stdev / mean if mean else float("nan"),
        ci_low=float(ci[0]), ci_high=float(ci[1]), ci_level=level, ci_resamples=unit, samples=[float(v) for v in x],
        percentile_method=PERCENTILE_METHOD,
    )


def summarize(samples: list[float], resamples: int = 2000, level: float = CI_LEVEL, seed: int = 0,
              unit: str = "samples") -> Stats:
    """Samples that are independent units (e.g. one value per request): the median's percentile
    interval from scipy's bootstrap."""
    x = np.asarray(samples, dtype=float)
    if x.size == 0:
        raise ValueError("no samples to summarize")
    if x.size == 1 or np.ptp(x) == 0:  # nothing to resample: the interval is the value
        return _stats(x, (float(x[0]), float(x[0])), level, unit)
    ci = bootstrap((x,), np.median, n_resamples=resamples, confidence_level=level, method="percentile",
                   vectorized=True, rng=np.random.default_rng(seed)).confidence_interval
    return _stats(x, (ci.low, ci.high), level, unit)


def summarize_groups(groups: list[list[float]], resamples: int = 2000, level: float = CI_LEVEL, seed: int = 0,
                     unit: str = "groups", within: bool = False) -> Stats:
    """Pooled values of correlated groups: percentiles over all values, the median's interval
    from a cluster bootstrap that resamples whole groups. ``within=True`` also resamples the
    values inside each drawn group (a two-level bootstrap: rounds, then requests in a round),
    for values that are independent inside a group but share the group's level."""
    groups = [np.asarray(g, dtype=float) for g in groups if len(g)]
    if not groups:
        raise ValueError("no samples to summarize")
    x = np.concatenate(groups)
    rng = np.random.default_rng(seed)
    medians = np.empty(resamples)
    for k, pick in enumerate(rng.integers(0, len(groups), size=(resamples, len(groups)))):
        drawn = [groups[i] for i in pick]
        if within:
            drawn = [g[rng.integers(0, len(g), len(g))] for g in drawn]
        medians[k] = np.median(np.concatenate(drawn))
    alpha = (1 - level) / 2  # a cluster bootstrap, which scipy's bootstrap does not do
    return _stats(x, (np.quantile(medians, alpha), np.quantile(medians, 1 - alpha)), level, f"{unit} ({len(groups)})")
