"""The export bundle: what a user takes home from a run (model, accelerator, mapping, evidence).

``export_bundle(result.json, DIR)`` writes, atomically (a temporary folder next to ``DIR``, renamed at the end):

==========================  ==================================================================================
``model.pt2``               ``torch.export`` program of the subnet (batch 1, the subnet's resolution)
``model.onnx``              the same graph as ONNX (checked with ``onnx.checker``; onnxruntime == PyTorch)
``weights.safetensors``     the subnet's ``state_dict`` (metadata: subnet config and supernet spec)
``subnet.json``             subnet config (OFA format), supernet class and arguments, input shape
``accelerator.json``        the searched :class:`hwmodel.Accelerator` (``naas-hw --accelerator`` reads it)
``accelerator.yaml``        the same numbers as a commented Timeloop v4 architecture description
``mapping.json``            per ONNX layer: mapping, loop nest, cycles, energy (``naas-hw --mapping`` reads it)
``mapping.csv``             the same, one row per layer
``metrics.json``            accuracy (onnxruntime on the validation split), MACs, params, cycles, energy, EDP,
                            baseline ratios, provenance
``report.md``               tables and the ``pareto.png`` / ``breakdown.png`` plots
==========================  ==================================================================================

Layer names in ``mapping.json`` are those :func:`hwmodel.workloads.from_onnx` gives ``model.onnx``'s layers, and
every mapping is the co-search's mapping of the layer of the same shape, so
``naas-hw evaluate --accelerator DIR/accelerator.json --mapping DIR/mapping.json --onnx DIR/model.onnx --json``
reproduces ``metrics.json``'s cycles and energy exactly (export checks it against ``result.json`` first).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import uuid
from collections.abc import Mapping as MappingABC
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from hwmodel.accelerator import Accelerator
from hwmodel.layer import DIMS, Layer
from hwmodel.mapping import TEMPORAL_LEVELS, Mapping
from hwmodel.report import network_report, provenance, write_json_atomic

BUNDLE_SCHEMA_VERSION = 1
BUNDLE_FILES = (
    "model.pt2", "model.onnx", "weights.safetensors", "subnet.json", "accelerator.json", "accelerator.yaml",
    "mapping.json", "mapping.csv", "metrics.json", "report.md", "pareto.png", "breakdown.png",
)
#: Largest |onnxruntime - PyTorch| logit difference export accepts.
ONNX_ATOL = 1e-4


# --- supernet and subnet ------------------------------------------------------------------------------
def supernet_spec(net: nn.Module) -> dict[str, Any]:
    """``{"class_path", "init_args"}`` that rebuild ``net``'s architecture (weights not included)."""
    from supernet import OFAMobileNetV3, OFAResNet50

    space = net.space
    if isinstance(net, OFAMobileNetV3):
        args = {"width_mult": net.width_mult, "num_classes": net.num_classes, "ks_list": list(space.ks_list),
                "expand_list": list(space.expand_list), "depth_list": list(space.depth_list),
                "dropout": float(net.classifier.dropout.p)}
    elif isinstance(net, OFAResNet50):
        args = {"num_classes": net.num_classes, "depth_list": list(space.depth_list),
                "expand_list": list(space.expand_list), "width_mult_list": list(space.width_mult_list),
                "dropout": float(net.classifier.dropout.p)}
    else:
        raise ValueError(f"cannot describe supernet {type(net).__name__}: export knows OFAMobileNetV3 and OFAResNet50")
    return {"class_path": f"{type(net).__module__.split('.')[0]}.{type(net).__name__}", "init_args": args}


def build_supernet(spec: MappingABC[str, Any], device: str | torch.device = "cpu") -> nn.Module:
    """The supernet a :func:`supernet_spec` describes (random weights; ``device="meta"`` allocates nothing)."""
    import importlib

    module, _, name = str(spec["class_path"]).rpartition(".")
    if module not in ("supernet", "supernet.mbv3", "supernet.resnet"):
        raise ValueError(f"supernet class {spec['class_path']!r} is not a supernet of this package")
    cls = getattr(importlib.import_module(module), name)
    args = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(spec.get("init_args", {})).items()}
    with torch.device(device):
        return cls(**args)


