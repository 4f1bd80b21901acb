"""graphviz output: the model graph top to bottom, one cluster per block (a repeated block
drawn once, labelled × N), long networks in side-by-side columns so the drawing stays within
4:1; the TikZ diagram's colours; reuse edges styled apart."""

from __future__ import annotations

import math
import shutil
import subprocess

import graphviz
import networkx as nx

from normscope import norms
from normscope.errors import NormscopeError
from normscope.fileio import visible
from normscope.report.draw.collapse import Unit, collapse, data_graph, segments
from normscope.report.draw.layout import label_of, style_of
from normscope.report.draw.palette import DARK, hex_of
from normscope.report.draw.tikz import ToolMissing

SHAPES = {
    "input": "cds",
    "conv": "box3d",
    "convact": "box3d",
    "pool": "invtrapezium",
    "dropout": "box",
    "flatten": "parallelogram",
    "dense": "box",
    "pred": "doubleoctagon",
    "act": "cds",
    "pad": "box",
    "concat": "circle",
    "add": "circle",
    "reuse": "doublecircle",
    **{n.short: n.style.shape for n in norms.NORMS.values()},
}


def _add_norm_style(n: norms.NormSpec) -> None:
    SHAPES.setdefault(n.short, n.style.shape)  # (its colour: normscope.report.draw.palette)


norms.on_register(_add_norm_style)


def _fmt(shape) -> str:
    return "×".join(str(v) for v in shape)


def _comment(text: str) -> str:
    """One printable comment line (DOT comments end at a newline)."""
    return "".join(c if c.isprintable() else " " for c in str(text))[:200]


RANK_IN = 0.75  # a rank's height with its gap, inches (10 pt labels of two lines)
COLUMN_IN = 1.9  # a node's width with its gap, inches
TARGET = 1.3  # a column's height over the columns' width


def to_dot(
    g: nx.DiGraph, abbreviations: bool = False, title: str | None = None, expand: bool = False
) -> graphviz.Digraph:
    units: list[Unit] = []
    if not expand:
        g, units = collapse(g)
    # the model's name is data, not DOT: the graph's ID is fixed and the name goes in a
    # comment line, quoted by the graphviz library like every label (never string formatting)
    dot = graphviz.Digraph(
        name="model",
        comment=_comment(g.graph["name"]),
        graph_attr={
            "rankdir": "TB",
            "newrank": "true",
            "fontname": "Helvetica",
            "nodesep": "0.25",
            "ranksep": "0.3",
            **({"label": graphviz.escape(visible(title)), "labelloc": "t"} if title else {}),
        },
        node_attr={"fontname": "Helvetica", "fontsize": "10", "style": "filled", "penwidth": "0.8"},
        edge_attr={"fontname": "Helvetica", "fontsize": "9", "arrowsize": "0.7"},
    )
    column = _columns(g)
    tops = [min(ns, key=g.graph["order"].index) for _, ns in sorted(_by_column(column).items())]
    if len(tops) > 1:  # the columns' first layers side by side, left to right (declared first: dot keeps it)
        with dot.subgraph() as same:
            same.attr(rank="same")
            for n in tops:
                same.node(n)
            for a, b in zip(tops, tops[1:]):
                same.edge(a, b, style="invis")
    clusters = _clusters(g, units)
    for i, (label, members) in enumerate(clusters):
        with dot.subgraph(name=f"cluster_{i}") as sub:
            sub.attr(label=graphviz.escape(label), style="rounded,dashed", color="#777777", fontsize="10")
            for name in members:
                _node(sub, g, name, abbreviations)
    inside = {n for _, members in clusters for n in members}
    for name in g.graph["order"]:
        if name not in inside:
            _node(dot, g, name, abbreviations)
    _edges(dot, g, column)
    return dot


