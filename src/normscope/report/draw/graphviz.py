"""graphviz output: the model graph as a left-to-right dot graph, reuse edges styled apart."""

from __future__ import annotations

import shutil
import subprocess

import graphviz
import networkx as nx

from normscope import norms
from normscope.errors import NormscopeError
from normscope.report.draw.layout import label_of, style_of
from normscope.report.draw.tikz import ToolMissing

COLOURS = {
    "input": "#c4cdde",
    "conv": "#ffe296",
    "convact": "#ffe296",
    "pool": "#de5c4e",
    "dropout": "#d6d6d6",
    "flatten": "#baa0d6",
    "dense": "#96bee8",
    "pred": "#547ec8",
    "act": "#fac48c",
    "pad": "#f0f0f0",
    "concat": "#fafafa",
    "add": "#fafafa",
    "reuse": "#ffec78",
    **{n.short: n.style.hex for n in norms.NORMS.values()},
}
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
DARK = {"pool", "pred", *norms.NORMS}


def _add_norm_style(n: norms.NormSpec) -> None:
    COLOURS.setdefault(n.short, n.style.hex)
    SHAPES.setdefault(n.short, n.style.shape)
    DARK.add(n.short)


norms.on_register(_add_norm_style)


def _fmt(shape) -> str:
    return "×".join(str(v) for v in shape)


def _comment(text: str) -> str:
    """One printable comment line (DOT comments end at a newline)."""
    return "".join(c if c.isprintable() else " " for c in str(text))[:200]


def to_dot(g: nx.DiGraph, abbreviations: bool = False, title: str | None = None) -> graphviz.Digraph:
    # the model's name is data, not DOT: the graph's ID is fixed and the name goes in a
    # comment line, quoted by the graphviz library like every label (never string formatting)
    dot = graphviz.Digraph(
        name="model",
        comment=_comment(g.graph["name"]),
        graph_attr={
            "rankdir": "LR",
            "fontname": "Helvetica",
            "nodesep": "0.25",
            "ranksep": "0.35",
            **({"label": graphviz.escape(title), "labelloc": "t"} if title else {}),
        },
        node_attr={"fontname": "Helvetica", "fontsize": "10", "style": "filled", "penwidth": "0.8"},
        edge_attr={"fontname": "Helvetica", "fontsize": "9", "arrowsize": "0.7"},
    )
    for name in g.graph["order"]:
        node = g.nodes[name]
        style, _ = style_of(node)
        if node["kind"] in ("concat", "add", "reuse"):
            style = node["kind"]
        label = label_of(name, node, abbreviations) if node["kind"] != "reuse" else "concat"
        attrs = {
            "shape": SHAPES.get(style, "box"),
            "fillcolor": COLOURS.get(style, "white"),
            "label": graphviz.escape(label) + r"\n" + _fmt(node["shape"]),
            "tooltip": graphviz.escape(f"{name} ({node['kind']})"),
        }
        if style in DARK:
            attrs["fontcolor"] = "white"
        if style == "dropout":
            attrs["style"] = "filled,dashed"
        dot.node(name, **attrs)
    for u, v, kind in g.edges(data="kind"):
        if kind == "tap":
            norm = norms.BY_KIND[g.nodes[u]["kind"]]
            stats = ", ".join(s.text for s in norm.stats)
            size = sum(grp.size for grp in g.graph["classifier"].of_layer(u))
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
        else:
            dot.edge(u, v)
    return dot


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
