"""Lower bounds no valid mapping can beat (for judging how close a searched mapping is to optimal)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from hwmodel.accelerator import Accelerator
from hwmodel.layer import Layer


@dataclass(frozen=True)
class LowerBound:
    cycles: float
    energy_pj: float

    @property
    def edp(self) -> float:
        return self.cycles * self.energy_pj

    def to_dict(self) -> dict[str, float]:
        return {"cycles": self.cycles, "energy_pj": self.energy_pj}


def _needed_input_words(layer: Layer) -> int:
    """Input elements some MAC reads: distinct ``p*stride + r*dilation`` rows times distinct columns."""
    rows = len({p * layer.stride[0] + r * layer.dilation[0] for p in range(layer.P) for r in range(layer.R)})
    cols = len({q * layer.stride[1] + s * layer.dilation[1] for q in range(layer.Q) for s in range(layer.S)})
    return layer.N * layer.G * layer.C * rows * cols


def lower_bound(layer: Layer, accel: Accelerator) -> LowerBound:
    """Bounds on one instance of ``layer`` on ``accel`` under any valid mapping.

    cycles >= max(ceil(MACs / #PEs), minimal DRAM traffic / DRAM bandwidth, minimal NoC traffic / NoC
    bandwidth); energy >= MACs x (e_MAC + one L1 read of a weight and an input and one L1 read and write of
    a partial sum) + every tensor moved exactly once through every outer level (DRAM, L2 in and out, NoC,
    L1 write), counting only the input elements some MAC needs.
    """
    e = accel.energy
    e_w, e_i, e_o = accel.l1_access_energy()
    e_l2 = accel.l2_access_energy()
    macs = layer.macs
    w = layer.G * layer.K * layer.C * layer.R * layer.S
    i = _needed_input_words(layer)
    o = layer.N * layer.G * layer.K * layer.P * layer.Q
    energy = macs * (e.mac + e_w + e_i + 2 * e_o)
    energy += (w * e_w + i * e_i) + (w + i + o) * (e.noc + 2 * e_l2 + e.dram)
    cycles = max(
        math.ceil(macs / accel.num_pes),
        math.ceil((w + i + o) / accel.dram_bandwidth),
        math.ceil((w + i + o) / accel.noc_bandwidth),
    )
    return LowerBound(cycles=float(cycles), energy_pj=float(energy))
