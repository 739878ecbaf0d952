"""The analytical cost model: a pure function of (layer, accelerator, mapping), compiled with numba.

Semantics (Timeloop-consistent, see ``shared/ARCHITECTURE.md``). Each dim ``d`` is a mixed-radix number with
four digits, outermost first: DRAM loop, L2 loop, spatial unroll, L1 loop; iterations whose index is ``>= d``
are padding (they take cycles, never MACs or accesses).

* A tile of a tensor at a level is the projection of the loop bounds at and below it; the input tile spans
  ``(p-1)*stride + (r-1)*dilation + 1`` rows (bounding box, halo included) and likewise columns.
* A level keeps a tensor's tile across the innermost run of loops directly above it that do not index the
  tensor (loops of bound 1 are transparent); any other loop above it moving brings a new tile (a *fill*).
* Each PE fills its own L1. The L2 serves, per fill, the union of the PEs' tiles: PEs that differ only in a
  dim that does not index the tensor share one read (multicast); inputs of PEs adjacent in P/R or Q/S
  share their overlap (sliding-window reuse), i.e. L2 reads the projection of the combined factors.
* Every MAC reads its weight and input from L1 and updates its partial sum in L1. An output element's first
  update ever is a write; every later one a read-modify-write. When an output tile leaves a level it is
  written to the parent; when it comes back, its partial sums are read from the parent again (one PE of a
  spatial-reduction group receives them; the others start at zero and the array adds the partials).
* ``compute_cycles`` = product of all temporal bounds (+ per fold ``sum(array) - axes`` cycles of pipeline
  skew, plus ``array[0]`` to preload the stationary operand unless it is the outputs, on systolic arrays:
  this reproduces SCALE-Sim v2/v3's ``2*Sr + Sc + T - 2`` (ws, is) and ``Sr + Sc + T - 2`` (os) per fold).
  A fold is one fill of the most stationary tensor's L1 tiles.
* ``cycles`` = max(compute, NoC traffic / NoC bandwidth, DRAM traffic / DRAM bandwidth) for double-buffered
  levels; a single-buffered level's transfer time is added instead (no overlap).
* Energy = sum of accesses x per-access energy + MACs x e_MAC + words delivered over the NoC x e_NoC.
* Valid only when all tiles fit: L1 per PE (shared, or per-tensor partitions, in entries), L2 in bytes
  (partial sums at ``psum_bits``), each twice when double-buffered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np
from numba import njit, prange

from hwmodel.accelerator import Accelerator
from hwmodel.layer import DIMS, RELEVANCE, TENSORS, Layer
from hwmodel.mapping import Mapping

#: Columns of the metrics array returned by :func:`evaluate_batch`.
METRICS: tuple[str, ...] = (
    "cycles", "compute_cycles", "energy", "edp", "utilization",
    "e_mac", "e_l1", "e_noc", "e_l2", "e_dram",
    "e_weights", "e_inputs", "e_outputs", "macs",
)
M_CYCLES, M_COMPUTE, M_ENERGY, M_EDP, M_UTIL = 0, 1, 2, 3, 4
M_E_MAC, M_E_L1, M_E_NOC, M_E_L2, M_E_DRAM = 5, 6, 7, 8, 9
M_E_W, M_E_I, M_E_O, M_MACS = 10, 11, 12, 13
ENERGY_LEVELS: tuple[str, ...] = ("mac", "l1", "noc", "l2", "dram")
#: Columns of the per-tensor access counts (words).
ACCESS_KINDS: tuple[str, ...] = ("l1_reads", "l1_writes", "noc", "l2_reads", "l2_writes", "dram_reads", "dram_writes")
#: Why a mapping is invalid (0 = valid).
INVALID_REASONS: tuple[str, ...] = (
    "valid",
    "factors do not cover the layer",
    "spatial unroll exceeds an axis or its connectivity",
    "L1 tiles exceed the L1 capacity",
    "L2 tiles exceed the L2 capacity",
)

# Layer parameter vector: 8 dims, stride h/w, dilation h/w.
_LP = 12
# Accelerator int vector: n_axes, systolic, partitioned, l1_words, part_w, part_i, part_o, db_l1, db_l2.
_AI = 9
# Accelerator float vector: l2_bytes, word_bytes, psum_bytes, noc_bw, dram_bw, e_mac, e_l1_w, e_l1_i, e_l1_o,
# e_noc, e_l2, e_dram.
_AF = 12

_N, _G, _K, _C, _P, _Q, _R, _S = range(8)
_W_T, _I_T, _O_T = 0, 1, 2


def layer_params(layer: Layer) -> np.ndarray:
    return np.array([*layer.dim_array.tolist(), *layer.stride, *layer.dilation], dtype=np.int64)


def accel_params(accel: Accelerator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Flat arrays of an accelerator for the kernel: (array sizes[3], connectivity mask[3, 8], ints, floats)."""
    arr = np.ones(3, dtype=np.int64)
    arr[: len(accel.array)] = accel.array
    part = accel.l1_partition or (0, 0, 0)
    ai = np.array(
        [len(accel.array), int(accel.systolic), int(accel.l1_partition is not None), accel.l1_words, *part,
         int(accel.double_buffer[0]), int(accel.double_buffer[1])],
        dtype=np.int64,
    )
    e = accel.energy
    l1 = accel.l1_access_energy()
    af = np.array(
        [accel.l2_bytes, accel.word_bytes, accel.psum_bytes, accel.noc_bandwidth, accel.dram_bandwidth,
         e.mac, l1[0], l1[1], l1[2], e.noc, accel.l2_access_energy(), e.dram],
        dtype=np.float64,
    )
    return arr, accel.connectivity_mask(), ai, af


