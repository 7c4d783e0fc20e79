"""Intervals across runs (bench.runs): a point's latency timed in several processes, summarised so
that the interval describes what the next run would read, not only the noise inside one process.

Each run's shape keeps its per-request samples; the pooled median's interval comes from a
two-level bootstrap (draw runs with replacement, then requests inside each drawn run), which widens
with the spread between runs (guidellm PR #1163 found within-run intervals 1.8x too narrow for TPOT
over twelve identical runs). The paired ratio is the geometric mean of the runs' own paired ratios,
bootstrapped the same way (runs, then pairs inside each).
"""
from __future__ import annotations

import numpy as np

from harness.blocks import AcrossRuns, Latency, LatencyScenario, ServingAcrossRuns, ServingLevel, ServingRun
from harness.measure.stats import summarize_groups

UNIT = "runs, then requests inside each"


def _shape(sc: LatencyScenario) -> tuple[int, int, int]:
    return sc.prompt_tokens, sc.batch_size, sc.new_tokens


def _run_ratio(v: np.ndarray, b: np.ndarray) -> float:
    return float(np.median(v) / np.median(b))


def _paired_ratio(runs: list[LatencyScenario], resamples: int, level: float,
                  seed: int) -> tuple[float, float, float, list[float]] | None:
    """The geometric mean of the runs' paired ratios (each run's drift cancels inside its pairs, so
    runs at different speeds are not mixed), with a two-level bootstrap: runs, then pairs in each."""
    pairs = []
    for sc in runs:
        if sc.paired is None:
            return None
        v, b = np.asarray(sc.tpot_ms.samples), np.asarray(sc.paired.baseline_tpot_ms.samples)
        n = min(len(v), len(b))  # interleaved slot by slot: the i-th of each is a pair
        pairs.append((v[:n], b[:n]))
    rng = np.random.default_rng(seed)
    boot = np.empty(resamples)
    for k, pick in enumerate(rng.integers(0, len(pairs), size=(resamples, len(pairs)))):
        logs = []
        for v, b in (pairs[i] for i in pick):
            i = rng.integers(0, len(v), len(v))
            logs.append(np.log(_run_ratio(v[i], b[i])))
        boot[k] = np.exp(np.mean(logs))
    per_run = [_run_ratio(v, b) for v, b in pairs]
    alpha = (1 - level) / 2
    return (float(np.exp(np.mean(np.log(per_run)))), float(np.quantile(boot, alpha)),
            float(np.quantile(boot, 1 - alpha)), per_run)


def across(runs: list[LatencyScenario], resamples: int, level: float, seed: int) -> AcrossRuns:
    """One shape's runs (run 1 first) summarised together."""
    def pooled(name: str):
        groups = [getattr(sc, name).samples for sc in runs if getattr(sc, name) is not None]
        return summarize_groups(groups, resamples, level, seed, UNIT, within=True) if groups else None

    ttft, tpot, e2e, itl = pooled("ttft_ms"), pooled("tpot_ms"), pooled("e2e_ms"), pooled("itl_ms")
    tokens = runs[0].batch_size * runs[0].new_tokens
    first = runs[0].tpot_ms
    width = first.ci_high - first.ci_low
    paired = _paired_ratio(runs, resamples, level, seed)
    return AcrossRuns(
        runs=len(runs), run_requests=[len(sc.tpot_ms.samples) for sc in runs],
        run_tpot_ms=[sc.tpot_ms.median for sc in runs], ttft_ms=ttft, tpot_ms=tpot, e2e_ms=e2e, itl_ms=itl,
        output_tokens_per_s=tokens * 1000 / e2e.median, output_tokens_per_s_ci_low=tokens * 1000 / e2e.ci_high,
        output_tokens_per_s_ci_high=tokens * 1000 / e2e.ci_low,
        tpot_width_ratio=(tpot.ci_high - tpot.ci_low) / width if width > 0 else None,
        paired_tpot_ratio=paired[0] if paired else None, paired_tpot_ci_low=paired[1] if paired else None,
        paired_tpot_ci_high=paired[2] if paired else None, run_tpot_ratios=paired[3] if paired else [],
        baseline_tpot_ms_samples=[x for sc in runs if sc.paired for x in sc.paired.baseline_tpot_ms.samples])


def add_runs(first: Latency, others: list[Latency], resamples: int, level: float, seed: int) -> Latency:
    """``first`` (the point's own run) with each ok shape's ``across_runs`` from all runs; a shape
    that did not run ok in every run keeps its within-run figures only."""
    for sc in first.scenarios:
        same = [next((o for o in other.scenarios if _shape(o) == _shape(sc)), None) for other in others]
        if sc.status == "ok" and sc.tpot_ms and all(o is not None and o.status == "ok" and o.tpot_ms for o in same):
            sc.across_runs = across([sc, *same], resamples, level, seed)
    return first


def _width(stats) -> float | None:
    return stats.ci_high - stats.ci_low if stats is not None else None


def serving_across(levels: list[ServingLevel], restarted: bool, resamples: int, level: float,
                   seed: int) -> ServingAcrossRuns | None:
    """A serving level's runs (run 1 first) summarised together; None unless every run completed requests."""
    if len(levels) < 2 or any(not lv.completed or lv.output_token_throughput is None for lv in levels):
        return None
    done = [[r for r in lv.requests if r.ok] for lv in levels]
    ttft = summarize_groups([[r.ttft_ms for r in d] for d in done], resamples, level, seed, UNIT, within=True)
    tpots = [[r.tpot_ms for r in d if r.tpot_ms is not None] for d in done]
    tpot = summarize_groups(tpots, resamples, level, seed, UNIT, within=True) if all(tpots) else None
    tput = np.asarray([lv.output_token_throughput for lv in levels])
    picks = np.random.default_rng(seed).integers(0, len(tput), size=(resamples, len(tput)))
    boot = np.median(tput[picks], axis=1)
    alpha = (1 - level) / 2
    first = levels[0]

    def ratio(across, within) -> float | None:
        a, w = _width(across), _width(within)
        return a / w if a is not None and w else None

    return ServingAcrossRuns(
        runs=len(levels), server_restarted=restarted, run_output_token_throughput=[float(x) for x in tput],
        output_token_throughput=float(np.median(tput)), output_token_throughput_ci_low=float(np.quantile(boot, alpha)),
        output_token_throughput_ci_high=float(np.quantile(boot, 1 - alpha)), ttft_ms=ttft, tpot_ms=tpot,
        ttft_width_ratio=ratio(ttft, first.ttft_ms), tpot_width_ratio=ratio(tpot, first.tpot_ms),
        others=[ServingRun(duration_s=lv.duration_s, completed=lv.completed,
                           output_token_throughput=lv.output_token_throughput, ttft_ms=lv.ttft_ms, tpot_ms=lv.tpot_ms,
                           requests=lv.requests) for lv in levels[1:]])
