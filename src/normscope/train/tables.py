"""The tables and the figure of a run directory: metrics.csv (one row per epoch),
per_class.csv, confusion_matrix.csv and curves.png; all written atomically."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Iterable

from normscope.fileio import atomic_write
from normscope.train.errors import RunError

__all__ = [
    "HISTORY_COLUMNS",
    "write_history",
    "read_history",
    "write_per_class",
    "write_confusion",
    "curves_figure",
    "plot_curves",
]

HISTORY_COLUMNS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds")


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else str(v)
    return str(v)


def write_history(path: Path, history: Iterable[dict]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HISTORY_COLUMNS)
    for row in history:
        w.writerow([_fmt(row.get(c)) for c in HISTORY_COLUMNS])
    atomic_write(path, buf.getvalue())


def read_history(path: Path, advice: str = "re-run the training") -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            for r in csv.DictReader(f):
                rows.append({k: (None if v == "" else (int(v) if k == "epoch" else float(v))) for k, v in r.items()})
    except (ValueError, TypeError, AttributeError, csv.Error, UnicodeDecodeError):
        raise RunError(f"{path}: not a table of epochs (line {len(rows) + 2}); {advice}") from None
    return rows


def write_per_class(path: Path, class_names, per_class_accuracy, confusion) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["class", "name", "support", "correct", "accuracy"])
    for i, name in enumerate(class_names):
        support = int(sum(confusion[i]))
        w.writerow([i, name, support, int(confusion[i][i]), _fmt(float(per_class_accuracy[i])) if support else ""])
    atomic_write(path, buf.getvalue())


def write_confusion(path: Path, class_names, confusion) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["true \\ predicted", *class_names])
    for name, row in zip(class_names, confusion):
        w.writerow([name, *[int(v) for v in row]])
    atomic_write(path, buf.getvalue())


def curves_figure(history: list[dict], title: str = ""):
    """Loss and accuracy per epoch (train and validation) and the learning rate, as a
    matplotlib Figure on the Agg canvas (the global backend is left alone). Ticks on whole
    epochs only; a learning rate that never changes gets a note instead of a flat panel."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # matplotlib: heavy, only for the curves
    from matplotlib.figure import Figure  # (as above)
    from matplotlib.ticker import MaxNLocator  # (as above)

    ep = [r["epoch"] for r in history]

    def series(key):
        pts = [(e, r.get(key)) for e, r in zip(ep, history) if r.get(key) is not None]
        return [p[0] for p in pts], [p[1] for p in pts]

    lr_x, lr_y = series("lr")
    constant_lr = len(set(lr_y)) <= 1
    fig = Figure(figsize=(8 if constant_lr else 12, 3.6), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2 if constant_lr else 3)
    for ax, what in zip(axes, ("loss", "accuracy")):
        for split, style in (("train", "-o"), ("val", "-s")):
            xs, ys = series(f"{split}_{what}")
            if xs:
                ax.plot(xs, ys, style, ms=3, label=split)
        ax.set_ylabel(what)
        ax.legend()
    if not constant_lr:
        axes[2].plot(lr_x, lr_y, "-o", ms=3, color="tab:gray")
        axes[2].set_ylabel("learning rate (end of epoch)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        if ep and min(ep) == max(ep):  # one epoch: one tick, in the middle
            ax.set_xlim(ep[0] - 0.5, ep[0] + 0.5)
    notes = [f"learning rate {lr_y[0]:g} throughout"] if constant_lr and lr_y else []
    if title or notes:
        fig.suptitle("; ".join([t for t in (title,) if t] + notes), fontsize=10)
    fig.tight_layout()
    return fig


def plot_curves(path: Path, history: list[dict], title: str = "") -> None:
    """:func:`curves_figure` as PNG."""
    fig = curves_figure(history, title)
    atomic_write(path, lambda f: fig.savefig(f, format="png"))


def confusion_figure(class_names, confusion, title: str = ""):
    """A confusion matrix (rows = true class) as a matplotlib Figure: each row as shares of
    its true class (the colour), the counts written in the cells where they fit."""
    import numpy as np  # (as above: only for the figure)
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # (as above)
    from matplotlib.figure import Figure  # (as above)

    counts = np.asarray(confusion, dtype=float)
    k = len(class_names)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = min(3 + 0.35 * k, 12)
    fig = Figure(figsize=(size + 1, size), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    labels = [str(c)[:14] for c in class_names] if k <= 30 else []
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 12:
        for i in range(k):
            for j in range(k):
                ax.text(
                    j,
                    i,
                    f"{counts[i, j]:.0f}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if shares[i, j] > 0.5 else "black",
                )
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_confusion(path: Path, class_names, confusion, title: str = "") -> None:
    """:func:`confusion_figure` as PNG (confusion.png of a run directory)."""
    fig = confusion_figure(class_names, confusion, title)
    atomic_write(path, lambda f: fig.savefig(f, format="png"))
