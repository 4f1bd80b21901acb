"""The layer kinds of the model language and the keys each one takes.

This is the language's side of a kind (what a description may write); what a kind
means (its shape rule, parameter count, module) is in `normscope.model.kinds`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from normscope import norms
from normscope.keys import Arg, pair_check, positive, unit_rate

# activations by name; `softmax` on the classifier is left to the loss (logits out)
ACTIVATIONS: tuple[str, ...] = (
    "relu",
    "relu6",
    "leaky_relu",
    "elu",
    "selu",
    "gelu",
    "silu",
    "swish",
    "tanh",
    "sigmoid",
    "softmax",
    "linear",
    "none",
)


def _padding(v) -> str | None:
    if v in ("same", "valid") or (isinstance(v, int) and not isinstance(v, bool) and v >= 0):
        return None
    return "must be 'same', 'valid' or an integer >= 0"


ACT_ARG = Arg((str, type(None)), None, choices=ACTIVATIONS, help="activation function")
PAD_ARG = Arg((str, int), "valid", check=_padding, help="'same', 'valid' or an explicit zero padding")


@dataclass(frozen=True)
class KindKeys:
    name: str
    args: dict[str, Arg] = field(default_factory=dict)
    primary: str | None = None  # key a scalar value stands for: `conv: 16`
    prefix: str = ""  # auto-name prefix
    multi_input: bool = False
    doc: str = ""


def _pool_keys(name: str, op: str) -> KindKeys:
    return KindKeys(
        name,
        primary="size",
        prefix="pool" if op == "max" else "avgpool",
        doc=f"{op} pooling; stride defaults to the size."
        + (
            " With padding, a window averages only its positions inside the map (as Keras: the zeros are not counted)."
            if op == "avg"
            else ""
        ),
        args={
            "size": Arg((int, list), 2, check=pair_check),
            "stride": Arg((int, list, type(None)), None, check=lambda v: None if v is None else pair_check(v)),
            "padding": Arg((str, int), "valid", check=_padding),
            **(
                {"ceil": Arg((bool,), False, help="round the output size up (torch's ceil_mode)")}
                if op == "max"
                else {}
            ),
        },
    )


def _norm_slot() -> KindKeys:
    # `args` is the norms table's live dict of options: a plugin's options join it
    return KindKeys(
        "norm",
        prefix="norm",
        args=norms.OPTIONS,
        doc="A normalization slot: becomes the model's `norm` (none or a normalization's short name).",
    )


def _add_norm_kind(n: norms.NormSpec) -> None:
    """A fixed layer of each normalization, built-in or a plugin's: `- batchnorm`."""
    # a fixed layer takes its own normalization's options only (`- batchnorm: {kernel: 3}` is an
    # error); a slot takes every option, since its normalization changes with the variant
    KINDS[n.long] = KindKeys(
        n.long,
        prefix=n.short,
        args={k: norms.OPTIONS[k] for k in n.options},
        doc=f"A fixed {n.display} layer (not changed by `norm`).",
    )


def other_norms_option(key: str) -> str:
    """'; kernel is an option of gdn' where `key` belongs to other normalizations, else ''."""
    owners = [n.long for n in norms.NORMS.values() if key in n.defaults]
    return f"; {key} is an option of {', '.join(owners)}" if owners else ""


KINDS: dict[str, KindKeys] = {
    k.name: k
    for k in (
        KindKeys(
            "conv",
            primary="filters",
            prefix="conv",
            doc="2-D convolution followed by its activation.",
            args={
                "filters": Arg((int,), check=positive, help="output channels"),
                "kernel": Arg((int, list), 3, check=pair_check, help="kernel size, n or [h, w]"),
                "stride": Arg((int, list), 1, check=pair_check),
                "padding": PAD_ARG,
                "dilation": Arg((int, list), 1, check=pair_check),
                "groups": Arg((int,), 1, check=positive),
                "activation": ACT_ARG,
                "bias": Arg((bool,), True),
            },
        ),
        KindKeys(
            "dense",
            primary="units",
            prefix="dense",
            doc="Fully connected layer. The model's last layer is a dense layer: the classifier.",
            args={
                "units": Arg((int,), check=positive, help="output size; the classifier defaults to `classes`"),
                "activation": ACT_ARG,
                "bias": Arg((bool,), True),
            },
        ),
        _pool_keys("maxpool", "max"),
        _pool_keys("avgpool", "avg"),
        KindKeys(
            "adaptiveavgpool",
            primary="size",
            prefix="apool",
            doc="Average pooling to an output of the given size (torch's AdaptiveAvgPool2d): "
            "(C, H, W) -> (C, h, w); a larger output repeats values.",
            args={"size": Arg((int, list), check=pair_check, help="output size, n or [h, w]")},
        ),
        KindKeys("globalavgpool", prefix="gap", doc="Global average pooling: (C, H, W) -> (C,)."),
        KindKeys("globalmaxpool", prefix="gmp", doc="Global max pooling: (C, H, W) -> (C,)."),
        KindKeys("flatten", prefix="flatten", doc="(C, H, W) -> (C·H·W,)."),
        KindKeys(
            "dropout",
            primary="rate",
            prefix="dropout",
            doc="Dropout with the given rate.",
            args={"rate": Arg((float, int), check=unit_rate, help="drop probability")},
        ),
        KindKeys(
            "activation",
            primary="fn",
            prefix="act",
            doc="A stand-alone activation.",
            args={"fn": Arg((str,), choices=ACTIVATIONS)},
        ),
        KindKeys(
            "zeropad",
            primary="pad",
            prefix="pad",
            doc="Zero padding on H and W.",
            args={"pad": Arg((int, list), check=pair_check)},
        ),
        KindKeys("concat", prefix="concat", multi_input=True, doc="Concatenate inputs on channels (or features)."),
        KindKeys(
            "add",
            prefix="add",
            multi_input=True,
            doc="Element-wise sum (residual connection), optionally followed by an activation.",
            args={"activation": ACT_ARG},
        ),
        _norm_slot(),
    )
}
norms.registry.RESERVED.update(KINDS)  # a normalization cannot take a kind's name
norms.on_register(_add_norm_kind)

COMMON_KEYS = {
    "name": "a unique layer name (used in state_dict keys, captions, `from`)",
    "from": "input layer name(s); default: the previous layer; `input` is the model input",
    "caption": "text drawn under the box in diagrams",
    "aux": "dense only: this layer is an auxiliary classifier with this loss weight",
}
