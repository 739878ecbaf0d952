"""QDQ ONNX export of a mixed-precision subnet (:func:`supernet.quant.quantize_subnet`).

:func:`export_qdq_onnx` writes an ONNX model in which every quantized conv/linear reads

* its **input** through ``[Clip] -> QuantizeLinear -> DequantizeLinear`` (per tensor, unsigned, the layer's scale
  and zero point), and
* its **weight** as an integer initializer (already quantized, ``q = clamp(round(w / s_c))``) through
  ``DequantizeLinear`` with per-output-channel scales (``axis=0``, zero point 0);

the bias stays a float initializer. The bits of every layer are in the model's ``metadata_props``:
``naas.precision`` = JSON ``{layer_name: {"weights": b, "inputs": b}}`` (and ``naas.quant_layers`` with the
integer weight initializer, input scale and zero point of each layer).

Below 8 bits: the graph uses **int8 / uint8 containers** (int16 / uint16 above 8 bits, opset 21). ONNX
``QuantizeLinear`` saturates at the *container's* range, so an input with ``b < 8`` (or ``8 < b < 16``) bits gets a
``Clip`` to ``[(qmin - z) s, (qmax - z) s]`` before it, which makes ``QuantizeLinear`` produce exactly the b-bit
codes; weights are stored already quantized, so their codes are within ``+-(2^(b-1) - 1)`` by construction.
onnxruntime therefore *simulates* sub-8-bit precision: it executes 8-bit (or 16-bit) QuantizeLinear /
DequantizeLinear natively, and the conv either in float on the dequantized tensors or, where its graph optimizer
fuses a QDQ pattern, with 8-bit integer kernels (QLinearConv / MatMulInteger) on the same codes; nothing runs in
4-bit arithmetic. ONNX's int4/uint4 types (opset 21) are not used: onnxruntime implements them for
weight-only (blockwise MatMulNBits / DequantizeLinear) paths, not for activation QuantizeLinear feeding Conv on
CPU, and one container type for every width keeps the graph uniform.

The graph is produced the way :mod:`naas_train.export` produces ``model.onnx`` (``torch.export`` +
``torch.onnx.export(..., dynamo=True, external_data=False)``): the fake-quant layers are swapped for modules that
call torch.ao's ``quantized_decomposed`` quantize/dequantize ops, which the exporter translates to
QuantizeLinear / DequantizeLinear. The file is written atomically (temporary file + ``os.replace``).

ORT vs PyTorch: weights dequantize bit-identically and, with onnxruntime's graph optimizations off, every layer
computes the fake-quant function (checked teacher-forced per layer in ``tests/test_quant.py``: identical input
codes, conv outputs to float rounding). End to end it is not bit-exact: an activation code flips by one step where
the value lies within float rounding of a half-way point (PyTorch's kernel multiplies by ``1 / s``, ONNX divides by
``s``; the two libraries' convolutions round differently), and one flipped 4-bit code is a large perturbation that
later layers can amplify. With onnxruntime's *default* optimizations some fused layers additionally deviate by up to
~1e-3 relative (input codes still identical), which a random-init network amplifies a lot (measured on the
min-config MobileNetV3, mixed 4/6/8 bits: ~99% of samples within 1e-4 of PyTorch with optimizations off, top-1
agreement well below 90% with them on). Judge a deployed QDQ model's accuracy with onnxruntime itself.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.ao.quantization.fx._decomposed  # registers torch.ops.quantized_decomposed
import torch.nn as nn
import torch.nn.functional as F

from supernet.quant import QuantLayer, input_qrange, precision_of, weight_qrange

__all__ = ["export_qdq_onnx", "qdq_module", "QDQ_OPSET", "PRECISION_KEY", "LAYERS_KEY", "container_dtype"]

#: Opset of the QDQ graph (21: QuantizeLinear / DequantizeLinear on int16 / uint16 containers).
QDQ_OPSET = 21
PRECISION_KEY, LAYERS_KEY = "naas.precision", "naas.quant_layers"


def container_dtype(bits: int, signed: bool) -> torch.dtype:
    """Storage type of ``bits``-bit codes: int8/uint8 up to 8 bits, int16/uint16 up to 16."""
    if bits <= 8:
        return torch.int8 if signed else torch.uint8
    return torch.int16 if signed else torch.uint16


class _QDQLayer(nn.Module):
    """Export form of a :class:`QuantLayer`: frozen scales, integer weight buffer, quantize/dequantize ops."""

    def __init__(self, ql: QuantLayer):
        super().__init__()
        m = ql.module
        self.layer_name, self.weight_bits, self.input_bits = ql.layer_name, ql.weight_bits, ql.input_bits
        self.is_linear = isinstance(m, nn.Linear)
        if not self.is_linear:
            self.stride, self.padding, self.dilation, self.groups = m.stride, m.padding, m.dilation, m.groups
        # weights: the integer codes of exactly the tensor the fake-quant forward uses
        wfq = ql.weight_fake_quant
        self.w_lo, self.w_hi = weight_qrange(self.weight_bits)
        self.w_dtype = container_dtype(self.weight_bits, signed=True)
        scale = wfq.scale.detach().float().clone()
        shape = (-1,) + (1,) * (m.weight.dim() - 1)
        with torch.no_grad():
            deq = torch.fake_quantize_per_channel_affine(m.weight.detach().float(), scale,
                                                         wfq.zero_point.int(), 0, self.w_lo, self.w_hi)
            codes = torch.round(deq / scale.view(shape)).clamp(self.w_lo, self.w_hi)
        self.register_buffer("qweight", codes.to(self.w_dtype))
        self.register_buffer("w_scale", scale)
        self.register_buffer("w_zero_point", torch.zeros_like(scale, dtype=torch.int32))
        self.bias = None if m.bias is None else nn.Parameter(m.bias.detach().float().clone(), requires_grad=False)
        # inputs: per-tensor affine constants
        afq = ql.input_fake_quant
        self.x_scale, self.x_zero_point = float(afq.scale.reshape(-1)[0]), int(afq.zero_point.reshape(-1)[0])
        self.x_lo, self.x_hi = input_qrange(self.input_bits)
        self.x_dtype = container_dtype(self.input_bits, signed=False)
        info = torch.iinfo(self.x_dtype)
        self.clip = (self.x_lo, self.x_hi) != (info.min, info.max)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qd = torch.ops.quantized_decomposed
        s, z = self.x_scale, self.x_zero_point
        if self.clip:  # QuantizeLinear saturates at the container's range, not the b-bit one
            x = torch.clamp(x, (self.x_lo - z) * s, (self.x_hi - z) * s)
        q = qd.quantize_per_tensor(x, s, z, self.x_lo, self.x_hi, self.x_dtype)
        x = qd.dequantize_per_tensor(q, s, z, self.x_lo, self.x_hi, self.x_dtype)
        w = qd.dequantize_per_channel(self.qweight, self.w_scale, self.w_zero_point, 0, self.w_lo, self.w_hi,
                                      self.w_dtype)
        if self.is_linear:
            return F.linear(x, w, self.bias)
        return F.conv2d(x, w, self.bias, self.stride, self.padding, self.dilation, self.groups)


def qdq_module(qmodel: nn.Module) -> nn.Module:
    """A CPU float32 eval-mode copy of ``qmodel`` whose :class:`QuantLayer` are replaced by their export form: integer
    weight buffers (``qweight``, ``w_scale``) and torch.ao ``quantized_decomposed`` quantize / dequantize ops with the
    frozen scales. Its outputs equal ``qmodel``'s (eval mode); ``torch.export`` keeps the ops (the QDQ graph)."""
    model = copy.deepcopy(qmodel).float().cpu().eval()
    found = 0
    for path, mod in list(model.named_modules()):
        if isinstance(mod, QuantLayer):
            parent, _, leaf = path.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, leaf, _QDQLayer(mod))
            found += 1
    if not found:
        raise ValueError("export_qdq_onnx: the model has no quantized layers (use supernet.quant.quantize_subnet)")
    return model


