"""One accelerator-search driver: a CMA-ES outer loop around a caller's fitness function.

:class:`SearchDriver` owns the :class:`CMAES` instance, asks a generation (each sample optionally redrawn while
an ``accept`` filter rejects it), hands the clipped genomes to ``fitness_fn(genomes, generation)``, tells the
ES the ranking, keeps the best genome and its result, and appends ``{generation, best, mean}`` history rows.
Everything else (warm starts, scored points, accuracy caches, predictors) stays with the caller:
:class:`hwmodel.accel_search.AcceleratorSearch` (mapping searches, ``hwmodel.cosearch``) and
:class:`naas_train.cosearch.NetworkCoSearch` (subnet evolution per accelerator) are fitness functions plus
their bookkeeping.

A result is anything with a ``fitness`` float (an attribute, or a mapping's ``"fitness"`` key), minimised;
``inf`` marks an infeasible candidate (never best, ranked last, left out of the generation's mean).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from hwmodel.atomic import atomic_write_text

FitnessFn = Callable[[np.ndarray, int], Sequence[Any]]


class CMAES:
    """Minimal CMA-ES (Hansen's tutorial, rank-one + rank-mu updates) over [0, 1]^n with a seeded RNG."""

    def __init__(self, n: int, seed: int, sigma: float = 0.3, popsize: int | None = None) -> None:
        self.n = n
        self.lam = popsize or 4 + int(3 * math.log(n))
        self.mu = self.lam // 2
        w = np.log(self.mu + 0.5) - np.log(np.arange(1, self.mu + 1))
        self.w = w / w.sum()
        self.mueff = 1.0 / (self.w**2).sum()
        self.cc = (4 + self.mueff / n) / (n + 4 + 2 * self.mueff / n)
        self.cs = (self.mueff + 2) / (n + self.mueff + 5)
        self.c1 = 2 / ((n + 1.3) ** 2 + self.mueff)
        self.cmu = min(1 - self.c1, 2 * (self.mueff - 2 + 1 / self.mueff) / ((n + 2) ** 2 + self.mueff))
        self.damps = 1 + 2 * max(0.0, math.sqrt((self.mueff - 1) / (n + 1)) - 1) + self.cs
        self.chin = math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n * n))
        self.rng = np.random.default_rng(seed)
        self.mean = np.full(n, 0.5)
        self.sigma = sigma
        self.C = np.eye(n)
        self.pc = np.zeros(n)
        self.ps = np.zeros(n)
        self.generation = 0

    def ask(self, accept: Callable[[np.ndarray], bool] | None = None, max_tries: int = 20) -> np.ndarray:
        """λ samples, each redrawn (up to ``max_tries``) while ``accept`` rejects it, then clipped to [0, 1]."""
        vals, vecs = np.linalg.eigh(self.C)
        root = vecs * np.sqrt(np.maximum(vals, 1e-20))
        out = np.empty((self.lam, self.n))
        for k in range(self.lam):
            for _ in range(max_tries):
                x = self.mean + self.sigma * root @ self.rng.standard_normal(self.n)
                if accept is None or accept(np.clip(x, 0, 1)):
                    break
            out[k] = x
        return out

    def tell(self, xs: np.ndarray, fitness: np.ndarray) -> None:
        order = np.argsort(fitness, kind="stable")
        sel = xs[order[: self.mu]]
        old = self.mean
        self.mean = self.w @ sel
        vals, vecs = np.linalg.eigh(self.C)
        inv_sqrt = vecs @ np.diag(1 / np.sqrt(np.maximum(vals, 1e-20))) @ vecs.T
        y = (self.mean - old) / self.sigma
        self.ps = (1 - self.cs) * self.ps + math.sqrt(self.cs * (2 - self.cs) * self.mueff) * inv_sqrt @ y
        hsig = np.linalg.norm(self.ps) / math.sqrt(1 - (1 - self.cs) ** (2 * (self.generation + 1))) < (1.4 + 2 / (self.n + 1)) * self.chin
        self.pc = (1 - self.cc) * self.pc + hsig * math.sqrt(self.cc * (2 - self.cc) * self.mueff) * y
        ys = (sel - old) / self.sigma
        self.C = (
            (1 - self.c1 - self.cmu) * self.C
            + self.c1 * (np.outer(self.pc, self.pc) + (1 - hsig) * self.cc * (2 - self.cc) * self.C)
            + self.cmu * (ys.T * self.w) @ ys
        )
        self.C = (self.C + self.C.T) / 2
        self.sigma *= math.exp((self.cs / self.damps) * (np.linalg.norm(self.ps) / self.chin - 1))
        self.sigma = float(min(self.sigma, 1.0))
        self.generation += 1

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "sigma": self.sigma, "C": self.C.tolist(), "pc": self.pc.tolist(),
                "ps": self.ps.tolist(), "generation": self.generation, "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean = np.array(state["mean"])
        self.sigma = float(state["sigma"])
        self.C = np.array(state["C"])
        self.pc = np.array(state["pc"])
        self.ps = np.array(state["ps"])
        self.generation = int(state["generation"])
        self.rng.bit_generator.state = state["rng"]


def result_fitness(result: Any) -> float:
    """A result's ``fitness``: its attribute, or its ``"fitness"`` key."""
    return float(result["fitness"] if isinstance(result, dict) else result.fitness)


