"""Per-layer precision in the hardware model (issue 14 item 1): widths, MAC kinds, bounds, bad input."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwmodel.accelerator import Accelerator
from hwmodel.bounds import lower_bound
from hwmodel.costmodel import evaluate
from hwmodel.layer import Layer, merge_layers
from hwmodel.mapping import mapping_from_factors
from hwmodel.precision import resolve_precision
from hwmodel.presets import PRESETS
from hwmodel.search import search_mapping

EYERISS = PRESETS["eyeriss"]
CONV = Layer(K=32, C=32, P=8, Q=8, R=3, S=3, name="conv")
DW = Layer(G=32, K=1, C=1, P=8, Q=8, R=3, S=3, name="dw")
FC = Layer(K=64, C=128, name="fc", op="linear")

#: A compute-bound PE array: unlimited bandwidths, big buffers (every cycle is a MAC cycle).
WIDE = Accelerator(name="wide", array=(4, 4), connectivity=(("K",), ("P",)), l1_words=4096, l2_bytes=1 << 22,
                   noc_bandwidth=1e6, dram_bandwidth=1e6, word_bits=8)


def _mapping(layer: Layer, accel: Accelerator):
    return search_mapping(layer, accel, budget=200, seed=0).mapping


@pytest.mark.parametrize("layer", [CONV, DW, FC], ids=lambda layer: layer.name)
@pytest.mark.parametrize("mac", ["fixed", "bitfusion"])
def test_energy_strictly_decreases_with_bits_at_fixed_mapping(layer: Layer, mac: str) -> None:
    accel = EYERISS.with_(mac=mac)
    mapping = _mapping(layer.with_bits(16, 16), accel)
    for which in ("weights", "inputs"):
        energies = []
        for bits in (16, 12, 8, 6, 4, 2):
            wb, ib = (bits, 16) if which == "weights" else (16, bits)
            cost = evaluate(layer.with_bits(wb, ib), accel, mapping)
            assert cost.valid, (which, bits, cost.reason)
            energies.append(cost.energy_pj)
        assert all(a > b for a, b in zip(energies, energies[1:])), (which, energies)


def test_storage_energy_is_per_bit() -> None:
    """DRAM energy of the weights of a layer scales exactly with their width (same accesses, packed words)."""
    mapping = _mapping(CONV, EYERISS)
    full = evaluate(CONV.with_bits(16, 16, psum_bits=16), EYERISS, mapping)
    half = evaluate(CONV.with_bits(8, 16, psum_bits=16), EYERISS, mapping)
    assert half.accesses == full.accesses
    # weights' energy: DRAM + L2 + L1 per-bit accesses and NoC per bit, all halve; the MAC stays (fixed datapath)
    assert half.energy_by_tensor["weights"] == pytest.approx(full.energy_by_tensor["weights"] / 2, rel=1e-9)
    assert half.energy_by_tensor["inputs"] == pytest.approx(full.energy_by_tensor["inputs"], rel=1e-12)
    assert half.energy_breakdown["mac"] == full.energy_breakdown["mac"]


def test_narrow_operands_fit_bigger_tiles() -> None:
    """A tile that overflows the L1 at 16 bits fits at 4 bits (capacity is in bits)."""
    accel = EYERISS.with_(l1_partition=None, l1_words=64, double_buffer=(False, True))
    layer = Layer(K=1, C=8, P=1, Q=1, R=3, S=3, name="t")
    # all of C, R, S at L1: 72 weights + 72 inputs + 1 output entries > 64 entries at 16 bits
    mapping = mapping_from_factors(l1={"C": 8, "R": 3, "S": 3})
    # single-buffered L1 of 64 x 16 = 1024 bits; tiles: 72 weights + 72 inputs + one 16-bit output entry
    assert not evaluate(layer.with_bits(16, 16), accel, mapping).valid  # 72*16*2 + 16 = 2320 bits
    assert not evaluate(layer.with_bits(8, 8), accel, mapping).valid  # 72*8*2 + 16 = 1168 bits
    assert evaluate(layer.with_bits(4, 4), accel, mapping).valid  # 72*4*2 + 16 = 592 bits
    assert not evaluate(layer.with_bits(4, 4), accel.with_(double_buffer=(True, True)), mapping).valid  # x2


def _compute(layer: Layer, accel: Accelerator, mapping) -> float:
    return evaluate(layer, accel, mapping).compute_cycles


def test_bitfusion_throughput_oracle() -> None:
    """Bit Fusion products per cycle, by hand: the L1 reduction loop (C*R*S) runs ceil(red / lanes) cycles."""
    accel = WIDE.with_(mac="bitfusion")
    layer = Layer(K=16, C=16, P=8, Q=4, R=3, S=3, name="bf")
    # array: 4 K x 4 P; L1 keeps the whole reduction C*R*S = 144 iterations per output; K and P, Q outside
    mapping = mapping_from_factors(dram={"K": 4, "P": 2, "Q": 4}, l1={"C": 16, "R": 3, "S": 3},
                                   spatial=[{"K": 4}, {"P": 4}])
    outer = 4 * 2 * 4
    for (bw, bi), lanes, passes in [((8, 8), 1, 1), ((4, 4), 4, 1), ((2, 2), 16, 1), ((4, 8), 2, 1),
                                    ((2, 8), 4, 1), ((3, 5), 2, 1), ((16, 8), 1, 2), ((16, 16), 1, 4)]:
        cost = evaluate(layer.with_bits(bw, bi), accel, mapping)
        assert cost.valid
        assert cost.compute_cycles == outer * math.ceil(144 / lanes) * passes, (bw, bi)
        assert cost.cycles == cost.compute_cycles  # unlimited bandwidth: compute bound
    # a fixed datapath gains no throughput from narrow operands
    fixed = evaluate(layer.with_bits(2, 2), WIDE, mapping)
    assert fixed.compute_cycles == outer * 144
    # lanes only take reduction iterations: with no reduction at L1, 2-bit operands run at the 8-bit speed
    flat = mapping_from_factors(dram={"K": 4, "C": 16, "R": 3, "S": 3}, l1={"P": 2, "Q": 4},
                                spatial=[{"K": 4}, {"P": 4}])
    assert _compute(layer.with_bits(2, 2), accel, flat) == _compute(layer.with_bits(8, 8), accel, flat)


def test_bitfusion_mac_energy_scales_with_bricks() -> None:
    accel = WIDE.with_(mac="bitfusion")
    layer = Layer(K=16, C=16, P=8, Q=4, R=3, S=3, name="bf")
    mapping = mapping_from_factors(dram={"K": 4, "P": 2, "Q": 4}, l1={"C": 16, "R": 3, "S": 3},
                                   spatial=[{"K": 4}, {"P": 4}])
    e = {}
    for b in [(8, 8), (4, 4), (2, 8), (6, 6), (16, 16)]:
        cost = evaluate(layer.with_bits(*b), accel, mapping)
        assert cost.valid, b
        e[b] = cost.energy_breakdown["mac"]
    assert e[(4, 4)] == pytest.approx(e[(8, 8)] / 4)
    assert e[(2, 8)] == pytest.approx(e[(8, 8)] / 4)
    assert e[(6, 6)] == pytest.approx(e[(8, 8)])  # 6 bits run on 8-bit bricks
    assert e[(16, 16)] == pytest.approx(e[(8, 8)] * 4)


def test_utilization_counts_lanes() -> None:
    accel = WIDE.with_(mac="bitfusion")
    layer = Layer(K=16, C=16, P=8, Q=4, R=3, S=3, name="bf")
    mapping = mapping_from_factors(dram={"K": 4, "P": 2, "Q": 4}, l1={"C": 16, "R": 3, "S": 3},
                                   spatial=[{"K": 4}, {"P": 4}])
    for bits in [(8, 8), (4, 4), (2, 2), (16, 16)]:
        assert evaluate(layer.with_bits(*bits), accel, mapping).utilization == pytest.approx(1.0)


def test_default_precision_is_unchanged() -> None:
    """No bits = the accelerator's word_bits operands and psum_bits partial sums, as before."""
    mapping = _mapping(CONV, EYERISS)
    base = evaluate(CONV, EYERISS, mapping)
    same = evaluate(CONV.with_bits(16, 16, psum_bits=EYERISS.psum_bits), EYERISS, mapping)
    assert base.to_dict() == same.to_dict()
    assert resolve_precision(CONV, EYERISS) is None
    # derived partial sums: 16 + 16 + ceil(log2(288)) = 41 bits, capped at the accelerator's psum_bits
    wide = EYERISS.with_(psum_bits=32)
    assert resolve_precision(CONV.with_bits(16, 16), wide).psum == 32
    assert resolve_precision(CONV.with_bits(4, 4), wide).psum == 4 + 4 + 9
    assert resolve_precision(CONV.with_bits(4, 4), EYERISS).psum == EYERISS.psum_bits


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bw=st.sampled_from([2, 3, 4, 6, 8, 16]), bi=st.sampled_from([2, 4, 5, 8, 16]),
       mac=st.sampled_from(["fixed", "bitfusion"]), seed=st.integers(0, 1000),
       layer=st.sampled_from([CONV, DW, FC, Layer(K=24, C=8, P=7, Q=7, R=5, S=5, stride=2, name="s2")]))
