"""The ``single`` scenario: one point measured in this process (or a child, with engine.isolate), one
request at a time: config -> engine's prepared model -> measurements -> one record. Orchestration only.

A failure is data: whatever goes wrong inside a point becomes a record with a status and a one-line
reason, and the sweep goes on. What each record field holds is decided in harness/results/record.py.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import torch

from harness.config import RunConfig, implementation
from harness.engines import EngineInfo, Prepared
from harness.launch.isolate import ChildCrashed, ChildRaised, run_in_child
from harness.launch.job_stop import JobStopped
from harness.measure.hardware import run_probes
from harness.measure.latency import hf_decoder
from harness.measure.point import PointMeasurements, measure_point
from harness.measure.runs import add_runs
from harness.measure.stats import CI_LEVEL
from harness.models import ModelNotFoundError
from harness.results import record as R
from harness.results import schema as S
from harness.results.schema import REFERENCE_ENGINE
from harness.results.store import (CRASH_TRACEBACK, probes_path, read_probes, run_dir, settings_tag, write_distributions,
                                   write_probes, write_record, write_reference, write_samples)
from harness.scenarios import reference as ref
from harness.scenarios.point import Machine, already_done, engine_point, failure, heldout_text, machine, point_id, run_label
from harness.scenarios.repeat import more_runs
from harness.variants import UnsupportedVariantError

log = logging.getLogger(__name__)


def run(rc: RunConfig, resolved: dict) -> S.RunRecord:
    """The point's record: measured here, or in a child process with engine.isolate."""
    return _run_isolated(rc, resolved) if rc.engine.isolate else _run_here(rc, resolved)


def _run_here(rc: RunConfig, resolved: dict) -> S.RunRecord:
    threads = torch.get_num_threads()
    if rc.bench.threads:
        torch.set_num_threads(rc.bench.threads)
    try:
        return _run_point(rc, resolved)
    finally:  # the next point of this process starts from the same state
        torch.set_num_threads(threads)


def _run_isolated(rc: RunConfig, resolved: dict) -> S.RunRecord:
    """engine.isolate: the point runs in a child process; if the engine's native code kills it, the
    point is a ``failed`` record naming the signal and where it struck, and the sweep goes on."""
    started = time.perf_counter()
    m = machine(rc)
    key, run_id = point_id(rc, resolved, m.hardware, run_label(rc))
    if done := already_done(rc, run_id):
        return done
    try:
        return run_in_child(_run_here, rc, resolved, traceback_path=run_dir(rc.results_dir, run_id) / CRASH_TRACEBACK)
    except (ChildCrashed, ChildRaised, JobStopped) as e:  # the child is stopped by now
        lost = failure(e)  # failed: the child died, or raised past its own record
        log.error("%s: %s: %s", run_id, lost.status, lost.error)
        record = R.build_record(run_id=run_id, point_key=key, config=resolved, duration_s=time.perf_counter() - started,
                                model=R.model_block(rc.model), variant=R.variant_block(rc.variant),
                                hardware=m.hardware, failure=lost, engine=EngineInfo(name=rc.engine.name))
        log.info("%s: %s -> %s", run_id, record.status, write_record(rc.results_dir, record))
        return record


def _probes(rc: RunConfig, hardware_id: str, device: torch.device) -> S.Probes:
    """The machine's probes, measured once per machine and probe settings, then read from the cache."""
    hw = rc.hardware
    settings = {"repeats": hw.probe_repeats, "copy_bytes": hw.probe_copy_bytes, "matmul_n": hw.probe_matmul_n}
    cache = probes_path(hw.probe_cache_dir, hardware_id, device.type, torch.get_num_threads(), settings)
    cached = read_probes(cache)
    if cached is not None:
        return cached
    return write_probes(cache, run_probes(device, hw.probe_repeats, hw.probe_copy_bytes, hw.probe_matmul_n))


@dataclass
class _Outcome:
    """What a point got to before it ended: each stays None where it never got there."""
    probes: S.Probes | None = None
    prepared: Prepared | None = None
    measured: PointMeasurements | None = None
    samples_path: Any = None
    distributions_path: Any = None
    distributions_tag: str | None = None
    fidelity_missing: str | None = None
    failure: R.Failure | None = None


