"""``load_dataset``: one data set spec string -> a :class:`Dataset`.

Specs::

    cifar100                 CIFAR-100, 100 fine labels (cifar-100-python/ or its .tar.gz)
    cifar100-coarse          CIFAR-100 with the 20 coarse (superclass) labels
    fashion-mnist            Fashion-MNIST IDX files (Debian: dataset-fashion-mnist)
    npz:PATH                 your own arrays x_train, y_train, x_test, y_test [, class_names]
    npz:PATH,layout=nchw     the same, its 4-D images N x C x H x W (layout=nhwc: N x H x W x C)
    folder:PATH              an image folder: train/CLASS/*.jpg|png [val/, test/]; streamed while
                             training (normscope.data.stream), never loaded whole
    synthetic                generated, learnable: 32x32x3, 10 classes, 600 train / 200 test
    synthetic:N              the same with N training images (N // 3 test images)
    synthetic:k=v,...        keys train, test, classes, size, channels, noise
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from normscope.data.cifar100 import load_cifar100
from normscope.data.dataset import DataError, Dataset
from normscope.data.fashion_mnist import load_fashion_mnist
from normscope.data.npz import load_npz
from normscope.data.synthetic import make_synthetic

KNOWN_SPECS = (
    "cifar100",
    "cifar100-coarse",
    "fashion-mnist",
    "npz:PATH",
    "folder:PATH",
    "synthetic",
    "synthetic:N",
)

# synthetic:k=v keys -> (make_synthetic argument, type)
_SYNTHETIC_KEYS: dict[str, tuple[str, type]] = {
    "train": ("n_train", int),
    "n_train": ("n_train", int),
    "test": ("n_test", int),
    "n_test": ("n_test", int),
    "classes": ("num_classes", int),
    "num_classes": ("num_classes", int),
    "size": ("size", int),
    "channels": ("channels", int),
    "noise": ("noise", float),
}


def load_dataset(spec: str, data_dir: str | Path | None = None, seed: int = 0) -> Dataset:
    """Load the data set named by ``spec`` (see the module docstring).

    ``data_dir`` overrides where files are looked for; ``seed`` only matters for
    the synthetic set.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise DataError(_unknown_spec_message(spec))
    spec = spec.strip()
    head, sep, rest = spec.partition(":")
    key = head.lower().replace("_", "-")
    if key in ("cifar100", "cifar-100") and not sep:
        return load_cifar100(data_dir, label_mode="fine")
    if key in ("cifar100-coarse", "cifar-100-coarse", "cifar20") and not sep:
        return load_cifar100(data_dir, label_mode="coarse")
    if key in ("fashion-mnist", "fashionmnist", "fmnist") and not sep:
        return load_fashion_mnist(data_dir)
    if key == "npz" and sep:
        rest, layout = _npz_layout(rest)
        return load_npz(_npz_path(rest, data_dir), layout)
    if key == "folder" and sep:
        raise DataError(
            f"{spec}: an image folder is streamed, not loaded whole; train, eval and features read it "
            "(normscope.data.batches.prepare_data)"
        )
    if key == "synthetic":
        return make_synthetic(seed=seed, **_parse_synthetic_args(rest if sep else ""))
    raise DataError(_unknown_spec_message(spec))


def check_data(spec: str, data_dir: str | Path | None = None) -> None:
    """Fail now where ``spec`` names a data set that cannot be read (load_dataset's messages); an
    image folder is scanned (its classes and file lists), not decoded."""
    if isinstance(spec, str) and spec.strip().startswith("folder:"):
        from normscope.data.folder import scan_folder  # torch and torchvision: only for folders

        scan_folder(spec.strip()[len("folder:") :])
        return
    load_dataset(spec, data_dir=data_dir)


def _npz_path(rest: str, data_dir: str | Path | None) -> Path:
    """``rest`` as given, or relative to ``data_dir`` when only that exists."""
    path = Path(rest).expanduser()
    if not path.is_absolute() and not path.exists() and data_dir is not None:
        alt = Path(data_dir).expanduser() / path
        if alt.exists():
            path = alt
    return path


def _npz_layout(rest: str) -> tuple[str, str | None]:
    """``PATH,layout=X`` -> (PATH, X), the key=value convention of ``synthetic:``; a path
    that itself ends so is taken whole when it exists."""
    head, sep, tail = rest.rpartition(",")
    key, eq, value = tail.partition("=")
    if not sep or key.strip().lower() != "layout" or not eq or Path(rest).expanduser().exists():
        return rest, None
    return head, value.strip().lower()


def _unknown_spec_message(spec: Any) -> str:
    return (
        f"Unknown data set {spec!r}. Known data sets: {', '.join(KNOWN_SPECS)} "
        "(npz:PATH is an .npz file with x_train, y_train, x_test, y_test)."
    )


def _parse_synthetic_args(rest: str) -> dict[str, Any]:
    rest = rest.strip()
    if not rest:
        return {}
    if "=" not in rest:
        try:
            n = int(rest)
        except ValueError:
            raise DataError(
                f"synthetic:{rest}: expected synthetic:N with N a positive integer "
                "(training images), or synthetic:train=N,test=M,classes=K,size=S,channels=C."
            ) from None
        if n <= 0:
            raise DataError(f"synthetic:{rest}: N must be a positive integer.")
        return {"n_train": n, "n_test": max(1, n // 3)}
    out: dict[str, Any] = {}
    for part in rest.split(","):
        k, eq, v = part.partition("=")
        k = k.strip().lower()
        if not eq or k not in _SYNTHETIC_KEYS:
            raise DataError(
                f"synthetic:{rest}: cannot parse {part!r}; known keys are "
                "train, test, classes, size, channels, noise (e.g. synthetic:train=1000,classes=5)."
            )
        field, conv = _SYNTHETIC_KEYS[k]
        try:
            out[field] = conv(v.strip())
        except ValueError:
            raise DataError(f"synthetic:{rest}: {k} must be a number, got {v!r}.") from None
    return out
