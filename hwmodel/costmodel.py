"""The analytical cost model of the DRAM -> L2 -> PE array -> L1 accelerators: a pure function of
(layer, accelerator, mapping), compiled with numba.

Since hwmodel v2 these accelerators are one family of storage hierarchies (:mod:`hwmodel.family`) and
every count comes from the storage-hierarchy kernel (:mod:`hwmodel.nestkernel`), whose semantics are
Timeloop's for dense tensors (checked against Timeloop's published reference outputs):

* A tile of a tensor at a level is the projection of the loop bounds at and below it; the input tile spans
  ``(p-1)*stride + (r-1)*dilation + 1`` rows (bounding box) and likewise columns. Padded iterations (from
  ceil-div factors) take cycles but are neither MACs nor accesses.
* Fills over time are deltas: a level receives only what its new tile adds to its previous one when
  exactly one data-space dim slid (and kept its direction), the whole tile on any other change, nothing
  when the tile did not change (loops that do not index the tensor keep it resident).
* L2 reads = the PEs' fills merged over PEs with identical tiles (multicast; diagonal input reuse within
  the array); outputs follow Timeloop's read-write convention (``updates`` = partial sums written back,
  merged by spatial reduction; ``reads = updates - distinct outputs``; fills as for the other tensors).
* ``compute_cycles`` = product of all temporal bounds (+ per fold the systolic fill/drain skew, calibrated
  on SCALE-Sim: ``2*Sr + Sc + T - 2`` for ws/is and ``Sr + Sc + T - 2`` for os per fold).
* ``cycles`` = max(compute, NoC words / NoC bandwidth, DRAM words / DRAM bandwidth) for double-buffered
  levels; a single-buffered level's transfer time is added instead. Partial sums move at ``psum_bits``.
* Energy = accesses x per-access energy of each level (word-width and size aware, :mod:`hwmodel.energy`)
  + MACs x e_MAC(word bits) + words delivered to the PEs x e_NoC.
* Valid only when all tiles fit: L1 per PE (shared, or per-tensor partitions, in entries), L2 in bits
  (partial sums at ``psum_bits``), each twice when double-buffered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hwmodel import nestkernel as nk
from hwmodel.accelerator import Accelerator
from hwmodel.family import family_params
from hwmodel.jit import load_numba
from hwmodel.precision import resolve_precision
from hwmodel.layer import DIMS, TENSORS, Layer
from hwmodel.mapping import Mapping
from hwmodel.nestmodel import layer_params

#: Batches smaller than this are evaluated on one thread (thread start-up costs more than it saves).
PARALLEL_MIN_BATCH = 4096
#: Columns of the metrics array returned by :func:`evaluate_batch`.
METRICS: tuple[str, ...] = nk.FAMILY_METRICS
M_CYCLES, M_COMPUTE, M_ENERGY, M_EDP, M_UTIL = nk.FM_CYCLES, nk.FM_COMPUTE, nk.FM_ENERGY, nk.FM_EDP, nk.FM_UTIL
M_E_MAC, M_E_L1, M_E_NOC, M_E_L2, M_E_DRAM = nk.FM_E_MAC, nk.FM_E_L1, nk.FM_E_NOC, nk.FM_E_L2, nk.FM_E_DRAM
M_E_W, M_E_I, M_E_O, M_MACS = nk.FM_E_W, nk.FM_E_I, nk.FM_E_O, nk.FM_MACS
ENERGY_LEVELS: tuple[str, ...] = ("mac", "l1", "noc", "l2", "dram")
#: Columns of the per-tensor access counts (words).
ACCESS_KINDS: tuple[str, ...] = nk.FAMILY_ACCESS
#: Why a mapping is invalid (0 = valid).
INVALID_REASONS: tuple[str, ...] = nk.FAMILY_INVALID


def evaluate_batch(
    layer: Layer,
    accel: Accelerator,
    temporal: np.ndarray,
    spatial: np.ndarray,
    order: np.ndarray,
    parallel: bool | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluate a batch of mappings given as arrays ``temporal[B,3,8]``, ``spatial[B,3,8]``, ``order[B,3,8]``.

    Returns ``(codes[B], metrics[B, len(METRICS)], counts[B, 3, len(ACCESS_KINDS)])``; ``codes`` index
    :data:`INVALID_REASONS` (0 = valid; invalid rows hold ``inf`` metrics). ``parallel=None`` uses all numba
    threads for batches of at least :data:`PARALLEL_MIN_BATCH` mappings.
    """
    if parallel is None:
        parallel = len(temporal) >= PARALLEL_MIN_BATCH
    fp = family_params(accel, resolve_precision(layer, accel))
    kernel = nk.family_evaluate_batch_threads if parallel else nk.family_evaluate_batch
    return kernel(
        layer_params(layer),
        np.ascontiguousarray(temporal, dtype=np.int64),
        np.ascontiguousarray(spatial, dtype=np.int64),
        np.ascontiguousarray(order, dtype=np.int64),
        fp.n_levels, fp.arch_int, fp.arch_float, fp.conn, fp.e_mac,
    )


