"""Per-access energy tables.

Every table answers: the energy of one MAC, of one access to an on-chip buffer, of data delivered over the
on-chip network, and of data moved to or from DRAM. Units are pJ for ``accelergy45`` and "MAC units" (one
16-bit MAC = 1.0) for the ratio tables ``eyeriss65`` and ``maestro``.

Two interfaces:

* The storage-hierarchy interface, word-width and size aware:
  :meth:`EnergyTable.sram_pj` ``(capacity_bits, access_bits)``, :meth:`EnergyTable.dram_pj` ``(access_bits)``,
  :meth:`EnergyTable.noc_pj` ``(bits)`` and :meth:`EnergyTable.mac_pj` ``(bits_a, bits_b)``. An access of
  ``access_bits`` bits is one vector access (block of words) to a memory whose rows are that wide, so
  ``depth = capacity_bits / access_bits`` rows, as in Timeloop (``memory_width = block-size * word-bits``).
* The legacy interface (fields ``mac``, ``l1``, ``noc``, ``l2``, ``dram``; ``l1_access(words)``,
  ``l2_access(words)``), in 16-bit words (:data:`LEGACY_WORD_BITS`) and one word per access.

``accelergy45`` follows a size law fitted to Accelergy energy reference tables (ERTs) of the 45 nm
designs in timeloop-accelergy-exercises at commit :data:`EXERCISES_COMMIT`; every anchor is listed, with
its file, in :data:`ACCELERGY45_SRAM_ANCHORS` / :data:`ACCELERGY45_MAC_ANCHORS` / :data:`ACCELERGY45_DRAM_ANCHORS`
(``tests/fixtures/ert`` holds copies of those files). The law, :func:`accelergy45_sram_pj`:

1. **Up to the largest anchored depth** (:data:`SRAM_BANK_DEPTH` = 16384 rows): energy is linear in the
   access width and follows the per-bit energy of the anchors along the depth axis,
   ``E = access_bits * e(depth)``, where ``e`` is the piecewise power law (straight lines in log-log)
   through the knot anchors' ``read_pj / width``, extended below the smallest knot with the first
   segment's slope. All segment slopes are < 1, so at a fixed capacity a wider access costs more, and
   ``e`` increases, so at a fixed width a deeper memory costs more.
2. **Deeper than that**, the memory is banked: ``n = depth / SRAM_BANK_DEPTH`` banks of the largest
   anchored depth, one accessed, plus an H-tree that carries the ``access_bits`` between that bank and the
   edge of the array:
   ``E = access_bits * (e(SRAM_BANK_DEPTH) + WIRE_PJ_PER_BIT_MM * pitch * (sqrt(n) - 1))``.
   The wire grows with the side of the array, i.e. ``sqrt(n)`` bank pitches, which is the CACTI 6.0
   view of large arrays (Muralimanohar, Balasubramonian, Jouppi, "CACTI 6.0: A Tool to Model Large
   Caches", HP Labs HPL-2009-85 / MICRO 2007: large caches are banks joined by an H-tree network whose
   wires dominate their energy and delay). The term is 0 at ``n = 1``, so the law is continuous there.
   ``pitch`` is the side of one bank, ``SRAM_BANK_SIDE_MM * sqrt(min(access_bits, 64) / 64)``: a
   16384-row bank as wide as the access, up to the 64 bits of the largest anchored macro (wider accesses
   read several such banks side by side; we keep the 64-bit bank's pitch for them). With this pitch a
   wider access still costs more at any width (at a fixed capacity the derivative in ``access_bits`` is
   at least ``e(SRAM_BANK_DEPTH) - WIRE_PJ_PER_BIT_MM * SRAM_BANK_SIDE_MM / 2 > 0``), and the wire
   constants come from public figures (:data:`WIRE_PJ_PER_BIT_MM`, :data:`SRAM_BANK_SIDE_MM`).

With this law a 4 MB SRAM's 64-bit access costs 91.4 pJ, 5.6x below the same DRAM access (512 pJ; the
exercises' largest SRAM is 6.9x below DRAM by its summary's max energy); per 16-bit word (``l2_access``)
23.9 pJ against DRAM's 128 pJ, where the old law, a power law extrapolated from 128 KB without banking,
gave 109 pJ. Against the anchors that are not knots the law is within 0.84x-2.2x (worst: the 192-word
CACTI SRAM ``pe_spad``, 0.727 pJ, where the knot at that depth is a 1.586 pJ register file; 32-bit
register files come out 1.2-1.8x high, the 40 nm SRAMs 1.4x high).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

#: Source of the anchors: https://github.com/Accelergy-Project/timeloop-accelergy-exercises at this
#: commit ("Update reference outputs.", 2020-08-21; Accelergy 0.3 ERTs, 45 nm Aladdin_table / CACTI
#: estimators, 40 nm for the conv1d Timeloop exercises, LPDDR4 DRAM from CACTI).
EXERCISES_REPO = "Accelergy-Project/timeloop-accelergy-exercises"
EXERCISES_COMMIT = "27850fc31e967f20d776c5f2b837d900094eafe6"

#: Word width of the legacy interface (``l1``, ``l2``, ``dram``, ``noc`` fields, ``l1_access`` and
#: ``l2_access``): the 16-bit words of the Eyeriss-like example the numbers come from.
LEGACY_WORD_BITS = 16

_EYERISS = "baseline_designs/example_designs/eyeriss_like/example_AlexNet_layer1_outputs/timeloop-mapper.ERT.yaml"
_SIMPLE_OS = ("baseline_designs/example_designs/simple_output_stationary/example_AlexNet_layer1_outputs/"
              "timeloop-mapper.ERT.yaml")
_EX01 = "exercises/accelergy/01_primitive_architecture_ERT/ref-output/ERT.yaml"
_EX03 = "exercises/accelergy/03_compound_architecture/ref-output/ERT.yaml"
_EX04 = "exercises/accelergy/04_eyeriss_like/ref-output/ERT.yaml"
_FP32 = "exercises/timeloop+accelergy/ref-output/float32/timeloop-mapper.ERT.yaml"
_TL00 = "exercises/timeloop/00-model-conv1d-1level/ref-output/timeloop-model.ERT.yaml"
_TL01 = "exercises/timeloop/01-model-conv1d-2level/ref-output/os/timeloop-model.ERT.yaml"
_TL03 = "exercises/timeloop/03-model-conv1d+oc-3level/ref-output/bypass/timeloop-model.ERT.yaml"


class SramAnchor(NamedTuple):
    """One storage component of an exercise design: attributes from the ``flattened_architecture.yaml``
    next to ``path`` (``memory_depth``/``depth``, ``memory_width``/``width``, ``word-bits``, ``technology``),
    energy from ``path`` by :mod:`hwmodel.ert`'s rule (``read`` with ``data_delta = address_delta = 1``)."""

    component: str  # leaf name in the ERT
    cls: str  # Accelergy class
    depth: int  # rows
    width: int  # bits per row = bits per access
    word_bits: int | None  # None: not given in the architecture
    tech_nm: int
    read_pj: float  # energy of one access of ``width`` bits
    path: str  # ERT file in EXERCISES_REPO at EXERCISES_COMMIT
    knot: bool  # the size law passes through this point


