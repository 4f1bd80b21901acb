"""What `normscope report` shows, as values: a study's design, its comparison (claims,
per-variant table, reliance) and its runs (learning curves, confusion matrices, attribution,
descriptions), read from JSON and CSV files only (no torch).

Sources: a study directory (study.json, comparison.json, runs/), a comparison directory or
a comparison.json file (`normscope compare`; the runs are read where they still are), or
one run directory (results.json).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from normscope.analysis.common import ATTRIBUTION_JSON
from normscope.errors import NormscopeError
from normscope.rundir.layout import CONFIG, CONFUSION, METRICS, RESULTS
from normscope.study.formats import TABLE_COLUMNS
from normscope.study.layout import COMPARISON, RUNS, STUDY
from normscope.train.tables import read_history

#: study.json's keys shown as the protocol (those present), in this order
PROTOCOL_KEYS = ("data", "epochs", "subset", "test_subset", "batch_size", "lr", "description")


class ReportError(NormscopeError):
    """A source the report cannot read."""


@dataclass(frozen=True)
class Confusion:
    classes: list[str]
    counts: list[list[int]]  # rows: true class, columns: predicted


@dataclass(frozen=True)
class RunView:
    name: str
    family: str
    variant: str
    seed: int
    path: Path | None  # None: the run directory is not where the comparison saw it
    history: list[dict] = field(default_factory=list)
    confusion: Confusion | None = None
    attribution: dict | None = None
    cell: dict = field(default_factory=dict)  # the run's factor levels (study.json), if any


@dataclass(frozen=True)
class Design:
    families: list[str]
    variants: list[str]  # variant keys, the norms table's order
    seeds: list[int]
    factors: dict[str, list]  # factor key -> levels; empty: a plain variant x seed study
    protocol: dict[str, Any]
    provenance: dict[str, Any]


@dataclass(frozen=True)
class Report:
    title: str
    source: Path
    kind: str  # "study" | "comparison" | "run"
    design: Design
    aggregate: list[dict]  # comparison.json's per-variant means and stds
    claims: list[dict]
    stats_share: list[dict]
    alpha: float | None
    warnings: list[str]
    runs: list[RunView]
    notes: list[str] = field(default_factory=list)


def _json(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ReportError(f"{path}: not a JSON object")
    return doc


def read_confusion(path: Path) -> Confusion | None:
    """confusion_matrix.csv (rows = true class); None where there is none or it is damaged."""
    if not path.is_file():
        return None
    try:
        with open(path, newline="", encoding="utf-8") as f:
            head, *rows = list(csv.reader(f))
        return Confusion(classes=head[1:], counts=[[int(v) for v in r[1:]] for r in rows])
    except (ValueError, OSError, UnicodeDecodeError, csv.Error):
        return None


def _run_view(path: Path | None, family: str, variant: str, seed: int, cell: dict) -> RunView:
    name = path.name if path is not None else f"{family}-{variant}-s{seed}"
    if path is None or not path.is_dir():
        return RunView(name, family, variant, seed, None, cell=cell)
    attribution = _json(path / ATTRIBUTION_JSON) if (path / ATTRIBUTION_JSON).is_file() else None
    return RunView(
        name,
        family,
        variant,
        seed,
        path,
        history=read_history(path / METRICS),
        confusion=read_confusion(path / CONFUSION),
        attribution=attribution,
        cell=cell,
    )


def _study_cells(study: dict, base: Path) -> dict[str, dict]:
    """run directory (resolved) -> its factor levels, from study.json's runs."""
    out = {}
    for entry in study.get("runs", []):
        levels = entry.get("cell") or entry.get("levels") or {}
        out[str((base / entry.get("run_dir", "")).resolve())] = levels
    return out


def _runs(rows: list[dict], base: Path, study: dict | None) -> list[RunView]:
    cells = _study_cells(study, base) if study else {}
    out = []
    for r in rows:
        recorded = Path(r["run"])
        # the study's own runs first (a copied or moved study), then where the comparison saw them
        candidates = [base / RUNS / recorded.name, base / recorded.name, recorded]
        path = next((p for p in candidates if (p / RESULTS).is_file()), None)
        cell = cells.get(str(path.resolve()), {}) if path else {}
        out.append(_run_view(path, r["family"], r["variant"], r["seed"], cell))
    return out


