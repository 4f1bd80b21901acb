"""The files of the official CIFAR-100 release: ``cifar-100-python/{train,test,meta}``
pickles, read without running code, and the ``cifar-100-python.tar.gz`` archive,
extracted without trusting its member names."""

from __future__ import annotations

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
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not part of the CIFAR format")
        if module.startswith("numpy.core") and hasattr(np, "_core"):
            module = "numpy._core" + module[len("numpy.core") :]
        if module == "copy_reg":
            module = "copyreg"
        if module == "__builtin__":
            module = "builtins"
        return super().find_class(module, name)


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


def _extract_members(tarball: Path, tmp: Path) -> None:
    """Copy the regular files under ``cifar-100-python/`` in ``tarball`` into ``tmp``."""
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


def read_cifar_tarball(tarball: Path) -> dict[str, dict[str, Any]]:
    """Read train/test/meta straight from the tarball (used when data_dir is not
    writable)."""
    out: dict[str, dict[str, Any]] = {}
    try:
        with tarfile.open(tarball, "r:*") as tar:
            for part in CIFAR100_PARTS:
                try:
                    member = tar.getmember(f"{CIFAR100_DIRNAME}/{part}")
                except KeyError:
                    raise DataError(
                        f"{tarball} has no {CIFAR100_DIRNAME}/{part}. Download the official archive again."
                    ) from None
                f = tar.extractfile(member) if member.isfile() else None
                if f is None:
                    raise DataError(f"{tarball}: {member.name} is not a regular file.")
                with f:
                    out[part] = load_cifar_pickle(io.BytesIO(f.read()), f"{tarball}:{member.name}")
    except _ARCHIVE_ERRORS as exc:
        raise DataError(
            f"Could not read {tarball} ({type(exc).__name__}: {exc}); delete it and download it again."
        ) from exc
    return out
