"""Geometry of a PlotNeuralNet-style diagram, computed from the model graph.

Nothing here knows LaTeX: the layout is boxes, balls and arrow paths in centimetres,
which tikz.py hands to a template. Conventions (the same in the TikZ styles):

- a box occupies x in [x, x + w] (channels), y in [y - h/2, y + h/2] (height) and
  z in [-d/2, d/2] (width); the z axis is drawn obliquely, ZX, ZY cm per unit, so the
  front face lies down-left and the box recedes up-right;
- a ball is a circle of radius r centred on (x, y);
- columns (x) follow the longest data path from the input, left to right; rows (y)
  stack parallel branches; a residual shortcut that skips boxes is drawn over them;
- reuse arrows leave the top of every tapped norm layer, climb to a lane of their own
  above the diagram and come down into the reuse ball (earliest layer outermost).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import networkx as nx

from normscope import norms
from normscope.report.draw.arrows import data_arrows, reuse_taps
from normscope.report.draw.boxes import GAP, MIN_WIDTH, ZX, Item, Layout, Mark, channels_cm, features_cm, spatial_cm
from normscope.report.draw.collapse import Unit, collapse, data_graph
from normscope.report.draw.geometry import item_rects
from normscope.report.draw.wrap import apply_lines, plan_lines

BALL_KINDS = {"concat", "add", "reuse"}
ATTACHED = {*norms.BY_KIND, "maxpool", "avgpool", "dropout", "activation", "zeropad"}
STYLE_NAMES = {
    "input": "input",
    "conv": "convolution",
    "convact": "convolution + activation",
    "pool": "pooling",
    "dropout": "dropout",
    "flatten": "flatten",
    "dense": "dense",
    "pred": "classifier",
    "act": "activation",
    "pad": "zero padding",
    **{n.short: n.display for n in norms.NORMS.values()},  # a norm layer's style is its short name
    "concat": "concatenation",
    "add": "addition",
    "reuse": "features + statistics",
}


def _add_norm_style(n: norms.NormSpec) -> None:
    ATTACHED.add(n.long)
    STYLE_NAMES.setdefault(n.short, n.display)


norms.on_register(_add_norm_style)


def style_of(node: dict) -> tuple[str, bool]:
    kind = node["kind"]
    if kind in norms.BY_KIND:
        return norms.BY_KIND[kind].short, False
    if node["role"] == "classifier":
        return "pred", False
    if kind == "conv":
        act = node["args"].get("activation")
        return ("convact", True) if act not in (None, "linear", "none") else ("conv", False)
    if kind == "dense":
        act = node["args"].get("activation")
        return "dense", act not in (None, "linear", "none")
    return {
        "maxpool": "pool",
        "avgpool": "pool",
        "adaptiveavgpool": "pool",
        "globalavgpool": "pool",
        "globalmaxpool": "pool",
        "activation": "act",
        "zeropad": "pad",
    }.get(kind, kind), False


def label_of(name: str, node: dict, abbreviations: bool) -> str:
    if node.get("caption"):
        return node["caption"]
    if node["kind"] == "input":
        return "input"
    return node["abbrev"] if abbreviations else name


def layout(g: nx.DiGraph, abbreviations: bool = False, expand: bool = False) -> Layout:
    """Boxes, balls and arrows of the model, in centimetres; repeated blocks drawn once with a
    × N mark unless `expand`, long networks wrapped onto lines."""
    units = []
    if not expand:
        g, units = collapse(g)
    order = g.graph["order"]
    data = data_graph(g)
    items = _items(g, order, abbreviations)
    for n in order:  # columns: longest data path from the input
        items[n].col = 1 + max((items[p].col for p in data.predecessors(n)), default=-1)
    rows = _assign_rows(g, data, order, items)
    _sizes(g, order, items, rows)
    _attach(g, data, order, items)
    _x_positions(g, items)
    _place_rows(items, rows)
    _caption_lines(g, order, items)
    arrows, skips = data_arrows(g, data, order, items)
    marks = [_mark(u, items) for u in units]
    tapped = {n for n in order if g.nodes[n]["tapped"]}
    lines = plan_lines(items, arrows, skips, marks, tapped)
    apply_lines(items, arrows, skips, marks, lines)
    taps = reuse_taps(g, order, items, lines, skips)
    seq = [items[n] for n in order]
    legend_order = list(STYLE_NAMES)
    styles = sorted(dict.fromkeys(it.style for it in seq), key=legend_order.index)
    reuse = next((it for it in seq if g.nodes[it.node]["kind"] == "reuse"), None)
    return Layout(
        name=g.graph["name"],
        items=sorted(seq, key=lambda it: (-it.y, it.x)),
        arrows=[a.path for a in arrows],
        skips=[s.path for s in skips],
        taps=taps,
        marks=marks,
        styles=styles,
        tap_styles=list(dict.fromkeys(t.style for t in taps)),
        reuse_size=g.nodes[reuse.node]["shape"][0] if reuse else None,
        frozen=any(it.frozen for it in seq),
    )


def _mark(unit: Unit, items: dict[str, Item]) -> Mark:
    """A bracket under the unit's lowest caption, "× N" under it."""
    mine = [items[n] for n in unit.nodes]
    rects = [r for it in mine for r in item_rects(it)]
    return Mark(
        nodes=unit.nodes,
        times=unit.times,
        x0=min(r.x0 for r in rects if r.kind in ("box", "ball")),
        x1=max(r.x1 for r in rects if r.kind in ("box", "ball")),
        y=min(r.y0 for r in rects) - 0.12,
    )


