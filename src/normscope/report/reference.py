"""The language reference generated from the registry (used by docs/dsl.md and `normscope kinds`)."""

from __future__ import annotations

from normscope.keys import REQUIRED, Arg
from normscope.spec import AUGMENT_ARGS, DRAW_ARGS, TOP_KEYS, TRAIN_ARGS
from normscope.spec.kinds import COMMON_KEYS, KINDS

BEGIN = "<!-- BEGIN GENERATED: python scripts/gen_dsl_docs.py -->"
END = "<!-- END GENERATED -->"


def _default(arg: Arg) -> str:
    if arg.default is REQUIRED:
        return "required"
    return "`null`" if arg.default is None else f"`{arg.default}`"


def _types(arg: Arg) -> str:
    names = {
        int: "int",
        float: "number",
        str: "string",
        bool: "bool",
        list: "list",
        dict: "mapping",
        type(None): "null",
    }
    text = " \\| ".join(names.get(t, t.__name__) for t in arg.types)
    if arg.choices:
        text += ": " + ", ".join(f"`{c}`" for c in arg.choices)
    return text


def _table(schema: dict[str, Arg]) -> list[str]:
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    rows += [f"| `{k}` | {_types(a)} | {_default(a)} | {a.help} |" for k, a in schema.items()]
    return rows


def markdown() -> str:
    out = ["## Top-level keys", "", "| key | meaning |", "|---|---|"]
    out += [f"| `{k}` | {v} |" for k, v in TOP_KEYS.items()]
    out += ["", "## Keys every layer takes", "", "| key | meaning |", "|---|---|"]
    out += [f"| `{k}` | {v} |" for k, v in COMMON_KEYS.items()]
    out += ["", "## Layer kinds", ""]
    for name, kind in KINDS.items():
        out += [
            f"### `{name}`",
            "",
            kind.doc + (f" Scalar form: `- {name}: <{kind.primary}>`." if kind.primary else ""),
            "",
        ]
        if kind.args:
            out += _table(kind.args) + [""]
    out += ["## `train:`", ""] + _table(TRAIN_ARGS)
    out += ["", "`train.augment`:", ""] + _table(AUGMENT_ARGS)
    out += ["", "## `draw:`", ""] + _table(DRAW_ARGS)
    return "\n".join(out) + "\n"
