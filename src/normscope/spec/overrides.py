"""Overrides of a description by path: `--set train.lr=3e-4`, `--set layers.conv3.filters=64`.

An :class:`Override` is a path into the description and a value. Paths:

- ``train.KEY`` (``train.augment.crop``), ``draw.KEY``: a setting, checked against the schema;
- ``norm_options.NORM.OPTION``: a normalization's option (``norm_options.bn.momentum``);
- ``vars.NAME``: a variable the description declares;
- ``defaults.KEY`` or ``defaults.KIND.KEY``: layer defaults;
- ``layers.NAME.KEY``: one argument of the layer named NAME (as `summary` names it);
- ``name``, ``family``, ``input``, ``classes``, ``description``.

They are applied to the description after its `extends:` chain and its variant's section,
and recorded in the document's `set:` section, so the description a run writes
(description.yml) reproduces them and its provenance hash covers them. A description may
hold a `set:` section itself; the command line's overrides come after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import yaml

from normscope import norms
from normscope.errors import SpecError, UnknownNorm
from normscope.spec.kinds import COMMON_KEYS, KINDS
from normscope.spec.schema import AUGMENT_ARGS, DRAW_ARGS, TRAIN_ARGS, check_value, suggest
from normscope.spec.yamlio import LDict, parse_value, plain

__all__ = [
    "Override",
    "dedupe",
    "parse_override",
    "parse_overrides",
    "apply_overrides",
    "check_layer_override",
    "SET_KEY",
]

SET_KEY = "set"
_SIMPLE = ("name", "family", "input", "classes", "description")
_SECTIONS = ("train", "draw", "norm_options", "vars", "defaults", "layers") + _SIMPLE
_REFUSED = {
    "norm": "choose the normalization with --norm (or a study's --variants)",
    "reuse": "choose reuse with --reuse/--no-reuse (or a study's --variants)",
    "extends": "the chain of descriptions is fixed by the file",
    "blocks": "set the arguments of the layers a block makes (layers.NAME.KEY) or its vars instead",
    "variants": "set the keys themselves; the variant's section is applied before --set",
    SET_KEY: "give each override as its own --set",
}


@dataclass(frozen=True)
class Override:
    """One override: the path (``("train", "lr")``) and the value; ``origin`` names where it
    came from in messages (``--set``, ``--factor``, ``--norm-option``, the description's `set:`)."""

    path: tuple[str, ...]
    value: Any
    origin: str = "--set"

    @property
    def key(self) -> str:
        return ".".join(self.path)

    def text(self) -> str:
        """``KEY=VALUE`` as it would be typed (parses back to an equal Override)."""
        return f"{self.key}={value_text(self.value)}"

    def where(self) -> str:
        return f"{self.origin} {self.key}"


def value_text(value) -> str:
    """A value as typed on the command line (YAML flow style: 0.9, true, [1, 2], null)."""
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("...").strip()


def parse_override(text: str, origin: str = "--set") -> Override:
    """``KEY=VALUE`` -> Override; the key's structure checked (not yet the description's names)."""
    if not isinstance(text, str) or "=" not in text:
        raise SpecError(f"{origin} {text!r}: expected KEY=VALUE, e.g. train.lr=3e-4")
    key, _, raw = text.partition("=")
    path = tuple(part.strip() for part in key.strip().split("."))
    if not path or any(not part for part in path):
        raise SpecError(f"{origin} {text!r}: expected KEY=VALUE with a dotted KEY, e.g. norm_options.bn.momentum=0.9")
    check_path(path, origin)
    value = parse_value(raw.strip(), f"{origin} {key.strip()}")
    over = Override(path, value, origin)
    check_value_of(over)
    return over


def parse_overrides(texts: Iterable[str] | None, origin: str = "--set") -> tuple[Override, ...]:
    """Several KEY=VALUE texts; a key given twice keeps the last value (as repeated options do)."""
    return dedupe(parse_override(text, origin) for text in texts or ())


def dedupe(overrides: Iterable[Override]) -> tuple[Override, ...]:
    """One override per path: the last one given, in the place it was given."""
    found: dict = {}
    for over in overrides:
        found.pop(over.path, None)
        found[over.path] = over
    return tuple(found.values())


def check_path(path: tuple[str, ...], origin: str) -> None:
    """The path addresses something the language has (section, key and depth)."""
    root, key = path[0], ".".join(path)
    if root in _REFUSED:
        raise SpecError(f"{origin} {key}: `{root}` cannot be set this way; {_REFUSED[root]}")
    if root not in _SECTIONS and root in TRAIN_ARGS:
        raise SpecError(f"{origin} {key}: unknown key '{root}'; did you mean 'train.{key}'?")
    if root not in _SECTIONS:
        raise SpecError(
            f"{origin} {key}: unknown key '{root}'{suggest(root, _SECTIONS)} (keys: {', '.join(_SECTIONS)})"
        )
    depth = {"train": (2, 3), "draw": (2, 2), "norm_options": (3, 3), "vars": (2, 2), "defaults": (2, 3)}
    depth |= {"layers": (3, 3)} | {k: (1, 1) for k in _SIMPLE}
    low, high = depth[root]
    if not low <= len(path) <= high:
        shapes = {
            "train": "train.KEY or train.augment.KEY",
            "draw": "draw.KEY",
            "norm_options": "norm_options.NORM.OPTION (e.g. norm_options.bn.momentum)",
            "vars": "vars.NAME",
            "defaults": "defaults.KEY or defaults.KIND.KEY",
            "layers": "layers.NAME.KEY (e.g. layers.conv3.filters)",
        }
        raise SpecError(f"{origin} {key}: expected {shapes.get(root, root)}")
    if root == "train":
        _known(path[1], TRAIN_ARGS, "train", origin, key)
        if len(path) == 3:
            if path[1] != "augment":
                raise SpecError(f"{origin} {key}: only train.augment has keys of its own")
            _known(path[2], AUGMENT_ARGS, "train.augment", origin, key)
    elif root == "draw":
        _known(path[1], DRAW_ARGS, "draw", origin, key)
    elif root == "norm_options":
        if path[1] not in norms.NORMS:
            raise UnknownNorm(
                f"{origin} {key}: unknown norm '{path[1]}': is its plugin loaded? (--plugin FILE)"
                f"{suggest(path[1], norms.NORMS)} (norms: {', '.join(norms.NORMS)})"
            )
        _known(path[2], norms.NORMS[path[1]].defaults, f"norm_options.{path[1]}", origin, key)


def _known(word: str, table, section: str, origin: str, key: str) -> None:
    if word not in table:
        raise SpecError(f"{origin} {key}: unknown key '{word}' in `{section}`{suggest(word, table)}")


def check_value_of(over: Override) -> None:
    """The value against the schema where the path fixes its kind (train, draw, norm options)."""
    path = over.path
    if path[0] == "train" and len(path) == 2 and path[1] != "augment":
        _checked(over, TRAIN_ARGS[path[1]])
    elif path[0] == "train" and len(path) == 3:
        _checked(over, AUGMENT_ARGS[path[2]])
    elif path[0] == "draw":
        _checked(over, DRAW_ARGS[path[1]])
    elif path[0] == "norm_options":
        _checked(over, KINDS["norm"].args[path[2]])


def _checked(over: Override, arg):
    """check_value, its message naming the override (``--set train.lr must be > 0, got -1``)."""
    try:
        return check_value(over.where(), over.value, arg, {})
    except SpecError as exc:
        raise SpecError(exc.message.replace(f"key '{over.where()}'", over.where())) from None


def check_layer_override(over: Override, kind: str) -> Any:
    """A ``layers.NAME.KEY`` override against the layer's kind; returns the value."""
    args = KINDS[kind].args
    key = over.path[2]
    if key not in args and key not in COMMON_KEYS:
        known = list(args) + list(COMMON_KEYS)
        raise SpecError(
            f"{over.where()}: unknown key '{key}' for {kind}{suggest(key, known)} (keys: {', '.join(known)})"
        )
    if key in ("name", "from"):
        raise SpecError(f"{over.where()}: a layer's name and inputs cannot be set")
    if key in args:
        _checked(over, args[key])
    return over.value


def from_section(section, file) -> tuple[Override, ...]:
    """A description's own `set:` section ({KEY: VALUE}) as overrides."""
    if section is None:
        return ()
    if not isinstance(section, dict):
        raise SpecError("`set` must be a mapping {KEY: VALUE}, e.g. {train.lr: 3.0e-4}", file=file)
    out = []
    for key, value in section.items():
        origin = f"{file}: set" if file else "set"
        path = tuple(str(key).split("."))
        check_path(path, origin)
        over = Override(path, plain(value), origin)
        check_value_of(over)
        out.append(over)
    return tuple(out)


def apply_overrides(doc: LDict, overrides: tuple[Override, ...], file) -> tuple[LDict, dict[str, dict]]:
    """The description with the overrides applied (its own `set:` first, then ``overrides``)
    and recorded in `set:`; returns it and the layer overrides {layer name: {key: Override}},
    which the expansion applies (a layer's name is known only there)."""
    merged = {o.path: o for o in dedupe(from_section(doc.get(SET_KEY), file) + tuple(overrides))}
    if not merged:
        return doc, {}
    out = LDict(doc)
    out.key_lines, out.line = dict(doc.key_lines), doc.line
    out.key_files = dict(getattr(doc, "key_files", {}))
    layer_sets: dict[str, dict] = {}
    for over in merged.values():
        if over.path[0] == "layers":
            layer_sets.setdefault(over.path[1], {})[over.path[2]] = over
        elif over.path[0] == "vars":
            _set_var(out, over)
        else:
            _set_path(out, over.path, over.value)
    out[SET_KEY] = {o.key: o.value for o in merged.values()}
    return out, layer_sets


def _set_var(doc: LDict, over: Override) -> None:
    env = doc.get("vars")
    if not isinstance(env, dict) or over.path[1] not in env:
        names = list(env) if isinstance(env, dict) else []
        known = f" (vars: {', '.join(map(str, names))})" if names else " (it has no `vars:`)"
        raise SpecError(
            f"{over.where()}: the description declares no variable "
            f"'{over.path[1]}'{suggest(over.path[1], names)}{known}"
        )
    _set_path(doc, over.path, over.value)


def _set_path(doc: LDict, path: tuple[str, ...], value) -> None:
    """Set a nested key, copying the mappings on the way (the document read is not changed)."""
    node = doc
    for part in path[:-1]:
        child = node.get(part)
        copy = LDict(child) if isinstance(child, dict) else LDict()
        if isinstance(child, LDict):
            copy.key_lines, copy.line = dict(child.key_lines), child.line
            copy.key_files = dict(getattr(child, "key_files", {}))
        node[part] = copy
        node = copy
    node[path[-1]] = value


def unused_layer_overrides(layer_sets: dict[str, dict], names: Iterable[str]) -> None:
    """A layer override naming no layer of the model is an error (a typo would do nothing)."""
    names = list(names)
    for name, keys in layer_sets.items():
        if name not in names:
            over = next(iter(keys.values()))
            raise SpecError(f"{over.where()}: the model has no layer '{name}'{suggest(name, names)}")
