"""Command-line options derived from the declared run settings (normscope.spec.settings).

``@setting_options()`` adds one option per setting that declares one (``--lr``,
``--epochs``, ``--compile/--no-compile``, ...) to a command, with the declared help and
range, and hands the command their values as one mapping, ``settings`` ({name: value or
None}). Adding a setting with an ``option`` adds it to `train` and `study` alike.
"""

from __future__ import annotations

import inspect
from typing import Optional

import typer

from normscope.spec.settings import Setting, flag_settings

__all__ = ["setting_options"]

_PY = {float: float, int: int, str: str, bool: bool}


def _help(s: Setting) -> str:
    text = s.help if s.low is None and s.high is None else f"{s.help}; {s.range_text()}"
    return text if "default" in s.help else f"{text} (default: the description's train.{s.name})"


def _parameter(s: Setting) -> inspect.Parameter:
    kind = _PY[s.types[0]]
    flag = f"{s.option}/--no-{s.option[2:]}" if kind is bool else s.option
    return inspect.Parameter(
        s.name,
        inspect.Parameter.KEYWORD_ONLY,
        default=typer.Option(None, flag, help=_help(s), show_default=False),
        annotation=Optional[kind],
    )


def setting_options(study: bool = False):
    """Decorate a command taking ``settings``: it gets the settings' options (a study's
    per-run ones, the seed, excluded)."""
    chosen = flag_settings(study)

    def wrap(fn):
        sig = inspect.signature(fn, eval_str=True)
        params = [p for name, p in sig.parameters.items() if name != "settings"]
        extra = [_parameter(s) for s in chosen]

        def command(*args, **kwargs):
            given = {s.name: kwargs.pop(s.name, None) for s in chosen}
            return fn(*args, settings=given, **kwargs)

        command.__name__, command.__doc__, command.__module__ = fn.__name__, fn.__doc__, fn.__module__
        command.__signature__ = sig.replace(parameters=params + extra)
        return command

    return wrap
