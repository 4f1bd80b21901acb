"""What each layer kind means, without torch: its output shape, its parameter count in the
Keras convention, and its box caption in the thesis' diagrams.

The keys a kind takes are the language's (`normscope.spec.kinds`); the module a kind
builds is torch's (`normscope.model.modules`). Normalization kinds read the one table in
`normscope.norms`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from normscope import norms
from normscope.keys import pair


class ShapeError(ValueError):
    """A layer's inputs do not fit it; the graph adds file, line and layer."""


def fmt_shape(shape: tuple) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def need_image(kind: str, shape: tuple) -> None:
    if len(shape) != 3:
        raise ShapeError(
            f"{kind} needs an image input (C, H, W), got {fmt_shape(shape)}"
            + ("; it comes after a flatten or dense" if len(shape) == 1 else "")
        )


def same_pad(size: int, k: int, s: int) -> tuple[int, int]:
    out = math.ceil(size / s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def spatial(kind: str, hw: tuple[int, int], k: tuple, s: tuple, pad, ceil: bool = False) -> tuple[int, int]:
    """Output H, W of a sliding window (kernel k, stride s, padding 'same'/'valid'/n); `ceil`
    rounds up as torch's ceil_mode does (a last window that would start in the padding is dropped)."""
    out = []
    for size, kk, ss in zip(hw, k, s):
        if pad == "same":
            out.append(math.ceil(size / ss))
            continue
        p = 0 if pad == "valid" else pad
        if kk > size + 2 * p:
            raise ShapeError(
                f"{kind} kernel {k[0]}×{k[1]} is larger than its "
                f"{hw[0]}×{hw[1]} input" + (" (padding valid)" if pad == "valid" else "")
            )
        n = (size + 2 * p - kk + (ss - 1 if ceil else 0)) // ss + 1
        if ceil and (n - 1) * ss >= size + p:
            n -= 1
        out.append(n)
    return tuple(out)


def padding4(pad, hw, k, s) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) zero padding, TensorFlow-style for 'same'."""
    if pad == "valid":
        return (0, 0, 0, 0)
    if pad == "same":
        top, bottom = same_pad(hw[0], k[0], s[0])
        left, right = same_pad(hw[1], k[1], s[1])
        return (left, right, top, bottom)
    return (pad, pad, pad, pad)


def effective_kernel(args: dict) -> tuple[int, int]:
    return tuple(d * (k - 1) + 1 for k, d in zip(pair(args["kernel"]), pair(args["dilation"])))


def pool_window(args: dict) -> tuple[tuple[int, int], tuple[int, int]]:
    k = pair(args["size"])
    return k, pair(args["stride"]) if args["stride"] is not None else k


@dataclass(frozen=True)
class Kind:
    """A kind's meaning. Subclasses override `out_shape` and `params`."""

    name: str
    abbrev: str = ""  # the thesis' box caption: lower case, at most 4 characters, no spaces

    def out_shape(self, a: dict, ins: list[tuple]) -> tuple:
        return ins[0]

    def params(self, a: dict, ins: list[tuple], out: tuple) -> tuple[int, int]:
        """(trainable, non-trainable) weights, Keras convention."""
        return 0, 0


class Conv(Kind):
    def out_shape(self, a, ins):
        need_image("conv", ins[0])
        c, h, w = ins[0]
        if c % a["groups"] or a["filters"] % a["groups"]:
            raise ShapeError(f"groups={a['groups']} must divide input channels {c} and filters")
        return (a["filters"], *spatial("conv", (h, w), effective_kernel(a), pair(a["stride"]), a["padding"]))

    def params(self, a, ins, out):
        kh, kw = pair(a["kernel"])
        return kh * kw * (ins[0][0] // a["groups"]) * a["filters"] + (a["filters"] if a["bias"] else 0), 0


class Dense(Kind):
    def out_shape(self, a, ins):
        if len(ins[0]) != 1:
            raise ShapeError(
                f"dense needs a flat input, got {fmt_shape(ins[0])}; add a flatten or globalavgpool before it"
            )
        return (a["units"],)

    def params(self, a, ins, out):
        return ins[0][0] * a["units"] + (a["units"] if a["bias"] else 0), 0


class Pool(Kind):
    def out_shape(self, a, ins):
        need_image(self.name, ins[0])
        c, h, w = ins[0]
        k, s = pool_window(a)
        if a.get("ceil") and a["padding"] == "same":
            raise ShapeError(f"{self.name} ceil needs an integer or 'valid' padding, not 'same'")
        return (c, *spatial(self.name, (h, w), k, s, a["padding"], a.get("ceil", False)))


class AdaptivePool(Kind):
    """Average pooling to a fixed output size (torch's AdaptiveAvgPool2d); no weights."""

    def out_shape(self, a, ins):
        need_image(self.name, ins[0])
        return (ins[0][0], *pair(a["size"]))


class GlobalPool(Kind):
    def out_shape(self, a, ins):
        need_image(self.name, ins[0])
        return (ins[0][0],)


class Flatten(Kind):
    def out_shape(self, a, ins):
        return (math.prod(ins[0]),)


class ZeroPad(Kind):
    def out_shape(self, a, ins):
        need_image("zeropad", ins[0])
        c, h, w = ins[0]
        p = pair(a["pad"])
        return (c, h + 2 * p[0], w + 2 * p[1])


class Concat(Kind):
    def out_shape(self, a, ins):
        if len({len(s) for s in ins}) > 1:
            raise ShapeError("concat of image and flat inputs: " + ", ".join(map(fmt_shape, ins)))
        if len(ins[0]) == 3:
            if len({s[1:] for s in ins}) > 1:
                raise ShapeError("concat of different spatial sizes: " + ", ".join(map(fmt_shape, ins)))
            return (sum(s[0] for s in ins), *ins[0][1:])
        return (sum(s[0] for s in ins),)


class Add(Kind):
    def out_shape(self, a, ins):
        if len({tuple(s) for s in ins}) > 1:
            raise ShapeError(
                "add of different shapes: "
                + ", ".join(map(fmt_shape, ins))
                + "; use a 1×1 conv projection on the shortcut"
            )
        return ins[0]


class Normalization(Kind):
    """A fixed normalization kind (`batchnorm`, ...): everything comes from its table entry."""

    def out_shape(self, a, ins):
        norm = norms.norm_of_kind(self.name)
        if norm.image_only:
            need_image(norm.long, ins[0])
        problem = norm.shape_problem(ins[0], a)
        if problem:
            raise ShapeError(problem)
        return ins[0]

    def params(self, a, ins, out):
        from normscope.norms.build import layer_params  # torch only for a norm without a params rule

        norm = norms.norm_of_kind(self.name)
        return layer_params(norm, out[0], norm.resolve(a))


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Conv("conv", "cnv"),
        Dense("dense", "fc"),
        Pool("maxpool", "pl"),
        Pool("avgpool", "avg"),
        AdaptivePool("adaptiveavgpool", "apl"),
        GlobalPool("globalavgpool", "gap"),
        GlobalPool("globalmaxpool", "gmp"),
        Flatten("flatten", "flat"),
        Kind("dropout", "do"),
        Kind("activation", "act"),
        ZeroPad("zeropad", "pad"),
        Concat("concat", "cat"),
        Add("add", "+"),
    )
}


def _add_norm_kind(norm: norms.NormSpec) -> None:
    KINDS[norm.long] = Normalization(norm.long, norm.short)


norms.on_register(_add_norm_kind)
