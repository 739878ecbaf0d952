"""Generic search-space machinery: per-position gene choices, sampling, mutation, crossover.

A space lists, for every gene field of its config (e.g. ``ks``, ``e``, ``d``), the allowed values at
each position; every search operator is then a pure function of those lists and a
``numpy.random.Generator``. Resolution ``r`` is a separate gene whose choices the caller passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, Generic, TypeVar

import numpy as np

Config = TypeVar("Config")


def check_resolutions(resolutions: Sequence[int]) -> tuple[int, ...]:
    """Validate a non-empty list of positive integer resolutions."""
    resolutions = tuple(resolutions) if not isinstance(resolutions, (int, np.integer)) else (int(resolutions),)
    if not resolutions or any(isinstance(r, bool) or int(r) != r or r < 1 for r in resolutions):
        raise ValueError(f"resolutions must be a non-empty list of positive integers, got {resolutions!r}")
    return tuple(int(r) for r in resolutions)


def parse_resolution(value: Any) -> int:
    """OFA stores ``r`` as ``[224]``; accept that or a bare int."""
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise ValueError(f"r must be an int or a one-element list, got {value!r}")
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer, float)) or int(value) != value or value < 1:
        raise ValueError(f"r must be a positive integer resolution, got {value!r}")
    return int(value)


class GeneSpace(Generic[Config]):
    """Base of the search spaces: subclasses define ``gene_choices`` and ``make_config``."""

    gene_fields: tuple[str, ...] = ()
    config_type: type = object

    def gene_choices(self) -> dict[str, list[tuple]]:
        """For every gene field, the allowed values at each position."""
        raise NotImplementedError

    def allowed_values(self) -> dict[str, list[tuple]]:
        """What ``validate`` accepts per position; by default exactly what sampling draws from."""
        return self.gene_choices()

    def make_config(self, genes: dict[str, list], r: int) -> Config:
        raise NotImplementedError

    def validate(self, cfg: Config) -> Config:
        """Raise ``ValueError`` naming the field when ``cfg`` is not in this space; return it otherwise."""
        if not isinstance(cfg, self.config_type):
            raise ValueError(f"expected a {self.config_type.__name__}, got {type(cfg).__name__}")
        for name, per_position in self.allowed_values().items():
            values = list(getattr(cfg, name))
            if len(values) != len(per_position):
                raise ValueError(f"{name} must have {len(per_position)} entries, got {len(values)}")
            for i, (v, allowed) in enumerate(zip(values, per_position)):
                if v not in allowed:
                    raise ValueError(f"{name}[{i}] = {v!r} is not allowed; allowed: {list(allowed)}")
        parse_resolution(cfg.r)
        return cfg

    def _sample(self, rng: np.random.Generator, choices: dict[str, list[tuple]], resolutions: Sequence[int]) -> Config:
        resolutions = check_resolutions(resolutions)
        genes = {name: [c[rng.integers(len(c))] for c in per_position] for name, per_position in choices.items()}
        return self.make_config(genes, resolutions[rng.integers(len(resolutions))])

    def mutate(
        self, cfg: Config, rng: np.random.Generator, prob: float = 0.1, resolutions: Sequence[int] | None = None
    ) -> Config:
        """Resample each gene (and ``r`` when ``resolutions`` is given) independently with probability ``prob``."""
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob must be in [0, 1], got {prob}")
        self.validate(cfg)
        genes = {}
        for name, per_position in self.gene_choices().items():
            genes[name] = [
                c[rng.integers(len(c))] if rng.random() < prob else v for v, c in zip(getattr(cfg, name), per_position)
            ]
        r = cfg.r
        if resolutions is not None:
            resolutions = check_resolutions(resolutions)
            if rng.random() < prob:
                r = resolutions[rng.integers(len(resolutions))]
        return self.make_config(genes, r)

    def crossover(self, a: Config, b: Config, rng: np.random.Generator) -> Config:
        """Uniform crossover: every gene (and ``r``) comes from ``a`` or ``b`` with equal probability."""
        self.validate(a)
        self.validate(b)
        genes = {
            name: [x if rng.random() < 0.5 else y for x, y in zip(getattr(a, name), getattr(b, name))]
            for name in self.gene_fields
        }
        return self.make_config(genes, a.r if rng.random() < 0.5 else b.r)

    #: Resolution grid of the encoding: OFA's elastic resolutions 128..224 in steps of 4 (Cai et al., ICLR 2020,
    #: Sec. 4.1) covered with headroom up to 320 on a 16 px grid.
    resolution_grid: tuple[int, ...] = tuple(range(128, 321, 16))

    def _encode_resolution(self, r: int) -> list[float]:
        """Piecewise-linear 'hat' features of ``r`` on ``resolution_grid`` (clamped to its range).

        A scalar ``r`` is too weak a feature for an MLP next to dozens of one-hots; the hats give each grid
        point its own unit while staying continuous for resolutions between grid points.
        """
        grid = np.asarray(self.resolution_grid, dtype=np.float64)
        r = float(np.clip(r, grid[0], grid[-1]))
        return np.clip(1.0 - np.abs(r - grid) / (grid[1] - grid[0]), 0.0, 1.0).tolist()

    @staticmethod
    def _one_hot(value: Any, choices: Sequence, active: bool = True) -> list[float]:
        return [1.0 if active and value == c else 0.0 for c in choices]


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """OFA's dict format: gene lists plus ``r`` as a one-element list."""
    out = {k: list(v) for k, v in asdict(cfg).items() if k != "r"}
    out["r"] = [cfg.r]
    return out


def config_from_dict(cls: type, data: dict[str, Any], fields: tuple[str, ...], kind: dict[str, type]) -> Any:
    """Parse OFA's format (``r`` int or list; an OFA ``"wid": None`` entry is accepted and ignored)."""
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__}.from_dict needs a dict, got {type(data).__name__}")
    extra = set(data) - set(fields) - {"r", "wid"}
    if extra or data.get("wid") is not None:
        raise ValueError(f"unknown {cls.__name__} field(s) {sorted(extra) or ['wid']}; allowed: {[*fields, 'r']}")
    missing = [f for f in fields if f not in data]
    if missing:
        raise ValueError(f"{cls.__name__} is missing field(s) {missing}")
    genes = {}
    for name in fields:
        values = data[name]
        if not isinstance(values, (list, tuple)):
            raise ValueError(f"{name} must be a list, got {values!r}")
        parsed = []
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise ValueError(f"{name} must hold numbers, got {values!r}")
            if kind[name] is int and int(v) != v:
                raise ValueError(f"{name} must hold integers, got {values!r}")
            parsed.append(kind[name](v))
        genes[name] = parsed
    return cls(**genes, r=parse_resolution(data.get("r", 224)))