@njit(cache=True, inline="always")
def _count_valid(dim, f0, f1, f2, f3, c0, c1, c2, c3):
    """Number of tuples of the counted digits (uncounted ones held at 0) whose index is below ``dim``."""
    w0 = f1 * f2 * f3
    w1 = f2 * f3
    w2 = f3
    rem = dim
    total = 0
    # inner products of counted radices
    m3 = 1
    m2 = f3 if c3 else 1
    m1 = m2 * (f2 if c2 else 1)
    m0 = m1 * (f1 if c1 else 1)
    for j in range(4):
        if j == 0:
            c, f, w, m = c0, f0, w0, m0
        elif j == 1:
            c, f, w, m = c1, f1, w1, m1
        elif j == 2:
            c, f, w, m = c2, f2, w2, m2
        else:
            c, f, w, m = c3, f3, 1, m3
        if not c:
            continue
        q = rem // w
        if q >= f:
            return total + f * m
        total += q * m
        rem -= q * w
        if rem == 0:
            return total
    return total + (1 if rem > 0 else 0)


@njit(cache=True, inline="always")
def _refill_mask(order, fac, rel, lvl, t):
    """Bitmask of the dims whose temporal loop at ``lvl`` refills ``t``'s tile below it (the innermost run of loops
    not indexing ``t`` is excluded), and whether a loop indexing ``t`` ended that run."""
    m = 255
    for pos in range(7, -1, -1):
        d = order[lvl, pos]
        if fac[lvl, d] > 1:
            if rel[t, d]:
                return m, True
            m &= ~(1 << d)
    return m, False


