"""Layer expansion: the `layers:` tree -> a flat list of LayerSpec with explicit inputs.

The tree holds layer kinds, blocks (parametrized layer groups), `repeat:` and
`branches:`; every layer gets a unique name, its inputs, and its keys checked and
completed from `defaults:` and `norm_options:`. `norm` slots become the model's norm,
or disappear with `norm: none`.
"""

from __future__ import annotations

import copy
import re

from normscope import norms
from normscope.errors import SpecError
from normscope.keys import REQUIRED
from normscope.spec.kinds import COMMON_KEYS, KINDS, other_norms_option
from normscope.spec.model_spec import LayerSpec
from normscope.spec.overrides import check_layer_override
from normscope.spec.schema import check_value, suggest
from normscope.spec.variables import substitute
from normscope.spec.yamlio import LDict, file_of, line_of, plain

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_BRANCHING = ("concat", "add")  # kinds that take `branches:`
MAX_LAYERS = 10_000  # what repeat and blocks may expand to: bounded work for any description
MAX_NESTING = 32  # blocks in blocks, repeats in repeats


class Scope:
    """The layer names visible at one level of the tree (a block body, a repeat, a branch)."""

    def __init__(self, prefix: str, input_name: str, parent: Scope | None = None, suffix: str = ""):
        self.prefix, self.input_name, self.parent = prefix, input_name, parent
        self.suffix = suffix  # appended to given names (the repeat count: `_2`)
        self.names: dict[str, str] = {}  # local name -> qualified node name

    def resolve(self, ref: str) -> str | None:
        scope = self
        while scope is not None:
            if ref in scope.names:
                return scope.names[ref]
            if ref == "input":
                return scope.input_name
            scope = scope.parent
        return None


