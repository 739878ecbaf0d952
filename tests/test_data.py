"""Data modules: layouts and errors, seeded splits, sharding, exact mid-epoch resume of the train loader."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
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
    assert len(data.train_set) + len(data.val_set) == 1797
    assert len(data.val_set) == 360
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
    data = ImageFolderData(root=tmp_path, resolutions=[16], batch_size=4, bn_samples=4)
    data.setup("fit")
    assert (len(data.train_set), len(data.val_set)) == (12, 6)
    x, _ = next(iter(data.train_dataloader()))
    assert x.shape == (4, 3, 16, 16)
    only_train = tmp_path / "only_train"
    _write_folder(only_train, "train", classes=3, per_class=4)
    held = ImageFolderData(root=only_train, resolutions=[16], holdout=0.25)
    held.setup("fit")
    assert (len(held.train_set), len(held.val_set)) == (9, 3)


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
