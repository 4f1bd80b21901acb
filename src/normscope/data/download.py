"""Downloading CIFAR-100 (with torchvision, which checks the archive's md5)."""

from __future__ import annotations

import contextlib
import os
import socket
import urllib.error
from pathlib import Path

from normscope.data.cifar100 import load_cifar100
from normscope.data.cifar100_archive import CIFAR100_DIRNAME, CIFAR100_TARBALL, is_cifar_dir
from normscope.data.dataset import DataError, default_data_dir


def download_cifar100(data_dir: str | Path | None = None, timeout: float = 30.0) -> Path:
    """Download CIFAR-100 with torchvision (which verifies the archive's md5) into
    ``data_dir`` and return the ``cifar-100-python`` directory.

    Raises :class:`DataError` quickly when the host cannot be reached (``timeout``
    is the socket timeout in seconds for each connection attempt).
    """
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    target = root / CIFAR100_DIRNAME
    if is_cifar_dir(target):
        return target
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"Cannot create the data directory {root}: {exc}.") from exc
    if (root / CIFAR100_TARBALL).is_file():
        # an archive is already there (copied by hand); use it instead of downloading
        load_cifar100(root)
        return target
    _torchvision_download(root, timeout)
    if not is_cifar_dir(target):
        raise DataError(f"The CIFAR-100 download finished but {target} is incomplete; delete it and retry.")
    return target


def _torchvision_download(root: Path, timeout: float) -> None:
    """Fetch and extract the archive into ``root`` with a socket ``timeout``; a
    failed download leaves no partial archive behind."""
    try:
        # imported here: torchvision is heavy and only this download needs it
        from torchvision.datasets import CIFAR100
    except ImportError as exc:  # pragma: no cover - torchvision is a dependency
        raise DataError("Downloading CIFAR-100 needs torchvision (pip install torchvision).") from exc
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
            CIFAR100(root=str(root), train=True, download=True)
    except (urllib.error.URLError, OSError, TimeoutError, socket.error) as exc:
        partial = root / CIFAR100_TARBALL
        if partial.exists() and not is_cifar_dir(root / CIFAR100_DIRNAME):
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
