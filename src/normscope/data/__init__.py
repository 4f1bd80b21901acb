"""Data sources for normscope: CIFAR-100, Fashion-MNIST, user ``.npz`` arrays and a
small learnable synthetic set.

Every loader returns a :class:`Dataset` holding uint8 images in NHWC layout and
int64 labels.  Anything that goes wrong while locating or parsing data raises
:class:`DataError`, whose message says what is missing or wrong, where, and what
to do about it.

Specs understood by :func:`load_dataset`::

    cifar100                 CIFAR-100, 100 fine labels (cifar-100-python/ or its .tar.gz)
    cifar100-coarse          CIFAR-100 with the 20 coarse (superclass) labels
    fashion-mnist            Fashion-MNIST IDX files (Debian: dataset-fashion-mnist)
    npz:PATH                 your own arrays x_train, y_train, x_test, y_test [, class_names]
    synthetic                generated, learnable: 32x32x3, 10 classes, 600 train / 200 test
    synthetic:N              the same with N training images (N // 3 test images)
    synthetic:k=v,...        keys train, test, classes, size, channels, noise
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import shutil
import socket
import struct
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Sequence

import numpy as np

from normscope.errors import NormscopeError

try:  # zlib errors surface while reading a corrupt .gz
    from zlib import error as zlibError
except ImportError:  # pragma: no cover
    zlibError = OSError  # type: ignore[misc,assignment]

__all__ = [
    "DataError",
    "Dataset",
    "KNOWN_SPECS",
    "CIFAR100_FINE_LABEL_NAMES",
    "CIFAR100_COARSE_LABEL_NAMES",
    "CIFAR100_FINE_TO_COARSE",
    "FASHION_MNIST_CLASS_NAMES",
    "FASHION_MNIST_DEFAULT_DIR",
    "default_data_dir",
    "load_dataset",
    "load_cifar100",
    "load_fashion_mnist",
    "load_npz",
    "make_synthetic",
    "subset",
    "split_validation",
    "channel_stats",
    "download_cifar100",
    "write_cifar100_fixture",
    "write_fashion_mnist_fixture",
    "write_idx",
    "read_idx",
]


class DataError(NormscopeError):
    """A data set could not be found, read or validated.  The message is meant for
    the user: it says what is wrong, where, and what to do.  (A NormscopeError, so
    the CLI prints it without a traceback.)"""


# --------------------------------------------------------------------------- #
# Dataset container
# --------------------------------------------------------------------------- #


@dataclass
class Dataset:
    """Images as uint8 NHWC arrays, labels as int64 vectors."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x = getattr(self, f"x_{split}")
            y = getattr(self, f"y_{split}")
            if x.ndim != 4:
                raise DataError(
                    f"{self.name}: x_{split} must be N x H x W x C, got shape {x.shape}."
                )
            if y.ndim != 1 or len(y) != len(x):
                raise DataError(
                    f"{self.name}: y_{split} must be a vector of {len(x)} labels, "
                    f"got shape {y.shape}."
                )
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise DataError(
                f"{self.name}: train images are {self.x_train.shape[1:]} but test "
                f"images are {self.x_test.shape[1:]} (H, W, C); they must match."
            )
        self.class_names = [str(c) for c in self.class_names]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W), the shape a PyTorch model sees for one image."""
        _, h, w, c = self.x_train.shape
        return (int(c), int(h), int(w))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def n_train(self) -> int:
        return int(len(self.x_train))

    @property
    def n_test(self) -> int:
        return int(len(self.x_test))

    def __repr__(self) -> str:  # arrays are too long for the default repr
        c, h, w = self.input_shape
        return (
            f"Dataset(name={self.name!r}, train={self.n_train}, test={self.n_test}, "
            f"image={h}x{w}x{c}, classes={self.num_classes})"
        )


# --------------------------------------------------------------------------- #
# Constants
# --------------------------------------------------------------------------- #

KNOWN_SPECS = (
    "cifar100",
    "cifar100-coarse",
    "fashion-mnist",
    "npz:PATH",
    "synthetic",
    "synthetic:N",
)

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

CIFAR100_DIRNAME = "cifar-100-python"
CIFAR100_TARBALL = "cifar-100-python.tar.gz"

CIFAR100_FINE_LABEL_NAMES = [
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle",
    "bicycle", "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel",
    "can", "castle", "caterpillar", "cattle", "chair", "chimpanzee", "clock",
    "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster",
    "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse",
    "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear",
    "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine",
    "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea",
    "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank",
    "telephone", "television", "tiger", "tractor", "train", "trout", "tulip",
    "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
]

CIFAR100_COARSE_LABEL_NAMES = [
    "aquatic_mammals", "fish", "flowers", "food_containers",
    "fruit_and_vegetables", "household_electrical_devices",
    "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes",
    "large_omnivores_and_herbivores", "medium_mammals",
    "non-insect_invertebrates", "people", "reptiles", "small_mammals", "trees",
    "vehicles_1", "vehicles_2",
]

# coarse label of each fine label (index = fine label), as in the official files
CIFAR100_FINE_TO_COARSE = [
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
    6, 11, 5, 10, 7, 6, 13, 15, 3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
    5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
]


def default_data_dir() -> Path:
    """``$NORMSCOPE_DATA`` if set, else ``~/.cache/normscope/data``."""
    env = os.environ.get("NORMSCOPE_DATA")
    if env:
        return Path(env).expanduser()
    return Path("~/.cache/normscope/data").expanduser()


# --------------------------------------------------------------------------- #
# Dispatcher
# --------------------------------------------------------------------------- #


def load_dataset(
    spec: str, data_dir: str | Path | None = None, seed: int = 0
) -> Dataset:
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
        path = Path(rest).expanduser()
        if not path.is_absolute() and not path.exists() and data_dir is not None:
            alt = Path(data_dir).expanduser() / path
            if alt.exists():
                path = alt
        return load_npz(path)
    if key == "synthetic":
        return make_synthetic(seed=seed, **_parse_synthetic_args(rest if sep else ""))
    raise DataError(_unknown_spec_message(spec))


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
    names = {
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
    out: dict[str, Any] = {}
    for part in rest.split(","):
        k, eq, v = part.partition("=")
        k = k.strip().lower()
        if not eq or k not in names:
            raise DataError(
                f"synthetic:{rest}: cannot parse {part!r}; known keys are "
                "train, test, classes, size, channels, noise (e.g. synthetic:train=1000,classes=5)."
            )
        field, conv = names[k]
        try:
            out[field] = conv(v.strip())
        except ValueError:
            raise DataError(f"synthetic:{rest}: {k} must be a number, got {v!r}.") from None
    return out


# --------------------------------------------------------------------------- #
# Synthetic
# --------------------------------------------------------------------------- #


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
    proto_rng = np.random.default_rng([seed, 0])
    grid = 4
    low = proto_rng.uniform(0.1, 0.9, size=(num_classes, grid, grid, channels))
    idx = (np.arange(size) * grid) // size
    protos = low[:, idx][:, :, idx].astype(np.float32)  # K, S, S, C

    def _make(n: int, stream: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([seed, stream])
        y = rng.permutation(np.arange(n) % num_classes).astype(np.int64)
        x = np.empty((n, size, size, channels), dtype=np.uint8)
        max_shift = max(1, size // 16)
        for start in range(0, n, 1024):
            yy = y[start : start + 1024]
            m = len(yy)
            img = protos[yy].copy()
            shifts = rng.integers(-max_shift, max_shift + 1, size=(m, 2))
            for i in range(m):
                img[i] = np.roll(img[i], tuple(shifts[i]), axis=(0, 1))
            contrast = rng.uniform(0.7, 1.1, size=(m, 1, 1, 1)).astype(np.float32)
            bright = rng.uniform(-0.1, 0.1, size=(m, 1, 1, 1)).astype(np.float32)
            img = (img - 0.5) * contrast + 0.5 + bright
            img += rng.normal(0.0, noise, size=img.shape).astype(np.float32)
            x[start : start + m] = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
        return x, y

    x_train, y_train = _make(int(n_train), 1)
    x_test, y_test = _make(int(n_test), 2)
    name = "synthetic"
    if (n_train, n_test, num_classes, size, channels) != (600, 200, 10, 32, 3):
        name = f"synthetic:train={n_train},test={n_test},classes={num_classes},size={size},channels={channels}"
    return Dataset(
        name=name,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        class_names=[f"class_{i}" for i in range(num_classes)],
    )


# --------------------------------------------------------------------------- #
# CIFAR-100
# --------------------------------------------------------------------------- #


class _SafeUnpickler(pickle.Unpickler):
    """Unpickler that only builds the objects found in the CIFAR pickles (dicts,
    lists, strings, numbers and numpy arrays) and refuses anything else, so a
    tampered file cannot run code."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
        ("builtins", "bytes"),
        ("builtins", "bytearray"),
        ("__builtin__", "bytes"),
        ("copy_reg", "_reconstructor"),
        ("copyreg", "_reconstructor"),
        ("__builtin__", "object"),
        ("builtins", "object"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: not part of the CIFAR format"
            )
        if module.startswith("numpy.core") and hasattr(np, "_core"):
            module = "numpy._core" + module[len("numpy.core") :]
        if module == "copy_reg":
            module = "copyreg"
        if module == "__builtin__":
            module = "builtins"
        return super().find_class(module, name)


