"""Accelerator search: NAAS's outer loop, a CMA-ES over accelerator genomes with mapping searches inside.

Genome (floats in [0, 1], :data:`ACCEL_GENES` of them), decoded within a :class:`Budget` (PEs, on-chip SRAM,
bandwidths and word widths of a preset):

* ``[0]`` number of array axes (1-3); ``[1:4]`` how the PEs are shared among the axes (log scale);
  ``[4]`` fraction of the PE budget used (1/4 to all);
* ``[5:32]`` connectivity, NAAS's importance encoding: per axis, 8 importances (one per dim) and a count gene;
  the ``k`` most important dims (k = 1-3) are the dims that axis may unroll;
* ``[32]`` fraction of the SRAM budget used (1/4 to all), ``[33]`` the share of it that goes to the L1s.

Fitness = geomean over the workloads of each network's total objective, with every distinct layer shape
mapped by :func:`hwmodel.search.search_mapping` (warm-started from the parent design's best genomes).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np

from hwmodel.accelerator import Accelerator
from hwmodel.layer import DIMS, Layer
from hwmodel.mapping import Mapping
from hwmodel.objectives import Objective, get_objective, objective_value
from hwmodel.presets import PRESETS
from hwmodel.search import MappingResult, search_mapping
from hwmodel.search_driver import CMAES, SearchDriver  # noqa: F401  (CMAES: re-exported)

ACCEL_GENES = 34
MIN_L1_WORDS = 8  # one weight, input and partial sum, double-buffered, fit


@dataclass(frozen=True)
class Budget:
    """Resources a searched design may use (taken from a preset)."""

    name: str
    num_pes: int
    onchip_bytes: float
    noc_bandwidth: float
    dram_bandwidth: float
    word_bits: int = 16
    psum_bits: int = 32
    energy_table: str = "accelergy45"

    @classmethod
    def from_preset(cls, accel: "str | Accelerator") -> "Budget":
        if isinstance(accel, str):
            if accel not in PRESETS:
                raise ValueError(f"unknown budget preset {accel!r}; choose one of {', '.join(sorted(PRESETS))}")
            accel = PRESETS[accel]
        return cls(accel.name, accel.num_pes, accel.onchip_bytes, accel.noc_bandwidth, accel.dram_bandwidth,
                   accel.word_bits, accel.psum_bits, accel.energy_table)


def _axis_sizes(total: int, n_axes: int, shares: np.ndarray) -> tuple[int, ...]:
    """Split ``total`` PEs over ``n_axes`` axes with log-scale ``shares``; the product never exceeds ``total``."""
    w = shares[:n_axes] + 0.05
    w = w / w.sum()
    sizes = []
    left = float(total)
    for a in range(n_axes - 1):
        frac = w[a] / w[a:].sum()
        s = max(1, int(round(left ** frac)))
        sizes.append(s)
        left = left / s
    sizes.append(max(1, int(total // math.prod(sizes))))
    return tuple(sizes)


def decode_accelerator(
    genes: np.ndarray, budget: Budget, connectivity: tuple[tuple[str, ...], ...] | None = None, name: str = "naas"
) -> Accelerator:
    """The accelerator a genome encodes within ``budget``. With ``connectivity`` fixed (sizing-only search),
    the axis count and connectivity genes are ignored."""
    g = np.clip(np.asarray(genes, dtype=np.float64), 0.0, 1.0)
    if connectivity is None:
        n_axes = min(3, 1 + int(g[0] * 3))
    else:
        n_axes = len(connectivity)
    total = max(1, int(budget.num_pes * (0.25 + 0.75 * g[4])))
    array = _axis_sizes(total, n_axes, g[1:4])
    if connectivity is None:
        conn = []
        for a in range(n_axes):
            imp = g[5 + 9 * a: 13 + 9 * a]
            k = 1 + min(2, int(g[13 + 9 * a] * 3))
            top = np.argsort(-imp, kind="stable")[:k]
            conn.append(tuple(DIMS[d] for d in sorted(top)))
        connectivity = tuple(conn)
    word_bytes = budget.word_bits / 8
    sram = budget.onchip_bytes * (0.25 + 0.75 * g[32])
    l1_share = 0.02 + 0.6 * g[33]
    n_pes = math.prod(array)
    l1_words = max(MIN_L1_WORDS, int(sram * l1_share / (n_pes * word_bytes)))
    l2_bytes = int(sram - n_pes * l1_words * word_bytes)
    if l2_bytes < 64:
        l1_words = max(MIN_L1_WORDS, int((sram - 64) / (n_pes * word_bytes)))
        l2_bytes = int(sram - n_pes * l1_words * word_bytes)
    return Accelerator(
        name=name, array=array, connectivity=connectivity, l1_words=l1_words, l2_bytes=max(1, l2_bytes),
        noc_bandwidth=budget.noc_bandwidth, dram_bandwidth=budget.dram_bandwidth, word_bits=budget.word_bits,
        psum_bits=budget.psum_bits, energy_table=budget.energy_table,
    )


def unique_layers(workloads: dict[str, list[Layer]]) -> tuple[list[Layer], dict[str, list[tuple[int, int]]]]:
    """Distinct layer shapes across networks, and per network ``(shape index, count)`` pairs."""
    shapes: dict[tuple, int] = {}
    layers: list[Layer] = []
    uses: dict[str, list[tuple[int, int]]] = {}
    for net, net_layers in workloads.items():
        uses[net] = []
        for layer in net_layers:
            key = layer.shape_key
            if key not in shapes:
                shapes[key] = len(layers)
                layers.append(layer)
            uses[net].append((shapes[key], layer.count))
    return layers, uses


@dataclass
class DesignResult:
    """One accelerator with its per-layer mappings and per-network totals."""

    accelerator: Accelerator
    fitness: float
    networks: dict[str, dict[str, float]]
    mappings: list[Mapping]
    genes: list[np.ndarray | None]

    def summary(self) -> dict[str, Any]:
        nets = list(self.networks.values())
        gm = lambda k: float(np.exp(np.mean([np.log(n[k]) for n in nets])))  # noqa: E731
        return {"cycles": gm("cycles"), "energy_pj": gm("energy_pj"), "edp": gm("edp"),
                "accelerator": self.accelerator.to_dict()}


def map_layers(
    layers: list[Layer],
    accel: Accelerator,
    objective: Objective = "edp",
    mapping_budget: int = 400,
    seed: int = 0,
    warm: list[np.ndarray | None] | None = None,
    include_templates: bool = False,
    polish: bool = False,
) -> Iterator[MappingResult]:
    """Each layer's mapping search on ``accel`` in turn (layer ``i``: seed ``seed + i``, warm start ``warm[i]``,
    local polish of ``mapping_budget // 2`` evaluations with ``polish``); lazily, so a caller can act on each
    result before the next search. Raises ``ValueError`` (from :func:`search_mapping`) when a layer cannot map."""
    for i, layer in enumerate(layers):
        ws = None if warm is None or warm[i] is None else warm[i][None]
        yield search_mapping(layer, accel, objective=objective, budget=mapping_budget, seed=seed + i, warm_start=ws,
                             include_templates=include_templates, polish_budget=mapping_budget // 2 if polish else 0)


def evaluate_design(
    accel: Accelerator,
    layers: list[Layer],
    uses: dict[str, list[tuple[int, int]]],
    objective: Objective = "edp",
    mapping_budget: int = 400,
    seed: int = 0,
    warm: list[np.ndarray | None] | None = None,
    include_templates: bool = False,
    polish: bool = False,
) -> DesignResult:
    """Map every distinct layer on ``accel`` and total each network (``inf`` fitness if a layer cannot map).

    Inside the accelerator search the mapping searches skip templates and local polish (speed); final
    figures use both (``include_templates=True, polish=True``)."""
    try:
        found = list(map_layers(layers, accel, objective, mapping_budget, seed, warm, include_templates, polish))
    except ValueError:
        return DesignResult(accel, math.inf, {}, [], [])
    mappings: list[Mapping] = [r.mapping for r in found]
    genes: list[np.ndarray | None] = [r.genes for r in found]
    per_layer = [(r.cost.cycles, r.cost.energy_pj) for r in found]
    networks, fitness = _network_totals(per_layer, uses, objective)
    if include_templates:
        # per-layer optima need not give the best network total (a product of sums): the all-templates choice
        # that `naas-hw evaluate` makes by default competes as a whole, so final figures never lose to it
        from hwmodel.report import best_template

        try:
            chosen = [best_template(layer, accel, objective=objective) for layer in layers]
        except ValueError:
            chosen = []
        if chosen:
            t_layer = [(c.cycles, c.energy_pj) for _, _, c in chosen]
            t_networks, t_fitness = _network_totals(t_layer, uses, objective)
            if t_fitness < fitness:
                mappings = [m for _, m, _ in chosen]
                genes = [None] * len(layers)
                networks, fitness = t_networks, t_fitness
    return DesignResult(accel, fitness, networks, mappings, genes)


def _network_totals(per_layer: list[tuple[float, float]], uses: dict[str, list[tuple[int, int]]],
                    objective: Objective) -> tuple[dict[str, dict[str, float]], float]:
    """Per-network cycles / energy / EDP / objective from per-layer ``(cycles, energy)``, and their geomean."""
    networks = {}
    for net, pairs in uses.items():
        cyc = sum(per_layer[i][0] * n for i, n in pairs)
        en = sum(per_layer[i][1] * n for i, n in pairs)
        networks[net] = {"cycles": cyc, "energy_pj": en, "edp": cyc * en, "objective": objective_value(objective, cyc, en)}
    return networks, float(np.exp(np.mean([np.log(v["objective"]) for v in networks.values()])))


@dataclass
class AcceleratorSearch:
    """The NAAS outer loop, resumable: ``state_dict`` / ``load_state_dict``, and an optional checkpoint file
    rewritten (atomically) after every generation. The loop is a :class:`hwmodel.search_driver.SearchDriver`
    (``driver``); this class is its fitness function (decode, map every layer) plus the mapping warm starts."""

    workloads: dict[str, list[Layer]]
    budget: Budget
    objective: Objective = "edp"
    seed: int = 0
    generations: int = 20
    popsize: int | None = None
    mapping_budget: int = 400
    connectivity: tuple[tuple[str, ...], ...] | None = None  # fixed for sizing-only search
    history: list[dict[str, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        get_objective(self.objective)
        self.layers, self.uses = unique_layers(self.workloads)
        self.driver = SearchDriver(ACCEL_GENES, self._evaluate, self.seed, popsize=self.popsize, accept=self._accept,
                                   on_best=self._take_warm, encode_result=_design_to_dict, decode_result=_design_from_dict, history=self.history)
        self.es = self.driver.es
        self.warm: list[np.ndarray | None] = [None] * len(self.layers)

    @property
    def best(self) -> DesignResult | None:
        return self.driver.best

    @property
    def best_genes(self) -> np.ndarray | None:
        return self.driver.best_genes

    def _decode(self, x: np.ndarray) -> Accelerator:
        return decode_accelerator(x, self.budget, self.connectivity,
                                  name=f"naas-{self.budget.name}" if self.connectivity is None else f"sized-{self.budget.name}")

    def _accept(self, x: np.ndarray) -> bool:
        acc = self._decode(x)
        return acc.l2_bytes >= 64 and acc.num_pes * acc.l1_words * acc.word_bytes + acc.l2_bytes <= self.budget.onchip_bytes + 1

    def _evaluate(self, genomes: np.ndarray, generation: int) -> list[DesignResult]:
        """The fitness function: every genome's design, its layers mapped (warm-started from the best so far)."""
        return [evaluate_design(self._decode(x), self.layers, self.uses, self.objective, self.mapping_budget,
                                seed=self.seed * 7919 + generation * 131 + k, warm=self.warm)
                for k, x in enumerate(genomes)]

    def _take_warm(self, genes: np.ndarray, best: DesignResult) -> None:
        self.warm = [g if g is not None else w for g, w in zip(best.genes, self.warm)]

    def step(self) -> DesignResult:
        """Run one generation; returns the best design so far."""
        self.driver.step()
        return self.best

    def run(self, checkpoint: str | os.PathLike | None = None, progress: Callable[[int, int, float], None] | None = None) -> DesignResult:
        """Run (or resume, when ``checkpoint`` exists) to ``generations``; returns the best design."""
        self.driver.run(self.generations, checkpoint, progress, save_state=self.state_dict, load_state=self.load_state_dict)
        if self.best is None:
            raise ValueError(f"no accelerator within budget {self.budget.name} could map every layer")
        return self.best

    def state_dict(self) -> dict[str, Any]:
        d = self.driver.state_dict()
        return {
            "es": d["es"],
            "best": None if d["best"] is None else {**d["best"], "design_genes": d["best_genes"]},
            "warm": [None if w is None else w.tolist() for w in self.warm],
            "history": d["history"],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        best = state["best"]
        self.driver.load_state_dict({"es": state["es"], "history": state["history"], "best": best,
                                     "best_genes": None if best is None else best["design_genes"]})
        self.warm = [None if w is None else np.array(w) for w in state["warm"]]


def _design_to_dict(r: DesignResult) -> dict[str, Any]:
    return {"accelerator": r.accelerator.to_dict(), "fitness": r.fitness, "networks": r.networks,
            "mappings": [m.to_dict() for m in r.mappings], "genes": [None if g is None else g.tolist() for g in r.genes]}


def _design_from_dict(d: dict[str, Any]) -> DesignResult:
    return DesignResult(Accelerator.from_dict(d["accelerator"]), float(d["fitness"]), d["networks"],
                        [Mapping.from_dict(m) for m in d["mappings"]], [None if g is None else np.array(g) for g in d["genes"]])


def search_accelerator(
    workloads: "dict[str, list[Layer]] | list[Layer]",
    budget: "str | Accelerator | Budget" = "eyeriss",
    objective: Objective = "edp",
    seed: int = 0,
    generations: int = 20,
    mapping_budget: int = 400,
    checkpoint: str | os.PathLike | None = None,
    sizing_only: bool = False,
) -> DesignResult:
    """NAAS accelerator + mapping co-search for fixed networks within a budget preset's resources."""
    if isinstance(workloads, list):
        workloads = {"network": workloads}
    if not isinstance(budget, Budget):
        preset = budget if isinstance(budget, Accelerator) else PRESETS.get(budget)
        b = Budget.from_preset(budget)
    else:
        preset, b = None, budget
    conn = None
    if sizing_only:
        if preset is None:
            raise ValueError("sizing_only search needs a preset budget (its connectivity is kept)")
        conn = preset.connectivity
    search = AcceleratorSearch(workloads, b, objective, seed, generations, mapping_budget=mapping_budget, connectivity=conn)
    return search.run(checkpoint)
