"""YAML model description -> validated, expanded ModelSpec.

Steps: load with line numbers, follow `extends:`, apply norm/reuse overrides and the
matching `variants:` section, substitute `${vars}`, expand blocks / repeat / branches into
a flat list of LayerSpec with explicit inputs, validate every key.
"""

from __future__ import annotations

import copy
import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path


from normscope.errors import SpecError
from normscope import norms
from normscope.keys import REQUIRED, Arg
from normscope.norms import ALL_VARIANTS, NORM_CHOICES, VARIANTS, variant_key, variant_name
from normscope.spec.kinds import COMMON_KEYS, KINDS
from normscope.spec.yamlio import LDict, LList, load_yaml, plain


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
    "data": Arg((str, type(None)), None, help="default data set (cifar100, fashion-mnist, npz:PATH, synthetic)"),
    "subset": Arg((int, type(None)), None, help="use only this many training images"),
    "seed": Arg((int,), 0),
    "compile": Arg((bool,), False, help="torch.compile the model"),
}
AUGMENT_ARGS = {"crop": Arg((int,), 0), "flip": Arg((bool,), False)}
DRAW_ARGS = {
    "abbreviations": Arg((bool,), False, help="thesis captions (cnv, pl, do, flat, pred, bn, in, gdn)"),
    "legend": Arg((bool,), True),
    "title": Arg((str, type(None)), None),
    "scale": Arg((float,), 1.0),
}


@dataclass
class LayerSpec:
    name: str
    kind: str
    args: dict
    inputs: list[str]
    file: Path | None = None
    line: int | None = None
    caption: str | None = None
    aux: float | None = None
    slot: bool = False          # a `norm` slot (kind resolved from the model's norm)
    explicit: frozenset = frozenset()   # keys written in the description (not defaults)

    @property
    def where(self) -> dict:
        return {"file": self.file, "line": self.line, "layer": self.name}


@dataclass
class ModelSpec:
    name: str
    family: str
    file: Path | None
    input_shape: tuple | None
    classes: int | None
    norm: str
    reuse: bool
    layers: list[LayerSpec]
    train: dict
    draw: dict
    document: dict                      # the resolved description (plain data)
    warnings: list[str] = field(default_factory=list)

    @property
    def variant(self) -> str:
        return variant_key(self.norm, self.reuse)


