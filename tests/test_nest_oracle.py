"""The storage-hierarchy cost model against an independent brute-force oracle (tests/nest_oracle.py).

Hand-computed unit tests pin the oracle itself; hypothesis properties compare every (level, tensor)
reads / fills / updates (and output partitions), the MAC count and the compute cycles, on random small
layers, hierarchies (2-4 levels, random keeps, 0-2 fanouts) and covering mappings (random orders, bypass).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from hwmodel.hierarchy import Fanout, Hierarchy, StorageLevel
from hwmodel.layer import DIMS, Layer
from hwmodel.nestmodel import NestMapping, evaluate_nest_mapping
from tests.nest_oracle import TENSOR_NAMES, oracle_counts, walk_deltas

D = {d: i for i, d in enumerate(DIMS)}
BIG = 1e15
MAX_OPS = 3000
MAX_POINTS = 6000


def _level(name, keeps=TENSOR_NAMES, fanout=None):
    return StorageLevel(name, keeps=tuple(keeps), capacity_bits=None if name == "DRAM" else BIG, fanout=fanout)


def _mapping(n_levels, temporal=(), spatial=(), orders=None, keep=None):
    """temporal: [(level, dim, f)], spatial: [(level, axis, dim, f)], orders: {level: "KPR..."} outermost first."""
    m = NestMapping.empty(n_levels)
    for l, d, f in temporal:
        m.temporal[l, D[d]] = f
    for l, a, d, f in spatial:
        m.spatial[l, a, D[d]] = f
    for l, o in (orders or {}).items():
        rest = [d for d in DIMS if d not in o]
        m.order[l] = [D[d] for d in list(o) + rest]
    if keep is not None:
        m.keep[:] = keep
    return m


def _get(levels, lvl, t, k):
    return levels.get(lvl, {}).get(t, {}).get(k, 0)


# ---------------------------------------------------------------------------------------------------------
# the oracle by hand
# ---------------------------------------------------------------------------------------------------------


def test_walk_deltas_rules():
    a, b, c = ((0,), (3,)), ((1,), (4,)), ((0,), (3,))
    assert walk_deltas([a, b]) == [3, 1]
    assert walk_deltas([a, b, c]) == [3, 1, 3]  # backward step against gradient +1: full refetch
    assert walk_deltas([b, a, ((-1,), (2,))]) == [3, 1, 1]  # a steady -1 gradient keeps its reuse
    assert walk_deltas([a, None, a]) == [3, 0, 3]  # after an empty tile: full
    assert walk_deltas([a, a, b]) == [3, 0, 1]
    assert walk_deltas([((0, 0), (2, 2)), ((1, 1), (3, 3))]) == [4, 4]  # two dims move: full
    assert walk_deltas([((0, 0), (2, 2)), ((2, 0), (4, 2))]) == [4, 4]  # touching, no overlap: full
    assert walk_deltas([((3,), (6,)), ((3,), (5,)), ((4,), (6,))]) == [3, 0, 1]  # shrink inside (padding): 0
    assert walk_deltas([((2,), (5,)), ((3,), (5,))]) == [3, 0]


def test_oracle_sliding_window():
    """R=3 inside a buffer, P=16 stepping in DRAM: input fills 3 + 15, each step a new row."""
    layer = Layer(K=1, C=1, P=16, R=3)
    hier = Hierarchy("h", (_level("DRAM"), _level("Buf")), mac_pj=1.0)
    m = _mapping(2, temporal=[(0, "P", 16), (1, "R", 3)])
    o = oracle_counts(layer, hier, m)
    lv = o["levels"]
    assert lv["Buf"]["inputs"]["fills"] == 18
    assert lv["DRAM"]["inputs"]["reads"] == 18
    assert lv["Buf"]["inputs"]["reads"] == 48
    assert lv["Buf"]["weights"]["fills"] == 3 and lv["DRAM"]["weights"]["reads"] == 3
    assert lv["Buf"]["outputs"]["fills"] == 16
    assert lv["DRAM"]["outputs"] == {"fills": 0, "reads": 0, "updates": 16, "partition": 16}
    assert lv["Buf"]["outputs"] == {"fills": 16, "reads": 32, "updates": 48, "partition": 16}
    assert o["macs"] == 48 and o["compute_cycles"] == 48


def test_oracle_gradient_reset():
    """K above P in DRAM, R in the buffer, P=2: the window goes [0,3) [1,4) then back to [0,3) (overlapping,
    against the +1 gradient): a full refetch, so 3+1+3+1 = 8 rather than 6."""
    layer = Layer(K=2, C=1, P=2, R=3)
    hier = Hierarchy("h", (_level("DRAM"), _level("Buf")), mac_pj=1.0)
    m = _mapping(2, temporal=[(0, "K", 2), (0, "P", 2), (1, "R", 3)], orders={0: "KP"})
    lv = oracle_counts(layer, hier, m)["levels"]
    assert lv["Buf"]["inputs"]["fills"] == 8
    # P outer, K inner: the window stays for both K steps: 3 + 0 + 1 + 0
    m2 = _mapping(2, temporal=[(0, "K", 2), (0, "P", 2), (1, "R", 3)], orders={0: "PK"})
    assert oracle_counts(layer, hier, m2)["levels"]["Buf"]["inputs"]["fills"] == 4


def test_oracle_multicast_and_spatial_reduction():
    """K=2 across two buffers, C=2 across two MACs each: inputs multicast from DRAM (2 reads, not 4);
    the two MACs of a buffer reduce into one output (1 update per buffer)."""
    layer = Layer(K=2, C=2)
    hier = Hierarchy(
        "h",
        (_level("DRAM", fanout=Fanout((2,), (DIMS,))), _level("Buf", fanout=Fanout((2,), (DIMS,)))),
        mac_pj=1.0,
    )
    m = _mapping(2, spatial=[(0, 0, "K", 2), (1, 0, "C", 2)])
    lv = oracle_counts(layer, hier, m)["levels"]
    assert lv["DRAM"]["inputs"]["reads"] == 2 and lv["Buf"]["inputs"]["fills"] == 4
    assert lv["DRAM"]["weights"]["reads"] == 4 and lv["Buf"]["weights"]["fills"] == 4
    assert lv["DRAM"]["outputs"] == {"fills": 0, "reads": 0, "updates": 2, "partition": 2}
    assert lv["Buf"]["weights"]["reads"] == 4 and lv["Buf"]["inputs"]["reads"] == 4
    assert lv["Buf"]["outputs"] == {"fills": 2, "reads": 0, "updates": 2, "partition": 2}


def test_oracle_padding_and_bypass():
    """P=5 as 3 x 2 (one padded step), R=2: input rows [0,3) [2,5) [4,6) -> fills 3+2+1 = 6; outputs
    2+2+1. With the buffer bypassing inputs, DRAM serves every MAC: 10 reads."""
    layer = Layer(K=1, C=1, P=5, R=2)
    hier = Hierarchy("h", (_level("DRAM"), _level("Buf")), mac_pj=1.0)
    m = _mapping(2, temporal=[(0, "P", 3), (1, "P", 2), (1, "R", 2)])
    o = oracle_counts(layer, hier, m)
    assert o["levels"]["Buf"]["inputs"]["fills"] == 6
    assert o["levels"]["Buf"]["outputs"]["fills"] == 5
    assert o["macs"] == 10 and o["compute_cycles"] == 12
    m.keep[1, 1] = 0
    o = oracle_counts(layer, hier, m)
    assert "inputs" not in o["levels"]["Buf"] and o["levels"]["DRAM"]["inputs"]["reads"] == 10


# ---------------------------------------------------------------------------------------------------------
# hand cases against the model
# ---------------------------------------------------------------------------------------------------------


def _compare(layer, hier, m, want=None):
    cost = evaluate_nest_mapping(layer, hier, m)
    assert cost.valid, cost.reason
    want = want or oracle_counts(layer, hier, m)
    diffs = []
    for lv in hier.levels:
        for t in TENSOR_NAMES:
            keys = ("reads", "fills", "updates") + (("partition",) if t == "outputs" else ())
            for k in keys:
                a, b = _get(cost.levels, lv.name, t, k), _get(want["levels"], lv.name, t, k)
                if a != b:
                    diffs.append(f"{lv.name}.{t}.{k}: model {a:g} oracle {b}")
    if cost.macs != want["macs"]:
        diffs.append(f"macs: model {cost.macs} oracle {want['macs']}")
    if cost.compute_cycles != want["compute_cycles"]:
        diffs.append(f"compute_cycles: model {cost.compute_cycles:g} oracle {want['compute_cycles']}")
    assert not diffs, "\n".join(
        [f"layer={layer!r}", f"hier={hier!r}", f"temporal={m.temporal.tolist()}", f"spatial={m.spatial.tolist()}",
         f"order={m.order.tolist()}", f"keep={m.keep.tolist()}", *diffs]
    )


@pytest.mark.parametrize("case", ["sliding", "reset", "multicast", "padding"])
def test_model_on_hand_cases(case):
    flat = Hierarchy("h", (_level("DRAM"), _level("Buf")), mac_pj=1.0)
    if case == "sliding":
        _compare(Layer(K=1, C=1, P=16, R=3), flat, _mapping(2, temporal=[(0, "P", 16), (1, "R", 3)]))
    elif case == "reset":
        _compare(Layer(K=2, C=1, P=2, R=3), flat,
                 _mapping(2, temporal=[(0, "K", 2), (0, "P", 2), (1, "R", 3)], orders={0: "KP"}))
    elif case == "multicast":
        hier = Hierarchy(
            "h", (_level("DRAM", fanout=Fanout((2,), (DIMS,))), _level("Buf", fanout=Fanout((2,), (DIMS,)))),
            mac_pj=1.0)
        _compare(Layer(K=2, C=2), hier, _mapping(2, spatial=[(0, 0, "K", 2), (1, 0, "C", 2)]))
    else:
        _compare(Layer(K=1, C=1, P=5, R=2), flat, _mapping(2, temporal=[(0, "P", 3), (1, "P", 2), (1, "R", 2)]))


# ---------------------------------------------------------------------------------------------------------
# random cases
# ---------------------------------------------------------------------------------------------------------


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


@st.composite
def cases(draw, mode: str):
    """(layer, hierarchy, mapping). ``mode``: "perfect" (every dim's factors multiply exactly to its size),
    "imperfect" (ceil-div factors anywhere, at least one dim over-covered) or "imperfect_temporal" (as
    imperfect, but every spatially unrolled dim is factored exactly: padding only in temporal loops)."""
    perfect = mode == "perfect"
    # layer: dims in random order under an operation budget
    sizes = {}
    cur = 1
    for d in draw(st.permutations(DIMS)):
        cap = 2 if d in ("N", "G") else 6
        v = draw(st.integers(1, max(1, min(cap, MAX_OPS // cur))))
        sizes[d] = v
        cur *= v
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    layer = Layer(**sizes, stride=stride, dilation=dilation)

    # hierarchy: DRAM + 1..3 levels with random keeps, 0..2 fanouts (1-2 axes of 1..4, all dims connected)
    n_levels = draw(st.integers(2, 4))
    n_fan = draw(st.integers(0, min(2, n_levels)))
    fan_levels = draw(st.lists(st.integers(0, n_levels - 1), min_size=n_fan, max_size=n_fan, unique=True))
    levels = []
    for l in range(n_levels):
        fanout = None
        if l in fan_levels:
            axes = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=2)))
            fanout = Fanout(axes, (DIMS,) * len(axes))
        if l == 0:
            levels.append(_level("DRAM", fanout=fanout))
        else:
            keeps = [t for t in TENSOR_NAMES if draw(st.integers(0, 3))]  # each tensor kept with p = 3/4
            levels.append(_level(f"L{l}", keeps=keeps, fanout=fanout))
    hier = Hierarchy("rand", tuple(levels), mac_pj=1.0)

    # mapping: spatial factors first (per axis, under the axis size), then the rest over the temporal slots
    m = NestMapping.empty(n_levels)
    rem = dict(sizes)
    unrolled = set()
    for l in fan_levels:
        for a, size in enumerate(levels[l].fanout.axes):
            cap = size
            candidates = [d for d in DIMS if rem[d] > 1]
            if not candidates:
                continue
            for d in draw(st.lists(st.sampled_from(candidates), min_size=1, max_size=3, unique=True)):
                if mode != "imperfect":
                    f = draw(st.sampled_from([f for f in _divisors(rem[d]) if f <= cap][::-1]))
                else:
                    f = draw(st.integers(1, max(1, min(cap, rem[d]))))
                m.spatial[l, a, D[d]] = f
                rem[d] = -(-rem[d] // f)
                cap //= f
                if f > 1:
                    unrolled.add(d)
    for d in DIMS:
        exact = perfect or (mode == "imperfect_temporal" and d in unrolled)
        slots = draw(st.permutations(range(n_levels)))
        r = rem[d]
        for l in slots[:-1]:
            f = draw(st.sampled_from(_divisors(r))) if exact else draw(st.integers(1, r))
            m.temporal[l, D[d]] = f
            r = -(-r // f)
        m.temporal[slots[-1], D[d]] = r
    for l in range(n_levels):
        m.order[l] = [D[d] for d in draw(st.permutations(DIMS))]
    keep = np.ones((n_levels, 3), dtype=np.int64)
    for l in range(1, n_levels):
        keep[l] = [int(draw(st.integers(0, 3)) > 0) for _ in range(3)]  # bypass with p = 1/4
    m.keep = keep

    points = int(np.prod(m.temporal)) * int(np.prod(m.spatial))
    assume(points <= MAX_POINTS)
    cover = m.temporal.prod(axis=0) * m.spatial.prod(axis=(0, 1))
    exact_all = all(int(cover[D[d]]) == sizes[d] for d in DIMS)
    if perfect:
        assert exact_all
    else:
        assume(not exact_all)
    return layer, hier, m


_SETTINGS = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.filter_too_much]}


@settings(max_examples=300, **_SETTINGS)
@given(cases("perfect"))
def test_model_matches_oracle_perfect_factors(case):
    _compare(*case)


@settings(max_examples=150, **_SETTINGS)
@given(cases("imperfect_temporal"))
def test_model_matches_oracle_imperfect_temporal_factors(case):
    """Imperfect factors outside the known classes below: no padded dim is unrolled spatially (class C) and
    no delta walk has an overlapping step that changes the tile's extent (class B)."""
    want = oracle_counts(*case)
    assume(not want["events"].get("resize"))
    _compare(*case, want=want)


KNOWN_IMPERFECT = (
    "model vs oracle differ on two classes, both only with imperfect factors (padding): "
    "(B) resize steps: an overlapping step whose one differing data dim changes its extent (padding cuts "
    "an input window short or regrows it); rule 3 gives |B| - |A & B| (0 when the new tile lies inside "
    "the old), the model refetches the whole new tile in some of them -> fills (and the parent's reads) "
    "higher; "
    "(C) nested fanouts where a padded dim is unrolled: siblings whose subtree tile lists differ only in "
    "empty (all-padding) tiles are distinct classes under rule 4 (counted once each); the model merges "
    "them -> reads/updates lower"
)


@pytest.mark.xfail(strict=False, reason=KNOWN_IMPERFECT)
@settings(max_examples=100, phases=[Phase.explicit, Phase.reuse, Phase.generate], **_SETTINGS)
@given(cases("imperfect"))
def test_model_matches_oracle_imperfect_factors(case):
    _compare(*case)


def test_padded_fanout_reduction():
    """R=2 as 2 (DRAM, temporal) x 2 (spatial, below L1): step 0 has two valid MACs on the one output
    (a spatial reduction: 1 update), step 1 is all padding: 1 DRAM update in all."""
    layer = Layer(K=1, C=1, R=2)
    hier = Hierarchy("h", (_level("DRAM"), _level("L1", fanout=Fanout((2,), (DIMS,)))), mac_pj=1.0)
    m = _mapping(2, temporal=[(0, "R", 2)], spatial=[(1, 0, "R", 2)], keep=[[1, 1, 1], [0, 0, 0]])
    assert oracle_counts(layer, hier, m)["levels"]["DRAM"]["outputs"]["updates"] == 1
    _compare(layer, hier, m)


def test_padded_fanout_multicast():
    """Q=3 as 2 (spatial, below DRAM) x 2 (temporal, L1): both L1 instances hold the one weight, so DRAM
    reads it once (multicast), although the second instance's Q is half padding."""
    layer = Layer(K=1, C=1, Q=3)
    hier = Hierarchy("h", (_level("DRAM", fanout=Fanout((2,), (DIMS,))), _level("L1")), mac_pj=1.0)
    m = _mapping(2, temporal=[(1, "Q", 2)], spatial=[(0, 0, "Q", 2)])
    assert oracle_counts(layer, hier, m)["levels"]["DRAM"]["weights"]["reads"] == 1
    _compare(layer, hier, m)


@pytest.mark.xfail(strict=False, reason=KNOWN_IMPERFECT)
def test_known_padded_window_shrink():
    """(B) P=3 as 2 (L1) x 2 (L2), R=3 at L1 inside P, L2 keeps only inputs: windows [0,2) [1,3) [2,4) then
    (P padded) [2,3) [3,4) [4,5): deltas 2 1 1 0 1 1 = 6; the model refetches [2,3) in full: 7."""
    layer = Layer(K=1, C=1, P=3, R=3)
    hier = Hierarchy("h", (_level("DRAM"), _level("L1"), _level("L2")), mac_pj=1.0)
    m = _mapping(3, temporal=[(1, "P", 2), (1, "R", 3), (2, "P", 2)], orders={1: "PR"},
                 keep=[[1, 1, 1], [0, 0, 0], [0, 1, 0]])
    want = oracle_counts(layer, hier, m)
    assert want["levels"]["L2"]["inputs"]["fills"] == 6 and want["events"] == {"resize": 1, "resize_same_min": 1}
    _compare(layer, hier, m)


@pytest.mark.xfail(strict=False, reason=KNOWN_IMPERFECT)
def test_known_padded_window_regrow():
    """(B) P=3 (2 in DRAM inside R=2 in DRAM, 2 in L2), R=4 (2 on L1's fanout), stride = dilation = 2, L1
    keeps only inputs: L1 windows h [0,5) [4,7) [4,9) [8,11): deltas 5 2 2 2 = 11 (the third keeps its min
    and regrows its max: +1, so only [7,9) is new); the model refetches [4,9) in full: 14."""
    layer = Layer(K=1, C=1, P=3, R=4, stride=2, dilation=2)
    hier = Hierarchy("h", (_level("DRAM"), _level("L1", fanout=Fanout((2,), (DIMS,))), _level("L2")), mac_pj=1.0)
    m = _mapping(3, temporal=[(0, "P", 2), (0, "R", 2), (2, "P", 2)], spatial=[(1, 0, "R", 2)], orders={0: "RP"},
                 keep=[[1, 1, 1], [0, 1, 0], [0, 0, 0]])
    want = oracle_counts(layer, hier, m)
    assert want["levels"]["L1"]["inputs"]["fills"] == 11 and want["events"]["resize_same_min"] == 1
    _compare(layer, hier, m)


@pytest.mark.xfail(strict=False, reason=KNOWN_IMPERFECT)
def test_known_padded_window_regrow_min():
    """(B) P=4 as 2 (L1) x 3 (L2), R=3 as 2 (DRAM) x 2 (L1), L2 keeps only inputs: windows [0,3) [1,4) [3,4)
    [4,5) [2,5) - [5,6) -: deltas 3 1 0 1 2 0 1 0 = 8 ([4,5) -> [2,5) keeps the max and regrows the min:
    direction -1, only [2,4) is new); the model refetches [2,5) in full: 9."""
    layer = Layer(K=1, C=1, P=4, R=3)
    hier = Hierarchy("h", (_level("DRAM"), _level("L1"), _level("L2")), mac_pj=1.0)
    m = _mapping(3, temporal=[(0, "R", 2), (1, "P", 2), (1, "R", 2), (2, "P", 3)], orders={1: "PR"},
                 keep=[[1, 1, 1], [0, 0, 0], [0, 1, 0]])
    want = oracle_counts(layer, hier, m)
    assert want["levels"]["L2"]["inputs"]["fills"] == 8 and want["events"] == {"resize": 2}
    _compare(layer, hier, m)


@pytest.mark.xfail(strict=False, reason=KNOWN_IMPERFECT)
def test_known_nested_fanout_padding():
    """(C) C=3 as 2 (DRAM's fanout) x 2 (L1's fanout), L1 bypassing all: DRAM takes the MACs' partial sums.
    Outer siblings' subtrees: [o, o] and [o, (padding)] -> two classes, one update each: 2 updates,
    partition 1, 1 read. The model merges them: 1 update, 0 reads."""
    layer = Layer(K=1, C=3)
    hier = Hierarchy(
        "h", (_level("DRAM", fanout=Fanout((2,), (DIMS,))), _level("L1", fanout=Fanout((2,), (DIMS,)))), mac_pj=1.0)
    m = _mapping(2, spatial=[(0, 0, "C", 2), (1, 0, "C", 2)], keep=[[1, 1, 1], [0, 0, 0]])
    want = oracle_counts(layer, hier, m)
    assert want["levels"]["DRAM"]["outputs"] == {"fills": 0, "reads": 1, "updates": 2, "partition": 1}
    _compare(layer, hier, m)
