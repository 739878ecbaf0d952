"""LightningDataModules for supernet training: ImageNet-layout folders, the embedded digits set, synthetic images.

All three share :class:`SupernetData`: timm augmentation applied under a per-sample seed, a sampler that shuffles by
``(seed, epoch)`` and shards over ranks, a train loader whose position inside the epoch is saved in Lightning
checkpoints, and a per-step random training resolution identical on every rank.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from timm.data import create_transform
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from torchvision.datasets import ImageFolder

from naas_train.rng import Stream, derive_seed, generator, seeded

Batch = tuple[torch.Tensor, torch.Tensor]


def resize(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """Bilinear (antialiased) resize of an NCHW batch to ``resolution`` × ``resolution``; a no-op at that size."""
    if images.shape[-2:] == (resolution, resolution):
        return images
    return F.interpolate(images, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)


class SeededTransform(Dataset):
    """Applies ``transform`` to ``dataset[index]`` under the seed that the sampler sends with the index."""

    def __init__(self, dataset: Dataset, transform: Callable[[Image.Image], torch.Tensor]) -> None:
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


class SupernetData(pl.LightningDataModule):
    """Base of the data modules: loaders, BN-recalibration batches and the per-step training resolution.

    Subclasses implement :meth:`splits` (untransformed train/val datasets of ``(PIL image, class)``) and may override
    :meth:`train_transform` / :meth:`eval_transform`. Images are produced at ``max(resolutions)``; each training batch
    is resized on device to a resolution drawn from ``resolutions`` by ``(seed, global step)``.
    """

    def __init__(
        self,
        resolutions: Sequence[int] = (224,),
        batch_size: int = 64,
        val_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        bn_samples: int = 2000,
        seed: int = 0,
    ) -> None:
        """
        Args:
            resolutions: training resolutions (px); one is drawn per step, identical on every rank.
            batch_size: training images per step and rank.
            val_batch_size: validation / BN-recalibration batch size (defaults to ``batch_size``).
            num_workers: DataLoader worker processes.
            pin_memory: pin host memory of batches (for GPU training).
            bn_samples: training images (eval transform, fixed subset) used to recalibrate BN statistics.
            seed: seed of the shuffle, the augmentations and the resolution draws.
        """
        super().__init__()
        if not resolutions:
            raise ValueError("resolutions must name at least one image size")
        self.resolutions = [int(r) for r in resolutions]
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size or batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.bn_samples = bn_samples
        self.seed = seed
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    @property
    def image_size(self) -> int:
        """Size (px) at which the loaders produce images: the largest training resolution."""
        return max(self.resolutions)

    def splits(self) -> tuple[Dataset, Dataset]:
        """Untransformed (train, val) datasets of ``(PIL image, class index)``."""
        raise NotImplementedError

    def train_transform(self) -> Callable[[Image.Image], torch.Tensor]:
        return create_transform(self.image_size, is_training=True)

    def eval_transform(self) -> Callable[[Image.Image], torch.Tensor]:
        return create_transform(self.image_size, is_training=False)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            self.train_set, self.val_set = self.splits()

    def _rank(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _loader(self, dataset: Dataset, batch_size: int) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> ResumableLoader:
        assert self.train_set is not None, "call setup() first"
        rank, world_size = self._rank()
        dataset = SeededTransform(self.train_set, self.train_transform())
        sampler = EpochSampler(dataset, num_replicas=world_size, rank=rank, seed=self.seed)
        if len(sampler) < self.batch_size:
            raise ValueError(f"{len(sampler)} training images per rank is fewer than batch_size={self.batch_size}")
        return ResumableLoader(
            dataset,
            sampler,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader:
        """The validation set with the eval transform (Lightning shards it over ranks)."""
        assert self.val_set is not None, "call setup() first"
        return self._loader(_Transformed(self.val_set, self.eval_transform()), self.val_batch_size)

    def bn_dataloader(self) -> DataLoader:
        """A fixed, seeded subset of training images with the eval transform, the same on every rank."""
        assert self.train_set is not None, "call setup() first"
        count = min(self.bn_samples, len(self.train_set))  # type: ignore[arg-type]
        indices = generator(self.seed, Stream.SPLIT, 0).permutation(len(self.train_set))[:count]  # type: ignore[arg-type]
        subset = Subset(self.train_set, indices.tolist())
        return self._loader(_Transformed(subset, self.eval_transform()), self.val_batch_size)

    def train_resolution(self, step: int) -> int:
        """The training resolution of global step ``step``."""
        if len(self.resolutions) == 1:
            return self.resolutions[0]
        return int(generator(self.seed, Stream.RESOLUTION, step).choice(self.resolutions))

    def on_after_batch_transfer(self, batch: Batch, dataloader_idx: int) -> Batch:
        trainer = self.trainer
        if trainer is None or not trainer.training:
            return batch
        images, targets = batch
        return resize(images, self.train_resolution(trainer.global_step)), targets


class _Transformed(Dataset):
    """Deterministic (eval) transform over a dataset of ``(PIL image, class)``."""

    def __init__(self, dataset: Dataset, transform: Callable[[Image.Image], torch.Tensor]) -> None:
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, target = self.dataset[index]
        return self.transform(image), target


class ImageFolderData(SupernetData):
    """ImageNet layout: ``root/train/<class>/*`` and ``root/val/<class>/*``, or a held-out split of ``train``."""

    def __init__(
        self,
        root: str | Path,
        holdout: float = 0.0,
        scale: tuple[float, float] = (0.08, 1.0),
        hflip: float = 0.5,
        color_jitter: float | tuple[float, ...] = 0.4,
        auto_augment: str | None = None,
        crop_pct: float = 0.875,
        **kwargs: Any,
    ) -> None:
        """
        Args:
            root: dataset root holding ``train/<class>/*`` and (unless ``holdout`` > 0) ``val/<class>/*``.
            holdout: fraction of ``train`` held out (a seeded random subset) as validation data; ``val/`` is then
                not read.
            scale, hflip, color_jitter, auto_augment: timm ``create_transform`` training augmentation.
            crop_pct: center-crop fraction of the eval transform.
            **kwargs: :class:`SupernetData` arguments.
        """
        super().__init__(**kwargs)
        if not 0.0 <= holdout < 1.0:
            raise ValueError(f"holdout must be in [0, 1), got {holdout}")
        self.root = Path(root)
        self.holdout = holdout
        self.scale = tuple(scale)
        self.hflip = hflip
        self.color_jitter = color_jitter if isinstance(color_jitter, float) else tuple(color_jitter)
        self.auto_augment = auto_augment
        self.crop_pct = crop_pct

    def _folder(self, split: str) -> ImageFolder:
        path = self.root / split
        if not path.is_dir() or not any(p.is_dir() and any(p.iterdir()) for p in path.iterdir()):
            raise FileNotFoundError(
                f"{path}: no images found; expected the ImageNet layout root/train/<class>/*, root/val/<class>/* "
                f"(root={self.root})"
            )
        return ImageFolder(str(path))

    def splits(self) -> tuple[Dataset, Dataset]:
        train = self._folder("train")
        if self.holdout == 0.0:
            return train, self._folder("val")
        order = generator(self.seed, Stream.SPLIT, 1).permutation(len(train)).tolist()
        cut = int(round(len(train) * self.holdout))
        return Subset(train, order[cut:]), Subset(train, order[:cut])

    def train_transform(self) -> Callable[[Image.Image], torch.Tensor]:
        return create_transform(
            self.image_size,
            is_training=True,
            scale=self.scale,
            hflip=self.hflip,
            color_jitter=self.color_jitter,
            auto_augment=self.auto_augment,
        )

    def eval_transform(self) -> Callable[[Image.Image], torch.Tensor]:
        return create_transform(self.image_size, is_training=False, crop_pct=self.crop_pct)


class _ImageArray(Dataset):
    """``(PIL RGB image, class)`` pairs over a uint8 ``N×H×W×3`` array and integer labels."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        return Image.fromarray(self.images[index]), int(self.labels[index])


def _small_image_transform(size: int, training: bool) -> Callable[[Image.Image], torch.Tensor]:
    """timm transform for small glyph-like images: mild crops, no flips; deterministic resize when evaluating."""
    if training:
        return create_transform(size, is_training=True, scale=(0.7, 1.0), ratio=(0.85, 1.18), hflip=0.0,
                                color_jitter=0.2)
    return create_transform(size, is_training=False, crop_pct=1.0)


class DigitsData(SupernetData):
    """scikit-learn's bundled handwritten digits (1,797 real 8×8 images, 10 classes; no download), upsampled
    bilinearly to ``image_size`` RGB, with a fixed stratified split (``val_fraction``, ``split_seed``)."""

    def __init__(
        self,
        val_fraction: float = 0.2,
        split_seed: int = 0,
        source_size: int = 32,
        resolutions: Sequence[int] = (32,),
        batch_size: int = 64,
        bn_samples: int = 500,
        **kwargs: Any,
    ) -> None:
        """
        Args:
            val_fraction: fraction of the 1,797 images held out for validation (stratified).
            split_seed: seed of the train/val split (fixed across runs).
            source_size: size (px) of the stored RGB images before augmentation.
            resolutions, batch_size, bn_samples, **kwargs: :class:`SupernetData` arguments.
        """
        super().__init__(resolutions=resolutions, batch_size=batch_size, bn_samples=bn_samples, **kwargs)
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        self.source_size = source_size

    def splits(self) -> tuple[Dataset, Dataset]:
        digits = load_digits()
        glyphs = torch.from_numpy(digits.images).float().unsqueeze(1) / 16.0  # N×1×8×8 in [0, 1]
        big = F.interpolate(glyphs, size=(self.source_size,) * 2, mode="bilinear", align_corners=False)
        rgb = (big.clamp(0, 1) * 255).round().to(torch.uint8).expand(-1, 3, -1, -1).permute(0, 2, 3, 1)
        images, labels = np.ascontiguousarray(rgb.numpy()), digits.target
        train_idx, val_idx = train_test_split(
            np.arange(len(labels)), test_size=self.val_fraction, random_state=self.split_seed, stratify=labels
        )
        return _ImageArray(images[train_idx], labels[train_idx]), _ImageArray(images[val_idx], labels[val_idx])

    def train_transform(self) -> Callable[[Image.Image], torch.Tensor]:
        return _small_image_transform(self.image_size, training=True)

    def eval_transform(self) -> Callable[[Image.Image], torch.Tensor]:
        return _small_image_transform(self.image_size, training=False)


class SyntheticData(SupernetData):
    """Seeded synthetic classification images for tests: class ``c`` is a bright square at a class-specific place
    on noise, so a small network can learn it."""

    def __init__(
        self,
        num_classes: int = 4,
        train_size: int = 128,
        val_size: int = 64,
        source_size: int = 32,
        resolutions: Sequence[int] = (32,),
        batch_size: int = 16,
        bn_samples: int = 64,
        **kwargs: Any,
    ) -> None:
        """
        Args:
            num_classes: number of classes (square positions on a 4×4 grid).
            train_size, val_size: images per split.
            source_size: size (px) of the generated images.
            resolutions, batch_size, bn_samples, **kwargs: :class:`SupernetData` arguments.
        """
        super().__init__(resolutions=resolutions, batch_size=batch_size, bn_samples=bn_samples, **kwargs)
        self.num_classes = num_classes
        self.train_size = train_size
        self.val_size = val_size
        self.source_size = source_size

    def _make(self, count: int, split: int) -> _ImageArray:
        rng = generator(self.seed, Stream.SPLIT, 2, split)
        size = self.source_size
        images = rng.integers(0, 96, size=(count, size, size, 3), dtype=np.uint8)
        labels = np.arange(count) % self.num_classes
        side, cells = size // 4, 4
        for image, label in zip(images, labels):
            row, col = divmod(int(label) % (cells * cells), cells)
            image[row * side : (row + 1) * side, col * side : (col + 1) * side] = 255
        return _ImageArray(images, labels)

    def splits(self) -> tuple[Dataset, Dataset]:
        return self._make(self.train_size, 0), self._make(self.val_size, 1)

    def train_transform(self) -> Callable[[Image.Image], torch.Tensor]:
        return _small_image_transform(self.image_size, training=True)

    def eval_transform(self) -> Callable[[Image.Image], torch.Tensor]:
        return _small_image_transform(self.image_size, training=False)
