#!/usr/bin/env python
"""The ES mapper against the exact mapper (``search_mapping(method="optimal")``): time and objective gap.

Small layers on a small 2x2 design are searched to the proven optimum (ES / optimum is then the ES's true
gap); network layers on a preset get ``--time-limit`` seconds each, after which the exact mapper reports its
best so far and the gap to a certified lower bound (``hwmodel.bounds.lower_bound``).

    .venv/bin/python scripts/bench_mapper_gap.py [--model resnet50 --accelerator eyeriss --layers 4 --time-limit 10]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="resnet50")
    ap.add_argument("--accelerator", default="eyeriss")
    ap.add_argument("--layers", type=int, default=4, help="first N distinct layers of the model")
    ap.add_argument("--time-limit", type=float, default=10.0, help="seconds of exact search per network layer")
    ap.add_argument("--objective", default="edp")
    ap.add_argument("--budget", type=int, default=2000, help="ES evaluations per layer")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--no-small", action="store_true", help="only the network layers (skip the proven small cases)")
    args = ap.parse_args(argv)

    import hwmodel as hw
    from hwmodel.search import search_mapping
    from hwmodel.workloads import model_layers

    small = hw.Accelerator(name="small-2x2", array=(2, 2), connectivity=(("C", "K"), ("P", "Q")), l1_words=24,
                           l2_bytes=400, noc_bandwidth=2, dram_bandwidth=1)
    cases = [] if args.no_small else [
        (hw.Layer(K=4, C=3, P=4, Q=2, R=3, name="conv 4x3x4x2 R3"), small, None),
        (hw.Layer(K=1, C=1, G=4, P=3, Q=3, R=2, S=2, name="depthwise G4"), small, None),
        (hw.Layer(K=3, C=2, P=3, Q=2, R=2, stride=2, name="strided"), small, None)]
    accel = hw.load_accelerator(args.accelerator)
    cases += [(layer, accel, args.time_limit) for layer in model_layers(args.model)[: args.layers]]
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}\n")
    print("| layer | accelerator | exact: evaluations | exact s | proven | exact / certified bound | ES s (mean) "
          "| ES / exact best (geomean of seeds) | ES / certified bound |")
    print("|---|---|---:|---:|---|---:|---:|---:|---:|")
    for layer, acc, limit in cases:
        t0 = time.perf_counter()
        exact = search_mapping(layer, acc, args.objective, method="optimal", time_limit=limit)
        t_exact = time.perf_counter() - t0
        ratios, secs = [], []
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            es = search_mapping(layer, acc, args.objective, budget=args.budget, seed=seed)
            secs.append(time.perf_counter() - t0)
            ratios.append(es.fitness / exact.fitness)
        gm = float(np.exp(np.mean(np.log(ratios))))
        print(f"| {layer.name} | {acc.name} | {exact.evaluations:,} | {t_exact:.1f} | {'yes' if exact.proven else 'no'} "
              f"| {exact.gap:.3f} | {np.mean(secs):.2f} | {gm:.4f} | {gm * exact.gap:.3f} |")
    # where the optimum is proven: the ES's true gap over every objective and seed
    true_gaps = []
    for layer, acc, limit in cases[: 0 if args.no_small else 3]:
        for objective in ("edp", "latency", "energy"):
            exact = search_mapping(layer, acc, objective, method="optimal")
            true_gaps += [search_mapping(layer, acc, objective, budget=args.budget, seed=seed).fitness / exact.fitness
                          for seed in range(args.seeds)]
    if true_gaps:
        print(f"\nES / proven optimum on the small layers, 3 objectives x {args.seeds} seeds ({len(true_gaps)} runs): "
              f"geomean {float(np.exp(np.mean(np.log(true_gaps)))):.4f}, worst {max(true_gaps):.4f}")
    print(f"\nload average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
