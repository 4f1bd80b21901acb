"""Fashion-MNIST (https://github.com/zalandoresearch/fashion-mnist) from its four IDX
files, as Debian's ``dataset-fashion-mnist`` installs them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from normscope.data.dataset import DataError, Dataset, default_data_dir
from normscope.data.idx import read_idx

FASHION_MNIST_DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")

FASHION_MNIST_CLASS_NAMES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]

FASHION_MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


def load_fashion_mnist(data_dir: str | Path | None = None) -> Dataset:
    """Load Fashion-MNIST from its four IDX files (``.gz`` or uncompressed).

    Default locations: /usr/share/datasets/fashion-mnist (Debian package
    ``dataset-fashion-mnist``), then ``<default data dir>/fashion-mnist``.
    """
    chosen = _locate_fashion_mnist(_fashion_candidates(data_dir))
    arrays = {k: read_idx(_find_idx(chosen, s)) for k, s in FASHION_MNIST_FILES.items()}  # type: ignore[arg-type]
    for split in ("train", "test"):
        _check_fashion_split(chosen, split, arrays[f"x_{split}"], arrays[f"y_{split}"])
    return Dataset(
        name="fashion-mnist",
        x_train=arrays["x_train"][..., None],
        y_train=arrays["y_train"].astype(np.int64),
        x_test=arrays["x_test"][..., None],
        y_test=arrays["y_test"].astype(np.int64),
        class_names=list(FASHION_MNIST_CLASS_NAMES),
    )


def _fashion_candidates(data_dir: str | Path | None) -> list[Path]:
    if data_dir is not None:
        d = Path(data_dir).expanduser()
        return [d, d / "fashion-mnist"]
    return [FASHION_MNIST_DEFAULT_DIR, default_data_dir() / "fashion-mnist"]


def _find_idx(d: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (d / name).is_file():
            return d / name
    return None


def _locate_fashion_mnist(candidates: list[Path]) -> Path:
    """The first candidate directory holding all four files; else a DataError naming
    what is missing where."""
    for d in candidates:
        if all(_find_idx(d, stem) for stem in FASHION_MNIST_FILES.values()):
            return d
    partial = next(
        (d for d in candidates if any(_find_idx(d, s) for s in FASHION_MNIST_FILES.values())),
        None,
    )
    if partial is not None:
        missing = [s + ".gz" for s in FASHION_MNIST_FILES.values() if not _find_idx(partial, s)]
        raise DataError(
            f"Fashion-MNIST in {partial} is incomplete: missing {', '.join(missing)}. "
            "Copy all four IDX files there, or install Debian's dataset-fashion-mnist."
        )
    where = " or ".join(str(d) for d in candidates)
    raise DataError(
        f"Fashion-MNIST not found in {where}: expected "
        f"{', '.join(s + '.gz' for s in FASHION_MNIST_FILES.values())}. "
        "Install it with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu), "
        "or put the four IDX files in a directory and pass --data-dir."
    )


def _check_fashion_split(chosen: Path, split: str, x: np.ndarray, y: np.ndarray) -> None:
    xs, ys = FASHION_MNIST_FILES[f"x_{split}"], FASHION_MNIST_FILES[f"y_{split}"]
    if x.ndim != 3 or x.dtype != np.uint8:
        raise DataError(f"{chosen / xs}: expected N x H x W uint8 images, got {x.dtype} {x.shape}.")
    if y.ndim != 1 or y.dtype != np.uint8:
        raise DataError(f"{chosen / ys}: expected a uint8 label vector, got {y.dtype} {y.shape}.")
    if len(x) != len(y):
        raise DataError(f"{chosen}: {xs} holds {len(x)} images but {ys} holds {len(y)} labels.")
    if len(y) and y.max() >= len(FASHION_MNIST_CLASS_NAMES):
        raise DataError(f"{chosen / ys}: label {int(y.max())} is outside 0..9.")
