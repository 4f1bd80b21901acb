"""The keys of a model description and the checks of their values.

The top-level keys, the `train:` and `draw:` sections (tables of `Arg`), and the
functions that check a value or a whole mapping against them. Every error names the
file and line, and suggests the closest known word (`did you mean ...?`).
"""

from __future__ import annotations

import copy
import difflib

from normscope.errors import SpecError
from normscope.keys import REQUIRED, Arg
from normscope.norms import NORM_CHOICES
from normscope.spec.yamlio import LDict, file_of, line_of, plain

TOP_KEYS = {
    "name": "model name (default: the file name)",
    "family": "name shared by all variants (default: the root of the `extends` chain)",
    "description": "free text",
    "extends": "path of a description this one overrides (relative to this file)",
    "input": "input shape [C, H, W], or `auto` to take it from the data",
    "classes": "number of classes, or `auto` to take it from the data",
    "norm": "what every `norm` slot becomes: " + " | ".join(NORM_CHOICES),
    "norm_options": "per-kind defaults for norm slots, e.g. {gdn: {kernel: 3}}",
    "reuse": "concatenate every norm slot's statistics to the classifier input",
    "defaults": "default keys for layers: {activation: relu, padding: same} or {conv: {...}}",
    "vars": "values substituted for ${name} anywhere in the description",
    "blocks": "reusable parametrized layer groups, used like layer kinds",
    "layers": "the layer list (sequential unless `from:` says otherwise)",
    "variants": "overrides per variant: {gdn_v2: {norm_options: {gdn: {kernel: 3}}}}",
    "train": "training settings (see docs/dsl.md)",
    "draw": "diagram settings (see docs/dsl.md)",
}

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "adagrad", "adadelta")
SCHEDULES = ("none", "cosine", "step", "onecycle")


TRAIN_ARGS: dict[str, Arg] = {
    "optimizer": Arg((str,), "adam", choices=OPTIMIZERS),
    "lr": Arg((float, type(None)), None, help="learning rate (default: the optimizer's Keras default)"),
    "momentum": Arg((float,), 0.0, help="sgd / rmsprop momentum"),
    "nesterov": Arg((bool,), False),
    "weight_decay": Arg((float,), 0.0),
    "eps": Arg((float, type(None)), None, help="optimizer epsilon (Keras default 1e-7)"),
    "betas": Arg((list, type(None)), None),
    "epochs": Arg((int,), 30, check=lambda v: None if v > 0 else "must be positive"),
    "batch_size": Arg((int,), 128, check=lambda v: None if v > 0 else "must be positive"),
    "schedule": Arg((str,), "none", choices=SCHEDULES),
    "step_size": Arg((int,), 30, help="epochs between lr decays (schedule: step)"),
    "gamma": Arg((float,), 0.1, help="lr decay factor (schedule: step)"),
    "warmup_epochs": Arg((int,), 0),
    "label_smoothing": Arg((float,), 0.0, check=lambda v: None if 0 <= v < 1 else "must be in [0, 1)"),
    "augment": Arg((dict,), None, help="{crop: padding in pixels (0 = off), flip: true|false}"),
    "standardize": Arg((bool,), True, help="per-channel standardization with training statistics"),
    "validation": Arg((float,), 0.1, check=lambda v: None if 0 <= v < 1 else "must be in [0, 1)"),
    "freeze": Arg((list,), None, help="layer names or glob patterns whose weights are not trained"),
    "lr_mult": Arg((dict,), None, help="{layer name or glob: learning-rate multiplier}"),
    "weights": Arg(
        (str, type(None)),
        None,
        help="pretrained weights loaded before training: a .pth state dict (relative to this file) or "
        "torchvision:NAME, e.g. torchvision:vgg19.IMAGENET1K_V1 (docs/transfer.md)",
    ),
    "data": Arg((str, type(None)), None, help="default data set (cifar100, fashion-mnist, npz:PATH, synthetic)"),
    "subset": Arg((int, type(None)), None, help="use only this many training images"),
    "seed": Arg((int,), 0),
    "compile": Arg((bool,), False, help="torch.compile the model"),
    "normalize": Arg(
        (str, type(None)),
        None,
        choices=("imagenet", "dataset", "none"),
        help="input standardization: ImageNet's channel means and stds, the training split's, or none "
        "(default: imagenet with torchvision: weights, else dataset, or none with standardize: false)",
    ),
    "image_size": Arg(
        (int, type(None)),
        None,
        check=lambda v: None if v is None or v > 0 else "must be positive",
        help="folder: data: the side of the square images the model sees (default: the description's input)",
    ),
    "resize": Arg(
        (int, type(None)),
        None,
        check=lambda v: None if v is None or v > 0 else "must be positive",
        help="folder: data: the shorter side resized to this before the centre crop (default: image_size)",
    ),
    "cache_features": Arg(
        (bool,), True, help="a frozen backbone's output computed once and reused by the epochs that train the head"
    ),
}
AUGMENT_ARGS = {"crop": Arg((int,), 0), "flip": Arg((bool,), False)}
DRAW_ARGS = {
    "abbreviations": Arg((bool,), False, help="thesis captions (cnv, pl, do, flat, pred, bn, in, gdn)"),
    "legend": Arg((bool,), True),
    "title": Arg((str, type(None)), None),
    "scale": Arg((float,), 1.0),
}

