"""Workload readers: torch modules, ONNX graphs and torchvision models to :class:`hwmodel.Layer` lists.

The only place in ``hwmodel`` that touches torch or onnx; both are imported inside the functions.

Linear / MatMul inputs of rank >= 3 (``[B, T, ..., F]``) fold the batch into ``N`` and every token dim into ``P``
(``N=B, P=T*...``), so tokens reuse the weights like output pixels do; rank 2 ``[B, F]`` gives ``N=B, P=1``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable

from hwmodel.layer import Layer, merge_layers

if TYPE_CHECKING:
    import onnx
    import torch

#: Largest ``resolution`` and ``batch`` of :func:`model_layers` (the layers must stay within hwmodel's bounds).
MAX_RESOLUTION = 8192
MAX_BATCH = 2**16

#: ONNX ops that do multiply-accumulate work this model cannot express.
UNSUPPORTED_ONNX_OPS: frozenset[str] = frozenset(
    {
        "ConvTranspose",
        "ConvInteger",
        "QLinearConv",
        "MatMulInteger",
        "QLinearMatMul",
        "Einsum",
        "RNN",
        "GRU",
        "LSTM",
        "Attention",
        "MultiHeadAttention",
        "DeformConv",
    }
)


def _linear_layer(in_shape: Sequence[int], in_features: int, out_features: int, name: str) -> Layer:
    """A matmul ``[..., in_features] x [in_features, out_features]`` (token dims folded into P)."""
    lead = list(in_shape[:-1])
    n = lead[0] if lead else 1
    p = math.prod(lead[1:])
    return Layer(K=out_features, C=in_features, N=n, P=p, name=name, op="linear")


def _conv_layer(
    name: str,
    out_shape: Sequence[int],
    weight_shape: Sequence[int],
    groups: int,
    stride: Sequence[int],
    dilation: Sequence[int],
) -> Layer:
    """A conv from its output shape ``[(N,) K, *spatial]`` and weight shape ``[K, C/groups, *kernel]``."""
    kernel = list(weight_shape[2:])
    spatial = list(out_shape[-len(kernel) :])
    n = out_shape[0] if len(out_shape) == len(kernel) + 2 else 1
    if len(kernel) == 1:  # 1-D conv: the length runs along Q/S
        spatial, kernel = [1, *spatial], [1, *kernel]
        stride, dilation = [1, *stride], [1, *dilation]
    return Layer(
        K=weight_shape[0] // groups,
        C=weight_shape[1],
        P=spatial[0],
        Q=spatial[1],
        R=kernel[0],
        S=kernel[1],
        N=n,
        G=groups,
        stride=tuple(stride),
        dilation=tuple(dilation),
        name=name,
        op="conv1d" if len(weight_shape) == 3 else "conv",
    )


def _torch_kinds() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """(modelled module types, module types that do MACs we cannot model)."""
    from torch import nn

    modelled = (nn.Conv1d, nn.Conv2d, nn.Linear)
    unsupported = (
        nn.Conv3d,
        nn.modules.conv._ConvTransposeNd,
        nn.MultiheadAttention,
        nn.RNNBase,
        nn.RNNCellBase,
        nn.Bilinear,
        nn.Transformer,
        nn.TransformerEncoderLayer,
        nn.TransformerDecoderLayer,
    )
    return modelled, unsupported


def from_module(model: torch.nn.Module, input_shape: tuple[int, ...], merge: bool = True,
                device: str = "cpu") -> list[Layer]:
    """Layers of one CPU forward pass of ``model`` on zeros of ``input_shape`` (eval mode, no grad).

    Conv1d/Conv2d (any groups, stride, dilation, padding) and Linear become Layers named by their qualified
    module names; modules without modelled MACs (norms, activations, pooling, ...) are skipped; a module of a
    MAC-doing type we cannot model (ConvTranspose, Conv3d, attention, RNNs, ...) raises ``ValueError``.
    Functional ops called directly in ``forward`` (``F.conv2d``, ``torch.matmul``) are not seen. ``device``:
    where the zeros live (``"meta"`` runs shapes only, for a model whose parameters are on ``meta`` too).
    """
    import torch

    modelled, unsupported = _torch_kinds()
    layers: list[Layer] = []

    def record(name: str, module: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if isinstance(module, torch.nn.Linear):
            layers.append(_linear_layer(inputs[0].shape, module.in_features, module.out_features, name))
        else:
            weight = module.weight.shape
            layers.append(_conv_layer(name, output.shape, weight, module.groups, module.stride, module.dilation))

    def refuse(name: str, module: torch.nn.Module) -> None:
        raise ValueError(f"module {name!r} ({type(module).__name__}) does MACs that hwmodel.Layer cannot model")

    handles = []
    for name, module in model.named_modules():
        if isinstance(module, unsupported):
            handles.append(module.register_forward_pre_hook(lambda m, i, n=name: refuse(n, m)))
        elif isinstance(module, modelled):
            handles.append(module.register_forward_hook(lambda m, i, o, n=name: record(n, m, i, o)))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(input_shape, device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return merge_layers(layers) if merge else layers


def _onnx_dims(value_info: onnx.ValueInfoProto) -> list[int | str] | None:
    """Dims of a ValueInfoProto (symbolic dims as their names), or None when it has no shape."""
    tensor_type = value_info.type.tensor_type
    if not tensor_type.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor_type.shape.dim]


def _load_onnx(path: str | os.PathLike[str]) -> onnx.ModelProto:
    """The model in ``path`` (external weights not loaded); ``ValueError`` naming ``path`` when it cannot be
    read or does not hold an ONNX model (protobuf decodes many byte strings into an empty message)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except FileNotFoundError:
        raise ValueError(f"ONNX file {path} does not exist") from None
    except Exception as exc:
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"{path} is not a readable ONNX model ({type(exc).__name__}: {detail})") from None
    if model.ir_version <= 0 or not model.HasField("graph") or not model.opset_import:
        raise ValueError(f"{path} is not an ONNX model (no IR version, opset or graph: truncated, corrupt or "
                         "another format)")
    return model