def infer_supernet_spec(space: MappingABC[str, Any], state: MappingABC[str, torch.Tensor]) -> dict[str, Any]:
    """The spec of a supernet from ``result.json``'s ``space`` and a checkpoint's weight shapes (used when no
    recipe or fine-tuned checkpoint says it): the width multiplier is the listed one whose shapes all match."""
    cls = space.get("class")
    lists = {k: list(v) for k, v in space.items() if k.endswith("_list")}
    candidates: list[dict[str, Any]] = []
    if cls == "OFAMobileNetV3":
        classes = int(state["classifier.linear.weight"].shape[0])
        for w in (1.0, 1.2, 0.75, 0.5, 0.35, 0.25, 1.5, 2.0, 0.125):
            args = {"width_mult": w, "num_classes": classes, **lists}
            candidates.append({"class_path": "supernet.OFAMobileNetV3", "init_args": args})
    elif cls == "OFAResNet50":
        classes = int(state["classifier.linear.linear.weight"].shape[0]) if "classifier.linear.linear.weight" in state \
            else int(next(v for k, v in state.items() if k.startswith("classifier") and k.endswith("weight")).shape[0])
        candidates.append({"class_path": "supernet.OFAResNet50", "init_args": {"num_classes": classes, **lists}})
    else:
        raise ValueError(f"result.json space class {cls!r} is not OFAMobileNetV3 or OFAResNet50")
    want = {k: tuple(v.shape) for k, v in state.items()}
    for spec in candidates:
        net = build_supernet(spec, device="meta")
        if {k: tuple(v.shape) for k, v in net.state_dict().items()} == want:
            return spec
    raise ValueError(f"cannot work out the {cls} arguments from the checkpoint's weight shapes; pass the recipe "
                     "(naas-train export --config RECIPE) or a fine-tuned checkpoint")


