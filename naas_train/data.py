"""LightningDataModules for supernet training: ImageNet-layout folders, the embedded digits set, synthetic images.

All three share :class:`SupernetData`: three splits (train; search, a seeded class-balanced hold-out of the training
images for the co-search; val, the test split), timm augmentation applied under a per-sample seed, a sampler that
shuffles by ``(seed, epoch)`` and shards over ranks, a train loader whose position inside the epoch is saved in
Lightning checkpoints, a per-step random training resolution identical on every rank, and optionally uint8 batches
(or, for :class:`ImageFolderData`, JPEG bytes) that are decoded and normalised on the training device.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, create_transform
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision.datasets import ImageFolder

from naas_train.gpu_decode import DeviceTransform, EncodedBatch, EncodedImages, collate_encoded
from naas_train.loading import EpochSampler, ResumableLoader, SeededTransform, Transform
from naas_train.rng import Stream, generator
from naas_train.splits import class_balanced_holdout, flat_subset, targets_of

Batch = tuple[torch.Tensor, torch.Tensor]
Collate = Callable[[list[Any]], Any]
# counters of Stream.SPLIT: 0 BN-recalibration subset, 1 ImageFolderData holdout, 2 SyntheticData images, 3 search split
_SEARCH_SPLIT = 3


def resize(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """Bilinear (antialiased) resize of an NCHW batch to ``resolution`` × ``resolution``; a no-op at that size."""
    if images.shape[-2:] == (resolution, resolution):
        return images
    return F.interpolate(images, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)


class SupernetData(pl.LightningDataModule):
    """Base of the data modules: the train / search / val splits, their loaders, BN-recalibration batches, the
    per-step training resolution and on-device normalisation.

    Subclasses implement :meth:`splits` (untransformed train/val datasets of ``(PIL image, class)``) and may override
    :meth:`train_transform` / :meth:`eval_transform` / :meth:`search_split`. Images are produced at
    ``max(resolutions)``; each training batch is resized on device to a resolution drawn from ``resolutions`` by
    ``(seed, global step)``.
    """

    mean: tuple[float, float, float] = IMAGENET_DEFAULT_MEAN
    std: tuple[float, float, float] = IMAGENET_DEFAULT_STD

    def __init__(
        self,
        resolutions: Sequence[int] = (224,),
        batch_size: int = 64,
        val_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        bn_samples: int = 2000,
        seed: int = 0,
        search_per_class: int = 10,
        uint8_batches: bool = False,
    ) -> None:
        """
        Args:
            resolutions: training resolutions (px); one is drawn per step, identical on every rank.
            batch_size: training images per step and rank.
            val_batch_size: validation / search / BN-recalibration batch size (defaults to ``batch_size``).
            num_workers: DataLoader worker processes.
            pin_memory: pin host memory of batches (for GPU training).
            bn_samples: training images (eval transform, fixed subset) used to recalibrate BN statistics.
            seed: seed of the shuffle, the augmentations, the resolution draws and the search split.
            search_per_class: training images per class held out (seeded) as the co-search split and removed
                from training (OFA: 10 per class, 10,000 on ImageNet); 0 disables the search split.
            uint8_batches: the train and val loaders hand uint8 NCHW batches, converted to float and normalised on
                the device in :meth:`on_after_batch_transfer` (less worker CPU, 4× less host-to-device traffic).
                The BN, search and full-validation loaders always yield normalised floats.
        """
        super().__init__()
        if not resolutions:
            raise ValueError("resolutions must name at least one image size")
        if search_per_class < 0:
            raise ValueError(f"search_per_class must be >= 0 (0 disables the search split), got {search_per_class}")
        self.resolutions = [int(r) for r in resolutions]
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size or batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.bn_samples = bn_samples
        self.seed = seed
        self.search_per_class = search_per_class
        self.uint8_batches = uint8_batches
        self.train_set: Dataset | None = None
        self.search_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.search_source = "train holdout" if search_per_class > 0 else "none"

    @property
    def image_size(self) -> int:
        """Size (px) at which the loaders produce images: the largest training resolution."""
        return max(self.resolutions)

    def splits(self) -> tuple[Dataset, Dataset]:
        """Untransformed (train, val) datasets of ``(PIL image, class index)``."""
        raise NotImplementedError

    def search_split(self, train: Dataset) -> tuple[Dataset | None, Dataset]:
        """``(search, remaining train)``: ``search_per_class`` images of every class drawn from ``train`` with the
        data module's seed, or ``(None, train)`` when ``search_per_class`` is 0."""
        if self.search_per_class == 0:
            return None, train
        rng = generator(self.seed, Stream.SPLIT, _SEARCH_SPLIT)
        held, rest = class_balanced_holdout(targets_of(train), self.search_per_class, rng)
        return flat_subset(train, held), flat_subset(train, rest)

    def train_transform(self, uint8: bool = False) -> Transform:
        """Training augmentation of one PIL image: a normalised float CHW tensor, or uint8 when ``uint8``."""
        return create_transform(self.image_size, is_training=True, use_prefetcher=uint8)

    def eval_transform(self, uint8: bool = False) -> Transform:
        """Deterministic evaluation transform of one PIL image: a normalised float CHW tensor, or uint8 when
        ``uint8``."""
        return create_transform(self.image_size, is_training=False, use_prefetcher=uint8)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            train, self.val_set = self.splits()
            self.search_set, self.train_set = self.search_split(train)

    def class_count(self) -> int:
        """Number of classes of the data: the class folders of an ImageFolder, else the largest label + 1 over the
        train and val splits (after :meth:`setup`)."""
        assert self.train_set is not None and self.val_set is not None, "call setup() first"
        base = self.train_set.dataset if isinstance(self.train_set, Subset) else self.train_set
        if isinstance(base, ImageFolder):
            return len(base.classes)
        return max(int(targets_of(split).max(initial=-1)) + 1 for split in (self.train_set, self.val_set))

    def check_head(self, outputs: int, what: str = "the model's classifier") -> None:
        """``ValueError`` when the data has more classes than ``outputs`` (the logits ``what`` produces): labels
        past the head would fail deep inside the loss, or score wrongly."""
        classes = self.class_count()
        if classes > outputs:
            raise ValueError(f"the data ({type(self).__name__}) has {classes} classes but {what} outputs {outputs}: "
                             f"set the network's num_classes to {classes} (e.g. "
                             f"--model.init_args.net.init_args.num_classes {classes})")

    def split_info(self) -> dict[str, Any]:
        """Sizes and provenance of the splits (for metrics.json): ``train``, ``search``, ``val`` image counts,
        ``search_per_class`` (for ``search_root`` the smallest class), ``search_source`` (``"train holdout"``,
        ``"search_root"`` or ``"none"``) and ``seed``."""
        assert self.train_set is not None and self.val_set is not None, "call setup() first"
        per_class = self.search_per_class
        if self.search_source == "search_root":
            per_class = int(np.unique(targets_of(self.search_set), return_counts=True)[1].min())
        return {
            "train": len(self.train_set),  # type: ignore[arg-type]
            "search": 0 if self.search_set is None else len(self.search_set),  # type: ignore[arg-type]
            "val": len(self.val_set),  # type: ignore[arg-type]
            "search_per_class": per_class,
            "search_source": self.search_source,
            "seed": self.seed,
        }

    def _rank(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _loader(self, dataset: Dataset, batch_size: int, collate_fn: Collate | None = None) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            collate_fn=collate_fn,
        )

    def _train_data(self) -> tuple[Dataset, Collate | None]:
        """Dataset (keyed by :class:`EpochSampler`'s ``(index, seed)``) and collate function of the train loader."""
        transform = self.train_transform(uint8=self.uint8_batches)
        return SeededTransform(self.train_set, transform), None  # type: ignore[arg-type]

    def _val_data(self) -> tuple[Dataset, Collate | None]:
        """Dataset and collate function of the (Lightning) val loader."""
        return _Transformed(self.val_set, self.eval_transform(uint8=self.uint8_batches)), None  # type: ignore[arg-type]

    def train_dataloader(self) -> ResumableLoader:
        assert self.train_set is not None, "call setup() first"
        rank, world_size = self._rank()
        dataset, collate_fn = self._train_data()
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
            collate_fn=collate_fn,
        )

    def val_dataloader(self) -> DataLoader:
        """The validation (test) split with the eval transform, for Lightning's validation loop (which shards it
        over ranks and runs :meth:`on_after_batch_transfer`: batches may be uint8 or encoded until then)."""
        assert self.val_set is not None, "call setup() first"
        dataset, collate_fn = self._val_data()
        return self._loader(dataset, self.val_batch_size, collate_fn)

    def full_val_dataloader(self) -> DataLoader:
        """The whole validation (test) split, normalised float batches, the same on every rank: for use outside
        Lightning's loops (export's ONNX accuracy)."""
        assert self.val_set is not None, "call setup() first"
        return self._loader(_Transformed(self.val_set, self.eval_transform()), self.val_batch_size)

    def search_dataloader(self) -> DataLoader:
        """The search split with the eval transform, normalised float batches of ``val_batch_size``, not sharded:
        every rank sees the whole split in the same order."""
        assert self.train_set is not None, "call setup() first"
        if self.search_set is None:
            raise ValueError("the search split is disabled (search_per_class=0): set data.search_per_class > 0 "
                             "(OFA: 10) or, for ImageFolderData, data.search_root")
        return self._loader(_Transformed(self.search_set, self.eval_transform()), self.val_batch_size)

    def bn_dataloader(self) -> DataLoader:
        """A fixed, seeded subset of the (remaining) training images with the eval transform, normalised float
        batches, the same on every rank."""
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

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 NCHW images (0–255) → float32 normalised with :attr:`mean` / :attr:`std` on their device, with the
        same arithmetic as the float loaders (``/255``, ``-mean``, ``/std``). Float input is taken as already
        normalised and returned unchanged."""
        if images.dtype != torch.uint8:
            return images
        mean = torch.tensor(self.mean, device=images.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=images.device).view(1, -1, 1, 1)
        return images.float().div_(255).sub_(mean).div_(std)

    def on_after_batch_transfer(self, batch: Batch, dataloader_idx: int) -> Batch:
        """Decode encoded batches on the device, normalise uint8 ones, and resize training batches to the step's
        resolution."""
        images, targets = batch
        if isinstance(images, EncodedBatch):
            images = images.decode(targets.device)
        images = self.normalize(images)
        trainer = self.trainer
        if trainer is not None and trainer.training:
            images = resize(images, self.train_resolution(trainer.global_step))
        return images, targets


class _Transformed(Dataset):
    """Deterministic (eval) transform over a dataset of ``(PIL image, class)``."""

    def __init__(self, dataset: Dataset, transform: Transform) -> None:
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, target = self.dataset[index]
        return self.transform(image), target


def _samples(dataset: Dataset) -> list[tuple[str, int]]:
    """``(path, class)`` of every item of an ImageFolder or a Subset of one."""
    if isinstance(dataset, Subset):
        base = _samples(dataset.dataset)
        return [base[i] for i in dataset.indices]
    assert isinstance(dataset, ImageFolder), f"expected an ImageFolder, got {type(dataset).__name__}"
    return list(dataset.samples)


def _same_classes(train: ImageFolder, other: ImageFolder, name: str, shown: int = 10) -> None:
    """``ValueError`` listing the class folders ``other`` (named ``name``) lacks or adds compared with ``train``:
    ImageFolder numbers classes by their sorted names, so any difference would silently relabel ``other``."""
    if other.class_to_idx == train.class_to_idx:
        return
    missing = sorted(set(train.classes) - set(other.classes))
    extra = sorted(set(other.classes) - set(train.classes))
    parts = [f"{label} {items[:shown]}{f' (+{len(items) - shown} more)' if len(items) > shown else ''}"
             for label, items in (("missing", missing), ("not in train", extra)) if items]
    raise ValueError(f"{name} must hold the same class folders as {train.root}: {'; '.join(parts)}")


class ImageFolderData(SupernetData):
    """ImageNet layout: ``root/train/<class>/*`` and ``root/val/<class>/*``, or a held-out split of ``train``; the
    search split is held out of ``train`` or read from ``search_root/<class>/*``."""

    def __init__(
        self,
        root: str | Path,
        holdout: float = 0.0,
        search_root: str | Path | None = None,
        scale: tuple[float, float] = (0.08, 1.0),
        hflip: float = 0.5,
        color_jitter: float | tuple[float, ...] = 0.4,
        auto_augment: str | None = None,
        crop_pct: float = 0.875,
        decode: Literal["cpu", "device"] = "cpu",
        **kwargs: Any,
    ) -> None:
        """
        Args:
            root: dataset root holding ``train/<class>/*`` and (unless ``holdout`` > 0) ``val/<class>/*``.
            holdout: fraction of ``train`` held out (a seeded random subset) as validation data; ``val/`` is then
                not read.
            search_root: a folder ``search_root/<class>/*`` (the training set's classes) used as the search split
                instead of holding ``search_per_class`` images per class out of ``train``.
            scale, hflip, color_jitter, auto_augment: timm ``create_transform`` training augmentation.
            crop_pct: center-crop fraction of the eval transform.
            decode: ``"cpu"``: workers decode and augment (PIL); ``"device"``: workers read JPEG bytes and draw the
                crop/flip/jitter parameters, the train and val batches are decoded (``torchvision.io.decode_jpeg``)
                and augmented on the training device in :meth:`on_after_batch_transfer`. The BN, search and
                full-validation loaders always decode on the CPU.
            **kwargs: :class:`SupernetData` arguments.
        """
        super().__init__(**kwargs)
        if not 0.0 <= holdout < 1.0:
            raise ValueError(f"holdout must be in [0, 1), got {holdout}")
        if decode not in ("cpu", "device"):
            raise ValueError(f"decode must be 'cpu' or 'device', got {decode!r}")
        self.root = Path(root)
        self.holdout = holdout
        self.search_root = None if search_root is None else Path(search_root)
        if self.search_root is not None:
            self.search_source = "search_root"
        self.scale = tuple(scale)
        self.hflip = hflip
        self.color_jitter = color_jitter if isinstance(color_jitter, float) else tuple(color_jitter)
        self.auto_augment = auto_augment
        self.crop_pct = crop_pct
        self.decode = decode
        self.device_transforms: tuple[DeviceTransform, DeviceTransform] | None = None
        if decode == "device":  # fails here, at configuration time, on augmentation the device path lacks
            self.device_transforms = (DeviceTransform(self.train_transform(uint8=True)),
                                      DeviceTransform(self.eval_transform(uint8=True)))

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
            val = self._folder("val")
            _same_classes(train, val, str(self.root / "val"))
            return train, val
        order = generator(self.seed, Stream.SPLIT, 1).permutation(len(train)).tolist()
        cut = int(round(len(train) * self.holdout))
        return Subset(train, order[cut:]), Subset(train, order[:cut])

    def search_split(self, train: Dataset) -> tuple[Dataset | None, Dataset]:
        """``search_root`` as the search split (``train`` kept whole), else the per-class hold-out of ``train``."""
        if self.search_root is None:
            return super().search_split(train)
        path = self.search_root
        if not path.is_dir() or not any(p.is_dir() and any(p.iterdir()) for p in path.iterdir()):
            raise FileNotFoundError(f"data.search_root={path}: no images found; expected search_root/<class>/* "
                                    "with the training set's class folders")
        search = ImageFolder(str(path))
        base = train.dataset if isinstance(train, Subset) else train
        _same_classes(base, search, f"data.search_root={path}")  # type: ignore[arg-type]
        return search, train

    def train_transform(self, uint8: bool = False) -> Transform:
        return create_transform(
            self.image_size,
            is_training=True,
            scale=self.scale,
            hflip=self.hflip,
            color_jitter=self.color_jitter,
            auto_augment=self.auto_augment,
            use_prefetcher=uint8,
        )

    def eval_transform(self, uint8: bool = False) -> Transform:
        return create_transform(self.image_size, is_training=False, crop_pct=self.crop_pct, use_prefetcher=uint8)

    def _train_data(self) -> tuple[Dataset, Collate | None]:
        if self.device_transforms is None:
            return super()._train_data()
        transform = self.device_transforms[0]
        samples = _samples(self.train_set)  # type: ignore[arg-type]
        return EncodedImages(samples, transform), partial(collate_encoded, transform=transform)

    def _val_data(self) -> tuple[Dataset, Collate | None]:
        if self.device_transforms is None:
            return super()._val_data()
        transform = self.device_transforms[1]
        samples = _samples(self.val_set)  # type: ignore[arg-type]
        return EncodedImages(samples, transform), partial(collate_encoded, transform=transform)


class _ImageArray(Dataset):
    """``(PIL RGB image, class)`` pairs over a uint8 ``N×H×W×3`` array and integer labels."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        return Image.fromarray(self.images[index]), int(self.labels[index])


def _small_image_transform(size: int, training: bool, uint8: bool) -> Transform:
    """timm transform for small glyph-like images: mild crops, no flips; deterministic resize when evaluating;
    uint8 output when ``uint8``."""
    if training:
        return create_transform(size, is_training=True, scale=(0.7, 1.0), ratio=(0.85, 1.18), hflip=0.0,
                                color_jitter=0.2, use_prefetcher=uint8)
    return create_transform(size, is_training=False, crop_pct=1.0, use_prefetcher=uint8)


class DigitsData(SupernetData):
    """scikit-learn's bundled handwritten digits (1,797 real 8×8 images, 10 classes; no download), upsampled
    bilinearly to ``image_size`` RGB, with a fixed stratified train/val split (``val_fraction``, ``split_seed``);
    the search split (``search_per_class``, default 10 per class) is held out of the training part."""

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

    def train_transform(self, uint8: bool = False) -> Transform:
        return _small_image_transform(self.image_size, training=True, uint8=uint8)

    def eval_transform(self, uint8: bool = False) -> Transform:
        return _small_image_transform(self.image_size, training=False, uint8=uint8)


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
            train_size: training images left after the search hold-out (``num_classes × search_per_class`` more
                are generated for it).
            val_size: validation images.
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
        return self._make(self.train_size + self.num_classes * self.search_per_class, 0), self._make(self.val_size, 1)

    def train_transform(self, uint8: bool = False) -> Transform:
        return _small_image_transform(self.image_size, training=True, uint8=uint8)

    def eval_transform(self, uint8: bool = False) -> Transform:
        return _small_image_transform(self.image_size, training=False, uint8=uint8)
