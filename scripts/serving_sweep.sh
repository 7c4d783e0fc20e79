#!/usr/bin/env bash
# The serving scenarios on the real model, on this machine: SmolLM2-135M-Instruct behind llama.cpp's own
# llama-server (continuous batching, 4 slots) at Q8_0 and Q4_0, and behind llama-cpp-python's server (one
# request at a time) at Q4_0, each started by meekbench on 127.0.0.1: a closed-loop curve at 1-2-4-8 clients,
# then the SLO search for the most clients meeting MLPerf's Llama-3.1-8B Server limits (p99 TTFT 2 s, TPOT
# 100 ms; its first steps reuse the curve's records), the report's curves, then the load generator's capacity.
# About 20 min on 2 cores. Needs MEEKBENCH_LLAMACPP=1 bash scripts/setup.sh (scripts/test.sh does it).
# The price is an assumption (AWS m7i.large on-demand, us-east-1, 2025, as the demo's): set PRICE to yours.
# Extra arguments go to every run as overrides (e.g. models_dir=...).
set -euo pipefail
EXTRA=("$@")
cd "$(dirname "$0")/.."
. .venv/bin/activate
R=${RESULTS:-results/serving-sweep}
PRICE=${PRICE:-0.1008}
M=(model=smollm2-135m-instruct engine=llamacpp hardware.price_per_hour_usd="$PRICE" results_dir="$R"
   "hardware.price_source='AWS EC2 m7i.large (2 vCPU) on-demand list price in us-east-1 (2025)'" scenario=concurrency)
SEARCH=(scenario.levels=[1] scenario.search.enabled=true scenario.search.slo=mlperf-llama3.1-8b-server)
for spec in "gguf-q8_0 llama-server 4" "gguf-q4_0 llama-server 4" "gguf-q4_0 llama-cpp-python 1"; do
  set -- $spec
  S=(variant="$1" engine.server="$2" engine.parallel="$3")
  meekbench run "${M[@]}" "${S[@]}" "scenario.levels=[1,2,4,8]" "${EXTRA[@]}"
  meekbench run "${M[@]}" "${S[@]}" "${SEARCH[@]}" "${EXTRA[@]}"
done
meekbench report "$R"
python scripts/loadgen_capacity.py | tee "$R/loadgen-capacity.md"
