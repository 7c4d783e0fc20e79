#!/usr/bin/env bash
# A sweep under SLURM, one point per array task through Hydra's submitit launcher, records on a
# shared disk; then the summary, the report and a projection fitted to the records.
#
#   bash scripts/slurm_sweep.sh                 # TARGET=lab: Pythia 70m..2.8b x {bf16, fp16, bnb-int8, bnb-nf4}
#   TARGET=local bash scripts/slurm_sweep.sh    # the tiny family on the one-node cluster of
#                                               # scripts/slurm_local.sh (start it first, as root)
#
# For a lab cluster edit PARTITION / ACCOUNT / SHARED (or set them in the environment) and run
# this on a login node inside the project's .venv. Re-running it (after a preemption, a timeout,
# or to add points) skips every point already recorded.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${TARGET:-lab}
case "$TARGET" in
  lab)
    PARTITION=${PARTITION:-gpu}; ACCOUNT=${ACCOUNT:-mylab}; SHARED=${SHARED:-/shared/$USER/meekbench}
    LABEL=${LABEL:-a100-80g}     # names this hardware target in cross-hardware reports
    PRICE=${PRICE:-2.0}          # $/GPU-hour, for cost per token and the measured FLOP/$
    RESOURCES=(hydra.launcher.gpus_per_node=1 hydra.launcher.cpus_per_task=8 hydra.launcher.mem_gb=64
               hydra.launcher.timeout_min=120 hydra.launcher.array_parallelism=8)
    POINTS=(model=pythia-70m,pythia-160m,pythia-410m,pythia-1b,pythia-1.4b,pythia-2.8b
            variant=bf16,fp16,bnb-int8,bnb-nf4
            bench.batch_sizes=[1,8] bench.prompt_tokens=[128,512] bench.new_tokens=64
            quality.heldout_path="$SHARED/heldout.txt")
    FAMILY=pythia; BASELINE=bf16
    export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-0}   # compute nodes without internet: pre-download, then set 1
    ;;
  local)
    PARTITION=${PARTITION:-local}; ACCOUNT=${ACCOUNT:-}; SHARED=${SHARED:-results/slurm-local}
    LABEL=${LABEL:-}
    PRICE=${PRICE:-0.1008}       # the demo's stated assumption (AWS m7i.large on-demand, 2 vCPU)
    RESOURCES=(hydra.launcher.gpus_per_node=null hydra.launcher.cpus_per_task=1 hydra.launcher.mem_gb=4
               hydra.launcher.timeout_min=20 hydra.launcher.array_parallelism=2)
    # one torch thread per point: each array task is given one CPU
    POINTS=(model=tiny-xs,tiny-s,tiny-m,tiny-l variant=fp32,torch-dynamic-int8 bench.threads=1)
    FAMILY=tiny; BASELINE=fp32
    export HF_HUB_OFFLINE=1
    ;;
  *) echo "TARGET=$TARGET: valid targets are lab and local" >&2; exit 2 ;;
esac

. .venv/bin/activate
if [ "$TARGET" = local ]; then
  sinfo -h >/dev/null 2>&1 || { echo "no SLURM cluster answers: run 'sudo bash scripts/slurm_local.sh' first" >&2; exit 1; }
  meekbench build-tiny    # reused when up to date
fi

# fp32/bf16 baselines first: each writes the held-out reference its variants are compared with
meekbench run -m hydra/launcher=submitit_slurm \
  hydra.launcher.partition="$PARTITION" ${ACCOUNT:+hydra.launcher.account="$ACCOUNT"} "${RESOURCES[@]}" \
  "${POINTS[@]/#variant=*/variant=$BASELINE}" \
  ${LABEL:+hardware.label="$LABEL"} hardware.price_per_hour_usd="$PRICE" results_dir="$SHARED"
meekbench run -m hydra/launcher=submitit_slurm \
  hydra.launcher.partition="$PARTITION" ${ACCOUNT:+hydra.launcher.account="$ACCOUNT"} "${RESOURCES[@]}" \
  "${POINTS[@]}" \
  ${LABEL:+hardware.label="$LABEL"} hardware.price_per_hour_usd="$PRICE" results_dir="$SHARED"

meekbench summary results_dir="$SHARED" baseline_variant="$BASELINE"
meekbench report "$SHARED"                                  # $SHARED/report/report.md, points.parquet, plots
meekbench project projector=measured results_dir="$SHARED" projector.family="$FAMILY" \
  projector.baseline_variant="$BASELINE"
