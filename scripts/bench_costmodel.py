#!/usr/bin/env python
"""Cost-model throughput: mapping evaluations per second on ResNet-50 layers, 1 thread and all threads.

Mappings are random but "valid-ish": each takes the spatial unroll of a random dataflow template (ws/os/is/rs)
that fits the layer, splits every dim's remaining iterations into random DRAM / L2 / L1 factors (log-uniform,
ceil-div, so some pad) and draws a random loop order per level. Some overflow a buffer; the table gives the
valid fraction, and a second row times only the valid ones (an invalid mapping stops at the capacity check,
so the all-mappings rate flatters the model).

JIT compile time is measured apart, in fresh interpreters pointed at an empty ``NUMBA_CACHE_DIR``: the first
run compiles (cold), the second loads the cache that the first wrote (cached).

    .venv/bin/python scripts/bench_costmodel.py [--accelerators eyeriss,edgetpu] [--per-layer 40000]

A second table times the general storage-hierarchy entry point on Timeloop's 5-level Eyeriss-like
architecture (``tests/fixtures/timeloop/06-mapper-convlayer-eyeriss``: DRAM, 108 KB buffer, a bypassing
array-row buffer, separate ifmap / weight / psum scratchpads) with random mappings of the same layers
(``hwmodel.nest_search.random_mapping``; the valid ones made to fit by ``fit_capacity``), one thread.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

CHILD = r"""
import json, time
t0 = time.perf_counter()
import numpy as np
import hwmodel as hw
from hwmodel.costmodel import evaluate_batch
t1 = time.perf_counter()
layer = hw.Layer(K=16, C=8, P=7, Q=7, R=3, S=3)
accel = hw.PRESETS["eyeriss"]
m = hw.mapping_from_factors(dram=layer.dims)
args = (m.temporal[None], m.spatial[None], m.order[None])
evaluate_batch(layer, accel, *args, parallel=False)
t2 = time.perf_counter()
evaluate_batch(layer, accel, *args, parallel=True)
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "serial": t2 - t1, "parallel": t3 - t2}))
"""


def jit_times() -> dict[str, dict[str, float]]:
    """Import / first-call times of the serial and parallel entry points: cold compile, then cached load."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="numba-cache-") as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for label in ("cold compile", "cached load"):
            proc = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True)
            out[label] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def log_uniform(rng: np.random.Generator, hi: np.ndarray) -> np.ndarray:
    """Integers in ``[1, hi]`` (elementwise), log-uniform."""
    return np.minimum(hi, np.floor(np.exp(rng.random(hi.shape) * np.log(hi + 1.0)))).astype(np.int64).clip(1)


