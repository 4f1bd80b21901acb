"""The comparison's bar chart: one colour per variant in every panel (a norm's hue from the
norms table, light for plain and dark for reuse), metrics that are 0 for every variant left
out with a note, error bars only where there are several seeds, the legend beside the
panels, and the thesis' numbers as markers with ``reference="thesis"``.

:func:`bar_figure` builds the matplotlib Figure (what the tests read); :func:`bar_chart`
writes it as PNG.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from normscope import norms
from normscope.fileio import atomic_write
from normscope.study.formats import LABELS, variant_colour, variant_label
from normscope.study.thesis import reference as thesis_reference

CHART_METRICS = ("accuracy", "auc", "precision", "recall")
THESIS_LABEL = "thesis (CIFAR-100, one run)"


def shown_metrics(agg: list[dict], metrics=CHART_METRICS) -> tuple[list[str], list[str]]:
    """(the metrics drawn, the metrics left out because every variant's mean is 0 or missing)."""
    hidden = [m for m in metrics if all(not a.get(m) for a in agg)]
    return [m for m in metrics if m not in hidden], hidden


def _has_error_bar(a: dict, metrics) -> bool:
    return a.get("n", 0) > 1 and any(a.get(m + "_std") is not None for m in metrics)


def _panel(ax, family: str, members: list[dict], metrics: list[str], reference: str | None) -> None:
    x = np.arange(len(metrics))
    width = 0.8 / max(len(members), 1)
    for i, a in enumerate(members):
        means = [a[m] or 0 for m in metrics]
        offset = (i - (len(members) - 1) / 2) * width
        errors = [a[m + "_std"] or 0 for m in metrics] if _has_error_bar(a, metrics) else None
        ax.bar(
            x + offset,
            means,
            width,
            yerr=errors,
            capsize=2 if errors else 0,
            color=variant_colour(a["variant"]),
            edgecolor="white",
            linewidth=0.5,
            label=variant_label(a["variant"]),
        )
        ref = thesis_reference(family, a["variant"]) if reference == "thesis" else None
        if ref:
            ax.scatter(
                [x[j] + offset for j, m in enumerate(metrics) if m in ref],
                [ref[m] for m in metrics if m in ref],
                marker="D",
                s=14,
                color="black",
                zorder=3,
                label=THESIS_LABEL,
            )
    ax.set_xticks(x, [LABELS[m] for m in metrics])
    ax.set_ylim(0, 1)
    seeds = sorted({a["n"] for a in members})
    spread = "mean ± std over seeds" if max(seeds) > 1 else "one seed each"
    ax.set_title(f"{family} (test set; {spread})", fontsize=10)
    ax.grid(axis="y", alpha=0.3)


def bar_figure(agg: list[dict], metrics=CHART_METRICS, reference: str | None = None):
    """The chart as a matplotlib Figure: one panel per family, one group of bars per metric."""
    # matplotlib: heavy, and only the charts need it; a bare Figure leaves the global backend alone
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    families = list(dict.fromkeys(a["family"] for a in agg))
    shown, hidden = shown_metrics(agg, metrics)
    fig = Figure(figsize=(1.2 + (1.6 + 1.1 * max(len(shown), 1)) * len(families) + 2.2, 4.2), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(families), squeeze=False)[0]
    for ax, family in zip(axes, families):
        _panel(ax, family, [a for a in agg if a["family"] == family], shown, reference)
    handles: dict = {}
    for ax in axes:  # one entry per variant (the same colour in every panel), in the table's order
        for h, lbl in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lbl, h)
    order = sorted(handles, key=lambda lbl: (lbl == THESIS_LABEL, _label_rank(lbl)))
    fig.legend([handles[k] for k in order], order, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    if hidden:
        names = ", ".join(LABELS[m] for m in hidden)
        fig.text(0.01, 0.01, f"not shown: {names} (0 for every variant)", fontsize=8, color="dimgray")
    fig.tight_layout(rect=(0, 0.04 if hidden else 0, 1, 1))
    return fig


def _label_rank(label: str) -> int:
    keys = [v for v in norms.ALL_VARIANTS if variant_label(v) == label]
    return norms.ALL_VARIANTS.index(keys[0]) if keys else len(norms.ALL_VARIANTS)


def bar_chart(agg: list[dict], path: Path, metrics=CHART_METRICS, reference: str | None = None) -> None:
    """The chart (:func:`bar_figure`) as PNG; the legend beside the panels is kept in the picture."""
    fig = bar_figure(agg, metrics, reference)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110, bbox_inches="tight"))