class Expander:
    """Walks the layer tree; the expanded layers collect in `self.layers`."""

    def __init__(self, env: dict, norm: str, norm_options: dict, defaults: dict, blocks: dict, sets=None):
        self.env = env  # top-level vars, visible inside blocks too
        self.sets = sets or {}  # overrides of layers by name: {name: {key: Override}}
        self.norm, self.norm_options = norm, norm_options
        self.defaults, self.blocks = defaults, blocks
        self.layers: list[LayerSpec] = []
        self.taken: set[str] = {"input"}
        self.counters: dict[str, int] = {}
        self.open_blocks: list[str] = []  # the blocks being expanded, outermost first
        self.nesting = 0
        # None: the first error ends the expansion; a list: each item's error is appended
        # to it and the expansion goes on with the next item (normscope.spec.lint)
        self.errors: list[SpecError] | None = None

    def auto_name(self, prefix: str) -> str:
        """Auto names count per kind over the whole model (conv1, conv2, bn1, ...)."""
        while True:
            self.counters[prefix] = self.counters.get(prefix, 0) + 1
            name = f"{prefix}{self.counters[prefix]}"
            if name not in self.taken:
                return name

    def expand(self, items, scope: Scope, prev: str, file) -> str:
        """Expand a layer list; return the name of its output node."""
        if not isinstance(items, list):
            raise SpecError(
                "a layer list must be a YAML list ('- conv: 16' items)",
                file=file_of(items, file),
                line=getattr(items, "line", None),
            )
        file = file_of(items, file)
        if self.nesting >= MAX_NESTING:
            raise SpecError(
                f"layers nest deeper than {MAX_NESTING} levels (repeat, blocks, branches)",
                file=file,
                line=getattr(items, "line", None),
            )
        self.nesting += 1
        try:
            for i, item in enumerate(items):
                try:
                    prev = self.item(item, scope, prev, file, line_of(items, i))
                except SpecError as exc:
                    if self.errors is None:
                        raise
                    self.errors.append(exc)
                    _stand_in(item, scope, prev)
        finally:
            self.nesting -= 1
        return prev

    def item(self, item, scope: Scope, prev: str, file, line) -> str:
        kind, args = _split_item(item, file, line)
        if kind == "repeat":
            return self.repeat(args, scope, prev, file, line)
        if kind in self.blocks:
            return self.block(kind, args, scope, prev, file, line)
        if kind not in KINDS:
            known = sorted(set(KINDS) | set(self.blocks) | {"repeat"})
            raise SpecError(
                f"unknown layer kind '{kind}'{suggest(kind, known)} (known kinds: {', '.join(known)})",
                file=file,
                line=line,
            )
        args = _kind_args(kind, args, file, line)
        if kind in _BRANCHING and "branches" in args:
            return self.branches(kind, args, scope, prev, file, line)
        return self.layer(kind, args, scope, prev, file, line)

    def repeat(self, args, scope: Scope, prev: str, file, line) -> str:
        times = _repeat_times(args, file, line)
        if times > MAX_LAYERS:
            raise SpecError(
                f"repeat `times: {times}` would expand to more than {MAX_LAYERS:,} layers",
                file=file,
                line=line_of(args, "times") or line,
            )
        for r in range(times):
            child = Scope(scope.prefix, scope.input_name, scope, suffix=f"_{r + 1}" if times > 1 else "")
            prev = self.expand(args["layers"], child, prev, file)
        return prev

    def block(self, kind, args, scope: Scope, prev: str, file, line) -> str:
        definition = self.blocks[kind]
        if kind in self.open_blocks:
            chain = " -> ".join(self.open_blocks[self.open_blocks.index(kind) :] + [kind])
            raise SpecError(f"block '{kind}' uses itself ({chain})", file=file, line=line)
        if args is None:
            args = LDict()
        if not isinstance(args, dict):
            raise SpecError(f"block '{kind}' takes a mapping of its arguments", file=file, line=line)
        env = self.block_env(kind, args, definition.get("args") or {}, file, line)
        auto = "name" not in args
        local = self.auto_name(kind) if auto else args["name"]
        name = self.qualify(scope, local, file, line, auto=auto)
        start = self.inputs(args, scope, prev, file, line)
        if len(start) != 1:
            raise SpecError(f"block '{kind}' takes one input", file=file, line=line)
        child = Scope(name + "_", start[0], scope)
        body = substitute(definition["layers"], env, file_of(definition, file))
        self.open_blocks.append(kind)
        try:
            out = self.expand(body, child, start[0], file_of(definition, file))
        finally:
            self.open_blocks.pop()
        scope.names[local] = out
        return out

    def block_env(self, kind, args, params: dict, file, line) -> dict:
        """The variables inside a block's body: the top-level vars and the block's arguments."""
        for key in args:
            if key not in params and key not in ("name", "from"):
                raise SpecError(
                    f"unknown argument '{key}' for block '{kind}'{suggest(key, params)} "
                    f"(its arguments: {', '.join(params) or 'none'})",
                    file=file,
                    line=line_of(args, key),
                )
        env = dict(self.env)
        for key, default in params.items():
            if key in args:
                env[key] = plain(args[key])
            elif default is None:
                raise SpecError(f"block '{kind}' needs argument '{key}'", file=file, line=line)
            else:
                env[key] = plain(default)
        return env

    def branches(self, kind, args, scope: Scope, prev: str, file, line) -> str:
        branches = args["branches"]
        if not isinstance(branches, list) or len(branches) < 2:
            raise SpecError(
                f"{kind} `branches` must be a list of at least two layer lists ([] is the identity)",
                file=file,
                line=line_of(args, "branches"),
            )
        if "from" in args:
            raise SpecError(f"{kind} takes either `branches` or `from`, not both", file=file, line=line)
        outs = []
        for b in branches:
            child = Scope(scope.prefix, scope.input_name, scope)
            outs.append(self.expand(b, child, prev, file) if b else prev)
        rest = LDict({k: v for k, v in args.items() if k != "branches"})
        rest.key_lines, rest.line, rest.file = dict(args.key_lines), args.line, file_of(args, file)
        return self.layer(kind, rest, scope, prev, file, line, inputs=outs)

    def qualify(self, scope: Scope, local, file, line, auto=False) -> str:
        """The node name of a layer named `local` in `scope`; checked and marked taken."""
        if not isinstance(local, str) or not _NAME.fullmatch(local):
            raise SpecError(
                f"layer name {local!r} must start with a letter and use only letters, digits and _",
                file=file,
                line=line,
            )
        name = local if auto else scope.prefix + local + scope.suffix
        if name in self.taken:
            raise SpecError(f"duplicate layer name '{name}'", file=file, line=line, layer=name)
        self.taken.add(name)
        return name

    def inputs(self, args, scope: Scope, prev: str, file, line) -> list[str]:
        """The node names `from:` refers to; the previous layer without it."""
        if "from" not in args:
            return [prev]
        refs = args["from"]
        refs = [refs] if isinstance(refs, str) else refs
        if not isinstance(refs, list) or not refs or not all(isinstance(r, str) for r in refs):
            raise SpecError("`from` must be a layer name or a list of names", file=file, line=line_of(args, "from"))
        out = []
        for ref in refs:
            target = scope.resolve(ref)
            if target is None:
                known = sorted(self.taken - {"input"})
                raise SpecError(
                    f"`from` refers to a layer that does not exist: '{ref}'{suggest(ref, known)}",
                    file=file,
                    line=line_of(args, "from"),
                )
            out.append(target)
        return out

    def layer(self, kind, args, scope: Scope, prev: str, file, line, inputs=None) -> str:
        """One layer of a kind: named, checked, completed and appended to `self.layers`."""
        slot = kind == "norm"
        if slot and self.norm == "none":
            return self.skip_slot(args, scope, prev, file, line)
        prefix = self.norm if slot else KINDS[kind].prefix
        auto = "name" not in args
        local = self.auto_name(prefix) if auto else args.get("name")
        name = self.qualify(scope, local, file, line_of(args, "name") or line, auto=auto)
        scope.names[local] = name
        where = {"file": file, "line": line, "layer": name}
        _check_layer_keys(kind, args, file, name)
        if name in self.sets:
            args = _with_sets(args, self.sets[name], kind)
        if inputs is None:
            inputs = self.inputs(args, scope, prev, file, line)
        _check_input_count(kind, inputs, where)
        values = self.values(kind, args, slot, where)
        aux, caption = _aux(kind, args, where), _caption(args, where)
        if len(self.layers) >= MAX_LAYERS:
            raise SpecError(f"the description expands to more than {MAX_LAYERS:,} layers (repeat, blocks)", **where)
        self.layers.append(
            LayerSpec(
                name=name,
                kind=norms.NORMS[self.norm].long if slot else kind,
                args=values,
                inputs=list(inputs),
                file=file,
                line=line,
                caption=caption,
                aux=aux,
                slot=slot,
                explicit=frozenset(args),
            )
        )
        return name

    def skip_slot(self, args, scope: Scope, prev: str, file, line) -> str:
        """A `norm` slot under `norm: none` disappears: references to it mean its input."""
        spec = KINDS["norm"]
        for key in args:
            if key not in spec.args and key not in COMMON_KEYS:
                raise SpecError(
                    f"unknown key '{key}' for norm{suggest(key, spec.args)}", file=file, line=line_of(args, key)
                )
        ins = self.inputs(args, scope, prev, file, line)
        if "name" in args:
            scope.names[args["name"]] = ins[0]
        return ins[0]

    def kind_defaults(self, kind: str, slot: bool) -> dict:
        """`defaults:` for a kind; a normalization also takes its `norm_options:`."""
        out = dict(self.defaults.get("*", {}))
        out.update(self.defaults.get(kind, {}))
        if slot:
            out.update(self.norm_options.get(self.norm, {}))
        elif norms.norm_of_kind(kind):
            out.update(self.norm_options.get(norms.norm_of_kind(kind).short, {}))
        return out

    def values(self, kind: str, args, slot: bool, where: dict) -> dict:
        """Every key of the kind: written, from the defaults, or the kind's default."""
        defaults = self.kind_defaults(kind, slot)
        values = {}
        for key, arg in KINDS[kind].args.items():
            lw = dict(where, line=line_of(args, key) or where["line"])
            if key in args:
                values[key] = check_value(key, args[key], arg, lw)
            elif key in defaults:
                values[key] = check_value(key, defaults[key], arg, lw)
            elif arg.default is not REQUIRED:
                values[key] = copy.deepcopy(arg.default)
            elif kind == "dense" and key == "units":
                values[key] = None  # the classifier's units default to `classes`
            else:
                raise SpecError(f"{kind} needs key '{key}' ({arg.help or 'required'})", **where)
        if slot:
            values["norm"] = self.norm
        return values


