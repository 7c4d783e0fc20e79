"""llama.cpp's own programs (``llama-server``, ``llama-bench``, ``llama-perplexity``), built by
scripts/llamacpp_tools.sh from the llama.cpp tree that llama-cpp-python's source distribution vendors,
so they run the same llama.cpp commit as ``engine=llamacpp`` does in-process.

They live in one directory per llama-cpp-python version (``tools_dir``): ``MEEKBENCH_LLAMACPP_TOOLS``
names another. ``python -m harness.engines.llamacpp_tools dir`` prints it (the build script asks here,
so the default is in one place).
"""
from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from harness.engines.base import MissingBuildError
from harness.io import cache_dir

TOOLS = ("llama-server", "llama-bench", "llama-perplexity")
ENV = "MEEKBENCH_LLAMACPP_TOOLS"
BUILD_HINT = "`bash scripts/llamacpp_tools.sh` builds them (about 5 min on 2 cores, once per llama-cpp-python " \
             "version; `MEEKBENCH_LLAMACPP=1 bash scripts/setup.sh` runs it)"


def llama_cpp_python_version() -> str:
    try:
        return metadata.version("llama_cpp_python")
    except metadata.PackageNotFoundError as e:
        raise MissingBuildError("llama-cpp-python is not installed, and llama.cpp's tools are built from its "
                                "source at its version; `MEEKBENCH_LLAMACPP=1 bash scripts/setup.sh` installs "
                                "both") from e


def tools_dir() -> Path:
    """Where the tools are (or go): $MEEKBENCH_LLAMACPP_TOOLS, else a per-version folder in the user's cache."""
    return cache_dir(ENV, f"llama.cpp-{llama_cpp_python_version()}/bin")


def tool(name: str) -> Path:
    """The path of one of llama.cpp's tools, or a MissingBuildError that says how to build it."""
    if name not in TOOLS:
        raise ValueError(f"{name!r} is not one of llama.cpp's tools meekbench builds; valid: {', '.join(TOOLS)}")
    path = tools_dir() / name
    if not os.access(path, os.X_OK):
        raise MissingBuildError(f"llama.cpp's {name} is not built at {path}; {BUILD_HINT}")
    return path


def version(path: Path) -> str:
    """The tool's own version line, e.g. ``0.5.0-dev (build 1, commit 0c1e570)``."""
    out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=30)
    lines = [ln for ln in (out.stdout + out.stderr).splitlines() if ln.startswith("version:")]
    return lines[0].removeprefix("version:").strip() if lines else "unknown"


if __name__ == "__main__":
    if sys.argv[1:] != ["dir"]:
        sys.exit("usage: python -m harness.engines.llamacpp_tools dir")
    print(tools_dir())
