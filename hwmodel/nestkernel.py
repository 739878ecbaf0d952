"""The numba kernel of the storage-hierarchy cost model (Timeloop-exact counts for dense tensors).

One calling convention, flat arrays, named indices (nothing outside this module indexes them by number).

Semantics (Timeloop v0.3/v0.4 with axis-aligned-hyper-rectangle point sets; ``shared/ARCHITECTURE.md``):

* The loop nest, outermost first, is: for each storage level ``l`` (0 = DRAM) its temporal loops in
  order, then its spatial loops (the fanout below ``l``). A level's *tile* of a tensor is the projection
  of all loops at or below it: per data-space dim an interval; inputs' rows are the bounding box
  ``[p0*stride + r0*dilation, (p1-1)*stride + (r1-1)*dilation + 1)`` (halo and stride gaps included).
  Padded iterations (an index past its dim, from ceil-div factors) project to nothing.
* Fills: at every step of the temporal loops above a level, the level receives the part of its new
  tile not in its previous tile (the *delta*). As in Timeloop's AAHR point sets: a tile equal to the
  previous costs nothing; a tile that differs from the previous one in exactly one data-space dim and
  overlaps it costs the new slab; any other change costs the whole new tile.
* Reads of a parent (weights, inputs) = its children's fills, where children whose tiles are identical
  (they differ only in dims that do not index the tensor, or inputs at equal ``p*stride + r*dilation``)
  share one read (multicast). The innermost level serves every operation (MAC) below it the same way.
* Outputs (Timeloop's read-write convention): ``updates`` = the children's fills merged by spatial
  reduction (or the MACs at the innermost level), ``reads = updates - partition`` (the first write of
  each element is not a read-modify-write), ``fills`` = deltas as for the other tensors.
* Totals are over all instances of a level; energies use per-instance counts rounded up to whole
  vectors of ``block`` words, as Timeloop does.

The counting is exact for imperfect factors too: per event type and per data-space dim the sums run
over the actual loop indices (a closed form is used when a dim is covered without padding).

Speed: the per-mapping functions are compiled with ``_nrt=False`` (numba's reference counting off): they
never allocate and only index arrays their caller owns (scratch from :func:`workspace` / :func:`scratch`),
so the ~15 array arguments threaded through every call would otherwise cost an atomic incref/decref pair
each at every call and inlined call site (measured: more than half of an evaluation's time).
"""

from __future__ import annotations

import math

import numpy as np

from hwmodel.jit import AotSignature, njit, prange

# ---- limits --------------------------------------------------------------------------------------------
MAX_LEVELS = 8
NUM_DIMS = 8
NUM_TENSORS = 3
MAX_AXES = 3
#: Loops of one level: 8 temporal + 8 spatial (one per dim; several axes over one dim merge).
MAX_LOOPS = 2 * NUM_DIMS * MAX_LEVELS

# ---- problem dims and tensors ----------------------------------------------------------------------
DIM_N, DIM_G, DIM_K, DIM_C, DIM_P, DIM_Q, DIM_R, DIM_S = range(8)
T_WEIGHTS, T_INPUTS, T_OUTPUTS = range(3)

#: Layer parameter vector.
LP_STRIDE_H, LP_STRIDE_W, LP_DIL_H, LP_DIL_W = 8, 9, 10, 11
LP_SIZE = 12

# ---- data-space groups per tensor: (kind, dim a, dim b) ------------------------------------------------
GK_NONE, GK_PLAIN, GK_INDICATOR, GK_WINDOW_H, GK_WINDOW_W = 0, 1, 2, 3, 4
MAX_GROUPS = 8


def _groups() -> np.ndarray:
    g = np.zeros((NUM_TENSORS, MAX_GROUPS, 3), dtype=np.int64)
    weights = [(GK_PLAIN, d, d) for d in (DIM_G, DIM_K, DIM_C, DIM_R, DIM_S)]
    weights += [(GK_INDICATOR, d, d) for d in (DIM_N, DIM_P, DIM_Q)]
    outputs = [(GK_PLAIN, d, d) for d in (DIM_N, DIM_G, DIM_K, DIM_P, DIM_Q)]
    outputs += [(GK_INDICATOR, d, d) for d in (DIM_C, DIM_R, DIM_S)]
    inputs = [(GK_PLAIN, d, d) for d in (DIM_N, DIM_G, DIM_C)]
    inputs += [(GK_WINDOW_H, DIM_P, DIM_R), (GK_WINDOW_W, DIM_Q, DIM_S), (GK_INDICATOR, DIM_K, DIM_K)]
    for t, rows in ((T_WEIGHTS, weights), (T_INPUTS, inputs), (T_OUTPUTS, outputs)):
        for i, row in enumerate(rows):
            g[t, i] = row
    return g


GROUPS = _groups()


def _dim_groups() -> np.ndarray:
    """``DIM_GROUP[t, d]``: the data-space group of tensor ``t`` that dim ``d`` belongs to."""
    out = np.full((NUM_TENSORS, NUM_DIMS), -1, dtype=np.int64)
    for t in range(NUM_TENSORS):
        for g in range(MAX_GROUPS):
            if GROUPS[t, g, 0] != GK_NONE:
                out[t, GROUPS[t, g, 1]] = g
                out[t, GROUPS[t, g, 2]] = g
    return out


DIM_GROUP = _dim_groups()
#: ``RELEVANT[t, d] = 1`` when dim ``d`` indexes tensor ``t`` (its group is not an indicator).
RELEVANT = np.array([[int(GROUPS[t, DIM_GROUP[t, d], 0] != GK_INDICATOR) for d in range(NUM_DIMS)]
                     for t in range(NUM_TENSORS)], dtype=np.int64)

# ---- architecture arrays ---------------------------------------------------------------------------------
#: ``arch_int[l, :]``
AI_KEEP_W, AI_KEEP_I, AI_KEEP_O = 0, 1, 2  # the level may keep the tensor
AI_PARTITIONED = 3  # 1: per-tensor capacities, 0: shared
AI_BOUNDED = 4  # 0: unbounded (DRAM)
AI_MULTIBUF = 5  # buffers per tensor tile (2 = double buffering)
AI_STALL = 6  # 1: fills into this level stall compute (single-buffered in our family); 0: overlap
AI_BLOCK = 7  # words per vector access
AI_N_AXES = 8  # fanout axes below this level (0 = no fanout)
AI_AXIS0 = 9  # axis sizes 9, 10, 11
AI_SYSTOLIC = 12  # the fanout below this level is a systolic array (fill/drain per fold)
AI_MAC_LANES = 13  # products per cycle of each MAC, added along C, R, S (read at the innermost level)
AI_MAC_PASSES = 14  # cycles per product (read at the innermost level)
AI_SIZE = 15
#: ``arch_float[l, :]``
AF_CAP_BITS = 0  # shared capacity per instance (bits)
AF_CAP_W, AF_CAP_I, AF_CAP_O = 1, 2, 3  # per-tensor capacities (bits)
AF_BITS_W, AF_BITS_I, AF_BITS_O = 4, 5, 6  # stored width of each tensor (bits)
AF_WORD_BITS = 7  # the level's word (bandwidth unit)
AF_READ_BW = 8  # words/cycle per instance for reads (inf: unlimited)
AF_WRITE_BW = 9  # words/cycle per instance for fills + updates
AF_NET_BW = 10  # words/cycle per instance between this level and its children (reads + updates)
AF_E_READ = 11  # pJ per vector read
AF_E_FILL = 12  # pJ per vector fill
AF_E_UPDATE = 13  # pJ per vector update
AF_E_NOC = 14  # pJ per word delivered to a child instance
AF_SIZE = 15
#: ``conn[l, axis, dim] = 1`` when the axis of the fanout below level ``l`` may unroll ``dim``.

# ---- outputs ----------------------------------------------------------------------------------------------
#: ``metrics[:]``
MT_CYCLES, MT_COMPUTE, MT_ENERGY, MT_EDP, MT_UTIL, MT_MACS, MT_E_MAC, MT_E_NOC = range(8)
MT_E_W, MT_E_I, MT_E_O = 8, 9, 10
MT_E_LEVEL0 = 11  # energy of level l (all tensors, incl. its NoC) at MT_E_LEVEL0 + l
MT_BAD_LEVEL = MT_E_LEVEL0 + MAX_LEVELS  # level that made the mapping invalid (-1 if none)
MT_SIZE = MT_BAD_LEVEL + 1
#: ``counts[l, t, :]`` totals over all instances of level l
CT_READS, CT_FILLS, CT_UPDATES, CT_PARTITION, CT_TILE, CT_INSTANCES = range(6)
CT_SIZE = 6

#: Validity codes.
OK, BAD_COVER, BAD_SPATIAL, BAD_CAPACITY, BAD_KEEP = 0, 1, 2, 3, 4
INVALID_REASONS: tuple[str, ...] = (
    "valid",
    "factors do not cover the layer",
    "spatial unroll exceeds an axis or its connectivity",
    "tiles exceed a level's capacity",
    "a tensor has no storage path (bypassed at DRAM)",
)

# ---- loop roles during one enumeration ---------------------------------------------------------------------
RO_SKIP, RO_FREE, RO_STEP, RO_RESET, RO_ZERO, RO_DEDUP, RO_UNION = 0, 1, 2, 3, 4, 5, 6
#: Loop table columns ``loops[j, :]``.
LO_DIM, LO_BOUND, LO_LEVEL, LO_SPATIAL, LO_STEP = range(5)
LO_SIZE = 5
#: Padded windows with more index combinations than this are summed in closed form (exact away from the
#: padded edge) instead of enumerated: keeps every evaluation bounded for layers up to the 2**24-dim limit.
ENUM_LIMIT = 4096.0
#: Layout of the int64 ``idx`` scratch (:data:`IDX_SCRATCH` long): the loops of a group, then the enumeration's
#: counters, one sibling key and the keys seen so far (at most ``ENUM_LIMIT`` configurations are enumerated).
IDX_CTR = MAX_LOOPS
IDX_KEY = 2 * MAX_LOOPS
IDX_SEEN = IDX_KEY + MAX_LEVELS
#: :func:`_window_sums` tallies each dim's offsets by capped distance to the layer's edge after the keys: per
#: class the distance and how many offsets have it (at most ``ENUM_LIMIT`` classes per dim).
WC_DIST, WC_COUNT = range(2)
WC_SIZE = 2
IDX_WC_A = IDX_SEEN + int(ENUM_LIMIT) * MAX_LEVELS
IDX_WC_B = IDX_WC_A + int(ENUM_LIMIT) * WC_SIZE
IDX_SCRATCH = IDX_WC_B + int(ENUM_LIMIT) * WC_SIZE
#: Scratch columns of the group sums.
GS_A, GS_B, GS_C = range(3)


