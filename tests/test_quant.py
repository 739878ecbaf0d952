"""Mixed-precision subnets: BN folding, fake quant against an integer reference, policy errors, QAT, QDQ ONNX."""

from __future__ import annotations

import json
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch_helpers import one_thread, restore_determinism  # noqa: F401  (autouse fixtures)

from hwmodel import Layer
from supernet import OFAMobileNetV3, recalibrate_bn
from supernet.quant import (
    calibrate,
    fold_bn,
    freeze,
    input_qrange,
    quant_layers,
    quantize_subnet,
    quantized_accuracy,
    unfreeze,
    weight_qrange,
)

BITS_CYCLE = (4, 6, 8)


@torch.no_grad()
def _random_bn_(model: nn.Module, seed: int) -> nn.Module:
    """BN running stats and affine far from identity, so folding mistakes show."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) * 2 + 0.25)
            m.weight.copy_(torch.randn(n, generator=g) * 0.5 + 1)
            m.bias.copy_(torch.randn(n, generator=g) * 0.5)
    return model


def _mbv3(seed: int = 0):
    """The min-config digits-sized MobileNetV3 (width 0.5, 10 classes, 16x16) with random BN affine and BN stats
    recalibrated on random inputs, so activations stay O(1) and the logits depend on the input."""
    torch.manual_seed(seed)
    net = OFAMobileNetV3(width_mult=0.5, num_classes=10)
    cfg = net.space.min_config(16)
    sub = net.extract(cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in sub.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(0.2 * torch.randn(m.num_features, generator=g))
    recalibrate_bn(sub, [torch.randn(32, 3, 16, 16, generator=g) for _ in range(2)])
    return sub.eval(), net.layer_shapes(cfg)


def _mixed_policy(layers):
    return {layer.name: (BITS_CYCLE[i % 3], BITS_CYCLE[(i + 1) % 3]) for i, layer in enumerate(layers)}


# --- BN folding ---------------------------------------------------------------------------------------------------
def test_fold_bn_equals_unfolded_model():
    sub, _ = _mbv3(1)
    folded = fold_bn(sub)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in sub.modules())  # the original is untouched
    x = torch.randn(16, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want, got = sub(x), folded(x)
    assert want.std(0).mean() > 1e-2  # the output depends on the input
    rel = (got - want).abs().max() / want.abs().max()
    assert rel <= 1e-5, rel
    # folding changed the weights (BN stats are not the identity)
    convs = [m for m in folded.modules() if isinstance(m, nn.Conv2d)]
    orig = [m for m in sub.modules() if isinstance(m, nn.Conv2d)]
    assert not torch.allclose(convs[0].weight, orig[0].weight)
    assert convs[0].bias is not None and orig[0].bias is None


def test_fold_bn_keeps_train_flag_and_needs_sequential_adjacency():
    conv, bn = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)
    _random_bn_(nn.Sequential(bn), 3)
    seq = nn.Sequential(OrderedDict(conv=conv, act=nn.ReLU(), bn=bn))  # BN does not follow the conv: kept
    out = fold_bn(seq.train())
    assert out.training and isinstance(out.bn, nn.BatchNorm2d)


# --- fake quant vs an independent integer reference -----------------------------------------------------------
def _integer_reference_case(bits: int, depthwise: bool):
    g = torch.Generator().manual_seed(100 + bits + 7 * depthwise)
    cin, cout, groups = (8, 8, 8) if depthwise else (4, 6, 1)
    conv = nn.Conv2d(cin, cout, 3, stride=1, padding=1, groups=groups, bias=True)
    _, wmax = weight_qrange(bits)
    # weights: codes k + offsets |u| <= 0.35 (no rounding ties), one element per channel exactly at +-wmax steps
    step = torch.rand(cout, generator=g) * 0.05 + 0.01
    k = torch.randint(-wmax + 1, wmax, conv.weight.shape, generator=g).float()
    u = (torch.rand(conv.weight.shape, generator=g) - 0.5) * 0.7
    w = (k + u) * step.view(-1, 1, 1, 1)
    w.view(cout, -1)[:, 0] = wmax * step * torch.where(torch.rand(cout, generator=g) < 0.5, -1.0, 1.0)
    with torch.no_grad():
        conv.weight.copy_(w)
        conv.bias.copy_(torch.randn(cout, generator=g) * 0.1)
    layer = Layer(K=1 if depthwise else cout, C=1 if depthwise else cin, G=groups, R=3, S=3, P=6, Q=6,
                  name="conv", op="depthwise" if depthwise else "conv")
    q = quantize_subnet(nn.Sequential(OrderedDict(conv=conv)), [layer], {"conv": (bits, bits)})
    calibrate(q, [torch.randn(2, cin, 6, 6, generator=g) * 1.5 + 0.3])
    ql = q.conv
    return q, ql, g, cin


@pytest.mark.parametrize("bits,depthwise", [(4, False), (6, False), (8, False), (4, True), (8, True)])
def test_fake_quant_conv_equals_integer_reference(bits, depthwise):
    q, ql, g, cin = _integer_reference_case(bits, depthwise)
    s_w = ql.weight_fake_quant.scale.double()
    s_x = float(ql.input_fake_quant.scale)
    z = int(ql.input_fake_quant.zero_point)
    lo, hi = input_qrange(bits)
    wlo, whi = weight_qrange(bits)
    assert int(ql.weight_fake_quant.zero_point.abs().max()) == 0 and 0 < z < hi  # signed input: interior zero point
    # inputs: codes + offsets away from ties, plus values beyond the range on both sides (must saturate)
    codes = torch.randint(lo, hi + 1, (3, cin, 6, 6), generator=g).double()
    u = (torch.rand(codes.shape, generator=g, dtype=torch.float64) - 0.5) * 0.7
    x = ((codes - z + u) * s_x)
    x[0, 0, 0, :3] = torch.tensor([(hi - z + 3.2) * s_x, (lo - z - 5.3) * s_x, (hi - z + 40) * s_x])
    x = x.float()

    # independent reference: integer codes, integer (float64-exact) conv, dequantize
    w = ql.module.weight.detach().double()
    q_w = torch.clamp(torch.round(w / s_w.view(-1, 1, 1, 1)), wlo, whi)
    q_x = torch.clamp(torch.round(x.double() / s_x) + z, lo, hi)
    assert q_w.abs().amax((1, 2, 3)).eq(whi).all()  # the full b-bit range is used
    acc = torch.nn.functional.conv2d(q_x - z, q_w, None, 1, 1, 1, ql.module.groups)
    assert acc.eq(acc.round()).all()  # exact integers
    bias = ql.module.bias.detach().double().view(1, -1, 1, 1)
    y_ref = acc * (s_x * s_w.view(1, -1, 1, 1)) + bias

    with torch.no_grad():
        y = q(x).double()
        # quantizer outputs are bit-exact: code * scale in float32
        assert torch.equal(ql.quantized_weight(), (q_w * s_w.view(-1, 1, 1, 1)).float())
        assert torch.equal(ql.input_fake_quant(x), ((q_x - z) * s_x).float())
    # conv output: the integer accumulator recovered from the float32 output is exactly the reference one
    recovered = (y - bias) / (s_x * s_w.view(1, -1, 1, 1))
    assert torch.equal(recovered.round(), acc)
    assert (recovered - acc).abs().max() < 0.05
    scale = y_ref.abs().max()
    assert ((y - y_ref).abs().max() / scale) < 1e-6


# --- policy errors --------------------------------------------------------------------------------------------
def test_policy_errors_name_the_layer_and_the_allowed_set():
    sub, layers = _mbv3(0)
    good = _mixed_policy(layers)
    with pytest.raises(ValueError, match=r"layer 'blocks\.99\.dw' is not a layer of this subnet; layers: "
                                         r"first_conv, blocks\.0\.dw"):
        quantize_subnet(sub, layers, {**good, "blocks.99.dw": (8, 8)})
    with pytest.raises(ValueError, match=r"layer 'blocks\.0\.dw' has weight bits 6; allowed bits: 4, 8"):
        quantize_subnet(sub, layers, {**{n: (8, 4) for n in good}, "blocks.0.dw": (6, 8)}, allowed_bits={4, 8})
    for bad in (0, -4, 4.0, True, 17, 1, "8"):
        with pytest.raises(ValueError, match=r"layer 'classifier' has input bits .*allowed bits: 2, 3, .*16"):
            quantize_subnet(sub, layers, {**good, "classifier": (8, bad)})
    missing = dict(good)
    del missing["blocks.2.project"]
    with pytest.raises(ValueError, match=r"no bits for layer\(s\) 'blocks\.2\.project'"):
        quantize_subnet(sub, layers, missing)
    with pytest.raises(ValueError, match="needs a pair"):
        quantize_subnet(sub, layers, {**good, "classifier": 8})
    with pytest.raises(ValueError, match="allowed_bits"):
        quantize_subnet(sub, layers, good, allowed_bits={1, 8})
    with pytest.raises(ValueError, match="layer shapes"):
        quantize_subnet(sub, layers[:-1], {k: v for k, v in good.items() if k != "classifier"})


def test_bits_recorded_on_modules_in_layer_order():
    sub, layers = _mbv3(0)
    policy = _mixed_policy(layers)
    q = quantize_subnet(sub, layers, policy)
    qls = quant_layers(q)
    assert list(qls) == [layer.name for layer in layers]
    for name, ql in qls.items():
        assert (ql.weight_bits, ql.input_bits) == policy[name]
        lo, hi = weight_qrange(ql.weight_bits)
        assert (ql.weight_fake_quant.quant_min, ql.weight_fake_quant.quant_max) == (lo, hi)
        assert (ql.input_fake_quant.quant_min, ql.input_fake_quant.quant_max) == input_qrange(ql.input_bits)
    # 16-bit layers work too (int32 observer containers); the random-init net amplifies quantization noise ~100x
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = fold_bn(sub)(x)
    err = {}
    for bits in (8, 16):
        qb = calibrate(quantize_subnet(sub, layers, {n: (bits, bits) for n in policy}), [x])
        with torch.no_grad():
            err[bits] = float((qb(x) - want).abs().max() / want.abs().max())
    assert err[16] < 1e-2 and err[8] > 30 * err[16], err


def test_lower_bits_give_larger_weight_error():
    w = torch.randn(32, 16, 3, 3, generator=torch.Generator().manual_seed(5))
    errors = {}
    for bits in (8, 6, 4):
        conv = nn.Conv2d(16, 32, 3, bias=False)
        with torch.no_grad():
            conv.weight.copy_(w)
        layer = Layer(K=32, C=16, R=3, S=3, name="c")
        ql = quantize_subnet(nn.Sequential(OrderedDict(c=conv)), [layer], {"c": (bits, 8)}).c
        with torch.no_grad():
            errors[bits] = float((ql.quantized_weight() - w).pow(2).mean())
    assert errors[8] < errors[6] < errors[4]
    assert errors[6] > 8 * errors[8] and errors[4] > 8 * errors[6]  # ~4x per bit


# --- calibration, QAT -----------------------------------------------------------------------------------------
def test_calibrate_freezes_and_qat_step_has_finite_gradients():
    sub, layers = _mbv3(3)
    q = quantize_subnet(sub, layers, _mixed_policy(layers))
    g = torch.Generator().manual_seed(4)
    calibrate(q, [torch.randn(8, 3, 16, 16, generator=g) for _ in range(3)])
    x = torch.randn(8, 3, 16, 16, generator=g)
    scales = {n: float(ql.input_fake_quant.scale) for n, ql in quant_layers(q).items()}
    with torch.no_grad():
        a = q(x)
        q(x * 3)  # frozen: a wider input does not move the ranges
        assert torch.equal(a, q(x))
    assert scales == {n: float(ql.input_fake_quant.scale) for n, ql in quant_layers(q).items()}
    assert (a - fold_bn(sub)(x)).abs().max() > 0  # fake quant is on

    freeze(q)  # keep every range fixed during QAT
    q.train()
    y = torch.randint(0, 10, (8,), generator=g)
    loss = nn.functional.cross_entropy(q(x), y)
    loss.backward()
    grads = [ql.module.weight.grad for ql in quant_layers(q).values()]
    assert all(gr is not None and torch.isfinite(gr).all() for gr in grads)
    assert sum(float(gr.abs().sum()) for gr in grads) > 0
    assert scales == {n: float(ql.input_fake_quant.scale) for n, ql in quant_layers(q).items()}
    acc = quantized_accuracy(q, [(x, y)])
    assert 0.0 <= acc <= 1.0 and q.training

    # QAT with weight observers on, input ranges fixed: an SGD step moves weight scales, not input scales
    unfreeze(q, inputs=False)
    ql = quant_layers(q)["first_conv"]
    before = ql.weight_fake_quant.scale.clone()
    opt = torch.optim.SGD(q.parameters(), lr=0.5)
    opt.zero_grad()
    nn.functional.cross_entropy(q(x), y).backward()
    opt.step()
    q(x)
    assert not torch.equal(before, ql.weight_fake_quant.scale)
    assert scales == {n: float(ql.input_fake_quant.scale) for n, ql in quant_layers(q).items()}


# --- QDQ ONNX ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def qdq_export(tmp_path_factory):
    torch.set_num_threads(1)
    from naas_train.qdq_export import export_qdq_onnx

    sub, layers = _mbv3(7)
    policy = _mixed_policy(layers)
    q = quantize_subnet(sub, layers, policy)
    g = torch.Generator().manual_seed(8)
    calibrate(q, [torch.randn(32, 3, 16, 16, generator=g) for _ in range(4)])
    path = tmp_path_factory.mktemp("qdq") / "model.onnx"
    info = export_qdq_onnx(q, torch.randn(64, 3, 16, 16, generator=g), path)
    return q, policy, path, info


def _producer(graph):
    return {o: n for n in graph.node for o in n.output}


def _session(model_or_path, optimize: bool = False):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    src = model_or_path.SerializeToString() if hasattr(model_or_path, "SerializeToString") else str(model_or_path)
    return ort.InferenceSession(src, options, providers=["CPUExecutionProvider"])


def test_qdq_onnx_each_layer_equals_fake_quant_layer(qdq_export):
    """Teacher-forced per layer: the float tensor entering each layer's [Clip ->] QuantizeLinear in onnxruntime, fed
    to the PyTorch QuantLayer, gives the same input codes and the same conv output (no error accumulation)."""
    import onnx

    q, policy, path, info = qdq_export
    model = onnx.load(str(path))
    prod = _producer(model.graph)
    by_weight = {v["weight_initializer"]: n for n, v in info["layers"].items()}
    taps = {}
    for node in model.graph.node:
        if node.op_type in ("Conv", "Gemm"):
            qn = prod[prod[node.input[0]].input[0]]
            before = prod.get(qn.input[0])
            x_in = before.input[0] if before is not None and before.op_type == "Clip" else qn.input[0]
            taps[by_weight[prod[node.input[1]].input[0]]] = (x_in, qn.output[0], node.output[0])
    assert sorted(taps) == sorted(policy)
    types = {}
    for name, (x_in, codes, out) in taps.items():
        types.update({x_in: onnx.TensorProto.FLOAT, out: onnx.TensorProto.FLOAT, codes: onnx.TensorProto.UINT8})
    for t, elem in types.items():
        if t not in ("input", "logits"):
            model.graph.output.append(onnx.helper.make_tensor_value_info(t, elem, None))
    session = _session(model)
    g = torch.Generator().manual_seed(9)
    for gain in (1.0, 3.0):  # x3: beyond the calibrated ranges, so the b-bit saturation must match too
        x = torch.randn(64, 3, 16, 16, generator=g) * gain
        values = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"input": x.numpy()})))
        values["input"] = x.numpy()
        saturated = 0
        for name, ql in quant_layers(q).items():
            x_in, codes_name, out_name = taps[name]
            xin = torch.from_numpy(values[x_in])
            s, z = float(ql.input_fake_quant.scale), int(ql.input_fake_quant.zero_point)
            with torch.no_grad():
                want_codes = torch.round(ql.input_fake_quant(xin) / s) + z
            codes = torch.from_numpy(values[codes_name].astype(np.int64))
            assert codes.max() <= 2**ql.input_bits - 1
            flips = (codes - want_codes).abs()
            assert flips.max() <= 1 and flips.float().mean() <= 1e-3, (name, flips.max(), flips.float().mean())
            saturated += int((codes == 2**ql.input_bits - 1).sum()) * (ql.input_bits < 8)
            # the conv/linear on onnxruntime's own codes: float rounding only
            m = ql.module
            with torch.no_grad():
                xq, w = (codes.float() - z) * s, ql.quantized_weight()
                if isinstance(m, nn.Linear):
                    want = nn.functional.linear(xq, w, m.bias)
                else:
                    want = nn.functional.conv2d(xq, w, m.bias, m.stride, m.padding, m.dilation, m.groups)
            got = torch.from_numpy(values[out_name])
            print("LAYER", name, float((got - want).abs().max() / want.abs().max())); assert (got - want).abs().max() <= 1e-5 * want.abs().max() + 1e-6, name
        assert saturated > 0 or gain == 1.0  # the b-bit (not the 8-bit container) bound was reached and held


def test_qdq_onnx_end_to_end_agrees_with_fake_quant_model(qdq_export):
    q, _policy, path, info = qdq_export
    assert info["ort_check"]["samples_within_1e-4"] >= 0.9
    session = _session(path)
    g = torch.Generator().manual_seed(11)
    close = agree = total = 0
    for _ in range(4):
        x = torch.randn(64, 3, 16, 16, generator=g)
        got = session.run(None, {"input": x.numpy()})[0]
        with torch.no_grad():
            want = q.eval()(x).numpy()
        close += int((np.abs(got - want).max(1) <= 1e-4).sum())  # no code flipped anywhere in the network
        agree += int((got.argmax(1) == want.argmax(1)).sum())
        total += len(x)
    print(f"QDQ ONNX vs fake quant: {close / total:.3f} of samples within 1e-4, top-1 agreement {agree / total:.3f}")
    assert close / total >= 0.9 and agree / total >= 0.97


def test_qdq_onnx_graph_has_recorded_bits(qdq_export):
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    q, policy, path, info = qdq_export
    model = onnx.load(str(path))
    meta = {p.key: p.value for p in model.metadata_props}
    want = {n: {"weights": w, "inputs": a} for n, (w, a) in policy.items()}
    assert json.loads(meta["naas.precision"]) == want == info["precision"]
    assert info["quantize_nodes"] == len(policy) and info["dequantize_nodes"] == 2 * len(policy)

    graph, prod = model.graph, _producer(model.graph)
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    by_weight = {v["weight_initializer"]: n for n, v in info["layers"].items()}
    q_of_layer = {}
    for node in graph.node:
        if node.op_type not in ("Conv", "Gemm"):
            continue
        xdq, wdq = prod[node.input[0]], prod[node.input[1]]
        assert xdq.op_type == wdq.op_type == "DequantizeLinear"
        name = by_weight[wdq.input[0]]
        bits = policy[name]
        # weights: integer codes spanning exactly the signed narrow b-bit range, per-channel axis 0
        codes = inits[wdq.input[0]]
        assert codes.dtype == np.int8 and np.abs(codes).max() == 2 ** (bits[0] - 1) - 1
        assert next(a.i for a in wdq.attribute if a.name == "axis") == 0
        assert inits[wdq.input[1]].shape == (codes.shape[0],)
        # inputs: Q -> DQ, with a Clip before Q below 8 bits
        qn = prod[xdq.input[0]]
        assert qn.op_type == "QuantizeLinear"
        assert (prod.get(qn.input[0]) is not None and prod[qn.input[0]].op_type == "Clip") == (bits[1] < 8)
        q_of_layer[qn.output[0]] = name
    assert sorted(q_of_layer.values()) == sorted(policy)

    # the torch export form (model.pt2's module) equals the fake-quant model exactly
    from naas_train.qdq_export import qdq_module

    x = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(12)) * 2
    with torch.no_grad():
        assert torch.equal(qdq_module(q)(x), q.eval()(x))

    # run ORT with every QuantizeLinear output exposed: input codes stay within the layer's b-bit range
    for out in q_of_layer:
        model.graph.output.append(onnx.helper.make_tensor_value_info(out, onnx.TensorProto.UINT8, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = torch.randn(64, 3, 16, 16, generator=torch.Generator().manual_seed(10)) * 4  # beyond the calibrated ranges
    outs = session.run(list(q_of_layer), {"input": x.numpy()})
    for out, codes in zip(q_of_layer, outs):
        bits = policy[q_of_layer[out]][1]
        assert codes.max() <= 2**bits - 1
    assert any(c.max() == 2 ** policy[q_of_layer[o]][1] - 1 for o, c in zip(q_of_layer, outs) if
               policy[q_of_layer[o]][1] < 8)  # saturation at the b-bit, not the 8-bit, bound happened


def test_resnet_subnet_folds_and_maps_every_layer():
    from supernet import OFAResNet50

    torch.manual_seed(0)
    net = OFAResNet50(num_classes=10)
    cfg = net.space.min_config(32)
    sub = net.extract(cfg)
    recalibrate_bn(sub, [torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))])
    sub.eval()
    layers = net.layer_shapes(cfg)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():  # float64: the fold is exact up to rounding (float32 rounding alone is ~1e-5 this deep)
        want, got = sub.double()(x.double()), fold_bn(sub)(x.double())
    sub.float()
    assert float((got - want).abs().max() / want.abs().max()) <= 1e-10
    q = quantize_subnet(sub, layers, {layer.name: (8, 8) for layer in layers})
    qls = quant_layers(q)
    assert list(qls) == [layer.name for layer in layers] and any(n.endswith(".downsample") for n in qls)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in q.modules())
