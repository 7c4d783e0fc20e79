"""Serving scenarios: the load generator against a stand-in server on 127.0.0.1 (definitions, schedules,
failures counted), the sweep's records and their judging at SLOs, and llama.cpp's two servers for real.
Every request goes to 127.0.0.1, bounded in count and time."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar, List, Optional

import numpy as np
import pytest
from omegaconf import OmegaConf

from tests.fake_openai_server import Behaviour, InThread
from harness.blocks import EngineInfo, VariantInfo
from harness.config import EngineConfig, register_engine
from harness.engines import Served
from harness.engines.server import ServerProcess, free_port
from harness.measure.serving import Prompt, arrival_times, make_prompts, run_level, unreachable
from harness.results.comparison import Judging
from harness.results.serving import curves, judge_level
from harness.results.store import load_serving_records

FAKE = Path(__file__).with_name("fake_openai_server.py")
PROMPTS = [Prompt("some prompt", 3, 6)] * 64


def plan(**kw):
    base = dict(kind="server", burstiness=1.0, min_requests=12, min_duration_s=0.0, max_duration_s=30.0,
                warmup_requests=1, request_timeout_s=10.0, bootstrap_resamples=200, seed=0)
    return SimpleNamespace(**{**base, **kw})


def test_each_request_is_timed_per_token_as_the_definitions_say():
    with InThread(Behaviour(ttft_ms=40, itl_ms=12)) as url:
        r = run_level(url, "fake", PROMPTS, "server", 20.0, plan())
    assert r.completed == 12 and r.failed == 0 and r.stop_reason == "every request answered"
    for q in r.requests:
        assert q.output_tokens == 6 and q.token_count_source == "usage" and len(q.itl_ms) == 5
        # the server's own sleeps bound them below, whatever the machine: the first token comes 40 ms after the
        # request arrives, the last after five more sleeps of 12 (a single gap can read shorter than 12: a
        # chunk that reaches the client late shortens the gap after it)
        assert q.ttft_ms >= 40 and q.e2e_ms >= 40 + 5 * 12
        assert q.e2e_ms == pytest.approx(q.ttft_ms + sum(q.itl_ms))
        assert q.tpot_ms == pytest.approx((q.e2e_ms - q.ttft_ms) / 5)
    assert r.ttft_ms.ci_resamples == "requests" and r.ttft_ms.n == 12
    assert r.ttft_p99_ci[0] <= r.ttft_ms.p99 <= r.ttft_p99_ci[1] + 1e-9
    assert r.output_token_throughput == pytest.approx(r.request_throughput * 6)
    assert r.send_lag_ms.n == 12 and r.client_ms_per_token >= 0


def test_tokens_are_counted_by_chunks_when_the_server_sends_no_usage():
    with InThread(Behaviour(no_usage=True)) as url:
        r = run_level(url, "fake", PROMPTS, "offline", 4.0, plan(min_requests=4))
    assert all(q.token_count_source == "chunks" and q.output_tokens == 6 and q.ok for q in r.requests)


def test_closed_loop_keeps_exactly_its_clients_in_flight_and_offline_sends_all_at_once():
    b = Behaviour(ttft_ms=20, itl_ms=5)
    with InThread(b) as url:
        r = run_level(url, "fake", PROMPTS, "concurrency", 3.0, plan(kind="concurrency", min_requests=12))
        assert b.max_in_flight == 3 and r.completed >= 12
        b.max_in_flight = 0
        r = run_level(url, "fake", PROMPTS, "offline", 10.0, plan(kind="offline", min_requests=10))
    assert b.max_in_flight == 10 and r.completed == 10  # all ten in flight at once: none waited for an answer


def test_open_loop_arrivals_follow_the_rate_and_burstiness():
    gaps = np.diff(arrival_times(20001, 5.0, 1.0, seed=1))
    assert gaps.mean() == pytest.approx(0.2, rel=0.03) and gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.05)
    bursty = np.diff(arrival_times(20001, 5.0, 0.25, seed=1))  # gamma shape 1/4: CV 2
    assert bursty.mean() == pytest.approx(0.2, rel=0.05) and bursty.std() / bursty.mean() == pytest.approx(2.0, rel=0.1)
    with InThread(Behaviour()) as url:  # rate x min_duration requests when that is more than min_requests
        r = run_level(url, "fake", PROMPTS, "server", 40.0, plan(min_requests=4, min_duration_s=0.5))
    assert len(r.requests) == 20
    assert [q.scheduled_s for q in r.requests] == pytest.approx(list(arrival_times(20, 40.0, 1.0, 0)))


def test_prompts_are_cut_from_the_text_at_the_asked_lengths():
    ids = list(range(1000))
    fixed = make_prompts(ids, lambda t: " ".join(map(str, t)), 5, 20, 8, seed=3)
    assert all(p.input_tokens == 20 and p.output_tokens == 8 and len(p.text.split()) == 20 for p in fixed)
    assert fixed == make_prompts(ids, lambda t: " ".join(map(str, t)), 5, 20, 8, seed=3)  # seeded
    spread = make_prompts(ids, str, 200, 20, 8, "uniform", 0.5, seed=3)
    assert {p.input_tokens for p in spread} <= set(range(10, 31)) and len({p.input_tokens for p in spread}) > 10
    with pytest.raises(ValueError, match="longer text"):
        make_prompts(ids[:10], str, 1, 20, 8)


def test_failures_are_counted_with_their_reason_never_hidden():
    with InThread(Behaviour(short=2)) as url:
        r = run_level(url, "fake", PROMPTS, "offline", 3.0, plan(min_requests=3))
    assert r.completed == 0 and r.errors == {"short": 3} and "returned 4 tokens (usage), asked 6" in r.requests[0].error
    with InThread(Behaviour(hang=True)) as url:  # a timeout is an error, not a hang: the level returns
        r = run_level(url, "fake", PROMPTS, "offline", 2.0, plan(min_requests=2, warmup_requests=0, request_timeout_s=0.5))
    assert r.errors == {"timeout": 2} and "request_timeout_s=0.5" in r.requests[0].error
    assert "ClientConnectorError" in unreachable(f"http://127.0.0.1:{free_port()}")


def test_a_server_that_refuses_the_first_requests_ends_the_level_at_once_with_its_message():
    for warmup in (1, 0):  # refused in the warm-up, or by the first measured requests (the clients stop)
        with InThread(Behaviour(models=("smollm2",), strict_model=True)) as url:
            r = run_level(url, "smollm2-135m-instruct", PROMPTS, "concurrency", 4, plan(warmup_requests=warmup,
                                                                                          min_requests=10_000))
        assert r.refused == "HTTP 404: " + '{"error": {"message": "The model `smollm2-135m-instruct` does not ' \
            'exist. Valid aliases: smollm2.", "code": 404}}' and r.stop_reason.startswith("the server refused")
        assert len(r.requests) <= 4 and r.completed == 0  # no retry storm: at most the 4 clients' first requests
    with InThread(Behaviour(models=("smollm2",), strict_model=True)) as url:  # rate levels stop sending too
        r = run_level(url, "nope", PROMPTS, "server", 50.0, plan(warmup_requests=0, min_requests=64))
    assert r.refused and len(r.requests) < 64


def test_a_stale_kept_alive_connection_is_retried_once_and_the_target_is_not_declared_gone():
    with InThread(Behaviour(drop_nth=3)) as url:  # the warm-up is the 1st: the 2nd measured request is dropped
        r = run_level(url, "fake", PROMPTS, "concurrency", 1, plan(min_requests=6))
    assert r.completed == 6 and r.failed == 0 and r.retries == 1 and [q.retried for q in r.requests].count(True) == 1
    assert not r.target_failed


def test_a_server_given_by_url_is_asked_for_the_model_it_lists(run_cfg, tmp_path):
    from harness.run import run_point
    from harness.scenarios.serving import TargetAmbiguous

    with InThread(Behaviour(models=("smollm2",), strict_model=True)) as url:  # one model: its name is used
        records = run_point(_serve_cfg(run_cfg, f"scenario.target.url={url}", "scenario.levels=[20]"))
    assert records[0].status == "ok" and records[0].target.api_model == "smollm2"
    with InThread(Behaviour(models=("a", "b"), strict_model=True)) as url:  # several: say which
        with pytest.raises(TargetAmbiguous, match=r"serves 2 models \(a, b\); valid: scenario.target.api_model"):
            run_point(_serve_cfg(run_cfg, f"scenario.target.url={url}", "scenario.levels=[20]"))
        records = run_point(_serve_cfg(run_cfg, f"scenario.target.url={url}", "scenario.levels=[20]",
                                       "scenario.target.api_model=b"))
        assert records[0].status == "ok" and records[0].target.api_model == "b"
        wrong = run_point(_serve_cfg(run_cfg, f"scenario.target.url={url}", "scenario.levels=[20]",
                                     "scenario.target.api_model=c", "force=true"))
    assert wrong[0].status == "failed" and "Valid aliases: a, b." in wrong[0].error
    assert "the server refused the first requests" in wrong[0].error


def test_a_missing_llama_server_build_says_how_to_build_it(run_cfg, monkeypatch, tmp_path):
    from harness.run import run_point

    monkeypatch.setenv("MEEKBENCH_LLAMACPP_TOOLS", str(tmp_path / "not-built"))
    records = run_point(run_cfg("scenario=concurrency", "scenario.levels=[1]", "engine=llamacpp", "variant=fp32",
                                "engine.isolate=false"))
    assert records[0].status == "not_built" and "llama-server is not built at" in records[0].error
    assert "scripts/llamacpp_tools.sh" in records[0].error


@pytest.mark.slow  # two CLI processes (6 s): the fast tier keeps under 3 min
def test_an_unreachable_url_exits_nonzero_before_any_traffic(tmp_path):
    port = free_port()
    done = subprocess.run([sys.executable, "-m", "harness", "run", "scenario=server", f"results_dir={tmp_path}",
                           f"scenario.target.url=http://127.0.0.1:{port}"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and f"scenario.target.url=http://127.0.0.1:{port} does not answer" in done.stderr
    assert not list(tmp_path.glob("serving/*/record.json"))
    bad = subprocess.run([sys.executable, "-m", "harness", "run", "scenario=server", f"results_dir={tmp_path}",
                          "scenario.target.url=localhost:8000"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "scenario.target.url='localhost:8000'; valid: http(s)://" in bad.stderr


def _serve_cfg(run_cfg, *overrides):
    return run_cfg("scenario=server", "scenario.levels=[20,40]", "scenario.min_requests=10", "scenario.min_duration_s=0",
                   "scenario.input_tokens=8", "scenario.output_tokens=4", "scenario.warmup_requests=1",
                   "scenario.bootstrap_resamples=200", *overrides)


def test_a_sweep_writes_one_record_per_level_and_a_rerun_skips_them(run_cfg):
    from harness.run import run_point

    with InThread(Behaviour(ttft_ms=30, itl_ms=5)) as url:
        cfg = _serve_cfg(run_cfg, f"scenario.target.url={url}", "hardware.price_per_hour_usd=2.0")
        records = run_point(cfg)
        assert [r.status for r in records] == ["ok", "ok"] and [r.serving.level for r in records] == [20, 40]
        assert records[0].point_key != records[1].point_key and not records[0].target.launched
        assert records[0].energy.joules is None and "given by URL" in records[0].energy.reason
        again = run_point(_serve_cfg(run_cfg, f"scenario.target.url={url}", "hardware.price_per_hour_usd=9.0",
                                     "scenario.on_failure=stop"))
    assert [r.created_at for r in again] == [r.created_at for r in records]  # a price is no part of a point
    loaded, skipped = load_serving_records([OmegaConf.select(cfg, "results_dir")])
    assert len(loaded) == 2 and not skipped


def test_levels_are_judged_at_the_slo_from_the_records(run_cfg, tmp_path):
    from harness.report.markdown import write_report
    from harness.run import run_point

    with InThread(Behaviour(ttft_ms=30, itl_ms=5)) as url:
        cfg = _serve_cfg(run_cfg, f"scenario.target.url={url}", "hardware.price_per_hour_usd=2.0")
        records = run_point(cfg)
    lax, strict = Judging(slo_ttft_ms=1000, slo_tpot_ms=100), Judging(slo_ttft_ms=10, slo_tpot_ms=100)
    v = judge_level(records[0], lax)
    assert v.meets_slo and v.slo_attainment == 1.0 and v.goodput_rps == pytest.approx(records[0].serving.request_throughput)
    assert v.cost_per_m_output_tokens == pytest.approx(2.0 / (records[0].serving.output_token_throughput * 3600) * 1e6)
    w = judge_level(records[0], strict)  # every TTFT is at least the server's 30 ms
    assert not w.meets_slo and w.goodput_rps == 0 and w.slo_attainment == 0
    curve = curves(records, lax)[0]
    assert curve.operating.level == 40 and curves(records, strict)[0].operating is None
    md = write_report([OmegaConf.select(cfg, "results_dir")], tmp_path / "report", lax).read_text()
    assert "## Serving under load" in md and "Operating point: level 40" in md
    assert (tmp_path / "report" / "serving-0.png").stat().st_size > 1000


def test_a_failed_request_counts_against_the_percentile():
    from harness.results import schema as S

    req = dict(scheduled_s=0, sent_s=0, input_tokens=3, output_tokens_asked=6, output_tokens=6, ttft_ms=5.0,
               itl_ms=[1.0] * 5, e2e_ms=10.0)
    reqs = [S.ServedRequest(index=i, **req) for i in range(98)]
    reqs += [S.ServedRequest(index=98 + i, **{**req, "error": "timeout", "error_kind": "timeout"}) for i in range(2)]
    serving = S.ServingLevel(kind="server", level=1, duration_s=10, stop_reason="", completed=98, failed=2,
                             output_token_throughput=58.8, request_throughput=9.8, requests=reqs)
    rec = SimpleNamespace(serving=serving, status="ok", hardware=SimpleNamespace(label="x"), config={})
    assert not judge_level(rec, Judging(slo_ttft_ms=100, slo_tpot_ms=100)).meets_slo  # 2% failed > 1% allowed
    assert judge_level(rec, Judging(slo_ttft_ms=100, slo_tpot_ms=100, slo_percentile=95)).meets_slo


@register_engine
@dataclass
class StandInServer(EngineConfig):
    """tests/fake_openai_server.py as an engine whose server meekbench starts and stops itself, like llama.cpp's:
    registered here alone, as any new serving engine would be."""
    name: str = "stand-in"
    ttft_ms: float = 0.0
    extra: List[str] = field(default_factory=list)  # more of the stand-in's arguments

    variant_kinds: ClassVar[tuple[str, ...]] = ("baseline",)
    prepare: ClassVar[str] = "harness.engines.hf:prepare"
    serve: ClassVar[Optional[str]] = f"{__name__}:serve_stand_in"


def serve_stand_in(point, api_model: str) -> Served:
    engine = point.engine
    return Served(lambda port: [sys.executable, str(FAKE), str(port), "--ttft-ms", str(engine.ttft_ms), *engine.extra],
                  Path(point.model.path), VariantInfo(name=point.variant.name, kind=point.variant.kind,
                                                      dtype=point.variant.dtype), EngineInfo(name="stand-in"))


def _stand_in(ttft_ms: float, *extra: str) -> list[str]:
    return ["engine=stand-in_schema", f"engine.ttft_ms={ttft_ms}", f"engine.extra=[{','.join(map(repr, extra))}]"]


def _alive(pattern: str) -> bool:
    return subprocess.run(["pgrep", "-f", pattern], capture_output=True).returncode == 0


@pytest.mark.slow
def test_a_server_killed_mid_level_is_a_failed_record_and_the_sweep_goes_on(run_cfg, tmp_path):
    from harness.run import run_point

    # SIGKILLed after its 3rd answer of 12 (at 4/s), once per marker: the restarted server lives on
    cfg = run_cfg("scenario=server", "scenario.levels=[4,8]", "scenario.min_requests=12", "scenario.min_duration_s=0",
                  "scenario.input_tokens=8", "scenario.output_tokens=4", "scenario.warmup_requests=0",
                  "scenario.bootstrap_resamples=100",
                  *_stand_in(100, "--kill-self-after", "3", "--once", str(tmp_path / "killed-once")))
    records = run_point(cfg)
    first, second = records
    assert first.status == "failed" and "the target stopped answering" in first.error
    assert first.serving.completed >= 3 and first.serving.errors.get("connection", 0) > 0
    assert first.serving.completed + first.serving.failed == len(first.serving.requests) == 12
    assert second.status == "ok" and second.serving.completed == 12  # started again for the next level
    assert first.target.launched and first.target.launch_command[1] == str(FAKE)
    assert not _alive(str(FAKE))  # and stopped at the end
    stopped = run_point(run_cfg("scenario=server", "scenario.levels=[4,8]", "scenario.min_requests=12",
                                "scenario.min_duration_s=0", "scenario.input_tokens=8", "scenario.output_tokens=4",
                                "scenario.warmup_requests=0", "scenario.bootstrap_resamples=100",
                                "scenario.on_failure=stop", "scenario.seed=1",
                                *_stand_in(100, "--kill-self-after", "3", "--once", str(tmp_path / "killed-twice"))))
    assert [r.status for r in stopped] == ["failed"] and not _alive(str(FAKE))


def test_each_level_draws_its_own_prompts_so_no_prompt_cache_carries_over():
    from harness.scenarios.serving import _prompts

    sc = SimpleNamespace(kind="concurrency", min_requests=8, min_duration_s=0, warmup_requests=1, input_tokens=5,
                         output_tokens=4, length_distribution="fixed", length_range=0.0, seed=0)
    rc, ids = SimpleNamespace(scenario=sc), list(range(10_000))
    texts = {level: [p.text for p in _prompts(rc, SimpleNamespace(decode=str), ids, level)] for level in (1, 2)}
    assert texts[1] == [p.text for p in _prompts(rc, SimpleNamespace(decode=str), ids, 1)]  # seeded
    assert len(texts[1]) == 4 * 8 + 1 and not set(texts[1]) & set(texts[2])


@pytest.mark.slow  # two server starts
def test_every_level_gets_a_freshly_started_server(run_cfg):
    from harness.run import run_point

    records = run_point(run_cfg("scenario=concurrency", "scenario.levels=[1,2]", "scenario.min_requests=4",
                                "scenario.min_duration_s=0", "scenario.input_tokens=8", "scenario.output_tokens=4",
                                "scenario.bootstrap_resamples=100", *_stand_in(5)))
    logs = [Path(r.target.server_log) for r in records]
    assert len(set(logs)) == 2 and all(p.read_text().count("stand-in started") == 1 for p in logs)
    assert records[0].target.url != records[1].target.url and not _alive(str(FAKE))


@pytest.mark.slow  # three server starts
def test_a_level_measured_in_several_runs_restarts_its_server_and_its_intervals_resample_runs(run_cfg):
    from harness.run import run_point

    (r,) = run_point(run_cfg("scenario=concurrency", "scenario.levels=[2]", "scenario.runs=3",
                             "scenario.min_requests=8", "scenario.min_duration_s=0", "scenario.input_tokens=8",
                             "scenario.output_tokens=4", "scenario.bootstrap_resamples=200",
                             "hardware.price_per_hour_usd=1.0", *_stand_in(20)))
    a = r.serving.across_runs
    assert r.status == "ok" and a.runs == 3 and a.server_restarted and len(a.others) == 2
    assert Path(r.target.server_log).read_text().count("stand-in started") == 3  # a fresh server for each run
    assert all(o.completed >= 8 and len(o.requests) == o.completed for o in a.others)
    done = [r.serving.completed] + [o.completed for o in a.others]
    assert a.ttft_ms.n == sum(done) and a.ttft_ms.ci_resamples.startswith("runs, then requests")
    assert a.output_token_throughput == pytest.approx(float(np.median(a.run_output_token_throughput)))
    assert a.output_token_throughput_ci_low <= a.output_token_throughput <= a.output_token_throughput_ci_high
    v = judge_level(r, Judging())  # the report's throughput and cost are the runs' median, with its interval
    assert v.runs == 3 and v.output_token_throughput == a.output_token_throughput and v.throughput_ci
    assert not _alive(str(FAKE))


def test_a_started_server_is_stopped_on_an_interrupt(tmp_path):
    port = free_port()
    server = ServerProcess([sys.executable, str(FAKE), str(port)], port, tmp_path / "server.log", 30)
    with pytest.raises(KeyboardInterrupt):
        with server as url:
            assert unreachable(url) is None
            raise KeyboardInterrupt
    assert server.proc.poll() is not None and unreachable(server.url) is not None


def _streams_overlapping(requests) -> int:
    """Pairs of requests that streamed tokens at the same time (one's first token before the other's last)."""
    spans = sorted((q.sent_s + q.ttft_ms / 1e3, q.sent_s + q.e2e_ms / 1e3) for q in requests if q.ok)
    return sum(1 for i, (_, end) in enumerate(spans) for first, _ in spans[i + 1:] if first < end)


@pytest.mark.slow
@pytest.mark.parametrize("server,parallel,process", [("llama-server", 2, "llama-server --model"),
                                                     ("llama-cpp-python", 1, "llama_cpp.server")])
def test_llamacpp_server_under_load_end_to_end(run_cfg, tmp_path, server, parallel, process):
    """tiny-m as an F32 GGUF behind llama.cpp's own server (two slots) and llama-cpp-python's: a rate sweep
    and a closed loop, every request answered with exactly the tokens asked, the server gone afterwards,
    the report's curve. Two clients' streams interleave on llama-server (it batches) and never on
    llama-cpp-python's server (it decodes one request at a time)."""
    if server == "llama-server":
        from harness.engines.llamacpp_tools import tool

        try:
            tool("llama-server")
        except Exception as e:
            pytest.skip(str(e))
    else:
        pytest.importorskip("llama_cpp.server.app")
    from harness.report.markdown import write_report
    from harness.run import run_point

    common = ["engine=llamacpp", "variant=fp32", "scenario.min_duration_s=0", "scenario.min_requests=6",
              "scenario.input_tokens=16", "scenario.bootstrap_resamples=200", "hardware.price_per_hour_usd=0.1",
              f"engine.server={server}", f"engine.parallel={parallel}"]
    rate = run_point(run_cfg("scenario=server", "scenario.levels=[2,50]", "scenario.output_tokens=8", *common))
    closed = run_point(run_cfg("scenario=concurrency", "scenario.levels=[1,2]", "scenario.output_tokens=32", *common))
    for r in rate + closed:
        assert r.status == "ok", r.error
        assert all(q.error is None and q.output_tokens == q.output_tokens_asked for q in r.serving.requests)
        assert r.target.launched and process in " ".join(r.target.launch_command)
        assert r.engine.name == "llamacpp" and r.engine.file_type == "F32"
    for sweep in (rate, closed):  # no prompt log-probabilities: greedy agreement, once per sweep (F32: the same)
        f = sweep[0].served_fidelity
        assert "greedy agreement" in f.method and "prompt log-probabilities" in f.reason
        assert f.greedy_matched_share > 0.9 and f.greedy_prompts == 16
        assert sweep[1].served_fidelity is None
    assert (_streams_overlapping(closed[1].serving.requests) > 0) == (parallel > 1)
    assert _streams_overlapping(closed[0].serving.requests) == 0  # one client: one stream at a time
    assert not _alive(process)
    md = write_report([OmegaConf.select(run_cfg(), "results_dir")], tmp_path / "rep", Judging()).read_text()
    assert "## Serving under load" in md and f"tiny-m · fp32 · llamacpp server={server} parallel={parallel} (server" in md
    print("\n".join(line for line in md.splitlines() if line.startswith(("|", "Operating", "Knee"))))


