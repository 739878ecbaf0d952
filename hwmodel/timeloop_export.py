"""Write a hierarchy, a layer and a mapping as Timeloop inputs (v0.3 architecture tree, CNN-layer problem,
mapping directives, ERT summary) that :mod:`hwmodel.timeloop_import` and Timeloop itself read back.

Limits of the format (stated in the files' comments): one word width per level (our per-tensor widths, e.g.
32-bit partial sums, are written as the level's word width; Timeloop cannot express per-operand precision),
our network bandwidth (words per cycle between a level and its children) is written as the level's read and
write bandwidth, and a dim unrolled on both axes of one fanout has no ``split`` form (refused).
"""

from __future__ import annotations

import math

import yaml

from hwmodel import nestkernel as nk
from hwmodel.hierarchy import Hierarchy, StorageLevel
from hwmodel.layer import DIMS, TENSORS, Layer
from hwmodel.nestmodel import NestMapping

#: Our dims -> Timeloop CNN-layer dims (``M`` is Timeloop's output-channel name).
TIMELOOP_DIMS: dict[str, str] = {"N": "N", "G": "G", "K": "M", "C": "C", "P": "P", "Q": "Q", "R": "R", "S": "S"}
TIMELOOP_TENSORS: dict[str, str] = {"weights": "Weights", "inputs": "Inputs", "outputs": "Outputs"}


def timeloop_name(name: str) -> str:
    """A level name Timeloop accepts (dots separate path components there)."""
    return name.replace(".", "_")


