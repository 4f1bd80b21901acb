"""CLI command `compare`: the comparison of a study's runs (tables, paired claims, reliance, chart)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from normscope.cli.common import console, echo, user_errors
from normscope.errors import NormscopeError


@user_errors
def compare(
    paths: list[Path] = typer.Argument(..., help="a study directory, or run directories"),
    reference: Optional[str] = typer.Option(
        None,
        "--reference",
        help="`thesis`: the thesis' numbers beside the measured ones and on the chart (CIFAR-100 studies)",
    ),
    out: Optional[Path] = typer.Option(
        None, "--out", help="where to write the tables and chart (default: the study directory, or ./comparison)"
    ),
):
    """A table like the thesis' (mean ± std over seeds), the paired claims (v2 − plain per seed:
    95% CI, paired t-test, Wilcoxon, Holm-adjusted p, d_z, verdict), the reliance on the reused
    statistics, a bar chart; Markdown, LaTeX (booktabs), CSV and comparison.json."""
    from normscope.rundir import check_out_dir
    from normscope.study import (
        FILES,
        STUDY,
        collect,
        linked_runs,
        paired_markdown,
        reliance_markdown,
        table_markdown,
        unfinished,
        write_comparison,
    )
    from normscope.study.thesis import comparable

    if reference not in (None, "thesis"):
        raise NormscopeError(f"--reference takes `thesis`, got {reference!r}")
    if out is not None:
        check_out_dir(out)  # a file, or not writable: refused before the runs are read
    rows = collect(paths)
    for link, target in linked_runs(paths):
        console.print(
            f"[yellow]note:[/] {escape(str(link))} is a symbolic link to {escape(str(target))}: left out",
            highlight=False,
            soft_wrap=True,
        )
    for run_dir, status in unfinished(paths):
        console.print(f"[yellow]note:[/] {run_dir.name} is {status}: left out", highlight=False, soft_wrap=True)
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
    for warning in summary["warnings"]:
        console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True, highlight=False)
    echo(table_markdown(summary["aggregate"], reference))
    echo(paired_markdown([c for c in summary["claims"] if c["contrast"] == "reuse"], reference))
    if summary["factors"]:
        echo((Path(out) / "factors.md").read_text(encoding="utf-8"))
    if summary["stats_share"]:
        echo(reliance_markdown(summary["stats_share"]))
    echo(f"wrote {', '.join(str(Path(out) / f) for f in FILES)}")


def register(app: typer.Typer) -> None:
    app.command()(compare)
