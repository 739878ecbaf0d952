#!/usr/bin/env bash
# Multi-node OFA MobileNetV3 supernet training on SLURM (Lightning reads SLURM_* for ranks; one task per GPU).
#   sbatch scripts/slurm_train.sh --data.root /datasets/imagenet [more naas-train fit arguments]
# Keep --nodes / --ntasks-per-node equal to trainer.num_nodes / trainer.devices in the SLURM recipe.
# A requeued or resubmitted job continues from runs/ofa_mbv3_imagenet/checkpoints/last.ckpt (--ckpt_path last).
#SBATCH --job-name=ofa-mbv3-imagenet
#SBATCH --nodes=4
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=10
#SBATCH --time=48:00:00
#SBATCH --signal=SIGUSR1@120
#SBATCH --requeue
#SBATCH --output=slurm-%x-%j.out
set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}"
# shellcheck disable=SC1091
source .venv/bin/activate
export WANDB_MODE="${WANDB_MODE:-offline}"
srun naas-train fit \
    --config recipes/ofa_mbv3_imagenet.yaml \
    --config recipes/ofa_mbv3_imagenet_slurm.yaml \
    --ckpt_path last \
    "$@"
