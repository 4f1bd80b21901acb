"""Diagram geometry from the layout's own coordinates: nothing overlaps in any example and
variant, deep networks fold their repeats and wrap to at most 4:1 and fit an A4 page (the
example's own variant at 0.45 of its size or more: 8 pt captions print at 3.6 pt or larger), box
thickness follows channels, the palette stays apart for colour-blind readers."""

import itertools
import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import normscope
from normscope import norms
from normscope.errors import NormscopeError
from normscope.model.kinds import KINDS
from normscope.report.draw import draw, layout
from normscope.report.draw.boxes import channels_cm
from normscope.report.draw.geometry import aspect, fit_scale, layout_rects, overlaps
from normscope.report.draw.palette import CHROMATIC, NEUTRAL

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.yml"))


def graph(path, variant="none", **kw):
    norm, reuse = norms.parse_variant(variant)
    return normscope.build_graph(normscope.load_spec(path, norm=norm, reuse=reuse, **kw))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_no_overlaps_every_variant(example):
    """Every variant the example accepts: no two texts meet, no text on another layer's box,
    no box on another block's box; at most 4:1, and fitting an A4 page."""
    drawn, default = 0, normscope.load_spec(example).variant
    for variant in norms.ALL_VARIANTS:
        try:
            g = graph(example, variant)
        except NormscopeError:  # e.g. GDN on maps smaller than its kernel
            continue
        lay = layout(g)
        assert overlaps(lay) == [], (variant, overlaps(lay)[:5])
        assert aspect(lay) <= 4.0, variant
        assert fit_scale(lay) >= (0.45 if variant == default else 0.3), variant
        drawn += 1
    assert drawn >= 1 + (5 if normscope.load_spec(example).document.get("norm") is not None else 0)


def test_overlap_check_sees_collisions():
    lay = layout(graph(ROOT / "examples" / "perceptnet.yml", "in_v2"))
    assert overlaps(lay) == []
    a, b = [it for it in lay.items if not it.ball][:2]
    b.x, b.y = a.x + 0.05, a.y  # one box pushed onto another
    found = overlaps(lay)
    assert any(
        f"box of {a.node} overlaps box of {b.node}" in f or f"box of {b.node} overlaps box of {a.node}" in f
        for f in found
    )
    assert any(f.startswith("caption of") for f in found)


def test_resnet50_folds_stages_and_wraps():
    path = ROOT / "examples" / "resnet50_imagenet.yml"
    lay = layout(graph(path, "bn"))
    assert len({it.line for it in lay.items}) >= 3 and aspect(lay) <= 4.0 and fit_scale(lay) >= 0.5
    g = graph(path, "in_v2")
    lay = layout(g)
    assert [m.times for m in lay.marks] == [2, 3, 5, 2]  # identity blocks after each stage's first
    drawn = {it.node for it in lay.items}
    assert "layer3_1_conv1" in drawn and "layer3_2_conv1" not in drawn and "layer3_5_out" not in drawn
    # a folded norm layer's arrow carries the statistics of all its copies
    tap = next(t for t in lay.taps if t.source == "layer3_1_norm1")
    assert tap.size == 5 * 2 * 256 and tap.label.endswith("(2560)")
    assert sum(t.size for t in lay.taps) == g.graph["classifier"].size - 2048
    full = layout(g, expand=True)
    assert not full.marks and len(full.items) == len(g.graph["order"]) and overlaps(full) == []
    assert len(full.taps) == sum(g.nodes[n]["tapped"] for n in g.graph["order"])


def test_frozen_layers_are_marked(tmp_path):
    path = ROOT / "examples" / "resnet50_birds.yml"
    g = graph(path, "bn")
    lay = layout(g)
    frozen = {it.node for it in lay.items if it.frozen}
    assert "stem" in frozen and "layer1_0_conv1" in frozen and "classifier" not in frozen
    assert all(g.nodes[n]["frozen"] for n in frozen) and lay.frozen
    tex = draw(path, tmp_path, formats="tex")["tex"].read_text()
    assert tex.count("\\NSFrozen{") == len(frozen) and "frozen (not trained)" in tex


def test_thickness_follows_channels_for_every_kind():
    for name in ("perceptnet.yml", "inception_cifar.yml", "resnet18_cifar.yml"):
        for variant in ("in", "gdn", "gn"):
            g = graph(ROOT / "examples" / name, variant)
            for it in layout(g, expand=True).items:
                shape = g.nodes[it.node]["shape"]
                if not it.ball and len(shape) == 3:
                    assert it.w == pytest.approx(channels_cm(shape[0])), (name, variant, it.node)
    assert channels_cm(4096) < 2.0 and channels_cm(3) >= 0.42


