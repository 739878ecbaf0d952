"""Accelerators by name: a preset, ``systolic:RxC`` or a JSON/YAML file.

Imports go one way: :mod:`hwmodel.loading` -> :mod:`hwmodel.presets` -> :mod:`hwmodel.accelerator`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from hwmodel.accelerator import Accelerator
from hwmodel.presets import PRESETS, systolic
from hwmodel.validate import MAX_AXIS, load_spec_file, show


def load_accelerator(spec: str | os.PathLike | Accelerator) -> Accelerator:
    """An accelerator from a preset name, ``systolic:RxC`` or a JSON/YAML file (strict: :meth:`Accelerator.from_dict`;
    a file may also wrap the fields as ``{"accelerator": {...}}``, as reports do)."""
    if isinstance(spec, Accelerator):
        return spec
    text = str(spec)
    if text in PRESETS:
        return PRESETS[text]
    if text.startswith("systolic:"):
        if not re.fullmatch(r"systolic:[0-9]{1,12}x[0-9]{1,12}", text.strip()):
            raise ValueError(f"systolic accelerator spec must look like 'systolic:32x32' (sizes 1..{MAX_AXIS} in ASCII "
                             f"digits), got {show(text)}")
        try:
            return systolic(text)
        except ValueError as exc:
            raise ValueError(f"accelerator {show(text)}: {exc}") from None
    path = Path(text)
    if not os.path.isfile(path):
        raise ValueError(
            f"accelerator {show(text, 200)} is not a preset ({', '.join(sorted(PRESETS))}), not systolic:RxC, "
            "and no such JSON/YAML file exists"
        )
    data = load_spec_file(path, "accelerator file")
    where = f"accelerator file {path}"
    if not isinstance(data, dict):
        raise ValueError(f"{where} must hold an object of fields, got {show(data)}")
    if "accelerator" in data and isinstance(data["accelerator"], dict):
        data = data["accelerator"]
    return Accelerator.from_dict(data, source=where)
