"""JPEG batches decoded on the training device (``ImageFolderData(decode="device")``).

Workers only read file bytes (``torchvision.io.read_file``), parse the JPEG header for the image size and draw the
augmentation parameters of the timm transform under the per-sample seed: the same draws, in the same order, as the
CPU path makes, so both paths crop and flip alike. :meth:`EncodedBatch.decode` then decodes the whole batch with
``torchvision.io.decode_jpeg(list, device=...)`` and crops, resizes, flips and colour-jitters on that device. Files
``decode_jpeg`` cannot read (PNG, CMYK JPEG) are decoded by the worker and travel as raw RGB pixels.
"""

from __future__ import annotations

import io
import random
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from timm.data.transforms import MaybePILToTensor, MaybeToTensor, RandomResizedCropAndInterpolation
from torch.utils.data import Dataset
from torchvision import transforms as T
from torchvision.transforms import functional as TF
from torchvision.io import ImageReadMode, decode_jpeg, read_file

from naas_train.rng import seeded

_MODES = {T.InterpolationMode.BILINEAR: "bilinear", T.InterpolationMode.BICUBIC: "bicubic"}
_PASSIVE = (MaybeToTensor, MaybePILToTensor, T.ToTensor, T.PILToTensor, T.Normalize)
# per-image training parameters (no augmentation): top, left, height, width, interpolation index, flip,
# brightness, contrast, saturation, hue factors, colour-jitter order (4)
_IDENTITY = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 2.0, 3.0)
_GRAY = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights

Item = tuple[torch.Tensor, tuple[int, int] | None, torch.Tensor | None]
"""One encoded sample: bytes (or raw HWC RGB pixels), the raw pixels' (h, w) or None for a JPEG, training params."""


def _unsupported(what: str) -> ValueError:
    return ValueError(
        f"decode='device' runs timm's random-resized-crop, horizontal flip and colour jitter (training) and "
        f"shorter-edge resize + centre crop (evaluation) on the device; {what} is not supported there: "
        "set data.decode: cpu (or drop data.auto_augment)"
    )


