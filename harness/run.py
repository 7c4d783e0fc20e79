"""One point: config -> model -> variant -> measurements -> one record.

A failure is data: whatever goes wrong inside a point becomes a record with a status and a
one-line reason, and the sweep goes on. Only a bad invocation (Hydra's own errors) exits non-zero.
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from harness.config import RunConfig
from harness.measure.energy import EnergyMeter
from harness.measure.hardware import Hardware, fingerprint, run_probes, software
from harness.measure.latency import measure_latency
from harness.measure.memory import gpu_memory, peak_rss_bytes, reset_gpu_peaks, reset_peak_rss, weights_bytes
from harness.measure.quality import heldout_loss
from harness.measure.roofline import decode_roofline, kv_bytes_per_position
from harness.models import ModelNotFoundError, resolve_device
from harness.params import count_params
from harness.results import schema as S
from harness.results.store import (existing_ok, point_key, probes_path, read_probes, run_dir, run_id_for,
                                   write_probes, write_record)
from harness.variants import PreparedModel, UnsupportedVariantError, VariantInfo, parse_dtype, prepare

log = logging.getLogger(__name__)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or repr(e)
    return f"{type(e).__name__}: {text[:500]}"


def _status_of(e: BaseException) -> str:
    if isinstance(e, UnsupportedVariantError):
        return "unsupported"
    if isinstance(e, torch.OutOfMemoryError):
        return "oom"
    return "failed"


def _model_block(rc: RunConfig, prepared: PreparedModel | None) -> S.ModelBlock:
    """Counts: the loaded model's own (unquantised) > its card > the config's declared ones."""
    m = rc.model
    card = prepared.loaded.card if prepared else {}
    params = card.get("params", m.params)
    non_emb = card.get("non_embedding_params", m.non_embedding_params)
    if prepared and rc.variant.kind != "quantise":  # packed quantised weights would undercount
        counts = count_params(prepared.loaded.model)
        params, non_emb = counts.total, counts.non_embedding
    tokens = card.get("train_tokens", m.train_tokens)
    flops = card.get("train_flops") or (6 * params * tokens if params and tokens else None)
    return S.ModelBlock(name=m.name, source=prepared.loaded.source if prepared else (m.path or m.hub_id or ""),
                        family=m.family, params=params, non_embedding_params=non_emb, train_tokens=tokens,
                        train_flops=flops,
                        distilled_from=prepared.loaded.config.distilled_from if prepared else m.distilled_from)


def _variant_block(rc: RunConfig, info: VariantInfo | None) -> S.VariantBlock:
    if info is None:
        v = rc.variant
        return S.VariantBlock(name=v.name, kind=v.kind, dtype=v.dtype, method=v.method, options=dict(v.options))
    return S.VariantBlock(**asdict(info))


def measure(rc: RunConfig, prepared: PreparedModel, device: torch.device, hw: Hardware,
            out_dir: Path) -> dict[str, Any]:
    """Every measurement of one loaded model; returns the record's measurement blocks."""
    model, tok = prepared.loaded.model, prepared.loaded.tokenizer
    blocks: dict[str, Any] = {}
    w_bytes = weights_bytes(model)
    reset_peak_rss()
    reset_gpu_peaks(device)

    heldout = Path(rc.quality.heldout_path)
    if not heldout.exists():
        raise FileNotFoundError(f"quality.heldout_path={heldout} does not exist; `meekbench build-tiny` writes it")
    q = heldout_loss(model, tok, heldout.read_text(encoding="utf-8"), rc.quality.context_length,
                     rc.quality.stride, rc.quality.max_bytes, rc.quality.batch_size)
    quality = S.QualityBlock(heldout_loss_nats=q.loss_nats, bits_per_byte=q.bits_per_byte,
                             heldout_tokens=q.tokens, heldout_bytes=q.bytes, context_length=q.context_length,
                             stride=q.stride)
    if rc.eval and rc.eval.get("tasks"):
        from harness.measure.tasks import evaluate_tasks

        evaluate_tasks(model, tok, rc.eval, quality, out_dir, offline=rc.offline)
    blocks["quality"] = quality

    meter = EnergyMeter(device)
    lat = measure_latency(model, tok, device, rc.bench, meter)
    scenarios = [S.LatencyScenarioBlock(**vars(sc)) for sc in lat.scenarios]
    head = next((sc for sc in scenarios if sc.status == "ok"), None)
    blocks["latency"] = S.LatencyBlock(
        prefill_ms=head.prefill_ms if head else None, decode_ms_per_token=head.decode_ms_per_token if head else None,
        decode_tokens_per_s=head.decode_tokens_per_s if head else None, scenarios=scenarios,
        timed_path=lat.timed_path, clock=lat.clock, threads=lat.threads)
    measured = [sc for sc in scenarios if sc.energy_j is not None]
    if measured:
        joules = sum(sc.energy_j for sc in measured)
        blocks["energy"] = S.EnergyBlock(joules=joules, j_per_token=joules / sum(sc.generated_tokens for sc in measured),
                                         source=meter.source)
    else:
        blocks["energy"] = S.EnergyBlock(reason=meter.reason or "no scenario completed")

    gpu = gpu_memory(device)
    blocks["memory"] = S.MemoryBlock(
        weights_bytes=w_bytes, peak_rss_bytes=peak_rss_bytes(),
        peak_rss_scope="process high-water mark from after loading to the end of measurement",
        gpu_peak_allocated_bytes=gpu.peak_allocated_bytes if gpu else None,
        gpu_peak_reserved_bytes=gpu.peak_reserved_bytes if gpu else None,
        gpu_nvml_process_bytes=gpu.nvml_process_bytes if gpu else None)

    if head and hw.probes:
        element = torch.finfo(parse_dtype(rc.variant.dtype)).bits // 8
        r = decode_roofline(w_bytes, kv_bytes_per_position(model.config, element), head.batch_size,
                            head.prompt_tokens, head.new_tokens, head.decode_ms_per_token.median,
                            hw.probes.bandwidth_bytes_per_s)
        blocks["roofline"] = S.RooflineBlock(**asdict(r))
    if any(sc.status == "oom" for sc in scenarios) and head is None:
        blocks["_status"] = ("oom", "; ".join(sc.error for sc in scenarios if sc.error))
    return blocks


