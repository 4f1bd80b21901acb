"""Arrows of a diagram: data arrows between boxes, residual shortcuts drawn over them,
and the reuse arrows from every tapped norm layer into the reuse ball."""

from __future__ import annotations

import math

from normscope import norms
from normscope.report.draw.boxes import CHAR_SMALL, Tap
from normscope.report.draw.geometry import bounds, item_rects
from normscope.report.draw.wrap import LANE_MARGIN, LANE_SPACING, Arrow, Line


def data_arrows(g, data, order, items) -> tuple[list[Arrow], list[Arrow]]:
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
                skips.append(Arrow(src, dst, []))
                continue
            if abs(sy - ey) < 1e-6:
                arrows.append(Arrow(src, dst, [(sx, sy), (ex, ey)]))
            else:  # across, up or down next to the fork or the merge, across
                turn = min(0.35, (ex - sx) / 2)
                mid = ex - turn if dst.ball else sx + turn
                arrows.append(Arrow(src, dst, [(sx, sy), (mid, sy), (mid, ey), (ex, ey)]))
    # residual shortcuts: over the boxes between source and target, nested if they overlap
    drawn = []
    for skip in skips:
        src, dst = skip.src, skip.dst
        (sx, sy) = src.top_back()
        between = [it for it in items.values() if it.row == src.row and src.x <= it.x <= dst.x and it is not dst]
        level = max(r.y1 for it in between for r in item_rects(it) if r.kind in ("box", "spatial")) + 0.3
        for other in drawn:
            if other[0][0] < dst.x and other[-1][0] > sx:
                level = max(level, other[1][1] + 0.3)
        tx = dst.x - 0.45 * dst.r
        skip.path = [(sx, sy), (sx, level), (tx, level), (tx, dst.y + math.sqrt(dst.r**2 - (tx - dst.x) ** 2))]
        drawn.append(skip.path)
    return arrows, skips


def tap_label(g, name: str) -> tuple[str, int]:
    """What a reuse arrow carries (plain text) and how many values, all copies of a folded layer."""
    norm = norms.BY_KIND[g.nodes[name]["kind"]]
    copies = g.nodes[name].get("copies") or [name]
    size = sum(grp.size for n in copies for grp in g.graph["classifier"].of_layer(n))
    stats = ",".join(s.text for s in norm.stats)
    return f"{stats} ({size})", size


def _crosses(segment, boxes, own: str) -> bool:
    """An axis-parallel segment through a box or ball of another block."""
    (x0, y0), (x1, y1) = segment
    lo_x, hi_x, lo_y, hi_y = min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)
    return any(
        b.block != own and b.x0 + 0.01 < hi_x and lo_x < b.x1 - 0.01 and b.y0 + 0.01 < hi_y and lo_y < b.y1 - 0.01
        for b in boxes
    )


def _way_up(it, boxes, ceiling: float) -> list[tuple]:
    """Where a reuse arrow leaves its layer: straight up from the top, or, when a box stands
    above (a layer on a branch below the main row), first right to the nearest clear gap."""
    own = it.block or it.node
    sx, sy = it.top_back()
    if not _crosses(((sx, sy), (sx, ceiling)), boxes, own):
        return [(sx, sy)]
    y = it.y + min(0.25, it.h / 4)
    for x in sorted({it.right + 0.15, *(b.x1 + 0.15 for b in boxes if b.x1 > it.right)}):
        if not _crosses(((it.right, y), (x, y)), boxes, own) and not _crosses(((x, y), (x, ceiling)), boxes, own):
            return [(it.right, y), (x, y)]
    return [(sx, sy)]


def reuse_taps(g, order, items, lines: list[Line], skips: list[Arrow]) -> list[Tap]:
    """Up from each tapped layer to a lane above its line; from an earlier line along its lane
    to the right margin and down to a lane above the last line; then down into the ball."""
    sources = [n for n in order if g.nodes[n]["tapped"]]
    if not sources:
        return []
    ball, last = items["reuse"], lines[-1]
    boxes = [r for it in items.values() for r in item_rects(it) if r.kind in ("box", "ball")]
    heads = {name: _way_up(items[name], boxes, lines[items[name].line].ceiling) for name in sources}
    labels = {name: tap_label(g, name) for name in sources}
    right = (
        max(  # the channels down the right margin pass right of every box and label
            bounds([r for it in items.values() for r in item_rects(it)])[2],
            max(heads[n][-1][0] + CHAR_SMALL * len(labels[n][0]) + 0.1 for n in sources),
        )
        + 0.4
    )
    n = len(sources)
    by_line: dict[int, list[str]] = {}
    for name in sources:
        by_line.setdefault(items[name].line, []).append(name)
    taps = []
    for i, name in enumerate(sources):
        it, head = items[name], heads[name]
        start = head[-1]
        final = last.ceiling + LANE_MARGIN + (n - 1 - i) * LANE_SPACING
        mine = by_line[it.line]
        own = lines[it.line].ceiling + LANE_MARGIN + (len(mine) - 1 - mine.index(name)) * LANE_SPACING
        off = 0.0 if n == 1 else ball.r * 0.8 * (1 - 2 * i / (n - 1))
        drop_x = ball.x + off
        end = (drop_x, ball.y + math.sqrt(max(ball.r**2 - off**2, 0.0)))
        if it.line == len(lines) - 1:
            path = [*head, (start[0], final), (drop_x, final), end]
        else:
            channel = right + (n - 1 - i) * 0.25
            path = [*head, (start[0], own), (channel, own), (channel, final), (drop_x, final), end]
        label, size = labels[name]
        taps.append(
            Tap(
                source=name,
                style=norms.BY_KIND[g.nodes[name]["kind"]].short,
                size=size,
                path=path,
                label_at=(start[0] + 0.03, path[len(head)][1] + 0.03),
                label=label,
            )
        )
    return taps
