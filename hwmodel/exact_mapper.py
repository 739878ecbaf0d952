"""The exact mapper of the 3-level accelerators: branch and bound over tilings, every loop order of the survivors.

The space (:func:`hwmodel.search.tiling_space`): every spatial split of the array's axes, every DRAM / L2 / L1
split of each dim into no-waste factors (``ceil(r / f)`` takes each value once, at its smallest ``f``), and every
order of the loops with a factor > 1 at DRAM and at L2 (the L1 order changes no count: the innermost level serves
every MAC). The walk assigns one dim's factors at a time (the dims with fewest options first) and drops a partial
tiling when

* its tiles already overflow L1 or L2 with the unassigned dims at factor 1 (tiles only grow with a factor), or
* its bound (:class:`hwmodel.tiling_bound.SplitBound`, compiled in :mod:`hwmodel.tiling_kernel`) -- a bound on every
  completion and every loop order -- cannot beat the incumbent (the ES's mapping first, then the best evaluated).

Every option of the next dim is checked in one compiled call, and the survivors are visited best bound first. Of a
whole tiling, only the loop orders whose innermost loops (``X`` above L1, ``X'`` above L2) have a bound that can
beat the incumbent, and then whose own bound (the whole order known) can, are evaluated. All of this only drops
mappings that are invalid or cannot be strictly better, so an exhausted walk proves the optimum. Cut short by a
time limit, the certified bound is the least bound of what the walk had not ruled out (:class:`Frontier`).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np

from hwmodel.accelerator import Accelerator
from hwmodel.bounds import lower_bound
from hwmodel.costmodel import evaluate, evaluate_batch
from hwmodel.layer import Layer
from hwmodel.mapping import Mapping
from hwmodel.objectives import Objective, get_objective
from hwmodel.report import objective_value
from hwmodel.search import (
    MappingResult,
    TilingFit,
    TilingSpace,
    search_mapping,
    tiling_orders,
    tiling_space,
)
from hwmodel.tiling_bound import DRAM_ROW, L2_ROW, SplitBound, TilingBound
from hwmodel.tiling_kernel import NO_LOOP

#: Evaluations of the ES run that gives the exact search its first incumbent.
INCUMBENT_BUDGET = 2000
#: Loop orders evaluated per call of the kernel.
EVALUATION_BATCH = 2048
#: A bound this close above the incumbent still counts as able to beat it: the bound is computed apart from the
#: kernel, and a rounding difference must not hide a better mapping.
BOUND_SLACK = 1e-9


class Leaf(NamedTuple):
    """A tiling the walk keeps: the bounds of its loop orders by innermost loops
    (:meth:`hwmodel.tiling_bound.SplitBound.order_bounds`) and the orders whose own bound can beat the incumbent."""

    temporal: np.ndarray
    spatial: np.ndarray
    order_cycles: np.ndarray
    order_energy: np.ndarray
    orders: np.ndarray


def promising_orders(temporal: np.ndarray, part: SplitBound,
                     hopeless: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> tuple[np.ndarray, ...]:
    """The table of ``part``'s order bounds by innermost loops, and the loop orders of the whole tiling
    ``temporal`` (:func:`hwmodel.search.tiling_orders`) that ``hopeless`` rejects neither by their innermost loops
    (``X``, the innermost loop > 1 above L1: an L2 loop if there is one, else a DRAM loop; ``X'``, the innermost
    DRAM loop > 1) nor by their own bound (:meth:`hwmodel.tiling_bound.SplitBound.each_order_bounds`)."""
    table_cycles, table_energy = part.order_bounds()
    orders = tiling_orders(temporal)
    n_dram, n_l2 = (int((temporal[row] > 1).sum()) for row in (DRAM_ROW, L2_ROW))
    none = np.full(len(orders), NO_LOOP)
    x_dram = orders[:, DRAM_ROW, n_dram - 1] if n_dram else none
    x_l1 = orders[:, L2_ROW, n_l2 - 1] if n_l2 else x_dram
    at = (x_l1 - NO_LOOP, x_dram - NO_LOOP)
    orders = orders[~hopeless(table_cycles[at], table_energy[at])]
    if len(orders):
        orders = orders[~hopeless(*part.each_order_bounds(orders))]
    return table_cycles, table_energy, orders


class Frontier:
    """What the walk has not ruled out yet, as bound scores: the spatial split to walk next (``next_root``) and,
    per depth of the walk, the scores of the kept options in visiting order with the one being visited. The least
    of the unvisited options, the one visited deepest (its subtree may be unfinished) and ``next_root`` is a bound
    on every mapping not yet evaluated."""

    def __init__(self) -> None:
        self.next_root = np.inf
        self.trail: list[list] = []  # per depth: [scores in visiting order, index being visited]

    def least(self) -> float:
        out = self.next_root
        for depth, (scores, at) in enumerate(self.trail):
            rest = scores[at if depth == len(self.trail) - 1 else at + 1:]
            if len(rest):
                out = min(out, float(rest.min()))
        return out


def bounded_tilings(space: TilingSpace, fits: TilingFit, bound: TilingBound,
                    score: Callable[[np.ndarray, np.ndarray], np.ndarray],
                    hopeless: Callable[[np.ndarray, np.ndarray], np.ndarray],
                    frontier: Frontier,
                    hopeless_orders: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None) -> Iterator[Leaf]:
    """The tilings of ``space`` that fit and whose bound ``hopeless`` does not reject, by depth-first assignment of
    one dim at a time with the bound of each partial tiling (module docstring); each with its order bounds and
    the orders ``hopeless_orders`` (default ``hopeless``) does not reject (:func:`promising_orders`).

    ``score(cycles, energy)`` and ``hopeless(cycles, energy)`` take arrays of bounds. Spatial splits go in
    ascending order of their bound's score, and a dim's options in ascending order of theirs; ``frontier`` is kept
    up to date, so when the walk stops early no mapping it has not ruled out scores below ``frontier.least()``."""
    roots = []
    for sp, per_dim in space:
        if all(per_dim):
            part = bound.split(per_dim, [int(sp[:, d].prod()) for d in range(8)])
            # dims with fewest options first: the window dims' factors (which most of the input bounds need) are
            # then known early, and the tree branches least near its root
            order = sorted(range(8), key=lambda d: len(per_dim[d]))
            # the split's bound: the least over the options of its widest dim that fit (every completion takes one)
            widest = order[-1]
            fit = fits.options(np.ones((3, 8), dtype=np.int64), sp, widest, part.options[widest])
            cycles, energy = (v[fit] for v in part.children(widest, fit))
            if len(cycles):
                scores = score(cycles, energy)
                at = int(np.argmin(scores))
                roots.append((float(scores[at]), len(roots), sp, part, order, cycles[at:at + 1], energy[at:at + 1]))
    roots.sort(key=lambda root: root[:2])
    for i, (root_score, _, sp, part, order, cycles, energy) in enumerate(roots):
        frontier.next_root = root_score
        if hopeless(cycles, energy)[0]:
            break  # ascending: no later split can do better either
        frontier.next_root = roots[i + 1][0] if i + 1 < len(roots) else np.inf
        frontier.trail.append([np.array([root_score]), 0])  # the split itself, until its first dim is visited
        yield from _walk(0, order, np.ones((3, 8), dtype=np.int64), part, sp, fits, score, hopeless,
                         hopeless_orders or hopeless, frontier.trail)
        frontier.trail.pop()


def _walk(k: int, order: list[int], temporal: np.ndarray, part: SplitBound, sp: np.ndarray, fits: TilingFit,
          score: Callable[[np.ndarray, np.ndarray], np.ndarray],
          hopeless: Callable[[np.ndarray, np.ndarray], np.ndarray],
          hopeless_orders: Callable[[np.ndarray, np.ndarray], np.ndarray], trail: list[list]) -> Iterator[Leaf]:
    """Depth-first: the ``k``-th dim of ``order`` takes each of its options that fits and whose bound is not
    hopeless, best bound first (``temporal`` and ``part`` hold the partial tiling; unassigned dims are at factor 1
    in ``temporal`` and free in ``part``; ``trail`` is :class:`Frontier`'s)."""
    d = order[k]
    options = part.options[d]
    keep = fits.options(temporal, sp, d, options)
    cycles, energy = part.children(d, keep)
    keep[keep] = ~hopeless(cycles[keep], energy[keep])
    kept = np.flatnonzero(keep)
    scores = score(cycles[kept], energy[kept])
    visit = np.argsort(scores, kind="stable")
    trail.append([scores[visit], 0])
    for at, j in enumerate(kept[visit]):
        trail[-1][1] = at
        temporal[:, d] = options[j]
        part.assign(d, j)
        if k + 1 == len(order):
            yield Leaf(temporal.copy(), sp, *promising_orders(temporal, part, hopeless_orders))
        else:
            yield from _walk(k + 1, order, temporal, part, sp, fits, score, hopeless, hopeless_orders, trail)
    trail.pop()
    temporal[:, d] = 1
    part.release(d)


def optimal_mapping(layer: Layer, accel: Accelerator, objective: Objective = "edp",
                    time_limit: float | None = None) -> MappingResult:
    """The optimum of ``objective`` over the whole encoded mapspace, or the best within ``time_limit`` seconds.

    The ES (:data:`INCUMBENT_BUDGET` evaluations) runs first and its mapping is the first incumbent; then
    :func:`bounded_tilings` and every loop order of each tiling it keeps. ``proven`` tells whether the walk
    finished; ``certified_bound`` is then the optimum, otherwise the least bound of the spatial splits not yet
    walked through (at least :func:`hwmodel.bounds.lower_bound`'s; nothing unexplored can beat it).
    ``tilings_skipped`` counts the partial tilings the bound rejected. ``ValueError`` when nothing is valid."""
    metric = get_objective(objective).family_column
    start = time.perf_counter()
    best_fit, best_map, evals = np.inf, None, 0
    try:
        es = search_mapping(layer, accel, objective, budget=INCUMBENT_BUDGET, seed=0)
        best_fit, best_map, evals = es.fitness, es.mapping, es.evaluations
    except ValueError:
        pass
    bound = TilingBound(layer, accel)
    skipped = {"tilings": 0, "orders": 0}
    frontier = Frontier()
    cut = [np.inf]  # the least score of what the walk had not ruled out when the time limit stopped it

    def out_of_time() -> bool:
        if cut[0] == np.inf and time_limit is not None and time.perf_counter() - start > time_limit:
            cut[0] = frontier.least()
        return cut[0] < np.inf

    figure = get_objective(objective).value

    def score(cycles: np.ndarray, energy: np.ndarray) -> np.ndarray:
        return np.asarray(figure(cycles, energy))

    def hopeless(what: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        def rejects(cycles: np.ndarray, energy: np.ndarray) -> np.ndarray:
            if out_of_time():
                return np.ones(len(cycles), dtype=bool)  # the walk unwinds at once (what it yielded is evaluated)
            rejected = score(cycles, energy) * (1 - BOUND_SLACK) >= best_fit
            skipped[what] += int(rejected.sum())
            return rejected
        return rejects

    fits, space = tiling_space(layer, accel, prune=True)
    hopeless_order = hopeless("orders")
    pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    n_pending = 0
    leaves = bounded_tilings(space, fits, bound, score, hopeless("tilings"), frontier, hopeless_order)
    for leaf in itertools.chain(leaves, [None]):
        if leaf is not None:
            orders = leaf.orders
            if len(orders):
                pending.append((leaf.temporal, leaf.spatial, orders))
                n_pending += len(orders)
            if n_pending < EVALUATION_BATCH:
                continue
        if pending:
            t = np.concatenate([np.broadcast_to(tt, (len(o), 3, 8)) for tt, _, o in pending])
            s = np.concatenate([np.broadcast_to(sp, (len(o), *sp.shape)) for _, sp, o in pending])
            o = np.concatenate([o for _, _, o in pending])
            pending, n_pending = [], 0
            codes, metrics, _ = evaluate_batch(layer, accel, t, s, o, parallel=False)
            evals += len(t)
            fit = np.where(codes == 0, metrics[:, metric], np.inf)
            i = int(np.argmin(fit))
            if fit[i] < best_fit:
                best_fit, best_map = float(fit[i]), Mapping(t[i], s[i], o[i])
        if out_of_time():
            break  # the orders not yet evaluated belong to the split being walked: covered by `cut`
    proven = cut[0] == np.inf
    if best_map is None:
        raise ValueError(f"no valid mapping of {layer} on {accel.name}" + ("" if proven else " within the time limit"))
    certified = best_fit if proven else max(objective_value(lower_bound(layer, accel), objective),
                                             min(best_fit, cut[0]))
    return MappingResult(best_map, evaluate(layer, accel, best_map), None, evals, "optimal", [best_fit], objective,
                         proven=proven, certified_bound=certified, tilings_skipped=skipped["tilings"],
                         orders_skipped=skipped["orders"])
