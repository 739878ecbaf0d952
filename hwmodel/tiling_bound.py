"""A lower bound on every loop order of one tiling (the exact mapper's partial-cost bound).

A *tiling* fixes a 3-level mapping's factors (DRAM, L2 and L1 temporal factors per dim, the array unroll) and
leaves the loop orders open. :func:`tiling_bound` bounds cycles and energy of every order of it, so the exact
mapper (:func:`hwmodel.exact_mapper.optimal_mapping`) skips the orders of a tiling whose bound cannot beat the
incumbent. It is derived from the counting rules the model implements (Timeloop's: ``shared/ARCHITECTURE.md``;
the module docstring of :mod:`hwmodel.nestkernel`), not from its code:

* The index of dim ``d`` is ``((i0 * t1 + i1) * s + i_s) * t2 + i2`` (DRAM, L2, array, L1 digits; ``s`` the
  product of the array axes over ``d``); an index past ``D_d`` is padding and projects to nothing. The L1 tile
  of a PE at one step has, per dim, the valid part of an interval of ``t2`` indices; summed over all steps of
  the loops above L1 and all PEs that is ``D_d`` for a dim indexing the tensor, and a dim that does not index it
  contributes the steps with a valid index, ``ceil(D_d / t2)``.
* Fills are deltas between consecutive tiles, and a tile that differs from the previous one in a dim whose
  intervals are disjoint (any dim of weights and outputs; ``N``, ``G``, ``C`` of inputs) is filled whole. Let
  ``X`` be the innermost temporal loop above L1 with a bound > 1 (an L2 loop if the L2 has one, else a DRAM
  loop). Every step of the loops above L1 advances or resets ``X``, so a tensor that ``X`` indexes through a
  disjoint dim is filled whole at every step: its L1 fills are the sum above,
  ``prod_{d in t} D_d * prod_{d not in t} ceil(D_d / t2_d)`` (inputs' rows: the bounding boxes, summed in closed
  form). Inputs are refilled whole in the same way when ``X`` is a window dim (P, Q, R, S) whose step moves the
  tile by at least its extent: ``unroll * t2 * stride`` (``* dilation`` for R, S) against the bounding box
  ``(t2_p - 1) * stride + (t2_r - 1) * dilation + 1``, since the new tile is then disjoint from the previous one
  (and the window's other dim has no loop above the level, so a reset of ``X`` cannot bring the tile back near).
  Every tensor is also filled at least once per PE that uses it (its footprint; inputs' distinct rows
  per PE are at least ``|p| + |r| - 1``, the sumset bound). The bound takes the cheapest choice of ``X``.
* The tensor ``X`` does not index (the one the level holds) is refilled at every DRAM step when an L2 loop indexes
  it (its innermost indexing loop is then at L2, below every DRAM loop); weights and outputs.
* The same argument one level up, with ``X'`` the innermost DRAM loop > 1 and the L2's tile (all loops below
  the DRAM), bounds the L2's fills from DRAM; outputs' DRAM reads are those fills less the first write of each.
* Energy: every MAC's L1 accesses (as :func:`hwmodel.bounds.lower_bound`), the L1 fills plus their NoC words,
  the L2 accesses serving those fills (each shared at most by the PEs whose tiles can be identical: those apart
  only along dims that do not index the tensor; for inputs, per window, the PEs on one line of equal offsets
  ``p * t2_p * stride + r * t2_r * dilation``): reads of
  weights and inputs, updates of outputs, and for outputs also a read at every update but the first of each
  element (Timeloop's read-write convention: reads = updates - partition); each L2 fill with its DRAM access.
  Per access and per element
  energies are the family hierarchy's at the layer's widths.
* Cycles: the tiling's compute cycles (all temporal factors, fused MAC lanes over the L1 reduction loops,
  passes of wide products), plus on a systolic array a skew per fold, where the folds are at least the product
  of the DRAM and L2 factors of the dims that index the tensor the array holds (whichever it is). The words over
  the DRAM network (the L2's fills, outputs' re-reads) and over the L2's network (the accesses above) over their
  bandwidths: added to the compute cycles where the level they fill has no double buffering (it stalls), else
  overlapped with them.

The result is the component-wise larger of this and :func:`hwmodel.bounds.lower_bound`, both valid for every
order. ``tests/test_tiling_bound.py`` checks it against every order of small tilings and against random mappings.

With the order known as well (:meth:`SplitBound.each_order_bounds`, for whole tilings), two counts tighten:

* Weights and outputs: every step of a loop outside the tensor's innermost indexing loop ``q`` above the level
  resets ``q``, so the tile moves to a disjoint one and is filled whole; a dim that does not index the tensor
  multiplies the fills by its valid steps over its loops outside ``q`` (at L1, over the PEs too) instead of the
  cheapest placement the table above assumes.
* Inputs when ``X`` runs over a window dim: a step of ``X`` changes only the tile's rows and fills at least the
  rows not in the previous tile, so a sweep of ``X`` fills at least the union of its tiles less its first
  (:func:`hwmodel.tiling_kernel._slide_gain`), times the other window's rows and the other dims' extents.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np

from hwmodel import tiling_kernel as tk
from hwmodel.accelerator import Accelerator
from hwmodel.bounds import (
    LowerBound,
    distinct_window_rows,
    lower_bound,
    needed_input_words,
)
from hwmodel.layer import DIMS, Layer
from hwmodel.precision import resolve_precision

N, G, K, C, P, Q, R, S = (DIMS.index(d) for d in "NGKCPQRS")
WEIGHTS, INPUTS, OUTPUTS = 0, 1, 2
#: The dims indexing each tensor (inputs through the windows P+R and Q+S besides N, G, C).
INDEXED_BY = ({G, K, C, R, S}, {N, G, C, P, Q, R, S}, {N, G, K, P, Q})
#: The dims along which consecutive input tiles may overlap (the sliding windows): a change there may cost a slab.
WINDOW_DIMS = {P, Q, R, S}
#: Temporal rows of a 3-level mapping.
DRAM_ROW, L2_ROW, L1_ROW = 0, 1, 2


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


#: One dim's factors in a tiling: (DRAM, L2, L1) temporal factors.
Option = tuple[int, int, int]
T1, T2 = 1, 2  # the L2 and L1 factors in an Option


@lru_cache(maxsize=65536)
def _pe_index_counts(size: int, tile: int, unroll: int) -> tuple[int, ...]:
    """Valid indices of a dim of ``size`` (L1 tile ``tile``, ``unroll`` array positions) each array position
    along it sees over the whole run (its per-PE extent): whole chunks of ``tile`` at every ``unroll``-th chunk,
    the last chunk partial."""
    chunks = _ceil_div(size, tile)
    counts = []
    for pos in range(unroll):
        mine = _ceil_div(chunks - pos, unroll) if pos < chunks else 0  # chunks pos, pos + unroll, ...
        last_is_mine = chunks > 0 and (chunks - 1) % unroll == pos
        counts.append(mine * tile - (chunks * tile - size if last_is_mine else 0))
    return tuple(counts)


@lru_cache(maxsize=65536)
def _dram_steps(size: int, t0: int, t1: int, unroll: int, tile: int) -> int:
    """(DRAM index, array position) pairs of a dim whose L2-and-below part has a valid index: the steps of a
    tensor's DRAM loop over this dim, summed over PEs, when the dim's L2 loop iterates below (its smallest index
    ``((i0 * t1) * unroll + pos) * tile`` must be valid)."""
    return sum(1 for pos in range(unroll) for i0 in range(t0) if ((i0 * t1) * unroll + pos) * tile < size)


def _window_sum(size_a: int, steps_a: int, size_b: int, steps_b: int, stride: int, dilation: int) -> int:
    """Sum over all (p-tile, r-tile) step pairs of the bounding-box rows of an input tile:
    ``(e_p - 1) * stride + (e_r - 1) * dilation + 1`` over pairs with both extents > 0, in closed form
    (``sum e_p = size_a`` over the ``steps_a`` non-empty p-tiles)."""
    return steps_b * (size_a - steps_a) * stride + steps_a * (size_b - steps_b) * dilation + steps_a * steps_b


@lru_cache(maxsize=65536)
def _option_row(size: int, option: Option, unroll: int) -> tuple[float, ...]:
    """The :mod:`hwmodel.tiling_kernel` summary row (``DS_*``) of one dim at one option."""
    t0, t1, t2 = option
    row = [0.0] * tk.DS_SIZE
    row[tk.DS_COMPUTE] = t0 * t1 * t2
    row[tk.DS_ABOVE_L1] = t0 * t1
    row[tk.DS_STEPS_L1] = _ceil_div(size, t2)
    row[tk.DS_STEPS_L2] = _ceil_div(size, t1 * unroll * t2)
    row[tk.DS_ACTIVE] = sum(1 for c in _pe_index_counts(size, t2, unroll) if c > 0)
    row[tk.DS_DRAM_STEPS] = _dram_steps(size, t0, t1, unroll, t2)
    row[tk.DS_L2_MAYBE] = row[tk.DS_L2_SURELY] = float(t1 > 1)
    row[tk.DS_L2_UNIT] = float(t1 == 1)
    row[tk.DS_DRAM_MAYBE] = float(t0 > 1)
    row[tk.DS_DRAM_UNIT] = float(t0 == 1)
    row[tk.DS_L1_FACTOR], row[tk.DS_L2_FACTOR] = t2, t1
    return tuple(row)


#: How a free dim's row aggregates its options' rows: flags "some option" (max) or "every option" (min of 0/1),
#: counts the least; the L1 factor is unknown (0) unless there is one option.
_SOME = [tk.DS_L2_MAYBE, tk.DS_L2_UNIT, tk.DS_DRAM_MAYBE, tk.DS_DRAM_UNIT]


def _free_row(option_rows: np.ndarray) -> np.ndarray:
    row = option_rows.min(axis=0)
    row[_SOME] = option_rows[:, _SOME].max(axis=0)
    if len(option_rows) > 1:
        row[tk.DS_L1_FACTOR] = row[tk.DS_L2_FACTOR] = 0
    return row


def _pair_table(size_a: int, options_a: list[Option], unroll_a: int, size_b: int, options_b: list[Option],
                unroll_b: int, stride: int, dilation: int) -> np.ndarray:
    """``table[i, j]``: the window row (``PS_*``) of an input window with dim ``a`` at ``options_a[i]`` and ``b`` at
    ``options_b[j]``; row ``len(options_a)`` and column ``len(options_b)`` take the least over the options (the
    dim free)."""

    def per_option(size: int, options: list[Option], unroll: int) -> tuple[np.ndarray, ...]:
        l1_span = np.array([o[T2] for o in options])
        l2_span = np.array([o[T1] * unroll * o[T2] for o in options])
        counts = [_pe_index_counts(size, o[T2], unroll) for o in options]
        busy = np.array([sum(1 for c in cs if c > 0) for cs in counts], dtype=np.float64)
        total = np.array([sum(cs) for cs in counts], dtype=np.float64)
        return -(-size // l1_span), -(-size // l2_span), busy, total, l2_span

    a1, a2, busy_a, total_a, span_a = per_option(size_a, options_a, unroll_a)
    b1, b2, busy_b, total_b, span_b = per_option(size_b, options_b, unroll_b)
    table = np.empty((len(options_a) + 1, len(options_b) + 1, tk.PS_SIZE))
    core = table[:-1, :-1]
    for field, sa, sb in ((tk.PS_WINDOW_L1, a1, b1), (tk.PS_WINDOW_L2, a2, b2)):
        core[..., field] = _window_sum(size_a, sa[:, None], size_b, sb[None, :], stride, dilation)
    # sum over the PEs working along both dims of (rows along a) + (rows along b) - 1 (the sumset bound)
    core[..., tk.PS_FOOTPRINT] = (busy_b[None, :] * total_a[:, None] + busy_a[:, None] * total_b[None, :]
                                  - busy_a[:, None] * busy_b[None, :])
    # a sweep over every a (b's L2 tile fixed) covers the rows of all a against that tile, and vice versa
    core[..., tk.PS_SWEEP_A] = np.array([_sweep_rows(size_b, int(s), lambda e: distinct_window_rows(
        size_a, e, stride, dilation)) for s in span_b])[None, :]
    core[..., tk.PS_SWEEP_B] = np.array([_sweep_rows(size_a, int(s), lambda e: distinct_window_rows(
        e, size_b, stride, dilation)) for s in span_a])[:, None]
    table[-1, :-1] = core.min(axis=0)
    table[:, -1] = table[:, :-1].min(axis=1)
    return table


def _sweep_rows(size: int, span: int, rows: Callable[[int], int]) -> int:
    """``rows(e)`` summed over the L2 tiles of a dim of ``size`` cut into ``span`` indices (``e``: a tile's extent,
    the last one partial)."""
    whole, last = divmod(size, span)
    return whole * rows(span) + (rows(last) if last else 0)


class TilingBound:
    """``bound(temporal, spatial)`` -> :class:`LowerBound` of every loop order of that tiling of ``layer`` on
    ``accel`` (3 x 8 temporal factors, rows DRAM / L2 / L1; array-axes x 8 unroll). ``bound.over(options,
    unroll)`` bounds every tiling that takes one of ``options[d]`` for each dim ``d`` (each per-dim factor of a
    term is minimised over the dim's options); :meth:`split` gives the exact mapper's incremental form."""

    def __init__(self, layer: Layer, accel: Accelerator) -> None:
        from hwmodel.family import L1_LEVEL, L2_LEVEL, family_hierarchy

        self.layer, self.accel = layer, accel
        self.sizes = np.array(layer.dim_array.tolist(), dtype=np.float64)
        self.stride, self.dilation = layer.stride, layer.dilation
        hier = family_hierarchy(accel, resolve_precision(layer, accel))
        dram, l2, l1 = hier.levels[0], hier.levels[L2_LEVEL], hier.levels[L1_LEVEL:]
        wb = accel.word_bits
        outer = [b / wb for b in dram.tensor_bits]
        inner = [b / wb for b in l1[-1].tensor_bits]
        names = ("weights", "inputs", "outputs")
        e_l1 = [next(lv.read_pj for lv in l1 if names[t] in lv.keeps) * inner[t] for t in range(3)]
        w = layer.G * layer.K * layer.C * layer.R * layer.S
        o = layer.N * layer.G * layer.K * layer.P * layer.Q
        self.tc = np.zeros((tk.TC_SIZE, 3))
        self.tc[tk.TC_COMPULSORY] = [w, needed_input_words(layer), o]
        self.tc[tk.TC_E_FILL_L1] = [e_l1[t] + l2.noc_pj * inner[t] for t in range(3)]
        self.tc[tk.TC_E_L2] = [l2.read_pj * outer[WEIGHTS], l2.read_pj * outer[INPUTS], l2.update_pj * outer[OUTPUTS]]
        self.tc[tk.TC_E_L2_REREAD, OUTPUTS] = l2.read_pj * outer[OUTPUTS]
        self.tc[tk.TC_E_FILL_L2] = [(l2.fill_pj + dram.read_pj) * outer[t] for t in range(3)]
        self.tc[tk.TC_E_DRAM_READ] = [dram.read_pj * outer[t] for t in range(3)]
        self.tc[tk.TC_OUTER_WORDS] = outer
        self.global_bound = lower_bound(layer, accel)
        self.sc = np.zeros(tk.SC_SIZE)
        self.sc[tk.SC_E_MACS] = layer.macs * (hier.mac_pj + sum(e_l1))
        self.sc[tk.SC_LANES], self.sc[tk.SC_PASSES] = hier.mac_lanes, hier.mac_passes
        self.sc[tk.SC_SYSTOLIC] = accel.systolic
        self.sc[tk.SC_SKEW_AXES] = sum(a - 1 for a in accel.array)
        self.sc[tk.SC_ARRAY0] = accel.array[0]
        self.sc[tk.SC_DRAM_BW], self.sc[tk.SC_NOC_BW] = accel.dram_bandwidth, accel.noc_bandwidth
        self.sc[tk.SC_L1_STALLS], self.sc[tk.SC_L2_STALLS] = (not flag for flag in accel.double_buffer)
        self.sc[tk.SC_FLOOR_CYCLES] = self.global_bound.cycles
        self.sc[tk.SC_FLOOR_ENERGY] = self.global_bound.energy_pj
        self.sc[[tk.SC_STRIDE_H, tk.SC_STRIDE_W]] = layer.stride
        self.sc[[tk.SC_DIL_H, tk.SC_DIL_W]] = layer.dilation
        self.indexed = np.array([[d in INDEXED_BY[t] for d in range(8)] for t in range(3)])
        self.window = np.array([d in WINDOW_DIMS for d in range(8)])
        self._pair_tables: dict[tuple, np.ndarray] = {}  # many spatial splits share a window's options and unrolls

    def __call__(self, temporal: np.ndarray, spatial: np.ndarray) -> LowerBound:
        temporal, spatial = np.asarray(temporal), np.asarray(spatial)
        options = [[(int(temporal[DRAM_ROW, d]), int(temporal[L2_ROW, d]), int(temporal[L1_ROW, d]))]
                   for d in range(8)]
        return self.over(options, [int(np.prod(spatial[:, d])) for d in range(8)])

    def over(self, options: list[list[Option]], unroll: list[int]) -> LowerBound:
        """The bound of every tiling choosing, per dim ``d``, one of ``options[d]`` with array unroll ``unroll``."""
        part = self.split(options, unroll)
        cycles, energy = part.bound()
        return LowerBound(cycles=cycles, energy_pj=energy)

    def split(self, options: list[list[Option]], unroll: list[int]) -> SplitBound:
        """The incremental bound of the partial tilings of one spatial split (every dim free at first)."""
        return SplitBound(self, options, unroll)

    def pair_table(self, w: int, options_a: list[Option], unroll_a: int, options_b: list[Option],
                   unroll_b: int) -> np.ndarray:
        """:func:`_pair_table` of input window ``w`` (P with R, Q with S), kept for the next split that has the
        same (read-only)."""
        key = (w, tuple(options_a), unroll_a, tuple(options_b), unroll_b)
        table = self._pair_tables.get(key)
        if table is None:
            a, b = tk.WINDOW_PAIRS[w]
            table = _pair_table(int(self.sizes[a]), options_a, unroll_a, int(self.sizes[b]), options_b, unroll_b,
                                self.stride[w], self.dilation[w])
            table.flags.writeable = False
            self._pair_tables[key] = table
        return table

    def shared(self, unroll: list[int]) -> list[int]:
        """Most PEs one L2 read of each tensor can serve: those apart only along dims that do not index it (for
        inputs, one diagonal of the (P, R) and (Q, S) positions at most)."""
        out = [math.prod(unroll[d] for d in range(8) if d not in INDEXED_BY[t]) for t in (WEIGHTS, OUTPUTS)]
        out.insert(INPUTS, unroll[K] * min(unroll[P], unroll[R]) * min(unroll[Q], unroll[S]))
        return out


class SplitBound:
    """The bound of partial tilings of one spatial split: each dim at one of its options or free (the least over
    them). :meth:`children` bounds every option of one more dim at once; :meth:`assign` / :meth:`release` move the
    partial tiling (the exact mapper's depth-first walk)."""

    def __init__(self, bound: TilingBound, options: list[list[Option]], unroll: list[int]) -> None:
        self.b = bound
        self.options = [np.array(o, dtype=np.int64).reshape(-1, 3) for o in options]
        sizes = [int(v) for v in bound.sizes]
        self.option_rows = [np.array([_option_row(sizes[d], tuple(o), unroll[d]) for o in options[d]],
                                     dtype=np.float64).reshape(-1, tk.DS_SIZE) for d in range(8)]
        self.free_rows = [_free_row(r) if len(r) else np.full(tk.DS_SIZE, np.inf) for r in self.option_rows]
        self.rows = np.array(self.free_rows)
        self.tables = [bound.pair_table(w, options[a], unroll[a], options[b], unroll[b])
                       for w, (a, b) in enumerate(tk.WINDOW_PAIRS)]
        self.state = [len(o) for o in options]  # the option index per dim (len: free)
        self.pairs = np.array([table[-1, -1] for table in self.tables])
        self.tc = bound.tc.copy()
        self.tc[tk.TC_SHARED] = bound.shared(unroll)
        self.unroll = np.array(unroll, dtype=np.float64)

    def bound(self) -> tuple[float, float]:
        """``(cycles, energy)`` of the partial tiling as it stands."""
        return tk.bound_of(self.rows, self.pairs, self.b.sizes, self.unroll, self.b.indexed, self.b.window, self.tc,
                           self.b.sc, *tk.scratch())

    def order_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """With every dim assigned: ``(cycles, energy)``, each 9 x 9, of the loop orders by innermost loops
        (:func:`hwmodel.tiling_kernel.order_bounds`)."""
        cycles, energy = np.empty((9, 9)), np.empty((9, 9))
        tk.order_bounds(self.rows, self.pairs, self.b.sizes, self.unroll, self.b.indexed, self.b.window, self.tc,
                        self.b.sc, cycles, energy)
        return cycles, energy

    def each_order_bounds(self, orders: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """With every dim assigned: ``(cycles, energy)`` of each loop order ``orders[i]`` (``(n, 3, 8)``), its
        :meth:`order_bounds` entry with the weights' and outputs' fills counted from the whole order
        (:func:`hwmodel.tiling_kernel.each_order_bounds`)."""
        cycles, energy = np.empty(len(orders)), np.empty(len(orders))
        tk.each_order_bounds(self.rows, self.pairs, self.b.sizes, self.unroll, self.b.indexed, self.b.window,
                             self.tc, self.b.sc, np.ascontiguousarray(orders[:, :2]), cycles, energy)
        return cycles, energy

    def _pair_rows(self, d: int) -> tuple[int, np.ndarray]:
        """The window dim ``d`` is in (-1: none) and that window's rows with ``d`` at each of its options."""
        for i, (a, b) in enumerate(tk.WINDOW_PAIRS):
            if d == a:
                return i, self.tables[i][:-1, self.state[b]]
            if d == b:
                return i, self.tables[i][self.state[a], :-1]
        return -1, self.pairs

    def children(self, d: int, wanted: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(cycles, energy)`` arrays: the bound with free dim ``d`` at each of its options (only those where the
        bool array ``wanted`` is set, e.g. the ones that fit; ``inf`` elsewhere)."""
        n = len(self.options[d])
        cycles, energy = np.empty(n), np.empty(n)
        pair, pair_rows = self._pair_rows(d)
        tk.option_bounds(self.rows, self.pairs, d, self.option_rows[d], np.ascontiguousarray(pair_rows), pair,
                         self.b.sizes, self.unroll, self.b.indexed, self.b.window, self.tc, self.b.sc,
                         np.ones(n, dtype=np.bool_) if wanted is None else wanted, cycles, energy)
        return cycles, energy

    def assign(self, d: int, j: int) -> None:
        """Dim ``d`` takes its option ``j`` (``len(options[d])``: free again)."""
        self.state[d] = j
        self.rows[d] = self.option_rows[d][j] if j < len(self.options[d]) else self.free_rows[d]
        for i, (a, b) in enumerate(tk.WINDOW_PAIRS):
            if d in (a, b):
                self.pairs[i] = self.tables[i][self.state[a], self.state[b]]

    def release(self, d: int) -> None:
        self.assign(d, len(self.options[d]))


def tiling_bound(layer: Layer, accel: Accelerator, temporal: np.ndarray, spatial: np.ndarray) -> LowerBound:
    """:class:`TilingBound` for one tiling (build a ``TilingBound`` once to bound many tilings of a layer)."""
    return TilingBound(layer, accel)(temporal, spatial)
