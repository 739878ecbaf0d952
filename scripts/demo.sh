#!/usr/bin/env bash
# Set up .venv if needed, then run the main job end to end on the embedded default (digits):
# supernet training -> co-search -> fine-tune -> export. Prints the bundle's path.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export WANDB_MODE="${WANDB_MODE:-offline}"
.venv/bin/naas-train pipeline --config recipes/digits_naas.yaml "$@"
