"""CLI commands for draw (registered on the shared typer app)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from normscope.cli.common import (
    ClassesOpt,
    InputOpt,
    NormOpt,
    NormOptionOpt,
    ReuseOpt,
    SetOpt,
    console,
    err_console,
    parse_shape,
    user_errors,
    variant_of,
)
from normscope.cli.importer import model_source
from normscope.report.draw import draw as draw_model


@user_errors
def draw(
    file: Path = typer.Argument(
        ..., help="model description (.yml), or a PyTorch model: torchvision:NAME, module:Attr"
    ),
    norm: Optional[str] = NormOpt,
    reuse: Optional[bool] = ReuseOpt,
    input: Optional[str] = InputOpt,
    classes: Optional[int] = ClassesOpt,
    norm_option: Optional[list[str]] = NormOptionOpt,
    sets: Optional[list[str]] = SetOpt,
    out: Path = typer.Option(Path("."), "-o", "--out", help="output directory (files are named after the model)"),
    format: Optional[str] = typer.Option(
        None,
        "--format",
        "-f",
        help="comma-separated: tex,pdf,png,svg,dot (default: tex, and pdf and png when pdflatex is installed)",
    ),
    abbreviations: Optional[bool] = typer.Option(
        None, "--abbreviations/--names", help="captions: the thesis' abbreviations (cnv, pl, do, ...) or layer names"
    ),
    legend: Optional[bool] = typer.Option(None, "--legend/--no-legend", help="draw the legend"),
    title: Optional[str] = typer.Option(None, "--title", help="a title above the diagram"),
    scale: Optional[float] = typer.Option(None, "--scale", help="scale the geometry (text keeps its size)"),
    expand: Optional[bool] = typer.Option(
        None, "--expand/--fold", help="draw every repeated block (default: each run of repeats once, marked × N)"
    ),
    dpi: int = typer.Option(150, "--dpi", min=30, max=1200, help="resolution of the PNG"),
):
    """Draw the model: a PlotNeuralNet-style LaTeX/TikZ diagram (tex, pdf, png) or a graphviz graph (dot, svg)."""
    written = draw_model(
        variant_of(model_source(file, input), norm, reuse, sets, norm_option),
        out,
        format,
        input_shape=parse_shape(input),
        classes=classes,
        abbreviations=abbreviations,
        legend=legend,
        title=title,
        scale=scale,
        expand=expand,
        dpi=dpi,
        notify=lambda m: err_console.print(f"[yellow]note:[/] {m}", highlight=False, soft_wrap=True),
    )
    for fmt, path in written.items():
        console.print(f"[green]wrote[/] {path}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command()(draw)