def _items(g, order, abbreviations) -> dict[str, Item]:
    items: dict[str, Item] = {}
    for n in order:
        node = g.nodes[n]
        style, band = style_of(node)
        it = Item(
            node=n,
            style=style,
            ball=node["kind"] in BALL_KINDS,
            band=band,
            label=label_of(n, node, abbreviations),
            size=str(node["shape"][0]),
            spatial=None,
            frozen=bool(node.get("frozen")),
        )
        if it.ball:
            it.r = 0.5 if node["kind"] != "add" else 0.35
            it.symbol = {"add": "plus"}.get(node["kind"], "concat")
            if node["kind"] == "reuse":
                it.label = ""
        items[n] = it
    return items


def _sizes(g, order, items, rows) -> None:
    """Smaller boxes when branches are stacked or the network is long."""
    biggest = max([max(g.nodes[n]["shape"][1:]) for n in order if len(g.nodes[n]["shape"]) == 3] or [1])
    stack = 1 + max(Counter(r.fork for r in rows[1:]).values(), default=0)
    ncols = 1 + max(it.col for it in items.values())
    top = max(2.4, (4.5 if stack < 3 else 3.0) * min(1.0, math.sqrt(40 / ncols)))
    for n in order:
        it, shape = items[n], g.nodes[n]["shape"]
        if it.ball:
            continue
        if len(shape) == 3:
            it.w = channels_cm(shape[0])  # every kind: thickness follows the channels
            it.h, it.d = spatial_cm(shape[1], biggest, top), spatial_cm(shape[2], biggest, top)
        else:
            it.w, it.h, it.d = MIN_WIDTH, features_cm(shape[0], top), 0.35


def _attach(g, data, order, items) -> None:
    """Which boxes touch their input: blocks such as [conv conv norm pool dropout] or
    [conv bn act conv bn]; a pool or dropout closes a block to further convolutions."""
    head, closed = {}, {}
    for n in order:
        it, node = items[n], g.nodes[n]
        kind = node["kind"]
        src = items[node["inputs"][0]] if len(node["inputs"]) == 1 else None
        if (
            src
            and not it.ball
            and not src.ball
            and src.row == it.row
            and src.col == it.col - 1
            and data.out_degree(src.node) == 1
            and src.style not in ("input", "flatten")
            and node["shape"][1:] == g.nodes[src.node]["shape"][1:]  # touching boxes are of one size
        ):
            src_kind = g.nodes[src.node]["kind"]
            it.attached = kind in ATTACHED or (
                kind == "conv"
                and head[src.node] == "conv"
                and not closed[src.node]
                and src_kind in ("conv", "activation", *norms.BY_KIND)
            )
        head[n] = head[src.node] if it.attached else kind
        it.block = items[src.node].block if it.attached else n
        closed[n] = kind in ("maxpool", "avgpool", "dropout") or (it.attached and closed[src.node])


