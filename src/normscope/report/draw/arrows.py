"""Arrows of a diagram: data arrows between boxes, residual shortcuts drawn over them,
and the reuse arrows from every tapped norm layer into the reuse ball."""

from __future__ import annotations

import math

from normscope import norms
from normscope.report.draw.boxes import Tap


def data_arrows(g, data, order, items):
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
            else:  # across, up or down next to the fork or the merge, across
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
        path = [(sx, sy), (sx, level), (tx, level), (tx, dst.y + math.sqrt(dst.r**2 - (tx - dst.x) ** 2))]
        drawn.append(path)
    return arrows, drawn


def reuse_taps(g, order, items, skips):
    sources = [n for n in order if g.nodes[n]["tapped"]]
    if not sources:
        return []
    ball = items["reuse"]
    ceiling = max([it.top for it in items.values()] + [p[1][1] for p in skips])
    ceiling = max(ceiling, max(it.top + 0.55 for it in items.values() if it.spatial))  # spatial labels
    n = len(sources)
    spacing = 0.32 if n <= 8 else max(0.12, 2.6 / n)
    taps = []
    for i, name in enumerate(sources):
        node = g.nodes[name]
        style = norms.BY_KIND[node["kind"]].short
        off = 0.0 if n == 1 else ball.r * 0.8 * (1 - 2 * i / (n - 1))
        drop_x = ball.x + off
        size = sum(grp.size for grp in g.graph["classifier"].of_layer(name))
        taps.append(
            Tap(
                source=name,
                style=style,
                size=size,
                start=items[name].top_back(),
                lane=ceiling + 0.5 + (n - 1 - i) * spacing,
                drop_x=drop_x,
                end_y=ball.y + math.sqrt(max(ball.r**2 - off**2, 0.0)),
            )
        )
    return taps
