"""Reading the arrays of an ``.npz`` archive without trusting it.

``np.load`` inflates a member to whatever its ``.npy`` header declares, and calls a member
that holds less than that "an object array". Here every member is streamed from the zip
archive into an array of its declared shape, after three checks that cost nothing:

- the header's shape and dtype (no object arrays: they need pickle) give the data size, which
  must be the size the zip directory records for the member, less the header (a member that
  holds less, or more, is refused and says so);
- the arrays together must fit in the memory this machine has available (MemAvailable);
- a member over ``BOMB_FLOOR`` bytes that inflates more than ``MAX_RATIO`` times is a
  compression bomb (deflate packs real images two to ten times; only blank data packs
  hundreds of times).

While streaming, no more than the declared size is ever read.
"""

from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path

import numpy as np

from normscope.data.dataset import DataError

MAX_RATIO = 100
BOMB_FLOOR = 64 << 20
_CHUNK = 1 << 20


def available_memory() -> int:
    """Bytes of memory available to a new allocation (MemAvailable; physical memory elsewhere)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 1 << 40


class _Member:
    """One ``.npy`` member: its zip entry and what its header declares."""

    def __init__(self, zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, key: str):
        self.info, self.where = info, f"{path}: {key!r}"
        with zf.open(info) as f:
            try:
                version = np.lib.format.read_magic(f)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                self.shape, self.fortran, self.dtype = read(f)
            except (ValueError, EOFError) as exc:
                raise DataError(f"{self.where} is not a readable .npy array ({exc}).") from None
            self.offset = f.tell()
        if self.dtype.hasobject:
            raise DataError(f"{self.where} is an object array (it needs pickle); store plain numeric arrays.")
        if any(not isinstance(n, int) or n < 0 for n in self.shape):
            raise DataError(f"{self.where}: its header declares the shape {self.shape}.")
        self.nbytes = math.prod(self.shape) * self.dtype.itemsize

    def check_size(self) -> None:
        held = self.info.file_size - self.offset
        declared = f"its .npy header declares {_shape(self.shape)} {self.dtype} = {self.nbytes:,} bytes"
        if held < self.nbytes:
            raise DataError(f"{self.where}: {declared} but the member holds only {held:,}; it is truncated or damaged.")
        if held > self.nbytes:
            raise DataError(f"{self.where}: {declared} but the member holds {held:,}; it is damaged.")
        ratio = self.info.file_size / max(self.info.compress_size, 1)
        if self.info.file_size > BOMB_FLOOR and ratio > MAX_RATIO:
            raise DataError(
                f"{self.where}: {self.info.compress_size:,} compressed bytes inflate to {self.info.file_size:,} "
                f"({ratio:,.0f} times; images pack at most a few times): refusing a compression bomb."
            )

    def read(self, zf: zipfile.ZipFile) -> np.ndarray:
        """The array, streamed into its declared shape; never more than the declared bytes."""
        out = np.empty(self.shape, dtype=self.dtype, order="F" if self.fortran else "C")
        view = memoryview(out.reshape(-1, order="A").view(np.uint8)) if self.nbytes else memoryview(b"")
        done = 0
        with zf.open(self.info) as f:
            f.seek(self.offset)
            while done < self.nbytes:
                chunk = f.read(min(_CHUNK, self.nbytes - done))
                if not chunk:
                    raise DataError(f"{self.where}: the member ends after {done:,} of {self.nbytes:,} bytes.")
                view[done : done + len(chunk)] = chunk
                done += len(chunk)
        return out


def _shape(shape: tuple) -> str:
    return "x".join(str(n) for n in shape) if shape else "scalar"


def read_npz(path: Path, keys: tuple[str, ...], optional: tuple[str, ...], help_text: str) -> dict[str, np.ndarray]:
    """The arrays ``keys`` (each required) and ``optional`` (when present) of the archive."""
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as exc:
        raise DataError(f"{path} cannot be read ({exc.strerror}).") from None
    if magic == b"\x93NUMPY":
        raise DataError(f"{path} holds a single array, not an .npz archive of named arrays. {help_text}")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise DataError(f"{path} is not a readable .npz file ({type(exc).__name__}: {exc}). {help_text}") from None
    with zf:
        infos = {info.filename: info for info in zf.infolist()}
        files = sorted(name[:-4] for name in infos if name.endswith(".npy"))
        for key in keys:
            if key + ".npy" not in infos:
                raise DataError(f"{path} has no array named {key!r} (found: {', '.join(files) or 'none'}). {help_text}")
        wanted = [k for k in (*keys, *optional) if k + ".npy" in infos]
        try:
            members = {k: _Member(zf, infos[k + ".npy"], path, k) for k in wanted}
            for member in members.values():
                member.check_size()
            _check_memory(path, members)
            return {k: m.read(zf) for k, m in members.items()}
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, NotImplementedError) as exc:
            raise DataError(f"{path} is not a readable .npz file ({type(exc).__name__}: {exc}). {help_text}") from None


def _check_memory(path: Path, members: dict[str, _Member]) -> None:
    total, available = sum(m.nbytes for m in members.values()), available_memory()
    if total > available:
        raise DataError(
            f"{path}: the arrays declare {total:,} bytes but this machine has {available:,} bytes of memory available."
        )
