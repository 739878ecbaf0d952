"""Per-layer operand precision on an accelerator: which widths it runs, what a MAC costs, how fast it goes.

A :class:`hwmodel.layer.Layer` may carry ``weight_bits`` / ``input_bits`` (and optionally ``psum_bits``); an
:class:`hwmodel.accelerator.Accelerator` declares its MAC kind (``mac``) and the operand widths it accepts
(``precisions``). :func:`resolve_precision` checks the pair and returns the :class:`LayerPrecision` the cost
model uses:

* **Storage and traffic** are per bit at every level: a tensor of ``b`` bits occupies ``b`` bits of a level's
  capacity and moves ``b / word_bits`` of a word of its bandwidth and energy (values are packed).
* **Partial sums** at DRAM and L2 are ``psum_bits`` wide: the layer's, else derived as the exact accumulator
  width ``weight_bits + input_bits + ceil(log2(C*R*S))`` capped at the accelerator's ``psum_bits``. In the
  per-PE L1 an output occupies one entry (the accumulator register), as in the full-precision model.
* **MAC kinds** (:data:`MAC_KINDS`):

  - ``fixed``: one ``word_bits x word_bits`` multiplier per PE. Narrower operands run on it sign-extended:
    one product per cycle at the full-width MAC energy (narrow operands save storage and traffic only).
  - ``bitfusion``: Bit Fusion's fusible bit-bricks (Sharma et al., "Bit Fusion: Bit-Level Dynamically
    Composable Architecture for Accelerating Deep Neural Networks", ISCA 2018, Sec. III): a Fusion Unit is
    16 BitBricks, each a 2-bit x 2-bit multiplier; an operand pair of widths ``a x b`` (each rounded up to
    2, 4 or 8 bits) fuses ``(a/2)*(b/2)`` bricks, so the unit computes ``64 / (a*b)`` products per cycle
    (16 at 2x2, 4 at 4x4, 1 at 8x8) and adds them (a dot product: the products are of one output, along the
    reduction dims ``C, R, S``). 16-bit operands take ``a*b/64`` cycles per product (the paper's temporal
    fusion). Energy per product: the unit's 8x8 MAC energy times the share of bricks used, ``a*b/64`` (our
    assumption: brick energy dominates and scales with the bricks engaged, the premise of the paper's design).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hwmodel.accelerator import Accelerator
    from hwmodel.layer import Layer

#: Widths a BitBrick-based Fusion Unit fuses natively (2-bit bricks, 4x4 of them), and its 16-bit temporal mode
#: (Sharma et al., ISCA 2018, Sec. III).
BITFUSION_WIDTHS: tuple[int, ...] = (2, 4, 8, 16)
#: Bits of one side of a Fusion Unit (4 bricks of 2 bits): a product of ``a x b`` bits uses ``a*b`` of its
#: ``FUSION_SIDE_BITS**2`` bit-products per cycle.
FUSION_SIDE_BITS = 8


@dataclass(frozen=True)
class MacOp:
    """What one product costs on a PE: energy (pJ per product), products per cycle, cycles per product."""

    pj: float
    lanes: int = 1
    passes: int = 1


@dataclass(frozen=True)
class LayerPrecision:
    """The resolved widths of one layer on one accelerator (bits per element of each tensor)."""

    weights: int
    inputs: int
    psum: int

    def mac(self, accel: Accelerator) -> MacOp:
        return MAC_KINDS[accel.mac].operate(accel, self.weights, self.inputs)


@dataclass(frozen=True)
class MacKind:
    """A MAC datapath: the operand widths it accepts by default and the cost of one product."""

    default_widths: Callable[[Accelerator], tuple[int, ...]]
    operate: Callable[[Accelerator, int, int], MacOp]
    doc: str


def _fixed_widths(accel: Accelerator) -> tuple[int, ...]:
    return tuple(range(2, accel.word_bits + 1))


def _fixed_op(accel: Accelerator, bits_w: int, bits_i: int) -> MacOp:
    return MacOp(pj=accel.energy.mac_pj(accel.word_bits, accel.word_bits))


def _fusion_width(bits: int) -> int:
    """An operand width rounded up to a width Bit Fusion's bricks compose (2, 4, 8 or 16)."""
    for width in BITFUSION_WIDTHS:
        if bits <= width:
            return width
    raise ValueError(f"bitfusion MACs fuse at most {BITFUSION_WIDTHS[-1]}-bit operands, got {bits} bits")


def _fusion_widths(accel: Accelerator) -> tuple[int, ...]:
    return tuple(range(2, BITFUSION_WIDTHS[-1] + 1))


def _fusion_op(accel: Accelerator, bits_w: int, bits_i: int) -> MacOp:
    a, b = _fusion_width(bits_w), _fusion_width(bits_i)
    unit = FUSION_SIDE_BITS * FUSION_SIDE_BITS
    pj = accel.energy.mac_pj(FUSION_SIDE_BITS, FUSION_SIDE_BITS) * (a * b) / unit
    if a * b <= unit:
        return MacOp(pj=pj, lanes=unit // (a * b))
    return MacOp(pj=pj, passes=(a * b) // unit)


#: MAC kinds by name (``Accelerator.mac``).
MAC_KINDS: dict[str, MacKind] = {
    "fixed": MacKind(_fixed_widths, _fixed_op, "one word_bits x word_bits multiplier per PE"),
    "bitfusion": MacKind(_fusion_widths, _fusion_op, "Bit Fusion bit-bricks (ISCA 2018): 64/(a*b) products/cycle"),
}


def supported_widths(accel: Accelerator) -> tuple[int, ...]:
    """The operand widths ``accel`` runs: its ``precisions``, else its MAC kind's default."""
    return accel.precisions if accel.precisions is not None else MAC_KINDS[accel.mac].default_widths(accel)


def derived_psum_bits(layer: Layer, bits_w: int, bits_i: int, cap: int) -> int:
    """The exact accumulator width of ``layer`` (``bits_w + bits_i + ceil(log2(C*R*S))``), at most ``cap``."""
    return min(cap, bits_w + bits_i + math.ceil(math.log2(layer.C * layer.R * layer.S)))


def resolve_precision(layer: Layer, accel: Accelerator) -> LayerPrecision | None:
    """The widths ``layer`` runs at on ``accel`` (``None``: the accelerator's full-precision default).

    ``ValueError`` naming the layer and the allowed set when a width is one ``accel`` does not support."""
    if layer.weight_bits is None and layer.input_bits is None:
        return None
    bits_w = layer.weight_bits if layer.weight_bits is not None else accel.word_bits
    bits_i = layer.input_bits if layer.input_bits is not None else accel.word_bits
    allowed = supported_widths(accel)
    for what, bits in (("weight_bits", bits_w), ("input_bits", bits_i)):
        if bits not in allowed:
            label = f"layer {layer.name!r}" if layer.name else f"layer {layer}"
            raise ValueError(f"{label}: {what}={bits} is not a precision accelerator {accel.name!r} "
                             f"({accel.mac} MACs) supports; allowed: {_ranges(allowed)}")
    psum = layer.psum_bits if layer.psum_bits is not None else derived_psum_bits(layer, bits_w, bits_i,
                                                                                accel.psum_bits)
    return LayerPrecision(bits_w, bits_i, psum)


def _ranges(widths: tuple[int, ...]) -> str:
    """``2..8`` for a contiguous set, else the list."""
    ws = sorted(widths)
    if len(ws) > 2 and ws == list(range(ws[0], ws[-1] + 1)):
        return f"{ws[0]}..{ws[-1]} bits"
    return ", ".join(str(w) for w in ws) + " bits"
