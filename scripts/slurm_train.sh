#!/usr/bin/env bash
# Multi-node OFA MobileNetV3 supernet training on SLURM, preemption-safe (Lightning reads SLURM_* for ranks; one
# task per GPU). Submit from the repository root:
#   sbatch scripts/slurm_train.sh --data.root /datasets/imagenet [more naas-train fit arguments]
# Recipes: $NAAS_CONFIGS (space-separated; default below), e.g. a CPU try on the one-machine cluster of
# scripts/slurm_local.sh:
#   NAAS_CONFIGS=recipes/digits_smoke.yaml sbatch --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 \
#       --gpus-per-node=0 scripts/slurm_train.sh --trainer.devices 2 --trainer.strategy ddp
# Keep --nodes / --ntasks-per-node equal to trainer.num_nodes / trainer.devices of the recipes.
# Preemption: 120 s before the time limit (or on `scancel --signal=USR1 <job>`) SLURM sends SIGUSR1 to the
# training tasks (no "B:": the job steps get it, not this shell); naas_train.preemption.PreemptionCheckpoint saves
# <default_root_dir>/hpc_ckpt_<step>.ckpt at the next batch end, requeues the job and stops. The requeued job
# (and any resubmission) continues from the newest of checkpoints/last.ckpt and hpc_ckpt_*.ckpt (--ckpt_path last).
#SBATCH --job-name=ofa-mbv3-imagenet
#SBATCH --nodes=4
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=10
#SBATCH --time=48:00:00
#SBATCH --signal=USR1@120
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=slurm-%x-%j.out
set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}"
# shellcheck source=scripts/slurm_common.sh
source scripts/slurm_common.sh
naas_srun slurm_train.sh "recipes/ofa_mbv3_imagenet.yaml recipes/ofa_mbv3_imagenet_slurm.yaml" fit --ckpt_path last "$@"
