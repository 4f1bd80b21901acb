"""The pieces of a diagram's geometry: boxes and balls, reuse arrows, the layout, and the
scales that turn channels and spatial sizes into centimetres (conventions: layout.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass

ZX, ZY = -0.4, -0.3  # the z unit vector, in cm (also set in the TikZ picture)
GAP = 0.55  # visible length of an arrow between two boxes
CHAR = 0.15  # estimated width of a caption character (\footnotesize), cm


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
        text = len(self.label) + len(self.size) + 3
        return 0.7 if self.ball else 0.25 + CHAR * text


@dataclass
class Tap:
    """One reuse arrow: up from a norm layer, along its lane, down into the reuse ball."""

    source: str
    style: str  # the normalization's short name (its entry in normscope.norms)
    size: int
    start: tuple
    lane: float
    drop_x: float
    end_y: float


@dataclass
class Layout:
    name: str
    items: list[Item]
    arrows: list[list[tuple]]  # data arrows as 2-D polylines
    skips: list[list[tuple]]  # residual shortcuts drawn over the boxes
    taps: list[Tap]
    styles: list[str]  # styles used, in legend order
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
