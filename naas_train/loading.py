"""Seeded, resumable training-data loading: per-sample augmentation seeds, a rank-sharded epoch sampler that can
start mid-epoch, and a DataLoader whose position inside the epoch is saved in Lightning checkpoints."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from naas_train.rng import Stream, derive_seed, seeded

Transform = Callable[[Image.Image], torch.Tensor]


class SeededTransform(Dataset):
    """Applies ``transform`` to ``dataset[index]`` under the seed that the sampler sends with the index."""

    def __init__(self, dataset: Dataset, transform: Transform) -> None:
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, seed = key
        image, target = self.dataset[index]
        with seeded(seed):
            return self.transform(image), target


class EpochSampler(DistributedSampler):
    """DistributedSampler (permutation seeded by ``seed + epoch``, one shard per rank) that yields
    ``(index, augmentation seed)`` pairs and can start part-way through its shard (``start``, in samples)."""

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, seed: int, shuffle: bool = True) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=True)
        self.start = 0

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        indices = list(super().__iter__())[self.start :]
        return ((i, derive_seed(self.seed, Stream.AUGMENT, self.epoch, i)) for i in indices)


class ResumableLoader(DataLoader):
    """Train DataLoader over an :class:`EpochSampler` that counts the batches it handed out this epoch.

    Lightning stores ``state_dict()`` in checkpoints (the loader is ``_Stateful``) and calls ``load_state_dict`` on
    resume, so ``--ckpt_path last`` continues with the next unseen batch of the same permutation.
    """

    sampler: EpochSampler

    def __init__(self, dataset: Dataset, sampler: EpochSampler, **kwargs: Any) -> None:
        super().__init__(dataset, sampler=sampler, drop_last=True, **kwargs)
        self._epoch = sampler.epoch
        self._batches = 0

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        if self._epoch != self.sampler.epoch:
            self._epoch, self._batches = self.sampler.epoch, 0
        self.sampler.start = self._batches * self.batch_size  # type: ignore[operator]
        for batch in super().__iter__():
            self._batches += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self._epoch, "batches": self._batches}

    def load_state_dict(self, state: dict[str, int]) -> None:
        epoch, batches = state["epoch"], state["batches"]
        if batches >= len(self):  # saved after the last batch of an epoch: the next one starts fresh
            epoch, batches = epoch + 1, 0
        self.sampler.set_epoch(epoch)
        self._epoch, self._batches = epoch, batches
