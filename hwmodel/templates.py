"""Canonical dataflow templates: ``ws``, ``os``, ``is``, ``rs`` build a valid mapping for any layer and accelerator.

A template fixes which dims each array axis unrolls (systolic arrays: ws = rows C*R*S, columns K; os = rows
P*Q, columns K; is = rows C*R*S, columns P*Q), which dims a PE iterates in L1, and an L2 loop order that keeps
the template's stationary tensor resident (its non-indexing dims innermost). Grouped/depthwise layers unroll
G where K or C would collapse to 1. Sizes are then fitted: spatial factors minimise folds, L1 factors grow
while the L1 tiles fit, and the outermost L2 loops spill to DRAM until the L2 tiles fit.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from hwmodel import nestkernel as nk
from hwmodel.accelerator import Accelerator
from hwmodel.costmodel import evaluate_batch, layer_params
from hwmodel.family import family_params
from hwmodel.precision import resolve_precision
from hwmodel.layer import DIMS, Layer
from hwmodel.mapping import NUM_DIMS, Mapping


@dataclass(frozen=True)
class Dataflow:
    rows: tuple[str, ...]
    cols: tuple[str, ...]
    l1: tuple[str, ...]
    #: L2 (and DRAM) loops innermost first.
    inner_to_outer: tuple[str, ...]


DATAFLOWS: dict[str, Dataflow] = {
    # weight stationary: weights pinned while outputs stream (NVDLA, TPU)
    "ws": Dataflow(("C", "R", "S"), ("K",), ("Q", "P"), ("Q", "P", "N", "S", "R", "C", "K", "G")),
    # output stationary: partial sums pinned while the reduction streams (ShiDianNao)
    "os": Dataflow(("P", "Q"), ("K",), ("C", "S", "R"), ("S", "R", "C", "Q", "P", "N", "K", "G")),
    # input stationary: inputs pinned while filters stream
    "is": Dataflow(("C", "R", "S"), ("P", "Q"), ("K",), ("K", "S", "R", "C", "Q", "P", "N", "G")),
    # row stationary (Eyeriss): filter rows on one axis, output rows on the other, 1-D convolutions in a PE
    "rs": Dataflow(("R", "C"), ("P", "K"), ("S", "Q"), ("N", "Q", "P", "S", "C", "K", "R", "G")),
}


def no_waste_values(rem: int, limit: int) -> list[int]:
    """Factors ``v <= limit`` worth trying for a dim of ``rem`` iterations: the distinct ``ceil(rem / j)``, j >= 1.

    ``ceil(rem / j) = floor((rem - 1) / j) + 1`` takes O(sqrt(rem)) distinct values; they are enumerated block by
    block (j jumps to the last j with the same quotient), starting at the first j whose value is ``<= limit``:
    O(min(limit, sqrt(rem))) steps, never one per unit of ``rem``. Memoised (the lower bound's unroll walk asks
    for the same few dims tens of thousands of times) up to :data:`_MEMO_REM`; each call returns a new list."""
    rem, limit = int(rem), int(limit)
    if rem <= _MEMO_REM:
        return list(_no_waste_memo(rem, limit))
    return list(_no_waste_values(rem, limit))


#: Largest ``rem`` whose values are memoised (at most ~2 sqrt(rem) = 512 of them per entry).
_MEMO_REM = 2**16


def _no_waste_values(rem: int, limit: int) -> tuple[int, ...]:
    vals = {1}
    n = rem - 1
    if n <= 0 or limit < 1:
        return (1,)
    j = n // limit + 1 if limit > 1 else n + 1  # the first j with floor(n / j) + 1 <= limit
    while j <= n:
        q = n // j
        vals.add(q + 1)
        j = n // q + 1
    return tuple(sorted(v for v in vals if v <= limit))


_no_waste_memo = functools.lru_cache(maxsize=1024)(_no_waste_values)


#: Most partial combinations :func:`_choose_axis` visits exactly; beyond, each dim's options are thinned.
_AXIS_VISITS = 200_000


def _thin(values: list[int], keep: int) -> list[int]:
    """At most ``keep`` of the sorted ``values``, log-spaced, always with the smallest and the largest."""
    if len(values) <= keep:
        return values
    idx = {round(i * (len(values) - 1) / (keep - 1)) for i in range(keep)} if keep > 1 else {len(values) - 1}
    return [values[i] for i in sorted(idx)]


def _substitute_groups(dims: tuple[str, ...], layer: Layer) -> tuple[str, ...]:
    out = []
    for d in dims:
        if layer.G > 1 and ((d == "K" and layer.K == 1) or (d == "C" and layer.C == 1)):
            d = "G"
        if d not in out:
            out.append(d)
    return tuple(out)


def _choose_axis(dims: list[int], rem: np.ndarray, size: int) -> dict[int, int]:
    """Unroll factors for ``dims`` on an axis of ``size``: fewest folds, then most PEs used.

    A depth-first walk over the no-waste values (ascending, pruned once the product exceeds ``size``), in the
    order of ``itertools.product`` so ties keep the first combination; when a walk would visit more than
    :data:`_AXIS_VISITS` partial combinations (huge dims on a huge axis), each dim's values are thinned first."""
    dims = [d for d in dims if rem[d] > 1]
    if not dims or size == 1:
        return {}
    options = [no_waste_values(int(rem[d]), size) for d in dims]
    rems = [int(rem[d]) for d in dims]
    best_f = _walk_axis(options, rems, size, _AXIS_VISITS)
    if best_f is None:
        keep = max(2, int(_AXIS_VISITS ** (1 / len(options)) / 2))
        best_f = _walk_axis([_thin(o, keep) for o in options], rems, size, None)
        assert best_f is not None
    return {d: f for d, f in zip(dims, best_f) if f > 1}


