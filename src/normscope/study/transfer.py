"""Moving a finished run directory between machines that share no filesystem.

A worker that trained in its own scratch directory packs the run (`pack_run`: an uncompressed
tar of its files, bytes that travel as the task's result); the driver unpacks it next to the
run's place in the study directory and swaps it in with renames (`install_run`), so a study
directory never holds half a run.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
import uuid
from pathlib import Path

from normscope.study.plan import StudyError


def pack_run(run_dir: Path) -> bytes:
    """The files of `run_dir` (not the directory itself), in name order, as tar bytes."""
    run_dir = Path(run_dir)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in sorted(run_dir.rglob("*")):
            if path.is_file() and not path.name.endswith(".tmp"):  # an interrupted atomic write
                tar.add(path, arcname=path.relative_to(run_dir).as_posix(), recursive=False)
    return buf.getvalue()


def _safe_members(tar: tarfile.TarFile, where: str) -> list[tarfile.TarInfo]:
    members = tar.getmembers()
    for m in members:
        parts = Path(m.name).parts
        if not (m.isfile() or m.isdir()) or Path(m.name).is_absolute() or ".." in parts:
            raise StudyError(f"{where}: the run archive holds {m.name!r}, which is not a file inside the run")
    return members


def install_run(archive: bytes, target: Path) -> int:
    """Write the run packed in `archive` to `target` (replacing what was there) atomically:
    unpack into a hidden directory beside it, sync, rename into place. Returns the file count."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    incoming = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".incoming", dir=target.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r") as tar:
            members = _safe_members(tar, str(target))
            for m in members:
                if m.isdir():
                    (incoming / m.name).mkdir(parents=True, exist_ok=True)
                    continue
                dest = incoming / m.name
                dest.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(m) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out)
                    out.flush()
                    os.fsync(out.fileno())
        os.chmod(incoming, 0o777 & ~_umask())  # mkdtemp's 0700 -> the usual mode of new directories
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
            os.rename(target, old)
        os.rename(incoming, target)
    except BaseException:
        shutil.rmtree(incoming, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return sum(1 for m in members if m.isfile())


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def clean_incoming(runs_dir: Path) -> None:
    """Remove what a driver killed while installing a run left beside the runs (hidden
    `.NAME.*.incoming` and `.NAME.old-*` directories)."""
    for leftover in list(Path(runs_dir).glob(".*.incoming")) + list(Path(runs_dir).glob(".*.old-*")):
        shutil.rmtree(leftover, ignore_errors=True)