def _with_sets(args: LDict, sets: dict, kind: str) -> LDict:
    """A layer's arguments with its `--set layers.NAME.KEY=VALUE` overrides."""
    out = LDict(args)
    out.key_lines, out.line = dict(args.key_lines), args.line
    for key, over in sets.items():
        out[key] = check_layer_override(over, kind)
    return out


def _stand_in(item, scope: Scope, prev: str) -> None:
    """After an item's error (collected), its given name stands for its input, so that later
    references to it do not add errors of their own."""
    if isinstance(item, dict) and len(item) == 1:
        args = next(iter(item.values()))
        name = args.get("name") if isinstance(args, dict) else None
        if isinstance(name, str) and scope.resolve(name) is None:
            scope.names[name] = prev


def _split_item(item, file, line) -> tuple:
    """A layer item -> (kind, its value): `- flatten` or `- conv: ...`."""
    if isinstance(item, str):
        args = LDict()
        args.line, args.file = line, file
        return item, args
    if isinstance(item, dict) and len(item) == 1:
        return next(iter(item.items()))
    if isinstance(item, dict):
        keys = ", ".join(map(str, item))
        raise SpecError(
            f"a layer item has one key, its kind (e.g. '- conv: {{filters: 16}}'), "
            f"got several: {keys}; indent the layer's keys under its kind",
            file=file,
            line=line,
        )
    raise SpecError(f"a layer item must be a kind name or '- kind: ...', got {item!r}", file=file, line=line)


