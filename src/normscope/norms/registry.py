"""The one table of normalizations and the rule that adds to it (`register_norm`).

Built-in normalizations (`normscope.norms.builtin`) and plugins' go through the same door.
Tables derived from this one elsewhere (the language's kinds, the graph's, diagram
colours) subscribe with `on_register` and see every normalization, earlier or later.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Callable

from normscope.keys import Arg
from normscope.norms.records import NormError, NormSpec, declaration_problems, option_arg

NORMS: dict[str, NormSpec] = {}  # short name -> record, in registration order
BY_KIND: dict[str, NormSpec] = {}  # long name (a fixed layer's kind) -> record
OPTIONS: dict[str, Arg] = {}  # every option any normalization takes (a `norm` slot takes them all)
ORIGIN: dict[str, str] = {}  # short name -> "normscope" or the plugin that registered it
RESERVED: set[str] = {"none", "norm", "input", "reuse"}  # names a normalization may not take
_listeners: list[Callable[[NormSpec], None]] = []
_pending: list[list[tuple[NormSpec, str]]] = []  # while a plugin loads: its norms, committed after checks


class Live(Sequence):
    """A tuple recomputed from the table on each use (it grows as plugins register)."""

    def __init__(self, make: Callable[[], tuple]):
        self._make = make

    def __getitem__(self, i):
        return self._make()[i]

    def __len__(self) -> int:
        return len(self._make())

    def __iter__(self):
        return iter(self._make())

    def __contains__(self, item) -> bool:
        return item in self._make()

    def __repr__(self) -> str:
        return repr(self._make())


def norm_of_kind(kind: str) -> NormSpec | None:
    """The normalization a fixed layer kind is (`batchnorm` -> BatchNorm), else None."""
    return BY_KIND.get(kind)


def on_register(listener: Callable[[NormSpec], None]) -> None:
    """Call `listener(norm)` for every normalization registered so far and every later one."""
    _listeners.append(listener)
    for norm in NORMS.values():
        listener(norm)


def _problems(norm: NormSpec) -> list[str]:
    out = declaration_problems(norm)
    if out:
        return out
    pending = [n for batch in _pending for n, _ in batch]
    for other in (*NORMS.values(), *pending):
        if norm.short in (other.short, other.long) or norm.long in (other.short, other.long):
            return [f"its names '{norm.short}'/'{norm.long}' are taken by {other.display} ({ORIGIN.get(other.short)})"]
    taken = RESERVED & {norm.short, norm.long}
    if taken:
        return [f"the name '{taken.pop()}' is reserved (a layer kind or a keyword of the language)"]
    for name, opt in norm.options.items():
        for other in (*NORMS.values(), *pending):
            theirs = other.options.get(name)
            if theirs is not None and theirs.type is not opt.type:
                return [f"option '{name}' is {opt.type.__name__} here but {theirs.type.__name__} in {other.short}"]
    return []


def register_norm(norm: NormSpec, origin: str = "normscope", verify: bool = True) -> NormSpec:
    """Add a normalization to the table; NormError says what it breaks.

    With `verify` (the default), a tiny instance is built and run on a small input first
    (torch): its forward must return (output of the input's shape, the declared statistics
    at their declared sizes). While a plugin file loads, its normalizations are checked
    that way once the file has run, and added only if all pass.
    """
    problems = _problems(norm)
    if problems:
        raise NormError(f"{getattr(norm, 'short', norm)!r}: " + "; ".join(problems))
    if _pending:
        _pending[-1].append((norm, origin))
        return norm
    if verify:
        from normscope.norms.build import verify_norm

        verify_norm(norm)
    _commit(norm, origin)
    return norm


def _commit(norm: NormSpec, origin: str) -> None:
    NORMS[norm.short] = norm
    BY_KIND[norm.long] = norm
    ORIGIN[norm.short] = origin
    for name in norm.options:
        declared = [(n.short, n.options[name]) for n in NORMS.values() if name in n.options]
        OPTIONS[name] = option_arg(declared)
    for listener in _listeners:
        listener(norm)


def unknown_norm(name: str) -> str:
    """The message for a `norm` a description names that no loaded normalization has."""
    return f"unknown norm '{name}': is its plugin loaded? (--plugin FILE)"


# --- variant names, both directions ------------------------------------------------------


def variant_key(norm: str, reuse: bool) -> str:
    """('bn', True) -> 'bn_v2'; reuse without a normalization is just 'none'."""
    return norm + ("_v2" if reuse and norm != "none" else "")


def parse_variant(key: str) -> tuple[str, bool]:
    """'bn_v2' -> ('bn', True); 'none' -> ('none', False). ValueError for an unknown key."""
    if key not in ALL_VARIANTS:
        norm = key.removesuffix("_v2")
        if norm not in NORMS and "_" not in norm:
            raise ValueError(unknown_norm(norm) + f" (variant '{key}')")
        raise ValueError(f"unknown variant '{key}' (choose from {', '.join(ALL_VARIANTS)})")
    norm, _, v2 = key.partition("_")
    return norm, bool(v2)


def variant_name(family: str, norm: str, reuse: bool) -> str:
    key = variant_key(norm, reuse)
    return family if key == "none" else f"{family}_{key}"


NORM_CHOICES: Sequence[str] = Live(lambda: ("none", *NORMS))
ALL_VARIANTS: Sequence[str] = Live(lambda: ("none", *(v for n in NORMS.values() for v in n.variants)))
