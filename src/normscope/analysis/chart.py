"""The attribution chart (attribution.png): matplotlib only, no torch, so a report can draw it
from attribution.json."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from normscope.analysis.common import features_only_message
from normscope.fileio import atomic_write

#: the chart's bars: (measure, label)
CHART_MEASURES = (
    ("ig_share", "IG share"),
    ("logit_share", "logit share"),
    ("permutation_accuracy_drop", "permutation Δacc"),
    ("ablation_accuracy_drop", "ablation Δacc"),
)


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
