#!/usr/bin/env bash
# The CPU demo, end to end: set-up, tiny family (built if missing), a sweep of the family and of
# the quantised variants of its largest model, the summary table, the report and a measured projection.
# Every step is an ordinary meekbench command; extra arguments go to both sweeps as overrides.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
RESULTS=${RESULTS:-results/demo}

meekbench build-tiny                       # reuses models/tiny/ when it is up to date
meekbench run -m model=tiny-xs,tiny-s,tiny-m,tiny-l variant=fp32 results_dir="$RESULTS" "$@"
meekbench run -m model=tiny-l \
  variant=bnb-int8,bnb-nf4,bnb-fp4,ao-int8-weight,ao-int8-dynamic,ao-int4-weight,ao-int4-tinygemm,torch-dynamic-int8 \
  results_dir="$RESULTS" "$@"
meekbench summary results_dir="$RESULTS"
meekbench report "$RESULTS"
meekbench project projector=measured results_dir="$RESULTS"
