"""The exact hierarchy mapper (issue 13 item 1): ``hwmodel.nest_optimal``.

(a) on tiny layers / hierarchies its optimum equals an independent brute force (every factor tuple by
itertools, every loop order of the non-unit dims, every bypass choice; evaluated, minimum taken) and no seed of
the heuristic beats it; (b) exercise 05 is proven and never worse than Timeloop-mapper's published mappings;
(c) with a short time limit on exercise 06: not proven, never worse than the heuristic, and the certified bound
is never beaten (nor is :func:`nest_lower_bound` by random mappings of any fixture); (d) the CLI.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from hwmodel import nestkernel as nk
from hwmodel.hierarchy import Fanout, Hierarchy, StorageLevel
from hwmodel.layer import DIMS, TENSORS, Layer
from hwmodel.nest_optimal import (
    nest_energy_bound,
    nest_lower_bound,
    optimal_nest_mapping,
)
from hwmodel.nest_search import _Space, search_nest_mapping
from hwmodel.nestmodel import NestMapping, evaluate_nest_batch, evaluate_nest_mapping
from hwmodel.timeloop_import import load_timeloop
from tests.hwcli import run, run_json

ROOT = Path(__file__).parent / "fixtures" / "timeloop"
VALUE = {"edp": lambda c: (c.edp, c.energy_pj), "latency": lambda c: (c.cycles, c.energy_pj),
         "energy": lambda c: (c.energy_pj, c.cycles)}
COL = {"edp": (nk.MT_EDP, nk.MT_ENERGY), "latency": (nk.MT_CYCLES, nk.MT_ENERGY),
       "energy": (nk.MT_ENERGY, nk.MT_CYCLES)}


def _load(case: Path, mapping: bool = True):
    arch, prob = min((case / "arch").glob("*.yaml")), min((case / "prob").glob("*.yaml"))
    ert = min((case / "ref-output").glob("*ERT_summary.yaml"))
    return load_timeloop(arch, prob, (case / "mapping.yaml") if mapping else None, ert)


# ---- (a) brute force ------------------------------------------------------------------------------------------
def _tiny_spatial() -> tuple[Layer, Hierarchy]:
    levels = (
        StorageLevel("DRAM", word_bits=16, block_size=2, read_pj=100.0, fill_pj=100.0, update_pj=100.0),
        StorageLevel("Buf", capacity_bits=16 * 12, word_bits=16, read_pj=2.0, fill_pj=2.5, update_pj=3.0,
                     read_bandwidth=2.0, fanout=Fanout((2,), (("K", "P"),))),
    )
    return Layer(K=4, C=1, P=3, R=2), Hierarchy("tiny-spatial", levels, mac_pj=1.0)


def _brute_force(layer: Layer, hier: Hierarchy, imperfect: bool) -> dict[str, tuple[float, float]]:
    """Minimum per objective over every mapping, enumerated here by itertools (no module helper)."""
    n = len(hier.levels)
    sizes = {DIMS[d]: int(layer.dim_array[d]) for d in range(8)}
    live = [d for d in DIMS if sizes[d] > 1]
    slots = {d: [(l, None) for l in range(n)] + [(l, a) for l, lv in enumerate(hier.levels) if lv.fanout
                                               for a, dims in enumerate(lv.fanout.connectivity) if d in dims
                                               and lv.fanout.axes[a] > 1] for d in live}

    def tuples(d):
        size, sl = sizes[d], slots[d]
        caps = [size if a is None else hier.levels[l].fanout.axes[a] for l, a in sl]
        for f in itertools.product(*[range(1, c + 1) for c in caps]):
            p = math.prod(f)
            if p == size or (imperfect and p > size and all(x == 1 or p // x * (x - 1) < size for x in f)):
                yield f

    keepable = [(l, t) for l in range(1, n) for t in range(3) if TENSORS[t] in hier.levels[l].keeps]
    base = []
    for combo in itertools.product(*[list(tuples(d)) for d in live]):
        m = NestMapping.empty(n)
        for d, f in zip(live, combo):
            di = DIMS.index(d)
            for (l, a), x in zip(slots[d], f):
                if a is None:
                    m.temporal[l, di] *= x
                else:
                    m.spatial[l, a, di] *= x
        if (m.spatial.prod(axis=2) > np.array([[*(lv.fanout.axes if lv.fanout else ()), 1, 1, 1][:3]
                                               for lv in hier.levels])).any():
            continue
        base.append(m)
    live_idx = [DIMS.index(d) for d in live]
    rest = [d for d in range(8) if d not in live_idx]
    orders = [list(p) + rest for p in itertools.permutations(live_idx)]
    best = {k: (math.inf, math.inf) for k in COL}
    batch: list[NestMapping] = []

    def flush():
        if not batch:
            return
        codes, metrics, _ = evaluate_nest_batch(layer, hier, batch)
        for i in np.flatnonzero(codes == nk.OK):
            for k, (c, t) in COL.items():
                best[k] = min(best[k], (float(metrics[i, c]), float(metrics[i, t])))
        batch.clear()

    for m in base:
        for per_level in itertools.product(orders, repeat=n):
            for bits in itertools.product((0, 1), repeat=len(keepable)):
                k = np.ones((n, 3), dtype=np.int64)
                for (l, t), b in zip(keepable, bits):
                    k[l, t] = b
                batch.append(NestMapping(m.temporal, m.spatial, np.array(per_level), k))
                if len(batch) >= 4096:
                    flush()
    flush()
    return best


def _tiny_cases():
    yield "01-os", *_load(ROOT / "01-model-conv1d-2level" / "os", mapping=False)[:2]
    yield "tiny-spatial", *_tiny_spatial()[::-1]


@pytest.mark.parametrize("imperfect", [False, True])
@pytest.mark.parametrize("name,hier,layer", list(_tiny_cases()))
def test_exact_equals_brute_force_and_beats_heuristic(name, hier, layer, imperfect) -> None:
    brute = _brute_force(layer, hier, imperfect)
    for objective in ("edp", "latency", "energy"):
        r = optimal_nest_mapping(layer, hier, objective, imperfect=imperfect, incumbent_budget=0)
        assert r.proven and r.gap == 1.0
        again = evaluate_nest_mapping(layer, hier, r.mapping)
        assert again.valid and VALUE[objective](again) == VALUE[objective](r.cost)
        assert VALUE[objective](r.cost)[0] == pytest.approx(brute[objective][0], rel=1e-12), objective
        assert r.certified_bound == r.value
        if imperfect:
            for seed in range(4):
                h = search_nest_mapping(layer, hier, objective, budget=1500, seed=seed)
                assert VALUE[objective](h.cost)[0] >= r.value * (1 - 1e-12), (objective, seed)


# ---- (b) exercise 05 --------------------------------------------------------------------------------------
def test_exercise05_proven_and_never_worse_than_timeloop_mapper() -> None:
    cases = sorted((ROOT / "05-mapper-conv1d+oc-3level").iterdir())
    hier, layer, _ = _load(cases[0])
    refs = {}
    for case in cases:  # the three cases differ only in Timeloop's mapspace constraints
        h2, l2, published = _load(case)
        assert replace(h2, source=hier.source) == hier and l2 == layer
        refs[case.name] = evaluate_nest_mapping(layer, hier, published)
    for objective in ("latency", "edp", "energy"):  # Timeloop's mapper ran [delay, energy]
        r = optimal_nest_mapping(layer, hier, objective)
        assert r.proven and r.gap == 1.0 and r.certified_bound == r.value
        for name, ref in refs.items():
            assert VALUE[objective](r.cost) <= VALUE[objective](ref), (objective, name)
        # the unconstrained exhaustive Timeloop-mapper run ('null') found the same optimum
        assert VALUE[objective](r.cost)[0] == pytest.approx(VALUE[objective](refs["null"])[0], rel=1e-12)


# ---- (c) time limit and the lower bound --------------------------------------------------------------------
def test_time_limit_on_exercise06_is_never_worse_than_the_heuristic_and_the_bound_holds() -> None:
    case = ROOT / "06-mapper-convlayer-eyeriss" / "_"
    hier, layer, published = _load(case)
    r = optimal_nest_mapping(layer, hier, "edp", time_limit=2.0, incumbent_budget=2000)
    h = search_nest_mapping(layer, hier, "edp", budget=2000, seed=0)
    assert not r.proven and r.gap >= 1.0
    assert r.cost.edp <= h.cost.edp
    seen = [r.cost.edp, h.cost.edp, evaluate_nest_mapping(layer, hier, published).edp]
    space = _Space(layer, hier)
    codes, metrics, _ = space.fit_evaluate(*space.random(500, np.random.default_rng(0), bypass=True))
    seen += metrics[codes == nk.OK, nk.MT_EDP].tolist()
    assert min(seen) >= r.certified_bound


def test_time_limited_exact_mapper_is_never_worse_than_timeloop_mapper_on_exercise06() -> None:
    """With a time limit (the default incumbent budget) the result on exercise 06 is no worse in EDP than the
    mapping Timeloop's mapper published, both evaluated in our model."""
    case = ROOT / "06-mapper-convlayer-eyeriss" / "_"
    hier, layer, published = _load(case)
    r = optimal_nest_mapping(layer, hier, "edp", time_limit=0.5)
    assert r.cost.edp <= evaluate_nest_mapping(layer, hier, published).edp
    assert r.certified_bound <= r.cost.edp


