"""Mapping search on a storage hierarchy (any :class:`Hierarchy`): random start, then evolutionary search.

The space decodes a point: per dim, the layer size is split over the slots (each level's temporal loop and
each fanout axis that may unroll the dim) by successive factors, exact divisors or no-waste ceil-div
factors; each level gets a random loop order; bypass follows the architecture (or, for the evolutionary
search's samples, is drawn among the tensors each level may keep). The space also mutates points (move a
prime factor of a dim between slots, swap two loops of a level, resize a slot, toggle a bypass; all in numba)
and makes them fit the levels (:func:`fit_capacity`). The search only proposes points and hears costs (a
batch per generation). This is the mapper ``naas-hw evaluate --timeloop`` uses when no mapping is given;
unconstrained, it matches or beats Timeloop-mapper's published mappings of the exercises in our model
(``tests/test_nest_mapper_timeloop.py``, ``scripts/bench_nest_mapper.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from hwmodel import nestkernel as nk
from hwmodel.hierarchy import Hierarchy
from hwmodel.jit import njit
from hwmodel.layer import DIMS, TENSORS, Layer
from hwmodel.nestmodel import (
    NestCost,
    NestMapping,
    check_mapping,
    cost_from_row,
    layer_params,
)
from hwmodel.objectives import NEST_COLUMNS, get_objective

#: Objective name -> column of the nest metrics (``nestkernel.MT_*``) it minimises (from :mod:`hwmodel.objectives`).
OBJECTIVE_COLUMNS = NEST_COLUMNS


def _slots(hier: Hierarchy, d: int) -> list[tuple[str, int, int]]:
    """(kind, level, axis) places dim ``d`` may be iterated: temporal at every level, spatial on allowed axes."""
    out: list[tuple[str, int, int]] = []
    for l, lv in enumerate(hier.levels):
        if lv.fanout is not None:
            for a, dims in enumerate(lv.fanout.connectivity):
                if DIMS[d] in dims:
                    out.append(("s", l, a))
        out.append(("t", l, 0))
    return out


@lru_cache(maxsize=4096)
def _divisors(n: int) -> tuple[int, ...]:
    small = [i for i in range(1, int(n**0.5) + 1) if n % i == 0]
    return tuple(sorted(set(small + [n // i for i in small])))


def random_mapping(layer: Layer, hier: Hierarchy, rng: np.random.Generator) -> NestMapping:
    """One random point of the mapspace (covers the layer; may overflow a level or an axis)."""
    n = len(hier.levels)
    m = NestMapping.empty(n)
    dims = layer.dim_array
    room = {(l, a): size for l, lv in enumerate(hier.levels) if lv.fanout is not None
            for a, size in enumerate(lv.fanout.axes)}
    for d in rng.permutation(len(DIMS)):
        rem = int(dims[d])
        slots = _slots(hier, int(d))
        rng.shuffle(slots)
        for kind, l, a in slots:
            if rem == 1:
                break
            if kind == "s":
                cap = room[(l, a)]
                if cap <= 1:
                    continue
                opts = [f for f in _divisors(rem) if f <= cap] if rng.random() < 0.7 else list(range(1, min(cap, rem) + 1))
                f = int(opts[rng.integers(len(opts))])  # the draw rng.choice(opts) makes, without its overhead
                m.spatial[l, a, d] = f
                room[(l, a)] = cap // f
            else:
                opts = _divisors(rem) if rng.random() < 0.7 else [-(-rem // j) for j in range(1, min(rem, 64) + 1)]
                f = int(opts[rng.integers(len(opts))])
                m.temporal[l, d] *= f
            rem = -(-rem // f)
        m.temporal[0, d] *= rem
    for l in range(n):
        m.order[l] = rng.permutation(len(DIMS))
    return m


@njit(cache=True)
def _move_out(temporal, spatial, level):
    """Shrink the tile of ``level`` by one prime factor moved to the temporal loops of the level above.

    The factor comes from the outermost loops of the tile (the level's own temporal loops, then its fanout's
    axes, then the next level's, ...), the dim with the largest factor; ``f -> ceil(f / p)`` for its smallest
    prime ``p`` and the parent's loop gains ``p``, so the mapping still covers the layer. ``temporal[L, 8]`` and
    ``spatial[L, 3, 8]`` change in place; ``False`` when the tile is a single point."""
    if level <= 0:
        return False
    for k in range(level, temporal.shape[0]):
        for row in range(1 + nk.MAX_AXES):  # the temporal loops, then each fanout axis
            best = -1
            for d in range(nk.NUM_DIMS):
                f = temporal[k, d] if row == 0 else spatial[k, row - 1, d]
                if f > 1 and (best < 0 or f > (temporal[k, best] if row == 0 else spatial[k, row - 1, best])):
                    best = d
            if best < 0:
                continue
            f = temporal[k, best] if row == 0 else spatial[k, row - 1, best]
            p = f
            q = 2
            while q * q <= f:
                if f % q == 0:
                    p = q
                    break
                q += 1
            if row == 0:
                temporal[k, best] = -(-f // p)
            else:
                spatial[k, row - 1, best] = -(-f // p)
            temporal[level - 1, best] *= p
            return True
    return False


@njit(cache=True)
def _fit_round(temporal, spatial, codes, metrics, todo):
    """One :func:`fit_capacity` round over the batch rows ``todo``: returns the rows still to fit."""
    keep = np.zeros(todo.shape[0], dtype=np.bool_)
    for q in range(todo.shape[0]):
        if codes[q] == nk.BAD_CAPACITY:
            i = todo[q]
            keep[q] = _move_out(temporal[i], spatial[i], int(metrics[q, nk.MT_BAD_LEVEL]))
    return todo[keep]


def fit_capacity(layer: Layer, hier: Hierarchy, mappings: list[NestMapping], max_rounds: int = 256) -> list[NestMapping]:
    """Copies of ``mappings`` whose tiles fit every level: while a level overflows, :func:`_move_out` one factor
    of its tile (a batch evaluation per round; mappings that cannot fit are returned as they ended)."""
    if not mappings:
        return []
    n = len(hier.levels)
    packed = [m.padded() for m in mappings]
    t, s, o, k = (np.stack([p[j] for p in packed]) for j in range(4))
    ai, af, conn, e_mac = hier.arrays()
    lp = layer_params(layer)
    todo = np.arange(len(mappings))
    for _ in range(max_rounds):
        if todo.size == 0:
            break
        codes, metrics, _ = nk.evaluate_nest_batch(lp, n, ai, af, conn, e_mac, t[todo], s[todo], o[todo], k[todo])
        todo = _fit_round(t, s, codes, metrics, todo)
    return [NestMapping(t[i, :n].copy(), s[i, :n].copy(), m.order.copy(), m.keep.copy())
            for i, m in enumerate(mappings)]


#: Mutation kinds drawn by :func:`_mutate` (cumulative probabilities): move a prime factor, swap two loops,
#: resize a slot, else toggle a bypass (a swap or toggle impossible for a point becomes a factor move).
_P_FACTOR, _P_ORDER, _P_RESIZE = 0.45, 0.7, 0.85
_MAX_MUTATIONS = 4
#: Share of the children made by crossover of two members before their mutation.
_CROSS = 0.6
#: Last share of the budget spent polishing: parents among the ``_POLISH_TOP`` best, at most 2 moves.
_POLISH, _POLISH_TOP = 0.3, 4
#: Generations without a new best before the population restarts from fresh random samples (the best is kept).
_PATIENCE = 150
#: Share of the budget spent on the random start.
_INIT_SHARE = 0.05


@njit(cache=True)
def _prime_pick(f, u):
    """A prime factor of ``f > 1``, drawn uniformly among its distinct primes by ``u`` in [0, 1)."""
    primes = np.empty(32, dtype=np.int64)
    n = 0
    q = 2
    x = f
    while q * q <= x:
        if x % q == 0:
            primes[n] = q
            n += 1
            while x % q == 0:
                x //= q
        q += 1
    if x > 1:
        primes[n] = x
        n += 1
    return primes[min(int(u * n), n - 1)]


@njit(cache=True)
def _resize(t, s, n_levels, axsize, allow, dims, sizes, r, slots):
    """Set one slot ``X`` of a dim ``d`` (size ``D``) to a new factor ``g`` (a divisor of ``D`` 70% of the
    time; for a spatial slot, within the axis' room, or half of the time up to the axis size, the other dims'
    factors on the axis then moving to the level's temporal loops) and another temporal slot ``Y`` to the least
    factor that still covers ``D``: reshapes a dim's split beyond prime moves (and removes ceil-division
    waste)."""
    n_slot = 1 + nk.MAX_AXES
    d = dims[min(int(r[1] * dims.shape[0]), dims.shape[0] - 1)]
    size = sizes[d]
    n = 0
    for l in range(n_levels):
        slots[n] = l * n_slot
        n += 1
        for a in range(nk.MAX_AXES):
            if axsize[l, a] > 1 and allow[l, a, d]:
                slots[n] = l * n_slot + 1 + a
                n += 1
    x = slots[min(int(r[2] * n), n - 1)]
    xl, xa = x // n_slot, x % n_slot - 1
    if xa < 0:  # Y: a temporal slot other than X
        if n_levels < 2:
            return
        y = min(int(r[3] * (n_levels - 1)), n_levels - 2)
        if y >= xl:
            y += 1
    else:
        y = min(int(r[3] * n_levels), n_levels - 1)
    limit = size
    evict = False
    if xa >= 0:
        used = 1
        for e in range(nk.NUM_DIMS):
            if e != d:
                used *= s[xl, xa, e]
        evict = r[6] < 0.5  # take the whole axis if need be: the other dims' factors move to the level's loops
        limit = min(size, axsize[xl, xa] if evict else axsize[xl, xa] // used)
    if limit < 1:
        return
    if r[4] < 0.7:
        n_div = 0
        for g in range(1, limit + 1):
            if size % g == 0:
                n_div += 1
        pick = min(int(r[5] * n_div), n_div - 1)
        g = 1
        for c in range(1, limit + 1):
            if size % c == 0:
                if pick == 0:
                    g = c
                    break
                pick -= 1
    else:
        g = 1 + min(int(r[5] * limit), limit - 1)
    if xa < 0:
        t[xl, d] = g
    else:
        if evict and used * g > axsize[xl, xa]:
            for e in range(nk.NUM_DIMS):
                if e != d:
                    t[xl, e] *= s[xl, xa, e]
                    s[xl, xa, e] = 1
        s[xl, xa, d] = g
    others = 1
    for l in range(n_levels):
        if l != y:
            others *= t[l, d]
        for a in range(nk.MAX_AXES):
            others *= s[l, a, d]
    t[y, d] = max(1, -(-size // others))


@njit(cache=True)
def _mutate(t, s, o, k, n_levels, axsize, allow, keepable, dims, sizes, u, nmut):
    """Mutate the stacked padded mappings (``t[B, L, 8]``, ``s[B, L, 3, 8]``, ``o[B, L, 8]``, ``k[B, L, 3]``) in
    place, ``nmut[b]`` moves each, decoded from the uniforms ``u[B, M, 8]``:

    * move one prime factor ``p`` of a dim from one slot (a level's temporal loop or a fanout axis allowed to
      unroll the dim) to another slot (a spatial slot only while its axis has room): the product per dim stays,
      so the layer stays covered;
    * swap two loops (with factors > 1) in one level's order;
    * resize one slot of a dim (:func:`_resize`);
    * toggle the bypass of a tensor at a level below DRAM that the architecture lets keep it (``keepable``).
    Capacity is not checked here (:func:`fit_capacity` runs after)."""
    n_keep = 0
    for l in range(n_levels):
        for q in range(nk.NUM_TENSORS):
            n_keep += keepable[l, q]
    n_slot = 1 + nk.MAX_AXES
    slots = np.empty(n_levels * n_slot, dtype=np.int64)
    pos = np.empty(nk.NUM_DIMS, dtype=np.int64)
    for b in range(t.shape[0]):
        for m in range(nmut[b]):
            r = u[b, m]
            kind = 0 if r[0] < _P_FACTOR else (1 if r[0] < _P_ORDER else (3 if r[0] < _P_RESIZE else 2))
            if kind == 2 and n_keep == 0:
                kind = 0
            if kind == 3:
                _resize(t[b], s[b], n_levels, axsize, allow, dims, sizes, r, slots)
                continue
            if kind == 1:
                l = min(int(r[1] * n_levels), n_levels - 1)
                n = 0
                for i in range(nk.NUM_DIMS):
                    if t[b, l, o[b, l, i]] > 1:
                        pos[n] = i
                        n += 1
                if n < 2:
                    kind = 0  # nothing to reorder at that level: move a factor instead
                else:
                    ii = min(int(r[2] * n), n - 1)
                    jj = min(int(r[3] * (n - 1)), n - 2)
                    if jj >= ii:
                        jj += 1  # two distinct positions
                    i, j = pos[ii], pos[jj]
                    x = o[b, l, i]
                    o[b, l, i] = o[b, l, j]
                    o[b, l, j] = x
                    continue
            if kind == 2:
                pick = min(int(r[1] * n_keep), n_keep - 1)
                for l in range(n_levels):
                    for q in range(nk.NUM_TENSORS):
                        if keepable[l, q]:
                            if pick == 0:
                                k[b, l, q] = 1 - k[b, l, q]
                            pick -= 1
                continue
            d = dims[min(int(r[1] * dims.shape[0]), dims.shape[0] - 1)]
            n = 0
            for l in range(n_levels):
                if t[b, l, d] > 1:
                    slots[n] = l * n_slot
                    n += 1
                for a in range(nk.MAX_AXES):
                    if s[b, l, a, d] > 1:
                        slots[n] = l * n_slot + 1 + a
                        n += 1
            if n == 0:
                continue
            src = slots[min(int(r[2] * n), n - 1)]
            sl, sa = src // n_slot, src % n_slot - 1
            f = t[b, sl, d] if sa < 0 else s[b, sl, sa, d]
            p = _prime_pick(f, r[3])
            n = 0
            for l in range(n_levels):
                if l * n_slot != src:
                    slots[n] = l * n_slot
                    n += 1
                for a in range(nk.MAX_AXES):
                    code = l * n_slot + 1 + a
                    if code != src and axsize[l, a] > 1 and allow[l, a, d]:
                        used = 1
                        for e in range(nk.NUM_DIMS):
                            used *= s[b, l, a, e]
                        if used * p <= axsize[l, a]:
                            slots[n] = code
                            n += 1
            if n == 0:
                continue  # a single level without fanout: nowhere to move to
            dst = slots[min(int(r[4] * n), n - 1)]
            if sa < 0:
                t[b, sl, d] = f // p
            else:
                s[b, sl, sa, d] = f // p
            dl, da = dst // n_slot, dst % n_slot - 1
            if da < 0:
                t[b, dl, d] *= p
            else:
                s[b, dl, da, d] *= p


@dataclass
class NestSearchResult:
    mapping: NestMapping
    cost: NestCost
    evaluated: int
    valid: int


class _Space:
    """The mapspace of one layer on one hierarchy, on stacked padded arrays: samples, mutates, fits and
    evaluates points (the search only proposes and hears costs)."""

    def __init__(self, layer: Layer, hier: Hierarchy):
        self.layer, self.hier, self.n = layer, hier, len(hier.levels)
        self.ai, self.af, self.conn, self.e_mac = hier.arrays()
        self.lp = layer_params(layer)
        self.axsize = np.zeros((nk.MAX_LEVELS, nk.MAX_AXES), dtype=np.int64)
        for l, lv in enumerate(hier.levels):
            if lv.fanout is not None:
                self.axsize[l, : len(lv.fanout.axes)] = lv.fanout.axes
        self.keepable = np.zeros((nk.MAX_LEVELS, nk.NUM_TENSORS), dtype=np.int64)
        for l, lv in enumerate(hier.levels[1:], start=1):  # DRAM keeps every tensor
            for q, name in enumerate(TENSORS):
                self.keepable[l, q] = int(name in lv.keeps)
        self.sizes = layer.dim_array.astype(np.int64)
        self.dims = np.flatnonzero(layer.dim_array > 1).astype(np.int64)
        if self.dims.size == 0:
            self.dims = np.zeros(1, dtype=np.int64)

    def pack(self, mappings: list[NestMapping]) -> tuple[np.ndarray, ...]:
        packed = [m.padded() for m in mappings]
        return tuple(np.stack([p[j] for p in packed]) for j in range(4))

    def random(self, count: int, rng: np.random.Generator, bypass: bool) -> tuple[np.ndarray, ...]:
        """``count`` random points (:func:`random_mapping`); with ``bypass`` half of them also bypass tensors at
        random (each bypassable tensor/level with probability 1/2)."""
        t, s, o, k = self.pack([random_mapping(self.layer, self.hier, rng) for _ in range(count)])
        if bypass:
            flip = (rng.random((count, 1, 1)) < 0.5) & (rng.random(k.shape) < 0.5) & (self.keepable[None] > 0)
            k[flip] = 0
        return t, s, o, k

    def mutate(self, arrays: tuple[np.ndarray, ...], rng: np.random.Generator,
               most: int = _MAX_MUTATIONS) -> tuple[np.ndarray, ...]:
        t, s, o, k = (a.copy() for a in arrays)
        b = t.shape[0]
        nmut = np.minimum(rng.geometric(0.5, size=b), most).astype(np.int64)
        u = rng.random((b, _MAX_MUTATIONS, 8))
        _mutate(t, s, o, k, self.n, self.axsize, self.conn, self.keepable, self.dims, self.sizes, u, nmut)
        return t, s, o, k

    def cross(self, a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...], which: np.ndarray,
              rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        """Uniform crossover of the rows ``which``: each dim's factors (all its slots, so the layer stays covered)
        and each level's loop order and bypass come from ``a`` or ``b``; a child whose fanout axes then overflow
        keeps ``a``."""
        t, s, o, k = (x.copy() for x in a)
        bt, bs, bo, bk = b
        nb = t.shape[0]
        dim = (rng.random((nb, 1, nk.NUM_DIMS)) < 0.5) & which[:, None, None]
        lvl = (rng.random((nb, nk.MAX_LEVELS, 1)) < 0.5) & which[:, None, None]
        t = np.where(dim, bt, t)
        s = np.where(dim[:, :, None, :], bs, s)
        o = np.where(lvl, bo, o)
        k = np.where(lvl, bk, k)
        over = (s.prod(axis=3) > np.maximum(self.axsize, 1)[None]).any(axis=(1, 2))
        t[over], s[over], o[over], k[over] = a[0][over], a[1][over], a[2][over], a[3][over]
        return t, s, o, k

    def fit_evaluate(self, t, s, o, k, max_rounds: int = 256):
        """Make the points fit (as :func:`fit_capacity`, in place) and return their final evaluation."""
        b = t.shape[0]
        codes = np.zeros(b, dtype=np.int64)
        metrics = np.full((b, nk.MT_SIZE), np.inf)
        counts = np.zeros((b, nk.MAX_LEVELS, nk.NUM_TENSORS, nk.CT_SIZE))
        todo = np.arange(b)
        for _ in range(max_rounds + 1):
            if todo.size == 0:
                break
            c, mt, ct = nk.evaluate_nest_batch(self.lp, self.n, self.ai, self.af, self.conn, self.e_mac,
                                               t[todo], s[todo], o[todo], k[todo])
            codes[todo], metrics[todo], counts[todo] = c, mt, ct
            todo = _fit_round(t, s, c, mt, todo)
        return codes, metrics, counts

    def mapping(self, arrays: tuple[np.ndarray, ...], i: int) -> NestMapping:
        t, s, o, k = arrays
        n = self.n
        return NestMapping(t[i, :n].copy(), s[i, :n].copy(), o[i, :n].copy(), k[i, :n].copy())


#: Secondary objective column (ties of the primary one): Timeloop's ``[delay, energy]`` is latency then energy.
_TIE_BREAK = {nk.MT_CYCLES: nk.MT_ENERGY, nk.MT_ENERGY: nk.MT_CYCLES, nk.MT_EDP: nk.MT_ENERGY}


def search_nest_mapping(layer: Layer, hier: Hierarchy, objective: str = "edp", budget: int = 20000,
                        seed: int = 0, batch: int = 1000, method: str = "evolve",
                        warm_start: NestMapping | list[NestMapping] | None = None,
                        population: int | None = None, generation: int = 128) -> NestSearchResult:
    """Best mapping of ``layer`` on ``hier`` found in ``budget`` evaluated mappings (``ValueError`` when none
    is valid); ties of the objective go to the lower energy (latency for ``energy``), as Timeloop's mapper
    with ``optimization-metrics: [delay, energy]``.

    ``method="random"``: best of ``budget`` random mappings, each made to fit the levels' capacities by
    :func:`fit_capacity`. ``method="evolve"`` (default): 5% of the budget (at least ``population`` samples) of
    random mappings, half of them with random bypass, seeds a population of the ``population`` best mappings
    of distinct cost (default: ``budget / 100`` within [32, 512]); then generations of ``generation``
    children, capacity-fitted: each a uniformly drawn member, 60% of them first crossed with another
    (:meth:`_Space.cross`), then 1-4 :func:`_mutate` moves (factor moves, loop swaps, slot resizes, bypass
    toggles); the population keeps the best. The last 30% of the budget polishes: children of the 4 best,
    1-2 moves. After ``_PATIENCE`` generations without a new best, the population restarts from the best and
    fresh random samples. ``warm_start`` mappings (one or a list, for this hierarchy) are evaluated first
    (within the budget) and join the population. Deterministic for a seed."""
    col = get_objective(objective).nest_column
    tie = _TIE_BREAK[col]
    if budget < 1:
        raise ValueError(f"budget must be >= 1, got {budget}")
    if method not in ("evolve", "random"):
        raise ValueError(f"method must be 'evolve' or 'random', got {method!r}")
    if population is None:
        population = min(512, max(32, budget // 100))
    if population < 1 or generation < 1:
        raise ValueError(f"population and generation must be >= 1, got {population}, {generation}")
    rng = np.random.default_rng(seed)
    space = _Space(layer, hier)
    best: tuple[float, float, NestMapping, int, np.ndarray, np.ndarray] | None = None
    done = valid = 0
    pop: tuple[np.ndarray, ...] | None = None  # stacked arrays of the population
    pop_score = np.zeros((0, 2))

    def hear(arrays, codes, metrics, counts) -> bool:
        """Count a batch, update the best and the population; True when the best improved."""
        nonlocal done, valid, best, pop, pop_score
        done += len(codes)
        ok = np.flatnonzero(codes == nk.OK)
        valid += len(ok)
        if not len(ok):
            return False
        score = metrics[ok][:, [col, tie]]
        improved = False
        i = ok[np.lexsort((score[:, 1], score[:, 0]))[0]]
        if best is None or (metrics[i, col], metrics[i, tie]) < (best[0], best[1]):
            best = (float(metrics[i, col]), float(metrics[i, tie]), space.mapping(arrays, i), int(codes[i]),
                    metrics[i].copy(), counts[i].copy())
            improved = True
        if method == "evolve":
            sel = tuple(a[ok] for a in arrays)
            if pop is not None:
                sel = tuple(np.concatenate([p, a]) for p, a in zip(pop, sel))
                score = np.concatenate([pop_score, score])
            rank = np.lexsort((score[:, 1], score[:, 0]))
            s_sorted = score[rank]
            distinct = np.ones(len(rank), dtype=bool)
            distinct[1:] = (s_sorted[1:] != s_sorted[:-1]).any(axis=1)  # equal costs: keep one of them
            keep = rank[distinct][:population]
            pop, pop_score = tuple(a[keep] for a in sel), score[keep]
        return improved

    if warm_start is not None:
        warm = [warm_start] if isinstance(warm_start, NestMapping) else list(warm_start)
        for m in warm:
            check_mapping(layer, hier, m)
        warm = warm[:budget]
        if warm:
            arrays = space.pack(warm)
            hear(arrays, *space.fit_evaluate(*arrays))
    if method == "random":
        while done < budget:
            kk = min(batch, budget - done)
            arrays = space.random(kk, rng, bypass=False)
            hear(arrays, *space.fit_evaluate(*arrays))
    else:
        init = min(budget - done, max(population, int(budget * _INIT_SHARE)))
        while init > 0:
            kk = min(batch, init)
            arrays = space.random(kk, rng, bypass=True)
            hear(arrays, *space.fit_evaluate(*arrays))
            init -= kk
        stale = 0
        while done < budget:
            kk = min(generation, budget - done)
            if pop is None or stale >= _PATIENCE:  # nothing valid yet, or stuck: the best and fresh random samples
                pop, pop_score = None, np.zeros((0, 2))
                if best is not None:
                    pop, pop_score = space.pack([best[2]]), np.array([[best[0], best[1]]])
                fresh = space.random(min(budget - done, max(population, int(budget * _INIT_SHARE))), rng, bypass=True)
                hear(fresh, *space.fit_evaluate(*fresh))
                stale = 0
                continue
            polish = done >= budget * (1 - _POLISH)  # the end: small moves around the best few
            parents = rng.integers(min(len(pop_score), _POLISH_TOP) if polish else len(pop_score), size=kk)
            kids = tuple(a[parents] for a in pop)
            if _CROSS > 0 and len(pop_score) > 1:
                mates = rng.integers(len(pop_score), size=kk)
                kids = space.cross(kids, tuple(a[mates] for a in pop), rng.random(kk) < _CROSS, rng)
            children = space.mutate(kids, rng, 2 if polish else _MAX_MUTATIONS)
            stale = 0 if hear(children, *space.fit_evaluate(*children)) else stale + 1
    if best is None:
        raise ValueError(f"no valid mapping of {layer} on {hier.name} in {budget} samples (levels too small?)")
    _, _, mapping, code, met, cnt = best
    return NestSearchResult(mapping, cost_from_row(hier, code, met, cnt, layer.macs), done, valid)
