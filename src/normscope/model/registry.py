"""The layer kinds of the model language: their keys, shape rules and PyTorch modules.

Each kind is registered once by name; the parser validates against `args`, the graph
calls `out_shape`, the torch backend calls `build`. Nothing is looked up in globals().
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn
import torch.nn.functional as F

REQUIRED = object()
KINDS: dict[str, "Kind"] = {}


class ShapeError(ValueError):
    """A layer's inputs do not fit it; the graph adds file, line and layer."""


@dataclass
class Arg:
    types: tuple
    default: Any = REQUIRED
    choices: tuple | None = None
    check: Callable[[Any], str | None] | None = None  # returns a message when invalid
    help: str = ""


def positive(v):
    vals = v if isinstance(v, (list, tuple)) else [v]
    return None if all(x > 0 for x in vals) else "must be positive"


def non_negative(v):
    vals = v if isinstance(v, (list, tuple)) else [v]
    return None if all(x >= 0 for x in vals) else "must be >= 0"


def unit_rate(v):
    return None if 0 <= v < 1 else "must be in [0, 1)"


def pair_check(v):
    if isinstance(v, (list, tuple)):
        if len(v) != 2 or not all(isinstance(x, int) and not isinstance(x, bool) for x in v):
            return "must be an integer or a list of two integers"
    return positive(v)


def pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


ACTIVATIONS: dict[str, Callable | None] = {
    "relu": F.relu, "relu6": F.relu6, "leaky_relu": F.leaky_relu, "elu": F.elu, "selu": F.selu,
    "gelu": F.gelu, "silu": F.silu, "swish": F.silu, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
    "softmax": None, "linear": None, "none": None,
}


def act_fn(name: str | None, final: bool = False):
    """The callable for an activation name; softmax is left to the loss (logits out)."""
    if name is None:
        return None
    if name == "softmax" and not final:
        return lambda x: F.softmax(x, dim=1)
    return ACTIVATIONS[name]


ACT_ARG = Arg((str, type(None)), None, choices=tuple(ACTIVATIONS), help="activation function")
PAD_ARG = Arg((str, int), "valid", check=lambda v: None if (v in ("same", "valid") or
              (isinstance(v, int) and v >= 0)) else "must be 'same', 'valid' or an integer >= 0",
              help="'same', 'valid' or an explicit zero padding")


@dataclass
class Kind:
    name: str
    args: dict[str, Arg] = field(default_factory=dict)
    primary: str | None = None          # key a scalar value stands for: `conv: 16`
    abbrev: str = ""                    # the thesis' box caption
    prefix: str = ""                    # auto-name prefix
    multi_input: bool = False
    doc: str = ""

    def out_shape(self, a: dict, ins: list[tuple]) -> tuple:
        return ins[0]

    def build(self, a: dict, ins: list[tuple], final: bool = False) -> nn.Module | None:
        return None


def register(kind: Kind) -> Kind:
    KINDS[kind.name] = kind
    return kind


def _need_image(kind: str, shape: tuple):
    if len(shape) != 3:
        raise ShapeError(f"{kind} needs an image input (C, H, W), got {fmt_shape(shape)}"
                         + ("; it comes after a flatten or dense" if len(shape) == 1 else ""))


