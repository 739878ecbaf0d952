"""Accelerator specs: the *architecture* of the Timeloop split.

Levels, outermost first: DRAM -> L2 (shared global buffer) -> PE array / NoC (spatial) -> L1 (per PE) -> MAC.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from hwmodel.energy import EnergyTable, get_energy_table
from hwmodel.layer import DIMS, TENSORS

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Accelerator:
    """A spatial accelerator.

    Args:
        name: label.
        array: PE array axis sizes, 1 to 3 axes (e.g. ``(12, 14)``).
        connectivity: per axis, the layer dims (from ``N G K C P Q R S``) that axis may unroll, jointly
            (an axis with ``("C", "R", "S")`` may unroll any product of those dims up to its size).
        l1_words: per-PE L1 capacity in entries (one entry holds a word or a partial sum); the sum of
            ``l1_partition`` when that is given.
        l1_partition: per-tensor L1 capacities ``(weights, inputs, outputs)`` in entries, or ``None`` for a
            shared L1.
        l2_bytes: shared global buffer capacity in bytes.
        noc_bandwidth: words per cycle between L2 and the PE array (reads plus writes).
        dram_bandwidth: words per cycle between DRAM and L2 (reads plus writes).
        word_bits / psum_bits: widths of weights/inputs and of partial sums (L2 capacity of outputs).
        systolic: each spatial fold pays a pipeline fill and drain (SCALE-Sim-calibrated, see costmodel).
        double_buffer: ``(l1, l2)``; a double-buffered level holds two tiles (capacity halves) and overlaps
            its refills with compute, a single-buffered one stalls for them.
        energy_table: name of an :mod:`hwmodel.energy` table.
    """

    name: str
    array: tuple[int, ...]
    connectivity: tuple[tuple[str, ...], ...]
    l1_words: int
    l2_bytes: int
    noc_bandwidth: float
    dram_bandwidth: float
    l1_partition: tuple[int, int, int] | None = None
    word_bits: int = 16
    psum_bits: int = 32
    systolic: bool = False
    double_buffer: tuple[bool, bool] = (True, True)
    energy_table: str = "accelergy45"

    def __post_init__(self) -> None:
        try:
            array = tuple(int(a) for a in self.array)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"Accelerator.array must be 1 to 3 integer axis sizes, got {self.array!r}") from None
        if not 1 <= len(array) <= 3:
            raise ValueError(f"Accelerator.array must have 1 to 3 axes, got {list(array)}")
        if min(array) < 1:
            raise ValueError(f"Accelerator.array sizes must be >= 1 (zero PEs is not an accelerator), got {list(array)}")
        object.__setattr__(self, "array", array)
        try:
            conn = tuple(tuple(str(d) for d in axis) for axis in self.connectivity)
        except (TypeError, ValueError):
            raise ValueError(
                f"Accelerator.connectivity must list, per array axis, the dims it may unroll, got {self.connectivity!r}"
            ) from None
        if len(conn) != len(array):
            raise ValueError(
                f"Accelerator.connectivity needs one entry per array axis ({len(array)}), got {len(conn)}"
            )
        for a, axis in enumerate(conn):
            for d in axis:
                if d not in DIMS:
                    raise ValueError(f"Accelerator.connectivity[{a}] has unknown dim {d!r}; allowed: {', '.join(DIMS)}")
        object.__setattr__(self, "connectivity", conn)
        if self.l1_partition is not None:
            try:
                part = tuple(int(v) for v in self.l1_partition)
            except (TypeError, ValueError, OverflowError):
                part = ()
            if len(part) != 3 or min(part) < 1:
                raise ValueError(
                    f"Accelerator.l1_partition must be 3 positive entry counts (weights, inputs, outputs), got {self.l1_partition}"
                )
            object.__setattr__(self, "l1_partition", part)
            object.__setattr__(self, "l1_words", sum(part))
        for name in ("l1_words", "l2_bytes", "word_bits", "psum_bits"):
            v = getattr(self, name)
            try:
                iv = int(v)
            except (TypeError, ValueError, OverflowError):
                iv = 0
            if isinstance(v, bool) or iv < 1:
                raise ValueError(f"Accelerator.{name} must be an integer >= 1, got {v!r}")
            object.__setattr__(self, name, iv)
        for name in ("noc_bandwidth", "dram_bandwidth"):
            raw = getattr(self, name)
            try:
                v = float(raw)
            except (TypeError, ValueError, OverflowError):
                v = math.nan
            if not v > 0:
                raise ValueError(f"Accelerator.{name} must be > 0 words/cycle, got {raw!r}")
            object.__setattr__(self, name, v)
        try:
            db = tuple(bool(v) for v in self.double_buffer)
        except (TypeError, ValueError):
            db = ()
        if len(db) != 2:
            raise ValueError(f"Accelerator.double_buffer must be (l1, l2) flags, got {self.double_buffer}")
        object.__setattr__(self, "double_buffer", db)
        object.__setattr__(self, "systolic", bool(self.systolic))
        get_energy_table(self.energy_table)

    # --- derived --------------------------------------------------------------------------------------
    @property
    def num_pes(self) -> int:
        return math.prod(self.array)

    @property
    def energy(self) -> EnergyTable:
        return get_energy_table(self.energy_table)

    @property
    def word_bytes(self) -> float:
        return self.word_bits / 8

    @property
    def psum_bytes(self) -> float:
        return self.psum_bits / 8

    @property
    def onchip_bytes(self) -> float:
        """L2 plus all L1s (entries counted at word width)."""
        return self.l2_bytes + self.num_pes * self.l1_words * self.word_bytes

    def connectivity_mask(self) -> np.ndarray:
        """``mask[a, d] = 1`` when axis ``a`` may unroll dim ``d`` (3 rows, unused axes all zero)."""
        mask = np.zeros((3, len(DIMS)), dtype=np.int64)
        for a, axis in enumerate(self.connectivity):
            for d in axis:
                mask[a, DIMS.index(d)] = 1
        return mask

    def l1_access_energy(self) -> tuple[float, float, float]:
        """Per-access L1 energy for (weights, inputs, outputs)."""
        table = self.energy
        if self.l1_partition is None:
            e = table.l1_access(self.l1_words)
            return (e, e, e)
        return tuple(table.l1_access(w) for w in self.l1_partition)  # type: ignore[return-value]

    def l2_access_energy(self) -> float:
        return self.energy.l2_access(self.l2_bytes / self.word_bytes)

    # --- (de)serialisation ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["array"] = list(self.array)
        out["connectivity"] = [list(a) for a in self.connectivity]
        out["double_buffer"] = list(self.double_buffer)
        if self.l1_partition is not None:
            out["l1_partition"] = dict(zip(TENSORS, self.l1_partition))
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Accelerator":
        if not isinstance(data, dict):
            raise ValueError(f"an accelerator spec must be a mapping of fields, got {type(data).__name__}")
        data = dict(data)
        data.pop("schema_version", None)
        allowed = {f.name for f in fields(cls)}
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown accelerator field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        required = {"name", "array", "connectivity", "l2_bytes", "noc_bandwidth", "dram_bandwidth"}
        missing = required - set(data)
        if missing:
            raise ValueError(f"accelerator spec is missing field(s) {sorted(missing)}")
        part = data.get("l1_partition")
        if isinstance(part, dict):
            bad = set(part) - set(TENSORS)
            if bad or len(part) != 3:
                raise ValueError(f"Accelerator.l1_partition needs keys {list(TENSORS)}, got {sorted(part)}")
            data["l1_partition"] = tuple(part[t] for t in TENSORS)
        if "l1_words" not in data:
            if data.get("l1_partition") is None:
                raise ValueError("accelerator spec needs l1_words (shared L1) or l1_partition")
            data["l1_words"] = 1  # replaced by the sum of l1_partition (validated there)
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps({"schema_version": SCHEMA_VERSION, **self.to_dict()}, indent=2)

    def save(self, path: str | os.PathLike) -> None:
        """Write JSON (``.json``) or YAML (``.yaml``/``.yml``) atomically."""
        path = Path(path)
        if path.suffix in (".yaml", ".yml"):
            import yaml

            text = yaml.safe_dump({"schema_version": SCHEMA_VERSION, **self.to_dict()}, sort_keys=False)
        else:
            text = self.to_json()
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)

    def with_(self, **changes: Any) -> "Accelerator":
        return replace(self, **changes)


def load_accelerator(spec: "str | os.PathLike | Accelerator") -> Accelerator:
    """An accelerator from a preset name, ``systolic:RxC`` or a JSON/YAML file."""
    from hwmodel.presets import PRESETS, systolic

    if isinstance(spec, Accelerator):
        return spec
    text = str(spec)
    if text in PRESETS:
        return PRESETS[text]
    if text.startswith("systolic:"):
        return systolic(text)
    path = Path(text)
    if not path.is_file():
        raise ValueError(
            f"accelerator {text!r} is not a preset ({', '.join(sorted(PRESETS))}), not systolic:RxC, "
            "and no such JSON/YAML file exists"
        )
    raw = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(raw)
        else:
            data = json.loads(raw)
    except Exception as exc:  # noqa: BLE001 - re-raised with the path
        raise ValueError(f"cannot parse accelerator file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"accelerator file {path} must hold a mapping of fields, got {type(data).__name__}")
    if "accelerator" in data and isinstance(data["accelerator"], dict):
        data = data["accelerator"]
    return Accelerator.from_dict(data)
