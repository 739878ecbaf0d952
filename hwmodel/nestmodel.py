"""Mappings on storage hierarchies and their cost (the Python edge of :mod:`hwmodel.nestkernel`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hwmodel import nestkernel as nk
from hwmodel.hierarchy import Hierarchy
from hwmodel.layer import DIMS, TENSORS, Layer

#: Timeloop's names of our tensors.
TIMELOOP_TENSORS: dict[str, str] = {"weights": "Weights", "inputs": "Inputs", "outputs": "Outputs"}


def layer_params(layer: Layer) -> np.ndarray:
    """The kernel's layer vector: 8 dims, stride h/w, dilation h/w."""
    return np.array([*layer.dim_array.tolist(), *layer.stride, *layer.dilation], dtype=np.int64)


@dataclass
class NestMapping:
    """Per storage level: temporal factors ``[L, 8]``, loop order ``[L, 8]`` (dims outermost first),
    spatial factors of the fanout below the level ``[L, 3, 8]`` (per axis) and ``keep[L, 3]`` (0 = the
    mapping bypasses the tensor at that level)."""

    temporal: np.ndarray
    spatial: np.ndarray
    order: np.ndarray
    keep: np.ndarray

    def __post_init__(self) -> None:
        self.temporal = np.asarray(self.temporal, dtype=np.int64)
        n = self.temporal.shape[0]
        self.spatial = np.asarray(self.spatial, dtype=np.int64).reshape(n, nk.MAX_AXES, nk.NUM_DIMS)
        self.order = np.asarray(self.order, dtype=np.int64).reshape(n, nk.NUM_DIMS)
        self.keep = np.asarray(self.keep, dtype=np.int64).reshape(n, nk.NUM_TENSORS)
        if (self.temporal < 1).any() or (self.spatial < 1).any():
            raise ValueError("mapping factors must be >= 1")
        for l in range(n):
            if sorted(self.order[l].tolist()) != list(range(nk.NUM_DIMS)):
                raise ValueError(f"mapping order of level {l} must be a permutation of {', '.join(DIMS)}")

    @classmethod
    def empty(cls, n_levels: int) -> NestMapping:
        return cls(
            temporal=np.ones((n_levels, nk.NUM_DIMS), dtype=np.int64),
            spatial=np.ones((n_levels, nk.MAX_AXES, nk.NUM_DIMS), dtype=np.int64),
            order=np.tile(np.arange(nk.NUM_DIMS, dtype=np.int64), (n_levels, 1)),
            keep=np.ones((n_levels, nk.NUM_TENSORS), dtype=np.int64),
        )

    def padded(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The arrays padded to :data:`nestkernel.MAX_LEVELS` rows."""
        n = self.temporal.shape[0]
        t = np.ones((nk.MAX_LEVELS, nk.NUM_DIMS), dtype=np.int64)
        s = np.ones((nk.MAX_LEVELS, nk.MAX_AXES, nk.NUM_DIMS), dtype=np.int64)
        o = np.tile(np.arange(nk.NUM_DIMS, dtype=np.int64), (nk.MAX_LEVELS, 1))
        k = np.zeros((nk.MAX_LEVELS, nk.NUM_TENSORS), dtype=np.int64)
        t[:n], s[:n], o[:n], k[:n] = self.temporal, self.spatial, self.order, self.keep
        return t, s, o, k


@dataclass
class NestCost:
    """Cost of one layer instance under one mapping on a hierarchy. ``levels[name][tensor]`` holds totals
    over all instances of that level (``reads``, ``fills``, ``updates``, ``partition``, ``tile``,
    ``instances``)."""

    valid: bool
    reason: str
    macs: int
    cycles: float
    compute_cycles: float
    energy_pj: float
    edp: float
    utilization: float
    energy_by_level: dict[str, float] = field(default_factory=dict)
    energy_by_tensor: dict[str, float] = field(default_factory=dict)
    mac_energy_pj: float = 0.0
    levels: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    def timeloop(self) -> dict[str, Any]:
        """Timeloop-named totals: ``{"cycles", "energy_pj", "levels": {LEVEL: {Tensor: {reads, fills, updates}}}}``."""
        return {
            "cycles": self.cycles,
            "energy_pj": self.energy_pj,
            "levels": {
                lvl: {
                    TIMELOOP_TENSORS[t]: {k: round(v[k]) for k in ("reads", "fills", "updates")}
                    for t, v in per.items()
                }
                for lvl, per in self.levels.items()
            },
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "valid": self.valid, "reason": self.reason, "macs": self.macs, "cycles": self.cycles,
            "compute_cycles": self.compute_cycles, "energy_pj": self.energy_pj, "edp": self.edp,
            "utilization": self.utilization, "mac_energy_pj": self.mac_energy_pj,
            "energy_by_level": self.energy_by_level, "energy_by_tensor": self.energy_by_tensor,
            "levels": self.levels,
        }


def evaluate_nest_batch(layer: Layer, hier: Hierarchy, mappings: list[NestMapping]):
    """Evaluate mappings; returns ``(codes[B], metrics[B, MT_SIZE], counts[B, MAX_LEVELS, 3, CT_SIZE])``."""
    ai, af, conn, e_mac = hier.arrays()
    packed = [m.padded() for m in mappings]
    stack = [np.stack([p[k] for p in packed]) for k in range(4)]
    return nk.evaluate_nest_batch(layer_params(layer), len(hier.levels), ai, af, conn, e_mac, *stack)


def check_mapping(layer: Layer, hier: Hierarchy, mapping: NestMapping) -> None:
    """``ValueError`` naming the level and field when a mapping cannot run ``layer`` on ``hier``."""
    n = len(hier.levels)
    if mapping.temporal.shape[0] != n:
        raise ValueError(f"mapping has {mapping.temporal.shape[0]} levels, hierarchy {hier.name!r} has {n}")
    cov = mapping.temporal.prod(axis=0) * mapping.spatial.prod(axis=(0, 1))
    for d, dim in enumerate(DIMS):
        if cov[d] < layer.dim_array[d]:
            raise ValueError(f"mapping factors of dim {dim} multiply to {cov[d]} < layer {dim}={layer.dim_array[d]}")
    for l, lv in enumerate(hier.levels):
        used = mapping.spatial[l]
        axes = lv.fanout.axes if lv.fanout is not None else ()
        for a in range(nk.MAX_AXES):
            if a >= len(axes):
                if (used[a] > 1).any():
                    raise ValueError(f"mapping unrolls on axis {a} below level {lv.name}, which has {len(axes)} fanout axes")
                continue
            for d in range(nk.NUM_DIMS):
                if used[a, d] > 1 and DIMS[d] not in lv.fanout.connectivity[a]:
                    raise ValueError(
                        f"mapping unrolls {DIMS[d]} on axis {a} below level {lv.name}, whose connectivity allows only "
                        f"{', '.join(lv.fanout.connectivity[a])}"
                    )
            if used[a].prod() > axes[a]:
                raise ValueError(f"mapping unrolls {int(used[a].prod())} on axis {a} of size {axes[a]} below level {lv.name}")


def cost_from_row(hier: Hierarchy, code: int, metrics: np.ndarray, counts: np.ndarray, macs: int) -> NestCost:
    if code != nk.OK:
        reason = nk.INVALID_REASONS[code]
        bad = int(metrics[nk.MT_BAD_LEVEL])
        if bad >= 0:
            reason += f" (level {hier.levels[bad].name})"
        inf = math.inf
        return NestCost(False, reason, macs, inf, inf, inf, inf, 0.0)
    levels: dict[str, dict[str, dict[str, float]]] = {}
    for l, lv in enumerate(hier.levels):
        per: dict[str, dict[str, float]] = {}
        for t, name in enumerate(TENSORS):
            if counts[l, t, nk.CT_INSTANCES] > 0:
                per[name] = {
                    "reads": float(counts[l, t, nk.CT_READS]),
                    "fills": float(counts[l, t, nk.CT_FILLS]),
                    "updates": float(counts[l, t, nk.CT_UPDATES]),
                    "partition": float(counts[l, t, nk.CT_PARTITION]),
                    "tile": float(counts[l, t, nk.CT_TILE]),
                    "instances": float(counts[l, t, nk.CT_INSTANCES]),
                }
        levels[lv.name] = per
    return NestCost(
        valid=True,
        reason="valid",
        macs=macs,
        cycles=float(metrics[nk.MT_CYCLES]),
        compute_cycles=float(metrics[nk.MT_COMPUTE]),
        energy_pj=float(metrics[nk.MT_ENERGY]),
        edp=float(metrics[nk.MT_EDP]),
        utilization=float(metrics[nk.MT_UTIL]),
        energy_by_level={lv.name: float(metrics[nk.MT_E_LEVEL0 + l]) for l, lv in enumerate(hier.levels)},
        energy_by_tensor={t: float(metrics[nk.MT_E_W + i]) for i, t in enumerate(TENSORS)},
        mac_energy_pj=float(metrics[nk.MT_E_MAC]),
        levels=levels,
    )


def evaluate_nest_mapping(layer: Layer, hier: Hierarchy, mapping: NestMapping) -> NestCost:
    """Cost of one instance of ``layer`` on ``hier`` under ``mapping`` (``ValueError`` for an illegal unroll
    or factors that do not cover the layer; tiles that overflow a level give ``valid=False``)."""
    check_mapping(layer, hier, mapping)
    codes, metrics, counts = evaluate_nest_batch(layer, hier, [mapping])
    return cost_from_row(hier, int(codes[0]), metrics[0], counts[0], layer.macs)