def fmt_shape(shape: tuple) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def _same_pad(size: int, k: int, s: int) -> tuple[int, int]:
    out = math.ceil(size / s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def _spatial(kind: str, a: dict, hw: tuple[int, int], k: tuple, s: tuple, pad) -> tuple[int, int]:
    out = []
    for size, kk, ss in zip(hw, k, s):
        if pad == "same":
            out.append(math.ceil(size / ss))
            continue
        p = 0 if pad == "valid" else pad
        if kk > size + 2 * p:
            raise ShapeError(f"{kind} kernel {k[0]}×{k[1]} is larger than its "
                             f"{hw[0]}×{hw[1]} input" + (" (padding valid)" if pad == "valid" else ""))
        out.append((size + 2 * p - kk) // ss + 1)
    return tuple(out)


def _padding_tuple(pad, hw, k, s) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) zero padding, TensorFlow-style for 'same'."""
    if pad == "valid":
        return (0, 0, 0, 0)
    if pad == "same":
        top, bottom = _same_pad(hw[0], k[0], s[0])
        left, right = _same_pad(hw[1], k[1], s[1])
        return (left, right, top, bottom)
    return (pad, pad, pad, pad)


class Conv(nn.Conv2d):
    """Conv2d with explicit (possibly asymmetric) zero padding and an activation."""

    def __init__(self, cin, cout, kernel, stride, pad4, bias, groups, dilation, act):
        super().__init__(cin, cout, kernel, stride=stride, padding=0, bias=bias, groups=groups,
                         dilation=dilation)
        self.pad4 = tuple(pad4)
        self.act = act

    def forward(self, x):
        if any(self.pad4):
            x = F.pad(x, self.pad4)
        x = super().forward(x)
        return self.act(x) if self.act is not None else x


class Dense(nn.Linear):
    def __init__(self, cin, cout, bias, act):
        super().__init__(cin, cout, bias=bias)
        self.act = act

    def forward(self, x):
        x = super().forward(x)
        return self.act(x) if self.act is not None else x


class Lambda(nn.Module):
    """A parameter-free operation (activation, flatten, global pooling)."""

    def __init__(self, fn, label: str):
        super().__init__()
        self.fn = fn
        self.label = label

    def forward(self, x):
        return self.fn(x)

    def extra_repr(self):
        return self.label


class Pool(nn.Module):
    def __init__(self, op, k, s, pad4):
        super().__init__()
        self.op, self.k, self.s, self.pad4 = op, k, s, tuple(pad4)

    def forward(self, x):
        if any(self.pad4):
            # -inf for max pooling so padding never wins; zeros (Keras excludes them) for avg
            value = float("-inf") if self.op == "max" else 0.0
            x = F.pad(x, self.pad4, value=value)
        if self.op == "max":
            return F.max_pool2d(x, self.k, self.s)
        return F.avg_pool2d(x, self.k, self.s)

    def extra_repr(self):
        return f"{self.op}, kernel={self.k}, stride={self.s}"


# --- kinds -----------------------------------------------------------------------------

class ConvKind(Kind):
    def out_shape(self, a, ins):
        _need_image("conv", ins[0])
        c, h, w = ins[0]
        if c % a["groups"] or a["filters"] % a["groups"]:
            raise ShapeError(f"groups={a['groups']} must divide input channels {c} and filters")
        k = pair(a["kernel"])
        keff = tuple(d * (kk - 1) + 1 for kk, d in zip(k, pair(a["dilation"])))
        return (a["filters"], *_spatial("conv", a, (h, w), keff, pair(a["stride"]), a["padding"]))

    def build(self, a, ins, final=False):
        c, h, w = ins[0]
        k, s, d = pair(a["kernel"]), pair(a["stride"]), pair(a["dilation"])
        keff = tuple(dd * (kk - 1) + 1 for kk, dd in zip(k, d))
        return Conv(c, a["filters"], k, s, _padding_tuple(a["padding"], (h, w), keff, s),
                    a["bias"], a["groups"], d, act_fn(a["activation"]))


register(ConvKind(
    "conv", primary="filters", abbrev="cnv", prefix="conv",
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
    }))


class DenseKind(Kind):
    def out_shape(self, a, ins):
        if len(ins[0]) != 1:
            raise ShapeError(f"dense needs a flat input, got {fmt_shape(ins[0])}; "
                             "add a flatten or globalavgpool before it")
        return (a["units"],)

    def build(self, a, ins, final=False):
        return Dense(ins[0][0], a["units"], a["bias"], act_fn(a["activation"], final))


register(DenseKind(
    "dense", primary="units", abbrev="fc", prefix="dense",
    doc="Fully connected layer. The model's last layer is a dense layer: the classifier.",
    args={
        "units": Arg((int,), check=positive, help="output size; the classifier defaults to `classes`"),
        "activation": ACT_ARG,
        "bias": Arg((bool,), True),
    }))


class PoolKind(Kind):
    def __init__(self, name, op, **kw):
        super().__init__(name, **kw)
        self.op = op

    def _ks(self, a):
        k = pair(a["size"])
        return k, pair(a["stride"]) if a["stride"] is not None else k

    def out_shape(self, a, ins):
        _need_image(self.name, ins[0])
        c, h, w = ins[0]
        k, s = self._ks(a)
        return (c, *_spatial(self.name, a, (h, w), k, s, a["padding"]))

    def build(self, a, ins, final=False):
        k, s = self._ks(a)
        return Pool(self.op, k, s, _padding_tuple(a["padding"], ins[0][1:], k, s))


for _name, _op, _abbrev in (("maxpool", "max", "pl"), ("avgpool", "avg", "Avg Pool")):
    register(PoolKind(
        _name, _op, primary="size", abbrev=_abbrev, prefix="pool" if _op == "max" else "avgpool",
        doc=f"{_op} pooling; stride defaults to the size.",
        args={
            "size": Arg((int, list), 2, check=pair_check),
            "stride": Arg((int, list, type(None)), None, check=lambda v: None if v is None else pair_check(v)),
            "padding": Arg((str, int), "valid", check=PAD_ARG.check),
        }))


class GlobalPoolKind(Kind):
    def out_shape(self, a, ins):
        _need_image(self.name, ins[0])
        return (ins[0][0],)

    def build(self, a, ins, final=False):
        if self.name == "globalavgpool":
            return Lambda(lambda x: x.mean(dim=(2, 3)), "mean over H, W")
        return Lambda(lambda x: x.amax(dim=(2, 3)), "max over H, W")


register(GlobalPoolKind("globalavgpool", abbrev="Avg Pool", prefix="gap",
                        doc="Global average pooling: (C, H, W) -> (C,)."))
register(GlobalPoolKind("globalmaxpool", abbrev="Max Pool", prefix="gmp",
                        doc="Global max pooling: (C, H, W) -> (C,)."))


class FlattenKind(Kind):
    def out_shape(self, a, ins):
        return (math.prod(ins[0]),)

    def build(self, a, ins, final=False):
        return Lambda(lambda x: x.flatten(1), "flatten")


register(FlattenKind("flatten", abbrev="flat", prefix="flatten", doc="(C, H, W) -> (C·H·W,)."))


class DropoutKind(Kind):
    def build(self, a, ins, final=False):
        return nn.Dropout(a["rate"])


register(DropoutKind("dropout", primary="rate", abbrev="do", prefix="dropout",
                     doc="Dropout with the given rate.",
                     args={"rate": Arg((float, int), check=unit_rate, help="drop probability")}))


class ActivationKind(Kind):
    def build(self, a, ins, final=False):
        fn = act_fn(a["fn"], final)
        return Lambda(fn if fn is not None else (lambda x: x), a["fn"])


register(ActivationKind("activation", primary="fn", abbrev="act", prefix="act",
                        doc="A stand-alone activation.",
                        args={"fn": Arg((str,), choices=tuple(ACTIVATIONS))}))


class ZeroPadKind(Kind):
    def out_shape(self, a, ins):
        _need_image("zeropad", ins[0])
        c, h, w = ins[0]
        p = pair(a["pad"])
        return (c, h + 2 * p[0], w + 2 * p[1])

    def build(self, a, ins, final=False):
        p = pair(a["pad"])
        return Lambda(lambda x: F.pad(x, (p[1], p[1], p[0], p[0])), f"zero pad {p}")


register(ZeroPadKind("zeropad", primary="pad", abbrev="pad", prefix="pad",
                     doc="Zero padding on H and W.",
                     args={"pad": Arg((int, list), check=pair_check)}))


class ConcatKind(Kind):
    def out_shape(self, a, ins):
        ranks = {len(s) for s in ins}
        if len(ranks) > 1:
            raise ShapeError("concat of image and flat inputs: " + ", ".join(map(fmt_shape, ins)))
        if len(ins[0]) == 3:
            spatial = {s[1:] for s in ins}
            if len(spatial) > 1:
                raise ShapeError("concat of different spatial sizes: " + ", ".join(map(fmt_shape, ins)))
            return (sum(s[0] for s in ins), *ins[0][1:])
        return (sum(s[0] for s in ins),)


register(ConcatKind("concat", abbrev="cat", prefix="concat", multi_input=True,
                    doc="Concatenate inputs on channels (or features)."))


class AddKind(Kind):
    def out_shape(self, a, ins):
        if len({tuple(s) for s in ins}) > 1:
            raise ShapeError("add of different shapes: " + ", ".join(map(fmt_shape, ins))
                             + "; use a 1×1 conv projection on the shortcut")
        return ins[0]

    def build(self, a, ins, final=False):
        fn = act_fn(a["activation"])
        return Lambda(fn, a["activation"]) if fn is not None else None


register(AddKind("add", abbrev="+", prefix="add", multi_input=True,
                 doc="Element-wise sum (residual connection), optionally followed by an activation.",
                 args={"activation": ACT_ARG}))


# Normalization: `norm` is a slot whose kind comes from the model's `norm:`; the fixed
# kinds are always that normalization.
NORM_ARGS = {
    "kernel": Arg((int,), None, check=lambda v: None if v is None or (v > 0 and v % 2) else "must be odd and positive",
                  help="GDN kernel size (gdn only)"),
    "trainable_exponents": Arg((bool,), None, help="GDN: train alpha and epsilon (gdn only)"),
    "eps": Arg((float,), None, help="bn/in: epsilon added to the variance (default 1e-3, Keras)"),
    "momentum": Arg((float,), None, check=lambda v: None if 0 <= v < 1 else "must be in [0, 1)",
                    help="bn: running-average momentum, Keras convention (default 0.99: "
                         "running = 0.99·running + 0.01·batch)"),
}


GDN_DEFAULT_KERNEL = 3


class NormKind(Kind):
    def out_shape(self, a, ins):
        norm = a.get("norm", self.name)
        if norm in ("in", "gdn", "instancenorm"):
            _need_image({"in": "instancenorm", "gdn": "gdn"}.get(norm, norm), ins[0])
        if norm == "gdn":
            k = a.get("kernel") or GDN_DEFAULT_KERNEL
            if min(ins[0][1:]) <= k // 2:
                raise ShapeError(f"gdn kernel {k}×{k} needs an input larger than "
                                 f"{k // 2}×{k // 2} for its reflect padding")
        return ins[0]


NORM_NAMES = {"bn": "batchnorm", "in": "instancenorm", "gdn": "gdn"}
NORM_CHOICES = ("none", "bn", "in", "gdn")
register(NormKind("norm", abbrev="norm", prefix="norm", args=dict(NORM_ARGS),
                  doc="A normalization slot: becomes the model's `norm` (none | bn | in | gdn)."))
for _short, _long in NORM_NAMES.items():
    register(NormKind(_long, abbrev=_short, prefix=_short, args=dict(NORM_ARGS),
                      doc=f"A fixed {_long} layer (not changed by `norm`)."))

COMMON_KEYS = {
    "name": "a unique layer name (used in state_dict keys, captions, `from`)",
    "from": "input layer name(s); default: the previous layer; `input` is the model input",
    "caption": "text drawn under the box in diagrams",
    "aux": "dense only: this layer is an auxiliary classifier with this loss weight",
}
