"""Package names that load on first use (PEP 562): importing a package loads none of its
modules (and so no torch) until one of its names is read."""

from __future__ import annotations

import importlib
import sys
from typing import Callable, Mapping

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, tuple[str, str | None]]) -> tuple[Callable, Callable]:
    """A package's ``__getattr__`` and ``__dir__`` for ``exports`` {name: (module, attribute)}
    (attribute None: the module itself); a name read once is kept in the package."""

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, attribute = exports[name]
        value = importlib.import_module(module)
        value = value if attribute is None else getattr(value, attribute)
        vars(sys.modules[package])[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
