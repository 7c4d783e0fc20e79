"""bench.runs: runs 2..N of a single point's latency, each in a fresh child process (the isolation
launcher), each interleaved with its paired baseline as the point's own run is; their samples join
run 1's in the record's ``across_runs`` (harness/measure/runs.py)."""
from __future__ import annotations

import logging

import torch

from harness.blocks import Latency
from harness.config import RunConfig, implementation
from harness.launch.isolate import run_in_child
from harness.measure.energy import EnergyMeter
from harness.measure.latency import hf_decoder, measure_latency
from harness.results.store import CRASH_TRACEBACK, run_dir
from harness.scenarios.point import engine_point
from harness.scenarios.reference import paired_baseline

log = logging.getLogger(__name__)


def latency_run(rc: RunConfig, device_name: str) -> Latency:
    """In the child: the engine's model and its paired baseline loaded afresh, the latency timed."""
    if rc.bench.threads:
        torch.set_num_threads(rc.bench.threads)
    device = torch.device(device_name)
    prepared = implementation(type(rc.engine).prepare)(engine_point(rc), device)
    try:
        paired, name = paired_baseline(rc, device)
        target = prepared.target
        return measure_latency(target.decoder, target.vocab_size, device, rc.bench, EnergyMeter(device),
                               hf_decoder(paired.loaded.model, paired.loaded.tokenizer) if paired else None, name,
                               threads=target.info.threads)
    finally:
        prepared.target.close()


def more_runs(rc: RunConfig, device: torch.device, run_id: str) -> list[Latency]:
    """Runs 2..bench.runs, one fresh process each (a crash fails the point, as any measurement's would)."""
    runs = []
    for i in range(2, rc.bench.runs + 1):
        log.info("%s: latency run %d of %d in a fresh process", run_id, i, rc.bench.runs)
        runs.append(run_in_child(latency_run, rc, str(device),
                                 traceback_path=run_dir(rc.results_dir, run_id) / f"run{i}-{CRASH_TRACEBACK}"))
    return runs