def _serving_record(base, level: float, tokens_per_s: float, ttft_ms: float, price: float):
    """A serving record of ``base``'s model and variant at one level: 10 requests of 8 tokens, all
    with ``ttft_ms`` and TPOT 10 ms, served at ``tokens_per_s``."""
    from harness.results import schema as S

    reqs = [S.ServedRequest(index=i, scheduled_s=0, sent_s=0, input_tokens=8, output_tokens_asked=8,
                                 output_tokens=8, ttft_ms=ttft_ms, itl_ms=[10.0] * 7, e2e_ms=ttft_ms + 70)
            for i in range(10)]
    serving = S.ServingLevel(kind="server", level=level, duration_s=80 / tokens_per_s, stop_reason="", completed=10,
                             failed=0, output_token_throughput=tokens_per_s, request_throughput=tokens_per_s / 8,
                             requests=reqs)
    return S.ServingRecord(run_id=f"{base.model.name}--server-{level:g}", point_key=str(level), status="ok",
                           created_at=base.created_at, duration_s=1.0, config={"hardware": {"price_per_hour_usd": price}},
                           model=base.model, variant=base.variant, hardware=base.hardware, software={},
                           serving=serving)


@pytest.mark.slow  # a sweep and a projection (6 s): the fast tier keeps under 3 min
def test_the_projection_can_read_its_rate_at_a_serving_operating_point():
    from harness.config import ProjectorConfig
    from harness.projector.project import project
    from tests.conftest import record_template

    base = [record_template(f"m{i}", n, 3.0 - 0.1 * i) for i, n in enumerate([1e4, 3e4, 1e5, 4e5, 1e6, 3e6])]
    big = base[-1]
    serving = [_serving_record(big, 1, 100.0, 50.0, 0.5), _serving_record(big, 2, 180.0, 80.0, 0.5),
               _serving_record(big, 4, 200.0, 5000.0, 0.5)]  # the last misses p99 TTFT <= 2 s
    p = ProjectorConfig(name="m", bootstrap=0, monte_carlo=10)
    p.law.source, p.inference.cost_source, p.inference.measured_point = "measured", "measured", "serving"
    inf = project(p, base, serving)["inference"]
    usd_per_token = 0.5 / (180.0 * 3600)
    assert inf["effective_params_per_usd"]["source"] == "measured"
    assert inf["effective_params_per_usd"]["value"] == pytest.approx(big.model.params / usd_per_token, rel=1e-9)
    assert "server level 2 " in inf["measured_rates"][0]["measured_at"] and "the server level 2" in \
        inf["effective_params_per_usd"]["note"]
    p.inference.slo.ttft_ms = 10.0  # no level meets it: the assumed rate, and why
    fallback = project(p, base, serving)["inference"]["effective_params_per_usd"]
    assert fallback["source"] == "default" and "no priced serving curve has a level meeting" in fallback["note"]