class SearchDriver:
    """The CMA-ES outer loop of an accelerator search around ``fitness_fn``, resumable per generation.

    Args:
        n_genes: genome length (genes are floats in [0, 1]).
        fitness_fn: ``(genomes, generation) -> results``: one result per row of ``genomes`` (the ES samples
            clipped to [0, 1]), each carrying a ``fitness`` (lower is better, ``inf`` infeasible);
            ``generation`` is the number of generations completed before this one (for per-candidate seeds).
        seed: the ES's RNG seed; ``popsize``: λ (default ``4 + 3 ln n``); ``sigma``: initial step size.
        accept: optional filter on a clipped sample; a rejected sample is redrawn (up to 20 tries).
        tell_clipped: tell the ES the clipped samples rather than the raw ones.
        on_best: ``(genes, result)`` called when a generation improves the best (e.g. to take its warm starts).
        encode_result / decode_result: the best result to / from JSON-able values, for ``state_dict``
            (default: stored as is).

    Attributes: ``es`` (the :class:`CMAES`), ``best`` (best feasible result or ``None``), ``best_genes`` (its
    clipped genome; ``None`` when a loaded state did not keep it), ``history`` (one row per generation).
    """

    def __init__(self, n_genes: int, fitness_fn: FitnessFn, seed: int = 0, popsize: int | None = None,
                 sigma: float = 0.3, accept: Callable[[np.ndarray], bool] | None = None, tell_clipped: bool = False,
                 on_best: Callable[[np.ndarray, Any], None] | None = None,
                 encode_result: Callable[[Any], Any] | None = None, decode_result: Callable[[Any], Any] | None = None,
                 history: list[dict[str, float]] | None = None) -> None:
        self.es = CMAES(n_genes, seed, sigma=sigma, popsize=popsize)
        self.fitness_fn, self.accept, self.tell_clipped = fitness_fn, accept, tell_clipped
        self.on_best, self.encode_result, self.decode_result = on_best, encode_result, decode_result
        self.best: Any = None
        self.best_genes: np.ndarray | None = None
        self.history: list[dict[str, float]] = history if history is not None else []

    @property
    def generation(self) -> int:
        return self.es.generation

    @property
    def best_fitness(self) -> float:
        return math.inf if self.best is None else result_fitness(self.best)

    def step(self) -> list[Any]:
        """Run one generation; returns its results (in sample order)."""
        xs = self.es.ask(self.accept)
        genomes = np.clip(xs, 0, 1)
        results = list(self.fitness_fn(genomes, self.es.generation))
        if len(results) != len(xs):
            raise ValueError(f"fitness_fn returned {len(results)} results for {len(xs)} genomes")
        fit = np.array([result_fitness(r) for r in results], dtype=np.float64)
        finite = np.isfinite(fit)
        self.es.tell(genomes if self.tell_clipped else xs, np.where(finite, fit, 1e300))  # only the ranking counts
        i = int(np.argmin(fit))
        if np.isfinite(fit[i]) and (self.best is None or fit[i] < self.best_fitness):
            self.best, self.best_genes = results[i], genomes[i].copy()
            if self.on_best is not None:
                self.on_best(self.best_genes, self.best)
        self.history.append({"generation": self.es.generation, "best": self.best_fitness,
                             "mean": float(np.mean(fit[finite])) if finite.any() else math.inf})
        return results

    def run(self, generations: int, checkpoint: str | os.PathLike | None = None,
            progress: Callable[[int, int, float], None] | None = None,
            save_state: Callable[[], Any] | None = None, load_state: Callable[[Any], None] | None = None) -> Any:
        """Step until ``generations`` are done; returns the best result (``None`` if none was feasible).

        ``checkpoint``: a JSON file loaded first when it exists (``load_state``, default :meth:`load_state_dict`)
        and rewritten atomically after every generation (``save_state``, default :meth:`state_dict`; a caller
        passes its own to keep its bookkeeping too). ``progress(generation, generations, best fitness)`` is
        called after every generation (after the checkpoint is written)."""
        if checkpoint is not None and Path(checkpoint).exists():
            (load_state or self.load_state_dict)(json.loads(Path(checkpoint).read_text()))
        while self.es.generation < generations:
            self.step()
            if checkpoint is not None:
                atomic_write_text(checkpoint, json.dumps((save_state or self.state_dict)()))
            if progress is not None:
                progress(self.es.generation, generations, self.best_fitness)
        return self.best

    def state_dict(self) -> dict[str, Any]:
        """``{"es", "history", "best", "best_genes"}``: the driver's part of a search state, JSON-able."""
        best = None if self.best is None else (self.encode_result or (lambda r: r))(self.best)
        return {"es": self.es.state_dict(), "history": self.history, "best": best,
                "best_genes": None if self.best_genes is None else self.best_genes.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output (``best_genes`` may be absent). ``history`` is refilled in place,
        so a caller holding the list sees the loaded rows."""
        self.es.load_state_dict(state["es"])
        self.history[:] = list(state["history"])
        best = state.get("best")
        self.best = None if best is None else (self.decode_result or (lambda r: r))(best)
        genes = state.get("best_genes")
        self.best_genes = None if genes is None else np.array(genes)
