"""A brute-force reference for the cost model: walks the loop nest element by element.

It shares no code with ``hwmodel.costmodel``: every MAC of every PE is enumerated, tiles are the sets of
elements actually touched (inputs: the bounding box of the rows and columns touched), multicast and
spatial reduction are set unions across PEs, and partial-sum traffic follows from a per-element record of
which outputs were seen before. Only the rule of *when* a level refills (its tile is kept across the
innermost run of loops above it that do not index the tensor) is shared, being the model's definition.
Use it on small layers only.
"""

from __future__ import annotations

import itertools
import math

from hwmodel.layer import DIMS, TENSOR_DIMS, TENSORS

KINDS = ("l1_reads", "l1_writes", "noc", "l2_reads", "l2_writes", "dram_reads", "dram_writes")


def _footprint(t: str, elems: set) -> int:
    if not elems:
        return 0
    if t != "inputs":
        return len(elems)
    ngc = {e[:3] for e in elems}
    hs = [e[3] for e in elems]
    ws = [e[4] for e in elems]
    return len(ngc) * (max(hs) - min(hs) + 1) * (max(ws) - min(ws) + 1)


def _elements(point: tuple[int, ...], stride, dilation) -> dict[str, tuple]:
    n, g, k, c, p, q, r, s = point
    return {
        "weights": (g, k, c, r, s),
        "inputs": (n, g, c, p * stride[0] + r * dilation[0], q * stride[1] + s * dilation[1]),
        "outputs": (n, g, k, p, q),
    }


def _identity(loops: list[tuple[int, int]], index: tuple[int, ...], tensor: str) -> tuple:
    """Indices of the loops (dim, bound) above a level that make it refill ``tensor``."""
    relevant = {DIMS.index(d) for d in TENSOR_DIMS[tensor]}
    keep = len(loops)
    for pos in range(len(loops) - 1, -1, -1):
        d, bound = loops[pos]
        if bound == 1:
            continue
        if d in relevant:
            break
        keep = pos
    return tuple(index[:keep])


