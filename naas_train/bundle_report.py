"""The export bundle's evidence: ``metrics.json`` (accuracy, costs, baseline ratios, provenance) and ``report.md``."""

from __future__ import annotations

import json
from collections.abc import Mapping as MappingABC
from pathlib import Path
from typing import Any

from hwmodel.accelerator import Accelerator
from hwmodel.report import _si, provenance
from naas_train.subnet_io import subnet_resolution

__all__ = ["bundle_metrics", "report_markdown"]


def _ratio(baseline: float, ours: float) -> float | None:
    """``baseline / ours`` (> 1: the exported design is better), ``None`` when ``ours`` is 0."""
    return baseline / ours if ours else None


def bundle_metrics(result: MappingABC[str, Any], report: dict[str, Any], params: int,
                   accuracy: dict[str, Any] | None, source: dict[str, Any], result_path: Path) -> dict[str, Any]:
    """``metrics.json`` less its schema version: ``accuracy`` (of :func:`naas_train.onnx_eval.onnx_accuracy`),
    MACs, params, the cycles, energy and EDP of ``report`` (:func:`hwmodel.report.network_report`), baseline
    ratios and provenance (``source``: where the weights came from)."""
    t = report["total"]
    baselines = {}
    for name, b in (result.get("baselines") or {}).items():
        baselines[name] = {"accuracy": b.get("accuracy"), "cycles": b["cycles"], "energy_pj": b["energy_pj"],
                           "edp": b["edp"], "accelerator": b.get("accelerator", {}).get("name"),
                           "subnet": b.get("config"),
                           **{k: b[k] for k in ("bits", "precision") if k in b},
                           # > 1: the exported design is better by this factor
                           "cycles_ratio": _ratio(b["cycles"], t["cycles"]),
                           "energy_ratio": _ratio(b["energy_pj"], t["energy_pj"]),
                           "edp_ratio": _ratio(b["edp"], t["edp"])}
    accel = Accelerator.from_dict(result["accelerator"])
    return {
        "accuracy": None if accuracy is None else accuracy["top1"],
        "accuracy_detail": accuracy,
        "search_accuracy": result.get("accuracy"),
        # which data gave which number: the exported model is scored on the validation (test) split only;
        # the co-search, its predictor and min_accuracy saw only the search split, held out of the training set
        "splits": {"accuracy": "validation (test split; never seen by training or the co-search)",
                   "search_accuracy": f"{result.get('accuracy_split', 'validation')} (supernet weights after BN "
                                      "recalibration; what the co-search and min_accuracy used)",
                   "min_accuracy": result.get("accuracy_split", "validation"),
                   "sizes": result.get("data_splits")},
        "min_accuracy": (result.get("settings") or {}).get("min_accuracy"),
        "constraint_met": result.get("constraint_met"),
        "macs": t["macs"],
        "params": params,
        "cycles": t["cycles"],
        "energy_pj": t["energy_pj"],
        "energy_unit": accel.energy.unit,
        "edp": t["edp"],
        "resolution": subnet_resolution(result),
        "baselines": baselines,
        "baselines_skipped": result.get("baselines_skipped") or {},
        # bits per layer (supernet layer name) and tensor; per model.onnx layer (with partial sums) in mapping.json
        "precision": result.get("precision"),
        "provenance": {
            "export": provenance(accel, (result.get("provenance") or {}).get("seed")),
            "search": result.get("provenance"),
            "result": str(result_path),
            "weights": source,
            "supernet_checkpoint": result.get("supernet_checkpoint"),
        },
    }


