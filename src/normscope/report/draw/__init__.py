"""Diagrams of a model description: PlotNeuralNet-style LaTeX/TikZ (tex, pdf, png) and graphviz (dot, svg).

from normscope.report.draw import draw
draw("examples/vgg16.yml", "out", norm="in", reuse=True)   # {"tex": Path, "pdf": Path, "png": Path}
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable, Iterable

from normscope.errors import NormscopeError
from normscope.fileio import atomic_write, safe_component
from normscope.model.graph import build_graph
from normscope.report.draw.boxes import Layout
from normscope.report.draw.graphviz import render_svg, to_dot
from normscope.report.draw.layout import layout
from normscope.report.draw.tikz import ToolMissing, compile_pdf, escape, pdf_to_png, render_tex
from normscope.spec import ModelSpec, load_spec
from normscope.spec.provenance import provenance, short

FORMATS = ("tex", "pdf", "png", "svg", "dot")
DEFAULT_FORMATS = ("tex", "pdf", "png")

__all__ = ["draw", "layout", "Layout", "render_tex", "compile_pdf", "escape", "FORMATS", "ToolMissing"]


def _stderr(message: str):
    print(message, file=sys.stderr)


PROVENANCE_LINE = "% provenance: not recorded\n"  # the template's placeholder


def with_provenance(tex: str, prov: dict) -> str:
    """The diagram's .tex with its provenance (description hash, normscope version, git commit)
    in a comment and, through pdfTeX's \\pdfinfo, in the PDF's Subject."""
    text = "".join(c for c in short(prov) if c.isalnum() or c in " .,:-()")  # safe in a PDF string
    full = f"description sha256 {prov['description_sha256']}, " + text.partition(", ")[2]
    info = rf"\ifdefined\pdfinfo\pdfinfo{{/Subject (normscope provenance: {full})}}\fi"
    return tex.replace(PROVENANCE_LINE, f"% provenance: {full}\n{info}\n", 1)


def parse_formats(formats: str | Iterable[str] | None) -> tuple[str, ...] | None:
    if formats is None:
        return None
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    out = tuple(dict.fromkeys(f.strip().lower().lstrip(".") for f in items if f.strip()))
    bad = [f for f in out if f not in FORMATS]
    if bad or not out:
        raise NormscopeError(f"unknown format {', '.join(bad) or '(none)'}: choose from {', '.join(FORMATS)}")
    return out


def _output_dir(out_dir) -> Path:
    """The output directory, made and checked writable before any drawing."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NormscopeError(f"cannot create the output directory {out}: {exc.strerror}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise NormscopeError(f"cannot write in the output directory {out} (not writable)")
    return out


def draw(
    source: str | Path | ModelSpec,
    out_dir: str | Path = ".",
    formats: str | Iterable[str] | None = None,
    *,
    norm: str | None = None,
    reuse: bool | None = None,
    input_shape: tuple | None = None,
    classes: int | None = None,
    norm_options: dict | None = None,
    abbreviations: bool | None = None,
    legend: bool | None = None,
    title: str | None = None,
    scale: float | None = None,
    expand: bool | None = None,
    dpi: int = 150,
    stem: str | None = None,
    timeout: float = 120,
    notify: Callable[[str], None] | None = None,
) -> dict[str, Path]:
    """Draw a model description; returns {format: path} of the files written.

    `formats` None means tex, and pdf and png when pdflatex and pdftoppm are installed (a
    message through `notify` says what to install when they are not). Formats asked for explicitly raise
    ToolMissing (after the .tex is written) when their program is missing; None options: the `draw:` section.
    """
    notify = notify or _stderr
    wanted = parse_formats(formats)
    explicit = wanted is not None
    wanted = wanted or DEFAULT_FORMATS
    spec = load_spec(
        source, norm=norm, reuse=reuse, input_shape=input_shape, classes=classes, norm_options=norm_options
    )
    g = build_graph(spec)
    opts = dict(spec.draw)
    given = {"abbreviations": abbreviations, "legend": legend, "title": title, "scale": scale, "expand": expand}
    for key, value in given.items():
        if value is not None:
            opts[key] = value
    if not opts["scale"] > 0:
        raise NormscopeError(f"scale must be positive, got {opts['scale']}")
    out = _output_dir(out_dir)
    stem = stem or safe_component(g.graph["name"])
    written: dict[str, Path] = {}

    if {"tex", "pdf", "png"} & set(wanted):
        tex = render_tex(
            layout(g, abbreviations=opts["abbreviations"], expand=opts["expand"]),
            legend=opts["legend"],
            title=opts["title"],
            scale=opts["scale"],
            source=str(spec.file or ""),
            stem=stem,
        )
        tex = with_provenance(tex, provenance(spec))
        if "tex" in wanted or not explicit:
            written["tex"] = atomic_write(out / f"{stem}.tex", tex)
        if {"pdf", "png"} & set(wanted):
            try:
                pdf = compile_pdf(tex, timeout=timeout)
                if "pdf" in wanted:
                    written["pdf"] = atomic_write(out / f"{stem}.pdf", pdf)
                if "png" in wanted:
                    written["png"] = atomic_write(out / f"{stem}.png", pdf_to_png(pdf, dpi=dpi, timeout=timeout))
            except ToolMissing as exc:
                if "tex" not in written:
                    written["tex"] = atomic_write(out / f"{stem}.tex", tex)
                if explicit:
                    raise
                skipped = ".pdf and .png" if exc.tool == "pdflatex" else ".png"
                notify(f"{exc}; no {skipped} written, {written['tex']} is (compile it with pdflatex)")
    if {"dot", "svg"} & set(wanted):
        dot = to_dot(g, abbreviations=opts["abbreviations"], title=opts["title"], expand=opts["expand"])
        if "dot" in wanted:
            written["dot"] = atomic_write(out / f"{stem}.dot", dot.source)
        if "svg" in wanted:
            written["svg"] = atomic_write(out / f"{stem}.svg", render_svg(dot, timeout=timeout))
    return written
