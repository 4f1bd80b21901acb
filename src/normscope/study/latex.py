"""The comparison as LaTeX: table.tex (mean ± std over seeds, the thesis' row beside ours with
`reference="thesis"`) and paired.tex (the claims). booktabs rules, math in $...$, ASCII only:
`\\input{table.tex}` compiles with pdflatex in a document that loads booktabs (and amsmath)."""

from __future__ import annotations

import re

from normscope.report.draw import escape
from normscope.spec.provenance import short
from normscope.study.formats import LABELS, TABLE_COLUMNS, fmt, fmt_interval, fmt_p, fmt_signed, model_name, side
from normscope.study.thesis import reference as thesis_reference

_MISSING = "---"
_TEX_LABELS = {**{k: escape(v) for k, v in LABELS.items()}, "stats_share": "reliance on stats", "auc": "AUC"}


def _math(text: str) -> str:
    """A number cell: in math mode (the minus and \\pm), or the dash of a missing value."""
    return text if text == _MISSING else "$" + re.sub(r",(?=\d)", "{,}", text) + "$"  # 21{,}080: no space


def _row(cells) -> str:
    return " & ".join(cells) + r" \\"


def provenance_comments(provenance: dict, what: str) -> list[str]:
    """LaTeX comment lines: what the file is, normscope's version and commit, each model's description hash."""
    lines = [f"% {what}", f"% made by `normscope compare` ({short(provenance)})"]
    for name, hashes in (provenance.get("descriptions") or {}).items():
        shown = ", ".join((h or "not recorded")[:12] for h in hashes)
        lines.append(f"% description sha256 of {name}: {shown}")
    return lines


def table_latex(agg: list[dict], provenance: dict, reference: str | None = None) -> str:
    """One booktabs tabular: a block per family, a row per variant (mean $\\pm$ std over seeds)."""
    cols = TABLE_COLUMNS
    width = len(cols) + 2
    lines = provenance_comments(provenance, "Test-set results, mean +- sample std over seeds")
    lines += [r"\begin{tabular}{l" + "r" * (width - 1) + "}", r"\toprule"]
    lines.append(_row(["model", "$n$", *(_TEX_LABELS[c] for c in cols)]))
    for family in dict.fromkeys(a["family"] for a in agg):
        lines += [r"\midrule", _row([rf"\multicolumn{{{width}}}{{l}}{{\textit{{{escape(family)}}}}}"])]
        for a in (a for a in agg if a["family"] == family):
            values = [_math(fmt(a[c], a[c + "_std"], c, pm=r" \pm ", missing=_MISSING)) for c in cols]
            lines.append(_row([escape(model_name(family, a["variant"])), str(a["n"]), *values]))
            ref = thesis_reference(family, a["variant"]) if reference == "thesis" else None
            if ref:
                lines.append(
                    _row([r"\quad\textit{thesis}", "1", *(_math(f"{ref[c]:.3f}") if c in ref else "" for c in cols)])
                )
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def paired_latex(claims: list[dict], provenance: dict) -> str:
    """One booktabs tabular of the claims, a block per family: pairs, both sides (mean $\\pm$ std
    of the paired seeds), the difference with its 95% CI, d_z, the p-values and the verdict."""
    head = ["norm", "metric", "$n$", "plain", "v2", r"v2 $-$ plain", r"95\% CI"]
    head += ["$d_z$", "$p$", r"$p_{\mathrm{W}}$", r"$p_{\mathrm{Holm}}$", "verdict"]
    lines = provenance_comments(provenance, "Paired by seed: v2 minus plain per claim (wide: landscape suits it)")
    lines += [r"\begin{tabular}{ll" + "r" * 9 + "l}", r"\toprule", _row(head)]
    family = None
    for c in claims:
        if c["family"] != family:
            family = c["family"]
            lines += [r"\midrule", _row([rf"\multicolumn{{{len(head)}}}{{l}}{{\textit{{{escape(family)}}}}}"])]
        m = c["metric"]
        cells = [escape(c["norm"]), _TEX_LABELS[m], str(c["n_pairs"])]
        cells += [_math(fmt(*side(c[s]), m, pm=r" \pm ", missing=_MISSING)) for s in ("plain", "v2")]
        cells += [_math(fmt_signed(c["difference"], missing=_MISSING))]
        cells += [_math(fmt_interval(c["ci_low"], c["ci_high"], missing=_MISSING))]
        cells += [_math(fmt_signed(c["effect_size"], 2, missing=_MISSING))]
        cells += [_math(_p_tex(c[k])) for k in ("p_value", "p_wilcoxon", "p_holm")]
        cells.append(escape(c["verdict"]))
        lines.append(_row(cells))
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def _p_tex(p) -> str:
    text = fmt_p(p, missing=_MISSING)
    if "e" in text:
        mantissa, exponent = text.split("e")
        return rf"{mantissa} \times 10^{{{int(exponent)}}}"
    return text
