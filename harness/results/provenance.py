"""Provenance of a record: which code and which package versions produced it.

Read from package metadata (no imports of the packages themselves, so no torch here) and from
git, when the harness runs from a checkout.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import harness
from harness.io import package_version

SOURCE_ROOT = Path(harness.__file__).resolve().parent.parent
PACKAGES = ("torch", "transformers", "tokenizers", "accelerate", "safetensors", "bitsandbytes", "torchao",
            "lm_eval", "hydra-core", "numpy")


def git_sha(root: Path = SOURCE_ROOT) -> str | None:
    """HEAD of the checkout the harness runs from, with ``-dirty`` if tracked files changed."""
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5)
        if out.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        return None


def software() -> dict[str, str | None]:
    return {"python": sys.version.split()[0], "harness": harness.__version__, "git_sha": git_sha(),
            "platform": platform.platform(), **{pkg: package_version(pkg) for pkg in PACKAGES}}


# The scheduler's view of where a point ran: SLURM sets these in every job (and array task).
SLURM_ENV = {"job_id": "SLURM_JOB_ID", "array_job_id": "SLURM_ARRAY_JOB_ID", "array_task_id": "SLURM_ARRAY_TASK_ID",
             "node": "SLURMD_NODENAME", "partition": "SLURM_JOB_PARTITION", "restart_count": "SLURM_RESTART_COUNT",
             "cluster": "SLURM_CLUSTER_NAME"}


def launch() -> dict[str, str | None]:
    """How this process was launched: under SLURM (its job, array task, node, partition), or not."""
    if "SLURM_JOB_ID" not in os.environ:
        return {"scheduler": None}
    return {"scheduler": "slurm", **{key: os.environ.get(var) for key, var in SLURM_ENV.items()}}
