#!/usr/bin/env bash
# Build llama.cpp's own tools (llama-server, llama-bench, llama-perplexity) from the llama.cpp tree that
# llama-cpp-python's source distribution vendors, at the installed llama-cpp-python's version: the same
# llama.cpp commit engine=llamacpp runs in-process. For any x86-64 CPU (GGML_NATIVE=OFF), like the wheel.
# Idempotent: skipped when the tools are there (about 5 min on 2 cores otherwise; pip's cache keeps the
# 77 MB source). Into `python -m harness.engines.llamacpp_tools dir` (per version, in ~/.cache/meekbench;
# MEEKBENCH_LLAMACPP_TOOLS names another folder). Needs cmake and a C++ compiler.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=$("$PY" -m harness.engines.llamacpp_tools dir)
VERSION=$("$PY" -c "from harness.engines.llamacpp_tools import llama_cpp_python_version as v; print(v())")
TOOLS="llama-server llama-bench llama-perplexity"
missing=0
for t in $TOOLS; do [ -x "$OUT/$t" ] || missing=1; done
if [ "$missing" = 0 ]; then
  echo "llamacpp_tools: $TOOLS already built in $OUT"
  exit 0
fi
for cmd in cmake c++; do
  command -v "$cmd" >/dev/null || { echo "llamacpp_tools: $cmd not found; install it (Debian: apt-get install cmake g++)" >&2; exit 1; }
done
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
echo "llamacpp_tools: fetching llama-cpp-python $VERSION's source (pip's cache keeps it)"
"$PY" -m pip download --disable-pip-version-check --progress-bar off --no-deps --no-binary :all: \
  -d "$WORK" "llama-cpp-python==$VERSION" > "$WORK/download.log" 2>&1 \
  || { cat "$WORK/download.log" >&2; exit 1; }
tar -xzf "$WORK"/llama_cpp_python-*.tar.gz -C "$WORK"
SRC=$(echo "$WORK"/llama_cpp_python-*/vendor/llama.cpp)
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
LOG=$WORK/build.log
echo "llamacpp_tools: building $TOOLS (about 5 min on 2 cores)"
{ cmake -S "$SRC" -B "$WORK/build" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DBUILD_SHARED_LIBS=OFF -DGGML_CCACHE=OFF \
  && cmake --build "$WORK/build" -j "$(nproc)" --target $TOOLS; } > "$LOG" 2>&1 \
  || { tail -40 "$LOG" >&2; echo "llamacpp_tools: the build failed (log above)" >&2; exit 1; }
mkdir -p "$OUT"
for t in $TOOLS; do install -m 755 "$WORK/build/bin/$t" "$OUT/$t"; done
echo "llamacpp_tools: built in $OUT: $("$OUT/llama-server" --version 2>&1 | grep '^version' || true)"