def _storage(lv: StorageLevel, instances_mesh: int) -> dict:
    width = lv.word_bits * lv.block_size
    attrs: dict = {"width": width, "block-size": lv.block_size, "word-bits": lv.word_bits}
    if lv.capacity_bits is not None:
        attrs["depth"] = max(1, int(lv.capacity_bits // width))
    bw = min(lv.read_bandwidth, lv.network_bandwidth)
    if math.isfinite(bw):
        attrs["read_bandwidth"] = bw
    bw = min(lv.write_bandwidth, lv.network_bandwidth)
    if math.isfinite(bw):
        attrs["write_bandwidth"] = bw
    if lv.multiple_buffering != 1:
        attrs["multiple-buffering"] = lv.multiple_buffering
    if instances_mesh > 1:
        attrs["meshX"] = instances_mesh
    cls = "DRAM" if lv.technology == "DRAM" else ("regfile" if (lv.capacity_bits or 0) <= 4096 else "SRAM")
    return {"name": timeloop_name(lv.name), "class": cls, "attributes": attrs}


def architecture_yaml(hier: Hierarchy) -> str:
    """The hierarchy as a Timeloop v0.3 architecture tree (a subtree per fanout, ``name[0..N-1]``)."""
    root: dict = {"name": "system", "local": []}
    node = root
    mesh = 1
    for l, lv in enumerate(hier.levels):
        node["local"].append(_storage(lv, mesh))
        if lv.fanout is not None:
            mesh *= lv.fanout.axes[0]
            sub = {"name": f"{timeloop_name(lv.name)}_fanout[0..{lv.fanout.size - 1}]", "local": []}
            node["subtree"] = [sub]
            node = sub
    mac = {"name": "MACC", "class": "intmac", "attributes": {"datawidth": max(hier.mac_bits)}}
    if mesh > 1:
        mac["attributes"]["meshX"] = mesh
    node["local"].append(mac)
    header = (f"# {hier.name}: written by hwmodel.timeloop_export (Timeloop v0.3 architecture; one word width per\n"
              "# level, network bandwidth written as read/write bandwidth).\n")
    return header + yaml.safe_dump({"architecture": {"version": 0.3, "subtree": [root]}}, sort_keys=False)


def problem_yaml(layer: Layer) -> str:
    """The layer as a Timeloop CNN-layer problem (``G`` added to the projections when ``G > 1``)."""
    grouped = layer.G > 1
    weights = ([[["G"]]] if grouped else []) + [[["C"]], [["M"]], [["R"]], [["S"]]]
    inputs = [[["N"]]] + ([[["G"]]] if grouped else []) + [[["C"]], [["R", "Wdilation"], ["P", "Wstride"]],
                                                           [["S", "Hdilation"], ["Q", "Hstride"]]]
    outputs = [[["N"]]] + ([[["G"]]] if grouped else []) + [[["M"]], [["Q"]], [["P"]]]
    dims = (["G"] if grouped else []) + ["C", "M", "R", "S", "N", "P", "Q"]
    shape = {
        "name": layer.name or "CNN-Layer",
        "dimensions": dims,
        "coefficients": [{"name": c, "default": 1} for c in ("Wstride", "Hstride", "Wdilation", "Hdilation")],
        "data-spaces": [
            {"name": "Weights", "projection": weights},
            {"name": "Inputs", "projection": inputs},
            {"name": "Outputs", "projection": outputs, "read-write": True},
        ],
    }
    instance = {TIMELOOP_DIMS[d]: int(getattr(layer, d)) for d in DIMS if d != "G" or grouped}
    instance.update(Wstride=layer.stride[0], Hstride=layer.stride[1], Wdilation=layer.dilation[0],
                    Hdilation=layer.dilation[1])
    return yaml.safe_dump({"problem": {"shape": shape, "instance": instance}}, sort_keys=False)


def mapping_yaml(hier: Hierarchy, mapping: NestMapping) -> str:
    """The mapping as Timeloop directives (permutations innermost first; ``split`` for 2-axis fanouts)."""
    out: list[dict] = []
    for l, lv in enumerate(hier.levels):
        order = [DIMS[d] for d in mapping.order[l]]
        out.append({
            "target": timeloop_name(lv.name), "type": "temporal",
            "factors": " ".join(f"{TIMELOOP_DIMS[d]}={int(mapping.temporal[l, DIMS.index(d)])}" for d in DIMS),
            "permutation": "".join(TIMELOOP_DIMS[d] for d in reversed(order)),
        })
        if lv.fanout is not None:
            sp = mapping.spatial[l]
            x_dims = [d for d in range(nk.NUM_DIMS) if sp[0, d] > 1]
            y_dims = [d for d in range(nk.NUM_DIMS) if len(lv.fanout.axes) > 1 and sp[1:, d].prod() > 1]
            both = set(x_dims) & set(y_dims)
            if both or (len(lv.fanout.axes) > 2 and (sp[2] > 1).any()):
                raise ValueError(f"level {lv.name}: a dim unrolled on several axes ({', '.join(DIMS[d] for d in both)}) "
                                 "has no Timeloop split form")
            rest = [d for d in range(nk.NUM_DIMS) if d not in x_dims and d not in y_dims]
            perm = x_dims + y_dims + rest
            out.append({
                "target": timeloop_name(lv.name), "type": "spatial",
                "factors": " ".join(f"{TIMELOOP_DIMS[DIMS[d]]}={int(sp[:, d].prod())}" for d in range(nk.NUM_DIMS)),
                "permutation": "".join(TIMELOOP_DIMS[DIMS[d]] for d in perm),
                "split": len(x_dims),
            })
        keep = [TIMELOOP_TENSORS[t] for i, t in enumerate(TENSORS) if mapping.keep[l, i] and t in lv.keeps]
        bypass = [TIMELOOP_TENSORS[t] for t in TENSORS if TIMELOOP_TENSORS[t] not in keep]
        out.append({"target": timeloop_name(lv.name), "type": "bypass", "keep": keep, "bypass": bypass})
    return yaml.safe_dump({"mapping": out}, sort_keys=False)


def ert_summary_yaml(hier: Hierarchy) -> str:
    """Per-vector access energies (pJ) as an Accelergy ``ERT_summary`` (read, write; MAC ``mac_random``)."""
    tables = [
        {"name": f"system.{timeloop_name(lv.name)}", "actions": [
            {"name": "read", "energy": float(lv.read_pj)},
            {"name": "write", "energy": float(max(lv.fill_pj, lv.update_pj))},
        ]}
        for lv in hier.levels
    ]
    tables.append({"name": "system.MACC", "actions": [{"name": "mac_random", "energy": float(hier.mac_pj)}]})
    return yaml.safe_dump({"ERT_summary": {"version": 0.3, "table_summary": tables}}, sort_keys=False)
