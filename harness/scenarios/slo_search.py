"""Which levels a serving sweep measures: the listed ones (``FixedLevels``), or those an SLO search picks
(``SloSearch``: guidellm's sweep and vLLM's ``serve_sla`` find the highest load that meets an SLO by
doubling, then bisecting). Pure logic over records: harness/scenarios/serving.py measures each level the
planner asks for (or reuses its ok record) and hands the record back.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from harness.config.serving import SloPreset
from harness.measure.stats import CI_LEVEL
from harness.results import schema as S

PERCENTILE_METHOD = "higher"  # the sample at or above the rank, as the report's judge (failed requests are infinite)


class FixedLevels:
    """scenario.levels in order; a level that fails ends the sweep when scenario.on_failure=stop."""

    def __init__(self, levels: list[float], stop_on_failure: bool):
        self.levels, self.stop_on_failure, self.i = list(levels), stop_on_failure, 0

    def first(self) -> float | None:
        return self.levels[0] if self.levels else None

    def next(self, record: S.ServingRecord) -> float | None:
        self.i += 1
        if record.status != "ok" and self.stop_on_failure:
            return None
        return self.levels[self.i] if self.i < len(self.levels) else None


@dataclass
class Step:
    level: float
    run_id: str
    verdict: str  # meets | misses | undecided
    p_ttft_ms: float | None
    p_ttft_ci: tuple[float, float] | None
    p_tpot_ms: float | None
    p_tpot_ci: tuple[float, float] | None
    output_token_throughput: float | None
    why: str


def _percentile_ci(values: list[float], q: float, resamples: int, seed: int) -> tuple[float, tuple[float, float]]:
    x = np.asarray(values, dtype=float)
    idx = np.random.default_rng(seed).integers(0, len(x), size=(resamples, len(x)))
    boot = np.sort(np.percentile(x[idx], q, axis=1, method=PERCENTILE_METHOD))
    a = (1 - CI_LEVEL) / 2  # the interval's ends as order statistics of the resamples (inf-safe)
    ends = boot[int(np.floor(a * (resamples - 1)))], boot[int(np.ceil((1 - a) * (resamples - 1)))]
    return float(np.percentile(x, q, method=PERCENTILE_METHOD)), (float(ends[0]), float(ends[1]))


def judge(record: S.ServingRecord, slo: SloPreset, resamples: int = 2000, seed: int = 0) -> Step:
    """One level against the SLO, on its percentile's interval (requests resampled; failed ones count as
    infinitely slow, so a level cannot meet a percentile by dropping requests)."""
    s = record.serving
    reqs = s.requests if s else []
    if record.status != "ok" or not reqs:
        return Step(s.level if s else float("nan"), record.run_id, "misses", None, None, None, None, None,
                    f"the level is {record.status}: {record.error}")
    inf = float("inf")
    ttft = [r.ttft_ms if r.ok else inf for r in reqs]
    tpot = [(r.tpot_ms if r.tpot_ms is not None else 0.0) if r.ok else inf for r in reqs]
    p_ttft, ci_ttft = _percentile_ci(ttft, slo.percentile, resamples, seed)
    p_tpot, ci_tpot = _percentile_ci(tpot, slo.percentile, resamples, seed)
    q = f"p{slo.percentile:g}"
    if ci_ttft[1] <= slo.ttft_ms and ci_tpot[1] <= slo.tpot_ms:
        verdict, why = "meets", f"{q} TTFT and TPOT within the limits with 95% confidence"
    elif p_ttft > slo.ttft_ms or p_tpot > slo.tpot_ms:
        over = [f"{q} {name} {v:.0f} ms > {lim:g}" for name, v, lim in
                (("TTFT", p_ttft, slo.ttft_ms), ("TPOT", p_tpot, slo.tpot_ms)) if v > lim]
        verdict, why = "misses", "; ".join(over)
    else:
        verdict, why = "undecided", f"{q}'s 95% interval straddles a limit (counted as not meeting)"
    show = lambda v: v if math.isfinite(v) else None  # noqa: E731
    return Step(s.level, record.run_id, verdict, show(p_ttft), ci_ttft if math.isfinite(ci_ttft[1]) else None,
                show(p_tpot), ci_tpot if math.isfinite(ci_tpot[1]) else None, s.output_token_throughput, why)


@dataclass
class SloSearch:
    """Doubling from ``start`` while levels meet (up to ``max_level``), then bisection between the highest
    level that met and the lowest that did not, until the bracket is one client (closed loop) or within a
    ratio of 1 + ``resolution`` (open loop), or ``max_steps`` levels were measured."""
    slo_name: str
    slo: SloPreset
    start: float
    max_level: float
    max_steps: int
    resolution: float
    whole: bool  # levels are clients (closed loop): whole numbers
    resamples: int = 2000
    seed: int = 0
    steps: list[Step] = field(default_factory=list)
    stop_reason: str = ""

    def first(self) -> float:
        return self.start

    def _met(self) -> list[float]:
        return [s.level for s in self.steps if s.verdict == "meets"]

    def _not_met(self) -> list[float]:
        return [s.level for s in self.steps if s.verdict != "meets"]

    def next(self, record: S.ServingRecord) -> float | None:
        self.steps.append(judge(record, self.slo, self.resamples, self.seed))
        met, not_met = self._met(), self._not_met()
        lo, hi = max(met, default=None), min((x for x in not_met if x > max(met, default=0)), default=None)
        if len(self.steps) >= self.max_steps:
            return self._stop(f"scenario.search.max_steps={self.max_steps} levels measured")
        if hi is None:  # every level so far met: double
            if lo >= self.max_level:
                return self._stop(f"scenario.search.max_level={self.max_level:g} met")
            return min(lo * 2, self.max_level)
        if lo is None:  # the lowest level tried already misses: halve towards the smallest load
            smallest = 1.0 if self.whole else 0.0
            if hi <= smallest or (not self.whole and hi < self.start * 2 ** -6):
                return self._stop("the smallest load tried does not meet the SLO")
            return max(math.floor(hi / 2), 1) if self.whole else hi / 2
        if (self.whole and hi - lo <= 1) or (not self.whole and hi / lo <= 1 + self.resolution):
            return self._stop("bracketed to scenario.search.resolution")
        return math.floor((lo + hi) / 2) if self.whole else math.sqrt(lo * hi)  # rates bisect geometrically

    def _stop(self, why: str) -> None:
        self.stop_reason = why
        return None

    def operating_point(self) -> Step | None:
        """The highest level that met the SLO."""
        met = [s for s in self.steps if s.verdict == "meets"]
        return max(met, key=lambda s: s.level) if met else None

    def summary(self) -> dict[str, Any]:
        op = self.operating_point()
        return {"slo": {"name": self.slo_name, **asdict(self.slo)}, "ci_level": CI_LEVEL,
                "percentile_method": f"numpy.percentile method={PERCENTILE_METHOD!r}, as the report's judge",
                "method": "doubling from the first level while it meets, then bisection (arithmetic for clients, "
                          "geometric for rates) between the highest level that met and the lowest that did not",
                "steps": [asdict(s) for s in self.steps], "stop_reason": self.stop_reason,
                "operating_point": asdict(op) if op else None}