class DeviceTransform:
    """The device-side equivalent of a timm train transform (``RandomResizedCropAndInterpolation``, optional
    ``RandomHorizontalFlip``, optional ``ColorJitter``) or eval transform (``Resize`` of the shorter edge, then
    ``CenterCrop``). Tensor conversion and normalisation steps are skipped: the data module normalises."""

    def __init__(self, transform: T.Compose) -> None:
        steps = [t for t in transform.transforms if not isinstance(t, _PASSIVE)]
        self.crop: RandomResizedCropAndInterpolation | None = None
        self.flip: T.RandomHorizontalFlip | None = None
        self.jitter: T.ColorJitter | None = None
        self.scale_size = 0
        if steps and isinstance(steps[0], RandomResizedCropAndInterpolation):
            self.crop = steps.pop(0)
            interpolation = self.crop.interpolation
            modes = list(interpolation) if isinstance(interpolation, (list, tuple)) else [interpolation]
            self.size = int(self.crop.size[0])
            if steps and isinstance(steps[0], T.RandomHorizontalFlip):
                self.flip = steps.pop(0)
            if steps and isinstance(steps[0], T.ColorJitter):
                self.jitter = steps.pop(0)
        elif len(steps) >= 2 and isinstance(steps[0], T.Resize) and isinstance(steps[1], T.CenterCrop):
            resize, crop = steps.pop(0), steps.pop(0)
            if not isinstance(resize.size, int) and len(resize.size) != 1:
                raise _unsupported(f"{resize!r} (two-sided resize)")
            self.scale_size = resize.size if isinstance(resize.size, int) else int(resize.size[0])
            self.size = int(crop.size[0])
            modes = [resize.interpolation]
            if self.scale_size < self.size:
                raise _unsupported(f"a centre crop larger than the resized image (crop_pct > 1, {crop!r})")
        else:
            modes = []
        if steps or not modes:
            raise _unsupported(", ".join(type(t).__name__ for t in steps) or "an empty transform")
        if any(m not in _MODES for m in modes):
            raise _unsupported(f"interpolation {[str(m) for m in modes]}")
        self.modes = [_MODES[m] for m in modes]

    @property
    def training(self) -> bool:
        """Whether this is a random (training) transform."""
        return self.crop is not None

    def draw(self, image: Image.Image) -> torch.Tensor:
        """Training parameters (14 float64 values, laid out like ``_IDENTITY``) for ``image`` (a PIL image; only
        its size is read), drawn from the global RNGs exactly as the timm transform draws them: call it under the
        sample's seed."""
        assert self.crop is not None, "draw() is for training transforms"
        params = torch.tensor(_IDENTITY, dtype=torch.float64)
        params[:4] = torch.tensor(self.crop.get_params(image, self.crop.scale, self.crop.ratio), dtype=torch.float64)
        if isinstance(self.crop.interpolation, (list, tuple)):
            params[4] = self.modes.index(_MODES[random.choice(self.crop.interpolation)])
        if self.flip is not None:
            params[5] = float(torch.rand(1) < self.flip.p)
        if self.jitter is not None:
            j = self.jitter
            order, *factors = T.ColorJitter.get_params(j.brightness, j.contrast, j.saturation, j.hue)
            params[6:10] = torch.tensor([float(params[6 + i]) if f is None else f for i, f in enumerate(factors)])
            params[10:] = order.to(torch.float64)
        return params

    def apply(self, images: Sequence[torch.Tensor], params: torch.Tensor | None) -> torch.Tensor:
        """Crop/resize (and for training flip and colour-jitter) decoded uint8 CHW ``images`` into one uint8
        N×3×size×size batch on their device; ``params`` are the :meth:`draw` rows (training only)."""
        size = (self.size, self.size)
        if params is None:
            out = [_center_crop(_resize(image, _shorter_edge(image, self.scale_size), self.modes[0]), self.size)
                   for image in images]
            return torch.stack(out)
        rows = params.tolist()
        batch = torch.stack([
            _resize(image[:, int(r[0]) : int(r[0] + r[2]), int(r[1]) : int(r[1] + r[3])], size, self.modes[int(r[4])])
            for image, r in zip(images, rows)
        ])
        params = params.to(batch.device)
        batch = torch.where((params[:, 5] > 0).view(-1, 1, 1, 1), batch.flip(-1), batch)
        if self.jitter is not None:
            batch = _color_jitter(batch, params[:, 6:10], params[:, 10:].long())
        return batch


def _shorter_edge(image: torch.Tensor, size: int) -> tuple[int, int]:
    """Output (h, w) of torchvision's ``Resize(size)`` (shorter edge to ``size``, aspect kept, longer edge floored)."""
    h, w = image.shape[-2:]
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(size * long / short)
    return (new_long, size) if w <= h else (size, new_long)


