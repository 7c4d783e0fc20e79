"""Serving records judged at service-level objectives, from the records alone (the report and the
projector read them here; changing an SLO or a price re-measures nothing).

For each level, from its raw requests:
- ``meets_slo``: the SLO percentile (MLPerf: p99) of TTFT and of TPOT over completed requests are
  within the objectives, and no request failed for the target's sake (a request that errs cannot
  meet an objective, so it counts against the percentile as an infinitely slow one);
- goodput: requests per second that completed *and* met every objective (vLLM's definition), and
  the SLO attainment, their share of all requests sent.

A curve is one target (model x engine x variant on one machine) across the levels of one scenario.
Its *operating point* is the highest level that meets the SLOs, and what a deployment pays per
million output tokens there is its price per hour over the output tokens per hour it served. The
*knee* is where the target saturates: the first level whose achieved request throughput falls
below 90% of the rate its requests were actually sent at (server; the sent rate of a finite Poisson
sample differs from the nominal one), or, for closed loops, whose throughput grows less than
10% over the level before.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from harness.results import schema as S
from harness.results.comparison import Judging, price_of
from harness.results.store import engine_serving_only_keys

SATURATED = 0.9  # achieved / offered request rate below this: the server no longer keeps up
FLAT = 1.1  # closed loop: throughput grows less than this factor over the level before


@dataclass
class LevelVerdict:
    record: S.ServingRecord
    level: float
    sent: int
    completed: int
    ttft_at_percentile_ms: float | None
    tpot_at_percentile_ms: float | None
    meets_slo: bool
    goodput_rps: float | None  # completed requests that met every objective, per second
    slo_attainment: float  # their share of the requests sent
    output_token_throughput: float | None
    request_throughput: float | None
    cost_per_m_output_tokens: float | None  # at this level's throughput, when the record is priced
    runs: int = 1  # > 1: throughput and cost are the median over the level's runs (scenario.runs)
    throughput_ci: tuple[float, float] | None = None  # across runs, resampling runs


@dataclass
class Curve:
    key: tuple[str, ...]  # hardware label, model, engine, variant, scenario kind, what served it
    label: str
    kind: str
    levels: list[LevelVerdict] = field(default_factory=list)
    operating: LevelVerdict | None = None  # the highest level meeting the SLOs
    knee: LevelVerdict | None = None  # the first saturated level
    fidelity: S.ServedFidelity | None = None  # the served model against the fp32 reference (its first level's)


def _percentile(values: list[float], q: float) -> float | None:
    """The sample at or above the q-th percentile's rank (no interpolation: failed requests are infinite)."""
    return float(np.percentile(values, q, method="higher")) if values else None


def _tpot(r: S.ServedRequest) -> float:
    return (r.e2e_ms - r.ttft_ms) / (r.output_tokens - 1)


def judge_level(record: S.ServingRecord, judging: Judging) -> LevelVerdict:
    s = record.serving
    q = judging.slo_percentile
    requests = s.requests if s else []
    done = [r for r in requests if r.error is None]
    inf = float("inf")
    # failed requests sit at infinity: a level that drops requests cannot meet a percentile by dropping them
    ttfts = [r.ttft_ms for r in done] + [inf] * (len(requests) - len(done))
    tpots = [_tpot(r) for r in done] + [inf] * (len(requests) - len(done))
    good = [r for r in done if r.ttft_ms <= judging.slo_ttft_ms and _tpot(r) <= judging.slo_tpot_ms]
    p_ttft, p_tpot = _percentile(ttfts, q), _percentile(tpots, q)
    meets = bool(requests) and record.status == "ok" and p_ttft <= judging.slo_ttft_ms and p_tpot <= judging.slo_tpot_ms
    price = price_of(record, judging.prices)
    runs = s.across_runs if s else None  # several runs: what the next run would read, not run 1 alone
    tput = runs.output_token_throughput if runs else s.output_token_throughput if s else None
    return LevelVerdict(record, s.level if s else float("nan"), len(requests), len(done),
                        p_ttft if p_ttft != inf else None, p_tpot if p_tpot != inf else None, meets,
                        len(good) / s.duration_s if s and s.duration_s else None,
                        len(good) / len(requests) if requests else 0.0, tput, s.request_throughput if s else None,
                        price / (tput * 3600) * 1e6 if price and tput else None, runs.runs if runs else 1,
                        (runs.output_token_throughput_ci_low, runs.output_token_throughput_ci_high) if runs else None)


def _engine(record: S.ServingRecord) -> str:
    return record.engine.name if record.engine else (record.target.engine if record.target else "") or ""


def _served_by(record: S.ServingRecord) -> str:
    """What served the level beyond its engine: the started server's settings (the engine's serving-only keys,
    e.g. ``server=llama-server parallel=4``), or the URL of a server given by one."""
    if record.target and not record.target.launched:
        return record.target.url
    engine = (record.config or {}).get("engine") or {}
    keys = [k.removeprefix("engine.") for k in engine_serving_only_keys(record.config or {})]
    return " ".join(f"{k}={engine[k]}" for k in keys if k in engine)


def curves(records: list[S.ServingRecord], judging: Judging) -> list[Curve]:
    """One curve per target and scenario, levels in increasing order, with its operating point and knee."""
    grouped: dict[tuple[str, ...], list[S.ServingRecord]] = {}
    for r in records:
        if r.serving is None:
            continue
        key = (r.hardware.label, r.model.name, _engine(r), r.variant.name, r.serving.kind, _served_by(r))
        grouped.setdefault(key, []).append(r)
    out = []
    for key, recs in sorted(grouped.items()):
        served = f" {key[5]}" if key[5] else ""
        label = f"{key[1]} · {key[3]} · {key[2]}{served} ({key[4]}, {key[0]})"
        curve = Curve(key, label, key[4], sorted((judge_level(r, judging) for r in recs), key=lambda v: v.level))
        meeting = [v for v in curve.levels if v.meets_slo]
        curve.operating = meeting[-1] if meeting else None
        curve.knee = _knee(curve)
        curve.fidelity = next((v.record.served_fidelity for v in curve.levels if v.record.served_fidelity), None)
        out.append(curve)
    return out


def _knee(curve: Curve) -> LevelVerdict | None:
    previous = None
    for v in curve.levels:
        if v.request_throughput is None:
            return v
        sent = v.record.serving.achieved_send_rate or v.level
        if curve.kind == "server" and v.request_throughput < SATURATED * sent:
            return v
        if curve.kind == "concurrency" and previous and previous.request_throughput \
                and v.request_throughput < FLAT * previous.request_throughput:
            return v
        previous = v
    return None
