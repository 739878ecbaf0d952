"""Supernet registry: the classes a spec may name, and specs that rebuild a supernet (timm ``_registry.py`` style).

A spec is plain data, ``{"class_path": "supernet.OFAMobileNetV3", "init_args": {...}}``, as export bundles,
fine-tuned checkpoints and recipes store it. ``@register_supernet`` adds a class; the class's ``init_args()``
returns the constructor arguments that rebuild its architecture (weights not included).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import torch
import torch.nn as nn

__all__ = ["build_supernet", "list_supernets", "register_supernet", "supernet_class", "supernet_spec"]

#: The package a spec's ``class_path`` names (``"supernet.<class name>"``).
PACKAGE = "supernet"

_SUPERNETS: dict[str, type[nn.Module]] = {}

ModuleClass = TypeVar("ModuleClass", bound=type[nn.Module])


def register_supernet(cls: ModuleClass) -> ModuleClass:
    """Class decorator: make ``cls`` (an ``nn.Module`` with an ``init_args()`` method) buildable from a spec."""
    if not callable(getattr(cls, "init_args", None)):
        raise TypeError(f"supernet {cls.__name__} needs an init_args() method to be registered")
    if _SUPERNETS.get(cls.__name__, cls) is not cls:
        raise ValueError(f"a different supernet class named {cls.__name__} is already registered")
    _SUPERNETS[cls.__name__] = cls
    return cls


def list_supernets() -> list[str]:
    """Names of the registered supernet classes, sorted."""
    return sorted(_SUPERNETS)


def supernet_class(class_path: str) -> type[nn.Module]:
    """The registered class ``class_path`` names (``"supernet.X"`` or the defining module's ``"supernet.mod.X"``)."""
    module, _, name = class_path.rpartition(".")
    cls = _SUPERNETS.get(name)
    if cls is None or module not in (PACKAGE, cls.__module__):
        raise ValueError(f"supernet class {class_path!r} is not registered; registered: "
                         f"{', '.join(f'{PACKAGE}.{n}' for n in list_supernets())}")
    return cls


def supernet_spec(net: nn.Module) -> dict[str, Any]:
    """``{"class_path", "init_args"}`` that rebuild ``net``'s architecture (weights not included)."""
    name = type(net).__name__
    if _SUPERNETS.get(name) is not type(net):
        raise ValueError(f"cannot describe supernet {name}: registered supernets are {', '.join(list_supernets())}")
    return {"class_path": f"{PACKAGE}.{name}", "init_args": net.init_args()}


def build_supernet(spec: Mapping[str, Any], device: str | torch.device = "cpu") -> nn.Module:
    """The supernet a :func:`supernet_spec` describes (random weights; ``device="meta"`` allocates nothing)."""
    cls = supernet_class(str(spec["class_path"]))
    args = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(spec.get("init_args", {})).items()}
    with torch.device(device):
        return cls(**args)
