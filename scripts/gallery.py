#!/usr/bin/env python
"""Regenerate docs/gallery/*.png and docs/gallery.md: every variant of the study's families
(the thesis' seven and the GroupNorm ones), every other description in examples/, and two
torchvision models imported with `normscope import`, drawn by `normscope draw`.

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


IMPORTED = ("torchvision:resnet18", "torchvision:densenet121")


def study_files() -> list[Path]:
    files = []
    for family in FAMILIES:
        for key in norms.VARIANTS:
            files.append(EXAMPLES / f"{norms.variant_name(family, *norms.parse_variant(key))}.yml")
    missing = [str(f.relative_to(ROOT)) for f in files if not f.exists()]
    if missing:
        sys.exit("missing study variants: " + ", ".join(missing))
    return files


def entry(path: Path, variant: str | None = None, command: str | None = None) -> str:
    norm, reuse = norms.parse_variant(variant) if variant else (None, None)
    spec = load_spec(path, norm=norm, reuse=reuse)
    written = draw(path, OUT, formats="png", dpi=DPI, norm=norm, reuse=reuse)
    png = written["png"]
    about = spec.document.get("description") or ""
    rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
    flags = f" --norm {norm}" + (" --reuse" if reuse else "") if variant else ""
    print(f"{command or rel}{flags} -> {png.relative_to(ROOT)} ({png.stat().st_size // 1024} KiB)")
    how = f"`normscope draw {command or rel}{flags}`"
    return f"### {spec.name}\n\n{about}\n\n{how}\n\n![{spec.name}](gallery/{png.name})\n"


def imported() -> list[str]:
    """Two torchvision models through `normscope import` (no weights are downloaded)."""
    from normscope.cli.importer import model_source

    return [entry(Path(model_source(source)), "in_v2", source) for source in IMPORTED]


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
        "(log scale), for every kind. Convolutions with an activation carry it as a pink band; pooling is magenta, "
        "dropout grey "
        f"and dashed, normalizations in their own colours ({colours}). Balls concatenate (‖) or add (+); "
        "residual shortcuts arc over the boxes. In a reuse (v2) variant one arrow leaves every normalization "
        f"layer, labelled with what it reuses ({reused_statistics()}) and how many values, and enters "
        "the ball where the statistics join the flattened features; the number under that ball is the "
        f"classifier's input size. Captions are layer names (`--abbreviations` prints the thesis' {captions} "
        "instead). Deep networks draw each run of repeated blocks once, bracketed and marked × N "
        "(`--expand` draws them all), and wrap onto lines; frozen layers (train.freeze) are hatched. "
        "The colours are Paul Tol's colour-blind-safe ones.",
        "",
        f"## The study: {len(study)} variants",
        "",
    ]
    parts += [entry(p) for p in study]
    gn = [(EXAMPLES / f"{family}.yml", key) for family in FAMILIES for key in norms.NORMS["gn"].variants]
    parts += ["## GroupNorm variants", ""]
    parts += [entry(p, key) for p, key in gn]
    parts += ["## Course architectures and transfer projects", ""]
    parts += [entry(p) for p in course]
    parts += ["## Imported from torchvision (`normscope import`), InstanceNorm with reuse", ""]
    parts += imported()
    (DOCS / "gallery.md").write_text("\n".join(parts))
    total = sum(p.stat().st_size for p in OUT.glob("*.png"))
    count = len(study) + len(gn) + len(course) + len(IMPORTED)
    print(f"wrote docs/gallery.md, {count} diagrams, {total / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