def test_abbreviations_are_one_style():
    for kind in KINDS.values():
        assert kind.abbrev == "+" or re.fullmatch(r"[a-z]{2,4}", kind.abbrev), kind.name
    lay = layout(graph(ROOT / "examples" / "inception_cifar.yml"), abbreviations=True)
    assert all(it.label == "input" or re.fullmatch(r"[a-z+]{1,4}", it.label) for it in lay.items)


# --- colours: CIEDE2000 (Sharma, Wu & Dalal 2005) under normal vision and simulated
# deuteranopia, protanopia and tritanopia (Machado, Oliveira & Fernandes 2009, severity 1)

MACHADO = {
    "deuteranopia": ((0.367322, 0.860646, -0.227968), (0.280085, 0.672501, 0.047413), (-0.01182, 0.04294, 0.968881)),
    "protanopia": ((0.152286, 1.052583, -0.204868), (0.114503, 0.786281, 0.099216), (-0.003882, -0.048116, 1.051998)),
    "tritanopia": ((1.255528, -0.076749, -0.178779), (-0.078411, 0.930809, 0.147602), (0.004733, 0.691367, 0.3039)),
}


def _linear(v):
    v /= 255
    return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4


def _lab(rgb, matrix=None):
    lin = [_linear(v) for v in rgb]
    if matrix:
        lin = [min(1.0, max(0.0, sum(m * c for m, c in zip(row, lin)))) for row in matrix]
    r, g, b = lin
    xyz = ((0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047, 0.2126 * r + 0.7152 * g + 0.0722 * b,
           (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883)  # fmt: skip
    fx, fy, fz = (t ** (1 / 3) if t > 216 / 24389 else (24389 / 27 * t + 16) / 116 for t in xyz)
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


def ciede2000(lab1, lab2):
    (l1, a1, b1), (l2, a2, b2) = lab1, lab2
    cbar = (math.hypot(a1, b1) + math.hypot(a2, b2)) / 2
    gfac = 0.5 * (1 - math.sqrt(cbar**7 / (cbar**7 + 25**7)))
    a1p, a2p = (1 + gfac) * a1, (1 + gfac) * a2
    c1, c2 = math.hypot(a1p, b1), math.hypot(a2p, b2)
    h1, h2 = math.degrees(math.atan2(b1, a1p)) % 360, math.degrees(math.atan2(b2, a2p)) % 360
    dh = 0.0 if c1 * c2 == 0 else (h2 - h1 + 180) % 360 - 180
    d_l, d_c, d_h = l2 - l1, c2 - c1, 2 * math.sqrt(c1 * c2) * math.sin(math.radians(dh / 2))
    lbar, cbarp = (l1 + l2) / 2, (c1 + c2) / 2
    if c1 * c2 == 0:
        hbar = h1 + h2
    elif abs(h1 - h2) <= 180:
        hbar = (h1 + h2) / 2
    else:
        hbar = (h1 + h2 + 360) / 2 if h1 + h2 < 360 else (h1 + h2 - 360) / 2
    t = (1 - 0.17 * math.cos(math.radians(hbar - 30)) + 0.24 * math.cos(math.radians(2 * hbar))
         + 0.32 * math.cos(math.radians(3 * hbar + 6)) - 0.2 * math.cos(math.radians(4 * hbar - 63)))  # fmt: skip
    rt = (
        -2
        * math.sqrt(cbarp**7 / (cbarp**7 + 25**7))
        * math.sin(math.radians(60 * math.exp(-(((hbar - 275) / 25) ** 2))))
    )
    sl = 1 + 0.015 * (lbar - 50) ** 2 / math.sqrt(20 + (lbar - 50) ** 2)
    sc, sh = 1 + 0.045 * cbarp, 1 + 0.015 * cbarp * t
    return math.sqrt((d_l / sl) ** 2 + (d_c / sc) ** 2 + (d_h / sh) ** 2 + rt * (d_c / sc) * (d_h / sh))


def test_ciede2000_reference_pairs():
    # Sharma, Wu & Dalal (2005), table 1: pairs 1, 7 and 17
    assert ciede2000((50, 2.6772, -79.7751), (50, 0, -82.7485)) == pytest.approx(2.0425, abs=1e-4)
    assert ciede2000((50, 0, 0), (50, -1, 2)) == pytest.approx(2.3669, abs=1e-4)
    assert ciede2000((50, 2.5, 0), (73, 25, -18)) == pytest.approx(27.1492, abs=1e-4)


@pytest.mark.parametrize("vision,least", [(None, 20), ("deuteranopia", 10), ("protanopia", 10), ("tritanopia", 8)])
def test_palette_hues_apart(vision, least):
    matrix = MACHADO.get(vision)
    labs = {style: _lab(rgb, matrix) for style, rgb in CHROMATIC.items()}
    closest = min((ciede2000(labs[a], labs[b]), a, b) for a, b in itertools.combinations(labs, 2))
    assert closest[0] >= least, closest
    for style, rgb in NEUTRAL.items():  # plumbing has no hue
        assert math.hypot(*_lab(rgb)[1:]) < 2, style
    assert {n.short for n in norms.NORMS.values()} <= set(CHROMATIC)


@pytest.mark.skipif(not all(shutil.which(t) for t in ("pdflatex", "pdftoppm", "pdfinfo")), reason="no pdflatex")
def test_rendered_resnet50_is_at_most_4_to_1(tmp_path):
    files = draw(ROOT / "examples" / "resnet50_imagenet.yml", tmp_path, formats="pdf,png", dpi=30)
    info = subprocess.run(["pdfinfo", str(files["pdf"])], capture_output=True, text=True, check=True).stdout
    w, h = map(float, re.search(r"Page size:\s+([\d.]+) x ([\d.]+) pts", info).groups())
    assert max(w, h) / min(w, h) <= 4.0
    png = files["png"].read_bytes()
    pw, ph = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert max(pw, ph) / min(pw, ph) <= 4.0
    cm = 2.54 / 72
    assert min(25.7 / (w * cm), 17.0 / (h * cm)) >= 0.45 or min(17.0 / (w * cm), 25.7 / (h * cm)) >= 0.45


def test_rects_cover_every_drawn_thing():
    lay = layout(graph(ROOT / "examples" / "vgg16.yml", "gdn_v2"))
    kinds = [r.kind for r in layout_rects(lay)]
    assert kinds.count("tap") == 4 and kinds.count("caption") == len(lay.items)
    assert kinds.count("box") + kinds.count("ball") == len(lay.items) and "spatial" in kinds


@pytest.mark.skipif(not shutil.which("dot"), reason="graphviz is not installed")
@pytest.mark.parametrize("name", ["vgg16_imagenet", "resnet50_imagenet", "inception_cifar", "perceptnet_in_v2"])
def test_graphviz_top_to_bottom_within_4_to_1(name, tmp_path):
    files = draw(ROOT / "examples" / f"{name}.yml", tmp_path, formats="dot,svg")
    dot, svg = files["dot"].read_text(), files["svg"].read_text()
    assert "rankdir=TB" in dot
    w, h = map(float, re.search(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"', svg).groups())
    assert max(w, h) / min(w, h) <= 4.0, (w, h)
    assert 'fillcolor="#%02x%02x%02x' % CHROMATIC["conv"] in dot  # the TikZ palette
    if name.startswith("resnet50"):
        assert dot.count("subgraph cluster_") == 8 and "layer3_1_out  × 5" in dot


def test_reuse_arrows_pass_no_box():
    """A reuse arrow from a layer on a branch below the main row goes round the boxes above it."""
    for name in ("resnet18_cifar", "resnet50_imagenet", "inception_cifar", "fashion_resnet"):
        for variant in ("bn_v2", "gn_v2"):
            lay = layout(graph(ROOT / "examples" / f"{name}.yml", variant))
            boxes = [r for r in layout_rects(lay) if r.kind in ("box", "ball")]
            for t in lay.taps:
                for (x0, y0), (x1, y1) in zip(t.path, t.path[1:-1]):  # the last segment enters the ball
                    for b in boxes:
                        if b.block == t.source or b.owner == "reuse":
                            continue
                        inside_x = b.x0 + 0.01 < max(x0, x1) and min(x0, x1) < b.x1 - 0.01
                        inside_y = b.y0 + 0.01 < max(y0, y1) and min(y0, y1) < b.y1 - 0.01
                        assert not (inside_x and inside_y), (name, variant, t.source, b.owner)