#: Every (class, depth, width, word-bits, read energy) of a storage component found in the ERTs and
#: architectures at :data:`EXERCISES_COMMIT` (identical points in several designs listed once, from the
#: first design). Left out: the PIM designs (32 nm memristor cells), the simba_like design (its buffers
#: declare ``depth``/``width`` but the estimator saw the default ``memory_depth: 12, memory_width: 16``,
#: so its energies do not belong to the declared sizes) and ``reg_storage`` (no energy tabulated).
#: Knots: the 45 nm chain of the Eyeriss-like designs, regfiles at the small end, CACTI SRAMs above.
ACCELERGY45_SRAM_ANCHORS: tuple[SramAnchor, ...] = (
    # Eyeriss-like baseline design, 45 nm, 16-bit words: the three PE scratchpads and the global buffer.
    SramAnchor("ifmap_spad", "smartbuffer_RF", 12, 16, 16, 45, 0.237, _EYERISS, True),
    SramAnchor("psum_spad", "smartbuffer_RF", 16, 16, 16, 45, 0.251, _EYERISS, True),
    SramAnchor("weights_spad", "smartbuffer_RF", 192, 16, 16, 45, 1.586, _EYERISS, True),
    SramAnchor("shared_glb", "smartbuffer_SRAM", 16384, 64, 16, 45, 52.612, _EYERISS, True),
    SramAnchor("DummyBuffer", "regfile", 16, 16, 16, 45, 0.202, _EYERISS, False),
    # Accelergy exercise 04 (Eyeriss-like with a separate weight buffer), 45 nm.
    SramAnchor("weights_glb", "smartbuffer_SRAM", 1024, 64, None, 45, 8.736, _EX04, True),
    SramAnchor("shared_glb", "smartbuffer_SRAM", 12800, 64, None, 45, 48.387, _EX04, True),
    # Simple output-stationary design: a 192-word CACTI SRAM scratchpad, 45 nm.
    SramAnchor("pe_spad", "smartbuffer_SRAM", 192, 16, 16, 45, 0.727, _SIMPLE_OS, False),
    # Accelergy exercises 01 and 03 (primitive and compound components), 45 nm.
    SramAnchor("buffer", "regfile", 24, 16, None, 45, 0.253, _EX01, False),
    SramAnchor("GLB", "SRAM", 1024, 32, None, 45, 4.82, _EX01, False),
    SramAnchor("buffer", "smartbuffer_RF", 24, 16, None, 45, 0.302, _EX03, False),
    SramAnchor("GLB", "smartbuffer_SRAM", 1024, 32, None, 45, 4.536, _EX03, False),
    # Eyeriss-like with 32-bit words (float32 exercise), 45 nm.
    SramAnchor("ifmap_spad", "smartbuffer_RF", 12, 32, 32, 45, 0.381, _FP32, False),
    SramAnchor("psum_spad", "smartbuffer_RF", 16, 32, 32, 45, 0.395, _FP32, False),
    SramAnchor("weights_spad", "smartbuffer_RF", 192, 32, 32, 45, 1.73, _FP32, False),
    SramAnchor("DummyBuffer", "regfile", 16, 32, 32, 45, 0.346, _FP32, False),
    SramAnchor("shared_glb", "smartbuffer_SRAM", 16384, 64, 32, 45, 52.612, _FP32, False),
    # Timeloop conv1d exercises, 40 nm, 8-bit words.
    SramAnchor("Buffer", "regfile", 64, 8, 8, 40, 0.42, _TL00, False),
    SramAnchor("MainMemory", "SRAM", 32768, 64, 8, 40, 39.878, _TL01, False),
    SramAnchor("GlobalBuffer", "SRAM", 8192, 256, 8, 40, 102.865, _TL03, False),
)