def _load_pickle(fileobj: Any, where: str) -> dict[str, Any]:
    try:
        obj = _SafeUnpickler(fileobj, encoding="latin1").load()
    except Exception as exc:  # corrupt, truncated or foreign file
        raise DataError(
            f"{where} is not a readable CIFAR pickle ({type(exc).__name__}: {exc}). "
            "Delete it and download CIFAR-100 again (`normscope data download cifar100`)."
        ) from exc
    if not isinstance(obj, dict):
        raise DataError(
            f"{where} does not hold a dict as CIFAR pickles do (found {type(obj).__name__})."
        )
    return {(k.decode("latin1") if isinstance(k, bytes) else str(k)): v for k, v in obj.items()}


def _decode_names(names: Sequence[Any]) -> list[str]:
    return [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names]


def _cifar_missing_message(data_dir: Path, detail: str = "") -> str:
    extra = f" ({detail})" if detail else ""
    return (
        f"CIFAR-100 not found in {data_dir}{extra}: expected {CIFAR100_DIRNAME}/ "
        f"(with train, test, meta) or {CIFAR100_TARBALL}. "
        "Run `normscope data download cifar100` where the internet is reachable, "
        "copy the directory or tarball there, or pass --data-dir "
        "(or set NORMSCOPE_DATA)."
    )