def _check_conv(name: str, path: str | os.PathLike[str], data: Sequence[int | str] | None,
                weight: Sequence[int], group: int) -> None:
    """Conv shapes that agree: ``group`` divides the output and input channels, and the weight's input channels
    times ``group`` are the data's channels (when shape inference knows them)."""
    where = f"ONNX node {name!r} (Conv) in {path}"
    if not isinstance(group, int) or group < 1:
        raise ValueError(f"{where}: group must be a positive integer, got {group!r}")
    if weight[0] % group:
        raise ValueError(f"{where}: group={group} does not divide the {weight[0]} output channels")
    channels = data[1] if data is not None and len(data) == len(weight) else None
    if isinstance(channels, int):
        if channels % group:
            raise ValueError(f"{where}: group={group} does not divide the {channels} input channels")
        if weight[1] * group != channels:
            raise ValueError(f"{where}: the weight {list(weight)} takes {weight[1]} x group {group} = "
                             f"{weight[1] * group} input channels, the data has {channels}")


def from_onnx(
    path: str | os.PathLike[str], input_shape: tuple[int, ...] | None = None, merge: bool = True
) -> list[Layer]:
    """Layers of an ONNX graph (see :func:`_from_onnx`); every ``ValueError`` names the file."""
    try:
        return _from_onnx(path, input_shape, merge)
    except ValueError as exc:
        msg = str(exc)
        if str(path) in msg:
            raise
        raise ValueError(f"{path}: {msg}") from None


