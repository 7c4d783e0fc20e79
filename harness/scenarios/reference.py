"""What a single point is compared with while it is measured: its baseline's held-out reference (fidelity)
and the baseline model timed interleaved with it (paired latency ratios)."""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import torch

from harness.config import RunConfig
from harness.measure.fidelity import ReferenceCapture, TokenReference
from harness.measure.quality import heldout_loss, hf_logits
from harness.results.schema import REFERENCE_ENGINE
from harness.results.store import read_reference, reference_path, write_reference
from harness.scenarios.point import failure
from harness.variants import DTYPES, PreparedModel
from harness.variants.baseline import dtype_baseline, reference_for

log = logging.getLogger(__name__)


def paired_baseline(rc: RunConfig, device: torch.device) -> tuple[PreparedModel | None, str | None]:
    """The baseline to interleave with this point's latency (bench.paired_baseline), and its name,
    or None with the reason it is missing (the point itself is still measured)."""
    if not rc.bench.paired_baseline:
        return None, None
    dtype = rc.bench.paired_baseline_dtype
    try:
        if rc.engine.name == REFERENCE_ENGINE:
            reference = reference_for(rc.model, rc.variant, dtype, device, rc.offline)
        else:  # another engine's point is paired with the model's transformers baseline
            reference = dtype_baseline(rc.model, dtype, device, rc.offline)
    except Exception as e:  # e.g. both models do not fit: measure unpaired, and say why
        why = failure(e).error
        log.warning("paired baseline unavailable: %s", why)
        return None, f"none: {why}"
    if reference is None:
        return None, "none: the point is its own baseline"
    engine = "" if rc.engine.name == REFERENCE_ENGINE else f" ({REFERENCE_ENGINE})"
    return reference, f"{rc.model.name} {reference.info.name}{engine}"


def reference_settings(rc: RunConfig, heldout: str) -> dict:
    """What makes two points' held-out distributions comparable token by token."""
    q, c, m = rc.quality, rc.compare, rc.model
    return {"heldout_sha256": hashlib.sha256(heldout.encode()).hexdigest(), "context_length": q.context_length,
            "stride": q.stride, "max_bytes": q.max_bytes, "top_k": c.top_k, "full_vocab_max": c.full_vocab_max,
            "model": {"hub_id": m.hub_id, "revision": m.revision, "path": m.path}}


def reference_file(rc: RunConfig, hardware_id: str, heldout: str) -> Path:
    """The baseline reference this point writes (a baseline) or reads (any other variant)."""
    return reference_path(rc.results_dir, rc.model.name, rc.compare.baseline_variant, hardware_id,
                          reference_settings(rc, heldout))


def _build_reference(rc: RunConfig, device: torch.device, heldout: str, path: Path, run_id: str) -> None:
    """compare.build_missing_reference: load the baseline (a dtype baseline) here and capture its reference."""
    name = rc.compare.baseline_variant
    if name not in DTYPES:
        raise ValueError(f"compare.build_missing_reference needs a dtype baseline ({', '.join(DTYPES)}), "
                         f"got compare.baseline_variant={name!r}: run that variant's point first")
    base = dtype_baseline(rc.model, name, device, rc.offline)
    capture = ReferenceCapture(rc.compare.top_k, rc.compare.full_vocab_max)
    q = rc.quality
    heldout_loss(hf_logits(base.loaded.model), base.loaded.tokenizer, heldout, q.context_length, q.stride, q.max_bytes,
                 q.batch_size, observers=[capture])
    write_reference(path, capture.result().arrays(), {"written_by": run_id, "built_on_request": True})


def load_reference(rc: RunConfig, device: torch.device, heldout: str, path: Path,
                   run_id: str) -> tuple[TokenReference | None, str | None]:
    """The baseline's reference, built here on request, or None with the reason it is missing."""
    found = read_reference(path)
    if found is None and rc.compare.build_missing_reference:
        _build_reference(rc, device, heldout, path, run_id)
        found = read_reference(path)
    if found is None:
        return None, (f"no {rc.compare.baseline_variant} reference at {path}: run the baseline point first "
                      "(same quality settings), or compare.build_missing_reference=true")
    return TokenReference.from_arrays(found[0]), None
