"""The trainer's errors (user errors: the CLI prints them without a traceback)."""

from __future__ import annotations

from pathlib import Path

from normscope.errors import NormscopeError

__all__ = ["RunError", "TrainingFailed"]


class RunError(NormscopeError):
    """A run directory is missing, incomplete or not a normscope run, or its data set
    is no longer the one it was trained on."""


class TrainingFailed(NormscopeError):
    """The run stopped (NaN/inf loss). ``run_dir`` holds the last good checkpoint and a
    results.json with status ``failed``."""

    def __init__(self, message: str, run_dir: Path | None = None):
        super().__init__(message)
        self.run_dir = run_dir