def _node(dot, g, name, abbreviations) -> None:
    node = g.nodes[name]
    style, band = style_of(node)
    if node["kind"] in ("concat", "add", "reuse"):
        style = node["kind"]
    label = label_of(name, node, abbreviations) if node["kind"] != "reuse" else "concat"
    attrs = {
        "shape": SHAPES.get(style, "box"),
        "fillcolor": hex_of(style) + (f";0.75:{hex_of('act')}" if band else ""),
        "label": graphviz.escape(visible(label)) + r"\n" + _fmt(node["shape"]),  # XML 1.0 allows no controls
        "tooltip": graphviz.escape(visible(f"{name} ({node['kind']})")),
    }
    if band:
        attrs["style"] = "filled"
        attrs["gradientangle"] = "0"
    if style in DARK:
        attrs["fontcolor"] = "white"
    if style == "dropout":
        attrs["style"] = "filled,dashed"
    if node.get("frozen"):
        attrs["style"] = attrs.get("style", "filled") + ",diagonals"
        attrs["tooltip"] += " frozen"
        attrs["penwidth"] = "2"
    dot.node(name, **attrs)


def _edges(dot, g, column) -> None:
    for u, v, kind in g.edges(data="kind"):
        if kind == "tap":
            norm = norms.BY_KIND[g.nodes[u]["kind"]]
            stats = ", ".join(s.text for s in norm.stats)
            copies = g.nodes[u].get("copies") or [u]
            size = sum(grp.size for n in copies for grp in g.graph["classifier"].of_layer(n))
            colour = norm.style.hex
            dot.edge(
                u,
                v,
                label=f"{stats} ({size})",
                color=colour,
                fontcolor=colour,
                style="dashed",
                penwidth="2",
                constraint="false",
                tooltip=f"{norm.display} statistics",
                _attributes={"class": "reuse"},
            )
        elif column.get(u, 0) != column.get(v, 0):
            dot.edge(u, v, constraint="false")  # on to the next column
        else:
            dot.edge(u, v)


def _clusters(g, units: list[Unit]) -> list[tuple[str, list[str]]]:
    """One cluster per block that branches (residual, inception, dense): a folded one says × N."""
    folded = {u.nodes[0]: u for u in units}
    data = data_graph(g)
    _, blocks, _ = segments(g, data)
    out = []
    for block in blocks:
        if len(block) < 2 or not any(g.nodes[n]["kind"] in ("add", "concat") for n in block):
            continue
        unit = folded.get(block[0])
        out.append((f"{block[-1]}  × {unit.times}" if unit else block[-1], block))
    return out


def _columns(g) -> dict[str, int]:
    """Column of each layer: the chain is cut between blocks so that columns stand about
    TARGET times as high as they are wide together."""
    data = data_graph(g)
    rank: dict[str, int] = {}
    for n in g.graph["order"]:
        rank[n] = 1 + max((rank[p] for p in data.predecessors(n)), default=-1)
    chain, blocks, _ = segments(g, data)
    widest = max(sum(1 for r in rank.values() if r == k) for k in set(rank.values()))
    total = max(rank.values()) + 1
    k = max(1, math.ceil((total * RANK_IN / (TARGET * widest * COLUMN_IN)) ** 0.5))
    column, col = {}, 0
    for i, block in enumerate(blocks):
        if block and rank[block[0]] >= (col + 1) * total / k and col < k - 1:
            col += 1
        for n in block:
            column[n] = col
    for n in g.graph["order"]:  # auxiliary heads: the column of their input
        if n not in column:
            column[n] = column[next(iter(data.predecessors(n)))]
    return column


def _by_column(column: dict[str, int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for n, c in column.items():
        out.setdefault(c, []).append(n)
    return out


def render_svg(dot: graphviz.Digraph, timeout: float = 60) -> bytes:
    exe = shutil.which("dot")
    if exe is None:
        raise ToolMissing("dot", "graphviz")
    try:
        proc = subprocess.run([exe, "-Tsvg"], input=dot.source.encode(), capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise NormscopeError(f"dot did not finish within {timeout:g} s") from None
    if proc.returncode != 0:
        raise NormscopeError("dot failed: " + proc.stderr.decode(errors="replace").strip())
    return proc.stdout