@njit(cache=True)
def _transfer(t, lp, fac, rel, m0, m1, c2, tile_from):
    """Words moved into a level for tensor ``t``, summed over all fills (valid data only).

    ``fac[l, d]``: radices (0 DRAM, 1 L2, 2 spatial, 3 L1). Digits ``>= tile_from`` form the tile. For dims
    that do not index ``t``, bit ``d`` of ``m0`` / ``m1`` says whether the DRAM / L2 digit counts as separate
    fills, ``c2`` whether the spatial digit does (each PE its own copy) or not (multicast).
    """
    total = 1.0
    for d in range(8):
        if rel[t, d]:
            continue
        total *= _count_valid(lp[d], fac[0, d], fac[1, d], fac[2, d], fac[3, d],
                              (m0 >> d) & 1, (m1 >> d) & 1, c2, 0)
        if total == 0.0:
            return 0.0
    if t == _I_T:
        total *= lp[_N] * lp[_G] * lp[_C]
        for k in range(2):
            dp = _P + k
            dr = _R + k
            st = lp[8 + k]
            dl = lp[10 + k]
            bp = 1
            br = 1
            for l in range(tile_from, 4):
                bp *= fac[l, dp]
                br *= fac[l, dr]
            np_ = (lp[dp] + bp - 1) // bp
            nr = (lp[dr] + br - 1) // br
            total *= st * (lp[dp] - np_) * nr + dl * (lp[dr] - nr) * np_ + np_ * nr
    else:
        for d in range(8):
            if rel[t, d]:
                total *= lp[d]
    return total


@njit(cache=True, inline="always")
def _tile_bounds(lp, fac, tile_from, b):
    """Largest extent per dim of a tile formed by digits ``>= tile_from`` (written into ``b``)."""
    for d in range(8):
        v = 1
        for l in range(tile_from, 4):
            v *= fac[l, d]
        b[d] = min(v, lp[d])


@njit(cache=True, inline="always")
def _tile_words(t, lp, b):
    """Words of tensor ``t``'s tile with extents ``b``."""
    if t == _W_T:
        return b[_G] * b[_K] * b[_C] * b[_R] * b[_S]
    if t == _O_T:
        return b[_N] * b[_G] * b[_K] * b[_P] * b[_Q]
    h = (b[_P] - 1) * lp[8] + (b[_R] - 1) * lp[10] + 1
    w = (b[_Q] - 1) * lp[9] + (b[_S] - 1) * lp[11] + 1
    return b[_N] * b[_G] * b[_C] * h * w


