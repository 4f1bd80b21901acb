"""Writing a comparison: the results table, the paired claims, the reliance table (Markdown;
LaTeX in `normscope.study.latex`), the CSV, the bar chart and comparison.json."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import normscope.rundir as runs
from normscope.study.charts import bar_chart
from normscope.study.compare import AVERAGED, aggregate, comparison_provenance, description_warnings
from normscope.study.factors import factor_markdown, level_claims
from normscope.study.formats import (
    LABELS,
    TABLE_COLUMNS,
    fmt,
    fmt_interval,
    fmt_p,
    fmt_signed,
    fmt_unsigned,
    model_name,
    side,
)
from normscope.study.latex import paired_latex, table_latex
from normscope.study.layout import CHART, COMPARISON
from normscope.study.stats import ALPHA, CLAIM_METRICS, MIN_PAIRS, WILCOXON_MIN_PAIRS, claims, stats_share
from normscope.study.thesis import reference as thesis_reference
from normscope.study.thesis import thesis_difference

FILES = (
    "table.md",
    "table.tex",
    "table.csv",
    "paired.md",
    "paired.tex",
    "reliance.md",
    "factors.md",
    CHART,
    COMPARISON,
)


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
                _cells([model_name(family, a["variant"]), str(a["n"]), *(fmt(a[c], a[c + "_std"], c) for c in cols)])
            )
            ref = thesis_reference(family, a["variant"]) if reference == "thesis" else None
            if ref:
                lines.append(_cells(["*thesis*", "1", *((f"{ref[c]:.3f}" if c in ref else "") for c in cols)]))
        lines.append("")
    return "\n".join(lines)


def paired_markdown(found: list[dict], reference: str | None = None) -> str:
    """The claims: per (family, norm, metric) the paired difference with its interval, tests and verdict."""
    head = ["family", "norm", "metric", "pairs", "plain", "v2", "v2 − plain", "95% CI", "d_z", "p (t)"]
    head += ["p (Wilcoxon)", "p (Holm)", "verdict"] + (["thesis v2 − plain"] if reference == "thesis" else [])
    lines = [_cells(head), "|" + "---|" * len(head)]
    notes = []
    for c in found:
        cells = [c["family"], c["norm"], LABELS[c["metric"]], str(c["n_pairs"])]
        cells += [fmt(*side(c["plain"]), c["metric"]), fmt(*side(c["v2"]), c["metric"])]
        cells += [fmt_signed(c["difference"]), fmt_interval(c["ci_low"], c["ci_high"])]
        cells += [fmt_signed(c["effect_size"], 2), fmt_p(c["p_value"])]
        cells += [fmt_p(c["p_wilcoxon"]), fmt_p(c["p_holm"]), c["verdict"]]
        if reference == "thesis":
            ref = thesis_difference(c["family"], c["norm"], c["metric"])
            cells.append(fmt_signed(ref, 3))
        lines.append(_cells(cells))
        for which in ("plain", "v2"):
            if c["unpaired"][which]:
                seeds = ", ".join(map(str, c["unpaired"][which]))
                many = "s" if len(c["unpaired"][which]) > 1 else ""
                notes.append(f"{c['family']} {c['norm']}: seed{many} {seeds} only in {which}, left out")
    lines += ["", paired_legend()]
    lines += [f"- {n}" for n in dict.fromkeys(notes)]
    return "\n".join(lines) + "\n"


def paired_legend() -> str:
    return (
        "Paired by seed (seed s of both variants starts from the same weights in the shared layers and "
        "sees the images in the same order). v2 − plain: mean of the per-seed differences; 95% CI: t "
        f"interval; d_z: mean / sd of the differences; p (t): paired t-test; p (Wilcoxon): signed-rank test "
        f"(from {WILCOXON_MIN_PAIRS} pairs); p (Holm): the t-test p adjusted over every claim of the "
        "comparison (both metrics; with factors, the contrasts between levels too). "
        f'Verdict at p (Holm) < {ALPHA}; "too few paired seeds" under {MIN_PAIRS} pairs.'
    )


def reliance_markdown(shares: list[dict]) -> str:
    """stats_share per reuse variant over seeds, the permutation accuracy drop, the largest layer."""
    head = [
        "model",
        "n",
        "stats_share (IG)",
        "95% CI",
        "largest per-layer IG share",
        "accuracy drop, all statistics permuted",
    ]
    lines = [_cells(head), "|" + "---|" * len(head)]
    for s in shares:
        drop = s["permutation_accuracy_drop"]
        top = "—" if s["largest_layer"] is None else f"{s['largest_layer']}: {s['largest_layer_share']:.3f}"
        drop_text = (
            "—"
            if drop["mean"] is None
            else f"{fmt_unsigned(drop['mean'])} {fmt_interval(drop['ci_low'], drop['ci_high'], 3, False)}"
        )
        lines.append(
            _cells(
                [
                    model_name(s["family"], s["variant"]),
                    str(s["n"]),
                    fmt_unsigned(s["mean"]),
                    fmt_interval(s["ci_low"], s["ci_high"], 3, signed=False),
                    top,
                    drop_text,
                ]
            )
        )
    return "\n".join(lines) + "\n"


def write_csv(agg: list[dict], path: Path) -> None:
    cols = ["family", "variant", "n"] + [k for m in AVERAGED for k in (m, m + "_std")]
    runs.write_text(path, pd.DataFrame(agg, columns=cols).to_csv(index=False, lineterminator="\n"))


def write_comparison(rows: list[dict], out_dir: Path, reference: str | None = None, metrics=CLAIM_METRICS) -> dict:
    """FILES into out_dir; returns what comparison.json holds (provenance, warnings, rows,
    aggregate, claims, stats_share)."""
    out_dir = Path(out_dir)
    runs.check_out_dir(out_dir)  # a file, or not writable: refused before anything is computed
    out_dir.mkdir(parents=True, exist_ok=True)
    agg = aggregate(rows)
    factors = {r["model_family"]: list(r["levels"]) for r in rows}
    every = claims(rows, metrics, extra=level_claims(rows, factors, metrics))
    summary = {
        "provenance": comparison_provenance(rows),
        "warnings": description_warnings(rows),
        "alpha": ALPHA,
        "factors": {family: keys for family, keys in factors.items() if keys},
        "rows": rows,
        "aggregate": agg,
        "claims": every,
        "stats_share": stats_share(rows),
    }
    reuse = [c for c in every if c["contrast"] == "reuse"]
    runs.write_text(out_dir / "table.md", table_markdown(agg, reference))
    runs.write_text(out_dir / "table.tex", table_latex(agg, summary["provenance"], reference))
    runs.write_text(out_dir / "paired.md", paired_markdown(reuse, reference))
    runs.write_text(out_dir / "paired.tex", paired_latex(reuse, summary["provenance"]))
    runs.write_text(out_dir / "factors.md", factor_markdown(rows, factors, every, metrics))
    runs.write_text(out_dir / "reliance.md", reliance_markdown(summary["stats_share"]))
    write_csv(agg, out_dir / "table.csv")
    bar_chart(agg, out_dir / CHART, reference=reference)
    runs.write_json(out_dir / COMPARISON, summary)
    return summary
