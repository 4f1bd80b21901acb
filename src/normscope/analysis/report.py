"""Output: the features-only message, the table, attribution.json, the per-class CSV and
the chart."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from normscope.analysis.bn_gap import render_bn_gap
from normscope.analysis.common import CLASS_MEASURES
from normscope.fileio import atomic_write, write_json

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

#: the chart's bars: (measure, label)
CHART_MEASURES = (
    ("ig_share", "IG share"),
    ("logit_share", "logit share"),
    ("permutation_accuracy_drop", "permutation Δacc"),
    ("ablation_accuracy_drop", "ablation Δacc"),
)


def features_only_message(result: dict) -> str | None:
    if not result.get("features_only"):
        return None
    return (
        "This model does not reuse normalization statistics: its classifier sees the flattened "
        "features only, so all reliance is on the features (stats_share = 0)."
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


METHOD_NAMES = {
    "ig": "Integrated Gradients",
    "logit": "logit decomposition",
    "permutation": "permutation",
    "ablation": "ablation",
}
BASELINE_NAMES = {"train-mean": "training-mean baseline", "zero": "zero baseline"}


def attribution_subtitle(result: dict) -> str:
    """What the numbers were measured with: the methods, the baseline, the target logit."""
    methods = ", ".join(METHOD_NAMES.get(m, m) for m in result.get("methods", []))
    baseline = BASELINE_NAMES.get(result.get("baseline"), str(result.get("baseline")))
    target = {"pred": "predicted class", "label": "true class"}.get(result.get("target"), str(result.get("target")))
    return f"{methods}; {baseline}; {target}"


def attribution_figure(result: dict, title: str = ""):
    """The chart as a matplotlib Figure (Agg canvas; the global backend is left alone): features
    versus statistics (left) and per norm layer (right) for the IG share, the logit share and
    the permutation / ablation accuracy drops; the legend beside the panels; the title names
    the methods and the baseline. A model without reuse gets one panel, "features only"."""
    # matplotlib is heavy: only the chart needs it
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    measures = [
        (k, lbl) for k, lbl in CHART_MEASURES if any(r.get(k) is not None for r in result["totals"] + result["layers"])
    ]
    msg = features_only_message(result)
    panels = [("features only (no reused statistics)" if msg else "features vs statistics", result["totals"])]
    feats = [r for r in result["totals"] if r["name"] == "features"]
    if result["layers"]:
        panels.append(("per norm layer", feats + result["layers"]))
    fig = Figure(figsize=(6 + 3.2 * (len(panels) - 1) + 0.35 * len(result["layers"]), 4.0), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    width = 0.8 / max(1, len(measures))
    for ax, (ptitle, rows) in zip(axes, panels):
        xs = np.arange(len(rows))
        for j, (k, lbl) in enumerate(measures):
            vals = [r.get(k) or 0.0 for r in rows]
            ax.bar(xs + (j - (len(measures) - 1) / 2) * width, vals, width, label=lbl, color=f"C{j}")
        ax.set_xticks(xs)
        ax.set_xticklabels(
            [r["name"] for r in rows], rotation=30 if len(rows) > 4 else 0, ha="right" if len(rows) > 4 else "center"
        )
        ax.axhline(0, color="black", lw=0.6)
        ax.set_title(ptitle, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        ax.set_ylim(min(0.0, min([r.get(k) or 0.0 for r in rows for k, _ in measures] + [0]) * 1.1), 1.0)
    axes[0].set_ylabel("share / accuracy drop")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle("\n".join(t for t in (title, attribution_subtitle(result)) if t), fontsize=10)
    fig.tight_layout()
    return fig


def plot_attribution(path: str | Path, result: dict, title: str = "") -> Path:
    """:func:`attribution_figure` as PNG (the legend beside the panels kept in the picture)."""
    fig = attribution_figure(result, title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    atomic_write(path, buf.getvalue())
    return Path(path)
