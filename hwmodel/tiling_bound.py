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
  form). Every tensor is also filled at least once per PE that uses it (its footprint; inputs' distinct rows
  per PE are at least ``|p| + |r| - 1``, the sumset bound). The bound takes the cheapest choice of ``X``.
* The tensor ``X`` does not index (the one the level holds) is refilled at every DRAM step when an L2 loop indexes
  it (its innermost indexing loop is then at L2, below every DRAM loop); weights and outputs.
* The same argument one level up, with ``X'`` the innermost DRAM loop > 1 and the L2's tile (all loops below
  the DRAM), bounds the L2's fills from DRAM; outputs' DRAM reads are those fills less the first write of each.
* Energy: every MAC's L1 accesses (as :func:`hwmodel.bounds.lower_bound`), the L1 fills plus their NoC words,
  the L2 accesses serving those fills (each shared at most by the PEs whose tiles can be identical: those apart
  only along dims that do not index the tensor; for inputs one diagonal of the window positions), each L2 fill
  with its DRAM access. Per access and per element
  energies are the family hierarchy's at the layer's widths.
* Cycles: the tiling's compute cycles (all temporal factors, fused MAC lanes over the L1 reduction loops,
  passes of wide products), plus on a systolic array a skew per fold, where the folds are at least the product
  of the DRAM and L2 factors of the dims that index the tensor the array holds (whichever it is). The words over
  the DRAM network (the L2's fills, outputs' re-reads) and over the L2's network (the accesses above) over their
  bandwidths: added to the compute cycles where the level they fill has no double buffering (it stalls), else
  overlapped with them.

The result is the component-wise larger of this and :func:`hwmodel.bounds.lower_bound`, both valid for every
order. ``tests/test_tiling_bound.py`` checks it against every order of small tilings and against random mappings.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from hwmodel.accelerator import Accelerator
from hwmodel.bounds import LowerBound, lower_bound, needed_input_words, network_cycles
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
T0, T1, T2 = 0, 1, 2


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


#: Indices of the per-level step counts in the summaries: steps above L1, steps above L2.
L1_STEPS, L2_STEPS = 0, 1


class _DimSummary(NamedTuple):
    """One dim's factors of the bound, each the least over the dim's options (one option: its own)."""

    compute: int  # temporal iterations t0 * t1 * t2
    above_l1: int  # DRAM and L2 iterations t0 * t1 (systolic folds)
    steps: tuple[int, int]  # steps above L1 / above L2 with a valid index (summed over PEs for L1)
    active: int  # array positions along the dim that do some work
    dram_steps: int  # DRAM steps with a valid index, summed over array positions (the L2 loop below)
    l2_maybe: bool  # some option has an L2 loop > 1
    l2_surely: bool  # every option has one
    l2_unit_possible: bool
    dram_maybe: bool
    dram_unit_possible: bool


@lru_cache(maxsize=65536)
def _dim_summary(size: int, options: tuple[Option, ...], unroll: int) -> _DimSummary:
    return _DimSummary(
        compute=min(o[T0] * o[T1] * o[T2] for o in options),
        above_l1=min(o[T0] * o[T1] for o in options),
        steps=(min(_ceil_div(size, o[T2]) for o in options),
               min(_ceil_div(size, o[T1] * unroll * o[T2]) for o in options)),
        active=min(sum(1 for c in _pe_index_counts(size, o[T2], unroll) if c > 0) for o in options),
        dram_steps=min(_dram_steps(size, o[T0], o[T1], unroll, o[T2]) for o in options),
        l2_maybe=any(o[T1] > 1 for o in options), l2_surely=all(o[T1] > 1 for o in options),
        l2_unit_possible=any(o[T1] == 1 for o in options),
        dram_maybe=any(o[T0] > 1 for o in options), dram_unit_possible=any(o[T0] == 1 for o in options))


