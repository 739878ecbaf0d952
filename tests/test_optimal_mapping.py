"""``search_mapping(method="optimal")``: the proven optimum of the encoded space, against plain enumeration
without pruning; never beaten by the ES; with a time limit, a certified bound below the result."""

from __future__ import annotations

import numpy as np
import pytest

import hwmodel as hw
from hwmodel.costmodel import evaluate_batch
from hwmodel.objectives import get_objective
from hwmodel.search import enumerate_mappings, search_mapping

SMALL = hw.Accelerator(name="small", array=(2, 2), connectivity=(("C", "K"), ("P", "Q")), l1_words=24,
                       l2_bytes=400, noc_bandwidth=2, dram_bandwidth=1)
LAYERS = [
    hw.Layer(K=4, C=3, P=4, Q=2, R=3, name="conv"),
    hw.Layer(K=1, C=1, G=4, P=3, Q=3, R=2, S=2, name="dw"),
    hw.Layer(K=3, C=2, P=3, Q=2, R=2, stride=2, name="strided"),
]


def _brute_force(layer, accel, objective):
    """Every mapping of the unpruned space evaluated; the minimum of the objective over the valid ones."""
    col = get_objective(objective).family_column
    best = np.inf
    n = 0
    for t, s, o in enumerate_mappings(layer, accel, prune=False):
        codes, metrics, _ = evaluate_batch(layer, accel, t, s, o, parallel=False)
        n += len(t)
        if (codes == 0).any():
            best = min(best, float(metrics[codes == 0, col].min()))
    return best, n


@pytest.mark.parametrize("objective", ["edp", "latency", "energy"])
@pytest.mark.parametrize("layer", LAYERS, ids=[l.name for l in LAYERS])
def test_optimal_equals_brute_force_and_beats_es(layer, objective):
    brute, n_all = _brute_force(layer, SMALL, objective)
    opt = search_mapping(layer, SMALL, objective, method="optimal")
    assert opt.proven and opt.gap == 1.0
    assert opt.fitness == pytest.approx(brute, rel=1e-12)
    assert opt.evaluations < n_all  # capacity pruning skipped invalid splits before their orders
    for seed in range(3):
        es = search_mapping(layer, SMALL, objective, budget=1500, seed=seed)
        assert es.fitness >= opt.fitness * (1 - 1e-12)


def test_time_limit_returns_best_so_far_with_a_certified_bound():
    layer = hw.Layer(K=64, C=64, P=56, Q=56, R=3, S=3)
    accel = hw.PRESETS["eyeriss"]
    res = search_mapping(layer, accel, method="optimal", time_limit=0.5)
    assert res.proven is False and res.cost.valid
    # the least bound of the spatial splits left: at least the mapping-independent bound, at most the result
    assert hw.lower_bound(layer, accel).edp <= res.certified_bound <= res.fitness
    assert res.gap >= 1.0
    es = search_mapping(layer, accel, budget=2000, seed=0)
    assert res.fitness <= es.fitness  # the ES result is the incumbent: cut short, never worse than it


@pytest.mark.parametrize("preset", ["nvdla-256", "edgetpu"])
def test_proves_the_optimum_of_a_resnet50_layer(preset):
    """ResNet-50 layer1.0.conv1 (1x1, 64 -> 64, 56x56): the bounds make the whole space provable in seconds
    (BENCHMARKS.md: 1.2 s and 2.2 s); the proof is the optimum, and no ES seed beats it."""
    layer, accel = hw.Layer(K=64, C=64, P=56, Q=56), hw.PRESETS[preset]
    opt = search_mapping(layer, accel, method="optimal", time_limit=120)
    assert opt.proven and opt.certified_bound == opt.fitness and opt.tilings_skipped > 0
    assert opt.fitness >= hw.lower_bound(layer, accel).edp
    for seed in range(2):
        assert search_mapping(layer, accel, budget=500, seed=seed).fitness >= opt.fitness * (1 - 1e-12)


@pytest.mark.parametrize("time_limit", [0.0, 0.05, 0.1, 0.2, 0.4])
def test_certified_bound_of_a_cut_search_never_exceeds_the_optimum(time_limit):
    """Cut anywhere (before the walk, inside a spatial split, between batches), the certified bound stays at or
    below the brute-force optimum and the result at or above it."""
    layer = LAYERS[0]
    brute, _ = _brute_force(layer, SMALL, "edp")
    res = search_mapping(layer, SMALL, "edp", method="optimal", time_limit=time_limit)
    assert res.certified_bound <= brute * (1 + 1e-12) and res.fitness >= brute * (1 - 1e-12)
    assert not res.proven or res.certified_bound == res.fitness


@pytest.mark.parametrize("layer", LAYERS[:2], ids=[l.name for l in LAYERS[:2]])
def test_the_walk_cut_at_any_bound_check_certifies_what_it_has_not_yielded(layer):
    """The walk stopped at its n-th bound check (every check after rejects all, as a time limit does):
    ``Frontier.least()`` at that moment is at most the best mapping of every tiling it had not yet yielded (with no
    incumbent it would have yielded every tiling that fits)."""
    from hwmodel.exact_mapper import Frontier, bounded_tilings
    from hwmodel.search import tiling_space
    from hwmodel.tiling_bound import TilingBound

    col = get_objective("edp").family_column
    best_of: dict[bytes, float] = {}  # per tiling, the least EDP over its valid orders
    for t, s, o in enumerate_mappings(layer, SMALL, prune=False):
        codes, metrics, _ = evaluate_batch(layer, SMALL, t, s, o, parallel=False)
        for i in np.flatnonzero(codes == 0):
            key = t[i].tobytes() + s[i].tobytes()
            best_of[key] = min(best_of.get(key, np.inf), float(metrics[i, col]))
    fits, space = tiling_space(layer, SMALL, prune=True)
    bound = TilingBound(layer, SMALL)
    for n in [*range(1, 40), *range(40, 400, 17)]:
        frontier, calls, cut = Frontier(), [0], [np.inf]

        def hopeless(cycles: np.ndarray, energy: np.ndarray) -> np.ndarray:
            calls[0] += 1
            if calls[0] == n:
                cut[0] = frontier.least()
            return np.full(len(cycles), calls[0] >= n)

        yielded = {leaf.temporal.tobytes() + leaf.spatial.tobytes()
                   for leaf in bounded_tilings(space, fits, bound, lambda c, e: c * e, hopeless, frontier)}
        rest = [v for key, v in best_of.items() if key not in yielded]
        if calls[0] >= n and rest:
            assert cut[0] <= min(rest) * (1 + 1e-12), n