@njit(cache=True, _nrt=False)
def build_loops(tfac, sfac, order, n_levels, loops):
    """Fill ``loops`` (outermost first) with the loops of bound > 1; returns their number.

    ``tfac[l, d]`` temporal factors, ``sfac[l, d]`` spatial factor of ``d`` in the fanout below ``l``
    (product over axes), ``order[l, :]`` temporal dims outermost first."""
    n = 0
    for l in range(n_levels):
        for pos in range(NUM_DIMS):
            d = order[l, pos]
            if tfac[l, d] > 1:
                loops[n, LO_DIM] = d
                loops[n, LO_BOUND] = tfac[l, d]
                loops[n, LO_LEVEL] = l
                loops[n, LO_SPATIAL] = 0
                n += 1
        for d in range(NUM_DIMS):
            if sfac[l, d] > 1:
                loops[n, LO_DIM] = d
                loops[n, LO_BOUND] = sfac[l, d]
                loops[n, LO_LEVEL] = l
                loops[n, LO_SPATIAL] = 1
                n += 1
    for j in range(n):
        st = 1
        for k in range(j + 1, n):
            if loops[k, LO_DIM] == loops[j, LO_DIM]:
                st *= loops[k, LO_BOUND]
        loops[j, LO_STEP] = st
    return n


@njit(cache=True, _nrt=False, inline="always")
def _interval(kind, lp, da, db, oa, ob, ea, eb):
    """The data-space interval ``(start, end)`` of a tile at offsets ``oa``/``ob`` with extents ``ea``/``eb``
    (``end <= start``: empty)."""
    if kind == GK_PLAIN:
        return oa, min(oa + ea, lp[da])
    if kind == GK_INDICATOR:
        if oa < lp[da]:
            return 0, 1
        return 0, 0
    a1 = min(oa + ea, lp[da])
    b1 = min(ob + eb, lp[db])
    if a1 <= oa or b1 <= ob:
        return 0, 0
    s, dl = _window_coefs(kind, lp)
    return oa * s + ob * dl, (a1 - 1) * s + (b1 - 1) * dl + 1


@njit(cache=True, _nrt=False, inline="always")
def _window_coefs(kind, lp):
    """Data-space steps ``(of dim a, of dim b)`` of a group: (stride, dilation) for windows, (1, 1) otherwise."""
    if kind == GK_WINDOW_H:
        return lp[LP_STRIDE_H], lp[LP_DIL_H]
    if kind == GK_WINDOW_W:
        return lp[LP_STRIDE_W], lp[LP_DIL_W]
    return 1, 1


@njit(cache=True, _nrt=False, inline="always")
def _sibling(k, kind, lp, da, loops, roles, idx, m, xa, xb):
    """Sibling ``k`` of the DEDUP and UNION loops among ``idx[:m]`` (mixed radix, the first loop's digit fastest):
    the offsets ``(xa, xb)`` moved by its indices, and its per-level key (data offsets) into ``idx[IDX_KEY:]``."""
    ca, cb = _window_coefs(kind, lp)
    for lv in range(MAX_LEVELS):
        idx[IDX_KEY + lv] = 0
    rem = k
    for i in range(m):
        j = idx[i]
        r = roles[j]
        if r == RO_DEDUP or r == RO_UNION:
            b = loops[j, LO_BOUND]
            v = rem % b
            rem //= b
            if loops[j, LO_DIM] == da:
                xa += v * loops[j, LO_STEP]
                idx[IDX_KEY + loops[j, LO_LEVEL]] += v * loops[j, LO_STEP] * ca
            else:
                xb += v * loops[j, LO_STEP]
                idx[IDX_KEY + loops[j, LO_LEVEL]] += v * loops[j, LO_STEP] * cb
    return xa, xb


@njit(cache=True, _nrt=False, inline="always")
def _keep_key(idx, n_seen):
    """Whether the sibling key at ``idx[IDX_KEY:]`` differs from the ``n_seen`` kept at ``idx[IDX_SEEN:]``; a new
    one is kept (appended) too."""
    for q in range(n_seen):
        same = True
        for lv in range(MAX_LEVELS):
            if idx[IDX_SEEN + q * MAX_LEVELS + lv] != idx[IDX_KEY + lv]:
                same = False
                break
        if same:
            return False
    for lv in range(MAX_LEVELS):
        idx[IDX_SEEN + n_seen * MAX_LEVELS + lv] = idx[IDX_KEY + lv]
    return True


@njit(cache=True, _nrt=False, inline="always")
def _tile_terms(kind, lp, da, db, ea, eb, s_new, e_new, oa, ob):
    """A sibling's terms of the group sums for its new interval ``[s_new, e_new)`` and previous tile at offsets
    ``oa``/``ob``: ``(new length, overlap with the previous tile where it changed, new length where it did not)``."""
    s_old, e_old = _interval(kind, lp, da, db, oa, ob, ea, eb)
    ln = e_new - s_new
    if s_old == s_new and e_old == e_new:
        return ln, 0, ln
    ov = min(e_new, e_old) - max(s_new, s_old)
    return ln, ov if ov > 0 and e_old > s_old else 0, 0


@njit(cache=True, _nrt=False)
def _group_sums_enum(kind, da, db, lp, ea, eb, loops, n_loops, roles, idx, gsum, gi):
    """Sums of one data-space group by enumerating the indices of its loops (exact, any padding).

    ``gsum[gi, GS_A]`` = sum of new-tile lengths, ``gsum[gi, GS_B]`` = sum of the overlap with the previous tile over
    configurations where this group changed, ``gsum[gi, GS_C]`` = sum of new-tile lengths where it did not.
    Loops with ``RO_DEDUP`` are children of one parent: identical intervals among them count once;
    ``RO_UNION`` loops are unioned (the group's extent over time: outputs' partition size).
    """
    # involved loops
    m = 0
    for j in range(n_loops):
        d = loops[j, LO_DIM]
        if roles[j] != RO_SKIP and (d == da or d == db):
            idx[m] = j
            m += 1
    a_sum = 0.0
    b_sum = 0.0
    c_sum = 0.0
    # counters over summed loops (FREE, STEP) and, inside, DEDUP/UNION loops
    # first config: STEP starts at 1
    for i in range(m):
        idx[IDX_CTR + i] = 1 if roles[idx[i]] == RO_STEP else 0
    while True:
        # base offsets (new, old) from FREE/STEP/RESET/ZERO loops
        na = 0
        nb = 0
        oa_ = 0
        ob_ = 0
        for i in range(m):
            j = idx[i]
            r = roles[j]
            st = loops[j, LO_STEP]
            d = loops[j, LO_DIM]
            if r == RO_FREE or r == RO_STEP:
                vn = idx[IDX_CTR + i] * st
                vo = (idx[IDX_CTR + i] - 1) * st if r == RO_STEP else vn
            elif r == RO_RESET:
                vn = 0
                vo = (loops[j, LO_BOUND] - 1) * st
            else:
                continue
            if d == da:
                na += vn
                oa_ += vo
            else:
                nb += vn
                ob_ += vo
        # inner enumeration over DEDUP / UNION loops
        n_inner = 1
        for i in range(m):
            r = roles[idx[i]]
            if r == RO_DEDUP or r == RO_UNION:
                n_inner *= loops[idx[i], LO_BOUND]
        n_seen = 0
        union_lo = 1 << 62
        union_hi = -1
        union_len = 0
        has_union = False
        for i in range(m):
            has_union = has_union or roles[idx[i]] == RO_UNION
        for k in range(n_inner):
            xa, xb = _sibling(k, kind, lp, da, loops, roles, idx, m, na, nb)
            s_new, e_new = _interval(kind, lp, da, db, xa, xb, ea, eb)
            if e_new <= s_new:
                continue
            if has_union:
                # union of disjoint plain tiles / indicator existence
                if kind == GK_INDICATOR:
                    union_len = 1
                else:
                    union_len += e_new - s_new
                    union_lo = min(union_lo, s_new)
                    union_hi = max(union_hi, e_new)
                continue
            # siblings of one fanout with equal data offsets are one child (per fanout level)
            if not _keep_key(idx, n_seen):
                continue
            n_seen += 1
            ln, ov, kept = _tile_terms(kind, lp, da, db, ea, eb, s_new, e_new, xa - na + oa_, xb - nb + ob_)
            a_sum += ln
            b_sum += ov
            c_sum += kept
        if has_union:
            a_sum += union_len
        # advance the summed counters
        i = 0
        while i < m:
            r = roles[idx[i]]
            if r == RO_FREE or r == RO_STEP:
                idx[IDX_CTR + i] += 1
                if idx[IDX_CTR + i] < loops[idx[i], LO_BOUND]:
                    break
                idx[IDX_CTR + i] = 1 if r == RO_STEP else 0
            i += 1
        if i == m:
            break
    gsum[gi, GS_A] = a_sum
    gsum[gi, GS_B] = b_sum
    gsum[gi, GS_C] = c_sum