def test_time_limit_proven_when_the_lower_bound_is_reached() -> None:
    """Exercise 04: 49152 MACs on 16 PEs: the heuristic reaches 3072 cycles, the bound -- optimal latency."""
    hier, layer, _ = _load(ROOT / "04-model-conv1d+oc-3levelspatial" / "cp", mapping=False)
    r = optimal_nest_mapping(layer, hier, "latency", time_limit=1.0, incumbent_budget=2000)
    assert r.proven and r.cost.cycles == 3072 == r.certified_bound and r.gap == 1.0


@pytest.mark.parametrize("case", sorted(p for p in ROOT.glob("*/*") if p.is_dir()), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_lower_bound_is_never_beaten(case: Path) -> None:
    hier, layer, _ = _load(case, mapping=False)
    lb = nest_lower_bound(layer, hier)
    space = _Space(layer, hier)
    arrays = space.random(400, np.random.default_rng(7), bypass=True)
    codes, metrics, _ = space.fit_evaluate(*arrays)
    ok = codes == nk.OK
    assert ok.any()
    n = len(hier.levels)
    for i in np.flatnonzero(ok):  # the bypass-aware energy bound of each mapping's own bypass choice
        assert metrics[i, nk.MT_ENERGY] >= nest_energy_bound(layer, hier, arrays[3][i, :n]) >= lb.energy_pj * (1 - 1e-9)
    assert (metrics[ok, nk.MT_CYCLES] >= lb.cycles).all()
    assert (metrics[ok, nk.MT_ENERGY] >= lb.energy_pj).all()
    assert (metrics[ok, nk.MT_EDP] >= lb.edp).all()


# ---- (d) CLI ------------------------------------------------------------------------------------------------
def _cli_files(case: Path) -> list[str]:
    arch, prob = min((case / "arch").glob("*.yaml")), min((case / "prob").glob("*.yaml"))
    ert = min((case / "ref-output").glob("*ERT_summary.yaml"))
    return ["evaluate", "--timeloop", str(arch), str(prob), "--ert", str(ert)]


def test_cli_search_optimal_with_timeloop(capsys) -> None:
    case = ROOT / "01-model-conv1d-2level" / "os"
    rep = run_json(capsys, *_cli_files(case), "--search", "optimal", "--objective", "energy")
    entry = rep["layers"][0]
    assert entry["mapping_source"].startswith("optimal (proven")
    assert entry["optimal"]["proven"] and entry["optimal"]["gap"] == 1.0
    assert entry["optimal"]["certified_bound"] == pytest.approx(entry["energy_pj"])
    hier, layer, _ = _load(case, mapping=False)
    assert entry["energy_pj"] == pytest.approx(optimal_nest_mapping(layer, hier, "energy").cost.energy_pj)
    big = ROOT / "06-mapper-convlayer-eyeriss" / "_"
    rep = run_json(capsys, *_cli_files(big), "--search", "optimal", "--time-limit", "0.5")
    entry = rep["layers"][0]
    assert "time limit, gap <=" in entry["mapping_source"] and not entry["optimal"]["proven"]
    assert entry["optimal"]["certified_bound"] <= entry["edp"]


def test_cli_search_optimal_errors(capsys) -> None:
    case = ROOT / "01-model-conv1d-2level" / "os"
    rc, _, err = run(capsys, *_cli_files(case), "--search", "--time-limit", "3")
    assert rc == 2 and "--time-limit applies only with --search optimal" in err
    rc, _, err = run(capsys, *_cli_files(case), "--search", "optimal", "--time-limit", "0")
    assert rc == 2 and "must be > 0 seconds" in err
    rc, _, err = run(capsys, *_cli_files(case), "--search", "optimal", "--mapping",
                     str(min((case / "map").glob("*.yaml"))))
    assert rc == 2 and "not allowed with argument --search" in err
    rc, _, err = run(capsys, *_cli_files(case), "--search", "optimal", "--mapping-budget", "100")
    assert rc == 2 and "--mapping-budget applies to the heuristic mapper" in err
