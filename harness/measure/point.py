"""Every measurement of one loaded model, in a fixed order, returned as one value.

Quality first (held-out loss, then lm-eval tasks when a suite is given), then latency with
energy over the timed runs, then memory peaks over all of it, then the decode roofline when
the machine's bandwidth is known. Takes plain values and typed plans; knows no config or record.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch


from harness.measure.energy import EnergyMeter, Energy, total_energy
from harness.measure.fidelity import Fidelity, FidelityPlan, ReferenceCapture, TokenReference, compare
from harness.measure.latency import Decoder, LatencyPlan, Latency, measure_latency
from harness.measure.memory import Memory, memory_result, reset_gpu_peaks, reset_peak_rss
from harness.measure.quality import Quality, LogitsFn, heldout_loss
from harness.measure.roofline import Roofline, decode_roofline, kv_bytes_per_position
from harness.measure.tasks import TaskResults, TaskSuite, evaluate_tasks

PEAK_RSS_SCOPE = "process high-water mark from after loading to the end of measurement"
PAIRED_SCOPE = "; includes the paired baseline model held alongside for interleaved latency"


class Measurable(Protocol):
    """A loaded model reduced to what measurement reads, whatever engine runs it (harness.engines.EngineModel
    is one): logits for token ids, a timed decoder, and the sizes memory and the roofline need."""
    logits: LogitsFn
    decoder: Decoder
    tokenizer: Any
    device: torch.device
    vocab_size: int
    weights_bytes: int
    kv_element_bytes: int
    config: Any  # the transformers config: the shapes of the KV cache
    hf_model: Any  # the transformers model lm-eval wraps, or None on other engines
    max_length: int  # the longest sequence ``logits`` takes (lm-eval's rolling windows)

    @property
    def info(self) -> Any: ...  # has .threads and .name


class QualityPlan(Protocol):
    """How held-out loss is scored (harness.config.QualityConfig is one)."""
    context_length: int
    stride: int
    max_bytes: int | None
    batch_size: int


@dataclass
class PointMeasurements:
    quality: Quality
    tasks: TaskResults | None
    latency: Latency
    energy: Energy
    memory: Memory
    roofline: Roofline | None
    distributions: TokenReference | None = None  # this point's held-out next-token distributions (top-k)
    fidelity: Fidelity | None = None  # against a given reference (the baseline's distributions)


def measure_point(target: Measurable, heldout_text: str, quality: QualityPlan, bench: LatencyPlan,
                  suite: TaskSuite | None = None, offline: bool = False,
                  bandwidth_bytes_per_s: float | None = None, baseline: Decoder | None = None,
                  baseline_name: str | None = None, fidelity_plan: FidelityPlan | None = None,
                  reference: TokenReference | None = None) -> PointMeasurements:
    """``target``: the loaded model as its engine runs it. ``baseline``: the same model's baseline,
    loaded by the caller, timed interleaved for paired ratios. With ``fidelity_plan`` the held-out
    pass keeps this model's next-token distributions, and compares them with ``reference`` (the
    baseline's) when given."""
    device = target.device
    reset_peak_rss()
    reset_gpu_peaks(device)
    capture = ReferenceCapture(fidelity_plan.top_k, fidelity_plan.full_vocab_max) if fidelity_plan else None
    q = heldout_loss(target.logits, target.tokenizer, heldout_text, quality.context_length, quality.stride,
                     quality.max_bytes, quality.batch_size, observers=[capture] if capture else [])
    distributions = capture.result() if capture else None
    tasks = None
    if suite is not None and suite.tasks:  # lm-eval's own HFLM on transformers, else the engine's logits
        tasks = evaluate_tasks(target.hf_model, target.tokenizer, suite, offline=offline, logits=target.logits,
                               max_length=target.max_length)
    energy_meter = EnergyMeter(device)
    lat = measure_latency(target.decoder, target.vocab_size, device, bench, energy_meter, baseline, baseline_name,
                          threads=target.info.threads)
    energy = total_energy(lat.scenarios, energy_meter)
    memory = memory_result(device, target.weights_bytes,
                           PEAK_RSS_SCOPE + (PAIRED_SCOPE if baseline is not None else ""))
    head = next((sc for sc in lat.scenarios if sc.status == "ok"), None)
    roofline = None
    if head and bandwidth_bytes_per_s:
        roofline = decode_roofline(target.weights_bytes, kv_bytes_per_position(target.config, target.kv_element_bytes),
                                   head.batch_size, head.prompt_tokens, head.new_tokens, head.tpot_ms.median,
                                   bandwidth_bytes_per_s)
    fidelity = compare(reference, distributions, fidelity_plan) if reference is not None and distributions else None
    return PointMeasurements(quality=q, tasks=tasks, latency=lat, energy=energy, memory=memory, roofline=roofline,
                             distributions=distributions, fidelity=fidelity)