class MacAnchor(NamedTuple):
    component: str
    cls: str
    bits: int  # datawidth of both operands
    tech_nm: int
    pj: float  # mac_random
    path: str


#: MACs in the same ERTs (``mac_random``). The 16-bit one calibrates :meth:`EnergyTable.mac_pj`; the
#: 8-bit 40 nm one is a cross-check (the law gives 0.61 pJ, +9%); the fpmac is listed, not used.
ACCELERGY45_MAC_ANCHORS: tuple[MacAnchor, ...] = (
    MacAnchor("mac", "intmac", 16, 45, 2.2, _EYERISS),
    MacAnchor("MACC", "intmac", 8, 40, 0.561, _TL00),
    MacAnchor("mac", "fpmac", 32, 45, 32.328, _FP32),
)


class DramAnchor(NamedTuple):
    component: str
    width: int  # bits per access
    pj: float  # read
    path: str


#: LPDDR4 DRAM (CACTI, 65 nm) in the same ERTs: 8 pJ/bit at both widths.
ACCELERGY45_DRAM_ANCHORS: tuple[DramAnchor, ...] = (
    DramAnchor("DRAM", 64, 512.0, _EYERISS),
    DramAnchor("MainMemory", 256, 2048.0, _TL03),
)

#: DRAM energy per bit: 512 pJ per 64-bit LPDDR4 access (Eyeriss-like ERT) = 2048 pJ / 256 bits (conv1d).
DRAM_PJ_PER_BIT = ACCELERGY45_DRAM_ANCHORS[0].pj / ACCELERGY45_DRAM_ANCHORS[0].width

# --- the SRAM size law ------------------------------------------------------------------------------

