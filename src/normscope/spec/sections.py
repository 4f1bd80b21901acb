"""The top-level sections read before the layers are expanded.

`input`, `classes`, `defaults`, `norm_options` and `blocks`: each is checked here and
turned into what the expander and the ModelSpec need.
"""

from __future__ import annotations

from normscope import norms
from normscope.errors import SpecError, UnknownNorm
from normscope.spec.kinds import KINDS, other_norms_option
from normscope.spec.schema import suggest
from normscope.spec.yamlio import LDict, file_of, line_of, plain

_INPUT_KEYS = {"channels", "size", "height", "width"}


def parse_input(value, file, line) -> tuple | None:
    """`input:` as a shape tuple; None for `auto`."""
    if value == "auto" or value is None:
        return None
    if isinstance(value, dict):
        if set(value) - _INPUT_KEYS or "channels" not in value:
            raise SpecError("`input` mapping takes channels and size (or height and width)", file=file, line=line)
        h = value.get("height", value.get("size"))
        w = value.get("width", value.get("size"))
        value = [value["channels"], h, w]
    if (
        not isinstance(value, list)
        or len(value) not in (1, 3)
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        raise SpecError(
            f"`input` must be [C, H, W] (positive integers) or auto, got {plain(value)!r}", file=file, line=line
        )
    return tuple(value)


def parse_classes(value, file, line) -> int | None:
    """`classes:` as a positive integer; None for `auto`."""
    if value == "auto":
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SpecError(f"`classes` must be a positive integer or auto, got {value!r}", file=file, line=line)
    return value


def parse_defaults(doc) -> dict:
    """`defaults:` as {kind: {key: value}}; a bare key goes to every kind that takes it."""
    raw = doc.get("defaults") or {}
    file, line = doc.key_files.get("defaults"), doc.line_of("defaults")
    if not isinstance(raw, dict):
        raise SpecError("`defaults` must be a mapping", file=file, line=line)
    out: dict[str, dict] = {"*": {}}
    for key, value in raw.items():
        if key in KINDS and isinstance(value, dict):
            _check_kind_defaults(key, value, file)
            out.setdefault(key, {}).update(value)
        elif any(key in k.args for k in KINDS.values()):
            for kind in KINDS.values():
                if key in kind.args and kind.name not in ("activation",):
                    out.setdefault(kind.name, {}).setdefault(key, value)
        else:
            every = sorted({a for k in KINDS.values() for a in k.args})
            raise SpecError(
                f"unknown key '{key}' in `defaults`{suggest(key, every)}", file=file, line=line_of(raw, key)
            )
    return out


def _check_kind_defaults(kind: str, values: dict, file) -> None:
    for k in values:
        if k not in KINDS[kind].args:
            raise SpecError(
                f"unknown key '{k}' for {kind} in `defaults`{suggest(k, KINDS[kind].args)}",
                file=file,
                line=line_of(values, k),
            )


def parse_norm_options(doc) -> dict:
    """`norm_options:` checked: {norm short name: {norm option: value}}."""
    raw = doc.get("norm_options") or {}
    file, line = doc.key_files.get("norm_options"), doc.line_of("norm_options")
    if not isinstance(raw, dict):
        raise SpecError("`norm_options` must be a mapping {" + "|".join(norms.NORMS) + ": {...}}", file=file, line=line)
    for k, v in raw.items():
        if k not in norms.NORMS and isinstance(k, str) and k.isalnum() and k.islower():
            raise UnknownNorm(f"`norm_options`: {norms.unknown_norm(k)}", file=file, line=line_of(raw, k))
        if k not in norms.NORMS or not isinstance(v, dict):
            raise SpecError(
                f"`norm_options` key '{k}' must be one of {', '.join(norms.NORMS)} with a mapping",
                file=file,
                line=line_of(raw, k),
            )
        takes = KINDS[norms.NORMS[k].long].args  # this normalization's own options
        for key in v:
            if key not in takes:
                raise SpecError(
                    f"unknown {k} option '{key}'{suggest(key, takes)} ({k} takes: {', '.join(takes)})"
                    + other_norms_option(key),
                    file=file,
                    line=line_of(v, key),
                )
    return raw


def check_blocks(doc, path) -> dict:
    """`blocks:` checked: {name: {args: {name: default or null}, layers: [...]}}."""
    blocks = doc.get("blocks") or {}
    if not isinstance(blocks, dict):
        raise SpecError(
            "`blocks` must be a mapping of block name -> {args, layers}",
            file=doc.key_files.get("blocks", path),
            line=doc.line_of("blocks"),
        )
    for bname, bdef in blocks.items():
        bline = {"file": file_of(blocks, path), "line": line_of(blocks, bname)}
        if bname in KINDS or bname == "repeat":
            raise SpecError(f"block name '{bname}' hides the layer kind of the same name", **bline)
        if not isinstance(bdef, dict) or "layers" not in bdef or set(bdef) - {"args", "layers", "description"}:
            raise SpecError(f"block '{bname}' needs `layers` (and optionally `args`, `description`)", **bline)
        if bdef.get("args") is not None and not isinstance(bdef["args"], dict):
            raise SpecError(f"block '{bname}' `args` must be a mapping name -> default (null = required)", **bline)
        if isinstance(bdef.get("args"), dict):
            bdef["args"] = LDict(bdef["args"])
    return blocks
