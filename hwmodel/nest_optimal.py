"""Exact mapper on a storage hierarchy: the whole mapspace of a layer, capacity- and bound-pruned.

:func:`optimal_nest_mapping` enumerates, for one layer on one :class:`~hwmodel.hierarchy.Hierarchy`:

* **factors**: per dim of size ``D``, every tuple of factors over its *slots* (the temporal loop of every level,
  and every fanout axis of size > 1 that may unroll the dim, as :func:`hwmodel.nest_search._slots`) that covers
  ``D`` without waste: the product is ``>= D`` and no factor can be lowered by one without the product falling
  below ``D`` (a *minimal cover*). This holds every exact-divisor chain (product ``== D``) and, with
  ``imperfect=True`` (default), every imperfect split the kernel counts exactly (padded iterations project to
  nothing): each minimal cover is the ceil-div chain ``rem -> ceil(rem / f)`` that
  :func:`~hwmodel.nest_search.random_mapping` draws, with the last slot taking the remainder. Covers with a
  factor that can be lowered (strictly more padded iterations, e.g. ``7 = 2 x 3 x 2``) are *not* enumerated:
  "proven" means optimal over minimal covers. Spatial factors respect the axis sizes (product per axis) and
  connectivity. The cost depends on a dim's spatial factors below a level only through their product over the
  axes (the kernel merges them), so placements giving the same products are evaluated once.
* **loop orders**, per level, up to equivalence: the kernel's loop nest (``nestkernel.build_loops``) keeps only
  the loops of bound > 1, so two orders that agree on the relative order of a level's loops with factor > 1
  describe the same nest and the same cost; every permutation of those loops is enumerated (the unit dims
  follow in a fixed order).
* **bypass**: every keep/bypass choice of every tensor at every level below DRAM that the architecture lets
  keep it (DRAM keeps all).

Pruning (never drops a mapping better than the incumbent):

* capacity: a level's tile of a tensor is the projection of the loops at and below it; its words
  (``nestkernel._tile_words``: products of ``min(extent, dim)`` and the input window
  ``(p - 1) * stride + (r - 1) * dilation + 1``) never decrease when a factor grows. Dims are assigned one at a
  time with the unassigned dims' factors at 1 (their least value), so if a partial assignment already overflows
  a level (for the bypass choice being enumerated, whose kept tensors are fixed) so does every completion; the
  same holds for the per-axis spatial products;
* cost: the compute cycles are at least the product of the temporal factors (over the MAC lanes, times the
  passes), which a partial assignment already bounds from below (unassigned dims contribute >= 1); cycles are
  at least :func:`nest_lower_bound`'s and energy at least :func:`nest_energy_bound`'s for the bypass choice being
  enumerated (compulsory traffic of every level that keeps a tensor); a bypass choice or partial assignment
  whose bound exceeds the incumbent's objective is dropped with all its completions (orders included).

With ``time_limit``, :func:`~hwmodel.nest_search.search_nest_mapping` runs first (the incumbent: the result is
never worse than the heuristic), the enumeration stops at the limit, ``proven=False`` and ``certified_bound`` is
the objective of :func:`nest_lower_bound` (valid for every mapping on the hierarchy).
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from hwmodel import nestkernel as nk
from hwmodel.hierarchy import Hierarchy
from hwmodel.layer import DIMS, TENSORS, Layer
from hwmodel.nest_search import _TIE_BREAK, search_nest_mapping
from hwmodel.nestmodel import NestCost, NestMapping, cost_from_row, layer_params
from hwmodel.bounds import LowerBound
from hwmodel.objectives import get_objective, objective_value

#: Mappings per kernel call.
BATCH = 4096
#: Candidate factor tuples of one dim handled at once (bounds the memory).
CHUNK = 8192
#: Bypass choices sorted by their energy bound when there are at most this many.
SORT_KEEPS = 4096
#: Evaluations of the heuristic incumbent without a time limit (enables the cost pruning) and with one (at 60000
#: the heuristic matches or beats Timeloop-mapper's published mapping on every exercise that ships one, seeds 0-5:
#: BENCHMARKS.md, "hierarchy mapper against Timeloop-mapper's published mappings").
INCUMBENT_BUDGET = 2000
INCUMBENT_BUDGET_TIMED = 60000


@dataclass
class NestOptimalResult:
    mapping: NestMapping
    cost: NestCost
    objective: str
    evaluations: int
    proven: bool
    #: a lower bound of the objective over the mapspace (the optimum itself when proven)
    certified_bound: float
    seconds: float = 0.0

    @property
    def value(self) -> float:
        return objective_value(self.objective, self.cost.cycles, self.cost.energy_pj)

    @property
    def gap(self) -> float:
        """Objective over the certified bound (1.0 when proven)."""
        return self.value / self.certified_bound if self.certified_bound > 0 else math.inf


# ---- lower bound ------------------------------------------------------------------------------------------
def compulsory_words(layer: Layer) -> tuple[int, int, int]:
    """Distinct elements of weights, inputs (the ones some MAC reads: stride gaps excluded) and outputs."""
    n, g, k, c, p, q, r, s = (int(x) for x in layer.dim_array)
    sh, sw = layer.stride
    dh, dw = layer.dilation
    rows = len({pp * sh + rr * dh for pp in range(p) for rr in range(r)})
    cols = len({qq * sw + ss * dw for qq in range(q) for ss in range(s)})
    return g * k * c * r * s, n * g * c * rows * cols, n * g * k * p * q


def nest_lower_bound(layer: Layer, hier: Hierarchy) -> LowerBound:
    """Cycles and energy no mapping of ``layer`` on ``hier`` beats (so ``edp >= cycles * energy``).

    Cycles: MACs / (MAC units x lanes) x passes (every MAC runs in some temporal iteration of some unit), and
    DRAM's compulsory traffic over its finite bandwidths (it reads every needed weight and input at least once
    and receives every output at least once as an update). Energy: the least :func:`nest_energy_bound` over
    every bypass choice the architecture allows (MAC energy plus each level's compulsory accesses; DRAM's rounded
    up to whole vectors as the kernel counts)."""
    lv = hier.levels[0]
    macs = float(layer.macs)
    units = hier.num_macs
    compute = macs * hier.mac_passes / (units * hier.mac_lanes)
    if hier.mac_lanes == 1:
        compute = math.ceil(compute - 1e-9)
    words = compulsory_words(layer)
    scale = [lv.tensor_bits[t] / lv.word_bits for t in range(3)]
    moved = [words[t] * scale[t] for t in range(3)]  # in DRAM words
    rd, wr = moved[0] + moved[1], moved[2]
    port = max(math.ceil(rd / lv.read_bandwidth), math.ceil(wr / lv.write_bandwidth))
    net = math.ceil((rd + wr) / lv.network_bandwidth)
    cycles = max(compute, port, net)
    energy = _min_energy_bound(layer, hier)
    return LowerBound(float(cycles) * (1 - 1e-12), energy * (1 - 1e-12))


def _tensor_energy_bound(layer: Layer, hier: Hierarchy, t: int, kept: list[bool], words: int) -> float:
    """:func:`nest_energy_bound`'s share of tensor ``t`` kept at the levels ``kept`` (``kept[0]`` = DRAM)."""
    n = len(hier.levels)
    macs = float(layer.macs)
    energy = 0.0
    for l, lv in enumerate(hier.levels):
        if not kept[l]:
            continue
        below = hier.num_macs // hier.instances(l) * hier.mac_lanes  # MACs one instance's read may serve at once
        per_word = lv.tensor_bits[t] / lv.word_bits / lv.block_size
        innermost = not any(kept[m] for m in range(l + 1, n))
        served = max(float(words), macs / below) if innermost else float(words)
        if t < 2:
            if l == 0:
                energy += math.ceil(served * per_word - 1e-9) * lv.read_pj
            else:
                energy += (served * lv.read_pj + words * lv.fill_pj) * per_word
        else:
            pj = lv.read_pj if lv.read_pj == lv.fill_pj == lv.update_pj else lv.update_pj
            energy += math.ceil(served * per_word - 1e-9) * pj if l == 0 else served * per_word * pj
        if lv.noc_pj > 0:
            nxt = next((m for m in range(l + 1, n) if kept[m]), None)
            if nxt is not None:
                child = hier.levels[nxt]
                energy += words * lv.noc_pj * child.tensor_bits[t] / child.word_bits
    return energy


