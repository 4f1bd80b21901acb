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

ZX, ZY = -0.4, -0.3          # the z unit vector, in cm (also set in the TikZ picture)
GAP = 0.55                   # visible length of an arrow between two boxes
CHAR = 0.15                   # estimated width of a caption character (\footnotesize), cm
BALL_KINDS = {"concat", "add", "reuse"}
THIN = {"act": 0.45, "pad": 0.45, "dropout": 0.6}     # narrower than the channel count says
ATTACHED = {*norms.BY_KIND, "maxpool", "avgpool", "dropout", "activation", "zeropad"}
STYLE_NAMES = {
    "input": "input", "conv": "convolution", "convact": "convolution + activation",
    "pool": "pooling", "dropout": "dropout", "flatten": "flatten", "dense": "dense",
    "pred": "classifier", "act": "activation", "pad": "zero padding",
    **{n.short: n.display for n in norms.NORMS.values()},           # a norm layer's style is its short name
    "concat": "concatenation", "add": "addition", "reuse": "features + statistics",
}


@dataclass
class Item:
    node: str
    style: str                   # colour key, see STYLE_NAMES
    ball: bool
    label: str                   # caption text (plain; escaped by the template)
    size: str                    # channels or features, e.g. "16"
    spatial: tuple | None        # (H, W) when the box starts a block
    x: float = 0.0
    y: float = 0.0
    w: float = 0.0
    h: float = 0.0
    d: float = 0.0
    r: float = 0.0
    band: bool = False
    symbol: str = ""
    col: int = 0
    row: int = 0
    attached: bool = False
    cap_y: float | None = None   # common caption line of a block of touching boxes

    # projected extents and anchor points (2-D, cm)
    @property
    def left(self):
        return self.x - self.r if self.ball else self.x + ZX * self.d / 2

    @property
    def right(self):
        return self.x + self.r if self.ball else self.x + self.w - ZX * self.d / 2

    @property
    def top(self):
        return self.y + self.r if self.ball else self.y + self.h / 2 - ZY * self.d / 2

    @property
    def bottom(self):
        return self.y - self.r if self.ball else self.y - self.h / 2 + ZY * self.d / 2

    def east(self):
        """Where an outgoing arrow starts: the back edge of the right face at mid height."""
        return (self.right, self.y)

    def west(self):
        """Where an incoming arrow ends: the left edge of the front face at mid height."""
        return (self.left, self.y)

    def top_back(self):
        """The middle of the back edge of the top face (balls: right of the top)."""
        if self.ball:
            return (self.x + 0.45 * self.r, self.y + math.sqrt(1 - 0.45 ** 2) * self.r)
        return (self.x + self.w / 2 - ZX * self.d / 2, self.top)

    def caption_at(self):
        """Under the middle of the front face's bottom edge (balls: under the ball)."""
        if self.ball:
            return (self.x, self.bottom)
        return (self.x + self.w / 2 + ZX * self.d / 2, self.bottom if self.cap_y is None else self.cap_y)

    @property
    def caption_len(self):
        text = len(self.label) + len(self.size) + 3
        return (0.7 if self.ball else 0.25 + CHAR * text)


@dataclass
class Tap:
    """One reuse arrow: up from a norm layer, along its lane, down into the reuse ball."""
    source: str
    style: str                   # the normalization's short name (its entry in normscope.norms)
    size: int
    start: tuple
    lane: float
    drop_x: float
    end_y: float


@dataclass
class Layout:
    name: str
    items: list[Item]
    arrows: list[list[tuple]]    # data arrows as 2-D polylines
    skips: list[list[tuple]]     # residual shortcuts drawn over the boxes
    taps: list[Tap]
    styles: list[str]            # styles used, in legend order
    tap_styles: list[str]
    reuse_size: int | None


def spatial_cm(v: int, biggest: int, top: float = 4.5) -> float:
    """Height/depth of a box: square-root scale, the model's biggest map `top` cm."""
    return max(0.55, top * math.sqrt(v / biggest))


