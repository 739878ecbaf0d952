"""Class-balanced hold-outs of a training set (the co-search's search split), read from labels alone."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch.utils.data import Dataset, Subset


def targets_of(dataset: Dataset) -> np.ndarray:
    """Class index of every item of ``dataset`` (an ImageFolder, an array dataset or a Subset of one), read from its
    ``targets``/``labels`` without loading images."""
    if isinstance(dataset, Subset):
        return targets_of(dataset.dataset)[np.asarray(dataset.indices, dtype=np.int64)]
    for name in ("targets", "labels"):
        if hasattr(dataset, name):
            return np.asarray(getattr(dataset, name))
    raise TypeError(f"{type(dataset).__name__} has no `targets` or `labels`: give the training dataset one "
                    "(class index per item) so the search split can be drawn per class")


def flat_subset(dataset: Dataset, indices: Sequence[int]) -> Subset:
    """``Subset(dataset, indices)``, flattened onto the underlying dataset when ``dataset`` is itself a Subset."""
    if isinstance(dataset, Subset):
        return Subset(dataset.dataset, [dataset.indices[i] for i in indices])
    return Subset(dataset, list(indices))


def class_balanced_holdout(targets: np.ndarray, per_class: int,
                           rng: np.random.Generator) -> tuple[list[int], list[int]]:
    """``(held, rest)``: ``per_class`` positions of every class drawn by ``rng``, and all other positions (both
    ascending). Every class must keep at least one image in ``rest``."""
    classes, counts = np.unique(targets, return_counts=True)
    short = counts <= per_class
    if short.any():
        c, n = int(classes[short][0]), int(counts[short][0])
        raise ValueError(
            f"search_per_class={per_class} would leave class {c} ({n} training images) without training images: "
            f"lower data.search_per_class below the smallest class ({int(counts.min())} images), set it to 0 to "
            "disable the search split, or give a separate folder as data.search_root (ImageFolderData)"
        )
    order = rng.permutation(len(targets))
    by_class = order[np.argsort(targets[order], kind="stable")]  # each class's positions, in drawn order
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    held = np.sort(np.concatenate([by_class[s : s + per_class] for s in starts]))
    rest = np.setdiff1d(np.arange(len(targets)), held)
    return held.tolist(), rest.tolist()