def _load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``torch.load`` with a clear error for a missing or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling / zip error: the file is not a usable checkpoint
        raise ValueError(f"cannot read checkpoint {path}: {type(exc).__name__}: {exc}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"checkpoint {path} holds a {type(obj).__name__}, not a state dict")
    return obj


def load_subnet(
    result: MappingABC[str, Any],
    checkpoint: str | os.PathLike[str] | None = None,
    supernet_checkpoint: str | os.PathLike[str] | None = None,
    supernet: nn.Module | None = None,
    datamodule: Any = None,
) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    """The subnet of ``result`` as a plain module in eval mode: ``(model, supernet_spec, source)``.

    From a fine-tuned checkpoint (:class:`naas_train.finetune.FinetuneModule`: the subnet's weights, its config
    and the supernet spec in the hyper-parameters), else extracted from the supernet checkpoint (argument, or
    ``result["supernet_checkpoint"]``) into ``supernet`` (the recipe's) or an architecture inferred from the
    weights (with no checkpoint at all, ``supernet``'s weights as they are, e.g. right after training), with BN
    recalibrated on ``datamodule.bn_dataloader()`` when a data module is given.
    """
    if checkpoint is not None:
        obj = _load_checkpoint(checkpoint)
        hp = obj.get("hyper_parameters", {})
        if "state_dict" not in obj or "supernet_spec" not in hp or "subnet" not in hp:
            raise ValueError(f"checkpoint {checkpoint} is not a fine-tuned subnet (FinetuneModule) checkpoint")
        if json.dumps(hp["subnet"], sort_keys=True) != json.dumps(result["subnet"], sort_keys=True):
            raise ValueError(f"checkpoint {checkpoint} fine-tuned subnet {hp['subnet']}, but the result's subnet is "
                             f"{result['subnet']}: the accelerator and mappings belong to the result's subnet")
        spec = hp["supernet_spec"]
        net = build_supernet(spec, device="meta")
        cfg = type(net.space.max_config()).from_dict(hp["subnet"])
        model = net.extract(cfg)
        state = {k.removeprefix("net."): v for k, v in obj["state_dict"].items() if k.startswith("net.")}
        try:
            model.load_state_dict(state, assign=True)
        except RuntimeError as exc:
            raise ValueError(f"checkpoint {checkpoint} does not fit subnet {hp['subnet']}: {exc}") from None
        return model.eval(), spec, {"kind": "finetuned", "checkpoint": str(checkpoint), "bn_recalibrated": True}

    path = supernet_checkpoint or result.get("supernet_checkpoint")
    if path is None and supernet is None:
        raise ValueError("no checkpoint: give the fine-tuned checkpoint or the supernet checkpoint "
                         "(result.json does not name one)")
    if path is not None:
        obj = _load_checkpoint(path)
        if "state_dict" in obj:  # a SupernetModule checkpoint
            state = {k.removeprefix("net."): v for k, v in obj["state_dict"].items() if k.startswith("net.")}
        else:  # a plain state dict of the supernet
            state = {k: v for k, v in obj.items() if torch.is_tensor(v)}
        if not state:
            raise ValueError(f"checkpoint {path} holds no supernet weights (no 'net.*' keys)")
        if supernet is None:
            supernet = build_supernet(infer_supernet_spec(result["space"], state))
        try:
            supernet.load_state_dict(state)
        except RuntimeError as exc:
            raise ValueError(f"checkpoint {path} does not fit the supernet {supernet_spec(supernet)}: {exc}") from None
    assert supernet is not None
    spec = supernet_spec(supernet)  # complete (defaults such as dropout included)
    cfg = type(supernet.space.max_config()).from_dict(result["subnet"])
    model = supernet.extract(cfg).cpu()
    recalibrated = False
    if datamodule is not None and hasattr(datamodule, "bn_dataloader"):
        from naas_train.data import resize
        from supernet import recalibrate_bn

        _setup(datamodule)
        recalibrate_bn(model, (resize(x, subnet_resolution(result)) for x, _ in datamodule.bn_dataloader()))
        recalibrated = True
    return model.eval(), spec, {"kind": "supernet", "checkpoint": None if path is None else str(path),
                                "bn_recalibrated": recalibrated}


def subnet_resolution(result: MappingABC[str, Any]) -> int:
    """Input size the co-search costed the subnet at (``deploy_resolution`` or the config's ``r``)."""
    deploy = (result.get("settings") or {}).get("deploy_resolution")
    r = result["subnet"]["r"]
    return int(deploy or (r[0] if isinstance(r, list) else r))


def _setup(datamodule: Any) -> None:
    if getattr(datamodule, "val_set", None) is None:
        if hasattr(datamodule, "prepare_data"):
            datamodule.prepare_data()
        datamodule.setup("validate")


# --- mapping text -------------------------------------------------------------------------------------
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
    factors = mapping["temporal"][level]
    return " ".join(f"{d}{factors[d]}" for d in DIMS if d in factors) or "-"


def _spatial(mapping: MappingABC[str, Any]) -> str:
    axes = [" ".join(f"{d}{a[d]}" for d in DIMS if d in a) for a in mapping["spatial"]]
    return " | ".join(a or "-" for a in axes if a) or "-"


def mapping_csv(layers: list[dict[str, Any]]) -> str:
    """``mapping.csv``: one row per (merged) layer with its shape, tiling per level, loop nest and costs."""
    levels = ("mac", "l1", "noc", "l2", "dram")
    head = ["name", "source_layer", "count", *DIMS, "stride", "dilation", "macs", "dram_tiling", "l2_tiling",
            "spatial", "l1_tiling", "loop_nest", "compute_cycles", "cycles", "energy_pj",
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
                    e["compute_cycles"], e["cycles"], e["energy_pj"],
                    *[e["energy_breakdown"].get(lv, 0.0) for lv in levels], e["edp"], e["utilization"],
                    e["lower_bound"]["cycles"], e["lower_bound"]["energy_pj"]])
    return out.getvalue()


