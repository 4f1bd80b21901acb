"""User-facing errors. The CLI prints them without a traceback and exits with status 2."""

from __future__ import annotations

from pathlib import Path


class NormscopeError(Exception):
    """Base class for errors caused by user input."""


class SpecError(NormscopeError):
    """A problem in a model description, located by file, line and layer."""

    def __init__(self, message: str, file: str | Path | None = None, line: int | None = None, layer: str | None = None):
        super().__init__(message)
        self.message = message
        self.file = Path(file) if file else None
        self.line = line
        self.layer = layer

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = str(self.file)
            if self.line:
                where += f":{self.line}"
            where += ": "
        layer = f"layer '{self.layer}': " if self.layer else ""
        return f"{where}{layer}{self.message}"


class UnknownNorm(SpecError):
    """A description names a normalization no loaded plugin has (normscope.norms.unknown_norm)."""
