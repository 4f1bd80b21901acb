"""Reading IDX files (the MNIST family's format), optionally gzip-compressed."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from zlib import error as ZlibError  # zlib errors surface while reading a corrupt .gz

import numpy as np

from normscope.data.dataset import DataError

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
    except (OSError, EOFError, ZlibError) as exc:
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
