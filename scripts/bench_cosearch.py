#!/usr/bin/env python
"""The NAAS paper's table: accelerator + mapping co-search against the budget's own design and sizing-only.

Budgets and networks as in the paper (torchvision, no weights, 224 px): ``edgetpu`` and ``nvdla-1024`` on vgg16
and resnet50; ``eyeriss``, ``nvdla-256`` and ``shidiannao`` on mobilenet_v2, squeezenet1_0 and mnasnet1_0. Each
cell is one :func:`hwmodel.cosearch.cosearch` run (baseline = the preset with searched mappings, sizing-only =
the preset's connectivity with searched sizes, NAAS = sizes and connectivity searched; same model, same
mapping budgets). Ratios are baseline / NAAS (> 1 is better); the 10x recheck is NAAS's final design re-mapped
with 10x the final mapping budget, as a ratio of its objective to the reported one (< 1: the reported figure was
under-searched by that much).

Also: mapping-search quality, the geomean over ResNet-50's distinct layers of best-found EDP / ``lower_bound``
EDP on ``eyeriss`` (``search_mapping`` budget 2000), and the time to map all of them.

JIT compile time is reported apart: one small warm-up co-search runs (and is timed) before anything else;
``--cold-jit`` also times it in a fresh interpreter with an empty numba cache.

    .venv/bin/python scripts/bench_cosearch.py [--generations 16] [--quick] [--out FILE] [--cold-jit]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PAPER = {  # NAAS (MAESTRO cost model): speedup / energy saving vs the budget's own design
    "edgetpu": (2.6, 1.1),
    "nvdla-1024": (2.2, 1.1),
    "eyeriss": (4.4, 2.1),
    "nvdla-256": (1.7, 1.4),
    "shidiannao": (4.4, 4.9),
}
TABLE = {
    "edgetpu": ["vgg16", "resnet50"],
    "nvdla-1024": ["vgg16", "resnet50"],
    "eyeriss": ["mobilenet_v2", "squeezenet1_0", "mnasnet1_0"],
    "nvdla-256": ["mobilenet_v2", "squeezenet1_0", "mnasnet1_0"],
    "shidiannao": ["mobilenet_v2", "squeezenet1_0", "mnasnet1_0"],
}
QUICK = {"eyeriss": ["squeezenet1_0"], "edgetpu": ["resnet50"]}
RATIOS = ("speedup", "energy_saving", "edp_ratio", "edp_vs_sizing_only")

WARMUP = r"""
import json, time
t0 = time.perf_counter()
from hwmodel.cosearch import cosearch
from hwmodel.layer import Layer
t1 = time.perf_counter()
cosearch([Layer.parse("N=1,G=1,K=16,C=16,P=8,Q=8,R=3,S=3,stride=1")], "eyeriss", generations=1,
         mapping_budget=32, final_mapping_budget=64)
