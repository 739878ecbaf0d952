"""Network-in-the-loop co-search: accuracy x accelerator x mapping (NAAS, Lin et al., DAC 2021, Sec. 3.3).

The outer loop is :class:`hwmodel.search_driver.SearchDriver` (CMA-ES) over accelerator genomes decoded within a budget preset
(the preset itself is a candidate of the first generation, so the result is never worse than the budget's own design
with the best subnet found for it);
for every accelerator candidate an OFA-style evolutionary search over subnets (population, parent ratio,
mutation probability, crossover, resolution) finds the best subnet *for that accelerator*, each subnet scored
by its accuracy (measured, or predicted by a :class:`supernet.AccuracyPredictor` trained on measured subnets)
and its cost on the accelerator (``layer_shapes`` -> per-shape mapping search). An accelerator's fitness is
its best subnet's. Plain Python (no Lightning): the callback injects accuracy measurement and a ``map_fn``
that spreads independent evaluations over DDP ranks.

Fitness (minimised) = ``log(objective) - accuracy_weight * accuracy`` plus a large penalty per violated
constraint (minimum accuracy, maximum cycles, maximum EDP), so feasible designs always rank first.
"""

from __future__ import annotations

import json
import math
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from hwmodel.accel_search import ACCEL_GENES, Budget, decode_accelerator, map_layers
from hwmodel.accelerator import Accelerator
from hwmodel.layer import Layer, merge_layers
from hwmodel.mapping import Mapping
from hwmodel.objectives import get_objective, objective_value
from hwmodel.presets import PRESETS
from hwmodel.search_driver import SearchDriver
from supernet.precision_space import MixedConfig, PrecisionSpace, policy_to_dict

SCHEMA_VERSION = 1
MapFn = Callable[[Callable[[Any], Any], Sequence[Any]], list]


def sequential_map(fn: Callable[[Any], Any], items: Sequence[Any]) -> list:
    return [fn(x) for x in items]


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the accuracy predictor on one intra-op thread: its (tiny) matrix products then sum in the same order
    whatever the rank count gives each process, so every rank and every world size ranks subnets alike."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@dataclass
class CoSearchSettings:
    """Knobs of the co-search (all plain values, so they round-trip through YAML recipes and checkpoints)."""

    budget: str = "eyeriss"
    objective: str = "edp"
    accel_generations: int = 4
    accel_popsize: int = 6
    population: int = 16
    generations: int = 4
    parent_ratio: float = 0.25
    mutation_ratio: float = 0.5
    mutate_prob: float = 0.1
    resolutions: tuple[int, ...] | None = None
    deploy_resolution: int | None = None
    min_accuracy: float | None = None
    max_cycles: float | None = None
    max_edp: float | None = None
    accuracy_weight: float = 10.0
    accuracy_source: str = "predictor"
    predictor_samples: int = 40
    predictor_epochs: int = 150
    verify_top_k: int = 8
    mapping_budget: int = 120
    final_mapping_budget: int = 1000
    seed: int = 0
    bits: tuple[int, ...] | None = None
    mac: str | None = None

    def __post_init__(self) -> None:
        if self.budget not in PRESETS:
            raise ValueError(f"cosearch budget {self.budget!r} is not a preset; choose one of {', '.join(sorted(PRESETS))}")
        get_objective(self.objective, what="cosearch objective")
        if self.accuracy_source not in ("measured", "predictor"):
            raise ValueError(f"accuracy_source must be 'measured' or 'predictor', got {self.accuracy_source!r}")
        if not 0 < self.parent_ratio <= 1 or not 0 <= self.mutation_ratio <= 1:
            raise ValueError("parent_ratio must be in (0, 1] and mutation_ratio in [0, 1]")
        if self.verify_top_k < 1:
            raise ValueError(f"verify_top_k must be >= 1, got {self.verify_top_k}")
        if self.population < 2 or self.generations < 0 or self.accel_generations < 1 or self.accel_popsize < 2:
            raise ValueError("population >= 2, generations >= 0, accel_generations >= 1, accel_popsize >= 2 required")
        if self.resolutions is not None:
            self.resolutions = tuple(int(r) for r in self.resolutions)
        if self.bits is not None:
            from supernet.precision_space import check_bits

            self.bits = check_bits(self.bits, "cosearch bits")
        if self.mac is not None:
            from hwmodel.precision import MAC_KINDS

            if self.mac not in MAC_KINDS:
                raise ValueError(f"cosearch mac must be one of {', '.join(MAC_KINDS)}, got {self.mac!r}")


