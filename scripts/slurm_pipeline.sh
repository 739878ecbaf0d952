#!/usr/bin/env bash
# The whole NAAS pipeline on SLURM, preemption-safe: `naas-train pipeline --resume` (fit with the co-search at
# its end -> fine-tune -> export) in every task of the job. Submit from the repository root:
#   sbatch scripts/slurm_pipeline.sh --data.root /datasets/imagenet --finetune_epochs 25 --finetune_lr 0.0075
# Recipes: $NAAS_CONFIGS (space-separated; default below), e.g. a CPU try on the one-machine cluster of
# scripts/slurm_local.sh:
#   NAAS_CONFIGS=recipes/digits_naas.yaml sbatch --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 \
#       --gpus-per-node=0 scripts/slurm_pipeline.sh --trainer.devices 2 --trainer.strategy ddp
# Keep --nodes / --ntasks-per-node equal to trainer.num_nodes / trainer.devices of the recipes.
# Preemption as in scripts/slurm_train.sh: SIGUSR1 to the tasks 120 s before the time limit (or `scancel
# --signal=USR1 <job>`) -> hpc_ckpt_<step>.ckpt at the next training batch end, requeue, stop (nothing after fit
# runs). The requeued job runs this script again: --resume continues fit from the newest checkpoint (last.ckpt
# or hpc_ckpt_*.ckpt), the co-search from its saved state; fine-tuning and export run again.
#SBATCH --job-name=ofa-mbv3-naas
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
naas_srun slurm_pipeline.sh "recipes/ofa_mbv3_imagenet_naas.yaml recipes/ofa_mbv3_imagenet_slurm.yaml" pipeline --resume "$@"
