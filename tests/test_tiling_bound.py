"""The partial-cost bound of a tiling (``hwmodel.tiling_bound``): never above the cheapest loop order of the tiling
(every order evaluated by the kernel, small layers), never above any random mapping of real-sized layers, tighter
than the mapping-independent bound, and the exact mapper that prunes with it still finds the brute-force optimum."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hwmodel as hw
from hwmodel.costmodel import evaluate_batch
from hwmodel.objectives import get_objective
from hwmodel.search import NUM_GENES, MappingProblem, enumerate_mappings, search_mapping
from hwmodel.tiling_bound import TilingBound

SMALL = hw.Accelerator(name="small", array=(2, 2), connectivity=(("C", "K"), ("P", "Q")), l1_words=24,
                       l2_bytes=400, noc_bandwidth=2, dram_bandwidth=1)
ACCELS = {"small": SMALL, "systolic": SMALL.with_(name="small-systolic", systolic=True),
          "single-buffered": SMALL.with_(name="small-single-buffered", double_buffer=(False, False)),
          "partitioned-l1": SMALL.with_(name="small-partitioned", l1_partition=(8, 8, 8))}
LAYERS = [
    hw.Layer(K=4, C=3, P=4, Q=2, R=3, name="conv"),
    hw.Layer(K=1, C=1, G=4, P=3, Q=3, R=2, S=2, name="depthwise"),
    hw.Layer(K=3, C=2, P=3, Q=2, R=2, stride=2, name="strided"),
    hw.Layer(N=2, K=2, C=2, P=3, Q=1, R=3, S=1, dilation=2, name="dilated batch 2"),
]
CYCLES, ENERGY = get_objective("latency").family_column, get_objective("energy").family_column


def _cheapest_order_per_tiling(layer: hw.Layer, accel: hw.Accelerator) -> dict[bytes, tuple]:
    """Every valid mapping evaluated; per tiling (factors + unroll), the fewest cycles and least energy of its
    orders."""
    out: dict[bytes, tuple] = {}
    for t, s, o in enumerate_mappings(layer, accel, prune=False):
        codes, metrics, _ = evaluate_batch(layer, accel, t, s, o, parallel=False)
        for i in np.flatnonzero(codes == 0):
            key = t[i].tobytes() + s[i].tobytes()
            cycles, energy = float(metrics[i, CYCLES]), float(metrics[i, ENERGY])
            if key in out:
                _, c, e = out[key]
                out[key] = (out[key][0], min(c, cycles), min(e, energy))
            else:
                out[key] = ((t[i].copy(), s[i].copy()), cycles, energy)
    return out


def _innermost(order_row: np.ndarray, factors: np.ndarray) -> int:
    """The innermost dim of a level's order with a factor > 1 (-1: none)."""
    active = [d for d in order_row.tolist() if factors[d] > 1]
    return active[-1] if active else -1


@pytest.mark.parametrize("accel", list(ACCELS), ids=list(ACCELS))
@pytest.mark.parametrize("layer", LAYERS, ids=[layer.name for layer in LAYERS])
def test_bound_never_above_the_cheapest_order_of_any_tiling(layer: hw.Layer, accel: str) -> None:
    acc = ACCELS[accel]
    bound, overall = TilingBound(layer, acc), hw.lower_bound(layer, acc)
    tilings = _cheapest_order_per_tiling(layer, acc)
    assert len(tilings) > 1000
    tighter = 0
    for (temporal, spatial), cycles, energy in tilings.values():
        b = bound(temporal, spatial)
        assert b.cycles <= cycles and b.energy_pj <= energy * (1 + 1e-12), (temporal.tolist(), spatial.tolist())
        assert b.cycles >= overall.cycles and b.energy_pj >= overall.energy_pj
        tighter += b.edp > overall.edp * 1.05
    assert tighter > 0.5 * len(tilings)  # it measures the tiling: most are bounded > 5% above the overall bound


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(preset=st.sampled_from(sorted(hw.PRESETS)), seed=st.integers(0, 10**6),
       layer=st.sampled_from([hw.Layer(K=64, C=64, P=56, Q=56, R=3, S=3), hw.Layer(K=256, C=64, P=56, Q=56),
                              hw.Layer(K=64, C=3, P=112, Q=112, R=7, S=7, stride=2),
                              hw.Layer(K=1, C=1, G=96, P=28, Q=28, R=5, S=5, stride=2),
                              hw.Layer(N=4, K=24, C=40, P=14, Q=14, R=3, S=3, dilation=2)]))
