"""The report's figures: learning curves of all runs overlaid per variant (mean and a band of
± one std over seeds), confusion matrices summed over seeds, attribution charts, the model
diagrams (graphviz SVG); images as data URIs so the page needs nothing else."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np

from normscope.study.formats import variant_colour, variant_label
from normscope.study.report_data import Confusion, RunView

CURVE_PANELS = (
    ("train_loss", "training loss"),
    ("val_loss", "validation loss"),
    ("val_accuracy", "validation accuracy"),
)


def png_data_uri(fig) -> str:
    """A matplotlib Figure as a base64 PNG data URI (the legend outside the axes kept)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _by_epoch(runs: list[RunView], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(epochs, mean, std) over the runs that recorded `key` at that epoch."""
    values: dict[int, list[float]] = {}
    for r in runs:
        for row in r.history:
            if row.get(key) is not None:
                values.setdefault(int(row["epoch"]), []).append(float(row[key]))
    epochs = np.array(sorted(values))
    mean = np.array([np.mean(values[e]) for e in epochs])
    std = np.array([np.std(values[e], ddof=1) if len(values[e]) > 1 else 0.0 for e in epochs])
    return epochs, mean, std


def curves_overlay_figure(runs: list[RunView], family: str):
    """One panel per curve (CURVE_PANELS); per variant its mean over seeds and a ± std band."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # matplotlib: heavy, only for figures
    from matplotlib.figure import Figure  # (as above)
    from matplotlib.ticker import MaxNLocator  # (as above)

    fig = Figure(figsize=(12, 3.4), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(CURVE_PANELS))
    variants = list(dict.fromkeys(r.variant for r in runs if r.family == family))
    for ax, (key, label) in zip(axes, CURVE_PANELS):
        for v in variants:
            members = [r for r in runs if r.family == family and r.variant == v and r.history]
            epochs, mean, std = _by_epoch(members, key)
            if not len(epochs):
                continue
            colour = variant_colour(v)
            ax.plot(epochs, mean, "-o", ms=3, color=colour, label=f"{variant_label(v)} (n={len(members)})")
            if len(members) > 1:
                ax.fill_between(epochs, mean - std, mean + std, color=colour, alpha=0.2, linewidth=0)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    fig.suptitle(f"{family}: mean over seeds, band ± one std", fontsize=10)
    fig.tight_layout()
    return fig


def summed_confusion(runs: list[RunView]) -> Confusion | None:
    """The confusion matrices of runs with the same classes, summed; None without any."""
    found = [r.confusion for r in runs if r.confusion is not None]
    if not found or any(c.classes != found[0].classes for c in found):
        return None
    total = np.sum([np.asarray(c.counts) for c in found], axis=0)
    return Confusion(found[0].classes, total.astype(int).tolist())


def diagram_svg(run: RunView) -> str | None:
    """The graphviz diagram of the run's description.yml, as inline SVG (no XML prolog); None
    where the run directory or graphviz is missing."""
    from normscope.errors import NormscopeError
    from normscope.model.graph import build_graph
    from normscope.report.draw.graphviz import render_svg, to_dot
    from normscope.report.draw.tikz import ToolMissing
    from normscope.rundir.layout import DESCRIPTION
    from normscope.spec import load_spec

    if run.path is None or not (Path(run.path) / DESCRIPTION).is_file():
        return None
    try:
        spec = load_spec(Path(run.path) / DESCRIPTION)
        svg = render_svg(to_dot(build_graph(spec), abbreviations=spec.draw["abbreviations"], title=spec.draw["title"]))
    except (NormscopeError, ToolMissing, OSError):
        return None
    text = svg.decode("utf-8")
    return text[text.index("<svg") :] if "<svg" in text else None


def strip_size(svg: str) -> str:
    """The SVG scaled to its container: width and height of the root element dropped (viewBox kept)."""
    return re.sub(r'<svg width="[^"]*" height="[^"]*"', "<svg", svg, count=1)
