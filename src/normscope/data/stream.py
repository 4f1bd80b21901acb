"""The streaming path of image folders: :class:`FolderSplits` (the file lists of a run's
splits and their statistics, never the images) and :class:`StreamData` (what the trainer
draws its batches from: DataLoader workers decode, resize and crop; crops and flips of the
augmentation happen on the device, from the same per-epoch order as the in-memory path).

``NORMSCOPE_DATA_WORKERS`` sets the number of DataLoader worker processes (default: up to
4, at most the CPU count; 0 decodes in the main process).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from normscope.data.dataset import DataError
from normscope.data.folder import (
    TEST_FRACTION,
    FolderImages,
    FolderSource,
    ImageOptions,
    fingerprint,
    load_image,
    scan_folder,
    stratified_split,
)
from normscope.data.inputs import epoch_order, normalization, to_input
from normscope.data.splits import split_validation, stratified_pick

__all__ = ["FolderSplits", "StreamData", "prepare_folder", "data_workers"]


def data_workers() -> int:
    value = os.environ.get("NORMSCOPE_DATA_WORKERS")
    if value is not None:
        try:
            return max(0, int(value))
        except ValueError:
            raise DataError(f"NORMSCOPE_DATA_WORKERS must be a whole number, got {value!r}") from None
    return min(4, os.cpu_count() or 1)


def prepare_folder(path, image, subset, test_subset, validation: float, normalize: str, split_seed: int):
    """The splits of ``folder:PATH``: train/ (a class-stratified ``subset`` of it), val/ or a
    seeded share of train (``validation``), test/ or a seeded class-stratified share of train
    (TEST_FRACTION); statistics by ``normalize`` (dataset: one streamed pass over train)."""
    if image is None:
        raise DataError(f"folder:{path}: image folders need an image size (train.image_size)")
    src = scan_folder(path)
    files, labels = dict(src.files), dict(src.labels)
    if "test" not in files:
        kept, taken = stratified_split(labels["train"], TEST_FRACTION, split_seed)
        (files["test"], labels["test"]), (files["train"], labels["train"]) = _take(src, kept, taken)
    for split, n in (("train", subset), ("test", test_subset)):
        if n is not None and n < len(labels[split]):
            idx = stratified_pick(labels[split], int(n), np.random.default_rng([split_seed, 7]))
            files[split], labels[split] = [files[split][i] for i in idx], labels[split][idx]
    if "val" not in files:
        train_idx, val_idx = split_validation(len(labels["train"]), validation, seed=split_seed)
        files["val"], labels["val"] = [files["train"][i] for i in val_idx], labels["train"][val_idx]
        files["train"], labels["train"] = [files["train"][i] for i in train_idx], labels["train"][train_idx]
    splits = FolderSplits(
        name=f"folder:{src.root}",
        root=src.root,
        files=files,
        y=labels,
        class_names=src.class_names,
        image=image,
        fingerprints={k: fingerprint(src.root, v) for k, v in files.items()},
    )
    splits.mean, splits.std = normalization(normalize, 3, splits.train_stats)
    return splits


def _take(src: FolderSource, kept, taken):
    return src.take("train", taken), src.take("train", kept)


@dataclass
class FolderSplits:
    """The file lists and int64 labels per split ('train', 'val', 'test'), the images' size
    and the normalization's per-channel statistics on the [0, 1] scale."""

    name: str
    root: Path
    files: dict[str, list[str]]
    y: dict[str, np.ndarray]
    class_names: list[str]
    image: ImageOptions
    fingerprints: dict[str, str]
    mean: np.ndarray = field(default_factory=lambda: np.zeros(3))
    std: np.ndarray = field(default_factory=lambda: np.ones(3))

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (3, self.image.size, self.image.size)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def sizes(self) -> dict[str, int]:
        return {k: int(len(v)) for k, v in self.y.items()}

    @property
    def x(self) -> dict[str, _LazyImages]:
        """Per split, images decoded only where indexed (``x[split][idx]``: N x H x W x C uint8)."""
        return {k: _LazyImages(self, k) for k in self.files}

    def stat_tensors(self, device) -> tuple[torch.Tensor, torch.Tensor]:
        mean = torch.tensor(self.mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        return mean, std

    def dataset(self, split: str) -> FolderImages:
        return FolderImages(self.root, self.files[split], self.y[split], self.image)

    def loader(self, split: str, batch_size: int, order=None, pin: bool = False):
        """A DataLoader of (uint8 N x 3 x S x S, labels) batches of ``split``, in ``order``
        (indices; default: the split's order)."""
        workers = data_workers()
        return torch.utils.data.DataLoader(
            self.dataset(split),
            batch_size=batch_size,
            sampler=None if order is None else list(order),
            shuffle=False,
            num_workers=workers,
            pin_memory=pin,
            prefetch_factor=2 if workers else None,
            generator=torch.Generator().manual_seed(0),  # its base seed: not drawn from the global generator
        )

    def batches(self, split: str, batch_size: int):
        """(uint8 N x C x H x W, int64 labels) CPU batches of ``split``, in order."""
        yield from worker_errors(self.loader(split, batch_size))

    def images(self, split: str, device) -> torch.Tensor:
        """The whole split decoded into one uint8 tensor: for a few images (Run.split); the
        trainer, evaluation and features stream instead."""
        chunks = [xb for xb, _ in self.batches(split, 256)]
        size = self.image.size
        return (torch.cat(chunks) if chunks else torch.zeros((0, 3, size, size), dtype=torch.uint8)).to(device)

    def train_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel mean and std of the training images as the model sees them, in one
        streamed pass (float64 sums)."""
        total, total_sq, count = np.zeros(3), np.zeros(3), 0
        for xb, _ in self.batches("train", 256):
            v = xb.permute(1, 0, 2, 3).reshape(3, -1).double()
            total += v.sum(1).numpy()
            total_sq += v.square().sum(1).numpy()
            count += v.shape[1]
        if count == 0:
            raise DataError(f"{self.name}: no training images left after the validation split")
        mean = total / count
        return mean / 255.0, np.sqrt(np.maximum(total_sq / count - mean**2, 0.0)) / 255.0

    def feeder(self, device: torch.device, crop: int) -> StreamData:
        return StreamData(self, device, crop)


class _LazyImages:
    """``x[split]`` of a FolderSplits: its length, and the images of an index decoded on demand."""

    def __init__(self, splits: FolderSplits, split: str):
        self.splits, self.split = splits, split

    def __len__(self) -> int:
        return len(self.splits.files[self.split])

    def __getitem__(self, idx) -> np.ndarray:
        idx = np.atleast_1d(np.asarray(idx))
        s = self.splits
        images = [load_image(s.root / s.files[self.split][int(i)], s.image) for i in idx]
        return torch.stack(images).permute(0, 2, 3, 1).numpy()


class StreamData:
    """The trainer's batches from an image folder: decoded by DataLoader workers in each
    epoch's order, moved to the device, cropped and flipped there, standardized."""

    def __init__(self, splits: FolderSplits, device: torch.device, crop: int):
        self.splits, self.device, self.crop = splits, device, int(crop)
        self.y = {k: torch.from_numpy(v).to(device) for k, v in splits.y.items()}
        self.mean, self.std = splits.stat_tensors(device)
        self.pin = device.type == "cuda"

    def n(self, split: str) -> int:
        return len(self.y[split])

    def train_batches(self, seed: int, epoch: int, flip: bool, batch_size: int):
        perm, offsets, flips = epoch_order(self.n("train"), seed, epoch, self.crop, flip)
        loader = self.splits.loader("train", batch_size, perm.tolist(), self.pin)
        for b, (xb, yb) in enumerate(worker_errors(loader)):
            sl = slice(b * batch_size, b * batch_size + len(yb))
            xb = xb.to(self.device, non_blocking=True)
            if offsets is not None:
                xb = _crop(xb, offsets[sl].to(self.device), self.crop)
            if flips is not None:
                xb = torch.where(flips[sl].to(self.device)[:, None, None, None], xb.flip(3), xb)
            yield to_input(xb, self.mean, self.std), yb.to(self.device, non_blocking=True)

    def batches(self, split: str, batch_size: int):
        for xb, yb in worker_errors(self.splits.loader(split, batch_size, pin=self.pin)):
            yield to_input(xb.to(self.device), self.mean, self.std), yb.to(self.device)


def worker_errors(loader):
    """The loader's batches; a DataError raised in a worker process (an undecodable file) again
    as its own one-line message, without the worker's traceback that DataLoader adds."""
    try:
        yield from loader
    except DataError as exc:
        text = str(exc).rstrip()
        if "Original Traceback" not in text:
            raise
        last = text.splitlines()[-1]
        raise DataError(last.split("DataError: ", 1)[-1]) from None


def _crop(xb: torch.Tensor, offsets: torch.Tensor, crop: int) -> torch.Tensor:
    """Each image of ``xb`` zero-padded by ``crop`` and cut at its (dy, dx) offset: one gather."""
    _, c, h, w = xb.shape
    padded = F.pad(xb, (crop,) * 4)
    dev = xb.device
    rows = (offsets[:, 0:1] + torch.arange(h, device=dev))[:, None, :, None]
    cols = (offsets[:, 1:2] + torch.arange(w, device=dev))[:, None, None, :]
    b = torch.arange(len(xb), device=dev)[:, None, None, None]
    return padded[b, torch.arange(c, device=dev)[None, :, None, None], rows, cols]