def _is_cifar_dir(d: Path) -> bool:
    return all((d / f).is_file() for f in ("train", "test", "meta"))


def _safe_member_path(name: str) -> PurePosixPath | None:
    """Relative path of a tar member if it is safe to write, else None."""
    if not name or name.startswith(("/", "\\")) or "\\" in name:
        return None
    p = PurePosixPath(name)
    if p.is_absolute() or any(part == ".." for part in p.parts):
        return None
    if p.parts and ":" in p.parts[0]:  # Windows drive letters
        return None
    return p


def _extract_cifar_tarball(tarball: Path, data_dir: Path) -> Path:
    """Extract the regular files of ``cifar-100-python/`` from the tarball into
    ``data_dir`` without trusting member names (no absolute paths, no ``..``, no
    links or devices).  Extraction goes to a temporary directory that is renamed
    into place, so an interrupted run leaves no half-written data set."""
    target = data_dir / CIFAR100_DIRNAME
    try:
        tmp = Path(tempfile.mkdtemp(prefix=".cifar-100-python.partial-", dir=data_dir))
    except OSError as exc:  # read-only directory or file system
        raise PermissionError(str(exc)) from exc
    try:
        with tarfile.open(tarball, "r:*") as tar:
            for member in tar:
                rel = _safe_member_path(member.name)
                if rel is None:
                    raise DataError(
                        f"{tarball} contains an unsafe path {member.name!r}; refusing to "
                        "extract it. Download the official archive again."
                    )
                if not rel.parts or rel.parts[0] != CIFAR100_DIRNAME:
                    continue  # not part of the data set
                inner = PurePosixPath(*rel.parts[1:])
                if not member.isfile() or not inner.parts:
                    continue  # directories are implied; links/devices are skipped
                dest = tmp.joinpath(*inner.parts)
                if tmp.resolve() not in dest.resolve().parents:
                    raise DataError(f"{tarball}: member {member.name!r} escapes the target.")
                dest.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(member)
                if src is None:
                    continue
                with src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out, length=1 << 20)
        if not _is_cifar_dir(tmp):
            raise DataError(
                f"{tarball} does not contain {CIFAR100_DIRNAME}/train, test and meta. "
                "Download the official archive again (`normscope data download cifar100`)."
            )
        if target.exists():  # appeared meanwhile (another process)
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except (tarfile.TarError, EOFError, OSError, zlibError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(
            f"Could not extract {tarball} ({type(exc).__name__}: {exc}). The archive is "
            "probably truncated or corrupt: delete it and download it again."
        ) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _read_cifar_from_tarball(tarball: Path) -> dict[str, dict[str, Any]]:
    """Read train/test/meta straight from the tarball (used when data_dir is not
    writable)."""
    out: dict[str, dict[str, Any]] = {}
    try:
        with tarfile.open(tarball, "r:*") as tar:
            for part in ("train", "test", "meta"):
                try:
                    member = tar.getmember(f"{CIFAR100_DIRNAME}/{part}")
                except KeyError:
                    raise DataError(
                        f"{tarball} has no {CIFAR100_DIRNAME}/{part}. Download the "
                        "official archive again."
                    ) from None
                f = tar.extractfile(member) if member.isfile() else None
                if f is None:
                    raise DataError(f"{tarball}: {member.name} is not a regular file.")
                with f:
                    out[part] = _load_pickle(io.BytesIO(f.read()), f"{tarball}:{member.name}")
    except (tarfile.TarError, EOFError, OSError, zlibError) as exc:
        raise DataError(
            f"Could not read {tarball} ({type(exc).__name__}: {exc}); delete it and "
            "download it again."
        ) from exc
    return out


def _find_cifar(data_dir: Path) -> tuple[str, Path]:
    if not data_dir.exists():
        raise DataError(_cifar_missing_message(data_dir, "directory does not exist"))
    if _is_cifar_dir(data_dir / CIFAR100_DIRNAME):
        return "dir", data_dir / CIFAR100_DIRNAME
    if _is_cifar_dir(data_dir) and data_dir.name == CIFAR100_DIRNAME:
        return "dir", data_dir
    if (data_dir / CIFAR100_TARBALL).is_file():
        return "tar", data_dir / CIFAR100_TARBALL
    inner = data_dir / CIFAR100_DIRNAME
    if inner.is_dir():
        missing = [f for f in ("train", "test", "meta") if not (inner / f).is_file()]
        raise DataError(
            f"{inner} is incomplete: missing {', '.join(missing)}. Copy the full "
            f"{CIFAR100_DIRNAME}/ directory, or put {CIFAR100_TARBALL} in {data_dir}, "
            "or run `normscope data download cifar100` where the internet is reachable."
        )
    raise DataError(_cifar_missing_message(data_dir))


def _cifar_split(d: dict[str, Any], where: str, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    for key in ("data", label_key):
        if key not in d:
            raise DataError(
                f"{where} has no {key!r} entry (found keys: {', '.join(sorted(d))}); "
                "it is not a CIFAR-100 pickle."
            )
    data = np.asarray(d["data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(
            f"{where}: 'data' must be an N x 3072 uint8 array (channel-planar 32x32x3), "
            f"got {data.dtype} {data.shape}."
        )
    labels = np.asarray(d[label_key], dtype=np.int64).reshape(-1)
    if len(labels) != len(data):
        raise DataError(
            f"{where}: {len(data)} images but {len(labels)} {label_key}; the file is corrupt."
        )
    x = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return x, labels


def load_cifar100(data_dir: str | Path | None = None, label_mode: str = "fine") -> Dataset:
    """Load CIFAR-100 from ``data_dir`` (default :func:`default_data_dir`).

    Looks for ``cifar-100-python/`` (or ``data_dir`` itself being that directory),
    else ``cifar-100-python.tar.gz``, which is extracted next to it (or, if the
    directory is read-only, read in memory).
    """
    if label_mode not in ("fine", "coarse"):
        raise DataError(f"label_mode must be 'fine' or 'coarse', got {label_mode!r}.")
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    kind, path = _find_cifar(root)
    parts: dict[str, dict[str, Any]] = {}
    if kind == "tar":
        try:
            if not os.access(root, os.W_OK):
                raise PermissionError(f"{root} is not writable")
            path = _extract_cifar_tarball(path, root)
            kind = "dir"
        except PermissionError:  # cannot extract next to it: read it in memory
            parts = _read_cifar_from_tarball(path)
    if kind == "dir":
        for part in ("train", "test", "meta"):
            with open(path / part, "rb") as f:
                parts[part] = _load_pickle(f, str(path / part))
    label_key = f"{label_mode}_labels"
    x_train, y_train = _cifar_split(parts["train"], f"{path}/train", label_key)
    x_test, y_test = _cifar_split(parts["test"], f"{path}/test", label_key)
    names_key = f"{label_mode}_label_names"
    meta = parts["meta"]
    if names_key not in meta:
        raise DataError(
            f"{path}/meta has no {names_key!r} entry (found keys: {', '.join(sorted(meta))})."
        )
    class_names = _decode_names(meta[names_key])
    k = len(class_names)
    for split, y in (("train", y_train), ("test", y_test)):
        if len(y) and (y.min() < 0 or y.max() >= k):
            raise DataError(
                f"{path}/{split}: {label_key} outside 0..{k - 1} ({k} names in meta)."
            )
    name = "cifar100" if label_mode == "fine" else "cifar100-coarse"
    return Dataset(name, x_train, y_train, x_test, y_test, class_names)


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
    fine_to_coarse = np.asarray(CIFAR100_FINE_TO_COARSE, dtype=np.int64)

    def enc(s: str) -> Any:
        return s.encode("latin1") if bytes_keys else s

    syn = make_synthetic(
        n_train=n_train, n_test=n_test, num_classes=100, size=32, channels=3, seed=seed
    )
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

    if tarball:
        out = root / CIFAR100_TARBALL
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
    d = root / CIFAR100_DIRNAME
    d.mkdir(parents=True, exist_ok=True)
    for part, blob in blobs.items():
        (d / part).write_bytes(blob)
    return d


def download_cifar100(data_dir: str | Path | None = None, timeout: float = 30.0) -> Path:
    """Download CIFAR-100 with torchvision (which verifies the archive's md5) into
    ``data_dir`` and return the ``cifar-100-python`` directory.

    Raises :class:`DataError` quickly when the host cannot be reached (``timeout``
    is the socket timeout in seconds for each connection attempt).
    """
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    target = root / CIFAR100_DIRNAME
    if _is_cifar_dir(target):
        return target
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"Cannot create the data directory {root}: {exc}.") from exc
    if (root / CIFAR100_TARBALL).is_file():
        # an archive is already there (copied by hand); use it instead of downloading
        load_cifar100(root)
        return target
    try:
        from torchvision.datasets import CIFAR100
    except ImportError as exc:  # pragma: no cover - torchvision is a dependency
        raise DataError(
            "Downloading CIFAR-100 needs torchvision (pip install torchvision)."
        ) from exc
    import contextlib
    import urllib.error

    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
            CIFAR100(root=str(root), train=True, download=True)
    except (urllib.error.URLError, OSError, TimeoutError, socket.error) as exc:
        partial = root / CIFAR100_TARBALL
        if partial.exists() and not _is_cifar_dir(target):
            with contextlib.suppress(OSError):
                partial.unlink()
        raise DataError(
            f"Could not download CIFAR-100 into {root}: the download host is not "
            f"reachable ({type(exc).__name__}: {exc}). Run `normscope data download "
            "cifar100` on a machine with internet access and copy the "
            f"{CIFAR100_DIRNAME}/ directory or {CIFAR100_TARBALL} into {root} "
            "(or pass --data-dir)."
        ) from exc
    except RuntimeError as exc:  # torchvision: checksum mismatch / corrupt download
        raise DataError(
            f"CIFAR-100 download into {root} failed its integrity check ({exc}). "
            f"Delete {root / CIFAR100_TARBALL} and try again."
        ) from exc
    finally:
        socket.setdefaulttimeout(old_timeout)
    if not _is_cifar_dir(target):
        raise DataError(
            f"The CIFAR-100 download finished but {target} is incomplete; delete it and retry."
        )
    return target


# --------------------------------------------------------------------------- #
# Fashion-MNIST (IDX)
# --------------------------------------------------------------------------- #

_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | Path) -> np.ndarray:
    """Parse an IDX file (optionally gzip-compressed) into a numpy array,
    validating the magic number and the payload size."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlibError) as exc:
        raise DataError(
            f"Cannot read {path} ({type(exc).__name__}: {exc}); the file is probably "
            "truncated or not gzip-compressed. Reinstall the data "
            "(apt-get install --reinstall dataset-fashion-mnist) or download it again."
        ) from exc
    if len(raw) < 4:
        raise DataError(f"{path} is too short to be an IDX file ({len(raw)} bytes).")
    zero, type_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or type_code not in _IDX_DTYPES or ndim == 0:
        raise DataError(
            f"{path} is not an IDX file: bad magic number 0x{raw[:4].hex()} "
            "(expected 0x00000801 for labels or 0x00000803 for images)."
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header.")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _IDX_DTYPES[type_code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: header promises {dims} values ({expected} bytes) but the file holds "
            f"{len(raw) - header} bytes of data; it is truncated or corrupt."
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).copy()


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


def write_fashion_mnist_fixture(
    root: str | Path, n_train: int = 120, n_test: int = 40, seed: int = 0
) -> Path:
    """Write tiny Fashion-MNIST-format IDX .gz files (28x28 grayscale, 10 classes)
    into ``root`` and return it."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    syn = make_synthetic(
        n_train=n_train, n_test=n_test, num_classes=10, size=28, channels=1, seed=seed
    )
    write_idx(root / f"{FASHION_MNIST_FILES['x_train']}.gz", syn.x_train[..., 0])
    write_idx(root / f"{FASHION_MNIST_FILES['y_train']}.gz", syn.y_train)
    write_idx(root / f"{FASHION_MNIST_FILES['x_test']}.gz", syn.x_test[..., 0])
    write_idx(root / f"{FASHION_MNIST_FILES['y_test']}.gz", syn.y_test)
    return root


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


