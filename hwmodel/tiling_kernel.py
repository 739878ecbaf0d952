"""The compiled core of the exact mapper's walk: the tiling bound of :mod:`hwmodel.tiling_bound` from per-dim
summaries, for every option of the next dim at once (whether they fit is :func:`hwmodel.nestkernel.options_fit`).

The rules are :mod:`hwmodel.tiling_bound`'s (its module docstring derives them); this module only evaluates them.
A partial tiling is described by one summary row per dim (``DS_*``: the dim's own option, or the least over its
options while it is unassigned) and one row per input window (``PS_*``: P with R, Q with S). Counts are float64:
exact for the integers involved (< 2**53), and where a division rounds, the bound can only come out lower.
"""

from __future__ import annotations

import math

import numpy as np

from hwmodel.jit import AotSignature, njit

# ---- a dim's summary row: each field the least over the dim's options (flags: whether some / every option) ------
DS_COMPUTE = 0  # temporal iterations t0 * t1 * t2
DS_ABOVE_L1 = 1  # DRAM and L2 iterations t0 * t1 (systolic folds)
DS_STEPS_L1 = 2  # steps above L1 with a valid index, summed over PEs
DS_STEPS_L2 = 3  # steps above L2 with a valid index
DS_ACTIVE = 4  # array positions along the dim that do some work
DS_DRAM_STEPS = 5  # DRAM steps with a valid index, summed over array positions
DS_L2_MAYBE = 6  # some option has an L2 loop > 1
DS_L2_SURELY = 7  # every option has one
DS_L2_UNIT = 8  # some option has none
DS_DRAM_MAYBE = 9
DS_DRAM_UNIT = 10
DS_L1_FACTOR = 11  # the L1 factor when the dim has one option, else 0 (unknown)
DS_L2_FACTOR = 12  # the L2 factor likewise
DS_SIZE = 13

# ---- an input window's row (P with R, Q with S) ------------------------------------------------------------------
PS_WINDOW_L1 = 0  # summed bounding-box rows of the tiles over the steps above L1
PS_WINDOW_L2 = 1  # ... above L2
PS_FOOTPRINT = 2  # distinct rows per PE, summed over the PEs
PS_SWEEP_A = 3  # rows the L2 receives per sweep of a's DRAM loop (every a), summed over b's DRAM positions
PS_SWEEP_B = 4  # ... per sweep of b's DRAM loop, summed over a's DRAM positions
PS_SIZE = 5
WINDOW_PAIRS = ((4, 6), (5, 7))  # (P, R), (Q, S) in hwmodel.layer.DIMS order

# ---- per-tensor constants: rows of ``tc[TC_*, t]`` ---------------------------------------------------------------
TC_COMPULSORY = 0  # elements that must cross DRAM -> L2 once
TC_E_FILL_L1 = 1  # pJ per L1 fill of an element (the L1 write and its NoC word)
TC_E_L2 = 2  # pJ per L2 access serving an L1 fill (weights, inputs: a read; outputs: an update)
TC_E_FILL_L2 = 3  # pJ per L2 fill from DRAM (the fill and the DRAM read)
TC_E_DRAM_READ = 4  # pJ per DRAM read of an element
TC_OUTER_WORDS = 5  # words per element outside the PEs
TC_SHARED = 6  # most PEs one L2 read can serve (multicast)
TC_E_L2_REREAD = 7  # outputs: pJ per L2 read of a partial sum sent back down (every update but the first of each)
TC_SIZE = 8

# ---- scalars: ``sc[SC_*]`` ------------------------------------------------------------------------------------------
SC_E_MACS = 0  # every MAC's energy with its L1 accesses
SC_LANES = 1
SC_PASSES = 2
SC_SYSTOLIC = 3
SC_SKEW_AXES = 4  # sum of (axis - 1) over the array's axes
SC_ARRAY0 = 5  # the first axis
SC_DRAM_BW = 6
SC_NOC_BW = 7
SC_L1_STALLS = 8  # 1: the L1 is single-buffered
SC_L2_STALLS = 9
SC_FLOOR_CYCLES = 10  # the mapping-independent bound (hwmodel.bounds.lower_bound)
SC_FLOOR_ENERGY = 11
SC_STRIDE_H, SC_STRIDE_W, SC_DIL_H, SC_DIL_W = 12, 13, 14, 15
SC_SIZE = 16

