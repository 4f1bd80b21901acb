#!/usr/bin/env python
"""Regenerate docs/gallery/*.png and docs/gallery.md: the 14 study variants and the
course architectures of examples/, drawn by `normscope draw`.

    .venv/bin/python scripts/gallery.py          # needs pdflatex and pdftoppm
"""

from __future__ import annotations

import sys
from pathlib import Path

import normscope
from normscope.report.draw import draw

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
DOCS = ROOT / "docs"
OUT = DOCS / "gallery"
FAMILIES = ("vgg16", "perceptnet")
DPI = 100


def study_files() -> list[Path]:
    files = []
    for family in FAMILIES:
        for key in normscope.VARIANTS:
            files.append(EXAMPLES / (f"{family}.yml" if key == "none" else f"{family}_{key}.yml"))
    missing = [str(f.relative_to(ROOT)) for f in files if not f.exists()]
    if missing:
        sys.exit("missing study variants: " + ", ".join(missing))
    return files


def entry(path: Path) -> str:
    spec = normscope.load_spec(path)
    written = draw(path, OUT, formats="png", dpi=DPI)
    png = written["png"]
    about = spec.document.get("description") or ""
    rel = path.relative_to(ROOT)
    print(f"{rel} -> {png.relative_to(ROOT)} ({png.stat().st_size // 1024} KiB)")
    return (f"### {spec.name}\n\n{about}\n\n`normscope draw {rel}`\n\n"
            f"![{spec.name}](gallery/{png.name})\n")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    study = study_files()
    course = sorted(p for p in EXAMPLES.glob("*.yml") if p not in study)
    parts = [
        "# Gallery",
        "",
        "Every diagram below is drawn by `normscope draw` from the model description that also builds the "
        "model (regenerate them all with `.venv/bin/python scripts/gallery.py`; "
        f"PNGs at {DPI} dpi, `normscope draw FILE` writes the .tex, .pdf and a {150}-dpi .png).",
        "",
        "How to read them: boxes are layers, left to right in the order data flows; a box's height and depth "
        "follow the feature map's height and width (square-root scale), its thickness the channel count "
        "(log scale). Convolutions with an activation carry it as an orange band; pooling is red, dropout grey "
        "and dashed, BatchNorm blue, InstanceNorm green, GDN magenta. Balls concatenate (‖) or add (+); "
        "residual shortcuts arc over the boxes. In a reuse (v2) variant one arrow leaves every normalization "
        "layer, labelled with what it reuses (μ, σ² for bn and in, D for gdn) and how many values, and enters "
        "the ball where the statistics join the flattened features; the number under that ball is the "
        "classifier's input size. Captions are layer names (`--abbreviations` prints the thesis' cnv, pl, do, "
        "flat, pred, bn, in, gdn instead).",
        "",
        "## The study: 14 variants",
        "",
    ]
    parts += [entry(p) for p in study]
    parts += ["## Course architectures", ""]
    parts += [entry(p) for p in course]
    (DOCS / "gallery.md").write_text("\n".join(parts))
    total = sum(p.stat().st_size for p in OUT.glob("*.png"))
    print(f"wrote docs/gallery.md, {len(study) + len(course)} diagrams, {total / 2 ** 20:.1f} MiB")


if __name__ == "__main__":
    main()
