"""Small shape helpers shared by the elastic networks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, never dropping more than 10%.

    The MobileNet rule (TF slim ``mobilenet.py``) that OFA applies to every channel count, with
    ``divisor=8`` (Cai et al., "Once-for-All", ICLR 2020, repo ``ofa/utils/pytorch_modules.py``).
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def conv_out_size(size: int, kernel_size: int, stride: int) -> int:
    """Output rows of a conv with 'same' padding ``kernel_size // 2``."""
    return (size + 2 * (kernel_size // 2) - kernel_size) // stride + 1


def pool_out_size(size: int, kernel_size: int, stride: int, padding: int = 0, ceil_mode: bool = False) -> int:
    """Output rows of a max/avg pool (PyTorch's formula, ``ceil_mode`` included)."""
    span = size + 2 * padding - kernel_size
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def check_choices(name: str, values: Sequence, allowed: Iterable) -> None:
    """Raise ``ValueError`` naming ``name`` when an item of ``values`` is not in ``allowed``."""
    allowed = list(allowed)
    bad = [v for v in values if v not in allowed]
    if bad:
        raise ValueError(f"{name} has value(s) {bad}; allowed: {allowed}")


def sorted_choices(name: str, values: Iterable, kind: type = int, minimum: float = 0) -> tuple:
    """Validate a non-empty list of numbers ``> minimum`` (``>= 0`` when ``minimum < 0``) and sort it."""
    values = list(values) if not isinstance(values, (int, float)) else [values]
    if not values:
        raise ValueError(f"{name} must not be empty")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= minimum:
            raise ValueError(f"{name} must hold numbers > {minimum}, got {values!r}")
        if kind is int and int(v) != v:
            raise ValueError(f"{name} must hold integers, got {values!r}")
    return tuple(sorted({kind(v) for v in values}))
