"""The files of the official CIFAR-100 release: ``cifar-100-python/{train,test,meta}``
pickles, read without running code, and the ``cifar-100-python.tar.gz`` archive,
extracted without trusting its member names."""

from __future__ import annotations

import importlib
import io
import os
import pickle
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from normscope.data.dataset import DataError

try:  # zlib errors surface while reading a corrupt .gz
    from zlib import error as ZlibError
except ImportError:  # pragma: no cover
    ZlibError = OSError  # type: ignore[misc,assignment]

CIFAR100_DIRNAME = "cifar-100-python"
CIFAR100_TARBALL = "cifar-100-python.tar.gz"
CIFAR100_PARTS = ("train", "test", "meta")

_ARCHIVE_ERRORS = (tarfile.TarError, EOFError, OSError, ZlibError)


# the most bytes each part can have: the official train is 155,249,918 bytes (50,000 images
# of 3,072 bytes, their labels and file names), test a fifth of it, meta 1,473; with room
# for other picklers. And the most images of a part.
MEMBER_LIMITS = {"train": 160_000_000, "test": 32_000_000, "meta": 65_536}
MAX_IMAGES = {"train": 50_000, "test": 10_000}
MAX_MEMBERS = 64  # the official archive has five
_DTYPES = frozenset({"u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8"})
_NUMPY_CORE = "numpy._core.multiarray" if hasattr(np, "_core") else "numpy.core.multiarray"


class _NdarrayClass:
    """What ``numpy.ndarray`` stands for in a CIFAR pickle: only the first argument of
    ``_reconstruct``. Called itself (``ndarray(shape)`` reserves any amount of
    uninitialised memory) it is refused."""

    def __init__(self, *args):
        raise pickle.UnpicklingError("numpy.ndarray(...) is called directly: not how CIFAR pickles build arrays")


def _reconstruct(cls, shape, typecode):
    """numpy's ``_reconstruct(ndarray, (0,), b'b')``, the empty array a pickled array's
    BUILD fills in (with exactly the bytes the pickle holds); nothing else."""
    if cls is not _NdarrayClass or tuple(shape) != (0,) or typecode not in (b"b", "b"):
        raise pickle.UnpicklingError(f"_reconstruct({cls!r}, {shape!r}, {typecode!r}) is not part of the CIFAR format")
    return _real_reconstruct(np.ndarray, (0,), b"b")


def _dtype(code, align=False, copy=True):
    """The integer dtypes of CIFAR arrays (a fresh dtype, as numpy's own pickles ask)."""
    if not isinstance(code, str) or code not in _DTYPES:
        raise pickle.UnpicklingError(f"dtype {code!r} is not part of the CIFAR format")
    return np.dtype(code, bool(align), True)


def _encode(text, encoding="latin1"):
    """``_codecs.encode(str, 'latin1')``: bytes as Python 3 writes them at protocol 2."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode is used for something else than bytes")
    return text.encode("latin1")


def _bytes(*args):
    if args:  # bytes(n) would reserve n bytes
        raise pickle.UnpicklingError("bytes(...) with arguments is not part of the CIFAR format")
    return b""


class _SafeUnpickler(pickle.Unpickler):
    """Unpickler that builds only what the CIFAR pickles hold (dicts, lists, strings, numbers,
    and integer numpy arrays filled from the bytes in the file) and refuses anything else,
    so a tampered file cannot run code or reserve memory the file does not hold."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): _NdarrayClass,
        ("numpy", "dtype"): _dtype,
        ("_codecs", "encode"): _encode,
        ("builtins", "bytes"): _bytes,
        ("__builtin__", "bytes"): _bytes,
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not part of the CIFAR format")
        return self._ALLOWED[module, name]


_real_reconstruct = importlib.import_module(_NUMPY_CORE)._reconstruct


def load_cifar_pickle(fileobj: Any, where: str) -> dict[str, Any]:
    """The dict in one CIFAR pickle, with ``str`` keys; ``where`` names it in errors."""
    try:
        obj = _SafeUnpickler(fileobj, encoding="latin1").load()
    except Exception as exc:  # corrupt, truncated or foreign file
        raise DataError(
            f"{where} is not a readable CIFAR pickle ({type(exc).__name__}: {exc}). "
            "Delete it and download CIFAR-100 again (`normscope data download cifar100`)."
        ) from exc
    if not isinstance(obj, dict):
        raise DataError(f"{where} does not hold a dict as CIFAR pickles do (found {type(obj).__name__}).")
    return {(k.decode("latin1") if isinstance(k, bytes) else str(k)): v for k, v in obj.items()}


