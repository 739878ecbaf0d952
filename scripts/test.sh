#!/usr/bin/env bash
# Set up .venv if needed, then run the test suite (slow tests excluded unless NAAS_SLOW=1).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export WANDB_MODE="${WANDB_MODE:-offline}"
MARK=(-m "not slow")
if [ "${NAAS_SLOW:-0}" = "1" ]; then MARK=(); fi
set +e
.venv/bin/python -m pytest "${MARK[@]}" -q "$@"
rc=$?
set -e
if [ "$rc" = "5" ]; then echo "no tests collected" >&2; exit 1; fi
exit "$rc"
