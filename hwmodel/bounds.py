"""Lower bounds no valid mapping can beat (for judging how close a searched mapping is to optimal).

Each bound relaxes the cost model rather than approximating it, so it holds for every valid mapping:

* compute: the fewest temporal iterations any unroll allowed by the array's connectivity leaves,
  ``min over unrolls of prod_d ceil(D_d / unroll_d)`` (>= ``ceil(MACs / #PEs)``);
* DRAM traffic: for every choice of L2 tile bounds that fits the L2 (twice when double-buffered), the
  model refetches the L2 tiles of every tensor that a DRAM loop outside it does not index, except for at
  most one tensor kept stationary across the innermost DRAM loops; the minimum over all fitting tile
  bounds and stationary tensors is a bound (inputs counted with the model's exact halo);
* energy: MACs x (e_MAC + L1 reads of weight and input + L1 read and write of the partial sum) + every
  tensor written into L1, delivered over the NoC and read from L2 once + the minimal DRAM traffic x
  (e_DRAM + e_L2, each DRAM word is an L2 access too).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from hwmodel.accelerator import Accelerator
from hwmodel.layer import DIMS, Layer


@dataclass(frozen=True)
class LowerBound:
    cycles: float
    energy_pj: float

    @property
    def edp(self) -> float:
        return self.cycles * self.energy_pj

    def to_dict(self) -> dict[str, float]:
        return {"cycles": self.cycles, "energy_pj": self.energy_pj}


def _no_waste(r: int) -> list[int]:
    """Tile bounds worth considering for a dim of ``r``: ``ceil(r / j)``, the smallest bound for each count."""
    return sorted({-(-r // j) for j in range(1, r + 1)})


@njit(cache=True)
def _min_dram_traffic(lp, cand, ncand, cap_bytes, word_bytes, psum_bytes):
    """Minimal DRAM words over L2 tile bounds ``cand[d, :ncand[d]]`` that fit ``cap_bytes``."""
    D = lp[:8]
    sh, sw, dh, dw = lp[8], lp[9], lp[10], lp[11]
    w_all = D[1] * D[2] * D[3] * D[6] * D[7]
    o_all = D[0] * D[1] * D[2] * D[4] * D[5]
    best = np.inf
    idx = np.zeros(8, dtype=np.int64)
    b = np.empty(8, dtype=np.int64)
    n = np.empty(8, dtype=np.int64)
    while True:
        for d in range(8):
            b[d] = cand[d, idx[d]]
            n[d] = (D[d] + b[d] - 1) // b[d]
        wt = b[1] * b[2] * b[3] * b[6] * b[7]
        it = b[0] * b[1] * b[3] * ((b[4] - 1) * sh + (b[6] - 1) * dh + 1) * ((b[5] - 1) * sw + (b[7] - 1) * dw + 1)
        ot = b[0] * b[1] * b[2] * b[4] * b[5]
        if (wt + it) * word_bytes + ot * psum_bytes <= cap_bytes:
            hsum = sh * (D[4] - n[4]) * n[6] + dh * (D[6] - n[6]) * n[4] + n[4] * n[6]
            wsum = sw * (D[5] - n[5]) * n[7] + dw * (D[7] - n[7]) * n[5] + n[5] * n[7]
            i_once = float(D[0] * D[1] * D[3] * hsum * wsum)
            fw = float(w_all * n[0] * n[4] * n[5])
            fi = i_once * n[2]
            fo = float(o_all * n[3] * n[6] * n[7])
            t = min(w_all + fi + 2 * fo - o_all, fw + i_once + 2 * fo - o_all, fw + fi + o_all)
            if t < best:
                best = t
        # odometer
        d = 0
        while d < 8:
            idx[d] += 1
            if idx[d] < ncand[d]:
                break
            idx[d] = 0
            d += 1
        if d == 8:
            return best


def min_dram_traffic(layer: Layer, accel: Accelerator) -> float:
    """Fewest DRAM words (reads + writes) any valid mapping of ``layer`` on ``accel`` can move."""
    dims = layer.dim_array.tolist()
    lists = [_no_waste(v) for v in dims]
    width = max(len(x) for x in lists)
    cand = np.ones((8, width), dtype=np.int64)
    for d, vals in enumerate(lists):
        cand[d, : len(vals)] = vals
    ncand = np.array([len(x) for x in lists], dtype=np.int64)
    cap = accel.l2_bytes / (2 if accel.double_buffer[1] else 1)
    lp = np.array([*dims, *layer.stride, *layer.dilation], dtype=np.int64)
    return float(_min_dram_traffic(lp, cand, ncand, float(cap), accel.word_bytes, accel.psum_bytes))


def min_compute_cycles(layer: Layer, accel: Accelerator) -> int:
    """Fewest temporal iterations over all unrolls the array's axes and connectivity allow."""
    dims = layer.dim_array.tolist()
    axes = [([DIMS.index(d) for d in conn if dims[DIMS.index(d)] > 1], size)
            for conn, size in zip(accel.connectivity, accel.array)]
    best = math.prod(dims)

    def rec(a: int, i: int, room: int, rem: list[int]) -> None:
        nonlocal best
        if a == len(axes):
            best = min(best, math.prod(rem))
            return
        allowed, _ = axes[a]
        if i == len(allowed) or room == 1:
            nxt = a + 1
            rec(nxt, 0, axes[nxt][1] if nxt < len(axes) else 1, rem)
            return
        d = allowed[i]
        for f in _no_waste(rem[d]):
            if f > room:
                break
            saved = rem[d]
            rem[d] = -(-saved // f)
            rec(a, i + 1, room // f, rem)
            rem[d] = saved

    rec(0, 0, axes[0][1], dims.copy())
    return int(best)


def _needed_input_words(layer: Layer) -> int:
    """Input elements some MAC reads: distinct ``p*stride + r*dilation`` rows times distinct columns."""
    rows = len({p * layer.stride[0] + r * layer.dilation[0] for p in range(layer.P) for r in range(layer.R)})
    cols = len({q * layer.stride[1] + s * layer.dilation[1] for q in range(layer.Q) for s in range(layer.S)})
    return layer.N * layer.G * layer.C * rows * cols


def lower_bound(layer: Layer, accel: Accelerator) -> LowerBound:
    """Bounds on one instance of ``layer`` on ``accel`` under any valid mapping (see module docstring).

    If no L2 tiling fits at all, every mapping is invalid and the bounds are infinite.
    """
    e = accel.energy
    e_w, e_i, e_o = accel.l1_access_energy()
    e_l2 = accel.l2_access_energy()
    macs = layer.macs
    w = layer.G * layer.K * layer.C * layer.R * layer.S
    i = _needed_input_words(layer)
    o = layer.N * layer.G * layer.K * layer.P * layer.Q
    dram = min_dram_traffic(layer, accel)
    energy = macs * (e.mac + e_w + e_i + 2 * e_o)
    energy += w * e_w + i * e_i + (w + i + o) * (e.noc + e_l2) + dram * (e.dram + e_l2)
    cycles = max(
        min_compute_cycles(layer, accel),
        math.ceil(dram / accel.dram_bandwidth) if math.isfinite(dram) else math.inf,
        math.ceil((w + i + o) / accel.noc_bandwidth),
    )
    return LowerBound(cycles=float(cycles), energy_pj=float(energy))