def _x_positions(g, items) -> None:
    columns: dict[int, list[Item]] = {}
    for it in items.values():
        columns.setdefault(it.col, []).append(it)
    x, prev = 0.0, None
    for c in sorted(columns):
        col = columns[c]
        if prev is not None:
            if all(it.attached for it in col):
                gap = 0.0
            else:
                depth = max(it.d / 2 if not it.ball else 0 for it in prev)
                depth += max(it.d / 2 if not it.ball else 0 for it in col)
                gap = GAP + 0.15 + (-ZX) * depth
            x += max(it.w if not it.ball else 2 * it.r for it in prev) + gap
        for it in col:
            it.x = x + (it.r if it.ball else 0.0)
        prev = col
    for it in items.values():
        if not it.attached and not it.ball and len(g.nodes[it.node]["shape"]) == 3:
            it.spatial = tuple(g.nodes[it.node]["shape"][1:])


def _caption_lines(g, order, items) -> None:
    """Captions of a block of touching boxes hang from one line."""
    blocks: dict[str, list[Item]] = {}
    for n in order:
        it = items[n]
        blocks[n] = blocks[g.nodes[n]["inputs"][0]] if it.attached else []
        blocks[n].append(it)
    for block in {id(b): b for b in blocks.values()}.values():
        low = min(it.bottom for it in block)
        for it in block:
            it.cap_y = low


# ---------------------------------------------------------------- rows


@dataclass
class _Row:
    id: int
    parent: int | None
    fork: str | None = None
    side: int = 0  # -1 below the parent row, +1 above
    rank: int = 0  # 0 next to the parent, then outwards
    y: float = 0.0


def _assign_rows(g, data, order, items):
    rows = [_Row(0, None)]
    items[order[0]].row = 0
    output = g.graph["output"]
    keep = nx.ancestors(data, output) | {output}
    ipdom = nx.immediate_dominators(data.reverse(copy=False), output)  # where branches merge again

    def ancestors_rows(r):
        out = []
        while r is not None:
            out.append(r)
            r = rows[r].parent
        return out

    for n in order:
        it = items[n]
        preds = list(data.predecessors(n))
        if len(preds) > 1:  # merge: the deepest row common to all inputs
            common = set(ancestors_rows(items[preds[0]].row))
            for p in preds[1:]:
                common &= set(ancestors_rows(items[p].row))
            it.row = next(r for r in ancestors_rows(items[preds[0]].row) if r in common)
        children = [c for c in data.successors(n) if data.in_degree(c) == 1]
        if not children:
            continue
        merge = ipdom.get(n)

        def branch_len(c):
            if c not in keep:
                return -1  # auxiliary heads go aside
            if merge is None or merge == n:
                return len(nx.descendants(data, c))
            return len(nx.descendants(data, c) & nx.ancestors(data, merge))

        ranked = sorted(children, key=lambda c: -branch_len(c))  # stable: spec order on ties
        items[ranked[0]].row = it.row
        counts = {-1: 0, 1: 0}
        for i, c in enumerate(ranked[1:]):
            side = -1 if i % 2 == 0 else 1
            rows.append(_Row(len(rows), it.row, fork=n, side=side, rank=counts[side]))
            counts[side] += 1
            items[c].row = rows[-1].id
    return rows


def _place_rows(items, rows):
    members: dict[int, list[Item]] = {}
    for it in items.values():
        members.setdefault(it.row, []).append(it)
    for row in rows[1:]:
        mine = members.get(row.id, [])
        if not mine:
            continue
        lo, hi = min(it.col for it in mine) - 1, max(it.col for it in mine) + 1
        sibling = next((r for r in rows if r.fork == row.fork and r.side == row.side and r.rank == row.rank - 1), None)
        pred = sibling or rows[row.parent]
        near = [it for it in members.get(pred.id, []) if lo <= it.col <= hi] or members.get(pred.id, [])
        up = max(it.top - it.y for it in mine)
        down = max(it.y - it.bottom + it.caption_len for it in mine)
        pred_up = max(it.top - pred.y for it in near)
        pred_down = max(pred.y - it.bottom + it.caption_len for it in near)
        row.y = pred.y - pred_down - up - 0.4 if row.side < 0 else pred.y + pred_up + down + 0.4
        for it in mine:
            it.y = row.y
    # rows are processed in creation order, so a nested row already sees its parent's y
