"""The export bundle: what a user takes home from a run (model, accelerator, mapping, evidence).

``export_bundle(result.json, DIR)`` writes, atomically (a temporary folder next to ``DIR``, renamed at the end):

==========================  ==================================================================================
``model.pt2``               ``torch.export`` program of the subnet (batch 1, the subnet's resolution)
``model.onnx``              the same graph as ONNX (checked with ``onnx.checker``; onnxruntime == PyTorch); with a
                            precision policy, QuantizeLinear/DequantizeLinear at each layer's bits
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

The pieces live by concern: the subnet and its weights in :mod:`naas_train.subnet_io` (checkpoints:
:mod:`naas_train.checkpoints`), the mapping text in :mod:`naas_train.mapping_text`, ``accelerator.yaml`` in
:mod:`hwmodel.timeloop_yaml`, the accuracy in :mod:`naas_train.onnx_eval`, ``metrics.json`` / ``report.md`` in
:mod:`naas_train.bundle_report`, the plots in :mod:`naas_train.plots`; this module writes and reads the bundle.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from hwmodel.accelerator import Accelerator
from hwmodel.atomic import atomic_directory, atomic_write_json
from hwmodel.report import network_report
from hwmodel.timeloop_yaml import timeloop_yaml
from naas_train.bundle_report import bundle_metrics, report_markdown
from naas_train.mapping_text import loop_nest, mapping_csv, onnx_mappings
from naas_train.onnx_eval import onnx_accuracy
from naas_train.plots import plot_breakdown, plot_pareto
from naas_train.result_file import read_result
from naas_train.module import head_outputs
from naas_train.subnet_io import load_subnet, prepare_validation, subnet_resolution
from supernet import build_supernet

__all__ = ["BUNDLE_FILES", "export_bundle", "load_bundle"]

BUNDLE_SCHEMA_VERSION = 1
BUNDLE_FILES = (
    "model.pt2", "model.onnx", "weights.safetensors", "subnet.json", "accelerator.json", "accelerator.yaml",
    "mapping.json", "mapping.csv", "metrics.json", "report.md", "pareto.png", "breakdown.png", "timeloop",
)
#: Largest |onnxruntime - PyTorch| logit difference export accepts.
ONNX_ATOL = 1e-4


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

    ``result_path`` is checked (:func:`naas_train.result_file.read_result`) before any work. Everything is written
    into a temporary folder beside ``out_dir`` that is renamed at the end (:func:`hwmodel.atomic.atomic_directory`),
    so a failure leaves no partial bundle, and a temporary folder a killed export left is removed; an existing
    ``out_dir`` is replaced only with ``overwrite`` and only when it is a bundle (holds ``subnet.json``) or empty.
    """
    result_path, out = Path(result_path), Path(out_dir)
    result = read_result(result_path)  # every field export reads, checked before any work
    with atomic_directory(out, overwrite=overwrite, marker="subnet.json") as tmp:
        _write_bundle(tmp, result, result_path, checkpoint, supernet_checkpoint, datamodule, supernet, val_batches)
    return out


def _write_bundle(tmp: Path, result: dict[str, Any], result_path: Path, checkpoint: Any, supernet_checkpoint: Any,
                  datamodule: Any, supernet: nn.Module | None, val_batches: int | None) -> None:
    """Every bundle file of ``result`` into ``tmp`` (the arguments are :func:`export_bundle`'s)."""
    model, spec, source = load_subnet(result, checkpoint, supernet_checkpoint, supernet, datamodule)
    model = model.float().eval()
    outputs = head_outputs(model)
    if datamodule is not None and hasattr(datamodule, "check_head") and outputs is not None:
        prepare_validation(datamodule)
        datamodule.check_head(outputs, "the exported subnet")
    r = subnet_resolution(result)
    onnx_path, onnx_info = _write_model(tmp, model, spec, result, r)
    report = _write_hardware(tmp, result, onnx_path)

    accuracy = None if datamodule is None else onnx_accuracy(onnx_path, datamodule, r, max_batches=val_batches)
    params = int(sum(p.numel() for p in model.parameters()))
    metrics = {"schema_version": BUNDLE_SCHEMA_VERSION,
               **bundle_metrics(result, report, params, accuracy, source, result_path), "onnx": onnx_info}
    atomic_write_json(tmp / "metrics.json", metrics)

    shown = {**result, "mappings": report["layers"], "metrics": {**result["metrics"], "edp": metrics["edp"]}}
    plot_pareto(shown, tmp / "pareto.png", exported_accuracy=metrics["accuracy"])
    plot_breakdown(shown, tmp / "breakdown.png")
    (tmp / "report.md").write_text(report_markdown(result, metrics, report, result["subnet"]))


