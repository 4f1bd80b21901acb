"""Comparing runs: collect the finished runs, aggregate over seeds (pandas), check where they came from.

The paired statistics are in `normscope.study.stats`, the written tables in
`normscope.study.tables`.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

import normscope.rundir as runs
from normscope import norms
from normscope.fileio import visible
from normscope.rundir import ATTRIBUTION_JSON
from normscope.spec.provenance import tool_provenance
from normscope.study.factors import assign_cells
from normscope.study.plan import RUNS, STUDY, StudyError

METRICS = ("loss", "precision", "recall", "auc", "accuracy", "top5_accuracy", "macro_f1")
# what aggregate() averages over seeds
AVERAGED = METRICS + ("params", "stats_share")


_UNIT_METRICS = frozenset(METRICS) - {"loss"}  # fractions: 0..1
MAX_LOSS = 1e100  # a finished run's loss is far below; above it means and differences overflow


def _finished_runs(d: Path) -> list[Path]:
    return sorted(r for r in d.iterdir() if (r / runs.RESULTS).is_file() and not r.is_symlink())


def linked_runs(paths) -> list[tuple[Path, Path]]:
    """The run directories under ``paths`` that are symbolic links (to another run, perhaps
    outside the study), with where they lead: never compared, never written through."""
    found = []
    for p in map(Path, paths):
        for where in (p / RUNS, p):
            if where.is_dir() and not where.is_symlink():
                found += [(r, r.resolve()) for r in sorted(where.iterdir()) if r.is_symlink() and r.is_dir()]
    return found


# a share is a ratio of float32 sums: all of the attribution on the statistics can come out as
# 1.0000001 (PerceptNet-IN-v2, whose features are constant), which is 1, not a tampered value
SHARE_ROUNDING = 1e-6


def _number(value, low: float, high: float) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high


def _check_results(d: Path, res: dict) -> None:
    """A completed run's results.json as compare reads it: a mapping of finite metrics in their
    range (fractions 0..1, a loss 0..1e100), integer seed and parameter counts; StudyError
    naming the file and the field otherwise."""
    where = d / runs.RESULTS
    test = res.get("test")
    if not isinstance(test, dict):
        raise StudyError(f"{where}: 'test' must be a mapping of metrics, got {type(test).__name__}")
    for metric in METRICS:
        value = test.get(metric)
        if value is None:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise StudyError(f"run {d.name}: test {metric} is {value} ({where}); a comparison needs finite values")
        high = 1.0 if metric in _UNIT_METRICS else MAX_LOSS
        if not _number(value, 0.0, high):
            raise StudyError(f"{where}: test.{metric} must be a number from 0 to {high:g}, got {value!r}")
    for key, kind in (("seed", int), ("best_epoch", (int, type(None))), ("params", (dict, type(None)))):
        value = res.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise StudyError(f"{where}: '{key}' has the wrong type ({type(value).__name__})")
    total = (res.get("params") or {}).get("total")
    if total is not None and (not isinstance(total, int) or isinstance(total, bool) or total < 0):
        raise StudyError(f"{where}: 'params.total' must be a count, got {total!r}")


def _run_dirs(paths) -> list[Path]:
    found = []
    for p in map(Path, paths):
        if (p / runs.RESULTS).is_file() or (p / runs.CONFIG).is_file():
            found.append(p)
        elif (p / STUDY).is_file() or (p / RUNS).is_dir():
            found += _finished_runs(p / RUNS)
        elif p.is_dir():
            found += _finished_runs(p)
        else:
            raise StudyError(f"{p}: not a study or run directory")
    if not found:
        raise StudyError(f"no finished runs (results.json) under {', '.join(map(str, paths))}")
    return found


def _attribution(d: Path) -> dict:
    """What the comparison reads from a run's attribution.json (None where there is none)."""
    path = d / ATTRIBUTION_JSON
    if not path.is_file():
        return {"stats_share": None, "stats_permutation_drop": None, "layer_ig_shares": None}
    att = runs.read_json(path)
    totals, layers = att.get("totals", []), att.get("layers", [])
    if not all(isinstance(v, list) and all(isinstance(t, dict) for t in v) for v in (totals, layers)):
        raise StudyError(f"{path}: 'totals' and 'layers' must be lists of mappings")
    shares = (att.get("stats_share"), *(t.get("ig_share") for t in layers))
    for value in (*shares, *(t.get("permutation_accuracy_drop") for t in totals)):
        if value is not None and not _number(value, -1.0 - SHARE_ROUNDING, 1.0 + SHARE_ROUNDING):
            raise StudyError(f"{path}: a share or accuracy drop is {value!r}, not a number from -1 to 1")
    totals = {t.get("name"): t for t in totals}
    return {
        "stats_share": att.get("stats_share"),
        "stats_permutation_drop": totals.get("statistics", {}).get("permutation_accuracy_drop"),
        "layer_ig_shares": [{"name": str(r.get("name")), "ig_share": r.get("ig_share")} for r in layers],
    }