def _from_onnx(
    path: str | os.PathLike[str], input_shape: tuple[int, ...] | None = None, merge: bool = True
) -> list[Layer]:
    """Layers of an ONNX graph from shapes only (weights may be external or missing).

    Conv (1-D/2-D), Gemm and MatMul with a 2-D right operand are read; output shapes come from ONNX shape
    inference. ``input_shape`` replaces the shape of the first graph input that is not an initializer (needed
    when that input has symbolic dims).

    A file that is not an ONNX model (truncated, corrupt, another format) is a ``ValueError`` naming it; so is a
    node whose shapes contradict each other (a Conv group that does not divide the channels, a weight whose
    input channels times the group differ from the data's channels, Gemm/MatMul inner dims that differ), named.
    """
    from onnx import helper, shape_inference

    model = _load_onnx(path)
    graph = model.graph
    initializers = {t.name: list(t.dims) for t in graph.initializer}
    data_inputs = [v for v in graph.input if v.name not in initializers]
    if input_shape is not None:
        if not data_inputs:
            raise ValueError(f"input_shape given but {path} has no graph input that is not an initializer")
        dims = data_inputs[0].type.tensor_type.shape.dim
        if len(dims) != len(input_shape):
            raise ValueError(f"input_shape has rank {len(input_shape)}; the graph input has rank {len(dims)}")
        for dim, size in zip(dims, input_shape):
            dim.Clear()
            dim.dim_value = int(size)
    symbolic_input = any(not isinstance(d, int) for v in data_inputs for d in _onnx_dims(v) or ["?"])
    try:
        model = shape_inference.infer_shapes(model, data_prop=True)
    except Exception as exc:
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"ONNX shape inference failed on {path}: {detail}") from None
    graph = model.graph
    shapes: dict[str, list[int | str] | None] = {
        v.name: _onnx_dims(v) for v in [*graph.input, *graph.value_info, *graph.output]
    }
    shapes.update(initializers)

    def shape(name: str, tensor: str) -> list[int]:
        dims = shapes.get(tensor)
        if dims is None or not all(isinstance(d, int) and d > 0 for d in dims):
            hint = (
                "pass input_shape=(N, C, H, W) to fix the graph input's dims"
                if symbolic_input
                else "ONNX shape inference cannot follow the ops computing it; export with static shapes"
            )
            raise ValueError(f"cannot infer the shape of {tensor!r} (node {name!r} in {path}): got {dims}; {hint}")
        return dims

    bits_of = _qdq_bits(model)
    layers: list[Layer] = []
    for i, node in enumerate(graph.node):
        name = node.name or f"{node.op_type}_{i}"
        read = len(layers)
        try:
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            if node.op_type in UNSUPPORTED_ONNX_OPS:
                raise ValueError(f"ONNX node {name!r} ({node.op_type}) does MACs that hwmodel.Layer cannot model")
            if node.op_type in ("Conv", "Gemm", "MatMul") and len(node.input) < 2:
                raise ValueError(f"ONNX node {name!r} ({node.op_type}) in {path} has {len(node.input)} input(s), needs 2")
            if node.op_type == "Conv":
                weight = shape(name, node.input[1])
                if len(weight) not in (3, 4):
                    raise ValueError(f"ONNX node {name!r} is a {len(weight) - 2}-D Conv; only 1-D and 2-D are modelled")
                rank = len(weight) - 2
                _check_conv(name, path, shapes.get(node.input[0]), weight, attrs.get("group", 1))
                layers.append(
                    _conv_layer(
                        name,
                        shape(name, node.output[0]),
                        weight,
                        attrs.get("group", 1),
                        attrs.get("strides", [1] * rank),
                        attrs.get("dilations", [1] * rank),
                    )
                )
            elif node.op_type == "Gemm":
                a, b = shape(name, node.input[0]), shape(name, node.input[1])
                if len(a) != 2 or len(b) != 2:
                    raise ValueError(f"ONNX node {name!r} (Gemm) in {path}: operands must be 2-D, got {a} and {b}")
                rows, inner = (a[1], a[0]) if attrs.get("transA", 0) else (a[0], a[1])
                c_in, k_out = (b[1], b[0]) if attrs.get("transB", 0) else (b[0], b[1])
                if inner != c_in:
                    raise ValueError(f"ONNX node {name!r} (Gemm) in {path}: inner dims differ: A {a} "
                                     f"(transA={attrs.get('transA', 0)}) has {inner} columns, B {b} "
                                     f"(transB={attrs.get('transB', 0)}) has {c_in} rows")
                layers.append(_linear_layer([rows, c_in], c_in, k_out, name))
            elif node.op_type == "MatMul":
                a, b = shape(name, node.input[0]), shape(name, node.input[1])
                if len(b) != 2:
                    raise ValueError(f"ONNX node {name!r} (MatMul) has a rank-{len(b)} right operand; only 2-D is modelled")
                if not a or a[-1] != b[0]:
                    raise ValueError(f"ONNX node {name!r} (MatMul) in {path}: inner dims differ: {a} x {b} "
                                     f"({a[-1] if a else 'a scalar'} != {b[0]})")
                layers.append(_linear_layer(a, b[0], b[1], name))
            if len(layers) > read:  # a layer of this node: its operands' bits, where quantized
                layers[-1] = layers[-1].with_bits(*bits_of(node))
        except ValueError as exc:
            msg = str(exc)
            if str(path) in msg:
                raise
            if msg.startswith("ONNX node"):
                raise ValueError(f"{msg} (in {path})") from None
            raise ValueError(f"ONNX node {name!r} ({node.op_type}) in {path}: {msg}") from None
        except (IndexError, KeyError, TypeError, OverflowError) as exc:  # malformed attributes or shapes
            raise ValueError(f"ONNX node {name!r} ({node.op_type}) in {path} is malformed: "
                             f"{type(exc).__name__}: {exc}") from None
    return merge_layers(layers) if merge else layers


