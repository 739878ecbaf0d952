"""Per-layer mixed precision for extracted subnets: BN folding, fake quantization, calibration, QAT.

A *precision policy* maps every supernet layer name of a subnet (``net.layer_shapes(cfg)[i].name``:
``first_conv``, ``blocks.5.dw``, ``blocks.5.se_reduce``, ``classifier`` ...) to ``(weight_bits, input_bits)``,
``input_bits`` being the precision of the activation the layer *reads*.

:func:`quantize_subnet` folds every BatchNorm into the conv before it (:func:`fold_bn`) and wraps each
conv/linear in a :class:`QuantLayer` that fake-quantizes

* its **weight** per output channel, symmetric and signed on the narrow range
  ``[-(2^(b-1) - 1), 2^(b-1) - 1]`` (zero point 0; the narrow range keeps the grid symmetric, so
  ``-w`` quantizes to ``-q(w)``, and is what integer accelerators and TensorRT use), scale
  ``max|w_c| / (2^(b-1) - 1)``;
* its **input** per tensor, affine and unsigned on ``[0, 2^b - 1]`` for every layer: the observer puts the zero
  point where the observed minimum maps, so a non-negative input (after ReLU, hard-sigmoid gates) gets zero
  point 0 and the full unsigned range, and a signed one (after hardswish, the residual sums) still uses every
  level; one scheme for all layers keeps the exported graph uniform.

The bias stays float (it is added to the dequantized accumulator; an accelerator holds it at accumulator width).

Why torch.ao: the project's rule is to reuse maintained quantizers (torch.ao / torchao / Brevitas) rather than
write our own. torch.ao ships with torch (already a dependency), its ``FakeQuantize`` + ``MovingAverageMinMaxObserver``
/ ``PerChannelMinMaxObserver`` accept arbitrary ``quant_min``/``quant_max`` (any bit width 2..16 here), have a
straight-through-estimator backward for QAT, and ``enable/disable_observer`` to freeze scales; torchao and Brevitas
would add a dependency for the same arithmetic. The observers' dtype is ``qint8``/``quint8`` up to 8 bits and
``qint32`` above (only a container: the range is the custom one).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.quantization import (
    FakeQuantize,
    MovingAverageMinMaxObserver,
    PerChannelMinMaxObserver,
    disable_observer,
    enable_fake_quant,
    enable_observer,
)
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = [
    "MIN_BITS", "MAX_BITS", "QuantLayer", "fold_bn", "quantize_subnet", "calibrate", "freeze", "unfreeze",
    "quantized_accuracy", "quant_layers", "precision_of", "weight_qrange", "input_qrange",
]

MIN_BITS, MAX_BITS = 2, 16
Policy = Mapping[str, tuple[int, int]]


def weight_qrange(bits: int) -> tuple[int, int]:
    """Signed narrow range of a ``bits``-bit symmetric weight: ``(-(2^(b-1) - 1), 2^(b-1) - 1)``."""
    return -(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1


def input_qrange(bits: int) -> tuple[int, int]:
    """Unsigned range of a ``bits``-bit affine activation: ``(0, 2^b - 1)``."""
    return 0, 2**bits - 1


# --- BN folding -----------------------------------------------------------------------------------------------
def fold_bn(subnet: nn.Module) -> nn.Module:
    """A deep copy of ``subnet`` with every ``BatchNorm2d`` that directly follows a ``Conv2d`` folded into it.

    "Directly follows" is structural: consecutive children of an ``nn.Sequential`` (this codebase's
    ``conv_bn_act`` units ``conv/bn/act`` and ResNet-D shortcuts ``avg_pool/conv/bn``), where the conv's output is
    the BN's only input. The conv is replaced by ``torch.nn.utils.fusion.fuse_conv_bn_eval`` (weight scaled per
    output channel by ``gamma / sqrt(var + eps)``, bias ``beta + (b - mean) * gamma / sqrt(var + eps)``), the BN by
    ``nn.Identity``. The result equals ``subnet`` in eval mode; it keeps ``subnet``'s train/eval flag.
    """
    model = copy.deepcopy(subnet)
    training = model.training
    model.eval()  # fuse_conv_bn_eval reads running stats and refuses training-mode modules
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for a, b in itertools.pairwise(names):
            conv, bn = seq._modules[a], seq._modules[b]
            if isinstance(conv, nn.Conv2d) and type(bn) is nn.BatchNorm2d and bn.track_running_stats:
                if conv.out_channels != bn.num_features:
                    raise ValueError(f"fold_bn: {a} has {conv.out_channels} outputs, the BN after it "
                                     f"{bn.num_features} features")
                seq._modules[a] = fuse_conv_bn_eval(conv, bn)
                seq._modules[b] = nn.Identity()
    return model.train(training)


# --- quantized layer ------------------------------------------------------------------------------------------
def _weight_fake_quant(bits: int) -> FakeQuantize:
    lo, hi = weight_qrange(bits)
    return FakeQuantize(observer=PerChannelMinMaxObserver, quant_min=lo, quant_max=hi,
                        dtype=torch.qint8 if bits <= 8 else torch.qint32,
                        qscheme=torch.per_channel_symmetric, ch_axis=0)


def _input_fake_quant(bits: int, averaging_constant: float) -> FakeQuantize:
    lo, hi = input_qrange(bits)
    return FakeQuantize(observer=MovingAverageMinMaxObserver, quant_min=lo, quant_max=hi,
                        dtype=torch.quint8 if bits <= 8 else torch.qint32,
                        qscheme=torch.per_tensor_affine, averaging_constant=averaging_constant)


class QuantLayer(nn.Module):
    """A (BN-folded) ``Conv2d`` / ``Linear`` whose input and weight pass through torch.ao ``FakeQuantize``.

    Attributes: ``layer_name`` (supernet layer name), ``weight_bits``, ``input_bits``, ``module`` (the float
    layer: its ``weight``/``bias`` are the trained parameters), ``weight_fake_quant``, ``input_fake_quant``.
    """

    def __init__(self, module: nn.Module, layer_name: str, weight_bits: int, input_bits: int,
                 averaging_constant: float = 0.01):
        super().__init__()
        if not isinstance(module, (nn.Conv2d, nn.Linear)):
            raise TypeError(f"QuantLayer wraps Conv2d or Linear, got {type(module).__name__}")
        self.module = module
        self.layer_name, self.weight_bits, self.input_bits = layer_name, int(weight_bits), int(input_bits)
        self.weight_fake_quant = _weight_fake_quant(self.weight_bits)
        self.input_fake_quant = _input_fake_quant(self.input_bits, averaging_constant)

    def quantized_weight(self) -> torch.Tensor:
        """The fake-quantized (dequantized) weight the forward uses."""
        return self.weight_fake_quant(self.module.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_fake_quant(x)
        w = self.quantized_weight()
        m = self.module
        if isinstance(m, nn.Linear):
            return F.linear(x, w, m.bias)
        if m.padding_mode != "zeros":
            raise ValueError(f"{self.layer_name}: padding_mode {m.padding_mode!r} is not supported")
        return F.conv2d(x, w, m.bias, m.stride, m.padding, m.dilation, m.groups)

    def extra_repr(self) -> str:
        return f"layer_name={self.layer_name!r}, weight_bits={self.weight_bits}, input_bits={self.input_bits}"


def quant_layers(qmodel: nn.Module) -> dict[str, QuantLayer]:
    """The :class:`QuantLayer` of ``qmodel`` by supernet layer name, in forward (module) order."""
    return {m.layer_name: m for m in qmodel.modules() if isinstance(m, QuantLayer)}


def precision_of(qmodel: nn.Module) -> dict[str, dict[str, int]]:
    """``{layer_name: {"weights": bits, "inputs": bits}}`` of a quantized model."""
    return {n: {"weights": m.weight_bits, "inputs": m.input_bits} for n, m in quant_layers(qmodel).items()}


# --- policy checks --------------------------------------------------------------------------------------------
def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_allowed(allowed_bits: Collection[int] | None) -> tuple[int, ...]:
    if allowed_bits is None:
        return tuple(range(MIN_BITS, MAX_BITS + 1))
    allowed = tuple(sorted(set(allowed_bits)))
    bad = [b for b in allowed if not _is_int(b) or not MIN_BITS <= b <= MAX_BITS]
    if not allowed or bad:
        raise ValueError(f"allowed_bits must be a non-empty set of integers in {MIN_BITS}..{MAX_BITS}, "
                         f"got {sorted(allowed_bits, key=repr)!r}")
    return allowed


def _check_policy(policy: Policy, names: list[str], allowed: tuple[int, ...]) -> dict[str, tuple[int, int]]:
    if not isinstance(policy, Mapping):
        raise ValueError(f"precision policy must be a mapping layer name -> (weight_bits, input_bits), "
                         f"got {type(policy).__name__}")
    known, shown = set(names), ", ".join(names)
    for name in policy:
        if name not in known:
            raise ValueError(f"precision policy: layer {name!r} is not a layer of this subnet; layers: {shown}")
    missing = [n for n in names if n not in policy]
    if missing:
        raise ValueError(f"precision policy: no bits for layer(s) {', '.join(map(repr, missing))}; every layer "
                         f"needs (weight_bits, input_bits); layers: {shown}")
    out = {}
    for name in names:
        bits = policy[name]
        if not isinstance(bits, (tuple, list)) or len(bits) != 2:
            raise ValueError(f"precision policy: layer {name!r} needs a pair (weight_bits, input_bits), got {bits!r}")
        for what, b in zip(("weight", "input"), bits):
            if not _is_int(b) or b not in allowed:
                raise ValueError(f"precision policy: layer {name!r} has {what} bits {b!r}; allowed bits: "
                                 f"{', '.join(map(str, allowed))}")
        out[name] = (int(bits[0]), int(bits[1]))
    return out


def _match(model: nn.Module, layers: list[Any]) -> list[tuple[str, nn.Module, Any]]:
    """Pair the conv/linear modules of ``model`` (module order) with ``layers`` (forward order), checking shapes."""
    mods = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if len(mods) != len(layers):
        raise ValueError(f"the subnet has {len(mods)} conv/linear modules but {len(layers)} layer shapes were "
                         f"given: are the layers (net.layer_shapes(cfg)) of this subnet?")
    for (n, m), layer in zip(mods, layers):
        if isinstance(m, nn.Conv2d):
            got = (m.groups, m.out_channels // m.groups, m.in_channels // m.groups, *m.kernel_size)
        else:
            got = (1, m.out_features, m.in_features, 1, 1)
        want = (layer.G, layer.K, layer.C, layer.R, layer.S)
        if got != want:
            raise ValueError(f"layer {layer.name!r} (G, K, C, R, S)={want} does not match module {n!r} {got}: "
                             f"are the layers (net.layer_shapes(cfg)) of this subnet?")
    return [(n, m, layer) for (n, m), layer in zip(mods, layers)]


def _set_module(root: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, leaf = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, module)


# --- public entry points --------------------------------------------------------------------------------------
def quantize_subnet(subnet: nn.Module, layers: list[Any], policy: Policy,
                    allowed_bits: Collection[int] | None = None, averaging_constant: float = 0.01) -> nn.Module:
    """A fake-quantized copy of ``subnet`` (BN folded) under ``policy``; ``subnet`` is left untouched.

    Args:
        subnet: an extracted subnet (``net.extract(cfg)``): standard Conv2d/BatchNorm2d/Linear modules.
        layers: ``net.layer_shapes(cfg)``, one per conv/linear in forward order (their names are the policy's keys;
            shapes are checked against the modules).
        policy: ``{layer_name: (weight_bits, input_bits)}`` naming every layer exactly once.
        allowed_bits: the bit widths a policy may use (default ``2..16``).
        averaging_constant: the input observers' moving-average constant (torch.ao's default 0.01).

    Raises ``ValueError`` for an unknown layer, a missing layer, or bits that are not allowed integers. The result
    keeps ``subnet``'s train/eval flag; observers and fake quant are on until :func:`calibrate` / :func:`freeze`.
    """
    allowed = _check_allowed(allowed_bits)
    layers = list(layers)
    names = [layer.name for layer in layers]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"layer names must be unique, repeated: {', '.join(dup)}")
    bits = _check_policy(policy, names, allowed)
    model = fold_bn(subnet)
    for path, module, layer in _match(model, layers):
        wb, ab = bits[layer.name]
        _set_module(model, path, QuantLayer(module, layer.name, wb, ab, averaging_constant))
    return model.train(subnet.training)


def freeze(qmodel: nn.Module, weights: bool = True, inputs: bool = True) -> nn.Module:
    """Stop the observers (scales/zero points fixed) of the weight and/or input quantizers; fake quant stays on.

    :func:`calibrate` freezes everything (a deterministic model). QAT keeps that by default (the quantizers'
    straight-through estimator passes gradients to the float weights); to let the weight scales follow the trained
    weights while input ranges stay fixed, call ``unfreeze(qmodel, inputs=False)`` after :func:`calibrate`.
    """
    return _set_observers(qmodel, disable_observer, weights, inputs)


def unfreeze(qmodel: nn.Module, weights: bool = True, inputs: bool = True) -> nn.Module:
    """Observers of the weight and/or input quantizers back on (per-channel weight scales then track the weights
    at every forward; input ranges move by the moving average)."""
    return _set_observers(qmodel, enable_observer, weights, inputs)


def _set_observers(qmodel: nn.Module, switch: Any, weights: bool, inputs: bool) -> nn.Module:
    """Apply torch.ao's ``enable_observer`` / ``disable_observer`` to the chosen quantizers of every layer."""
    for m in quant_layers(qmodel).values():
        if weights:
            m.weight_fake_quant.apply(switch)
        if inputs:
            m.input_fake_quant.apply(switch)
    return qmodel