def _resize(image: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """Antialiased resize of a uint8 CHW image, rounded back to uint8 like PIL; a no-op at that size."""
    if tuple(image.shape[-2:]) == size:
        return image
    out = F.interpolate(image[None].float(), size=size, mode=mode, antialias=True, align_corners=False)[0]
    return out.round_().clamp_(0, 255).to(torch.uint8)


def _center_crop(image: torch.Tensor, size: int) -> torch.Tensor:
    """torchvision's ``CenterCrop(size)`` of a CHW image at least ``size`` px on each side."""
    h, w = image.shape[-2:]
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return image[:, top : top + size, left : left + size]


def _color_jitter(batch: torch.Tensor, factors: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """torchvision's ``ColorJitter`` on a uint8 batch with per-image (brightness, contrast, saturation, hue) factors
    applied in per-image ``order`` (0 brightness, 1 contrast, 2 saturation, 3 hue); float math, rounded once."""
    x = batch.float().div_(255)
    gray_w = torch.tensor(_GRAY, device=x.device).view(1, 3, 1, 1)
    for position in range(4):
        for op in range(4):
            pick = torch.nonzero(order[:, position] == op).flatten()
            if pick.numel() == 0:
                continue
            sub, f = x[pick], factors[pick, op].float().view(-1, 1, 1, 1)
            if op == 0:
                sub = (sub * f).clamp_(0, 1)
            elif op == 1:
                mean = (sub * gray_w).sum(1, keepdim=True).mean(dim=(-3, -2, -1), keepdim=True)
                sub = (f * sub + (1 - f) * mean).clamp_(0, 1)
            elif op == 2:
                gray = (sub * gray_w).sum(1, keepdim=True)
                sub = (f * sub + (1 - f) * gray).clamp_(0, 1)
            else:
                sub = torch.stack([img if float(h) == 0.0 else TF.adjust_hue(img, float(h))
                                   for img, h in zip(sub, f.flatten())])
            x[pick] = sub
    return x.mul_(255).round_().to(torch.uint8)


class EncodedBatch:
    """A batch of encoded images: one flat uint8 byte tensor (JPEG files, or raw RGB pixels of files that
    ``decode_jpeg`` cannot read), per-image training parameters and the :class:`DeviceTransform` to apply.

    It has no ``to`` method on purpose: Lightning leaves it on the host, where ``decode_jpeg`` wants its input.
    """

    def __init__(self, data: torch.Tensor, lengths: list[int], shapes: list[tuple[int, int] | None],
                 params: torch.Tensor | None, transform: DeviceTransform) -> None:
        self.data = data
        self.lengths = lengths
        self.shapes = shapes
        self.params = params
        self.transform = transform

    def pin_memory(self) -> EncodedBatch:
        """The same batch with its bytes in pinned host memory (DataLoader ``pin_memory=True``)."""
        return EncodedBatch(self.data.pin_memory(), self.lengths, self.shapes, self.params, self.transform)

    def decode(self, device: torch.device | str) -> torch.Tensor:
        """Decode on ``device`` and apply the transform: a uint8 N×3×size×size batch there."""
        chunks = torch.split(self.data, self.lengths)
        images: list[torch.Tensor] = [torch.empty(0)] * len(chunks)
        jpegs = [i for i, shape in enumerate(self.shapes) if shape is None]
        if jpegs:
            if torch.device(device).type == "cuda":
                # nvJPEG writes on a private stream that does not wait for the current one, into blocks the caching
                # allocator may still owe to queued kernels (pytorch/vision PR #9606): let those finish first
                torch.cuda.current_stream(device).synchronize()
            decoded = decode_jpeg([chunks[i] for i in jpegs], mode=ImageReadMode.RGB, device=device)
            for i, image in zip(jpegs, decoded):
                images[i] = image
        for i, shape in enumerate(self.shapes):
            if shape is not None:
                images[i] = chunks[i].to(device).view(*shape, 3).permute(2, 0, 1)
        return self.transform.apply(images, self.params)


class EncodedImages(Dataset):
    """``(path, class)`` samples read as encoded bytes plus the transform's parameters; a training transform takes
    the ``(index, seed)`` keys of :class:`naas_train.data.EpochSampler`, an eval transform plain indices."""

    def __init__(self, samples: Sequence[tuple[str, int]], transform: DeviceTransform) -> None:
        self.samples = samples
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Item, int]:
        index, seed = key if isinstance(key, tuple) else (key, None)
        path, target = self.samples[index]
        data = read_file(path)
        header = Image.open(io.BytesIO(data.numpy()))
        shape = None
        if header.format != "JPEG" or header.mode not in ("RGB", "L"):
            rgb = np.asarray(header.convert("RGB"))
            data, shape = torch.from_numpy(rgb.reshape(-1).copy()), (rgb.shape[0], rgb.shape[1])
        params = None
        if self.transform.training:
            assert seed is not None, "training samples need the (index, seed) keys of EpochSampler"
            with seeded(seed):
                params = self.transform.draw(header)
        return (data, shape, params), target


def collate_encoded(samples: list[tuple[Item, int]], transform: DeviceTransform) -> tuple[EncodedBatch, torch.Tensor]:
    """Collate :class:`EncodedImages` samples into ``(EncodedBatch, targets)``."""
    items = [item for item, _ in samples]
    params = torch.stack([p for _, _, p in items]) if transform.training else None
    batch = EncodedBatch(torch.cat([d for d, _, _ in items]), [len(d) for d, _, _ in items],
                         [s for _, s, _ in items], params, transform)
    return batch, torch.tensor([t for _, t in samples])