def nest_energy_bound(layer: Layer, hier: Hierarchy, keep: np.ndarray) -> float:
    """Energy no mapping with the bypass choice ``keep[L, 3]`` beats (``>=`` :func:`nest_lower_bound`'s).

    MACs x MAC energy; per level that keeps a tensor (the kernel's per-word energies, scaled by stored bits /
    word bits, over the vector size): weights / inputs are read at least once per needed element (each is served
    to some child or MAC) and, below DRAM, filled at least once (each enters some instance); outputs are updated
    at least once per element. The innermost level keeping a tensor serves every MAC, merging only identical
    siblings of the fanouts below it: at least MACs / (fanout below it x MAC lanes) reads (weights, inputs) or
    updates (outputs). DRAM (one instance) rounds up to whole vectors as the kernel does; the other levels are
    not rounded (rounding up only adds). Plus the network energy (per word) of each needed element delivered
    once to the next level keeping it, from every level with a NoC energy."""
    words = compulsory_words(layer)
    n = len(hier.levels)
    energy = float(layer.macs) * hier.mac_pj
    for t in range(3):
        kept = [l == 0 or (bool(keep[l, t]) and TENSORS[t] in hier.levels[l].keeps) for l in range(n)]
        energy += _tensor_energy_bound(layer, hier, t, kept, words[t])
    return energy * (1 - 1e-12)