def test_bound_never_above_random_mappings_of_real_layers(preset: str, seed: int, layer: hw.Layer) -> None:
    """Random genomes of ResNet/MobileNet-sized layers on every preset, decoded (any factors, unrolls, orders)."""
    accel = hw.PRESETS[preset]
    problem = MappingProblem(layer, accel)
    genes = np.random.default_rng(seed).random((256, NUM_GENES))
    bound = TilingBound(layer, accel)
    checked = 0
    for g in genes:
        m = problem.decode(g)
        cost = hw.evaluate(layer, accel, m)
        if not cost.valid:
            continue
        b = bound(m.temporal, m.spatial)
        assert b.cycles <= cost.cycles and b.energy_pj <= cost.energy_pj * (1 + 1e-12), m
        # and the entry of its innermost loops in the order bounds the exact mapper prunes orders with
        part = bound.split([[tuple(int(v) for v in m.temporal[:, d])] for d in range(8)],
                           [int(m.spatial[:, d].prod()) for d in range(8)])
        cycles, energy = part.order_bounds()
        x_dram = _innermost(m.order[0], m.temporal[0])
        x_l1 = _innermost(m.order[1], m.temporal[1]) if (m.temporal[1] > 1).any() else x_dram
        assert cycles[x_l1 + 1, x_dram + 1] <= cost.cycles, m
        assert energy[x_l1 + 1, x_dram + 1] <= cost.energy_pj * (1 + 1e-12), m
        # and the order's own bound (the whole order counted for weights and outputs)
        own_cycles, own_energy = part.each_order_bounds(m.order[None])
        assert own_cycles[0] <= cost.cycles and own_energy[0] <= cost.energy_pj * (1 + 1e-12), m
        assert own_cycles[0] >= cycles[x_l1 + 1, x_dram + 1] and own_energy[0] >= energy[x_l1 + 1, x_dram + 1]
        checked += 1
    assert checked > 0


@pytest.mark.parametrize("objective", ["edp", "energy"])
def test_pruned_exact_search_equals_brute_force_on_a_systolic_array(objective: str) -> None:
    layer, accel = LAYERS[0], ACCELS["systolic"]
    col = get_objective(objective).family_column
    brute = min(float(metrics[codes == 0, col].min())
                for t, s, o in enumerate_mappings(layer, accel, prune=False)
                for codes, metrics, _ in [evaluate_batch(layer, accel, t, s, o, parallel=False)]
                if (codes == 0).any())
    opt = search_mapping(layer, accel, objective, method="optimal")
    assert opt.proven and opt.fitness == pytest.approx(brute, rel=1e-12)
    assert opt.tilings_skipped > 0


WINDOW_LAYERS = [*LAYERS, hw.Layer(K=2, C=1, P=8, Q=1, R=3, S=1, name="long window"),
                 hw.Layer(K=1, C=2, P=6, Q=1, R=3, S=1, stride=2, name="long strided window"),
                 hw.Layer(K=2, C=1, P=4, Q=1, R=3, S=1, name="short window")]
ORDER_ACCELS = {**ACCELS, "roomy": SMALL.with_(name="small-roomy", l1_words=64, l2_bytes=4000)}