WEIGHTS, INPUTS, OUTPUTS = 0, 1, 2
DIM_K, DIM_C, DIM_R, DIM_S = 2, 3, 6, 7
NO_LOOP = -1  # "no temporal loop > 1 above the level" among the innermost-loop candidates


@njit(cache=True, inline="always")
def _fill(x, t, floor, refetch, held, indexed, window, apart):
    """Fills of tensor ``t`` when ``x`` is the innermost loop > 1 above the level (``NO_LOOP``: none); ``apart``:
    ``x`` is a window dim whose steps move the input tile past its whole extent."""
    if x == NO_LOOP:
        return floor[t]
    if indexed[t, x] and (not (t == INPUTS and window[x]) or apart):
        return max(floor[t], refetch[t])  # x indexes t through a disjoint dim: every step refills the tile
    if not indexed[t, x]:
        return max(floor[t], held[t])  # the tensor the level holds while x iterates
    return floor[t]


#: Rows of the scratch ``work`` (:func:`scratch`): per-tensor / per-dim intermediates of :func:`level_terms`.
W_FLOOR_L1, W_REFETCH_L1, W_REFETCH_L2, W_HELD, W_ZERO, W_OUTSIDE, W_SWEEP, W_SHARED, W_APART_L1, W_APART_L2 = range(10)
W_OUTSIDE_L1 = 10  # inputs' L1 refetch without one window's factor (per window), for :func:`_slide_gain`
WORK_ROWS = 11


@njit(cache=True)
def scratch():
    """``(terms, work)`` for :func:`bound_of`: allocated once per batch of bounds."""
    return np.empty((2, 9, 2)), np.zeros((WORK_ROWS, 8))


#: ``terms[level, x - NO_LOOP, TERM_*]``: a level's fill terms with ``x`` its innermost loop (``inf``: impossible).
TERM_ENERGY, TERM_WORDS = 0, 1
LEVEL_L1, LEVEL_L2 = 0, 1  # the L1's fills (from L2), the L2's fills (from DRAM)


