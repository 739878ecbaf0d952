"""Data modules: layouts and errors, seeded train/search/val splits, sharding, exact mid-epoch resume of the train
loader, uint8 batches normalised after transfer, JPEG decoding on the device (here: the CPU)."""

from __future__ import annotations

import itertools
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image

from naas_train.data import DigitsData, EpochSampler, ImageFolderData, SyntheticData


def _batches(loader, count=None):
    return [(x.clone(), y.clone()) for x, y in itertools.islice(loader, count)]


def _write_folder(root: Path, split: str, classes: int = 2, per_class: int = 3) -> None:
    rng = np.random.default_rng(0)
    for c in range(classes):
        folder = root / split / f"class{c}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(folder / f"{i}.png")


def test_digits_split_is_fixed_and_stratified():
    data = DigitsData(resolutions=[32])
    data.setup("fit")
    assert (len(data.train_set), len(data.search_set), len(data.val_set)) == (1337, 100, 360)
    assert data.split_info() == {"train": 1337, "search": 100, "val": 360, "search_per_class": 10,
                                 "search_source": "train holdout", "seed": 0}
    image, label = data.train_set[0]
    assert image.size == (32, 32) and image.mode == "RGB" and 0 <= label < 10
    again = DigitsData(resolutions=[32])
    again.setup("fit")
    assert np.array_equal(data.val_set.labels, again.val_set.labels)
    assert np.array_equal(data.val_set.images, again.val_set.images)
    assert np.bincount(data.val_set.labels).min() >= 35  # stratified: every class held out


def test_loaders_produce_normalized_batches_at_the_largest_resolution():
    data = DigitsData(resolutions=[24, 32], batch_size=16, bn_samples=40)
    data.setup("fit")
    x, y = next(iter(data.train_dataloader()))
    assert x.shape == (16, 3, 32, 32) and y.shape == (16,)
    assert x.dtype == torch.float32 and x.min() < 0 < x.max()
    assert sum(b[0].shape[0] for b in data.bn_dataloader()) == 40
    assert sum(b[0].shape[0] for b in data.val_dataloader()) == 360


def test_train_resolution_is_a_seeded_choice_from_the_list():
    data = SyntheticData(resolutions=[16, 20, 24])
    drawn = [data.train_resolution(step) for step in range(200)]
    assert set(drawn) == {16, 20, 24}
    assert drawn == [SyntheticData(resolutions=[16, 20, 24]).train_resolution(s) for s in range(200)]
    assert drawn != [SyntheticData(resolutions=[16, 20, 24], seed=1).train_resolution(s) for s in range(200)]


@pytest.mark.parametrize("missing", ["root", "val", "empty"])
def test_image_folder_errors_name_the_path_and_layout(tmp_path, missing):
    root = tmp_path / "data"
    if missing != "root":
        _write_folder(root, "train")
    if missing == "empty":
        (root / "val" / "class0").mkdir(parents=True)
    data = ImageFolderData(root=root, resolutions=[16])
    with pytest.raises(FileNotFoundError) as err:
        data.setup("fit")
    message = str(err.value)
    assert str(root) in message and "root/train/<class>/*" in message and "root/val/<class>/*" in message


def test_image_folder_reads_train_val_and_holdout(tmp_path):
    _write_folder(tmp_path, "train", classes=3, per_class=4)
    _write_folder(tmp_path, "val", classes=3, per_class=2)
    data = ImageFolderData(root=tmp_path, resolutions=[16], batch_size=4, bn_samples=4, search_per_class=1)
    data.setup("fit")
    assert (len(data.train_set), len(data.search_set), len(data.val_set)) == (9, 3, 6)
    x, _ = next(iter(data.train_dataloader()))
    assert x.shape == (4, 3, 16, 16)
    only_train = tmp_path / "only_train"
    _write_folder(only_train, "train", classes=3, per_class=6)
    held = ImageFolderData(root=only_train, resolutions=[16], holdout=0.25, search_per_class=1)
    held.setup("fit")
    assert (len(held.train_set), len(held.search_set), len(held.val_set)) == (11, 3, 4)
    paths = {name: {held.train_set.dataset.samples[i][0] for i in getattr(held, name).indices}
             for name in ("train_set", "search_set", "val_set")}
    assert not (paths["search_set"] & (paths["train_set"] | paths["val_set"]))


