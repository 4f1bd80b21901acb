"""Forward FLOPs per image, read from the graph (no torch).

Conventions (docs/dsl.md, "FLOPs"): a multiply-add counts 2, as `torch.utils.flop_counter`
counts; convolutions and dense layers count exactly what `FlopCounterMode` counts on the
built model (the products and sums of the kernel, not the bias or the activation).
Normalizations count their elementwise work in evaluation mode, one FLOP per arithmetic
operation on a value, per the formulas below; GDN also its k×k channel convolution on
|z|^α. The statistics a tapped layer passes to the classifier count where computing them
is extra work. Pooling, activations, dropout, padding, flatten, concatenation and add count
0, as `FlopCounterMode` counts them.

With n = C·H·W values of the normalization's input (C for a flat one) and C channels:

- BatchNorm (evaluation): (x − μ)·s + β, 3 per value, and s = γ/√(σ² + ε), 3 per channel:
  3n + 3C; reused with `reuse_stats: image`: + 4n for each image's means and variances.
- InstanceNorm: its statistics, 4 per value (sum; subtract the mean, square, sum), then the
  same normalization: 7n + 3C.
- GroupNorm with G groups: 4n for the statistics, 3n to normalize, 2G for √(σ² + ε) per
  group and C for γ per channel: 7n + 2G + C.
- GDN with a k×k kernel on C×H×W: the convolution 2·H·W·C²·k², then |z|, ^α, + β, ^ε and
  z / D, 5 per value: 2·H·W·C²·k² + 5n; reused: + n for the denominator's mean over H, W.
"""

from __future__ import annotations

import math
from typing import Callable

import networkx as nx

from normscope import norms
from normscope.keys import pair


def conv_flops(args: dict, ins: list[tuple], out: tuple) -> int:
    """2 · output values · (input channels per group) · kh · kw, as FlopCounterMode counts."""
    kh, kw = pair(args["kernel"])
    return 2 * math.prod(out) * (ins[0][0] // args["groups"]) * kh * kw


def dense_flops(args: dict, ins: list[tuple], out: tuple) -> int:
    return 2 * ins[0][0] * args["units"]


def _values(shape: tuple) -> int:
    return math.prod(shape)


def _bn(shape: tuple, options: dict, tapped: bool) -> int:
    n, c = _values(shape), shape[0]
    reused = 4 * n if tapped and options["reuse_stats"] == "image" else 0
    return 3 * n + 3 * c + reused


def _in(shape: tuple, options: dict, tapped: bool) -> int:
    n, c = _values(shape), shape[0]
    return 7 * n + 3 * c


def _gn(shape: tuple, options: dict, tapped: bool) -> int:
    n, c = _values(shape), shape[0]
    groups = options["groups"] or norms.default_groups(c)
    return 7 * n + 2 * groups + c


def _gdn(shape: tuple, options: dict, tapped: bool) -> int:
    n, (c, h, w) = _values(shape), shape
    k = options["kernel"]
    return 2 * h * w * c * c * k * k + 5 * n + (n if tapped else 0)


# FLOPs of each normalization, by its short name in the norms table: (input shape, options, tapped)
NORM_FLOPS: dict[str, Callable[[tuple, dict, bool], int]] = {"bn": _bn, "in": _in, "gn": _gn, "gdn": _gdn}

# FLOPs of the other kinds that count: (args, input shapes, output shape)
KIND_FLOPS: dict[str, Callable[[dict, list[tuple], tuple], int]] = {"conv": conv_flops, "dense": dense_flops}


def node_flops(node: dict) -> int:
    """FLOPs per image of one graph node."""
    norm = norms.norm_of_kind(node["kind"])
    if norm is not None:
        return NORM_FLOPS[norm.short](node["in_shapes"][0], norm.options(node["args"]), bool(node["tapped"]))
    rule = KIND_FLOPS.get(node["kind"])
    return rule(node["args"], node["in_shapes"], node["shape"]) if rule else 0


def layer_flops(graph: nx.DiGraph) -> dict[str, int]:
    """Layer name -> forward FLOPs per image, in network order."""
    return {name: node_flops(graph.nodes[name]) for name in graph.graph["order"]}


def total_flops(graph: nx.DiGraph) -> int:
    return sum(layer_flops(graph).values())
