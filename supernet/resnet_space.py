"""The OFA ResNet-50 search space used by NAAS: depth, bottleneck expand ratio and width per stage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._utils import check_choices, sorted_choices
from .space import GeneSpace, config_from_dict, config_to_dict

__all__ = ["ResNetConfig", "ResNetSpace"]


@dataclass
class ResNetConfig:
    """One subnet in OFA's ResNet format.

    ``d``: 5 entries, ``d[0]`` for the stem (``< max`` skips the stem's residual 3x3 conv), then extra blocks
    per stage; ``e``: bottleneck ratio per block (18); ``w``: width-multiplier *index* for the two stem convs and
    the four stages (6); ``r``: resolution.
    """

    d: list[int]
    e: list[float]
    w: list[int]
    r: int = 224

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResNetConfig:
        return config_from_dict(cls, data, ("d", "e", "w"), {"d": int, "e": float, "w": int})


@dataclass(frozen=True)
class ResNetSpace(GeneSpace[ResNetConfig]):
    """Choices of OFA's ResNet-50 space (``ofa_resnet50``: d {0,1,2}, e {0.2,0.25,0.35}, w {0.65,0.8,1.0}).

    Stage depth = base depth ``(2, 2, 4, 2)`` + ``d`` (Cai et al., "Once-for-All", ICLR 2020, repo
    ``ofa/imagenet_classification/networks/resnets.py``: ``BASE_DEPTH_LIST``), as searched by NAAS
    (Lin et al., "NAAS", DAC 2021).
    """

    depth_list: tuple[int, ...] = (0, 1, 2)
    expand_list: tuple[float, ...] = (0.2, 0.25, 0.35)
    width_mult_list: tuple[float, ...] = (0.65, 0.8, 1.0)
    base_depths: tuple[int, ...] = field(default=(2, 2, 4, 2), init=False)
    gene_fields = ("d", "e", "w")
    config_type = ResNetConfig

    def __post_init__(self) -> None:
        object.__setattr__(self, "depth_list", sorted_choices("depth_list", self.depth_list, int, minimum=-1))
        object.__setattr__(self, "expand_list", sorted_choices("expand_list", self.expand_list, float))
        object.__setattr__(self, "width_mult_list", sorted_choices("width_mult_list", self.width_mult_list, float))

    @property
    def n_stages(self) -> int:
        return len(self.base_depths)

    @property
    def max_depth(self) -> int:
        return self.depth_list[-1]

    @property
    def stage_blocks(self) -> list[int]:
        """Blocks each stage holds in the supernet."""
        return [b + self.max_depth for b in self.base_depths]

    @property
    def n_blocks(self) -> int:
        return sum(self.stage_blocks)

    def gene_choices(
        self,
        depth_list: Sequence[int] | None = None,
        expand_list: Sequence[float] | None = None,
        width_mult_list: Sequence[float] | None = None,
    ) -> dict[str, list[tuple]]:
        d = self._restrict("depth_list", depth_list, self.depth_list, int, -1)
        e = self._restrict("expand_list", expand_list, self.expand_list, float, 0)
        wm = self._restrict("width_mult_list", width_mult_list, self.width_mult_list, float, 0)
        w = tuple(self.width_mult_list.index(m) for m in wm)
        # OFA samples the stem gene from {min, max} only (d[0] < max skips the stem's residual conv).
        return {"d": [(d[0], d[-1])] + [d] * self.n_stages, "e": [e] * self.n_blocks, "w": [w] * (self.n_stages + 2)}

    def allowed_values(self) -> dict[str, list[tuple]]:
        """As ``gene_choices``, but the stem gene may hold any depth choice (published configs do)."""
        choices = self.gene_choices()
        choices["d"][0] = self.depth_list
        return choices

    @staticmethod
    def _restrict(name: str, subset, full: tuple, kind: type, minimum: float) -> tuple:
        if subset is None:
            return full
        subset = sorted_choices(name, subset, kind, minimum)
        check_choices(name, subset, full)
        return subset

    def make_config(self, genes: dict[str, list], r: int) -> ResNetConfig:
        return ResNetConfig(d=list(genes["d"]), e=list(genes["e"]), w=list(genes["w"]), r=int(r))

    def max_config(self, resolution: int = 224) -> ResNetConfig:
        top_w = len(self.width_mult_list) - 1
        return ResNetConfig(
            [self.max_depth] * (self.n_stages + 1),
            [self.expand_list[-1]] * self.n_blocks,
            [top_w] * (self.n_stages + 2),
            resolution,
        )

    def min_config(self, resolution: int = 224) -> ResNetConfig:
        return ResNetConfig(
            [self.depth_list[0]] * (self.n_stages + 1),
            [self.expand_list[0]] * self.n_blocks,
            [0] * (self.n_stages + 2),
            resolution,
        )

    def sample(
        self,
        rng: np.random.Generator,
        depth_list: Sequence[int] | None = None,
        expand_list: Sequence[float] | None = None,
        width_mult_list: Sequence[float] | None = None,
        resolutions: Sequence[int] = (224,),
    ) -> ResNetConfig:
        """Uniform random subnet; restricted choice lists give progressive-shrinking phases."""
        return self._sample(rng, self.gene_choices(depth_list, expand_list, width_mult_list), resolutions)

    def active_blocks(self, cfg: ResNetConfig) -> list[int]:
        """Indices (into ``cfg.e``) of the blocks a config runs: the first ``base + d`` of every stage."""
        out, start = [], 0
        for base, n, d in zip(self.base_depths, self.stage_blocks, cfg.d[1:]):
            out += range(start, start + base + d)
            start += n
        return out

    def encode(self, cfg: ResNetConfig) -> np.ndarray:
        """Stem-skip flag, one-hot width index per stem conv and stage, one-hot ``e`` per active block, r hats."""
        self.validate(cfg)
        active = set(self.active_blocks(cfg))
        feats: list[float] = [1.0 if cfg.d[0] < self.max_depth else 0.0]
        for w in cfg.w:
            feats += self._one_hot(w, range(len(self.width_mult_list)))
        for i in range(self.n_blocks):
            feats += self._one_hot(cfg.e[i], self.expand_list, i in active)
        feats += self._encode_resolution(cfg.r)
        return np.asarray(feats, dtype=np.float32)