def channels_cm(c: int) -> float:
    """Width of a box: log scale, so 3 channels are 0.4 cm and 4096 stay under 2 cm."""
    return 0.22 + 0.12 * math.log2(max(c, 2))


def features_cm(f: int, top: float = 4.5) -> float:
    """Height of a flat vector: log scale, at most `top` cm."""
    return min(top, 0.6 + 0.42 * math.log2(max(f, 2)))


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
    return {"maxpool": "pool", "avgpool": "pool", "globalavgpool": "pool", "globalmaxpool": "pool",
            "activation": "act", "zeropad": "pad"}.get(kind, kind), False


def label_of(name: str, node: dict, abbreviations: bool) -> str:
    if node.get("caption"):
        return node["caption"]
    if node["kind"] == "input":
        return "input"
    return node["abbrev"] if abbreviations else name


def layout(g: nx.DiGraph, abbreviations: bool = False) -> Layout:
    """Boxes, balls and arrows of the model, in centimetres."""
    order = g.graph["order"]
    data = nx.DiGraph()
    data.add_nodes_from(order)
    data.add_edges_from((u, v) for u, v, k in g.edges(data="kind") if k == "data")
    items = _items(g, order, abbreviations)
    for n in order:              # columns: longest data path from the input
        items[n].col = 1 + max((items[p].col for p in data.predecessors(n)), default=-1)
    rows = _assign_rows(g, data, order, items)
    _sizes(g, order, items, rows)
    _attach(g, data, order, items)
    _x_positions(g, items)
    _place_rows(items, rows)
    _caption_lines(g, order, items)
    arrows, skips = _data_arrows(g, data, order, items)
    taps = _taps(g, order, items, skips)
    seq = [items[n] for n in order]
    legend_order = list(STYLE_NAMES)
    styles = sorted(dict.fromkeys(it.style for it in seq), key=legend_order.index)
    reuse = next((it for it in seq if g.nodes[it.node]["kind"] == "reuse"), None)
    return Layout(name=g.graph["name"], items=sorted(seq, key=lambda it: (-it.y, it.x)), arrows=arrows,
                  skips=skips, taps=taps, styles=styles,
                  tap_styles=list(dict.fromkeys(t.style for t in taps)),
                  reuse_size=g.nodes[reuse.node]["shape"][0] if reuse else None)


def _items(g, order, abbreviations) -> dict[str, Item]:
    items: dict[str, Item] = {}
    for n in order:
        node = g.nodes[n]
        style, band = style_of(node)
        it = Item(node=n, style=style, ball=node["kind"] in BALL_KINDS, band=band,
                  label=label_of(n, node, abbreviations), size=str(node["shape"][0]), spatial=None)
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
            it.w = THIN.get(it.style, 1.0) * channels_cm(shape[0])
            it.h, it.d = spatial_cm(shape[1], biggest, top), spatial_cm(shape[2], biggest, top)
        else:
            it.w, it.h, it.d = 0.35, features_cm(shape[0], top), 0.35


def _attach(g, data, order, items) -> None:
    """Which boxes touch their input: blocks such as [conv conv norm pool dropout] or
    [conv bn act conv bn]; a pool or dropout closes a block to further convolutions."""
    head, closed = {}, {}
    for n in order:
        it, node = items[n], g.nodes[n]
        kind = node["kind"]
        src = items[node["inputs"][0]] if len(node["inputs"]) == 1 else None
        if src and not it.ball and not src.ball and src.row == it.row and src.col == it.col - 1 \
                and data.out_degree(src.node) == 1 and src.style not in ("input", "flatten"):
            src_kind = g.nodes[src.node]["kind"]
            it.attached = kind in ATTACHED or (kind == "conv" and head[src.node] == "conv" and not closed[src.node]
                                               and src_kind in ("conv", "activation", *norms.BY_KIND))
        head[n] = head[src.node] if it.attached else kind
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
    side: int = 0                # -1 below the parent row, +1 above
    rank: int = 0                # 0 next to the parent, then outwards
    y: float = 0.0


