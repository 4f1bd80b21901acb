"""Errors of run directories (user errors: the CLI prints them without a traceback)."""

from __future__ import annotations

from normscope.errors import NormscopeError

__all__ = ["RunError", "RunBusy"]


class RunError(NormscopeError):
    """A run directory is missing, incomplete or not a normscope run, or its data set
    is no longer the one it was trained on."""


class RunBusy(RunError):
    """Another live process holds the run directory's lock (it is training there)."""
