"""The RunRecord: one measured point, the only thing that crosses from measurement to reporting.

Units are in field names (_ms, _s, _bytes, _j, _nats, _flops). Raw samples sit beside their
summaries. Bump SCHEMA_VERSION when a field changes meaning; readers reject unknown versions
with a clear message (see store.read_record).

The measured blocks (quality, latency, memory, energy, roofline, fidelity, hardware, variant,
engine) are defined once in ``harness.blocks``: measurement returns them and a record stores them
as they are. This module adds what only a record has (identity, status, model, software, launch)
and imports nothing from ``harness.measure``.
"""
from __future__ import annotations

from typing import Any, Literal, Optional


from harness.blocks import (AcrossRuns, EngineInfo, Energy, Fidelity, Hardware, Latency, LatencyScenario,  # noqa: F401
                            Memory, PairedRatio, Probes, Quality, Roofline, Stats, TaskScore, VariantInfo)
# the bases every record shares, and the serving record, importable from here as before
from harness.results.record_base import LaunchBlock, ModelBlock, Status, _Block, _PointRecord  # noqa: F401
from harness.results.serving_schema import *  # noqa: F401,F403

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


class RunRecord(_PointRecord):
    schema_version: Literal[3] = SCHEMA_VERSION
    upgraded_from: Optional[int] = None  # the schema version it was written with, when older
    quality: Optional[Quality] = None
    latency: Optional[Latency] = None
    memory: Optional[Memory] = None
    roofline: Optional[Roofline] = None
    # measured in the point against its baseline's held-out reference; None for the baseline itself
    fidelity: Optional[Fidelity] = None
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