@njit(cache=True, _nrt=False, inline="always")
def _window_classes(d, lp, e, loops, n_loops, roles, idx, base):
    """One dim of a padded window group, for :func:`_window_sums`: enumerates the dim's offsets from its FREE
    and STEP loops (RESET and ZERO loops sit at one index, DEDUP loops are the siblings) and tallies the valid
    ones by their distance to the layer's edge, capped at the distance from which no sibling's tile, new or
    previous, is cut short: ``idx[base:]`` holds :data:`WC_SIZE` ints per class. Returns ``(classes, shift)``:
    ``shift`` is the previous offset minus the new one (the same at every offset)."""
    m = 0
    shift = 0
    reach = e  # the farthest a sibling's tile reaches past the offset
    for j in range(n_loops):
        if roles[j] == RO_SKIP or loops[j, LO_DIM] != d:
            continue
        r = roles[j]
        st = loops[j, LO_STEP]
        if r == RO_FREE or r == RO_STEP:
            idx[m] = j
            idx[IDX_CTR + m] = 1 if r == RO_STEP else 0
            m += 1
            if r == RO_STEP:
                shift -= st
        elif r == RO_RESET:
            shift += (loops[j, LO_BOUND] - 1) * st
        elif r == RO_DEDUP:
            reach += (loops[j, LO_BOUND] - 1) * st
    size = lp[d]
    cap = reach + max(0, shift)
    n = 0
    while True:
        x = 0
        for i in range(m):
            x += idx[IDX_CTR + i] * loops[idx[i], LO_STEP]
        if x < size:
            dist = min(size - x, cap)
            at = base
            for _ in range(n):
                if idx[at + WC_DIST] == dist:
                    break
                at += WC_SIZE
            if at == base + n * WC_SIZE:
                idx[at + WC_DIST] = dist
                idx[at + WC_COUNT] = 0
                n += 1
            idx[at + WC_COUNT] += 1
        i = 0
        while i < m:
            idx[IDX_CTR + i] += 1
            if idx[IDX_CTR + i] < loops[idx[i], LO_BOUND]:
                break
            idx[IDX_CTR + i] = 1 if roles[idx[i]] == RO_STEP else 0
            i += 1
        if i == m:
            break
    return n, shift


@njit(cache=True, _nrt=False)
def _window_sums(kind, da, db, lp, ea, eb, loops, n_loops, roles, idx, gsum, gi):
    """The sums of :func:`_group_sums_enum` for a padded window group without unions, equal to it term by term.

    A configuration's terms (its siblings' tile lengths, their overlaps with their previous tiles, which sibling
    of a merged offset counts) do not move with the tile: they depend on the two dims' offsets only through
    their distances to the layer's edge, and not at all once no tile is cut short there. So each dim's offsets
    are enumerated on their own and tallied by capped distance (:func:`_window_classes`), and the siblings are
    enumerated once per pair of classes, weighted by the pair's configurations (``|A| + |B|`` offsets and the
    classes' siblings instead of ``|A| * |B|`` configurations times the siblings)."""
    n_a, shift_a = _window_classes(da, lp, ea, loops, n_loops, roles, idx, IDX_WC_A)
    n_b, shift_b = _window_classes(db, lp, eb, loops, n_loops, roles, idx, IDX_WC_B)
    m = 0  # the siblings' loops (DEDUP), outermost first: the enumeration's digit order
    n_inner = 1
    for j in range(n_loops):
        if roles[j] == RO_DEDUP and (loops[j, LO_DIM] == da or loops[j, LO_DIM] == db):
            idx[m] = j
            m += 1
            n_inner *= loops[j, LO_BOUND]
    a_sum = 0.0
    b_sum = 0.0
    c_sum = 0.0
    for ka in range(n_a):
        at = IDX_WC_A + ka * WC_SIZE
        for kb in range(n_b):
            bt = IDX_WC_B + kb * WC_SIZE
            w = float(idx[at + WC_COUNT] * idx[bt + WC_COUNT])
            # a stand-in configuration at the class's distances (terms do not move with the tile)
            base_a = lp[da] - idx[at + WC_DIST]
            base_b = lp[db] - idx[bt + WC_DIST]
            n_seen = 0
            for k in range(n_inner):
                xa, xb = _sibling(k, kind, lp, da, loops, roles, idx, m, base_a, base_b)
                s_new, e_new = _interval(kind, lp, da, db, xa, xb, ea, eb)
                if e_new <= s_new:
                    continue
                if not _keep_key(idx, n_seen):
                    continue
                n_seen += 1
                ln, ov, kept = _tile_terms(kind, lp, da, db, ea, eb, s_new, e_new, xa + shift_a, xb + shift_b)
                a_sum += w * ln
                b_sum += w * ov
                c_sum += w * kept
    gsum[gi, GS_A] = a_sum
    gsum[gi, GS_B] = b_sum
    gsum[gi, GS_C] = c_sum


