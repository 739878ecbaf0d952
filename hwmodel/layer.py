"""Layer shapes: the *problem* of the Timeloop split (dims only, no data)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

#: Loop dims of a (grouped) convolution, in the order used by every flat array of the cost model.
#: N batch, G groups, K output channels per group, C input channels per group,
#: P/Q output rows/columns, R/S filter rows/columns.
DIMS: tuple[str, ...] = ("N", "G", "K", "C", "P", "Q", "R", "S")
DIM_INDEX: dict[str, int] = {d: i for i, d in enumerate(DIMS)}
N, G, K, C, P, Q, R, S = range(8)

#: Which dims index each tensor (weights, inputs, outputs). Inputs are indexed by P/R and Q/S through
#: the sliding window ``h = p * stride + r * dilation``.
TENSORS: tuple[str, ...] = ("weights", "inputs", "outputs")
TENSOR_DIMS: dict[str, tuple[str, ...]] = {
    "weights": ("G", "K", "C", "R", "S"),
    "inputs": ("N", "G", "C", "P", "Q", "R", "S"),
    "outputs": ("N", "G", "K", "P", "Q"),
}
#: relevance[t, d] = 1 when dim d indexes tensor t.
RELEVANCE = np.array([[1 if d in TENSOR_DIMS[t] else 0 for d in DIMS] for t in TENSORS], dtype=np.int64)


def _pair(value: Any, name: str) -> tuple[int, int]:
    try:
        if isinstance(value, (tuple, list)):
            if len(value) != 2:
                raise ValueError
            pair = (int(value[0]), int(value[1]))
        else:
            pair = (int(value), int(value))
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"Layer.{name} must be an int or a pair (h, w), got {value!r}") from None
    if min(pair) < 1:
        raise ValueError(f"Layer.{name} must be >= 1, got {value!r}")
    return pair


@dataclass(frozen=True)
class Layer:
    """One convolution / matmul shape.

    ``K`` and ``C`` are *per group*: a depthwise conv over 32 channels is ``G=32, K=1, C=1``; a linear layer
    ``in -> out`` is ``K=out, C=in, P=Q=R=S=1``. ``count`` is how many identical instances the network has
    (identical shapes merge). Stride and dilation are ints or ``(h, w)`` pairs.
    """

    K: int
    C: int
    P: int = 1
    Q: int = 1
    R: int = 1
    S: int = 1
    N: int = 1
    G: int = 1
    stride: int | tuple[int, int] = 1
    dilation: int | tuple[int, int] = 1
    name: str = ""
    count: int = 1
    op: str = field(default="conv", compare=False)

    def __post_init__(self) -> None:
        for d in DIMS:
            v = getattr(self, d)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
                raise ValueError(f"Layer.{d} must be an integer, got {v!r}")
            if v < 1:
                raise ValueError(f"Layer.{d} must be >= 1 (a positive size), got {v}")
            if v >= 2**31:
                raise ValueError(f"Layer.{d} must be < 2**31, got {v}")
            object.__setattr__(self, d, int(v))
        object.__setattr__(self, "stride", _pair(self.stride, "stride"))
        object.__setattr__(self, "dilation", _pair(self.dilation, "dilation"))
        if not isinstance(self.count, (int, np.integer)) or isinstance(self.count, bool) or self.count < 1:
            raise ValueError(f"Layer.count must be an integer >= 1, got {self.count!r}")
        object.__setattr__(self, "count", int(self.count))

    # --- shapes ---------------------------------------------------------------------------------------
    @property
    def dims(self) -> dict[str, int]:
        """The eight loop bounds by name."""
        return {d: getattr(self, d) for d in DIMS}

    @property
    def dim_array(self) -> np.ndarray:
        """Loop bounds as an int64 array in :data:`DIMS` order."""
        return np.array([getattr(self, d) for d in DIMS], dtype=np.int64)

    @property
    def H(self) -> int:
        """Input rows the layer reads (padding included): ``(P-1)*stride + (R-1)*dilation + 1``."""
        return (self.P - 1) * self.stride[0] + (self.R - 1) * self.dilation[0] + 1

    @property
    def W(self) -> int:
        """Input columns the layer reads (padding included)."""
        return (self.Q - 1) * self.stride[1] + (self.S - 1) * self.dilation[1] + 1

    @property
    def macs(self) -> int:
        """Multiply-accumulates of one instance."""
        return self.N * self.G * self.K * self.C * self.P * self.Q * self.R * self.S

    @property
    def tensor_sizes(self) -> dict[str, int]:
        """Words in each tensor of one instance (inputs include the padding halo)."""
        return {
            "weights": self.G * self.K * self.C * self.R * self.S,
            "inputs": self.N * self.G * self.C * self.H * self.W,
            "outputs": self.N * self.G * self.K * self.P * self.Q,
        }

    @property
    def is_depthwise(self) -> bool:
        return self.G > 1 and self.K == 1 and self.C == 1

    @property
    def shape_key(self) -> tuple:
        """Everything that determines cost (not name, count or op): layers with equal keys merge."""
        return (*(getattr(self, d) for d in DIMS), self.stride, self.dilation)

    # --- (de)serialisation ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "op": self.op}
        out.update(self.dims)
        out["stride"] = list(self.stride)
        out["dilation"] = list(self.dilation)
        out["count"] = self.count
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Layer":
        if not isinstance(data, dict):
            raise ValueError(f"a Layer must be a mapping of fields (K, C, ...), got {type(data).__name__}")
        allowed = set(DIMS) | {"stride", "dilation", "name", "count", "op"}
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown Layer field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        if "K" not in data or "C" not in data:
            raise ValueError("Layer needs at least K and C")
        return cls(**data)

    @classmethod
    def parse(cls, spec: str) -> "Layer":
        """Parse ``"N=1,G=1,K=64,C=64,P=56,Q=56,R=3,S=3,stride=1"`` (``stride``/``dilation`` may be ``2x1``)."""
        fields: dict[str, Any] = {}
        for part in spec.split(","):
            part = part.strip()
            if not part:
                continue
            if "=" not in part:
                raise ValueError(f"layer spec item {part!r} is not KEY=VALUE (e.g. K=64)")
            key, value = (s.strip() for s in part.split("=", 1))
            if key == "name":
                fields[key] = value
                continue
            if key not in set(DIMS) | {"stride", "dilation", "count"}:
                raise ValueError(f"unknown layer dim {key!r}; allowed: {', '.join(DIMS)}, stride, dilation, count")
            try:
                if key in ("stride", "dilation") and "x" in value:
                    fields[key] = tuple(int(v) for v in value.split("x"))
                else:
                    fields[key] = int(value)
            except ValueError:
                raise ValueError(f"layer dim {key} must be an integer, got {value!r}") from None
        return cls.from_dict(fields)

    def with_count(self, count: int) -> "Layer":
        return replace(self, count=count)

    def __str__(self) -> str:
        s = ",".join(f"{d}={getattr(self, d)}" for d in DIMS)
        st = self.stride[0] if self.stride[0] == self.stride[1] else f"{self.stride[0]}x{self.stride[1]}"
        return f"{self.name or 'layer'}[{s},stride={st}]x{self.count}"


def merge_layers(layers: list[Layer]) -> list[Layer]:
    """Merge layers of identical shape into one with the summed count (first name kept, order kept)."""
    merged: dict[tuple, Layer] = {}
    for layer in layers:
        key = layer.shape_key
        if key in merged:
            merged[key] = merged[key].with_count(merged[key].count + layer.count)
        else:
            merged[key] = layer
    return list(merged.values())