def _design(comparison: dict, study: dict | None) -> Design:
    rows = comparison.get("rows", [])
    agg = comparison.get("aggregate", [])
    study = study or {}
    protocol = {k: study[k] for k in PROTOCOL_KEYS if study.get(k) is not None}
    if "data" not in protocol:
        protocol["data"] = ", ".join(sorted({str(r.get("data")) for r in rows}))
    return Design(
        families=list(dict.fromkeys(a["family"] for a in agg)),
        variants=list(dict.fromkeys(a["variant"] for a in agg)),
        seeds=sorted({r["seed"] for r in rows}),
        factors={str(k): list(v) for k, v in (study.get("factors") or {}).items()},
        protocol=protocol,
        provenance=comparison.get("provenance", {}),
    )


def _single_run(run_dir: Path) -> dict:
    """A comparison of one run: its test metrics as a one-seed 'aggregate', no claims."""
    res = _json(run_dir / RESULTS)
    cfg = _json(run_dir / CONFIG) if (run_dir / CONFIG).is_file() else {}
    if res.get("status") != "completed" or "test" not in res:
        raise ReportError(f"{run_dir}: the run has not finished (status {res.get('status')!r}); nothing to report yet")
    family, variant, seed = cfg.get("family", res.get("name")), res.get("variant", "none"), res.get("seed", 0)
    values = {**res["test"], "params": (res.get("params") or {}).get("total")}
    att = _json(run_dir / ATTRIBUTION_JSON) if (run_dir / ATTRIBUTION_JSON).is_file() else {}
    values["stats_share"] = att.get("stats_share")
    entry = {"family": family, "variant": variant, "n": 1, "seeds": [seed]}
    for col in TABLE_COLUMNS:
        entry[col], entry[col + "_std"] = values.get(col), None
    row = {"run": str(run_dir), "family": family, "variant": variant, "seed": seed, "data": res.get("data")}
    return {"provenance": res.get("provenance") or {}, "rows": [row], "aggregate": [entry], "claims": []}


def _comparison_source(path: Path) -> tuple[str, dict, Path, dict | None]:
    """(kind, comparison.json, the directory runs are looked for under, study.json or None)."""
    if path.is_file():
        doc = _json(path)
        if "aggregate" not in doc or "rows" not in doc:
            raise ReportError(f"{path}: not a comparison (no 'aggregate' and 'rows'; see normscope compare)")
        study = _json(path.parent / STUDY) if (path.parent / STUDY).is_file() else None
        return ("study" if study else "comparison"), doc, path.parent, study
    if (path / RESULTS).is_file():
        return "run", _single_run(path), path.parent, None
    study = _json(path / STUDY) if (path / STUDY).is_file() else None
    if (path / COMPARISON).is_file():
        return ("study" if study else "comparison"), _json(path / COMPARISON), path, study
    if study is not None:
        raise ReportError(f"{path}: the study has no {COMPARISON} yet; write it with: normscope compare {path}")
    raise ReportError(f"{path}: not a study, comparison or run directory (no {STUDY}, {COMPARISON} or {RESULTS})")


def load_report(source: str | Path) -> Report:
    """The report's values from a study directory, a comparison (directory or JSON file) or a run."""
    path = Path(source)
    if not path.exists():
        raise ReportError(f"{path}: no such file or directory")
    kind, comparison, base, study = _comparison_source(path)
    design = _design(comparison, study)
    runs = _runs(comparison.get("rows", []), base, study)
    notes = []
    missing = [r.name for r in runs if r.path is None]
    if missing:
        notes.append(
            f"{len(missing)} of the {len(runs)} runs are not where the comparison saw them "
            "(only the comparison was kept): no learning curves, confusion matrices or attribution for them"
        )
    title = f"{', '.join(design.families)} on {design.protocol.get('data', '?')}"
    return Report(
        title=title,
        source=path,
        kind=kind,
        design=design,
        aggregate=comparison.get("aggregate", []),
        claims=comparison.get("claims", []),
        stats_share=comparison.get("stats_share") or [],
        alpha=comparison.get("alpha"),
        warnings=list(comparison.get("warnings", [])),
        runs=runs,
        notes=notes,
    )