@pytest.mark.parametrize("accel", ["small", "single-buffered", "partitioned-l1", "roomy"])
@pytest.mark.parametrize("layer", WINDOW_LAYERS, ids=[layer.name for layer in WINDOW_LAYERS])
def test_order_bounds_never_above_an_order_with_those_innermost_loops(layer: hw.Layer, accel: str) -> None:
    """The exact mapper skips a tiling's loop orders by their innermost loops (X above L1: the innermost L2 loop,
    else DRAM loop; X' above L2: the innermost DRAM loop), then by each order's own bound: every order's cost is
    at least its own bound, that at least its entry, and the least entry is the tiling's bound."""
    acc = ORDER_ACCELS[accel]
    bound = TilingBound(layer, acc)
    per_tiling: dict[bytes, tuple] = {}
    checked = tighter = tighter_own = 0
    for t, s, o in enumerate_mappings(layer, acc, prune=False):
        codes, metrics, _ = evaluate_batch(layer, acc, t, s, o, parallel=False)
        for i in np.flatnonzero(codes == 0):
            key = t[i].tobytes() + s[i].tobytes()
            if key not in per_tiling:
                options = [[tuple(int(v) for v in t[i][:, d])] for d in range(8)]
                part = bound.split(options, [int(s[i][:, d].prod()) for d in range(8)])
                per_tiling[key] = (*part.order_bounds(), part.bound(), part)
            cycles, energy, whole, part = per_tiling[key]
            x_dram = _innermost(o[i][0], t[i][0])
            x_l1 = _innermost(o[i][1], t[i][1]) if (t[i][1] > 1).any() else x_dram
            c, e = cycles[x_l1 + 1, x_dram + 1], energy[x_l1 + 1, x_dram + 1]
            assert c <= metrics[i, CYCLES] and e <= metrics[i, ENERGY] * (1 + 1e-12), (t[i].tolist(), o[i].tolist())
            assert c >= whole[0] and e >= whole[1]
            own_c, own_e = (v[0] for v in part.each_order_bounds(o[i][None]))
            assert own_c <= metrics[i, CYCLES] and own_e <= metrics[i, ENERGY] * (1 + 1e-12), \
                (t[i].tolist(), o[i].tolist())
            assert own_c >= c and own_e >= e
            tighter += c * e > whole[0] * whole[1] * 1.01
            tighter_own += own_c * own_e > c * e * 1.01
            checked += 1
    assert checked > 300 and tighter > 0.1 * checked and tighter_own > 0


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(preset=st.sampled_from(sorted(hw.PRESETS)), data=st.data(),
       layer=st.sampled_from([hw.Layer(K=64, C=64, P=56, Q=56, R=3, S=3), hw.Layer(K=1, C=1, G=32, P=112, Q=112,
                                                                                    R=3, S=3),
                              hw.Layer(K=64, C=3, P=112, Q=112, R=7, S=7, stride=2)]))
def test_incremental_bound_equals_the_bound_of_its_option_sets(preset: str, data, layer: hw.Layer) -> None:
    """The walk's incremental form (assign / release, every option of a dim at once) gives exactly what
    ``over`` gives for the same option sets built afresh, and a partial tiling's bound is never above a
    completion's."""
    from hwmodel.search import tiling_space

    accel = hw.PRESETS[preset]
    _, space = tiling_space(layer, accel, prune=True)
    sp, per_dim = data.draw(st.sampled_from([(sp, pd) for sp, pd in space if all(pd)]))
    unroll = [int(sp[:, d].prod()) for d in range(8)]
    bound = TilingBound(layer, accel)
    part = bound.split(per_dim, unroll)
    chosen = [list(o) for o in per_dim]
    for d in data.draw(st.permutations(range(8))):
        cycles, energy = part.children(d)
        j = data.draw(st.integers(0, len(per_dim[d]) - 1))
        fresh = bound.over([*chosen[:d], [per_dim[d][j]], *chosen[d + 1:]], unroll)
        assert (cycles[j], energy[j]) == (fresh.cycles, fresh.energy_pj)
        parent = bound.over(chosen, unroll)
        assert parent.cycles <= cycles.min() and parent.energy_pj <= energy.min()
        part.assign(d, j)
        chosen[d] = [per_dim[d][j]]
        if data.draw(st.booleans()):  # and back: release restores the free dim
            part.release(d)
            assert part.bound() == (parent.cycles, parent.energy_pj)
            part.assign(d, j)


