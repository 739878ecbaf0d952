"""Strict parsing of every user-facing ``hwmodel`` spec: one place for the bounds, the JSON reader and the error line.

Files (accelerator JSON/YAML, mapping JSON) are read by :func:`load_json_text` / :func:`load_spec_file` (duplicate
keys, nesting deeper than :data:`MAX_DEPTH` and files over :data:`MAX_FILE_BYTES` refused;
YAML through :mod:`hwmodel.safe_yaml`, which bounds aliases and the expanded size) and checked by pydantic v2
models in strict mode (:func:`validate_model`): types are exact (``"false"`` is not a bool, ``"12"`` not an int,
``12.7`` / ``16.0`` not an int, ``true`` not a number), numbers finite, unknown keys refused. Every error is one
``ValueError`` line: the file (when there is one), the field path, what is wrong and what is allowed.

The bounds keep every count of the cost model inside int64 and every figure inside float64 (see
:data:`BOUNDS`): a layer has at most :data:`MAX_DIM` per dim and :data:`MAX_WORK` MACs and words per tensor;
a mapping at most :data:`MAX_FACTOR` per factor, :data:`MAX_COVERAGE` per dim and :data:`MAX_PADDED` padded
iterations; so products with word widths (<= 64 = 2**6 bits) stay below 2**63.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pydantic is imported when a spec is validated, not with this module
    from pydantic import BaseModel

# --- bounds ---------------------------------------------------------------------------------------------
#: Largest PE-array axis and PE count.
MAX_AXIS = 2**16
MAX_PES = 2**24
#: Largest buffer: L1 entries per PE, L2 bytes.
MAX_BUFFER = 2**40
#: Largest bandwidth (words per cycle); bandwidths must be > 0.
MAX_BANDWIDTH = 1e12
#: Word and partial-sum widths in bits.
MIN_BITS, MAX_BITS = 1, 64
#: Longest accelerator / layer name.
MAX_NAME = 256
#: Supported accelerator ``schema_version`` values: 1 .. this.
ACCELERATOR_SCHEMA_VERSION = 1
#: Largest layer dim (N G K C P Q R S), stride / dilation, and instance count.
MAX_DIM = 2**24
MAX_STRIDE = 2**16
MAX_COUNT = 2**32
#: Largest MAC count of one layer instance and largest tensor (words, inputs with their halo).
MAX_WORK = 2**48
#: Largest mapping factor, product of one dim's factors, and padded iteration space (product over all dims).
MAX_FACTOR = 2**24
MAX_COVERAGE = 2**40
MAX_PADDED = 2**56
#: Deepest nesting of a JSON/YAML spec (ours are at most ~8 deep) and largest spec file.
MAX_DEPTH = 64
MAX_FILE_BYTES = 16 * 1024 * 1024

BOUNDS: dict[str, str] = {
    "array axis": f"1..{MAX_AXIS}",
    "PEs (product of the axes)": f"<= {MAX_PES}",
    "l1_words / l1_partition entries / l2_bytes": f"1..{MAX_BUFFER}",
    "noc_bandwidth / dram_bandwidth": f"(0, {MAX_BANDWIDTH:g}] words/cycle",
    "word_bits / psum_bits": f"{MIN_BITS}..{MAX_BITS}",
    "name": f"a string of at most {MAX_NAME} characters",
    "layer dim": f"1..{MAX_DIM}",
    "stride / dilation": f"1..{MAX_STRIDE}",
    "count": f"1..{MAX_COUNT}",
    "MACs, tensor words of a layer": f"<= {MAX_WORK}",
    "mapping factor": f"1..{MAX_FACTOR}",
    "product of one dim's mapping factors": f"<= {MAX_COVERAGE}",
    "padded iterations of a mapping": f"<= {MAX_PADDED}",
    "JSON/YAML nesting": f"<= {MAX_DEPTH}",
}


# --- values in error messages ---------------------------------------------------------------------------
def show(value: Any, limit: int = 60) -> str:
    """A short, safe rendering of a user value for an error line (never the whole of a large structure)."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, (int, np.integer)):
        value = int(value)
        if value.bit_length() > 128:
            return f"an integer of {value.bit_length()} bits"
        text = repr(value)
    elif isinstance(value, (float, np.floating)):
        text = repr(float(value))
    elif isinstance(value, str):
        return repr(value) if len(value) <= limit else repr(value[:limit]) + f"... ({len(value)} characters)"
    elif isinstance(value, dict):
        return f"an object with {len(value)} key(s)"
    elif isinstance(value, (list, tuple)):
        return f"a list of {len(value)} item(s)"
    else:
        return f"a {type(value).__name__}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def join_path(loc: Sequence[Any]) -> str:
    """``("array", 0)`` -> ``array[0]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def prefixed(where: str | None, message: str) -> str:
    return f"{where}: {message}" if where else message


# --- plain Python values (the API: numpy scalars allowed, nothing else coerced) -------------------------
def as_int(value: Any, field: str, lo: int, hi: int) -> int:
    """``value`` as an int in ``lo..hi``: a Python or numpy integer (not a bool, float or string)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{field} must be an integer {lo}..{hi}, got {show(value)}")
    value = int(value)
    if not lo <= value <= hi:
        raise ValueError(f"{field} must be an integer {lo}..{hi}, got {show(value)}")
    return value


