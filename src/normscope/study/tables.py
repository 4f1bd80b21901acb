"""Writing a comparison: the markdown table, the paired view, the CSV, the bar chart."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from normscope import norms
from normscope.fileio import atomic_write
from normscope.study.compare import AVERAGED, METRICS, aggregate, paired
from normscope.study.thesis import reference as thesis_reference
from normscope.train import runs

LABELS = {
    "loss": "loss",
    "precision": "precision",
    "recall": "recall",
    "auc": "AUC",
    "accuracy": "accuracy",
    "top5_accuracy": "top-5",
    "macro_f1": "macro F1",
    "params": "params",
    "stats_share": "reliance on stats",
}
TABLE_COLUMNS = METRICS[:5] + ("top5_accuracy", "params", "stats_share")
CHART_METRICS = ("accuracy", "auc", "precision", "recall")


def model_name(family: str, variant: str) -> str:
    """A family and a variant key -> the model's name (as `normscope.norms.variant_name` writes it)."""
    return norms.variant_name(family, *norms.parse_variant(variant))


def _fmt(mean, std, key) -> str:
    if mean is None:
        return "—"
    if key == "params":
        return f"{mean:,.0f}"
    digits = 3 if key != "loss" or abs(mean) < 1000 else 1
    text = f"{mean:.{digits}f}"
    return text + (f" ± {std:.{digits}f}" if std is not None else "")


def _cells(values) -> str:
    return "| " + " | ".join(values) + " |"


def table_markdown(agg: list[dict], reference: str | None = None) -> str:
    """One table per family, mean ± std over seeds; `reference="thesis"` adds the thesis' numbers."""
    cols = TABLE_COLUMNS
    lines = []
    for family in dict.fromkeys(a["family"] for a in agg):
        lines += [
            f"### {family}",
            "",
            _cells(["model", "n", *(LABELS[c] for c in cols)]),
            "|---|---|" + "---|" * len(cols),
        ]
        for a in (a for a in agg if a["family"] == family):
            lines.append(
                _cells([model_name(family, a["variant"]), str(a["n"]), *(_fmt(a[c], a[c + "_std"], c) for c in cols)])
            )
            ref = thesis_reference(family, a["variant"]) if reference == "thesis" else None
            if ref:
                lines.append(_cells(["*thesis*", "1", *((f"{ref[c]:.3f}" if c in ref else "") for c in cols)]))
        lines.append("")
    return "\n".join(lines)


def paired_markdown(pairs: list[dict]) -> str:
    lines = [
        "| family | norm | metric | plain | v2 | v2 − plain | 2·SE | beyond seed spread |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in pairs:
        se = "—" if p["se"] is None else f"{2 * p['se']:.4f}"
        verdict = "—" if p["beyond_spread"] is None else ("yes" if p["beyond_spread"] else "no")
        lines.append(
            f"| {p['family']} | {p['norm']} | {p['metric']} | {p['plain']:.4f} | {p['v2']:.4f} | "
            f"{p['difference']:+.4f} | {se} | {verdict} |"
        )
    return "\n".join(lines) + "\n"


def write_csv(agg: list[dict], path: Path) -> None:
    cols = ["family", "variant", "n"] + [k for m in AVERAGED for k in (m, m + "_std")]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(agg)
    runs.write_text(path, buf.getvalue())


def bar_chart(agg: list[dict], path: Path, metrics=CHART_METRICS) -> None:
    """Grouped bars per variant (one group per metric), error bars = std over seeds."""
    # matplotlib: heavy, and only the chart needs it; a bare Figure leaves the global backend alone
    from matplotlib.figure import Figure

    families = list(dict.fromkeys(a["family"] for a in agg))
    fig = Figure(figsize=(7 * len(families), 4.2))
    axes = fig.subplots(1, len(families), squeeze=False)
    for ax, family in zip(axes[0], families):
        members = [a for a in agg if a["family"] == family]
        x = np.arange(len(metrics))
        width = 0.8 / max(len(members), 1)
        for i, a in enumerate(members):
            means = [a[m] or 0 for m in metrics]
            errs = [a[m + "_std"] or 0 for m in metrics]
            ax.bar(
                x + (i - (len(members) - 1) / 2) * width,
                means,
                width,
                yerr=errs,
                capsize=2,
                label=model_name(family, a["variant"]),
            )
        ax.set_xticks(x, [LABELS[m] for m in metrics])
        ax.set_ylim(0, 1)
        ax.set_title(f"{family} (test set; mean ± std over seeds)")
        ax.legend(fontsize=7, ncol=2)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))


def write_comparison(rows: list[dict], out_dir: Path, reference: str | None = None) -> dict:
    """table.md, table.csv, paired.md, chart.png (and study-level JSON) into out_dir."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    agg = aggregate(rows)
    pairs = paired(agg, "auc") + paired(agg, "accuracy")
    runs.write_text(out_dir / "table.md", table_markdown(agg, reference))
    runs.write_text(out_dir / "paired.md", paired_markdown(pairs))
    write_csv(agg, out_dir / "table.csv")
    bar_chart(agg, out_dir / "chart.png")
    summary = {"rows": rows, "aggregate": agg, "paired": pairs}
    runs.write_json(out_dir / "comparison.json", summary)
    return summary
