"""One writer per run directory: a lock file (``.lock``) naming its owner (pid, host, start,
command), held with ``flock`` while the owner lives.

The kernel drops an ``flock`` when its process ends, however it ends (SIGKILL, a crash), so a
lock file whose owner died is stale and the next writer takes it over. The owner removes the
file when it is done. A second writer refuses with a message naming the first.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import platform
import sys
import time
from datetime import datetime
from pathlib import Path

from normscope.fileio import loads_json
from normscope.rundir.errors import RunBusy

__all__ = ["LOCK", "RunLock", "acquire", "owner", "busy_message"]

LOCK = ".lock"
# an acquire that finds the lock held tries again for this long (a prober's brief shared
# lock, see `owner`) before it refuses
WAIT_SECONDS = 1.0

_UNSUPPORTED = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)


class RunLock:
    """A held lock of a run directory; :meth:`release` (or leaving the ``with`` block) ends it."""

    def __init__(self, path: Path, fd: int | None):
        self.path, self._fd = path, fd

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # still holding it: nobody can take it in between
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def acquire(run_dir: str | Path) -> RunLock:
    """Take the lock of ``run_dir`` (a stale one from a dead process included), or raise
    RunBusy naming the live process that holds it."""
    path = Path(run_dir) / LOCK
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() < deadline:
                time.sleep(0.1)
                continue
            raise RunBusy(busy_message(run_dir, _read(path))) from None
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED:
                os.close(fd)
                raise
            _unlocked_fallback(fd, path, run_dir)  # a file system without flock: pid and host
        if _same_file(fd, path):  # not a file its previous owner removed in between
            _write_owner(fd)
            return RunLock(path, fd)
        os.close(fd)


def owner(run_dir: str | Path) -> dict | None:
    """The live process that holds ``run_dir``'s lock ({pid, host, started, command}), or None
    when none does (no lock file, or a stale one)."""
    path = Path(run_dir) / LOCK
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read(path) or {}
    except OSError as exc:
        if exc.errno not in _UNSUPPORTED:
            raise
        info = _read(path)
        return info if info and _alive(info) else None
    finally:
        os.close(fd)
    return None


def busy_message(run_dir, info: dict | None) -> str:
    info = info or {}
    who = f"process {info.get('pid', '?')} on {info.get('host', '?')}"
    since = f" (since {info['started']}: {info.get('command', '')})" if info.get("started") else ""
    return f"{run_dir} is in use by {who}{since}; wait for it to finish, or stop that process first"


def _write_owner(fd: int) -> None:
    info = {
        "pid": os.getpid(),
        "host": platform.node(),
        "started": datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(info) + "\n").encode("utf-8"), 0)
    os.fsync(fd)


def _read(path: Path) -> dict | None:
    try:
        info = loads_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _alive(info: dict) -> bool:
    """Whether the owner named in ``info`` lives: a process of another host counts as alive."""
    pid = info.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    if info.get("host") != platform.node():
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _unlocked_fallback(fd: int, path: Path, run_dir) -> None:
    info = _read(path)
    if info and info.get("pid") != os.getpid() and _alive(info):
        os.close(fd)
        raise RunBusy(busy_message(run_dir, info))
