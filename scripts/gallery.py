#!/usr/bin/env python
"""Regenerate docs/gallery/*.png and docs/gallery.md: every variant of the study's families
and the course architectures of examples/, drawn by `normscope draw`.

    .venv/bin/python scripts/gallery.py          # needs pdflatex and pdftoppm
"""

from __future__ import annotations

import sys
from pathlib import Path

from normscope import norms
from normscope.report.draw import draw
from normscope.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
DOCS = ROOT / "docs"
OUT = DOCS / "gallery"
FAMILIES = ("vgg16", "perceptnet")
DPI = 100


def study_files() -> list[Path]:
    files = []
    for family in FAMILIES:
        for key in norms.VARIANTS:
            files.append(EXAMPLES / f"{norms.variant_name(family, *norms.parse_variant(key))}.yml")
    missing = [str(f.relative_to(ROOT)) for f in files if not f.exists()]
    if missing:
        sys.exit("missing study variants: " + ", ".join(missing))
    return files


def entry(path: Path) -> str:
    spec = load_spec(path)
    written = draw(path, OUT, formats="png", dpi=DPI)
    png = written["png"]
    about = spec.document.get("description") or ""
    rel = path.relative_to(ROOT)
    print(f"{rel} -> {png.relative_to(ROOT)} ({png.stat().st_size // 1024} KiB)")
    return f"### {spec.name}\n\n{about}\n\n`normscope draw {rel}`\n\n![{spec.name}](gallery/{png.name})\n"


def reused_statistics() -> str:
    """What a reuse arrow carries, per normalization: its statistics' symbols, then the normalizations."""
    groups: dict[str, list[str]] = {}
    for n in norms.NORMS.values():
        groups.setdefault(", ".join(s.text for s in n.stats), []).append(n.short)
    return ", ".join(f"{stats} for {' and '.join(shorts)}" for stats, shorts in groups.items())


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    study = study_files()
    course = sorted(p for p in EXAMPLES.glob("*.yml") if p not in study)
    colours = ", ".join(f"{n.display} {n.style.hex}" for n in norms.NORMS.values())
    captions = ", ".join(("cnv", "pl", "do", "flat", "pred", *norms.NORMS))
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
        f"and dashed, normalizations in their own colours ({colours}). Balls concatenate (‖) or add (+); "
        "residual shortcuts arc over the boxes. In a reuse (v2) variant one arrow leaves every normalization "
        f"layer, labelled with what it reuses ({reused_statistics()}) and how many values, and enters "
        "the ball where the statistics join the flattened features; the number under that ball is the "
        f"classifier's input size. Captions are layer names (`--abbreviations` prints the thesis' {captions} "
        "instead).",
        "",
        f"## The study: {len(study)} variants",
        "",
    ]
    parts += [entry(p) for p in study]
    parts += ["## Course architectures", ""]
    parts += [entry(p) for p in course]
    (DOCS / "gallery.md").write_text("\n".join(parts))
    total = sum(p.stat().st_size for p in OUT.glob("*.png"))
    print(f"wrote docs/gallery.md, {len(study) + len(course)} diagrams, {total / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
