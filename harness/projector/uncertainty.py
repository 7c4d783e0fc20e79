"""Monte Carlo over the projection's uncertain inputs: bands for the gap, t*, closing times, lag.

Each uncertain growth rate (and the inference price decline g_cost) is drawn so that its median
is the scenario's point value and its interval's ends are the interval's quantiles: a two-piece
lognormal, log x = log point + z sigma_low (z < 0) or z sigma_high (z >= 0) with z standard
normal (rates are multiplicative, so their logarithms are taken as normal; the two halves match
an asymmetric published interval such as Ho et al.'s 5-14 months around 8). The point value and
the band thus describe one scenario; a point outside its interval is refused. The law is sampled
from its draws when it has any (a measured law's bootstrap refits, a published fit's joint
covariance). Samples are joint: one draw of every input per sample. A tornado analysis moves one
input at a time to the 5% and 95% quantiles of its draws (the bands' own level), holding the rest
at their point values, to name the input that moves t* most.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

import numpy as np
from scipy.stats import norm

from harness.projector import gap as G
from harness.projector.fit import quantile_ends
from harness.projector.laws import Chinchilla, ComputeLaw

GROWTH_INPUTS = ("g_i", "g_h", "g_alg")
INPUTS = (*GROWTH_INPUTS, "g_cost")  # g_cost moves the inference gap only
BAND = (0.05, 0.95)


@dataclass(frozen=True)
class Range:
    low: float
    high: float
    level: float
    source: str

    def log_sigmas(self, name: str, point: float) -> tuple[float, float]:
        """(sigma_low, sigma_high) of the two-piece lognormal with median ``point`` whose central
        ``level`` interval is [low, high]; ValueError unless low < point < high (or all three equal:
        a fixed value), because a median cannot sit at or beyond its interval's end."""
        if not (0 < self.low <= self.high) or not 0 < self.level < 1:
            raise ValueError(f"uncertainty.{name}: range [{self.low}, {self.high}] at level {self.level}: need "
                             "0 < low <= high and 0 < level < 1")
        if self.low == self.high == point:
            return 0.0, 0.0
        if not self.low < point < self.high:
            raise ValueError(f"uncertainty.{name}=[{self.low:g}, {self.high:g}] ({self.level:.0%}) does not hold its "
                             f"point value {point:g} strictly inside: the point is the draws' median, so it must lie "
                             "between the interval's ends; move the point value or the interval")
        z = norm.ppf(0.5 + self.level / 2)
        return math.log(point / self.low) / z, math.log(self.high / point) / z

    def quantile(self, name: str, point: float, q: float) -> float:
        """The value below which a share ``q`` of the draws lie."""
        lo, hi = self.log_sigmas(name, point)
        z = float(norm.ppf(q))
        return point * math.exp(z * (lo if z < 0 else hi))


@dataclass
class Draw:
    law: ComputeLaw
    growth: G.Growth
    g_cost: float
    allocation: Chinchilla | None = None  # the law draw's own N-D split, where the law has one


@dataclass
class MonteCarlo:
    draws: list[Draw] = field(default_factory=list)
    attempted: int = 0
    rejected: int = 0  # growth draws for which the gap has no peak (g_i <= 1 or g_h g_alg <= 1)


def sample(law: ComputeLaw, growth: G.Growth, ranges: Mapping[str, Range], law_draws: list[ComputeLaw] | None,
           n: int, seed: int, g_cost: float, allocation_draws: list[Chinchilla] | None = None) -> MonteCarlo:
    """``allocation_draws``, where given, pairs with ``law_draws``: a sample takes a law draw and
    its own N-D allocation together."""
    unknown = set(ranges) - set(INPUTS)
    if unknown:
        raise ValueError(f"projector.uncertainty has {sorted(unknown)}; valid: {', '.join(INPUTS)}")
    rng = np.random.default_rng(seed)
    points = {name: getattr(growth, name) for name in GROWTH_INPUTS} | {"g_cost": g_cost}
    values = {name: np.full(n, v) for name, v in points.items()}
    for name, r in ranges.items():
        lo, hi = r.log_sigmas(name, points[name])
        z = rng.standard_normal(n)
        values[name] = points[name] * np.exp(z * np.where(z < 0, lo, hi))
    if allocation_draws and len(allocation_draws) != len(law_draws or []):
        raise ValueError(f"{len(allocation_draws)} allocation draws for {len(law_draws or [])} law draws: they pair")
    picks = rng.integers(0, len(law_draws), n) if law_draws else None
    laws = [law_draws[i] for i in picks] if law_draws else [law] * n
    allocations = [allocation_draws[i] for i in picks] if allocation_draws else [None] * n
    mc = MonteCarlo(attempted=n)
    for i in range(n):
        try:
            g = G.Growth(*(float(values[name][i]) for name in GROWTH_INPUTS))
        except ValueError:
            mc.rejected += 1
            continue
        mc.draws.append(Draw(laws[i], g, float(values["g_cost"][i]), allocations[i]))
    return mc


