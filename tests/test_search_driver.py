"""hwmodel.search_driver.SearchDriver: the one CMA-ES outer loop around a fitness function."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

import hwmodel.search_driver as sd
from hwmodel.search_driver import SearchDriver

TARGET = np.linspace(0.2, 0.8, 6)


@dataclass
class Result:
    fitness: float


def sphere(genomes: np.ndarray, generation: int) -> list[dict]:
    assert genomes.min() >= 0 and genomes.max() <= 1
    return [{"fitness": float(((g - TARGET) ** 2).sum()), "generation": generation} for g in genomes]


def make(**kw) -> SearchDriver:
    return SearchDriver(6, kw.pop("fitness_fn", sphere), seed=4, popsize=8, **kw)


def test_sphere_improves_and_history_rows():
    d = make()
    d.run(25)
    assert d.generation == 25 and [h["generation"] for h in d.history] == list(range(1, 26))
    best = [h["best"] for h in d.history]
    assert all(b2 <= b1 for b1, b2 in pairwise(best))
    assert best[-1] < best[0] / 20 and best[-1] == d.best["fitness"] == d.best_fitness
    assert math.isclose(((d.best_genes - TARGET) ** 2).sum(), d.best["fitness"])


def test_resume_from_state_dict_mid_run_is_exact():
    full = make()
    full.run(8)
    half = make()
    half.run(3)
    state = json.loads(json.dumps(half.state_dict()))
    resumed = make()
    resumed.load_state_dict(state)
    resumed.run(8)
    assert resumed.history == full.history
    assert resumed.best == full.best and np.array_equal(resumed.best_genes, full.best_genes)
    assert resumed.es.state_dict() == full.es.state_dict()


def test_checkpoint_is_written_atomically_and_resumed(tmp_path, monkeypatch):
    path = tmp_path / "state.json"
    writes = []
    real = sd.atomic_write_text
    monkeypatch.setattr(sd, "atomic_write_text", lambda p, text: (writes.append(p), real(p, text)))
    seen = []
    d = make()
    d.run(3, checkpoint=path, progress=lambda g, n, f: seen.append((g, n, f)))
    assert writes == [path] * 3 and [p.name for p in tmp_path.iterdir()] == ["state.json"]
    assert json.loads(path.read_text()) == json.loads(json.dumps(d.state_dict()))
    assert seen == [(h["generation"], 3, h["best"]) for h in d.history]
    more = make()
    more.run(5, checkpoint=path)  # resumes after generation 3
    ref = make()
    ref.run(5)
    assert more.history == ref.history and len(writes) == 5


def test_infeasible_candidates_accept_filter_and_hooks():
    def half_infeasible(genomes, generation):
        return [Result(math.inf if g[0] > 0.5 else float(g.sum())) for g in genomes]

    improved = []
    d = make(fitness_fn=half_infeasible, accept=lambda x: x[1] < 0.9, tell_clipped=True,
             on_best=lambda genes, r: improved.append(r.fitness))
    d.run(4)
    assert d.best is not None and d.best_genes[0] <= 0.5 and math.isfinite(d.best_fitness)
    assert improved and improved[-1] == d.best.fitness

    nothing = make(fitness_fn=lambda g, gen: [Result(math.inf)] * len(g))
    assert nothing.run(2) is None and nothing.history[-1] == {"generation": 2, "best": math.inf, "mean": math.inf}
    state = nothing.state_dict()
    assert state["best"] is None and state["best_genes"] is None


def test_encoded_best_round_trips_and_old_states_without_genes_load():
    d = make(fitness_fn=lambda g, gen: [Result(float(x.sum())) for x in g],
             encode_result=lambda r: {"fitness": r.fitness}, decode_result=lambda s: Result(s["fitness"]))
    d.run(2)
    state = d.state_dict()
    assert state["best"] == {"fitness": d.best.fitness}
    other = make(decode_result=lambda s: Result(s["fitness"]))
    del state["best_genes"]
    other.load_state_dict(state)
    assert other.best == d.best and other.best_genes is None and other.history == d.history
