"""Class-stratified subsets, train/validation splits and per-channel statistics."""

from __future__ import annotations

import numpy as np

from normscope.data.dataset import DataError, Dataset


def stratified_pick(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices (sorted) of ``n`` elements drawn so that every class keeps its
    share (up to rounding)."""
    perm = rng.permutation(len(y))
    yp = y[perm]
    # rank of each permuted element within its class
    order = np.argsort(yp, kind="stable")
    ys = yp[order]
    starts = np.r_[0, np.flatnonzero(np.diff(ys)) + 1]
    counts = np.diff(np.r_[starts, len(ys)])
    rank_sorted = np.arange(len(ys)) - np.repeat(starts, counts)
    rank = np.empty(len(ys), dtype=np.int64)
    rank[order] = rank_sorted
    count_of = np.repeat(counts, counts)
    cnt = np.empty(len(ys), dtype=np.int64)
    cnt[order] = count_of
    key = (rank + 0.5) / cnt
    chosen = perm[np.argsort(key, kind="stable")[:n]]
    return np.sort(chosen)


def subset(ds: Dataset, n_train: int | None = None, n_test: int | None = None, seed: int = 0) -> Dataset:
    """A deterministic, class-stratified subset: ``n_train`` training and
    ``n_test`` test images (``None`` or a number >= the size keeps the split
    whole).  Original order is kept."""
    rng = np.random.default_rng([seed, 7])
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x, y = getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")
        if n is None or n >= len(y):
            out[split] = (x, y)
            continue
        if n < 0:
            raise DataError(f"subset: n_{split} must be >= 0, got {n}.")
        idx = stratified_pick(y, int(n), rng)
        out[split] = (x[idx], y[idx])
    return Dataset(
        name=ds.name,
        x_train=out["train"][0],
        y_train=out["train"][1],
        x_test=out["test"][0],
        y_test=out["test"][1],
        class_names=list(ds.class_names),
    )


def split_validation(n: int, fraction: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Deterministically split ``range(n)`` into (train_idx, val_idx), sorted
    int64 arrays, with ``round(n * fraction)`` validation indices."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation fraction must be in [0, 1), got {fraction}")
    perm = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * fraction))
    if fraction > 0 and n > 1:
        n_val = min(max(n_val, 1), n - 1)
    val = np.sort(perm[:n_val]).astype(np.int64)
    train = np.sort(perm[n_val:]).astype(np.int64)
    return train, val


def channel_stats(x: np.ndarray, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and (population) std of uint8 NHWC images on the [0, 1]
    scale, accumulated in float64 over chunks of images."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(f"channel_stats expects N x H x W x C images, got shape {x.shape}")
    c = x.shape[-1]
    total = np.zeros(c, dtype=np.float64)
    total_sq = np.zeros(c, dtype=np.float64)
    count = 0
    for start in range(0, len(x), chunk):
        block = x[start : start + chunk].reshape(-1, c).astype(np.float64)
        total += block.sum(axis=0)
        total_sq += np.square(block).sum(axis=0)
        count += block.shape[0]
    if count == 0:
        raise ValueError("channel_stats needs at least one image")
    mean = total / count
    var = np.maximum(total_sq / count - mean**2, 0.0)
    return mean / 255.0, np.sqrt(var) / 255.0