def test_window_steps_that_bring_the_tile_back_are_not_counted_as_disjoint() -> None:
    """P split 2 x 2 x 2 (DRAM, L2, L1) with R's 3 taps at L2, order DRAM [P], L2 [R, P]: at each DRAM step of P
    the tile moves +4 rows, P's L2 digit -2 and R's -2, so the new tile equals the last one (the kernel fills
    nothing). Whole-tile refetches may not be assumed there; with R inside the tile and P alone above L1 they may."""
    from hwmodel.tiling_bound import _option_row
    from hwmodel.tiling_kernel import LEVEL_L1, LEVEL_L2, _window_apart

    def rows(p: tuple[int, int, int], r: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
        return np.array(_option_row(8, p, 1)), np.array(_option_row(3, r, 1))

    p, r = rows((2, 2, 2), (1, 3, 1))
    assert not _window_apart(p, r, 1, 1, 1, 1, LEVEL_L1)
    p, r = rows((1, 4, 2), (1, 1, 1))
    assert _window_apart(p, r, 1, 1, 1, 1, LEVEL_L1)
    # above L2 the L2 tile (P: 4 indices) moves 4 rows per DRAM step: apart only with R's taps outside it
    p, r = rows((2, 2, 2), (3, 1, 1))
    assert not _window_apart(p, r, 1, 1, 1, 1, LEVEL_L2)  # R's DRAM loop advances as P's resets: -4 + 1
    p, r = rows((2, 2, 2), (1, 1, 1))
    assert _window_apart(p, r, 1, 1, 1, 1, LEVEL_L2)
    layer = hw.Layer(K=1, C=1, P=8, Q=1, R=3, S=1)
    temporal = np.ones((3, 8), dtype=np.int64)
    temporal[:, 4], temporal[:, 6] = (2, 2, 2), (1, 3, 1)
    order = np.array([[4, 0, 1, 2, 3, 5, 6, 7], [6, 4, 0, 1, 2, 3, 5, 7], list(range(8))])
    cost = hw.evaluate(layer, ORDER_ACCELS["roomy"], hw.Mapping(temporal, np.ones((3, 8), dtype=np.int64), order))
    tiles = 2 * 2 * 3  # steps above L1; each tile has 2 rows
    assert cost.valid and cost.accesses["inputs"]["l1_writes"] < 2 * tiles  # the kernel agrees: some steps are free


def test_slide_gain_counts_the_rows_a_sweep_adds() -> None:
    """P = 5 in L1 tiles of 2 under an L2 loop of 3 (the last tile padded), R = 3 whole, stride and dilation 1:
    the sweep's tiles cover rows [0, 4), [2, 6), [4, 7), so past its first tile the L1 receives 2 + 1 rows; with
    stride 2 the tiles [0, 5), [4, 9), [8, 11) add 4 + 2."""
    from hwmodel.tiling_bound import _option_row
    from hwmodel.tiling_kernel import _slide_gain

    p, r = np.array(_option_row(5, (1, 3, 2), 1)), np.array(_option_row(3, (1, 1, 3), 1))
    assert _slide_gain(p, r, 5, 3, 1, 1.0, 1.0) == 3
    assert _slide_gain(p, r, 5, 3, 1, 2.0, 1.0) == 6
    # two PEs along P: each sweeps its own tiles (PE 0: p 0-1, rows [0, 4), then p 4, rows [4, 7): 3 new; PE 1:
    # p 2-3, then p 6, past the edge: none)
    p2 = np.array(_option_row(5, (1, 2, 2), 2))
    assert _slide_gain(p2, r, 5, 3, 2, 1.0, 1.0) == 3
    # no loop over P above L1: nothing slides
    assert _slide_gain(np.array(_option_row(5, (1, 1, 5), 1)), r, 5, 3, 1, 1.0, 1.0) == 0
