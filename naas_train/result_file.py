"""Reading a co-search ``result.json`` (``<run>/cosearch/result.json``, written by
:class:`naas_train.cosearch_callback.CoSearchCallback`): parsed and checked *before* any work uses it.

:func:`read_result` checks the file with a pydantic schema of the fields fine-tuning and export read (types
exact: no numbers as strings, finite costs, known schema version; other fields are kept as they are), then
builds the accelerator, every layer and every mapping it holds with :mod:`hwmodel`'s own constructors. Any
problem is a ``ValueError`` of one line naming the file and the field.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = ["RESULT_SCHEMA_VERSION", "entry_layer", "read_result", "validate_result"]

#: The ``schema_version`` of the ``result.json`` files this package writes and reads.
RESULT_SCHEMA_VERSION = 1

_Finite = Annotated[float, Field(allow_inf_nan=False, ge=0)]
_Count = Annotated[int, Field(ge=1)]


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


class _Subnet(_Model):
    r: Annotated[list[_Count], Field(min_length=1)]


class _Space(_Model):
    class_: str = Field(alias="class")


class _Metrics(_Model):
    cycles: _Finite
    energy_pj: _Finite
    edp: _Finite


class _Costed(_Model):
    """A design with its costs (a baseline, a Pareto point)."""

    accuracy: float | None = None
    cycles: _Finite
    energy_pj: _Finite
    edp: _Finite


_Width = Annotated[int, Field(ge=1, le=64)]


class _Bits(_Model):
    """A layer's precision (bits of its weights and input activations)."""

    weights: _Width
    inputs: _Width


class _LayerEntry(_Model):
    name: str
    dims: dict[str, Any]
    count: _Count
    mapping: dict[str, Any]
    precision: _Bits | None = None


class _Settings(_Model):
    budget: str | None = None
    deploy_resolution: _Count | None = None
    min_accuracy: float | None = None
    accuracy_source: str | None = None


class _Result(_Model):
    schema_version: int = RESULT_SCHEMA_VERSION
    subnet: _Subnet
    space: _Space
    accelerator: dict[str, Any]
    mappings: Annotated[list[_LayerEntry], Field(min_length=1)]
    metrics: _Metrics
    baselines: dict[str, _Costed]
    pareto: list[_Costed]
    accuracy: float | None = None
    precision: dict[str, _Bits] | None = None
    settings: _Settings = _Settings()
    provenance: dict[str, Any] | None = None
    supernet_checkpoint: str | None = None


def entry_layer(entry: dict[str, Any]) -> Any:
    """The :class:`hwmodel.layer.Layer` of a ``mappings`` entry (its dims, count and, when given, precision)."""
    from hwmodel.layer import Layer

    bits = entry.get("precision") or {}
    return Layer(**entry["dims"], count=entry["count"], weight_bits=bits.get("weights"), input_bits=bits.get("inputs"))


def _where(loc: tuple[Any, ...]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".") or "(top level)"


def _one_line(exc: ValidationError) -> str:
    first = exc.errors(include_url=False)[0]
    more = f" (and {exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else ""
    given = first.get("input")
    shown = "" if first["type"] == "missing" or isinstance(given, (dict, list)) else f", got {given!r}"
    return f"field {_where(first['loc'])}: {first['msg']}{shown}{more}"


def validate_result(data: Any, path: str | os.PathLike[str]) -> dict[str, Any]:
    """``data`` (a parsed ``result.json`` from ``path``, named in errors) checked as described in the module
    docstring; returns it unchanged."""
    from hwmodel.accelerator import Accelerator
    from hwmodel.mapping import Mapping

    if not isinstance(data, dict):
        raise ValueError(f"co-search result {path}: expected a JSON object, got {type(data).__name__}")
    try:
        result = _Result.model_validate(data)
    except ValidationError as exc:
        raise ValueError(f"co-search result {path}: {_one_line(exc)}") from None
    if result.schema_version != RESULT_SCHEMA_VERSION:
        raise ValueError(f"co-search result {path}: field schema_version: {result.schema_version} is not supported "
                         f"(this version reads {RESULT_SCHEMA_VERSION})")
    checks: list[tuple[str, Any]] = [("accelerator", lambda: Accelerator.from_dict(data["accelerator"]))]
    for i, entry in enumerate(data["mappings"]):
        checks.append((f"mappings[{i}].dims", lambda e=entry: entry_layer(e)))
        checks.append((f"mappings[{i}].mapping", lambda e=entry: Mapping.from_dict(e["mapping"])))
    for field, check in checks:
        try:
            check()
        except (ValueError, TypeError, KeyError, OverflowError) as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ValueError(f"co-search result {path}: field {field}: {message}") from None
    return data


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    duplicated = sorted({k for k in keys if keys.count(k) > 1})
    if duplicated:
        raise ValueError(f"duplicated key(s) {duplicated}")
    return dict(pairs)


def read_result(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checked content of the co-search result ``path`` (see :func:`validate_result`)."""
    path = Path(path)
    if not path.is_file():
        what = "does not exist" if not os.path.lexists(path) else "is not a regular file"
        raise ValueError(f"co-search result {path} {what}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_no_duplicates)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ValueError(f"cannot read co-search result {path}: {str(exc).splitlines()[0]}") from None
    return validate_result(data, path)