@njit(cache=True, _nrt=False)
def _distinct_window(lp, kind, da, db, loops, n_loops, roles):
    """Distinct children of a window group: per fanout level (Timeloop compares the siblings of one
    fanout), the distinct offsets ``p*stride + r*dilation`` of its DEDUP loops; multiplied over levels.

    A level has at most one spatial loop per dim (:func:`build_loops`), so its offsets are ``i*A + j*B``
    (``i < Ba``, ``j < Bb``); with ``g = gcd(A, B)``, ``A' = A/g``, ``B' = B/g`` two pairs coincide iff
    they differ by a multiple of ``(B', -A')``, so each value has one representative with ``i < B'`` or
    ``j >= Bb - A'`` and the count is ``Ba*Bb - max(0, Ba - B') * max(0, Bb - A')``."""
    s, dl = _window_coefs(kind, lp)
    total = 1
    for lvl in range(MAX_LEVELS):
        ba = 1
        bb = 1
        ca = 0
        cb = 0
        for j in range(n_loops):
            if roles[j] == RO_DEDUP and loops[j, LO_LEVEL] == lvl:
                if loops[j, LO_DIM] == da:
                    ba = loops[j, LO_BOUND]
                    ca = loops[j, LO_STEP] * s
                elif loops[j, LO_DIM] == db:
                    bb = loops[j, LO_BOUND]
                    cb = loops[j, LO_STEP] * dl
        if ba == 1 or bb == 1:
            total *= ba * bb
            continue
        g = math.gcd(ca, cb)
        total *= ba * bb - max(0, ba - cb // g) * max(0, bb - ca // g)
    return total


@njit(cache=True, _nrt=False, inline="always")
def _digit_count(D, E, loops, dl, dn, roles, d, old, indicator, full):
    """Number of (loop indices, e) with ``offset + e < D`` and ``e < E`` for dim ``d``, where the offset is
    ``sum(index * step)`` over the dim's loops above the tile, each index in the range its role allows
    (new or ``old`` position of an event). Loops are mixed-radix digits, outermost most significant, and
    ``E`` (the tile extent) is the lowest radix, so the count runs digit by digit like counting the
    numbers below ``D``: O(loops of the dim). For an ``indicator`` group (a dim that does not index the
    tensor) only validity matters: children of one parent (DEDUP) and unions collapse to index 0.
    ``dl[d, :dn[d]]`` lists the dim's loops, outermost first. ``full``: the loops cover ``D`` exactly (no
    padding), so every allowed index is valid and the count is a product (no divisions)."""
    total = 0.0
    rem = D
    mult = float(E)
    for k in range(dn[d]):
        j = dl[d, k]
        r = roles[j]
        b = loops[j, LO_BOUND]
        if r == RO_FREE or ((r == RO_DEDUP or r == RO_UNION) and not indicator):
            mult *= b
        elif r == RO_STEP:
            mult *= b - 1
    if full:
        return mult
    for k in range(dn[d]):
        j = dl[d, k]
        r = roles[j]
        if r == RO_SKIP:
            continue
        b = loops[j, LO_BOUND]
        st = loops[j, LO_STEP]
        if r == RO_FREE or ((r == RO_DEDUP or r == RO_UNION) and not indicator):
            lo, hi = 0, b
        elif r == RO_STEP:
            lo, hi = (0, b - 1) if old else (1, b)
        elif r == RO_RESET:
            lo, hi = (b - 1, b) if old else (0, 1)
        else:
            lo, hi = 0, 1
        n_allowed = hi - lo
        if n_allowed <= 0:
            return 0.0
        mult /= n_allowed
        q = rem // st
        below = min(q, hi) - lo
        if below > 0:
            total += below * mult
        if q < lo or q >= hi:
            return total
        rem -= q * st
    return total + min(rem, E)


@njit(cache=True, _nrt=False, inline="always")
def _group_sums(kind, da, db, lp, cover, ea, eb, loops, n_loops, roles, idx, gsum, gi, dl, dn, wdist):
    """Group sums (see :func:`_group_sums_enum`): digit counting for plain and indicator groups (exact with
    padding), a closed form for windows without padding, enumeration for padded windows."""
    if kind == GK_PLAIN or kind == GK_INDICATOR:
        ind = kind == GK_INDICATOR
        e = 1 if ind else ea
        full = cover[da] == lp[da]
        a = _digit_count(lp[da], e, loops, dl, dn, roles, da, False, ind, full)
        has_step = False
        has_reset = False
        for k in range(dn[da]):
            r = roles[dl[da, k]]
            if r == RO_STEP:
                has_step = True
            elif r == RO_RESET:
                has_reset = True
        gsum[gi, GS_A] = a
        gsum[gi, GS_B] = 0.0
        if not (has_step or has_reset):
            gsum[gi, GS_C] = a
        elif not ind:
            gsum[gi, GS_C] = 0.0  # the offset moved by at least a tile: nothing in common
        elif has_step:
            gsum[gi, GS_C] = a  # validity can only be lost moving forward: both valid iff the new one is
        else:
            gsum[gi, GS_C] = _digit_count(lp[da], 1, loops, dl, dn, roles, da, True, True, full)
        return
    if cover[da] != lp[da] or cover[db] != lp[db]:
        # padded window: closed forms unless the window slides with overlap or has siblings to merge
        shift_a = 0
        shift_b = 0
        moved = False
        merge = False
        union = False
        for k in range(dn[da] + dn[db]):
            j = dl[da, k] if k < dn[da] else dl[db, k - dn[da]]
            r = roles[j]
            b = loops[j, LO_BOUND]
            st = loops[j, LO_STEP]
            if r == RO_UNION:
                union = True
            elif r == RO_DEDUP:
                merge = True
            elif r == RO_STEP or r == RO_RESET:
                moved = True
                v = st if r == RO_STEP else -(b - 1) * st
                if loops[j, LO_DIM] == da:
                    shift_a += v
                else:
                    shift_b += v
        s, dl_ = _window_coefs(kind, lp)
        sh = abs(shift_a * s + shift_b * dl_)
        longest = (min(ea, lp[da]) - 1) * s + (min(eb, lp[db]) - 1) * dl_ + 1
        configs = 1.0
        for k in range(dn[da] + dn[db]):
            j = dl[da, k] if k < dn[da] else dl[db, k - dn[da]]
            if roles[j] == RO_FREE or roles[j] == RO_STEP or roles[j] == RO_DEDUP or roles[j] == RO_UNION:
                configs *= loops[j, LO_BOUND]
        exact = configs <= ENUM_LIMIT
        if exact and (merge or (moved and sh < longest)):
            if not union:
                _window_sums(kind, da, db, lp, ea, eb, loops, n_loops, roles, idx, gsum, gi)
            else:
                _group_sums_enum(kind, da, db, lp, ea, eb, loops, n_loops, roles, idx, gsum, gi)
            return
        # sum of window lengths over the product of the P (a) and R (b) index sets
        sa = _digit_count(lp[da], ea, loops, dl, dn, roles, da, False, False, False)
        na = _digit_count(lp[da], 1, loops, dl, dn, roles, da, False, False, False)
        sb = _digit_count(lp[db], eb, loops, dl, dn, roles, db, False, False, False)
        nb = _digit_count(lp[db], 1, loops, dl, dn, roles, db, False, False, False)
        a = s * (sa - na) * nb + dl_ * (sb - nb) * na + na * nb
        if not exact:
            # beyond ENUM_LIMIT positions: siblings merged and overlaps taken as for full windows (exact away
            # from the padded edge)
            if merge:
                raw = 1.0
                for k in range(dn[da] + dn[db]):
                    j = dl[da, k] if k < dn[da] else dl[db, k - dn[da]]
                    if roles[j] == RO_DEDUP:
                        raw *= loops[j, LO_BOUND]
                a *= _distinct_window(lp, kind, da, db, loops, n_loops, roles) / raw
            gsum[gi, GS_A] = a
            if moved and sh < longest:
                gsum[gi, GS_B] = a * (longest - sh) / longest if sh > 0 else 0.0
                gsum[gi, GS_C] = a if sh == 0 else 0.0
            else:
                gsum[gi, GS_B] = 0.0
                gsum[gi, GS_C] = 0.0 if moved else a
            return
        gsum[gi, GS_A] = a
        gsum[gi, GS_B] = 0.0
        gsum[gi, GS_C] = 0.0 if moved else a  # moved by at least the longest window: nothing in common
        return
    n = 1.0
    shift_a = 0
    shift_b = 0
    has_dedup = False
    for k in range(dn[da] + dn[db]):
        j = dl[da, k] if k < dn[da] else dl[db, k - dn[da]]
        d = loops[j, LO_DIM]
        r = roles[j]
        b = loops[j, LO_BOUND]
        st = loops[j, LO_STEP]
        if r == RO_FREE:
            n *= b
        elif r == RO_STEP:
            n *= b - 1
            if d == da:
                shift_a += st
            else:
                shift_b += st
        elif r == RO_RESET:
            if d == da:
                shift_a -= (b - 1) * st
            else:
                shift_b -= (b - 1) * st
        elif r == RO_DEDUP:
            has_dedup = True
    if has_dedup:
        n *= wdist if wdist > 0 else _distinct_window(lp, kind, da, db, loops, n_loops, roles)
    s, dl = _window_coefs(kind, lp)
    ln = (min(ea, lp[da]) - 1) * s + (min(eb, lp[db]) - 1) * dl + 1
    sh = shift_a * s + shift_b * dl
    gsum[gi, GS_A] = n * ln
    if sh != 0:
        gsum[gi, GS_B] = n * max(0, ln - abs(sh))
        gsum[gi, GS_C] = 0.0
    else:
        gsum[gi, GS_B] = 0.0
        gsum[gi, GS_C] = n * ln


@njit(cache=True, _nrt=False)
def _event_total(t, lp, cover, ext, loops, n_loops, roles, idx, gsum, dl, dn):
    """Sum over the configurations described by ``roles`` of the tensor's tile size (no delta)."""
    ng = 0
    while ng < MAX_GROUPS and GROUPS[t, ng, 0] != GK_NONE:
        da = GROUPS[t, ng, 1]
        db = GROUPS[t, ng, 2]
        _group_sums(GROUPS[t, ng, 0], da, db, lp, cover, ext[da], ext[db], loops, n_loops, roles, idx, gsum, ng,
                    dl, dn, 0)
        ng += 1
    return _combine(gsum, ng, False, 1.0)


#: Move classes of one temporal step for one tensor (state codes of Timeloop's gradient are >= MV_SLAB).
MV_NONE, MV_FULL, MV_SLAB = 0, 1, 2
#: Gradient states: none, or a slide class (direction in one window group).
MAX_STATES = 1 + 2 * MAX_GROUPS
#: Layout of the int scratch ``si`` of :func:`_slab_fractions`: temporal loops above the tile, their move
#: classes, a shift and a reset per dim, the state codes and each loop's state.
SI_TL = 0
SI_MV = MAX_LOOPS
SI_SHIFT = 2 * MAX_LOOPS
SI_RESET = SI_SHIFT + NUM_DIMS
SI_CODES = SI_RESET + NUM_DIMS
SI_MVS = SI_CODES + MAX_LOOPS + 1
SLAB_INT_SCRATCH = SI_MVS + MAX_LOOPS
#: Layout of the float scratch ``sf``: per-loop increments of a sweep and of the previous sweep
#: (:func:`_slab_fractions`); afterwards the per-dim reset offsets and per-loop deltas of :func:`_transfers_unpadded`.
SF_INC = 0
SF_LAST = MAX_LOOPS
SF_RESET = 0
SF_DELTA = NUM_DIMS


@njit(cache=True, _nrt=False, inline="always")
def _window_class(t, lp, ext, shift, off):
    """Move class of a tile for per-dim offset changes ``shift[off:off + NUM_DIMS]``: ``MV_NONE``, ``MV_FULL`` (no overlap, or
    several data-space dims change), or ``MV_SLAB + 2*group + (direction > 0)`` (one window slides)."""
    changed = 0
    code = MV_NONE
    for g in range(MAX_GROUPS):
        kind = GROUPS[t, g, 0]
        if kind == GK_NONE:
            break
        if kind == GK_INDICATOR:
            continue
        da = GROUPS[t, g, 1]
        db = GROUPS[t, g, 2]
        if kind == GK_PLAIN:
            if shift[off + da] != 0:
                changed += 1
                code = MV_FULL
            continue
        st, dl = _window_coefs(kind, lp)
        sh = shift[off + da] * st + shift[off + db] * dl
        if sh == 0:
            continue
        changed += 1
        ln = (min(ext[da], lp[da]) - 1) * st + (min(ext[db], lp[db]) - 1) * dl + 1
        if abs(sh) < ln:
            code = MV_SLAB + 2 * g + (1 if sh > 0 else 0)
        else:
            code = MV_FULL
    if changed > 1:
        return MV_FULL
    return code


@njit(cache=True, _nrt=False)
def _slab_fractions(t, lp, ext, loops, n_loops, tile_level, frac, si, memo_final, memo_allowed, sf):
    """Per temporal loop above the tile, the share of its steps at which the tile keeps its overlap.

    Timeloop (AAHR point sets, ``RESET_ON_GRADIENT_CHANGE``) remembers the direction of a tile's last
    slide; a slide in another dim or direction refetches the whole tile and forgets the direction, as
    do unchanged or non-overlapping steps. The step sequence of the loops above the tile is walked per
    loop sweep with the state carried along (a sweep whose start state repeats is extrapolated).
    Returns whether any step slides (else ``frac`` is untouched). Scratch: ``si`` (int64,
    :data:`SLAB_INT_SCRATCH`), ``memo_final[MAX_LOOPS, MAX_STATES]``, ``memo_allowed[MAX_LOOPS, MAX_STATES,
    MAX_LOOPS]``, ``sf`` (float64, 2 * MAX_LOOPS)."""
    m = 0
    for j in range(n_loops):
        if loops[j, LO_LEVEL] < tile_level and loops[j, LO_SPATIAL] == 0:
            si[SI_TL + m] = j
            m += 1
    if m == 0:
        return False
    for q in range(NUM_DIMS):
        si[SI_RESET + q] = 0
    has_slab = False
    for k in range(m - 1, -1, -1):  # inner loops reset when an outer one steps
        j = si[SI_TL + k]
        d = loops[j, LO_DIM]
        for q in range(NUM_DIMS):
            si[SI_SHIFT + q] = si[SI_RESET + q]
        si[SI_SHIFT + d] += loops[j, LO_STEP]
        si[SI_MV + k] = _window_class(t, lp, ext, si, SI_SHIFT)
        if si[SI_MV + k] >= MV_SLAB:
            has_slab = True
        si[SI_RESET + d] -= (loops[j, LO_BOUND] - 1) * loops[j, LO_STEP]
    if not has_slab:
        return False
    # compact state codes: 0 (no direction) and each slide class present
    si[SI_CODES + 0] = 0
    n_states = 1
    for k in range(m):
        if si[SI_MV + k] >= MV_SLAB:
            seen = False
            for q in range(n_states):
                if si[SI_CODES + q] == si[SI_MV + k]:
                    seen = True
            if not seen:
                si[SI_CODES + n_states] = si[SI_MV + k]
                n_states += 1
    for k in range(m):
        si[SI_MVS + k] = -1  # state index of each loop's slide (-1: not a slide)
    for k in range(m):
        for q in range(1, n_states):
            if si[SI_CODES + q] == si[SI_MV + k]:
                si[SI_MVS + k] = q
    # sweep(loop k, start state) -> end state and allowed slides per loop, innermost loop first
    for k in range(m - 1, -1, -1):
        b = loops[si[SI_TL + k], LO_BOUND]
        for s0 in range(n_states):
            state = s0
            if k + 1 < m:
                for q in range(m):
                    memo_allowed[k, s0, q] = memo_allowed[k + 1, state, q]
                state = memo_final[k + 1, state]
            else:
                for q in range(m):
                    memo_allowed[k, s0, q] = 0.0
            prev = -1
            it = 1
            while it < b:
                if state == prev:
                    # this iteration starts like the previous one: the rest repeat it
                    for q in range(m):
                        memo_allowed[k, s0, q] += (b - it) * sf[SF_LAST + q]
                    break
                prev = state
                for q in range(m):
                    sf[SF_INC + q] = 0.0
                st = state
                if si[SI_MVS + k] >= 0 and (st == 0 or st == si[SI_MVS + k]):
                    sf[SF_INC + k] += 1.0
                    st = si[SI_MVS + k]
                else:
                    st = 0
                if k + 1 < m:
                    for q in range(m):
                        sf[SF_INC + q] += memo_allowed[k + 1, st, q]
                    st = memo_final[k + 1, st]
                for q in range(m):
                    memo_allowed[k, s0, q] += sf[SF_INC + q]
                    sf[SF_LAST + q] = sf[SF_INC + q]
                state = st
                it += 1
            memo_final[k, s0] = state
    outer = 1.0
    for k in range(m):
        b = loops[si[SI_TL + k], LO_BOUND]
        steps = outer * (b - 1)
        if steps > 0:
            frac[si[SI_TL + k]] = memo_allowed[0, 0, k] / steps
        outer *= b
    return True


@njit(cache=True, _nrt=False, inline="always")
def _combine(gsum, ng, delta, slab_frac):
    """Event total from the group sums (see :func:`_event_total`)."""
    total = 1.0
    for g in range(ng):
        total *= gsum[g, GS_A]
    if not delta or total == 0.0:
        return total
    same = 1.0
    for g in range(ng):
        same *= gsum[g, GS_C]
    total -= same
    for g in range(ng):
        if gsum[g, GS_B] == 0.0:
            continue
        term = gsum[g, GS_B]
        for h in range(ng):
            if h != g:
                term *= gsum[h, GS_C]
        total -= slab_frac * term
    return total


@njit(cache=True, _nrt=False)
def _transfers_unpadded(t, lp, ext, loops, n_loops, tile_level, roles, first_only, frac, si, memo_final,
                        memo_allowed, sf):
    """:func:`_transfers` when no dim iterated above the tile is padded: every tile has the full size, so an
    event of loop ``i`` (it steps, the loops inside it reset) moves every tile the same way and the total is
    ``instances * (tile + sum_i count_i * delta_i)``: O(loops). Roles are set by the caller."""
    tile = float(_tile_words(t, lp, ext))
    inst = 1.0
    for j in range(n_loops):
        r = roles[j]
        if r == RO_FREE:
            inst *= loops[j, LO_BOUND]
        elif r == RO_DEDUP:
            kind = GROUPS[t, DIM_GROUP[t, loops[j, LO_DIM]], 0]
            if kind == GK_PLAIN:
                inst *= loops[j, LO_BOUND]
    for g in range(MAX_GROUPS):  # distinct sibling windows
        kind = GROUPS[t, g, 0]
        if kind == GK_WINDOW_H or kind == GK_WINDOW_W:
            inst *= _distinct_window(lp, kind, GROUPS[t, g, 1], GROUPS[t, g, 2], loops, n_loops, roles)
    if first_only:
        return inst * tile
    sliding = False
    if t == T_INPUTS:
        for j in range(n_loops):
            frac[j] = 1.0
        sliding = _slab_fractions(t, lp, ext, loops, n_loops, tile_level, frac, si, memo_final, memo_allowed, sf)
    # move class of each temporal loop's event, inside out (as in _slab_fractions)
    for d in range(NUM_DIMS):
        sf[SF_RESET + d] = 0.0
    total = tile
    # events outer to inner need the product of the bounds of the loops before them: walk inner to outer and
    # keep the per-event deltas, then combine outer to inner
    for j in range(n_loops - 1, -1, -1):
        if roles[j] != RO_ZERO:
            continue
        d = loops[j, LO_DIM]
        for q in range(NUM_DIMS):
            si[SI_SHIFT + q] = int(sf[SF_RESET + q])
        si[SI_SHIFT + d] += loops[j, LO_STEP]
        mv = _window_class(t, lp, ext, si, SI_SHIFT)
        if mv == MV_NONE:
            sf[SF_DELTA + j] = 0.0
        elif mv == MV_FULL:
            sf[SF_DELTA + j] = tile
        else:
            g = (mv - MV_SLAB) // 2
            da = GROUPS[t, g, 1]
            db = GROUPS[t, g, 2]
            st, dl_ = _window_coefs(GROUPS[t, g, 0], lp)
            ln = (min(ext[da], lp[da]) - 1) * st + (min(ext[db], lp[db]) - 1) * dl_ + 1
            sh = abs(si[SI_SHIFT + da] * st + si[SI_SHIFT + db] * dl_)
            f = frac[j] if sliding else 1.0
            sf[SF_DELTA + j] = tile - f * (tile / ln) * (ln - sh)
        sf[SF_RESET + d] -= (loops[j, LO_BOUND] - 1) * loops[j, LO_STEP]
    outer = 1.0
    for j in range(n_loops):
        if roles[j] != RO_ZERO:
            continue
        b = loops[j, LO_BOUND]
        total += outer * (b - 1) * sf[SF_DELTA + j]
        outer *= b
    return inst * total


@njit(cache=True, _nrt=False)
def _transfers(t, lp, cover, ext, loops, n_loops, tile_level, dedup_from, roles, idx, gsum, first_only, frac, dl, dn,
               wd, si, memo_final, memo_allowed, sf):
    """Words entering a tile level over time (delta rule), totalled over instances.

    Loops of levels ``< tile_level`` are above the tile; spatial loops of levels ``>= dedup_from`` among them
    are siblings under one parent (identical tiles count once). ``first_only``: count the initial tile only.
    Events are walked outermost loop first; between consecutive events only two loops change role, so only
    their groups are recomputed.
    """
    ng = 0
    while ng < MAX_GROUPS and GROUPS[t, ng, 0] != GK_NONE:
        ng += 1
    padded = False
    for j in range(n_loops):
        if loops[j, LO_LEVEL] >= tile_level:
            roles[j] = RO_SKIP
        else:
            if cover[loops[j, LO_DIM]] != lp[loops[j, LO_DIM]]:
                padded = True
            if loops[j, LO_SPATIAL] == 1:
                roles[j] = RO_DEDUP if loops[j, LO_LEVEL] >= dedup_from else RO_FREE
            else:
                roles[j] = RO_ZERO
    if not padded:
        return _transfers_unpadded(t, lp, ext, loops, n_loops, tile_level, roles, first_only, frac, si, memo_final,
                                   memo_allowed, sf)
    for g in range(ng):  # distinct sibling windows, fixed for this transfer
        wd[g] = 0
        kind = GROUPS[t, g, 0]
        if kind == GK_WINDOW_H or kind == GK_WINDOW_W:
            wd[g] = _distinct_window(lp, kind, GROUPS[t, g, 1], GROUPS[t, g, 2], loops, n_loops, roles)
    for g in range(ng):
        _group_sums(GROUPS[t, g, 0], GROUPS[t, g, 1], GROUPS[t, g, 2], lp, cover, ext[GROUPS[t, g, 1]],
                    ext[GROUPS[t, g, 2]], loops, n_loops, roles, idx, gsum, g, dl, dn, wd[g])
    total = _combine(gsum, ng, False, 1.0)
    if first_only:
        return total
    sliding = False
    if t == T_INPUTS:
        for j in range(n_loops):
            frac[j] = 1.0
        sliding = _slab_fractions(t, lp, ext, loops, n_loops, tile_level, frac, si, memo_final, memo_allowed, sf)
    # an event changes nothing when the stepping loop and every temporal loop inside it (above the tile) run
    # over dims that do not index the tensor and have no padding: walk them inside out
    quiet = si  # quiet[j] = 1: the event of loop j moves nothing (slab scratch, free again here)
    inner_quiet = True
    for j in range(n_loops - 1, -1, -1):
        if roles[j] == RO_ZERO:
            d = loops[j, LO_DIM]
            still = GROUPS[t, DIM_GROUP[t, d], 0] == GK_INDICATOR and cover[d] == lp[d]
            inner_quiet = inner_quiet and still
            quiet[j] = 1 if inner_quiet else 0
    dirty = 0  # bitmask of groups whose sums are stale
    prev = -1
    for i in range(n_loops):
        if roles[i] != RO_ZERO and not (prev >= 0 and roles[i] == RO_RESET):
            continue
        if prev < 0:
            for j in range(n_loops):
                if roles[j] == RO_ZERO:
                    roles[j] = RO_RESET
                    dirty |= 1 << DIM_GROUP[t, loops[j, LO_DIM]]
        else:
            roles[prev] = RO_FREE
            dirty |= 1 << DIM_GROUP[t, loops[prev, LO_DIM]]
        roles[i] = RO_STEP
        dirty |= 1 << DIM_GROUP[t, loops[i, LO_DIM]]
        prev = i
        if quiet[i]:
            continue
        for g in range(ng):
            if (dirty >> g) & 1:
                _group_sums(GROUPS[t, g, 0], GROUPS[t, g, 1], GROUPS[t, g, 2], lp, cover, ext[GROUPS[t, g, 1]],
                            ext[GROUPS[t, g, 2]], loops, n_loops, roles, idx, gsum, g, dl, dn, wd[g])
        dirty = 0
        total += _combine(gsum, ng, True, frac[i] if sliding else 1.0)
    return total


@njit(cache=True, _nrt=False)
def _op_accesses(t, lp, cover, loops, n_loops, dedup_from, roles, idx, gsum, ext1, dl, dn):
    """Operand accesses of the operations (one per valid MAC), merged over MAC instances below level
    ``dedup_from`` that use the same element (multicast / spatial reduction)."""
    for j in range(n_loops):
        if loops[j, LO_SPATIAL] == 1 and loops[j, LO_LEVEL] >= dedup_from:
            roles[j] = RO_DEDUP
        else:
            roles[j] = RO_FREE
    return _event_total(t, lp, cover, ext1, loops, n_loops, roles, idx, gsum, dl, dn)


@njit(cache=True, _nrt=False)
def _partition(t, lp, cover, ext, loops, n_loops, tile_level, roles, idx, gsum, dl, dn):
    """Distinct elements a level holds over time, totalled over its instances."""
    for j in range(n_loops):
        if loops[j, LO_LEVEL] >= tile_level:
            roles[j] = RO_SKIP
        elif loops[j, LO_SPATIAL] == 1:
            roles[j] = RO_FREE
        else:
            roles[j] = RO_UNION
    return _event_total(t, lp, cover, ext, loops, n_loops, roles, idx, gsum, dl, dn)


@njit(cache=True, _nrt=False, inline="always")
def _tile_words(t, lp, ext):
    """Words of the largest tile (at offset 0) with extents ``ext``."""
    if t == T_WEIGHTS:
        return (min(ext[DIM_G], lp[DIM_G]) * min(ext[DIM_K], lp[DIM_K]) * min(ext[DIM_C], lp[DIM_C])
                * min(ext[DIM_R], lp[DIM_R]) * min(ext[DIM_S], lp[DIM_S]))
    if t == T_OUTPUTS:
        return (min(ext[DIM_N], lp[DIM_N]) * min(ext[DIM_G], lp[DIM_G]) * min(ext[DIM_K], lp[DIM_K])
                * min(ext[DIM_P], lp[DIM_P]) * min(ext[DIM_Q], lp[DIM_Q]))
    h = (min(ext[DIM_P], lp[DIM_P]) - 1) * lp[LP_STRIDE_H] + (min(ext[DIM_R], lp[DIM_R]) - 1) * lp[LP_DIL_H] + 1
    w = (min(ext[DIM_Q], lp[DIM_Q]) - 1) * lp[LP_STRIDE_W] + (min(ext[DIM_S], lp[DIM_S]) - 1) * lp[LP_DIL_W] + 1
    return min(ext[DIM_N], lp[DIM_N]) * min(ext[DIM_G], lp[DIM_G]) * min(ext[DIM_C], lp[DIM_C]) * h * w


@njit(cache=True, _nrt=False)
def evaluate_nest(lp, n_levels, arch_int, arch_float, conn, e_mac, tfac, sfac_axes, order, keep,
                  metrics, counts, loops, roles, idx, gsum, ext, cover, ws):
    """Evaluate one mapping on one hierarchy. Returns a validity code; fills ``metrics`` / ``counts``.

    ``tfac[l, d]``, ``sfac_axes[l, a, d]``, ``order[l, :]``, ``keep[l, t]`` (mapping's bypass choice; a level
    keeps a tensor when both the architecture and the mapping say so). Scratch: ``loops[MAX_LOOPS,
    LO_SIZE]``, ``roles[MAX_LOOPS]``, ``idx[MAX_LOOPS]``, ``gsum[MAX_GROUPS, 3]``, ``ext[NUM_DIMS]``,
    ``cover[NUM_DIMS]`` (int64 / float64 as named), and ``ws`` from :func:`workspace`."""
    sfac, dl, dn, ext1, chain, frac, wd, ev, si, memo_final, memo_allowed, sf = ws
    metrics[MT_BAD_LEVEL] = -1.0
    # --- spatial legality and per-level spatial products ---
    for l in range(MAX_LEVELS):
        for d in range(NUM_DIMS):
            sfac[l, d] = 1
    for l in range(n_levels):
        for a in range(MAX_AXES):
            prod = 1
            for d in range(NUM_DIMS):
                f = sfac_axes[l, a, d]
                if f > 1:
                    if a >= arch_int[l, AI_N_AXES] or conn[l, a, d] == 0:
                        metrics[MT_BAD_LEVEL] = l
                        return BAD_SPATIAL
                    prod *= f
                    sfac[l, d] *= f
            if a < arch_int[l, AI_N_AXES] and prod > arch_int[l, AI_AXIS0 + a]:
                metrics[MT_BAD_LEVEL] = l
                return BAD_SPATIAL
    for d in range(NUM_DIMS):
        c = 1
        for l in range(n_levels):
            c *= tfac[l, d] * sfac[l, d]
        cover[d] = c
        if c < lp[d]:
            return BAD_COVER
    for t in range(NUM_TENSORS):
        if not (keep[0, t] and arch_int[0, AI_KEEP_W + t]):
            metrics[MT_BAD_LEVEL] = 0
            return BAD_KEEP
    n_loops = build_loops(tfac, sfac, order, n_levels, loops)
    dn[:] = 0
    for j in range(n_loops):
        d = loops[j, LO_DIM]
        dl[d, dn[d]] = j
        dn[d] += 1

    # --- capacity ---
    for l in range(n_levels):
        if arch_int[l, AI_BOUNDED] == 0:
            continue
        for d in range(NUM_DIMS):
            e = 1
            for m in range(l, n_levels):
                e *= tfac[m, d] * sfac[m, d]
            ext[d] = e
        used = 0.0
        for t in range(NUM_TENSORS):
            if not (keep[l, t] and arch_int[l, AI_KEEP_W + t]):
                continue
            bits = _tile_words(t, lp, ext) * arch_float[l, AF_BITS_W + t] * arch_int[l, AI_MULTIBUF]
            if arch_int[l, AI_PARTITIONED]:
                if bits > arch_float[l, AF_CAP_W + t]:
                    metrics[MT_BAD_LEVEL] = l
                    return BAD_CAPACITY
            used += bits
        if not arch_int[l, AI_PARTITIONED] and used > arch_float[l, AF_CAP_BITS]:
            metrics[MT_BAD_LEVEL] = l
            return BAD_CAPACITY

    # --- counts per tensor along its chain of kept levels ---
    for l in range(n_levels):
        for t in range(NUM_TENSORS):
            for k in range(CT_SIZE):
                counts[l, t, k] = 0.0
    macs = 1.0
    for d in range(NUM_DIMS):
        macs *= lp[d]
    ext1[:] = 1
    for t in range(NUM_TENSORS):
        nc = 0
        for l in range(n_levels):
            if keep[l, t] and arch_int[l, AI_KEEP_W + t]:
                chain[nc] = l
                nc += 1
        # innermost first, so a parent can reuse its child's fills when no fanout lies between them
        for c in range(nc - 1, -1, -1):
            l = chain[c]
            inst = 1
            for m in range(l):
                for d in range(NUM_DIMS):
                    inst *= sfac[m, d]
            for d in range(NUM_DIMS):
                e = 1
                for m in range(l, n_levels):
                    e *= tfac[m, d] * sfac[m, d]
                ext[d] = e
            counts[l, t, CT_TILE] = _tile_words(t, lp, ext)
            counts[l, t, CT_INSTANCES] = inst
            if c > 0:
                counts[l, t, CT_FILLS] = _transfers(t, lp, cover, ext, loops, n_loops, l, n_levels, roles,
                                                    idx, gsum, False, frac, dl, dn, wd, si, memo_final,
                                                    memo_allowed, sf)
            if t == T_OUTPUTS:
                part = _partition(t, lp, cover, ext, loops, n_loops, l, roles, idx, gsum, dl, dn)
            # what this level serves: the next kept level's fills (merged over identical siblings), or the
            # operations
            if c + 1 < nc:
                child = chain[c + 1]
                fanned = False
                for m in range(l, child):
                    for d in range(NUM_DIMS):
                        if sfac[m, d] > 1:
                            fanned = True
                if not fanned:
                    served = counts[child, t, CT_FILLS]
                else:
                    for d in range(NUM_DIMS):
                        e = 1
                        for m in range(child, n_levels):
                            e *= tfac[m, d] * sfac[m, d]
                        ext[d] = e
                    served = _transfers(t, lp, cover, ext, loops, n_loops, child, l, roles, idx, gsum, False, frac,
                                        dl, dn, wd, si, memo_final, memo_allowed, sf)
            else:
                served = _op_accesses(t, lp, cover, loops, n_loops, l, roles, idx, gsum, ext1, dl, dn)
            if t == T_OUTPUTS:
                counts[l, t, CT_PARTITION] = part
                counts[l, t, CT_UPDATES] = served
                counts[l, t, CT_READS] = served - part
            else:
                counts[l, t, CT_READS] = served

    # --- energy ---
    e_total = macs * e_mac
    metrics[MT_E_MAC] = e_total
    metrics[MT_E_W] = 0.0
    metrics[MT_E_I] = 0.0
    metrics[MT_E_O] = 0.0
    e_noc_total = 0.0
    for l in range(MAX_LEVELS):
        metrics[MT_E_LEVEL0 + l] = 0.0
    for l in range(n_levels):
        blk = arch_int[l, AI_BLOCK]
        e_l = 0.0
        for t in range(NUM_TENSORS):
            inst = counts[l, t, CT_INSTANCES]
            if inst == 0.0:
                continue
            scale = arch_float[l, AF_BITS_W + t] / arch_float[l, AF_WORD_BITS]
            er = arch_float[l, AF_E_READ]
            ef = arch_float[l, AF_E_FILL]
            eu = arch_float[l, AF_E_UPDATE]
            r = counts[l, t, CT_READS] * scale / inst
            f = counts[l, t, CT_FILLS] * scale / inst
            u = counts[l, t, CT_UPDATES] * scale / inst
            if er == ef and ef == eu:
                # one vector count for all accesses of the tensor, per instance (Timeloop's rule)
                e_t = math.ceil((r + f + u) / blk - 1e-9) * er * inst
            else:
                e_t = (math.ceil(r / blk - 1e-9) * er + math.ceil(f / blk - 1e-9) * ef
                       + math.ceil(u / blk - 1e-9) * eu) * inst
            e_l += e_t
            metrics[MT_E_W + t] += e_t
        # words delivered to the children of this level (their fills from here)
        if arch_float[l, AF_E_NOC] > 0.0:
            for t in range(NUM_TENSORS):
                nxt = -1
                for m in range(l + 1, n_levels):
                    if keep[m, t] and arch_int[m, AI_KEEP_W + t]:
                        nxt = m
                        break
                if nxt >= 0:
                    # per word of the child's width: a narrower tensor moves proportionally fewer bits
                    e_n = (counts[nxt, t, CT_FILLS] * arch_float[l, AF_E_NOC]
                           * arch_float[nxt, AF_BITS_W + t] / arch_float[nxt, AF_WORD_BITS])
                    e_noc_total += e_n
                    metrics[MT_E_W + t] += e_n
                    e_l += e_n
        metrics[MT_E_LEVEL0 + l] = e_l
        e_total += e_l
    metrics[MT_E_NOC] = e_noc_total

    # --- cycles ---
    compute = 1.0
    for l in range(n_levels):
        for d in range(NUM_DIMS):
            compute *= tfac[l, d]
    inner = n_levels - 1
    lanes = arch_int[inner, AI_MAC_LANES]
    if lanes > 1:
        # fused MAC lanes add products of one output: they take the innermost level's reduction iterations
        red = tfac[inner, DIM_C] * tfac[inner, DIM_R] * tfac[inner, DIM_S]
        compute = compute / red * math.ceil(red / lanes)
    compute *= arch_int[inner, AI_MAC_PASSES]
    n_macs = 1.0
    for l in range(n_levels):
        for d in range(NUM_DIMS):
            n_macs *= sfac[l, d]
    total_pes = 1.0
    for l in range(n_levels):
        for a in range(arch_int[l, AI_N_AXES]):
            total_pes *= arch_int[l, AI_AXIS0 + a]
    for l in range(n_levels):
        if arch_int[l, AI_SYSTOLIC] == 0 or arch_int[l, AI_N_AXES] == 0:
            continue
        # folds: tile changes, at the level below the systolic fanout, of the tensor the array holds still:
        # the one every unrolled dim indexes (one distinct element per PE: weights for ws, outputs for os,
        # inputs for is); if none or several qualify, the one that changes least
        below = l + 1
        best = -1
        best_unique = False
        for t in range(NUM_TENSORS):
            e = 1.0
            run = True
            for j in range(n_loops - 1, -1, -1):
                if loops[j, LO_LEVEL] >= below or loops[j, LO_SPATIAL] == 1:
                    continue
                if run and RELEVANT[t, loops[j, LO_DIM]] == 0:
                    continue
                run = False
                e *= loops[j, LO_BOUND]
            ev[t] = e
            unique = True
            for d in range(NUM_DIMS):
                if sfac[l, d] > 1 and RELEVANT[t, d] == 0:
                    unique = False
            better = best < 0 or (unique and not best_unique) or (unique == best_unique and e < ev[best])
            if better:
                best = t
                best_unique = unique
        folds = ev[best]
        skew = 0
        for a in range(arch_int[l, AI_N_AXES]):
            skew += arch_int[l, AI_AXIS0 + a] - 1
        if best != T_OUTPUTS:
            skew += arch_int[l, AI_AXIS0]  # operands enter skewed and results leave through the rows
        # SCALE-Sim 3.0's count: folds * (fill + stream + drain) - 1 (never below the loop iterations: a 1x1
        # output-stationary "array" has no skew to take the cycle from)
        compute += max(0.0, folds * skew - 1)
    overlapped = compute
    stalls = 0.0
    for l in range(n_levels):
        rd = 0.0
        wr = 0.0
        net = 0.0
        inst = 1.0
        for t in range(NUM_TENSORS):
            if counts[l, t, CT_INSTANCES] > 0.0:
                inst = counts[l, t, CT_INSTANCES]
                scale = arch_float[l, AF_BITS_W + t] / arch_float[l, AF_WORD_BITS]
                rd += counts[l, t, CT_READS] * scale
                wr += (counts[l, t, CT_FILLS] + counts[l, t, CT_UPDATES]) * scale
                net += (counts[l, t, CT_READS] + counts[l, t, CT_UPDATES]) * scale
        port = max(math.ceil(rd / inst / arch_float[l, AF_READ_BW]), math.ceil(wr / inst / arch_float[l, AF_WRITE_BW]))
        overlapped = max(overlapped, port)
        net_cyc = math.ceil(net / inst / arch_float[l, AF_NET_BW])
        # network transfers stall unless the level they feed (the next level) overlaps its fills
        feeds_stall = False
        if l + 1 < n_levels:
            feeds_stall = arch_int[l + 1, AI_STALL] == 1
        if feeds_stall:
            stalls += net_cyc
        else:
            overlapped = max(overlapped, net_cyc)
    cycles = overlapped + stalls
    metrics[MT_CYCLES] = cycles
    metrics[MT_COMPUTE] = compute
    metrics[MT_ENERGY] = e_total
    metrics[MT_EDP] = e_total * cycles
    # of the peak: every PE's MAC at its products per cycle (lanes / passes)
    peak = total_pes * arch_int[inner, AI_MAC_LANES] / arch_int[inner, AI_MAC_PASSES]
    metrics[MT_UTIL] = macs / (peak * compute) if total_pes > 0 else 0.0
    metrics[MT_MACS] = macs
    return OK


@njit(cache=True)
def evaluate_nest_batch(lp, n_levels, ai, af, conn, e_mac, temporal, spatial, order, keep):
    """Evaluate a batch of mappings (arrays stacked on a leading axis).

    Kept in this module: numba's cache does not follow imports, so every compiled caller of the kernel
    lives in the kernel's own file and is recompiled with it."""
    n = temporal.shape[0]
    codes = np.zeros(n, dtype=np.int64)
    metrics = np.full((n, MT_SIZE), np.inf)
    counts = np.zeros((n, MAX_LEVELS, NUM_TENSORS, CT_SIZE))
    loops = np.zeros((MAX_LOOPS, LO_SIZE), dtype=np.int64)
    roles = np.zeros(MAX_LOOPS, dtype=np.int64)
    idx = np.zeros(IDX_SCRATCH, dtype=np.int64)
    gsum = np.zeros((MAX_GROUPS, 3), dtype=np.float64)
    ext = np.zeros(NUM_DIMS, dtype=np.int64)
    cover = np.zeros(NUM_DIMS, dtype=np.int64)
    ws = workspace()
    for i in range(n):
        codes[i] = evaluate_nest(lp, n_levels, ai, af, conn, e_mac, temporal[i], spatial[i], order[i], keep[i],
                                 metrics[i], counts[i], loops, roles, idx, gsum, ext, cover, ws)
    return codes, metrics, counts



@njit(cache=True)
def workspace():
    """Per-thread work arrays of :func:`evaluate_nest` (allocated once per batch, not per mapping)."""
    return (
        np.ones((MAX_LEVELS, NUM_DIMS), dtype=np.int64),  # spatial factor per level and dim
        np.zeros((NUM_DIMS, MAX_LOOPS), dtype=np.int64),  # loops of each dim
        np.zeros(NUM_DIMS, dtype=np.int64),
        np.ones(NUM_DIMS, dtype=np.int64),  # unit extents (operations)
        np.zeros(MAX_LEVELS, dtype=np.int64),  # chain of levels keeping a tensor
        np.ones(MAX_LOOPS, dtype=np.float64),  # slide fractions
        np.zeros(MAX_GROUPS, dtype=np.int64),  # distinct sibling windows
        np.zeros(NUM_TENSORS, dtype=np.float64),  # fold events
        np.zeros(SLAB_INT_SCRATCH, dtype=np.int64),
        np.empty((MAX_LOOPS, MAX_STATES), dtype=np.int64),
        np.empty((MAX_LOOPS, MAX_STATES, MAX_LOOPS), dtype=np.float64),
        np.zeros(2 * MAX_LOOPS, dtype=np.float64),
    )


def scratch() -> tuple[np.ndarray, ...]:
    """Scratch arrays for :func:`evaluate_nest` (``loops, roles, idx, gsum, ext, cover``)."""
    return (
        np.zeros((MAX_LOOPS, LO_SIZE), dtype=np.int64),
        np.zeros(MAX_LOOPS, dtype=np.int64),
        np.zeros(IDX_SCRATCH, dtype=np.int64),
        np.zeros((MAX_GROUPS, 3), dtype=np.float64),
        np.zeros(NUM_DIMS, dtype=np.int64),
        np.zeros(NUM_DIMS, dtype=np.int64),
    )


# ---- the DRAM -> L2 -> array -> L1 family (hwmodel.family) ------------------------------------------------
#: Metric columns of the family's evaluation (``hwmodel.costmodel.METRICS``).
FAMILY_METRICS: tuple[str, ...] = (
    "cycles", "compute_cycles", "energy", "edp", "utilization",
    "e_mac", "e_l1", "e_noc", "e_l2", "e_dram",
    "e_weights", "e_inputs", "e_outputs", "macs",
)
FM_CYCLES, FM_COMPUTE, FM_ENERGY, FM_EDP, FM_UTIL = 0, 1, 2, 3, 4
FM_E_MAC, FM_E_L1, FM_E_NOC, FM_E_L2, FM_E_DRAM = 5, 6, 7, 8, 9
FM_E_W, FM_E_I, FM_E_O, FM_MACS = 10, 11, 12, 13
#: Per-tensor access columns (words): L1 side, words delivered to the PEs, L2, DRAM.
FAMILY_ACCESS: tuple[str, ...] = ("l1_reads", "l1_writes", "noc", "l2_reads", "l2_writes", "dram_reads", "dram_writes")
FA_L1_READS, FA_L1_WRITES, FA_NOC, FA_L2_READS, FA_L2_WRITES, FA_DRAM_READS, FA_DRAM_WRITES = range(7)
#: The family's validity codes.
FAMILY_INVALID: tuple[str, ...] = (
    "valid",
    "factors do not cover the layer",
    "spatial unroll exceeds an axis or its connectivity",
    "L1 tiles exceed the L1 capacity",
    "L2 tiles exceed the L2 capacity",
)
F_BAD_L1, F_BAD_L2 = 3, 4
F_DRAM, F_L2, F_L1 = 0, 1, 2


@njit(cache=True, _nrt=False, inline="always")
def family_nest(temporal, spatial, order, n_levels, tf, sfa, od, kp):
    """Write a 3-level mapping (rows DRAM, L2, L1; array axes) as nest arrays for the family hierarchy."""
    for l in range(MAX_LEVELS):
        for d in range(NUM_DIMS):
            tf[l, d] = 1
            od[l, d] = d
            for a in range(MAX_AXES):
                sfa[l, a, d] = 1
        for t in range(NUM_TENSORS):
            kp[l, t] = 1 if l < n_levels else 0
    last = n_levels - 1
    for d in range(NUM_DIMS):
        tf[F_DRAM, d] = temporal[0, d]
        tf[F_L2, d] = temporal[1, d]
        tf[last, d] = temporal[2, d]
        od[F_DRAM, d] = order[0, d]
        od[F_L2, d] = order[1, d]
        od[last, d] = order[2, d]
        for a in range(MAX_AXES):
            sfa[F_L2, a, d] = spatial[a, d]


@njit(cache=True, aot=AotSignature("boolean", ("int64[::1]", "int64[:, ::1]", "int64[:, ::1]", "int64", "int64",
                                               "int64[:, ::1]", "float64[:, ::1]")))
def family_fits(lp, temporal, spatial, lvl, n_levels, ai, af):
    """Whether the L1 (``lvl`` 0) or L2 (``lvl`` 1) tiles of a partial 3-level mapping fit (DRAM ignored)."""
    ext = np.empty(NUM_DIMS, dtype=np.int64)
    for d in range(NUM_DIMS):
        v = temporal[2, d]
        if lvl == 1:
            v *= temporal[1, d]
            for a in range(MAX_AXES):
                v *= spatial[a, d]
        ext[d] = v
    lo = F_L1 if lvl == 0 else F_L2
    hi = n_levels if lvl == 0 else F_L2 + 1
    for l in range(lo, hi):
        used = 0.0
        for t in range(NUM_TENSORS):
            if ai[l, AI_KEEP_W + t] == 0:
                continue
            bits = _tile_words(t, lp, ext) * af[l, AF_BITS_W + t] * ai[l, AI_MULTIBUF]
            if ai[l, AI_PARTITIONED] and bits > af[l, AF_CAP_W + t]:
                return False
            used += bits
        if not ai[l, AI_PARTITIONED] and used > af[l, AF_CAP_BITS]:
            return False
    return True


@njit(cache=True)
def options_fit(lp, temporal, spatial, d, options, n_levels, ai, af, out):
    """``out[j]``: whether the L1 and L2 tiles of a partial 3-level mapping fit with dim ``d``'s (DRAM, L2, L1)
    factors at ``options[j]`` (the other dims as in ``temporal``, which is left as it was): the exact mapper's
    check of every option of the next dim at once."""
    saved = temporal[:, d].copy()
    for j in range(options.shape[0]):
        temporal[:, d] = options[j]
        out[j] = (family_fits(lp, temporal, spatial, 0, n_levels, ai, af)
                  and family_fits(lp, temporal, spatial, 1, n_levels, ai, af))
    temporal[:, d] = saved


@njit(cache=True, _nrt=False)
def family_evaluate_one(lp, temporal, spatial, order, n_levels, ai, af, conn, e_mac, metrics, counts,
                        tf, sfa, od, kp, nmet, ncnt, loops, roles, idx, gsum, ext, cover, ws):
    """Evaluate a 3-level mapping on a family hierarchy; fills ``metrics`` (:data:`FAMILY_METRICS`) and
    ``counts[3, 7]`` (:data:`FAMILY_ACCESS`) and returns a :data:`FAMILY_INVALID` code."""
    family_nest(temporal, spatial, order, n_levels, tf, sfa, od, kp)
    code = evaluate_nest(lp, n_levels, ai, af, conn, e_mac, tf, sfa, od, kp, nmet, ncnt, loops, roles, idx,
                         gsum, ext, cover, ws)
    if code == BAD_CAPACITY:
        return F_BAD_L2 if nmet[MT_BAD_LEVEL] == F_L2 else F_BAD_L1
    if code != OK:
        return code
    for t in range(NUM_TENSORS):
        l1 = F_L1
        for l in range(F_L1, n_levels):
            if ai[l, AI_KEEP_W + t]:
                l1 = l
                break
        counts[t, FA_L1_READS] = ncnt[l1, t, CT_READS]
        counts[t, FA_L1_WRITES] = ncnt[l1, t, CT_FILLS] + ncnt[l1, t, CT_UPDATES]
        counts[t, FA_NOC] = ncnt[l1, t, CT_FILLS]
        counts[t, FA_L2_READS] = ncnt[F_L2, t, CT_READS]
        counts[t, FA_L2_WRITES] = ncnt[F_L2, t, CT_FILLS] + ncnt[F_L2, t, CT_UPDATES]
        counts[t, FA_DRAM_READS] = ncnt[F_DRAM, t, CT_READS]
        counts[t, FA_DRAM_WRITES] = ncnt[F_DRAM, t, CT_UPDATES]
    e_l1 = 0.0
    for l in range(F_L1, n_levels):
        e_l1 += nmet[MT_E_LEVEL0 + l]
    metrics[FM_CYCLES] = nmet[MT_CYCLES]
    metrics[FM_COMPUTE] = nmet[MT_COMPUTE]
    metrics[FM_ENERGY] = nmet[MT_ENERGY]
    metrics[FM_EDP] = nmet[MT_EDP]
    metrics[FM_UTIL] = nmet[MT_UTIL]
    metrics[FM_E_MAC] = nmet[MT_E_MAC]
    metrics[FM_E_L1] = e_l1
    metrics[FM_E_NOC] = nmet[MT_E_NOC]
    metrics[FM_E_L2] = nmet[MT_E_LEVEL0 + F_L2] - nmet[MT_E_NOC]
    metrics[FM_E_DRAM] = nmet[MT_E_LEVEL0 + F_DRAM]
    metrics[FM_E_W] = nmet[MT_E_W]
    metrics[FM_E_I] = nmet[MT_E_I]
    metrics[FM_E_O] = nmet[MT_E_O]
    metrics[FM_MACS] = nmet[MT_MACS]
    return OK


@njit(cache=True)
def family_scratch():
    """Scratch arrays for :func:`family_evaluate_one` (one set per thread)."""
    return (
        np.ones((MAX_LEVELS, NUM_DIMS), dtype=np.int64),
        np.ones((MAX_LEVELS, MAX_AXES, NUM_DIMS), dtype=np.int64),
        np.zeros((MAX_LEVELS, NUM_DIMS), dtype=np.int64),
        np.ones((MAX_LEVELS, NUM_TENSORS), dtype=np.int64),
        np.zeros(MT_SIZE, dtype=np.float64),
        np.zeros((MAX_LEVELS, NUM_TENSORS, CT_SIZE), dtype=np.float64),
        np.zeros((MAX_LOOPS, LO_SIZE), dtype=np.int64),
        np.zeros(MAX_LOOPS, dtype=np.int64),
        np.zeros(IDX_SCRATCH, dtype=np.int64),
        np.zeros((MAX_GROUPS, 3), dtype=np.float64),
        np.zeros(NUM_DIMS, dtype=np.int64),
        np.zeros(NUM_DIMS, dtype=np.int64),
    )


_FAMILY_CHUNK = 512


@njit(cache=True)
def _family_range(lp, temporal, spatial, order, n_levels, ai, af, conn, e_mac, codes, metrics, counts, lo, hi):
    tf, sfa, od, kp, nmet, ncnt, loops, roles, idx, gsum, ext, cover = family_scratch()
    ws = workspace()
    for i in range(lo, hi):
        codes[i] = family_evaluate_one(lp, temporal[i], spatial[i], order[i], n_levels, ai, af, conn, e_mac,
                                       metrics[i], counts[i], tf, sfa, od, kp, nmet, ncnt, loops, roles, idx,
                                       gsum, ext, cover, ws)


@njit(cache=True, parallel=True)
def _family_parallel(lp, temporal, spatial, order, n_levels, ai, af, conn, e_mac, codes, metrics, counts):
    n = temporal.shape[0]
    for c in prange((n + _FAMILY_CHUNK - 1) // _FAMILY_CHUNK):
        _family_range(lp, temporal, spatial, order, n_levels, ai, af, conn, e_mac, codes, metrics, counts,
                      c * _FAMILY_CHUNK, min(n, (c + 1) * _FAMILY_CHUNK))


#: Arguments of :func:`family_evaluate_batch` (``lp``, ``temporal`` / ``spatial`` / ``order``, ``n_levels``, ``ai``,
#: ``af``, ``conn``, ``e_mac``) and its result ``(codes, metrics, counts)``.
FAMILY_BATCH_SIGNATURE = AotSignature(
    "Tuple((int64[::1], float64[:, ::1], float64[:, :, ::1]))",
    ("int64[::1]", "int64[:, :, ::1]", "int64[:, :, ::1]", "int64[:, :, ::1]", "int64", "int64[:, ::1]",
     "float64[:, ::1]", "int64[:, :, ::1]", "float64"))


@njit(cache=True, inline="always")
def _family_outputs(n):
    return (np.zeros(n, dtype=np.int64), np.full((n, len(FAMILY_METRICS)), np.inf),
            np.zeros((n, NUM_TENSORS, len(FAMILY_ACCESS))))


@njit(cache=True, aot=FAMILY_BATCH_SIGNATURE)
def family_evaluate_batch(lp, temporal, spatial, order, n_levels, ai, af, conn, e_mac):
    """Evaluate a batch of 3-level mappings on one thread; returns ``(codes, metrics, counts)``."""
    codes, metrics, counts = _family_outputs(temporal.shape[0])
    _family_range(lp, temporal, spatial, order, n_levels, ai, af, conn, e_mac, codes, metrics, counts, 0,
                  temporal.shape[0])
    return codes, metrics, counts


@njit(cache=True)
def family_evaluate_batch_threads(lp, temporal, spatial, order, n_levels, ai, af, conn, e_mac):
    """:func:`family_evaluate_batch` on numba's threads. The outputs are allocated here, outside the
    ``parallel=True`` function, which would run even its array initialisations as parallel loops."""
    codes, metrics, counts = _family_outputs(temporal.shape[0])
    _family_parallel(lp, temporal, spatial, order, n_levels, ai, af, conn, e_mac, codes, metrics, counts)
    return codes, metrics, counts
