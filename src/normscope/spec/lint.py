"""Every independent error of a description, as a linter reports them (`normscope check`).

`load_spec` stops at the first error. `lint` runs the same steps of
`normscope.spec.load` each on its own: the variant keys (`norm`, `reuse`, `variants`),
`name`, `vars`, `input`, `classes`, `train`, `draw`, `norm_options`, `defaults`,
`blocks`, and each layer of `layers` (the expansion goes on after a layer's error). An
error that makes the steps after it meaningless (an unreadable file, a broken `vars`
section) ends the search. Errors of shapes come later, from the graph, one at a time:
each layer's shape depends on those before it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, TypeVar

from normscope.errors import SpecError
from normscope.norms import variant_key
from normscope.spec.document import read_document, where_key
from normscope.spec.expand import Expander, Scope
from normscope.spec.load import (
    _check_variants,
    _choose_variant,
    _expand_layers,
    _merge_variant,
    _names,
    _settings,
    _substitute_vars,
    load_spec,
)
from normscope.spec.overrides import apply_overrides
from normscope.spec.schema import DRAW_ARGS, validate_mapping
from normscope.spec.sections import check_blocks, parse_classes, parse_defaults, parse_input, parse_norm_options

T = TypeVar("T")


class _Errors:
    def __init__(self) -> None:
        self.found: list[SpecError] = []

    def attempt(self, step: Callable[[], T]) -> T | None:
        """The step's value, or None after recording its error."""
        try:
            return step()
        except SpecError as exc:
            self.found.append(exc)
            return None


def lint(path: str | Path) -> list[SpecError]:
    """The description's errors, each with its file and line, in file order; [] when it loads."""
    path = Path(path)
    try:
        load_spec(path)
        return []
    except SpecError as first:
        errors = _Errors()
        errors.found.append(first)
    doc = errors.attempt(lambda: read_document(path))
    if doc is not None:
        _lint_document(doc, path, errors)
    return _in_file_order(errors.found)


def _lint_document(doc, path: Path, errors: _Errors) -> None:
    norm, reuse = errors.attempt(lambda: _choose_variant(doc, path, None, None)) or ("none", False)
    errors.attempt(lambda: _check_variants(doc, path))  # also when `norm` or `reuse` failed first
    doc = _merge_variant(doc, path, variant_key(norm, reuse))
    applied = errors.attempt(lambda: apply_overrides(doc, (), path))  # the description's own `set:`
    doc, sets = applied if applied is not None else (doc, {})
    errors.attempt(lambda: _names(doc, path, norm, reuse, overridden=False))
    substituted = errors.attempt(lambda: _substitute_vars(doc, path))
    if substituted is None:
        return  # every later step reads the substituted body
    env, body = substituted
    errors.attempt(lambda: parse_input(body.get("input", "auto"), **where_key(doc, "input", path)))
    errors.attempt(lambda: parse_classes(body.get("classes", "auto"), **where_key(doc, "classes", path)))
    errors.attempt(lambda: _settings(doc, body, path))
    errors.attempt(lambda: validate_mapping("draw", body.get("draw"), DRAW_ARGS, **where_key(doc, "draw", path)))
    _lint_layers(doc, body, path, env, norm, errors, sets)


def _lint_layers(doc, body, path: Path, env: dict, norm: str, errors: _Errors, sets: dict) -> None:
    options = errors.attempt(lambda: parse_norm_options(body))
    defaults = errors.attempt(lambda: parse_defaults(body))
    blocks = errors.attempt(lambda: check_blocks(doc, path))
    if options is None or defaults is None or blocks is None or "layers" not in body:
        return  # the layers cannot be read without them (or are missing: load_spec said so)
    expander = Expander(env, norm, options, defaults, blocks, sets)
    expander.errors = []
    layers_file = doc.key_files.get("layers", path)
    errors.attempt(lambda: expander.expand(body["layers"], Scope("", "input"), "input", layers_file))
    errors.found.extend(expander.errors)
    if not expander.errors:  # the checks of the whole list: it ends with a dense classifier
        errors.attempt(lambda: _expand_layers(doc, body, path, env, norm, sets))


def _in_file_order(found: list[SpecError]) -> list[SpecError]:
    """Each error once (a layer in a repeated block fails once per copy), by file and line."""
    unique: dict[tuple, SpecError] = {}
    for exc in found:
        unique.setdefault((str(exc.file or ""), exc.line, exc.message), exc)
    return sorted(unique.values(), key=lambda e: (str(e.file or ""), e.line or 0))