def test_lower_bound_never_beaten_with_precision(bw: int, bi: int, mac: str, seed: int, layer: Layer) -> None:
    accel = EYERISS.with_(mac=mac)
    lay = layer.with_bits(bw, bi)
    bound = lower_bound(lay, accel)
    result = search_mapping(lay, accel, budget=120, seed=seed, method="random", include_templates=False)
    cost = evaluate(lay, accel, result.mapping)
    if cost.valid:
        assert cost.cycles >= bound.cycles
        assert cost.energy_pj >= bound.energy_pj * (1 - 1e-9)


# --- serialisation -------------------------------------------------------------------------------------------
def test_layer_bits_round_trip_and_merge() -> None:
    lay = CONV.with_bits(4, 6)
    assert Layer.from_dict(json.loads(json.dumps(lay.to_dict()))) == lay
    assert Layer.parse("K=32,C=32,P=8,Q=8,R=3,S=3,weight_bits=4,input_bits=6,name=conv") == lay
    assert "weight_bits" not in CONV.to_dict()
    merged = merge_layers([CONV, CONV.with_bits(4, 6), CONV.with_bits(4, 6), CONV])
    assert [(m.bits, m.count) for m in merged] == [((None, None, None), 2), ((4, 6, None), 2)]
    assert CONV.with_bits(4, 6).im2col().bits == (4, 6, None)