_KNOTS: tuple[tuple[float, float], ...] = tuple(
    sorted((float(a.depth), a.read_pj / a.width) for a in ACCELERGY45_SRAM_ANCHORS if a.knot)
)
_KNOT_LOG_DEPTH = tuple(math.log(d) for d, _ in _KNOTS)
_KNOT_LOG_PJ_PER_BIT = tuple(math.log(e) for _, e in _KNOTS)

#: Rows of the largest anchored macro (the Eyeriss-like 128 KB shared_glb, 16384 x 64 bits): the law's
#: bank depth; deeper memories are banked (see the module docstring).
SRAM_BANK_DEPTH = max(a.depth for a in ACCELERGY45_SRAM_ANCHORS if a.knot)
#: Row width of that macro (64 bits) and its size (16384 x 64 = 1 Mib).
SRAM_BANK_WIDTH = max(a.width for a in ACCELERGY45_SRAM_ANCHORS if a.knot and a.depth == SRAM_BANK_DEPTH)
SRAM_BANK_BITS = SRAM_BANK_DEPTH * SRAM_BANK_WIDTH

#: 6T SRAM cell of a 45 nm logic process: 0.346 um^2 (Mistry et al., "A 45nm Logic Technology with
#: High-k+Metal Gate Transistors, Strained Silicon, 9 Cu Interconnect Layers, 193nm Dry Patterning, and
#: 100% Pb-free Packaging", IEDM 2007).
SRAM_CELL_UM2_45NM = 0.346
#: Fraction of a macro's area that is bit cells (the rest: decoders, sense amplifiers, drivers): our
#: assumption.
SRAM_ARRAY_EFFICIENCY = 0.6
#: Side of that macro: sqrt(1 Mib * 0.346 um^2 / 0.6) = 0.78 mm (the pitch of 64-bit-wide banks).
SRAM_BANK_SIDE_MM = math.sqrt(SRAM_BANK_BITS * SRAM_CELL_UM2_45NM * 1e-6 / SRAM_ARRAY_EFFICIENCY)
#: Wire capacitance at 45 nm: 335 fF/mm, linear between the 50 nm (345 fF/mm) and 35 nm (315 fF/mm)
#: entries of ``WIRE_CAP_PER_UNIT_LENGTH`` in the Accelergy wire plug-in (github.com/tanner-andrulis/
#: accelergy-wire-plugin, ``accelergywrapper.py`` at commit 0499c20e173595f9d467d59396fa05de95991ade).
WIRE_FF_PER_MM_45NM = 345.0 + (315.0 - 345.0) * (45 - 50) / (35 - 50)
#: Supply voltage: the ``voltage: 1V`` of the 45 nm components in the exercises' architectures
#: (``exercises/accelergy/01_primitive_architecture_ERT/ref-output/flattened_architecture.yaml``).
VDD_45NM = 1.0
#: Fraction of wire bits that toggle per transfer: 0.5, random data (our assumption; the wire plug-in
#: defaults to 0.15, which would make large SRAMs cheaper still).
WIRE_ACTIVITY = 0.5
#: Energy to move one bit 1 mm: activity * C * V^2 = 0.5 * 0.335 pF * 1 V^2 = 0.1675 pJ (no repeater
#: overhead: repeated wires cost more, low-swing ones less).
WIRE_PJ_PER_BIT_MM = WIRE_ACTIVITY * WIRE_FF_PER_MM_45NM * 1e-3 * VDD_45NM**2
#: H-tree energy per bit per pitch of a 64-bit-wide bank: 0.1675 pJ/bit/mm * 0.78 mm = 0.130 pJ.
SRAM_WIRE_PJ_PER_BIT_PER_BANK = WIRE_PJ_PER_BIT_MM * SRAM_BANK_SIDE_MM


def _pj_per_bit(depth: float) -> float:
    """Per-bit access energy of an unbanked memory of ``depth`` rows (``depth <= SRAM_BANK_DEPTH``)."""
    x = math.log(depth)
    xs, ys = _KNOT_LOG_DEPTH, _KNOT_LOG_PJ_PER_BIT
    i = 0
    while i < len(xs) - 2 and x > xs[i + 1]:
        i += 1
    slope = (ys[i + 1] - ys[i]) / (xs[i + 1] - xs[i])
    return math.exp(ys[i] + slope * (x - xs[i]))