def _suggest(word: str, options) -> str:
    close = difflib.get_close_matches(str(word), list(options), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


# --- loading and merging -------------------------------------------------------------

def _tag_file(obj, file: Path):
    if isinstance(obj, (LDict, LList)):
        obj.file = file
        for v in obj.values() if isinstance(obj, dict) else obj:
            _tag_file(v, file)
    return obj


def _file(obj, default=None):
    return getattr(obj, "file", default)


def _line(container, key):
    return container.line_of(key) if isinstance(container, (LDict, LList)) else None


def _merge(base, over):
    """Deep merge of mappings; `over` wins; lists and scalars are replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = LDict(base)
        out.key_lines = dict(getattr(base, "key_lines", {}))
        out.key_files = dict(getattr(base, "key_files", {}))
        out.line = getattr(over, "line", 0)
        out.file = _file(over, _file(base))
        for k, v in over.items():
            out[k] = _merge(base[k], v) if k in base else v
            out.key_lines[k] = over.line_of(k) if isinstance(over, LDict) else 0
            out.key_files[k] = getattr(over, "key_files", {}).get(k, _file(over))
        return out
    return over


def _read_document(path: Path, seen: tuple = ()) -> LDict:
    path = Path(path)
    doc = load_yaml(path)
    if doc is None:
        raise SpecError("the description is empty", file=path)
    if not isinstance(doc, dict):
        raise SpecError("a model description must be a mapping of keys (name, input, layers, ...)",
                        file=path, line=getattr(doc, "line", None))
    _tag_file(doc, path)
    doc.key_files = {k: path for k in doc}
    for key in doc:
        if key not in TOP_KEYS:
            raise SpecError(f"unknown top-level key '{key}'{_suggest(key, TOP_KEYS)}",
                            file=path, line=doc.line_of(key))
    if "extends" not in doc:
        doc.setdefault("family", doc.get("name", path.stem))
        doc.key_lines.setdefault("family", doc.line)
        return doc
    parent_ref = doc["extends"]
    if not isinstance(parent_ref, str):
        raise SpecError("`extends` must be a file path", file=path, line=doc.line_of("extends"))
    parent = (path.parent / parent_ref).resolve()
    if parent in seen or parent == path.resolve():
        raise SpecError(f"`extends` cycle through {parent_ref}", file=path, line=doc.line_of("extends"))
    if not parent.exists():
        raise SpecError(f"`extends` file not found: {parent_ref} (looked in {parent.parent})",
                        file=path, line=doc.line_of("extends"))
    base = _read_document(parent, seen + (path.resolve(),))
    child = LDict({k: v for k, v in doc.items() if k != "extends"})
    child.key_lines = {k: doc.line_of(k) for k in child}
    child.key_files = {k: path for k in child}
    child.line, child.file = doc.line, path
    merged = _merge(base, child)
    if "name" not in doc:
        merged["name"] = path.stem
    return merged


# --- values ---------------------------------------------------------------------------

def _type_ok(value, types) -> bool:
    if isinstance(value, bool):
        return bool in types
    if isinstance(value, int) and float in types:
        return True
    return isinstance(value, tuple(t for t in types if t is not bool))


def _type_names(types) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true/false",
             list: "a list", dict: "a mapping", type(None): "null"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def check_value(key, value, arg: Arg, where: dict):
    if not _type_ok(value, arg.types):
        raise SpecError(f"key '{key}' must be {_type_names(arg.types)}, got {value!r}", **where)
    if arg.choices and value is not None and value not in arg.choices:
        raise SpecError(f"key '{key}': '{value}' is not one of {', '.join(map(str, arg.choices))}"
                        f"{_suggest(value, arg.choices)}", **where)
    if arg.check and value is not None:
        problem = arg.check(value)
        if problem:
            raise SpecError(f"key '{key}' {problem}, got {value!r}", **where)
    if isinstance(value, float) or (float in arg.types and isinstance(value, int) and not isinstance(value, bool)):
        return float(value)
    return plain(value)


def validate_mapping(section: str, values, schema: dict[str, Arg], file, line) -> dict:
    if values is None:
        values = LDict()
    if not isinstance(values, dict):
        raise SpecError(f"`{section}` must be a mapping", file=file, line=line)
    out = {}
    for key in values:
        if key not in schema:
            raise SpecError(f"unknown key '{key}' in `{section}`{_suggest(key, schema)}",
                            file=_file(values, file), line=_line(values, key))
    for key, arg in schema.items():
        if key in values:
            where = {"file": _file(values, file), "line": _line(values, key)}
            out[key] = check_value(f"{section}.{key}", values[key], arg, where)
        else:
            out[key] = None if arg.default is REQUIRED else copy.deepcopy(arg.default)
    return out


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _substitute(obj, env: dict, file, line=None):
    """Replace ${name}: a whole-string reference keeps the value's type."""
    if isinstance(obj, dict):
        out = LDict()
        out.line, out.file = getattr(obj, "line", line), _file(obj, file)
        out.key_lines = dict(getattr(obj, "key_lines", {}))
        for k, v in obj.items():
            out[k] = _substitute(v, env, out.file, _line(obj, k))
        return out
    if isinstance(obj, list):
        out = LList()
        out.line, out.file = getattr(obj, "line", line), _file(obj, file)
        out.item_lines = list(getattr(obj, "item_lines", []))
        out.extend(_substitute(v, env, out.file, _line(obj, i)) for i, v in enumerate(obj))
        return out
    if isinstance(obj, str) and "${" in obj:
        def value(name):
            if name not in env:
                raise SpecError(f"unknown variable ${{{name}}}{_suggest(name, env)}"
                                + ("" if env else " (define it under `vars:` or as a block argument)"),
                                file=file, line=line)
            return env[name]
        whole = _VAR.fullmatch(obj)
        if whole:
            return value(whole.group(1))
        return _VAR.sub(lambda m: str(value(m.group(1))), obj)
    return obj


# --- layer expansion ------------------------------------------------------------------

class _Scope:
    def __init__(self, prefix: str, input_name: str, parent: "_Scope | None" = None):
        self.prefix, self.input_name, self.parent = prefix, input_name, parent
        self.names: dict[str, str] = {}     # local name -> qualified node name

    def resolve(self, ref: str) -> str | None:
        scope = self
        while scope is not None:
            if ref in scope.names:
                return scope.names[ref]
            if ref == "input":
                return scope.input_name
            scope = scope.parent
        return None

class _Expander:
    def __init__(self, env: dict, norm: str, norm_options: dict, defaults: dict, blocks: dict):
        self.env = env                  # top-level vars, visible inside blocks too
        self.norm, self.norm_options = norm, norm_options
        self.defaults, self.blocks = defaults, blocks
        self.layers: list[LayerSpec] = []
        self.taken: set[str] = {"input"}
        self.counters: dict[str, int] = {}

    def auto_name(self, prefix: str) -> str:
        """Auto names count per kind over the whole model (conv1, conv2, bn1, ...)."""
        while True:
            self.counters[prefix] = self.counters.get(prefix, 0) + 1
            name = f"{prefix}{self.counters[prefix]}"
            if name not in self.taken:
                return name
        self.used_refs: set[str] = set()

    def expand(self, items, scope: _Scope, prev: str, file) -> str:
        if not isinstance(items, list):
            raise SpecError("a layer list must be a YAML list ('- conv: 16' items)",
                            file=_file(items, file), line=getattr(items, "line", None))
        file = _file(items, file)
        for i, item in enumerate(items):
            prev = self.item(item, scope, prev, file, _line(items, i))
        return prev

    def item(self, item, scope: _Scope, prev: str, file, line) -> str:
        if isinstance(item, str):
            kind, args = item, LDict()
            args.line, args.file = line, file
        elif isinstance(item, dict) and len(item) == 1:
            kind, args = next(iter(item.items()))
        elif isinstance(item, dict):
            keys = ", ".join(map(str, item))
            raise SpecError(f"a layer item has one key, its kind (e.g. '- conv: {{filters: 16}}'), "
                            f"got several: {keys}; indent the layer's keys under its kind",
                            file=file, line=line)
        else:
            raise SpecError(f"a layer item must be a kind name or '- kind: ...', got {item!r}",
                            file=file, line=line)
        if kind == "repeat":
            return self.repeat(args, scope, prev, file, line)
        if kind in self.blocks:
            return self.block(kind, args, scope, prev, file, line)
        if kind not in KINDS:
            known = sorted(set(KINDS) | set(self.blocks) | {"repeat"})
            raise SpecError(f"unknown layer kind '{kind}'{_suggest(kind, known)} "
                            f"(known kinds: {', '.join(known)})", file=file, line=line)
        spec = KINDS[kind]
        if not isinstance(args, dict):
            if spec.primary is None:
                raise SpecError(f"{kind} takes a mapping of keys, got {args!r}", file=file, line=line)
            value = args
            args = LDict({spec.primary: value})
            args.key_lines = {spec.primary: line}
            args.line = line
        args.file = _file(args, file)
        if kind in ("concat", "add") and "branches" in args:
            return self.branches(kind, args, scope, prev, file, line)
        return self.layer(kind, args, scope, prev, file, line)

    def repeat(self, args, scope, prev, file, line) -> str:
        if not isinstance(args, dict) or "layers" not in args or "times" not in args:
            raise SpecError("repeat needs `times` and `layers`: '- repeat: {times: 2, layers: [...]}'",
                            file=file, line=line)
        extra = set(args) - {"times", "layers"}
        if extra:
            raise SpecError(f"unknown key '{sorted(extra)[0]}' in repeat (known: times, layers)",
                            file=file, line=_line(args, sorted(extra)[0]))
        times = args["times"]
        if not isinstance(times, int) or isinstance(times, bool) or times < 1:
            raise SpecError(f"repeat `times` must be a positive integer, got {times!r}",
                            file=file, line=_line(args, "times"))
        for r in range(times):
            child = _Scope(scope.prefix, scope.input_name, scope)
            child.suffix = f"_{r + 1}" if times > 1 else ""
            prev = self.expand(args["layers"], child, prev, file)
        return prev

    def block(self, kind, args, scope, prev, file, line) -> str:
        definition = self.blocks[kind]
        if args is None:
            args = LDict()
        if not isinstance(args, dict):
            raise SpecError(f"block '{kind}' takes a mapping of its arguments", file=file, line=line)
        params = definition.get("args") or {}
        env = dict(self.env)
        for key, value in args.items():
            if key not in params and key not in ("name", "from"):
                raise SpecError(f"unknown argument '{key}' for block '{kind}'{_suggest(key, params)} "
                                f"(its arguments: {', '.join(params) or 'none'})", file=file,
                                line=_line(args, key))
        for key, default in params.items():
            if key in args:
                env[key] = plain(args[key])
            elif default is None:
                raise SpecError(f"block '{kind}' needs argument '{key}'", file=file, line=line)
            else:
                env[key] = plain(default)
        auto = "name" not in args
        local = self.auto_name(kind) if auto else args["name"]
        name = self.qualify(scope, local, file, line, auto=auto)
        start = self.inputs(args, scope, prev, file, line)
        if len(start) != 1:
            raise SpecError(f"block '{kind}' takes one input", file=file, line=line)
        child = _Scope(name + "_", start[0], scope)
        body = _substitute(definition["layers"], env, _file(definition, file))
        out = self.expand(body, child, start[0], _file(definition, file))
        scope.names[local] = out
        return out

    def branches(self, kind, args, scope, prev, file, line) -> str:
        branches = args["branches"]
        if not isinstance(branches, list) or len(branches) < 2:
            raise SpecError(f"{kind} `branches` must be a list of at least two layer lists "
                            "([] is the identity)", file=file, line=_line(args, "branches"))
        if "from" in args:
            raise SpecError(f"{kind} takes either `branches` or `from`, not both", file=file, line=line)
        start = prev
        outs = []
        for b in branches:
            child = _Scope(scope.prefix, scope.input_name, scope)
            outs.append(self.expand(b, child, start, file) if b else start)
        rest = LDict({k: v for k, v in args.items() if k != "branches"})
        rest.key_lines, rest.line, rest.file = dict(args.key_lines), args.line, _file(args, file)
        return self.layer(kind, rest, scope, prev, file, line, inputs=outs)

    def qualify(self, scope, local, file, line, auto=False) -> str:
        if not isinstance(local, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", local):
            raise SpecError(f"layer name {local!r} must start with a letter and use only letters, "
                            "digits and _", file=file, line=line)
        name = local if auto else scope.prefix + local + getattr(scope, "suffix", "")
        if name in self.taken:
            raise SpecError(f"duplicate layer name '{name}'", file=file, line=line, layer=name)
        self.taken.add(name)
        return name

    def inputs(self, args, scope, prev, file, line) -> list[str]:
        if "from" not in args:
            return [prev]
        refs = args["from"]
        refs = [refs] if isinstance(refs, str) else refs
        if not isinstance(refs, list) or not refs or not all(isinstance(r, str) for r in refs):
            raise SpecError("`from` must be a layer name or a list of names", file=file,
                            line=_line(args, "from"))
        out = []
        for ref in refs:
            target = scope.resolve(ref)
            if target is None:
                known = sorted(self.taken - {"input"})
                raise SpecError(f"`from` refers to a layer that does not exist: '{ref}'"
                                f"{_suggest(ref, known)}", file=file, line=_line(args, "from"))
            out.append(target)
        return out

    def layer(self, kind, args, scope, prev, file, line, inputs=None) -> str:
        spec = KINDS[kind]
        slot = kind == "norm"
        norm = self.norm if slot else None
        prefix = norm if slot else spec.prefix
        if slot and norm == "none":
            # the slot disappears: references to it mean its input
            for key in args:
                if key not in spec.args and key not in COMMON_KEYS:
                    raise SpecError(f"unknown key '{key}' for norm{_suggest(key, spec.args)}",
                                    file=file, line=_line(args, key))
            ins = self.inputs(args, scope, prev, file, line)
            if "name" in args:
                scope.names[args["name"]] = ins[0]
            return ins[0]
        auto = "name" not in args
        local = self.auto_name(prefix) if auto else args.get("name")
        name = self.qualify(scope, local, file, _line(args, "name") or line, auto=auto)
        scope.names[local] = name
        where = {"file": file, "line": line, "layer": name}
        for key in args:
            if key not in spec.args and key not in COMMON_KEYS:
                known = list(spec.args) + list(COMMON_KEYS)
                raise SpecError(f"unknown key '{key}' for {kind}{_suggest(key, known)} "
                                f"(keys: {', '.join(known)})", file=file, line=_line(args, key),
                                layer=name)
        if inputs is None:
            inputs = self.inputs(args, scope, prev, file, line)
        if spec.multi_input and len(inputs) < 2:
            raise SpecError(f"{kind} needs at least two inputs (`from: [a, b]` or `branches:`)", **where)
        if not spec.multi_input and len(inputs) != 1:
            raise SpecError(f"{kind} takes one input, got {len(inputs)}", **where)
        values = {}
        kind_defaults = dict(self.defaults.get("*", {}))
        kind_defaults.update(self.defaults.get(kind, {}))
        if slot:
            kind_defaults.update(self.norm_options.get(norm, {}))
        elif norms.norm_of_kind(kind):
            kind_defaults.update(self.norm_options.get(norms.norm_of_kind(kind).short, {}))
        for key, arg in spec.args.items():
            lw = dict(where, line=_line(args, key) or line)
            if key in args:
                values[key] = check_value(key, args[key], arg, lw)
            elif key in kind_defaults:
                values[key] = check_value(key, kind_defaults[key], arg, lw)
            elif arg.default is REQUIRED:
                if kind == "dense" and key == "units":
                    values[key] = None          # the classifier's units default to `classes`
                    continue
                raise SpecError(f"{kind} needs key '{key}' ({arg.help or 'required'})", **where)
            else:
                values[key] = copy.deepcopy(arg.default)
        if slot:
            values["norm"] = norm
        aux = args.get("aux")
        if aux is not None:
            if kind != "dense" or not isinstance(aux, (int, float)) or isinstance(aux, bool) or not 0 < aux < 1:
                raise SpecError("`aux` (auxiliary classifier loss weight in (0, 1)) applies to dense layers",
                                **where)
        caption = args.get("caption")
        if caption is not None and not isinstance(caption, (str, int, float)):
            raise SpecError("`caption` must be text", **where)
        resolved_kind = norms.NORMS[norm].long if slot else kind
        self.layers.append(LayerSpec(name=name, kind=resolved_kind, args=values, inputs=list(inputs),
                                     file=file, line=line, caption=None if caption is None else str(caption),
                                     aux=None if aux is None else float(aux), slot=slot,
                                     explicit=frozenset(args)))
        return name


def _defaults(doc) -> dict:
    raw = doc.get("defaults") or {}
    file, line = doc.key_files.get("defaults"), doc.line_of("defaults")
    if not isinstance(raw, dict):
        raise SpecError("`defaults` must be a mapping", file=file, line=line)
    out: dict[str, dict] = {"*": {}}
    for key, value in raw.items():
        kline = _line(raw, key)
        if key in KINDS and isinstance(value, dict):
            for k in value:
                if k not in KINDS[key].args:
                    raise SpecError(f"unknown key '{k}' for {key} in `defaults`"
                                    f"{_suggest(k, KINDS[key].args)}", file=file, line=_line(value, k))
            out.setdefault(key, {}).update(value)
        elif any(key in k.args for k in KINDS.values()):
            for kind in KINDS.values():
                if key in kind.args and kind.name not in ("activation",):
                    out.setdefault(kind.name, {}).setdefault(key, value)
        else:
            every = sorted({a for k in KINDS.values() for a in k.args})
            raise SpecError(f"unknown key '{key}' in `defaults`{_suggest(key, every)}", file=file, line=kline)
    return out


def _norm_options(doc) -> dict:
    raw = doc.get("norm_options") or {}
    file, line = doc.key_files.get("norm_options"), doc.line_of("norm_options")
    if not isinstance(raw, dict):
        raise SpecError("`norm_options` must be a mapping {" + "|".join(norms.NORMS) + ": {...}}",
                        file=file, line=line)
    for k, v in raw.items():
        if k not in norms.NORMS or not isinstance(v, dict):
            raise SpecError(f"`norm_options` key '{k}' must be one of {', '.join(norms.NORMS)} with a mapping",
                            file=file, line=_line(raw, k))
        for key in v:
            if key not in KINDS["norm"].args:
                raise SpecError(f"unknown norm option '{key}'{_suggest(key, KINDS['norm'].args)}",
                                file=file, line=_line(v, key))
    return raw


def _shape(value, file, line) -> tuple | None:
    if value == "auto" or value is None:
        return None
    if isinstance(value, dict):
        allowed = {"channels", "size", "height", "width"}
        if set(value) - allowed or "channels" not in value:
            raise SpecError("`input` mapping takes channels and size (or height and width)",
                            file=file, line=line)
        h = value.get("height", value.get("size"))
        w = value.get("width", value.get("size"))
        value = [value["channels"], h, w]
    if (not isinstance(value, list) or len(value) not in (1, 3)
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        raise SpecError(f"`input` must be [C, H, W] (positive integers) or auto, got {plain(value)!r}",
                        file=file, line=line)
    return tuple(value)


def load_spec(source, norm: str | None = None, reuse: bool | None = None,
              input_shape: tuple | None = None, classes: int | None = None) -> ModelSpec:
    """Load and validate a model description (a path or a ModelSpec, returned re-resolved)."""
    if isinstance(source, ModelSpec):
        if norm is None and reuse is None and input_shape is None and classes is None:
            return source
        if source.file is None:
            raise SpecError("cannot re-resolve a spec that was not loaded from a file")
        norm = source.norm if norm is None else norm
        reuse = source.reuse if reuse is None else reuse
        input_shape = input_shape or source.input_shape
        classes = classes or source.classes
        source = source.file
    path = Path(source)
    doc = _read_document(path)
    overridden = norm is not None or reuse is not None

    def get(key, default=None):
        return doc.get(key, default)

    def where(key):
        return {"file": doc.key_files.get(key, path), "line": doc.line_of(key)}

    chosen_norm = norm if norm is not None else get("norm", "none")
    if chosen_norm not in NORM_CHOICES:
        origin = "--norm" if norm is not None else "`norm`"
        raise SpecError(f"{origin}: '{chosen_norm}' is not one of {', '.join(NORM_CHOICES)}"
                        f"{_suggest(chosen_norm, NORM_CHOICES)}", **({} if norm is not None else where("norm")))
    chosen_reuse = reuse if reuse is not None else get("reuse", False)
    if not isinstance(chosen_reuse, bool):
        raise SpecError("`reuse` must be true or false", **where("reuse"))
    variants = get("variants") or {}
    if not isinstance(variants, dict):
        raise SpecError("`variants` must be a mapping", **where("variants"))
    for key, over in variants.items():
        if key not in ALL_VARIANTS:
            raise SpecError(f"unknown variant '{key}'{_suggest(key, ALL_VARIANTS)} (variants: {', '.join(ALL_VARIANTS)})",
                            file=doc.key_files.get("variants"), line=_line(variants, key))
        if not isinstance(over, dict) or set(over) & {"extends", "layers", "variants", "norm", "reuse"}:
            raise SpecError(f"variant '{key}' overrides a mapping of keys other than extends, layers, "
                            "variants, norm, reuse", file=doc.key_files.get("variants"), line=_line(variants, key))
    key = variant_key(chosen_norm, chosen_reuse)
    if key in variants:
        over = variants[key]
        over.key_files = {k: _file(over, path) for k in over}
        doc = _merge(doc, over)
    family = get("family") if isinstance(get("family"), str) else path.stem
    name = variant_name(family, chosen_norm, chosen_reuse) if overridden else get("name", path.stem)
    if not isinstance(name, str):
        raise SpecError("`name` must be a string", **where("name"))

    env = get("vars") or {}
    if not isinstance(env, dict):
        raise SpecError("`vars` must be a mapping", **where("vars"))
    env = plain(env)
    doc_sub = _substitute(LDict({k: v for k, v in doc.items() if k not in ("vars", "blocks")}), env, path)
    doc_sub.key_files, doc_sub.key_lines = doc.key_files, doc.key_lines
    doc_sub.line = doc.line

    shape = input_shape or _shape(doc_sub.get("input", "auto"), **where("input"))
    n_classes = classes if classes is not None else doc_sub.get("classes", "auto")
    if n_classes == "auto":
        n_classes = None
    elif not isinstance(n_classes, int) or isinstance(n_classes, bool) or n_classes < 1:
        raise SpecError(f"`classes` must be a positive integer or auto, got {n_classes!r}", **where("classes"))

    blocks = doc.get("blocks") or {}
    if not isinstance(blocks, dict):
        raise SpecError("`blocks` must be a mapping of block name -> {args, layers}", **where("blocks"))
    for bname, bdef in blocks.items():
        bline = {"file": _file(blocks, path), "line": _line(blocks, bname)}
        if bname in KINDS or bname == "repeat":
            raise SpecError(f"block name '{bname}' hides the layer kind of the same name", **bline)
        if not isinstance(bdef, dict) or "layers" not in bdef or set(bdef) - {"args", "layers", "description"}:
            raise SpecError(f"block '{bname}' needs `layers` (and optionally `args`, `description`)", **bline)
        if bdef.get("args") is not None and not isinstance(bdef["args"], dict):
            raise SpecError(f"block '{bname}' `args` must be a mapping name -> default (null = required)", **bline)
        if isinstance(bdef.get("args"), dict):
            bdef["args"] = LDict(bdef["args"])

    if "layers" not in doc_sub:
        raise SpecError("the description has no `layers`", file=path, line=1)
    expander = _Expander(env, chosen_norm, _norm_options(doc_sub), _defaults(doc_sub), blocks)
    output = expander.expand(doc_sub["layers"], _Scope("", "input"), "input", doc.key_files.get("layers", path))
    layers = expander.layers
    if not layers or layers[-1].name != output:
        raise SpecError("the model must end with a layer (the classifier dense)", file=path)
    last = layers[-1]
    if last.kind != "dense":
        raise SpecError(f"the last layer must be the classifier, a dense layer; got {last.kind}",
                        **last.where)
    for layer in layers:
        if layer.kind == "dense" and layer.args["units"] is None:
            if layer is last or layer.aux is not None:
                continue
            raise SpecError("dense needs key 'units'", **layer.where)
    if last.aux is not None:
        raise SpecError("the final classifier cannot be `aux`", **last.where)
    warnings = []
    for head in [last] + [layer for layer in layers if layer.aux is not None]:
        # classifiers output logits: `defaults: {activation: ...}` does not reach them
        if "activation" not in head.explicit:
            head.args["activation"] = None
        elif head.args["activation"] not in (None, "softmax", "linear", "none"):
            warnings.append(f"classifier '{head.name}' has activation {head.args['activation']}: "
                            "its logits pass through it (softmax belongs to the loss)")

    train = validate_mapping("train", doc_sub.get("train"), TRAIN_ARGS, **where("train"))
    train["augment"] = validate_mapping("train.augment", (doc_sub.get("train") or {}).get("augment"),
                                        AUGMENT_ARGS, **where("train"))
    if train["lr_mult"]:
        for pattern, mult in train["lr_mult"].items():
            if not isinstance(mult, (int, float)) or isinstance(mult, bool) or mult < 0:
                raise SpecError(f"train.lr_mult['{pattern}'] must be a number >= 0", **where("train"))
    draw = validate_mapping("draw", doc_sub.get("draw"), DRAW_ARGS, **where("draw"))

    if chosen_reuse and not any(layer.slot for layer in layers):
        warnings.append("reuse is on but the model has no norm slots: the classifier sees features only")
    if chosen_norm != "none" and not any(layer.slot for layer in layers) and norm is not None:
        warnings.append(f"--norm {chosen_norm} has no effect: the description has no `norm` slots")

    document = plain({k: v for k, v in doc.items()})
    document.update({"name": name, "norm": chosen_norm, "reuse": chosen_reuse})
    return ModelSpec(name=name, family=family, file=path, input_shape=shape, classes=n_classes,
                     norm=chosen_norm, reuse=chosen_reuse, layers=layers, train=train, draw=draw,
                     document=document, warnings=warnings)