def test_epoch_sampler_shards_are_disjoint_and_cover_the_epoch():
    dataset = list(range(40))
    shards = [list(EpochSampler(dataset, num_replicas=2, rank=r, seed=3)) for r in range(2)]
    indices = [i for shard in shards for i, _ in shard]
    assert sorted(indices) == dataset
    first = [i for i, _ in shards[0]]
    sampler = EpochSampler(dataset, num_replicas=2, rank=0, seed=3)
    sampler.set_epoch(1)
    assert [i for i, _ in sampler] != first  # reshuffled per epoch


@pytest.mark.parametrize("num_workers", [0, 2])
def test_train_loader_resumes_mid_epoch_with_identical_augmented_batches(num_workers):
    def make():
        data = SyntheticData(resolutions=[24], batch_size=8, train_size=48, num_workers=num_workers)
        data.setup("fit")
        return data.train_dataloader()

    full = _batches(make())
    assert len(full) == 6
    interrupted = make()
    _batches(interrupted, count=2)
    state = interrupted.state_dict()
    assert state == {"epoch": 0, "batches": 2}
    resumed = make()
    resumed.load_state_dict(state)
    rest = _batches(resumed)
    assert len(rest) == 4
    for (x, y), (rx, ry) in zip(full[2:], rest):
        assert torch.equal(x, rx) and torch.equal(y, ry)


def test_train_loader_state_at_epoch_end_starts_the_next_epoch():
    data = SyntheticData(resolutions=[24], batch_size=8, train_size=32)
    data.setup("fit")
    loader = data.train_dataloader()
    _batches(loader)
    other = data.train_dataloader()
    other.load_state_dict(loader.state_dict())
    assert other.sampler.epoch == 1 and len(_batches(other)) == 4


# --- the search split ---------------------------------------------------------------------------------------------
def _folder_paths(dataset) -> list[str]:
    """File paths of an ImageFolder or a (flattened) Subset of one, in order."""
    if hasattr(dataset, "indices"):
        return [dataset.dataset.samples[i][0] for i in dataset.indices]
    return [path for path, _ in dataset.samples]


def test_search_split_is_class_balanced_disjoint_and_seeded(tmp_path):
    _write_folder(tmp_path, "train", classes=3, per_class=6)
    _write_folder(tmp_path, "val", classes=3, per_class=2)

    def split(seed):
        data = ImageFolderData(root=tmp_path, resolutions=[16], search_per_class=2, seed=seed)
        data.setup("fit")
        return data

    data = split(0)
    search, train, val = (_folder_paths(s) for s in (data.search_set, data.train_set, data.val_set))
    assert sorted(Path(p).parent.name for p in search) == ["class0"] * 2 + ["class1"] * 2 + ["class2"] * 2
    assert not set(search) & set(train) and not set(search) & set(val)
    assert sorted(search + train) == sorted(str(p) for p in (tmp_path / "train").rglob("*.png"))
    assert data.split_info() == {"train": 12, "search": 6, "val": 6, "search_per_class": 2,
                                 "search_source": "train holdout", "seed": 0}
    assert _folder_paths(split(0).search_set) == search
    assert _folder_paths(split(1).search_set) != search

    digits = DigitsData(resolutions=[32])
    digits.setup("fit")
    assert np.bincount(digits.train_set.dataset.labels[digits.search_set.indices]).tolist() == [10] * 10
    assert not set(digits.search_set.indices) & set(digits.train_set.indices)
    assert sum(b[0].shape[0] for b in digits.search_dataloader()) == 100


def test_search_loader_is_the_same_on_every_rank():
    def loaders(rank):
        data = SyntheticData(resolutions=[16], batch_size=4, val_batch_size=6, train_size=16, search_per_class=3)
        data.trainer = SimpleNamespace(global_rank=rank, world_size=2, training=False)
        data.setup("fit")
        return data.search_dataloader(), data.train_dataloader()

    (search0, train0), (search1, train1) = loaders(0), loaders(1)
    batches = _batches(search0)
    assert [len(y) for _, y in batches] == [6, 6]  # 4 classes x 3, whole split, val_batch_size
    assert batches[0][0].dtype == torch.float32
    for (x, y), (x1, y1) in zip(batches, _batches(search1)):
        assert torch.equal(x, x1) and torch.equal(y, y1)
    assert not torch.equal(next(iter(train0))[0], next(iter(train1))[0])  # the train loader is sharded