def _band(values: list[float | None]) -> dict[str, Any]:
    """Median and 5-95% band over the draws. A draw that never gets there (None: a closing time
    beyond the search window) counts at infinity, so an end it covers is None (unbounded) rather
    than the draws that did get there standing in for all of them."""
    v = np.array([math.inf if x is None or not math.isfinite(x) else x for x in values], dtype=float)
    out: dict[str, Any] = {"samples": len(values), "not_reached": int(np.isinf(v).sum())}
    if out["not_reached"] < v.size:
        low, high = quantile_ends(v, BAND[1] - BAND[0])
        out |= {"median": _finite(float(np.median(v))), "low": _finite(low), "high": _finite(high),
                "level": BAND[1] - BAND[0]}
    return out


def _closing_band(mc: MonteCarlo, c0: float, level: float, start_ratio: float) -> dict[str, Any]:
    """A closing time's band over the draws whose gap exceeds the level at all. A draw whose gap
    never exceeds it has nothing to close: it is counted (``never_exceeded``) and kept out of the
    quantiles, where a 0.0 would pull the band's low end to the start."""
    times = [G.closing_time(d.law, c0, d.growth, level, start_ratio) for d in mc.draws]
    kept = [x for x in times if x != 0.0]  # 0.0 only where the peak is at or below the level
    out = _band(kept) if kept else {"samples": 0, "not_reached": 0}
    return out | {"never_exceeded": len(times) - len(kept), "draws": len(times)}


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _curve_band(curves: np.ndarray) -> dict[str, Any]:
    return {"level": BAND[1] - BAND[0], "low": np.quantile(curves, BAND[0], axis=0).tolist(),
            "median": np.median(curves, axis=0).tolist(), "high": np.quantile(curves, BAND[1], axis=0).tolist()}


def summarise(mc: MonteCarlo, c0: float, t: np.ndarray, start_ratio: float, levels: list[float],
              horizon: float, inference_gap: Callable[[Draw], np.ndarray] | None = None) -> dict[str, Any]:
    """Bands (5-95%) over the draws for the gap curve, t*, each closing time, and the lag and the
    ratio of reducible losses at the horizon; and for the inference gap's curve when given."""
    if not mc.draws:
        raise ValueError(f"no valid Monte Carlo draws out of {mc.attempted}")
    gaps = np.array([G.loss_gap(d.law, c0, d.growth, t, start_ratio) for d in mc.draws])
    extra = {"inference_gap_band": _curve_band(np.array([inference_gap(d) for d in mc.draws]))} \
        if inference_gap else {}
    return extra | {
        "draws": {"attempted": mc.attempted, "kept": len(mc.draws), "rejected_no_peak": mc.rejected},
        "loss_gap_band": _curve_band(gaps),
        "t_star_years": _band([G.peak_time_closed_form(d.law.alpha, d.growth, start_ratio) for d in mc.draws]),
        "closing_years": {str(level): _closing_band(mc, c0, level, start_ratio) for level in levels},
        "peak_gap_nats": _band([float(G.loss_gap(d.law, c0, d.growth,
                                                 max(G.peak_time_closed_form(d.law.alpha, d.growth, start_ratio), 0.0),
                                                 start_ratio)) for d in mc.draws]),
        "lag_years_at_horizon": _band([float(G.lag_years(d.growth, horizon, start_ratio)) for d in mc.draws]),
        "reducible_loss_ratio_at_horizon": _band([float(G.reducible_loss_ratio(d.law, d.growth, horizon,
                                                                                  start_ratio)) for d in mc.draws]),
    }


def tornado(law: ComputeLaw, growth: G.Growth, ranges: Mapping[str, Range], law_alpha_range: tuple[float, float] | None,
            start_ratio: float) -> list[dict[str, Any]]:
    """t* with one input at the 5% and at the 95% quantile of its draws (the others at their point
    values; ``law_alpha_range``: those quantiles of the law's draws), widest swing first; g_cost is
    left out (it moves the inference gap, not t*)."""
    def t_star(lw: ComputeLaw = law, g: G.Growth = growth) -> float:
        return G.peak_time_closed_form(lw.alpha, g, start_ratio)

    rows = []
    moves: dict[str, Callable[[float], float]] = {
        name: (lambda v, name=name: t_star(g=replace(growth, **{name: v}))) for name in ranges if name in GROWTH_INPUTS}
    ends = {name: (r.quantile(name, getattr(growth, name), BAND[0]), r.quantile(name, getattr(growth, name), BAND[1]))
            for name, r in ranges.items() if name in GROWTH_INPUTS}
    if law_alpha_range:
        moves["law.alpha"] = lambda v: t_star(lw=replace(law, alpha=v))
        ends["law.alpha"] = law_alpha_range
    for name, move in moves.items():
        lo, hi = ends[name]
        try:
            a, b = move(lo), move(hi)
        except ValueError:  # an end where the gap has no peak
            continue
        rows.append({"input": name, "low_value": lo, "high_value": hi, "t_star_at_low": a, "t_star_at_high": b,
                     "swing_years": abs(b - a)})
    return sorted(rows, key=lambda r: -r["swing_years"])
