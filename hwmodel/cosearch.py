"""NAAS co-search of one network against its baselines, in one run, on one cost model and mapping budget.

(a) ``baseline``: the budget preset as designed, with searched mappings; (b) ``sizing_only``: the preset's
connectivity kept, array and buffer sizes searched; (c) ``naas``: sizes and connectivity searched. Every
design's final figures come from the same final mapping search (templates, ES and local polish at
``final_mapping_budget``), and NAAS's design is re-mapped with 10x that budget as a check that its gain
does not come from an under-searched baseline. The spaces nest (preset within sizing-only within NAAS), so
each search's reported design is the best it evaluated in its space, the smaller space's winner included
(``sources`` says where it came from).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable

from hwmodel.accel_search import AcceleratorSearch, Budget, DesignResult, evaluate_design, unique_layers
from hwmodel.accelerator import Accelerator
from hwmodel.layer import Layer
from hwmodel.objectives import Objective, get_objective
from hwmodel.presets import PRESETS
from hwmodel.report import network_report, provenance, write_json_atomic

SCHEMA_VERSION = 1


def _final(accel: Accelerator, layers: list[Layer], objective: Objective, budget: int, seed: int,
           warm: list | None = None) -> DesignResult:
    layers_u, uses = unique_layers({"net": layers})
    return evaluate_design(accel, layers_u, uses, objective, budget, seed=seed, warm=warm, include_templates=True,
                           polish=True)


def _entry(res: DesignResult) -> dict[str, Any]:
    net = res.networks["net"]
    return {"cycles": net["cycles"], "energy_pj": net["energy_pj"], "edp": net["edp"],
            "accelerator": res.accelerator.to_dict()}


def cosearch(
    layers: list[Layer],
    budget: str = "eyeriss",
    objective: Objective = "edp",
    seed: int = 0,
    generations: int = 16,
    mapping_budget: int = 300,
    final_mapping_budget: int = 2000,
    model: str = "network",
    out: str | Path | None = None,
    progress: Callable[[str, int, int, float], None] | None = None,
) -> dict[str, Any]:
    """Run (b) and (c), evaluate all three designs, and return the result dict (schema in the issue).

    ``out``: a folder that receives ``cosearch.json``, ``accelerator.json``, ``mappings.json`` (per-layer
    NAAS mappings, in the ``naas-hw evaluate --json`` schema) and ``convergence.png``; written atomically.
    """
    if budget not in PRESETS:
        raise ValueError(f"unknown budget {budget!r}; choose one of {', '.join(sorted(PRESETS))}")
    preset = PRESETS[budget]
    b = Budget.from_preset(preset)
    workloads = {"net": layers}
    start = time.perf_counter()
    searches = {}
    for kind, conn in (("sizing_only", preset.connectivity), ("naas", None)):
        s = AcceleratorSearch(workloads, b, objective, seed, generations, mapping_budget=mapping_budget,
                              connectivity=conn)
        s.driver.run(generations, progress=None if progress is None else (lambda g, n, f, kind=kind: progress(kind, g, n, f)))
        if s.best is None:
            raise ValueError(f"{kind}: no design within budget {budget} could map every layer of {model}")
        searches[kind] = s
    search_seconds = time.perf_counter() - start

    base = _final(preset, layers, objective, final_mapping_budget, seed)
    sized = _final(searches["sizing_only"].best.accelerator, layers, objective, final_mapping_budget, seed,
                   searches["sizing_only"].warm)
    naas = _final(searches["naas"].best.accelerator, layers, objective, final_mapping_budget, seed,
                  searches["naas"].warm)
    # Each space contains the smaller one (preset in sizing-only, sizing-only in NAAS): a search reports the
    # best design of its space it has evaluated, the smaller space's winner included.
    sized_source = naas_source = "search"
    if base.fitness < sized.fitness:
        sized, sized_source = base, "preset"
    if sized.fitness < naas.fitness:
        naas, naas_source = sized, f"sizing_only ({sized_source})"
    recheck = _final(naas.accelerator, layers, objective, 10 * final_mapping_budget, seed + 1, searches["naas"].warm)
    if not all(math.isfinite(r.fitness) for r in (base, sized, naas)):
        raise ValueError(f"a design could not map every layer of {model} (buffers too small)")

    layers_u, _ = unique_layers(workloads)
    by_shape = {l.shape_key: m for l, m in zip(layers_u, naas.mappings)}
    naas_report = network_report(layers, naas.accelerator, [by_shape[l.shape_key] for l in layers], seed=seed)
    result = {
        "schema_version": SCHEMA_VERSION,
        "provenance": provenance(preset, seed),
        "budget": budget,
        "model": model,
        "objective": objective,
        "baseline": _entry(base),
        "sizing_only": _entry(sized),
        "naas": {**_entry(naas), "mappings": naas_report["layers"]},
        "speedup": base.networks["net"]["cycles"] / naas.networks["net"]["cycles"],
        "energy_saving": base.networks["net"]["energy_pj"] / naas.networks["net"]["energy_pj"],
        "edp_ratio": base.networks["net"]["edp"] / naas.networks["net"]["edp"],
        "edp_vs_sizing_only": sized.networks["net"]["edp"] / naas.networks["net"]["edp"],
        "sources": {"sizing_only": sized_source, "naas": naas_source},
        "naas_recheck_10x": {"fitness_ratio": recheck.fitness / naas.fitness, "mapping_budget": 10 * final_mapping_budget},
        "search": {"generations": generations, "mapping_budget": mapping_budget,
                   "final_mapping_budget": final_mapping_budget,
                   "history": {k: s.history for k, s in searches.items()}},
        "seconds": time.perf_counter() - start,
        "search_seconds": search_seconds,
    }
    if out is not None:
        write_outputs(result, naas_report, naas.accelerator, Path(out))
    return result


def write_outputs(result: dict[str, Any], naas_report: dict[str, Any], accel: Accelerator, out: Path) -> None:
    """``cosearch.json``, ``accelerator.json``, ``mappings.json`` and ``convergence.png`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "cosearch.json", result)
    write_json_atomic(out / "accelerator.json", accel.to_dict())
    write_json_atomic(out / "mappings.json", naas_report)
    plot_convergence(result, out / "convergence.png")


def plot_convergence(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for kind, hist in result["search"]["history"].items():
        ax.plot([h["generation"] for h in hist], [h["best"] for h in hist], marker="o", label=kind)
    ax.axhline(result["baseline"][get_objective(result["objective"]).key],
               color="gray", linestyle="--", label=f"{result['budget']} (searched mappings)")
    ax.set_yscale("log")
    ax.set_xlabel("generation")
    ax.set_ylabel(f"best {result['objective']}")
    ax.set_title(f"{result['model']} on the {result['budget']} budget")
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
