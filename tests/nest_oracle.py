"""A brute-force oracle for the storage-hierarchy cost model (:func:`hwmodel.nestmodel.evaluate_nest_mapping`).

Independent of ``hwmodel.nestkernel``: it imports only the public input types, and literally enumerates every
point of the loop nest (``itertools.product`` over all loop indices, outermost first), then derives:

* tiles: for level ``l`` and fixed indices of all loops above ``l``, the bounding box (axis-aligned
  hyper-rectangle, per data dim ``[min, max+1)``) of the valid operations of the loops at/below ``l``,
  projected to the tensor's data space (inputs via ``h = p*sh + r*dh``, ``w = q*sw + s*dw``);
* fills: per instance (assignment of the spatial loops above the level), the walk over time (the temporal
  loops above it, lexicographic) with Timeloop's delta rule and its gradient reset;
* served counts (reads of weights/inputs, updates of outputs): the deltas of the next inner level keeping the
  tensor (or the operations themselves, at the innermost keeping level), deduplicated hierarchically over
  the fanouts in between (siblings whose subtree tiles are identical count once);
* output partitions: distinct valid output points per instance, and ``reads = updates - partition``.

Use it on small layers only (every loop point is materialised).
"""

from __future__ import annotations

import collections
import itertools
import math
from dataclasses import dataclass

import numpy as np

from hwmodel.hierarchy import Hierarchy
from hwmodel.layer import DIMS, Layer
from hwmodel.nestmodel import NestMapping

TENSOR_NAMES = ("weights", "inputs", "outputs")
_D = {d: i for i, d in enumerate(DIMS)}

Box = tuple[tuple[int, ...], tuple[int, ...]]  # (lo, hi) per data dim, hi exclusive; None = empty


@dataclass(frozen=True)
class Loop:
    level: int
    spatial: bool
    dim: int
    bound: int


def build_loops(mapping: NestMapping, n_levels: int) -> list[Loop]:
    """All loops of factor > 1, outermost first: per level its temporal loops in its order, then its spatial ones."""
    loops: list[Loop] = []
    for l in range(n_levels):
        for d in mapping.order[l]:
            f = int(mapping.temporal[l, int(d)])
            if f > 1:
                loops.append(Loop(l, False, int(d), f))
        for a in range(mapping.spatial.shape[1]):
            for d in range(len(DIMS)):
                f = int(mapping.spatial[l, a, d])
                if f > 1:
                    loops.append(Loop(l, True, d, f))
    return loops


def box_volume(b: Box | None) -> int:
    if b is None:
        return 0
    return math.prod(h - l for l, h in zip(*b))


def box_intersection_volume(a: Box, b: Box) -> int:
    return math.prod(max(0, min(ah, bh) - max(al, bl)) for al, ah, bl, bh in zip(a[0], a[1], b[0], b[1]))


def walk_deltas(tiles: list[Box | None], events: collections.Counter | None = None) -> list[int]:
    """Timeloop's delta per time step of one instance (rule 3): first tile in full, then what is new.

    ``events`` (optional) only *observes* the walk: it counts ``"resize"``, an overlapping step whose single
    differing data dim changes its extent (the tile shrinks or grows; only padding does this, a perfectly
    factored nest only translates tiles), and ``"resize_same_min"``, those of them that keep the min (rule 3
    takes them as direction +1, ``A.min <= B.min``).
    """
    out: list[int] = []
    prev: Box | None = None
    grad = None
    for i, b in enumerate(tiles):
        if i == 0:
            out.append(box_volume(b))
            grad = None
        elif b is None:
            out.append(0)
            grad = None
        elif prev is None:
            out.append(box_volume(b))
            grad = None
        elif prev == b:
            out.append(0)
            grad = None
        else:
            alo, ahi = prev
            blo, bhi = b
            n = len(alo)
            disjoint = any(ahi[x] <= blo[x] or alo[x] >= bhi[x] for x in range(n))
            differ = [x for x in range(n) if alo[x] != blo[x] or ahi[x] != bhi[x]]
            if disjoint or len(differ) > 1:
                out.append(box_volume(b))
                grad = None
            else:
                x = differ[0]
                if events is not None and ahi[x] - alo[x] != bhi[x] - blo[x]:
                    events["resize"] += 1
                    if alo[x] == blo[x]:
                        events["resize_same_min"] += 1
                g = (x, 1 if alo[x] <= blo[x] else -1)
                if grad is None or grad == g:
                    out.append(box_volume(b) - box_intersection_volume(prev, b))
                    grad = g
                else:
                    out.append(box_volume(b))
                    grad = None
        prev = b
    return out


