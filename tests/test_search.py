"""Mapping search against exhaustive search, templates and bounds; accelerator search determinism and resume."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hwmodel as hw
from hwmodel.accel_search import ACCEL_GENES, AcceleratorSearch, Budget, decode_accelerator, search_accelerator
from hwmodel.report import best_template
from hwmodel.search import search_mapping

SMALL = hw.Accelerator(name="small", array=(2, 2), connectivity=(("C", "K"), ("P", "Q")), l1_words=24,
                       l2_bytes=400, noc_bandwidth=2, dram_bandwidth=1)


@pytest.mark.parametrize("objective", ["edp", "latency", "energy"])
@pytest.mark.parametrize("layer", [
    hw.Layer(K=4, C=3, P=4, Q=2, R=3, name="conv"),
    hw.Layer(K=1, C=1, G=4, P=3, Q=3, R=2, S=2, name="dw"),
])
def test_es_within_5pct_of_exhaustive(layer, objective):
    exact = search_mapping(layer, SMALL, objective, method="exhaustive")
    for seed in range(2):
        found = search_mapping(layer, SMALL, objective, budget=3000, seed=seed, include_templates=False)
        assert found.fitness <= 1.05 * exact.fitness
        assert found.fitness >= exact.fitness * (1 - 1e-12) or found.source != "es"


def test_es_beats_random_search_at_equal_budget():
    layer = hw.Layer(K=64, C=64, P=28, Q=28, R=3, S=3)
    accel = hw.PRESETS["nvdla-256"]
    es = [search_mapping(layer, accel, budget=1000, seed=s, include_templates=False, polish_budget=0).fitness for s in range(3)]
    rnd = [search_mapping(layer, accel, budget=1000, seed=s, method="random", include_templates=False,
                          polish_budget=0).fitness for s in range(3)]
    assert np.exp(np.mean(np.log(es))) < np.exp(np.mean(np.log(rnd)))


@st.composite
def conv_layers(draw):
    k = draw(st.sampled_from([1, 8, 24, 64, 96]))
    c = draw(st.sampled_from([1, 3, 16, 48]))
    g = 1 if k > 1 or c > 1 else draw(st.sampled_from([8, 32, 72]))
    p = draw(st.sampled_from([1, 7, 14, 28]))
    r = draw(st.sampled_from([1, 3, 5]))
    return hw.Layer(K=k, C=c, G=g, P=p, Q=p, R=min(r, p + 2), S=min(r, p + 2), stride=draw(st.sampled_from([1, 2])))


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(layer=conv_layers(), preset=st.sampled_from(sorted(hw.PRESETS)), objective=st.sampled_from(["edp", "latency", "energy"]))
def test_search_never_worse_than_templates_nor_bound(layer, preset, objective):
    accel = hw.PRESETS[preset]
    result = search_mapping(layer, accel, objective, budget=300, seed=1)
    _, _, tpl = best_template(layer, accel, objective=objective)
    assert result.fitness <= hw.report.objective_value(tpl, objective)
    again = hw.evaluate(layer, accel, result.mapping)  # the reported cost is the model's
    assert (again.cycles, again.energy_pj) == (result.cost.cycles, result.cost.energy_pj)
    lb = hw.lower_bound(layer, accel)
    assert result.cost.cycles >= lb.cycles and result.cost.energy_pj >= lb.energy_pj * (1 - 1e-9)  # may meet it


def test_search_is_deterministic():
    layer = hw.Layer(K=32, C=16, P=14, Q=14, R=3, S=3)
    a = search_mapping(layer, hw.PRESETS["eyeriss"], budget=500, seed=3)
    b = search_mapping(layer, hw.PRESETS["eyeriss"], budget=500, seed=3)
    assert a.mapping == b.mapping and a.cost.edp == b.cost.edp


def test_bad_search_arguments():
    layer = hw.Layer(K=4, C=4)
    with pytest.raises(ValueError, match="objective"):
        search_mapping(layer, SMALL, objective="power")
    with pytest.raises(ValueError, match="budget"):
        search_mapping(layer, SMALL, budget=0)
    with pytest.raises(ValueError, match="method"):
        search_mapping(layer, SMALL, method="annealing")
    with pytest.raises(ValueError, match="runs"):
        search_mapping(layer, SMALL, runs=0)


def test_es_runs_find_the_spatial_split_of_the_proven_optimum():
    """ResNet-50 layer1.0.conv2 on eyeriss: a single ES run settles in a poor spatial split on some seeds (1.22x the
    optimum, which the exact mapper proves); the default runs, each polished, end within 5% on every seed."""
    layer, accel = hw.Layer(K=64, C=64, P=56, Q=56, R=3, S=3), hw.PRESETS["eyeriss"]
    optimum = search_mapping(layer, accel, method="optimal")
    assert optimum.proven
    ratios = [search_mapping(layer, accel, seed=seed).fitness / optimum.fitness for seed in range(4)]
    assert min(ratios) >= 1 - 1e-9 and max(ratios) <= 1.06 and np.exp(np.mean(np.log(ratios))) <= 1.04, ratios
    single = [search_mapping(layer, accel, seed=seed, runs=1).fitness / optimum.fitness for seed in range(4)]
    assert max(single) > max(ratios), single  # what the runs are for


@settings(max_examples=50, deadline=None)
@given(genes=st.lists(st.floats(0, 1), min_size=ACCEL_GENES, max_size=ACCEL_GENES),
       preset=st.sampled_from(sorted(hw.PRESETS)))
def test_decoded_accelerators_respect_budget(genes, preset):
    budget = Budget.from_preset(preset)
    acc = decode_accelerator(np.array(genes), budget)
    assert acc.num_pes <= budget.num_pes
    assert acc.onchip_bytes <= budget.onchip_bytes + 1
    assert 1 <= len(acc.array) <= 3 and all(1 <= len(c) <= 3 for c in acc.connectivity)
    assert (acc.noc_bandwidth, acc.dram_bandwidth) == (budget.noc_bandwidth, budget.dram_bandwidth)
    fixed = decode_accelerator(np.array(genes), budget, connectivity=hw.PRESETS[preset].connectivity)
    assert fixed.connectivity == hw.PRESETS[preset].connectivity


WORK = {"tiny": [hw.Layer(K=16, C=8, P=8, Q=8, R=3, S=3, name="a"), hw.Layer(K=1, C=1, G=16, P=8, Q=8, R=3, S=3, name="b"),
                 hw.Layer(K=10, C=16, name="fc", count=2)]}


def test_accelerator_search_deterministic_and_improves():
    kw = dict(budget=Budget.from_preset("eyeriss"), generations=3, mapping_budget=64, seed=5)
    a = AcceleratorSearch(WORK, **kw)
    b = AcceleratorSearch(WORK, **kw)
    ra, rb = a.run(), b.run()
    assert ra.fitness == rb.fitness and ra.accelerator == rb.accelerator
    best = [h["best"] for h in a.history]
    assert all(x >= y for x, y in zip(best, best[1:]))  # best-so-far never worsens


def test_accelerator_search_resumes_exactly(tmp_path):
    kw = dict(budget=Budget.from_preset("nvdla-256"), generations=3, mapping_budget=64, seed=2)
    full = AcceleratorSearch(WORK, **kw).run()
    ckpt = tmp_path / "search.json"
    first = AcceleratorSearch(WORK, **{**kw, "generations": 1})
    first.run(checkpoint=ckpt)  # "killed" after one generation
    state = json.loads(ckpt.read_text())
    assert state["es"]["generation"] == 1
    resumed = AcceleratorSearch(WORK, **kw).run(checkpoint=ckpt)
    assert resumed.fitness == full.fitness and resumed.accelerator == full.accelerator


def test_search_accelerator_api_and_sizing_only():
    res = search_accelerator(WORK["tiny"], budget="shidiannao", generations=2, mapping_budget=64, sizing_only=True)
    assert res.accelerator.connectivity == hw.PRESETS["shidiannao"].connectivity
    assert math.isfinite(res.fitness)
    with pytest.raises(ValueError, match="budget"):
        search_accelerator(WORK["tiny"], budget="tpu-v9")
