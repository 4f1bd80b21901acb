"""Image folders (torchvision's ``ImageFolder`` convention), read while streaming.

``folder:PATH`` names a directory::

    PATH/train/CLASS/*.jpg|png|...   the training images, one directory per class
    PATH/val/CLASS/...               optional: the validation images (else carved from train)
    PATH/test/CLASS/...              optional: the test images (else a seeded, class-stratified
                                     share of train: TEST_FRACTION)

Only the file list is held in memory (:class:`FolderSource`); images are decoded, resized
(shorter side) and centre-cropped to a square when a batch asks for them, in DataLoader
workers (:class:`FolderImages`: Pillow decodes, torchvision's transforms resize and crop).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from normscope.data.dataset import DataError
from normscope.data.splits import stratified_pick

__all__ = ["TEST_FRACTION", "IMAGE_EXTENSIONS", "FolderSource", "ImageOptions", "FolderImages", "scan_folder"]

TEST_FRACTION = 0.2  # the test share of train/ when the folder has no test/ (the clip-art project's 80/20)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
_HELP = (
    "an image folder holds train/CLASS/*.jpg (or .png, ...), one directory per class, "
    "and optionally val/CLASS/... and test/CLASS/..."
)


@dataclass(frozen=True)
class ImageOptions:
    """How a file becomes the model's input: the shorter side resized to ``resize`` pixels,
    then the centre ``size`` × ``size`` square cropped (3 channels, uint8)."""

    size: int
    resize: int

    @classmethod
    def of(cls, size: int | None, resize: int | None = None) -> ImageOptions | None:
        """From a run's ``train.image_size`` and ``train.resize``; None without a size."""
        return None if size is None else cls(int(size), int(resize or size))

    def __post_init__(self) -> None:
        if self.size < 1 or self.resize < self.size:
            raise DataError(
                f"image size {self.size}, resize {self.resize}: both positive, the resize at least the size "
                "(the shorter side is resized, then the centre square of the size cropped)"
            )


@dataclass
class FolderSource:
    """The files of an image folder: relative paths and labels per split present on disk."""

    root: Path
    class_names: list[str]
    files: dict[str, list[str]]
    labels: dict[str, np.ndarray]

    def take(self, split: str, idx: np.ndarray) -> tuple[list[str], np.ndarray]:
        return [self.files[split][i] for i in idx], self.labels[split][idx]


def scan_folder(path: str | Path) -> FolderSource:
    """The class names (train/'s directories, sorted) and every split's files."""
    from torchvision.datasets.folder import find_classes, make_dataset

    root = Path(path).expanduser()
    if not (root / "train").is_dir():
        what = "not found" if not root.exists() else "has no train/ directory"
        raise DataError(f"image folder {root} {what}: {_HELP}")
    try:
        class_names, class_to_idx = find_classes(root / "train")
    except FileNotFoundError:
        raise DataError(f"{root / 'train'}: no class directories in it; {_HELP}") from None
    if len(class_names) < 2:
        raise DataError(f"{root / 'train'}: at least 2 class directories are needed, found {len(class_names)}")
    files: dict[str, list[str]] = {}
    labels: dict[str, np.ndarray] = {}
    for split in ("train", "val", "test"):
        folder = root / split
        if not folder.is_dir():
            continue
        stray = sorted(d.name for d in folder.iterdir() if d.is_dir() and d.name not in class_to_idx)
        if stray:
            raise DataError(f"{folder}: class directory '{stray[0]}' is not one of train/'s classes")
        found = make_dataset(folder, class_to_idx, extensions=IMAGE_EXTENSIONS, allow_empty=True)
        files[split] = [str(Path(f).relative_to(root)) for f, _ in found]
        labels[split] = np.array([c for _, c in found], dtype=np.int64)
    if not files["train"]:
        raise DataError(f"{root / 'train'}: no images ({', '.join(IMAGE_EXTENSIONS)}); {_HELP}")
    return FolderSource(root.resolve(), list(class_names), files, labels)


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, taken) sorted indices: ``fraction`` of each class taken, drawn with ``seed``."""
    n_take = int(round(len(labels) * fraction))
    taken = stratified_pick(labels, n_take, np.random.default_rng([seed, 11]))
    kept = np.setdiff1d(np.arange(len(labels)), taken)
    return kept, taken


def fingerprint(root: Path, files: list[str]) -> str:
    """A short hash of a split's relative paths and file sizes: the same files, the same value."""
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f}\0{(root / f).stat().st_size}\n".encode())
    return h.hexdigest()[:16]


class FolderImages(torch.utils.data.Dataset):
    """A split's files as (uint8 3 × size × size tensor, label), decoded when asked for."""

    def __init__(self, root: Path, files: list[str], labels: np.ndarray, options: ImageOptions):
        self.root, self.files, self.labels, self.options = root, files, labels, options

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return load_image(self.root / self.files[i], self.options), int(self.labels[i])


def load_image(path: Path, options: ImageOptions) -> torch.Tensor:
    """One file as a uint8 3 × size × size tensor: decoded as RGB (Pillow, as torchvision's
    ImageFolder reads), the shorter side resized (antialiased), the centre square cropped."""
    from PIL import Image, ImageOps, UnidentifiedImageError
    from torchvision.transforms.v2 import functional as TF

    try:
        with Image.open(path) as f:
            image = ImageOps.exif_transpose(f).convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise DataError(f"{path}: cannot be decoded as an image ({str(exc).splitlines()[0][:200]})") from None
    image = TF.resize(image, [options.resize], antialias=True)
    return TF.pil_to_tensor(TF.center_crop(image, [options.size, options.size])).contiguous()