def _min_energy_bound(layer: Layer, hier: Hierarchy) -> float:
    """The least :func:`nest_energy_bound` over every bypass choice (its terms are per tensor: minimised per
    tensor over that tensor's keep choices)."""
    words = compulsory_words(layer)
    n = len(hier.levels)
    energy = float(layer.macs) * hier.mac_pj
    for t in range(3):
        free = [l for l in range(1, n) if TENSORS[t] in hier.levels[l].keeps]
        best = math.inf
        for bits in itertools.product((0, 1), repeat=len(free)):
            kept = [l == 0 for l in range(n)]
            for l, b in zip(free, bits):
                kept[l] = bool(b)
            best = min(best, _tensor_energy_bound(layer, hier, t, kept, words[t]))
        energy += best
    return energy


# ---- the enumeration --------------------------------------------------------------------------------------
def _dim_slots(hier: Hierarchy, d: int) -> list[tuple[int, int]]:
    """(level, axis) places dim ``d`` may take a factor: axis -1 = the level's temporal loop."""
    out: list[tuple[int, int]] = []
    for l, lv in enumerate(hier.levels):
        out.append((l, -1))
        if lv.fanout is not None:
            for a, (size, dims) in enumerate(zip(lv.fanout.axes, lv.fanout.connectivity)):
                if size > 1 and DIMS[d] in dims:
                    out.append((l, a))
    return out


class _Timeout(Exception):
    pass