def _write_model(tmp: Path, model: nn.Module, spec: dict[str, Any], result: dict[str, Any],
                 r: int) -> tuple[Path, dict[str, Any]]:
    """``subnet.json``, ``weights.safetensors``, ``model.pt2`` and ``model.onnx`` (both checked against
    ``model`` at batch 1, ``r`` x ``r``); returns the ONNX file's path and what it is.

    A mixed-precision result (``precision``) exports its fake-quantized subnet: ``model.pt2`` with integer weights
    and torch.ao's quantize / dequantize ops (equal to the fake-quant model), ``model.onnx`` as QuantizeLinear /
    DequantizeLinear (:func:`naas_train.qdq_export.export_qdq_onnx`; onnxruntime is compared on the example and
    the agreement recorded: sub-8-bit codes may flip on rounding ties, see that module)."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from safetensors.torch import save_file

    example = torch.randn(1, 3, r, r, generator=torch.Generator().manual_seed(0))
    precision = result.get("precision")
    subnet = {"schema_version": BUNDLE_SCHEMA_VERSION, "subnet": result["subnet"], "space": result["space"],
              "supernet": spec, "input": {"name": "input", "shape": [1, 3, r, r], "dtype": "float32",
                                          "layout": "NCHW, the data module's eval transform, resized to the resolution"},
              "output": {"name": "logits", "shape": [1, int(model(example).shape[-1])]},
              **({"precision": precision} if precision else {})}
    (tmp / "subnet.json").write_text(json.dumps(subnet, indent=2) + "\n")

    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(tmp / "weights.safetensors"),
              metadata={"subnet": json.dumps(result["subnet"]), "supernet": json.dumps(spec), "format": "pt",
                        **({"precision": json.dumps(precision)} if precision else {})})

    traced = model
    if precision:
        from naas_train.qdq_export import qdq_module

        traced = qdq_module(model).eval()
    with torch.no_grad():
        program = torch.export.export(traced, (example,))
        torch.export.save(program, str(tmp / "model.pt2"))
        expected = model(example).numpy()
        err = float((program.module()(example) - torch.from_numpy(expected)).abs().max())
    if err > ONNX_ATOL:
        raise ValueError(f"model.pt2 differs from the PyTorch model by {err:.3g} > {ONNX_ATOL}")
    onnx_path = tmp / "model.onnx"
    if precision:
        from naas_train.qdq_export import export_qdq_onnx

        info = export_qdq_onnx(model, example, onnx_path)
        return onnx_path, {"format": "QDQ", "opset": info["opset"], "ort_check": info["ort_check"],
                           "quantize_nodes": info["quantize_nodes"], "dequantize_nodes": info["dequantize_nodes"]}
    torch.onnx.export(program, (example,), str(onnx_path), input_names=["input"], output_names=["logits"],
                      dynamo=True, external_data=False, verbose=False)
    onnx.checker.check_model(str(onnx_path), full_check=True)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: example.numpy()})[0]
    err = float(np.abs(got - expected).max())
    if err > ONNX_ATOL:
        raise ValueError(f"model.onnx differs from the PyTorch model by {err:.3g} > {ONNX_ATOL} (onnxruntime)")
    return onnx_path, {"format": "float", "max_abs_diff": err}


def _write_hardware(tmp: Path, result: dict[str, Any], onnx_path: Path) -> dict[str, Any]:
    """``accelerator.json`` / ``.yaml`` and ``mapping.json`` / ``.csv`` for ``model.onnx``'s layers, checked to
    reproduce the co-search's cycles and energy; returns the network report (``mapping.json``'s content)."""
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
    atomic_write_json(tmp / "mapping.json", report)
    _write_timeloop(tmp / "timeloop", accel, layers, mappings)
    (tmp / "mapping.csv").write_text(mapping_csv(report["layers"]))
    return report


def _write_timeloop(folder: Path, accel: Accelerator, layers: list, mappings: dict) -> None:
    """``timeloop/``: the accelerator as a Timeloop architecture + ERT summary and, per layer, the problem and
    mapping, so ``naas-hw evaluate --timeloop`` (or Timeloop) re-runs the design layer by layer."""
    import re

    from hwmodel.family import family_hierarchy, nest_mapping
    from hwmodel.precision import resolve_precision
    from hwmodel.timeloop_export import architecture_yaml, ert_summary_yaml, mapping_yaml, problem_yaml

    folder.mkdir()
    hier = family_hierarchy(accel)
    (folder / "arch.yaml").write_text(architecture_yaml(hier))
    (folder / "ERT_summary.yaml").write_text(ert_summary_yaml(hier))
    skipped = []
    for layer in layers:
        stem = re.sub(r"[^A-Za-z0-9_-]+", "_", layer.name) or "layer"
        try:
            text = mapping_yaml(hier, nest_mapping(accel, mappings[layer.name]))
        except ValueError as exc:
            skipped.append(f"{layer.name}: {exc}")
            continue
        prec = resolve_precision(layer, accel)
        bits = "" if prec is None else (f"# naas-trainer precision of this layer (Timeloop has no per-operand width): "
                                        f"weights {prec.weights}, inputs {prec.inputs}, outputs (partial sums) "
                                        f"{prec.psum} bits\n")
        (folder / f"{stem}.problem.yaml").write_text(bits + problem_yaml(layer))
        (folder / f"{stem}.map.yaml").write_text(text)
    lines = ["Timeloop inputs of this design (hwmodel.timeloop_export): re-run one layer with",
             "  naas-hw evaluate --timeloop arch.yaml LAYER.problem.yaml --mapping LAYER.map.yaml --ert ERT_summary.yaml --json",
             "The format has one word width per level (partial sums are written at the level's word width) and no",
             "per-word NoC energy, so cycles and energy can differ from mapping.json where those matter; the",
             "per-level reads/fills/updates are the same."]
    widths = [f"{layer.name}: weights {layer.weight_bits}, inputs {layer.input_bits} bits"
              for layer in layers if layer.weight_bits is not None or layer.input_bits is not None]
    if widths:
        lines += ["", "Per-layer precision (mapping.json has it per tensor, partial sums included). Timeloop has one",
                  "word width per level and no per-operand precision (NVlabs/timeloop #213), so arch.yaml is the",
                  "accelerator at its full width: a re-run there costs every layer at word_bits.", *widths]
    if skipped:
        lines += ["", "Layers without a Timeloop mapping (no split form):", *skipped]
    (folder / "README.txt").write_text("\n".join(lines) + "\n")


def load_bundle(path: str | os.PathLike[str]) -> nn.Module:
    """The exported subnet as a plain PyTorch module (eval mode, CPU), rebuilt from ``subnet.json`` and
    ``weights.safetensors``; its outputs equal ``model.pt2``'s and ``model.onnx``'s."""
    from safetensors.torch import load_file

    path = Path(path)
    for name in ("subnet.json", "weights.safetensors"):
        if not (path / name).is_file():
            raise ValueError(f"{path} is not an export bundle (no {name})")
    info = json.loads((path / "subnet.json").read_text())
    precision = info.get("precision")
    net = build_supernet(info["supernet"], device="cpu" if precision else "meta")
    model = net.extract(type(net.space.max_config()).from_dict(info["subnet"]))
    if precision:  # the fake-quantized subnet, its scales as exported
        from naas_train.subnet_io import quantized_structure
        from supernet.quant import freeze

        model = quantized_structure(net, {"subnet": info["subnet"], "precision": precision,
                                          "settings": {"deploy_resolution": info["input"]["shape"][-1]}}, model)
        model.load_state_dict(load_file(str(path / "weights.safetensors")), assign=True)
        return freeze(model).eval()
    model.load_state_dict(load_file(str(path / "weights.safetensors")), assign=True)
    return model.eval()
