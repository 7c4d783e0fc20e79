#!/usr/bin/env bash
# The CPU demo, end to end: set-up, the tiny family (built if missing), then
#   1. the family at fp32 with the offline `ci` lm-eval suite,
#   2. quantised variants of the largest model (and bnb 4-bit on tiny-s, whose 64-wide layers
#      the CPU 4-bit kernel accepts),
#   3. a distilled student (tiny-l -> tiny-xs) and its continue-ce control,
#   4. the reduced IsoFLOP grid (15 + 5 small runs, cached) and its compute-optimal law,
# then the summary table, the report (with each model's variant scorecard) and a projection
# from the measured compute-optimal law. The full grid is `meekbench build-grid` then
# `meekbench fit-law` (about 20 minutes on 2 cores). Each fp32 point writes its held-out reference distributions;
# every variant point after it is compared with them (fidelity, paired tasks, retention, cost).
# Every step is an ordinary meekbench command; extra arguments go to every sweep as overrides.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
RESULTS=${RESULTS:-results/demo}
# What the machine costs per hour, for dollars per million tokens: an assumption, not a measurement.
# Default: AWS EC2 m7i.large (2 vCPU) on-demand list price, us-east-1, 2025: $0.1008/h. Set yours.
PRICE=${PRICE_PER_HOUR_USD:-0.1008}
SWEEP=(results_dir="$RESULTS" hardware.price_per_hour_usd="$PRICE")  # every sweep's shared overrides
step() { echo; echo "== demo $1: $2"; }

step 1/8 "the tiny family (built once into models/tiny/, reused when up to date)"
meekbench build-tiny
step 2/8 "the family at fp32, with the offline ci lm-eval suite"
meekbench run -m model=tiny-xs,tiny-s,tiny-m,tiny-l variant=fp32 eval=ci "${SWEEP[@]}" "$@"
step 3/8 "quantised variants of tiny-l, each timed interleaved with tiny-l fp32 (paired speed ratios)"
meekbench run -m model=tiny-l \
  variant=bnb-int8,bnb-nf4,bnb-fp4,ao-int8-weight,ao-int8-dynamic,ao-int4-weight,ao-int4-tinygemm,torch-dynamic-int8 \
  eval=ci bench.paired_baseline=true "${SWEEP[@]}" "$@"
meekbench run -m model=tiny-s variant=bnb-nf4,bnb-fp4 eval=ci bench.paired_baseline=true "${SWEEP[@]}" "$@"
step 4/8 "a distilled student (tiny-l -> tiny-xs) and its continue-ce control, paired with tiny-xs fp32"
meekbench run -m model=tiny-xs variant=distil-kd,continue-ce eval=ci bench.paired_baseline=true \
  "${SWEEP[@]}" "$@"
step 5/8 "the REDUCED IsoFLOP grid (1 decade of FLOPs; the full grid: meekbench build-grid) and its law"
meekbench build-grid grid=tiny-reduced
meekbench fit-law grid_name=tiny-reduced results_dir="$RESULTS" resamples=10
step 6/8 "summary of every point"
meekbench summary results_dir="$RESULTS"
step 7/8 "report"
meekbench report "$RESULTS"
step 8/8 "scaling-gap projection from the measured (reduced-grid) compute-optimal law"
meekbench project projector=measured results_dir="$RESULTS" \
  projector.law.measured_path="$RESULTS/scaling/tiny-reduced/law.json"