def is_cifar_dir(d: Path) -> bool:
    """Whether ``d`` holds the three CIFAR-100 pickles."""
    return all((d / f).is_file() for f in CIFAR100_PARTS)


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


def extract_cifar_tarball(tarball: Path, data_dir: Path) -> Path:
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
        _extract_members(tarball, tmp)
        if not is_cifar_dir(tmp):
            raise DataError(
                f"{tarball} does not contain {CIFAR100_DIRNAME}/train, test and meta. "
                "Download the official archive again (`normscope data download cifar100`)."
            )
        if target.exists():  # appeared meanwhile (another process)
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except _ARCHIVE_ERRORS as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(
            f"Could not extract {tarball} ({type(exc).__name__}: {exc}). The archive is "
            "probably truncated or corrupt: delete it and download it again."
        ) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _cifar_members(tar: tarfile.TarFile, tarball: Path):
    """(part, member) for ``cifar-100-python/{train,test,meta}``, checked before a byte is
    inflated: a safe name, a regular file, each part once, a declared size within what
    CIFAR-100's member can be (MEMBER_LIMITS); at most MAX_MEMBERS members in all."""
    seen: set[str] = set()
    for count, member in enumerate(tar, 1):
        if count > MAX_MEMBERS:
            raise DataError(f"{tarball} has more than {MAX_MEMBERS} members (CIFAR-100's has 5); refusing to read on.")
        rel = _safe_member_path(member.name)
        if rel is None:
            raise DataError(
                f"{tarball} contains an unsafe path {member.name!r}; refusing to "
                "extract it. Download the official archive again."
            )
        if len(rel.parts) != 2 or rel.parts[0] != CIFAR100_DIRNAME or rel.parts[1] not in CIFAR100_PARTS:
            continue  # not part of the data set
        part = rel.parts[1]
        if not member.isfile():
            continue  # links/devices are skipped
        if part in seen:
            raise DataError(f"{tarball} holds {member.name} twice; download the official archive again.")
        if member.size > MEMBER_LIMITS[part]:
            raise DataError(
                f"{tarball}: {member.name} declares {member.size:,} bytes but CIFAR-100's {part} has at most "
                f"{MEMBER_LIMITS[part]:,}; refusing to inflate it. Download the official archive again."
            )
        seen.add(part)
        yield part, member


def _copy_bounded(src, out, limit: int, where: str) -> None:
    """Copy ``src`` to ``out`` in chunks, refusing once more than ``limit`` bytes came."""
    done = 0
    while chunk := src.read(1 << 20):
        done += len(chunk)
        if done > limit:
            raise DataError(f"{where} inflates to more than {limit:,} bytes; refusing it.")
        out.write(chunk)


def _extract_members(tarball: Path, tmp: Path) -> None:
    """Copy train, test and meta of ``cifar-100-python/`` in ``tarball`` into ``tmp``."""
    with tarfile.open(tarball, "r:*") as tar:
        for part, member in _cifar_members(tar, tarball):
            src = tar.extractfile(member)
            if src is None:
                continue
            with src, open(tmp / part, "wb") as out:
                _copy_bounded(src, out, MEMBER_LIMITS[part], f"{tarball}:{member.name}")


def read_cifar_tarball(tarball: Path) -> dict[str, dict[str, Any]]:
    """Read train/test/meta straight from the tarball (used when data_dir is not
    writable), each within its bound."""
    out: dict[str, dict[str, Any]] = {}
    try:
        with tarfile.open(tarball, "r:*") as tar:
            for part, member in _cifar_members(tar, tarball):
                f = tar.extractfile(member)
                if f is None:  # pragma: no cover - regular files always have one
                    raise DataError(f"{tarball}: {member.name} is not a regular file.")
                buffer = io.BytesIO()
                with f:
                    _copy_bounded(f, buffer, MEMBER_LIMITS[part], f"{tarball}:{member.name}")
                buffer.seek(0)
                out[part] = load_cifar_pickle(buffer, f"{tarball}:{member.name}")
    except _ARCHIVE_ERRORS as exc:
        raise DataError(
            f"Could not read {tarball} ({type(exc).__name__}: {exc}); delete it and download it again."
        ) from exc
    missing = [part for part in CIFAR100_PARTS if part not in out]
    if missing:
        raise DataError(f"{tarball} has no {CIFAR100_DIRNAME}/{missing[0]}. Download the official archive again.")
    return out
