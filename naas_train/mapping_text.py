"""Mapping text of the export bundle: Timeloop-style loop nests, ``mapping.csv``, and the co-search's mappings
keyed by ``model.onnx``'s layer names (so ``naas-hw --mapping`` reads them against the ONNX graph)."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping as MappingABC
from typing import Any

from hwmodel.layer import DIMS, Layer
from hwmodel.mapping import TEMPORAL_LEVELS, Mapping

__all__ = ["loop_nest", "mapping_csv", "onnx_mappings"]


def loop_nest(mapping: Mapping | MappingABC[str, Any]) -> list[str]:
    """Timeloop-style loop nest, outermost first: one line per level, loops with bound 1 left out."""
    m = mapping if isinstance(mapping, Mapping) else Mapping.from_dict(dict(mapping))
    lines = []
    for i, level in enumerate(TEMPORAL_LEVELS):
        loops = [f"for {DIMS[d]} in [0:{int(m.temporal[i, d])})" for d in m.order[i] if m.temporal[i, d] > 1]
        lines.append(f"{level}: " + (" ".join(loops) if loops else "-"))
        if level == "L2":  # the spatial unroll sits between the global buffer and the PEs
            for a in range(m.spatial.shape[0]):
                par = [f"parallel_for {DIMS[d]} in [0:{int(m.spatial[a, d])})" for d in range(len(DIMS))
                       if m.spatial[a, d] > 1]
                if par:
                    lines.append(f"array axis {a}: " + " ".join(par))
    return lines


def _tiling(mapping: MappingABC[str, Any], level: str) -> str:
    """A level's temporal tile factors as ``"K4 C8 ..."`` (``-``: none)."""
    factors = mapping["temporal"][level]
    return " ".join(f"{d}{factors[d]}" for d in DIMS if d in factors) or "-"


def _spatial(mapping: MappingABC[str, Any]) -> str:
    """The spatial factors per array axis as ``"K16 | C4"`` (``-``: none)."""
    axes = [" ".join(f"{d}{a[d]}" for d in DIMS if d in a) for a in mapping["spatial"]]
    return " | ".join(a or "-" for a in axes if a) or "-"


def mapping_csv(layers: list[dict[str, Any]]) -> str:
    """``mapping.csv``: one row per (merged) layer with its shape, tiling per level, loop nest, bits (empty: the
    accelerator's full precision) and costs."""
    levels = ("mac", "l1", "noc", "l2", "dram")
    head = ["name", "source_layer", "count", *DIMS, "stride", "dilation", "macs", "dram_tiling", "l2_tiling",
            "spatial", "l1_tiling", "loop_nest", "weight_bits", "input_bits", "psum_bits", "compute_cycles", "cycles",
            "energy_pj",
            *[f"energy_{lv}_pj" for lv in levels], "edp", "utilization", "lower_bound_cycles",
            "lower_bound_energy_pj"]
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(head)
    for e in layers:
        dims, m = e["dims"], e["mapping"]
        w.writerow([e["name"], e.get("source_layer", ""), e["count"], *[dims[d] for d in DIMS],
                    "x".join(map(str, dims["stride"])), "x".join(map(str, dims["dilation"])), e["macs"],
                    _tiling(m, "DRAM"), _tiling(m, "L2"), _spatial(m), _tiling(m, "L1"), "; ".join(e["loop_nest"]),
                    *[(e.get("precision") or {}).get(k, "") for k in ("weights", "inputs", "psum")],
                    e["compute_cycles"], e["cycles"], e["energy_pj"],
                    *[e["energy_breakdown"].get(lv, 0.0) for lv in levels], e["edp"], e["utilization"],
                    e["lower_bound"]["cycles"], e["lower_bound"]["energy_pj"]])
    return out.getvalue()


def onnx_mappings(onnx_path: str | os.PathLike[str],
                  result: MappingABC[str, Any]) -> tuple[list[Layer], dict[str, Mapping], dict[str, str]]:
    """The layers :func:`hwmodel.workloads.from_onnx` reads from ``onnx_path`` (merged by shape, as
    ``naas-hw`` does), the result's mapping of the same shape keyed by each one's name, and the result's layer
    name of each. Raises ``ValueError`` when the ONNX layers and the result's layers differ."""
    from hwmodel.workloads import from_onnx

    layers = from_onnx(onnx_path)
    from naas_train.result_file import entry_layer

    by_shape: dict[tuple, dict[str, Any]] = {}
    for e in result["mappings"]:
        by_shape[entry_layer(e).shape_key] = e
    ours = {layer.shape_key: layer.count for layer in layers}
    theirs = {k: e["count"] for k, e in by_shape.items()}
    if ours != theirs:
        diff = sorted(set(ours.items()) ^ set(theirs.items()), key=str)[:3]
        raise ValueError(f"model.onnx's layers differ from the co-search's ({len(ours)} vs {len(theirs)} shapes; "
                         f"e.g. (shape, count) {diff}): the exported network is not the searched subnet")
    mappings = {layer.name: Mapping.from_dict(by_shape[layer.shape_key]["mapping"]) for layer in layers}
    sources = {layer.name: by_shape[layer.shape_key]["name"] for layer in layers}
    return layers, mappings, sources
