"""The RunRecord: one measured point, the only thing that crosses from measurement to reporting.

Units are in field names (_ms, _s, _bytes, _j, _nats, _flops). Raw samples sit beside their
summaries. Bump SCHEMA_VERSION when a field changes meaning; readers reject unknown versions
with a clear message (see store.read_record).

This module imports nothing from ``harness.measure``: measurement returns its own dataclasses,
and ``harness.results.record`` validates them into these blocks by attribute name
(``from_attributes``), so a field measured is a field recorded with no copying by hand.
tests/test_architecture.py checks that the two agree field by field.
"""
from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1
Status = Literal["ok", "failed", "unsupported", "oom"]


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=(), from_attributes=True)


class Stats(_Block):
    """Raw timing samples with their summary: median with a bootstrap interval, tails, spread."""
    n: int
    median: float
    p90: float
    p99: float
    mean: float
    stdev: float
    cv: float  # stdev / mean
    ci_low: float  # bootstrap confidence interval of the median
    ci_high: float
    ci_level: float
    samples: list[float]  # raw, in measurement order, so a report can recompute everything


class ProbesBlock(_Block):
    """Short measured probes of the machine, cached per hardware id in the results store."""
    device: str
    bandwidth_bytes_per_s: float  # median of tensor copies (read + write bytes / time)
    matmul_flops_per_s: float  # median of square matmuls (2 n^3 / time)
    matmul_dtype: str
    matmul_n: int
    copy_bytes: int
    samples_bandwidth: list[float] = Field(default_factory=list)
    samples_matmul: list[float] = Field(default_factory=list)
    measured_at: float = 0.0


class ModelBlock(_Block):
    name: str
    source: str
    family: str = ""
    params: Optional[int] = None
    non_embedding_params: Optional[int] = None
    train_tokens: Optional[int] = None
    train_flops: Optional[float] = None
    distilled_from: Optional[str] = None


class VariantBlock(_Block):
    name: str
    kind: str
    dtype: str
    method: Optional[str] = None
    library: Optional[str] = None
    library_version: Optional[str] = None
    weight_bits: Optional[float] = None
    options: dict[str, Any] = Field(default_factory=dict)
    extra: dict[str, Any] = Field(default_factory=dict)


class TaskScore(_Block):
    metrics: dict[str, Optional[float]]  # e.g. acc, acc_stderr, bits_per_byte
    n_samples: Optional[int] = None
    n_shot: Optional[int] = None
    version: Optional[str] = None


class QualityBlock(_Block):
    heldout_loss_nats: Optional[float] = None
    bits_per_byte: Optional[float] = None
    heldout_tokens: Optional[int] = None
    heldout_bytes: Optional[int] = None
    context_length: Optional[int] = None
    stride: Optional[int] = None
    tasks: dict[str, TaskScore] = Field(default_factory=dict)
    lm_eval_version: Optional[str] = None
    samples_path: Optional[str] = None  # per-sample log next to the record


class LatencyScenarioBlock(_Block):
    prompt_tokens: int
    batch_size: int
    new_tokens: int
    status: Literal["ok", "oom"] = "ok"
    error: Optional[str] = None
    iterations: int = 0
    prefill_ms: Optional[Stats] = None
    decode_ms_per_token: Optional[Stats] = None
    decode_tokens_per_s: Optional[float] = None
    generated_tokens: int = 0
    measured_s: float = 0.0
    energy_j: Optional[float] = None
    energy_j_per_token: Optional[float] = None


class LatencyBlock(_Block):
    prefill_ms: Optional[Stats] = None  # headline: the first scenario
    decode_ms_per_token: Optional[Stats] = None
    decode_tokens_per_s: Optional[float] = None
    scenarios: list[LatencyScenarioBlock] = Field(default_factory=list)
    timed_path: str = ""
    clock: str = ""
    threads: int = 0


class MemoryBlock(_Block):
    weights_bytes: Optional[int] = None
    peak_rss_bytes: Optional[int] = None
    peak_rss_scope: str = ""
    gpu_peak_allocated_bytes: Optional[int] = None
    gpu_peak_reserved_bytes: Optional[int] = None
    gpu_nvml_process_bytes: Optional[int] = None


class EnergyBlock(_Block):
    joules: Optional[float] = None
    j_per_token: Optional[float] = None
    source: Optional[str] = None
    reason: Optional[str] = None  # why joules is null


class RooflineBlock(_Block):
    bytes_per_token: float  # weights + KV cache read per decoded token
    seconds_per_token: float
    achieved_bytes_per_s: float
    peak_bytes_per_s: float
    fraction_of_bandwidth: float


class HardwareBlock(_Block):
    id: str
    label: str
    device: str
    hostname: str
    cpu_model: str
    cpu_cores_logical: int
    cpu_cores_physical: Optional[int] = None
    ram_bytes: int
    torch_threads: int
    gpu_name: Optional[str] = None
    gpu_count: int = 0
    gpu_memory_bytes: Optional[int] = None
    gpu_driver: Optional[str] = None
    cuda: Optional[str] = None
    probes: Optional[ProbesBlock] = None


class RunRecord(_Block):
    schema_version: Literal[1] = SCHEMA_VERSION
    run_id: str
    point_key: str  # hash of the resolved config (less output paths) and hardware id
    status: Status
    error: Optional[str] = None
    created_at: str
    duration_s: float
    config: dict[str, Any]
    model: ModelBlock
    variant: VariantBlock
    quality: Optional[QualityBlock] = None
    latency: Optional[LatencyBlock] = None
    memory: Optional[MemoryBlock] = None
    energy: Optional[EnergyBlock] = None
    roofline: Optional[RooflineBlock] = None
    hardware: HardwareBlock
    software: dict[str, Optional[str]]
