#!/usr/bin/env bash
# Set up meekbench in ./.venv on a fresh machine. Idempotent: a second run installs nothing new.
# torch goes in first, pinned: on CPU-only machines a plain `torch` requirement would pull a
# multi-GB CUDA build. On a GPU machine, install your CUDA torch first and set MEEKBENCH_TORCH=skip.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_SPEC=${MEEKBENCH_TORCH:-torch==2.13.0}
EXTRAS=${MEEKBENCH_EXTRAS:-all}

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
pip_q() { python -m pip install -q --disable-pip-version-check "$@" 2>&1 | grep -v "^WARNING: Location" || true; }
if [ "$TORCH_SPEC" != "skip" ] && ! python -c "import torch" 2>/dev/null; then
  pip_q "$TORCH_SPEC"
fi
if ! python -c "import harness, hydra, transformers, lm_eval, bitsandbytes, torchao, pytest" 2>/dev/null \
   || [ pyproject.toml -nt .venv/.meekbench-installed ]; then
  pip_q -e ".[${EXTRAS}]"
  touch .venv/.meekbench-installed
fi
python -c "import harness, torch; print(f'meekbench {harness.__version__} ready: torch {torch.__version__}')"
