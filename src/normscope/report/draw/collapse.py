"""Repeated blocks drawn once: the model graph with every run of identical blocks (residual,
inception or dense blocks, repeated in a stage) reduced to its first, marked × N.

A block here is what lies between two consecutive layers every path from the input to the
classifier passes through; two blocks are identical when their layers have the same kinds,
settings, spatial sizes and wiring (channel counts may grow, as in a dense block). Only
blocks that branch and merge again are folded: a plain chain of layers stays as it is.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import networkx as nx

MERGES = ("add", "concat")
MAX_UNIT = 3  # a repeated unit spans at most this many blocks


@dataclass
class Unit:
    nodes: list[str]  # the layers drawn, in order
    times: int


def data_graph(g: nx.DiGraph) -> nx.DiGraph:
    data = nx.DiGraph()
    data.add_nodes_from(g.graph["order"])
    data.add_edges_from((u, v) for u, v, k in g.edges(data="kind") if k == "data")
    return data


def segments(g: nx.DiGraph, data: nx.DiGraph) -> tuple[list[str], list[list[str]], set[int]]:
    """The chain of layers every path passes through, the blocks between consecutive ones
    (each ending with its chain layer) and the blocks that feed an auxiliary head."""
    output = g.graph["output"]
    idom = nx.immediate_dominators(data, "input")
    chain = [output]
    while chain[-1] != "input":
        chain.append(idom[chain[-1]])
    chain.reverse()
    keep = nx.ancestors(data, output) | {output}
    pos = {n: i for i, n in enumerate(g.graph["order"])}
    ends = [pos[c] for c in chain]
    where, blocks = {}, [[] for _ in chain]
    for n in g.graph["order"]:  # a dominator comes before, its next one after, in topological order
        if n in keep:
            where[n] = bisect.bisect_left(ends, pos[n])
            blocks[where[n]].append(n)
    aux = {where[p] for n in g.graph["order"] if n not in keep for p in data.predecessors(n) if p in where}
    return chain, blocks, aux


def _signature(g: nx.DiGraph, block: list[str], entry: str):
    local = {n: i for i, n in enumerate(block)}
    sig = []
    for n in block:
        node = g.nodes[n]
        inputs = tuple(local.get(s, "entry" if s == entry else None) for s in node["inputs"])
        if None in inputs:
            return None  # wired to a layer outside the block and its entry: not foldable
        sig.append(
            (
                node["kind"],
                repr(sorted(node["args"].items())),
                tuple(node["shape"][1:]),
                node["role"],
                node["slot"],
                node.get("frozen", False),
                inputs,
            )
        )
    return tuple(sig)


def find_units(g: nx.DiGraph) -> list[tuple[list[list[str]], int]]:
    """Runs of identical units: (the blocks of the first unit and those of its repeats, times)."""
    data = data_graph(g)
    chain, blocks, aux = segments(g, data)
    sigs = [None] + [None if i in aux else _signature(g, blocks[i], chain[i - 1]) for i in range(1, len(blocks))]
    runs, i = [], 1
    while i < len(blocks):
        best = None
        for size in range(1, MAX_UNIT + 1):
            unit = sigs[i : i + size]
            if len(unit) < size or None in unit or not any(k in MERGES for s in unit for k, *_ in s):
                continue
            times = 1
            while sigs[i + times * size : i + (times + 1) * size] == unit:
                times += 1
            if times > 1 and (best is None or times * size > best[0] * best[1]):
                best = (times, size)
        if best:
            times, size = best
            runs.append((blocks[i : i + times * size], size, times))
            i += times * size
        else:
            i += 1
    return [(run, size, times) for run, size, times in runs]


def collapse(g: nx.DiGraph) -> tuple[nx.DiGraph, list[Unit]]:
    """A copy of `g` with each run of repeated units drawn once; every layer kept stands for
    its copies (node attribute `copies`: the names, its own first)."""
    runs = find_units(g)
    if not runs:
        return g, []
    d = g.copy()
    units, order = [], list(g.graph["order"])
    for blocks, size, times in runs:
        kept = [n for b in blocks[:size] for n in b]
        for k, n in enumerate(kept):
            d.nodes[n]["copies"] = [b_n for r in range(times) for b_n in _nth(blocks, size, r)[k : k + 1]]
        dropped = [n for b in blocks[size:] for n in b]
        exit_kept, exit_run = blocks[size - 1][-1], blocks[-1][-1]
        for succ in list(d.successors(exit_run)):
            attrs = d.edges[exit_run, succ]
            d.add_edge(exit_kept, succ, **attrs)
            d.nodes[succ]["inputs"] = [exit_kept if s == exit_run else s for s in d.nodes[succ]["inputs"]]
        d.remove_nodes_from(dropped)
        order = [n for n in order if n not in set(dropped)]
        units.append(Unit(kept, times))
    d.graph["order"] = order
    return d, units


def _nth(blocks: list[list[str]], size: int, r: int) -> list[str]:
    """The layers of the r-th repeat of a unit of `size` blocks, in order."""
    return [n for b in blocks[r * size : (r + 1) * size] for n in b]
