#!/usr/bin/env python
"""Do the accelerator search's inner mapper and the final mapper rank designs alike?

The NAAS outer loop scores each candidate accelerator with a cheap mapping search per layer (``mapping_budget``
evaluations, no templates, no local polish); the reported figures of the chosen design come from the final
mapper (templates + ES + polish at ``final_mapping_budget``). If the two rank designs differently, the search
optimises the wrong thing. This script draws random designs within a budget (uniform genomes, decoded as the
search decodes them), scores each with both mappers on a network and prints Spearman's rank correlation of the
two fitness lists (the search-v2 issue asks for >= 0.95) and how often the inner mapper's best design is the
final mapper's best.

    .venv/bin/python scripts/bench_rankcorr.py [--cells eyeriss:squeezenet1_0,edgetpu:resnet50] [--designs 24]
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", default="eyeriss:squeezenet1_0,edgetpu:resnet50,nvdla-256:mobilenet_v2",
                    help="comma-separated BUDGET:NETWORK pairs")
    ap.add_argument("--designs", type=int, default=24, help="random designs per cell")
    ap.add_argument("--mapping-budget", type=int, default=300, help="inner mapper (as the search's default)")
    ap.add_argument("--final-mapping-budget", type=int, default=2000, help="final mapper (as cosearch's default)")
    ap.add_argument("--objective", default="edp")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--spread", type=float, default=0.0,
                    help="0: uniform genomes; > 0: genomes within this Gaussian spread of one random design "
                         "(near-equal designs, as late in a search)")
    args = ap.parse_args(argv)

    from scipy.stats import spearmanr

    from hwmodel.accel_search import (
        ACCEL_GENES,
        Budget,
        decode_accelerator,
        evaluate_design,
        unique_layers,
    )
    from hwmodel.objectives import get_objective
    from hwmodel.presets import PRESETS
    from hwmodel.workloads import model_layers

    get_objective(args.objective)
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    rows = []
    for cell in args.cells.split(","):
        budget_name, network = cell.split(":")
        budget = Budget.from_preset(PRESETS[budget_name])
        layers, uses = unique_layers({"net": model_layers(network)})
        rng = np.random.default_rng(args.seed)
        inner, final = [], []
        t0 = time.perf_counter()
        center = rng.random(ACCEL_GENES)
        while len(inner) < args.designs:
            x = rng.random(ACCEL_GENES) if args.spread <= 0 else np.clip(center + args.spread * rng.standard_normal(ACCEL_GENES), 0, 1)
            accel = decode_accelerator(x, budget, name=f"rand-{budget_name}")
            if accel.l2_bytes < 64 or accel.num_pes * accel.l1_words * accel.word_bytes + accel.l2_bytes > budget.onchip_bytes + 1:
                continue  # outside the budget, as the search's acceptance test
            a = evaluate_design(accel, layers, uses, args.objective, args.mapping_budget, seed=args.seed)
            if not math.isfinite(a.fitness):
                continue
            b = evaluate_design(accel, layers, uses, args.objective, args.final_mapping_budget, seed=args.seed,
                                include_templates=True, polish=True)
            inner.append(a.fitness)
            final.append(b.fitness)
        rho = float(spearmanr(inner, final).statistic)
        ratio = np.array(inner) / np.array(final)
        rows.append((budget_name, network, len(inner), rho, int(np.argmin(inner)) == int(np.argmin(final)),
                     float(np.exp(np.mean(np.log(ratio)))), float(ratio.max()), time.perf_counter() - t0))

    where = "uniform genomes" if args.spread <= 0 else f"genomes within a Gaussian spread of {args.spread} of one random design"
    print(f"\n{args.designs} random designs per cell ({where}); inner mapper: budget {args.mapping_budget}, no templates, no "
          f"polish; final mapper: budget {args.final_mapping_budget} + templates + polish; objective {args.objective}\n")
    print("| budget | network | designs | Spearman rho | same best design | inner / final fitness (geomean) | (max) | s |")
    print("|---|---|---:|---:|---|---:|---:|---:|")
    for b, n, k, rho, same, gm, mx, sec in rows:
        print(f"| {b} | {n} | {k} | {rho:.3f} | {'yes' if same else 'no'} | {gm:.3f} | {mx:.3f} | {sec:.0f} |")
    print(f"\nload average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
