"""The JSON files of run and study directories: read as one object, with clear errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

from normscope.fileio import atomic_write, loads_json, write_json
from normscope.rundir.errors import RunError
from normscope.rundir.layout import advice

__all__ = ["read_object", "read_json", "recorded_metrics", "write_json", "write_text"]


def read_object(path: Path, advice: str) -> dict:
    """The JSON object in ``path``; a RunError naming the file, where it breaks and ``advice``
    (what to do) when it is not one."""
    try:
        with open(path, encoding="utf-8") as f:
            value = loads_json(f.read())
    except json.JSONDecodeError as exc:
        raise RunError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); {advice}"
        ) from None
    except UnicodeDecodeError:
        raise RunError(f"{path}: not valid JSON (not UTF-8 text); {advice}") from None
    except ValueError as exc:  # nested too deep
        raise RunError(f"{path}: not a file normscope wrote: {exc}; {advice}") from None
    if not isinstance(value, dict):
        raise RunError(f"{path}: not a JSON object; {advice}")
    return value


def read_json(path: Path) -> dict:
    """A JSON object of a run directory; RunError naming the file and what to do when it is damaged."""
    return read_object(Path(path), advice(path))


def recorded_metrics(path: Path, split: str) -> dict[str, float]:
    """The metrics results.json records for ``split``: its finite numbers only (a tampered
    entry of another type is left out, not printed)."""
    found = read_json(path).get(split)
    if not isinstance(found, dict):
        return {}
    return {
        k: float(v)
        for k, v in found.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }


def write_text(path: Path, text: str) -> None:
    atomic_write(path, text)
