"""Sweeps on a real SLURM cluster: the one-node cluster of scripts/slurm_local.sh, started here.

Skipped, with the reason printed, only where the cluster cannot start (not root, SLURM's packages
not installed by set-up, the daemons fail); on a machine like CI's (scripts/test.sh) they run. Each test submits real array jobs through
Hydra's submitit launcher with the `submitit_slurm` preset, as a lab would.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.results.store import iter_records

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent
POINT = ["variant=fp32", "bench=quick", "bench.threads=1", "quality.max_bytes=5000", "hardware.probe=false"]


@pytest.fixture(scope="session")
def slurm_cluster():
    if os.geteuid() != 0:
        pytest.skip("SLURM tests need root to start the local cluster (scripts/slurm_local.sh)")
    # set-up installs the packages (scripts/test.sh: MEEKBENCH_SLURM=1); a test never runs apt
    out = subprocess.run(["bash", str(ROOT / "scripts" / "slurm_local.sh")], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "SLURM_LOCAL_NO_INSTALL": "1"})
    print(out.stdout[-2000:])
    if out.returncode != 0:
        pytest.skip(f"the local SLURM cluster did not start: {(out.stderr or out.stdout).strip()[-800:]}")
    partition = subprocess.run(["sinfo", "-h", "-o", "%R"], capture_output=True, text=True).stdout.split()[0]
    yield partition
    if "cluster already up" not in out.stdout:  # started here: leave the machine as it was
        subprocess.run(["bash", str(ROOT / "scripts" / "slurm_local.sh"), "stop"], capture_output=True, timeout=120)


def _sweep(models_dir, results, partition, models, *extra) -> subprocess.Popen:
    """``meekbench run -m`` through SLURM with the preset's own fields set; Hydra's logs under
    ``results/sweep-<n>`` (one directory per sweep, so two at once never share one)."""
    sweep_dir = results / f"sweep-{time.time_ns()}"
    args = [sys.executable, "-m", "harness", "run", "-m", "hydra/launcher=submitit_slurm",
            f"hydra.launcher.partition={partition}", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=4",
            "hydra.launcher.gpus_per_node=null", "hydra.launcher.timeout_min=10",
            "hydra.launcher.array_parallelism=2", f"model={models}", *POINT,
            f"models_dir={models_dir}", f"results_dir={results}", f"hydra.sweep.dir={sweep_dir}", *extra]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)


def _finish(proc: subprocess.Popen, timeout: float = 900) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def _records(results):
    return [r for r in iter_records([results])]


def _logs(results) -> dict[Path, str]:
    """submitit's per-task logs (``<array job>_<task>_0_log.out/.err``) of every sweep so far."""
    return {p: p.read_text(errors="replace") for p in results.glob("sweep-*/.submitit/*/*_log.*")}


def test_a_sweep_runs_as_an_array_and_records_say_where(slurm_cluster, models_dir, tmp_path):
    results = tmp_path / "results"
    code, out = _finish(_sweep(models_dir, results, slurm_cluster, "tiny-xs,tiny-s"))
    assert code == 0, out[-3000:]
    recs = _records(results)
    assert sorted(r.model.name for r in recs) == ["tiny-s", "tiny-xs"] and all(r.status == "ok" for r in recs)
    launch = [r.launch for r in recs]
    assert all(l.scheduler == "slurm" and l.job_id and l.node and l.partition == slurm_cluster for l in launch)
    assert {l.array_job_id for l in launch} == {launch[0].array_job_id}  # one array...
    assert sorted(l.array_task_id for l in launch) == ["0", "1"]  # ...one task per point


