#!/usr/bin/env python
"""Download the wheels a lent GPU machine lacks, for scripts/gpu_check.sh to install there.

The workplace's GPU image (Python 3.12, torch 2.11 with CUDA 13, transformers 5.17, accelerate,
onnx, onnxruntime, nvidia-ml-py; no network) lacks meekbench's config, record and quantisation
packages. This script fetches them at requirements/lock.txt's versions for CPython 3.12 on
manylinux x86-64 into an ignored folder (default .whl/), checks that every dependency they declare
is bundled or already in the image, and that the bundle plus the working tree fits what travels
with a call (64 MiB), with room to spare. It prints each wheel's size and the total.

    python scripts/gpu_bundle.py            # then, on the lent machine: bash scripts/gpu_check.sh

Left out, with why: see LEFT_OUT. The tiny family is rebuilt there by gpu_check.sh (about a minute
on its 16 cores); SmolLM2's GGUF file (94 MiB) cannot travel at all.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "lock.txt"
MIB = 2**20
LIMIT_MIB = 64  # what travels with one device call: tracked + untracked-not-ignored files + carried paths
MARGIN_MIB = 4  # room for the working tree to grow and for $OUT-bound files written into it
PYTHON = "3.12"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64",
             "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64")

# what gpu_check.sh needs that the image lacks: config (hydra, omegaconf, pydantic), quantisation
# (bitsandbytes, torchao), GGUF writing (gguf) and report.html's figures (plotly)
BUNDLE = ("hydra-core", "omegaconf", "antlr4-python3-runtime", "pydantic", "pydantic-core", "annotated-types",
          "typing-inspection", "bitsandbytes", "torchao", "gguf", "plotly")
LEFT_OUT = {
    "lm-eval": "with datasets, evaluate and their dependencies it does not fit beside bitsandbytes; the check runs eval=none",
    "onnxruntime-genai": "it only exports checkpoints for engine=onnxruntime, which needs onnxruntime-gpu's CUDA "
                         "provider; the image's onnxruntime is the CPU build",
    "llama-cpp-python": "source only: a CUDA build compiles for about 10 minutes, more than a lease can spend",
}
# The image's Python packages, as the workplace's device notes list them (read on a machine running the
# 'cuda' image on 2026-11-17). A dependency outside this set and the bundle is an error here, not there.
IMAGE = frozenset(canonicalize_name(n) for n in """
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs certifi charset-normalizer
click cloudpickle colorama contourpy cycler filelock flatbuffers fonttools frozenlist fsspec h11 hf-xet httpcore httpx
huggingface-hub idna jinja2 joblib kiwisolver markupsafe matplotlib ml-dtypes mpmath multidict narwhals networkx
numpy nvidia-ml-py onnx onnx-ir onnxruntime packaging pandas pillow pip propcache protobuf psutil pyarrow pygments
pyparsing python-dateutil pyyaml regex requests rich safetensors scipy sentencepiece setuptools six sympy tabulate
tokenizers torch tqdm transformers triton typing-extensions urllib3 wheel yarl""".split())


def locked_versions() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[canonicalize_name(name)] = version.strip()
    return pins


def _pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *args, "--disable-pip-version-check", "-q"],
                          capture_output=True, text=True)


def fetch(name: str, version: str, dest: Path) -> None:
    """A binary wheel for CPython 3.12 on manylinux x86-64; a pure-Python package published only
    as an sdist (antlr4-python3-runtime 4.9.3) is built into a py3-none-any wheel here."""
    spec = f"{name}=={version}"
    plat = [a for p in PLATFORMS for a in ("--platform", p)]
    got = _pip("download", "--no-deps", "--only-binary=:all:", "--python-version", PYTHON, "--implementation", "cp",
               *plat, "-d", str(dest), spec)
    if got.returncode == 0:
        return
    with tempfile.TemporaryDirectory() as tmp:
        built = _pip("wheel", "--no-deps", "--no-binary", name, "-w", tmp, spec)
        wheels = list(Path(tmp).glob("*.whl"))
        if built.returncode or not wheels or not re.search(r"-py[23.]*-none-any\.whl$", wheels[0].name):
            sys.exit(f"gpu_bundle: no wheel of {spec} for CPython {PYTHON} on manylinux x86-64, and no pure-Python "
                     f"build of it:\n{got.stderr.strip()[-600:]}\n{built.stderr.strip()[-600:]}")
        wheels[0].rename(dest / wheels[0].name)


def wheel_name(path: Path) -> str:
    return canonicalize_name(path.name.split("-")[0])


def unmet_dependencies(wheels: list[Path]) -> list[str]:
    """Each dependency a bundled wheel declares for Python 3.12 on Linux (extras left out) that is
    neither bundled nor in the image."""
    env = {**default_environment(), "python_version": PYTHON, "python_full_version": f"{PYTHON}.3",
           "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64", "extra": ""}
    have = IMAGE | {wheel_name(w) for w in wheels}
    unmet = []
    for w in wheels:
        with zipfile.ZipFile(w) as z:
            meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
        for line in meta.splitlines():
            if line.startswith("Requires-Dist:"):
                req = Requirement(line.split(":", 1)[1].strip())
                if (req.marker is None or req.marker.evaluate(env)) and canonicalize_name(req.name) not in have:
                    unmet.append(f"{w.name} needs {req}")
    return unmet


def working_tree_bytes() -> int:
    """What travels besides carried paths: tracked files and untracked files git does not ignore."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    return sum((ROOT / f).stat().st_size for f in files if f and (ROOT / f).is_file())


