"""The diagram's footprint as rectangles (cm, 2-D): every box and ball, every caption, spatial
size, reuse label and × N mark. The layout sizes its rows and lines from these, the tests
check from them that nothing overlaps, and the aspect ratio is their bounding box's.

Text is measured with the estimates in boxes.py (a character's width, a line's height),
which err on the wide side for the sans-serif fonts of the TikZ template.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from normscope.report.draw.boxes import CHAR, CHAR_SMALL, LINE, LINE_SMALL, ZX, ZY, Item, Layout, Mark, Tap

TEXT = ("caption", "spatial", "tap", "mark")


@dataclass(frozen=True)
class Rect:
    kind: str  # box | ball | caption | spatial | tap | mark
    owner: str  # the layer it belongs to (a mark: the first layer of its block)
    x0: float
    y0: float
    x1: float
    y1: float
    block: str = ""  # boxes and spatial sizes: the block of touching boxes (a spatial size labels it all)

    def overlaps(self, other: Rect, tol: float = 0.01) -> bool:
        return (
            min(self.x1, other.x1) - max(self.x0, other.x0) > tol
            and min(self.y1, other.y1) - max(self.y0, other.y0) > tol
        )

    def shifted(self, dx: float, dy: float) -> Rect:
        return Rect(self.kind, self.owner, self.x0 + dx, self.y0 + dy, self.x1 + dx, self.y1 + dy, self.block)


def item_rects(it: Item) -> list[Rect]:
    """The shape of a layer, its caption and (first box of a block) its spatial size."""
    if it.ball:
        out = [Rect("ball", it.node, it.left, it.bottom, it.right, it.top, it.node)]
        width = CHAR * max(len(it.label), len(it.size)) + 0.1
        out.append(Rect("caption", it.node, it.x - width / 2, it.bottom - it.caption_len, it.x + width / 2, it.bottom))
        return out
    out = [Rect("box", it.node, it.left, it.bottom, it.right, it.top, it.block or it.node)]
    cx, cy = it.caption_at()
    out.append(Rect("caption", it.node, cx - LINE / 2, cy - it.caption_len, cx + LINE / 2, cy))
    if it.spatial:
        out.append(spatial_rect(it, it.block or it.node))
    return out


def spatial_text(it: Item) -> str:
    return "×".join(str(v) for v in it.spatial)


def spatial_rect(it: Item, block: str) -> Rect:
    """The spatial size, sloped along the top-left depth edge (pos 0.45, above it)."""
    ux, uy = -ZX / math.hypot(ZX, ZY), -ZY / math.hypot(ZX, ZY)  # along the edge, up-right
    nx_, ny_ = -uy, ux  # its normal, up-left
    px = it.x + ZX * it.d / 2 - 0.45 * ZX * it.d
    py = it.y + it.h / 2 + ZY * it.d / 2 - 0.45 * ZY * it.d
    length, height = CHAR_SMALL * len(spatial_text(it)) + 0.06, LINE_SMALL
    cx, cy = px + nx_ * (height / 2 + 0.02), py + ny_ * (height / 2 + 0.02)
    half_w = abs(ux) * length / 2 + abs(nx_) * height / 2
    half_h = abs(uy) * length / 2 + abs(ny_) * height / 2
    return Rect("spatial", it.node, cx - half_w, cy - half_h, cx + half_w, cy + half_h, block)


def tap_rect(t: Tap) -> Rect:
    x, y = t.label_at
    return Rect("tap", t.source, x, y, x + CHAR_SMALL * len(t.label) + 0.1, y + LINE_SMALL)


def mark_rect(m: Mark) -> Rect:
    width = CHAR_SMALL * len(m.text) + 0.1
    mid = (m.x0 + m.x1) / 2
    return Rect("mark", m.nodes[0], mid - width / 2, m.y - 0.05 - LINE_SMALL, mid + width / 2, m.y - 0.05)


def layout_rects(lay: Layout) -> list[Rect]:
    out = [r for it in lay.items for r in item_rects(it)]
    out += [tap_rect(t) for t in lay.taps]
    out += [mark_rect(m) for m in lay.marks]
    return out


def bounds(rects: list[Rect], paths=()) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) around rectangles and polylines."""
    xs = [r.x0 for r in rects] + [r.x1 for r in rects] + [x for p in paths for x, _ in p]
    ys = [r.y0 for r in rects] + [r.y1 for r in rects] + [y for p in paths for _, y in p]
    return min(xs), min(ys), max(xs), max(ys)


def layout_bounds(lay: Layout) -> tuple[float, float, float, float]:
    return bounds(layout_rects(lay), [*lay.arrows, *lay.skips, *(t.path for t in lay.taps)])


A4_TEXT = (25.7, 17.0)  # cm: an A4 page in landscape less 2 cm margins


def a4_scale(width: float, height: float) -> float:
    """How much a drawing must be scaled to fit an A4 page, landscape or portrait (1: as it is)."""
    w, h = A4_TEXT
    return min(1.0, max(min(w / width, h / height), min(h / width, w / height)))


def fit_scale(lay: Layout) -> float:
    x0, y0, x1, y1 = layout_bounds(lay)
    return a4_scale(x1 - x0, y1 - y0)


def aspect(lay: Layout) -> float:
    """Width over height of the drawing (without legend and title)."""
    x0, y0, x1, y1 = layout_bounds(lay)
    return (x1 - x0) / (y1 - y0)


def overlaps(lay: Layout) -> list[str]:
    """Every collision, described: two texts; a text on a box or ball that is not its layer's;
    boxes of different blocks."""
    rects = layout_rects(lay)
    texts = [r for r in rects if r.kind in TEXT]
    shapes = [r for r in rects if r.kind in ("box", "ball")]
    found = []
    for i, a in enumerate(texts):
        for b in texts[i + 1 :]:
            if a.overlaps(b):
                found.append(f"{a.kind} of {a.owner} overlaps {b.kind} of {b.owner}")
        for s in shapes:
            if s.owner != a.owner and not (a.kind == "spatial" and a.block == s.block) and a.overlaps(s):
                found.append(f"{a.kind} of {a.owner} crosses the {s.kind} of {s.owner}")
    for i, a in enumerate(shapes):
        for b in shapes[i + 1 :]:
            if a.block != b.block and a.overlaps(b):
                found.append(f"{a.kind} of {a.owner} overlaps {b.kind} of {b.owner}")
    return found