def _check_bits(name: str, value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number of bits, got {value!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a finite number of bits > 0, got {value!r}")
    return v


def accelergy45_sram_pj(capacity_bits: float, access_bits: float) -> float:
    """Energy (pJ) of one ``access_bits``-bit access to an SRAM/register file of ``capacity_bits`` bits,
    45 nm (the law of the module docstring)."""
    c = _check_bits("capacity_bits", capacity_bits)
    w = _check_bits("access_bits", access_bits)
    if c < w:
        raise ValueError(f"an access of {access_bits} bits is wider than the whole memory ({capacity_bits} bits)")
    depth = c / w
    if depth <= SRAM_BANK_DEPTH:
        return w * _pj_per_bit(depth)
    pitch_mm = SRAM_BANK_SIDE_MM * math.sqrt(min(w, SRAM_BANK_WIDTH) / SRAM_BANK_WIDTH)
    wire = WIRE_PJ_PER_BIT_MM * pitch_mm * (math.sqrt(depth / SRAM_BANK_DEPTH) - 1.0)
    return w * (_pj_per_bit(SRAM_BANK_DEPTH) + wire)


def sram_energy_pj(words: float, word_bits: int = LEGACY_WORD_BITS) -> float:
    """Legacy helper: one ``word_bits``-bit access to an SRAM of ``words`` such words (``accelergy45``)."""
    w = _check_bits("words", words)
    return accelergy45_sram_pj(w * word_bits, word_bits)


# --- the MAC law ------------------------------------------------------------------------------------

#: Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014, 45 nm: 32-bit integer
#: multiply 3.1 pJ (8-bit: 0.2 pJ), i.e. ~3.0e-3 pJ per bit_a*bit_b (array multiplier area ~ a*b)...
HOROWITZ_MULT_PJ_PER_BIT2 = 3.1 / (32 * 32)
#: ... and 32-bit integer add 0.1 pJ (8-bit: 0.03 pJ), ~3.1e-3 pJ per bit of a ripple/prefix adder.
HOROWITZ_ADD_PJ_PER_BIT = 0.1 / 32


def _horowitz_mac_pj(bits_a: float, bits_b: float) -> float:
    """Multiplier of bits_a x bits_b plus an accumulator adder as wide as the product (bits_a + bits_b)."""
    return HOROWITZ_MULT_PJ_PER_BIT2 * bits_a * bits_b + HOROWITZ_ADD_PJ_PER_BIT * (bits_a + bits_b)


#: Scale from Horowitz's bare arithmetic to Accelergy's 16-bit ``intmac`` (2.2 pJ, Eyeriss-like ERT; it
#: includes pipeline registers and control): 2.2 / 0.875 = 2.51.
MAC_SCALE = ACCELERGY45_MAC_ANCHORS[0].pj / _horowitz_mac_pj(16, 16)


def accelergy45_mac_pj(bits_a: float, bits_b: float) -> float:
    """Energy (pJ) of one bits_a x bits_b multiply-accumulate, 45 nm: Horowitz's multiplier (~a*b) and
    adder (~a+b) laws scaled to Accelergy's 16-bit intmac (exactly 2.2 pJ at 16 x 16)."""
    a = _check_bits("bits_a", bits_a)
    b = _check_bits("bits_b", bits_b)
    return MAC_SCALE * _horowitz_mac_pj(a, b)


# --- the on-chip network ----------------------------------------------------------------------------

#: Per bit delivered over the PE array's network: not tabulated in the Eyeriss-like ERT; we take Eyeriss's
#: array : RF energy ratio 2 : 1 (Chen et al., "Eyeriss", ISCA 2016, Fig. 7) times the 12 x 16 ifmap
#: spad's per-bit energy (0.237 pJ / 16 bits).
NOC_PJ_PER_BIT = 2.0 * ACCELERGY45_SRAM_ANCHORS[0].read_pj / ACCELERGY45_SRAM_ANCHORS[0].width

#: Ratio tables have one L1 and one L2 figure and no size law: :meth:`EnergyTable.sram_pj` charges the L1
#: figure up to this capacity and the L2 figure above it. 8 KiB is our choice, about the geometric mean of
#: Eyeriss's 0.5 KB register files and 108 KB global buffer (Chen et al., ISCA 2016).
RATIO_L1_MAX_BITS = 8 * 1024 * 8


@dataclass(frozen=True)
class EnergyTable:
    """Per-access energies. ``mac``/``l1``/``noc``/``l2``/``dram`` are per 16-bit word
    (:data:`LEGACY_WORD_BITS`); ``l1``/``l2`` are fixed unless ``size_law`` is set, in which case
    :meth:`l1_access`/:meth:`l2_access` follow :func:`accelergy45_sram_pj` of the buffer's size."""

    name: str
    mac: float
    l1: float
    noc: float
    l2: float
    dram: float
    size_law: bool = False
    unit: str = "pJ"
    source: str = ""

    # --- legacy interface: 16-bit words, one word per access ----------------------------------------
    def l1_access(self, words: float) -> float:
        return sram_energy_pj(words) if self.size_law else self.l1

    def l2_access(self, words: float) -> float:
        return sram_energy_pj(words) if self.size_law else self.l2

    # --- storage-hierarchy interface ----------------------------------------------------------------
    def sram_pj(self, capacity_bits: float, access_bits: float) -> float:
        """One ``access_bits``-bit access to an SRAM/register file of ``capacity_bits`` bits. Ratio
        tables: their L1 figure (capacity <= :data:`RATIO_L1_MAX_BITS`) or L2 figure, times
        ``access_bits / 16`` (our assumption: their ratios are for 16-bit words, energy linear in width)."""
        if self.size_law:
            return accelergy45_sram_pj(capacity_bits, access_bits)
        c = _check_bits("capacity_bits", capacity_bits)
        w = _check_bits("access_bits", access_bits)
        if c < w:
            raise ValueError(f"an access of {access_bits} bits is wider than the whole memory ({capacity_bits} bits)")
        return (self.l1 if c <= RATIO_L1_MAX_BITS else self.l2) * w / LEGACY_WORD_BITS

    def dram_pj(self, access_bits: float) -> float:
        """One ``access_bits``-bit DRAM access: the per-bit DRAM energy times the bits (ratio tables:
        their DRAM figure per 16-bit word, scaled likewise)."""
        return self.dram * _check_bits("access_bits", access_bits) / LEGACY_WORD_BITS

    def noc_pj(self, bits: float) -> float:
        """``bits`` delivered over the PE array's network (linear in bits)."""
        return self.noc * _check_bits("bits", bits) / LEGACY_WORD_BITS

    def mac_pj(self, bits_a: float, bits_b: float) -> float:
        """One bits_a x bits_b MAC. Ratio tables: their 16-bit MAC figure times ``bits_a*bits_b / 256``
        (our assumption: multiplier energy ~ operand-width product, as in Horowitz ISSCC 2014)."""
        if self.size_law:
            return accelergy45_mac_pj(bits_a, bits_b)
        a = _check_bits("bits_a", bits_a)
        b = _check_bits("bits_b", bits_b)
        return self.mac * a * b / (LEGACY_WORD_BITS * LEGACY_WORD_BITS)


ACCELERGY45 = EnergyTable(
    name="accelergy45",
    mac=ACCELERGY45_MAC_ANCHORS[0].pj,  # 16-bit intmac, Eyeriss-like ERT (45 nm): 2.2 pJ.
    l1=ACCELERGY45_SRAM_ANCHORS[0].read_pj,  # unused (size law); 12 x 16-bit ifmap spad: 0.237 pJ.
    noc=NOC_PJ_PER_BIT * LEGACY_WORD_BITS,  # 2 x the ifmap spad's 0.237 pJ (Eyeriss ISCA'16 ratio): 0.474 pJ.
    # Unused (size law): 128 KB shared_glb, 52.612 pJ per 64-bit (4-word) access, per 16-bit word.
    l2=ACCELERGY45_SRAM_ANCHORS[3].read_pj * LEGACY_WORD_BITS / ACCELERGY45_SRAM_ANCHORS[3].width,
    dram=DRAM_PJ_PER_BIT * LEGACY_WORD_BITS,  # LPDDR4, 8 pJ/bit (Eyeriss-like ERT): 128 pJ per 16-bit word.
    size_law=True,
    unit="pJ",
    source=f"Accelergy ERTs of {EXERCISES_REPO}@{EXERCISES_COMMIT[:7]}, 45 nm; banked beyond 16384 rows",
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
