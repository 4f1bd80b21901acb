"""Loading plugins: the only way code outside normscope adds a normalization.

A description never loads code: it can name a plugin's normalization only once the plugin
is loaded, from an installed package's entry point (group `normscope.norms`), a file given
with `--plugin FILE.py`, or the files in `NORMSCOPE_PLUGINS` (separated by os.pathsep).
A plugin's normalizations are checked (`normscope.norms.build.verify_norm`) once its module
has run and join the table only if all pass; otherwise PluginError names the plugin and
what it broke, and the table is as it was.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import sys
from pathlib import Path
from typing import Callable

from normscope.norms.records import NormError
from normscope.norms.registry import _commit, _pending

ENTRY_POINTS = "normscope.norms"
ENV = "NORMSCOPE_PLUGINS"
_LOADED: dict[str, tuple[str, ...]] = {}  # plugin (file or package entry point) -> norms it added
_entry_points_done: list[bool] = []


class PluginError(NormError):
    """A plugin that cannot be loaded or breaks the normalization interface."""


def _run(origin: str, execute: Callable[[], object]) -> tuple[str, ...]:
    """Run a plugin's code, then check and add the normalizations it registered."""
    from normscope.norms.build import verify_norm

    _pending.append([])
    try:
        execute()
    except NormError as exc:
        raise PluginError(f"plugin {origin}: {exc}") from None
    except Exception as exc:  # the plugin's own code: report it, not a traceback
        raise PluginError(f"plugin {origin} failed to load: {type(exc).__name__}: {exc}") from None
    finally:
        batch = _pending.pop()
    if not batch:
        raise PluginError(f"plugin {origin} registers no normalization (call normscope.norms.register_norm)")
    for norm, _ in batch:
        try:
            verify_norm(norm)
        except NormError as exc:
            raise PluginError(f"plugin {origin}: {exc}") from None
    for norm, _ in batch:
        _commit(norm, origin)
    _LOADED[origin] = tuple(n.short for n, _ in batch)
    return _LOADED[origin]


def load_plugin(path: str | Path) -> tuple[str, ...]:
    """Run a plugin file once (again: nothing) and return the short names it added."""
    path = Path(path).expanduser().resolve()
    origin = str(path)
    if origin in _LOADED:
        return _LOADED[origin]
    if path.suffix != ".py" or not path.is_file():
        raise PluginError(f"plugin {path}: not a Python file (--plugin takes a FILE.py)")
    name = "normscope_plugin_" + re.sub(r"\W", "_", path.stem)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # the layer classes' module, for pickling and tracebacks
    try:
        return _run(origin, lambda: spec.loader.exec_module(module))
    except PluginError:
        del sys.modules[name]
        raise


def _load_entry_points() -> None:
    if _entry_points_done:
        return
    _entry_points_done.append(True)
    for ep in importlib.metadata.entry_points(group=ENTRY_POINTS):
        origin = f"{ep.dist.name if ep.dist else ep.module} ({ENTRY_POINTS} entry point '{ep.name}')"
        if origin not in _LOADED:
            _run(origin, lambda ep=ep: _call_if_function(ep.load()))


def _call_if_function(obj) -> None:
    """An entry point names a module (importing it registers) or a function to call."""
    if callable(obj) and not isinstance(obj, type):
        obj()


def env_files() -> list[str]:
    return [f for f in os.environ.get(ENV, "").split(os.pathsep) if f.strip()]


def load_plugins(files=(), entry_points: bool = True, export: bool = False) -> list[str]:
    """Load the installed packages' plugins, the files in NORMSCOPE_PLUGINS and `files`;
    return the short names added. With `export`, the files go into NORMSCOPE_PLUGINS so
    processes started from here (study workers, spawned data loaders) load them too."""
    added = []
    if entry_points:
        before = set(_LOADED)
        _load_entry_points()
        added += [s for o in _LOADED if o not in before for s in _LOADED[o]]
    paths = [str(Path(f).expanduser().resolve()) for f in (*env_files(), *files)]
    for path in dict.fromkeys(paths):
        new = path not in _LOADED
        shorts = load_plugin(path)
        added += list(shorts) if new else []
    if export and paths:
        os.environ[ENV] = os.pathsep.join(dict.fromkeys(paths))
    return added


def loaded_plugins() -> dict[str, tuple[str, ...]]:
    """Plugin -> the normalizations it added, in load order."""
    return dict(_LOADED)
