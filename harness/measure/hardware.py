"""Hardware fingerprint, plus short measured probes (memory bandwidth, matmul FLOP/s).

The caller caches the probes per machine (by hardware id, in the results store) so a sweep
pays once. Software versions and the git sha are provenance: see harness/results/provenance.py.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import re
import statistics
import subprocess
import time
from pathlib import Path

import psutil
import torch

from harness.blocks import Hardware, Probes
from harness.measure.clock import DeviceClock

log = logging.getLogger(__name__)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpu_driver() -> str | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        v = pynvml.nvmlSystemGetDriverVersion()
        return v.decode() if isinstance(v, bytes) else v
    except Exception:
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=10)
            return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
        except (OSError, subprocess.TimeoutExpired):
            return None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def fingerprint(device: torch.device, label: str | None = None) -> Hardware:
    cpu = _cpu_model()
    logical = os.cpu_count() or 1
    hw = Hardware(
        id="", label="", device=str(device), hostname=platform.node(), cpu_model=cpu,
        cpu_cores_logical=logical, cpu_cores_physical=psutil.cpu_count(logical=False),
        ram_bytes=psutil.virtual_memory().total, torch_threads=torch.get_num_threads(),
    )
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        hw.gpu_name, hw.gpu_count = props.name, torch.cuda.device_count()
        hw.gpu_memory_bytes, hw.cuda, hw.gpu_driver = props.total_memory, torch.version.cuda, _gpu_driver()
    ident = [cpu, logical, round(hw.ram_bytes / 2**30), hw.device.split(":")[0], hw.gpu_name, hw.gpu_memory_bytes]
    hw.id = hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:12]
    hw.label = label or (_slug(hw.gpu_name) if hw.gpu_name else f"cpu-{_slug(cpu)}-{logical}c")
    return hw


def run_probes(device: torch.device, repeats: int, copy_bytes: int | None = None,
               matmul_n: int | None = None) -> Probes:
    """Median copy bandwidth and matmul rate over ``repeats`` timed runs (after one untimed run).

    Sizes default per device: 1 GiB copies and 8192^2 bf16 matmuls on a GPU, 128 MiB and
    1024^2 fp32 on a CPU (large enough to leave the caches, short enough for a 2-core machine).
    """
    clock = DeviceClock(device)
    gpu = device.type == "cuda"
    copy_bytes = copy_bytes or ((1 << 30) if gpu else (128 << 20))
    src = torch.empty(copy_bytes // 4, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    bw = []
    for i in range(repeats + 1):
        t0 = clock.now()
        dst.copy_(src)
        dt = clock.now() - t0
        if i:  # first copy touches fresh pages
            bw.append(2 * copy_bytes / dt)
    del src, dst
    n = matmul_n or (8192 if gpu else 1024)
    dtype = torch.bfloat16 if gpu else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    fl = []
    for i in range(repeats + 1):
        t0 = clock.now()
        a @ b
        dt = clock.now() - t0
        if i:
            fl.append(2 * n**3 / dt)
    return Probes(device=str(device), bandwidth_bytes_per_s=statistics.median(bw), matmul_flops_per_s=statistics.median(fl),
                  matmul_dtype=str(dtype).removeprefix("torch."), matmul_n=n, copy_bytes=copy_bytes,
                  samples_bandwidth=bw, samples_matmul=fl, measured_at=time.time())
