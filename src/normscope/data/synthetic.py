"""A small, deterministic and learnable synthetic image classification set."""

from __future__ import annotations

import numpy as np

from normscope.data.dataset import DataError, Dataset

_GRID = 4  # class prototypes are a coarse GRID x GRID pattern of random colours
_CHUNK = 1024  # images rendered at once
_DEFAULT_SHAPE = (600, 200, 10, 32, 3)  # n_train, n_test, num_classes, size, channels


def make_synthetic(
    n_train: int = 600,
    n_test: int = 200,
    num_classes: int = 10,
    size: int = 32,
    channels: int = 3,
    seed: int = 0,
    noise: float = 0.18,
) -> Dataset:
    """A small, deterministic and learnable image classification set.

    Each class has a prototype: a coarse 4x4 grid of random colours blown up to
    ``size`` x ``size``.  Each image is its class prototype with random contrast,
    brightness, a small shift and Gaussian pixel noise.  A small CNN or even a
    linear model separates the classes well above chance.
    """
    _check_synthetic_args(n_train, n_test, num_classes, size, channels, noise)
    protos = _class_prototypes(num_classes, size, channels, seed)
    x_train, y_train = _render_split(protos, int(n_train), np.random.default_rng([seed, 1]), noise)
    x_test, y_test = _render_split(protos, int(n_test), np.random.default_rng([seed, 2]), noise)
    name = "synthetic"
    if (n_train, n_test, num_classes, size, channels) != _DEFAULT_SHAPE:
        name = f"synthetic:train={n_train},test={n_test},classes={num_classes},size={size},channels={channels}"
    return Dataset(
        name=name,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        class_names=[f"class_{i}" for i in range(num_classes)],
    )


def _check_synthetic_args(n_train: int, n_test: int, num_classes: int, size: int, channels: int, noise: float) -> None:
    for nm, v, lo in (
        ("n_train", n_train, 1),
        ("n_test", n_test, 1),
        ("num_classes", num_classes, 2),
        ("size", size, 4),
        ("channels", channels, 1),
    ):
        if int(v) < lo:
            raise DataError(f"synthetic: {nm} must be at least {lo}, got {v}.")
    if noise < 0:
        raise DataError(f"synthetic: noise must be >= 0, got {noise}.")


def _class_prototypes(num_classes: int, size: int, channels: int, seed: int) -> np.ndarray:
    """One float32 ``size x size x channels`` image in [0.1, 0.9] per class (K, S, S, C)."""
    rng = np.random.default_rng([seed, 0])
    low = rng.uniform(0.1, 0.9, size=(num_classes, _GRID, _GRID, channels))
    idx = (np.arange(size) * _GRID) // size
    return low[:, idx][:, :, idx].astype(np.float32)


def _render_split(protos: np.ndarray, n: int, rng: np.random.Generator, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images with balanced, shuffled labels, rendered in chunks."""
    num_classes, size, _, channels = protos.shape
    y = rng.permutation(np.arange(n) % num_classes).astype(np.int64)
    x = np.empty((n, size, size, channels), dtype=np.uint8)
    for start in range(0, n, _CHUNK):
        yy = y[start : start + _CHUNK]
        x[start : start + len(yy)] = _render_chunk(protos, yy, rng, noise)
    return x, y


def _render_chunk(protos: np.ndarray, y: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    """The prototypes of ``y``, shifted a little, with random contrast, brightness
    and Gaussian pixel noise, as uint8."""
    m = len(y)
    max_shift = max(1, protos.shape[1] // 16)
    img = protos[y].copy()
    shifts = rng.integers(-max_shift, max_shift + 1, size=(m, 2))
    for i in range(m):
        img[i] = np.roll(img[i], tuple(shifts[i]), axis=(0, 1))
    contrast = rng.uniform(0.7, 1.1, size=(m, 1, 1, 1)).astype(np.float32)
    bright = rng.uniform(-0.1, 0.1, size=(m, 1, 1, 1)).astype(np.float32)
    img = (img - 0.5) * contrast + 0.5 + bright
    img += rng.normal(0.0, noise, size=img.shape).astype(np.float32)
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
