"""User data sets stored as ``.npz`` arrays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from normscope.data.dataset import DataError, Dataset, decode_names

_NPZ_HELP = (
    "An npz data set holds x_train, y_train, x_test, y_test (uint8 images N x H x W x C, "
    "N x C x H x W or N x H x W; integer labels 0..K-1) and optionally class_names, "
    "e.g. np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)."
)

_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


MAX_CLASSES = 100_000  # far above ImageNet-21k's; a larger label is not a class number


def load_npz(path: str | Path) -> Dataset:
    """Load a user data set from an ``.npz`` file (see ``_NPZ_HELP``)."""
    path = Path(path).expanduser()
    arrays, names_arr = _read_npz(path)
    for key in ("x_train", "x_test"):
        arrays[key] = _checked_images(arrays[key], path, key)
    for key in ("y_train", "y_test"):
        arrays[key] = _checked_labels(arrays[key], path, key)
        xkey = "x" + key[1:]
        if len(arrays[key]) != len(arrays[xkey]):
            raise DataError(
                f"{path}: {xkey!r} has {len(arrays[xkey])} images but {key!r} has {len(arrays[key])} labels."
            )
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise DataError(
            f"{path}: 'x_train' images are {arrays['x_train'].shape[1:]} but 'x_test' images "
            f"are {arrays['x_test'].shape[1:]} (H, W, C after layout detection); they must match."
        )
    return Dataset(
        name=f"npz:{path}",
        x_train=arrays["x_train"],
        y_train=arrays["y_train"],
        x_test=arrays["x_test"],
        y_test=arrays["y_test"],
        class_names=_class_names(arrays, names_arr, path),
    )


def _read_npz(path: Path) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """The four arrays and ``class_names`` (None when absent) from the archive."""
    if not path.is_file():
        raise DataError(f"npz data set {path} not found. {_NPZ_HELP}")
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise DataError(f"{path} is not a readable .npz file ({type(exc).__name__}: {exc}). {_NPZ_HELP}") from exc
    if not hasattr(npz, "files"):
        raise DataError(f"{path} holds a single array, not an .npz archive of named arrays. {_NPZ_HELP}")
    with npz:
        files = set(npz.files)
        arrays: dict[str, np.ndarray] = {}
        for key in _ARRAYS:
            if key not in files:
                raise DataError(
                    f"{path} has no array named {key!r} (found: {', '.join(sorted(files)) or 'none'}). {_NPZ_HELP}"
                )
            try:
                arrays[key] = npz[key]
            except ValueError as exc:  # object arrays need pickle
                raise DataError(f"{path}: {key!r} is an object array; store plain numeric arrays. {_NPZ_HELP}") from exc
        names_arr = _read_class_names(npz, path) if "class_names" in files else None
    return arrays, names_arr


def _read_class_names(npz: Any, path: Path) -> np.ndarray:
    try:
        return npz["class_names"]
    except ValueError as exc:
        raise DataError(
            f"{path}: 'class_names' is an object array; store it as a string array, e.g. np.array(['cat', 'dog'])."
        ) from exc


def _to_nhwc(x: np.ndarray, path: Path, key: str) -> np.ndarray:
    if x.ndim == 3:
        return x[..., None]
    if x.ndim == 4:
        if x.shape[1] in (1, 3) and x.shape[-1] not in (1, 3):
            return np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        return x
    raise DataError(
        f"{path}: {key!r} has shape {x.shape}; expected N x H x W x C, N x C x H x W or N x H x W images. {_NPZ_HELP}"
    )


def _checked_images(x: np.ndarray, path: Path, key: str) -> np.ndarray:
    """uint8 images in NHWC layout."""
    if x.dtype != np.uint8:
        hint = ""
        if np.issubdtype(x.dtype, np.floating):
            hint = " If your images are floats in [0, 1], store (x * 255).round().astype(np.uint8)."
        raise DataError(f"{path}: {key!r} must be uint8 images, got {x.dtype}.{hint} {_NPZ_HELP}")
    return _to_nhwc(x, path, key)


def _checked_labels(y: np.ndarray, path: Path, key: str) -> np.ndarray:
    """Non-negative integer labels as an int64 vector (an N x 1 column is accepted)."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(
            f"{path}: {key!r} must be a vector of integer class labels, got shape {y.shape}"
            + (" (one-hot? store y.argmax(1))" if y.ndim == 2 else "")
            + f". {_NPZ_HELP}"
        )
    if not (np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_):
        raise DataError(f"{path}: {key!r} must hold integer labels, got {y.dtype}. {_NPZ_HELP}")
    if len(y) and y.min() < 0:
        raise DataError(f"{path}: {key!r} has a negative label ({int(y.min())}). {_NPZ_HELP}")
    return y.astype(np.int64)


def _class_names(arrays: dict[str, np.ndarray], names_arr: np.ndarray | None, path: Path) -> list[str]:
    """The stored class names, checked against the labels, or "0".."K-1"."""
    max_label = max((int(arrays[k].max()) for k in ("y_train", "y_test") if len(arrays[k])), default=-1)
    if max_label >= MAX_CLASSES:  # checked before anything the size of the class count is made
        key = "y_train" if len(arrays["y_train"]) and arrays["y_train"].max() == max_label else "y_test"
        raise DataError(
            f"{path}: {key!r} has label {max_label:,}; labels are class numbers 0..K-1 with K at most "
            f"{MAX_CLASSES:,}. {_NPZ_HELP}"
        )
    if names_arr is not None:
        if names_arr.ndim != 1 or names_arr.dtype.kind not in "US":
            raise DataError(
                f"{path}: 'class_names' must be a 1-D string array, got {names_arr.dtype} {names_arr.shape}."
            )
        class_names = decode_names(names_arr.tolist())
        if max_label >= len(class_names):
            key = "y_train" if len(arrays["y_train"]) and arrays["y_train"].max() == max_label else "y_test"
            raise DataError(
                f"{path}: {key!r} has label {max_label} but 'class_names' lists only "
                f"{len(class_names)} classes (labels must be 0..{len(class_names) - 1})."
            )
    else:
        class_names = [str(i) for i in range(max_label + 1)]
    if len(class_names) < 2:
        raise DataError(f"{path}: at least 2 classes are needed, found {len(class_names)}.")
    return class_names