#: Bits of the integer element types a QuantizeLinear / DequantizeLinear container may have (ONNX TensorProto).
_CONTAINER_BITS = {"INT4": 4, "UINT4": 4, "INT8": 8, "UINT8": 8, "INT16": 16, "UINT16": 16, "INT32": 32}
#: The metadata key of naas-trainer's QDQ export (:mod:`naas_train.qdq_export`): per layer its bits and the
#: name of its integer weight initializer.
QDQ_LAYERS_KEY = "naas.quant_layers"


def _qdq_bits(model: Any) -> Callable[[Any], tuple[int | None, int | None]]:
    """``node -> (weight_bits, input_bits)`` of a QDQ graph's Conv / Gemm / MatMul (``(None, None)`` when the
    operand is float). A weight read through DequantizeLinear from an integer initializer, and an input read
    through QuantizeLinear -> DequantizeLinear, are quantized: their bits are those the model's
    ``naas.quant_layers`` metadata records for that weight initializer, else the width of the integer container
    (an int8 tensor is read as 8 bits)."""
    import json

    from onnx import TensorProto

    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    elem = {t.name: t.data_type for t in graph.initializer}
    for v in [*graph.input, *graph.value_info, *graph.output]:
        elem.setdefault(v.name, v.type.tensor_type.elem_type)
    recorded: dict[str, tuple[int, int]] = {}
    meta = {p.key: p.value for p in model.metadata_props}
    if QDQ_LAYERS_KEY in meta:
        try:
            for entry in json.loads(meta[QDQ_LAYERS_KEY]).values():
                recorded[entry["weight_initializer"]] = (int(entry["weights"]), int(entry["inputs"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ValueError(f"metadata {QDQ_LAYERS_KEY!r} is malformed (not the naas-trainer QDQ export's layer "
                             "table)") from None

    def container(tensor: str) -> int | None:
        return _CONTAINER_BITS.get(TensorProto.DataType.Name(elem.get(tensor, 0)))

    def dequantized(tensor: str) -> str | None:
        """The integer tensor ``tensor`` is dequantized from (``None``: a float tensor)."""
        node = producer.get(tensor)
        return node.input[0] if node is not None and node.op_type == "DequantizeLinear" else None

    def bits(node: Any) -> tuple[int | None, int | None]:
        q_w, q_x = dequantized(node.input[1]), dequantized(node.input[0])
        if q_w is not None and q_w in recorded:
            w, a = recorded[q_w]
            return w, a if q_x is not None else None
        return (None if q_w is None else container(q_w)), (None if q_x is None else container(q_x))

    return bits


def torchvision_model(name: str) -> torch.nn.Module:
    """A torchvision classification model by name, randomly initialised (no weights downloaded).

    Only classification models: detection builders fetch backbone weights even with ``weights=None``.
    """
    import torchvision

    _check_model_name(name)
    return torchvision.models.get_model(name, weights=None)


def _check_model_name(name: str) -> None:
    import torchvision

    known = torchvision.models.list_models(module=torchvision.models)
    if name not in known:
        shown = repr(name) if len(name) <= 60 else repr(name[:57] + "...")
        raise ValueError(f"unknown torchvision model {shown}; known classification models: {', '.join(sorted(known))}")


def model_layers(name: str, resolution: int = 224, batch: int = 1) -> list[Layer]:
    """Merged layers of torchvision model ``name`` on ``batch`` RGB images of ``resolution`` pixels square.

    Shapes only: the model is built and run on PyTorch's ``meta`` device (no weights initialised, no arithmetic,
    no memory for activations), once with batch 1; the batch then scales every layer's ``N`` (classification
    models treat images independently). A model that cannot run on ``meta`` runs on the CPU instead."""
    import torch

    if not isinstance(resolution, int) or not 1 <= resolution <= MAX_RESOLUTION:
        raise ValueError(f"--resolution must be an integer 1..{MAX_RESOLUTION}, got {resolution!r}")
    if not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
        raise ValueError(f"--batch must be an integer 1..{MAX_BATCH}, got {batch!r}")
    _check_model_name(name)
    try:
        with torch.device("meta"):
            model = torchvision_model(name)
        layers = from_module(model, (1, 3, resolution, resolution), merge=False, device="meta")
    except (NotImplementedError, RuntimeError, TypeError):
        layers = from_module(torchvision_model(name), (1, 3, resolution, resolution), merge=False)
    if batch > 1:
        layers = [replace(layer, N=layer.N * batch) for layer in layers]
    return merge_layers(layers)
