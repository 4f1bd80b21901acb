"""The pieces of a diagram's geometry: boxes and balls, reuse arrows, the layout, and the
scales that turn channels and spatial sizes into centimetres (conventions: layout.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass

ZX, ZY = -0.4, -0.3  # the z unit vector, in cm (also set in the TikZ picture)
GAP = 0.55  # visible length of an arrow between two boxes
CHAR = 0.15  # estimated width of a caption character (\footnotesize), cm
CHAR_SMALL = 0.12  # the same in \scriptsize (spatial sizes, reuse labels, × N marks)
LINE = 0.38  # height of a \footnotesize line with its inner sep, cm
LINE_SMALL = 0.32  # the same in \scriptsize
MIN_WIDTH = 0.42  # thinnest box: adjacent boxes leave room for their rotated captions


@dataclass
class Item:
    node: str
    style: str  # colour key, see STYLE_NAMES
    ball: bool
    label: str  # caption text (plain; escaped by the template)
    size: str  # channels or features, e.g. "16"
    spatial: tuple | None  # (H, W) when the box starts a block
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
    cap_y: float | None = None  # common caption line of a block of touching boxes
    block: str = ""  # the first layer of the block of touching boxes this one belongs to
    frozen: bool = False  # weights not trained (train.freeze)
    line: int = 0  # the line of a wrapped diagram, top to bottom

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
            return (self.x + 0.45 * self.r, self.y + math.sqrt(1 - 0.45**2) * self.r)
        return (self.x + self.w / 2 - ZX * self.d / 2, self.top)

    def caption_at(self):
        """Under the middle of the front face's bottom edge (balls: under the ball)."""
        if self.ball:
            return (self.x, self.bottom)
        return (self.x + self.w / 2 + ZX * self.d / 2, self.bottom if self.cap_y is None else self.cap_y)

    @property
    def caption_len(self):
        """How far the caption reaches below its line (rotated text; balls: two lines)."""
        if self.ball:
            return LINE if not self.label else 2 * LINE
        return 0.1 + CHAR * (len(self.label) + len(self.size) + 3)

    def shift(self, dx: float, dy: float) -> None:
        self.x, self.y = self.x + dx, self.y + dy
        if self.cap_y is not None:
            self.cap_y += dy


@dataclass
class Tap:
    """One reuse arrow: up from a norm layer to its lane, along it (and down the right margin
    when the layer is on an earlier line), down into the reuse ball; labelled on its lane."""

    source: str
    style: str  # the normalization's short name (its entry in normscope.norms)
    size: int
    path: list  # 2-D polyline, start at the layer, end at the ball
    label_at: tuple  # south-west corner of the label
    label: str  # plain text of the label (its length sizes the label's rectangle)

    @property
    def start(self):
        return self.path[0]

    @property
    def lane(self):
        """The height of its first lane (its label sits on it)."""
        return self.label_at[1] - 0.03


@dataclass
class Mark:
    """A repeated block drawn once: a bracket under its layers and "× N" under the bracket."""

    nodes: list[str]
    times: int
    x0: float
    x1: float
    y: float  # the bracket's height; the text hangs under it

    @property
    def text(self) -> str:
        return f"× {self.times}"


@dataclass
class Layout:
    name: str
    items: list[Item]
    arrows: list[list[tuple]]  # data arrows as 2-D polylines
    skips: list[list[tuple]]  # residual shortcuts drawn over the boxes
    taps: list[Tap]
    marks: list[Mark]
    styles: list[str]  # styles used, in legend order
    tap_styles: list[str]
    reuse_size: int | None
    frozen: bool = False  # some layers are frozen (legend entry)


def spatial_cm(v: int, biggest: int, top: float = 4.5) -> float:
    """Height/depth of a box: square-root scale, the model's biggest map `top` cm."""
    return max(0.55, top * math.sqrt(v / biggest))


def channels_cm(c: int) -> float:
    """Width of a box: log scale, so 3 channels are 0.42 cm and 4096 stay under 2 cm."""
    return max(MIN_WIDTH, 0.22 + 0.12 * math.log2(max(c, 2)))


def features_cm(f: int, top: float = 4.5) -> float:
    """Height of a flat vector: log scale, at most `top` cm."""
    return min(top, 0.6 + 0.42 * math.log2(max(f, 2)))
