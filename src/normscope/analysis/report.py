"""Output: the table, attribution.json and the per-class CSV (the chart: chart.py, the
features-only message: common.py; both re-exported here)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from normscope.analysis.bn_gap import render_bn_gap
from normscope.analysis.chart import plot_attribution
from normscope.analysis.common import CLASS_MEASURES, features_only_message
from normscope.fileio import atomic_write, write_json

__all__ = [
    "features_only_message",
    "plot_attribution",
    "render_table",
    "report",
    "write_attribution",
    "write_per_class_csv",
]

#: the table's columns: (header, justify)
COLUMNS = (
    ("group", "left"),
    ("size", "right"),
    ("IG share", "right"),
    ("IG/dim ×avg", "right"),
    ("logit share", "right"),
    ("logit Δ", "right"),
    ("perm Δacc", "right"),
    ("perm Δloss", "right"),
    ("ablate Δacc", "right"),
    ("ablate Δloss", "right"),
)


def _fmt(v, pct: bool = True, signed: bool = False) -> str:
    if v is None:
        return "–"
    if pct:
        return f"{v * 100:+.1f}%" if signed else f"{v * 100:.1f}%"
    return f"{v:+.3f}" if signed else f"{v:.3f}"


def _cells(r: dict, label: str | None = None) -> list[str]:
    """One row of the table: the unit's label, size and measures."""
    return [
        label or r["name"] + (" (constant)" if r.get("constant") and r.get("layer") else ""),
        str(r["size"]),
        _fmt(r["ig_share"]),
        "–" if r["ig_dim_ratio"] is None else f"{r['ig_dim_ratio']:.2f}",
        _fmt(r["logit_share"]),
        _fmt(r["logit_contribution"], pct=False, signed=True),
        _fmt(r["permutation_accuracy_drop"], signed=True),
        _fmt(r["permutation_loss_rise"], pct=False, signed=True),
        _fmt(r["ablation_accuracy_drop"], signed=True),
        _fmt(r["ablation_loss_rise"], pct=False, signed=True),
    ]


def render_table(result: dict, console, title: str | None = None) -> None:
    """The rich table: one row per group, then per norm layer, then features vs statistics."""
    table = Table(title=title, title_justify="left", header_style="bold", show_lines=False)
    for name, justify in COLUMNS:
        table.add_column(name, justify=justify)
    for r in result["groups"]:
        table.add_row(*_cells(r))
    if result["layers"]:
        table.add_section()
        for r in result["layers"]:
            table.add_row(*_cells(r, label=f"{r['name']} (layer)"))
    if len(result["totals"]) > 1:
        table.add_section()
        for r in result["totals"]:
            table.add_row(*_cells(r, label=f"all {r['name']}"), style="bold")
    needed = Measurement.get(console, console.options.update_width(1000), table).maximum
    if needed > console.width and not console.is_terminal:
        # a pipe or a file: print the table whole rather than squeezed into 80 columns
        Console(file=console.file, width=needed, no_color=console.no_color, force_terminal=False).print(table)
    else:
        console.print(table)


def report(result: dict, console=None) -> None:
    """Print the table, the stats_share (or the features-only statement), the notes and
    the files written."""
    if console is None:
        console = Console()
    title = (
        f"{result.get('model', 'model')}: {result.get('split', '')} {result['samples']} images, accuracy "
        f"{result['accuracy']:.3f}; target logit: {result['target']}; baseline: {result['baseline']}"
    )
    render_table(result, console, title=title)
    message = features_only_message(result)
    if message:
        console.print(f"[bold]{message}[/]", highlight=False, soft_wrap=True)
    elif result["stats_share"] is not None:
        console.print(
            f"[bold]stats_share {result['stats_share']:.1%}[/]: share of |Integrated Gradients| on "
            f"all reused statistics together (features {1 - result['stats_share']:.1%}).",
            highlight=False,
            soft_wrap=True,
        )
    for note in result["notes"]:
        if not note.startswith("this model does not reuse"):
            console.print(f"note: {note}", highlight=False, style="yellow", soft_wrap=True)
    if result.get("bn_gap"):
        render_bn_gap(result["bn_gap"], console)
    if result.get("files"):
        console.print("wrote " + ", ".join(result["files"]), highlight=False, soft_wrap=True)


def write_attribution(path: str | Path, result: dict) -> Path:
    """attribution.json, atomically (temporary file + os.replace). Per-class rows are
    left to the CSV."""
    path = Path(path)
    doc = {k: v for k, v in result.items() if k != "per_class"}
    write_json(path, doc)
    return path


def write_per_class_csv(path: str | Path, result: dict) -> Path:
    """One row per (class, unit): the per-class measures (class = true label)."""
    path = Path(path)
    rows = result.get("per_class") or []
    cols = ["class", "class_name", "images", "accuracy", "unit", "level", "size", *CLASS_MEASURES]
    buf = io.StringIO()
    wr = csv.writer(buf, lineterminator="\n")
    wr.writerow(cols)
    for r in rows:
        wr.writerow(["" if r.get(c) is None else (repr(r[c]) if isinstance(r[c], float) else r[c]) for c in cols])
    atomic_write(path, buf.getvalue())
    return path