def load_fashion_mnist(data_dir: str | Path | None = None) -> Dataset:
    """Load Fashion-MNIST from its four IDX files (``.gz`` or uncompressed).

    Default locations: /usr/share/datasets/fashion-mnist (Debian package
    ``dataset-fashion-mnist``), then ``<default data dir>/fashion-mnist``.
    """
    candidates = _fashion_candidates(data_dir)
    chosen: Path | None = None
    for d in candidates:
        if all(_find_idx(d, stem) for stem in FASHION_MNIST_FILES.values()):
            chosen = d
            break
    if chosen is None:
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
    arrays = {k: read_idx(_find_idx(chosen, s)) for k, s in FASHION_MNIST_FILES.items()}  # type: ignore[arg-type]
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        xs, ys = FASHION_MNIST_FILES[f"x_{split}"], FASHION_MNIST_FILES[f"y_{split}"]
        if x.ndim != 3 or x.dtype != np.uint8:
            raise DataError(
                f"{chosen / xs}: expected N x H x W uint8 images, got {x.dtype} {x.shape}."
            )
        if y.ndim != 1 or y.dtype != np.uint8:
            raise DataError(f"{chosen / ys}: expected a uint8 label vector, got {y.dtype} {y.shape}.")
        if len(x) != len(y):
            raise DataError(
                f"{chosen}: {xs} holds {len(x)} images but {ys} holds {len(y)} labels."
            )
        if len(y) and y.max() >= len(FASHION_MNIST_CLASS_NAMES):
            raise DataError(f"{chosen / ys}: label {int(y.max())} is outside 0..9.")
    return Dataset(
        name="fashion-mnist",
        x_train=arrays["x_train"][..., None],
        y_train=arrays["y_train"].astype(np.int64),
        x_test=arrays["x_test"][..., None],
        y_test=arrays["y_test"].astype(np.int64),
        class_names=list(FASHION_MNIST_CLASS_NAMES),
    )


