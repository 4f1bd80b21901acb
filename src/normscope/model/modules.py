"""The torch side of the layer kinds: one module per graph node.

Shapes and padding are computed by `normscope.model.kinds`; normalization layers come
from the class named in their `normscope.norms` entry.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from normscope import norms
from normscope.keys import pair
from normscope.model.kinds import effective_kernel, padding4, pool_window
from normscope.norms.build import build_layer, layer_class

ACTIVATIONS: dict[str, Callable | None] = {
    "relu": F.relu,
    "relu6": F.relu6,
    "leaky_relu": F.leaky_relu,
    "elu": F.elu,
    "selu": F.selu,
    "gelu": F.gelu,
    "silu": F.silu,
    "swish": F.silu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "softmax": None,
    "linear": None,
    "none": None,
}


def act_fn(name: str | None, final: bool = False):
    """The callable for an activation name; softmax on the classifier is left to the loss."""
    if name is None:
        return None
    if name == "softmax" and not final:
        return lambda x: F.softmax(x, dim=1)
    return ACTIVATIONS[name]


class Conv(nn.Conv2d):
    """Conv2d with explicit (possibly asymmetric) zero padding and an activation."""

    def __init__(self, cin, cout, kernel, stride, pad4, bias, groups, dilation, act):
        super().__init__(cin, cout, kernel, stride=stride, padding=0, bias=bias, groups=groups, dilation=dilation)
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
    def __init__(self, op, k, s, pad4, ceil=False):
        super().__init__()
        self.op, self.k, self.s, self.pad4, self.ceil = op, k, s, tuple(pad4), ceil

    def forward(self, x):
        if self.ceil:  # torch's rule for the last window needs torch's own (symmetric) padding
            return F.max_pool2d(x, self.k, self.s, padding=(self.pad4[2], self.pad4[0]), ceil_mode=True)
        if self.op == "max":
            if any(self.pad4):  # -inf so that padding never wins
                x = F.pad(x, self.pad4, value=float("-inf"))
            return F.max_pool2d(x, self.k, self.s)
        if not any(self.pad4):
            return F.avg_pool2d(x, self.k, self.s)
        # Keras averages over the window's positions inside the map only: the windows' sums
        # over the zero-padded input divided by how many real positions each window covers
        # (the same pooling of a padded map of ones); padding may be asymmetric ('same').
        sums = F.avg_pool2d(F.pad(x, self.pad4), self.k, self.s)
        ones = x.new_ones((1, 1, *x.shape[2:]))
        return sums / F.avg_pool2d(F.pad(ones, self.pad4), self.k, self.s)

    def extra_repr(self):
        return f"{self.op}, kernel={self.k}, stride={self.s}"


def _conv(a, ins, final):
    c, h, w = ins[0]
    s = pair(a["stride"])
    return Conv(
        c,
        a["filters"],
        pair(a["kernel"]),
        s,
        padding4(a["padding"], (h, w), effective_kernel(a), s),
        a["bias"],
        a["groups"],
        pair(a["dilation"]),
        act_fn(a["activation"]),
    )


def _pool(op):
    def build(a, ins, final):
        k, s = pool_window(a)
        return Pool(op, k, s, padding4(a["padding"], ins[0][1:], k, s), a.get("ceil", False))

    return build


def _activation(a, ins, final):
    fn = act_fn(a["fn"], final)
    return Lambda(fn if fn is not None else (lambda x: x), a["fn"])


def _zeropad(a, ins, final):
    p = pair(a["pad"])
    return Lambda(lambda x: F.pad(x, (p[1], p[1], p[0], p[0])), f"zero pad {p}")


def _add(a, ins, final):
    fn = act_fn(a["activation"])
    return Lambda(fn, a["activation"]) if fn is not None else None


BUILDERS: dict[str, Callable] = {
    "conv": _conv,
    "dense": lambda a, ins, final: Dense(ins[0][0], a["units"], a["bias"], act_fn(a["activation"], final)),
    "maxpool": _pool("max"),
    "avgpool": _pool("avg"),
    "adaptiveavgpool": lambda a, ins, final: nn.AdaptiveAvgPool2d(pair(a["size"])),
    "globalavgpool": lambda a, ins, final: Lambda(lambda x: x.mean(dim=(2, 3)), "mean over H, W"),
    "globalmaxpool": lambda a, ins, final: Lambda(lambda x: x.amax(dim=(2, 3)), "max over H, W"),
    "flatten": lambda a, ins, final: Lambda(lambda x: x.flatten(1), "flatten"),
    "dropout": lambda a, ins, final: nn.Dropout(a["rate"]),
    "activation": _activation,
    "zeropad": _zeropad,
    "add": _add,
}


def norm_layer_class(norm: norms.NormSpec) -> type[nn.Module]:
    """The layer class a table entry names (the class, or "package.module:Class")."""
    return layer_class(norm)


def build_module(kind: str, args: dict, ins: list[tuple], final: bool = False) -> nn.Module | None:
    """The module of one node; None for kinds the model runs inline (concat, reuse)."""
    norm = norms.norm_of_kind(kind)
    if norm is not None:
        return build_layer(norm, ins[0][0], norm.resolve(args))
    builder = BUILDERS.get(kind)
    return builder(args, ins, final) if builder else None
