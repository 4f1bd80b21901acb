"""Atomic file writes: a temporary file in the same directory, then os.replace, so a crash
or a kill never leaves a half-written file where a good one was."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable


def _file_mode() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path, data: bytes | str | Callable[[BinaryIO], None]) -> Path:
    """Write bytes, text, or whatever `data(file)` writes, to `path` atomically."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, _file_mode())  # mkstemp's 0600 -> the usual mode of new files
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def jsonable(obj):
    """Plain JSON types: numpy/torch scalars and arrays to numbers and lists, NaN to null."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:  # numpy / torch scalars
        obj = obj.item()
    if hasattr(obj, "tolist"):
        return jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else (1e308 if obj > 0 else -1e308)
    return obj


MAX_JSON_DEPTH = 64  # far deeper than any file normscope writes; json.loads recurses per level
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def json_depth(text: str) -> int:
    """How deep the arrays and objects of a JSON text nest (brackets inside strings not counted)."""
    depth = deepest = 0
    for match in _JSON_BRACKET.finditer(_JSON_STRING.sub("", text)):
        depth += 1 if match.group() in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def loads_json(text: str, limit: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` of a text that nests at most ``limit`` levels; ValueError otherwise
    (json.loads itself would recurse until a RecursionError)."""
    if json_depth(text) > limit:
        raise ValueError(f"it nests deeper than {limit} levels")
    try:
        return json.loads(text)
    except RecursionError:  # pragma: no cover - the scan above comes first
        raise ValueError(f"it nests deeper than {limit} levels") from None


def write_json(path, obj: Any) -> Path:
    return atomic_write(path, json.dumps(jsonable(obj), indent=2) + "\n")


# control characters (ESC starts terminal commands, CR overwrites a line) and the invisible
# direction marks that reorder what a terminal shows (U+202A-U+202E, U+2066-U+2069, ...)
_INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def visible(text) -> str:
    """``text`` with its control and bidirectional-override characters written out as
    Python escapes (ESC -> \\x1b, U+202E -> \\u202e); newlines and tabs kept."""
    return _INVISIBLE.sub(lambda m: ascii(m.group())[1:-1], str(text))


def safe_component(text: str, sep: str = "_", limit: int = 80) -> str:
    """`text` as one safe, bounded file-name component: letters, digits, '_', '.', '-'
    only (anything else becomes `sep`), no leading dot, at most `limit` characters; a
    shortened name keeps a hash of the whole so that different names stay different."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", sep, str(text)).strip(sep + ".") or "model"
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(str(text).encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return name[: limit - 11].rstrip(sep + ".") + "-" + digest
