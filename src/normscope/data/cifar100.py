"""CIFAR-100 (https://www.cs.toronto.edu/~kriz/cifar.html) from the official
``cifar-100-python/`` directory or its ``.tar.gz``, with the 100 fine or the 20 coarse
labels."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from normscope.data.cifar100_archive import (
    CIFAR100_DIRNAME,
    CIFAR100_PARTS,
    CIFAR100_TARBALL,
    MAX_IMAGES,
    extract_cifar_tarball,
    is_cifar_dir,
    load_cifar_pickle,
    read_cifar_tarball,
)
from normscope.data.dataset import DataError, Dataset, decode_names, default_data_dir

CIFAR100_FINE_LABEL_NAMES = [
    "apple",
    "aquarium_fish",
    "baby",
    "bear",
    "beaver",
    "bed",
    "bee",
    "beetle",
    "bicycle",
    "bottle",
    "bowl",
    "boy",
    "bridge",
    "bus",
    "butterfly",
    "camel",
    "can",
    "castle",
    "caterpillar",
    "cattle",
    "chair",
    "chimpanzee",
    "clock",
    "cloud",
    "cockroach",
    "couch",
    "crab",
    "crocodile",
    "cup",
    "dinosaur",
    "dolphin",
    "elephant",
    "flatfish",
    "forest",
    "fox",
    "girl",
    "hamster",
    "house",
    "kangaroo",
    "keyboard",
    "lamp",
    "lawn_mower",
    "leopard",
    "lion",
    "lizard",
    "lobster",
    "man",
    "maple_tree",
    "motorcycle",
    "mountain",
    "mouse",
    "mushroom",
    "oak_tree",
    "orange",
    "orchid",
    "otter",
    "palm_tree",
    "pear",
    "pickup_truck",
    "pine_tree",
    "plain",
    "plate",
    "poppy",
    "porcupine",
    "possum",
    "rabbit",
    "raccoon",
    "ray",
    "road",
    "rocket",
    "rose",
    "sea",
    "seal",
    "shark",
    "shrew",
    "skunk",
    "skyscraper",
    "snail",
    "snake",
    "spider",
    "squirrel",
    "streetcar",
    "sunflower",
    "sweet_pepper",
    "table",
    "tank",
    "telephone",
    "television",
    "tiger",
    "tractor",
    "train",
    "trout",
    "tulip",
    "turtle",
    "wardrobe",
    "whale",
    "willow_tree",
    "wolf",
    "woman",
    "worm",
]

CIFAR100_COARSE_LABEL_NAMES = [
    "aquatic_mammals",
    "fish",
    "flowers",
    "food_containers",
    "fruit_and_vegetables",
    "household_electrical_devices",
    "household_furniture",
    "insects",
    "large_carnivores",
    "large_man-made_outdoor_things",
    "large_natural_outdoor_scenes",
    "large_omnivores_and_herbivores",
    "medium_mammals",
    "non-insect_invertebrates",
    "people",
    "reptiles",
    "small_mammals",
    "trees",
    "vehicles_1",
    "vehicles_2",
]

# coarse label of each fine label (index = fine label), as in the official files
CIFAR100_FINE_TO_COARSE = [
    4,
    1,
    14,
    8,
    0,
    6,
    7,
    7,
    18,
    3,
    3,
    14,
    9,
    18,
    7,
    11,
    3,
    9,
    7,
    11,
    6,
    11,
    5,
    10,
    7,
    6,
    13,
    15,
    3,
    15,
    0,
    11,
    1,
    10,
    12,
    14,
    16,
    9,
    11,
    5,
    5,
    19,
    8,
    8,
    15,
    13,
    14,
    17,
    18,
    10,
    16,
    4,
    17,
    4,
    2,
    0,
    17,
    4,
    18,
    17,
    10,
    3,
    2,
    12,
    12,
    16,
    12,
    1,
    9,
    19,
    2,
    10,
    0,
    1,
    16,
    12,
    9,
    13,
    15,
    13,
    16,
    19,
    2,
    4,
    6,
    19,
    5,
    5,
    8,
    19,
    18,
    1,
    2,
    15,
    6,
    0,
    17,
    8,
    14,
    13,
]


def load_cifar100(data_dir: str | Path | None = None, label_mode: str = "fine") -> Dataset:
    """Load CIFAR-100 from ``data_dir`` (default :func:`default_data_dir`).

    Looks for ``cifar-100-python/`` (or ``data_dir`` itself being that directory),
    else ``cifar-100-python.tar.gz``, which is extracted next to it (or, if the
    directory is read-only, read in memory).
    """
    if label_mode not in ("fine", "coarse"):
        raise DataError(f"label_mode must be 'fine' or 'coarse', got {label_mode!r}.")
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    path, parts = _read_cifar_parts(root)
    label_key = f"{label_mode}_labels"
    x_train, y_train = _cifar_split(parts["train"], f"{path}/train", label_key, MAX_IMAGES["train"])
    x_test, y_test = _cifar_split(parts["test"], f"{path}/test", label_key, MAX_IMAGES["test"])
    names_key = f"{label_mode}_label_names"
    meta = parts["meta"]
    if names_key not in meta:
        raise DataError(f"{path}/meta has no {names_key!r} entry (found keys: {', '.join(sorted(meta))}).")
    class_names = decode_names(meta[names_key])
    k = len(class_names)
    for split, y in (("train", y_train), ("test", y_test)):
        if len(y) and (y.min() < 0 or y.max() >= k):
            raise DataError(f"{path}/{split}: {label_key} outside 0..{k - 1} ({k} names in meta).")
    name = "cifar100" if label_mode == "fine" else "cifar100-coarse"
    return Dataset(name, x_train, y_train, x_test, y_test, class_names)


def _read_cifar_parts(root: Path) -> tuple[Path, dict[str, dict[str, Any]]]:
    """The train/test/meta dicts and where they came from: the directory, or the
    tarball (extracted next to itself, or read in memory when ``root`` is read-only)."""
    kind, path = _find_cifar(root)
    parts: dict[str, dict[str, Any]] = {}
    if kind == "tar":
        try:
            if not os.access(root, os.W_OK):
                raise PermissionError(f"{root} is not writable")
            path = extract_cifar_tarball(path, root)
            kind = "dir"
        except PermissionError:  # cannot extract next to it: read it in memory
            parts = read_cifar_tarball(path)
    if kind == "dir":
        for part in CIFAR100_PARTS:
            with open(path / part, "rb") as f:
                parts[part] = load_cifar_pickle(f, str(path / part))
    return path, parts


def _cifar_missing_message(data_dir: Path, detail: str = "") -> str:
    extra = f" ({detail})" if detail else ""
    return (
        f"CIFAR-100 not found in {data_dir}{extra}: expected {CIFAR100_DIRNAME}/ "
        f"(with train, test, meta) or {CIFAR100_TARBALL}. "
        "Run `normscope data download cifar100` where the internet is reachable, "
        "copy the directory or tarball there, or pass --data-dir "
        "(or set NORMSCOPE_DATA)."
    )


def _find_cifar(data_dir: Path) -> tuple[str, Path]:
    if not data_dir.exists():
        raise DataError(_cifar_missing_message(data_dir, "directory does not exist"))
    if is_cifar_dir(data_dir / CIFAR100_DIRNAME):
        return "dir", data_dir / CIFAR100_DIRNAME
    if is_cifar_dir(data_dir) and data_dir.name == CIFAR100_DIRNAME:
        return "dir", data_dir
    if (data_dir / CIFAR100_TARBALL).is_file():
        return "tar", data_dir / CIFAR100_TARBALL
    inner = data_dir / CIFAR100_DIRNAME
    if inner.is_dir():
        missing = [f for f in CIFAR100_PARTS if not (inner / f).is_file()]
        raise DataError(
            f"{inner} is incomplete: missing {', '.join(missing)}. Copy the full "
            f"{CIFAR100_DIRNAME}/ directory, or put {CIFAR100_TARBALL} in {data_dir}, "
            "or run `normscope data download cifar100` where the internet is reachable."
        )
    raise DataError(_cifar_missing_message(data_dir))


def _cifar_split(d: dict[str, Any], where: str, label_key: str, most: int) -> tuple[np.ndarray, np.ndarray]:
    for key in ("data", label_key):
        if key not in d:
            raise DataError(
                f"{where} has no {key!r} entry (found keys: {', '.join(sorted(d))}); it is not a CIFAR-100 pickle."
            )
    data = np.asarray(d["data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(
            f"{where}: 'data' must be an N x 3072 uint8 array (channel-planar 32x32x3), got {data.dtype} {data.shape}."
        )
    if len(data) > most:
        raise DataError(
            f"{where}: {len(data):,} images; CIFAR-100's has at most {most:,}. The file is not CIFAR-100's."
        )
    labels = _labels(d[label_key], where, label_key)
    if len(labels) != len(data):
        raise DataError(f"{where}: {len(data)} images but {len(labels)} {label_key}; the file is corrupt.")
    x = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return x, labels


def _labels(values: Any, where: str, label_key: str) -> np.ndarray:
    """A list of integers (or an integer array), as CIFAR stores labels; anything else refused."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu" and values.ndim == 1:
        return values.astype(np.int64)
    if not isinstance(values, list):
        raise DataError(f"{where}: {label_key!r} must be a list of integers, got {type(values).__name__}.")
    wrong = next((v for v in values if type(v) is not int or not 0 <= v < 1 << 31), None)
    if wrong is not None:
        raise DataError(
            f"{where}: {label_key!r} must hold integer labels 0..99, found {type(wrong).__name__} {str(wrong)[:40]!r}."
        )
    return np.asarray(values, dtype=np.int64)
