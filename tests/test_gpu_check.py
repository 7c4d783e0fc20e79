"""The GPU path without a GPU: scripts/gpu_check.sh's dry run (so it cannot rot before a GPU is
lent), the device bundle's checks, and hardware.device=cuda refused on a machine without CUDA."""
import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("fp32", "fp16", "bf16", "bnb-int8", "bnb-nf4", "ao-int8-weight", "ao-int4-weight")
needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="asserts the CPU machine's dry run")


def _bundle_module():
    spec = importlib.util.spec_from_file_location("gpu_bundle", ROOT / "scripts" / "gpu_bundle.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs_no_cuda
@pytest.mark.slow
def test_gpu_check_dry_run(models_dir, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "GPU_CHECK_WORK": str(tmp_path / "work"),
           "GPU_CHECK_MODELS_DIR": str(models_dir), "PYTHON": sys.executable}
    done = subprocess.run(["bash", "scripts/gpu_check.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert {p.name for p in out.iterdir()} == {"gpu_check.log", "environment.txt", "summary.txt", "support_matrix.md",
                                               "report.md", "report.html", "records.tar.gz"}
    skipped = (out / "environment.txt").read_text()
    for step in ("CUDA-event timing", "GPU memory peaks", "NVML energy", "ONNX Runtime's CUDA provider", "lm-eval"):
        assert f"skipped: {step}" in skipped, step  # every CUDA-only step says why it did not run
    matrix = (out / "support_matrix.md").read_text()
    for variant in VARIANTS[1:]:  # each against the fp32 baseline, which heads the matrix
        assert f"`{variant}`" in matrix, variant
    records = [json.loads(p.read_text()) for p in (tmp_path / "work" / "results" / "runs").glob("*/record.json")]
    assert sorted(r["variant"]["name"] for r in records) == sorted(VARIANTS)
    for r in records:  # the same code as the CUDA run, on the cpu: its clock and device say so
        assert r["hardware"]["device"] == "cpu" and r["config"]["hardware"]["device"] == "cpu"
        if r["status"] == "ok":
            assert r["latency"]["clock"] == "perf_counter" and r["memory"]["gpu_peak_allocated_bytes"] is None


def test_bundle_size_check_names_the_excess_and_the_largest_wheel(tmp_path):
    gpu_bundle = _bundle_module()
    small, big = tmp_path / "small-1.0-py3-none-any.whl", tmp_path / "big-2.0-py3-none-any.whl"
    small.write_bytes(b"x" * 2**20)
    big.write_bytes(b"x" * 50 * 2**20)
    ok, text = gpu_bundle.size_check([small, big], tree=0, limit_mib=64)
    assert ok and "fits: 13.00 MiB to spare" in text
    ok, text = gpu_bundle.size_check([small, big], tree=10 * 2**20, limit_mib=64)
    assert not ok
    assert "over the limit by 1.00 MiB" in text and "largest wheel is big-2.0-py3-none-any.whl (50.00 MiB)" in text


def test_bundle_finds_a_dependency_neither_bundled_nor_in_the_image(tmp_path):
    gpu_bundle = _bundle_module()
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("demo-1.0.dist-info/METADATA", "Name: demo\nRequires-Dist: numpy\nRequires-Dist: nosuchpkg>=1\n"
                   "Requires-Dist: winonly; sys_platform == 'win32'\nRequires-Dist: testing; extra == 'test'\n")
    assert gpu_bundle.unmet_dependencies([wheel]) == ["demo-1.0-py3-none-any.whl needs nosuchpkg>=1"]


@pytest.mark.slow
def test_bundle_resolves_and_fits(tmp_path):
    """The real bundle from the package index: every dependency met, under the limit with margin."""
    done = subprocess.run([sys.executable, "scripts/gpu_bundle.py", "--dest", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    names = {p.name.split("-")[0].lower() for p in tmp_path.glob("*.whl")}
    assert {"hydra_core", "omegaconf", "pydantic", "pydantic_core", "bitsandbytes", "torchao", "plotly"} <= names
    assert "fits:" in done.stdout


@needs_no_cuda
def test_cuda_refused_before_any_load(tmp_path):
    """A single run on a device the machine lacks: one line naming what was found, exit 2, no record."""
    done = subprocess.run([sys.executable, "-m", "harness", "run", "model=tiny-xs", "hardware.device=cuda",
                           f"results_dir={tmp_path / 'r'}", f"models_dir={tmp_path / 'no-models'}"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "meekbench: bad config: hardware.device='cuda' but this machine has no CUDA device" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "r" / "runs").exists()


@needs_no_cuda
def test_cuda_in_a_sweep_is_an_unsupported_record(run_cfg):
    from harness.run import run_point

    rec = run_point(run_cfg("model=tiny-xs", "hardware.device=cuda"))
    assert rec.status == "unsupported"
    assert "no CUDA device (found: torch" in rec.error and "valid here: cpu, auto" in rec.error
