"""Latency scenarios: shapes, out-of-memory as data, energy and roofline fields."""
import torch
from transformers import GenerationMixin

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
        assert s.decode_tokens_per_s == s.batch_size * 1e3 / s.decode_ms_per_token.median
    assert rec.latency.threads == torch.get_num_threads()
    assert rec.energy.joules is not None or rec.energy.reason  # measured, or null with the reason
    assert 0 < rec.roofline.fraction_of_bandwidth
    assert rec.roofline.bytes_per_token > rec.memory.weights_bytes  # weights plus KV cache
