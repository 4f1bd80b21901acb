"""`normscope report`: the report's values (:mod:`normscope.study.report_data`) as one
self-contained HTML page: tables, PNG figures as data URIs, the diagrams as inline SVG, the
style sheet inline; the page requests nothing (jinja2 template templates/report/)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from normscope.fileio import atomic_write
from normscope.study.charts import bar_figure
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
    variant_colour,
    variant_label,
)
from normscope.study.report_data import Report, ReportError, RunView, load_report
from normscope.study.report_figures import (
    curves_overlay_figure,
    diagram_svg,
    png_data_uri,
    strip_size,
    summed_confusion,
)
from normscope.version import __version__

TEMPLATE = "report.html.j2"


@dataclass(frozen=True)
class Table:
    head: list[str]
    rows: list[list[str]]
    row_classes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Picture:
    title: str
    uri: str  # a data: URI
    alt: str


@dataclass(frozen=True)
class Diagram:
    title: str
    svg: str


@dataclass(frozen=True)
class Swatch:
    key: str
    label: str
    colour: str
    models: str


@dataclass(frozen=True)
class Page:
    """What the template fills in: strings, tables, pictures; no numbers left to format."""

    report: Report
    generated: str
    version: str
    swatches: list[Swatch]
    facts: list[tuple[str, str]]  # the design: (what, value)
    cells: Table | None  # a factor study's runs with their levels
    claims: Table
    table: Table
    reliance: Table | None
    chart: Picture
    curves: list[Picture]
    confusions: list[Picture]
    attributions: list[Picture]
    diagrams: list[Diagram]


def _facts(r: Report) -> list[tuple[str, str]]:
    d = r.design
    out = [("source", f"{r.kind}: {r.source}"), ("families", ", ".join(d.families))]
    out.append(("variants", ", ".join(variant_label(v) for v in d.variants)))
    out.append(("seeds", f"{len(d.seeds)}: {', '.join(map(str, d.seeds))}"))
    for key, levels in d.factors.items():
        out.append((f"factor {key}", ", ".join(map(str, levels))))
    out += [(k, str(v)) for k, v in d.protocol.items()]
    prov = d.provenance
    if prov.get("normscope"):
        commit = str(prov.get("git_commit") or "unknown")[:12] + (
            " (uncommitted changes)" if prov.get("git_dirty") else ""
        )
        out.append(("compared with", f"normscope {prov['normscope']}, commit {commit}"))
    for name, hashes in (prov.get("descriptions") or {}).items():
        out.append((f"description {name}", ", ".join(str(h)[:12] for h in hashes)))
    return out


def _cells(r: Report) -> Table | None:
    keys = list(r.design.factors)
    if not keys:
        return None
    rows = [[x.name, variant_label(x.variant), str(x.seed), *(str(x.cell.get(k, "—")) for k in keys)] for x in r.runs]
    return Table(["run", "variant", "seed", *keys], rows)


def _claims(r: Report) -> Table:
    head = ["family", "norm", "metric", "pairs", "plain", "v2", "v2 − plain", "95% CI", "d_z", "p (t)", "p (Holm)"]
    rows, classes = [], []
    for c in r.claims:
        rows.append(
            [
                c["family"],
                c["norm"],
                LABELS.get(c["metric"], c["metric"]),
                str(c["n_pairs"]),
                fmt(*side(c["plain"]), c["metric"]),
                fmt(*side(c["v2"]), c["metric"]),
                fmt_signed(c["difference"]),
                fmt_interval(c["ci_low"], c["ci_high"]),
                fmt_signed(c["effect_size"], 2),
                fmt_p(c["p_value"]),
                fmt_p(c["p_holm"]),
                c["verdict"],
            ]
        )
        classes.append("verdict-" + c["verdict"].split()[-1])
    return Table(head + ["verdict"], rows, classes)


def _table(r: Report) -> Table:
    rows = [
        [
            model_name(a["family"], a["variant"]),
            str(a["n"]),
            *(fmt(a.get(c), a.get(c + "_std"), c) for c in TABLE_COLUMNS),
        ]
        for a in r.aggregate
    ]
    return Table(["model", "n", *(LABELS[c] for c in TABLE_COLUMNS)], rows)


def _reliance(r: Report) -> Table | None:
    if not r.stats_share:
        return None
    rows = [
        [
            model_name(s["family"], s["variant"]),
            str(s["n"]),
            fmt_unsigned(s["mean"]),
            fmt_interval(s["ci_low"], s["ci_high"], 3, signed=False),
        ]
        for s in r.stats_share
    ]
    return Table(["model", "n", "stats_share (IG)", "95% CI"], rows)


def _groups(r: Report) -> list[tuple[str, str, list[RunView]]]:
    """(family, variant, its runs with a run directory) in the comparison's order."""
    keys = list(dict.fromkeys((x.family, x.variant) for x in r.runs))
    return [(f, v, [x for x in r.runs if (x.family, x.variant) == (f, v) and x.path is not None]) for f, v in keys]


