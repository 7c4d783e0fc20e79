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
    assert by_batch[1].status == "ok" and by_batch[1].decode_ms_per_token.n > 0
    assert by_batch[4].status == "oom" and "batch 4 x prompt 16" in by_batch[4].error


def test_every_batch_oom_makes_an_oom_record(run_cfg, monkeypatch):
    monkeypatch.setattr(GenerationMixin, "generate", _oom_above(0))
    rec = run_point(run_cfg("model=tiny-xs", "bench.batch_sizes=[2]"))
    assert rec.status == "oom" and "batch 2" in rec.error


def test_scenarios_decode_exact_counts_and_report_throughput(run_cfg):
    rec = run_point(run_cfg("model=tiny-xs", "bench.batch_sizes=[1,2]", "bench.prompt_tokens=[8,24]"))
    assert len(rec.latency.scenarios) == 4
    for s in rec.latency.scenarios:
        assert s.status == "ok"
        assert s.decode_ms_per_token.n == s.iterations * (s.new_tokens - 1)
        assert s.generated_tokens == s.iterations * s.batch_size * s.new_tokens
    assert rec.latency.threads == torch.get_num_threads()
    assert rec.latency.decode_ms_per_token == rec.latency.scenarios[0].decode_ms_per_token  # the headline


def test_roofline_counts_weights_and_this_models_kv_cache(run_cfg):
    rec = run_point(run_cfg("model=tiny-xs", "bench.prompt_tokens=[24]"))
    head = rec.latency.scenarios[0]
    # tiny-xs: 1 layer, 2 KV heads of 16 dims, fp32 -> keys + values = 2 * 1 * 2 * 16 * 4 bytes per position
    kv_per_position = 2 * 1 * 2 * 16 * 4
    context = head.prompt_tokens + head.new_tokens / 2
    assert rec.roofline.bytes_per_token == pytest.approx(rec.memory.weights_bytes + kv_per_position * context)
    assert rec.roofline.peak_bytes_per_s == rec.hardware.probes.bandwidth_bytes_per_s
    assert rec.roofline.seconds_per_token == pytest.approx(head.decode_ms_per_token.median / 1e3)


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
