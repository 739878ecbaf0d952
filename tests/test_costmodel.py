"""The family cost model (DRAM -> L2 -> array -> L1 on the storage-hierarchy kernel): equal to the general
kernel on the same hierarchy, hand-computed vectors under Timeloop's conventions, SCALE-Sim and bounds.
(The kernel itself is checked against Timeloop's reference outputs in test_timeloop_reference.py and
against an independent brute-force walk in test_nest_oracle.py.)"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import hwmodel as hw
from hwmodel.bounds import io_lower_bound, reuse_taps
from hwmodel.costmodel import ACCESS_KINDS
from hwmodel.layer import DIMS
from hwmodel.mapping import Mapping
from hwmodel.family import family_hierarchy, nest_mapping
from hwmodel.nestmodel import evaluate_nest_mapping

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


def _tiles(layer, mapping, rows):
    """Words of each tensor's largest tile formed by the temporal rows ``rows`` (and the array unroll when
    the L2 row is among them), written out independently of the model."""
    ext = np.ones(8, dtype=np.int64)
    for r in rows:
        ext *= mapping.temporal[r]
    if 1 in rows:
        ext *= mapping.spatial.prod(axis=0)
    b = {d: min(int(ext[i]), int(layer.dim_array[i])) for i, d in enumerate(DIMS)}
    h = (b["P"] - 1) * layer.stride[0] + (b["R"] - 1) * layer.dilation[0] + 1
    w = (b["Q"] - 1) * layer.stride[1] + (b["S"] - 1) * layer.dilation[1] + 1
    return {
        "weights": b["G"] * b["K"] * b["C"] * b["R"] * b["S"],
        "inputs": b["N"] * b["G"] * b["C"] * h * w,
        "outputs": b["N"] * b["G"] * b["K"] * b["P"] * b["Q"],
    }


def _compare(layer, accel, mapping):
    """The family's accesses equal the general kernel's counts on the family hierarchy."""
    cost = hw.evaluate(layer, accel, mapping)
    nest = evaluate_nest_mapping(layer, family_hierarchy(accel), nest_mapping(accel, mapping))
    assert cost.valid == nest.valid, (cost.reason, nest.reason)
    if not cost.valid:
        return cost
    lv = nest.levels
    l1 = {t: next(v[t] for name, v in lv.items() if name.startswith("L1") and t in v) for t in hw.TENSORS}
    for t in hw.TENSORS:
        want = {
            "l1_reads": l1[t]["reads"], "l1_writes": l1[t]["fills"] + l1[t]["updates"], "noc": l1[t]["fills"],
            "l2_reads": lv["L2"][t]["reads"], "l2_writes": lv["L2"][t]["fills"] + lv["L2"][t]["updates"],
            "dram_reads": lv["DRAM"][t]["reads"], "dram_writes": lv["DRAM"][t]["updates"],
        }
        assert cost.accesses[t] == {k: int(v) for k, v in want.items()}, t
    assert cost.compute_cycles == nest.compute_cycles
    assert cost.energy_pj == pytest.approx(nest.energy_pj)
    assert cost.cycles == nest.cycles
    return cost


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_family_equals_general_kernel(data):
    layer = data.draw(layers())
    accel = data.draw(accelerators())
    mapping = data.draw(mappings(layer, accel))
    assume(mapping.coverage().prod() <= 6000)
    _compare(layer, accel, mapping)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_capacity_matches_tiles(data):
    """Validity flips exactly where the largest L1 / L2 tiles stop fitting (entries in L1, bits in L2)."""
    layer = data.draw(layers(max_iters=400))
    accel = data.draw(accelerators())
    mapping = data.draw(mappings(layer, accel))
    assume(mapping.coverage().prod() <= 3000)
    m1 = 2 if accel.double_buffer[0] else 1
    m2 = 2 if accel.double_buffer[1] else 1
    need_l1 = sum(_tiles(layer, mapping, (2,)).values()) * m1
    l2 = _tiles(layer, mapping, (1, 2))
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
    """Sliding window over time: each PE's 3-row window moves by 2 rows, so it fetches 3 then 2 rows.
    Timeloop does not merge the overlap between neighbouring PEs (different tiles), so L2 sends what the
    PEs fetch; DRAM sends the 6-row input once."""
    layer = hw.Layer(K=1, C=1, P=4, R=3)
    accel = _acc((2,), (("P",),))
    m = hw.mapping_from_factors(l2={"P": 2}, l1={"R": 3}, spatial=[{"P": 2}])
    acc = hw.evaluate(layer, accel, m).accesses["inputs"]
    assert (acc["l1_writes"], acc["noc"], acc["l2_reads"], acc["dram_reads"]) == (10, 10, 10, 6)
    _compare(layer, accel, m)


def test_broadcast_vector():
    """Four PEs on K need the same input: one L2 read, four NoC deliveries."""
    layer = hw.Layer(K=4, C=1)
    accel = _acc((4,), (("K",),))
    m = hw.mapping_from_factors(spatial=[{"K": 4}])
    acc = hw.evaluate(layer, accel, m).accesses
    assert (acc["inputs"]["l1_writes"], acc["inputs"]["l2_reads"], acc["inputs"]["dram_reads"]) == (4, 1, 1)
    assert acc["weights"]["l2_reads"] == 4  # weights differ per PE: no multicast
    # outputs, Timeloop's read-write convention: each PE's psum is filled (cold) and updated once; nothing
    # is read back (updates - distinct outputs = 0); L2 takes 4 updates after its cold fill; DRAM 4 updates
    assert [acc["outputs"][k] for k in ACCESS_KINDS] == [0, 8, 4, 0, 8, 0, 4]
    _compare(layer, accel, m)


def test_partial_sum_spill_vector():
    """C outside P in L2: each of the 2 outputs enters L1 4 times (8 fills, 8 MAC updates, 8 - 2 reads);
    L2 accumulates the 8 drained partial sums (8 updates, 8 - 2 read-modify-writes) after 2 cold fills;
    DRAM receives the 2 finished outputs (Timeloop's read-write convention)."""
    layer = hw.Layer(K=1, C=4, P=2)
    accel = _acc((1,), (("K",),))
    m = hw.mapping_from_factors(l2={"C": 4, "P": 2}, order={"L2": ["N", "G", "K", "C", "P", "Q", "R", "S"]})
    o = hw.evaluate(layer, accel, m).accesses["outputs"]
    assert (o["l1_reads"], o["l1_writes"], o["noc"]) == (6, 16, 8)
    assert (o["l2_reads"], o["l2_writes"]) == (6, 10)
    assert (o["dram_reads"], o["dram_writes"]) == (0, 2)
    _compare(layer, accel, m)


def test_spatial_reduction_vector():
    """C unrolled on 4 PEs: every PE holds a partial (4 fills + 4 updates), the array reduces them, L2 sees
    one update after its cold fill, DRAM one."""
    layer = hw.Layer(K=1, C=4)
    accel = _acc((4,), (("C",),))
    m = hw.mapping_from_factors(spatial=[{"C": 4}])
    o = hw.evaluate(layer, accel, m).accesses["outputs"]
    assert (o["noc"], o["l2_writes"], o["l1_writes"], o["dram_writes"]) == (4, 2, 8, 1)
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


@settings(max_examples=200, deadline=None)
@given(extent=st.integers(1, 40), taps=st.integers(1, 12), stride=st.integers(1, 6), dilation=st.integers(1, 6))
def test_distinct_window_rows_closed_form(extent, taps, stride, dilation):
    from hwmodel.bounds import distinct_window_rows

    want = len({p * stride + r * dilation for p in range(extent) for r in range(taps)})
    assert distinct_window_rows(extent, taps, stride, dilation) == want


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_dram_traffic_never_below_the_io_bound(data):
    """The red-blue pebble bound on DRAM <-> L2 elements, with the L2 sized to just hold the mapping's tiles
    (the tightest the bound gets for that mapping); the full lower bound must hold there too."""
    layer = data.draw(layers())
    accel = data.draw(accelerators())
    mapping = data.draw(mappings(layer, accel))
    tiles = _tiles(layer, mapping, (1, 2))
    bits = (tiles["weights"] + tiles["inputs"]) * accel.word_bits + tiles["outputs"] * accel.psum_bits
    bits *= 2 if accel.double_buffer[1] else 1
    accel = dataclasses.replace(accel, l2_bytes=-(-bits // 8))
    cost = hw.evaluate(layer, accel, mapping)
    assume(cost.valid)
    moved = sum(cost.accesses[t]["dram_reads"] + cost.accesses[t]["dram_writes"] for t in hw.TENSORS)
    capacity = accel.l2_bytes * 8 // min(accel.word_bits, accel.psum_bits)
    assert moved >= io_lower_bound(layer, capacity)
    lb = hw.lower_bound(layer, accel)
    assert cost.cycles >= lb.cycles and cost.energy_pj >= lb.energy_pj * (1 - 1e-12)


def test_io_bound_exceeds_compulsory_on_small_buffers():
    layer = hw.Layer(K=64, C=64, P=56, Q=56, R=3, S=3)
    compulsory = sum(layer.tensor_sizes.values())
    assert io_lower_bound(layer, 512) > 3 * compulsory  # a 1 KB buffer of 16-bit words
    assert io_lower_bound(layer, 55_296) < compulsory  # Eyeriss's 108 KB: compulsory dominates
    assert io_lower_bound(layer, 512) > io_lower_bound(layer, 1024) > io_lower_bound(layer, 4096)
    small = dataclasses.replace(hw.PRESETS["eyeriss"], l2_bytes=1024)
    assert hw.lower_bound(layer, small).energy_pj > hw.lower_bound(layer, hw.PRESETS["eyeriss"]).energy_pj


@pytest.mark.parametrize("stride,dilation", [(1, 1), (2, 1), (3, 1), (2, 2), (2, 3), (4, 2)])
def test_reuse_taps_is_the_most_im2col_positions_of_an_input(stride, dilation):
    """Written out: for every input row h, the (p, r) with p*stride + r*dilation = h; the most over h."""
    layer = hw.Layer(K=1, C=1, P=30, Q=1, R=5, S=1, stride=(stride, 1), dilation=(dilation, 1))
    uses: dict[int, int] = {}
    for p in range(layer.P):
        for r in range(layer.R):
            h = p * stride + r * dilation
            uses[h] = uses.get(h, 0) + 1
    assert reuse_taps(layer) == max(uses.values())