def export_qdq_onnx(qmodel: nn.Module, example_input: torch.Tensor, path: str | os.PathLike[str],
                    check: bool = True) -> dict[str, Any]:
    """Write ``qmodel`` (calibrated, see :func:`supernet.quant.calibrate`) as a QDQ ONNX model to ``path``.

    Args:
        qmodel: a model from :func:`supernet.quant.quantize_subnet` (its current scales are exported).
        example_input: a batch the export traces with (its shape becomes the model's input shape).
        path: the ``.onnx`` file (written atomically).
        check: run onnxruntime (graph optimizations off) on ``example_input`` and record its agreement with the
            PyTorch fake-quant output (``ort_check``: ``max_abs_diff``, ``samples_within_1e-4``,
            ``top1_agreement``); informational, nothing is raised (see the module docstring on rounding flips).
            ``onnx.checker`` (full check) always runs.

    Returns ``{"path", "opset", "precision": {layer: {"weights": b, "inputs": b}}, "layers": {layer: {...,
    "weight_initializer", "input_scale", "input_zero_point", "container"}}, "quantize_nodes", "dequantize_nodes"
    [, "ort_check"]}``; ``precision`` is also stored as ``metadata_props["naas.precision"]``.
    """
    import onnx

    path = Path(path)
    precision = precision_of(qmodel)
    export = qdq_module(qmodel)
    example = example_input.detach().float().cpu()
    with torch.no_grad():
        program = torch.export.export(export, (example,))
    onnx_program = torch.onnx.export(program, (example,), input_names=["input"], output_names=["logits"],
                                     dynamo=True, external_data=False, verbose=False, opset_version=QDQ_OPSET,
                                     optimize=False)
    onnx_program.optimize()  # constant folding etc. keeps integer initializers: DQ is never folded (below)
    model = onnx_program.model_proto

    layers = _layer_table(export, model)
    counts = {op: sum(n.op_type == op for n in model.graph.node) for op in ("QuantizeLinear", "DequantizeLinear")}
    meta = {PRECISION_KEY: json.dumps(precision, sort_keys=False), LAYERS_KEY: json.dumps(layers),
            "naas.quant_scheme": "weights: per-output-channel symmetric signed narrow range, zero point 0; "
                                 "inputs: per-tensor affine unsigned [0, 2^b-1]; containers int8/uint8 (<= 8 bits) "
                                 "or int16/uint16, Clip before QuantizeLinear for the b-bit range"}
    del model.metadata_props[:]
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(model, full_check=True)

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        onnx.save_model(model, tmp)
        result: dict[str, Any] = {"path": str(path), "opset": QDQ_OPSET, "precision": precision, "layers": layers,
                                  "quantize_nodes": counts["QuantizeLinear"],
                                  "dequantize_nodes": counts["DequantizeLinear"]}
        if check:
            result["ort_check"] = _ort_check(tmp, qmodel, example)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return result