def test_search_split_errors_name_the_field_and_the_fix(tmp_path):
    _write_folder(tmp_path, "train", classes=2, per_class=3)
    _write_folder(tmp_path, "val", classes=2, per_class=1)
    too_few = ImageFolderData(root=tmp_path, resolutions=[16], search_per_class=3)
    with pytest.raises(ValueError, match=r"search_per_class=3 would leave class 0 \(3 training images\).*lower "
                                         r"data.search_per_class.*set it to 0"):
        too_few.setup("fit")
    off = SyntheticData(train_size=16, search_per_class=0)
    off.setup("fit")
    assert off.split_info()["search"] == 0 and len(off.train_set) == 16
    with pytest.raises(ValueError, match=r"search_per_class=0.*data.search_per_class > 0"):
        off.search_dataloader()

    _write_folder(tmp_path / "search", "", classes=2, per_class=2)
    data = ImageFolderData(root=tmp_path, resolutions=[16], search_root=tmp_path / "search", search_per_class=5)
    data.setup("fit")
    assert data.split_info() == {"train": 6, "search": 4, "val": 2, "search_per_class": 2,
                                 "search_source": "search_root", "seed": 0}
    _write_folder(tmp_path / "other", "", classes=3, per_class=1)
    other = ImageFolderData(root=tmp_path, resolutions=[16], search_root=tmp_path / "other")
    with pytest.raises(ValueError, match=r"data.search_root=.*same class folders.*class2"):
        other.setup("fit")


# --- uint8 batches and decoding on the device ---------------------------------------------------------------------
def test_uint8_batches_normalised_after_transfer_equal_the_float_path():
    def make(uint8):
        data = SyntheticData(resolutions=[24], batch_size=8, train_size=16, val_size=8, uint8_batches=uint8)
        data.setup("fit")
        return data

    floats, uint8 = make(False), make(True)
    for name in ("train_dataloader", "val_dataloader"):
        (x, y), (xu, yu) = next(iter(getattr(floats, name)())), next(iter(getattr(uint8, name)()))
        assert xu.dtype == torch.uint8 and xu.shape == x.shape == (8, 3, 24, 24)
        normalised, targets = uint8.on_after_batch_transfer((xu, yu), 0)
        assert torch.equal(targets, y)
        torch.testing.assert_close(normalised, x, rtol=0, atol=1e-6)
    for name in ("bn_dataloader", "search_dataloader", "full_val_dataloader"):
        assert torch.equal(next(iter(getattr(uint8, name)()))[0], next(iter(getattr(floats, name)()))[0]), name


def _write_jpegs(root: Path, split: str, classes: int, per_class: int) -> None:
    """Smooth noisy JPEGs of two shapes (landscape, portrait), one CMYK JPEG and one PNG per split."""
    rng = np.random.default_rng(1)
    for c in range(classes):
        folder = root / split / f"class{c}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            h, w = (36, 48) if i % 2 else (50, 34)
            yy, xx = np.mgrid[0:h, 0:w]
            image = np.stack([xx * 255 / w, yy * 255 / h, np.full((h, w), 80 * c)], -1) + rng.normal(0, 20, (h, w, 3))
            pil = Image.fromarray(image.clip(0, 255).astype(np.uint8))
            if c == 0 and i == 0:
                pil.convert("CMYK").save(folder / f"{i}.jpg", quality=90)
            elif c == 1 and i == 0:
                pil.save(folder / f"{i}.png")
            else:
                pil.save(folder / f"{i}.jpg", quality=90)


@pytest.fixture(scope="module")
def jpegs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("jpegs")
    _write_jpegs(root, "train", classes=3, per_class=5)
    _write_jpegs(root, "val", classes=3, per_class=2)
    return root


def _jpeg_data(root: Path, decode: str, seed: int = 0, **kwargs) -> ImageFolderData:
    data = ImageFolderData(root=root, resolutions=[24], batch_size=4, val_batch_size=6, search_per_class=1,
                           decode=decode, seed=seed, **kwargs)
    data.setup("fit")
    return data


def _training(data: ImageFolderData) -> ImageFolderData:
    data.trainer = SimpleNamespace(training=True, global_step=0, global_rank=0, world_size=1)
    return data


LEVEL = 1 / 255 / 0.225  # one 8-bit intensity level, normalised (the smallest ImageNet std)


