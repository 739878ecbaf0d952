"""Layer shapes: the *problem* of the Timeloop split (dims only, no data)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from hwmodel.validate import MAX_BITS, MAX_COUNT, MAX_DIM, MAX_STRIDE, MAX_WORK, show

#: Longest layer name (ONNX node / module qualified names).
MAX_LAYER_NAME = 1024
#: The per-layer precision fields, and the narrowest operand a layer may declare (1-bit: binary networks).
PRECISION_FIELDS: tuple[str, ...] = ("weight_bits", "input_bits", "psum_bits")
MIN_LAYER_BITS = 1
_INT = re.compile(r"[+-]?[0-9]+")

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
    """An int or an ``(h, w)`` pair of ints in ``1..MAX_STRIDE`` (no floats, bools or strings)."""
    items = list(value) if isinstance(value, (tuple, list)) else [value, value]
    if len(items) != 2 or any(isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) for v in items):
        raise ValueError(f"Layer.{name} must be an int or a pair (h, w) of ints, got {show(value)}")
    pair = (int(items[0]), int(items[1]))
    if min(pair) < 1:
        raise ValueError(f"Layer.{name} must be >= 1, got {show(value)}")
    if max(pair) > MAX_STRIDE:
        raise ValueError(f"Layer.{name} must be <= {MAX_STRIDE} (2**16), got {show(value)}")
    return pair


@dataclass(frozen=True)
class Layer:
    """One convolution / matmul shape.

    ``K`` and ``C`` are *per group*: a depthwise conv over 32 channels is ``G=32, K=1, C=1``; a linear layer
    ``in -> out`` is ``K=out, C=in, P=Q=R=S=1``. ``count`` is how many identical instances the network has
    (identical shapes merge). Stride and dilation are ints or ``(h, w)`` pairs.

    ``weight_bits`` / ``input_bits``: operand widths of this layer (``None``: the accelerator's ``word_bits``);
    ``psum_bits``: width of its partial sums outside the PEs (``None``: derived, see :mod:`hwmodel.precision`).
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
    weight_bits: int | None = None
    input_bits: int | None = None
    psum_bits: int | None = None

    def __post_init__(self) -> None:
        for d in DIMS:
            v = getattr(self, d)
            if not isinstance(v, (int, np.integer)) or isinstance(v, (bool, np.bool_)):
                raise ValueError(f"Layer.{d} must be an integer, got {show(v)}")
            if v < 1:
                raise ValueError(f"Layer.{d} must be >= 1 (a positive size), got {v}")
            if v > MAX_DIM:
                raise ValueError(f"Layer.{d} must be <= {MAX_DIM} (2**24), got {show(v)}")
            object.__setattr__(self, d, int(v))
        object.__setattr__(self, "stride", _pair(self.stride, "stride"))
        object.__setattr__(self, "dilation", _pair(self.dilation, "dilation"))
        if (not isinstance(self.count, (int, np.integer)) or isinstance(self.count, (bool, np.bool_))
                or not 1 <= self.count <= MAX_COUNT):
            raise ValueError(f"Layer.count must be an integer 1..{MAX_COUNT}, got {show(self.count)}")
        object.__setattr__(self, "count", int(self.count))
        if not isinstance(self.name, str) or len(self.name) > MAX_LAYER_NAME:
            raise ValueError(f"Layer.name must be a string of at most {MAX_LAYER_NAME} characters, got {show(self.name)}")
        if not isinstance(self.op, str) or len(self.op) > 64:
            raise ValueError(f"Layer.op must be a short string, got {show(self.op)}")
        for what in PRECISION_FIELDS:
            v = getattr(self, what)
            if v is not None and (not isinstance(v, (int, np.integer)) or isinstance(v, (bool, np.bool_))
                                  or not MIN_LAYER_BITS <= v <= MAX_BITS):
                label = f"layer {show(self.name)}" if self.name else "Layer"
                raise ValueError(f"{label}: {what} must be an integer {MIN_LAYER_BITS}..{MAX_BITS} (bits) or left out, "
                                 f"got {show(v)}")
            if v is not None:
                object.__setattr__(self, what, int(v))
        # int64 safety of the cost model: every count is at most the padded iteration space of a layer
        sizes = self.tensor_sizes
        work = {"MACs": self.macs, "weight words": sizes["weights"], "input words (halo included)": sizes["inputs"],
                "output words": sizes["outputs"]}
        for what, n in work.items():
            if n > MAX_WORK:
                label = f"layer {show(self.name)}" if self.name else "the layer"
                raise ValueError(f"{label} has {n} {what}; allowed: at most {MAX_WORK} (2**48, "
                                 "which keeps the cost model's int64 counts exact)")

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
        return (*(getattr(self, d) for d in DIMS), self.stride, self.dilation, self.bits)

    @property
    def bits(self) -> tuple[int | None, int | None, int | None]:
        """``(weight_bits, input_bits, psum_bits)`` as given (``None``: the accelerator's default)."""
        return (self.weight_bits, self.input_bits, self.psum_bits)

    def with_bits(self, weight_bits: int | None, input_bits: int | None, psum_bits: int | None = None) -> "Layer":
        return replace(self, weight_bits=weight_bits, input_bits=input_bits, psum_bits=psum_bits)

    # --- (de)serialisation ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "op": self.op}
        out.update(self.dims)
        out["stride"] = list(self.stride)
        out["dilation"] = list(self.dilation)
        out["count"] = self.count
        for what in PRECISION_FIELDS:
            if getattr(self, what) is not None:
                out[what] = getattr(self, what)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Layer":
        if not isinstance(data, dict):
            raise ValueError(f"a Layer must be a mapping of fields (K, C, ...), got {show(data)}")
        allowed = set(DIMS) | {"stride", "dilation", "name", "count", "op", *PRECISION_FIELDS}
        unknown = [k for k in data if k not in allowed]
        if unknown:
            raise ValueError(f"unknown Layer field(s) {', '.join(show(k) for k in unknown[:4])}; "
                             f"allowed: {', '.join(sorted(allowed))}")
        if "K" not in data or "C" not in data:
            raise ValueError("Layer needs at least K and C")
        return cls(**data)

    @classmethod
    def parse(cls, spec: str) -> "Layer":
        """Parse ``"N=1,G=1,K=64,C=64,P=56,Q=56,R=3,S=3,stride=1"`` (``stride``/``dilation`` may be ``2x1``).

        Strict: every key at most once, values plain decimal integers (no ``1e3``, ``0x10``, ``1_000``, ``2.0``),
        within the bounds of :class:`Layer`; ``name=`` takes the rest of its item."""
        if not isinstance(spec, str):
            raise ValueError(f"a layer spec must be a string like K=64,C=64, got {show(spec)}")
        if len(spec) > 4096:
            raise ValueError(f"layer spec is {len(spec)} characters long; allowed: at most 4096")
        fields: dict[str, Any] = {}
        raw: dict[str, str] = {}
        for part in spec.split(","):
            part = part.strip()
            if not part:
                continue
            if "=" not in part:
                raise ValueError(f"layer spec item {show(part)} is not KEY=VALUE (e.g. K=64)")
            key, value = (s.strip() for s in part.split("=", 1))
            if key != "name" and key not in set(DIMS) | {"stride", "dilation", "count", *PRECISION_FIELDS}:
                raise ValueError(f"unknown layer dim {show(key)}; allowed: {', '.join(DIMS)}, stride, dilation, count, "
                                 f"{', '.join(PRECISION_FIELDS)}, name")
            if key in raw:
                raise ValueError(f"Layer.{key} is given twice in the layer spec ({key}={show(raw[key])} and "
                                 f"{key}={show(value)}); allowed: each key once")
            raw[key] = value
            if key == "name":
                fields[key] = value
                continue
            items = value.split("x") if key in ("stride", "dilation") and "x" in value else [value]
            if len(items) > 2 or not all(_INT.fullmatch(v) for v in items):
                what = "an integer or HxW" if key in ("stride", "dilation") else "an integer"
                raise ValueError(f"layer dim {key} must be {what} (decimal digits), got {show(value)}")
            if any(len(v.lstrip("+-")) > 18 for v in items):
                raise ValueError(f"Layer.{key} is out of range, got {show(value)}; allowed: at most "
                                 f"{MAX_STRIDE if key in ('stride', 'dilation') else MAX_COUNT if key == 'count' else MAX_DIM}")
            nums = [int(v) for v in items]
            fields[key] = tuple(nums) if len(nums) == 2 else nums[0]
        return cls.from_dict(fields)

    def with_count(self, count: int) -> "Layer":
        return replace(self, count=count)

    def im2col(self) -> "Layer":
        """The GEMM a SCALE-Sim / TPU-style array runs for this layer (im2col lowering), per group.

        Output pixels ``N*P*Q`` become one dim (``P``), the reduction ``C*R*S`` another (``C``), ``K`` stays:
        spatial factors and folds then count the flattened products as SCALE-Sim does (``ceil(C*R*S / rows)``
        folds, not a product of per-dim ceilings), and the input operand is the im2col matrix, one word per
        (pixel, reduction index), so no sliding-window reuse is left to the model."""
        crs, npq = self.C * self.R * self.S, self.N * self.P * self.Q
        for what, v in (("C*R*S", crs), ("N*P*Q", npq)):
            if v > MAX_DIM:
                raise ValueError(f"Layer.im2col: {what} = {v} of layer {self.name or self} exceeds {MAX_DIM} (2**24); "
                                 "allowed: lowered dims up to 2**24")
        return Layer(K=self.K, C=crs, P=npq, G=self.G, name=self.name, count=self.count, op="gemm",
                     weight_bits=self.weight_bits, input_bits=self.input_bits, psum_bits=self.psum_bits)

    def __str__(self) -> str:
        s = ",".join(f"{d}={getattr(self, d)}" for d in DIMS)
        st = self.stride[0] if self.stride[0] == self.stride[1] else f"{self.stride[0]}x{self.stride[1]}"
        bits = "".join(f",{w}={getattr(self, w)}" for w in PRECISION_FIELDS if getattr(self, w) is not None)
        return f"{self.name or 'layer'}[{s},stride={st}{bits}]x{self.count}"


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
