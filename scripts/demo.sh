#!/usr/bin/env bash
# The CPU demo, end to end: set-up, tiny family (built if missing), sweep, summary.
# Every step is an ordinary meekbench command; extra arguments go to the sweep as overrides.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
RESULTS=${RESULTS:-results/demo}

meekbench build-tiny                       # reuses models/tiny/ when it is up to date
meekbench run -m model=tiny-xs,tiny-s,tiny-m,tiny-l variant=fp32 results_dir="$RESULTS" "$@"
meekbench summary results_dir="$RESULTS"