class _PairSummary(NamedTuple):
    """An input window (P with R, or Q with S), least over both dims' options."""

    window: tuple[int, int]  # summed bounding-box rows of the tiles over the steps above L1 / above L2
    footprint: int  # distinct rows per PE, summed over the PEs (sumset bound)


@lru_cache(maxsize=65536)
def _pair_summary(size_a: int, options_a: tuple[Option, ...], unroll_a: int, size_b: int,
                  options_b: tuple[Option, ...], unroll_b: int, stride: int, dilation: int) -> _PairSummary:
    def window(oa: Option, ob: Option, level: int) -> int:
        span_a = oa[T2] if level == L1_STEPS else oa[T1] * unroll_a * oa[T2]
        span_b = ob[T2] if level == L1_STEPS else ob[T1] * unroll_b * ob[T2]
        return _window_sum(size_a, _ceil_div(size_a, span_a), size_b, _ceil_div(size_b, span_b), stride, dilation)

    def footprint(oa: Option, ob: Option) -> int:
        return sum(x + y - 1 for x in _pe_index_counts(size_a, oa[T2], unroll_a)
                   for y in _pe_index_counts(size_b, ob[T2], unroll_b) if x > 0 and y > 0)

    pairs = [(oa, ob) for oa in options_a for ob in options_b]
    return _PairSummary(window=(min(window(oa, ob, L1_STEPS) for oa, ob in pairs),
                                min(window(oa, ob, L2_STEPS) for oa, ob in pairs)),
                        footprint=min(footprint(oa, ob) for oa, ob in pairs))


