"""The scaling-gap model of Gundlach, Lynch & Thompson (arXiv:2507.07931), as in DESIGN.md.

A meek actor's effective compute grows with hardware price-performance and algorithms,
C0 (g_h g_alg)^t; the frontier's also with investment, C0 (g_h g_alg g_i)^t. Through
L(C) = L0 + A C^-alpha the training-loss gap grows, peaks at t* and then closes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq, minimize_scalar

from harness.projector.laws import ComputeLaw


@dataclass(frozen=True)
class Growth:
    g_i: float = 3.57  # frontier investment per year
    g_h: float = 1.4  # hardware price-performance per year
    g_alg: float = 2.8  # algorithmic efficiency per year

    def __post_init__(self):
        for name in ("g_i", "g_h", "g_alg"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"growth.{name}={v!r}: must be a finite rate > 0 (x per year)")
        if self.g_i <= 1 or self.g_h * self.g_alg <= 1:
            raise ValueError(f"growth rates g_i={self.g_i}, g_h*g_alg={self.g_h * self.g_alg}: both must exceed 1 "
                             "for the gap to have a peak")


def meek_compute(c0: float, growth: Growth, t):
    return c0 * np.power(growth.g_h * growth.g_alg, t)


def frontier_compute(c0: float, growth: Growth, t, start_ratio: float = 1.0):
    """``start_ratio``: the frontier's compute over the meek actor's at t = 0 (the paper: 1)."""
    return start_ratio * c0 * np.power(growth.g_h * growth.g_alg * growth.g_i, t)


def loss_gap(law: ComputeLaw, c0: float, growth: Growth, t, start_ratio: float = 1.0):
    """dL(t) = A C0^-alpha ((g_alg g_h)^(-alpha t) - r^-alpha (g_alg g_h g_i)^(-alpha t)), r = start_ratio."""
    # the reducible terms' difference, not L(meek) - L(frontier): both tend to L0, and their
    # difference would lose every digit below 1e-16 of L0; compute beyond float range gives a 0 term
    with np.errstate(over="ignore"):
        meek, frontier = meek_compute(c0, growth, t), frontier_compute(c0, growth, t, start_ratio)
        return law.A * (np.power(meek, -law.alpha) - np.power(frontier, -law.alpha))


def peak_time_closed_form(alpha: float, growth: Growth, start_ratio: float = 1.0) -> float:
    """t* = (ln(ln(g_h g_alg g_i) / ln(g_h g_alg)) - alpha ln r) / (alpha ln g_i): independent of C0
    and A; with r = 1 (equal start) the paper's ln(ln(g_h g_alg g_i) / ln(g_h g_alg)) / (alpha ln g_i).
    Negative when the gap only shrinks from the start."""
    hm = math.log(growth.g_h * growth.g_alg)
    ratio = math.log(math.log(growth.g_h * growth.g_alg * growth.g_i) / hm)
    return (ratio - alpha * math.log(start_ratio)) / (alpha * math.log(growth.g_i))


def peak_time_numerical(law: ComputeLaw, c0: float, growth: Growth, horizon: float = 50.0,
                        start_ratio: float = 1.0) -> float | None:
    """The argmax of the gap over [0, horizon]; None when it lies at the window's edge (the peak is
    beyond the window, or before its start), rather than the edge posing as a peak."""
    res = minimize_scalar(lambda t: -loss_gap(law, c0, growth, t, start_ratio), bounds=(0.0, horizon),
                          method="bounded", options={"xatol": 1e-9})
    t = float(res.x)
    return None if t > horizon - 1e-5 or t < 1e-5 else t


def closing_time(law: ComputeLaw, c0: float, growth: Growth, level: float, start_ratio: float = 1.0,
                 window: float = 200.0) -> float | None:
    """The first time after the peak at which the gap falls below ``level`` nats; 0.0 when even
    the peak is at or below it (the gap never exceeds the level: nothing to close); None if not
    within ``window`` years (the gap never reaches zero, so a level near 0 may take ages)."""
    t_peak = max(0.0, peak_time_closed_form(law.alpha, growth, start_ratio))
    gap = lambda t: float(loss_gap(law, c0, growth, t, start_ratio)) - level  # noqa: E731
    if gap(t_peak) <= 0:
        return 0.0
    if gap(window) > 0:
        return None
    return float(brentq(gap, t_peak, window, xtol=1e-10))


def lag_years(growth: Growth, t, start_ratio: float = 1.0):
    """How many years behind the frontier the meek actor is at t: it reaches the frontier's loss of
    year t - lag, where (g_h g_alg)^t = r (g_h g_alg g_i)^(t - lag), so
    lag = (t ln g_i + ln r) / ln(g_h g_alg g_i)."""
    return (np.asarray(t, float) * math.log(growth.g_i) + math.log(start_ratio)) / \
        math.log(growth.g_h * growth.g_alg * growth.g_i)


def reducible_loss_ratio(law: ComputeLaw, growth: Growth, t, start_ratio: float = 1.0):
    """(meek loss - L0) / (frontier loss - L0) = (r g_i^t)^alpha: how many times more reducible loss."""
    return np.power(start_ratio * np.power(growth.g_i, np.asarray(t, float)), law.alpha)


def wald_tokens(loss_gap_nats, error_rate: float = 0.05):
    """Tokens Wald's sequential test needs to tell two models apart at error rate e (per direction)."""
    e = error_rate
    if not 0 < e < 0.5:
        raise ValueError(f"error_rate={e}: must be in (0, 0.5)")
    num = (1 - e) * math.log((1 - e) / e) + e * math.log(e / (1 - e))
    gap = np.asarray(loss_gap_nats, dtype=float)
    with np.errstate(divide="ignore"):
        return np.where(gap > 0, num / gap, np.inf)


def p_step_success(accuracy, p: int):
    """A task that needs p correct steps in a row succeeds with probability acc^p."""
    if p < 1:
        raise ValueError(f"p={p}: a task has at least one step")
    return np.power(np.asarray(accuracy, dtype=float), p)
