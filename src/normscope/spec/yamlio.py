"""YAML loading that remembers the line of every key and list item."""

from __future__ import annotations

import math
import re
import stat
from pathlib import Path

import yaml

from normscope.errors import SpecError


class LDict(dict):
    """A dict that knows its own line and the line of each key."""

    line: int = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.key_lines: dict = {}

    def line_of(self, key) -> int:
        return self.key_lines.get(key, self.line)


class LList(list):
    """A list that knows its own line and the line of each item."""

    line: int = 0

    def __init__(self, *args):
        super().__init__(*args)
        self.item_lines: list[int] = []

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if index < len(self.item_lines) else self.line


MAX_BYTES = 4 * 1024 * 1024  # a description is a few KB; refuse to read more than this
MAX_DEPTH = 64  # nesting of mappings and lists


class _Loader(yaml.SafeLoader):
    """SafeLoader without aliases (a 1 KB alias bomb expands to billions of nodes) and
    with a bounded nesting depth (Python's stack is not the limit)."""

    depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise SpecError(
                "YAML aliases (*name) are not allowed in model descriptions; use `vars:` or `blocks:`",
                line=event.start_mark.line + 1,
            )
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise SpecError(
                    f"the description nests deeper than {MAX_DEPTH} levels", line=self.peek_event().start_mark.line + 1
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LDict:
    loader.flatten_mapping(node)
    out = LDict()
    out.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in out:
            raise SpecError(f"duplicate key '{key}'", line=key_node.start_mark.line + 1)
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LList:
    out = LList(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    out.item_lines = [child.start_mark.line + 1 for child in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def read_text(path: Path) -> str:
    """A description's text: a regular file of at most MAX_BYTES of UTF-8. Errors never
    quote the file's content (it may not be a description at all)."""
    path = Path(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise SpecError("not a regular file (a model description is a YAML file)", file=path)
        if info.st_size > MAX_BYTES:
            raise SpecError(
                f"the file is {info.st_size:,} bytes; a model description is at most {MAX_BYTES:,}", file=path
            )
        with path.open("rb") as f:
            data = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise SpecError("file not found", file=path) from None
    except RuntimeError:  # Python < 3.13 raises it for a symlink loop
        raise SpecError("cannot read file: symbolic link loop", file=path) from None
    except OSError as exc:
        raise SpecError(f"cannot read file: {exc.strerror or exc}", file=path) from None
    if len(data) > MAX_BYTES:
        raise SpecError(f"the file is larger than {MAX_BYTES:,} bytes; a model description is smaller", file=path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"not UTF-8 text (byte {exc.start}); save the description as UTF-8", file=path) from None


def load_yaml(path: Path):
    """Parse a YAML file into LDict/LList; syntax errors become SpecError with the line."""
    return parse_yaml(read_text(path), path)


def parse_yaml(text: str, path: Path):
    """Parse YAML text (read from `path`, or given as text under that name) into LDict/LList."""
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    except SpecError as exc:
        exc.file = exc.file or Path(path)
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or str(exc)
        if exc.context and exc.context_mark and exc.context_mark.line + 1 != line:
            problem += f" ({exc.context} that starts at line {exc.context_mark.line + 1})"
        raise SpecError(f"YAML syntax error: {problem}", file=path, line=line) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"YAML error: {exc}", file=path) from None
    return data


def file_of(obj, default=None):
    """The file an LDict/LList was read from (`default` for anything else)."""
    return getattr(obj, "file", default)


def line_of(container, key) -> int | None:
    """The line of a key (LDict) or an item (LList); None for plain containers."""
    return container.line_of(key) if isinstance(container, (LDict, LList)) else None


def plain(obj):
    """Convert LDict/LList trees back to plain dicts/lists (for JSON/YAML output)."""
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [plain(v) for v in obj]
    return obj


MAX_VALUE_CHARS = 10_000  # a command-line value (--set KEY=VALUE) is short


def parse_value(text: str, origin: str):
    """A value given on the command line, read as YAML by the description's rules (no
    aliases or anchors, bounded nesting, no tags that build objects): ``3e-4`` a number,
    ``true`` a boolean, ``[0.9, 0.99]`` a list, ``null`` None, anything else a string.
    A SpecError naming ``origin`` when it is not such a value."""
    if len(text) > MAX_VALUE_CHARS:
        raise SpecError(f"{origin}: the value is longer than {MAX_VALUE_CHARS:,} characters")
    try:
        value = yaml.load(text, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    except SpecError as exc:
        raise SpecError(f"{origin}: {exc.message}") from None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"{origin}: not a YAML value ({problem})") from None
    value = _yaml12_floats(value)
    if any(isinstance(v, float) and not math.isfinite(v) for v in _leaves(value)):
        raise SpecError(f"{origin}: {text!r} is not a finite number")
    return plain(value)


_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _yaml12_floats(value):
    """``3e-4`` is a number (YAML 1.2 and every user), not the string YAML 1.1 makes it."""
    if isinstance(value, str) and _FLOAT.fullmatch(value):
        return float(value)
    if isinstance(value, list):
        return [_yaml12_floats(v) for v in value]
    return value


def _leaves(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    else:
        yield value