_TYPE_NAMES = {
    int: "an integer",
    float: "a number",
    str: "a string",
    bool: "true/false",
    list: "a list",
    dict: "a mapping",
    type(None): "null",
}


def suggest(word, options) -> str:
    """`; did you mean 'x'?` for the closest option, or an empty string."""
    close = difflib.get_close_matches(str(word), list(options), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def type_ok(value, types) -> bool:
    """Whether `value` has one of `types`: an int passes for a float, a bool only for bool."""
    if isinstance(value, bool):
        return bool in types
    if isinstance(value, int) and float in types:
        return True
    return isinstance(value, tuple(t for t in types if t is not bool))


def type_names(types) -> str:
    return " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)


def check_value(key, value, arg: Arg, where: dict):
    """Check one value against its Arg; return it as plain data (ints become floats where floats are asked)."""
    if not type_ok(value, arg.types):
        raise SpecError(f"key '{key}' must be {type_names(arg.types)}, got {value!r}", **where)
    if arg.choices and value is not None and value not in arg.choices:
        raise SpecError(
            f"key '{key}': '{value}' is not one of {', '.join(map(str, arg.choices))}{suggest(value, arg.choices)}",
            **where,
        )
    if arg.check and value is not None:
        problem = arg.check(value)
        if problem:
            raise SpecError(f"key '{key}' {problem}, got {value!r}", **where)
    if isinstance(value, float) or (float in arg.types and isinstance(value, int) and not isinstance(value, bool)):
        return float(value)
    return plain(value)


def validate_mapping(section: str, values, schema: dict[str, Arg], file, line) -> dict:
    """Check a section (`train`, `draw`, ...) against its schema; fill in the defaults."""
    if values is None:
        values = LDict()
    if not isinstance(values, dict):
        raise SpecError(f"`{section}` must be a mapping", file=file, line=line)
    for key in values:
        if key not in schema:
            raise SpecError(
                f"unknown key '{key}' in `{section}`{suggest(key, schema)}",
                file=file_of(values, file),
                line=line_of(values, key),
            )
    out = {}
    for key, arg in schema.items():
        if key in values:
            where = {"file": file_of(values, file), "line": line_of(values, key)}
            out[key] = check_value(f"{section}.{key}", values[key], arg, where)
        else:
            out[key] = None if arg.default is REQUIRED else copy.deepcopy(arg.default)
    return out
