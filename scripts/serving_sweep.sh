#!/usr/bin/env bash
# The serving scenarios on the real model, on this machine: SmolLM2-135M-Instruct behind vLLM (continuous
# batching, paged KV cache) at fp32 and bf16, behind llama.cpp's own llama-server (continuous batching, 4 slots)
# at Q8_0 and Q4_0, and behind llama-cpp-python's server (one request at a time) at Q4_0, each started by
# meekbench on 127.0.0.1: a closed-loop curve at 1-2-4-8 clients with the served model's fidelity against the
# fp32 reference (vLLM: prompt log-probabilities; the others: greedy agreement), then the SLO search for the
# most clients meeting MLPerf's Llama-3.1-8B Server limits (p99 TTFT 2 s, TPOT 100 ms; its first steps reuse
# the curve's records), the report's curves, then the load generator's capacity.
# About 45 min on 2 cores (vLLM compiles its model at every start: about a minute). Needs
# MEEKBENCH_LLAMACPP=1 MEEKBENCH_VLLM=1 bash scripts/setup.sh (scripts/test.sh does it).
# TARGETS picks some of them (e.g. TARGETS="vllm-fp32 llama-server-q4_0").
# The price is an assumption (AWS m7i.large on-demand, us-east-1, 2025, as the demo's): set PRICE to yours.
# Extra arguments go to every run as overrides (e.g. models_dir=...).
set -euo pipefail
EXTRA=("$@")
cd "$(dirname "$0")/.."
. .venv/bin/activate
R=${RESULTS:-results/serving-sweep}
PRICE=${PRICE:-0.1008}
TARGETS=${TARGETS:-vllm-fp32 vllm-bf16 llama-server-q8_0 llama-server-q4_0 llama-cpp-python-q4_0}
M=(model=smollm2-135m-instruct hardware.price_per_hour_usd="$PRICE" results_dir="$R"
   "hardware.price_source='AWS EC2 m7i.large (2 vCPU) on-demand list price in us-east-1 (2025)'" scenario=concurrency
   compare.build_missing_reference=true)
SEARCH=(scenario.levels=[1] scenario.search.enabled=true scenario.search.slo=mlperf-llama3.1-8b-server)
for target in $TARGETS; do
  case $target in
    vllm-fp32) S=(engine=vllm variant=fp32) ;;
    vllm-bf16) S=(engine=vllm variant=bf16) ;;
    llama-server-q8_0) S=(engine=llamacpp variant=gguf-q8_0 engine.server=llama-server engine.parallel=4) ;;
    llama-server-q4_0) S=(engine=llamacpp variant=gguf-q4_0 engine.server=llama-server engine.parallel=4) ;;
    llama-cpp-python-q4_0) S=(engine=llamacpp variant=gguf-q4_0 engine.server=llama-cpp-python engine.parallel=1) ;;
    *) echo "serving_sweep: unknown target $target; valid: vllm-fp32 vllm-bf16 llama-server-q8_0 llama-server-q4_0 llama-cpp-python-q4_0" >&2; exit 2 ;;
  esac
  meekbench run "${M[@]}" "${S[@]}" "scenario.levels=[1,2,4,8]" "${EXTRA[@]}"
  meekbench run "${M[@]}" "${S[@]}" "${SEARCH[@]}" "${EXTRA[@]}"
done
meekbench report "$R"
python scripts/loadgen_capacity.py | tee "$R/loadgen-capacity.md"
