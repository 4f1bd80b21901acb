"""One key of the model language: its types, default, choices, check and help.

The language's tables (layer kinds, normalization options, the train and draw sections)
are made of these; `normscope.spec.schema` validates values against them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

REQUIRED = object()


@dataclass(frozen=True)
class Arg:
    types: tuple
    default: Any = REQUIRED
    choices: tuple | None = None
    check: Callable[[Any], str | None] | None = None  # returns a message when invalid
    help: str = ""


def _values(v) -> list:
    return list(v) if isinstance(v, (list, tuple)) else [v]


def positive(v) -> str | None:
    return None if all(x > 0 for x in _values(v)) else "must be positive"


def non_negative(v) -> str | None:
    return None if all(x >= 0 for x in _values(v)) else "must be >= 0"


def unit_rate(v) -> str | None:
    return None if 0 <= v < 1 else "must be in [0, 1)"


def odd_positive(v) -> str | None:
    return None if v is None or (v > 0 and v % 2) else "must be odd and positive"


def pair_check(v) -> str | None:
    if isinstance(v, (list, tuple)):
        if len(v) != 2 or not all(isinstance(x, int) and not isinstance(x, bool) for x in v):
            return "must be an integer or a list of two integers"
    return positive(v)


def pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))
