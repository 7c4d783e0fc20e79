"""Summary statistics of raw timing samples: median with a bootstrap interval, tails, spread."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class SampleStats:
    n: int
    median: float
    p90: float
    p99: float
    mean: float
    stdev: float
    cv: float  # stdev / mean
    ci_low: float  # bootstrap confidence interval of the median
    ci_high: float
    ci_level: float
    samples: list[float]  # raw, in measurement order, so a report can recompute everything

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(samples: list[float], resamples: int = 2000, level: float = 0.95, seed: int = 0) -> SampleStats:
    x = np.asarray(samples, dtype=float)
    if x.size == 0:
        raise ValueError("no samples to summarize")
    rng = np.random.default_rng(seed)
    medians = np.median(rng.choice(x, size=(resamples, x.size), replace=True), axis=1)
    alpha = (1 - level) / 2
    mean = float(x.mean())
    stdev = float(x.std(ddof=1)) if x.size > 1 else 0.0
    return SampleStats(
        n=int(x.size), median=float(np.median(x)), p90=float(np.percentile(x, 90)),
        p99=float(np.percentile(x, 99)), mean=mean, stdev=stdev, cv=stdev / mean if mean else float("nan"),
        ci_low=float(np.quantile(medians, alpha)), ci_high=float(np.quantile(medians, 1 - alpha)),
        ci_level=level, samples=[float(v) for v in x],
    )
