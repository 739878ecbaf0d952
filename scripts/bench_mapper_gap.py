#!/usr/bin/env python
"""The ES mapper against the exact mapper (``search_mapping(method="optimal")``): time and objective gap.

Small layers on a small 2x2 design are searched to the proven optimum (ES / optimum is then the ES's true
gap); network layers on a preset get ``--time-limit`` seconds each, after which the exact mapper reports its
best so far and the gap to a certified lower bound (``hwmodel.bounds.lower_bound``).

    .venv/bin/python scripts/bench_mapper_gap.py [--model resnet50 --accelerator eyeriss --layers 4 --time-limit 10]
    .venv/bin/python scripts/bench_mapper_gap.py --layers 3 --no-small --time-limit 1 --leaves 300   # bound tightness
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
    ap.add_argument("--es-runs", type=int, default=None, help="independent ES runs sharing the budget "
                    "(default: hwmodel.search.ES_RUNS)")
    ap.add_argument("--no-small", action="store_true", help="only the network layers (skip the proven small cases)")
    ap.add_argument("--leaves", type=int, default=0,
                    help="also: how tight the tiling bound is on the first N tilings the walk keeps (best order's "
                         "cost over the tiling's bound)")
    args = ap.parse_args(argv)

    import hwmodel as hw
    from hwmodel.search import ES_RUNS, search_mapping
    from hwmodel.workloads import model_layers

    es_runs = ES_RUNS if args.es_runs is None else args.es_runs

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
    proven_ratios = []  # ES / optimum of every run on a layer the exact mapper proved
    for layer, acc, limit in cases:
        t0 = time.perf_counter()
        exact = search_mapping(layer, acc, args.objective, method="optimal", time_limit=limit)
        t_exact = time.perf_counter() - t0
        ratios, secs = [], []
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            es = search_mapping(layer, acc, args.objective, budget=args.budget, seed=seed, runs=es_runs)
            secs.append(time.perf_counter() - t0)
            ratios.append(es.fitness / exact.fitness)
        if exact.proven:
            proven_ratios += ratios
        gm = float(np.exp(np.mean(np.log(ratios))))
        print(f"| {layer.name} | {acc.name} | {exact.evaluations:,} | {t_exact:.1f} | {'yes' if exact.proven else 'no'} "
              f"| {exact.gap:.3f} | {np.mean(secs):.2f} | {gm:.4f} | {gm * exact.gap:.3f} |")
    if proven_ratios:
        print(f"\nES ({es_runs} runs per search) / proven optimum, every seed of the proven layers "
              f"({len(proven_ratios)} searches): geomean {float(np.exp(np.mean(np.log(proven_ratios)))):.4f}, "
              f"worst {max(proven_ratios):.4f}")
    if args.leaves:
        print(f"\nTiling bound at the walk's leaves (first {args.leaves} tilings kept against the ES incumbent; "
              "quantiles 0 / 0.25 / 0.5 / 0.75 / 1 of the best order's figure over the tiling's bound):\n")
        print("| layer | accelerator | tilings | EDP | cycles | energy |\n|---|---|---:|---|---|---|")
        for layer, acc, _ in cases:
            ratios = leaf_tightness(layer, acc, args.leaves, args.budget)
            q = [np.round(np.quantile(ratios[:, k], [0, 0.25, 0.5, 0.75, 1]), 2).tolist() if len(ratios) else "-"
                 for k in range(3)]  # none kept: the bound rules out every tiling against the incumbent
            print(f"| {layer.name} | {acc.name} | {len(ratios)} | {q[0]} | {q[1]} | {q[2]} |")
    # where the optimum is proven: the ES's true gap over every objective and seed
    true_gaps = []
    for layer, acc, limit in cases[: 0 if args.no_small else 3]:
        for objective in ("edp", "latency", "energy"):
            exact = search_mapping(layer, acc, objective, method="optimal")
            true_gaps += [search_mapping(layer, acc, objective, budget=args.budget, seed=seed,
                                        runs=es_runs).fitness / exact.fitness
                          for seed in range(args.seeds)]
    if true_gaps:
        print(f"\nES / proven optimum on the small layers, 3 objectives x {args.seeds} seeds ({len(true_gaps)} runs): "
              f"geomean {float(np.exp(np.mean(np.log(true_gaps)))):.4f}, worst {max(true_gaps):.4f}")
    print(f"\nload average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


def leaf_tightness(layer, accel, n: int, budget: int) -> np.ndarray:
    """Per tiling the exact mapper's walk keeps (EDP against the ES's incumbent; the first ``n``): the best loop
    order's EDP, cycles and energy over the tiling's bound (least over its innermost loops)."""
    import itertools

    from hwmodel.costmodel import evaluate_batch
    from hwmodel.exact_mapper import Frontier, bounded_tilings
    from hwmodel.objectives import get_objective
    from hwmodel.search import search_mapping, tiling_orders, tiling_space
    from hwmodel.tiling_bound import TilingBound

    incumbent = search_mapping(layer, accel, "edp", budget=budget, seed=0).fitness
    fits, space = tiling_space(layer, accel, prune=True)
    cyc, en = get_objective("latency").family_column, get_objective("energy").family_column
    out = []
    leaves = bounded_tilings(space, fits, TilingBound(layer, accel), lambda c, e: c * e,
                             lambda c, e: c * e >= incumbent, Frontier())
    for leaf in itertools.islice(leaves, n):
        orders = tiling_orders(leaf.temporal)
        k = len(orders)
        codes, metrics, _ = evaluate_batch(layer, accel, np.broadcast_to(leaf.temporal, (k, 3, 8)).copy(),
                                           np.broadcast_to(leaf.spatial, (k, *leaf.spatial.shape)).copy(), orders,
                                           parallel=False)
        if not (codes == 0).any():
            continue
        edp = np.where(codes == 0, metrics[:, cyc] * metrics[:, en], np.inf)
        best = int(np.argmin(edp))
        finite = np.isfinite(leaf.order_cycles)
        bound_c, bound_e = leaf.order_cycles[finite], leaf.order_energy[finite]
        out.append((edp[best] / (bound_c * bound_e).min(), metrics[best, cyc] / bound_c.min(),
                    metrics[best, en] / bound_e.min()))
    return np.array(out).reshape(-1, 3)


if __name__ == "__main__":
    raise SystemExit(main())
