"""The :class:`Dataset` container every loader returns, :class:`DataError`, and the
default data directory."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from normscope.errors import NormscopeError


class DataError(NormscopeError):
    """A data set could not be found, read or validated.  The message is meant for
    the user: it says what is wrong, where, and what to do.  (A NormscopeError, so
    the CLI prints it without a traceback.)"""


class DataWarning(UserWarning):
    """Something about a data set the user should know (an image layout that had to be
    guessed); the CLI prints it as one `warning:` line."""


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
                raise DataError(f"{self.name}: x_{split} must be N x H x W x C, got shape {x.shape}.")
            if y.ndim != 1 or len(y) != len(x):
                raise DataError(f"{self.name}: y_{split} must be a vector of {len(x)} labels, got shape {y.shape}.")
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


def default_data_dir() -> Path:
    """``$NORMSCOPE_DATA`` if set, else ``~/.cache/normscope/data``."""
    env = os.environ.get("NORMSCOPE_DATA")
    if env:
        return Path(env).expanduser()
    return Path("~/.cache/normscope/data").expanduser()


def decode_names(names: Sequence[Any]) -> list[str]:
    """Class names as ``str``: bytes (Python 2 pickles, numpy ``S`` arrays) are
    decoded as latin-1."""
    return [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names]
