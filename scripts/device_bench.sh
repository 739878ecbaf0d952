#!/usr/bin/env bash
# The GPU benchmarks of BENCHMARKS.md ("GPU") in one command, sized for a 15-minute device lease:
#   1. scripts/bench_gpu.py --loader: train-step img/s per progressive-shrinking phase (ours fp32 / ofa fp32 /
#      ours bf16 + channels_last / + torch.compile), the synthetic loader and the co-search measurement;
#   2. scripts/bench_data.py --device cuda: the ImageFolder loader's uint8 and device (nvJPEG) paths, 8 workers.
# Logs and JSON go to $OUT (default runs/device). Each step has its own time limit (GPU_BENCH_S, DATA_BENCH_S) and
# a step that fails or runs out of time does not stop the next one; bench_gpu prints each row as it is measured.
# Packages the machine's image lacks travel as wheels in .whl/ (see the device tool's README) and go to /tmp/site.
#   bash scripts/device_bench.sh
set -u
OUT=${OUT:-runs/device}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
if compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=$PWD:/tmp/site
fi
start=$SECONDS
{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv
    nproc
    "$PY" -c "import torch, torchvision, pytorch_lightning, numba, sys; print(sys.version.split()[0], 'torch', \
torch.__version__, 'torchvision', torchvision.__version__, 'lightning', pytorch_lightning.__version__, 'numba', \
numba.__version__, 'cuda', torch.cuda.is_available())"
} 2>&1 | tee "$OUT/env.txt"

timeout "${GPU_BENCH_S:-330}" "$PY" scripts/bench_gpu.py --loader --out "$OUT/bench_gpu.json" 2>&1 \
    | grep -v -E "^\s*$|Warning|warn\(" | tee "$OUT/bench_gpu.log"
echo "bench_gpu: exit ${PIPESTATUS[0]} after $((SECONDS - start)) s" | tee -a "$OUT/bench_gpu.log"

timeout "${DATA_BENCH_S:-120}" "$PY" scripts/bench_data.py --device cuda --paths uint8 device --workers 8 \
    --batch-size 64 --images 2048 --repeats 2 --json 2>&1 | tee "$OUT/bench_data.log"
echo "bench_data: exit ${PIPESTATUS[0]} after $((SECONDS - start)) s" | tee -a "$OUT/bench_data.log"
