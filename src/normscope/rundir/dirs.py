"""Run and study directories without torch: safe names, the output directory check, a run's status."""

from __future__ import annotations

import os
from pathlib import Path

from normscope.fileio import safe_component
from normscope.rundir import lock
from normscope.rundir.errors import RunError
from normscope.rundir.jsonfile import read_json
from normscope.rundir.layout import CONFIG, RESULTS

__all__ = ["safe_name", "check_out_dir", "effective_status"]


def safe_name(model_name: str, data: str, limit: int = 80) -> str:
    """``<model>-<data>`` usable as a directory name (``npz:path/x.npz`` -> ``npz-x``), at
    most ``limit`` characters (fileio.safe_component)."""
    if data.startswith("npz:"):
        data = "npz-" + Path(data[4:]).stem
    return safe_component(f"{model_name}-{data}", "-", limit)


def check_out_dir(out: str | Path, option: str = "--out") -> None:
    """RunError unless ``out`` is, or can be made, a writable directory (checked before any
    work: a long training must not die at its first checkpoint)."""
    out = Path(out).expanduser()
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise RunError(f"{option} {out}: {existing} exists and is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RunError(f"{option} {out}: cannot write in {existing} (not writable)")


def effective_status(run_dir: str | Path) -> str:
    """The status of a run as it is: results.json's ('completed', 'failed', 'interrupted',
    'running'), except that a run whose process died (no live process holds its lock) is
    'interrupted', not 'running'; without results.json 'running' (being prepared) or
    'interrupted' (killed before its first epoch); 'damaged' when results.json cannot be
    read, 'unknown' for a directory that is no run."""
    path = Path(run_dir)
    try:
        status = read_json(path / RESULTS).get("status") if (path / RESULTS).is_file() else None
    except RunError:
        return "damaged"
    if status not in (None, "running"):
        return str(status)
    if lock.owner(path) is not None:
        return "running"
    return "interrupted" if status == "running" or (path / CONFIG).is_file() else "unknown"
