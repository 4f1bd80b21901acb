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

__all__ = ["HISTORY_COLUMNS", "write_history", "read_history", "write_per_class", "write_confusion", "plot_curves"]

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


def plot_curves(path: Path, history: list[dict], title: str = "") -> None:
    """Loss and accuracy per epoch (train and validation) and the learning rate, as PNG.
    Uses the Agg canvas directly: the global matplotlib backend is left alone."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # matplotlib: heavy, only for the curves
    from matplotlib.figure import Figure  # (as above)
    from matplotlib.ticker import MaxNLocator  # (as above)

    fig = Figure(figsize=(12, 3.6), dpi=110)
    FigureCanvasAgg(fig)
    ax_loss, ax_acc, ax_lr = fig.subplots(1, 3)
    ep = [r["epoch"] for r in history]

    def series(key):
        pts = [(e, r.get(key)) for e, r in zip(ep, history) if r.get(key) is not None]
        return [p[0] for p in pts], [p[1] for p in pts]

    for ax, what in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        for split, style in (("train", "-o"), ("val", "-s")):
            xs, ys = series(f"{split}_{what}")
            if xs:
                ax.plot(xs, ys, style, ms=3, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
        ax.legend()
    xs, ys = series("lr")
    ax_lr.plot(xs, ys, "-", color="tab:gray")
    ax_lr.set_xlabel("epoch")
    ax_lr.set_ylabel("learning rate (end of epoch)")
    ax_lr.grid(alpha=0.3)
    for ax in (ax_loss, ax_acc, ax_lr):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png"))