def _walk_axis(options: list[list[int]], rems: list[int], size: int, budget: int | None) -> tuple[int, ...] | None:
    """The best combination (see :func:`_choose_axis`), or ``None`` when more than ``budget`` nodes are needed."""
    best_key: tuple[int, int] | None = None
    best: tuple[int, ...] = ()
    visits = 0
    k = len(options)
    stack: list[tuple[int, int, int, tuple[int, ...]]] = [(0, 1, 1, ())]  # (dim index, product, folds, combo)
    while stack:
        i, prod, folds, combo = stack.pop()
        if i == k:
            key = (folds, -prod)
            if best_key is None or key < best_key:
                best_key, best = key, combo
            continue
        children = []
        for v in options[i]:  # ascending
            if prod * v > size:
                break
            children.append((i + 1, prod * v, folds * -(-rems[i] // v), (*combo, v)))
        visits += len(children)
        if budget is not None and visits > budget:
            return None
        stack.extend(reversed(children))  # first value on top: the walk keeps product order
    return best


def template_mapping(layer: Layer, accel: Accelerator, dataflow: str) -> Mapping:
    """The canonical ``dataflow`` mapping of ``layer`` on ``accel`` (raises ``ValueError`` if none fits)."""
    if dataflow not in DATAFLOWS:
        raise ValueError(f"unknown dataflow {dataflow!r}; choose one of {', '.join(DATAFLOWS)}")
    flow = DATAFLOWS[dataflow]
    dims = layer.dim_array
    rem = dims.copy()
    spatial = np.ones((3, NUM_DIMS), dtype=np.int64)
    n_axes = len(accel.array)
    prefs: list[tuple[str, ...]] = [flow.rows, flow.cols, ()]
    if n_axes == 1:
        prefs = [flow.rows + flow.cols]
    for a in range(n_axes):
        allowed = accel.connectivity[a]
        wanted = [d for d in _substitute_groups(prefs[a], layer) if d in allowed]
        if not wanted:  # the accelerator cannot do this dataflow on this axis: use what it can unroll
            wanted = list(allowed)
        chosen = _choose_axis([DIMS.index(d) for d in wanted], rem, accel.array[a])
        for d, f in chosen.items():
            spatial[a, d] = f
            rem[d] = -(-rem[d] // f)

    temporal = np.ones((3, NUM_DIMS), dtype=np.int64)
    lp = layer_params(layer)
    fp = family_params(accel, resolve_precision(layer, accel))

    def l1_fits() -> bool:
        return bool(nk.family_fits(lp, temporal, spatial, 0, fp.n_levels, fp.arch_int, fp.arch_float))

    if not l1_fits():
        raise ValueError(
            f"accelerator {accel.name}: L1 ({accel.l1_words} entries) cannot hold even one weight, input and "
            "partial sum (twice when double-buffered): raise l1_words / l1_partition"
        )
    if not accel.systolic:
        for name in _substitute_groups(flow.l1, layer):
            d = DIMS.index(name)
            values = no_waste_values(int(rem[d]), int(rem[d]))
            if len(values) <= 64:
                for v in reversed(values):
                    temporal[2, d] = v
                    if l1_fits():
                        break
            else:  # tiles grow with the factor: bisect for the largest value that fits (values[0] == 1 fits)
                lo, hi = 0, len(values) - 1
                while lo < hi:
                    mid = (lo + hi + 1) // 2
                    temporal[2, d] = values[mid]
                    if l1_fits():
                        lo = mid
                    else:
                        hi = mid - 1
                temporal[2, d] = values[lo]
            rem[d] = -(-rem[d] // temporal[2, d])

    temporal[1] = rem
    inner = [DIMS.index(d) for d in flow.inner_to_outer]
    order_l2 = np.array(list(reversed(inner)), dtype=np.int64)
    order_l1 = np.array([DIMS.index(d) for d in reversed(flow.l1)] + [d for d in range(NUM_DIMS) if DIMS[d] not in flow.l1], dtype=np.int64)
    order = np.stack([order_l2, order_l2, order_l1])

    # spill the outermost L2 loops to DRAM until the L2 tiles fit
    while True:
        codes, _, _ = evaluate_batch(layer, accel, temporal[None], spatial[None], order[None], parallel=False)
        if codes[0] != 4:
            break
        for d in order_l2:
            if temporal[1, d] > 1:
                p = _smallest_prime_factor(int(temporal[1, d]))
                temporal[1, d] = -(-temporal[1, d] // p)
                temporal[0, d] *= p
                break
        else:
            raise ValueError(
                f"accelerator {accel.name}: L2 ({accel.l2_bytes} bytes) cannot hold the array's tiles of layer "
                f"{layer.name or layer}: raise l2_bytes"
            )
    return Mapping(temporal=temporal, spatial=spatial, order=order)


def _smallest_prime_factor(n: int) -> int:
    for p in range(2, int(math.isqrt(n)) + 1):
        if n % p == 0:
            return p
    return n
