"""One description file as a tree of LDict/LList, with its `extends:` chain merged in.

Every mapping remembers the file and line of each of its keys (`key_files`, `key_lines`),
also after a merge, so that an error in an inherited key points at the file that wrote it.
"""

from __future__ import annotations

from pathlib import Path

from normscope.errors import SpecError
from normscope.spec.schema import TOP_KEYS, suggest
from normscope.spec.yamlio import LDict, LList, file_of, load_yaml


def tag_file(obj, file: Path):
    """Record `file` on every LDict/LList of the tree."""
    if isinstance(obj, (LDict, LList)):
        obj.file = file
        for v in obj.values() if isinstance(obj, dict) else obj:
            tag_file(v, file)
    return obj


def merge(base, over):
    """Deep merge of mappings; `over` wins; lists and scalars are replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = LDict(base)
        out.key_lines = dict(getattr(base, "key_lines", {}))
        out.key_files = dict(getattr(base, "key_files", {}))
        out.line = getattr(over, "line", 0)
        out.file = file_of(over, file_of(base))
        for k, v in over.items():
            out[k] = merge(base[k], v) if k in base else v
            out.key_lines[k] = over.line_of(k) if isinstance(over, LDict) else 0
            out.key_files[k] = getattr(over, "key_files", {}).get(k, file_of(over))
        return out
    return over


def where_key(doc: LDict, key: str, default_file) -> dict:
    """`file=`, `line=` of a top-level key (for SpecError)."""
    return {"file": doc.key_files.get(key, default_file), "line": doc.line_of(key)}


def read_document(path: Path, seen: tuple = (), parsed=None) -> LDict:
    """Read a description and the chain of files it `extends`, merged into one mapping;
    `parsed`: its content already read (YAML text or a mapping given under the name `path`)."""
    path = Path(path)
    doc = _read_one(path, parsed)
    if "extends" not in doc:
        doc.setdefault("family", doc.get("name", path.stem))
        doc.key_lines.setdefault("family", doc.line)
        return doc
    base = read_document(_parent_of(doc, path, seen), seen + (path.resolve(),))
    child = LDict({k: v for k, v in doc.items() if k != "extends"})
    child.key_lines = {k: doc.line_of(k) for k in child}
    child.key_files = {k: path for k in child}
    child.line, child.file = doc.line, path
    merged = merge(base, child)
    if "name" not in doc:
        merged["name"] = path.stem
    return merged


def _read_one(path: Path, parsed=None) -> LDict:
    """One file: a mapping of known top-level keys, tagged with its file."""
    doc = load_yaml(path) if parsed is None else parsed
    if doc is None:
        raise SpecError("the description is empty", file=path)
    if not isinstance(doc, dict):
        raise SpecError(
            "a model description must be a mapping of keys (name, input, layers, ...)",
            file=path,
            line=getattr(doc, "line", None),
        )
    tag_file(doc, path)
    doc.key_files = {k: path for k in doc}
    if not any(key in TOP_KEYS or suggest(key, TOP_KEYS) for key in doc):
        # no key is, or is close to, one of a description: name none of its content (it may be any file)
        raise SpecError(
            "not a model description: none of its top-level keys is one of " + ", ".join(TOP_KEYS), file=path
        )
    for key in doc:
        if key not in TOP_KEYS:
            raise SpecError(
                f"unknown top-level key {_quoted(key)}{suggest(key, TOP_KEYS)}", file=path, line=doc.line_of(key)
            )
    return doc


def _quoted(key, limit: int = 40) -> str:
    """A key for a message: quoted, printable, at most `limit` characters."""
    text = str(key)
    text = "".join(c if c.isprintable() else "?" for c in text[:limit]) + ("..." if len(text) > limit else "")
    return f"'{text}'"


def _parent_of(doc: LDict, path: Path, seen: tuple) -> Path:
    """The file `extends:` names, resolved next to `path`; checked for existence and cycles."""
    parent_ref = doc["extends"]
    if not isinstance(parent_ref, str):
        raise SpecError("`extends` must be a file path", file=path, line=doc.line_of("extends"))
    try:
        parent = (path.parent / parent_ref).resolve()
    except (RuntimeError, OSError):  # Python < 3.13 raises RuntimeError for a symlink loop
        raise SpecError(f"`extends` {parent_ref}: symbolic link loop", file=path, line=doc.line_of("extends")) from None
    if parent in seen or parent == path.resolve():
        raise SpecError(f"`extends` cycle through {parent_ref}", file=path, line=doc.line_of("extends"))
    if not parent.exists():
        raise SpecError(
            f"`extends` file not found: {parent_ref} (looked in {parent.parent})",
            file=path,
            line=doc.line_of("extends"),
        )
    return parent
