#!/usr/bin/env bash
# Set up, then run the test suite (builds a reduced tiny family in a temporary directory).
set -euo pipefail
cd "$(dirname "$0")/.."
# with Debian's chromium (report.html's browser test), SLURM's packages (the slurm tests) and
# llama-cpp-python built from source, llama.cpp's tools and vLLM's own environment (the engine tests)
MEEKBENCH_BROWSER=1 MEEKBENCH_SLURM=1 MEEKBENCH_LLAMACPP=1 MEEKBENCH_VLLM=1 bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec python -m pytest "$@"
