"""The DRAM -> L2 -> PE array -> L1 accelerators of :class:`hwmodel.accelerator.Accelerator` as storage
hierarchies (one family of :class:`hwmodel.hierarchy.Hierarchy`), and their 3-level mappings as nests.

Levels: ``DRAM`` (network bandwidth = ``dram_bandwidth``), ``L2`` (the shared buffer; its fanout is the PE
array with the accelerator's connectivity; network bandwidth = ``noc_bandwidth``), then the per-PE L1:
one shared ``L1`` level, or, with ``l1_partition``, three levels ``L1.weights``, ``L1.inputs``,
``L1.outputs`` keeping one tensor each (the mapping's L1 loops sit at the innermost one, so every
partition holds the same tile). Partial sums are ``psum_bits`` wide in DRAM and L2 (capacity, traffic,
energy); L1 capacities are in entries of one element each, as the presets define them. A level that is
not double-buffered stalls compute while it is refilled.

A layer with its own precision (:class:`hwmodel.precision.LayerPrecision`) gets the same levels with its
widths: weights and inputs at their bits everywhere (packed: capacity, traffic and energy per bit), partial
sums at the layer's ``psum`` bits in DRAM and L2 and one entry each in L1, and the MAC of the accelerator's
MAC kind at those widths (energy per product, products per cycle).
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np

from hwmodel.accelerator import Accelerator
from hwmodel.hierarchy import Fanout, Hierarchy, StorageLevel
from hwmodel.layer import TENSORS
from hwmodel.mapping import Mapping
from hwmodel.nestmodel import NestMapping
from hwmodel.precision import LayerPrecision, MacOp

#: Index of the L2 level (its fanout is the PE array) and of the first L1 level.
L2_LEVEL = 1
L1_LEVEL = 2


def family_hierarchy(accel: Accelerator, precision: LayerPrecision | None = None) -> Hierarchy:
    """The storage hierarchy of ``accel`` with energies from its energy table (per word of each level), for
    operands of ``precision`` (``None``: ``word_bits`` operands, ``psum_bits`` partial sums)."""
    table = accel.energy
    wb = accel.word_bits
    if precision is None:
        outer_bits = (wb, wb, accel.psum_bits)
        l1_bits = (wb, wb, wb)
        mac = MacOp(pj=table.mac_pj(wb, wb))
    else:
        outer_bits = (precision.weights, precision.inputs, precision.psum)
        l1_bits = (precision.weights, precision.inputs, wb)
        mac = precision.mac(accel)
    e_dram = table.dram_pj(wb)
    l2_bits = accel.l2_bytes * 8
    e_l2 = table.sram_pj(max(l2_bits, wb), wb)  # (an L2 below one word is refused by the mappers, by name)
    dram = StorageLevel(
        name="DRAM", word_bits=wb, tensor_bits=outer_bits, network_bandwidth=accel.dram_bandwidth,
        read_pj=e_dram, fill_pj=e_dram, update_pj=e_dram, technology="DRAM",
    )
    l2 = StorageLevel(
        name="L2", capacity_bits=float(l2_bits), word_bits=wb, tensor_bits=outer_bits,
        network_bandwidth=accel.noc_bandwidth, multiple_buffering=2 if accel.double_buffer[1] else 1,
        stall=not accel.double_buffer[1], read_pj=e_l2, fill_pj=e_l2, update_pj=e_l2, noc_pj=table.noc_pj(wb),
        fanout=Fanout(axes=accel.array, connectivity=accel.connectivity, systolic=accel.systolic),
    )
    mb = 2 if accel.double_buffer[0] else 1
    stall = not accel.double_buffer[0]
    if accel.l1_partition is None:
        e = table.sram_pj(max(accel.l1_words, 1) * wb, wb)
        l1s = (StorageLevel(
            name="L1", capacity_bits=float(accel.l1_words * wb), word_bits=wb, tensor_bits=l1_bits,
            multiple_buffering=mb, stall=stall, read_pj=e, fill_pj=e, update_pj=e,
        ),)
    else:
        l1s = tuple(
            StorageLevel(
                name=f"L1.{t}", keeps=(t,), capacity_bits=float(words * wb), word_bits=wb, tensor_bits=l1_bits,
                multiple_buffering=mb, stall=stall, read_pj=table.sram_pj(words * wb, wb), fill_pj=table.sram_pj(words * wb, wb),
                update_pj=table.sram_pj(words * wb, wb),
            )
            for t, words in zip(TENSORS, accel.l1_partition)
        )
    return Hierarchy(
        name=accel.name, levels=(dram, l2, *l1s), mac_pj=mac.pj,
        mac_bits=(wb, wb) if precision is None else (precision.weights, precision.inputs),
        mac_lanes=mac.lanes, mac_passes=mac.passes, source=f"hwmodel.family of accelerator {accel.name}",
    )


class FamilyParams(NamedTuple):
    """Kernel arrays of an accelerator's hierarchy (see :mod:`hwmodel.nestkernel`)."""

    n_levels: int
    arch_int: np.ndarray
    arch_float: np.ndarray
    conn: np.ndarray
    e_mac: float


@lru_cache(maxsize=256)
def family_params(accel: Accelerator, precision: LayerPrecision | None = None) -> FamilyParams:
    hier = family_hierarchy(accel, precision)
    ai, af, conn, e_mac = hier.arrays()
    return FamilyParams(len(hier.levels), ai, af, conn, e_mac)


def nest_mapping(accel: Accelerator, mapping: Mapping) -> NestMapping:
    """The 3-level mapping (DRAM, L2, L1 factors and orders; array unroll) as a nest on the family hierarchy."""
    n = len(family_hierarchy(accel).levels)
    m = NestMapping.empty(n)
    m.temporal[0] = mapping.temporal[0]
    m.temporal[1] = mapping.temporal[1]
    m.temporal[n - 1] = mapping.temporal[2]
    m.order[0] = mapping.order[0]
    m.order[1] = mapping.order[1]
    m.order[n - 1] = mapping.order[2]
    m.spatial[L2_LEVEL] = mapping.spatial
    return m