print(json.dumps({"import": t1 - t0, "first_cosearch": time.perf_counter() - t1}))
"""


def geomean(xs: list[float]) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else math.nan


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    import numba

    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(), "numba": numba.__version__,
            "loadavg_start": os.getloadavg(), "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def warmup(cold: bool) -> dict:
    """In-process warm-up (cached JIT load, or compile when there is no cache); optionally a cold compile."""
    out = {}
    if cold:
        with tempfile.TemporaryDirectory(prefix="numba-cache-") as cache:
            proc = subprocess.run([sys.executable, "-c", WARMUP], env={**os.environ, "NUMBA_CACHE_DIR": cache},
                                  capture_output=True, text=True, check=True,
                                  cwd=Path(__file__).resolve().parent.parent)
            out["cold_compile"] = json.loads(proc.stdout.strip().splitlines()[-1])
    t0 = time.perf_counter()
    from hwmodel.cosearch import cosearch
    from hwmodel.layer import Layer

    t1 = time.perf_counter()
    cosearch([Layer.parse("N=1,G=1,K=16,C=16,P=8,Q=8,R=3,S=3,stride=1")], "eyeriss", generations=1,
             mapping_budget=32, final_mapping_budget=64)
    out["in_process"] = {"import": t1 - t0, "first_cosearch": time.perf_counter() - t1}
    return out


def mapping_quality(budget: int, seed: int) -> dict:
    from hwmodel.bounds import lower_bound
    from hwmodel.presets import PRESETS
    from hwmodel.search import search_mapping
    from hwmodel.workloads import model_layers

    accel = PRESETS["eyeriss"]
    layers = model_layers("resnet50")
    rows = []
    cpu0, t0 = time.process_time(), time.perf_counter()
    for i, layer in enumerate(layers):
        r = search_mapping(layer, accel, "edp", budget=budget, seed=seed + i)
        rows.append({"name": layer.name, "count": layer.count, "edp": r.cost.edp, "source": r.source,
                     "evaluations": r.evaluations})
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    for row, layer in zip(rows, layers):
        row["lower_bound_edp"] = lower_bound(layer, accel).edp
        row["ratio"] = row["edp"] / row["lower_bound_edp"]
    ratios = [r["ratio"] for r in rows]
    return {"accelerator": "eyeriss", "network": "resnet50", "layers": len(layers), "budget": budget,
            "geomean_ratio": geomean(ratios), "max_ratio": max(ratios), "min_ratio": min(ratios),
            "seconds": seconds, "cpu_seconds": cpu,
            "templates_won": sum(r["source"].startswith("template") for r in rows), "per_layer": rows}


def run_cell(budget: str, net: str, args) -> dict:
    from hwmodel.cosearch import cosearch
    from hwmodel.workloads import model_layers

    layers = model_layers(net)
    cpu0 = time.process_time()
    r = cosearch(layers, budget, args.objective, args.seed, args.generations, args.mapping_budget,
                 args.final_mapping_budget, model=net)
    cell = {
        "budget": budget, "network": net, "unique_layers": len(layers),
        **{k: r[k] for k in RATIOS},
        "recheck_10x": r["naas_recheck_10x"]["fitness_ratio"],
        "seconds": r["seconds"], "search_seconds": r["search_seconds"], "cpu_seconds": time.process_time() - cpu0,
        "baseline": r["baseline"], "sizing_only": r["sizing_only"],
        "naas": {k: v for k, v in r["naas"].items() if k != "mappings"},
        "loadavg_after": os.getloadavg(),
    }
    cell.update(template_baseline(layers, budget, r["naas"]))
    cell.update(own_dataflow_baseline(layers, budget, r["naas"]))
    return cell


#: The dataflow each budget's design was published with (the paper's baseline runs the design with it):
#: Eyeriss row stationary (Chen et al., ISCA 2016), NVDLA weight stationary (nvdla.org, "Convolution core"),
#: ShiDianNao output stationary (Du et al., ISCA 2015), Edge TPU weight-stationary systolic (as NAAS models it).
PUBLISHED_DATAFLOW = {"eyeriss": "rs", "nvdla-256": "ws", "nvdla-1024": "ws", "shidiannao": "os", "edgetpu": "ws"}


def own_dataflow_baseline(layers, budget: str, naas: dict) -> dict:
    """The preset running its published dataflow (:data:`PUBLISHED_DATAFLOW`) on every layer, template-mapped, no
    mapping search: the paper's setup. Ratios are baseline / NAAS; empty when a layer does not fit the template."""
    from hwmodel.presets import PRESETS
    from hwmodel.report import network_report
    from hwmodel.templates import template_mapping

    preset, flow = PRESETS[budget], PUBLISHED_DATAFLOW[budget]
    try:
        mappings = [template_mapping(layer, preset, flow) for layer in layers]
    except ValueError:
        return {}
    total = network_report(layers, preset, mappings)["total"]
    return {"own_dataflow_baseline": {**total, "dataflow": flow},
            "vs_own_dataflow": {"speedup": total["cycles"] / naas["cycles"],
                                "energy_saving": total["energy_pj"] / naas["energy_pj"],
                                "edp_ratio": total["edp"] / naas["edp"]}}


