"""One point: config -> model -> variant -> measurements -> one record. Orchestration only.

A failure is data: whatever goes wrong inside a point becomes a record with a status and a
one-line reason, and the sweep goes on. Only a bad invocation (Hydra's own errors) exits non-zero.
What each record field holds is decided in harness/results/record.py.
"""
from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from harness.cards import read_card
from harness.config import RunConfig
from harness.engines import EngineInfo, EngineModel, transformers_model
from harness.isolate import ChildCrashed, ChildRaised, run_in_child
from harness.job_stop import JobStopped, stop_reaches_the_point
from harness.measure.fidelity import ReferenceCapture, TokenReference
from harness.measure.hardware import fingerprint, run_probes
from harness.measure.latency import hf_decoder
from harness.measure.point import measure_point
from harness.measure.quality import heldout_loss, hf_logits
from harness.models import ModelNotFoundError, resolve_device
from harness.params import count_params
from harness.results import record as R
from harness.results import schema as S
from harness.results.schema import REFERENCE_ENGINE
from harness.results.store import (CRASH_TRACEBACK, existing_ok, point_key, probes_path, read_probes,
                                   read_reference, reference_path, run_dir, run_id_for, write_probes, write_record,
                                   write_reference, write_samples)
from harness.variants import DTYPES, PreparedModel, UnsupportedVariantError, VariantInfo, prepare
from harness.variants.baseline import dtype_baseline, reference_for

log = logging.getLogger(__name__)


def _failure(e: BaseException) -> R.Failure:
    if isinstance(e, UnsupportedVariantError):
        status = "unsupported"
    elif isinstance(e, torch.OutOfMemoryError):
        status = "oom"
    else:
        status = "failed"
    text = " ".join(str(e).split()) or repr(e)
    return R.Failure(status, f"{type(e).__name__}: {text[:500]}")


def _probes(rc: RunConfig, hardware_id: str, device: torch.device) -> S.Probes:
    """The machine's probes, measured once per machine and probe settings, then read from the cache."""
    settings = {"repeats": rc.hardware.probe_repeats, "copy_bytes": rc.hardware.probe_copy_bytes,
                "matmul_n": rc.hardware.probe_matmul_n}
    cache = probes_path(rc.hardware.probe_cache_dir, hardware_id, device.type, torch.get_num_threads(), settings)
    cached = read_probes(cache)
    if cached is not None:
        return cached
    return write_probes(cache, run_probes(device, rc.hardware.probe_repeats, rc.hardware.probe_copy_bytes,
                                          rc.hardware.probe_matmul_n))


def _paired_reference(rc: RunConfig, device: torch.device) -> tuple[PreparedModel | None, str | None]:
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
        log.warning("paired baseline unavailable: %s", _failure(e).error)
        return None, f"none: {_failure(e).error}"
    if reference is None:
        return None, "none: the point is its own baseline"
    engine = "" if rc.engine.name == REFERENCE_ENGINE else f" ({REFERENCE_ENGINE})"
    return reference, f"{rc.model.name} {reference.info.name}{engine}"


def _heldout_text(rc: RunConfig) -> str:
    heldout = Path(rc.quality.heldout_path)
    if not heldout.exists():
        raise FileNotFoundError(f"quality.heldout_path={heldout} does not exist; `meekbench build-tiny` writes it")
    return heldout.read_text(encoding="utf-8")


def _reference_file(rc: RunConfig, hardware_id: str, heldout: str) -> Path:
    """The baseline reference this point writes (a baseline) or reads (any other variant)."""
    q, c, m = rc.quality, rc.compare, rc.model
    settings = {"heldout_sha256": hashlib.sha256(heldout.encode()).hexdigest(), "context_length": q.context_length,
                "stride": q.stride, "max_bytes": q.max_bytes, "top_k": c.top_k, "full_vocab_max": c.full_vocab_max,
                "model": {"hub_id": m.hub_id, "revision": m.revision, "path": m.path}}
    return reference_path(rc.results_dir, m.name, c.baseline_variant, hardware_id, settings)


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


