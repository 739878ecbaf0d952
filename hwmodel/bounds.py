"""Lower bounds no valid mapping can beat (for judging how close a searched mapping is to optimal).

Each bound relaxes the cost model rather than approximating it, so it holds for every valid mapping:

* compute: the fewest temporal iterations any unroll allowed by the array's connectivity leaves,
  ``min over unrolls of prod_d ceil(D_d / unroll_d)`` (>= ``ceil(MACs / #PEs)``);
* DRAM traffic: at least compulsory (every weight, every input some MAC reads and every output crosses DRAM
  once, outputs at ``psum_bits``) and at least the capacity-aware I/O bound of :func:`io_lower_bound` for an
  L2 of ``S`` elements (a red-blue pebble bound: few MACs fit between ``S`` transfers when ``S`` is small);
* energy (Timeloop's counting, :mod:`hwmodel.nestkernel`): every valid MAC reads its weight and input
  from L1 and updates its partial sum there (partial-sum reads, ``updates - distinct outputs``, are
  bounded by 0); every needed element is filled into L1 and delivered over the NoC at least once, read
  from (weights, inputs) or written to (outputs) L2 at least once, and each DRAM word is also an L2 fill;
  energies per access are the family hierarchy's (:func:`hwmodel.family.family_hierarchy`), per element at the
  layer's widths (:mod:`hwmodel.precision`); fused MAC lanes divide the compute bound, wide products multiply it;
* cycles: the compute bound, with the DRAM traffic over the DRAM bandwidth and the compulsory words over the
  L2's network, added where the level they fill has no double buffering (:func:`network_cycles`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hwmodel.accelerator import Accelerator
from hwmodel.layer import DIMS, Layer
from hwmodel.precision import resolve_precision
from hwmodel.templates import no_waste_values
from hwmodel.tiling_kernel import stalled_cycles


@dataclass(frozen=True)
class LowerBound:
    cycles: float
    energy_pj: float

    @property
    def edp(self) -> float:
        return self.cycles * self.energy_pj

    def to_dict(self) -> dict[str, float]:
        return {"cycles": self.cycles, "energy_pj": self.energy_pj}


def min_compute_cycles(layer: Layer, accel: Accelerator) -> int:
    """Fewest temporal iterations over all unrolls the array's axes and connectivity allow.

    A depth-first walk over the no-waste unroll factors (axis by axis, dim by dim), pruned when even using
    every PE left on the remaining axes cannot beat the best found (``prod(rem) / room`` is a lower bound on
    any completion's ``prod(ceil(rem_d / f_d))``); exact, as the pruning only drops dominated branches."""
    dims = layer.dim_array.tolist()
    axes = [([DIMS.index(d) for d in conn if dims[DIMS.index(d)] > 1], size)
            for conn, size in zip(accel.connectivity, accel.array)]
    # PEs of the axes after axis a (the room a completion can still use)
    later = [math.prod(size for _, size in axes[a + 1:]) for a in range(len(axes))] + [1]
    best = math.prod(dims)

    def rec(a: int, i: int, room: int, rem: list[int]) -> None:
        nonlocal best
        if a == len(axes):
            best = min(best, math.prod(rem))
            return
        if math.prod(rem) >= best * room * later[a]:
            return  # even a perfect split of every remaining PE leaves at least prod(rem) / PEs >= best
        allowed, _ = axes[a]
        if i == len(allowed) or room == 1:
            nxt = a + 1
            rec(nxt, 0, axes[nxt][1] if nxt < len(axes) else 1, rem)
            return
        d = allowed[i]
        for f in reversed(no_waste_values(rem[d], min(rem[d], room))):  # large factors first: good bounds early
            saved = rem[d]
            rem[d] = -(-saved // f)
            rec(a, i + 1, room // f, rem)
            rem[d] = saved

    rec(0, 0, axes[0][1], dims.copy())
    return int(best)


def distinct_window_rows(extent: int, taps: int, stride: int, dilation: int) -> int:
    """Distinct values of ``p*stride + r*dilation`` for ``p < extent``, ``r < taps``, in closed form.

    With ``g = gcd(stride, dilation)``, ``s = stride/g`` and ``d = dilation/g``, rows ``r`` in the same residue
    class mod ``s`` give progressions shifted by ``d`` (in units of ``s``): each of the ``min(s, taps)`` classes
    contributes ``extent`` values for its first row and ``min(d, extent)`` new ones for every further row."""
    g = math.gcd(stride, dilation)
    s, d = stride // g, dilation // g
    classes = min(s, taps)
    return classes * extent + (taps - classes) * min(d, extent)


def needed_input_words(layer: Layer) -> int:
    """Input elements some MAC reads: distinct ``p*stride + r*dilation`` rows times distinct columns."""
    rows = distinct_window_rows(layer.P, layer.R, layer.stride[0], layer.dilation[0])
    cols = distinct_window_rows(layer.Q, layer.S, layer.stride[1], layer.dilation[1])
    return layer.N * layer.G * layer.C * rows * cols


def reuse_taps(layer: Layer) -> int:
    """Most im2col positions one input element occupies: the filter taps ``(r, s)`` whose rows/columns hit it,
    ``ceil(R / (stride_h / g_h)) * ceil(S / (stride_w / g_w))`` with ``g = gcd(stride, dilation)`` (``r*dil`` must
    be congruent to the row mod the stride)."""
    taps = 1
    for extent, stride, dilation in ((layer.R, layer.stride[0], layer.dilation[0]),
                                     (layer.S, layer.stride[1], layer.dilation[1])):
        taps *= -(-extent // (stride // math.gcd(stride, dilation)))
    return taps


def io_lower_bound(layer: Layer, capacity: int) -> int:
    """Elements any schedule moves between a fast memory of ``capacity`` elements and the memory behind it.

    Red-blue pebble game (Hong & Kung, STOC 1981) with the segment argument of Irony, Toledo & Tiskin (JPDC
    2004): cut the execution into segments of ``S`` transfers (loads + stores). A segment touches at most
    ``3S`` elements: ``S`` resident at its start, ``S`` moved, and outputs it creates, which are resident at
    its end (``<= S``) or stored. Viewing the layer as its im2col GEMM (per group), the Loomis-Whitney
    inequality bounds its MACs by ``sqrt(|W| |A| |O|)`` where the im2col operand ``A`` has at most
    ``taps`` (:func:`reuse_taps`) entries per touched input element, so a segment performs at most
    ``F = sqrt(taps) * S**1.5`` MACs (maximised at ``|W| = |I| = |O| = S``), and
    ``Q >= S * (ceil(MACs / F) - 1)``. Valid for any loop order, tiling and padding (it knows nothing of
    the mapping); it exceeds the compulsory traffic only when the capacity is small for the layer."""
    capacity = int(capacity)
    if capacity < 1:
        raise ValueError(f"io_lower_bound: capacity must be >= 1 element, got {capacity}")
    per_segment = math.sqrt(reuse_taps(layer)) * capacity**1.5
    return capacity * max(0, math.ceil(layer.macs / per_segment) - 1)


def lower_bound(layer: Layer, accel: Accelerator) -> LowerBound:
    """Bounds on one instance of ``layer`` on ``accel`` under any valid mapping (see module docstring)."""
    from hwmodel.family import L1_LEVEL, L2_LEVEL, family_hierarchy

    prec = resolve_precision(layer, accel)
    hier = family_hierarchy(accel, prec)
    dram, l2 = hier.levels[0], hier.levels[L2_LEVEL]
    l1 = hier.levels[L1_LEVEL:]
    wb = accel.word_bits
    # words (of word_bits) per element of each tensor outside the PEs, and inside (an output is one L1 entry)
    outer = [b / wb for b in dram.tensor_bits]
    inner = [b / wb for b in l1[-1].tensor_bits]
    e_l1 = [next(lv.read_pj for lv in l1 if t in lv.keeps) * inner[k]
            for k, t in enumerate(("weights", "inputs", "outputs"))]
    macs = layer.macs
    w = layer.G * layer.K * layer.C * layer.R * layer.S
    i = needed_input_words(layer)
    o = layer.N * layer.G * layer.K * layer.P * layer.Q
    energy = macs * (hier.mac_pj + e_l1[0] + e_l1[1] + e_l1[2])
    energy += w * e_l1[0] + i * e_l1[1] + o * e_l1[2]
    energy += (w * inner[0] + i * inner[1] + o * inner[2]) * l2.noc_pj
    compulsory = w * outer[0] + i * outer[1] + o * outer[2]
    energy += compulsory * (l2.read_pj + l2.fill_pj + dram.read_pj)
    # the L2 holds at most this many elements (each at least as wide as the narrowest tensor); every DRAM
    # transfer beyond the compulsory ones is one more DRAM access and one more L2 fill or read
    narrow = min(dram.tensor_bits)
    io_words = io_lower_bound(layer, max(1, accel.l2_bytes * 8 // narrow)) * narrow / wb
    dram_words = max(compulsory, io_words)
    energy += (dram_words - compulsory) * (dram.read_pj + min(l2.read_pj, l2.fill_pj))
    # fused MAC lanes take at most `lanes` iterations per cycle; a wide product takes `passes` cycles
    compute = math.ceil(min_compute_cycles(layer, accel) / hier.mac_lanes) * hier.mac_passes
    return LowerBound(cycles=network_cycles(compute, dram_words, compulsory, accel), energy_pj=float(energy))


def network_cycles(compute: float, dram_words: float, l2_words: float, accel: Accelerator) -> float:
    """Cycles of ``compute`` MAC cycles with at least ``dram_words`` over the DRAM network and ``l2_words`` over
    the L2's network on ``accel`` (:func:`hwmodel.tiling_kernel.stalled_cycles`)."""
    l1_stalls, l2_stalls = (not flag for flag in accel.double_buffer)
    return float(stalled_cycles(compute, dram_words, l2_words, accel.dram_bandwidth, accel.noc_bandwidth,
                                l1_stalls, l2_stalls))
