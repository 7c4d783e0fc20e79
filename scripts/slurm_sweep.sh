#!/usr/bin/env bash
# A full lab-GPU sweep under SLURM: Pythia 70m..2.8b x {bf16, fp16, bnb-int8, bnb-nf4}, one point per
# array task through Hydra's submitit launcher, records on a shared disk; then report + projection.
# Edit PARTITION / ACCOUNT / SHARED, then run this on a login node (inside the project's .venv).
# Re-running it (after a preemption, a timeout, or to add points) skips every point already recorded.
set -euo pipefail
cd "$(dirname "$0")/.."
PARTITION=${PARTITION:-gpu}
ACCOUNT=${ACCOUNT:-mylab}
SHARED=${SHARED:-/shared/$USER/meekbench}
LABEL=${LABEL:-a100-80g}       # names this hardware target in cross-hardware reports
PRICE=${PRICE:-2.0}            # $/GPU-hour, for cost per token and the measured FLOP/$

. .venv/bin/activate
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-0}   # compute nodes without internet: pre-download, then set 1

meekbench run -m hydra/launcher=submitit_slurm \
  hydra.launcher.partition="$PARTITION" hydra.launcher.account="$ACCOUNT" \
  hydra.launcher.gpus_per_node=1 hydra.launcher.cpus_per_task=8 hydra.launcher.mem_gb=64 \
  hydra.launcher.timeout_min=120 hydra.launcher.array_parallelism=8 \
  model=pythia-70m,pythia-160m,pythia-410m,pythia-1b,pythia-1.4b,pythia-2.8b \
  variant=bf16,fp16,bnb-int8,bnb-nf4 \
  bench.batch_sizes=[1,8] bench.prompt_tokens=[128,512] bench.new_tokens=64 \
  quality.heldout_path="$SHARED/heldout.txt" \
  hardware.label="$LABEL" hardware.price_per_hour_usd="$PRICE" \
  results_dir="$SHARED"

meekbench summary results_dir="$SHARED" baseline_variant=bf16
meekbench report "$SHARED"                                  # $SHARED/report/report.md, points.parquet, plots
meekbench project projector=measured results_dirs="[$SHARED]" projector.family=pythia projector.baseline_variant=bf16