@torch.no_grad()
def calibrate(qmodel: nn.Module, batches: Iterable[Any], num_batches: int | None = 32,
              freeze_after: bool = True) -> nn.Module:
    """Observe activation ranges on ``batches`` (input tensors, or ``(x, ...)`` tuples), then freeze observers.

    Runs in eval mode without gradients with observers and fake quant on (each layer's input range is observed
    on the already-quantized outputs of the layers before it), at most ``num_batches`` batches (``None``: all),
    restores the train/eval flag, and with ``freeze_after`` disables every observer so the model is deterministic.
    """
    training = qmodel.training
    qmodel.eval()
    qmodel.apply(enable_observer)
    qmodel.apply(enable_fake_quant)
    device = next(qmodel.parameters()).device
    seen = 0
    try:
        for batch in batches:
            if num_batches is not None and seen >= num_batches:
                break
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            qmodel(x.to(device))
            seen += 1
    finally:
        qmodel.train(training)
    if seen == 0:
        raise ValueError("calibrate: no calibration batches")
    if freeze_after:
        qmodel.apply(disable_observer)
    return qmodel


@torch.no_grad()
def quantized_accuracy(qmodel: nn.Module, loader: Iterable[Any], max_batches: int | None = None) -> float:
    """Top-1 accuracy (0..1) of ``qmodel`` in eval mode on ``(x, y)`` batches; the train/eval flag is restored."""
    training = qmodel.training
    qmodel.eval()
    device = next(qmodel.parameters()).device
    correct = total = 0
    try:
        for i, (x, y) in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            pred = qmodel(x.to(device)).argmax(1).cpu()
            correct += int((pred == y.cpu()).sum())
            total += int(y.numel())
    finally:
        qmodel.train(training)
    if total == 0:
        raise ValueError("quantized_accuracy: the loader yielded no samples")
    return correct / total