def test_device_decode_eval_batches_match_the_cpu_path(jpegs):
    cpu, device = _jpeg_data(jpegs, "cpu"), _jpeg_data(jpegs, "device")
    count = 0
    for (x, y), encoded in zip(cpu.val_dataloader(), device.val_dataloader()):
        assert encoded[0].data.dtype == torch.uint8 and encoded[0].data.dim() == 1  # workers only read bytes
        images, targets = device.on_after_batch_transfer(encoded, 0)
        assert images.dtype == torch.float32 and images.shape == x.shape and torch.equal(targets, y)
        assert (images - x).abs().max() <= 1.01 * LEVEL  # same crop/resize math, 1 level of rounding
        count += len(y)
    assert count == 6
    assert next(iter(device.search_dataloader()))[0].dtype == torch.float32


def test_device_decode_train_batches_are_seeded_augmentations_of_the_cpu_path(jpegs):
    cpu = _training(_jpeg_data(jpegs, "cpu"))
    decoded = [_training(_jpeg_data(jpegs, "device", seed=s)) for s in (0, 0, 1)]
    batches = [[d.on_after_batch_transfer(b, 0) for b in d.train_dataloader()] for d in decoded]
    low, high = (0 - max(cpu.mean)) / min(cpu.std), (1 - min(cpu.mean)) / min(cpu.std)
    assert len(batches[0]) == 3
    for (x, y), (x0, y0), (x1, _), (xc, yc) in zip(*batches, cpu.train_dataloader()):
        assert x.shape == (4, 3, 24, 24) and x.dtype == torch.float32 and low <= x.min() and x.max() <= high
        assert torch.equal(x, x0) and torch.equal(y, y0) and torch.equal(y, yc)
        assert not torch.equal(x, x1)
        # the same crops and flips as the CPU path; colour jitter rounds once here, after every step in PIL
        difference = (x - xc).abs()
        assert difference.mean() < 2 * LEVEL and difference.max() < 8 * LEVEL
    without_jitter = _training(_jpeg_data(jpegs, "device", color_jitter=0.0))
    cpu_without = _training(_jpeg_data(jpegs, "cpu", color_jitter=0.0))
    x, _ = without_jitter.on_after_batch_transfer(next(iter(without_jitter.train_dataloader())), 0)
    assert (x - next(iter(cpu_without.train_dataloader()))[0]).abs().max() <= 1.01 * LEVEL


def test_device_decode_rejects_what_it_cannot_run(jpegs):
    with pytest.raises(ValueError, match=r"decode must be 'cpu' or 'device', got 'gpu'"):
        ImageFolderData(root=jpegs, decode="gpu")
    with pytest.raises(ValueError, match=r"decode='device'.*RandAugment.*data.decode: cpu"):
        ImageFolderData(root=jpegs, decode="device", auto_augment="rand-m9-mstd0.5")


class _DtypeProbe(pl.LightningModule):
    """Records the dtype and shape of every train and val batch a Trainer hands it."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(3, 3)
        self.seen: list[tuple[str, torch.dtype, tuple[int, ...]]] = []

    def training_step(self, batch, batch_idx):
        self.seen.append(("train", batch[0].dtype, tuple(batch[0].shape)))
        return self.layer(batch[0].mean((2, 3))).sum()

    def validation_step(self, batch, batch_idx):
        self.seen.append(("val", batch[0].dtype, tuple(batch[0].shape)))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.parametrize("mode", ["uint8", "device"])
def test_trainer_steps_get_normalised_float_batches(jpegs, tmp_path, mode):
    if mode == "uint8":
        data = SyntheticData(resolutions=[16, 24], batch_size=4, train_size=16, val_size=8, uint8_batches=True)
    else:
        data = ImageFolderData(root=jpegs, resolutions=[16, 24], batch_size=4, search_per_class=1, decode="device")
    module = _DtypeProbe()
    trainer = pl.Trainer(accelerator="cpu", max_steps=3, val_check_interval=2, limit_val_batches=1,
                         num_sanity_val_steps=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(module, data)
    assert {(stage, dtype) for stage, dtype, _ in module.seen} == {("train", torch.float32), ("val", torch.float32)}
    assert [shape for stage, _, shape in module.seen if stage == "train"] == [
        (4, 3, data.train_resolution(step), data.train_resolution(step)) for step in range(3)]
    assert {shape[-2:] for stage, _, shape in module.seen if stage == "val"} == {(24, 24)}
