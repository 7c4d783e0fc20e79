#!/usr/bin/env bash
# The serving scenarios on the real model, on this machine: SmolLM2-135M-Instruct behind llama-cpp-python's
# server (started by meekbench on 127.0.0.1), a rate sweep for two llama.cpp file types, a closed-loop
# sweep and an offline point, the report's curves, then the load generator's capacity here.
# About 15 min on 2 cores. Needs MEEKBENCH_LLAMACPP=1 bash scripts/setup.sh (scripts/test.sh does it).
# The price is an assumption for a 2-vCPU cloud VM: set PRICE to yours.
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
R=${RESULTS:-results/serving-sweep}
PRICE=${PRICE:-0.10}
M="model=smollm2-135m-instruct engine=llamacpp hardware.price_per_hour_usd=$PRICE results_dir=$R"
for v in gguf-q4_0 gguf-q8_0; do
  meekbench run $M variant=$v scenario=server "scenario.levels=[0.25,0.5,0.75,1,1.5]"
done
meekbench run $M variant=gguf-q4_0 scenario=concurrency "scenario.levels=[1,2,4]"
meekbench run $M variant=gguf-q4_0 scenario=offline
meekbench report "$R"
python scripts/loadgen_capacity.py | tee "$R/loadgen-capacity.md"