class NestOracle:
    """Enumerates the nest once; ``counts()`` gives ``{level: {tensor: {reads, fills, updates, partition}}}``."""

    def __init__(self, layer: Layer, hier: Hierarchy, mapping: NestMapping):
        self.layer, self.hier, self.mapping = layer, hier, mapping
        self.L = len(hier.levels)
        self.loops = build_loops(mapping, self.L)
        self.sizes = np.array([getattr(layer, d) for d in DIMS], dtype=np.int64)
        bounds = [lp.bound for lp in self.loops]
        nl = len(self.loops)
        n_points = math.prod(bounds)
        self.idx = np.array(list(itertools.product(*[range(b) for b in bounds])), dtype=np.int64).reshape(n_points, nl)
        # value of dim d = sum_j idx_j * step_j, step_j = product of bounds of the same dim's inner loops
        steps = np.zeros((nl, len(DIMS)), dtype=np.int64)
        for j, lp in enumerate(self.loops):
            steps[j, lp.dim] = math.prod(self.loops[k].bound for k in range(j + 1, nl) if self.loops[k].dim == lp.dim)
        self.values = self.idx @ steps if nl else np.zeros((1, len(DIMS)), dtype=np.int64)
        self.valid = (self.values < self.sizes).all(axis=1)
        v = {d: self.values[:, _D[d]] for d in DIMS}
        sh, sw = layer.stride
        dh, dw = layer.dilation
        h = v["P"] * sh + v["R"] * dh
        w = v["Q"] * sw + v["S"] * dw
        self.coords = {
            "weights": np.stack([v["G"], v["K"], v["C"], v["R"], v["S"]], axis=1),
            "inputs": np.stack([v["N"], v["G"], v["C"], h, w], axis=1),
            "outputs": np.stack([v["N"], v["G"], v["K"], v["P"], v["Q"]], axis=1),
        }
        self._tiles: dict[tuple[int, str], tuple[np.ndarray, list]] = {}
        self._deltas: dict[tuple[int, str], list[int]] = {}
        #: observations of the delta walks (see :func:`walk_deltas`), filled as counts are computed
        self.events: collections.Counter = collections.Counter()

    # ---- structure -------------------------------------------------------------------------------------
    def keeps(self, l: int, t: str) -> bool:
        ti = TENSOR_NAMES.index(t)
        return bool(self.mapping.keep[l, ti] == 1) and t in self.hier.levels[l].keeps

    def n_above(self, l: int) -> int:
        """Number of loops of levels < l (``l == L`` is the MAC pseudo-level: all loops)."""
        return sum(1 for lp in self.loops if lp.level < l)

    def tiles(self, l: int, t: str) -> tuple[np.ndarray, list]:
        """(prefix index rows [n_prefix, n_above], boxes) for level l (l == L: single operations)."""
        key = (l, t)
        if key not in self._tiles:
            a = self.n_above(l)
            n_inner = math.prod(lp.bound for lp in self.loops[a:])
            coords = self.coords[t].reshape(-1, n_inner, 5)
            valid = self.valid.reshape(-1, n_inner)
            big = np.iinfo(np.int64).max
            lo = np.where(valid[..., None], coords, big).min(axis=1)
            hi = np.where(valid[..., None], coords, -big).max(axis=1) + 1
            nonempty = valid.any(axis=1)
            boxes = [
                (tuple(int(x) for x in lo[i]), tuple(int(x) for x in hi[i])) if nonempty[i] else None
                for i in range(len(nonempty))
            ]
            prefixes = self.idx[::n_inner, :a]
            self._tiles[key] = (prefixes, boxes)
        return self._tiles[key]

    def deltas(self, l: int, t: str) -> list[int]:
        """Per prefix of level l: the delta of that instance at that time step (l == L: 1 per valid op)."""
        if (l, t) in self._deltas:
            return self._deltas[(l, t)]
        prefixes, boxes = self.tiles(l, t)
        if l == self.L:
            return [box_volume(b) for b in boxes]
        a = self.n_above(l)
        sp = [j for j in range(a) if self.loops[j].spatial]
        groups: dict[tuple, list[int]] = {}
        for i, row in enumerate(prefixes):
            groups.setdefault(tuple(int(row[j]) for j in sp), []).append(i)
        out = [0] * len(boxes)
        for rows in groups.values():  # rows of one instance, in time order
            for i, dlt in zip(rows, walk_deltas([boxes[i] for i in rows], self.events)):
                out[i] = dlt
        self._deltas[(l, t)] = out
        return out

    # ---- counts ----------------------------------------------------------------------------------------
    def fills(self, l: int, t: str) -> int:
        if l == 0 or not self.keeps(l, t):
            return 0
        return sum(self.deltas(l, t))

    def served(self, p: int, t: str) -> int:
        """What level p sends inward for t (rule 4): per p-instance and time step of the next inner keeper c
        (the MACs if none), the deltas of the c-instances below, once per class of identical sibling subtrees
        at each fanout between p and c."""
        c = next((x for x in range(p + 1, self.L) if self.keeps(x, t)), self.L)
        prefixes, boxes = self.tiles(c, t)
        deltas = self.deltas(c, t)
        a = self.n_above(c)
        outer_pos = [j for j in range(a) if (self.loops[j].spatial and self.loops[j].level < p) or not self.loops[j].spatial]
        sub_pos = [j for j in range(a) if self.loops[j].spatial and p <= self.loops[j].level < c]
        # per fanout level f in [p, c): its spatial loops' bounds (contiguous segments of sub_pos)
        seg_bounds = [[self.loops[j].bound for j in sub_pos if self.loops[j].level == f] for f in range(p, c)]
        groups: dict[tuple, dict[tuple, tuple]] = {}
        for i, row in enumerate(prefixes):
            key = tuple(int(row[j]) for j in outer_pos)
            sub = tuple(int(row[j]) for j in sub_pos)
            groups.setdefault(key, {})[sub] = (boxes[i], deltas[i])
        return sum(self._count_classes(subs, list(subs), seg_bounds, (), 0) for subs in groups.values())

    @staticmethod
    def _count_classes(subs: dict, order: list, seg_bounds: list, fixed: tuple, fi: int) -> int:
        """Deltas of one p-instance at one time step, counted once per class of identical sibling subtrees
        at each fanout (``subs``: c-instance index tuple -> (tile, delta); ``order``: their spatial order)."""
        if fi == len(seg_bounds):
            return subs[fixed][1]
        classes: dict[tuple, tuple] = {}
        for child in itertools.product(*[range(b) for b in seg_bounds[fi]]):
            k = fixed + child
            subtree = tuple(subs[s][0] for s in order if s[: len(k)] == k)
            classes.setdefault(subtree, k)  # first sibling (in spatial order) represents its class
        return sum(NestOracle._count_classes(subs, order, seg_bounds, rep, fi + 1) for rep in classes.values())

    def partition(self, p: int) -> int:
        sp = [j for j, lp in enumerate(self.loops) if lp.spatial and lp.level < p]
        rows = np.concatenate([self.idx[:, sp], self.coords["outputs"]], axis=1)[self.valid]
        return len({tuple(r) for r in rows.tolist()})

    def counts(self) -> dict[str, dict[str, dict[str, int]]]:
        out: dict[str, dict[str, dict[str, int]]] = {}
        for l, lv in enumerate(self.hier.levels):
            per: dict[str, dict[str, int]] = {}
            for t in TENSOR_NAMES:
                if not self.keeps(l, t):
                    continue
                served = self.served(l, t)
                rec = {"fills": self.fills(l, t), "reads": served, "updates": 0, "partition": 0}
                if t == "outputs":
                    part = self.partition(l)
                    rec.update(updates=served, partition=part, reads=served - part)
                per[t] = rec
            out[lv.name] = per
        return out

    @property
    def macs(self) -> int:
        return int(self.valid.sum())

    @property
    def compute_cycles(self) -> int:
        return int(np.prod(self.mapping.temporal))


def oracle_counts(layer: Layer, hier: Hierarchy, mapping: NestMapping) -> dict:
    """``{"levels": {level: {tensor: {reads, fills, updates, partition}}}, "macs", "compute_cycles", "events"}``
    (tensors a level does not keep are absent)."""
    o = NestOracle(layer, hier, mapping)
    levels = o.counts()
    return {"levels": levels, "macs": o.macs, "compute_cycles": o.compute_cycles, "events": dict(o.events)}