@njit(cache=True)
def _evaluate_one(lp, temporal, spatial, order, arr, conn, ai, af, rel, metrics, counts, fac, b, mk, ev):
    """Evaluate one mapping; fills ``metrics`` and ``counts`` and returns the validity code.

    ``fac`` (int64[4, 8]), ``b`` (int64[8]), ``mk`` (int64[9]) and ``ev`` (float64[3]) are scratch space;
    ``ev`` ends up holding the padded fill events of each tensor's L1 tiles (folds on a systolic array).
    """
    n_axes = ai[0]
    for d in range(8):
        sp = 1
        for a in range(3):
            s = spatial[a, d]
            if s > 1 and (a >= n_axes or conn[a, d] == 0):
                return 2
            sp *= s
        fac[0, d] = temporal[0, d]
        fac[1, d] = temporal[1, d]
        fac[2, d] = sp
        fac[3, d] = temporal[2, d]
        if fac[0, d] * fac[1, d] * sp * fac[3, d] < lp[d]:
            return 1
    for a in range(3):
        prod = 1
        for d in range(8):
            prod *= spatial[a, d]
        if prod > arr[a]:
            return 2

    # --- capacity ---
    m1 = 2 if ai[7] else 1
    m2 = 2 if ai[8] else 1
    _tile_bounds(lp, fac, 3, b)
    l1w = _tile_words(_W_T, lp, b)
    l1i = _tile_words(_I_T, lp, b)
    l1o = _tile_words(_O_T, lp, b)
    if ai[2]:
        if l1w * m1 > ai[4] or l1i * m1 > ai[5] or l1o * m1 > ai[6]:
            return 3
    elif (l1w + l1i + l1o) * m1 > ai[3]:
        return 3
    _tile_bounds(lp, fac, 1, b)
    l2b = (_tile_words(_W_T, lp, b) + _tile_words(_I_T, lp, b)) * af[1] + _tile_words(_O_T, lp, b) * af[2]
    if l2b * m2 > af[0]:
        return 4

    # --- which outer loops count as separate fills (stationarity) ---
    # Per tensor, bitmasks over dims: ma0/ma1 = DRAM/L2 digits that refill L1 (and the array), mb0 = DRAM
    # digits that refill L2. A level keeps its tile across the innermost run of loops not indexing t.
    ma0 = mk[0:3]
    ma1 = mk[3:6]
    mb0 = mk[6:9]
    for t in range(3):
        mb, _ = _refill_mask(order, fac, rel, 0, t)
        m1, stopped = _refill_mask(order, fac, rel, 1, t)
        m0 = 255 if stopped else mb  # L1 stays stationary into the DRAM loops only past every L2 loop
        e = 1.0
        for d in range(8):
            if (m0 >> d) & 1:
                e *= fac[0, d]
            if (m1 >> d) & 1:
                e *= fac[1, d]
        ma0[t] = m0
        ma1[t] = m1
        mb0[t] = mb
        ev[t] = e
    ev_w = ev[_W_T]
    ev_i = ev[_I_T]
    ev_o = ev[_O_T]

    lp_macs = 1.0
    for d in range(8):
        lp_macs *= lp[d]
    o_size = float(lp[_N] * lp[_G] * lp[_K] * lp[_P] * lp[_Q])

    # per tensor: fl1 = per-PE L1 fills (outputs: drains), rl2 = the L2 side of the array transfers
    # (multicast / spatial reduction collapsed), fl2 = L2 fills from DRAM (outputs: drains to DRAM)
    rl2_o = 0.0
    fl1_o = 0.0
    fl2_o = 0.0
    noc_wi = 0.0
    for t in range(3):
        fl1 = _transfer(t, lp, fac, rel, ma0[t], ma1[t], 1, 3)  # every PE fills its own copy
        rl2 = _transfer(t, lp, fac, rel, ma0[t], ma1[t], 0, 2)  # one L2 read serves PEs differing in non-indexing dims
        fl2 = _transfer(t, lp, fac, rel, mb0[t], 0, 0, 1)
        if t == _O_T:
            rl2_o = rl2
            fl1_o = fl1
            fl2_o = fl2
        else:
            noc_wi += rl2
            counts[t, 0] = lp_macs
            counts[t, 1] = fl1
            counts[t, 2] = fl1
            counts[t, 3] = rl2
            counts[t, 4] = fl2
            counts[t, 5] = fl2
            counts[t, 6] = 0.0
    psum_in = rl2_o - o_size  # partial sums sent back into the array
    counts[_O_T, 0] = lp_macs + psum_in
    counts[_O_T, 1] = lp_macs + psum_in
    counts[_O_T, 2] = fl1_o + psum_in
    counts[_O_T, 3] = psum_in + fl2_o
    counts[_O_T, 4] = rl2_o + fl2_o - o_size
    counts[_O_T, 5] = fl2_o - o_size
    counts[_O_T, 6] = fl2_o

    # --- energy ---
    e_mac = lp_macs * af[5]
    e_l1 = 0.0
    e_noc = 0.0
    e_l2 = 0.0
    e_dram = 0.0
    for t in range(3):
        el1 = (counts[t, 0] + counts[t, 1]) * af[6 + t]
        en = counts[t, 2] * af[9]
        el2 = (counts[t, 3] + counts[t, 4]) * af[10]
        ed = (counts[t, 5] + counts[t, 6]) * af[11]
        metrics[M_E_W + t] = el1 + en + el2 + ed
        e_l1 += el1
        e_noc += en
        e_l2 += el2
        e_dram += ed
    energy = e_mac + e_l1 + e_noc + e_l2 + e_dram

    # --- cycles ---
    compute = 1.0
    for d in range(8):
        compute *= fac[0, d] * fac[1, d] * fac[3, d]
    if ai[1]:
        folds = min(ev_w, ev_i)
        skew = 0
        for a in range(n_axes):
            skew += arr[a] - 1
        if ev_o < folds:  # output stationary: nothing to preload
            folds = ev_o
        else:
            skew += arr[0]
        compute += folds * skew
    noc_words = noc_wi + psum_in + rl2_o
    dram_words = 0.0
    for t in range(3):
        dram_words += counts[t, 5] + counts[t, 6]
    noc_cyc = float(math.ceil(noc_words / af[3]))
    dram_cyc = float(math.ceil(dram_words / af[4]))
    cycles = compute
    if ai[7] and noc_cyc > cycles:
        cycles = noc_cyc
    if ai[8] and dram_cyc > cycles:
        cycles = dram_cyc
    if not ai[7]:
        cycles += noc_cyc
    if not ai[8]:
        cycles += dram_cyc

    n_pes = arr[0] * arr[1] * arr[2]
    metrics[M_CYCLES] = cycles
    metrics[M_COMPUTE] = compute
    metrics[M_ENERGY] = energy
    metrics[M_EDP] = energy * cycles
    metrics[M_UTIL] = lp_macs / (n_pes * compute)
    metrics[M_E_MAC] = e_mac
    metrics[M_E_L1] = e_l1
    metrics[M_E_NOC] = e_noc
    metrics[M_E_L2] = e_l2
    metrics[M_E_DRAM] = e_dram
    metrics[M_MACS] = lp_macs
    return 0