def _measure(rc: RunConfig, m: Machine, run_id: str, out: _Outcome) -> None:
    """Prepare the engine's model, then measure it (filling ``out`` as it goes)."""
    if m.device_error:
        raise m.device_error
    out.probes = _probes(rc, m.hardware.id, m.device) if rc.hardware.probe else None
    out.prepared = implementation(type(rc.engine).prepare)(engine_point(rc), m.device)
    positions = getattr(out.prepared.target.config, "max_position_embeddings", None)
    if positions and rc.quality.context_length > positions:  # scored past what the model was trained on
        raise ValueError(f"quality.context_length={rc.quality.context_length} is longer than model {rc.model.name}'s "
                         f"{positions} positions; valid: at most {positions}")
    heldout = heldout_text(rc)
    ref_file = ref.reference_file(rc, m.hardware.id, heldout)
    is_baseline = rc.variant.name == rc.compare.baseline_variant and rc.engine.name == REFERENCE_ENGINE
    token_reference = None
    if not is_baseline:
        token_reference, out.fidelity_missing = ref.load_reference(rc, m.device, heldout, ref_file, run_id)
    paired, paired_name = ref.paired_baseline(rc, m.device)
    out.measured = measure_point(
        out.prepared.target, heldout, rc.quality, rc.bench, suite=rc.eval, offline=bool(rc.offline),
        bandwidth_bytes_per_s=out.probes.bandwidth_bytes_per_s if out.probes else None,
        baseline=hf_decoder(paired.loaded.model, paired.loaded.tokenizer) if paired else None,
        baseline_name=paired_name, fidelity_plan=rc.compare, reference=token_reference)
    del paired
    if rc.bench.runs > 1 and out.measured.latency is not None:  # intervals across fresh processes too
        add_runs(out.measured.latency, more_runs(rc, m.device, run_id), rc.bench.bootstrap_resamples, CI_LEVEL,
                 rc.bench.seed)
    if (mine := out.measured.distributions) is not None:  # every point's own: the report compares any two
        out.distributions_tag = settings_tag(ref.reference_settings(rc, heldout))
        meta = {"written_by": run_id, "settings": out.distributions_tag}
        out.distributions_path = write_distributions(rc.results_dir, run_id, mine.arrays(), meta)
        if is_baseline:
            write_reference(ref_file, mine.arrays(), meta)
    if out.measured.tasks and out.measured.tasks.samples:
        out.samples_path = write_samples(rc.results_dir, run_id, out.measured.tasks.samples)


def _run_point(rc: RunConfig, resolved: dict) -> S.RunRecord:
    started = time.perf_counter()
    m = machine(rc)
    key, run_id = point_id(rc, resolved, m.hardware, run_label(rc))
    if done := already_done(rc, run_id):
        return done
    log.info("point %s on %s (%s)", run_id, m.hardware.label, m.device)
    out = _Outcome()
    try:
        _measure(rc, m, run_id, out)
    except (Exception, JobStopped) as e:  # a failure is data: record it and let the sweep go on
        out.failure = failure(e)  # an unsupported variant is expected data; anything else is an error
        (log.warning if out.failure.status == "unsupported" else log.error)("%s: %s: %s", run_id, out.failure.status,
                                                                             out.failure.error)
        if not isinstance(e, (ModelNotFoundError, UnsupportedVariantError, ValueError, FileNotFoundError)):
            log.debug("traceback", exc_info=True)
    p = out.prepared
    model = R.model_block(rc.model, p.source, p.card, p.counts, p.distilled_from) if p else R.model_block(rc.model)
    record = R.build_record(
        run_id=run_id, point_key=key, config=resolved, duration_s=time.perf_counter() - started, model=model,
        variant=R.variant_block(p.variant if p else rc.variant), hardware=m.hardware, probes=out.probes,
        measured=out.measured, samples_path=out.samples_path, failure=out.failure,
        distributions=(out.distributions_path, out.distributions_tag),
        fidelity_missing=out.fidelity_missing, engine=p.target.info if p else EngineInfo(name=rc.engine.name))
    log.info("%s: %s -> %s", run_id, record.status, write_record(rc.results_dir, record))
    if p is not None:
        p.target.close()
        del p, out
        if m.device.type == "cuda":
            torch.cuda.empty_cache()
    return record