@njit(cache=True)
def level_terms(rows, pairs, sizes, unroll, indexed, window, tc, sc, terms, work):
    """Fill ``terms`` (2 x 9 x 2) for the partial tiling ``rows`` (8 x DS_SIZE) with input windows ``pairs``
    (2 x PS_SIZE): per level and per choice of its innermost loop ``X`` above it (or none), the energy of its
    fills (with the L2 accesses serving the L1's, the DRAM reads feeding the L2's) and the words they move over
    the level's network. ``X`` of the L1 is an L2 loop > 1 if the L2 has one, else a DRAM loop. ``work``: scratch
    (``WORK_ROWS`` x 8; nothing is allocated here)."""
    l2_surely = False
    no_l2 = True
    no_dram = True
    for d in range(8):
        l2_surely = l2_surely or rows[d, DS_L2_SURELY] > 0
        no_l2 = no_l2 and rows[d, DS_L2_UNIT] > 0
        no_dram = no_dram and rows[d, DS_DRAM_UNIT] > 0
    work[:] = 0.0
    floor_l1, refetch_l1, refetch_l2 = work[W_FLOOR_L1], work[W_REFETCH_L1], work[W_REFETCH_L2]
    held, zero, refetch_l2_outside = work[W_HELD], work[W_ZERO], work[W_OUTSIDE]
    apart, sweep, shared = work[W_APART_L1:W_APART_L2 + 1], work[W_SWEEP], work[W_SHARED]
    compulsory = tc[TC_COMPULSORY]
    for t in range(3):
        foot, r1, r2, stationary, surely = 1.0, 1.0, 1.0, 1.0, False
        for d in range(8):
            if indexed[t, d]:
                stationary *= sizes[d]
                surely = surely or rows[d, DS_L2_SURELY] > 0
            else:
                stationary *= rows[d, DS_DRAM_STEPS]
            if t == INPUTS and window[d]:
                continue
            foot *= sizes[d] if indexed[t, d] else rows[d, DS_ACTIVE]
            r1 *= sizes[d] if indexed[t, d] else rows[d, DS_STEPS_L1]
            r2 *= sizes[d] if indexed[t, d] else rows[d, DS_STEPS_L2]
        if t == INPUTS:
            foot *= pairs[0, PS_FOOTPRINT] * pairs[1, PS_FOOTPRINT]
            work[W_OUTSIDE_L1, 0] = r1 * pairs[1, PS_WINDOW_L1]  # all but the rows window
            work[W_OUTSIDE_L1, 1] = r1 * pairs[0, PS_WINDOW_L1]
            r1 *= pairs[0, PS_WINDOW_L1] * pairs[1, PS_WINDOW_L1]
            refetch_l2_outside[0] = r2 * pairs[1, PS_WINDOW_L2]  # all but the rows window
            refetch_l2_outside[1] = r2 * pairs[0, PS_WINDOW_L2]
            r2 *= pairs[0, PS_WINDOW_L2] * pairs[1, PS_WINDOW_L2]
        elif surely:
            held[t] = stationary  # an L2 loop indexes it: its innermost indexing loop is below every DRAM loop
        floor_l1[t], refetch_l1[t], refetch_l2[t] = foot, r1, r2

    # inputs along a window (rows: P with R; columns: Q with S): when X is a loop over one of its dims, every step
    # of the loops above the level moves the input tile along the window (or changes another data-space dim: a
    # whole new tile); when every such move is at least the tile's extent the new tile is disjoint from the last
    # one and filled whole, as for a disjoint dim. (:func:`_window_apart`)
    for w in range(2):
        a, b = WINDOW_PAIRS[w]
        if (rows[a, DS_L1_FACTOR] == 0 or rows[b, DS_L1_FACTOR] == 0 or rows[a, DS_L2_FACTOR] == 0
                or rows[b, DS_L2_FACTOR] == 0):
            continue  # a free dim: its factors are not known
        weights = (sc[SC_STRIDE_H + w], sc[SC_DIL_H + w])
        for level in range(2):
            apart[level, a] = _window_apart(rows[a], rows[b], unroll[a], unroll[b], weights[0], weights[1], level)
            apart[level, b] = _window_apart(rows[b], rows[a], unroll[b], unroll[a], weights[1], weights[0], level)

    # inputs above L2 when X' (a DRAM loop) sweeps a window dim x: if every step that resets it moves the tile by at
    # least its extent, each sweep starts on a disjoint tile and receives at least the union of its tiles, the rows
    # of every x against the other dim's tile: (the fills of the other dims' tiles) x PS_SWEEP
    for w in range(2):
        a, b = WINDOW_PAIRS[w]
        if (rows[a, DS_L1_FACTOR] == 0 or rows[b, DS_L1_FACTOR] == 0 or rows[a, DS_L2_FACTOR] == 0
                or rows[b, DS_L2_FACTOR] == 0):
            continue
        rest = refetch_l2_outside[w]
        weights = (sc[SC_STRIDE_H + w], sc[SC_DIL_H + w])
        if _sweep_clear(rows[a], rows[b], unroll[a], unroll[b], weights[0], weights[1]):
            sweep[a] = rest * pairs[w, PS_SWEEP_A]
        if _sweep_clear(rows[b], rows[a], unroll[b], unroll[a], weights[1], weights[0]):
            sweep[b] = rest * pairs[w, PS_SWEEP_B]

    # PEs one L2 read of inputs can serve: those apart only along K, and along each window at most the PEs with
    # equal offsets p * A + r * B (A = t2_p * stride, B = t2_r * dilation): a line through the unroll box, on
    # which p moves in steps of B / g and r of A / g (g = gcd(A, B))
    shared[:3] = tc[TC_SHARED]
    refined = unroll[DIM_K]
    for w in range(2):
        a, b = WINDOW_PAIRS[w]
        group = min(unroll[a], unroll[b])
        if rows[a, DS_L1_FACTOR] > 0 and rows[b, DS_L1_FACTOR] > 0:
            step_a = int(rows[a, DS_L1_FACTOR] * sc[SC_STRIDE_H + w])
            step_b = int(rows[b, DS_L1_FACTOR] * sc[SC_DIL_H + w])
            g = math.gcd(step_a, step_b)
            group = min(group, math.ceil(unroll[a] / (step_b // g)), math.ceil(unroll[b] / (step_a // g)))
        refined *= group
    shared[INPUTS] = min(shared[INPUTS], refined)

    terms[:] = np.inf
    any_l1, any_l2 = False, False
    for d in range(8):
        any_l1 = any_l1 or rows[d, DS_L2_MAYBE] > 0 or (not l2_surely and rows[d, DS_DRAM_MAYBE] > 0)
        any_l2 = any_l2 or rows[d, DS_DRAM_MAYBE] > 0
    for x in range(NO_LOOP, 8):
        if x == NO_LOOP:
            possible = not any_l1 or (no_l2 and no_dram)
        else:
            possible = rows[x, DS_L2_MAYBE] > 0 or (not l2_surely and rows[x, DS_DRAM_MAYBE] > 0)
        if possible:
            energy, words = 0.0, 0.0
            for t in range(3):
                f = _fill(x, t, floor_l1, refetch_l1, held, indexed, window, x >= 0 and apart[LEVEL_L1, x] > 0)
                e, w = _l1_term(t, f, compulsory, shared, tc)
                energy += e
                words += w
            terms[LEVEL_L1, x - NO_LOOP, TERM_ENERGY] = energy
            terms[LEVEL_L1, x - NO_LOOP, TERM_WORDS] = words
        possible = (not any_l2 or no_dram) if x == NO_LOOP else rows[x, DS_DRAM_MAYBE] > 0
        if possible:
            energy, words = 0.0, 0.0
            for t in range(3):
                f = _fill(x, t, compulsory, refetch_l2, zero, indexed, window, x >= 0 and apart[LEVEL_L2, x] > 0)
                if t == INPUTS and x >= 0:
                    f = max(f, sweep[x])
                e, w = _l2_term(t, f, compulsory, tc)
                energy += e
                words += w
            terms[LEVEL_L2, x - NO_LOOP, TERM_ENERGY] = energy
            terms[LEVEL_L2, x - NO_LOOP, TERM_WORDS] = words


@njit(cache=True, inline="always")
def _l1_term(t, f, compulsory, shared, tc):
    """``(energy, words)`` of ``f`` L1 fills of tensor ``t``: the fills, the L2 accesses serving them (one read
    serves up to ``shared[t]`` PEs) and the words over the array's network."""
    served = max(compulsory[t], math.ceil(f / shared[t]))
    # outputs: the L2 is read (a partial sum sent down) at every update but the first of each element
    reread = served - compulsory[t] if t == OUTPUTS else 0.0
    return (f * tc[TC_E_FILL_L1, t] + served * tc[TC_E_L2, t] + reread * tc[TC_E_L2_REREAD, t],
            (served + reread) * tc[TC_OUTER_WORDS, t])


@njit(cache=True, inline="always")
def _l2_term(t, f, compulsory, tc):
    """``(energy, words)`` of ``f`` L2 fills of tensor ``t`` from DRAM."""
    energy = f * tc[TC_E_FILL_L2, t]
    words = f * tc[TC_OUTER_WORDS, t]
    if t == OUTPUTS:  # outputs' re-reads: every fill but the first write of each element
        energy += max(0.0, f - compulsory[t]) * tc[TC_E_DRAM_READ, t]
        words += max(0.0, f - compulsory[t]) * tc[TC_OUTER_WORDS, t]
    return energy, words


@njit(cache=True)
def _window_apart(row_x, row_y, unroll_x, unroll_y, weight_x, weight_y, level):
    """Whether every step of the loops above ``level`` moves an input tile by at least its extent along the window
    of dims ``x`` and ``y``, with ``x`` owning X, the innermost loop > 1 above the level (factors all known; a
    dim's index moves the tile by ``weight`` rows per unit: stride for P / Q, dilation for R / S).

    Above L1, X is x's L2 loop if it has one, else its DRAM loop; a step of X moves the per-PE tile by
    ``w = unroll_x * t2_x * weight_x``, and ``n`` is X's bound. At any other step some loop L advances and every
    loop inside it resets, X included (back by ``(n - 1) * w``):

    * L over neither dim: the tile moves back by at least ``(n - 1) * w >= w``;
    * L over ``y``: ``y``'s net advance (its L2 digit resetting under a DRAM one) is ``w_y = unroll_y * t2_y *
      weight_y``, so the tile moves by at most ``w_y - (n - 1) * w``;
    * L is x's DRAM loop (X at L2): the tile moves by ``w`` less ``(t1_y - 1) * w_y`` when ``y``'s L2 loop resets,
      less ``(t0_y * t1_y - 1) * w_y`` when ``y``'s DRAM loop is inside L too.

    Above L2 (X the innermost DRAM loop) the same holds with the L2 tile (``t1 * unroll * t2`` indices) and ``y``'s
    DRAM loop only."""
    t0x, t1x, t2x = row_x[DS_ABOVE_L1] / row_x[DS_L2_FACTOR], row_x[DS_L2_FACTOR], row_x[DS_L1_FACTOR]
    t0y, t1y, t2y = row_y[DS_ABOVE_L1] / row_y[DS_L2_FACTOR], row_y[DS_L2_FACTOR], row_y[DS_L1_FACTOR]
    if level == LEVEL_L1:
        span_x, span_y = unroll_x * t2x, unroll_y * t2y
        n = t1x if t1x > 1 else t0x
        y_above = t0y * t1y > 1
    else:
        span_x, span_y = t1x * unroll_x * t2x, t1y * unroll_y * t2y
        n = t0x
        y_above = t0y > 1
    extent = (span_x - 1) * weight_x + (span_y - 1) * weight_y + 1
    w, w_y = span_x * weight_x, span_y * weight_y
    if n < 2 or w < extent:
        return False
    if y_above and (n - 1) * w < w_y + extent:
        return False
    if level == LEVEL_L1 and t1x > 1 and t0x > 1:
        # L is x's DRAM loop: y's loops inside it reset (its L2 loop, and its DRAM loop if that is inside too)
        if t1y > 1 and abs(w - (t1y - 1) * w_y) < extent:
            return False
        if t0y > 1 and abs(w - (t0y * t1y - 1) * w_y) < extent:
            return False
    return True


@njit(cache=True)
def _sweep_clear(row_x, row_y, unroll_x, unroll_y, weight_x, weight_y):
    """Whether, with X' (the innermost DRAM loop > 1) over window dim ``x``, every step that resets X' moves the
    L2's input tile by at least its extent (as :func:`_window_apart` above L2, without asking it of X''s own steps):
    back by ``(n - 1) * w`` at least, or by ``w_y - (n - 1) * w`` at most when ``y``'s DRAM loop advances."""
    t0x, t1x, t2x = row_x[DS_ABOVE_L1] / row_x[DS_L2_FACTOR], row_x[DS_L2_FACTOR], row_x[DS_L1_FACTOR]
    t0y, t1y, t2y = row_y[DS_ABOVE_L1] / row_y[DS_L2_FACTOR], row_y[DS_L2_FACTOR], row_y[DS_L1_FACTOR]
    span_x, span_y = t1x * unroll_x * t2x, t1y * unroll_y * t2y
    extent = (span_x - 1) * weight_x + (span_y - 1) * weight_y + 1
    back = (t0x - 1) * span_x * weight_x
    if t0x < 2 or back < extent:
        return False
    return not (t0y > 1 and back < span_y * weight_y + extent)


@njit(cache=True, aot=AotSignature("int64", ("int64", "float64", "float64", "float64", "float64", "boolean", "boolean")))
def stalled_cycles(compute: float, dram_words: float, l2_words: float, dram_bandwidth: float, noc_bandwidth: float,
                   l1_stalls: bool, l2_stalls: bool) -> float:
    """Timeloop's timing: a level without double buffering (``*_stalls``) stalls while its parent's network fills
    it (the transfer adds to the cycles), a double-buffered one overlaps it (the larger counts)."""
    dram_net = math.ceil(dram_words / dram_bandwidth - 1e-9)
    l2_net = math.ceil(l2_words / noc_bandwidth - 1e-9)
    overlapped = max(compute, 0 if l2_stalls else dram_net, 0 if l1_stalls else l2_net)
    return overlapped + (dram_net if l2_stalls else 0) + (l2_net if l1_stalls else 0)


@njit(cache=True, inline="always")
def _combine(compute, e_l1, l2_words, e_outer, dram_words, sc):
    cycles = stalled_cycles(compute, dram_words, l2_words, sc[SC_DRAM_BW], sc[SC_NOC_BW], sc[SC_L1_STALLS] > 0,
                            sc[SC_L2_STALLS] > 0)
    return max(cycles, sc[SC_FLOOR_CYCLES]), max(sc[SC_E_MACS] + e_l1 + e_outer, sc[SC_FLOOR_ENERGY])


@njit(cache=True)
def bound_of(rows, pairs, sizes, unroll, indexed, window, tc, sc, terms, work):
    """``(cycles, energy)`` bounding every completion and loop order of the partial tiling ``rows`` (8 x DS_SIZE)
    with input windows ``pairs`` (2 x PS_SIZE): each level's terms at their least over its innermost loop
    (``terms``, ``work``: scratch, :func:`scratch`)."""
    level_terms(rows, pairs, sizes, unroll, indexed, window, tc, sc, terms, work)
    return _combine(_compute(rows, indexed, sc), terms[LEVEL_L1, :, TERM_ENERGY].min(),
                    terms[LEVEL_L1, :, TERM_WORDS].min(), terms[LEVEL_L2, :, TERM_ENERGY].min(),
                    terms[LEVEL_L2, :, TERM_WORDS].min(), sc)


@njit(cache=True)
def order_bounds(rows, pairs, sizes, unroll, indexed, window, tc, sc, cycles, energy):
    """For a whole tiling: ``cycles[x, y]``, ``energy[x, y]`` (9 x 9, index ``loop - NO_LOOP``) bound the loop
    orders whose innermost loop > 1 above L1 is ``x`` and above L2 (the innermost DRAM loop > 1) is ``y``
    (``inf``: no order has them)."""
    terms, work = scratch()
    level_terms(rows, pairs, sizes, unroll, indexed, window, tc, sc, terms, work)
    compute = _compute(rows, indexed, sc)
    for x in range(9):
        for y in range(9):
            if terms[LEVEL_L1, x, TERM_ENERGY] < np.inf and terms[LEVEL_L2, y, TERM_ENERGY] < np.inf:
                cycles[x, y], energy[x, y] = _combine(compute, terms[LEVEL_L1, x, TERM_ENERGY],
                                                      terms[LEVEL_L1, x, TERM_WORDS], terms[LEVEL_L2, y, TERM_ENERGY],
                                                      terms[LEVEL_L2, y, TERM_WORDS], sc)
            else:
                cycles[x, y] = energy[x, y] = np.inf


@njit(cache=True)
def each_order_bounds(rows, pairs, sizes, unroll, indexed, window, tc, sc, orders, cycles, energy):
    """For a whole tiling: per loop order ``orders[i]`` (rows DRAM, L2; dims outermost first), its entry of
    :func:`order_bounds` with the weights' and the outputs' fills counted from the whole order
    (:func:`_plain_refetch`): into ``cycles[i]``, ``energy[i]``."""
    terms, work = scratch()
    level_terms(rows, pairs, sizes, unroll, indexed, window, tc, sc, terms, work)
    compute = _compute(rows, indexed, sc)
    floor_l1, refetch_l1, refetch_l2 = work[W_FLOOR_L1], work[W_REFETCH_L1], work[W_REFETCH_L2]
    held, zero, sweep, shared = work[W_HELD], work[W_ZERO], work[W_SWEEP], work[W_SHARED]
    compulsory = tc[TC_COMPULSORY]
    slide = np.zeros(8)  # inputs' L1 fills when X slides a window dim (:func:`_slide_gain`)
    for w in range(2):
        for k in range(2):
            x, y = WINDOW_PAIRS[w][k], WINDOW_PAIRS[w][1 - k]
            weight_x = sc[SC_STRIDE_H + w] if k == 0 else sc[SC_DIL_H + w]
            weight_y = sc[SC_DIL_H + w] if k == 0 else sc[SC_STRIDE_H + w]
            slide[x] = work[W_OUTSIDE_L1, w] * _slide_gain(rows[x], rows[y], sizes[x], sizes[y], unroll[x], weight_x,
                                                           weight_y)
    for i in range(orders.shape[0]):
        x_dram = _innermost(orders[i, 0], rows, indexed, 3, 0)
        x_l2 = _innermost(orders[i, 1], rows, indexed, 3, 1)
        x = x_l2 if x_l2 != NO_LOOP else x_dram
        e1, w1, e2, w2 = 0.0, 0.0, 0.0, 0.0
        for t in range(3):
            f1 = _fill(x, t, floor_l1, refetch_l1, held, indexed, window, x >= 0 and work[W_APART_L1, x] > 0)
            f2 = _fill(x_dram, t, compulsory, refetch_l2, zero, indexed, window,
                       x_dram >= 0 and work[W_APART_L2, x_dram] > 0)
            if t == INPUTS:
                if x_dram >= 0:
                    f2 = max(f2, sweep[x_dram])
                if x >= 0:
                    f1 = max(f1, slide[x])
            else:
                o1, o2 = _plain_refetch(t, orders[i], rows, sizes, indexed)
                f1, f2 = max(f1, o1), max(f2, o2)
            e, w = _l1_term(t, f1, compulsory, shared, tc)
            e1 += e
            w1 += w
            e, w = _l2_term(t, f2, compulsory, tc)
            e2 += e
            w2 += w
        cycles[i], energy[i] = _combine(compute, e1, w1, e2, w2, sc)


@njit(cache=True)
def _slide_gain(row_x, row_y, size_x, size_y, unroll_x, weight_x, weight_y):
    """Input rows an L1 must receive while X, the innermost loop > 1 above it, runs over window dim ``x`` (its L2
    loop, or its DRAM loop when the tiling has no L2 loop), summed over the sweeps of X (x's other loop and array
    positions, every position of the partner dim ``y``); 0 when ``x`` has no such loop.

    A step of X changes only the tile's rows (``p * stride + r * dilation``), so it fills at least the rows not in
    the previous tile; over a sweep, at least the union of its tiles less its first. Tiles move forward and only
    the last ones are cut short by the layer's edge, so step ``k`` adds ``min(length_k, end_k - end_(k-1))`` rows.
    Times the rest of the inputs' L1 refetch (the other window, the other dims), this bounds the inputs' fills
    when X slides a window (:func:`each_order_bounds`)."""
    t1x, t2x = int(row_x[DS_L2_FACTOR]), int(row_x[DS_L1_FACTOR])
    t0x = int(row_x[DS_ABOVE_L1]) // t1x
    t2y = int(row_y[DS_L1_FACTOR])
    ux, sx, sy = int(unroll_x), int(size_x), int(size_y)
    n = t1x if t1x > 1 else t0x  # X's bound
    outer = t0x if t1x > 1 else 1  # x's DRAM positions around a sweep of its L2 loop
    if n < 2:
        return 0.0
    total = 0.0
    for extent_y, count_y in ((t2y, sy // t2y), (sy % t2y, 1 if sy % t2y else 0)):
        if count_y == 0:
            continue
        rows = 0.0
        for i0 in range(outer):
            for pe in range(ux):
                lo = ((i0 * n) * ux + pe) * t2x
                if lo >= sx:
                    continue  # the sweep's first tile is empty, and so are the rest
                end = min(lo + t2x, sx)
                for k in range(1, n):
                    lo = ((i0 * n + k) * ux + pe) * t2x
                    if lo >= sx:
                        break
                    hi = min(lo + t2x, sx)
                    length = (hi - lo - 1) * weight_x + (extent_y - 1) * weight_y + 1
                    rows += min(length, (hi - end) * weight_x)
                    end = hi
        total += count_y * rows
    return total


@njit(cache=True, inline="always")
def _loop_factor(rows, d, level):
    """The factor of dim ``d``'s loop at ``level`` (0: DRAM, 1: L2) of a whole tiling's rows."""
    return rows[d, DS_L2_FACTOR] if level == 1 else rows[d, DS_ABOVE_L1] / rows[d, DS_L2_FACTOR]


@njit(cache=True, inline="always")
def _innermost(order_row, rows, indexed, t, level):
    """The innermost dim of ``order_row`` with a loop > 1 at ``level`` that indexes tensor ``t`` (``t == 3``:
    any tensor), or ``NO_LOOP``."""
    for pos in range(7, -1, -1):
        d = order_row[pos]
        if _loop_factor(rows, d, level) > 1 and (t == 3 or indexed[t, d]):
            return d
    return NO_LOOP


@njit(cache=True, inline="always")
def _before(order_row, a, b):
    """Whether dim ``a`` comes before (outside) dim ``b`` in ``order_row``."""
    for pos in range(8):
        if order_row[pos] == a:
            return True
        if order_row[pos] == b:
            return False
    return False


@njit(cache=True, inline="always")
def _plain_refetch(t, order, rows, sizes, indexed):
    """Fills of a tensor without windows (weights, outputs) at L1 and at L2 under loop order ``order``.

    Above a level, let q be the innermost loop > 1 that indexes the tensor. Every step of a loop outside q
    resets q, so the tile moves to a disjoint one and is filled whole: each indexed dim's whole extent arrives
    (``sizes``) once per step of the other loops outside q, with a valid index. At L1 that is a dim's
    ``DS_STEPS_L1`` (its DRAM and L2 loops, over the PEs) when its L2 loop is outside an L2 q, its
    ``DS_DRAM_STEPS`` when only its DRAM loop is outside q, else ``DS_ACTIVE`` (its PEs that work); at L2 its
    ``DS_STEPS_L2`` when its DRAM loop is outside q (the L2 is one instance). The table of :func:`order_bounds`
    assumes every loop that does not index the tensor inside q."""
    q_l2 = _innermost(order[1], rows, indexed, t, 1)
    q_dram = _innermost(order[0], rows, indexed, t, 0)
    l1, l2 = 1.0, 1.0
    for d in range(8):
        if indexed[t, d]:
            l1 *= sizes[d]
            l2 *= sizes[d]
            continue
        dram_outside = q_dram != NO_LOOP and _loop_factor(rows, d, 0) > 1 and _before(order[0], d, q_dram)
        if dram_outside:
            l2 *= rows[d, DS_STEPS_L2]
        if q_l2 != NO_LOOP:  # every DRAM loop is outside it
            l2_outside = _loop_factor(rows, d, 1) > 1 and _before(order[1], d, q_l2)
            l1 *= rows[d, DS_STEPS_L1] if l2_outside else rows[d, DS_DRAM_STEPS]
        else:
            l1 *= rows[d, DS_DRAM_STEPS] if dram_outside else rows[d, DS_ACTIVE]
    return l1, l2


@njit(cache=True)
def _compute(rows, indexed, sc):
    """Compute cycles of the tiling: all temporal iterations, fused MAC lanes, passes, systolic fold skew."""
    compute = 1.0
    for d in range(8):
        compute *= rows[d, DS_COMPUTE]
    lanes = sc[SC_LANES]
    if lanes > 1:
        red = rows[DIM_C, DS_L1_FACTOR] * rows[DIM_R, DS_L1_FACTOR] * rows[DIM_S, DS_L1_FACTOR]
        if red > 0:  # fused lanes take the L1 reduction loops: ceil(red / lanes) cycles for red iterations
            compute = compute / red * math.ceil(red / lanes)
        else:
            compute /= lanes
    compute *= sc[SC_PASSES]
    if sc[SC_SYSTOLIC] > 0:
        least = np.inf
        for t in range(3):
            folds = 1.0
            for d in range(8):
                if indexed[t, d]:
                    folds *= rows[d, DS_ABOVE_L1]
            skew = sc[SC_SKEW_AXES] + (0.0 if t == OUTPUTS else sc[SC_ARRAY0])
            least = min(least, folds * skew - 1)
        compute += max(0.0, least)
    return compute


@njit(cache=True)
def option_bounds(rows, pairs, d, option_rows, option_pairs, pair, sizes, unroll, indexed, window, tc, sc, wanted,
                  cycles, energy):
    """The bound with dim ``d`` at each of its ``wanted`` options in turn (row ``option_rows[j]``; with window
    ``pair``'s row ``option_pairs[j]`` when ``pair >= 0``), the other dims as in ``rows``: into ``cycles[j]``,
    ``energy[j]`` (``inf`` where not wanted). ``rows`` and ``pairs`` are left as they were."""
    saved_row = rows[d].copy()
    saved_pair = pairs[max(pair, 0)].copy()
    terms, work = scratch()
    for j in range(option_rows.shape[0]):
        if not wanted[j]:
            cycles[j] = energy[j] = np.inf
            continue
        rows[d] = option_rows[j]
        if pair >= 0:
            pairs[pair] = option_pairs[j]
        cycles[j], energy[j] = bound_of(rows, pairs, sizes, unroll, indexed, window, tc, sc, terms, work)
    rows[d] = saved_row
    pairs[max(pair, 0)] = saved_pair
