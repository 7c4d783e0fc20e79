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

SCHEMA_VERSION = 3
# Version 2 (latency under the ecosystem's definitions): each scenario and the headline have
# ttft_ms (was prefill_ms), itl_ms (was decode_ms_per_token: every inter-token interval),
# tpot_ms and e2e_ms per request, output_tokens_per_s (batch * N / e2e; replaces
# decode_tokens_per_s, which was batch / ITL), rounds and their spread, the bare loop and paired
# ratios; Stats says what its interval resampled. Version-1 records are upgraded on reading
# (see upgrade_v1): renamed fields keep their values, the new ones are null.
# Version 3 (a record depends only on its point): the point's own fidelity against its baseline's
# reference is a top-level block; the comparison with the baseline's *record* (paired tasks,
# gates, cost) is no longer stored, the report computes it from the records (upgrade_v2 drops it).
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
    ci_resamples: str = "samples"  # what the bootstrap resampled (the independent unit)
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
    weights: Optional[str] = None  # what the weights are, where not the publisher's (the card's line)


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


class EngineBlock(_Block):
    """What ran the point; absent in records written before engines were an axis (transformers)."""
    name: str
    version: Optional[str] = None
    build: Optional[str] = None  # the native build's flags
    artifact: Optional[str] = None  # the file measured
    artifact_bytes: Optional[int] = None
    artifact_sha256: Optional[str] = None
    file_type: Optional[str] = None  # as asked (F32, Q4_K_M, shipped ...)
    tensor_types: dict[str, int] = Field(default_factory=dict)  # as written -> tensor count
    threads: Optional[int] = None
    prepared_s: Optional[float] = None  # conversion and quantisation in this point


REFERENCE_ENGINE = "transformers"  # whose baseline records every point is compared with


def engine_name(record: "RunRecord") -> str:
    """The engine a record was measured on (records without an engine block: transformers)."""
    return record.engine.name if record.engine else REFERENCE_ENGINE


def is_baseline(record: "RunRecord", baseline_variant: str) -> bool:
    """Whether a record is its model's baseline: the baseline variant, on the reference engine."""
    return record.variant.name == baseline_variant and engine_name(record) == REFERENCE_ENGINE


def variant_label(record: "RunRecord") -> str:
    """The variant as tables and figures name it: with its engine off the reference engine."""
    engine = engine_name(record)
    return record.variant.name if engine == REFERENCE_ENGINE else f"{record.variant.name} · {engine}"


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


class PairedRatioBlock(_Block):
    """Variant / baseline from requests interleaved slot by slot inside the variant's point."""
    baseline: str
    pairs: int
    tpot_ratio: float
    tpot_ci_low: float
    tpot_ci_high: float
    ttft_ratio: float
    ttft_ci_low: float
    ttft_ci_high: float
    ci_level: float
    baseline_tpot_ms: Stats
    baseline_ttft_ms: Stats
    round_tpot_ratios: list[float] = Field(default_factory=list)


class LatencyScenarioBlock(_Block):
    prompt_tokens: int
    batch_size: int
    new_tokens: int
    status: Literal["ok", "oom", "unsupported"] = "ok"
    error: Optional[str] = None
    requests: int = 0
    rounds: int = 0
    stop_reasons: list[str] = Field(default_factory=list)
    ttft_ms: Optional[Stats] = None  # per request: time to first token
    tpot_ms: Optional[Stats] = None  # per request: (e2e - TTFT) / (N - 1)
    e2e_ms: Optional[Stats] = None  # per request
    itl_ms: Optional[Stats] = None  # every inter-token interval; interval by resampling requests
    output_tokens_per_s: Optional[float] = None  # batch * N / median e2e
    round_tpot_ms: list[float] = Field(default_factory=list)
    round_spread: Optional[float] = None  # (max - min) / median of the rounds' median TPOT
    bare_tpot_ms: Optional[Stats] = None
    generate_over_bare: Optional[float] = None
    bare_tokens_match: Optional[bool] = None
    paired: Optional[PairedRatioBlock] = None
    engine_tpot_ms: Optional[Stats] = None  # the engine's own per-token timing of the same requests
    tpot_over_engine: Optional[float] = None  # median TPOT timed here / as the engine timed it
    generated_tokens: int = 0
    measured_s: float = 0.0
    energy_j: Optional[float] = None
    energy_j_per_token: Optional[float] = None


class LatencyBlock(_Block):
    # headline: the first scenario that ran
    ttft_ms: Optional[Stats] = None
    tpot_ms: Optional[Stats] = None
    itl_ms: Optional[Stats] = None
    e2e_ms: Optional[Stats] = None
    output_tokens_per_s: Optional[float] = None
    generate_over_bare: Optional[float] = None
    round_spread: Optional[float] = None
    paired: Optional[PairedRatioBlock] = None
    scenarios: list[LatencyScenarioBlock] = Field(default_factory=list)
    timed_path: str = ""
    clock: str = ""
    threads: int = 0
    paired_with: Optional[str] = None  # the baseline interleaved for paired ratios, or why none


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