def template_baseline(layers, budget: str, naas: dict) -> dict:
    """The preset with its best template (ws/os/is/rs, by EDP) per layer and no mapping search: the kind of
    baseline the paper compares against (a design run with its own dataflow). Ratios are baseline / NAAS."""
    from hwmodel.presets import PRESETS
    from hwmodel.report import network_report, select_mappings

    preset = PRESETS[budget]
    mappings, labels = select_mappings(layers, preset)
    total = network_report(layers, preset, mappings)["total"]
    return {"template_baseline": {**total, "templates": sorted(set(labels))},
            "vs_templates": {"speedup": total["cycles"] / naas["cycles"],
                             "energy_saving": total["energy_pj"] / naas["energy_pj"],
                             "edp_ratio": total["edp"] / naas["edp"]}}


def markdown(results: dict) -> str:
    lines = ["| budget | network | speedup | energy saving | EDP ratio | EDP vs sizing-only | 10x recheck | "
             "search s | total s | NAAS design | vs template-mapped preset: speedup / energy / EDP | "
             "vs preset with its own dataflow: speedup / energy / EDP |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"]

    def vt(cells: list[dict], key: str = "vs_templates") -> str:
        if not all(key in c for c in cells):
            return ""
        g = [geomean([c[key][k] for c in cells]) for k in ("speedup", "energy_saving", "edp_ratio")]
        return " / ".join(f"{x:.2f}×" for x in g)

    for budget, cells in results["cells"].items():
        for c in cells:
            a = c["naas"]["accelerator"]
            design = "x".join(map(str, a["array"])) + " " + " / ".join("".join(ax) for ax in a["connectivity"])
            lines.append(f"| {budget} | {c['network']} | {c['speedup']:.2f}× | {c['energy_saving']:.2f}× | "
                         f"{c['edp_ratio']:.2f}× | {c['edp_vs_sizing_only']:.2f}× | {c['recheck_10x']:.3f} | "
                         f"{c['search_seconds']:.0f} | {c['seconds']:.0f} | {design} | {vt([c])} | "
                         f"{vt([c], 'vs_own_dataflow')} |")
        if cells:
            g = {k: geomean([c[k] for c in cells]) for k in (*RATIOS, "recheck_10x")}
            paper = PAPER.get(budget)
            ptxt = f" (paper {paper[0]}× / {paper[1]}×)" if paper else ""
            lines.append(f"| **{budget}** | **geomean**{ptxt} | **{g['speedup']:.2f}×** | **{g['energy_saving']:.2f}×** | "
                         f"**{g['edp_ratio']:.2f}×** | **{g['edp_vs_sizing_only']:.2f}×** | {g['recheck_10x']:.3f} | "
                         f"{sum(c['search_seconds'] for c in cells) / len(cells):.0f} avg | "
                         f"{sum(c['seconds'] for c in cells) / len(cells):.0f} avg | | {vt(cells)} | "
                         f"{vt(cells, 'vs_own_dataflow')} |")
    q = results.get("mapping_quality")
    if q:
        lines += ["", f"Mapping search, ResNet-50 ({q['layers']} distinct layers) on eyeriss, budget {q['budget']}: "
                      f"geomean best EDP / lower bound = {q['geomean_ratio']:.3f} (max {q['max_ratio']:.2f}, "
                      f"min {q['min_ratio']:.2f}; templates won {q['templates_won']}), all layers mapped in "
                      f"{q['seconds']:.1f} s wall ({q['cpu_seconds']:.1f} CPU-s)."]
    w = results.get("jit")
    if w:
        parts = [f"in-process warm-up (cached JIT): import {w['in_process']['import']:.1f} s + first co-search "
                 f"{w['in_process']['first_cosearch']:.1f} s"]
        if "cold_compile" in w:
            parts.append(f"cold (empty numba cache): import {w['cold_compile']['import']:.1f} s + first co-search "
                         f"{w['cold_compile']['first_cosearch']:.1f} s")
        lines += ["", "JIT: " + "; ".join(parts) + "."]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--generations", type=int, default=16)
    ap.add_argument("--mapping-budget", type=int, default=300)
    ap.add_argument("--final-mapping-budget", type=int, default=2000)
    ap.add_argument("--quality-budget", type=int, default=2000, help="search_mapping budget for the quality check")
    ap.add_argument("--objective", default="edp",
                    help="what to minimise, a name of hwmodel.objectives (checked after the warm-up, so that the "
                    "warm-up times the first hwmodel import)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 cells, 3 generations, small budgets")
    ap.add_argument("--budgets", help="comma-separated subset of the budgets")
    ap.add_argument("--cold-jit", action="store_true", help="also time a cold JIT compile in a fresh interpreter")
    ap.add_argument("--no-quality", action="store_true", help="skip the mapping-search quality check")
    ap.add_argument("--out", metavar="FILE", help="write all results as JSON (rewritten after every cell)")
    ap.add_argument("--render", metavar="FILE", help="print the table of a saved --out FILE and exit (adds the "
                    "template-mapped and own-dataflow baselines where missing)")
    args = ap.parse_args()
    if args.render:
        from hwmodel.workloads import model_layers

        saved = json.loads(Path(args.render).read_text())
        for budget, cells in saved["cells"].items():
            for c in cells:
                if "vs_templates" not in c:
                    c.update(template_baseline(model_layers(c["network"]), budget, c["naas"]))
                if "vs_own_dataflow" not in c:
                    c.update(own_dataflow_baseline(model_layers(c["network"]), budget, c["naas"]))
        print(markdown(saved))
        return 0
    table = QUICK if args.quick else TABLE
    if args.quick:
        args.generations = min(args.generations, 3)
        args.mapping_budget = min(args.mapping_budget, 100)
        args.final_mapping_budget = min(args.final_mapping_budget, 300)
        args.quality_budget = min(args.quality_budget, 300)
    if args.budgets:
        table = {b: TABLE[b] for b in args.budgets.split(",")}

    results = {"config": {k: getattr(args, k) for k in ("generations", "mapping_budget", "final_mapping_budget",
                                                         "quality_budget", "objective", "seed", "quick")},
               "machine": machine(), "paper": PAPER, "cells": {b: [] for b in table}}

    def save() -> None:
        if args.out:
            from hwmodel.report import write_json_atomic

            write_json_atomic(args.out, results)

    results["jit"] = warmup(args.cold_jit)
    print(f"warm-up: {results['jit']}", file=sys.stderr, flush=True)
    from hwmodel.objectives import get_objective

    try:
        get_objective(args.objective)
    except ValueError as exc:
        ap.error(f"--objective: {exc}")
    save()
    if not args.no_quality:
        results["mapping_quality"] = mapping_quality(args.quality_budget, args.seed)
        q = results["mapping_quality"]
        print(f"mapping quality: geomean {q['geomean_ratio']:.3f} in {q['seconds']:.1f} s", file=sys.stderr, flush=True)
        save()
    for budget, nets in table.items():
        for net in nets:
            cell = run_cell(budget, net, args)
            results["cells"][budget].append(cell)
            print(f"{budget} {net}: speedup {cell['speedup']:.2f} energy {cell['energy_saving']:.2f} "
                  f"edp {cell['edp_ratio']:.2f} vs sizing {cell['edp_vs_sizing_only']:.2f} "
                  f"recheck {cell['recheck_10x']:.3f} search {cell['search_seconds']:.0f}s total {cell['seconds']:.0f}s",
                  file=sys.stderr, flush=True)
            save()
    results["machine"]["loadavg_end"] = os.getloadavg()
    save()
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
