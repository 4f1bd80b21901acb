"""YAML model description -> validated, expanded ModelSpec.

Steps: read the file and its `extends:` chain, choose the variant (norm, reuse) and
merge its `variants:` section, substitute `${vars}`, read the top-level sections,
expand blocks / repeat / branches into a flat list of LayerSpec, check the classifier,
validate `train:` and `draw:`.
"""

from __future__ import annotations

from pathlib import Path

from normscope.errors import SpecError, UnknownNorm
from normscope.norms import ALL_VARIANTS, NORM_CHOICES, unknown_norm, variant_key, variant_name
from normscope.spec.document import merge, where_key
from normscope.spec.expand import Expander, Scope
from normscope.spec.model_spec import LayerSpec, ModelSpec
from normscope.spec.overrides import Override, apply_overrides, unused_layer_overrides
from normscope.spec.schema import AUGMENT_ARGS, DRAW_ARGS, TRAIN_ARGS, suggest, validate_mapping
from normscope.spec.sections import check_blocks, parse_classes, parse_defaults, parse_input, parse_norm_options
from normscope.spec.source import read_source, source_path
from normscope.spec.variables import substitute
from normscope.spec.variant import Variant, norm_option_overrides
from normscope.spec.yamlio import LDict, file_of, line_of, plain

_NOT_IN_VARIANTS = {"extends", "layers", "variants", "norm", "reuse", "set"}
_LOGIT_ACTIVATIONS = (None, "softmax", "linear", "none")


def load_spec(
    source,
    norm: str | None = None,
    reuse: bool | None = None,
    input_shape: tuple | None = None,
    classes: int | None = None,
    norm_options: dict | None = None,
    overrides: tuple[Override, ...] = (),
) -> ModelSpec:
    """Load and validate a model description: a path, a :class:`Variant` (its norm, reuse and
    overrides), or a ModelSpec (returned as it is, or re-resolved with the arguments changed).
    `norm_options` ({norm: {option: value}}, e.g. {"bn": {"reuse_stats": "image"}}) and
    `overrides` (``--set``) are applied over the description's `norm_options:` and the rest."""
    if isinstance(source, Variant):
        norm = source.norm if norm is None else norm
        reuse = source.reuse if reuse is None else reuse
        overrides = source.overrides + tuple(overrides)
        source = source.source
    overrides = norm_option_overrides(norm_options) + tuple(overrides)
    if isinstance(source, ModelSpec):
        if norm is None and reuse is None and input_shape is None and classes is None and not overrides:
            return source
        overrides = tuple(source.overrides) + overrides
        source, norm, reuse, input_shape, classes = _reresolve(source, norm, reuse, input_shape, classes)
    path = source_path(source)  # a file, or YAML text / a mapping under a name of its own
    doc = read_source(path)
    chosen_norm, chosen_reuse = _choose_variant(doc, path, norm, reuse)
    doc = _merge_variant(doc, path, variant_key(chosen_norm, chosen_reuse))
    doc, layer_sets = apply_overrides(doc, tuple(overrides), path)
    family, name = _names(doc, path, chosen_norm, chosen_reuse, overridden=norm is not None or reuse is not None)
    env, body = _substitute_vars(doc, path)
    shape = input_shape or parse_input(body.get("input", "auto"), **where_key(doc, "input", path))
    n_classes = parse_classes(
        classes if classes is not None else body.get("classes", "auto"), **where_key(doc, "classes", path)
    )
    layers = _expand_layers(doc, body, path, env, chosen_norm, layer_sets)
    warnings = _classifier_warnings(layers)
    train, draw = _settings(doc, body, path)
    warnings += _slot_warnings(layers, chosen_norm, chosen_reuse, norm_given=norm is not None)
    document = plain({k: v for k, v in doc.items()})
    document.update({"name": name, "norm": chosen_norm, "reuse": chosen_reuse})
    return ModelSpec(
        name=name,
        family=family,
        file=path,
        input_shape=shape,
        classes=n_classes,
        norm=chosen_norm,
        reuse=chosen_reuse,
        layers=layers,
        train=train,
        draw=draw,
        document=document,
        warnings=warnings,
        overrides=tuple(overrides),
    )


def _reresolve(spec: ModelSpec, norm, reuse, input_shape, classes) -> tuple:
    """The file and the arguments to load a ModelSpec again with some of them changed."""
    if spec.file is None:
        raise SpecError("cannot re-resolve a spec that was not loaded from a file")
    return (
        spec.file,
        spec.norm if norm is None else norm,
        spec.reuse if reuse is None else reuse,
        input_shape or spec.input_shape,
        classes or spec.classes,
    )


def _choose_variant(doc: LDict, path: Path, norm, reuse) -> tuple[str, bool]:
    """The norm and reuse to build: the arguments, else the description's; `variants:` checked."""
    chosen_norm = norm if norm is not None else doc.get("norm", "none")
    if chosen_norm not in NORM_CHOICES:
        origin = "--norm" if norm is not None else "`norm`"
        raise UnknownNorm(
            f"{origin}: {unknown_norm(chosen_norm)}{suggest(chosen_norm, NORM_CHOICES)}",
            **({} if norm is not None else where_key(doc, "norm", path)),
        )
    chosen_reuse = reuse if reuse is not None else doc.get("reuse", False)
    if not isinstance(chosen_reuse, bool):
        raise SpecError("`reuse` must be true or false", **where_key(doc, "reuse", path))
    _check_variants(doc, path)
    return chosen_norm, chosen_reuse