def _layer_table(export: nn.Module, model: Any) -> dict[str, dict[str, Any]]:
    """Per layer: bits, its integer weight initializer (checked to be in the graph, read by a DequantizeLinear,
    integer-typed and within the b-bit range) and input quantization constants."""
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    dq_inputs = {n.input[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    table = {}
    for path, mod in export.named_modules():
        if not isinstance(mod, _QDQLayer):
            continue
        name = f"{path}.qweight" if path else "qweight"
        if name not in inits or name not in dq_inputs:
            raise ValueError(f"QDQ export: the weight of layer {mod.layer_name!r} ({name}) is not an integer "
                             f"initializer read by DequantizeLinear in the exported graph")
        codes = numpy_helper.to_array(inits[name])
        if codes.dtype.kind != "i" or codes.min() < mod.w_lo or codes.max() > mod.w_hi:
            raise ValueError(f"QDQ export: weight codes of {mod.layer_name!r} are not {mod.weight_bits}-bit integers")
        table[mod.layer_name] = {
            "weights": mod.weight_bits, "inputs": mod.input_bits, "weight_initializer": name,
            "weight_container": str(mod.w_dtype).removeprefix("torch."),
            "input_container": str(mod.x_dtype).removeprefix("torch."),
            "input_scale": mod.x_scale, "input_zero_point": mod.x_zero_point, "input_clip": mod.clip,
        }
    return table


def _ort_check(onnx_path: str, qmodel: nn.Module, example: torch.Tensor) -> dict[str, Any]:
    """onnxruntime (graph optimizations off: the graph as written) against the PyTorch fake-quant model."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: example.numpy()})[0]
    training = qmodel.training
    try:
        with torch.no_grad():
            want = qmodel.eval()(example.to(next(qmodel.parameters()).device)).float().cpu().numpy()
    finally:
        qmodel.train(training)
    diff = np.abs(got - want).reshape(len(got), -1).max(1)
    return {"max_abs_diff": float(diff.max()), "samples_within_1e-4": float((diff <= 1e-4).mean()),
            "top1_agreement": float((got.reshape(len(got), -1).argmax(1) == want.reshape(len(want), -1).argmax(1)).mean()),
            "graph_optimization": "disabled"}