def minimal_covers(size: int, caps: tuple[int, ...], imperfect: bool = True,
                   deadline: float | None = None) -> np.ndarray:
    """Every tuple ``f`` (``f[i] <= caps[i]``) with ``prod(f) >= size`` whose factors cannot be lowered by one
    (with ``imperfect=False``: ``prod(f) == size``), one per row. They are the ceil-div chains
    ``rem -> ceil(rem / f[i])`` whose last factor is the remainder, less those with a lowerable factor."""
    key = (int(size), tuple(int(c) for c in caps), bool(imperfect))
    if key in _COVERS:
        return _COVERS[key]
    size, caps, imperfect = key
    out: list[tuple[int, ...]] = []
    k = len(caps)
    steps = [0]

    def rec(i: int, prod: int, acc: list[int]) -> None:
        steps[0] += 1
        if deadline is not None and steps[0] % 4096 == 0 and time.perf_counter() > deadline:
            raise _Timeout
        rem = -(-size // prod)
        if i == k - 1:
            if rem > caps[i]:
                return
            f = acc + [rem]
            total = prod * rem
            if total == size or (imperfect and all(x == 1 or total // x * (x - 1) < size for x in f)):
                out.append(tuple(f))
            return
        for x in range(1, min(rem, caps[i]) + 1):
            if not imperfect and (size // prod) % x:
                continue
            rec(i + 1, prod * x, acc + [x])

    rec(0, 1, [])
    arr = np.array(out, dtype=np.int64).reshape(-1, k)
    _COVERS[key] = arr
    return arr


_COVERS: dict[tuple, np.ndarray] = {}


@lru_cache(maxsize=512)
def _perms(dims: tuple[int, ...]) -> np.ndarray:
    """Orders (rows of 8 dims) putting ``dims`` first in every order, then the others ascending."""
    rest = [d for d in range(nk.NUM_DIMS) if d not in dims]
    return np.array([list(p) + rest for p in itertools.permutations(dims)], dtype=np.int64)


class _Enumerator:
    def __init__(self, layer: Layer, hier: Hierarchy, objective: str, imperfect: bool, deadline: float | None):
        self.layer, self.hier, self.n = layer, hier, len(hier.levels)
        self.col = get_objective(objective).nest_column
        self.tie = _TIE_BREAK[self.col]
        self.objective = objective
        self.deadline = deadline
        self.ai, self.af, self.conn, self.e_mac = hier.arrays()
        self.lp = layer_params(layer)
        self.sizes = layer.dim_array.astype(np.int64)
        lb = nest_lower_bound(layer, hier)
        self.lb_cycles, self.lb_energy = lb.cycles, lb.energy_pj
        self.cycle_scale = hier.mac_passes / hier.mac_lanes
        self.best: tuple[float, float] = (math.inf, math.inf)
        self.best_row = None
        self.evaluations = 0
        self.timed_out = False
        self.buf: list[tuple[np.ndarray, ...]] = []
        self.buffered = 0
        self.seen: set[bytes] = set()
        # per dim: slots and candidate factor tuples
        self.dims = list(range(nk.NUM_DIMS))
        self.slots = {d: _dim_slots(hier, d) for d in self.dims}
        self.cands = {}
        try:
            for d in self.dims:
                caps = tuple(int(self.sizes[d]) if a < 0 else hier.levels[l].fanout.axes[a] for l, a in self.slots[d])
                self.cands[d] = minimal_covers(int(self.sizes[d]), caps, imperfect, deadline)
        except _Timeout:
            self.timed_out = True
            self.cands = {d: np.ones((1, len(self.slots[d])), dtype=np.int64) for d in self.dims}
        # dims with the most candidates first: the capacity and cost pruning then cut the widest branches
        self.order_dims = sorted((d for d in self.dims if self.sizes[d] > 1), key=lambda d: -len(self.cands[d]))
        self.axsize = np.ones((self.n, nk.MAX_AXES), dtype=np.int64)
        for l, lv in enumerate(hier.levels):
            if lv.fanout is not None:
                self.axsize[l, : len(lv.fanout.axes)] = lv.fanout.axes
        self.bounded = [l for l, lv in enumerate(hier.levels) if lv.bounded]
        self.keepable = [(l, t) for l in range(1, self.n) for t, name in enumerate(TENSORS)
                         if name in hier.levels[l].keeps]

    # -- bookkeeping --
    def stop(self) -> bool:
        if self.deadline is not None and time.perf_counter() > self.deadline:
            self.timed_out = True
        return self.timed_out

    def offer(self, code: int, metrics: np.ndarray, arrays: tuple[np.ndarray, ...], counts: np.ndarray) -> None:
        key = (float(metrics[self.col]), float(metrics[self.tie]))
        if code == nk.OK and key < self.best:
            self.best = key
            self.best_row = (arrays, int(code), metrics.copy(), counts.copy())

    def flush(self) -> None:
        if not self.buf:
            return
        t, s, o, k = (np.concatenate([b[j] for b in self.buf]) for j in range(4))
        self.buf, self.buffered = [], 0
        codes, metrics, counts = nk.evaluate_nest_batch(self.lp, self.n, self.ai, self.af, self.conn, self.e_mac,
                                                        t, s, o, k)
        self.evaluations += len(codes)
        ok = np.flatnonzero(codes == nk.OK)
        if ok.size:
            sc = metrics[ok]
            i = ok[np.lexsort((sc[:, self.tie], sc[:, self.col]))[0]]
            self.offer(int(codes[i]), metrics[i], (t[i], s[i], o[i], k[i]), counts[i])

    def bound_exceeds(self, compute_lb):
        """True where every mapping with compute cycles >= ``compute_lb`` is worse than the incumbent: its
        objective's bound exceeds the incumbent's, or equals or exceeds it while the tie-break's bound exceeds the
        incumbent's tie-break (lexicographic; both bounds are valid, so such a mapping cannot win)."""
        cyc = np.maximum(self.lb_cycles, compute_lb)
        lb = {nk.MT_EDP: cyc * self.lb_energy, nk.MT_CYCLES: cyc, nk.MT_ENERGY: self.lb_energy}[self.col]
        tie = {nk.MT_ENERGY: cyc, nk.MT_CYCLES: self.lb_energy}[self.tie]
        lb = np.asarray(lb, dtype=np.float64)
        tie = np.asarray(tie, dtype=np.float64)
        return (lb * (1 - 1e-9) > self.best[0]) | ((lb >= self.best[0]) & (tie * (1 - 1e-9) > self.best[1]))

    # -- capacity --
    def _fits(self, ext: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """``ext[c, L, 8]`` tile extents of candidates: rows whose kept tiles fit every bounded level."""
        ok = np.ones(ext.shape[0], dtype=bool)
        lp = self.sizes
        sh, sw = self.layer.stride
        dh, dw = self.layer.dilation
        for l in self.bounded:
            e = np.minimum(ext[:, l, :], lp[None, :]).astype(np.float64)
            words = (
                e[:, 1] * e[:, 2] * e[:, 3] * e[:, 6] * e[:, 7],
                e[:, 0] * e[:, 1] * e[:, 3] * ((e[:, 4] - 1) * sh + (e[:, 6] - 1) * dh + 1)
                * ((e[:, 5] - 1) * sw + (e[:, 7] - 1) * dw + 1),
                e[:, 0] * e[:, 1] * e[:, 2] * e[:, 4] * e[:, 5],
            )
            lv = self.hier.levels[l]
            mb = lv.multiple_buffering
            used = np.zeros(ext.shape[0])
            for t in range(3):
                if not keep[l, t]:
                    continue
                bits = words[t] * lv.tensor_bits[t] * mb
                if lv.partition_bits is not None:
                    ok &= bits <= lv.partition_bits[t]
                used += bits
            if lv.partition_bits is None:
                ok &= used <= lv.capacity_bits
        return ok

    # -- the search --
    def _keeps(self):
        """Every bypass choice as ``keep[L, 3]``, the ones with the least energy bound first (when there are at
        most :data:`SORT_KEEPS`): good mappings come early, so the bound prunes more of the rest."""
        base = np.zeros((self.n, 3), dtype=np.int64)
        base[0] = 1
        keeps = []
        for bits in itertools.product((1, 0), repeat=len(self.keepable)):
            keep = base.copy()
            for (l, t), b in zip(self.keepable, bits):
                keep[l, t] = b
            keeps.append(keep)
            if len(keeps) > SORT_KEEPS:
                yield from keeps
                keeps = []
                break
        else:
            yield from sorted(keeps, key=lambda k: nest_energy_bound(self.layer, self.hier, k))
            return
        for bits in itertools.islice(itertools.product((1, 0), repeat=len(self.keepable)), SORT_KEEPS + 1, None):
            keep = base.copy()
            for (l, t), b in zip(self.keepable, bits):
                keep[l, t] = b
            yield keep

    def run(self) -> None:
        if self.timed_out:
            return
        for keep in self._keeps():
            self.seen = set()
            self.lb_energy = nest_energy_bound(self.layer, self.hier, keep)
            if self.best[0] < math.inf and self.bound_exceeds(0.0):
                continue  # no mapping with this bypass choice beats the incumbent
            t0 = np.ones((self.n, nk.NUM_DIMS), dtype=np.int64)
            s0 = np.ones((self.n, nk.MAX_AXES, nk.NUM_DIMS), dtype=np.int64)
            self._dfs(0, t0, s0, keep)
            if self.stop():
                return
            self.flush()  # the next bypass choice is pruned against everything seen so far

    def _dfs(self, i: int, t: np.ndarray, s: np.ndarray, keep: np.ndarray) -> None:
        if self.stop():
            return
        d = self.order_dims[i] if i < len(self.order_dims) else None
        if d is None:  # no dim > 1: a single point
            self._leaves(t[None], s[None], keep)
            return
        for lo in range(0, self.cands[d].shape[0], CHUNK):
            self._dfs_chunk(i, d, self.cands[d][lo: lo + CHUNK], t, s, keep)
            if self.timed_out:
                return

    def _dfs_chunk(self, i: int, d: int, cand: np.ndarray, t: np.ndarray, s: np.ndarray, keep: np.ndarray) -> None:
        c = cand.shape[0]
        T = np.repeat(t[None], c, axis=0)
        S = np.repeat(s[None], c, axis=0)
        for j, (l, a) in enumerate(self.slots[d]):
            if a < 0:
                T[:, l, d] = cand[:, j]
            else:
                S[:, l, a, d] = cand[:, j]
        ok = (S.prod(axis=3) <= self.axsize[None]).all(axis=(1, 2))
        sf = S.prod(axis=2)  # [c, L, 8] spatial per level
        f = T * sf
        ext = np.flip(np.cumprod(np.flip(f, axis=1), axis=1), axis=1)  # product over levels >= l
        ok &= self._fits(ext, keep)
        comp = T.prod(axis=(1, 2)).astype(np.float64) * self.cycle_scale
        if self.best[0] < math.inf:
            ok &= ~self.bound_exceeds(comp)
        idx = np.flatnonzero(ok)
        if i == len(self.order_dims) - 1:
            self._leaves(T[idx], S[idx], keep)
            return
        for j in idx:
            if self.bound_exceeds(comp[j]):
                continue
            self._dfs(i + 1, T[j], S[j], keep)
            if self.timed_out:
                return

    def _leaves(self, T: np.ndarray, S: np.ndarray, keep: np.ndarray) -> None:
        sf = S.prod(axis=2)
        for j in range(T.shape[0]):
            key = T[j].tobytes() + sf[j].tobytes()
            if key in self.seen:
                continue
            self.seen.add(key)
            per_level = [_perms(tuple(int(x) for x in np.flatnonzero(T[j, l] > 1))) for l in range(self.n)]
            shape = [p.shape[0] for p in per_level]
            tp = np.ones((nk.MAX_LEVELS, nk.NUM_DIMS), dtype=np.int64)
            sp = np.ones((nk.MAX_LEVELS, nk.MAX_AXES, nk.NUM_DIMS), dtype=np.int64)
            kp = np.zeros((nk.MAX_LEVELS, 3), dtype=np.int64)
            tp[: self.n], sp[: self.n], kp[: self.n] = T[j], S[j], keep
            # the order combinations, BATCH at a time (their number can be astronomical: (8!)^levels at most)
            combos = itertools.product(*[range(x) for x in shape])
            while True:
                chunk = np.array(list(itertools.islice(combos, BATCH)), dtype=np.int64).reshape(-1, self.n)
                count = chunk.shape[0]
                if count == 0:
                    break
                o = np.empty((count, nk.MAX_LEVELS, nk.NUM_DIMS), dtype=np.int64)
                o[:] = np.arange(nk.NUM_DIMS)
                for l in range(self.n):
                    o[:, l] = per_level[l][chunk[:, l]]
                self.buf.append((np.broadcast_to(tp, (count, *tp.shape)), np.broadcast_to(sp, (count, *sp.shape)),
                                 o, np.broadcast_to(kp, (count, *kp.shape))))
                self.buffered += count
                if self.buffered >= BATCH:
                    self.flush()
                    if self.stop():
                        return
                if count < BATCH:
                    break

def optimal_nest_mapping(layer: Layer, hier: Hierarchy, objective: str = "edp", time_limit: float | None = None,
                         imperfect: bool = True, seed: int = 0,
                         incumbent_budget: int | None = None) -> NestOptimalResult:
    """The best mapping of ``layer`` on ``hier`` over the whole mapspace (module docstring: what it covers and
    why the pruning is safe); ties of the objective go to the lower energy (latency for ``energy``).

    Without ``time_limit`` the space is exhausted: ``proven=True`` and ``certified_bound`` = the optimum. With
    it, the heuristic (:func:`search_nest_mapping`, ``incumbent_budget`` evaluations) runs first, the enumeration
    stops at the limit, and unless it finished, ``proven=False`` and ``certified_bound`` is
    :func:`nest_lower_bound`'s objective -- except when the best found reaches that bound: then ``proven=True``
    too (its objective is optimal; the tie-break is not certified). ``ValueError`` when no mapping fits."""
    obj = get_objective(objective).name
    if time_limit is not None and not time_limit > 0:
        raise ValueError(f"time_limit must be > 0 seconds, got {time_limit}")
    start = time.perf_counter()
    deadline = None if time_limit is None else start + float(time_limit)
    budget = incumbent_budget if incumbent_budget is not None else (
        INCUMBENT_BUDGET if time_limit is None else INCUMBENT_BUDGET_TIMED)
    inc = None
    if budget > 0:
        try:
            inc = search_nest_mapping(layer, hier, objective=obj, budget=budget, seed=seed)
        except ValueError:
            inc = None
    en = _Enumerator(layer, hier, obj, imperfect, deadline)  # may stop at the deadline (then it is marked)
    if inc is not None:
        en.evaluations += inc.evaluated
        t, s, o, k = inc.mapping.padded()
        codes, metrics, counts = nk.evaluate_nest_batch(en.lp, en.n, en.ai, en.af, en.conn, en.e_mac,
                                                        t[None], s[None], o[None], k[None])
        en.offer(int(codes[0]), metrics[0], (t, s, o, k), counts[0])
    en.run()
    if not en.timed_out:
        en.flush()
    proven = not en.timed_out
    bound = nest_lower_bound(layer, hier)
    lower = objective_value(obj, bound.cycles, bound.energy_pj)
    if en.best_row is None:
        raise ValueError(f"no valid mapping of {layer} on {hier.name}" + ("" if proven else " within the time limit"))
    (t, s, o, k), code, metrics, counts = en.best_row
    n = en.n
    mapping = NestMapping(t[:n].copy(), s[:n].copy(), o[:n].copy(), k[:n].copy())
    cost = cost_from_row(hier, code, metrics, counts, layer.macs)
    value = float(metrics[en.col])
    if not proven and value <= lower * (1 + 1e-9):
        proven = True  # the best reaches the lower bound: its objective is optimal (not its tie-break)
    bound = value if proven else lower
    return NestOptimalResult(mapping, cost, obj, en.evaluations, proven, min(bound, value),
                             time.perf_counter() - start)


__all__ = ["NestOptimalResult", "compulsory_words", "minimal_covers", "nest_energy_bound",
           "nest_lower_bound",
           "optimal_nest_mapping"]
