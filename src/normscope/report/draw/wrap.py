"""Long networks wrap onto lines, top to bottom, so that the diagram is at most MAX_ASPECT wide
for its height and fits an A4 page at the largest scale its breaks allow.

The layout is first computed as one strip; a line may end wherever a single arrow leaves
it (no branch, shortcut or block of touching boxes is cut) and before the reuse ball. The
arrow that crosses to the next line runs down into the gap between the lines and back to
the left. The space above each line holds the lanes of the reuse arrows that start on it
(the last line: the lanes of all of them, since they all end in its reuse ball).
"""

from __future__ import annotations

from dataclasses import dataclass

from normscope.report.draw.boxes import Item, Mark
from normscope.report.draw.geometry import a4_scale, bounds, item_rects, mark_rect

MAX_ASPECT = 3.9  # width / height of the drawing at most (with its legend: less)
MAX_LINES = 12
ONE_LINE_SCALE = 0.7  # a network that fits A4 at this scale on one line stays on one line
LINE_GAP = 1.0  # between a line's lowest caption and the next line's lanes or top
LANE_SPACING = 0.36  # between reuse lanes: a label fits between two
LANE_MARGIN = 0.45  # between a line's top and its lowest lane
RETURN = 0.45  # how far left of the next line the crossing arrow comes down


@dataclass
class Arrow:
    src: Item
    dst: Item
    path: list


@dataclass
class Line:
    lo: int  # first column
    hi: int  # last column
    top: float = 0.0
    bottom: float = 0.0
    left: float = 0.0
    right: float = 0.0
    lanes: int = 0  # reuse lanes above it
    dx: float = 0.0
    dy: float = 0.0

    def holds(self, it: Item) -> bool:
        return self.lo <= it.col <= self.hi

    @property
    def ceiling(self) -> float:
        """The highest point of its content (after the shift)."""
        return self.top + self.dy

    def lane_space(self) -> float:
        return LANE_MARGIN + self.lanes * LANE_SPACING if self.lanes else 0.0


def cut_columns(items: dict[str, Item], arrows: list[Arrow], skips: list[Arrow]) -> list[tuple[int, float]]:
    """(c, x): a line may end after column c, where every arrow that crosses leaves the one
    layer of column c (a fork may follow it); x is where that layer ends."""
    last = max(it.col for it in items.values())
    limit = min((it.col for it in items.values() if it.ball and it.node == "reuse"), default=last)
    out = []
    for c in range(1, limit - 1):
        crossing = [a for a in [*arrows, *skips] if a.src.col <= c < a.dst.col]
        sources = {id(a.src) for a in crossing}
        if not crossing or len(sources) != 1 or crossing[0].src.col != c:
            continue
        if all(a.dst.col == c + 1 or any(a is s for s in skips) for a in crossing) and not any(
            a.dst.attached for a in crossing
        ):
            out.append((c, crossing[0].src.right))
    return out


def _measure(items, marks, skips, lines: list[Line], taps: set[str]) -> None:
    for i, line in enumerate(lines):
        mine = [it for it in items.values() if line.holds(it)]
        rects = [r for it in mine for r in item_rects(it)]
        rects += [mark_rect(m) for m in marks if line.holds(items[m.nodes[0]])]
        paths = [s.path for s in skips if line.holds(s.src)]
        line.left, line.bottom, line.right, line.top = bounds(rects, paths)
        line.lanes = len(taps) if i == len(lines) - 1 else sum(it.node in taps for it in mine)
    x0 = lines[0].left
    for i, line in enumerate(lines):
        line.dx = 0.0 if i == 0 else x0 + RETURN + 0.2 - line.left
        if i:
            prev = lines[i - 1]
            line.dy = prev.dy + prev.bottom - LINE_GAP - line.lane_space() - line.top


def _aspect(lines: list[Line]) -> tuple[float, float]:
    """(width / height, how much the drawing must shrink to fit an A4 page, either way round)."""
    width = max(ln.right + ln.dx for ln in lines) - min(ln.left + ln.dx for ln in lines)
    height = lines[0].top + lines[0].lane_space() - (lines[-1].bottom + lines[-1].dy)
    return width / height, a4_scale(width, height)


