"""The SLO search (harness/scenarios/slo_search.py): its verdicts on a level's percentile interval, and the
levels it picks, on records whose latency grows with load as a known function; then against a stand-in
server whose first token slows with the requests in flight."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from harness.config.serving import SLO_PRESETS, SloPreset
from harness.scenarios.slo_search import FixedLevels, SloSearch, judge

LIMIT = SloPreset(ttft_ms=1000.0, tpot_ms=50.0, percentile=99.0, source="test")


def _record(level: float, ttft_of_level=lambda x: 100.0 * x, n: int = 200, failed: int = 0, seed: int = 0):
    """A level whose requests' TTFT is ``ttft_of_level(level)`` ms plus up to 5 ms of noise, TPOT 10 ms."""
    noise = np.random.default_rng(seed).uniform(0, 5, n)
    reqs = [SimpleNamespace(ok=i >= failed, ttft_ms=ttft_of_level(level) + e, tpot_ms=10.0) for i, e in enumerate(noise)]
    serving = SimpleNamespace(level=level, requests=reqs, output_token_throughput=10.0 * level)
    return SimpleNamespace(status="ok", error=None, run_id=f"level-{level:g}", serving=serving)


def _search(whole: bool, **kw) -> SloSearch:
    return SloSearch("test", LIMIT, 1.0, kw.pop("max_level", 64.0), kw.pop("max_steps", 12), 0.1, whole=whole,
                     resamples=300, **kw)


def _run(search: SloSearch, make=_record) -> list[float]:
    level, tried = search.first(), []
    while level is not None:
        tried.append(level)
        level = search.next(make(level))
    return tried


def test_a_level_is_judged_on_its_percentiles_interval():
    assert judge(_record(9), LIMIT).verdict == "meets"  # p99 about 905 ms: the whole interval is within 1000
    assert judge(_record(11), LIMIT).verdict == "misses"
    # 1 slow request in 200: p99 (the 199th of 200 sorted, as the report's judge) reads 900 ms, but the
    # resamples that draw it twice read 1100: the interval straddles the limit
    straddling = _record(1)
    for i, r in enumerate(straddling.serving.requests):
        r.ttft_ms = 1100.0 if i < 1 else 900.0
    assert judge(straddling, LIMIT).verdict == "undecided"
    # three failed requests in 200 put p99 at "infinitely slow": dropping requests cannot meet a percentile
    dropped = judge(_record(5, failed=3), LIMIT)
    assert dropped.verdict == "misses" and dropped.p_ttft_ms is None


def test_the_search_doubles_then_bisects_to_the_highest_level_that_meets():
    clients = _search(whole=True)
    assert _run(clients) == [1, 2, 4, 8, 16, 12, 10, 9]  # 10 clients read 1000-1005 ms: not within the limit
    assert clients.operating_point().level == 9 and clients.stop_reason.startswith("bracketed")
    rate = _search(whole=False)
    tried = _run(rate)
    assert tried[:5] == [1, 2, 4, 8, 16] and 9.0 <= rate.operating_point().level < 10.0
    assert all((s.verdict == "meets") == (s.level < 9.94) for s in rate.steps)  # the verdicts follow 100 ms per level
    hi = min(s.level for s in rate.steps if s.verdict != "meets" and s.level > rate.operating_point().level)
    assert hi / rate.operating_point().level <= 1.1


def test_the_search_stops_where_it_must_and_says_why():
    fast = _search(whole=True, max_level=8.0)  # everything meets: it stops at the cap
    assert _run(fast, lambda x: _record(x, lambda _: 10.0)) == [1, 2, 4, 8] and "max_level=8 met" in fast.stop_reason
    slow = _search(whole=True)  # nothing meets, not even one client
    assert _run(slow, lambda x: _record(x, lambda _: 5000.0)) == [1] and slow.operating_point() is None
    capped = _search(whole=True, max_steps=3)
    assert _run(capped) == [1, 2, 4] and "max_steps=3" in capped.stop_reason
    fixed = FixedLevels([1, 2, 4], stop_on_failure=True)
    assert fixed.first() == 1 and fixed.next(SimpleNamespace(status="failed")) is None


def test_every_preset_names_its_source():
    for name, p in SLO_PRESETS.items():
        assert "mlperf.conf" in p.source and p.percentile == 99.0 and p.ttft_ms > p.tpot_ms > 0, name


def test_a_search_against_a_server_slowed_by_load_finds_its_capacity(run_cfg):
    """First token after 30 ms per request in flight: 6 clients read about 180 ms, 7 at least 210, under a
    200 ms limit. The search measures each level it picks as a record, and writes its steps."""
    from omegaconf import OmegaConf

    from harness.run import run_point
    from tests.fake_openai_server import Behaviour, InThread

    with InThread(Behaviour(ttft_per_in_flight_ms=30, itl_ms=1)) as url:
        records = run_point(run_cfg("scenario=concurrency", f"scenario.target.url={url}", "scenario.levels=[1]",
                                    "scenario.search.enabled=true", "scenario.search.ttft_ms=200",
                                    "scenario.search.tpot_ms=100", "scenario.min_requests=24",
                                    "scenario.min_duration_s=0", "scenario.input_tokens=8", "scenario.output_tokens=4",
                                    "scenario.bootstrap_resamples=300"))
    levels = [r.serving.level for r in records]
    assert levels[:4] == [1, 2, 4, 8] and all(r.status == "ok" for r in records)
    (summary,) = Path(str(OmegaConf.select(run_cfg(), "results_dir"))).glob("serving/search--*.json")
    found = json.loads(summary.read_text())
    verdict = {s["level"]: s["verdict"] for s in found["steps"]}
    assert verdict[8] == "misses" and verdict.get(7, "misses") != "meets"  # the sleeps alone put them over
    assert found["operating_point"]["level"] in (5, 6) and "custom" in found["slo"]["source"]


def test_a_search_after_a_curve_reuses_its_levels_and_its_served_fidelity(run_cfg):
    """Served fidelity is measured once per target: the curve's first level has it; the search that reuses the
    curve's levels measures new ones without measuring it again."""
    from harness.run import run_point
    from tests.fake_openai_server import Behaviour, InThread

    common = ["scenario=concurrency", "scenario.min_requests=6", "scenario.min_duration_s=0", "scenario.input_tokens=8",
              "scenario.output_tokens=4", "scenario.bootstrap_resamples=200"]
    with InThread(Behaviour(itl_ms=1)) as url:
        curve = run_point(run_cfg(*common, f"scenario.target.url={url}", "scenario.levels=[1,2]"))
        search = run_point(run_cfg(*common, f"scenario.target.url={url}", "scenario.levels=[1]",
                                   "scenario.search.enabled=true", "scenario.search.max_steps=3"))
    assert curve[0].served_fidelity is not None and curve[1].served_fidelity is None
    assert "greedy agreement" in curve[0].served_fidelity.method  # the stand-in gives no prompt log-probabilities
    assert [r.run_id for r in search[:2]] == [r.run_id for r in curve]  # reused, not measured again
    assert [r.serving.level for r in search[2:]] == [4] and search[2].served_fidelity is None