def _check_variants(doc: LDict, path: Path) -> None:
    variants = doc.get("variants") or {}
    if not isinstance(variants, dict):
        raise SpecError("`variants` must be a mapping", **where_key(doc, "variants", path))
    where = {"file": doc.key_files.get("variants")}
    for key, over in variants.items():
        if key not in ALL_VARIANTS:
            unknown = key.removesuffix("_v2")
            raise (UnknownNorm if unknown not in NORM_CHOICES and "_" not in unknown else SpecError)(
                f"variant '{key}': {unknown_norm(unknown)}"
                if unknown not in NORM_CHOICES and "_" not in unknown
                else f"unknown variant '{key}'{suggest(key, ALL_VARIANTS)} (variants: {', '.join(ALL_VARIANTS)})",
                **where,
                line=line_of(variants, key),
            )
        if not isinstance(over, dict) or set(over) & _NOT_IN_VARIANTS:
            raise SpecError(
                f"variant '{key}' overrides a mapping of keys other than extends, layers, variants, norm, reuse",
                **where,
                line=line_of(variants, key),
            )


def _merge_variant(doc: LDict, path: Path, key: str) -> LDict:
    """The description with the `variants:` section of the chosen variant merged in."""
    variants = doc.get("variants") or {}
    if key not in variants:
        return doc
    over = variants[key]
    over.key_files = {k: file_of(over, path) for k in over}
    return merge(doc, over)


def _names(doc: LDict, path: Path, norm: str, reuse: bool, overridden: bool) -> tuple[str, str]:
    """(family, name): a variant asked for by argument is named after the family."""
    family = doc.get("family") if isinstance(doc.get("family"), str) else path.stem
    name = variant_name(family, norm, reuse) if overridden else doc.get("name", path.stem)
    if not isinstance(name, str):
        raise SpecError("`name` must be a string", **where_key(doc, "name", path))
    return family, name


def _substitute_vars(doc: LDict, path: Path) -> tuple[dict, LDict]:
    """(vars, the description without `vars` and `blocks`, its ${vars} substituted)."""
    env = doc.get("vars") or {}
    if not isinstance(env, dict):
        raise SpecError("`vars` must be a mapping", **where_key(doc, "vars", path))
    env = plain(env)
    body = substitute(LDict({k: v for k, v in doc.items() if k not in ("vars", "blocks")}), env, path)
    body.key_files, body.key_lines = doc.key_files, doc.key_lines
    body.line = doc.line
    return env, body


def _expand_layers(doc: LDict, body: LDict, path: Path, env: dict, norm: str, layer_sets: dict) -> list[LayerSpec]:
    """The flat layer list; it ends with the classifier, a dense layer. ``layer_sets``:
    the overrides of layers by name ({name: {key: Override}})."""
    blocks = check_blocks(doc, path)
    if "layers" not in body:
        raise SpecError("the description has no `layers`", file=path, line=1)
    expander = Expander(env, norm, parse_norm_options(body), parse_defaults(body), blocks, layer_sets)
    output = expander.expand(body["layers"], Scope("", "input"), "input", doc.key_files.get("layers", path))
    layers = expander.layers
    unused_layer_overrides(layer_sets, [layer.name for layer in layers])
    if not layers or layers[-1].name != output:
        raise SpecError("the model must end with a layer (the classifier dense)", file=path)
    last = layers[-1]
    if last.kind != "dense":
        raise SpecError(f"the last layer must be the classifier, a dense layer; got {last.kind}", **last.where)
    for layer in layers:
        if layer.kind == "dense" and layer.args["units"] is None and layer is not last and layer.aux is None:
            raise SpecError("dense needs key 'units'", **layer.where)
    if last.aux is not None:
        raise SpecError("the final classifier cannot be `aux`", **last.where)
    return layers


def _classifier_warnings(layers: list[LayerSpec]) -> list[str]:
    """Classifiers output logits: `defaults: {activation: ...}` does not reach them."""
    warnings = []
    for head in [layers[-1]] + [layer for layer in layers if layer.aux is not None]:
        if "activation" not in head.explicit:
            head.args["activation"] = None
        elif head.args["activation"] not in _LOGIT_ACTIVATIONS:
            warnings.append(
                f"classifier '{head.name}' has activation {head.args['activation']}: "
                "its logits pass through it (softmax belongs to the loss)"
            )
    return warnings


def _settings(doc: LDict, body: LDict, path: Path) -> tuple[dict, dict]:
    """The `train:` and `draw:` sections, validated and completed with their defaults."""
    where = where_key(doc, "train", path)
    train = validate_mapping("train", body.get("train"), TRAIN_ARGS, **where)
    train["augment"] = validate_mapping(
        "train.augment", (body.get("train") or {}).get("augment"), AUGMENT_ARGS, **where
    )
    for pattern, mult in (train["lr_mult"] or {}).items():
        if not isinstance(mult, (int, float)) or isinstance(mult, bool) or mult < 0:
            raise SpecError(f"train.lr_mult['{pattern}'] must be a number >= 0", **where)
    draw = validate_mapping("draw", body.get("draw"), DRAW_ARGS, **where_key(doc, "draw", path))
    return train, draw


def _slot_warnings(layers: list[LayerSpec], norm: str, reuse: bool, norm_given: bool) -> list[str]:
    """Warnings for a norm or reuse that has no `norm` slot to act on."""
    if any(layer.slot for layer in layers):
        return []
    warnings = []
    if reuse and norm == "none":  # slots or not, none of them holds a normalization
        warnings.append("reuse with norm none has nothing to reuse: the classifier sees features only")
    elif reuse:
        warnings.append("reuse is on but the model has no norm slots: the classifier sees features only")
    if norm != "none" and norm_given:
        warnings.append(f"--norm {norm} has no effect: the description has no `norm` slots")
    return warnings
