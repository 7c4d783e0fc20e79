"""bench.runs: a point timed in several processes, with intervals across runs beside the within-run ones."""
import numpy as np
import pytest

from harness.blocks import LatencyScenario, PairedRatio
from harness.measure.runs import across
from harness.measure.stats import summarize
from harness.results.comparison import Judging, compare_records
from harness.results.store import point_key
from harness.run import run_point


def _scenario(tpot: np.ndarray, base: np.ndarray) -> LatencyScenario:
    s = lambda x: summarize(list(x), 500, 0.95, 0)  # noqa: E731
    paired = PairedRatio(baseline="fp32", pairs=len(tpot), tpot_ratio=float(np.median(tpot) / np.median(base)),
                         tpot_ci_low=0, tpot_ci_high=0, ttft_ratio=1, ttft_ci_low=1, ttft_ci_high=1, ci_level=0.95,
                         baseline_tpot_ms=s(base), baseline_ttft_ms=s(base))
    return LatencyScenario(prompt_tokens=16, batch_size=1, new_tokens=8, ttft_ms=s(tpot * 2), tpot_ms=s(tpot),
                           e2e_ms=s(tpot * 9), paired=paired)


def test_runs_at_different_speeds_widen_the_interval_and_the_paired_ratio_keeps_to_its_pairs():
    """Three runs whose machine ran at 1.0, 1.3 and 0.9 of its speed, the variant 0.8x its baseline in
    each: the across-run TPOT interval spans the runs (the within-run one does not), and the paired
    ratio is the runs' geometric mean, its interval tight because each run's drift cancels in its pairs."""
    rng = np.random.default_rng(0)
    runs = []
    for level in (1.0, 1.3, 0.9):
        base = level * (10 + rng.normal(0, 0.05, 40))
        runs.append(_scenario(0.8 * base * (1 + rng.normal(0, 0.002, 40)), base))
    a = across(runs, 1000, 0.95, 0)
    assert a.runs == 3 and a.run_requests == [40, 40, 40]
    assert a.tpot_ms.samples == [x for sc in runs for x in sc.tpot_ms.samples]  # every run's raw samples, in order
    assert a.run_tpot_ms == [sc.tpot_ms.median for sc in runs]
    within = runs[0].tpot_ms
    assert within.ci_high - within.ci_low < 0.1 and a.tpot_ms.ci_high - a.tpot_ms.ci_low > 1.5
    assert a.tpot_width_ratio > 10 and a.tpot_ms.ci_resamples.startswith("runs, then requests inside each (3)")
    assert a.paired_tpot_ratio == pytest.approx(np.exp(np.mean(np.log(a.run_tpot_ratios))))
    assert 0.79 < a.paired_tpot_ci_low <= a.paired_tpot_ratio <= a.paired_tpot_ci_high < 0.81
    assert a.output_tokens_per_s == pytest.approx(8 * 1000 / a.e2e_ms.median)


def test_one_run_keeps_the_point_key_it_had_before_bench_runs():
    config = {"model": {"name": "m"}, "bench": {"new_tokens": 8}, "engine": {"name": "transformers"}}
    assert point_key({**config, "bench": {"new_tokens": 8, "runs": 1}}, "hw") == point_key(config, "hw")
    assert point_key({**config, "bench": {"new_tokens": 8, "runs": 3}}, "hw") != point_key(config, "hw")


@pytest.mark.slow
def test_a_point_timed_in_three_processes_records_every_run_and_costs_across_them(run_cfg):
    short = ("model=tiny-xs", "bench.runs=3", "hardware.price_per_hour_usd=0.36")
    base = run_point(run_cfg(*short[1:], "model=tiny-xs", "variant=fp32"))
    rec = run_point(run_cfg(*short, "variant=bf16", "bench.paired_baseline=true"))
    assert rec.status == "ok", rec.error
    sc = rec.latency.scenarios[0]
    a = sc.across_runs
    assert a is not None and a.runs == 3 and len(a.run_tpot_ms) == 3 and len(a.run_tpot_ratios) == 3
    assert a.tpot_ms.samples[:a.run_requests[0]] == sc.tpot_ms.samples  # run 1 is the point's own
    assert len(a.tpot_ms.samples) == sum(a.run_requests) and len(a.baseline_tpot_ms_samples) == sum(a.run_requests)
    cost = compare_records([base, rec], Judging())[rec.run_id].cost[0]
    assert cost.intervals == "across 3 runs" and cost.tpot_ratio_kind == "runs"
    assert (cost.tpot_ratio, cost.tpot_ratio_ci_low, cost.tpot_ratio_ci_high) == (
        a.paired_tpot_ratio, a.paired_tpot_ci_low, a.paired_tpot_ci_high)
    assert cost.output_tokens_per_s == pytest.approx(1000 / a.tpot_ms.median)
