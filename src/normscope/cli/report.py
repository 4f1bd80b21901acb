"""CLI command `report`: one self-contained HTML page of a study, a comparison or a run."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from normscope.cli.common import user_errors


@user_errors
def report(
    source: Path = typer.Argument(..., help="a study directory, a comparison (directory or JSON file) or a run"),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="the HTML file (default: report.html beside it)"),
):
    """One HTML file that needs nothing else (styles, figures and diagrams inline, no requests):
    the design, the paired claims, the table per variant, learning curves, confusion matrices,
    attribution charts and the model diagrams. Reads JSON and CSV only."""
    from normscope.study.html import write_report

    typer.echo(f"wrote {write_report(source, out)}")


def register(app: typer.Typer) -> None:
    app.command()(report)
