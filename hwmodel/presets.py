"""Accelerator presets (our definitions of well-known designs; every number and assumption is stated).

Array shapes, dataflows and buffer sizes follow the papers named; bandwidths are not given by those papers
at our level of abstraction and are our assumptions (words per cycle at the core clock), chosen so that
each design is compute-bound on typical convolutions.
"""

from __future__ import annotations

import re

from hwmodel.accelerator import Accelerator

#: Eyeriss v1 (Chen et al., ISSCC 2016 / JSSC 2017; ISCA 2016 for the dataflow): 12x14 PEs, row stationary,
#: 16-bit data. Per PE: 12-entry ifmap, 224-entry filter and 24-entry psum scratchpads (single-buffered:
#: the chip's spads are not ping-pong buffers, so the 12-entry ifmap spad holds a 12-entry tile); 108 KB
#: global buffer. Rows unroll filter rows R and, by PE-set folding/replication, input channels C and
#: filters K; columns unroll output rows P and filters K (the freedom Timeloop's eyeriss_like example
#: gives its mapper: arch constraints of timeloop-accelergy-exercises@27850fc3, exercise 06). Our
#: family keeps the three spads as per-tensor partitions at one level (same tile, own sizes and
#: energies) and lets the buffer hold weights, which the chip streams past it (the Timeloop file in
#: tests/fixtures/timeloop/06-* models both exactly). Assumed: 16 words/cycle between buffer and array
#: (four 64-bit buses), 4 words/cycle DRAM (one 64-bit interface, as the Timeloop example's LPDDR4).
EYERISS = Accelerator(
    name="eyeriss",
    array=(12, 14),
    connectivity=(("R", "C", "K"), ("P", "K")),
    l1_words=260,
    l1_partition=(224, 12, 24),
    l2_bytes=108 * 1024,
    noc_bandwidth=16.0,
    dram_bandwidth=4.0,
    word_bits=16,
    psum_bits=16,
    double_buffer=(False, True),
)

#: NVDLA "nv_full"-style MAC array (NVIDIA Deep Learning Accelerator, nvdla.org hardware architecture):
#: 16 output channels (K) x 16 input channels (C) MACs, weight stationary, 128 KB convolution buffer.
#: Groups G may use the K axis so grouped layers do not collapse to one row. Assumed: 64-entry shared
#: L1 per MAC cell, 32 words/cycle array feed, 16 words/cycle DRAM.
NVDLA_256 = Accelerator(
    name="nvdla-256",
    array=(16, 16),
    connectivity=(("K", "G"), ("C",)),
    l1_words=64,
    l2_bytes=128 * 1024,
    noc_bandwidth=32.0,
    dram_bandwidth=16.0,
)

#: NVDLA with a 32x32 (K x C) MAC array and 512 KB convolution buffer (the NVDLA-1024 budget of NAAS,
#: Lin et al., DAC 2021). Assumed: 64-entry L1, 64 words/cycle feed, 32 words/cycle DRAM.
NVDLA_1024 = Accelerator(
    name="nvdla-1024",
    array=(32, 32),
    connectivity=(("K", "G"), ("C",)),
    l1_words=64,
    l2_bytes=512 * 1024,
    noc_bandwidth=64.0,
    dram_bandwidth=32.0,
)

#: ShiDianNao (Du et al., ISCA 2015): 8x8 PEs, output stationary over output rows x columns (P x Q);
#: NBin 64 KB + NBout 64 KB + SB 128 KB = 256 KB on-chip buffer. Assumed: 64-entry shared PE storage,
#: 16 words/cycle array feed (8 row + 8 column), 8 words/cycle DRAM.
SHIDIANNAO = Accelerator(
    name="shidiannao",
    array=(8, 8),
    connectivity=(("P",), ("Q",)),
    l1_words=64,
    l2_bytes=256 * 1024,
    noc_bandwidth=16.0,
    dram_bandwidth=8.0,
)

#: Edge TPU-like (Google Coral; as modelled in NAAS): 64x64 weight-stationary systolic array of int8
#: MACs with 32-bit accumulation and 4 MB of on-chip memory. Rows unroll the im2col reduction C*R*S
#: (groups may take the C rows), columns output channels K. Assumed: 8-entry register file per PE,
#: 128 words/cycle edge feed (64 in + 64 out), 32 words/cycle DRAM.
EDGETPU = Accelerator(
    name="edgetpu",
    array=(64, 64),
    connectivity=(("C", "R", "S", "G"), ("K",)),
    l1_words=8,
    l2_bytes=4 * 1024 * 1024,
    noc_bandwidth=128.0,
    dram_bandwidth=32.0,
    word_bits=8,
    psum_bits=32,
    systolic=True,
)

PRESETS: dict[str, Accelerator] = {a.name: a for a in (EYERISS, NVDLA_256, NVDLA_1024, SHIDIANNAO, EDGETPU)}


def systolic(spec: str) -> Accelerator:
    """``systolic:RxC``: a SCALE-Sim-like R x C systolic array that can run ws, os and is.

    Rows may unroll C, R, S (ws/is) or P, Q (os) and groups; columns K (ws/os) or P, Q (is) and groups.
    Assumed: 8-entry register file per PE, 2 MB L2, array feed of R + C words/cycle (one per edge PE),
    DRAM max(R, C) words/cycle.
    """
    match = re.fullmatch(r"systolic:(\d+)x(\d+)", spec.strip())
    if not match:
        raise ValueError(f"systolic accelerator spec must look like 'systolic:32x32', got {spec!r}")
    rows, cols = int(match.group(1)), int(match.group(2))
    if rows < 1 or cols < 1:
        raise ValueError(f"systolic array sizes must be >= 1, got {rows}x{cols}")
    return Accelerator(
        name=f"systolic-{rows}x{cols}",
        array=(rows, cols),
        connectivity=(("C", "R", "S", "P", "Q", "G"), ("K", "P", "Q", "G")),
        l1_words=8,
        l2_bytes=2 * 1024 * 1024,
        noc_bandwidth=float(rows + cols),
        dram_bandwidth=float(max(rows, cols)),
        systolic=True,
    )
