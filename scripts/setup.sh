#!/usr/bin/env bash
# Create .venv (if missing) and install naas-trainer with its dev extras. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
# shellcheck disable=SC1091
source .venv/bin/activate
if ! python -c "import naas_train, hwmodel, supernet, torch, pytorch_lightning, numba, timm" 2>/dev/null \
   || [ pyproject.toml -nt .venv/.installed ]; then
    python -m pip install -q --upgrade pip
    # torch/torchvision pinned here only because this machine serves these builds from local disk;
    # the package itself declares ranges (pyproject.toml).
    python -m pip install -q "torch==2.14.1" "torchvision==0.29.1" || python -m pip install -q torch torchvision
    python -m pip install -q -e ".[dev]"
    touch .venv/.installed
fi
# Ahead-of-time compiled kernels for short naas-hw commands (hwmodel/jit.py), rebuilt when the kernel sources
# changed (~10-20 s). Without them (no C compiler) everything works on numba's JIT, only start-up is slower.
if ! python -c "from hwmodel.jit import aot_module; raise SystemExit(aot_module() is None)" 2>/dev/null; then
    python -m hwmodel.aot_build \
        || echo "warning: hwmodel's AOT kernels were not built (see above); naas-hw uses numba's JIT" >&2
fi