@dataclass
class HardwareCost:
    cycles: float
    energy_pj: float
    macs: int
    mappings: list[tuple[Layer, Mapping]] = field(default_factory=list, repr=False)

    @property
    def edp(self) -> float:
        return self.cycles * self.energy_pj

    def objective(self, name: str) -> float:
        return objective_value(name, self.cycles, self.energy_pj)


def network_cost(layers: list[Layer], accel: Accelerator, objective: str, budget: int, seed: int,
                 warm: dict[tuple, np.ndarray] | None = None, polish: bool = False) -> HardwareCost:
    """Cost of a network (layers merged by shape) on ``accel`` with one mapping search per distinct shape
    (:func:`hwmodel.accel_search.map_layers`; ``warm``, keyed by shape, is updated as each shape maps). Unlike
    :func:`hwmodel.accel_search.evaluate_design` it raises ``ValueError`` when a layer cannot map, keeps the
    per-layer optima with ``polish`` (no all-templates alternative) and counts MACs."""
    cycles = energy = 0.0
    macs = 0
    mappings = []
    merged = merge_layers(layers)
    ws = None if warm is None else [warm.get(layer.shape_key) for layer in merged]  # shapes are distinct
    for layer, r in zip(merged, map_layers(merged, accel, objective, budget, seed, ws, include_templates=polish,
                                           polish=polish)):
        if warm is not None and r.genes is not None:
            warm[layer.shape_key] = r.genes
        cycles += r.cost.cycles * layer.count
        energy += r.cost.energy_pj * layer.count
        macs += layer.macs * layer.count
        mappings.append((layer, r.mapping))
    return HardwareCost(cycles, energy, macs, mappings)


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation (average ranks for ties)."""
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def pareto_front(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Points not dominated in (higher accuracy, lower EDP), sorted by EDP."""
    front = []
    for p in sorted(points, key=lambda p: (p["edp"], -p["accuracy"])):
        if not front or p["accuracy"] > front[-1]["accuracy"]:
            front.append(p)
    return front


