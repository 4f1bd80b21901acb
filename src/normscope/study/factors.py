"""Factors in a comparison: which overrides differ between runs, the cells they make, the
contrasts between a factor's levels, and the factor × variant table of means.

A run records the overrides it was made with (config.json's ``overrides``: ``--set``, a
study's settings and its cell's levels). Among the runs of one model family, an override key
whose value is not the same in every run is a *factor*; a run's *cell* is its factor levels.
So runs of two separate studies (say one at ``norm_options.bn.momentum=0.9``, one at 0.99)
compare like one factor study. Everything is read from JSON: no torch.
"""

from __future__ import annotations

import itertools

import pandas as pd

from normscope import norms
from normscope.study.stats import LOWER_IS_BETTER, paired_test

__all__ = ["assign_cells", "level_claims", "factor_markdown", "NOT_SET"]

NOT_SET = "(description)"  # the level of a run that did not set the key


def _overrides(texts) -> dict[str, str]:
    out = {}
    for text in texts or ():
        if isinstance(text, str) and "=" in text:
            key, _, value = text.partition("=")
            out[key] = value
    return out


def assign_cells(rows: list[dict]) -> dict[str, list[str]]:
    """Give each row its cell: ``levels`` {factor: level}, ``cell`` (``momentum=0.9``, empty
    without factors) and ``model_family`` (the family); ``family`` becomes the family and
    its cell (``vgg16 [momentum=0.9]``), so that everything grouped by family is grouped by
    cell. Returns the factors of each family {family: [keys]}."""
    factors: dict[str, list[str]] = {}
    for family in dict.fromkeys(r["family"] for r in rows):
        mine = [r for r in rows if r["family"] == family]
        keys = list(dict.fromkeys(k for r in mine for k in _overrides(r.get("overrides"))))
        varying = [k for k in keys if len({_overrides(r.get("overrides")).get(k, NOT_SET) for r in mine}) > 1]
        factors[family] = varying
        shorts = [k.rsplit(".", 1)[-1] for k in varying]
        for r in mine:
            given = _overrides(r.get("overrides"))
            r["levels"] = {k: given.get(k, NOT_SET) for k in varying}
            labels = [f"{s if shorts.count(s) == 1 else k}={r['levels'][k]}" for k, s in zip(varying, shorts)]
            r["cell"] = ", ".join(labels)
            r["model_family"] = family
            r["family"] = f"{family} [{r['cell']}]" if r["cell"] else family
    return factors


def _level_order(values) -> list[str]:
    """Levels in numeric order where they are numbers, else as first met."""
    values = list(dict.fromkeys(values))
    try:
        return sorted(values, key=float)
    except ValueError:
        return values


def level_claims(rows: list[dict], factors: dict[str, list[str]], metrics) -> list[dict]:
    """For each family, factor, variant and combination of the other factors' levels: every
    level against the first (in numeric order), paired by seed (``paired_test``)."""
    out = []
    df = pd.DataFrame(rows)
    for family, keys in factors.items():
        mine = df[df["model_family"] == family]
        for key in keys:
            levels = _level_order(lv[key] for lv in mine["levels"])
            others = [k for k in keys if k != key]
            for variant, runs in mine.groupby("variant", sort=False):
                for context in _contexts(runs, others):
                    out += _contrasts(family, variant, key, levels, runs, context, metrics)
    return out


def _contexts(runs: pd.DataFrame, others: list[str]) -> list[dict]:
    combos = {tuple(lv[k] for k in others) for lv in runs["levels"]}
    return [dict(zip(others, combo)) for combo in sorted(combos)] or [{}]


def _contrasts(family, variant, key, levels, runs, context, metrics) -> list[dict]:
    inside = runs[[all(lv[k] == v for k, v in context.items()) for lv in runs["levels"]]]
    by_level = {lv: inside[[x[key] == lv for x in inside["levels"]]] for lv in levels}
    out = []
    for low, high in itertools.product(levels[:1], levels[1:]):
        a, b = by_level[low], by_level[high]
        if a.empty or b.empty:
            continue
        for metric in metrics:
            test = paired_test(_by_seed(a, metric), _by_seed(b, metric))
            out.append(
                {
                    "contrast": "level",
                    "family": family,
                    "variant": variant,
                    "factor": key,
                    "from": low,
                    "to": high,
                    "context": ", ".join(f"{k}={v}" for k, v in context.items()),
                    "metric": metric,
                    **test,
                }
            )
    return out


def _by_seed(frame: pd.DataFrame, metric: str) -> dict:
    values = frame[["seed", metric]].dropna()
    return {int(s): float(v) for s, v in zip(values["seed"], values[metric])}


def _fmt(v) -> str:
    return "—" if v is None or pd.isna(v) else f"{v:.4f}"


def _p(v) -> str:
    return "—" if v is None else f"{v:.3f}"


def factor_markdown(rows: list[dict], factors: dict[str, list[str]], claims: list[dict], metrics) -> str:
    """The factor × variant tables of means (one per family and metric), then the contrasts
    between levels with Holm-adjusted p-values and verdicts."""
    if not any(factors.values()):
        return "No factors: every run of a family was made with the same overrides.\n"
    df = pd.DataFrame(rows)
    lines = ["# Factors", ""]
    for family, keys in factors.items():
        if not keys:
            continue
        mine = df[df["model_family"] == family]
        for metric in metrics:
            table = mine.pivot_table(index="variant", columns="cell", values=metric, aggfunc="mean", sort=False)
            table = table.reindex([v for v in norms.ALL_VARIANTS if v in table.index])
            lines += [f"## {family}: mean {metric} over seeds, by {', '.join(keys)}", ""]
            lines.append("| variant | " + " | ".join(map(str, table.columns)) + " |")
            lines.append("|---|" + "---|" * len(table.columns))
            for variant, values in table.iterrows():
                lines.append(f"| {variant} | " + " | ".join(_fmt(v) for v in values) + " |")
            lines.append("")
    level = [c for c in claims if c.get("contrast") == "level"]
    if level:
        lines += ["## Contrasts between levels (paired by seed; Holm over all of the study's claims)", ""]
        head = ("family", "variant", "factor", "levels", "other factors", "metric", "n", "difference", "95% CI")
        lines.append("| " + " | ".join(head + ("p (Holm)", "verdict")) + " |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for c in level:
            sign = "lower is better" if c["metric"] in LOWER_IS_BETTER else ""
            lines.append(
                f"| {c['family']} | {c['variant']} | {c['factor']} | {c['to']} − {c['from']} | {c['context'] or '—'} "
                f"| {c['metric']}{' (' + sign + ')' if sign else ''} | {c['n_pairs']} | {_fmt(c['difference'])} "
                f"| [{_fmt(c['ci_low'])}, {_fmt(c['ci_high'])}] | {_p(c['p_holm'])} | {c['verdict']} |"
            )
        lines.append("")
    return "\n".join(lines) + "\n"