def _row(d: Path, res: dict) -> dict:
    if res.get("variant") not in norms.ALL_VARIANTS:
        raise StudyError(f"{d}: unknown variant {res.get('variant')!r} (known: {', '.join(norms.ALL_VARIANTS)})")
    cfg = runs.read_json(d / runs.CONFIG) if (d / runs.CONFIG).is_file() else {}
    _check_results(d, res)
    if not isinstance(cfg.get("family", ""), str):
        raise StudyError(f"{d / runs.CONFIG}: 'family' must be a string, got {cfg['family']!r}")
    row = {
        "run": str(d),
        "family": visible(cfg.get("family", res.get("name"))),  # names reach tables and terminals
        "variant": res.get("variant"),
        "seed": res.get("seed"),
        "data": res.get("data"),
        "params": res.get("params", {}).get("total"),
        "best_epoch": res.get("best_epoch"),
        "description_sha256": (res.get("provenance") or {}).get("description_sha256"),
        "overrides": [o for o in cfg.get("overrides") or [] if isinstance(o, str)],
    }
    row.update({m: res["test"].get(m) for m in METRICS})
    row.update(_attribution(d))
    return row


def _cell_order(row: dict) -> tuple:
    """Cells of a family in the numeric order of their levels (as first met where not numbers)."""
    levels = []
    for value in row["levels"].values():
        try:
            levels.append((0, float(value), ""))
        except ValueError:
            levels.append((1, 0.0, value))
    return (row["model_family"], levels)


def _variant_rank(variant: str) -> int:
    return norms.ALL_VARIANTS.index(variant)


def unfinished(paths) -> list[tuple[Path, str]]:
    """The runs `collect` leaves out, with their status as it is (a run whose process died
    is `interrupted`, not `running`: `runs.effective_status`)."""
    out = []
    for d in _run_dirs(paths):
        status = runs.effective_status(d)
        if status != "completed":
            out.append((d, status))
    return out


def collect(paths) -> list[dict]:
    """One row per completed run: family, variant, seed, the test metrics, params, the
    description hash and the attribution's reliance on the statistics; families in the
    order first met, variants in the norms table's order, then by seed."""
    rows = []
    for d in _run_dirs(paths):
        res = runs.read_json(d / runs.RESULTS)
        if res.get("status") == "completed" and "test" in res:
            rows.append(_row(d, res))
    if not rows:
        raise StudyError("none of the runs has finished (status completed)")
    assign_cells(rows)  # a factor's levels split a family into cells ("vgg16 [momentum=0.9]")
    families = list(dict.fromkeys(r["family"] for r in sorted(rows, key=_cell_order)))
    rows.sort(key=lambda r: (families.index(r["family"]), _variant_rank(r["variant"]), r["seed"]))
    for a, b in zip(rows, rows[1:]):
        if (a["family"], a["variant"], a["seed"]) == (b["family"], b["variant"], b["seed"]):
            name = norms.variant_name(a["family"], *norms.parse_variant(a["variant"]))
            raise StudyError(f"two runs of {name} with seed {a['seed']}: {a['run']} and {b['run']}")
    return rows


def _none(v):
    return None if pd.isna(v) else float(v)


def aggregate(rows: list[dict]) -> list[dict]:
    """Mean and sample standard deviation over seeds per (family, variant), in the order of
    `collect`: {family, variant, n, seeds, <metric>, <metric>_std, ...}; a std of one value is None."""
    df = pd.DataFrame(rows)
    values = df[list(AVERAGED)].apply(pd.to_numeric, errors="coerce")
    groups = values.groupby([df["family"], df["variant"]], sort=False)
    mean, std = groups.mean(), groups.std(ddof=1)
    seeds = df.groupby(["family", "variant"], sort=False)["seed"].apply(sorted)
    out = []
    for key in mean.index:
        entry = {"family": key[0], "variant": key[1], "n": len(seeds[key]), "seeds": list(seeds[key])}
        for col in AVERAGED:
            entry[col], entry[col + "_std"] = _none(mean.loc[key, col]), _none(std.loc[key, col])
        out.append(entry)
    return out


def description_warnings(rows: list[dict]) -> list[str]:
    """A warning per (family, variant) whose runs were made from different expanded
    descriptions, or only partly recorded which (runs made before normscope recorded it)."""
    warnings = []
    df = pd.DataFrame(rows)
    for (family, variant), runs_ in df.groupby(["family", "variant"], sort=False):
        hashes = runs_["description_sha256"]
        known = hashes.dropna()
        name = norms.variant_name(family, *norms.parse_variant(variant))
        if known.nunique() > 1:
            parts = [
                f"{h[:12]} (seed{'s' if len(g) > 1 else ''} {', '.join(str(s) for s in g)})"
                for h, g in runs_.dropna(subset=["description_sha256"]).groupby("description_sha256")["seed"]
            ]
            warnings.append(
                f"the runs of {name} were made from {known.nunique()} different descriptions: " + "; ".join(parts)
            )
        elif len(known) and len(known) < len(hashes):
            warnings.append(
                f"{len(hashes) - len(known)} of the {len(hashes)} runs of {name} record no description hash"
            )
    return warnings


def comparison_provenance(rows: list[dict]) -> dict:
    """normscope's version and commit now, and the description hashes of each variant's runs."""
    descriptions: dict[str, list] = {}
    for r in rows:
        key = norms.variant_name(r["family"], *norms.parse_variant(r["variant"]))
        if r["description_sha256"] not in descriptions.setdefault(key, []):
            descriptions[key].append(r["description_sha256"])
    return {**tool_provenance(), "descriptions": descriptions}