def random_mappings(layer, accel, n: int, rng: np.random.Generator):
    import hwmodel as hw

    spatials = []
    for flow in hw.DATAFLOWS:
        try:
            spatials.append(hw.template_mapping(layer, accel, flow).spatial)
        except ValueError:
            pass
    if not spatials:
        raise ValueError(f"no template fits layer {layer.name} on {accel.name}")
    spatial = np.stack(spatials)[rng.integers(0, len(spatials), n)]  # [n, 3, 8]
    dims = layer.dim_array[None, :]
    rem = -(-dims // spatial.prod(axis=1))  # iterations left per dim after the unroll
    l1 = log_uniform(rng, rem)
    if not accel.systolic:
        l1 = np.where(rng.random(l1.shape) < 0.5, 1, l1)  # tiny L1s: keep half the dims out of L1
    else:
        l1[:] = 1
    rem1 = -(-rem // l1)
    l2 = log_uniform(rng, rem1)
    dram = -(-rem1 // l2)
    temporal = np.stack([dram, l2, l1], axis=1)  # [n, 3, 8]
    order = np.argsort(rng.random((n, 3, 8)), axis=2).astype(np.int64)
    return temporal, spatial, order


def time_pass(batches, accel, parallel: bool, repeats: int) -> list[tuple[float, float]]:
    """``(wall seconds, process CPU seconds)`` of each of ``repeats`` passes over ``batches``."""
    from hwmodel.costmodel import evaluate_batch

    times = []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        for layer, (t, s, o) in batches:
            evaluate_batch(layer, accel, t, s, o, parallel=parallel)
        times.append((time.perf_counter() - t0, time.process_time() - c0))
    return times


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, nproc {os.cpu_count()} ({len(os.sched_getaffinity(0))} usable), Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--accelerators", default="eyeriss,edgetpu", help="comma-separated presets / systolic:RxC")
    parser.add_argument("--per-layer", type=int, default=40_000, help="random mappings per unique layer")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-jit", action="store_true", help="skip the fresh-process JIT timing")
    args = parser.parse_args(argv)

    import numba

    import hwmodel as hw
    from hwmodel.costmodel import evaluate_batch, set_num_threads
    from hwmodel.workloads import model_layers

    print(f"machine: {machine()}, numba {numba.__version__}, numba threads {numba.config.NUMBA_NUM_THREADS}")
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")

    if not args.no_jit:
        jit = jit_times()
        print("\nJIT (fresh interpreter, empty NUMBA_CACHE_DIR; seconds)\n")
        print("| run | import hwmodel | first serial call | first parallel call |")
        print("|---|---:|---:|---:|")
        for label, t in jit.items():
            print(f"| {label} | {t['import']:.2f} | {t['serial']:.2f} | {t['parallel']:.2f} |")

    layers = model_layers(args.model)
    rng = np.random.default_rng(args.seed)
    max_threads = numba.config.NUMBA_NUM_THREADS
    rows = []
    for spec in args.accelerators.split(","):
        accel = hw.load_accelerator(spec)
        batches = [(layer, random_mappings(layer, accel, args.per_layer, rng)) for layer in layers]
        n_all = sum(b[1][0].shape[0] for b in batches)
        valid_batches = []
        for layer, (t, s, o) in batches:
            codes, _, _ = evaluate_batch(layer, accel, t, s, o, parallel=False)  # also warms the JIT
            keep = codes == 0
            valid_batches.append((layer, (t[keep], s[keep], o[keep])))
        n_valid = sum(b[1][0].shape[0] for b in valid_batches)
        for label, bs, n in (("all", batches, n_all), ("valid only", valid_batches, n_valid)):
            for path, threads, parallel in (("serial", 1, False), ("parallel", 1, True), ("parallel", max_threads, True)):
                set_num_threads(threads)
                time_pass(bs[:1], accel, parallel, 1)  # warm
                times = time_pass(bs, accel, parallel, args.repeats)
                wall = [w for w, _ in times]
                best_wall, best_cpu = min(times)
                rows.append((accel.name, label, n, n_valid / n_all, path, threads, n / best_wall,
                             n / statistics.median(wall), n / best_cpu, best_cpu / best_wall))
        set_num_threads(max_threads)

    print(f"\n{args.model}: {len(layers)} unique layers, {args.per_layer} random mappings each, best / median of {args.repeats}\n")
    print("| accelerator | mappings | count | valid | entry point | threads | evals/s wall (best) | evals/s wall (median) "
          "| evals per CPU-s | CPU-s / wall-s |")
    print("|---|---|---:|---:|---|---:|---:|---:|---:|---:|")
    for name, label, n, valid, path, threads, best, med, per_cpu, share in rows:
        print(f"| {name} | {label} | {n:,} | {valid:.1%} | {path} | {threads} | {best:,.0f} | {med:,.0f} "
              f"| {per_cpu:,.0f} | {share:.2f} |")
    print("\nevals per CPU-s: mappings / process CPU time of the best pass; with 1 thread, the rate of one core that the"
          "\nprocess had to itself (CPU-s / wall-s < 1 means other processes took the rest of the core).")
    hierarchy_rows(layers, max(1000, args.per_layer // 10), args.repeats, rng)
    print(f"\nload average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


EYERISS_LIKE = "tests/fixtures/timeloop/06-mapper-convlayer-eyeriss/_"


def hierarchy_rows(layers, per_layer: int, repeats: int, rng: np.random.Generator) -> None:
    """Evaluations/s of :func:`hwmodel.nestmodel.evaluate_nest_batch` on the 5-level Eyeriss-like hierarchy."""
    from pathlib import Path

    from hwmodel import nestkernel as nk
    from hwmodel.nest_search import fit_capacity, random_mapping
    from hwmodel.nestmodel import evaluate_nest_batch
    from hwmodel.timeloop_import import read_architecture
    from hwmodel.ert import load_ert

    root = Path(__file__).resolve().parent.parent / EYERISS_LIKE
    hier = read_architecture(root / "arch" / "eyeriss_like.yaml", load_ert(root / "ref-output" / "timeloop-mapper.ERT_summary.yaml"))
    from hwmodel.nestmodel import layer_params

    ai, af, conn, e_mac = hier.arrays()

    def packed(maps):
        parts = [m.padded() for m in maps]
        return [np.stack([p[k] for p in parts]) for k in range(4)]

    batches = []
    for layer in layers:
        maps = [random_mapping(layer, hier, rng) for _ in range(per_layer)]
        fitted = fit_capacity(layer, hier, maps)  # made to fit the scratchpads (random ones almost never do)
        codes, _, _ = evaluate_nest_batch(layer, hier, fitted)  # also compiles
        valid = [m for m, c in zip(fitted, codes) if c == nk.OK]
        batches.append((layer_params(layer), packed(valid) if valid else None, packed(maps), len(valid), len(maps)))
    n_all = sum(b[4] for b in batches)
    n_valid = sum(b[3] for b in batches)
    print(f"\nstorage-hierarchy kernel, {hier.name} ({len(hier.levels)} levels), {per_layer} random mappings per layer, "
          "1 thread\n")
    print("| mappings | count | evals/s (best CPU) |")
    print("|---|---:|---:|")
    for label, idx, n in (("random (mostly invalid)", 2, n_all), ("fitted, valid only", 1, n_valid)):
        best = math.inf
        for _ in range(repeats):
            c0 = time.process_time()
            for b in batches:
                if b[idx] is not None:
                    nk.evaluate_nest_batch(b[0], len(hier.levels), ai, af, conn, e_mac, *b[idx])
            best = min(best, time.process_time() - c0)
        print(f"| {label} | {n:,} | {n / best:,.0f} |")


if __name__ == "__main__":
    sys.exit(main())