def _load_reference(rc: RunConfig, device: torch.device, heldout: str, path: Path,
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


@dataclass
class _Prepared:
    """The point's model as its engine runs it, with what its record's model block reads."""
    target: EngineModel
    variant: VariantInfo
    source: str
    card: Any = None
    counts: Any = None
    distilled_from: str | None = None


def _prepare(rc: RunConfig, device: torch.device) -> _Prepared:
    if rc.engine.name == REFERENCE_ENGINE:
        p = prepare(rc.model, rc.variant, device, rc.offline)
        loaded = p.loaded
        return _Prepared(transformers_model(loaded.model, loaded.tokenizer), p.info, loaded.source, loaded.card,
                         count_params(loaded.model) if p.counts_readable else None, loaded.config.distilled_from)
    if rc.engine.name == "onnxruntime":
        from harness.engines import onnxrt

        target, info, checkpoint = onnxrt.prepare(rc.model, rc.variant, rc.engine, rc.quality.context_length,
                                                  rc.offline)
    else:
        from harness.engines import llamacpp

        decode_length = max(rc.bench.prompt_tokens) + rc.bench.new_tokens
        target, info, checkpoint = llamacpp.prepare(rc.model, rc.variant, rc.engine, rc.quality.context_length,
                                                    decode_length, rc.offline)
    card = read_card(checkpoint) if (checkpoint / "card.json").exists() else None
    return _Prepared(target, info, str(checkpoint.resolve()), card)


def _run_label(rc: RunConfig) -> str:
    """The variant's part of the run id: prefixed by the engine's name off the reference engine."""
    return rc.variant.name if rc.engine.name == REFERENCE_ENGINE else f"{rc.engine.name}-{rc.variant.name}"


def run_point(cfg: DictConfig) -> S.RunRecord | list[S.ServingRecord]:
    resolved = OmegaConf.to_container(cfg, resolve=True)
    rc: RunConfig = OmegaConf.to_object(cfg)
    with stop_reaches_the_point():  # a SLURM job's end is recorded as the point's failure
        if rc.scenario.kind != "single":  # an OpenAI-compatible server under load: one record per level
            from harness.serve import run_serving

            return run_serving(rc, resolved)
        if rc.engine.isolate:
            return _run_isolated(rc, resolved)
        return _run_here(rc, resolved)


def _run_here(rc: RunConfig, resolved: dict) -> S.RunRecord:
    threads = torch.get_num_threads()
    if rc.bench.threads:
        torch.set_num_threads(rc.bench.threads)
    try:
        return _run_point(rc, resolved)
    finally:  # the next point of this process starts from the same state
        torch.set_num_threads(threads)


@dataclass
class _Identity:
    device: torch.device
    device_error: ValueError | None
    hardware: S.Hardware  # the machine's fingerprint
    key: str
    run_id: str


def _identify(rc: RunConfig, resolved: dict) -> _Identity:
    try:
        device, device_error = resolve_device(rc.hardware.device), None
    except ValueError as e:  # recorded as the point's failure
        device, device_error = torch.device("cpu"), e
    hw = fingerprint(device, rc.hardware.label)
    key = point_key(resolved, hw.id)
    return _Identity(device, device_error, hw, key, run_id_for(rc.model.name, _run_label(rc), hw.label, key))


def _already_done(rc: RunConfig, run_id: str) -> S.RunRecord | None:
    """The point's ok record, which a re-run skips (unless force=true)."""
    if not rc.force and (done := existing_ok(rc.results_dir, run_id)):
        log.info("%s: ok record exists, skipped (force=true recomputes)", run_id)
        return done
    return None


def _run_isolated(rc: RunConfig, resolved: dict) -> S.RunRecord:
    """engine.isolate: the point runs in a child process; if the engine's native code kills it, the
    point is a ``failed`` record naming the signal and where it struck, and the sweep goes on."""
    started = time.perf_counter()
    ident = _identify(rc, resolved)
    if done := _already_done(rc, ident.run_id):
        return done
    try:
        return run_in_child(_run_here, rc, resolved,
                            traceback_path=run_dir(rc.results_dir, ident.run_id) / CRASH_TRACEBACK)
    except (ChildCrashed, ChildRaised, JobStopped) as e:  # the child is stopped by now
        failure = R.Failure("failed", f"{type(e).__name__}: {' '.join(str(e).split())[:500]}")
        log.error("%s: %s: %s", ident.run_id, failure.status, failure.error)
        record = R.build_record(run_id=ident.run_id, point_key=ident.key, config=resolved,
                                duration_s=time.perf_counter() - started, model=R.model_block(rc.model),
                                variant=R.variant_block(rc.variant), hardware=ident.hardware, failure=failure,
                                engine=EngineInfo(name=rc.engine.name))
        log.info("%s: %s -> %s", ident.run_id, record.status, write_record(rc.results_dir, record))
        return record


def _run_point(rc: RunConfig, resolved: dict) -> S.RunRecord:
    started = time.perf_counter()
    ident = _identify(rc, resolved)
    device, hw, key, run_id = ident.device, ident.hardware, ident.key, ident.run_id
    if done := _already_done(rc, run_id):
        return done

    log.info("point %s on %s (%s)", run_id, hw.label, device)
    probes = measured = samples_path = failure = prepared = fidelity_missing = None
    is_baseline = rc.variant.name == rc.compare.baseline_variant and rc.engine.name == REFERENCE_ENGINE
    try:
        if ident.device_error:
            raise ident.device_error
        probes = _probes(rc, hw.id, device) if rc.hardware.probe else None
        prepared = _prepare(rc, device)
        heldout = _heldout_text(rc)
        ref_file = _reference_file(rc, hw.id, heldout)
        token_reference = None
        if not is_baseline:
            token_reference, fidelity_missing = _load_reference(rc, device, heldout, ref_file, run_id)
        reference, reference_name = _paired_reference(rc, device)
        measured = measure_point(prepared.target, heldout, rc.quality, rc.bench, suite=rc.eval,
                                 offline=bool(rc.offline),
                                 bandwidth_bytes_per_s=probes.bandwidth_bytes_per_s if probes else None,
                                 baseline=hf_decoder(reference.loaded.model, reference.loaded.tokenizer)
                                 if reference else None, baseline_name=reference_name,
                                 fidelity_plan=rc.compare, capture_reference=is_baseline, reference=token_reference)
        del reference
        if measured.reference is not None:
            write_reference(ref_file, measured.reference.arrays(), {"written_by": run_id})
        if measured.tasks and measured.tasks.samples:
            samples_path = write_samples(rc.results_dir, run_id, measured.tasks.samples)
    except (Exception, JobStopped) as e:  # a failure is data: record it and let the sweep go on
        failure = _failure(e)  # an unsupported variant is expected data; anything else is an error
        (log.warning if failure.status == "unsupported" else log.error)("%s: %s: %s", run_id, failure.status,
                                                                         failure.error)
        if not isinstance(e, (ModelNotFoundError, UnsupportedVariantError, ValueError, FileNotFoundError)):
            log.debug("traceback", exc_info=True)

    if prepared is not None:
        model = R.model_block(rc.model, prepared.source, prepared.card, prepared.counts, prepared.distilled_from)
    else:
        model = R.model_block(rc.model)
    record = R.build_record(
        run_id=run_id, point_key=key, config=resolved, duration_s=time.perf_counter() - started, model=model,
        variant=R.variant_block(prepared.variant if prepared else rc.variant), hardware=hw, probes=probes,
        measured=measured, samples_path=samples_path, failure=failure, fidelity_missing=fidelity_missing,
        engine=prepared.target.info if prepared else EngineInfo(name=rc.engine.name))
    path = write_record(rc.results_dir, record)
    log.info("%s: %s -> %s", run_id, record.status, path)
    if prepared is not None:
        prepared.target.close()
        del prepared
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return record
