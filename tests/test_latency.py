"""Latency scenarios: shapes, out-of-memory as data, energy and roofline fields."""
import pytest
import torch
from transformers import GenerationMixin

from harness.measure import energy
from harness.run import run_point


def _oom_above(batch_limit):
    real = GenerationMixin.generate

    def generate(self, *args, **kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is not None and ids.shape[0] > batch_limit:
            raise torch.OutOfMemoryError(f"simulated: batch {ids.shape[0]} does not fit")
        return real(self, *args, **kwargs)
    return generate


def test_oom_on_one_batch_size_is_recorded_and_the_rest_measured(run_cfg, monkeypatch):
    monkeypatch.setattr(GenerationMixin, "generate", _oom_above(2))
    rec = run_point(run_cfg("model=tiny-xs", "bench.batch_sizes=[1,4]"))
    assert rec.status == "ok"
    by_batch = {s.batch_size: s for s in rec.latency.scenarios}
    assert by_batch[1].status == "ok" and by_batch[1].tpot_ms.n > 0
    assert by_batch[4].status == "oom" and "batch 4 x prompt 16" in by_batch[4].error


def test_every_batch_oom_makes_an_oom_record(run_cfg, monkeypatch):
    monkeypatch.setattr(GenerationMixin, "generate", _oom_above(0))
    rec = run_point(run_cfg("model=tiny-xs", "bench.batch_sizes=[2]"))
    assert rec.status == "oom" and "batch 2" in rec.error


def test_scenarios_decode_exact_counts_under_the_standard_definitions(run_cfg):
    rec = run_point(run_cfg("model=tiny-xs", "bench.batch_sizes=[1,2]", "bench.prompt_tokens=[8,24]"))
    assert len(rec.latency.scenarios) == 4
    for s in rec.latency.scenarios:
        n = s.new_tokens
        assert s.status == "ok" and s.requests == s.ttft_ms.n == s.tpot_ms.n == s.e2e_ms.n
        assert s.itl_ms.n == s.requests * (n - 1)
        assert s.generated_tokens == s.requests * s.batch_size * n
        itl = s.itl_ms.samples
        for i, (ttft, tpot, e2e) in enumerate(zip(s.ttft_ms.samples, s.tpot_ms.samples, s.e2e_ms.samples)):
            steps = itl[i * (n - 1):(i + 1) * (n - 1)]  # this request's inter-token intervals
            assert tpot == pytest.approx((e2e - ttft) / (n - 1)) and e2e == pytest.approx(ttft + sum(steps))
        assert s.output_tokens_per_s == pytest.approx(s.batch_size * n * 1e3 / s.e2e_ms.median)
        assert "request" in s.tpot_ms.ci_resamples and "requests" in s.itl_ms.ci_resamples
    assert rec.latency.threads == torch.get_num_threads()
    assert rec.latency.tpot_ms == rec.latency.scenarios[0].tpot_ms  # the headline


def test_bare_loop_decodes_the_same_tokens_and_gives_the_overhead(run_cfg):
    rec = run_point(run_cfg("model=tiny-s"))
    s = rec.latency.scenarios[0]
    assert s.bare_tokens_match is True and s.bare_tpot_ms.n == s.requests
    assert s.generate_over_bare == pytest.approx(s.tpot_ms.median / s.bare_tpot_ms.median)


def test_rounds_record_their_spread(run_cfg):
    rec = run_point(run_cfg("model=tiny-xs", "bench.repeats=3", "bench.min_iterations=4"))
    s = rec.latency.scenarios[0]
    assert s.rounds == 3 and len(s.round_tpot_ms) == 3 and len(s.stop_reasons) == 3 and s.requests == 12
    r = sorted(s.round_tpot_ms)
    assert s.round_spread == pytest.approx((r[2] - r[0]) / r[1])


def test_rounds_stop_on_precision_or_the_cap_and_say_which(run_cfg):
    loose = run_point(run_cfg("model=tiny-xs", "bench.target_rel_ci=0.9", "bench.max_iterations=50"))
    assert "target_rel_ci" in loose.latency.scenarios[0].stop_reasons[0]  # stopped on precision, not at the cap
    strict = run_point(run_cfg("model=tiny-xs", "bench.target_rel_ci=1e-9", "bench.max_iterations=6"))
    assert strict.latency.scenarios[0].stop_reasons == ["max_iterations"] and strict.latency.scenarios[0].requests == 6


def test_paired_baseline_is_interleaved_inside_the_point(run_cfg):
    rec = run_point(run_cfg("model=tiny-xs", "variant=bf16", "bench.paired_baseline=true", "bench.repeats=2"))
    p = rec.latency.paired
    assert rec.latency.paired_with == "tiny-xs float32 baseline" and p.pairs == rec.latency.tpot_ms.n
    assert p.baseline_tpot_ms.n == p.pairs and len(p.round_tpot_ratios) == 2
    assert p.tpot_ci_low <= p.tpot_ratio <= p.tpot_ci_high
    assert p.tpot_ratio == pytest.approx(rec.latency.tpot_ms.median / p.baseline_tpot_ms.median)
    assert "paired baseline" in rec.memory.peak_rss_scope
    own = run_point(run_cfg("model=tiny-xs", "variant=fp32", "bench.paired_baseline=true"))
    assert own.latency.paired is None and own.latency.paired_with == "none: the point is its own baseline"


def test_roofline_counts_weights_and_this_models_kv_cache(run_cfg):
    rec = run_point(run_cfg("model=tiny-xs", "bench.prompt_tokens=[24]"))
    head = rec.latency.scenarios[0]
    # tiny-xs: 1 layer, 2 KV heads of 16 dims, fp32 -> keys + values = 2 * 1 * 2 * 16 * 4 bytes per position
    kv_per_position = 2 * 1 * 2 * 16 * 4
    context = head.prompt_tokens + head.new_tokens / 2
    assert rec.roofline.bytes_per_token == pytest.approx(rec.memory.weights_bytes + kv_per_position * context)
    assert rec.roofline.peak_bytes_per_s == rec.hardware.probes.bandwidth_bytes_per_s
    assert rec.roofline.seconds_per_token == pytest.approx(head.tpot_ms.median / 1e3)


def _fake_rapl(root, energy_uj, max_range_uj=10**9):
    zone = root / "intel-rapl:0"
    zone.mkdir(parents=True, exist_ok=True)
    (zone / "max_energy_range_uj").write_text(str(max_range_uj))
    (zone / "energy_uj").write_text(str(energy_uj))
    return zone


def test_rapl_meter_reads_joules_across_a_counter_wrap(tmp_path, monkeypatch):
    monkeypatch.setattr(energy, "RAPL_ROOT", tmp_path)
    zone = _fake_rapl(tmp_path, 10**9 - 500_000)
    meter = energy.EnergyMeter(torch.device("cpu"))
    assert meter.source == "rapl" and meter.reason is None
    meter.start()
    (zone / "energy_uj").write_text("1500000")  # wrapped past max_energy_range_uj
    assert meter.stop().joules == pytest.approx(2.0)


def test_energy_reaches_the_record_or_says_why_not(run_cfg, tmp_path, monkeypatch):
    monkeypatch.setattr(energy, "RAPL_ROOT", tmp_path / "none")
    rec = run_point(run_cfg("model=tiny-xs"))
    assert rec.energy.joules is None and rec.energy.source is None and "RAPL" in rec.energy.reason
    monkeypatch.setattr(energy, "RAPL_ROOT", tmp_path / "rapl")
    _fake_rapl(tmp_path / "rapl", 1234)  # a counter that does not move: 0 J, measured
    rec = run_point(run_cfg("model=tiny-xs", "force=true"))
    assert rec.energy.source == "rapl" and rec.energy.joules == 0.0 and rec.energy.reason is None
    assert all(s.energy_j == 0.0 for s in rec.latency.scenarios)