def _figures(r: Report) -> dict:
    from normscope.analysis.chart import attribution_figure
    from normscope.train.tables import confusion_figure

    curves = [
        Picture(f"{f}: learning curves", png_data_uri(curves_overlay_figure(r.runs, f)), f"learning curves of {f}")
        for f in r.design.families
        if any(x.history for x in r.runs if x.family == f)
    ]
    confusions, attributions, diagrams = [], [], []
    for family, variant, members in _groups(r):
        name = model_name(family, variant)
        total = summed_confusion(members)
        if total is not None:
            seeds = len([m for m in members if m.confusion is not None])
            title = f"{name} (test set, {seeds} seed{'s' if seeds > 1 else ''} summed)"
            confusions.append(Picture(title, png_data_uri(confusion_figure(total.classes, total.counts, title)), title))
        attributed = next((m for m in members if m.attribution), None)
        if attributed is not None:
            title = f"{name}, seed {attributed.seed}"
            uri = png_data_uri(attribution_figure(attributed.attribution, title=title))
            attributions.append(Picture(title, uri, f"attribution of {title}"))
        svg = next((s for s in map(diagram_svg, members[:1]) if s), None)
        if svg:
            diagrams.append(Diagram(name, strip_size(svg)))
    return {"curves": curves, "confusions": confusions, "attributions": attributions, "diagrams": diagrams}


def build_page(report: Report) -> Page:
    """The page's values: every figure drawn, every number formatted."""
    chart = Picture("test metrics", png_data_uri(bar_figure(report.aggregate)), "bar chart")
    swatches = [
        Swatch(v, variant_label(v), variant_colour(v), ", ".join(model_name(f, v) for f in report.design.families))
        for v in report.design.variants
    ]
    return Page(
        report=report,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        version=__version__,
        swatches=swatches,
        facts=_facts(report),
        cells=_cells(report),
        claims=_claims(report),
        table=_table(report),
        reliance=_reliance(report),
        chart=chart,
        **_figures(report),
    )


def render_html(page: Page) -> str:
    import jinja2  # only the report renders templates

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("normscope", "templates/report"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template(TEMPLATE).render(page=page)


def write_report(source: str | Path, out: str | Path | None = None) -> Path:
    """The report of a study, comparison or run as one HTML file; returns its path (default:
    report.html in the study or comparison directory, beside the comparison file, or in the run)."""
    report = load_report(source)
    src = Path(source)
    target = Path(out) if out is not None else (src.parent if src.is_file() else src) / "report.html"
    if target.is_dir():
        raise ReportError(f"{target}: a directory; give the HTML file's name (-o FILE.html)")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportError(f"cannot create {target.parent}: {exc.strerror}") from None
    html = render_html(build_page(report))  # everything drawn before anything is written
    try:
        atomic_write(target, html)
    except OSError as exc:
        raise ReportError(f"cannot write {target}: {exc.strerror}") from None
    return target
