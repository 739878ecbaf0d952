"""Mapping search for a fixed accelerator: NAAS's importance encoding under an evolution strategy.

Genome (floats in [0, 1], :data:`NUM_GENES` of them):

* ``[0:24)`` spatial: per array axis and dim, how much of the dim that axis unrolls (axes hand out their PEs
  to the dims they may unroll in decreasing gene order);
* ``[24:32)`` / ``[32:40)`` L1 / L2 tiling: the fraction (on a log scale) of what is left of each dim that the
  level iterates; DRAM takes the rest. Only "no-waste" factors ``ceil(r / j)`` are produced;
* ``[40:48)`` / ``[48:56)`` DRAM / L2 loop order: one importance per dim, sorted (most important outermost).

Decoding and evaluation of a whole population run in one numba call.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from hwmodel import nestkernel as nk
from hwmodel.accelerator import Accelerator
from hwmodel.costmodel import PARALLEL_MIN_BATCH, Cost, evaluate, layer_params
from hwmodel.family import L2_LEVEL, family_params
from hwmodel.jit import AotSignature, njit, prange
from hwmodel.layer import Layer
from hwmodel.mapping import Mapping
from hwmodel.objectives import FAMILY_COLUMNS, Objective, get_objective
from hwmodel.precision import resolve_precision
from hwmodel.report import best_template, objective_value
from hwmodel.templates import no_waste_values
from hwmodel.tiling_bound import DRAM_ROW, L1_ROW, L2_ROW, Option

NUM_GENES = 56
#: Independent ES runs sharing a search's budget (at least 4 generations each); each run's best is polished.
ES_RUNS = 3
#: Objective name -> column of ``hwmodel.costmodel.METRICS`` it minimises (from :mod:`hwmodel.objectives`).
OBJECTIVES = FAMILY_COLUMNS


@njit(cache=True, inline="always")
def _chunk(r, g):
    """A no-waste factor of ``r`` chosen by ``g`` in [0, 1]: ``ceil(r / j)`` with ``j = round(r ** (1 - g))``."""
    if r <= 1:
        return 1
    j = int(np.floor(r ** (1.0 - g) + 0.5))
    if j < 1:
        j = 1
    return (r + j - 1) // j


@njit(cache=True)
def _decode(genes, lp, n_levels, ai, af, conn_all, temporal, spatial, order):
    """Write the mapping encoded by ``genes`` into ``temporal``, ``spatial``, ``order``."""
    n_axes = ai[L2_LEVEL, nk.AI_N_AXES]
    arr = ai[L2_LEVEL, nk.AI_AXIS0:nk.AI_AXIS0 + nk.MAX_AXES]
    conn = conn_all[L2_LEVEL]
    rem = np.empty(8, dtype=np.int64)
    for d in range(8):
        rem[d] = lp[d]
    for a in range(3):
        for d in range(8):
            spatial[a, d] = 1
    idx = np.empty(8, dtype=np.int64)
    for a in range(n_axes):
        room = arr[a]
        # dims this axis may unroll, by decreasing gene
        n = 0
        for d in range(8):
            if conn[a, d]:
                idx[n] = d
                n += 1
        for i in range(1, n):
            j = i
            while j > 0 and genes[a * 8 + idx[j]] > genes[a * 8 + idx[j - 1]]:
                t = idx[j]
                idx[j] = idx[j - 1]
                idx[j - 1] = t
                j -= 1
        for i in range(n):
            d = idx[i]
            if room <= 1:
                break
            f = _chunk(rem[d], genes[a * 8 + d])
            if f > room:
                f = room
            spatial[a, d] = f
            rem[d] = (rem[d] + f - 1) // f
            room //= f
    # L1 then L2 tiling: dims in decreasing gene order take the factor their gene asks for, shrunk (through
    # no-waste values) until the level's tiles fit, so nearly every genome decodes to a valid mapping.
    for lvl in range(2):
        gbase = 24 + 8 * lvl
        row = 2 - lvl  # temporal row: L1 = 2, L2 = 1
        for d in range(8):
            temporal[row, d] = 1
        for d in range(8):
            idx[d] = d
        for i in range(1, 8):
            j = i
            while j > 0 and genes[gbase + idx[j]] > genes[gbase + idx[j - 1]]:
                t = idx[j]
                idx[j] = idx[j - 1]
                idx[j - 1] = t
                j -= 1
        for i in range(8):
            d = idx[i]
            r = rem[d]
            f = _chunk(r, genes[gbase + d])
            while True:
                temporal[row, d] = f
                if f == 1 or nk.family_fits(lp, temporal, spatial, lvl, n_levels, ai, af):
                    break
                j = (r + f - 1) // f  # next smaller no-waste factor ceil(r / j)
                nf = f
                while nf >= f:
                    j += 1
                    nf = (r + j - 1) // j
                f = nf
            rem[d] = (r + f - 1) // f
    for d in range(8):
        temporal[0, d] = rem[d]
    for lvl in range(2):
        base = 40 + 8 * lvl
        for d in range(8):
            order[lvl, d] = d
        for i in range(1, 8):  # most important outermost
            j = i
            while j > 0 and genes[base + order[lvl, j]] > genes[base + order[lvl, j - 1]]:
                t = order[lvl, j]
                order[lvl, j] = order[lvl, j - 1]
                order[lvl, j - 1] = t
                j -= 1
    for d in range(8):
        order[2, d] = d


@njit(cache=True)
def _decode_evaluate_range(genes, lp, n_levels, ai, af, conn, e_mac, metric, fit, temporal, spatial, order, lo, hi):
    tf, sfa, od, kp, nmet, ncnt, loops, roles, idx, gsum, ext, cover = nk.family_scratch()
    ws = nk.workspace()
    metrics = np.empty(len(nk.FAMILY_METRICS))
    counts = np.empty((nk.NUM_TENSORS, len(nk.FAMILY_ACCESS)))
    for i in range(lo, hi):
        _decode(genes[i], lp, n_levels, ai, af, conn, temporal[i], spatial[i], order[i])
        code = nk.family_evaluate_one(lp, temporal[i], spatial[i], order[i], n_levels, ai, af, conn, e_mac,
                                      metrics, counts, tf, sfa, od, kp, nmet, ncnt, loops, roles, idx, gsum,
                                      ext, cover, ws)
        fit[i] = metrics[metric] if code == 0 else np.inf


@njit(cache=True, parallel=True)
def _decode_evaluate_parallel(genes, lp, n_levels, ai, af, conn, e_mac, metric, fit, temporal, spatial, order):
    n = genes.shape[0]
    chunk = 256
    for c in prange((n + chunk - 1) // chunk):
        _decode_evaluate_range(genes, lp, n_levels, ai, af, conn, e_mac, metric, fit, temporal, spatial, order,
                               c * chunk, min(n, (c + 1) * chunk))


#: Arguments of :func:`_decode_evaluate` (``genes``, ``lp``, ``n_levels``, ``ai``, ``af``, ``conn``, ``e_mac``,
#: ``metric``) and its result ``(fitness, temporal, spatial, order)``.
DECODE_EVALUATE_SIGNATURE = AotSignature(
    "Tuple((float64[::1], int64[:, :, ::1], int64[:, :, ::1], int64[:, :, ::1]))",
    ("float64[:, ::1]", "int64[::1]", "int64", "int64[:, ::1]", "float64[:, ::1]", "int64[:, :, ::1]", "float64",
     "int64"))


@njit(cache=True, inline="always")
def _decode_outputs(n):
    return (np.full(n, np.inf), np.empty((n, 3, 8), dtype=np.int64), np.empty((n, 3, 8), dtype=np.int64),
            np.empty((n, 3, 8), dtype=np.int64))


@njit(cache=True, aot=DECODE_EVALUATE_SIGNATURE)
def _decode_evaluate(genes, lp, n_levels, ai, af, conn, e_mac, metric):
    """Decode and evaluate a population on one thread; returns (fitness (inf if invalid), temporal, spatial,
    order)."""
    fit, temporal, spatial, order = _decode_outputs(genes.shape[0])
    _decode_evaluate_range(genes, lp, n_levels, ai, af, conn, e_mac, metric, fit, temporal, spatial, order, 0,
                           genes.shape[0])
    return fit, temporal, spatial, order


@njit(cache=True)
def _decode_evaluate_threads(genes, lp, n_levels, ai, af, conn, e_mac, metric):
    """:func:`_decode_evaluate` on numba's threads. The outputs are allocated here, outside the ``parallel=True``
    function, which would run even its array initialisations as parallel loops (one OpenMP region each)."""
    fit, temporal, spatial, order = _decode_outputs(genes.shape[0])
    _decode_evaluate_parallel(genes, lp, n_levels, ai, af, conn, e_mac, metric, fit, temporal, spatial, order)
    return fit, temporal, spatial, order


class MappingProblem:
    """One (layer, accelerator, objective): decodes and scores genomes in batches."""

    def __init__(self, layer: Layer, accel: Accelerator, objective: Objective = "edp") -> None:
        self._metric = get_objective(objective).family_column
        self.layer, self.accel, self.objective = layer, accel, objective
        self._lp = layer_params(layer)
        self._fp = family_params(accel, resolve_precision(layer, accel))

    def score(self, genes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        genes = np.ascontiguousarray(genes, dtype=np.float64)
        fp = self._fp
        kernel = _decode_evaluate_threads if len(genes) >= PARALLEL_MIN_BATCH else _decode_evaluate
        return kernel(genes, self._lp, fp.n_levels, fp.arch_int, fp.arch_float, fp.conn, fp.e_mac, self._metric)

    def decode(self, genes: np.ndarray) -> Mapping:
        _, t, s, o = self.score(genes[None])
        return Mapping(t[0], s[0], o[0])


@dataclass
class MappingResult:
    """Best mapping found, its cost (re-evaluated through :func:`hwmodel.evaluate`), and the search trace."""

    mapping: Mapping
    cost: Cost
    genes: np.ndarray | None
    evaluations: int
    source: str
    history: list[float] = field(default_factory=list)
    objective: str = "edp"
    #: ``method="optimal"``: whether the whole space was searched (the result is then the optimum) and a
    #: certified lower bound on the objective of any mapping (the optimum itself when proven).
    proven: bool | None = None
    certified_bound: float | None = None
    #: ``method="optimal"``: partial tilings the bound ruled out (none of their completions evaluated).
    tilings_skipped: int | None = None
    #: ``method="optimal"``: loop orders of evaluated tilings the bound ruled out by their innermost loops.
    orders_skipped: int | None = None

    @property
    def fitness(self) -> float:
        return objective_value(self.cost, self.objective)

    @property
    def gap(self) -> float | None:
        """Fitness over the certified bound (1.0 when proven optimal)."""
        return None if self.certified_bound is None else self.fitness / self.certified_bound


def _evolve(consider: Callable[[np.ndarray], np.ndarray], rng: np.random.Generator, budget: int,
            population: int, warm_start: np.ndarray | None) -> None:
    """One (mu, lambda) ES run with elitism, Gaussian mutation and uniform crossover over genomes, of ``budget``
    evaluations through ``consider`` (genomes -> fitness)."""
    lam = max(4, min(population, budget))
    mu = max(2, lam // 4)
    pop = rng.random((lam, NUM_GENES))
    if warm_start is not None and len(warm_start):
        ws = np.asarray(warm_start, dtype=np.float64).reshape(-1, NUM_GENES)[:lam]
        pop[: len(ws)] = ws
    fit = consider(pop)
    used = lam
    sigma = 0.25
    while used < budget:
        ranked = np.argsort(fit, kind="stable")
        parents = pop[ranked[:mu]]
        n = min(lam, budget - used)
        pick = rng.integers(0, mu, size=n)
        children = parents[pick].copy()
        cross = rng.random(n) < 0.3
        if cross.any():
            mates = parents[rng.integers(0, mu, size=int(cross.sum()))]
            mask = rng.random((int(cross.sum()), NUM_GENES)) < 0.5
            children[cross] = np.where(mask, children[cross], mates)
        children += rng.normal(0.0, sigma, children.shape) * (rng.random(children.shape) < 0.3)
        np.clip(children, 0.0, 1.0, out=children)
        child_fit = consider(children)
        used += n
        # elitist: the next generation is the best lam of parents and children
        pool = np.vstack([parents, children])
        pool_fit = np.concatenate([fit[ranked[:mu]], child_fit])
        keep = np.argsort(pool_fit, kind="stable")[:lam]
        pop, fit = pool[keep], pool_fit[keep]
        sigma = max(0.02, sigma * 0.97)


def search_mapping(
    layer: Layer,
    accel: Accelerator,
    objective: Objective = "edp",
    budget: int = 2000,
    seed: int = 0,
    method: Literal["es", "random", "exhaustive", "optimal"] = "es",
    population: int = 64,
    warm_start: np.ndarray | None = None,
    include_templates: bool = True,
    polish_budget: int | None = None,
    time_limit: float | None = None,
    runs: int = ES_RUNS,
) -> MappingResult:
    """Search a mapping of ``layer`` on ``accel`` minimising ``objective`` within ``budget`` evaluations.

    ``method="es"``: ``runs`` (default :data:`ES_RUNS`; fewer when ``budget`` allows less than 4 generations
    each) independent runs of a (mu, lambda) evolution strategy with elitism, Gaussian mutation and uniform
    crossover over the genome above (:func:`_evolve`), sharing ``budget``;
    ``"random"``: uniform genomes; ``"exhaustive"``: every mapping of the space
    (small layers only, ``budget`` ignored); ``"optimal"``: :func:`hwmodel.exact_mapper.optimal_mapping` (the
    whole space, pruned by capacity and bounds; with ``time_limit`` seconds the best so far and a certified
    bound). The best mapping of each run is then polished by local search (:func:`polish_mapping`, best run
    first, ``polish_budget`` evaluations in all, default ``budget // 2``). ``warm_start``: genomes seeding the
    first run's first generation (e.g. the parent accelerator's best mappings). The canonical templates are
    evaluated too unless ``include_templates=False``, so the result is never worse than the best template.
    Deterministic for a given seed. Raises ``ValueError`` when no valid mapping is found.
    """
    if budget < 1:
        raise ValueError(f"search budget must be >= 1 evaluation, got {budget}")
    problem = MappingProblem(layer, accel, objective)
    if method in ("exhaustive", "optimal"):
        from hwmodel.exact_mapper import optimal_mapping

        return optimal_mapping(layer, accel, objective, time_limit=None if method == "exhaustive" else time_limit)
    if polish_budget is None:
        polish_budget = budget // 2
    rng = np.random.default_rng(seed)
    best_fit, best_genes, best_map = np.inf, None, None
    history: list[float] = []
    evals = 0
    run_best: list[tuple[float, Mapping | None]] = [(np.inf, None)]  # per run: its best fitness and mapping

    def consider(genes: np.ndarray) -> np.ndarray:
        nonlocal best_fit, best_genes, best_map, evals
        fit, t, s, o = problem.score(genes)
        evals += len(genes)
        i = int(np.argmin(fit))
        if fit[i] < best_fit:
            best_fit, best_genes, best_map = float(fit[i]), genes[i].copy(), Mapping(t[i], s[i], o[i])
        if fit[i] < run_best[-1][0]:
            run_best[-1] = (float(fit[i]), Mapping(t[i], s[i], o[i]))
        history.append(best_fit)
        return fit

    if method == "random":
        while evals < budget:
            consider(rng.random((min(population, budget - evals), NUM_GENES)))
    elif method == "es":
        if runs < 1:
            raise ValueError(f"ES runs must be >= 1, got {runs}")
        runs = max(1, min(runs, budget // (4 * population)))
        for run in range(runs):
            if run:
                run_best.append((np.inf, None))
            _evolve(consider, rng, budget * (run + 1) // runs - evals, population,
                    warm_start if run == 0 else None)
    else:
        raise ValueError(f"unknown search method {method!r}; choose es, random or exhaustive")

    source = method
    # local search from each run's best: runs settle in different basins (spatial splits above all), and one
    # move rarely leaves a basin (a split's temporal factors must move with it)
    for _, start in sorted((entry for entry in run_best if entry[1] is not None), key=lambda entry: entry[0]):
        if evals >= budget + polish_budget:
            break
        polished, fit_polished, used = polish_mapping(layer, accel, start, objective, budget + polish_budget - evals)
        evals += used
        if fit_polished < best_fit:
            best_map, best_fit = polished, fit_polished
        history.append(best_fit)
    result_map = best_map
    if include_templates:
        try:
            tpl = best_template(layer, accel, objective=objective)
        except ValueError:
            tpl = None
        if tpl is not None and objective_value(tpl[2], objective) < best_fit:
            source, result_map, best_genes = f"template:{tpl[0]}", tpl[1], None
    if result_map is None:
        raise ValueError(
            f"no valid mapping of layer {layer.name or layer} on accelerator {accel.name} was found "
            f"in {evals} evaluations: buffers may be too small for this layer (raise l1_words / l2_bytes)"
        )
    cost = evaluate(layer, accel, result_map)
    return MappingResult(result_map, cost, best_genes, evals, source, history, objective)


# --- local search ------------------------------------------------------------------------------------------

_PRIMES = (2, 3, 5, 7)


def _neighbours(layer: Layer, accel: Accelerator, m: Mapping) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mappings one move away: a prime factor moved between two places (L1, spatial axes, L2, DRAM) of a dim,
    a whole factor moved, PEs of an axis handed from one dim to another (the receiving dim's factor taken from
    DRAM, L2 or L1), or two loops of the DRAM / L2 order swapped. DRAM factors are re-minimised, so a factor moved
    to DRAM is one divided out of its place."""
    dims = layer.dim_array
    conn = accel.connectivity_mask()
    n_axes = len(accel.array)
    ts, ss, os_ = [], [], []

    def emit(t: np.ndarray, s: np.ndarray, o: np.ndarray) -> None:
        ts.append(t)
        ss.append(s)
        os_.append(o)

    # places a factor can live: ("t", level) temporal (L2 = 1, L1 = 2) or ("s", axis)
    places = [("t", 1), ("t", 2)] + [("s", a) for a in range(n_axes)]
    for d in range(8):
        if dims[d] == 1:
            continue
        for src in places + [("t", 0)]:
            for dst in places + [("t", 0)]:
                if src == dst or (dst[0] == "s" and not conn[dst[1], d]):
                    continue
                sv = m.temporal[src[1], d] if src[0] == "t" else m.spatial[src[1], d]
                if sv == 1 and src != ("t", 0):
                    continue
                for p in _PRIMES + (int(sv),):
                    if p < 2 or (src != ("t", 0) and p > sv):
                        continue
                    t, s = m.temporal.copy(), m.spatial.copy()
                    if src[0] == "t":
                        t[src[1], d] = -(-t[src[1], d] // p)
                    else:
                        s[src[1], d] = -(-s[src[1], d] // p)
                    if dst[0] == "t":
                        t[dst[1], d] *= p
                    else:
                        s[dst[1], d] *= p
                        if s[dst[1]].prod() > accel.array[dst[1]]:
                            continue
                    emit(t, s, m.order.copy())
    for a in range(n_axes):  # hand PEs of an axis from one dim to another
        for d1 in range(8):
            if m.spatial[a, d1] == 1:
                continue
            for d2 in range(8):
                if d2 == d1 or not conn[a, d2] or dims[d2] == 1:
                    continue
                for p in _PRIMES:
                    if p > m.spatial[a, d1]:
                        break
                    for level in (DRAM_ROW, L2_ROW, L1_ROW):
                        if level != DRAM_ROW and m.temporal[level, d2] < p:
                            continue
                        t, s = m.temporal.copy(), m.spatial.copy()
                        s[a, d1] = -(-s[a, d1] // p)
                        t[1, d1] *= p
                        s[a, d2] *= p
                        t[level, d2] = -(-t[level, d2] // p)
                        if s[a].prod() <= accel.array[a]:
                            emit(t, s, m.order.copy())
    for lvl in range(2):
        for i in range(8):
            for j in range(i + 1, 8):
                o = m.order.copy()
                o[lvl, i], o[lvl, j] = o[lvl, j], o[lvl, i]
                emit(m.temporal.copy(), m.spatial.copy(), o)
    t, s = np.stack(ts), np.stack(ss)
    sp = s.prod(axis=1)  # drop the padding a move made superfluous, then re-minimise DRAM
    t[:, 2] = np.minimum(t[:, 2], np.maximum(1, -(-dims // sp)))
    t[:, 1] = np.minimum(t[:, 1], np.maximum(1, -(-dims // (sp * t[:, 2]))))
    t[:, 0] = np.maximum(1, -(-dims // (sp * t[:, 2] * t[:, 1])))
    return t, s, np.stack(os_)


def polish_mapping(
    layer: Layer, accel: Accelerator, mapping: Mapping, objective: Objective = "edp", budget: int = 1000
) -> tuple[Mapping, float, int]:
    """Steepest-descent local search from ``mapping`` over :func:`_neighbours`; returns (mapping, fitness,
    evaluations used). Stops at a local optimum or when ``budget`` evaluations are spent."""
    from hwmodel.costmodel import evaluate_batch

    metric = get_objective(objective).family_column
    codes, metrics, _ = evaluate_batch(layer, accel, mapping.temporal[None], mapping.spatial[None],
                                       mapping.order[None], parallel=False)
    best = float(metrics[0, metric]) if codes[0] == 0 else np.inf
    used = 1
    while used < budget:
        t, s, o = _neighbours(layer, accel, mapping)
        n = min(len(t), budget - used)
        codes, metrics, _ = evaluate_batch(layer, accel, t[:n], s[:n], o[:n])
        used += n
        fit = np.where(codes == 0, metrics[:, metric], np.inf)
        i = int(np.argmin(fit))
        if not fit[i] < best * (1 - 1e-12):
            break
        best, mapping = float(fit[i]), Mapping(t[i], s[i], o[i])
    return mapping, best, used


# --- exhaustive search (reference for small layers) --------------------------------------------------------


def _axis_splits(rem: list[int], allowed: list[int], size: int) -> list[dict[int, int]]:
    """All assignments of no-waste unroll factors to ``allowed`` dims with product <= size."""
    out: list[dict[int, int]] = []

    def rec(i: int, room: int, cur: dict[int, int]) -> None:
        if i == len(allowed):
            out.append(dict(cur))
            return
        d = allowed[i]
        for f in no_waste_values(rem[d], rem[d]):
            if f <= room:
                cur[d] = f
                rec(i + 1, room // f, cur)
        cur.pop(d, None)

    rec(0, size, {})
    return out


@functools.lru_cache(maxsize=256)
def _order_rows(active: tuple[int, ...]) -> np.ndarray:
    """Loop orders that differ in cost, one per row: permutations of the dims with a factor > 1, the rest appended."""
    rest = [d for d in range(8) if d not in active]
    return np.array([list(p) + rest for p in itertools.permutations(active)], dtype=np.int64).reshape(-1, 8)


#: Per spatial option, the per-dim (DRAM, L2, L1) temporal factor options: ``(spatial, options[d])``.
TilingSpace = list[tuple[np.ndarray, list[list[Option]]]]


@functools.lru_cache(maxsize=4096)
def _triples(rem: int) -> np.ndarray:
    """Every no-waste (DRAM, L2, L1) split of a dim of ``rem`` iterations, one per row."""
    out = []
    for f1 in no_waste_values(rem, rem):
        r2 = -(-rem // f1)
        out += [(-(-r2 // f2), f2, f1) for f2 in no_waste_values(r2, r2)]
    return np.array(out, dtype=np.int64).reshape(-1, 3)


class TilingFit:
    """Whether the L1 and L2 tiles of a tiling of ``layer`` on ``accel`` fit: ``fit(temporal, spatial)``, and for
    every option of one dim at once, ``fit.options(temporal, spatial, d, options)`` (a boolean array)."""

    def __init__(self, layer: Layer, accel: Accelerator) -> None:
        self.lp = layer_params(layer)
        self.fp = family_params(accel, resolve_precision(layer, accel))

    def __call__(self, temporal: np.ndarray, spatial: np.ndarray) -> bool:
        return all(nk.family_fits(self.lp, temporal, spatial, lvl, self.fp.n_levels, self.fp.arch_int,
                                  self.fp.arch_float) for lvl in (0, 1))

    def options(self, temporal: np.ndarray, spatial: np.ndarray, d: int, options: np.ndarray) -> np.ndarray:
        out = np.empty(len(options), dtype=np.bool_)
        nk.options_fit(self.lp, temporal, spatial, d, options, self.fp.n_levels, self.fp.arch_int,
                       self.fp.arch_float, out)
        return out


def tiling_space(layer: Layer, accel: Accelerator, prune: bool = False) -> tuple[TilingFit, TilingSpace]:
    """The encoded space as ``fits`` (:class:`TilingFit`) and, per spatial split of the array's axes, each dim's
    no-waste (DRAM, L2, L1) factor triples. ``prune``: drop spatial splits and per-dim triples whose L1 or L2 tiles
    overflow with every other factor at 1 (safe: tiles only grow with a factor)."""
    dims = layer.dim_array.tolist()
    fits = TilingFit(layer, accel)
    axis_choices = []
    for a, size in enumerate(accel.array):
        allowed = [i for i, d in enumerate(("N", "G", "K", "C", "P", "Q", "R", "S")) if d in accel.connectivity[a]]
        axis_choices.append((a, allowed, size))
    spatial_options: list[np.ndarray] = []

    def rec_axes(k: int, rem: list[int], sp: np.ndarray) -> None:
        if k == len(axis_choices):
            spatial_options.append(sp.copy())
            return
        a, allowed, size = axis_choices[k]
        for split in _axis_splits(rem, allowed, size):
            nrem = rem.copy()
            sp2 = sp.copy()
            for d, f in split.items():
                sp2[a, d] = f
                nrem[d] = -(-nrem[d] // f)
            rec_axes(k + 1, nrem, sp2)

    rec_axes(0, dims, np.ones((3, 8), dtype=np.int64))
    space: TilingSpace = []
    ones = np.ones((3, 8), dtype=np.int64)
    for sp in spatial_options:
        rem = [-(-dims[d] // int(sp[:, d].prod())) for d in range(8)]
        if prune and not fits(ones, sp):
            continue
        per_dim = []
        for d in range(8):
            opts = _triples(rem[d])
            if prune:
                opts = opts[fits.options(ones, sp, d, opts)]
            per_dim.append([tuple(o) for o in opts.tolist()])
        space.append((sp, per_dim))
    return fits, space


def tiling_orders(temporal: np.ndarray) -> np.ndarray:
    """Every loop order of a tiling that differs in cost, ``(n, 3, 8)`` (rows DRAM, L2, L1): each permutation of
    the DRAM loops > 1 with each of the L2 loops > 1 (the rest follow in dim order; the L1 order changes no count).
    Read-only: tilings with the same loops > 1 share it."""
    return _orders_of(*(tuple(d for d in range(8) if temporal[row, d] > 1) for row in (DRAM_ROW, L2_ROW)))


@functools.lru_cache(maxsize=64)
def _orders_of(dram: tuple[int, ...], l2: tuple[int, ...]) -> np.ndarray:
    od, o2 = _order_rows(dram), _order_rows(l2)
    orders = np.empty((len(od) * len(o2), 3, 8), dtype=np.int64)
    orders[:, 0] = np.repeat(od, len(o2), axis=0)
    orders[:, 1] = np.tile(o2, (len(od), 1))
    orders[:, 2] = np.arange(8)
    orders.flags.writeable = False
    return orders


def enumerate_mappings(layer: Layer, accel: Accelerator, limit: int | None = 5_000_000, prune: bool = False,
                       batch: int = 65536):
    """Yield ``(temporal, spatial, order)`` batches covering the whole search space of small layers.

    ``prune``: skip factor splits whose L1 or L2 tiles overflow before their loop orders are enumerated (safe:
    every order of them is invalid; tiles only grow with a factor, so a dim's factors are filtered alone
    first, then each full split is checked). ``limit=None``: no size limit."""
    fits, space = tiling_space(layer, accel, prune)
    tilings = ((np.array(split, dtype=np.int64).T, sp) for sp, per_dim in space
               for split in itertools.product(*per_dim))
    if prune:
        tilings = ((temporal, sp) for temporal, sp in tilings if fits(temporal, sp))
    batch_t, batch_s, batch_o = [], [], []
    total = pending = 0
    for temporal, sp in tilings:
        orders = tiling_orders(temporal)
        n = len(orders)
        total += n
        if limit is not None and total > limit:
            raise ValueError(f"exhaustive search space of {layer} exceeds {limit} mappings; use method='es'")
        batch_t.append(np.broadcast_to(temporal, (n, 3, 8)))
        batch_s.append(np.broadcast_to(sp, (n, *sp.shape)))
        batch_o.append(orders)
        pending += n
        if pending >= batch:
            yield np.concatenate(batch_t), np.concatenate(batch_s), np.concatenate(batch_o)
            batch_t, batch_s, batch_o = [], [], []
            pending = 0
    if batch_t:
        yield np.concatenate(batch_t), np.concatenate(batch_s), np.concatenate(batch_o)
