"""The diagrams' colours, one per style, shared by the TikZ and graphviz renderings.

Every kind with a hue has its own: the chromatic colours are from Paul Tol's colour-blind-safe
schemes (bright, muted and light) and are told apart under deuteranopia, protanopia and
tritanopia as well (tests/test_draw_geometry.py measures their pairwise CIEDE2000 distances).
Plumbing without a computation of its own (input, dropout, padding, the concatenation and
addition balls) is neutral grey. The normalizations' colours live in `normscope.norms`.
"""

from __future__ import annotations

from normscope import norms

CHROMATIC: dict[str, tuple[int, int, int]] = {
    "conv": (238, 221, 136),  # light yellow
    "act": (255, 170, 187),  # pink: a stand-alone activation, and the band on a layer
    "pool": (238, 51, 119),  # magenta red
    "flatten": (68, 187, 153),  # mint
    "dense": (153, 221, 255),  # light cyan
    "pred": (51, 34, 136),  # indigo: the classifier
    **{n.short: n.style.rgb for n in norms.NORMS.values()},
}
NEUTRAL: dict[str, tuple[int, int, int]] = {
    "input": (232, 232, 232),
    "dropout": (208, 208, 208),
    "pad": (244, 244, 244),
    "concat": (250, 250, 250),
    "add": (250, 250, 250),
    "reuse": (250, 250, 250),
}
ALIASES = {"convact": "conv", "band": "act"}  # a convolution with its activation: the conv box, an act band
PALETTE: dict[str, tuple[int, int, int]] = {
    **CHROMATIC,
    **NEUTRAL,
    **{alias: CHROMATIC[style] for alias, style in ALIASES.items()},
}


def _dark(rgb) -> bool:
    return 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2] < 110


DARK = {style for style, rgb in PALETTE.items() if _dark(rgb)}


def _add_norm(n: norms.NormSpec) -> None:
    """A normalization registered later (a plugin's) gets its colour too."""
    CHROMATIC.setdefault(n.short, n.style.rgb)
    PALETTE.setdefault(n.short, n.style.rgb)
    if _dark(n.style.rgb):
        DARK.add(n.short)


norms.on_register(_add_norm)


def hex_of(style: str) -> str:
    return "#" + "".join(f"{v:02x}" for v in PALETTE[style])


def tex_colours() -> list[tuple[str, str]]:
    """(name, 'R,G,B') of every style, for \\definecolor."""
    return [(style, ",".join(map(str, rgb))) for style, rgb in PALETTE.items()]