def test_a_cancelled_task_is_measured_once_by_the_resubmitted_sweep(slurm_cluster, models_dir, tmp_path):
    results = tmp_path / "results"
    # 30 s of timing, whatever the machine's speed (max_iterations lifted): far past the cancel's TERM-to-KILL
    # wait (KillWait=10 in scripts/slurm_local.sh), so the point cannot finish before it is killed
    slow = ["bench.min_seconds=10", "bench.repeats=3", "bench.max_iterations=100000"]
    proc = _sweep(models_dir, results, slurm_cluster, "tiny-xs,tiny-s", *slow)
    victim = None
    deadline = time.time() + 300
    while victim is None and time.time() < deadline:  # cancel tiny-s's task once its point has started
        started = [p for p, text in _logs(results).items() if "point tiny-s--" in text]
        victim = "_".join(started[0].name.split("_")[:2]) if started else None
        time.sleep(0.5)
    assert victim, "tiny-s's array task never started its point"
    subprocess.run(["scancel", victim], check=True)
    code, out = _finish(proc)
    assert code != 0, "the launcher should report the cancelled task (did its point finish before the KILL?)"
    first = {r.model.name: r for r in _records(results)}
    assert set(first) == {"tiny-xs"}, "only the finished point is recorded"

    code, out = _finish(_sweep(models_dir, results, slurm_cluster, "tiny-xs,tiny-s", *slow))
    assert code == 0, out[-3000:]
    again = _records(results)
    assert sorted(r.model.name for r in again) == ["tiny-s", "tiny-xs"]  # no duplicate
    by_model = {r.model.name: r for r in again}
    assert by_model["tiny-xs"].created_at == first["tiny-xs"].created_at  # skipped, not redone
    assert by_model["tiny-s"].launch.array_job_id != victim.split("_")[0]  # measured by the second sweep


def test_a_point_past_its_time_limit_is_requeued_then_recorded_by_the_rerun(slurm_cluster, models_dir, tmp_path):
    """1-minute limit, one requeue allowed (max_num_timeout=1): the point times out, is requeued,
    times out again, and submitit gives up inside the point, which records that as its failure;
    the same sweep with room enough replaces it with an ok record."""
    results = tmp_path / "results"
    slow = ["bench.min_seconds=22", "bench.repeats=3", "bench.max_iterations=100000"]  # > 1 min of timing
    code, out = _finish(_sweep(models_dir, results, slurm_cluster, "tiny-xs", *slow, "hydra.launcher.timeout_min=1",
                               "hydra.launcher.max_num_timeout=1", "hydra.launcher.signal_delay_s=20"), timeout=600)
    assert code == 0, out[-3000:]
    (failed,) = _records(results)
    assert failed.status == "failed" and "timed-out too many times" in failed.error, failed.error
    stderr = "".join(text for path, text in _logs(results).items() if path.name.endswith("_log.err"))
    caught = re.findall(r"^submitit WARNING .* this job is timed-out", stderr, flags=re.M)
    assert len(caught) == 2, stderr[-3000:]  # the first one requeued the job, the second gave up
    assert "DUE TO JOB REQUEUE" in stderr

    code, out = _finish(_sweep(models_dir, results, slurm_cluster, "tiny-xs", *slow))
    assert code == 0, out[-3000:]
    (rec,) = _records(results)
    assert rec.run_id == failed.run_id and rec.status == "ok" and rec.launch.scheduler == "slurm"


def test_two_sweeps_at_once_into_one_directory_lose_no_record(slurm_cluster, models_dir, tmp_path):
    results = tmp_path / "results"
    a = _sweep(models_dir, results, slurm_cluster, "tiny-xs,tiny-s", "hydra.launcher.array_parallelism=1")
    b = _sweep(models_dir, results, slurm_cluster, "tiny-s,tiny-m", "hydra.launcher.array_parallelism=1")
    for proc in (a, b):
        code, out = _finish(proc)
        assert code == 0, out[-3000:]
    recs = _records(results)
    assert sorted(r.model.name for r in recs) == ["tiny-m", "tiny-s", "tiny-xs"]  # tiny-s once
    assert all(r.status == "ok" for r in recs)


def test_the_cluster_script_is_idempotent(slurm_cluster):
    out = subprocess.run(["bash", str(ROOT / "scripts" / "slurm_local.sh")], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "cluster already up" in out.stdout, out.stdout + out.stderr
    assert shutil.which("sbatch")