def onnx_mappings(onnx_path: str | os.PathLike[str], result: MappingABC[str, Any]) -> tuple[list[Layer], dict[str, Mapping], dict[str, str]]:
    """The layers :func:`hwmodel.workloads.from_onnx` reads from ``onnx_path`` (merged by shape, as
    ``naas-hw`` does), the result's mapping of the same shape keyed by each one's name, and the result's layer
    name of each. Raises ``ValueError`` when the ONNX layers and the result's layers differ."""
    from hwmodel.workloads import from_onnx

    layers = from_onnx(onnx_path)
    by_shape: dict[tuple, dict[str, Any]] = {}
    for e in result["mappings"]:
        dims = {k: v for k, v in e["dims"].items()}
        key = Layer(**dims, count=e["count"]).shape_key
        by_shape[key] = e
    ours = {layer.shape_key: layer.count for layer in layers}
    theirs = {k: e["count"] for k, e in by_shape.items()}
    if ours != theirs:
        diff = sorted(set(ours.items()) ^ set(theirs.items()), key=str)[:3]
        raise ValueError(f"model.onnx's layers differ from the co-search's ({len(ours)} vs {len(theirs)} shapes; "
                         f"e.g. (shape, count) {diff}): the exported network is not the searched subnet")
    mappings = {layer.name: Mapping.from_dict(by_shape[layer.shape_key]["mapping"]) for layer in layers}
    sources = {layer.name: by_shape[layer.shape_key]["name"] for layer in layers}
    return layers, mappings, sources


# --- accelerator.yaml (Timeloop v4) -------------------------------------------------------------------
def timeloop_yaml(accel: Accelerator) -> str:
    """``accelerator.yaml``: the accelerator as a Timeloop v4 architecture (``architecture: version 0.4``,
    ``nodes`` outermost first with ``!Container`` / ``!Component`` tags), commented, with the per-access
    energies our cost model uses. Load with a YAML loader that accepts the tags (see :func:`read_timeloop_yaml`)."""
    table = accel.energy
    unit = table.unit
    l2_words = accel.l2_bytes / accel.word_bytes
    e_l1 = accel.l1_access_energy()
    e_l2 = accel.l2_access_energy()
    axes = ["meshX", "meshY", "meshZ"]
    lines = [
        "# Accelerator found by the NAAS co-search, written as a Timeloop v4 architecture description",
        "# (https://timeloop.csail.mit.edu/v4: architecture -> nodes, outermost first). It mirrors",
        "# accelerator.json, which is what `naas-hw --accelerator` reads; the numbers are the same.",
        "#",
        "# Hierarchy: DRAM -> L2 global buffer (shared) -> PE array (one spatial container per axis)",
        "#            -> L1 scratchpad (per PE) -> MAC.",
        f"# Energies are per access in {unit} from energy table '{accel.energy_table}' ({table.source}).",
        "# `naas_*` attributes and constraints are this cost model's; Timeloop ignores keys it does not know.",
        "architecture:",
        "  version: \"0.4\"",
        "  nodes:",
        "  - !Container",
        "    name: system",
        "    attributes:",
        f"      datawidth: {accel.word_bits}        # bits per weight / input word",
        f"      naas_psum_bits: {accel.psum_bits}   # bits per partial sum (outputs held in L2)",
        f"      naas_name: {json.dumps(accel.name)}",
        "  - !Component",
        "    name: DRAM",
        "    class: DRAM",
        "    attributes:",
        "      type: LPDDR4",
        f"      datawidth: {accel.word_bits}",
        f"      read_bandwidth: {accel.dram_bandwidth}   # words / cycle, reads + writes share it (naas)",
        f"      write_bandwidth: {accel.dram_bandwidth}",
        f"      naas_energy_per_access: {table.dram}   # {unit} per word",
        "  - !Component",
        "    name: L2",
        "    class: SRAM           # the shared global buffer",
        "    attributes:",
        f"      depth: {int(l2_words)}          # words ({accel.l2_bytes} bytes of {accel.word_bits}-bit words)",
        f"      width: {accel.word_bits}",
        f"      datawidth: {accel.word_bits}",
        f"      naas_size_bytes: {accel.l2_bytes}",
        f"      naas_double_buffered: {str(accel.double_buffer[1]).lower()}   # holds two tiles, refills overlap compute",
        f"      read_bandwidth: {accel.noc_bandwidth}    # words / cycle to and from the PE array (the NoC)",
        f"      write_bandwidth: {accel.noc_bandwidth}",
        f"      naas_energy_per_access: {e_l2:.6g}   # {unit}",
        f"      naas_noc_energy_per_word: {table.noc}   # {unit} per word delivered over the array's network",
    ]
    for a, (size, dims) in enumerate(zip(accel.array, accel.connectivity)):
        lines += [
            "  - !Container",
            f"    name: PE_axis{a}",
            f"    spatial: {{{axes[min(a, 1)]}: {size}}}   # array axis {a}: {size} PEs",
            "    constraints:",
            "      spatial:",
            f"        naas_unrollable_dims: [{', '.join(dims)}]   # dims this axis may unroll (jointly, product <= {size})",
        ]
    l1_attrs = [f"      depth: {accel.l1_words}          # entries per PE (a word or a partial sum)"]
    if accel.l1_partition is not None:
        l1_attrs.append(f"      naas_partition: {{weights: {accel.l1_partition[0]}, inputs: {accel.l1_partition[1]}, "
                        f"outputs: {accel.l1_partition[2]}}}")
    lines += [
        "  - !Component",
        "    name: L1",
        "    class: regfile        # per-PE scratchpad",
        "    attributes:",
        *l1_attrs,
        f"      width: {accel.word_bits}",
        f"      datawidth: {accel.word_bits}",
        f"      naas_double_buffered: {str(accel.double_buffer[0]).lower()}",
        f"      naas_energy_per_access: {{weights: {e_l1[0]:.6g}, inputs: {e_l1[1]:.6g}, outputs: {e_l1[2]:.6g}}}   # {unit}",
        "  - !Component",
        "    name: MAC",
        "    class: intmac",
        "    attributes:",
        f"      multiplier_width: {accel.word_bits}",
        f"      adder_width: {accel.psum_bits}",
        f"      naas_energy_per_compute: {table.mac}   # {unit} per multiply-accumulate",
        f"      naas_systolic: {str(accel.systolic).lower()}   # each spatial fold pays pipeline fill and drain",
    ]
    return "\n".join(lines) + "\n"