_CHUNK = 512


@njit(cache=True)
def _evaluate_range(lp, temporal, spatial, order, arr, conn, ai, af, rel, codes, metrics, counts, lo, hi):
    fac = np.empty((4, 8), dtype=np.int64)
    b = np.empty(8, dtype=np.int64)
    mk = np.empty(9, dtype=np.int64)
    ev = np.empty(3, dtype=np.float64)
    for i in range(lo, hi):
        codes[i] = _evaluate_one(lp, temporal[i], spatial[i], order[i], arr, conn, ai, af, rel,
                                 metrics[i], counts[i], fac, b, mk, ev)


@njit(cache=True, parallel=True)
def _evaluate_batch(lp, temporal, spatial, order, arr, conn, ai, af, rel):
    n = temporal.shape[0]
    codes = np.zeros(n, dtype=np.int64)
    metrics = np.full((n, len(METRICS)), np.inf)
    counts = np.zeros((n, 3, len(ACCESS_KINDS)))
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        _evaluate_range(lp, temporal, spatial, order, arr, conn, ai, af, rel, codes, metrics, counts,
                        c * _CHUNK, min(n, (c + 1) * _CHUNK))
    return codes, metrics, counts


@njit(cache=True)
def _evaluate_batch_serial(lp, temporal, spatial, order, arr, conn, ai, af, rel):
    n = temporal.shape[0]
    codes = np.zeros(n, dtype=np.int64)
    metrics = np.full((n, len(METRICS)), np.inf)
    counts = np.zeros((n, 3, len(ACCESS_KINDS)))
    _evaluate_range(lp, temporal, spatial, order, arr, conn, ai, af, rel, codes, metrics, counts, 0, n)
    return codes, metrics, counts


_REL = RELEVANCE.astype(np.int64)


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
    threads for batches of at least 4096 mappings.
    """
    if parallel is None:
        parallel = len(temporal) >= 4096
    arr, conn, ai, af = accel_params(accel)
    fn = _evaluate_batch if parallel else _evaluate_batch_serial
    return fn(
        layer_params(layer),
        np.ascontiguousarray(temporal, dtype=np.int64),
        np.ascontiguousarray(spatial, dtype=np.int64),
        np.ascontiguousarray(order, dtype=np.int64),
        arr, conn, ai, af, _REL,
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
    numba.set_num_threads(n)


__all__ = [
    "ACCESS_KINDS", "Cost", "DIMS", "ENERGY_LEVELS", "INVALID_REASONS", "METRICS",
    "evaluate", "evaluate_batch", "set_num_threads",
]