def report_markdown(result: MappingABC[str, Any], metrics: dict[str, Any], report: dict[str, Any],
                    subnet: dict[str, Any]) -> str:
    """``report.md``: metrics, baselines, accelerator, Pareto front, per-layer costs and the subnet config."""
    accel = Accelerator.from_dict(result["accelerator"])
    unit = metrics["energy_unit"]
    acc = metrics["accuracy"]
    acc_text = "not measured (no data module)" if acc is None else (
        f"{acc:.4f} ({metrics['accuracy_detail']['correct']}/{metrics['accuracy_detail']['images']} validation "
        "images, onnxruntime on model.onnx)")
    lines = [
        "# NAAS export bundle",
        "",
        f"Subnet of `{result['space'].get('class')}` at {metrics['resolution']} px on accelerator `{accel.name}` "
        f"(energy table `{accel.energy_table}`, {unit}).",
        "",
        "| metric | value |",
        "|---|---|",
        f"| top-1 accuracy | {acc_text} |",
        f"| accuracy during search | {metrics['search_accuracy']} |",
        f"| MACs | {metrics['macs']:,} |",
        f"| parameters | {metrics['params']:,} |",
        f"| cycles | {metrics['cycles']:.6g} |",
        f"| energy ({unit}) | {metrics['energy_pj']:.6g} |",
        f"| EDP ({unit} x cycles) | {metrics['edp']:.6g} |",
        "",
        "Reproduce the hardware numbers:",
        "",
        "```",
        "naas-hw evaluate --accelerator accelerator.json --mapping mapping.json --onnx model.onnx --json",
        "```",
        "",
        "## Baselines (the budget preset's own accelerator, searched mappings)",
        "",
        "| baseline | accuracy | cycles | energy | EDP | cycles ratio | energy ratio | EDP ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, b in metrics["baselines"].items():
        fmt = lambda v: "-" if v is None else f"{v:.3g}"  # noqa: E731
        lines.append(f"| {name.replace('_', ' ')} | {fmt(b['accuracy'])} | {_si(b['cycles'])} | {_si(b['energy_pj'])} "
                     f"| {_si(b['edp'])} | {fmt(b['cycles_ratio'])} | {fmt(b['energy_ratio'])} | {fmt(b['edp_ratio'])} |")
    lines += ["", "Ratios are baseline / exported design (> 1: the exported design is better)."]
    lines += [f"Not costed: {name} ({why})." for name, why in metrics.get("baselines_skipped", {}).items()]
    if metrics.get("precision"):
        lines += ["", "## Precision (bits per layer)", "",
                  "Weights per output channel (symmetric), input activations per tensor; model.onnx carries them as "
                  "QuantizeLinear / DequantizeLinear (int8/uint8 containers clipped to the bits).", "",
                  "| layer | weights | inputs |", "|---|---|---|"]
        lines += [f"| {name} | {b['weights']} | {b['inputs']} |" for name, b in metrics["precision"].items()]
    lines += ["", "## Accelerator", "",
              "| field | value |", "|---|---|"]
    for k, v in accel.to_dict().items():
        lines.append(f"| {k} | {json.dumps(v) if not isinstance(v, str) else v} |")
    lines += ["", "## Pareto front (co-search)", "", "![Pareto front](pareto.png)", "",
              "| accuracy | cycles | energy | EDP | accelerator array |", "|---|---|---|---|---|"]
    for p in result.get("pareto") or []:
        lines.append(f"| {p['accuracy']:.4f} | {_si(p['cycles'])} | {_si(p['energy_pj'])} | {_si(p['edp'])} | "
                     f"{'x'.join(map(str, p['accelerator']['array']))} |")
    lines += ["", "## Per-layer cost", "", "![Per-layer energy by level](breakdown.png)", "",
              "Per-instance figures; `count` identical layers share one mapping. Layer names are model.onnx's "
              "(as `naas-hw` reads them); `source` is the supernet's layer name.", "",
              "| layer | source | count | MACs | cycles | energy | utilization | loop nest |", "|---|---|---|---|---|---|---|---|"]
    for e in report["layers"]:
        lines.append(f"| {e['name']} | {e.get('source_layer', '')} | {e['count']} | {_si(e['macs'])} | {_si(e['cycles'])} "
                     f"| {_si(e['energy_pj'])} | {e['utilization']:.1%} | {'<br>'.join(e['loop_nest'])} |")
    lines += ["", "## Subnet", "", "```json", json.dumps(subnet, indent=None), "```", "",
              "## Files", "",
              "model.pt2 (torch.export), model.onnx, weights.safetensors (`naas_train.load_bundle(dir)` rebuilds the "
              "module), subnet.json, accelerator.json / accelerator.yaml (Timeloop v4 style), mapping.json / "
              "mapping.csv, metrics.json, this report.", ""]
    return "\n".join(lines)