# --------------------------------------------------------------------------- #
# User arrays (.npz)
# --------------------------------------------------------------------------- #

_NPZ_HELP = (
    "An npz data set holds x_train, y_train, x_test, y_test (uint8 images N x H x W x C, "
    "N x C x H x W or N x H x W; integer labels 0..K-1) and optionally class_names, "
    "e.g. np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)."
)


def _to_nhwc(x: np.ndarray, path: Path, key: str) -> np.ndarray:
    if x.ndim == 3:
        return x[..., None]
    if x.ndim == 4:
        if x.shape[1] in (1, 3) and x.shape[-1] not in (1, 3):
            return np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        return x
    raise DataError(
        f"{path}: {key!r} has shape {x.shape}; expected N x H x W x C, N x C x H x W "
        f"or N x H x W images. {_NPZ_HELP}"
    )


def load_npz(path: str | Path) -> Dataset:
    """Load a user data set from an ``.npz`` file (see ``_NPZ_HELP``)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"npz data set {path} not found. {_NPZ_HELP}")
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise DataError(
            f"{path} is not a readable .npz file ({type(exc).__name__}: {exc}). {_NPZ_HELP}"
        ) from exc
    if not hasattr(npz, "files"):
        raise DataError(f"{path} holds a single array, not an .npz archive of named arrays. {_NPZ_HELP}")
    with npz:
        files = set(npz.files)
        arrays: dict[str, np.ndarray] = {}
        for key in ("x_train", "y_train", "x_test", "y_test"):
            if key not in files:
                raise DataError(
                    f"{path} has no array named {key!r} (found: {', '.join(sorted(files)) or 'none'}). "
                    f"{_NPZ_HELP}"
                )
            try:
                arrays[key] = npz[key]
            except ValueError as exc:  # object arrays need pickle
                raise DataError(
                    f"{path}: {key!r} is an object array; store plain numeric arrays. {_NPZ_HELP}"
                ) from exc
        names_arr = None
        if "class_names" in files:
            try:
                names_arr = npz["class_names"]
            except ValueError as exc:
                raise DataError(
                    f"{path}: 'class_names' is an object array; store it as a string array, "
                    "e.g. np.array(['cat', 'dog'])."
                ) from exc

    for key in ("x_train", "x_test"):
        x = arrays[key]
        if x.dtype != np.uint8:
            hint = ""
            if np.issubdtype(x.dtype, np.floating):
                hint = " If your images are floats in [0, 1], store (x * 255).round().astype(np.uint8)."
            raise DataError(f"{path}: {key!r} must be uint8 images, got {x.dtype}.{hint} {_NPZ_HELP}")
        arrays[key] = _to_nhwc(x, path, key)
    for key in ("y_train", "y_test"):
        y = arrays[key]
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
        arrays[key] = y.astype(np.int64)
        xkey = "x" + key[1:]
        if len(arrays[key]) != len(arrays[xkey]):
            raise DataError(
                f"{path}: {xkey!r} has {len(arrays[xkey])} images but {key!r} has "
                f"{len(arrays[key])} labels."
            )
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise DataError(
            f"{path}: 'x_train' images are {arrays['x_train'].shape[1:]} but 'x_test' images "
            f"are {arrays['x_test'].shape[1:]} (H, W, C after layout detection); they must match."
        )
    max_label = max(
        (int(arrays[k].max()) for k in ("y_train", "y_test") if len(arrays[k])), default=-1
    )
    if names_arr is not None:
        if names_arr.ndim != 1 or not (names_arr.dtype.kind in "US"):
            raise DataError(
                f"{path}: 'class_names' must be a 1-D string array, got {names_arr.dtype} "
                f"{names_arr.shape}."
            )
        class_names = _decode_names(names_arr.tolist())
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
    return Dataset(
        name=f"npz:{path}",
        x_train=arrays["x_train"],
        y_train=arrays["y_train"],
        x_test=arrays["x_test"],
        y_test=arrays["y_test"],
        class_names=class_names,
    )


# --------------------------------------------------------------------------- #
# Subsets, splits, statistics
# --------------------------------------------------------------------------- #


def _stratified_pick(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
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


def subset(
    ds: Dataset, n_train: int | None = None, n_test: int | None = None, seed: int = 0
) -> Dataset:
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
        idx = _stratified_pick(y, int(n), rng)
        out[split] = (x[idx], y[idx])
    return Dataset(
        name=ds.name,
        x_train=out["train"][0],
        y_train=out["train"][1],
        x_test=out["test"][0],
        y_test=out["test"][1],
        class_names=list(ds.class_names),
    )


def split_validation(
    n: int, fraction: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
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
