"""User data sets stored as ``.npz`` arrays."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from normscope.data.dataset import DataError, Dataset, DataWarning, decode_names
from normscope.data.npz_read import read_npz

_NPZ_HELP = (
    "An npz data set holds x_train, y_train, x_test, y_test (uint8 images N x H x W x C, "
    "N x C x H x W or N x H x W; integer labels 0..K-1) and optionally class_names, "
    "e.g. np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)."
)
LAYOUTS = ("nhwc", "nchw")
_PLAIN_CHANNELS = (1, 3)  # a grey or RGB axis: the layout is clear

_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


MAX_CLASSES = 100_000  # far above ImageNet-21k's; a larger label is not a class number


def load_npz(path: str | Path, layout: str | None = None) -> Dataset:
    """Load a user data set from an ``.npz`` file (see ``_NPZ_HELP``). ``layout`` says how
    4-D images are laid out, ``nhwc`` or ``nchw``; None guesses, with a DataWarning when
    the shape allows both (``npz:PATH,layout=nchw`` on the command line)."""
    path = Path(path).expanduser()
    if layout is not None and layout not in LAYOUTS:
        raise DataError(f"npz:{path}: layout must be nhwc or nchw, got {layout!r}.")
    arrays, names_arr = _read_npz(path)
    for key in ("x_train", "x_test"):
        arrays[key] = _checked_images(arrays[key], path, key, layout)
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
    """The four arrays and ``class_names`` (None when absent) from the archive, streamed
    within the sizes their headers declare (``npz_read``)."""
    if not path.is_file():
        raise DataError(f"npz data set {path} not found. {_NPZ_HELP}")
    arrays = read_npz(path, _ARRAYS, ("class_names",), _NPZ_HELP)
    names_arr = arrays.pop("class_names", None)
    return arrays, names_arr


def _layout_of(shape: tuple, path: Path, key: str, layout: str | None) -> str:
    """``layout``, or the guess from the shape: the axis of 1 or 3 is the channel axis; when
    neither or both are, the smaller axis is, and a DataWarning says how to choose."""
    if layout is not None:
        return layout
    first, last = shape[1] in _PLAIN_CHANNELS, shape[-1] in _PLAIN_CHANNELS
    if first != last:
        return "nchw" if first else "nhwc"
    guess = "nchw" if shape[1] < shape[-1] else "nhwc"
    c, (h, w) = (shape[1], shape[2:]) if guess == "nchw" else (shape[-1], shape[1:3])
    other = "nhwc" if guess == "nchw" else "nchw"
    warnings.warn(
        f"{path}: {key!r} has shape {tuple(shape)}, which may be N x H x W x C or N x C x H x W; read as "
        f"{guess.upper()} ({h}x{w} images with {c} channels). If it is {other.upper()}, use "
        f"--data npz:{path},layout={other}.",
        DataWarning,
        stacklevel=2,
    )
    return guess


def _to_nhwc(x: np.ndarray, path: Path, key: str, layout: str | None) -> np.ndarray:
    if x.ndim == 3:
        return x[..., None]
    if x.ndim == 4:
        if _layout_of(x.shape, path, key, layout) == "nchw":
            return np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        return x
    raise DataError(
        f"{path}: {key!r} has shape {x.shape}; expected N x H x W x C, N x C x H x W or N x H x W images. {_NPZ_HELP}"
    )


def _checked_images(x: np.ndarray, path: Path, key: str, layout: str | None) -> np.ndarray:
    """uint8 images in NHWC layout, of at least one pixel and one channel."""
    if x.dtype != np.uint8:
        hint = ""
        if np.issubdtype(x.dtype, np.floating):
            hint = " If your images are floats in [0, 1], store (x * 255).round().astype(np.uint8)."
        raise DataError(f"{path}: {key!r} must be uint8 images, got {x.dtype}.{hint} {_NPZ_HELP}")
    x = _to_nhwc(x, path, key, layout)
    if 0 in x.shape[1:]:
        _, h, w, c = x.shape
        raise DataError(f"{path}: {key!r} holds images of {h}x{w} pixels with {c} channels; none may be 0.")
    return x


def _checked_labels(y: np.ndarray, path: Path, key: str) -> np.ndarray:
    """Labels 0..MAX_CLASSES-1 as an int64 vector (an N x 1 column is accepted), checked in
    their own dtype before any conversion (a uint64 of 2**63 is not a negative int64)."""
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
    if len(y) and y.max() >= MAX_CLASSES:
        raise DataError(
            f"{path}: {key!r} has label {int(y.max()):,}; labels are class numbers 0..K-1 with K at most "
            f"{MAX_CLASSES:,}. {_NPZ_HELP}"
        )
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