class NetworkCoSearch:
    """Accelerator (CMA-ES) x subnet (evolution) x mapping (ES) search, resumable per accelerator generation.

    Args:
        space: a supernet space (``sample``/``mutate``/``crossover``/``max_config``/``encode``/``validate``).
        layer_fn: ``(config, resolution) -> [hwmodel.Layer]`` (the supernet's ``layer_shapes``).
        accuracy_fn: ``[configs] -> [top-1 in [0, 1]]`` measured on validation batches after BN recalibration.
        settings: :class:`CoSearchSettings`.
        map_fn: ``(fn, items) -> [fn(item)]``, e.g. spread over DDP ranks and gathered; results must not
            depend on how items are split (every item carries its own seed).
        config_cls: the space's config class (``from_dict``), for checkpoints.
    """

    def __init__(self, space: Any, layer_fn: Callable[[Any, int], list[Layer]],
                 accuracy_fn: Callable[[list[Any]], list[float]], settings: CoSearchSettings,
                 config_cls: Any, map_fn: MapFn = sequential_map, default_resolution: int = 224) -> None:
        self.space, self.layer_fn, self.accuracy_fn = space, layer_fn, accuracy_fn
        self.settings, self.config_cls, self.map_fn = settings, config_cls, map_fn
        self.resolutions = settings.resolutions or (default_resolution,)
        self.budget = Budget.from_preset(settings.budget)
        self.driver = SearchDriver(ACCEL_GENES, self._evaluate, settings.seed, popsize=settings.accel_popsize,
                                   tell_clipped=True)
        self.es = self.driver.es
        self.history = self.driver.history
        self.accuracy_cache: dict[str, float] = {}
        self.warm: dict[tuple, np.ndarray] = {}
        self.points: list[dict[str, Any]] = []
        self.predictor = None
        self.predictor_data: dict[str, Any] | None = None
        self.skipped: dict[str, str] = {}  # baselines that could not be costed, and why

    # --- accuracy -------------------------------------------------------------------------------------
    @staticmethod
    def key(cfg: Any) -> str:
        return json.dumps(cfg.to_dict(), sort_keys=True)

    def measure(self, cfgs: list[Any], spread: bool = True) -> list[float]:
        """Measured accuracy of each config (cached). ``spread``: the configs are split over the ranks with
        ``map_fn`` (every rank must call this with the same configs, in lockstep); otherwise measured here
        (inside a ``map_fn`` item, where each rank works on its own items)."""
        todo = [c for c in cfgs if self.key(c) not in self.accuracy_cache]
        uniq = list({self.key(c): c for c in todo}.values())
        if uniq:
            accs = self.map_fn(lambda c: self.accuracy_fn([c])[0], uniq) if spread else self.accuracy_fn(uniq)
            for c, acc in zip(uniq, accs):
                self.accuracy_cache[self.key(c)] = float(acc)
        return [self.accuracy_cache[self.key(c)] for c in cfgs]

    def prepare_predictor(self) -> dict[str, float]:
        """Measure sampled subnets and fit the accuracy predictor; returns its held-out rank correlation."""
        s = self.settings
        rng = np.random.default_rng(s.seed + 17)
        cfgs = [self.space.max_config(max(self.resolutions)), self.space.min_config(min(self.resolutions))]
        cfgs += [self.space.sample(rng, resolutions=self.resolutions) for _ in range(max(4, s.predictor_samples) - 2)]
        acc = np.array(self.measure(cfgs))
        X = np.stack([self.space.encode(c) for c in cfgs])
        n_train = max(2, int(0.8 * len(cfgs)))
        self._fit_predictor(X[:n_train], acc[:n_train])
        held = self.predictor.predict(X[n_train:])
        rho = spearman(held, acc[n_train:]) if len(held) > 2 and np.std(acc[n_train:]) > 0 else float("nan")
        self._fit_predictor(X, acc)  # the search uses a predictor trained on every measured subnet
        self.predictor_data = {"configs": [c.to_dict() for c in cfgs], "accuracy": acc.tolist(),
                               "heldout_spearman": rho, "n_train": n_train}
        return {"heldout_spearman": rho, "n_measured": len(cfgs)}

    def _fit_predictor(self, X: np.ndarray, y: np.ndarray) -> None:
        import torch

        from supernet import AccuracyPredictor

        with torch.inference_mode(False), torch.enable_grad(), one_thread():  # may run in a validation loop
            self.predictor = AccuracyPredictor(X.shape[1], hidden_size=128, seed=self.settings.seed)
            self.predictor.fit(X, y, epochs=self.settings.predictor_epochs)

    def accuracy(self, cfgs: list[Any]) -> list[float]:
        """Accuracy the search ranks by; called inside a ``map_fn`` item (measured configs stay on this rank)."""
        if self.settings.accuracy_source == "measured":
            return self.measure(cfgs, spread=False)
        if self.predictor is None:
            self.prepare_predictor()
        X = np.stack([self.space.encode(c) for c in cfgs])
        with one_thread():
            return [float(np.clip(v, 0.0, 1.0)) for v in self.predictor.predict(X)]

    # --- scoring --------------------------------------------------------------------------------------
    def resolution_of(self, cfg: Any) -> int:
        return self.settings.deploy_resolution or int(cfg.r)

    def fitness(self, acc: float, cost: HardwareCost) -> float:
        s = self.settings
        value = math.log(cost.objective(s.objective)) - s.accuracy_weight * acc
        if s.min_accuracy is not None and acc < s.min_accuracy:
            value += 1e6 * (1 + s.min_accuracy - acc)
        if s.max_cycles is not None and cost.cycles > s.max_cycles:
            value += 1e6 * (1 + cost.cycles / s.max_cycles)
        if s.max_edp is not None and cost.edp > s.max_edp:
            value += 1e6 * (1 + cost.edp / s.max_edp)
        return value

    def decode(self, genes: np.ndarray | None) -> Accelerator:
        """The accelerator of a genome within the budget, or the budget's preset for ``None`` (with the settings'
        MAC kind, when given)."""
        if genes is None:
            accel = PRESETS[self.settings.budget]
        else:
            accel = decode_accelerator(np.clip(genes, 0, 1), self.budget, name=f"naas-{self.settings.budget}")
        return accel if self.settings.mac is None else accel.with_(mac=self.settings.mac)

    def _subnet_search(self, item: tuple[np.ndarray, int]) -> dict[str, Any]:
        """Evolve subnets for one accelerator; returns its best subnet and every scored point."""
        genes, seed = item
        return self.evolve(self.space, self.decode(genes), seed)

    def evolve(self, space: Any, accel: Accelerator, seed: int) -> dict[str, Any]:
        """OFA-style evolution over ``space`` (subnets, or subnets x bits, or bits of a frozen subnet) on ``accel``."""
        s = self.settings
        rng = np.random.default_rng(seed)
        warm = dict(self.warm)
        scored: dict[str, dict[str, Any]] = {}

        def score(cfgs: list[Any]) -> None:
            new = [c for c in {self.key(c): c for c in cfgs}.values() if self.key(c) not in scored]
            if not new:
                return
            accs = self.accuracy(new)
            for c, acc in zip(new, accs):
                try:
                    cost = network_cost(self.layer_fn(c, self.resolution_of(c)), accel, s.objective,
                                        s.mapping_budget, seed, warm)
                except ValueError:
                    continue  # a layer cannot map on this accelerator
                scored[self.key(c)] = {"config": c, "accuracy": acc, "cycles": cost.cycles,
                                       "energy_pj": cost.energy_pj, "edp": cost.edp, "fitness": self.fitness(acc, cost)}

        pop = [space.max_config(max(self.resolutions))]
        pop += [space.sample(rng, resolutions=self.resolutions) for _ in range(s.population - 1)]
        score(pop)
        for _ in range(s.generations):
            ranked = sorted((scored[self.key(c)] for c in pop if self.key(c) in scored), key=lambda p: p["fitness"])
            if not ranked:
                break
            parents = [p["config"] for p in ranked[: max(1, int(s.parent_ratio * s.population))]]
            n_mut = int(round(s.mutation_ratio * (s.population - len(parents))))
            children = [space.mutate(parents[rng.integers(len(parents))], rng, s.mutate_prob, self.resolutions)
                        for _ in range(n_mut)]
            while len(parents) + len(children) < s.population:
                a, b = parents[rng.integers(len(parents))], parents[rng.integers(len(parents))]
                children.append(space.crossover(a, b, rng))
            pop = parents + children
            score(pop)
        points = sorted(scored.values(), key=lambda p: p["fitness"])
        return {"accelerator": accel, "points": points, "warm": warm,
                "fitness": points[0]["fitness"] if points else math.inf}

    # --- outer loop -----------------------------------------------------------------------------------
    @property
    def best(self) -> dict[str, Any] | None:
        """The best design so far: its best subnet's scored point (config as a dict) and its accelerator."""
        return self.driver.best

    def _evaluate(self, genomes: np.ndarray, generation: int) -> list[dict[str, Any]]:
        """The driver's fitness function: every accelerator's subnet search (through ``map_fn``), their points,
        warm starts and measured accuracies kept; per accelerator its best point (``{"fitness": inf}`` if none)."""
        items = [(x, self.settings.seed * 100_003 + generation * 1009 + k) for k, x in enumerate(genomes)]
        if generation == 0:  # the budget's own design is a candidate too: the search never ends worse than it
            items.append((None, self.settings.seed * 100_003 + len(genomes)))
        results = self.map_fn(self._subnet_search, items)
        records = []
        for r in results:
            self.warm.update(r["warm"])
            recs = []
            for p in r["points"]:
                if self.settings.accuracy_source == "measured":  # every rank's cache learns every measurement
                    self.accuracy_cache.setdefault(self.key(p["config"]), float(p["accuracy"]))
                recs.append({**{k: v for k, v in p.items() if k != "config"},
                             "config": p["config"].to_dict(), "accelerator": r["accelerator"].to_dict()})
            self.points.extend(recs)
            records.append(dict(recs[0]) if recs else {"fitness": r["fitness"]})
        if generation == 0:
            preset = records.pop()  # not a genome of the ES: it only sets the best to beat
            if math.isfinite(preset["fitness"]) and preset["fitness"] < self.driver.best_fitness:
                self.driver.best, self.driver.best_genes = preset, None
        return records

    def step(self) -> dict[str, Any] | None:
        """One accelerator generation (all candidates' subnet searches through ``map_fn``)."""
        if self.settings.accuracy_source == "predictor" and self.predictor is None:
            self.prepare_predictor()
        self.driver.step()
        return self.best

    def run(self, on_generation: Callable[[int, int, float], None] | None = None) -> dict[str, Any] | None:
        """Step until ``accel_generations`` are done (from where a loaded state left off); ``on_generation``
        (generation, generations, best fitness) after each. Returns the best design (``None``: none mapped)."""
        if not self.done and self.settings.accuracy_source == "predictor" and self.predictor is None:
            self.prepare_predictor()
        return self.driver.run(self.settings.accel_generations, progress=on_generation)

    @property
    def done(self) -> bool:
        return self.es.generation >= self.settings.accel_generations

    def pareto(self) -> list[dict[str, Any]]:
        return pareto_front(self.points)

    # --- final result ---------------------------------------------------------------------------------
    def verified_best(self) -> dict[str, Any]:
        """The best design after measuring the accuracy of the ``verify_top_k`` designs ranked best by predicted
        accuracy and re-scoring them with it, so a predictor error cannot break ``min_accuracy`` (the search
        ranks by measured accuracy already when ``accuracy_source='measured'``)."""
        if self.settings.accuracy_source == "measured":
            return self.best
        top: dict[str, dict[str, Any]] = {}  # distinct (subnet, accelerator) designs, best predicted first
        for p in sorted(self.points, key=lambda p: p["fitness"]):
            top.setdefault(json.dumps([p["config"], p["accelerator"]], sort_keys=True), p)
            if len(top) == self.settings.verify_top_k:
                break
        top = list(top.values())
        measured = self.measure([self.config_cls.from_dict(p["config"]) for p in top])
        rescored = [self.fitness(acc, HardwareCost(p["cycles"], p["energy_pj"], 0)) for p, acc in zip(top, measured)]
        return top[int(np.argmin(rescored))]

    def finalize(self) -> dict[str, Any]:
        """Re-map the chosen design with the final budget, measure its accuracy, and compare with the
        budget's own accelerator running the largest and the chosen subnet."""
        if self.best is None:
            raise ValueError("the co-search found no design that maps every layer; enlarge the budget preset")
        s = self.settings
        chosen = self.verified_best()
        cfg = self.config_cls.from_dict(chosen["config"])
        accel = Accelerator.from_dict(chosen["accelerator"])
        layers = merge_layers(self.layer_fn(cfg, self.resolution_of(cfg)))
        cost = network_cost(layers, accel, s.objective, s.final_mapping_budget, s.seed, dict(self.warm), polish=True)
        acc = self.measure([cfg])[0]
        preset = PRESETS[s.budget]
        largest = self.space.max_config(max(self.resolutions))
        baselines = {}
        for name, c in (("largest_subnet_on_budget", largest), ("chosen_subnet_on_budget", cfg)):
            bc = network_cost(self.layer_fn(c, self.resolution_of(c)), preset, s.objective, s.final_mapping_budget,
                              s.seed, polish=True)
            baselines[name] = {"config": c.to_dict(), "accuracy": self.measure([c])[0], "cycles": bc.cycles,
                               "energy_pj": bc.energy_pj, "edp": bc.edp, "accelerator": preset.to_dict()}
        precision = None
        if isinstance(cfg, MixedConfig):
            active = [layer.name for layer in self.layer_fn(cfg, self.resolution_of(cfg))]
            precision = policy_to_dict({n: cfg.policy[n] for n in active})
            baselines.update(self.precision_baselines(cfg, accel, {"cycles": cost.cycles, "energy_pj": cost.energy_pj,
                                                                   "edp": cost.edp, "accuracy": acc}))
        return {
            "schema_version": SCHEMA_VERSION,
            "subnet": cfg.subnet.to_dict() if isinstance(cfg, MixedConfig) else cfg.to_dict(),
            "precision": precision,
            "accuracy": acc,
            "accuracy_source": s.accuracy_source,
            "constraint_met": s.min_accuracy is None or acc >= s.min_accuracy,
            "accelerator": accel.to_dict(),
            "layers": layers,
            "mappings": cost.mappings,
            "metrics": {"cycles": cost.cycles, "energy_pj": cost.energy_pj, "edp": cost.edp, "macs": cost.macs},
            "baselines": baselines,
            "baselines_skipped": dict(self.skipped),
            "pareto": self.pareto(),
            "history": self.history,
            "predictor": None if self.predictor_data is None else {
                "heldout_spearman": self.predictor_data["heldout_spearman"],
                "n_measured": len(self.predictor_data["configs"])},
            "settings": asdict(s),
        }

    def _final_point(self, cfg: Any, accel: Accelerator) -> dict[str, Any]:
        """A design re-mapped with the final budget, with its measured accuracy."""
        s = self.settings
        cost = network_cost(self.layer_fn(cfg, self.resolution_of(cfg)), accel, s.objective, s.final_mapping_budget,
                            s.seed, polish=True)
        return {"accuracy": self.measure([cfg])[0], "cycles": cost.cycles, "energy_pj": cost.energy_pj,
                "edp": cost.edp, "accelerator": accel.to_dict()}

    def precision_baselines(self, cfg: MixedConfig, accel: Accelerator, chosen: dict[str, float]) -> dict[str, Any]:
        """The chosen subnet at uniform 16 and 8 bits on the chosen accelerator, and a bits-only search (HAQ-style:
        the same evolution over bits alone) for the chosen subnet on the budget's accelerator; each with
        accuracy (measured, quantized), cycles, energy and EDP, and the chosen design's EDP ratio to it (a width the
        accelerator does not run is left out, with the reason in ``self.skipped``)."""
        space = self.space
        out: dict[str, Any] = {}
        for name, bits in (("uniform_int16", 16), ("uniform_int8", 8)):
            try:
                point = self._final_point(space.uniform(cfg.subnet, bits), accel)
            except ValueError as err:  # the accelerator does not run this width
                self.skipped[name] = str(err)
                continue
            out[name] = {**point, "bits": bits, "edp_ratio": point["edp"] / chosen["edp"]}
        preset = PRESETS[self.settings.budget]
        if self.settings.mac is not None:
            preset = preset.with_(mac=self.settings.mac)
        frozen = PrecisionSpace(space.space, space.layer_names, space.config_cls, space.choices, subnet=cfg.subnet)
        found = self.evolve(frozen, preset, self.settings.seed + 7919)
        if found["points"]:
            best = found["points"][0]["config"]
            active = [layer.name for layer in self.layer_fn(best, self.resolution_of(best))]
            point = self._final_point(best, preset)
            out["bits_only"] = {**point, "precision": policy_to_dict({n: best.policy[n] for n in active}),
                                "edp_ratio": point["edp"] / chosen["edp"]}
        else:
            self.skipped["bits_only"] = f"no policy of the chosen subnet maps on {preset.name}"
        return out

    # --- checkpointing --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "es": self.es.state_dict(),
            "accuracy_cache": self.accuracy_cache,
            "warm": [[list(k[:8]), list(k[8]), list(k[9]), list(k[10]), v.tolist()] for k, v in self.warm.items()],
            "points": self.points,
            "history": self.history,
            "best": self.best,
            "predictor_data": self.predictor_data,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.driver.load_state_dict({"es": state["es"], "history": state["history"], "best": state["best"]})
        self.accuracy_cache = dict(state["accuracy_cache"])
        self.warm = {}
        for item in state["warm"]:  # (dims, stride, dilation[, bits]): states written before precision had no bits
            k, st, dl, *rest = item
            bits = tuple(rest[0]) if len(rest) == 2 else (None, None, None)
            self.warm[(*k, tuple(st), tuple(dl), bits)] = np.array(rest[-1])
        self.points = list(state["points"])
        self.predictor_data = state["predictor_data"]
        self.predictor = None
        if self.predictor_data is not None:  # refit deterministically on the same measured subnets
            cfgs = [self.config_cls.from_dict(c) for c in self.predictor_data["configs"]]
            self._fit_predictor(np.stack([self.space.encode(c) for c in cfgs]),
                                np.array(self.predictor_data["accuracy"]))
