#!/usr/bin/env bash
# Set up .venv if needed, then run the main job end to end on the embedded default.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export WANDB_MODE="${WANDB_MODE:-offline}"
.venv/bin/naas-hw evaluate --model resnet50 --accelerator eyeriss "$@"