def size_check(wheels: list[Path], tree: int, limit_mib: float) -> tuple[bool, str]:
    total = sum(w.stat().st_size for w in wheels) + tree
    room = limit_mib * MIB - total
    largest = max(wheels, key=lambda w: w.stat().st_size)
    lines = [f"  {w.stat().st_size / MIB:7.2f} MiB  {w.name}" for w in sorted(wheels, key=lambda w: -w.stat().st_size)]
    lines += [f"  {tree / MIB:7.2f} MiB  the working tree", f"  {total / MIB:7.2f} MiB  in all, of {limit_mib:g} MiB"]
    if room < MARGIN_MIB * MIB:
        over = (total - (limit_mib - MARGIN_MIB) * MIB) / MIB
        lines.append(f"gpu_bundle: over the limit by {over:.2f} MiB ({limit_mib:g} MiB less {MARGIN_MIB} MiB of margin); "
                     f"the largest wheel is {largest.name} ({largest.stat().st_size / MIB:.2f} MiB)")
        return False, "\n".join(lines)
    lines.append(f"fits: {room / MIB:.2f} MiB to spare")
    return True, "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=ROOT / ".whl", help="folder for the wheels (git-ignored)")
    parser.add_argument("--limit-mib", type=float, default=LIMIT_MIB, help="what one device call may carry")
    args = parser.parse_args()
    args.dest.mkdir(parents=True, exist_ok=True)
    pins = locked_versions()
    wanted = {canonicalize_name(n) for n in BUNDLE}
    for stale in args.dest.glob("*.whl"):  # one version of each, and nothing the bundle no longer names
        if wheel_name(stale) not in wanted or f"-{pins.get(wheel_name(stale))}-" not in stale.name:
            stale.unlink()
    for name in sorted(wanted):
        if name not in pins:
            sys.exit(f"gpu_bundle: {name} is not in {LOCK.relative_to(ROOT)}; add it there first")
        if not any(wheel_name(w) == name for w in args.dest.glob("*.whl")):
            fetch(name, pins[name], args.dest)
    wheels = sorted(args.dest.glob("*.whl"))
    if unmet := unmet_dependencies(wheels):
        sys.exit("gpu_bundle: dependencies neither bundled nor in the GPU image:\n  " + "\n  ".join(unmet))
    ok, text = size_check(wheels, working_tree_bytes(), args.limit_mib)
    print(f"bundle in {args.dest} for CPython {PYTHON}, manylinux x86-64:\n{text}")
    print("left out: " + "; ".join(f"{k} ({v})" for k, v in LEFT_OUT.items()))
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