def _assign_rows(g, data, order, items):
    rows = [_Row(0, None)]
    items[order[0]].row = 0
    output = g.graph["output"]
    keep = nx.ancestors(data, output) | {output}
    ipdom = nx.immediate_dominators(data.reverse(copy=False), output)   # where branches merge again

    def ancestors_rows(r):
        out = []
        while r is not None:
            out.append(r)
            r = rows[r].parent
        return out

    for n in order:
        it = items[n]
        preds = list(data.predecessors(n))
        if len(preds) > 1:       # merge: the deepest row common to all inputs
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
                return -1        # auxiliary heads go aside
            if merge is None or merge == n:
                return len(nx.descendants(data, c))
            return len(nx.descendants(data, c) & nx.ancestors(data, merge))

        ranked = sorted(children, key=lambda c: -branch_len(c))   # stable: spec order on ties
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
        sibling = next((r for r in rows if r.fork == row.fork and r.side == row.side and r.rank == row.rank - 1),
                       None)
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


# ---------------------------------------------------------------- arrows

def _data_arrows(g, data, order, items):
    arrows, skips = [], []
    for v in order:
        dst = items[v]
        srcs = g.nodes[v]["inputs"]
        latest = max((items[s].col for s in srcs), default=0)
        for s in srcs:
            src = items[s]
            if dst.attached:
                continue
            (sx, sy), (ex, ey) = src.east(), dst.west()
            if src.row == dst.row and dst.ball and len(srcs) > 1 and src.col < latest:
                skips.append((src, dst))
                continue
            if abs(sy - ey) < 1e-6:
                arrows.append([(sx, sy), (ex, ey)])
            else:                # across, up or down next to the fork or the merge, across
                turn = min(0.35, (ex - sx) / 2)
                mid = ex - turn if dst.ball else sx + turn
                arrows.append([(sx, sy), (mid, sy), (mid, ey), (ex, ey)])
    # residual shortcuts: over the boxes between source and target, nested if they overlap
    drawn = []
    for src, dst in skips:
        (sx, sy) = src.top_back()
        between = [it for it in items.values() if it.row == src.row and src.x <= it.x <= dst.x and it is not dst]
        level = max(it.top for it in between) + 0.45
        for other in drawn:
            if other[0][0] < dst.x and other[-1][0] > sx:
                level = max(level, other[1][1] + 0.3)
        tx = dst.x - 0.45 * dst.r
        path = [(sx, sy), (sx, level), (tx, level), (tx, dst.y + math.sqrt(dst.r ** 2 - (tx - dst.x) ** 2))]
        drawn.append(path)
    return arrows, drawn


def _taps(g, order, items, skips):
    sources = [n for n in order if g.nodes[n]["tapped"]]
    if not sources:
        return []
    ball = items["reuse"]
    ceiling = max([it.top for it in items.values()] + [p[1][1] for p in skips])
    ceiling = max(ceiling, max(it.top + 0.55 for it in items.values() if it.spatial))   # spatial labels
    n = len(sources)
    spacing = 0.32 if n <= 8 else max(0.12, 2.6 / n)
    taps = []
    for i, name in enumerate(sources):
        node = g.nodes[name]
        style = norms.BY_KIND[node["kind"]].short
        off = 0.0 if n == 1 else ball.r * 0.8 * (1 - 2 * i / (n - 1))
        drop_x = ball.x + off
        size = sum(grp.size for grp in g.graph["classifier"].of_layer(name))
        taps.append(Tap(source=name, style=style, size=size, start=items[name].top_back(),
                        lane=ceiling + 0.5 + (n - 1 - i) * spacing, drop_x=drop_x,
                        end_y=ball.y + math.sqrt(max(ball.r ** 2 - off ** 2, 0.0))))
    return taps
