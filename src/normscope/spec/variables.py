"""`${name}` substitution in a description tree (top-level `vars:` and block arguments)."""

from __future__ import annotations

import re

from normscope.errors import SpecError
from normscope.spec.schema import suggest
from normscope.spec.yamlio import LDict, LList, file_of, line_of

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def substitute(obj, env: dict, file, line=None):
    """Replace ${name}: a whole-string reference keeps the value's type."""
    if isinstance(obj, dict):
        out = LDict()
        out.line, out.file = getattr(obj, "line", line), file_of(obj, file)
        out.key_lines = dict(getattr(obj, "key_lines", {}))
        for k, v in obj.items():
            out[k] = substitute(v, env, out.file, line_of(obj, k))
        return out
    if isinstance(obj, list):
        out = LList()
        out.line, out.file = getattr(obj, "line", line), file_of(obj, file)
        out.item_lines = list(getattr(obj, "item_lines", []))
        out.extend(substitute(v, env, out.file, line_of(obj, i)) for i, v in enumerate(obj))
        return out
    if isinstance(obj, str) and "${" in obj:
        whole = _VAR.fullmatch(obj)
        if whole:
            return _lookup(whole.group(1), env, file, line)
        return _VAR.sub(lambda m: str(_lookup(m.group(1), env, file, line)), obj)
    return obj


def _lookup(name: str, env: dict, file, line):
    if name not in env:
        raise SpecError(
            f"unknown variable ${{{name}}}{suggest(name, env)}"
            + ("" if env else " (define it under `vars:` or as a block argument)"),
            file=file,
            line=line,
        )
    return env[name]
