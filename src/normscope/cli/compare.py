"""CLI command `compare`: the comparison of a study's runs (tables, paired view, chart)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from normscope.cli.common import console, user_errors
from normscope.errors import NormscopeError


@user_errors
def compare(
    paths: list[Path] = typer.Argument(..., help="a study directory, or run directories"),
    reference: Optional[str] = typer.Option(
        None, "--reference", help="`thesis`: the thesis' numbers beside the measured ones (CIFAR-100 studies)"
    ),
    out: Optional[Path] = typer.Option(
        None, "--out", help="where to write the table and chart (default: the study directory, or ./comparison)"
    ),
):
    """A table like the thesis' (mean ± std over seeds), a paired plain-vs-v2 view, a bar chart."""
    # torch: only this command imports it
    from normscope.study import STUDY, collect, paired_markdown, table_markdown, write_comparison
    from normscope.study.thesis import comparable

    if reference not in (None, "thesis"):
        raise NormscopeError(f"--reference takes `thesis`, got {reference!r}")
    rows = collect(paths)
    if reference == "thesis" and not comparable(rows):
        console.print(
            "[yellow]note:[/] the thesis' numbers are on CIFAR-100; these runs are on "
            + ", ".join(sorted({str(r.get("data")) for r in rows}))
            + " — not comparable",
            soft_wrap=True,
        )
    if out is None:
        out = paths[0] if len(paths) == 1 and (paths[0] / STUDY).is_file() else Path("comparison")
    summary = write_comparison(rows, out, reference)
    typer.echo(table_markdown(summary["aggregate"], reference))
    typer.echo(paired_markdown(summary["paired"]))
    typer.echo(f"wrote {out}/table.md, table.csv, paired.md, chart.png, comparison.json")


def register(app: typer.Typer) -> None:
    app.command()(compare)
