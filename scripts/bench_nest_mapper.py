#!/usr/bin/env python
"""The hierarchy mapper (:func:`hwmodel.nest_search.search_nest_mapping`) against Timeloop-mapper's published
mappings, as a table.

For every Timeloop fixture that ships a mapper result (``mapping.yaml`` next to a ``mapper/`` folder: exercises
05 and 06 and ``timeloop+accelergy`` of Accelergy-Project/timeloop-accelergy-exercises @ 27850fc3): Timeloop's
mapping evaluated in our model, and our search at the same budget, random sampling only (``method="random"``)
and the evolutionary search (default), on the same hierarchy and ERT; unconstrained (the exercise's mapspace
constraints are ignored). Objectives: the exercise's mapper metric (``[delay, energy]``: cycles, ties broken by
energy; the ratio column shows cycles, then energy) and EDP. Ratio = ours / Timeloop (<= 1: as good or better).

    .venv/bin/python scripts/bench_nest_mapper.py [--budget 30000 --seed 0 --seeds 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
FIXTURES = ROOT / "tests" / "fixtures" / "timeloop"
#: Timeloop's mapper metric -> our objective.
METRICS = {"delay": "latency", "energy": "energy", "edp": "edp"}


def mapper_cases() -> list[Path]:
    """Fixture cases with a Timeloop-mapper result."""
    return sorted(p.parent for p in FIXTURES.glob("*/*/mapping.yaml") if (p.parent / "mapper").is_dir())


def inputs(case: Path) -> tuple[Path, Path, Path, Path]:
    return (min((case / "arch").glob("*.yaml")), min((case / "prob").glob("*.yaml")), case / "mapping.yaml",
            min((case / "ref-output").glob("*ERT_summary.yaml")))


def mapper_objective(case: Path) -> str:
    """Our objective for the first metric the exercise's mapper optimised (``optimization-metric(s)``)."""
    from hwmodel.safe_yaml import load_yaml_file

    cfg = load_yaml_file(min((case / "mapper").glob("*.yaml")))["mapper"]
    metrics = cfg.get("optimization-metrics", cfg.get("optimization-metric"))
    return METRICS[str(metrics[0])]


def key(cost, objective: str) -> tuple[float, float]:
    """The lexicographic figure the search minimises (objective, then its tie-break)."""
    return {"latency": (cost.cycles, cost.energy_pj), "energy": (cost.energy_pj, cost.cycles),
            "edp": (cost.edp, cost.energy_pj)}[objective]


def fmt_ratio(ours: tuple[float, float], ref: tuple[float, float], objective: str) -> str:
    r = ours[0] / ref[0]
    return f"{r:.4f} (E {ours[1] / ref[1]:.4f})" if objective == "latency" else f"{r:.4f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget", type=int, default=30000, help="evaluated mappings per search")
    ap.add_argument("--seed", type=int, default=0, help="first seed")
    ap.add_argument("--seeds", type=int, default=1, help="seeds per case (worst ratio is shown)")
    ap.add_argument("--no-random", action="store_true", help="skip the random-only baseline (it is the slow one)")
    args = ap.parse_args(argv)

    from hwmodel.nest_search import search_nest_mapping
    from hwmodel.nestmodel import evaluate_nest_mapping
    from hwmodel.timeloop_import import load_timeloop

    print(f"budget {args.budget} per search, seeds {args.seed}..{args.seed + args.seeds - 1}; "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}\n")
    print("| case | objective | Timeloop-mapper (our model) | random | random / TL | evolve | evolve / TL (worst seed) "
          "| s random | s evolve |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    worst = 0.0
    for case in mapper_cases():
        hier, layer, published = load_timeloop(*inputs(case))
        ref_cost = evaluate_nest_mapping(layer, hier, published)
        for objective in dict.fromkeys([mapper_objective(case), "edp"]):
            ref = key(ref_cost, objective)
            runs = {"random": ((float("nan"), float("nan")), float("nan"))}
            for method in ("evolve",) if args.no_random else ("random", "evolve"):
                got, secs = [], []
                for seed in range(args.seed, args.seed + args.seeds):
                    t0 = time.perf_counter()
                    found = search_nest_mapping(layer, hier, objective=objective, budget=args.budget, seed=seed,
                                                method=method)
                    secs.append(time.perf_counter() - t0)
                    got.append(key(found.cost, objective))
                runs[method] = (max(got), sum(secs) / len(secs))
            (rnd, t_rnd), (evo, t_evo) = runs["random"], runs["evolve"]
            worst = max(worst, evo[0] / ref[0])
            name = f"{case.parent.name}/{case.name}"
            label = "latency (then energy)" if objective == "latency" else objective
            print(f"| {name} | {label} | {ref[0]:.4g} | {rnd[0]:.4g} | {fmt_ratio(rnd, ref, objective)} | {evo[0]:.4g} "
                  f"| {fmt_ratio(evo, ref, objective)} | {t_rnd:.2f} | {t_evo:.2f} |", flush=True)
    print(f"\nworst evolve / Timeloop-mapper ratio (primary figure): {worst:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