def as_float(value: Any, field: str, hi: float, unit: str = "") -> float:
    """``value`` as a finite float in ``(0, hi]``: a Python/numpy int or float (not a bool or string)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{field} must be a number in (0, {hi:g}]{unit}, got {show(value)}")
    try:
        out = float(value)
    except OverflowError:
        out = math.inf
    if not (math.isfinite(out) and 0 < out <= hi):
        raise ValueError(f"{field} must be a finite number in (0, {hi:g}]{unit}, got {show(value)}")
    return out


def as_bool(value: Any, field: str) -> bool:
    """``value`` as a bool: ``True``/``False`` (or numpy's); ``"false"``, ``0`` and the like are refused."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{field} must be true or false, got {show(value)}")
    return bool(value)


def as_name(value: Any, field: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_NAME:
        raise ValueError(f"{field} must be a string of at most {MAX_NAME} characters, got {show(value)}")
    return value


# --- files ----------------------------------------------------------------------------------------------
def check_depth(data: Any, where: str | None, limit: int = MAX_DEPTH) -> None:
    """``ValueError`` when ``data`` nests lists/objects deeper than ``limit`` (iterative: no recursion)."""
    stack = [(data, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth > limit:
            raise ValueError(prefixed(where, f"nested deeper than {limit} levels; allowed: at most {limit}"))
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list, tuple)))


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {show(key)}")
        out[key] = value
    return out


def load_json_text(text: str, where: str | None) -> Any:
    """Parse JSON strictly: duplicate keys and nesting deeper than :data:`MAX_DEPTH` are refused; every problem
    is a one-line ``ValueError`` naming ``where``. ``NaN``, ``Infinity`` and ``1e999`` read as non-finite floats,
    which every schema here refuses naming the field (``must be a finite number`` / ``an integer``)."""
    if len(text) > MAX_FILE_BYTES:
        raise ValueError(prefixed(where, f"larger than {MAX_FILE_BYTES} bytes"))
    try:
        data = json.loads(text, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise ValueError(prefixed(where, f"not valid JSON: nested too deeply (allowed: at most {MAX_DEPTH} "
                                         "levels)")) from None
    except json.JSONDecodeError as exc:
        raise ValueError(prefixed(where, f"not valid JSON: {exc}")) from None
    except ValueError as exc:  # our hooks, or an integer beyond Python's digit limit
        text = " ".join(str(exc).split())[:200]
        if text.startswith("Exceeds the limit"):
            text = "an integer with more than 4300 digits"
        raise ValueError(prefixed(where, f"not valid JSON: {text}")) from None
    check_depth(data, where)
    return data


def read_text(path: Path, what: str) -> str:
    """The text of ``path`` (at most :data:`MAX_FILE_BYTES`, UTF-8); ``ValueError`` naming it otherwise."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ValueError(f"{what} {path} is larger than {MAX_FILE_BYTES} bytes")
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} {path} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ValueError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def load_spec_file(path: str | os.PathLike[str], what: str) -> Any:
    """A JSON (or, by suffix ``.yaml``/``.yml``, YAML) file's data, parsed with the limits above."""
    from hwmodel.safe_yaml import load_yaml_text

    p = Path(path)
    text = read_text(p, what)
    where = f"{what} {p}"
    if p.suffix.lower() in (".yaml", ".yml"):
        try:
            data = load_yaml_text(text, where)
        except ValueError as exc:
            raise ValueError(str(exc).replace(f"{where}: not valid YAML", f"cannot parse {where}", 1)) from None
        check_depth(data, where)
        return data
    try:
        return load_json_text(text, where)
    except ValueError as exc:
        raise ValueError(str(exc).replace(f"{where}: not valid JSON", f"cannot parse {where}", 1)) from None


# --- pydantic ---------------------------------------------------------------------------------------------
_TYPE_WORDS = {
    "int_type": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "finite_number": "must be a finite number",
    "extra_forbidden": "is not a known field",
    "missing": "is required",
}


def _problem(err: dict[str, Any]) -> str:
    kind = err["type"]
    if kind in _TYPE_WORDS:
        return _TYPE_WORDS[kind]
    msg = str(err.get("msg", kind))
    for old, new in (("Input should be", "must be"), ("List should have", "must have"),
                     ("Dictionary should have", "must have"), ("Value error, ", ""), ("Input", "value")):
        msg = msg.replace(old, new)
    return msg


def _only_json(value: Any) -> Any:
    """Tuples as lists (Python callers pass tuples where a file has lists); nothing else is converted."""
    stack: list[Any] = []
    if isinstance(value, tuple):
        value = list(value)
    root = value
    stack.append(root)
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for k, v in item.items():
                if isinstance(v, tuple):
                    item[k] = v = list(v)
                if isinstance(v, (dict, list)):
                    stack.append(v)
        elif isinstance(item, list):
            for i, v in enumerate(item):
                if isinstance(v, tuple):
                    item[i] = v = list(v)
                if isinstance(v, (dict, list)):
                    stack.append(v)
    return root


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_copy(v) for v in value]
    return value


def validate_model(model: type[BaseModel], data: Any, where: str | None, prefix: str = "",
                   allowed: Callable[[tuple[Any, ...]], str | None] | None = None,
                   key_noun: Callable[[tuple[Any, ...]], str] | None = None, noun: str = "field") -> BaseModel:
    """``model`` validated strictly from ``data``; the first error as one ``ValueError`` line:
    ``<where>: <prefix><field path>: <problem>, got <value>; allowed: <allowed(path)>``."""
    from pydantic import ValidationError

    check_depth(data, where)
    data = _only_json(_copy(data))
    try:
        return model.model_validate(data, strict=True)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    err = errors[0]
    loc = tuple(err["loc"])
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    if loc and loc[-1] == "[key]":  # a dict key outside a Literal: name the key itself
        path = join_path(loc[:-2])
        noun = key_noun(loc) if key_noun else "key"
        expected = (err.get("ctx") or {}).get("expected", "")
        where_in = f" in {prefix}{path}" if path else (f" in {prefix.rstrip('.')}" if prefix else "")
        return _raise(where, f"unknown {noun} {show(loc[-2])}{where_in}; allowed: {expected}{more}")
    path = prefix + join_path(loc)
    if err["type"] == "extra_forbidden":
        parent = prefix + join_path(loc[:-1]) if loc[:-1] else prefix.rstrip(".") or noun.split()[0]
        return _raise(where, f"unknown {noun} {show(loc[-1])} in {parent}{more}"
                      + (f"; allowed: {allowed(loc[:-1])}" if allowed and allowed(loc[:-1]) else ""))
    text = f"{path}: {_problem(err)}"
    if err["type"] != "missing":
        text += f", got {show(err.get('input'))}"
    hint = allowed(loc) if allowed else None
    if hint:
        text += f"; allowed: {hint}"
    return _raise(where, text + more)


def _raise(where: str | None, message: str) -> Any:
    raise ValueError(prefixed(where, " ".join(message.splitlines())))
