"""Mapping search on a storage hierarchy (any :class:`Hierarchy`): seeded random sampling of the mapspace.

The space decodes a point: per dim, the layer size is split over the slots (each level's temporal loop and
each fanout axis that may unroll the dim) by successive factors, exact divisors or no-waste ceil-div
factors; each level gets a random loop order; bypass follows the architecture. The search only proposes
points and hears costs (a batch per round, best kept). This is the mapper ``naas-hw evaluate --timeloop``
uses when no mapping is given; the family's ES mapper (:mod:`hwmodel.search`) is the tuned one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numba import njit

from hwmodel import nestkernel as nk
from hwmodel.hierarchy import Hierarchy
from hwmodel.layer import DIMS, Layer
from hwmodel.nestmodel import NestCost, NestMapping, cost_from_row, evaluate_nest_batch, layer_params
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


@dataclass
class NestSearchResult:
    mapping: NestMapping
    cost: NestCost
    evaluated: int
    valid: int


def search_nest_mapping(layer: Layer, hier: Hierarchy, objective: str = "edp", budget: int = 20000,
                        seed: int = 0, batch: int = 1000) -> NestSearchResult:
    """Best of ``budget`` random mappings, each made to fit the levels' capacities by :func:`fit_capacity`
    (``ValueError`` when none is valid)."""
    col = get_objective(objective).nest_column
    if budget < 1:
        raise ValueError(f"budget must be >= 1, got {budget}")
    rng = np.random.default_rng(seed)
    best: tuple[float, NestMapping, int, np.ndarray, np.ndarray] | None = None
    done = valid = 0
    while done < budget:
        k = min(batch, budget - done)
        cands = fit_capacity(layer, hier, [random_mapping(layer, hier, rng) for _ in range(k)])
        codes, metrics, counts = evaluate_nest_batch(layer, hier, cands)
        done += k
        ok = np.flatnonzero(codes == nk.OK)
        valid += len(ok)
        if len(ok):
            i = ok[np.argmin(metrics[ok, col])]
            if best is None or metrics[i, col] < best[0]:
                best = (float(metrics[i, col]), cands[i], int(codes[i]), metrics[i].copy(), counts[i].copy())
    if best is None:
        raise ValueError(f"no valid mapping of {layer} on {hier.name} in {budget} samples (levels too small?)")
    _, mapping, code, met, cnt = best
    return NestSearchResult(mapping, cost_from_row(hier, code, met, cnt, layer.macs), done, valid)