def _greedy(cuts: list[tuple[int, float]], width: float, x0: float, x1: float) -> list[int]:
    """The cuts that end each line as late as `width` allows (a line too wide on its own stays)."""
    chosen, start = [], x0
    while x1 - start > width:
        fits = [c for c in cuts if start < c[1] <= start + width]
        if not fits:
            later = [c for c in cuts if c[1] > start]
            if not later:
                break
            fits = later[:1]
        c, start = fits[-1]
        chosen.append(c)
    return chosen


def _split(cuts: list[tuple[int, float]], k: int, x0: float, x1: float, last: int) -> list[Line] | None:
    """At most k lines whose widest is as narrow as the cuts allow (bisection on the width)."""
    lo, hi = 0.0, x1 - x0
    for _ in range(30):
        mid = (lo + hi) / 2
        if len(_greedy(cuts, mid, x0, x1)) + 1 <= k:
            hi = mid
        else:
            lo = mid
    chosen = _greedy(cuts, hi, x0, x1)
    if len(chosen) + 1 != k:
        return None
    ends = [0, *(c + 1 for c in chosen), last + 1]
    return [Line(ends[i], ends[i + 1] - 1) for i in range(k)]


def plan_lines(items, arrows, skips, marks, taps: set[str]) -> list[Line]:
    """The lines that let the drawing fit an A4 page at the largest scale, at most MAX_ASPECT
    wide for its height; one line when it fits at ONE_LINE_SCALE or more."""
    last = max(it.col for it in items.values())
    best = [Line(0, last)]
    _measure(items, marks, skips, best, taps)
    score = _aspect(best)
    if score[0] <= MAX_ASPECT and score[1] >= ONE_LINE_SCALE:
        return best
    cuts = cut_columns(items, arrows, skips)
    x0, x1 = best[0].left, best[0].right
    for k in range(2, min(len(cuts) + 1, MAX_LINES) + 1):
        lines = _split(cuts, k, x0, x1, last)
        if lines is None:
            continue
        _measure(items, marks, skips, lines, taps)
        new = _aspect(lines)
        if (new[0] <= MAX_ASPECT, new[1]) > (score[0] <= MAX_ASPECT, score[1]):
            best, score = lines, new
    return best


def apply_lines(items, arrows: list[Arrow], skips: list[Arrow], marks: list[Mark], lines: list[Line]) -> None:
    """Move every line into place; the arrows that cross from one line to the next turn around."""
    line_of = {}
    for it in items.values():
        line_of[it.node] = next(i for i, ln in enumerate(lines) if ln.holds(it))
        it.line = line_of[it.node]
        it.shift(lines[it.line].dx, lines[it.line].dy)
    _shift_marks(items, marks, lines)
    for a in [*arrows, *skips]:
        src_line, dst_line = lines[line_of[a.src.node]], lines[line_of[a.dst.node]]
        if src_line is dst_line:
            a.path = [(x + src_line.dx, y + src_line.dy) for x, y in a.path]
        else:
            a.path = _turn(a, src_line, dst_line, any(a is s for s in skips))


def _turn(a: Arrow, src_line: Line, dst_line: Line, skip: bool) -> list:
    """An arrow from the end of one line to the next: down into the gap, back to the left,
    down to its row (a shortcut: to its height over the boxes) and on to its layer."""
    (sx, sy) = a.src.east()
    mid = src_line.bottom + src_line.dy - LINE_GAP / 2
    back = dst_line.left + dst_line.dx - RETURN
    head = [(sx, sy), (sx + 0.3, sy), (sx + 0.3, mid), (back, mid)]
    if not skip:
        ex, ey = a.dst.west()
        return [*head, (back, ey), (ex, ey)]
    level = a.path[1][1] + dst_line.dy
    tail = [(x + dst_line.dx, y + dst_line.dy) for x, y in a.path[2:]]
    return [*head, (back, level), *tail]


def _shift_marks(items, marks: list[Mark], lines: list[Line]) -> None:
    for m in marks:
        line = lines[items[m.nodes[0]].line]
        m.x0, m.x1, m.y = m.x0 + line.dx, m.x1 + line.dx, m.y + line.dy
