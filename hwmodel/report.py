"""Network cost reports: per-layer costs, lower bounds and totals as one JSON-ready dict.

Shared by ``naas-hw evaluate``, the co-search and the export bundle. Per-layer figures are for one instance
of the layer; totals add ``count`` x per-instance; ``total.edp`` is total energy x total cycles.
"""

from __future__ import annotations

import math
import os
import subprocess
from collections.abc import Mapping as MappingABC
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hwmodel.accelerator import Accelerator
from hwmodel.bounds import lower_bound
from hwmodel.costmodel import Cost, evaluate
from hwmodel.layer import DIMS, Layer
from hwmodel.mapping import Mapping
from hwmodel.objectives import get_objective
from hwmodel.precision import resolve_precision
from hwmodel.templates import DATAFLOWS, template_mapping
from hwmodel.version import __version__

#: Version of the report layout below; bump when a key changes meaning or goes away.
REPORT_SCHEMA_VERSION = 1


def package_version() -> str:
    """The version of this package (:data:`hwmodel.version.__version__`)."""
    return __version__


def git_sha() -> str | None:
    """``git rev-parse HEAD`` of the checkout holding this package, or ``None`` (no git, not a checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and sha else None


def provenance(accel: Accelerator, seed: int | None = None) -> dict[str, Any]:
    return {"version": package_version(), "git_sha": git_sha(), "energy_table": accel.energy_table, "seed": seed}


def layer_dims(layer: Layer) -> dict[str, Any]:
    """The shape of a layer: the eight loop bounds plus ``stride`` and ``dilation`` as ``[h, w]``."""
    return {**layer.dims, "stride": list(layer.stride), "dilation": list(layer.dilation)}


def objective_value(cost: Cost, objective: str = "edp") -> float:
    """The figure ``objective`` (:mod:`hwmodel.objectives`) minimises, read from ``cost``."""
    return getattr(cost, get_objective(objective).key)


def best_template(
    layer: Layer, accel: Accelerator, dataflows: Sequence[str] = tuple(DATAFLOWS), objective: str = "edp"
) -> tuple[str, Mapping, Cost]:
    """The template (of ``dataflows``) with the lowest ``objective`` for ``layer`` on ``accel``:
    ``(name, mapping, cost)``.

    Raises ``ValueError`` (the first template's reason) when no template fits the accelerator.
    """
    best: tuple[str, Mapping, Cost] | None = None
    first_error: ValueError | None = None
    for name in dataflows:
        try:
            mapping = template_mapping(layer, accel, name)
        except ValueError as exc:
            first_error = first_error or exc
            continue
        cost = evaluate(layer, accel, mapping)
        if cost.valid and (best is None or objective_value(cost, objective) < objective_value(best[2], objective)):
            best = (name, mapping, cost)
    if best is None:
        if first_error is not None:
            raise first_error
        raise ValueError(f"no {'/'.join(dataflows)} template mapping of layer {layer.name or layer} is valid on {accel.name}")
    return best


def select_mappings(
    layers: Sequence[Layer],
    accel: Accelerator,
    dataflow: str | None = None,
    mapping: "Mapping | MappingABC[str, Mapping] | Sequence[Mapping] | None" = None,
) -> tuple[list[Mapping], list[str]]:
    """One mapping per layer and a label saying where it came from.

    ``mapping`` may be one Mapping for every layer, a dict by layer name (every layer must be present) or
    a list aligned with ``layers``; otherwise the ``dataflow`` template, or the best of the four when
    ``dataflow`` is ``None``.
    """
    if mapping is not None and dataflow is not None:
        raise ValueError("give either a dataflow or a mapping, not both")
    if isinstance(mapping, Mapping):
        return [mapping] * len(layers), ["given"] * len(layers)
    if isinstance(mapping, MappingABC):
        _check_layer_names(layers)
        missing = [layer.name for layer in layers if layer.name not in mapping]
        if missing:
            have = ", ".join(repr(n) for n in list(mapping)[:8]) + (", ..." if len(mapping) > 8 else "")
            raise ValueError(
                f"mapping has no entry for layer {missing[0]!r}"
                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                + f"; per-layer names must match the workload's layer names (mapping has: {have})"
            )
        return [mapping[layer.name] for layer in layers], ["given"] * len(layers)
    if mapping is not None:
        mapping = list(mapping)
        if len(mapping) != len(layers):
            raise ValueError(f"got {len(mapping)} mappings for {len(layers)} layers")
        return mapping, ["given"] * len(layers)
    if dataflow is not None:
        if dataflow not in DATAFLOWS:
            raise ValueError(f"unknown dataflow {dataflow!r}; choose one of {', '.join(DATAFLOWS)}")
        return [template_mapping(layer, accel, dataflow) for layer in layers], [dataflow] * len(layers)
    chosen = [best_template(layer, accel) for layer in layers]
    return [m for _, m, _ in chosen], [name for name, _, _ in chosen]


def _check_layer_names(layers: Sequence[Layer]) -> None:
    seen: set[str] = set()
    for layer in layers:
        if layer.name in seen:
            raise ValueError(f"two layers are named {layer.name!r}; per-layer mappings need unique layer names")
        seen.add(layer.name)


def layer_entry(layer: Layer, accel: Accelerator, mapping: Mapping) -> dict[str, Any]:
    """The report entry of one layer (per-instance figures). Raises ``ValueError`` when the mapping does not
    cover the layer, unrolls what the array cannot, or overflows a buffer (the message names the layer)."""
    label = layer.name or str(layer)
    try:
        cost = evaluate(layer, accel, mapping)
    except ValueError as exc:
        raise ValueError(f"layer {label!r}: {exc}") from None
    if not cost.valid:
        raise ValueError(f"layer {label!r}: the mapping is invalid on {accel.name}: {cost.reason}")
    bound = lower_bound(layer, accel)
    prec = resolve_precision(layer, accel)
    extra = {} if prec is None else {"precision": {"weights": prec.weights, "inputs": prec.inputs, "psum": prec.psum}}
    return {
        "name": layer.name,
        "dims": layer_dims(layer),
        "count": layer.count,
        "macs": layer.macs,
        "compute_cycles": cost.compute_cycles,
        "cycles": cost.cycles,
        "energy_pj": cost.energy_pj,
        "energy_breakdown": dict(cost.energy_breakdown),
        "edp": cost.edp,
        "utilization": cost.utilization,
        "lower_bound": {"cycles": bound.cycles, "energy_pj": bound.energy_pj},
        "mapping": mapping.to_dict(),
        **extra,
    }


def totals(entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Network totals: ``count`` x per-instance summed; EDP of the totals (not a sum of per-layer EDPs)."""
    macs = sum(e["count"] * e["macs"] for e in entries)
    cycles = math.fsum(e["count"] * e["cycles"] for e in entries)
    energy = math.fsum(e["count"] * e["energy_pj"] for e in entries)
    return {"macs": macs, "cycles": cycles, "energy_pj": energy, "edp": energy * cycles}


def network_report(
    layers: Sequence[Layer],
    accel: Accelerator,
    mappings: "Sequence[Mapping] | MappingABC[str, Mapping] | Mapping",
    seed: int | None = None,
) -> dict[str, Any]:
    """The full report of ``layers`` on ``accel`` under ``mappings`` (aligned list, dict by name, or one
    mapping for all) in the ``naas-hw evaluate --json`` schema."""
    if not layers:
        raise ValueError("the workload has no layers to evaluate (no Conv/Linear/MatMul found)")
    chosen, _ = select_mappings(layers, accel, mapping=mappings)
    entries = [layer_entry(layer, accel, m) for layer, m in zip(layers, chosen)]
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "provenance": provenance(accel, seed),
        "accelerator": accel.to_dict(),
        "layers": entries,
        "total": totals(entries),
    }


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically (:func:`hwmodel.atomic.atomic_write_json`: a
    temporary in the same folder, fsynced and renamed; an existing ``path`` that is not a regular file is
    refused)."""
    from hwmodel.atomic import atomic_write_json

    atomic_write_json(path, data)


# --- text table ---------------------------------------------------------------------------------------
def _si(x: float) -> str:
    for scale, suffix in ((1e21, "Z"), (1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{suffix}"
    return f"{x:.3g}"


def _short_dims(dims: dict[str, Any]) -> str:
    parts = [f"{d}{dims[d]}" for d in DIMS if dims[d] != 1 or d in ("K", "C")]
    stride, dilation = dims["stride"], dims["dilation"]
    if stride != [1, 1]:
        parts.append("s" + (str(stride[0]) if stride[0] == stride[1] else f"{stride[0]}x{stride[1]}"))
    if dilation != [1, 1]:
        parts.append("d" + (str(dilation[0]) if dilation[0] == dilation[1] else f"{dilation[0]}x{dilation[1]}"))
    return " ".join(parts)


def format_report(report: dict[str, Any], labels: Sequence[str] | None = None, unit: str = "pJ") -> str:
    """A per-layer table with totals. ``labels`` (e.g. the dataflow of each layer) add a column."""
    headers = ["layer", "dims", "count", "MACs", "cycles", f"energy[{unit}]", "EDP", "util", "LB cycles", "LB energy"]
    if labels is not None:
        headers.append("mapping")
    rows: list[list[str]] = []
    for i, e in enumerate(report["layers"]):
        row = [
            e["name"] or f"layer{i}",
            _short_dims(e["dims"]),
            str(e["count"]),
            _si(e["macs"]),
            _si(e["cycles"]),
            _si(e["energy_pj"]),
            _si(e["edp"]),
            f"{e['utilization']:.1%}",
            _si(e["lower_bound"]["cycles"]),
            _si(e["lower_bound"]["energy_pj"]),
        ]
        if labels is not None:
            row.append(labels[i])
        rows.append(row)
    t = report["total"]
    lb_cycles = sum(e["count"] * e["lower_bound"]["cycles"] for e in report["layers"])
    lb_energy = sum(e["count"] * e["lower_bound"]["energy_pj"] for e in report["layers"])
    total = ["TOTAL", "", str(sum(e["count"] for e in report["layers"])), _si(t["macs"]), _si(t["cycles"]),
             _si(t["energy_pj"]), _si(t["edp"]), "", _si(lb_cycles), _si(lb_energy)]
    if labels is not None:
        total.append("")
    widths = [max(len(r[c]) for r in [headers, *rows, total]) for c in range(len(headers))]
    left = {0, 1, len(headers) - 1} if labels is not None else {0, 1}

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    rule = "-" * len(line(headers))
    accel = report["accelerator"]
    head = (
        f"accelerator {accel['name']}: array {'x'.join(map(str, accel['array']))}, energy table "
        f"{accel['energy_table']} ({unit}); per-instance figures, totals = sum of count x per-instance"
    )
    return "\n".join([head, line(headers), rule, *map(line, rows), rule, line(total)])
