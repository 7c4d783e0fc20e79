#!/usr/bin/env bash
# Set up, then run the test suite (builds a reduced tiny family in a temporary directory).
set -euo pipefail
cd "$(dirname "$0")/.."
MEEKBENCH_BROWSER=1 bash scripts/setup.sh  # with Debian's chromium, for report.html's browser test
. .venv/bin/activate
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec python -m pytest "$@"