class FidelityBlock(_Block):
    """Next-token distributions of the variant against its baseline's, token by token on the
    held-out windows (see harness/measure/fidelity.py); intervals resample windows."""
    tokens: int
    windows: int
    top_k: int
    exact: bool  # the reference kept the whole vocabulary; otherwise the KL is a lower bound
    kl_mean_nats: float
    kl_ci_low: float
    kl_ci_high: float
    kl_p99_nats: float
    same_top_rate: float
    same_top_ci_low: float
    same_top_ci_high: float
    logprob_shift_nats: float
    shifted_share: float
    shifted_ci_low: float
    shifted_ci_high: float
    loss_retention: float  # baseline loss / variant loss on the same tokens
    loss_retention_ci_low: float
    loss_retention_ci_high: float
    ci_level: float
    ci_resamples: str = "windows"


class LaunchBlock(_Block):
    """Where the point ran as the scheduler saw it (all null outside a scheduler)."""
    scheduler: Optional[str] = None  # "slurm" or null (a plain process)
    job_id: Optional[str] = None
    array_job_id: Optional[str] = None
    array_task_id: Optional[str] = None
    node: Optional[str] = None
    partition: Optional[str] = None
    restart_count: Optional[str] = None  # set by SLURM when a job was requeued
    cluster: Optional[str] = None


class _PointRecord(_Block):
    """What every record of a point holds: what it is, what ran it, on what, and how it ended."""
    run_id: str
    point_key: str  # hash of the point's identity (store.IDENTITY) and hardware id
    status: Status
    error: Optional[str] = None
    created_at: str
    duration_s: float
    config: dict[str, Any]
    model: ModelBlock
    variant: VariantBlock
    engine: Optional[EngineBlock] = None
    energy: Optional[EnergyBlock] = None
    hardware: HardwareBlock
    software: dict[str, Optional[str]]
    launch: LaunchBlock = Field(default_factory=LaunchBlock)


class RunRecord(_PointRecord):
    schema_version: Literal[3] = SCHEMA_VERSION
    upgraded_from: Optional[int] = None  # the schema version it was written with, when older
    quality: Optional[QualityBlock] = None
    latency: Optional[LatencyBlock] = None
    memory: Optional[MemoryBlock] = None
    roofline: Optional[RooflineBlock] = None
    # measured in the point against its baseline's held-out reference; None for the baseline itself
    fidelity: Optional[FidelityBlock] = None
    fidelity_missing: Optional[str] = None  # why a non-baseline point has no fidelity block


_V1_RENAMES = {"prefill_ms": "ttft_ms", "decode_ms_per_token": "itl_ms", "iterations": "requests"}


def upgrade_v1(data: dict[str, Any]) -> dict[str, Any]:
    """A version-1 record as version 2: renamed latency fields keep their values (v1 intervals
    resampled pooled tokens, and say so); what v1 did not measure stays null."""
    def latency_part(block: dict[str, Any]) -> dict[str, Any]:
        out = {_V1_RENAMES.get(k, k): v for k, v in block.items() if k != "decode_tokens_per_s"}
        for key in ("ttft_ms", "itl_ms"):
            if out.get(key):
                out[key] = {"ci_resamples": "samples (version 1: pooled, not by request)", **out[key]}
        if "requests" in out:
            out["rounds"] = 1 if out["requests"] else 0
        return out

    data = dict(data, schema_version=2, upgraded_from=1)
    if data.get("latency"):
        latency = latency_part(data["latency"])
        latency["scenarios"] = [latency_part(sc) for sc in latency.get("scenarios", [])]
        data["latency"] = latency
    return data


def upgrade_v2(data: dict[str, Any]) -> dict[str, Any]:
    """A version-2 record as version 3: the fidelity it measured moves to the top level; its stored
    comparison with another record is dropped (the report recomputes it from both records)."""
    data = dict(data, schema_version=3, upgraded_from=data.get("upgraded_from") or 2)
    comparison = data.pop("comparison", None) or {}
    data["fidelity"] = comparison.get("fidelity")
    missing = [m for m in comparison.get("missing", []) if m.startswith("fidelity: ")]
    data["fidelity_missing"] = missing[0].removeprefix("fidelity: ") if missing else None
    return data


# the serving records' blocks live beside, re-exported here so ``schema.ServingRecord`` is one name for readers
from harness.results.serving_schema import *  # noqa: E402,F401,F403