def _kind_args(kind: str, args, file, line) -> LDict:
    """A kind's keys as a mapping: a scalar (`conv: 16`) stands for the kind's primary key."""
    spec = KINDS[kind]
    if not isinstance(args, dict):
        if spec.primary is None:
            raise SpecError(f"{kind} takes a mapping of keys, got {args!r}", file=file, line=line)
        value = args
        args = LDict({spec.primary: value})
        args.key_lines = {spec.primary: line}
        args.line = line
    args.file = file_of(args, file)
    return args


def _repeat_times(args, file, line) -> int:
    """`- repeat: {times: n, layers: [...]}` checked; returns n."""
    if not isinstance(args, dict) or "layers" not in args or "times" not in args:
        raise SpecError(
            "repeat needs `times` and `layers`: '- repeat: {times: 2, layers: [...]}'", file=file, line=line
        )
    extra = set(args) - {"times", "layers"}
    if extra:
        raise SpecError(
            f"unknown key '{sorted(extra)[0]}' in repeat (known: times, layers)",
            file=file,
            line=line_of(args, sorted(extra)[0]),
        )
    times = args["times"]
    if not isinstance(times, int) or isinstance(times, bool) or times < 1:
        raise SpecError(
            f"repeat `times` must be a positive integer, got {times!r}", file=file, line=line_of(args, "times")
        )
    return times


def _check_layer_keys(kind: str, args, file, name: str) -> None:
    spec = KINDS[kind]
    for key in args:
        if key not in spec.args and key not in COMMON_KEYS:
            known = list(spec.args) + list(COMMON_KEYS)
            raise SpecError(
                f"unknown key '{key}' for {kind}{suggest(key, known)} (keys: {', '.join(known)})"
                + other_norms_option(key),
                file=file,
                line=line_of(args, key),
                layer=name,
            )


def _check_input_count(kind: str, inputs: list, where: dict) -> None:
    if KINDS[kind].multi_input and len(inputs) < 2:
        raise SpecError(f"{kind} needs at least two inputs (`from: [a, b]` or `branches:`)", **where)
    if not KINDS[kind].multi_input and len(inputs) != 1:
        raise SpecError(f"{kind} takes one input, got {len(inputs)}", **where)


def _aux(kind: str, args, where: dict) -> float | None:
    """`aux:` (auxiliary classifier loss weight), dense layers only."""
    aux = args.get("aux")
    if aux is None:
        return None
    if kind != "dense" or not isinstance(aux, (int, float)) or isinstance(aux, bool) or not 0 < aux < 1:
        raise SpecError("`aux` (auxiliary classifier loss weight in (0, 1)) applies to dense layers", **where)
    return float(aux)


def _caption(args, where: dict) -> str | None:
    caption = args.get("caption")
    if caption is not None and not isinstance(caption, (str, int, float)):
        raise SpecError("`caption` must be text", **where)
    return None if caption is None else str(caption)