def read_timeloop_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse ``accelerator.yaml`` (Timeloop's ``!Container`` / ``!Component`` tags become a ``"!"`` key)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
        return {"!": suffix, **loader.construct_mapping(node, deep=True)}

    Loader.add_multi_constructor("!", tagged)
    return yaml.load(Path(path).read_text(), Loader=Loader)  # noqa: S506 - SafeLoader subclass


# --- accuracy -----------------------------------------------------------------------------------------
def onnx_accuracy(onnx_path: str | os.PathLike[str], datamodule: Any, resolution: int,
                  max_batches: int | None = None) -> dict[str, Any]:
    """Top-1 of ``model.onnx`` under onnxruntime (CPU) on the whole validation split (``full_val_dataloader()``
    where the data module has one, else ``val_dataloader()`` outside any trainer), every image resized to
    ``resolution`` like the co-search did; the graph takes one image at a time."""
    import numpy as np
    import onnxruntime as ort

    from naas_train.data import resize

    _setup(datamodule)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    correct = total = 0
    loader = getattr(datamodule, "full_val_dataloader", None) or datamodule.val_dataloader
    for i, (x, y) in enumerate(loader()):
        if max_batches is not None and i >= max_batches:
            break
        x = resize(x.float().cpu(), resolution).numpy()
        for image, target in zip(x, y.tolist()):
            logits = session.run(None, {name: image[None]})[0]
            correct += int(np.argmax(logits[0]) == target)
            total += 1
    if total == 0:
        raise ValueError("the validation split is empty")
    return {"top1": correct / total, "correct": correct, "images": total, "runtime": "onnxruntime",
            "split": "validation", "resolution": resolution}


# --- the bundle ---------------------------------------------------------------------------------------
def _ratio(baseline: float, ours: float) -> float | None:
    return baseline / ours if ours else None


def _metrics(result: MappingABC[str, Any], report: dict[str, Any], params: int, accuracy: dict[str, Any] | None,
             source: dict[str, Any], result_path: Path) -> dict[str, Any]:
    t = report["total"]
    baselines = {}
    for name, b in (result.get("baselines") or {}).items():
        baselines[name] = {"accuracy": b.get("accuracy"), "cycles": b["cycles"], "energy_pj": b["energy_pj"],
                           "edp": b["edp"], "accelerator": b.get("accelerator", {}).get("name"),
                           "subnet": b.get("config"),
                           # > 1: the exported design is better by this factor
                           "cycles_ratio": _ratio(b["cycles"], t["cycles"]),
                           "energy_ratio": _ratio(b["energy_pj"], t["energy_pj"]),
                           "edp_ratio": _ratio(b["edp"], t["edp"])}
    accel = Accelerator.from_dict(result["accelerator"])
    return {
        "schema_version": BUNDLE_SCHEMA_VERSION,
        "accuracy": None if accuracy is None else accuracy["top1"],
        "accuracy_detail": accuracy,
        "search_accuracy": result.get("accuracy"),
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
        "provenance": {
            "export": provenance(accel, (result.get("provenance") or {}).get("seed")),
            "search": result.get("provenance"),
            "result": str(result_path),
            "weights": source,
            "supernet_checkpoint": result.get("supernet_checkpoint"),
        },
    }


def _report_md(result: MappingABC[str, Any], metrics: dict[str, Any], report: dict[str, Any], subnet: dict[str, Any]) -> str:
    from hwmodel.report import _si

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
    lines += ["", "Ratios are baseline / exported design (> 1: the exported design is better).", "",
              "## Accelerator", "",
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


def export_bundle(
    result_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    checkpoint: str | os.PathLike[str] | None = None,
    supernet_checkpoint: str | os.PathLike[str] | None = None,
    datamodule: Any = None,
    supernet: nn.Module | None = None,
    overwrite: bool = False,
    val_batches: int | None = None,
) -> Path:
    """Write the bundle of ``result_path`` (a co-search ``result.json``) to ``out_dir``; returns its path.

    Args:
        result_path: ``<run>/cosearch/result.json``.
        out_dir: the bundle folder (created; must not exist unless ``overwrite``).
        checkpoint: fine-tuned subnet checkpoint (``naas-train finetune``); default: extract from the supernet.
        supernet_checkpoint: supernet checkpoint (default: the one ``result.json`` names; with neither, the
            weights of ``supernet`` as they are).
        datamodule: a :class:`naas_train.data.SupernetData`: BN recalibration of an extracted subnet and the
            accuracy of ``model.onnx`` on its validation split (without one, accuracy is ``None``).
        supernet: the recipe's supernet module (architecture); default: inferred from the checkpoint.
        overwrite: replace an existing ``out_dir``.
        val_batches: score only this many validation batches (tests).

    Everything is written into a temporary folder beside ``out_dir`` that is renamed at the end, so a failure
    leaves no partial bundle.
    """
    result_path, out = Path(result_path), Path(out_dir)
    try:
        result = json.loads(result_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read co-search result {result_path}: {exc}") from None
    missing = {"subnet", "accelerator", "mappings", "metrics", "space"} - set(result)
    if missing:
        raise ValueError(f"{result_path} is not a co-search result.json (missing {sorted(missing)})")
    if out.exists() and not overwrite:
        raise FileExistsError(f"bundle folder {out} exists; remove it or pass overwrite")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        _write_bundle(tmp, result, result_path, checkpoint, supernet_checkpoint, datamodule, supernet, val_batches)
        if out.exists():
            old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _write_bundle(tmp: Path, result: dict[str, Any], result_path: Path, checkpoint: Any, supernet_checkpoint: Any,
                  datamodule: Any, supernet: nn.Module | None, val_batches: int | None) -> None:
    import numpy as np
    import onnx
    import onnxruntime as ort
    from safetensors.torch import save_file

    from naas_train.cosearch_callback import plot_breakdown, plot_pareto

    model, spec, source = load_subnet(result, checkpoint, supernet_checkpoint, supernet, datamodule)
    model = model.float().eval()
    r = subnet_resolution(result)
    example = torch.randn(1, 3, r, r, generator=torch.Generator().manual_seed(0))
    subnet = {"schema_version": BUNDLE_SCHEMA_VERSION, "subnet": result["subnet"], "space": result["space"],
              "supernet": spec, "input": {"name": "input", "shape": [1, 3, r, r], "dtype": "float32",
                                          "layout": "NCHW, the data module's eval transform, resized to the resolution"},
              "output": {"name": "logits", "shape": [1, int(model(example).shape[-1])]}}
    (tmp / "subnet.json").write_text(json.dumps(subnet, indent=2) + "\n")

    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(tmp / "weights.safetensors"),
              metadata={"subnet": json.dumps(result["subnet"]), "supernet": json.dumps(spec), "format": "pt"})

    with torch.no_grad():
        program = torch.export.export(model, (example,))
        torch.export.save(program, str(tmp / "model.pt2"))
        expected = model(example).numpy()
        err = float((program.module()(example) - torch.from_numpy(expected)).abs().max())
    if err > ONNX_ATOL:
        raise ValueError(f"model.pt2 differs from the PyTorch model by {err:.3g} > {ONNX_ATOL}")
    onnx_path = tmp / "model.onnx"
    torch.onnx.export(program, (example,), str(onnx_path), input_names=["input"], output_names=["logits"],
                      dynamo=True, external_data=False, verbose=False)
    onnx.checker.check_model(str(onnx_path), full_check=True)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: example.numpy()})[0]
    err = float(np.abs(got - expected).max())
    if err > ONNX_ATOL:
        raise ValueError(f"model.onnx differs from the PyTorch model by {err:.3g} > {ONNX_ATOL} (onnxruntime)")

    accel = Accelerator.from_dict(result["accelerator"])
    accel.save(tmp / "accelerator.json")
    (tmp / "accelerator.yaml").write_text(timeloop_yaml(accel))

    layers, mappings, sources = onnx_mappings(onnx_path, result)
    report = network_report(layers, accel, mappings, seed=(result.get("provenance") or {}).get("seed"))
    want = result["metrics"]
    for key in ("cycles", "energy_pj"):
        if not math.isclose(report["total"][key], want[key], rel_tol=1e-9):
            raise ValueError(f"model.onnx on the accelerator gives {key}={report['total'][key]!r}, the co-search "
                             f"{want[key]!r}: the result does not match this cost model")
    for e in report["layers"]:
        e["source_layer"] = sources[e["name"]]
        e["loop_nest"] = loop_nest(e["mapping"])
    write_json_atomic(tmp / "mapping.json", report)
    (tmp / "mapping.csv").write_text(mapping_csv(report["layers"]))

    accuracy = None if datamodule is None else onnx_accuracy(onnx_path, datamodule, r, max_batches=val_batches)
    params = int(sum(p.numel() for p in model.parameters()))
    metrics = _metrics(result, report, params, accuracy, source, result_path)
    write_json_atomic(tmp / "metrics.json", metrics)

    shown = {**result, "mappings": report["layers"], "metrics": {**result["metrics"], "edp": metrics["edp"]}}
    plot_pareto(shown, tmp / "pareto.png", exported_accuracy=metrics["accuracy"])
    plot_breakdown(shown, tmp / "breakdown.png")
    (tmp / "report.md").write_text(_report_md(result, metrics, report, result["subnet"]))


def load_bundle(path: str | os.PathLike[str]) -> nn.Module:
    """The exported subnet as a plain PyTorch module (eval mode, CPU), rebuilt from ``subnet.json`` and
    ``weights.safetensors``; its outputs equal ``model.pt2``'s and ``model.onnx``'s."""
    from safetensors.torch import load_file

    path = Path(path)
    for name in ("subnet.json", "weights.safetensors"):
        if not (path / name).is_file():
            raise ValueError(f"{path} is not an export bundle (no {name})")
    info = json.loads((path / "subnet.json").read_text())
    net = build_supernet(info["supernet"], device="meta")
    model = net.extract(type(net.space.max_config()).from_dict(info["subnet"]))
    model.load_state_dict(load_file(str(path / "weights.safetensors")), assign=True)
    return model.eval()