@dataclass
class Cost:
    """Cost of one instance of a layer under one mapping."""

    valid: bool
    reason: str
    macs: int
    compute_cycles: float
    cycles: float
    energy_pj: float
    edp: float
    utilization: float
    energy_breakdown: dict[str, float] = field(default_factory=dict)
    energy_by_tensor: dict[str, float] = field(default_factory=dict)
    accesses: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "reason": self.reason,
            "macs": self.macs,
            "compute_cycles": self.compute_cycles,
            "cycles": self.cycles,
            "energy_pj": self.energy_pj,
            "edp": self.edp,
            "utilization": self.utilization,
            "energy_breakdown": self.energy_breakdown,
            "energy_by_tensor": self.energy_by_tensor,
            "accesses": self.accesses,
        }


def cost_from_row(code: int, metrics: np.ndarray, counts: np.ndarray, macs: int) -> Cost:
    if code != 0:
        inf = math.inf
        return Cost(False, INVALID_REASONS[code], macs, inf, inf, inf, inf, 0.0)
    return Cost(
        valid=True,
        reason="valid",
        macs=macs,
        compute_cycles=float(metrics[M_COMPUTE]),
        cycles=float(metrics[M_CYCLES]),
        energy_pj=float(metrics[M_ENERGY]),
        edp=float(metrics[M_EDP]),
        utilization=float(metrics[M_UTIL]),
        energy_breakdown={lvl: float(metrics[M_E_MAC + i]) for i, lvl in enumerate(ENERGY_LEVELS)},
        energy_by_tensor={t: float(metrics[M_E_W + i]) for i, t in enumerate(TENSORS)},
        accesses={t: {k: int(counts[i, j]) for j, k in enumerate(ACCESS_KINDS)} for i, t in enumerate(TENSORS)},
    )


def evaluate(layer: Layer, accel: Accelerator, mapping: Mapping) -> Cost:
    """Cost of one instance of ``layer`` on ``accel`` under ``mapping``.

    Raises ``ValueError`` (naming the field) when the mapping does not cover the layer or unrolls what the
    array cannot; a mapping whose tiles overflow a buffer returns ``Cost(valid=False, reason=...)``.
    """
    mapping.check(layer, accel)
    codes, metrics, counts = evaluate_batch(
        layer, accel, mapping.temporal[None], mapping.spatial[None], mapping.order[None], parallel=False
    )
    return cost_from_row(int(codes[0]), metrics[0], counts[0], layer.macs)


def set_num_threads(n: int) -> None:
    """Threads numba uses for batch evaluation."""
    load_numba().set_num_threads(n)


__all__ = [
    "ACCESS_KINDS", "Cost", "DIMS", "ENERGY_LEVELS", "INVALID_REASONS", "METRICS",
    "evaluate", "evaluate_batch", "layer_params", "set_num_threads",
]
