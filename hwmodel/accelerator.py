"""Accelerator specs: the *architecture* of the Timeloop split.

Levels, outermost first: DRAM -> L2 (shared global buffer) -> PE array / NoC (spatial) -> L1 (per PE) -> MAC.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from hwmodel.energy import EnergyTable, get_energy_table
from hwmodel.layer import DIMS, TENSORS
from hwmodel.validate import (
    ACCELERATOR_SCHEMA_VERSION,
    MAX_AXIS,
    MAX_BANDWIDTH,
    MAX_BITS,
    MAX_BUFFER,
    MAX_NAME,
    MAX_PES,
    MIN_BITS,
    as_bool,
    as_float,
    as_int,
    as_name,
    prefixed,
    show,
    validate_model,
)

#: Accelerator file layout version written by :meth:`Accelerator.to_json`; newer files are refused.
SCHEMA_VERSION = ACCELERATOR_SCHEMA_VERSION


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
        mac: the MAC datapath, a :data:`hwmodel.precision.MAC_KINDS` name: ``fixed`` (one ``word_bits``-wide
            multiplier per PE) or ``bitfusion`` (Bit Fusion bit-bricks: narrower operands buy throughput).
        precisions: operand widths (bits) the datapath accepts for a layer's ``weight_bits`` / ``input_bits``;
            ``None``: the MAC kind's default (``fixed``: 2..word_bits, ``bitfusion``: 2..16).
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
    mac: str = "fixed"
    precisions: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        name = "Accelerator"
        as_name(self.name, f"{name}.name")
        if not isinstance(self.array, (tuple, list)) or not 1 <= len(self.array) <= 3:
            raise ValueError(f"{name}.array must be 1 to 3 integer axis sizes, got {show(self.array)}")
        array = tuple(as_int(a, f"{name}.array[{i}]", 1, MAX_AXIS) for i, a in enumerate(self.array))
        if math.prod(array) > MAX_PES:
            raise ValueError(f"{name}.array has {math.prod(array)} PEs in all; allowed: at most {MAX_PES}")
        object.__setattr__(self, "array", array)
        if not isinstance(self.connectivity, (tuple, list)) or not all(
            isinstance(axis, (tuple, list)) and all(isinstance(d, str) for d in axis) for axis in self.connectivity
        ):
            raise ValueError(
                f"{name}.connectivity must list, per array axis, the dims it may unroll, got {show(self.connectivity)}"
            )
        conn = tuple(tuple(axis) for axis in self.connectivity)
        if len(conn) != len(array):
            raise ValueError(
                f"{name}.connectivity needs one entry per array axis ({len(array)}), got {len(conn)}"
            )
        for a, axis in enumerate(conn):
            for d in axis:
                if d not in DIMS:
                    raise ValueError(f"{name}.connectivity[{a}] has unknown dim {show(d)}; allowed: {', '.join(DIMS)}")
            if len(set(axis)) != len(axis):
                raise ValueError(f"{name}.connectivity[{a}] lists a dim twice: {list(axis)}")
        object.__setattr__(self, "connectivity", conn)
        if self.l1_partition is not None:
            if not isinstance(self.l1_partition, (tuple, list)) or len(self.l1_partition) != 3:
                raise ValueError(
                    f"{name}.l1_partition must be 3 positive entry counts (weights, inputs, outputs), "
                    f"got {show(self.l1_partition)}"
                )
            part = tuple(as_int(v, f"{name}.l1_partition[{t}]", 1, MAX_BUFFER)
                         for t, v in zip(TENSORS, self.l1_partition))
            if sum(part) > MAX_BUFFER:
                raise ValueError(f"{name}.l1_partition sums to {sum(part)} entries; allowed: at most {MAX_BUFFER}")
            object.__setattr__(self, "l1_partition", part)
            object.__setattr__(self, "l1_words", sum(part))
        for field_ in ("l1_words", "l2_bytes"):
            object.__setattr__(self, field_, as_int(getattr(self, field_), f"{name}.{field_}", 1, MAX_BUFFER))
        for field_ in ("word_bits", "psum_bits"):
            object.__setattr__(self, field_, as_int(getattr(self, field_), f"{name}.{field_}", MIN_BITS, MAX_BITS))
        for field_ in ("noc_bandwidth", "dram_bandwidth"):
            object.__setattr__(self, field_, as_float(getattr(self, field_), f"{name}.{field_}", MAX_BANDWIDTH,
                                                      " words/cycle"))
        if not isinstance(self.double_buffer, (tuple, list)) or len(self.double_buffer) != 2:
            raise ValueError(f"{name}.double_buffer must be (l1, l2) flags, got {show(self.double_buffer)}")
        db = tuple(as_bool(v, f"{name}.double_buffer[{i}]") for i, v in enumerate(self.double_buffer))
        object.__setattr__(self, "double_buffer", db)
        object.__setattr__(self, "systolic", as_bool(self.systolic, f"{name}.systolic"))
        if not isinstance(self.energy_table, str) or len(self.energy_table) > 64:
            raise ValueError(f"{name}.energy_table must be a table name, got {show(self.energy_table)}")
        get_energy_table(self.energy_table)
        from hwmodel.precision import MAC_KINDS

        if self.mac not in MAC_KINDS:
            raise ValueError(f"{name}.mac must be one of {', '.join(MAC_KINDS)}, got {show(self.mac)}")
        if self.precisions is not None:
            if not isinstance(self.precisions, (tuple, list)) or not self.precisions:
                raise ValueError(f"{name}.precisions must be a non-empty list of operand widths (bits), "
                                 f"got {show(self.precisions)}")
            top = self.word_bits if self.mac == "fixed" else MAX_BITS
            widths = tuple(sorted({as_int(b, f"{name}.precisions[{i}]", 2, top) for i, b in enumerate(self.precisions)}))
            object.__setattr__(self, "precisions", widths)

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
        if self.mac == "fixed":
            del out["mac"]  # the default: files of full-precision accelerators stay as they were
        if self.precisions is None:
            del out["precisions"]
        else:
            out["precisions"] = list(self.precisions)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | None = None) -> "Accelerator":
        """An accelerator from its JSON/YAML fields, validated strictly (:class:`AcceleratorSpec`: exact types,
        finite numbers, the bounds of :mod:`hwmodel.validate`, no unknown keys, a supported ``schema_version``).
        ``ValueError``, one line naming ``source`` (a file, when given) and the field."""
        if not isinstance(data, dict):
            raise ValueError(prefixed(source, f"an accelerator spec must be an object of fields, got {show(data)}"))
        from hwmodel.specs import AcceleratorSpec

        spec = validate_model(AcceleratorSpec, data, source, prefix="Accelerator.", allowed=_allowed,
                              noun="accelerator field")
        assert isinstance(spec, AcceleratorSpec)
        if spec.schema_version is not None and spec.schema_version > SCHEMA_VERSION:
            raise ValueError(prefixed(source, f"Accelerator.schema_version {spec.schema_version} is newer than this "
                                              f"naas-trainer supports ({SCHEMA_VERSION}); upgrade naas-trainer"))
        part = None if spec.l1_partition is None else tuple(getattr(spec.l1_partition, t) for t in TENSORS)
        l1_words = spec.l1_words
        if part is None and l1_words is None:
            raise ValueError(prefixed(source, "accelerator spec needs l1_words (shared L1) or l1_partition"))
        if part is not None and l1_words is not None and l1_words != sum(part):
            raise ValueError(prefixed(source, f"Accelerator.l1_words is {l1_words} but l1_partition sums to "
                                              f"{sum(part)}; allowed: the sum, or leave l1_words out"))
        try:
            return cls(
                name=spec.name, array=tuple(spec.array), connectivity=tuple(tuple(a) for a in spec.connectivity),
                l1_words=sum(part) if part is not None else l1_words, l2_bytes=spec.l2_bytes,
                noc_bandwidth=spec.noc_bandwidth, dram_bandwidth=spec.dram_bandwidth, l1_partition=part,
                word_bits=spec.word_bits, psum_bits=spec.psum_bits, systolic=spec.systolic,
                double_buffer=tuple(spec.double_buffer), energy_table=spec.energy_table, mac=spec.mac,
                precisions=None if spec.precisions is None else tuple(spec.precisions),
            )
        except ValueError as exc:
            raise ValueError(prefixed(source, str(exc))) from None

    def to_json(self) -> str:
        return json.dumps({"schema_version": SCHEMA_VERSION, **self.to_dict()}, indent=2)

    def save(self, path: str | os.PathLike) -> None:
        """Write JSON (``.json``) or YAML (``.yaml``/``.yml``) atomically (:mod:`hwmodel.atomic`)."""
        from hwmodel.atomic import atomic_write_text

        path = Path(path)
        if path.suffix in (".yaml", ".yml"):
            import yaml

            text = yaml.safe_dump({"schema_version": SCHEMA_VERSION, **self.to_dict()}, sort_keys=False)
        else:
            text = self.to_json()
        atomic_write_text(path, text)

    def with_(self, **changes: Any) -> "Accelerator":
        return replace(self, **changes)


# --- the strict file schema -------------------------------------------------------------------------------
#: Names of :mod:`hwmodel.specs` still importable from here (resolved on first use: pydantic loads lazily).
_SPECS = ("AcceleratorSpec", "L1PartitionSpec")


def __getattr__(name: str) -> Any:
    if name in _SPECS:
        from hwmodel import specs

        return getattr(specs, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_ALLOWED: dict[str, str] = {
    "schema_version": f"an integer 1..{SCHEMA_VERSION}",
    "name": f"a string of at most {MAX_NAME} characters",
    "array": f"1 to 3 integer axis sizes, each 1..{MAX_AXIS}, at most {MAX_PES} PEs in all",
    "connectivity": f"per array axis, a list of dims from {', '.join(DIMS)}",
    "l1_words": f"an integer 1..{MAX_BUFFER} (entries per PE)",
    "l1_partition": f"{{weights, inputs, outputs}} integers 1..{MAX_BUFFER} (entries per PE), or a list of 3",
    "l2_bytes": f"an integer 1..{MAX_BUFFER}",
    "noc_bandwidth": f"a finite number in (0, {MAX_BANDWIDTH:g}] words/cycle",
    "dram_bandwidth": f"a finite number in (0, {MAX_BANDWIDTH:g}] words/cycle",
    "word_bits": f"an integer {MIN_BITS}..{MAX_BITS}",
    "psum_bits": f"an integer {MIN_BITS}..{MAX_BITS}",
    "systolic": "true or false",
    "double_buffer": "[l1, l2]: two of true / false",
    "energy_table": "the name of an energy table",
    "mac": "fixed or bitfusion",
    "precisions": f"a list of operand widths in bits (integers 2..{MAX_BITS}; fixed MACs: at most word_bits)",
}


def _allowed(loc: tuple[Any, ...]) -> str | None:
    if not loc:
        return ", ".join(_ALLOWED)
    return _ALLOWED.get(str(loc[0]))
