"""A mixed-precision search space: a subnet config plus per-layer weight / activation bit widths.

The bit genes sit next to the subnet genes (APQ, Wang et al., CVPR 2020: one evolutionary search over OFA
subnets and quantization policies, with an accuracy predictor that reads both): every conv / linear layer of
the supernet's largest config has a weight width and an input-activation width drawn from ``choices``
(default ``{4, 6, 8}``). A subnet uses the genes of the layers it has (layer names are the supernet's stable
names, e.g. ``blocks.5.dw``), so a depth mutation keeps the bits of the layers that stay.

:class:`PrecisionSpace` wraps a supernet space with the same interface (``sample``, ``mutate``, ``crossover``,
``max_config``, ``min_config``, ``encode``, ``validate``, ``from_dict``), so the co-search runs over it unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: The default per-layer widths (bits) of the search (issue 14: 4, 6 and 8; 16 may be added).
DEFAULT_BITS: tuple[int, ...] = (4, 6, 8)
#: Widths a policy may use at all: 2..16 bits (fake quantization below 2 bits is not symmetric-signed).
MIN_POLICY_BITS, MAX_POLICY_BITS = 2, 16


@dataclass(frozen=True)
class MixedConfig:
    """A subnet config and the (weight, input) bits of every layer of the supernet (by stable layer name)."""

    subnet: Any
    bits: tuple[tuple[str, int, int], ...]

    @property
    def r(self) -> int:
        return int(self.subnet.r)

    @property
    def policy(self) -> dict[str, tuple[int, int]]:
        """``{layer: (weight_bits, input_bits)}`` for every layer of the supernet."""
        return {name: (w, a) for name, w, a in self.bits}

    def to_dict(self) -> dict[str, Any]:
        return {**self.subnet.to_dict(), "bits": {name: [w, a] for name, w, a in self.bits}}


def policy_to_dict(policy: dict[str, tuple[int, int]]) -> dict[str, dict[str, int]]:
    """``{layer: {"weights": bits, "inputs": bits}}``: the form ``result.json`` and the bundle record."""
    return {name: {"weights": int(w), "inputs": int(a)} for name, (w, a) in policy.items()}


def policy_from_dict(data: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """Inverse of :func:`policy_to_dict` (also accepts ``{layer: [w, a]}``)."""
    out = {}
    for name, value in data.items():
        if isinstance(value, dict):
            out[name] = (int(value["weights"]), int(value["inputs"]))
        else:
            w, a = value
            out[name] = (int(w), int(a))
    return out


def check_bits(choices: Sequence[int], what: str = "bit choices") -> tuple[int, ...]:
    """Sorted distinct widths, each an integer 2..16; ``ValueError`` naming the bad value otherwise."""
    if not choices:
        raise ValueError(f"{what} must list at least one width (bits), e.g. [4, 6, 8]")
    out = []
    for b in choices:
        if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or not MIN_POLICY_BITS <= b <= MAX_POLICY_BITS:
            raise ValueError(f"{what}: {b!r} is not a width; allowed: integers {MIN_POLICY_BITS}..{MAX_POLICY_BITS}")
        out.append(int(b))
    return tuple(sorted(set(out)))


class PrecisionSpace:
    """``space`` x per-layer bits.

    Args:
        space: the supernet space (OFA genes, ``encode``, ``validate`` ...).
        layer_names: ``config -> [layer names]`` (the supernet's ``layer_shapes`` names, in forward order).
        config_cls: the subnet config class (``from_dict``).
        choices: widths the genes take.
        subnet: when given, the subnet is frozen (a bits-only search, HAQ-style) and only bits evolve.
    """

    def __init__(self, space: Any, layer_names: Callable[[Any], list[str]], config_cls: Any,
                 choices: Sequence[int] = DEFAULT_BITS, subnet: Any | None = None) -> None:
        self.space, self.layer_names, self.config_cls = space, layer_names, config_cls
        self.choices = check_bits(choices)
        self.frozen = subnet
        self.names = tuple(layer_names(space.max_config()))

    # --- configs ---------------------------------------------------------------------------------------
    def make(self, subnet: Any, bits: dict[str, tuple[int, int]]) -> MixedConfig:
        return MixedConfig(subnet, tuple((n, int(bits[n][0]), int(bits[n][1])) for n in self.names))

    def uniform(self, subnet: Any, bits: int) -> MixedConfig:
        return self.make(subnet, {n: (bits, bits) for n in self.names})

    def _random_bits(self, rng: np.random.Generator) -> dict[str, tuple[int, int]]:
        c = self.choices
        return {n: (c[rng.integers(len(c))], c[rng.integers(len(c))]) for n in self.names}

    def max_config(self, resolution: int = 224) -> MixedConfig:
        sub = self.frozen if self.frozen is not None else self.space.max_config(resolution)
        return self.uniform(sub, self.choices[-1])

    def min_config(self, resolution: int = 224) -> MixedConfig:
        sub = self.frozen if self.frozen is not None else self.space.min_config(resolution)
        return self.uniform(sub, self.choices[0])

    def sample(self, rng: np.random.Generator, resolutions: Sequence[int] = (224,)) -> MixedConfig:
        sub = self.frozen if self.frozen is not None else self.space.sample(rng, resolutions=resolutions)
        return self.make(sub, self._random_bits(rng))

    def mutate(self, cfg: MixedConfig, rng: np.random.Generator, prob: float = 0.1,
               resolutions: Sequence[int] | None = None) -> MixedConfig:
        self.validate(cfg)
        sub = cfg.subnet if self.frozen is not None else self.space.mutate(cfg.subnet, rng, prob, resolutions)
        c = self.choices
        bits = {}
        for name, w, a in cfg.bits:
            w = c[rng.integers(len(c))] if rng.random() < prob else w
            a = c[rng.integers(len(c))] if rng.random() < prob else a
            bits[name] = (w, a)
        return self.make(sub, bits)

    def crossover(self, a: MixedConfig, b: MixedConfig, rng: np.random.Generator) -> MixedConfig:
        self.validate(a)
        self.validate(b)
        sub = a.subnet if self.frozen is not None else self.space.crossover(a.subnet, b.subnet, rng)
        bits = {n: (wa if rng.random() < 0.5 else wb, aa if rng.random() < 0.5 else ab)
                for (n, wa, aa), (_, wb, ab) in zip(a.bits, b.bits)}
        return self.make(sub, bits)

    # --- checks, encoding, files -------------------------------------------------------------------------
    def validate(self, cfg: MixedConfig) -> MixedConfig:
        self.space.validate(cfg.subnet)
        names = [n for n, _, _ in cfg.bits]
        if tuple(names) != self.names:
            missing = sorted(set(self.names) - set(names))
            extra = sorted(set(names) - set(self.names))
            raise ValueError(f"precision policy: layers {extra or ''} are not layers of this supernet; missing: "
                             f"{missing or 'none'}; layers: {', '.join(self.names)}")
        for name, w, a in cfg.bits:
            for what, b in (("weights", w), ("inputs", a)):
                if b not in self.choices:
                    raise ValueError(f"precision policy: layer {name!r} {what} bits {b} is not allowed; "
                                     f"allowed: {list(self.choices)}")
        return cfg

    def encode(self, cfg: MixedConfig) -> np.ndarray:
        """The subnet's encoding, then per supernet layer its (weight, input) bits scaled to [0, 1] over the
        choices, zero for layers the subnet skips (so the predictor sees only the bits that act)."""
        active = set(self.layer_names(cfg.subnet))
        lo, hi = self.choices[0], self.choices[-1]
        span = max(1, hi - lo)
        feats = []
        for name, w, a in cfg.bits:
            on = name in active
            feats += [(w - lo + 1) / (span + 1) if on else 0.0, (a - lo + 1) / (span + 1) if on else 0.0]
        return np.concatenate([self.space.encode(cfg.subnet), np.asarray(feats, dtype=np.float32)])

    def from_dict(self, data: dict[str, Any]) -> MixedConfig:
        data = dict(data)
        if "bits" not in data:
            raise ValueError("a mixed-precision config needs 'bits' ({layer: [weight_bits, input_bits]})")
        bits = policy_from_dict(data.pop("bits"))
        unknown = sorted(set(bits) - set(self.names))
        if unknown:
            raise ValueError(f"precision policy: layer {unknown[0]!r} is not a layer of this supernet; "
                             f"layers: {', '.join(self.names)}")
        missing = [n for n in self.names if n not in bits]
        if missing:
            raise ValueError(f"precision policy: no bits for layer {missing[0]!r}; every layer needs "
                             f"[weight_bits, input_bits] from {list(self.choices)}")
        return self.validate(self.make(self.config_cls.from_dict(data), bits))
