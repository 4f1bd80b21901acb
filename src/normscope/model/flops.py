"""Forward FLOPs per image, read from the graph (no torch).

Conventions (docs/dsl.md, "FLOPs"): a multiply-add counts 2, as `torch.utils.flop_counter`
counts; convolutions and dense layers count exactly what `FlopCounterMode` counts on the
built model (the products and sums of the kernel, not the bias or the activation).
Normalizations count their elementwise work in evaluation mode, one FLOP per arithmetic
operation on a value, by the `flops` rule of their entry in the norms table (the formulas
are in `normscope.norms.builtin`); a normalization without one (a plugin's) is "not
counted": its layers' FLOPs are None. The statistics a tapped layer passes to the
classifier count where computing them is extra work. Pooling, activations, dropout,
padding, flatten, concatenation and add count 0, as `FlopCounterMode` counts them.
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


# FLOPs of the other kinds that count: (args, input shapes, output shape)
KIND_FLOPS: dict[str, Callable[[dict, list[tuple], tuple], int]] = {"conv": conv_flops, "dense": dense_flops}


def node_flops(node: dict) -> int | None:
    """FLOPs per image of one graph node; None for a normalization without a FLOPs rule."""
    norm = norms.norm_of_kind(node["kind"])
    if norm is not None:
        if norm.flops is None:
            return None
        return norm.flops(node["in_shapes"][0], norm.resolve(node["args"]), bool(node["tapped"]))
    rule = KIND_FLOPS.get(node["kind"])
    return rule(node["args"], node["in_shapes"], node["shape"]) if rule else 0


def layer_flops(graph: nx.DiGraph) -> dict[str, int | None]:
    """Layer name -> forward FLOPs per image, in network order."""
    return {name: node_flops(graph.nodes[name]) for name in graph.graph["order"]}


def total_flops(graph: nx.DiGraph) -> int:
    """The counted layers' FLOPs (see `uncounted` for the layers left out)."""
    return sum(f for f in layer_flops(graph).values() if f is not None)


def uncounted(graph: nx.DiGraph) -> list[str]:
    """Layers whose FLOPs are not counted (normalizations without a FLOPs rule)."""
    return [name for name, f in layer_flops(graph).items() if f is None]
