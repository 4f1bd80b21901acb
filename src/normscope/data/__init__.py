"""Data sources for normscope: CIFAR-100, Fashion-MNIST, user ``.npz`` arrays and a
small learnable synthetic set.

Every loader returns a :class:`Dataset` holding uint8 images in NHWC layout and
int64 labels.  Anything that goes wrong while locating or parsing data raises
:class:`DataError`, whose message says what is missing or wrong, where, and what
to do about it.

The data-set names :func:`load_dataset` understands are listed once, in
:mod:`normscope.data.load`.
"""

from normscope.data.cifar100 import (
    CIFAR100_COARSE_LABEL_NAMES,
    CIFAR100_FINE_LABEL_NAMES,
    CIFAR100_FINE_TO_COARSE,
    load_cifar100,
)
from normscope.data.cifar100_archive import CIFAR100_DIRNAME, CIFAR100_TARBALL
from normscope.data.dataset import DataError, Dataset, default_data_dir
from normscope.data.download import download_cifar100
from normscope.data.fashion_mnist import (
    FASHION_MNIST_CLASS_NAMES,
    FASHION_MNIST_DEFAULT_DIR,
    FASHION_MNIST_FILES,
    load_fashion_mnist,
)
from normscope.data.idx import read_idx
from normscope.data.load import KNOWN_SPECS, load_dataset
from normscope.data.npz import load_npz
from normscope.data.splits import channel_stats, split_validation, subset
from normscope.data.synthetic import make_synthetic

__all__ = [
    "DataError",
    "Dataset",
    "KNOWN_SPECS",
    "CIFAR100_DIRNAME",
    "CIFAR100_TARBALL",
    "CIFAR100_FINE_LABEL_NAMES",
    "CIFAR100_COARSE_LABEL_NAMES",
    "CIFAR100_FINE_TO_COARSE",
    "FASHION_MNIST_CLASS_NAMES",
    "FASHION_MNIST_DEFAULT_DIR",
    "FASHION_MNIST_FILES",
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
    "read_idx",
]
