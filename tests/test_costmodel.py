"""The numba cost model against a brute-force loop-nest counter, hand-computed vectors, SCALE-Sim and bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import hwmodel as hw
from hwmodel.costmodel import ACCESS_KINDS
from hwmodel.layer import DIMS
from hwmodel.mapping import Mapping
from refcount import reference_counts

BIG = dict(l1_words=10**7, l2_bytes=10**9, noc_bandwidth=4.0, dram_bandwidth=2.0)


@st.composite
def layers(draw, max_iters: int = 1200):
    while True:
        dims = {
            "N": draw(st.integers(1, 2)), "G": draw(st.integers(1, 3)), "K": draw(st.integers(1, 4)),
            "C": draw(st.integers(1, 4)), "P": draw(st.integers(1, 6)), "Q": draw(st.integers(1, 4)),
            "R": draw(st.integers(1, 3)), "S": draw(st.integers(1, 3)),
        }
        if math.prod(dims.values()) <= max_iters:
            break
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    return hw.Layer(**dims, stride=stride, dilation=dilation)


@st.composite
def accelerators(draw, **overrides):
    n_axes = draw(st.integers(1, 3))
    array = tuple(draw(st.integers(1, 4)) for _ in range(n_axes))
    conn = tuple(tuple(draw(st.lists(st.sampled_from(DIMS), min_size=1, max_size=4, unique=True))) for _ in range(n_axes))
    kwargs = dict(BIG)
    kwargs.update(
        double_buffer=(draw(st.booleans()), draw(st.booleans())),
        systolic=False,
        energy_table=draw(st.sampled_from(sorted(hw.ENERGY_TABLES))),
    )
    if draw(st.booleans()):
        kwargs["l1_partition"] = (10**6, 10**6, 10**6)
    kwargs.update(overrides)
    return hw.Accelerator(name="rand", array=array, connectivity=conn, **kwargs)


@st.composite
def mappings(draw, layer: hw.Layer, accel: hw.Accelerator, max_padded: int = 2500):
    """A covering mapping with random (possibly non-dividing) factors, unrolls and loop orders."""
    dims = layer.dim_array
    spatial = np.ones((3, 8), dtype=np.int64)
    for a, size in enumerate(accel.array):
        room = size
        for d in draw(st.permutations(list(accel.connectivity[a]))):
            di = DIMS.index(d)
            f = draw(st.integers(1, max(1, min(room, int(dims[di])))))
            spatial[a, di] = f
            room //= f
    temporal = np.ones((3, 8), dtype=np.int64)
    for d in range(8):
        rem = -(-int(dims[d]) // int(spatial[:, d].prod()))
        l1 = draw(st.integers(1, rem))
        rem1 = -(-rem // l1)
        l2 = draw(st.integers(1, rem1))
        dram = -(-rem1 // l2) + draw(st.integers(0, 1)) * (dims[d] > 1)
        temporal[:, d] = (dram, l2, l1)
    if (temporal.prod(axis=0) * spatial.prod(axis=0)).prod() > max_padded * 4:
        temporal[0] = np.maximum(1, -(-dims // (temporal[1] * temporal[2] * spatial.prod(axis=0))))
    order = np.stack([np.array(draw(st.permutations(range(8)))) for _ in range(3)])
    return Mapping(temporal=temporal, spatial=spatial, order=order)


def _compare(layer, accel, mapping):
    cost = hw.evaluate(layer, accel, mapping)
    ref = reference_counts(layer, accel, mapping)
    assert cost.valid, cost.reason
    assert ref["macs"] == layer.macs
    for t in hw.TENSORS:
        got = [cost.accesses[t][k] for k in ACCESS_KINDS]
        want = [ref["counts"][t][k] for k in ACCESS_KINDS]
        assert got == want, f"{t}: model {got} != reference {want}\n{mapping.loop_nest(layer)}"
    assert cost.compute_cycles == ref["compute_cycles"]
    return cost, ref


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_matches_brute_force_counter(data):
    layer = data.draw(layers())
    accel = data.draw(accelerators())
    mapping = data.draw(mappings(layer, accel))
    assume(mapping.coverage().prod() <= 6000)  # keep the pure-Python walk fast
    _compare(layer, accel, mapping)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_capacity_matches_reference_tiles(data):
    """Validity flips exactly where the largest tiles the reference sees stop fitting."""
    layer = data.draw(layers(max_iters=400))
    accel = data.draw(accelerators())
    mapping = data.draw(mappings(layer, accel))
    assume(mapping.coverage().prod() <= 3000)
    ref = reference_counts(layer, accel, mapping)
    m1 = 2 if accel.double_buffer[0] else 1
    m2 = 2 if accel.double_buffer[1] else 1
    need_l1 = sum(ref["max_l1"].values()) * m1
    l2 = ref["max_l2"]
    need_l2 = math.ceil(((l2["weights"] + l2["inputs"]) * 2 + l2["outputs"] * 4) * m2)
    for l1_words, l2_bytes, expect in [
        (need_l1, need_l2, "valid"),
        (need_l1 - 1, need_l2, "L1 tiles exceed the L1 capacity"),
        (need_l1, need_l2 - 1, "L2 tiles exceed the L2 capacity"),
    ]:
        if l1_words < 1 or l2_bytes < 1:
            continue
        small = accel.with_(l1_words=l1_words, l1_partition=None, l2_bytes=l2_bytes, word_bits=16, psum_bits=32)
        assert hw.evaluate(layer, small, mapping).reason == expect


def _acc(array, conn, **kw):
    args = dict(BIG)
    args.update(kw)
    return hw.Accelerator(name="hand", array=array, connectivity=conn, **args)


def test_halo_vector():
    """Two PEs on adjacent output rows of a 3-tap filter share 2 of their 3 input rows."""
    layer = hw.Layer(K=1, C=1, P=4, R=3)
    accel = _acc((2,), (("P",),))
    m = hw.mapping_from_factors(l2={"P": 2}, l1={"R": 3}, spatial=[{"P": 2}])
    acc = hw.evaluate(layer, accel, m).accesses["inputs"]
    # per PE per step 3 rows (2 steps x 2 PEs); L2 sends 4 rows per step; DRAM the 6-row input once
    assert (acc["l1_writes"], acc["noc"], acc["l2_reads"], acc["dram_reads"]) == (12, 12, 8, 6)
    _compare(layer, accel, m)


def test_broadcast_vector():
    """Four PEs on K need the same input: one L2 read, four NoC deliveries."""
    layer = hw.Layer(K=4, C=1)
    accel = _acc((4,), (("K",),))
    m = hw.mapping_from_factors(spatial=[{"K": 4}])
    acc = hw.evaluate(layer, accel, m).accesses
    assert (acc["inputs"]["l1_writes"], acc["inputs"]["l2_reads"], acc["inputs"]["dram_reads"]) == (4, 1, 1)
    assert acc["weights"]["l2_reads"] == 4  # weights differ per PE: no multicast
    _compare(layer, accel, m)


def test_partial_sum_spill_vector():
    """C outside P in L2: each of the 2 outputs leaves L1 after every channel and comes back 3 times."""
    layer = hw.Layer(K=1, C=4, P=2)
    accel = _acc((1,), (("K",),))
    m = hw.mapping_from_factors(l2={"C": 4, "P": 2}, order={"L2": ["N", "G", "K", "C", "P", "Q", "R", "S"]})
    o = hw.evaluate(layer, accel, m).accesses["outputs"]
    # 8 residencies of 1 psum; 6 of them re-read a partial sum (8 - 2 first visits)
    assert o["noc"] == 8 + 6
    assert o["l2_reads"] == 6 + 2  # psums back to the array + final drain to DRAM
    assert o["l2_writes"] == 8  # updates from the array
    assert (o["l1_reads"], o["l1_writes"]) == (8 + 6, 8 + 6)
    assert (o["dram_reads"], o["dram_writes"]) == (0, 2)
    _compare(layer, accel, m)


def test_spatial_reduction_vector():
    """C unrolled on 4 PEs: every PE drains its partial, the array adds them, L2 sees one update."""
    layer = hw.Layer(K=1, C=4)
    accel = _acc((4,), (("C",),))
    m = hw.mapping_from_factors(spatial=[{"C": 4}])
    o = hw.evaluate(layer, accel, m).accesses["outputs"]
    assert (o["noc"], o["l2_writes"], o["l1_writes"], o["dram_writes"]) == (4, 1, 4, 1)
    _compare(layer, accel, m)


@pytest.mark.parametrize("dataflow,scalesim", [("ws", 116_279), ("os", 125_047), ("is", 278_711)])
def test_systolic_cycles_match_scalesim(dataflow, scalesim):
    """SCALE-Sim 3.0, K=C=64, P=Q=56, R=S=3 on a 32x32 array (figures from the issue)."""
    layer = hw.Layer(K=64, C=64, P=56, Q=56, R=3, S=3)
    accel = hw.load_accelerator("systolic:32x32")
    cost = hw.evaluate(layer, accel, hw.template_mapping(layer, accel, dataflow))
    assert cost.compute_cycles == pytest.approx(scalesim, rel=0.10)
    assert abs(cost.compute_cycles - scalesim) <= 2  # in fact we land within a cycle


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_no_valid_mapping_beats_lower_bound(data):
    layer = data.draw(layers())
    accel = data.draw(
        accelerators(l1_words=data.draw(st.integers(8, 4000)), l2_bytes=data.draw(st.integers(64, 10**6)))
    )
    mapping = data.draw(mappings(layer, accel))
    cost = hw.evaluate(layer, accel, mapping)
    lb = hw.lower_bound(layer, accel)
    if cost.valid:
        assert cost.cycles >= lb.cycles
        assert cost.energy_pj >= lb.energy_pj * (1 - 1e-12)


@pytest.mark.parametrize("preset", sorted(hw.PRESETS))
@pytest.mark.parametrize("dataflow", sorted(hw.DATAFLOWS))
def test_templates_valid_and_above_bound(preset, dataflow):
    accel = hw.PRESETS[preset]
    for layer in [
        hw.Layer(K=64, C=64, P=56, Q=56, R=3, S=3, name="conv3x3"),
        hw.Layer(K=1, C=1, G=96, P=28, Q=28, R=3, S=3, stride=2, name="dw"),
        hw.Layer(K=1000, C=2048, name="fc"),
    ]:
        cost = hw.evaluate(layer, accel, hw.template_mapping(layer, accel, dataflow))
        assert cost.valid, (preset, dataflow, layer.name, cost.reason)
        lb = hw.lower_bound(layer, accel)
        assert cost.cycles >= lb.cycles and cost.energy_pj >= lb.energy_pj * (1 - 1e-9)
        assert 0 < cost.utilization <= 1


def test_depthwise_templates_unroll_groups():
    layer = hw.Layer(K=1, C=1, G=64, P=14, Q=14, R=3, S=3)
    accel = hw.load_accelerator("systolic:16x16")
    m = hw.template_mapping(layer, accel, "ws")
    assert m.spatial_factors[DIMS.index("G")] > 1


def test_energy_breakdown_adds_up():
    layer = hw.Layer(K=32, C=16, P=14, Q=14, R=3, S=3)
    accel = hw.PRESETS["eyeriss"]
    cost = hw.evaluate(layer, accel, hw.template_mapping(layer, accel, "rs"))
    assert sum(cost.energy_breakdown.values()) == pytest.approx(cost.energy_pj)
    assert sum(cost.energy_by_tensor.values()) + cost.energy_breakdown["mac"] == pytest.approx(cost.energy_pj)
    assert cost.edp == pytest.approx(cost.energy_pj * cost.cycles)


def test_batch_equals_single():
    layer = hw.Layer(K=32, C=16, P=14, Q=14, R=3, S=3)
    accel = hw.PRESETS["nvdla-256"]
    maps = [hw.template_mapping(layer, accel, df) for df in hw.DATAFLOWS]
    codes, metrics, _ = hw.evaluate_batch(
        layer, accel, np.stack([m.temporal for m in maps]), np.stack([m.spatial for m in maps]),
        np.stack([m.order for m in maps]),
    )
    for m, code, row in zip(maps, codes, metrics):
        single = hw.evaluate(layer, accel, m)
        assert code == 0 and row[0] == single.cycles and row[2] == pytest.approx(single.energy_pj)


def test_accelergy_size_law_anchors():
    from hwmodel.energy import sram_energy_pj

    assert sram_energy_pj(12) == pytest.approx(0.237)
    assert sram_energy_pj(192) == pytest.approx(1.586)
    assert sram_energy_pj(16384, word_bits=64) == pytest.approx(52.612)
    assert sram_energy_pj(12) < sram_energy_pj(100) < sram_energy_pj(192) < sram_energy_pj(4096) < sram_energy_pj(10**6)
