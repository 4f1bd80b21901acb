"""Writers of tiny data sets in the official on-disk formats, for tests: a CIFAR-100
pickle directory or tarball, Fashion-MNIST IDX files."""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import struct
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from normscope.data import (
    CIFAR100_COARSE_LABEL_NAMES,
    CIFAR100_DIRNAME,
    CIFAR100_FINE_LABEL_NAMES,
    CIFAR100_FINE_TO_COARSE,
    CIFAR100_TARBALL,
    FASHION_MNIST_FILES,
    make_synthetic,
)


def write_cifar100_fixture(
    root: str | Path,
    n_train: int = 200,
    n_test: int = 100,
    seed: int = 0,
    tarball: bool = False,
    bytes_keys: bool = False,
) -> Path:
    """Write a tiny CIFAR-100 in exactly the official pickle format.

    Creates ``root/cifar-100-python/{train,test,meta}`` (or, with ``tarball=True``,
    only ``root/cifar-100-python.tar.gz``) and returns that path.  Images are 32x32
    RGB, class-dependent (learnable), stored channel-planar (N x 3072 uint8) like
    the real files.  ``bytes_keys=True`` writes bytes dict keys and names, as
    Python 2 pickles look when loaded with ``encoding='bytes'``.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    blobs = _cifar100_pickles(n_train, n_test, seed, bytes_keys)
    if tarball:
        return _write_cifar100_tarball(root / CIFAR100_TARBALL, blobs)
    d = root / CIFAR100_DIRNAME
    d.mkdir(parents=True, exist_ok=True)
    for part, blob in blobs.items():
        (d / part).write_bytes(blob)
    return d


def _cifar100_pickles(n_train: int, n_test: int, seed: int, bytes_keys: bool) -> dict[str, bytes]:
    """The pickled train, test and meta dicts of a synthetic 100-class set."""
    fine_to_coarse = np.asarray(CIFAR100_FINE_TO_COARSE, dtype=np.int64)

    def enc(s: str) -> Any:
        return s.encode("latin1") if bytes_keys else s

    syn = make_synthetic(n_train=n_train, n_test=n_test, num_classes=100, size=32, channels=3, seed=seed)
    blobs: dict[str, bytes] = {}
    for split, x, y, label in (
        ("train", syn.x_train, syn.y_train, "training batch 1 of 1"),
        ("test", syn.x_test, syn.y_test, "testing batch 1 of 1"),
    ):
        data = np.ascontiguousarray(x.transpose(0, 3, 1, 2).reshape(len(x), 3072))
        d = {
            enc("filenames"): [enc(f"fixture_{split}_{i:05d}.png") for i in range(len(x))],
            enc("batch_label"): enc(label),
            enc("fine_labels"): [int(v) for v in y],
            enc("coarse_labels"): [int(fine_to_coarse[v]) for v in y],
            enc("data"): data,
        }
        blobs[split] = pickle.dumps(d, protocol=2)
    meta = {
        enc("fine_label_names"): [enc(n) for n in CIFAR100_FINE_LABEL_NAMES],
        enc("coarse_label_names"): [enc(n) for n in CIFAR100_COARSE_LABEL_NAMES],
    }
    blobs["meta"] = pickle.dumps(meta, protocol=2)
    return blobs


def _write_cifar100_tarball(out: Path, blobs: dict[str, bytes]) -> Path:
    """``cifar-100-python.tar.gz`` laid out like the official archive."""
    with tarfile.open(out, "w:gz") as tar:
        d_info = tarfile.TarInfo(CIFAR100_DIRNAME)
        d_info.type = tarfile.DIRTYPE
        d_info.mode = 0o755
        tar.addfile(d_info)
        for part, blob in blobs.items():
            info = tarfile.TarInfo(f"{CIFAR100_DIRNAME}/{part}")
            info.size = len(blob)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(blob))
    return out


def write_fashion_mnist_fixture(root: str | Path, n_train: int = 120, n_test: int = 40, seed: int = 0) -> Path:
    """Write tiny Fashion-MNIST-format IDX .gz files (28x28 grayscale, 10 classes)
    into ``root`` and return it."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    syn = make_synthetic(n_train=n_train, n_test=n_test, num_classes=10, size=28, channels=1, seed=seed)
    write_idx(root / f"{FASHION_MNIST_FILES['x_train']}.gz", syn.x_train[..., 0])
    write_idx(root / f"{FASHION_MNIST_FILES['y_train']}.gz", syn.y_train)
    write_idx(root / f"{FASHION_MNIST_FILES['x_test']}.gz", syn.x_test[..., 0])
    write_idx(root / f"{FASHION_MNIST_FILES['y_test']}.gz", syn.y_test)
    return root


def write_idx(path: str | Path, array: np.ndarray, compress: bool | None = None) -> Path:
    """Write ``array`` (uint8) as an IDX file; gzip it if ``compress`` (default:
    when the name ends in .gz)."""
    path = Path(path)
    arr = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    payload = header + arr.tobytes()
    if compress is None:
        compress = path.suffix == ".gz"
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)
    return path


def make_folder(root: Path, per_class=(5, 5, 5), splits=("train",), side: int = 20, seed: int = 0) -> Path:
    """Classes of one dominant colour each, PNG and JPEG files of varying sizes."""
    rng = np.random.default_rng(seed)
    for split in splits:
        for c, n in enumerate(per_class):
            d = root / split / f"c{c}"
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = rng.integers(0, 60, (side + i % 3, side + 2 * (i % 2), 3))
                img[..., c] += 170
                Image.fromarray(img.astype(np.uint8)).save(d / f"{i}.{'png' if i % 2 else 'jpg'}")
    return root


def tree_hash(path: Path) -> dict[str, str]:
    """sha256 of every file under ``path`` (hidden ones too), by relative path."""
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }
