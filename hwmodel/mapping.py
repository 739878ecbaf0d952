"""Dataflow mappings: the *mapping* of the Timeloop split.

A mapping tiles each of the eight loop dims over four places, outermost first: DRAM temporal loops
(iterating over L2 tiles), L2 temporal loops (iterating over array tiles), the spatial unroll over the PE
array (per axis), and L1 temporal loops inside a PE (iterating over MACs). Each temporal level has a loop
order. Factors need not divide the dims: a dim is covered when the product of its factors is at least its
size; the padded iterations cost cycles but neither MACs nor accesses.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hwmodel.layer import DIMS, Layer
from hwmodel.validate import (
    MAX_COVERAGE,
    MAX_FACTOR,
    MAX_PADDED,
    load_json_text,
    prefixed,
    read_text,
    show,
    validate_model,
)

if TYPE_CHECKING:
    from hwmodel.accelerator import Accelerator

#: Temporal levels, outermost first; rows of :attr:`Mapping.temporal` and :attr:`Mapping.order`.
TEMPORAL_LEVELS: tuple[str, ...] = ("DRAM", "L2", "L1")
NUM_DIMS = len(DIMS)
MAX_AXES = 3


@dataclass
class Mapping:
    """Per-level tiling and loop order.

    Attributes:
        temporal: int64 ``[3, 8]`` factors for DRAM, L2, L1 (rows) per dim (columns, :data:`DIMS` order).
        spatial: int64 ``[3, 8]`` unroll factor of each dim on each array axis (unused axes all 1).
        order: int64 ``[3, 8]`` per temporal level, the dims as indices from outermost to innermost loop.
    """

    temporal: np.ndarray
    spatial: np.ndarray
    order: np.ndarray

    def __post_init__(self) -> None:
        try:
            self.temporal = np.asarray(self.temporal, dtype=np.int64).reshape(3, NUM_DIMS)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"mapping temporal must be 3 x {NUM_DIMS} integer factors (DRAM, L2, L1 x dims)") from None
        try:
            spatial = np.asarray(self.spatial, dtype=np.int64)
            if spatial.ndim == 2 and spatial.shape[0] < MAX_AXES:
                spatial = np.vstack([spatial, np.ones((MAX_AXES - spatial.shape[0], NUM_DIMS), dtype=np.int64)])
            self.spatial = spatial.reshape(MAX_AXES, NUM_DIMS)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"mapping spatial must be up to {MAX_AXES} x {NUM_DIMS} integer unroll factors (axes x dims)") from None
        try:
            self.order = np.asarray(self.order, dtype=np.int64).reshape(3, NUM_DIMS)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"mapping order must be 3 permutations of the {NUM_DIMS} dim indices (DRAM, L2, L1)") from None
        if (self.temporal < 1).any():
            lvl, d = np.argwhere(self.temporal < 1)[0]
            raise ValueError(f"mapping factor {TEMPORAL_LEVELS[lvl]}.{DIMS[d]} must be >= 1, got {self.temporal[lvl, d]}")
        if (self.spatial < 1).any():
            a, d = np.argwhere(self.spatial < 1)[0]
            raise ValueError(f"mapping spatial factor axis{a}.{DIMS[d]} must be >= 1, got {self.spatial[a, d]}")
        if (self.temporal > MAX_FACTOR).any():
            lvl, d = np.argwhere(self.temporal > MAX_FACTOR)[0]
            raise ValueError(f"mapping factor {TEMPORAL_LEVELS[lvl]}.{DIMS[d]} must be <= {MAX_FACTOR} (2**24), "
                             f"got {self.temporal[lvl, d]}")
        if (self.spatial > MAX_FACTOR).any():
            a, d = np.argwhere(self.spatial > MAX_FACTOR)[0]
            raise ValueError(f"mapping spatial factor axis{a}.{DIMS[d]} must be <= {MAX_FACTOR} (2**24), "
                             f"got {self.spatial[a, d]}")
        for d in range(NUM_DIMS):
            cov = math.prod(int(v) for v in self.temporal[:, d]) * math.prod(int(v) for v in self.spatial[:, d])
            if cov > MAX_COVERAGE:
                raise ValueError(f"mapping factors of dim {DIMS[d]} multiply to {cov}; allowed: at most "
                                 f"{MAX_COVERAGE} (2**40) per dim")
        for lvl in range(3):
            if sorted(self.order[lvl].tolist()) != list(range(NUM_DIMS)):
                raise ValueError(
                    f"mapping order of level {TEMPORAL_LEVELS[lvl]} must be a permutation of {', '.join(DIMS)}, "
                    f"got {self.order[lvl].tolist()}"
                )

    # --- derived --------------------------------------------------------------------------------------
    @property
    def spatial_factors(self) -> np.ndarray:
        """Total spatial unroll per dim (product over axes)."""
        return self.spatial.prod(axis=0)

    def coverage(self) -> np.ndarray:
        """Product of all factors per dim (>= the layer dim when the mapping covers it)."""
        return self.temporal.prod(axis=0) * self.spatial_factors

    def check(self, layer: Layer, accel: "Accelerator") -> None:
        """Raise ``ValueError`` naming the field when the mapping cannot run ``layer`` on ``accel``
        (factors that do not cover a dim, an unroll the array's connectivity forbids, an axis overfilled).
        Capacity is checked by the cost model (a mapping that overflows a buffer evaluates as invalid)."""
        dims = layer.dim_array
        cov = self.coverage()
        padded = math.prod(int(c) for c in cov)
        if padded > MAX_PADDED:
            raise ValueError(f"mapping covers {padded} iterations (padding included); allowed: at most {MAX_PADDED} "
                             "(2**56, which keeps the cost model's int64 counts exact): lower the padded factors")
        h = (int(cov[4]) - 1) * layer.stride[0] + (int(cov[6]) - 1) * layer.dilation[0] + 1
        w = (int(cov[5]) - 1) * layer.stride[1] + (int(cov[7]) - 1) * layer.dilation[1] + 1
        if int(cov[0]) * int(cov[1]) * int(cov[3]) * h * w > MAX_PADDED:
            raise ValueError(f"mapping's padded input tile ({int(cov[0]) * int(cov[1]) * int(cov[3]) * h * w} words) "
                             f"exceeds {MAX_PADDED} (2**56): lower the padded P/Q/R/S factors")
        for d in range(NUM_DIMS):
            if cov[d] < dims[d]:
                raise ValueError(
                    f"mapping factors of dim {DIMS[d]} multiply to {cov[d]} < layer {DIMS[d]}={dims[d]}: "
                    "factors must cover the layer (raise a DRAM/L2/L1 or spatial factor)"
                )
        n_axes = len(accel.array)
        for a in range(MAX_AXES):
            used = self.spatial[a]
            if a >= n_axes:
                if (used > 1).any():
                    raise ValueError(f"mapping unrolls on axis {a} but accelerator {accel.name} has {n_axes} axes")
                continue
            for d in range(NUM_DIMS):
                if used[d] > 1 and DIMS[d] not in accel.connectivity[a]:
                    raise ValueError(
                        f"mapping unrolls {DIMS[d]} on axis {a}, whose connectivity allows only "
                        f"{', '.join(accel.connectivity[a]) or 'nothing'}"
                    )
            if used.prod() > accel.array[a]:
                raise ValueError(
                    f"mapping unrolls {int(used.prod())} on axis {a} of size {accel.array[a]} (accelerator {accel.name})"
                )

    # --- (de)serialisation ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        def named(row: np.ndarray) -> dict[str, int]:
            return {DIMS[d]: int(row[d]) for d in range(NUM_DIMS) if row[d] != 1}

        return {
            "temporal": {lvl: named(self.temporal[i]) for i, lvl in enumerate(TEMPORAL_LEVELS)},
            "order": {lvl: [DIMS[d] for d in self.order[i]] for i, lvl in enumerate(TEMPORAL_LEVELS)},
            "spatial": [named(self.spatial[a]) for a in range(MAX_AXES)],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | None = None) -> "Mapping":
        """A mapping from its JSON fields, validated strictly (:class:`MappingSpec`: known levels and dims, integer
        factors ``1..2**24``, orders that are permutations); ``ValueError`` naming ``source`` and the field."""
        if not isinstance(data, dict):
            raise ValueError(prefixed(source, "a mapping must be an object with temporal, order, spatial; got "
                                              f"{show(data)}"))
        from hwmodel.specs import MappingSpec

        spec = validate_model(MappingSpec, data, source, key_noun=_key_noun, allowed=_allowed,
                              noun="mapping field")
        assert isinstance(spec, MappingSpec)
        temporal = np.ones((3, NUM_DIMS), dtype=np.int64)
        for lvl, factors in spec.temporal.items():
            for d, v in factors.items():
                temporal[TEMPORAL_LEVELS.index(lvl), DIMS.index(d)] = v
        order = np.tile(np.arange(NUM_DIMS, dtype=np.int64), (3, 1))
        for lvl, dims in spec.order.items():
            if sorted(dims) != sorted(DIMS):
                raise ValueError(prefixed(source, f"order.{lvl} must name each of {', '.join(DIMS)} once, got "
                                                  f"{', '.join(dims)}"))
            order[TEMPORAL_LEVELS.index(lvl)] = [DIMS.index(d) for d in dims]
        spatial = np.ones((MAX_AXES, NUM_DIMS), dtype=np.int64)
        for a, factors in enumerate(spec.spatial):
            for d, v in factors.items():
                spatial[a, DIMS.index(d)] = v
        try:
            return cls(temporal=temporal, spatial=spatial, order=order)
        except ValueError as exc:
            raise ValueError(prefixed(source, str(exc))) from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def save(self, path: str | os.PathLike) -> None:
        """Write the JSON atomically (:mod:`hwmodel.atomic`)."""
        from hwmodel.atomic import atomic_write_text

        atomic_write_text(path, self.to_json())

    def copy(self) -> "Mapping":
        return Mapping(self.temporal.copy(), self.spatial.copy(), self.order.copy())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        return (
            np.array_equal(self.temporal, other.temporal)
            and np.array_equal(self.spatial, other.spatial)
            and np.array_equal(self.order, other.order)
        )

    # --- display --------------------------------------------------------------------------------------
    def loop_nest(self, layer: Layer | None = None) -> str:
        """Timeloop-style loop-nest printout (factor-1 loops omitted)."""
        lines: list[str] = []
        depth = 0

        def emit(text: str) -> None:
            lines.append("  " * depth + text)

        for i, lvl in enumerate(TEMPORAL_LEVELS):
            if lvl == "L1":
                for a in range(MAX_AXES):
                    for d in range(NUM_DIMS):
                        if self.spatial[a, d] > 1:
                            emit(f"for {DIMS[d]} in [0:{self.spatial[a, d]}) (Spatial-axis{a})")
                            depth += 1
            lines.append("  " * depth + f"{lvl}")
            lines.append("  " * depth + "-" * max(8, 40 - 2 * depth))
            for d in self.order[i]:
                if self.temporal[i, d] > 1:
                    emit(f"for {DIMS[d]} in [0:{self.temporal[i, d]})")
                    depth += 1
        emit("<< MAC >>")
        if layer is not None:
            pad = self.coverage() - layer.dim_array
            padded = [f"{DIMS[d]}+{pad[d]}" for d in range(NUM_DIMS) if pad[d] > 0]
            if padded:
                lines.append(f"(padded iterations: {', '.join(padded)})")
        return "\n".join(lines)


def mapping_from_factors(
    dram: dict[str, int] | None = None,
    l2: dict[str, int] | None = None,
    l1: dict[str, int] | None = None,
    spatial: list[dict[str, int]] | None = None,
    order: dict[str, list[str]] | None = None,
) -> Mapping:
    """Build a mapping from named factors; unspecified orders are ``N G K C P Q R S`` outermost first."""
    return Mapping.from_dict(
        {
            "temporal": {"DRAM": dram or {}, "L2": l2 or {}, "L1": l1 or {}},
            "spatial": spatial or [],
            "order": order or {},
        }
    )


def load_mapping(path: str | os.PathLike) -> "Mapping | dict[str, Mapping]":
    """Load a mapping JSON file: one mapping, or ``{"layers": [{"name", "mapping"}, ...]}`` (per layer; a
    ``naas-hw evaluate --json`` report reads as such). Strict (see :meth:`Mapping.from_dict`); the file's other
    top-level keys are ignored only when it has ``layers``."""
    path = Path(path)
    if not os.path.isfile(path):
        raise ValueError(f"mapping file {path} does not exist")
    where = f"mapping file {path}"
    data = load_json_text(read_text(path, "mapping file"), where)
    if isinstance(data, dict) and "layers" in data:
        entries = data["layers"]
        if not isinstance(entries, list):
            raise ValueError(f"{where}: 'layers' must be a list of {{\"name\", \"mapping\"}} objects")
        out: dict[str, Mapping] = {}
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or "name" not in entry or "mapping" not in entry:
                raise ValueError(f"{where}: layers[{i}] needs keys 'name' and 'mapping'")
            name = entry["name"]
            if not isinstance(name, str):
                raise ValueError(f"{where}: layers[{i}].name must be a string, got {show(name)}")
            if name in out:
                raise ValueError(f"{where}: layers[{i}].name {show(name)} is used twice; allowed: one entry per layer")
            out[name] = Mapping.from_dict(entry["mapping"], source=f"{where}, layer {show(name)}")
        return out
    return Mapping.from_dict(data, source=where)


# --- the strict file schema (:class:`hwmodel.specs.MappingSpec`) --------------------------------------------
def __getattr__(name: str) -> Any:
    if name == "MappingSpec":  # still importable from here; resolved on first use (pydantic loads lazily)
        from hwmodel.specs import MappingSpec

        return MappingSpec
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _key_noun(loc: tuple[Any, ...]) -> str:
    return "mapping level" if len(loc) == 3 and loc[0] in ("temporal", "order") else "dim"


def _allowed(loc: tuple[Any, ...]) -> str | None:
    if not loc:
        return "temporal, order, spatial"
    if loc[0] in ("temporal", "spatial"):
        return f"integer factors 1..{MAX_FACTOR} by dim ({', '.join(DIMS)})"
    if loc[0] == "order":
        return f"per level ({', '.join(TEMPORAL_LEVELS)}), the {NUM_DIMS} dims {', '.join(DIMS)} in some order"
    return None