def reference_counts(layer, accel, mapping) -> dict:
    """Access counts, compute cycles and max tile sizes of ``mapping`` by enumeration."""
    D = layer.dim_array.tolist()
    tf = mapping.temporal.tolist()
    sp = mapping.spatial.prod(axis=0).tolist()
    f = [tf[0], tf[1], sp, tf[2]]
    inner3 = [f[3][d] for d in range(8)]
    inner2 = [f[2][d] * f[3][d] for d in range(8)]
    inner1 = [f[1][d] * inner2[d] for d in range(8)]
    dram_loops = [(int(d), f[0][d]) for d in mapping.order[0]]
    l2_loops = [(int(d), f[1][d]) for d in mapping.order[1]]
    above_l1 = dram_loops + l2_loops

    counts = {t: dict.fromkeys(KINDS, 0) for t in TENSORS}
    pes = list(itertools.product(*[range(sp[d]) for d in range(8)]))

    resident_pe: dict = {}  # (pe, t) -> identity
    pe_tiles: dict = {}  # (pe, 'outputs') -> set of resident outputs
    psum_valid: dict = {}  # pe -> set of output elements holding a partial sum
    array_id: dict = {}
    array_out_union: set = set()
    visited_array: set = set()
    dram_groups: list = []  # (dram index, {t: set})
    max_l1 = dict.fromkeys(TENSORS, 0)
    max_l2 = dict.fromkeys(TENSORS, 0)
    macs = 0

    for index in itertools.product(*[range(b) for _, b in above_l1]):
        di = index[: len(dram_loops)]
        base = [0] * 8
        for (d, _), i in zip(dram_loops, di):
            base[d] += i * inner1[d]
        for (d, _), i in zip(l2_loops, index[len(dram_loops):]):
            base[d] += i * inner2[d]
        if not dram_groups or dram_groups[-1][0] != di:
            dram_groups.append((di, {t: set() for t in TENSORS}))
        # enumerate every PE's MACs
        work = {}
        for pe in pes:
            lo = [base[d] + pe[d] * inner3[d] for d in range(8)]
            ranges = [range(lo[d], min(lo[d] + inner3[d], D[d])) for d in range(8)]
            if any(len(rg) == 0 for rg in ranges):
                continue
            points = list(itertools.product(*ranges))
            tiles = {t: set() for t in TENSORS}
            for pt in points:
                for t, e in _elements(pt, layer.stride, layer.dilation).items():
                    tiles[t].add(e)
            work[pe] = (points, tiles)
        if not work:
            continue
        # array-level (L2 side) events and per-PE fills
        for t in TENSORS:
            ident = _identity(above_l1, index, t)
            if array_id.get(t) == ident:
                continue
            array_id[t] = ident
            union = set().union(*(tiles[t] for _, tiles in work.values()))
            if t == "outputs":
                counts[t]["l2_writes"] += len(array_out_union)  # drain of the previous residency
                array_out_union = union
                owners = {}
                for pe, (_, tiles) in work.items():
                    for e in tiles[t]:
                        owners.setdefault(e, pe)
                for pe in work:
                    psum_valid[pe] = set()
                for e in union:
                    if e in visited_array:
                        counts[t]["l2_reads"] += 1
                        counts[t]["l1_writes"] += 1
                        counts[t]["noc"] += 1
                        psum_valid[owners[e]].add(e)
                visited_array |= union
            else:
                counts[t]["l2_reads"] += _footprint(t, union)
        for pe, (_, tiles) in work.items():
            for t in TENSORS:
                ident = _identity(above_l1, index, t)
                if resident_pe.get((pe, t)) == ident:
                    continue
                resident_pe[(pe, t)] = ident
                size = _footprint(t, tiles[t])
                max_l1[t] = max(max_l1[t], size)
                if t == "outputs":
                    old = pe_tiles.get(pe, set())
                    counts[t]["l1_reads"] += len(old)
                    counts[t]["noc"] += len(old)
                    pe_tiles[pe] = set(tiles[t])
                else:
                    counts[t]["l1_writes"] += size
                    counts[t]["noc"] += size
        # the MACs
        for pe, (points, tiles) in work.items():
            for pt in points:
                macs += 1
                el = _elements(pt, layer.stride, layer.dilation)
                counts["weights"]["l1_reads"] += 1
                counts["inputs"]["l1_reads"] += 1
                o = el["outputs"]
                if o in psum_valid[pe]:
                    counts["outputs"]["l1_reads"] += 1
                counts["outputs"]["l1_writes"] += 1
                psum_valid[pe].add(o)
            for t in TENSORS:
                dram_groups[-1][1][t] |= tiles[t]
    # final drains of the array level
    for pe, old in pe_tiles.items():
        counts["outputs"]["l1_reads"] += len(old)
        counts["outputs"]["noc"] += len(old)
    counts["outputs"]["l2_writes"] += len(array_out_union)

    # DRAM <-> L2
    l2_id: dict = {}
    l2_out: set = set()
    visited_l2: set = set()
    for di, sets in dram_groups:
        if not sets["outputs"]:
            continue
        for t in TENSORS:
            ident = _identity(dram_loops, di, t)
            if l2_id.get(t) == ident:
                continue
            l2_id[t] = ident
            size = _footprint(t, sets[t])
            max_l2[t] = max(max_l2[t], size)
            if t == "outputs":
                counts[t]["dram_writes"] += len(l2_out)
                counts[t]["l2_reads"] += len(l2_out)
                l2_out = set(sets[t])
                for e in l2_out:
                    if e in visited_l2:
                        counts[t]["dram_reads"] += 1
                        counts[t]["l2_writes"] += 1
                visited_l2 |= l2_out
            else:
                counts[t]["dram_reads"] += size
                counts[t]["l2_writes"] += size
    counts["outputs"]["dram_writes"] += len(l2_out)
    counts["outputs"]["l2_reads"] += len(l2_out)

    compute = math.prod(tf[0]) * math.prod(tf[1]) * math.prod(tf[2])
    return {"counts": counts, "macs": macs, "compute_cycles": compute, "max_l1": max_l1, "max_l2": max_l2}
