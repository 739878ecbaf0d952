"""The strict file schemas (pydantic v2 models) of accelerators and mappings.

Kept apart from :mod:`hwmodel.accelerator` and :mod:`hwmodel.mapping` so that pydantic (~0.1 s to import and build
these models) is loaded only when a file or dict is validated (:meth:`Accelerator.from_dict`,
:meth:`Mapping.from_dict`), not by ``naas-hw evaluate --layer ... --accelerator PRESET``. The old names
``hwmodel.accelerator.AcceleratorSpec`` / ``L1PartitionSpec`` and ``hwmodel.mapping.MappingSpec`` still resolve
(lazily) to these classes.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hwmodel.layer import TENSORS
from hwmodel.mapping import MAX_AXES, NUM_DIMS
from hwmodel.validate import (
    MAX_AXIS,
    MAX_BANDWIDTH,
    MAX_BITS,
    MAX_BUFFER,
    MAX_FACTOR,
    MAX_NAME,
    MIN_BITS,
)

# --- accelerator ------------------------------------------------------------------------------------------
_Buffer = Annotated[int, Field(ge=1, le=MAX_BUFFER)]
_Bandwidth = Annotated[float, Field(gt=0, le=MAX_BANDWIDTH, allow_inf_nan=False)]
_Bits = Annotated[int, Field(ge=MIN_BITS, le=MAX_BITS)]


class L1PartitionSpec(BaseModel):
    """Per-tensor L1 entries (a list ``[weights, inputs, outputs]`` is read as these keys)."""

    model_config = ConfigDict(strict=True, extra="forbid")
    weights: _Buffer
    inputs: _Buffer
    outputs: _Buffer


class AcceleratorSpec(BaseModel):
    """The accelerator JSON/YAML schema (see :class:`hwmodel.Accelerator` for the meaning of each field)."""

    model_config = ConfigDict(strict=True, extra="forbid")
    schema_version: Annotated[int, Field(ge=1)] = Field(default=None, validate_default=False)
    name: Annotated[str, Field(max_length=MAX_NAME)]
    array: Annotated[list[Annotated[int, Field(ge=1, le=MAX_AXIS)]], Field(min_length=1, max_length=3)]
    connectivity: Annotated[list[Annotated[list[Annotated[str, Field(max_length=16)]], Field(max_length=8)]],
                            Field(min_length=1, max_length=3)]
    l1_words: _Buffer = Field(default=None, validate_default=False)  # left out: the sum of l1_partition
    l1_partition: L1PartitionSpec | None = None
    l2_bytes: _Buffer
    noc_bandwidth: _Bandwidth
    dram_bandwidth: _Bandwidth
    word_bits: _Bits = 16
    psum_bits: _Bits = 32
    systolic: bool = False
    double_buffer: Annotated[list[bool], Field(min_length=2, max_length=2)] = [True, True]
    energy_table: Annotated[str, Field(max_length=64)] = "accelergy45"
    mac: Annotated[str, Field(max_length=32)] = "fixed"
    precisions: Annotated[list[Annotated[int, Field(ge=2, le=MAX_BITS)]], Field(min_length=1, max_length=64)] | None = None

    @field_validator("l1_partition", mode="before")
    @classmethod
    def _partition_list(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)) and len(value) == 3:
            return dict(zip(TENSORS, value))
        return value


# --- mapping ----------------------------------------------------------------------------------------------
_Dim = Literal["N", "G", "K", "C", "P", "Q", "R", "S"]
_Level = Literal["DRAM", "L2", "L1"]
_Factor = Annotated[int, Field(ge=1, le=MAX_FACTOR)]


class MappingSpec(BaseModel):
    """The mapping JSON schema: ``temporal`` ``{level: {dim: factor}}``, ``order`` ``{level: [8 dims]}`` (outermost
    first), ``spatial`` ``[{dim: factor}]`` per array axis (at most 3); what is left out is 1 / ``N G K C P Q R S``."""

    model_config = ConfigDict(strict=True, extra="forbid")
    temporal: dict[_Level, dict[_Dim, _Factor]] = {}
    order: dict[_Level, Annotated[list[_Dim], Field(min_length=NUM_DIMS, max_length=NUM_DIMS)]] = {}
    spatial: Annotated[list[dict[_Dim, _Factor]], Field(max_length=MAX_AXES)] = []
