"""The data of a run as the trainer feeds it: host splits, then uint8 batches on the device.

1. :func:`prepare_data` loads a data set, optionally takes a class-stratified subset,
   carves the validation split and computes the training split's channel statistics
   (:class:`Splits`, uint8 NHWC numpy arrays).
2. :class:`DeviceData` puts every split on the device as uint8 N x C x H x W; random crops
   and flips of a training batch are one gather and one ``where`` there.
3. :func:`epoch_order` is one epoch's permutation, crop offsets and flips, from (seed, epoch).
4. :func:`to_input` standardizes uint8 images: the one preprocessing function of normscope.

Image folders (``folder:PATH``) take a separate path: :func:`prepare_data` gives a
``FolderSplits`` (normscope.data.stream) that holds the file lists only, and its feeder
streams decoded batches through DataLoader workers. Both kinds of splits offer the same
``batches(split, size)`` (uint8 batches in order) and ``feeder(...)`` (what the trainer draws
its batches from).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from normscope.data import channel_stats, load_dataset, split_validation
from normscope.data import subset as take_subset
from normscope.data.inputs import IMAGENET, NORMALIZE, epoch_order, normalization, to_input
from normscope.errors import NormscopeError

__all__ = ["Splits", "prepare_data", "DeviceData", "epoch_order", "to_input", "NORMALIZE", "IMAGENET"]


@dataclass
class Splits:
    """uint8 NHWC images and int64 labels per split ('train', 'val', 'test') and the
    per-channel statistics of the training split on the [0, 1] scale."""

    name: str
    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    mean: np.ndarray
    std: np.ndarray
    class_names: list[str]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        _, h, w, c = self.x["train"].shape
        return (int(c), int(h), int(w))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def sizes(self) -> dict[str, int]:
        return {k: int(len(v)) for k, v in self.y.items()}

    def stat_tensors(self, device) -> tuple[torch.Tensor, torch.Tensor]:
        c = len(self.mean)
        mean = torch.tensor(self.mean, dtype=torch.float32, device=device).view(1, c, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=device).view(1, c, 1, 1)
        return mean, std

    def images(self, split: str, device) -> torch.Tensor:
        """uint8 N x C x H x W images of ``split`` on ``device``."""
        return torch.from_numpy(self.x[split]).permute(0, 3, 1, 2).contiguous().to(device)

    def batches(self, split: str, batch_size: int):
        """(uint8 N x C x H x W, int64 labels) CPU batches of ``split``, in order."""
        x, y = self.x[split], self.y[split]
        for i in range(0, len(y), batch_size):
            xb = torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size])).permute(0, 3, 1, 2).contiguous()
            yield xb, torch.from_numpy(y[i : i + batch_size])

    def feeder(self, device: torch.device, crop: int) -> DeviceData:
        """What the trainer draws batches from: every split on the device."""
        return DeviceData(self, device, crop)


def prepare_data(
    data: str,
    data_dir=None,
    subset: int | None = None,
    test_subset: int | None = None,
    validation: float = 0.1,
    standardize: bool = True,
    split_seed: int = 0,
    normalize: str | None = None,
    image=None,
):
    """Load ``data``, optionally take a class-stratified subset, carve the validation
    split from the training images and compute the normalization's channel statistics
    (``normalize``: imagenet, dataset or none; None: dataset when ``standardize``, else none).

    Everything here depends on ``split_seed`` only (not on the training seed): runs with
    different seeds see the same training, validation and test images. ``folder:PATH`` gives
    a FolderSplits (files only, streamed), with ``image`` (ImageOptions) its decoded size.
    """
    normalize = normalize or ("dataset" if standardize else "none")
    if data.strip().startswith("folder:"):
        from normscope.data.stream import prepare_folder

        return prepare_folder(data.strip()[7:], image, subset, test_subset, validation, normalize, split_seed)
    ds = load_dataset(data, data_dir=data_dir, seed=split_seed)
    if subset is not None or test_subset is not None:
        ds = take_subset(ds, subset, test_subset, seed=split_seed)
    train_idx, val_idx = split_validation(ds.n_train, validation, seed=split_seed)
    if len(train_idx) == 0:
        raise NormscopeError(f"{data}: no training images left after the validation split")
    x = {"train": ds.x_train[train_idx], "val": ds.x_train[val_idx], "test": ds.x_test}
    y = {"train": ds.y_train[train_idx], "val": ds.y_train[val_idx], "test": ds.y_test}
    mean, std = normalization(normalize, ds.input_shape[0], lambda: channel_stats(x["train"]))
    return Splits(
        name=ds.name,
        x=x,
        y={k: v.astype(np.int64) for k, v in y.items()},
        mean=np.asarray(mean, dtype=np.float64),
        std=np.asarray(std, dtype=np.float64),
        class_names=list(ds.class_names),
    )


class DeviceData:
    """Every split as a uint8 N x C x H x W tensor on the device (a quarter of float32's
    memory), labels as int64; the training images also zero-padded once for random crops."""

    def __init__(self, splits: Splits, device: torch.device, crop: int):
        self.device = device
        self.x = {k: splits.images(k, device) for k in splits.x}
        self.y = {k: torch.from_numpy(v).to(device) for k, v in splits.y.items()}
        self.mean, self.std = splits.stat_tensors(device)
        self.crop = int(crop)
        self.train_padded = F.pad(self.x["train"], (crop,) * 4) if crop > 0 else None
        _, c, h, w = self.x["train"].shape
        self._rows = torch.arange(h, device=device)
        self._cols = torch.arange(w, device=device)
        self._chans = torch.arange(c, device=device)

    def n(self, split: str) -> int:
        return len(self.y[split])

    def train_batches(self, seed: int, epoch: int, flip: bool, batch_size: int):
        """(float input, labels) batches of one training epoch in its order (crops and flips on
        the device), standardized."""
        order = epoch_order(self.n("train"), seed, epoch, self.crop, flip)
        perm, offsets, flips = (None if v is None else v.to(self.device) for v in order)
        for start in range(0, len(perm), batch_size):
            sl = slice(start, start + batch_size)
            idx = perm[sl]
            xb = self.train_batch(idx, None if offsets is None else offsets[sl], None if flips is None else flips[sl])
            yield to_input(xb, self.mean, self.std), self.y["train"][idx]

    def batches(self, split: str, batch_size: int):
        """(float input, labels) batches of ``split`` in order, standardized, on the device."""
        for start in range(0, self.n(split), batch_size):
            xb = self.x[split][start : start + batch_size]
            yield to_input(xb, self.mean, self.std), self.y[split][start : start + batch_size]

    def train_batch(self, idx: torch.Tensor, offsets: torch.Tensor | None, flips: torch.Tensor | None) -> torch.Tensor:
        """uint8 training images ``idx``, each cropped at its (dy, dx) offset inside the
        padded image and flipped where ``flips`` is True; one gather, one where."""
        if offsets is None:
            xb = self.x["train"][idx]
        else:
            rows = (offsets[:, 0:1] + self._rows)[:, None, :, None]  # B,1,H,1
            cols = (offsets[:, 1:2] + self._cols)[:, None, None, :]  # B,1,1,W
            xb = self.train_padded[idx[:, None, None, None], self._chans[None, :, None, None], rows, cols]
        if flips is not None:
            xb = torch.where(flips[:, None, None, None], xb.flip(3), xb)
        return xb
