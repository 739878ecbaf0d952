"""Per-access energy tables.

Every table answers five questions: the energy of one MAC, of one access to an L1 scratchpad of a given
size, of one word delivered over the on-chip network, of one access to an L2 buffer of a given size, and
of one DRAM word. Units are pJ for ``accelergy45`` and "MAC units" (one MAC = 1.0) for the ratio tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: (words, pJ per access) anchors of the SRAM size law of ``accelergy45``. The 12- and 192-word points
#: are the ifmap and weight scratchpads, the 65,536-word (128 KB of 16-bit words) point the shared
#: buffer, all from the Timeloop/Accelergy "Eyeriss-like" 45 nm example (timeloop-accelergy-exercises,
#: ``workspace/example_designs/eyeriss_like``: ifmap_spad 0.24 pJ, weights_spad 1.59 pJ, shared_glb
#: 18.8 pJ per 16-bit access).
ACCELERGY45_SRAM_POINTS: tuple[tuple[float, float], ...] = ((12.0, 0.24), (192.0, 1.59), (65536.0, 18.8))


def sram_energy_pj(words: float, points: tuple[tuple[float, float], ...] = ACCELERGY45_SRAM_POINTS) -> float:
    """Energy of one access to an SRAM of ``words`` words: piecewise power law (linear in log-log)
    through ``points``, extended past either end with the slope of the nearest segment."""
    if words <= 0:
        raise ValueError(f"SRAM size must be positive, got {words} words")
    xs = [math.log(w) for w, _ in points]
    ys = [math.log(e) for _, e in points]
    x = math.log(words)
    i = 0
    while i < len(xs) - 2 and x > xs[i + 1]:
        i += 1
    slope = (ys[i + 1] - ys[i]) / (xs[i + 1] - xs[i])
    return math.exp(ys[i] + slope * (x - xs[i]))


@dataclass(frozen=True)
class EnergyTable:
    """Per-access energies. ``l1_pj``/``l2_pj`` are fixed values unless ``size_law`` is set, in which case
    they follow :func:`sram_energy_pj` of the buffer's size in words."""

    name: str
    mac: float
    l1: float
    noc: float
    l2: float
    dram: float
    size_law: bool = False
    unit: str = "pJ"
    source: str = ""

    def l1_access(self, words: float) -> float:
        return sram_energy_pj(words) if self.size_law else self.l1

    def l2_access(self, words: float) -> float:
        return sram_energy_pj(words) if self.size_law else self.l2


ACCELERGY45 = EnergyTable(
    name="accelergy45",
    mac=2.20,  # 16-bit intmac, Timeloop/Accelergy eyeriss_like example (45 nm): 2.20 pJ.
    l1=0.24,  # unused (size law); 12-word ifmap spad of the same example.
    # On-chip network per word delivered: not tabulated in that example; we take Eyeriss's
    # array : RF energy ratio 2 : 1 (Chen et al., ISCA 2016, Fig. 7) times the 12-word spad (0.24 pJ).
    noc=0.48,
    l2=18.8,  # unused (size law); 128 KB shared_glb of the same example.
    dram=128.0,  # LPDDR4-class DRAM per 16-bit word in the same example: 128 pJ.
    size_law=True,
    unit="pJ",
    source="Timeloop/Accelergy eyeriss_like example, 45 nm, 16-bit words",
)

EYERISS65 = EnergyTable(
    name="eyeriss65",
    mac=1.0,  # Chen et al., "Eyeriss", ISCA 2016, Fig. 7 (65 nm): ALU 1x,
    l1=1.0,  # RF (0.5 kB) 1x,
    noc=2.0,  # PE array (inter-PE) 2x,
    l2=6.0,  # global buffer (>100 kB) 6x,
    dram=200.0,  # DRAM 200x.
    unit="MAC",
    source="Eyeriss ISCA'16 normalized energy ratios",
)

MAESTRO = EnergyTable(
    name="maestro",
    mac=1.0,  # MAESTRO (Kwon et al., MICRO 2019) default cost model, energies relative to one MAC:
    l1=1.68,  # L1 buffer access 1.68x a MAC,
    noc=0.0,  # no separate network energy in that model,
    l2=18.61,  # L2 buffer access 18.61x a MAC.
    dram=200.0,  # not modelled by MAESTRO; we add Eyeriss's DRAM ratio (ISCA'16) so off-chip traffic is not free.
    unit="MAC",
    source="MAESTRO default L1/L2 ratios; DRAM from Eyeriss ISCA'16",
)

ENERGY_TABLES: dict[str, EnergyTable] = {t.name: t for t in (ACCELERGY45, EYERISS65, MAESTRO)}


def get_energy_table(name: str) -> EnergyTable:
    try:
        return ENERGY_TABLES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown energy_table {name!r}; choose one of {sorted(ENERGY_TABLES)}") from None