def test_accelerator_precision_round_trip() -> None:
    accel = EYERISS.with_(mac="bitfusion", word_bits=8, precisions=(8, 2, 4, 4))
    assert accel.precisions == (2, 4, 8)
    back = Accelerator.from_dict(json.loads(accel.to_json()))
    assert back == accel
    assert "mac" not in json.loads(EYERISS.to_json())  # full-precision files unchanged


# --- bad input --------------------------------------------------------------------------------------------
def test_unsupported_bits_name_the_layer_and_allowed_set() -> None:
    accel = EYERISS.with_(precisions=(4, 8))
    mapping = _mapping(CONV, EYERISS)
    with pytest.raises(ValueError, match=r"layer 'conv': weight_bits=6 .* allowed: 4, 8 bits"):
        evaluate(CONV.with_bits(6, 8), accel, mapping)
    with pytest.raises(ValueError, match=r"input_bits=32 .*allowed: 2\.\.16 bits"):
        evaluate(CONV.with_bits(8, 32), EYERISS, mapping)
    with pytest.raises(ValueError, match=r"allowed: 2\.\.16 bits"):
        lower_bound(CONV.with_bits(8, 32), EYERISS)


@pytest.mark.parametrize("bits", [0, -4, 2.5, True, 65])
def test_bad_layer_bits(bits) -> None:
    with pytest.raises(ValueError, match=r"layer 'conv': weight_bits must be an integer 1\.\.64"):
        CONV.with_bits(bits, 8)


def test_bad_accelerator_precision_fields() -> None:
    with pytest.raises(ValueError, match=r"Accelerator\.mac must be one of fixed, bitfusion"):
        EYERISS.with_(mac="analog")
    with pytest.raises(ValueError, match=r"Accelerator\.precisions\[0\]"):
        EYERISS.with_(precisions=(32,))  # wider than the fixed 16-bit datapath
    with pytest.raises(ValueError, match=r"precisions"):
        Accelerator.from_dict({**json.loads(EYERISS.to_json()), "precisions": [0]})


# --- the command line ----------------------------------------------------------------------------------------
def test_cli_bits_and_bad_bits(capsys, tmp_path) -> None:
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from hwcli import run, run_json

    spec = "K=32,C=32,P=8,Q=8,R=3,S=3,name=c"
    accel = tmp_path / "bf.json"
    accel.write_text(EYERISS.with_(name="bf", mac="bitfusion", word_bits=8, precisions=(2, 4, 8)).to_json())
    argv = ["evaluate", "--layer", spec, "--accelerator", str(accel), "--dataflow", "ws"]
    (b8,) = run_json(capsys, *argv, "--bits", "8,8")["layers"]
    (b4,) = run_json(capsys, *argv, "--bits", "4")["layers"]
    (own,) = run_json(capsys, "evaluate", "--layer", spec + ",weight_bits=2,input_bits=8", "--accelerator",
                      str(accel), "--dataflow", "ws", "--bits", "4,4")["layers"]
    assert b8["precision"] == {"weights": 8, "inputs": 8, "psum": min(EYERISS.psum_bits, 8 + 8 + 9)}
    assert b4["precision"]["weights"] == b4["precision"]["inputs"] == 4
    assert own["precision"]["weights"] == 2 and own["precision"]["inputs"] == 8  # the layer's own bits win
    assert b4["energy_pj"] < b8["energy_pj"]
    rc, _, err = run(capsys, *argv, "--bits", "6,8")
    assert rc == 2 and "layer 'c': weight_bits=6 is not a precision accelerator 'bf'" in err and "2, 4, 8 bits" in err
    rc, _, err = run(capsys, *argv, "--bits", "eight")
    assert rc == 2 and "--bits must be W,A" in err
