"""Where a description comes from: a file, YAML text, a mapping, or a loaded ModelSpec.

`source_path` gives each one the path `load_spec` reads: a file is itself; YAML text and a
mapping are kept here under a name of their own ("<yaml 1a2b3c4d>", "<dict 1a2b3c4d>",
from their content), so that messages name them with a line (YAML text) and a ModelSpec
loaded from one can be loaded again in another variant. Their `extends:` is resolved from
the current directory. A str with a line break, or one that starts with "{", is YAML
text; any other str is a path.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from normscope.errors import SpecError
from normscope.norms import load_plugins
from normscope.spec.document import read_document
from normscope.spec.model_spec import ModelSpec
from normscope.spec.yamlio import LDict, LList, parse_yaml

_INLINE: dict[Path, str | dict] = {}  # name given to YAML text or a mapping -> it
DEFAULT_NAME = "model"  # the name of an inline description without `name:`


def is_yaml_text(source: str) -> bool:
    return "\n" in source or source.lstrip().startswith("{")


def _digest(data) -> str:
    text = data if isinstance(data, str) else json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def source_path(source) -> Path:
    """The path `load_spec` reads for a source (a ModelSpec: the file it was loaded from)."""
    if isinstance(source, ModelSpec):
        if source.file is None:
            raise SpecError("this ModelSpec was not loaded from a description; pass the description")
        return Path(source.file)
    if isinstance(source, (os.PathLike, Path)):
        return Path(source)
    if isinstance(source, str):
        if not is_yaml_text(source):
            return Path(source)
        path = Path(f"<yaml {_digest(source)}>")
    elif isinstance(source, dict):
        path = Path(f"<dict {_digest(source)}>")
    else:
        raise SpecError(
            f"a model description is a path, YAML text, a mapping or a ModelSpec, not {type(source).__name__}"
        )
    _INLINE[path] = source
    return path


def _tree(obj, key=None):
    """A mapping given in Python as the LDict/LList tree YAML gives (no lines)."""
    if isinstance(obj, dict):
        out = LDict({k: _tree(v, k) for k, v in obj.items()})
        for k in out:
            if not isinstance(k, str):
                raise SpecError(f"keys of a description are strings, got {k!r}")
        return out
    if isinstance(obj, (list, tuple)):
        return LList(_tree(v) for v in obj)
    return obj


def read_source(path: Path) -> LDict:
    """The description under `path`, with its `extends:` chain (docs: `read_document`)."""
    load_plugins()  # installed packages' and NORMSCOPE_PLUGINS' (once): never the description's doing
    inline = _INLINE.get(Path(path))
    if inline is None:
        return read_document(path)
    parsed = parse_yaml(inline, path) if isinstance(inline, str) else _tree(inline)
    if isinstance(parsed, dict) and "name" not in parsed:
        parsed["name"] = DEFAULT_NAME
    return read_document(path, parsed=parsed)
