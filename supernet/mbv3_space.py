"""The OFA MobileNetV3 search space: kernel and expand ratio per block, depth per stage, resolution."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._utils import check_choices, sorted_choices
from .space import GeneSpace, config_from_dict, config_to_dict

__all__ = ["MBV3Config", "MBV3Space"]


@dataclass
class MBV3Config:
    """One subnet: ``ks``/``e`` per elastic block (inactive blocks included), ``d`` per stage, resolution ``r``."""

    ks: list[int]
    e: list[int]
    d: list[int]
    r: int = 224

    def to_dict(self) -> dict[str, Any]:
        """OFA's format ``{"ks": [...], "e": [...], "d": [...], "r": [224]}``."""
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MBV3Config:
        return config_from_dict(cls, data, ("ks", "e", "d"), {"ks": int, "e": int, "d": int})


@dataclass(frozen=True)
class MBV3Space(GeneSpace[MBV3Config]):
    """Choices of the OFA MobileNetV3 space: 5 elastic stages of up to ``max(depth_list)`` blocks.

    Defaults are OFA's ``ofa_mbv3_d234_e346_k357`` space (Cai et al., "Once-for-All", ICLR 2020, Sec. 4.1:
    kernel {3,5,7}, expand {3,4,6}, depth {2,3,4}).
    """

    ks_list: tuple[int, ...] = (3, 5, 7)
    expand_list: tuple[int, ...] = (3, 4, 6)
    depth_list: tuple[int, ...] = (2, 3, 4)
    n_stages: int = field(default=5, init=False)
    gene_fields = ("ks", "e", "d")
    config_type = MBV3Config

    def __post_init__(self) -> None:
        ks = sorted_choices("ks_list", self.ks_list)
        if any(k % 2 == 0 for k in ks):
            raise ValueError(f"ks_list must hold odd kernel sizes, got {list(ks)}")
        object.__setattr__(self, "ks_list", ks)
        object.__setattr__(self, "expand_list", sorted_choices("expand_list", self.expand_list))
        object.__setattr__(self, "depth_list", sorted_choices("depth_list", self.depth_list))

    @property
    def max_depth(self) -> int:
        return self.depth_list[-1]

    @property
    def n_blocks(self) -> int:
        return self.n_stages * self.max_depth

    def gene_choices(
        self,
        ks_list: Sequence[int] | None = None,
        expand_list: Sequence[int] | None = None,
        depth_list: Sequence[int] | None = None,
    ) -> dict[str, list[tuple]]:
        ks = self._restrict("ks_list", ks_list, self.ks_list)
        e = self._restrict("expand_list", expand_list, self.expand_list)
        d = self._restrict("depth_list", depth_list, self.depth_list)
        return {"ks": [ks] * self.n_blocks, "e": [e] * self.n_blocks, "d": [d] * self.n_stages}

    @staticmethod
    def _restrict(name: str, subset: Sequence[int] | None, full: tuple[int, ...]) -> tuple[int, ...]:
        if subset is None:
            return full
        subset = sorted_choices(name, subset)
        check_choices(name, subset, full)
        return subset

    def make_config(self, genes: dict[str, list], r: int) -> MBV3Config:
        return MBV3Config(ks=list(genes["ks"]), e=list(genes["e"]), d=list(genes["d"]), r=int(r))

    def max_config(self, resolution: int = 224) -> MBV3Config:
        return MBV3Config(
            [self.ks_list[-1]] * self.n_blocks,
            [self.expand_list[-1]] * self.n_blocks,
            [self.max_depth] * self.n_stages,
            resolution,
        )

    def min_config(self, resolution: int = 224) -> MBV3Config:
        return MBV3Config(
            [self.ks_list[0]] * self.n_blocks,
            [self.expand_list[0]] * self.n_blocks,
            [self.depth_list[0]] * self.n_stages,
            resolution,
        )

    def sample(
        self,
        rng: np.random.Generator,
        ks_list: Sequence[int] | None = None,
        expand_list: Sequence[int] | None = None,
        depth_list: Sequence[int] | None = None,
        resolutions: Sequence[int] = (224,),
    ) -> MBV3Config:
        """Uniform random subnet; restricted choice lists (subsets of the space's) give progressive-shrinking phases."""
        return self._sample(rng, self.gene_choices(ks_list, expand_list, depth_list), resolutions)

    def active_blocks(self, cfg: MBV3Config) -> list[int]:
        """Indices (into ``cfg.ks``/``cfg.e``) of the blocks a config runs: the first ``d`` of every stage."""
        return [s * self.max_depth + i for s, d in enumerate(cfg.d) for i in range(d)]

    def encode(self, cfg: MBV3Config) -> np.ndarray:
        """One-hot kernel and expand ratio per block (all zero when the block is skipped), then resolution hats.

        Length ``n_blocks * (len(ks_list) + len(expand_list)) + len(resolution_grid)`` (OFA's arch-encoder layout).
        """
        self.validate(cfg)
        active = set(self.active_blocks(cfg))
        feats: list[float] = []
        for i in range(self.n_blocks):
            feats += self._one_hot(cfg.ks[i], self.ks_list, i in active)
            feats += self._one_hot(cfg.e[i], self.expand_list, i in active)
        feats += self._encode_resolution(cfg.r)
        return np.asarray(feats, dtype=np.float32)