def run_point(cfg: DictConfig) -> S.RunRecord:
    resolved = OmegaConf.to_container(cfg, resolve=True)
    rc: RunConfig = OmegaConf.to_object(cfg)
    started = time.perf_counter()
    if rc.bench.threads:
        torch.set_num_threads(rc.bench.threads)
    try:
        device = resolve_device(rc.hardware.device)
        device_error = None
    except ValueError as e:
        device, device_error = torch.device("cpu"), e
    hw = fingerprint(device, rc.hardware.label)
    key = point_key(resolved, hw.id)
    run_id = run_id_for(rc.model.name, rc.variant.name, hw.label, key)
    if not rc.force and (done := existing_ok(rc.results_dir, run_id)):
        log.info("%s: ok record exists, skipped (force=true recomputes)", run_id)
        return done

    log.info("point %s on %s (%s)", run_id, hw.label, device)
    status, error, blocks, prepared = "ok", None, {}, None
    try:
        if device_error:
            raise device_error
        if rc.hardware.probe:
            cache = probes_path(rc.hardware.probe_cache_dir, hw.id, device.type, torch.get_num_threads())
            hw.probes = read_probes(cache)
            if hw.probes is None:
                hw.probes = run_probes(device)
                write_probes(cache, hw.probes)
        prepared = prepare(rc.model, rc.variant, device, rc.offline)
        blocks = measure(rc, prepared, device, hw, run_dir(rc.results_dir, run_id))
        if "_status" in blocks:
            status, error = blocks.pop("_status")
    except Exception as e:  # a failure is data: record it and let the sweep go on
        status, error = _status_of(e), _one_line(e)
        log.error("%s: %s: %s", run_id, status, error)
        if not isinstance(e, (ModelNotFoundError, UnsupportedVariantError, ValueError, FileNotFoundError)):
            log.debug("traceback", exc_info=True)

    record = S.RunRecord(
        run_id=run_id, point_key=key, status=status, error=error,
        created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        duration_s=round(time.perf_counter() - started, 3), config=resolved,
        model=_model_block(rc, prepared), variant=_variant_block(rc, prepared.info if prepared else None),
        hardware=S.HardwareBlock(**{k: v for k, v in asdict(hw).items() if k != "probes"},
                                 probes=hw.probes),
        software=software(), **blocks)
    path = write_record(rc.results_dir, record)
    log.info("%s: %s -> %s", run_id, status, path)
    if prepared is not None:
        del prepared
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return record
