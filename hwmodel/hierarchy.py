"""Architectures as storage hierarchies (Timeloop's model): levels from DRAM inward, fanouts between them.

A :class:`Hierarchy` is an ordered tuple of :class:`StorageLevel` (``levels[0]`` is DRAM). Each level says
which tensors it may keep (the others bypass it), its capacity per instance (shared or per tensor), the
stored width of each tensor, its vector (block) size, port bandwidths, multiple buffering and per-action
energies; a level may have a spatial :class:`Fanout` below it (1 to 3 axes, each with the dims it may
unroll). The MAC at the bottom has per-operand bit widths and an energy per operation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hwmodel import nestkernel as nk
from hwmodel.layer import DIMS, TENSORS

UNLIMITED = math.inf


@dataclass(frozen=True)
class Fanout:
    """Spatial instances below a level: ``axes`` sizes (1-3) and, per axis, the dims it may unroll."""

    axes: tuple[int, ...]
    connectivity: tuple[tuple[str, ...], ...]
    systolic: bool = False

    def __post_init__(self) -> None:
        axes = tuple(self.axes)
        if not 1 <= len(axes) <= nk.MAX_AXES:
            raise ValueError(f"Fanout.axes must have 1 to {nk.MAX_AXES} sizes, got {list(axes)}")
        for a in axes:
            if isinstance(a, bool) or not isinstance(a, (int, np.integer)) or not 1 <= a <= 2**20:
                raise ValueError(f"Fanout.axes sizes must be integers in [1, 2**20], got {list(axes)}")
        conn = tuple(tuple(axis) for axis in self.connectivity)
        if len(conn) != len(axes):
            raise ValueError(f"Fanout.connectivity needs one entry per axis ({len(axes)}), got {len(conn)}")
        for a, axis in enumerate(conn):
            if not axis:
                raise ValueError(f"Fanout.connectivity[{a}] names no dim; list the dims axis {a} may unroll")
            for d in axis:
                if d not in DIMS:
                    raise ValueError(f"Fanout.connectivity[{a}] has unknown dim {d!r}; allowed: {', '.join(DIMS)}")
        object.__setattr__(self, "axes", tuple(int(a) for a in axes))
        object.__setattr__(self, "connectivity", conn)

    @property
    def size(self) -> int:
        return math.prod(self.axes)


@dataclass(frozen=True)
class StorageLevel:
    """One storage level. Energies are pJ per *vector* access of ``block_size`` words of ``word_bits``.

    ``tensor_bits`` (weights, inputs, outputs) default to ``word_bits``; a tensor stored wider (32-bit
    partial sums) occupies and moves proportionally more. ``capacity_bits`` is per instance (``None``:
    unbounded, DRAM); ``partition_bits`` gives per-tensor capacities instead. ``stall``: transfers into
    this level stall compute (a single-buffered level in our own family); Timeloop overlaps them.
    """

    name: str
    keeps: tuple[str, ...] = TENSORS
    capacity_bits: float | None = None
    partition_bits: tuple[float, float, float] | None = None
    word_bits: int = 16
    tensor_bits: tuple[int, int, int] | None = None
    block_size: int = 1
    read_bandwidth: float = UNLIMITED
    write_bandwidth: float = UNLIMITED
    network_bandwidth: float = UNLIMITED
    multiple_buffering: int = 1
    stall: bool = False
    read_pj: float = 0.0
    fill_pj: float = 0.0
    update_pj: float = 0.0
    noc_pj: float = 0.0
    fanout: Fanout | None = None
    technology: str = "SRAM"

    def __post_init__(self) -> None:
        where = f"level {self.name!r}"
        for t in self.keeps:
            if t not in TENSORS:
                raise ValueError(f"{where}: keeps has unknown tensor {t!r}; allowed: {', '.join(TENSORS)}")
        if self.capacity_bits is not None and not (0 < self.capacity_bits < math.inf):
            raise ValueError(f"{where}: capacity_bits must be a positive finite number or None (unbounded)")
        if self.partition_bits is not None:
            if len(self.partition_bits) != 3 or min(self.partition_bits) < 0:
                raise ValueError(f"{where}: partition_bits must be 3 capacities (weights, inputs, outputs) >= 0")
        bits = self.tensor_bits or (self.word_bits,) * 3
        if len(bits) != 3 or min(bits) < 1 or self.word_bits < 1:
            raise ValueError(f"{where}: word_bits / tensor_bits must be >= 1")
        object.__setattr__(self, "tensor_bits", tuple(int(b) for b in bits))
        if self.block_size < 1:
            raise ValueError(f"{where}: block_size must be >= 1 word")
        for name in ("read_bandwidth", "write_bandwidth", "network_bandwidth"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{where}: {name} must be > 0 words/cycle (inf: unlimited)")
        if self.multiple_buffering not in (1, 2):
            raise ValueError(f"{where}: multiple_buffering must be 1 or 2")
        for name in ("read_pj", "fill_pj", "update_pj", "noc_pj"):
            v = getattr(self, name)
            if not (0 <= v < math.inf):
                raise ValueError(f"{where}: {name} must be a finite energy >= 0 pJ")

    @property
    def bounded(self) -> bool:
        return self.capacity_bits is not None or self.partition_bits is not None


@dataclass(frozen=True)
class Hierarchy:
    """Storage levels outermost first (``levels[0]`` = DRAM, keeps every tensor) and the MAC."""

    name: str
    levels: tuple[StorageLevel, ...]
    mac_pj: float
    mac_bits: tuple[int, int] = (16, 16)
    #: products per cycle of each MAC (fused narrow multipliers adding along the reduction dims C, R, S) and
    #: cycles per product (a product wider than the datapath); see :mod:`hwmodel.precision`.
    mac_lanes: int = 1
    mac_passes: int = 1
    source: str = ""
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        levels = tuple(self.levels)
        if not 1 <= len(levels) <= nk.MAX_LEVELS:
            raise ValueError(f"hierarchy {self.name!r} needs 1 to {nk.MAX_LEVELS} storage levels, got {len(levels)}")
        if levels[0].bounded or set(levels[0].keeps) != set(TENSORS):
            raise ValueError(
                f"hierarchy {self.name!r}: levels[0] ({levels[0].name}) must be an unbounded DRAM keeping every tensor"
            )
        names = [lv.name for lv in levels]
        if len(set(names)) != len(names):
            raise ValueError(f"hierarchy {self.name!r}: level names must be unique, got {names}")
        object.__setattr__(self, "levels", levels)
        if min(self.mac_lanes, self.mac_passes) < 1:
            raise ValueError(f"hierarchy {self.name!r}: mac_lanes and mac_passes must be >= 1")

    @property
    def level_names(self) -> tuple[str, ...]:
        return tuple(lv.name for lv in self.levels)

    def index(self, name: str) -> int:
        try:
            return self.level_names.index(name)
        except ValueError:
            raise ValueError(f"hierarchy {self.name!r} has no level {name!r}; levels: {', '.join(self.level_names)}") from None

    @property
    def num_macs(self) -> int:
        return math.prod(lv.fanout.size for lv in self.levels if lv.fanout is not None)

    def instances(self, level: int) -> int:
        """Instances of ``levels[level]`` (product of the fanouts above it)."""
        return math.prod(lv.fanout.size for lv in self.levels[:level] if lv.fanout is not None)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """Flat kernel arrays ``(arch_int, arch_float, conn, e_mac)`` (see :mod:`hwmodel.nestkernel`)."""
        ai = np.zeros((nk.MAX_LEVELS, nk.AI_SIZE), dtype=np.int64)
        af = np.zeros((nk.MAX_LEVELS, nk.AF_SIZE), dtype=np.float64)
        conn = np.zeros((nk.MAX_LEVELS, nk.MAX_AXES, nk.NUM_DIMS), dtype=np.int64)
        for l, lv in enumerate(self.levels):
            for t, name in enumerate(TENSORS):
                ai[l, nk.AI_KEEP_W + t] = int(name in lv.keeps)
            ai[l, nk.AI_PARTITIONED] = int(lv.partition_bits is not None)
            ai[l, nk.AI_BOUNDED] = int(lv.bounded)
            ai[l, nk.AI_MULTIBUF] = lv.multiple_buffering
            ai[l, nk.AI_STALL] = int(lv.stall)
            ai[l, nk.AI_BLOCK] = lv.block_size
            ai[l, nk.AI_MAC_LANES] = self.mac_lanes
            ai[l, nk.AI_MAC_PASSES] = self.mac_passes
            af[l, nk.AF_CAP_BITS] = lv.capacity_bits if lv.capacity_bits is not None else math.inf
            if lv.partition_bits is not None:
                af[l, nk.AF_CAP_W: nk.AF_CAP_O + 1] = lv.partition_bits
            af[l, nk.AF_BITS_W: nk.AF_BITS_O + 1] = lv.tensor_bits
            af[l, nk.AF_WORD_BITS] = lv.word_bits
            af[l, nk.AF_READ_BW] = lv.read_bandwidth
            af[l, nk.AF_WRITE_BW] = lv.write_bandwidth
            af[l, nk.AF_NET_BW] = lv.network_bandwidth
            af[l, nk.AF_E_READ] = lv.read_pj
            af[l, nk.AF_E_FILL] = lv.fill_pj
            af[l, nk.AF_E_UPDATE] = lv.update_pj
            af[l, nk.AF_E_NOC] = lv.noc_pj
            if lv.fanout is not None:
                ai[l, nk.AI_N_AXES] = len(lv.fanout.axes)
                ai[l, nk.AI_SYSTOLIC] = int(lv.fanout.systolic)
                for a, size in enumerate(lv.fanout.axes):
                    ai[l, nk.AI_AXIS0 + a] = size
                    for d in lv.fanout.connectivity[a]:
                        conn[l, a, DIMS.index(d)] = 1
        return ai, af, conn, float(self.mac_pj)