class TilingBound:
    """``bound(temporal, spatial)`` -> :class:`LowerBound` of every loop order of that tiling of ``layer`` on
    ``accel`` (3 x 8 temporal factors, rows DRAM / L2 / L1; array-axes x 8 unroll). ``bound.over(options,
    unroll)`` bounds every tiling that takes one of ``options[d]`` for each dim ``d`` (the exact mapper's
    partial assignments: each per-dim factor of a term is minimised over the dim's options)."""

    def __init__(self, layer: Layer, accel: Accelerator) -> None:
        from hwmodel.family import L1_LEVEL, L2_LEVEL, family_hierarchy

        self.layer, self.accel = layer, accel
        self.sizes = layer.dim_array.tolist()
        self.stride, self.dilation = layer.stride, layer.dilation
        hier = family_hierarchy(accel, resolve_precision(layer, accel))
        dram, l2, l1 = hier.levels[0], hier.levels[L2_LEVEL], hier.levels[L1_LEVEL:]
        wb = accel.word_bits
        outer = [b / wb for b in dram.tensor_bits]
        inner = [b / wb for b in l1[-1].tensor_bits]
        names = ("weights", "inputs", "outputs")
        e_l1 = [next(lv.read_pj for lv in l1 if names[t] in lv.keeps) * inner[t] for t in range(3)]
        #: pJ per L1 fill of an element (the L1 write and its NoC word), per L2 access and per L2 fill from DRAM
        self.e_fill_l1 = [e_l1[t] + l2.noc_pj * inner[t] for t in range(3)]
        self.e_l2 = [min(l2.read_pj, l2.fill_pj, l2.update_pj) * outer[t] for t in range(3)]
        self.e_fill_l2 = [(l2.fill_pj + dram.read_pj) * outer[t] for t in range(3)]
        self.e_dram_read = [dram.read_pj * outer[t] for t in range(3)]
        self.outer_words = outer
        self.e_macs = layer.macs * (hier.mac_pj + sum(e_l1))
        self.lanes, self.passes = hier.mac_lanes, hier.mac_passes
        self.systolic = accel.systolic
        self.array = tuple(accel.array)
        self.global_bound = lower_bound(layer, accel)
        w = layer.G * layer.K * layer.C * layer.R * layer.S
        o = layer.N * layer.G * layer.K * layer.P * layer.Q
        self.compulsory = [w, needed_input_words(layer), o]

    # --- per-dim factors, each minimised over the dim's options -------------------------------------------

    def _refetch(self, t: int, dims: list[_DimSummary], pairs: list[_PairSummary], level: int) -> int:
        """Fills of tensor ``t`` when every step of the loops above the level refills its whole tile."""
        total = 1
        for d in range(8):
            if t == INPUTS and d in WINDOW_DIMS:
                continue
            total *= self.sizes[d] if d in INDEXED_BY[t] else dims[d].steps[level]
        if t == INPUTS:
            total *= pairs[0].window[level] * pairs[1].window[level]
        return total

    def _l1_footprint(self, t: int, dims: list[_DimSummary], pairs: list[_PairSummary]) -> int:
        """Elements of ``t`` the PEs receive at least once each (summed over PEs): array positions along a dim
        not indexing ``t`` that do some work hold their own copy."""
        total = 1
        for d in range(8):
            if t == INPUTS and d in WINDOW_DIMS:
                continue
            total *= self.sizes[d] if d in INDEXED_BY[t] else dims[d].active
        if t == INPUTS:
            total *= pairs[0].footprint * pairs[1].footprint
        return total

    def _stationary(self, t: int, dims: list[_DimSummary]) -> int:
        """L1 fills of a weights or outputs tensor ``t`` whose innermost indexing loop is an L2 loop: every DRAM
        loop is then above it, so each DRAM step (per PE) refills its whole tile."""
        return math.prod(self.sizes[d] if d in INDEXED_BY[t] else dims[d].dram_steps for d in range(8))

    @staticmethod
    def _fills(candidates: set[int], none_possible: bool, floor: list[int], refetch: list[int],
               held: list[int] | None = None) -> list[list[int]]:
        """Each tensor's fill bound per possible innermost loop ``X`` (and with no loop above, if possible).
        ``held[t]``: the bound of a tensor ``X`` does not index (the one the level keeps), else its floor."""
        out = [floor] if none_possible or not candidates else []
        for x in sorted(candidates):
            out.append([max(floor[t], refetch[t]) if x in INDEXED_BY[t] and not (t == INPUTS and x in WINDOW_DIMS)
                        else floor[t] if held is None or x in INDEXED_BY[t] else max(floor[t], held[t])
                        for t in range(3)])
        return out

    # --- the bound ------------------------------------------------------------------------------------------

    def __call__(self, temporal: np.ndarray, spatial: np.ndarray) -> LowerBound:
        temporal, spatial = np.asarray(temporal), np.asarray(spatial)
        options = [[(int(temporal[DRAM_ROW, d]), int(temporal[L2_ROW, d]), int(temporal[L1_ROW, d]))]
                   for d in range(8)]
        return self.over(options, [int(np.prod(spatial[:, d])) for d in range(8)])

    def over(self, options: list[list[Option]], unroll: list[int]) -> LowerBound:
        """The bound of every tiling choosing, per dim ``d``, one of ``options[d]`` with array unroll ``unroll``."""
        opts = [tuple(o) for o in options]
        dims = [_dim_summary(self.sizes[d], opts[d], unroll[d]) for d in range(8)]
        pairs = [_pair_summary(self.sizes[a], opts[a], unroll[a], self.sizes[b], opts[b], unroll[b], stride, dilation)
                 for (a, b), stride, dilation in zip(((P, R), (Q, S)), self.stride, self.dilation)]
        l2_maybe = {d for d in range(8) if dims[d].l2_maybe}
        dram_maybe = {d for d in range(8) if dims[d].dram_maybe}
        l2_surely = any(dims[d].l2_surely for d in range(8))
        no_l2_possible = all(dims[d].l2_unit_possible for d in range(8))
        no_dram_possible = all(dims[d].dram_unit_possible for d in range(8))
        l1_candidates = l2_maybe | (dram_maybe if not l2_surely else set())
        l1_floor = [self._l1_footprint(t, dims, pairs) for t in range(3)]
        # a weights / outputs tensor that an L2 loop surely indexes has its innermost indexing loop at L2
        held = [self._stationary(t, dims) if t != INPUTS and any(dims[d].l2_surely for d in INDEXED_BY[t]) else 0
                for t in range(3)]
        l1_options = self._fills(l1_candidates, no_l2_possible and no_dram_possible, l1_floor,
                                 [self._refetch(t, dims, pairs, L1_STEPS) for t in range(3)], held)
        l2_options = self._fills(dram_maybe, no_dram_possible, self.compulsory,
                                 [self._refetch(t, dims, pairs, L2_STEPS) for t in range(3)])
        # the L2 serves the L1 fills (weights, inputs: reads; outputs: updates), each read shared at most by the
        # PEs whose tiles can be identical: those apart only along dims not indexing the tensor (for inputs, one
        # diagonal of the (P, R) and (Q, S) positions at most)
        shared = [math.prod(unroll[d] for d in range(8) if d not in INDEXED_BY[t]) for t in (WEIGHTS, OUTPUTS)]
        shared.insert(INPUTS, unroll[K] * min(unroll[P], unroll[R]) * min(unroll[Q], unroll[S]))

        def l2_served(f: list[int]) -> list[int]:
            return [max(self.compulsory[t], _ceil_div(f[t], shared[t])) for t in range(3)]

        e_l1 = min(sum(f[t] * self.e_fill_l1[t] + served * self.e_l2[t] for t, served in enumerate(l2_served(f)))
                   for f in l1_options)

        def dram_part(f: list[int]) -> float:
            return (sum(f[t] * self.e_fill_l2[t] for t in range(3))
                    + max(0, f[OUTPUTS] - self.compulsory[OUTPUTS]) * self.e_dram_read[OUTPUTS])

        e_outer = min(dram_part(f) for f in l2_options)
        energy = self.e_macs + e_l1 + e_outer
        # words over the DRAM network: the L2's fills (DRAM reads; outputs: updates) and outputs' re-reads
        dram_words = min(sum(f[t] * self.outer_words[t] for t in range(3))
                         + max(0, f[OUTPUTS] - self.compulsory[OUTPUTS]) * self.outer_words[OUTPUTS]
                         for f in l2_options)
        l2_words = min(sum(served * self.outer_words[t] for t, served in enumerate(l2_served(f))) for f in l1_options)
        cycles = network_cycles(self._compute(options, dims), dram_words, l2_words, self.accel)
        return LowerBound(cycles=float(max(cycles, self.global_bound.cycles)),
                          energy_pj=float(max(energy, self.global_bound.energy_pj)))

    def _compute(self, options: list[list[Option]], dims: list[_DimSummary]) -> float:
        compute = float(math.prod(dims[d].compute for d in range(8)))
        if self.lanes > 1:
            # fused MAC lanes take the L1 reduction loops (C, R, S): ceil(red / lanes) cycles for red iterations
            if all(len(options[d]) == 1 for d in (C, R, S)):
                red = options[C][0][T2] * options[R][0][T2] * options[S][0][T2]
                compute = compute / red * math.ceil(red / self.lanes)
            else:
                compute /= self.lanes
        compute *= self.passes
        if self.systolic:
            skew_axes = sum(a - 1 for a in self.array)
            folds_skew = []
            for t in range(3):
                folds = math.prod(dims[d].above_l1 for d in INDEXED_BY[t])
                skew = skew_axes + (0 if t == OUTPUTS else self.array[0])
                folds_skew.append(folds * skew - 1)
            compute += max(0, min(folds_skew))
        return compute


def tiling_bound(layer: Layer, accel: Accelerator, temporal: np.ndarray, spatial: np.ndarray) -> LowerBound:
    """:class:`TilingBound` for one tiling (build a ``TilingBound`` once to bound many tilings of a layer)."""
    return TilingBound(layer, accel)(temporal, spatial)
