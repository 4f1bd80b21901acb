"""Comparing runs: collect the finished runs, aggregate over seeds, pair plain with reuse."""

from __future__ import annotations

import math
from pathlib import Path

from normscope import norms
from normscope.analysis import ATTRIBUTION_JSON
from normscope.study.plan import RUNS, STUDY, StudyError
from normscope.train import runs

METRICS = ("loss", "precision", "recall", "auc", "accuracy", "top5_accuracy", "macro_f1")
# what aggregate() averages over seeds
AVERAGED = METRICS + ("params", "stats_share")


def _finished_runs(d: Path) -> list[Path]:
    return sorted(r for r in d.iterdir() if (r / runs.RESULTS).is_file())


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


def _row(d: Path, res: dict) -> dict:
    if res.get("variant") not in norms.ALL_VARIANTS:
        raise StudyError(f"{d}: unknown variant {res.get('variant')!r} (known: {', '.join(norms.ALL_VARIANTS)})")
    cfg = runs.read_json(d / runs.CONFIG) if (d / runs.CONFIG).is_file() else {}
    row = {
        "run": str(d),
        "family": cfg.get("family", res.get("name")),
        "variant": res.get("variant"),
        "seed": res.get("seed"),
        "data": res.get("data"),
        "params": res.get("params", {}).get("total"),
        "best_epoch": res.get("best_epoch"),
    }
    row.update({m: res["test"].get(m) for m in METRICS})
    attribution = d / ATTRIBUTION_JSON
    row["stats_share"] = runs.read_json(attribution).get("stats_share") if attribution.is_file() else None
    return row


def collect(paths) -> list[dict]:
    """One row per completed run: family, variant, seed, the test metrics, params, stats share."""
    rows = []
    for d in _run_dirs(paths):
        res = runs.read_json(d / runs.RESULTS)
        if res.get("status") == "completed" and "test" in res:
            rows.append(_row(d, res))
    if not rows:
        raise StudyError("none of the runs has finished (status completed)")
    return rows


def _mean_std(values) -> tuple[float | None, float | None, int]:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return None, None, 0
    mean = sum(vals) / len(vals)
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else None
    return mean, std, len(vals)


def aggregate(rows: list[dict]) -> list[dict]:
    """Mean and sample standard deviation over seeds, per (family, variant), in the order of
    the variants in `normscope.norms`."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["family"], r["variant"]), []).append(r)
    order = {v: i for i, v in enumerate(norms.ALL_VARIANTS)}
    out = []
    for (family, variant), members in sorted(
        groups.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], len(order)))
    ):
        entry = {"family": family, "variant": variant, "n": len(members), "seeds": sorted(m["seed"] for m in members)}
        for key in AVERAGED:
            mean, std, _ = _mean_std([m[key] for m in members])
            entry[key], entry[key + "_std"] = mean, std
        out.append(entry)
    return out


def _norms_present(entries: list[dict]) -> list[str]:
    """The normalizations of these entries' variants, in the order of the norms table."""
    present = {norms.parse_variant(a["variant"])[0] for a in entries}
    return [n for n in norms.NORMS if n in present]


def _pair(plain: dict, v2: dict, metric: str) -> dict:
    diff = v2[metric] - plain[metric]
    se = None
    if plain[metric + "_std"] is not None and v2[metric + "_std"] is not None:
        se = math.sqrt(plain[metric + "_std"] ** 2 / plain["n"] + v2[metric + "_std"] ** 2 / v2["n"])
    return {
        "metric": metric,
        "plain": plain[metric],
        "v2": v2[metric],
        "difference": diff,
        "se": se,
        "beyond_spread": None if se is None else abs(diff) > 2 * se,
        "n_plain": plain["n"],
        "n_v2": v2["n"],
    }


def paired(agg: list[dict], metric: str = "auc") -> list[dict]:
    """Plain versus v2 per normalization: difference of means and whether it exceeds the
    seed-to-seed spread (|difference| > 2 standard errors of the difference)."""
    by = {(a["family"], a["variant"]): a for a in agg}
    out = []
    for family in dict.fromkeys(a["family"] for a in agg):
        for norm in _norms_present([a for a in agg if a["family"] == family]):
            plain = by.get((family, norms.variant_key(norm, False)))
            v2 = by.get((family, norms.variant_key(norm, True)))
            if not plain or not v2 or plain[metric] is None or v2[metric] is None:
                continue
            out.append({"family": family, "norm": norm, **_pair(plain, v2, metric)})
    return out
