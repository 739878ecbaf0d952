"""Search objectives: the one table of what ``edp``, ``latency`` and ``energy`` minimise.

Every search (mapping ES :mod:`hwmodel.search`, nest sampling :mod:`hwmodel.nest_search`, accelerator CMA-ES
:mod:`hwmodel.accel_search`, the co-searches and the ``naas-hw`` CLI) reads objective names, values and metric
columns from here. Per objective, an :class:`ObjectiveSpec` gives:

* ``value(cycles, energy_pj)``: the figure minimised, from total (or per-layer) cycles and energy;
* ``key``: the same figure's key in a cost report dict (``cycles`` / ``energy_pj`` / ``edp``), which is also
  the attribute of :class:`hwmodel.costmodel.Cost` and :class:`hwmodel.nestmodel.NestCost` holding it;
* ``family_column``: its column in the family metrics (``hwmodel.nestkernel.FM_*``, i.e.
  ``hwmodel.costmodel.METRICS``);
* ``nest_column``: its column in the general nest metrics (``hwmodel.nestkernel.MT_*``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal, get_args

from hwmodel import nestkernel as nk
from hwmodel.validate import show

#: Objective names, for type checkers (kept equal to the registry below; checked at import).
Objective = Literal["edp", "latency", "energy"]


@dataclass(frozen=True)
class ObjectiveSpec:
    """One objective: its name, a one-line description, the figure it minimises and where that figure lives."""

    name: str
    description: str
    value: Callable[[float, float], float]  # (cycles, energy_pj) -> figure to minimise
    key: str  # key in a cost report / attribute of Cost and NestCost
    family_column: int  # column of hwmodel.costmodel.METRICS (nestkernel.FM_*)
    nest_column: int  # column of the nest metrics (nestkernel.MT_*)


_OBJECTIVES: dict[str, ObjectiveSpec] = {}


def _register(spec: ObjectiveSpec) -> ObjectiveSpec:
    if spec.name in _OBJECTIVES:
        raise ValueError(f"objective {spec.name!r} is registered twice")
    _OBJECTIVES[spec.name] = spec
    return spec


def _edp(cycles: float, energy_pj: float) -> float:
    return cycles * energy_pj


def _latency(cycles: float, energy_pj: float) -> float:
    return cycles


def _energy(cycles: float, energy_pj: float) -> float:
    return energy_pj


_register(ObjectiveSpec("edp", "energy-delay product: energy (pJ) x cycles", _edp, "edp", nk.FM_EDP, nk.MT_EDP))
_register(ObjectiveSpec("latency", "latency in cycles", _latency, "cycles", nk.FM_CYCLES, nk.MT_CYCLES))
_register(ObjectiveSpec("energy", "energy in pJ", _energy, "energy_pj", nk.FM_ENERGY, nk.MT_ENERGY))

if tuple(_OBJECTIVES) != get_args(Objective):  # pragma: no cover - a registry edit without the Literal
    raise ImportError(f"hwmodel.objectives: Objective {get_args(Objective)} != registry {tuple(_OBJECTIVES)}")

#: Name -> spec, in registration order (read-only).
OBJECTIVES: Mapping[str, ObjectiveSpec] = MappingProxyType(_OBJECTIVES)
#: Name -> column of the family metrics (``hwmodel.costmodel.METRICS``), derived from :data:`OBJECTIVES`.
FAMILY_COLUMNS: Mapping[str, int] = MappingProxyType({n: s.family_column for n, s in _OBJECTIVES.items()})
#: Name -> column of the nest metrics (``nestkernel.MT_*``), derived from :data:`OBJECTIVES`.
NEST_COLUMNS: Mapping[str, int] = MappingProxyType({n: s.nest_column for n, s in _OBJECTIVES.items()})


def objective_names() -> tuple[str, ...]:
    """The objective names, in registration order (``edp``, ``latency``, ``energy``)."""
    return tuple(_OBJECTIVES)


def get_objective(name: Any, what: str = "objective") -> ObjectiveSpec:
    """The spec of objective ``name``; ``ValueError`` naming the bad value and the allowed ones otherwise
    (``what`` names the setting in that message)."""
    if isinstance(name, str) and name in _OBJECTIVES:
        return _OBJECTIVES[name]
    raise ValueError(f"unknown {what} {show(name)}; choose one of {', '.join(_OBJECTIVES)}")


def objective_value(name: str, cycles: float, energy_pj: float) -> float:
    """The figure objective ``name`` minimises for ``cycles`` and ``energy_pj``."""
    return get_objective(name).value(cycles, energy_pj)


__all__ = [
    "FAMILY_COLUMNS", "NEST_COLUMNS", "OBJECTIVES", "Objective", "ObjectiveSpec",
    "get_objective", "objective_names", "objective_value",
]
